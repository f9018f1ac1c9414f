/* Unit tests: task logs, sidecars and the descriptor cache. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <xxhash.h>

#include "fio.h"
#include "tasklog.h"
#include "testutil.h"

/*
 * DATA_DIR/format with a flipped bit (the damage sweep: "evlogfs-format 6")
 * is damage, not a newer format: the sidecars are looked at and the file
 * written again.  A well-formed line of a newer format is refused.
 */
static void a_damaged_format_file_is_rewritten(void **state)
{
	char path[4200], buf[64], why[300];
	const char *dir = *state;
	FILE *f;

	assert_int_equal(tasklog_format_check(dir, true, false, why, sizeof(why)), 0);
	snprintf(path, sizeof(path), "%s/format", dir);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	buf[15] ^= 4;		/* "2" -> "6" */
	f = fopen(path, "w");
	fputs(buf, f);
	fclose(f);
	assert_int_equal(tasklog_format_check(dir, false, false, why, sizeof(why)), 0);
	assert_int_equal(tasklog_format_check(dir, true, false, why, sizeof(why)), 0);
	f = fopen(path, "r");
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	assert_int_equal(strncmp(buf, "evlogfs-format 2 ", 17), 0);
	/* a newer format, as its evlogfs would write it */
	{
		char line[64];
		int head = snprintf(line, sizeof(line), "evlogfs-format 3");

		snprintf(line + head, sizeof(line) - head, " %08x\n", XXH32(line, head, 0));
		f = fopen(path, "w");
		fputs(line, f);
		fclose(f);
	}
	assert_int_equal(tasklog_format_check(dir, true, false, why, sizeof(why)), -EPROTO);
	assert_non_null(strstr(why, "newer format"));
}

/*
 * A batch written before a crash, its index commit lost, then a bit of its
 * log bytes flipped on disk (the damage sweep, seed 80002 case 1037): its
 * records are there in full, vouching for the replay's bytes.  The replay
 * writes them again (before: EUCLEAN, the task set aside and its
 * acknowledged events put in events.unapplied).  Lines from outside come
 * without records: still refused (write_only_at_the_files_end).
 */
static void a_damaged_batch_past_the_index_is_written_again(void **state)
{
	const char ev[] = "{\"type\":\"a\",\"i\":1}\n";
	char dir[4200], path[4400], got[64];
	struct tasklog_rec r = { 5, 7, sizeof(ev) - 1, 0 };
	struct tasklog *tl;
	FILE *f;

	snprintf(dir, sizeof(dir), "%s/tasks", (char *)*state);
	assert_int_equal(tasklog_open(*state, 4, &tl), 0);
	assert_int_equal(tasklog_create(tl, 1, "t", NULL), 0);
	assert_int_equal(tasklog_write(tl, 1, "t", 0, ev, sizeof(ev) - 1, 0, &r, 1, 0), 0);
	tasklog_close(tl);
	snprintf(path, sizeof(path), "%s/t/events", dir);
	f = fopen(path, "r+");
	assert_non_null(f);
	fseek(f, 16, SEEK_SET);
	fputc('7', f);		/* "1" -> "7" */
	fclose(f);
	assert_int_equal(tasklog_open(*state, 4, &tl), 0);
	assert_int_equal(tasklog_write(tl, 1, "t", 0, ev, sizeof(ev) - 1, 0, &r, 1, 0), 0);
	assert_int_equal(tasklog_read(tl, 1, "t", 0, got, sizeof(got)), sizeof(ev) - 1);
	assert_memory_equal(got, ev, sizeof(ev) - 1);
	/* another record there (another batch's): refused as before */
	r.gseq = 6;
	assert_int_equal(tasklog_write(tl, 1, "t", 0, ev, sizeof(ev) - 1, 0, &r, 1, 0), -EUCLEAN);
	tasklog_close(tl);
}

/*
 * A retried batch finds its own bytes past the index's end and must read
 * them to know: a read that fails there (a failing disk) is that error,
 * not damage (EUCLEAN would set the task aside for good; found by the
 * recovery fault sweep, faults_in_recovery, "read EIO").  The retry once
 * the disk reads again succeeds.
 */
