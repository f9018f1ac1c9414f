/*
 * backup.c - a consistent copy of a store that mounts as is.
 *
 * 1. A snapshot of the index (LMDB's own copy, taken beside a running
 *    daemon if there is one) into DEST/index.new.  It names every live
 *    task with its lengths: the copy holds exactly those.
 * 2. Each task's log and sidecar are copied up to those lengths.  Logs are
 *    append-only, so bytes past them are newer events and are left out; a
 *    task whose DEST files are a prefix of the source's (same first and
 *    last common sidecar record) gets only its new bytes.  A task deleted
 *    meanwhile is read from its .trash directory.  Source files shorter
 *    than the snapshot, or holding other events at those lengths (retention
 *    rewrote them, the task was replaced), make the run return -EAGAIN:
 *    the caller runs it again once the compaction is over.
 * 3. DEST's other tasks, its old index and journal go; the snapshot is
 *    renamed into place; the store is opened once (recovery cuts nothing:
 *    files and index agree) and checkpointed.
 * SOURCE must be a store (tasks/ and index/data.mdb), and DEST must be
 * missing, empty, or a backup of that same store: a store is named by
 * DATA_DIR/store-id (random, made by its first backup), which DEST keeps in
 * DEST/backup-of from its first run on.  DEST is never inside SOURCE (nor
 * SOURCE inside DEST, nor DEST inside the mount): that is checked on the
 * directories themselves (dev/ino, walking up by ".."), so symlinks and bind
 * mounts do not hide it.  A refusal changes nothing and says why.
 * DEST is locked for the run.  An interrupted run leaves DEST for the next
 * run to finish: DEST/backup-unfinished, made durable before anything is
 * copied and removed at the end, makes the next run copy every task whole
 * (files the broken run wrote have their length but, after a power loss or
 * a failed fsync, maybe not their pages).  Every file and directory entry DEST gains is synced
 * before the index that names it is renamed into place.  All I/O goes
 * through the seam (io.h), so the fault tests reach it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datadir.h"
#include "evlog.h"
#include "index.h"
#include "io.h"
#include "log.h"
#include "store.h"
#include "tasklog.h"

struct bk {
	const char *src, *dest;
	const struct evl_backup_opts *o;
	struct evl_backup_result *r;
	struct index_task *tasks;
	size_t ntasks, cap;		/* cap in bytes (grow_bytes) */
	uint64_t next_gseq;
	uint64_t total, done;
	bool whole;		/* an earlier run did not finish: copy every task whole */
};

