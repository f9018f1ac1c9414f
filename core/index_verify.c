/*
 * index_verify.c - the damage checks of an index file, before LMDB maps
 * it: its meta pages (index_check_file), then every page of every database
 * read in a child process (index_verify), which the store runs at open and
 * fsck and backup before they read the file.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <fcntl.h>
#include <unistd.h>

#include <lmdb.h>

#include "bytes.h"
#include "datadir.h"
#include "index_i.h"

/*
 * LMDB trusts its file.  A file cut short is mapped anyway and the first
 * read of a page past its end is a SIGBUS; a damaged page number or node
 * sends it off the map (SIGSEGV), or into an assertion (abort).  So before
 * LMDB maps an index, its meta pages are read with pread() and checked
 * (index_check_file), and every page of every database is read once in a
 * child process (index_verify): a crash there is a damaged index, not a
 * dead daemon or tool.
 *
 * The meta page, as LMDB's mdb.c lays it out (data version 1, 64-bit):
 * a 16-byte page header (page number 8, pad 2, flags 2, lower/upper 4),
 * then magic, version, fixed-map address, map size, the records of the
 * free-page and main databases, the last page used and the txnid that
 * wrote it.  Pages 0 and 1 are the two metas; LMDB uses the one with the
 * higher txnid (page 0 on a tie).  The file may end before the last page
 * when the free list holds the pages at its end (they were never
 * written), so only the roots must lie within it; what the trees point
 * to is for the walk.
 */
#define LMDB_MAGIC 0xBEEFC0DEu
#define LMDB_DATA_VERSION 1
#define LMDB_P_META 0x08
#define LMDB_NO_PAGE UINT64_MAX
#define LMDB_MAX_DEPTH 32	/* LMDB's cursor stack */
#define LMDB_METAS 2

struct lmdb_db_rec {
	uint32_t pad;		/* the free database's: the page size */
	uint16_t flags, depth;
	uint64_t branch_pages, leaf_pages, overflow_pages, entries, root;
};

struct lmdb_meta {
	uint32_t magic, version;
	uint64_t address, mapsize;
	struct lmdb_db_rec dbs[2];	/* free pages, main */
	uint64_t last_pg, txnid;
};

struct lmdb_meta_page {
	uint64_t pgno;
	uint16_t pad, flags;
	uint32_t bounds;
	struct lmdb_meta m;
};

_Static_assert(sizeof(struct lmdb_meta_page) == 16 + 136, "LMDB's meta page layout");

static int damaged(char *why, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int damaged(char *why, size_t n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, n, fmt, ap);
	va_end(ap);
	return -EUCLEAN;
}

/* A database record of meta @i: its root lies within the file, its depth fits. */
static int check_db_rec(const struct lmdb_db_rec *db, const char *what, uint64_t last_pg,
			uint64_t pages, char *why, size_t n)
{
	if (db->root == LMDB_NO_PAGE) {
		if (db->depth || db->entries)
			return damaged(why, n, "the %s database has %" PRIu64 " entries but no root",
				       what, db->entries);
		return 0;
	}
	if (db->root < LMDB_METAS || db->root > last_pg)
		return damaged(why, n, "the %s database's root is page %" PRIu64 ", not in 2..%"
			       PRIu64, what, db->root, last_pg);
	if (db->root >= pages)
		return damaged(why, n, "the %s database's root, page %" PRIu64 ", is past the end"
			       " of the file (%" PRIu64 " pages)", what, db->root, pages);
	if (!db->depth || db->depth > LMDB_MAX_DEPTH)
		return damaged(why, n, "the %s database's depth is %u", what, db->depth);
	return 0;
}

