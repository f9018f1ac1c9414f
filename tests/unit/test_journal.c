/* Unit tests: the journal. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
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

#include "fio.h"
#include "journal.h"
#include "journal_i.h"
#include "testutil.h"

/* A whole record of @len payload bytes, header included (the framing: journal_i.h). */
#define REC(len) (JOURNAL_REC_HDR + (len))

struct got {
	uint64_t lsn[4096];
	char text[4096][32];
	size_t n;
};

static int collect(void *arg, uint64_t lsn, unsigned type, const void *p, size_t len)
{
	struct got *g = arg;

	if (g->n < 4096) {
		g->lsn[g->n] = lsn;
		snprintf(g->text[g->n], 32, "%.*s", (int)len, (const char *)p);
		g->n++;
	}
	return 0;
}

static struct journal_opts opts(bool sync, uint64_t seg)
{
	struct journal_opts o = { .sync_mode = sync, .commit_ms = 5, .segment_bytes = seg };

	return o;
}

static void append_text(struct journal *j, const char *s, uint64_t *lsn)
{
	struct iovec iov = { (void *)s, strlen(s) };

	assert_int_equal(journal_append(j, 2, &iov, 1, lsn), 0);
}

static char *jdir(void **state)
{
	char *d = *state, *p;

	if (asprintf(&p, "%s/journal", d) < 0)
		abort();
	return p;
}

/* The newest segment file's path. */
static void last_segment(const char *dir, char *out, size_t n, int back)
{
	struct dirent **names;
	int k = scandir(dir, &names, NULL, alphasort), seen = 0;

	out[0] = '\0';
	for (int i = k - 1; i >= 0; i--) {
		if (!out[0] && strstr(names[i]->d_name, ".jnl") &&
		    !strstr(names[i]->d_name, "corrupt") && seen++ == back)
			snprintf(out, n, "%s/%s", dir, names[i]->d_name);
		free(names[i]);
	}
	free(names);
}

static void replays_in_order(void **state)
{
	char *dir = jdir(state);
	struct journal_opts o = opts(false, 1 << 20);
	struct journal *j;
	struct got g = { .n = 0 };
	uint64_t lsn;
	char buf[32];

	assert_int_equal(journal_open(dir, 0, &o, collect, &g, &j), 0);
	assert_int_equal(g.n, 0);
	for (int i = 0; i < 100; i++) {
		snprintf(buf, sizeof(buf), "rec %d", i);
		append_text(j, buf, &lsn);
		assert_int_equal(lsn, i + 1);
	}
	assert_int_equal(journal_close(j), 0);

	assert_int_equal(journal_open(dir, 0, &o, collect, &g, &j), 0);
	assert_int_equal(g.n, 100);
	assert_string_equal(g.text[42], "rec 42");
	assert_int_equal(g.lsn[99], 100);
	append_text(j, "after", &lsn);
	assert_int_equal(lsn, 101);
	assert_int_equal(journal_close(j), 0);

	g.n = 0;
	assert_int_equal(journal_open(dir, 90, &o, collect, &g, &j), 0);
	assert_int_equal(g.n, 11);
	assert_int_equal(g.lsn[0], 91);
	assert_string_equal(g.text[10], "after");
	assert_int_equal(journal_close(j), 0);
	free(dir);
}

static void torn_tail_is_cut(void **state)
{
	char *dir = jdir(state), seg[4400];
	struct journal_opts o = opts(false, 1 << 20);
	struct journal *j;
	struct got g = { .n = 0 };
	struct stat st;
	uint64_t lsn;

	assert_int_equal(journal_open(dir, 0, &o, collect, &g, &j), 0);
	append_text(j, "one", &lsn);
	append_text(j, "two", &lsn);
	append_text(j, "three", &lsn);
	assert_int_equal(journal_close(j), 0);
	last_segment(dir, seg, sizeof(seg), 0);
	assert_int_equal(stat(seg, &st), 0);
	assert_int_equal(truncate(seg, st.st_size - 2), 0);	/* tear "three" */

	assert_int_equal(journal_open(dir, 0, &o, collect, &g, &j), 0);
	assert_int_equal(g.n, 2);
	assert_string_equal(g.text[1], "two");
	append_text(j, "four", &lsn);
	assert_int_equal(lsn, 3);	/* the torn record's lsn is reused */
	assert_int_equal(journal_close(j), 0);
	g.n = 0;
	assert_int_equal(journal_open(dir, 0, &o, collect, &g, &j), 0);
	assert_int_equal(g.n, 3);
	assert_string_equal(g.text[2], "four");
	assert_int_equal(journal_close(j), 0);
	free(dir);
}

