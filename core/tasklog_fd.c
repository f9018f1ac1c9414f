/*
 * tasklog_fd.c - the task logs' descriptor cache: the module opened and
 * closed, each task's log and sidecar kept open (least recently used shed
 * first, bounded by the open-file limit), syncs whose failure is sticky,
 * and reads through the cache.  The rest of the task log module (tasklog.c,
 * sidecar.c, rewrite.c) opens files through it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "bytes.h"
#include "datadir.h"
#include "io.h"
#include "log.h"
#include "tasklog.h"
#include "tasklog_i.h"


/* How often the cache looks at the open-file limit again. */
#define ROOM_RECHECK_NS (100 * 1000000ull)

/*
 * Descriptors the process needs besides this cache: stdio, the FUSE device
 * (one per worker with clone_fd), the lock and reserve files, LMDB's files,
 * the journal's segments and directory, syslog, and the short-lived ones
 * (directory fsyncs, a log rewrite's new files, a listing, a library that
 * loads late).  An eighth of the limit, at least 32 and at most 256.
 */
#define FD_HEADROOM_MIN 32
#define FD_HEADROOM_MAX 256

unsigned tasklog_fd_room(void)
{
	struct rlimit rl;
	rlim_t headroom;

	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur >= UINT_MAX)
		return UINT_MAX;
	headroom = rl.rlim_cur / 8;
	if (headroom < FD_HEADROOM_MIN)
		headroom = FD_HEADROOM_MIN;
	if (headroom > FD_HEADROOM_MAX)
		headroom = FD_HEADROOM_MAX;
	return rl.rlim_cur > headroom ? rl.rlim_cur - headroom : 0;
}

int tasklog_open(const char *data_dir, unsigned max_fds, struct tasklog **out)
{
	char tasks[DD_PATH_MAX];
	struct tasklog *tl;

	if (dd_path(tasks, data_dir, DD_TASKS, NULL))
		return -ENAMETOOLONG;
	if (io_mkdir_durable(tasks, 0755))
		return -errno;
	tl = calloc(1, sizeof(*tl));
	if (!tl)
		return -ENOMEM;
	tl->nents = max_fds ? max_fds : 256;
	tl->ents = calloc(tl->nents, sizeof(*tl->ents));
	tl->data_dir = strdup(data_dir);
	tl->dir = strdup(tasks);
	if (!tl->ents || !tl->data_dir || !tl->dir) {
		free(tl->ents);
		free(tl->data_dir);
		free(tl->dir);
		free(tl);
		return -ENOMEM;
	}
	pthread_mutex_init(&tl->lock, NULL);
	pthread_mutex_init(&tl->vlock, NULL);
	pthread_cond_init(&tl->cv, NULL);
	*out = tl;
	return 0;
}

void tasklog_read_only(struct tasklog *tl)
{
	tl->rdonly = true;
}

int tasklog_sync_one(struct tasklog *tl, int fd, const char *dir)
{
	int dfd = -1, rc, saved;

	if (fd < 0) {
		/* a directory that cannot be opened (EMFILE) had no fsync fail */
		dfd = tasklog_open_shed(tl, dir, O_RDONLY | O_DIRECTORY, 0);
		if (dfd < 0)
			return -1;
	}
	rc = dfd >= 0 ? io->fsync(dfd) : io->fdatasync(fd);
	saved = errno;
	if (dfd >= 0)
		io->close(dfd);
	if (rc && !atomic_exchange(&tl->sync_failed, true)) {
		evl_log(LOG_CRIT, "fsync of %s failed: %s", fd >= 0 ? "a task file" : dir,
			strerror(saved));
		if (tl->failed_fn)
			tl->failed_fn(tl->failed_arg);
	}
	errno = saved;
	return rc;
}

bool tasklog_sync_failed(struct tasklog *tl)
{
	return atomic_load(&tl->sync_failed);
}

void tasklog_on_sync_failed(struct tasklog *tl, void (*fn)(void *arg), void *arg)
{
	tl->failed_fn = fn;
	tl->failed_arg = arg;
}

