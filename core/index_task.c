/*
 * index_task.c - tasks in the index: task records and the name mapping,
 * deleting a task and purging its entries in bounded steps, the dirty set
 * (tasks changed since the last checkpoint), and retention of a task's
 * head (its retention intent and the removal of its oldest entries).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>

#include "bytes.h"
#include "index_i.h"

/* ---- tasks ---- */

int index_task_by_name(struct index_txn *t, const char *name, size_t len,
		       struct index_task *out)
{
	uint64_t uid = 0;
	int rc;

	if (len == 0 || len > 255)
		return -ENOENT;
	rc = ix_get_val(t, t->ix->names, name, len, &uid, sizeof(uid));
	if (rc)
		return rc;
	return index_task_by_uid(t, uid, out);
}

int index_task_put(struct index_txn *t, const struct index_task *task)
{
	unsigned char buf[sizeof(struct task_val) + 256 + 28], k[8];
	size_t n = sizeof(struct task_val) + task->name_len;
	struct task_val tv = {
		.state = task->state,
		.name_len = task->name_len,
		.log_len = task->log_len,
		.nevents = task->nevents,
		.created_ns = task->created_ns,
		.last_ns = task->last_ns,
	};
	int rc;

	memcpy(buf, &tv, sizeof(tv));
	memcpy(buf + sizeof(tv), task->name, task->name_len);
	if (task->base_len || task->base_n || task->has_owner) {
		/* after the name: older stores have no such fields */
		memcpy(buf + n, &task->base_len, 8);
		memcpy(buf + n + 8, &task->base_n, 8);
		n += 16;
	}
	if (task->has_owner) {
		memcpy(buf + n, &task->owner_uid, 4);
		memcpy(buf + n + 4, &task->owner_gid, 4);
		memcpy(buf + n + 8, &task->mode, 4);
		n += 12;
	}
	put_be64(k, task->uid);
	rc = ix_put_val(t, t->ix->tasks, k, 8, buf, n);
	if (!rc && task->state == TASK_LIVE)
		rc = ix_put_val(t, t->ix->names, task->name, task->name_len,
			     &task->uid, sizeof(task->uid));
	return rc;
}

int index_task_list(struct index_txn *t, const char *after, size_t after_len,
		    int (*cb)(void *arg, const struct index_task *task), void *arg)
{
	struct ix_scan s;
	int rc = 0;

	if (!after_len)
		after = NULL;
	ix_scan_open(&s, t->txn, t->ix->names, after, after_len, 0);
	while (!rc && ix_scan_next(&s)) {
		struct index_task task;
		uint64_t uid;

		if (after && s.key.mv_size == after_len && !memcmp(s.key.mv_data, after, after_len))
			continue;
		memcpy(&uid, s.val.mv_data, sizeof(uid));
		rc = index_task_by_uid(t, uid, &task);
		if (!rc)
			rc = cb(arg, &task);
	}
	return ix_scan_end(&s, rc);
}

/* ---- deletion ---- */

int index_task_delete(struct index_txn *t, uint64_t uid)
{
	struct index_task task;
	unsigned char k[12];
	struct ix_scan s;
	int rc;

	rc = index_task_by_uid(t, uid, &task);
	if (rc)
		return rc;
	if (task.state != TASK_LIVE)
		return -ENOENT;
	rc = ix_del_key(t, t->ix->names, task.name, task.name_len);
	if (rc)
		return rc;
	task.state = TASK_DELETED;
	rc = index_task_put(t, &task);
	if (rc)
		return rc;

	/* its events leave the types' live counts now */
	ix_kt_key(k, uid, 0);
	ix_scan_open(&s, t->txn, t->ix->kt, k, 12, 8);
	while (!rc && ix_scan_next(&s)) {
		struct cnt_val cnt;
		struct type_ent *e;
		char name[256];
		size_t nlen;

		memcpy(&cnt, s.val.mv_data, 16);	/* count and bytes */
		rc = ix_type_name(t, get_be32((unsigned char *)s.key.mv_data + 8), name, &nlen);
		if (!rc)
			rc = ix_type_get(t, name, nlen, false, &e);
		if (rc)
			break;
		e->rec.live_count -= cnt.count;
		e->rec.live_bytes -= cnt.bytes;
		e->dirty = true;
	}
	rc = ix_scan_end(&s, rc);
	if (rc)
		return rc;
	put_be64(k, uid);
	rc = ix_put_val(t, t->ix->purge, k, 8, "", 0);
	if (!rc)
		rc = ix_del_key(t, t->ix->retain, k, 8);
	if (rc)
		return rc;
	return ix_del_key(t, t->ix->dirty, k, 8);
}

