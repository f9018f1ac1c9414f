/*
 * fio.c - the fault seam (fio.h).
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <execinfo.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "io.h"
#include "fio.h"
#include "testutil.h"

#define MAX_FD 4096
#define MAX_FILES 8192

/* A byte range [lo, hi). */
struct range {
	off_t lo, hi;
};

struct file_state {
	char *path;
	off_t synced;
	struct range *drop;	/* bytes a failed fsync dropped, not written since */
	size_t ndrop;
};

/*
 * A directory change (fio_track_dirs): c create, m mkdir, u unlink, d rmdir,
 * r rename (@path the target, @from the source).  Durable once @dir (the
 * parent of @path) is fsynced after it.
 */
struct dir_op {
	long seq;
	char kind;
	bool durable;
	bool replaced_dir;	/* a rename over an empty directory */
	ino_t ino;
	char *dir, *path, *from;
	char *stash;		/* the unlinked or replaced file's inode, or NULL */
};

static pthread_mutex_t fio_lock = PTHREAD_MUTEX_INITIALIZER;
static long counts[FIO_NOPS];
static long fail_at[FIO_NOPS];		/* count at which to fail; -1 none */
static int fail_err[FIO_NOPS];
static bool fail_persist[FIO_NOPS];
static enum fio_op path_op = FIO_NOPS;	/* fio_fail_path: FIO_NOPS none */
static char path_suffix[256];
static int path_err;
static long nfailed;
static bool frozen;
static char *fd_path[MAX_FD];
static bool fd_dir[MAX_FD];
static struct file_state files[MAX_FILES];
static size_t nfiles;
static char *stash_dir;			/* fio_track_dirs: NULL when not tracking */
static struct dir_op *ops;
static size_t nops, ops_cap;
static long op_seq;
static long boot_gen;			/* the seam's boot: fio-boot-N */

/* LMDB writes its files itself: the seam knows them only through io_mark. */
static bool lmdb_file(const char *path)
{
	const char *b = strrchr(path, '/');

	b = b ? b + 1 : path;
	return !strncmp(b, "data.mdb", 8) || !strcmp(b, "lock.mdb");
}

static struct file_state *file_find(const char *path, bool add)
{
	for (size_t i = 0; i < nfiles; i++)
		if (!strcmp(files[i].path, path))
			return &files[i];
	if (!add || nfiles == MAX_FILES || lmdb_file(path))
		return NULL;
	files[nfiles] = (struct file_state){ .path = strdup(path) };
	return &files[nfiles++];
}

static void file_drop(struct file_state *f)
{
	free(f->path);
	free(f->drop);
	*f = files[--nfiles];
}

/* Add [lo, hi) to @f's dropped bytes. */
static void drop_add(struct file_state *f, off_t lo, off_t hi)
{
	struct range *r;

	if (lo >= hi)
		return;
	r = realloc(f->drop, (f->ndrop + 1) * sizeof(*r));
	if (!r)
		abort();
	f->drop = r;
	f->drop[f->ndrop++] = (struct range){ lo, hi };
}

/* Remove [lo, hi) from @f's dropped bytes (written again, or cut away). */
static void drop_sub(struct file_state *f, off_t lo, off_t hi)
{
	size_t n = f->ndrop;

	for (size_t i = 0; i < n; i++) {
		struct range *r = &f->drop[i];

		if (hi <= r->lo || lo >= r->hi)
			continue;
		if (lo > r->lo && hi < r->hi) {
			off_t end = r->hi;

			r->hi = lo;
			drop_add(f, hi, end);	/* may move f->drop: r is not used again */
			continue;
		}
		if (lo <= r->lo)
			r->lo = hi < r->hi ? hi : r->hi;
		else
			r->hi = lo;
	}
	for (size_t i = 0; i < f->ndrop;)
		if (f->drop[i].lo >= f->drop[i].hi)
			f->drop[i] = f->drop[--f->ndrop];
		else
			i++;
}

static long crash_at = -1, crash_steps;
static int crash_code;
static char *crash_dump;		/* fio_powerloss_at */

static void dump_locked(const char *dump);

/* With fio_lock: one more mutating call or step; the process ends at the chosen one. */
static void crash_point(void)
{
	if (crash_at >= 0 && crash_steps == crash_at) {
		if (crash_dump)
			dump_locked(crash_dump);
		_exit(crash_code);
	}
	crash_steps++;
}

void fio_crash_at(long nth, int code)
{
	pthread_mutex_lock(&fio_lock);
	crash_at = nth;
	crash_code = code;
	crash_steps = 0;
	free(crash_dump);
	crash_dump = NULL;
	pthread_mutex_unlock(&fio_lock);
}

