/*
 * tasklog.c - task logs, sidecars and the descriptor cache.
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
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "bytes.h"
#include "io.h"
#include "log.h"
#include "tasklog.h"

struct fd_entry {
	uint64_t uid;		/* 0: free slot */
	int log_fd, meta_fd;
	unsigned refs;
	bool stale;		/* close when the last user lets go */
	uint64_t used;		/* LRU clock */
};

struct tasklog {
	char *dir;
	bool rdonly;		/* tasklog_read_only(): files opened for reading only */
	pthread_mutex_t lock;	/* protects the cache */
	pthread_cond_t cv;	/* an entry's refs dropped */
	struct fd_entry *ents;
	unsigned nents;
	uint64_t clock;
	unsigned nfds;		/* descriptors the entries hold */
	unsigned room;		/* tasklog_fd_room() at room_ns */
	uint64_t room_ns;
	uint64_t shed;		/* entries closed to stay under the open-file limit */
	/*
	 * An fsync of a task file or directory failed: the kernel may have
	 * dropped what it was to write and marked it clean, so a later fsync
	 * that succeeds proves nothing.  Sticky (see tasklog_sync_failed).
	 */
	atomic_bool sync_failed;
	void (*failed_fn)(void *arg);
	void *failed_arg;
	/*
	 * How far each task's log is proven (tasklog_verify): uid -> logical
	 * offset and event number up to which every event's bytes matched
	 * their checksum.  Open addressing, linear probing; own lock (leaf).
	 */
	pthread_mutex_t vlock;
	struct vent {
		uint64_t uid, off, idx;
	} *vents;
	size_t nvents, vcap;
};

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

