/*
 * linebuf.c - line reassembly with tentative commit.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "linebuf.h"

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
	size_t cap = lb->cap ? lb->cap : 256;
	char *p;

	if (need <= lb->cap)
		return 0;
	while (cap < need)
		cap *= 2;
	p = realloc(lb->buf, cap);
	if (!p)
		return -ENOMEM;
	lb->buf = p;
	lb->cap = cap;
	return 0;
}

int linebuf_feed(struct linebuf *lb, const char *data, size_t n,
		 linebuf_line_cb cb, void *arg)
{
	const char *p = data, *end = data + n, *nl, *last;
	size_t index = 0, need;
	int rc;

	lb->saved_len = lb->len;
	lb->tail = NULL;
	lb->tail_len = 0;
	lb->more = NULL;
	lb->more_len = 0;

	if (!n)
		return 0;	/* a write of nothing: commit and rollback have nothing to do */
	last = memrchr(data, '\n', n);
	if (!last) {
		if (lb->len + n + 1 > lb->max)
			return -EFBIG;
		rc = reserve(lb, lb->len + n);
		if (rc)
			return rc;
		lb->more = data;
		lb->more_len = n;
		return 0;
	}
	/* reserve now, so that commit cannot fail and borrowed lines stay put */
	if ((size_t)(end - last - 1) + 1 > lb->max)
		return -EFBIG;
	nl = memchr(p, '\n', n);
	need = end - last - 1;
	if (lb->len && lb->len + (nl - p) > need)
		need = lb->len + (nl - p);
	rc = reserve(lb, need);
	if (rc)
		return rc;

	if (lb->len) {
		size_t part = nl - p;

		if (lb->len + part + 1 > lb->max)
			return -EFBIG;
		memcpy(lb->buf + lb->len, p, part);
		lb->len += part;
		rc = cb(arg, lb->buf, lb->len, index++);
		if (rc)
			goto undo;
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
	lb->tail = last + 1;
	lb->tail_len = end - last - 1;
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
	}
	lb->more = lb->tail = NULL;
}

void linebuf_rollback(struct linebuf *lb)
{
	lb->len = lb->saved_len;
	lb->more = lb->tail = NULL;
}