/*
 * A corrupt record followed by a later segment (synced before the later
 * one was created: it was durable) is damage, not a torn tail: it alone is
 * lost, counted and kept as .corrupt; the records after it replay.  (It
 * used to end replay and lose "cccc" and "dddd".)
 */
static void corrupt_byte_costs_only_its_record(void **state)
{
	char *dir = jdir(state), seg[4400], bad[4500];
	struct journal_opts o = opts(false, 1 << 20);
	struct journal_stats js;
	struct journal_scan sc;
	struct journal *j;
	struct got g = { .n = 0 };
	struct stat st;
	uint64_t lsn;
	int fd;

	assert_int_equal(journal_open(dir, 0, &o, collect, &g, &j), 0);
	append_text(j, "aaaa", &lsn);
	append_text(j, "bbbb", &lsn);
	append_text(j, "cccc", &lsn);
	assert_int_equal(journal_close(j), 0);
	/* reopen starts a new segment; put more records there */
	assert_int_equal(journal_open(dir, 0, &o, collect, &g, &j), 0);
	append_text(j, "dddd", &lsn);
	assert_int_equal(journal_close(j), 0);

	/* flip one payload byte of "bbbb" in the first segment */
	snprintf(seg, sizeof(seg), "%s/0000000000000001.jnl", dir);
	fd = open(seg, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "X", 1, JOURNAL_SEG_HDR + REC(4) + JOURNAL_REC_HDR + 1), 1);
	close(fd);

	g.n = 0;
	assert_int_equal(journal_scan(dir, 0, collect, &g, &sc), 0);
	assert_int_equal(g.n, 3);
	assert_int_equal(sc.records, 3);
	assert_int_equal(sc.damage.lost, 1);
	assert_int_equal(sc.damage.first_lsn, 2);
	assert_int_equal(sc.bad_bytes, 0);

	g.n = 0;
	assert_int_equal(journal_open(dir, 0, &o, collect, &g, &j), 0);
	assert_int_equal(g.n, 3);
	assert_string_equal(g.text[0], "aaaa");
	assert_string_equal(g.text[1], "cccc");
	assert_string_equal(g.text[2], "dddd");
	journal_get_stats(j, &js);
	assert_int_equal(js.damage.lost, 1);
	assert_int_equal(js.damage.first_lsn, 2);
	assert_int_equal(js.damage.last_lsn, 2);
	assert_int_equal(js.damage.segments, 1);
	snprintf(bad, sizeof(bad), "%s.corrupt", seg);
	assert_int_equal(stat(bad, &st), 0);
	assert_int_equal(stat(seg, &st), 0);	/* kept: "cccc" has no other copy */
	append_text(j, "eeee", &lsn);
	assert_int_equal(lsn, 5);
	assert_int_equal(journal_close(j), 0);

	/* once the index has applied the corrupt record, losing it costs nothing */
	g.n = 0;
	assert_int_equal(journal_open(dir, 2, &o, collect, &g, &j), 0);
	assert_int_equal(g.n, 3);
	assert_string_equal(g.text[0], "cccc");
	journal_get_stats(j, &js);
	assert_int_equal(js.damage.lost, 0);
	assert_int_equal(js.damage.segments, 1);
	assert_int_equal(journal_close(j), 0);
	free(dir);
}

/*
 * The same damage with no witness that it was ever durable (group mode,
 * nothing synced between the records, no later segment) is what a power
 * loss leaves when it keeps a later page and loses an earlier one: a torn
 * tail.  Replaying "cccc" without "bbbb" would leave a gap no writer saw.
 */
