/*
 * index.c - the LMDB index: the environment (open, close, growth,
 * shrinking, sync), transactions, the boot and stamp records, snapshots;
 * and the schema.  The other files of the index, each calling only those
 * listed after it:
 *
 *   index_verify.c  damage checks of the file before LMDB maps it
 *   index_check.c   checking and rebuilding a type (fsck, reindex)
 *   index_task.c    tasks, deletion and purge, the dirty set, retention
 *   index_type.c    types, their Fenwick trees, adding events, views
 *   index_db.c      LMDB's codes to -errno, one entry's access, scans, the
 *                   meta record and a task by uid (index_i.h)
 *
 * SCHEMA (named databases; keys big-endian so LMDB order is numeric order;
 * values are packed host-order structs: the index is derived data, rebuilt
 * from logs and sidecars, never copied between machines)
 *
 *   meta   "meta" -> struct index_meta; "type_field"; "version"; "next_tid";
 *          "boot" -> the boot id the task files were last written under";
 *          "stamp" -> store id(8), generation(8) (stamp.c)
 *   tasks  uid(8)                 -> task_val (state, lengths, times, name),
 *                                    then base_len, base_n, then owner uid,
 *                                    gid, mode (each part optional)
 *   names  name                   -> uid            (live tasks only)
 *   types  name                   -> type_rec (tid, next_ord, fen_total, live)
 *   tids   tid(4)                 -> name
 *   fen    tid(4) i(8)            -> fen_val: Fenwick node i of the type's
 *                                    event lengths by ordinal, plus the gseq
 *                                    of the event with ordinal i - 1
 *   tgs    tid(4) gseq(8)         -> tgs_val (ordinal, task, log offset, len)
 *   kty    uid(8) tid(4) gseq(8)  -> kty_val (bytes of this task+type before
 *                                    it, log offset, ordinal, len)
 *   kt     uid(8) tid(4)          -> cnt_val (events, bytes, base: head
 *                                    bytes dropped that kty's cum counts)
 *   tt     tid(4) uid(8)          -> cnt_val (the same, keyed by type)
 *   dirty  uid(8)                 -> log length and events at first change
 *                                    since the last checkpoint
 *   purge  uid(8)                 -> deleted tasks whose entries remain
 *   trim   uid(8)                 -> retain_val: retention of the task's head
 *                                    under way (see retain.c; the database
 *                                    keeps its first name, on disk)
 *
 * COMPLEXITY
 * - listing types: one pass over `types`; resolving a prefix: one range
 *   scan of `types` from the prefix.
 * - a type's events in commit order: a range of `tgs`.  A view of several
 *   types merges one cursor per type.  One task's matches: ranges of `kty`.
 * - byte offset -> event: each type carries a Fenwick tree over its event
 *   lengths (by ordinal), so "bytes of type t before ordinal k" costs
 *   O(log n) lookups and is updated in O(log n) when an event is removed.
 *   Bytes of a view before gseq g = sum over its types of the Fenwick prefix
 *   up to the first ordinal at or after g (one `tgs` range seek), minus what
 *   deleted-but-not-yet-purged tasks hold before g (one `kty` seek each).
 *   That is monotone in g, so a binary search over g finds the event holding
 *   any offset: O(log(gseq) * types * log n).  A single type with nothing
 *   pending purge descends its Fenwick tree directly: O(log n).
 *   Nothing is materialised; sizes come from the counters in `types`/`kt`.
 * - deleting a task: one transaction marks it deleted and subtracts its
 *   per-type counts (O(types of the task)); its entries are then purged in
 *   bounded steps, newest first per type, so the cumulative byte counts of
 *   what remains stay exact while views subtract it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <fcntl.h>
#include <unistd.h>

#include <lmdb.h>

#include "datadir.h"
#include "index_i.h"
#include "io.h"
#include "log.h"

#define INDEX_VERSION 1
size_t ix_map_initial = 256u << 20;

void index_set_map_initial(size_t bytes)
{
	ix_map_initial = bytes;
}

/* ---- open / close / transactions ---- */

