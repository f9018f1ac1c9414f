/*
 * rewrite.c - a task's log and sidecar rewritten without their head, for
 * retention (tasklog_retain_*): the kept part is copied to
 * DATA_DIR/tasks/.rewrite/<uid>.events and <uid>.meta while appends go on,
 * synced, and renamed over the task's files once the index has switched to
 * them.  The steps, their order and what a crash leaves are retain.c's.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datadir.h"
#include "io.h"
#include "log.h"
#include "tasklog.h"
#include "tasklog_i.h"

#define RW_CHUNK (1u << 20)

struct tasklog_retain {
	struct tasklog *tl;
	struct fd_entry *old;		/* the task's current files, held */
	uint64_t uid;
	char name[256];
	int fd[2];			/* new log, new sidecar */
	uint64_t from[2], done[2];	/* old file position copied from; bytes copied */
	bool installed;
	char *buf;
};

/* The new log (@which 0) or sidecar (1) of task @uid's rewrite.  0 or -ENAMETOOLONG. */
static int retain_path(const struct tasklog *tl, uint64_t uid, int which,
		       char buf[static DD_PATH_MAX])
{
	return dd_rewrite(buf, tl->data_dir, uid, which ? DD_REWRITE_META : DD_EVENTS);
}

int tasklog_retain_open(struct tasklog *tl, uint64_t uid, const char *name, uint64_t from_off,
		    uint64_t from_idx, struct tasklog_retain **out)
{
	struct tasklog_retain *rw = calloc(1, sizeof(*rw));
	char path[DD_PATH_MAX];
	int rc;

	if (!rw)
		return -ENOMEM;
	rw->tl = tl;
	rw->uid = uid;
	snprintf(rw->name, sizeof(rw->name), "%s", name);
	rw->fd[0] = rw->fd[1] = -1;
	rw->from[0] = from_off;
	rw->from[1] = from_idx * TASKLOG_REC;
	rw->buf = malloc(RW_CHUNK);
	if (!rw->buf) {
		free(rw);
		return -ENOMEM;
	}
	rc = tasklog_get_fds(tl, uid, name, &rw->old);
	if (!rc)
		rc = tasklog_need_meta(tl, rw->old, name);
	if (!rc && dd_rewrite(path, tl->data_dir, uid, NULL))
		rc = -ENAMETOOLONG;
	if (!rc && io_mkdir_durable(path, 0755))
		rc = -errno;
	for (int i = 0; i < 2 && !rc; i++) {
		if (retain_path(tl, uid, i, path)) {
			rc = -ENAMETOOLONG;
			break;
		}
		rw->fd[i] = tasklog_open_shed(tl, path, O_RDWR | O_CREAT | O_TRUNC, 0644);
		if (rw->fd[i] < 0)
			rc = -errno;
	}
	if (rc) {
		tasklog_retain_free(rw);
		return rc;
	}
	*out = rw;
	return 0;
}

int tasklog_retain_copy(struct tasklog_retain *rw, uint64_t end_off, uint64_t end_idx)
{
	uint64_t end[2] = { end_off, end_idx * TASKLOG_REC };
	int src[2] = { rw->old->log_fd, rw->old->meta_fd };

	for (int i = 0; i < 2; i++) {
		if (end[i] < rw->from[i] + rw->done[i])
			return -EINVAL;	/* the caller's lengths went backwards */
		while (rw->from[i] + rw->done[i] < end[i]) {
			uint64_t left = end[i] - rw->from[i] - rw->done[i];
			size_t want = left < RW_CHUNK ? left : RW_CHUNK;
			ssize_t n = io_pread_all(src[i], rw->buf, want, rw->from[i] + rw->done[i]);

			if (n < 0)
				return -errno;
			if ((size_t)n < want) {
				evl_log(LOG_ERR, "rewrite of task %s: %s shorter than indexed",
					rw->name, i ? "sidecar" : "log");
				return -EIO;
			}
			if (io_pwrite_all(rw->fd[i], rw->buf, n, rw->done[i]))
				return -errno;
			rw->done[i] += n;
		}
	}
	return 0;
}

int tasklog_retain_sync(struct tasklog_retain *rw)
{
	char path[DD_PATH_MAX];

	/*
	 * The files' entries too: once the index has switched, recovery renames
	 * them into place, and a lost entry would leave the old log under the
	 * new offsets.  A failure here is not sticky: the files are dropped.
	 */
	if (dd_rewrite(path, rw->tl->data_dir, rw->uid, NULL))
		return -ENAMETOOLONG;
	if (io->fdatasync(rw->fd[0]) || io->fdatasync(rw->fd[1]) || io_fsync_dir(path))
		return -errno;
	return 0;
}

int tasklog_retain_install(struct tasklog_retain *rw)
{
	static const char *const files[] = { DD_EVENTS, DD_META };
	char from[DD_PATH_MAX], to[DD_PATH_MAX];

	for (int i = 0; i < 2; i++) {
		if (retain_path(rw->tl, rw->uid, i, from) ||
		    dd_task(to, rw->tl->data_dir, rw->name, files[i]))
			return -ENAMETOOLONG;
		if (io->rename(from, to))
			return -errno;
	}
	rw->installed = true;
	tasklog_forget_fds(rw->tl, rw->uid);
	return 0;
}

void tasklog_retain_keep(struct tasklog_retain *rw)
{
	rw->installed = true;	/* installed or to be: the files are no longer ours to drop */
}

void tasklog_retain_free(struct tasklog_retain *rw)
{
	char path[DD_PATH_MAX];

	if (!rw)
		return;
	for (int i = 0; i < 2; i++) {
		if (rw->fd[i] >= 0)
			io->close(rw->fd[i]);
		if (!rw->installed && !retain_path(rw->tl, rw->uid, i, path))
			io->unlink(path);
	}
	if (rw->old)
		tasklog_put_fds(rw->tl, rw->old);
	free(rw->buf);
	free(rw);
}

int tasklog_retain_finish(struct tasklog *tl, uint64_t uid, const char *name)
{
	static const char *const files[] = { DD_EVENTS, DD_META };
	char from[DD_PATH_MAX], to[DD_PATH_MAX];

	for (int i = 0; i < 2; i++) {
		if (retain_path(tl, uid, i, from) || dd_task(to, tl->data_dir, name, files[i]))
			return -ENAMETOOLONG;
		if (io->rename(from, to) && errno != ENOENT)
			return -errno;
	}
	tasklog_forget_fds(tl, uid);
	if (dd_task(to, tl->data_dir, name, NULL) || dd_rewrite(from, tl->data_dir, uid, NULL))
		return -ENAMETOOLONG;
	if (tasklog_sync_one(tl, -1, to) || (tasklog_sync_one(tl, -1, from) && errno != ENOENT))
		return -errno;
	return 0;
}

int tasklog_retain_clean(struct tasklog *tl)
{
	char dir[DD_PATH_MAX], path[DD_PATH_MAX];
	struct dirent *de;
	DIR *d;
	int rc = 0;

	if (dd_rewrite(dir, tl->data_dir, 0, NULL))
		return -ENAMETOOLONG;
	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.') {
			if (dd_join(path, dir, de->d_name)) {
				rc = -ENAMETOOLONG;
				continue;
			}
			evl_log(LOG_INFO, "removing %s: a log rewrite that never took effect", path);
			if (io->unlink(path) && errno != ENOENT)
				rc = -errno;
		}
	closedir(d);
	return rc;
}