static void unsynced_hole_is_a_torn_tail(void **state)
{
	char *dir = jdir(state), seg[4400];
	struct journal_opts o = opts(false, 1 << 20);
	struct journal_stats js;
	struct journal *j;
	struct got g = { .n = 0 };
	uint64_t lsn;
	int fd;

	o.commit_ms = 600000;	/* nothing is synced before the close */
	assert_int_equal(journal_open(dir, 0, &o, collect, &g, &j), 0);
	append_text(j, "aaaa", &lsn);
	append_text(j, "bbbb", &lsn);
	append_text(j, "cccc", &lsn);
	assert_int_equal(journal_close(j), 0);
	snprintf(seg, sizeof(seg), "%s/0000000000000001.jnl", dir);
	fd = open(seg, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "\0\0\0\0", 4, JOURNAL_SEG_HDR + REC(4) + JOURNAL_REC_HDR), 4);	/* a lost page */
	close(fd);

	g.n = 0;
	assert_int_equal(journal_open(dir, 0, &o, collect, &g, &j), 0);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.text[0], "aaaa");
	journal_get_stats(j, &js);
	assert_int_equal(js.damage.lost, 0);
	append_text(j, "dddd", &lsn);
	assert_int_equal(lsn, 2);
	assert_int_equal(journal_close(j), 0);
	free(dir);
}

/* Records written after an fsync carry its mark: damage before it is proven durable. */
static void durable_mark_proves_damage(void **state)
{
	char *dir = jdir(state), seg[4400];
	struct journal_opts o = opts(true, 1 << 20);
	struct journal_stats js;
	struct journal *j;
	struct got g = { .n = 0 };
	uint64_t lsn;
	int fd;

	assert_int_equal(journal_open(dir, 0, &o, collect, &g, &j), 0);
	append_text(j, "aaaa", &lsn);
	append_text(j, "bbbb", &lsn);
	assert_int_equal(journal_wait(j, lsn), 0);
	append_text(j, "cccc", &lsn);
	assert_int_equal(journal_close(j), 0);
	snprintf(seg, sizeof(seg), "%s/0000000000000001.jnl", dir);
	fd = open(seg, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "\0\0\0\0", 4, JOURNAL_SEG_HDR + REC(4) + JOURNAL_REC_HDR), 4);	/* bbbb's payload */
	close(fd);

	g.n = 0;
	assert_int_equal(journal_open(dir, 0, &o, collect, &g, &j), 0);
	assert_int_equal(g.n, 2);
	assert_string_equal(g.text[1], "cccc");
	journal_get_stats(j, &js);
	assert_int_equal(js.damage.lost, 1);
	append_text(j, "dddd", &lsn);
	assert_int_equal(lsn, 4);
	assert_int_equal(journal_close(j), 0);
	free(dir);
}

/* A bad record header (its length gone) is skipped by finding the next record's frame. */
static void bad_record_header_resyncs(void **state)
{
	char *dir = jdir(state), seg[4400];
	struct journal_opts o = opts(true, 1 << 20);
	struct journal *j;
	struct got g = { .n = 0 };
	uint64_t lsn;
	int fd;

	assert_int_equal(journal_open(dir, 0, &o, collect, &g, &j), 0);
	/* each waited for: the next one carries its durable mark */
	for (const char *const *t = (const char *const[]){ "aaaa", "bbbb", "cccc", "dddd", NULL };
	     *t; t++) {
		append_text(j, *t, &lsn);
		assert_int_equal(journal_wait(j, lsn), 0);
	}
	assert_int_equal(journal_close(j), 0);
	snprintf(seg, sizeof(seg), "%s/0000000000000001.jnl", dir);
	fd = open(seg, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "\xff\xff\xff\x7f", 4, JOURNAL_SEG_HDR + REC(4) + 8), 4);	/* bbbb's len */
	close(fd);

	g.n = 0;
	assert_int_equal(journal_open(dir, 0, &o, collect, &g, &j), 0);
	assert_int_equal(g.n, 3);
	assert_string_equal(g.text[1], "cccc");
	assert_string_equal(g.text[2], "dddd");
	assert_int_equal(journal_close(j), 0);
	/* and again: the damaged segment is still there until a trim */
	g.n = 0;
	assert_int_equal(journal_open(dir, 0, &o, collect, &g, &j), 0);
	assert_int_equal(g.n, 3);
	assert_int_equal(journal_close(j), 0);
	free(dir);
}

