/*
 * retain.c - retention: dropping a task's head, step by step, crash-safely.
 * Compaction (compact.c) runs it, one task at a time (store_retain).
 *
 * DROPPING A TASK'S HEAD (retention).  Index offsets of a task are logical:
 * they count every byte ever appended.  The task record's base_len/base_n
 * say how much of the head is gone, so file offset = index offset - base.
 * Per task:
 *
 *   plan      read the sidecar from the head: the first event to keep
 *             (cut_gseq), and the bytes and events before it
 *   intent    [applier] one transaction: retention row {DROPPING, cut}
 *   steps     [applier] transactions of at most 4,096 entries: remove the
 *             dropped events from tgs/kty and their lengths from the types'
 *             Fenwick trees; the task+type base in kt grows by what left,
 *             so cumulative offsets of what stays are unchanged
 *   copy      the kept part of the log and sidecar to tasks/.rewrite/<uid>.*
 *             (this thread; the old files only grow meanwhile)
 *   switch    [applier] copy what was applied since, fdatasync the copies;
 *             one transaction: task base, live totals, dirty entry (the new
 *             files hold everything applied), retention row SWITCHED; commit and
 *             sync it; rename the copies over the task's files; fsync the
 *             directories; delete the retention row.  Readers of task files are
 *             held off (swap_lock) from the commit to the renames.
 *
 *   (none) --intent--> DROPPING --steps..--> DROPPING --switch--> SWITCHED
 *          --renamed--> (none)
 *
 * INVARIANTS
 *  C1 Every phase is made of operations that are each crash-safe on their
 *     own (a journaled delete, a purge or retention step transaction, an atomic
 *     rename): a crash at any point leaves a store that opens, with each
 *     task deleted or not, and each task's head dropped or not, never half.
 *  C2 The index is written only by the applier thread (steps, switch and
 *     shrink run there), so no concurrent append is missed: appends wait in
 *     the pending list meanwhile, and the log is appended only by the
 *     applier, so the switch copies every applied byte.
 *  C3 Retention drops only events before cut_gseq of the task it planned
 *     for; the intent is durable before any entry leaves the index.
 *  C4 The switch transaction is synced before the renames: the index never
 *     names files a power loss could take back, and files renamed in are
 *     always the ones the durable index describes.
 *  C5 Views stay exact through every step: an entry leaves the index with
 *     its length in the Fenwick tree, its type's and task+type's counts.
 *
 * RECOVERY (at open, from recover.c)
 *  - SWITCHED: rename what is left in .rewrite over the task's files (the
 *    rename may not have happened, or not been durable), delete the row.
 *  - then every file left in .rewrite is removed (copies never switched to).
 *  - after the journal is applied, DROPPING: do the remaining steps, copy
 *    from scratch and switch.  The task ends after retention: the intent
 *    was durable, and some of its entries may have left the index already.
 *  A task deleted meanwhile loses its retention row in the delete's transaction.
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


struct retain_job {
	struct evl_store *st;
	struct index_retain tr;
	uint64_t base_len, base_n;	/* the task's, when the intent was made */
	struct tasklog_retain *rw;
	bool more;
};

/* The live task and its intent, as planned.  0, -ENOENT (deleted meanwhile) or -errno. */
static int retain_check(struct index_txn *t, const struct retain_job *j, struct index_task *task,
		      int phase)
{
	struct index_retain tr;
	int rc;

	rc = index_task_by_uid(t, j->tr.uid, task);
	if (!rc && task->state != TASK_LIVE)
		rc = -ENOENT;
	if (!rc)
		rc = index_retain_get(t, j->tr.uid, &tr);
	if (!rc && (tr.phase != phase || tr.cut_gseq != j->tr.cut_gseq ||
		    task->base_len != j->base_len))
		rc = -ENOENT;
	return rc;
}

static int retain_begin_txn(struct index_txn *t, void *arg)
{
	struct retain_job *j = arg;
	struct index_task task;
	struct index_retain tr;
	int rc;

	rc = index_task_by_uid(t, j->tr.uid, &task);
	if (!rc && (task.state != TASK_LIVE || task.base_len != j->base_len))
		rc = -ENOENT;
	if (!rc && index_retain_get(t, j->tr.uid, &tr) == 0)
		rc = -EBUSY;	/* planned twice: cannot happen, one compaction at a time */
	return rc ? rc : index_retain_put(t, &j->tr);
}

static int retain_begin(struct evl_store *st, void *arg)
{
	int rc = store_write_txn(st, retain_begin_txn, arg);

	if (!rc)
		io_mark("trim intent");
	return rc;
}

