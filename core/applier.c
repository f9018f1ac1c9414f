/*
 * applier.c - the applier thread: takes durable records off the pending
 * list in batches (apply.c), checkpoints, serves the jobs other threads ask
 * of it (checkpoint, shrink, any call for retention), applies deletes early
 * when a batch cannot be applied.
 *
 * CHECKPOINT (applier thread): with nothing durable left unapplied, fsync
 * the logs and sidecars of dirty tasks, sync the index, record ckpt_lsn =
 * applied_lsn and clear the dirty set, sync again, trim the journal.
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

struct sync_ctx {
	struct evl_store *st;
	struct index_txn *t;
	int rc;
};

static int sync_dirty_cb(void *arg, uint64_t uid, uint64_t log_len, uint64_t nevents,
			 uint64_t gseq_from)
{
	struct sync_ctx *c = arg;
	struct index_task task;
	int rc;

	if (index_task_by_uid(c->t, uid, &task) || task.state != TASK_LIVE)
		return 0;
	/*
	 * A task set aside too: what it got before the damage was found is in
	 * its files, and this checkpoint trims the journal that holds it.
	 */
	rc = tasklog_sync(c->st->tl, uid, task.name);
	if (rc && task_damage(rc)) {
		set_aside_err(c->st, uid, task.name, rc);
		return 0;
	}
	if (rc) {
		evl_log(LOG_ERR, "checkpoint: cannot sync task %s: %s", task.name, strerror(-rc));
		return rc;
	}
	return 0;
}

struct ckpt_ctx {
	struct evl_store *st;
	struct index_meta m;	/* the meta written */
	uint64_t gen;		/* the index's generation after it */
};

/*
 * Record ckpt_lsn = applied_lsn and clear the dirty set.  I7: the index
 * moves one generation ahead of DATA_DIR/stamp, which follows once the
 * index is synced; never two ahead (a stamp write that failed is redone
 * first), so an index copied before this checkpoint is older than the
 * stamp after it.
 */
static int ckpt_txn(struct index_txn *t, void *arg)
{
	struct ckpt_ctx *c = arg;
	int rc = index_get_meta(t, &c->m);

	if (!rc) {
		c->m.ckpt_lsn = c->m.applied_lsn;
		rc = index_put_meta(t, &c->m);
	}
	c->gen = c->st->stamp_gen;
	if (!rc && c->st->stamp_file_gen == c->gen && !c->st->opt.read_only)
		rc = index_put_stamp(t, c->st->stamp_id, ++c->gen);
	return rc ? rc : index_dirty_clear(t);
}

int applier_boot_txn(struct index_txn *t, void *arg)
{
	return index_put_boot(t, arg);
}

/*
 * I5: an fsync of a task file, a task directory or the index failed
 * (tasklog and index hooks: any thread, any locks held).  Writes are
 * refused from now on (the journal's sticky error), and no checkpoint
 * completes again.
 */
void store_sync_failed(void *arg)
{
	struct evl_store *st = arg;

	if (atomic_exchange(&st->sync_failed, true))
		return;
	evl_log(LOG_CRIT, "an fsync failed: the kernel may have dropped data; refusing writes "
		"until remounted (recovery restores every durable event from the journal)");
	if (st->jn)
		journal_fail(st->jn);
}

/*
 * After store_sync_failed, on the applier or at close (no transaction open):
 * tell the next open not to trust the task files past their checkpoints
 * (I6), once.  0, or -EIO if an fsync failed.
 */
int check_syncs(struct evl_store *st)
{
	int rc;

	if (!atomic_load(&st->sync_failed))
		return 0;
	if (atomic_exchange(&st->sync_recorded, true))
		return -EIO;
	rc = store_write_txn(st, applier_boot_txn, "");
	if (!rc && !index_sync_failed(st->ix))
		rc = index_sync(st->ix);
	if (rc)
		evl_log(LOG_CRIT, "cannot record the failed fsync in the index (%s): after "
			"remounting, run evlogctl fsck", strerror(-rc));
	return -EIO;
}

