/*
 * test_tools.c - evl_backup, and the offline tools (backup, reindex, the
 * compaction's index shrink) failing at each I/O call or killed at each
 * step: the store and the copy always open with everything, and running
 * the tools again finishes.
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
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include <cmocka.h>

#include "evlog.h"
#include "fio.h"
#include "testutil.h"

static void backup_copies_only_what_is_new(void **state)
{
	const char *dir = *state;
	struct evl_backup_opts o = { .report = tu_collect };
	struct evl_backup_result r;
	struct evl_check_result cr;
	char dest[4200], *a, *b;
	struct evl_store *st = tu_open_default(dir);

	tu_fill(st, 0, 200);
	assert_int_equal(evl_store_close(st), 0);
	/* never into the source itself */
	snprintf(dest, sizeof(dest), "%s/copy", dir);
	assert_int_equal(evl_backup(dir, dest, &o, &r), -ECANCELED);
	assert_true(tu_reported("inside the store"));
	assert_int_equal(access(dest, F_OK), -1);
	snprintf(dest, sizeof(dest), "%s.copy", dir);
	assert_int_equal(evl_backup(dir, dest, &o, &r), 0);
	assert_int_equal(r.tasks, 4);
	assert_int_equal(r.tasks_new, 4);
	assert_int_equal(r.events, 200);

	st = tu_open_default(dir);
	tu_fill(st, 200, 2);	/* tasks t0 and t1 grow */
	assert_int_equal(evl_task_delete(st, "t3"), 0);
	assert_int_equal(evl_store_close(st), 0);
	assert_int_equal(evl_backup(dir, dest, &o, &r), 0);
	assert_int_equal(r.tasks_appended, 2);
	assert_int_equal(r.tasks_unchanged, 1);
	assert_int_equal(r.tasks_removed, 1);
	assert_true(r.log_bytes_copied > 0 && r.log_bytes_copied < 100);

	a = tu_dump(dir);
	b = tu_dump(dest);
	assert_string_equal(a, b);
	free(a);
	free(b);
	assert_int_equal(tu_fsck(dest, false, &cr), 0);
	assert_int_equal(cr.problems, 0);
	tu_rmrf(dest);
}

/*
 * The pristine store of the tool tests: 200 events in four tasks, and a
 * deleted task whose 40,000 index entries still wait for the purge, so
 * that a compaction reclaims most of the index file and shrinks it.
 */
static void make_tool_store(const char *dir)
{
	struct evl_store *st = tu_open_default(dir);
	struct evl_writer *w;
	struct evl_task_info info;
	size_t n = 40000, len = 0;
	char *buf = malloc(n * 40);

	tu_fill(st, 0, 200);
	assert_int_equal(evl_task_create(st, "big"), 0);
	assert_int_equal(evl_task_lookup(st, "big", &info), 0);
	assert_int_equal(evl_writer_open(st, info.uid, &w), 0);
	for (size_t i = 0; i < n; i++)
		len += sprintf(buf + len, "{\"type\":\"%s\",\"b\":%zu}\n", tu_types[i % 4], i);
	assert_int_equal(evl_writer_write(w, buf, len), 0);
	assert_int_equal(evl_writer_close(w), 0);
	free(buf);
	assert_int_equal(evl_store_checkpoint(st), 0);
	assert_int_equal(evl_task_delete(st, "big"), 0);
	assert_int_equal(evl_store_close(st), 0);
}

/*
 * The tools' workload on store @work: a backup to @copy (which recovers and
 * checkpoints @work first), a reindex, a compaction (the purge, an index
 * shrink, the reserve file).  With @err, each step returns 0, that errno,
 * EIO or (backup) EAGAIN; without, each must succeed.  Returns the first
 * failure, or 0.
 */
static int tool_steps(const char *work, const char *copy, int err)
{
	struct evl_backup_opts bo = { 0 };
	struct evl_check_opts co = { 0 };
	struct evl_backup_result br;
	struct evl_check_result cr;
	struct evl_compact_args ca = { .task = "" };
	struct evl_compact_status cs;
	struct evl_options o;
	struct evl_store *st;
	int rc, first = 0;

	rc = evl_backup(work, copy, &bo, &br);
	if (rc && rc != -err && rc != -EIO && rc != -EAGAIN)
		fail_msg("backup: %d (%s)", rc, strerror(-rc));
	first = first ? first : rc;
	rc = evl_reindex(work, &co, &cr);
	if (rc && rc != -err && rc != -EIO)
		fail_msg("reindex: %d (%s)", rc, strerror(-rc));
	first = first ? first : rc;
	evl_options_default(&o);
	rc = evl_store_open(work, &o, &st);
	if (rc && rc != -err && rc != -EIO)
		fail_msg("open: %d (%s)", rc, strerror(-rc));
	if (!rc) {
		assert_int_equal(evl_compact_start(st, &ca), 0);
		do {
			usleep(2000);
			evl_compact_status(st, &cs);
		} while (cs.running);
		if (cs.last_rc && cs.last_rc != -err && cs.last_rc != -EIO)
			fail_msg("compaction: %d (%s)", cs.last_rc, strerror(-cs.last_rc));
		first = first ? first : cs.last_rc;
		rc = evl_store_close(st);
		if (rc && rc != -err && rc != -EIO)
			fail_msg("close: %d (%s)", rc, strerror(-rc));
	}
	return first ? first : rc;
}

