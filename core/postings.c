/*
 * postings.c - the packed index's posting blocks (postings.h: the format
 * and the cost of each operation).
 */
#include <errno.h>
#include <string.h>

#include "postings.h"

/* ---- varints ---- */

static size_t put_uv(unsigned char *p, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		p[n++] = (unsigned char)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (unsigned char)v;
	return n;
}

/* A varint at *@p (before @end) into *@v, *@p moved past it: 0, or -EUCLEAN. */
static int get_uv(const unsigned char **p, const unsigned char *end, uint64_t *v)
{
	uint64_t r = 0;

	for (unsigned shift = 0; *p < end && shift < 64; shift += 7) {
		unsigned char b = *(*p)++;

		/* the 10th byte holds bit 63 only */
		if (shift == 63 && b > 1)
			return -EUCLEAN;
		r |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			/* the shortest form only: one list, one encoding */
			if (shift && !b)
				return -EUCLEAN;
			*v = r;
			return 0;
		}
	}
	return -EUCLEAN;
}

static uint64_t zig(uint64_t d)
{
	return (d << 1) ^ (uint64_t)-(int64_t)(d >> 63);
}

static uint64_t unzig(uint64_t z)
{
	return (z >> 1) ^ (uint64_t)-(int64_t)(z & 1);
}

/* ---- header ---- */

static size_t put_hdr(unsigned char *p, const struct post_hdr *h)
{
	size_t n = 0;

	n += put_uv(p + n, h->count);
	n += put_uv(p + n, h->bytes);
	n += put_uv(p + n, h->first_gseq);
	n += put_uv(p + n, h->last_gseq - h->first_gseq);
	n += put_uv(p + n, h->last_uid);
	n += put_uv(p + n, h->last_end);
	return n;
}

size_t post_init(unsigned char *out)
{
	return put_hdr(out, &(struct post_hdr){ 0 });
}

int post_header(const unsigned char *blk, size_t len, struct post_hdr *h)
{
	const unsigned char *p = blk, *end = blk + len;
	uint64_t count, span;

	if (get_uv(&p, end, &count) || count > POST_BLOCK_EVENTS ||
	    get_uv(&p, end, &h->bytes) || get_uv(&p, end, &h->first_gseq) ||
	    get_uv(&p, end, &span) || span > UINT64_MAX - h->first_gseq ||
	    get_uv(&p, end, &h->last_uid) || get_uv(&p, end, &h->last_end))
		return -EUCLEAN;
	h->count = (uint32_t)count;
	h->last_gseq = h->first_gseq + span;
	h->size = (size_t)(p - blk);
	if (!count && (h->bytes || span || h->first_gseq || h->last_uid || h->last_end))
		return -EUCLEAN;
	return 0;
}

/*
 * An event the applier can make: a gseq and a task (both from 1), a line
 * (a newline at least), its end within 2^64.
 */
static bool post_ev_ok(const struct post_ev *ev)
{
	return ev->gseq && ev->uid && ev->len && ev->off <= UINT64_MAX - ev->len;
}

/* The entry @ev after @prev (the first: prev holds first_gseq and zeros). */
static size_t put_entry(unsigned char *p, const struct post_ev *prev, const struct post_ev *ev)
{
	uint64_t prev_end = prev->off + prev->len;
	size_t n = 0;

	n += put_uv(p + n, ev->gseq - prev->gseq);
	n += put_uv(p + n, zig(ev->uid - prev->uid));
	n += put_uv(p + n, ev->uid == prev->uid ? zig(ev->off - prev_end) : ev->off);
	n += put_uv(p + n, ev->len);
	return n;
}

long post_append(const unsigned char *blk, size_t len, const struct post_ev *ev,
		 unsigned char *out)
{
	unsigned char hdr[POST_HDR_MAX], ent[POST_ENTRY_MAX];
	struct post_hdr h, nh;
	struct post_ev prev;
	size_t hn, en, body;
	int rc = post_header(blk, len, &h);

	if (rc)
		return rc;
	if (!post_ev_ok(ev) || (h.count && ev->gseq <= h.last_gseq))
		return -EINVAL;
	if (h.count >= POST_BLOCK_EVENTS)
		return -ENOSPC;
	if (h.count)
		prev = (struct post_ev){ h.last_gseq, h.last_uid, h.last_end, 0 };
	else
		prev = (struct post_ev){ ev->gseq, 0, 0, 0 };
	nh = (struct post_hdr){
		.count = h.count + 1,
		.bytes = h.bytes + ev->len,
		.first_gseq = h.count ? h.first_gseq : ev->gseq,
		.last_gseq = ev->gseq,
		.last_uid = ev->uid,
		.last_end = ev->off + ev->len,
	};
	hn = put_hdr(hdr, &nh);
	en = put_entry(ent, &prev, ev);
	body = len - h.size;
	if (body > POST_BLOCK_MAX - hn - en)
		return -EUCLEAN;	/* longer than any block this code writes */
	if (hn + body + en > POST_BLOCK_BYTES)
		return -ENOSPC;		/* full: one LMDB node holds it */
	memmove(out + hn, blk + h.size, body);
	memcpy(out, hdr, hn);
	memcpy(out + hn + body, ent, en);
	return (long)(hn + body + en);
}

/* ---- walking ---- */

int post_iter_init(struct post_iter *it, const unsigned char *blk, size_t len)
{
	struct post_hdr h;
	int rc = post_header(blk, len, &h);

	if (rc)
		return rc;
	*it = (struct post_iter){
		.p = blk + h.size,
		.end = blk + len,
		.left = h.count,
		.prev = { h.first_gseq, 0, 0, 0 },
		.hdr = h,
	};
	return 0;
}

