/*
 * core_bench - the core's throughput, as ratios against baselines measured
 * in the same run on the same disk:
 *
 *   append: 200-byte events, one write per event, 1 and 4 threads, in
 *           commit=group and commit=sync; baselines: the same writers on
 *           plain O_APPEND files, and fsync per event on a plain file.
 *   query:  read a by-type view holding 1% of the store, against reading
 *           every task log and parsing each line with json-c (what a store
 *           without an index does per query) and against a memmem scan.
 *   compact: append latency (p50, p99) of 4 writers while a compaction
 *           deletes a large task, drops each live task's head (keep-last)
 *           and shrinks the index, against the same writers with no
 *           compaction; and the disk bytes it gives back, against the
 *           store's size before.
 *
 * Each figure is the median of --runs runs (default 5) with min and max.
 * Prints a table, then one JSON object per figure.  --quick: tiny sizes,
 * for CI to check that it runs (timings there mean nothing).
 * Usage: core_bench [--quick] [--runs N] [--dir DIR] [--only append|query|compact]
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "evlog.h"
#include "log.h"
#include "scan.h"
#include "tasklog.h"

struct fig {
	char name[64];
	const char *unit;
	double v[16];
	int n;
	char baseline[64];
	double base[16];
};

static struct fig figs[32];
static int nfigs;
static int runs = 5;
static bool quick;
static char *workdir;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n, double *lo, double *hi)
{
	double s[16];

	memcpy(s, v, n * sizeof(*v));
	qsort(s, n, sizeof(*s), cmp_d);
	*lo = s[0];
	*hi = s[n - 1];
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static void rmrf(const char *path)
{
	char cmd[4400];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	if (system(cmd))
		fprintf(stderr, "core_bench: could not remove %s\n", path);
}

static int make_event(char *buf, int type, int task, long i)
{
	/* 200 bytes with the newline */
	int n = snprintf(buf, 256, "{\"type\":\"type%03d.evt\",\"task\":%d,\"seq\":%ld,\"pad\":\"",
			 type, task, i);

	memset(buf + n, 'p', 197 - n);
	memcpy(buf + 197, "\"}\n", 3);
	return 200;
}

/* ---- appends ---- */

struct app_arg {
	struct evl_store *st;
	uint64_t uid;
	int fd;			/* plain-file baseline when >= 0 */
	bool fsync_each;
	long n;
	int id;
};

static void *app_main(void *p)
{
	struct app_arg *a = p;
	struct evl_writer *w = NULL;
	char buf[256];

	if (a->fd < 0 && evl_writer_open(a->st, a->uid, &w))
		abort();
	for (long i = 0; i < a->n; i++) {
		int n = make_event(buf, (int)(i % 50), a->id, i);

		if (w) {
			if (evl_writer_write(w, buf, n))
				abort();
		} else {
			if (write(a->fd, buf, n) != n)
				abort();
			if (a->fsync_each && fdatasync(a->fd))
				abort();
		}
	}
	if (w && evl_writer_close(w))
		abort();
	return NULL;
}