/*
 * After a run that failed or crashed somewhere: the store and the copy hold
 * @want (the views and logs of the pristine store) once the tools are run
 * again, and the store holds it even before (a failed or cut reindex never
 * leaves it without its index, or with a half-made one).
 */
static void tools_check(const char *work, const char *copy, const char *want, const char *what,
			long n)
{
	char *got = tu_dump(work);

	if (strcmp(got, want))
		fail_msg("%s %ld: the store changed before the tools ran again", what, n);
	free(got);
	assert_int_equal(tool_steps(work, copy, 0), 0);
	got = tu_dump(work);
	if (strcmp(got, want))
		fail_msg("%s %ld: the store changed", what, n);
	free(got);
	got = tu_dump(copy);
	if (strcmp(got, want))
		fail_msg("%s %ld: the backup differs", what, n);
	free(got);
}

/* Runs of each kind of fault, and crashes: fewer in the slower sanitizer builds. */
#if defined(__SANITIZE_THREAD__)
#define TOOL_RUNS 3
#elif defined(__SANITIZE_ADDRESS__)
#define TOOL_RUNS 8
#else
#define TOOL_RUNS 25
#endif

/* A place of its own on tmpfs when there is one (hundreds of runs of a dozen fsyncs). */
static void tool_dirs(const char *base, char *shm, char *pristine, char *work, char *copy)
{
	if (access("/dev/shm", W_OK) == 0) {
		strcpy(shm, "/dev/shm/evl-tools-XXXXXX");
		assert_non_null(mkdtemp(shm));
		base = shm;
	}
	sprintf(pristine, "%s/pristine", base);
	sprintf(work, "%s/work", base);
	sprintf(copy, "%s/copy", base);
}

/*
 * Backup, reindex, the index shrink and the reserve through the I/O seam:
 * each call of a kind fails in turn (about TOOL_RUNS runs of a big kind;
 * EVL_TOOL_RUNS=N sets it, EVL_FAULT_KINDS=fsync picks kinds).
 */
static void tools_survive_faults(void **state)
{
	static const struct {
		enum fio_op op;
		int err;
		const char *name;
	} kinds[] = {
		{ FIO_WRITE, ENOSPC, "write ENOSPC" }, { FIO_WRITE, EIO, "write EIO" },
		{ FIO_SYNC, EIO, "fsync EIO" }, { FIO_TRUNC, EIO, "truncate EIO" },
		{ FIO_OPEN, EMFILE, "open EMFILE" }, { FIO_RENAME, EIO, "rename EIO" },
		{ FIO_READ, EIO, "read EIO" }, { FIO_UNLINK, EIO, "unlink EIO" },
		{ FIO_MKDIR, ENOSPC, "mkdir ENOSPC" }, { FIO_RMDIR, EIO, "rmdir EIO" },
		{ FIO_ALLOC, ENOSPC, "fallocate ENOSPC" }, { FIO_LOCK, ENOLCK, "flock ENOLCK" },
	};
	char shm[64] = "", pristine[4200], work[4200], copy[4200], *want;
	const char *only = getenv("EVL_FAULT_KINDS"), *per = getenv("EVL_TOOL_RUNS");
	long runs = 0, sites = fio_sites(NULL), per_kind = per && atol(per) > 0 ? atol(per) : TOOL_RUNS;
	uint64_t big;

	tool_dirs(*state, shm, pristine, work, copy);
	make_tool_store(pristine);
	tu_copy_store(pristine, work);
	assert_int_equal(tool_steps(work, copy, 0), 0);
	want = tu_dump(work);
	/* the census run shrank the index: the sweep reaches index_shrink */
	big = tu_file_size(pristine, "index/data.mdb");
	assert_true(tu_file_size(work, "index/data.mdb") < big / 2);
	for (size_t k = 0; k < sizeof(kinds) / sizeof(*kinds); k++) {
		long calls, step;

		if (only && !strstr(kinds[k].name, only))
			continue;
		tu_copy_store(pristine, work);
		tu_rmrf(copy);
		fio_install();
		tool_steps(work, copy, 0);
		calls = fio_count(kinds[k].op);
		fio_uninstall();
		/* a kind of up to 3 * per_kind calls fails at every one */
		step = calls > 3 * per_kind ? calls / per_kind : 1;
		for (long nth = 0; nth < calls + 1; nth += step, runs++) {
			tu_copy_store(pristine, work);
			tu_rmrf(copy);
			fio_install();
			fio_fail(kinds[k].op, nth, kinds[k].err, false);
			tool_steps(work, copy, kinds[k].err);
			fio_uninstall();
			tools_check(work, copy, want, kinds[k].name, nth);
		}
		print_message("tool faults: %-16s %4ld calls, every %ld failed in turn\n",
			      kinds[k].name, calls, step);
	}
	print_message("tool faults: %ld runs, %ld new places failed (call stacks)\n", runs,
		      fio_sites(getenv("EVL_FAULT_SITES_DUMP")) - sites);
	free(want);
	if (shm[0])
		tu_rmrf(shm);
}

