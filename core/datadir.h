/*
 * datadir.h - the data directory's shared mechanics that are not the store
 * itself.  Private to core/.
 *
 * It owns what every user of DATA_DIR needs, a mount, an offline tool or a
 * backup alike: holding the store (store_lock, store_unlock) and saying
 * who holds it (evl_store_holder, declared in evlog.h: the directory's
 * flock, and what DATA_DIR/lock names), and the removal of a tree inside it
 * (store_rmrf), and every path inside DATA_DIR: the layout is below, each
 * name is spelled once here, and each path is built by a dd_* function into
 * a DD_PATH_MAX buffer.
 *
 *	DATA_DIR/
 *	  lock  reserve  format  stamp  store-id  backup-of  backup-unfinished
 *	  index/  (LMDB: data.mdb, lock.mdb; data.mdb.compact)   index.new/  index.old/
 *	  journal/<first seq, 16 hex>.jnl   (and .jnl.corrupt: a damaged one set aside)
 *	  tasks/<task>/events  tasks/<task>/events.meta
 *	    and what a repair set aside or is making there: events.unapplied,
 *	    events.damaged, events.foreign, events.meta.foreign, events.meta.lost,
 *	    events.meta.rebuild, events.meta.upgrade, *.salvage
 *	  tasks/.trash-<uid, 16 hex>/events, events.meta   (a deleted task)
 *	  tasks/.rewrite/<uid, 16 hex>.events, .meta        (a retention rewrite)
 *
 * The length check: DATA_DIR is at most DD_DIR_MAX bytes (dd_check, done
 * by whatever opens a data directory: the store, the offline tools, backup
 * for both sides); a task name at most NAME_MAX.  Then every path below
 * fits DD_PATH_MAX, and a dd_* builder that is still handed a longer one
 * (a name read from a damaged index) says -ENAMETOOLONG instead of
 * truncating it.
 *
 * Caveats: it keeps no state; evl_store_holder may wait up to a second.
 */
#ifndef EVL_DATADIR_H
#define EVL_DATADIR_H

#include <stdint.h>

#define DD_DIR_MAX	3800
#define DD_PATH_MAX	4608

/* Names in DATA_DIR. */
#define DD_LOCK		"lock"
#define DD_RESERVE	"reserve"
#define DD_FORMAT	"format"
#define DD_STAMP	"stamp"
#define DD_BACKUP_MARK	"backup-unfinished"
#define DD_INDEX	"index"
#define DD_INDEX_NEW	"index.new"
#define DD_INDEX_OLD	"index.old"
#define DD_JOURNAL	"journal"
#define DD_TASKS	"tasks"
#define DD_STORE_ID	"store-id"	/* a store's identity, made by its first backup */
#define DD_BACKUP_OF	"backup-of"	/* a backup's: the identity of the store it copies */
/* Names in index/ (LMDB's own). */
#define DD_MDB_DATA	"data.mdb"
#define DD_MDB_LOCK	"lock.mdb"
#define DD_MDB_COMPACT	DD_MDB_DATA ".compact"	/* ours: index_shrink's copy, until renamed */
/* Names in tasks/: the hidden ones are never task names (a task name has no leading '.'). */
#define DD_TRASH_PREFIX	".trash-"
#define DD_REWRITE	".rewrite"
/* dd_rewrite's @file for a rewrite's sidecar (its log's is DD_EVENTS). */
#define DD_REWRITE_META	"meta"
/* Names in a task's directory, and in the trash. */
#define DD_EVENTS	"events"
#define DD_META		"events.meta"
#define DD_UNAPPLIED	"events.unapplied"	/* accepted events the log could not take */
#define DD_META_LOST	"events.meta.lost"	/* the sidecar of a task whose log was gone */
#define DD_DAMAGED	"events.damaged"	/* events that fail their checksum, set aside */
#define DD_FOREIGN	"events.foreign"	/* a log set aside: not its sidecar's */
#define DD_META_FOREIGN	"events.meta.foreign"	/* a sidecar set aside: not its log's */
/* Suffixes (dd_suffix, or DD_META DD_REBUILD) of a file made beside another, or set aside. */
#define DD_UPGRADE	".upgrade"	/* a format-1 sidecar's format-2 copy */
#define DD_CORRUPT	".corrupt"	/* a damaged journal segment set aside, or its copy */
#define DD_SALVAGE	".salvage"	/* the salvage's new file, renamed into place */
#define DD_REBUILD	".rebuild"	/* a sidecar rebuilt from its log, renamed into place */

#define DD_MUST __attribute__((warn_unused_result))

/* The one length check: -ENAMETOOLONG if DATA_DIR @dir is longer than DD_DIR_MAX, else 0. */
int dd_check(const char *dir) DD_MUST;

/* "@a/@b".  0 or -ENAMETOOLONG (and @buf is ""). */
int dd_join(char buf[static DD_PATH_MAX], const char *a, const char *b) DD_MUST;

/* "@path@suffix" (suffix e.g. ".corrupt", ".new").  0 or -ENAMETOOLONG. */
int dd_suffix(char buf[static DD_PATH_MAX], const char *path, const char *suffix) DD_MUST;

/* "@dir/@name" or, with @file, "@dir/@name/@file" (@name a DD_* name of DATA_DIR). */
int dd_path(char buf[static DD_PATH_MAX], const char *dir, const char *name,
	    const char *file) DD_MUST;

/* "@dir/tasks/@task" or, with @file, "@dir/tasks/@task/@file". */
int dd_task(char buf[static DD_PATH_MAX], const char *dir, const char *task,
	    const char *file) DD_MUST;

/* "@dir/tasks/.trash-<@uid>" or, with @file, ".../@file". */
int dd_trash(char buf[static DD_PATH_MAX], const char *dir, uint64_t uid,
	     const char *file) DD_MUST;

/* Is tasks/@name a deleted task's trash?  Its uid in *@uid if so (may be NULL). */
int dd_is_trash(const char *name, uint64_t *uid);

/* "@dir/tasks/.rewrite" or, with @file ("events" or "meta"), ".../<@uid>.@file". */
int dd_rewrite(char buf[static DD_PATH_MAX], const char *dir, uint64_t uid,
	       const char *file) DD_MUST;

/*
 * Lock store @dir (a flock on the directory itself; "<pid> @holder" is
 * written into DATA_DIR/lock for the messages, unless the store is
 * read-only) for an offline tool or a store.  0 with the descriptors in *@l
 * (closing them releases the lock; store_unlock also clears DATA_DIR/lock),
 * -EBUSY (the caller names the holder: evl_store_holder), or -errno.
 * DATA_DIR/lock is flocked too: daemons before the directory lock took
 * only that, and must keep seeing the store as held (and be seen).
 */
struct store_lock {
	int dir_fd, file_fd;	/* -1: not held */
};
#define STORE_LOCK_NONE ((struct store_lock){ -1, -1 })
int store_lock(const char *dir, const char *holder, struct store_lock *l);
void store_unlock(const char *dir, struct store_lock *l);

/* Remove @path and, if it is a directory, everything below it.  Missing is fine.  0 or -errno. */
int store_rmrf(const char *path);

#endif
