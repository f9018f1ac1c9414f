/*
 * check_i.h - what the files of the offline tools share: the state of one
 * run (struct ck: the tasks and events the scan found, the journal's
 * records, the index) and the steps one file runs for another.  Private to
 * check.c, scan.c, fsck.c, sidecar_repair.c, salvage.c and reindex.c; the tools'
 * API is evlog.h's (evl_fsck, evl_reindex).
 *
 * Caveats: a run is one thread's, from ck_init to ck_free, and holds
 * DATA_DIR/lock throughout (ck_lock_store) except inside ck_recover.
 * Arrays grow with grow_bytes: their capacities are in bytes.
 */
#ifndef EVL_CHECK_I_H
#define EVL_CHECK_I_H

#include <search.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "evlog.h"
#include "store.h"
#include "tasklog.h"

struct event_validator;
struct index;
struct index_meta;
struct index_txn;

#define CHECK_MAX_EVENT (64u << 20)
#define REPORT_PER_TYPE 10

struct ck_task {
	char name[256];
	size_t name_len;
	uint64_t uid;			/* in the index (0: none) */
	/* without an index (map_journal): where uid came from */
	enum { UID_NONE, UID_XATTR, UID_EVENT, UID_CREATE } uid_from;
	bool uid_shared;		/* another directory has its uid xattr (a copy) */
	uint64_t retain_cut;		/* retention under way (DROPPING): its events before it go */
	uint64_t retain_len, retain_n;	/* ... up to this logical byte and event (index_retain) */
	bool in_index, on_disk, dirty, skip;
	bool have_times;		/* created_ns, last_ns from the index */
	bool has_owner;			/* owner and mode, from the index */
	bool vouched;			/* the (old) index has its record: its owner stands */
	uint32_t owner_uid, owner_gid, mode;
	uint64_t idx_n, idx_len;	/* what the index says the files hold */
	uint64_t base_len, base_n;
	uint64_t created_ns, last_ns;	/* index, or the files' */
	uint64_t n, bytes;		/* consistent prefix of the files */
	uint64_t last_gseq;
	uint64_t file_recs;
	uint64_t mended;		/* sidecar records rebuilt (ck->mends) */
	bool torn;			/* a bad record is the last one */
	uint64_t lost;			/* records past the end of a log cut short */
	uint64_t log_size;
};

struct ck_ev {
	uint64_t gseq, off;
	uint32_t len, type, task;
};

struct ck_type {
	char *name;
	size_t len;
	size_t first, count;		/* run in the sorted events */
	bool differs;
	uint64_t reported;
};

/* A sidecar record rebuilt from the log and the index, to be written by a repair. */
struct ck_mend {
	size_t task;
	uint64_t idx;
	struct tasklog_rec rec;
};

/* A journal append event, kept by reindex for a store without a usable index. */
struct ck_jev {
	uint64_t lsn, uid, gseq, time_ns;
	char *data;
	size_t len;
};

struct ck_jcreate {
	uint64_t uid, lsn, time_ns;
	bool deleted;			/* by a later record of the journal */
	bool has_owner;
	struct tasklog_owner owner;
	char name[256];
};

/* A task directory's ctime before reindex changed anything in it. */
struct ck_ctime {
	char name[256];
	uint64_t ns;
};

struct ck {
	const char *dir;
	struct ck_ctime *ctimes;
	size_t nctimes, ctcap;
	const struct evl_check_opts *o;
	struct evl_check_result *r;
	char type_field[256];
	struct event_validator *val;
	struct ck_task *tasks;
	size_t ntasks, tcap;		/* capacities in bytes (grow_bytes) */
	struct ck_ev *evs;
	size_t nevs, ecap;
	struct ck_type *types;
	size_t ntypes, tycap;
	struct hsearch_data htab;
	bool htab_made;
	struct index *ix;
	struct store_lock lock;
	bool needs_recovery;
	uint64_t max_gseq;
	/* the journal, for reindex */
	struct ck_jev *jev;
	size_t njev, jcap;
	struct ck_jcreate *jcr;
	size_t njcr, jcrcap;
	struct ck_jdel {
		uint64_t uid, time_ns;
	} *jdel;			/* the journal's deletes */
	size_t njdel, jdelcap;
	uint64_t j_last_lsn, j_max_uid, j_max_gseq, j_unapplied, applied_lsn;
	uint64_t j_end;			/* the journal's last lsn (journal_scan) */
	bool will_replay;		/* reindex: replay_journal runs after ck_cut_tails */
	bool j_intact;			/* it has a segment, and no damage */
	struct ck_mend *mends;
	size_t nmends, mcap;
};

/* A task's events of every type, from the index, in log order (ck_rb_task_events). */
struct rb_ev {
	uint64_t off, gseq;
	uint32_t len;
};

struct rb_list {
	struct rb_ev *v;
	size_t n, cap;		/* cap in bytes (grow_bytes) */
	uint64_t base, uid;
	struct index_txn *t;
};

/* ---- check.c: a run (and store_cycle, declared in store.h: backup runs it too) ---- */

