/*
 * Unit tests: the store, end to end through core/evlog.h, plus crashes,
 * power loss and injected faults.  Every check compares against a rescan
 * of the task logs and sidecars on disk (rescan()), which is what the
 * index must equal.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "bytes.h"
#include "evlog.h"
#include "fio.h"
#include "index.h"
#include "store_i.h"
#include "tasklog.h"
#include "testutil.h"

/* ---- helpers ---- */

static struct evl_store *open_store(const char *dir, bool sync, unsigned commit_ms)
{
	struct evl_options o;
	struct evl_store *st = NULL;

	evl_options_default(&o);
	o.commit_sync = sync;
	o.commit_ms = commit_ms;
	o.segment_bytes = 64 << 10;	/* many segments: rotation and trim run */
	o.max_fds = 4;			/* the descriptor cache evicts */
	assert_int_equal(evl_store_open(dir, &o, &st), 0);
	return st;
}

static uint64_t task_uid(struct evl_store *st, const char *name)
{
	struct evl_task_info info;

	if (evl_task_lookup(st, name, &info))
		return 0;
	return info.uid;
}

static uint64_t task_events(struct evl_store *st, const char *name)
{
	struct evl_task_info info;

	assert_int_equal(evl_task_lookup(st, name, &info), 0);
	return info.events;
}

static uint64_t create(struct evl_store *st, const char *name)
{
	assert_int_equal(evl_task_create(st, name), 0);
	return task_uid(st, name);
}

static int write_str(struct evl_writer *w, const char *s)
{
	return evl_writer_write(w, s, strlen(s));
}

static int event_line(char *buf, size_t n, int type, int w, int i, int pad)
{
	return snprintf(buf, n, "{\"type\":\"ty%02d\",\"w\":%d,\"i\":%d,\"pad\":\"%.*s\"}\n", type,
			w, i, pad, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
}

/* Read all of a task log or a view through the API. */
static char *read_all(struct evl_store *st, uint64_t uid, struct evl_view *v, size_t *len)
{
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);

	for (;;) {
		ssize_t r;

		if (cap - n < 4096)
			buf = realloc(buf, cap *= 2);
		r = v ? evl_view_read(v, n, buf + n, 4096 - (n % 7))
		      : evl_task_read(st, uid, n, buf + n, 4096 - (n % 7));
		assert_true(r >= 0);
		if (r == 0)
			break;
		n += r;
	}
	*len = n;
	return buf;
}

static char *read_view(struct evl_store *st, const char *prefix, uint64_t uid, size_t *len)
{
	struct evl_view *v;
	uint64_t size;
	char *buf;

	if (evl_view_open(st, prefix, strlen(prefix), uid, &v)) {
		*len = 0;
		return NULL;
	}
	buf = read_all(st, 0, v, len);
	assert_int_equal(evl_view_size(v, &size), 0);
	assert_int_equal(size, *len);
	evl_view_close(v);
	return buf;
}

/* One event as found on disk by the rescan. */
struct disk_ev {
	uint64_t gseq, uid;
	char task[64];
	char type[32];
	char *bytes;
	uint32_t len;
};

struct disk {
	struct disk_ev *ev;
	size_t n, cap;
};

static int cmp_gseq(const void *a, const void *b)
{
	const struct disk_ev *x = a, *y = b;

	return x->gseq < y->gseq ? -1 : x->gseq > y->gseq;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc(n + 1);
	*len = fread(buf, 1, n, f);
	buf[*len] = '\0';
	fclose(f);
	return buf;
}

/*
 * Read every live task's log and sidecar straight from DATA_DIR: the events
 * in global commit order.  Fails on a torn or inconsistent task.
 */
static void rescan(const char *dir, struct disk *d)
{
	char path[4400];
	struct dirent *de;
	DIR *td;

	d->ev = NULL;
	d->n = d->cap = 0;
	snprintf(path, sizeof(path), "%s/tasks", dir);
	td = opendir(path);
	assert_non_null(td);
	while ((de = readdir(td))) {
		size_t llen, mlen, off = 0;
		char *log, *meta;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/tasks/%s/events", dir, de->d_name);
		log = slurp(path, &llen);
		snprintf(path, sizeof(path), "%s/tasks/%s/events.meta", dir, de->d_name);
		meta = slurp(path, &mlen);
		assert_non_null(log);
		assert_non_null(meta);
		assert_int_equal(mlen % TASKLOG_REC, 0);
		for (size_t i = 0; i < mlen / TASKLOG_REC; i++) {
			struct tasklog_rec r;
			struct disk_ev *e;
			char *t;

			assert_int_equal(tasklog_decode((unsigned char *)meta + i * TASKLOG_REC, &r), 0);
			assert_true(off + r.len <= llen);
			assert_int_equal(log[off + r.len - 1], '\n');
			if (d->n == d->cap) {
				d->cap = d->cap ? d->cap * 2 : 256;
				d->ev = realloc(d->ev, d->cap * sizeof(*d->ev));
			}
			e = &d->ev[d->n++];
			e->gseq = r.gseq;
			snprintf(e->task, sizeof(e->task), "%.63s", de->d_name);
			e->bytes = malloc(r.len + 1);
			memcpy(e->bytes, log + off, r.len);
			e->bytes[r.len] = '\0';
			e->len = r.len;
			t = strstr(e->bytes, "\"type\":\"");
			assert_non_null(t);
			sscanf(t + 8, "%31[^\"]", e->type);
			off += r.len;
		}
		assert_int_equal(off, llen);	/* nothing past the last event */
		free(log);
		free(meta);
	}
	closedir(td);
	if (d->n)
		qsort(d->ev, d->n, sizeof(*d->ev), cmp_gseq);
	for (size_t i = 1; i < d->n; i++)
		assert_true(d->ev[i].gseq > d->ev[i - 1].gseq);	/* no duplicate gseq */
}

static void disk_free(struct disk *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->ev[i].bytes);
	free(d->ev);
}

/* What view @prefix (of @task, or all) must hold according to the rescan. */
static char *expect_view(const struct disk *d, const char *prefix, const char *task, size_t *len)
{
	size_t n = 0, cap = 0;
	char *buf = NULL;

	for (size_t i = 0; i < d->n; i++)
		cap += d->ev[i].len;
	buf = malloc(cap + 1);
	for (size_t i = 0; i < d->n; i++) {
		if (strncmp(d->ev[i].type, prefix, strlen(prefix)) ||
		    (task && strcmp(task, d->ev[i].task)))
			continue;
		memcpy(buf + n, d->ev[i].bytes, d->ev[i].len);
		n += d->ev[i].len;
	}
	*len = n;
	return buf;
}

/* Every view the store offers equals the filter of the logs (store applied). */
static void check_views(struct evl_store *st, const char *dir)
{
	static const char *const prefixes[] = { "t", "ty", "ty0", "ty01", "ty1", "ty07", "ty2" };
	struct disk d;

	assert_int_equal(evl_store_checkpoint(st), 0);	/* applied and on disk */
	rescan(dir, &d);
	for (size_t p = 0; p < sizeof(prefixes) / sizeof(*prefixes); p++) {
		size_t elen, glen;
		char *exp = expect_view(&d, prefixes[p], NULL, &elen);
		char *got = read_view(st, prefixes[p], 0, &glen);

		if (elen != glen || (elen && memcmp(exp, got, elen)))
			fail_msg("view %s: %zu bytes, expected %zu", prefixes[p], glen, elen);
		assert_int_equal(evl_prefix_exists(st, prefixes[p], strlen(prefixes[p])), (elen ? 1 : 0));
		/* random offsets, random lengths */
		if (elen) {
			struct evl_view *v;
			unsigned seed = 42 + p;
			char buf[700];

			assert_int_equal(evl_view_open(st, prefixes[p], strlen(prefixes[p]), 0, &v), 0);
			for (int k = 0; k < 200; k++) {
				uint64_t off = rand_r(&seed) % elen;
				size_t want = 1 + rand_r(&seed) % sizeof(buf);
				ssize_t r = evl_view_read(v, off, buf, want);
				size_t exp_n = want < elen - off ? want : elen - off;

				if ((size_t)r != exp_n)
					fail_msg("view %s size %zu: read(off %llu, %zu) = %zd, want %zu",
						 prefixes[p], elen, (unsigned long long)off, want, r, exp_n);
				assert_memory_equal(buf, exp + off, exp_n);
			}
			evl_view_close(v);
		}
		free(exp);
		free(got);
	}
	/* per-task views */
	for (size_t i = 0; i < d.n; i += d.n / 5 + 1) {
		uint64_t uid = task_uid(st, d.ev[i].task);
		size_t elen, glen;
		char *exp = expect_view(&d, "ty", d.ev[i].task, &elen);
		char *got = read_view(st, "ty", uid, &glen);

		assert_int_equal(glen, elen);
		assert_memory_equal(got, exp, elen);
		free(exp);
		free(got);
	}
	disk_free(&d);
}

/* ---- fixtures ---- */

/* ---- basic behaviour ---- */

static void round_trip(void **state)
{
	const char *dir = *state;
	struct evl_store *st = open_store(dir, false, 2);
	struct evl_writer *w;
	struct evl_task_info info;
	uint64_t uid;
	size_t len;
	char *got;
	const char *want =
		"{\"type\":\"tool.call\",\"n\":1}\n"
		"{\"type\":\"tool.result\",\"n\":2}\n"
		"{\"type\":\"note\",\"text\":\"split\"}\n"
		"{\"type\":\"note\",\"n\":4}\n";

	uid = create(st, "t42");
	assert_int_equal(evl_task_create(st, "t42"), -EEXIST);
	assert_int_equal(evl_task_create(st, ".hidden"), -EINVAL);
	assert_int_equal(evl_task_create(st, "a/b"), -EINVAL);
	assert_int_equal(evl_writer_open(st, uid, &w), 0);
	assert_int_equal(write_str(w, "{\"type\":\"tool.call\",\"n\":1}\n{\"type\":\"tool.result\",\"n\":2}\n"), 0);
	assert_int_equal(write_str(w, "   \n"), 0);			/* blank: skipped */
	assert_int_equal(write_str(w, "{\"type\":\"note\",\"te"), 0);	/* split */
	assert_int_equal(write_str(w, "xt\":\"split\"}\n{\"type\":\"note\",\"n\":4}"), 0);
	assert_int_equal(evl_writer_close(w), 0);	/* the last line gets its newline */

	got = read_all(st, uid, NULL, &len);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(got, want, len);
	free(got);
	assert_int_equal(evl_task_stat(st, uid, &info), 0);
	assert_int_equal(info.size, strlen(want));
	assert_int_equal(info.events, 4);
	assert_string_equal(info.name, "t42");

	got = read_view(st, "tool.", 0, &len);
	assert_int_equal(len, 56);
	assert_memory_equal(got, want, 56);
	free(got);
	got = read_view(st, "note", uid, &len);
	assert_int_equal(len, strlen(want) - 56);
	free(got);
	assert_false(evl_prefix_exists(st, "nope", 4));
	{
		struct evl_view *v;

		assert_int_equal(evl_view_open(st, "nope", 4, 0, &v), -ENOENT);
		assert_int_equal(evl_view_open(st, "a/b", 3, 0, &v), -EINVAL);
	}
	assert_int_equal(evl_store_close(st), 0);

	/* remount: the same bytes */
	st = open_store(dir, false, 2);
	got = read_all(st, task_uid(st, "t42"), NULL, &len);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(got, want, len);
	free(got);
	check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
}

static void bad_writes_store_nothing(void **state)
{
	const char *dir = *state;
	struct evl_store *st = open_store(dir, false, 2);
	struct evl_writer *w;
	struct evl_stats s;
	uint64_t uid = create(st, "t1");
	char big[300];
	size_t len;
	char *got;

	assert_int_equal(evl_writer_open(st, uid, &w), 0);
	assert_int_equal(write_str(w, "{\"type\":\"a\"}\n"), 0);
	assert_int_equal(write_str(w, "{\"type\":\"b\"}\nnot json\n{\"type\":\"c\"}\n"), -EINVAL);
	assert_int_equal(write_str(w, "{\"type\":\"a\"}\n{\"type\":\"x/y\"}\n"), -EINVAL);
	evl_store_stats(st, &s);
	assert_int_equal(s.rejected_invalid, 2);
	/* named by the place it would have had: after the stored event and the call's first */
	assert_non_null(strstr(s.last_rejection, "task t1 event 3 (byte 26) col "));
	assert_int_equal(write_str(w, "{\"type\":\"d\"}\n{\"type\":\"partial"), 0);
	assert_int_equal(evl_writer_close(w), -EINVAL);	/* invalid at close */

	got = read_all(st, uid, NULL, &len);
	assert_int_equal(len, 26);
	assert_memory_equal(got, "{\"type\":\"a\"}\n{\"type\":\"d\"}\n", 26);
	free(got);
	evl_writer_open(st, uid, &w);
	memset(big, ' ', sizeof(big));
	memcpy(big, "{\"type\":\"a\"}", 12);
	big[sizeof(big) - 1] = '\n';
	{
		struct evl_options o;
		struct evl_store *small;

		/* a store with max_event=256 refuses the 300-byte line */
		assert_int_equal(evl_writer_close(w), 0);
		assert_int_equal(evl_store_close(st), 0);
		evl_options_default(&o);
		o.max_event = 256;
		assert_int_equal(evl_store_open(dir, &o, &small), 0);
		assert_int_equal(evl_writer_open(small, uid, &w), 0);
		assert_int_equal(evl_writer_write(w, big, sizeof(big)), -EFBIG);
		/* 256 bytes without a newline can never fit: refused, nothing held */
		assert_int_equal(evl_writer_write(w, big, 256), -EFBIG);
		assert_int_equal(evl_writer_held(w), 0);
		/* and the next line starts clean */
		assert_int_equal(write_str(w, "{\"type\":\"e\"}\n"), 0);
		assert_int_equal(evl_writer_write(w, big, 255), 0);	/* held: fits */
		assert_int_equal(evl_writer_write(w, "x\n", 2), -EFBIG);
		assert_int_equal(evl_writer_held(w), 0);	/* the refused line is forgotten */
		evl_store_stats(small, &s);
		assert_int_equal(s.rejected_too_big, 3);
		assert_int_equal(s.held_bytes, 0);
		assert_int_equal(evl_writer_close(w), 0);
		got = read_all(small, uid, NULL, &len);
		assert_int_equal(len, 39);
		assert_memory_equal(got + 26, "{\"type\":\"e\"}\n", 13);
		free(got);
		assert_int_equal(evl_store_close(small), 0);
	}
	/* another type_field on the same store is refused */
	{
		struct evl_options o;
		struct evl_store *other;

		evl_options_default(&o);
		o.type_field = "event_type";
		assert_int_equal(evl_store_open(dir, &o, &other), -EINVAL);
	}
}

/*
 * After any refusal the handle holds nothing of the refused line, and its
 * next line starts clean; a held line the refused one did not continue
 * stays held (the write is all-or-nothing).  Issue 14 A9: 600 KB held, then
 * 600 KB more and a newline got EFBIG, and every later line EINVAL.
 */
static void refused_lines_are_forgotten(void **state)
{
	const char *dir = *state;
	struct evl_store *st = open_store(dir, false, 2);
	size_t half = 600 << 10, len;
	struct evl_writer *w;
	struct evl_stats s;
	uint64_t uid = create(st, "t");
	char *big = malloc(2 * half + 8), *got;
	const char *want;

	memset(big, 'x', half);
	memcpy(big, "{\"type\":\"big\",\"p\":\"", 19);
	memcpy(big + half, "\"}\n", 3);
	assert_int_equal(evl_writer_open(st, uid, &w), 0);
	/* EFBIG of a line that continues the held one */
	assert_int_equal(evl_writer_write(w, big, half), 0);
	assert_int_equal(evl_writer_held(w), half);
	memset(big, 'x', 19);
	assert_int_equal(evl_writer_write(w, big, half + 3), -EFBIG);
	assert_int_equal(evl_writer_held(w), 0);
	/* the same bytes again (a writer resending after a short count): EFBIG again */
	assert_int_equal(evl_writer_write(w, big, half + 3), -EFBIG);
	assert_int_equal(evl_writer_write(w, big, half + 3), -EINVAL);	/* then a line */
	assert_int_equal(write_str(w, "{\"type\":\"ok\"}\n"), 0);
	/* EINVAL of a line that continues the held one: the call's other lines go too */
	assert_int_equal(write_str(w, "{\"type\":"), 0);
	assert_int_equal(write_str(w, "oops}\n{\"type\":\"lost\"}\n"), -EINVAL);
	assert_int_equal(evl_writer_held(w), 0);
	assert_int_equal(write_str(w, "{\"type\":\"d\"}\n"), 0);
	/* EINVAL of a later line: the held line was not refused, it stays */
	assert_int_equal(write_str(w, "{\"type\":"), 0);
	assert_int_equal(write_str(w, "\"e\"}\nbad\n"), -EINVAL);
	assert_int_equal(evl_writer_held(w), 8);
	assert_int_equal(write_str(w, "\"e\"}\n"), 0);
	/* EFBIG of an unterminated tail: likewise */
	assert_int_equal(write_str(w, "{\"type\":"), 0);
	memcpy(big, "\"f\"}\n", 5);
	memset(big + 5, 'x', half);
	assert_int_equal(evl_writer_write(w, big, half * 2), -EFBIG);	/* the tail: 1.2 MB */
	assert_int_equal(evl_writer_held(w), 8);
	assert_int_equal(write_str(w, "\"f\"}\n"), 0);
	/* the held line is always counted against max_held, and given back */
	evl_store_stats(st, &s);
	assert_int_equal(s.held_bytes, 0);
	assert_int_equal(s.rejected_too_big, 2);
	assert_int_equal(s.rejected_invalid, 3);
	assert_int_equal(evl_writer_close(w), 0);	/* nothing held: nothing refused */
	want = "{\"type\":\"ok\"}\n{\"type\":\"d\"}\n{\"type\":\"e\"}\n{\"type\":\"f\"}\n";
	got = read_all(st, uid, NULL, &len);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(got, want, len);
	free(got);
	free(big);
	assert_int_equal(evl_store_close(st), 0);
}

/*
 * What a close(2) by the writer does while other descriptors of the open
 * file may still complete the line: store a valid held line, keep an
 * incomplete one without logging or counting it.
 */
static void flush_valid_keeps_an_incomplete_line(void **state)
{
	const char *dir = *state;
	struct evl_store *st = open_store(dir, false, 2);
	struct evl_writer *w;
	struct evl_stats s;
	uint64_t uid = create(st, "t");
	const char *want = "{\"type\":\"a\"}\n{\"type\":\"b\"}\n";
	size_t len;
	char *got;

	assert_int_equal(evl_writer_open(st, uid, &w), 0);
	assert_int_equal(evl_writer_flush_valid(w), 0);	/* nothing held */
	assert_int_equal(write_str(w, "{\"type\":"), 0);
	assert_int_equal(evl_writer_flush_valid(w), -EINVAL);
	assert_int_equal(evl_writer_held(w), 8);
	assert_int_equal(write_str(w, "\"a\"}\n{\"type\":\"b\"}"), 0);
	assert_int_equal(evl_writer_flush_valid(w), 0);	/* valid: stored, newline added */
	assert_int_equal(evl_writer_held(w), 0);
	assert_int_equal(write_str(w, "  "), 0);
	assert_int_equal(evl_writer_flush_valid(w), 0);	/* blanks: nothing to store */
	assert_int_equal(evl_writer_held(w), 0);
	evl_store_stats(st, &s);
	assert_int_equal(s.rejected_invalid, 0);
	assert_int_equal(write_str(w, "{\"type\":"), 0);
	assert_int_equal(evl_writer_close(w), -EINVAL);	/* the last close refuses it */
	evl_store_stats(st, &s);
	assert_int_equal(s.rejected_invalid, 1);
	assert_int_equal(s.held_bytes, 0);
	got = read_all(st, uid, NULL, &len);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(got, want, len);
	free(got);
	assert_int_equal(evl_store_close(st), 0);
}

/* max_held bounds what all writers hold together; ENOBUFS leaves the handle as it was. */
static void max_held_bounds_all_writers(void **state)
{
	const char *dir = *state;
	struct evl_options o;
	struct evl_store *st;
	struct evl_writer *a, *b;
	struct evl_stats s;
	uint64_t uid;
	char part[600];
	size_t len;
	char *got;

	evl_options_default(&o);
	o.max_held = 1000;
	assert_int_equal(evl_store_open(dir, &o, &st), 0);
	uid = create(st, "t");
	memset(part, ' ', sizeof(part));
	memcpy(part, "{\"type\":\"a\"", 11);
	assert_int_equal(evl_writer_open(st, uid, &a), 0);
	assert_int_equal(evl_writer_open(st, uid, &b), 0);
	assert_int_equal(evl_writer_write(a, part, sizeof(part)), 0);
	part[0] = ' ';
	assert_int_equal(evl_writer_write(b, part, sizeof(part)), -ENOBUFS);
	assert_int_equal(evl_writer_held(b), 0);
	/* complete lines in the same call are not stored either */
	assert_int_equal(write_str(b, "{\"type\":\"x\"}\n"), 0);
	assert_int_equal(evl_writer_write(b, "{\"type\":\"y\"}\n{", 14), 0);
	assert_int_equal(evl_writer_write(a, part, sizeof(part)), -ENOBUFS);
	assert_int_equal(evl_writer_held(a), 600);
	evl_store_stats(st, &s);
	assert_int_equal(s.held_bytes, 601);
	assert_int_equal(s.rejected_held, 2);
	assert_non_null(strstr(s.last_rejection, "max_held=1000"));
	/* ending a line gives its bytes back; the retry then fits */
	assert_int_equal(write_str(a, "}\n"), 0);
	assert_int_equal(evl_writer_write(b, part, sizeof(part)), 0);
	assert_int_equal(write_str(b, ",\"z\":1}\n"), 0);
	evl_store_stats(st, &s);
	assert_int_equal(s.held_bytes, 0);
	assert_int_equal(evl_writer_close(a), 0);
	assert_int_equal(evl_writer_close(b), 0);
	got = read_all(st, uid, NULL, &len);
	assert_int_equal(len, 13 + 13 + 600 + 2 + 1 + 600 + 8);
	free(got);
	assert_int_equal(evl_store_close(st), 0);
}

/*
 * The largest event max_event allows (64 MiB, newline included) is stored,
 * and so is the largest record a FUSE write can make: that event held
 * across writes, completed by a 1 MiB request of more events.  Recovery
 * replays it from the journal.  Issue 14 A15: the journal's record limit
 * was smaller than such a payload (EFBIG).
 */
static void largest_event_is_storable(void **state)
{
	const char *dir = *state;
	size_t max = 64u << 20, small = 1u << 20, m = 0, off = 0;
	struct evl_options o;
	struct evl_store *st;
	struct evl_writer *w;
	struct evl_task_info info;
	char *ev = malloc(max), *more = malloc(small), *got = malloc(max + small);
	uint64_t uid;
	pid_t pid;
	int status;

	assert_non_null(ev);
	assert_non_null(more);
	assert_non_null(got);
	memset(ev, 'x', max);
	memcpy(ev, "{\"type\":\"big\",\"p\":\"", 19);
	memcpy(ev + max - 3, "\"}\n", 3);
	more[m++] = '\n';	/* ends the held event */
	while (m + 13 <= small) {
		memcpy(more + m, "{\"type\":\"s\"}\n", 13);
		m += 13;
	}
	evl_options_default(&o);
	o.max_event = max;
	assert_int_equal(evl_store_open(dir, &o, &st), 0);
	uid = create(st, "big");
	assert_int_equal(evl_store_close(st), 0);

	/* in a child that dies without closing: the parent's open replays the journal */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (evl_store_open(dir, &o, &st) || evl_writer_open(st, uid, &w))
			_exit(2);
		if (evl_writer_write(w, ev, max - 1) || evl_writer_write(w, more, m))
			_exit(3);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	assert_int_equal(evl_store_open(dir, &o, &st), 0);
	assert_int_equal(evl_task_stat(st, uid, &info), 0);
	assert_int_equal(info.size, max + m - 1);
	assert_int_equal(info.events, 1 + (m - 1) / 13);
	for (;;) {
		ssize_t r = evl_task_read(st, uid, off, got + off, max + small - off);

		assert_true(r >= 0);
		if (r == 0)
			break;
		off += r;
	}
	assert_int_equal(off, max + m - 1);
	assert_true(memcmp(got, ev, max) == 0);
	assert_true(memcmp(got + max, more + 1, m - 1) == 0);
	assert_int_equal(evl_store_close(st), 0);
	free(got);
	free(ev);
	free(more);
}

static void read_your_writes_before_apply(void **state)
{
	const char *dir = *state;
	/* group commit every 2 s: the applier waits, events stay pending */
	struct evl_store *st = open_store(dir, false, 2000);
	struct evl_writer *w;
	struct evl_task_info info;
	struct evl_stats s;
	uint64_t uid = create(st, "p");
	char line[200];
	size_t len, total = 0;
	char *got;

	assert_int_equal(evl_writer_open(st, uid, &w), 0);
	for (int i = 0; i < 50; i++) {
		int n = event_line(line, sizeof(line), i % 3, 0, i, i);

		assert_int_equal(evl_writer_write(w, line, n), 0);
		total += n;
	}
	evl_store_stats(st, &s);
	assert_true(s.pending_events > 0);	/* not applied yet... */
	assert_int_equal(evl_task_stat(st, uid, &info), 0);
	assert_int_equal(info.size, total);	/* ...but visible */
	got = read_all(st, uid, NULL, &len);
	assert_int_equal(len, total);
	free(got);
	assert_true(evl_prefix_exists(st, "ty02", 4));
	got = read_view(st, "ty0", 0, &len);
	assert_int_equal(len, total);
	free(got);
	assert_int_equal(evl_writer_close(w), 0);
	check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
}