void fio_powerloss_at(long nth, int code, const char *dump)
{
	fio_crash_at(nth, code);
	pthread_mutex_lock(&fio_lock);
	crash_dump = strdup(dump);
	pthread_mutex_unlock(&fio_lock);
}

long fio_steps(void)
{
	long n;

	pthread_mutex_lock(&fio_lock);
	n = crash_steps;
	pthread_mutex_unlock(&fio_lock);
	return n;
}

/* An index commit since its last sync: a power loss may undo it (MDB_NOMETASYNC). */
static bool index_unsynced;

static void f_mark(const char *what)
{
	pthread_mutex_lock(&fio_lock);	/* blocks for ever once frozen */
	if (!strcmp(what, "index commit"))
		index_unsynced = true;
	else if (!strcmp(what, "index synced"))
		index_unsynced = false;
	else
		crash_point();
	pthread_mutex_unlock(&fio_lock);
}

#define MAX_SITES 1024
#define SITE_DEPTH 3

struct site {
	enum fio_op op;
	void *pc[SITE_DEPTH];
};

static struct site sites[MAX_SITES];
static long nsites;

/* With fio_lock: note the place of a failed call (frames above the f_* wrapper). */
static void note_site(enum fio_op op)
{
	void *bt[SITE_DEPTH + 3];
	struct site s = { op, { 0 } };
	int n = backtrace(bt, SITE_DEPTH + 3);

	/* bt[0] note_site, bt[1] should_fail, bt[2] the f_* wrapper */
	for (int i = 0; i < SITE_DEPTH && i + 3 < n; i++)
		s.pc[i] = bt[i + 3];
	for (long i = 0; i < nsites; i++)
		if (!memcmp(&sites[i], &s, sizeof(s)))
			return;
	if (nsites < MAX_SITES)
		sites[nsites++] = s;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = s ? strlen(s) : 0, b = strlen(suffix);

	return a >= b && !strcmp(s + a - b, suffix);
}

/*
 * With fio_lock: should this call of @op (on @path, if known) fail?  Sets
 * errno.  @step: the call changes the disk (a crash point); reads and
 * locks do not.
 */
static __attribute__((noinline)) bool should_fail(enum fio_op op, const char *path, bool step)
{
	long n = counts[op]++;

	if (step)
		crash_point();
	if (path_op == op && ends_with(path, path_suffix)) {
		path_op = FIO_NOPS;
		errno = path_err;
		nfailed++;
		note_site(op);
		return true;
	}
	if (fail_at[op] < 0 || n < fail_at[op])
		return false;
	if (!fail_persist[op] && n > fail_at[op])
		return false;
	errno = fail_err[op];
	nfailed++;
	note_site(op);
	return true;
}

long fio_sites(const char *dump)
{
	static const char *const names[FIO_NOPS] = {
		"write", "sync", "truncate", "open", "rename", "read", "unlink", "mkdir", "rmdir",
		"fallocate", "flock"
	};
	FILE *f = dump ? fopen(dump, "a") : NULL;
	long n;

	pthread_mutex_lock(&fio_lock);
	n = nsites;
	for (long i = 0; f && i < nsites; i++) {
		char **sym = backtrace_symbols(sites[i].pc, SITE_DEPTH);

		fprintf(f, "%s", names[sites[i].op]);
		for (int k = 0; k < SITE_DEPTH; k++)
			fprintf(f, " %s", sym && sites[i].pc[k] ? sym[k] : "-");
		fprintf(f, "\n");
		free(sym);
	}
	pthread_mutex_unlock(&fio_lock);
	if (f)
		fclose(f);
	return n;
}

/* ---- directory changes (fio_track_dirs) ---- */

static char *parent_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? strndup(path, slash - path) : strdup(".");
}

static ino_t ino_of(const char *path)
{
	struct stat st;

	return lstat(path, &st) ? 0 : st.st_ino;
}

/* With fio_lock: record a change; returns it (its stash name reserved). */
static struct dir_op *op_add(char kind, const char *path, const char *from)
{
	struct dir_op *o;

	if (nops == ops_cap) {
		size_t cap = ops_cap ? 2 * ops_cap : 256;
		struct dir_op *p = realloc(ops, cap * sizeof(*p));

		if (!p)
			abort();
		ops = p;
		ops_cap = cap;
	}
	o = &ops[nops++];
	*o = (struct dir_op){ .seq = op_seq++, .kind = kind, .dir = parent_of(path),
			      .path = strdup(path), .from = from ? strdup(from) : NULL };
	return o;
}