static void say(struct bk *b, char level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(struct bk *b, char level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (b->o->report)
		b->o->report(b->o->arg, level, line);
}

static int collect(void *arg, const struct index_task *t)
{
	struct bk *b = arg;

	if (grow_bytes(&b->tasks, &b->cap, (b->ntasks + 1) * sizeof(*b->tasks)))
		return -ENOMEM;
	b->tasks[b->ntasks++] = *t;
	b->total += t->log_len - t->base_len;
	return 0;
}

static int count_retain(void *arg, const struct index_retain *tr)
{
	(*(uint64_t *)arg)++;
	return 0;
}

/*
 * Read the snapshot: its live tasks, and whether retention is under way.
 * The copy's files will be synced up to its lengths before it is renamed
 * into place, and DEST has no journal: it is made a checkpoint (no dirty
 * set), so that recovery never looks for journal records (see store.c, I3).
 */
static int read_snapshot(struct bk *b, const char *path)
{
	struct index_txn *t;
	struct index_meta m;
	struct index *ix;
	uint64_t retains = 0;
	int rc;

	rc = index_open(path, NULL, &ix);
	if (rc)
		return rc;
	rc = index_begin(ix, true, &t);
	if (!rc) {
		rc = index_get_meta(t, &m);
		if (!rc)
			rc = index_task_list(t, NULL, 0, collect, b);
		if (!rc)
			rc = index_retain_list(t, count_retain, &retains);
		if (!rc) {
			m.ckpt_lsn = m.applied_lsn;
			rc = index_put_meta(t, &m);
		}
		if (!rc)
			rc = index_dirty_clear(t);
		if (!rc)
			rc = index_commit(t);
		else
			index_abort(t);
	}
	if (!rc)
		rc = index_sync(ix);
	index_close(ix);
	b->next_gseq = m.next_gseq;
	if (!rc && retains) {
		say(b, 'I', "a retention is rewriting %" PRIu64 " task logs in the source", retains);
		rc = -EAGAIN;
	}
	return rc;
}

static int open_src(struct bk *b, const struct index_task *t, const char *file)
{
	char path[DD_PATH_MAX];
	int fd;

	if (dd_task(path, b->src, t->name, file))
		return -ENAMETOOLONG;
	fd = io->open(path, O_RDONLY, 0);
	if (fd < 0 && errno == ENOENT) {
		/* deleted since the snapshot: its files wait in the trash */
		if (dd_trash(path, b->src, t->uid, file))
			return -ENAMETOOLONG;
		fd = io->open(path, O_RDONLY, 0);
	}
	return fd < 0 ? -errno : fd;
}

/* Copy @len bytes from @in at @off to @out at the same offset. */
static int copy_range(struct bk *b, int in, int out, uint64_t off, uint64_t len, bool count)
{
	char buf[1 << 16];

	while (len) {
		loff_t io_in = off, io_out = off;
		ssize_t n = io->copy_range(in, &io_in, out, &io_out, len);

		if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL ||
			      errno == EOPNOTSUPP)) {
			n = io->pread(in, buf, len < sizeof(buf) ? len : sizeof(buf), off);
			if (n > 0 && io_pwrite_all(out, buf, n, off))
				return -errno;
		}
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EAGAIN;	/* the source is shorter than it was */
		off += n;
		len -= n;
		if (count) {
			b->r->log_bytes_copied += n;
			b->done += n;
			if (b->o->progress)
				b->o->progress(b->o->arg, "copy", b->done, b->total);
		}
	}
	return 0;
}

/*
 * A side file of a task (events.unapplied: accepted events its log could
 * not take, or lines found past its index; events.meta.lost;
 * events.damaged, events.foreign, events.meta.foreign: what reindex set
 * aside): copied whole,
 * or removed from DEST when the source has none (the user removed it).
 */
static int copy_side(struct bk *b, const struct index_task *t, const char *file)
{
	char path[DD_PATH_MAX];
	struct stat st;
	int in, out, rc = 0;

	if (dd_task(path, b->dest, t->name, file))
		return -ENAMETOOLONG;
	in = open_src(b, t, file);
	if (in == -ENOENT)
		return io->unlink(path) && errno != ENOENT ? -errno : 0;
	if (in < 0)
		return in;
	out = io->open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (out < 0)
		rc = -errno;
	else if (fstat(in, &st))
		rc = -errno;
	else
		rc = copy_range(b, in, out, 0, st.st_size, false);
	if (!rc && io->fdatasync(out))
		rc = -errno;
	if (out >= 0)
		io->close(out);
	io->close(in);
	return rc;
}

/*
 * Is record @i of DEST's sidecar @dm the source's (@sm), byte for byte?
 * 1 or 0; -EAGAIN (a file is shorter) or -errno.  Records that do not
 * decode are compared the same way: one damaged in the source was copied
 * as it is, and a copy damaged since is not the source's.
 */
static int same_rec(int dm, int sm, uint64_t i)
{
	unsigned char x[TASKLOG_REC], y[TASKLOG_REC];
	struct tasklog_rec r;
	int rc;

	rc = tasklog_read_rec(dm, i, &r, x);
	if (rc && rc != -EILSEQ)
		return rc;
	rc = tasklog_read_rec(sm, i, &r, y);
	if (rc && rc != -EILSEQ)
		return rc;
	return !memcmp(x, y, TASKLOG_REC);
}

