/*
 * testutil.c - temp dirs and the fault seam.
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "io.h"
#include "testutil.h"

char *tu_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char *p;

	if (asprintf(&p, "%s/evl-test-XXXXXX", base && *base ? base : "/tmp") < 0)
		abort();
	if (!mkdtemp(p))
		abort();
	return p;
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

void tu_rmrf(const char *path)
{
	nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

int tu_setup(void **state)
{
	*state = tu_tmpdir();
	return 0;
}

int tu_teardown(void **state)
{
	fio_uninstall();
	tu_rmrf(*state);
	free(*state);
	return 0;
}

uint64_t tu_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ull + ts.tv_nsec / 1000000;
}

/* ---- the fault seam ---- */

#define MAX_FD 4096
#define MAX_FILES 8192

struct file_state {
	char *path;
	off_t synced;
};

static pthread_mutex_t fio_lock = PTHREAD_MUTEX_INITIALIZER;
static long counts[FIO_NOPS];
static long fail_at[FIO_NOPS];		/* count at which to fail; -1 none */
static int fail_err[FIO_NOPS];
static bool fail_persist[FIO_NOPS];
static long nfailed;
static bool frozen;
static char *fd_path[MAX_FD];
static struct file_state files[MAX_FILES];
static size_t nfiles;

static struct file_state *file_find(const char *path, bool add)
{
	for (size_t i = 0; i < nfiles; i++)
		if (!strcmp(files[i].path, path))
			return &files[i];
	if (!add || nfiles == MAX_FILES)
		return NULL;
	files[nfiles].path = strdup(path);
	files[nfiles].synced = 0;
	return &files[nfiles++];
}

static long crash_at = -1, crash_steps;
static int crash_code;

/* With fio_lock: one more mutating call or step; the process ends at the chosen one. */
static void crash_point(void)
{
	if (crash_at >= 0 && crash_steps == crash_at)
		_exit(crash_code);
	crash_steps++;
}

