/*
 * test_index_damage.c - a damaged index: entries whose offset or length is
 * not an event's are never served as a spliced line, a missing entry is
 * EIO, an applied position past the journal is damage, and random damage
 * to data.mdb never crashes the open, fsck or reindex.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include <cmocka.h>

#include "evlog.h"
#include "index.h"
#include "log.h"
#include "testutil.h"

/*
 * An index entry whose offset is not an event's (a flipped bit in a value:
 * the checks at open cannot see it) must not be served as a line spliced
 * from two events: the read gets EIO and the log names fsck and reindex.
 */
static void view_never_serves_a_spliced_line(void **state)
{
	const char *dir = *state;
	struct evl_store *st = tu_open_default(dir);
	struct index_txn *t;
	struct index *ix;
	struct evl_view *v;
	char path[4200], buf[65536];
	ssize_t n = 0;
	uint64_t off = 0;

	tu_fill(st, 0, 100);
	assert_int_equal(evl_store_close(st), 0);
	snprintf(path, sizeof(path), "%s/index", dir);
	assert_int_equal(index_open(path, NULL, &ix), 0);
	assert_int_equal(index_begin(ix, true, &t), 0);
	/* task uid 1's log holds 25 events: 3 bytes in is inside the first */
	tu_stray_entry(t, 1, 1000000, "note", 3, 20);
	assert_int_equal(index_commit(t), 0);
	index_close(ix);

	st = tu_open_default(dir);
	assert_int_equal(evl_view_open(st, "note", 4, 0, &v), 0);
	while ((n = evl_view_read(v, off, buf, 7)) > 0)
		off += n;
	assert_int_equal(n, -EIO);
	evl_view_close(v);
	assert_int_equal(evl_store_close(st), 0);
}

/*
 * The same for an entry whose offset damage moved into a line, with a
 * length that ends at that line's newline (a zeroed byte of an offset and
 * one of a length, damage sweep seed 80004 case 3204): one newline for one
 * event, so counting newlines passes it; the byte before it is not a
 * newline.  Served, it would be a line no writer wrote.
 */
static void view_never_serves_the_tail_of_a_line(void **state)
{
	const char *dir = *state;
	struct evl_store *st = tu_open_default(dir);
	struct index_txn *t;
	struct index *ix;
	struct evl_view *v;
	char path[4200], buf[65536], first[64];
	ssize_t n = 0;
	uint64_t off = 0;
	int len;

	tu_fill(st, 0, 100);
	assert_int_equal(evl_store_close(st), 0);
	/* task t0 (uid 1) begins with fill's event 0 */
	len = snprintf(first, sizeof(first), "{\"type\":\"%s\",\"i\":%d}\n", tu_types[0], 0);
	snprintf(path, sizeof(path), "%s/index", dir);
	assert_int_equal(index_open(path, NULL, &ix), 0);
	assert_int_equal(index_begin(ix, true, &t), 0);
	tu_stray_entry(t, 1, 1000000, "zz", 9, len - 9);
	assert_int_equal(index_commit(t), 0);
	index_close(ix);

	st = tu_open_default(dir);
	assert_int_equal(evl_view_open(st, "zz", 2, 0, &v), 0);
	while ((n = evl_view_read(v, off, buf, sizeof(buf))) > 0)
		off += n;
	assert_int_equal(n, -EIO);
	assert_int_equal(off, 0);
	evl_view_close(v);
	assert_int_equal(evl_store_close(st), 0);
}

/*
 * Index damage: a truncated data.mdb (the 16 KiB of the issue, nothing,
 * half) and random bit flips and zeroed ranges, many seeds.  Each of the
 * store's open (what a mount does), fsck and reindex runs in a child, so a
 * SIGBUS, SIGSEGV or LMDB assertion is a failure of that seed, not the end
 * of the run.  The open must refuse (-EUCLEAN) or serve; fsck must report;
 * reindex must rebuild the views byte for byte from the logs (they are
 * intact) and leave a store fsck finds clean.  The damaged index is never
 * written: fsck opens it read-only, reindex builds the new one beside it.
 * EVL_INDEX_DAMAGE_SEEDS=N (default 32), EVL_INDEX_DAMAGE_SEED=S (first),
 * EVL_INDEX_DAMAGE_VERBOSE=1 (the children's logs).
 */
enum { DMG_OK = 0, DMG_REFUSED = 1, DMG_SERVED_OTHER = 2, DMG_FAILED = 3, DMG_READ_EIO = 4 };

