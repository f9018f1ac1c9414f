/*
 * test_check.c - evl_fsck, finding and repairing an index that disagrees
 * with the logs: tampered entries, damaged sidecar records (and reindex's
 * answer to the same damage), a corrupt journal record, a repair cut short,
 * and stores whose close stopped a retention between its steps.  Every
 * test compares views byte for byte with what they held before.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include <cmocka.h>

#include "evlog.h"
#include "fio.h"
#include "index.h"
#include "tasklog.h"
#include "testutil.h"

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
		tu_stray_entry(t, 1, 1000000, "error.io", 1 << 20, 20);
	assert_int_equal(index_commit(t), 0);
	index_close(ix);
}

static void fsck_finds_and_repairs(void **state)
{
	const char *dir = *state;
	struct evl_check_result r;
	struct evl_store *st = tu_open_default(dir);
	char *before;

	tu_fill(st, 0, 400);
	assert_int_equal(evl_task_delete(st, "t3"), 0);	/* awaiting purge: no finding */
	assert_int_equal(evl_store_close(st), 0);
	before = tu_dump(dir);

	assert_int_equal(tu_fsck(dir, false, &r), 0);
	assert_int_equal(r.problems, 0);
	assert_int_equal(r.tasks, 3);
	assert_int_equal(r.events, 300);

	tamper(dir, true, true);
	assert_int_equal(tu_fsck(dir, false, &r), 0);
	assert_true(r.problems >= 2);
	assert_true(tu_reported("type note: event gseq"));
	assert_true(tu_reported("type error.io: entry gseq 1000000"));
	assert_int_equal(r.fixed, 0);

	assert_int_equal(tu_fsck(dir, true, &r), 0);
	assert_true(tu_reported("F type note: entries rebuilt"));
	assert_true(tu_reported("F type error.io: entries rebuilt"));
	assert_false(tu_reported("F type tool"));
	assert_int_equal(tu_fsck(dir, false, &r), 0);
	assert_int_equal(r.problems, 0);
	{
		char *after = tu_dump(dir);

		assert_string_equal(after, before);
		free(after);
	}
	free(before);
}

/*
 * Review (rev-damage): README "whole lines after a log's last event are
 * moved to events.unapplied, not deleted".  Two whole lines appended to a
 * log outside the store, then an unterminated fragment (a writer killed
 * mid-line, or a second copy cut short): keep_tail keeps nothing unless the
 * whole tail ends in a newline, and ck_cut_tails then deletes both whole lines.
 */
static void repair_keeps_whole_lines_before_a_fragment(void **state)
{
	static const char tail[] = "{\"type\":\"note\",\"x\":1}\n{\"type\":\"note\",\"x\":2}\n{\"typ";
	const char *dir = *state;
	struct evl_check_result r;
	struct evl_store *st = tu_open_default(dir);
	char path[4400], got[256] = "";
	ssize_t n = 0;
	int fd;

	tu_fill(st, 0, 40);
	assert_int_equal(evl_store_close(st), 0);
	snprintf(path, sizeof(path), "%s/tasks/t1/events", dir);
	assert_true((fd = open(path, O_WRONLY | O_APPEND)) >= 0);
	assert_int_equal(write(fd, tail, sizeof(tail) - 1), (ssize_t)sizeof(tail) - 1);
	close(fd);
	assert_int_equal(tu_fsck(dir, true, &r), 0);
	for (int i = 0; i < tu_nlines; i++)
		print_message("%s\n", tu_lines[i]);
	snprintf(path, sizeof(path), "%s/tasks/t1/events.unapplied", dir);
	fd = open(path, O_RDONLY);
	if (fd >= 0) {
		n = read(fd, got, sizeof(got) - 1);
		close(fd);
	}
	got[n > 0 ? n : 0] = '\0';
	assert_string_equal(got, "{\"type\":\"note\",\"x\":1}\n{\"type\":\"note\",\"x\":2}\n");
}

/*
 * Issue 15 item 4: damage to a sidecar's records must not cost an event
 * the log and the index both hold.  @how: "cut" drops the last record
 * (truncate -s -32), "flip" flips a bit in the last record, "mid" flips a
 * bit in the third.  fsck --repair and reindex rebuild the records from
 * the log and the index and keep every event.
 */