int index_check_file(const char *dir, char *why, size_t n)
{
	struct lmdb_meta_page mp[LMDB_METAS];
	const struct lmdb_meta *m;
	char path[DD_PATH_MAX];
	struct stat st;
	uint64_t psize, pages;
	int fd, rc = 0;

	if (dd_join(path, dir, DD_MDB_DATA))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st)) {
		rc = -errno;
		goto out;
	}
	if ((uint64_t)st.st_size < sizeof(mp[0])) {
		rc = damaged(why, n, "the file has %jd bytes, too few for LMDB's meta pages",
			     (intmax_t)st.st_size);
		goto out;
	}
	if (pread(fd, &mp[0], sizeof(mp[0]), 0) != (ssize_t)sizeof(mp[0])) {
		rc = errno ? -errno : -EIO;
		goto out;
	}
	psize = mp[0].m.dbs[0].pad;
	if (mp[0].m.magic != LMDB_MAGIC || mp[0].m.version != LMDB_DATA_VERSION ||
	    !(mp[0].flags & LMDB_P_META)) {
		rc = damaged(why, n, "meta page 0 is not an LMDB meta page of data version %d",
			     LMDB_DATA_VERSION);
		goto out;
	}
	if (psize < 512 || psize > 65536 || (psize & (psize - 1))) {
		rc = damaged(why, n, "meta page 0 gives a page size of %" PRIu64, psize);
		goto out;
	}
	pages = (uint64_t)st.st_size / psize;
	if (pages < LMDB_METAS) {
		rc = damaged(why, n, "the file has %jd bytes, fewer than two %" PRIu64 "-byte"
			     " meta pages", (intmax_t)st.st_size, psize);
		goto out;
	}
	if (pread(fd, &mp[1], sizeof(mp[1]), psize) != (ssize_t)sizeof(mp[1])) {
		rc = errno ? -errno : -EIO;
		goto out;
	}
	if (mp[1].m.magic != LMDB_MAGIC || mp[1].m.version != LMDB_DATA_VERSION ||
	    !(mp[1].flags & LMDB_P_META) || mp[1].m.dbs[0].pad != psize) {
		rc = damaged(why, n, "meta page 1 is not an LMDB meta page like page 0");
		goto out;
	}
	m = &mp[mp[1].m.txnid > mp[0].m.txnid].m;	/* the one LMDB will use */
	/* ours: no fixed map, default key order; the free database's keys are txnids */
	if (m->address || m->dbs[0].flags != MDB_INTEGERKEY || m->dbs[1].flags) {
		rc = damaged(why, n, "meta page %d has flags LMDB never wrote for this index",
			     m == &mp[1].m);
		goto out;
	}
	if (m->last_pg < LMDB_METAS - 1 || m->last_pg > (UINT64_MAX >> 17)) {
		rc = damaged(why, n, "meta page %d gives %" PRIu64 " as the last page",
			     m == &mp[1].m, m->last_pg);
		goto out;
	}
	/*
	 * LMDB writes whole pages (no MDB_WRITEMAP here): a file that ends
	 * inside a page the meta page counts in use was cut, and what the cut
	 * took reads as zeros (a torn counter, a view one event short).
	 */
	if (st.st_size % psize && pages <= m->last_pg) {
		rc = damaged(why, n, "the file has %jd bytes: it ends inside page %" PRIu64 ", which"
			     " is in use (the last is %" PRIu64 ")", (intmax_t)st.st_size, pages,
			     m->last_pg);
		goto out;
	}
	rc = check_db_rec(&m->dbs[0], "free-page", m->last_pg, pages, why, n);
	if (!rc)
		rc = check_db_rec(&m->dbs[1], "main", m->last_pg, pages, why, n);
out:
	close(fd);
	return rc;
}

/* What the walk found: how many pages, and where it stopped. */
struct walk {
	char *why;
	size_t n;
	uint64_t pages;		/* branch, leaf and overflow pages of every tree */
	volatile unsigned sink;	/* what touch() read ends up here */
	/*
	 * Who holds each page, as far as the walk sees (PG_FREE, or a tree's
	 * number + PG_TREE): the leaf page of each entry and the overflow
	 * pages of each big value, through where LMDB's cursor puts them in
	 * the map.  Branch pages are not seen.
	 */
	const char *map;
	size_t psize;
	uint64_t npages;
	unsigned char *owner;
	/* the leaf page being walked: its entries' nodes and the bytes they take */
	bool in_leaf;
	uint64_t leaf, leaf_nodes, leaf_bytes;
};
enum { PG_FREE = 1, PG_TREE = 2 };

/*
 * Claim the pages [@p, @p + @len) of the map for @tree (a free list's page
 * numbers, an entry's bytes).  A page that is free and in a tree, or in
 * two trees, is damage that a reader cannot see but a writer meets: LMDB
 * hands out the "free" page and overwrites the tree (or loops for ever in
 * a damaged free list).
 */
static int claim(struct walk *w, uint64_t first, uint64_t last, unsigned tree,
		 const char *what)
{
	for (uint64_t pg = first; pg <= last; pg++) {
		if (pg >= w->npages)
			return damaged(w->why, w->n, "the %s database uses page %" PRIu64 ", past "
				       "the last (%" PRIu64 ")", what, pg, w->npages - 1);
		if (w->owner[pg] == tree && tree != PG_FREE)
			continue;
		if (w->owner[pg])
			return damaged(w->why, w->n, "page %" PRIu64 " is %s and holds entries of "
				       "the %s database", pg, w->owner[pg] == PG_FREE ? "free" :
				       "in another database", what);
		w->owner[pg] = tree;
	}
	return 0;
}

