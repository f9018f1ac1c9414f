/*
 * journal_i.h - the journal's framing: segment and record headers, for
 * journal.c and the test tools that build segments of their own (the
 * journal fuzzer), so that they write the format journal.c reads; and the
 * state journal.c (appends, the syncer, segments) and journal_replay.c
 * (reading back, at open and offline) share.  The format is documented at
 * the top of journal.c.  Private to core/ and its tests: the store appends
 * and replays through journal.h.
 */
#ifndef EVL_JOURNAL_I_H
#define EVL_JOURNAL_I_H

#include <stdint.h>
#include <sys/uio.h>

#define JOURNAL_SEG_HDR 32	/* a segment's header, before its first record */
#define JOURNAL_REC_HDR 32	/* a record's header, before its payload */

/* Fill @hdr with the header of the segment whose first record is @first. */
void journal_seg_header(unsigned char hdr[JOURNAL_SEG_HDR], uint64_t first);

/*
 * Fill @hdr with the header of record @lsn of @type (1..255) whose payload
 * is the @cnt buffers of @iov, @len bytes in all (at most 128 MiB: the
 * caller checks), with durable mark @mark (@lsn minus the last lsn known
 * durable, capped; 0: not recorded) and the checksum of the header and
 * the payload.  The payload follows the header unchanged.
 */
void journal_rec_header(unsigned char hdr[JOURNAL_REC_HDR], unsigned type, uint32_t len,
			uint64_t lsn, uint32_t mark, const struct iovec *iov, int cnt);

/* ---- shared by journal.c and journal_replay.c ---- */

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "datadir.h"
#include "journal.h"

#define SEG_MAGIC "EVLJRNL"	/* 8 bytes with its NUL */
#define SEG_VERSION 1
#define SEG_SUFFIX ".jnl"	/* a segment's name: its first lsn in 16 hex digits, then this */
#define SEG_NAME_LEN (16 + sizeof(SEG_SUFFIX) - 1)
#define SEG_HDR JOURNAL_SEG_HDR
#define REC_MAGIC 0x524a5645u
#define REC_HDR JOURNAL_REC_HDR
/*
 * Room for the largest append: an event of max_event (64 MiB at most) held
 * across writes, completed by a 1 MiB request of further events, plus the
 * record's header and per-event directory.
 */
#define REC_MAX (128u << 20)

struct journal {
	char *dir;
	struct journal_opts opts;
	pthread_mutex_t lock;
	pthread_cond_t durable_cv;	/* durable_lsn or error changed */
	pthread_cond_t sync_cv;		/* work for the syncer */
	pthread_t syncer;

	/* protected by lock */
	int fd;				/* current segment */
	uint64_t seg_first;		/* first lsn of the current segment */
	uint64_t off;			/* end of the current segment */
	uint64_t next_lsn;
	uint64_t written_lsn, durable_lsn;
	uint64_t first_unsynced_ns;	/* when written first passed durable */
	uint64_t *segs;			/* first lsns of segments on disk, sorted */
	size_t nsegs, segs_cap;
	uint64_t bytes;			/* sum of segment sizes */
	uint64_t fsyncs;
	bool sync_req, syncing, stop;
	int error;			/* sticky: EIO after a failed fsync */
	struct journal_damage dmg;	/* what journal_open set aside; fixed after it */
};

/* journal.c, for journal_open and journal_scan (journal_replay.c) */
int journal_seg_create(struct journal *j, uint64_t first, int *fdp);
/* The path of segment @first in j->dir: 0 or -ENAMETOOLONG. */
int journal_seg_path(const struct journal *j, uint64_t first, char buf[static DD_PATH_MAX])
	DD_MUST;
int journal_segs_add(struct journal *j, uint64_t first);
void *journal_syncer_main(void *arg);

#endif
