/*
 * evlog.h - the public API of the evlogfs core: a store of task event logs
 * with a journal and a type index.  This is the only header fs/ and
 * mount-tools/ include.
 *
 * Errors: every function returns 0 (or a count) on success and -errno on
 * failure; the errnos each can return are listed with it.
 *
 * Caveats:
 * - A store is opened by one process at a time (DATA_DIR/lock); all its
 *   functions are thread-safe, except that one writer or view handle must
 *   not be used by two threads at once.
 * - Every function may block briefly on disk I/O; evl_writer_write may also
 *   wait while max_pending bytes are unapplied, evl_task_delete and
 *   evl_store_checkpoint wait for the applier (evl_task_create does not: a
 *   task exists once its create is journaled).  None waits for a reader.
 * - Names and buffers passed in are copied or only read during the call.
 * - Callbacks (evl_task_list, evl_type_list, evl_view_tasks) run while the
 *   store holds a read snapshot: they must not call back into the store.
 */
#ifndef EVLOG_H
#define EVLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct evl_store;
struct evl_writer;
struct evl_view;

struct evl_options {
	const char *type_field;	/* member holding the type ("type") */
	size_t max_event;	/* largest event, newline included (1 MiB) */
	size_t max_pending;	/* memory of unapplied records, bookkeeping
				   included, before writers wait (64 MiB) */
	size_t max_held;	/* unterminated-line bytes all writers may hold
				   (64 MiB; 0: no limit) */
	size_t max_types;	/* distinct types; a write bringing one more is
				   refused with -EDQUOT (10000; 0: no limit) */
	bool commit_sync;	/* acknowledge after the covering fsync */
	unsigned commit_ms;	/* group commit: fsync at least this often (10) */
	bool read_only;		/* refuse every change with -EROFS */
	bool nodelete;		/* refuse every deletion with -EPERM */
	unsigned max_fds;	/* task logs kept open (1024); evl_store_open
				   raises RLIMIT_NOFILE's soft limit to fit */
	uint64_t segment_bytes;	/* journal segment size (64 MiB) */
	const char *holder;	/* what the lock file names (e.g. the mountpoint) */
	bool hold_apply;	/* leave appends unapplied, journaled and in memory,
				   until something waits for the applier: a delete,
				   checkpoint or close applies everything journaled
				   before it (records apply in journal order; a
				   create does not wait).  A writer past max_pending
				   waits until then (tests/unit held_back_writer_sleeps
				   measures that wait).  For benchmarks and tests of
				   recovery */
};

/* Fill @o with the defaults above. */
void evl_options_default(struct evl_options *o);

/*
 * Open the store in @dir (created if missing), recovering from a crash:
 * cut task-log bytes the index does not cover, replay the journal tail,
 * apply it.  Errors: -EBUSY (another process holds the lock; its pid and
 * holder are logged), -EINVAL (bad options, or type_field differs from the
 * one the store was built with), -ENOMEM, -EIO and other -errno of I/O.
 */
int evl_store_open(const char *dir, const struct evl_options *opts, struct evl_store **out);

/*
 * Apply everything, checkpoint and close.  Returns 0 only if everything
 * acknowledged is on disk; else -EIO (or another -errno), after closing
 * anyway.
 */
int evl_store_close(struct evl_store *st);

/*
 * Barrier: return once every event acknowledged before the call is on
 * stable storage (what fsync() on an events file means).  0 or -EIO.
 */
int evl_store_sync(struct evl_store *st);

/*
 * Checkpoint: apply the journal, fsync logs and index, delete journal
 * segments no longer needed.  0, -EROFS, -EIO or -errno; if the applier
 * fails meanwhile (a full disk), its error (-ENOSPC) instead of waiting.
 */
int evl_store_checkpoint(struct evl_store *st);

/* ---- tasks ---- */

struct evl_task_info {
	uint64_t uid;		/* stable for the task's life, never reused */
	uint64_t size;		/* log bytes, pending included */
	uint64_t events;	/* events, pending included */
	uint64_t created_ns, last_ns;	/* wall clock, ns since the epoch */
	bool has_owner;		/* created with an owner (evl_task_create_as) */
	uint32_t owner_uid, owner_gid, mode;	/* mode: permission bits of mkdir */
	char name[256];
};