/*
 * The leaf page @w->leaf is done: LMDB keeps a leaf's nodes packed between
 * its header's upper bound and the page's end, one pointer each below the
 * lower bound, so what the cursor handed out must fill exactly that.  A
 * node whose sizes a flipped bit changed overlaps its neighbour: a reader
 * gets a wrong value, and a writer deleting near it corrupts the page (an
 * endless loop in LMDB was seen, sweep seed 98701 case 0).
 */
static int leaf_done(struct walk *w, const char *what)
{
	uint16_t lower, upper, flags;
	const char *pg;

	if (!w->in_leaf)
		return 0;
	w->in_leaf = false;
	pg = w->map + w->leaf * w->psize;
	memcpy(&flags, pg + 10, 2);
	memcpy(&lower, pg + 12, 2);
	memcpy(&upper, pg + 14, 2);
	if (!(flags & 0x02) || lower < 16 || (uint64_t)(lower - 16) / 2 != w->leaf_nodes ||
	    upper > w->psize || w->psize - upper != w->leaf_bytes)
		return damaged(w->why, w->n, "leaf page %" PRIu64 " of the %s database: its "
			       "entries take %" PRIu64 " bytes in %" PRIu64 " nodes, its header "
			       "says %zu bytes in %u (flags %#x)", w->leaf, what, w->leaf_bytes,
			       w->leaf_nodes, upper <= w->psize ? w->psize - upper : 0,
			       lower >= 16 ? (lower - 16) / 2 : 0, flags);
	return 0;
}

/* Count entry @key, @val of the walk's current leaf page (leaf_done checks). */
static int leaf_entry(struct walk *w, const MDB_val *key, const MDB_val *val, const char *what)
{
	const char *k = key->mv_data, *v = val->mv_data;
	uint64_t page, size;
	int rc;

	if (!w->owner || !w->map || !key->mv_size)
		return 0;
	page = (uint64_t)(k - w->map) / w->psize;
	if (page != w->leaf || !w->in_leaf) {
		rc = leaf_done(w, what);
		if (rc)
			return rc;
		w->leaf = page;
		w->leaf_nodes = w->leaf_bytes = 0;
		w->in_leaf = true;
	}
	/* a value in the page, or on overflow pages (its page number in the node) */
	size = 8 + key->mv_size;
	/* in the page (a zero-length value may point at its very end), or an overflow page's data */
	if (v >= w->map + page * w->psize && v <= w->map + (page + 1) * w->psize)
		size += val->mv_size;
	else
		size += 8;
	w->leaf_bytes += (size + 1) & ~(uint64_t)1;
	w->leaf_nodes++;
	return 0;
}

/*
 * Claim the page(s) @v lies in for @tree.  Where LMDB mapped the file is
 * not told (me_mapaddr is only for a fixed map): the kernel's mapping that
 * holds the first entry says, when it starts at the file's offset 0; else
 * the check is off rather than a guess.  (A guess from the first page's
 * header failed when the map was not aligned to LMDB's page size: an index
 * of 16 KiB pages made on another machine was called damaged.)
 */
static int claim_val(struct walk *w, const MDB_val *v, unsigned tree, const char *what)
{
	const char *p = v->mv_data;

	if (!v->mv_size || !w->owner)
		return 0;
	if (!w->map) {
		/* the mapping that holds @p, from the kernel: it starts at the file's offset 0 */
		FILE *f = fopen("/proc/self/maps", "re");
		char line[4608];
		uintptr_t lo, hi;
		unsigned long long off;

		while (f && fgets(line, sizeof(line), f))
			if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %*s %llx", &lo, &hi, &off) == 3 &&
			    (uintptr_t)p >= lo && (uintptr_t)p < hi) {
				if (!off)
					w->map = (const char *)lo;
				break;
			}
		if (f)
			fclose(f);
		if (!w->map) {
			free(w->owner);
			w->owner = NULL;
			return 0;
		}
	}
	if (p < w->map)
		return damaged(w->why, w->n, "an entry of the %s database lies outside the map", what);
	return claim(w, (uint64_t)(p - w->map) / w->psize,
		     (uint64_t)(p + v->mv_size - 1 - w->map) / w->psize, tree, what);
}

/*
 * Read a byte of each page @v spans (its last one too): a page past the end
 * of the file faults here, in the child, not later in the daemon.
 */
static void touch(struct walk *w, const MDB_val *v)
{
	const unsigned char *p = v->mv_data;
	unsigned sum = 0;

	for (size_t i = 0; i < v->mv_size; i += 4096)
		sum += p[i];
	if (v->mv_size)
		sum += p[v->mv_size - 1];
	w->sink += sum;
}