/* With fio_lock: hard-link @path into the stash (its inode outlives an unlink).  NULL if not. */
static char *stash_link(const char *path)
{
	struct stat st;
	char *s;

	if (lstat(path, &st) || !S_ISREG(st.st_mode))
		return NULL;
	if (asprintf(&s, "%s/%ld", stash_dir, op_seq) < 0)
		abort();
	if (link(path, s)) {
		free(s);
		return NULL;
	}
	return s;
}

/* With fio_lock: the seam's record of file @path moves to @to (NULL: forgotten). */
static void file_moved(const char *path, const char *to)
{
	struct file_state *f = file_find(path, false);

	if (!f)
		return;
	if (!to) {
		file_drop(f);
		return;
	}
	free(f->path);
	f->path = strdup(to);
}

/* With fio_lock: directory @dir was fsynced; the changes in it up to @seq are durable. */
static void dir_synced(const char *dir, long seq)
{
	for (size_t i = 0; i < nops; i++)
		if (ops[i].seq < seq && !strcmp(ops[i].dir, dir))
			ops[i].durable = true;
}

void fio_track_dirs(const char *stash)
{
	mkdir(stash, 0700);
	pthread_mutex_lock(&fio_lock);
	free(stash_dir);
	stash_dir = strdup(stash);
	pthread_mutex_unlock(&fio_lock);
}

/* ---- the calls ---- */

static int f_open(const char *path, int flags, mode_t mode)
{
	bool existed = true;
	int fd;

	pthread_mutex_lock(&fio_lock);
	if (should_fail(FIO_OPEN, path, true)) {
		pthread_mutex_unlock(&fio_lock);
		return -1;
	}
	if (stash_dir && (flags & O_CREAT))
		existed = ino_of(path) != 0;
	fd = open(path, flags | O_CLOEXEC, mode);
	if (fd >= 0 && fd < MAX_FD) {
		struct file_state *f = file_find(path, false);
		struct stat st;
		bool stat_ok = fstat(fd, &st) == 0;

		free(fd_path[fd]);
		fd_path[fd] = strdup(path);
		fd_dir[fd] = stat_ok && S_ISDIR(st.st_mode);
		if (!f && stat_ok && S_ISREG(st.st_mode)) {
			f = file_find(path, true);
			if (f)
				f->synced = st.st_size;	/* what was there is taken as durable */
		}
		if (f && (flags & O_TRUNC)) {
			f->synced = 0;
			f->ndrop = 0;
		}
		if (!existed && stat_ok)
			op_add('c', path, NULL)->ino = st.st_ino;
	}
	pthread_mutex_unlock(&fio_lock);
	return fd;
}

static int f_close(int fd)
{
	pthread_mutex_lock(&fio_lock);
	if (fd >= 0 && fd < MAX_FD) {
		free(fd_path[fd]);
		fd_path[fd] = NULL;
		fd_dir[fd] = false;
	}
	pthread_mutex_unlock(&fio_lock);
	return close(fd);
}

/*
 * With fio_lock: the path of @fd, or NULL.  A descriptor the seam did not
 * open (LMDB's) is looked up when a fault is aimed at a path.
 */
static const char *path_of(int fd)
{
	static char buf[4400];
	char link[64];
	ssize_t n;

	if (fd < 0 || fd >= MAX_FD)
		return NULL;
	if (fd_path[fd] || path_op == FIO_NOPS)
		return fd_path[fd];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, buf, sizeof(buf) - 1);
	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	return buf;
}

static ssize_t f_pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
	ssize_t n;
	int err;

	pthread_mutex_lock(&fio_lock);
	if (should_fail(FIO_WRITE, path_of(fd), true)) {
		err = errno;
		pthread_mutex_unlock(&fio_lock);
		if (err == ENOSPC && cnt > 0 && iov[0].iov_len > 1) {
			/* a short write: half of the first buffer reaches the file */
			n = pwrite(fd, iov[0].iov_base, iov[0].iov_len / 2, off);
			if (n > 0)
				return n;
		}
		errno = err;
		return -1;
	}
	pthread_mutex_unlock(&fio_lock);
	n = pwritev(fd, iov, cnt, off);
	if (n > 0) {
		struct file_state *f;

		err = errno;
		pthread_mutex_lock(&fio_lock);
		/* written again: dirty pages, which a later fsync does write */
		if (path_of(fd) && (f = file_find(fd_path[fd], false)) && f->ndrop)
			drop_sub(f, off, off + n);
		pthread_mutex_unlock(&fio_lock);
		errno = err;
	}
	return n;
}

