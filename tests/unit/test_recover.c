/*
 * test_recover.c - what the open makes of what a crash or damage left: a bad
 * journal record or segment header costs only itself, a lost create
 * leaves the other tasks, holes a power loss left are filled by the
 * replay, and events past the index are adopted only when they check out.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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

#include "bytes.h"
#include "evlog.h"
#include "tasklog.h"
#include "testutil.h"

/*
 * A power loss after the applier wrote a batch for a task that was clean
 * (not dirty) and before the index commit that made it dirty was durable:
 * the task's files are longer than the index says, and where the lost
 * batch's pages were not kept they are holes.  That is no damage: the
 * replay writes the same records there, and every event is served.  The
 * same length of other bytes (a line appended outside the store) still
 * sets the task aside, its event kept in events.unapplied.
 */
static void replay_after_power_loss_fills_holes(void **state)
{
	static const char ev[] = "{\"type\":\"a\",\"i\":3}\n";
	static const char other[] = "{\"type\":\"b\",\"j\":9}\n";
	const char *dir = *state;
	char path[4400], *log;
	struct evl_store *st;
	struct evl_writer *w;
	struct evl_stats s;
	struct stat sb;
	size_t len;

	_Static_assert(sizeof(ev) == sizeof(other), "the same length");
	for (int holes = 1; holes >= 0; holes--) {
		st = tu_open_store(dir, true, 2);
		tu_create(st, "x");
		assert_int_equal(evl_writer_open(st, tu_task_uid(st, "x"), &w), 0);
		for (int i = 0; i < 3; i++) {
			char line[64];

			snprintf(line, sizeof(line), "{\"type\":\"a\",\"i\":%d}\n", i);
			assert_int_equal(tu_write_str(w, line), 0);
		}
		assert_int_equal(evl_writer_close(w), 0);
		assert_int_equal(evl_store_close(st), 0);	/* checkpointed: x is clean */

		tu_journal_unapplied(dir, ev);
		tu_append_to(dir, "events", holes ? NULL : other, sizeof(ev) - 1);
		tu_append_to(dir, "events.meta", NULL, TASKLOG_REC);

		st = tu_open_store(dir, true, 2);
		evl_store_stats(st, &s);
		snprintf(path, sizeof(path), "%s/tasks/x/events.unapplied", dir);
		if (holes) {
			assert_int_equal(s.tasks_aside, 0);
			assert_int_equal(s.events_unapplied, 0);
			assert_int_equal(tu_task_events(st, "x"), 4);
			log = tu_read_all(st, tu_task_uid(st, "x"), NULL, &len);
			assert_int_equal(len, 3 * (sizeof(ev) - 1) + sizeof(ev) - 1);
			assert_memory_equal(log + len - (sizeof(ev) - 1), ev, sizeof(ev) - 1);
			free(log);
			tu_check_views(st, dir);
			assert_true(stat(path, &sb) && errno == ENOENT);
		} else {
			assert_int_equal(s.tasks_aside, 1);
			assert_int_equal(s.events_unapplied, 1);
			assert_int_equal(stat(path, &sb), 0);
			assert_int_equal(sb.st_size, sizeof(ev) - 1);
		}
		assert_int_equal(evl_store_close(st), 0);
		tu_rmrf(dir);
		mkdir(dir, 0700);
	}
}

/*
 * Issue 15 item 5: one bad journal record must cost that record only.  Ten
 * durable records of 64 events each (commit=sync, unapplied: the writer
 * dies before the applier runs), then damage: @what is "payload" (one byte
 * of record 2's payload flipped) or "header" (the segment header's).  The
 * next open replays every record that checks out, counts what is lost and
 * keeps the damaged segment as .corrupt.
 */