/* LMDB's default key order: bytes, then length. */
static int key_cmp(const MDB_val *a, const MDB_val *b)
{
	size_t len = a->mv_size < b->mv_size ? a->mv_size : b->mv_size;
	int c = len ? memcmp(a->mv_data, b->mv_data, len) : 0;

	if (c)
		return c;
	return a->mv_size < b->mv_size ? -1 : a->mv_size > b->mv_size;
}

/*
 * Read every key and value of database @dbi (@what names it), checking
 * their order and count; the free-page database's values are page lists,
 * each page a real one.  0, -EUCLEAN (w->why) or an MDB code.
 */
static int walk_db(MDB_txn *txn, MDB_dbi dbi, const char *what, uint64_t last_pg,
		   unsigned tree, struct walk *w)
{
	struct ix_scan s;
	MDB_val prev = { 0, NULL };
	MDB_stat ms;
	uint64_t count = 0;
	int rc;

	rc = mdb_stat(txn, dbi, &ms);
	if (!rc)
		rc = ix_scan_open(&s, txn, dbi, NULL, 0, 0);
	if (rc)
		return rc;
	w->pages += (uint64_t)ms.ms_branch_pages + ms.ms_leaf_pages + ms.ms_overflow_pages;
	while (ix_scan_next(&s)) {
		const MDB_val key = s.key, val = s.val;

		touch(w, &key);
		touch(w, &val);
		count++;
		rc = claim_val(w, &key, tree, what);
		if (!rc)
			rc = claim_val(w, &val, tree, what);
		if (!rc)
			rc = leaf_entry(w, &key, &val, what);
		if (rc)
			break;
		if (dbi == 0) {
			uint64_t id, prev_id = 0, pn;
			const unsigned char *ids = val.mv_data;

			if (key.mv_size == 8)
				memcpy(&id, key.mv_data, 8);
			if (prev.mv_data)
				memcpy(&prev_id, prev.mv_data, 8);
			if (key.mv_size != 8 || val.mv_size < 8 || val.mv_size % 8 ||
			    (prev.mv_data && id <= prev_id)) {
				rc = damaged(w->why, w->n, "the free-page list's record %" PRIu64
					     " is malformed", count);
				break;
			}
			/*
			 * LMDB reserves the free list's records before it fills
			 * them, lowest first, and may leave the last ones with
			 * fewer ids than room (mdb_freelist_save): its readers
			 * use the count, so do we.
			 */
			memcpy(&pn, ids, 8);
			if (pn > val.mv_size / 8 - 1) {
				rc = damaged(w->why, w->n, "the free-page list's record %" PRIu64
					     " counts %" PRIu64 " pages in %zu bytes", count, pn,
					     val.mv_size);
				break;
			}
			for (uint64_t i = 1; i <= pn && !rc; i++) {
				uint64_t pg;

				memcpy(&pg, ids + 8 * i, 8);
				if (pg < LMDB_METAS || pg > last_pg)
					rc = damaged(w->why, w->n, "the free-page list holds page %"
						     PRIu64 ", not in 2..%" PRIu64, pg, last_pg);
				else if (w->owner && pg < w->npages && w->owner[pg])
					rc = damaged(w->why, w->n, "the free-page list holds page %"
						     PRIu64 " twice, or one of its own", pg);
				else if (w->owner && pg < w->npages)
					w->owner[pg] = PG_FREE;
			}
			if (rc)
				break;
			w->pages += pn;		/* free pages count as used here */
		} else if (prev.mv_data && key_cmp(&prev, &key) >= 0) {
			rc = damaged(w->why, w->n, "the %s database's keys are out of order", what);
			break;
		}
		prev = key;
	}
	rc = ix_scan_close(&s, rc);
	if (rc)
		return rc;
	if (leaf_done(w, what))
		return -EUCLEAN;
	return count == ms.ms_entries ? 0 :
	       damaged(w->why, w->n, "the %s database holds %" PRIu64 " entries, its record"
		       " says %zu", what, count, ms.ms_entries);
}

/* The walk's child: say why, and exit with its verdict. */
enum { WALK_OK = 0, WALK_DAMAGED = 10, WALK_ERROR = 11, WALK_CRASHED = 12 };
static int walk_pipe = -1;

static void walk_say(const char *msg)
{
	if (write(walk_pipe, msg, strlen(msg)) < 0)
		_exit(WALK_ERROR);
}

/*
 * The verdict goes down the pipe too, after a NUL: a parent that inherited
 * SIGCHLD ignored (it survives exec) reaps no status (ECHILD), and a child
 * that ends without it crashed.
 */
static void walk_exit(int verdict)
{
	char end[2] = { '\0', (char)verdict };

	if (write(walk_pipe, end, 2) < 0)
		_exit(WALK_ERROR);
	_exit(verdict);
}

