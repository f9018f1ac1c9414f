/*
 * index_tamper - damage a store's index the way a bug or a bad disk would,
 * for the fsck tests.  Raw LMDB: nothing of the index's own bookkeeping runs.
 *
 *   index_tamper DATA_DIR drop TYPE N     remove the N-th entry (1-based) of TYPE
 *                                         from the type order and the task order
 *   index_tamper DATA_DIR stale TYPE      add an entry to TYPE for an event that
 *                                         does not exist (gseq past every event,
 *                                         and the next gseq past it)
 *
 * The layouts are the index's own (the schema at the top of core/index.c;
 * the values and the kty key from index_i.h, the meta record from
 * index.h; big-endian keys, values in host order), and the names of
 * DATA_DIR datadir.h's: headers only, so the tool links LMDB and nothing
 * of core.
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>

#include "bytes.h"
#include "datadir.h"
#include "index_i.h"

static int die(const char *what, int rc)
{
	fprintf(stderr, "index_tamper: %s: %s\n", what, mdb_strerror(rc));
	return 2;
}

int main(int argc, char **argv)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi types, tgs, kty;
	MDB_cursor *c;
	MDB_val key, val;
	unsigned char k[20];
	char path[DD_PATH_MAX];
	uint32_t tid;
	int rc;

	if (argc < 4 || (strcmp(argv[2], "drop") && strcmp(argv[2], "stale")) ||
	    (!strcmp(argv[2], "drop") && argc != 5)) {
		fprintf(stderr, "usage: index_tamper DATA_DIR drop TYPE N | stale TYPE\n");
		return 2;
	}
	if (snprintf(path, sizeof(path), "%s/" DD_INDEX, argv[1]) >= (int)sizeof(path)) {
		fprintf(stderr, "index_tamper: %s: %s\n", argv[1], strerror(ENAMETOOLONG));
		return 2;
	}
	if ((rc = mdb_env_create(&env)) || (rc = mdb_env_set_maxdbs(env, 16)) ||
	    (rc = mdb_env_set_mapsize(env, 1ull << 30)) ||
	    (rc = mdb_env_open(env, path, MDB_NOTLS, 0644)))
		return die(path, rc);
	if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) ||
	    (rc = mdb_dbi_open(txn, "types", 0, &types)) ||
	    (rc = mdb_dbi_open(txn, "tgs", 0, &tgs)) || (rc = mdb_dbi_open(txn, "kty", 0, &kty)))
		return die("open", rc);
	key.mv_data = argv[3];
	key.mv_size = strlen(argv[3]);
	if ((rc = mdb_get(txn, types, &key, &val)))
		return die(argv[3], rc);
	memcpy(&tid, (char *)val.mv_data + offsetof(struct type_rec, tid), sizeof(tid));
	if ((rc = mdb_cursor_open(txn, tgs, &c)))
		return die("cursor", rc);
	/* tgs: tid(4) gseq(8) */
	put_be32(k, tid);
	put_be64(k + 4, 0);
	key.mv_data = k;
	key.mv_size = 12;
	if (!strcmp(argv[2], "drop")) {
		long n = atol(argv[4]);
		struct tgs_val tv;

		rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE);
		while (!rc && --n > 0)
			rc = mdb_cursor_get(c, &key, &val, MDB_NEXT);
		if (rc || memcmp(key.mv_data, k, 4))
			return die("no such entry", rc ? rc : MDB_NOTFOUND);
		memcpy(&tv, val.mv_data, sizeof(tv));
		printf("dropped gseq %" PRIu64 " of task uid %" PRIu64 "\n",
		       get_be64((unsigned char *)key.mv_data + 4), tv.uid);
		ix_kty_key(k, tv.uid, tid, get_be64((unsigned char *)key.mv_data + 4));
		if ((rc = mdb_cursor_del(c, 0)))
			return die("del tgs", rc);
		key.mv_data = k;
		key.mv_size = 20;
		if ((rc = mdb_del(txn, kty, &key, NULL)))
			return die("del kty", rc);
	} else {
		struct tgs_val tv = { 0 };
		uint64_t gseq = 0;

		/* the type's last entry, copied to a gseq no event has */
		put_be32(k, tid + 1);
		rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE);
		rc = rc == MDB_NOTFOUND ? mdb_cursor_get(c, &key, &val, MDB_LAST)
					: mdb_cursor_get(c, &key, &val, MDB_PREV);
		if (rc)
			return die("last entry", rc);
		memcpy(&tv, val.mv_data, sizeof(tv));
		gseq = get_be64((unsigned char *)key.mv_data + 4) + 1000000;
		put_be32(k, tid);
		put_be64(k + 4, gseq);
		key.mv_data = k;
		key.mv_size = 12;
		val.mv_data = &tv;
		val.mv_size = sizeof(tv);
		if ((rc = mdb_put(txn, tgs, &key, &val, 0)))
			return die("put tgs", rc);
		printf("added gseq %" PRIu64 " to task uid %" PRIu64 "\n", gseq, tv.uid);
		/*
		 * The meta record's next gseq past it, or the open's walk calls
		 * the index damaged before fsck compares entries.
		 */
		{
			const size_t at = offsetof(struct index_meta, next_gseq);
			MDB_val mk = { 4, "meta" }, mv;
			unsigned char m[64];
			uint64_t next;
			MDB_dbi meta;

			if ((rc = mdb_dbi_open(txn, "meta", 0, &meta)) ||
			    (rc = mdb_get(txn, meta, &mk, &mv)))
				return die("meta", rc);
			if (mv.mv_size < at + sizeof(next) || mv.mv_size > sizeof(m))
				return die("meta size", MDB_CORRUPTED);
			memcpy(m, mv.mv_data, mv.mv_size);
			memcpy(&next, m + at, sizeof(next));
			if (next <= gseq) {
				next = gseq + 1;
				memcpy(m + at, &next, sizeof(next));
				mv.mv_data = m;
				if ((rc = mdb_put(txn, meta, &mk, &mv, 0)))
					return die("put meta", rc);
			}
		}
	}
	mdb_cursor_close(c);
	if ((rc = mdb_txn_commit(txn)))
		return die("commit", rc);
	mdb_env_close(env);
	return 0;
}
