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
 * pending event sorts after every applied one.  Creates work the same way:
 * a task exists once its create record is journaled (the pending creates
 * table answers lookups the index cannot yet), so mkdir never waits for
 * the applier.  A delete waits until it is applied: only then has the task
 * left the views, whose applied part comes from the index.
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
 *  I5 A create is journaled only for a name free in the index and the
 *     pending creates, under meta_lock; a task's records before its delete
 *     are dead (enqueue marks them) and not applied by the batch that
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
#include "store_i.h"
#include "tasklog.h"

#include <xxhash.h>

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
/* A writer held by max_pending gets the applier's errno once it has failed this long. */
#define WRITER_GIVE_UP_NS (2000 * 1000000ull)
#define TMEM_BUCKETS 1024
#define PC_BUCKETS 4096
/* what malloc keeps beside each block it hands out (glibc: one size_t, rounded up) */
#define MALLOC_OVERHEAD 16

const double evl_lat_bounds[EVL_LAT_BUCKETS] = {
	0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
	0.005, 0.01, 0.025, 0.1, 1.0, 1e300,
};

struct pend_ev {
	uint32_t off, len;	/* in data */
	uint32_t toff;		/* the type, in buf */
	uint8_t tlen;
};

/*
 * One journaled record, in memory until applied.  A record is freed only
 * by dequeue(), on the applier's thread, under st->lock: whoever holds
 * st->lock may read a record that is still on the list.
 */
struct pend {
	struct pend *next;
	struct pend *by_name, *by_uid;	/* creates: in pc_name[], pc_uid[]; deletes: pc_uid[] */
	uint64_t name_hash;
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
	 * An append or create of a task whose delete follows: the delete's
	 * lsn (0: none).  Not applied in a batch that holds that delete
	 * (dead_in): the index commit that skips it is the one that deletes
	 * the task.  Skipped in a batch before its delete, it would be lost to
	 * a crash that took the delete with it (the delete may not be durable
	 * yet, and applied_lsn is past the record).  Set by enqueue under
	 * st->lock, read by the applier without it (a record in a batch being
	 * applied may be marked: either way is right).
	 */
	_Atomic uint64_t dead;
	/*
	 * Under st->lock.  early: a delete the applier applied ahead of the
	 * records before it, which it could not apply (a full disk); gone:
	 * a record of a task deleted so, which readers no longer see.
	 */
	bool early, gone;
	bool early_failed;	/* ... tried, in vain (said once) */
	/*
	 * An append of a task set aside, not written to its log (put_aside):
	 * its events kept in events.unapplied, or lost.  Set once by the
	 * applier while it owns the record; a batch redone finds it set.
	 */
	enum { PEND_APPLIED, PEND_UNAPPLIED, PEND_LOST } fate;
	size_t len;		/* payload bytes */
	size_t mem;		/* what the record holds in memory, bookkeeping included */
	unsigned char *buf;	/* payload */
	struct tmem *spare;	/* a writer's append: its task's entry, made before journaling */
	struct pend_ev ev[];	/* REC_APPEND: n */
};

static inline const char *ev_type(const struct pend *p, const struct pend_ev *e)
{
	return (const char *)p->buf + e->toff;
}

/*
 * Pending bytes of one task (only tasks with pending events have one).
 * While the applier commits a batch, its records' share is in cbytes and
 * cevents, with clsn its last record: a reader whose index snapshot has
 * applied_lsn >= clsn sees them in the index already, one with an older
 * snapshot must add them (else a size would count them twice, or not at
 * all).  dequeue() subtracts them once the commit is done.
 */
struct tmem {
	struct tmem *next;
	uint64_t uid, bytes, events;
	uint64_t cbytes, cevents, clsn;
	uint64_t last_ns;	/* the newest pending append's commit time */
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
	struct store_lock dlock;
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
	bool frozen;	/* on read-only media (open_frozen): no journal, no applier */

	struct pend *head, *tail;	/* pending records, lsn order */
	uint64_t pending_mem, pending_events;	/* pending_mem: of pend.mem */
	uint64_t pending_data;		/* event bytes of the pending appends */
	/*
	 * Pending creates by name and uid: a task exists once its create is
	 * journaled (a mkdir does not wait for the applier).  pending_tasks
	 * counts those not gone.  Pending deletes are in pc_uid[] too.
	 */
	struct pend *pc_name[PC_BUCKETS], *pc_uid[PC_BUCKETS];
	uint64_t pending_tasks;
	uint64_t want_lsn;		/* someone waits for this much to be applied */
	uint64_t apply_failures;	/* failed batches, ever */
	uint64_t enqueued_lsn, durable_lsn, applied_lsn;
	uint64_t next_gseq, next_uid;
	uint64_t delete_gen;		/* bumped by every delete: writers look again */
	uint64_t view_gen;		/* ... and by retention steps: view offsets moved */
	struct tmem *tmem[TMEM_BUCKETS];
	bool purge_more;
	uint64_t purged;		/* deleted tasks whose entries are all purged */
	atomic_bool closing;		/* evl_store_close began: compaction stops */
	/*
	 * Log rewrites committed to the index but not finished on disk (a
	 * failed rename or directory sync): retried by the applier and at
	 * each compaction.  Of those, the tasks whose files were not renamed
	 * are unreadable (EIO) meanwhile: their old files do not match the
	 * offsets the index now has.  broken[] is guarded by swap_lock.
	 */
	bool switch_unfinished;
	uint64_t *broken;
	size_t nbroken, broken_cap;	/* broken_cap in bytes (store_grow) */
	bool broken_unknown;		/* one could not be recorded: every task is suspect */
	/*
	 * The open's replay of the journal after a power loss (I9: files not
	 * trusted): a task not dirty at the crash may hold a batch whose index
	 * commit was lost, with holes where its pages were not kept.
	 */
	bool replay_after_loss;
	bool recovering;	/* store_recover runs: the applier is not started yet */
	/* I7: the stamp; gen is the index's, file_gen DATA_DIR/stamp's (applier only) */
	uint64_t stamp_id, stamp_gen, stamp_file_gen;
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
	uint64_t apply_failing_since;	/* when apply_err became nonzero (mono_ns), under lock */
	/*
	 * Tasks set aside (set_aside): their files are not what the index
	 * says (removed, replaced, cut short or appended to behind the store's
	 * back), so nothing of them can be served or written.  Their reads and
	 * appends get EIO.  The applier does not write their records: it puts
	 * the events in the task's events.unapplied (events_unapplied), or, if
	 * even that fails, counts them lost (events_lost); both under st->lock.
	 * The list is guarded by aside_lock, a leaf.  Only damage puts a task
	 * here, so the list stays short; it is forgotten at close, and a reopen
	 * finds the damage again at the task's first use.
	 */
	pthread_mutex_t aside_lock;
	struct aside_task { uint64_t uid; char name[256]; } *aside;
	size_t naside, aside_cap;	/* aside_cap in bytes (store_grow) */
	/* recovery: misnamed_dir's answers, per task uid */
	struct misnamed {
		uint64_t uid;
		bool found;
	} *misnamed;
	size_t nmisnamed, misnamed_cap;	/* misnamed_cap in bytes (store_grow) */
	bool aside_unknown;		/* one could not be recorded: every task is suspect */
	uint64_t events_unapplied, events_lost;
	uint64_t lines_moved;		/* settle_rest: lines past an index put aside at open */
	uint64_t recover_gseq;		/* the index's next_gseq when the open began (vouched) */
	atomic_bool sync_failed;	/* I5: an fsync failed, until reopened */
	atomic_bool sync_recorded;	/* ... and the index says so (I6) */

	/* counters */
	uint64_t appended_events, appended_bytes, rejected_invalid, rejected_too_big;
	uint64_t rejected_held;		/* writes refused for max_held (ENOBUFS) */
	/* unterminated-line bytes all writers hold, against opt.max_held (no lock) */
	atomic_uint_fast64_t held_bytes;
	/* view reads refused: an index entry that does not match its log (damage) */
	atomic_uint_fast64_t index_damage;
	uint64_t checkpoints;
	uint64_t lat_count[EVL_LAT_BUCKETS];
	double lat_sum;
	char last_rejection[512];
};

/*
 * The line held in lb is counted in st->held_bytes (lb.len bytes) from the
 * commit that makes it held to the one that drops it.
 */
struct evl_writer {
	struct evl_store *st;
	uint64_t uid;
	uint64_t gen;			/* delete_gen when last checked */
	char name[256];
	struct linebuf lb;
	struct event_validator *val;	/* NULL until needed */
	/*
	 * After an EFBIG that dropped the held line: the refused write's first
	 * resend_len bytes, hashed, to know the write a writer sends again
	 * after the kernel's short count (evl_writer_write).
	 */
	size_t resend_len;
	uint64_t resend_hash;
	/* the record being built */
	unsigned char *dir;
	size_t dir_len, dir_cap;
	char *data;
	size_t data_len, data_cap;
	uint32_t n;
	struct event_error err;
};

struct evl_view {
	struct evl_store *st;
	uint64_t uid;
	size_t len;
	char prefix[256];
	/*
	 * Where the last read ended, to continue without a search.  Reads of
	 * one open view may run at once (threads calling pread on one
	 * descriptor), so the four are read and written together under mu.
	 */
	pthread_mutex_t mu;
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
 * ---- tasks set aside ----
 *
 * A task's log and sidecar end where the index says: the applier writes
 * them at the index's offsets, recovery cuts them back to it.  Files removed
 * or replaced behind the store's back, a log cut short on disk (a partial
 * restore, copytruncate) or appended to outside the store break that:
 * writing at the index's offset would fail for ever, leave a hole of zeros
 * or overwrite other lines.  Such a task is set aside until evlogctl fsck
 * --repair or reindex rebuilds it from its files: its opens for writing,
 * writes and reads fail with EIO; the other tasks go on.  It is found
 * without a scan: a writer's open compares the files' sizes with the
 * index's (shorter only: the applier may be past it), the applier checks
 * both files before each write (tasklog_write: -EUCLEAN) and sets the task
 * aside on an error no wait cures (task_damage), and so does a read that
 * fails so or comes up short.
 */

/*
 * Does @err, from a task's files, say that they are not what the index
 * says (gone, replaced by something else, unreadable to us)?  No wait cures
 * that; a full disk, a descriptor or memory shortage, an I/O error may pass.
 */
static bool task_damage(int err)
{
	switch (-err) {
	case ENOENT: case ENOTDIR: case EISDIR: case ELOOP: case ESTALE: case EILSEQ:
	case EACCES: case EPERM: case ENXIO: case ESPIPE: case EUCLEAN: case EBADMSG:
		return true;
	}
	return false;
}

/* With aside_lock held. */
static bool aside_has(const struct evl_store *st, uint64_t uid)
{
	for (size_t i = 0; i < st->naside; i++)
		if (st->aside[i].uid == uid)
			return true;
	return st->aside_unknown;
}

static bool is_aside(struct evl_store *st, uint64_t uid)
{
	bool found;

	pthread_mutex_lock(&st->aside_lock);
	found = aside_has(st, uid);
	pthread_mutex_unlock(&st->aside_lock);
	return found;
}

/*
 * Set task @uid (@name) aside, saying @why its files are not what the
 * index says.  Any thread, any locks but aside_lock held.  Said once.
 */
static void set_aside(struct evl_store *st, uint64_t uid, const char *name, const char *why)
{
	pthread_mutex_lock(&st->aside_lock);
	if (aside_has(st, uid)) {
		pthread_mutex_unlock(&st->aside_lock);
		return;
	}
	if (store_grow(&st->aside, &st->aside_cap, (st->naside + 1) * sizeof(*st->aside))) {
		st->aside_unknown = true;
	} else {
		st->aside[st->naside].uid = uid;
		snprintf(st->aside[st->naside].name, sizeof(st->aside->name), "%s", name);
		st->naside++;
	}
	pthread_mutex_unlock(&st->aside_lock);
	evl_log(LOG_ERR, "task %s set aside: %s; its reads and appends get EIO, the other "
		"tasks go on; after unmounting, evlogctl fsck --repair or reindex recovers "
		"what its files still hold", name, why);
}

/*
 * The names of the tasks set aside, as many as fit in @buf (@size > 0),
 * each followed by @sep ('\0': and the list by another), "..." for the
 * rest; returns how many tasks are set aside.
 */
static size_t aside_names(struct evl_store *st, char *buf, size_t size, char sep)
{
	size_t at = 0, n;

	pthread_mutex_lock(&st->aside_lock);
	for (size_t i = 0; i < st->naside; i++) {
		size_t l = strlen(st->aside[i].name);

		if (at + l + 6 > size) {
			at += snprintf(buf + at, size - at, "...%c", sep);
			break;
		}
		memcpy(buf + at, st->aside[i].name, l);
		buf[at + l] = sep;
		at += l + 1;
	}
	n = st->naside;
	pthread_mutex_unlock(&st->aside_lock);
	if (sep == '\0' || !at)
		buf[at] = '\0';
	else
		buf[at - 1] = '\0';	/* no separator after the last */
	return n;
}

/* Task @uid is deleted: it is no longer set aside (a new task of its name is not). */
static void aside_forget(struct evl_store *st, uint64_t uid)
{
	pthread_mutex_lock(&st->aside_lock);
	for (size_t i = 0; i < st->naside; i++)
		if (st->aside[i].uid == uid) {
			st->aside[i] = st->aside[--st->naside];
			break;
		}
	pthread_mutex_unlock(&st->aside_lock);
}

/* set_aside() for an error @err from its files. */
static void set_aside_err(struct evl_store *st, uint64_t uid, const char *name, int err)
{
	char why[128];

	snprintf(why, sizeof(why), "its files are not what the index says (%s)",
		 err == -EUCLEAN ? "they do not end where it says" : strerror(-err));
	set_aside(st, uid, name, why);
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
	o->max_held = 64u << 20;
	o->commit_ms = 10;
	o->max_fds = 1024;
	o->segment_bytes = 64u << 20;
}

/* ---- pending records ---- */

