/*
 * test_salvage.c - salvage of damaged task files by fsck --repair and reindex:
 * a salvage cut short, cut logs and zeroed ranges that are not another
 * task's log, foreign bytes over a log's head, and crafted sidecar records
 * (found in the rev-v2 review and by the damage sweeps).
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>
#include <xxhash.h>

#include <cmocka.h>

#include "evlog.h"
#include "fio.h"
#include "tasklog.h"
#include "testutil.h"

/* Append @line to task @name (created if missing). */
static void put(struct evl_store *st, const char *name, const char *line)
{
	struct evl_task_info info;
	struct evl_writer *w;

	if (evl_task_lookup(st, name, &info)) {
		assert_int_equal(evl_task_create(st, name), 0);
		assert_int_equal(evl_task_lookup(st, name, &info), 0);
	}
	assert_int_equal(evl_writer_open(st, info.uid, &w), 0);
	assert_int_equal(evl_writer_write(w, line, strlen(line)), 0);
	assert_int_equal(evl_writer_close(w), 0);
}

/*
 * Review rev-v2, finding 1: a salvage cut short after events.salvage is
 * written but before events.meta.salvage exists (its open fails: ENOSPC,
 * EMFILE; or a kill there; or a power loss that undoes only the newest,
 * unsynced create) leaves the old sidecar in place beside a lone
 * events.salvage.  The next run's salvage_finish reads that as "sidecar
 * renamed already" and renames events.salvage over the log: the old
 * sidecar now describes the shortened log, and the salvage that follows
 * moves every intact event after the damaged one to events.damaged.
 */
static void rev_v2_salvage_cut_short_keeps_intact_events(void **state)
{
	const char *dir = *state;
	struct evl_check_opts o = { .report = tu_collect };
	struct evl_check_result r;
	struct evl_store *st = tu_open_default(dir);
	char *log, *line3, *end, changed[128], want[8192], buf[8192];
	size_t len;
	int rc;

	tu_fill(st, 0, 24);	/* t1: 6 events */
	assert_int_equal(evl_store_close(st), 0);
	log = tu_slurp(dir, "tasks/t1/events", &len);
	line3 = strchr(strchr(log, '\n') + 1, '\n') + 1;
	end = strchr(line3, '\n');
	strstr(line3, "\"i\":")[4] ^= 1;
	snprintf(changed, sizeof(changed), "%.*s", (int)(end - line3 + 1), line3);
	tu_spit(dir, "tasks/t1/events", log, len);
	/* what t1 must serve after the salvage: every event but the changed one */
	snprintf(want, sizeof(want), "%.*s%s", (int)(line3 - log), log, end + 1);

	/* each file of the salvage failing in turn, then a run that works */
	for (int f = 0; f < 3; f++) {
		static const char *const files[] = {
			"events.meta.salvage", "events.salvage", "events.damaged.salvage",
		};

		fio_install();
		fio_fail_path(FIO_OPEN, files[f], ENOSPC);
		tu_nlines = 0;
		rc = evl_reindex(dir, &o, &r);
		fio_clear();
		fio_uninstall();
		assert_int_not_equal(rc, 0);
		assert_false(tu_exists(dir, "tasks/t1/events.damaged"));
	}

	tu_nlines = 0;
	rc = evl_reindex(dir, &o, &r);
	for (int i = 0; i < tu_nlines; i++)
		print_message("%s\n", tu_lines[i]);
	assert_int_equal(rc, 0);
	st = tu_open_default(dir);
	assert_int_equal(tu_read_task(st, "t1", buf, sizeof(buf)), (ssize_t)strlen(want));
	assert_string_equal(buf, want);
	evl_store_close(st);
	{
		char *d = tu_slurp(dir, "tasks/t1/events.damaged", NULL);

		assert_non_null(d);
		assert_string_equal(d, changed);	/* once, however many tries */
		free(d);
	}
	free(log);
}

/*
 * A task whose log is gone becomes an empty task at fsck --repair, its old
 * sidecar kept as events.meta.lost; when that happens again, the earlier
 * one's records are kept too (a rename replaced them; found in review).
 */