/*
 * An LMDB assertion is about to abort the process: the index is damaged in
 * a way the checks at open did not see.  Say what cures it.
 */
static void lmdb_assert(MDB_env *env, const char *msg)
{
	const char *path = NULL;

	mdb_env_get_path(env, &path);
	evl_log(LOG_CRIT, "index %s is damaged (%s): the process stops; evlogctl reindex"
		" rebuilds the index from the task logs", path ? path : "?", msg);
}

/*
 * The meta records of a new index (its type field, version and counters),
 * or a check that an existing one was built with @type_field (NULL: any).
 * In the transaction that creates the databases, so that no crash leaves
 * an index with databases but without them (the walk calls that damage).
 * 0, EINVAL (another type field: logged) or an LMDB error.
 */
static int meta_init(struct index *ix, MDB_txn *txn, const char *type_field)
{
	MDB_val key = { strlen("type_field"), "type_field" }, val;
	int rc = mdb_get(txn, ix->meta, &key, &val);

	if (rc == MDB_NOTFOUND) {
		uint32_t version = INDEX_VERSION;
		struct index_meta m = { .next_gseq = 1, .next_uid = 1 };

		if (!type_field)
			type_field = "type";
		val.mv_data = (void *)type_field;
		val.mv_size = strlen(type_field);
		rc = mdb_put(txn, ix->meta, &key, &val, 0);
		key.mv_data = "version";
		key.mv_size = 7;
		val.mv_data = &version;
		val.mv_size = sizeof(version);
		rc = rc ? rc : mdb_put(txn, ix->meta, &key, &val, 0);
		key.mv_data = "meta";
		key.mv_size = 4;
		val.mv_data = &m;
		val.mv_size = sizeof(m);
		return rc ? rc : mdb_put(txn, ix->meta, &key, &val, 0);
	}
	if (rc)
		return rc;
	if (type_field && (val.mv_size != strlen(type_field) ||
			   memcmp(val.mv_data, type_field, val.mv_size))) {
		evl_log(LOG_ERR, "index %s: store was built with type_field=%.*s, not %s",
			ix->path, (int)val.mv_size, (char *)val.mv_data, type_field);
		return EINVAL;
	}
	return 0;
}

/*
 * Create and open ix->env at ix->path with ix->mapsize, and open every
 * database; writable, with its meta records (meta_init, @type_field).
 */
static int env_open(struct index *ix, const char *type_field)
{
	MDB_txn *txn = NULL;
	int rc, dead;
	struct {
		const char *name;
		MDB_dbi *dbi;
	} dbs[] = {
		{ "meta", &ix->meta }, { "tasks", &ix->tasks }, { "names", &ix->names },
		{ "types", &ix->types }, { "tids", &ix->tids }, { "fen", &ix->fen },
		{ "tgs", &ix->tgs }, { "kty", &ix->kty }, { "kt", &ix->kt }, { "tt", &ix->tt },
		{ "dirty", &ix->dirty }, { "purge", &ix->purge }, { "trim", &ix->retain },
	};

	rc = mdb_env_create(&ix->env);
	if (rc)
		return rc;
	mdb_env_set_maxdbs(ix->env, 16);
	mdb_env_set_maxreaders(ix->env, 1024);
	mdb_env_set_mapsize(ix->env, ix->mapsize);
	mdb_env_set_assert(ix->env, lmdb_assert);
	/*
	 * NOMETASYNC: data pages are synced at each commit, the meta page at
	 * the next one, so a power loss can undo the last commit but never
	 * corrupts the environment.  The journal covers what an undo loses.
	 * Read-only (fsck): the caller holds the store's lock, so no reader
	 * table either, and nothing of the index is written.
	 */
	rc = mdb_env_open(ix->env, ix->path, ix->rdonly ? MDB_NOTLS | MDB_RDONLY | MDB_NOLOCK :
			  MDB_NOTLS | MDB_NOMETASYNC, 0644);
	if (!rc && !ix->rdonly)
		rc = mdb_reader_check(ix->env, &dead);
	if (!rc)
		rc = mdb_txn_begin(ix->env, NULL, ix->rdonly ? MDB_RDONLY : 0, &txn);
	for (size_t i = 0; !rc && i < sizeof(dbs) / sizeof(*dbs); i++) {
		rc = mdb_dbi_open(txn, dbs[i].name, ix->rdonly ? 0 : MDB_CREATE, dbs[i].dbi);
		/* an index made before retention: no intent (a writer adds the database) */
		if (rc == MDB_NOTFOUND && dbs[i].dbi == &ix->retain) {
			ix->retain = NO_DBI;
			rc = 0;
		}
		if (rc == MDB_NOTFOUND)
			evl_log(LOG_ERR, "index %s lacks its %s database (made by an older evlogfs,"
				" or damaged)", ix->path, dbs[i].name);
	}
	if (!rc && !ix->rdonly)
		rc = meta_init(ix, txn, type_field);
	if (!rc)
		rc = mdb_txn_commit(txn);	/* read-only too: keeps the handles */
	else if (txn)
		mdb_txn_abort(txn);
	if (rc) {
		mdb_env_close(ix->env);
		ix->env = NULL;
	}
	return rc;
}

