/*
 * store.c - the store: journal -> pending -> applier -> task logs + index.
 * This file opens, checkpoints and closes it and counts; the rest of the
 * data path is in one file each:
 *
 *   task.c     tasks made, found, listed, deleted
 *   writer.c   a write(): lines validated, one journal record (record.c)
 *   pending.c  journaled, not applied yet: readers see it from memory
 *   applier.c  the applier thread: batches (apply.c), checkpoints, jobs
 *   apply.c    a batch: task logs + sidecars (tasklog.c), index (index.c)
 *   view.c     reads of a task log or a view: index, logs, then pending
 *   retain.c   retention's steps on the applier (compact.c runs them)
 *   recover.c  recovery at open (recover_tail.c: lines past the index;
 *              mend.c: logs shorter than the index, written again)
 *   aside.c    tasks whose files are damaged, set aside
 *   stamp.c    the store's identity, matching index and logs
 *   txn.c      index transactions, the applier's mailbox, waits
 *
 * Calls go one way: each file calls only files before it in record.c,
 * pending.c, aside.c, txn.c, mend.c, apply.c, stamp.c, retain.c,
 * applier.c, recover_tail.c, recover.c, task.c, writer.c, view.c, store.c.
 *
 * Their shared state and its locks are in store_i.h; other core modules
 * use store.h.
 *
 * WRITE PATH.  A writer validates its lines, builds one journal record per
 * write() (all its events, one task), takes a range of global commit
 * sequences (gseq) and journals the record under append_lock, so journal
 * order, gseq order and pending order are one order.  The record stays in
 * memory on the pending list until the applier has written it to the task
 * log, the sidecar and the index.  Readers see "applied part from disk and
 * index" followed by "pending part from memory" (DESIGN-NOTES 2): every
 * pending event sorts after every applied one.  Creates work the same way:
 * a task exists once its create record is journaled (the pending creates
 * table answers lookups the index cannot yet), so mkdir never waits for
 * the applier.  A delete waits until it is applied: only then has the task
 * left the views, whose applied part comes from the index.
 *
 * INVARIANTS
 *  I1 The applier applies only durable records (lsn <= journal durable),
 *     so the index never covers a record a power loss could take away.
 *  I2 One LMDB transaction per batch records the task logs' new lengths,
 *     the events, and applied_lsn together.  Log bytes are written at the
 *     offsets the index gives (pwrite), before that commit; a crash between
 *     leaves bytes the index does not cover, which recovery cuts or which
 *     the replay of the same records writes again identically.
 *  I3 A task changed since the last checkpoint is in the index's dirty set,
 *     with its length at that checkpoint (durable then: checkpoint fsyncs
 *     logs before the index records ckpt_lsn).
 *  I4 Journal segments are deleted only up to ckpt_lsn.
 *  I5 A create is journaled only for a name free in the index and the
 *     pending creates, under meta_lock; a task's records before its delete
 *     are dead (pend_enqueue marks them) and not applied by the batch that
 *     applies the delete (an earlier batch applies them: its commit could
 *     outlive a delete not yet durable).  So when the applier
 *     cannot apply a batch (a full disk), it may apply the durable deletes
 *     behind it at once, out of order, without changing applied_lsn: the
 *     in-order application finds those tasks deleted and does nothing, and
 *     so does a replay.  Readers stop seeing the tasks' pending records
 *     ("gone") when that happens.
 *  I6 A batch that deletes a task, which moves its files to the trash,
 *     runs with swap_lock held exclusive: a reader of a snapshot that still
 *     has the task (views, logs: they hold swap_lock shared) reads its files
 *     first.
 *  I7 A task's pending bytes (tmem) are split while the applier commits a
 *     batch: the batch's share counts for readers whose snapshot predates
 *     the commit only, so a size is never counted twice nor missed.
 *  I8 After any failed fsync of a task file, directory or the index, no
 *     checkpoint completes and no segment is deleted until a reopen (the
 *     kernel may have dropped the pages and marked them clean, so a later
 *     fsync proves nothing); writes get EIO meanwhile.
 *  I9 Task-file bytes past a task's checkpoint length are trusted at
 *     recovery only if they were written under the running boot (the
 *     index records the boot id at open, and "" after a failed fsync):
 *     after a power loss they may have the right length and wrong pages.
 *
 * Locks and their order: store_i.h.
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
#include "typeset.h"
#include "tasklog.h"

/*
 * Live task @uid from a read transaction of its own (recovery, retention:
 * no st->lock needed).  0, -ENOENT (none, or deleted) or -errno.
 */

