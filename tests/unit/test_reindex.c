/*
 * test_reindex.c - evl_reindex, rebuilding the index from the task files and
 * the journal: the same views, tasks and deletes only the journal knows,
 * a task directory the index misnames or that was removed, a tail the
 * journal holds, and the owner of a task without a usable index.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <syslog.h>
#include <unistd.h>

#include <cmocka.h>

#include "evlog.h"
#include "fio.h"
#include "tasklog.h"
#include "testutil.h"

static void reindex_gives_the_same_views(void **state)
{
	const char *dir = *state;
	struct evl_check_opts o = { .report = tu_collect };
	struct evl_check_result r;
	struct evl_store *st = tu_open_default(dir);
	char path[4200], *before, *after;

	tu_fill(st, 0, 500);
	assert_int_equal(evl_store_close(st), 0);
	before = tu_dump(dir);

	assert_int_equal(evl_reindex(dir, &o, &r), 0);	/* the old index opens */
	assert_int_equal(r.events, 500);
	after = tu_dump(dir);
	assert_string_equal(after, before);
	free(after);

	snprintf(path, sizeof(path), "%s/index", dir);
	tu_rmrf(path);
	tu_nlines = 0;
	assert_int_equal(evl_reindex(dir, &o, &r), 0);	/* no index at all */
	assert_true(tu_reported("has no index"));
	after = tu_dump(dir);
	assert_string_equal(after, before);
	free(after);
	assert_int_equal(tu_fsck(dir, false, &r), 0);
	assert_int_equal(r.problems, 0);

	/* it takes appends afterwards, with gseqs past the old ones */
	st = tu_open_default(dir);
	tu_fill(st, 500, 40);
	assert_int_equal(evl_store_close(st), 0);
	assert_int_equal(tu_fsck(dir, false, &r), 0);
	assert_int_equal(r.problems, 0);
	free(before);
}

/*
 * The live sweep (seed 98702 cases 54 and 57): tasks made and written
 * through a mount that was killed before its applier made their
 * directories; their creates and appends are in the journal only.  Then
 * the index is unusable (its stamp garbled, a page cut, or gone), and
 * reindex, which cannot recover through it, placed the journaled events of
 * the tasks on disk only: those 13 acknowledged events were reported as
 * "not placed" and lost.  reindex now makes such a task from its create
 * record, unless a later record deleted it (how 1: it stays gone).
 */