/* Who created a task, and the permission bits it asked for (mkdir's mode & ~umask). */
struct evl_owner {
	uint32_t uid, gid, mode;
};

/*
 * Check a task id: 1-255 bytes, no '/', NUL or control byte, not starting
 * with '.'.  0, -EINVAL or -ENAMETOOLONG.
 */
int evl_task_check_name(const char *name, size_t len);

/*
 * Create task @name: it exists (lookups, writers, readers see it) and its
 * record is durable on return; the applier makes its files later.
 * -EEXIST, -EINVAL, -ENAMETOOLONG, -EROFS, -ENOSPC, -EIO.
 */
int evl_task_create(struct evl_store *st, const char *name);
/* The same, recording @owner (NULL: none) with the task. */
int evl_task_create_as(struct evl_store *st, const char *name, const struct evl_owner *owner);

/*
 * Delete task @name: it has left every view on return (the applier applied
 * the delete, ahead of records it cannot apply if need be); its files and
 * index entries are reclaimed in the background.  -ENOENT, -EROFS, -EPERM
 * (nodelete), -ENOSPC, -EIO.
 */
int evl_task_delete(struct evl_store *st, const char *name);

/*
 * Delete task @uid, the one a caller looked at: a task made meanwhile under
 * the same name has another uid and is left alone.  With @idle_before_ns
 * (wall clock, ns; 0: any) only if its last append, applied or not, was
 * before it: checked in the step that journals the delete, so an append
 * acknowledged before that step saves the task, and one after it fails
 * with ENOENT (never acknowledged and lost).  The task as deleted (its
 * name) goes to *@out unless NULL.  -ENOENT (no live task @uid), -EBUSY
 * (written since @idle_before_ns), -EROFS, -EPERM, -ENOSPC, -EIO.
 */
int evl_task_delete_uid(struct evl_store *st, uint64_t uid, uint64_t idle_before_ns,
			struct evl_task_info *out);

/* Look a live task up by name or uid.  -ENOENT. */
int evl_task_lookup(struct evl_store *st, const char *name, struct evl_task_info *out);
int evl_task_stat(struct evl_store *st, uint64_t uid, struct evl_task_info *out);

/*
 * Call @cb for each live task in name order, starting after @after (NULL:
 * the first).  Stops early, returning @cb's value, if it returns non-zero.
 * Sizes are a snapshot's: appends racing with the listing may be missing
 * from them (evl_task_stat is exact).
 */
int evl_task_list(struct evl_store *st, const char *after,
		  int (*cb)(void *arg, const struct evl_task_info *task), void *arg);

/*
 * Read up to @len bytes of task @uid's log at @off, including events whose
 * write() returned but which are not applied yet.  Bytes read (0 at the
 * end), or -ENOENT, -EIO.
 */
ssize_t evl_task_read(struct evl_store *st, uint64_t uid, uint64_t off, void *buf, size_t len);

/* ---- writing ---- */

/*
 * Open an append handle on task @uid.  The handle reassembles lines split
 * across writes.  -ENOENT, -EROFS, -ENOMEM.
 */
int evl_writer_open(struct evl_store *st, uint64_t uid, struct evl_writer **out);

/*
 * Append @n bytes: all or nothing.  Every complete line is validated; the
 * bytes after the last newline are held for the next call.  Returns 0 when
 * every complete line is journaled (and, with commit_sync, durable) and the
 * rest is held.  On any error nothing of this call is stored or held.
 * Errors:
 * -EINVAL (an invalid event), -EFBIG (a line, or the held unterminated
 *   line, longer than max_event): the refused line is logged and counted,
 *   and the handle forgets it.  A refused line that began in this call
 *   leaves the handle as it was (a line held from earlier calls that it
 *   did not continue stays held).  One that continued the held line drops
 *   it, and the next call starts a new line; except that after an EFBIG,
 *   a next call that begins with the same bytes (the rest of a write() the
 *   kernel cut into requests, sent again after the short count) fails with
 *   EFBIG too, without being counted again.
 * -ENOBUFS (holding the new tail would put all writers' held bytes over
 *   max_held; counted), -ENOENT (task deleted), -EROFS, -ENOSPC, -EIO,
 *   -ENOMEM: the handle is as before the call, which may be tried again.
 * -EFBIG also when the call's events together make a journal record over
 *   128 MiB (only through this API: FUSE writes are at most 1 MiB).
 */
