/*
 * stamp.c - the store's identity and generation, in DATA_DIR/stamp and in
 * the index, so that an index that does not describe the logs is refused.
 *
 * S1: DATA_DIR/stamp ("evlogfs-stamp <id> <generation>") and the index's
 * "stamp" hold the store's random id and a generation that each checkpoint
 * advances: the index first (committed and synced), the file after.  So
 * the index is always at the file's generation or one ahead (a crash
 * between the two), never behind.  An index that is missing or empty
 * (while tasks/ holds tasks), from another store, or behind the file (a
 * copy restored over newer logs) does not describe the logs: opening the
 * store with it would hand out gseqs again and empty logs on mkdir, so the
 * open refuses it and names evlogctl reindex, which builds one from the
 * logs.  The check reads one small file and one index key: no log.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "bytes.h"
#include "datadir.h"
#include "event.h"
#include "evlog.h"
#include "index.h"
#include "io.h"
#include "journal.h"
#include "linebuf.h"
#include "log.h"
#include "store.h"
#include "store_i.h"
#include "tasklog.h"


int store_stamp_read(const char *dir, uint64_t *id, uint64_t *gen)
{
	char path[DD_PATH_MAX], buf[96], tail;
	ssize_t n;
	int fd;

	if (dd_path(path, dir, DD_STAMP, NULL))
		return -ENAMETOOLONG;
	fd = io->open(path, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	n = io_pread_all(fd, buf, sizeof(buf) - 1, 0);
	io->close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	if (sscanf(buf, "evlogfs-stamp %16" SCNx64 " %20" SCNu64 "%c", id, gen, &tail) != 3 ||
	    tail != '\n' || strchr(buf, '\n') != buf + n - 1)
		return -EILSEQ;
	return 0;
}

int store_stamp_write(const char *dir, uint64_t id, uint64_t gen)
{
	char path[DD_PATH_MAX], tmp[DD_PATH_MAX], buf[96];
	int fd, n, err = 0;

	if (dd_path(path, dir, DD_STAMP, NULL) || dd_suffix(tmp, path, ".new"))
		return -ENAMETOOLONG;
	n = snprintf(buf, sizeof(buf), "evlogfs-stamp %016" PRIx64 " %" PRIu64 "\n", id, gen);
	fd = io->open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (io_pwrite_all(fd, buf, n, 0) || io->fsync(fd))
		err = errno;
	io->close(fd);
	if (!err && io->rename(tmp, path))
		err = errno;
	if (!err && io_fsync_dir(dir))
		err = errno;
	if (err)
		io->unlink(tmp);
	return -err;
}

/* Does DATA_DIR/tasks hold a task directory (a name without a leading dot)? */
static bool has_tasks(const char *dir)
{
	char path[DD_PATH_MAX];
	struct dirent *de;
	bool found = false;
	DIR *d;

	if (dd_path(path, dir, DD_TASKS, NULL))
		return true;			/* unknown, as below */
	d = opendir(path);
	if (!d)
		return errno != ENOENT;		/* unknown: assume there are */
	while (!found && (de = readdir(d)))
		found = de->d_name[0] != '.';
	closedir(d);
	return found;
}

