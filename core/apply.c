/*
 * apply.c - applying pending records: a batch of records in one index
 * transaction (creates, deletes, appends written to the task logs and
 * sidecars at the index's offsets), then dequeued; purging deleted tasks'
 * entries in bounded steps.  Runs on the applier thread (applier.c).
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "bytes.h"
#include "datadir.h"
#include "event.h"
#include "evlog.h"
#include "index.h"
#include "io.h"
#include "journal.h"
#include "linebuf.h"
#include "log.h"
#include "store.h"
#include "store_i.h"
#include "tasklog.h"

/*
 * Are @task's files there and at least as long as the index says (shorter
 * only: the applier may be past it)?  Else set it aside: -EIO.  A log as
 * long as that beside a sidecar cut short passes: the applier rebuilds the
 * sidecar's records before it writes (mend_short), or sets the task aside
 * then, keeping the events in events.unapplied.  A file removed while
 * mounted sets the task aside (item 6); a sidecar removed before the mount
 * is made anew by the recovery.
 */
static int task_check_files(struct evl_store *st, const struct index_task *task)
{
	uint64_t len = 0, n = 0;
	char why[160];
	int rc;

	rc = tasklog_sizes(st->tl, task->name, &len, &n);
	if (!rc && len >= task->log_len - task->base_len)
		return 0;	/* a sidecar cut short: mend_short's */
	if (rc && task_damage(rc)) {
		set_aside_err(st, task->uid, task->name, rc);
		return -EIO;
	}
	if (rc)
		return rc;
	if (len >= task->log_len - task->base_len && n >= task->nevents - task->base_n)
		return 0;
	snprintf(why, sizeof(why), "its files are shorter than indexed (%" PRIu64 " of %" PRIu64
		 " bytes, %" PRIu64 " of %" PRIu64 " records)", len, task->log_len - task->base_len,
		 n, task->nevents - task->base_n);
	set_aside(st, task->uid, task->name, why);
	return -EIO;
}

/* ---- applying ---- */

/*
 * Is there a task directory the index (@t) does not know that may be task
 * @uid's under another name (a damaged name in its task record): one
 * carrying @uid (tasklog_uid_of), or no uid at all?  Recovery only.
 */
static bool misnamed_dir(struct evl_store *st, struct index_txn *t, uint64_t uid)
{
	char path[DD_PATH_MAX];
	struct dirent *de;
	bool found = false;
	DIR *d;

	/* asked once per task for the whole recovery: a replay has many records of it */
	for (size_t i = 0; i < st->nmisnamed; i++)
		if (st->misnamed[i].uid == uid)
			return st->misnamed[i].found;
	d = dd_path(path, st->dir, DD_TASKS, NULL) ? NULL : opendir(path);
	if (!d)
		return true;	/* cannot tell: the journal keeps them */
	for (;;) {
		struct index_task task;
		struct stat sb;
		char file[DD_PATH_MAX];
		uint64_t u;

		errno = 0;
		de = readdir(d);
		if (!de) {
			found |= errno != 0;	/* cannot tell, as above */
			break;
		}
		/* a task directory as fsck and reindex see one: a task's name, its files */
		if (evl_task_check_name(de->d_name, strlen(de->d_name)) ||
		    fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) || !S_ISDIR(sb.st_mode))
			continue;
		if (dd_join(file, de->d_name, DD_EVENTS) ||
		    fstatat(dirfd(d), file, &sb, AT_SYMLINK_NOFOLLOW)) {
			if (dd_join(file, de->d_name, DD_META) ||
			    fstatat(dirfd(d), file, &sb, AT_SYMLINK_NOFOLLOW))
				continue;
		}
		if (index_task_by_name(t, de->d_name, strlen(de->d_name), &task) != -ENOENT)
			continue;
		u = tasklog_uid_of(st->dir, de->d_name);
		if (u == uid || u == 0) {
			found = true;
			break;
		}
	}
	closedir(d);
	if (!grow_bytes(&st->misnamed, &st->misnamed_cap,
			(st->nmisnamed + 1) * sizeof(*st->misnamed)))
		st->misnamed[st->nmisnamed++] = (struct misnamed){ uid, found };
	return found;
}