static int retain_step_txn(struct index_txn *t, void *arg)
{
	struct retain_job *j = arg;
	struct index_task task;
	int rc;

	rc = retain_check(t, j, &task, RETAIN_DROPPING);
	return rc ? rc : index_retain_step(t, j->tr.uid, j->tr.cut_gseq, PURGE_BUDGET, &j->more);
}

/* One bounded step of removing the dropped events' index entries. */
static int retain_step(struct evl_store *st, void *arg)
{
	int rc = store_write_txn(st, retain_step_txn, arg);

	if (!rc) {
		pthread_mutex_lock(&st->lock);
		st->view_gen++;		/* views' remembered positions moved */
		pthread_mutex_unlock(&st->lock);
		io_mark("trim step");
	}
	return rc;
}

static int retain_done_txn(struct index_txn *t, void *arg)
{
	return index_retain_del(t, *(uint64_t *)arg);
}

/*
 * The switch, on the applier (or at open): copy what the old files gained
 * since, sync the new files, point the task at them in one transaction
 * that is synced before the renames, rename, sync the directories.
 */
static int retain_switch(struct evl_store *st, void *arg)
{
	struct retain_job *j = arg;
	struct index_task task;
	struct index_meta m;
	struct index_txn *t;
	int rc;

	/* the applier is the only writer: the lengths read here hold until the commit */
	rc = index_begin(st->ix, false, &t);
	if (rc)
		return rc;
	rc = retain_check(t, j, &task, RETAIN_DROPPING);
	index_abort(t);
	if (!rc)
		rc = tasklog_retain_copy(j->rw, task.log_len - task.base_len,
				     task.nevents - task.base_n);
	if (!rc)
		rc = tasklog_retain_sync(j->rw);
	if (rc)
		return rc;

	/* lock order: swap_lock, then transactions (readers take it the same way) */
	pthread_rwlock_wrlock(&st->swap_lock);
	for (;;) {
		rc = index_begin(st->ix, true, &t);
		if (rc)
			break;
		rc = retain_check(t, j, &task, RETAIN_DROPPING);
		if (!rc)
			rc = index_get_meta(t, &m);
		if (!rc) {
			m.events -= j->tr.cut_n - task.base_n;
			m.log_bytes -= j->tr.cut_len - task.base_len;
			task.base_len = j->tr.cut_len;
			task.base_n = j->tr.cut_n;
			j->tr.phase = RETAIN_SWITCHED;
			rc = index_put_meta(t, &m);
		}
		if (!rc)
			rc = index_task_put(t, &task);
		/* the files hold everything applied: a repair replays only what follows */
		if (!rc)
			rc = index_dirty_set(t, task.uid, task.log_len, task.nevents, m.next_gseq);
		if (!rc)
			rc = index_retain_put(t, &j->tr);
		if (!rc)
			rc = index_commit(t);
		else
			index_abort(t);
		if (rc) {
			j->tr.phase = RETAIN_DROPPING;
			if (rc == -EAGAIN && !(rc = index_grow(st->ix)))
				continue;
		}
		break;
	}
	if (rc) {
		pthread_rwlock_unlock(&st->swap_lock);
		return rc;
	}
	/* committed: from here on a crash finishes the renames at the next open */
	tasklog_retain_keep(j->rw);
	io_mark("trim switch");
	rc = index_sync(st->ix);
	if (!rc) {
		io_mark("trim switch synced");
		rc = tasklog_retain_install(j->rw);
	}
	if (rc) {
		/* never drop one: its old files do not match what the index now says */
		if (grow_bytes(&st->broken, &st->broken_cap, (st->nbroken + 1) * sizeof(*st->broken)))
			st->broken_unknown = true;
		else
			st->broken[st->nbroken++] = task.uid;
	}
	pthread_mutex_lock(&st->lock);
	st->view_gen++;
	pthread_mutex_unlock(&st->lock);
	pthread_rwlock_unlock(&st->swap_lock);
	if (!rc)
		rc = tasklog_retain_finish(st->tl, task.uid, task.name);
	if (rc) {
		evl_log(LOG_CRIT, "task %s: log rewrite switched in the index but not on disk (%s); "
			"retrying (reads of it fail with EIO meanwhile)", task.name, strerror(-rc));
		pthread_mutex_lock(&st->lock);
		st->switch_unfinished = true;
		pthread_mutex_unlock(&st->lock);
		return rc;
	}
	io_mark("trim renamed");
	return store_write_txn(st, retain_done_txn, &j->tr.uid);
}