static void a_failing_read_of_the_tail_is_not_damage(void **state)
{
	const char ev[] = "{\"type\":\"a\"}\n";
	struct tasklog_rec r = { 1, 7, sizeof(ev) - 1, 0 };
	struct tasklog *tl;

	assert_int_equal(tasklog_open(*state, 4, &tl), 0);
	assert_int_equal(tasklog_create(tl, 1, "t", NULL), 0);
	assert_int_equal(tasklog_write(tl, 1, "t", 0, ev, sizeof(ev) - 1, 0, &r, 1, 0), 0);
	fio_install();
	fio_fail_path(FIO_READ, "/events", EIO);
	assert_int_equal(tasklog_write(tl, 1, "t", 0, ev, sizeof(ev) - 1, 0, &r, 1, 0), -EIO);
	fio_clear();
	fio_uninstall();
	assert_int_equal(tasklog_write(tl, 1, "t", 0, ev, sizeof(ev) - 1, 0, &r, 1, 0), 0);
	tasklog_close(tl);
}

/*
 * A write lands only where the files end: a log cut short (or grown
 * outside the store) gets no hole of zeros and loses no lines.
 */
static void write_only_at_the_files_end(void **state)
{
	const char ev[] = "{\"type\":\"a\"}\n", extra[] = "{\"type\":\"x\"}\n";
	char dir[4200], path[4400], got[64];
	struct tasklog_rec r = { 1, 7, sizeof(ev) - 1, 0 };
	struct tasklog *tl;
	uint64_t l, c;
	FILE *f;

	snprintf(dir, sizeof(dir), "%s/tasks", (char *)*state);
	assert_int_equal(tasklog_open(*state, 4, &tl), 0);
	assert_int_equal(tasklog_create(tl, 1, "t", NULL), 0);
	assert_int_equal(tasklog_write(tl, 1, "t", 0, ev, sizeof(ev) - 1, 0, &r, 1, 0), 0);
	/* cut short on disk: the next write at the index's offset is refused */
	snprintf(path, sizeof(path), "%s/t/events", dir);
	assert_int_equal(truncate(path, 5), 0);
	r.gseq = 2;
	assert_int_equal(tasklog_write(tl, 1, "t", sizeof(ev) - 1, ev, sizeof(ev) - 1, 1, &r, 1, 0),
			 -EUCLEAN);
	assert_int_equal(tasklog_sizes(tl, "t", &l, &c), 0);
	assert_int_equal(l, 5);
	assert_int_equal(c, 1);
	/* grown outside the store: refused, the line stays */
	assert_int_equal(truncate(path, 0), 0);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(ev, f);
	fputs(extra, f);
	fclose(f);
	assert_int_equal(tasklog_write(tl, 1, "t", sizeof(ev) - 1, ev, sizeof(ev) - 1, 1, &r, 1, 0),
			 -EUCLEAN);
	assert_int_equal(tasklog_read(tl, 1, "t", sizeof(ev) - 1, got, sizeof(got)),
			 sizeof(extra) - 1);
	assert_memory_equal(got, extra, sizeof(extra) - 1);
	/* the rescue file takes what could not be written */
	assert_int_equal(tasklog_rescue(tl, "t", ev, sizeof(ev) - 1), 0);
	assert_int_equal(tasklog_rescue(tl, "t", ev, sizeof(ev) - 1), 0);
	snprintf(path, sizeof(path), "%s/t/events.unapplied", dir);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_int_equal(fread(got, 1, sizeof(got), f), 2 * (sizeof(ev) - 1));
	fclose(f);
	tasklog_close(tl);
}