int evl_writer_write(struct evl_writer *w, const void *data, size_t n);

/*
 * Store the held unterminated line, if any (with a newline appended): what
 * the last close of a handle does.  Errors as evl_writer_write; the line is
 * dropped in any case (an invalid one is logged and counted).
 */
int evl_writer_flush(struct evl_writer *w);

/*
 * Store the held line only if it is a valid event as it stands: what a
 * close(2) by the process that wrote it does, when other descriptors of the
 * open file may still complete the line.  Returns 0 (stored, or nothing or
 * only blanks held), -EINVAL (not a valid event yet: it stays held, and
 * nothing is logged or counted), -ENOMEM (still held), or the errors of
 * storing (-ENOSPC, -EIO, -ENOENT, ...: the line is dropped; the caller
 * tells its writer).
 */
int evl_writer_flush_valid(struct evl_writer *w);

/* Bytes held from an unterminated line (not yet in the task log). */
size_t evl_writer_held(const struct evl_writer *w);

/* Flush and free.  Returns evl_writer_flush's result; frees in any case. */
int evl_writer_close(struct evl_writer *w);

/* ---- types and views ---- */

/* Call @cb for each type with live events (applied or pending). */
int evl_type_list(struct evl_store *st,
		  int (*cb)(void *arg, const char *type, size_t len), void *arg);

/* Does any live type start with @prefix? */
bool evl_prefix_exists(struct evl_store *st, const char *prefix, size_t len);

/*
 * Open view @prefix: every matching event of every task in commit order,
 * or, when @task_uid is non-zero, that task's matching events.  -ENOENT if
 * nothing matches, -EINVAL for a bad prefix, -ENOMEM.
 */
int evl_view_open(struct evl_store *st, const char *prefix, size_t len, uint64_t task_uid,
		  struct evl_view **out);
void evl_view_close(struct evl_view *v);

/* The view's size in bytes now.  0 or -errno. */
int evl_view_size(struct evl_view *v, uint64_t *size);

/*
 * Read up to @len bytes at @off.  O(log n + bytes) for any offset;
 * sequential reads continue where the last one ended.  Bytes read, or
 * -errno.
 */
ssize_t evl_view_read(struct evl_view *v, uint64_t off, void *buf, size_t len);

/*
 * Call @cb for each task with events in view @prefix (uid order for the
 * applied part; tasks with only pending matches follow).
 */
int evl_view_tasks(struct evl_store *st, const char *prefix, size_t len,
		   int (*cb)(void *arg, uint64_t uid), void *arg);

/* ---- compaction ---- */

/* What `compact` was asked for (the words after "compact" in .control). */
struct evl_compact_args {
	char task[256];		/* only this task ("" = all) */
	uint64_t expire_idle_s;	/* delete tasks idle longer than this (0 = no) */
	uint64_t max_age_s;	/* drop events committed longer ago (0 = no) */
	uint64_t keep_last;	/* keep each task's newest N events (0 = no) */
};

/*
 * Parse @words ("task=ID expire-idle=30d ...", durations as 90s, 15m, 12h,
 * 30d, at most 2^63 ns; counts in decimal digits).  A value may be quoted
 * as in evl_control_parse.  0, or -EINVAL with the reason in @why (also for
 * a key given twice).
 */
int evl_compact_parse(const char *words, struct evl_compact_args *out, char *why, size_t whylen);

/* One write to .control, parsed. */
enum evl_control_cmd { EVL_CONTROL_CHECKPOINT = 1, EVL_CONTROL_COMPACT };
struct evl_control {
	enum evl_control_cmd cmd;
	struct evl_compact_args compact;	/* EVL_CONTROL_COMPACT */
	char text[1024];	/* the command, blanks trimmed (for the status) */
};

/*
 * Parse the @size bytes written to .control: one command with its words,
 * at most 1023 bytes once blanks, CRs and newlines around it are trimmed,
 * with no control byte (NUL, CR, a second line) inside.  A word's value
 * may be double-quoted (task="a b"), with \" and \\ for a quote and a
 * backslash inside.  0, or -EINVAL with the reason in @why (and as much of
 * the command as is printable in out->text).
 */