/*
 * The tools killed at steps that change the disk (about 2.5 * TOOL_RUNS, or
 * 2.5 * EVL_TOOL_RUNS):
 * the store opens with everything, and running them again finishes.
 */
static void tools_survive_a_crash_at_every_step(void **state)
{
	char shm[64] = "", pristine[4200], work[4200], copy[4200], *want;
	const char *per = getenv("EVL_TOOL_RUNS");
	long steps, step, runs = 0, n_runs = 5 * (per && atol(per) > 0 ? atol(per) : TOOL_RUNS) / 2;

	tool_dirs(*state, shm, pristine, work, copy);
	make_tool_store(pristine);
	tu_copy_store(pristine, work);
	assert_int_equal(tool_steps(work, copy, 0), 0);
	want = tu_dump(work);
	tu_copy_store(pristine, work);
	tu_rmrf(copy);
	fio_install();
	fio_crash_at(-1, 0);
	tool_steps(work, copy, 0);
	steps = fio_steps();
	fio_uninstall();
	step = steps / n_runs > 1 ? steps / n_runs : 1;
	for (long n = 0; n < steps; n += step, runs++) {
		int status;
		pid_t pid;

		tu_copy_store(pristine, work);
		tu_rmrf(copy);
		pid = fork();
		if (pid == 0) {
			fio_install();
			fio_crash_at(n, 99);
			tool_steps(work, copy, 0);
			_exit(0);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		tools_check(work, copy, want, "crash at step", n);
	}
	print_message("tool crashes: %ld of %ld steps\n", runs, steps);
	free(want);
	if (shm[0])
		tu_rmrf(shm);
}

/*
 * backup installs the snapshot's index over DEST's, then removed DEST's
 * journal, which ends where DEST's old index was: a crash or an error in
 * between left a copy whose intact journal ends before its index's
 * position, which the open calls a damaged index.  The journal goes
 * first now: a backup stopped there leaves DEST's old index, and the next
 * run finishes the copy.
 */
static void a_backup_stopped_before_its_index_leaves_a_copy_that_opens(void **state)
{
	const char *dir = *state;
	struct evl_backup_opts o = { .report = tu_collect };
	struct evl_backup_result r;
	struct evl_check_result cr;
	struct evl_store *st = tu_open_default(dir);
	char dest[4200], *a, *b;

	tu_fill(st, 0, 40);
	assert_int_equal(evl_store_close(st), 0);
	snprintf(dest, sizeof(dest), "%s.copy", dir);
	assert_int_equal(evl_backup(dir, dest, &o, &r), 0);	/* DEST has a journal now */
	st = tu_open_default(dir);
	tu_fill(st, 40, 8);
	assert_int_equal(evl_store_close(st), 0);
	fio_install();
	fio_fail_path(FIO_UNLINK, ".jnl", EIO);	/* DEST's journal cannot be removed */
	assert_int_equal(evl_backup(dir, dest, &o, &r), -EIO);
	fio_uninstall();
	tu_nlines = 0;
	tu_fsck(dest, false, &cr);
	for (int i = 0; i < tu_nlines; i++)
		print_message("%s\n", tu_lines[i]);
	assert_false(tu_reported("but the journal ends at"));
	{
		struct evl_options eo;
		struct evl_store *d;

		evl_options_default(&eo);
		assert_int_equal(evl_store_open(dest, &eo, &d), 0);
		assert_int_equal(evl_store_close(d), 0);
	}
	assert_int_equal(evl_backup(dir, dest, &o, &r), 0);
	a = tu_dump(dir);
	b = tu_dump(dest);
	assert_string_equal(a, b);
	free(a);
	free(b);
	assert_int_equal(tu_fsck(dest, false, &cr), 0);
	assert_int_equal(cr.problems, 0);
	tu_rmrf(dest);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(backup_copies_only_what_is_new, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(tools_survive_faults, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(tools_survive_a_crash_at_every_step, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(a_backup_stopped_before_its_index_leaves_a_copy_that_opens,
						tu_setup, tu_teardown),
	};

	return tu_run_tests("tools", tests, sizeof(tests) / sizeof(tests[0]));
}