/* The applier's checkpoint: everything durable is applied when called. */
int applier_checkpoint(struct evl_store *st, void *unused)
{
	struct sync_ctx c = { st, NULL, 0 };
	struct ckpt_ctx ck = { .st = st };
	int rc;

	/* I5: after a failed fsync nothing may vouch for the files */
	rc = check_syncs(st);
	if (!rc)
		rc = index_begin(st->ix, false, &c.t);
	if (rc)
		return rc;
	rc = index_dirty_list(c.t, sync_dirty_cb, &c);
	index_abort(c.t);
	if (!rc)
		rc = index_sync(st->ix);
	if (!rc)
		rc = store_write_txn(st, ckpt_txn, &ck);
	if (!rc)
		st->stamp_gen = ck.gen;
	if (!rc)
		rc = index_sync(st->ix);
	if (check_syncs(st))
		rc = -EIO;	/* the journal stays: the next open rewrites from it */
	if (!rc)
		stamp_follow(st);
	if (!rc && !st->opt.read_only)
		rc = journal_trim(st->jn, ck.m.ckpt_lsn);
	if (rc)
		evl_log(LOG_ERR, "checkpoint failed: %s", strerror(-rc));
	pthread_mutex_lock(&st->lock);
	st->checkpoints++;
	pthread_mutex_unlock(&st->lock);
	/*
	 * A burst can fill the pending list up to max_pending; malloc keeps
	 * what it freed.  Give it back, so a quiet daemon is small again.
	 */
	malloc_trim(0);
	return rc;
}

/*
 * With st->lock held, on the applier: run @job if it was asked for.
 * Returns true if it ran (the lock was dropped meanwhile).
 */
static bool serve_job(struct evl_store *st, struct applier_job *job)
{
	unsigned req = job->req;
	int rc;

	if (req == job->done)
		return false;
	pthread_mutex_unlock(&st->lock);
	rc = job->run(st, job->arg);
	check_syncs(st);
	pthread_mutex_lock(&st->lock);
	job->rc = rc;
	job->done = req;
	pthread_cond_broadcast(&st->applied_cv);
	return true;
}

/* Shrink the index file, but only when most of a sizeable file is free. */
int applier_shrink(struct evl_store *st, void *unused)
{
	uint64_t used, file;
	int rc = index_usage(st->ix, &used, &file);

	if (!rc && file > (1u << 20) && used * 2 < file) {
		evl_log(LOG_INFO, "shrinking the index: %llu of %llu bytes in use",
			(unsigned long long)used, (unsigned long long)file);
		rc = index_shrink(st->ix);
	}
	return rc;
}

struct early {
	struct evl_store *st;
	struct pend *p;
};

static int early_delete_txn(struct index_txn *t, void *arg)
{
	struct early *e = arg;
	struct index_meta m;
	int rc = index_get_meta(t, &m);

	if (!rc)
		rc = apply_delete(e->st, t, &m, e->p);
	return rc ? rc : index_put_meta(t, &m);
}

/*
 * With st->lock held, on the applier, after a batch failed: apply the
 * durable deletes waiting behind it now, out of order, each in its own
 * transaction (which leaves applied_lsn alone).  A delete is what frees a
 * full disk, and a task's records before its delete are dead anyway: the
 * in-order application later finds the task deleted and does nothing.
 * Returns true if one was applied (the lock was dropped meanwhile).
 */
