/*
 * testutil.c - temp dirs, fixtures and the sharded test runner.
 */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "evlog.h"
#include "fio.h"
#include "index.h"
#include "tasklog.h"
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

int tu_run_tests(const char *name, const struct CMUnitTest *tests, size_t n)
{
	const char *shard = getenv("EVL_TEST_SHARD");
	struct CMUnitTest *some;
	unsigned i, k;
	size_t m = 0;
	int rc;

	if (getenv("EVL_TEST_FILTER"))
		cmocka_set_test_filter(getenv("EVL_TEST_FILTER"));
	if (!shard)
		return _cmocka_run_group_tests(name, tests, n, NULL, NULL);
	if (sscanf(shard, "%u/%u", &i, &k) != 2 || i < 1 || i > k) {
		fprintf(stderr, "EVL_TEST_SHARD=%s: want i/n with 1 <= i <= n\n", shard);
		return 1;
	}
	some = calloc(n, sizeof(*some));
	if (!some)
		return 1;
	for (size_t t = i - 1; t < n; t += k)
		some[m++] = tests[t];
	rc = _cmocka_run_group_tests(name, some, m, NULL, NULL);
	free(some);
	return rc;
}

uint64_t tu_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ull + ts.tv_nsec / 1000000;
}

/* ---- stores for the tests of the store (testutil.h) ---- */

struct evl_store *tu_open_store(const char *dir, bool sync, unsigned commit_ms)
{
	struct evl_options o;
	struct evl_store *st = NULL;

	evl_options_default(&o);
	o.commit_sync = sync;
	o.commit_ms = commit_ms;
	o.segment_bytes = 64 << 10;	/* many segments: rotation and trim run */
	o.max_fds = 4;			/* the descriptor cache evicts */
	assert_int_equal(evl_store_open(dir, &o, &st), 0);
	return st;
}

uint64_t tu_task_uid(struct evl_store *st, const char *name)
{
	struct evl_task_info info;

	if (evl_task_lookup(st, name, &info))
		return 0;
	return info.uid;
}

uint64_t tu_task_events(struct evl_store *st, const char *name)
{
	struct evl_task_info info;

	assert_int_equal(evl_task_lookup(st, name, &info), 0);
	return info.events;
}

uint64_t tu_create(struct evl_store *st, const char *name)
{
	assert_int_equal(evl_task_create(st, name), 0);
	return tu_task_uid(st, name);
}

int tu_write_str(struct evl_writer *w, const char *s)
{
	return evl_writer_write(w, s, strlen(s));
}

int tu_event_line(char *buf, size_t n, int type, int w, int i, int pad)
{
	return snprintf(buf, n, "{\"type\":\"ty%02d\",\"w\":%d,\"i\":%d,\"pad\":\"%.*s\"}\n", type,
			w, i, pad, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
}

char *tu_read_all(struct evl_store *st, uint64_t uid, struct evl_view *v, size_t *len)
{
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);

	for (;;) {
		ssize_t r;

		if (cap - n < 4096)
			buf = realloc(buf, cap *= 2);
		r = v ? evl_view_read(v, n, buf + n, 4096 - (n % 7))
		      : evl_task_read(st, uid, n, buf + n, 4096 - (n % 7));
		assert_true(r >= 0);
		if (r == 0)
			break;
		n += r;
	}
	*len = n;
	return buf;
}

char *tu_read_view(struct evl_store *st, const char *prefix, uint64_t uid, size_t *len)
{
	struct evl_view *v;
	uint64_t size;
	char *buf;

	if (evl_view_open(st, prefix, strlen(prefix), uid, &v)) {
		*len = 0;
		return NULL;
	}
	buf = tu_read_all(st, 0, v, len);
	assert_int_equal(evl_view_size(v, &size), 0);
	assert_int_equal(size, *len);
	evl_view_close(v);
	return buf;
}

/* One event as found on disk by the rescan. */
struct disk_ev {
	uint64_t gseq, uid;
	char task[64];
	char type[32];
	char *bytes;
	uint32_t len;
};

struct disk {
	struct disk_ev *ev;
	size_t n, cap;
};

static int cmp_gseq(const void *a, const void *b)
{
	const struct disk_ev *x = a, *y = b;

	return x->gseq < y->gseq ? -1 : x->gseq > y->gseq;
}

