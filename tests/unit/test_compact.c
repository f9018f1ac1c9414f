/*
 * test_compact.c - compaction: its arguments, reclaiming deleted tasks,
 * expiring idle ones, appends and endless writers while it runs, deletes
 * by age and uid, and a close that stops one.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "evlog.h"
#include "testutil.h"

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

static void compaction_reclaims_deleted_tasks(void **state)
{
	const char *dir = *state;
	struct evl_store *st = tu_open_store(dir, false, 2);
	struct evl_compact_args none = { 0 };
	struct evl_compact_status cs;
	struct evl_stats before, after;
	struct tu_writer_arg a;

	a = (struct tu_writer_arg){ st, tu_create(st, "big"), 0, 20000, 0 };
	assert_null(tu_writer_main(&a));
	a = (struct tu_writer_arg){ st, tu_create(st, "small"), 1, 50, 0 };
	assert_null(tu_writer_main(&a));
	assert_int_equal(evl_store_checkpoint(st), 0);
	evl_store_stats(st, &before);
	assert_int_equal(evl_task_delete(st, "big"), 0);

	assert_int_equal(evl_compact_start(st, &none), 0);
	assert_int_equal(evl_compact_start(st, &none), -EBUSY);
	tu_wait_compaction(st, &cs);
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
	tu_check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
	st = tu_open_store(dir, false, 2);
	tu_check_views(st, dir);
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
		int n = tu_event_line(line, sizeof(line), (a->id + i) % 11, a->id, i, i % 50);
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
	struct evl_store *st = tu_open_store(dir, false, 2);
	struct evl_compact_args none = { 0 };
	struct evl_compact_status cs;
	struct timed_writer tw[4];
	pthread_t th[4];
	atomic_bool stop = false;
	struct tu_writer_arg a;
	uint64_t uid = tu_create(st, "live");
	int counts[4];
	size_t len;
	char *log;

	a = (struct tu_writer_arg){ st, tu_create(st, "doomed"), 9, 30000, 0 };
	assert_null(tu_writer_main(&a));
	assert_int_equal(evl_store_checkpoint(st), 0);
	for (int i = 0; i < 4; i++) {
		tw[i] = (struct timed_writer){ st, uid, i, 200, &stop, 0, 0 };
		pthread_create(&th[i], NULL, timed_writer_main, &tw[i]);
	}
	assert_int_equal(evl_task_delete(st, "doomed"), 0);
	assert_int_equal(evl_compact_start(st, &none), 0);
	tu_wait_compaction(st, &cs);
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
	log = tu_read_all(st, uid, NULL, &len);
	tu_check_task_order(log, len, counts, 4);	/* nothing lost, order kept */
	for (int i = 0; i < 4; i++)
		assert_int_equal(counts[i], (int)tw[i].writes);
	free(log);
	tu_check_views(st, dir);
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
		int n = tu_event_line(line, sizeof(line), (a->id + i) % 11, a->id, i, i % 50);

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
	struct evl_store *st = tu_open_store(dir, false, 2);
	struct evl_compact_args args;
	struct evl_compact_status cs;
	struct endless_writer ew[4];
	pthread_t th[4];
	atomic_bool stop = false;
	struct tu_writer_arg a;
	uint64_t deadline;
	char why[100], phase[16] = "";
	long at_retain[4] = { -1, -1, -1, -1 };

	a = (struct tu_writer_arg){ st, tu_create(st, "doomed"), 9, 20000, 0 };
	assert_null(tu_writer_main(&a));
	for (int i = 0; i < 4; i++) {
		char name[8];

		snprintf(name, sizeof(name), "w%d", i);
		ew[i] = (struct endless_writer){ st, tu_create(st, name), i, &stop, 0 };
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
		char *log = tu_read_all(st, ew[i].uid, NULL, &len);
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
	tu_check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
}