static void a_lost_log_keeps_every_old_sidecar(void **state)
{
	const char *dir = *state;
	struct evl_check_result r;
	struct evl_store *st = tu_open_default(dir);
	char path[4400], *meta1, *meta2, *lost;
	size_t n1, n2, nl;

	tu_fill(st, 0, 24);	/* t1: 6 events */
	assert_int_equal(evl_store_close(st), 0);
	meta1 = tu_slurp(dir, "tasks/t1/events.meta", &n1);
	snprintf(path, sizeof(path), "%s/tasks/t1/events", dir);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(tu_fsck(dir, true, &r), 0);
	assert_true(tu_reported("its log is gone"));
	st = tu_open_default(dir);
	tu_fill(st, 24, 8);	/* t1: 2 events anew */
	assert_int_equal(evl_store_close(st), 0);
	meta2 = tu_slurp(dir, "tasks/t1/events.meta", &n2);
	assert_int_equal(n2, 2 * TASKLOG_REC);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(tu_fsck(dir, true, &r), 0);
	lost = tu_slurp(dir, "tasks/t1/events.meta.lost", &nl);
	assert_non_null(lost);
	assert_int_equal(nl, n1 + n2);
	assert_memory_equal(lost, meta1, n1);
	assert_memory_equal(lost + n1, meta2, n2);
	assert_int_equal(tu_fsck(dir, false, &r), 0);
	assert_int_equal(r.problems, 0);
	free(lost);
	free(meta1);
	free(meta2);
}

/*
 * A salvage cut short after its new sidecar was renamed into place and
 * before the log was (a crash; here a failing rename): the sidecar
 * describes events.salvage, not the log in place.  fsck --repair finishes
 * the salvage before it reads the task; it used to take the old log for
 * damage and move intact lines to events.unapplied (found in review).
 */
static void fsck_repair_finishes_a_salvage_cut_short(void **state)
{
	const char *dir = *state;
	struct evl_check_opts o = { .report = tu_collect };
	struct evl_check_result r;
	struct evl_store *st = tu_open_default(dir);
	char *log, *line3, *end, changed[128], want[8192], buf[8192], *d;
	size_t len;

	tu_fill(st, 0, 24);	/* t1: 6 events */
	assert_int_equal(evl_store_close(st), 0);
	log = tu_slurp(dir, "tasks/t1/events", &len);
	line3 = strchr(strchr(log, '\n') + 1, '\n') + 1;
	end = strchr(line3, '\n');
	strstr(line3, "\"i\":")[4] ^= 1;
	snprintf(changed, sizeof(changed), "%.*s", (int)(end - line3 + 1), line3);
	tu_spit(dir, "tasks/t1/events", log, len);
	snprintf(want, sizeof(want), "%.*s%s", (int)(line3 - log), log, end + 1);

	fio_install();
	fio_fail_path(FIO_RENAME, "t1/events.salvage", EIO);
	tu_nlines = 0;
	assert_int_not_equal(evl_reindex(dir, &o, &r), 0);
	fio_clear();
	fio_uninstall();
	assert_true(tu_exists(dir, "tasks/t1/events.salvage"));

	assert_int_equal(tu_fsck(dir, false, &r), 0);
	assert_true(tu_reported("a salvage (evlogctl reindex) was cut short"));
	assert_int_equal(tu_fsck(dir, true, &r), 0);
	assert_true(tu_reported("a salvage cut short by a crash finished"));
	assert_false(tu_exists(dir, "tasks/t1/events.salvage"));
	assert_false(tu_exists(dir, "tasks/t1/events.unapplied"));
	st = tu_open_default(dir);
	assert_int_equal(tu_read_task(st, "t1", buf, sizeof(buf)), (ssize_t)strlen(want));
	assert_string_equal(buf, want);
	evl_store_close(st);
	d = tu_slurp(dir, "tasks/t1/events.damaged", NULL);
	assert_non_null(d);
	assert_string_equal(d, changed);
	free(d);
	free(log);
}

/*
 * Review rev-v2, finding 2: a sidecar copied from another task whose first
 * event has the same bytes (tasks of one agent often start alike).  One
 * record checks out, so foreign_files leaves it alone (good > 0), and
 * salvage_task takes every other event of the (intact, indexed) log for
 * damaged: they are moved to events.damaged, cut at the other task's
 * lengths.  The README: "a copy whose events still match (the same task
 * restored) is not a stranger" -- but this one is.
 */
