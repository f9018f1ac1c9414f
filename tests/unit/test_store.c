/*
 * Unit tests: the store, end to end through core/evlog.h, plus crashes,
 * power loss and injected faults.  Every check compares against a rescan
 * of the task logs and sidecars on disk (rescan()), which is what the
 * index must equal.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "evlog.h"
#include "index.h"
#include "store_i.h"
#include "tasklog.h"
#include "testutil.h"

/* ---- helpers ---- */

static struct evl_store *open_store(const char *dir, bool sync, unsigned commit_ms)
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

static uint64_t task_uid(struct evl_store *st, const char *name)
{
	struct evl_task_info info;

	if (evl_task_lookup(st, name, &info))
		return 0;
	return info.uid;
}

static uint64_t create(struct evl_store *st, const char *name)
{
	assert_int_equal(evl_task_create(st, name), 0);
	return task_uid(st, name);
}

static int write_str(struct evl_writer *w, const char *s)
{
	return evl_writer_write(w, s, strlen(s));
}

static int event_line(char *buf, size_t n, int type, int w, int i, int pad)
{
	return snprintf(buf, n, "{\"type\":\"ty%02d\",\"w\":%d,\"i\":%d,\"pad\":\"%.*s\"}\n", type,
			w, i, pad, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
}

/* Read all of a task log or a view through the API. */
static char *read_all(struct evl_store *st, uint64_t uid, struct evl_view *v, size_t *len)
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

static char *read_view(struct evl_store *st, const char *prefix, uint64_t uid, size_t *len)
{
	struct evl_view *v;
	uint64_t size;
	char *buf;

	if (evl_view_open(st, prefix, strlen(prefix), uid, &v)) {
		*len = 0;
		return NULL;
	}
	buf = read_all(st, 0, v, len);
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

static char *slurp(const char *path, size_t *len)
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
		log = slurp(path, &llen);
		snprintf(path, sizeof(path), "%s/tasks/%s/events.meta", dir, de->d_name);
		meta = slurp(path, &mlen);
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

/* Every view the store offers equals the filter of the logs (store applied). */
static void check_views(struct evl_store *st, const char *dir)
{
	static const char *const prefixes[] = { "t", "ty", "ty0", "ty01", "ty1", "ty07", "ty2" };
	struct disk d;

	assert_int_equal(evl_store_checkpoint(st), 0);	/* applied and on disk */
	rescan(dir, &d);
	for (size_t p = 0; p < sizeof(prefixes) / sizeof(*prefixes); p++) {
		size_t elen, glen;
		char *exp = expect_view(&d, prefixes[p], NULL, &elen);
		char *got = read_view(st, prefixes[p], 0, &glen);

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
		uint64_t uid = task_uid(st, d.ev[i].task);
		size_t elen, glen;
		char *exp = expect_view(&d, "ty", d.ev[i].task, &elen);
		char *got = read_view(st, "ty", uid, &glen);

		assert_int_equal(glen, elen);
		assert_memory_equal(got, exp, elen);
		free(exp);
		free(got);
	}
	disk_free(&d);
}

/* ---- fixtures ---- */

/* ---- basic behaviour ---- */

static void round_trip(void **state)
{
	const char *dir = *state;
	struct evl_store *st = open_store(dir, false, 2);
	struct evl_writer *w;
	struct evl_task_info info;
	uint64_t uid;
	size_t len;
	char *got;
	const char *want =
		"{\"type\":\"tool.call\",\"n\":1}\n"
		"{\"type\":\"tool.result\",\"n\":2}\n"
		"{\"type\":\"note\",\"text\":\"split\"}\n"
		"{\"type\":\"note\",\"n\":4}\n";

	uid = create(st, "t42");
	assert_int_equal(evl_task_create(st, "t42"), -EEXIST);
	assert_int_equal(evl_task_create(st, ".hidden"), -EINVAL);
	assert_int_equal(evl_task_create(st, "a/b"), -EINVAL);
	assert_int_equal(evl_writer_open(st, uid, &w), 0);
	assert_int_equal(write_str(w, "{\"type\":\"tool.call\",\"n\":1}\n{\"type\":\"tool.result\",\"n\":2}\n"), 0);
	assert_int_equal(write_str(w, "   \n"), 0);			/* blank: skipped */
	assert_int_equal(write_str(w, "{\"type\":\"note\",\"te"), 0);	/* split */
	assert_int_equal(write_str(w, "xt\":\"split\"}\n{\"type\":\"note\",\"n\":4}"), 0);
	assert_int_equal(evl_writer_close(w), 0);	/* the last line gets its newline */

	got = read_all(st, uid, NULL, &len);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(got, want, len);
	free(got);
	assert_int_equal(evl_task_stat(st, uid, &info), 0);
	assert_int_equal(info.size, strlen(want));
	assert_int_equal(info.events, 4);
	assert_string_equal(info.name, "t42");

	got = read_view(st, "tool.", 0, &len);
	assert_int_equal(len, 56);
	assert_memory_equal(got, want, 56);
	free(got);
	got = read_view(st, "note", uid, &len);
	assert_int_equal(len, strlen(want) - 56);
	free(got);
	assert_false(evl_prefix_exists(st, "nope", 4));
	{
		struct evl_view *v;

		assert_int_equal(evl_view_open(st, "nope", 4, 0, &v), -ENOENT);
		assert_int_equal(evl_view_open(st, "a/b", 3, 0, &v), -EINVAL);
	}
	assert_int_equal(evl_store_close(st), 0);

	/* remount: the same bytes */
	st = open_store(dir, false, 2);
	got = read_all(st, task_uid(st, "t42"), NULL, &len);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(got, want, len);
	free(got);
	check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
}

static void bad_writes_store_nothing(void **state)
{
	const char *dir = *state;
	struct evl_store *st = open_store(dir, false, 2);
	struct evl_writer *w;
	struct evl_stats s;
	uint64_t uid = create(st, "t1");
	char big[300];
	size_t len;
	char *got;

	assert_int_equal(evl_writer_open(st, uid, &w), 0);
	assert_int_equal(write_str(w, "{\"type\":\"a\"}\n"), 0);
	assert_int_equal(write_str(w, "{\"type\":\"b\"}\nnot json\n{\"type\":\"c\"}\n"), -EINVAL);
	assert_int_equal(write_str(w, "{\"type\":\"a\"}\n{\"type\":\"x/y\"}\n"), -EINVAL);
	evl_store_stats(st, &s);
	assert_int_equal(s.rejected_invalid, 2);
	assert_non_null(strstr(s.last_rejection, "task t1 line 2"));
	assert_int_equal(write_str(w, "{\"type\":\"d\"}\n{\"type\":\"partial"), 0);
	assert_int_equal(evl_writer_close(w), -EINVAL);	/* invalid at close */

	got = read_all(st, uid, NULL, &len);
	assert_int_equal(len, 26);
	assert_memory_equal(got, "{\"type\":\"a\"}\n{\"type\":\"d\"}\n", 26);
	free(got);
	evl_writer_open(st, uid, &w);
	memset(big, ' ', sizeof(big));
	memcpy(big, "{\"type\":\"a\"}", 12);
	big[sizeof(big) - 1] = '\n';
	{
		struct evl_options o;
		struct evl_store *small;

		/* a store with max_event=256 refuses the 300-byte line */
		assert_int_equal(evl_writer_close(w), 0);
		assert_int_equal(evl_store_close(st), 0);
		evl_options_default(&o);
		o.max_event = 256;
		assert_int_equal(evl_store_open(dir, &o, &small), 0);
		assert_int_equal(evl_writer_open(small, uid, &w), 0);
		assert_int_equal(evl_writer_write(w, big, sizeof(big)), -EFBIG);
		/* 256 bytes without a newline can never fit: the line is dropped, */
		assert_int_equal(evl_writer_write(w, big, 256), -EFBIG);
		/* and so is the rest of it, up to its newline */
		assert_int_equal(evl_writer_write(w, "  ", 2), -EFBIG);
		assert_int_equal(evl_writer_write(w, " \n", 2), -EFBIG);
		assert_int_equal(evl_writer_write(w, big, 255), 0);	/* held: fits */
		assert_int_equal(evl_writer_write(w, "x\n", 2), -EFBIG);
		evl_store_stats(small, &s);
		assert_int_equal(s.rejected_too_big, 3);	/* the discarded tail is not counted again */
		assert_int_equal(evl_writer_close(w), 0);	/* the held line is stored */
		assert_int_equal(evl_store_close(small), 0);
	}
	/* another type_field on the same store is refused */
	{
		struct evl_options o;
		struct evl_store *other;

		evl_options_default(&o);
		o.type_field = "event_type";
		assert_int_equal(evl_store_open(dir, &o, &other), -EINVAL);
	}
}

static void read_your_writes_before_apply(void **state)
{
	const char *dir = *state;
	/* group commit every 2 s: the applier waits, events stay pending */
	struct evl_store *st = open_store(dir, false, 2000);
	struct evl_writer *w;
	struct evl_task_info info;
	struct evl_stats s;
	uint64_t uid = create(st, "p");
	char line[200];
	size_t len, total = 0;
	char *got;

	assert_int_equal(evl_writer_open(st, uid, &w), 0);
	for (int i = 0; i < 50; i++) {
		int n = event_line(line, sizeof(line), i % 3, 0, i, i);

		assert_int_equal(evl_writer_write(w, line, n), 0);
		total += n;
	}
	evl_store_stats(st, &s);
	assert_true(s.pending_events > 0);	/* not applied yet... */
	assert_int_equal(evl_task_stat(st, uid, &info), 0);
	assert_int_equal(info.size, total);	/* ...but visible */
	got = read_all(st, uid, NULL, &len);
	assert_int_equal(len, total);
	free(got);
	assert_true(evl_prefix_exists(st, "ty02", 4));
	got = read_view(st, "ty0", 0, &len);
	assert_int_equal(len, total);
	free(got);
	assert_int_equal(evl_writer_close(w), 0);
	check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
}

/* ---- concurrency ---- */

struct writer_arg {
	struct evl_store *st;
	uint64_t uid;
	int id, n;
	int split;	/* write lines in pieces */
};

static void *writer_main(void *arg)
{
	struct writer_arg *a = arg;
	struct evl_writer *w;
	char line[200];

	if (evl_writer_open(a->st, a->uid, &w))
		return (void *)1;
	for (int i = 0; i < a->n; i++) {
		int n = event_line(line, sizeof(line), (a->id + i) % 11, a->id, i, i % 50);

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

/* Parse a task log: every line whole, each writer's events in order. */
static void check_task_order(const char *log, size_t len, int *per_writer, int nwriters)
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

static void concurrent_writers(void **state)
{
	const char *dir = *state;
	struct evl_store *st = open_store(dir, false, 2);
	uint64_t shared = create(st, "shared");
	struct writer_arg a[8];
	pthread_t th[8];
	int counts[8];
	size_t len;
	char *log;

	for (int i = 0; i < 8; i++) {
		char name[16];

		snprintf(name, sizeof(name), "own%d", i);
		a[i] = (struct writer_arg){ st, i < 4 ? shared : create(st, name), i, 400, i % 2 };
		pthread_create(&th[i], NULL, writer_main, &a[i]);
	}
	for (int i = 0; i < 8; i++) {
		void *r;

		pthread_join(th[i], &r);
		assert_null(r);
	}
	log = read_all(st, shared, NULL, &len);
	check_task_order(log, len, counts, 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(counts[i], 400);
	free(log);
	check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
}

/* ---- deletion ---- */

static void delete_leaves_views_at_once(void **state)
{
	const char *dir = *state;
	struct evl_store *st = open_store(dir, false, 2);
	struct writer_arg a[3];
	uint64_t uids[3];
	char trash[4400];
	struct stat sb;
	uint64_t deadline;

	uids[0] = create(st, "a");
	uids[1] = create(st, "b");
	uids[2] = create(st, "c");
	for (int i = 0; i < 3; i++) {
		a[i] = (struct writer_arg){ st, uids[i], i, 3000, 0 };
		assert_null(writer_main(&a[i]));
	}
	check_views(st, dir);
	assert_int_equal(evl_task_delete(st, "b"), 0);
	assert_int_equal(evl_task_delete(st, "b"), -ENOENT);
	assert_int_equal(task_uid(st, "b"), 0);
	/* views drop b at once, whether or not its entries are purged yet */
	check_views(st, dir);
	/* a new task of the same name starts empty */
	uids[1] = create(st, "b");
	{
		struct evl_task_info info;

		assert_int_equal(evl_task_stat(st, uids[1], &info), 0);
		assert_int_equal(info.size, 0);
	}
	a[1] = (struct writer_arg){ st, uids[1], 1, 10, 0 };
	assert_null(writer_main(&a[1]));
	check_views(st, dir);
	/* the purge finishes in the background and removes the files */
	snprintf(trash, sizeof(trash), "%s/tasks/.trash-%016llx", dir, 2ull);
	deadline = tu_now_ms() + 20000;
	while (stat(trash, &sb) == 0 && tu_now_ms() < deadline)
		usleep(2000);
	assert_int_not_equal(stat(trash, &sb), 0);
	check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
	st = open_store(dir, false, 2);
	check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
}

/* ---- crashes ---- */

/*
 * The child's workload: 4 writers on 3 tasks, one of them checkpointing
 * now and then; every acknowledged event is reported on @ack_fd as "w i".
 */
struct crash_arg {
	struct evl_store *st;
	uint64_t uid;
	int id, ack_fd;
	long freeze_after;	/* power loss after this many acks (0: never) */
	const char *dump;
};

static long acks_total;
static pthread_mutex_t acks_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int acked_now[4];		/* per writer, in the child */

/*
 * Group commit: acknowledged is not durable.  Make what was acknowledged
 * before now durable (@sync: a barrier, else a checkpoint) and tell the
 * parent with "D a0 a1 a2 a3".  Returns 0 or exits.
 */
static void durable_mark(struct crash_arg *a, bool barrier)
{
	int snap[4], k;
	char msg[80];

	for (int w = 0; w < 4; w++)
		snap[w] = atomic_load(&acked_now[w]);
	if (barrier ? evl_store_sync(a->st) : evl_store_checkpoint(a->st))
		_exit(6);
	k = snprintf(msg, sizeof(msg), "D %d %d %d %d\n", snap[0], snap[1], snap[2], snap[3]);
	if (write(a->ack_fd, msg, k) != k)
		_exit(5);
}

static void *crash_writer(void *arg)
{
	struct crash_arg *a = arg;
	struct evl_writer *w;
	char line[200], ack[32];

	if (evl_writer_open(a->st, a->uid, &w))
		_exit(3);
	for (int i = 0;; i++) {
		int n = event_line(line, sizeof(line), (a->id * 3 + i) % 11, a->id, i, i % 60);
		int k;

		if (evl_writer_write(w, line, n))
			_exit(4);
		k = snprintf(ack, sizeof(ack), "%d %d\n", a->id, i);
		if (write(a->ack_fd, ack, k) != k)
			_exit(5);
		atomic_store(&acked_now[a->id], i + 1);
		if (a->id == 0 && i % 300 == 299)
			durable_mark(a, false);
		else if (a->id == 1 && i % 37 == 36)
			durable_mark(a, true);
		if (a->freeze_after) {
			bool done;

			pthread_mutex_lock(&acks_lock);
			if (++acks_total == a->freeze_after)
				fio_freeze_and_dump(a->dump);	/* all I/O stops here */
			done = acks_total >= a->freeze_after;
			pthread_mutex_unlock(&acks_lock);
			if (done)
				_exit(0);
		}
	}
	return NULL;
}

/* What the churn thread reports (read_acks), and what the checks expect. */
struct churn {
	int created;	/* d0 .. d<created - 1> were created */
	int filled;	/* d0 .. d<filled - 1> got their CHURN_EVENTS, made durable */
	int deleted;	/* d0 .. d<deleted - 1> were deleted */
	int kept;	/* events of r made durable */
};
#define CHURN_EVENTS 3
#define CHURN_KEEP 5	/* r's retention: keep-last */
static struct churn churn;

/* Tell the parent "@tag @n" (a churn step that is durable now). */
static void churn_say(int fd, char tag, int n)
{
	if (dprintf(fd, "%c %d\n", tag, n) < 0)
		_exit(5);
}

/*
 * The churn thread: tasks d<k> are created, get a few events and are
 * deleted again (directory entries made and removed, unlinks of the
 * trash), and task r grows and has its head dropped now and then (log
 * rewrites renamed into place).  Every step it reports is durable: its
 * events are followed by a barrier, creates and deletes are durable on
 * return.
 */
static void *churn_main(void *arg)
{
	struct crash_arg *a = arg;
	struct evl_writer *rw;
	uint64_t ev, by;
	int ri = 0;

	if (evl_writer_open(a->st, task_uid(a->st, "r"), &rw))
		_exit(3);
	for (int k = 0;; k++) {
		char name[32], line[200];
		struct evl_writer *w;

		snprintf(name, sizeof(name), "d%d", k);
		if (evl_task_create(a->st, name))
			_exit(7);
		churn_say(a->ack_fd, 'C', k + 1);
		if (evl_writer_open(a->st, task_uid(a->st, name), &w))
			_exit(3);
		for (int i = 0; i < CHURN_EVENTS; i++) {
			int n = event_line(line, sizeof(line), i, 4, i, i * 7);

			if (evl_writer_write(w, line, n))
				_exit(4);
		}
		evl_writer_close(w);
		for (int i = 0; i < 2; i++, ri++) {
			int n = event_line(line, sizeof(line), ri % 3, 5, ri, ri % 50);

			if (evl_writer_write(rw, line, n))
				_exit(4);
		}
		if (evl_store_sync(a->st))
			_exit(6);
		churn_say(a->ack_fd, 'E', k + 1);
		churn_say(a->ack_fd, 'R', ri);
		if (k > 0) {
			snprintf(name, sizeof(name), "d%d", k - 1);
			if (evl_task_delete(a->st, name))
				_exit(7);
			churn_say(a->ack_fd, 'X', k);
		}
		/* the retention of a compaction, on this thread (no compactor to join at the cut) */
		if (k % 4 == 3 && store_retain(a->st, task_uid(a->st, "r"), CHURN_KEEP, 0, &ev, &by))
			_exit(8);
	}
	return NULL;
}

static void child_run(const char *dir, int ack_fd, bool sync, long freeze_after, const char *dump)
{
	static const char *const names[] = { "x", "y", "z", "r" };
	struct evl_options o;
	struct evl_store *st;
	struct crash_arg a[5];
	pthread_t th[5];

	if (freeze_after) {
		char stash[4400];

		fio_install();
		snprintf(stash, sizeof(stash), "%s.stash", dir);
		fio_track_dirs(stash);
	}
	evl_options_default(&o);
	o.commit_sync = sync;
	o.commit_ms = 3;
	o.segment_bytes = 32 << 10;
	if (evl_store_open(dir, &o, &st))
		_exit(2);
	for (int i = 0; i < 4; i++)
		if (evl_task_create(st, names[i]) && evl_task_create(st, names[i]) != -EEXIST)
			_exit(2);
	for (int i = 0; i < 4; i++) {
		struct evl_task_info info;

		evl_task_lookup(st, names[i % 3], &info);
		a[i] = (struct crash_arg){ st, info.uid, i, ack_fd, freeze_after, dump };
		pthread_create(&th[i], NULL, crash_writer, &a[i]);
	}
	if (freeze_after) {	/* power loss: directory changes too (kill -9 has torture.py) */
		a[4] = (struct crash_arg){ st, 0, 4, ack_fd, freeze_after, dump };
		pthread_create(&th[4], NULL, churn_main, &a[4]);
	}
	for (;;)
		pause();
}

/*
 * Task @name's events, all of writer @w, numbered from *@first (-1: none)
 * up without a gap; returns how many.  Fails on anything else.
 */
static int task_run(struct evl_store *st, uint64_t uid, int w, int *first, const char *what,
		    long n)
{
	size_t len;
	char *log = read_all(st, uid, NULL, &len), *p, *end;
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

/* The churn thread's steps that were durable are there (see churn_main). */
static void verify_churn(struct evl_store *st, const char *what, long n)
{
	uint64_t uid;
	int first, got;

	for (int k = 0; k <= churn.created; k++) {
		char name[32];

		snprintf(name, sizeof(name), "d%d", k);
		uid = task_uid(st, name);
		if (k < churn.deleted && uid)
			fail_msg("%s %ld: task %s was deleted, and is back", what, n, name);
		/* d<deleted> may be gone: its delete may have been journaled, not acknowledged */
		if (k > churn.deleted && k < churn.created && !uid)
			fail_msg("%s %ld: task %s was created, and is gone", what, n, name);
		if (!uid)
			continue;
		got = task_run(st, uid, 4, &first, what, n);
		if ((got && first != 0) || (k < churn.filled && got != CHURN_EVENTS))
			fail_msg("%s %ld: task %s: %d events from %d", what, n, name, got, first);
	}
	uid = task_uid(st, "r");
	if (!uid)
		return;	/* a kill -9 before the workload made it */
	/* retention drops a head only, and never below the newest CHURN_KEEP */
	got = task_run(st, uid, 5, &first, what, n);
	if ((got ? first + got : 0) < churn.kept || (first > 0 && got < CHURN_KEEP))
		fail_msg("%s %ld: task r: events %d to %d, %d were durable", what, n, first,
			 first + got - 1, churn.kept);
}

/* After a reopen, nothing of a deleted task or an unfinished rewrite is left. */
static void check_no_leftovers(const char *dir, const char *what, long n)
{
	char path[4400];
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "%s/tasks", dir);
	assert_non_null(d = opendir(path));
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, ".trash-", 7))
			fail_msg("%s %ld: tasks/%s left behind", what, n, de->d_name);
	closedir(d);
	snprintf(path, sizeof(path), "%s/tasks/.rewrite", dir);
	if ((d = opendir(path))) {
		while ((de = readdir(d)))
			if (de->d_name[0] != '.')
				fail_msg("%s %ld: tasks/.rewrite/%s left behind", what, n,
					 de->d_name);
		closedir(d);
	}
}

/*
 * Every acknowledged event present exactly once; nothing else, nothing torn.
 * The churn's durable steps too, and no leftovers.  @what and @n name the
 * run in a failure ("kill -9, cycle" 3).
 */
static void verify_acked(const char *dir, int acked[4], const char *what, long n)
{
	static const char *const names[] = { "x", "y", "z" };
	struct evl_store *st = open_store(dir, false, 2);
	int found[4] = { 0 }, dup = 0;

	for (int t = 0; t < 3; t++) {
		uint64_t uid = task_uid(st, names[t]);
		size_t len;
		char *log, *p, *end;
		int next[4] = { 0 };

		if (!uid)
			continue;	/* created by a child that died before the ack */
		log = read_all(st, uid, NULL, &len);
		for (p = log, end = log + len; p < end;) {
			char *nl = memchr(p, '\n', end - p);
			int ty, w, i;

			assert_non_null(nl);
			assert_int_equal(sscanf(p, "{\"type\":\"ty%d\",\"w\":%d,\"i\":%d", &ty, &w, &i), 3);
			assert_true(w >= 0 && w < 4 && w % 3 == t);
			if (i != next[w])
				dup++;
			next[w] = i + 1;
			found[w]++;
			p = nl + 1;
		}
		free(log);
	}
	if (dup)	/* in order, no duplicate, no gap */
		fail_msg("%s %ld: %d events out of order, duplicated or after a gap", what, n,
			 dup);
	for (int w = 0; w < 4; w++)
		if (found[w] < acked[w])
			fail_msg("%s %ld: writer %d: %d events acknowledged, %d present", what, n,
				 w, acked[w], found[w]);
	verify_churn(st, what, n);
	check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
	check_no_leftovers(dir, what, n);
}

/* Durable marks seen by read_acks: durable[w] = events of writer w made durable. */
static int durable[4];

/* Read acks from @fd until EOF; acked[w] = highest i + 1. */
static void read_acks(int fd, int acked[4], long stop_after, pid_t kill_pid)
{
	char buf[4096], carry[128] = "";
	long seen = 0;
	ssize_t n;

	memset(&churn, 0, sizeof(churn));
	while ((n = read(fd, buf, sizeof(buf) - 1)) > 0) {
		char *p;

		buf[n] = '\0';
		for (p = buf; *p;) {
			char *nl = strchr(p, '\n');
			char line[192];
			int w, i;

			if (!nl) {
				snprintf(carry, sizeof(carry), "%.60s", p);
				break;
			}
			*nl = '\0';
			snprintf(line, sizeof(line), "%.60s%.60s", carry, p);
			carry[0] = '\0';
			if (line[0] == 'D') {
				int d[4];

				if (sscanf(line, "D %d %d %d %d", &d[0], &d[1], &d[2], &d[3]) == 4)
					for (int k = 0; k < 4; k++)
						durable[k] = d[k] > durable[k] ? d[k] : durable[k];
			} else if (line[0] && strchr("CERX", line[0]) && sscanf(line + 1, "%d", &i) == 1) {
				int *c = line[0] == 'C' ? &churn.created : line[0] == 'E' ?
					 &churn.filled : line[0] == 'R' ? &churn.kept : &churn.deleted;

				*c = i > *c ? i : *c;
			} else if (sscanf(line, "%d %d", &w, &i) == 2 && w >= 0 && w < 4 &&
				   i + 1 > acked[w]) {
				acked[w] = i + 1;
			}
			p = nl + 1;
			if (kill_pid && ++seen == stop_after)
				kill(kill_pid, SIGKILL);
		}
	}
}

static int iterations(const char *var, int dflt)
{
	const char *s = getenv(var);

	return s && atoi(s) > 0 ? atoi(s) : dflt;
}

static void kill9_loses_nothing_acknowledged(void **state)
{
	const char *dir = *state;
	int cycles = iterations("EVL_CRASH_CYCLES", 6);
	unsigned seed = 1234;
	int acked[4] = { 0 };

	for (int c = 0; c < cycles; c++) {
		int fds[2], status;
		pid_t pid;

		assert_int_equal(pipe(fds), 0);
		pid = fork();
		if (pid == 0) {
			close(fds[0]);
			child_run(dir, fds[1], false, 0, NULL);
		}
		close(fds[1]);
		read_acks(fds[0], acked, 200 + rand_r(&seed) % 1500, pid);
		close(fds[0]);
		waitpid(pid, &status, 0);
		assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
		verify_acked(dir, acked, "kill -9, cycle", c);
		/* writers start over at i = 0 in the next cycle's log: reset */
		tu_rmrf(dir);
		mkdir(dir, 0700);
		memset(acked, 0, sizeof(acked));
	}
}

/* Make @work a fresh copy of store @pristine (each crash or fault run starts from one). */
static void copy_store(const char *pristine, const char *work)
{
	char cmd[3 * 4200 + 64];	/* three paths of up to 4200 */

	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && cp -a '%s' '%s'", work, pristine, work);
	assert_int_equal(system(cmd), 0);
}

/* Copy store @dir and the synced lengths in @dump to @keep/@name, for a look after a failure. */
static void keep_copy(const char *keep, const char *dir, const char *dump, const char *name)
{
	char to[4200], cmd[2 * 4200 + 64];

	snprintf(to, sizeof(to), "%s/%s", keep, name);
	mkdir(keep, 0700);
	copy_store(dir, to);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s.dump'", dump, to);
	assert_int_equal(system(cmd), 0);
}

/* Power cuts that undid the index's last commit (fio_undo_index_commit). */
static long index_undone;

/*
 * Run the crash workload on store @dir (@sync: commit=sync) until @after
 * acknowledgements, then lose power: every file keeps what was fsynced and
 * a random part of the rest (@seed), and half the time the index loses its
 * last commit if it was not synced; @how says what else the cut may do
 * (fio_apply_powerloss: holes in unsynced tails, directory changes
 * undone).  @acked gets the acknowledged counts, durable[] what was made
 * durable, *@loss what the cut did (added).  With @keep, the store is
 * copied there before and after the cut (keep_copy).
 */
static void power_cut(const char *dir, bool sync, long after, unsigned seed, unsigned how,
		      const char *keep, int acked[4], struct fio_loss *loss)
{
	char dump[4400], stash[4400];
	int fds[2], status;
	pid_t pid;

	snprintf(dump, sizeof(dump), "%s.dump", dir);
	snprintf(stash, sizeof(stash), "%s.stash", dir);
	memset(durable, 0, sizeof(durable));
	memset(acked, 0, 4 * sizeof(*acked));
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	if (pid == 0) {
		close(fds[0]);
		child_run(dir, fds[1], sync, after, dump);
	}
	close(fds[1]);
	read_acks(fds[0], acked, 0, 0);
	close(fds[0]);
	waitpid(pid, &status, 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	if (keep)
		keep_copy(keep, dir, dump, "before");
	assert_int_equal(fio_apply_powerloss(dump, seed, how, loss), 0);
	if (rand_r(&seed) % 2) {
		char mdb[4400];
		int rc;

		snprintf(mdb, sizeof(mdb), "%s/index/data.mdb", dir);
		rc = fio_undo_index_commit(dump, mdb);
		assert_true(rc >= 0);	/* else the seam no longer knows LMDB's meta pages */
		index_undone += rc;
	}
	if (keep)
		keep_copy(keep, dir, dump, "after");
	unlink(dump);
	tu_rmrf(stash);
}

/*
 * Power loss at a random moment: every file loses a random part of what
 * was not fsynced (a torn tail).  With commit=sync everything acknowledged
 * survives; with group commit (every other cycle) what a barrier or a
 * checkpoint made durable does.  Nothing torn or duplicated is visible.
 * EVL_POWERLOSS_CYCLES=N for the long run, EVL_POWERLOSS_SEED=S to vary;
 * EVL_POWERLOSS_KEEP=DIR keeps the last cycle's store before and after the
 * cut: DIR/before and DIR/after, each with the synced lengths in a .dump.
 */
static void power_loss_keeps_what_was_durable(void **state)
{
	const char *dir = *state;
	int cycles = iterations("EVL_POWERLOSS_CYCLES", 12);
	unsigned seed = iterations("EVL_POWERLOSS_SEED", 99);
	const char *keep = getenv("EVL_POWERLOSS_KEEP");
	struct fio_loss loss = { 0 };

	for (int c = 0; c < cycles; c++) {
		int acked[4];
		long after = 100 + rand_r(&seed) % 1200, undone = index_undone;
		bool sync = c % 2 == 0;
		/* a torn tail or pages in any order; directory entries kept or not */
		unsigned how = (c / 2) % 4;

		power_cut(dir, sync, after, seed + c, how, keep, acked, &loss);
		if (getenv("EVL_POWERLOSS_VERBOSE"))
			print_message("power loss: cycle %d, commit=%s, %s%s, after %ld acks, durable "
				      "%d %d %d %d, acked %d %d %d %d, churn %d/%d/%d/%d%s\n", c,
				      sync ? "sync" : "group",
				      how & FIO_LOSS_HOLES ? "holes" : "torn tails",
				      how & FIO_LOSS_DIRS ? ", entries lost" : "", after, durable[0],
				      durable[1], durable[2], durable[3], acked[0], acked[1],
				      acked[2], acked[3], churn.created, churn.filled, churn.deleted,
				      churn.kept, index_undone > undone ? ", index commit undone" : "");
		verify_acked(dir, sync ? acked : durable, sync ? "power loss, commit=sync, cycle" :
			     "power loss, group commit, cycle", c);
		tu_rmrf(dir);
		mkdir(dir, 0700);
	}
	print_message("power loss: %d cycles (half commit=sync, half group with barriers), "
		      "%ld files cut short, %ld unsynced pages zeroed, %ld directory changes "
		      "undone, %ld index commits undone\n", cycles, loss.files_cut,
		      loss.pages_holed, loss.dir_undone, index_undone);
}

/* ---- injected faults ---- */

/* Write event i of writer 0 to @w and report it on @fd when acknowledged.  Returns the write's result. */
static int sticky_write(struct evl_writer *w, int i, int fd)
{
	char line[200];
	int n = event_line(line, sizeof(line), i % 5, 0, i, i % 70), rc;

	rc = evl_writer_write(w, line, n);
	if (rc == 0 && dprintf(fd, "0 %d\n", i) < 0)
		_exit(5);
	return rc;
}

/*
 * The child of failed_fsync_keeps_the_journal: task x gets 120 events
 * and a checkpoint, then 150 more; the next fsync of a path ending in
 * @fail fails (at the checkpoint, or at task n's creation).  From then on
 * writes must get EIO and no checkpoint may succeed.  Then the power goes.
 * Exit codes: 0 as expected, 10 + step where it was not.
 */
static void sticky_child(const char *dir, const char *fail, int fd, const char *dump)
{
	struct evl_options o;
	struct evl_store *st;
	struct evl_writer *w;
	struct evl_stats s0, s1;
	char stash[4400];
	int i = 0, rc;

	fio_install();
	snprintf(stash, sizeof(stash), "%s.stash", dir);
	fio_track_dirs(stash);
	evl_options_default(&o);
	o.commit_sync = true;
	o.segment_bytes = 8 << 10;	/* the checkpoint's trim would drop segments */
	if (evl_store_open(dir, &o, &st) || evl_task_create(st, "x") ||
	    evl_writer_open(st, task_uid(st, "x"), &w))
		_exit(2);
	for (; i < 120; i++)
		if (sticky_write(w, i, fd))
			_exit(3);
	if (evl_store_checkpoint(st))
		_exit(4);
	for (; i < 270; i++)
		if (sticky_write(w, i, fd))
			_exit(3);
	evl_store_stats(st, &s0);
	fio_fail_path(FIO_SYNC, fail, EIO);
	if (!strcmp(fail, "/tasks/n"))
		rc = evl_task_create(st, "n") == 0 ? evl_store_checkpoint(st) : -EIO;
	else
		rc = evl_store_checkpoint(st);
	if (rc != -EIO)
		_exit(10);
	/* refused until remounted, however healthy the disk looks now */
	if (sticky_write(w, i++, fd) != -EIO)
		_exit(11);
	if (evl_store_checkpoint(st) != -EIO)
		_exit(12);
	evl_store_stats(st, &s1);
	if (!s1.error || s1.ckpt_lsn != s0.ckpt_lsn)
		_exit(13);
	fio_freeze_and_dump(dump);
	_exit(0);
}

/*
 * A5: an fsync that fails in a checkpoint (task log, sidecar, index) or
 * when a task is created is sticky.  The kernel may have dropped the pages
 * it could not write and marked them clean, so a later fsync would succeed
 * without writing them: the store must refuse writes, never trim the
 * journal or record a checkpoint again, and the next open must rewrite the
 * task files past their checkpoint from the journal rather than trust
 * them.  The seam zeroes the dropped bytes at the power cut.
 */
static void failed_fsync_keeps_the_journal(void **state)
{
	static const char *const fails[] = {
		"/tasks/x/events", "/tasks/x/events.meta", "/index/data.mdb", "/tasks/n",
	};
	const char *dir = *state;
	struct fio_loss loss = { 0 };
	char dump[4400], stash[4400];

	snprintf(dump, sizeof(dump), "%s.dump", dir);
	snprintf(stash, sizeof(stash), "%s.stash", dir);
	for (size_t k = 0; k < sizeof(fails) / sizeof(*fails); k++) {
		int fds[2], status, acked[4] = { 0 };
		long dropped = loss.dropped;
		pid_t pid;

		assert_int_equal(pipe(fds), 0);
		pid = fork();
		if (pid == 0) {
			close(fds[0]);
			sticky_child(dir, fails[k], fds[1], dump);
		}
		close(fds[1]);
		read_acks(fds[0], acked, 0, 0);
		close(fds[0]);
		waitpid(pid, &status, 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			fail_msg("fsync of %s failing: the child ended with status %d", fails[k],
				 status);
		assert_int_equal(acked[0], 270);
		assert_int_equal(fio_apply_powerloss(dump, 7 + k, 0, &loss), 0);
		if (k < 2)	/* task files: the pages the checkpoint wrote were dropped */
			assert_true(loss.dropped > dropped);
		verify_acked(dir, acked, fails[k], 0);
		unlink(dump);
		tu_rmrf(stash);
		tu_rmrf(dir);
		mkdir(dir, 0700);
	}
}

/* ---- faults at every I/O call ---- */

static void wait_compaction(struct evl_store *st, struct evl_compact_status *cs);

#define FAULT_PRISTINE 100	/* events of writer 0 in task f before each run */
#define FAULT_KEEP 110		/* the run's retention: drops 20 of them, none of its own */

static bool fault_ok(int rc, int err)
{
	return rc == 0 || rc == -err || rc == -EIO;
}

/* Write event i of writer 1 to @w; note it in @acked if acknowledged.  Checks the errno. */
static int fault_write(struct evl_writer *w, int i, int err, bool *acked)
{
	char line[200];
	int n = event_line(line, sizeof(line), i % 3, 1, i, i % 40);
	int rc = evl_writer_write(w, line, n);

	if (!fault_ok(rc, err))
		fail_msg("write %d: %d (%s)", i, rc, strerror(-rc));
	if (rc == 0 && acked)
		acked[i] = true;
	return rc;
}

/*
 * One run on a fresh copy of @pristine: call @nth (from the first after
 * open; -1: none) of @op fails with @err while the store creates, writes,
 * reads, checkpoints, deletes, compacts with retention and syncs.  Then,
 * with the fault gone and without reopening: writes, a compaction and a
 * checkpoint succeed, unless the store holds a sticky error (a failed
 * fsync or journal cut), in which case writes get EIO.  Reopened: every
 * acknowledged event is there once and in order, nothing partial, nothing
 * the retention did not drop is missing, a deleted task stays deleted, and
 * views equal the logs.  Returns the calls of @op the run made.
 */
static long fault_run(const char *pristine, const char *work, enum fio_op op, long nth, int err)
{
	struct evl_compact_args keep = { .keep_last = FAULT_KEEP };
	struct evl_compact_status cs;
	struct evl_writer *w;
	struct evl_store *st;
	struct evl_stats stats;
	bool acked[64] = { false }, g_deleted = false;
	char buf[8192];
	enum fio_op count_op;
	long base, calls;
	int rc;

	copy_store(pristine, work);
	fio_install();
	st = open_store(work, false, 2);
	/* a truncate runs only to cut a failed write back: fail the write, then the cut */
	count_op = op == FIO_TRUNC ? FIO_WRITE : op;
	base = fio_count(count_op);
	if (nth >= 0 && op == FIO_TRUNC) {
		fio_fail(FIO_WRITE, nth, err, false);
		fio_fail(FIO_TRUNC, 0, err, false);
	} else if (nth >= 0) {
		fio_fail(op, nth, err, false);
	}

	rc = evl_task_create(st, "g");
	assert_true(fault_ok(rc, err));
	assert_int_equal(evl_writer_open(st, task_uid(st, "f"), &w), 0);
	for (int i = 0; i < 30; i++)
		fault_write(w, i, err, acked);
	for (uint64_t off = 0;; off += rc) {
		rc = evl_task_read(st, task_uid(st, "f"), off, buf, sizeof(buf));
		assert_true(rc >= 0 || rc == -err || rc == -EIO);
		if (rc <= 0)
			break;
	}
	assert_true(fault_ok(evl_store_checkpoint(st), err));
	if (task_uid(st, "g")) {
		struct evl_writer *wg;

		assert_int_equal(evl_writer_open(st, task_uid(st, "g"), &wg), 0);
		for (int i = 0; i < 10; i++)
			fault_write(wg, i, err, NULL);
		evl_writer_close(wg);
		rc = evl_task_delete(st, "g");
		assert_true(fault_ok(rc, err));
		g_deleted = rc == 0;
	}
	assert_int_equal(evl_compact_start(st, &keep), 0);
	wait_compaction(st, &cs);
	assert_true(fault_ok(cs.last_rc, err));
	for (int i = 30; i < 50; i++)
		fault_write(w, i, err, acked);
	assert_true(fault_ok(evl_store_sync(st), err));
	calls = fio_count(count_op) - base;
	fio_clear();

	evl_store_stats(st, &stats);
	if (stats.error) {
		/* refused until reopened */
		assert_int_equal(fault_write(w, 50, err, acked), -EIO);
	} else {
		/* resumed by itself: no remount */
		for (int i = 50; i < 55; i++)
			assert_int_equal(fault_write(w, i, err, acked), 0);
		if (task_uid(st, "g")) {
			assert_int_equal(evl_task_delete(st, "g"), 0);
			g_deleted = true;
		}
		assert_int_equal(evl_compact_start(st, &keep), 0);
		wait_compaction(st, &cs);
		assert_int_equal(cs.last_rc, 0);
		assert_int_equal(evl_store_checkpoint(st), 0);
	}
	evl_writer_close(w);
	rc = evl_store_close(st);
	assert_true(rc == 0 || stats.error);
	fio_uninstall();

	st = open_store(work, false, 2);
	{
		size_t len;
		char *log = read_all(st, task_uid(st, "f"), NULL, &len);
		int next0 = -1, last1 = -1, n0 = 0, n1 = 0;

		for (char *l = log, *nl; l < log + len; l = nl + 1) {
			int wr, i;

			nl = memchr(l, '\n', log + len - l);
			assert_non_null(nl);
			assert_int_equal(sscanf(l, "{\"type\":\"ty%*d\",\"w\":%d,\"i\":%d", &wr, &i), 2);
			if (wr == 0) {
				if (next0 < 0)
					next0 = i;	/* retention drops a head only */
				assert_int_equal(i, next0);
				next0++;
				n0++;
				continue;
			}
			assert_int_equal(wr, 1);
			assert_true(i > last1 && i < 64);	/* in order, once */
			while (++last1 < i)
				assert_false(acked[last1]);	/* no acknowledged one missing */
			n1++;
		}
		while (++last1 < 64)
			assert_false(acked[last1]);
		/* the pristine events end where they did; retention kept the newest KEEP */
		assert_int_equal(next0, FAULT_PRISTINE);
		assert_true(n0 == FAULT_PRISTINE || n0 >= FAULT_KEEP - n1);
		free(log);
	}
	if (g_deleted)
		assert_int_equal(task_uid(st, "g"), 0);
	check_views(st, work);
	assert_int_equal(evl_store_close(st), 0);
	return calls;
}

/* A kind of fault: calls of @op fail with @err. */
struct fault_kind {
	enum fio_op op;
	int err;
	const char *name;
};

/*
 * Which calls a sweep fails: every one, or every third (ASan) or eighth
 * (TSan), the sanitizer builds being slower; EVL_FAULT_STRIDE=N sets it.
 */
static long fault_stride(void)
{
	long stride = 1;

#if defined(__SANITIZE_THREAD__)
	stride = 8;
#elif defined(__SANITIZE_ADDRESS__)
	stride = 3;
#endif
	return iterations("EVL_FAULT_STRIDE", stride);
}

/*
 * Every call of each kind the workload makes fails in turn (a census run
 * counts them first), with the errno a full or failing disk gives; a
 * truncate, which runs only to cut back a failed journal write, fails
 * after one.  The sanitizer builds take fewer (fault_stride).
 */
static void faults_at_every_site(void **state)
{
	static const struct fault_kind kinds[] = {
		{ FIO_WRITE, ENOSPC, "write ENOSPC" }, { FIO_WRITE, EIO, "write EIO" },
		{ FIO_SYNC, EIO, "fsync EIO" }, { FIO_TRUNC, EIO, "write+cut EIO" },
		{ FIO_OPEN, EMFILE, "open EMFILE" }, { FIO_OPEN, ENOSPC, "open ENOSPC" },
		{ FIO_RENAME, EIO, "rename EIO" }, { FIO_READ, EIO, "read EIO" },
		{ FIO_UNLINK, EIO, "unlink EIO" }, { FIO_MKDIR, ENOSPC, "mkdir ENOSPC" },
		{ FIO_RMDIR, EIO, "rmdir EIO" }, { FIO_ALLOC, ENOSPC, "fallocate ENOSPC" },
	};
	const char *dir = *state, *only = getenv("EVL_FAULT_KINDS");
	char pristine[4200], work[4200], shm[64] = "";
	struct evl_store *st;
	struct evl_writer *w;
	long runs = 0, stride = fault_stride();
	char line[200];

	/* on tmpfs when there is one: a run is a dozen fsyncs, and there are a thousand runs */
	if (access("/dev/shm", W_OK) == 0) {
		snprintf(shm, sizeof(shm), "/dev/shm/evl-faults-XXXXXX");
		assert_non_null(mkdtemp(shm));
		dir = shm;
	}
	snprintf(pristine, sizeof(pristine), "%s/pristine", dir);
	snprintf(work, sizeof(work), "%s/work", dir);
	st = open_store(pristine, false, 2);
	assert_int_equal(evl_writer_open(st, create(st, "f"), &w), 0);
	for (int i = 0; i < FAULT_PRISTINE; i++) {
		int n = event_line(line, sizeof(line), i % 3, 0, i, i % 40);

		assert_int_equal(evl_writer_write(w, line, n), 0);
	}
	evl_writer_close(w);
	assert_int_equal(evl_store_close(st), 0);

	for (size_t k = 0; k < sizeof(kinds) / sizeof(*kinds); k++) {
		long calls;

		if (only && !strstr(kinds[k].name, only))
			continue;
		calls = fault_run(pristine, work, kinds[k].op, -1, kinds[k].err);
		/* the census may differ a little from run to run (threads): go past it */
		for (long nth = 0; nth < calls + 2; nth += stride, runs++) {
			if (getenv("EVL_FAULT_VERBOSE"))
				print_message("faults: %s, call %ld\n", kinds[k].name, nth);
			fault_run(pristine, work, kinds[k].op, nth, kinds[k].err);
		}
		print_message("faults: %-13s %3ld calls, every %ld failed in turn\n", kinds[k].name,
			      calls, stride);
	}
	print_message("faults: %ld runs, %ld distinct places failed (call stacks)\n", runs,
		      fio_sites(getenv("EVL_FAULT_SITES_DUMP")));
	if (shm[0])
		tu_rmrf(shm);
}

/*
 * One open of a fresh copy of @crashed, a store a power loss left for
 * recovery, with call @nth of @op failing (-1: none).  The open fails with
 * the errno (or EIO) or succeeds; either way, the next open without the
 * fault finds every event in @acked, once and in order.  Returns the calls
 * of @op the open made.
 */
static long recovery_fault_run(const char *crashed, const char *work, enum fio_op op, long nth,
			       int err, int acked[4])
{
	struct evl_options o;
	struct evl_store *st = NULL;
	long base, calls;
	int rc;

	copy_store(crashed, work);
	fio_install();
	base = fio_count(op);
	if (nth >= 0)
		fio_fail(op, nth, err, false);
	evl_options_default(&o);
	o.commit_ms = 2;
	o.segment_bytes = 64 << 10;
	o.max_fds = 4;
	rc = evl_store_open(work, &o, &st);
	calls = fio_count(op) - base;
	fio_clear();
	if (rc && rc != -err && rc != -EIO)
		fail_msg("recovery with call %ld failing: %d (%s)", nth, rc, strerror(-rc));
	assert_true(rc == 0 || nth >= 0);
	if (rc == 0)
		evl_store_close(st);	/* may fail: a sticky error */
	fio_uninstall();
	verify_acked(work, acked, nth < 0 ? "recovery, census run" : "recovery, failed call",
		     nth);
	return calls;
}

/* Write @n bytes of junk to a new file @path. */
static void junk_file(const char *path, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);

	assert_true(fd >= 0);
	while (n--)
		assert_int_equal(write(fd, "?", 1), 1);
	close(fd);
}

/*
 * Leave in store @dir what crashes at other moments leave: the delete of
 * live task y applied to the files but not the index (its directory in the
 * trash), a log rewrite that never took effect, and a journal segment
 * whose creation stopped inside its header.
 */
static void leave_unfinished_work(const char *dir)
{
	char peek[4200], from[4200], to[4400];
	uint64_t uid, last = 0;
	struct evl_store *st;
	struct dirent *de;
	DIR *d;

	snprintf(peek, sizeof(peek), "%.4100s.peek", dir);
	copy_store(dir, peek);
	st = open_store(peek, false, 2);
	uid = task_uid(st, "y");
	assert_int_equal(evl_store_close(st), 0);
	tu_rmrf(peek);
	assert_true(uid != 0);

	snprintf(from, sizeof(from), "%.4100s/tasks/y", dir);
	snprintf(to, sizeof(to), "%s/tasks/.trash-%016" PRIx64, dir, uid);
	assert_int_equal(rename(from, to), 0);

	snprintf(to, sizeof(to), "%s/tasks/.rewrite", dir);
	assert_true(mkdir(to, 0755) == 0 || errno == EEXIST);	/* r's retention made it */
	snprintf(to, sizeof(to), "%s/tasks/.rewrite/%016" PRIx64 ".events", dir, uid);
	junk_file(to, 100);
	snprintf(to, sizeof(to), "%s/tasks/.rewrite/%016" PRIx64 ".meta", dir, uid);
	junk_file(to, 48);

	snprintf(from, sizeof(from), "%.4100s/journal", dir);
	assert_non_null(d = opendir(from));
	while ((de = readdir(d)))
		if (strlen(de->d_name) == 20 && strtoull(de->d_name, NULL, 16) > last)
			last = strtoull(de->d_name, NULL, 16);
	closedir(d);
	snprintf(to, sizeof(to), "%s/%016" PRIx64 ".jnl", from, last + 4096);
	junk_file(to, 10);
}

/*
 * Faults during recovery: a store a power loss left with cut logs and a
 * torn journal, plus what other crashes leave (leave_unfinished_work), is
 * opened with each I/O call of the open failing in turn.
 */
static void faults_in_recovery(void **state)
{
	static const struct fault_kind kinds[] = {
		{ FIO_WRITE, ENOSPC, "write ENOSPC" }, { FIO_WRITE, EIO, "write EIO" },
		{ FIO_SYNC, EIO, "fsync EIO" }, { FIO_TRUNC, EIO, "truncate EIO" },
		{ FIO_OPEN, EMFILE, "open EMFILE" }, { FIO_RENAME, EIO, "rename EIO" },
		{ FIO_READ, EIO, "read EIO" }, { FIO_UNLINK, EIO, "unlink EIO" },
		{ FIO_MKDIR, ENOSPC, "mkdir ENOSPC" }, { FIO_RMDIR, EIO, "rmdir EIO" },
		{ FIO_ALLOC, ENOSPC, "fallocate ENOSPC" }, { FIO_LOCK, ENOLCK, "flock ENOLCK" },
	};
	const char *dir = *state, *only = getenv("EVL_FAULT_KINDS");
	char crashed[4200], work[4200];
	long runs = 0, stride = fault_stride(), total = 0, sites = fio_sites(NULL);
	struct fio_loss loss = { 0 };
	int acked[4];

	snprintf(crashed, sizeof(crashed), "%s/crashed", dir);
	snprintf(work, sizeof(work), "%s/work", dir);
	/* past writer 0's checkpoint at its 300th event: a trimmed journal, a dirty set */
	power_cut(crashed, true, 1600, 4321, FIO_LOSS_HOLES | FIO_LOSS_DIRS, NULL, acked, &loss);
	leave_unfinished_work(crashed);
	for (size_t k = 0; k < sizeof(kinds) / sizeof(*kinds); k++) {
		long calls, step;

		if (only && !strstr(kinds[k].name, only))
			continue;
		calls = recovery_fault_run(crashed, work, kinds[k].op, -1, kinds[k].err, acked);
		/* the repair writes record by record: about 40 runs of a kind at most (fewer: stride) */
		step = calls * stride / 40 > stride ? calls * stride / 40 : stride;
		for (long nth = 0; nth < calls + 1; nth += step, runs++)
			recovery_fault_run(crashed, work, kinds[k].op, nth, kinds[k].err, acked);
		total += calls;
		print_message("recovery faults: %-12s %3ld calls, every %ld failed in turn\n",
			      kinds[k].name, calls, step);
	}
	print_message("recovery faults: %ld runs over %ld calls, %ld new places failed (call "
		      "stacks); every acknowledged event found after each\n", runs, total,
		      fio_sites(NULL) - sites);
}

static void writers_wait_on_max_pending(void **state)
{
	const char *dir = *state;
	struct evl_options o;
	struct evl_store *st;
	struct writer_arg a[4];
	pthread_t th[4];
	uint64_t uid;

	evl_options_default(&o);
	o.max_pending = 4096;	/* about 20 events */
	o.commit_ms = 5;
	assert_int_equal(evl_store_open(dir, &o, &st), 0);
	uid = create(st, "q");
	for (int i = 0; i < 4; i++) {
		a[i] = (struct writer_arg){ st, uid, i, 500, 0 };
		pthread_create(&th[i], NULL, writer_main, &a[i]);
	}
	for (int i = 0; i < 4; i++) {
		void *r;

		pthread_join(th[i], &r);
		assert_null(r);	/* waited, never failed */
	}
	{
		struct evl_task_info info;

		evl_task_lookup(st, "q", &info);
		assert_int_equal(info.events, 2000);
	}
	check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
}

static void full_pending_after_failed_fsync_fails_fast(void **state)
{
	const char *dir = *state;
	struct evl_options o;
	struct evl_store *st;
	struct evl_writer *w;
	char line[200];
	uint64_t uid, t0;
	int rc = 0, i;

	fio_install();
	evl_options_default(&o);
	o.max_pending = 2048;
	o.commit_ms = 200;
	assert_int_equal(evl_store_open(dir, &o, &st), 0);
	uid = create(st, "s");
	assert_int_equal(evl_writer_open(st, uid, &w), 0);
	fio_fail(FIO_SYNC, 0, EIO, true);
	t0 = tu_now_ms();
	for (i = 0; i < 1000 && !rc; i++) {
		int n = event_line(line, sizeof(line), 1, 0, i, 40);

		rc = evl_writer_write(w, line, n);
	}
	/* nothing can be applied after the failed fsync: EIO, not a hang */
	assert_int_equal(rc, -EIO);
	assert_true(tu_now_ms() - t0 < 10000);
	fio_clear();
	evl_writer_close(w);
	assert_int_equal(evl_store_close(st), -EIO);
	fio_uninstall();
	st = open_store(dir, false, 2);
	check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
}

static void index_map_grows_under_load(void **state)
{
	const char *dir = *state;
	struct evl_store *st;
	struct writer_arg a[2];
	pthread_t th[2];

	index_set_map_initial(64 << 10);	/* full after a few hundred events */
	st = open_store(dir, false, 2);
	a[0] = (struct writer_arg){ st, create(st, "g0"), 0, 3000, 0 };
	a[1] = (struct writer_arg){ st, create(st, "g1"), 1, 3000, 1 };
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, writer_main, &a[i]);
	for (int i = 0; i < 2; i++) {
		void *r;

		pthread_join(th[i], &r);
		assert_null(r);
	}
	index_set_map_initial(256u << 20);
	check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
	st = open_store(dir, false, 2);
	check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
}

static void compact_arguments(void **state)
{
	struct evl_compact_args a;
	char why[200];

	assert_int_equal(evl_compact_parse("", &a, why, sizeof(why)), 0);
	assert_int_equal(evl_compact_parse(" task=t1  expire-idle=30d\n", &a, why, sizeof(why)), 0);
	assert_string_equal(a.task, "t1");
	assert_int_equal(a.expire_idle_s, 30 * 86400);
	assert_int_equal(evl_compact_parse("expire-idle=90s", &a, why, sizeof(why)), 0);
	assert_int_equal(a.expire_idle_s, 90);
	assert_int_equal(evl_compact_parse("expire-idle=15m", &a, why, sizeof(why)), 0);
	assert_int_equal(a.expire_idle_s, 900);
	assert_int_equal(evl_compact_parse("expire-idle=3x", &a, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "duration"));
	assert_int_equal(evl_compact_parse("expire-idle=-1d", &a, why, sizeof(why)), -EINVAL);
	assert_int_equal(evl_compact_parse("frobnicate=1", &a, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "unknown argument"));
	assert_int_equal(evl_compact_parse("now", &a, why, sizeof(why)), -EINVAL);
	assert_int_equal(evl_compact_parse("task=.x", &a, why, sizeof(why)), -EINVAL);
	assert_int_equal(evl_compact_parse("max-age=1d keep-last=10", &a, why, sizeof(why)), 0);
	assert_int_equal(a.max_age_s, 86400);
	assert_int_equal(a.keep_last, 10);
	assert_int_equal(evl_compact_parse("max-age=12", &a, why, sizeof(why)), -EINVAL);
	assert_int_equal(evl_compact_parse("keep-last=0", &a, why, sizeof(why)), -EINVAL);
	assert_int_equal(evl_compact_parse("keep-last=-3", &a, why, sizeof(why)), -EINVAL);
	assert_int_equal(evl_compact_parse("keep-last=3x", &a, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "keep-last"));

	/* whole .control writes */
	struct evl_control c;
	char big[600];

	assert_int_equal(evl_control_parse("checkpoint\n", 11, &c, why, sizeof(why)), 0);
	assert_int_equal(c.cmd, EVL_CONTROL_CHECKPOINT);
	assert_int_equal(evl_control_parse("compact keep-last=5 \n", 21, &c, why, sizeof(why)), 0);
	assert_int_equal(c.cmd, EVL_CONTROL_COMPACT);
	assert_int_equal(c.compact.keep_last, 5);
	assert_string_equal(c.text, "compact keep-last=5");
	assert_int_equal(evl_control_parse("compact", 7, &c, why, sizeof(why)), 0);
	assert_int_equal(evl_control_parse("compactx", 8, &c, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "unknown command"));
	/* a NUL or a second line is not ignored: "checkpoint\0rm" is no checkpoint */
	assert_int_equal(evl_control_parse("checkpoint\0rm", 13, &c, why, sizeof(why)), -EINVAL);
	assert_string_equal(c.text, "checkpoint?rm");
	assert_int_equal(evl_control_parse("compact\ncheckpoint\n", 19, &c, why, sizeof(why)),
			 -EINVAL);
	/* too long is refused, not cut (a cut task= would name another task) */
	memset(big, 'a', sizeof(big));
	memcpy(big, "compact task=", 13);
	assert_int_equal(evl_control_parse(big, sizeof(big), &c, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "longer"));
	assert_int_equal(evl_control_parse("", 0, &c, why, sizeof(why)), -EINVAL);
}

static void wait_compaction(struct evl_store *st, struct evl_compact_status *cs)
{
	uint64_t deadline = tu_now_ms() + 60000;

	for (evl_compact_status(st, cs); cs->running && tu_now_ms() < deadline;
	     evl_compact_status(st, cs))
		usleep(1000);	/* poll, with a deadline */
	assert_false(cs->running);
}

static void compaction_reclaims_deleted_tasks(void **state)
{
	const char *dir = *state;
	struct evl_store *st = open_store(dir, false, 2);
	struct evl_compact_args none = { 0 };
	struct evl_compact_status cs;
	struct evl_stats before, after;
	struct writer_arg a;

	a = (struct writer_arg){ st, create(st, "big"), 0, 20000, 0 };
	assert_null(writer_main(&a));
	a = (struct writer_arg){ st, create(st, "small"), 1, 50, 0 };
	assert_null(writer_main(&a));
	assert_int_equal(evl_store_checkpoint(st), 0);
	evl_store_stats(st, &before);
	assert_int_equal(evl_task_delete(st, "big"), 0);

	assert_int_equal(evl_compact_start(st, &none), 0);
	assert_int_equal(evl_compact_start(st, &none), -EBUSY);
	wait_compaction(st, &cs);
	assert_int_equal(cs.last_rc, 0);
	assert_int_equal(cs.runs_ok, 1);
	assert_true(cs.last_bytes_reclaimed > 0);
	evl_store_stats(st, &after);
	print_message("index %llu -> %llu bytes, journal %llu -> %llu, %llu reclaimed\n",
		      (unsigned long long)before.index_bytes, (unsigned long long)after.index_bytes,
		      (unsigned long long)before.journal_bytes, (unsigned long long)after.journal_bytes,
		      (unsigned long long)cs.last_bytes_reclaimed);
	assert_true(after.index_bytes < before.index_bytes);	/* shrunk */
	assert_true(after.journal_bytes < 4096);		/* trimmed */
	check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
	st = open_store(dir, false, 2);
	check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
}

struct timed_writer {
	struct evl_store *st;
	uint64_t uid;
	int id, n;
	atomic_bool *stop;
	uint64_t max_us, writes;
};

static void *timed_writer_main(void *arg)
{
	struct timed_writer *a = arg;
	struct evl_writer *w;
	char line[200];

	if (evl_writer_open(a->st, a->uid, &w))
		return (void *)1;
	/* at least n writes, then on until stopped, at most 25,000 */
	for (int i = 0; (!atomic_load(a->stop) && i < 25000) || i < a->n; i++) {
		int n = event_line(line, sizeof(line), (a->id + i) % 11, a->id, i, i % 50);
		struct timespec t0, t1;
		uint64_t us;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (evl_writer_write(w, line, n))
			return (void *)2;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		us = (t1.tv_sec - t0.tv_sec) * 1000000ull + (t1.tv_nsec - t0.tv_nsec) / 1000;
		if (us > a->max_us)
			a->max_us = us;
		a->writes++;
	}
	return evl_writer_close(w) ? (void *)3 : NULL;
}

static void appends_go_on_during_compaction(void **state)
{
	const char *dir = *state;
	struct evl_store *st = open_store(dir, false, 2);
	struct evl_compact_args none = { 0 };
	struct evl_compact_status cs;
	struct timed_writer tw[4];
	pthread_t th[4];
	atomic_bool stop = false;
	struct writer_arg a;
	uint64_t uid = create(st, "live");
	int counts[4];
	size_t len;
	char *log;

	a = (struct writer_arg){ st, create(st, "doomed"), 9, 30000, 0 };
	assert_null(writer_main(&a));
	assert_int_equal(evl_store_checkpoint(st), 0);
	for (int i = 0; i < 4; i++) {
		tw[i] = (struct timed_writer){ st, uid, i, 200, &stop, 0, 0 };
		pthread_create(&th[i], NULL, timed_writer_main, &tw[i]);
	}
	assert_int_equal(evl_task_delete(st, "doomed"), 0);
	assert_int_equal(evl_compact_start(st, &none), 0);
	wait_compaction(st, &cs);
	atomic_store(&stop, true);
	for (int i = 0; i < 4; i++) {
		void *r;

		pthread_join(th[i], &r);
		assert_null(r);
		print_message("writer %d: %llu writes during compaction, slowest %llu us\n", i,
			      (unsigned long long)tw[i].writes, (unsigned long long)tw[i].max_us);
		assert_true(tw[i].max_us < 500000);	/* no append waited 0.5 s */
	}
	assert_int_equal(cs.last_rc, 0);
	log = read_all(st, uid, NULL, &len);
	check_task_order(log, len, counts, 4);	/* nothing lost, order kept */
	for (int i = 0; i < 4; i++)
		assert_int_equal(counts[i], (int)tw[i].writes);
	free(log);
	check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
}

static void compaction_expires_idle_tasks(void **state)
{
	const char *dir = *state;
	struct evl_store *st = open_store(dir, false, 2);
	struct evl_compact_args args;
	struct evl_compact_status cs;
	struct evl_writer *w;
	uint64_t fresh, deadline;
	char why[100];

	create(st, "old");
	fresh = create(st, "fresh");
	assert_int_equal(evl_writer_open(st, fresh, &w), 0);
	assert_int_equal(evl_compact_parse("expire-idle=1s", &args, why, sizeof(why)), 0);
	/* "old" goes once it has been idle for 1 s; "fresh" keeps being written */
	deadline = tu_now_ms() + 10000;
	while (task_uid(st, "old") && tu_now_ms() < deadline) {
		assert_int_equal(write_str(w, "{\"type\":\"keepalive\"}\n"), 0);
		assert_int_equal(evl_compact_start(st, &args), 0);
		wait_compaction(st, &cs);
		assert_int_equal(cs.last_rc, 0);
		assert_int_not_equal(task_uid(st, "fresh"), 0);
	}
	assert_int_equal(task_uid(st, "old"), 0);
	assert_int_equal(cs.last_tasks_expired, 1);
	assert_int_equal(evl_writer_close(w), 0);
	check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
}

static void nodelete_refuses_deletion(void **state)
{
	const char *dir = *state;
	struct evl_options o;
	struct evl_store *st;
	struct evl_compact_args args = { .expire_idle_s = 1 }, none = { 0 };
	struct evl_compact_status cs;

	evl_options_default(&o);
	o.nodelete = true;
	assert_int_equal(evl_store_open(dir, &o, &st), 0);
	create(st, "keep");
	assert_int_equal(evl_task_delete(st, "keep"), -EPERM);
	assert_int_equal(evl_compact_start(st, &args), -EPERM);
	assert_int_equal(evl_compact_start(st, &none), 0);	/* no deletion asked: fine */
	wait_compaction(st, &cs);
	assert_int_equal(cs.last_rc, 0);
	assert_int_not_equal(task_uid(st, "keep"), 0);
	assert_int_equal(evl_store_close(st), 0);
}

/* ---- retention ---- */

struct task_check_ctx {
	struct evl_task_info *t;
	size_t n;
};

static int task_collect_cb(void *arg, const struct evl_task_info *t)
{
	struct task_check_ctx *c = arg;

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
	file = slurp(path, &flen);
	snprintf(path, sizeof(path), "%s/tasks/%s/events.meta", dir, t->name);
	meta = slurp(path, &mlen);
	assert_non_null(file);
	assert_non_null(meta);
	got = read_all(st, t->uid, NULL, &glen);
	if (glen != flen || memcmp(got, file, flen))
		fail_msg("task %s: read %zu bytes, the file has %zu", t->name, glen, flen);
	assert_int_equal(t->size, flen);
	assert_int_equal(t->events, mlen / TASKLOG_REC);
	free(file);
	free(meta);
	free(got);
	return t->events;
}

/* Every task reads as its file, sizes and counts agree, no rewrite is left over. */
static void check_tasks(struct evl_store *st, const char *dir)
{
	struct task_check_ctx c = { NULL, 0 };
	uint64_t events = 0;
	struct evl_stats s;
	char path[4400];
	struct dirent *de;
	DIR *d;

	assert_int_equal(evl_store_checkpoint(st), 0);
	assert_int_equal(evl_task_list(st, NULL, task_collect_cb, &c), 0);
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

/* The offset in @buf (@len bytes of lines) where its last @n lines start. */
static size_t last_lines(const char *buf, size_t len, size_t n)
{
	size_t off = len;

	while (off > 0 && n) {
		off--;		/* onto the previous line's newline */
		while (off > 0 && buf[off - 1] != '\n')
			off--;
		n--;
	}
	return off;
}

static void compact_and_wait(struct evl_store *st, const char *words, struct evl_compact_status *cs)
{
	struct evl_compact_args args;
	char why[200];

	assert_int_equal(evl_compact_parse(words, &args, why, sizeof(why)), 0);
	assert_int_equal(evl_compact_start(st, &args), 0);
	wait_compaction(st, cs);
	assert_int_equal(cs->last_rc, 0);
}

static void expect_task(struct evl_store *st, const char *name, const char *want, size_t len)
{
	size_t glen;
	char *got = read_all(st, task_uid(st, name), NULL, &glen);

	if (glen != len || memcmp(got, want, len))
		fail_msg("task %s: %zu bytes, expected %zu", name, glen, len);
	free(got);
}

static void retention_keeps_the_newest(void **state)
{
	const char *dir = *state;
	struct evl_store *st = open_store(dir, false, 2);
	static const int n[3] = { 300, 200, 20 };
	struct evl_compact_status cs;
	char *before[3], name[8], *grown;
	size_t len[3], glen, keep;
	struct writer_arg a;

	for (int i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "r%d", i);
		a = (struct writer_arg){ st, create(st, name), i, n[i], 0 };
		assert_null(writer_main(&a));
		before[i] = read_all(st, a.uid, NULL, &len[i]);
	}

	/* one task only */
	compact_and_wait(st, "task=r1 keep-last=50", &cs);
	assert_int_equal(cs.last_events_dropped, 150);
	assert_true(cs.last_bytes_reclaimed > 0);
	keep = last_lines(before[1], len[1], 50);
	expect_task(st, "r1", before[1] + keep, len[1] - keep);
	expect_task(st, "r0", before[0], len[0]);
	expect_task(st, "r2", before[2], len[2]);
	check_views(st, dir);
	check_tasks(st, dir);

	/* appends go on after the rewrite, at the new offsets */
	a = (struct writer_arg){ st, task_uid(st, "r1"), 5, 30, 1 };
	assert_null(writer_main(&a));
	grown = read_all(st, a.uid, NULL, &glen);
	assert_int_equal(glen - (len[1] - keep) > 0, 1);
	assert_memory_equal(grown, before[1] + keep, len[1] - keep);
	check_views(st, dir);

	/* every task; one is short enough already */
	compact_and_wait(st, "keep-last=60", &cs);
	assert_int_equal(cs.last_events_dropped, 240 + 20);
	keep = last_lines(before[0], len[0], 60);
	expect_task(st, "r0", before[0] + keep, len[0] - keep);
	keep = last_lines(grown, glen, 60);
	expect_task(st, "r1", grown + keep, glen - keep);
	expect_task(st, "r2", before[2], len[2]);
	check_views(st, dir);
	check_tasks(st, dir);

	/* the same after a reopen, and a second rewrite of a rewritten task */
	assert_int_equal(evl_store_close(st), 0);
	st = open_store(dir, false, 2);
	check_views(st, dir);
	check_tasks(st, dir);
	compact_and_wait(st, "keep-last=7", &cs);
	keep = last_lines(before[0], len[0], 7);
	expect_task(st, "r0", before[0] + keep, len[0] - keep);
	check_views(st, dir);
	check_tasks(st, dir);
	assert_int_equal(evl_store_close(st), 0);
	for (int i = 0; i < 3; i++)
		free(before[i]);
	free(grown);
}

static void retention_by_age(void **state)
{
	const char *dir = *state;
	struct evl_store *st = open_store(dir, false, 2);
	struct evl_compact_status cs;
	struct evl_task_info info;
	struct writer_arg a;
	uint64_t t0 = tu_now_ms();
	size_t len, glen;
	char *young, *all;

	a = (struct writer_arg){ st, create(st, "old"), 0, 50, 0 };
	assert_null(writer_main(&a));
	a = (struct writer_arg){ st, create(st, "mixed"), 1, 40, 0 };
	assert_null(writer_main(&a));
	all = read_all(st, a.uid, NULL, &len);
	/* the events above age past 2 s; wait for that, by the clock */
	while (tu_now_ms() < t0 + 2300)
		usleep(10000);
	a = (struct writer_arg){ st, a.uid, 2, 25, 0 };
	assert_null(writer_main(&a));
	young = read_all(st, a.uid, NULL, &glen);
	assert_true(glen > len);

	compact_and_wait(st, "max-age=2s", &cs);
	assert_int_equal(cs.last_events_dropped, 90);
	expect_task(st, "mixed", young + len, glen - len);
	assert_int_equal(evl_task_lookup(st, "old", &info), 0);	/* emptied, not deleted */
	assert_int_equal(info.size, 0);
	assert_int_equal(info.events, 0);
	check_views(st, dir);
	check_tasks(st, dir);
	/* an emptied task takes appends again */
	a = (struct writer_arg){ st, info.uid, 3, 5, 0 };
	assert_null(writer_main(&a));
	check_views(st, dir);
	check_tasks(st, dir);
	assert_int_equal(evl_store_close(st), 0);
	free(young);
	free(all);
}

/*
 * A crash before every I/O call and index step of a compaction with
 * retention, each time from the same store: after recovery every task
 * holds exactly its events before or after retention, views agree, and
 * the next compaction finishes the job.
 */
/*
 * In the child of a step test, before the step: with @power, step @k is a
 * power loss (dumped to @work.dump, directory changes tracked), else a
 * crash; either way the process ends there with @code.
 */
static void step_arm(const char *work, bool power, long k, int code)
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

/*
 * In the parent, after a step test's child ended: with @power, cut @work as
 * the worst power loss at that moment could (nothing unsynced kept, every
 * unsynced directory change lost, the index's unsynced commit undone).
 */
static void step_cut(const char *work, bool power, int status, struct fio_loss *loss)
{
	char dump[4400], stash[4400], mdb[4400];

	snprintf(dump, sizeof(dump), "%s.dump", work);
	snprintf(stash, sizeof(stash), "%s.stash", work);
	snprintf(mdb, sizeof(mdb), "%s/index/data.mdb", work);
	if (power && WEXITSTATUS(status) == 42) {
		assert_int_equal(fio_apply_powerloss(dump, 0, FIO_LOSS_ALL, loss), 0);
		index_undone += fio_undo_index_commit(dump, mdb) > 0;
	}
	unlink(dump);
	tu_rmrf(stash);
}

/*
 * Retention (a log rewrite) stopped at every step that changes the disk:
 * by a crash (@power false), or by a power loss that keeps nothing the
 * store did not sync.  The task is the one before or the one after.
 */
static void retention_steps(const char *dir, bool power)
{
	char pristine[4200], work[4200];
	char *before[2], *after[2];
	size_t blen[2], alen[2];
	struct evl_store *st;
	struct writer_arg a;
	struct fio_loss loss = { 0 };
	long k, after_seen = 0;

	snprintf(pristine, sizeof(pristine), "%s/pristine", dir);
	snprintf(work, sizeof(work), "%s/work", dir);
	st = open_store(pristine, false, 2);
	a = (struct writer_arg){ st, create(st, "a"), 0, 120, 0 };
	assert_null(writer_main(&a));
	a = (struct writer_arg){ st, create(st, "b"), 1, 60, 0 };
	assert_null(writer_main(&a));
	for (int i = 0; i < 2; i++) {
		size_t keep;

		before[i] = read_all(st, task_uid(st, i ? "b" : "a"), NULL, &blen[i]);
		keep = last_lines(before[i], blen[i], 30);
		alen[i] = blen[i] - keep;
		after[i] = before[i] + keep;
	}
	assert_int_equal(evl_store_close(st), 0);

	for (k = 0;; k++) {
		struct evl_compact_status cs;
		int status;
		pid_t pid;

		copy_store(pristine, work);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct evl_compact_args args = { .keep_last = 30 };
			struct evl_options o;

			evl_options_default(&o);
			fio_install();
			if (evl_store_open(work, &o, &st))
				_exit(2);
			step_arm(work, power, k, 42);
			if (evl_compact_start(st, &args))
				_exit(3);
			do
				evl_compact_status(st, &cs);
			while (cs.running && !usleep(1000));
			fio_crash_at(-1, 0);
			_exit(cs.last_rc || evl_store_close(st) ? 4 : 0);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		assert_true(WEXITSTATUS(status) == 42 || WEXITSTATUS(status) == 0);
		step_cut(work, power, status, &loss);

		st = open_store(work, false, 2);
		for (int i = 0; i < 2; i++) {
			const char *name = i ? "b" : "a";
			size_t glen;
			char *got = read_all(st, task_uid(st, name), NULL, &glen);

			if (glen == alen[i] && !memcmp(got, after[i], glen))
				after_seen++;
			else if (glen != blen[i] || memcmp(got, before[i], glen))
				fail_msg("%s at step %ld: task %s is neither before nor after "
					 "retention (%zu bytes)", power ? "power loss" : "crash", k,
					 name, glen);
			free(got);
		}
		check_views(st, work);
		check_tasks(st, work);
		compact_and_wait(st, "keep-last=30", &cs);	/* what is left is finished */
		expect_task(st, "a", after[0], alen[0]);
		expect_task(st, "b", after[1], alen[1]);
		check_views(st, work);
		assert_int_equal(evl_store_close(st), 0);
		if (WEXITSTATUS(status) == 0)
			break;		/* the run reached its end before step k */
	}
	print_message("%ld %s points, tasks found after retention %ld times%s\n", k,
		      power ? "power-loss" : "crash", after_seen,
		      power ? " (nothing unsynced kept)" : "");
	if (power)
		print_message("  %ld files cut, %ld directory changes undone\n", loss.files_cut,
			      loss.dir_undone);
	assert_true(k > 10);
	assert_true(after_seen > 0);
	for (int i = 0; i < 2; i++)
		free(before[i]);
}

static void retention_survives_a_crash_at_every_step(void **state)
{
	retention_steps(*state, false);
}

static void retention_survives_power_loss_at_every_step(void **state)
{
#ifdef __SANITIZE_THREAD__
	skip();	/* on-disk states, not races: the plain and ASan builds run it */
#endif
	retention_steps(*state, true);
}

/* Append @n events "ty01" numbered from @from to task @name. */
static void append_n(struct evl_store *st, const char *name, int from, int n)
{
	struct evl_writer *w;
	char buf[128];

	assert_int_equal(evl_writer_open(st, task_uid(st, name), &w), 0);
	for (int i = from; i < from + n; i++) {
		event_line(buf, sizeof(buf), 1, 0, i, 3);
		assert_int_equal(write_str(w, buf), 0);
	}
	assert_int_equal(evl_writer_close(w), 0);
}

/*
 * A delete moves the task's directory aside before the index commits it; a
 * crash between the two must not leave a store that cannot open (found by
 * the crash torture: replaying an append to the moved task failed).  Each
 * step: append to "a", delete it and create "a" anew, crash at the k-th
 * I/O call; the store must open with "a" old, deleted, or new.
 */
/* A delete and a create of the same name, stopped at every step: by a crash or a power loss. */
static void delete_steps(const char *dir, bool power)
{
	char pristine[4200], work[4200];
	struct evl_store *st;
	struct fio_loss loss = { 0 };
	long k;
	int seen[3] = { 0, 0, 0 };

#ifdef __SANITIZE_THREAD__
	/* fork() of a threaded process under TSan: one unexplained ENOENT at reopen was
	   seen in a loaded CI run (not reproduced since); the plain and ASan builds run it */
	skip();
#endif
	snprintf(pristine, sizeof(pristine), "%s/pristine", dir);
	snprintf(work, sizeof(work), "%s/work", dir);
	st = open_store(pristine, false, 2);
	create(st, "a");
	append_n(st, "a", 0, 20);
	assert_int_equal(evl_store_close(st), 0);

	for (k = 0;; k++) {
		struct evl_task_info info;
		int status;
		pid_t pid;

		copy_store(pristine, work);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct evl_options o;

			evl_options_default(&o);
			fio_install();
			if (evl_store_open(work, &o, &st))
				_exit(2);
			step_arm(work, power, k, 42);
			append_n(st, "a", 20, 5);
			if (evl_task_delete(st, "a") || evl_task_create(st, "a"))
				_exit(3);
			append_n(st, "a", 100, 2);
			fio_crash_at(-1, 0);
			_exit(evl_store_close(st) ? 4 : 0);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		assert_true(WEXITSTATUS(status) == 42 || WEXITSTATUS(status) == 0);
		step_cut(work, power, status, &loss);

		{
			/* the regression: this open failed */
			struct evl_options o;
			int rc;

			evl_options_default(&o);
			rc = evl_store_open(work, &o, &st);
			if (rc)
				fail_msg("crash at step %ld (child exit %d): reopen: %s", k,
					 WEXITSTATUS(status), strerror(-rc));
		}
		if (evl_task_lookup(st, "a", &info)) {
			seen[1]++;
		} else {
			size_t len;
			char *got = read_all(st, info.uid, NULL, &len), first[128];

			event_line(first, sizeof(first), 1, 0, 100, 3);
			if (info.events <= 2 && (!len || !strncmp(got, first, strlen(first))))
				seen[2]++;	/* the new task, with a prefix of its events */
			else if (info.events >= 20 && info.events <= 25)
				seen[0]++;	/* the old one, before the delete */
			else
				fail_msg("crash at step %ld: task a has %llu events", k,
					 (unsigned long long)info.events);
			free(got);
		}
		check_views(st, work);
		check_tasks(st, work);
		assert_int_equal(evl_store_close(st), 0);
		if (WEXITSTATUS(status) == 0)
			break;
	}
	print_message("%ld %s points: old task %d, deleted %d, new task %d times\n", k,
		      power ? "power-loss" : "crash", seen[0], seen[1], seen[2]);
	if (power)
		print_message("  %ld files cut, %ld directory changes undone\n", loss.files_cut,
			      loss.dir_undone);
	assert_true(k > 10);
	assert_true(seen[0] > 0 && seen[2] > 0);
}

static void delete_survives_a_crash_at_every_step(void **state)
{
	delete_steps(*state, false);
}

static void delete_survives_power_loss_at_every_step(void **state)
{
	delete_steps(*state, true);
}

/* A call that may hang, run on a thread with a deadline (the verdict waits 60 s). */
struct bounded {
	int (*fn)(struct bounded *b);
	struct evl_store *st;
	const char *name;
	atomic_int rc;
	atomic_bool done;
};

static void *bounded_main(void *arg)
{
	struct bounded *b = arg;

	atomic_store(&b->rc, b->fn(b));
	atomic_store(&b->done, true);
	return NULL;
}

/* Run @b->fn on a thread; its result, or a failure if it does not end within 60 s. */
static int bounded(struct bounded *b, const char *what)
{
	uint64_t t0 = tu_now_ms();
	pthread_t th;

	atomic_store(&b->done, false);
	assert_int_equal(pthread_create(&th, NULL, bounded_main, b), 0);
	while (!atomic_load(&b->done)) {
		if (tu_now_ms() - t0 > 60000)
			fail_msg("%s: still waiting after 60 s", what);	/* the thread stays */
		usleep(2000);
	}
	pthread_join(th, NULL);
	return atomic_load(&b->rc);
}

static int do_create(struct bounded *b)
{
	return evl_task_create(b->st, b->name);
}

static int do_checkpoint_call(struct bounded *b)
{
	return evl_store_checkpoint(b->st);
}

static int do_close(struct bounded *b)
{
	return evl_store_close(b->st);
}

/*
 * hold_apply holds appends only until something waits for the applier: a
 * create (or delete) behind held appends applies them first, since records
 * apply in journal order; a checkpoint and close apply everything.  They
 * used to wait for ever.
 */
static void hold_apply_holds_only_appends(void **state)
{
	const char *dir = *state;
	struct evl_options o;
	struct evl_stats s;
	struct evl_writer *w;
	struct bounded b = { 0 };
	uint64_t uid;
	char line[200];

	evl_options_default(&o);
	o.hold_apply = true;
	assert_int_equal(evl_store_open(dir, &o, &b.st), 0);
	b.fn = do_create;
	b.name = "a";
	assert_int_equal(bounded(&b, "create with nothing held"), 0);
	uid = task_uid(b.st, "a");
	assert_int_equal(evl_writer_open(b.st, uid, &w), 0);
	for (int i = 0; i < 20; i++) {
		int n = event_line(line, sizeof(line), 1, 0, i, i);

		assert_int_equal(evl_writer_write(w, line, n), 0);
	}
	assert_int_equal(evl_store_sync(b.st), 0);
	usleep(50000);	/* the applier had its chance: it holds them */
	evl_store_stats(b.st, &s);
	assert_true(s.applied_lsn < s.durable_lsn);
	assert_int_equal(s.pending_events, 20);

	b.fn = do_create;
	b.name = "b";
	assert_int_equal(bounded(&b, "create behind held appends"), 0);
	evl_store_stats(b.st, &s);
	assert_int_equal(s.pending_events, 0);	/* applied in journal order, before b */
	assert_true(task_uid(b.st, "b") != 0);

	for (int i = 20; i < 30; i++) {
		int n = event_line(line, sizeof(line), 1, 0, i, i);

		assert_int_equal(evl_writer_write(w, line, n), 0);
	}
	b.fn = do_checkpoint_call;
	assert_int_equal(bounded(&b, "checkpoint"), 0);
	evl_store_stats(b.st, &s);
	assert_int_equal(s.pending_events, 0);
	for (int i = 30; i < 40; i++) {
		int n = event_line(line, sizeof(line), 1, 0, i, i);

		assert_int_equal(evl_writer_write(w, line, n), 0);
	}
	evl_writer_close(w);
	b.fn = do_close;
	assert_int_equal(bounded(&b, "close"), 0);

	b.st = open_store(dir, false, 2);
	{
		int first;

		assert_int_equal(task_run(b.st, task_uid(b.st, "a"), 0, &first, "hold", 0), 40);
	}
	assert_int_equal(evl_store_close(b.st), 0);
}

/*
 * A short write of the lock file is retried, and one that cannot go on
 * fails the lock: it used to be taken for a success with errno 0 (the
 * store then ran without holding its lock, its descriptor closed).  The
 * file size limit makes the write short.
 */
static void lock_file_short_write_fails(void **state)
{
	const char *dir = *state;
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		struct rlimit rl = { 4, 4 };
		int fd = -1, rc;

		signal(SIGXFSZ, SIG_IGN);
		if (setrlimit(RLIMIT_FSIZE, &rl))
			_exit(2);
		rc = store_lock(dir, "a holder name longer than four bytes", &fd);
		_exit(rc == -EFBIG && fd == -1 ? 0 : 10 + (rc == 0));
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		fail_msg("store_lock under a 4-byte file size limit: child status %d (11: it "
			 "returned success)", status);
}

static void second_open_is_refused(void **state)
{
	const char *dir = *state;
	struct evl_store *st = open_store(dir, false, 2), *again;
	struct evl_options o;

	evl_options_default(&o);
	assert_int_equal(evl_store_open(dir, &o, &again), -EBUSY);
	assert_int_equal(evl_store_close(st), 0);
	assert_int_equal(evl_store_open(dir, &o, &again), 0);
	assert_int_equal(evl_store_close(again), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(round_trip, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(bad_writes_store_nothing, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(read_your_writes_before_apply, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(concurrent_writers, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(delete_leaves_views_at_once, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(writers_wait_on_max_pending, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(second_open_is_refused, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(lock_file_short_write_fails, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(hold_apply_holds_only_appends, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(index_map_grows_under_load, tu_setup, tu_teardown),
		cmocka_unit_test(compact_arguments),
		cmocka_unit_test_setup_teardown(compaction_reclaims_deleted_tasks, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(compaction_expires_idle_tasks, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(appends_go_on_during_compaction, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(nodelete_refuses_deletion, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(retention_keeps_the_newest, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(retention_by_age, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(retention_survives_a_crash_at_every_step, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(delete_survives_a_crash_at_every_step, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(retention_survives_power_loss_at_every_step, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(delete_survives_power_loss_at_every_step, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(full_pending_after_failed_fsync_fails_fast, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(kill9_loses_nothing_acknowledged, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(power_loss_keeps_what_was_durable, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(failed_fsync_keeps_the_journal, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(faults_at_every_site, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(faults_in_recovery, tu_setup, tu_teardown),
	};

	if (getenv("EVL_TEST_FILTER"))
		cmocka_set_test_filter(getenv("EVL_TEST_FILTER"));
	return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