int evl_control_parse(const char *buf, size_t size, struct evl_control *out,
		      char *why, size_t whylen);

/*
 * Start one compaction in the background: checkpoint; expire idle tasks;
 * reclaim deleted tasks; shrink the index file when most of it is free;
 * checkpoint.  Each phase works up to a point fixed when it starts, and
 * evl_store_close stops a run at its next step.  Returns at once: 0,
 * -EBUSY (one is running), -EPERM (deleting with nodelete), -ENOENT
 * (task= names no live task), -EROFS, -EINTR (evl_store_close has begun),
 * -ENOMEM.
 */
int evl_compact_start(struct evl_store *st, const struct evl_compact_args *args);

struct evl_compact_status {
	bool running;
	char phase[16];			/* while running */
	uint64_t done, total;		/* progress of the phase */
	bool have_last;			/* a run has finished */
	int last_rc;			/* 0 or -errno */
	uint64_t last_time_s;		/* when it finished, s since the epoch */
	double last_duration_s;
	uint64_t last_tasks_expired, last_events_dropped, last_bytes_reclaimed;
	uint64_t runs_ok, runs_failed;
	double duration_sum_s;
	uint64_t bytes_reclaimed_total;
};

void evl_compact_status(struct evl_store *st, struct evl_compact_status *out);

/* ---- status ---- */

#define EVL_LAT_BUCKETS 12
extern const double evl_lat_bounds[EVL_LAT_BUCKETS];	/* seconds, last is +Inf */

struct evl_stats {
	uint64_t tasks, events, types;
	uint64_t log_bytes, index_bytes, journal_bytes;
	uint64_t pending_bytes, pending_events;
	uint64_t appended_events, appended_bytes;
	uint64_t rejected_invalid, rejected_too_big;
	uint64_t rejected_held;		/* writes refused by max_held (ENOBUFS) */
	uint64_t rejected_types;	/* writes refused by max_types (EDQUOT) */
	uint64_t held_bytes;		/* unterminated-line bytes writers hold */
	uint64_t written_lsn, durable_lsn, applied_lsn, ckpt_lsn;
	uint64_t fsyncs, checkpoints;
	uint64_t apply_failures;	/* batches the applier failed to apply (retried) */
	/*
	 * Tasks set aside this open (their files are not what the index says:
	 * reads and appends get EIO) and the names of the first of them (each
	 * NUL-ended, an empty name ends the list, "..." stands for the rest);
	 * the acknowledged events of theirs the applier put in their
	 * events.unapplied instead of their logs, and those it could not even
	 * put there (lost).
	 */
	uint64_t tasks_aside, events_unapplied, events_lost;
	char aside[1024];
	/* lines past a task's index, vouched for by no record, put in its events.unapplied at open */
	uint64_t lines_unapplied;
	/*
	 * View reads refused (EIO) because an index entry did not match its log:
	 * a damaged index its checks at open could not see (evlogctl reindex).
	 */
	uint64_t index_damage;
	uint64_t lat_count[EVL_LAT_BUCKETS];	/* append latency histogram */
	double lat_sum;
	int error;			/* sticky journal error (EIO), or 0 */
	/*
	 * Journal damage the open set aside (issue 15): records lost (their
	 * lsns, first to last), damaged segments (kept as <first>.jnl.corrupt).
	 */
	uint64_t journal_lost, journal_lost_first, journal_lost_last;
	uint64_t journal_damaged_segments, journal_damaged_first;
	bool commit_sync;
	unsigned commit_ms;
	char last_rejection[512];	/* "" if none */
};

void evl_store_stats(struct evl_store *st, struct evl_stats *out);

/* ---- offline tools (they take the store's lock: it must not be open) ---- */

struct evl_check_opts {
	bool repair;		/* fsck: make the index agree with the logs */
	const char *type_field;	/* reindex without a readable index ("type") */
	/*
	 * One line per finding, without a newline.  @level: 'E' a problem
	 * found, 'F' a fix made, 'I' information, 'X' why the run stopped.
	 */
	void (*report)(void *arg, char level, const char *line);
	/* Progress of a phase ("scan", "check", "repair", "index"). */
	void (*progress)(void *arg, const char *phase, uint64_t done, uint64_t total);
	void *arg;
};