static void journal_damage_case(const char *dir, const char *what)
{
	struct evl_options o;
	struct evl_store *st;
	struct evl_writer *w;
	struct evl_stats s;
	char seg[4800], path[4800], buf[64 * 128];
	uint64_t uid, off, lens[16];
	size_t n = 0, len;
	int status, fd, nrec = 0;
	unsigned char hdr[32], c;
	struct stat sb;
	char *log;
	pid_t pid;

	evl_options_default(&o);
	o.commit_sync = true;
	assert_int_equal(evl_store_open(dir, &o, &st), 0);
	uid = tu_create(st, "t1");
	assert_int_equal(evl_store_close(st), 0);

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		o.hold_apply = true;
		if (evl_store_open(dir, &o, &st) || evl_writer_open(st, uid, &w))
			_exit(2);
		for (int r = 0; r < 10; r++) {
			n = 0;
			for (int i = 0; i < 64; i++)
				n += tu_event_line(buf + n, sizeof(buf) - n, 1, 0, r * 64 + i, 3);
			if (tu_write_str(w, buf))
				_exit(3);
		}
		_exit(0);	/* no close: the records stay unapplied */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	/* the segment holding the ten records: the largest one */
	{
		DIR *d;
		struct dirent *de;
		off_t best = -1;

		snprintf(path, sizeof(path), "%s/journal", dir);
		d = opendir(path);
		assert_non_null(d);
		while ((de = readdir(d))) {
			char p[4700];

			if (!strstr(de->d_name, ".jnl"))
				continue;
			snprintf(p, sizeof(p), "%.4000s/%s", path, de->d_name);
			if (stat(p, &sb) == 0 && sb.st_size > best) {
				best = sb.st_size;
				snprintf(seg, sizeof(seg), "%s", p);
			}
		}
		closedir(d);
	}
	fd = open(seg, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &sb), 0);
	for (off = 32; off + 32 <= (uint64_t)sb.st_size; off += 32 + lens[nrec++]) {
		assert_int_equal(pread(fd, hdr, 32, off), 32);
		assert_true(nrec < 16);
		lens[nrec] = get_le32(hdr + 8);
	}
	assert_int_equal(nrec, 10);
	off = !strcmp(what, "header") ? 20 : 32 + lens[0] + 32 + 100;	/* record 2's payload */
	assert_int_equal(pread(fd, &c, 1, off), 1);
	c ^= 0x10;
	assert_int_equal(pwrite(fd, &c, 1, off), 1);
	close(fd);

	assert_int_equal(evl_store_open(dir, &o, &st), 0);
	log = tu_read_all(st, uid, NULL, &len);
	{
		int want = 0, got = 0;

		for (char *p = log, *end = log + len; p < end; got++) {
			char *nl = memchr(p, '\n', end - p);
			int ty, wr, i;

			assert_non_null(nl);
			assert_int_equal(sscanf(p, "{\"type\":\"ty%d\",\"w\":%d,\"i\":%d", &ty, &wr,
						&i), 3);
			if (!strcmp(what, "payload") && want == 64)
				want = 128;	/* record 2 is lost, and only it */
			assert_int_equal(i, want);
			want++;
			p = nl + 1;
		}
		print_message("%s damage: %d of 640 events kept\n", what, got);
		assert_int_equal(got, !strcmp(what, "header") ? 640 : 576);
	}
	free(log);
	evl_store_stats(st, &s);
	assert_int_equal(s.journal_lost, !strcmp(what, "header") ? 0 : 1);
	assert_true(s.journal_damaged_segments >= 1);
	snprintf(path, sizeof(path), "%.4700s.corrupt", seg);
	assert_int_equal(stat(path, &sb), 0);
	tu_check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);

	/* the damage was set aside: the next open finds none, and keeps everything */
	assert_int_equal(evl_store_open(dir, &o, &st), 0);
	assert_int_equal(tu_task_events(st, "t1"), !strcmp(what, "header") ? 640 : 576);
	evl_store_stats(st, &s);
	assert_int_equal(s.journal_lost, 0);
	tu_check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
}

/*
 * A corrupt create record: the appends after it name a task no record
 * creates.  The store still opens, serves every other task, and counts the
 * loss; the task is not made up.
 */