/*
 * A damaged index is refused before LMDB maps it (see "damage checks"):
 * the caller reports it, and evlogctl reindex builds a new one beside it.
 */
static int check_damage(const char *dir)
{
	char why[512] = "", data[DD_PATH_MAX];
	size_t len = strlen(dir);
	int rc;

	rc = index_check_file(dir, why, sizeof(why));
	if (!rc)
		rc = index_verify(dir, false, why, sizeof(why));
	if (rc == -EUCLEAN) {
		/* the data directory, for the command to run */
		size_t cut = sizeof("/" DD_INDEX) - 1;

		if (len > cut && !strcmp(dir + len - cut, "/" DD_INDEX))
			len -= cut;
		snprintf(data, sizeof(data), "%.*s", (int)len, dir);
		evl_log(LOG_ERR, "index %s/" DD_MDB_DATA " is damaged: %s; nothing is served from it:"
			" evlogctl reindex %s builds a new one from the task logs", dir, why, data);
	} else if (rc && rc != -ENOENT) {
		evl_log(LOG_ERR, "index %s: cannot check it: %s%s%s", dir, strerror(-rc),
			*why ? ": " : "", why);
	}
	return rc;
}

int index_open(const char *dir, const char *type_field, struct index **out)
{
	return index_open_ex(dir, type_field, 0, out);
}

int index_open_ex(const char *dir, const char *type_field, unsigned flags, struct index **out)
{
	struct index *ix;
	char path[DD_PATH_MAX];
	bool created = false;
	int rc;

	if (!(flags & INDEX_RDONLY) && io_mkdir_durable(dir, 0755))
		return -errno;
	if (!(flags & INDEX_RDONLY)) {
		/* a shrink cut short by a crash: its copy was never swapped in */
		if (dd_join(path, dir, DD_MDB_COMPACT))
			return -ENAMETOOLONG;
		io->unlink(path);
	}
	rc = check_damage(dir);
	if (rc == -ENOENT && !(flags & INDEX_RDONLY))
		created = true;
	else if (rc)
		return rc;
	ix = calloc(1, sizeof(*ix));
	if (!ix)
		return -ENOMEM;
	ix->rdonly = flags & INDEX_RDONLY;
	ix->path = strdup(dir);
	if (!ix->path) {
		free(ix);
		return -ENOMEM;
	}
	ix->mapsize = ix_map_initial;
	if (!created)
		while (ix->mapsize < index_file_bytes(ix) * 2)
			ix->mapsize *= 2;
	rc = env_open(ix, type_field);
	if (rc)
		goto fail_mdb;
	/* LMDB syncs its files, never their directory: a power loss could lose a new one */
	if (created && io_fsync_dir(dir)) {
		rc = -errno;
		goto fail;
	}
	{
		pthread_rwlockattr_t a;

		pthread_rwlockattr_init(&a);
		pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
		pthread_rwlock_init(&ix->resize, &a);
		pthread_rwlockattr_destroy(&a);
	}
	*out = ix;
	return 0;
fail_mdb:
	if (rc == EINVAL) {
		rc = -EINVAL;	/* another type_field (said), or a bad argument */
		goto fail;
	}
	evl_log(LOG_ERR, "index %s: %s", dir, mdb_strerror(rc));
	rc = ix_err(rc);
fail:
	if (ix->env)
		mdb_env_close(ix->env);
	free(ix->path);
	free(ix);
	return rc;
}