static void rev_v2_foreign_sidecar_sharing_a_first_event(void **state)
{
	const char *dir = *state;
	struct evl_check_opts o = { .report = tu_collect };
	struct evl_check_result r;
	struct evl_store *st = tu_open_default(dir);
	char *before, *after, *meta, line[128];
	size_t len;

	for (int i = 0; i < 6; i++) {
		for (int t = 0; t < 2; t++) {
			if (i == 0)
				snprintf(line, sizeof(line), "{\"type\":\"note\",\"start\":1}\n");
			else
				snprintf(line, sizeof(line), "{\"type\":\"tool.call\",\"t\":%d,\"i\":%d}\n",
					 t, i);
			put(st, t ? "t1" : "t0", line);
		}
	}
	assert_int_equal(evl_store_close(st), 0);
	before = tu_dump(dir);
	meta = tu_slurp(dir, "tasks/t0/events.meta", &len);
	tu_spit(dir, "tasks/t1/events.meta", meta, len);	/* t0's sidecar over t1's */
	tu_nlines = 0;
	evl_reindex(dir, &o, &r);
	for (int i = 0; i < tu_nlines; i++)
		print_message("%s\n", tu_lines[i]);
	after = tu_dump(dir);
	assert_false(tu_exists(dir, "tasks/t1/events.damaged"));
	assert_string_equal(before, after);
	free(before);
	free(after);
	free(meta);
}

/*
 * Review rev-v2, finding 3: a task of one event (common: a task that has
 * only started) with one byte changed.  No record checks out (good == 0),
 * so foreign_files decides "foreign log" (the sidecar and the index agree:
 * side == lines == 1, and a tie goes to the log): fsck --repair (which is
 * not to move damaged events at all) and reindex rename the log to
 * events.foreign and empty the task, saying it "is not the one its sidecar
 * and the index describe"; the event is not counted as damaged and reindex
 * exits 0.  The README promises events.damaged and a count.
 */
static void rev_v2_one_changed_event_is_not_a_foreign_log(void **state)
{
	const char *dir = *state;
	struct evl_check_opts o = { .report = tu_collect };
	struct evl_check_result r;
	struct evl_store *st = tu_open_default(dir);
	char *log, *dmg;
	size_t len;

	put(st, "t0", "{\"type\":\"note\",\"i\":1}\n");
	put(st, "t0", "{\"type\":\"note\",\"i\":2}\n");
	put(st, "t1", "{\"type\":\"note\",\"i\":3}\n");	/* t1: one event */
	assert_int_equal(evl_store_close(st), 0);
	log = tu_slurp(dir, "tasks/t1/events", &len);
	strstr(log, "\"i\":")[4] ^= 1;	/* 3 -> 2: valid JSON still */
	tu_spit(dir, "tasks/t1/events", log, len);
	tu_nlines = 0;
	{
		int rc = evl_reindex(dir, &o, &r);

		for (int i = 0; i < tu_nlines; i++)
			print_message("%s\n", tu_lines[i]);
		assert_int_equal(rc, 0);
	}
	assert_false(tu_reported("kept as events.foreign"));
	assert_int_equal(r.damaged, 1);
	dmg = tu_slurp(dir, "tasks/t1/events.damaged", NULL);
	assert_non_null(dmg);
	assert_string_equal(dmg, log);
	free(dmg);
	free(log);
}

/*
 * Sweep case 98205:2403 (another task's log copied over t1's): the first
 * event's bytes are not what was written and the log ends before the
 * second.  salvage_task kept the records past the log's end for the scan
 * (a torn tail), but salvage_finish took a record that does not fit for a
 * sign that events.salvage was a leftover: it deleted the new log and
 * events.damaged after the new sidecar was in place, so the sidecar no
 * longer described the log and reindex stopped ("corrupt before its last
 * event", exit 2) on a store it had itself made unrepairable.
 */
