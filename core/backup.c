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
#include <sys/stat.h>
#include <unistd.h>

#include "evlog.h"
#include "index.h"
#include "io.h"
#include "log.h"
#include "store_i.h"
#include "tasklog.h"

struct bk {
	const char *src, *dest;
	const struct evl_backup_opts *o;
	struct evl_backup_result *r;
	struct index_task *tasks;
	size_t ntasks, cap;		/* cap in bytes (store_grow) */
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

	if (store_grow(&b->tasks, &b->cap, (b->ntasks + 1) * sizeof(*b->tasks)))
		return -ENOMEM;
	b->tasks[b->ntasks++] = *t;
	b->total += t->log_len - t->base_len;
	return 0;
}

static int count_trim(void *arg, const struct index_trim *tr)
{
	(*(uint64_t *)arg)++;
	return 0;
}

/*
 * Read the snapshot: its live tasks, and whether retention is under way.
 * The copy's files will be synced up to its lengths before it is renamed
 * into place, and DEST has no journal: it is made a checkpoint (no dirty
 * set), so that recovery never looks for journal records (see store.c I6).
 */
static int read_snapshot(struct bk *b, const char *path)
{
	struct index_txn *t;
	struct index_meta m;
	struct index *ix;
	uint64_t trims = 0;
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
			rc = index_trim_list(t, count_trim, &trims);
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
	if (!rc && trims) {
		say(b, 'I', "a retention is rewriting %" PRIu64 " task logs in the source", trims);
		rc = -EAGAIN;
	}
	return rc;
}

static int open_src(struct bk *b, const struct index_task *t, const char *file)
{
	char path[4500];
	int fd;

	snprintf(path, sizeof(path), "%s/tasks/%s/%s", b->src, t->name, file);
	fd = io->open(path, O_RDONLY, 0);
	if (fd < 0 && errno == ENOENT) {
		/* deleted since the snapshot: its files wait in the trash */
		snprintf(path, sizeof(path), "%s/tasks/.trash-%016" PRIx64 "/%s", b->src, t->uid, file);
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

static int read_rec(int fd, uint64_t i, unsigned char rec[TASKLOG_REC])
{
	ssize_t n = io_pread_all(fd, rec, TASKLOG_REC, i * TASKLOG_REC);

	if (n < 0)
		return -errno;
	return n == TASKLOG_REC ? 0 : -EAGAIN;
}

/* Copy one task's files up to the snapshot's lengths. */
static int copy_task(struct bk *b, const struct index_task *t)
{
	uint64_t want_len = t->log_len - t->base_len, want_n = t->nevents - t->base_n;
	uint64_t have_len = 0, have_n = 0;
	unsigned char a[TASKLOG_REC], z[TASKLOG_REC];
	int sl = -1, sm = -1, dl = -1, dm = -1, rc;
	char path[4500];
	struct stat st;
	bool fresh;

	sl = rc = open_src(b, t, "events");
	if (rc >= 0)
		sm = rc = open_src(b, t, "events.meta");
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

		rc = read_rec(sm, want_n - 1, z);
		if (!rc && (tasklog_decode(z, &r) || r.gseq >= b->next_gseq)) {
			say(b, 'I', "task %s: its files hold other events than the snapshot", t->name);
			rc = -EAGAIN;
		}
		if (rc)
			goto out;
	}

	snprintf(path, sizeof(path), "%s/tasks/%s", b->dest, t->name);
	if (io_mkdir_durable(path, 0755)) {
		rc = -errno;
		goto out;
	}
	snprintf(path, sizeof(path), "%s/tasks/%s/events", b->dest, t->name);
	dl = io->open(path, O_RDWR | O_CREAT, 0644);
	if (dl < 0) {
		rc = -errno;
		goto out;
	}
	snprintf(path, sizeof(path), "%s/tasks/%s/events.meta", b->dest, t->name);
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
		unsigned char x[TASKLOG_REC], y[TASKLOG_REC];

		rc = read_rec(dm, 0, x);
		if (!rc)
			rc = read_rec(sm, 0, a);
		if (!rc && !memcmp(x, a, TASKLOG_REC)) {
			rc = read_rec(dm, have_n - 1, x);
			if (!rc)
				rc = read_rec(sm, have_n - 1, y);
			if (!rc && memcmp(x, y, TASKLOG_REC))
				have_n = have_len = 0;
		} else if (!rc) {
			have_n = have_len = 0;
		}
		if (rc)
			goto out;
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
	/* new files: their entries too (the snapshot's index will name them) */
	snprintf(path, sizeof(path), "%s/tasks/%s", b->dest, t->name);
	if (fresh && io_fsync_dir(path)) {
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

/* Remove DEST's tasks the snapshot does not name. */
static int prune(struct bk *b)
{
	char path[4200];
	struct dirent *de;
	DIR *d;
	int rc = 0;

	snprintf(path, sizeof(path), "%s/tasks", b->dest);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d)) && !rc) {
		struct index_task key;
		char p[4500];

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(key.name, sizeof(key.name), "%s", de->d_name);
		if (b->ntasks && bsearch(&key, b->tasks, b->ntasks, sizeof(*b->tasks), cmp_name))
			continue;
		snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
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
	char path[4500], from[4200], snap[4200], mark[4200];
	int src_lock = -1, dest_lock = -1, rc, fd;
	struct stat sb;

	memset(r, 0, sizeof(*r));
	if (io_mkdir_durable(dest, 0755))
		return -errno;
	rc = store_lock(dest, "evlogctl backup", &dest_lock);
	if (rc)
		return rc;
	snprintf(mark, sizeof(mark), "%s/backup-unfinished", dest);
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
	snprintf(from, sizeof(from), "%s/index", src);
	snprintf(snap, sizeof(snap), "%s/index.new", dest);
	rc = store_rmrf(snap);
	if (!rc)
		rc = index_snapshot(from, snap);
	if (!rc)
		rc = read_snapshot(&b, snap);
	if (rc)
		goto out;
	snprintf(path, sizeof(path), "%s/data.mdb", snap);
	r->index_bytes = stat(path, &sb) ? 0 : sb.st_size;
	snprintf(path, sizeof(path), "%s/tasks", dest);
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

	/* the snapshot replaces DEST's index; DEST's journal is older than both */
	snprintf(path, sizeof(path), "%s/index", dest);
	snprintf(from, sizeof(from), "%s/index.old", dest);
	rc = index_install(snap, path);
	/* the snapshot's generation is the copy's (store.c, I7) */
	if (!rc)
		rc = store_stamp_adopt(dest);
	if (!rc)
		rc = store_rmrf(from);	/* left by an older version */
	snprintf(path, sizeof(path), "%s/journal", dest);
	if (!rc)
		rc = store_rmrf(path);
	if (!rc && io_fsync_dir(dest))
		rc = -errno;
	if (rc)
		goto out;
	io->close(dest_lock);
	dest_lock = -1;
	/* DEST must open as a store: this also checkpoints it */
	rc = store_cycle(dest, NULL, "evlogctl backup");
	if (rc)
		say(&b, 'X', "the copy in %s does not open: %s", dest, strerror(-rc));
	/* finished, unless another run has DEST now (its mark stays) */
	if (!rc && store_lock(dest, "evlogctl backup", &dest_lock) == 0)
		io->unlink(mark);
out:
	if (src_lock >= 0)
		io->close(src_lock);
	if (dest_lock >= 0)
		io->close(dest_lock);
	free(b.tasks);
	return rc;
}
