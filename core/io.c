/*
 * io.c - the libc side of the I/O seam, and helpers that loop over it.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <stdio.h>
#include <unistd.h>

#include "datadir.h"	/* DD_PATH_MAX only: io.c calls nothing above it */
#include "io.h"

static int libc_open(const char *path, int flags, mode_t mode)
{
	return open(path, flags | O_CLOEXEC, mode);
}

static int libc_fallocate(int fd, off_t off, off_t len)
{
	int err = posix_fallocate(fd, off, len);

	if (err) {
		errno = err;
		return -1;
	}
	return 0;
}

static int libc_boot_id(char *buf, size_t n)
{
	int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	ssize_t got;
	int saved;

	if (fd < 0)
		return -1;
	got = read(fd, buf, n - 1);
	saved = errno;
	close(fd);
	if (got <= 0) {
		errno = got < 0 ? saved : ENODATA;
		return -1;
	}
	while (got > 0 && (buf[got - 1] == '\n' || buf[got - 1] == ' '))
		got--;
	buf[got] = '\0';
	return 0;
}

static ssize_t libc_copy_range(int in, loff_t *in_off, int out, loff_t *out_off, size_t len)
{
	return copy_file_range(in, in_off, out, out_off, len, 0);
}

const struct io_ops io_libc = {
	.open = libc_open,
	.close = close,
	.pread = pread,
	.pwritev = pwritev,
	.fsync = fsync,
	.fdatasync = fdatasync,
	.ftruncate = ftruncate,
	.rename = rename,
	.unlink = unlink,
	.mkdir = mkdir,
	.rmdir = rmdir,
	.copy_range = libc_copy_range,
	.flock = flock,
	.fallocate = libc_fallocate,
	.boot_id = libc_boot_id,
};

const struct io_ops *io = &io_libc;

void io_set_ops(const struct io_ops *ops)
{
	io = ops ? ops : &io_libc;
}

int io_pwritev_all(int fd, struct iovec *iov, int cnt, off_t off)
{
	while (cnt > 0) {
		ssize_t n = io->pwritev(fd, iov, cnt, off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			errno = ENOSPC;
			return -1;
		}
		off += n;
		while (cnt > 0 && (size_t)n >= iov->iov_len) {
			n -= iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			iov->iov_base = (char *)iov->iov_base + n;
			iov->iov_len -= n;
		}
	}
	return 0;
}

int io_pwrite_all(int fd, const void *buf, size_t n, off_t off)
{
	struct iovec iov = { (void *)buf, n };

	return io_pwritev_all(fd, &iov, 1, off);
}

ssize_t io_pread_all(int fd, void *buf, size_t n, off_t off)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = io->pread(fd, (char *)buf + done, n - done, off + done);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			break;
		done += r;
	}
	return done;
}

void io_mark(const char *what)
{
	if (io->mark)
		io->mark(what);
}

int io_fsync_dir(const char *path)
{
	int fd = io->open(path, O_RDONLY | O_DIRECTORY, 0);
	int rc, saved;

	if (fd < 0)
		return -1;
	rc = io->fsync(fd);
	saved = errno;
	io->close(fd);
	errno = saved;
	return rc;
}

int io_mkdir_durable(const char *path, mode_t mode)
{
	char parent[DD_PATH_MAX];
	struct stat sb;

	if (io->mkdir(path, mode)) {
		int saved = errno;

		if (saved == EEXIST && stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
			return 0;
		errno = saved;
		return -1;
	}
	if (snprintf(parent, sizeof(parent), "%s", path) >= (int)sizeof(parent)) {
		errno = ENAMETOOLONG;	/* made, but its parent cannot be named: not durable */
		return -1;
	}
	return io_fsync_dir(dirname(parent));
}
