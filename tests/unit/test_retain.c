/*
 * test_retain.c - retention (keep-last and max-age log rewrites): what it
 * keeps, a crash or a power loss at every step of one, and retention
 * beside a task whose log was changed outside the store.
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
#include <unistd.h>

#include <cmocka.h>

#include "evlog.h"
#include "fio.h"
#include "testutil.h"

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

static void expect_task(struct evl_store *st, const char *name, const char *want, size_t len)
{
	size_t glen;
	char *got = tu_read_all(st, tu_task_uid(st, name), NULL, &glen);

	if (glen != len || memcmp(got, want, len))
		fail_msg("task %s: %zu bytes, expected %zu", name, glen, len);
	free(got);
}

static void retention_keeps_the_newest(void **state)
{
	const char *dir = *state;
	struct evl_store *st = tu_open_store(dir, false, 2);
	static const int n[3] = { 300, 200, 20 };
	struct evl_compact_status cs;
	char *before[3], name[8], *grown;
	size_t len[3], glen, keep;
	struct tu_writer_arg a;

	for (int i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "r%d", i);
		a = (struct tu_writer_arg){ st, tu_create(st, name), i, n[i], 0 };
		assert_null(tu_writer_main(&a));
		before[i] = tu_read_all(st, a.uid, NULL, &len[i]);
	}

	/* one task only */
	tu_compact_and_wait(st, "task=r1 keep-last=50", &cs);
	assert_int_equal(cs.last_events_dropped, 150);
	assert_true(cs.last_bytes_reclaimed > 0);
	keep = last_lines(before[1], len[1], 50);
	expect_task(st, "r1", before[1] + keep, len[1] - keep);
	expect_task(st, "r0", before[0], len[0]);
	expect_task(st, "r2", before[2], len[2]);
	tu_check_views(st, dir);
	tu_check_tasks(st, dir);

	/* appends go on after the rewrite, at the new offsets */
	a = (struct tu_writer_arg){ st, tu_task_uid(st, "r1"), 5, 30, 1 };
	assert_null(tu_writer_main(&a));
	grown = tu_read_all(st, a.uid, NULL, &glen);
	assert_int_equal(glen - (len[1] - keep) > 0, 1);
	assert_memory_equal(grown, before[1] + keep, len[1] - keep);
	tu_check_views(st, dir);

	/* every task; one is short enough already */
	tu_compact_and_wait(st, "keep-last=60", &cs);
	assert_int_equal(cs.last_events_dropped, 240 + 20);
	keep = last_lines(before[0], len[0], 60);
	expect_task(st, "r0", before[0] + keep, len[0] - keep);
	keep = last_lines(grown, glen, 60);
	expect_task(st, "r1", grown + keep, glen - keep);
	expect_task(st, "r2", before[2], len[2]);
	tu_check_views(st, dir);
	tu_check_tasks(st, dir);

	/* the same after a reopen, and a second rewrite of a rewritten task */
	assert_int_equal(evl_store_close(st), 0);
	st = tu_open_store(dir, false, 2);
	tu_check_views(st, dir);
	tu_check_tasks(st, dir);
	tu_compact_and_wait(st, "keep-last=7", &cs);
	keep = last_lines(before[0], len[0], 7);
	expect_task(st, "r0", before[0] + keep, len[0] - keep);
	tu_check_views(st, dir);
	tu_check_tasks(st, dir);
	assert_int_equal(evl_store_close(st), 0);
	for (int i = 0; i < 3; i++)
		free(before[i]);
	free(grown);
}