static void compaction_expires_idle_tasks(void **state)
{
	const char *dir = *state;
	struct evl_store *st = tu_open_store(dir, false, 2);
	struct evl_compact_args args;
	struct evl_compact_status cs;
	struct evl_writer *w;
	uint64_t fresh, deadline;
	char why[100];

	tu_create(st, "old");
	fresh = tu_create(st, "fresh");
	assert_int_equal(evl_writer_open(st, fresh, &w), 0);
	assert_int_equal(evl_compact_parse("expire-idle=1s", &args, why, sizeof(why)), 0);
	/* "old" goes once it has been idle for 1 s; "fresh" keeps being written */
	deadline = tu_now_ms() + 120000;
	while (tu_task_uid(st, "old") && tu_now_ms() < deadline) {
		assert_int_equal(tu_write_str(w, "{\"type\":\"keepalive\"}\n"), 0);
		assert_int_equal(evl_compact_start(st, &args), 0);
		tu_wait_compaction(st, &cs);
		assert_int_equal(cs.last_rc, 0);
		assert_int_not_equal(tu_task_uid(st, "fresh"), 0);
	}
	assert_int_equal(tu_task_uid(st, "old"), 0);
	assert_int_equal(cs.last_tasks_expired, 1);
	assert_int_equal(evl_writer_close(w), 0);
	tu_check_views(st, dir);
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
	tu_create(st, "keep");
	assert_int_equal(evl_task_delete(st, "keep"), -EPERM);
	assert_int_equal(evl_compact_start(st, &args), -EPERM);
	assert_int_equal(evl_compact_start(st, &none), 0);	/* no deletion asked: fine */
	tu_wait_compaction(st, &cs);
	assert_int_equal(cs.last_rc, 0);
	assert_int_not_equal(tu_task_uid(st, "keep"), 0);
	assert_int_equal(evl_store_close(st), 0);
}

