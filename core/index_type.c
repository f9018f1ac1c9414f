/*
 * index_type.c - the type index: type records and ids, each type's
 * Fenwick tree over its event lengths, adding an event to every database
 * that holds it, and the views (a prefix of types, of all tasks or one):
 * their size, the event holding a byte offset, their events in gseq
 * order, their tasks.  The costs are in the schema comment (index.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>

#include "bytes.h"
#include "grow.h"
#include "index_i.h"

/* ---- types ---- */

static struct type_ent *type_cached(struct index_txn *t, const char *name, size_t len)
{
	for (size_t i = 0; i < t->ntypes; i++)
		if (t->types[i].len == len && !memcmp(t->types[i].name, name, len))
			return &t->types[i];
	return NULL;
}

/* The type record of @name in this write txn, created if @create. */
int ix_type_get(struct index_txn *t, const char *name, size_t len, bool create,
		    struct type_ent **out)
{
	struct type_ent *e = type_cached(t, name, len);
	int rc;

	if (e) {
		*out = e;
		return 0;
	}
	if (GROW(t->types, t->cap, t->ntypes + 1))
		return -ENOMEM;
	e = &t->types[t->ntypes];
	memset(e, 0, sizeof(*e));
	rc = ix_get_val(t, t->ix->types, name, len, &e->rec, sizeof(e->rec));
	if (rc == -ENOENT && create) {
		unsigned char k[4];

		if (!t->next_tid) {
			rc = ix_get_val(t, t->ix->meta, "next_tid", 8, &t->next_tid,
				     sizeof(t->next_tid));
			if (rc == -ENOENT)
				t->next_tid = 1;
			else if (rc)
				return rc;
		}
		e->rec.tid = t->next_tid++;
		put_be32(k, e->rec.tid);
		rc = ix_put_val(t, t->ix->tids, k, 4, name, len);
		e->dirty = true;
	}
	if (rc)
		return rc;
	e->len = len;
	memcpy(e->name, name, len);
	t->ntypes++;
	*out = e;
	return 0;
}

int ix_type_name(struct index_txn *t, uint32_t tid, char *name, size_t *len)
{
	unsigned char k[4];
	MDB_val key = { 4, k }, val;
	int rc;

	put_be32(k, tid);
	rc = mdb_get(t->txn, t->ix->tids, &key, &val);
	if (rc)
		return ix_err(rc);
	*len = val.mv_size > 255 ? 255 : val.mv_size;
	memcpy(name, val.mv_data, *len);
	return 0;
}

int index_type_list(struct index_txn *t,
		    int (*cb)(void *arg, const char *name, size_t len, uint64_t events,
			      uint64_t bytes),
		    void *arg)
{
	struct ix_scan s;
	int rc = 0;

	ix_scan_open(&s, t->txn, t->ix->types, NULL, 0, 0);
	while (!rc && ix_scan_next(&s)) {
		struct type_rec r;

		memcpy(&r, s.val.mv_data, sizeof(r));
		if (r.live_count)
			rc = cb(arg, s.key.mv_data, s.key.mv_size, r.live_count, r.live_bytes);
	}
	return ix_scan_end(&s, rc);
}

static int count_cb(void *arg, const char *name, size_t len, uint64_t ev, uint64_t b)
{
	(*(uint64_t *)arg)++;
	return 0;
}

uint64_t index_type_count(struct index_txn *t)
{
	uint64_t n = 0;

	index_type_list(t, count_cb, &n);
	return n;
}

/* ---- Fenwick trees (1-based node i covers ordinals i - ix_lowbit(i) .. i - 1) ---- */

static void fen_key(unsigned char k[12], uint32_t tid, uint64_t i)
{
	put_be32(k, tid);
	put_be64(k + 4, i);
}

int ix_fen_get(struct index_txn *t, uint32_t tid, uint64_t i, struct fen_val *v)
{
	unsigned char k[12];

	fen_key(k, tid, i);
	return ix_get_val(t, t->ix->fen, k, 12, v, sizeof(*v));
}

