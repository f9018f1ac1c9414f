/*
 * tasklog.h - one task's files: the JSONL log and its sidecar.
 *
 * DATA_DIR/tasks/<id>/events       the events, byte-exact, append-only
 * DATA_DIR/tasks/<id>/events.meta  one 32-byte record per event, in order:
 *   0 8 gseq (global commit sequence)   8 8 commit time, ns since the epoch
 *   16 4 event length, newline included  20 4 XXH32 of the event's bytes
 *   24 4 zero (reserved)                 28 4 XXH32 of bytes 0-27, seed 2
 * (little-endian).  Logs and sidecars hold everything the index knows, so
 * the index can be rebuilt from them; the event checksum lets a reader
 * prove that bytes it serves are the ones written (issue 15: a bad disk
 * never yields wrong data).
 *
 * Format 1 (before evlogfs 0.9) had 24-byte records without the event
 * checksum (0 gseq, 8 time, 16 len, 20 XXH32 of bytes 0-19, seed 0).
 * tasklog_format_check() upgrades such a sidecar; nothing else reads them.
 *
 * Files are written at explicit offsets (pwrite), never with O_APPEND, so a
 * write repeated after a crash lands on the same bytes.
 *
 * Implemented by tasklog_fd.c (the descriptor cache, reads), tasklog.c (a
 * task's directory and files), sidecar.c (records, DATA_DIR/format,
 * tasklog_verify) and rewrite.c (tasklog_retain_*).  Every function that
 * names a directory takes DATA_DIR itself, and every path is built by
 * datadir.h's dd_* (-ENAMETOOLONG, never a truncated path).
 *
 * Caveats: thread-safe.  Descriptors are cached per task uid, at most
 * max_fds tasks at a time (least recently used closed first); a descriptor
 * in use is never closed under its user.  An entry holds up to two
 * descriptors; whatever max_fds says, the cache holds no more than
 * tasklog_fd_room() allows under the open-file limit in force at each open,
 * closing idle entries first.  When an open still fails with EMFILE or
 * ENFILE (something else took descriptors) it closes idle entries and
 * retries; the error reaches the caller only if none is left to close.  The caller keeps names and uids
 * consistent (the index is the authority).  A task's sidecar descriptor
 * is opened only when it is written, synced or cut: readers use one
 * descriptor per task.
 */
#ifndef EVL_TASKLOG_H
#define EVL_TASKLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TASKLOG_REC 32
#define TASKLOG_REC_V1 24

struct tasklog;

struct tasklog_rec {
	uint64_t gseq;
	uint64_t time_ns;
	uint32_t len;
	uint32_t sum;		/* tasklog_sum() of the event's bytes */
};

/* The event checksum of a record: XXH32 of the event's @len bytes. */
uint32_t tasklog_sum(const void *event, size_t len);

/*
 * Open the task area DATA_DIR/tasks of store @data_dir (DATA_DIR itself),
 * created if missing, caching the descriptors of up to @max_fds tasks (up
 * to 2 x @max_fds descriptors).  0 or -errno.
 */
int tasklog_open(const char *data_dir, unsigned max_fds, struct tasklog **out);
/* Open task files for reading only from now on (a store on read-only media). */
void tasklog_read_only(struct tasklog *tl);
void tasklog_close(struct tasklog *tl);

/*
 * Descriptors the cache may hold under the RLIMIT_NOFILE in force now: the
 * soft limit less a headroom for everything else the process opens
 * (UINT_MAX if unlimited).  The cache checks it before each open.
 */
unsigned tasklog_fd_room(void);

/* How many cached entries were closed so far to stay under the open-file limit. */
uint64_t tasklog_shed_count(struct tasklog *tl);

/* Who created a task, and its mode (the index's task record holds the same). */
struct tasklog_owner {
	uint32_t uid, gid, mode;
};

/*
 * Create task @name's directory and empty files (emptied if they exist:
 * the index knows nothing of them), recording @uid and @owner (NULL: none)
 * in its attributes.  Durable on return.  0 or -errno.
 */
int tasklog_create(struct tasklog *tl, uint64_t uid, const char *name,
		   const struct tasklog_owner *owner);

/*
 * Write @len event bytes at @off of the log and @n sidecar records starting
 * at record @idx (their event checksums are computed here, from @data: the
 * records' lengths must add up to @len).  The files must end there: -EUCLEAN (nothing written) if
 * either is shorter, or longer with other bytes than these (damaged, or
 * written outside the store; the same bytes are a retry of a failed batch).  A
 * failed write is cut back, so that its retry finds the files as before.
 * TASKLOG_AFTER_LOSS in @flags: the write replays the journal after a power
 * loss, which may have left holes (zeros) where these bytes were written
 * before; they count as these.  0 or -errno (ENOSPC, EIO, EUCLEAN).
 */
#define TASKLOG_AFTER_LOSS 1u
int tasklog_write(struct tasklog *tl, uint64_t uid, const char *name, uint64_t off,
		  const void *data, size_t len, uint64_t idx,
		  const struct tasklog_rec *recs, size_t n, unsigned flags);