/*
 * An append to a task set aside: its events go to the task's
 * events.unapplied rather than over or past what its files hold, or, if even
 * that fails for good (its directory is gone), they are lost.  Either way
 * the other tasks' records do not wait behind them for ever, nor does the
 * journal's trim; counted at pend_dequeue and named in the log, never silently.
 * Not so at the open's recovery when a directory the index does not know
 * may be the task's (-EUCLEAN, nothing committed): the task record may be
 * a damaged index's, and reindex can still place the journal's events.
 * A directory removed by hand, with no such candidate, costs only its own
 * events, named, as on a live mount.
 * A full disk or an I/O error is retried like any failed write.  Once per
 * record: a batch redone finds it done.  (After a crash before the batch's
 * index commit the replay puts them there again: a line may be there twice.)
 */
static int put_aside(struct evl_store *st, struct index_txn *t, struct pend *p,
		     const char *name)
{
	int rc;

	if (p->fate != PEND_APPLIED)
		return 0;
	rc = tasklog_rescue(st->tl, name, p->data, p->data_len);
	if (rc && !task_damage(rc)) {
		if (rc != st->apply_err)
			evl_log(LOG_ERR, "task %s: cannot keep %" PRIu32 " events in "
				"events.unapplied: %s; retrying", name, p->n, strerror(-rc));
		return rc;
	}
	if (rc && st->recovering && misnamed_dir(st, t, p->uid)) {
		/*
		 * Not at the open when a directory the index does not know may
		 * be the task's: its task record may be what is wrong (a damaged
		 * name), and reindex, which finds a record's task by the uid its
		 * directory carries, writes them.  The journal keeps them.
		 */
		evl_log(LOG_ERR, "recovery: task %s: %" PRIu32 " journaled events (gseq %" PRIu64
			"-%" PRIu64 ", journal record %" PRIu64 ") cannot be written to its files nor"
			" to events.unapplied (%s): nothing is applied, the journal keeps them; run "
			"evlogctl reindex %s, which writes them to the task whose directory is theirs,"
			" or names them lost", name, p->n, p->gseq, p->gseq + p->n - 1, p->lsn,
			strerror(-rc), st->dir);
		return -EUCLEAN;
	}
	if (rc) {
		evl_log(LOG_ERR, "task %s: %" PRIu32 " acknowledged events lost (gseq %" PRIu64
			"-%" PRIu64 ", journal record %" PRIu64 "): the task is set aside and "
			"events.unapplied cannot be written (%s)", name, p->n, p->gseq,
			p->gseq + p->n - 1, p->lsn, strerror(-rc));
		p->fate = PEND_LOST;
	} else {
		evl_log(LOG_ERR, "task %s: %" PRIu32 " events (gseq %" PRIu64 "-%" PRIu64 ") put "
			"in tasks/%s/events.unapplied, not in its log: the task is set aside",
			name, p->n, p->gseq, p->gseq + p->n - 1, name);
		p->fate = PEND_UNAPPLIED;
	}
	return 0;
}



/*
 * Is @p's task deleted by a record up to @last, the end of the batch @p is
 * in, or by a durable delete applied ahead of it (gone: set by this thread,
 * the applier)?  Either way the commit that skips @p cannot outlive the
 * delete.
 */
static bool dead_in(const struct pend *p, uint64_t last)
{
	uint64_t lsn = atomic_load_explicit(&p->dead, memory_order_relaxed);

	return p->gone || (lsn && lsn <= last);
}