static void journal_lost_create_leaves_other_tasks(void **state)
{
	const char *dir = *state;
	struct evl_options o;
	struct evl_store *st;
	struct evl_writer *w;
	struct evl_stats s;
	char seg[4800], buf[128];
	unsigned char c;
	uint64_t uid;
	int status, fd;
	pid_t pid;

	evl_options_default(&o);
	o.commit_sync = true;
	assert_int_equal(evl_store_open(dir, &o, &st), 0);
	uid = tu_create(st, "keep");
	assert_int_equal(evl_store_close(st), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct evl_writer *w2;
		uint64_t nuid;

		o.hold_apply = true;
		if (evl_store_open(dir, &o, &st) || evl_task_create(st, "gone"))
			_exit(2);
		nuid = tu_task_uid(st, "gone");
		if (evl_writer_open(st, nuid, &w2) || evl_writer_open(st, uid, &w))
			_exit(3);
		for (int i = 0; i < 10; i++) {
			tu_event_line(buf, sizeof(buf), 1, 0, i, 3);
			if (tu_write_str(w2, buf) || tu_write_str(w, buf))
				_exit(4);
		}
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* the child's segment starts at lsn 2 with the create of "gone" */
	snprintf(seg, sizeof(seg), "%.4000s/journal/0000000000000002.jnl", dir);
	fd = open(seg, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, 32 + 32 + 3), 1);	/* the create's uid */
	c ^= 1;
	assert_int_equal(pwrite(fd, &c, 1, 32 + 32 + 3), 1);
	close(fd);

	assert_int_equal(evl_store_open(dir, &o, &st), 0);
	assert_int_equal(tu_task_uid(st, "gone"), 0);
	assert_int_equal(tu_task_events(st, "keep"), 10);
	evl_store_stats(st, &s);
	assert_int_equal(s.journal_lost, 1);
	tu_check_views(st, dir);
	assert_int_equal(evl_store_close(st), 0);
}

static void journal_bad_record_costs_only_itself(void **state)
{
	journal_damage_case(*state, "payload");
}

static void journal_bad_segment_header_keeps_its_records(void **state)
{
	journal_damage_case(*state, "header");
}

/*
 * An event past the index whose sidecar record vouches for it is adopted
 * only if its bytes are the ones its record's checksum was made of: one
 * changed on disk (still valid JSON) was indexed, and the first read set
 * the whole task aside (found in review).  It goes to events.unapplied,
 * counted; the task's other events are served.
 */
static void a_changed_event_past_the_index_is_not_adopted(void **state)
{
	static const char written[] = "{\"type\":\"a\",\"i\":8}\n";
	static const char ondisk[] = "{\"type\":\"a\",\"i\":7}\n";
	const char *dir = *state;
	struct evl_store *st;
	struct evl_stats s;
	struct tasklog_rec last, r;
	unsigned char enc[TASKLOG_REC];
	char path[4400], *meta, *log, *un;
	size_t mlen, len, ulen;

	st = tu_open_store(dir, true, 2);
	tu_create(st, "x");
	tu_append_n(st, "x", 0, 3);
	assert_int_equal(evl_store_close(st), 0);
	snprintf(path, sizeof(path), "%s/tasks/x/events.meta", dir);
	meta = tu_slurp_path(path, &mlen);
	assert_int_equal(tasklog_decode((unsigned char *)meta + mlen - TASKLOG_REC, &last), 0);
	free(meta);
	/* a batch whose index commit and journal records were lost, then a changed byte */
	r = (struct tasklog_rec){ last.gseq + 1, last.time_ns + 1, sizeof(written) - 1,
				  tasklog_sum(written, sizeof(written) - 1) };
	tasklog_encode(&r, enc);
	tu_append_to(dir, "events", ondisk, sizeof(ondisk) - 1);
	tu_append_to(dir, "events.meta", enc, TASKLOG_REC);

	st = tu_open_store(dir, true, 2);
	assert_int_equal(tu_task_events(st, "x"), 3);
	log = tu_read_all(st, tu_task_uid(st, "x"), NULL, &len);
	assert_null(memmem(log, len, ondisk, sizeof(ondisk) - 1));
	free(log);
	evl_store_stats(st, &s);
	assert_int_equal(s.tasks_aside, 0);
	assert_int_equal(evl_store_close(st), 0);
	snprintf(path, sizeof(path), "%s/tasks/x/events.unapplied", dir);
	un = tu_slurp_path(path, &ulen);
	assert_non_null(un);
	assert_non_null(memmem(un, ulen, ondisk, sizeof(ondisk) - 1));
	free(un);
}