static bool apply_early_deletes(struct evl_store *st)
{
	bool any = false;

	for (struct pend *p = st->head; p && p->lsn <= st->durable_lsn; p = p->next) {
		struct early e = { st, p };
		int rc;

		if (p->kind != REC_DELETE || p->early)
			continue;
		/* only the applier dequeues: p stays while the lock is dropped */
		pthread_mutex_unlock(&st->lock);
		pthread_rwlock_wrlock(&st->swap_lock);
		rc = store_write_txn(st, early_delete_txn, &e);
		/* not committed: the task's directory comes back from the trash */
		if (rc)
			apply_undo_delete(st, p->uid);
		pthread_rwlock_unlock(&st->swap_lock);
		/*
		 * The commit must be durable before the files go: it may stay
		 * the index's last one for a while (nothing else commits while
		 * the applier is stuck), and a power loss could undo an unsynced
		 * one (MDB_NOMETASYNC), leaving a live task without files.
		 */
		if (!rc && !index_sync(st->ix))
			tasklog_purge(st->tl, p->uid);
		pthread_mutex_lock(&st->lock);
		if (rc) {
			/* tried again after the next failed batch; said once */
			if (!p->early_failed)
				evl_log(LOG_ERR, "cannot apply the delete of task uid %" PRIu64
					" ahead of the journal: %s", p->uid, strerror(-rc));
			p->early_failed = true;
			continue;
		}
		p->early = true;
		/* a task's records after its delete are refused (submit), but to be sure */
		for (struct pend *q = st->head; q; q = q->next)
			if (q->uid == p->uid && q->kind != REC_DELETE && !q->gone) {
				q->gone = true;
				if (q->kind == REC_CREATE)
					st->pending_tasks--;
				if (q->kind == REC_APPEND) {
					st->pending_events -= q->n;
					st->pending_data -= q->data_len;
				}
			}
		st->purge_more = true;
		st->view_gen++;
		any = true;
	}
	if (any)
		pthread_cond_broadcast(&st->applied_cv);
	return any;
}

/* Does the batch @first .. @last delete a task (not already deleted ahead)? */
static bool batch_deletes(const struct pend *first, const struct pend *last)
{
	for (const struct pend *p = first; p; p = p->next) {
		if (p->kind == REC_DELETE && !p->early)
			return true;
		if (p == last)
			break;
	}
	return false;
}

/*
 * The applier: the only writer of task logs and index.  Order of work:
 * checkpoint and shrink requests first (rare, and someone waits for them),
 * then batches of durable records, with one bounded purge step after each
 * so that deletions progress under continuous appends too.
 */