static void reindex_makes_the_tasks_only_the_journal_created(void **state)
{
	static const char ev[] = "{\"type\":\"note\",\"i\":7}\n";
	const char *dir = *state;

	for (int how = 0; how < 2; how++) {
		struct evl_check_opts co = { .report = tu_collect };
		struct evl_check_result r;
		struct evl_task_info info;
		struct evl_store *st = tu_open_default(dir);
		char path[4400], buf[256];
		int status;
		pid_t pid;

		tu_fill(st, 0, 8);
		assert_int_equal(evl_store_close(st), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct evl_options o;
			struct evl_writer *w;

			evl_options_default(&o);
			o.commit_sync = true;
			o.hold_apply = true;	/* the applier never runs: a kill -9 comes first */
			if (evl_store_open(dir, &o, &st) || evl_task_create(st, "t9") ||
			    evl_task_lookup(st, "t9", &info) || evl_writer_open(st, info.uid, &w) ||
			    evl_writer_write(w, ev, strlen(ev)) || evl_writer_close(w))
				_exit(2);
			if (how && evl_task_delete(st, "t9"))
				_exit(3);
			_exit(0);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		assert_false(tu_exists(dir, "tasks/t9"));
		snprintf(path, sizeof(path), "%s/index", dir);
		tu_rmrf(path);	/* nothing to recover through */
		tu_nlines = 0;
		assert_int_equal(evl_reindex(dir, &co, &r), 0);
		for (int i = 0; i < tu_nlines; i++)
			print_message("%s\n", tu_lines[i]);
		assert_int_equal(r.lost, 0);
		st = tu_open_default(dir);
		if (how) {
			assert_int_equal(evl_task_lookup(st, "t9", &info), -ENOENT);
		} else {
			assert_int_equal(evl_task_lookup(st, "t9", &info), 0);
			assert_int_equal(info.events, 1);
			assert_int_equal(tu_read_task(st, "t9", buf, sizeof(buf)), (ssize_t)strlen(ev));
			assert_memory_equal(buf, ev, strlen(ev));
		}
		assert_int_equal(evl_store_close(st), 0);
		assert_int_equal(tu_fsck(dir, false, &r), 0);
		assert_int_equal(r.problems, 0);
		tu_rmrf(dir);
		mkdir(dir, 0700);
	}
}

/*
 * A task deleted (rm returned: the delete is journaled) whose directory
 * the applier had not moved when the daemon was killed (its renames fail
 * here), and no usable index: reindex applies the delete as the recovery
 * would, instead of serving the task again (how 0; the task also has an
 * events.unapplied and a damaged event, which the salvage moves first).
 * A plain file where the journal created a task is left alone, its events
 * counted lost, and reindex goes on (how 1; it stopped with ENOTDIR).  A
 * copy (cp -a) of the deleted task's tree has its uid: made after the
 * delete (how 2) or before it (how 3), it is kept and reported, never
 * deleted; so is the deleted task in doubt (how 3).
 */
struct del_arg {
	struct evl_store *st;
	int rc;
};

static void *delete_t1(void *arg)
{
	struct del_arg *d = arg;

	d->rc = evl_task_delete(d->st, "t1");
	return NULL;
}

static void reindex_applies_the_journals_deletes(void **state)
{
	static const char ev[] = "{\"type\":\"note\",\"i\":7}\n";
	const char *dir = *state;

	for (int how = 0; how < 4; how++) {
		struct evl_check_opts co = { .report = tu_collect };
		struct evl_check_result r;
		struct evl_task_info info;
		struct evl_store *st = tu_open_default(dir);
		char path[4200], saved[4200], buf[256], copy[4200];
		size_t flen, t0len, t1len;
		char *t0, *t1;
		int status;
		pid_t pid;

		tu_fill(st, 0, 8);
		assert_int_equal(evl_store_close(st), 0);
		if (!tasklog_uid_of(dir, "t1")) {
			skip();	/* no user xattrs here: the task's uid is not on disk */
		}
		t0 = tu_slurp(dir, "tasks/t0/events", &t0len);
		t1 = tu_slurp(dir, "tasks/t1/events", &t1len);
		snprintf(path, sizeof(path), "%s/tasks/t1", dir);
		snprintf(saved, sizeof(saved), "%s.t1", dir);
		tu_copy_store(path, saved);	/* with its xattrs */
		snprintf(copy, sizeof(copy), "%s/tasks/a1", dir);
		if (how == 0)
			tu_spit(dir, "tasks/t1/events.unapplied", ev, strlen(ev));
		if (how == 3)
			tu_copy_store(path, copy);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct del_arg d = { 0 };
			struct evl_options o;
			struct evl_writer *w;
			pthread_t th;

			evl_options_default(&o);
			o.commit_sync = true;
			o.hold_apply = true;	/* the applier never runs: a kill -9 comes first */
			if (how == 0)
				fio_install();	/* before the store's threads read the seam */
			if (evl_store_open(dir, &o, &st))
				_exit(2);
			if (how == 0) {
				/* the delete is durable before its directory moves, which fails */
				fio_fail(FIO_RENAME, 0, EIO, true);
				d.st = st;
				if (pthread_create(&th, NULL, delete_t1, &d))
					_exit(3);
				for (int k = 0; k < 3000 && !fio_failed(); k++)
					usleep(100000);
				_exit(fio_failed() ? 0 : 4);
			}
			if (how == 1 && (evl_task_create(st, "t9") ||
					 evl_task_lookup(st, "t9", &info) ||
					 evl_writer_open(st, info.uid, &w) ||
					 evl_writer_write(w, ev, strlen(ev)) || evl_writer_close(w)))
				_exit(5);
			if (how >= 2 && evl_task_delete(st, "t1"))
				_exit(6);
			_exit(0);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		if (how == 0) {
			char *l = tu_slurp(dir, "tasks/t1/events", &flen);

			l[3] ^= 1;	/* its first event is not what was written */
			tu_spit(dir, "tasks/t1/events", l, flen);
			free(l);
		}
		if (how == 1)
			tu_spit(dir, "tasks/t9", "not a task\n", 11);
		if (how == 2) {
			assert_false(tu_exists(dir, "tasks/t1"));
			usleep(50000);	/* ctime is a coarse clock */
			snprintf(path, sizeof(path), "%s/tasks/t9", dir);
			tu_copy_store(saved, path);
		}
		if (how == 3) {
			/* the directory the delete moved is back: restored, or never moved */
			snprintf(path, sizeof(path), "%s/tasks/t1", dir);
			assert_false(tu_exists(dir, "tasks/t1"));
			tu_copy_store(saved, path);
		}
		snprintf(path, sizeof(path), "%s/index", dir);
		tu_rmrf(path);	/* nothing to recover through */
		tu_nlines = 0;
		assert_int_equal(evl_reindex(dir, &co, &r), 0);
		for (int i = 0; i < tu_nlines; i++)
			print_message("%s\n", tu_lines[i]);
		assert_int_equal(r.lost, how == 1);
		assert_int_equal(r.deletes_kept, how >= 2);
		st = tu_open_default(dir);
		assert_int_equal(evl_task_lookup(st, "t1", &info), how & 1 ? 0 : -ENOENT);
		if (how == 0)
			assert_false(tu_exists(dir, "tasks/t1"));
		if (how == 1) {
			assert_int_equal(evl_task_lookup(st, "t9", &info), -ENOENT);
			free(tu_slurp(dir, "tasks/t9", &flen));
			assert_int_equal(flen, 11);
		}
		if (how == 2) {
			/* the copy keeps its events (with new gseqs: no other log has them now) */
			assert_int_equal(evl_task_lookup(st, "t9", &info), 0);
			assert_int_equal(tu_read_task(st, "t9", buf, sizeof(buf)), (ssize_t)t1len);
			assert_memory_equal(buf, t1, t1len);
		}
		if (how == 3) {
			assert_int_equal(tu_read_task(st, "a1", buf, sizeof(buf)), (ssize_t)t1len);
			assert_memory_equal(buf, t1, t1len);
			assert_int_equal(tu_read_task(st, "t1", buf, sizeof(buf)), (ssize_t)t1len);
			assert_memory_equal(buf, t1, t1len);
		}
		assert_int_equal(evl_task_lookup(st, "t0", &info), 0);
		assert_int_equal(tu_read_task(st, "t0", buf, sizeof(buf)), (ssize_t)t0len);
		assert_memory_equal(buf, t0, t0len);
		assert_int_equal(evl_store_close(st), 0);
		if (how != 1) {
			assert_int_equal(tu_fsck(dir, false, &r), 0);
			assert_int_equal(r.problems, 0);
		}
		free(t0);
		free(t1);
		tu_rmrf(saved);
		tu_rmrf(dir);
		mkdir(dir, 0700);
	}
}

/*
 * Journaled appends (a kill -9 before the applier ran) to a task whose
 * directory is not where the index says: renamed by hand, unmounted (or a
 * name damaged in both the task record and the names the walk compares).
 * The open set the task aside and, events.unapplied unwritable there too,
 * counted them lost, applied the journal past them and dropped them for
 * good.  A directory the index does not know may be the task's: it
 * refuses now, committing nothing (again and again).  How 0: the
 * directory carries the task's uid, and reindex writes the events there:
 * nothing is lost.  How 1: it carries none (no user xattrs): the open
 * refuses all the same; reindex cannot tell it is the task's (no earlier
 * journaled event of it in its log) and names the event lost.
 */
static void a_journaled_task_the_index_misnames_keeps_its_events(void **state)
{
	static const char ev[] = "{\"type\":\"note\",\"i\":70}\n";
	const char *dir = *state;

	for (int how = 0; how < 2; how++) {
		struct evl_check_opts co = { .report = tu_collect };
		struct evl_check_result r;
		struct evl_task_info info;
		struct evl_options o;
		struct evl_store *st = tu_open_default(dir);
		char from[4400], to[4400], buf[4096];
		ssize_t n;

		tu_fill(st, 0, 8);
		assert_int_equal(evl_store_close(st), 0);
		tu_journal_to(dir, "t1", ev);
		snprintf(from, sizeof(from), "%s/tasks/t1", dir);
		snprintf(to, sizeof(to), "%s/tasks/t1x", dir);
		assert_int_equal(rename(from, to), 0);
		if (how == 1 && removexattr(to, TASKLOG_UID_XATTR) && errno != ENODATA)
			fail_msg("removexattr: %s", strerror(errno));
		evl_options_default(&o);
		for (int i = 0; i < 2; i++)
			assert_int_equal(evl_store_open(dir, &o, &st), -EUCLEAN);
		tu_nlines = 0;
		assert_int_equal(evl_reindex(dir, &co, &r), 0);
		for (int i = 0; i < tu_nlines; i++)
			print_message("%s\n", tu_lines[i]);
		assert_int_equal(r.lost, how);
		st = tu_open_default(dir);
		assert_int_equal(evl_task_lookup(st, "t1", &info), -ENOENT);
		assert_int_equal(evl_task_lookup(st, "t1x", &info), 0);
		assert_int_equal(info.events, 3 - how);
		n = tu_read_task(st, "t1x", buf, sizeof(buf));
		assert_true(n >= (ssize_t)strlen(ev));
		if (how == 0)
			assert_memory_equal(buf + n - strlen(ev), ev, strlen(ev));
		assert_int_equal(evl_store_close(st), 0);
		assert_int_equal(tu_fsck(dir, false, &r), 0);
		assert_int_equal(r.problems, 0);
		tu_rmrf(dir);
		mkdir(dir, 0700);
	}
}

/*
 * A task directory removed by hand (rm -rf, the store unmounted) while
 * the journal holds an append to it not yet applied, and no directory the
 * index does not know: nothing can be its.  The open counts the event
 * lost, named, and opens, as a live mount does (were it refused, only a
 * reindex would open the store, and lose the event all the same).
 */
static void a_removed_task_directory_costs_only_its_events(void **state)
{
	static const char ev[] = "{\"type\":\"note\",\"i\":70}\n";
	const char *dir = *state;
	struct evl_task_info info;
	struct evl_stats s;
	struct evl_store *st = tu_open_default(dir);
	char path[4400];

	tu_fill(st, 0, 8);
	assert_int_equal(evl_store_close(st), 0);
	tu_journal_to(dir, "t1", ev);
	snprintf(path, sizeof(path), "%s/tasks/t1", dir);
	tu_rmrf(path);
	/* no candidate: an empty directory, one without a task's files, not a task's name */
	snprintf(path, sizeof(path), "%s/tasks/lost+found", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/tasks/junk", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/tasks/junk/notes.txt", dir);
	close(open(path, O_CREAT | O_WRONLY, 0644));
	st = tu_open_default(dir);
	evl_store_stats(st, &s);
	assert_int_equal(s.events_lost, 1);
	assert_int_equal(s.tasks_aside, 1);
	assert_int_equal(evl_task_lookup(st, "t0", &info), 0);
	assert_int_equal(info.events, 2);
	assert_int_equal(evl_store_close(st), -EIO);	/* acknowledged events were lost */
}

/*
 * A batch whose log bytes a kill -9 left without their sidecar records
 * (the journal still holds it), and no usable index: reindex kept the
 * tail in events.unapplied and the journal's replay wrote the same events
 * to the log again, so they were served and also kept aside, a copy a
 * user might append again (sweep seed 99807 case 3124).  The tail that is
 * the journal's next events is left to the replay now.  A line after
 * them that the journal does not hold is still kept aside.
 */
static void a_tail_the_journal_holds_is_not_kept_aside_twice(void **state)
{
	static const char ev[] = "{\"type\":\"note\",\"i\":77}\n";
	static const char stray[] = "{\"type\":\"note\",\"i\":78}\n";
	const char *dir = *state;
	struct evl_check_opts co = { .report = tu_collect };
	struct evl_check_result r;
	struct evl_task_info info;
	struct evl_store *st = tu_open_default(dir);
	char path[4200], buf[4096], *log, *aside;
	size_t len, alen;
	FILE *f;

	tu_fill(st, 0, 24);
	assert_int_equal(evl_store_close(st), 0);
	log = tu_slurp(dir, "tasks/t1/events", &len);
	tu_journal_to(dir, "t1", ev);	/* journaled, not applied: a kill -9 */
	snprintf(path, sizeof(path), "%s/tasks/t1/events", dir);
	f = fopen(path, "a");	/* the applier's log write, its sidecar record lost */
	assert_non_null(f);
	fputs(ev, f);
	fputs(stray, f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/index", dir);
	tu_rmrf(path);
	tu_nlines = 0;
	assert_int_equal(evl_reindex(dir, &co, &r), 0);
	for (int i = 0; i < tu_nlines; i++)
		print_message("%s\n", tu_lines[i]);
	assert_int_equal(r.lost, 0);
	assert_true(tu_reported("the journal's next events of it"));
	aside = tu_slurp(dir, "tasks/t1/events.unapplied", &alen);
	assert_int_equal(alen, strlen(stray));
	assert_memory_equal(aside, stray, alen);
	st = tu_open_default(dir);
	assert_int_equal(evl_task_lookup(st, "t1", &info), 0);
	assert_int_equal(tu_read_task(st, "t1", buf, sizeof(buf)), (ssize_t)(len + strlen(ev)));
	assert_memory_equal(buf, log, len);
	assert_memory_equal(buf + len, ev, strlen(ev));
	assert_int_equal(evl_store_close(st), 0);
	assert_int_equal(tu_fsck(dir, false, &r), 0);
	assert_int_equal(r.problems, 0);
	free(log);
	free(aside);
}

/*
 * The same tail, but the event does not validate under the type field
 * reindex is run with (here "kind": the store's is "type"): the replay
 * will not write it ("not valid: not placed"), so the tail is kept aside
 * as before, not left to a replay that drops it (then in neither place).
 */
static void a_tail_the_replay_refuses_is_kept_aside(void **state)
{
	static const char ev[] = "{\"type\":\"note\",\"i\":77}\n";
	const char *dir = *state;
	struct evl_check_opts co = { .report = tu_collect, .type_field = "kind" };
	struct evl_check_result r;
	struct evl_store *st = tu_open_default(dir);
	char path[4200], *aside;
	size_t alen;
	FILE *f;

	assert_int_equal(evl_task_create(st, "t1"), 0);
	assert_int_equal(evl_store_close(st), 0);
	tu_journal_to(dir, "t1", ev);	/* journaled, not applied: a kill -9 */
	snprintf(path, sizeof(path), "%s/tasks/t1/events", dir);
	f = fopen(path, "a");	/* the applier's log write, its sidecar record lost */
	assert_non_null(f);
	fputs(ev, f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/index", dir);
	tu_rmrf(path);
	tu_nlines = 0;
	assert_int_equal(evl_reindex(dir, &co, &r), 0);
	for (int i = 0; i < tu_nlines; i++)
		print_message("%s\n", tu_lines[i]);
	assert_false(tu_reported("the journal's next events of it"));
	aside = tu_slurp(dir, "tasks/t1/events.unapplied", &alen);
	assert_non_null(aside);
	assert_int_equal(alen, strlen(ev));
	assert_memory_equal(aside, ev, alen);
	free(aside);
}

/*
 * Who created a task and its mode live in the index's task record; a
 * reindex without a usable index (removed, or damage the walk finds) gave
 * every task to the mounting user, 0755: a private task became readable
 * and writable by others.  The task directory carries them in an
 * attribute now (as it does its uid), and reindex takes them from there:
 * for a task with files (how 0; and in a backup's copy) and for one only
 * the journal made (how 1, its create record carries them).
 */
static void reindex_keeps_owners_without_an_index(void **state)
{
	const char *dir = *state;

	for (int how = 0; how < 2; how++) {
		struct evl_owner own = { .uid = 1234, .gid = 5678, .mode = 0710 };
		struct evl_check_opts co = { .report = tu_collect };
		struct evl_check_result r;
		struct evl_task_info info;
		struct evl_store *st = tu_open_default(dir);
		char path[4200];
		int status;
		pid_t pid;

		tu_fill(st, 0, 8);
		if (how == 0)
			assert_int_equal(evl_task_create_as(st, "priv", &own), 0);
		assert_int_equal(evl_store_close(st), 0);
		if (how == 1) {
			pid = fork();
			assert_true(pid >= 0);
			if (pid == 0) {
				struct evl_options o;

				evl_options_default(&o);
				o.commit_sync = true;
				o.hold_apply = true;	/* a kill -9 before the applier made it */
				if (evl_store_open(dir, &o, &st) || evl_task_create_as(st, "priv", &own))
					_exit(2);
				_exit(0);
			}
			assert_int_equal(waitpid(pid, &status, 0), pid);
			assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		}
		if (how == 0) {
			/* a backup's copy carries them too */
			struct evl_backup_opts bo = { .report = tu_collect };
			struct evl_backup_result br;
			char copy[4100];

			snprintf(copy, sizeof(copy), "%s.copy", dir);
			assert_int_equal(evl_backup(dir, copy, &bo, &br), 0);
			snprintf(path, sizeof(path), "%s/index", copy);
			tu_rmrf(path);
			assert_int_equal(evl_reindex(copy, &co, &r), 0);
			st = tu_open_default(copy);
			assert_int_equal(evl_task_lookup(st, "priv", &info), 0);
			assert_true(info.has_owner);
			assert_int_equal(info.owner_uid, 1234);
			assert_int_equal(info.mode, 0710);
			assert_int_equal(evl_store_close(st), 0);
			tu_rmrf(copy);
		}
		snprintf(path, sizeof(path), "%s/index", dir);
		tu_rmrf(path);
		tu_nlines = 0;
		assert_int_equal(evl_reindex(dir, &co, &r), 0);
		for (int i = 0; i < tu_nlines; i++)
			print_message("%s\n", tu_lines[i]);
		st = tu_open_default(dir);
		assert_int_equal(evl_task_lookup(st, "priv", &info), 0);
		assert_true(info.has_owner);
		assert_int_equal(info.owner_uid, 1234);
		assert_int_equal(info.owner_gid, 5678);
		assert_int_equal(info.mode, 0710);
		assert_int_equal(evl_task_lookup(st, "t1", &info), 0);
		assert_false(info.has_owner);
		assert_int_equal(evl_store_close(st), 0);
		assert_int_equal(tu_fsck(dir, false, &r), 0);
		assert_int_equal(r.problems, 0);
		tu_rmrf(dir);
		mkdir(dir, 0700);
	}
}

/*
 * The owner attribute never says more than the index: a task the index
 * has without an owner keeps none through a reindex that can read the
 * index, whatever its directory carries (an attribute set by hand here);
 * and a backup's copy whose task directory an older task of the name
 * left (with that task's owner) loses the attribute when the new task,
 * without an owner, is copied over it.
 */
static void the_owner_attribute_never_overrides_the_index(void **state)
{
	const char *dir = *state;
	struct evl_owner own = { .uid = 1234, .gid = 5678, .mode = 0700 };
	struct evl_check_opts co = { .report = tu_collect };
	struct evl_backup_opts bo = { .report = tu_collect };
	struct evl_backup_result br;
	struct evl_check_result r;
	struct evl_task_info info;
	struct evl_store *st = tu_open_default(dir);
	unsigned char attr[12] = { 0xd2, 0x04, 0, 0, 0x2e, 0x16, 0, 0, 0xc0, 0x01, 0, 0 };
	char path[4200], copy[4100];

	tu_fill(st, 0, 8);
	assert_int_equal(evl_task_create(st, "open"), 0);
	assert_int_equal(evl_task_create_as(st, "priv", &own), 0);
	assert_int_equal(evl_store_close(st), 0);
	snprintf(path, sizeof(path), "%s/tasks/open", dir);
	if (setxattr(path, TASKLOG_OWNER_XATTR, attr, sizeof(attr), 0))
		skip();	/* no user attributes here */
	assert_int_equal(evl_reindex(dir, &co, &r), 0);
	st = tu_open_default(dir);
	assert_int_equal(evl_task_lookup(st, "open", &info), 0);
	assert_false(info.has_owner);

	snprintf(copy, sizeof(copy), "%s.copy", dir);
	assert_int_equal(evl_store_close(st), 0);
	assert_int_equal(evl_backup(dir, copy, &bo, &br), 0);
	st = tu_open_default(dir);
	assert_int_equal(evl_task_delete(st, "priv"), 0);
	assert_int_equal(evl_task_create(st, "priv"), 0);	/* no owner now */
	assert_int_equal(evl_store_close(st), 0);
	assert_int_equal(evl_backup(dir, copy, &bo, &br), 0);
	snprintf(path, sizeof(path), "%s/index", copy);
	tu_rmrf(path);
	assert_int_equal(evl_reindex(copy, &co, &r), 0);
	st = tu_open_default(copy);
	assert_int_equal(evl_task_lookup(st, "priv", &info), 0);
	assert_false(info.has_owner);
	assert_int_equal(evl_store_close(st), 0);
	tu_rmrf(copy);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(reindex_gives_the_same_views, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(reindex_makes_the_tasks_only_the_journal_created,
						tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(reindex_applies_the_journals_deletes, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(a_journaled_task_the_index_misnames_keeps_its_events,
						tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(a_tail_the_journal_holds_is_not_kept_aside_twice,
						tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(a_tail_the_replay_refuses_is_kept_aside, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(reindex_keeps_owners_without_an_index, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(the_owner_attribute_never_overrides_the_index,
						tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(a_removed_task_directory_costs_only_its_events,
						tu_setup, tu_teardown),
	};

	return tu_run_tests("reindex", tests, sizeof(tests) / sizeof(tests[0]));
}