/* Copy one task's files up to the snapshot's lengths. */
static int copy_task(struct bk *b, const struct index_task *t)
{
	uint64_t want_len = t->log_len - t->base_len, want_n = t->nevents - t->base_n;
	uint64_t have_len = 0, have_n = 0;
	int sl = -1, sm = -1, dl = -1, dm = -1, rc;
	char path[DD_PATH_MAX];
	struct stat st;
	bool fresh;

	sl = rc = open_src(b, t, DD_EVENTS);
	if (rc >= 0)
		sm = rc = open_src(b, t, DD_META);
	if (rc == -ENOENT) {
		say(b, 'I', "task %s: gone from the source during the copy", t->name);
		rc = -EAGAIN;
	}
	if (rc < 0)
		goto out;
	rc = 0;
	if (fstat(sl, &st) || (uint64_t)st.st_size < want_len ||
	    fstat(sm, &st) || (uint64_t)st.st_size < want_n * TASKLOG_REC) {
		say(b, 'I', "task %s: its files are shorter than the snapshot says", t->name);
		rc = -EAGAIN;
		goto out;
	}
	if (want_n) {
		struct tasklog_rec r;

		rc = tasklog_read_rec(sm, want_n - 1, &r, NULL);
		if (rc == -EILSEQ || (!rc && r.gseq >= b->next_gseq)) {
			say(b, 'I', "task %s: its files hold other events than the snapshot", t->name);
			rc = -EAGAIN;
		}
		if (rc)
			goto out;
	}

	rc = dd_task(path, b->dest, t->name, NULL);
	if (rc)
		goto out;
	if (io_mkdir_durable(path, 0755)) {
		rc = -errno;
		goto out;
	}
	/* as the source's: a reindex of the copy without its index keeps them */
	tasklog_mark(b->dest, t->name, t->uid, t->has_owner ? &(struct tasklog_owner){
			     t->owner_uid, t->owner_gid, t->mode } : NULL);	/* synced below */
	rc = dd_task(path, b->dest, t->name, DD_EVENTS);
	if (rc)
		goto out;
	dl = io->open(path, O_RDWR | O_CREAT, 0644);
	if (dl < 0) {
		rc = -errno;
		goto out;
	}
	rc = dd_task(path, b->dest, t->name, DD_META);
	if (rc)
		goto out;
	dm = io->open(path, O_RDWR | O_CREAT, 0644);
	if (dm < 0 || fstat(dl, &st)) {
		rc = -errno;
		goto out;
	}
	have_len = st.st_size;
	if (fstat(dm, &st)) {
		rc = -errno;
		goto out;
	}
	have_n = st.st_size / TASKLOG_REC;
	fresh = !have_n && !have_len;
	/* DEST continues the source if the first and its last records are the source's */
	if (!b->whole && have_n && have_n <= want_n && have_len <= want_len) {
		rc = same_rec(dm, sm, 0);
		if (rc == 1)
			rc = same_rec(dm, sm, have_n - 1);
		if (rc < 0)
			goto out;
		if (!rc)
			have_n = have_len = 0;
		rc = 0;
	} else {
		have_n = have_len = 0;
	}
	if (have_n == want_n && have_len == want_len) {
		b->r->tasks_unchanged++;
	} else {
		if (fresh)
			b->r->tasks_new++;
		else if (have_n)
			b->r->tasks_appended++;
		else
			b->r->tasks_replaced++;
		b->done += have_len;
		rc = copy_range(b, sl, dl, have_len, want_len - have_len, true);
		if (!rc)
			rc = copy_range(b, sm, dm, have_n * TASKLOG_REC,
					(want_n - have_n) * TASKLOG_REC, false);
		if (rc)
			goto out;
	}
	if (io->ftruncate(dl, want_len) || io->ftruncate(dm, want_n * TASKLOG_REC) ||
	    io->fdatasync(dl) || io->fdatasync(dm)) {
		rc = -errno;
		goto out;
	}
	{
		static const char *const side[] = {
			DD_UNAPPLIED, DD_META_LOST, DD_DAMAGED, DD_FOREIGN, DD_META_FOREIGN,
		};

		for (size_t i = 0; i < sizeof(side) / sizeof(*side) && !rc; i++)
			rc = copy_side(b, t, side[i]);
	}
	if (rc)
		goto out;
	/* new files: their entries too (the snapshot's index will name them), and its attributes */
	rc = dd_task(path, b->dest, t->name, NULL);
	if (rc)
		goto out;
	if (io_fsync_dir(path)) {
		rc = -errno;
		goto out;
	}
	b->r->events += want_n;
out:
	for (int *fd = (int[]){ sl, sm, dl, dm }, i = 0; i < 4; i++)
		if (fd[i] >= 0)
			io->close(fd[i]);
	return rc;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(((const struct index_task *)a)->name, ((const struct index_task *)b)->name);
}