/* ---- concurrency ---- */

struct writer_arg {
	struct evl_store *st;
	uint64_t uid;
	int id, n;
	int split;	/* write lines in pieces */
};

static void *writer_main(void *arg)
{
	struct writer_arg *a = arg;
	struct evl_writer *w;
	char line[200];

	if (evl_writer_open(a->st, a->uid, &w))
		return (void *)1;
	for (int i = 0; i < a->n; i++) {
		int n = event_line(line, sizeof(line), (a->id + i) % 11, a->id, i, i % 50);

		if (a->split) {
			int cut = n / 3;

			if (evl_writer_write(w, line, cut) || evl_writer_write(w, line + cut, n - cut))
				return (void *)2;
		} else if (evl_writer_write(w, line, n)) {
			return (void *)3;
		}
	}
	return evl_writer_close(w) ? (void *)4 : NULL;
}

/* Parse a task log: every line whole, each writer's events in order. */
static void check_task_order(const char *log, size_t len, int *per_writer, int nwriters)
{
	int next[64] = { 0 };
	const char *p = log, *end = log + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', end - p);
		int t, w, i;

		assert_non_null(nl);
		assert_int_equal(sscanf(p, "{\"type\":\"ty%d\",\"w\":%d,\"i\":%d", &t, &w, &i), 3);
		assert_true(w >= 0 && w < nwriters);
		assert_int_equal(i, next[w]);
		next[w]++;
		p = nl + 1;
	}
	for (int w = 0; w < nwriters; w++)
		if (per_writer)
			per_writer[w] = next[w];
}

static void concurrent_writers(void **state)
{
	const char *dir = *state;
	struct evl_store *st = open_store(dir, false, 2);
	uint64_t shared = create(st, "shared");
	struct writer_arg a[8];
	pthread_t th[8];
	int counts[8];
	size_t len;
	char *log;

	for (int i = 0; i < 8; i++) {
		char name[16];

		snprintf(name, sizeof(name), "own%d", i);
		a[i] = (struct writer_arg){ st, i < 4 ? shared : create(st, name), i, 400, i % 2 };
		pthread_create(&th[i], NULL, writer_main, &a[i]);
	}
	for (int i = 0; i < 8; i++) {
		void *r;

		pthread_join(th[i], &r);
		assert_null(r);
	}
	log = read_all(st, shared, NULL, &len);
	check_task_order(log, len, counts, 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(counts[i], 400);
	free(log);
	check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
}

/* ---- deletion ---- */

/* Threads reading one open view (pread on one descriptor) in the same chunks. */
struct vreader_arg {
	struct evl_view *v;
	const char *whole;
	size_t len, chunk;
	int id, bad;
};

static void *vreader_main(void *arg)
{
	struct vreader_arg *a = arg;
	char *buf = malloc(a->chunk);

	for (int round = 0; round < 40 && !a->bad; round++)
		for (size_t off = (a->id * a->chunk) % a->len; off < a->len && !a->bad;
		     off += a->chunk) {
			size_t want = a->len - off < a->chunk ? a->len - off : a->chunk;
			ssize_t n = evl_view_read(a->v, off, buf, a->chunk);

			if (n != (ssize_t)want || memcmp(buf, a->whole + off, want))
				a->bad = 1;
		}
	free(buf);
	return NULL;
}

static void one_view_read_by_many_threads(void **state)
{
	const char *dir = *state;
	struct evl_store *st = open_store(dir, false, 10);
	struct vreader_arg a[8];
	pthread_t th[8];
	struct evl_writer *w;
	struct evl_view *v;
	char line[200], *whole;
	size_t len;

	for (int t = 0; t < 3; t++) {
		char name[8];

		snprintf(name, sizeof(name), "v%d", t);
		assert_int_equal(evl_writer_open(st, create(st, name), &w), 0);
		for (int i = 0; i < 400; i++) {
			/* events of different lengths: a continuation from the wrong event shows */
			int n = event_line(line, sizeof(line), i % 4, t, i, (i * 7 + t) % 60);

			assert_int_equal(evl_writer_write(w, line, n), 0);
		}
		assert_int_equal(evl_writer_close(w), 0);
	}
	assert_int_equal(evl_store_checkpoint(st), 0);
	whole = read_view(st, "ty0", 0, &len);
	assert_int_equal(evl_view_open(st, "ty0", 3, 0, &v), 0);
	for (int i = 0; i < 8; i++) {
		a[i] = (struct vreader_arg){ v, whole, len, 997, i, 0 };
		assert_int_equal(pthread_create(&th[i], NULL, vreader_main, &a[i]), 0);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(a[i].bad, 0);
	}
	evl_view_close(v);
	free(whole);
	assert_int_equal(evl_store_close(st), 0);
}

static void delete_leaves_views_at_once(void **state)
{
	const char *dir = *state;
	struct evl_store *st = open_store(dir, false, 2);
	struct writer_arg a[3];
	uint64_t uids[3];
	char trash[4400];
	struct stat sb;
	uint64_t deadline;

	uids[0] = create(st, "a");
	uids[1] = create(st, "b");
	uids[2] = create(st, "c");
	for (int i = 0; i < 3; i++) {
		a[i] = (struct writer_arg){ st, uids[i], i, 3000, 0 };
		assert_null(writer_main(&a[i]));
	}
	check_views(st, dir);
	assert_int_equal(evl_task_delete(st, "b"), 0);
	assert_int_equal(evl_task_delete(st, "b"), -ENOENT);
	assert_int_equal(task_uid(st, "b"), 0);
	/* views drop b at once, whether or not its entries are purged yet */
	check_views(st, dir);
	/* a new task of the same name starts empty */
	uids[1] = create(st, "b");
	{
		struct evl_task_info info;

		assert_int_equal(evl_task_stat(st, uids[1], &info), 0);
		assert_int_equal(info.size, 0);
	}
	a[1] = (struct writer_arg){ st, uids[1], 1, 10, 0 };
	assert_null(writer_main(&a[1]));
	check_views(st, dir);
	/* the purge finishes in the background and removes the files */
	snprintf(trash, sizeof(trash), "%s/tasks/.trash-%016llx", dir, 2ull);
	deadline = tu_now_ms() + 120000;
	while (stat(trash, &sb) == 0 && tu_now_ms() < deadline)
		usleep(2000);
	assert_int_not_equal(stat(trash, &sb), 0);
	check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
	st = open_store(dir, false, 2);
	check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
}

/* ---- crashes ---- */

/*
 * The child's workload: 4 writers on 3 tasks, one of them checkpointing
 * now and then; every acknowledged event is reported on @ack_fd as "w i".
 */
struct crash_arg {
	struct evl_store *st;
	uint64_t uid;
	int id, ack_fd;
	long freeze_after;	/* power loss after this many acks (0: never) */
	const char *dump;
};

static long acks_total;
static pthread_mutex_t acks_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int acked_now[4];		/* per writer, in the child */

/*
 * Group commit: acknowledged is not durable.  Make what was acknowledged
 * before now durable (@sync: a barrier, else a checkpoint) and tell the
 * parent with "D a0 a1 a2 a3".  Returns 0 or exits.
 */
static void durable_mark(struct crash_arg *a, bool barrier)
{
	int snap[4], k;
	char msg[80];

	for (int w = 0; w < 4; w++)
		snap[w] = atomic_load(&acked_now[w]);
	if (barrier ? evl_store_sync(a->st) : evl_store_checkpoint(a->st))
		_exit(6);
	k = snprintf(msg, sizeof(msg), "D %d %d %d %d\n", snap[0], snap[1], snap[2], snap[3]);
	if (write(a->ack_fd, msg, k) != k)
		_exit(5);
}

static void *crash_writer(void *arg)
{
	struct crash_arg *a = arg;
	struct evl_writer *w;
	char line[200], ack[32];

	if (evl_writer_open(a->st, a->uid, &w))
		_exit(3);
	for (int i = 0;; i++) {
		int n = event_line(line, sizeof(line), (a->id * 3 + i) % 11, a->id, i, i % 60);
		int k;

		if (evl_writer_write(w, line, n))
			_exit(4);
		k = snprintf(ack, sizeof(ack), "%d %d\n", a->id, i);
		if (write(a->ack_fd, ack, k) != k)
			_exit(5);
		atomic_store(&acked_now[a->id], i + 1);
		if (a->id == 0 && i % 300 == 299)
			durable_mark(a, false);
		else if (a->id == 1 && i % 37 == 36)
			durable_mark(a, true);
		if (a->freeze_after) {
			bool done;

			pthread_mutex_lock(&acks_lock);
			if (++acks_total == a->freeze_after)
				fio_freeze_and_dump(a->dump);	/* all I/O stops here */
			done = acks_total >= a->freeze_after;
			pthread_mutex_unlock(&acks_lock);
			if (done)
				_exit(0);
		}
	}
	return NULL;
}

/* What the churn thread reports (read_acks), and what the checks expect. */
struct churn {
	int created;	/* d0 .. d<created - 1> were created */
	int filled;	/* d0 .. d<filled - 1> got their CHURN_EVENTS, made durable */
	int deleted;	/* d0 .. d<deleted - 1> were deleted */
	int kept;	/* events of r made durable */
};
#define CHURN_EVENTS 3
#define CHURN_KEEP 5	/* r's retention: keep-last */
static struct churn churn;

/* Tell the parent "@tag @n" (a churn step that is durable now). */
static void churn_say(int fd, char tag, int n)
{
	if (dprintf(fd, "%c %d\n", tag, n) < 0)
		_exit(5);
}

/*
 * The churn thread: tasks d<k> are created, get a few events and are
 * deleted again (directory entries made and removed, unlinks of the
 * trash), and task r grows and has its head dropped now and then (log
 * rewrites renamed into place).  Every step it reports is durable: its
 * events are followed by a barrier, creates and deletes are durable on
 * return.
 */
static void *churn_main(void *arg)
{
	struct crash_arg *a = arg;
	struct evl_writer *rw;
	uint64_t ev, by;
	int ri = 0;

	if (evl_writer_open(a->st, task_uid(a->st, "r"), &rw))
		_exit(3);
	for (int k = 0;; k++) {
		char name[32], line[200];
		struct evl_writer *w;

		snprintf(name, sizeof(name), "d%d", k);
		if (evl_task_create(a->st, name))
			_exit(7);
		churn_say(a->ack_fd, 'C', k + 1);
		if (evl_writer_open(a->st, task_uid(a->st, name), &w))
			_exit(3);
		for (int i = 0; i < CHURN_EVENTS; i++) {
			int n = event_line(line, sizeof(line), i, 4, i, i * 7);

			if (evl_writer_write(w, line, n))
				_exit(4);
		}
		evl_writer_close(w);
		for (int i = 0; i < 2; i++, ri++) {
			int n = event_line(line, sizeof(line), ri % 3, 5, ri, ri % 50);

			if (evl_writer_write(rw, line, n))
				_exit(4);
		}
		if (evl_store_sync(a->st))
			_exit(6);
		churn_say(a->ack_fd, 'E', k + 1);
		churn_say(a->ack_fd, 'R', ri);
		if (k > 0) {
			snprintf(name, sizeof(name), "d%d", k - 1);
			if (evl_task_delete(a->st, name))
				_exit(7);
			churn_say(a->ack_fd, 'X', k);
		}
		/* the retention of a compaction, on this thread (no compactor to join at the cut) */
		if (k % 4 == 3 && store_retain(a->st, task_uid(a->st, "r"), CHURN_KEEP, 0, 0, &ev, &by))
			_exit(8);
	}
	return NULL;
}

static void child_run(const char *dir, int ack_fd, bool sync, long freeze_after, const char *dump)
{
	static const char *const names[] = { "x", "y", "z", "r" };
	struct evl_options o;
	struct evl_store *st;
	struct crash_arg a[5];
	pthread_t th[5];

	if (freeze_after) {
		char stash[4400];

		fio_install();
		snprintf(stash, sizeof(stash), "%s.stash", dir);
		fio_track_dirs(stash);
	}
	evl_options_default(&o);
	o.commit_sync = sync;
	o.commit_ms = 3;
	o.segment_bytes = 32 << 10;
	if (evl_store_open(dir, &o, &st))
		_exit(2);
	for (int i = 0; i < 4; i++)
		if (evl_task_create(st, names[i]) && evl_task_create(st, names[i]) != -EEXIST)
			_exit(2);
	for (int i = 0; i < 4; i++) {
		struct evl_task_info info;

		evl_task_lookup(st, names[i % 3], &info);
		a[i] = (struct crash_arg){ st, info.uid, i, ack_fd, freeze_after, dump };
		pthread_create(&th[i], NULL, crash_writer, &a[i]);
	}
	if (freeze_after) {	/* power loss: directory changes too (kill -9 has torture.py) */
		a[4] = (struct crash_arg){ st, 0, 4, ack_fd, freeze_after, dump };
		pthread_create(&th[4], NULL, churn_main, &a[4]);
	}
	for (;;)
		pause();
}

/*
 * Task @name's events, all of writer @w, numbered from *@first (-1: none)
 * up without a gap; returns how many.  Fails on anything else.
 */
static int task_run(struct evl_store *st, uint64_t uid, int w, int *first, const char *what,
		    long n)
{
	size_t len;
	char *log = read_all(st, uid, NULL, &len), *p, *end;
	int count = 0, next = -1;

	*first = -1;
	for (p = log, end = log + len; p < end;) {
		char *nl = memchr(p, '\n', end - p);
		int ty, ww, i;

		if (!nl || sscanf(p, "{\"type\":\"ty%d\",\"w\":%d,\"i\":%d", &ty, &ww, &i) != 3 ||
		    ww != w || (next >= 0 && i != next))
			fail_msg("%s %ld: writer %d's task: event %d is wrong: %.60s", what, n, w,
				 count, p);
		if (*first < 0)
			*first = i;
		next = i + 1;
		count++;
		p = nl + 1;
	}
	free(log);
	return count;
}

/* The churn thread's steps that were durable are there (see churn_main). */
static void verify_churn(struct evl_store *st, const char *what, long n)
{
	uint64_t uid;
	int first, got;

	for (int k = 0; k <= churn.created; k++) {
		char name[32];

		snprintf(name, sizeof(name), "d%d", k);
		uid = task_uid(st, name);
		if (k < churn.deleted && uid)
			fail_msg("%s %ld: task %s was deleted, and is back", what, n, name);
		/* d<deleted> may be gone: its delete may have been journaled, not acknowledged */
		if (k > churn.deleted && k < churn.created && !uid)
			fail_msg("%s %ld: task %s was created, and is gone", what, n, name);
		if (!uid)
			continue;
		got = task_run(st, uid, 4, &first, what, n);
		if ((got && first != 0) || (k < churn.filled && got != CHURN_EVENTS))
			fail_msg("%s %ld: task %s: %d events from %d", what, n, name, got, first);
	}
	uid = task_uid(st, "r");
	if (!uid)
		return;	/* a kill -9 before the workload made it */
	/* retention drops a head only, and never below the newest CHURN_KEEP */
	got = task_run(st, uid, 5, &first, what, n);
	if ((got ? first + got : 0) < churn.kept || (first > 0 && got < CHURN_KEEP))
		fail_msg("%s %ld: task r: events %d to %d, %d were durable", what, n, first,
			 first + got - 1, churn.kept);
}

/* After a reopen, nothing of a deleted task or an unfinished rewrite is left. */
static void check_no_leftovers(const char *dir, const char *what, long n)
{
	char path[4400];
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "%s/tasks", dir);
	assert_non_null(d = opendir(path));
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, ".trash-", 7))
			fail_msg("%s %ld: tasks/%s left behind", what, n, de->d_name);
	closedir(d);
	snprintf(path, sizeof(path), "%s/tasks/.rewrite", dir);
	if ((d = opendir(path))) {
		while ((de = readdir(d)))
			if (de->d_name[0] != '.')
				fail_msg("%s %ld: tasks/.rewrite/%s left behind", what, n,
					 de->d_name);
		closedir(d);
	}
}

/*
 * Every acknowledged event present exactly once; nothing else, nothing torn.
 * The churn's durable steps too, and no leftovers.  @what and @n name the
 * run in a failure ("kill -9, cycle" 3).
 */
static void verify_acked(const char *dir, int acked[4], const char *what, long n)
{
	static const char *const names[] = { "x", "y", "z" };
	struct evl_store *st = open_store(dir, false, 2);
	int found[4] = { 0 }, dup = 0;

	for (int t = 0; t < 3; t++) {
		uint64_t uid = task_uid(st, names[t]);
		size_t len;
		char *log, *p, *end;
		int next[4] = { 0 };

		if (!uid)
			continue;	/* created by a child that died before the ack */
		log = read_all(st, uid, NULL, &len);
		for (p = log, end = log + len; p < end;) {
			char *nl = memchr(p, '\n', end - p);
			int ty, w, i;

			assert_non_null(nl);
			assert_int_equal(sscanf(p, "{\"type\":\"ty%d\",\"w\":%d,\"i\":%d", &ty, &w, &i), 3);
			assert_true(w >= 0 && w < 4 && w % 3 == t);
			if (i != next[w])
				dup++;
			next[w] = i + 1;
			found[w]++;
			p = nl + 1;
		}
		free(log);
	}
	if (dup)	/* in order, no duplicate, no gap */
		fail_msg("%s %ld: %d events out of order, duplicated or after a gap", what, n,
			 dup);
	for (int w = 0; w < 4; w++)
		if (found[w] < acked[w])
			fail_msg("%s %ld: writer %d: %d events acknowledged, %d present", what, n,
				 w, acked[w], found[w]);
	verify_churn(st, what, n);
	check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
	check_no_leftovers(dir, what, n);
}

/* Durable marks seen by read_acks: durable[w] = events of writer w made durable. */
static int durable[4];

/* Read acks from @fd until EOF; acked[w] = highest i + 1. */
static void read_acks(int fd, int acked[4], long stop_after, pid_t kill_pid)
{
	char buf[4096], carry[128] = "";
	long seen = 0;
	ssize_t n;

	memset(&churn, 0, sizeof(churn));
	while ((n = read(fd, buf, sizeof(buf) - 1)) > 0) {
		char *p;

		buf[n] = '\0';
		for (p = buf; *p;) {
			char *nl = strchr(p, '\n');
			char line[192];
			int w, i;

			if (!nl) {
				snprintf(carry, sizeof(carry), "%.60s", p);
				break;
			}
			*nl = '\0';
			snprintf(line, sizeof(line), "%.60s%.60s", carry, p);
			carry[0] = '\0';
			if (line[0] == 'D') {
				int d[4];

				if (sscanf(line, "D %d %d %d %d", &d[0], &d[1], &d[2], &d[3]) == 4)
					for (int k = 0; k < 4; k++)
						durable[k] = d[k] > durable[k] ? d[k] : durable[k];
			} else if (line[0] && strchr("CERX", line[0]) && sscanf(line + 1, "%d", &i) == 1) {
				int *c = line[0] == 'C' ? &churn.created : line[0] == 'E' ?
					 &churn.filled : line[0] == 'R' ? &churn.kept : &churn.deleted;

				*c = i > *c ? i : *c;
			} else if (sscanf(line, "%d %d", &w, &i) == 2 && w >= 0 && w < 4 &&
				   i + 1 > acked[w]) {
				acked[w] = i + 1;
			}
			p = nl + 1;
			if (kill_pid && ++seen == stop_after)
				kill(kill_pid, SIGKILL);
		}
	}
}

static int iterations(const char *var, int dflt)
{
	const char *s = getenv(var);

	return s && atoi(s) > 0 ? atoi(s) : dflt;
}

static void kill9_loses_nothing_acknowledged(void **state)
{
	const char *dir = *state;
	int cycles = iterations("EVL_CRASH_CYCLES", 6);
	unsigned seed = 1234;
	int acked[4] = { 0 };

	for (int c = 0; c < cycles; c++) {
		int fds[2], status;
		pid_t pid;

		assert_int_equal(pipe(fds), 0);
		pid = fork();
		if (pid == 0) {
			close(fds[0]);
			child_run(dir, fds[1], false, 0, NULL);
		}
		close(fds[1]);
		read_acks(fds[0], acked, 200 + rand_r(&seed) % 1500, pid);
		close(fds[0]);
		waitpid(pid, &status, 0);
		assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
		verify_acked(dir, acked, "kill -9, cycle", c);
		/* writers start over at i = 0 in the next cycle's log: reset */
		tu_rmrf(dir);
		mkdir(dir, 0700);
		memset(acked, 0, sizeof(acked));
	}
}

/* Make @work a fresh copy of store @pristine (each crash or fault run starts from one). */
static void copy_store(const char *pristine, const char *work)
{
	char cmd[3 * 4200 + 64];	/* three paths of up to 4200 */

	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && cp -a '%s' '%s'", work, pristine, work);
	assert_int_equal(system(cmd), 0);
}

/* Copy store @dir and the synced lengths in @dump to @keep/@name, for a look after a failure. */
static void keep_copy(const char *keep, const char *dir, const char *dump, const char *name)
{
	char to[4200], cmd[2 * 4200 + 64];

	snprintf(to, sizeof(to), "%s/%s", keep, name);
	mkdir(keep, 0700);
	copy_store(dir, to);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s.dump'", dump, to);
	assert_int_equal(system(cmd), 0);
}

/* Power cuts that undid the index's last commit (fio_undo_index_commit). */
static long index_undone;

/*
 * Run the crash workload on store @dir (@sync: commit=sync) until @after
 * acknowledgements, then lose power: every file keeps what was fsynced and
 * a random part of the rest (@seed), and half the time the index loses its
 * last commit if it was not synced; @how says what else the cut may do
 * (fio_apply_powerloss: holes in unsynced tails, directory changes
 * undone).  @acked gets the acknowledged counts, durable[] what was made
 * durable, *@loss what the cut did (added).  With @keep, the store is
 * copied there before and after the cut (keep_copy).
 */