/* The last kty entry of task @uid, if any. */
static int kty_last(MDB_cursor *c, uint64_t uid, MDB_val *key, MDB_val *val)
{
	unsigned char k[20];
	int rc;

	ix_kty_key(k, uid + 1, 0, 0);
	key->mv_data = k;
	key->mv_size = 20;
	rc = ix_seek_back(c, mdb_cursor_get(c, key, val, MDB_SET_RANGE), key, val);
	if (rc)
		return ix_err(rc);
	return get_be64(key->mv_data) == uid ? 0 : -ENOENT;
}

/* Remove the kt and tt rows of a fully purged task. */
static int drop_counts(struct index_txn *t, uint64_t uid)
{
	unsigned char k[12], tk[12];
	struct ix_scan s;
	int rc = 0;

	ix_kt_key(k, uid, 0);
	ix_scan_open(&s, t->txn, t->ix->kt, k, 12, 8);
	while (!rc && ix_scan_next(&s)) {
		ix_tt_key(tk, get_be32((unsigned char *)s.key.mv_data + 8), uid);
		rc = ix_scan_del(&s);
		if (!rc)
			rc = ix_del_key(t, t->ix->tt, tk, 12);
	}
	return ix_scan_end(&s, rc);
}

int index_purge_step(struct index_txn *t, unsigned budget, uint64_t *done_uid, bool *more)
{
	MDB_cursor *kc = NULL;
	struct ix_scan s;
	MDB_val key, val;
	unsigned char k[12];
	uint64_t uid = 0;
	bool found;
	int rc;

	*done_uid = 0;
	*more = false;
	/* the first task to purge */
	ix_scan_open(&s, t->txn, t->ix->purge, NULL, 0, 0);
	found = ix_scan_next(&s);
	if (found)
		uid = get_be64(s.key.mv_data);
	rc = ix_scan_end(&s, 0);
	if (rc || !found)
		return rc;
	*more = true;

	rc = mdb_cursor_open(t->txn, t->ix->kty, &kc);
	if (rc)
		return ix_err(rc);
	while (budget--) {
		struct kty_val kv;
		struct type_ent *e;
		char name[256];
		size_t nlen;
		uint32_t tid;

		rc = kty_last(kc, uid, &key, &val);
		if (rc)
			break;
		tid = get_be32((unsigned char *)key.mv_data + 8);
		memcpy(&kv, val.mv_data, sizeof(kv));
		rc = ix_type_name(t, tid, name, &nlen);
		if (!rc)
			rc = ix_type_get(t, name, nlen, false, &e);
		if (!rc)
			rc = ix_fen_add(t, tid, kv.ord, e->rec.next_ord, -(int64_t)kv.len);
		if (rc)
			break;
		e->rec.fen_total -= kv.len;
		e->dirty = true;
		put_be32(k, tid);
		memcpy(k + 4, (unsigned char *)key.mv_data + 12, 8);
		rc = ix_err(mdb_cursor_del(kc, 0));
		if (!rc)
			rc = ix_del_key(t, t->ix->tgs, k, 12);
		if (rc)
			break;
	}
	mdb_cursor_close(kc);
	if (rc == -ENOENT) {
		/* nothing of it left in the type index: drop the rest */
		put_be64(k, uid);
		rc = drop_counts(t, uid);
		if (!rc)
			rc = ix_del_key(t, t->ix->tasks, k, 8);
		if (!rc)
			rc = ix_del_key(t, t->ix->purge, k, 8);
		if (!rc)
			*done_uid = uid;
	}
	return rc;
}