void evl_options_default(struct evl_options *o)
{
	memset(o, 0, sizeof(*o));
	o->type_field = "type";
	o->max_event = 1 << 20;
	o->max_pending = 64 << 20;
	o->max_held = 64u << 20;
	o->max_types = 10000;
	o->commit_ms = 10;
	o->max_fds = 1024;
	o->segment_bytes = 64u << 20;
}


/* ---- open, recovery, close ---- */

const char *store_dir(const struct evl_store *st)
{
	return st->dir;
}

bool store_nodelete(const struct evl_store *st)
{
	return st->opt.nodelete;
}

bool store_read_only(const struct evl_store *st)
{
	return st->opt.read_only;
}

void *store_attached(struct evl_store *st, void *(*make)(struct evl_store *st),
		     void (*release)(void *obj))
{
	void *obj;

	pthread_mutex_lock(&st->lock);
	if (!st->att && !atomic_load(&st->closing) && (st->att = make(st)))
		st->att_release = release;
	obj = st->att;
	pthread_mutex_unlock(&st->lock);
	return obj;
}

/* Release the part on the store (store_attached), waiting for its work. */
static void store_detach(struct evl_store *st)
{
	void *obj;

	pthread_mutex_lock(&st->lock);
	obj = st->att;
	st->att = NULL;
	pthread_mutex_unlock(&st->lock);
	if (obj)
		st->att_release(obj);
}

int store_shrink_index(struct evl_store *st)
{
	return ask_applier(st, &st->shrink);
}

int store_wait_purged(struct evl_store *st, void (*progress)(void *arg, uint64_t left),
		      void *arg)
{
	uint64_t left = index_purge_count(st->ix), target;

	/*
	 * As many purges as tasks await one now: tasks deleted meanwhile
	 * (their uids may come first) do not make the wait longer.
	 */
	pthread_mutex_lock(&st->lock);
	target = st->purged + left;
	pthread_mutex_unlock(&st->lock);
	for (;;) {
		uint64_t at;
		struct timespec ts;

		progress(arg, left);
		if (atomic_load(&st->closing))
			return -EINTR;
		pthread_mutex_lock(&st->lock);
		if ((!left && !st->purge_more) || st->purged >= target) {
			pthread_mutex_unlock(&st->lock);
			return 0;
		}
		/* purge steps signal nobody: look again shortly */
		st->purge_more = true;
		pthread_cond_signal(&st->applier_cv);
		at = mono_ns() + 20000000ull;
		ts.tv_sec = at / 1000000000ull;
		ts.tv_nsec = at % 1000000000ull;
		pthread_cond_timedwait(&st->applied_cv, &st->lock, &ts);
		pthread_mutex_unlock(&st->lock);
		left = index_purge_count(st->ix);
	}
}

bool store_closing(struct evl_store *st)
{
	return atomic_load(&st->closing);
}

uint64_t store_next_gseq(struct evl_store *st)
{
	uint64_t g;

	pthread_mutex_lock(&st->lock);
	g = st->next_gseq;
	pthread_mutex_unlock(&st->lock);
	return g;
}

int store_checkpoint_applied(struct evl_store *st)
{
	if (st->opt.read_only)
		return -EROFS;
	return ask_applier(st, &st->ckpt);
}

/* Fewer cached tasks than this and the applier and a compaction wait on each other. */
#define FD_CACHE_MIN 8

