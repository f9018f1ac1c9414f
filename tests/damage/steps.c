/*
 * steps.c - one damage case's steps in one process, for sweep.py --core.
 *
 *   damage_steps WORK [TIMEOUT_S]
 *
 * WORK/data is a damaged store; WORK/appends holds "TASK<TAB>LINE<NL>" for
 * each event the first mount appends.  The steps are sweep.py's (its
 * run_steps), in its order:
 *
 *   fsck-pre, mount, fsck, repair, fsck-after-repair, reindex,
 *   fsck-after-reindex, backup, fsck-backup (if the backup exited 0),
 *   mount-final
 *
 * The offline steps are evlogctl's own commands (mount-tools/offline.c),
 * called, not executed.  A "mount" opens the store through the core as the
 * daemon does, with its default options, reads what a reader of the mount
 * would (every task log, every view of a type, of its dotted prefixes and
 * first byte, the per-task view files, the status), appends the given
 * events, reads each log again, and closes: everything but FUSE, which the
 * live sweep covers.  What makes this cheap is that no process is started
 * or mounted: a case costs a few forks.
 *
 * Each step runs in a child of its own, with stdout and stderr in
 * WORK/out/STEP/out, so that a crash is that step's (a signal) and a hang is
 * too (SIGALRM after TIMEOUT_S, default 30).  WORK/out/STEP/result says
 * "exit N", "signal N" or "hang".  A mount that the core refuses exits 3.
 * A mount writes its snapshot under WORK/out/STEP/snap/: logs/T and logs2/T
 * (the bytes, or T.errno), views/P, vtasks/P/T, types, appends ("T ERRNO"
 * lines), status.json.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "evlog.h"
#include "evlogctl.h"
#include "log.h"

static const char *work;
static unsigned timeout_s = 30;

static void die(const char *what)
{
	fprintf(stderr, "damage_steps: %s: %s\n", what, strerror(errno));
	exit(100);
}

static void mkdirs(const char *path)
{
	char tmp[4096];

	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			if (mkdir(tmp, 0755) && errno != EEXIST)
				die(tmp);
			*p = '/';
		}
	if (mkdir(tmp, 0755) && errno != EEXIST)
		die(tmp);
}

static void put(const char *dir, const char *name, const void *data, size_t n)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 && errno == ENOENT) {
		mkdirs(dir);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	}
	if (fd < 0 || (n && write(fd, data, n) != (ssize_t)n))
		die(path);
	close(fd);
}

static void put_errno(const char *dir, const char *name, int err)
{
	char nm[600], num[32];

	snprintf(nm, sizeof(nm), "%s.errno", name);
	snprintf(num, sizeof(num), "%d", err);
	put(dir, nm, num, strlen(num));
}

/* ---- growing buffers and name lists ---- */

struct buf {
	char *p;
	size_t n, cap;
};

static void buf_add(struct buf *b, const void *data, size_t n)
{
	if (b->n + n + 1 > b->cap) {
		b->cap = (b->n + n + 1) * 2;
		if (!(b->p = realloc(b->p, b->cap)))
			die("realloc");
	}
	memcpy(b->p + b->n, data, n);
	b->n += n;
	b->p[b->n] = '\0';
}

struct names {
	char **v;
	size_t n;
};

