/*
 * linebuf.h - reassemble lines split across write() calls.
 *
 * One linebuf per open handle.  linebuf_feed() shows the caller every line
 * the new bytes complete, in order, then holds the change tentatively: the
 * caller either keeps it (linebuf_commit) or undoes it (linebuf_rollback),
 * so a write() can be all-or-nothing.  Exactly one of the two must follow
 * every successful feed, before the bytes passed to feed are freed.
 *
 * A refused feed is already rolled back: the buffer holds what it held
 * before.  linebuf_refused_held() then tells whether the refused line is the
 * one held from earlier feeds; a caller that forgets refused lines (a
 * writer's next line starts clean) drops it with linebuf_clear().
 *
 * Memory: a buffer that grew for a long line is given back once the line
 * is complete (or cleared), so an idle handle holds at most a small buffer.
 *
 * Caveats: not thread-safe (a handle's writes are serialised by its owner).
 * Lines handed to the callback are borrowed: valid until commit/rollback.
 */
#ifndef EVL_LINEBUF_H
#define EVL_LINEBUF_H

#include <stdbool.h>
#include <stddef.h>

struct linebuf {
	char *buf;		/* the unterminated tail held between writes */
	size_t len, cap;
	size_t max;		/* longest line allowed, newline included */
	bool refused_held;	/* the last refused feed refused the held line */
	/* tentative state between feed and commit/rollback */
	size_t saved_len;
	size_t next_len;	/* what len becomes at commit */
	const char *tail;	/* bytes after the last newline, or NULL */
	size_t tail_len;
	const char *more;	/* no newline: bytes to append at commit */
	size_t more_len;
};

/*
 * Called for each complete line, in order (@len excludes the newline);
 * @index counts lines from 0 within the feed.  A non-zero return stops the
 * feed.
 */
typedef int (*linebuf_line_cb)(void *arg, const char *line, size_t len, size_t index);

void linebuf_init(struct linebuf *lb, size_t max);
void linebuf_release(struct linebuf *lb);

/*
 * Split @data.  Returns 0 (call commit or rollback next), or, with the
 * state already rolled back: the callback's non-zero value, -EFBIG for a
 * line or an unterminated tail longer than max (the lines before it were
 * shown to the callback first), or -ENOMEM.
 */
int linebuf_feed(struct linebuf *lb, const char *data, size_t n,
		 linebuf_line_cb cb, void *arg);
void linebuf_commit(struct linebuf *lb);
void linebuf_rollback(struct linebuf *lb);

/*
 * After a feed that returned the callback's value or -EFBIG: true if the
 * refused line is the one held from earlier feeds (the feed's first bytes
 * continued it), false if it began in the refused data.
 */
static inline bool linebuf_refused_held(const struct linebuf *lb)
{
	return lb->refused_held;
}

/* Bytes held from an unterminated line. */
static inline size_t linebuf_pending(const struct linebuf *lb)
{
	return lb->len;
}

/* After a successful feed: the bytes held once it is committed. */
static inline size_t linebuf_next_pending(const struct linebuf *lb)
{
	return lb->next_len;
}

/* Drop the held bytes (stored at close, or refused). */
void linebuf_clear(struct linebuf *lb);

#endif