/*
 * Write @n (at most 64) sidecar records from record @idx, and nothing to
 * the log (fsck rewriting damaged records; their checksums are the
 * caller's).  0, -EINVAL or -errno.
 */
int tasklog_write_recs(struct tasklog *tl, uint64_t uid, const char *name, uint64_t idx,
		       const struct tasklog_rec *recs, size_t n);

/*
 * A task directory carries its uid in an extended attribute (where the file
 * system allows), so reindex can name journal records without the index.
 * tasklog_uid_of: the uid of task directory DATA_DIR/tasks/@name of store
 * @data_dir, or 0 if unknown.
 */
#define TASKLOG_UID_XATTR "user.evlogfs.uid"
uint64_t tasklog_uid_of(const char *data_dir, const char *name);
/*
 * And its owner and mode (12 bytes: uid, gid, mode), so reindex keeps who
 * may write and read the task when the index is lost.  tasklog_owner_of:
 * true and *@out if task directory DATA_DIR/tasks/@name of store @data_dir
 * carries one.
 */
#define TASKLOG_OWNER_XATTR "user.evlogfs.owner"
bool tasklog_owner_of(const char *data_dir, const char *name, struct tasklog_owner *out);
/* Record @uid and @owner (NULL: none) on task directory DATA_DIR/tasks/@name (best effort). */
void tasklog_mark(const char *data_dir, const char *name, uint64_t uid,
		  const struct tasklog_owner *owner);

/*
 * Append @len event bytes to task @name's events.unapplied (made if
 * missing) and fsync it and its directory: events a damaged task could not
 * take.  0 or -errno.
 */
int tasklog_rescue(struct tasklog *tl, const char *name, const void *data, size_t len);

/* Read up to @len log bytes at @off.  Bytes read, or -errno. */
ssize_t tasklog_read(struct tasklog *tl, uint64_t uid, const char *name,
		     uint64_t off, void *buf, size_t len);

/*
 * Keep task @uid's log open across many reads (a view that reads a run of
 * its events): the descriptor stays valid until tasklog_unpin, even if the
 * task is removed meanwhile.  0 or -errno.
 */
struct tasklog_file;
int tasklog_pin(struct tasklog *tl, uint64_t uid, const char *name, struct tasklog_file **out);
ssize_t tasklog_pread(struct tasklog_file *f, uint64_t off, void *buf, size_t len);
void tasklog_unpin(struct tasklog *tl, struct tasklog_file *f);

/* Read @n sidecar records from @idx.  Records read, or -errno (-EILSEQ: bad check). */
ssize_t tasklog_read_recs(struct tasklog *tl, uint64_t uid, const char *name,
			  uint64_t idx, struct tasklog_rec *recs, size_t n);

/*
 * fdatasync the log and sidecar.  0 or -errno; -EIO without trying once
 * any fsync of this tasklog has failed (tasklog_sync_failed).
 */
int tasklog_sync(struct tasklog *tl, uint64_t uid, const char *name);

/*
 * Has an fsync of a task file or directory failed since tasklog_open?  The
 * kernel may then have dropped unwritten pages and marked them clean: the
 * journal must keep covering every change since the last checkpoint.
 */
bool tasklog_sync_failed(struct tasklog *tl);
/* Call @fn(@arg) at the first such failure (from the failing thread, any locks held). */
void tasklog_on_sync_failed(struct tasklog *tl, void (*fn)(void *arg), void *arg);

/* Current sizes on disk: log bytes and whole sidecar records. 0 or -errno. */
int tasklog_sizes(struct tasklog *tl, const char *name, uint64_t *log_len, uint64_t *nrecs);
/*
 * Task @name has its log and no sidecar (removed): make an empty one,
 * synced with its directory, for the records to be rebuilt into.  1 made,
 * 0 there already, -ENOENT (no log) or -errno.
 */
int tasklog_recreate_meta(struct tasklog *tl, const char *name);

/*
 * Task @name's sidecar describes another log (recovery found so): rename
 * it to events.meta.foreign (replacing an older one, as fsck --repair
 * does) and make an empty one for the records to be rebuilt into, synced
 * with the directory.  0 or -errno.
 */
int tasklog_meta_foreign(struct tasklog *tl, uint64_t uid, const char *name);

/* Cut the log to @log_len bytes and the sidecar to @nrecs records. 0 or -errno. */
int tasklog_truncate(struct tasklog *tl, uint64_t uid, const char *name,
		     uint64_t log_len, uint64_t nrecs);

/*
 * Move task @name's directory aside to .trash-<uid> (its name is free at
 * once) and forget its descriptors.  Missing source is fine (repeat after a
 * crash).  0 or -errno.
 */
int tasklog_remove(struct tasklog *tl, uint64_t uid, const char *name);

/*
 * Undo tasklog_remove: rename .trash-<uid> back to @name, first removing a
 * directory of that name (a newer task created after the delete, which
 * recovery creates again from the journal).  For a delete whose index
 * commit a crash undid.  0 or -errno.
 */
