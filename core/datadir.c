/*
 * datadir.c - the data directory's shared mechanics that are not the store
 * itself (datadir.h): the paths inside it, who holds the store, and
 * removing a tree inside it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "datadir.h"
#include "evlog.h"
#include "io.h"

/* ---- paths ---- */

int dd_check(const char *dir)
{
	return strlen(dir) > DD_DIR_MAX ? -ENAMETOOLONG : 0;
}

/* Format into @buf, all of it or nothing: 0 or -ENAMETOOLONG (@buf ""). */
static int __attribute__((format(printf, 2, 3))) dd_fmt(char buf[static DD_PATH_MAX],
							 const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, DD_PATH_MAX, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= DD_PATH_MAX) {
		buf[0] = 0;
		return -ENAMETOOLONG;
	}
	return 0;
}

int dd_join(char buf[static DD_PATH_MAX], const char *a, const char *b)
{
	return dd_fmt(buf, "%s/%s", a, b);
}

int dd_suffix(char buf[static DD_PATH_MAX], const char *path, const char *suffix)
{
	return dd_fmt(buf, "%s%s", path, suffix);
}

int dd_path(char buf[static DD_PATH_MAX], const char *dir, const char *name, const char *file)
{
	return file ? dd_fmt(buf, "%s/%s/%s", dir, name, file) : dd_fmt(buf, "%s/%s", dir, name);
}

int dd_task(char buf[static DD_PATH_MAX], const char *dir, const char *task, const char *file)
{
	if (strlen(task) > NAME_MAX) {
		buf[0] = 0;
		return -ENAMETOOLONG;
	}
	return file ? dd_fmt(buf, "%s/" DD_TASKS "/%s/%s", dir, task, file) :
		      dd_fmt(buf, "%s/" DD_TASKS "/%s", dir, task);
}

int dd_trash(char buf[static DD_PATH_MAX], const char *dir, uint64_t uid, const char *file)
{
	return file ? dd_fmt(buf, "%s/" DD_TASKS "/" DD_TRASH_PREFIX "%016" PRIx64 "/%s", dir,
			     uid, file) :
		      dd_fmt(buf, "%s/" DD_TASKS "/" DD_TRASH_PREFIX "%016" PRIx64, dir, uid);
}

int dd_is_trash(const char *name, uint64_t *uid)
{
	size_t n = strlen(DD_TRASH_PREFIX);
	char *end;
	uint64_t v;

	if (strncmp(name, DD_TRASH_PREFIX, n))
		return 0;
	v = strtoull(name + n, &end, 16);
	if (*end || end == name + n)
		return 0;
	if (uid)
		*uid = v;
	return 1;
}

int dd_rewrite(char buf[static DD_PATH_MAX], const char *dir, uint64_t uid, const char *file)
{
	return file ? dd_fmt(buf, "%s/" DD_TASKS "/" DD_REWRITE "/%016" PRIx64 ".%s", dir, uid,
			     file) :
		      dd_fmt(buf, "%s/" DD_TASKS "/" DD_REWRITE, dir);
}

/* ---- who holds the store ---- */

/* The pid holding a flock on the inode @sb, as /proc/locks says (0: not found). */
static long lock_owner(const struct stat *sb)
{
	char line[256], type[16];
	unsigned int maj, min;
	unsigned long long ino;
	long pid, found = 0;
	FILE *f = fopen("/proc/locks", "re");

	if (!f)
		return 0;
	/* "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; waiters say "1: -> FLOCK" */
	while (!found && fgets(line, sizeof(line), f))
		if (sscanf(line, "%*d: %15s %*s %*s %ld %x:%x:%llu", type, &pid, &maj, &min,
			   &ino) == 5 && !strcmp(type, "FLOCK") && ino == sb->st_ino &&
		    maj == major(sb->st_dev) && min == minor(sb->st_dev))
			found = pid;
	fclose(f);
	return found;
}

/* Is store @dir locked?  1 (its inode in *@sb), 0, or -errno. */
static int held_at(const char *path, int flags, struct stat *sb)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | flags), err = 0;

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (flock(fd, LOCK_SH | LOCK_NB) == 0) {
		close(fd);
		return 0;
	}
	if (errno != EWOULDBLOCK || fstat(fd, sb))
		err = errno;
	close(fd);
	return err ? -err : 1;
}

/* The directory's flock, or DATA_DIR/lock's (all a daemon before the directory lock took). */
static int store_held(const char *dir, struct stat *sb)
{
	char path[DD_PATH_MAX];
	int rc = held_at(dir, O_DIRECTORY, sb);

	if (rc)
		return rc;
	rc = dd_path(path, dir, DD_LOCK, NULL);
	return rc ? rc : held_at(path, 0, sb);
}

