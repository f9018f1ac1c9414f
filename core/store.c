/*
 * store.c - the store: journal -> pending -> applier -> task logs + index.
 *
 * WRITE PATH.  A writer validates its lines, builds one journal record per
 * write() (all its events, one task), takes a range of global commit
 * sequences (gseq) and journals the record under append_lock, so journal
 * order, gseq order and pending order are one order.  The record stays in
 * memory on the pending list until the applier has written it to the task
 * log, the sidecar and the index.  Readers see "applied part from disk and
 * index" followed by "pending part from memory" (DESIGN-NOTES 2): every
 * pending event sorts after every applied one.
 *
 * JOURNAL RECORDS (payloads, little-endian)
 *   REC_CREATE 0 8 uid, 8 8 time, 16 2 name length, name, then optionally
 *              4 owner uid, 4 owner gid, 4 mode
 *   REC_DELETE 0 8 uid, 8 8 time
 *   REC_APPEND 0 8 uid, 8 8 first gseq, 16 8 time, 24 4 n, 28 4 data length,
 *              n x (4 event length, 1 type length, type), event bytes
 *              (each event ends with '\n'; event i has gseq first + i)
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
 *  I5 After any failed fsync of a task file, directory or the index, no
 *     checkpoint completes and no segment is deleted until a reopen (the
 *     kernel may have dropped the pages and marked them clean, so a later
 *     fsync proves nothing); writes get EIO meanwhile.
 *  I6 Task-file bytes past a task's checkpoint length are trusted at
 *     recovery only if they were written under the running boot (the
 *     index records the boot id at open, and "" after a failed fsync):
 *     after a power loss they may have the right length and wrong pages.
 *
 * RECOVERY (store_recover), idempotent: a crash during it recovers again.
 *   0. A task the index has live whose directory is in the trash had its
 *      delete applied in a batch the crash lost: its directory goes back
 *      (the replay deletes it again).
 *   1. For each dirty task: files at least as long as the index says, and
 *      trusted (I6) -> cut them to the index's lengths (kill -9 left an
 *      unapplied batch).  Files shorter (power loss took unsynced log
 *      bytes), or not trusted -> cut them to their checkpoint lengths and
 *      rewrite from the journal records in (ckpt_lsn, applied_lsn] (present
 *      by I1, I4 and I5).  The running boot id is recorded once done.
 *   2. Replay the journal past applied_lsn onto the pending list, applying
 *      in batches when it exceeds max_pending, then apply the rest.
 * The index is never scanned as a whole and no log is read.
 *
 * CHECKPOINT (applier thread): with nothing durable left unapplied, fsync
 * the logs and sidecars of dirty tasks, sync the index, record ckpt_lsn =
 * applied_lsn and clear the dirty set, sync again, trim the journal.
 *
 * Lock order: meta_lock -> append_lock -> st->lock -> index transaction
 * (the map-resize rwlock) -> tmem_lock, journal and tasklog locks.  The
 * applier takes st->lock only between transactions; nobody takes st->lock
 * while holding a transaction.  swap_lock (readers of task files, a log
 * rewrite's switch) comes before st->lock and any transaction.
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
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "event.h"
#include "evlog.h"
#include "index.h"
#include "io.h"
#include "journal.h"
#include "linebuf.h"
#include "log.h"
#include "store_i.h"
#include "tasklog.h"

enum { REC_CREATE = 1, REC_APPEND = 2, REC_DELETE = 3 };

#define APPEND_HDR 32
#define BATCH_MAX_BYTES (8u << 20)
#define BATCH_MAX_RECS 20000
#define PURGE_BUDGET 4096
/*
 * Appends wait this long (or until this many bytes are pending) before the
 * applier takes them: each index commit costs an fdatasync, so applying
 * record by record would double the fsyncs of commit=sync.
 */
#define APPLY_DELAY_NS (5 * 1000000ull)
#define APPLY_BYTES (1u << 20)
#define TMEM_BUCKETS 1024

const double evl_lat_bounds[EVL_LAT_BUCKETS] = {
	0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
	0.005, 0.01, 0.025, 0.1, 1.0, 1e300,
};

struct pend_ev {
	uint32_t off, len;	/* in data */
	uint8_t tlen;
	const char *type;
};

/* One journaled record, in memory until applied. */
struct pend {
	struct pend *next;
	uint64_t lsn;
	uint64_t enq_ns;	/* when it joined the list (CLOCK_MONOTONIC) */
	unsigned kind;
	uint64_t uid, gseq, time_ns;
	uint32_t n, data_len;
	const char *data;
	const char *name;
	size_t name_len;
	bool has_owner;
	uint32_t owner_uid, owner_gid, mode;
	/*
	 * An append to a task whose delete follows: not written.  Set by
	 * enqueue under st->lock, read by the applier without it (a record in
	 * a batch being applied may be marked: either way is right).
	 */
	atomic_bool dead;
	size_t len;		/* payload bytes */
	struct pend_ev *ev;
	unsigned char *buf;	/* payload */
};

/* Pending bytes of one task (only tasks with pending events have one). */
struct tmem {
	struct tmem *next;
	uint64_t uid, bytes, events;
};

/*
 * Work another thread asks the applier to do and waits for (ask_applier).
 * Requests arriving while one runs are served by the next run.
 */
struct applier_job {
	unsigned req, done;
	int rc;
	int (*run)(struct evl_store *st, void *arg);
	void *arg;
};

struct evl_store {
	char *dir;
	struct evl_options opt;
	char *type_field;
	int lock_fd;
	struct index *ix;
	struct journal *jn;
	struct tasklog *tl;

	pthread_mutex_t meta_lock;	/* serialises create and delete */
	pthread_mutex_t append_lock;	/* journal order = gseq order = list order */
	pthread_mutex_t tmem_lock;	/* tmem[] only; a leaf: taken last */
	pthread_mutex_t lock;		/* everything below but tmem[] */
	pthread_cond_t applier_cv;	/* work for the applier */
	pthread_cond_t applied_cv;	/* records applied, checkpoint done */
	pthread_t applier;
	bool applier_running, stop;

	struct pend *head, *tail;	/* pending records, lsn order */
	uint64_t pending_bytes, pending_events;
	uint64_t enqueued_lsn, durable_lsn, applied_lsn;
	uint64_t next_gseq, next_uid;
	unsigned apply_waiters;		/* threads waiting for records to be applied */
	uint64_t delete_gen;		/* bumped by every delete: writers look again */
	uint64_t view_gen;		/* ... and by retention steps: view offsets moved */
	struct tmem *tmem[TMEM_BUCKETS];
	bool purge_more;
	/*
	 * Log rewrites committed to the index but not finished on disk (a
	 * failed rename or directory sync): retried by the applier and at
	 * each compaction.  Of those, the tasks whose files were not renamed
	 * are unreadable (EIO) meanwhile: their old files do not match the
	 * offsets the index now has.  broken[] is guarded by swap_lock.
	 */
	bool switch_unfinished;
	uint64_t broken[8];
	unsigned nbroken;
	struct applier_job ckpt, shrink;	/* work others ask the applier for */
	struct applier_job call;	/* any function, for compaction (one caller) */
	/*
	 * Readers of task files hold it shared from their index snapshot to
	 * their last pread; a log rewrite's switch holds it exclusive from the
	 * index commit to the renames, so nobody reads new offsets in old files.
	 */
	pthread_rwlock_t swap_lock;
	struct compactor *cp;
	int apply_err;			/* last apply failure, 0 once it works */
	atomic_bool sync_failed;	/* I5: an fsync failed, until reopened */
	atomic_bool sync_recorded;	/* ... and the index says so (I6) */

	/* counters */
	uint64_t appended_events, appended_bytes, rejected_invalid, rejected_too_big;
	uint64_t checkpoints;
	uint64_t lat_count[EVL_LAT_BUCKETS];
	double lat_sum;
	char last_rejection[512];
};

struct evl_writer {
	struct evl_store *st;
	uint64_t uid;
	uint64_t gen;			/* delete_gen when last checked */
	char name[256];
	struct linebuf lb;
	bool discarding;		/* inside a line already refused as too long */
	struct event_validator *val;
	/* the record being built */
	unsigned char *dir;
	size_t dir_len, dir_cap;
	char *data;
	size_t data_len, data_cap;
	uint32_t n;
	struct event_error err;
	size_t err_line;
};

struct evl_view {
	struct evl_store *st;
	uint64_t uid;
	size_t len;
	char prefix[256];
	/* where the last read ended, to continue without a search */
	uint64_t next_off, next_gseq, gen;
	bool have_next;
};

static uint64_t wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void w16(unsigned char *p, uint16_t v)
{
	v = htole16(v);
	memcpy(p, &v, 2);
}