int tasklog_unremove(struct tasklog *tl, uint64_t uid, const char *name);

/* Call @cb with the uid of every .trash-<uid> directory. */
int tasklog_trash_list(struct tasklog *tl, int (*cb)(void *arg, uint64_t uid), void *arg);

/* Delete .trash-<uid> and its files.  Missing is fine.  0 or -errno. */
int tasklog_purge(struct tasklog *tl, uint64_t uid);

/*
 * Rewriting a task's files without their head (retention).  The kept part
 * is copied to DATA_DIR/tasks/.rewrite/<uid>.events and <uid>.meta, synced,
 * and renamed over the task's files once the index has switched to them.
 * The copy runs while appends go on: the old files only grow past what is
 * copied, and the last copy (up to the index's lengths) runs on the writer.
 */
struct tasklog_retain;
/* Start a rewrite keeping the log from byte @from_off and the sidecar from record @from_idx. */
int tasklog_retain_open(struct tasklog *tl, uint64_t uid, const char *name, uint64_t from_off,
		    uint64_t from_idx, struct tasklog_retain **out);
/* Copy the old files up to log byte @end_off and record @end_idx (physical).  0 or -errno. */
int tasklog_retain_copy(struct tasklog_retain *rw, uint64_t end_off, uint64_t end_idx);
/* fdatasync the new files.  0 or -errno. */
int tasklog_retain_sync(struct tasklog_retain *rw);
/*
 * Rename the new files over the task's and forget its descriptors (the
 * caller keeps readers out meanwhile).  Durable after tasklog_retain_finish.
 */
int tasklog_retain_install(struct tasklog_retain *rw);
/* The rewrite is committed: tasklog_retain_free must keep its files even if not installed. */
void tasklog_retain_keep(struct tasklog_retain *rw);
/* Close; new files not installed are removed. */
void tasklog_retain_free(struct tasklog_retain *rw);
/*
 * Rename whatever rewrite files of task @uid remain over its files (a crash
 * after the index switched), then fsync both directories.  0 or -errno.
 */
int tasklog_retain_finish(struct tasklog *tl, uint64_t uid, const char *name);
/* Remove every file of .rewrite (rewrites the index never switched to). */
int tasklog_retain_clean(struct tasklog *tl);

/*
 * Prove task @uid's log up to physical byte @upto (at most @flen, the
 * bytes the index has; @base_len and @base_n are what retention dropped
 * from its head): every event there has the length and checksum of its
 * sidecar record.  Goes on from where the last call for @uid stopped (kept
 * in logical terms, so it survives retention), and a little past @upto.
 * The bytes proven so far go to *@proven (unless NULL).  0; -EBADMSG (an
 * event's bytes do not match its checksum), -EILSEQ (a record does not
 * check out), -EUCLEAN (the files and the index disagree on where events
 * end), each with @why; or -errno.  Thread-safe.
 */
int tasklog_verify(struct tasklog *tl, uint64_t uid, const char *name, uint64_t base_len,
		   uint64_t base_n, uint64_t flen, uint64_t upto, uint64_t *proven,
		   char *why, size_t n);
/* Forget what tasklog_verify proved of @uid (its files cut, removed or replaced). */
void tasklog_verify_forget(struct tasklog *tl, uint64_t uid);

/*
 * The sidecar format of store @data_dir: DATA_DIR/format says
 * "evlogfs-format 2 <XXH32 of the words before>" (a line that does not
 * check out is damage, not another format).  Without it (a store made before format 2, or the
 * file lost), or with @every (the offline tools, which read every task
 * anyway: a task tree of an older store copied in), every sidecar is
 * looked at (its first records): format-1 ones are upgraded if @may_write
 * (each rewritten crash-safely), and the file is written.  The caller
 * holds the store's lock.  0; -EPROTO (format-1 sidecars and not
 * @may_write, or a newer format: @why says so); -errno.
 */
int tasklog_format_check(const char *data_dir, bool may_write, bool every, char *why, size_t n);

void tasklog_encode(const struct tasklog_rec *r, unsigned char out[TASKLOG_REC]);
/* 0, or -EILSEQ if the record's own checksum is wrong. */
int tasklog_decode(const unsigned char in[TASKLOG_REC], struct tasklog_rec *r);
/*
 * Read record @i of the sidecar open on @fd (a task's events.meta outside a
 * tasklog: backup's source and copy) and decode it into *@r, its bytes into
 * @raw unless NULL.  0; -EAGAIN (the file ends before it); -EILSEQ (its own
 * checksum is wrong: *@r holds what its bytes say, as tasklog_decode leaves
 * it); or -errno.
 */
int tasklog_read_rec(int fd, uint64_t i, struct tasklog_rec *r, unsigned char raw[TASKLOG_REC]);
/* A format-1 record (24 bytes; sum 0).  0 or -EILSEQ. */
int tasklog_decode_v1(const unsigned char in[TASKLOG_REC_V1], struct tasklog_rec *r);

#endif