int evl_store_holder(const char *dir, char *buf, size_t n)
{
	char path[DD_PATH_MAX], holder[512];
	const char *h = NULL;
	struct stat sb;
	long owner = 0, pid = 0;
	int rc;

	/*
	 * DATA_DIR/lock names the holder once it has written it: until then
	 * it is empty or names an earlier holder, and it may be gone (rm).
	 * Wait a little for the pid that holds the lock (/proc/locks); a file
	 * that never names it is not trusted (nor a pid that is not running).
	 */
	rc = dd_path(path, dir, DD_LOCK, NULL);
	if (rc)
		return rc;
	for (int tries = 0; tries < 20; tries++) {
		ssize_t len = -1;
		int fd;

		if (tries)
			usleep(50000);
		rc = store_held(dir, &sb);
		if (rc <= 0)
			return rc;	/* released meanwhile, or -errno */
		owner = lock_owner(&sb);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			len = read(fd, holder, sizeof(holder) - 1);
			close(fd);
		}
		holder[len > 0 ? len : 0] = '\0';
		holder[strcspn(holder, "\n")] = '\0';
		pid = strtol(holder, NULL, 10);
		if (pid > 0 && (owner ? pid == owner : kill(pid, 0) == 0 || errno == EPERM))
			break;
		pid = 0;
	}
	if (pid) {
		h = strchr(holder, ' ');
		h = h && h[1] ? h + 1 : NULL;
	} else {
		pid = owner;
	}
	if (pid)
		snprintf(buf, n, "pid %ld%s%s%s", pid, h ? " (" : "", h ? h : "", h ? ")" : "");
	else
		snprintf(buf, n, "another process (%s does not name it)", path);
	return 1;
}

/* ---- removing a tree ---- */

int store_rmrf(const char *path)
{
	char sub[DD_PATH_MAX];
	struct stat sb;
	DIR *d;
	struct dirent *de;
	int rc = 0;

	if (lstat(path, &sb))
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(sb.st_mode))
		return io->unlink(path) && errno != ENOENT ? -errno : 0;
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d)) && !rc) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		rc = dd_join(sub, path, de->d_name);
		if (!rc)
			rc = store_rmrf(sub);
	}
	closedir(d);
	if (!rc && io->rmdir(path) && errno != ENOENT)
		rc = -errno;
	return rc;
}

/*
 * The lock is a flock on DATA_DIR itself, not on DATA_DIR/lock: deleting
 * or replacing a file (rm, a restore, a cleanup script) cannot release it,
 * and it needs no write access (a store on read-only media can be checked
 * and mounted read-only).  DATA_DIR/lock only tells who holds it, for the
 * messages (evl_store_holder checks it against the lock's real owner).
 */
int store_lock(const char *dir, const char *holder, struct store_lock *l)
{
	char path[DD_PATH_MAX], buf[512];
	int dfd, fd, n, err;

	*l = STORE_LOCK_NONE;
	if (dd_path(path, dir, DD_LOCK, NULL))
		return -ENAMETOOLONG;
	dfd = io->open(dir, O_RDONLY | O_DIRECTORY, 0);
	if (dfd < 0)
		return -errno;
	if (io->flock(dfd, LOCK_EX | LOCK_NB)) {
		err = errno;
		io->close(dfd);
		/* EBUSY: the caller names the holder (evl_store_holder) */
		return err == EWOULDBLOCK ? -EBUSY : -err;
	}
	fd = io->open(path, O_RDWR | O_CREAT, 0644);
	if (fd < 0 && (errno == EROFS || errno == EACCES || errno == EPERM)) {
		/* read-only media or no write access: held, just not named */
		fd = io->open(path, O_RDONLY, 0);
		if (fd >= 0 && io->flock(fd, LOCK_EX | LOCK_NB)) {
			err = errno;
			io->close(fd);
			io->close(dfd);
			return err == EWOULDBLOCK ? -EBUSY : -err;
		}
		l->dir_fd = dfd;
		l->file_fd = fd;	/* -1 if there is no lock file */
		return 0;
	}
	if (fd < 0) {
		err = errno;
		io->close(dfd);
		return -err;
	}
	/* an older daemon holds only this one */
	if (io->flock(fd, LOCK_EX | LOCK_NB)) {
		err = errno;
		io->close(fd);
		io->close(dfd);
		return err == EWOULDBLOCK ? -EBUSY : -err;
	}
	n = snprintf(buf, sizeof(buf), "%ld %s\n", (long)getpid(), holder ? holder : "");
	/* a short write is retried, and one that cannot go on is an error (ENOSPC) */
	if (io->ftruncate(fd, 0) || io_pwrite_all(fd, buf, n, 0)) {
		err = errno;
		io->close(fd);
		io->close(dfd);
		return -err;
	}
	l->dir_fd = dfd;
	l->file_fd = fd;
	return 0;
}

void store_unlock(const char *dir, struct store_lock *l)
{
	if (l->dir_fd < 0)
		return;
	/* an empty lock file says nobody holds the store (read-only media: it stays) */
	if (l->file_fd >= 0) {
		io->ftruncate(l->file_fd, 0);
		io->close(l->file_fd);
	}
	io->close(l->dir_fd);
	*l = STORE_LOCK_NONE;
}