struct evl_check_result {
	uint64_t tasks, events, types, bytes;	/* what the logs hold */
	uint64_t journal_records;
	uint64_t problems;	/* findings ('E' lines, and those not shown) */
	uint64_t fixed;		/* fixes made ('F' lines) */
	uint64_t unfixable;	/* problems repair cannot fix ('U' lines, also in problems) */
	uint64_t lost;		/* reindex: journaled events no task could take */
	uint64_t damaged;	/* reindex: events not what was written, moved to events.damaged */
	uint64_t journal_lost;	/* journal records corrupt and set aside */
	uint64_t deletes_kept;	/* reindex: tasks a journaled delete names, kept (a copy?) */
};

/*
 * Check store @dir: the journal's checksums; that every logged event is
 * indexed exactly once, under its type, and every index entry points at a
 * real event; the index's structure and counters.  With opts->repair,
 * recover first if the store was not closed cleanly, then make the index
 * agree with the logs (in its own transactions).  Returns 0 (see
 * r->problems and r->fixed), -EBUSY (the store is open: the holder is
 * reported), -ENOENT (no index), -EUCLEAN (the index is damaged: reported,
 * counted in r->problems; reindex builds a new one; without opts->repair
 * nothing is written to it), or -errno.
 */
int evl_fsck(const char *dir, const struct evl_check_opts *opts, struct evl_check_result *r);

/*
 * Build store @dir's index anew from its task logs and swap it in (the old
 * one may be missing or corrupt).  Views afterwards hold the same bytes.
 * Returns 0, -EBUSY, -EILSEQ (a task is corrupt before its end: reported),
 * or -errno.
 */
int evl_reindex(const char *dir, const struct evl_check_opts *opts, struct evl_check_result *r);

struct evl_backup_opts {
	bool live;		/* a daemon has the source open: copy beside it */
	const char *mount;	/* its mountpoint, if live (DEST must not be inside it) */
	void (*report)(void *arg, char level, const char *line);	/* as evl_check_opts */
	void (*progress)(void *arg, const char *phase, uint64_t done, uint64_t total);
	void *arg;
};

struct evl_backup_result {
	uint64_t tasks, events;
	uint64_t tasks_new, tasks_appended, tasks_replaced, tasks_unchanged, tasks_removed;
	uint64_t log_bytes_copied;	/* log bytes; sidecars add 24 per event */
	uint64_t index_bytes;		/* the index snapshot (always copied whole) */
};

/*
 * Copy store @src (its data directory) into @dest, which then mounts as
 * is.  Without opts->live, @src is recovered and locked first.  A second
 * run copies only what is new.  @src must be a store; @dest must be missing,
 * empty or a copy of @src (DEST/backup-of), and neither may be inside the
 * other.  Returns 0, -ECANCELED (refused, why is reported: nothing was
 * changed), -EAGAIN (the source's logs were rewritten or replaced during
 * the copy: run again once its compaction is over), -EBUSY (@dest or an
 * offline @src is open; reported), or -errno.
 */
int evl_backup(const char *src, const char *dest, const struct evl_backup_opts *opts,
	       struct evl_backup_result *r);

/*
 * Who holds store @dir open: 1 with "pid N (holder)" in @buf ("pid N" or
 * "another process (...)" when DATA_DIR/lock does not name it), 0 if
 * nobody, or -errno.  It may wait up to a second for a new holder to name
 * itself.
 */
int evl_store_holder(const char *dir, char *buf, size_t n);

/*
 * Bytes of the longest prefix of @s (@len bytes) that is valid UTF-8 (RFC
 * 3629: no overlong form, surrogate or code point past U+10FFFF).
 */
size_t evl_utf8_prefix(const char *s, size_t len);

/* Event validation as writers do it (for tools that check files first). */
struct evl_validator;
int evl_validator_new(const char *type_field, size_t max_event, struct evl_validator **out);
void evl_validator_free(struct evl_validator *v);
/*
 * Validate one line (@len bytes, newline excluded): 0 valid, 1 blank
 * (writers skip it), -EINVAL or -EFBIG with the column and reason in @why.
 */
int evl_validate(struct evl_validator *v, const char *line, size_t len, char *why, size_t n);

#endif