/* With fio_lock: the size of regular file @fd, or -1. */
static off_t reg_size(int fd)
{
	struct stat st;

	if (fd < 0 || fd >= MAX_FD || !fd_path[fd] || fstat(fd, &st) || !S_ISREG(st.st_mode))
		return -1;
	return st.st_size;
}

/*
 * With fio_lock: @fd was synced, and it was @before bytes long when the
 * sync began.  Only those are sure: what was written during the sync may
 * or may not be on the disk.  A cut since is honoured (the smaller size).
 */
static void mark_synced(int fd, off_t before)
{
	off_t now = reg_size(fd);
	struct file_state *f;

	if (before < 0 || now < 0 || !(f = file_find(fd_path[fd], true)))
		return;
	f->synced = before < now ? before : now;
}

static int f_sync(int fd, int (*real)(int))
{
	off_t before;
	long seq;
	int rc;

	pthread_mutex_lock(&fio_lock);
	if (should_fail(FIO_SYNC, path_of(fd), true)) {
		off_t size = reg_size(fd);
		struct file_state *f;
		int err = errno;

		/* the kernel drops the pages it could not write and marks them clean */
		if (size >= 0 && (f = file_find(fd_path[fd], true)) && size > f->synced)
			drop_add(f, f->synced, size);
		pthread_mutex_unlock(&fio_lock);
		errno = err;
		return -1;
	}
	before = reg_size(fd);
	seq = op_seq;
	pthread_mutex_unlock(&fio_lock);
	rc = real(fd);
	if (rc == 0) {
		pthread_mutex_lock(&fio_lock);
		mark_synced(fd, before);
		if (stash_dir && fd >= 0 && fd < MAX_FD && fd_dir[fd] && fd_path[fd])
			dir_synced(fd_path[fd], seq);
		pthread_mutex_unlock(&fio_lock);
	}
	return rc;
}

static int f_fsync(int fd)
{
	return f_sync(fd, fsync);
}

static int f_fdatasync(int fd)
{
	return f_sync(fd, fdatasync);
}

static int f_ftruncate(int fd, off_t len)
{
	int rc;

	pthread_mutex_lock(&fio_lock);
	if (should_fail(FIO_TRUNC, path_of(fd), true)) {
		pthread_mutex_unlock(&fio_lock);
		return -1;
	}
	rc = ftruncate(fd, len);
	if (rc == 0 && fd >= 0 && fd < MAX_FD && fd_path[fd]) {
		struct file_state *f = file_find(fd_path[fd], false);

		if (f && f->synced > len)
			f->synced = len;
		if (f)
			drop_sub(f, len, (off_t)1 << 62);
	}
	pthread_mutex_unlock(&fio_lock);
	return rc;
}

/* Is @path the file @top or under directory @top? */
static bool under(const char *path, const char *top)
{
	size_t l = strlen(top);

	return !strncmp(path, top, l) && (path[l] == '\0' || path[l] == '/');
}

/* With fio_lock: @top and what was under it are gone; a new file there starts unsynced. */
static void forget_files(const char *top)
{
	for (size_t i = 0; i < nfiles;)
		if (under(files[i].path, top))
			file_drop(&files[i]);
		else
			i++;
}

static int f_rename(const char *from, const char *to)
{
	struct dir_op *o = NULL;
	char *stash = NULL;
	bool to_dir = false;
	ino_t ino = 0;
	int rc;

	pthread_mutex_lock(&fio_lock);
	if (should_fail(FIO_RENAME, from, true)) {
		pthread_mutex_unlock(&fio_lock);
		return -1;
	}
	if (stash_dir) {
		struct stat st;

		ino = ino_of(from);
		if (lstat(to, &st) == 0) {
			to_dir = S_ISDIR(st.st_mode);
			stash = stash_link(to);
		}
	}
	rc = rename(from, to);
	if (rc == 0) {
		size_t l = strlen(from);

		/* what @to was is gone (or kept in the stash, for a power loss to bring back) */
		if (stash)
			file_moved(to, stash);
		forget_files(to);
		/* files under a renamed directory move with it */
		for (size_t i = 0; i < nfiles; i++)
			if (under(files[i].path, from)) {
				char *np;

				if (asprintf(&np, "%s%s", to, files[i].path + l) > 0) {
					free(files[i].path);
					files[i].path = np;
				}
			}
		if (stash_dir) {
			o = op_add('r', to, from);
			o->ino = ino;
			o->stash = stash;
			o->replaced_dir = to_dir;
			stash = NULL;
		}
	}
	if (stash) {
		unlink(stash);
		free(stash);
	}
	pthread_mutex_unlock(&fio_lock);
	return rc;
}

