/*
 * tasklog.c - task logs: a task's directory and files (create, write,
 * pin, sync, cut, set aside in the trash and back), with the attributes
 * that carry its uid and owner.
 *
 * The descriptor cache (and reads through it) is tasklog_fd.c's; the
 * sidecar's records, DATA_DIR/format and the proof of what a reader is
 * served are sidecar.c's; the rewrite of a log for retention is
 * rewrite.c's.  All four implement tasklog.h and share tasklog_i.h; each
 * calls only those before it in tasklog_fd.c, sidecar.c, rewrite.c,
 * tasklog.c.
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

static int create_empty(struct tasklog *tl, const char *path)
{
	int fd = tasklog_open_shed(tl, path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (tasklog_sync_one(tl, fd, NULL))
		rc = -errno;
	io->close(fd);
	return rc;
}

int tasklog_create(struct tasklog *tl, uint64_t uid, const char *name,
		   const struct tasklog_owner *owner)
{
	char path[DD_PATH_MAX];
	int rc;

	/* 0 marks a free descriptor slot: tasklog_forget_fds(0) would close those */
	if (!uid)
		return -EINVAL;
	tasklog_forget_fds(tl, uid);
	if (dd_task(path, tl->data_dir, name, NULL))
		return -ENAMETOOLONG;
	if (io->mkdir(path, 0755) && errno != EEXIST)
		return -errno;
	if (dd_task(path, tl->data_dir, name, DD_EVENTS))
		return -ENAMETOOLONG;
	rc = create_empty(tl, path);
	if (rc)
		return rc;
	if (dd_task(path, tl->data_dir, name, DD_META))
		return -ENAMETOOLONG;
	rc = create_empty(tl, path);
	if (rc)
		return rc;
	if (dd_task(path, tl->data_dir, name, NULL))
		return -ENAMETOOLONG;
	tasklog_mark(tl->data_dir, name, uid, owner);
	if (tasklog_sync_one(tl, -1, path) || tasklog_sync_one(tl, -1, tl->dir))
		return -errno;
	return 0;
}