/* A walk that met damage stays failed. */
static int iter_fail(struct post_iter *it)
{
	it->failed = true;
	it->left = 0;
	return -EUCLEAN;
}

int post_next(struct post_iter *it, struct post_ev *ev)
{
	uint64_t dg, du, doff, len, prev_end = it->prev.off + it->prev.len;
	struct post_ev e;

	if (it->failed)
		return -EUCLEAN;
	if (!it->left) {
		/* the end: no byte more, and the header says what the entries gave */
		const struct post_hdr *h = &it->hdr;

		if (it->p != it->end || it->bytes != h->bytes ||
		    (h->count && (it->prev.gseq != h->last_gseq || it->prev.uid != h->last_uid ||
				  it->prev.off + it->prev.len != h->last_end)))
			return iter_fail(it);
		return 0;
	}
	if (get_uv(&it->p, it->end, &dg) || get_uv(&it->p, it->end, &du) ||
	    get_uv(&it->p, it->end, &doff) || get_uv(&it->p, it->end, &len) ||
	    len > UINT32_MAX)
		return iter_fail(it);
	/* gseqs rise: the first is first_gseq itself, each later one after the last */
	if (it->started ? !dg || dg > UINT64_MAX - it->prev.gseq : dg != 0)
		return iter_fail(it);
	e.gseq = it->prev.gseq + dg;
	e.uid = it->prev.uid + unzig(du);
	e.off = e.uid == it->prev.uid ? prev_end + unzig(doff) : doff;
	e.len = (uint32_t)len;
	if (!post_ev_ok(&e))
		return iter_fail(it);
	it->prev = e;
	it->bytes += e.len;
	it->started = true;
	it->left--;
	*ev = e;
	return 1;
}

/*
 * Walk the whole of @blk, checking it (post_next checks the end against
 * the header), and call @cb on each entry with its index and the bytes
 * before it until @cb returns non-zero: that value, once the rest of the
 * block has checked out too, or 0, or -EUCLEAN.  A damaged block is
 * -EUCLEAN whatever @cb found in it.
 */
static int walk(const unsigned char *blk, size_t len,
		int (*cb)(void *arg, uint32_t i, uint64_t before, const struct post_ev *ev),
		void *arg)
{
	struct post_iter it;
	struct post_ev ev;
	uint64_t before = 0;
	uint32_t i = 0;
	int found = 0, rc = post_iter_init(&it, blk, len);

	while (!rc && (rc = post_next(&it, &ev)) > 0) {
		rc = 0;
		if (cb && !found)
			found = cb(arg, i, before, &ev);
		before += ev.len;
		i++;
	}
	return rc ? rc : found;
}

int post_check(const unsigned char *blk, size_t len)
{
	return walk(blk, len, NULL, NULL);
}

struct find_byte {
	uint64_t k;
	uint32_t *i;
	uint64_t *skip;
};

static int find_byte_cb(void *arg, uint32_t i, uint64_t before, const struct post_ev *ev)
{
	struct find_byte *f = arg;

	if (f->k >= before + ev->len)
		return 0;
	*f->i = i;
	*f->skip = f->k - before;
	return 1;
}

int post_find_byte(const unsigned char *blk, size_t len, uint64_t k, uint32_t *i,
		   uint64_t *skip)
{
	struct find_byte f = { k, i, skip };
	int rc = walk(blk, len, find_byte_cb, &f);

	return rc == 1 ? 0 : rc ? rc : -ENXIO;
}

struct find_gseq {
	uint64_t g;
	uint32_t *i;
	uint64_t *before;
};

static int find_gseq_cb(void *arg, uint32_t i, uint64_t before, const struct post_ev *ev)
{
	struct find_gseq *f = arg;

	if (ev->gseq < f->g)
		return 0;
	*f->i = i;
	*f->before = before;
	return 1;
}

int post_find_gseq(const unsigned char *blk, size_t len, uint64_t g, uint32_t *i,
		   uint64_t *before)
{
	struct find_gseq f = { g, i, before };
	struct post_hdr h;
	int rc = walk(blk, len, find_gseq_cb, &f);

	if (rc == 1)
		return 0;
	if (rc)
		return rc;
	if (post_header(blk, len, &h))
		return -EUCLEAN;	/* cannot be: walk decoded it */
	*i = h.count;
	*before = h.bytes;
	return 0;
}

long post_filter(const unsigned char *blk, size_t len,
		 bool (*drop)(void *arg, const struct post_ev *ev), void *arg,
		 unsigned char *out)
{
	struct post_ev kept[POST_BLOCK_EVENTS], prev;
	struct post_hdr h = { 0 };
	struct post_iter it;
	struct post_ev ev;
	size_t n = 0, at;
	int rc = post_iter_init(&it, blk, len);	/* post_next checks it all */

	while (!rc && (rc = post_next(&it, &ev)) > 0) {
		rc = 0;
		if (n == POST_BLOCK_EVENTS)
			return -EUCLEAN;	/* cannot be: post_header bounds the count */
		if (!drop(arg, &ev))
			kept[n++] = ev;
	}
	if (rc)
		return rc;
	if (!n)
		return (long)post_init(out);
	h.count = (uint32_t)n;
	h.first_gseq = kept[0].gseq;
	h.last_gseq = kept[n - 1].gseq;
	h.last_uid = kept[n - 1].uid;
	h.last_end = kept[n - 1].off + kept[n - 1].len;
	for (size_t k = 0; k < n; k++)
		h.bytes += kept[k].len;
	at = put_hdr(out, &h);
	prev = (struct post_ev){ h.first_gseq, 0, 0, 0 };
	for (size_t k = 0; k < n; k++) {
		at += put_entry(out + at, &prev, &kept[k]);
		prev = kept[k];
	}
	return (long)at;
}