int index_usage(struct index *ix, uint64_t *used, uint64_t *file)
{
	MDB_dbi dbis[] = { 0, ix->meta, ix->tasks, ix->names, ix->types, ix->tids, ix->fen,
			   ix->tgs, ix->kty, ix->kt, ix->tt, ix->dirty, ix->purge, ix->retain };
	MDB_txn *txn;
	MDB_envinfo info;
	MDB_stat ms;
	int rc;

	pthread_rwlock_rdlock(&ix->resize);
	rc = mdb_txn_begin(ix->env, NULL, MDB_RDONLY, &txn);
	*used = 0;
	for (size_t i = 0; !rc && i < sizeof(dbis) / sizeof(*dbis); i++) {
		if (dbis[i] == NO_DBI)
			continue;
		rc = mdb_stat(txn, dbis[i], &ms);
		if (!rc)
			*used += (ms.ms_branch_pages + ms.ms_leaf_pages + ms.ms_overflow_pages) *
				 (uint64_t)ms.ms_psize;
	}
	if (!rc) {
		mdb_txn_abort(txn);
		rc = mdb_env_info(ix->env, &info);
	}
	pthread_rwlock_unlock(&ix->resize);
	*file = index_file_bytes(ix);
	return ix_err(rc);
}

/* A sync of the index failed: a later one proves nothing (index_sync_failed). */
static void sync_failed(struct index *ix)
{
	if (!atomic_exchange(&ix->sync_failed, true) && ix->failed_fn)
		ix->failed_fn(ix->failed_arg);
}

int index_shrink(struct index *ix)
{
	char tmp[DD_PATH_MAX], path[DD_PATH_MAX];
	int fd, rc;

	if (atomic_load(&ix->sync_failed))
		return -EIO;	/* the file on disk may lack what a failed sync dropped */
	if (dd_join(path, ix->path, DD_MDB_DATA) || dd_join(tmp, ix->path, DD_MDB_COMPACT))
		return -ENAMETOOLONG;
	fd = io->open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -errno;
	/* the caller is the only writer and writes nothing meanwhile */
	pthread_rwlock_rdlock(&ix->resize);
	rc = ix_err(mdb_env_copyfd2(ix->env, fd, MDB_CP_COMPACT));
	pthread_rwlock_unlock(&ix->resize);
	if (!rc && io->fsync(fd))
		rc = -errno;
	io->close(fd);
	if (rc) {
		io->unlink(tmp);
		return rc;
	}
	/* swap it in while no transaction is open anywhere */
	pthread_rwlock_wrlock(&ix->resize);
	mdb_env_close(ix->env);
	ix->env = NULL;
	if (io->rename(tmp, path))
		rc = -errno;
	{
		int orc = env_open(ix, NULL);	/* the old file if the rename failed */

		if (orc) {
			evl_log(LOG_CRIT, "index %s: cannot reopen after shrinking: %s", ix->path,
				mdb_strerror(orc));
			rc = ix_err(orc);
		}
	}
	pthread_rwlock_unlock(&ix->resize);
	/*
	 * Readers go on meanwhile: either file holds the same index.  But the
	 * commits go to the new one from now on: if its entry could be lost,
	 * so could they, whatever later syncs say.
	 */
	if (!rc && io_fsync_dir(ix->path)) {
		rc = -errno;
		evl_log(LOG_CRIT, "index %s: cannot sync the directory after shrinking: %s",
			ix->path, strerror(-rc));
		sync_failed(ix);
	}
	return rc;
}

void index_close(struct index *ix)
{
	if (!ix)
		return;
	mdb_env_close(ix->env);
	pthread_rwlock_destroy(&ix->resize);
	free(ix->path);
	free(ix);
}