/* Sum of the lengths of ordinals 0 .. k - 1. */
static int fen_prefix(struct index_txn *t, uint32_t tid, uint64_t k, uint64_t *sum)
{
	struct fen_val v;
	int rc;

	*sum = 0;
	for (; k > 0; k -= ix_lowbit(k)) {
		rc = ix_fen_get(t, tid, k, &v);
		if (rc)
			return rc;
		*sum += v.sum;
	}
	return 0;
}

/* Add @delta to ordinal @ord of a tree of @n elements. */
int ix_fen_add(struct index_txn *t, uint32_t tid, uint64_t ord, uint64_t n, int64_t delta)
{
	unsigned char k[12];
	struct fen_val v;
	int rc;

	for (uint64_t i = ord + 1; i <= n; i += ix_lowbit(i)) {
		rc = ix_fen_get(t, tid, i, &v);
		if (rc)
			return rc;
		v.sum += delta;
		fen_key(k, tid, i);
		rc = ix_put_val(t, t->ix->fen, k, 12, &v, sizeof(v));
		if (rc)
			return rc;
	}
	return 0;
}

/* Append an element of @len bytes at ordinal r->next_ord. */
static int fen_append(struct index_txn *t, struct type_rec *r, uint32_t len, uint64_t gseq)
{
	uint64_t i = r->next_ord + 1, below;
	unsigned char k[12];
	struct fen_val v;
	int rc;

	/* node i = len + sum of ordinals i - ix_lowbit(i) .. i - 2 */
	rc = fen_prefix(t, r->tid, i - ix_lowbit(i), &below);
	if (rc)
		return rc;
	v.sum = len + r->fen_total - below;
	v.gseq = gseq;
	fen_key(k, r->tid, i);
	return ix_put_val(t, t->ix->fen, k, 12, &v, sizeof(v));
}

/* The ordinal holding byte @x of a tree of @n elements, and @x's place in it. */
static int fen_find(struct index_txn *t, uint32_t tid, uint64_t n, uint64_t x,
		    uint64_t *ord, uint64_t *skip)
{
	uint64_t pos = 0, step = 1;
	struct fen_val v;
	int rc;

	while (step <= n / 2)
		step *= 2;
	for (; step; step /= 2) {
		if (pos + step > n)
			continue;
		rc = ix_fen_get(t, tid, pos + step, &v);
		if (rc)
			return rc;
		if (v.sum <= x) {
			pos += step;
			x -= v.sum;
		}
	}
	if (pos >= n)
		return -ENXIO;
	*ord = pos;
	*skip = x;
	return 0;
}

/* ---- events ---- */

int index_add_event(struct index_txn *t, uint64_t uid, uint64_t gseq,
		    const char *type, size_t tlen, uint64_t off, uint32_t len)
{
	unsigned char k[20];
	struct type_ent *e;
	struct cnt_val cnt = { 0, 0, 0 };
	struct tgs_val tv;
	struct kty_val kv;
	uint32_t tid;
	int rc;

	rc = ix_type_get(t, type, tlen, true, &e);
	if (rc)
		return rc;
	tid = e->rec.tid;
	rc = fen_append(t, &e->rec, len, gseq);
	if (rc)
		return rc;

	tv = (struct tgs_val){ .ord = e->rec.next_ord, .uid = uid, .off = off, .len = len };
	put_be32(k, tid);
	put_be64(k + 4, gseq);
	rc = ix_put_val(t, t->ix->tgs, k, 12, &tv, sizeof(tv));
	if (rc)
		return rc;

	ix_kt_key(k, uid, tid);
	rc = ix_get_cnt(t, t->ix->kt, k, &cnt);
	if (rc && rc != -ENOENT)
		return rc;
	kv = (struct kty_val){ .cum = cnt.base + cnt.bytes, .off = off, .ord = e->rec.next_ord,
			       .len = len };
	cnt.count++;
	cnt.bytes += len;
	rc = ix_put_val(t, t->ix->kt, k, 12, &cnt, sizeof(cnt));
	if (rc)
		return rc;
	ix_tt_key(k, tid, uid);
	rc = ix_put_val(t, t->ix->tt, k, 12, &cnt, sizeof(cnt));
	if (rc)
		return rc;
	ix_kty_key(k, uid, tid, gseq);
	rc = ix_put_val(t, t->ix->kty, k, 20, &kv, sizeof(kv));
	if (rc)
		return rc;

	e->rec.next_ord++;
	e->rec.fen_total += len;
	e->rec.live_count++;
	e->rec.live_bytes += len;
	e->dirty = true;
	return 0;
}