static void retention_by_age(void **state)
{
	const char *dir = *state;
	struct evl_store *st = tu_open_store(dir, false, 2);
	struct evl_compact_status cs;
	struct evl_task_info info;
	struct tu_writer_arg a;
	uint64_t t0 = tu_now_ms();
	size_t len, glen;
	char *young, *all;

	a = (struct tu_writer_arg){ st, tu_create(st, "old"), 0, 50, 0 };
	assert_null(tu_writer_main(&a));
	a = (struct tu_writer_arg){ st, tu_create(st, "mixed"), 1, 40, 0 };
	assert_null(tu_writer_main(&a));
	all = tu_read_all(st, a.uid, NULL, &len);
	/* the events above age past 2 s; wait for that, by the clock */
	while (tu_now_ms() < t0 + 2300)
		usleep(10000);
	a = (struct tu_writer_arg){ st, a.uid, 2, 25, 0 };
	assert_null(tu_writer_main(&a));
	young = tu_read_all(st, a.uid, NULL, &glen);
	assert_true(glen > len);

	tu_compact_and_wait(st, "max-age=2s", &cs);
	assert_int_equal(cs.last_events_dropped, 90);
	expect_task(st, "mixed", young + len, glen - len);
	assert_int_equal(evl_task_lookup(st, "old", &info), 0);	/* emptied, not deleted */
	assert_int_equal(info.size, 0);
	assert_int_equal(info.events, 0);
	tu_check_views(st, dir);
	tu_check_tasks(st, dir);
	/* an emptied task takes appends again */
	a = (struct tu_writer_arg){ st, info.uid, 3, 5, 0 };
	assert_null(tu_writer_main(&a));
	tu_check_views(st, dir);
	tu_check_tasks(st, dir);
	assert_int_equal(evl_store_close(st), 0);
	free(young);
	free(all);
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
	struct tu_writer_arg a;
	struct fio_loss loss = { 0 };
	long k, after_seen = 0;

	snprintf(pristine, sizeof(pristine), "%s/pristine", dir);
	snprintf(work, sizeof(work), "%s/work", dir);
	st = tu_open_store(pristine, false, 2);
	a = (struct tu_writer_arg){ st, tu_create(st, "a"), 0, 120, 0 };
	assert_null(tu_writer_main(&a));
	a = (struct tu_writer_arg){ st, tu_create(st, "b"), 1, 60, 0 };
	assert_null(tu_writer_main(&a));
	for (int i = 0; i < 2; i++) {
		size_t keep;

		before[i] = tu_read_all(st, tu_task_uid(st, i ? "b" : "a"), NULL, &blen[i]);
		keep = last_lines(before[i], blen[i], 30);
		alen[i] = blen[i] - keep;
		after[i] = before[i] + keep;
	}
	assert_int_equal(evl_store_close(st), 0);

	for (k = 0;; k++) {
		struct evl_compact_status cs;
		int status;
		pid_t pid;

		tu_copy_store(pristine, work);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct evl_compact_args args = { .keep_last = 30 };
			struct evl_options o;

			evl_options_default(&o);
			fio_install();
			if (evl_store_open(work, &o, &st))
				_exit(2);
			tu_step_arm(work, power, k, 42);
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
		tu_step_cut(work, power, status, &loss);

		st = tu_open_store(work, false, 2);
		for (int i = 0; i < 2; i++) {
			const char *name = i ? "b" : "a";
			size_t glen;
			char *got = tu_read_all(st, tu_task_uid(st, name), NULL, &glen);

			if (glen == alen[i] && !memcmp(got, after[i], glen))
				after_seen++;
			else if (glen != blen[i] || memcmp(got, before[i], glen))
				fail_msg("%s at step %ld: task %s is neither before nor after "
					 "retention (%zu bytes)", power ? "power loss" : "crash", k,
					 name, glen);
			free(got);
		}
		tu_check_views(st, work);
		tu_check_tasks(st, work);
		tu_compact_and_wait(st, "keep-last=30", &cs);	/* what is left is finished */
		expect_task(st, "a", after[0], alen[0]);
		expect_task(st, "b", after[1], alen[1]);
		tu_check_views(st, work);
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

/*
 * A crash before every I/O call and index step of a compaction with
 * retention, each time from the same store: after recovery every task
 * holds exactly its events before or after retention, views agree, and
 * the next compaction finishes the job.
 */
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

/*
 * Review (rev-damage): a retention rewrite of a task whose log was appended
 * to outside the store copies only what the index covers (tasklog_retain_copy
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

	st = tu_open_store(dir, false, 2);
	tu_create(st, "x");
	tu_append_n(st, "x", 0, 20);
	assert_int_equal(evl_store_close(st), 0);
	tu_append_to(dir, "events", other, sizeof(other) - 1);
	st = tu_open_store(dir, false, 2);
	assert_int_equal(evl_compact_start(st, &args), 0);
	tu_wait_compaction(st, &cs);
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
 * aside) and a compaction: tasklog_retain_copy finds it "shorter than indexed"
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

	st = tu_open_store(dir, false, 2);
	tu_create(st, "a");
	tu_create(st, "b");
	tu_append_n(st, "a", 0, 20);
	tu_append_n(st, "b", 0, 20);
	assert_int_equal(evl_store_close(st), 0);
	snprintf(path, sizeof(path), "%s/tasks/a/events", dir);
	assert_int_equal(truncate(path, 40), 0);
	st = tu_open_store(dir, false, 2);
	assert_int_equal(evl_compact_start(st, &args), 0);
	tu_wait_compaction(st, &cs);
	evl_store_stats(st, &s);
	print_message("compaction: rc %d; b has %" PRIu64 " events; %" PRIu64 " tasks set aside\n",
		      cs.last_rc, tu_task_events(st, "b"), s.tasks_aside);
	assert_int_equal(tu_task_events(st, "b"), 5);
	assert_int_equal(s.tasks_aside, 1);
	assert_int_equal(cs.last_rc, 0);
	evl_store_close(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(retention_of_others_survives_a_cut_log, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(retention_keeps_a_foreign_line, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(retention_keeps_the_newest, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(retention_by_age, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(retention_survives_a_crash_at_every_step, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(retention_survives_power_loss_at_every_step, tu_setup,
						tu_teardown),
	};

	return tu_run_tests("retain", tests, sizeof(tests) / sizeof(tests[0]));
}