static void power_cut(const char *dir, bool sync, long after, unsigned seed, unsigned how,
		      const char *keep, int acked[4], struct fio_loss *loss)
{
	char dump[4400], stash[4400];
	int fds[2], status;
	pid_t pid;

	snprintf(dump, sizeof(dump), "%s.dump", dir);
	snprintf(stash, sizeof(stash), "%s.stash", dir);
	memset(durable, 0, sizeof(durable));
	memset(acked, 0, 4 * sizeof(*acked));
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	if (pid == 0) {
		close(fds[0]);
		child_run(dir, fds[1], sync, after, dump);
	}
	close(fds[1]);
	read_acks(fds[0], acked, 0, 0);
	close(fds[0]);
	waitpid(pid, &status, 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	if (keep)
		keep_copy(keep, dir, dump, "before");
	assert_int_equal(fio_apply_powerloss(dump, seed, how, loss), 0);
	if (rand_r(&seed) % 2) {
		char mdb[4400];
		int rc;

		snprintf(mdb, sizeof(mdb), "%s/index/data.mdb", dir);
		rc = fio_undo_index_commit(dump, mdb);
		assert_true(rc >= 0);	/* else the seam no longer knows LMDB's meta pages */
		index_undone += rc;
	}
	if (keep)
		keep_copy(keep, dir, dump, "after");
	unlink(dump);
	tu_rmrf(stash);
}

/*
 * Power loss at a random moment: every file loses a random part of what
 * was not fsynced (a torn tail).  With commit=sync everything acknowledged
 * survives; with group commit (every other cycle) what a barrier or a
 * checkpoint made durable does.  Nothing torn or duplicated is visible.
 * EVL_POWERLOSS_CYCLES=N for the long run, EVL_POWERLOSS_SEED=S to vary;
 * EVL_POWERLOSS_KEEP=DIR keeps the last cycle's store before and after the
 * cut: DIR/before and DIR/after, each with the synced lengths in a .dump.
 */
static void power_loss_keeps_what_was_durable(void **state)
{
	const char *dir = *state;
	int cycles = iterations("EVL_POWERLOSS_CYCLES", 12);
	unsigned seed = iterations("EVL_POWERLOSS_SEED", 99);
	const char *keep = getenv("EVL_POWERLOSS_KEEP");
	struct fio_loss loss = { 0 };

	for (int c = 0; c < cycles; c++) {
		int acked[4];
		long after = 100 + rand_r(&seed) % 1200, undone = index_undone;
		bool sync = c % 2 == 0;
		/* a torn tail or pages in any order; directory entries kept or not */
		unsigned how = (c / 2) % 4;

		power_cut(dir, sync, after, seed + c, how, keep, acked, &loss);
		if (getenv("EVL_POWERLOSS_VERBOSE"))
			print_message("power loss: cycle %d, commit=%s, %s%s, after %ld acks, durable "
				      "%d %d %d %d, acked %d %d %d %d, churn %d/%d/%d/%d%s\n", c,
				      sync ? "sync" : "group",
				      how & FIO_LOSS_HOLES ? "holes" : "torn tails",
				      how & FIO_LOSS_DIRS ? ", entries lost" : "", after, durable[0],
				      durable[1], durable[2], durable[3], acked[0], acked[1],
				      acked[2], acked[3], churn.created, churn.filled, churn.deleted,
				      churn.kept, index_undone > undone ? ", index commit undone" : "");
		verify_acked(dir, sync ? acked : durable, sync ? "power loss, commit=sync, cycle" :
			     "power loss, group commit, cycle", c);
		tu_rmrf(dir);
		mkdir(dir, 0700);
	}
	print_message("power loss: %d cycles (half commit=sync, half group with barriers), "
		      "%ld files cut short, %ld unsynced pages zeroed, %ld directory changes "
		      "undone, %ld index commits undone\n", cycles, loss.files_cut,
		      loss.pages_holed, loss.dir_undone, index_undone);
}

/*
 * Journal one event to task x (@ev) and leave it unapplied, as a process
 * gone before its applier ran: a child under the seam's boot (so that the
 * next open, in the real boot, trusts no file past a checkpoint).
 */
static void journal_unapplied(const char *dir, const char *ev)
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		struct evl_options o;
		struct evl_store *st;
		struct evl_writer *w;

		fio_install();
		evl_options_default(&o);
		o.commit_sync = true;
		o.hold_apply = true;	/* journaled and durable, not applied */
		if (evl_store_open(dir, &o, &st) || evl_writer_open(st, task_uid(st, "x"), &w) ||
		    write_str(w, ev))
			_exit(2);
		_exit(0);	/* no close: it would apply */
	}
	waitpid(pid, &status, 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Append @len bytes of @fill (NULL: zeros) to task x's file @file. */
static void append_to(const char *dir, const char *file, const void *fill, size_t len)
{
	char path[4400], zeros[64] = { 0 };
	int fd;

	assert_true(len <= sizeof(zeros));
	snprintf(path, sizeof(path), "%s/tasks/x/%s", dir, file);
	assert_true((fd = open(path, O_WRONLY | O_APPEND)) >= 0);
	assert_int_equal(write(fd, fill ? fill : zeros, len), (ssize_t)len);
	close(fd);
}

/*
 * A power loss after the applier wrote a batch for a task that was clean
 * (not dirty) and before the index commit that made it dirty was durable:
 * the task's files are longer than the index says, and where the lost
 * batch's pages were not kept they are holes.  That is no damage: the
 * replay writes the same records there, and every event is served.  The
 * same length of other bytes (a line appended outside the store) still
 * sets the task aside, its event kept in events.unapplied.
 */
static void replay_after_power_loss_fills_holes(void **state)
{
	static const char ev[] = "{\"type\":\"a\",\"i\":3}\n";
	static const char other[] = "{\"type\":\"b\",\"j\":9}\n";
	const char *dir = *state;
	char path[4400], *log;
	struct evl_store *st;
	struct evl_writer *w;
	struct evl_stats s;
	struct stat sb;
	size_t len;

	_Static_assert(sizeof(ev) == sizeof(other), "the same length");
	for (int holes = 1; holes >= 0; holes--) {
		st = open_store(dir, true, 2);
		create(st, "x");
		assert_int_equal(evl_writer_open(st, task_uid(st, "x"), &w), 0);
		for (int i = 0; i < 3; i++) {
			char line[64];

			snprintf(line, sizeof(line), "{\"type\":\"a\",\"i\":%d}\n", i);
			assert_int_equal(write_str(w, line), 0);
		}
		assert_int_equal(evl_writer_close(w), 0);
		assert_int_equal(evl_store_close(st), 0);	/* checkpointed: x is clean */

		journal_unapplied(dir, ev);
		append_to(dir, "events", holes ? NULL : other, sizeof(ev) - 1);
		append_to(dir, "events.meta", NULL, TASKLOG_REC);

		st = open_store(dir, true, 2);
		evl_store_stats(st, &s);
		snprintf(path, sizeof(path), "%s/tasks/x/events.unapplied", dir);
		if (holes) {
			assert_int_equal(s.tasks_aside, 0);
			assert_int_equal(s.events_unapplied, 0);
			assert_int_equal(task_events(st, "x"), 4);
			log = read_all(st, task_uid(st, "x"), NULL, &len);
			assert_int_equal(len, 3 * (sizeof(ev) - 1) + sizeof(ev) - 1);
			assert_memory_equal(log + len - (sizeof(ev) - 1), ev, sizeof(ev) - 1);
			free(log);
			check_views(st, dir);
			assert_true(stat(path, &sb) && errno == ENOENT);
		} else {
			assert_int_equal(s.tasks_aside, 1);
			assert_int_equal(s.events_unapplied, 1);
			assert_int_equal(stat(path, &sb), 0);
			assert_int_equal(sb.st_size, sizeof(ev) - 1);
		}
		assert_int_equal(evl_store_close(st), 0);
		tu_rmrf(dir);
		mkdir(dir, 0700);
	}
}

/*
 * Review (rev-damage): an event of a task set aside is put in
 * events.unapplied once.  The open replays a journaled, unapplied event of
 * task x whose log was appended to outside the store; a crash at each I/O
 * step of that open, then a clean open: the event must be in
 * events.unapplied exactly once (put_aside writes it before the batch's
 * index commit, and the replay after the crash writes it again).
 */
static void append_n(struct evl_store *st, const char *name, int from, int n);

static void aside_event_kept_once_across_a_crash(void **state)
{
	static const char ev[] = "{\"type\":\"a\",\"i\":3}\n";
	static const char other[] = "{\"type\":\"b\",\"j\":9}\n";
	const char *dir = *state;
	int worst = 0, worst_at = -1, foreign_lost_at = -1;

	for (long nth = 0; nth < 400; nth++) {
		struct evl_store *st;
		char path[4400], buf[4096];
		int status, copies = 0, fd;
		ssize_t n;
		pid_t pid;

		st = open_store(dir, true, 2);
		create(st, "x");
		append_n(st, "x", 0, 3);
		assert_int_equal(evl_store_close(st), 0);
		journal_unapplied(dir, ev);
		append_to(dir, "events", other, sizeof(other) - 1);

		pid = fork();
		if (pid == 0) {
			struct evl_options o;

			fio_install();
			fio_crash_at(nth, 42);
			evl_options_default(&o);
			o.commit_sync = true;
			if (evl_store_open(dir, &o, &st))
				_exit(3);
			evl_store_close(st);
			_exit(0);
		}
		waitpid(pid, &status, 0);
		assert_true(WIFEXITED(status));
		st = open_store(dir, true, 2);
		evl_store_close(st);
		snprintf(path, sizeof(path), "%s/tasks/x/events.unapplied", dir);
		fd = open(path, O_RDONLY);
		n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : 0;
		if (fd >= 0)
			close(fd);
		buf[n > 0 ? n : 0] = '\0';
		for (char *p = buf; (p = strstr(p, ev)); p++)
			copies++;
		{
			/* the line appended outside the store: still in the log or kept beside it */
			char all[8192];
			int k = 0;

			snprintf(path, sizeof(path), "%s/tasks/x/events", dir);
			fd = open(path, O_RDONLY);
			n = fd >= 0 ? read(fd, all, sizeof(all) - 1) : 0;
			if (fd >= 0)
				close(fd);
			all[n > 0 ? n : 0] = '\0';
			if (strstr(all, other) || strstr(buf, other))
				k = 1;
			if (!k && foreign_lost_at < 0)
				foreign_lost_at = nth;
		}
		if (getenv("REV_VERBOSE"))
			print_message("nth %ld: exit %d, %d copies\n", nth, WEXITSTATUS(status), copies);
		/*
		 * Never lost; a crash between put_aside's write and the batch's
		 * index commit makes the replay put it there again (README:
		 * "after a crash one may be there twice").  Not three times.
		 */
		if ((copies < 1 || copies > 2) && (copies > worst || !copies)) {
			worst = copies;
			worst_at = nth;
		}
		tu_rmrf(dir);
		mkdir(dir, 0700);
		if (WEXITSTATUS(status) == 0)
			break;	/* the open ran through: every step tried */
	}
	if (foreign_lost_at >= 0)
		print_message("a crash at step %d of the open: the line appended outside the store "
			      "is gone (cut by the next open's recovery)\n", foreign_lost_at);
	if (worst_at >= 0)
		fail_msg("a crash at step %d of the open: the event is %d times in events.unapplied",
			 worst_at, worst);
	assert_int_equal(foreign_lost_at, -1);
}

/*
 * Poll @st's stats until the applier has settled: everything written is
 * applied, and, if @aside, a task is set aside with one event put in its
 * events.unapplied.  The condition itself is polled, not a proxy: a set
 * aside is in the stats before its events are counted unapplied (at
 * dequeue), and a busy machine takes its time.  True when it holds.
 */
static bool wait_settled(struct evl_store *st, bool aside, struct evl_stats *s)
{
	uint64_t deadline = tu_now_ms() + 300000;

	for (;;) {
		bool done;

		evl_store_stats(st, s);
		done = s->applied_lsn == s->written_lsn && !s->pending_events;
		if (aside)
			done = done && s->tasks_aside == 1 && s->events_unapplied == 1;
		if (done || tu_now_ms() >= deadline)
			return done;
		usleep(1000);
	}
}

/*
 * Review (rev-damage): a kill -9 after a task was set aside for a line
 * appended to its log outside the store.  apply_append adds the task to
 * the dirty set (index_dirty_add) before tasklog_write finds the foreign
 * bytes (-EUCLEAN), and the batch commits that; the next open's recovery
 * (dirty_cb) then cuts the log back to the index's length, deleting the
 * foreign line with an info message, and the task is no longer found
 * damaged.  fsck --repair would have moved the line to events.unapplied.
 */
static void foreign_line_survives_a_kill_after_set_aside(void **state)
{
	static const char other[] = "{\"type\":\"b\",\"j\":9}\n";
	const char *dir = *state;
	char path[4400], all[8192];
	struct evl_store *st;
	int status, fd;
	ssize_t n;
	pid_t pid;

	st = open_store(dir, true, 2);
	create(st, "x");
	append_n(st, "x", 0, 3);
	assert_int_equal(evl_store_close(st), 0);
	pid = fork();
	if (pid == 0) {
		struct evl_stats s;

		st = open_store(dir, true, 2);
		append_to(dir, "events", other, sizeof(other) - 1);
		append_n(st, "x", 3, 1);	/* acknowledged, then set aside by the applier */
		_exit(wait_settled(st, true, &s) ? 0 : 3);	/* kill -9 */
	}
	waitpid(pid, &status, 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	st = open_store(dir, true, 2);
	assert_int_equal(evl_store_close(st), 0);
	snprintf(path, sizeof(path), "%s/tasks/x/events", dir);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, all, sizeof(all) - 1);
	close(fd);
	all[n > 0 ? n : 0] = '\0';
	/* kept: in the log still, or moved beside it (the open's settle_rest), once */
	snprintf(path, sizeof(path), "%s/tasks/x/events.unapplied", dir);
	fd = open(path, O_RDONLY);
	if (fd >= 0) {
		ssize_t m = read(fd, all + (n > 0 ? n : 0), sizeof(all) - 1 - (n > 0 ? n : 0));

		close(fd);
		all[(n > 0 ? n : 0) + (m > 0 ? m : 0)] = '\0';
	}
	{
		const char *hit = strstr(all, other);

		if (!hit)
			fail_msg("the line appended outside the store was cut from x's log by the "
				 "open after the kill, and is not in events.unapplied either");
		if (strstr(hit + 1, other))
			fail_msg("the line appended outside the store is kept twice");
	}
}

/* ---- injected faults ---- */

/* Write event i of writer 0 to @w and report it on @fd when acknowledged.  Returns the write's result. */
static int sticky_write(struct evl_writer *w, int i, int fd)
{
	char line[200];
	int n = event_line(line, sizeof(line), i % 5, 0, i, i % 70), rc;

	rc = evl_writer_write(w, line, n);
	if (rc == 0 && dprintf(fd, "0 %d\n", i) < 0)
		_exit(5);
	return rc;
}

/*
 * The child of failed_fsync_keeps_the_journal: task x gets 120 events
 * and a checkpoint, then 150 more; the next fsync of a path ending in
 * @fail fails (at the checkpoint, or at task n's creation).  From then on
 * writes must get EIO and no checkpoint may succeed.  Then the power goes.
 * Exit codes: 0 as expected, 10 + step where it was not.
 */
static void sticky_child(const char *dir, const char *fail, int fd, const char *dump)
{
	struct evl_options o;
	struct evl_store *st;
	struct evl_writer *w;
	struct evl_stats s0, s1;
	char stash[4400];
	int i = 0, rc;

	fio_install();
	snprintf(stash, sizeof(stash), "%s.stash", dir);
	fio_track_dirs(stash);
	evl_options_default(&o);
	o.commit_sync = true;
	o.segment_bytes = 8 << 10;	/* the checkpoint's trim would drop segments */
	if (evl_store_open(dir, &o, &st) || evl_task_create(st, "x") ||
	    evl_writer_open(st, task_uid(st, "x"), &w))
		_exit(2);
	for (; i < 120; i++)
		if (sticky_write(w, i, fd))
			_exit(3);
	if (evl_store_checkpoint(st))
		_exit(4);
	for (; i < 270; i++)
		if (sticky_write(w, i, fd))
			_exit(3);
	evl_store_stats(st, &s0);
	fio_fail_path(FIO_SYNC, fail, EIO);
	if (!strcmp(fail, "/tasks/n"))
		rc = evl_task_create(st, "n") == 0 ? evl_store_checkpoint(st) : -EIO;
	else
		rc = evl_store_checkpoint(st);
	if (rc != -EIO)
		_exit(10);
	/* refused until remounted, however healthy the disk looks now */
	if (sticky_write(w, i++, fd) != -EIO)
		_exit(11);
	if (evl_store_checkpoint(st) != -EIO)
		_exit(12);
	evl_store_stats(st, &s1);
	if (!s1.error || s1.ckpt_lsn != s0.ckpt_lsn)
		_exit(13);
	fio_freeze_and_dump(dump);
	_exit(0);
}

/*
 * A5: an fsync that fails in a checkpoint (task log, sidecar, index) or
 * when a task is created is sticky.  The kernel may have dropped the pages
 * it could not write and marked them clean, so a later fsync would succeed
 * without writing them: the store must refuse writes, never trim the
 * journal or record a checkpoint again, and the next open must rewrite the
 * task files past their checkpoint from the journal rather than trust
 * them.  The seam zeroes the dropped bytes at the power cut.
 */
static void failed_fsync_keeps_the_journal(void **state)
{
	static const char *const fails[] = {
		"/tasks/x/events", "/tasks/x/events.meta", "/index/data.mdb", "/tasks/n",
	};
	const char *dir = *state;
	struct fio_loss loss = { 0 };
	char dump[4400], stash[4400];

	snprintf(dump, sizeof(dump), "%s.dump", dir);
	snprintf(stash, sizeof(stash), "%s.stash", dir);
	for (size_t k = 0; k < sizeof(fails) / sizeof(*fails); k++) {
		int fds[2], status, acked[4] = { 0 };
		long dropped = loss.dropped;
		pid_t pid;

		assert_int_equal(pipe(fds), 0);
		pid = fork();
		if (pid == 0) {
			close(fds[0]);
			sticky_child(dir, fails[k], fds[1], dump);
		}
		close(fds[1]);
		read_acks(fds[0], acked, 0, 0);
		close(fds[0]);
		waitpid(pid, &status, 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			fail_msg("fsync of %s failing: the child ended with status %d", fails[k],
				 status);
		assert_int_equal(acked[0], 270);
		assert_int_equal(fio_apply_powerloss(dump, 7 + k, 0, &loss), 0);
		if (k < 2)	/* task files: the pages the checkpoint wrote were dropped */
			assert_true(loss.dropped > dropped);
		verify_acked(dir, acked, fails[k], 0);
		unlink(dump);
		tu_rmrf(stash);
		tu_rmrf(dir);
		mkdir(dir, 0700);
	}
}

/* ---- faults at every I/O call ---- */

static void wait_compaction(struct evl_store *st, struct evl_compact_status *cs);

#define FAULT_PRISTINE 100	/* events of writer 0 in task f before each run */
#define FAULT_KEEP 110		/* the run's retention: drops 20 of them, none of its own */

static bool fault_ok(int rc, int err)
{
	return rc == 0 || rc == -err || rc == -EIO;
}

/* Write event i of writer 1 to @w; note it in @acked if acknowledged.  Checks the errno. */
static int fault_write(struct evl_writer *w, int i, int err, bool *acked)
{
	char line[200];
	int n = event_line(line, sizeof(line), i % 3, 1, i, i % 40);
	int rc = evl_writer_write(w, line, n);

	if (!fault_ok(rc, err))
		fail_msg("write %d: %d (%s)", i, rc, strerror(-rc));
	if (rc == 0 && acked)
		acked[i] = true;
	return rc;
}

/*
 * One run on a fresh copy of @pristine: call @nth (from the first after
 * open; -1: none) of @op fails with @err while the store creates, writes,
 * reads, checkpoints, deletes, compacts with retention and syncs.  Then,
 * with the fault gone and without reopening: writes, a compaction and a
 * checkpoint succeed, unless the store holds a sticky error (a failed
 * fsync or journal cut), in which case writes get EIO.  Reopened: every
 * acknowledged event is there once and in order, nothing partial, nothing
 * the retention did not drop is missing, a deleted task stays deleted, and
 * views equal the logs.  Returns the calls of @op the run made.
 */
static long fault_run(const char *pristine, const char *work, enum fio_op op, long nth, int err)
{
	struct evl_compact_args keep = { .keep_last = FAULT_KEEP };
	struct evl_compact_status cs;
	struct evl_writer *w;
	struct evl_store *st;
	struct evl_stats stats;
	bool acked[64] = { false }, g_deleted = false;
	char buf[8192];
	enum fio_op count_op;
	long base, calls;
	int rc;

	copy_store(pristine, work);
	fio_install();
	st = open_store(work, false, 2);
	/* a truncate runs only to cut a failed write back: fail the write, then the cut */
	count_op = op == FIO_TRUNC ? FIO_WRITE : op;
	base = fio_count(count_op);
	if (nth >= 0 && op == FIO_TRUNC) {
		fio_fail(FIO_WRITE, nth, err, false);
		fio_fail(FIO_TRUNC, 0, err, false);
	} else if (nth >= 0) {
		fio_fail(op, nth, err, false);
	}

	rc = evl_task_create(st, "g");
	assert_true(fault_ok(rc, err));
	assert_int_equal(evl_writer_open(st, task_uid(st, "f"), &w), 0);
	for (int i = 0; i < 30; i++)
		fault_write(w, i, err, acked);
	for (uint64_t off = 0;; off += rc) {
		rc = evl_task_read(st, task_uid(st, "f"), off, buf, sizeof(buf));
		assert_true(rc >= 0 || rc == -err || rc == -EIO);
		if (rc <= 0)
			break;
	}
	assert_true(fault_ok(evl_store_checkpoint(st), err));
	if (task_uid(st, "g")) {
		struct evl_writer *wg;

		assert_int_equal(evl_writer_open(st, task_uid(st, "g"), &wg), 0);
		for (int i = 0; i < 10; i++)
			fault_write(wg, i, err, NULL);
		evl_writer_close(wg);
		rc = evl_task_delete(st, "g");
		assert_true(fault_ok(rc, err));
		g_deleted = rc == 0;
	}
	assert_int_equal(evl_compact_start(st, &keep), 0);
	wait_compaction(st, &cs);
	assert_true(fault_ok(cs.last_rc, err));
	for (int i = 30; i < 50; i++)
		fault_write(w, i, err, acked);
	assert_true(fault_ok(evl_store_sync(st), err));
	calls = fio_count(count_op) - base;
	fio_clear();

	evl_store_stats(st, &stats);
	if (stats.error) {
		/* refused until reopened */
		assert_int_equal(fault_write(w, 50, err, acked), -EIO);
	} else {
		/* resumed by itself: no remount */
		for (int i = 50; i < 55; i++)
			assert_int_equal(fault_write(w, i, err, acked), 0);
		if (task_uid(st, "g")) {
			assert_int_equal(evl_task_delete(st, "g"), 0);
			g_deleted = true;
		}
		assert_int_equal(evl_compact_start(st, &keep), 0);
		wait_compaction(st, &cs);
		assert_int_equal(cs.last_rc, 0);
		assert_int_equal(evl_store_checkpoint(st), 0);
	}
	evl_writer_close(w);
	rc = evl_store_close(st);
	assert_true(rc == 0 || stats.error);
	fio_uninstall();

	st = open_store(work, false, 2);
	{
		size_t len;
		char *log = read_all(st, task_uid(st, "f"), NULL, &len);
		int next0 = -1, last1 = -1, n0 = 0, n1 = 0;

		for (char *l = log, *nl; l < log + len; l = nl + 1) {
			int wr, i;

			nl = memchr(l, '\n', log + len - l);
			assert_non_null(nl);
			assert_int_equal(sscanf(l, "{\"type\":\"ty%*d\",\"w\":%d,\"i\":%d", &wr, &i), 2);
			if (wr == 0) {
				if (next0 < 0)
					next0 = i;	/* retention drops a head only */
				assert_int_equal(i, next0);
				next0++;
				n0++;
				continue;
			}
			assert_int_equal(wr, 1);
			assert_true(i > last1 && i < 64);	/* in order, once */
			while (++last1 < i)
				assert_false(acked[last1]);	/* no acknowledged one missing */
			n1++;
		}
		while (++last1 < 64)
			assert_false(acked[last1]);
		/* the pristine events end where they did; retention kept the newest KEEP */
		assert_int_equal(next0, FAULT_PRISTINE);
		assert_true(n0 == FAULT_PRISTINE || n0 >= FAULT_KEEP - n1);
		free(log);
	}
	if (g_deleted)
		assert_int_equal(task_uid(st, "g"), 0);
	check_views(st, work);
	assert_int_equal(evl_store_close(st), 0);
	return calls;
}

/* A kind of fault: calls of @op fail with @err. */
struct fault_kind {
	enum fio_op op;
	int err;
	const char *name;
};

/*
 * Which calls a sweep fails: every one, or every third (ASan) or eighth
 * (TSan), the sanitizer builds being slower; EVL_FAULT_STRIDE=N sets it.
 */
static long fault_stride(void)
{
	long stride = 1;

#if defined(__SANITIZE_THREAD__)
	stride = 8;
#elif defined(__SANITIZE_ADDRESS__)
	stride = 3;
#endif
	return iterations("EVL_FAULT_STRIDE", stride);
}

/*
 * Every call of each kind the workload makes fails in turn (a census run
 * counts them first), with the errno a full or failing disk gives; a
 * truncate, which runs only to cut back a failed journal write, fails
 * after one.  The sanitizer builds take fewer (fault_stride).
 */
static void faults_at_every_site(void **state)
{
	static const struct fault_kind kinds[] = {
		{ FIO_WRITE, ENOSPC, "write ENOSPC" }, { FIO_WRITE, EIO, "write EIO" },
		{ FIO_SYNC, EIO, "fsync EIO" }, { FIO_TRUNC, EIO, "write+cut EIO" },
		{ FIO_OPEN, EMFILE, "open EMFILE" }, { FIO_OPEN, ENOSPC, "open ENOSPC" },
		{ FIO_RENAME, EIO, "rename EIO" }, { FIO_READ, EIO, "read EIO" },
		{ FIO_UNLINK, EIO, "unlink EIO" }, { FIO_MKDIR, ENOSPC, "mkdir ENOSPC" },
		{ FIO_RMDIR, EIO, "rmdir EIO" }, { FIO_ALLOC, ENOSPC, "fallocate ENOSPC" },
	};
	const char *dir = *state, *only = getenv("EVL_FAULT_KINDS");
	char pristine[4200], work[4200], shm[64] = "";
	struct evl_store *st;
	struct evl_writer *w;
	long runs = 0, stride = fault_stride();
	char line[200];

	/* on tmpfs when there is one: a run is a dozen fsyncs, and there are a thousand runs */
	if (access("/dev/shm", W_OK) == 0) {
		snprintf(shm, sizeof(shm), "/dev/shm/evl-faults-XXXXXX");
		assert_non_null(mkdtemp(shm));
		dir = shm;
	}
	snprintf(pristine, sizeof(pristine), "%s/pristine", dir);
	snprintf(work, sizeof(work), "%s/work", dir);
	st = open_store(pristine, false, 2);
	assert_int_equal(evl_writer_open(st, create(st, "f"), &w), 0);
	for (int i = 0; i < FAULT_PRISTINE; i++) {
		int n = event_line(line, sizeof(line), i % 3, 0, i, i % 40);

		assert_int_equal(evl_writer_write(w, line, n), 0);
	}
	evl_writer_close(w);
	assert_int_equal(evl_store_close(st), 0);

	for (size_t k = 0; k < sizeof(kinds) / sizeof(*kinds); k++) {
		long calls;

		if (only && !strstr(kinds[k].name, only))
			continue;
		calls = fault_run(pristine, work, kinds[k].op, -1, kinds[k].err);
		/* the census may differ a little from run to run (threads): go past it */
		for (long nth = 0; nth < calls + 2; nth += stride, runs++) {
			if (getenv("EVL_FAULT_VERBOSE"))
				print_message("faults: %s, call %ld\n", kinds[k].name, nth);
			fault_run(pristine, work, kinds[k].op, nth, kinds[k].err);
		}
		print_message("faults: %-13s %3ld calls, every %ld failed in turn\n", kinds[k].name,
			      calls, stride);
	}
	print_message("faults: %ld runs, %ld distinct places failed (call stacks)\n", runs,
		      fio_sites(getenv("EVL_FAULT_SITES_DUMP")));
	if (shm[0])
		tu_rmrf(shm);
}

/*
 * One open of a fresh copy of @crashed, a store a power loss left for
 * recovery, with call @nth of @op failing (-1: none).  The open fails with
 * the errno (or EIO) or succeeds; either way, the next open without the
 * fault finds every event in @acked, once and in order.  Returns the calls
 * of @op the open made.
 */
static long recovery_fault_run(const char *crashed, const char *work, enum fio_op op, long nth,
			       int err, int acked[4])
{
	struct evl_options o;
	struct evl_store *st = NULL;
	long base, calls;
	int rc;

	copy_store(crashed, work);
	fio_install();
	base = fio_count(op);
	if (nth >= 0)
		fio_fail(op, nth, err, false);
	evl_options_default(&o);
	o.commit_ms = 2;
	o.segment_bytes = 64 << 10;
	o.max_fds = 4;
	rc = evl_store_open(work, &o, &st);
	calls = fio_count(op) - base;
	fio_clear();
	if (rc && rc != -err && rc != -EIO)
		fail_msg("recovery with call %ld failing: %d (%s)", nth, rc, strerror(-rc));
	assert_true(rc == 0 || nth >= 0);
	if (rc == 0)
		evl_store_close(st);	/* may fail: a sticky error */
	fio_uninstall();
	verify_acked(work, acked, nth < 0 ? "recovery, census run" : "recovery, failed call",
		     nth);
	return calls;
}

/* Write @n bytes of junk to a new file @path. */
static void junk_file(const char *path, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);

	assert_true(fd >= 0);
	while (n--)
		assert_int_equal(write(fd, "?", 1), 1);
	close(fd);
}

/*
 * Leave in store @dir what crashes at other moments leave: the delete of
 * live task y applied to the files but not the index (its directory in the
 * trash), a log rewrite that never took effect, and a journal segment
 * whose creation stopped inside its header.
 */
static void leave_unfinished_work(const char *dir)
{
	char peek[4200], from[4200], to[4400];
	uint64_t uid, last = 0;
	struct evl_store *st;
	struct dirent *de;
	DIR *d;

	snprintf(peek, sizeof(peek), "%.4100s.peek", dir);
	copy_store(dir, peek);
	st = open_store(peek, false, 2);
	uid = task_uid(st, "y");
	assert_int_equal(evl_store_close(st), 0);
	tu_rmrf(peek);
	assert_true(uid != 0);

	snprintf(from, sizeof(from), "%.4100s/tasks/y", dir);
	snprintf(to, sizeof(to), "%s/tasks/.trash-%016" PRIx64, dir, uid);
	assert_int_equal(rename(from, to), 0);

	snprintf(to, sizeof(to), "%s/tasks/.rewrite", dir);
	assert_true(mkdir(to, 0755) == 0 || errno == EEXIST);	/* r's retention made it */
	snprintf(to, sizeof(to), "%s/tasks/.rewrite/%016" PRIx64 ".events", dir, uid);
	junk_file(to, 100);
	snprintf(to, sizeof(to), "%s/tasks/.rewrite/%016" PRIx64 ".meta", dir, uid);
	junk_file(to, 48);

	snprintf(from, sizeof(from), "%.4100s/journal", dir);
	assert_non_null(d = opendir(from));
	while ((de = readdir(d)))
		if (strlen(de->d_name) == 20 && strtoull(de->d_name, NULL, 16) > last)
			last = strtoull(de->d_name, NULL, 16);
	closedir(d);
	snprintf(to, sizeof(to), "%s/%016" PRIx64 ".jnl", from, last + 4096);
	junk_file(to, 10);
}

/*
 * Faults during recovery: a store a power loss left with cut logs and a
 * torn journal, plus what other crashes leave (leave_unfinished_work), is
 * opened with each I/O call of the open failing in turn.
 */
static void faults_in_recovery(void **state)
{
	static const struct fault_kind kinds[] = {
		{ FIO_WRITE, ENOSPC, "write ENOSPC" }, { FIO_WRITE, EIO, "write EIO" },
		{ FIO_SYNC, EIO, "fsync EIO" }, { FIO_TRUNC, EIO, "truncate EIO" },
		{ FIO_OPEN, EMFILE, "open EMFILE" }, { FIO_RENAME, EIO, "rename EIO" },
		{ FIO_READ, EIO, "read EIO" }, { FIO_UNLINK, EIO, "unlink EIO" },
		{ FIO_MKDIR, ENOSPC, "mkdir ENOSPC" }, { FIO_RMDIR, EIO, "rmdir EIO" },
		{ FIO_ALLOC, ENOSPC, "fallocate ENOSPC" }, { FIO_LOCK, ENOLCK, "flock ENOLCK" },
	};
	const char *dir = *state, *only = getenv("EVL_FAULT_KINDS");
	char crashed[4200], work[4200];
	long runs = 0, stride = fault_stride(), total = 0, sites = fio_sites(NULL);
	struct fio_loss loss = { 0 };
	int acked[4];

	snprintf(crashed, sizeof(crashed), "%s/crashed", dir);
	snprintf(work, sizeof(work), "%s/work", dir);
	/* past writer 0's checkpoint at its 300th event: a trimmed journal, a dirty set */
	power_cut(crashed, true, 1600, 4321, FIO_LOSS_HOLES | FIO_LOSS_DIRS, NULL, acked, &loss);
	leave_unfinished_work(crashed);
	for (size_t k = 0; k < sizeof(kinds) / sizeof(*kinds); k++) {
		long calls, step;

		if (only && !strstr(kinds[k].name, only))
			continue;
		calls = recovery_fault_run(crashed, work, kinds[k].op, -1, kinds[k].err, acked);
		/* the repair writes record by record: about 40 runs of a kind at most (fewer: stride) */
		step = calls * stride / 40 > stride ? calls * stride / 40 : stride;
		for (long nth = 0; nth < calls + 1; nth += step, runs++)
			recovery_fault_run(crashed, work, kinds[k].op, nth, kinds[k].err, acked);
		total += calls;
		print_message("recovery faults: %-12s %3ld calls, every %ld failed in turn\n",
			      kinds[k].name, calls, step);
	}
	print_message("recovery faults: %ld runs over %ld calls, %ld new places failed (call "
		      "stacks); every acknowledged event found after each\n", runs, total,
		      fio_sites(NULL) - sites);
}

static void writers_wait_on_max_pending(void **state)
{
	const char *dir = *state;
	struct evl_options o;
	struct evl_store *st;
	struct writer_arg a[4];
	pthread_t th[4];
	uint64_t uid;

	evl_options_default(&o);
	o.max_pending = 4096;	/* about 20 events */
	o.commit_ms = 5;
	assert_int_equal(evl_store_open(dir, &o, &st), 0);
	uid = create(st, "q");
	for (int i = 0; i < 4; i++) {
		a[i] = (struct writer_arg){ st, uid, i, 500, 0 };
		pthread_create(&th[i], NULL, writer_main, &a[i]);
	}
	for (int i = 0; i < 4; i++) {
		void *r;

		pthread_join(th[i], &r);
		assert_null(r);	/* waited, never failed */
	}
	{
		struct evl_task_info info;

		evl_task_lookup(st, "q", &info);
		assert_int_equal(info.events, 2000);
	}
	check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
}

static void full_pending_after_failed_fsync_fails_fast(void **state)
{
	const char *dir = *state;
	struct evl_options o;
	struct evl_store *st;
	struct evl_writer *w;
	char line[200];
	uint64_t uid, t0;
	int rc = 0, i;

	fio_install();
	evl_options_default(&o);
	o.max_pending = 2048;
	o.commit_ms = 200;
	assert_int_equal(evl_store_open(dir, &o, &st), 0);
	uid = create(st, "s");
	assert_int_equal(evl_writer_open(st, uid, &w), 0);
	fio_fail(FIO_SYNC, 0, EIO, true);
	t0 = tu_now_ms();
	for (i = 0; i < 1000 && !rc; i++) {
		int n = event_line(line, sizeof(line), 1, 0, i, 40);

		rc = evl_writer_write(w, line, n);
	}
	/* nothing can be applied after the failed fsync: EIO, not a hang */
	assert_int_equal(rc, -EIO);
	assert_true(tu_now_ms() - t0 < 10000);
	fio_clear();
	evl_writer_close(w);
	assert_int_equal(evl_store_close(st), -EIO);
	fio_uninstall();
	st = open_store(dir, false, 2);
	check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
}

static void index_map_grows_under_load(void **state)
{
	const char *dir = *state;
	struct evl_store *st;
	struct writer_arg a[2];
	pthread_t th[2];

	index_set_map_initial(64 << 10);	/* full after a few hundred events */
	st = open_store(dir, false, 2);
	a[0] = (struct writer_arg){ st, create(st, "g0"), 0, 3000, 0 };
	a[1] = (struct writer_arg){ st, create(st, "g1"), 1, 3000, 1 };
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, writer_main, &a[i]);
	for (int i = 0; i < 2; i++) {
		void *r;

		pthread_join(th[i], &r);
		assert_null(r);
	}
	index_set_map_initial(256u << 20);
	check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
	st = open_store(dir, false, 2);
	check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
}