static void pend_free(struct pend *p)
{
	if (p) {
		free(p->buf);
		free(p->spare);
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
	uint32_t n = kind == REC_APPEND && len >= APPEND_HDR ? get_le32(buf + 24) : 0;
	struct pend *p;
	size_t pos;

	if (n > len) {
		free(buf);	/* malformed: no more events than bytes */
		return NULL;
	}
	p = calloc(1, sizeof(*p) + n * sizeof(*p->ev));
	if (!p) {
		free(buf);
		return NULL;
	}
	p->kind = kind;
	p->buf = buf;
	p->len = len;
	p->mem = malloc_usable_size(p) + malloc_usable_size(buf) + 2 * MALLOC_OVERHEAD;
	switch (kind) {
	case REC_CREATE:
		if (len < 18)
			goto bad;
		p->uid = get_le64(buf);
		p->time_ns = get_le64(buf + 8);
		p->name_len = get_le16(buf + 16);
		if (p->name_len == 0 || p->name_len > 255 ||
		    (18 + p->name_len != len && 18 + p->name_len + 12 != len))
			goto bad;
		p->name = (const char *)buf + 18;
		if (evl_task_check_name(p->name, p->name_len))
			goto bad;	/* never a path outside tasks/ */
		if (len > 18 + p->name_len) {
			p->has_owner = true;
			p->owner_uid = get_le32(buf + 18 + p->name_len);
			p->owner_gid = get_le32(buf + 22 + p->name_len);
			p->mode = get_le32(buf + 26 + p->name_len) & 07777;
		}
		p->name_hash = XXH3_64bits(p->name, p->name_len);
		break;
	case REC_DELETE:
		if (len != 16)
			goto bad;
		p->uid = get_le64(buf);
		p->time_ns = get_le64(buf + 8);
		break;
	case REC_APPEND:
		if (len < APPEND_HDR)
			goto bad;
		p->uid = get_le64(buf);
		p->gseq = get_le64(buf + 8);
		p->time_ns = get_le64(buf + 16);
		p->n = n;
		p->data_len = get_le32(buf + 28);
		if (p->n == 0 || p->data_len > len || p->n > p->data_len)
			goto bad;
		pos = APPEND_HDR;
		{
			uint64_t off = 0;
			size_t data_at = len - p->data_len;

			for (uint32_t i = 0; i < p->n; i++) {
				struct pend_ev *e = &p->ev[i];

				if (pos + 5 > data_at)
					goto bad;
				e->len = get_le32(buf + pos);
				e->tlen = buf[pos + 4];
				e->toff = pos + 5;
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
		.name = p->name, .name_len = p->name_len, .has_owner = p->has_owner,
		.owner_uid = p->owner_uid, .owner_gid = p->owner_gid, .mode = p->mode,
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

/*
 * With st->lock: account append @p to its task's pending bytes.  A
 * writer's append brings the entry along (p->spare): without it, a
 * failed allocation here would leave the task's pending appends out of
 * its size and of its idleness (expire-idle could then take it).
 */
static void tmem_add(struct evl_store *st, struct pend *p)
{
	struct tmem **pp, *t;

	if (p->kind != REC_APPEND)
		return;
	pthread_mutex_lock(&st->tmem_lock);
	pp = tmem_slot(st, p->uid);
	t = *pp;
	if (!t) {
		t = p->spare ? p->spare : calloc(1, sizeof(*t));
		p->spare = NULL;
		if (!t)
			goto out;	/* replay only: stat under-reports until applied */
		t->uid = p->uid;
		*pp = t;
		st->pending_mem += sizeof(*t) + MALLOC_OVERHEAD;
	}
	t->bytes += p->data_len;
	t->events += p->n;
	if (t->last_ns < p->time_ns)
		t->last_ns = p->time_ns;
out:
	pthread_mutex_unlock(&st->tmem_lock);
	free(p->spare);		/* the task had its entry */
	p->spare = NULL;
}

/*
 * With st->lock: records @first .. @last are about to be committed
 * (@sign +1) or were not after all (-1): move their share of their
 * tasks' pending bytes to the committing part and back.
 */
static void tmem_committing(struct evl_store *st, struct pend *first, struct pend *last, int sign)
{
	pthread_mutex_lock(&st->tmem_lock);
	for (struct pend *p = first; p; p = p->next) {
		struct tmem *t = p->kind == REC_APPEND ? *tmem_slot(st, p->uid) : NULL;

		if (t) {
			t->bytes -= sign * (int64_t)p->data_len;
			t->events -= sign * (int64_t)p->n;
			t->cbytes += sign * (int64_t)p->data_len;
			t->cevents += sign * (int64_t)p->n;
			t->clsn = last->lsn;
		}
		if (p == last)
			break;
	}
	pthread_mutex_unlock(&st->tmem_lock);
}

/* With st->lock: committed append @p leaves its task's pending bytes. */
static void tmem_applied(struct evl_store *st, const struct pend *p)
{
	struct tmem **pp, *t;

	if (p->kind != REC_APPEND)
		return;
	pthread_mutex_lock(&st->tmem_lock);
	pp = tmem_slot(st, p->uid);
	t = *pp;
	if (t) {
		t->cbytes -= p->data_len;
		t->cevents -= p->n;
		if (!t->events && !t->cevents) {
			*pp = t->next;
			free(t);
			st->pending_mem -= sizeof(*t) + MALLOC_OVERHEAD;
		}
	}
	pthread_mutex_unlock(&st->tmem_lock);
}

/*
 * Task @uid's pending bytes and events as seen by an index snapshot that
 * has applied up to @applied.  With tmem_lock.
 */
static void tmem_get(struct evl_store *st, uint64_t uid, uint64_t applied, uint64_t *bytes,
		     uint64_t *events, uint64_t *last_ns)
{
	struct tmem *t = *tmem_slot(st, uid);

	*bytes = *events = *last_ns = 0;
	if (t) {
		*bytes = t->bytes;
		*events = t->events;
		*last_ns = t->last_ns;
		if (applied < t->clsn) {
			*bytes += t->cbytes;
			*events += t->cevents;
		}
	}
}

/* ---- pending creates ---- */

static struct pend **pc_name_slot(struct evl_store *st, uint64_t hash)
{
	return &st->pc_name[hash % PC_BUCKETS];
}

static struct pend **pc_uid_slot(struct evl_store *st, uint64_t uid)
{
	return &st->pc_uid[(uid * 0x9e3779b97f4a7c15ull) >> 52];
}

/* With st->lock: create or delete @p joins the tables. */
static void pc_add(struct evl_store *st, struct pend *p)
{
	struct pend **pp;

	if (p->kind == REC_CREATE) {
		pp = pc_name_slot(st, p->name_hash);
		p->by_name = *pp;
		*pp = p;
		st->pending_tasks++;
	}
	pp = pc_uid_slot(st, p->uid);
	p->by_uid = *pp;
	*pp = p;
}

/* With st->lock: applied create or delete @p leaves the tables. */
static void pc_del(struct evl_store *st, struct pend *p)
{
	struct pend **pp;

	if (p->kind == REC_CREATE) {
		for (pp = pc_name_slot(st, p->name_hash); *pp && *pp != p; pp = &(*pp)->by_name)
			;
		if (*pp)
			*pp = p->by_name;
		if (!p->gone)
			st->pending_tasks--;
	}
	for (pp = pc_uid_slot(st, p->uid); *pp && *pp != p; pp = &(*pp)->by_uid)
		;
	if (*pp)
		*pp = p->by_uid;
}

/*
 * With st->lock: the pending create of task @name (@len bytes), or of
 * @uid when @name is NULL, that an index snapshot applied up to @applied
 * does not hold yet; NULL if none.
 */
static const struct pend *pc_find(struct evl_store *st, const char *name, size_t len,
				  uint64_t uid, uint64_t applied)
{
	if (name) {
		uint64_t h = XXH3_64bits(name, len);

		for (const struct pend *p = *pc_name_slot(st, h); p; p = p->by_name)
			if (p->name_hash == h && p->name_len == len && !memcmp(p->name, name, len) &&
			    p->lsn > applied && !p->gone)
				return p;
	} else {
		for (const struct pend *p = *pc_uid_slot(st, uid); p; p = p->by_uid)
			if (p->uid == uid && p->kind == REC_CREATE && p->lsn > applied && !p->gone)
				return p;
	}
	return NULL;
}

/* With st->lock: is a delete of task @uid journaled and not dropped from the list yet? */
static bool pd_find(struct evl_store *st, uint64_t uid)
{
	for (const struct pend *p = *pc_uid_slot(st, uid); p; p = p->by_uid)
		if (p->uid == uid && p->kind == REC_DELETE)
			return true;
	return false;
}

/* With st->lock held: put @p at the tail. */
static void enqueue(struct evl_store *st, struct pend *p)
{
	/*
	 * The appends (and the create) a delete follows need not be applied:
	 * the task goes before anyone can read them.  Not writing them is what
	 * lets a delete free a full disk whose appends could not be applied.
	 */
	for (struct pend *q = st->head; p->kind == REC_DELETE && q; q = q->next)
		if (q->kind != REC_DELETE && q->uid == p->uid &&
		    !atomic_load_explicit(&q->dead, memory_order_relaxed))
			atomic_store_explicit(&q->dead, p->lsn, memory_order_relaxed);
	p->next = NULL;
	if (st->tail)
		st->tail->next = p;
	else
		st->head = p;
	st->tail = p;
	p->enq_ns = mono_ns();
	st->pending_mem += p->mem;
	if (p->kind == REC_APPEND) {
		st->pending_events += p->n;
		st->pending_data += p->data_len;
	}
	if (p->kind != REC_APPEND)
		pc_add(st, p);
	st->enqueued_lsn = p->lsn;
	tmem_add(st, p);
	/*
	 * The applier takes only durable records and on_durable() wakes it
	 * when they become so; wake it here only if the syncer already passed
	 * this record (a wakeup per append costs a context switch).
	 */
	if (p->lsn <= st->durable_lsn || p->kind != REC_APPEND)
		pthread_cond_signal(&st->applier_cv);
}

/*
 * Are @task's files there and at least as long as the index says (shorter
 * only: the applier may be past it)?  Else set it aside: -EIO.  A log as
 * long as that beside a sidecar cut short passes: the applier rebuilds the
 * sidecar's records before it writes (mend_short), or sets the task aside
 * then, keeping the events in events.unapplied.  A file removed while
 * mounted sets the task aside (item 6); a sidecar removed before the mount
 * is made anew by the recovery.
 */
static int check_files(struct evl_store *st, const struct index_task *task)
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
	char path[4200];
	struct dirent *de;
	bool found = false;
	DIR *d;

	/* asked once per task for the whole recovery: a replay has many records of it */
	for (size_t i = 0; i < st->nmisnamed; i++)
		if (st->misnamed[i].uid == uid)
			return st->misnamed[i].found;
	snprintf(path, sizeof(path), "%s/tasks", st->dir);
	d = opendir(path);
	if (!d)
		return true;	/* cannot tell: the journal keeps them */
	for (;;) {
		struct index_task task;
		struct stat sb;
		char file[600];
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
		snprintf(file, sizeof(file), "%s/events", de->d_name);
		if (fstatat(dirfd(d), file, &sb, AT_SYMLINK_NOFOLLOW)) {
			snprintf(file, sizeof(file), "%s/events.meta", de->d_name);
			if (fstatat(dirfd(d), file, &sb, AT_SYMLINK_NOFOLLOW))
				continue;
		}
		if (index_task_by_name(t, de->d_name, strlen(de->d_name), &task) != -ENOENT)
			continue;
		u = tasklog_uid_of(path, de->d_name);
		if (u == uid || u == 0) {
			found = true;
			break;
		}
	}
	closedir(d);
	if (!store_grow(&st->misnamed, &st->misnamed_cap,
			(st->nmisnamed + 1) * sizeof(*st->misnamed)))
		st->misnamed[st->nmisnamed++] = (struct misnamed){ uid, found };
	return found;
}

/*
 * An append to a task set aside: its events go to the task's
 * events.unapplied rather than over or past what its files hold, or, if even
 * that fails for good (its directory is gone), they are lost.  Either way
 * the other tasks' records do not wait behind them for ever, nor does the
 * journal's trim; counted at dequeue and named in the log, never silently.
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

static int undo_delete(void *arg, uint64_t uid);
static bool switch_broken(const struct evl_store *st, uint64_t uid);
static int finish_switches(struct evl_store *st, void *arg);

static int mend_short(struct evl_store *st, struct index_txn *t, const struct index_task *task,
		      const struct pend *p);

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

/* With st->lock held: drop the applied records from the head up to @last. */
static void dequeue(struct evl_store *st, struct pend *last)
{
	struct pend *p, *next = NULL;

	for (p = st->head; p; p = next) {
		next = p->next;
		st->pending_mem -= p->mem;
		if (p->kind == REC_APPEND && !p->gone) {
			st->pending_events -= p->n;
			st->pending_data -= p->data_len;
		}
		if (p->fate != PEND_APPLIED) {
			if (p->fate == PEND_LOST)
				st->events_lost += p->n;
			else
				st->events_unapplied += p->n;
			st->view_gen++;	/* its events left the views' pending part */
		}
		if (p->kind != REC_APPEND)
			pc_del(st, p);
		tmem_applied(st, p);
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
	tmem_committing(st, st->head, st->tail, +1);
	rc = apply_batch(st, st->head, st->tail, &purge);
	if (rc) {
		tmem_committing(st, st->head, st->tail, -1);
		return rc;
	}
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
	if (!rc && p.done) {
		pthread_mutex_lock(&st->lock);
		st->purged++;
		pthread_mutex_unlock(&st->lock);
		rc = tasklog_purge(st->tl, p.done);
	}
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

/*
 * I7: bring DATA_DIR/stamp up to the index's generation (the index is
 * synced).  A failure is logged and redone at the next checkpoint, which
 * meanwhile does not advance the index.
 */
static void stamp_follow(struct evl_store *st)
{
	int rc;

	if (st->opt.read_only || st->stamp_file_gen == st->stamp_gen)
		return;
	rc = store_stamp_write(st->dir, st->stamp_id, st->stamp_gen);
	if (rc)
		evl_log(LOG_WARNING, "cannot write %s/stamp: %s (retried at the next checkpoint)",
			st->dir, strerror(-rc));
	else
		st->stamp_file_gen = st->stamp_gen;
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

/*
 * ---- the stamp ----
 *
 * I7: DATA_DIR/stamp ("evlogfs-stamp <id> <generation>") and the index's
 * "stamp" hold the store's random id and a generation that each checkpoint
 * advances: the index first (committed and synced), the file after.  So
 * the index is always at the file's generation or one ahead (a crash
 * between the two), never behind.  An index that is missing or empty
 * (while tasks/ holds tasks), from another store, or behind the file (a
 * copy restored over newer logs) does not describe the logs: opening the
 * store with it would hand out gseqs again and empty logs on mkdir, so the
 * open refuses it and names evlogctl reindex, which builds one from the
 * logs.  The check reads one small file and one index key: no log.
 */
#define STAMP_FILE "stamp"

int store_stamp_read(const char *dir, uint64_t *id, uint64_t *gen)
{
	char path[4200], buf[96], tail;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/" STAMP_FILE, dir);
	fd = io->open(path, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	n = io_pread_all(fd, buf, sizeof(buf) - 1, 0);
	io->close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	if (sscanf(buf, "evlogfs-stamp %16" SCNx64 " %20" SCNu64 "%c", id, gen, &tail) != 3 ||
	    tail != '\n' || strchr(buf, '\n') != buf + n - 1)
		return -EILSEQ;
	return 0;
}

int store_stamp_write(const char *dir, uint64_t id, uint64_t gen)
{
	char path[4200], tmp[4200], buf[96];
	int fd, n, err = 0;

	snprintf(path, sizeof(path), "%s/" STAMP_FILE, dir);
	snprintf(tmp, sizeof(tmp), "%s/" STAMP_FILE ".new", dir);
	n = snprintf(buf, sizeof(buf), "evlogfs-stamp %016" PRIx64 " %" PRIu64 "\n", id, gen);
	fd = io->open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (io_pwrite_all(fd, buf, n, 0) || io->fsync(fd))
		err = errno;
	io->close(fd);
	if (!err && io->rename(tmp, path))
		err = errno;
	if (!err && io_fsync_dir(dir))
		err = errno;
	if (err)
		io->unlink(tmp);
	return -err;
}

/* Does DATA_DIR/tasks hold a task directory (a name without a leading dot)? */
static bool has_tasks(const char *dir)
{
	char path[4200];
	struct dirent *de;
	bool found = false;
	DIR *d;

	snprintf(path, sizeof(path), "%s/tasks", dir);
	d = opendir(path);
	if (!d)
		return errno != ENOENT;		/* unknown: assume there are */
	while (!found && (de = readdir(d)))
		found = de->d_name[0] != '.';
	closedir(d);
	return found;
}

int store_stamp_check(const char *dir, struct index *ix, struct store_stamp *s,
		      char *why, size_t n)
{
	struct index_txn *t;
	struct index_meta m;
	int rc, frc;
	bool fresh;

	memset(s, 0, sizeof(*s));
	why[0] = '\0';
	frc = store_stamp_read(dir, &s->id, &s->file_gen);
	if (frc == -EILSEQ) {
		snprintf(why, n, "%s/" STAMP_FILE " is garbled", dir);
		return -ESTALE;
	}
	if (frc && frc != -ENOENT)
		return frc;
	s->file = !frc;
	rc = index_begin(ix, false, &t);
	if (rc)
		return rc;
	rc = index_get_meta(t, &m);
	if (!rc) {
		uint64_t id;

		rc = index_get_stamp(t, &id, &s->ix_gen);
		s->ix = !rc;
		if (s->ix && s->file && id != s->id) {
			snprintf(why, n, "the index belongs to another store (%016" PRIx64
				 ", the logs' is %016" PRIx64 ")", id, s->id);
			rc = -ESTALE;
		} else if (s->ix) {
			s->id = id;
			rc = 0;
		} else if (rc == -ENOENT) {
			rc = 0;
		}
	}
	index_abort(t);
	if (rc)
		return rc;
	fresh = m.next_gseq <= 1 && m.next_uid <= 1 && m.applied_lsn == 0 && m.tasks == 0;
	if (!s->ix) {
		if (fresh && has_tasks(dir)) {
			snprintf(why, n, "the index is empty but %s/tasks holds tasks (the index "
				 "was removed or emptied)", dir);
			return -ESTALE;
		}
		if (!fresh && s->file) {
			snprintf(why, n, "the index has no stamp but the logs have one (generation "
				 "%" PRIu64 "): an older index", s->file_gen);
			return -ESTALE;
		}
		return 0;	/* a new store, or one made before stamps */
	}
	if (!s->file) {
		if (s->ix_gen == 0)
			return 0;	/* stamped, and the file not written yet */
		snprintf(why, n, "%s/" STAMP_FILE " is missing (the index is at generation "
			 "%" PRIu64 ")", dir, s->ix_gen);
		return -ESTALE;
	}
	if (s->ix_gen < s->file_gen) {
		snprintf(why, n, "the index is older than the logs (generation %" PRIu64
			 ", the logs are at %" PRIu64 ")", s->ix_gen, s->file_gen);
		return -ESTALE;
	}
	if (s->ix_gen > s->file_gen + 1) {
		snprintf(why, n, "the logs are older than the index (generation %" PRIu64
			 ", the index is at %" PRIu64 ")", s->file_gen, s->ix_gen);
		return -ESTALE;
	}
	return 0;
}

int store_stamp_adopt(const char *dir)
{
	struct index_txn *t;
	struct index *ix;
	char path[4200];
	uint64_t id, gen;
	int rc;

	snprintf(path, sizeof(path), "%s/index", dir);
	rc = index_open(path, NULL, &ix);
	if (rc)
		return rc;
	rc = index_begin(ix, false, &t);
	if (!rc) {
		rc = index_get_stamp(t, &id, &gen);
		index_abort(t);
	}
	index_close(ix);
	if (!rc)
		return store_stamp_write(dir, id, gen);
	if (rc != -ENOENT)
		return rc;
	/* an index made before stamps: so is the copy */
	snprintf(path, sizeof(path), "%s/" STAMP_FILE, dir);
	if (io->unlink(path) && errno != ENOENT)
		return -errno;
	return io_fsync_dir(dir) ? -errno : 0;
}

static int stamp_txn(struct index_txn *t, void *arg)
{
	struct evl_store *st = arg;

	return index_put_stamp(t, st->stamp_id, st->stamp_gen);
}

/* I7 at open: check the index against the stamp.  0, -ESTALE (logged) or -errno. */
static int stamp_open(struct evl_store *st)
{
	struct store_stamp s;
	char why[512];
	int rc;

	rc = store_stamp_check(st->dir, st->ix, &s, why, sizeof(why));
	if (rc == -ESTALE)
		evl_log(LOG_ERR, "store %s: %s; refusing to use it: run evlogctl reindex %s "
			"(it rebuilds the index from the logs)", st->dir, why, st->dir);
	if (rc)
		return rc;
	if (!s.ix && !s.file && getrandom(&s.id, sizeof(s.id), 0) != sizeof(s.id))
		return -errno;
	st->stamp_id = s.id;
	st->stamp_gen = s.ix ? s.ix_gen : s.file_gen;
	st->stamp_file_gen = s.file ? s.file_gen : UINT64_MAX;
	if (st->opt.read_only)
		return 0;
	if (!s.ix) {
		/* the index first: a crash before the file leaves generation 0, accepted */
		rc = write_txn(st, stamp_txn, st);
		if (!rc)
			rc = index_sync(st->ix);
		if (rc)
			return rc;
	}
	stamp_follow(st);
	return 0;
}

/* The applier's checkpoint: everything durable is applied when called. */
static int do_checkpoint(struct evl_store *st, void *unused)
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
		rc = write_txn(st, ckpt_txn, &ck);
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
		rc = write_txn(st, early_delete_txn, &e);
		/* not committed: the task's directory comes back from the trash */
		if (rc)
			undo_delete(st, p->uid);
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
static void *applier_main(void *arg)
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
			dequeue(st, last);
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
	if (rc) {
		/* never drop one: its old files do not match what the index now says */
		if (store_grow(&st->broken, &st->broken_cap, (st->nbroken + 1) * sizeof(*st->broken)))
			st->broken_unknown = true;
		else
			st->broken[st->nbroken++] = task.uid;
	}
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
	if (st->broken_unknown)
		return true;
	for (size_t i = 0; i < st->nbroken; i++)
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

	do {
		/* closing: stop between steps; the intent is durable, open finishes it */
		if (st->applier_running && atomic_load(&st->closing))
			return -EINTR;
		rc = on_applier(st, trim_step, j);
	} while (!rc && j->more);
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
static int trim_plan(struct evl_store *st, const struct index_task *task, uint64_t keep_last,
		     uint64_t min_ns, uint64_t horizon, struct trim_job *j, uint64_t *k)
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
	j->tr = (struct index_trim){ .uid = task->uid, .phase = TRIM_DROPPING, .cut_gseq = gseq,
				     .cut_len = task->base_len + bytes, .cut_n = task->base_n + i };
	j->base_len = task->base_len;
	j->base_n = task->base_n;
	return 0;
}

static int writer_check(struct evl_store *st, uint64_t uid);

int store_retain(struct evl_store *st, uint64_t uid, uint64_t keep_last, uint64_t min_ns,
		 uint64_t horizon, uint64_t *events, uint64_t *bytes)
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
	/*
	 * A task set aside is not rewritten (its files are not what the index
	 * says: the copy would cut or misplace them), nor one found so now;
	 * the other tasks' retention goes on.
	 */
	if (!rc && writer_check(st, uid) == -EIO)
		return 0;	/* (checked under swap_lock: a delete is not damage) */
	if (!rc)
		rc = trim_plan(st, &task, keep_last, min_ns, horizon, &j, &k);
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
static int trim_recover_files(struct evl_store *st)
{
	int rc = finish_all_switches(st);

	return rc ? rc : tasklog_rw_clean(st->tl);
}

/*
 * Does retention intent @tr match @task's files (check.c check_trims' rule)?
 * The events it drops are the files' first cut_n - base_n, all before
 * cut_gseq, taking cut_len - base_len log bytes; the first one kept is at
 * or past cut_gseq (past it when the plan dropped every event it looked
 * at: cut_gseq is then the last one's + 1, and gseqs are the store's, not
 * the task's).  A damaged row would cut kept events: -EUCLEAN, said.  A
 * sidecar cut short or a corrupt record there is not this check's to
 * judge (the retention's own reads find it).
 */
static int trim_matches(struct evl_store *st, const struct index_task *task,
			const struct index_trim *tr)
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
		if (j.tr.phase == TRIM_DROPPING && (rc = trim_matches(st, &task, &j.tr)))
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

/*
 * The lock is a flock on DATA_DIR itself, not on DATA_DIR/lock: deleting
 * or replacing a file (rm, a restore, a cleanup script) cannot release it,
 * and it needs no write access (a store on read-only media can be checked
 * and mounted read-only).  DATA_DIR/lock only tells who holds it, for the
 * messages (evl_store_holder checks it against the lock's real owner).
 */
int store_lock(const char *dir, const char *holder, struct store_lock *l)
{
	char path[4200], buf[512];
	int dfd, fd, n, err;

	*l = STORE_LOCK_NONE;
	dfd = io->open(dir, O_RDONLY | O_DIRECTORY, 0);
	if (dfd < 0)
		return -errno;
	if (io->flock(dfd, LOCK_EX | LOCK_NB)) {
		err = errno;
		io->close(dfd);
		/* EBUSY: the caller names the holder (evl_store_holder) */
		return err == EWOULDBLOCK ? -EBUSY : -err;
	}
	snprintf(path, sizeof(path), "%s/lock", dir);
	fd = io->open(path, O_RDWR | O_CREAT, 0644);
	if (fd < 0 && (errno == EROFS || errno == EACCES || errno == EPERM)) {
		/* read-only media or no write access: held, just not named */
		fd = io->open(path, O_RDONLY, 0);
		if (fd >= 0 && io->flock(fd, LOCK_EX | LOCK_NB)) {
			err = errno;
			io->close(fd);
			io->close(dfd);
			return err == EWOULDBLOCK ? -EBUSY : -err;
		}
		l->dir_fd = dfd;
		l->file_fd = fd;	/* -1 if there is no lock file */
		return 0;
	}
	if (fd < 0) {
		err = errno;
		io->close(dfd);
		return -err;
	}
	/* an older daemon holds only this one */
	if (io->flock(fd, LOCK_EX | LOCK_NB)) {
		err = errno;
		io->close(fd);
		io->close(dfd);
		return err == EWOULDBLOCK ? -EBUSY : -err;
	}
	n = snprintf(buf, sizeof(buf), "%ld %s\n", (long)getpid(), holder ? holder : "");
	/* a short write is retried, and one that cannot go on is an error (ENOSPC) */
	if (io->ftruncate(fd, 0) || io_pwrite_all(fd, buf, n, 0)) {
		err = errno;
		io->close(fd);
		io->close(dfd);
		return -err;
	}
	l->dir_fd = dfd;
	l->file_fd = fd;
	return 0;
}

void store_unlock(const char *dir, struct store_lock *l)
{
	if (l->dir_fd < 0)
		return;
	/* an empty lock file says nobody holds the store (read-only media: it stays) */
	if (l->file_fd >= 0) {
		io->ftruncate(l->file_fd, 0);
		io->close(l->file_fd);
	}
	io->close(l->dir_fd);
	*l = STORE_LOCK_NONE;
}

struct repair {
	uint64_t uid;
	char name[256];
	uint64_t pos, idx;		/* where the next rewritten event goes (in the files) */
	uint64_t want_len, want_n;	/* what the index says */
	uint64_t gseq_from;		/* records below are in the files (a log rewrite) */
};

/*
 * ---- events past the index whose journal records are gone ----
 *
 * A crash can lose a batch's index commit after its bytes reached the
 * task's files; the replay writes them again from the journal.  When the
 * journal lost those records too (a damaged, emptied or restored journal),
 * nothing does: the events stay past the index's lengths, unserved, and the
 * next append finds the files longer than the index.  They are the store's
 * own events, acknowledged: each has its sidecar record (checksum good,
 * length ending a whole valid line).  After the replay, every live task's
 * files are compared with the index (a stat of each), and such events are
 * indexed where they are, with the gseqs and times their records hold
 * (handed out once, by the run that wrote them; next_gseq goes past them).
 * What no record vouches for is not cut away either: whole lines (appended
 * outside the store while it was down, or a batch that lost both its journal
 * and its sidecar records) go to the task's events.unapplied, counted
 * (lines_unapplied); only a last line without its newline, a torn write,
 * is cut.  Recovery leaves every such byte in place until the replay has
 * written what the journal still holds (dirty_cb).
 */
struct tail {
	struct index_task task;
	uint64_t len, n;		/* the files' sizes */
};

struct tails {
	struct evl_store *st;
	struct index_txn *t;
	struct tail *v;
	size_t n, cap;			/* cap in bytes (store_grow) */
	int rc;
};

static int find_tail(void *arg, const struct index_task *task)
{
	struct tails *c = arg;
	uint64_t len, n;
	int rc;

	if (task->state != TASK_LIVE || switch_broken(c->st, task->uid) ||
	    is_aside(c->st, task->uid))
		return 0;
	rc = tasklog_sizes(c->st->tl, task->name, &len, &n);
	/*
	 * A sidecar cut short, removed or another task's (sidecar_foreign)
	 * beside a log as long as the index says (a task the replay did not
	 * write): its records rebuilt now, not the task set aside at its
	 * first use.
	 */
	if ((rc == -ENOENT || (!rc && n != task->nevents - task->base_n &&
			       len >= task->log_len - task->base_len)) &&
	    mend_short(c->st, c->t, task, NULL) > 0)
		rc = tasklog_sizes(c->st->tl, task->name, &len, &n);
	/* no files, not the index's yet, or damage the replay found: not this pass's */
	if (rc)
		return 0;
	if (len <= task->log_len - task->base_len && n <= task->nevents - task->base_n)
		return 0;
	if (len < task->log_len - task->base_len || n < task->nevents - task->base_n)
		return 0;	/* shorter: damage, set aside at its first use */
	if (store_grow(&c->v, &c->cap, (c->n + 1) * sizeof(*c->v)))
		return -ENOMEM;
	c->v[c->n++] = (struct tail){ *task, len, n };
	return 0;
}

struct adopt {
	struct evl_store *st;
	struct tail *tl;
	struct tasklog_rec *recs;
	char *types;			/* EVENT_TYPE_MAX + 1 per event */
	size_t *tlens;
	uint64_t k, bytes, max_gseq;	/* the events adopted */
};

static int adopt_txn(struct index_txn *t, void *arg)
{
	struct adopt *a = arg;
	struct index_task task = a->tl->task;
	struct index_meta m;
	uint64_t off = task.log_len;
	int rc = index_get_meta(t, &m);

	for (uint64_t i = 0; i < a->k && !rc; i++) {
		rc = index_add_event(t, task.uid, a->recs[i].gseq, a->types + i * (EVENT_TYPE_MAX + 1),
				     a->tlens[i], off, a->recs[i].len);
		off += a->recs[i].len;
		if (task.last_ns < a->recs[i].time_ns)
			task.last_ns = a->recs[i].time_ns;
	}
	task.log_len += a->bytes;
	task.nevents += a->k;
	if (!rc)
		rc = index_task_put(t, &task);
	m.events += a->k;
	m.log_bytes += a->bytes;
	if (m.next_gseq <= a->max_gseq)
		m.next_gseq = a->max_gseq + 1;
	return rc ? rc : index_put_meta(t, &m);
}

static void adopt_free(struct adopt *a)
{
	free(a->recs);
	free(a->tlens);
	free(a->types);
}

/*
 * The events of @task past the index that its files vouch for (@len log
 * bytes, @n records on disk): each a sidecar record that checks out, a
 * whole valid line where the last ended with the checksum its record has
 * (a line changed by damage is not adopted, to set the task aside at its
 * first read), gseqs rising.  Fills @a (recs,
 * types, k, bytes, max_gseq; adopt_free() it).  0 or -ENOMEM.
 */
static int vouched(struct evl_store *st, struct event_validator *val,
		   const struct index_task *task, uint64_t len, uint64_t n, struct adopt *a)
{
	uint64_t off = task->log_len - task->base_len, idx = task->nevents - task->base_n;
	uint64_t want = n > idx ? n - idx : 0, last = 0;
	char *line = NULL;

	a->k = a->bytes = a->max_gseq = 0;
	if (!want || len <= off)
		return 0;
	if (want > 1u << 20)
		want = 1u << 20;	/* a bound on memory: the rest is not vouched for */
	a->recs = calloc(want, sizeof(*a->recs));
	a->tlens = calloc(want, sizeof(*a->tlens));
	a->types = calloc(want, EVENT_TYPE_MAX + 1);
	if (!a->recs || !a->tlens || !a->types)
		return -ENOMEM;
	for (uint64_t got = 0; got < want;) {
		size_t chunk = want - got < 64 ? want - got : 64;
		ssize_t r = tasklog_read_recs(st->tl, task->uid, task->name, idx + got,
					      a->recs + got, chunk);

		if (r <= 0)
			break;		/* a bad record ends what is vouched for */
		got += r;
		a->k = got;
	}
	for (uint64_t i = 0; i < a->k; i++) {
		struct tasklog_rec *rec = &a->recs[i];
		struct event_error ee;
		ssize_t got;

		/*
		 * A batch whose index commit was lost came after every one the
		 * index holds: its gseqs are at least the index's next_gseq at
		 * the open (a record copied from elsewhere is not the store's).
		 */
		if (!rec->len || rec->len > (1u << 30) || rec->gseq <= last ||
		    rec->gseq < st->recover_gseq || off + a->bytes + rec->len > len) {
			a->k = i;
			break;
		}
		free(line);
		line = malloc(rec->len);
		if (!line)
			return -ENOMEM;
		got = tasklog_read(st->tl, task->uid, task->name, off + a->bytes, line, rec->len);
		if (got != (ssize_t)rec->len || line[rec->len - 1] != '\n' ||
		    tasklog_sum(line, rec->len) != rec->sum ||
		    event_validate(val, line, rec->len - 1, a->types + i * (EVENT_TYPE_MAX + 1),
				   &a->tlens[i], &ee)) {
			a->k = i;
			break;
		}
		last = rec->gseq;
		a->bytes += rec->len;
	}
	free(line);
	a->max_gseq = last;
	return 0;
}

/* Largest rest past a task's index that is moved to events.unapplied at open. */
#define TAIL_KEEP_MAX (16u << 20)

/*
 * What is past @tl's index after its vouched events: whole lines no record
 * vouches for (appended outside the store, or a batch whose journal record
 * and sidecar records are both gone) go to its events.unapplied, counted;
 * a last line without its newline is a torn write.  Then the files are cut
 * where the index ends.  0 or -errno.
 */
static int settle_rest(struct evl_store *st, struct tail *tl, uint64_t len, uint64_t n)
{
	const struct index_task *task = &tl->task;
	uint64_t rest = tl->len - len, whole = 0;
	char *buf = NULL;
	int rc = 0;

	if (rest > TAIL_KEEP_MAX) {
		evl_log(LOG_ERR, "recovery: task %s: %" PRIu64 " bytes past its index that no "
			"record vouches for, too many to move aside at open: left for evlogctl fsck "
			"--repair (the task is set aside at its first use)", task->name, rest);
		return 0;
	}
	if (rest) {
		ssize_t got;

		buf = malloc(rest);
		if (!buf)
			return -ENOMEM;
		got = tasklog_read(st->tl, task->uid, task->name, len, buf, rest);
		if (got != (ssize_t)rest) {
			free(buf);
			return got < 0 ? (int)got : -EIO;
		}
		for (uint64_t i = rest; i > 0 && !whole; i--)
			if (buf[i - 1] == '\n')
				whole = i;
	}
	if (whole) {
		uint64_t lines = 0;

		for (uint64_t i = 0; i < whole; i++)
			lines += buf[i] == '\n';
		rc = tasklog_rescue(st->tl, task->name, buf, whole);
		if (rc) {
			free(buf);
			return rc;
		}
		evl_log(LOG_WARNING, "recovery: task %s: %" PRIu64 " lines past its index that "
			"no record vouches for (appended outside the store?) moved to "
			"tasks/%s/events.unapplied", task->name, lines, task->name);
		pthread_mutex_lock(&st->lock);
		st->lines_moved += lines;
		pthread_mutex_unlock(&st->lock);
	}
	if (rest > whole)
		evl_log(LOG_INFO, "recovery: task %s: cutting %" PRIu64 " bytes of a torn write",
			task->name, rest - whole);
	free(buf);
	rc = tasklog_truncate(st->tl, task->uid, task->name, len, n);
	if (!rc)
		rc = tasklog_sync(st->tl, task->uid, task->name);
	return rc;
}

/*
 * Index the whole events of @tl past the index that its files vouch for;
 * settle the rest (settle_rest).
 */
static int adopt_tail(struct evl_store *st, struct event_validator *val, struct tail *tl)
{
	struct adopt a = { .st = st, .tl = tl };
	uint64_t len = tl->task.log_len - tl->task.base_len;
	uint64_t n = tl->task.nevents - tl->task.base_n;
	int rc = vouched(st, val, &tl->task, tl->len, tl->n, &a);

	if (rc)
		goto out;
	if (!a.k)
		goto rest;
	/* the bytes are durable before the index vouches for them */
	rc = tasklog_sync(st->tl, tl->task.uid, tl->task.name);
	if (!rc)
		rc = write_txn(st, adopt_txn, &a);
	if (rc)
		goto out;
	if (st->next_gseq <= a.max_gseq)
		st->next_gseq = a.max_gseq + 1;
	evl_log(LOG_WARNING, "recovery: task %s: %" PRIu64 " events past its index (gseq %"
		PRIu64 "-%" PRIu64 ") whose journal records are gone were indexed from its files",
		tl->task.name, a.k, a.recs[0].gseq, a.max_gseq);
	len += a.bytes;
	n += a.k;
rest:
	if (tl->len > len || tl->n > n)
		rc = settle_rest(st, tl, len, n);
out:
	adopt_free(&a);
	return rc;
}

static int adopt_tails(struct evl_store *st, struct event_validator *val)
{
	struct tails c = { .st = st };
	struct index_txn *t;
	int rc = index_begin(st->ix, false, &t);

	if (rc)
		return rc;
	c.t = t;
	rc = index_task_list(t, NULL, 0, find_tail, &c);
	index_abort(t);
	for (size_t i = 0; i < c.n && !rc; i++)
		rc = adopt_tail(st, val, &c.v[i]);
	free(c.v);
	return rc;
}

struct recover {
	struct evl_store *st;
	struct index_txn *t;		/* the read transaction of the dirty list */
	struct event_validator *val;	/* replayed events are checked again */
	bool trusted;			/* I6: files written under the running boot */
	uint64_t applied;
	struct repair *rep;
	size_t nrep, cap;
	int rc;
};

/*
 * Are task @uid's events @idx .. @idx + @n - 1, at log byte @off, what was
 * written (their sidecar records check out, and so do the checksums of
 * their bytes)?  1 yes, 0 no, -errno.  Reads what it checks once.
 */
static int written_as_recorded(struct evl_store *st, uint64_t uid, const char *name, uint64_t off,
			       uint64_t idx, uint64_t n)
{
	struct tasklog_rec recs[64];
	char *buf = NULL;
	size_t cap = 0;
	int rc = 1;

	for (uint64_t done = 0; done < n && rc == 1;) {
		size_t chunk = n - done < 64 ? n - done : 64;
		ssize_t r = tasklog_read_recs(st->tl, uid, name, idx + done, recs, chunk);

		if (r == -EILSEQ || r == 0)
			rc = 0;
		else if (r < 0)
			rc = (int)r;
		for (ssize_t i = 0; rc == 1 && i < r; i++) {
			ssize_t got;

			if (recs[i].len > cap) {
				char *p = realloc(buf, recs[i].len);

				if (!p) {
					rc = -ENOMEM;
					break;
				}
				buf = p;
				cap = recs[i].len;
			}
			got = tasklog_read(st->tl, uid, name, off, buf, recs[i].len);
			if (got < 0)
				rc = (int)got;
			else if ((size_t)got != recs[i].len ||
				 tasklog_sum(buf, recs[i].len) != recs[i].sum)
				rc = 0;
			off += recs[i].len;
		}
		done += r > 0 ? (uint64_t)r : 0;
	}
	free(buf);
	return rc;
}

struct mend {
	struct evl_store *st;
	const struct index_task *task;	/* lengths in the files */
	uint64_t base, len;		/* the task's base_len; its log's size */
	uint64_t have, k, end;		/* records there; events seen; where the last ended */
	uint64_t upto;			/* records rebuilt up to here only */
	struct tasklog_rec recs[64];
	size_t n;
	char *buf;
	size_t cap;
	int rc;
};

static int mend_flush(struct mend *m)
{
	int rc = m->n ? tasklog_write_recs(m->st->tl, m->task->uid, m->task->name,
					   m->k - m->n, m->recs, m->n) : 0;

	m->n = 0;
	return rc;
}

/* One of the task's events in log order: its record, if it is missing and a whole line is there. */
static int mend_cb(void *arg, const struct index_event *ev)
{
	struct mend *m = arg;
	uint64_t off = ev->off - m->base;
	char before = '\n';
	ssize_t got;

	if (ev->off < m->base)
		return 0;	/* dropped by retention */
	if (m->k >= m->upto)
		return 1;
	if (off != m->end || !ev->len || ev->len > m->len - off)
		return 1;	/* not where the last ended, or past the log: no longer agreeing */
	m->end = off + ev->len;
	if (m->k++ < m->have)
		return 0;
	if (ev->len > m->cap) {
		char *p = realloc(m->buf, ev->len);

		if (!p) {
			m->rc = -ENOMEM;
			return 1;
		}
		m->buf = p;
		m->cap = ev->len;
	}
	got = tasklog_read(m->st->tl, m->task->uid, m->task->name, off, m->buf, ev->len);
	if (got == (ssize_t)ev->len && off)
		got = tasklog_read(m->st->tl, m->task->uid, m->task->name, off - 1, &before, 1) == 1
		      ? got : -EIO;
	if (got != (ssize_t)ev->len || m->buf[ev->len - 1] != '\n' || before != '\n') {
		m->k--;
		return 1;	/* not a whole line there */
	}
	m->recs[m->n++] = (struct tasklog_rec){ ev->gseq, m->task->last_ns, ev->len,
						tasklog_sum(m->buf, ev->len) };
	if (m->n == 64 && (m->rc = mend_flush(m)))
		return 1;
	return 0;
}

struct first_event {
	uint64_t base;
	struct index_event ev;
};

static int first_event_cb(void *arg, const struct index_event *ev)
{
	struct first_event *f = arg;

	if (ev->off < f->base)
		return 0;	/* dropped by retention */
	f->ev = *ev;
	return 1;
}

/*
 * During recovery: is the sidecar of task @task (lengths in its files; @n
 * records, a log of @len bytes) another log's, one copied over it?  Its
 * first record must be the task's first event: the index's, or for a task
 * the index has no event of yet, that of @p (the replayed append that
 * could not be written).  A gseq is one event's, so another task's sidecar
 * never has it, while a copy of this task's own, older or cut short, does.
 * If not, and the log holds that event where it should (the index's: a
 * whole line of its length at byte 0; @p's: its bytes), the sidecar is
 * kept as events.meta.foreign and an empty one made, for mend_records and
 * the replay to rebuild, as fsck --repair does.  Else the records would
 * give the log's events another task's gseqs, or the task would be set
 * aside and its journaled events sent to events.unapplied.  1 if the
 * sidecar was kept aside, 0 if not (it is this log's, or there is nothing
 * to tell by), or -errno.
 */
static int sidecar_foreign(struct evl_store *st, struct index_txn *t,
			   const struct index_task *task, uint64_t n, uint64_t len,
			   const struct pend *p)
{
	struct first_event f = { .base = task->base_len };
	struct tasklog_rec r;
	char *line;
	ssize_t got;
	int rc;

	if (!st->recovering || !n)
		return 0;
	if (task->nevents) {
		struct index_view *v;

		rc = index_view_open(t, "", 0, task->uid, &v);
		if (rc)
			return rc == -ENOENT ? 0 : rc;
		rc = index_view_iter(v, 0, first_event_cb, &f);
		index_view_free(v);
		if (rc <= 0)
			return rc;
		if (f.ev.off != task->base_len)
			return 0;
	} else if (p && p->kind == REC_APPEND && p->n && !task->log_len) {
		f.ev = (struct index_event){ .gseq = p->gseq, .len = p->ev[0].len };
	} else {
		return 0;
	}
	got = tasklog_read_recs(st->tl, task->uid, task->name, 0, &r, 1);
	if (got != 1)
		return got < 0 && !task_damage(got) && got != -EILSEQ ? (int)got : 0;
	if (r.gseq == f.ev.gseq && r.len == f.ev.len)
		return 0;
	/* the log must hold that event where it says: else not ours to tell */
	if (!f.ev.len || f.ev.len > len)
		return 0;
	line = malloc(f.ev.len);
	if (!line)
		return -ENOMEM;
	got = tasklog_read(st->tl, task->uid, task->name, 0, line, f.ev.len);
	if (got != (ssize_t)f.ev.len)
		rc = 0;
	else if (task->nevents)
		rc = line[f.ev.len - 1] == '\n' && !memchr(line, '\n', f.ev.len - 1);
	else
		rc = !memcmp(line, p->data + p->ev[0].off, f.ev.len);
	free(line);
	if (!rc)
		return got < 0 && !task_damage(got) ? (int)got : 0;
	rc = tasklog_meta_foreign(st->tl, task->uid, task->name);
	if (rc)
		return rc;
	evl_log(LOG_WARNING, "recovery: task %s: its sidecar describes another log (its first "
		"record is gseq %" PRIu64 ", %" PRIu32 " bytes; the log's first event is gseq %"
		PRIu64 ", %" PRIu32 " bytes): kept as events.meta.foreign, its records rebuilt",
		task->name, r.gseq, r.len, f.ev.gseq, f.ev.len);
	return 1;
}

/*
 * Task @task (lengths in its files) has fewer sidecar records (@n) than the
 * index has events, and its log holds at least what the index covers
 * (@len bytes): a sidecar cut short, emptied or replaced by a shorter one.
 * Its missing records are rebuilt from the index and the log, as far as
 * each event the index has is a whole line at exactly that byte (its gseq;
 * its time the task's last append, which makes retention keep it longer,
 * never shorter), as fsck --repair does.  Else the recovery would set the
 * task aside, and its journaled events would go to events.unapplied.
 * Records rebuilt (>= 0) or -errno.
 */
static int mend_records(struct evl_store *st, struct index_txn *t, struct index_task *task,
			uint64_t n, uint64_t len, uint64_t upto)
{
	struct mend m = { .st = st, .task = task, .base = task->base_len, .len = len, .have = n,
			  .upto = upto };
	struct index_view *v;
	int rc;

	rc = index_view_open(t, "", 0, task->uid, &v);
	if (rc)
		return rc == -ENOENT ? 0 : rc;
	rc = tasklog_truncate(st->tl, task->uid, task->name, len, n);	/* no partial record */
	if (!rc) {
		rc = index_view_iter(v, 0, mend_cb, &m);
		rc = rc > 0 ? 0 : rc;
	}
	if (!rc)
		rc = m.rc;
	if (!rc)
		rc = mend_flush(&m);
	index_view_free(v);
	free(m.buf);
	if (rc)
		return rc;
	if (m.k > n)
		evl_log(LOG_WARNING, "task %s: its sidecar had %" PRIu64 " of the %" PRIu64
			" records the index has: %" PRIu64 " rebuilt from the log and the index",
			task->name, n, task->nevents, m.k - n);
	return (int)(m.k - n);
}

/*
 * mend_records for task @task (as the index has it) if its sidecar is
 * shorter than the index and its log is not, or another task's
 * (sidecar_foreign, with @p the append to write, or NULL).  > 0 if a
 * sidecar was made or records rebuilt (a write may be retried), 0 if not,
 * or -errno.
 */
static int mend_short(struct evl_store *st, struct index_txn *t, const struct index_task *task,
		      const struct pend *p)
{
	struct index_task ft = *task;
	uint64_t len, n;
	int rc;

	ft.log_len -= ft.base_len;
	ft.nevents -= ft.base_n;
	bool made = false;

	rc = tasklog_sizes(st->tl, task->name, &len, &n);
	/* a sidecar removed before the mount (not while mounted: item 6 sets it aside) */
	if (rc == -ENOENT && st->recovering && tasklog_recreate_meta(st->tl, task->name) > 0) {
		made = true;
		rc = tasklog_sizes(st->tl, task->name, &len, &n);
	}
	/* ... or another task's copied over it */
	if (!rc && n && len >= ft.log_len) {
		rc = sidecar_foreign(st, t, &ft, n, len, p);
		if (rc < 0)
			return rc;
		if (rc) {
			made = true;
			n = 0;
		}
		rc = 0;
	}
	if (rc || n >= ft.nevents || len < ft.log_len)
		return rc == -ENOENT ? 0 : rc ? rc : made;
	rc = mend_records(st, t, &ft, n, len, ft.nevents);
	return rc < 0 ? rc : rc + made;
}

static int dirty_cb(void *arg, uint64_t uid, uint64_t ck_len, uint64_t ck_n,
		    uint64_t gseq_from)
{
	struct recover *r = arg;
	struct evl_store *st = r->st;
	struct index_task task;
	uint64_t len, n;
	bool missing, trust, changed = false;
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
	if (rc == -ENOENT && task.nevents && tasklog_recreate_meta(st->tl, task.name) > 0)
		rc = tasklog_sizes(st->tl, task.name, &len, &n);	/* a sidecar removed: mended below */
	if (rc && task_damage(rc) && (ck_len || ck_n)) {
		/*
		 * Files it had at its checkpoint are gone or unusable: only
		 * fsck --repair can tell what they still hold.  The other tasks
		 * open; its records are skipped, counted and named.
		 */
		set_aside_err(st, uid, task.name, rc);
		return 0;
	}
	missing = rc == -ENOENT;
	if (missing)
		len = n = 0;
	else if (rc)
		return rc;
	/*
	 * Only the records of its last checkpoint: those since are rebuilt
	 * with their events from the journal (whose bytes, not the log's,
	 * are the ones written: a checksum of the log's would vouch for bytes
	 * changed since).
	 */
	if (!missing && n && len >= ck_len) {
		rc = sidecar_foreign(st, r->t, &task, n, len, NULL);	/* another task's over it */
		if (rc < 0 && task_damage(rc)) {
			set_aside_err(st, uid, task.name, rc);
			return 0;
		}
		if (rc < 0)
			return rc;
		if (rc)
			n = 0;
	}
	if (!missing && n < ck_n && len >= ck_len) {
		rc = mend_records(st, r->t, &task, n, len, ck_n);
		if (rc < 0 && task_damage(rc)) {
			set_aside_err(st, uid, task.name, rc);
			return 0;
		}
		if (rc < 0)
			return rc;
		n += rc;
	}
	/* I6, or all its bytes are from the last checkpoint or before (synced then) */
	trust = r->trusted || (task.log_len == ck_len && task.nevents == ck_n);
	if (trust && len >= task.log_len && n >= task.nevents) {
		/*
		 * What it got since its checkpoint is in the journal too: bytes
		 * changed since they were written (damage, in the same boot)
		 * are written again from there, not found later by a reader
		 * (who would set the task aside) or moved out by a salvage.
		 */
		rc = written_as_recorded(st, uid, task.name, ck_len, ck_n, task.nevents - ck_n);
		if (rc < 0 && task_damage(rc)) {
			set_aside_err(st, uid, task.name, rc);
			return 0;
		}
		if (rc < 0)
			return rc;
		/*
		 * Bytes past the index: a batch whose index commit the crash
		 * lost (the replay finds them as it writes them again), or
		 * what settle_tails sorts out after the replay.  Nothing here
		 * may be cut before the replay has had its say.
		 */
		if (rc)
			return 0;
		changed = true;
	}
	/* power loss took log bytes the index covers: rewrite them from the journal */
	if (len < ck_len || n < ck_n) {
		char why[200];

		/*
		 * What its last checkpoint synced is gone: a file cut or
		 * replaced (damage), or a disk that lost synced data.  Only
		 * fsck --repair can tell what its files still hold; the other
		 * tasks open (item 6).
		 */
		snprintf(why, sizeof(why), "its files are shorter than at the last checkpoint "
			 "(log %" PRIu64 " of %" PRIu64 " bytes, sidecar %" PRIu64 " of %" PRIu64
			 " records)", len, ck_len, n, ck_n);
		set_aside(st, uid, task.name, why);
		return 0;
	}
	if (changed)
		evl_log(LOG_WARNING, "recovery: task %s: its events since the last checkpoint are "
			"not what was written (changed on disk): rewriting its last %" PRIu64
			" bytes from the journal", task.name, task.log_len - ck_len);
	else if (!r->trusted)
		evl_log(LOG_INFO, "recovery: task %s: rewriting its last %" PRIu64 " bytes from "
			"the journal (written before a reboot or a failed fsync)", task.name,
			task.log_len - ck_len);
	else if (len < task.log_len)
		evl_log(LOG_WARNING, "recovery: task %s: %" PRIu64 " bytes lost by the disk, "
			"rewriting them from the journal", task.name, task.log_len - len);
	else
		evl_log(LOG_WARNING, "recovery: task %s: its sidecar lacks records since the last "
			"checkpoint (%" PRIu64 " of %" PRIu64 "): rewriting its last %" PRIu64
			" bytes from the journal", task.name, n, task.nevents, task.log_len - ck_len);
	/* created since the last checkpoint, and its entries lost with a failed fsync */
	if (missing && (rc = tasklog_create(st->tl, uid, task.name, task.has_owner ?
					    &(struct tasklog_owner){ task.owner_uid,
								     task.owner_gid, task.mode } :
					    NULL)))
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
		recs[i] = (struct tasklog_rec){ p->gseq + i, p->time_ns, p->ev[i].len, 0 };
	rc = tasklog_write(st->tl, rp->uid, rp->name, rp->pos, p->data, p->data_len,
			   rp->idx, recs, p->n, 0);	/* cut to rp->pos before: nothing past it */
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
		    tlen != e->tlen || memcmp(type, ev_type(p, e), tlen)) {
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
	if (st->pending_mem > st->opt.max_pending)
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

/* The journal's stats; none on read-only media. */
static void store_journal_stats(struct evl_store *st, struct journal_stats *js)
{
	if (st->jn)
		journal_get_stats(st->jn, js);
	else
		memset(js, 0, sizeof(*js));
}

/*
 * ---- a store on read-only media ----
 *
 * -o ro on a file system mounted read-only (a backup on a DVD, a read-only
 * bind mount): nothing can be written there, not even LMDB's lock file or
 * the cut of a torn journal tail.  A store closed cleanly needs nothing
 * written to be served: its index is opened read-only, no journal is kept
 * and no applier runs.  One that needs recovery (journal records past the
 * index, a delete or a retention rewrite cut short, a task written since
 * the last checkpoint) is refused: its recovery must be written first.
 */
static bool on_read_only_media(const char *dir)
{
	struct statvfs sv;

	return !statvfs(dir, &sv) && (sv.f_flag & ST_RDONLY);
}

static int count_dirty(void *arg, uint64_t uid, uint64_t log_len, uint64_t nevents,
		       uint64_t gseq_from)
{
	(void)uid, (void)log_len, (void)nevents, (void)gseq_from;
	(*(uint64_t *)arg)++;
	return 0;
}

static int count_trims(void *arg, const struct index_trim *tr)
{
	(void)tr;
	(*(uint64_t *)arg)++;
	return 0;
}

static int count_trash(void *arg, uint64_t uid)
{
	(void)uid;
	(*(uint64_t *)arg)++;
	return 0;
}

static int count_records(void *arg, uint64_t lsn, unsigned type, const void *payload, size_t len)
{
	(void)lsn, (void)type, (void)payload, (void)len;
	(*(uint64_t *)arg)++;
	return 0;
}

static int open_frozen(struct evl_store *st)
{
	struct journal_scan js;
	struct index_txn *t;
	struct index_meta m;
	uint64_t dirty = 0, trims = 0, trash = 0, records = 0;
	char path[4200];
	int rc;

	rc = index_begin(st->ix, false, &t);
	if (rc)
		return rc;
	rc = index_get_meta(t, &m);
	if (!rc)
		rc = index_dirty_list(t, count_dirty, &dirty);
	if (!rc)
		rc = index_trim_list(t, count_trims, &trims);
	index_abort(t);
	if (!rc)
		rc = tasklog_trash_list(st->tl, count_trash, &trash);
	snprintf(path, sizeof(path), "%s/journal", st->dir);
	if (!rc)
		rc = journal_scan(path, m.applied_lsn, count_records, &records, &js);
	if (rc)
		return rc;
	/* store_recover's position checks (journal_open: check_end) */
	if (m.ckpt_lsn > m.applied_lsn || (js.segments && !js.damage.lost && !js.damage.segments &&
					     !js.bad_bytes && js.last_lsn < m.applied_lsn)) {
		evl_log(LOG_ERR, "index %s/index/data.mdb is damaged: it says journal records up to %"
			PRIu64 " are applied (checkpoint %" PRIu64 "), but the journal ends at %" PRIu64
			"; nothing is served from it: copy the store (cp -a) and run evlogctl reindex"
			" on the copy", st->dir, m.applied_lsn, m.ckpt_lsn, js.last_lsn);
		return -EUCLEAN;
	}
	/* records at or before the index's applied lsn are in the logs already */
	if (js.records && js.last_lsn <= m.applied_lsn)
		records = 0;
	if (dirty || trims || trash || records || js.bad_bytes || js.damage.lost) {
		evl_log(LOG_ERR, "store %s is on read-only media and was not closed cleanly "
			"(%" PRIu64 " tasks written since its last checkpoint, %" PRIu64 " journal "
			"records to apply, %" PRIu64 " deletes and %" PRIu64 " retention rewrites "
			"to finish): its recovery must be written first; mount it read-write once, "
			"or copy it (cp -a) and mount the copy", st->dir, dirty, records, trash,
			trims);
		return -EROFS;
	}
	st->next_gseq = m.next_gseq;
	st->next_uid = m.next_uid;
	st->applied_lsn = st->durable_lsn = m.applied_lsn;
	st->frozen = true;
	evl_log(LOG_INFO, "store %s is on read-only media: served as it is, nothing written",
		st->dir);
	return 0;
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
	/*
	 * Any size: the limit in force may be lower than the one they were
	 * written under.  EVENT_STORED: records journaled by an earlier
	 * version, whose validator was laxer, must still replay (and the
	 * events a task's files vouch for, dirty_cb and adopt_tails, check).
	 */
	rc = event_validator_new_ex(st->opt.type_field, (size_t)1 << 30, EVENT_STORED, &r.val);
	if (rc)
		return rc;
	rc = index_begin(st->ix, false, &t);
	if (rc)
		goto out;
	rc = index_get_meta(t, &m);
	st->recover_gseq = rc ? UINT64_MAX : m.next_gseq;
	if (!rc)
		rc = index_get_boot(t, boot, sizeof(boot));
	r.trusted = !rc && now[0] && !strcmp(boot, now);
	if (!rc)
		r.t = t;
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
	/*
	 * Where the replay starts: a flipped bit moving it ahead (damage sweep
	 * seed 99602 case 638: 186 read as 131258) would skip every journaled
	 * event past the true one, without a word.  A checkpoint is taken at
	 * what was applied, never past it; the journal never ends before it
	 * (journal_open: check_end).
	 */
	jo.check_end = true;
	if (m.ckpt_lsn > m.applied_lsn) {
		evl_log(LOG_ERR, "index %s/index/data.mdb is damaged: its checkpoint (journal record"
			" %" PRIu64 ") is past what it applied (%" PRIu64 ")", st->dir, m.ckpt_lsn,
			m.applied_lsn);
		rc = -EUCLEAN;
	}
	if (rc == -EUCLEAN)
		goto damaged;

	/*
	 * I2 lets a crash leave, past the index's lengths, the bytes of a
	 * batch whose commit it lost.  A task dirty at the crash was cut back
	 * above; one the lost commit made dirty was not (its index entry is
	 * the lost one): the replay of the same records writes them again.
	 * After a kill -9 they are those very bytes; after a power loss any
	 * part of them may be a hole instead.
	 */
	st->replay_after_loss = !r.trusted;
	snprintf(path, sizeof(path), "%s/journal", st->dir);
	rc = journal_open(path, r.nrep ? m.ckpt_lsn : m.applied_lsn, &jo, replay_cb, &r, &st->jn);
damaged:
	if (rc == -EUCLEAN)
		evl_log(LOG_ERR, "nothing is served from the index of %s: evlogctl reindex %s builds"
			" a new one from the task logs and the journal", st->dir, st->dir);
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

		store_journal_stats(st, &js);
		st->durable_lsn = js.durable_lsn;
	}
	rc = apply_all(st);
	st->replay_after_loss = false;	/* the replay is written: files as written from here */
	if (!rc)
		rc = trim_recover_dropping(st);
	if (!rc)
		rc = adopt_tails(st, r.val);
	/* I6: what this boot writes from now on is trusted by a reopen in it */
	if (!rc && !r.trusted && now[0])
		rc = write_txn(st, boot_txn, now);
	if (rc)
		goto out;
	/* a deletion whose purge was cut short goes on in the background */
	st->purge_more = true;
out:
	st->replay_after_loss = false;
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

int evl_task_check_name(const char *name, size_t len)
{
	if (len > 255)
		return -ENAMETOOLONG;
	if (len && name[0] == '.')
		return -EINVAL;
	return event_check_name(name, len);
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
	store_unlock(st->dir, &st->dlock);
	pthread_mutex_destroy(&st->meta_lock);
	pthread_mutex_destroy(&st->append_lock);
	pthread_mutex_destroy(&st->lock);
	pthread_mutex_destroy(&st->tmem_lock);
	pthread_mutex_destroy(&st->aside_lock);
	pthread_cond_destroy(&st->applier_cv);
	pthread_cond_destroy(&st->applied_cv);
	pthread_rwlock_destroy(&st->swap_lock);
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
	rc = store_lock(dir, st->opt.holder, &st->dlock);
	st->opt.holder = NULL;	/* the caller's string: not kept */
	if (rc == -EBUSY && evl_store_holder(dir, path, sizeof(path)) == 1)
		evl_log(LOG_ERR, "store %s is in use by %s", dir, path);
	if (rc)
		goto fail;
	snprintf(path, sizeof(path), "%s/tasks", dir);
	rc = tasklog_open(path, fd_cache_size(st->opt.max_fds), &st->tl);
	if (rc)
		goto fail;
	tasklog_on_sync_failed(st->tl, sync_failed, st);
	snprintf(path, sizeof(path), "%s/index", dir);
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
	rc = index_open_ex(path, opts->type_field, st->frozen ? INDEX_RDONLY : 0, &st->ix);
	if (rc)
		goto fail;
	index_on_sync_failed(st->ix, sync_failed, st);
	rc = stamp_open(st);
	if (!rc) {
		st->recovering = true;
		rc = st->frozen ? open_frozen(st) : store_recover(st);
		st->recovering = false;
	}
	if (!rc && atomic_load(&st->sync_failed))
		rc = -EIO;	/* the repair's syncs report their own failures; this is a net */
	if (!rc) {
		if (!st->frozen)
			store_reserve(st);
		rc = compactor_new(st, &st->cp);
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
/*
 * Wait until the applier has applied everything up to @lsn (appends held
 * by hold_apply too), or, for delete @p, until it applied @p ahead of the
 * rest.  With @give_up, return the applier's error once a batch failed
 * after the wait began (a full disk) instead of waiting for the cause to
 * go.  0, -EIO from the journal, or that error.
 */
static int wait_applied(struct evl_store *st, uint64_t lsn, const struct pend *p, bool give_up)
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

int evl_store_checkpoint(struct evl_store *st)
{
	uint64_t lsn;
	int rc;

	if (st->opt.read_only)
		return -EROFS;
	pthread_mutex_lock(&st->lock);
	lsn = st->enqueued_lsn;
	pthread_mutex_unlock(&st->lock);
	rc = wait_applied(st, lsn, NULL, true);
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
	compactor_free(st->cp);		/* waits for it */
	st->cp = NULL;
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

/* ---- tasks ---- */

static uint64_t txn_applied(struct index_txn *t)
{
	struct index_meta m;

	return index_get_meta(t, &m) ? 0 : m.applied_lsn;
}

/* Add task @uid's pending part, as a snapshot applied up to @applied sees it, to @o. */
static void add_pending(struct evl_store *st, uint64_t uid, uint64_t applied,
			struct evl_task_info *o)
{
	uint64_t bytes, events, last_ns;

	pthread_mutex_lock(&st->tmem_lock);
	tmem_get(st, uid, applied, &bytes, &events, &last_ns);
	pthread_mutex_unlock(&st->tmem_lock);
	o->size += bytes;
	o->events += events;
	/* the last append, applied or not (the index has the applied ones') */
	if (o->last_ns < last_ns)
		o->last_ns = last_ns;
}

static void fill_info(struct evl_store *st, const struct index_task *t, uint64_t applied,
		      struct evl_task_info *o)
{
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
	add_pending(st, t->uid, applied, o);
}

/* A task whose create @p is not applied yet. */
static void fill_pending_info(struct evl_store *st, const struct pend *p, uint64_t applied,
			      struct evl_task_info *o)
{
	memset(o, 0, sizeof(*o));
	o->uid = p->uid;
	o->created_ns = o->last_ns = p->time_ns;
	o->has_owner = p->has_owner;
	o->owner_uid = p->owner_uid;
	o->owner_gid = p->owner_gid;
	o->mode = p->mode;
	memcpy(o->name, p->name, p->name_len);
	o->name[p->name_len] = '\0';
	add_pending(st, p->uid, applied, o);
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

/*
 * With st->lock and snapshot @t begun under it: the live task @name (or
 * @uid, when @name is NULL), from the index, or from its create record if
 * that is not applied yet (then *@task is NULL-like: uid 0).  0, -ENOENT
 * or -errno.
 */
static int find_task(struct evl_store *st, struct index_txn *t, const char *name, uint64_t uid,
		     struct index_task *task, struct evl_task_info *out)
{
	uint64_t applied = txn_applied(t);
	size_t len = name ? strlen(name) : 0;
	const struct pend *p;
	int rc;

	rc = name ? index_task_by_name(t, name, len, task) : index_task_by_uid(t, uid, task);
	if (!rc && task->state == TASK_LIVE) {
		if (out)
			fill_info(st, task, applied, out);
		return 0;
	}
	if (rc && rc != -ENOENT)
		return rc;
	p = pc_find(st, name, len, uid, applied);
	if (!p)
		return -ENOENT;
	memset(task, 0, sizeof(*task));
	if (out)
		fill_pending_info(st, p, applied, out);
	return 0;
}

int evl_task_lookup(struct evl_store *st, const char *name, struct evl_task_info *out)
{
	struct index_task task;
	struct index_txn *t;
	int rc;

	rc = begin_read(st, &t);
	if (rc)
		return rc;
	rc = find_task(st, t, name, 0, &task, out);
	pthread_mutex_unlock(&st->lock);
	index_abort(t);
	return rc;
}

int evl_task_stat(struct evl_store *st, uint64_t uid, struct evl_task_info *out)
{
	struct index_task task;
	struct index_txn *t;
	int rc;

	rc = begin_read(st, &t);
	if (rc)
		return rc;
	rc = find_task(st, t, NULL, uid, &task, out);
	pthread_mutex_unlock(&st->lock);
	index_abort(t);
	return rc;
}

/* Names in the index's order: bytes, then length. */
static int name_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	return c ? c : (alen > blen) - (alen < blen);
}

static int info_cmp(const void *a, const void *b)
{
	const struct evl_task_info *x = a, *y = b;

	return name_cmp(x->name, strlen(x->name), y->name, strlen(y->name));
}

struct list_ctx {
	struct evl_store *st;
	uint64_t applied;
	int (*cb)(void *arg, const struct evl_task_info *task);
	void *arg;
	struct evl_task_info *pend;	/* tasks whose create is pending, by name */
	size_t npend, next, cap;	/* cap in bytes */
};

static int list_cb(void *arg, const struct index_task *task)
{
	struct list_ctx *c = arg;
	struct evl_task_info info;
	int rc = 0;

	/* the pending tasks that sort before this one first */
	while (!rc && c->next < c->npend &&
	       name_cmp(c->pend[c->next].name, strlen(c->pend[c->next].name), task->name,
			task->name_len) < 0)
		rc = c->cb(c->arg, &c->pend[c->next++]);
	if (rc)
		return rc;
	/*
	 * tmem_lock only: a transaction is open.  Appends the applier commits
	 * and drops meanwhile may be missing from the size: a listing's sizes
	 * are a snapshot's, evl_task_stat's are exact.
	 */
	fill_info(c->st, task, c->applied, &info);
	return c->cb(c->arg, &info);
}

int evl_task_list(struct evl_store *st, const char *after,
		  int (*cb)(void *arg, const struct evl_task_info *task), void *arg)
{
	struct list_ctx c = { .st = st, .cb = cb, .arg = arg };
	size_t alen = after ? strlen(after) : 0;
	struct index_txn *t;
	int rc;

	rc = begin_read(st, &t);
	if (rc)
		return rc;
	c.applied = txn_applied(t);
	for (size_t b = 0; b < PC_BUCKETS && !rc; b++)
		for (const struct pend *p = st->pc_uid[b]; p && !rc; p = p->by_uid) {
			/* pending creates only: the table holds pending deletes too */
			if (p->kind != REC_CREATE || p->lsn <= c.applied || p->gone ||
			    (after && name_cmp(p->name, p->name_len, after, alen) <= 0))
				continue;
			rc = store_grow(&c.pend, &c.cap, (c.npend + 1) * sizeof(*c.pend));
			if (!rc)
				fill_pending_info(st, p, c.applied, &c.pend[c.npend++]);
		}
	pthread_mutex_unlock(&st->lock);
	if (c.npend)
		qsort(c.pend, c.npend, sizeof(*c.pend), info_cmp);
	if (!rc)
		rc = index_task_list(t, after, alen, list_cb, &c);
	index_abort(t);
	while (!rc && c.next < c.npend)
		rc = cb(arg, &c.pend[c.next++]);
	free(c.pend);
	return rc;
}

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

/*
 * Journal a create or delete record (payload @buf, taken over) and put it
 * on the pending list; *@pp is the record (valid while it is not applied:
 * see wait_applied) and *@lsnp its lsn.  With meta_lock.  With @check, it
 * runs first with append_lock held (no append can be journaled between it
 * and the record); a non-zero result is returned instead.
 */
static int submit_meta(struct evl_store *st, unsigned kind, unsigned char *buf, size_t len,
		       int (*check)(struct evl_store *st, void *arg), void *arg,
		       struct pend **pp, uint64_t *lsnp)
{
	struct iovec iov = { buf, len };
	struct pend *p;
	uint64_t lsn;
	int rc;

	p = pend_parse(kind, buf, len);
	if (!p)
		return -ENOMEM;
	pthread_mutex_lock(&st->append_lock);
	rc = check ? check(st, arg) : 0;
	if (!rc)
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
	*pp = p;
	*lsnp = lsn;
	return 0;
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
	struct pend *p;
	uint64_t uid, lsn;
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
	{
		/*
		 * A task directory the index does not know, with events in its
		 * log (restored or copied back by hand): its create would empty
		 * it.  Refused; reindex adopts it.
		 */
		char path[4400];
		struct stat sb;

		snprintf(path, sizeof(path), "%s/tasks/%s/events", st->dir, name);
		if (!stat(path, &sb) && sb.st_size > 0) {
			evl_log(LOG_ERR, "task %s: %s exists, with %lld bytes, but the index does not "
				"know it (restored or copied back?): not made anew over it; "
				"evlogctl reindex adopts it", name, path, (long long)sb.st_size);
			rc = -EEXIST;
			goto out;
		}
	}
	buf = malloc(18 + len + 12);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	pthread_mutex_lock(&st->lock);
	uid = st->next_uid++;
	pthread_mutex_unlock(&st->lock);
	put_le64(buf, uid);
	put_le64(buf + 8, wall_ns());
	put_le16(buf + 16, len);
	memcpy(buf + 18, name, len);
	if (owner) {
		put_le32(buf + 18 + len, owner->uid);
		put_le32(buf + 22 + len, owner->gid);
		put_le32(buf + 26 + len, owner->mode & 07777);
	}
	rc = submit_meta(st, REC_CREATE, buf, 18 + len + (owner ? 12 : 0), NULL, NULL, &p, &lsn);
	pthread_mutex_unlock(&st->meta_lock);
	/*
	 * The task exists now (the pending part shows it): what is left is to
	 * make the record durable, not to wait for the applier, which may be
	 * busy with other tasks' appends (or unable to apply: a full disk).
	 */
	if (!rc)
		rc = journal_wait(st->jn, lsn);
	if (!rc)
		evl_log(LOG_DEBUG, "task %s created", name);
	return rc;
out:
	pthread_mutex_unlock(&st->meta_lock);
	return rc;
}

struct delete_check {
	uint64_t uid, idle_before;
	struct evl_task_info info;	/* the task, as it is deleted */
};

/*
 * With append_lock held: is task @uid live (applied or pending) with no
 * delete journaled, and (idle_before) last written before it, counting
 * appends not applied yet?  0, -ENOENT or -EBUSY (written since).
 */
static int delete_check(struct evl_store *st, void *arg)
{
	struct delete_check *d = arg;
	struct index_task task;
	struct index_txn *t;
	int rc;

	rc = begin_read(st, &t);
	if (rc)
		return rc;
	rc = find_task(st, t, NULL, d->uid, &task, &d->info);
	if (!rc && pd_find(st, d->uid))
		rc = -ENOENT;	/* journaled, not applied yet */
	if (!rc && d->idle_before && d->info.last_ns >= d->idle_before)
		rc = -EBUSY;
	pthread_mutex_unlock(&st->lock);
	index_abort(t);
	return rc;
}

int evl_task_delete_uid(struct evl_store *st, uint64_t uid, uint64_t idle_before_ns,
			struct evl_task_info *out)
{
	struct delete_check d = { .uid = uid, .idle_before = idle_before_ns };
	unsigned char *buf;
	struct pend *p;
	uint64_t lsn;
	int rc;

	if (st->opt.read_only)
		return -EROFS;
	if (st->opt.nodelete)
		return -EPERM;
	if (!uid)
		return -ENOENT;	/* uids start at 1 */
	buf = malloc(16);
	if (!buf)
		return -ENOMEM;
	put_le64(buf, uid);
	put_le64(buf + 8, wall_ns());
	pthread_mutex_lock(&st->meta_lock);
	rc = submit_meta(st, REC_DELETE, buf, 16, delete_check, &d, &p, &lsn);
	pthread_mutex_unlock(&st->meta_lock);
	/* the task leaves the views when the delete is applied, in order or ahead */
	if (!rc)
		rc = wait_applied(st, lsn, p, false);
	if (!rc && out)
		*out = d.info;
	/* an explicit delete is worth a line; an expiry run logs one summary */
	if (!rc)
		evl_log(idle_before_ns ? LOG_DEBUG : LOG_INFO, "task %s deleted", d.info.name);
	return rc;
}

int evl_task_delete(struct evl_store *st, const char *name)
{
	struct evl_task_info info;
	int rc;

	if (st->opt.read_only)
		return -EROFS;
	if (st->opt.nodelete)
		return -EPERM;
	rc = evl_task_lookup(st, name, &info);
	/* a task of that name made meanwhile has another uid: not deleted */
	return rc ? rc : evl_task_delete_uid(st, info.uid, 0, NULL);
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
		if (p->kind != REC_APPEND || p->lsn <= applied_lsn || (uid && p->uid != uid) ||
		    p->gone)
			continue;
		for (uint32_t i = 0; i < p->n; i++) {
			const struct pend_ev *e = &p->ev[i];
			int rc;

			if (e->tlen < plen || memcmp(ev_type(p, e), prefix, plen))
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

/*
 * Serve nothing unproven: task @uid's log up to physical byte @upto must
 * match its sidecar's checksums (tasklog_verify; each byte is hashed once
 * a mount).  A task whose bytes do not is set aside.  0, -EIO or -errno.
 */
static int prove(struct evl_store *st, uint64_t uid, const struct index_task *task,
		 uint64_t upto, uint64_t *proven)
{
	char why[256] = "";
	int rc;

	rc = tasklog_verify(st->tl, uid, task->name, task->base_len, task->base_n,
			    task->log_len - task->base_len, upto, proven, why, sizeof(why));
	if (rc && task_damage(rc)) {
		if (why[0])
			set_aside(st, uid, task->name, why);
		else
			set_aside_err(st, uid, task->name, rc);
		rc = -EIO;
	}
	return rc;
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
	rc = find_task(st, t, NULL, uid, &task, NULL);
	if (rc) {
		pthread_mutex_unlock(&st->lock);
		index_abort(t);
		return rc;
	}
	/* the file's applied bytes (none while the task's create is pending) */
	flen = task.log_len - task.base_len;
	pend = copy_pending(st, txn_applied(t), uid, "", 0, flen, off, buf, len);
	pthread_mutex_unlock(&st->lock);
	index_abort(t);

	end = flen + pend;
	if (is_aside(st, uid))
		return -EIO;	/* nothing of it, not even its size's worth of pending */
	if (off >= end)
		return 0;
	if (len > end - off)
		len = end - off;
	if (off < flen) {
		size_t want = flen - off < len ? flen - off : len;

		if (switch_broken(st, uid) || is_aside(st, uid))
			return -EIO;
		n = tasklog_read(st->tl, uid, task.name, off, buf, want);
		if (n < 0 && task_damage(n)) {
			set_aside_err(st, uid, task.name, n);
			n = -EIO;
		}
		if (n < 0)
			return n;
		if ((size_t)n < want) {
			char why[96];

			snprintf(why, sizeof(why), "log shorter than indexed (%" PRIu64 " bytes)",
				 flen);
			set_aside(st, uid, task.name, why);
			return -EIO;
		}
		rc = prove(st, uid, &task, off + want, NULL);
		if (rc)
			return rc;
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

/* Record buffers larger than this are given back after each write. */
#define RECORD_KEEP (64u << 10)

/*
 * May task @uid be written?  Its files must be there and at least as long
 * as the index says (check_files).  A reopen finds the damage that set a
 * task aside here again, at the task's first write, rather than acknowledge
 * appends its files cannot take.  0, -EIO (set aside) or -errno.
 */
static int writer_check(struct evl_store *st, uint64_t uid)
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
			rc = check_files(st, &task);
	}
	pthread_rwlock_unlock(&st->swap_lock);
	return rc;
}

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
	if (!rc)
		rc = writer_check(st, uid);
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

/* Count @more held bytes against max_held.  0 or -ENOBUFS. */
static int held_take(struct evl_store *st, size_t more)
{
	uint_fast64_t cur = atomic_load(&st->held_bytes);

	do {
		if (st->opt.max_held && cur + more > st->opt.max_held)
			return -ENOBUFS;
	} while (!atomic_compare_exchange_weak(&st->held_bytes, &cur, cur + more));
	return 0;
}

static void held_give(struct evl_store *st, size_t less)
{
	atomic_fetch_sub(&st->held_bytes, less);
}

/* Forget the held line (stored, refused, or lost). */
static void drop_held(struct evl_writer *w)
{
	held_give(w->st, linebuf_pending(&w->lb));
	linebuf_clear(&w->lb);
}

/* Start a new record (one write(), or the held line at close). */
static int record_reset(struct evl_writer *w)
{
	w->dir_len = w->data_len = 0;
	w->n = 0;
	memset(&w->err, 0, sizeof(w->err));
	if (!w->val)
		return event_validator_new(w->st->opt.type_field, w->st->opt.max_event, &w->val);
	return 0;
}

/* After a write: give back memory only a long line needed. */
static void record_trim(struct evl_writer *w)
{
	if (w->dir_cap > RECORD_KEEP) {
		free(w->dir);
		w->dir = NULL;
		w->dir_cap = 0;
	}
	if (w->data_cap > RECORD_KEEP) {
		free(w->data);
		w->data = NULL;
		w->data_cap = 0;
	}
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
	if (rc)
		return rc;
	if (store_grow(&w->dir, &w->dir_cap, w->dir_len + 5 + tlen) ||
	    store_grow(&w->data, &w->data_cap, w->data_len + len + 1))
		return -ENOMEM;
	put_le32(w->dir + w->dir_len, len + 1);
	w->dir[w->dir_len + 4] = tlen;
	memcpy(w->dir + w->dir_len + 5, type, tlen);
	w->dir_len += 5 + tlen;
	memcpy(w->data + w->data_len, line, len);
	w->data[w->data_len + len] = '\n';
	w->data_len += len + 1;
	w->n++;
	return 0;
}

/*
 * Log, count and show a refused write (-EINVAL, -EFBIG or -ENOBUFS).  The
 * refused event is named by the place it would have had in the task log:
 * its ordinal (1 = the first event) and its byte offset, counting what is
 * stored now plus the events of the same write() before it.
 */
static void reject(struct evl_writer *w, int rc)
{
	struct evl_store *st = w->st;
	struct evl_task_info info = { 0 };
	char where[96], col[32] = "";

	if (rc == -EFBIG && !w->err.err)
		snprintf(w->err.reason, sizeof(w->err.reason),
			 "line longer than max_event=%zu", st->opt.max_event);
	if (rc == -ENOBUFS)
		snprintf(w->err.reason, sizeof(w->err.reason),
			 "unterminated lines over max_held=%zu", st->opt.max_held);
	if (w->err.col && rc == -EINVAL)
		snprintf(col, sizeof(col), " col %zu", w->err.col);
	evl_task_stat(st, w->uid, &info);	/* a deleted task: counted from 0 */
	snprintf(where, sizeof(where), "event %" PRIu64 " (byte %" PRIu64 ")%s",
		 info.events + w->n + 1, info.size + w->data_len, col);
	pthread_mutex_lock(&st->lock);
	if (rc == -EFBIG)
		st->rejected_too_big++;
	else if (rc == -ENOBUFS)
		st->rejected_held++;
	else
		st->rejected_invalid++;
	snprintf(st->last_rejection, sizeof(st->last_rejection), "task %s %s: %s", w->name,
		 where, w->err.reason);
	pthread_mutex_unlock(&st->lock);
	evl_log(LOG_WARNING, "rejected %s: task %s %s: %s", rc == -ENOBUFS ? "write" : "event",
		w->name, where, w->err.reason);
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
	uint64_t start = mono_ns(), lsn, gen, failures;
	struct iovec iov;
	unsigned char *buf;
	struct pend *p;
	int rc;

	/* its files cannot take it: refused, not acknowledged and lost */
	if (is_aside(st, w->uid))
		return -EIO;
	buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	put_le64(buf, w->uid);
	put_le32(buf + 24, w->n);
	put_le32(buf + 28, w->data_len);
	memcpy(buf + APPEND_HDR, w->dir, w->dir_len);
	memcpy(buf + APPEND_HDR + w->dir_len, w->data, w->data_len);
	p = pend_parse(REC_APPEND, buf, len);
	if (!p)
		return -ENOMEM;
	p->spare = calloc(1, sizeof(*p->spare));
	if (!p->spare) {
		pend_free(p);
		return -ENOMEM;
	}

	pthread_mutex_lock(&st->lock);
	failures = st->apply_failures;
	while (st->pending_mem && st->pending_mem + p->mem > st->opt.max_pending) {
		/* wait for the applier; nothing drains after a failed fsync */
		uint64_t at = mono_ns() + 100000000ull;
		struct timespec ts = { at / 1000000000ull, at % 1000000000ull };
		struct journal_stats js;

		pthread_cond_timedwait(&st->applied_cv, &st->lock, &ts);
		store_journal_stats(st, &js);
		rc = -js.error;
		/*
		 * Nor while the applier keeps failing (no descriptor, no room,
		 * an I/O error): the writer gets its errno in bounded time, and
		 * the FUSE workers it would hold stay free for everyone else.
		 * It has failed since this wait began and for a while: one
		 * failure the next try cures does not refuse anything.
		 */
		if (!rc && st->apply_err && st->apply_failures != failures &&
		    mono_ns() - st->apply_failing_since >= WRITER_GIVE_UP_NS)
			rc = st->apply_err;
		if (rc) {
			pthread_mutex_unlock(&st->lock);
			pend_free(p);
			return rc;
		}
	}
	pthread_mutex_unlock(&st->lock);

	pthread_mutex_lock(&st->append_lock);
	/*
	 * Deletes are journaled under append_lock too: looked at here, the
	 * task cannot be deleted before this record, whose events would then
	 * be acknowledged and never written.
	 */
	pthread_mutex_lock(&st->lock);
	gen = st->delete_gen;
	pthread_mutex_unlock(&st->lock);
	if (gen != w->gen) {
		struct delete_check d = { .uid = w->uid };

		rc = delete_check(st, &d);
		if (rc) {
			pthread_mutex_unlock(&st->append_lock);
			pend_free(p);
			return rc;
		}
		w->gen = gen;
	}
	pthread_mutex_lock(&st->lock);
	p->gseq = st->next_gseq;
	st->next_gseq += p->n;
	pthread_mutex_unlock(&st->lock);
	p->time_ns = wall_ns();
	put_le64(buf + 8, p->gseq);
	put_le64(buf + 16, p->time_ns);
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

/*
 * A line over max_event that began in earlier writes is refused, and
 * dropped, when a write continues it past the limit.  The kernel cuts a big
 * write() into requests and returns a short count when one is refused; a
 * careful writer then sends the rest again, which begins with the refused
 * request's bytes: that must fail with EFBIG again (the caller's write()
 * gets the errno), not start a new line with the refused line's middle.
 * Any other write starts a new line.
 */
#define RESEND_PREFIX 4096

static void remember_refused(struct evl_writer *w, const void *data, size_t n)
{
	w->resend_len = n < RESEND_PREFIX ? n : RESEND_PREFIX;
	w->resend_hash = XXH3_64bits(data, w->resend_len);
}

static bool resends_refused(struct evl_writer *w, const void *data, size_t n)
{
	size_t len = w->resend_len;

	w->resend_len = 0;	/* only the next write may be the resend */
	return len && n >= len && XXH3_64bits(data, len) == w->resend_hash;
}

int evl_writer_write(struct evl_writer *w, const void *data, size_t n)
{
	size_t held = linebuf_pending(&w->lb), next;
	int rc;

	if (resends_refused(w, data, n))
		return -EFBIG;	/* the same refusal, not counted again */
	rc = record_reset(w);
	if (rc)
		return rc;
	rc = linebuf_feed(&w->lb, data, n, take_line, w);
	if (rc == -EINVAL || rc == -EFBIG) {
		/*
		 * The handle forgets the refused line.  A refused line begun
		 * in this write leaves the handle as it was (a line held from
		 * earlier writes stays); one that continued the held line
		 * drops it, and the next write starts a new line.
		 */
		reject(w, rc);
		if (linebuf_refused_held(&w->lb)) {
			drop_held(w);
			if (rc == -EFBIG)
				remember_refused(w, data, n);
		}
		goto out;
	}
	if (rc)
		goto out;
	next = linebuf_next_pending(&w->lb);
	if (next > held) {
		/* nothing of the write is stored or held: it may be tried again */
		rc = held_take(w->st, next - held);
		if (rc) {
			linebuf_rollback(&w->lb);
			reject(w, rc);
			goto out;
		}
	}
	rc = w->n ? submit(w) : 0;
	if (rc) {
		linebuf_rollback(&w->lb);
		if (next > held)
			held_give(w->st, next - held);
	} else {
		linebuf_commit(&w->lb);
		if (next < held)
			held_give(w->st, held - next);
	}
out:
	record_trim(w);
	return rc;
}

/* Validate the held line as a whole event: 0 (or blank) or -EINVAL/-EFBIG/-ENOMEM. */
static int take_held(struct evl_writer *w)
{
	int rc = record_reset(w);

	return rc ? rc : take_line(w, w->lb.buf, linebuf_pending(&w->lb), 0);
}

int evl_writer_flush(struct evl_writer *w)
{
	int rc;

	if (!linebuf_pending(&w->lb))
		return 0;
	rc = take_held(w);
	if (rc == -EINVAL || rc == -EFBIG)
		reject(w, rc);
	else if (!rc && w->n)
		rc = submit(w);
	drop_held(w);
	record_trim(w);
	return rc;
}

int evl_writer_flush_valid(struct evl_writer *w)
{
	int rc;

	if (!linebuf_pending(&w->lb))
		return 0;
	rc = take_held(w);
	if (rc == -EFBIG)
		rc = -EINVAL;	/* cannot happen: feed holds less than max_event */
	if (rc == -EINVAL || rc == -ENOMEM)
		goto out;	/* still held, nothing logged: more may come */
	if (w->n)
		rc = submit(w);
	drop_held(w);	/* stored, or its writer is told it was not */
out:
	record_trim(w);
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

	/* a type of a store written before types had to be names ("." or ".."): no view */
	if (event_check_name(name, len))
		return 0;
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
		if (x->v[k].len == e->tlen && !memcmp(x->v[k].name, ev_type(p, e), e->tlen))
			return 0;
	if (index_prefix_exists(x->t, ev_type(p, e), e->tlen))
		return 0;
	if (x->n == x->cap) {
		size_t cap = x->cap ? x->cap * 2 : 8;
		void *np = realloc(x->v, cap * sizeof(*x->v));

		if (!np)
			return -ENOMEM;
		x->v = np;
		x->cap = cap;
	}
	memcpy(x->v[x->n].name, ev_type(p, e), e->tlen);
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
		if (!event_check_name(x.v[k].name, x.v[k].len))
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
	pthread_mutex_init(&v->mu, NULL);
	*out = v;
	return 0;
}

void evl_view_close(struct evl_view *v)
{
	if (!v)
		return;
	pthread_mutex_destroy(&v->mu);
	free(v);
}

/*
 * A view read or size the index itself failed (LMDB found a page it
 * cannot use, or the disk failed reading it): counted in index_damage and
 * logged, so that status names it.  Returns @rc.
 */
static int index_fault(struct evl_store *st, const struct evl_view *v, uint64_t off, int rc)
{
	if (rc == -ENOMEM || rc == -ENOENT || rc == -EAGAIN)
		return rc;
	atomic_fetch_add(&st->index_damage, 1);
	evl_log(LOG_ERR, "view %.*s: the index fails at offset %" PRIu64 ": %s (damaged? evlogctl"
		" fsck finds it, evlogctl reindex rebuilds it)", (int)v->len, v->prefix, off,
		strerror(-rc));
	return rc == -EUCLEAN ? -EIO : rc;
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
	return rc ? index_fault(st, v, 0, rc) : 0;
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
	struct index_task pin_task;	/* ... as this transaction has it */
	uint64_t pin_proven;		/* file bytes proven (prove()) */
	bool bad_entry;			/* an entry outside its task's log (index damage) */
	/* a run of adjacent bytes of one log, read with one pread */
	uint64_t run_off;
	size_t run_at, run_len;
	bool run_head;		/* ... which begins where an event begins */
	bool bad_start;		/* an event not after a newline of its log */
	size_t *ends;		/* where in buf each event copied whole ends */
	size_t nends, ends_cap;	/* ends_cap in bytes (store_grow) */
	int rc;
};

/*
 * Read the run.  One that begins an event reads the byte before it too (a
 * log is lines only: a newline, unless the event is the log's first), so
 * that an index entry whose offset damage moved into a line is caught
 * (view_lines_whole checks where each event ends).
 */
static int flush_run(struct fill_ctx *c)
{
	bool head = c->run_head && c->run_off > 0;
	char *at = c->buf + c->run_at, keep = 0;
	ssize_t n;

	if (!c->run_len)
		return 0;
	if (head && c->run_at) {
		keep = at[-1];	/* the last byte of the run before: read, put back */
		n = tasklog_pread(c->pin, c->run_off - 1, at - 1, c->run_len + 1);
		if (n >= 0 && (size_t)n < c->run_len + 1)
			n = -EIO;
		if (n >= 0 && at[-1] != '\n')
			c->bad_start = true;
		at[-1] = keep;
	} else {
		char before = '\n';

		n = head ? tasklog_pread(c->pin, c->run_off - 1, &before, 1) : 1;
		if (n == 0)
			n = -EIO;
		if (n > 0 && before != '\n')
			c->bad_start = true;
		if (n > 0)
			n = tasklog_pread(c->pin, c->run_off, at, c->run_len);
		if (n >= 0 && (size_t)n < c->run_len)
			n = -EIO;
	}
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
		if (c->rc == -ENOENT)
			c->rc = -EUCLEAN;	/* an entry of a task the index lacks: damage */
		if (!c->rc && (switch_broken(c->st, ev->uid) || is_aside(c->st, ev->uid)))
			c->rc = -EIO;
		if (!c->rc) {
			c->rc = tasklog_pin(c->st->tl, ev->uid, task.name, &c->pin);
			/* a view never serves what it cannot read: EIO */
			if (c->rc && task_damage(c->rc)) {
				set_aside_err(c->st, ev->uid, task.name, c->rc);
				c->rc = -EIO;
			}
		}
		if (!c->rc) {
			c->pin_uid = ev->uid;
			c->pin_base = task.base_len;
			c->pin_task = task;
			c->pin_proven = 0;
		}
	}
	if (!c->rc && (ev->off < c->pin_base || ev->len > c->pin_task.log_len ||
		       ev->off > c->pin_task.log_len - ev->len)) {
		c->bad_entry = true;	/* the index's entry is not inside its own task's log */
		c->rc = -EUCLEAN;
	}
	if (!c->rc && ev->off - c->pin_base + ev->len > c->pin_proven)
		c->rc = prove(c->st, ev->uid, &c->pin_task, ev->off - c->pin_base + ev->len,
			      &c->pin_proven);
	if (c->rc)
		return 1;
	if (!c->run_len) {
		c->run_off = ev->off - c->pin_base + skip;
		c->run_at = c->done;
		c->run_head = !skip;
	}
	c->run_len += want;
	c->done += want;
	c->skip = 0;
	if (skip + want < ev->len) {
		c->next_gseq = 0;	/* stopped inside this event */
		return 1;
	}
	if (store_grow(&c->ends, &c->ends_cap, (c->nends + 1) * sizeof(*c->ends))) {
		c->rc = -ENOMEM;
		return 1;
	}
	c->ends[c->nends++] = c->done - 1;
	c->next_gseq = ev->gseq + 1;
	return c->done == c->len;
}

/*
 * Each event is one line: the newlines in what fill_cb read are exactly
 * where the events it completed end (so none inside an event, and none in
 * the part of one it stopped in), and each event it began follows a
 * newline of its log.
 */
static bool view_lines_whole(const struct fill_ctx *c)
{
	const char *p = c->buf, *end = c->buf + c->done;
	size_t n = 0;

	if (c->bad_start)
		return false;
	while (p < end && (p = memchr(p, '\n', end - p))) {
		if (n == c->nends || (size_t)(p - c->buf) != c->ends[n])
			return false;
		n++;
		p++;
	}
	return n == c->nends;
}

static ssize_t view_read(struct evl_view *v, uint64_t off, void *buf, size_t len)
{
	struct evl_store *st = v->st;
	struct fill_ctx c = { .st = st, .buf = buf };
	struct index_view *iv;
	struct index_txn *t;
	uint64_t applied, pend, gseq, gen;
	bool cached, counted = false;
	int rc;

	rc = begin_read(st, &t);
	if (rc)
		return rc;
	c.t = t;
	rc = view_index(v, t, &iv);
	if (rc) {
		pthread_mutex_unlock(&st->lock);
		index_abort(t);
		return index_fault(st, v, off, rc);
	}
	applied = iv ? index_view_size(iv) : 0;
	pend = copy_pending(st, txn_applied(t), v->uid, v->prefix, v->len, applied, off, buf, len);
	gen = st->view_gen;
	pthread_mutex_unlock(&st->lock);
	pthread_mutex_lock(&v->mu);
	cached = v->have_next && v->gen == gen && v->next_off == off;
	gseq = v->next_gseq;
	pthread_mutex_unlock(&v->mu);

	if (off >= applied + pend) {
		len = 0;
		goto out;
	}
	if (len > applied + pend - off)
		len = applied + pend - off;
	if (off < applied) {
		c.len = applied - off < len ? applied - off : len;
		if (!cached) {
			rc = index_view_seek(iv, off, &gseq, &c.skip);
			if (rc)
				goto out;
		}
		rc = index_view_iter(iv, gseq, fill_cb, &c);
		if (rc > 0)
			rc = 0;		/* fill_cb stopped it: the buffer is full */
		if (!rc)
			rc = c.rc;
		if (rc == -EUCLEAN) {
			counted = true;
			atomic_fetch_add(&st->index_damage, 1);
			evl_log(LOG_ERR, "view %.*s: an index entry %s at offset %" PRIu64 " (a damaged"
				" index? evlogctl fsck finds it, evlogctl reindex rebuilds it)",
				(int)v->len, v->prefix, c.bad_entry ? "lies outside its task's log" :
				"names a task the index lacks", off);
			rc = -EIO;
		}
		if (!rc)
			rc = flush_run(&c);
		tasklog_unpin(st->tl, c.pin);
		if (!rc && c.done < c.len) {
			counted = true;
			atomic_fetch_add(&st->index_damage, 1);
			evl_log(LOG_ERR, "view %.*s: index ends before its size", (int)v->len,
				v->prefix);
			rc = -EIO;
		}
		if (!rc && !view_lines_whole(&c)) {
			/*
			 * An entry's offset or length is not an event's: damage in
			 * the index that its checks at open cannot see.  Never
			 * serve a spliced line.
			 */
			counted = true;
			atomic_fetch_add(&st->index_damage, 1);
			evl_log(LOG_ERR, "view %.*s: an index entry does not match its log at"
				" offset %" PRIu64 " (a damaged index? evlogctl fsck finds it,"
				" evlogctl reindex rebuilds it)", (int)v->len, v->prefix, off);
			rc = -EIO;
		}
		if (rc)
			goto out;
		pthread_mutex_lock(&v->mu);
		v->have_next = c.next_gseq != 0;
		v->next_off = off + c.len;
		v->next_gseq = c.next_gseq;
		v->gen = gen;
		pthread_mutex_unlock(&v->mu);
	}
out:
	free(c.ends);
	index_view_free(iv);
	index_abort(t);
	/* an error of the index's own (not a task's files, whose are fill_cb's) */
	if (rc && !counted && rc != c.rc) {
		/*
		 * The view opened, so an entry its own structure names is
		 * missing (damage the walk cannot see: sweep seed 600002 case
		 * 650, a flipped ordinal): EIO, counted and said, never a
		 * silent "no such file".
		 */
		if (rc == -ENOENT)
			rc = -EUCLEAN;
		rc = index_fault(st, v, off, rc);
	}
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
	if (begin_read(st, &t) == 0) {
		index_get_meta(t, &m);
		o->types = index_type_count(t);
		sty.t = t;
		each_pending(st, m.applied_lsn, 0, "", 0, stat_type, &sty);
		index_abort(t);
	} else {
		pthread_mutex_lock(&st->lock);
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