/* ---- views ---- */

struct index_view {
	struct index_txn *t;
	uint64_t uid;		/* 0: all tasks */
	size_t n;
	uint32_t *tids;
	uint64_t *nord;		/* per type: Fenwick size */
	uint64_t *dead;		/* tasks deleted, not yet purged */
	size_t ndead;
	uint64_t size;
	uint64_t gseq_end;
};

bool index_prefix_exists(struct index_txn *t, const char *prefix, size_t len)
{
	struct ix_scan s;
	bool found = false;

	ix_scan_open(&s, t->txn, t->ix->types, prefix, len, len);
	while (!found && ix_scan_next(&s)) {
		struct type_rec r;

		memcpy(&r, s.val.mv_data, sizeof(r));
		found = r.live_count != 0;
	}
	ix_scan_close(&s, 0);	/* an error is "no" */
	return found;
}

void index_view_free(struct index_view *v)
{
	if (!v)
		return;
	free(v->tids);
	free(v->nord);
	free(v->dead);
	free(v);
}

static int load_dead(struct index_view *v)
{
	struct ix_scan s;
	size_t cap = 0;
	int rc = 0;

	ix_scan_open(&s, v->t->txn, v->t->ix->purge, NULL, 0, 0);
	while (!rc && ix_scan_next(&s)) {
		if (GROW(v->dead, cap, v->ndead + 1)) {
			rc = -ENOMEM;
			break;
		}
		v->dead[v->ndead++] = get_be64(s.key.mv_data);
	}
	return ix_scan_end(&s, rc);
}

static bool is_dead(const struct index_view *v, uint64_t uid)
{
	for (size_t i = 0; i < v->ndead; i++)
		if (v->dead[i] == uid)
			return true;
	return false;
}

int index_view_open(struct index_txn *t, const char *prefix, size_t len, uint64_t uid,
		    struct index_view **out)
{
	struct index_view *v;
	struct index_meta m;
	struct ix_scan s;
	size_t cap = 0, nord_cap = 0;
	int rc, bad = 0;

	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->t = t;
	v->uid = uid;
	rc = index_get_meta(t, &m);
	if (rc)
		goto fail;
	v->gseq_end = m.next_gseq;
	if (uid) {
		struct index_task task;

		rc = index_task_by_uid(t, uid, &task);
		if (!rc && task.state != TASK_LIVE)
			rc = -ENOENT;
		if (rc)
			goto fail;
	} else {
		rc = load_dead(v);
		if (rc)
			goto fail;
	}
	/* the empty prefix (every type: a task's events in log order) from the first */
	ix_scan_open(&s, t->txn, t->ix->types, len ? prefix : NULL, len, len);
	while (ix_scan_next(&s)) {
		const MDB_val key = s.key, val = s.val;
		struct type_rec r;
		uint64_t bytes = 0;
		char name[256];
		size_t nlen;

		if (val.mv_size != sizeof(r)) {
			bad = -EUCLEAN;	/* damage */
			break;
		}
		memcpy(&r, val.mv_data, sizeof(r));
		if (!r.live_count)
			continue;
		/*
		 * The type's id names it back: a name changed by damage (one bit
		 * turns "a.y.z" into "a>y.z") would serve its events under a
		 * prefix they do not have.
		 */
		bad = ix_type_name(t, r.tid, name, &nlen);
		if (bad == -ENOENT || (!bad && (nlen != key.mv_size ||
						memcmp(name, key.mv_data, nlen))))
			bad = -EUCLEAN;
		if (bad)
			break;
		if (uid) {
			struct cnt_val cnt;
			unsigned char k[12];

			ix_kt_key(k, uid, r.tid);
			if (ix_get_cnt(t, t->ix->kt, k, &cnt) || !cnt.count)
				continue;
			bytes = cnt.bytes;
		} else {
			bytes = r.live_bytes;
		}
		if (GROW(v->tids, cap, v->n + 1) || GROW(v->nord, nord_cap, v->n + 1)) {
			bad = -ENOMEM;
			break;
		}
		v->tids[v->n] = r.tid;
		v->nord[v->n] = r.next_ord;
		v->n++;
		v->size += bytes;
	}
	rc = ix_scan_end(&s, bad);
	if (rc)
		goto fail;
	if (!v->n) {
		rc = -ENOENT;
		goto fail;
	}
	*out = v;
	return 0;
fail:
	index_view_free(v);
	return rc;
}