/* Ask the applier to run @fn(st, @arg) and wait for it.  One caller at a time. */
static int on_applier(struct evl_store *st, int (*fn)(struct evl_store *st, void *arg), void *arg)
{
	if (!st->applier_running)
		return fn(st, arg);	/* opening: nobody else writes */
	pthread_mutex_lock(&st->lock);
	st->call.run = fn;
	st->call.arg = arg;
	pthread_mutex_unlock(&st->lock);
	return ask_applier(st, &st->call);
}

/* Carry out intent @j->tr: remove the entries, copy the kept part, switch. */
static int retain_run(struct evl_store *st, struct retain_job *j, const char *name)
{
	struct index_txn *t;
	struct index_task task;
	int rc;

	do {
		/* closing: stop between steps; the intent is durable, open finishes it */
		if (st->applier_running && atomic_load(&st->closing))
			return -EINTR;
		rc = on_applier(st, retain_step, j);
	} while (!rc && j->more);
	if (rc)
		return rc;
	rc = tasklog_retain_open(st->tl, j->tr.uid, name, j->tr.cut_len - j->base_len,
			     j->tr.cut_n - j->base_n, &j->rw);
	if (rc)
		return rc;
	/* the bulk of the copy here, while appends go on; the rest in the switch */
	rc = index_begin(st->ix, false, &t);
	if (!rc) {
		rc = index_task_by_uid(t, j->tr.uid, &task);
		index_abort(t);
	}
	if (!rc)
		rc = tasklog_retain_copy(j->rw, task.log_len - task.base_len,
				     task.nevents - task.base_n);
	if (!rc)
		rc = on_applier(st, retain_switch, j);
	tasklog_retain_free(j->rw);
	j->rw = NULL;
	return rc;
}

/*
 * How many of @task's events (from its head) were committed before gseq
 * @horizon (0: all of them).  A binary search of the sidecar.
 */
static int count_before(struct evl_store *st, const struct index_task *task, uint64_t horizon,
			uint64_t *out)
{
	uint64_t lo = 0, hi = task->nevents - task->base_n;

	while (horizon && lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		struct tasklog_rec rec;
		ssize_t got = tasklog_read_recs(st->tl, task->uid, task->name, mid, &rec, 1);

		if (got < 0)
			return got;
		if (got < 1) {
			evl_log(LOG_ERR, "task %s: sidecar shorter than indexed", task->name);
			return -EIO;
		}
		if (rec.gseq < horizon)
			lo = mid + 1;
		else
			hi = mid;
	}
	*out = hi;
	return 0;
}

/*
 * Choose the cut among the events committed before gseq @horizon (0: all):
 * the first event kept is the first one that is among the newest
 * @keep_last of those (0: any) and committed at or after @min_ns (0: any).
 * Reads the sidecar from the head.  *@k = events dropped (0: none).
 */
static int retain_plan(struct evl_store *st, const struct index_task *task, uint64_t keep_last,
		     uint64_t min_ns, uint64_t horizon, struct retain_job *j, uint64_t *k)
{
	uint64_t n = 0, i = 0, bytes = 0, gseq = 0;
	struct tasklog_rec recs[1024];
	int rc;

	*k = 0;
	rc = count_before(st, task, horizon, &n);
	if (rc)
		return rc;
	while (i < n) {
		size_t want = n - i < 1024 ? n - i : 1024;
		ssize_t got = tasklog_read_recs(st->tl, task->uid, task->name, i, recs, want);
		size_t r;

		if (got < 0)
			return got;
		if ((size_t)got < want) {
			evl_log(LOG_ERR, "task %s: sidecar shorter than indexed", task->name);
			return -EIO;
		}
		for (r = 0; r < want; r++, i++) {
			bool old = keep_last && n - i > keep_last;

			if (min_ns && recs[r].time_ns < min_ns)
				old = true;
			if (!old)
				break;
			bytes += recs[r].len;
			gseq = recs[r].gseq + 1;
		}
		if (r < want) {
			gseq = recs[r].gseq;
			break;
		}
	}
	*k = i;
	j->tr = (struct index_retain){ .uid = task->uid, .phase = RETAIN_DROPPING, .cut_gseq = gseq,
				     .cut_len = task->base_len + bytes, .cut_n = task->base_n + i };
	j->base_len = task->base_len;
	j->base_n = task->base_n;
	return 0;
}


