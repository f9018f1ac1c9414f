/*
 * journal.h - the write-ahead journal: checksummed records in segment files,
 * group commit, replay.
 *
 * Caveats: journal_append, journal_wait and journal_barrier are thread-safe.
 * Callers that need records in a given order (the store assigns commit
 * sequences) serialise their appends themselves.  The on_durable callback
 * runs on the syncer thread with no journal lock held; it must not call
 * journal_close.  After a failed fsync the journal is in a sticky error
 * state: every later append and wait returns -EIO until it is reopened.
 */
#ifndef EVL_JOURNAL_H
#define EVL_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct journal;

struct journal_opts {
	bool sync_mode;		/* true: callers wait for the covering fsync */
	unsigned commit_ms;	/* group mode: fsync at least this often */
	uint64_t segment_bytes;	/* start a new segment past this size */
	uint64_t min_lsn;	/* new records get lsns above this */
	/*
	 * -EUCLEAN from journal_open, the journal unchanged (@cb ran for
	 * the records past from_lsn, if any), if the journal is
	 * intact but ends (its last record; an empty last segment: the lsn
	 * before its name) before max(from_lsn, min_lsn): the caller's
	 * position is wrong (a damaged index), and replaying past it would
	 * skip every record.  A journal with no segment has no end to judge.
	 */
	bool check_end;
	void (*on_durable)(void *arg, uint64_t lsn);
	void *arg;
};

/*
 * Called by journal_open for every intact record with lsn > from_lsn, in
 * order.  A non-zero return aborts the open with that value.
 */
typedef int (*journal_replay_cb)(void *arg, uint64_t lsn, unsigned type,
				 const void *payload, size_t len);

/*
 * Open (creating if needed) the journal in directory @dir, replay records
 * past @from_lsn through @cb, cut away any torn or corrupt tail (later
 * segments are renamed *.corrupt and logged), make what remains durable and
 * start a new segment for appends.  New records get lsns from
 * max(last replayed, @from_lsn, opts->min_lsn) + 1.  A gap between segments
 * is allowed (logged if it hides records past @from_lsn); inside a segment
 * lsns run without gaps.
 * A cut or a set-aside that would leave the journal ending before
 * max(@from_lsn, opts->min_lsn) creates the next segment first, so that
 * a crash or a full disk in between never leaves a journal that seems to
 * end before what was applied (opts->check_end).
 * Returns 0, -ENOMEM, -EUCLEAN (opts->check_end), the callback's error,
 * or -errno of the failed I/O.
 */
int journal_open(const char *dir, uint64_t from_lsn, const struct journal_opts *opts,
		 journal_replay_cb cb, void *arg, struct journal **out);

/* Flush, stop the syncer and free.  Returns 0 or -EIO if the final fsync failed. */
int journal_close(struct journal *j);

/*
 * Append one record of @type made of @cnt buffers.  Returns once the record
 * is written (not yet durable), with its lsn in *@lsn.
 * Errors: -EIO (sticky state, or the record could not be cut back),
 * -ENOSPC, -EIO or another -errno from the write (nothing of the record
 * remains; later appends may succeed), -EFBIG (record over 128 MiB).
 */
int journal_append(struct journal *j, unsigned type, const struct iovec *iov,
		   int cnt, uint64_t *lsn);

/* Wait until every record up to @lsn is durable.  Returns 0 or -EIO. */
int journal_wait(struct journal *j, uint64_t lsn);

/* Wait until every record appended before the call is durable.  0 or -EIO. */
int journal_barrier(struct journal *j);

/*
 * Enter the sticky error state from outside: another file's fsync failed
 * and the journal must keep covering what it held (see the store's
 * checkpoint).  Appends and waits return -EIO from now on.
 */
void journal_fail(struct journal *j);

/*
 * Delete every segment all of whose records are <= @upto (they are applied
 * and synced elsewhere).  Returns 0 or -errno.
 */
int journal_trim(struct journal *j, uint64_t upto);

/*
 * Damage replay set aside: records that did not check out but were proven
 * durable (a later record or segment was written after their fsync, or
 * the index had applied them), so they are not a torn tail.  Replay skips
 * them and goes on with the next record that checks out; each damaged
 * segment stays in place (its good records may be the only copy until a
 * checkpoint trims it) and a copy is kept as <name>.corrupt.
 */
struct journal_damage {
	uint64_t lost;			/* records whose lsns were skipped */
	uint64_t first_lsn, last_lsn;	/* the lowest and highest of them */
	uint64_t segments;		/* damaged segments */
	uint64_t first_segment;		/* the first one's first lsn (its name) */
};

struct journal_stats {
	uint64_t written_lsn, durable_lsn;
	uint64_t bytes;		/* bytes in segment files on disk */
	uint64_t fsyncs;
	int error;		/* sticky error, 0 if none */
	struct journal_damage damage;	/* found by journal_open */
};
void journal_get_stats(struct journal *j, struct journal_stats *st);

struct journal_scan {
	uint64_t segments;
	uint64_t first_lsn, last_lsn, records;	/* records that check out */
	struct journal_damage damage;	/* what the next open sets aside */
	uint64_t bad_bytes;	/* a torn tail: bytes the next open cuts */
	uint64_t bad_segment, bad_off;	/* where they start */
	uint64_t bad_later;	/* whole segments after that point */
};

/*
 * Read the journal in @dir without changing it (fsck, reindex): call @cb
 * for every record that checks out, in order (as journal_open would replay
 * them, @durable being the lsn the index has applied), and describe what
 * was found in @out.  A missing directory is an empty journal.  0, @cb's
 * error, or -errno.
 */
int journal_scan(const char *dir, uint64_t durable, journal_replay_cb cb, void *arg,
		 struct journal_scan *out);

#endif