static void compact_arguments(void **state)
{
	struct evl_compact_args a;
	char why[200];

	assert_int_equal(evl_compact_parse("", &a, why, sizeof(why)), 0);
	assert_int_equal(evl_compact_parse(" task=t1  expire-idle=30d\n", &a, why, sizeof(why)), 0);
	assert_string_equal(a.task, "t1");
	assert_int_equal(a.expire_idle_s, 30 * 86400);
	assert_int_equal(evl_compact_parse("expire-idle=90s", &a, why, sizeof(why)), 0);
	assert_int_equal(a.expire_idle_s, 90);
	assert_int_equal(evl_compact_parse("expire-idle=15m", &a, why, sizeof(why)), 0);
	assert_int_equal(a.expire_idle_s, 900);
	assert_int_equal(evl_compact_parse("expire-idle=3x", &a, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "duration"));
	assert_int_equal(evl_compact_parse("expire-idle=-1d", &a, why, sizeof(why)), -EINVAL);
	assert_int_equal(evl_compact_parse("frobnicate=1", &a, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "unknown argument"));
	assert_int_equal(evl_compact_parse("now", &a, why, sizeof(why)), -EINVAL);
	assert_int_equal(evl_compact_parse("task=.x", &a, why, sizeof(why)), -EINVAL);
	assert_int_equal(evl_compact_parse("max-age=1d keep-last=10", &a, why, sizeof(why)), 0);
	assert_int_equal(a.max_age_s, 86400);
	assert_int_equal(a.keep_last, 10);
	assert_int_equal(evl_compact_parse("max-age=12", &a, why, sizeof(why)), -EINVAL);
	assert_int_equal(evl_compact_parse("keep-last=0", &a, why, sizeof(why)), -EINVAL);
	assert_int_equal(evl_compact_parse("keep-last=-3", &a, why, sizeof(why)), -EINVAL);
	assert_int_equal(evl_compact_parse("keep-last=3x", &a, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "keep-last"));

	/* whole .control writes */
	struct evl_control c;
	char big[1100];

	assert_int_equal(evl_control_parse("checkpoint\n", 11, &c, why, sizeof(why)), 0);
	assert_int_equal(c.cmd, EVL_CONTROL_CHECKPOINT);
	assert_int_equal(evl_control_parse("compact keep-last=5 \n", 21, &c, why, sizeof(why)), 0);
	assert_int_equal(c.cmd, EVL_CONTROL_COMPACT);
	assert_int_equal(c.compact.keep_last, 5);
	assert_string_equal(c.text, "compact keep-last=5");
	assert_int_equal(evl_control_parse("compact", 7, &c, why, sizeof(why)), 0);
	assert_int_equal(evl_control_parse("compactx", 8, &c, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "unknown command"));
	/* a NUL or a second line is not ignored: "checkpoint\0rm" is no checkpoint */
	assert_int_equal(evl_control_parse("checkpoint\0rm", 13, &c, why, sizeof(why)), -EINVAL);
	assert_string_equal(c.text, "checkpoint?rm");
	assert_int_equal(evl_control_parse("compact\ncheckpoint\n", 19, &c, why, sizeof(why)),
			 -EINVAL);
	/* too long is refused, not cut (a cut task= would name another task) */
	memset(big, 'a', sizeof(big));
	memcpy(big, "compact task=", 13);
	assert_int_equal(evl_control_parse(big, sizeof(big), &c, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "longer"));
	assert_int_equal(evl_control_parse("", 0, &c, why, sizeof(why)), -EINVAL);

	/* blanks and line ends around a command are fine: CRLF, a leading blank */
	assert_int_equal(evl_control_parse("checkpoint\r\n", 12, &c, why, sizeof(why)), 0);
	assert_int_equal(c.cmd, EVL_CONTROL_CHECKPOINT);
	assert_int_equal(evl_control_parse(" \tcompact keep-last=2\r\n", 23, &c, why, sizeof(why)),
			 0);
	assert_int_equal(c.compact.keep_last, 2);
	assert_string_equal(c.text, "compact keep-last=2");
	/* ... but not a control byte inside */
	assert_int_equal(evl_control_parse("compact\rkeep-last=2", 19, &c, why, sizeof(why)),
			 -EINVAL);
	assert_non_null(strstr(why, "control byte"));

	/* a task id with blanks, quotes or backslashes, quoted */
	assert_int_equal(evl_compact_parse("task=\"a b\" keep-last=1", &a, why, sizeof(why)), 0);
	assert_string_equal(a.task, "a b");
	assert_int_equal(a.keep_last, 1);
	assert_int_equal(evl_compact_parse("task=\"q\\\"x\\\\y\"", &a, why, sizeof(why)), 0);
	assert_string_equal(a.task, "q\"x\\y");
	assert_int_equal(evl_compact_parse("\"task=a  b\"", &a, why, sizeof(why)), 0);
	assert_string_equal(a.task, "a  b");
	assert_int_equal(evl_compact_parse("task=plain\\", &a, why, sizeof(why)), 0);
	assert_string_equal(a.task, "plain\\");	/* unquoted: a backslash is itself */
	assert_int_equal(evl_compact_parse("task=\"a b", &a, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "quote"));
	assert_int_equal(evl_compact_parse("task=\"a\\zb\"", &a, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "backslash"));

	/* a key given twice is refused, not "the last one wins" */
	assert_int_equal(evl_compact_parse("keep-last=5 keep-last=6", &a, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "twice"));
	assert_int_equal(evl_compact_parse("task=a task=b", &a, why, sizeof(why)), -EINVAL);

	/* numbers: digits only, nothing that wraps */
	assert_int_equal(evl_compact_parse("max-age=99999999999999999999999s", &a, why,
					   sizeof(why)), -EINVAL);
	assert_int_equal(evl_compact_parse("expire-idle=18446744073709551615s", &a, why,
					   sizeof(why)), -EINVAL);
	assert_int_equal(evl_compact_parse("expire-idle=213503982334601d", &a, why, sizeof(why)),
			 -EINVAL);
	assert_int_equal(evl_compact_parse("max-age=9223372036s", &a, why, sizeof(why)), 0);
	assert_int_equal(evl_compact_parse("max-age=9223372037s", &a, why, sizeof(why)), -EINVAL);
	assert_int_equal(evl_compact_parse("expire-idle=30000d", &a, why, sizeof(why)), 0);
	assert_int_equal(a.expire_idle_s, 30000ull * 86400);
	assert_int_equal(evl_compact_parse("max-age=+5s", &a, why, sizeof(why)), -EINVAL);
	assert_int_equal(evl_compact_parse("keep-last=+5", &a, why, sizeof(why)), -EINVAL);
	assert_int_equal(evl_compact_parse("keep-last=99999999999999999999999", &a, why,
					   sizeof(why)), -EINVAL);
	assert_int_equal(evl_compact_parse("keep-last=18446744073709551615", &a, why, sizeof(why)),
			 0);
}

static void wait_compaction(struct evl_store *st, struct evl_compact_status *cs)
{
	uint64_t deadline = tu_now_ms() + 300000;

	for (evl_compact_status(st, cs); cs->running && tu_now_ms() < deadline;
	     evl_compact_status(st, cs))
		usleep(1000);	/* poll, with a deadline */
	assert_false(cs->running);
}

static void compaction_reclaims_deleted_tasks(void **state)
{
	const char *dir = *state;
	struct evl_store *st = open_store(dir, false, 2);
	struct evl_compact_args none = { 0 };
	struct evl_compact_status cs;
	struct evl_stats before, after;
	struct writer_arg a;

	a = (struct writer_arg){ st, create(st, "big"), 0, 20000, 0 };
	assert_null(writer_main(&a));
	a = (struct writer_arg){ st, create(st, "small"), 1, 50, 0 };
	assert_null(writer_main(&a));
	assert_int_equal(evl_store_checkpoint(st), 0);
	evl_store_stats(st, &before);
	assert_int_equal(evl_task_delete(st, "big"), 0);

	assert_int_equal(evl_compact_start(st, &none), 0);
	assert_int_equal(evl_compact_start(st, &none), -EBUSY);
	wait_compaction(st, &cs);
	assert_int_equal(cs.last_rc, 0);
	assert_int_equal(cs.runs_ok, 1);
	assert_true(cs.last_bytes_reclaimed > 0);
	evl_store_stats(st, &after);
	print_message("index %llu -> %llu bytes, journal %llu -> %llu, %llu reclaimed\n",
		      (unsigned long long)before.index_bytes, (unsigned long long)after.index_bytes,
		      (unsigned long long)before.journal_bytes, (unsigned long long)after.journal_bytes,
		      (unsigned long long)cs.last_bytes_reclaimed);
	assert_true(after.index_bytes < before.index_bytes);	/* shrunk */
	assert_true(after.journal_bytes < 4096);		/* trimmed */
	check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
	st = open_store(dir, false, 2);
	check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
}

struct timed_writer {
	struct evl_store *st;
	uint64_t uid;
	int id, n;
	atomic_bool *stop;
	uint64_t max_us, writes;
};

static void *timed_writer_main(void *arg)
{
	struct timed_writer *a = arg;
	struct evl_writer *w;
	char line[200];

	if (evl_writer_open(a->st, a->uid, &w))
		return (void *)1;
	/* at least n writes, then on until stopped, at most 25,000 */
	for (int i = 0; (!atomic_load(a->stop) && i < 25000) || i < a->n; i++) {
		int n = event_line(line, sizeof(line), (a->id + i) % 11, a->id, i, i % 50);
		struct timespec t0, t1;
		uint64_t us;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (evl_writer_write(w, line, n))
			return (void *)2;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		us = (t1.tv_sec - t0.tv_sec) * 1000000ull + (t1.tv_nsec - t0.tv_nsec) / 1000;
		if (us > a->max_us)
			a->max_us = us;
		a->writes++;
	}
	return evl_writer_close(w) ? (void *)3 : NULL;
}

static void appends_go_on_during_compaction(void **state)
{
	const char *dir = *state;
	struct evl_store *st = open_store(dir, false, 2);
	struct evl_compact_args none = { 0 };
	struct evl_compact_status cs;
	struct timed_writer tw[4];
	pthread_t th[4];
	atomic_bool stop = false;
	struct writer_arg a;
	uint64_t uid = create(st, "live");
	int counts[4];
	size_t len;
	char *log;

	a = (struct writer_arg){ st, create(st, "doomed"), 9, 30000, 0 };
	assert_null(writer_main(&a));
	assert_int_equal(evl_store_checkpoint(st), 0);
	for (int i = 0; i < 4; i++) {
		tw[i] = (struct timed_writer){ st, uid, i, 200, &stop, 0, 0 };
		pthread_create(&th[i], NULL, timed_writer_main, &tw[i]);
	}
	assert_int_equal(evl_task_delete(st, "doomed"), 0);
	assert_int_equal(evl_compact_start(st, &none), 0);
	wait_compaction(st, &cs);
	atomic_store(&stop, true);
	for (int i = 0; i < 4; i++) {
		void *r;

		pthread_join(th[i], &r);
		assert_null(r);
		print_message("writer %d: %llu writes during compaction, slowest %llu us\n", i,
			      (unsigned long long)tw[i].writes, (unsigned long long)tw[i].max_us);
		/*
		 * No append waited for the compaction (a stall), with room for a
		 * loaded box, where one append can wait a second for a core: the
		 * latency is a figure for tests/bench (core_bench compact).
		 */
		assert_true(tw[i].max_us < 60000000);
	}
	assert_int_equal(cs.last_rc, 0);
	log = read_all(st, uid, NULL, &len);
	check_task_order(log, len, counts, 4);	/* nothing lost, order kept */
	for (int i = 0; i < 4; i++)
		assert_int_equal(counts[i], (int)tw[i].writes);
	free(log);
	check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
}

struct endless_writer {
	struct evl_store *st;
	uint64_t uid;
	int id;
	atomic_bool *stop;
	atomic_long writes;
};

/* Append as fast as possible until told to stop. */
static void *endless_writer_main(void *arg)
{
	struct endless_writer *a = arg;
	struct evl_writer *w;
	char line[200];

	if (evl_writer_open(a->st, a->uid, &w))
		return (void *)1;
	for (int i = 0; !atomic_load(a->stop); i++) {
		int n = event_line(line, sizeof(line), (a->id + i) % 11, a->id, i, i % 50);

		if (evl_writer_write(w, line, n))
			return (void *)2;
		atomic_store(&a->writes, i + 1);
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
		/*
		 * Checking what they wrote takes minutes in a sanitizer build:
		 * there, the writers write at a pace (still never pausing
		 * for the compaction).
		 */
		usleep(1000);
#endif
	}
	return evl_writer_close(w) ? (void *)3 : NULL;
}

/*
 * Every phase of a compaction works up to a point fixed when it starts, so
 * it ends however fast appends come: here writers never pause, from before
 * the compaction starts until after it has ended.  The verdict: retention
 * drops no event committed after its phase began (keep-last counts the
 * events there were then), so its work does not grow while it runs.  The
 * deadline is only a liveness bound, generous for a sanitizer build on a
 * loaded machine.
 */
static void compaction_finishes_while_writers_never_stop(void **state)
{
	const char *dir = *state;
	struct evl_store *st = open_store(dir, false, 2);
	struct evl_compact_args args;
	struct evl_compact_status cs;
	struct endless_writer ew[4];
	pthread_t th[4];
	atomic_bool stop = false;
	struct writer_arg a;
	uint64_t deadline;
	char why[100], phase[16] = "";
	long at_retain[4] = { -1, -1, -1, -1 };

	a = (struct writer_arg){ st, create(st, "doomed"), 9, 20000, 0 };
	assert_null(writer_main(&a));
	for (int i = 0; i < 4; i++) {
		char name[8];

		snprintf(name, sizeof(name), "w%d", i);
		ew[i] = (struct endless_writer){ st, create(st, name), i, &stop, 0 };
		pthread_create(&th[i], NULL, endless_writer_main, &ew[i]);
	}
	for (int i = 0; i < 4; i++)
		while (atomic_load(&ew[i].writes) < 2000)
			usleep(1000);
	assert_int_equal(evl_task_delete(st, "doomed"), 0);
	assert_int_equal(evl_compact_parse("keep-last=500", &args, why, sizeof(why)), 0);
	assert_int_equal(evl_compact_start(st, &args), 0);
	deadline = tu_now_ms() + 600000;	/* a hang, not slowness: ASan on a busy box */
	for (evl_compact_status(st, &cs); cs.running && tu_now_ms() < deadline;
	     evl_compact_status(st, &cs)) {
		if (strcmp(cs.phase, phase)) {
			/* writes seen once retention began: at least those it counted */
			if (!strcmp(cs.phase, "retain") && at_retain[0] < 0)
				for (int i = 0; i < 4; i++)
					at_retain[i] = atomic_load(&ew[i].writes);
			print_message("%6.2f s: phase %s (writes %ld)\n",
				      (tu_now_ms() + 600000 - deadline) / 1000.0, cs.phase,
				      atomic_load(&ew[0].writes));
			snprintf(phase, sizeof(phase), "%s", cs.phase);
		}
		usleep(500);
	}
	/* the writers ran all along */
	for (int i = 0; i < 4; i++)
		assert_true(atomic_load(&ew[i].writes) > 2000);
	atomic_store(&stop, true);
	for (int i = 0; i < 4; i++) {
		void *r;

		pthread_join(th[i], &r);
		assert_null(r);
	}
	assert_true(at_retain[0] >= 0);
	if (cs.running)
		fail_msg("compaction still in phase %s (%llu/%llu) after 600 s of appends",
			 cs.phase, (unsigned long long)cs.done, (unsigned long long)cs.total);
	print_message("compaction done in %.2f s, %llu events dropped, writes %ld %ld %ld %ld\n",
		      cs.last_duration_s, (unsigned long long)cs.last_events_dropped,
		      atomic_load(&ew[0].writes), atomic_load(&ew[1].writes),
		      atomic_load(&ew[2].writes), atomic_load(&ew[3].writes));
	assert_int_equal(cs.last_rc, 0);
	assert_true(cs.last_events_dropped >= 4 * 1500);
	for (int i = 0; i < 4; i++) {
		size_t len;
		char *log = read_all(st, ew[i].uid, NULL, &len);
		const char *p = log;
		int w, n = 0, first = -1, ty, idx;

		/* a contiguous run ending at the last write: nothing lost after the cut */
		while (p < log + len) {
			assert_int_equal(sscanf(p, "{\"type\":\"ty%d\",\"w\":%d,\"i\":%d", &ty, &w,
						&idx), 3);
			if (first < 0)
				first = idx;
			assert_int_equal(idx, first + n);
			n++;
			p = memchr(p, '\n', log + len - p) + 1;
		}
		assert_int_equal(first + n, (int)atomic_load(&ew[i].writes));
		assert_true(first > 0);
		/* one write may have been committed, not yet counted, when retention began */
		if (first > at_retain[i] + 1 - 500)
			fail_msg("task w%d: its first %d events dropped, but only %ld were written "
				 "when retention began (keep-last=500)", i, first, at_retain[i]);
		free(log);
	}
	check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
}