static void write_read_with_a_small_cache(void **state)
{
	char dir[4200], name[16], buf[64];
	struct tasklog *tl;
	uint64_t len[6] = { 0 }, n[6] = { 0 };

	snprintf(dir, sizeof(dir), "%s/tasks", (char *)*state);
	assert_int_equal(tasklog_open(*state, 2, &tl), 0);	/* 2 descriptors for 5 tasks */
	for (uint64_t u = 1; u <= 5; u++) {
		snprintf(name, sizeof(name), "task%d", (int)u);
		assert_int_equal(tasklog_create(tl, u, name, NULL), 0);
	}
	for (int round = 0; round < 20; round++)
		for (uint64_t u = 1; u <= 5; u++) {
			struct tasklog_rec r = { 100 * round + u, 7, 0, 0 };
			int k = snprintf(buf, sizeof(buf), "{\"r\":%d,\"u\":%d}\n", round, (int)u);

			r.len = k;
			snprintf(name, sizeof(name), "task%d", (int)u);
			assert_int_equal(tasklog_write(tl, u, name, len[u], buf, k, n[u], &r, 1, 0), 0);
			len[u] += k;
			n[u]++;
		}
	for (uint64_t u = 1; u <= 5; u++) {
		struct tasklog_rec recs[20];
		uint64_t l, c;
		char got[32];

		snprintf(name, sizeof(name), "task%d", (int)u);
		assert_int_equal(tasklog_sizes(tl, name, &l, &c), 0);
		assert_int_equal(l, len[u]);
		assert_int_equal(c, 20);
		assert_int_equal(tasklog_read_recs(tl, u, name, 0, recs, 20), 20);
		assert_int_equal(recs[19].gseq, 1900 + u);
		assert_int_equal(tasklog_read(tl, u, name, 0, got, 14), 14);
		snprintf(buf, sizeof(buf), "{\"r\":0,\"u\":%d}", (int)u);
		assert_memory_equal(got, buf, 13);
		assert_int_equal(got[13], '\n');
		assert_int_equal(tasklog_sync(tl, u, name), 0);
	}
	/* cut back, then remove and purge */
	assert_int_equal(tasklog_truncate(tl, 3, "task3", 15, 1), 0);
	{
		uint64_t l, c;

		assert_int_equal(tasklog_sizes(tl, "task3", &l, &c), 0);
		assert_int_equal(l, 15);
		assert_int_equal(c, 1);
	}
	assert_int_equal(tasklog_remove(tl, 3, "task3"), 0);
	assert_int_equal(tasklog_remove(tl, 3, "task3"), 0);	/* again after a crash */
	assert_true(tasklog_read(tl, 3, "task3", 0, buf, 4) < 0);
	assert_int_equal(tasklog_create(tl, 6, "task3", NULL), 0);	/* the name is free */
	assert_int_equal(tasklog_purge(tl, 3), 0);
	assert_int_equal(tasklog_purge(tl, 3), 0);
	{
		char trash[4400];
		struct stat st;

		snprintf(trash, sizeof(trash), "%s/.trash-%016x", dir, 3);
		assert_int_not_equal(stat(trash, &st), 0);
	}
	tasklog_close(tl);
}

static void sidecar_records_are_checked(void **state)
{
	struct tasklog_rec r = { 0x1122334455667788ull, 99, 200, 0xabcdef01 }, back;
	unsigned char enc[TASKLOG_REC];

	tasklog_encode(&r, enc);
	assert_int_equal(tasklog_decode(enc, &back), 0);
	assert_int_equal(back.gseq, r.gseq);
	assert_int_equal(back.time_ns, 99);
	assert_int_equal(back.len, 200);
	enc[3] ^= 1;
	assert_int_equal(tasklog_decode(enc, &back), -EILSEQ);
}

/* ---- the descriptor cache under the open-file limit ---- */

/*
 * Make tasks 1..@n named "t<uid>", each holding one event "{\"u\":<uid>}\n",
 * and return a task area with @slots cache slots, none of them in use yet.
 */
static struct tasklog *open_tasks(void **state, unsigned slots, unsigned n)
{
	char name[16], ev[32];
	struct tasklog *tl;

	assert_int_equal(tasklog_open(*state, slots, &tl), 0);
	for (uint64_t u = 1; u <= n; u++) {
		struct tasklog_rec r = { u, 1, 0, 0 };

		snprintf(name, sizeof(name), "t%d", (int)u);
		r.len = snprintf(ev, sizeof(ev), "{\"u\":%d}\n", (int)u);
		assert_int_equal(tasklog_create(tl, u, name, NULL), 0);
		assert_int_equal(tasklog_write(tl, u, name, 0, ev, r.len, 0, &r, 1, 0), 0);
	}
	tasklog_close(tl);
	assert_int_equal(tasklog_open(*state, slots, &tl), 0);
	return tl;
}

