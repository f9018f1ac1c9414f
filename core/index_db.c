/*
 * index_db.c - what every file of the index reads and writes LMDB with:
 * LMDB's errors as -errno, one entry got, put or deleted, scans over a key
 * range (the one cursor loop), the seek to the entry before a key, and the
 * two records every part reads (the meta record, a task by uid).  The
 * schema is at the top of index.c; these call nothing else of the index.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <lmdb.h>

#include "bytes.h"
#include "index_i.h"
#include "log.h"

int ix_err(int rc)
{
	switch (rc) {
	case 0:
		return 0;
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_MAP_FULL:
		return -EAGAIN;
	case MDB_TXN_FULL:
		return -E2BIG;
	case MDB_READERS_FULL:
		return -EBUSY;
	}
	if (rc > 0)
		return -rc;
	evl_log(LOG_ERR, "index: %s", mdb_strerror(rc));
	return -EIO;
}

/* A kt or tt row into @out (zero base for a 16-byte row).  0, -ENOENT, -EIO. */
int ix_get_cnt(struct index_txn *t, MDB_dbi dbi, const unsigned char k[12],
		   struct cnt_val *out)
{
	MDB_val key = { 12, (void *)k }, val;
	int rc = mdb_get(t->txn, dbi, &key, &val);

	if (rc)
		return ix_err(rc);
	if (val.mv_size < 16)
		return -EIO;
	memset(out, 0, sizeof(*out));
	memcpy(out, val.mv_data, val.mv_size < sizeof(*out) ? val.mv_size : sizeof(*out));
	return 0;
}

/* get a fixed-size value into @out; -ENOENT if absent */
int ix_get_val(struct index_txn *t, MDB_dbi dbi, const void *k, size_t klen,
		   void *out, size_t size)
{
	MDB_val key = { klen, (void *)k }, val;
	int rc = mdb_get(t->txn, dbi, &key, &val);

	if (rc)
		return ix_err(rc);
	if (val.mv_size < size)
		return -EIO;
	memcpy(out, val.mv_data, size);
	return 0;
}

int ix_put_val(struct index_txn *t, MDB_dbi dbi, const void *k, size_t klen,
		   const void *v, size_t size)
{
	MDB_val key = { klen, (void *)k }, val = { size, (void *)v };

	return ix_err(mdb_put(t->txn, dbi, &key, &val, 0));
}

int ix_del_key(struct index_txn *t, MDB_dbi dbi, const void *k, size_t klen)
{
	MDB_val key = { klen, (void *)k };
	int rc = mdb_del(t->txn, dbi, &key, NULL);

	return rc == MDB_NOTFOUND ? 0 : ix_err(rc);
}

/* 0 or the LMDB error of opening the cursor (kept for ix_scan_end too). */
int ix_scan_open(struct ix_scan *s, MDB_txn *txn, MDB_dbi dbi, const void *from,
		 size_t flen, size_t plen)
{
	*s = (struct ix_scan){ .from = from, .flen = flen, .plen = plen };
	s->err = mdb_cursor_open(txn, dbi, &s->c);
	if (s->err) {
		s->c = NULL;
		s->done = true;
	}
	return s->err;
}

/* The next entry into s->key, s->val: true, or false at the end or an error. */
bool ix_scan_next(struct ix_scan *s)
{
	MDB_cursor_op op = MDB_NEXT;
	int rc;

	if (s->done)
		return false;
	if (!s->started) {
		s->key = (MDB_val){ s->flen, (void *)s->from };
		op = s->from ? MDB_SET_RANGE : MDB_FIRST;
		s->started = true;
	}
	rc = mdb_cursor_get(s->c, &s->key, &s->val, op);
	if (!rc && (!s->plen || (s->key.mv_size >= s->plen &&
				 !memcmp(s->key.mv_data, s->from, s->plen))))
		return true;
	s->err = rc == MDB_NOTFOUND ? 0 : rc;
	s->done = true;
	return false;
}