/* events/s of @threads writers: into the store (sync or group), or plain files */
static double run_appends(int threads, int mode, long per_thread)
{
	char dir[4200];
	struct app_arg a[16];
	pthread_t th[16];
	struct evl_store *st = NULL;
	double t0, t1;

	snprintf(dir, sizeof(dir), "%s/app", workdir);
	rmrf(dir);
	mkdir(dir, 0755);
	if (mode >= 2) {		/* 2: group, 3: sync */
		struct evl_options o;

		evl_options_default(&o);
		o.commit_sync = mode == 3;
		if (evl_store_open(dir, &o, &st))
			abort();
	}
	for (int i = 0; i < threads; i++) {
		char name[4300];

		a[i] = (struct app_arg){ st, 0, -1, mode == 1, per_thread, i };
		snprintf(name, sizeof(name), "w%d", i);
		if (st) {
			struct evl_task_info info;

			if (evl_task_create(st, name) || evl_task_lookup(st, name, &info))
				abort();
			a[i].uid = info.uid;
		} else {
			snprintf(name, sizeof(name), "%s/w%d.jsonl", dir, i);
			a[i].fd = open(name, O_WRONLY | O_CREAT | O_APPEND, 0644);
		}
	}
	t0 = now();
	for (int i = 0; i < threads; i++)
		pthread_create(&th[i], NULL, app_main, &a[i]);
	for (int i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	t1 = now();
	for (int i = 0; i < threads; i++)
		if (a[i].fd >= 0)
			close(a[i].fd);
	if (st && evl_store_close(st))
		abort();
	rmrf(dir);
	return threads * per_thread / (t1 - t0);
}

static struct fig *fig_new(const char *name, const char *unit, const char *baseline)
{
	struct fig *f = &figs[nfigs++];

	snprintf(f->name, sizeof(f->name), "%s", name);
	f->unit = unit;
	snprintf(f->baseline, sizeof(f->baseline), "%s", baseline);
	return f;
}

static void bench_appends(void)
{
	long n_group = quick ? 2000 : 60000, n_sync = quick ? 200 : 4000, n_fsync = quick ? 100 : 2000;

	for (int threads = 1; threads <= 4; threads *= 4) {
		char name[64];
		struct fig *g, *s;

		snprintf(name, sizeof(name), "append_group_%dw", threads);
		g = fig_new(name, "events/s", "plain O_APPEND files, same writers");
		snprintf(name, sizeof(name), "append_sync_%dw", threads);
		s = fig_new(name, "events/s", "one writer, fdatasync per event");
		for (int r = 0; r < runs; r++) {
			g->v[g->n++] = run_appends(threads, 2, n_group / threads);
			g->base[r] = run_appends(threads, 0, n_group / threads);
			s->v[s->n++] = run_appends(threads, 3, n_sync / threads);
			s->base[r] = run_appends(1, 1, n_fsync);
		}
	}
}

/* ---- type query ---- */

static long scan_memmem(const char *tasks_dir, const char *needle)
{
	DIR *d = opendir(tasks_dir);
	struct dirent *de;
	char path[4608];
	static char buf[1 << 20];
	long matched = 0;
	size_t nl = strlen(needle);

	while ((de = readdir(d))) {
		FILE *f;
		size_t n;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/events", tasks_dir, de->d_name);
		f = fopen(path, "r");
		while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
			for (char *p = buf; (p = memmem(p, buf + n - p, needle, nl)); p += nl)
				matched++;
		fclose(f);
	}
	closedir(d);
	return matched;
}

static void bench_query(void)
{
	int ntasks = quick ? 20 : 1000, nev = quick ? 100 : 1000, ntypes = 100;
	struct fig *f1 = fig_new("query_1pct_vs_parse", "s", "read every log, json-c per line");
	struct fig *f2 = fig_new("query_1pct_vs_memmem", "s", "read every log, memmem scan");
	char dir[4200], tasks[4300], buf[64 * 200];
	struct evl_store *st;
	struct evl_options o;
	double t0;

	snprintf(dir, sizeof(dir), "%s/query", workdir);
	rmrf(dir);
	evl_options_default(&o);
	if (evl_store_open(dir, &o, &st))
		abort();
	t0 = now();
	for (int t = 0; t < ntasks; t++) {
		struct evl_task_info info;
		struct evl_writer *w;
		char name[32];

		snprintf(name, sizeof(name), "task%04d", t);
		if (evl_task_create(st, name) || evl_task_lookup(st, name, &info) ||
		    evl_writer_open(st, info.uid, &w))
			abort();
		for (int i = 0; i < nev; i += 64) {
			int k = 0;

			for (int j = i; j < i + 64 && j < nev; j++)
				k += make_event(buf + k, (t * 7 + j) % ntypes, t, j);
			if (evl_writer_write(w, buf, k))
				abort();
		}
		evl_writer_close(w);
	}
	if (evl_store_checkpoint(st))
		abort();
	fprintf(stderr, "query store: %d tasks x %d events loaded in %.1f s\n", ntasks, nev,
		now() - t0);
	snprintf(tasks, sizeof(tasks), "%s/tasks", dir);
	for (int r = 0; r < runs; r++) {
		static char out[128 << 10];
		struct evl_view *v;
		uint64_t off = 0;
		ssize_t n;
		long exp;

		t0 = now();
		if (evl_view_open(st, "type042.", 8, 0, &v))
			abort();
		while ((n = evl_view_read(v, off, out, sizeof(out))) > 0)
			off += n;
		evl_view_close(v);
		f1->v[f1->n++] = f2->v[f2->n++] = now() - t0;
		t0 = now();
		exp = scan_parse(tasks, "type042.", 8);
		f1->base[r] = now() - t0;
		if ((uint64_t)exp != off) {
			fprintf(stderr, "core_bench: view has %llu bytes, scan found %ld\n",
				(unsigned long long)off, exp);
			abort();
		}
		t0 = now();
		scan_memmem(tasks, "\"type\":\"type042.");
		f2->base[r] = now() - t0;
	}
	evl_store_close(st);
	rmrf(dir);
}

/* ---- compaction ---- */

struct lat_arg {
	struct evl_store *st;
	uint64_t uid;
	int id;
	long min_n, max_n;	/* at least min_n appends, then on until *stop */
	volatile bool *stop;
	double *lat;		/* seconds per append */
	long n;
};

/* A paced writer, as agents write: one event per millisecond. */
static void *lat_main(void *p)
{
	struct lat_arg *a = p;
	struct evl_writer *w;
	struct timespec tick;
	char buf[256];

	if (evl_writer_open(a->st, a->uid, &w))
		abort();
	clock_gettime(CLOCK_MONOTONIC, &tick);
	for (a->n = 0; a->n < a->max_n && (a->n < a->min_n || !*a->stop); a->n++) {
		int len = make_event(buf, (int)(a->n % 50), a->id, a->n);
		double t0 = now();

		if (evl_writer_write(w, buf, len))
			abort();
		a->lat[a->n] = now() - t0;
		tick.tv_nsec += 1000000;
		if (tick.tv_nsec >= 1000000000) {
			tick.tv_sec++;
			tick.tv_nsec -= 1000000000;
		}
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &tick, NULL);
	}
	if (evl_writer_close(w))
		abort();
	return NULL;
}

