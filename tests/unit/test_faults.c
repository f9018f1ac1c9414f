/*
 * test_faults.c - injected faults (fio.h): each I/O call of a workload with
 * writers, a checkpoint and a compaction fails in turn, with the errno a
 * full or failing disk gives; a failed fsync reaches writers that wait on
 * a full pending list as EIO.
 */
#include <dirent.h>
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
#include "fio.h"
#include "testutil.h"

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
	int n = tu_event_line(line, sizeof(line), i % 3, 1, i, i % 40);
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

	tu_copy_store(pristine, work);
	fio_install();
	st = tu_open_store(work, false, 2);
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
	assert_int_equal(evl_writer_open(st, tu_task_uid(st, "f"), &w), 0);
	for (int i = 0; i < 30; i++)
		fault_write(w, i, err, acked);
	for (uint64_t off = 0;; off += rc) {
		rc = evl_task_read(st, tu_task_uid(st, "f"), off, buf, sizeof(buf));
		assert_true(rc >= 0 || rc == -err || rc == -EIO);
		if (rc <= 0)
			break;
	}
	assert_true(fault_ok(evl_store_checkpoint(st), err));
	if (tu_task_uid(st, "g")) {
		struct evl_writer *wg;

		assert_int_equal(evl_writer_open(st, tu_task_uid(st, "g"), &wg), 0);
		for (int i = 0; i < 10; i++)
			fault_write(wg, i, err, NULL);
		evl_writer_close(wg);
		rc = evl_task_delete(st, "g");
		assert_true(fault_ok(rc, err));
		g_deleted = rc == 0;
	}
	assert_int_equal(evl_compact_start(st, &keep), 0);
	tu_wait_compaction(st, &cs);
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
		if (tu_task_uid(st, "g")) {
			assert_int_equal(evl_task_delete(st, "g"), 0);
			g_deleted = true;
		}
		assert_int_equal(evl_compact_start(st, &keep), 0);
		tu_wait_compaction(st, &cs);
		assert_int_equal(cs.last_rc, 0);
		assert_int_equal(evl_store_checkpoint(st), 0);
	}
	evl_writer_close(w);
	rc = evl_store_close(st);
	assert_true(rc == 0 || stats.error);
	fio_uninstall();

	st = tu_open_store(work, false, 2);
	{
		size_t len;
		char *log = tu_read_all(st, tu_task_uid(st, "f"), NULL, &len);
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
		assert_int_equal(tu_task_uid(st, "g"), 0);
	tu_check_views(st, work);
	assert_int_equal(evl_store_close(st), 0);
	return calls;
}

/*
 * Every call of each kind the workload makes fails in turn (a census run
 * counts them first), with the errno a full or failing disk gives; a
 * truncate, which runs only to cut back a failed journal write, fails
 * after one.  The sanitizer builds take fewer (fault_stride).
 */
static void faults_at_every_site(void **state)
{
	static const struct tu_fault_kind kinds[] = {
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
	long runs = 0, stride = tu_fault_stride();
	char line[200];

	/* on tmpfs when there is one: a run is a dozen fsyncs, and there are a thousand runs */
	if (access("/dev/shm", W_OK) == 0) {
		snprintf(shm, sizeof(shm), "/dev/shm/evl-faults-XXXXXX");
		assert_non_null(mkdtemp(shm));
		dir = shm;
	}
	snprintf(pristine, sizeof(pristine), "%s/pristine", dir);
	snprintf(work, sizeof(work), "%s/work", dir);
	st = tu_open_store(pristine, false, 2);
	assert_int_equal(evl_writer_open(st, tu_create(st, "f"), &w), 0);
	for (int i = 0; i < FAULT_PRISTINE; i++) {
		int n = tu_event_line(line, sizeof(line), i % 3, 0, i, i % 40);

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
	uid = tu_create(st, "s");
	assert_int_equal(evl_writer_open(st, uid, &w), 0);
	fio_fail(FIO_SYNC, 0, EIO, true);
	t0 = tu_now_ms();
	for (i = 0; i < 1000 && !rc; i++) {
		int n = tu_event_line(line, sizeof(line), 1, 0, i, 40);

		rc = evl_writer_write(w, line, n);
	}
	/* nothing can be applied after the failed fsync: EIO, not a hang */
	assert_int_equal(rc, -EIO);
	assert_true(tu_now_ms() - t0 < 10000);
	fio_clear();
	evl_writer_close(w);
	assert_int_equal(evl_store_close(st), -EIO);
	fio_uninstall();
	st = tu_open_store(dir, false, 2);
	tu_check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(full_pending_after_failed_fsync_fails_fast, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(faults_at_every_site, tu_setup, tu_teardown),
	};

	return tu_run_tests("faults", tests, sizeof(tests) / sizeof(tests[0]));
}