static void compaction_expires_idle_tasks(void **state)
{
	const char *dir = *state;
	struct evl_store *st = open_store(dir, false, 2);
	struct evl_compact_args args;
	struct evl_compact_status cs;
	struct evl_writer *w;
	uint64_t fresh, deadline;
	char why[100];

	create(st, "old");
	fresh = create(st, "fresh");
	assert_int_equal(evl_writer_open(st, fresh, &w), 0);
	assert_int_equal(evl_compact_parse("expire-idle=1s", &args, why, sizeof(why)), 0);
	/* "old" goes once it has been idle for 1 s; "fresh" keeps being written */
	deadline = tu_now_ms() + 120000;
	while (task_uid(st, "old") && tu_now_ms() < deadline) {
		assert_int_equal(write_str(w, "{\"type\":\"keepalive\"}\n"), 0);
		assert_int_equal(evl_compact_start(st, &args), 0);
		wait_compaction(st, &cs);
		assert_int_equal(cs.last_rc, 0);
		assert_int_not_equal(task_uid(st, "fresh"), 0);
	}
	assert_int_equal(task_uid(st, "old"), 0);
	assert_int_equal(cs.last_tasks_expired, 1);
	assert_int_equal(evl_writer_close(w), 0);
	check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
}

static void nodelete_refuses_deletion(void **state)
{
	const char *dir = *state;
	struct evl_options o;
	struct evl_store *st;
	struct evl_compact_args args = { .expire_idle_s = 1 }, none = { 0 };
	struct evl_compact_status cs;

	evl_options_default(&o);
	o.nodelete = true;
	assert_int_equal(evl_store_open(dir, &o, &st), 0);
	create(st, "keep");
	assert_int_equal(evl_task_delete(st, "keep"), -EPERM);
	assert_int_equal(evl_compact_start(st, &args), -EPERM);
	assert_int_equal(evl_compact_start(st, &none), 0);	/* no deletion asked: fine */
	wait_compaction(st, &cs);
	assert_int_equal(cs.last_rc, 0);
	assert_int_not_equal(task_uid(st, "keep"), 0);
	assert_int_equal(evl_store_close(st), 0);
}

/* ---- retention ---- */

struct task_check_ctx {
	struct evl_task_info *t;
	size_t n;
};

static int task_collect_cb(void *arg, const struct evl_task_info *t)
{
	struct task_check_ctx *c = arg;

	/* no store call in here: the callback runs inside the listing's snapshot */
	c->t = realloc(c->t, (c->n + 1) * sizeof(*c->t));
	c->t[c->n++] = *t;
	return 0;
}

static uint64_t check_task(struct evl_store *st, const char *dir, const struct evl_task_info *t)
{
	char path[4400];
	size_t flen, mlen, glen;
	char *file, *meta, *got;

	snprintf(path, sizeof(path), "%s/tasks/%s/events", dir, t->name);
	file = slurp(path, &flen);
	snprintf(path, sizeof(path), "%s/tasks/%s/events.meta", dir, t->name);
	meta = slurp(path, &mlen);
	assert_non_null(file);
	assert_non_null(meta);
	got = read_all(st, t->uid, NULL, &glen);
	if (glen != flen || memcmp(got, file, flen))
		fail_msg("task %s: read %zu bytes, the file has %zu", t->name, glen, flen);
	assert_int_equal(t->size, flen);
	assert_int_equal(t->events, mlen / TASKLOG_REC);
	free(file);
	free(meta);
	free(got);
	return t->events;
}

/* Every task reads as its file, sizes and counts agree, no rewrite is left over. */
static void check_tasks(struct evl_store *st, const char *dir)
{
	struct task_check_ctx c = { NULL, 0 };
	uint64_t events = 0;
	struct evl_stats s;
	char path[4400];
	struct dirent *de;
	DIR *d;

	assert_int_equal(evl_store_checkpoint(st), 0);
	assert_int_equal(evl_task_list(st, NULL, task_collect_cb, &c), 0);
	for (size_t i = 0; i < c.n; i++)
		events += check_task(st, dir, &c.t[i]);
	free(c.t);
	evl_store_stats(st, &s);
	assert_int_equal(s.events, events);
	snprintf(path, sizeof(path), "%s/tasks/.rewrite", dir);
	d = opendir(path);
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.')
			fail_msg("left over: %s/%s", path, de->d_name);
	if (d)
		closedir(d);
}

/* The offset in @buf (@len bytes of lines) where its last @n lines start. */
static size_t last_lines(const char *buf, size_t len, size_t n)
{
	size_t off = len;

	while (off > 0 && n) {
		off--;		/* onto the previous line's newline */
		while (off > 0 && buf[off - 1] != '\n')
			off--;
		n--;
	}
	return off;
}

static void compact_and_wait(struct evl_store *st, const char *words, struct evl_compact_status *cs)
{
	struct evl_compact_args args;
	char why[200];

	assert_int_equal(evl_compact_parse(words, &args, why, sizeof(why)), 0);
	assert_int_equal(evl_compact_start(st, &args), 0);
	wait_compaction(st, cs);
	assert_int_equal(cs->last_rc, 0);
}

static void expect_task(struct evl_store *st, const char *name, const char *want, size_t len)
{
	size_t glen;
	char *got = read_all(st, task_uid(st, name), NULL, &glen);

	if (glen != len || memcmp(got, want, len))
		fail_msg("task %s: %zu bytes, expected %zu", name, glen, len);
	free(got);
}

/* Create tasks @prefix0000.. @prefix(n-1), each with one event. */
static void make_tasks(struct evl_store *st, const char *prefix, int n)
{
	char name[64];

	for (int i = 0; i < n; i++) {
		struct writer_arg a;

		snprintf(name, sizeof(name), "%s%04d", prefix, i);
		a = (struct writer_arg){ st, create(st, name), 0, 1, 0 };
		assert_null(writer_main(&a));
	}
}

static int count_cb(void *arg, const struct evl_task_info *t)
{
	(*(int *)arg)++;
	return 0;
}

static int count_tasks(struct evl_store *st)
{
	int n = 0;

	assert_int_equal(evl_task_list(st, NULL, count_cb, &n), 0);
	return n;
}

/* Wait (by the clock, not as a verdict) until the store's events are older than @ms. */
static void age(uint64_t since_ms, uint64_t ms)
{
	while (tu_now_ms() < since_ms + ms)
		usleep(10000);
}

/*
 * A duration longer than the clock's age means "nothing is that old": it
 * never wraps into "everything" (expire-idle=30000d deleted every task).
 */
static void huge_durations_expire_nothing(void **state)
{
	const char *dir = *state;
	struct evl_store *st = open_store(dir, false, 2);
	struct evl_compact_status cs;

	make_tasks(st, "t", 3);
	compact_and_wait(st, "expire-idle=30000d", &cs);
	assert_int_equal(cs.last_tasks_expired, 0);
	compact_and_wait(st, "expire-idle=106751d max-age=106751d", &cs);
	assert_int_equal(cs.last_tasks_expired, 0);
	assert_int_equal(cs.last_events_dropped, 0);
	assert_int_equal(count_tasks(st), 3);
	check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
}

/*
 * expire-idle deletes the tasks it listed, by identity, and only if still
 * idle when it deletes each: a task removed and made anew under the same
 * name, or one appended to after the listing, stays with its events.
 * Tasks "zy" and "zz" sort last, so the run reaches them long after the
 * listing (600 deletes come first).
 */
static void expire_deletes_what_it_listed(void **state)
{
	const char *dir = *state;
	struct evl_store *st = open_store(dir, false, 2);
	struct evl_compact_args args;
	struct evl_compact_status cs;
	struct writer_arg a;
	uint64_t t0 = tu_now_ms(), deadline;
	size_t len;
	char why[100], *log;

	make_tasks(st, "idle", 600);
	create(st, "zy");
	create(st, "zz");
	age(t0, 1500);
	assert_int_equal(evl_compact_parse("expire-idle=1s", &args, why, sizeof(why)), 0);
	assert_int_equal(evl_compact_start(st, &args), 0);
	deadline = tu_now_ms() + 300000;
	for (evl_compact_status(st, &cs); cs.running && strcmp(cs.phase, "expire") &&
	     tu_now_ms() < deadline; evl_compact_status(st, &cs))
		usleep(200);
	assert_true(cs.running);
	/* listed: now zz is removed and made anew, and zy gets an event */
	assert_int_equal(evl_task_delete(st, "zz"), 0);
	a = (struct writer_arg){ st, create(st, "zz"), 1, 1, 0 };
	assert_null(writer_main(&a));
	a = (struct writer_arg){ st, task_uid(st, "zy"), 2, 1, 0 };
	assert_null(writer_main(&a));
	evl_compact_status(st, &cs);
	assert_true(cs.running && cs.done + 2 < cs.total);	/* the run had not got there */
	wait_compaction(st, &cs);
	assert_int_equal(cs.last_rc, 0);
	assert_int_equal(cs.last_tasks_expired, 600);
	assert_int_equal(count_tasks(st), 2);
	log = read_all(st, task_uid(st, "zz"), NULL, &len);
	assert_true(len > 0 && memchr(log, '\n', len) == log + len - 1);	/* its one event */
	free(log);
	log = read_all(st, task_uid(st, "zy"), NULL, &len);
	assert_true(len > 0);
	free(log);
	check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
}

/*
 * evl_task_delete_uid: by identity, and "idle" counts appends that are
 * journaled but not applied yet (a long group commit keeps one pending:
 * the applier takes only durable records).
 */
static void delete_by_uid_checks_idleness(void **state)
{
	const char *dir = *state;
	struct evl_store *st = open_store(dir, false, 2);
	struct evl_task_info info;
	struct writer_arg a;
	uint64_t old_uid, now_ns;
	struct evl_stats stats;
	struct timespec ts;

	old_uid = create(st, "x");
	assert_int_equal(evl_task_delete(st, "x"), 0);
	a = (struct writer_arg){ st, create(st, "x"), 0, 3, 0 };
	assert_null(writer_main(&a));
	assert_int_equal(evl_task_delete_uid(st, old_uid, 0, NULL), -ENOENT);
	assert_int_equal(evl_task_lookup(st, "x", &info), 0);
	assert_int_equal(info.events, 3);
	create(st, "held");
	assert_int_equal(evl_store_close(st), 0);

	st = open_store(dir, false, 5000);	/* fsync (and so apply) every 5 s */
	clock_gettime(CLOCK_REALTIME, &ts);
	now_ns = ts.tv_sec * 1000000000ull + ts.tv_nsec;
	a = (struct writer_arg){ st, task_uid(st, "held"), 1, 1, 0 };
	assert_null(writer_main(&a));	/* journaled, acknowledged */
	assert_int_equal(evl_task_delete_uid(st, a.uid, now_ns, NULL), -EBUSY);
	evl_store_stats(st, &stats);
	if (!stats.pending_events)
		print_message("the append was applied already: the pending case was not tried\n");
	assert_int_equal(evl_task_stat(st, a.uid, &info), 0);
	assert_int_equal(info.events, 1);
	assert_int_equal(evl_task_delete_uid(st, info.uid, 0, &info), 0);
	assert_string_equal(info.name, "held");
	assert_int_equal(evl_task_lookup(st, "held", &info), -ENOENT);
	check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
}

/*
 * Status counts include what is journaled and not applied yet, all of
 * them alike (events were counted with it, log bytes and types without).
 */
static void stats_count_the_backlog(void **state)
{
	const char *dir = *state;
	struct evl_store *st = open_store(dir, false, 5000);	/* apply after a 5 s fsync */
	struct evl_stats s;
	struct writer_arg a;
	size_t len;
	char *log;

	a = (struct writer_arg){ st, create(st, "b"), 0, 30, 0 };
	assert_null(writer_main(&a));
	evl_store_stats(st, &s);
	log = read_all(st, a.uid, NULL, &len);
	if (!s.pending_events)
		print_message("applied already: the backlog case was not tried\n");
	assert_int_equal(s.tasks, 1);
	assert_int_equal(s.events, 30);
	assert_int_equal(s.log_bytes, len);
	assert_int_equal(s.types, 11);	/* event_line's ty00..ty10 */
	free(log);
	assert_int_equal(evl_store_checkpoint(st), 0);
	evl_store_stats(st, &s);
	assert_int_equal(s.pending_events, 0);
	assert_int_equal(s.events, 30);
	assert_int_equal(s.log_bytes, len);
	assert_int_equal(s.types, 11);
	assert_int_equal(evl_store_close(st), 0);
}

/*
 * Closing the store stops a running compaction at its next step instead of
 * waiting for all of it; what it did holds, and the next run goes on.  The
 * verdict is what was done, not how long it took: a run allowed to finish
 * would have expired (or trimmed) every task.
 */
static void close_stops_a_compaction(void **state)
{
	const char *dir = *state;
	struct evl_store *st = open_store(dir, false, 2);
	struct evl_compact_args args;
	struct evl_compact_status cs;
	uint64_t t0 = tu_now_ms(), deadline;
	int left;
	char why[100];

	make_tasks(st, "e", 600);
	age(t0, 1500);
	assert_int_equal(evl_compact_parse("expire-idle=1s", &args, why, sizeof(why)), 0);
	assert_int_equal(evl_compact_start(st, &args), 0);
	deadline = tu_now_ms() + 300000;
	for (evl_compact_status(st, &cs); cs.running && (strcmp(cs.phase, "expire") || !cs.done) &&
	     tu_now_ms() < deadline; evl_compact_status(st, &cs))
		usleep(200);
	assert_true(cs.running);
	assert_int_equal(evl_store_close(st), 0);
	st = open_store(dir, false, 2);
	left = count_tasks(st);
	print_message("expire stopped with %d of 600 tasks left\n", left);
	assert_true(left > 0 && left < 600);
	check_views(st, dir);
	compact_and_wait(st, "expire-idle=1s", &cs);	/* the next run goes on */
	assert_int_equal(cs.last_tasks_expired, (uint64_t)left);
	assert_int_equal(count_tasks(st), 0);

	/* retention: each task keeps 1 of 3 events; stopped early, the rest still have 3 */
	for (int i = 0; i < 300; i++) {
		char name[16];
		struct writer_arg a;

		snprintf(name, sizeof(name), "r%04d", i);
		a = (struct writer_arg){ st, create(st, name), 0, 3, 0 };
		assert_null(writer_main(&a));
	}
	assert_int_equal(evl_compact_parse("keep-last=1", &args, why, sizeof(why)), 0);
	assert_int_equal(evl_compact_start(st, &args), 0);
	for (evl_compact_status(st, &cs); cs.running && (strcmp(cs.phase, "retain") || !cs.done) &&
	     tu_now_ms() < deadline + 60000; evl_compact_status(st, &cs))
		usleep(200);
	assert_true(cs.running);
	assert_int_equal(evl_store_close(st), 0);
	st = open_store(dir, false, 2);
	{
		struct task_check_ctx c = { 0 };
		int trimmed = 0;

		assert_int_equal(evl_task_list(st, NULL, task_collect_cb, &c), 0);
		assert_int_equal(c.n, 300);
		for (size_t i = 0; i < c.n; i++) {
			assert_true(c.t[i].events == 1 || c.t[i].events == 3);
			trimmed += c.t[i].events == 1;
		}
		print_message("retention stopped with %d of 300 tasks trimmed\n", trimmed);
		assert_true(trimmed > 0 && trimmed < 300);
		free(c.t);
	}
	check_views(st, dir);
	check_tasks(st, dir);
	assert_int_equal(evl_store_close(st), 0);
}

static void retention_keeps_the_newest(void **state)
{
	const char *dir = *state;
	struct evl_store *st = open_store(dir, false, 2);
	static const int n[3] = { 300, 200, 20 };
	struct evl_compact_status cs;
	char *before[3], name[8], *grown;
	size_t len[3], glen, keep;
	struct writer_arg a;

	for (int i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "r%d", i);
		a = (struct writer_arg){ st, create(st, name), i, n[i], 0 };
		assert_null(writer_main(&a));
		before[i] = read_all(st, a.uid, NULL, &len[i]);
	}

	/* one task only */
	compact_and_wait(st, "task=r1 keep-last=50", &cs);
	assert_int_equal(cs.last_events_dropped, 150);
	assert_true(cs.last_bytes_reclaimed > 0);
	keep = last_lines(before[1], len[1], 50);
	expect_task(st, "r1", before[1] + keep, len[1] - keep);
	expect_task(st, "r0", before[0], len[0]);
	expect_task(st, "r2", before[2], len[2]);
	check_views(st, dir);
	check_tasks(st, dir);

	/* appends go on after the rewrite, at the new offsets */
	a = (struct writer_arg){ st, task_uid(st, "r1"), 5, 30, 1 };
	assert_null(writer_main(&a));
	grown = read_all(st, a.uid, NULL, &glen);
	assert_int_equal(glen - (len[1] - keep) > 0, 1);
	assert_memory_equal(grown, before[1] + keep, len[1] - keep);
	check_views(st, dir);

	/* every task; one is short enough already */
	compact_and_wait(st, "keep-last=60", &cs);
	assert_int_equal(cs.last_events_dropped, 240 + 20);
	keep = last_lines(before[0], len[0], 60);
	expect_task(st, "r0", before[0] + keep, len[0] - keep);
	keep = last_lines(grown, glen, 60);
	expect_task(st, "r1", grown + keep, glen - keep);
	expect_task(st, "r2", before[2], len[2]);
	check_views(st, dir);
	check_tasks(st, dir);

	/* the same after a reopen, and a second rewrite of a rewritten task */
	assert_int_equal(evl_store_close(st), 0);
	st = open_store(dir, false, 2);
	check_views(st, dir);
	check_tasks(st, dir);
	compact_and_wait(st, "keep-last=7", &cs);
	keep = last_lines(before[0], len[0], 7);
	expect_task(st, "r0", before[0] + keep, len[0] - keep);
	check_views(st, dir);
	check_tasks(st, dir);
	assert_int_equal(evl_store_close(st), 0);
	for (int i = 0; i < 3; i++)
		free(before[i]);
	free(grown);
}

static void retention_by_age(void **state)
{
	const char *dir = *state;
	struct evl_store *st = open_store(dir, false, 2);
	struct evl_compact_status cs;
	struct evl_task_info info;
	struct writer_arg a;
	uint64_t t0 = tu_now_ms();
	size_t len, glen;
	char *young, *all;

	a = (struct writer_arg){ st, create(st, "old"), 0, 50, 0 };
	assert_null(writer_main(&a));
	a = (struct writer_arg){ st, create(st, "mixed"), 1, 40, 0 };
	assert_null(writer_main(&a));
	all = read_all(st, a.uid, NULL, &len);
	/* the events above age past 2 s; wait for that, by the clock */
	while (tu_now_ms() < t0 + 2300)
		usleep(10000);
	a = (struct writer_arg){ st, a.uid, 2, 25, 0 };
	assert_null(writer_main(&a));
	young = read_all(st, a.uid, NULL, &glen);
	assert_true(glen > len);

	compact_and_wait(st, "max-age=2s", &cs);
	assert_int_equal(cs.last_events_dropped, 90);
	expect_task(st, "mixed", young + len, glen - len);
	assert_int_equal(evl_task_lookup(st, "old", &info), 0);	/* emptied, not deleted */
	assert_int_equal(info.size, 0);
	assert_int_equal(info.events, 0);
	check_views(st, dir);
	check_tasks(st, dir);
	/* an emptied task takes appends again */
	a = (struct writer_arg){ st, info.uid, 3, 5, 0 };
	assert_null(writer_main(&a));
	check_views(st, dir);
	check_tasks(st, dir);
	assert_int_equal(evl_store_close(st), 0);
	free(young);
	free(all);
}

/*
 * A crash before every I/O call and index step of a compaction with
 * retention, each time from the same store: after recovery every task
 * holds exactly its events before or after retention, views agree, and
 * the next compaction finishes the job.
 */
/*
 * In the child of a step test, before the step: with @power, step @k is a
 * power loss (dumped to @work.dump, directory changes tracked), else a
 * crash; either way the process ends there with @code.
 */
static void step_arm(const char *work, bool power, long k, int code)
{
	char dump[4400], stash[4400];

	if (!power) {
		fio_crash_at(k, code);
		return;
	}
	snprintf(dump, sizeof(dump), "%s.dump", work);
	snprintf(stash, sizeof(stash), "%s.stash", work);
	fio_track_dirs(stash);
	fio_powerloss_at(k, code, dump);
}

/*
 * In the parent, after a step test's child ended: with @power, cut @work as
 * the worst power loss at that moment could (nothing unsynced kept, every
 * unsynced directory change lost, the index's unsynced commit undone).
 */
static void step_cut(const char *work, bool power, int status, struct fio_loss *loss)
{
	char dump[4400], stash[4400], mdb[4400];

	snprintf(dump, sizeof(dump), "%s.dump", work);
	snprintf(stash, sizeof(stash), "%s.stash", work);
	snprintf(mdb, sizeof(mdb), "%s/index/data.mdb", work);
	if (power && WEXITSTATUS(status) == 42) {
		assert_int_equal(fio_apply_powerloss(dump, 0, FIO_LOSS_ALL, loss), 0);
		index_undone += fio_undo_index_commit(dump, mdb) > 0;
	}
	unlink(dump);
	tu_rmrf(stash);
}

/*
 * Retention (a log rewrite) stopped at every step that changes the disk:
 * by a crash (@power false), or by a power loss that keeps nothing the
 * store did not sync.  The task is the one before or the one after.
 */
static void retention_steps(const char *dir, bool power)
{
	char pristine[4200], work[4200];
	char *before[2], *after[2];
	size_t blen[2], alen[2];
	struct evl_store *st;
	struct writer_arg a;
	struct fio_loss loss = { 0 };
	long k, after_seen = 0;

	snprintf(pristine, sizeof(pristine), "%s/pristine", dir);
	snprintf(work, sizeof(work), "%s/work", dir);
	st = open_store(pristine, false, 2);
	a = (struct writer_arg){ st, create(st, "a"), 0, 120, 0 };
	assert_null(writer_main(&a));
	a = (struct writer_arg){ st, create(st, "b"), 1, 60, 0 };
	assert_null(writer_main(&a));
	for (int i = 0; i < 2; i++) {
		size_t keep;

		before[i] = read_all(st, task_uid(st, i ? "b" : "a"), NULL, &blen[i]);
		keep = last_lines(before[i], blen[i], 30);
		alen[i] = blen[i] - keep;
		after[i] = before[i] + keep;
	}
	assert_int_equal(evl_store_close(st), 0);

	for (k = 0;; k++) {
		struct evl_compact_status cs;
		int status;
		pid_t pid;

		copy_store(pristine, work);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct evl_compact_args args = { .keep_last = 30 };
			struct evl_options o;

			evl_options_default(&o);
			fio_install();
			if (evl_store_open(work, &o, &st))
				_exit(2);
			step_arm(work, power, k, 42);
			if (evl_compact_start(st, &args))
				_exit(3);
			do
				evl_compact_status(st, &cs);
			while (cs.running && !usleep(1000));
			fio_crash_at(-1, 0);
			_exit(cs.last_rc || evl_store_close(st) ? 4 : 0);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		assert_true(WEXITSTATUS(status) == 42 || WEXITSTATUS(status) == 0);
		step_cut(work, power, status, &loss);

		st = open_store(work, false, 2);
		for (int i = 0; i < 2; i++) {
			const char *name = i ? "b" : "a";
			size_t glen;
			char *got = read_all(st, task_uid(st, name), NULL, &glen);

			if (glen == alen[i] && !memcmp(got, after[i], glen))
				after_seen++;
			else if (glen != blen[i] || memcmp(got, before[i], glen))
				fail_msg("%s at step %ld: task %s is neither before nor after "
					 "retention (%zu bytes)", power ? "power loss" : "crash", k,
					 name, glen);
			free(got);
		}
		check_views(st, work);
		check_tasks(st, work);
		compact_and_wait(st, "keep-last=30", &cs);	/* what is left is finished */
		expect_task(st, "a", after[0], alen[0]);
		expect_task(st, "b", after[1], alen[1]);
		check_views(st, work);
		assert_int_equal(evl_store_close(st), 0);
		if (WEXITSTATUS(status) == 0)
			break;		/* the run reached its end before step k */
	}
	print_message("%ld %s points, tasks found after retention %ld times%s\n", k,
		      power ? "power-loss" : "crash", after_seen,
		      power ? " (nothing unsynced kept)" : "");
	if (power)
		print_message("  %ld files cut, %ld directory changes undone\n", loss.files_cut,
			      loss.dir_undone);
	assert_true(k > 10);
	assert_true(after_seen > 0);
	for (int i = 0; i < 2; i++)
		free(before[i]);
}

