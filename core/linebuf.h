/*
 * linebuf.h - reassemble lines split across write() calls.
 *
 * One linebuf per open handle.  linebuf_feed() shows the caller every line
 * the new bytes complete, then holds the change tentatively: the caller
 * either keeps it (linebuf_commit) or undoes it (linebuf_rollback), so a
 * write() can be all-or-nothing.  Exactly one of the two must follow every
 * successful feed, before the bytes passed to feed are freed.
 *
 * Caveats: not thread-safe (a handle's writes are serialised by its owner).
 * Lines handed to the callback are borrowed: valid until commit/rollback.
 */
#ifndef EVL_LINEBUF_H
#define EVL_LINEBUF_H

#include <stddef.h>

struct linebuf {
	char *buf;		/* the unterminated tail held between writes */
	size_t len, cap;
	size_t max;		/* longest line allowed, newline included */
	/* tentative state between feed and commit/rollback */
	size_t saved_len;
	const char *tail;	/* bytes after the last newline, or NULL */
	size_t tail_len;
	const char *more;	/* no newline: bytes to append at commit */
	size_t more_len;
};

/*
 * Called for each complete line (@len excludes the newline); @index counts
 * lines from 0 within the feed.  A non-zero return stops the feed.
 */
typedef int (*linebuf_line_cb)(void *arg, const char *line, size_t len, size_t index);

void linebuf_init(struct linebuf *lb, size_t max);
void linebuf_release(struct linebuf *lb);

/*
 * Split @data.  Returns 0 (call commit or rollback next), the callback's
 * non-zero value (the state is already rolled back), -EFBIG for a line or
 * an unterminated tail longer than max, or -ENOMEM.
 */
int linebuf_feed(struct linebuf *lb, const char *data, size_t n,
		 linebuf_line_cb cb, void *arg);
void linebuf_commit(struct linebuf *lb);
void linebuf_rollback(struct linebuf *lb);

/* Bytes held from an unterminated line. */
static inline size_t linebuf_pending(const struct linebuf *lb)
{
	return lb->len;
}

/* Drop the held bytes (after they were stored at close). */
static inline void linebuf_clear(struct linebuf *lb)
{
	lb->len = 0;
}

#endif