static void sidecar_damage_case(const char *dir, const char *how, bool use_reindex)
{
	struct evl_check_opts o = { .report = tu_collect };
	struct evl_check_result r;
	struct evl_store *st = tu_open_default(dir);
	char meta[4400], *before, *after;
	uint64_t log_size, meta_size;
	unsigned char c;
	int fd;

	tu_fill(st, 0, 24);	/* t1: 6 events */
	assert_int_equal(evl_store_close(st), 0);
	before = tu_dump(dir);
	log_size = tu_file_size(dir, "tasks/t1/events");
	meta_size = tu_file_size(dir, "tasks/t1/events.meta");
	assert_int_equal(meta_size, 6 * TASKLOG_REC);

	snprintf(meta, sizeof(meta), "%s/tasks/t1/events.meta", dir);
	if (!strcmp(how, "cut")) {
		assert_int_equal(truncate(meta, meta_size - TASKLOG_REC), 0);
	} else {
		off_t at = !strcmp(how, "mid") ? 2 * TASKLOG_REC + 9 : 5 * TASKLOG_REC + 9;	/* its time */

		fd = open(meta, O_RDWR);
		assert_true(fd >= 0);
		assert_int_equal(pread(fd, &c, 1, at), 1);
		c ^= 4;
		assert_int_equal(pwrite(fd, &c, 1, at), 1);
		close(fd);
	}

	assert_int_equal(tu_fsck(dir, false, &r), 0);
	assert_true(r.problems > 0);
	if (use_reindex) {
		tu_nlines = 0;
		assert_int_equal(evl_reindex(dir, &o, &r), 0);
	} else {
		assert_int_equal(tu_fsck(dir, true, &r), 0);
	}
	for (int i = 0; i < tu_nlines; i++)
		print_message("%s %s: %s\n", how, use_reindex ? "reindex" : "repair", tu_lines[i]);
	assert_false(tu_reported("torn tail cut"));
	assert_int_equal(tu_file_size(dir, "tasks/t1/events"), log_size);
	assert_int_equal(tu_file_size(dir, "tasks/t1/events.meta"), meta_size);
	assert_int_equal(tu_fsck(dir, false, &r), 0);
	for (int i = 0; i < tu_nlines; i++)
		print_message("after: %s\n", tu_lines[i]);
	assert_int_equal(r.problems, 0);
	assert_int_equal(r.events, 24);
	after = tu_dump(dir);
	assert_string_equal(after, before);
	free(after);
	free(before);
}

static void repair_keeps_events_a_cut_sidecar_lost(void **state)
{
	sidecar_damage_case(*state, "cut", false);
}

static void repair_keeps_events_a_flipped_sidecar_record_names(void **state)
{
	sidecar_damage_case(*state, "flip", false);
}

static void repair_mends_a_sidecar_record_in_the_middle(void **state)
{
	sidecar_damage_case(*state, "mid", false);
}

static void reindex_keeps_events_a_cut_sidecar_lost(void **state)
{
	sidecar_damage_case(*state, "cut", true);
}

static void reindex_keeps_events_a_flipped_sidecar_record_names(void **state)
{
	sidecar_damage_case(*state, "flip", true);
}

/*
 * Issue 15 item 5, the tools' side: fsck names a corrupt journal record
 * in the middle as lost (not "a torn last record"), and fsck --repair
 * replays every record after it.
 */
static void fsck_names_a_corrupt_journal_record(void **state)
{
	const char *dir = *state;
	struct evl_check_result r;
	struct evl_options o;
	struct evl_store *st;
	struct evl_task_info info;
	char seg[4400], buf[256];
	unsigned char c;
	int status, fd;
	pid_t pid;

	evl_options_default(&o);
	o.commit_sync = true;
	assert_int_equal(evl_store_open(dir, &o, &st), 0);
	assert_int_equal(evl_task_create(st, "t"), 0);
	assert_int_equal(evl_task_lookup(st, "t", &info), 0);
	assert_int_equal(evl_store_close(st), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct evl_writer *w;

		o.hold_apply = true;
		if (evl_store_open(dir, &o, &st) || evl_writer_open(st, info.uid, &w))
			_exit(2);
		for (int i = 0; i < 10; i++) {
			int len = snprintf(buf, sizeof(buf), "{\"type\":\"note\",\"i\":%d}\n", i);

			if (evl_writer_write(w, buf, len))
				_exit(3);
		}
		_exit(0);	/* unapplied: only the journal holds them */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* the create was lsn 1 (trimmed at close); the child's segment starts at 2 */
	snprintf(seg, sizeof(seg), "%s/journal/0000000000000002.jnl", dir);
	fd = open(seg, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, 32 + 3 * 32 + 40), 1);	/* in a record's payload */
	c ^= 1;
	assert_int_equal(pwrite(fd, &c, 1, 32 + 3 * 32 + 40), 1);
	close(fd);

	assert_int_equal(tu_fsck(dir, false, &r), 0);
	for (int i = 0; i < tu_nlines; i++)
		print_message("fsck: %s\n", tu_lines[i]);
	assert_true(tu_reported("corrupt and lost"));
	assert_false(tu_reported("torn last record"));
	assert_int_equal(r.journal_lost, 1);
	assert_true(r.problems > 0);

	assert_int_equal(tu_fsck(dir, true, &r), 0);
	for (int i = 0; i < tu_nlines; i++)
		print_message("fsck --repair: %s\n", tu_lines[i]);
	assert_true(tu_reported("corrupt and lost"));
	assert_int_equal(r.events, 9);
	assert_int_equal(tu_fsck(dir, false, &r), 0);
	assert_int_equal(r.problems, 0);
	assert_int_equal(r.events, 9);
	strcat(seg, ".corrupt");
	assert_int_equal(access(seg, F_OK), 0);
}