/*
 * Random damage to a segment of 30 records, each synced before the next
 * was written: whatever the damage (bits flipped, a range zeroed, a cut),
 * replay hands out only what was written, at its lsn, and every record
 * whose bytes are untouched, except those after a damaged last record
 * (a torn tail).  EVL_JOURNAL_DAMAGE_RUNS=N for a longer run.
 */
static void random_damage_costs_only_damaged_records(void **state)
{
	char *dir = jdir(state), seg[4400], text[32];
	struct journal_opts o = opts(true, 1 << 20);
	struct journal *j;
	struct got g = { .n = 0 };
	unsigned char *pristine;
	uint64_t lsn, start[31];
	const char *env = getenv("EVL_JOURNAL_DAMAGE_RUNS");
	long runs = env ? atol(env) : 300;
	unsigned seed = env ? (unsigned)time(NULL) : 15;
	struct stat st;
	size_t size;
	int fd;

	assert_int_equal(journal_open(dir, 0, &o, collect, &g, &j), 0);
	for (int i = 0; i < 30; i++) {
		snprintf(text, sizeof(text), "record-%03d-%.*s", i, i % 7, "xxxxxxx");
		append_text(j, text, &lsn);
		assert_int_equal(journal_wait(j, lsn), 0);
	}
	assert_int_equal(journal_close(j), 0);
	snprintf(seg, sizeof(seg), "%s/0000000000000001.jnl", dir);
	assert_int_equal(stat(seg, &st), 0);
	size = st.st_size;
	pristine = malloc(size);
	fd = open(seg, O_RDONLY);
	assert_int_equal(read(fd, pristine, size), (ssize_t)size);
	close(fd);
	start[0] = JOURNAL_SEG_HDR;
	for (int i = 0; i < 30; i++)
		start[i + 1] = start[i] + JOURNAL_REC_HDR + strlen("record-000-") + i % 7;
	assert_int_equal(start[30], size);
	print_message("seed %u, %ld runs\n", seed, runs);

	for (long run = 0; run < runs; run++) {
		unsigned char *b = malloc(size);
		size_t lo = rand_r(&seed) % size, hi = lo + 1, len = size;
		int kind = rand_r(&seed) % 3;
		bool untouched[30];
		struct dirent *de;
		DIR *d;

		memcpy(b, pristine, size);
		if (kind == 0) {	/* flip bits in a few bytes close together */
			hi = lo + 1 + rand_r(&seed) % 8;
			hi = hi > size ? size : hi;
			for (size_t k = lo; k < hi; k++)
				b[k] ^= 1 << (rand_r(&seed) % 8);
		} else if (kind == 1) {	/* zero a range */
			hi = lo + 1 + rand_r(&seed) % 200;
			hi = hi > size ? size : hi;
			memset(b + lo, 0, hi - lo);
		} else {		/* cut */
			len = lo;
			hi = size;
		}
		for (int i = 0; i < 30; i++)
			untouched[i] = start[i + 1] <= lo || start[i] >= hi;
		/* a fresh journal directory holding only the damaged segment */
		d = opendir(dir);
		assert_non_null(d);
		while ((de = readdir(d))) {
			char p[4500];

			if (de->d_name[0] == '.')
				continue;
			snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
			unlink(p);
		}
		closedir(d);
		fd = open(seg, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, b, len), (ssize_t)len);
		close(fd);
		free(b);

		g.n = 0;
		assert_int_equal(journal_open(dir, 0, &o, collect, &g, &j), 0);
		assert_int_equal(journal_close(j), 0);
		for (size_t k = 0; k < g.n; k++) {
			int i = (int)g.lsn[k] - 1;

			assert_true(i >= 0 && i < 30);
			assert_true(k == 0 || g.lsn[k] > g.lsn[k - 1]);
			snprintf(text, sizeof(text), "record-%03d-%.*s", i, i % 7, "xxxxxxx");
			assert_string_equal(g.text[k], text);
		}
		{
			int last_bad = -1;
			size_t k = 0;

			for (int i = 0; i < 30; i++)
				if (!untouched[i])
					last_bad = i;
			for (int i = 0; i < 30; i++) {
				while (k < g.n && g.lsn[k] < (uint64_t)i + 1)
					k++;
				if (!untouched[i])
					continue;
				if (kind == 2 && i >= last_bad)
					continue;	/* cut off */
				if (k >= g.n || g.lsn[k] != (uint64_t)i + 1)
					fail_msg("run %ld: damage %d at bytes %zu-%zu: record %d is"
						 " untouched but was not replayed", run, kind, lo, hi, i);
			}
		}
	}
	free(pristine);
	free(dir);
}