int index_sync(struct index *ix)
{
	mdb_filehandle_t fd;
	int rc, failed = 0;

	if (atomic_load(&ix->sync_failed))
		return -EIO;
	/*
	 * What mdb_env_sync(env, 1) does for this environment (no WRITEMAP):
	 * an fsync of the data file, here through the I/O seam.
	 */
	pthread_rwlock_rdlock(&ix->resize);
	rc = ix_err(mdb_env_get_fd(ix->env, &fd));
	if (!rc && io->fsync(fd))
		rc = failed = -errno;
	pthread_rwlock_unlock(&ix->resize);
	if (failed) {
		evl_log(LOG_CRIT, "index %s: sync failed: %s", ix->path, strerror(-rc));
		sync_failed(ix);
	}
	if (!rc)
		io_mark("index synced");	/* the power-loss seam: nothing of it can be lost */
	return rc;
}

bool index_sync_failed(struct index *ix)
{
	return atomic_load(&ix->sync_failed);
}

void index_on_sync_failed(struct index *ix, void (*fn)(void *arg), void *arg)
{
	ix->failed_fn = fn;
	ix->failed_arg = arg;
}

int index_grow(struct index *ix)
{
	int rc;

	pthread_rwlock_wrlock(&ix->resize);
	rc = mdb_env_set_mapsize(ix->env, ix->mapsize * 2);
	if (!rc) {
		ix->mapsize *= 2;
		evl_log(LOG_INFO, "index map grown to %zu MiB", ix->mapsize >> 20);
	}
	pthread_rwlock_unlock(&ix->resize);
	return ix_err(rc);
}

uint64_t index_purge_count(struct index *ix)
{
	MDB_txn *txn;
	MDB_stat ms;
	uint64_t n = 0;

	pthread_rwlock_rdlock(&ix->resize);
	if (mdb_txn_begin(ix->env, NULL, MDB_RDONLY, &txn) == 0) {
		if (mdb_stat(txn, ix->purge, &ms) == 0)
			n = ms.ms_entries;
		mdb_txn_abort(txn);
	}
	pthread_rwlock_unlock(&ix->resize);
	return n;
}

uint64_t index_file_bytes(struct index *ix)
{
	char path[DD_PATH_MAX];
	struct stat st;

	if (dd_join(path, ix->path, DD_MDB_DATA))
		return 0;	/* unknown, as when stat fails */
	return stat(path, &st) ? 0 : (uint64_t)st.st_size;
}