static void fsck_refuses_an_open_store(void **state)
{
	const char *dir = *state;
	struct evl_check_result r;
	struct evl_store *st = tu_open_default(dir);

	assert_int_equal(tu_fsck(dir, false, &r), -EBUSY);
	assert_true(tu_reported("in use by pid"));
	assert_int_equal(evl_store_close(st), 0);
}

static void die_after_fix(void *arg, char level, const char *line)
{
	(void)arg;
	tu_collect(arg, level, line);
	/* fix_tasks is committed before the first type is rebuilt: a kill here */
	if (level == 'F' && !strncmp(line, "type ", 5))
		_exit(42);
}

/*
 * Review of issue 15 part 4, finding 1: fsck --repair committed the task
 * records (fix_tasks) and the live totals (check_meta) in different
 * transactions, the per-type rebuilds between them.  A repair killed
 * between them left records that do not add up to the totals, which the
 * open's walk (walk_tasks) calls index damage: the mount and fsck refused
 * a store only reindex could open.  fix_tasks now puts the totals with the
 * records.
 */
static void a_repair_cut_short_leaves_a_store_that_opens(void **state)
{
	const char *dir = *state;
	struct evl_check_result r;
	struct evl_options o;
	struct evl_store *st = tu_open_default(dir);
	char path[4400];
	pid_t pid;
	int status, rc;

	tu_fill(st, 0, 24);
	assert_int_equal(evl_store_close(st), 0);
	snprintf(path, sizeof(path), "%s/tasks/t2", dir);
	tu_rmrf(path);		/* a task directory removed by hand: fsck --repair's to fix */
	pid = fork();
	if (pid == 0) {
		struct evl_check_opts co = { .repair = true, .report = die_after_fix };

		evl_fsck(dir, &co, &r);
		_exit(0);
	}
	waitpid(pid, &status, 0);
	print_message("child exit %d\n", WEXITSTATUS(status));
	assert_int_equal(WEXITSTATUS(status), 42);
	evl_options_default(&o);
	rc = evl_store_open(dir, &o, &st);
	print_message("open after an interrupted repair: %d (%s)\n", rc, rc ? strerror(-rc) : "ok");
	assert_int_equal(rc, 0);
	assert_int_equal(evl_store_close(st), 0);
	rc = tu_fsck(dir, true, &r);	/* finishes the job */
	for (int i = 0; i < tu_nlines; i++)
		print_message("  %s\n", tu_lines[i]);
	assert_int_equal(tu_fsck(dir, false, &r), 0);
	assert_int_equal(r.problems, 0);
}

static void die_after_note(void *arg, char level, const char *line)
{
	tu_collect(arg, level, line);
	/* the type of the line appended by hand: its entries are committed */
	if (level == 'F' && !strncmp(line, "type note: entries rebuilt", 26))
		_exit(43);
}

/*
 * Review of the walk's counter check: a line appended to t1's log by hand,
 * its sidecar removed.  fsck --repair's sidecar rebuild gives the line a
 * gseq past the index's next one and rebuild_type indexes it; check_meta,
 * a later transaction, raised the next gseq.  A repair killed before that
 * (killed here once note's entries are in) left a gseq in use past the
 * next one: the open's walk called it damage,
 * and only reindex could open the store.  fix_tasks now raises the next
 * gseq with the records, before any type is rebuilt.
 */