static void names_add(struct names *l, const char *s, size_t len)
{
	for (size_t i = 0; i < l->n; i++)
		if (strlen(l->v[i]) == len && !memcmp(l->v[i], s, len))
			return;
	if (!(l->v = realloc(l->v, (l->n + 1) * sizeof(*l->v))) ||
	    !(l->v[l->n] = strndup(s, len)))
		die("realloc");
	l->n++;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int on_task(void *arg, const struct evl_task_info *t)
{
	names_add(arg, t->name, strlen(t->name));
	return 0;
}

static int on_type(void *arg, const char *type, size_t len)
{
	names_add(arg, type, len);
	return 0;
}

struct uids {
	uint64_t v[4096];
	size_t n;
};

static int on_view_task(void *arg, uint64_t uid)
{
	struct uids *u = arg;

	if (u->n < sizeof(u->v) / sizeof(*u->v))
		u->v[u->n++] = uid;
	return 0;
}

/* ---- a mount, through the core ---- */

/* Task @name's log, whole, as `cat tasks/NAME/events` reads it. */
static void snap_log(struct evl_store *st, const char *dir, const char *name)
{
	struct evl_task_info ti;
	struct buf b = { 0 };
	char chunk[128 << 10];
	uint64_t off = 0;
	ssize_t n;
	int rc;

	rc = evl_task_lookup(st, name, &ti);
	if (rc) {
		put_errno(dir, name, -rc);
		return;
	}
	while ((n = evl_task_read(st, ti.uid, off, chunk, sizeof(chunk))) > 0) {
		buf_add(&b, chunk, (size_t)n);
		off += (uint64_t)n;
	}
	if (n < 0)
		put_errno(dir, name, (int)-n);
	else
		put(dir, name, b.p, b.n);
	free(b.p);
}

/* View @prefix (of task @uid if non-zero), whole. */
static void snap_view(struct evl_store *st, const char *dir, const char *name,
		      const char *prefix, uint64_t uid)
{
	struct evl_view *v;
	struct buf b = { 0 };
	char chunk[128 << 10];
	uint64_t off = 0;
	ssize_t n;
	int rc;

	rc = evl_view_open(st, prefix, strlen(prefix), uid, &v);
	if (rc) {
		put_errno(dir, name, -rc);
		return;
	}
	while ((n = evl_view_read(v, off, chunk, sizeof(chunk))) > 0) {
		buf_add(&b, chunk, (size_t)n);
		off += (uint64_t)n;
	}
	evl_view_close(v);
	if (n < 0)
		put_errno(dir, name, (int)-n);
	else
		put(dir, name, b.p, b.n);
	free(b.p);
}

static void snap_status(struct evl_store *st, const char *dir)
{
	static struct evl_stats s;
	struct buf b = { 0 };
	char tmp[1400];

	evl_store_stats(st, &s);
	snprintf(tmp, sizeof(tmp),
		 "{\"tasks\":%" PRIu64 ",\"events\":%" PRIu64 ",\"error\":%d,"
		 "\"journal_damage\":{\"lost_records\":%" PRIu64 ",\"damaged_segments\":%" PRIu64 "},"
		 "\"damage\":{\"tasks_aside\":%" PRIu64 ",\"events_unapplied\":%" PRIu64
		 ",\"events_lost\":%" PRIu64 ",\"lines_unapplied\":%" PRIu64
		 ",\"index_damage\":%" PRIu64 ",\"aside\":[",
		 s.tasks, s.events, s.error, s.journal_lost, s.journal_damaged_segments,
		 s.tasks_aside, s.events_unapplied, s.events_lost, s.lines_unapplied,
		 s.index_damage);
	buf_add(&b, tmp, strlen(tmp));
	for (const char *n = s.aside; *n; n += strlen(n) + 1) {
		/* task names here are the sweep's: no quote or backslash to escape */
		snprintf(tmp, sizeof(tmp), "%s\"%s\"", n == s.aside ? "" : ",", n);
		buf_add(&b, tmp, strlen(tmp));
	}
	buf_add(&b, "]}}", 3);
	put(dir, "status.json", b.p, b.n);
	free(b.p);
}

/* Append @line to task @name as `echo LINE >> tasks/NAME/events` does.  0 or an errno. */
static int append(struct evl_store *st, const char *name, const char *line)
{
	struct evl_task_info ti;
	struct evl_writer *w;
	int rc, rc2;

	if ((rc = evl_task_lookup(st, name, &ti)) || (rc = evl_writer_open(st, ti.uid, &w)))
		return -rc;
	rc = evl_writer_write(w, line, strlen(line));
	rc2 = evl_writer_close(w);
	return -(rc ? rc : rc2);
}

static int do_mount(const char *data, const char *snap, bool first)
{
	struct evl_options o;
	struct evl_store *st;
	struct names tasks = { 0 }, types = { 0 }, prefixes = { 0 };
	struct buf appended = { 0 }, tlist = { 0 };
	char dir[4096], path[4096];
	FILE *f;
	int rc;

	evl_options_default(&o);
	rc = evl_store_open(data, &o, &st);
	if (rc) {
		fprintf(stderr, "damage_steps: the store does not open: %s\n", strerror(-rc));
		return 3;
	}
	evl_task_list(st, NULL, on_task, &tasks);
	snprintf(dir, sizeof(dir), "%s/logs", snap);
	mkdirs(dir);
	for (size_t i = 0; i < tasks.n; i++)
		snap_log(st, dir, tasks.v[i]);

	evl_type_list(st, on_type, &types);
	qsort(types.v, types.n, sizeof(*types.v), cmp_str);
	for (size_t i = 0; i < types.n; i++) {
		const char *t = types.v[i];

		buf_add(&tlist, t, strlen(t));
		buf_add(&tlist, "\n", 1);
		names_add(&prefixes, t, strlen(t));
		names_add(&prefixes, t, 1);
		if (!first)	/* the first mount takes a quicker look, as the live sweep's */
			for (const char *d = strchr(t, '.'); d; d = strchr(d + 1, '.'))
				names_add(&prefixes, t, (size_t)(d - t));
	}
	put(snap, "types", tlist.p, tlist.n);
	qsort(prefixes.v, prefixes.n, sizeof(*prefixes.v), cmp_str);
	for (size_t i = 0; i < prefixes.n; i++) {
		const char *p = prefixes.v[i];

		snprintf(dir, sizeof(dir), "%s/views", snap);
		snap_view(st, dir, p, p, 0);
		if (!first) {
			static struct uids u;

			u.n = 0;
			snprintf(dir, sizeof(dir), "%s/vtasks/%s", snap, p);
			mkdirs(dir);
			evl_view_tasks(st, p, strlen(p), on_view_task, &u);
			for (size_t k = 0; k < u.n; k++) {
				struct evl_task_info ti;

				if (!evl_task_stat(st, u.v[k], &ti))
					snap_view(st, dir, ti.name, p, u.v[k]);
			}
		}
	}
	snap_status(st, snap);

	snprintf(path, sizeof(path), "%s/appends", work);
	if (first && (f = fopen(path, "r"))) {
		char line[8192];

		snprintf(dir, sizeof(dir), "%s/logs2", snap);
		mkdirs(dir);
		while (fgets(line, sizeof(line), f)) {
			char *tab = strchr(line, '\t'), out[600];

			if (!tab)
				continue;
			*tab = '\0';
			snprintf(out, sizeof(out), "%.256s %d\n", line, append(st, line, tab + 1));
			buf_add(&appended, out, strlen(out));
			snap_log(st, dir, line);
		}
		fclose(f);
	}
	put(snap, "appends", appended.p, appended.n);
	rc = evl_store_close(st);
	if (rc)
		fprintf(stderr, "damage_steps: close: %s\n", strerror(-rc));
	return rc ? 1 : 0;
}

/* ---- the steps ---- */

/*
 * Run one step in a child: @fn(@a, @b) gives its exit code.  Returns the
 * exit code, -SIGNAL, or -1000 for a hang.
 */
static int step(const char *name, int (*fn)(const char *a, const char *b), const char *a,
		const char *b)
{
	char dir[4096], path[4200], res[64];
	struct timespec t0, t1;
	int status;
	pid_t pid;

	snprintf(dir, sizeof(dir), "%s/out/%s", work, name);
	mkdirs(dir);
	fflush(NULL);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		int fd;

		snprintf(path, sizeof(path), "%s/out", dir);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0)
			die(path);
		dup2(fd, 1);
		dup2(fd, 2);
		close(fd);
		signal(SIGALRM, SIG_DFL);	/* a hang dies of it */
		alarm(timeout_s);
		status = fn(a, b);
		fflush(NULL);
		_exit(status);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			die("waitpid");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM) {
		snprintf(res, sizeof(res), "hang");
		status = -1000;
	} else if (WIFSIGNALED(status)) {
		snprintf(res, sizeof(res), "signal %d", WTERMSIG(status));
		status = -WTERMSIG(status);
	} else {
		snprintf(res, sizeof(res), "exit %d", WEXITSTATUS(status));
		status = WEXITSTATUS(status);
	}
	snprintf(res + strlen(res), sizeof(res) - strlen(res), " %.1f ms",
		 (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
	put(dir, "result", res, strlen(res));
	return status;
}

static int fsck_fn(const char *dir, const char *repair)
{
	return cmd_fsck(dir, repair != NULL);
}

static int reindex_fn(const char *dir, const char *unused)
{
	(void)unused;
	return cmd_reindex(dir, NULL);
}

static int backup_fn(const char *src, const char *dest)
{
	return cmd_backup(src, dest);
}

static int mount_first(const char *data, const char *snap)
{
	return do_mount(data, snap, true);
}

static int mount_final(const char *data, const char *snap)
{
	return do_mount(data, snap, false);
}

static void log_sink(int prio, const char *msg)
{
	(void)prio;
	fprintf(stderr, "%s\n", msg);
}

int main(int argc, char **argv)
{
	char data[4096], bk[4096], snap1[4096], snap2[4096];

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: damage_steps WORK [TIMEOUT_S]\n");
		return 2;
	}
	work = argv[1];
	if (argc == 3)
		timeout_s = (unsigned)atoi(argv[2]);
	evl_log_set(log_sink, LOG_INFO);
	snprintf(data, sizeof(data), "%s/data", work);
	snprintf(bk, sizeof(bk), "%s/backup", work);
	snprintf(snap1, sizeof(snap1), "%s/out/mount/snap", work);
	snprintf(snap2, sizeof(snap2), "%s/out/mount-final/snap", work);

	step("fsck-pre", fsck_fn, data, NULL);
	step("mount", mount_first, data, snap1);
	step("fsck", fsck_fn, data, NULL);
	step("repair", fsck_fn, data, "repair");
	step("fsck-after-repair", fsck_fn, data, NULL);
	step("reindex", reindex_fn, data, NULL);
	step("fsck-after-reindex", fsck_fn, data, NULL);
	if (step("backup", backup_fn, data, bk) == 0)
		step("fsck-backup", fsck_fn, bk, NULL);
	step("mount-final", mount_final, data, snap2);
	return 0;
}