/*
 * How many tasks' descriptors to cache (two each: log and sidecar).  First
 * raise the soft RLIMIT_NOFILE toward what @max_fds needs plus the others'
 * headroom (never above the hard limit), then size the cache from the limit
 * actually in force, so that it never takes the descriptors FUSE, LMDB, the
 * journal and readers need.  (The cache checks the limit again at each open,
 * should it be lowered later, and sheds descriptors on EMFILE.)
 */
static unsigned fd_cache_size(unsigned max_fds)
{
	struct rlimit rl;
	unsigned room, n;

	if (!max_fds)
		max_fds = 256;	/* tasklog_open's default */
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < rl.rlim_max) {
		/* 2 x max_fds plus the largest headroom tasklog_fd_room keeps */
		rlim_t want = 2 * (rlim_t)max_fds + 256;

		if (rl.rlim_cur < want) {
			rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
			if (setrlimit(RLIMIT_NOFILE, &rl))
				evl_log(LOG_WARNING, "cannot raise the open file limit to %llu: %s",
					(unsigned long long)rl.rlim_cur, strerror(errno));
		}
	}
	room = tasklog_fd_room() / 2;
	n = room < max_fds ? room : max_fds;
	if (n < FD_CACHE_MIN)
		n = max_fds < FD_CACHE_MIN ? max_fds : FD_CACHE_MIN;
	if (n < max_fds)
		evl_log(LOG_NOTICE, "the open file limit keeps %u task logs open, not max_fds=%u",
			n, max_fds);
	return n;
}

/* Release what open made; the applier is stopped.  Returns journal_close's result. */
static int store_free(struct evl_store *st)
{
	int rc;

	store_detach(st);	/* no-op when closing: already released */
	rc = journal_close(st->jn);

	index_close(st->ix);
	tasklog_close(st->tl);
	while (st->head) {
		struct pend *p = st->head;

		st->head = p->next;
		pend_free(p);
	}
	for (size_t i = 0; i < TMEM_BUCKETS; i++)
		while (st->tmem[i]) {
			struct tmem *t = st->tmem[i];

			st->tmem[i] = t->next;
			free(t);
		}
	store_unlock(st->dir, &st->dlock);
	pthread_mutex_destroy(&st->meta_lock);
	pthread_mutex_destroy(&st->append_lock);
	pthread_mutex_destroy(&st->lock);
	pthread_mutex_destroy(&st->tmem_lock);
	pthread_mutex_destroy(&st->aside_lock);
	pthread_cond_destroy(&st->applier_cv);
	pthread_cond_destroy(&st->applied_cv);
	pthread_rwlock_destroy(&st->swap_lock);
	typeset_free(st->types_seen);
	free(st->broken);
	free(st->aside);
	free(st->misnamed);
	free(st->type_field);
	free(st->dir);
	free(st);
	return rc;
}

