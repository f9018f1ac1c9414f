/*
 * journal_i.h - the journal's framing: segment and record headers, for
 * journal.c and the test tools that build segments of their own (the
 * journal fuzzer), so that they write the format journal.c reads.  The
 * format is documented at the top of journal.c.  Private to core/ and its
 * tests: the store appends and replays through journal.h.
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

#endif