int store_retain(struct evl_store *st, uint64_t uid, uint64_t keep_last, uint64_t min_ns,
		 uint64_t horizon, uint64_t *events, uint64_t *bytes)
{
	struct retain_job j = { .st = st };
	struct index_task task;
	struct index_txn *t;
	uint64_t k;
	int rc;

	*events = *bytes = 0;
	rc = index_begin(st->ix, false, &t);
	if (rc)
		return rc;
	rc = index_task_by_uid(t, uid, &task);
	if (!rc && task.state != TASK_LIVE)
		rc = -ENOENT;
	if (!rc && index_retain_get(t, uid, &j.tr) == 0) {
		/* a run cut short by an error: finish it first */
		j.base_len = task.base_len;
		j.base_n = task.base_n;
		rc = j.tr.phase == RETAIN_DROPPING ? 0 : -EIO;
		index_abort(t);
		if (!rc)
			rc = retain_run(st, &j, task.name);
		if (rc)
			return rc == -ENOENT ? 0 : rc;
		rc = index_begin(st->ix, false, &t);
		if (rc)
			return rc;
		rc = index_task_by_uid(t, uid, &task);
		if (!rc && task.state != TASK_LIVE)
			rc = -ENOENT;
	}
	index_abort(t);
	/*
	 * A task set aside is not rewritten (its files are not what the index
	 * says: the copy would cut or misplace them), nor one found so now;
	 * the other tasks' retention goes on.
	 */
	if (!rc && task_writable(st, uid) == -EIO)
		return 0;	/* (checked under swap_lock: a delete is not damage) */
	if (!rc)
		rc = retain_plan(st, &task, keep_last, min_ns, horizon, &j, &k);
	if (rc || !k)
		return rc == -ENOENT ? 0 : rc;
	rc = on_applier(st, retain_begin, &j);
	if (!rc)
		rc = retain_run(st, &j, task.name);
	if (rc == -ENOENT)
		return 0;	/* deleted meanwhile */
	if (!rc) {
		*events = j.tr.cut_n - j.base_n;
		*bytes = j.tr.cut_len - j.base_len;
		evl_log(LOG_DEBUG, "task %s: dropped its oldest %" PRIu64 " events (%" PRIu64
			" bytes)", task.name, *events, *bytes);
	}
	return rc;
}

/*
 * A rewrite switched in the index but not (known to be) on disk: redo its
 * renames, make the task readable again, drop the intent.  At open (after
 * a crash) and while running (after a failed rename or directory sync).
 */
static int finish_switch(const struct index_retain *tr, void *arg)
{
	struct evl_store *st = arg;
	struct index_task task;
	int rc;

	if (tr->phase != RETAIN_SWITCHED)
		return 0;
	rc = store_live_task(st, tr->uid, &task);
	if (!rc) {
		evl_log(LOG_NOTICE, "task %s: finishing its log rewrite", task.name);
		pthread_rwlock_wrlock(&st->swap_lock);
		rc = tasklog_retain_finish(st->tl, tr->uid, task.name);
		for (size_t i = 0; !rc && i < st->nbroken; i++)
			if (st->broken[i] == tr->uid)
				st->broken[i--] = st->broken[--st->nbroken];
		pthread_mutex_lock(&st->lock);
		st->view_gen++;
		pthread_mutex_unlock(&st->lock);
		pthread_rwlock_unlock(&st->swap_lock);
	}
	if (rc && rc != -ENOENT)
		return rc;
	return store_write_txn(st, retain_done_txn, (void *)&tr->uid);
}

struct retain_list {
	struct index_retain *v;
	size_t n, cap;		/* cap in bytes (grow) */
};

static int retain_collect(void *arg, const struct index_retain *tr)
{
	struct retain_list *l = arg;

	if (grow_bytes(&l->v, &l->cap, (l->n + 1) * sizeof(*l->v)))
		return -ENOMEM;
	l->v[l->n++] = *tr;
	return 0;
}

static int retain_list_all(struct evl_store *st, struct retain_list *l)
{
	struct index_txn *t;
	int rc = index_begin(st->ix, false, &t);

	if (rc)
		return rc;
	rc = index_retain_list(t, retain_collect, l);
	index_abort(t);
	return rc;
}

/* finish_switch() every rewrite the index has.  0 or -errno. */
static int finish_all_switches(struct evl_store *st)
{
	struct retain_list l = { 0 };
	int rc = retain_list_all(st, &l);

	for (size_t i = 0; i < l.n && !rc; i++)
		rc = finish_switch(&l.v[i], st);
	free(l.v);
	return rc;
}

/*
 * On the applier: finish the rewrites a failed rename or directory sync
 * left switched in the index only (as the next open would).  0 or -errno.
 */