static void retention_survives_a_crash_at_every_step(void **state)
{
	retention_steps(*state, false);
}

static void retention_survives_power_loss_at_every_step(void **state)
{
#ifdef __SANITIZE_THREAD__
	skip();	/* on-disk states, not races: the plain and ASan builds run it */
#endif
	retention_steps(*state, true);
}

/* Append @n events "ty01" numbered from @from to task @name. */
static void append_n(struct evl_store *st, const char *name, int from, int n)
{
	struct evl_writer *w;
	char buf[128];

	assert_int_equal(evl_writer_open(st, task_uid(st, name), &w), 0);
	for (int i = from; i < from + n; i++) {
		event_line(buf, sizeof(buf), 1, 0, i, 3);
		assert_int_equal(write_str(w, buf), 0);
	}
	assert_int_equal(evl_writer_close(w), 0);
}

/*
 * A delete moves the task's directory aside before the index commits it; a
 * crash between the two must not leave a store that cannot open (found by
 * the crash torture: replaying an append to the moved task failed).  Each
 * step: append to "a", delete it and create "a" anew, crash at the k-th
 * I/O call; the store must open with "a" old, deleted, or new.
 */
/* A delete and a create of the same name, stopped at every step: by a crash or a power loss. */
static void delete_steps(const char *dir, bool power)
{
	char pristine[4200], work[4200];
	struct evl_store *st;
	struct fio_loss loss = { 0 };
	long k;
	int seen[3] = { 0, 0, 0 };

#ifdef __SANITIZE_THREAD__
	/* fork() of a threaded process under TSan: one unexplained ENOENT at reopen was
	   seen in a loaded CI run (not reproduced since); the plain and ASan builds run it */
	skip();
#endif
	snprintf(pristine, sizeof(pristine), "%s/pristine", dir);
	snprintf(work, sizeof(work), "%s/work", dir);
	st = open_store(pristine, false, 2);
	create(st, "a");
	append_n(st, "a", 0, 20);
	assert_int_equal(evl_store_close(st), 0);

	for (k = 0;; k++) {
		struct evl_task_info info;
		int status;
		pid_t pid;

		copy_store(pristine, work);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct evl_options o;

			evl_options_default(&o);
			fio_install();
			if (evl_store_open(work, &o, &st))
				_exit(2);
			step_arm(work, power, k, 42);
			append_n(st, "a", 20, 5);
			if (evl_task_delete(st, "a") || evl_task_create(st, "a"))
				_exit(3);
			append_n(st, "a", 100, 2);
			fio_crash_at(-1, 0);
			_exit(evl_store_close(st) ? 4 : 0);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		assert_true(WEXITSTATUS(status) == 42 || WEXITSTATUS(status) == 0);
		step_cut(work, power, status, &loss);

		{
			/* the regression: this open failed */
			struct evl_options o;
			int rc;

			evl_options_default(&o);
			rc = evl_store_open(work, &o, &st);
			if (rc)
				fail_msg("crash at step %ld (child exit %d): reopen: %s", k,
					 WEXITSTATUS(status), strerror(-rc));
		}
		if (evl_task_lookup(st, "a", &info)) {
			seen[1]++;
		} else {
			size_t len;
			char *got = read_all(st, info.uid, NULL, &len), first[128];

			event_line(first, sizeof(first), 1, 0, 100, 3);
			if (info.events <= 2 && (!len || !strncmp(got, first, strlen(first))))
				seen[2]++;	/* the new task, with a prefix of its events */
			else if (info.events >= 20 && info.events <= 25)
				seen[0]++;	/* the old one, before the delete */
			else
				fail_msg("crash at step %ld: task a has %llu events", k,
					 (unsigned long long)info.events);
			free(got);
		}
		check_views(st, work);
		check_tasks(st, work);
		assert_int_equal(evl_store_close(st), 0);
		if (WEXITSTATUS(status) == 0)
			break;
	}
	print_message("%ld %s points: old task %d, deleted %d, new task %d times\n", k,
		      power ? "power-loss" : "crash", seen[0], seen[1], seen[2]);
	if (power)
		print_message("  %ld files cut, %ld directory changes undone\n", loss.files_cut,
			      loss.dir_undone);
	assert_true(k > 10);
	assert_true(seen[0] > 0 && seen[2] > 0);
}


/* ---- the applier and its readers ---- */

#define FIXED_LEN 35	/* strlen of fixed_line()'s lines */

static void fixed_line(char *buf, int i)
{
	snprintf(buf, FIXED_LEN + 1, "{\"type\":\"ty01\",\"i\":\"%012d\"}\n", i);
}

struct size_race {
	struct evl_store *st;
	uint64_t uid;
	int n;
	_Atomic uint64_t started, acked;	/* events */
	atomic_bool done;
};

static void *size_race_writer(void *arg)
{
	struct size_race *r = arg;
	struct evl_writer *w;
	char line[FIXED_LEN + 1];
	void *ret = NULL;

	if (evl_writer_open(r->st, r->uid, &w))
		ret = (void *)1;
	for (int i = 0; i < r->n && !ret; i++) {
		fixed_line(line, i);
		atomic_store(&r->started, i + 1);
		if (evl_writer_write(w, line, FIXED_LEN))
			ret = (void *)2;
		atomic_store(&r->acked, i + 1);
	}
	if (!ret && evl_writer_close(w))
		ret = (void *)3;
	atomic_store(&r->done, true);
	return ret;
}

/*
 * st_size is exact at every moment: never more than was written, never
 * less than was acknowledged, whatever the applier is doing (it once
 * counted a batch twice between its index commit and dropping it from the
 * pending list).
 */
static void task_size_is_exact_while_applying(void **state)
{
	const char *dir = *state;
	struct evl_store *st = open_store(dir, false, 1);
	struct size_race r = { .st = st, .n = 60000 };
	long stats = 0, bad = 0;
	uint64_t worst = 0;
	pthread_t th;
	void *ret;

	r.uid = create(st, "sz");
	pthread_create(&th, NULL, size_race_writer, &r);
	while (!atomic_load(&r.done)) {
		struct evl_task_info info;
		uint64_t lo = atomic_load(&r.acked), hi;

		assert_int_equal(evl_task_stat(st, r.uid, &info), 0);
		hi = atomic_load(&r.started);
		stats++;
		if (info.size < lo * FIXED_LEN || info.size > hi * FIXED_LEN ||
		    info.size != info.events * FIXED_LEN) {
			bad++;
			if (info.size > hi * FIXED_LEN && info.size - hi * FIXED_LEN > worst)
				worst = info.size - hi * FIXED_LEN;
		}
	}
	pthread_join(th, &ret);
	assert_null(ret);
	if (bad)
		fail_msg("%ld of %ld stats out of bounds (up to %" PRIu64 " bytes too many)", bad,
			 stats, worst);
	assert_int_equal(evl_store_close(st), 0);
}

struct view_race {
	struct evl_store *st;
	atomic_bool stop;
	long reads, errors;
	ssize_t first_error;
};

static void *view_race_reader(void *arg)
{
	struct view_race *r = arg;
	unsigned seed = 7;
	char buf[4096];

	while (!atomic_load(&r->stop)) {
		struct evl_view *v;
		uint64_t size;

		if (evl_view_open(r->st, "ty", 2, 0, &v))
			continue;
		if (evl_view_size(v, &size) == 0 && size) {
			for (int k = 0; k < 20; k++) {
				ssize_t n = evl_view_read(v, rand_r(&seed) % size, buf, sizeof(buf));

				r->reads++;
				if (n < 0 && !r->errors++)
					r->first_error = n;
			}
		}
		evl_view_close(v);
	}
	return NULL;
}

/*
 * A view read whose snapshot still holds a task being deleted reads it
 * whole: the delete renames the task's files away only once no such
 * reader is left.
 */
static void view_reads_survive_deletes(void **state)
{
	const char *dir = *state;
	struct evl_store *st = open_store(dir, false, 1);
	struct view_race r[2] = { { .st = st }, { .st = st } };
	struct evl_writer *w;
	char line[FIXED_LEN + 1];
	pthread_t th[2];

	create(st, "keep");
	append_n(st, "keep", 0, 50);
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, view_race_reader, &r[i]);
	for (int round = 0; round < 1000; round++) {
		uint64_t uid = create(st, "tmp");

		assert_int_equal(evl_writer_open(st, uid, &w), 0);
		for (int i = 0; i < 20; i++) {
			fixed_line(line, i);
			assert_int_equal(evl_writer_write(w, line, FIXED_LEN), 0);
		}
		assert_int_equal(evl_writer_close(w), 0);
		assert_int_equal(evl_store_checkpoint(st), 0);	/* tmp is in every snapshot */
		assert_int_equal(evl_task_delete(st, "tmp"), 0);
	}
	for (int i = 0; i < 2; i++) {
		atomic_store(&r[i].stop, true);
		pthread_join(th[i], NULL);
		if (r[i].errors)
			fail_msg("%ld of %ld view reads failed, the first with %s", r[i].errors,
				 r[i].reads, strerror((int)-r[i].first_error));
		assert_true(r[i].reads > 0);
	}
	assert_int_equal(evl_store_close(st), 0);
}

struct named {
	struct evl_store *st;
	const char *name;
};

static int within(unsigned secs, const char *what, int (*fn)(void *arg), void *arg);
static int do_checkpoint(void *arg);
static int do_create(void *arg);

static double cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

struct held_writer {
	struct evl_store *st;
	uint64_t uid;
	int n;
	atomic_int written;
};

static void *held_writer_main(void *arg)
{
	struct held_writer *h = arg;
	struct evl_writer *w;
	char line[FIXED_LEN + 1];

	if (evl_writer_open(h->st, h->uid, &w))
		return (void *)1;
	for (int i = 0; i < h->n; i++) {
		fixed_line(line, i);
		if (evl_writer_write(w, line, FIXED_LEN))
			return (void *)2;
		atomic_store(&h->written, i + 1);
	}
	return evl_writer_close(w) ? (void *)3 : NULL;
}

/*
 * A writer held back by max_pending sleeps: it once woke at once, again
 * and again (its deadline was on another clock than the condition
 * variable's), burning a core for as long as it waited.  Held appends are
 * applied by a checkpoint (or a delete, or close).
 */
static void held_back_writer_sleeps(void **state)
{
	const char *dir = *state;
	struct held_writer h = { .n = 5000 };
	struct evl_options o;
	struct evl_stats s;
	struct evl_store *st;
	double cpu;
	pthread_t th;
	void *ret;
	int last;

	evl_options_default(&o);
	o.hold_apply = true;
	o.max_pending = 64 << 10;
	assert_int_equal(evl_store_open(dir, &o, &st), 0);
	h.st = st;
	assert_int_equal(within(30, "create", do_create, &(struct named){ st, "held" }), 0);
	h.uid = task_uid(st, "held");
	pthread_create(&th, NULL, held_writer_main, &h);
	/* until the writer waits: the pending list is full */
	do {
		usleep(1000);
		evl_store_stats(st, &s);
	} while (s.pending_bytes + 1024 < o.max_pending);
	/*
	 * A few more lines may still fit: the writer waits once its count
	 * stops moving (CI once read it one line early, on a loaded box).
	 */
	last = atomic_load(&h.written);
	for (int still = 0; still < 5; ) {
		usleep(100000);
		if (atomic_load(&h.written) == last) {
			still++;
		} else {
			last = atomic_load(&h.written);
			still = 0;
		}
	}
	cpu = cpu_s();
	sleep(2);
	cpu = cpu_s() - cpu;
	assert_int_equal(atomic_load(&h.written), last);	/* it did wait */
	if (cpu > 0.2)
		fail_msg("a waiting writer cost %.2f s of CPU in 2 s", cpu);
	while (atomic_load(&h.written) < h.n) {
		assert_int_equal(within(60, "a checkpoint", do_checkpoint, st), 0);
		usleep(1000);
	}
	pthread_join(th, &ret);
	assert_null(ret);
	assert_int_equal(evl_store_close(st), 0);
	st = open_store(dir, false, 2);
	check_tasks(st, dir);
	assert_int_equal(task_events(st, "held"), h.n);
	assert_int_equal(evl_store_close(st), 0);
}

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
struct tiny_writer {
	struct evl_store *st;
	uint64_t uid;
	atomic_bool stop;
	atomic_long written;
};

static void *tiny_writer_main(void *arg)
{
	struct tiny_writer *tw = arg;
	struct evl_writer *w;

	if (evl_writer_open(tw->st, tw->uid, &w))
		return (void *)1;
	while (!atomic_load(&tw->stop)) {
		if (write_str(w, "{\"type\":\"a\"}\n"))
			return (void *)2;
		atomic_fetch_add(&tw->written, 1);
	}
	return evl_writer_close(w) ? (void *)3 : NULL;
}
#endif

/*
 * max_pending bounds the memory the pending list takes, bookkeeping
 * included: 13-byte events, one per write, once took 3.6 times as much as
 * the payloads max_pending counted.
 */
static void pending_memory_is_bounded(void **state)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	skip();		/* a sanitizer's allocator keeps no malloc statistics */
#else
	const char *dir = *state;
	struct tiny_writer tw = { 0 };
	struct evl_options o;
	struct evl_stats s;
	struct evl_store *st;
	size_t before, held;
	pthread_t th;
	void *ret;

	evl_options_default(&o);
	o.hold_apply = true;
	o.max_pending = 8 << 20;
	assert_int_equal(evl_store_open(dir, &o, &st), 0);
	tw.st = st;
	assert_int_equal(within(30, "create", do_create, &(struct named){ st, "tiny" }), 0);
	tw.uid = task_uid(st, "tiny");
	malloc_trim(0);
	before = mallinfo2().uordblks;
	pthread_create(&th, NULL, tiny_writer_main, &tw);
	do {
		usleep(1000);
		evl_store_stats(st, &s);
	} while (s.pending_bytes + 4096 < o.max_pending);
	held = mallinfo2().uordblks - before;
	print_message("%ld events pending: %zu bytes allocated for max_pending=%zu\n",
		      atomic_load(&tw.written), held, o.max_pending);
	if (held > o.max_pending + o.max_pending / 8 + (256 << 10))
		fail_msg("%zu bytes held for max_pending=%zu", held, o.max_pending);
	atomic_store(&tw.stop, true);
	assert_int_equal(within(60, "a checkpoint", do_checkpoint, st), 0);
	pthread_join(th, &ret);
	assert_null(ret);
	assert_int_equal(evl_store_close(st), 0);
#endif
}

static int do_close(void *arg)
{
	return evl_store_close(arg);
}

/* hold_apply holds appends until someone waits for them: close does. */
static void held_appends_are_applied_at_close(void **state)
{
	const char *dir = *state;
	struct evl_options o;
	struct evl_store *st;

	evl_options_default(&o);
	o.hold_apply = true;
	assert_int_equal(evl_store_open(dir, &o, &st), 0);
	assert_int_equal(within(30, "create", do_create, &(struct named){ st, "h" }), 0);
	append_n(st, "h", 0, 100);
	assert_int_equal(task_events(st, "h"), 100);
	assert_int_equal(within(60, "close", do_close, st), 0);
	st = open_store(dir, false, 2);
	check_tasks(st, dir);
	assert_int_equal(task_events(st, "h"), 100);
	assert_int_equal(evl_store_close(st), 0);
}

static void delete_survives_a_crash_at_every_step(void **state)
{
	delete_steps(*state, false);
}

static void delete_survives_power_loss_at_every_step(void **state)
{
	delete_steps(*state, true);
}

/* A call that must return: run on a thread, given up on (the test fails) after a deadline. */
struct bounded {
	int (*fn)(void *arg);
	void *arg;
	atomic_bool done;
	int rc;
};

static void *bounded_main(void *arg)
{
	struct bounded *b = arg;

	b->rc = b->fn(b->arg);
	atomic_store(&b->done, true);
	return NULL;
}

/* @fn(@arg)'s result; fails the test if it has not returned within @secs. */
static int within(unsigned secs, const char *what, int (*fn)(void *arg), void *arg)
{
	struct bounded *b = calloc(1, sizeof(*b));	/* leaked if it hangs */
	uint64_t end = tu_now_ms() + secs * 1000ull;
	pthread_t th;
	int rc;

	b->fn = fn;
	b->arg = arg;
	pthread_create(&th, NULL, bounded_main, b);
	while (!atomic_load(&b->done) && tu_now_ms() < end)
		usleep(1000);
	if (!atomic_load(&b->done))
		fail_msg("%s did not return within %u s", what, secs);
	pthread_join(th, NULL);
	rc = b->rc;
	free(b);
	return rc;
}

static int do_create(void *arg)
{
	struct named *n = arg;

	return evl_task_create(n->st, n->name);
}

static int do_delete(void *arg)
{
	struct named *n = arg;

	return evl_task_delete(n->st, n->name);
}

static int do_checkpoint(void *arg)
{
	return evl_store_checkpoint(arg);
}

/*
 * While the applier cannot apply (a full disk), creating a task does not
 * wait for it (a task is there once its record is journaled), deleting
 * one still works (a delete is what frees a full disk) and a checkpoint
 * reports the error instead of waiting for ever.  Once the cause is gone,
 * everything is applied in order.
 */
static void creates_and_deletes_while_applying_fails(void **state)
{
	const char *dir = *state;
	struct evl_store *st;
	struct named a, b, c;
	struct evl_task_info info;
	size_t len;
	char *log;

	fio_install();
	st = open_store(dir, false, 1);
	a = (struct named){ st, "a" };
	b = (struct named){ st, "b" };
	c = (struct named){ st, "c" };
	create(st, "a");
	append_n(st, "a", 0, 10);
	assert_int_equal(evl_store_checkpoint(st), 0);
	/* applying a create needs a directory: none can be made now */
	fio_fail(FIO_MKDIR, 0, ENOSPC, true);
	assert_int_equal(within(30, "create b", do_create, &b), 0);
	assert_int_equal(evl_task_lookup(st, "b", &info), 0);
	assert_int_equal(info.size, 0);
	append_n(st, "b", 0, 5);
	assert_int_equal(evl_task_lookup(st, "b", &info), 0);
	assert_int_equal(info.events, 5);
	log = read_all(st, info.uid, NULL, &len);
	assert_int_equal(len, info.size);
	free(log);
	{
		/* the applier retries every 100 ms, not at every append (it once spun) */
		struct evl_stats s0, s1;
		uint64_t t0 = tu_now_ms(), ms;

		evl_store_stats(st, &s0);
		for (int i = 10; (ms = tu_now_ms() - t0) < 1000; i += 20)
			append_n(st, "a", i, 20);	/* each write's fsync wakes the applier */
		evl_store_stats(st, &s1);
		print_message("%" PRIu64 " tries to apply in %" PRIu64 " ms\n",
			      s1.apply_failures - s0.apply_failures, ms);
		if (s1.apply_failures - s0.apply_failures > ms / 100 * 2 + 10)
			fail_msg("%" PRIu64 " tries to apply in %" PRIu64 " ms",
				 s1.apply_failures - s0.apply_failures, ms);
	}
	assert_int_equal(within(30, "create c", do_create, &c), 0);
	assert_int_equal(within(30, "a checkpoint", do_checkpoint, st), -ENOSPC);
	/* a delete gets past the stuck create of b, and so does one of a pending task */
	assert_int_equal(within(30, "delete a", do_delete, &a), 0);
	assert_int_equal(evl_task_lookup(st, "a", &info), -ENOENT);
	{
		/* a's events left the views; b's (pending) are there */
		struct evl_view *v;
		uint64_t size;

		assert_int_equal(evl_task_lookup(st, "b", &info), 0);
		assert_int_equal(evl_view_open(st, "ty01", 4, 0, &v), 0);
		assert_int_equal(evl_view_size(v, &size), 0);
		assert_int_equal(size, info.size);
		evl_view_close(v);
	}
	assert_int_equal(within(30, "delete c", do_delete, &c), 0);
	assert_int_equal(evl_task_lookup(st, "c", &info), -ENOENT);
	assert_int_equal(evl_task_create(st, "c"), 0);	/* the name is free again */
	fio_clear();
	check_tasks(st, dir);
	assert_int_equal(task_events(st, "b"), 5);
	assert_int_equal(task_events(st, "c"), 0);
	assert_int_equal(task_uid(st, "a"), 0);
	check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
	fio_uninstall();
	st = open_store(dir, false, 2);
	check_tasks(st, dir);
	assert_int_equal(task_events(st, "b"), 5);
	assert_int_equal(task_uid(st, "a"), 0);
	assert_true(task_uid(st, "c") != 0);
	check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
}

/* ---- deletes while the applier is stuck (found in review) ---- */


/* Make the applier fail every batch from now on (a create it cannot apply), and wait for a failure. */
static void stuck_applier(struct evl_store *st)
{
	struct named b = { st, "b" };

	/* applying a create needs a directory: none can be made now (a full disk) */
	fio_fail(FIO_MKDIR, 0, ENOSPC, true);
	assert_int_equal(within(30, "create b", do_create, &b), 0);
	usleep(300 * 1000);	/* the applier has failed once: it is in its backoff */
}

struct del_thread {
	struct evl_store *st;
	const char *name;
	atomic_int rc;		/* 1 while the delete runs */
};

static void *del_main(void *arg)
{
	struct del_thread *d = arg;

	atomic_store(&d->rc, evl_task_delete(d->st, d->name));
	return NULL;
}

/*
 * An append to a task whose delete is journaled is refused (ENOENT): it
 * once got journaled behind the delete and stayed in the views after rm
 * returned, for as long as the in-order applier was stuck.
 */
static void append_after_early_delete_stays_in_views(void **state)
{
	const char *dir = *state;
	struct evl_store *st;
	struct evl_writer *w;
	struct evl_task_info info;
	struct del_thread d;
	pthread_t th;
	char line[128];
	int wrc;

	fio_install();
	st = open_store(dir, false, 1);
	create(st, "a");
	append_n(st, "a", 0, 10);
	assert_int_equal(evl_store_checkpoint(st), 0);
	assert_int_equal(evl_writer_open(st, task_uid(st, "a"), &w), 0);
	stuck_applier(st);
	d = (struct del_thread){ st, "a", 1 };
	pthread_create(&th, NULL, del_main, &d);
	usleep(20 * 1000);	/* the delete is journaled; the applier sleeps out its backoff */
	snprintf(line, sizeof(line), "{\"type\":\"zz_only_a\",\"i\":1}\n");
	wrc = evl_writer_write(w, line, strlen(line));
	pthread_join(th, NULL);
	assert_int_equal(d.rc, 0);
	assert_int_equal(evl_task_lookup(st, "a", &info), -ENOENT);
	/* refused (the task's delete was journaled first), or gone with the task */
	assert_true(wrc == 0 || wrc == -ENOENT);
	if (evl_prefix_exists(st, "zz", 2))
		fail_msg("the deleted task's event is in a view after rm returned");
	fio_clear();
	evl_writer_close(w);
	assert_int_equal(evl_store_close(st), 0);
	fio_uninstall();
}

/*
 * The listing of tasks while a delete is journaled and not applied in order
 * (here: applied ahead of a create the applier cannot apply): the deleted
 * task is gone and nothing else is listed.  The pending delete record, kept
 * in the pending tasks' table, was listed as a task with an empty name: the
 * kernel then fails the whole readdir of tasks/ with EIO (seen by the
 * randomized test, ls during rm -r, in two of three listings).
 */
static void listing_skips_pending_deletes(void **state)
{
	const char *dir = *state;
	struct task_check_ctx c = { NULL, 0 };
	struct evl_store *st;

	fio_install();
	st = open_store(dir, false, 1);
	create(st, "a");
	append_n(st, "a", 0, 3);
	assert_int_equal(evl_store_checkpoint(st), 0);
	stuck_applier(st);	/* b's create stays pending */
	assert_int_equal(evl_task_delete(st, "a"), 0);
	assert_int_equal(evl_task_list(st, NULL, task_collect_cb, &c), 0);
	for (size_t i = 0; i < c.n; i++)
		print_message("listed: '%s' (uid %" PRIu64 ")\n", c.t[i].name, c.t[i].uid);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.t[0].name, "b");
	free(c.t);
	fio_clear();
	assert_int_equal(evl_store_close(st), 0);
	fio_uninstall();
}

/*
 * A create the applier could not apply, of a task whose delete it then
 * applied ahead (a full disk), stays unmade when the disk has room again:
 * its records are skipped once their task's delete is applied, in their
 * own batch or ahead of it.  With the skip limited to the batch holding
 * the delete (f6c42c3), a batch ending before it (here: 10 MB of appends
 * between them) made the deleted task live again (found in review).
 */