/* ---- dirty set ---- */

int index_dirty_add(struct index_txn *t, uint64_t uid, uint64_t log_len, uint64_t nevents)
{
	return index_dirty_set(t, uid, log_len, nevents, 0);
}

int index_dirty_set(struct index_txn *t, uint64_t uid, uint64_t log_len, uint64_t nevents,
		    uint64_t gseq_from)
{
	unsigned char k[8];
	uint64_t v[3] = { log_len, nevents, gseq_from };

	put_be64(k, uid);
	return ix_put_val(t, t->ix->dirty, k, 8, v, gseq_from ? sizeof(v) : 16);
}

bool index_dirty_has(struct index_txn *t, uint64_t uid)
{
	unsigned char k[8];
	uint64_t v[2];

	put_be64(k, uid);
	return ix_get_val(t, t->ix->dirty, k, 8, v, sizeof(v)) == 0;
}

int index_dirty_list(struct index_txn *t,
		     int (*cb)(void *arg, uint64_t uid, uint64_t log_len, uint64_t nevents,
			       uint64_t gseq_from),
		     void *arg)
{
	struct ix_scan s;
	int rc = 0;

	ix_scan_open(&s, t->txn, t->ix->dirty, NULL, 0, 0);
	while (!rc && ix_scan_next(&s)) {
		uint64_t v[3] = { 0, 0, 0 };

		memcpy(v, s.val.mv_data, s.val.mv_size < sizeof(v) ? s.val.mv_size : sizeof(v));
		rc = cb(arg, get_be64(s.key.mv_data), v[0], v[1], v[2]);
	}
	return ix_scan_end(&s, rc);
}

int index_dirty_clear(struct index_txn *t)
{
	return ix_err(mdb_drop(t->txn, t->ix->dirty, 0));
}

/* ---- retention of a task's head ---- */

int index_retain_put(struct index_txn *t, const struct index_retain *tr)
{
	struct retain_val v = { .phase = tr->phase, .cut_gseq = tr->cut_gseq,
			      .cut_len = tr->cut_len, .cut_n = tr->cut_n };
	unsigned char k[8];

	put_be64(k, tr->uid);
	return ix_put_val(t, t->ix->retain, k, 8, &v, sizeof(v));
}

static void retain_decode(uint64_t uid, const struct retain_val *v, struct index_retain *out)
{
	*out = (struct index_retain){ .uid = uid, .phase = v->phase, .cut_gseq = v->cut_gseq,
				    .cut_len = v->cut_len, .cut_n = v->cut_n };
}

int index_retain_get(struct index_txn *t, uint64_t uid, struct index_retain *out)
{
	unsigned char k[8];
	struct retain_val v;
	int rc;

	if (t->ix->retain == NO_DBI)
		return -ENOENT;
	put_be64(k, uid);
	rc = ix_get_val(t, t->ix->retain, k, 8, &v, sizeof(v));
	if (!rc)
		retain_decode(uid, &v, out);
	return rc;
}

int index_retain_del(struct index_txn *t, uint64_t uid)
{
	unsigned char k[8];

	put_be64(k, uid);
	return ix_del_key(t, t->ix->retain, k, 8);
}

int index_retain_list(struct index_txn *t, int (*cb)(void *arg, const struct index_retain *tr),
		    void *arg)
{
	struct ix_scan s;
	int rc = 0;

	if (t->ix->retain == NO_DBI)
		return 0;
	ix_scan_open(&s, t->txn, t->ix->retain, NULL, 0, 0);
	while (!rc && ix_scan_next(&s)) {
		struct index_retain tr;
		struct retain_val v;

		if (s.val.mv_size < sizeof(v)) {
			rc = -EIO;
			break;
		}
		memcpy(&v, s.val.mv_data, sizeof(v));
		retain_decode(get_be64(s.key.mv_data), &v, &tr);
		rc = cb(arg, &tr);
	}
	return ix_scan_end(&s, rc);
}

