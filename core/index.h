/*
 * index.h - the LMDB index: tasks, types, the type index, counters and the
 * journal position it covers.  The only module that sees MDB_*.
 *
 * Caveats:
 * - One write transaction at a time, and only from the store's applier
 *   thread.  Read transactions are short, never held across a FUSE call,
 *   and a thread holding one must not wait for the applier (growing the map
 *   waits for every open transaction to end).
 * - Pointers into a transaction (views, names handed to callbacks) are
 *   valid until that transaction ends.
 * - -EAGAIN from a write operation means the map is full: abort the
 *   transaction, call index_grow(), and redo the whole batch.
 */
#ifndef EVL_INDEX_H
#define EVL_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct index;
struct index_txn;
struct index_view;

enum index_task_state { TASK_LIVE = 1, TASK_DELETED = 2 };

struct index_meta {
	uint64_t applied_lsn;	/* journal records up to here are in the index */
	uint64_t ckpt_lsn;	/* ... and up to here durable in logs and index */
	uint64_t next_gseq;	/* next global commit sequence */
	uint64_t next_uid;	/* next task uid */
	uint64_t tasks, events, log_bytes;	/* live totals */
};

/*
 * A task.  log_len and nevents count every event ever applied (logical);
 * retention drops base_len bytes and base_n events from the head, so the
 * files hold log_len - base_len bytes and nevents - base_n records, and an
 * index offset `off` is at `off - base_len` in the file.
 */
struct index_task {
	uint64_t uid;
	int state;
	uint64_t log_len, nevents;
	uint64_t base_len, base_n;
	uint64_t created_ns, last_ns;	/* wall clock, ns since the epoch */
	bool has_owner;			/* else: the mounting user's, 0755 */
	uint32_t owner_uid, owner_gid, mode;
	size_t name_len;
	char name[256];
};

/*
 * Open (creating) the environment in directory @dir.  @type_field is
 * recorded on creation; opening with another gives -EINVAL (the views were
 * built with the first); NULL accepts the recorded one ("type" when new).
 * 0, -EINVAL, -ENOMEM or -errno.
 */
int index_open(const char *dir, const char *type_field, struct index **out);
/*
 * index_open with @flags: INDEX_RDONLY opens an existing index for reading
 * only (no write transaction; its file and lock file are left as they
 * are; the caller holds the store's lock).  Either way an existing index
 * is checked first (index_check_file, index_verify): -EUCLEAN if it is
 * damaged (logged, naming evlogctl reindex).  With INDEX_RDONLY, -ENOENT
 * if there is none.
 */
enum { INDEX_RDONLY = 1 };
int index_open_ex(const char *dir, const char *type_field, unsigned flags, struct index **out);
void index_close(struct index *ix);

/*
 * Check index file @dir/data.mdb before LMDB maps it: both meta pages are
 * LMDB's, and the one in use names roots within the file.  Reads with
 * pread() only.  0, -ENOENT (no file), -EUCLEAN (damaged: @why, size @n,
 * says how) or -errno.
 */
int index_check_file(const char *dir, char *why, size_t n);
/*
 * Read every page of the index in @dir, in a child process: keys in
 * order, counts as recorded, free pages and trees adding up (unless @live:
 * another process may be writing), only this index's databases.  A crash
 * of the child (SIGBUS, SIGSEGV, an LMDB assertion) is damage.  Call
 * index_check_file first.  0, -EUCLEAN (@why says how), -EIO (@why) or
 * -errno.
 */
int index_verify(const char *dir, bool live, char *why, size_t n);

/*
 * The map size a new environment starts with (default 256 MiB; it doubles
 * when full).  Process-global; tests set it small to exercise growth.
 */
void index_set_map_initial(size_t bytes);

/*
 * Flush everything committed to disk (checkpoint).  0 or -errno; -EIO
 * without trying once a sync of this index has failed (index_sync_failed).
 */
int index_sync(struct index *ix);
/*
 * Has a sync of the index file or directory failed since index_open?  Then
 * a later sync that succeeds proves nothing (the kernel may have dropped
 * the pages): the journal must keep covering what the index holds.
 */
bool index_sync_failed(struct index *ix);
/* Call @fn(@arg) at the first such failure (from the failing thread, any locks held). */
void index_on_sync_failed(struct index *ix, void (*fn)(void *arg), void *arg);
/* Double the map size; no transaction may be open in the calling thread. */
int index_grow(struct index *ix);
/* Size of the index file in bytes. */
uint64_t index_file_bytes(struct index *ix);
/* Bytes of pages in use, and the file's size.  0 or -errno. */
int index_usage(struct index *ix, uint64_t *used, uint64_t *file);
/* Deleted tasks whose entries are not purged yet. */
uint64_t index_purge_count(struct index *ix);
/*
 * Rewrite the environment without its free pages (a compact copy, fsynced,
 * renamed over the file) and reopen it.  Call from the only writer, with no
 * transaction open in this thread; readers wait during the swap only.
 * A crash leaves the old file or the new one (a stale copy is removed at
 * open).  0 or -errno.
 */