int store_stamp_check(const char *dir, struct index *ix, struct store_stamp *s,
		      char *why, size_t n)
{
	struct index_txn *t;
	struct index_meta m;
	int rc, frc;
	bool fresh;

	memset(s, 0, sizeof(*s));
	why[0] = '\0';
	frc = store_stamp_read(dir, &s->id, &s->file_gen);
	if (frc == -EILSEQ) {
		snprintf(why, n, "%s/" DD_STAMP " is garbled", dir);
		return -ESTALE;
	}
	if (frc && frc != -ENOENT)
		return frc;
	s->file = !frc;
	rc = index_begin(ix, false, &t);
	if (rc)
		return rc;
	rc = index_get_meta(t, &m);
	if (!rc) {
		uint64_t id;

		rc = index_get_stamp(t, &id, &s->ix_gen);
		s->ix = !rc;
		if (s->ix && s->file && id != s->id) {
			snprintf(why, n, "the index belongs to another store (%016" PRIx64
				 ", the logs' is %016" PRIx64 ")", id, s->id);
			rc = -ESTALE;
		} else if (s->ix) {
			s->id = id;
			rc = 0;
		} else if (rc == -ENOENT) {
			rc = 0;
		}
	}
	index_abort(t);
	if (rc)
		return rc;
	fresh = m.next_gseq <= 1 && m.next_uid <= 1 && m.applied_lsn == 0 && m.tasks == 0;
	if (!s->ix) {
		if (fresh && has_tasks(dir)) {
			snprintf(why, n, "the index is empty but %s/tasks holds tasks (the index "
				 "was removed or emptied)", dir);
			return -ESTALE;
		}
		if (!fresh && s->file) {
			snprintf(why, n, "the index has no stamp but the logs have one (generation "
				 "%" PRIu64 "): an older index", s->file_gen);
			return -ESTALE;
		}
		return 0;	/* a new store, or one made before stamps */
	}
	if (!s->file) {
		if (s->ix_gen == 0)
			return 0;	/* stamped, and the file not written yet */
		snprintf(why, n, "%s/" DD_STAMP " is missing (the index is at generation "
			 "%" PRIu64 ")", dir, s->ix_gen);
		return -ESTALE;
	}
	if (s->ix_gen < s->file_gen) {
		snprintf(why, n, "the index is older than the logs (generation %" PRIu64
			 ", the logs are at %" PRIu64 ")", s->ix_gen, s->file_gen);
		return -ESTALE;
	}
	if (s->ix_gen > s->file_gen + 1) {
		snprintf(why, n, "the logs are older than the index (generation %" PRIu64
			 ", the index is at %" PRIu64 ")", s->file_gen, s->ix_gen);
		return -ESTALE;
	}
	return 0;
}

int store_stamp_adopt(const char *dir)
{
	struct index_txn *t;
	struct index *ix;
	char path[DD_PATH_MAX];
	uint64_t id, gen;
	int rc;

	rc = dd_path(path, dir, DD_INDEX, NULL);
	if (rc)
		return rc;
	rc = index_open(path, NULL, &ix);
	if (rc)
		return rc;
	rc = index_begin(ix, false, &t);
	if (!rc) {
		rc = index_get_stamp(t, &id, &gen);
		index_abort(t);
	}
	index_close(ix);
	if (!rc)
		return store_stamp_write(dir, id, gen);
	if (rc != -ENOENT)
		return rc;
	/* an index made before stamps: so is the copy */
	if (dd_path(path, dir, DD_STAMP, NULL))
		return -ENAMETOOLONG;
	if (io->unlink(path) && errno != ENOENT)
		return -errno;
	return io_fsync_dir(dir) ? -errno : 0;
}

static int stamp_txn(struct index_txn *t, void *arg)
{
	struct evl_store *st = arg;

	return index_put_stamp(t, st->stamp_id, st->stamp_gen);
}

/* S1 at open: check the index against the stamp.  0, -ESTALE (logged) or -errno. */
int stamp_open(struct evl_store *st)
{
	struct store_stamp s;
	char why[512];
	int rc;

	rc = store_stamp_check(st->dir, st->ix, &s, why, sizeof(why));
	if (rc == -ESTALE)
		evl_log(LOG_ERR, "store %s: %s; refusing to use it: run evlogctl reindex %s "
			"(it rebuilds the index from the logs)", st->dir, why, st->dir);
	if (rc)
		return rc;
	if (!s.ix && !s.file && getrandom(&s.id, sizeof(s.id), 0) != sizeof(s.id))
		return -errno;
	st->stamp_id = s.id;
	st->stamp_gen = s.ix ? s.ix_gen : s.file_gen;
	st->stamp_file_gen = s.file ? s.file_gen : UINT64_MAX;
	if (st->opt.read_only)
		return 0;
	if (!s.ix) {
		/* the index first: a crash before the file leaves generation 0, accepted */
		rc = store_write_txn(st, stamp_txn, st);
		if (!rc)
			rc = index_sync(st->ix);
		if (rc)
			return rc;
	}
	stamp_follow(st);
	return 0;
}

/*
 * I7: bring DATA_DIR/stamp up to the index's generation (the index is
 * synced).  A failure is logged and redone at the next checkpoint, which
 * meanwhile does not advance the index.
 */
void stamp_follow(struct evl_store *st)
{
	int rc;

	if (st->opt.read_only || st->stamp_file_gen == st->stamp_gen)
		return;
	rc = store_stamp_write(st->dir, st->stamp_id, st->stamp_gen);
	if (rc)
		evl_log(LOG_WARNING, "cannot write %s/stamp: %s (retried at the next checkpoint)",
			st->dir, strerror(-rc));
	else
		st->stamp_file_gen = st->stamp_gen;
}