/*
 * 4 paced writers on @uids: @n appends each, or with @keep_last, as many as
 * a compaction (delete "doomed", keep-last) takes, at most @max_n.  Their
 * p50 and p99 latency; returns the appends made.
 */
static long run_latency(struct evl_store *st, uint64_t *uids, long n, long max_n,
			uint64_t keep_last, double *p50, double *p99, double *dur)
{
	struct lat_arg a[4];
	pthread_t th[4];
	volatile bool stop = !keep_last;
	double *all, t0 = now();
	long total = 0;

	for (int i = 0; i < 4; i++) {
		a[i] = (struct lat_arg){ st, uids[i], i, n, max_n, &stop, NULL, 0 };
		a[i].lat = malloc(max_n * sizeof(double));
		pthread_create(&th[i], NULL, lat_main, &a[i]);
	}
	if (keep_last) {
		struct evl_compact_args args = { .keep_last = keep_last };
		struct evl_compact_status cs;

		if (evl_task_delete(st, "doomed") || evl_compact_start(st, &args))
			abort();
		do {
			usleep(2000);
			evl_compact_status(st, &cs);
		} while (cs.running);
		if (cs.last_rc)
			abort();
		*dur = now() - t0;
		stop = true;
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		total += a[i].n;
	}
	all = malloc(total * sizeof(double));
	total = 0;
	for (int i = 0; i < 4; i++) {
		memcpy(all + total, a[i].lat, a[i].n * sizeof(double));
		total += a[i].n;
		free(a[i].lat);
	}
	qsort(all, total, sizeof(double), cmp_d);
	*p50 = all[total / 2];
	*p99 = all[total * 99 / 100];
	free(all);
	return total;
}

static uint64_t du_dir(const char *dir)
{
	char cmd[4400];
	unsigned long long kb = 0;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "du -sk '%s'", dir);
	f = popen(cmd, "r");
	if (!f || fscanf(f, "%llu", &kb) != 1)
		kb = 0;
	if (f)
		pclose(f);
	return kb * 1024;
}

/*
 * Tasks: "doomed" (deleted, then reclaimed), live0-3 (each keeps its last
 * half), busy0-3 (the paced writers', short enough to keep everything, so
 * what they add can be counted back into the bytes reclaimed).
 */