int evl_store_open(const char *dir, const struct evl_options *opts, struct evl_store **out)
{
	struct evl_store *st;
	struct event_validator *v;
	char path[DD_PATH_MAX];
	int rc;

	if (!opts->type_field || opts->max_event < 2 || opts->commit_ms == 0 ||
	    opts->max_pending == 0)
		return -EINVAL;
	rc = event_validator_new(opts->type_field, opts->max_event, &v);
	if (rc)
		return rc;
	event_validator_free(v);
	rc = dd_check(dir);
	if (rc)
		return rc;

	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->dlock = STORE_LOCK_NONE;
	st->opt = *opts;
	pthread_mutex_init(&st->meta_lock, NULL);
	pthread_mutex_init(&st->append_lock, NULL);
	pthread_mutex_init(&st->lock, NULL);
	pthread_mutex_init(&st->tmem_lock, NULL);
	pthread_mutex_init(&st->aside_lock, NULL);
	{
		/* every timed wait here takes its deadline from mono_ns() */
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&st->applier_cv, &ca);
		pthread_cond_init(&st->applied_cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	{
		pthread_rwlockattr_t a;

		pthread_rwlockattr_init(&a);
		pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
		pthread_rwlock_init(&st->swap_lock, &a);
		pthread_rwlockattr_destroy(&a);
	}
	st->ckpt.run = applier_checkpoint;
	st->shrink.run = applier_shrink;
	st->dir = strdup(dir);
	st->type_field = strdup(opts->type_field);
	if (!st->dir || !st->type_field) {
		rc = -ENOMEM;
		goto fail;
	}
	st->opt.type_field = st->type_field;

	if (io_mkdir_durable(dir, 0755)) {
		rc = -errno;
		goto fail;
	}
	rc = store_lock(dir, st->opt.holder, &st->dlock);
	st->opt.holder = NULL;	/* the caller's string: not kept */
	if (rc == -EBUSY && evl_store_holder(dir, path, sizeof(path)) == 1)
		evl_log(LOG_ERR, "store %s is in use by %s", dir, path);
	if (rc)
		goto fail;
	rc = tasklog_open(dir, fd_cache_size(st->opt.max_fds), &st->tl);
	if (rc)
		goto fail;
	tasklog_on_sync_failed(st->tl, store_sync_failed, st);
	st->frozen = st->opt.read_only && on_read_only_media(dir);
	if (st->frozen)
		tasklog_read_only(st->tl);
	rc = tasklog_format_check(dir, !st->frozen, false, path, sizeof(path));
	if (rc == -EPROTO)
		evl_log(LOG_ERR, "store %s: %s", dir, path);
	else if (rc)
		evl_log(LOG_ERR, "store %s: cannot check or upgrade its task sidecars: %s", dir,
			strerror(-rc));
	if (rc)
		goto fail;
	rc = dd_path(path, dir, DD_INDEX, NULL);
	if (rc)
		goto fail;
	rc = index_open_ex(path, opts->type_field, st->frozen ? INDEX_RDONLY : 0, &st->ix);
	if (rc)
		goto fail;
	index_on_sync_failed(st->ix, store_sync_failed, st);
	rc = stamp_open(st);
	if (!rc) {
		st->recovering = true;
		rc = st->frozen ? open_frozen(st) : store_recover(st);
		st->recovering = false;
	}
	if (!rc && atomic_load(&st->sync_failed))
		rc = -EIO;	/* the repair's syncs report their own failures; this is a net */
	if (!rc && !st->frozen) {
		store_reserve(st);
		rc = store_types_load(st);
	}
	if (rc)
		goto fail;
	if (st->frozen)
		goto done;
	rc = -pthread_create(&st->applier, NULL, applier_main, st);
	if (rc)
		goto fail;
	st->applier_running = true;
done:
	*out = st;
	return 0;
fail:
	evl_log(LOG_ERR, "cannot open store %s: %s", dir, strerror(-rc));
	store_free(st);
	return rc;
}

/* Wait until the applier has applied everything up to @lsn. */

int evl_store_checkpoint(struct evl_store *st)
{
	uint64_t lsn;
	int rc;

	if (st->opt.read_only)
		return -EROFS;
	pthread_mutex_lock(&st->lock);
	lsn = st->enqueued_lsn;
	pthread_mutex_unlock(&st->lock);
	rc = store_wait_applied(st, lsn, NULL, true);
	if (rc)
		return rc;
	return ask_applier(st, &st->ckpt);
}

int evl_store_sync(struct evl_store *st)
{
	return st->jn ? journal_barrier(st->jn) : 0;
}

/*
 * The checkpoint of close.  If applying has failed for CLOSE_GIVE_UP_MS
 * (a full disk), everything acknowledged is still in the journal, synced:
 * close leaves it there for the next open to apply, and returns 0.
 */
#define CLOSE_GIVE_UP_MS 5000

static int close_checkpoint(struct evl_store *st)
{
	uint64_t lsn, failing_since = 0;
	int rc;

	rc = journal_barrier(st->jn);
	if (rc)
		return rc;
	pthread_mutex_lock(&st->lock);
	lsn = st->enqueued_lsn;
	st->want_lsn = lsn;
	pthread_cond_signal(&st->applier_cv);
	while (st->applied_lsn < lsn) {
		uint64_t now = mono_ns(), at = now + 100 * 1000000ull;
		struct timespec ts = { at / 1000000000ull, at % 1000000000ull };

		if (!st->apply_err)
			failing_since = 0;
		else if (!failing_since)
			failing_since = now;
		else if (now - failing_since > CLOSE_GIVE_UP_MS * 1000000ull)
			break;
		pthread_cond_timedwait(&st->applied_cv, &st->lock, &ts);
	}
	rc = st->applied_lsn < lsn ? st->apply_err : 0;
	pthread_mutex_unlock(&st->lock);
	if (rc) {
		evl_log(LOG_WARNING, "closing with journal records %" PRIu64 "-%" PRIu64 " not "
			"applied (%s): the journal keeps them, the next open applies them",
			st->applied_lsn + 1, lsn, strerror(-rc));
		return 0;
	}
	return ask_applier(st, &st->ckpt);
}

int evl_store_close(struct evl_store *st)
{
	int rc = 0, rc2;

	if (!st)
		return 0;
	atomic_store(&st->closing, true);	/* a compaction stops at its next step */
	store_detach(st);		/* waits for it */
	if (!st->opt.read_only) {
		struct journal_stats js;

		store_journal_stats(st, &js);
		if (!js.error)
			rc = close_checkpoint(st);
		else
			rc = -js.error;
	}
	pthread_mutex_lock(&st->lock);
	st->stop = true;
	pthread_cond_signal(&st->applier_cv);
	pthread_mutex_unlock(&st->lock);
	if (st->applier_running)
		pthread_join(st->applier, NULL);
	if (check_syncs(st) && !rc)
		rc = -EIO;
	/* closed as it should be, but not everything acknowledged is on disk: say so */
	if (st->events_lost) {
		char names[256];

		aside_names(st, names, sizeof(names), ',');
		evl_log(LOG_ERR, "%" PRIu64 " acknowledged events were lost: their tasks were set "
			"aside (%s)", st->events_lost, names);
		if (!rc)
			rc = -EIO;
	}
	rc2 = store_free(st);
	return rc ? rc : rc2;
}

/* ---- status ---- */

const double evl_lat_bounds[EVL_LAT_BUCKETS] = {
	0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
	0.005, 0.01, 0.025, 0.1, 1.0, 1e300,
};

/*
 * The distinct types of the pending events past a snapshot that the
 * snapshot does not have: an open-addressing set of type names (borrowed
 * from the records: valid under st->lock), each looked up in the index
 * once.
 */
struct stat_types {
	struct index_txn *t;
	struct { const char *name; size_t len; bool in_index; } *v;
	size_t cap, n;		/* cap: a power of two, or 0 */
	uint64_t extra;		/* types not in the snapshot */
	int rc;
};

static int stat_type(void *arg, const struct pend *p, const struct pend_ev *e)
{
	struct stat_types *s = arg;
	const char *name = ev_type(p, e);
	size_t i;

	if (2 * (s->n + 1) > s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 64;
		void *nv = calloc(cap, sizeof(*s->v));

		if (!nv) {
			s->rc = -ENOMEM;
			return 1;	/* the type count stays the index's */
		}
		for (size_t k = 0; k < s->cap; k++) {
			if (!s->v[k].name)
				continue;
			i = XXH3_64bits(s->v[k].name, s->v[k].len) & (cap - 1);
			while (((typeof(s->v))nv)[i].name)
				i = (i + 1) & (cap - 1);
			((typeof(s->v))nv)[i] = s->v[k];
		}
		free(s->v);
		s->v = nv;
		s->cap = cap;
	}
	for (i = XXH3_64bits(name, e->tlen) & (s->cap - 1); s->v[i].name; i = (i + 1) & (s->cap - 1))
		if (s->v[i].len == e->tlen && !memcmp(s->v[i].name, name, e->tlen))
			return 0;
	s->v[i].name = name;
	s->v[i].len = e->tlen;
	s->v[i].in_index = index_prefix_exists(s->t, name, e->tlen);
	s->extra += !s->v[i].in_index;
	s->n++;
	return 0;
}

/*
 * Counts include what is journaled and not applied yet, as every reader
 * sees it (sizes, views): the index snapshot plus the pending records past
 * it, taken together under st->lock so nothing is counted twice or missed.
 * The events, bytes and tasks come from counters (less the records the
 * snapshot has already applied, a batch at most); the types need a walk of
 * the pending events.
 */
void evl_store_stats(struct evl_store *st, struct evl_stats *o)
{
	uint64_t pending_events, pending_data, pending_tasks;
	struct stat_types sty = { 0 };
	struct journal_stats js;
	struct index_txn *t;
	struct index_meta m = { 0 };

	memset(o, 0, sizeof(*o));
	store_journal_stats(st, &js);
	/* under st->lock: the snapshot and the pending list agree (struct snap) */
	pthread_mutex_lock(&st->lock);
	if (index_begin(st->ix, false, &t) == 0) {
		index_get_meta(t, &m);
		o->types = index_type_count(t);
		sty.t = t;
		each_pending(st, m.applied_lsn, 0, "", 0, stat_type, &sty);
		index_abort(t);
	}
	free(sty.v);
	/* the records the snapshot has applied are counted there, not here */
	pending_events = st->pending_events;
	pending_data = st->pending_data;
	pending_tasks = st->pending_tasks;
	for (const struct pend *p = st->head; p && p->lsn <= m.applied_lsn; p = p->next) {
		if (p->kind == REC_APPEND && !p->gone) {
			pending_events -= p->n;
			pending_data -= p->data_len;
		}
		if (p->kind == REC_CREATE && !p->gone)
			pending_tasks--;
	}
	o->tasks = m.tasks + pending_tasks;
	o->events = m.events + pending_events;
	o->log_bytes = m.log_bytes + pending_data;
	o->types += sty.extra;
	o->index_bytes = index_file_bytes(st->ix);
	o->journal_bytes = js.bytes;
	o->pending_bytes = st->pending_mem;
	o->pending_events = pending_events;
	o->appended_events = st->appended_events;
	o->appended_bytes = st->appended_bytes;
	o->rejected_invalid = st->rejected_invalid;
	o->rejected_too_big = st->rejected_too_big;
	o->rejected_held = st->rejected_held;
	o->rejected_types = st->rejected_types;
	o->held_bytes = atomic_load(&st->held_bytes);
	o->written_lsn = js.written_lsn;
	o->durable_lsn = js.durable_lsn;
	o->applied_lsn = st->applied_lsn;
	o->ckpt_lsn = m.ckpt_lsn;
	o->fsyncs = js.fsyncs;
	o->checkpoints = st->checkpoints;
	o->apply_failures = st->apply_failures;
	o->events_lost = st->events_lost;
	o->events_unapplied = st->events_unapplied;
	o->lines_unapplied = st->lines_moved;
	o->index_damage = atomic_load(&st->index_damage);
	o->tasks_aside = aside_names(st, o->aside, sizeof(o->aside), '\0');
	memcpy(o->lat_count, st->lat_count, sizeof(o->lat_count));
	o->lat_sum = st->lat_sum;
	o->error = js.error;
	o->journal_lost = js.damage.lost;
	o->journal_lost_first = js.damage.first_lsn;
	o->journal_lost_last = js.damage.last_lsn;
	o->journal_damaged_segments = js.damage.segments;
	o->journal_damaged_first = js.damage.first_segment;
	o->commit_sync = st->opt.commit_sync;
	o->commit_ms = st->opt.commit_ms;
	memcpy(o->last_rejection, st->last_rejection, sizeof(o->last_rejection));
	pthread_mutex_unlock(&st->lock);
}