static void walk_crashed(int sig)
{
	walk_say(sig == SIGBUS ? "reading it crashed (SIGBUS: a page past the end of the file)" :
		 sig == SIGSEGV ? "reading it crashed (SIGSEGV: a page number off the map)" :
		 "reading it crashed");
	walk_exit(WALK_CRASHED);
}

static void walk_assert(MDB_env *env, const char *msg)
{
	walk_say("LMDB's own check failed reading it: ");
	walk_say(msg);
	walk_exit(WALK_CRASHED);
}

static const char *const db_names[] = {
	"meta", "tasks", "names", "types", "tids", "fen", "tgs", "kty", "kt", "tt",
	"dirty", "purge", "trim",
};

/*
 * Open the environment in @dir read-only and read all of it: every
 * database (only ours may be there, "meta" must be, with its records), and
 * every page accounted for (trees, free list and metas add up to the last
 * page, as LMDB's own audit counts them) unless @live (another process
 * may write meanwhile).  0, -EUCLEAN (@why) or an MDB code.
 */
/*
 * Each type and its id name each other: a name one flipped bit changed
 * ("a.y.z" to "a>y.z") is well-formed LMDB, but the views of its prefixes
 * would silently lack its events and another prefix would serve them.
 */
static int walk_types(MDB_txn *txn, char *why, size_t n)
{
	MDB_dbi types, tids;
	struct ix_scan s;
	size_t ntypes = 0;
	MDB_stat ms;
	int rc;

	rc = mdb_dbi_open(txn, "types", 0, &types);
	if (!rc)
		rc = mdb_dbi_open(txn, "tids", 0, &tids);
	if (rc == MDB_NOTFOUND)
		return 0;	/* a store with no type yet */
	if (!rc)
		rc = ix_scan_open(&s, txn, types, NULL, 0, 0);
	if (rc)
		return rc;
	while (ix_scan_next(&s)) {
		const MDB_val key = s.key, val = s.val;
		struct type_rec r;
		unsigned char k[4];
		MDB_val tk = { 4, k }, tv;

		if (val.mv_size != sizeof(r)) {
			rc = damaged(why, n, "a type record of %zu bytes", val.mv_size);
			break;
		}
		memcpy(&r, val.mv_data, sizeof(r));
		put_be32(k, r.tid);
		rc = mdb_get(txn, tids, &tk, &tv);
		if (rc == MDB_NOTFOUND || (!rc && (tv.mv_size != key.mv_size ||
						   memcmp(tv.mv_data, key.mv_data, key.mv_size)))) {
			rc = damaged(why, n, "type \"%.*s\" and its id %" PRIu32 " do not name "
				     "each other", (int)(key.mv_size > 64 ? 64 : key.mv_size),
				     (const char *)key.mv_data, r.tid);
			break;
		}
		if (rc)
			break;
		ntypes++;
	}
	rc = ix_scan_close(&s, rc);
	if (rc)
		return rc;
	rc = mdb_stat(txn, tids, &ms);
	if (!rc && ms.ms_entries != ntypes)
		rc = damaged(why, n, "%zu type ids for %zu types", (size_t)ms.ms_entries, ntypes);
	return rc;
}

static int walk_next(MDB_txn *txn, const struct index_meta *m, char *why, size_t n);

/*
 * The task records against the live totals of the meta record: every batch
 * writes both in one transaction, so they add up in any snapshot.  A
 * record whose lengths a flipped bit changed (the structure walk cannot
 * tell) would have the recovery replay the task's events at a wrong
 * offset, or set it aside and send them to events.unapplied.
 */