static int apply_create(struct evl_store *st, struct index_txn *t, struct index_meta *m,
			const struct pend *p, uint64_t last)
{
	struct index_task task = { 0 };
	char name[256];
	int rc;

	if (m->next_uid <= p->uid)
		m->next_uid = p->uid + 1;
	memcpy(name, p->name, p->name_len);
	name[p->name_len] = '\0';
	if (dead_in(p, last)) {
		/*
		 * Its delete follows in this batch, or was applied ahead of it:
		 * not made.  What a failed try (or one a crash cut short) left of
		 * its directory goes to the trash, which its delete empties.  The name was free when the create was
		 * journaled, so nobody else's directory has it.
		 */
		rc = tasklog_remove(st->tl, p->uid, name);
		if (rc)
			evl_log(LOG_ERR, "cannot remove what is left of task %s: %s", name,
				strerror(-rc));
		return rc;
	}
	rc = index_task_by_uid(t, p->uid, &task);
	if (rc == 0)
		return 0;	/* applied before a crash: nothing to do */
	if (rc != -ENOENT)
		return rc;
	rc = index_task_by_name(t, name, p->name_len, &task);
	if (rc == 0) {
		/* creates are journaled only for free names: this record was not */
		evl_log(LOG_ERR, "journal record %" PRIu64 ": creates task %s as uid %" PRIu64
			", which is live as uid %" PRIu64 "; run evlogctl reindex",
			p->lsn, name, p->uid, task.uid);
		return -EIO;
	}
	if (rc != -ENOENT)
		return rc;
	memset(&task, 0, sizeof(task));
	rc = tasklog_create(st->tl, p->uid, name, p->has_owner ? &(struct tasklog_owner){
				    p->owner_uid, p->owner_gid, p->mode } : NULL);
	if (rc && task_damage(rc)) {
		/*
		 * Something in the way (a file of that name in tasks/): the task
		 * is made in the index, set aside, so that its name stays taken
		 * and the rest goes on.
		 */
		set_aside_err(st, p->uid, name, rc);
		rc = 0;
	}
	if (rc) {
		/* retried every 100 ms: said when the failure is new */
		if (rc != st->apply_err)
			evl_log(LOG_ERR, "cannot create task %s: %s", name, strerror(-rc));
		return rc;
	}
	task.uid = p->uid;
	task.state = TASK_LIVE;
	task.created_ns = task.last_ns = p->time_ns;
	task.has_owner = p->has_owner;
	task.owner_uid = p->owner_uid;
	task.owner_gid = p->owner_gid;
	task.mode = p->mode;
	task.name_len = p->name_len;
	memcpy(task.name, name, p->name_len + 1);
	rc = index_task_put(t, &task);
	if (rc)
		return rc;
	m->tasks++;
	return 0;
}

int apply_delete(struct evl_store *st, struct index_txn *t, struct index_meta *m,
			const struct pend *p)
{
	struct index_task task;
	int rc;

	rc = index_task_by_uid(t, p->uid, &task);
	if (rc == -ENOENT || (!rc && task.state != TASK_LIVE))
		return 0;
	if (rc)
		return rc;
	rc = tasklog_remove(st->tl, p->uid, task.name);
	if (rc) {
		evl_log(LOG_ERR, "cannot remove task %s: %s", task.name, strerror(-rc));
		return rc;
	}
	rc = index_task_delete(t, p->uid);
	if (rc)
		return rc;
	aside_forget(st, p->uid);	/* (a batch redone finds it gone: harmless) */
	m->tasks--;
	m->events -= task.nevents - task.base_n;
	m->log_bytes -= task.log_len - task.base_len;
	return 0;
}

static int apply_append(struct evl_store *st, struct index_txn *t, struct index_meta *m,
			struct pend *p, uint64_t last)
{
	struct tasklog_rec stackrecs[32], *recs = stackrecs;
	struct index_task task;
	int rc;