static void a_damaged_event_before_a_cut_log_is_salvaged(void **state)
{
	const char *dir = *state;
	struct evl_check_opts o = { .report = tu_collect };
	struct evl_check_result r;
	struct evl_store *st = tu_open_default(dir);
	static const char e1[] = "{\"type\":\"note\",\"i\":1}\n";
	char *log, *dmg;
	size_t len;
	int rc;

	put(st, "t0", "{\"type\":\"note\",\"i\":0}\n");
	put(st, "t1", e1);
	put(st, "t1", "{\"type\":\"tool.call\",\"i\":2,\"pad\":\"pppppppppppppppppppp\"}\n");
	put(st, "t1", "{\"type\":\"tool.call\",\"i\":3}\n");
	assert_int_equal(evl_store_close(st), 0);
	log = tu_slurp(dir, "tasks/t1/events", &len);
	log[strlen(e1) - 3] ^= 1;		/* 1 -> 0: valid JSON still */
	tu_spit(dir, "tasks/t1/events", log, strlen(e1) + 10);	/* and cut inside event 2 */
	tu_nlines = 0;
	rc = evl_reindex(dir, &o, &r);
	for (int i = 0; i < tu_nlines; i++)
		print_message("%s\n", tu_lines[i]);
	assert_int_equal(rc, 0);
	assert_int_equal(r.damaged, 1);
	dmg = tu_slurp(dir, "tasks/t1/events.damaged", NULL);
	assert_non_null(dmg);
	assert_memory_equal(dmg, log, strlen(e1));
	assert_int_equal(tu_fsck(dir, false, &r), 0);
	assert_int_equal(r.problems, 0);
	free(dmg);
	free(log);
}

/*
 * Review rev-v2, finding 7: scan_task takes an event whose checksum does
 * not match for "a torn last write" when it is the task's last
 * (tk->torn = k + 1 == file_recs), so fsck --repair cuts it and moves its
 * changed bytes to events.unapplied -- which the README says to append
 * through the mount again: the changed bytes come back as a fresh, proven
 * event.  fsck was to report it and leave it to reindex (events.damaged).
 */
static void rev_v2_repair_does_not_call_a_changed_last_event_torn(void **state)
{
	const char *dir = *state;
	struct evl_check_result r;
	struct evl_store *st = tu_open_default(dir);
	char *log, *u;
	size_t len;

	put(st, "t0", "{\"type\":\"note\",\"i\":1}\n");
	put(st, "t1", "{\"type\":\"note\",\"i\":2}\n");
	put(st, "t1", "{\"type\":\"note\",\"i\":3}\n");
	assert_int_equal(evl_store_close(st), 0);
	log = tu_slurp(dir, "tasks/t1/events", &len);
	strstr(strchr(log, '\n'), "\"i\":")[4] ^= 1;	/* the last event: 3 -> 2 */
	tu_spit(dir, "tasks/t1/events", log, len);
	assert_int_equal(tu_fsck(dir, true, &r), 0);
	for (int i = 0; i < tu_nlines; i++)
		print_message("%s\n", tu_lines[i]);
	assert_false(tu_reported("torn"));
	assert_true(tu_reported("checksum does not match"));
	u = tu_slurp(dir, "tasks/t1/events.unapplied", NULL);
	assert_null(u);
	free(log);
}

/*
 * Review rev-v2, finding 4: salvage_task reads log[off + r.len - 1] for a
 * record whose sum does not match; with r.len == 0 at off == 0 that is
 * log[-1] (NULL - 1 for an empty log: SIGSEGV).  A crafted (or
 * damage-sweep) sidecar must not crash reindex.  The task directory is one
 * the index lacks, so recovery leaves it to reindex.
 */