/* A line for o->report at @level ('U': a problem repair cannot fix), counted in ck->r. */
void ck_report(struct ck *ck, char level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void ck_progress(struct ck *ck, const char *phase, uint64_t done, uint64_t total);
/* Take DATA_DIR/lock as @what (the holder is reported if busy).  0 or -errno. */
int ck_lock_store(struct ck *ck, const char *what);
/* The sidecars' format (tasklog_format_check): upgraded by a run that may write. */
int ck_check_format(struct ck *ck, bool may_write);
/* Open the store through the normal path (recovery, checkpoint) and close it. */
int ck_recover(struct ck *ck, const char *what);
/* Open the store's index, read-only unless @write: -EUCLEAN if it is damaged. */
int ck_open_index(struct ck *ck, bool must_exist, bool write);
/* S1 (stamp.c): is the index this store's, as new as its logs?  0, -ESTALE or -errno. */
int ck_check_stamp(struct ck *ck, char level);
/* The index's live tasks into ck->tasks; what recovery has left to do. */
int ck_load_index(struct ck *ck, struct index_meta *m, uint64_t *dirty, uint64_t *retains,
		  uint64_t *dropping);
/*
 * A run on store @dir, reporting through @o, counting in @r (zeroed).  0,
 * -ENAMETOOLONG (@dir is longer than dd_check allows: reported) or -ENOMEM.
 */
int ck_init(struct ck *ck, const char *dir, const struct evl_check_opts *o,
	    struct evl_check_result *r);
/* Close the index, release the lock, free the run. */
void ck_free(struct ck *ck);
/* Forget the scan (to scan again after recovery). */
void ck_forget(struct ck *ck);

/* ---- scan.c: what the files hold ---- */

/* The id of type @name (@len bytes), added if new.  0 or -ENOMEM. */
int ck_type_id(struct ck *ck, const char *name, size_t len, uint32_t *id);
/* Add an event of task @task to the scan's events. */
int ck_add_event(struct ck *ck, size_t task, uint64_t gseq, uint64_t off, uint32_t len,
		 const char *type, size_t tlen);
/* Map @path read-only: NULL when empty or on error (*@err: 0 or -errno). */
void *ck_map_file(const char *path, uint64_t *size, int *err);
/* The task named @name among the first @n, which are in name order. */
struct ck_task *ck_task_named(struct ck *ck, size_t n, const char *name);
/* Events in (type, gseq) order: each type's run. */
int ck_cmp_ev(const void *a, const void *b);
/* Scan every task on disk (the index's tasks are listed already), then sort. */
int ck_scan_all(struct ck *ck);
/* Check the journal; report what recovery would do with it. */
int ck_check_journal(struct ck *ck);

/* ---- fsck.c: the index made to agree with the scan ---- */

/* Run @fn in a write transaction, growing the map and redoing it when full. */
int ck_in_txn(struct ck *ck, int (*fn)(struct ck *ck, struct index_txn *t, void *arg),
	      void *arg);
/* A task the index does not vouch for: its owner and mode from its directory's attribute. */
void ck_owner_from_dir(struct ck *ck, struct ck_task *tk);
/* Make the index agree with the scan: task records, differing types (all: @all_types), totals. */
int ck_repair(struct ck *ck, bool all_types);
/* Write the sidecar records rebuilt by the scan, synced. */
int ck_write_mends(struct ck *ck);
/* Cut torn tails off the files (the consistent prefix stays; whole lines kept aside). */
int ck_cut_tails(struct ck *ck);

/* ---- sidecar_repair.c: a task's sidecar put right from its log and the index ---- */

/* index_type_list callback: the events of type @name of task l->uid into rb_list @arg. */
int ck_rb_type(void *arg, const char *name, size_t len, uint64_t events, uint64_t bytes);
/* The task's events in log order, each once (a type's view holds its subtypes too). */
void ck_rb_sort(struct rb_list *l);
/*
 * Task @uid's events in the index (ck->ix, in a read transaction of its
 * own) in log order, each once, into @l (empty, its base set): ck_rb_type
 * over every type, then ck_rb_sort.  0 or -errno; the caller frees l->v.
 */
int ck_rb_task_events(struct ck *ck, uint64_t uid, struct rb_list *l);
/* Before recovery: complete the sidecars cut short of the events the index has. */
int ck_mend_short_sidecars(struct ck *ck);
/* Rebuild the sidecar of every indexed task whose log has none; a lost log: an empty task. */
int ck_rebuild_sidecars(struct ck *ck);
/* Is [@off, @off + @len) of @log where a line would be, zeros counting as newlines? */
bool ck_line_place(const unsigned char *log, uint64_t size, uint64_t off, uint64_t len);

/* ---- salvage.c: events whose bytes are not the ones written ---- */

/* Salvage every task directory of the store (reindex). */
int ck_salvage_all(struct ck *ck);
/* Finish (@repair) or report the salvages a crash cut short. */
int ck_finish_salvages(struct ck *ck, bool repair);

#endif