uint64_t index_view_size(struct index_view *v)
{
	return v->size;
}

/* The base (head bytes dropped, still counted by kty's cum) of task @uid's type @tid. */
static int cum_base(struct index_txn *t, uint64_t uid, uint32_t tid, uint64_t *base)
{
	unsigned char k[12];
	struct cnt_val cnt;
	int rc;

	ix_kt_key(k, uid, tid);
	rc = ix_get_cnt(t, t->ix->kt, k, &cnt);
	*base = rc ? 0 : cnt.base;
	return rc == -ENOENT ? 0 : rc;
}

/* Bytes of task @uid's type-@tid events with gseq < @g (what kty still holds). */
static int cum_before(struct index_txn *t, MDB_cursor *c, uint64_t uid, uint32_t tid,
		      uint64_t g, uint64_t *out)
{
	unsigned char k[20];
	MDB_val key = { 20, k }, val;
	struct kty_val kv;
	uint64_t raw, base;
	int rc;

	*out = 0;
	ix_kty_key(k, uid, tid, g);
	rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE);
	if (rc == 0 && get_be64(key.mv_data) == uid && get_be32((unsigned char *)key.mv_data + 8) == tid) {
		memcpy(&kv, val.mv_data, sizeof(kv));
		raw = kv.cum;
	} else {
		rc = ix_seek_back(c, rc, &key, &val);
		if (rc == MDB_NOTFOUND)
			return 0;
		if (rc)
			return ix_err(rc);
		if (get_be64(key.mv_data) != uid || get_be32((unsigned char *)key.mv_data + 8) != tid)
			return 0;
		memcpy(&kv, val.mv_data, sizeof(kv));
		raw = kv.cum + kv.len;
	}
	rc = cum_base(t, uid, tid, &base);
	if (rc)
		return rc;
	*out = raw - base;
	return 0;
}

/* Bytes of the view's events with gseq < @g. */
static int bytes_before(struct index_view *v, MDB_cursor *tgs, MDB_cursor *kty,
			uint64_t g, uint64_t *out)
{
	uint64_t total = 0, part;
	int rc;

	for (size_t i = 0; i < v->n; i++) {
		uint32_t tid = v->tids[i];

		if (v->uid) {
			rc = cum_before(v->t, kty, v->uid, tid, g, &part);
			if (rc)
				return rc;
			total += part;
			continue;
		}
		{
			unsigned char k[12];
			MDB_val key = { 12, k }, val;
			uint64_t ord = v->nord[i];

			put_be32(k, tid);
			put_be64(k + 4, g);
			rc = mdb_cursor_get(tgs, &key, &val, MDB_SET_RANGE);
			if (rc == 0 && get_be32(key.mv_data) == tid) {
				struct tgs_val tv;

				memcpy(&tv, val.mv_data, sizeof(tv));
				ord = tv.ord;
			} else if (rc && rc != MDB_NOTFOUND) {
				return ix_err(rc);
			}
			rc = fen_prefix(v->t, tid, ord, &part);
			if (rc)
				return rc;
			total += part;
		}
		for (size_t d = 0; d < v->ndead; d++) {
			rc = cum_before(v->t, kty, v->dead[d], tid, g, &part);
			if (rc)
				return rc;
			total -= part;
		}
	}
	*out = total;
	return 0;
}

