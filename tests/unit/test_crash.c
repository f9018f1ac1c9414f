/*
 * test_crash.c - crashes and power loss under a workload of writers and task
 * churn in a child: kill -9 loses nothing acknowledged, a power loss keeps
 * what was made durable, a failed fsync keeps the journal (a sticky
 * error), and the recovery after a power loss survives a fault at each of
 * its I/O calls.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "evlog.h"
#include "fio.h"
#include "store.h"
#include "testutil.h"

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
		int n = tu_event_line(line, sizeof(line), (a->id * 3 + i) % 11, a->id, i, i % 60);
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

	if (evl_writer_open(a->st, tu_task_uid(a->st, "r"), &rw))
		_exit(3);
	for (int k = 0;; k++) {
		char name[32], line[200];
		struct evl_writer *w;

		snprintf(name, sizeof(name), "d%d", k);
		if (evl_task_create(a->st, name))
			_exit(7);
		churn_say(a->ack_fd, 'C', k + 1);
		if (evl_writer_open(a->st, tu_task_uid(a->st, name), &w))
			_exit(3);
		for (int i = 0; i < CHURN_EVENTS; i++) {
			int n = tu_event_line(line, sizeof(line), i, 4, i, i * 7);

			if (evl_writer_write(w, line, n))
				_exit(4);
		}
		evl_writer_close(w);
		for (int i = 0; i < 2; i++, ri++) {
			int n = tu_event_line(line, sizeof(line), ri % 3, 5, ri, ri % 50);

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
		if (k % 4 == 3 && store_retain(a->st, tu_task_uid(a->st, "r"), CHURN_KEEP, 0, 0, &ev, &by))
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

/* The churn thread's steps that were durable are there (see churn_main). */
static void verify_churn(struct evl_store *st, const char *what, long n)
{
	uint64_t uid;
	int first, got;

	for (int k = 0; k <= churn.created; k++) {
		char name[32];

		snprintf(name, sizeof(name), "d%d", k);
		uid = tu_task_uid(st, name);
		if (k < churn.deleted && uid)
			fail_msg("%s %ld: task %s was deleted, and is back", what, n, name);
		/* d<deleted> may be gone: its delete may have been journaled, not acknowledged */
		if (k > churn.deleted && k < churn.created && !uid)
			fail_msg("%s %ld: task %s was created, and is gone", what, n, name);
		if (!uid)
			continue;
		got = tu_task_run(st, uid, 4, &first, what, n);
		if ((got && first != 0) || (k < churn.filled && got != CHURN_EVENTS))
			fail_msg("%s %ld: task %s: %d events from %d", what, n, name, got, first);
	}
	uid = tu_task_uid(st, "r");
	if (!uid)
		return;	/* a kill -9 before the workload made it */
	/* retention drops a head only, and never below the newest CHURN_KEEP */
	got = tu_task_run(st, uid, 5, &first, what, n);
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
	struct evl_store *st = tu_open_store(dir, false, 2);
	int found[4] = { 0 }, dup = 0;

	for (int t = 0; t < 3; t++) {
		uint64_t uid = tu_task_uid(st, names[t]);
		size_t len;
		char *log, *p, *end;
		int next[4] = { 0 };

		if (!uid)
			continue;	/* created by a child that died before the ack */
		log = tu_read_all(st, uid, NULL, &len);
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
	tu_check_views(st, dir);
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

static void kill9_loses_nothing_acknowledged(void **state)
{
	const char *dir = *state;
	int cycles = tu_iterations("EVL_CRASH_CYCLES", 6);
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

/* Copy store @dir and the synced lengths in @dump to @keep/@name, for a look after a failure. */
static void keep_copy(const char *keep, const char *dir, const char *dump, const char *name)
{
	char to[4200], cmd[2 * 4200 + 64];

	snprintf(to, sizeof(to), "%s/%s", keep, name);
	mkdir(keep, 0700);
	tu_copy_store(dir, to);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s.dump'", dump, to);
	assert_int_equal(system(cmd), 0);
}

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
		tu_index_undone += rc;
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
	int cycles = tu_iterations("EVL_POWERLOSS_CYCLES", 12);
	unsigned seed = tu_iterations("EVL_POWERLOSS_SEED", 99);
	const char *keep = getenv("EVL_POWERLOSS_KEEP");
	struct fio_loss loss = { 0 };

	for (int c = 0; c < cycles; c++) {
		int acked[4];
		long after = 100 + rand_r(&seed) % 1200, undone = tu_index_undone;
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
				      churn.kept, tu_index_undone > undone ? ", index commit undone" : "");
		verify_acked(dir, sync ? acked : durable, sync ? "power loss, commit=sync, cycle" :
			     "power loss, group commit, cycle", c);
		tu_rmrf(dir);
		mkdir(dir, 0700);
	}
	print_message("power loss: %d cycles (half commit=sync, half group with barriers), "
		      "%ld files cut short, %ld unsynced pages zeroed, %ld directory changes "
		      "undone, %ld index commits undone\n", cycles, loss.files_cut,
		      loss.pages_holed, loss.dir_undone, tu_index_undone);
}

/* Write event i of writer 0 to @w and report it on @fd when acknowledged.  Returns the write's result. */
static int sticky_write(struct evl_writer *w, int i, int fd)
{
	char line[200];
	int n = tu_event_line(line, sizeof(line), i % 5, 0, i, i % 70), rc;

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
	    evl_writer_open(st, tu_task_uid(st, "x"), &w))
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

	tu_copy_store(crashed, work);
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
	tu_copy_store(dir, peek);
	st = tu_open_store(peek, false, 2);
	uid = tu_task_uid(st, "y");
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
	static const struct tu_fault_kind kinds[] = {
		{ FIO_WRITE, ENOSPC, "write ENOSPC" }, { FIO_WRITE, EIO, "write EIO" },
		{ FIO_SYNC, EIO, "fsync EIO" }, { FIO_TRUNC, EIO, "truncate EIO" },
		{ FIO_OPEN, EMFILE, "open EMFILE" }, { FIO_RENAME, EIO, "rename EIO" },
		{ FIO_READ, EIO, "read EIO" }, { FIO_UNLINK, EIO, "unlink EIO" },
		{ FIO_MKDIR, ENOSPC, "mkdir ENOSPC" }, { FIO_RMDIR, EIO, "rmdir EIO" },
		{ FIO_ALLOC, ENOSPC, "fallocate ENOSPC" }, { FIO_LOCK, ENOLCK, "flock ENOLCK" },
	};
	const char *dir = *state, *only = getenv("EVL_FAULT_KINDS");
	char crashed[4200], work[4200];
	long runs = 0, stride = tu_fault_stride(), total = 0, sites = fio_sites(NULL);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(kill9_loses_nothing_acknowledged, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(power_loss_keeps_what_was_durable, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(failed_fsync_keeps_the_journal, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(faults_in_recovery, tu_setup, tu_teardown),
	};

	return tu_run_tests("crash", tests, sizeof(tests) / sizeof(tests[0]));
}