static int walk_tasks(MDB_txn *txn, char *why, size_t n)
{
	struct index_meta m;
	uint64_t tasks = 0, events = 0, bytes = 0;
	MDB_dbi meta, tdb, names;
	struct ix_scan s;
	MDB_stat ms;
	bool have_names;
	MDB_val key = { 4, "meta" }, val;
	int rc;

	rc = mdb_dbi_open(txn, "meta", 0, &meta);
	if (!rc)
		rc = mdb_get(txn, meta, &key, &val);
	if (rc)
		return rc == MDB_NOTFOUND ? 0 : rc;	/* walk_index's to say */
	if (val.mv_size < sizeof(m))
		return 0;
	memcpy(&m, val.mv_data, sizeof(m));
	rc = mdb_dbi_open(txn, "tasks", 0, &tdb);
	if (rc)
		return rc == MDB_NOTFOUND ? 0 : rc;	/* a store with no task yet */
	rc = mdb_dbi_open(txn, "names", 0, &names);
	have_names = !rc;	/* none: every live task is damage */
	if (rc && rc != MDB_NOTFOUND)
		return rc;
	rc = ix_scan_open(&s, txn, tdb, NULL, 0, 0);
	if (rc)
		return rc;
	while (ix_scan_next(&s)) {
		struct index_task t;
		uint64_t uid;
		MDB_val nk, nv;

		key = s.key;
		val = s.val;
		uid = key.mv_size == 8 ? get_be64(key.mv_data) : 0;
		if (!uid || ix_task_decode(&val, uid, &t)) {
			rc = damaged(why, n, "a task record of %zu bytes (key of %zu)", val.mv_size,
				     key.mv_size);
			break;
		}
		if (t.state != TASK_LIVE)
			continue;
		/* an event is one byte at least: a line */
		if (t.base_len > t.log_len || t.base_n > t.nevents ||
		    t.nevents - t.base_n > t.log_len - t.base_len ||
		    (t.nevents == t.base_n) != (t.log_len == t.base_len)) {
			rc = damaged(why, n, "task \"%s\" (uid %" PRIu64 ") has %" PRIu64 " events "
				     "in %" PRIu64 " bytes (retention dropped %" PRIu64 " in %" PRIu64
				     ")", t.name, uid, t.nevents, t.log_len, t.base_n, t.base_len);
			break;
		}
		/*
		 * Its name and uid name each other: a name damage changed ("t3"
		 * read as "t#", or zeroed) points at a directory that is not the
		 * task's; the recovery would set the task aside and its journaled
		 * events would have nowhere to go.
		 */
		nk = (MDB_val){ t.name_len, t.name };
		rc = t.name_len && have_names ? mdb_get(txn, names, &nk, &nv) : MDB_NOTFOUND;
		if (rc == MDB_NOTFOUND || (!rc && (nv.mv_size != 8 || memcmp(nv.mv_data, &uid, 8)))) {
			rc = damaged(why, n, "task \"%.*s\" and its uid %" PRIu64 " do not name each "
				     "other", (int)(t.name_len > 64 ? 64 : t.name_len), t.name, uid);
			break;
		}
		if (rc)
			break;
		tasks++;
		events += t.nevents - t.base_n;
		bytes += t.log_len - t.base_len;
	}
	rc = ix_scan_close(&s, rc);
	if (rc)
		return rc;
	ms.ms_entries = 0;
	rc = have_names ? mdb_stat(txn, names, &ms) : 0;
	if (rc)
		return rc;
	if (ms.ms_entries != tasks)
		return damaged(why, n, "%zu task names for %" PRIu64 " live tasks",
			       (size_t)ms.ms_entries, tasks);
	if (tasks != m.tasks || events != m.events || bytes != m.log_bytes)
		return damaged(why, n, "the task records add up to %" PRIu64 " tasks, %" PRIu64
			       " events, %" PRIu64 " bytes; the totals say %" PRIu64 ", %" PRIu64
			       ", %" PRIu64, tasks, events, bytes, m.tasks, m.events, m.log_bytes);
	return walk_next(txn, &m, why, n);
}

/*
 * The meta record's counters against what the index holds: a flipped bit
 * that lowers next_gseq, next_uid or next_tid (the structure walk cannot
 * tell) would hand out a gseq, a task uid or a type id in use already:
 * two events of one gseq in the views, two tasks or two types of one id.
 * O(types * log n): the last tgs key of each type.
 */