static void a_repair_cut_short_after_new_gseqs_leaves_a_store_that_opens(void **state)
{
	static const char ev[] = "{\"type\":\"note\",\"i\":99}\n";
	const char *dir = *state;
	struct evl_check_result r;
	struct evl_store *st = tu_open_default(dir);
	struct evl_task_info info;
	size_t len;
	char *log, *more;
	pid_t pid;
	int status;

	tu_fill(st, 0, 24);
	assert_int_equal(evl_store_close(st), 0);
	log = tu_slurp(dir, "tasks/t1/events", &len);
	more = malloc(len + sizeof(ev));
	assert_non_null(more);
	memcpy(more, log, len);
	memcpy(more + len, ev, sizeof(ev) - 1);
	tu_spit(dir, "tasks/t1/events", more, len + sizeof(ev) - 1);
	{
		char path[4400];

		snprintf(path, sizeof(path), "%s/tasks/t1/events.meta", dir);
		assert_int_equal(unlink(path), 0);
	}
	pid = fork();
	if (pid == 0) {
		struct evl_check_opts co = { .repair = true, .report = die_after_note };

		evl_fsck(dir, &co, &r);
		_exit(0);
	}
	waitpid(pid, &status, 0);
	print_message("child exit %d\n", WEXITSTATUS(status));
	assert_int_equal(WEXITSTATUS(status), 43);
	st = tu_open_default(dir);
	assert_int_equal(evl_task_lookup(st, "t1", &info), 0);
	assert_int_equal(info.events, 7);
	assert_int_equal(evl_store_close(st), 0);
	tu_fsck(dir, true, &r);
	assert_int_equal(tu_fsck(dir, false, &r), 0);
	assert_int_equal(r.problems, 0);
	free(more);
	free(log);
}

/*
 * A store of 200 events (t1: 50) in @dir whose retention @spec of t1
 * stopped after its DROPPING steps (its copy cannot begin: the .rewrite
 * file fails), its intent left in the index, @wait_s seconds after the
 * writes.  Returns the store, open, with the fault seam installed (and
 * cleared): the caller closes it, then fio_uninstall()s.
 */
static struct evl_store *retention_stopped(const char *dir, const char *spec, int wait_s,
					   struct evl_task_info *info)
{
	struct evl_compact_args args;
	struct evl_compact_status cs;
	struct evl_store *st;
	char why[100], suffix[64];
	uint64_t deadline;

	fio_install();	/* before the store's threads read the seam (fio.h) */
	st = tu_open_default(dir);
	tu_fill(st, 0, 200);
	assert_int_equal(evl_store_checkpoint(st), 0);
	assert_int_equal(evl_task_lookup(st, "t1", info), 0);
	if (wait_s)
		sleep(wait_s);
	snprintf(suffix, sizeof(suffix), "/.rewrite/%016" PRIx64 ".events", info->uid);
	fio_fail_path(FIO_OPEN, suffix, EIO);
	assert_int_equal(evl_compact_parse(spec, &args, why, sizeof(why)), 0);
	assert_int_equal(evl_compact_start(st, &args), 0);
	deadline = tu_now_ms() + 300000;
	for (evl_compact_status(st, &cs); cs.running && tu_now_ms() < deadline;
	     evl_compact_status(st, &cs))
		usleep(1000);
	assert_false(cs.running);
	assert_int_equal(cs.last_rc, -EIO);
	assert_int_equal(fio_failed(), 1);
	fio_clear();
	return st;
}

/*
 * A clean close that stops a compaction between the steps of a task's
 * retention (the randomized simtest, seed 1510008071): the intent stays
 * (retain.c: DROPPING), some of the task's oldest events have left the
 * index while its files are the old ones, and the next open finishes it.
 * fsck called that store broken ("event ... is not indexed" for each of
 * them, exit 1).  Made here by a copy that cannot begin (its .rewrite
 * file): every step is done, the intent stays.
 */