	if (m->next_gseq < p->gseq + p->n)
		m->next_gseq = p->gseq + p->n;
	if (dead_in(p, last))
		return 0;	/* its task's delete follows in this batch */
	rc = index_task_by_uid(t, p->uid, &task);
	if (rc == -ENOENT || (!rc && task.state != TASK_LIVE))
		return 0;	/* written to a task deleted meanwhile */
	if (rc)
		return rc;
	/*
	 * A log rewrite switched in the index but not renamed on disk: the
	 * task's files are still the old ones, which the index's offsets no
	 * longer describe (nor does tasklog_write's check: it would set the
	 * task aside).  The batch waits for the renames (the applier finishes
	 * them before it retries; only the applier changes broken[]).
	 */
	if (switch_broken(st, p->uid))
		return -EBUSY;
	if (is_aside(st, p->uid))
		return put_aside(st, t, p, task.name);
	if (!index_dirty_has(t, p->uid)) {
		/*
		 * The replay's first write to a task clean at the last
		 * checkpoint (dirty_cb looked at the others): another task's
		 * sidecar copied over its own would take these records after
		 * its own (tasklog_write checks only those past the index).
		 */
		if (st->recovering && (rc = mend_short(st, t, &task, p)) < 0) {
			if (!task_damage(rc))
				return rc;
			/* not written after another task's records: kept beside them */
			set_aside_err(st, p->uid, task.name, rc);
			return put_aside(st, t, p, task.name);
		}
		rc = index_dirty_add(t, p->uid, task.log_len, task.nevents);
		if (rc)
			return rc;
	}
	if (p->n > 32) {
		recs = malloc(p->n * sizeof(*recs));
		if (!recs)
			return -ENOMEM;
	}
	for (int tries = 0;; tries++) {
		int mended;

		for (uint32_t i = 0; i < p->n; i++)
			recs[i] = (struct tasklog_rec){ p->gseq + i, p->time_ns, p->ev[i].len, 0 };
		rc = tasklog_write(st->tl, p->uid, task.name, task.log_len - task.base_len, p->data,
				   p->data_len, task.nevents - task.base_n, recs, p->n,
				   st->replay_after_loss ? TASKLOG_AFTER_LOSS : 0);
		/* a sidecar shorter than the index (or removed) while the log is not: mended */
		if ((rc != -EUCLEAN && rc != -ENOENT) || tries)
			break;
		mended = mend_short(st, t, &task, p);
		if (mended < 0 && !task_damage(mended))
			rc = mended;	/* a full disk, say: retried like a failed write */
		if (mended <= 0)
			break;
	}
	if (recs != stackrecs)
		free(recs);
	if (rc == -EUCLEAN) {
		/* not written over or past what the files hold: kept beside them */
		uint64_t len = 0, n = 0;
		char why[160];

		tasklog_sizes(st->tl, task.name, &len, &n);
		snprintf(why, sizeof(why), "its files do not end where the index says (%" PRIu64
			 " bytes, %" PRIu64 " records; indexed: %" PRIu64 ", %" PRIu64 ")", len, n,
			 task.log_len - task.base_len, task.nevents - task.base_n);
		set_aside(st, p->uid, task.name, why);
		return put_aside(st, t, p, task.name);
	}
	if (rc && task_damage(rc)) {
		set_aside_err(st, p->uid, task.name, rc);
		return put_aside(st, t, p, task.name);
	}
	if (rc) {
		/* retried every 100 ms: said when the failure is new */
		if (rc != st->apply_err)
			evl_log(LOG_ERR, "cannot write task %s: %s", task.name, strerror(-rc));
		return rc;
	}
	for (uint32_t i = 0; i < p->n && !rc; i++)
		rc = index_add_event(t, p->uid, p->gseq + i, ev_type(p, &p->ev[i]), p->ev[i].tlen,
				     task.log_len + p->ev[i].off, p->ev[i].len);
	if (rc)
		return rc;
	task.log_len += p->data_len;
	task.nevents += p->n;
	task.last_ns = p->time_ns;
	rc = index_task_put(t, &task);
	if (rc)
		return rc;
	m->events += p->n;
	m->log_bytes += p->data_len;
	return 0;
}

struct batch {
	struct evl_store *st;
	struct pend *first, *last;
	bool purge;		/* a delete was applied */
};

static int apply_batch_txn(struct index_txn *t, void *arg)
{
	struct batch *b = arg;
	struct index_meta m;
	int rc;

	rc = index_get_meta(t, &m);
	for (struct pend *p = b->first; !rc; p = p->next) {
		switch (p->kind) {
		case REC_CREATE:
			rc = apply_create(b->st, t, &m, p, b->last->lsn);
			break;
		case REC_DELETE:
			rc = apply_delete(b->st, t, &m, p);
			b->purge = true;
			break;
		default:
			rc = apply_append(b->st, t, &m, p, b->last->lsn);
		}
		if (p == b->last)
			break;
	}
	if (!rc) {
		m.applied_lsn = b->last->lsn;
		rc = index_put_meta(t, &m);
	}
	return rc;
}

/*
 * Apply records @first .. @last (inclusive) in one index transaction (a
 * full map is grown and the batch redone: log writes repeat the same
 * bytes).  0 or -errno.
 */
