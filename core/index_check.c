/*
 * index_check.c - checking and rebuilding a type, for fsck and reindex:
 * every type's name and the type field they start from, a type's rows in
 * each database that holds them checked against each other and its
 * counters (index_type_check), and all of them removed for a rebuild
 * (index_type_drop).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>

#include "bytes.h"
#include "index_i.h"

int index_type_names(struct index_txn *t, int (*cb)(void *arg, const char *name, size_t len),
		     void *arg)
{
	struct ix_scan s;
	int rc = 0;

	ix_scan_open(&s, t->txn, t->ix->types, NULL, 0, 0);
	while (!rc && ix_scan_next(&s))
		rc = cb(arg, s.key.mv_data, s.key.mv_size);
	return ix_scan_end(&s, rc);
}

int index_get_type_field(struct index_txn *t, char *buf, size_t n)
{
	MDB_val key = { 10, "type_field" }, val;
	int rc = mdb_get(t->txn, t->ix->meta, &key, &val);

	if (rc)
		return ix_err(rc);
	if (val.mv_size >= n)
		return -ENAMETOOLONG;
	memcpy(buf, val.mv_data, val.mv_size);
	buf[val.mv_size] = '\0';
	return 0;
}

struct check {
	struct index_txn *t;
	uint64_t *bad;
	char *why;
	size_t whylen;
};

static void fault(struct check *ck, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fault(struct check *ck, const char *fmt, ...)
{
	va_list ap;

	if (!(*ck->bad)++) {
		va_start(ap, fmt);
		vsnprintf(ck->why, ck->whylen, fmt, ap);
		va_end(ap);
	}
}

/* The state of task @uid (0 when there is no such task), cached for runs of one uid. */
static int task_state(struct index_txn *t, uint64_t uid, uint64_t *last_uid, int *last_state)
{
	struct index_task task;
	int rc;

	if (uid == *last_uid)
		return 0;
	rc = index_task_by_uid(t, uid, &task);
	if (rc && rc != -ENOENT)
		return rc;
	*last_uid = uid;
	*last_state = rc ? 0 : task.state;
	return 0;
}

/* kt/tt rows and the kty runs of type @tid: counts, and cum values without gaps. */
static int check_kty(struct check *ck, uint32_t tid, uint64_t *live_rows)
{
	struct index_txn *t = ck->t;
	struct ix_scan ts;
	unsigned char k[12];
	uint64_t last_uid = 0;
	int state = 0, rc = 0;

	*live_rows = 0;
	/* the type's tt rows, and of each the task+type's kty rows */
	ix_tt_key(k, tid, 0);
	ix_scan_open(&ts, t->txn, t->ix->tt, k, 12, 4);
	while (!rc && ix_scan_next(&ts)) {
		uint64_t uid = get_be64((unsigned char *)ts.key.mv_data + 4), n = 0, bytes = 0, cum;
		struct cnt_val tcnt, kcnt;
		unsigned char kk[20];
		struct ix_scan ks;

		memset(&tcnt, 0, sizeof(tcnt));
		memcpy(&tcnt, ts.val.mv_data,
		       ts.val.mv_size < sizeof(tcnt) ? ts.val.mv_size : sizeof(tcnt));
		ix_kt_key(kk, uid, tid);
		rc = ix_get_cnt(t, t->ix->kt, kk, &kcnt);
		if (rc == -ENOENT) {
			fault(ck, "task %" PRIu64 " has a tt row but no kt row", uid);
			kcnt = tcnt;
		} else if (rc) {
			break;
		} else if (memcmp(&kcnt, &tcnt, sizeof(kcnt))) {
			fault(ck, "task %" PRIu64 ": kt and tt rows differ", uid);
		}
		rc = task_state(t, uid, &last_uid, &state);
		if (rc)
			break;
		cum = kcnt.base;
		ix_kty_key(kk, uid, tid, 0);
		ix_scan_open(&ks, t->txn, t->ix->kty, kk, 20, 12);
		while (!rc && ix_scan_next(&ks)) {
			uint64_t gseq = get_be64((unsigned char *)ks.key.mv_data + 12);
			unsigned char gk[12];
			struct tgs_val tv;
			struct kty_val kv;

			memcpy(&kv, ks.val.mv_data, sizeof(kv));
			if (kv.cum != cum)
				fault(ck, "task %" PRIu64 " gseq %" PRIu64
				      ": cumulative bytes %" PRIu64 ", expected %" PRIu64,
				      uid, gseq, kv.cum, cum);
			cum = kv.cum + kv.len;
			n++;
			bytes += kv.len;
			put_be32(gk, tid);
			put_be64(gk + 4, gseq);
			rc = ix_get_val(t, t->ix->tgs, gk, 12, &tv, sizeof(tv));
			if (rc == -ENOENT) {
				fault(ck, "task %" PRIu64 " gseq %" PRIu64
				      ": kty row without a tgs row", uid, gseq);
				rc = 0;
			}
		}
		rc = ix_scan_end(&ks, rc);
		if (rc)
			break;
		if (state == TASK_LIVE) {
			*live_rows += n;
			if (n != kcnt.count || bytes != kcnt.bytes)
				fault(ck, "task %" PRIu64 " counts %" PRIu64 " events, %"
				      PRIu64 " bytes; its rows hold %" PRIu64 ", %" PRIu64,
				      uid, kcnt.count, kcnt.bytes, n, bytes);
		}
	}
	return ix_scan_end(&ts, rc);
}