int index_shrink(struct index *ix);

int index_begin(struct index *ix, bool write, struct index_txn **out);
/* Commit a write transaction or end a read one.  0, -EAGAIN (map full) or -errno. */
int index_commit(struct index_txn *t);
void index_abort(struct index_txn *t);

int index_get_meta(struct index_txn *t, struct index_meta *m);
int index_put_meta(struct index_txn *t, const struct index_meta *m);

/*
 * The boot id (io->boot_id) under which the task files were last written,
 * into @buf (size @n, NUL-terminated; "" if none is recorded).  Task-file
 * bytes past the last checkpoint are trusted at recovery only if it is the
 * running boot's: a reboot or a failed fsync (which records "") may have
 * lost pages of them whatever their length.  0 or -errno.
 */
int index_get_boot(struct index_txn *t, char *buf, size_t n);
int index_put_boot(struct index_txn *t, const char *boot);

/*
 * The store's identity and index generation (see stamp.c):
 * the same pair sits in DATA_DIR/stamp, beside the logs, so an index that
 * is missing, empty, from another store or older than the logs is known
 * at open without reading a log.  0, -ENOENT (none recorded) or -errno.
 */
int index_get_stamp(struct index_txn *t, uint64_t *id, uint64_t *gen);
int index_put_stamp(struct index_txn *t, uint64_t id, uint64_t gen);

/* Look a task up.  0 or -ENOENT. */
int index_task_by_name(struct index_txn *t, const char *name, size_t len, struct index_task *out);
int index_task_by_uid(struct index_txn *t, uint64_t uid, struct index_task *out);
/* Store a task record (its name mapping too, while live). */
int index_task_put(struct index_txn *t, const struct index_task *task);

/*
 * Call @cb for each live task in name order, starting after @after (NULL:
 * from the first).  Stops when @cb returns non-zero and returns that value.
 */
int index_task_list(struct index_txn *t, const char *after, size_t after_len,
		    int (*cb)(void *arg, const struct index_task *task), void *arg);

/*
 * Add one applied event of task @uid: type @type (@tlen bytes), global
 * sequence @gseq, at @off in the log, @len bytes.  The caller updates the
 * task record and meta counters.
 */
int index_add_event(struct index_txn *t, uint64_t uid, uint64_t gseq,
		    const char *type, size_t tlen, uint64_t off, uint32_t len);

/*
 * Delete task @uid logically: it leaves every view and listing in this
 * transaction; its entries are removed later by index_purge_step.
 */
int index_task_delete(struct index_txn *t, uint64_t uid);

/*
 * Remove at most @budget entries of one deleted task.  *@done_uid is set to
 * the uid whose removal completed in this step (its files may go), else 0.
 * Returns 0 (nothing left to purge sets *@more false) or -errno.
 */
int index_purge_step(struct index_txn *t, unsigned budget, uint64_t *done_uid, bool *more);

/*
 * Tasks changed since the last checkpoint, with their (logical) lengths
 * then: the files hold at least that much durably.  A task whose log was
 * rewritten since is recorded with its lengths at the rewrite and the
 * first gseq the rewrite did not cover (@gseq_from; 0 for none): journal
 * records below it are in the file already.
 */
int index_dirty_add(struct index_txn *t, uint64_t uid, uint64_t log_len, uint64_t nevents);
int index_dirty_set(struct index_txn *t, uint64_t uid, uint64_t log_len, uint64_t nevents,
		    uint64_t gseq_from);
bool index_dirty_has(struct index_txn *t, uint64_t uid);
int index_dirty_list(struct index_txn *t,
		     int (*cb)(void *arg, uint64_t uid, uint64_t log_len, uint64_t nevents,
			       uint64_t gseq_from),
		     void *arg);
int index_dirty_clear(struct index_txn *t);

/*
 * Retention of a task's head (the log rewrite, the state diagram: retain.c).  An intent names the first event kept: every
 * event of the task with gseq < cut_gseq goes, which are the first cut_n
 * events and cut_len bytes of its log (logical counts, as base_len).
 */
enum index_retain_phase {
	RETAIN_DROPPING = 1,	/* entries leave the index in steps, then the switch */
	RETAIN_SWITCHED = 2,	/* index switched to the new files; renames may remain */
};

struct index_retain {
	uint64_t uid;
	int phase;
	uint64_t cut_gseq, cut_len, cut_n;
};

int index_retain_put(struct index_txn *t, const struct index_retain *tr);
/* 0 or -ENOENT. */
int index_retain_get(struct index_txn *t, uint64_t uid, struct index_retain *out);
int index_retain_del(struct index_txn *t, uint64_t uid);
int index_retain_list(struct index_txn *t, int (*cb)(void *arg, const struct index_retain *tr),
		    void *arg);
/*
 * Remove at most @budget of live task @uid's entries with gseq < @cut_gseq,
 * oldest first per type: they leave every view, whose offsets stay exact
 * (the task+type's base grows by what left).  *@more: call again.
 * The caller updates the task record and meta counters at the switch.
 */