int index_view_seek(struct index_view *v, uint64_t off, uint64_t *gseq, uint64_t *skip)
{
	MDB_cursor *tgs = NULL, *kty = NULL;
	uint64_t lo = 0, hi = v->gseq_end, blo = 0;
	int rc;

	if (off >= v->size)
		return -ENXIO;
	if (!v->uid && v->n == 1 && !v->ndead) {
		struct fen_val fv;
		uint64_t ord;

		rc = fen_find(v->t, v->tids[0], v->nord[0], off, &ord, skip);
		if (!rc)
			rc = ix_fen_get(v->t, v->tids[0], ord + 1, &fv);
		if (!rc)
			*gseq = fv.gseq;
		return rc;
	}
	rc = ix_err(mdb_cursor_open(v->t->txn, v->t->ix->tgs, &tgs));
	if (!rc)
		rc = ix_err(mdb_cursor_open(v->t->txn, v->t->ix->kty, &kty));
	/* invariant: bytes_before(lo) = blo <= off < bytes_before(hi) */
	while (!rc && hi - lo > 1) {
		uint64_t mid = lo + (hi - lo) / 2, b = 0;

		rc = bytes_before(v, tgs, kty, mid, &b);
		if (rc)
			break;
		if (b <= off) {
			lo = mid;
			blo = b;
		} else {
			hi = mid;
		}
	}
	if (tgs)
		mdb_cursor_close(tgs);
	if (kty)
		mdb_cursor_close(kty);
	if (rc)
		return rc;
	*gseq = lo;
	*skip = off - blo;
	return 0;
}

/* One source of the merge: the entries of one type, by a scan. */
struct merge_src {
	struct ix_scan s;
	unsigned char from[20];	/* the scan's start key */
	bool live;		/* ev holds its next entry; false at its end */
	struct index_event ev;
};

/* index_view_iter's sources: the next event of the type (tgs rows, or kty rows of v->uid). */
static int src_next(struct index_view *v, struct merge_src *s)
{
	const unsigned char *k;

	s->live = ix_scan_next(&s->s);
	if (!s->live)
		return ix_scan_err(&s->s);
	k = s->s.key.mv_data;
	if (v->uid) {
		struct kty_val kv;

		memcpy(&kv, s->s.val.mv_data, sizeof(kv));
		s->ev = (struct index_event){ get_be64(k + 12), v->uid, kv.off, kv.len };
	} else {
		struct tgs_val tv;

		memcpy(&tv, s->s.val.mv_data, sizeof(tv));
		s->ev = (struct index_event){ get_be64(k + 4), tv.uid, tv.off, tv.len };
	}
	return 0;
}

/* index_view_tasks' sources: the next task with events of the type (tt rows), in ev.uid. */
static int src_next_task(struct merge_src *s)
{
	s->live = ix_scan_next(&s->s);
	if (!s->live)
		return ix_scan_err(&s->s);
	s->ev.uid = get_be64((unsigned char *)s->s.key.mv_data + 4);
	return 0;
}

/*
 * The merge of the view's lists: each source is one type's list (from gseq
 * @from on), and the next event is the live source's with the lowest gseq.
 * @last is the source the previous event came from, stepped on only when
 * the next one is asked for (its entry is still the caller's until then).
 */
struct index_view_cursor {
	struct index_view *v;
	struct merge_src *src;
	struct merge_src *last;
};