int index_type_check(struct index_txn *t, const char *name, size_t len,
		     int (*cb)(void *arg, const struct index_entry *e), void *arg,
		     uint64_t *bad, char *why, size_t whylen)
{
	struct check ck = { .t = t, .bad = bad, .why = why, .whylen = whylen };
	struct type_rec r;
	uint64_t *tree = NULL, n, total = 0, live = 0, live_bytes = 0, prev_ord = 0;
	uint64_t last_uid = 0, kty_live;
	int state = 0, rc;
	bool first = true;
	struct ix_scan s;
	unsigned char k[12];

	*bad = 0;
	if (why && whylen)
		why[0] = '\0';
	rc = ix_get_val(t, t->ix->types, name, len, &r, sizeof(r));
	if (rc)
		return rc;
	n = r.next_ord;
	tree = calloc(n + 1, sizeof(*tree));
	if (!tree)
		return -ENOMEM;

	/* tgs: rows in gseq order, ordinals rising, each with its kty row */
	put_be32(k, r.tid);
	put_be64(k + 4, 0);
	ix_scan_open(&s, t->txn, t->ix->tgs, k, 12, 4);
	while (!rc && ix_scan_next(&s)) {
		struct index_entry e;
		struct tgs_val tv;
		struct kty_val kv;
		unsigned char kk[20];

		memcpy(&tv, s.val.mv_data, sizeof(tv));
		e.gseq = get_be64((unsigned char *)s.key.mv_data + 4);
		e.uid = tv.uid;
		e.off = tv.off;
		e.len = tv.len;
		if (tv.ord >= n || (!first && tv.ord <= prev_ord))
			fault(&ck, "gseq %" PRIu64 " has ordinal %" PRIu64
			      " (previous %" PRIu64 ", %" PRIu64 " allotted)",
			      e.gseq, tv.ord, prev_ord, n);
		else
			tree[tv.ord + 1] = tv.len;
		first = false;
		prev_ord = tv.ord;
		total += tv.len;
		rc = task_state(t, tv.uid, &last_uid, &state);
		if (rc)
			break;
		e.state = state;
		if (state == TASK_LIVE) {
			live++;
			live_bytes += tv.len;
		}
		ix_kty_key(kk, tv.uid, r.tid, e.gseq);
		rc = ix_get_val(t, t->ix->kty, kk, 20, &kv, sizeof(kv));
		if (rc == -ENOENT)
			fault(&ck, "gseq %" PRIu64 " (task %" PRIu64 ") has no kty row",
			      e.gseq, tv.uid);
		else if (rc)
			break;
		else if (kv.off != tv.off || kv.len != tv.len || kv.ord != tv.ord)
			fault(&ck, "gseq %" PRIu64 ": tgs and kty rows differ",
			      e.gseq);
		rc = cb ? cb(arg, &e) : 0;
	}
	rc = ix_scan_end(&s, rc);
	if (rc)
		goto out;
	if (total != r.fen_total || live != r.live_count || live_bytes != r.live_bytes)
		fault(&ck, "counters say %" PRIu64 " bytes in the tree, %" PRIu64
		      " live events of %" PRIu64 " bytes; the rows hold %" PRIu64 ", %" PRIu64
		      ", %" PRIu64, r.fen_total, r.live_count, r.live_bytes,
		      total, live, live_bytes);

	/* Fenwick nodes: built from the rows' lengths, node i covers i - ix_lowbit(i) .. i - 1 */
	for (uint64_t i = 1; i <= n; i++)
		if (i + ix_lowbit(i) <= n)
			tree[i + ix_lowbit(i)] += tree[i];
	for (uint64_t i = 1; i <= n; i++) {
		struct fen_val v;

		rc = ix_fen_get(t, r.tid, i, &v);
		if (rc == -ENOENT) {
			fault(&ck, "Fenwick node %" PRIu64 " is missing", i);
			rc = 0;
			continue;
		}
		if (rc)
			goto out;
		if (v.sum != tree[i]) {
			fault(&ck, "Fenwick node %" PRIu64 " holds %" PRIu64
			      " bytes, the rows %" PRIu64, i, v.sum, tree[i]);
		}
	}
	rc = check_kty(&ck, r.tid, &kty_live);
	if (!rc && kty_live != live)
		fault(&ck, "live tasks' kty rows hold %" PRIu64 " events, tgs %" PRIu64,
		      kty_live, live);
out:
	free(tree);
	return rc;
}