/* Read task @u's event back: 0 if right, else the read's result. */
static ssize_t read_task(struct tasklog *tl, uint64_t u)
{
	char name[16], want[32], got[32];
	int len = snprintf(want, sizeof(want), "{\"u\":%d}\n", (int)u);
	ssize_t n;

	snprintf(name, sizeof(name), "t%d", (int)u);
	n = tasklog_read(tl, u, name, 0, got, sizeof(got));
	if (n < 0)
		return n;
	return n == len && !memcmp(got, want, len) ? 0 : -EILSEQ;
}

static long open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	long n = 0;

	assert_non_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n - 3;	/* ".", ".." and the listing's own */
}

static void emfile_sheds_the_least_recently_used(void **state)
{
	struct tasklog *tl = open_tasks(state, 8, 5);
	long opens;

	fio_install();
	for (uint64_t u = 1; u <= 4; u++)
		assert_int_equal(read_task(tl, u), 0);	/* 1..4 cached, 1 the oldest */
	assert_int_equal(tasklog_shed_count(tl), 0);
	/* the open of task 5's log hits the limit once: task 1's descriptor goes */
	fio_fail(FIO_OPEN, 0, EMFILE, false);
	assert_int_equal(read_task(tl, 5), 0);
	assert_int_equal(fio_failed(), 1);
	assert_int_equal(tasklog_shed_count(tl), 1);
	opens = fio_count(FIO_OPEN);
	for (uint64_t u = 2; u <= 5; u++)
		assert_int_equal(read_task(tl, u), 0);
	assert_int_equal(fio_count(FIO_OPEN), opens);	/* still cached */
	assert_int_equal(read_task(tl, 1), 0);
	assert_int_equal(fio_count(FIO_OPEN), opens + 1);	/* opened again */
	/* ENFILE (the system's table) is treated alike; the sidecar's open too */
	fio_fail(FIO_OPEN, 0, ENFILE, false);
	{
		struct tasklog_rec r = { 99, 1, 8, 0 };

		assert_int_equal(tasklog_write(tl, 2, "t2", 8, "{\"x\":1}\n", 8, 1, &r, 1, 0), 0);
	}
	assert_int_equal(tasklog_shed_count(tl), 2);
	/* other errors are not the limit: nothing is shed, the error is told */
	fio_fail(FIO_OPEN, 0, EACCES, false);
	tasklog_close(tl);
	tl = open_tasks(state, 8, 0);
	assert_int_equal(read_task(tl, 3), -EACCES);
	assert_int_equal(tasklog_shed_count(tl), 0);
	tasklog_close(tl);
}

static void emfile_with_nothing_to_shed_fails_at_once(void **state)
{
	struct tasklog *tl = open_tasks(state, 4, 6);
	struct tasklog_file *pins[4];
	char name[16], buf[32];

	fio_install();
	for (uint64_t u = 1; u <= 4; u++)
		assert_int_equal(read_task(tl, u), 0);
	/* the limit for good: every idle descriptor goes, then the error is told */
	fio_fail(FIO_OPEN, 0, EMFILE, true);
	assert_int_equal(read_task(tl, 5), -EMFILE);
	assert_int_equal(tasklog_shed_count(tl), 4);
	fio_clear();
	/* every slot pinned: nothing may be closed under a reader; no wait for a slot */
	for (uint64_t u = 1; u <= 4; u++) {
		snprintf(name, sizeof(name), "t%d", (int)u);
		assert_int_equal(tasklog_pin(tl, u, name, &pins[u - 1]), 0);
	}
	fio_fail(FIO_OPEN, 0, EMFILE, true);
	assert_int_equal(read_task(tl, 6), -EMFILE);
	assert_int_equal(tasklog_shed_count(tl), 4);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(tasklog_pread(pins[i], 0, buf, sizeof(buf)), 8);
		tasklog_unpin(tl, pins[i]);
	}
	fio_clear();
	assert_int_equal(read_task(tl, 6), 0);	/* the limit lifted: works again */
	tasklog_close(tl);
}