int index_view_cursor_open(struct index_view *v, uint64_t from, struct index_view_cursor **out)
{
	struct index_view_cursor *c;
	struct merge_src *src;
	MDB_dbi dbi = v->uid ? v->t->ix->kty : v->t->ix->tgs;
	int rc = 0;

	c = calloc(1, sizeof(*c));
	src = calloc(v->n, sizeof(*src));
	if (!c || !src) {
		free(c);
		free(src);
		return -ENOMEM;
	}
	c->v = v;
	c->src = src;
	for (size_t i = 0; i < v->n && !rc; i++) {
		unsigned char *k = src[i].from;

		/* from gseq @from on, within the type (and the task) */
		if (v->uid) {
			ix_kty_key(k, v->uid, v->tids[i], from);
			ix_scan_open(&src[i].s, v->t->txn, dbi, k, 20, 12);
		} else {
			put_be32(k, v->tids[i]);
			put_be64(k + 4, from);
			ix_scan_open(&src[i].s, v->t->txn, dbi, k, 12, 4);
		}
		rc = src_next(v, &src[i]);
	}
	if (rc) {
		index_view_cursor_close(c);
		return rc;
	}
	*out = c;
	return 0;
}

int index_view_next(struct index_view_cursor *c, struct index_event *ev)
{
	struct index_view *v = c->v;

	for (;;) {
		struct merge_src *best = NULL;

		if (c->last) {
			int rc = src_next(v, c->last);

			c->last = NULL;
			if (rc)
				return rc;
		}
		for (size_t i = 0; i < v->n; i++)
			if (c->src[i].live && (!best || c->src[i].ev.gseq < best->ev.gseq))
				best = &c->src[i];
		if (!best)
			return 0;
		c->last = best;
		if (v->uid || !is_dead(v, best->ev.uid)) {
			*ev = best->ev;
			return 1;
		}
	}
}

void index_view_cursor_close(struct index_view_cursor *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->v->n; i++)
		ix_scan_close(&c->src[i].s, 0);
	free(c->src);
	free(c);
}

int index_view_iter(struct index_view *v, uint64_t from,
		    int (*cb)(void *arg, const struct index_event *ev), void *arg)
{
	struct index_view_cursor *c;
	struct index_event ev;
	int rc;

	rc = index_view_cursor_open(v, from, &c);
	if (rc)
		return rc;
	while ((rc = index_view_next(c, &ev)) > 0) {
		rc = cb(arg, &ev);
		if (rc)
			break;
	}
	index_view_cursor_close(c);
	return rc;
}

int index_view_tasks(struct index_txn *t, const char *prefix, size_t len, uint64_t after_uid,
		     int (*cb)(void *arg, uint64_t uid), void *arg)
{
	struct index_view *v;
	struct merge_src *src;
	uint64_t last = after_uid;
	int rc;

	rc = index_view_open(t, prefix, len, 0, &v);
	if (rc)
		return rc;
	src = calloc(v->n, sizeof(*src));
	if (!src) {
		index_view_free(v);
		return -ENOMEM;
	}
	for (size_t i = 0; i < v->n && !rc; i++) {
		ix_tt_key(src[i].from, v->tids[i], after_uid + 1);
		ix_scan_open(&src[i].s, t->txn, t->ix->tt, src[i].from, 12, 4);
		rc = src_next_task(&src[i]);
	}
	while (!rc) {
		struct merge_src *best = NULL;

		for (size_t i = 0; i < v->n; i++)
			if (src[i].live && (!best || src[i].ev.uid < best->ev.uid))
				best = &src[i];
		if (!best)
			break;
		if (best->ev.uid != last && !is_dead(v, best->ev.uid)) {
			last = best->ev.uid;
			rc = cb(arg, last);
			if (rc)
				break;
		}
		rc = src_next_task(best);
	}
	for (size_t i = 0; i < v->n; i++)
		ix_scan_close(&src[i].s, 0);
	free(src);
	index_view_free(v);
	return rc;
}