/* With the lock: close @e's descriptors and free its slot. */
static void ent_close(struct tasklog *tl, struct fd_entry *e)
{
	io->close(e->log_fd);
	tl->nfds--;
	if (e->meta_fd >= 0) {
		io->close(e->meta_fd);
		tl->nfds--;
	}
	e->uid = 0;
	e->stale = false;
}

/*
 * With the lock: close the least recently used entry nobody holds, to give
 * its descriptors back.  False if every entry is in use (or none is open).
 */
static bool shed_lru(struct tasklog *tl)
{
	struct fd_entry *victim = NULL;

	for (unsigned i = 0; i < tl->nents; i++) {
		struct fd_entry *c = &tl->ents[i];

		if (c->uid && !c->refs && (!victim || c->used < victim->used))
			victim = c;
	}
	if (!victim)
		return false;
	ent_close(tl, victim);
	tl->shed++;
	pthread_cond_broadcast(&tl->cv);	/* a free slot */
	return true;
}

/*
 * With the lock: keep what the cache holds, plus the @more descriptors it is
 * about to open, under the open-file limit (less the others' headroom),
 * closing idle entries as needed.  The limit is looked at again every
 * ROOM_RECHECK_NS: it may be lowered under a running process.
 */
static void make_room(struct tasklog *tl, unsigned more)
{
	struct timespec ts;
	uint64_t now;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	now = ts.tv_sec * 1000000000ull + ts.tv_nsec;
	if (!tl->room_ns || now - tl->room_ns >= ROOM_RECHECK_NS) {
		tl->room = tasklog_fd_room();
		tl->room_ns = now ? now : 1;
	}
	while (tl->nfds + more > tl->room && shed_lru(tl))
		;
}

/*
 * An open failed with @err.  If it is EMFILE or ENFILE (the open-file limit,
 * ours or the system's: something else took descriptors) close an idle
 * entry, so that the caller can retry.  Returns true if it closed one;
 * false (errno = @err) if the caller should give up: another error, or
 * every cached descriptor is in use.
 */
static bool shed(struct tasklog *tl, int err)
{
	bool done = false;

	if (err == EMFILE || err == ENFILE) {
		pthread_mutex_lock(&tl->lock);
		done = shed_lru(tl);
		pthread_mutex_unlock(&tl->lock);
	}
	errno = err;
	return done;
}

int tasklog_open_shed(struct tasklog *tl, const char *path, int flags, mode_t mode)
{
	int fd;

	while ((fd = io->open(path, flags, mode)) < 0 && shed(tl, errno))
		;
	return fd;
}

uint64_t tasklog_shed_count(struct tasklog *tl)
{
	uint64_t n;

	pthread_mutex_lock(&tl->lock);
	n = tl->shed;
	pthread_mutex_unlock(&tl->lock);
	return n;
}

void tasklog_close(struct tasklog *tl)
{
	if (!tl)
		return;
	for (unsigned i = 0; i < tl->nents; i++)
		if (tl->ents[i].uid)
			ent_close(tl, &tl->ents[i]);
	pthread_mutex_destroy(&tl->lock);
	pthread_mutex_destroy(&tl->vlock);
	pthread_cond_destroy(&tl->cv);
	free(tl->vents);
	free(tl->ents);
	free(tl->data_dir);
	free(tl->dir);
	free(tl);
}