static void the_cache_stays_under_the_open_file_limit(void **state)
{
	struct rlimit saved, rl;
	struct tasklog *tl;
	long base = open_fds();

	/*
	 * 200 slots (up to 400 descriptors) for 150 tasks, under a soft limit of
	 * base + 64: the cache may hold the limit less the headroom (32 here).
	 */
	tl = open_tasks(state, 200, 150);
	tasklog_close(tl);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
	rl = saved;
	rl.rlim_cur = base + 64;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	assert_int_equal(tasklog_fd_room(), base + 64 - 32);
	tl = open_tasks(state, 200, 0);
	for (int round = 0; round < 2; round++)
		for (uint64_t u = 1; u <= 150; u++) {
			ssize_t rc = read_task(tl, u);

			if (rc) {
				setrlimit(RLIMIT_NOFILE, &saved);
				fail_msg("round %d task %d: %s", round, (int)u, strerror((int)-rc));
			}
			/* the others keep their headroom */
			if (open_fds() - base > (long)rl.rlim_cur - 32) {
				setrlimit(RLIMIT_NOFILE, &saved);
				fail_msg("%ld descriptors open, limit %ld", open_fds(),
					 (long)rl.rlim_cur);
			}
		}
	assert_true(tasklog_shed_count(tl) > 0);
	tasklog_close(tl);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
}

/*
 * A trash of the uid left by an earlier try (a create that was not to be
 * applied, moved aside by a batch that then failed) does not stop a
 * remove: it is emptied first.  Once made the open after a crash fail
 * with ENOTEMPTY.
 */
static void remove_over_a_stale_trash(void **state)
{
	char dir[4200], path[4400];
	struct tasklog *tl;
	struct stat sb;
	FILE *f;

	snprintf(dir, sizeof(dir), "%s/tasks", (char *)*state);
	assert_int_equal(tasklog_open(*state, 4, &tl), 0);
	assert_int_equal(tasklog_create(tl, 3, "x", NULL), 0);
	snprintf(path, sizeof(path), "%s/.trash-%016x", dir, 3);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/.trash-%016x/events", dir, 3);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("stale\n", f);
	fclose(f);
	assert_int_equal(tasklog_remove(tl, 3, "x"), 0);
	snprintf(path, sizeof(path), "%s/x", dir);
	assert_int_equal(stat(path, &sb), -1);
	snprintf(path, sizeof(path), "%s/.trash-%016x/events", dir, 3);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_size, 0);	/* the task's (empty) log, not the stale one */
	assert_int_equal(tasklog_purge(tl, 3), 0);
	tasklog_close(tl);
}

/*
 * Review rev-v2: the proven-offset table (vents in sidecar.c): entries for
 * thousands of uids, set by tasklog_verify and dropped by
 * tasklog_verify_forget in random order (growth from 256 slots, backward-
 * shift deletion across clusters and the wrap).  A probe (upto 0) reads an
 * entry without touching any file: each uid must be proven exactly as long
 * as it was not forgotten.  All uids share one task's files.
 */
static void verify_table_round(struct tasklog *tl, uint64_t n, int rounds, unsigned *seed,
			       bool *live, uint32_t len)
{
	char why[256];

	for (int round = 0; round < rounds; round++) {
		for (uint64_t u = 1; u <= n; u++) {
			unsigned x = rand_r(seed) % 3;

			if (x == 0) {
				uint64_t proven = 0;

				assert_int_equal(tasklog_verify(tl, u, "t", 0, 0, len, len, &proven, why,
								sizeof(why)), 0);
				assert_int_equal(proven, len);
				live[u] = true;
			} else if (x == 1) {
				tasklog_verify_forget(tl, u);
				live[u] = false;
			}
		}
		for (uint64_t u = 1; u <= n; u++) {
			uint64_t proven = 99;

			assert_int_equal(tasklog_verify(tl, u, "t", 0, 0, len, 0, &proven, why,
							sizeof(why)), 0);
			if (proven != (live[u] ? len : 0))
				fail_msg("n %" PRIu64 " round %d uid %" PRIu64 ": proven %" PRIu64
					 ", live %d", n, round, u, proven, live[u]);
		}
	}
}