/*
 * Delete the entry ix_scan_next found (a write transaction's scan).  The
 * next ix_scan_next seeks @from again: for the loops that delete every
 * entry they pass, where that is the entry after it.  0 or -errno.
 */
int ix_scan_del(struct ix_scan *s)
{
	s->started = false;
	return ix_err(mdb_cursor_del(s->c, 0));
}

/* The error that stopped the scan, as -errno; 0 if none. */
int ix_scan_err(const struct ix_scan *s)
{
	return ix_err(s->err);
}

/*
 * Close the scan: @rc if the loop stopped with one, else 0 or the LMDB
 * code of the error that stopped the scan (for the walk).
 */
int ix_scan_close(struct ix_scan *s, int rc)
{
	if (s->c)
		mdb_cursor_close(s->c);
	s->c = NULL;
	s->done = true;
	return rc ? rc : s->err;
}

/* Close the scan: @rc if the loop stopped with one, else 0 or the scan's error as -errno. */
int ix_scan_end(struct ix_scan *s, int rc)
{
	ix_scan_close(s, 0);
	return rc ? rc : ix_scan_err(s);
}

/*
 * Move @c to the last entry before the key a seek looked for, given what
 * that MDB_SET_RANGE returned (@rc): the entry before the one it found, or
 * the database's last if it found none.  0 or an LMDB code (MDB_NOTFOUND:
 * no such entry).
 */
int ix_seek_back(MDB_cursor *c, int rc, MDB_val *key, MDB_val *val)
{
	if (rc == MDB_NOTFOUND)
		return mdb_cursor_get(c, key, val, MDB_LAST);
	if (rc)
		return rc;
	return mdb_cursor_get(c, key, val, MDB_PREV);
}

int index_get_meta(struct index_txn *t, struct index_meta *m)
{
	return ix_get_val(t, t->ix->meta, "meta", 4, m, sizeof(*m));
}

int index_put_meta(struct index_txn *t, const struct index_meta *m)
{
	return ix_put_val(t, t->ix->meta, "meta", 4, m, sizeof(*m));
}

int ix_task_decode(const MDB_val *val, uint64_t uid, struct index_task *out)
{
	struct task_val tv;

	if (val->mv_size < sizeof(tv))
		return -EIO;
	memcpy(&tv, val->mv_data, sizeof(tv));
	if (tv.name_len > 255 || val->mv_size < sizeof(tv) + tv.name_len)
		return -EIO;
	out->uid = uid;
	out->state = tv.state;
	out->log_len = tv.log_len;
	out->nevents = tv.nevents;
	out->created_ns = tv.created_ns;
	out->last_ns = tv.last_ns;
	out->name_len = tv.name_len;
	memcpy(out->name, (char *)val->mv_data + sizeof(tv), tv.name_len);
	out->name[tv.name_len] = '\0';
	out->base_len = out->base_n = 0;
	out->has_owner = false;
	out->owner_uid = out->owner_gid = out->mode = 0;
	if (val->mv_size >= sizeof(tv) + tv.name_len + 16) {
		const char *b = (const char *)val->mv_data + sizeof(tv) + tv.name_len;

		memcpy(&out->base_len, b, 8);
		memcpy(&out->base_n, b + 8, 8);
	}
	if (val->mv_size >= sizeof(tv) + tv.name_len + 28) {
		const char *b = (const char *)val->mv_data + sizeof(tv) + tv.name_len + 16;

		out->has_owner = true;
		memcpy(&out->owner_uid, b, 4);
		memcpy(&out->owner_gid, b + 4, 4);
		memcpy(&out->mode, b + 8, 4);
	}
	return 0;
}

int index_task_by_uid(struct index_txn *t, uint64_t uid, struct index_task *out)
{
	unsigned char k[8];
	MDB_val key = { 8, k }, val;
	int rc;

	put_be64(k, uid);
	rc = mdb_get(t->txn, t->ix->tasks, &key, &val);
	if (rc)
		return ix_err(rc);
	return ix_task_decode(&val, uid, out);
}
