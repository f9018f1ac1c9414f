/*
 * passthrough - the FUSE floor for the benchmarks: a minimal low-level
 * FUSE file system that appends each write() to a file in a backing
 * directory.  No parsing, no journal, no index.  It negotiates what
 * evlogfs negotiates (max_write 1 MiB, no writeback cache, direct_io on
 * every open file, attributes of files not cached) and runs the same
 * multi-threaded loop, so the difference to evlogfs is what evlogfs does
 * per request.
 *
 * Enough of a file system for the benches: lookup, getattr, mkdir, create,
 * open, read, write, fsync, release, readdir.  Inodes are the backing
 * paths, kept for the life of the mount.
 *
 * Usage: passthrough [-f] [-o opts] BACKING_DIR MOUNTPOINT
 */
#define FUSE_USE_VERSION 312

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include "grow.h"

struct pt {
	char *backing;
	pthread_mutex_t lock;
	char **paths;		/* inode - 1 -> backing path */
	size_t n, cap;
};

static struct pt pt;

/* The backing path of @ino, or NULL.  Paths are never freed before unmount. */
static const char *path_of(fuse_ino_t ino)
{
	const char *p = NULL;

	if (ino == FUSE_ROOT_ID)
		return pt.backing;
	pthread_mutex_lock(&pt.lock);
	if (ino >= 2 && ino - 2 < pt.n)
		p = pt.paths[ino - 2];
	pthread_mutex_unlock(&pt.lock);
	return p;
}

/* The inode of backing path @p, added if new (a linear search: the benches make a few dozen). */
static fuse_ino_t ino_of(const char *p)
{
	fuse_ino_t ino = 0;

	pthread_mutex_lock(&pt.lock);
	for (size_t i = 0; i < pt.n && !ino; i++)
		if (!strcmp(pt.paths[i], p))
			ino = i + 2;
	if (!ino)
		(void)GROW(pt.paths, pt.cap, pt.n + 1);	/* else no inode: refused below */
	if (!ino && pt.n < pt.cap && (pt.paths[pt.n] = strdup(p)))
		ino = ++pt.n + 1;
	pthread_mutex_unlock(&pt.lock);
	return ino;
}

static int child(fuse_ino_t parent, const char *name, char *out, size_t n)
{
	const char *dir = path_of(parent);

	if (!dir)
		return ENOENT;
	if ((size_t)snprintf(out, n, "%s/%s", dir, name) >= n)
		return ENAMETOOLONG;
	return 0;
}

static void reply_entry(fuse_req_t req, const char *path)
{
	struct fuse_entry_param e = { 0 };

	if (lstat(path, &e.attr)) {
		fuse_reply_err(req, errno);
		return;
	}
	e.ino = ino_of(path);
	if (!e.ino) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	e.attr.st_ino = e.ino;
	e.attr_timeout = S_ISDIR(e.attr.st_mode) ? 1.0 : 0;
	e.entry_timeout = 1.0;
	fuse_reply_entry(req, &e);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	conn->max_write = 1 << 20;
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	char path[PATH_MAX];
	int rc = child(parent, name, path, sizeof(path));

	if (rc)
		fuse_reply_err(req, rc);
	else
		reply_entry(req, path);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	const char *p = path_of(ino);
	struct stat st;

	if (!p || lstat(p, &st)) {
		fuse_reply_err(req, p ? errno : ENOENT);
		return;
	}
	st.st_ino = ino;
	fuse_reply_attr(req, &st, S_ISDIR(st.st_mode) ? 1.0 : 0);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	char path[PATH_MAX];
	int rc = child(parent, name, path, sizeof(path));

	if (!rc && mkdir(path, mode))
		rc = errno;
	if (rc)
		fuse_reply_err(req, rc);
	else
		reply_entry(req, path);
}