static void verify_table_keeps_every_entry(void **state)
{
	enum { N = 3000 };
	const char ev[] = "{\"u\":1}\n";
	struct tasklog_rec r = { 1, 1, sizeof(ev) - 1, 0 };
	static bool live[N + 1];
	struct tasklog *tl;
	unsigned seed = 4242;

	assert_int_equal(tasklog_open(*state, 16, &tl), 0);
	assert_int_equal(tasklog_create(tl, 1, "t", NULL), 0);
	assert_int_equal(tasklog_write(tl, 1, "t", 0, ev, r.len, 0, &r, 1, 0), 0);
	memset(live, 0, sizeof(live));
	/* up to 127 live uids: the table stays at 256 slots, at most half full (wraps often) */
	verify_table_round(tl, 127, 400, &seed, live, r.len);
	/* then thousands: growth, and deletes in a large table */
	verify_table_round(tl, N, 10, &seed, live, r.len);
	tasklog_close(tl);
}

/*
 * A bad sidecar record past the events the index has (a batch a failed
 * write left, not yet cut back) does not make the events before it
 * unproven: only a bad record an indexed event needs is damage (found in
 * review: reading 256 records at once failed on any of them).
 */
static void a_bad_record_past_the_index_is_not_damage(void **state)
{
	const char ev[] = "{\"u\":1}\n";
	struct tasklog_rec r[3] = { { 1, 1, sizeof(ev) - 1, 0 }, { 2, 1, sizeof(ev) - 1, 0 },
				    { 3, 1, sizeof(ev) - 1, 0 } };
	unsigned char junk[TASKLOG_REC];
	char dir[4200], path[4400], why[256] = "", data[64];
	struct tasklog *tl;
	uint64_t proven = 0, len = 2 * r[0].len;
	int fd;

	snprintf(dir, sizeof(dir), "%s/tasks", (char *)*state);
	assert_int_equal(tasklog_open(*state, 16, &tl), 0);
	assert_int_equal(tasklog_create(tl, 1, "t", NULL), 0);
	memcpy(data, ev, r[0].len);
	memcpy(data + r[0].len, ev, r[0].len);
	memcpy(data + 2 * r[0].len, ev, r[0].len);
	assert_int_equal(tasklog_write(tl, 1, "t", 0, data, 3 * r[0].len, 0, r, 3, 0), 0);
	/* the third record damaged; the index has two events */
	memset(junk, 0xa5, sizeof(junk));
	snprintf(path, sizeof(path), "%s/t/events.meta", dir);
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, junk, sizeof(junk), 2 * TASKLOG_REC), (ssize_t)sizeof(junk));
	close(fd);
	assert_int_equal(tasklog_verify(tl, 1, "t", 0, 0, len, len, &proven, why, sizeof(why)), 0);
	assert_int_equal(proven, len);
	/* the second one damaged: that is damage, and named */
	tasklog_verify_forget(tl, 1);
	fd = open(path, O_WRONLY);
	assert_int_equal(pwrite(fd, junk, sizeof(junk), TASKLOG_REC), (ssize_t)sizeof(junk));
	close(fd);
	assert_int_equal(tasklog_verify(tl, 1, "t", 0, 0, len, len, &proven, why, sizeof(why)),
			 -EILSEQ);
	assert_string_equal(why, "its sidecar record 2 does not check out");
	tasklog_close(tl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(write_read_with_a_small_cache, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(a_bad_record_past_the_index_is_not_damage, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(a_failing_read_of_the_tail_is_not_damage, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(a_damaged_format_file_is_rewritten, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(a_damaged_batch_past_the_index_is_written_again,
						tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(write_only_at_the_files_end, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(remove_over_a_stale_trash, tu_setup, tu_teardown),
		cmocka_unit_test(sidecar_records_are_checked),
		cmocka_unit_test_setup_teardown(verify_table_keeps_every_entry, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(emfile_sheds_the_least_recently_used, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(emfile_with_nothing_to_shed_fails_at_once, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(the_cache_stays_under_the_open_file_limit, tu_setup,
						tu_teardown),
	};

	return cmocka_run_group_tests_name("tasklog", tests, NULL, NULL);
}
