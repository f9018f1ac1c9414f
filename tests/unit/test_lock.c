/*
 * test_lock.c - the directory lock the store takes at open: a second open
 * is refused, an older daemon that locks only DATA_DIR/lock is seen, the
 * lock holds when its file is removed, and a short write of it fails.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "evlog.h"
#include "store.h"
#include "testutil.h"

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
	struct evl_store *st = tu_open_store(dir, false, 2), *again;
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
	struct evl_store *st = tu_open_store(dir, false, 2), *again;
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
	struct evl_store *st = tu_open_store(dir, false, 2), *again;
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
	struct evl_store *st = tu_open_store(dir, false, 2);
	char path[4200], holder[600], want[64];

	snprintf(path, sizeof(path), "%s/lock", dir);
	assert_int_equal(truncate(path, 0), 0);
	assert_int_equal(evl_store_holder(dir, holder, sizeof(holder)), 1);
	snprintf(want, sizeof(want), "pid %ld", (long)getpid());
	if (strncmp(holder, want, strlen(want)))
		fail_msg("holder '%s', expected '%s'", holder, want);
	assert_int_equal(evl_store_close(st), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(lock_survives_rm_of_the_lock_file, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(holder_before_its_pid_is_written, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(lock_excludes_an_older_daemon, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(second_open_is_refused, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(lock_file_short_write_fails, tu_setup, tu_teardown),
	};

	return tu_run_tests("lock", tests, sizeof(tests) / sizeof(tests[0]));
}