int finish_switches(struct evl_store *st, void *arg)
{
	int rc = finish_all_switches(st);

	if (!rc) {
		/* every rewrite the index has is finished: none is broken */
		pthread_rwlock_wrlock(&st->swap_lock);
		st->broken_unknown = false;
		st->nbroken = 0;
		pthread_rwlock_unlock(&st->swap_lock);
	}
	pthread_mutex_lock(&st->lock);
	st->switch_unfinished = rc != 0;
	pthread_mutex_unlock(&st->lock);
	if (!rc)
		evl_log(LOG_NOTICE, "log rewrites finished");
	return rc;
}

int store_finish_switches(struct evl_store *st)
{
	bool todo;

	pthread_mutex_lock(&st->lock);
	todo = st->switch_unfinished;
	pthread_mutex_unlock(&st->lock);
	return todo ? on_applier(st, finish_switches, NULL) : 0;
}

/* At open, before the repair: switched rewrites are finished, others' files dropped. */
int retain_recover_files(struct evl_store *st)
{
	int rc = finish_all_switches(st);

	return rc ? rc : tasklog_retain_clean(st->tl);
}

/*
 * Does retention intent @tr match @task's files (fsck.c check_retains' rule)?
 * The events it drops are the files' first cut_n - base_n, all before
 * cut_gseq, taking cut_len - base_len log bytes; the first one kept is at
 * or past cut_gseq (past it when the plan dropped every event it looked
 * at: cut_gseq is then the last one's + 1, and gseqs are the store's, not
 * the task's).  A damaged row would cut kept events: -EUCLEAN, said.  A
 * sidecar cut short or a corrupt record there is not this check's to
 * judge (the retention's own reads find it).
 */
static int retain_matches(struct evl_store *st, const struct index_task *task,
			const struct index_retain *tr)
{
	uint64_t n = task->nevents - task->base_n, drop_n = tr->cut_n - task->base_n;
	uint64_t drop_len = tr->cut_len - task->base_len, at = 0, i = 0;
	struct tasklog_rec recs[256];
	bool ok = tr->cut_n >= task->base_n && tr->cut_len >= task->base_len && drop_n <= n;

	while (ok && i < n && i <= drop_n) {
		uint64_t want = n - i < drop_n + 1 - i ? n - i : drop_n + 1 - i;
		ssize_t got;

		if (want > 256)
			want = 256;
		got = tasklog_read_recs(st->tl, task->uid, task->name, i, recs, want);
		if (got == -EILSEQ || (got >= 0 && (uint64_t)got < want))
			break;
		if (got < 0)
			return got;
		for (ssize_t r = 0; r < got && ok; r++, i++) {
			if (i == drop_n) {
				ok = at == drop_len && recs[r].gseq >= tr->cut_gseq;
			} else {
				ok = recs[r].gseq < tr->cut_gseq;
				at += recs[r].len;
			}
		}
	}
	if (ok && drop_n == n)
		ok = drop_len == task->log_len - task->base_len;
	if (ok)
		return 0;
	evl_log(LOG_ERR, "index %s/index/data.mdb is damaged: task %s: its retention under way (up"
		" to gseq %" PRIu64 ", log byte %" PRIu64 ", event %" PRIu64 ") does not match its"
		" files; nothing is cut: evlogctl reindex %s builds a new index", st->dir,
		task->name, tr->cut_gseq, drop_len, drop_n, st->dir);
	return -EUCLEAN;
}

/* At open, once the journal is applied: carry out the intents a crash cut short. */
int retain_recover_dropping(struct evl_store *st)
{
	struct retain_list l = { 0 };
	int rc = retain_list_all(st, &l);

	for (size_t i = 0; i < l.n && !rc; i++) {
		struct retain_job j = { .st = st, .tr = l.v[i] };
		struct index_task task;

		rc = store_live_task(st, j.tr.uid, &task);
		if (rc == -ENOENT) {
			rc = store_write_txn(st, retain_done_txn, &j.tr.uid);
			continue;
		}
		if (rc)
			break;
		if (j.tr.phase == RETAIN_DROPPING && (rc = retain_matches(st, &task, &j.tr)))
			break;
		evl_log(LOG_NOTICE, "recovery: task %s: finishing the retention of its first %"
			PRIu64 " events", task.name, j.tr.cut_n - task.base_n);
		j.base_len = task.base_len;
		j.base_n = task.base_n;
		rc = retain_run(st, &j, task.name);
	}
	free(l.v);
	return rc;
}