char *tu_slurp_path(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc(n + 1);
	*len = fread(buf, 1, n, f);
	buf[*len] = '\0';
	fclose(f);
	return buf;
}

/*
 * Read every live task's log and sidecar straight from DATA_DIR: the events
 * in global commit order.  Fails on a torn or inconsistent task.
 */
static void rescan(const char *dir, struct disk *d)
{
	char path[4400];
	struct dirent *de;
	DIR *td;

	d->ev = NULL;
	d->n = d->cap = 0;
	snprintf(path, sizeof(path), "%s/tasks", dir);
	td = opendir(path);
	assert_non_null(td);
	while ((de = readdir(td))) {
		size_t llen, mlen, off = 0;
		char *log, *meta;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/tasks/%s/events", dir, de->d_name);
		log = tu_slurp_path(path, &llen);
		snprintf(path, sizeof(path), "%s/tasks/%s/events.meta", dir, de->d_name);
		meta = tu_slurp_path(path, &mlen);
		assert_non_null(log);
		assert_non_null(meta);
		assert_int_equal(mlen % TASKLOG_REC, 0);
		for (size_t i = 0; i < mlen / TASKLOG_REC; i++) {
			struct tasklog_rec r;
			struct disk_ev *e;
			char *t;

			assert_int_equal(tasklog_decode((unsigned char *)meta + i * TASKLOG_REC, &r), 0);
			assert_true(off + r.len <= llen);
			assert_int_equal(log[off + r.len - 1], '\n');
			if (d->n == d->cap) {
				d->cap = d->cap ? d->cap * 2 : 256;
				d->ev = realloc(d->ev, d->cap * sizeof(*d->ev));
			}
			e = &d->ev[d->n++];
			e->gseq = r.gseq;
			snprintf(e->task, sizeof(e->task), "%.63s", de->d_name);
			e->bytes = malloc(r.len + 1);
			memcpy(e->bytes, log + off, r.len);
			e->bytes[r.len] = '\0';
			e->len = r.len;
			t = strstr(e->bytes, "\"type\":\"");
			assert_non_null(t);
			sscanf(t + 8, "%31[^\"]", e->type);
			off += r.len;
		}
		assert_int_equal(off, llen);	/* nothing past the last event */
		free(log);
		free(meta);
	}
	closedir(td);
	if (d->n)
		qsort(d->ev, d->n, sizeof(*d->ev), cmp_gseq);
	for (size_t i = 1; i < d->n; i++)
		assert_true(d->ev[i].gseq > d->ev[i - 1].gseq);	/* no duplicate gseq */
}

static void disk_free(struct disk *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->ev[i].bytes);
	free(d->ev);
}

/* What view @prefix (of @task, or all) must hold according to the rescan. */
static char *expect_view(const struct disk *d, const char *prefix, const char *task, size_t *len)
{
	size_t n = 0, cap = 0;
	char *buf = NULL;

	for (size_t i = 0; i < d->n; i++)
		cap += d->ev[i].len;
	buf = malloc(cap + 1);
	for (size_t i = 0; i < d->n; i++) {
		if (strncmp(d->ev[i].type, prefix, strlen(prefix)) ||
		    (task && strcmp(task, d->ev[i].task)))
			continue;
		memcpy(buf + n, d->ev[i].bytes, d->ev[i].len);
		n += d->ev[i].len;
	}
	*len = n;
	return buf;
}