static int f_unlink(const char *path)
{
	char *stash = NULL;
	ino_t ino = 0;
	int rc;

	pthread_mutex_lock(&fio_lock);	/* blocks for ever once frozen */
	if (should_fail(FIO_UNLINK, path, true)) {
		pthread_mutex_unlock(&fio_lock);
		return -1;
	}
	if (stash_dir) {
		ino = ino_of(path);
		stash = stash_link(path);
	}
	rc = unlink(path);
	if (rc == 0 && stash) {
		struct dir_op *o = op_add('u', path, NULL);

		o->ino = ino;
		o->stash = stash;
		file_moved(path, stash);	/* its bytes keep their fate */
	} else if (rc == 0) {
		forget_files(path);
	} else if (stash) {
		unlink(stash);
		free(stash);
	}
	pthread_mutex_unlock(&fio_lock);
	return rc;
}

static ssize_t f_pread(int fd, void *buf, size_t n, off_t off)
{
	bool fail;
	int err;

	/* reads are no crash points (they change nothing): counted apart */
	pthread_mutex_lock(&fio_lock);
	fail = should_fail(FIO_READ, path_of(fd), false);
	err = errno;
	pthread_mutex_unlock(&fio_lock);
	if (fail) {
		errno = err;
		return -1;
	}
	return pread(fd, buf, n, off);
}

static int f_dirop(enum fio_op op, const char *path, mode_t mode)
{
	int rc;

	pthread_mutex_lock(&fio_lock);
	if (should_fail(op, path, true)) {
		pthread_mutex_unlock(&fio_lock);
		return -1;
	}
	rc = op == FIO_MKDIR ? mkdir(path, mode) : rmdir(path);
	if (rc == 0 && stash_dir)
		op_add(op == FIO_MKDIR ? 'm' : 'd', path, NULL)->ino = ino_of(path);
	pthread_mutex_unlock(&fio_lock);
	return rc;
}

static int f_mkdir(const char *path, mode_t mode)
{
	return f_dirop(FIO_MKDIR, path, mode);
}

static int f_rmdir(const char *path)
{
	return f_dirop(FIO_RMDIR, path, 0);
}

static int f_fallocate(int fd, off_t off, off_t len)
{
	int err;

	pthread_mutex_lock(&fio_lock);
	if (should_fail(FIO_ALLOC, path_of(fd), true)) {
		pthread_mutex_unlock(&fio_lock);
		return -1;
	}
	pthread_mutex_unlock(&fio_lock);
	err = posix_fallocate(fd, off, len);
	if (err) {
		errno = err;
		return -1;
	}
	return 0;
}

static ssize_t f_copy_range(int in, loff_t *in_off, int out, loff_t *out_off, size_t len)
{
	loff_t at = *out_off;
	ssize_t n;

	pthread_mutex_lock(&fio_lock);
	if (should_fail(FIO_WRITE, path_of(out), true)) {
		pthread_mutex_unlock(&fio_lock);
		return -1;
	}
	pthread_mutex_unlock(&fio_lock);
	n = copy_file_range(in, in_off, out, out_off, len, 0);
	if (n > 0) {
		struct file_state *f;
		int err = errno;

		pthread_mutex_lock(&fio_lock);
		if (path_of(out) && (f = file_find(fd_path[out], false)) && f->ndrop)
			drop_sub(f, at, at + n);
		pthread_mutex_unlock(&fio_lock);
		errno = err;
	}
	return n;
}

static int f_flock(int fd, int op)
{
	pthread_mutex_lock(&fio_lock);
	if (should_fail(FIO_LOCK, path_of(fd), false)) {
		pthread_mutex_unlock(&fio_lock);
		return -1;
	}
	pthread_mutex_unlock(&fio_lock);
	return flock(fd, op);
}

static int f_boot_id(char *buf, size_t n)
{
	pthread_mutex_lock(&fio_lock);
	snprintf(buf, n, "fio-boot-%ld", boot_gen);
	pthread_mutex_unlock(&fio_lock);
	return 0;
}

static const struct io_ops fault_ops = {
	.open = f_open,
	.close = f_close,
	.pread = f_pread,
	.pwritev = f_pwritev,
	.fsync = f_fsync,
	.fdatasync = f_fdatasync,
	.ftruncate = f_ftruncate,
	.rename = f_rename,
	.unlink = f_unlink,
	.mkdir = f_mkdir,
	.rmdir = f_rmdir,
	.copy_range = f_copy_range,
	.flock = f_flock,
	.fallocate = f_fallocate,
	.boot_id = f_boot_id,
	.mark = f_mark,
};

