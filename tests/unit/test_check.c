/*
 * test_check.c - the offline tools of the core: evl_fsck (finding and
 * repairing an index that disagrees with the logs), evl_reindex and
 * evl_backup.  Every test compares views byte for byte with what they held
 * before.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "evlog.h"
#include "index.h"
#include "testutil.h"

static const char *const types[] = { "tool.call", "tool.result", "note", "error.io" };
static const char *const prefixes[] = { "tool", "tool.call", "note", "error", "e", "n" };

static struct evl_store *open_store(const char *dir)
{
	struct evl_options o;
	struct evl_store *st;

	evl_options_default(&o);
	assert_int_equal(evl_store_open(dir, &o, &st), 0);
	return st;
}

/* @n events spread over tasks t0..t3 and the four types, from event @from on. */
static void fill(struct evl_store *st, int from, int n)
{
	char name[8], buf[128];

	for (int i = from; i < from + n; i++) {
		struct evl_task_info info;
		struct evl_writer *w;
		int len;

		snprintf(name, sizeof(name), "t%d", i % 4);
		if (evl_task_lookup(st, name, &info)) {
			assert_int_equal(evl_task_create(st, name), 0);
			assert_int_equal(evl_task_lookup(st, name, &info), 0);
		}
		assert_int_equal(evl_writer_open(st, info.uid, &w), 0);
		len = snprintf(buf, sizeof(buf), "{\"type\":\"%s\",\"i\":%d}\n", types[(i * 7) % 4], i);
		assert_int_equal(evl_writer_write(w, buf, len), 0);
		assert_int_equal(evl_writer_close(w), 0);
	}
}

/* Every view and every task log, concatenated with separators. */
static char *dump(const char *dir)
{
	struct evl_store *st = open_store(dir);
	size_t cap = 1 << 20, len = 0;
	char *out = malloc(cap);

	for (size_t p = 0; p < sizeof(prefixes) / sizeof(*prefixes); p++) {
		struct evl_view *v;
		ssize_t n;

		len += snprintf(out + len, cap - len, "== %s\n", prefixes[p]);
		if (evl_view_open(st, prefixes[p], strlen(prefixes[p]), 0, &v))
			continue;
		for (uint64_t off = 0; (n = evl_view_read(v, off, out + len, cap - len - 1)) > 0;
		     off += n)
			len += n;
		evl_view_close(v);
	}
	for (int t = 0; t < 4; t++) {
		struct evl_task_info info;
		char name[8];
		ssize_t n;
		uint64_t off = 0;

		snprintf(name, sizeof(name), "t%d", t);
		len += snprintf(out + len, cap - len, "== task %s\n", name);
		if (evl_task_lookup(st, name, &info))
			continue;
		while ((n = evl_task_read(st, info.uid, off, out + len, cap - len - 1)) > 0) {
			off += n;
			len += n;
		}
	}
	out[len] = '\0';
	assert_int_equal(evl_store_close(st), 0);
	return out;
}

static char lines[64][300];
static int nlines;

static void collect(void *arg, char level, const char *line)
{
	if (nlines < 64)
		snprintf(lines[nlines++], sizeof(lines[0]), "%c %s", level, line);
}

static bool reported(const char *what)
{
	for (int i = 0; i < nlines; i++)
		if (strstr(lines[i], what))
			return true;
	return false;
}

static int fsck(const char *dir, bool repair, struct evl_check_result *r)
{
	struct evl_check_opts o = { .repair = repair, .report = collect };

	nlines = 0;
	return evl_fsck(dir, &o, r);
}

/* Change the index behind the store's back, through the index API. */
static void tamper(const char *dir, bool drop_type, bool stale)
{
	struct index_txn *t;
	struct index *ix;
	char path[4200];

	snprintf(path, sizeof(path), "%s/index", dir);
	assert_int_equal(index_open(path, NULL, &ix), 0);
	assert_int_equal(index_begin(ix, true, &t), 0);
	if (drop_type)
		assert_int_equal(index_type_drop(t, "note", 4), 0);
	if (stale)	/* an entry for task uid 1 past every event */
		assert_int_equal(index_add_event(t, 1, 1000000, "error.io", 8, 1 << 20, 20), 0);
	assert_int_equal(index_commit(t), 0);
	index_close(ix);
}