int tasklog_open(const char *dir, unsigned max_fds, struct tasklog **out)
{
	struct tasklog *tl;

	if (io_mkdir_durable(dir, 0755))
		return -errno;
	tl = calloc(1, sizeof(*tl));
	if (!tl)
		return -ENOMEM;
	tl->nents = max_fds ? max_fds : 256;
	tl->ents = calloc(tl->nents, sizeof(*tl->ents));
	tl->dir = strdup(dir);
	if (!tl->ents || !tl->dir) {
		free(tl->ents);
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

/* fsync @fd (@fd >= 0) or directory @dir; a failure is remembered for good.  0 or -1, errno. */
static int open_shed(struct tasklog *tl, const char *path, int flags, mode_t mode);

static int sync_one(struct tasklog *tl, int fd, const char *dir)
{
	int dfd = -1, rc, saved;

	if (fd < 0) {
		/* a directory that cannot be opened (EMFILE) had no fsync fail */
		dfd = open_shed(tl, dir, O_RDONLY | O_DIRECTORY, 0);
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

/* io->open, shedding cached descriptors while the limit refuses it. */
static int open_shed(struct tasklog *tl, const char *path, int flags, mode_t mode)
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
	free(tl->dir);
	free(tl);
}

static void file_path(const struct tasklog *tl, const char *name, const char *file,
		      char *buf, size_t n)
{
	snprintf(buf, n, "%s/%s/%s", tl->dir, name, file);
}

/* Find or open the descriptors of task @uid; the caller must put_fds(). */
static int get_fds(struct tasklog *tl, uint64_t uid, const char *name, struct fd_entry **out)
{
	struct fd_entry *e = NULL, *victim;
	char path[4400];
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

	file_path(tl, name, "events", path, sizeof(path));
	lfd = open_shed(tl, path, tl->rdonly ? O_RDONLY : O_RDWR, 0);
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

/*
 * Open @e's sidecar if it is not yet (the caller holds @e).  Opened without
 * the cache lock, which shedding takes; of two threads racing here the
 * first one's descriptor is kept.  0 or -errno.
 */
static int need_meta(struct tasklog *tl, struct fd_entry *e, const char *name)
{
	char path[4400];
	int fd;

	pthread_mutex_lock(&tl->lock);
	fd = e->meta_fd;
	if (fd < 0)
		make_room(tl, 1);
	pthread_mutex_unlock(&tl->lock);
	if (fd >= 0)
		return 0;
	file_path(tl, name, "events.meta", path, sizeof(path));
	fd = open_shed(tl, path, tl->rdonly ? O_RDONLY : O_RDWR, 0);
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

static void put_fds(struct tasklog *tl, struct fd_entry *e)
{
	pthread_mutex_lock(&tl->lock);
	if (--e->refs == 0) {
		if (e->stale)
			ent_close(tl, e);
		pthread_cond_broadcast(&tl->cv);
	}
	pthread_mutex_unlock(&tl->lock);
}

/* Forget @uid's descriptors (closed now, or by their last user). */
static void forget_fds(struct tasklog *tl, uint64_t uid)
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

static int create_empty(struct tasklog *tl, const char *path)
{
	int fd = open_shed(tl, path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (sync_one(tl, fd, NULL))
		rc = -errno;
	io->close(fd);
	return rc;
}

int tasklog_create(struct tasklog *tl, uint64_t uid, const char *name,
		   const struct tasklog_owner *owner)
{
	char path[4400];
	int rc;

	if (!uid)
		return -EINVAL;	/* 0 marks a free descriptor slot: forget_fds(0) would close those */
	forget_fds(tl, uid);
	snprintf(path, sizeof(path), "%s/%s", tl->dir, name);
	if (io->mkdir(path, 0755) && errno != EEXIST)
		return -errno;
	file_path(tl, name, "events", path, sizeof(path));
	rc = create_empty(tl, path);
	if (rc)
		return rc;
	file_path(tl, name, "events.meta", path, sizeof(path));
	rc = create_empty(tl, path);
	if (rc)
		return rc;
	snprintf(path, sizeof(path), "%s/%s", tl->dir, name);
	tasklog_mark(tl->dir, name, uid, owner);
	if (sync_one(tl, -1, path) || sync_one(tl, -1, tl->dir))
		return -errno;
	return 0;
}

void tasklog_mark(const char *dir, const char *name, uint64_t uid,
		  const struct tasklog_owner *owner)
{
	char path[4400];
	unsigned char le[12];

	/* for reindex without an index: best effort (some file systems refuse) */
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	put_le64(le, uid);
	setxattr(path, TASKLOG_UID_XATTR, le, 8, 0);
	if (owner) {
		put_le32(le, owner->uid);
		put_le32(le + 4, owner->gid);
		put_le32(le + 8, owner->mode);
		setxattr(path, TASKLOG_OWNER_XATTR, le, 12, 0);
	} else {
		/* a directory reused (an older task's, a stray one): not its owner */
		removexattr(path, TASKLOG_OWNER_XATTR);
	}
}

uint64_t tasklog_uid_of(const char *dir, const char *name)
{
	char path[4400];
	unsigned char le[8];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (getxattr(path, TASKLOG_UID_XATTR, le, sizeof(le)) != sizeof(le))
		return 0;
	return get_le64(le);
}

bool tasklog_owner_of(const char *dir, const char *name, struct tasklog_owner *out)
{
	char path[4400];
	unsigned char le[12];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (getxattr(path, TASKLOG_OWNER_XATTR, le, sizeof(le)) != sizeof(le))
		return false;
	out->uid = get_le32(le);
	out->gid = get_le32(le + 4);
	out->mode = get_le32(le + 8) & 07777;
	return true;
}

uint32_t tasklog_sum(const void *event, size_t len)
{
	return XXH32(event, len, 0);
}

void tasklog_encode(const struct tasklog_rec *r, unsigned char out[TASKLOG_REC])
{
	put_le64(out, r->gseq);
	put_le64(out + 8, r->time_ns);
	put_le32(out + 16, r->len);
	put_le32(out + 20, r->sum);
	put_le32(out + 24, 0);
	put_le32(out + 28, XXH32(out, 28, 2));
}

int tasklog_decode(const unsigned char in[TASKLOG_REC], struct tasklog_rec *r)
{
	r->gseq = get_le64(in);
	r->time_ns = get_le64(in + 8);
	r->len = get_le32(in + 16);
	r->sum = get_le32(in + 20);
	return get_le32(in + 28) == XXH32(in, 28, 2) ? 0 : -EILSEQ;
}

int tasklog_decode_v1(const unsigned char in[TASKLOG_REC_V1], struct tasklog_rec *r)
{
	r->gseq = get_le64(in);
	r->time_ns = get_le64(in + 8);
	r->len = get_le32(in + 16);
	r->sum = 0;
	return get_le32(in + 20) == XXH32(in, 20, 0) ? 0 : -EILSEQ;
}

/*
 * Do the bytes of a file of @size at @off agree with @buf (@len) as far
 * as both go?  Past the end there is nothing to agree with.  A batch whose
 * index commit failed (a full disk) or was lost (a crash) wrote them: its
 * retry or replay writes the same bytes again (with the same gseqs in the
 * sidecar).  With @zeros, a byte may also be 0: a power loss keeps any
 * part of what was not synced and leaves the rest of a file's new length
 * a hole.  Anything else there was written outside the store.  1 if they
 * agree, 0 if not, -errno if they cannot be read (a failing disk is not
 * damage: the caller's write fails with that error, and is retried).
 */
static int same_bytes(int fd, const void *buf, size_t len, uint64_t off, uint64_t size,
		      bool zeros)
{
	char tmp[4096];

	if (size > off && size - off < len)
		len = size - off;
	for (size_t done = 0; size > off && done < len;) {
		size_t k = len - done < sizeof(tmp) ? len - done : sizeof(tmp);
		const char *want = (const char *)buf + done;
		ssize_t got = io_pread_all(fd, tmp, k, off + done);

		if (got < 0)
			return -errno;
		if (got != (ssize_t)k)
			return 0;	/* cut meanwhile */
		if (memcmp(tmp, want, k)) {
			if (!zeros)
				return 0;
			for (size_t i = 0; i < k; i++)
				if (tmp[i] && tmp[i] != want[i])
					return 0;
		}
		done += k;
	}
	return 1;
}

/* Is the file open at @fd no longer in any directory (removed while cached)? */
static bool unlinked(int fd)
{
	struct stat sb;

	return !fstat(fd, &sb) && sb.st_nlink == 0;
}

/*
 * Are the @n records at record @idx of sidecar @fd each either the one
 * encoded in @mb or one failing its own check?  1 yes, 0 no, -errno.
 */
static int recs_damaged_only(int fd, const unsigned char *mb, size_t n, uint64_t idx)
{
	unsigned char buf[64 * TASKLOG_REC];

	for (size_t done = 0; done < n;) {
		size_t k = n - done < 64 ? n - done : 64;
		ssize_t got = io->pread(fd, buf, k * TASKLOG_REC, (idx + done) * TASKLOG_REC);

		if (got < 0)
			return -errno;
		if ((size_t)got != k * TASKLOG_REC)
			return 0;
		for (size_t i = 0; i < k; i++) {
			struct tasklog_rec r;

			if (memcmp(buf + i * TASKLOG_REC, mb + (done + i) * TASKLOG_REC, TASKLOG_REC) &&
			    !tasklog_decode(buf + i * TASKLOG_REC, &r))
				return 0;
		}
		done += k;
	}
	return 1;
}

int tasklog_write(struct tasklog *tl, uint64_t uid, const char *name, uint64_t off,
		  const void *data, size_t len, uint64_t idx,
		  const struct tasklog_rec *recs, size_t n, unsigned flags)
{
	bool zeros = flags & TASKLOG_AFTER_LOSS;
	unsigned char stackbuf[64 * TASKLOG_REC], *mb = stackbuf;
	struct fd_entry *e;
	int rc;

	rc = get_fds(tl, uid, name, &e);
	if (rc)
		return rc;
	rc = need_meta(tl, e, name);
	if (!rc && (unlinked(e->log_fd) || unlinked(e->meta_fd))) {
		/*
		 * Removed behind our back while cached: what is written now would
		 * vanish with the descriptor.  Reopened by the next user, which
		 * finds the path as it is now.
		 */
		pthread_mutex_lock(&tl->lock);
		e->stale = true;
		pthread_mutex_unlock(&tl->lock);
		rc = -ENOENT;
	}
	if (rc)
		goto out;
	if (n > 64) {
		mb = malloc(n * TASKLOG_REC);
		if (!mb) {
			rc = -ENOMEM;
			goto out;
		}
	}
	for (size_t i = 0, at = 0; i < n; i++) {
		struct tasklog_rec r = recs[i];

		if (r.len > len - at) {
			rc = -EINVAL;	/* the caller's bug: records past the bytes */
			goto out_free;
		}
		r.sum = tasklog_sum((const char *)data + at, r.len);
		at += r.len;
		tasklog_encode(&r, mb + i * TASKLOG_REC);
	}
	/*
	 * The files must end where the index says: a log cut short on disk
	 * would get a hole of zeros, one appended to outside the store would
	 * lose its lines under these.  Neither is written.  Bytes past the end
	 * are fine only if they are these (a retried or replayed batch), or
	 * after a power loss holes where they were not kept.
	 */
	{
		struct stat ls, ms;

		if (fstat(e->log_fd, &ls) || fstat(e->meta_fd, &ms)) {
			rc = -errno;
			goto out_free;
		}
		int same = 0, same_meta = 0;

		if ((uint64_t)ls.st_size >= off && (uint64_t)ms.st_size >= idx * TASKLOG_REC) {
			same_meta = same_bytes(e->meta_fd, mb, n * TASKLOG_REC, idx * TASKLOG_REC,
					       ms.st_size, zeros);
			same = same_meta > 0 ? same_bytes(e->log_fd, data, len, off, ls.st_size,
							  zeros) : same_meta;
			/*
			 * Our own records are there in full (byte for byte: a hole of
			 * zeros vouches for nothing), each with the checksum of these
			 * bytes, and the log's bytes differ: they are these events,
			 * damaged on disk since (a flipped bit, a zeroed range), not lines
			 * from outside (those come without our records).  The replay's
			 * bytes are the ones acknowledged: written over them.
			 */
			if (same == 0 && same_meta > 0 && n &&
			    (uint64_t)ms.st_size >= (idx + n) * TASKLOG_REC &&
			    (uint64_t)ls.st_size >= off + len &&
			    same_bytes(e->meta_fd, mb, n * TASKLOG_REC, idx * TASKLOG_REC, ms.st_size,
				       false) > 0) {
				evl_log(LOG_WARNING, "task %s: events %" PRIu64 "-%" PRIu64 " past the "
					"index (gseq %" PRIu64 "-%" PRIu64 ") were damaged on disk: "
					"written again from the journal", name, idx + 1, idx + n,
					recs[0].gseq, recs[n - 1].gseq);
				same = 1;
			}
			/*
			 * The other way round: the log's bytes are these, byte for
			 * byte, and each of our records there either is ours or fails
			 * its own check (damaged on disk; a valid record of another
			 * event is not ours to overwrite).
			 */
			if (same_meta == 0 && n && (uint64_t)ls.st_size >= off + len &&
			    (uint64_t)ms.st_size >= (idx + n) * TASKLOG_REC &&
			    same_bytes(e->log_fd, data, len, off, ls.st_size, false) > 0 &&
			    recs_damaged_only(e->meta_fd, mb, n, idx) > 0) {
				evl_log(LOG_WARNING, "task %s: sidecar records %" PRIu64 "-%" PRIu64
					" past the index (gseq %" PRIu64 "-%" PRIu64 ") were damaged "
					"on disk: written again from the journal", name, idx + 1,
					idx + n, recs[0].gseq, recs[n - 1].gseq);
				same = 1;
			}
		}
		if (same <= 0) {
			rc = same < 0 ? same : -EUCLEAN;
			goto out_free;
		}
	}
	if (io_pwrite_all(e->log_fd, data, len, off) ||
	    io_pwrite_all(e->meta_fd, mb, n * TASKLOG_REC, idx * TASKLOG_REC)) {
		rc = -errno;
		/* the retry writes the same bytes here: let the files end where it expects */
		if (io->ftruncate(e->log_fd, off) || io->ftruncate(e->meta_fd, idx * TASKLOG_REC))
			evl_log(LOG_WARNING, "task %s: cannot cut back a failed write (%s): the "
				"task is set aside at its next write", name, strerror(errno));
	}
out_free:
	if (mb != stackbuf)
		free(mb);
out:
	put_fds(tl, e);
	return rc;
}

int tasklog_write_recs(struct tasklog *tl, uint64_t uid, const char *name, uint64_t idx,
		       const struct tasklog_rec *recs, size_t n)
{
	unsigned char mb[64 * TASKLOG_REC];
	struct fd_entry *e;
	int rc;

	if (n > 64)
		return -EINVAL;
	rc = get_fds(tl, uid, name, &e);
	if (rc)
		return rc;
	rc = need_meta(tl, e, name);
	if (!rc) {
		for (size_t i = 0; i < n; i++)
			tasklog_encode(&recs[i], mb + i * TASKLOG_REC);
		if (io_pwrite_all(e->meta_fd, mb, n * TASKLOG_REC, idx * TASKLOG_REC))
			rc = -errno;
	}
	put_fds(tl, e);
	return rc;
}

ssize_t tasklog_read(struct tasklog *tl, uint64_t uid, const char *name,
		     uint64_t off, void *buf, size_t len)
{
	struct fd_entry *e;
	ssize_t n;
	int rc;

	rc = get_fds(tl, uid, name, &e);
	if (rc)
		return rc;
	n = io_pread_all(e->log_fd, buf, len, off);
	if (n < 0)
		n = -errno;
	put_fds(tl, e);
	return n;
}

int tasklog_rescue(struct tasklog *tl, const char *name, const void *data, size_t len)
{
	char path[4400];
	int fd, rc = 0;

	file_path(tl, name, "events.unapplied", path, sizeof(path));
	fd = io->open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	/*
	 * At its end, and cut back there if the write or its fsync fails: the
	 * retry writes the same bytes at the same place, never a second copy
	 * or a torn line.  (A failed fsync may have dropped pages: they are
	 * written again.)
	 */
	{
		struct stat sb;

		if (fstat(fd, &sb))
			rc = -errno;
		else if (io_pwrite_all(fd, data, len, sb.st_size) || io->fsync(fd)) {
			rc = -errno;
			if (io->ftruncate(fd, sb.st_size))
				evl_log(LOG_WARNING, "%s: cannot cut back a failed write: %s", path,
					strerror(errno));
		}
	}
	io->close(fd);
	/* the file may be new: its name must last as long as its bytes */
	file_path(tl, name, "", path, sizeof(path));
	if (!rc && io_fsync_dir(path))
		rc = -errno;
	return rc;
}

struct tasklog_file {
	struct fd_entry e;	/* the cache entry itself: never copied */
};

int tasklog_pin(struct tasklog *tl, uint64_t uid, const char *name, struct tasklog_file **out)
{
	struct fd_entry *e;
	int rc = get_fds(tl, uid, name, &e);

	if (!rc)
		*out = (struct tasklog_file *)e;
	return rc;
}

ssize_t tasklog_pread(struct tasklog_file *f, uint64_t off, void *buf, size_t len)
{
	ssize_t n = io_pread_all(f->e.log_fd, buf, len, off);

	return n < 0 ? -errno : n;
}

void tasklog_unpin(struct tasklog *tl, struct tasklog_file *f)
{
	if (f)
		put_fds(tl, &f->e);
}

ssize_t tasklog_read_recs(struct tasklog *tl, uint64_t uid, const char *name,
			  uint64_t idx, struct tasklog_rec *recs, size_t n)
{
	unsigned char *mb;
	struct fd_entry *e;
	ssize_t got;
	int rc;

	mb = malloc(n * TASKLOG_REC + 1);
	if (!mb)
		return -ENOMEM;
	rc = get_fds(tl, uid, name, &e);
	if (rc) {
		free(mb);
		return rc;
	}
	rc = need_meta(tl, e, name);
	if (rc) {
		put_fds(tl, e);
		free(mb);
		return rc;
	}
	got = io_pread_all(e->meta_fd, mb, n * TASKLOG_REC, idx * TASKLOG_REC);
	if (got < 0) {
		got = -errno;
	} else {
		got /= TASKLOG_REC;
		for (ssize_t i = 0; i < got; i++)
			if (tasklog_decode(mb + i * TASKLOG_REC, &recs[i])) {
				got = -EILSEQ;
				break;
			}
	}
	put_fds(tl, e);
	free(mb);
	return got;
}

int tasklog_sync(struct tasklog *tl, uint64_t uid, const char *name)
{
	struct fd_entry *e;
	int rc;

	if (tasklog_sync_failed(tl))
		return -EIO;	/* a success now would vouch for dropped pages */
	rc = get_fds(tl, uid, name, &e);
	if (rc)
		return rc;
	/* the log first: a task whose sidecar is gone still keeps its events' bytes */
	if (sync_one(tl, e->log_fd, NULL))
		rc = -errno;
	if (!rc)
		rc = need_meta(tl, e, name);
	if (!rc && sync_one(tl, e->meta_fd, NULL))
		rc = -errno;
	put_fds(tl, e);
	return rc;
}

int tasklog_sizes(struct tasklog *tl, const char *name, uint64_t *log_len, uint64_t *nrecs)
{
	char path[4400];
	struct stat st;

	file_path(tl, name, "events", path, sizeof(path));
	if (stat(path, &st))
		return -errno;
	*log_len = st.st_size;
	file_path(tl, name, "events.meta", path, sizeof(path));
	if (stat(path, &st))
		return -errno;
	*nrecs = st.st_size / TASKLOG_REC;
	return 0;
}

int tasklog_recreate_meta(struct tasklog *tl, const char *name)
{
	char path[4400], dir[4400];
	struct stat st;
	int fd;

	file_path(tl, name, "events", path, sizeof(path));
	if (stat(path, &st))
		return -errno;
	file_path(tl, name, "events.meta", path, sizeof(path));
	if (!stat(path, &st))
		return 0;
	if (errno != ENOENT)
		return -errno;
	fd = open_shed(tl, path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return errno == EEXIST ? 0 : -errno;
	snprintf(dir, sizeof(dir), "%s/%s", tl->dir, name);
	if (sync_one(tl, fd, NULL) || sync_one(tl, -1, dir)) {
		int rc = -errno;

		io->close(fd);
		return rc;
	}
	io->close(fd);
	return 1;
}

int tasklog_meta_foreign(struct tasklog *tl, uint64_t uid, const char *name)
{
	char from[4400], to[4400];
	int rc;

	forget_fds(tl, uid);
	tasklog_verify_forget(tl, uid);
	file_path(tl, name, "events.meta", from, sizeof(from));
	file_path(tl, name, "events.meta.foreign", to, sizeof(to));
	if (io->rename(from, to))
		return -errno;
	rc = tasklog_recreate_meta(tl, name);	/* syncs the directory: the rename too */
	return rc < 0 ? rc : 0;
}

int tasklog_truncate(struct tasklog *tl, uint64_t uid, const char *name,
		     uint64_t log_len, uint64_t nrecs)
{
	struct fd_entry *e;
	int rc;

	rc = get_fds(tl, uid, name, &e);
	if (rc)
		return rc;
	rc = need_meta(tl, e, name);
	if (!rc && (io->ftruncate(e->log_fd, log_len) ||
		    io->ftruncate(e->meta_fd, nrecs * TASKLOG_REC)))
		rc = -errno;
	put_fds(tl, e);
	tasklog_verify_forget(tl, uid);
	return rc;
}

int tasklog_remove(struct tasklog *tl, uint64_t uid, const char *name)
{
	char from[4400], to[4400];
	int rc;

	forget_fds(tl, uid);
	tasklog_verify_forget(tl, uid);
	snprintf(from, sizeof(from), "%s/%s", tl->dir, name);
	snprintf(to, sizeof(to), "%s/.trash-%016" PRIx64, tl->dir, uid);
	rc = io->rename(from, to) ? -errno : 0;
	if (rc == -ENOTEMPTY || rc == -EEXIST) {
		/*
		 * A trash of this uid already: what a create that was not to be
		 * applied left of a failed try, moved there by a batch that then
		 * failed itself.  Nobody's (a live task's would have been moved
		 * back by the batch's undo, or by recovery): empty it first.
		 */
		rc = tasklog_purge(tl, uid);
		if (!rc)
			rc = io->rename(from, to) ? -errno : 0;
	}
	if (rc && rc != -ENOENT)
		return rc;
	if (sync_one(tl, -1, tl->dir))
		return -errno;
	return 0;
}

int tasklog_unremove(struct tasklog *tl, uint64_t uid, const char *name)
{
	static const char *const files[] = { "events", "events.meta" };
	char from[4400], to[4400], path[4500];

	struct stat sb;

	forget_fds(tl, uid);
	snprintf(from, sizeof(from), "%s/.trash-%016" PRIx64, tl->dir, uid);
	snprintf(to, sizeof(to), "%s/%s", tl->dir, name);
	/*
	 * No trash: the move failed (its rename), and the directory at @name
	 * is the task's own, not a newer one's.  Its files stay.
	 */
	if (lstat(from, &sb))
		return errno == ENOENT ? 0 : -errno;
	/* a task of the same name created after the delete: not committed either */
	for (size_t i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", to, files[i]);
		if (io->unlink(path) && errno != ENOENT)
			return -errno;
	}
	if (io->rmdir(to) && errno != ENOENT)
		return -errno;
	if (io->rename(from, to))
		return -errno;
	return sync_one(tl, -1, tl->dir) ? -errno : 0;
}

int tasklog_trash_list(struct tasklog *tl, int (*cb)(void *arg, uint64_t uid), void *arg)
{
	struct dirent *de;
	DIR *d = opendir(tl->dir);
	int rc = 0;

	if (!d)
		return -errno;
	while (!rc && (de = readdir(d))) {
		char *end;
		uint64_t uid;

		if (strncmp(de->d_name, ".trash-", 7))
			continue;
		uid = strtoull(de->d_name + 7, &end, 16);
		if (*end || end == de->d_name + 7)
			continue;
		rc = cb(arg, uid);
	}
	closedir(d);
	return rc;
}

int tasklog_purge(struct tasklog *tl, uint64_t uid)
{
	static const char *const files[] = { "events", "events.meta" };
	char path[4400];

	for (size_t i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/.trash-%016" PRIx64 "/%s", tl->dir, uid, files[i]);
		if (io->unlink(path) && errno != ENOENT)
			return -errno;
	}
	snprintf(path, sizeof(path), "%s/.trash-%016" PRIx64, tl->dir, uid);
	if (io->rmdir(path) && errno != ENOENT)
		return -errno;
	return 0;
}

/* ---- rewrites ---- */

#define RW_DIR ".rewrite"
#define RW_CHUNK (1u << 20)

struct tasklog_rw {
	struct tasklog *tl;
	struct fd_entry *old;		/* the task's current files, held */
	uint64_t uid;
	char name[256];
	int fd[2];			/* new log, new sidecar */
	uint64_t from[2], done[2];	/* old file position copied from; bytes copied */
	bool installed;
	char *buf;
};

static void rw_path(const struct tasklog *tl, uint64_t uid, int which, char *buf, size_t n)
{
	snprintf(buf, n, "%s/" RW_DIR "/%016" PRIx64 ".%s", tl->dir, uid, which ? "meta" : "events");
}

int tasklog_rw_open(struct tasklog *tl, uint64_t uid, const char *name, uint64_t from_off,
		    uint64_t from_idx, struct tasklog_rw **out)
{
	struct tasklog_rw *rw = calloc(1, sizeof(*rw));
	char path[4400];
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
	rc = get_fds(tl, uid, name, &rw->old);
	if (!rc)
		rc = need_meta(tl, rw->old, name);
	snprintf(path, sizeof(path), "%s/" RW_DIR, tl->dir);
	if (!rc && io_mkdir_durable(path, 0755))
		rc = -errno;
	for (int i = 0; i < 2 && !rc; i++) {
		rw_path(tl, uid, i, path, sizeof(path));
		rw->fd[i] = open_shed(tl, path, O_RDWR | O_CREAT | O_TRUNC, 0644);
		if (rw->fd[i] < 0)
			rc = -errno;
	}
	if (rc) {
		tasklog_rw_free(rw);
		return rc;
	}
	*out = rw;
	return 0;
}

int tasklog_rw_copy(struct tasklog_rw *rw, uint64_t end_off, uint64_t end_idx)
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

int tasklog_rw_sync(struct tasklog_rw *rw)
{
	char path[4400];

	/*
	 * The files' entries too: once the index has switched, recovery renames
	 * them into place, and a lost entry would leave the old log under the
	 * new offsets.  A failure here is not sticky: the files are dropped.
	 */
	snprintf(path, sizeof(path), "%s/" RW_DIR, rw->tl->dir);
	if (io->fdatasync(rw->fd[0]) || io->fdatasync(rw->fd[1]) || io_fsync_dir(path))
		return -errno;
	return 0;
}

int tasklog_rw_install(struct tasklog_rw *rw)
{
	static const char *const files[] = { "events", "events.meta" };
	char from[4400], to[4400];

	for (int i = 0; i < 2; i++) {
		rw_path(rw->tl, rw->uid, i, from, sizeof(from));
		file_path(rw->tl, rw->name, files[i], to, sizeof(to));
		if (io->rename(from, to))
			return -errno;
	}
	rw->installed = true;
	forget_fds(rw->tl, rw->uid);
	return 0;
}

void tasklog_rw_keep(struct tasklog_rw *rw)
{
	rw->installed = true;	/* installed or to be: the files are no longer ours to drop */
}

void tasklog_rw_free(struct tasklog_rw *rw)
{
	char path[4400];

	if (!rw)
		return;
	for (int i = 0; i < 2; i++) {
		if (rw->fd[i] >= 0)
			io->close(rw->fd[i]);
		if (!rw->installed) {
			rw_path(rw->tl, rw->uid, i, path, sizeof(path));
			io->unlink(path);
		}
	}
	if (rw->old)
		put_fds(rw->tl, rw->old);
	free(rw->buf);
	free(rw);
}

int tasklog_rw_finish(struct tasklog *tl, uint64_t uid, const char *name)
{
	static const char *const files[] = { "events", "events.meta" };
	char from[4400], to[4400];

	for (int i = 0; i < 2; i++) {
		rw_path(tl, uid, i, from, sizeof(from));
		file_path(tl, name, files[i], to, sizeof(to));
		if (io->rename(from, to) && errno != ENOENT)
			return -errno;
	}
	forget_fds(tl, uid);
	snprintf(to, sizeof(to), "%s/%s", tl->dir, name);
	snprintf(from, sizeof(from), "%s/" RW_DIR, tl->dir);
	if (sync_one(tl, -1, to) || (sync_one(tl, -1, from) && errno != ENOENT))
		return -errno;
	return 0;
}

int tasklog_rw_clean(struct tasklog *tl)
{
	char path[4400];
	struct dirent *de;
	DIR *d;
	int rc = 0;

	snprintf(path, sizeof(path), "%s/" RW_DIR, tl->dir);
	d = opendir(path);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.') {
			snprintf(path, sizeof(path), "%s/" RW_DIR "/%s", tl->dir, de->d_name);
			evl_log(LOG_INFO, "removing %s: a log rewrite that never took effect", path);
			if (io->unlink(path) && errno != ENOENT)
				rc = -errno;
		}
	closedir(d);
	return rc;
}

/* ---- the sidecar format (format 1: 24-byte records without the event checksum) ---- */

#define FORMAT_FILE "format"
#define FORMAT 2

/*
 * DATA_DIR/format: "evlogfs-format N XXXXXXXX\n", the hex an XXH32 of
 * "evlogfs-format N", so that a flipped bit is damage (the sidecars are
 * looked at again), not a claim of a newer format.  Returns N, or 0 if
 * @buf is not such a line.
 */
static unsigned format_parse(const char *buf)
{
	unsigned n, sum;
	int head;
	char nl;

	if (sscanf(buf, "evlogfs-format %u%n %8x%c", &n, &head, &sum, &nl) != 3 || nl != '\n' ||
	    sum != XXH32(buf, head, 0) || strchr(buf, '\n')[1])
		return 0;
	return n;
}

static int format_line(char *buf, size_t len)
{
	int head = snprintf(buf, len, "evlogfs-format %u", FORMAT);

	return head + snprintf(buf + head, len - head, " %08x\n", XXH32(buf, head, 0));
}

/* The format of a sidecar's @size bytes at @m: 2, 1, or 0 (empty, or no record checks out). */
static int sidecar_format(const unsigned char *m, size_t size)
{
	struct tasklog_rec r;

	for (size_t k = 0; k < 4; k++) {
		if ((k + 1) * TASKLOG_REC <= size && !tasklog_decode(m + k * TASKLOG_REC, &r))
			return 2;
		if ((k + 1) * TASKLOG_REC_V1 <= size && !tasklog_decode_v1(m + k * TASKLOG_REC_V1, &r))
			return 1;
	}
	return 0;
}

static void *map_ro(int fd, size_t *size)
{
	struct stat sb;
	void *p;

	*size = 0;
	if (fstat(fd, &sb))
		return NULL;
	*size = sb.st_size;
	if (!*size)
		return "";
	p = mmap(NULL, *size, PROT_READ, MAP_PRIVATE, fd, 0);
	return p == MAP_FAILED ? NULL : p;
}

/*
 * How many of the @nrec format-1 records of @m to upgrade: up to the last
 * whose event is a line of log @l.  Records past it are a batch a power
 * loss cut from the log (bytes gone, or a hole of zeros) after its records
 * were written: a checksum made of those bytes would not be the event's,
 * and the replay of the journal, which still holds the batch, could not
 * write it again over records that differ.  Dropped, they are written
 * anew by that replay (or, if no journal holds them, the index's check at
 * open finds the sidecar short, as before the upgrade).
 */
static size_t upgrade_keep(const unsigned char *m, size_t nrec, const unsigned char *l,
			   size_t lsize)
{
	size_t keep = 0, off = 0;

	for (size_t k = 0; k < nrec; k++) {
		struct tasklog_rec r;

		if (tasklog_decode_v1(m + k * TASKLOG_REC_V1, &r)) {
			const unsigned char *nl = off < lsize ? memchr(l + off, '\n', lsize - off)
							      : NULL;

			off = nl ? (size_t)(nl - l) + 1 : lsize;
			continue;
		}
		if (off <= lsize && r.len && r.len <= lsize - off && l[off] &&
		    l[off + r.len - 1] == '\n')
			keep = k + 1;
		off += r.len;
	}
	return keep;
}

/*
 * Rewrite format-1 sidecar @meta (of log @log) as format 2: each record
 * with its event's checksum, computed from the log.  A record that does
 * not check out becomes 32 zero bytes (it fails its check as before: fsck
 * mends it from the log and the index), and the next event starts after
 * the next newline.  A partial last record is dropped (a torn write), and
 * so are the last records whose events the log lacks (upgrade_keep).
 * Crash-safe: a new file, synced, renamed over the old, directory synced.
 * 0 (also: not format 1), or -errno.
 */
static int upgrade_sidecar(const char *meta, const char *log, bool *done)
{
	char tmp[4600];
	const unsigned char *m = NULL, *l = NULL;
	unsigned char out[64 * TASKLOG_REC];
	size_t msize = 0, lsize = 0, k, nrec, off = 0, at = 0;
	int mfd, lfd = -1, fd = -1, rc = 0;

	*done = false;
	mfd = io->open(meta, O_RDONLY | O_CLOEXEC, 0);
	if (mfd < 0)
		return errno == ENOENT ? 0 : -errno;
	m = map_ro(mfd, &msize);
	if (!m) {
		rc = -errno;
		goto out;
	}
	if (sidecar_format(m, msize) != 1)
		goto out;
	lfd = io->open(log, O_RDONLY | O_CLOEXEC, 0);
	if (lfd >= 0)
		l = map_ro(lfd, &lsize);
	else if (errno != ENOENT)
		rc = -errno;
	if (rc || (lfd >= 0 && !l)) {
		rc = rc ? rc : -errno;
		goto out;
	}
	snprintf(tmp, sizeof(tmp), "%s.upgrade", meta);
	fd = io->open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	nrec = upgrade_keep(m, msize / TASKLOG_REC_V1, l, lsize);
	for (k = 0; k < nrec && !rc; k++) {
		struct tasklog_rec r;
		unsigned char *o = out + (k % 64) * TASKLOG_REC;

		if (tasklog_decode_v1(m + k * TASKLOG_REC_V1, &r)) {
			const unsigned char *nl = off < lsize ? memchr(l + off, '\n', lsize - off) : NULL;

			memset(o, 0, TASKLOG_REC);
			off = nl ? (size_t)(nl - l) + 1 : lsize;
		} else {
			if (r.len <= lsize - off && off <= lsize)
				r.sum = tasklog_sum(l + off, r.len);
			off += r.len;
			tasklog_encode(&r, o);
		}
		if (k % 64 == 63 || k + 1 == nrec) {
			size_t n = k % 64 + 1;

			if (io_pwrite_all(fd, out, n * TASKLOG_REC, at))
				rc = -errno;
			at += n * TASKLOG_REC;
		}
	}
	if (!rc && io->fsync(fd))
		rc = -errno;
	if (!rc && io->rename(tmp, meta))
		rc = -errno;
	if (rc) {
		io->unlink(tmp);
	} else {
		char dir[4600], *slash;

		snprintf(dir, sizeof(dir), "%s", meta);
		slash = strrchr(dir, '/');
		if (slash)
			*slash = '\0';
		if (io_fsync_dir(dir))
			rc = -errno;
		*done = !rc;
	}
out:
	if (fd >= 0)
		io->close(fd);
	if (l && lsize)
		munmap((void *)l, lsize);
	if (m && msize)
		munmap((void *)m, msize);
	if (lfd >= 0)
		io->close(lfd);
	io->close(mfd);
	return rc;
}

/* Is sidecar @meta of format 1?  (A missing or unreadable one is not.) */
static bool is_format1(const char *meta)
{
	unsigned char head[4 * TASKLOG_REC];
	ssize_t n;
	int fd;

	fd = io->open(meta, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
		return false;
	n = io_pread_all(fd, head, sizeof(head), 0);
	io->close(fd);
	return n > 0 && sidecar_format(head, n) == 1;
}

/*
 * Look at (or upgrade) every sidecar under @tasks: task directories,
 * .trash-<uid> (a delete that recovery may undo), .rewrite/<uid>.meta.
 * Counts format-1 ones in *@old, upgraded ones in *@upgraded.
 */
static int upgrade_all(const char *tasks, bool may_write, uint64_t *old, uint64_t *upgraded)
{
	char meta[4600], log[4600];
	struct dirent *de;
	DIR *d;
	int rc = 0;

	d = opendir(tasks);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while (!rc && (de = readdir(d))) {
		bool rewrite = !strcmp(de->d_name, ".rewrite");

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (rewrite) {
			char sub[4400];
			struct dirent *re;
			DIR *rd;

			snprintf(sub, sizeof(sub), "%s/.rewrite", tasks);
			rd = opendir(sub);
			while (rd && !rc && (re = readdir(rd))) {
				size_t len = strlen(re->d_name);
				bool done;

				if (len < 6 || strcmp(re->d_name + len - 5, ".meta"))
					continue;
				snprintf(meta, sizeof(meta), "%s/%s", sub, re->d_name);
				snprintf(log, sizeof(log), "%s/%.*s.events", sub, (int)(len - 5),
					 re->d_name);
				if (!is_format1(meta))
					continue;
				(*old)++;
				if (may_write && !(rc = upgrade_sidecar(meta, log, &done)) && done)
					(*upgraded)++;
			}
			if (rd)
				closedir(rd);
			continue;
		}
		{
			bool done;

			snprintf(meta, sizeof(meta), "%s/%s/events.meta", tasks, de->d_name);
			snprintf(log, sizeof(log), "%s/%s/events", tasks, de->d_name);
			if (!is_format1(meta))
				continue;
			(*old)++;
			if (may_write && !(rc = upgrade_sidecar(meta, log, &done)) && done)
				(*upgraded)++;
		}
	}
	closedir(d);
	return rc;
}

int tasklog_format_check(const char *data_dir, bool may_write, bool every, char *why, size_t n)
{
	char path[4200], tasks[4200], buf[64], tmp[4300], line[64];
	uint64_t old = 0, upgraded = 0;
	unsigned have = 0;
	ssize_t got;
	int fd, rc, len;

	snprintf(path, sizeof(path), "%s/" FORMAT_FILE, data_dir);
	fd = io->open(path, O_RDONLY | O_CLOEXEC, 0);
	if (fd >= 0) {
		got = io_pread_all(fd, buf, sizeof(buf) - 1, 0);
		io->close(fd);
		buf[got > 0 ? got : 0] = '\0';
		have = got > 0 ? format_parse(buf) : 0;
		if (have == FORMAT && !every)
			return 0;
		if (have > FORMAT) {
			snprintf(why, n, "%s says the store is of a newer format (%u): this "
				 "evlogfs cannot read it", path, have);
			return -EPROTO;
		}
		/* have == 0: damaged; look at the sidecars as if it were missing */
	} else if (errno != ENOENT) {
		return -errno;
	}
	snprintf(tasks, sizeof(tasks), "%s/tasks", data_dir);
	rc = upgrade_all(tasks, may_write, &old, &upgraded);
	if (rc)
		return rc;
	if (old && !may_write) {
		snprintf(why, n, "%" PRIu64 " task sidecars are of format 1 (an older evlogfs): "
			 "mount the store read-write once, or run evlogctl fsck --repair, to "
			 "upgrade them", old);
		return -EPROTO;
	}
	if (upgraded)
		evl_log(LOG_NOTICE, "%s: %" PRIu64 " task sidecars upgraded to format 2 (each "
			"event's checksum added)", data_dir, upgraded);
	if (!may_write || have == FORMAT)
		return 0;
	len = format_line(line, sizeof(line));
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	fd = io->open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	rc = io_pwrite_all(fd, line, len, 0) || io->fsync(fd) ? -errno : 0;
	io->close(fd);
	if (!rc && io->rename(tmp, path))
		rc = -errno;
	if (!rc && io_fsync_dir(data_dir))
		rc = -errno;
	if (rc)
		io->unlink(tmp);
	return rc;
}

/* ---- proving what a reader is served (each event's checksum) ---- */

static size_t vslot(const struct tasklog *tl, uint64_t uid)
{
	return (size_t)(XXH64(&uid, sizeof(uid), 0) & (tl->vcap - 1));
}

/* The entry of @uid, or NULL.  With vlock held. */
static struct vent *vfind(struct tasklog *tl, uint64_t uid)
{
	if (!tl->vcap)
		return NULL;
	for (size_t i = vslot(tl, uid);; i = (i + 1) & (tl->vcap - 1)) {
		if (tl->vents[i].uid == uid)
			return &tl->vents[i];
		if (!tl->vents[i].uid)
			return NULL;
	}
}

/* Set @uid's entry (made if missing).  With vlock held.  0 or -ENOMEM. */
static int vset(struct tasklog *tl, uint64_t uid, uint64_t off, uint64_t idx)
{
	struct vent *e = vfind(tl, uid);

	if (!e && (tl->nvents + 1) * 2 > tl->vcap) {
		size_t cap = tl->vcap ? tl->vcap * 2 : 256;
		struct vent *old = tl->vents, *nv = calloc(cap, sizeof(*nv));
		size_t oldcap = tl->vcap;

		if (!nv)
			return -ENOMEM;
		tl->vents = nv;
		tl->vcap = cap;
		for (size_t i = 0; i < oldcap; i++)
			if (old[i].uid) {
				size_t k = vslot(tl, old[i].uid);

				while (nv[k].uid)
					k = (k + 1) & (cap - 1);
				nv[k] = old[i];
			}
		free(old);
	}
	if (!e) {
		size_t k = vslot(tl, uid);

		while (tl->vents[k].uid)
			k = (k + 1) & (tl->vcap - 1);
		e = &tl->vents[k];
		e->uid = uid;
		tl->nvents++;
	}
	e->off = off;
	e->idx = idx;
	return 0;
}

void tasklog_verify_forget(struct tasklog *tl, uint64_t uid)
{
	struct vent *e;

	pthread_mutex_lock(&tl->vlock);
	e = vfind(tl, uid);
	if (e) {
		/* backward-shift deletion: the entries after it move up where they may */
		size_t i = e - tl->vents, j = i;

		for (;;) {
			j = (j + 1) & (tl->vcap - 1);
			if (!tl->vents[j].uid)
				break;
			size_t home = vslot(tl, tl->vents[j].uid);

			/* j's entry may fill i if its home is not in (i, j] (cyclically) */
			if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
				tl->vents[i] = tl->vents[j];
				i = j;
			}
		}
		tl->vents[i].uid = 0;
		tl->nvents--;
	}
	pthread_mutex_unlock(&tl->vlock);
}

/* Bytes of log a verification step reads at once (more for one larger event). */
#define VERIFY_CHUNK (256u << 10)

int tasklog_verify(struct tasklog *tl, uint64_t uid, const char *name, uint64_t base_len,
		   uint64_t base_n, uint64_t flen, uint64_t upto, uint64_t *proven,
		   char *why, size_t n)
{
	struct tasklog_rec recs[256];
	uint64_t off, idx, target;
	struct vent *e;
	char *buf = NULL;
	size_t cap = 0;
	int rc = 0;

	if (upto > flen)
		upto = flen;
	pthread_mutex_lock(&tl->vlock);
	e = vfind(tl, uid);
	if (e && e->off >= base_len && e->idx >= base_n) {
		off = e->off - base_len;
		idx = e->idx - base_n;
	} else {
		off = idx = 0;	/* unknown, or retention dropped the head past it */
	}
	pthread_mutex_unlock(&tl->vlock);
	if (off >= upto) {
		if (proven)
			*proven = off;
		return 0;
	}
	/* go on a little past @upto: the next reads of a follower find it done */
	target = flen - upto > VERIFY_CHUNK ? upto + VERIFY_CHUNK : flen;
	while (off < target) {
		ssize_t got = tasklog_read_recs(tl, uid, name, idx, recs, 256);
		size_t k = 0, span = 0;

		/*
		 * A bad record among the next ones may be past what the index
		 * has (a batch a failed write left, cut back later): only the
		 * one at @idx, which an event the index has needs, is damage.
		 */
		if (got == -EILSEQ)
			got = tasklog_read_recs(tl, uid, name, idx, recs, 1);
		if (got == -EILSEQ) {
			snprintf(why, n, "its sidecar record %" PRIu64 " does not check out",
				 base_n + idx + 1);
			rc = -EILSEQ;
			break;
		}
		if (got < 0) {
			rc = (int)got;
			break;
		}
		if (got == 0) {
			snprintf(why, n, "its sidecar ends at event %" PRIu64 ", before log byte %"
				 PRIu64 " the index has", base_n + idx, base_len + off);
			rc = -EUCLEAN;
			break;
		}
		/* the events of these records that a chunk holds (at least one) */
		while (k < (size_t)got && (k == 0 || span + recs[k].len <= VERIFY_CHUNK) &&
		       off + span < target) {
			if (recs[k].len == 0 || recs[k].len > flen - off - span) {
				snprintf(why, n, "its event %" PRIu64 " (log byte %" PRIu64 ") runs "
					 "past the %" PRIu64 " bytes the index has", base_n + idx + k + 1,
					 base_len + off + span, base_len + flen);
				rc = -EUCLEAN;
				break;
			}
			span += recs[k++].len;
		}
		if (rc)
			break;
		if (span > cap) {
			char *nb = realloc(buf, span);

			if (!nb) {
				rc = -ENOMEM;
				break;
			}
			buf = nb;
			cap = span;
		}
		got = tasklog_read(tl, uid, name, off, buf, span);
		if (got >= 0 && (size_t)got < span) {
			snprintf(why, n, "its log ends at byte %" PRIu64 ", before the %" PRIu64
				 " bytes the index has", base_len + off + got, base_len + flen);
			rc = -EUCLEAN;
			break;
		}
		if (got < 0) {
			rc = (int)got;
			break;
		}
		for (size_t i = 0, at = 0; i < k; at += recs[i++].len)
			if (tasklog_sum(buf + at, recs[i].len) != recs[i].sum) {
				snprintf(why, n, "its event %" PRIu64 " (log byte %" PRIu64 ", %" PRIu32
					 " bytes) is not what was written: its checksum does not "
					 "match (damaged on disk)", base_n + idx + i + 1,
					 base_len + off + at, recs[i].len);
				rc = -EBADMSG;
				break;
			}
		if (rc)
			break;
		off += span;
		idx += k;
		pthread_mutex_lock(&tl->vlock);
		e = vfind(tl, uid);
		if (!e || e->off < base_len + off)
			rc = vset(tl, uid, base_len + off, base_n + idx);
		pthread_mutex_unlock(&tl->vlock);
		if (rc)
			break;
	}
	free(buf);
	if (proven)
		*proven = off;
	return rc;
}