void fio_clear(void)
{
	pthread_mutex_lock(&fio_lock);
	for (int i = 0; i < FIO_NOPS; i++) {
		fail_at[i] = -1;
		fail_persist[i] = false;
	}
	path_op = FIO_NOPS;
	pthread_mutex_unlock(&fio_lock);
}

void fio_install(void)
{
	pthread_mutex_lock(&fio_lock);
	memset(counts, 0, sizeof(counts));
	nfailed = 0;
	frozen = false;
	index_unsynced = false;
	crash_at = -1;
	pthread_mutex_unlock(&fio_lock);
	fio_clear();
	io_set_ops(&fault_ops);
}

/* Zero [lo, hi) of @path, within its size.  0 or -1. */
static int zero_range(const char *path, off_t lo, off_t hi)
{
	static const char zeros[4096];
	struct stat st;
	int fd = open(path, O_WRONLY | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return -1;
	if (fstat(fd, &st) == 0 && hi > st.st_size)
		hi = st.st_size;
	for (off_t at = lo; at < hi && !rc;) {
		size_t k = hi - at < (off_t)sizeof(zeros) ? (size_t)(hi - at) : sizeof(zeros);

		if (pwrite(fd, zeros, k, at) != (ssize_t)k)
			rc = -1;
		at += k;
	}
	close(fd);
	return rc;
}

void fio_uninstall(void)
{
	io_set_ops(NULL);
	pthread_mutex_lock(&fio_lock);
	for (size_t i = 0; i < nfiles; i++) {
		/* the cache let go of the pages a failed fsync dropped: the disk's bytes show */
		for (size_t k = 0; k < files[i].ndrop; k++)
			if (!ends_with(files[i].path, ".jnl"))
				zero_range(files[i].path, files[i].drop[k].lo, files[i].drop[k].hi);
		free(files[i].path);
		free(files[i].drop);
	}
	nfiles = 0;
	for (int i = 0; i < MAX_FD; i++) {
		free(fd_path[i]);
		fd_path[i] = NULL;
		fd_dir[i] = false;
	}
	for (size_t i = 0; i < nops; i++) {
		free(ops[i].dir);
		free(ops[i].path);
		free(ops[i].from);
		free(ops[i].stash);
	}
	nops = 0;
	free(stash_dir);
	stash_dir = NULL;
	pthread_mutex_unlock(&fio_lock);
}

void fio_fail(enum fio_op op, long nth, int err, bool persist)
{
	pthread_mutex_lock(&fio_lock);
	fail_at[op] = counts[op] + nth;
	fail_err[op] = err;
	fail_persist[op] = persist;
	pthread_mutex_unlock(&fio_lock);
}

void fio_fail_path(enum fio_op op, const char *suffix, int err)
{
	pthread_mutex_lock(&fio_lock);
	path_op = op;
	snprintf(path_suffix, sizeof(path_suffix), "%s", suffix);
	path_err = err;
	pthread_mutex_unlock(&fio_lock);
}

long fio_count(enum fio_op op)
{
	long n;

	pthread_mutex_lock(&fio_lock);
	n = counts[op];
	pthread_mutex_unlock(&fio_lock);
	return n;
}

long fio_failed(void)
{
	long n;

	pthread_mutex_lock(&fio_lock);
	n = nfailed;
	pthread_mutex_unlock(&fio_lock);
	return n;
}

/* ---- power loss ---- */

void fio_freeze_and_dump(const char *dump)
{
	pthread_mutex_lock(&fio_lock);
	dump_locked(dump);
	/* the lock stays held: every other I/O call now blocks until _exit */
}

/* With fio_lock: stop all I/O and write what is durable to @dump. */
static void dump_locked(const char *dump)
{
	FILE *f;

	frozen = true;
	f = fopen(dump, "w");
	if (f) {
		fprintf(f, "# index unsynced %d\n", index_unsynced);
		for (size_t i = 0; i < nfiles; i++) {
			fprintf(f, "F %lld %s\n", (long long)files[i].synced, files[i].path);
			for (size_t k = 0; k < files[i].ndrop; k++)
				fprintf(f, "D %lld %lld %s\n", (long long)files[i].drop[k].lo,
					(long long)files[i].drop[k].hi, files[i].path);
		}
		for (size_t i = 0; i < nops; i++)
			fprintf(f, "O %ld %c %d %d %llu\t%s\t%s\t%s\t%s\n", ops[i].seq, ops[i].kind,
				ops[i].durable, ops[i].replaced_dir, (unsigned long long)ops[i].ino,
				ops[i].dir, ops[i].path, ops[i].from ? ops[i].from : "-",
				ops[i].stash ? ops[i].stash : "-");
		fclose(f);
	}
}

/* Cut file @path as a power loss could: a size in [synced, size], holes with HOLES. */
static void lose_tail(const char *path, off_t synced, unsigned *seed, unsigned how,
		      struct fio_loss *out)
{
	const off_t page = 4096;
	struct stat st;
	off_t keep;

	if (stat(path, &st) || st.st_size <= synced)
		return;
	keep = how & FIO_LOSS_ALL ? synced : synced + rand_r(seed) % (st.st_size - synced + 1);
	if (how & FIO_LOSS_HOLES)
		for (off_t p = synced / page * page; p < keep; p += page)
			if (rand_r(seed) % 2) {
				off_t lo = p > synced ? p : synced, hi = p + page < keep ? p + page : keep;

				if (zero_range(path, lo, hi) == 0)
					out->pages_holed++;
			}
	if (keep < st.st_size && truncate(path, keep) == 0)
		out->files_cut++;
}

static int cmp_seq_desc(const void *a, const void *b)
{
	const struct dir_op *x = a, *y = b;

	return x->seq < y->seq ? 1 : x->seq > y->seq ? -1 : 0;
}

static bool dir_exists(const char *path)
{
	char *p = parent_of(path);
	struct stat st;
	bool ok = stat(p, &st) == 0 && S_ISDIR(st.st_mode);

	free(p);
	return ok;
}

/* Undo directory change @o, if the tree still shows it.  true if undone. */
static bool undo_op(const struct dir_op *o)
{
	struct stat st;

	switch (o->kind) {
	case 'c':
		return lstat(o->path, &st) == 0 && st.st_ino == o->ino && S_ISREG(st.st_mode) &&
		       unlink(o->path) == 0;
	case 'm':
		if (lstat(o->path, &st) || st.st_ino != o->ino || !S_ISDIR(st.st_mode))
			return false;
		tu_rmrf(o->path);
		return true;
	case 'u':
		return *o->stash && lstat(o->path, &st) && dir_exists(o->path) &&
		       link(o->stash, o->path) == 0;
	case 'd':
		return lstat(o->path, &st) && dir_exists(o->path) && mkdir(o->path, 0755) == 0;
	case 'r':
		if (lstat(o->path, &st) || st.st_ino != o->ino || !lstat(o->from, &st) ||
		    !dir_exists(o->from) || rename(o->path, o->from))
			return false;
		if (*o->stash && link(o->stash, o->path))
			return false;
		if (o->replaced_dir)
			mkdir(o->path, 0755);
		return true;
	}
	return false;
}

int fio_apply_powerloss(const char *dump, unsigned seed, unsigned how, struct fio_loss *out)
{
	char line[4 * 4500];
	FILE *f = fopen(dump, "r");
	struct dir_op *lost = NULL;
	size_t nlost = 0, cap = 0;
	struct {
		struct dir_op o;
		bool lose;
	} *dops = NULL;
	size_t ndops = 0, dcap = 0;

	if (!f)
		return -1;
	/* files first (at their paths when the power went), then directories */
	while (fgets(line, sizeof(line), f)) {
		long long a, b;
		char path[4400];

		if (sscanf(line, "F %lld %4399[^\n]", &a, path) == 2) {
			lose_tail(path, a, &seed, how, out);
		} else if (sscanf(line, "D %lld %lld %4399[^\n]", &a, &b, path) == 3) {
			if (zero_range(path, a, b) == 0)
				out->dropped++;
		} else if (line[0] == 'O' && (how & (FIO_LOSS_DIRS | FIO_LOSS_ALL))) {
			char *fld[5], *save, *head = strtok_r(line, "\t\n", &save);
			long seq;
			char kind;
			int dur, rdir;
			unsigned long long ino;

			for (int i = 0; i < 5; i++)
				fld[i] = strtok_r(NULL, "\t\n", &save);
			if (!head || sscanf(head, "O %ld %c %d %d %llu", &seq, &kind, &dur, &rdir,
					    &ino) != 5 || !fld[0] || !fld[1])
				continue;
			if (ndops == dcap) {
				dcap = dcap ? 2 * dcap : 64;
				dops = realloc(dops, dcap * sizeof(*dops));
				if (!dops)
					abort();
			}
			dops[ndops].lose = false;
			dops[ndops++].o = (struct dir_op){
				.seq = seq, .kind = kind, .durable = dur, .replaced_dir = rdir,
				.ino = ino, .dir = strdup(fld[0]), .path = strdup(fld[1]),
				/* "-": none (strtok_r skips empty fields) */
				.from = strdup(fld[2] && strcmp(fld[2], "-") ? fld[2] : ""),
				.stash = strdup(fld[3] && strcmp(fld[3], "-") ? fld[3] : ""),
			};
		}
	}
	fclose(f);
	/*
	 * In each directory, what was not fsynced after it is lost from a
	 * random point on (the dump lists changes in order; durable ones come
	 * first in each directory).
	 */
	for (size_t i = 0; i < ndops; i++) {
		size_t pending = 0, k;

		if (dops[i].lose || dops[i].o.durable)
			continue;
		for (size_t j = i; j < ndops; j++)
			if (!dops[j].o.durable && !strcmp(dops[j].o.dir, dops[i].o.dir))
				pending++;
		/* the last k are lost */
		k = how & FIO_LOSS_ALL ? pending : rand_r(&seed) % (pending + 1);
		for (size_t j = i, seen = 0; j < ndops; j++)
			if (!dops[j].o.durable && !strcmp(dops[j].o.dir, dops[i].o.dir)) {
				dops[j].lose = seen++ >= pending - k;
				dops[j].o.durable = !dops[j].lose;	/* decided */
			}
	}
	for (size_t i = 0; i < ndops; i++)
		if (dops[i].lose) {
			if (nlost == cap) {
				cap = cap ? 2 * cap : 64;
				lost = realloc(lost, cap * sizeof(*lost));
				if (!lost)
					abort();
			}
			lost[nlost++] = dops[i].o;
		}
	if (nlost)
		qsort(lost, nlost, sizeof(*lost), cmp_seq_desc);
	for (size_t i = 0; i < nlost; i++)
		out->dir_undone += undo_op(&lost[i]);
	for (size_t i = 0; i < ndops; i++) {
		free(dops[i].o.dir);
		free(dops[i].o.path);
		free(dops[i].o.from);
		free(dops[i].o.stash);
	}
	free(dops);
	free(lost);
	pthread_mutex_lock(&fio_lock);
	boot_gen++;	/* the machine comes back in another boot */
	pthread_mutex_unlock(&fio_lock);
	return 0;
}

/* LMDB 0.9's meta pages: page 0 and 1, the meta after a 16-byte page header. */
#define MDB_META_MAGIC 0xBEEFC0DEu
#define META_MAGIC_OFF 16
#define META_TXNID_OFF 144

int fio_undo_index_commit(const char *dump, const char *data_mdb)
{
	char line[64];
	FILE *f = fopen(dump, "r");
	int unsynced = 0, fd, rc = -1;
	long psize = sysconf(_SC_PAGESIZE);
	unsigned char *meta[2] = { malloc(psize), malloc(psize) };

	if (f) {
		if (!fgets(line, sizeof(line), f) ||
		    sscanf(line, "# index unsynced %d", &unsynced) != 1)
			unsynced = -1;
		fclose(f);
	}
	fd = open(data_mdb, O_RDWR);
	if (unsynced != 1 || fd < 0 || !meta[0] || !meta[1]) {
		rc = unsynced == 0 ? 0 : -1;
		goto out;
	}
	if (pread(fd, meta[0], psize, 0) == psize && pread(fd, meta[1], psize, psize) == psize) {
		uint32_t magic[2];
		uint64_t txn[2];

		for (int i = 0; i < 2; i++) {
			memcpy(&magic[i], meta[i] + META_MAGIC_OFF, 4);
			memcpy(&txn[i], meta[i] + META_TXNID_OFF, 8);
		}
		/* the newer meta takes the older's body: the last commit never happened */
		if (magic[0] == MDB_META_MAGIC && magic[1] == MDB_META_MAGIC &&
		    (txn[0] == txn[1] + 1 || txn[1] == txn[0] + 1)) {
			int newer = txn[1] > txn[0];

			if (pwrite(fd, meta[!newer] + META_MAGIC_OFF, psize - META_MAGIC_OFF,
				   (off_t)newer * psize + META_MAGIC_OFF) == psize - META_MAGIC_OFF)
				rc = 1;
		}
	}
out:
	if (fd >= 0)
		close(fd);
	free(meta[0]);
	free(meta[1]);
	return rc;
}