/*
 * A crash lost a batch's index commit after its bytes reached the task's
 * files, and the journal lost its record too (a damaged or emptied
 * journal): nothing replays it.  The event is the store's own (its
 * sidecar record checks out and ends a whole valid line): the open indexes
 * it where it is, with its gseq and time, and gseqs go on past it.  It was
 * once left past the index, unserved, and the next append set the task
 * aside (the damage sweep: trunc0 and restore_old of journal/).
 */
static void events_past_the_index_are_indexed_without_their_journal(void **state)
{
	static const char ev[] = "{\"type\":\"ty1\",\"i\":3}\n";
	const char *dir = *state;
	/* later than the appends before it: the task's last append time */
	struct tasklog_rec rec = { .gseq = 1000, .time_ns = (uint64_t)(time(NULL) + 1000) * 1000000000ull,
				   .len = sizeof(ev) - 1 };
	struct evl_task_info info;
	struct evl_store *st;
	struct evl_writer *w;
	struct tasklog *tl;
	char *log;
	uint64_t uid, off = 0;
	size_t len;

	st = tu_open_store(dir, true, 2);
	tu_create(st, "x");
	uid = tu_task_uid(st, "x");
	assert_int_equal(evl_writer_open(st, uid, &w), 0);
	for (int i = 0; i < 3; i++) {
		char line[64];

		snprintf(line, sizeof(line), "{\"type\":\"ty1\",\"i\":%d}\n", i);
		off += strlen(line);
		assert_int_equal(tu_write_str(w, line), 0);
	}
	assert_int_equal(evl_writer_close(w), 0);
	assert_int_equal(evl_store_close(st), 0);

	/* what the applier wrote before the crash; no journal record holds it */
	assert_int_equal(tasklog_open(dir, 8, &tl), 0);
	assert_int_equal(tasklog_write(tl, uid, "x", off, ev, sizeof(ev) - 1, 3, &rec, 1, 0), 0);
	assert_int_equal(tasklog_sync(tl, uid, "x"), 0);
	tasklog_close(tl);

	st = tu_open_store(dir, true, 2);
	assert_int_equal(tu_task_events(st, "x"), 4);
	log = tu_read_all(st, uid, NULL, &len);
	assert_int_equal(len, off + sizeof(ev) - 1);
	assert_memory_equal(log + off, ev, sizeof(ev) - 1);
	free(log);
	assert_int_equal(evl_task_lookup(st, "x", &info), 0);
	assert_int_equal(info.last_ns, rec.time_ns);
	/* appends go on, past its gseq, and the task is not set aside */
	tu_append_n(st, "x", 10, 2);
	assert_int_equal(tu_task_events(st, "x"), 6);
	tu_check_views(st, dir);
	tu_check_tasks(st, dir);
	assert_int_equal(evl_store_close(st), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(journal_bad_record_costs_only_itself, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(journal_lost_create_leaves_other_tasks, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(journal_bad_segment_header_keeps_its_records,
						tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(a_changed_event_past_the_index_is_not_adopted, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(events_past_the_index_are_indexed_without_their_journal,
						tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(replay_after_power_loss_fills_holes, tu_setup,
						tu_teardown),
	};

	return tu_run_tests("recover", tests, sizeof(tests) / sizeof(tests[0]));
}