struct worker {
	struct journal *j;
	int id, n;
};

static void *sync_writer(void *arg)
{
	struct worker *w = arg;
	char buf[32];

	for (int i = 0; i < w->n; i++) {
		struct iovec iov = { buf, 0 };
		uint64_t lsn;

		iov.iov_len = snprintf(buf, sizeof(buf), "w%d %d", w->id, i);
		if (journal_append(w->j, 2, &iov, 1, &lsn) || journal_wait(w->j, lsn))
			return (void *)1;
	}
	return NULL;
}

static void group_commit_shares_fsyncs(void **state)
{
	char *dir = jdir(state);
	struct journal_opts o = opts(true, 1 << 20);
	struct journal_stats js;
	struct journal *j;
	struct got g = { .n = 0 };
	pthread_t th[8];
	struct worker w[8];
	int next[8] = { 0 };

	assert_int_equal(journal_open(dir, 0, &o, collect, &g, &j), 0);
	for (int i = 0; i < 8; i++) {
		w[i] = (struct worker){ j, i, 200 };
		pthread_create(&th[i], NULL, sync_writer, &w[i]);
	}
	for (int i = 0; i < 8; i++) {
		void *r;

		pthread_join(th[i], &r);
		assert_null(r);
	}
	journal_get_stats(j, &js);
	assert_int_equal(js.durable_lsn, 1600);
	/* concurrent waiters shared fsyncs */
	assert_true(js.fsyncs < 1600);
	print_message("1600 sync appends from 8 threads: %llu fsyncs\n",
		      (unsigned long long)js.fsyncs);
	assert_int_equal(journal_close(j), 0);

	assert_int_equal(journal_open(dir, 0, &o, collect, &g, &j), 0);
	assert_int_equal(g.n, 1600);
	for (size_t i = 0; i < g.n; i++) {
		int id, k;

		assert_int_equal(sscanf(g.text[i], "w%d %d", &id, &k), 2);
		assert_int_equal(k, next[id]);	/* each writer's order kept */
		next[id]++;
	}
	assert_int_equal(journal_close(j), 0);
	free(dir);
}

static void group_mode_syncs_within_commit_ms(void **state)
{
	char *dir = jdir(state);
	struct journal_opts o = opts(false, 1 << 20);
	struct journal_stats js;
	struct journal *j;
	uint64_t lsn, deadline;

	assert_int_equal(journal_open(dir, 0, &o, NULL, NULL, &j), 0);
	append_text(j, "x", &lsn);
	deadline = tu_now_ms() + 120000;	/* generous: ASan on a busy box */
	do {
		journal_get_stats(j, &js);
	} while (js.durable_lsn < lsn && tu_now_ms() < deadline);
	assert_int_equal(js.durable_lsn, lsn);
	append_text(j, "y", &lsn);
	assert_int_equal(journal_barrier(j), 0);
	journal_get_stats(j, &js);
	assert_int_equal(js.durable_lsn, lsn);
	assert_int_equal(journal_close(j), 0);
	free(dir);
}