int index_begin(struct index *ix, bool write, struct index_txn **out)
{
	struct index_txn *t = calloc(1, sizeof(*t));
	int rc;

	if (!t)
		return -ENOMEM;
	pthread_rwlock_rdlock(&ix->resize);
	rc = mdb_txn_begin(ix->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
	if (rc) {
		pthread_rwlock_unlock(&ix->resize);
		free(t);
		return ix_err(rc);
	}
	t->ix = ix;
	t->write = write;
	*out = t;
	return 0;
}

static void txn_free(struct index_txn *t)
{
	pthread_rwlock_unlock(&t->ix->resize);
	free(t->types);
	free(t);
}

void index_abort(struct index_txn *t)
{
	if (!t)
		return;
	mdb_txn_abort(t->txn);
	txn_free(t);
}

int index_commit(struct index_txn *t)
{
	size_t id;
	int rc = 0;

	if (!t->write) {
		mdb_txn_abort(t->txn);
		txn_free(t);
		return 0;
	}
	for (size_t i = 0; i < t->ntypes && !rc; i++) {
		struct type_ent *e = &t->types[i];

		if (e->dirty)
			rc = ix_put_val(t, t->ix->types, e->name, e->len, &e->rec, sizeof(e->rec));
	}
	if (!rc && t->next_tid)
		rc = ix_put_val(t, t->ix->meta, "next_tid", 8, &t->next_tid, sizeof(t->next_tid));
	if (rc) {
		index_abort(t);
		return rc;
	}
	id = mdb_txn_id(t->txn);
	rc = ix_err(mdb_txn_commit(t->txn));
	if (!rc && io->mark) {
		MDB_envinfo info;

		/*
		 * For the power-loss seam, a commit that wrote (an empty one
		 * does not): with MDB_NOMETASYNC a power loss may undo it.
		 */
		if (!mdb_env_info(t->ix->env, &info) && info.me_last_txnid == id)
			io_mark("index commit");
	}
	txn_free(t);
	return rc;
}

int index_get_boot(struct index_txn *t, char *buf, size_t n)
{
	MDB_val key = { 4, "boot" }, val;
	int rc = mdb_get(t->txn, t->ix->meta, &key, &val);

	buf[0] = '\0';
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return ix_err(rc);
	if (val.mv_size < n) {
		memcpy(buf, val.mv_data, val.mv_size);
		buf[val.mv_size] = '\0';
	}
	return 0;
}

int index_put_boot(struct index_txn *t, const char *boot)
{
	return ix_put_val(t, t->ix->meta, "boot", 4, boot, strlen(boot));
}

int index_get_stamp(struct index_txn *t, uint64_t *id, uint64_t *gen)
{
	uint64_t v[2];
	int rc = ix_get_val(t, t->ix->meta, "stamp", 5, v, sizeof(v));

	if (rc)
		return rc;
	*id = v[0];
	*gen = v[1];
	return 0;
}

int index_put_stamp(struct index_txn *t, uint64_t id, uint64_t gen)
{
	uint64_t v[2] = { id, gen };

	return ix_put_val(t, t->ix->meta, "stamp", 5, v, sizeof(v));
}

/* ---- snapshots (backup) ---- */

int index_install(const char *from, const char *to)
{
	char src[DD_PATH_MAX], dst[DD_PATH_MAX];

	if (dd_join(src, from, DD_MDB_DATA) || dd_join(dst, to, DD_MDB_DATA))
		return -ENAMETOOLONG;
	/* the lock file stays: the first process to open the environment resets it */
	if (io_mkdir_durable(to, 0755) || io->rename(src, dst) || io_fsync_dir(to))
		return -errno;
	if (dd_join(src, from, DD_MDB_LOCK))
		return -ENAMETOOLONG;
	if (io->unlink(src) && errno != ENOENT)
		return -errno;
	return io->rmdir(from) && errno != ENOENT ? -errno : 0;
}

int index_snapshot(const char *src, const char *dest)
{
	MDB_env *env;
	char path[DD_PATH_MAX], why[512] = "";
	int rc, fd;

	if (dd_join(path, src, DD_MDB_DATA))
		return -ENAMETOOLONG;
	if (access(path, R_OK))
		return -errno;
	/* the copy walks every page: a damaged page would kill this process */
	rc = index_verify(src, true, why, sizeof(why));
	if (rc) {
		evl_log(LOG_ERR, "index %s: %s%s%s", src, rc == -EUCLEAN ? "damaged: " : "",
			why, rc == -EUCLEAN ? "; evlogctl reindex (unmounted) rebuilds it" : "");
		return rc;
	}
	if (io_mkdir_durable(dest, 0755))
		return -errno;
	rc = mdb_env_create(&env);
	if (rc)
		return ix_err(rc);
	mdb_env_set_maxdbs(env, 16);
	/* a reader beside the daemon: the lock file is shared, the map follows the file */
	rc = mdb_env_open(env, src, MDB_RDONLY | MDB_NOTLS, 0644);
	if (!rc)
		rc = mdb_env_copy2(env, dest, MDB_CP_COMPACT);
	if (rc)
		evl_log(LOG_ERR, "index snapshot %s -> %s: %s", src, dest, mdb_strerror(rc));
	mdb_env_close(env);
	if (rc)
		return ix_err(rc);
	/* LMDB's copy is not synced: the caller renames it into place next */
	if (dd_join(path, dest, DD_MDB_DATA))
		return -ENAMETOOLONG;
	fd = io->open(path, O_RDONLY, 0);
	if (fd < 0 || io->fsync(fd) || io_fsync_dir(dest))
		rc = -errno;
	if (fd >= 0)
		io->close(fd);
	return rc;
}
