/*
 * store_i.h - the store's own state, shared by the files that make up the
 * store (store.c and the parts it is split into: record, pending, apply,
 * applier, retain, recover, writer, view).  Private to them: other core
 * modules use store.h, the rest of the project evlog.h.
 *
 * LOCKS.  Each field of struct evl_store says what guards it: the fields
 * open sets are read-only until close; below the locks, a field with no
 * word is written under st->lock (the applier, the one writer of many of
 * them, may read those without it; atomics are read without it).  The
 * order, written once:
 *
 *   meta_lock -> append_lock -> st->lock -> index transaction (the
 *   map-resize rwlock) -> tmem_lock, aside_lock, journal and tasklog locks
 *
 * The applier takes st->lock only between transactions; nobody takes
 * st->lock while holding a transaction.  swap_lock (readers of task files,
 * a log rewrite's switch) comes before st->lock and any transaction.
 */
#ifndef EVL_STORE_I_H
#define EVL_STORE_I_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "event.h"
#include "evlog.h"
#include "grow.h"
#include "linebuf.h"
#include "record.h"
#include "store.h"

struct index;
struct journal;
struct tasklog;

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

struct pend_ev {
	uint32_t off, len;	/* in data */
	uint32_t toff;		/* the type, in buf */
	uint8_t tlen;
};

/*
 * One journaled record, in memory until applied.  A record is freed only
 * by pend_dequeue(), on the applier's thread, under st->lock: whoever holds
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
	 * yet, and applied_lsn is past the record).  Set by pend_enqueue under
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
 * all).  pend_dequeue() subtracts them once the commit is done.
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
	/* set by open, read-only until close: no lock */
	char *dir;
	struct evl_options opt;
	char *type_field;
	struct store_lock dlock;
	struct index *ix;
	struct journal *jn;
	struct tasklog *tl;

	/* the locks (their order: above) */
	pthread_mutex_t meta_lock;	/* serialises create and delete */
	pthread_mutex_t append_lock;	/* journal order = gseq order = list order */
	struct typeset *types_seen;	/* append_lock: counted against max_types */
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
	size_t nbroken, broken_cap;	/* broken_cap in bytes (grow_bytes) */
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
	/* store_attached: the part on the store (compaction), under st->lock */
	void *att;
	void (*att_release)(void *obj);
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
	size_t naside, aside_cap;	/* aside_cap in bytes (grow_bytes) */
	/* recovery: misnamed_dir's answers, per task uid */
	struct misnamed {
		uint64_t uid;
		bool found;
	} *misnamed;
	size_t nmisnamed, misnamed_cap;	/* misnamed_cap in bytes (grow_bytes) */
	bool aside_unknown;		/* one could not be recorded: every task is suspect */
	uint64_t events_unapplied, events_lost;
	uint64_t lines_moved;		/* settle_rest: lines past an index put aside at open */
	uint64_t recover_gseq;		/* the index's next_gseq when the open began (vouched) */
	atomic_bool sync_failed;	/* I5: an fsync failed, until reopened */
	atomic_bool sync_recorded;	/* ... and the index says so (I6) */

	/* counters */
	uint64_t appended_events, appended_bytes, rejected_invalid, rejected_too_big;
	uint64_t rejected_held;		/* writes refused for max_held (ENOBUFS) */
	uint64_t rejected_types;	/* writes refused for max_types (EDQUOT) */
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
	/* events of the record whose type is new to the store (max_types) */
	uint32_t *fresh;
	size_t nfresh, fresh_cap;
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

static inline uint64_t wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static inline uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

/*
 * A read of the store (txn.c): index snapshot @t and, while @locked (st->lock
 * held), the pending list as of it: the applier cannot drop the records @t
 * does not cover (those past @applied), so the caller takes the pending part
 * then, and lets the lock go with snap_release (@t stays).  snap_end ends
 * @t, and lets the lock go if it is still held.  snap_begin: 0 or -errno
 * (nothing held).
 */
struct snap {
	struct evl_store *st;
	struct index_txn *t;
	uint64_t applied;	/* @t's applied_lsn */
	bool locked;
};

/* A delete's check (store_delete_check) */
struct delete_check {
	uint64_t uid, idle_before;
	struct evl_task_info info;	/* the task, as it is deleted */
};

/* ---- shared between the store's files (by the file that defines each) ---- */
/* record.c */
void pend_free(struct pend *p);
struct pend *pend_parse(unsigned kind, unsigned char *buf, size_t len);