static void early_deleted_create_stays_unmade(void **state)
{
	const char *dir = *state;
	struct evl_store *st;
	struct evl_writer *w;
	struct evl_task_info info;
	size_t n = 1000000;
	char *big = malloc(n);
	int seen = 0;

	fio_install();
	st = open_store(dir, false, 1);
	create(st, "a");
	append_n(st, "a", 0, 3);
	assert_int_equal(evl_store_checkpoint(st), 0);
	stuck_applier(st);	/* b's create pending; no directory can be made */
	memset(big, 'x', n);
	memcpy(big, "{\"type\":\"big\",\"p\":\"", 19);
	memcpy(big + n - 3, "\"}\n", 3);
	assert_int_equal(evl_writer_open(st, task_uid(st, "a"), &w), 0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(evl_writer_write(w, big, n), 0);
	assert_int_equal(evl_writer_close(w), 0);
	assert_int_equal(evl_task_delete(st, "b"), 0);
	assert_int_equal(evl_task_lookup(st, "b", &info), -ENOENT);
	fio_clear();
	for (int i = 0; i < 2000; i++) {
		seen += !evl_task_lookup(st, "b", &info);
		usleep(1000);
	}
	assert_int_equal(evl_store_checkpoint(st), 0);
	seen += !evl_task_lookup(st, "b", &info);
	if (seen)
		fail_msg("deleted task b was live again in %d lookups", seen);
	assert_int_equal(evl_task_lookup(st, "a", &info), 0);
	assert_int_equal(info.events, 13);
	assert_int_equal(evl_store_close(st), 0);
	fio_uninstall();
	free(big);
}

/*
 * An early delete whose transaction fails puts the task's directory back
 * (reads of the live task go on) and is tried again: it once left the
 * files in the trash with the index saying "live", and rm waiting for ever.
 */
static void failed_early_delete_leaves_files_in_trash(void **state)
{
	const char *dir = *state;
	struct evl_store *st;
	struct evl_task_info info;
	struct del_thread d;
	uint64_t uid, end;
	pthread_t th;

	fio_install();
	st = open_store(dir, false, 1);
	uid = create(st, "a");
	append_n(st, "a", 0, 10);
	assert_int_equal(evl_store_checkpoint(st), 0);
	stuck_applier(st);
	/* sync #0: the journal's, for the delete record; #1: tasklog_remove's directory sync */
	fio_fail(FIO_SYNC, 1, EIO, false);
	d = (struct del_thread){ st, "a", 1 };
	pthread_create(&th, NULL, del_main, &d);
	/* the early delete failed once, is undone, and is tried again: rm returns */
	end = tu_now_ms() + 120000;
	while (atomic_load(&d.rc) == 1 && tu_now_ms() < end) {
		char buf[64];
		struct evl_view *v;
		ssize_t n = evl_task_read(st, uid, 0, buf, sizeof(buf));

		/* a (not yet deleted) reads whole meanwhile, and so does a view of it */
		if (n < 0 && evl_task_lookup(st, "a", &info) == 0)
			fail_msg("read of a: %zd while it is live", n);
		if (evl_view_open(st, "ty", 2, 0, &v) == 0) {
			n = evl_view_read(v, 0, buf, sizeof(buf));
			if (n < 0)
				fail_msg("read of view ty: %zd", n);
			evl_view_close(v);
		}
		usleep(10000);
	}
	if (atomic_load(&d.rc) == 1)
		fail_msg("the delete still waits after 120 s");
	pthread_join(th, NULL);
	assert_int_equal(d.rc, 0);
	assert_int_equal(evl_task_lookup(st, "a", &info), -ENOENT);
	fio_clear();
	/* a failed fsync is sticky: writes are refused until the store is opened again */
	assert_int_equal(evl_store_close(st), -EIO);
	fio_uninstall();
	st = open_store(dir, false, 2);
	assert_int_equal(evl_task_lookup(st, "a", &info), -ENOENT);
	check_tasks(st, dir);
	check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
}

/*
 * Power loss after an early delete: its commit is the index's last (the
 * stuck batch never commits), which MDB_NOMETASYNC may undo; the files go
 * only once it is synced, so the store opens (it once did not: a live
 * task without files).  The same after an in-order delete.
 */
/*
 * Issue 15 item 5: one bad journal record must cost that record only.  Ten
 * durable records of 64 events each (commit=sync, unapplied: the writer
 * dies before the applier runs), then damage: @what is "payload" (one byte
 * of record 2's payload flipped) or "header" (the segment header's).  The
 * next open replays every record that checks out, counts what is lost and
 * keeps the damaged segment as .corrupt.
 */
static void journal_damage_case(const char *dir, const char *what)
{
	struct evl_options o;
	struct evl_store *st;
	struct evl_writer *w;
	struct evl_stats s;
	char seg[4800], path[4800], buf[64 * 128];
	uint64_t uid, off, lens[16];
	size_t n = 0, len;
	int status, fd, nrec = 0;
	unsigned char hdr[32], c;
	struct stat sb;
	char *log;
	pid_t pid;

	evl_options_default(&o);
	o.commit_sync = true;
	assert_int_equal(evl_store_open(dir, &o, &st), 0);
	uid = create(st, "t1");
	assert_int_equal(evl_store_close(st), 0);

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		o.hold_apply = true;
		if (evl_store_open(dir, &o, &st) || evl_writer_open(st, uid, &w))
			_exit(2);
		for (int r = 0; r < 10; r++) {
			n = 0;
			for (int i = 0; i < 64; i++)
				n += event_line(buf + n, sizeof(buf) - n, 1, 0, r * 64 + i, 3);
			if (write_str(w, buf))
				_exit(3);
		}
		_exit(0);	/* no close: the records stay unapplied */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	/* the segment holding the ten records: the largest one */
	{
		DIR *d;
		struct dirent *de;
		off_t best = -1;

		snprintf(path, sizeof(path), "%s/journal", dir);
		d = opendir(path);
		assert_non_null(d);
		while ((de = readdir(d))) {
			char p[4700];

			if (!strstr(de->d_name, ".jnl"))
				continue;
			snprintf(p, sizeof(p), "%.4000s/%s", path, de->d_name);
			if (stat(p, &sb) == 0 && sb.st_size > best) {
				best = sb.st_size;
				snprintf(seg, sizeof(seg), "%s", p);
			}
		}
		closedir(d);
	}
	fd = open(seg, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &sb), 0);
	for (off = 32; off + 32 <= (uint64_t)sb.st_size; off += 32 + lens[nrec++]) {
		assert_int_equal(pread(fd, hdr, 32, off), 32);
		assert_true(nrec < 16);
		lens[nrec] = get_le32(hdr + 8);
	}
	assert_int_equal(nrec, 10);
	off = !strcmp(what, "header") ? 20 : 32 + lens[0] + 32 + 100;	/* record 2's payload */
	assert_int_equal(pread(fd, &c, 1, off), 1);
	c ^= 0x10;
	assert_int_equal(pwrite(fd, &c, 1, off), 1);
	close(fd);

	assert_int_equal(evl_store_open(dir, &o, &st), 0);
	log = read_all(st, uid, NULL, &len);
	{
		int want = 0, got = 0;

		for (char *p = log, *end = log + len; p < end; got++) {
			char *nl = memchr(p, '\n', end - p);
			int ty, wr, i;

			assert_non_null(nl);
			assert_int_equal(sscanf(p, "{\"type\":\"ty%d\",\"w\":%d,\"i\":%d", &ty, &wr,
						&i), 3);
			if (!strcmp(what, "payload") && want == 64)
				want = 128;	/* record 2 is lost, and only it */
			assert_int_equal(i, want);
			want++;
			p = nl + 1;
		}
		print_message("%s damage: %d of 640 events kept\n", what, got);
		assert_int_equal(got, !strcmp(what, "header") ? 640 : 576);
	}
	free(log);
	evl_store_stats(st, &s);
	assert_int_equal(s.journal_lost, !strcmp(what, "header") ? 0 : 1);
	assert_true(s.journal_damaged_segments >= 1);
	snprintf(path, sizeof(path), "%.4700s.corrupt", seg);
	assert_int_equal(stat(path, &sb), 0);
	check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);

	/* the damage was set aside: the next open finds none, and keeps everything */
	assert_int_equal(evl_store_open(dir, &o, &st), 0);
	assert_int_equal(task_events(st, "t1"), !strcmp(what, "header") ? 640 : 576);
	evl_store_stats(st, &s);
	assert_int_equal(s.journal_lost, 0);
	check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
}

/*
 * A corrupt create record: the appends after it name a task no record
 * creates.  The store still opens, serves every other task, and counts the
 * loss; the task is not made up.
 */
static void journal_lost_create_leaves_other_tasks(void **state)
{
	const char *dir = *state;
	struct evl_options o;
	struct evl_store *st;
	struct evl_writer *w;
	struct evl_stats s;
	char seg[4800], buf[128];
	unsigned char c;
	uint64_t uid;
	int status, fd;
	pid_t pid;

	evl_options_default(&o);
	o.commit_sync = true;
	assert_int_equal(evl_store_open(dir, &o, &st), 0);
	uid = create(st, "keep");
	assert_int_equal(evl_store_close(st), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct evl_writer *w2;
		uint64_t nuid;

		o.hold_apply = true;
		if (evl_store_open(dir, &o, &st) || evl_task_create(st, "gone"))
			_exit(2);
		nuid = task_uid(st, "gone");
		if (evl_writer_open(st, nuid, &w2) || evl_writer_open(st, uid, &w))
			_exit(3);
		for (int i = 0; i < 10; i++) {
			event_line(buf, sizeof(buf), 1, 0, i, 3);
			if (write_str(w2, buf) || write_str(w, buf))
				_exit(4);
		}
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* the child's segment starts at lsn 2 with the create of "gone" */
	snprintf(seg, sizeof(seg), "%.4000s/journal/0000000000000002.jnl", dir);
	fd = open(seg, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, 32 + 32 + 3), 1);	/* the create's uid */
	c ^= 1;
	assert_int_equal(pwrite(fd, &c, 1, 32 + 32 + 3), 1);
	close(fd);

	assert_int_equal(evl_store_open(dir, &o, &st), 0);
	assert_int_equal(task_uid(st, "gone"), 0);
	assert_int_equal(task_events(st, "keep"), 10);
	evl_store_stats(st, &s);
	assert_int_equal(s.journal_lost, 1);
	check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
}

static void journal_bad_record_costs_only_itself(void **state)
{
	journal_damage_case(*state, "payload");
}

static void journal_bad_segment_header_keeps_its_records(void **state)
{
	journal_damage_case(*state, "header");
}

static void power_loss_after_early_delete(void **state)
{
	const char *dir = *state;
	char dump[4400], mdb[4400];
	int status, rc;
	pid_t pid;
	struct evl_store *st;
	struct evl_options o;

	snprintf(dump, sizeof(dump), "%s.dump", dir);
	pid = fork();
	if (pid == 0) {
		fio_install();
		st = open_store(dir, false, 1);
		create(st, "a");
		append_n(st, "a", 0, 10);
		if (evl_store_checkpoint(st))
			_exit(2);
		append_n(st, "a", 10, 5);	/* a is dirty: changed since the checkpoint */
		usleep(200 * 1000);		/* ... and applied */
		stuck_applier(st);
		if (evl_task_delete(st, "a"))
			_exit(3);
		usleep(300 * 1000);
		fio_freeze_and_dump(dump);
		_exit(0);
	}
	waitpid(pid, &status, 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	{
		struct fio_loss loss = { 0 };

		/* the worst case: nothing unsynced survives */
		assert_int_equal(fio_apply_powerloss(dump, 1, FIO_LOSS_ALL, &loss), 0);
	}
	snprintf(mdb, sizeof(mdb), "%s/index/data.mdb", dir);
	rc = fio_undo_index_commit(dump, mdb);
	print_message("index commit undone: %d\n", rc);
	evl_options_default(&o);
	rc = evl_store_open(dir, &o, &st);
	print_message("open after the power loss: %d (%s)\n", rc, rc ? strerror(-rc) : "ok");
	if (!rc) {
		struct evl_task_info info;
		print_message("lookup a: %d\n", evl_task_lookup(st, "a", &info));
		evl_store_close(st);
	}
	assert_int_equal(rc, 0);
}

static void power_loss_after_inorder_delete(void **state)
{
	const char *dir = *state;
	char dump[4400], mdb[4400];
	int status, rc;
	pid_t pid;
	struct evl_store *st;
	struct evl_options o;

	snprintf(dump, sizeof(dump), "%s.dump", dir);
	pid = fork();
	if (pid == 0) {
		fio_install();
		st = open_store(dir, false, 1);
		create(st, "a");
		append_n(st, "a", 0, 10);
		if (evl_store_checkpoint(st))
			_exit(2);
		append_n(st, "a", 10, 5);	/* a is dirty: changed since the checkpoint */
		usleep(200 * 1000);		/* ... and applied */
		if (evl_task_delete(st, "a"))
			_exit(3);
		usleep(300 * 1000);
		fio_freeze_and_dump(dump);
		_exit(0);
	}
	waitpid(pid, &status, 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	{
		struct fio_loss loss = { 0 };

		/* the worst case: nothing unsynced survives */
		assert_int_equal(fio_apply_powerloss(dump, 1, FIO_LOSS_ALL, &loss), 0);
	}
	snprintf(mdb, sizeof(mdb), "%s/index/data.mdb", dir);
	rc = fio_undo_index_commit(dump, mdb);
	print_message("index commit undone: %d\n", rc);
	evl_options_default(&o);
	rc = evl_store_open(dir, &o, &st);
	print_message("open after the power loss: %d (%s)\n", rc, rc ? strerror(-rc) : "ok");
	if (!rc) {
		struct evl_task_info info;
		print_message("lookup a: %d\n", evl_task_lookup(st, "a", &info));
		evl_store_close(st);
	}
	assert_int_equal(rc, 0);
}

/* kill -9 after early deletes and re-creates of the same names */
static void crash_after_early_deletes_and_recreates(void **state)
{
	const char *dir = *state;
	int status, rc;
	pid_t pid;
	struct evl_store *st;
	struct evl_options o;

	pid = fork();
	if (pid == 0) {
		fio_install();
		st = open_store(dir, false, 1);
		create(st, "a");
		append_n(st, "a", 0, 10);
		if (evl_store_checkpoint(st))
			_exit(2);
		stuck_applier(st);
		create(st, "c");
		append_n(st, "c", 0, 3);
		if (evl_task_delete(st, "c"))
			_exit(3);
		create(st, "c");
		append_n(st, "c", 0, 4);
		if (evl_task_delete(st, "a"))
			_exit(3);
		create(st, "a");
		append_n(st, "a", 0, 2);
		if (evl_store_sync(st))
			_exit(4);
		usleep(300 * 1000);
		_exit(0);
	}
	waitpid(pid, &status, 0);
	print_message("child status %d\n", WEXITSTATUS(status));
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	evl_options_default(&o);
	rc = evl_store_open(dir, &o, &st);
	assert_int_equal(rc, 0);
	print_message("a %" PRIu64 " b %" PRIu64 " c %" PRIu64 "\n", task_events(st, "a"),
		      task_events(st, "b"), task_events(st, "c"));
	check_tasks(st, dir);
	check_views(st, dir);
	assert_int_equal(task_events(st, "a"), 2);
	assert_int_equal(task_events(st, "c"), 4);
	assert_int_equal(evl_store_close(st), 0);
}



/* Two concurrent deletes of one task: one deletes it, the other finds it gone. */
static void two_deletes_both_succeed(void **state)
{
	const char *dir = *state;
	struct evl_store *st = open_store(dir, false, 1);
	struct del_thread d1, d2;
	pthread_t t1, t2;

	create(st, "a");
	append_n(st, "a", 0, 10);
	d1 = (struct del_thread){ st, "a", 1 };
	d2 = (struct del_thread){ st, "a", 1 };
	pthread_create(&t1, NULL, del_main, &d1);
	usleep(200);
	pthread_create(&t2, NULL, del_main, &d2);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	print_message("delete 1: %d, delete 2: %d\n", d1.rc, d2.rc);
	assert_false(d1.rc == 0 && d2.rc == 0);
	assert_int_equal(evl_store_close(st), 0);
}



/*
 * hold_apply holds appends only until something waits for the applier: a
 * create never does (a task exists once its create is journaled), a
 * checkpoint and close apply everything.  They used to wait for ever.
 */
static void hold_apply_holds_only_appends(void **state)
{
	const char *dir = *state;
	struct evl_options o;
	struct evl_stats s;
	struct evl_writer *w;
	struct evl_store *st;
	uint64_t uid;
	char line[200];

	evl_options_default(&o);
	o.hold_apply = true;
	assert_int_equal(evl_store_open(dir, &o, &st), 0);
	assert_int_equal(within(60, "create with nothing held", do_create,
				&(struct named){ st, "a" }), 0);
	uid = task_uid(st, "a");
	assert_int_equal(evl_writer_open(st, uid, &w), 0);
	for (int i = 0; i < 20; i++) {
		int n = event_line(line, sizeof(line), 1, 0, i, i);

		assert_int_equal(evl_writer_write(w, line, n), 0);
	}
	assert_int_equal(evl_store_sync(st), 0);
	usleep(50000);	/* the applier had its chance: it holds them */
	evl_store_stats(st, &s);
	assert_true(s.applied_lsn < s.durable_lsn);
	assert_int_equal(s.pending_events, 20);

	assert_int_equal(within(60, "create behind held appends", do_create,
				&(struct named){ st, "b" }), 0);
	assert_true(task_uid(st, "b") != 0);
	evl_store_stats(st, &s);
	assert_int_equal(s.pending_events, 20);	/* still held: nobody waited */

	for (int i = 20; i < 30; i++) {
		int n = event_line(line, sizeof(line), 1, 0, i, i);

		assert_int_equal(evl_writer_write(w, line, n), 0);
	}
	assert_int_equal(within(60, "checkpoint", do_checkpoint, st), 0);
	evl_store_stats(st, &s);
	assert_int_equal(s.pending_events, 0);
	for (int i = 30; i < 40; i++) {
		int n = event_line(line, sizeof(line), 1, 0, i, i);

		assert_int_equal(evl_writer_write(w, line, n), 0);
	}
	evl_writer_close(w);
	assert_int_equal(within(60, "close", do_close, st), 0);

	st = open_store(dir, false, 2);
	{
		int first;

		assert_int_equal(task_run(st, task_uid(st, "a"), 0, &first, "hold", 0), 40);
	}
	assert_true(task_uid(st, "b") != 0);
	assert_int_equal(evl_store_close(st), 0);
}

/*
 * A short write of the lock file is retried, and one that cannot go on
 * fails the lock: it used to be taken for a success with errno 0 (the
 * store then ran without holding its lock, its descriptor closed).  The
 * file size limit makes the write short.
 */
static void lock_file_short_write_fails(void **state)
{
	const char *dir = *state;
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		struct rlimit rl = { 4, 4 };
		struct store_lock l;
		int rc;

		signal(SIGXFSZ, SIG_IGN);
		if (setrlimit(RLIMIT_FSIZE, &rl))
			_exit(2);
		rc = store_lock(dir, "a holder name longer than four bytes", &l);
		_exit(rc == -EFBIG && l.dir_fd == -1 ? 0 : 10 + (rc == 0));
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		fail_msg("store_lock under a 4-byte file size limit: child status %d (11: it "
			 "returned success)", status);
}

/*
 * Daemons before the directory lock flock only DATA_DIR/lock: during an
 * upgrade one may still serve the store.  Each must see the other.
 */
static void lock_excludes_an_older_daemon(void **state)
{
	const char *dir = *state;
	struct evl_store *st = open_store(dir, false, 2), *again;
	struct evl_options o;
	char path[4200];
	int fd;

	snprintf(path, sizeof(path), "%s/lock", dir);
	/* the older daemon comes second: refused */
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), -1);
	assert_int_equal(errno, EWOULDBLOCK);
	close(fd);
	assert_int_equal(evl_store_close(st), 0);
	/* the older daemon comes first: we are refused */
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
	evl_options_default(&o);
	assert_int_equal(evl_store_open(dir, &o, &again), -EBUSY);
	close(fd);
	assert_int_equal(evl_store_open(dir, &o, &again), 0);
	assert_int_equal(evl_store_close(again), 0);
}

static void second_open_is_refused(void **state)
{
	const char *dir = *state;
	struct evl_store *st = open_store(dir, false, 2), *again;
	struct evl_options o;

	evl_options_default(&o);
	assert_int_equal(evl_store_open(dir, &o, &again), -EBUSY);
	assert_int_equal(evl_store_close(st), 0);
	assert_int_equal(evl_store_open(dir, &o, &again), 0);
	assert_int_equal(evl_store_close(again), 0);
}

/* Deleting DATA_DIR/lock (by hand, a cleanup script) must not release the store. */
static void lock_survives_rm_of_the_lock_file(void **state)
{
	const char *dir = *state;
	struct evl_store *st = open_store(dir, false, 2), *again;
	struct evl_options o;
	char path[4200], holder[600], want[64];

	snprintf(path, sizeof(path), "%s/lock", dir);
	assert_int_equal(unlink(path), 0);
	evl_options_default(&o);
	assert_int_equal(evl_store_open(dir, &o, &again), -EBUSY);
	/* the holder is still named: not "pid 0" from a missing or empty file */
	assert_int_equal(evl_store_holder(dir, holder, sizeof(holder)), 1);
	snprintf(want, sizeof(want), "pid %ld", (long)getpid());
	if (strncmp(holder, want, strlen(want)))
		fail_msg("holder '%s', expected '%s'", holder, want);
	assert_int_equal(evl_store_close(st), 0);
	assert_int_equal(evl_store_holder(dir, holder, sizeof(holder)), 0);
	assert_int_equal(evl_store_open(dir, &o, &again), 0);
	assert_int_equal(evl_store_close(again), 0);
}

/* A holder that has the lock but has not written its pid yet is not "pid 0". */
static void holder_before_its_pid_is_written(void **state)
{
	const char *dir = *state;
	struct evl_store *st = open_store(dir, false, 2);
	char path[4200], holder[600], want[64];

	snprintf(path, sizeof(path), "%s/lock", dir);
	assert_int_equal(truncate(path, 0), 0);
	assert_int_equal(evl_store_holder(dir, holder, sizeof(holder)), 1);
	snprintf(want, sizeof(want), "pid %ld", (long)getpid());
	if (strncmp(holder, want, strlen(want)))
		fail_msg("holder '%s', expected '%s'", holder, want);
	assert_int_equal(evl_store_close(st), 0);
}

/* ---- one broken task, one failing resource (issue 15 items 6 and 9) ---- */

/*
 * A task whose files went away behind the store's back (an rm of its
 * sidecar or of its log) is set aside: the append the applier cannot write
 * is counted and named as lost, the task's reads and new appends get EIO,
 * and every other task goes on: applied, checkpointed, closed and opened
 * again (it once retried for ever and stopped every task; after that the
 * store could not be opened).  At that open a sidecar removed alone is
 * made anew from the index and the log; a removed log keeps the task set
 * aside.
 */
static void a_broken_task_is_set_aside(void **state)
{
	const char *files[] = { "events.meta", "events" };

	/*
	 * Each file removed with the task's descriptors closed, then cached;
	 * then the whole directory (k 4, 5): events.unapplied cannot be made.
	 */
	for (int k = 0; k < 6; k++) {
		bool gone = k >= 4;
		char dir[4200], path[4400], buf[128];
		struct evl_store *st;
		struct evl_writer *w, *w2;
		struct evl_stats s;
		struct evl_task_info info;
		uint64_t ua;
		size_t len;
		char *log;

		snprintf(dir, sizeof(dir), "%s/s%d", (const char *)*state, k);
		st = open_store(dir, false, 2);
		create(st, "a");
		create(st, "b");
		append_n(st, "a", 0, 5);
		append_n(st, "b", 0, 5);
		if (k % 4 < 2) {
			assert_int_equal(evl_store_close(st), 0);
			st = open_store(dir, false, 2);		/* no descriptor cached */
		} else {
			/* cached: writes would go to a file no path reaches */
			assert_int_equal(evl_store_checkpoint(st), 0);
		}
		ua = task_uid(st, "a");
		/* a writer opened before the damage: its append is journaled, acknowledged */
		assert_int_equal(evl_writer_open(st, ua, &w), 0);
		assert_int_equal(evl_writer_open(st, ua, &w2), 0);
		snprintf(path, sizeof(path), "%s/tasks/a/%s", dir, files[k % 2]);
		assert_int_equal(unlink(path), 0);
		if (gone) {
			snprintf(path, sizeof(path), "%s/tasks/a/%s", dir, files[1 - k % 2]);
			assert_int_equal(unlink(path), 0);
			snprintf(path, sizeof(path), "%s/tasks/a", dir);
			assert_int_equal(rmdir(path), 0);
		}
		event_line(buf, sizeof(buf), 1, 0, 5, 3);
		assert_int_equal(write_str(w, buf), 0);
		assert_int_equal(evl_writer_close(w), 0);
		append_n(st, "b", 5, 3);
		/* the applier cannot write a's event: the others are applied all the same */
		assert_int_equal(within(30, "a checkpoint", do_checkpoint, st), 0);
		assert_int_equal(task_events(st, "b"), 8);
		assert_int_equal(evl_task_lookup(st, "b", &info), 0);
		log = read_all(st, info.uid, NULL, &len);
		assert_int_equal(len, info.size);
		free(log);
		evl_store_stats(st, &s);
		assert_int_equal(s.tasks_aside, 1);
		/* kept beside the log (durably: synced), or lost when even that fails */
		assert_int_equal(s.events_unapplied, gone ? 0 : 1);
		assert_int_equal(s.events_lost, gone ? 1 : 0);
		assert_string_equal(s.aside, "a");
		assert_int_equal(s.aside[2], '\0');	/* the list ends after it */
		snprintf(path, sizeof(path), "%s/tasks/a/events.unapplied", dir);
		if (gone) {
			assert_int_equal(access(path, F_OK), -1);
		} else {
			int fd = open(path, O_RDONLY);
			char got[128];
			ssize_t n;

			assert_true(fd >= 0);
			n = read(fd, got, sizeof(got));
			close(fd);
			assert_int_equal(n, strlen(buf));
			assert_memory_equal(got, buf, n);
		}
		assert_int_equal(s.pending_events, 0);
		/* a is set aside: EIO, never bytes the index and the files disagree on */
		assert_int_equal(evl_task_read(st, ua, 0, buf, sizeof(buf)), -EIO);
		assert_int_equal(evl_writer_open(st, ua, &w), -EIO);
		/* and so is a writer opened before: nothing more is acknowledged, then lost */
		assert_int_equal(write_str(w2, buf), -EIO);
		evl_writer_close(w2);
		append_n(st, "b", 8, 2);
		/* closing works, but says so when an acknowledged event was lost */
		assert_int_equal(evl_store_close(st), gone ? -EIO : 0);
		st = open_store(dir, false, 2);
		assert_int_equal(task_events(st, "b"), 10);
		evl_store_stats(st, &s);
		if (k % 2 == 0 && !gone) {
			/* its sidecar alone was removed: the recovery made it anew from the index */
			assert_int_equal(s.tasks_aside, 0);
			assert_int_equal(evl_writer_open(st, ua, &w), 0);
			evl_writer_close(w);
			assert_int_equal(task_events(st, "a"), 5);
		} else {
			/* a's files are still not what the index says: set aside again, at its first use */
			assert_int_equal(evl_writer_open(st, ua, &w), -EIO);
			evl_store_stats(st, &s);
			assert_int_equal(s.tasks_aside, 1);
		}
		append_n(st, "b", 10, 1);
		assert_int_equal(within(30, "a checkpoint", do_checkpoint, st), 0);
		/* deleted, it is no longer named as set aside */
		assert_int_equal(evl_task_delete(st, "a"), 0);
		assert_int_equal(within(30, "a checkpoint", do_checkpoint, st), 0);
		evl_store_stats(st, &s);
		assert_int_equal(s.tasks_aside, 0);
		assert_string_equal(s.aside, "");
		assert_int_equal(evl_store_close(st), 0);
	}
}