static void failed_write_is_cut_back(void **state)
{
	char *dir = jdir(state), seg[4400];
	struct journal_opts o = opts(false, 1 << 20);
	struct journal *j;
	struct got g = { .n = 0 };
	struct iovec iov = { "payload-that-fails", 18 };
	struct stat before, after;
	uint64_t lsn;

	fio_install();
	assert_int_equal(journal_open(dir, 0, &o, NULL, NULL, &j), 0);
	append_text(j, "good1", &lsn);
	last_segment(dir, seg, sizeof(seg), 0);
	stat(seg, &before);
	/* a transient short write is completed by the retry */
	fio_fail(FIO_WRITE, 0, ENOSPC, false);
	append_text(j, "short", &lsn);
	stat(seg, &before);
	/* a full disk: short writes, then ENOSPC */
	fio_fail(FIO_WRITE, 0, ENOSPC, true);
	assert_int_equal(journal_append(j, 2, &iov, 1, &lsn), -ENOSPC);
	fio_clear();
	stat(seg, &after);
	assert_int_equal(after.st_size, before.st_size);	/* nothing partial */
	fio_fail(FIO_WRITE, 0, EIO, false);
	assert_int_equal(journal_append(j, 2, &iov, 1, &lsn), -EIO);
	append_text(j, "good2", &lsn);	/* resumes */
	assert_int_equal(lsn, 3);
	assert_int_equal(journal_close(j), 0);
	fio_uninstall();

	assert_int_equal(journal_open(dir, 0, &o, collect, &g, &j), 0);
	assert_int_equal(g.n, 3);
	assert_string_equal(g.text[1], "short");
	assert_string_equal(g.text[2], "good2");
	assert_int_equal(journal_close(j), 0);
	free(dir);
}

static void failed_fsync_is_sticky(void **state)
{
	char *dir = jdir(state);
	struct journal_opts o = opts(true, 1 << 20);
	struct journal *j;
	struct got g = { .n = 0 };
	struct journal_stats js;
	uint64_t lsn;

	fio_install();
	assert_int_equal(journal_open(dir, 0, &o, NULL, NULL, &j), 0);
	append_text(j, "durable", &lsn);
	assert_int_equal(journal_wait(j, lsn), 0);
	append_text(j, "maybe", &lsn);
	fio_fail(FIO_SYNC, 0, EIO, false);
	assert_int_equal(journal_wait(j, lsn), -EIO);
	/* the fault is gone but the state stays: the kernel may have dropped pages */
	{
		struct iovec iov = { "later", 5 };

		assert_int_equal(journal_append(j, 2, &iov, 1, &lsn), -EIO);
	}
	assert_int_equal(journal_barrier(j), -EIO);
	journal_get_stats(j, &js);
	assert_int_equal(js.error, EIO);
	assert_int_equal(journal_close(j), -EIO);
	fio_uninstall();

	/* reopening recovers what was acknowledged as durable */
	assert_int_equal(journal_open(dir, 0, &o, collect, &g, &j), 0);
	assert_true(g.n >= 1);
	assert_string_equal(g.text[0], "durable");
	assert_int_equal(journal_close(j), 0);
	free(dir);
}

static int count_segments(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int n = 0;

	while ((de = readdir(d)))
		n += strstr(de->d_name, ".jnl") != NULL;
	closedir(d);
	return n;
}

static void trim_drops_applied_segments(void **state)
{
	char *dir = jdir(state);
	struct journal_opts o = opts(false, 4096);
	struct journal_stats js;
	struct journal *j;
	struct got g = { .n = 0 };
	char buf[200];
	uint64_t lsn;

	memset(buf, 'z', sizeof(buf) - 1);
	buf[sizeof(buf) - 1] = '\0';
	assert_int_equal(journal_open(dir, 0, &o, NULL, NULL, &j), 0);
	for (int i = 0; i < 200; i++)
		append_text(j, buf, &lsn);
	assert_true(count_segments(dir) > 5);
	assert_int_equal(journal_barrier(j), 0);
	assert_int_equal(journal_trim(j, 150), 0);
	journal_get_stats(j, &js);
	assert_true(js.bytes < 60 * 240);
	assert_int_equal(journal_close(j), 0);

	assert_int_equal(journal_open(dir, 150, &o, collect, &g, &j), 0);
	assert_int_equal(g.n, 50);
	assert_int_equal(g.lsn[0], 151);
	assert_int_equal(journal_trim(j, 200), 0);
	assert_int_equal(count_segments(dir), 1);
	append_text(j, "next", &lsn);
	assert_int_equal(lsn, 201);
	assert_int_equal(journal_close(j), 0);
	free(dir);
}