int tasklog_get_fds(struct tasklog *tl, uint64_t uid, const char *name, struct fd_entry **out)
{
	struct fd_entry *e = NULL, *victim;
	char path[DD_PATH_MAX];
	int lfd;

	if (!uid)
		return -EINVAL;	/* 0 marks a free slot */
	pthread_mutex_lock(&tl->lock);
	for (unsigned i = 0; i < tl->nents && !e; i++)
		if (tl->ents[i].uid == uid && !tl->ents[i].stale)
			e = &tl->ents[i];
	if (e) {
		e->refs++;
		e->used = ++tl->clock;
		make_room(tl, 0);	/* @e is held: never the one closed */
		pthread_mutex_unlock(&tl->lock);
		*out = e;
		return 0;
	}
	make_room(tl, 1);
	pthread_mutex_unlock(&tl->lock);

	if (dd_task(path, tl->data_dir, name, DD_EVENTS))
		return -ENAMETOOLONG;
	lfd = tasklog_open_shed(tl, path, tl->rdonly ? O_RDONLY : O_RDWR, 0);
	if (lfd < 0)
		return -errno;

	pthread_mutex_lock(&tl->lock);
	/* another thread may have opened it meanwhile; pick a free or LRU slot */
	victim = NULL;
	for (unsigned i = 0; i < tl->nents; i++) {
		struct fd_entry *c = &tl->ents[i];

		if (c->uid == uid && !c->stale) {
			c->refs++;
			c->used = ++tl->clock;
			pthread_mutex_unlock(&tl->lock);
			io->close(lfd);
			*out = c;
			return 0;
		}
		if (!c->uid) {
			if (!victim || victim->uid)
				victim = c;
		} else if (!c->refs && (!victim || (victim->uid && c->used < victim->used))) {
			victim = c;
		}
	}
	while (!victim) {
		/* every slot is in use: wait for one (bounded by callers' threads) */
		pthread_cond_wait(&tl->cv, &tl->lock);
		for (unsigned i = 0; i < tl->nents && !victim; i++)
			if (!tl->ents[i].uid || !tl->ents[i].refs)
				victim = &tl->ents[i];
	}
	if (victim->uid)
		ent_close(tl, victim);
	victim->uid = uid;
	victim->log_fd = lfd;
	tl->nfds++;
	victim->meta_fd = -1;	/* opened when first needed (a reader: to prove what it reads) */
	victim->refs = 1;
	victim->used = ++tl->clock;
	pthread_mutex_unlock(&tl->lock);
	*out = victim;
	return 0;
}

int tasklog_need_meta(struct tasklog *tl, struct fd_entry *e, const char *name)
{
	char path[DD_PATH_MAX];
	int fd;

	pthread_mutex_lock(&tl->lock);
	fd = e->meta_fd;
	if (fd < 0)
		make_room(tl, 1);
	pthread_mutex_unlock(&tl->lock);
	if (fd >= 0)
		return 0;
	if (dd_task(path, tl->data_dir, name, DD_META))
		return -ENAMETOOLONG;
	fd = tasklog_open_shed(tl, path, tl->rdonly ? O_RDONLY : O_RDWR, 0);
	if (fd < 0)
		return -errno;
	pthread_mutex_lock(&tl->lock);
	if (e->meta_fd < 0) {
		e->meta_fd = fd;
		tl->nfds++;
		fd = -1;
	}
	pthread_mutex_unlock(&tl->lock);
	if (fd >= 0)
		io->close(fd);
	return 0;
}

void tasklog_put_fds(struct tasklog *tl, struct fd_entry *e)
{
	pthread_mutex_lock(&tl->lock);
	if (--e->refs == 0) {
		if (e->stale)
			ent_close(tl, e);
		pthread_cond_broadcast(&tl->cv);
	}
	pthread_mutex_unlock(&tl->lock);
}

void tasklog_forget_fds(struct tasklog *tl, uint64_t uid)
{
	pthread_mutex_lock(&tl->lock);
	for (unsigned i = 0; i < tl->nents; i++) {
		struct fd_entry *c = &tl->ents[i];

		if (c->uid != uid)
			continue;
		if (c->refs)
			c->stale = true;
		else
			ent_close(tl, c);
	}
	pthread_mutex_unlock(&tl->lock);
}

ssize_t tasklog_read(struct tasklog *tl, uint64_t uid, const char *name,
		     uint64_t off, void *buf, size_t len)
{
	struct fd_entry *e;
	ssize_t n;
	int rc;

	rc = tasklog_get_fds(tl, uid, name, &e);
	if (rc)
		return rc;
	n = io_pread_all(e->log_fd, buf, len, off);
	if (n < 0)
		n = -errno;
	tasklog_put_fds(tl, e);
	return n;
}