static void rev_v2_zero_length_record_does_not_crash_reindex(void **state)
{
	const char *dir = *state;
	struct evl_store *st = tu_open_default(dir);
	unsigned char meta[2 * TASKLOG_REC];
	char path[4400];
	int status;
	pid_t pid;

	tu_fill(st, 0, 8);
	assert_int_equal(evl_store_close(st), 0);
	snprintf(path, sizeof(path), "%s/tasks/zz", dir);
	assert_int_equal(mkdir(path, 0755), 0);
	{
		struct tasklog_rec ok = { 900, 1, 0, (uint32_t)XXH32("", 0, 0) };
		struct tasklog_rec bad = { 901, 1, 0, 12345 };

		tasklog_encode(&ok, meta);
		tasklog_encode(&bad, meta + TASKLOG_REC);
	}
	tu_spit(dir, "tasks/zz/events", "", 0);
	tu_spit(dir, "tasks/zz/events.meta", meta, sizeof(meta));
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct evl_check_opts o = { 0 };
		struct evl_check_result r;

		signal(SIGSEGV, SIG_DFL);	/* not cmocka's handler: the parent sees the signal */
		signal(SIGBUS, SIG_DFL);
		evl_reindex(dir, &o, &r);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status))
		print_message("reindex died of signal %d\n", WTERMSIG(status));
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/*
 * The damage sweep (live, seed 50001 case 79): a task with events of types
 * "a.y" and "a.y.z" (one type's view holds the other's events too) and one
 * changed byte.  fsck --repair took its sidecar for another log's (each
 * "a.y.z" event counted twice against the index), kept it aside, and
 * rebuilt it from the log: the changed bytes got a checksum of their own
 * and were served.  It must be left to reindex, which moves that event.
 */
static void nested_types_are_not_a_foreign_sidecar(void **state)
{
	const char *dir = *state;
	struct evl_check_opts o = { .report = tu_collect };
	struct evl_check_result r;
	struct evl_store *st = tu_open_default(dir);
	char *log, buf[8192];
	size_t len;

	for (int i = 0; i < 6; i++) {
		char line[64];

		snprintf(line, sizeof(line), "{\"type\":\"%s\",\"i\":%d}\n", i % 2 ? "a.y.z" : "a.y",
			 i);
		put(st, "n", line);
	}
	assert_int_equal(evl_store_close(st), 0);
	log = tu_slurp(dir, "tasks/n/events", &len);
	strstr(log, "\"i\":")[4] ^= 1;		/* the first event: 0 -> 1 */
	tu_spit(dir, "tasks/n/events", log, len);
	assert_int_equal(tu_fsck(dir, true, &r), 0);
	assert_false(tu_reported("describes another log"));
	assert_false(tu_exists(dir, "tasks/n/events.meta.foreign"));
	tu_nlines = 0;
	assert_int_equal(evl_reindex(dir, &o, &r), 0);
	assert_int_equal(r.damaged, 1);
	st = tu_open_default(dir);
	assert_int_equal(tu_read_task(st, "n", buf, sizeof(buf)),
			 (ssize_t)(len - (strchr(log, '\n') + 1 - log)));
	assert_string_equal(buf, strchr(log, '\n') + 1);
	evl_store_close(st);
	free(log);
}

/*
 * The damage sweep (--core, seed 60001 case 169): a log cut short to fewer
 * than half its events (truncate -s 3829 of 14149 bytes) was taken for
 * another task's log: fsck --repair kept it as events.foreign and the task
 * lost the events still whole in it.  Only the events that fit in the log
 * say whether it is this task's: it keeps them, the rest are lost (said).
 */
static void a_cut_log_is_not_a_foreign_log(void **state)
{
	const char *dir = *state;
	struct evl_check_result r;
	struct evl_store *st = tu_open_default(dir);
	char *log, buf[8192], path[4400];
	const char *third;
	size_t len, keep;

	tu_fill(st, 0, 40);	/* t1: 10 events */
	assert_int_equal(evl_store_close(st), 0);
	log = tu_slurp(dir, "tasks/t1/events", &len);
	third = strchr(strchr(log, '\n') + 1, '\n') + 1;	/* two events whole, then 5 bytes */
	keep = third - log;
	snprintf(path, sizeof(path), "%s/tasks/t1/events", dir);
	assert_int_equal(truncate(path, keep + 5), 0);
	assert_int_equal(tu_fsck(dir, true, &r), 0);
	assert_false(tu_reported("kept as events.foreign"));
	assert_false(tu_exists(dir, "tasks/t1/events.foreign"));
	st = tu_open_default(dir);
	assert_int_equal(tu_read_task(st, "t1", buf, sizeof(buf)), (ssize_t)keep);
	assert_memory_equal(buf, log, keep);
	evl_store_close(st);
	free(log);
}

/*
 * The damage sweep (--core, seed 60002 case 1082): a range zeroed over more
 * than half of a task's events (dd if=/dev/zero ... conv=notrunc) was taken
 * for another task's log, and every event of the task was lost.  The
 * events that still check out say it is this task's: reindex moves the
 * zeroed ones to events.damaged and keeps the others.
 */
