/*
 * index_i.h - what the files of the index share and nothing else
 * includes (the rest of core includes index.h): the handles, the layouts
 * of the values the schema stores, and the ix_ functions the files call in
 * each other.  Which file owns what: the top of index.c.
 *
 * Caveats: as index.h's.  Pointers into the map (a scan's entry, a value
 * read) are valid until the next write to that database or the end of the
 * transaction.
 */
#ifndef EVL_INDEX_I_H
#define EVL_INDEX_I_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>

#include "bytes.h"
#include "index.h"

/* The map size a new environment starts with (index_set_map_initial). */
extern size_t ix_map_initial;

/* A database an index opened read-only lacks (made by an older version): read as empty. */
#define NO_DBI ((MDB_dbi)~0u)

struct index {
	MDB_env *env;
	MDB_dbi meta, tasks, names, types, tids, fen, tgs, kty, kt, tt, dirty, purge, retain;
	pthread_rwlock_t resize;	/* read: any txn open; write: set_mapsize */
	size_t mapsize;
	char *path;
	bool rdonly;		/* INDEX_RDONLY: nothing written, not even the lock file */
	atomic_bool sync_failed;	/* see index_sync_failed */
	void (*failed_fn)(void *arg);
	void *failed_arg;
};

struct type_rec {
	uint32_t tid;
	uint32_t pad;
	uint64_t next_ord;	/* events ever added: the Fenwick tree's size */
	uint64_t fen_total;	/* sum of the tree (includes unpurged deleted) */
	uint64_t live_count, live_bytes;
};

struct type_ent {
	size_t len;
	char name[256];
	struct type_rec rec;
	bool dirty;
};

struct index_txn {
	struct index *ix;
	MDB_txn *txn;
	bool write;
	/* write only: types touched by this transaction */
	struct type_ent *types;
	size_t ntypes, cap;
	uint32_t next_tid;	/* 0: not loaded */
};

struct task_val {
	uint32_t state, name_len;
	uint64_t log_len, nevents, created_ns, last_ns;
};

struct fen_val {
	uint64_t sum, gseq;
};

struct tgs_val {
	uint64_t ord, uid, off;
	uint32_t len, pad;
};

struct kty_val {
	uint64_t cum, off, ord;
	uint32_t len, pad;
};

/*
 * kt and tt rows.  base: bytes of the task+type's events dropped from its
 * head by retention, which kty's cum values still count (kt only; older
 * stores wrote 16-byte rows, read with base 0).
 */
struct cnt_val {
	uint64_t count, bytes, base;
};

/* A retention intent (the database keeps its first name, `trim`). */
struct retain_val {
	uint32_t phase, pad;
	uint64_t cut_gseq, cut_len, cut_n;
};

/* The keys of kt, tt and kty rows (the schema, index.c). */
static inline void ix_kt_key(unsigned char k[12], uint64_t uid, uint32_t tid)
{
	put_be64(k, uid);
	put_be32(k + 8, tid);
}

static inline void ix_tt_key(unsigned char k[12], uint32_t tid, uint64_t uid)
{
	put_be32(k, tid);
	put_be64(k + 4, uid);
}

static inline void ix_kty_key(unsigned char k[20], uint64_t uid, uint32_t tid, uint64_t gseq)
{
	put_be64(k, uid);
	put_be32(k + 8, tid);
	put_be64(k + 12, gseq);
}

/* ---- index.c: LMDB's codes, value access, scans ---- */

/* LMDB's code @rc as 0 or -errno (MDB_NOTFOUND: -ENOENT; MDB_MAP_FULL: -EAGAIN). */
int ix_err(int rc);
/* A fixed-size value into @out.  0, -ENOENT (absent), -EIO (short) or -errno. */
int ix_get_val(struct index_txn *t, MDB_dbi dbi, const void *k, size_t klen, void *out,
	       size_t size);
/* A kt or tt row into @out (zero base for a 16-byte row).  0, -ENOENT, -EIO. */
int ix_get_cnt(struct index_txn *t, MDB_dbi dbi, const unsigned char k[12], struct cnt_val *out);
/* Store a value.  0, -EAGAIN (map full) or -errno. */
int ix_put_val(struct index_txn *t, MDB_dbi dbi, const void *k, size_t klen, const void *v,
	       size_t size);