/* Delete every row of the range of @dbi whose keys start with the @plen bytes @prefix. */
static int del_range(struct index_txn *t, MDB_dbi dbi, const unsigned char *prefix, size_t plen)
{
	struct ix_scan s;
	int rc = 0;

	ix_scan_open(&s, t->txn, dbi, prefix, plen, plen);
	while (!rc && ix_scan_next(&s))
		rc = ix_scan_del(&s);
	return ix_scan_end(&s, rc);
}

int index_type_drop(struct index_txn *t, const char *name, size_t len)
{
	struct type_ent *e;
	unsigned char k[12];
	struct ix_scan s;
	int rc;

	rc = ix_type_get(t, name, len, false, &e);
	if (rc)
		return rc;
	/* kty rows named by tgs rows, then those named by tt rows */
	put_be32(k, e->rec.tid);
	put_be64(k + 4, 0);
	ix_scan_open(&s, t->txn, t->ix->tgs, k, 12, 4);
	while (!rc && ix_scan_next(&s)) {
		struct tgs_val tv;
		unsigned char kk[20];

		memcpy(&tv, s.val.mv_data, sizeof(tv));
		ix_kty_key(kk, tv.uid, e->rec.tid, get_be64((unsigned char *)s.key.mv_data + 4));
		rc = ix_del_key(t, t->ix->kty, kk, 20);
	}
	rc = ix_scan_end(&s, rc);
	if (rc)
		return rc;
	/* each task's: its kty and kt rows, then its tt row (each tt row passed is removed) */
	ix_tt_key(k, e->rec.tid, 0);
	ix_scan_open(&s, t->txn, t->ix->tt, k, 12, 4);
	while (!rc && ix_scan_next(&s)) {
		unsigned char kk[12];
		uint64_t uid = get_be64((unsigned char *)s.key.mv_data + 4);

		ix_kt_key(kk, uid, e->rec.tid);
		rc = del_range(t, t->ix->kty, kk, 12);
		if (!rc)
			rc = ix_del_key(t, t->ix->kt, kk, 12);
		if (!rc)
			rc = ix_scan_del(&s);
	}
	rc = ix_scan_end(&s, rc);
	put_be32(k, e->rec.tid);
	if (!rc)
		rc = del_range(t, t->ix->tgs, k, 4);
	if (!rc)
		rc = del_range(t, t->ix->fen, k, 4);
	if (rc)
		return rc;
	e->rec.next_ord = 0;
	e->rec.fen_total = 0;
	e->rec.live_count = 0;
	e->rec.live_bytes = 0;
	e->dirty = true;
	return 0;
}
