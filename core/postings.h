/*
 * postings.h - the packed index's posting blocks.  Private to core/.
 *
 * A list is the events of one key (a type, a dotted prefix of types, and
 * later any indexed field's value) in global commit order.  The index keeps
 * a list as blocks, each one LMDB value holding up to POST_BLOCK_EVENTS
 * events.  This module is the block format and nothing else: no LMDB, no
 * I/O, no allocation (the caller hands the buffers).
 *
 * FORMAT (every number an unsigned LEB128 varint; "z" a zigzag one)
 *
 *   header:  count, bytes, first_gseq, last_gseq - first_gseq,
 *            last_uid, last_end
 *   entries, in gseq order, each against the entry before it (for the
 *   first: first_gseq, uid 0, end 0):
 *            gseq - prev_gseq        (0 for the first, >= 1 after)
 *            z(uid - prev_uid)
 *            z(off - prev_end) if uid == prev_uid, else off
 *            len
 *
 *   bytes is the sum of the entries' len; prev_end is the previous entry's
 *   off + len.  The header's last_* let an append code its entry without
 *   decoding the others.  An event of 200 bytes costs 5 to 9 bytes: the
 *   gseq delta is 1 byte while a list is dense, a task writing runs of one
 *   type costs a 1-byte uid and a 1-byte offset delta.
 *
 * COSTS (n = events in the block, at most POST_BLOCK_EVENTS)
 *   post_append       O(header + n): a memmove of the entries
 *   post_next         O(1) per entry
 *   post_check        O(n): the header agrees with the entries
 *   post_find_byte    O(n): the entry holding byte k of the block
 *   post_find_gseq    O(n): the first entry with gseq >= g
 *   post_filter       O(n): a copy without the entries a predicate drops
 *
 * Every decoder checks its input: a block that does not decode (index
 * damage), has a byte more, or whose header disagrees with its entries is
 * -EUCLEAN, never a read past its end; varints must be in their shortest
 * form, so a list has one encoding.
 */
#ifndef EVL_POSTINGS_H
#define EVL_POSTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One event of a list: where its bytes are. */
struct post_ev {
	uint64_t gseq;		/* global commit sequence */
	uint64_t uid;		/* its task */
	uint64_t off;		/* its offset in the task's log (index offsets) */
	uint32_t len;		/* its bytes, newline included */
};

/* A block's header, decoded. */
struct post_hdr {
	uint32_t count;
	uint64_t bytes;
	uint64_t first_gseq, last_gseq;
	uint64_t last_uid, last_end;
	size_t size;		/* bytes the header takes */
};

#define POST_BLOCK_EVENTS 128
/*
 * A block is full at POST_BLOCK_EVENTS events or at this many bytes, so
 * that it fits one LMDB node of a 4 KiB page (about 2,000 bytes with its
 * key) instead of overflow pages of its own: sparse lists (gseq gaps, a
 * task change at every event) cost up to 35 bytes an event.
 */
#define POST_BLOCK_BYTES 1900
/* The longest a header (6 varints) and an entry (4) can be. */
#define POST_HDR_MAX	(6 * 10)
#define POST_ENTRY_MAX	(4 * 10)
/* The longest block: the size of a buffer that any block fits. */
#define POST_BLOCK_MAX	(POST_HDR_MAX + POST_BLOCK_EVENTS * POST_ENTRY_MAX)

/* An empty block into @out: its length. */
size_t post_init(unsigned char *out);

/* Decode @blk's header.  0 or -EUCLEAN. */
int post_header(const unsigned char *blk, size_t len, struct post_hdr *h);

/*
 * Append @ev to block @blk (@len bytes) into @out (which may be @blk;
 * POST_BLOCK_MAX bytes): the new length; -ENOSPC if the block is full
 * (POST_BLOCK_EVENTS, or POST_BLOCK_BYTES with @ev); -EINVAL if @ev is not
 * one the applier makes (gseq, uid and len 0, or off + len past 2^64) or
 * its gseq is not after the block's last; or -EUCLEAN.  Only the header
 * is read: the entries are trusted as they are (post_check reads them).
 */
long post_append(const unsigned char *blk, size_t len, const struct post_ev *ev,
		 unsigned char *out);

/*
 * Check the whole of @blk: every entry decodes, and the header's count,
 * bytes and last entry are what the entries give.  0 or -EUCLEAN.
 */
int post_check(const unsigned char *blk, size_t len);

/* A walk over a block's entries. */
struct post_iter {
	const unsigned char *p, *end;
	uint32_t left;			/* entries not yet handed out */
	struct post_ev prev;		/* the entry last handed out */
	struct post_hdr hdr;
	uint64_t bytes;			/* of the entries handed out */
	bool started, failed;
};

/* Begin a walk of @blk: 0 or -EUCLEAN. */
int post_iter_init(struct post_iter *it, const unsigned char *blk, size_t len);
/*
 * The next entry into *@ev: 1; 0 at the end, once the header has been
 * found to say what the entries gave; or -EUCLEAN (and again at every
 * later call).
 */
int post_next(struct post_iter *it, struct post_ev *ev);

/*
 * The entry holding byte @k of the block's events (0 <= k < bytes): its
 * index in *@i, and how far into it @k is in *@skip.  0, -ENXIO (past the
 * end) or -EUCLEAN.
 */
int post_find_byte(const unsigned char *blk, size_t len, uint64_t k, uint32_t *i,
		   uint64_t *skip);

/*
 * The first entry with gseq >= @g: its index in *@i (count if none), and
 * the bytes of the entries before it in *@before.  0 or -EUCLEAN.
 */
int post_find_gseq(const unsigned char *blk, size_t len, uint64_t g, uint32_t *i,
		   uint64_t *before);

/*
 * Copy @blk into @out (POST_BLOCK_MAX bytes; may be @blk) without the
 * entries @drop says true of: the new length (an empty block's when none
 * is kept), or -EUCLEAN.  How deletion and retention take a task's events
 * out.
 */
long post_filter(const unsigned char *blk, size_t len,
		 bool (*drop)(void *arg, const struct post_ev *ev), void *arg,
		 unsigned char *out);

#endif