static void fsck_accepts_a_retention_a_close_stopped(void **state)
{
	const char *dir = *state;
	struct evl_store *st;
	struct evl_check_result r;
	struct evl_task_info info;
	char *log, buf[8192];
	size_t len;
	ssize_t n;

	st = retention_stopped(dir, "task=t1 keep-last=10", 0, &info);
	log = tu_slurp(dir, "tasks/t1/events", &len);
	assert_int_equal(evl_store_close(st), 0);
	fio_uninstall();

	tu_nlines = 0;
	assert_int_equal(tu_fsck(dir, false, &r), 0);
	for (int i = 0; i < tu_nlines; i++)
		print_message("%s\n", tu_lines[i]);
	assert_int_equal(r.problems, 0);
	assert_true(tu_reported("retention of 1 task was under way"));

	/* a retention row that does not match the files is no excuse (a copy: the open would trust it) */
	for (int how = 0; how < 3; how++) {
		struct index_retain tr;
		struct index_txn *t;
		struct index *ix;
		char bad[4200], path[4300];

		snprintf(bad, sizeof(bad), "%s.bad", dir);
		tu_copy_store(dir, bad);
		snprintf(path, sizeof(path), "%s/index", bad);
		assert_int_equal(index_open(path, NULL, &ix), 0);
		assert_int_equal(index_begin(ix, true, &t), 0);
		assert_int_equal(index_retain_get(t, info.uid, &tr), 0);
		if (how == 0)
			tr.cut_n += 2;
		else if (how == 1)
			tr.cut_len += 1;
		else
			tr.cut_gseq |= 1ull << 40;
		assert_int_equal(index_retain_put(t, &tr), 0);
		assert_int_equal(index_commit(t), 0);
		index_close(ix);
		tu_nlines = 0;
		assert_int_equal(tu_fsck(bad, false, &r), 0);
		assert_true(r.problems > 0);
		assert_true(tu_reported("does not match its files"));
		/* the open would cut kept events by it: it refuses, the files untouched */
		{
			struct evl_check_opts co = { .report = tu_collect };
			struct evl_options o;
			size_t len2;
			char *log2;

			evl_options_default(&o);
			assert_int_equal(evl_store_open(bad, &o, &st), -EUCLEAN);
			log2 = tu_slurp(bad, "tasks/t1/events", &len2);
			assert_int_equal(len2, len);
			assert_memory_equal(log2, log, len);
			free(log2);
			tu_nlines = 0;
			assert_int_equal(evl_reindex(bad, &co, &r), 0);
			st = tu_open_default(bad);
			assert_int_equal(evl_task_lookup(st, "t1", &info), 0);
			assert_int_equal(info.events, 50);
			assert_int_equal(evl_store_close(st), 0);
		}
		tu_rmrf(bad);
	}

	/* the open finishes it: the newest 10 stay */
	st = tu_open_default(dir);
	assert_int_equal(evl_task_lookup(st, "t1", &info), 0);
	assert_int_equal(info.events, 10);
	n = tu_read_task(st, "t1", buf, sizeof(buf));
	assert_true(n > 0 && (size_t)n < len);
	assert_memory_equal(buf, log + len - n, n);
	assert_int_equal(evl_store_close(st), 0);
	assert_int_equal(tu_fsck(dir, false, &r), 0);
	assert_int_equal(r.problems, 0);
	free(log);
}

/*
 * A retention that dropped every event of a task it looked at (all older
 * than max-age) takes the last one's gseq + 1 as its cut; gseqs are the
 * store's, so the task's next event (appended while the intent stands)
 * is usually past it.  The check of the intent against the files (the
 * open's retain_matches, fsck's check_retains) wanted it equal: a healthy
 * store whose close stopped such a retention would not open, and fsck
 * called it broken.
 */
static void a_retention_of_every_old_event_then_an_append(void **state)
{
	const char *dir = *state;
	struct evl_store *st;
	struct evl_check_result r;
	struct evl_task_info info;

	st = retention_stopped(dir, "task=t1 max-age=1s", 2, &info);
	tu_fill(st, 200, 4);	/* t1's new event: gseq 202, its cut 198 */
	assert_int_equal(evl_store_close(st), 0);
	fio_uninstall();

	assert_int_equal(tu_fsck(dir, false, &r), 0);
	for (int i = 0; i < tu_nlines; i++)
		print_message("%s\n", tu_lines[i]);
	assert_int_equal(r.problems, 0);
	assert_true(tu_reported("retention of 1 task was under way"));
	st = tu_open_default(dir);
	assert_int_equal(evl_task_lookup(st, "t1", &info), 0);
	assert_int_equal(info.events, 1);
	assert_int_equal(evl_store_close(st), 0);
	assert_int_equal(tu_fsck(dir, false, &r), 0);
	assert_int_equal(r.problems, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(fsck_finds_and_repairs, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(repair_keeps_whole_lines_before_a_fragment, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(repair_keeps_events_a_cut_sidecar_lost, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(repair_keeps_events_a_flipped_sidecar_record_names,
						tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(repair_mends_a_sidecar_record_in_the_middle, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(reindex_keeps_events_a_cut_sidecar_lost, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(reindex_keeps_events_a_flipped_sidecar_record_names,
						tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(fsck_names_a_corrupt_journal_record, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(fsck_refuses_an_open_store, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(a_repair_cut_short_leaves_a_store_that_opens, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(a_repair_cut_short_after_new_gseqs_leaves_a_store_that_opens,
						tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(fsck_accepts_a_retention_a_close_stopped, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(a_retention_of_every_old_event_then_an_append,
						tu_setup, tu_teardown),
	};

	return tu_run_tests("check", tests, sizeof(tests) / sizeof(tests[0]));
}