/* Remove up to *@budget of task @uid's type-@tid entries with gseq < @cut, oldest first. */
static int retain_type(struct index_txn *t, uint64_t uid, uint32_t tid, uint64_t cut,
		     unsigned *budget)
{
	unsigned char k[20], ck[12];
	struct cnt_val cnt;
	struct type_ent *e;
	char name[256];
	size_t nlen;
	struct ix_scan s;
	int rc;

	ix_kt_key(ck, uid, tid);
	rc = ix_get_cnt(t, t->ix->kt, ck, &cnt);
	if (!rc)
		rc = ix_type_name(t, tid, name, &nlen);
	if (!rc)
		rc = ix_type_get(t, name, nlen, false, &e);
	if (rc)
		return rc;
	/* the task+type's entries, oldest first: each one passed is removed */
	ix_kty_key(k, uid, tid, 0);
	rc = ix_scan_open(&s, t->txn, t->ix->kty, k, 20, 12);
	if (rc)
		return ix_err(rc);
	while (*budget && ix_scan_next(&s)) {
		struct kty_val kv;
		unsigned char gk[12];

		if (get_be64((unsigned char *)s.key.mv_data + 12) >= cut)
			break;
		memcpy(&kv, s.val.mv_data, sizeof(kv));
		put_be32(gk, tid);
		memcpy(gk + 4, (unsigned char *)s.key.mv_data + 12, 8);
		rc = ix_scan_del(&s);
		if (!rc)
			rc = ix_del_key(t, t->ix->tgs, gk, 12);
		if (!rc)
			rc = ix_fen_add(t, tid, kv.ord, e->rec.next_ord, -(int64_t)kv.len);
		if (rc)
			break;
		e->rec.fen_total -= kv.len;
		e->rec.live_count--;
		e->rec.live_bytes -= kv.len;
		e->dirty = true;
		cnt.count--;
		cnt.bytes -= kv.len;
		cnt.base += kv.len;
		(*budget)--;
	}
	rc = ix_scan_end(&s, rc);
	if (rc)
		return rc;
	if (!cnt.count) {
		/* nothing of it left: no cum needs the base any more */
		rc = ix_del_key(t, t->ix->kt, ck, 12);
		ix_tt_key(ck, tid, uid);
		return rc ? rc : ix_del_key(t, t->ix->tt, ck, 12);
	}
	rc = ix_put_val(t, t->ix->kt, ck, 12, &cnt, sizeof(cnt));
	ix_tt_key(ck, tid, uid);
	return rc ? rc : ix_put_val(t, t->ix->tt, ck, 12, &cnt, sizeof(cnt));
}

int index_retain_step(struct index_txn *t, uint64_t uid, uint64_t cut_gseq, unsigned budget,
		    bool *more)
{
	uint32_t tids[64];
	size_t n = 0;
	uint32_t after = 0;
	int rc = 0;

	*more = false;
	/* the task's types, a bounded batch at a time (retain_type rewrites kt rows) */
	while (budget && !rc) {
		unsigned char k[12];
		struct ix_scan s;

		n = 0;
		ix_kt_key(k, uid, after);
		rc = ix_scan_open(&s, t->txn, t->ix->kt, k, 12, 8);
		if (rc)
			return ix_err(rc);
		while (ix_scan_next(&s) && n < 64)
			tids[n++] = get_be32((unsigned char *)s.key.mv_data + 8);
		rc = ix_scan_end(&s, 0);
		for (size_t i = 0; i < n && !rc && budget; i++)
			rc = retain_type(t, uid, tids[i], cut_gseq, &budget);
		if (rc || n < 64)
			break;
		after = tids[n - 1] + 1;
	}
	if (!rc && !budget)
		*more = true;	/* perhaps: the next step finds out */
	return rc;
}