static void quiet(int prio, const char *msg)
{
}

/* Run @fn(@dir) in a child; its exit code, or 128 + the signal that killed it. */
static int in_child(int (*fn)(const char *dir, const char *before), const char *dir,
		    const char *before)
{
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		/* cmocka's handlers would turn a crash into a test failure in the child */
		static const int sigs[] = { SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE };

		for (size_t i = 0; i < sizeof(sigs) / sizeof(*sigs); i++)
			signal(sigs[i], SIG_DFL);
		if (!getenv("EVL_INDEX_DAMAGE_VERBOSE"))
			evl_log_set(quiet, LOG_DEBUG);
		_exit(fn(dir, before));
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

static int dmg_open(const char *dir, const char *before)
{
	int err;
	char *got = tu_dump_err(dir, &err);
	if (getenv("EVL_INDEX_DAMAGE_VERBOSE"))
		fprintf(stderr, "open: %s\n", strerror(-err));
	int rc = !got ? (err == -EUCLEAN ? DMG_REFUSED : DMG_FAILED) :
		 err == -EIO ? DMG_READ_EIO : err ? DMG_FAILED :
		 strcmp(got, before) ? DMG_SERVED_OTHER : DMG_OK;

	free(got);
	return rc;
}

static int dmg_fsck(const char *dir, const char *before)
{
	struct evl_check_opts o = { 0 };
	struct evl_check_result r;
	int rc = evl_fsck(dir, &o, &r);

	if (getenv("EVL_INDEX_DAMAGE_VERBOSE"))
		fprintf(stderr, "fsck: %s, %" PRIu64 " problems\n", strerror(-rc), r.problems);
	return rc == -EUCLEAN ? DMG_REFUSED : rc ? DMG_FAILED : r.problems ? DMG_REFUSED : DMG_OK;
}

static int dmg_reindex(const char *dir, const char *before)
{
	struct evl_check_opts o = { 0 };
	struct evl_check_result r;
	char *got;
	int err;

	if (evl_reindex(dir, &o, &r) || r.events != 500)
		return DMG_FAILED;
	got = tu_dump_err(dir, &err);
	err = !got || err || strcmp(got, before);
	free(got);
	if (err || evl_fsck(dir, &o, &r) || r.problems)
		return DMG_FAILED;
	return DMG_OK;
}

/* Damage @path as seed @seed says; a description into @what. */
static void damage_index(const char *path, unsigned seed, char *what, size_t n)
{
	struct stat sb;
	unsigned r = seed * 2654435761u + 12345;
	off_t size;
	FILE *f;

#define RND() (r = r * 1103515245u + 12345u, (r >> 8) & 0xffffff)
	assert_int_equal(stat(path, &sb), 0);
	size = sb.st_size;
	if (seed % 8 == 0 || seed % 8 == 1) {
		off_t to = seed == 0 ? 16384 : seed == 1 ? 0 : seed % 8 == 0 ? size / 2 :
			   (off_t)(RND() % (unsigned)size);

		snprintf(what, n, "truncated to %jd of %jd bytes", (intmax_t)to, (intmax_t)size);
		assert_int_equal(truncate(path, to), 0);
		return;
	}
	f = fopen(path, "r+b");
	assert_non_null(f);
	if (seed % 8 == 2) {
		/* a zeroed range: a lost write, a page of the map */
		off_t at = RND() % (unsigned)size, len = 1 + RND() % 8192;
		static const char zero[8192];

		snprintf(what, n, "%jd bytes zeroed at %jd", (intmax_t)len, (intmax_t)at);
		fseeko(f, at, SEEK_SET);
		fwrite(zero, 1, len, f);
	} else {
		int bits = 1 + RND() % (seed % 3 ? 2 : 16);

		snprintf(what, n, "%d bits flipped", bits);
		for (int b = 0; b < bits; b++) {
			/* a third in the meta pages, the rest anywhere */
			off_t at = RND() % 3 == 0 ? RND() % 8192 : RND() % (unsigned)size;
			int c;

			fseeko(f, at, SEEK_SET);
			c = fgetc(f);
			fseeko(f, at, SEEK_SET);
			fputc(c ^ (1 << (RND() % 8)), f);
		}
	}
	assert_int_equal(fclose(f), 0);
#undef RND
}

static void index_damage_never_crashes(void **state)
{
	const char *dir = *state, *env = getenv("EVL_INDEX_DAMAGE_SEEDS");
	unsigned seeds = env ? strtoul(env, NULL, 10) : 32, first = 0, crashes = 0;
	unsigned refused = 0, read_eio = 0, served_other = 0, unnoticed = 0;
	char tmpl[4200], work[4200], path[4300], cmd[9000], what[128], *before;
	struct evl_store *st;

	if (getenv("EVL_INDEX_DAMAGE_SEED"))
		first = strtoul(getenv("EVL_INDEX_DAMAGE_SEED"), NULL, 10);
	snprintf(tmpl, sizeof(tmpl), "%s/tmpl", dir);
	snprintf(work, sizeof(work), "%s/work", dir);
	/* several opens, so the index has a history: free pages, both metas used */
	for (int i = 0; i < 5; i++) {
		st = tu_open_default(tmpl);
		tu_fill(st, i * 100, 100);
		assert_int_equal(evl_store_close(st), 0);
	}
	before = tu_dump(tmpl);
	for (unsigned seed = first; seed < first + seeds; seed++) {
		int o, f, x;

		tu_rmrf(work);
		snprintf(cmd, sizeof(cmd), "cp -a '%s' '%s'", tmpl, work);
		assert_int_equal(system(cmd), 0);
		snprintf(path, sizeof(path), "%s/index/data.mdb", work);
		damage_index(path, seed, what, sizeof(what));
		o = in_child(dmg_open, work, before);
		f = in_child(dmg_fsck, work, before);
		x = in_child(dmg_reindex, work, before);
		if (o >= 128 || f >= 128 || x >= 128 || o == DMG_FAILED || f == DMG_FAILED ||
		    x != DMG_OK) {
			print_message("seed %u (%s): open %d, fsck %d, reindex %d (128+: a signal;"
				      " %d: failed)\n", seed, what, o, f, x, DMG_FAILED);
			crashes++;
		}
		if (o == DMG_SERVED_OTHER)
			print_message("seed %u (%s): the store opened and served other bytes;"
				      " fsck %s\n", seed, what, f == DMG_OK ? "found nothing" :
				      "found it");
		refused += o == DMG_REFUSED;
		read_eio += o == DMG_READ_EIO;
		served_other += o == DMG_SERVED_OTHER;
		unnoticed += o == DMG_SERVED_OTHER && f == DMG_OK;
	}
	print_message("index damage: %u seeds from %u: %u refused at open, %u opened but a read"
		      " got EIO, %u served other bytes (%u of them fsck-clean), %u failed\n", seeds,
		      first, refused, read_eio, served_other, unnoticed, crashes);
	free(before);
	assert_int_equal(crashes, 0);
}

/*
 * The damage sweep (seed 99602 case 638): a flipped bit in the meta
 * record moved applied_lsn ahead of every journal record (186 read as
 * 131258).  The open replayed nothing past it: the journaled events were
 * lost without a word, fsck said clean.  Now the open calls the index
 * damaged (how 0), fsck says so, and reindex brings the events back from
 * the journal.  The same for a checkpoint past what was applied (how 1;
 * a replay would start there when task files need mending), and for an
 * applied_lsn one past an empty newest segment's (how 2: the journal
 * was trimmed at a checkpoint; nothing to bring back, nothing lost).
 */
static void an_applied_lsn_past_the_journal_is_damage(void **state)
{
	static const char ev[] = "{\"type\":\"note\",\"i\":99}\n";
	const char *dir = *state;

	for (int how = 0; how < 3; how++) {
		struct evl_check_opts co = { .report = tu_collect };
		struct evl_check_result r;
		struct evl_store *st = tu_open_default(dir);
		struct evl_task_info info;
		struct evl_options o;
		struct index_meta m;
		struct index_txn *t;
		struct index *ix;
		char path[4200], buf[4096], *log;
		size_t len;

		tu_fill(st, 0, 24);
		assert_int_equal(evl_store_close(st), 0);
		log = tu_slurp(dir, "tasks/t1/events", &len);
		if (how < 2)
			tu_journal_to(dir, "t1", ev);	/* journaled, not applied: a kill -9 */
		snprintf(path, sizeof(path), "%s/index", dir);
		assert_int_equal(index_open(path, NULL, &ix), 0);
		assert_int_equal(index_begin(ix, true, &t), 0);
		assert_int_equal(index_get_meta(t, &m), 0);
		if (how == 0)
			m.applied_lsn |= 1u << 17;
		else if (how == 1)
			m.ckpt_lsn = m.applied_lsn + 1;
		else
			m.applied_lsn++;
		assert_int_equal(index_put_meta(t, &m), 0);
		assert_int_equal(index_commit(t), 0);
		index_close(ix);

		assert_int_equal(tu_fsck(dir, false, &r), -EUCLEAN);
		assert_true(r.problems > 0);
		assert_true(tu_reported("but the journal ends at"));
		evl_options_default(&o);
		assert_int_equal(evl_store_open(dir, &o, &st), -EUCLEAN);
		tu_nlines = 0;
		assert_int_equal(evl_reindex(dir, &co, &r), 0);
		for (int i = 0; i < tu_nlines; i++)
			print_message("%s\n", tu_lines[i]);
		assert_int_equal(r.lost, 0);
		st = tu_open_default(dir);
		assert_int_equal(evl_task_lookup(st, "t1", &info), 0);
		if (how < 2) {
			assert_int_equal(tu_read_task(st, "t1", buf, sizeof(buf)),
					 (ssize_t)(len + strlen(ev)));
			assert_memory_equal(buf + len, ev, strlen(ev));
		} else {
			assert_int_equal(tu_read_task(st, "t1", buf, sizeof(buf)), (ssize_t)len);
		}
		assert_memory_equal(buf, log, len);
		assert_int_equal(evl_store_close(st), 0);
		assert_int_equal(tu_fsck(dir, false, &r), 0);
		assert_int_equal(r.problems, 0);
		free(log);
		tu_rmrf(dir);
		mkdir(dir, 0700);
	}
}

/*
 * An entry a view's own structure names is missing (the damage sweep,
 * seed 600002 case 650: a flipped ordinal in a tgs value, which the walk
 * at open cannot see): the read got ENOENT, "no such file" for a file the
 * listing shows, with nothing logged or counted.  It is index damage:
 * EIO, counted (status index_damage), logged naming fsck and reindex.
 */
static void a_view_missing_its_own_entry_is_damage(void **state)
{
	const char *dir = *state;
	struct evl_store *st = tu_open_default(dir);
	char path[4200], buf[65536];
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_cursor *c;
	MDB_val key, val;
	unsigned char rec[64];
	struct evl_stats s;
	int eio = 0;

	tu_fill(st, 0, 40);
	assert_int_equal(evl_store_close(st), 0);
	snprintf(path, sizeof(path), "%s/index", dir);
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
	assert_int_equal(mdb_env_open(env, path, MDB_NOTLS, 0644), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "tgs", 0, &dbi), 0);
	assert_int_equal(mdb_cursor_open(txn, dbi, &c), 0);
	assert_int_equal(mdb_cursor_get(c, &key, &val, MDB_FIRST), 0);
	assert_true(val.mv_size <= sizeof(rec) && val.mv_size >= 8);
	memcpy(rec, val.mv_data, val.mv_size);
	rec[2] ^= 1;	/* its ordinal, 65536 on */
	val.mv_data = rec;
	assert_int_equal(mdb_cursor_put(c, &key, &val, MDB_CURRENT), 0);
	mdb_cursor_close(c);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);

	st = tu_open_default(dir);
	for (size_t p = 0; p < sizeof(tu_prefixes) / sizeof(*tu_prefixes); p++) {
		struct evl_view *v;
		ssize_t n;

		assert_int_equal(evl_view_open(st, tu_prefixes[p], strlen(tu_prefixes[p]), 0, &v), 0);
		n = evl_view_read(v, 0, buf, sizeof(buf));
		print_message("%s: %zd\n", tu_prefixes[p], n);
		assert_true(n > 0 || n == -EIO);
		eio += n == -EIO;
		evl_view_close(v);
	}
	assert_true(eio > 0);
	evl_store_stats(st, &s);
	assert_true(s.index_damage > 0);
	assert_int_equal(evl_store_close(st), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(view_never_serves_the_tail_of_a_line, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(view_never_serves_a_spliced_line, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(index_damage_never_crashes, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(an_applied_lsn_past_the_journal_is_damage, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(a_view_missing_its_own_entry_is_damage, tu_setup,
						tu_teardown),
	};

	return tu_run_tests("index_damage", tests, sizeof(tests) / sizeof(tests[0]));
}