static void a_zeroed_range_is_not_a_foreign_log(void **state)
{
	const char *dir = *state;
	struct evl_check_opts o = { .report = tu_collect };
	struct evl_check_result r;
	struct evl_store *st = tu_open_default(dir);
	char *log, *from, *to, buf[8192], want[8192];
	size_t len;

	tu_fill(st, 0, 40);	/* t1: 10 events */
	assert_int_equal(evl_store_close(st), 0);
	log = tu_slurp(dir, "tasks/t1/events", &len);
	from = strchr(strchr(log, '\n') + 1, '\n') + 1;	/* event 3 */
	to = from;
	for (int i = 0; i < 6; i++)
		to = strchr(to, '\n') + 1;		/* after event 8 */
	snprintf(want, sizeof(want), "%.*s%s", (int)(from - log), log, to);
	memset(from, 0, to - from);
	tu_spit(dir, "tasks/t1/events", log, len);
	assert_int_equal(tu_fsck(dir, true, &r), 0);
	assert_false(tu_reported("kept as events.foreign"));
	tu_nlines = 0;
	assert_int_equal(evl_reindex(dir, &o, &r), 0);
	assert_false(tu_reported("kept as events.foreign"));
	assert_int_equal(r.damaged, 6);
	st = tu_open_default(dir);
	assert_int_equal(tu_read_task(st, "t1", buf, sizeof(buf)), (ssize_t)strlen(want));
	assert_string_equal(buf, want);
	evl_store_close(st);
	free(log);
}

/*
 * The damage sweep (--core, seed 80001 case 168): another task's log copied
 * over this one, then the recovery rewrote this task's last events from the
 * journal: a log whose head is foreign bytes (cut anywhere) and whose tail
 * is its own.  The records and the index agree, so the bytes that do not
 * check out are not those events, wherever their newlines fall: reindex
 * moves them to events.damaged and keeps the events that check out
 * (before: it refused the store, "corrupt before its last event").
 */
static void foreign_bytes_over_a_head_are_moved(void **state)
{
	const char *dir = *state;
	struct evl_check_opts o = { .report = tu_collect };
	struct evl_check_result r;
	struct evl_store *st = tu_open_default(dir);
	char *log, *third, buf[8192];
	size_t len;

	tu_fill(st, 0, 24);	/* t1: 6 events */
	assert_int_equal(evl_store_close(st), 0);
	log = tu_slurp(dir, "tasks/t1/events", &len);
	third = strchr(strchr(log, '\n') + 1, '\n') + 1;
	memset(log, 'x', third - log);
	log[5] = '\n';		/* newlines where no event ends */
	log[third - log - 7] = '\n';
	tu_spit(dir, "tasks/t1/events", log, len);
	tu_nlines = 0;
	assert_int_equal(evl_reindex(dir, &o, &r), 0);
	assert_int_equal(r.damaged, 2);
	assert_int_equal(tu_fsck(dir, false, &r), 0);
	assert_int_equal(r.problems, 0);
	st = tu_open_default(dir);
	assert_int_equal(tu_read_task(st, "t1", buf, sizeof(buf)), (ssize_t)(len - (third - log)));
	assert_string_equal(buf, third);
	evl_store_close(st);
	free(log);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(nested_types_are_not_a_foreign_sidecar, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(a_cut_log_is_not_a_foreign_log, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(a_zeroed_range_is_not_a_foreign_log, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(foreign_bytes_over_a_head_are_moved, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(a_lost_log_keeps_every_old_sidecar, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(fsck_repair_finishes_a_salvage_cut_short, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(rev_v2_salvage_cut_short_keeps_intact_events, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(rev_v2_foreign_sidecar_sharing_a_first_event, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(rev_v2_one_changed_event_is_not_a_foreign_log,
						tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(a_damaged_event_before_a_cut_log_is_salvaged,
						tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(rev_v2_zero_length_record_does_not_crash_reindex,
						tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(rev_v2_repair_does_not_call_a_changed_last_event_torn,
						tu_setup, tu_teardown),
	};

	return tu_run_tests("salvage", tests, sizeof(tests) / sizeof(tests[0]));
}
