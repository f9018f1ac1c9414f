/*
 * linebuf.c - line reassembly with tentative commit.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "grow.h"
#include "linebuf.h"

/*
 * A buffer larger than this is given back when what it holds shrinks to a
 * quarter of it: a handle that once held a long line must not keep the
 * memory while it holds nothing (max_held bounds what is held, not what
 * was).
 */
#define LINEBUF_KEEP (64u << 10)
#define LINEBUF_MIN 256

void linebuf_init(struct linebuf *lb, size_t max)
{
	memset(lb, 0, sizeof(*lb));
	lb->max = max;
}

void linebuf_release(struct linebuf *lb)
{
	free(lb->buf);
	memset(lb, 0, sizeof(*lb));
}

static int reserve(struct linebuf *lb, size_t need)
{
	return grow_bytes(&lb->buf, &lb->cap, need);
}

/* Give back most of a big buffer that now holds little. */
static void shrink(struct linebuf *lb)
{
	size_t cap = LINEBUF_MIN;
	char *p;

	if (lb->cap <= LINEBUF_KEEP || lb->len > lb->cap / 4)
		return;
	if (!lb->len) {
		free(lb->buf);
		lb->buf = NULL;
		lb->cap = 0;
		return;
	}
	while (cap < lb->len)
		cap *= 2;
	p = realloc(lb->buf, cap);
	if (p) {	/* else keep the big one: it still works */
		lb->buf = p;
		lb->cap = cap;
	}
}

int linebuf_feed(struct linebuf *lb, const char *data, size_t n,
		 linebuf_line_cb cb, void *arg)
{
	const char *p = data, *end = data + n, *nl, *last;
	size_t index = 0, need, tail;
	int rc;

	lb->saved_len = lb->next_len = lb->len;
	lb->refused_held = false;
	lb->tail = NULL;
	lb->tail_len = 0;
	lb->more = NULL;
	lb->more_len = 0;

	/*
	 * A write of nothing: commit and rollback have nothing to do.  (The
	 * NULL test also keeps GCC 12's -Wnonnull quiet about the memrchr
	 * below under -fsanitize=nonnull-attribute.)
	 */
	if (!n || !data)
		return 0;
	last = memrchr(data, '\n', n);
	if (!last) {
		if (lb->len + n + 1 > lb->max) {
			lb->refused_held = lb->len > 0;
			return -EFBIG;
		}
		rc = reserve(lb, lb->len + n);
		if (rc)
			return rc;
		lb->more = data;
		lb->more_len = n;
		lb->next_len = lb->len + n;
		return 0;
	}
	/*
	 * Reserve now, so that commit cannot fail and borrowed lines stay put.
	 * A tail too long to hold is refused after the lines before it, so
	 * that the first bad line in the data is the one reported.
	 */
	nl = memchr(p, '\n', n);
	tail = end - last - 1;
	need = tail + 1 > lb->max ? 0 : tail;
	if (lb->len) {
		if (lb->len + (nl - p) + 1 > lb->max) {
			lb->refused_held = true;
			return -EFBIG;
		}
		if (lb->len + (nl - p) > need)
			need = lb->len + (nl - p);
	}
	rc = reserve(lb, need);
	if (rc)
		return rc;

	if (lb->len) {
		size_t part = nl - p;

		memcpy(lb->buf + lb->len, p, part);
		lb->len += part;
		rc = cb(arg, lb->buf, lb->len, index++);
		if (rc) {
			lb->refused_held = true;
			goto undo;
		}
		p = nl + 1;
	}
	while (p <= last) {
		nl = memchr(p, '\n', last + 1 - p);
		if ((size_t)(nl - p) + 1 > lb->max) {
			rc = -EFBIG;
			goto undo;
		}
		rc = cb(arg, p, nl - p, index++);
		if (rc)
			goto undo;
		p = nl + 1;
	}
	if (tail + 1 > lb->max) {
		rc = -EFBIG;
		goto undo;
	}
	lb->tail = last + 1;
	lb->tail_len = tail;
	lb->next_len = tail;
	return 0;
undo:
	linebuf_rollback(lb);
	return rc;
}

void linebuf_commit(struct linebuf *lb)
{
	if (lb->more) {
		/* no newline: the held line grows (space reserved in feed) */
		memcpy(lb->buf + lb->len, lb->more, lb->more_len);
		lb->len += lb->more_len;
	} else if (lb->tail) {
		if (lb->tail_len)
			memmove(lb->buf, lb->tail, lb->tail_len);
		lb->len = lb->tail_len;
		shrink(lb);
	}
	lb->more = lb->tail = NULL;
}

void linebuf_rollback(struct linebuf *lb)
{
	lb->len = lb->next_len = lb->saved_len;
	lb->more = lb->tail = NULL;
	shrink(lb);	/* feed grew the buffer for what is not held after all */
}

void linebuf_clear(struct linebuf *lb)
{
	lb->len = lb->next_len = 0;
	shrink(lb);
}