int apply_batch(struct evl_store *st, struct pend *first, struct pend *last,
		       bool *purge)
{
	struct batch b = { st, first, last, false };
	int rc = store_write_txn(st, apply_batch_txn, &b);

	*purge |= b.purge;
	/*
	 * The index is as it was, but a delete in the batch may have moved its
	 * task to the trash already: put it back, or the retry could not
	 * write the task's appends before the delete (recovery does the same).
	 */
	if (rc && b.purge)
		tasklog_trash_list(st->tl, apply_undo_delete, st);
	/*
	 * Committed: the deleted tasks' files are nobody's now.  Removing them
	 * at once, not after their index entries are purged, is what frees a
	 * full disk (the purge needs room in the index).  The purge retries
	 * what fails here.  The commit is synced first: a power loss could
	 * undo an unsynced one (MDB_NOMETASYNC) and bring back a live task
	 * whose files are gone.
	 */
	if (!rc && b.purge && index_sync(st->ix))
		b.purge = false;	/* the purge step removes them later */
	for (struct pend *p = first; !rc && b.purge; p = p->next) {
		if (p->kind == REC_DELETE)
			tasklog_purge(st->tl, p->uid);
		if (p == last)
			break;
	}
	return rc;
}

/* Apply the whole pending list now (open, close): no applier is running. */
int apply_all(struct evl_store *st)
{
	bool purge = false;
	int rc;

	if (!st->head)
		return 0;
	tmem_committing(st, st->head, st->tail, +1);
	rc = apply_batch(st, st->head, st->tail, &purge);
	if (rc) {
		tmem_committing(st, st->head, st->tail, -1);
		return rc;
	}
	pend_dequeue(st, st->tail);
	st->purge_more |= purge;
	return 0;
}

struct purge {
	uint64_t done;		/* the task whose entries are all gone, or 0 */
	bool more;
};

static int purge_txn(struct index_txn *t, void *arg)
{
	struct purge *p = arg;

	return index_purge_step(t, PURGE_BUDGET, &p->done, &p->more);
}

int purge_step(struct evl_store *st, bool *more)
{
	struct purge p = { 0, false };
	int rc = store_write_txn(st, purge_txn, &p);

	*more = p.more;
	if (!rc && p.done) {
		pthread_mutex_lock(&st->lock);
		st->purged++;
		pthread_mutex_unlock(&st->lock);
		rc = tasklog_purge(st->tl, p.done);
	}
	return rc;
}

/*
 * A trash directory of a task the index still has live: the batch that
 * applied its delete (rename first, index commit after) was lost in a
 * crash.  Put the directory back; the journal replays the delete.  The
 * trash of a task whose delete is committed is nobody's: removed (a purge
 * a crash cut short, or unlinks a power loss undid).
 */
int apply_undo_delete(void *arg, uint64_t uid)
{
	struct evl_store *st = arg;
	struct index_task task;
	int rc;

	rc = store_live_task(st, uid, &task);
	if (rc == -ENOENT && tasklog_purge(st->tl, uid))
		evl_log(LOG_WARNING, "cannot remove the files of deleted task %016" PRIx64
			": they stay in the trash until the next open", uid);
	if (rc)
		return rc == -ENOENT ? 0 : rc;
	evl_log(LOG_INFO, "task %s: its delete was not committed; it is redone", task.name);
	return tasklog_unremove(st->tl, uid, task.name);
}

/*
 * May task @uid be written?  Its files must be there and at least as long
 * as the index says (task_check_files).  A reopen finds the damage that set a
 * task aside here again, at the task's first write, rather than acknowledge
 * appends its files cannot take.  0, -EIO (set aside) or -errno.
 */
int task_writable(struct evl_store *st, uint64_t uid)
{
	struct index_task task;
	struct index_txn *t;
	int rc;

	if (is_aside(st, uid))
		return -EIO;
	/* a snapshot that has the task live sees its files in place (I6) */
	pthread_rwlock_rdlock(&st->swap_lock);
	rc = index_begin(st->ix, false, &t);
	if (!rc) {
		rc = index_task_by_uid(t, uid, &task);
		index_abort(t);
		if (rc == -ENOENT)
			rc = 0;		/* its create is pending: no files yet */
		/* a rewrite's renames pending: the files are not the index's yet */
		else if (!rc && task.state == TASK_LIVE && !switch_broken(st, uid))
			rc = task_check_files(st, &task);
	}
	pthread_rwlock_unlock(&st->swap_lock);
	return rc;
}
