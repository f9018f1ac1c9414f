/*
 * txn.c - how the store's parts reach the index and the applier.  Every
 * index write runs on the applier thread (store_write_txn there; from any
 * other thread, ask_applier posts a job and waits for it); a writer that
 * must see its record applied waits with store_wait_applied; a part that
 * needs one task's record alone reads it in a transaction of its own
 * (store_live_task).
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

/* Run @fn in one write transaction, growing the map and redoing it when full. */
int store_write_txn(struct evl_store *st, int (*fn)(struct index_txn *t, void *arg), void *arg)
{
	for (;;) {
		struct index_txn *t;
		int rc;

		rc = index_begin(st->ix, true, &t);
		if (rc)
			return rc;
		rc = fn(t, arg);
		if (!rc)
			rc = index_commit(t);
		else
			index_abort(t);
		if (rc != -EAGAIN)
			return rc;
		rc = index_grow(st->ix);
		if (rc)
			return rc;
	}
}

/* Ask the applier for @job and wait until a run that started after now ends. */
int ask_applier(struct evl_store *st, struct applier_job *job)
{
	unsigned req;
	int rc;

	pthread_mutex_lock(&st->lock);
	req = ++job->req;
	pthread_cond_signal(&st->applier_cv);
	while ((int)(job->done - req) < 0)
		pthread_cond_wait(&st->applied_cv, &st->lock);
	rc = job->rc;
	pthread_mutex_unlock(&st->lock);
	return rc;
}

int store_live_task(struct evl_store *st, uint64_t uid, struct index_task *task)
{
	struct index_txn *t;
	int rc = index_begin(st->ix, false, &t);

	if (rc)
		return rc;
	rc = index_task_by_uid(t, uid, task);
	index_abort(t);
	return !rc && task->state != TASK_LIVE ? -ENOENT : rc;
}

/*
 * Wait until the applier has applied everything up to @lsn (appends held
 * by hold_apply too), or, for delete @p, until it applied @p ahead of the
 * rest.  With @give_up, return the applier's error once a batch failed
 * after the wait began (a full disk) instead of waiting for the cause to
 * go.  0, -EIO from the journal, or that error.
 */
int store_wait_applied(struct evl_store *st, uint64_t lsn, const struct pend *p, bool give_up)
{
	uint64_t failures;
	int rc;

	rc = journal_wait(st->jn, lsn);
	if (rc)
		return rc;
	pthread_mutex_lock(&st->lock);
	if (st->want_lsn < lsn)
		st->want_lsn = lsn;
	failures = st->apply_failures;
	pthread_cond_signal(&st->applier_cv);
	/* p is on the list while it is not applied: only the applier frees it, under the lock */
	while (st->applied_lsn < lsn && !(p && p->early)) {
		if (give_up && st->apply_failures != failures && st->apply_err) {
			rc = st->apply_err;
			break;
		}
		pthread_cond_wait(&st->applied_cv, &st->lock);
	}
	pthread_mutex_unlock(&st->lock);
	return rc;
}

/* The journal's stats; none on read-only media. */
void store_journal_stats(struct evl_store *st, struct journal_stats *js)
{
	if (st->jn)
		journal_get_stats(st->jn, js);
	else
		memset(js, 0, sizeof(*js));
}

/* The applied_lsn of snapshot @t (0 if its meta cannot be read). */
static uint64_t txn_applied(struct index_txn *t)
{
	struct index_meta m;

	return index_get_meta(t, &m) ? 0 : m.applied_lsn;
}

int snap_begin(struct evl_store *st, struct snap *s)
{
	int rc;

	pthread_mutex_lock(&st->lock);
	rc = index_begin(st->ix, false, &s->t);
	if (rc) {
		pthread_mutex_unlock(&st->lock);
		return rc;
	}
	s->st = st;
	s->applied = txn_applied(s->t);
	s->locked = true;
	return 0;
}

void snap_release(struct snap *s)
{
	if (s->locked)
		pthread_mutex_unlock(&s->st->lock);
	s->locked = false;
}

void snap_end(struct snap *s)
{
	snap_release(s);
	index_abort(s->t);
}