static void fsck_finds_and_repairs(void **state)
{
	const char *dir = *state;
	struct evl_check_result r;
	struct evl_store *st = open_store(dir);
	char *before;

	fill(st, 0, 400);
	assert_int_equal(evl_task_delete(st, "t3"), 0);	/* awaiting purge: no finding */
	assert_int_equal(evl_store_close(st), 0);
	before = dump(dir);

	assert_int_equal(fsck(dir, false, &r), 0);
	assert_int_equal(r.problems, 0);
	assert_int_equal(r.tasks, 3);
	assert_int_equal(r.events, 300);

	tamper(dir, true, true);
	assert_int_equal(fsck(dir, false, &r), 0);
	assert_true(r.problems >= 2);
	assert_true(reported("type note: event gseq"));
	assert_true(reported("type error.io: entry gseq 1000000"));
	assert_int_equal(r.fixed, 0);

	assert_int_equal(fsck(dir, true, &r), 0);
	assert_true(reported("F type note: entries rebuilt"));
	assert_true(reported("F type error.io: entries rebuilt"));
	assert_false(reported("F type tool"));
	assert_int_equal(fsck(dir, false, &r), 0);
	assert_int_equal(r.problems, 0);
	{
		char *after = dump(dir);

		assert_string_equal(after, before);
		free(after);
	}
	free(before);
}

static void fsck_refuses_an_open_store(void **state)
{
	const char *dir = *state;
	struct evl_check_result r;
	struct evl_store *st = open_store(dir);

	assert_int_equal(fsck(dir, false, &r), -EBUSY);
	assert_true(reported("in use by pid"));
	assert_int_equal(evl_store_close(st), 0);
}

static void reindex_gives_the_same_views(void **state)
{
	const char *dir = *state;
	struct evl_check_opts o = { .report = collect };
	struct evl_check_result r;
	struct evl_store *st = open_store(dir);
	char path[4200], *before, *after;

	fill(st, 0, 500);
	assert_int_equal(evl_store_close(st), 0);
	before = dump(dir);

	assert_int_equal(evl_reindex(dir, &o, &r), 0);	/* the old index opens */
	assert_int_equal(r.events, 500);
	after = dump(dir);
	assert_string_equal(after, before);
	free(after);

	snprintf(path, sizeof(path), "%s/index", dir);
	tu_rmrf(path);
	nlines = 0;
	assert_int_equal(evl_reindex(dir, &o, &r), 0);	/* no index at all */
	assert_true(reported("has no index"));
	after = dump(dir);
	assert_string_equal(after, before);
	free(after);
	assert_int_equal(fsck(dir, false, &r), 0);
	assert_int_equal(r.problems, 0);

	/* it takes appends afterwards, with gseqs past the old ones */
	st = open_store(dir);
	fill(st, 500, 40);
	assert_int_equal(evl_store_close(st), 0);
	assert_int_equal(fsck(dir, false, &r), 0);
	assert_int_equal(r.problems, 0);
	free(before);
}

static void backup_copies_only_what_is_new(void **state)
{
	const char *dir = *state;
	struct evl_backup_opts o = { .report = collect };
	struct evl_backup_result r;
	struct evl_check_result cr;
	char dest[4200], *a, *b;
	struct evl_store *st = open_store(dir);

	snprintf(dest, sizeof(dest), "%s/copy", dir);
	fill(st, 0, 200);
	assert_int_equal(evl_store_close(st), 0);
	assert_int_equal(evl_backup(dir, dest, &o, &r), 0);
	assert_int_equal(r.tasks, 4);
	assert_int_equal(r.tasks_new, 4);
	assert_int_equal(r.events, 200);

	st = open_store(dir);
	fill(st, 200, 2);	/* tasks t0 and t1 grow */
	assert_int_equal(evl_task_delete(st, "t3"), 0);
	assert_int_equal(evl_store_close(st), 0);
	assert_int_equal(evl_backup(dir, dest, &o, &r), 0);
	assert_int_equal(r.tasks_appended, 2);
	assert_int_equal(r.tasks_unchanged, 1);
	assert_int_equal(r.tasks_removed, 1);
	assert_true(r.log_bytes_copied > 0 && r.log_bytes_copied < 100);

	a = dump(dir);
	b = dump(dest);
	assert_string_equal(a, b);
	free(a);
	free(b);
	assert_int_equal(fsck(dest, false, &cr), 0);
	assert_int_equal(cr.problems, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(fsck_finds_and_repairs, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(fsck_refuses_an_open_store, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(reindex_gives_the_same_views, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(backup_copies_only_what_is_new, tu_setup,
						tu_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