/*
 * Review (rev-damage): a checkpoint must not vouch for the log of a task
 * set aside that it never synced.  Task a gets events 3 and 4 applied (in
 * its log and the index, not yet synced), then a line appended to its log
 * outside the store sets it aside at the next append (event 5, kept in
 * events.unapplied).  The checkpoint skips a's fsync (sync_dirty_cb:
 * is_aside) yet clears the dirty set and trims the journal: a power loss
 * then takes events 3 and 4 with nothing left to recover them from.
 */
static void aside_child(const char *dir, const char *dump)
{
	struct evl_options o;
	struct evl_store *st;
	struct evl_writer *w;
	struct evl_stats s;
	char stash[4400], path[4400], buf[128];
	int fd;

	fio_install();
	snprintf(stash, sizeof(stash), "%s.stash", dir);
	fio_track_dirs(stash);
	evl_options_default(&o);
	o.commit_sync = true;
	if (evl_store_open(dir, &o, &st) || evl_writer_open(st, task_uid(st, "a"), &w))
		_exit(2);
	for (int i = 3; i < 5; i++) {
		event_line(buf, sizeof(buf), 1, 0, i, 3);
		if (write_str(w, buf))
			_exit(3);
	}
	/* applied (in a's log and the index), not checkpointed */
	if (!wait_settled(st, false, &s) || s.ckpt_lsn == s.applied_lsn)
		_exit(4);
	/* a line appended to a's log outside the store */
	snprintf(path, sizeof(path), "%s/tasks/a/events", dir);
	fd = open(path, O_WRONLY | O_APPEND);
	if (fd < 0 || write(fd, "{\"type\":\"zz\"}\n", 14) != 14)
		_exit(5);
	close(fd);
	event_line(buf, sizeof(buf), 1, 0, 5, 3);
	if (write_str(w, buf))
		_exit(6);
	if (!wait_settled(st, true, &s))
		_exit(7);
	/* the checkpoint: a's log was never synced, yet the journal goes */
	if (evl_store_checkpoint(st))
		_exit(8);
	fio_freeze_and_dump(dump);
	_exit(0);
}

static void aside_task_applied_events_survive_power_loss(void **state)
{
	const char *dir = *state;
	char dump[4400], stash[4400], path[4400];
	struct fio_loss loss = { 0 };
	struct evl_store *st;
	struct stat sb;
	uint64_t want;
	int status;
	pid_t pid;

	snprintf(dump, sizeof(dump), "%s.dump", dir);
	snprintf(stash, sizeof(stash), "%s.stash", dir);
	st = open_store(dir, true, 2);
	create(st, "a");
	append_n(st, "a", 0, 3);
	assert_int_equal(evl_store_close(st), 0);	/* events 0-2 synced */
	pid = fork();
	if (pid == 0)
		aside_child(dir, dump);
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		fail_msg("the child ended with status %d", status);
	/* nothing unsynced kept */
	assert_int_equal(fio_apply_powerloss(dump, 1, FIO_LOSS_ALL, &loss), 0);
	{
		char buf[128];

		want = 0;
		for (int i = 0; i < 5; i++)
			want += event_line(buf, sizeof(buf), 1, 0, i, 3);
	}
	/* events 0-4 acknowledged and applied to the log: still in it (5 is in events.unapplied) */
	snprintf(path, sizeof(path), "%s/tasks/a/events", dir);
	assert_int_equal(stat(path, &sb), 0);
	if ((uint64_t)sb.st_size < want)
		fail_msg("a's log holds %lld bytes after the power loss, its acknowledged events "
			 "%llu: events the checkpoint trimmed from the journal are gone",
			 (long long)sb.st_size, (unsigned long long)want);
	unlink(dump);
	tu_rmrf(stash);
}

/*
 * Review (rev-damage): events.unapplied gets each event whole, once, and
 * durably.  An fsync of it that fails (EIO; ENOSPC likewise) is retried by
 * the applier (put_aside: not task_damage), and tasklog_rescue appends the
 * event again with O_APPEND after the first copy: the line is there twice
 * (after a partial write with ENOSPC, a spliced line).  And the failed
 * fsync is not sticky (io->fsync, not the tasklog's sync_one): the retry's
 * fsync succeeds and "vouches" for pages the kernel may have dropped (I5).
 */
static void rescue_retried_after_a_failed_fsync_is_once(void **state)
{
	static const char other[] = "{\"type\":\"b\",\"j\":9}\n";
	const char *dir = *state;
	char path[4400], buf[4096], want[128];
	struct evl_store *st;
	struct evl_stats s;
	int fd;
	ssize_t n;

	st = open_store(dir, true, 2);
	create(st, "x");
	append_n(st, "x", 0, 3);
	assert_int_equal(evl_store_close(st), 0);
	fio_install();
	st = open_store(dir, true, 2);
	append_to(dir, "events", other, sizeof(other) - 1);
	fio_fail_path(FIO_SYNC, "/events.unapplied", EIO);
	append_n(st, "x", 3, 1);
	/* a checkpoint reports the applier's failure at once (item 9): until the retry works */
	for (int k = 0; k < 50 && within(30, "a checkpoint", do_checkpoint, st); k++)
		usleep(100000);
	assert_int_equal(within(30, "a checkpoint", do_checkpoint, st), 0);
	evl_store_stats(st, &s);
	assert_int_equal(s.events_unapplied, 1);
	print_message("faults injected: %ld\n", fio_failed());
	assert_int_equal(evl_store_close(st), 0);
	fio_uninstall();
	snprintf(path, sizeof(path), "%s/tasks/x/events.unapplied", dir);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	event_line(want, sizeof(want), 1, 0, 3, 3);
	assert_string_equal(buf, want);
}

/*
 * Review (rev-damage): a retention rewrite of a task whose log was appended
 * to outside the store copies only what the index covers (tasklog_rw_copy
 * up to the index's length) and renames the copy over the log: the foreign
 * line is deleted without a word, where an append would have set the task
 * aside and fsck --repair would have moved the line to events.unapplied.
 */
static void retention_keeps_a_foreign_line(void **state)
{
	static const char other[] = "{\"type\":\"b\",\"j\":9}\n";
	const char *dir = *state;
	struct evl_compact_args args = { .keep_last = 5 };
	struct evl_compact_status cs;
	struct evl_store *st;
	char path[4400], all[8192], un[4096] = "";
	ssize_t n;
	int fd;

	st = open_store(dir, false, 2);
	create(st, "x");
	append_n(st, "x", 0, 20);
	assert_int_equal(evl_store_close(st), 0);
	append_to(dir, "events", other, sizeof(other) - 1);
	st = open_store(dir, false, 2);
	assert_int_equal(evl_compact_start(st, &args), 0);
	wait_compaction(st, &cs);
	print_message("compaction: %d\n", cs.last_rc);
	assert_int_equal(evl_store_close(st), 0);
	snprintf(path, sizeof(path), "%s/tasks/x/events", dir);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, all, sizeof(all) - 1);
	close(fd);
	all[n > 0 ? n : 0] = '\0';
	snprintf(path, sizeof(path), "%s/tasks/x/events.unapplied", dir);
	fd = open(path, O_RDONLY);
	if (fd >= 0) {
		n = read(fd, un, sizeof(un) - 1);
		close(fd);
		un[n > 0 ? n : 0] = '\0';
	}
	if (!strstr(all, other) && !strstr(un, other))
		fail_msg("retention deleted the line appended outside the store (log now %zu bytes)",
			 strlen(all));
}

/*
 * Review (rev-damage): a log cut short on disk (the damage this branch sets
 * aside) and a compaction: tasklog_rw_copy finds it "shorter than indexed"
 * and fails the rewrite with EIO.  The task is not set aside, so every
 * compaction fails on it again; does task b's retention still happen?
 */
static void retention_of_others_survives_a_cut_log(void **state)
{
	const char *dir = *state;
	struct evl_compact_args args = { .keep_last = 5 };
	struct evl_compact_status cs;
	struct evl_store *st;
	struct evl_stats s;
	char path[4400];

	st = open_store(dir, false, 2);
	create(st, "a");
	create(st, "b");
	append_n(st, "a", 0, 20);
	append_n(st, "b", 0, 20);
	assert_int_equal(evl_store_close(st), 0);
	snprintf(path, sizeof(path), "%s/tasks/a/events", dir);
	assert_int_equal(truncate(path, 40), 0);
	st = open_store(dir, false, 2);
	assert_int_equal(evl_compact_start(st, &args), 0);
	wait_compaction(st, &cs);
	evl_store_stats(st, &s);
	print_message("compaction: rc %d; b has %" PRIu64 " events; %" PRIu64 " tasks set aside\n",
		      cs.last_rc, task_events(st, "b"), s.tasks_aside);
	assert_int_equal(task_events(st, "b"), 5);
	assert_int_equal(s.tasks_aside, 1);
	assert_int_equal(cs.last_rc, 0);
	evl_store_close(st);
}

/*
 * Review (rev-damage): issue 15 item 2's "mkdir erases t1's events on disk"
 * with a valid index: a task directory put in tasks/ behind the store's back
 * (a task copied back from a backup; the index does not know it) and a
 * mkdir of that name: tasklog_create ignores EEXIST and opens both files
 * with O_TRUNC, erasing the copied events.  They should be refused (EEXIST)
 * or the task set aside, never emptied.
 */
static void create_over_a_restored_task_keeps_its_events(void **state)
{
	static const char line[] = "{\"type\":\"b\",\"j\":9}\n";
	const char *dir = *state;
	struct evl_store *st;
	char path[4400];
	struct stat sb;
	int fd;

	st = open_store(dir, false, 2);
	create(st, "x");
	assert_int_equal(evl_store_close(st), 0);
	snprintf(path, sizeof(path), "%s/tasks/zz", dir);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/tasks/zz/events", dir);
	assert_true((fd = open(path, O_WRONLY | O_CREAT, 0644)) >= 0);
	assert_int_equal(write(fd, line, sizeof(line) - 1), (ssize_t)sizeof(line) - 1);
	close(fd);
	st = open_store(dir, false, 2);
	evl_task_create(st, "zz");
	evl_store_close(st);
	assert_int_equal(stat(path, &sb), 0);
	if (sb.st_size != sizeof(line) - 1)
		fail_msg("the create of zz left its existing log at %lld bytes (was %zu)",
			 (long long)sb.st_size, sizeof(line) - 1);
}

/*
 * Review (rev-damage): SPEC 8 and 10 for a view follower.  An event of a
 * task that the applier then sets aside is served in a view while pending
 * (each_pending does not look at aside), and leaves the view when it is put
 * in events.unapplied: the view shrinks under a follower, and the next
 * event of another task is served from the follower's old offset on, a
 * line cut at its start.
 */
static void view_follower_gets_no_cut_line_after_set_aside(void **state)
{
	static const char other[] = "{\"type\":\"b\",\"j\":9}\n";
	const char *dir = *state;
	struct evl_options o;
	struct evl_store *st;
	struct evl_view *v;
	struct evl_writer *w;
	char buf[8192], line[256];
	ssize_t n;
	uint64_t off = 0;

	st = open_store(dir, false, 2);
	create(st, "a");
	create(st, "b");
	append_n(st, "a", 0, 2);
	append_n(st, "b", 0, 2);
	assert_int_equal(evl_store_close(st), 0);
	{
		char path[4400];
		int fd;

		snprintf(path, sizeof(path), "%s/tasks/a/events", dir);
		assert_true((fd = open(path, O_WRONLY | O_APPEND)) >= 0);
		assert_int_equal(write(fd, other, sizeof(other) - 1), (ssize_t)sizeof(other) - 1);
		close(fd);
	}
	evl_options_default(&o);
	o.hold_apply = true;
	assert_int_equal(evl_store_open(dir, &o, &st), 0);
	append_n(st, "a", 2, 1);	/* pending: shown in the view */
	assert_int_equal(evl_view_open(st, "ty01", 4, 0, &v), 0);
	while ((n = evl_view_read(v, off, buf, sizeof(buf))) > 0)
		off += n;	/* a follower read everything, the pending event too */
	assert_int_equal(evl_store_checkpoint(st), 0);	/* a set aside: the event leaves */
	assert_int_equal(evl_writer_open(st, task_uid(st, "b"), &w), 0);
	event_line(line, sizeof(line), 1, 0, 99, 60);
	assert_int_equal(write_str(w, line), 0);
	assert_int_equal(evl_writer_close(w), 0);
	assert_int_equal(evl_store_checkpoint(st), 0);
	n = evl_view_read(v, off, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	print_message("the follower reads from %" PRIu64 ": %zd bytes: %s", off, n, buf);
	assert_true(n <= 0 || buf[0] == '{');
	evl_view_close(v);
	evl_store_close(st);
}

static int do_close(void *arg);

struct stuck_writer {
	struct evl_store *st;
	uint64_t uid;
	int acked, rc;
};

static int write_until_refused(void *arg)
{
	struct stuck_writer *s = arg;
	struct evl_writer *w;
	char line[200];
	int rc;

	rc = evl_writer_open(s->st, s->uid, &w);
	if (rc)
		return rc;
	for (s->acked = 0; s->acked < 100000; s->acked++) {
		int n = event_line(line, sizeof(line), 1, 0, s->acked, 40);

		rc = evl_writer_write(w, line, n);
		if (rc)
			break;
	}
	evl_writer_close(w);
	return rc;
}

/*
 * A failure the applier cannot cure by waiting (no descriptor left: EMFILE)
 * reaches the writers that wait for it as their errno, within a bounded
 * time, instead of holding them on max_pending for ever; what does not need
 * the applier (listing, lookups) is served meanwhile; once the cause is
 * gone everything acknowledged is applied, by itself.
 */
static void failing_applier_refuses_waiting_writers(void **state)
{
	const char *dir = *state;
	struct evl_options o;
	struct evl_store *st;
	struct stuck_writer sw;
	struct evl_task_info info;
	uint64_t t0;
	int rc;

	evl_options_default(&o);
	o.max_pending = 8192;
	o.commit_ms = 2;
	assert_int_equal(evl_store_open(dir, &o, &st), 0);
	create(st, "a");
	create(st, "b");
	append_n(st, "a", 0, 2);
	assert_int_equal(evl_store_close(st), 0);
	fio_install();
	assert_int_equal(evl_store_open(dir, &o, &st), 0);
	fio_fail(FIO_OPEN, 0, EMFILE, true);	/* every open from now on */
	sw = (struct stuck_writer){ st, task_uid(st, "a"), 0, 0 };
	t0 = tu_now_ms();
	rc = within(60, "a writer held by max_pending", write_until_refused, &sw);
	assert_int_equal(rc, -EMFILE);
	print_message("EMFILE after %d events, %" PRIu64 " ms\n", sw.acked,
		      tu_now_ms() - t0);
	assert_true(sw.acked > 5);
	assert_int_equal(within(30, "a checkpoint", do_checkpoint, st), -EMFILE);
	assert_int_equal(evl_task_lookup(st, "b", &info), 0);
	assert_int_equal(count_tasks(st), 2);
	/* the cause goes: everything acknowledged is applied, with no remount */
	fio_clear();
	append_n(st, "b", 0, 3);
	assert_int_equal(within(30, "a checkpoint", do_checkpoint, st), 0);
	assert_int_equal(task_events(st, "a"), 2 + (uint64_t)sw.acked);
	assert_int_equal(task_events(st, "b"), 3);
	check_tasks(st, dir);
	check_views(st, dir);
	assert_int_equal(within(30, "close", do_close, st), 0);
	fio_uninstall();
}

/*
 * An event past the index whose sidecar record vouches for it is adopted
 * only if its bytes are the ones its record's checksum was made of: one
 * changed on disk (still valid JSON) was indexed, and the first read set
 * the whole task aside (found in review).  It goes to events.unapplied,
 * counted; the task's other events are served.
 */
static void a_changed_event_past_the_index_is_not_adopted(void **state)
{
	static const char written[] = "{\"type\":\"a\",\"i\":8}\n";
	static const char ondisk[] = "{\"type\":\"a\",\"i\":7}\n";
	const char *dir = *state;
	struct evl_store *st;
	struct evl_stats s;
	struct tasklog_rec last, r;
	unsigned char enc[TASKLOG_REC];
	char path[4400], *meta, *log, *un;
	size_t mlen, len, ulen;

	st = open_store(dir, true, 2);
	create(st, "x");
	append_n(st, "x", 0, 3);
	assert_int_equal(evl_store_close(st), 0);
	snprintf(path, sizeof(path), "%s/tasks/x/events.meta", dir);
	meta = slurp(path, &mlen);
	assert_int_equal(tasklog_decode((unsigned char *)meta + mlen - TASKLOG_REC, &last), 0);
	free(meta);
	/* a batch whose index commit and journal records were lost, then a changed byte */
	r = (struct tasklog_rec){ last.gseq + 1, last.time_ns + 1, sizeof(written) - 1,
				  tasklog_sum(written, sizeof(written) - 1) };
	tasklog_encode(&r, enc);
	append_to(dir, "events", ondisk, sizeof(ondisk) - 1);
	append_to(dir, "events.meta", enc, TASKLOG_REC);

	st = open_store(dir, true, 2);
	assert_int_equal(task_events(st, "x"), 3);
	log = read_all(st, task_uid(st, "x"), NULL, &len);
	assert_null(memmem(log, len, ondisk, sizeof(ondisk) - 1));
	free(log);
	evl_store_stats(st, &s);
	assert_int_equal(s.tasks_aside, 0);
	assert_int_equal(evl_store_close(st), 0);
	snprintf(path, sizeof(path), "%s/tasks/x/events.unapplied", dir);
	un = slurp(path, &ulen);
	assert_non_null(un);
	assert_non_null(memmem(un, ulen, ondisk, sizeof(ondisk) - 1));
	free(un);
}

/*
 * A crash lost a batch's index commit after its bytes reached the task's
 * files, and the journal lost its record too (a damaged or emptied
 * journal): nothing replays it.  The event is the store's own (its
 * sidecar record checks out and ends a whole valid line): the open indexes
 * it where it is, with its gseq and time, and gseqs go on past it.  It was
 * once left past the index, unserved, and the next append set the task
 * aside (the damage sweep: trunc0 and restore_old of journal/).
 */
static void events_past_the_index_are_indexed_without_their_journal(void **state)
{
	static const char ev[] = "{\"type\":\"ty1\",\"i\":3}\n";
	const char *dir = *state;
	/* later than the appends before it: the task's last append time */
	struct tasklog_rec rec = { .gseq = 1000, .time_ns = (uint64_t)(time(NULL) + 1000) * 1000000000ull,
				   .len = sizeof(ev) - 1 };
	struct evl_task_info info;
	struct evl_store *st;
	struct evl_writer *w;
	struct tasklog *tl;
	char path[4400], *log;
	uint64_t uid, off = 0;
	size_t len;

	st = open_store(dir, true, 2);
	create(st, "x");
	uid = task_uid(st, "x");
	assert_int_equal(evl_writer_open(st, uid, &w), 0);
	for (int i = 0; i < 3; i++) {
		char line[64];

		snprintf(line, sizeof(line), "{\"type\":\"ty1\",\"i\":%d}\n", i);
		off += strlen(line);
		assert_int_equal(write_str(w, line), 0);
	}
	assert_int_equal(evl_writer_close(w), 0);
	assert_int_equal(evl_store_close(st), 0);

	/* what the applier wrote before the crash; no journal record holds it */
	snprintf(path, sizeof(path), "%s/tasks", dir);
	assert_int_equal(tasklog_open(path, 8, &tl), 0);
	assert_int_equal(tasklog_write(tl, uid, "x", off, ev, sizeof(ev) - 1, 3, &rec, 1, 0), 0);
	assert_int_equal(tasklog_sync(tl, uid, "x"), 0);
	tasklog_close(tl);

	st = open_store(dir, true, 2);
	assert_int_equal(task_events(st, "x"), 4);
	log = read_all(st, uid, NULL, &len);
	assert_int_equal(len, off + sizeof(ev) - 1);
	assert_memory_equal(log + off, ev, sizeof(ev) - 1);
	free(log);
	assert_int_equal(evl_task_lookup(st, "x", &info), 0);
	assert_int_equal(info.last_ns, rec.time_ns);
	/* appends go on, past its gseq, and the task is not set aside */
	append_n(st, "x", 10, 2);
	assert_int_equal(task_events(st, "x"), 6);
	check_views(st, dir);
	check_tasks(st, dir);
	assert_int_equal(evl_store_close(st), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(round_trip, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(lock_survives_rm_of_the_lock_file, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(holder_before_its_pid_is_written, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(a_broken_task_is_set_aside, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(view_follower_gets_no_cut_line_after_set_aside, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(create_over_a_restored_task_keeps_its_events, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(retention_of_others_survives_a_cut_log, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(retention_keeps_a_foreign_line, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(rescue_retried_after_a_failed_fsync_is_once, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(aside_task_applied_events_survive_power_loss,
						tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(failing_applier_refuses_waiting_writers, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(bad_writes_store_nothing, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(refused_lines_are_forgotten, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(flush_valid_keeps_an_incomplete_line, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(max_held_bounds_all_writers, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(largest_event_is_storable, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(read_your_writes_before_apply, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(concurrent_writers, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(delete_leaves_views_at_once, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(one_view_read_by_many_threads, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(writers_wait_on_max_pending, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(lock_excludes_an_older_daemon, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(second_open_is_refused, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(append_after_early_delete_stays_in_views, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(early_deleted_create_stays_unmade, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(listing_skips_pending_deletes, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(failed_early_delete_leaves_files_in_trash, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(journal_bad_record_costs_only_itself, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(journal_lost_create_leaves_other_tasks, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(journal_bad_segment_header_keeps_its_records,
						tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(power_loss_after_early_delete, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(power_loss_after_inorder_delete, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(crash_after_early_deletes_and_recreates, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(two_deletes_both_succeed, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(task_size_is_exact_while_applying, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(view_reads_survive_deletes, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(held_back_writer_sleeps, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(creates_and_deletes_while_applying_fails, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(pending_memory_is_bounded, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(held_appends_are_applied_at_close, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(lock_file_short_write_fails, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(hold_apply_holds_only_appends, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(index_map_grows_under_load, tu_setup, tu_teardown),
		cmocka_unit_test(compact_arguments),
		cmocka_unit_test_setup_teardown(compaction_reclaims_deleted_tasks, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(compaction_expires_idle_tasks, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(appends_go_on_during_compaction, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(compaction_finishes_while_writers_never_stop, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(nodelete_refuses_deletion, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(huge_durations_expire_nothing, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(expire_deletes_what_it_listed, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(delete_by_uid_checks_idleness, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(close_stops_a_compaction, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(stats_count_the_backlog, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(retention_keeps_the_newest, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(retention_by_age, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(retention_survives_a_crash_at_every_step, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(delete_survives_a_crash_at_every_step, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(retention_survives_power_loss_at_every_step, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(delete_survives_power_loss_at_every_step, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(full_pending_after_failed_fsync_fails_fast, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(kill9_loses_nothing_acknowledged, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(power_loss_keeps_what_was_durable, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(a_changed_event_past_the_index_is_not_adopted, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(events_past_the_index_are_indexed_without_their_journal,
						tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(replay_after_power_loss_fills_holes, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(aside_event_kept_once_across_a_crash, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(foreign_line_survives_a_kill_after_set_aside, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(failed_fsync_keeps_the_journal, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(faults_at_every_site, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(faults_in_recovery, tu_setup, tu_teardown),
	};

	return tu_run_tests("store", tests, sizeof(tests) / sizeof(tests[0]));
}