static int count_files(const char *dir, const char *part)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		n += strstr(de->d_name, part) != NULL;
	closedir(d);
	return n;
}

/*
 * check_end: an intact journal that ends before the caller's position
 * (its last record; an empty newest segment: the lsn before its name) is
 * refused, nothing changed; one at or past it opens.  A journal with no
 * segment has no end to judge.
 */
static void a_journal_ending_before_the_position_is_refused(void **state)
{
	char *dir = jdir(state);
	struct journal_opts o = opts(true, 1 << 20);
	struct got g = { .n = 0 };
	struct journal *j;
	uint64_t lsn;

	o.check_end = true;
	assert_int_equal(journal_open(dir, 100, &o, collect, &g, &j), 0);	/* no segment */
	assert_int_equal(journal_close(j), 0);
	tu_rmrf(dir);
	assert_int_equal(journal_open(dir, 0, &o, collect, &g, &j), 0);
	append_text(j, "aaaa", &lsn);
	append_text(j, "bbbb", &lsn);
	append_text(j, "cccc", &lsn);
	assert_int_equal(journal_close(j), 0);
	assert_int_equal(journal_open(dir, 4, &o, collect, &g, &j), -EUCLEAN);
	o.min_lsn = 100;
	assert_int_equal(journal_open(dir, 2, &o, collect, &g, &j), -EUCLEAN);
	assert_int_equal(count_files(dir, ".jnl"), 1);	/* no segment made, nothing cut */
	o.min_lsn = 3;
	g.n = 0;
	assert_int_equal(journal_open(dir, 2, &o, collect, &g, &j), 0);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.text[0], "cccc");
	assert_int_equal(journal_close(j), 0);
	/* the newest segment is the empty one that open made: it ends at 3 */
	o.min_lsn = 0;
	assert_int_equal(count_files(dir, ".jnl"), 2);
	assert_int_equal(journal_open(dir, 4, &o, collect, &g, &j), -EUCLEAN);
	assert_int_equal(journal_open(dir, 3, &o, collect, &g, &j), 0);
	append_text(j, "dddd", &lsn);
	assert_int_equal(lsn, 4);
	assert_int_equal(journal_close(j), 0);
	free(dir);
}

/*
 * The journal in @dir (a copy kept as @dir.0), opened at @from: whatever
 * step a crash stops the open at (and ENOSPC opening segment @next, EIO
 * writing or syncing it: a failed header must not remove a segment made
 * anew in place), the next open is not refused (check_end) and goes on
 * at lsn @next.
 */