/* Delete key @k; absent is fine.  0 or -errno. */
int ix_del_key(struct index_txn *t, MDB_dbi dbi, const void *k, size_t klen);

/*
 * A scan hands out the entries of one database in key order, from key
 * @from on (NULL: from the first entry), while their keys start with the
 * first @plen bytes of @from (0: to the end); each step compares with
 * @from, which must stay as it is until the scan ends.  The loops read
 *
 *	struct ix_scan s;
 *
 *	ix_scan_open(&s, t->txn, dbi, from, flen, plen);
 *	while (!rc && ix_scan_next(&s))
 *		rc = use(&s.key, &s.val);
 *	return ix_scan_end(&s, rc);
 *
 * The end of the range (or of the database) is the normal end.  An LMDB
 * error stops the scan, and ix_scan_end returns it as -errno unless the
 * loop stopped with its own non-zero rc first; a cursor that cannot be
 * opened is such an error too, so a loop may start right after
 * ix_scan_open.  The walk (damage checks), which reports LMDB's own codes,
 * ends with ix_scan_close instead.  s.key and s.val point into the map:
 * valid until the next call or a write to the database.
 */
struct ix_scan {
	MDB_cursor *c;
	MDB_val key, val;	/* the entry ix_scan_next found */
	const void *from;
	size_t flen, plen;
	bool started;		/* the cursor is placed: step on with MDB_NEXT */
	bool done;		/* the end, or an error: no more entries */
	int err;		/* the LMDB error that stopped the scan, else 0 */
};

/* Open @s's cursor.  0 or the LMDB error (kept: the scan ends at once and reports it). */
int ix_scan_open(struct ix_scan *s, MDB_txn *txn, MDB_dbi dbi, const void *from,
		 size_t flen, size_t plen);
/* The next entry into s->key, s->val: true; false at the end or on an error. */
bool ix_scan_next(struct ix_scan *s);
/*
 * Delete the entry found (a write transaction's scan); the next step seeks
 * @from again, which suits the loops that delete every entry they pass.
 * 0 or -errno.
 */
int ix_scan_del(struct ix_scan *s);
/* The error that stopped the scan as -errno, 0 if none (the scan stays open). */
int ix_scan_err(const struct ix_scan *s);
/* Close: @rc if non-zero, else 0 or the LMDB code of the error that stopped the scan. */
int ix_scan_close(struct ix_scan *s, int rc);
/* Close: @rc if non-zero, else 0 or the scan's error as -errno. */
int ix_scan_end(struct ix_scan *s, int rc);
/* After an MDB_SET_RANGE that returned @rc: the last entry before the key sought. */
int ix_seek_back(MDB_cursor *c, int rc, MDB_val *key, MDB_val *val);

/* ---- index_task.c ---- */

/* A tasks value of task @uid into @out.  0 or -EIO (malformed). */
int ix_task_decode(const MDB_val *val, uint64_t uid, struct index_task *out);

/* ---- index_type.c: type records, Fenwick trees ---- */

/*
 * The type record of @name in write transaction @t (cached there until
 * the commit writes it back), created if @create.  0, -ENOENT or -errno.
 */
int ix_type_get(struct index_txn *t, const char *name, size_t len, bool create,
		struct type_ent **out);
/* The name of type @tid (not NUL-terminated), into @name (256 bytes).  0, -ENOENT or -errno. */
int ix_type_name(struct index_txn *t, uint32_t tid, char *name, size_t *len);

/* Fenwick trees: 1-based node i covers ordinals i - lowbit(i) .. i - 1. */
static inline uint64_t ix_lowbit(uint64_t i)
{
	return i & -i;
}

/* Node @i of type @tid's tree.  0, -ENOENT or -errno. */
int ix_fen_get(struct index_txn *t, uint32_t tid, uint64_t i, struct fen_val *v);
/* Add @delta to ordinal @ord of type @tid's tree of @n elements.  0 or -errno. */
int ix_fen_add(struct index_txn *t, uint32_t tid, uint64_t ord, uint64_t n, int64_t delta);

#endif