/* pending.c */
void tmem_committing(struct evl_store *st, struct pend *first, struct pend *last, int sign);
void tmem_get(struct evl_store *st, uint64_t uid, uint64_t applied, uint64_t *bytes,
		     uint64_t *events, uint64_t *last_ns);
const struct pend *pc_find(struct evl_store *st, const char *name, size_t len,
				  uint64_t uid, uint64_t applied);
bool pd_find(struct evl_store *st, uint64_t uid);
void pend_enqueue(struct evl_store *st, struct pend *p);
void pend_dequeue(struct evl_store *st, struct pend *last);
int each_pending(struct evl_store *st, uint64_t applied_lsn, uint64_t uid,
			const char *prefix, size_t plen,
			int (*fn)(void *arg, const struct pend *p, const struct pend_ev *e),
			void *arg);
uint64_t copy_pending(struct evl_store *st, uint64_t applied_lsn, uint64_t uid,
			     const char *prefix, size_t plen, uint64_t base,
			     uint64_t off, char *buf, size_t len);

/* aside.c */
bool task_damage(int err);
bool is_aside(struct evl_store *st, uint64_t uid);
void set_aside(struct evl_store *st, uint64_t uid, const char *name, const char *why);
size_t aside_names(struct evl_store *st, char *buf, size_t size, char sep);
void aside_forget(struct evl_store *st, uint64_t uid);
void set_aside_err(struct evl_store *st, uint64_t uid, const char *name, int err);
bool switch_broken(const struct evl_store *st, uint64_t uid);

/* txn.c */
int store_write_txn(struct evl_store *st, int (*fn)(struct index_txn *t, void *arg), void *arg);
int ask_applier(struct evl_store *st, struct applier_job *job);
int store_live_task(struct evl_store *st, uint64_t uid, struct index_task *task);
int store_wait_applied(struct evl_store *st, uint64_t lsn, const struct pend *p, bool give_up);
void store_journal_stats(struct evl_store *st, struct journal_stats *js);
int snap_begin(struct evl_store *st, struct snap *s);
void snap_release(struct snap *s);
void snap_end(struct snap *s);

/* mend.c */
int written_as_recorded(struct evl_store *st, uint64_t uid, const char *name, uint64_t off,
			       uint64_t idx, uint64_t n);
int sidecar_foreign(struct evl_store *st, struct index_txn *t,
			   const struct index_task *task, uint64_t n, uint64_t len,
			   const struct pend *p);
int mend_records(struct evl_store *st, struct index_txn *t, struct index_task *task,
			uint64_t n, uint64_t len, uint64_t upto);
int mend_short(struct evl_store *st, struct index_txn *t, const struct index_task *task,
		      const struct pend *p);

/* apply.c */
int apply_delete(struct evl_store *st, struct index_txn *t, struct index_meta *m,
			const struct pend *p);
int apply_batch(struct evl_store *st, struct pend *first, struct pend *last,
		       bool *purge);
int apply_all(struct evl_store *st);
int purge_step(struct evl_store *st, bool *more);
int apply_undo_delete(void *arg, uint64_t uid);
int task_writable(struct evl_store *st, uint64_t uid);

/* stamp.c */
int stamp_open(struct evl_store *st);
void stamp_follow(struct evl_store *st);

/* retain.c */
int finish_switches(struct evl_store *st, void *arg);
int retain_recover_files(struct evl_store *st);
int retain_recover_dropping(struct evl_store *st);

/* applier.c */
int applier_boot_txn(struct index_txn *t, void *arg);
void store_sync_failed(void *arg);
int check_syncs(struct evl_store *st);
int applier_checkpoint(struct evl_store *st, void *unused);
int applier_shrink(struct evl_store *st, void *unused);
void *applier_main(void *arg);
void applier_on_durable(void *arg, uint64_t lsn);

/* recover_tail.c */
int adopt_tails(struct evl_store *st, struct event_validator *val);

/* recover.c */
bool on_read_only_media(const char *dir);
int open_frozen(struct evl_store *st);
int store_recover(struct evl_store *st);

/* task.c */
int store_find_task(const struct snap *s, const char *name, uint64_t uid,
		    struct index_task *task, struct evl_task_info *out);
int store_delete_check(struct evl_store *st, void *arg);

/* writer.c: the types counted against max_types, from the index and the pending records */
int store_types_load(struct evl_store *st);

#endif