static void w32(unsigned char *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static void w64(unsigned char *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

static uint16_t r16(const unsigned char *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return le16toh(v);
}

static uint32_t r32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static uint64_t r64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

/* Make *@pp (a malloc'ed buffer of *@cap bytes) hold at least @need bytes, doubling. */
int store_grow(void *pp, size_t *cap, size_t need)
{
	void **p = pp;
	size_t c = *cap ? *cap : 1024;
	void *n;

	if (need <= *cap)
		return 0;
	while (c < need)
		c *= 2;
	n = realloc(*p, c);
	if (!n)
		return -ENOMEM;
	*p = n;
	*cap = c;
	return 0;
}

/*
 * Live task @uid from a read transaction of its own (recovery, retention:
 * no st->lock needed).  0, -ENOENT (none, or deleted) or -errno.
 */
static int live_task(struct evl_store *st, uint64_t uid, struct index_task *task)
{
	struct index_txn *t;
	int rc = index_begin(st->ix, false, &t);

	if (rc)
		return rc;
	rc = index_task_by_uid(t, uid, task);
	index_abort(t);
	return !rc && task->state != TASK_LIVE ? -ENOENT : rc;
}

void evl_options_default(struct evl_options *o)
{
	memset(o, 0, sizeof(*o));
	o->type_field = "type";
	o->max_event = 1 << 20;
	o->max_pending = 64 << 20;
	o->commit_ms = 10;
	o->max_fds = 1024;
	o->segment_bytes = 64u << 20;
}

/* ---- pending records ---- */

static void pend_free(struct pend *p)
{
	if (p) {
		free(p->ev);
		free(p->buf);
		free(p);
	}
}

/*
 * Make a pending record of @kind from payload @buf (taken over: freed with
 * the record).  Checks the payload's structure: journal replay feeds it
 * bytes that passed only a checksum.  NULL if malformed or out of memory.
 */
static struct pend *pend_parse(unsigned kind, unsigned char *buf, size_t len)
{
	struct pend *p = calloc(1, sizeof(*p));
	size_t pos;

	if (!p) {
		free(buf);
		return NULL;
	}
	p->kind = kind;
	p->buf = buf;
	p->len = len;
	switch (kind) {
	case REC_CREATE:
		if (len < 18)
			goto bad;
		p->uid = r64(buf);
		p->time_ns = r64(buf + 8);
		p->name_len = r16(buf + 16);
		if (p->name_len == 0 || p->name_len > 255 ||
		    (18 + p->name_len != len && 18 + p->name_len + 12 != len))
			goto bad;
		p->name = (const char *)buf + 18;
		if (evl_task_check_name(p->name, p->name_len))
			goto bad;	/* never a path outside tasks/ */
		if (len > 18 + p->name_len) {
			p->has_owner = true;
			p->owner_uid = r32(buf + 18 + p->name_len);
			p->owner_gid = r32(buf + 22 + p->name_len);
			p->mode = r32(buf + 26 + p->name_len) & 07777;
		}
		break;
	case REC_DELETE:
		if (len != 16)
			goto bad;
		p->uid = r64(buf);
		p->time_ns = r64(buf + 8);
		break;
	case REC_APPEND:
		if (len < APPEND_HDR)
			goto bad;
		p->uid = r64(buf);
		p->gseq = r64(buf + 8);
		p->time_ns = r64(buf + 16);
		p->n = r32(buf + 24);
		p->data_len = r32(buf + 28);
		if (p->n == 0 || p->data_len > len || p->n > p->data_len)
			goto bad;
		p->ev = calloc(p->n, sizeof(*p->ev));
		if (!p->ev)
			goto bad;
		pos = APPEND_HDR;
		{
			uint64_t off = 0;
			size_t data_at = len - p->data_len;

			for (uint32_t i = 0; i < p->n; i++) {
				struct pend_ev *e = &p->ev[i];

				if (pos + 5 > data_at)
					goto bad;
				e->len = r32(buf + pos);
				e->tlen = buf[pos + 4];
				e->type = (const char *)buf + pos + 5;
				pos += 5 + e->tlen;
				if (pos > data_at || e->tlen == 0 || e->len == 0 ||
				    off + e->len > p->data_len)
					goto bad;
				e->off = off;
				off += e->len;
				if (buf[data_at + off - 1] != '\n')
					goto bad;
			}
			if (pos != data_at || off != p->data_len)
				goto bad;
			p->data = (const char *)buf + data_at;
		}
		break;
	default:
		goto bad;
	}
	if (p->uid == 0)
		goto bad;	/* uids start at 1: 0 names no task (and marks free fd slots) */
	return p;
bad:
	pend_free(p);
	return NULL;
}

int store_rec_decode(unsigned kind, const void *payload, size_t len,
		     int (*cb)(void *arg, const struct store_rec *r), void *arg)
{
	unsigned char *buf = malloc(len ? len : 1);
	struct store_rec r;
	struct pend *p;
	int rc;

	if (!buf)
		return -ENOMEM;
	if (len)
		memcpy(buf, payload, len);	/* an empty record has no buffer */
	p = pend_parse(kind, buf, len);
	if (!p)
		return -EILSEQ;
	r = (struct store_rec){
		.kind = kind == REC_CREATE ? STORE_REC_CREATE :
			kind == REC_DELETE ? STORE_REC_DELETE : STORE_REC_APPEND,
		.uid = p->uid, .gseq = p->gseq, .time_ns = p->time_ns, .n = p->n,
		.name = p->name, .name_len = p->name_len,
	};
	rc = 0;
	for (uint32_t i = 0; i < p->n && !rc; i++) {
		r.ev = p->data + p->ev[i].off;
		r.ev_len = p->ev[i].len;
		r.ev_index = i;
		rc = cb(arg, &r);
	}
	if (!p->n)
		rc = cb(arg, &r);
	pend_free(p);
	return rc;
}

static struct tmem **tmem_slot(struct evl_store *st, uint64_t uid)
{
	struct tmem **pp = &st->tmem[(uid * 0x9e3779b97f4a7c15ull) >> 54];

	while (*pp && (*pp)->uid != uid)
		pp = &(*pp)->next;
	return pp;
}

/* Account @p's events to its task (+1) or back (-1). */
static void tmem_account(struct evl_store *st, const struct pend *p, int sign)
{
	struct tmem **pp, *t;

	if (p->kind != REC_APPEND)
		return;
	pthread_mutex_lock(&st->tmem_lock);
	pp = tmem_slot(st, p->uid);
	t = *pp;
	if (!t) {
		if (sign < 0)
			goto out;
		t = calloc(1, sizeof(*t));
		if (!t)
			goto out;	/* stat then under-reports until applied */
		t->uid = p->uid;
		*pp = t;
	}
	t->bytes += sign * (int64_t)p->data_len;
	t->events += sign * (int64_t)p->n;
	if (t->events == 0) {
		*pp = t->next;
		free(t);
	}
out:
	pthread_mutex_unlock(&st->tmem_lock);
}

/* With st->lock held: put @p at the tail. */
static void enqueue(struct evl_store *st, struct pend *p)
{
	/*
	 * The appends a delete follows need not reach the task's log: it goes
	 * before anyone can read them.  Not writing them is what lets a delete
	 * free a full disk whose appends could not be applied.
	 */
	for (struct pend *q = st->head; p->kind == REC_DELETE && q; q = q->next)
		if (q->kind == REC_APPEND && q->uid == p->uid)
			atomic_store_explicit(&q->dead, true, memory_order_relaxed);
	p->next = NULL;
	if (st->tail)
		st->tail->next = p;
	else
		st->head = p;
	st->tail = p;
	p->enq_ns = mono_ns();
	st->pending_bytes += p->len;
	if (p->kind == REC_APPEND)
		st->pending_events += p->n;
	st->enqueued_lsn = p->lsn;
	tmem_account(st, p, +1);
	/*
	 * The applier takes only durable records and on_durable() wakes it
	 * when they become so; wake it here only if the syncer already passed
	 * this record (a wakeup per append costs a context switch).
	 */
	if (p->lsn <= st->durable_lsn || p->kind != REC_APPEND)
		pthread_cond_signal(&st->applier_cv);
}

/* ---- applying ---- */

static int undo_delete(void *arg, uint64_t uid);
static int finish_switches(struct evl_store *st, void *arg);

static int apply_create(struct evl_store *st, struct index_txn *t, struct index_meta *m,
			const struct pend *p)
{
	struct index_task task = { 0 };
	char name[256];
	int rc;

	memcpy(name, p->name, p->name_len);
	name[p->name_len] = '\0';
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
	rc = tasklog_create(st->tl, p->uid, name);
	if (rc) {
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
	if (m->next_uid <= p->uid)
		m->next_uid = p->uid + 1;
	return 0;
}

static int apply_delete(struct evl_store *st, struct index_txn *t, struct index_meta *m,
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
	m->tasks--;
	m->events -= task.nevents - task.base_n;
	m->log_bytes -= task.log_len - task.base_len;
	return 0;
}

static int apply_append(struct evl_store *st, struct index_txn *t, struct index_meta *m,
			const struct pend *p)
{
	struct tasklog_rec stackrecs[32], *recs = stackrecs;
	struct index_task task;
	int rc;

	if (m->next_gseq < p->gseq + p->n)
		m->next_gseq = p->gseq + p->n;
	if (atomic_load_explicit(&p->dead, memory_order_relaxed))
		return 0;	/* its task's delete follows */
	rc = index_task_by_uid(t, p->uid, &task);
	if (rc == -ENOENT || (!rc && task.state != TASK_LIVE))
		return 0;	/* written to a task deleted meanwhile */
	if (rc)
		return rc;
	if (!index_dirty_has(t, p->uid)) {
		rc = index_dirty_add(t, p->uid, task.log_len, task.nevents);
		if (rc)
			return rc;
	}
	if (p->n > 32) {
		recs = malloc(p->n * sizeof(*recs));
		if (!recs)
			return -ENOMEM;
	}
	for (uint32_t i = 0; i < p->n; i++)
		recs[i] = (struct tasklog_rec){ p->gseq + i, p->time_ns, p->ev[i].len };
	rc = tasklog_write(st->tl, p->uid, task.name, task.log_len - task.base_len, p->data,
			   p->data_len, task.nevents - task.base_n, recs, p->n);
	if (recs != stackrecs)
		free(recs);
	if (rc) {
		evl_log(LOG_ERR, "cannot write task %s: %s", task.name, strerror(-rc));
		return rc;
	}
	for (uint32_t i = 0; i < p->n && !rc; i++)
		rc = index_add_event(t, p->uid, p->gseq + i, p->ev[i].type, p->ev[i].tlen,
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

/* Run @fn in one write transaction, growing the map and redoing it when full. */
static int write_txn(struct evl_store *st, int (*fn)(struct index_txn *t, void *arg), void *arg)
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
			rc = apply_create(b->st, t, &m, p);
			break;
		case REC_DELETE:
			rc = apply_delete(b->st, t, &m, p);
			b->purge = true;
			break;
		default:
			rc = apply_append(b->st, t, &m, p);
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
static int apply_batch(struct evl_store *st, struct pend *first, struct pend *last,
		       bool *purge)
{
	struct batch b = { st, first, last, false };
	int rc = write_txn(st, apply_batch_txn, &b);

	*purge |= b.purge;
	/*
	 * The index is as it was, but a delete in the batch may have moved its
	 * task to the trash already: put it back, or the retry could not
	 * write the task's appends before the delete (recovery does the same).
	 */
	if (rc && b.purge)
		tasklog_trash_list(st->tl, undo_delete, st);
	/*
	 * Committed: the deleted tasks' files are nobody's now.  Removing them
	 * at once, not after their index entries are purged, is what frees a
	 * full disk (the purge needs room in the index).  The purge retries
	 * what fails here.
	 */
	for (struct pend *p = first; !rc && b.purge; p = p->next) {
		if (p->kind == REC_DELETE)
			tasklog_purge(st->tl, p->uid);
		if (p == last)
			break;
	}
	return rc;
}

/* With st->lock held: drop the applied records from the head up to @last. */
static void dequeue(struct evl_store *st, struct pend *last)
{
	struct pend *p, *next = NULL;

	for (p = st->head; p; p = next) {
		next = p->next;
		st->pending_bytes -= p->len;
		if (p->kind == REC_APPEND)
			st->pending_events -= p->n;
		tmem_account(st, p, -1);
		st->applied_lsn = p->lsn;
		if (p == last)
			break;
		pend_free(p);
	}
	st->head = next;
	if (!next)
		st->tail = NULL;
	pend_free(last);
}

/* Apply the whole pending list now (open, close): no applier is running. */
static int apply_all(struct evl_store *st)
{
	bool purge = false;
	int rc;

	if (!st->head)
		return 0;
	rc = apply_batch(st, st->head, st->tail, &purge);
	if (rc)
		return rc;
	dequeue(st, st->tail);
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

static int purge_step(struct evl_store *st, bool *more)
{
	struct purge p = { 0, false };
	int rc = write_txn(st, purge_txn, &p);

	*more = p.more;
	if (!rc && p.done)
		rc = tasklog_purge(st->tl, p.done);
	return rc;
}

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
	rc = tasklog_sync(c->st->tl, uid, task.name);
	if (rc) {
		evl_log(LOG_ERR, "checkpoint: cannot sync task %s: %s", task.name, strerror(-rc));
		return rc;
	}
	return 0;
}

/* Record ckpt_lsn = applied_lsn (*@arg: the meta written) and clear the dirty set. */
static int ckpt_txn(struct index_txn *t, void *arg)
{
	struct index_meta *m = arg;
	int rc = index_get_meta(t, m);

	if (!rc) {
		m->ckpt_lsn = m->applied_lsn;
		rc = index_put_meta(t, m);
	}
	return rc ? rc : index_dirty_clear(t);
}

static int boot_txn(struct index_txn *t, void *arg)
{
	return index_put_boot(t, arg);
}

/*
 * I5: an fsync of a task file, a task directory or the index failed
 * (tasklog and index hooks: any thread, any locks held).  Writes are
 * refused from now on (the journal's sticky error), and no checkpoint
 * completes again.
 */
static void sync_failed(void *arg)
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
 * After sync_failed, on the applier or at close (no transaction open):
 * tell the next open not to trust the task files past their checkpoints
 * (I6), once.  0, or -EIO if an fsync failed.
 */
static int check_syncs(struct evl_store *st)
{
	int rc;

	if (!atomic_load(&st->sync_failed))
		return 0;
	if (atomic_exchange(&st->sync_recorded, true))
		return -EIO;
	rc = write_txn(st, boot_txn, "");
	if (!rc && !index_sync_failed(st->ix))
		rc = index_sync(st->ix);
	if (rc)
		evl_log(LOG_CRIT, "cannot record the failed fsync in the index (%s): after "
			"remounting, run evlogctl fsck", strerror(-rc));
	return -EIO;
}

/* The applier's checkpoint: everything durable is applied when called. */
static int do_checkpoint(struct evl_store *st, void *unused)
{
	struct sync_ctx c = { st, NULL, 0 };
	struct index_meta m;
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
		rc = write_txn(st, ckpt_txn, &m);
	if (!rc)
		rc = index_sync(st->ix);
	if (check_syncs(st))
		rc = -EIO;	/* the journal stays: the next open rewrites from it */
	if (!rc && !st->opt.read_only)
		rc = journal_trim(st->jn, m.ckpt_lsn);
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

/* Ask the applier for @job and wait until a run that started after now ends. */
static int ask_applier(struct evl_store *st, struct applier_job *job)
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

/* Shrink the index file, but only when most of a sizeable file is free. */
static int maybe_shrink(struct evl_store *st, void *unused)
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

/*
 * The applier: the only writer of task logs and index.  Order of work:
 * checkpoint and shrink requests first (rare, and someone waits for them),
 * then batches of durable records, with one bounded purge step after each
 * so that deletions progress under continuous appends too.
 */
static void *applier_main(void *arg)
{
	struct evl_store *st = arg;
	unsigned backoff_ms = 0;

	pthread_mutex_lock(&st->lock);
	for (;;) {
		bool work = st->head && st->head->lsn <= st->durable_lsn;
		uint64_t due = 0;

		if (serve_job(st, &st->ckpt) || serve_job(st, &st->shrink) ||
		    serve_job(st, &st->call))
			continue;

		/* hold_apply holds appends until someone waits for the applier */
		if (work && st->opt.hold_apply && !st->stop && !st->apply_waiters)
			work = false;
		/* let appends gather, unless someone waits for them */
		if (work && st->head->kind == REC_APPEND && !st->stop &&
		    st->pending_bytes < APPLY_BYTES && st->pending_bytes * 2 < st->opt.max_pending) {
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
			bool purge = false;
			int rc;

			while (last->next && last->next->lsn <= st->durable_lsn &&
			       bytes < BATCH_MAX_BYTES && recs < BATCH_MAX_RECS) {
				last = last->next;
				bytes += last->len;
				recs++;
			}
			pthread_mutex_unlock(&st->lock);
			rc = apply_batch(st, first, last, &purge);
			check_syncs(st);	/* e.g. a task's creation failed to sync */
			pthread_mutex_lock(&st->lock);
			if (rc) {
				if (rc != st->apply_err)
					evl_log(LOG_ERR, "applying the journal failed: %s; retrying",
						strerror(-rc));
				st->apply_err = rc;
				if (st->stop)
					break;	/* closing: the journal keeps the rest */
				backoff_ms = 100;
				continue;
			}
			if (st->apply_err)
				evl_log(LOG_NOTICE, "applying the journal works again");
			st->apply_err = 0;
			st->purge_more |= purge;
			dequeue(st, last);
			pthread_cond_broadcast(&st->applied_cv);
			if (!st->purge_more)
				continue;
			/* else one purge step before the next batch */
		}
		if (backoff_ms) {
			struct timespec ts;
			uint64_t at = mono_ns() + backoff_ms * 1000000ull;

			ts.tv_sec = at / 1000000000ull;
			ts.tv_nsec = at % 1000000000ull;
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

static void on_durable(void *arg, uint64_t lsn)
{
	struct evl_store *st = arg;

	pthread_mutex_lock(&st->lock);
	if (lsn > st->durable_lsn)
		st->durable_lsn = lsn;
	pthread_cond_signal(&st->applier_cv);
	pthread_mutex_unlock(&st->lock);
}

/* ---- retention: dropping a task's head (the state diagram is in compact.c) ---- */

struct trim_job {
	struct evl_store *st;
	struct index_trim tr;
	uint64_t base_len, base_n;	/* the task's, when the intent was made */
	struct tasklog_rw *rw;
	bool more;
};

/* The live task and its intent, as planned.  0, -ENOENT (deleted meanwhile) or -errno. */
static int trim_check(struct index_txn *t, const struct trim_job *j, struct index_task *task,
		      int phase)
{
	struct index_trim tr;
	int rc;

	rc = index_task_by_uid(t, j->tr.uid, task);
	if (!rc && task->state != TASK_LIVE)
		rc = -ENOENT;
	if (!rc)
		rc = index_trim_get(t, j->tr.uid, &tr);
	if (!rc && (tr.phase != phase || tr.cut_gseq != j->tr.cut_gseq ||
		    task->base_len != j->base_len))
		rc = -ENOENT;
	return rc;
}

static int trim_begin_txn(struct index_txn *t, void *arg)
{
	struct trim_job *j = arg;
	struct index_task task;
	struct index_trim tr;
	int rc;

	rc = index_task_by_uid(t, j->tr.uid, &task);
	if (!rc && (task.state != TASK_LIVE || task.base_len != j->base_len))
		rc = -ENOENT;
	if (!rc && index_trim_get(t, j->tr.uid, &tr) == 0)
		rc = -EBUSY;	/* planned twice: cannot happen, one compaction at a time */
	return rc ? rc : index_trim_put(t, &j->tr);
}

static int trim_begin(struct evl_store *st, void *arg)
{
	int rc = write_txn(st, trim_begin_txn, arg);

	if (!rc)
		io_mark("trim intent");
	return rc;
}

static int trim_step_txn(struct index_txn *t, void *arg)
{
	struct trim_job *j = arg;
	struct index_task task;
	int rc;

	rc = trim_check(t, j, &task, TRIM_DROPPING);
	return rc ? rc : index_trim_step(t, j->tr.uid, j->tr.cut_gseq, PURGE_BUDGET, &j->more);
}

/* One bounded step of removing the dropped events' index entries. */
static int trim_step(struct evl_store *st, void *arg)
{
	int rc = write_txn(st, trim_step_txn, arg);

	if (!rc) {
		pthread_mutex_lock(&st->lock);
		st->view_gen++;		/* views' remembered positions moved */
		pthread_mutex_unlock(&st->lock);
		io_mark("trim step");
	}
	return rc;
}

static int trim_done_txn(struct index_txn *t, void *arg)
{
	return index_trim_del(t, *(uint64_t *)arg);
}

/*
 * The switch, on the applier (or at open): copy what the old files gained
 * since, sync the new files, point the task at them in one transaction
 * that is synced before the renames, rename, sync the directories.
 */
static int trim_switch(struct evl_store *st, void *arg)
{
	struct trim_job *j = arg;
	struct index_task task;
	struct index_meta m;
	struct index_txn *t;
	int rc;

	/* the applier is the only writer: the lengths read here hold until the commit */
	rc = index_begin(st->ix, false, &t);
	if (rc)
		return rc;
	rc = trim_check(t, j, &task, TRIM_DROPPING);
	index_abort(t);
	if (!rc)
		rc = tasklog_rw_copy(j->rw, task.log_len - task.base_len,
				     task.nevents - task.base_n);
	if (!rc)
		rc = tasklog_rw_sync(j->rw);
	if (rc)
		return rc;

	/* lock order: swap_lock, then transactions (readers take it the same way) */
	pthread_rwlock_wrlock(&st->swap_lock);
	for (;;) {
		rc = index_begin(st->ix, true, &t);
		if (rc)
			break;
		rc = trim_check(t, j, &task, TRIM_DROPPING);
		if (!rc)
			rc = index_get_meta(t, &m);
		if (!rc) {
			m.events -= j->tr.cut_n - task.base_n;
			m.log_bytes -= j->tr.cut_len - task.base_len;
			task.base_len = j->tr.cut_len;
			task.base_n = j->tr.cut_n;
			j->tr.phase = TRIM_SWITCHED;
			rc = index_put_meta(t, &m);
		}
		if (!rc)
			rc = index_task_put(t, &task);
		/* the files hold everything applied: a repair replays only what follows */
		if (!rc)
			rc = index_dirty_set(t, task.uid, task.log_len, task.nevents, m.next_gseq);
		if (!rc)
			rc = index_trim_put(t, &j->tr);
		if (!rc)
			rc = index_commit(t);
		else
			index_abort(t);
		if (rc) {
			j->tr.phase = TRIM_DROPPING;
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
	tasklog_rw_keep(j->rw);
	io_mark("trim switch");
	rc = index_sync(st->ix);
	if (!rc) {
		io_mark("trim switch synced");
		rc = tasklog_rw_install(j->rw);
	}
	if (rc && st->nbroken < sizeof(st->broken) / sizeof(*st->broken))
		st->broken[st->nbroken++] = task.uid;
	pthread_mutex_lock(&st->lock);
	st->view_gen++;
	pthread_mutex_unlock(&st->lock);
	pthread_rwlock_unlock(&st->swap_lock);
	if (!rc)
		rc = tasklog_rw_finish(st->tl, task.uid, task.name);
	if (rc) {
		evl_log(LOG_CRIT, "task %s: log rewrite switched in the index but not on disk (%s); "
			"retrying (reads of it fail with EIO meanwhile)", task.name, strerror(-rc));
		pthread_mutex_lock(&st->lock);
		st->switch_unfinished = true;
		pthread_mutex_unlock(&st->lock);
		return rc;
	}
	io_mark("trim renamed");
	return write_txn(st, trim_done_txn, &j->tr.uid);
}

/* With swap_lock held: is @uid's rewrite switched in the index but its files not renamed? */
static bool switch_broken(const struct evl_store *st, uint64_t uid)
{
	for (unsigned i = 0; i < st->nbroken; i++)
		if (st->broken[i] == uid)
			return true;
	return false;
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
static int trim_run(struct evl_store *st, struct trim_job *j, const char *name)
{
	struct index_txn *t;
	struct index_task task;
	int rc;

	do
		rc = on_applier(st, trim_step, j);
	while (!rc && j->more);
	if (rc)
		return rc;
	rc = tasklog_rw_open(st->tl, j->tr.uid, name, j->tr.cut_len - j->base_len,
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
		rc = tasklog_rw_copy(j->rw, task.log_len - task.base_len,
				     task.nevents - task.base_n);
	if (!rc)
		rc = on_applier(st, trim_switch, j);
	tasklog_rw_free(j->rw);
	j->rw = NULL;
	return rc;
}

/*
 * Choose the cut: the first event kept is the first one that is among the
 * newest @keep_last (0: any) and committed at or after @min_ns (0: any).
 * Reads the sidecar from the head.  *@k = events dropped (0: none).
 */
static int trim_plan(struct evl_store *st, const struct index_task *task, uint64_t keep_last,
		     uint64_t min_ns, struct trim_job *j, uint64_t *k)
{
	uint64_t n = task->nevents - task->base_n, i = 0, bytes = 0, gseq = 0;
	struct tasklog_rec recs[1024];

	*k = 0;
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
	j->tr = (struct index_trim){ .uid = task->uid, .phase = TRIM_DROPPING, .cut_gseq = gseq,
				     .cut_len = task->base_len + bytes, .cut_n = task->base_n + i };
	j->base_len = task->base_len;
	j->base_n = task->base_n;
	return 0;
}

int store_retain(struct evl_store *st, uint64_t uid, uint64_t keep_last, uint64_t min_ns,
		 uint64_t *events, uint64_t *bytes)
{
	struct trim_job j = { .st = st };
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
	if (!rc && index_trim_get(t, uid, &j.tr) == 0) {
		/* a run cut short by an error: finish it first */
		j.base_len = task.base_len;
		j.base_n = task.base_n;
		rc = j.tr.phase == TRIM_DROPPING ? 0 : -EIO;
		index_abort(t);
		if (!rc)
			rc = trim_run(st, &j, task.name);
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
	if (!rc)
		rc = trim_plan(st, &task, keep_last, min_ns, &j, &k);
	if (rc || !k)
		return rc == -ENOENT ? 0 : rc;
	rc = on_applier(st, trim_begin, &j);
	if (!rc)
		rc = trim_run(st, &j, task.name);
	if (rc == -ENOENT)
		return 0;	/* deleted meanwhile */
	if (!rc) {
		*events = j.tr.cut_n - j.base_n;
		*bytes = j.tr.cut_len - j.base_len;
		evl_log(LOG_INFO, "task %s: dropped its oldest %" PRIu64 " events (%" PRIu64
			" bytes)", task.name, *events, *bytes);
	}
	return rc;
}

/*
 * A rewrite switched in the index but not (known to be) on disk: redo its
 * renames, make the task readable again, drop the intent.  At open (after
 * a crash) and while running (after a failed rename or directory sync).
 */
static int finish_switch(const struct index_trim *tr, void *arg)
{
	struct evl_store *st = arg;
	struct index_task task;
	int rc;

	if (tr->phase != TRIM_SWITCHED)
		return 0;
	rc = live_task(st, tr->uid, &task);
	if (!rc) {
		evl_log(LOG_NOTICE, "task %s: finishing its log rewrite", task.name);
		pthread_rwlock_wrlock(&st->swap_lock);
		rc = tasklog_rw_finish(st->tl, tr->uid, task.name);
		for (unsigned i = 0; !rc && i < st->nbroken; i++)
			if (st->broken[i] == tr->uid)
				st->broken[i--] = st->broken[--st->nbroken];
		pthread_mutex_lock(&st->lock);
		st->view_gen++;
		pthread_mutex_unlock(&st->lock);
		pthread_rwlock_unlock(&st->swap_lock);
	}
	if (rc && rc != -ENOENT)
		return rc;
	return write_txn(st, trim_done_txn, (void *)&tr->uid);
}

struct trim_list {
	struct index_trim *v;
	size_t n, cap;		/* cap in bytes (grow) */
};

static int trim_collect(void *arg, const struct index_trim *tr)
{
	struct trim_list *l = arg;

	if (store_grow(&l->v, &l->cap, (l->n + 1) * sizeof(*l->v)))
		return -ENOMEM;
	l->v[l->n++] = *tr;
	return 0;
}

static int trim_list_all(struct evl_store *st, struct trim_list *l)
{
	struct index_txn *t;
	int rc = index_begin(st->ix, false, &t);

	if (rc)
		return rc;
	rc = index_trim_list(t, trim_collect, l);
	index_abort(t);
	return rc;
}

/* finish_switch() every rewrite the index has.  0 or -errno. */
static int finish_all_switches(struct evl_store *st)
{
	struct trim_list l = { 0 };
	int rc = trim_list_all(st, &l);

	for (size_t i = 0; i < l.n && !rc; i++)
		rc = finish_switch(&l.v[i], st);
	free(l.v);
	return rc;
}

/*
 * On the applier: finish the rewrites a failed rename or directory sync
 * left switched in the index only (as the next open would).  0 or -errno.
 */
static int finish_switches(struct evl_store *st, void *arg)
{
	int rc = finish_all_switches(st);

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
static int trim_recover_files(struct evl_store *st)
{
	int rc = finish_all_switches(st);

	return rc ? rc : tasklog_rw_clean(st->tl);
}

/* At open, once the journal is applied: carry out the intents a crash cut short. */
static int trim_recover_dropping(struct evl_store *st)
{
	struct trim_list l = { 0 };
	int rc = trim_list_all(st, &l);

	for (size_t i = 0; i < l.n && !rc; i++) {
		struct trim_job j = { .st = st, .tr = l.v[i] };
		struct index_task task;

		rc = live_task(st, j.tr.uid, &task);
		if (rc == -ENOENT) {
			rc = write_txn(st, trim_done_txn, &j.tr.uid);
			continue;
		}
		if (rc)
			break;
		evl_log(LOG_NOTICE, "recovery: task %s: finishing the retention of its first %"
			PRIu64 " events", task.name, j.tr.cut_n - task.base_n);
		j.base_len = task.base_len;
		j.base_n = task.base_n;
		rc = trim_run(st, &j, task.name);
	}
	free(l.v);
	return rc;
}

/* ---- open, recovery, close ---- */

int store_lock(const char *dir, const char *holder, int *fdp)
{
	char path[4200], buf[512];
	int fd, n, err;

	snprintf(path, sizeof(path), "%s/lock", dir);
	fd = io->open(path, O_RDWR | O_CREAT, 0644);
	if (fd < 0)
		return -errno;
	if (io->flock(fd, LOCK_EX | LOCK_NB)) {
		err = errno;
		io->close(fd);
		/* EBUSY: the caller names the holder (evl_store_holder) */
		return err == EWOULDBLOCK ? -EBUSY : -err;
	}
	n = snprintf(buf, sizeof(buf), "%ld %s\n", (long)getpid(), holder ? holder : "");
	/* a short write is retried, and one that cannot go on is an error (ENOSPC) */
	if (io->ftruncate(fd, 0) || io_pwrite_all(fd, buf, n, 0)) {
		err = errno;
		io->close(fd);
		return -err;
	}
	*fdp = fd;
	return 0;
}

struct repair {
	uint64_t uid;
	char name[256];
	uint64_t pos, idx;		/* where the next rewritten event goes (in the files) */
	uint64_t want_len, want_n;	/* what the index says */
	uint64_t gseq_from;		/* records below are in the files (a log rewrite) */
};

struct recover {
	struct evl_store *st;
	struct event_validator *val;	/* replayed events are checked again */
	bool trusted;			/* I6: files written under the running boot */
	uint64_t applied;
	struct repair *rep;
	size_t nrep, cap;
	int rc;
};

static int dirty_cb(void *arg, uint64_t uid, uint64_t ck_len, uint64_t ck_n,
		    uint64_t gseq_from)
{
	struct recover *r = arg;
	struct evl_store *st = r->st;
	struct index_task task;
	uint64_t len, n;
	bool missing, trust;
	int rc;

	rc = live_task(st, uid, &task);
	if (rc)
		return rc == -ENOENT ? 0 : rc;
	if (ck_len < task.base_len || ck_n < task.base_n) {
		evl_log(LOG_ERR, "recovery: task %s: checkpoint length %" PRIu64 " before its "
			"retained head %" PRIu64, task.name, ck_len, task.base_len);
		return -EIO;
	}
	/* from here on, lengths in the files */
	ck_len -= task.base_len;
	ck_n -= task.base_n;
	task.log_len -= task.base_len;
	task.nevents -= task.base_n;
	rc = tasklog_sizes(st->tl, task.name, &len, &n);
	missing = rc == -ENOENT;
	if (missing)
		len = n = 0;
	else if (rc)
		return rc;
	/* I6, or all its bytes are from the last checkpoint or before (synced then) */
	trust = r->trusted || (task.log_len == ck_len && task.nevents == ck_n);
	if (trust && len >= task.log_len && n >= task.nevents) {
		if (len == task.log_len && n == task.nevents)
			return 0;
		evl_log(LOG_INFO, "recovery: task %s: cutting %" PRIu64 " unapplied bytes",
			task.name, len - task.log_len);
		return tasklog_truncate(st->tl, uid, task.name, task.log_len, task.nevents);
	}
	/* power loss took log bytes the index covers: rewrite them from the journal */
	if (len < ck_len || n < ck_n) {
		evl_log(LOG_ERR, "recovery: task %s: log shorter than at the last checkpoint "
			"(%" PRIu64 " < %" PRIu64 " bytes); the disk lost synced data",
			task.name, len, ck_len);
		return -EIO;
	}
	if (!r->trusted)
		evl_log(LOG_INFO, "recovery: task %s: rewriting its last %" PRIu64 " bytes from "
			"the journal (written before a reboot or a failed fsync)", task.name,
			task.log_len - ck_len);
	else
		evl_log(LOG_WARNING, "recovery: task %s: %" PRIu64 " bytes lost by the disk, "
			"rewriting them from the journal", task.name, task.log_len - len);
	/* created since the last checkpoint, and its entries lost with a failed fsync */
	if (missing && (rc = tasklog_create(st->tl, uid, task.name)))
		return rc;
	rc = tasklog_truncate(st->tl, uid, task.name, ck_len, ck_n);
	if (rc)
		return rc;
	if (r->nrep == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 8;
		struct repair *p = realloc(r->rep, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		r->rep = p;
		r->cap = cap;
	}
	r->rep[r->nrep++] = (struct repair){ .uid = uid, .pos = ck_len, .idx = ck_n,
					     .want_len = task.log_len, .want_n = task.nevents,
					     .gseq_from = gseq_from };
	memcpy(r->rep[r->nrep - 1].name, task.name, task.name_len + 1);
	return 0;
}

static int rewrite(struct evl_store *st, struct repair *rp, const struct pend *p)
{
	struct tasklog_rec *recs = malloc(p->n * sizeof(*recs));
	int rc;

	if (!recs)
		return -ENOMEM;
	for (uint32_t i = 0; i < p->n; i++)
		recs[i] = (struct tasklog_rec){ p->gseq + i, p->time_ns, p->ev[i].len };
	rc = tasklog_write(st->tl, rp->uid, rp->name, rp->pos, p->data, p->data_len,
			   rp->idx, recs, p->n);
	free(recs);
	rp->pos += p->data_len;
	rp->idx += p->n;
	return rc;
}

/*
 * Check the events of replayed append @p as a writer's were: its checksum
 * proves only that the bytes are what was written, and what was written is
 * applied without a second look.  0 or -EIO (logged).
 */
static int replay_check(struct recover *r, const struct pend *p)
{
	char type[EVENT_TYPE_MAX + 1];
	size_t tlen;

	for (uint32_t i = 0; p->kind == REC_APPEND && i < p->n; i++) {
		const struct pend_ev *e = &p->ev[i];
		struct event_error err = { 0 };

		if (event_validate(r->val, p->data + e->off, e->len - 1, type, &tlen, &err) ||
		    tlen != e->tlen || memcmp(type, e->type, tlen)) {
			evl_log(LOG_ERR, "journal record %" PRIu64 ": event %u is not what its "
				"writer validated (%s); run evlogctl reindex", p->lsn, i,
				err.err ? err.reason : "its type differs");
			return -EIO;
		}
	}
	return 0;
}

static int replay_cb(void *arg, uint64_t lsn, unsigned kind, const void *payload, size_t len)
{
	struct recover *r = arg;
	struct evl_store *st = r->st;
	unsigned char *copy = malloc(len ? len : 1);
	struct pend *p;
	int rc = 0;

	if (!copy)
		return -ENOMEM;
	if (len)
		memcpy(copy, payload, len);	/* an empty record has no buffer */
	p = pend_parse(kind, copy, len);
	if (!p) {
		evl_log(LOG_ERR, "journal record %" PRIu64 " is malformed (kind %u, %zu bytes)",
			lsn, kind, len);
		return -EIO;
	}
	p->lsn = lsn;
	if (lsn <= r->applied) {
		/* applied before: used only to rewrite what the disk lost */
		for (size_t i = 0; i < r->nrep && kind == REC_APPEND && !rc; i++)
			if (r->rep[i].uid == p->uid && p->gseq >= r->rep[i].gseq_from)
				rc = replay_check(r, p) ?: rewrite(st, &r->rep[i], p);
		pend_free(p);
		return rc;
	}
	rc = replay_check(r, p);
	if (rc) {
		pend_free(p);
		return rc;
	}
	if (kind == REC_APPEND && st->next_gseq < p->gseq + p->n)
		st->next_gseq = p->gseq + p->n;
	if (kind == REC_CREATE && st->next_uid <= p->uid)
		st->next_uid = p->uid + 1;
	enqueue(st, p);
	if (st->pending_bytes > st->opt.max_pending)
		rc = apply_all(st);
	return rc;
}

/*
 * A trash directory of a task the index still has live: the batch that
 * applied its delete (rename first, index commit after) was lost in a
 * crash.  Put the directory back; the journal replays the delete.  The
 * trash of a task whose delete is committed is nobody's: removed (a purge
 * a crash cut short, or unlinks a power loss undid).
 */
static int undo_delete(void *arg, uint64_t uid)
{
	struct evl_store *st = arg;
	struct index_task task;
	int rc;

	rc = live_task(st, uid, &task);
	if (rc == -ENOENT && tasklog_purge(st->tl, uid))
		evl_log(LOG_WARNING, "cannot remove the files of deleted task %016" PRIx64
			": they stay in the trash until the next open", uid);
	if (rc)
		return rc == -ENOENT ? 0 : rc;
	evl_log(LOG_INFO, "task %s: its delete was not committed; it is redone", task.name);
	return tasklog_unremove(st->tl, uid, task.name);
}

static int store_recover(struct evl_store *st)
{
	struct recover r = { .st = st };
	struct journal_opts jo = {
		.sync_mode = st->opt.commit_sync,
		.commit_ms = st->opt.commit_ms,
		.segment_bytes = st->opt.segment_bytes,
		.on_durable = on_durable,
		.arg = st,
	};
	struct index_txn *t;
	struct index_meta m;
	char path[4200], boot[64], now[64];
	int rc;

	/* deletes and log rewrites first: the repair below expects the files the index names */
	rc = tasklog_trash_list(st->tl, undo_delete, st);
	if (!rc)
		rc = trim_recover_files(st);
	if (rc)
		return rc;
	if (io->boot_id(now, sizeof(now)))
		now[0] = '\0';	/* unknown: trust nothing past a checkpoint */
	rc = index_begin(st->ix, false, &t);
	if (rc)
		return rc;
	rc = index_get_meta(t, &m);
	if (!rc)
		rc = index_get_boot(t, boot, sizeof(boot));
	r.trusted = !rc && now[0] && !strcmp(boot, now);
	if (!rc)
		rc = index_dirty_list(t, dirty_cb, &r);
	index_abort(t);
	if (rc)
		goto out;
	r.applied = m.applied_lsn;
	st->next_gseq = m.next_gseq;
	st->next_uid = m.next_uid;
	st->applied_lsn = m.applied_lsn;
	jo.min_lsn = m.applied_lsn;

	/* any size: the limit in force may be lower than the one they were written under */
	rc = event_validator_new(st->opt.type_field, (size_t)1 << 30, &r.val);
	if (rc)
		goto out;
	snprintf(path, sizeof(path), "%s/journal", st->dir);
	rc = journal_open(path, r.nrep ? m.ckpt_lsn : m.applied_lsn, &jo, replay_cb, &r, &st->jn);
	if (rc)
		goto out;
	for (size_t i = 0; i < r.nrep; i++) {
		struct repair *rp = &r.rep[i];

		if (rp->pos != rp->want_len || rp->idx != rp->want_n) {
			evl_log(LOG_ERR, "recovery: task %s: the journal does not hold what the "
				"index covers (%" PRIu64 " of %" PRIu64 " bytes); run evlogctl reindex",
				rp->name, rp->pos, rp->want_len);
			rc = -EIO;
			goto out;
		}
		rc = tasklog_sync(st->tl, rp->uid, rp->name);
		if (rc)
			goto out;
	}
	{
		struct journal_stats js;

		journal_get_stats(st->jn, &js);
		st->durable_lsn = js.durable_lsn;
	}
	rc = apply_all(st);
	if (!rc)
		rc = trim_recover_dropping(st);
	/* I6: what this boot writes from now on is trusted by a reopen in it */
	if (!rc && !r.trusted && now[0])
		rc = write_txn(st, boot_txn, now);
	if (rc)
		goto out;
	/* a deletion whose purge was cut short goes on in the background */
	st->purge_more = true;
out:
	event_validator_free(r.val);
	free(r.rep);
	return rc;
}

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

struct compactor *store_compactor(struct evl_store *st)
{
	return st->cp;
}

int store_shrink_index(struct evl_store *st)
{
	return ask_applier(st, &st->shrink);
}

void store_wait_purged(struct evl_store *st, void (*progress)(void *arg, uint64_t left),
		       void *arg)
{
	for (;;) {
		uint64_t left = index_purge_count(st->ix), at;
		struct timespec ts;

		progress(arg, left);
		pthread_mutex_lock(&st->lock);
		if (!left && !st->purge_more) {
			pthread_mutex_unlock(&st->lock);
			return;
		}
		/* purge steps signal nobody: look again shortly */
		st->purge_more = true;
		pthread_cond_signal(&st->applier_cv);
		at = mono_ns() + 20000000ull;
		ts.tv_sec = at / 1000000000ull;
		ts.tv_nsec = at % 1000000000ull;
		pthread_cond_timedwait(&st->applied_cv, &st->lock, &ts);
		pthread_mutex_unlock(&st->lock);
	}
}

int evl_task_check_name(const char *name, size_t len)
{
	if (len > 255)
		return -ENAMETOOLONG;
	if (len && name[0] == '.')
		return -EINVAL;
	return event_check_name(name, len);
}

/*
 * Task logs need up to two descriptors each in the cache: raise the soft
 * RLIMIT_NOFILE toward @want (never above the hard limit).
 */
static void raise_fd_limit(rlim_t want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		evl_log(LOG_WARNING, "cannot raise the open file limit to %llu: %s",
			(unsigned long long)want, strerror(errno));
}

/* Release what open made; the applier is stopped.  Returns journal_close's result. */
static int store_free(struct evl_store *st)
{
	int rc;

	compactor_free(st->cp);		/* no-op when closing: already joined */
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
	if (st->lock_fd >= 0) {
		/* an empty lock file says nobody holds the store */
		if (io->ftruncate(st->lock_fd, 0) && !rc)
			rc = -errno;
		io->close(st->lock_fd);
	}
	pthread_mutex_destroy(&st->meta_lock);
	pthread_mutex_destroy(&st->append_lock);
	pthread_mutex_destroy(&st->lock);
	pthread_mutex_destroy(&st->tmem_lock);
	pthread_cond_destroy(&st->applier_cv);
	pthread_cond_destroy(&st->applied_cv);
	pthread_rwlock_destroy(&st->swap_lock);
	free(st->type_field);
	free(st->dir);
	free(st);
	return rc;
}

int evl_store_open(const char *dir, const struct evl_options *opts, struct evl_store **out)
{
	struct evl_store *st;
	struct event_validator *v;
	char path[4200];
	int rc;

	if (!opts->type_field || opts->max_event < 2 || opts->commit_ms == 0 ||
	    opts->max_pending == 0)
		return -EINVAL;
	rc = event_validator_new(opts->type_field, opts->max_event, &v);
	if (rc)
		return rc;
	event_validator_free(v);
	if (strlen(dir) > 3800)
		return -ENAMETOOLONG;

	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->lock_fd = -1;
	st->opt = *opts;
	pthread_mutex_init(&st->meta_lock, NULL);
	pthread_mutex_init(&st->append_lock, NULL);
	pthread_mutex_init(&st->lock, NULL);
	pthread_mutex_init(&st->tmem_lock, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&st->applier_cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	pthread_cond_init(&st->applied_cv, NULL);
	{
		pthread_rwlockattr_t a;

		pthread_rwlockattr_init(&a);
		pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
		pthread_rwlock_init(&st->swap_lock, &a);
		pthread_rwlockattr_destroy(&a);
	}
	st->ckpt.run = do_checkpoint;
	st->shrink.run = maybe_shrink;
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
	rc = store_lock(dir, st->opt.holder, &st->lock_fd);
	st->opt.holder = NULL;	/* the caller's string: not kept */
	if (rc == -EBUSY && evl_store_holder(dir, path, sizeof(path)) == 1)
		evl_log(LOG_ERR, "store %s is in use by %s", dir, path);
	if (rc)
		goto fail;
	raise_fd_limit(2 * (rlim_t)st->opt.max_fds + 256);
	snprintf(path, sizeof(path), "%s/tasks", dir);
	rc = tasklog_open(path, opts->max_fds, &st->tl);
	if (rc)
		goto fail;
	tasklog_on_sync_failed(st->tl, sync_failed, st);
	snprintf(path, sizeof(path), "%s/index", dir);
	rc = index_open(path, opts->type_field, &st->ix);
	if (rc)
		goto fail;
	index_on_sync_failed(st->ix, sync_failed, st);
	rc = store_recover(st);
	if (!rc && atomic_load(&st->sync_failed))
		rc = -EIO;	/* the repair's syncs report their own failures; this is a net */
	if (!rc) {
		store_reserve(st);
		rc = compactor_new(st, &st->cp);
	}
	if (rc)
		goto fail;
	rc = -pthread_create(&st->applier, NULL, applier_main, st);
	if (rc)
		goto fail;
	st->applier_running = true;
	*out = st;
	return 0;
fail:
	evl_log(LOG_ERR, "cannot open store %s: %s", dir, strerror(-rc));
	store_free(st);
	return rc;
}

/* Wait until the applier has applied everything up to @lsn. */
static int wait_applied(struct evl_store *st, uint64_t lsn)
{
	int rc;

	rc = journal_wait(st->jn, lsn);
	if (rc)
		return rc;
	pthread_mutex_lock(&st->lock);
	st->apply_waiters++;
	pthread_cond_signal(&st->applier_cv);
	while (st->applied_lsn < lsn)
		pthread_cond_wait(&st->applied_cv, &st->lock);
	st->apply_waiters--;
	pthread_mutex_unlock(&st->lock);
	return 0;
}

int evl_store_checkpoint(struct evl_store *st)
{
	uint64_t lsn;
	int rc;

	if (st->opt.read_only)
		return -EROFS;
	pthread_mutex_lock(&st->lock);
	lsn = st->enqueued_lsn;
	pthread_mutex_unlock(&st->lock);
	rc = wait_applied(st, lsn);
	if (rc)
		return rc;
	return ask_applier(st, &st->ckpt);
}

int evl_store_sync(struct evl_store *st)
{
	return journal_barrier(st->jn);
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
	st->apply_waiters++;
	pthread_cond_signal(&st->applier_cv);
	while (st->applied_lsn < lsn) {
		uint64_t now = mono_ns();
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);	/* applied_cv's clock */
		ts.tv_nsec += 100 * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}

		if (!st->apply_err)
			failing_since = 0;
		else if (!failing_since)
			failing_since = now;
		else if (now - failing_since > CLOSE_GIVE_UP_MS * 1000000ull)
			break;
		pthread_cond_timedwait(&st->applied_cv, &st->lock, &ts);
	}
	st->apply_waiters--;
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
	compactor_free(st->cp);		/* waits for a running compaction */
	st->cp = NULL;
	if (!st->opt.read_only) {
		struct journal_stats js;

		journal_get_stats(st->jn, &js);
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
	rc2 = store_free(st);
	return rc ? rc : rc2;
}

/* ---- tasks ---- */

static void fill_info(struct evl_store *st, const struct index_task *t, struct evl_task_info *o)
{
	struct tmem *tm;

	o->uid = t->uid;
	o->size = t->log_len - t->base_len;
	o->events = t->nevents - t->base_n;
	o->created_ns = t->created_ns;
	o->last_ns = t->last_ns;
	o->has_owner = t->has_owner;
	o->owner_uid = t->owner_uid;
	o->owner_gid = t->owner_gid;
	o->mode = t->mode;
	memcpy(o->name, t->name, t->name_len + 1);
	pthread_mutex_lock(&st->tmem_lock);
	tm = *tmem_slot(st, t->uid);
	if (tm) {
		o->size += tm->bytes;
		o->events += tm->events;
	}
	pthread_mutex_unlock(&st->tmem_lock);
}

/*
 * Begin a read transaction consistent with the pending list: with st->lock
 * held, the applier cannot drop records the transaction does not cover.
 * Returns with st->lock held on success.
 */
static int begin_read(struct evl_store *st, struct index_txn **t)
{
	int rc;

	pthread_mutex_lock(&st->lock);
	rc = index_begin(st->ix, false, t);
	if (rc)
		pthread_mutex_unlock(&st->lock);
	return rc;
}

int evl_task_lookup(struct evl_store *st, const char *name, struct evl_task_info *out)
{
	struct index_txn *t;
	struct index_task task;
	int rc;

	rc = begin_read(st, &t);
	if (rc)
		return rc;
	rc = index_task_by_name(t, name, strlen(name), &task);
	if (!rc && task.state != TASK_LIVE)
		rc = -ENOENT;
	if (!rc)
		fill_info(st, &task, out);
	pthread_mutex_unlock(&st->lock);
	index_abort(t);
	return rc;
}

int evl_task_stat(struct evl_store *st, uint64_t uid, struct evl_task_info *out)
{
	struct index_txn *t;
	struct index_task task;
	int rc;

	rc = begin_read(st, &t);
	if (rc)
		return rc;
	rc = index_task_by_uid(t, uid, &task);
	if (!rc && task.state != TASK_LIVE)
		rc = -ENOENT;
	if (!rc)
		fill_info(st, &task, out);
	pthread_mutex_unlock(&st->lock);
	index_abort(t);
	return rc;
}

struct list_ctx {
	struct evl_store *st;
	int (*cb)(void *arg, const struct evl_task_info *task);
	void *arg;
};

static int list_cb(void *arg, const struct index_task *task)
{
	struct list_ctx *c = arg;
	struct evl_task_info info;

	fill_info(c->st, task, &info);	/* tmem_lock only: a transaction is open */
	return c->cb(c->arg, &info);
}

int evl_task_list(struct evl_store *st, const char *after,
		  int (*cb)(void *arg, const struct evl_task_info *task), void *arg)
{
	struct list_ctx c = { st, cb, arg };
	struct index_txn *t;
	int rc;

	rc = index_begin(st->ix, false, &t);
	if (rc)
		return rc;
	rc = index_task_list(t, after, after ? strlen(after) : 0, list_cb, &c);
	index_abort(t);
	return rc;
}

/* Submit a create or delete record and wait until it is applied. */
/*
 * DATA_DIR/reserve: space held back so that a task can still be deleted on
 * a full disk (its journal record needs room).  Made at open and after
 * each compaction, best effort; given up by the first delete that meets
 * ENOSPC.
 */
#define RESERVE_BYTES (256u << 10)

void store_reserve(struct evl_store *st)
{
	char path[4200];
	int fd, err;

	if (st->opt.read_only)
		return;
	snprintf(path, sizeof(path), "%s/reserve", st->dir);
	fd = io->open(path, O_WRONLY | O_CREAT, 0600);
	if (fd < 0)
		return;
	err = io->fallocate(fd, 0, RESERVE_BYTES);
	io->close(fd);
	if (err)
		io->unlink(path);	/* no room for it now: the next try */
}

static bool release_reserve(struct evl_store *st)
{
	char path[4200];

	snprintf(path, sizeof(path), "%s/reserve", st->dir);
	if (io->unlink(path))
		return false;
	evl_log(LOG_WARNING, "disk full: the reserve of %u KiB is given up so that a task "
		"can be deleted; a compaction after the delete makes it again",
		RESERVE_BYTES >> 10);
	return true;
}

static int submit_meta(struct evl_store *st, unsigned kind, unsigned char *buf, size_t len)
{
	struct iovec iov = { buf, len };
	struct pend *p;
	uint64_t lsn;
	int rc;

	p = pend_parse(kind, buf, len);
	if (!p)
		return -ENOMEM;
	pthread_mutex_lock(&st->append_lock);
	rc = journal_append(st->jn, kind, &iov, 1, &lsn);
	if (rc == -ENOSPC && kind == REC_DELETE && release_reserve(st))
		rc = journal_append(st->jn, kind, &iov, 1, &lsn);
	if (!rc) {
		p->lsn = lsn;
		pthread_mutex_lock(&st->lock);
		enqueue(st, p);
		if (kind == REC_DELETE) {
			st->delete_gen++;
			st->view_gen++;
		}
		pthread_mutex_unlock(&st->lock);
	}
	pthread_mutex_unlock(&st->append_lock);
	if (rc) {
		pend_free(p);
		return rc;
	}
	return wait_applied(st, lsn);
}

int evl_task_create(struct evl_store *st, const char *name)
{
	return evl_task_create_as(st, name, NULL);
}

int evl_task_create_as(struct evl_store *st, const char *name, const struct evl_owner *owner)
{
	size_t len = strlen(name);
	struct evl_task_info info;
	unsigned char *buf;
	uint64_t uid;
	int rc;

	rc = evl_task_check_name(name, len);
	if (rc)
		return rc;
	if (st->opt.read_only)
		return -EROFS;
	pthread_mutex_lock(&st->meta_lock);
	rc = evl_task_lookup(st, name, &info);
	if (rc != -ENOENT) {
		rc = rc ? rc : -EEXIST;
		goto out;
	}
	buf = malloc(18 + len + 12);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	pthread_mutex_lock(&st->lock);
	uid = st->next_uid++;
	pthread_mutex_unlock(&st->lock);
	w64(buf, uid);
	w64(buf + 8, wall_ns());
	w16(buf + 16, len);
	memcpy(buf + 18, name, len);
	if (owner) {
		w32(buf + 18 + len, owner->uid);
		w32(buf + 22 + len, owner->gid);
		w32(buf + 26 + len, owner->mode & 07777);
	}
	rc = submit_meta(st, REC_CREATE, buf, 18 + len + (owner ? 12 : 0));
	if (!rc)
		evl_log(LOG_DEBUG, "task %s created", name);
out:
	pthread_mutex_unlock(&st->meta_lock);
	return rc;
}

int evl_task_delete(struct evl_store *st, const char *name)
{
	struct evl_task_info info;
	unsigned char *buf;
	int rc;

	if (st->opt.read_only)
		return -EROFS;
	if (st->opt.nodelete)
		return -EPERM;
	pthread_mutex_lock(&st->meta_lock);
	rc = evl_task_lookup(st, name, &info);
	if (rc)
		goto out;
	buf = malloc(16);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	w64(buf, info.uid);
	w64(buf + 8, wall_ns());
	rc = submit_meta(st, REC_DELETE, buf, 16);
	if (!rc)
		evl_log(LOG_INFO, "task %s deleted", name);
out:
	pthread_mutex_unlock(&st->meta_lock);
	return rc;
}

/*
 * Call @fn for each pending event past @applied_lsn (the snapshot's) of task
 * @uid (0: every task) whose type starts with @prefix (@plen 0: any), in
 * commit order, until it returns non-zero (that value is returned).  With
 * st->lock held.
 */
static int each_pending(struct evl_store *st, uint64_t applied_lsn, uint64_t uid,
			const char *prefix, size_t plen,
			int (*fn)(void *arg, const struct pend *p, const struct pend_ev *e),
			void *arg)
{
	for (struct pend *p = st->head; p; p = p->next) {
		if (p->kind != REC_APPEND || p->lsn <= applied_lsn || (uid && p->uid != uid))
			continue;
		for (uint32_t i = 0; i < p->n; i++) {
			const struct pend_ev *e = &p->ev[i];
			int rc;

			if (e->tlen < plen || memcmp(e->type, prefix, plen))
				continue;
			rc = fn(arg, p, e);
			if (rc)
				return rc;
		}
	}
	return 0;
}

struct copy_ctx {
	uint64_t pos, off;	/* the next pending byte's offset; the read's */
	char *buf;
	size_t len;
};

static int copy_one(void *arg, const struct pend *p, const struct pend_ev *e)
{
	struct copy_ctx *c = arg;
	uint64_t lo = c->pos > c->off ? c->pos : c->off;
	uint64_t hi = c->pos + e->len < c->off + c->len ? c->pos + e->len : c->off + c->len;

	if (lo < hi)
		memcpy(c->buf + (lo - c->off), p->data + e->off + (lo - c->pos), hi - lo);
	c->pos += e->len;
	return 0;
}

/*
 * Copy the part of [@off, @off + @len) that falls in the pending events of
 * task @uid (or of view @prefix / @uid), whose first byte is at @base.  With
 * st->lock held.  Returns the pending part's size.
 */
static uint64_t copy_pending(struct evl_store *st, uint64_t applied_lsn, uint64_t uid,
			     const char *prefix, size_t plen, uint64_t base,
			     uint64_t off, char *buf, size_t len)
{
	struct copy_ctx c = { base, off, buf, len };

	each_pending(st, applied_lsn, uid, prefix, plen, copy_one, &c);
	return c.pos - base;
}

static uint64_t txn_applied(struct index_txn *t)
{
	struct index_meta m;

	return index_get_meta(t, &m) ? 0 : m.applied_lsn;
}

static ssize_t task_read(struct evl_store *st, uint64_t uid, uint64_t off, void *buf, size_t len)
{
	struct index_txn *t;
	struct index_task task;
	uint64_t pend, end, flen;
	ssize_t n = 0;
	int rc;

	rc = begin_read(st, &t);
	if (rc)
		return rc;
	rc = index_task_by_uid(t, uid, &task);
	if (!rc && task.state != TASK_LIVE)
		rc = -ENOENT;
	if (rc) {
		pthread_mutex_unlock(&st->lock);
		index_abort(t);
		return rc;
	}
	flen = task.log_len - task.base_len;	/* the file's applied bytes */
	pend = copy_pending(st, txn_applied(t), uid, "", 0, flen, off, buf, len);
	pthread_mutex_unlock(&st->lock);
	index_abort(t);

	end = flen + pend;
	if (off >= end)
		return 0;
	if (len > end - off)
		len = end - off;
	if (off < flen) {
		size_t want = flen - off < len ? flen - off : len;

		if (switch_broken(st, uid))
			return -EIO;
		n = tasklog_read(st->tl, uid, task.name, off, buf, want);
		if (n < 0)
			return n;
		if ((size_t)n < want) {
			evl_log(LOG_ERR, "task %s: log shorter than indexed (%" PRIu64 " bytes)",
				task.name, flen);
			return -EIO;
		}
	}
	return len;
}

ssize_t evl_task_read(struct evl_store *st, uint64_t uid, uint64_t off, void *buf, size_t len)
{
	ssize_t n;

	pthread_rwlock_rdlock(&st->swap_lock);
	n = task_read(st, uid, off, buf, len);
	pthread_rwlock_unlock(&st->swap_lock);
	return n;
}

/* ---- writing ---- */

int evl_writer_open(struct evl_store *st, uint64_t uid, struct evl_writer **out)
{
	struct evl_task_info info;
	struct evl_writer *w;
	uint64_t gen;
	int rc;

	if (st->opt.read_only)
		return -EROFS;
	pthread_mutex_lock(&st->lock);
	gen = st->delete_gen;
	pthread_mutex_unlock(&st->lock);
	rc = evl_task_stat(st, uid, &info);
	if (rc)
		return rc;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	rc = event_validator_new(st->opt.type_field, st->opt.max_event, &w->val);
	if (rc) {
		free(w);
		return rc;
	}
	w->st = st;
	w->uid = uid;
	w->gen = gen;
	memcpy(w->name, info.name, sizeof(w->name));
	linebuf_init(&w->lb, st->opt.max_event);
	*out = w;
	return 0;
}

/* linebuf callback: validate one line and add it to the record. */
static int take_line(void *arg, const char *line, size_t len, size_t index)
{
	struct evl_writer *w = arg;
	char type[EVENT_TYPE_MAX + 1];
	size_t tlen;
	int rc;

	if (event_is_blank(line, len))
		return 0;
	rc = event_validate(w->val, line, len, type, &tlen, &w->err);
	if (rc) {
		w->err_line = index + 1;
		return rc;
	}
	if (store_grow(&w->dir, &w->dir_cap, w->dir_len + 5 + tlen) ||
	    store_grow(&w->data, &w->data_cap, w->data_len + len + 1))
		return -ENOMEM;
	w32(w->dir + w->dir_len, len + 1);
	w->dir[w->dir_len + 4] = tlen;
	memcpy(w->dir + w->dir_len + 5, type, tlen);
	w->dir_len += 5 + tlen;
	memcpy(w->data + w->data_len, line, len);
	w->data[w->data_len + len] = '\n';
	w->data_len += len + 1;
	w->n++;
	return 0;
}

static void reject(struct evl_writer *w, int rc)
{
	struct evl_store *st = w->st;

	if (rc == -EFBIG && !w->err.err)
		snprintf(w->err.reason, sizeof(w->err.reason),
			 "line longer than max_event=%zu", st->opt.max_event);
	pthread_mutex_lock(&st->lock);
	if (rc == -EFBIG)
		st->rejected_too_big++;
	else
		st->rejected_invalid++;
	snprintf(st->last_rejection, sizeof(st->last_rejection),
		 "task %s line %zu col %zu: %s", w->name, w->err_line ? w->err_line : 1,
		 w->err.col ? w->err.col : 1, w->err.reason);
	pthread_mutex_unlock(&st->lock);
	evl_log(LOG_WARNING, "rejected event: task %s line %zu col %zu: %s", w->name,
		w->err_line ? w->err_line : 1, w->err.col ? w->err.col : 1, w->err.reason);
}

static void record_latency(struct evl_store *st, uint64_t start)
{
	double s = (mono_ns() - start) / 1e9;
	int i = 0;

	while (s > evl_lat_bounds[i])
		i++;
	st->lat_count[i]++;
	st->lat_sum += s;
}

/* Journal the record built in @w and put it on the pending list. */
static int submit(struct evl_writer *w)
{
	struct evl_store *st = w->st;
	size_t len = APPEND_HDR + w->dir_len + w->data_len;
	uint64_t start = mono_ns(), lsn, gen;
	struct iovec iov;
	unsigned char *buf;
	struct pend *p;
	int rc;

	buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	w64(buf, w->uid);
	w32(buf + 24, w->n);
	w32(buf + 28, w->data_len);
	memcpy(buf + APPEND_HDR, w->dir, w->dir_len);
	memcpy(buf + APPEND_HDR + w->dir_len, w->data, w->data_len);
	p = pend_parse(REC_APPEND, buf, len);
	if (!p)
		return -ENOMEM;

	pthread_mutex_lock(&st->lock);
	while (st->pending_bytes && st->pending_bytes + len > st->opt.max_pending) {
		/* wait for the applier; nothing drains after a failed fsync */
		uint64_t at = mono_ns() + 100000000ull;
		struct timespec ts = { at / 1000000000ull, at % 1000000000ull };
		struct journal_stats js;

		pthread_cond_timedwait(&st->applied_cv, &st->lock, &ts);
		journal_get_stats(st->jn, &js);
		if (js.error) {
			pthread_mutex_unlock(&st->lock);
			pend_free(p);
			return -js.error;
		}
	}
	gen = st->delete_gen;
	pthread_mutex_unlock(&st->lock);
	if (gen != w->gen) {
		struct evl_task_info info;

		rc = evl_task_stat(st, w->uid, &info);
		if (rc) {
			pend_free(p);
			return rc;
		}
		w->gen = gen;
	}

	pthread_mutex_lock(&st->append_lock);
	pthread_mutex_lock(&st->lock);
	p->gseq = st->next_gseq;
	st->next_gseq += p->n;
	pthread_mutex_unlock(&st->lock);
	p->time_ns = wall_ns();
	w64(buf + 8, p->gseq);
	w64(buf + 16, p->time_ns);
	iov.iov_base = buf;
	iov.iov_len = len;
	rc = journal_append(st->jn, REC_APPEND, &iov, 1, &lsn);
	pthread_mutex_lock(&st->lock);
	if (rc) {
		st->next_gseq -= p->n;	/* nobody took one since: append_lock */
	} else {
		p->lsn = lsn;
		enqueue(st, p);
		st->appended_events += p->n;
		st->appended_bytes += p->data_len;
	}
	pthread_mutex_unlock(&st->lock);
	pthread_mutex_unlock(&st->append_lock);
	if (rc) {
		pend_free(p);
		return rc;
	}
	if (st->opt.commit_sync)
		rc = journal_wait(st->jn, lsn);
	pthread_mutex_lock(&st->lock);
	record_latency(st, start);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

int evl_writer_write(struct evl_writer *w, const void *data, size_t n)
{
	int rc;

	if (w->discarding) {
		/* the rest of a line refused as too long, up to its newline */
		if (memchr(data, '\n', n))
			w->discarding = false;
		return -EFBIG;
	}
	w->dir_len = w->data_len = 0;
	w->n = 0;
	memset(&w->err, 0, sizeof(w->err));
	w->err_line = 0;
	rc = linebuf_feed(&w->lb, data, n, take_line, w);
	if (rc == -EFBIG && !memchr(data, '\n', n)) {
		/*
		 * An unterminated line outgrew max_event: it can never be stored.
		 * Drop what is held and refuse the rest of it too (the kernel
		 * splits a long write() into requests, so its tail follows).
		 */
		linebuf_clear(&w->lb);
		w->discarding = true;
	}
	if (rc) {
		if (rc == -EINVAL || rc == -EFBIG)
			reject(w, rc);
		return rc;
	}
	rc = w->n ? submit(w) : 0;
	if (rc)
		linebuf_rollback(&w->lb);
	else
		linebuf_commit(&w->lb);
	return rc;
}

int evl_writer_flush(struct evl_writer *w)
{
	int rc;

	if (!linebuf_pending(&w->lb))
		return 0;
	w->dir_len = w->data_len = 0;
	w->n = 0;
	memset(&w->err, 0, sizeof(w->err));
	w->err_line = 1;
	rc = take_line(w, w->lb.buf, w->lb.len, 0);
	if (rc) {
		if (rc == -EINVAL || rc == -EFBIG)
			reject(w, rc);
	} else if (w->n) {
		rc = submit(w);
	}
	linebuf_clear(&w->lb);
	return rc;
}

size_t evl_writer_held(const struct evl_writer *w)
{
	return linebuf_pending(&w->lb);
}

int evl_writer_close(struct evl_writer *w)
{
	int rc;

	if (!w)
		return 0;
	rc = evl_writer_flush(w);
	linebuf_release(&w->lb);
	event_validator_free(w->val);
	free(w->dir);
	free(w->data);
	free(w);
	return rc;
}

/* ---- types and views ---- */

static int found_one(void *arg, const struct pend *p, const struct pend_ev *e)
{
	return 1;
}

bool evl_prefix_exists(struct evl_store *st, const char *prefix, size_t len)
{
	struct index_txn *t;
	bool found;

	if (event_check_name(prefix, len))
		return false;
	if (begin_read(st, &t))
		return false;
	found = each_pending(st, txn_applied(t), 0, prefix, len, found_one, NULL);
	pthread_mutex_unlock(&st->lock);
	if (!found)
		found = index_prefix_exists(t, prefix, len);
	index_abort(t);
	return found;
}

struct type_ctx {
	int (*cb)(void *arg, const char *type, size_t len);
	void *arg;
};

static int type_cb(void *arg, const char *name, size_t len, uint64_t ev, uint64_t bytes)
{
	struct type_ctx *c = arg;

	return c->cb(c->arg, name, len);
}

/* Types seen only in pending events (not yet in the index), once each. */
struct extra_types {
	struct index_txn *t;
	struct { char name[256]; size_t len; } *v;
	size_t n, cap;
};

static int extra_type(void *arg, const struct pend *p, const struct pend_ev *e)
{
	struct extra_types *x = arg;

	for (size_t k = 0; k < x->n; k++)
		if (x->v[k].len == e->tlen && !memcmp(x->v[k].name, e->type, e->tlen))
			return 0;
	if (index_prefix_exists(x->t, e->type, e->tlen))
		return 0;
	if (x->n == x->cap) {
		size_t cap = x->cap ? x->cap * 2 : 8;
		void *np = realloc(x->v, cap * sizeof(*x->v));

		if (!np)
			return -ENOMEM;
		x->v = np;
		x->cap = cap;
	}
	memcpy(x->v[x->n].name, e->type, e->tlen);
	x->v[x->n++].len = e->tlen;
	return 0;
}

int evl_type_list(struct evl_store *st,
		  int (*cb)(void *arg, const char *type, size_t len), void *arg)
{
	struct type_ctx c = { cb, arg };
	struct extra_types x = { 0 };
	struct index_txn *t;
	int rc;

	rc = begin_read(st, &t);
	if (rc)
		return rc;
	x.t = t;
	rc = each_pending(st, txn_applied(t), 0, "", 0, extra_type, &x);
	pthread_mutex_unlock(&st->lock);
	if (!rc)
		rc = index_type_list(t, type_cb, &c);
	index_abort(t);
	for (size_t k = 0; k < x.n && !rc; k++)
		rc = cb(arg, x.v[k].name, x.v[k].len);
	free(x.v);
	return rc;
}

int evl_view_open(struct evl_store *st, const char *prefix, size_t len, uint64_t task_uid,
		  struct evl_view **out)
{
	struct evl_view *v;
	int rc;

	rc = event_check_name(prefix, len);
	if (rc)
		return rc;
	if (!evl_prefix_exists(st, prefix, len))
		return -ENOENT;
	if (task_uid) {
		struct evl_task_info info;

		rc = evl_task_stat(st, task_uid, &info);
		if (rc)
			return rc;
	}
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->st = st;
	v->uid = task_uid;
	v->len = len;
	memcpy(v->prefix, prefix, len);
	*out = v;
	return 0;
}

void evl_view_close(struct evl_view *v)
{
	free(v);
}

/* Open the index view of @v in @t; a view with nothing applied yet is NULL. */
static int view_index(struct evl_view *v, struct index_txn *t, struct index_view **iv)
{
	int rc = index_view_open(t, v->prefix, v->len, v->uid, iv);

	if (rc == -ENOENT) {
		*iv = NULL;
		rc = 0;
	}
	return rc;
}

int evl_view_size(struct evl_view *v, uint64_t *size)
{
	struct evl_store *st = v->st;
	struct index_view *iv;
	struct index_txn *t;
	uint64_t applied;
	int rc;

	rc = begin_read(st, &t);
	if (rc)
		return rc;
	rc = view_index(v, t, &iv);
	if (!rc) {
		applied = iv ? index_view_size(iv) : 0;
		*size = applied + copy_pending(st, txn_applied(t), v->uid, v->prefix, v->len,
					       applied, 0, NULL, 0);
	}
	pthread_mutex_unlock(&st->lock);
	index_view_free(iv);
	index_abort(t);
	return rc;
}

struct fill_ctx {
	struct evl_store *st;
	struct index_txn *t;
	char *buf;
	size_t len, done;
	uint64_t skip;		/* bytes of the first event to leave out */
	uint64_t next_gseq;	/* the event after the last one copied */
	struct tasklog_file *pin;	/* the log of pin_uid, held open */
	uint64_t pin_uid, pin_base;	/* ... and its base_len (index offset - file offset) */
	/* a run of adjacent bytes of one log, read with one pread */
	uint64_t run_off;
	size_t run_at, run_len;
	int rc;
};

static int flush_run(struct fill_ctx *c)
{
	ssize_t n;

	if (!c->run_len)
		return 0;
	n = tasklog_pread(c->pin, c->run_off, c->buf + c->run_at, c->run_len);
	if (n >= 0 && (size_t)n < c->run_len)
		n = -EIO;
	c->run_len = 0;
	return n < 0 ? (int)n : 0;
}

static int fill_cb(void *arg, const struct index_event *ev)
{
	struct fill_ctx *c = arg;
	uint64_t skip = c->skip;
	size_t want = ev->len - skip;

	if (want > c->len - c->done)
		want = c->len - c->done;
	if (c->run_len && (ev->uid != c->pin_uid ||
			   ev->off - c->pin_base + skip != c->run_off + c->run_len))
		c->rc = flush_run(c);
	if (!c->rc && ev->uid != c->pin_uid) {
		struct index_task task;

		tasklog_unpin(c->st->tl, c->pin);
		c->pin = NULL;
		c->pin_uid = 0;
		c->rc = index_task_by_uid(c->t, ev->uid, &task);
		if (!c->rc && switch_broken(c->st, ev->uid))
			c->rc = -EIO;
		if (!c->rc)
			c->rc = tasklog_pin(c->st->tl, ev->uid, task.name, &c->pin);
		if (!c->rc) {
			c->pin_uid = ev->uid;
			c->pin_base = task.base_len;
		}
	}
	if (c->rc)
		return 1;
	if (!c->run_len) {
		c->run_off = ev->off - c->pin_base + skip;
		c->run_at = c->done;
	}
	c->run_len += want;
	c->done += want;
	c->skip = 0;
	if (skip + want < ev->len) {
		c->next_gseq = 0;	/* stopped inside this event */
		return 1;
	}
	c->next_gseq = ev->gseq + 1;
	return c->done == c->len;
}

static ssize_t view_read(struct evl_view *v, uint64_t off, void *buf, size_t len)
{
	struct evl_store *st = v->st;
	struct fill_ctx c = { .st = st, .buf = buf };
	struct index_view *iv;
	struct index_txn *t;
	uint64_t applied, pend, gseq;
	int rc;

	rc = begin_read(st, &t);
	if (rc)
		return rc;
	c.t = t;
	rc = view_index(v, t, &iv);
	if (rc) {
		pthread_mutex_unlock(&st->lock);
		index_abort(t);
		return rc;
	}
	applied = iv ? index_view_size(iv) : 0;
	pend = copy_pending(st, txn_applied(t), v->uid, v->prefix, v->len, applied, off, buf, len);
	if (v->have_next && v->gen != st->view_gen)
		v->have_next = false;
	v->gen = st->view_gen;
	pthread_mutex_unlock(&st->lock);

	if (off >= applied + pend) {
		len = 0;
		goto out;
	}
	if (len > applied + pend - off)
		len = applied + pend - off;
	if (off < applied) {
		c.len = applied - off < len ? applied - off : len;
		if (v->have_next && v->next_off == off) {
			gseq = v->next_gseq;
		} else {
			rc = index_view_seek(iv, off, &gseq, &c.skip);
			if (rc)
				goto out;
		}
		rc = index_view_iter(iv, gseq, fill_cb, &c);
		if (rc > 0)
			rc = 0;		/* fill_cb stopped it: the buffer is full */
		if (!rc)
			rc = c.rc;
		if (!rc)
			rc = flush_run(&c);
		tasklog_unpin(st->tl, c.pin);
		if (!rc && c.done < c.len) {
			evl_log(LOG_ERR, "view %.*s: index ends before its size", (int)v->len,
				v->prefix);
			rc = -EIO;
		}
		if (rc)
			goto out;
		v->have_next = c.next_gseq != 0;
		v->next_off = off + c.len;
		v->next_gseq = c.next_gseq;
	}
out:
	index_view_free(iv);
	index_abort(t);
	return rc ? rc : (ssize_t)len;
}

ssize_t evl_view_read(struct evl_view *v, uint64_t off, void *buf, size_t len)
{
	ssize_t n;

	pthread_rwlock_rdlock(&v->st->swap_lock);
	n = view_read(v, off, buf, len);
	pthread_rwlock_unlock(&v->st->swap_lock);
	return n;
}

struct vt_ctx {
	uint64_t *uids;
	size_t n, cap;
};

static int vt_cb(void *arg, uint64_t uid)
{
	struct vt_ctx *c = arg;

	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		uint64_t *p = realloc(c->uids, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		c->uids = p;
		c->cap = cap;
	}
	c->uids[c->n++] = uid;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int pending_task(void *arg, const struct pend *p, const struct pend_ev *e)
{
	return vt_cb(arg, p->uid);	/* duplicates are dropped after sorting */
}

int evl_view_tasks(struct evl_store *st, const char *prefix, size_t len,
		   int (*cb)(void *arg, uint64_t uid), void *arg)
{
	struct vt_ctx c = { 0 };
	struct index_txn *t;
	int rc;

	rc = begin_read(st, &t);
	if (rc)
		return rc;
	rc = each_pending(st, txn_applied(t), 0, prefix, len, pending_task, &c);
	pthread_mutex_unlock(&st->lock);
	if (!rc) {
		rc = index_view_tasks(t, prefix, len, 0, vt_cb, &c);
		if (rc == -ENOENT)
			rc = 0;
	}
	index_abort(t);
	if (!rc) {
		if (c.n)
			qsort(c.uids, c.n, sizeof(*c.uids), cmp_u64);
		for (size_t i = 0; i < c.n && !rc; i++)
			if (i == 0 || c.uids[i] != c.uids[i - 1])
				rc = cb(arg, c.uids[i]);
	}
	free(c.uids);
	return rc;
}

/* ---- status ---- */

void evl_store_stats(struct evl_store *st, struct evl_stats *o)
{
	struct journal_stats js;
	struct index_txn *t;
	struct index_meta m = { 0 };

	memset(o, 0, sizeof(*o));
	if (index_begin(st->ix, false, &t) == 0) {
		index_get_meta(t, &m);
		o->types = index_type_count(t);
		index_abort(t);
	}
	journal_get_stats(st->jn, &js);
	pthread_mutex_lock(&st->lock);
	o->tasks = m.tasks;
	o->events = m.events + st->pending_events;
	o->log_bytes = m.log_bytes;
	o->index_bytes = index_file_bytes(st->ix);
	o->journal_bytes = js.bytes;
	o->pending_bytes = st->pending_bytes;
	o->pending_events = st->pending_events;
	o->appended_events = st->appended_events;
	o->appended_bytes = st->appended_bytes;
	o->rejected_invalid = st->rejected_invalid;
	o->rejected_too_big = st->rejected_too_big;
	o->written_lsn = js.written_lsn;
	o->durable_lsn = js.durable_lsn;
	o->applied_lsn = st->applied_lsn;
	o->ckpt_lsn = m.ckpt_lsn;
	o->fsyncs = js.fsyncs;
	o->checkpoints = st->checkpoints;
	memcpy(o->lat_count, st->lat_count, sizeof(o->lat_count));
	o->lat_sum = st->lat_sum;
	o->error = js.error;
	o->commit_sync = st->opt.commit_sync;
	o->commit_ms = st->opt.commit_ms;
	memcpy(o->last_rejection, st->last_rejection, sizeof(o->last_rejection));
	pthread_mutex_unlock(&st->lock);
}