#define ID_LEN 32

struct dirs {
	struct stat *v;
	size_t n, cap;		/* cap in bytes (grow_bytes) */
};

static int dirs_add(struct dirs *d, const char *path)
{
	struct stat sb;

	if (stat(path, &sb) || !S_ISDIR(sb.st_mode))
		return 0;	/* not there: nothing can be inside it */
	if (grow_bytes(&d->v, &d->cap, (d->n + 1) * sizeof(*d->v)))
		return -ENOMEM;
	d->v[d->n++] = sb;
	return 0;
}

/* @dir and the directories in it (and in its tasks/): where a bind mount may show them. */
static int dirs_of_store(struct dirs *d, const char *dir)
{
	int rc = dirs_add(d, dir);

	for (size_t i = 0; i < 2 && !rc; i++) {
		char path[DD_PATH_MAX];
		struct dirent *de;
		DIR *dd;

		/* @dir itself, then its tasks/ */
		rc = i ? dd_path(path, dir, DD_TASKS, NULL) : dd_suffix(path, dir, "");
		if (rc)
			break;
		dd = opendir(path);
		if (!dd)
			continue;
		while (!rc && (de = readdir(dd))) {
			char p[DD_PATH_MAX];

			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			rc = dd_join(p, path, de->d_name);
			if (!rc)
				rc = dirs_add(d, p);
		}
		closedir(dd);
	}
	return rc;
}

/*
 * Is @path (or, if it does not exist yet, the directory it would be made in)
 * one of @d's directories or below one?  1, 0 or -errno.  The walk goes up by
 * "..", on the directories themselves: a symlink or a bind mount on the way
 * does not hide SOURCE.
 */