/* Create tasks @prefix0000.. @prefix(n-1), each with one event. */
static void make_tasks(struct evl_store *st, const char *prefix, int n)
{
	char name[64];

	for (int i = 0; i < n; i++) {
		struct tu_writer_arg a;

		snprintf(name, sizeof(name), "%s%04d", prefix, i);
		a = (struct tu_writer_arg){ st, tu_create(st, name), 0, 1, 0 };
		assert_null(tu_writer_main(&a));
	}
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
	struct evl_store *st = tu_open_store(dir, false, 2);
	struct evl_compact_status cs;

	make_tasks(st, "t", 3);
	tu_compact_and_wait(st, "expire-idle=30000d", &cs);
	assert_int_equal(cs.last_tasks_expired, 0);
	tu_compact_and_wait(st, "expire-idle=106751d max-age=106751d", &cs);
	assert_int_equal(cs.last_tasks_expired, 0);
	assert_int_equal(cs.last_events_dropped, 0);
	assert_int_equal(tu_count_tasks(st), 3);
	tu_check_views(st, dir);
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
	struct evl_store *st = tu_open_store(dir, false, 2);
	struct evl_compact_args args;
	struct evl_compact_status cs;
	struct tu_writer_arg a;
	uint64_t t0 = tu_now_ms(), deadline;
	size_t len;
	char why[100], *log;

	make_tasks(st, "idle", 600);
	tu_create(st, "zy");
	tu_create(st, "zz");
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
	a = (struct tu_writer_arg){ st, tu_create(st, "zz"), 1, 1, 0 };
	assert_null(tu_writer_main(&a));
	a = (struct tu_writer_arg){ st, tu_task_uid(st, "zy"), 2, 1, 0 };
	assert_null(tu_writer_main(&a));
	evl_compact_status(st, &cs);
	assert_true(cs.running && cs.done + 2 < cs.total);	/* the run had not got there */
	tu_wait_compaction(st, &cs);
	assert_int_equal(cs.last_rc, 0);
	assert_int_equal(cs.last_tasks_expired, 600);
	assert_int_equal(tu_count_tasks(st), 2);
	log = tu_read_all(st, tu_task_uid(st, "zz"), NULL, &len);
	assert_true(len > 0 && memchr(log, '\n', len) == log + len - 1);	/* its one event */
	free(log);
	log = tu_read_all(st, tu_task_uid(st, "zy"), NULL, &len);
	assert_true(len > 0);
	free(log);
	tu_check_views(st, dir);
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
	struct evl_store *st = tu_open_store(dir, false, 2);
	struct evl_task_info info;
	struct tu_writer_arg a;
	uint64_t old_uid, now_ns;
	struct evl_stats stats;
	struct timespec ts;

	old_uid = tu_create(st, "x");
	assert_int_equal(evl_task_delete(st, "x"), 0);
	a = (struct tu_writer_arg){ st, tu_create(st, "x"), 0, 3, 0 };
	assert_null(tu_writer_main(&a));
	assert_int_equal(evl_task_delete_uid(st, old_uid, 0, NULL), -ENOENT);
	assert_int_equal(evl_task_lookup(st, "x", &info), 0);
	assert_int_equal(info.events, 3);
	tu_create(st, "held");
	assert_int_equal(evl_store_close(st), 0);

	st = tu_open_store(dir, false, 5000);	/* fsync (and so apply) every 5 s */
	clock_gettime(CLOCK_REALTIME, &ts);
	now_ns = ts.tv_sec * 1000000000ull + ts.tv_nsec;
	a = (struct tu_writer_arg){ st, tu_task_uid(st, "held"), 1, 1, 0 };
	assert_null(tu_writer_main(&a));	/* journaled, acknowledged */
	assert_int_equal(evl_task_delete_uid(st, a.uid, now_ns, NULL), -EBUSY);
	evl_store_stats(st, &stats);
	if (!stats.pending_events)
		print_message("the append was applied already: the pending case was not tried\n");
	assert_int_equal(evl_task_stat(st, a.uid, &info), 0);
	assert_int_equal(info.events, 1);
	assert_int_equal(evl_task_delete_uid(st, info.uid, 0, &info), 0);
	assert_string_equal(info.name, "held");
	assert_int_equal(evl_task_lookup(st, "held", &info), -ENOENT);
	tu_check_views(st, dir);
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
	struct evl_store *st = tu_open_store(dir, false, 2);
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
	st = tu_open_store(dir, false, 2);
	left = tu_count_tasks(st);
	print_message("expire stopped with %d of 600 tasks left\n", left);
	assert_true(left > 0 && left < 600);
	tu_check_views(st, dir);
	tu_compact_and_wait(st, "expire-idle=1s", &cs);	/* the next run goes on */
	assert_int_equal(cs.last_tasks_expired, (uint64_t)left);
	assert_int_equal(tu_count_tasks(st), 0);

	/* retention: each task keeps 1 of 3 events; stopped early, the rest still have 3 */
	for (int i = 0; i < 300; i++) {
		char name[16];
		struct tu_writer_arg a;

		snprintf(name, sizeof(name), "r%04d", i);
		a = (struct tu_writer_arg){ st, tu_create(st, name), 0, 3, 0 };
		assert_null(tu_writer_main(&a));
	}
	assert_int_equal(evl_compact_parse("keep-last=1", &args, why, sizeof(why)), 0);
	assert_int_equal(evl_compact_start(st, &args), 0);
	for (evl_compact_status(st, &cs); cs.running && (strcmp(cs.phase, "retain") || !cs.done) &&
	     tu_now_ms() < deadline + 60000; evl_compact_status(st, &cs))
		usleep(200);
	assert_true(cs.running);
	assert_int_equal(evl_store_close(st), 0);
	st = tu_open_store(dir, false, 2);
	{
		struct tu_task_check_ctx c = { 0 };
		int trimmed = 0;

		assert_int_equal(evl_task_list(st, NULL, tu_task_collect_cb, &c), 0);
		assert_int_equal(c.n, 300);
		for (size_t i = 0; i < c.n; i++) {
			assert_true(c.t[i].events == 1 || c.t[i].events == 3);
			trimmed += c.t[i].events == 1;
		}
		print_message("retention stopped with %d of 300 tasks trimmed\n", trimmed);
		assert_true(trimmed > 0 && trimmed < 300);
		free(c.t);
	}
	tu_check_views(st, dir);
	tu_check_tasks(st, dir);
	assert_int_equal(evl_store_close(st), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
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
	};

	return tu_run_tests("compact", tests, sizeof(tests) / sizeof(tests[0]));
}
