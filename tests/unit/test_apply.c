/*
 * test_apply.c - the applier and its readers: task sizes and view reads
 * while batches are applied, writers held back without spinning, pending
 * memory bounded, hold_apply, and creates, deletes and checkpoints while
 * applying fails (a full disk, no descriptor left).
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
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
#include "fio.h"
#include "testutil.h"

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
	struct evl_store *st = tu_open_store(dir, false, 1);
	struct size_race r = { .st = st, .n = 60000 };
	long stats = 0, bad = 0;
	uint64_t worst = 0;
	pthread_t th;
	void *ret;

	r.uid = tu_create(st, "sz");
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
	struct evl_store *st = tu_open_store(dir, false, 1);
	struct view_race r[2] = { { .st = st }, { .st = st } };
	struct evl_writer *w;
	char line[FIXED_LEN + 1];
	pthread_t th[2];

	tu_create(st, "keep");
	tu_append_n(st, "keep", 0, 50);
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, view_race_reader, &r[i]);
	for (int round = 0; round < 1000; round++) {
		uint64_t uid = tu_create(st, "tmp");

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
	assert_int_equal(tu_within(30, "create", tu_do_create, &(struct tu_named){ st, "held" }), 0);
	h.uid = tu_task_uid(st, "held");
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
		assert_int_equal(tu_within(60, "a checkpoint", tu_do_checkpoint, st), 0);
		usleep(1000);
	}
	pthread_join(th, &ret);
	assert_null(ret);
	assert_int_equal(evl_store_close(st), 0);
	st = tu_open_store(dir, false, 2);
	tu_check_tasks(st, dir);
	assert_int_equal(tu_task_events(st, "held"), h.n);
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
		if (tu_write_str(w, "{\"type\":\"a\"}\n"))
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
	assert_int_equal(tu_within(30, "create", tu_do_create, &(struct tu_named){ st, "tiny" }), 0);
	tw.uid = tu_task_uid(st, "tiny");
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
	assert_int_equal(tu_within(60, "a checkpoint", tu_do_checkpoint, st), 0);
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
	assert_int_equal(tu_within(30, "create", tu_do_create, &(struct tu_named){ st, "h" }), 0);
	tu_append_n(st, "h", 0, 100);
	assert_int_equal(tu_task_events(st, "h"), 100);
	assert_int_equal(tu_within(60, "close", do_close, st), 0);
	st = tu_open_store(dir, false, 2);
	tu_check_tasks(st, dir);
	assert_int_equal(tu_task_events(st, "h"), 100);
	assert_int_equal(evl_store_close(st), 0);
}

static int do_delete(void *arg)
{
	struct tu_named *n = arg;

	return evl_task_delete(n->st, n->name);
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
	struct tu_named a, b, c;
	struct evl_task_info info;
	size_t len;
	char *log;

	fio_install();
	st = tu_open_store(dir, false, 1);
	a = (struct tu_named){ st, "a" };
	b = (struct tu_named){ st, "b" };
	c = (struct tu_named){ st, "c" };
	tu_create(st, "a");
	tu_append_n(st, "a", 0, 10);
	assert_int_equal(evl_store_checkpoint(st), 0);
	/* applying a create needs a directory: none can be made now */
	fio_fail(FIO_MKDIR, 0, ENOSPC, true);
	assert_int_equal(tu_within(30, "create b", tu_do_create, &b), 0);
	assert_int_equal(evl_task_lookup(st, "b", &info), 0);
	assert_int_equal(info.size, 0);
	tu_append_n(st, "b", 0, 5);
	assert_int_equal(evl_task_lookup(st, "b", &info), 0);
	assert_int_equal(info.events, 5);
	log = tu_read_all(st, info.uid, NULL, &len);
	assert_int_equal(len, info.size);
	free(log);
	{
		/* the applier retries every 100 ms, not at every append (it once spun) */
		struct evl_stats s0, s1;
		uint64_t t0 = tu_now_ms(), ms;

		evl_store_stats(st, &s0);
		for (int i = 10; (ms = tu_now_ms() - t0) < 1000; i += 20)
			tu_append_n(st, "a", i, 20);	/* each write's fsync wakes the applier */
		evl_store_stats(st, &s1);
		print_message("%" PRIu64 " tries to apply in %" PRIu64 " ms\n",
			      s1.apply_failures - s0.apply_failures, ms);
		if (s1.apply_failures - s0.apply_failures > ms / 100 * 2 + 10)
			fail_msg("%" PRIu64 " tries to apply in %" PRIu64 " ms",
				 s1.apply_failures - s0.apply_failures, ms);
	}
	assert_int_equal(tu_within(30, "create c", tu_do_create, &c), 0);
	assert_int_equal(tu_within(30, "a checkpoint", tu_do_checkpoint, st), -ENOSPC);
	/* a delete gets past the stuck create of b, and so does one of a pending task */
	assert_int_equal(tu_within(30, "delete a", do_delete, &a), 0);
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
	assert_int_equal(tu_within(30, "delete c", do_delete, &c), 0);
	assert_int_equal(evl_task_lookup(st, "c", &info), -ENOENT);
	assert_int_equal(evl_task_create(st, "c"), 0);	/* the name is free again */
	fio_clear();
	tu_check_tasks(st, dir);
	assert_int_equal(tu_task_events(st, "b"), 5);
	assert_int_equal(tu_task_events(st, "c"), 0);
	assert_int_equal(tu_task_uid(st, "a"), 0);
	tu_check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
	fio_uninstall();
	st = tu_open_store(dir, false, 2);
	tu_check_tasks(st, dir);
	assert_int_equal(tu_task_events(st, "b"), 5);
	assert_int_equal(tu_task_uid(st, "a"), 0);
	assert_true(tu_task_uid(st, "c") != 0);
	tu_check_views(st, dir);
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
	assert_int_equal(tu_within(60, "create with nothing held", tu_do_create,
				&(struct tu_named){ st, "a" }), 0);
	uid = tu_task_uid(st, "a");
	assert_int_equal(evl_writer_open(st, uid, &w), 0);
	for (int i = 0; i < 20; i++) {
		int n = tu_event_line(line, sizeof(line), 1, 0, i, i);

		assert_int_equal(evl_writer_write(w, line, n), 0);
	}
	assert_int_equal(evl_store_sync(st), 0);
	usleep(50000);	/* the applier had its chance: it holds them */
	evl_store_stats(st, &s);
	assert_true(s.applied_lsn < s.durable_lsn);
	assert_int_equal(s.pending_events, 20);

	assert_int_equal(tu_within(60, "create behind held appends", tu_do_create,
				&(struct tu_named){ st, "b" }), 0);
	assert_true(tu_task_uid(st, "b") != 0);
	evl_store_stats(st, &s);
	assert_int_equal(s.pending_events, 20);	/* still held: nobody waited */

	for (int i = 20; i < 30; i++) {
		int n = tu_event_line(line, sizeof(line), 1, 0, i, i);

		assert_int_equal(evl_writer_write(w, line, n), 0);
	}
	assert_int_equal(tu_within(60, "checkpoint", tu_do_checkpoint, st), 0);
	evl_store_stats(st, &s);
	assert_int_equal(s.pending_events, 0);
	for (int i = 30; i < 40; i++) {
		int n = tu_event_line(line, sizeof(line), 1, 0, i, i);

		assert_int_equal(evl_writer_write(w, line, n), 0);
	}
	evl_writer_close(w);
	assert_int_equal(tu_within(60, "close", do_close, st), 0);

	st = tu_open_store(dir, false, 2);
	{
		int first;

		assert_int_equal(tu_task_run(st, tu_task_uid(st, "a"), 0, &first, "hold", 0), 40);
	}
	assert_true(tu_task_uid(st, "b") != 0);
	assert_int_equal(evl_store_close(st), 0);
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
		int n = tu_event_line(line, sizeof(line), 1, 0, s->acked, 40);

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
	tu_create(st, "a");
	tu_create(st, "b");
	tu_append_n(st, "a", 0, 2);
	assert_int_equal(evl_store_close(st), 0);
	fio_install();
	assert_int_equal(evl_store_open(dir, &o, &st), 0);
	fio_fail(FIO_OPEN, 0, EMFILE, true);	/* every open from now on */
	sw = (struct stuck_writer){ st, tu_task_uid(st, "a"), 0, 0 };
	t0 = tu_now_ms();
	rc = tu_within(60, "a writer held by max_pending", write_until_refused, &sw);
	assert_int_equal(rc, -EMFILE);
	print_message("EMFILE after %d events, %" PRIu64 " ms\n", sw.acked,
		      tu_now_ms() - t0);
	assert_true(sw.acked > 5);
	assert_int_equal(tu_within(30, "a checkpoint", tu_do_checkpoint, st), -EMFILE);
	assert_int_equal(evl_task_lookup(st, "b", &info), 0);
	assert_int_equal(tu_count_tasks(st), 2);
	/* the cause goes: everything acknowledged is applied, with no remount */
	fio_clear();
	tu_append_n(st, "b", 0, 3);
	assert_int_equal(tu_within(30, "a checkpoint", tu_do_checkpoint, st), 0);
	assert_int_equal(tu_task_events(st, "a"), 2 + (uint64_t)sw.acked);
	assert_int_equal(tu_task_events(st, "b"), 3);
	tu_check_tasks(st, dir);
	tu_check_views(st, dir);
	assert_int_equal(tu_within(30, "close", do_close, st), 0);
	fio_uninstall();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(failing_applier_refuses_waiting_writers, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(task_size_is_exact_while_applying, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(view_reads_survive_deletes, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(held_back_writer_sleeps, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(creates_and_deletes_while_applying_fails, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(pending_memory_is_bounded, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(held_appends_are_applied_at_close, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(hold_apply_holds_only_appends, tu_setup, tu_teardown),
	};

	return tu_run_tests("apply", tests, sizeof(tests) / sizeof(tests[0]));
}