static void opened(fuse_req_t req, int fd, struct fuse_file_info *fi, const char *path)
{
	fi->fh = fd;
	fi->direct_io = 1;
	if (path) {
		struct fuse_entry_param e = { 0 };

		if (fstat(fd, &e.attr) || !(e.ino = ino_of(path))) {
			close(fd);
			fuse_reply_err(req, ENOMEM);
			return;
		}
		e.attr.st_ino = e.ino;
		e.entry_timeout = 1.0;
		fuse_reply_create(req, &e, fi);
	} else {
		fuse_reply_open(req, fi);
	}
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	char path[PATH_MAX];
	int rc = child(parent, name, path, sizeof(path)), fd = -1;

	if (!rc && (fd = open(path, (fi->flags | O_CREAT) & ~O_NOFOLLOW, mode)) < 0)
		rc = errno;
	if (rc)
		fuse_reply_err(req, rc);
	else
		opened(req, fd, fi, path);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	const char *p = path_of(ino);
	int fd = p ? open(p, fi->flags & ~(O_CREAT | O_EXCL | O_NOFOLLOW)) : -1;

	if (fd < 0)
		fuse_reply_err(req, p ? errno : ENOENT);
	else
		opened(req, fd, fi, NULL);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	char *buf = malloc(size ? size : 1);
	ssize_t n = buf ? pread(fi->fh, buf, size, off) : -1;

	if (n < 0)
		fuse_reply_err(req, buf ? errno : ENOMEM);
	else
		fuse_reply_buf(req, buf, n);
	free(buf);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	/* the backing file is open O_APPEND when the writer's is: write() appends */
	ssize_t n = (fi->flags & O_APPEND) ? write(fi->fh, buf, size) : pwrite(fi->fh, buf, size, off);

	if (n < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_write(req, n);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	fuse_reply_err(req, (datasync ? fdatasync(fi->fh) : fsync(fi->fh)) ? errno : 0);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	close(fi->fh);
	fuse_reply_err(req, 0);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	const char *p = path_of(ino);
	DIR *d = p ? opendir(p) : NULL;

	if (!d) {
		fuse_reply_err(req, p ? errno : ENOENT);
		return;
	}
	fi->fh = (uintptr_t)d;
	fuse_reply_open(req, fi);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	DIR *d = (DIR *)(uintptr_t)fi->fh;
	char *buf = malloc(size), *p = buf;
	struct dirent *de;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	seekdir(d, off);
	while ((de = readdir(d))) {
		struct stat st = { .st_ino = de->d_ino, .st_mode = de->d_type << 12 };
		size_t len = fuse_add_direntry(req, p, size - (p - buf), de->d_name, &st, telldir(d));

		if (len > size - (size_t)(p - buf))
			break;
		p += len;
	}
	fuse_reply_buf(req, buf, p - buf);
	free(buf);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	closedir((DIR *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static const struct fuse_lowlevel_ops ops = {
	.init = op_init,
	.lookup = op_lookup,
	.getattr = op_getattr,
	.mkdir = op_mkdir,
	.create = op_create,
	.open = op_open,
	.read = op_read,
	.write = op_write,
	.fsync = op_fsync,
	.release = op_release,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.releasedir = op_releasedir,
};

/* The first non-option argument is the backing dir; fuse_parse_cmdline takes the rest. */
static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	if (key == FUSE_OPT_KEY_NONOPT && !pt.backing) {
		pt.backing = realpath(arg, NULL);
		return pt.backing ? 0 : -1;
	}
	return 1;
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts opts = { 0 };
	struct fuse_loop_config *lcfg;
	struct fuse_session *se = NULL;
	int rc = 1;

	if (fuse_opt_parse(&args, NULL, NULL, opt_proc) || !pt.backing ||
	    fuse_parse_cmdline(&args, &opts) || !opts.mountpoint) {
		fprintf(stderr, "usage: passthrough [-f] [-o opts] BACKING_DIR MOUNTPOINT\n");
		return 2;
	}
	pthread_mutex_init(&pt.lock, NULL);
	se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
	if (!se || fuse_set_signal_handlers(se) || fuse_session_mount(se, opts.mountpoint))
		goto out;
	fuse_daemonize(opts.foreground);
	lcfg = fuse_loop_cfg_create();
	fuse_loop_cfg_set_clone_fd(lcfg, opts.clone_fd);
	fuse_loop_cfg_set_max_threads(lcfg, opts.max_threads);
	rc = fuse_session_loop_mt(se, lcfg) ? 1 : 0;
	fuse_loop_cfg_destroy(lcfg);
	fuse_session_unmount(se);
	fuse_remove_signal_handlers(se);
out:
	if (se)
		fuse_session_destroy(se);
	free(opts.mountpoint);
	fuse_opt_free_args(&args);
	return rc;
}