void tasklog_mark(const char *data_dir, const char *name, uint64_t uid,
		  const struct tasklog_owner *owner)
{
	char path[DD_PATH_MAX];
	unsigned char le[12];

	/* for reindex without an index: best effort (some file systems refuse) */
	if (dd_task(path, data_dir, name, NULL))
		return;
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

uint64_t tasklog_uid_of(const char *data_dir, const char *name)
{
	char path[DD_PATH_MAX];
	unsigned char le[8];

	if (dd_task(path, data_dir, name, NULL) ||
	    getxattr(path, TASKLOG_UID_XATTR, le, sizeof(le)) != sizeof(le))
		return 0;
	return get_le64(le);
}

bool tasklog_owner_of(const char *data_dir, const char *name, struct tasklog_owner *out)
{
	char path[DD_PATH_MAX];
	unsigned char le[12];

	if (dd_task(path, data_dir, name, NULL) ||
	    getxattr(path, TASKLOG_OWNER_XATTR, le, sizeof(le)) != sizeof(le))
		return false;
	out->uid = get_le32(le);
	out->gid = get_le32(le + 4);
	out->mode = get_le32(le + 8) & 07777;
	return true;
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

	rc = tasklog_get_fds(tl, uid, name, &e);
	if (rc)
		return rc;
	rc = tasklog_need_meta(tl, e, name);
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
	tasklog_put_fds(tl, e);
	return rc;
}

int tasklog_rescue(struct tasklog *tl, const char *name, const void *data, size_t len)
{
	char path[DD_PATH_MAX];
	int fd, rc = 0;

	if (dd_task(path, tl->data_dir, name, DD_UNAPPLIED))
		return -ENAMETOOLONG;
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
	if (!rc && dd_task(path, tl->data_dir, name, NULL))
		rc = -ENAMETOOLONG;
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
	int rc = tasklog_get_fds(tl, uid, name, &e);

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
		tasklog_put_fds(tl, &f->e);
}

int tasklog_sync(struct tasklog *tl, uint64_t uid, const char *name)
{
	struct fd_entry *e;
	int rc;

	if (tasklog_sync_failed(tl))
		return -EIO;	/* a success now would vouch for dropped pages */
	rc = tasklog_get_fds(tl, uid, name, &e);
	if (rc)
		return rc;
	/* the log first: a task whose sidecar is gone still keeps its events' bytes */
	if (tasklog_sync_one(tl, e->log_fd, NULL))
		rc = -errno;
	if (!rc)
		rc = tasklog_need_meta(tl, e, name);
	if (!rc && tasklog_sync_one(tl, e->meta_fd, NULL))
		rc = -errno;
	tasklog_put_fds(tl, e);
	return rc;
}

int tasklog_sizes(struct tasklog *tl, const char *name, uint64_t *log_len, uint64_t *nrecs)
{
	char path[DD_PATH_MAX];
	struct stat st;

	if (dd_task(path, tl->data_dir, name, DD_EVENTS))
		return -ENAMETOOLONG;
	if (stat(path, &st))
		return -errno;
	*log_len = st.st_size;
	if (dd_task(path, tl->data_dir, name, DD_META))
		return -ENAMETOOLONG;
	if (stat(path, &st))
		return -errno;
	*nrecs = st.st_size / TASKLOG_REC;
	return 0;
}

int tasklog_truncate(struct tasklog *tl, uint64_t uid, const char *name,
		     uint64_t log_len, uint64_t nrecs)
{
	struct fd_entry *e;
	int rc;

	rc = tasklog_get_fds(tl, uid, name, &e);
	if (rc)
		return rc;
	rc = tasklog_need_meta(tl, e, name);
	if (!rc && (io->ftruncate(e->log_fd, log_len) ||
		    io->ftruncate(e->meta_fd, nrecs * TASKLOG_REC)))
		rc = -errno;
	tasklog_put_fds(tl, e);
	tasklog_verify_forget(tl, uid);
	return rc;
}

int tasklog_remove(struct tasklog *tl, uint64_t uid, const char *name)
{
	char from[DD_PATH_MAX], to[DD_PATH_MAX];
	int rc;

	tasklog_forget_fds(tl, uid);
	tasklog_verify_forget(tl, uid);
	if (dd_task(from, tl->data_dir, name, NULL) || dd_trash(to, tl->data_dir, uid, NULL))
		return -ENAMETOOLONG;
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
	if (tasklog_sync_one(tl, -1, tl->dir))
		return -errno;
	return 0;
}

int tasklog_unremove(struct tasklog *tl, uint64_t uid, const char *name)
{
	static const char *const files[] = { DD_EVENTS, DD_META };
	char from[DD_PATH_MAX], to[DD_PATH_MAX], path[DD_PATH_MAX];

	struct stat sb;

	tasklog_forget_fds(tl, uid);
	if (dd_trash(from, tl->data_dir, uid, NULL) || dd_task(to, tl->data_dir, name, NULL))
		return -ENAMETOOLONG;
	/*
	 * No trash: the move failed (its rename), and the directory at @name
	 * is the task's own, not a newer one's.  Its files stay.
	 */
	if (lstat(from, &sb))
		return errno == ENOENT ? 0 : -errno;
	/* a task of the same name created after the delete: not committed either */
	for (size_t i = 0; i < 2; i++) {
		if (dd_task(path, tl->data_dir, name, files[i]))
			return -ENAMETOOLONG;
		if (io->unlink(path) && errno != ENOENT)
			return -errno;
	}
	if (io->rmdir(to) && errno != ENOENT)
		return -errno;
	if (io->rename(from, to))
		return -errno;
	return tasklog_sync_one(tl, -1, tl->dir) ? -errno : 0;
}

int tasklog_trash_list(struct tasklog *tl, int (*cb)(void *arg, uint64_t uid), void *arg)
{
	struct dirent *de;
	DIR *d = opendir(tl->dir);
	int rc = 0;

	if (!d)
		return -errno;
	while (!rc && (de = readdir(d))) {
		uint64_t uid;

		if (dd_is_trash(de->d_name, &uid))
			rc = cb(arg, uid);
	}
	closedir(d);
	return rc;
}

int tasklog_purge(struct tasklog *tl, uint64_t uid)
{
	static const char *const files[] = { DD_EVENTS, DD_META };
	char path[DD_PATH_MAX];

	for (size_t i = 0; i < 2; i++) {
		if (dd_trash(path, tl->data_dir, uid, files[i]))
			return -ENAMETOOLONG;
		if (io->unlink(path) && errno != ENOENT)
			return -errno;
	}
	if (dd_trash(path, tl->data_dir, uid, NULL))
		return -ENAMETOOLONG;
	if (io->rmdir(path) && errno != ENOENT)
		return -errno;
	return 0;
}