static int walk_next(MDB_txn *txn, const struct index_meta *m, char *why, size_t n)
{
	uint64_t max_uid = 0, max_gseq = 0;
	uint32_t max_tid = 0, next_tid = 0;
	MDB_dbi tdb, tids, tgs, meta;
	MDB_cursor *c = NULL, *g = NULL;
	struct ix_scan s = { .c = NULL };
	MDB_val key, val;
	int rc;

	rc = mdb_dbi_open(txn, "tasks", 0, &tdb);
	if (!rc)
		rc = mdb_cursor_open(txn, tdb, &c);
	if (!rc) {
		rc = mdb_cursor_get(c, &key, &val, MDB_LAST);
		if (!rc && key.mv_size == 8)
			max_uid = get_be64(key.mv_data);
		mdb_cursor_close(c);
		c = NULL;
	}
	if (rc && rc != MDB_NOTFOUND)
		return rc;
	rc = mdb_dbi_open(txn, "tids", 0, &tids);
	if (!rc)
		rc = mdb_dbi_open(txn, "tgs", 0, &tgs);
	if (!rc)
		rc = ix_scan_open(&s, txn, tids, NULL, 0, 0);
	if (!rc)
		rc = mdb_cursor_open(txn, tgs, &g);
	while (!rc && ix_scan_next(&s)) {
		unsigned char k[12] = { 0 };
		MDB_val gk = { sizeof(k), k }, gv;
		uint32_t tid;

		if (s.key.mv_size != 4)
			continue;	/* walk_types' to say */
		tid = get_be32(s.key.mv_data);
		if (tid > max_tid)
			max_tid = tid;
		/* the type's last entry: the one before the next type's first */
		put_be32(k, tid + 1);
		rc = tid == UINT32_MAX ? MDB_NOTFOUND : mdb_cursor_get(g, &gk, &gv, MDB_SET_RANGE);
		rc = ix_seek_back(g, rc, &gk, &gv);
		if (rc == MDB_NOTFOUND) {
			rc = 0;
			continue;
		}
		if (!rc && gk.mv_size == 12 && get_be32(gk.mv_data) == tid &&
		    get_be64((const unsigned char *)gk.mv_data + 4) > max_gseq)
			max_gseq = get_be64((const unsigned char *)gk.mv_data + 4);
	}
	if (g)
		mdb_cursor_close(g);
	rc = ix_scan_close(&s, rc);
	if (rc && rc != MDB_NOTFOUND)
		return rc;
	key = (MDB_val){ 8, "next_tid" };
	rc = mdb_dbi_open(txn, "meta", 0, &meta);
	if (!rc)
		rc = mdb_get(txn, meta, &key, &val);
	if (!rc && val.mv_size == sizeof(next_tid))
		memcpy(&next_tid, val.mv_data, sizeof(next_tid));
	if (max_gseq && m->next_gseq <= max_gseq)
		return damaged(why, n, "the next gseq is %" PRIu64 ", but gseq %" PRIu64 " is in "
			       "use", m->next_gseq, max_gseq);
	if (max_uid && m->next_uid <= max_uid)
		return damaged(why, n, "the next task uid is %" PRIu64 ", but uid %" PRIu64
			       " is in use", m->next_uid, max_uid);
	if (max_tid && next_tid <= max_tid)
		return damaged(why, n, "the next type id is %" PRIu32 ", but type id %" PRIu32
			       " is in use", next_tid, max_tid);
	return 0;
}

static int walk_index(const char *dir, bool live, char *why, size_t n)
{
	struct walk w = { .why = why, .n = n };
	MDB_env *env;
	MDB_txn *txn = NULL;
	struct ix_scan s = { .c = NULL };
	MDB_envinfo info;
	MDB_dbi main_dbi;
	bool seen[sizeof(db_names) / sizeof(*db_names)] = { false };
	size_t mapsize = ix_map_initial;
	char path[DD_PATH_MAX];
	struct stat st;
	int rc;

	if (dd_join(path, dir, DD_MDB_DATA))
		return ENAMETOOLONG;	/* LMDB's convention here, as below */
	if (stat(path, &st))
		return errno;
	while (mapsize < (size_t)st.st_size * 2)
		mapsize *= 2;
	rc = mdb_env_create(&env);
	if (rc)
		return rc;
	mdb_env_set_maxdbs(env, 16);
	mdb_env_set_mapsize(env, mapsize);
	if (walk_pipe >= 0)
		mdb_env_set_assert(env, walk_assert);
	/* the caller holds the store's lock: no reader table, the lock file untouched */
	rc = mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS | (live ? 0 : MDB_NOLOCK), 0644);
	/* the snapshot first: a live writer's later commit only makes the bounds looser */
	if (!rc)
		rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
	if (!rc)
		rc = mdb_env_info(env, &info);
	if (!rc) {
		MDB_stat es;

		rc = mdb_env_stat(env, &es);
		w.psize = es.ms_psize;
		w.npages = (uint64_t)info.me_last_pgno + 1;
		if (!rc && w.psize && !(w.psize & (w.psize - 1))) {
			w.owner = calloc(w.npages, 1);
			if (!w.owner)
				rc = ENOMEM;
		}
	}
	if (!rc)
		rc = walk_db(txn, 0, "free-page", info.me_last_pgno, PG_TREE, &w);
	if (!rc)
		rc = mdb_dbi_open(txn, NULL, 0, &main_dbi);
	if (!rc)
		rc = walk_db(txn, main_dbi, "main", info.me_last_pgno, PG_TREE + 1, &w);
	if (!rc)
		rc = ix_scan_open(&s, txn, main_dbi, NULL, 0, 0);
	while (!rc && ix_scan_next(&s)) {
		const MDB_val key = s.key;
		char name[64];
		MDB_dbi dbi;
		size_t i;

		for (i = 0; i < sizeof(db_names) / sizeof(*db_names); i++)
			if (key.mv_size == strlen(db_names[i]) &&
			    !memcmp(key.mv_data, db_names[i], key.mv_size))
				break;
		if (i == sizeof(db_names) / sizeof(*db_names)) {
			rc = damaged(why, n, "the main database holds an unknown name (%zu bytes)",
				     key.mv_size);
			break;
		}
		seen[i] = true;
		snprintf(name, sizeof(name), "%s", db_names[i]);
		rc = mdb_dbi_open(txn, name, 0, &dbi);
		if (!rc)
			rc = walk_db(txn, dbi, name, info.me_last_pgno, PG_TREE + 2 + i, &w);
		if (!rc && i == 0) {
			const char *need[] = { "meta", "type_field", "version" };

			for (size_t j = 0; j < 3 && !rc; j++) {
				MDB_val k = { strlen(need[j]), (void *)need[j] }, v;

				rc = mdb_get(txn, dbi, &k, &v);
				if (rc == MDB_NOTFOUND ||
				    (!rc && j == 0 && v.mv_size < sizeof(struct index_meta)))
					rc = damaged(why, n, "the meta database lacks its %s record",
						     need[j]);
			}
		}
	}
	if (!rc)
		rc = s.err ? s.err : seen[0] ? 0 : damaged(why, n, "the meta database is gone");
	if (!rc)
		rc = walk_types(txn, why, n);
	if (!rc)
		rc = walk_tasks(txn, why, n);
	if (!rc && !live && w.pages + LMDB_METAS != info.me_last_pgno + 1)
		rc = damaged(why, n, "%" PRIu64 " pages in use or free, but the last page is %zu",
			     w.pages + LMDB_METAS, info.me_last_pgno);
	ix_scan_close(&s, 0);
	if (txn)
		mdb_txn_abort(txn);
	mdb_env_close(env);
	free(w.owner);
	return rc;
}