int index_retain_step(struct index_txn *t, uint64_t uid, uint64_t cut_gseq, unsigned budget,
		    bool *more);

/* Call @cb for each type with live events, in name order. */
int index_type_list(struct index_txn *t,
		    int (*cb)(void *arg, const char *name, size_t len, uint64_t events,
			      uint64_t bytes),
		    void *arg);
/* Number of types with live events. */
uint64_t index_type_count(struct index_txn *t);

/* One event of a view, as iteration hands it out. */
struct index_event {
	uint64_t gseq;
	uint64_t uid;		/* the task */
	uint64_t off;		/* in the task's log */
	uint32_t len;
};

/*
 * Resolve view @prefix (all tasks, or only task @uid if non-zero) in @t.
 * -ENOENT if no live type starts with @prefix (or @uid is not live).
 * Free with index_view_free before the transaction ends.
 */
int index_view_open(struct index_txn *t, const char *prefix, size_t len, uint64_t uid,
		    struct index_view **out);
void index_view_free(struct index_view *v);
/* Bytes of the view's applied events. */
uint64_t index_view_size(struct index_view *v);
/*
 * Find the event holding byte @off (< size): its gseq, and how many of its
 * bytes come before @off.  O(log^2 n) LMDB lookups.  0, -ENXIO (past end).
 */
int index_view_seek(struct index_view *v, uint64_t off, uint64_t *gseq, uint64_t *skip);
/*
 * The view's events with gseq >= @from, in gseq order, one at a time:
 * index_view_next puts the next in *@ev and returns 1, or 0 when they have
 * run out, or -errno.  A cursor lives within its view (and the view's
 * transaction); close it before them.
 */
struct index_view_cursor;
int index_view_cursor_open(struct index_view *v, uint64_t from, struct index_view_cursor **out);
int index_view_next(struct index_view_cursor *c, struct index_event *ev);
void index_view_cursor_close(struct index_view_cursor *c);
/*
 * The same walk for a caller that visits every event (the checks): @cb is
 * called on each until it returns non-zero (that value is returned) or
 * they run out (0).
 */
int index_view_iter(struct index_view *v, uint64_t from,
		    int (*cb)(void *arg, const struct index_event *ev), void *arg);
/* Does any live type start with @prefix? */
bool index_prefix_exists(struct index_txn *t, const char *prefix, size_t len);

/*
 * The tasks with events in view @prefix, in uid order, after @after_uid.
 */
int index_view_tasks(struct index_txn *t, const char *prefix, size_t len, uint64_t after_uid,
		     int (*cb)(void *arg, uint64_t uid), void *arg);

/* ---- checking and rebuilding (fsck, reindex) ---- */

/* The type_field the index was built with, into @buf.  0, -ENAMETOOLONG or -errno. */
int index_get_type_field(struct index_txn *t, char *buf, size_t n);

/* Call @cb for every type the index has a record of, live events or not. */
int index_type_names(struct index_txn *t, int (*cb)(void *arg, const char *name, size_t len),
		     void *arg);

/* One entry of a type as index_type_check hands it out. */
struct index_entry {
	uint64_t gseq, uid, off;	/* off: logical, as index_add_event got it */
	uint32_t len;
	int state;		/* its task's: TASK_LIVE, TASK_DELETED, 0 (no such task) */
};

/*
 * Check type @name's structure and hand out its entries (every task's) in
 * gseq order.  Structure: each entry has its rows in both orders with the
 * same offset, length and ordinal; ordinals rise with gseq; every Fenwick
 * node sums what the rows hold; the type's, task+type's counters agree
 * with the rows of live tasks; per task, cumulative bytes run without gaps.
 * *@bad counts the faults, the first described in @why.  Returns 0, -ENOENT
 * (no such type), @cb's non-zero value, or -errno.
 */
int index_type_check(struct index_txn *t, const char *name, size_t len,
		     int (*cb)(void *arg, const struct index_entry *e), void *arg,
		     uint64_t *bad, char *why, size_t whylen);

/*
 * Remove every entry of type @name (of every task, live or deleted) and
 * zero its counters; index_add_event then rebuilds it, in gseq order.
 * 0, -ENOENT, -EAGAIN (map full) or -errno.
 */
int index_type_drop(struct index_txn *t, const char *name, size_t len);

/*
 * Copy the environment in directory @src (which another process may be
 * writing) into directory @dest (created; it must hold no data.mdb) as one
 * consistent snapshot, without free pages.  Every page of @src is read in
 * a child first (index_verify): 0, -EUCLEAN (damaged: logged) or -errno.
 */
int index_snapshot(const char *src, const char *dest);

/*
 * Put the environment in directory @from (closed, synced) in place of the
 * one in @to, which nobody has open: its data file is renamed over @to's
 * (made if missing) in one step, so a crash leaves one or the other, never
 * neither; then @from is removed.  0 or -errno.
 */
int index_install(const char *from, const char *to);

#endif