static void bench_compact(bool sync)
{
	long doomed = quick ? 2000 : 200000, live = quick ? 1000 : 40000, n = quick ? 200 : 2000;
	long keep = live / 2;
	struct fig *f50 = fig_new(sync ? "sync_p50_compacting" : "group_p50_compacting", "s",
				  "append p50, no compaction");
	struct fig *f99 = fig_new(sync ? "sync_p99_compacting" : "group_p99_compacting", "s",
				  "append p99, no compaction");
	struct fig *fr = fig_new(sync ? "sync_bytes_reclaimed" : "group_bytes_reclaimed", "bytes",
				 "store on disk before (du)");
	double durs[16];

	for (int r = 0; r < runs; r++) {
		char dir[4200];
		struct evl_options o;
		struct evl_store *st;
		uint64_t busy[4], before;
		double dur = 0;
		long added;

		snprintf(dir, sizeof(dir), "%s/compact", workdir);
		rmrf(dir);
		evl_options_default(&o);	/* filled with group commit, measured with @sync */
		if (evl_store_open(dir, &o, &st))
			abort();
		for (int i = 0; i < 9; i++) {
			char name[16];
			struct evl_task_info info;
			struct app_arg a;

			snprintf(name, sizeof(name), i == 8 ? "doomed" : i < 4 ? "live%d" : "busy%d",
				 i % 4);
			if (evl_task_create(st, name) || evl_task_lookup(st, name, &info))
				abort();
			a = (struct app_arg){ st, info.uid, -1, false, i == 8 ? doomed : live, i };
			if (i < 4 || i == 8)
				app_main(&a);
			else
				busy[i - 4] = info.uid;
		}
		o.commit_sync = sync;
		if (evl_store_close(st) || evl_store_open(dir, &o, &st))
			abort();
		run_latency(st, busy, n, n, 0, &f50->base[r], &f99->base[r], &dur);
		if (evl_store_checkpoint(st))
			abort();
		before = du_dir(dir);
		added = run_latency(st, busy, n / 4, keep - n - 1, keep, &f50->v[r], &f99->v[r],
				    &dur);
		if (evl_store_checkpoint(st))
			abort();
		/* what went, counting back in what the writers added meanwhile */
		fr->v[r] = (double)before + added * (200.0 + TASKLOG_REC) - (double)du_dir(dir);
		fr->base[r] = before;
		durs[r] = dur;
		f50->n = f99->n = fr->n = r + 1;
		if (evl_store_close(st))
			abort();
		rmrf(dir);
	}
	{
		double lo, hi, m = median(durs, runs, &lo, &hi);

		printf("compaction (commit=%s): %.3f s median (%.3f-%.3f): delete a task of %ld "
		       "events, keep the last %ld of 4 tasks of %ld, shrink the index; 4 writers "
		       "at up to 1,000 events/s each meanwhile\n", sync ? "sync" : "group", m, lo, hi,
		       doomed, keep, live);
	}
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "quick", no_argument, NULL, 'q' },
		{ "runs", required_argument, NULL, 'r' },
		{ "dir", required_argument, NULL, 'd' },
		{ "only", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/var/tmp";
	const char *only = "";
	int c;

	while ((c = getopt_long(argc, argv, "qr:d:o:", longopts, NULL)) != -1) {
		switch (c) {
		case 'q':
			quick = true;
			break;
		case 'r':
			runs = atoi(optarg);
			break;
		case 'd':
			base = optarg;
			break;
		case 'o':
			only = optarg;
			break;
		default:
			fprintf(stderr, "usage: core_bench [--quick] [--runs N] [--dir DIR] "
				"[--only append|query|compact]\n");
			return 2;
		}
	}
	if (runs < 1 || runs > 16)
		runs = 5;
	if (quick)
		runs = 1;
	evl_log_set(NULL, LOG_WARNING);
	if (asprintf(&workdir, "%s/evl-bench-XXXXXX", base) < 0 || !mkdtemp(workdir)) {
		perror("core_bench: temp dir");
		return 2;
	}
	if (!*only || !strcmp(only, "append"))
		bench_appends();
	if (!*only || !strcmp(only, "query"))
		bench_query();
	if (!*only || !strcmp(only, "compact")) {
		bench_compact(false);
		bench_compact(true);
	}
	rmrf(workdir);

	printf("%-24s %14s %14s %10s  %s\n", "figure", "median", "baseline", "ratio", "(min-max)");
	for (int i = 0; i < nfigs; i++) {
		struct fig *f = &figs[i];
		double lo, hi, blo, bhi, m = median(f->v, f->n, &lo, &hi);
		double b = median(f->base, f->n, &blo, &bhi);
		/* ratio > 1 is better for us: rates over rates, times under times */
		double ratio = strcmp(f->unit, "s") ? m / b : b / m;

		printf("%-24s %14.4g %14.4g %9.2fx  (%.4g-%.4g %s)\n", f->name, m, b, ratio, lo, hi,
		       f->unit);
	}
	for (int i = 0; i < nfigs; i++) {
		struct fig *f = &figs[i];
		double lo, hi, blo, bhi, m = median(f->v, f->n, &lo, &hi);
		double b = median(f->base, f->n, &blo, &bhi);

		printf("{\"name\":\"%s\",\"value\":%.6g,\"min\":%.6g,\"max\":%.6g,\"unit\":\"%s\","
		       "\"baseline\":%.6g,\"baseline_what\":\"%s\",\"ratio\":%.4g,\"runs\":%d}\n",
		       f->name, m, lo, hi, f->unit, b, f->baseline,
		       strcmp(f->unit, "s") ? m / b : b / m, f->n);
	}
	printf("core_bench: %d figures, %d runs each%s\n", nfigs, runs, quick ? " (quick)" : "");
	return 0;
}