void tu_check_views(struct evl_store *st, const char *dir)
{
	static const char *const prefixes[] = { "t", "ty", "ty0", "ty01", "ty1", "ty07", "ty2" };
	struct disk d;

	assert_int_equal(evl_store_checkpoint(st), 0);	/* applied and on disk */
	rescan(dir, &d);
	for (size_t p = 0; p < sizeof(prefixes) / sizeof(*prefixes); p++) {
		size_t elen, glen;
		char *exp = expect_view(&d, prefixes[p], NULL, &elen);
		char *got = tu_read_view(st, prefixes[p], 0, &glen);

		if (elen != glen || (elen && memcmp(exp, got, elen)))
			fail_msg("view %s: %zu bytes, expected %zu", prefixes[p], glen, elen);
		assert_int_equal(evl_prefix_exists(st, prefixes[p], strlen(prefixes[p])), (elen ? 1 : 0));
		/* random offsets, random lengths */
		if (elen) {
			struct evl_view *v;
			unsigned seed = 42 + p;
			char buf[700];

			assert_int_equal(evl_view_open(st, prefixes[p], strlen(prefixes[p]), 0, &v), 0);
			for (int k = 0; k < 200; k++) {
				uint64_t off = rand_r(&seed) % elen;
				size_t want = 1 + rand_r(&seed) % sizeof(buf);
				ssize_t r = evl_view_read(v, off, buf, want);
				size_t exp_n = want < elen - off ? want : elen - off;

				if ((size_t)r != exp_n)
					fail_msg("view %s size %zu: read(off %llu, %zu) = %zd, want %zu",
						 prefixes[p], elen, (unsigned long long)off, want, r, exp_n);
				assert_memory_equal(buf, exp + off, exp_n);
			}
			evl_view_close(v);
		}
		free(exp);
		free(got);
	}
	/* per-task views */
	for (size_t i = 0; i < d.n; i += d.n / 5 + 1) {
		uint64_t uid = tu_task_uid(st, d.ev[i].task);
		size_t elen, glen;
		char *exp = expect_view(&d, "ty", d.ev[i].task, &elen);
		char *got = tu_read_view(st, "ty", uid, &glen);

		assert_int_equal(glen, elen);
		assert_memory_equal(got, exp, elen);
		free(exp);
		free(got);
	}
	disk_free(&d);
}

void *tu_writer_main(void *arg)
{
	struct tu_writer_arg *a = arg;
	struct evl_writer *w;
	char line[200];

	if (evl_writer_open(a->st, a->uid, &w))
		return (void *)1;
	for (int i = 0; i < a->n; i++) {
		int n = tu_event_line(line, sizeof(line), (a->id + i) % 11, a->id, i, i % 50);

		if (a->split) {
			int cut = n / 3;

			if (evl_writer_write(w, line, cut) || evl_writer_write(w, line + cut, n - cut))
				return (void *)2;
		} else if (evl_writer_write(w, line, n)) {
			return (void *)3;
		}
	}
	return evl_writer_close(w) ? (void *)4 : NULL;
}

void tu_check_task_order(const char *log, size_t len, int *per_writer, int nwriters)
{
	int next[64] = { 0 };
	const char *p = log, *end = log + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', end - p);
		int t, w, i;

		assert_non_null(nl);
		assert_int_equal(sscanf(p, "{\"type\":\"ty%d\",\"w\":%d,\"i\":%d", &t, &w, &i), 3);
		assert_true(w >= 0 && w < nwriters);
		assert_int_equal(i, next[w]);
		next[w]++;
		p = nl + 1;
	}
	for (int w = 0; w < nwriters; w++)
		if (per_writer)
			per_writer[w] = next[w];
}

int tu_task_run(struct evl_store *st, uint64_t uid, int w, int *first, const char *what, long n)
{
	size_t len;
	char *log = tu_read_all(st, uid, NULL, &len), *p, *end;
	int count = 0, next = -1;

	*first = -1;
	for (p = log, end = log + len; p < end;) {
		char *nl = memchr(p, '\n', end - p);
		int ty, ww, i;

		if (!nl || sscanf(p, "{\"type\":\"ty%d\",\"w\":%d,\"i\":%d", &ty, &ww, &i) != 3 ||
		    ww != w || (next >= 0 && i != next))
			fail_msg("%s %ld: writer %d's task: event %d is wrong: %.60s", what, n, w,
				 count, p);
		if (*first < 0)
			*first = i;
		next = i + 1;
		count++;
		p = nl + 1;
	}
	free(log);
	return count;
}

int tu_iterations(const char *var, int dflt)
{
	const char *s = getenv(var);

	return s && atoi(s) > 0 ? atoi(s) : dflt;
}

void tu_copy_store(const char *pristine, const char *work)
{
	char cmd[3 * 4200 + 64];	/* three paths of up to 4200 */

	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && cp -a '%s' '%s'", work, pristine, work);
	assert_int_equal(system(cmd), 0);
}

long tu_index_undone;