static int is_inside(const char *path, const struct dirs *d)
{
	char p[DD_PATH_MAX];
	struct stat sb, up;
	int fd, rc = 0;

	if (dd_suffix(p, path, ""))	/* a copy, cut below */
		return -ENAMETOOLONG;
	while (stat(p, &sb)) {
		char *slash = strrchr(p, '/');

		if (errno != ENOENT && errno != ENOTDIR)
			return -errno;
		if (!slash)
			snprintf(p, sizeof(p), ".");
		else if (slash == p)
			p[1] = '\0';
		else
			*slash = '\0';
	}
	fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOTDIR ? 0 : -errno;
	for (int depth = 0; depth < 4096 && !rc; depth++) {
		int parent;

		if (fstat(fd, &sb)) {
			rc = -errno;
			break;
		}
		for (size_t i = 0; i < d->n && !rc; i++)
			rc = sb.st_dev == d->v[i].st_dev && sb.st_ino == d->v[i].st_ino;
		parent = openat(fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (parent < 0) {
			rc = rc ? rc : -errno;
			break;
		}
		close(fd);
		fd = parent;
		if (!fstat(fd, &up) && up.st_dev == sb.st_dev && up.st_ino == sb.st_ino)
			break;	/* the root */
	}
	close(fd);
	return rc;
}

/* Read DIR/@name, an identity (ID_LEN hex digits).  0, -ENOENT, -EINVAL or -errno. */
static int read_id(const char *dir, const char *name, char id[ID_LEN + 1])
{
	char path[DD_PATH_MAX];
	ssize_t n;
	int fd;

	if (dd_path(path, dir, name, NULL))
		return -ENAMETOOLONG;
	fd = io->open(path, O_RDONLY, 0);
	if (fd < 0)
		return -errno;
	n = io->pread(fd, id, ID_LEN + 1, 0);
	io->close(fd);
	if (n < 0)
		return -errno;
	if (n < ID_LEN || (n == ID_LEN + 1 && id[ID_LEN] != '\n') ||
	    strspn(id, "0123456789abcdef") < ID_LEN)
		return -EINVAL;
	id[ID_LEN] = '\0';
	return 0;
}

/* Write DIR/@name, the identity @id, crash-safely (and at most once, if @once). */
static int write_id(const char *dir, const char *name, const char *id, bool once)
{
	char path[DD_PATH_MAX], tmp[DD_PATH_MAX], buf[ID_LEN + 1], sfx[32];
	int fd, rc = 0;

	snprintf(sfx, sizeof(sfx), ".tmp.%ld", (long)getpid());
	if (dd_path(path, dir, name, NULL) || dd_suffix(tmp, path, sfx))
		return -ENAMETOOLONG;
	fd = io->open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -errno;
	memcpy(buf, id, ID_LEN);
	buf[ID_LEN] = '\n';
	if (io_pwrite_all(fd, buf, sizeof(buf), 0) || io->fdatasync(fd))
		rc = -errno;
	io->close(fd);
	/* once: two first backups at once agree on the one that got there first */
	if (!rc && (once ? link(tmp, path) && errno != EEXIST : io->rename(tmp, path) != 0))
		rc = -errno;
	if (once || rc)
		io->unlink(tmp);
	if (!rc && io_fsync_dir(dir))
		rc = -errno;
	return rc;
}

/* The identity of store @src, made now if it has none yet.  0 or -errno. */
static int source_id(const char *src, char id[ID_LEN + 1])
{
	unsigned char raw[ID_LEN / 2];
	int rc = read_id(src, DD_STORE_ID, id);

	if (rc != -ENOENT && rc != -EINVAL)
		return rc;
	if (getrandom(raw, sizeof(raw), 0) != sizeof(raw))
		return -errno;
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(id + 2 * i, 3, "%02x", raw[i]);
	/* a damaged one is replaced: copies made under it no longer match (refused) */
	rc = write_id(src, DD_STORE_ID, id, rc == -ENOENT);
	return rc ? rc : read_id(src, DD_STORE_ID, id);
}

/*
 * May @b->src be copied into @b->dest?  0 (DEST's identity to write in
 * @id, or "" if the source has none: read-only media), -ECANCELED
 * (refused: said why), or -errno.
 */
static int check_paths(struct bk *b, char id[ID_LEN + 1])
{
	struct dirs d = { 0 }, dd = { 0 };
	char path[DD_PATH_MAX], have[ID_LEN + 1];
	struct stat sb;
	int rc, in;

	if (stat(b->src, &sb)) {
		say(b, 'X', "%s: %s", b->src, strerror(errno));
		return -ECANCELED;
	}
	if (dd_path(path, b->src, DD_INDEX, DD_MDB_DATA))
		return -ENAMETOOLONG;
	if (!S_ISDIR(sb.st_mode) || access(path, F_OK)) {
		say(b, 'X', "%s is not an evlogfs store%s", b->src,
		    !dd_path(path, b->src, DD_TASKS, NULL) && !stat(path, &sb) &&
		    S_ISDIR(sb.st_mode) ? " with an index (evlogctl reindex rebuilds it)" : "");
		return -ECANCELED;
	}
	rc = dirs_of_store(&d, b->src);
	if (!rc && b->o->mount)
		rc = dirs_add(&d, b->o->mount);
	if (!rc)
		rc = dirs_add(&dd, b->dest);
	in = rc ? rc : is_inside(b->dest, &d);
	if (in == 0)
		in = is_inside(b->src, &dd);
	free(d.v);
	free(dd.v);
	if (in < 0)
		return in;
	if (in) {
		say(b, 'X', "%s is inside the store %s (or it inside it): choose a DEST outside it",
		    b->dest, b->src);
		return -ECANCELED;
	}
	rc = source_id(b->src, id);
	if (rc == -EROFS || rc == -EACCES || rc == -EPERM) {
		say(b, 'I', "%s cannot be given an identity (%s): %s will not take a later backup",
		    b->src, strerror(-rc), b->dest);
		id[0] = '\0';
	} else if (rc) {
		return rc;
	}
	/* DEST: missing, empty, or a copy of this store */
	rc = read_id(b->dest, DD_BACKUP_OF, have);
	if (!rc && id[0] && !strcmp(have, id))
		return 0;
	if (!rc || rc == -EINVAL) {
		say(b, 'X', "%s is a backup of another store than %s (%s says so): choose "
		    "another DEST", b->dest, b->src, DD_BACKUP_OF);
		return -ECANCELED;
	}
	if (rc != -ENOENT && rc != -ENOTDIR)
		return rc;
	{
		DIR *dir = opendir(b->dest);
		struct dirent *de;
		bool empty = true;

		if (!dir && errno != ENOENT) {
			say(b, 'X', "%s: %s", b->dest, strerror(errno));
			return -ECANCELED;
		}
		/* (a backup-of.tmp.* is a first run's, cut short before its rename) */
		while (dir && empty && (de = readdir(dir)))
			empty = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
				!strncmp(de->d_name, DD_BACKUP_OF ".tmp.", strlen(DD_BACKUP_OF) + 5);
		if (dir)
			closedir(dir);
		if (!empty) {
			say(b, 'X', "%s is not empty and not a backup of %s: nothing in it is "
			    "touched (choose a new or empty DEST)", b->dest, b->src);
			return -ECANCELED;
		}
	}
	return 0;
}

/* Remove DEST's tasks the snapshot does not name. */
static int prune(struct bk *b)
{
	char path[DD_PATH_MAX];
	struct dirent *de;
	DIR *d;
	int rc = 0;

	if (dd_path(path, b->dest, DD_TASKS, NULL))
		return -ENAMETOOLONG;
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d)) && !rc) {
		struct index_task key;
		char p[DD_PATH_MAX];

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(key.name, sizeof(key.name), "%s", de->d_name);
		if (b->ntasks && bsearch(&key, b->tasks, b->ntasks, sizeof(*b->tasks), cmp_name))
			continue;
		rc = dd_join(p, path, de->d_name);
		if (!rc)
			rc = store_rmrf(p);
		if (!rc && de->d_name[0] != '.') {
			b->r->tasks_removed++;
			say(b, 'I', "task %s: no longer in the source, removed", de->d_name);
		}
	}
	closedir(d);
	return rc;
}