void fio_crash_at(long nth, int code)
{
	pthread_mutex_lock(&fio_lock);
	crash_at = nth;
	crash_code = code;
	crash_steps = 0;
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

/* With fio_lock: should this call of @op fail?  Sets errno. */
static __attribute__((noinline)) bool should_fail(enum fio_op op)
{
	long n = counts[op]++;

	crash_point();
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
		"write", "sync", "truncate", "open", "rename", "read", "unlink", "mkdir", "rmdir"
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

static int f_open(const char *path, int flags, mode_t mode)
{
	int fd;

	pthread_mutex_lock(&fio_lock);
	if (should_fail(FIO_OPEN)) {
		pthread_mutex_unlock(&fio_lock);
		return -1;
	}
	fd = open(path, flags | O_CLOEXEC, mode);
	if (fd >= 0 && fd < MAX_FD) {
		struct file_state *f = file_find(path, false);
		struct stat st;

		free(fd_path[fd]);
		fd_path[fd] = strdup(path);
		if (!f && !(flags & O_DIRECTORY) && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
			f = file_find(path, true);
			if (f)
				f->synced = st.st_size;	/* what was there is taken as durable */
		}
		if (f && (flags & O_TRUNC))
			f->synced = 0;
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
	}
	pthread_mutex_unlock(&fio_lock);
	return close(fd);
}

static ssize_t f_pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
	int err;

	pthread_mutex_lock(&fio_lock);
	if (should_fail(FIO_WRITE)) {
		err = errno;
		pthread_mutex_unlock(&fio_lock);
		if (err == ENOSPC && cnt > 0 && iov[0].iov_len > 1) {
			/* a short write: half of the first buffer reaches the file */
			ssize_t n = pwrite(fd, iov[0].iov_base, iov[0].iov_len / 2, off);

			if (n > 0)
				return n;
		}
		errno = err;
		return -1;
	}
	pthread_mutex_unlock(&fio_lock);
	return pwritev(fd, iov, cnt, off);
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
	int rc;

	pthread_mutex_lock(&fio_lock);
	if (should_fail(FIO_SYNC)) {
		pthread_mutex_unlock(&fio_lock);
		return -1;
	}
	before = reg_size(fd);
	pthread_mutex_unlock(&fio_lock);
	rc = real(fd);
	if (rc == 0) {
		pthread_mutex_lock(&fio_lock);
		mark_synced(fd, before);
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
	if (should_fail(FIO_TRUNC)) {
		pthread_mutex_unlock(&fio_lock);
		return -1;
	}
	rc = ftruncate(fd, len);
	if (rc == 0 && fd >= 0 && fd < MAX_FD && fd_path[fd]) {
		struct file_state *f = file_find(fd_path[fd], false);

		if (f && f->synced > len)
			f->synced = len;
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
		if (under(files[i].path, top)) {
			free(files[i].path);
			files[i] = files[--nfiles];
		} else {
			i++;
		}
}

static int f_rename(const char *from, const char *to)
{
	int rc;

	pthread_mutex_lock(&fio_lock);
	if (should_fail(FIO_RENAME)) {
		pthread_mutex_unlock(&fio_lock);
		return -1;
	}
	rc = rename(from, to);
	if (rc == 0) {
		size_t l = strlen(from);

		forget_files(to);	/* what @to was is gone */
		/* files under a renamed directory move with it */
		for (size_t i = 0; i < nfiles; i++)
			if (under(files[i].path, from)) {
				char *np;

				if (asprintf(&np, "%s%s", to, files[i].path + l) > 0) {
					free(files[i].path);
					files[i].path = np;
				}
			}
	}
	pthread_mutex_unlock(&fio_lock);
	return rc;
}

static int f_unlink(const char *path)
{
	int rc;

	pthread_mutex_lock(&fio_lock);	/* blocks for ever once frozen */
	if (should_fail(FIO_UNLINK)) {
		pthread_mutex_unlock(&fio_lock);
		return -1;
	}
	rc = unlink(path);
	if (rc == 0)
		forget_files(path);
	pthread_mutex_unlock(&fio_lock);
	return rc;
}

static ssize_t f_pread(int fd, void *buf, size_t n, off_t off)
{
	bool fail;
	int err;

	/* reads are no crash points (they change nothing): counted apart */
	pthread_mutex_lock(&fio_lock);
	fail = fail_at[FIO_READ] >= 0 && counts[FIO_READ] >= fail_at[FIO_READ] &&
	       (fail_persist[FIO_READ] || counts[FIO_READ] == fail_at[FIO_READ]);
	counts[FIO_READ]++;
	if (fail) {
		nfailed++;
		note_site(FIO_READ);
	}
	err = fail_err[FIO_READ];
	pthread_mutex_unlock(&fio_lock);
	if (fail) {
		errno = err;
		return -1;
	}
	return pread(fd, buf, n, off);
}

static int f_dirop(enum fio_op op, const char *path, mode_t mode)
{
	pthread_mutex_lock(&fio_lock);
	if (should_fail(op)) {
		pthread_mutex_unlock(&fio_lock);
		return -1;
	}
	pthread_mutex_unlock(&fio_lock);
	return op == FIO_MKDIR ? mkdir(path, mode) : rmdir(path);
}

static int f_mkdir(const char *path, mode_t mode)
{
	return f_dirop(FIO_MKDIR, path, mode);
}

static int f_rmdir(const char *path)
{
	return f_dirop(FIO_RMDIR, path, 0);
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
	.mark = f_mark,
};

void fio_clear(void)
{
	pthread_mutex_lock(&fio_lock);
	for (int i = 0; i < FIO_NOPS; i++) {
		fail_at[i] = -1;
		fail_persist[i] = false;
	}
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

void fio_uninstall(void)
{
	io_set_ops(NULL);
	pthread_mutex_lock(&fio_lock);
	for (size_t i = 0; i < nfiles; i++)
		free(files[i].path);
	nfiles = 0;
	for (int i = 0; i < MAX_FD; i++) {
		free(fd_path[i]);
		fd_path[i] = NULL;
	}
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

void fio_freeze_and_dump(const char *dump)
{
	FILE *f;

	pthread_mutex_lock(&fio_lock);
	frozen = true;
	f = fopen(dump, "w");
	if (f) {
		fprintf(f, "# index unsynced %d\n", index_unsynced);
		for (size_t i = 0; i < nfiles; i++)
			fprintf(f, "%lld %s\n", (long long)files[i].synced, files[i].path);
		fclose(f);
	}
	/* the lock stays held: every other I/O call now blocks until _exit */
}

int fio_apply_powerloss(const char *dump, unsigned seed)
{
	char line[4500];
	FILE *f = fopen(dump, "r");
	int cut = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		long long synced;
		char path[4400];
		struct stat st;

		if (sscanf(line, "%lld %4399[^\n]", &synced, path) != 2 || stat(path, &st))
			continue;
		if (st.st_size > synced) {
			off_t keep = synced + rand_r(&seed) % (st.st_size - synced + 1);

			if (truncate(path, keep) == 0 && keep < st.st_size)
				cut++;
		}
	}
	fclose(f);
	return cut;
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