void tu_journal_unapplied(const char *dir, const char *ev)
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		struct evl_options o;
		struct evl_store *st;
		struct evl_writer *w;

		fio_install();
		evl_options_default(&o);
		o.commit_sync = true;
		o.hold_apply = true;	/* journaled and durable, not applied */
		if (evl_store_open(dir, &o, &st) || evl_writer_open(st, tu_task_uid(st, "x"), &w) ||
		    tu_write_str(w, ev))
			_exit(2);
		_exit(0);	/* no close: it would apply */
	}
	waitpid(pid, &status, 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

void tu_append_to(const char *dir, const char *file, const void *fill, size_t len)
{
	char path[4400], zeros[64] = { 0 };
	int fd;

	assert_true(len <= sizeof(zeros));
	snprintf(path, sizeof(path), "%s/tasks/x/%s", dir, file);
	assert_true((fd = open(path, O_WRONLY | O_APPEND)) >= 0);
	assert_int_equal(write(fd, fill ? fill : zeros, len), (ssize_t)len);
	close(fd);
}

long tu_fault_stride(void)
{
	long stride = 1;

#if defined(__SANITIZE_THREAD__)
	stride = 8;
#elif defined(__SANITIZE_ADDRESS__)
	stride = 3;
#endif
	return tu_iterations("EVL_FAULT_STRIDE", stride);
}

void tu_wait_compaction(struct evl_store *st, struct evl_compact_status *cs)
{
	uint64_t deadline = tu_now_ms() + 300000;

	for (evl_compact_status(st, cs); cs->running && tu_now_ms() < deadline;
	     evl_compact_status(st, cs))
		usleep(1000);	/* poll, with a deadline */
	assert_false(cs->running);
}

int tu_task_collect_cb(void *arg, const struct evl_task_info *t)
{
	struct tu_task_check_ctx *c = arg;

	/* no store call in here: the callback runs inside the listing's snapshot */
	c->t = realloc(c->t, (c->n + 1) * sizeof(*c->t));
	c->t[c->n++] = *t;
	return 0;
}

static uint64_t check_task(struct evl_store *st, const char *dir, const struct evl_task_info *t)
{
	char path[4400];
	size_t flen, mlen, glen;
	char *file, *meta, *got;

	snprintf(path, sizeof(path), "%s/tasks/%s/events", dir, t->name);
	file = tu_slurp_path(path, &flen);
	snprintf(path, sizeof(path), "%s/tasks/%s/events.meta", dir, t->name);
	meta = tu_slurp_path(path, &mlen);
	assert_non_null(file);
	assert_non_null(meta);
	got = tu_read_all(st, t->uid, NULL, &glen);
	if (glen != flen || memcmp(got, file, flen))
		fail_msg("task %s: read %zu bytes, the file has %zu", t->name, glen, flen);
	assert_int_equal(t->size, flen);
	assert_int_equal(t->events, mlen / TASKLOG_REC);
	free(file);
	free(meta);
	free(got);
	return t->events;
}

void tu_check_tasks(struct evl_store *st, const char *dir)
{
	struct tu_task_check_ctx c = { NULL, 0 };
	uint64_t events = 0;
	struct evl_stats s;
	char path[4400];
	struct dirent *de;
	DIR *d;

	assert_int_equal(evl_store_checkpoint(st), 0);
	assert_int_equal(evl_task_list(st, NULL, tu_task_collect_cb, &c), 0);
	for (size_t i = 0; i < c.n; i++)
		events += check_task(st, dir, &c.t[i]);
	free(c.t);
	evl_store_stats(st, &s);
	assert_int_equal(s.events, events);
	snprintf(path, sizeof(path), "%s/tasks/.rewrite", dir);
	d = opendir(path);
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.')
			fail_msg("left over: %s/%s", path, de->d_name);
	if (d)
		closedir(d);
}

void tu_compact_and_wait(struct evl_store *st, const char *words, struct evl_compact_status *cs)
{
	struct evl_compact_args args;
	char why[200];

	assert_int_equal(evl_compact_parse(words, &args, why, sizeof(why)), 0);
	assert_int_equal(evl_compact_start(st, &args), 0);
	tu_wait_compaction(st, cs);
	assert_int_equal(cs->last_rc, 0);
}

static int count_cb(void *arg, const struct evl_task_info *t)
{
	(*(int *)arg)++;
	return 0;
}

int tu_count_tasks(struct evl_store *st)
{
	int n = 0;

	assert_int_equal(evl_task_list(st, NULL, count_cb, &n), 0);
	return n;
}

void tu_step_arm(const char *work, bool power, long k, int code)
{
	char dump[4400], stash[4400];

	if (!power) {
		fio_crash_at(k, code);
		return;
	}
	snprintf(dump, sizeof(dump), "%s.dump", work);
	snprintf(stash, sizeof(stash), "%s.stash", work);
	fio_track_dirs(stash);
	fio_powerloss_at(k, code, dump);
}

void tu_step_cut(const char *work, bool power, int status, struct fio_loss *loss)
{
	char dump[4400], stash[4400], mdb[4400];

	snprintf(dump, sizeof(dump), "%s.dump", work);
	snprintf(stash, sizeof(stash), "%s.stash", work);
	snprintf(mdb, sizeof(mdb), "%s/index/data.mdb", work);
	if (power && WEXITSTATUS(status) == 42) {
		assert_int_equal(fio_apply_powerloss(dump, 0, FIO_LOSS_ALL, loss), 0);
		tu_index_undone += fio_undo_index_commit(dump, mdb) > 0;
	}
	unlink(dump);
	tu_rmrf(stash);
}

void tu_append_n(struct evl_store *st, const char *name, int from, int n)
{
	struct evl_writer *w;
	char buf[128];

	assert_int_equal(evl_writer_open(st, tu_task_uid(st, name), &w), 0);
	for (int i = from; i < from + n; i++) {
		tu_event_line(buf, sizeof(buf), 1, 0, i, 3);
		assert_int_equal(tu_write_str(w, buf), 0);
	}
	assert_int_equal(evl_writer_close(w), 0);
}

/* A call that must return: run on a thread, given up on (the test fails) after a deadline. */
struct bounded {
	int (*fn)(void *arg);
	void *arg;
	atomic_bool done;
	int rc;
};

static void *bounded_main(void *arg)
{
	struct bounded *b = arg;

	b->rc = b->fn(b->arg);
	atomic_store(&b->done, true);
	return NULL;
}

int tu_within(unsigned secs, const char *what, int (*fn)(void *arg), void *arg)
{
	struct bounded *b = calloc(1, sizeof(*b));	/* leaked if it hangs */
	uint64_t end = tu_now_ms() + secs * 1000ull;
	pthread_t th;
	int rc;

	b->fn = fn;
	b->arg = arg;
	pthread_create(&th, NULL, bounded_main, b);
	while (!atomic_load(&b->done) && tu_now_ms() < end)
		usleep(1000);
	if (!atomic_load(&b->done))
		fail_msg("%s did not return within %u s", what, secs);
	pthread_join(th, NULL);
	rc = b->rc;
	free(b);
	return rc;
}

int tu_do_create(void *arg)
{
	struct tu_named *n = arg;

	return evl_task_create(n->st, n->name);
}

int tu_do_checkpoint(void *arg)
{
	return evl_store_checkpoint(arg);
}

/* ---- stores for the tests of the offline tools (testutil.h) ---- */

const char *const tu_types[] = { "tool.call", "tool.result", "note", "error.io" };

const char *const tu_prefixes[] = { "tool", "tool.call", "note", "error", "e", "n" };

struct evl_store *tu_open_default(const char *dir)
{
	struct evl_options o;
	struct evl_store *st;

	evl_options_default(&o);
	assert_int_equal(evl_store_open(dir, &o, &st), 0);
	return st;
}

void tu_fill(struct evl_store *st, int from, int n)
{
	char name[8], buf[128];

	for (int i = from; i < from + n; i++) {
		struct evl_task_info info;
		struct evl_writer *w;
		int len;

		snprintf(name, sizeof(name), "t%d", i % 4);
		if (evl_task_lookup(st, name, &info)) {
			assert_int_equal(evl_task_create(st, name), 0);
			assert_int_equal(evl_task_lookup(st, name, &info), 0);
		}
		assert_int_equal(evl_writer_open(st, info.uid, &w), 0);
		len = snprintf(buf, sizeof(buf), "{\"type\":\"%s\",\"i\":%d}\n", tu_types[(i * 7) % 4], i);
		assert_int_equal(evl_writer_write(w, buf, len), 0);
		assert_int_equal(evl_writer_close(w), 0);
	}
}

char *tu_dump(const char *dir)
{
	return tu_dump_err(dir, NULL);
}

char *tu_dump_err(const char *dir, int *err)
{
	struct evl_options o;
	struct evl_store *st;
	size_t cap = 1 << 20, len = 0;
	int rc, read_err = 0;
	char *out;

	evl_options_default(&o);
	rc = evl_store_open(dir, &o, &st);
	if (err) {
		*err = rc;
		if (rc)
			return NULL;
	} else {
		assert_int_equal(rc, 0);
	}
	out = malloc(cap);

	for (size_t p = 0; p < sizeof(tu_prefixes) / sizeof(*tu_prefixes); p++) {
		struct evl_view *v;
		ssize_t n;

		len += snprintf(out + len, cap - len, "== %s\n", tu_prefixes[p]);
		if (evl_view_open(st, tu_prefixes[p], strlen(tu_prefixes[p]), 0, &v))
			continue;
		for (uint64_t off = 0; (n = evl_view_read(v, off, out + len, cap - len - 1)) > 0;
		     off += n)
			len += n;
		if (n < 0)
			read_err = (int)n;
		evl_view_close(v);
	}
	for (int t = 0; t < 4; t++) {
		struct evl_task_info info;
		char name[8];
		ssize_t n;
		uint64_t off = 0;

		snprintf(name, sizeof(name), "t%d", t);
		len += snprintf(out + len, cap - len, "== task %s\n", name);
		if (evl_task_lookup(st, name, &info))
			continue;
		while ((n = evl_task_read(st, info.uid, off, out + len, cap - len - 1)) > 0) {
			off += n;
			len += n;
		}
		if (n < 0)
			read_err = (int)n;
	}
	out[len] = '\0';
	rc = evl_store_close(st);
	if (!err)
		assert_int_equal(rc, 0);
	else
		*err = rc ? rc : read_err;
	return out;
}

char tu_lines[64][300];

int tu_nlines;

void tu_collect(void *arg, char level, const char *line)
{
	if (tu_nlines < 64)
		snprintf(tu_lines[tu_nlines++], sizeof(tu_lines[0]), "%c %s", level, line);
}

bool tu_reported(const char *what)
{
	for (int i = 0; i < tu_nlines; i++)
		if (strstr(tu_lines[i], what))
			return true;
	return false;
}

int tu_fsck(const char *dir, bool repair, struct evl_check_result *r)
{
	struct evl_check_opts o = { .repair = repair, .report = tu_collect };

	tu_nlines = 0;
	return evl_fsck(dir, &o, r);
}

void tu_stray_entry(struct index_txn *t, uint64_t uid, uint64_t gseq, const char *type,
		    uint64_t off, uint32_t len)
{
	struct index_meta m;

	assert_int_equal(index_add_event(t, uid, gseq, type, strlen(type), off, len), 0);
	assert_int_equal(index_get_meta(t, &m), 0);
	if (m.next_gseq <= gseq)
		m.next_gseq = gseq + 1;
	assert_int_equal(index_put_meta(t, &m), 0);
}

uint64_t tu_file_size(const char *dir, const char *file)
{
	char path[4400];
	struct stat sb;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	return stat(path, &sb) ? 0 : sb.st_size;
}

char *tu_slurp(const char *dir, const char *rel, size_t *len)
{
	char path[4400];
	struct stat sb;
	char *buf;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return NULL;
	assert_int_equal(fstat(fd, &sb), 0);
	buf = malloc(sb.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(read(fd, buf, sb.st_size), sb.st_size);
	close(fd);
	buf[sb.st_size] = '\0';
	if (len)
		*len = sb.st_size;
	return buf;
}

void tu_spit(const char *dir, const char *rel, const void *data, size_t len)
{
	char path[4400];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

ssize_t tu_read_task(struct evl_store *st, const char *name, char *buf, size_t cap)
{
	struct evl_task_info info;
	uint64_t off = 0;
	ssize_t n;

	assert_int_equal(evl_task_lookup(st, name, &info), 0);
	while ((n = evl_task_read(st, info.uid, off, buf + off, cap - 1 - off)) > 0)
		off += n;
	buf[off] = '\0';
	return n < 0 ? n : (ssize_t)off;
}

void tu_journal_to(const char *dir, const char *task, const char *ev)
{
	struct evl_options o;
	struct evl_task_info info;
	struct evl_writer *w;
	struct evl_store *st;
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		evl_options_default(&o);
		o.commit_sync = true;
		o.hold_apply = true;
		if (evl_store_open(dir, &o, &st) || evl_task_lookup(st, task, &info) ||
		    evl_writer_open(st, info.uid, &w) || evl_writer_write(w, ev, strlen(ev)))
			_exit(2);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

bool tu_exists(const char *dir, const char *rel)
{
	char path[4400];
	struct stat sb;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	return stat(path, &sb) == 0;
}
