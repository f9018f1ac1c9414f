/*
 * io.h - the I/O seam: every file-system call the core makes goes through it.
 *
 * Caveats: the ops table is process-global and swapped only by tests, before
 * any store is opened and after every store is closed.  The calls keep libc's
 * convention (-1 and errno); modules translate to -errno at their edge.
 */
#ifndef EVL_IO_H
#define EVL_IO_H

#include <sys/types.h>
#include <sys/uio.h>

struct io_ops {
	int (*open)(const char *path, int flags, mode_t mode);
	int (*close)(int fd);
	ssize_t (*pread)(int fd, void *buf, size_t n, off_t off);
	ssize_t (*pwritev)(int fd, const struct iovec *iov, int cnt, off_t off);
	int (*fsync)(int fd);
	int (*fdatasync)(int fd);
	int (*ftruncate)(int fd, off_t len);
	int (*rename)(const char *from, const char *to);
	int (*unlink)(const char *path);
	int (*mkdir)(const char *path, mode_t mode);
	int (*rmdir)(const char *path);
	/* copy_file_range(2) with no flags; a write as far as faults go */
	ssize_t (*copy_range)(int in, loff_t *in_off, int out, loff_t *out_off, size_t len);
	int (*flock)(int fd, int op);
	/* posix_fallocate, but in libc's convention: -1 and errno */
	int (*fallocate)(int fd, off_t off, off_t len);
	/*
	 * The running kernel's boot id (/proc/sys/kernel/random/boot_id), NUL
	 * terminated in @buf: file bytes not fsynced survive a crash of the
	 * process but not of the machine, so recovery trusts them only in the
	 * boot that wrote them.  -1 and errno if unknown.
	 */
	int (*boot_id)(char *buf, size_t n);
	/*
	 * A step of a multi-step change is done (an index commit between file
	 * operations).  NULL in libc's ops; tests crash here as at any call.
	 * "index commit" and "index synced" tell the power-loss seam whether
	 * the index's last commit could still be undone; they are no steps.
	 */
	void (*mark)(const char *what);
};

/* The ops in force.  Points at io_libc unless a test installed others. */
extern const struct io_ops *io;
extern const struct io_ops io_libc;

/* Install @ops (NULL restores libc).  Tests only; see the caveat above. */
void io_set_ops(const struct io_ops *ops);

/*
 * Write all of @buf at @off, retrying short writes.  A short write that
 * cannot progress returns -1 with errno set (ENOSPC for a zero-byte write).
 */
int io_pwrite_all(int fd, const void *buf, size_t n, off_t off);
int io_pwritev_all(int fd, struct iovec *iov, int cnt, off_t off);

/* Read up to @n bytes at @off, retrying short reads; returns bytes or -1. */
ssize_t io_pread_all(int fd, void *buf, size_t n, off_t off);

/* Report a finished step to the seam (see io_ops.mark). */
void io_mark(const char *what);

/* fsync the directory @path (after creating, renaming or removing in it). */
int io_fsync_dir(const char *path);

/*
 * mkdir @path, and if it was made, fsync its parent so that the new entry
 * survives a power loss.  0 if made or already there (a directory), else
 * -1 and errno.
 */
int io_mkdir_durable(const char *path, mode_t mode);

#endif