int evl_backup(const char *src, const char *dest, const struct evl_backup_opts *o,
	       struct evl_backup_result *r)
{
	struct bk b = { .src = src, .dest = dest, .o = o, .r = r };
	char path[DD_PATH_MAX], from[DD_PATH_MAX], snap[DD_PATH_MAX], mark[DD_PATH_MAX];
	char id[ID_LEN + 1] = "", have[ID_LEN + 1];
	struct store_lock src_lock = STORE_LOCK_NONE, dest_lock = STORE_LOCK_NONE;
	const char *too_long;
	int rc, fd;
	struct stat sb;

	memset(r, 0, sizeof(*r));
	/* the one length check of both sides: every path below fits */
	too_long = dd_check(src) ? src : dd_check(dest) ? dest : NULL;
	if (too_long) {
		say(&b, 'X', "a data directory path longer than %d bytes: %s", DD_DIR_MAX, too_long);
		return -ECANCELED;	/* refused, and said */
	}
	rc = check_paths(&b, id);
	if (rc)
		return rc;
	if (io_mkdir_durable(dest, 0755))
		return -errno;
	/*
	 * Before anything else is made in DEST (the lock file too): a run cut
	 * short anywhere after this is still known as this store's copy.
	 */
	rc = id[0] ? read_id(dest, DD_BACKUP_OF, have) : 0;
	if (rc && rc != -ENOENT && rc != -EINVAL)
		return rc;
	if (id[0] && (rc || strcmp(have, id))) {
		rc = write_id(dest, DD_BACKUP_OF, id, false);
		if (rc)
			return rc;
	}
	rc = store_lock(dest, "evlogctl backup", &dest_lock);
	if (rc == -EBUSY && evl_store_holder(dest, path, sizeof(path)) == 1)
		say(&b, 'X', "%s is in use by %s", dest, path);
	if (rc)
		return rc;
	/* a backup an older evlogfs made: its sidecars upgraded before they are compared */
	{
		char why[600];

		rc = tasklog_format_check(dest, true, false, why, sizeof(why));
		if (rc) {
			say(&b, 'X', "%s: %s", dest, rc == -EPROTO ? why : strerror(-rc));
			store_unlock(dest, &dest_lock);
			return rc;
		}
	}
	/* a backup of another store into the same new DEST at once: one of them stops */
	rc = id[0] ? read_id(dest, DD_BACKUP_OF, have) : 0;
	if (rc && rc != -ENOENT && rc != -EINVAL)
		goto out;
	if (id[0] && (rc || strcmp(have, id))) {
		say(&b, 'X', "%s was taken by a backup of another store meanwhile", dest);
		rc = -ECANCELED;
		goto out;
	}
	rc = dd_path(mark, dest, DD_BACKUP_MARK, NULL);
	if (rc)
		goto out;
	b.whole = access(mark, F_OK) == 0;
	if (b.whole)
		say(&b, 'I', "an earlier run did not finish: every task is copied whole");
	fd = io->open(mark, O_WRONLY | O_CREAT, 0644);
	if (fd < 0 || io_fsync_dir(dest)) {
		rc = -errno;
		if (fd >= 0)
			io->close(fd);
		goto out;
	}
	io->close(fd);
	if (!o->live) {
		/* recover and checkpoint the source first, then keep it still */
		rc = store_cycle(src, NULL, "evlogctl backup");
		if (!rc)
			rc = store_lock(src, "evlogctl backup", &src_lock);
		if (rc)
			goto out;
	}
	rc = dd_path(from, src, DD_INDEX, NULL);
	if (!rc)
		rc = dd_path(snap, dest, DD_INDEX_NEW, NULL);
	if (!rc)
		rc = store_rmrf(snap);
	if (!rc)
		rc = index_snapshot(from, snap);
	if (!rc)
		rc = read_snapshot(&b, snap);
	if (rc)
		goto out;
	if (!dd_path(path, dest, DD_INDEX_NEW, DD_MDB_DATA) && !stat(path, &sb))
		r->index_bytes = sb.st_size;	/* else 0 */
	rc = dd_path(path, dest, DD_TASKS, NULL);
	if (rc)
		goto out;
	if (io_mkdir_durable(path, 0755)) {
		rc = -errno;
		goto out;
	}
	if (b.ntasks)
		qsort(b.tasks, b.ntasks, sizeof(*b.tasks), cmp_name);
	for (size_t i = 0; i < b.ntasks && !rc; i++)
		rc = copy_task(&b, &b.tasks[i]);
	r->tasks = b.ntasks;
	if (!rc)
		rc = prune(&b);
	if (!rc && io_fsync_dir(path))
		rc = -errno;
	if (rc)
		goto out;