void *applier_main(void *arg)
{
	struct evl_store *st = arg;
	unsigned backoff_ms = 0;

	pthread_mutex_lock(&st->lock);
	for (;;) {
		bool work = st->head && st->head->lsn <= st->durable_lsn;
		/* with hold_apply, only what someone waits for */
		uint64_t upto = st->opt.hold_apply && !st->stop ? st->want_lsn : UINT64_MAX;
		uint64_t due = 0;

		if (serve_job(st, &st->ckpt) || serve_job(st, &st->shrink) ||
		    serve_job(st, &st->call))
			continue;

		if (work && st->head->lsn > upto)
			work = false;
		/*
		 * Unfinished rewrites first: a batch for their tasks cannot be
		 * applied before (apply_append), and would be retried for ever.
		 */
		if (work && st->switch_unfinished && !backoff_ms)
			work = false;
		/* let appends gather, unless someone waits for them */
		if (work && st->head->kind == REC_APPEND && !st->stop && st->head->lsn > st->want_lsn &&
		    st->pending_mem < APPLY_BYTES && st->pending_mem * 2 < st->opt.max_pending) {
			due = st->head->enq_ns + APPLY_DELAY_NS;
			for (struct pend *p = st->head; p && p->lsn <= st->durable_lsn; p = p->next)
				if (p->kind != REC_APPEND)
					due = 0;
			if (due && mono_ns() >= due)
				due = 0;
			if (due)
				work = false;
		}
		if (work && !backoff_ms) {
			struct pend *first = st->head, *last = first;
			size_t bytes = first->len, recs = 1;
			bool purge = false, deletes;
			int rc;

			while (last->next && last->next->lsn <= st->durable_lsn &&
			       last->next->lsn <= upto && bytes < BATCH_MAX_BYTES &&
			       recs < BATCH_MAX_RECS) {
				last = last->next;
				bytes += last->len;
				recs++;
			}
			tmem_committing(st, first, last, +1);
			deletes = batch_deletes(first, last);
			pthread_mutex_unlock(&st->lock);
			/*
			 * A delete moves the task's files away: readers of a
			 * snapshot that still has the task read them first.
			 */
			if (deletes)
				pthread_rwlock_wrlock(&st->swap_lock);
			rc = apply_batch(st, first, last, &purge);
			if (deletes)
				pthread_rwlock_unlock(&st->swap_lock);
			check_syncs(st);	/* e.g. a task's creation failed to sync */
			pthread_mutex_lock(&st->lock);
			if (rc) {
				tmem_committing(st, first, last, -1);
				if (rc != st->apply_err)
					evl_log(LOG_ERR, "applying the journal failed: %s; retrying",
						strerror(-rc));
				if (!st->apply_err)
					st->apply_failing_since = mono_ns();
				st->apply_err = rc;
				st->apply_failures++;
				pthread_cond_broadcast(&st->applied_cv);
				if (st->stop)
					break;	/* closing: the journal keeps the rest */
				if (apply_early_deletes(st))
					continue;	/* room again, maybe */
				backoff_ms = 100;
				continue;
			}
			if (st->apply_err)
				evl_log(LOG_NOTICE, "applying the journal works again");
			st->apply_err = 0;
			st->purge_more |= purge;
			pend_dequeue(st, last);
			pthread_cond_broadcast(&st->applied_cv);
			if (!st->purge_more)
				continue;
			/* else one purge step before the next batch */
		}
		if (backoff_ms) {
			/*
			 * Every append signals applier_cv: wait out the whole
			 * backoff (a retry per append would spin), unless closing
			 * or someone asks for a job.
			 */
			uint64_t at = mono_ns() + backoff_ms * 1000000ull;
			struct timespec ts = { at / 1000000000ull, at % 1000000000ull };

			while (!st->stop && st->ckpt.req == st->ckpt.done &&
			       st->shrink.req == st->shrink.done && st->call.req == st->call.done &&
			       mono_ns() < at)
				pthread_cond_timedwait(&st->applier_cv, &st->lock, &ts);
			backoff_ms = 0;
			continue;
		}
		if (st->switch_unfinished) {
			int rc;

			pthread_mutex_unlock(&st->lock);
			rc = finish_switches(st, NULL);
			pthread_mutex_lock(&st->lock);
			if (rc)
				backoff_ms = 1000;
			continue;
		}
		if (st->purge_more) {
			bool more = false;
			int rc;

			pthread_mutex_unlock(&st->lock);
			rc = purge_step(st, &more);
			pthread_mutex_lock(&st->lock);
			if (rc) {
				evl_log(LOG_ERR, "purging deleted tasks failed: %s; retrying",
					strerror(-rc));
				backoff_ms = 1000;
			}
			st->purge_more = more;
			continue;
		}
		if (st->stop)
			break;
		if (due) {
			struct timespec ts = { due / 1000000000ull, due % 1000000000ull };

			pthread_cond_timedwait(&st->applier_cv, &st->lock, &ts);
			continue;
		}
		pthread_cond_wait(&st->applier_cv, &st->lock);
	}
	pthread_mutex_unlock(&st->lock);
	return NULL;
}

void applier_on_durable(void *arg, uint64_t lsn)
{
	struct evl_store *st = arg;

	pthread_mutex_lock(&st->lock);
	if (lsn > st->durable_lsn)
		st->durable_lsn = lsn;
	pthread_cond_signal(&st->applier_cv);
	pthread_mutex_unlock(&st->lock);
}