static void open_survives_a_crash_at_every_step(const char *dir, uint64_t from, uint64_t next)
{
	struct journal_opts o = opts(true, 1 << 20);
	char cmd[9000], name[64];
	struct journal *j;
	uint64_t lsn;
	int crashed = 1;

	o.check_end = true;
	snprintf(name, sizeof(name), "%016" PRIx64 ".jnl", next);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s.0' && cp -a '%s' '%s.0'", dir, dir, dir);
	assert_int_equal(system(cmd), 0);
	for (long n = -3; n < 0 || crashed; n++) {
		int status;
		pid_t pid;

		snprintf(cmd, sizeof(cmd), "rm -rf '%s' && cp -a '%s.0' '%s'", dir, dir, dir);
		assert_int_equal(system(cmd), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			int rc;

			fio_install();
			if (n == -3)
				fio_fail_path(FIO_OPEN, name, ENOSPC);
			else if (n == -2)
				fio_fail_path(FIO_WRITE, name, EIO);
			else if (n == -1)
				fio_fail_path(FIO_SYNC, name, EIO);
			else
				fio_crash_at(n, 42);
			rc = journal_open(dir, from, &o, NULL, NULL, &j);
			if (n < 0 && rc)
				_exit(42);	/* failed as made to */
			if (rc || journal_close(j))
				_exit(2);
			_exit(0);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		if (WEXITSTATUS(status) != 0 && WEXITSTATUS(status) != 42)
			fail_msg("step %ld: the open failed (exit %d)", n, WEXITSTATUS(status));
		crashed = WEXITSTATUS(status) == 42;
		assert_int_equal(journal_open(dir, from, &o, NULL, NULL, &j), 0);
		append_text(j, "dddd", &lsn);
		assert_int_equal(lsn, next);
		assert_int_equal(journal_close(j), 0);
		assert_int_equal(journal_open(dir, next, &o, NULL, NULL, &j), 0);
		assert_int_equal(journal_close(j), 0);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s.0'", dir);
	assert_int_equal(system(cmd), 0);
}

/* Three records, lsns 1-3, the last one's payload zeroed. */
static void three_records_the_last_damaged(const char *dir)
{
	struct journal_opts o = opts(true, 1 << 20);
	struct journal *j;
	char seg[4400];
	uint64_t lsn;
	int fd;

	assert_int_equal(journal_open(dir, 0, &o, NULL, NULL, &j), 0);
	append_text(j, "aaaa", &lsn);
	append_text(j, "bbbb", &lsn);
	append_text(j, "cccc", &lsn);
	assert_int_equal(journal_close(j), 0);
	snprintf(seg, sizeof(seg), "%s/0000000000000001.jnl", dir);
	fd = open(seg, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "\0\0\0\0", 4, JOURNAL_SEG_HDR + REC(4) + REC(4) + JOURNAL_REC_HDR), 4);	/* cccc's payload */
	close(fd);
}

/*
 * A damaged last record at or before the position (proven damage, not a
 * torn tail) is cut: the journal would then end before the position, and
 * a crash or a full disk before its next segment was made left a journal
 * that check_end calls wrong (a false "damaged index").  The next segment
 * is made before the cut (how 0: applied 3; how 1: applied 5, which
 * leaves a gap before the new segment 6).
 */
static void a_cut_below_the_position_never_seems_behind(void **state)
{
	char *dir = jdir(state);

	three_records_the_last_damaged(dir);
	open_survives_a_crash_at_every_step(dir, 3, 4);
	tu_rmrf(dir);
	three_records_the_last_damaged(dir);
	open_survives_a_crash_at_every_step(dir, 5, 6);
	free(dir);
}

/*
 * A last segment with a bad header and no record set aside: the same,
 * for its successor.  How 0: segment 6 after a gap (a cut like the one
 * above made it), emptied by a crash as an open made it anew (O_TRUNC
 * before its header): the successor takes its name, so it is made again
 * in place, never renamed away first.  How 1: its header damaged, applied
 * 7 (past its name): the successor 8 is made before it is set aside.
 */
static void a_set_aside_segment_never_leaves_the_journal_behind(void **state)
{
	struct journal_opts o = opts(true, 1 << 20);
	char *dir = jdir(state), seg[4400];
	struct journal *j;

	for (int how = 0; how < 2; how++) {
		int fd;

		three_records_the_last_damaged(dir);
		o.check_end = true;
		assert_int_equal(journal_open(dir, 5, &o, NULL, NULL, &j), 0);
		assert_int_equal(journal_close(j), 0);
		snprintf(seg, sizeof(seg), "%s/0000000000000006.jnl", dir);
		if (how == 0) {
			assert_int_equal(truncate(seg, 0), 0);
			open_survives_a_crash_at_every_step(dir, 5, 6);
		} else {
			fd = open(seg, O_RDWR);
			assert_true(fd >= 0);
			assert_int_equal(pwrite(fd, "X", 1, 3), 1);
			close(fd);
			open_survives_a_crash_at_every_step(dir, 7, 8);
		}
		tu_rmrf(dir);
	}
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(replays_in_order, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(torn_tail_is_cut, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(corrupt_byte_costs_only_its_record, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(unsynced_hole_is_a_torn_tail, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(durable_mark_proves_damage, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(bad_record_header_resyncs, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(random_damage_costs_only_damaged_records, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(group_commit_shares_fsyncs, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(group_mode_syncs_within_commit_ms, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(failed_write_is_cut_back, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(failed_fsync_is_sticky, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(trim_drops_applied_segments, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(a_journal_ending_before_the_position_is_refused,
						tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(a_cut_below_the_position_never_seems_behind, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(a_set_aside_segment_never_leaves_the_journal_behind,
						tu_setup, tu_teardown),
	};

	return cmocka_run_group_tests_name("journal", tests, NULL, NULL);
}