static void walk_child(const char *dir, bool live)
{
	struct sigaction sa = { .sa_handler = walk_crashed };
	char why[256] = "";
	int rc;

	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGABRT, &sa, NULL);
	rc = walk_index(dir, live, why, sizeof(why));
	if (!rc)
		walk_exit(WALK_OK);
	if (rc == -EUCLEAN) {
		walk_say(why);
		walk_exit(WALK_DAMAGED);
	}
	if (rc >= MDB_KEYEXIST && rc <= MDB_LAST_ERRCODE && rc != MDB_MAP_RESIZED &&
	    rc != MDB_READERS_FULL) {
		walk_say(mdb_strerror(rc));	/* MDB_CORRUPTED, MDB_PAGE_NOTFOUND, ... */
		walk_exit(WALK_DAMAGED);
	}
	walk_say(rc > 0 ? strerror(rc) : "cannot read it");
	walk_exit(WALK_ERROR);
}

int index_verify(const char *dir, bool live, char *why, size_t n)
{
	char msg[512], buf[256], tail[2] = { 1, 0 };
	size_t got = 0, seen = 0;
	ssize_t r;
	int fds[2], status, rc, verdict = -1;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC))
		return -errno;
	pid = fork();
	if (pid < 0) {
		rc = -errno;
		close(fds[0]);
		close(fds[1]);
		return rc;
	}
	if (pid == 0) {
		/*
		 * Only the pipe: the store's lock (a flock shared with the
		 * parent) must not outlive a parent killed during the walk.
		 */
		if (fds[1] > 3)
			close_range(3, fds[1] - 1, 0);
		close_range(fds[1] + 1, ~0U, 0);
		walk_pipe = fds[1];
		walk_child(dir, live);
		_exit(WALK_ERROR);
	}
	close(fds[1]);
	for (;;) {
		r = read(fds[0], buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		for (ssize_t i = 0; i < r; i++) {
			if (got < sizeof(msg) - 1)
				msg[got++] = buf[i];
			tail[0] = tail[1];
			tail[1] = buf[i];
			seen++;
		}
	}
	close(fds[0]);
	if (seen >= 2 && tail[0] == '\0') {
		verdict = (unsigned char)tail[1];
		got = got >= seen ? got - 2 : got;	/* the message without the verdict */
	}
	msg[got] = '\0';
	while (waitpid(pid, &status, 0) < 0) {
		if (errno == EINTR)
			continue;
		if (errno != ECHILD)
			return -errno;
		/* reaped by the kernel (SIGCHLD ignored): the pipe's verdict only */
		status = verdict >= 0 ? verdict << 8 : SIGKILL;
		break;
	}
	if (verdict < 0 && WIFEXITED(status))
		verdict = WALK_CRASHED;	/* it ended without a verdict */
	if (verdict == WALK_OK)
		return 0;
	if (verdict == WALK_ERROR) {
		snprintf(why, n, "%s", msg);
		return -EIO;
	}
	if (verdict < 0 && WIFSIGNALED(status))
		return damaged(why, n, "reading it crashed (%s)", strsignal(WTERMSIG(status)));
	return damaged(why, n, "%s", got ? msg : "reading it crashed");
}