	/*
	 * The snapshot replaces DEST's index.  DEST's journal is older than
	 * both: removed first (durably), or a crash between the two would
	 * leave an intact journal ending before the new index's position,
	 * which the open calls a damaged index (journal_open: check_end).
	 */
	rc = dd_path(path, dest, DD_JOURNAL, NULL);
	if (!rc)
		rc = store_rmrf(path);
	if (!rc && io_fsync_dir(dest))
		rc = -errno;
	if (!rc)
		rc = dd_path(path, dest, DD_INDEX, NULL);
	if (!rc)
		rc = dd_path(from, dest, DD_INDEX_OLD, NULL);
	if (!rc)
		rc = index_install(snap, path);
	/* the snapshot's generation is the copy's (stamp.c, S1) */
	if (!rc)
		rc = store_stamp_adopt(dest);
	if (!rc)
		rc = store_rmrf(from);	/* left by an older version */
	if (!rc && io_fsync_dir(dest))
		rc = -errno;
	if (rc)
		goto out;
	store_unlock(dest, &dest_lock);
	/* DEST must open as a store: this also checkpoints it */
	rc = store_cycle(dest, NULL, "evlogctl backup");
	if (rc)
		say(&b, 'X', "the copy in %s does not open: %s", dest, strerror(-rc));
	/* finished, unless another run has DEST now (its mark stays) */
	if (!rc && store_lock(dest, "evlogctl backup", &dest_lock) == 0)
		io->unlink(mark);
out:
	store_unlock(src, &src_lock);
	store_unlock(dest, &dest_lock);
	free(b.tasks);
	return rc;
}
