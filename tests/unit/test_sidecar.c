/*
 * test_sidecar.c - event checksums (sidecar format 2): changed event bytes
 * are never served, the upgrade from format 1, sidecars cut, removed or
 * damaged beside a batch a crash lost, and another task's sidecar over a
 * task's own (kept aside as events.meta.foreign and rebuilt).
 */
#include <dirent.h>
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>
#include <xxhash.h>

#include <cmocka.h>

#include "bytes.h"
#include "evlog.h"
#include "fio.h"
#include "tasklog.h"
#include "testutil.h"

/*
 * Issue 15: one byte changed inside an event on disk (a bad disk; the JSON
 * stays valid) is never served: the task is set aside (EIO, named), other
 * tasks are served; fsck names the event; reindex moves it to the task's
 * events.damaged and keeps every other event.
 */
static void changed_event_bytes_are_never_served(void **state)
{
	const char *dir = *state;
	struct evl_check_opts o = { .report = tu_collect };
	struct evl_check_result r;
	struct evl_stats stt;
	struct evl_store *st = tu_open_default(dir);
	char *log, *line3, *end, *after, buf[8192], changed[128];
	size_t len;

	tu_fill(st, 0, 24);	/* t1: 6 events */
	assert_int_equal(evl_store_close(st), 0);
	log = tu_slurp(dir, "tasks/t1/events", &len);
	line3 = strchr(strchr(log, '\n') + 1, '\n') + 1;
	end = strchr(line3, '\n');
	strstr(line3, "\"i\":")[4] ^= 1;	/* a digit for another: valid JSON still */
	snprintf(changed, sizeof(changed), "%.*s", (int)(end - line3 + 1), line3);
	tu_spit(dir, "tasks/t1/events", log, len);

	st = tu_open_default(dir);
	assert_int_equal(tu_read_task(st, "t1", buf, sizeof(buf)), -EIO);
	evl_store_stats(st, &stt);
	assert_int_equal(stt.tasks_aside, 1);
	assert_string_equal(stt.aside, "t1");
	assert_true(tu_read_task(st, "t0", buf, sizeof(buf)) > 0);
	for (size_t p = 0; p < sizeof(tu_prefixes) / sizeof(*tu_prefixes); p++) {
		struct evl_view *v;
		ssize_t n;
		uint64_t off = 0;

		if (evl_view_open(st, tu_prefixes[p], strlen(tu_prefixes[p]), 0, &v))
			continue;
		while ((n = evl_view_read(v, off, buf + off, sizeof(buf) - 1 - off)) > 0)
			off += n;
		buf[off] = '\0';
		assert_null(strstr(buf, changed));
		evl_view_close(v);
	}
	evl_store_close(st);

	assert_int_equal(tu_fsck(dir, false, &r), 0);
	assert_true(r.problems >= 1);
	assert_true(tu_reported("its checksum does not match"));
	tu_nlines = 0;
	assert_int_equal(evl_reindex(dir, &o, &r), 0);
	assert_int_equal(r.damaged, 1);
	assert_true(tu_reported("moved to events.damaged"));
	after = tu_slurp(dir, "tasks/t1/events.damaged", NULL);
	assert_non_null(after);
	assert_string_equal(after, changed);
	free(after);
	assert_int_equal(tu_fsck(dir, false, &r), 0);
	assert_int_equal(r.problems, 0);
	st = tu_open_default(dir);
	assert_int_equal(tu_read_task(st, "t1", buf, sizeof(buf)), (ssize_t)(len - strlen(changed)));
	assert_null(strstr(buf, changed));
	evl_store_close(st);
	free(log);
}

/*
 * Issue 15 (the sweep): a sidecar copied over another task's.  Its records
 * check out, none matches the log; the index agrees with the log: fsck
 * --repair keeps it aside as events.meta.foreign and rebuilds the sidecar;
 * every event is served as before.
 */
static void a_foreign_sidecar_is_rebuilt(void **state)
{
	const char *dir = *state;
	struct evl_check_result r;
	struct evl_store *st = tu_open_default(dir);
	char *before, *after, *meta;
	size_t len;

	tu_fill(st, 0, 24);
	assert_int_equal(evl_store_close(st), 0);
	before = tu_dump(dir);
	meta = tu_slurp(dir, "tasks/t0/events.meta", &len);
	tu_spit(dir, "tasks/t1/events.meta", meta, len);
	assert_int_equal(tu_fsck(dir, true, &r), 0);
	assert_true(tu_reported("its sidecar describes another log"));
	assert_int_equal(tu_fsck(dir, false, &r), 0);
	assert_int_equal(r.problems, 0);
	after = tu_dump(dir);
	assert_string_equal(before, after);
	free(before);
	free(after);
	free(meta);
}

/*
 * Issue 15 (the sweep): a log copied over another task's.  Its sidecar and
 * the index agree with each other, not with the log: reindex keeps the log
 * aside as events.foreign and the task's events are lost (said); nothing
 * of the other task is served twice, or under this one.
 */
static void a_foreign_log_is_never_served(void **state)
{
	const char *dir = *state;
	struct evl_check_opts o = { .report = tu_collect };
	struct evl_check_result r;
	struct evl_store *st = tu_open_default(dir);
	char *log, *kept, buf[8192];
	size_t len;

	tu_fill(st, 0, 24);
	assert_int_equal(evl_store_close(st), 0);
	log = tu_slurp(dir, "tasks/t0/events", &len);
	tu_spit(dir, "tasks/t1/events", log, len);
	tu_nlines = 0;
	assert_int_equal(evl_reindex(dir, &o, &r), 0);
	assert_true(tu_reported("kept as events.foreign"));
	kept = tu_slurp(dir, "tasks/t1/events.foreign", NULL);
	assert_non_null(kept);
	{
		/* the recovery before it moved lines past the index's end to events.unapplied */
		char *rest = tu_slurp(dir, "tasks/t1/events.unapplied", NULL), *both;

		assert_true(asprintf(&both, "%s%s", kept, rest ? rest : "") > 0);
		assert_string_equal(both, log);
		free(both);
		free(rest);
	}
	assert_int_equal(tu_fsck(dir, false, &r), 0);
	assert_int_equal(r.problems, 0);
	st = tu_open_default(dir);
	assert_int_equal(tu_read_task(st, "t1", buf, sizeof(buf)), 0);
	assert_int_equal(tu_read_task(st, "t0", buf, sizeof(buf)), (ssize_t)len);
	evl_store_close(st);
	free(kept);
	free(log);
}

/*
 * Make @dir a store of the older format: 24-byte sidecar records (the
 * same gseq, time and length) and no DATA_DIR/format; task t1's sidecar
 * gets @extra (format 2, NULL: none) as one more record, in format 1.
 */
static void to_format1(const char *dir, const unsigned char *extra, size_t nextra)
{
	char path[4400];

	for (int t = 0; t < 4; t++) {
		char rel[64], *meta, *old;
		size_t len, n;

		snprintf(rel, sizeof(rel), "tasks/t%d/events.meta", t);
		meta = tu_slurp(dir, rel, &len);
		assert_int_equal(len % TASKLOG_REC, 0);
		n = len / TASKLOG_REC;
		if (t == 1 && extra) {
			meta = realloc(meta, len + nextra * TASKLOG_REC);
			memcpy(meta + len, extra, nextra * TASKLOG_REC);
			n += nextra;
		}
		old = malloc(n * TASKLOG_REC);
		for (size_t k = 0; k < n; k++) {
			struct tasklog_rec rec;
			unsigned char *o = (unsigned char *)old + k * TASKLOG_REC_V1;
			uint32_t h;

			assert_int_equal(tasklog_decode((unsigned char *)meta + k * TASKLOG_REC, &rec), 0);
			memcpy(o, meta + k * TASKLOG_REC, 20);	/* gseq, time, len: the same */
			h = XXH32(o, 20, 0);
			put_le32(o + 20, h);
			assert_int_equal(tasklog_decode_v1(o, &rec), 0);
		}
		tu_spit(dir, rel, old, n * TASKLOG_REC_V1);
		free(meta);
		free(old);
	}
	snprintf(path, sizeof(path), "%s/format", dir);
	assert_int_equal(unlink(path), 0);
}

/*
 * A store an older evlogfs made (24-byte sidecar records, no DATA_DIR/format):
 * a check that may not write refuses, naming the upgrade; the first open
 * upgrades every sidecar (events.meta of tasks and of a pending delete),
 * and serves the same bytes.
 */
static void a_format1_store_is_upgraded(void **state)
{
	const char *dir = *state;
	struct evl_check_result r;
	struct evl_store *st = tu_open_default(dir);
	char *before, *after;

	tu_fill(st, 0, 24);
	assert_int_equal(evl_store_close(st), 0);
	before = tu_dump(dir);
	to_format1(dir, NULL, 0);
	assert_int_equal(tu_fsck(dir, false, &r), -EPROTO);
	assert_true(tu_reported("format 1"));
	after = tu_dump(dir);	/* the open upgrades */
	assert_string_equal(before, after);
	assert_int_equal(tu_fsck(dir, false, &r), 0);
	assert_int_equal(r.problems, 0);
	free(after);
	free(before);
}

/*
 * An older store a power loss stopped after the applier wrote a batch to a
 * clean task (its sidecar record kept, its log bytes lost: a hole of zeros,
 * or gone) and before the index commit; the journal holds the batch.  The
 * upgrade at the next open must not give that record a checksum of bytes
 * that are not the event's: the replay could not write the batch again
 * over it, and the task was set aside with its event in events.unapplied
 * (found in review).  The store opens as the same store in the new format
 * does: every event served, nothing set aside.
 */
static void a_format1_store_after_a_power_loss_is_upgraded(void **state)
{
	static const char ev[] = "{\"type\":\"note\",\"i\":99}\n";
	const char *dir = *state;
	char path[4400], ref[4200], *meta, *want, *got;
	size_t mlen;

	for (int hole = 0; hole < 2; hole++) {
		struct evl_store *st = tu_open_default(dir);
		struct evl_stats s;
		int status;
		pid_t pid;

		tu_fill(st, 0, 24);
		assert_int_equal(evl_store_close(st), 0);	/* t1 clean */
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			/*
			 * Journaled and durable, not applied: a process gone before
			 * its applier ran, under the seam's boot (the next open, in
			 * the real one, is after a reboot: it trusts no file past a
			 * checkpoint, as after a power loss).
			 */
			struct evl_options o;
			struct evl_task_info info;
			struct evl_writer *w;

			fio_install();
			evl_options_default(&o);
			o.commit_sync = true;
			o.hold_apply = true;
			if (evl_store_open(dir, &o, &st) || evl_task_lookup(st, "t1", &info) ||
			    evl_writer_open(st, info.uid, &w) ||
			    evl_writer_write(w, ev, sizeof(ev) - 1))
				_exit(2);
			_exit(0);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		/* the record the batch has: from a copy recovered as it is */
		snprintf(ref, sizeof(ref), "%s.ref", dir);
		tu_copy_store(dir, ref);
		want = tu_dump(ref);
		meta = tu_slurp(ref, "tasks/t1/events.meta", &mlen);
		assert_int_equal(mlen, 7 * TASKLOG_REC);

		/* the power loss: the record kept, the log's bytes a hole or gone */
		if (hole) {
			int fd;

			snprintf(path, sizeof(path), "%s/tasks/t1/events", dir);
			fd = open(path, O_WRONLY | O_APPEND);
			assert_true(fd >= 0);
			assert_int_equal(ftruncate(fd, lseek(fd, 0, SEEK_END) + sizeof(ev) - 1), 0);
			close(fd);
		}
		to_format1(dir, (unsigned char *)meta + 6 * TASKLOG_REC, 1);
		free(meta);

		st = tu_open_default(dir);
		evl_store_stats(st, &s);
		assert_int_equal(s.tasks_aside, 0);
		assert_int_equal(s.events_unapplied, 0);
		assert_int_equal(evl_store_close(st), 0);
		got = tu_dump(dir);
		assert_string_equal(want, got);
		free(want);
		free(got);
		tu_rmrf(ref);
		tu_rmrf(dir);
		mkdir(dir, 0700);
	}
}

/* What @dir serves, recovered on a copy at @work (@dir stays as it is). */
static char *dump_copy(const char *dir, const char *work)
{
	char *out;

	tu_rmrf(work);
	tu_copy_store(dir, work);
	out = tu_dump(work);
	tu_rmrf(work);
	return out;
}

/*
 * An event applied but not yet checkpointed whose bytes change on disk
 * (still valid JSON), in a store a crash left open: the journal holds it
 * as written.  The recovery (of a mount, fsck --repair or reindex) writes
 * it again from there, in the same boot too; reindex moved it to
 * events.damaged and then trimmed the journal that held it whole (found
 * in review).  The store serves what the undamaged one does.
 */
static void a_changed_event_the_journal_holds_is_written_again(void **state)
{
	const char *dir = *state;
	char crashed[4200], work[4200], meta[4400], *want, *got, *log;
	struct evl_check_opts o = { .report = tu_collect };
	struct evl_check_result r;
	struct evl_store *st;
	size_t len;
	int status;
	pid_t pid;

	snprintf(crashed, sizeof(crashed), "%s/crashed", dir);
	snprintf(work, sizeof(work), "%s/work", dir);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct evl_stats s;

		st = tu_open_default(crashed);
		tu_fill(st, 0, 24);
		assert_int_equal(evl_store_checkpoint(st), 0);
		tu_fill(st, 24, 16);	/* applied, not checkpointed: the journal holds them */
		for (int i = 0; i < 60000; i++) {
			evl_store_stats(st, &s);
			if (!s.pending_events)
				break;
			usleep(1000);
		}
		_exit(s.pending_events ? 1 : 0);	/* no close: a crash */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	want = dump_copy(crashed, work);

	/*
	 * The sidecar as it was, cut to nothing, or cut to the checkpoint's 6
	 * records: the records rebuilt from the log must not vouch for the
	 * changed bytes (found in review); then a mount, fsck --repair or
	 * reindex first.
	 */
	for (int cut = 0; cut < 3; cut++)
		for (int tool = 0; tool < 3; tool++) {
			char *p;

			tu_rmrf(work);
			tu_copy_store(crashed, work);
			/* t1's last event is fill's event 37: "i":37 becomes "i":87 */
			log = tu_slurp(work, "tasks/t1/events", &len);
			p = strstr(log, "\"i\":37}");
			assert_non_null(p);
			p[4] = '8';
			tu_spit(work, "tasks/t1/events", log, len);
			free(log);
			snprintf(meta, sizeof(meta), "%s/tasks/t1/events.meta", work);
			if (cut)
				assert_int_equal(truncate(meta, cut == 1 ? 0 : 6 * TASKLOG_REC), 0);
			tu_nlines = 0;
			if (tool == 1) {
				assert_int_equal(tu_fsck(work, true, &r), 0);
			} else if (tool == 2) {
				assert_int_equal(evl_reindex(work, &o, &r), 0);
				assert_int_equal(r.damaged, 0);
			}
			got = tu_dump(work);
			if (strcmp(want, got))
				fail_msg("sidecar %s, then %s: %s", cut == 0 ? "intact" : cut == 1 ?
					 "cut to nothing" : "cut to the checkpoint",
					 tool == 0 ? "a mount" : tool == 1 ? "fsck --repair" : "reindex",
					 strstr(got, "\"i\":87") ? "the changed event is served" :
					 "served differs");
			free(got);
		}
	free(want);
}

/*
 * A sidecar cut short in a store closed cleanly, then a write to that task
 * through the mount: the writer's look at the files set the task aside
 * before the applier could rebuild the records from the index and the log
 * (found in review).  The write is applied, every event served, nothing
 * set aside.  (A sidecar removed is made anew at the mount: the same.)
 */
static void a_short_sidecar_then_a_write(void **state)
{
	const char *dir = *state;
	const char *e = "{\"type\":\"note\",\"i\":100}\n";
	char meta[4400], buf[8192], *log;
	size_t len;

	for (int removed = 0; removed < 2; removed++) {
		struct evl_store *st = tu_open_default(dir);
		struct evl_task_info info;
		struct evl_writer *w;
		struct evl_stats stt;

		tu_fill(st, 0, 24);
		assert_int_equal(evl_store_close(st), 0);
		log = tu_slurp(dir, "tasks/t1/events", &len);
		snprintf(meta, sizeof(meta), "%s/tasks/t1/events.meta", dir);
		if (removed)
			assert_int_equal(unlink(meta), 0);
		else
			assert_int_equal(truncate(meta, 3 * TASKLOG_REC), 0);
		st = tu_open_default(dir);
		assert_int_equal(evl_task_lookup(st, "t1", &info), 0);
		assert_int_equal(evl_writer_open(st, info.uid, &w), 0);
		assert_int_equal(evl_writer_write(w, e, strlen(e)), 0);
		assert_int_equal(evl_writer_close(w), 0);
		assert_int_equal(evl_store_checkpoint(st), 0);
		evl_store_stats(st, &stt);
		assert_int_equal(stt.tasks_aside, 0);
		assert_int_equal(tu_read_task(st, "t1", buf, sizeof(buf)), (ssize_t)(len + strlen(e)));
		assert_memory_equal(buf, log, len);
		assert_memory_equal(buf + len, e, strlen(e));
		assert_int_equal(evl_store_close(st), 0);
		free(log);
		tu_rmrf(dir);
		mkdir(dir, 0700);
	}
}

/*
 * Re-read of issue 15's work: a sidecar cut short while the store is open,
 * and the disk full (a quota reached) at the moment the applier rebuilds
 * its records.  The write found the sidecar short and the mend failed with
 * EDQUOT, which set the task aside for good (its event sent to
 * events.unapplied) when waiting was the cure: it is retried like any
 * failed write.
 */
static void a_full_disk_while_mending_is_retried(void **state)
{
	const char *dir = *state;
	const char *e = "{\"type\":\"note\",\"i\":100}\n";
	char meta[4400], buf[8192], *log;
	struct evl_store *st;
	struct evl_task_info info;
	struct evl_writer *w;
	struct evl_stats stt;
	size_t len;

	fio_install();	/* before the store's threads read the seam (fio.h) */
	st = tu_open_default(dir);
	tu_fill(st, 0, 24);
	assert_int_equal(evl_store_checkpoint(st), 0);
	log = tu_slurp(dir, "tasks/t1/events", &len);
	snprintf(meta, sizeof(meta), "%s/tasks/t1/events.meta", dir);
	assert_int_equal(truncate(meta, 3 * TASKLOG_REC), 0);
	/* EDQUOT: an ENOSPC here writes half and the retry of the rest succeeds */
	fio_fail_path(FIO_WRITE, "/events.meta", EDQUOT);
	assert_int_equal(evl_task_lookup(st, "t1", &info), 0);
	assert_int_equal(evl_writer_open(st, info.uid, &w), 0);
	assert_int_equal(evl_writer_write(w, e, strlen(e)), 0);
	assert_int_equal(evl_writer_close(w), 0);
	/* a checkpoint reports the applier's failure at once (item 9), until its retry works */
	for (int k = 0; k < 3000 && evl_store_checkpoint(st); k++)
		usleep(100000);
	assert_int_equal(evl_store_checkpoint(st), 0);
	assert_int_equal(fio_failed(), 1);
	fio_clear();
	evl_store_stats(st, &stt);
	assert_int_equal(stt.tasks_aside, 0);
	assert_int_equal(stt.events_unapplied, 0);
	assert_int_equal(tu_read_task(st, "t1", buf, sizeof(buf)), (ssize_t)(len + strlen(e)));
	assert_memory_equal(buf, log, len);
	assert_memory_equal(buf + len, e, strlen(e));
	assert_int_equal(evl_store_close(st), 0);
	fio_uninstall();	/* only once the store's threads are gone */
	free(log);
}

/*
 * A task with no event yet, appends to it journaled and not applied (a
 * crash), its sidecar removed: the recovery makes the sidecar
 * anew and the replay writes the appends.  The apply found no sidecar to
 * mend (the index had no event of it) and set the task aside, its events
 * in events.unapplied (sweep seed 91006 case 2506).
 */
static void a_removed_sidecar_of_a_new_task(void **state)
{
	const char *dir = *state;
	const char *e = "{\"type\":\"note\",\"i\":1}\n";
	struct evl_store *st = tu_open_default(dir);
	struct evl_stats stt;
	char meta[4400], buf[4096];
	int status;
	pid_t pid;

	tu_fill(st, 0, 8);
	assert_int_equal(evl_task_create(st, "t9"), 0);	/* in the index, no event */
	assert_int_equal(evl_store_close(st), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct evl_options o;
		struct evl_task_info info;
		struct evl_writer *w;

		evl_options_default(&o);
		o.commit_sync = true;
		o.hold_apply = true;
		if (evl_store_open(dir, &o, &st) ||
		    evl_task_lookup(st, "t9", &info) || evl_writer_open(st, info.uid, &w) ||
		    evl_writer_write(w, e, strlen(e)) || evl_writer_write(w, e, strlen(e)))
			_exit(2);
		_exit(0);	/* no close: a crash */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	snprintf(meta, sizeof(meta), "%s/tasks/t9/events.meta", dir);
	assert_int_equal(unlink(meta), 0);
	st = tu_open_default(dir);
	evl_store_stats(st, &stt);
	assert_int_equal(stt.tasks_aside, 0);
	assert_int_equal(stt.events_unapplied, 0);
	assert_int_equal(tu_read_task(st, "t9", buf, sizeof(buf)), (ssize_t)(2 * strlen(e)));
	assert_int_equal(evl_store_close(st), 0);
}

static void journal_one(const char *dir, const char *ev)
{
	tu_journal_to(dir, "t1", ev);
}

/*
 * A batch the applier wrote to a clean task (its log bytes and sidecar
 * record), whose index commit a crash lost; the journal holds it.  Then
 * the sidecar is damaged: cut to nothing, that last record flipped, or
 * the file removed (made anew, empty, and mended: seed 80002 case 1342).
 * The open rebuilds the records the index vouches for (the first) or
 * writes the damaged record again from the journal, the log's bytes being
 * the batch's (the second): every event is served, nothing set aside.  The
 * sweep found both (seed 80002 cases 1017 and 1193): the task was set
 * aside and its journaled event went to events.unapplied.
 */
static void a_damaged_sidecar_beside_a_lost_batch(void **state)
{
	static const char ev[] = "{\"type\":\"note\",\"i\":99}\n";
	const char *dir = *state;
	char ref[4200], *meta, *log, *want, *got, *m2;
	size_t mlen, llen, n2;

	for (int how = 0; how < 3; how++) {
		struct evl_store *st = tu_open_default(dir);
		struct evl_stats s;

		tu_fill(st, 0, 24);
		assert_int_equal(evl_store_close(st), 0);	/* t1 clean: 6 events */
		journal_one(dir, ev);
		snprintf(ref, sizeof(ref), "%s.ref", dir);
		tu_copy_store(dir, ref);
		want = tu_dump(ref);	/* the batch applied: its log bytes and record */
		meta = tu_slurp(ref, "tasks/t1/events.meta", &mlen);
		log = tu_slurp(ref, "tasks/t1/events", &llen);
		assert_int_equal(mlen, 7 * TASKLOG_REC);
		/* what the applier wrote before the crash took its index commit */
		tu_spit(dir, "tasks/t1/events", log, llen);
		if (how == 1) {
			meta[6 * TASKLOG_REC + 3] ^= 0x10;
			tu_spit(dir, "tasks/t1/events.meta", meta, mlen);
		} else if (how == 0) {
			tu_spit(dir, "tasks/t1/events.meta", meta, 0);
		} else {
			char path[4400];

			snprintf(path, sizeof(path), "%s/tasks/t1/events.meta", dir);
			assert_int_equal(unlink(path), 0);
		}
		st = tu_open_default(dir);
		evl_store_stats(st, &s);
		assert_int_equal(s.tasks_aside, 0);
		assert_int_equal(s.events_unapplied, 0);
		assert_int_equal(evl_store_close(st), 0);
		got = tu_dump(dir);
		assert_string_equal(want, got);
		m2 = tu_slurp(dir, "tasks/t1/events.meta", &n2);
		assert_int_equal(n2, mlen);
		free(m2);
		free(got);
		free(want);
		free(meta);
		free(log);
		tu_rmrf(ref);
		tu_rmrf(dir);
		mkdir(dir, 0700);
	}
}

/*
 * The sweep (seeds 80002 case 1811, 98102 case 950, 98110 case 4516): a
 * batch the applier wrote, whose index commit a crash lost, and another
 * task's sidecar copied over the task's own.  The task has events in the
 * index (how 0: t1), or none yet (how 1: t4, created empty).  The replay's
 * write checked only the records past the index: it wrote its record after
 * t0's (how 0: the log's events got t0's gseqs, views out of commit order
 * after a repair), or found t0's record where its own should be and set
 * the task aside, its event sent to events.unapplied (how 1: not served).
 * The open keeps the sidecar as events.meta.foreign and rebuilds it, as
 * fsck --repair does: every event served, nothing set aside.
 */
static void another_tasks_sidecar_beside_a_lost_batch(void **state)
{
	static const char ev[] = "{\"type\":\"note\",\"i\":99}\n";
	const char *dir = *state;
	char ref[4200], *meta0, *log, *want, *got;
	size_t mlen, llen;

	for (int how = 0; how < 2; how++) {
		const char *task = how ? "t4" : "t1";
		char rel[64];
		struct evl_store *st = tu_open_default(dir);
		struct evl_stats s;
		struct evl_task_info info;

		tu_fill(st, 0, 24);
		if (how)
			assert_int_equal(evl_task_create(st, task), 0);
		assert_int_equal(evl_store_close(st), 0);	/* clean: 6 events each, t4 none */
		tu_journal_to(dir, task, ev);
		snprintf(ref, sizeof(ref), "%s.ref", dir);
		tu_copy_store(dir, ref);
		want = tu_dump(ref);	/* the batch applied */
		snprintf(rel, sizeof(rel), "tasks/%s/events", task);
		log = tu_slurp(ref, rel, &llen);
		tu_spit(dir, rel, log, llen);	/* what the applier wrote before the crash */
		meta0 = tu_slurp(dir, "tasks/t0/events.meta", &mlen);
		assert_int_equal(mlen, 6 * TASKLOG_REC);
		snprintf(rel, sizeof(rel), "tasks/%s/events.meta", task);
		tu_spit(dir, rel, meta0, mlen);	/* t0's sidecar over the task's */

		st = tu_open_default(dir);
		evl_store_stats(st, &s);
		assert_int_equal(s.tasks_aside, 0);
		assert_int_equal(s.events_unapplied, 0);
		assert_int_equal(evl_task_lookup(st, task, &info), 0);
		assert_int_equal(info.events, how ? 1 : 7);
		assert_int_equal(evl_store_close(st), 0);
		got = tu_dump(dir);
		assert_string_equal(want, got);
		snprintf(rel, sizeof(rel), "tasks/%s/events.meta.foreign", task);
		assert_true(tu_exists(dir, rel));
		{
			struct evl_check_result r;

			assert_int_equal(tu_fsck(dir, false, &r), 0);
			assert_int_equal(r.problems, 0);
		}
		free(got);
		free(want);
		free(meta0);
		free(log);
		tu_rmrf(ref);
		tu_rmrf(dir);
		mkdir(dir, 0700);
	}
}

/*
 * Issue 15 (the sweep): the sidecar of a task changed since the last
 * checkpoint is cut short (truncate -s 0) in a store that was not closed.
 * The open rebuilds its records from the log and the index before the
 * replay (it set the task aside, and its journaled events went to
 * events.unapplied), and so does fsck --repair before its recovery: either
 * way the journal is replayed as usual and every event is served.
 */
static void a_cut_sidecar_of_a_dirty_task(void **state)
{
	const char *dir = *state;
	char crashed[4200], a[4200], b[4200], meta[4400], *want, *got;
	struct evl_check_result r;
	struct evl_stats stt;
	struct evl_store *st;
	int status;
	pid_t pid;

	snprintf(crashed, sizeof(crashed), "%s/crashed", dir);
	snprintf(a, sizeof(a), "%s/a", dir);
	snprintf(b, sizeof(b), "%s/b", dir);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		st = tu_open_default(crashed);
		tu_fill(st, 0, 24);
		assert_int_equal(evl_store_checkpoint(st), 0);
		tu_fill(st, 24, 16);	/* every task changed since the checkpoint */
		assert_int_equal(evl_store_sync(st), 0);
		_exit(0);		/* no close: a crash */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	tu_copy_store(crashed, a);
	tu_copy_store(crashed, b);
	want = tu_dump(crashed);	/* recovered as it is */

	snprintf(meta, sizeof(meta), "%s/tasks/t1/events.meta", a);
	assert_int_equal(truncate(meta, 0), 0);
	st = tu_open_default(a);	/* neither refused nor t1 set aside */
	evl_store_stats(st, &stt);
	assert_int_equal(stt.tasks_aside, 0);
	assert_int_equal(stt.events_unapplied, 0);
	evl_store_close(st);
	got = tu_dump(a);
	assert_string_equal(want, got);
	free(got);

	snprintf(meta, sizeof(meta), "%s/tasks/t1/events.meta", b);
	assert_int_equal(truncate(meta, 0), 0);
	assert_int_equal(tu_fsck(b, true, &r), 0);
	assert_true(tu_reported("rebuilt from the log and the index, before the recovery"));
	assert_int_equal(tu_fsck(b, false, &r), 0);
	assert_int_equal(r.problems, 0);
	got = tu_dump(b);
	assert_string_equal(want, got);
	free(want);
	free(got);
}

/*
 * Review rev-v2, finding 6: a task tree of an older store (format 1) copied
 * into a store that has DATA_DIR/format (restored from an old backup: the
 * README's "a task tree copied inside tasks/" case) is never upgraded:
 * tasklog_format_check returns at the format file, also for fsck --repair
 * and reindex.  Its 24-byte records are read as 32-byte ones: reindex
 * refuses the whole store.
 */
static void rev_v2_an_old_task_tree_copied_in_is_upgraded(void **state)
{
	const char *dir = *state;
	struct evl_check_opts o = { .report = tu_collect };
	struct evl_check_result r;
	struct evl_store *st = tu_open_default(dir);
	char *meta, *old, *log, *got, *want;
	size_t len, llen;
	int rc;

	tu_fill(st, 0, 24);
	assert_int_equal(evl_store_close(st), 0);
	/* tasks/t9: t1's files, its sidecar as an older evlogfs wrote it */
	meta = tu_slurp(dir, "tasks/t1/events.meta", &len);
	log = tu_slurp(dir, "tasks/t1/events", &llen);
	old = malloc(len);
	for (size_t k = 0; k < len / TASKLOG_REC; k++) {
		unsigned char *out = (unsigned char *)old + k * TASKLOG_REC_V1;
		uint32_t h;

		memcpy(out, meta + k * TASKLOG_REC, 20);
		h = XXH32(out, 20, 0);
		put_le32(out + 20, h);
	}
	{
		char path[4400];

		snprintf(path, sizeof(path), "%s/tasks/t9", dir);
		assert_int_equal(mkdir(path, 0755), 0);
	}
	tu_spit(dir, "tasks/t9/events", log, llen);
	tu_spit(dir, "tasks/t9/events.meta", old, len / TASKLOG_REC * TASKLOG_REC_V1);
	tu_nlines = 0;
	rc = evl_reindex(dir, &o, &r);
	for (int i = 0; i < tu_nlines; i++)
		print_message("%s\n", tu_lines[i]);
	assert_int_equal(rc, 0);
	st = tu_open_default(dir);
	got = malloc(8192);
	assert_int_equal(tu_read_task(st, "t9", got, 8192), (ssize_t)llen);
	want = log;
	assert_string_equal(got, want);
	evl_store_close(st);
	free(got);
	free(meta);
	free(old);
	free(log);
}

/*
 * Review of issue 15 part 4: another task's sidecar over t1's beside a
 * lost batch, and the disk full (a quota) when the recovery rebuilds t1's
 * records.  The open fails (the mend's EDQUOT is the batch's error); the
 * next open finishes the job, losing nothing.
 */
static void a_full_disk_while_the_recovery_mends_a_foreign_sidecar(void **state)
{
	static const char ev[] = "{\"type\":\"note\",\"i\":99}\n";
	const char *dir = *state;
	char ref[4200], *meta0, *log, *want, *got;
	size_t mlen, llen;
	struct evl_store *st = tu_open_default(dir);
	struct evl_options o;
	struct evl_stats s;
	struct stat sb;
	char path[4400];
	int rc;

	tu_fill(st, 0, 24);
	assert_int_equal(evl_store_close(st), 0);
	tu_journal_to(dir, "t1", ev);
	snprintf(ref, sizeof(ref), "%s.ref", dir);
	tu_copy_store(dir, ref);
	want = tu_dump(ref);
	log = tu_slurp(ref, "tasks/t1/events", &llen);
	tu_spit(dir, "tasks/t1/events", log, llen);
	meta0 = tu_slurp(dir, "tasks/t0/events.meta", &mlen);
	tu_spit(dir, "tasks/t1/events.meta", meta0, mlen);

	evl_options_default(&o);
	fio_install();
	fio_fail_path(FIO_WRITE, "/events.meta", EDQUOT);
	rc = evl_store_open(dir, &o, &st);
	print_message("open with a full disk: %d (%s), failed %ld\n", rc, rc ? strerror(-rc) : "ok",
		      fio_failed());
	fio_clear();
	if (!rc)
		assert_int_equal(evl_store_close(st), 0);
	fio_uninstall();
	snprintf(path, sizeof(path), "%s/tasks/t1/events.meta", dir);
	print_message("events.meta %s (%jd bytes), .foreign %s\n",
		      stat(path, &sb) ? "absent" : "present", stat(path, &sb) ? (intmax_t)-1 :
		      (intmax_t)sb.st_size, tu_exists(dir, "tasks/t1/events.meta.foreign") ? "yes" : "no");
	st = tu_open_default(dir);
	evl_store_stats(st, &s);
	print_message("second open: aside %" PRIu64 " unapplied %" PRIu64 "\n", s.tasks_aside,
		      s.events_unapplied);
	assert_int_equal(s.tasks_aside, 0);
	assert_int_equal(s.events_unapplied, 0);
	assert_int_equal(evl_store_close(st), 0);
	got = tu_dump(dir);
	assert_string_equal(want, got);
	{
		struct evl_check_result r;

		assert_int_equal(tu_fsck(dir, false, &r), 0);
		for (int i = 0; i < tu_nlines; i++)
			print_message("  %s\n", tu_lines[i]);
		assert_int_equal(r.problems, 0);
	}
	free(got);
	free(want);
	free(meta0);
	free(log);
	tu_rmrf(ref);
}

/*
 * Review of issue 15 part 4 (dirty_cb's sidecar_foreign): t1 changed
 * since the last checkpoint (a kill -9 after its appends were applied),
 * t0's sidecar copied over t1's.  Kept aside, rebuilt, the journaled events
 * written again: nothing set aside, every event served.
 */
static void another_tasks_sidecar_over_a_dirty_task(void **state)
{
	const char *dir = *state;
	char ref[4200], *meta0, *want, *got;
	size_t mlen;
	pid_t pid;
	int status;
	struct evl_store *st = tu_open_default(dir);
	struct evl_stats s;

	tu_fill(st, 0, 24);
	assert_int_equal(evl_store_close(st), 0);
	pid = fork();
	if (pid == 0) {
		struct evl_store *cst;
		struct evl_stats cs;

		cst = tu_open_default(dir);
		tu_fill(cst, 24, 8);	/* two more events each, applied, not checkpointed */
		for (int k = 0; k < 30000; k++) {
			evl_store_stats(cst, &cs);
			if (cs.applied_lsn == cs.written_lsn && !cs.pending_events)
				break;
			usleep(1000);
		}
		_exit(cs.applied_lsn == cs.written_lsn ? 0 : 3);	/* kill -9 */
	}
	waitpid(pid, &status, 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	snprintf(ref, sizeof(ref), "%s.ref", dir);
	tu_copy_store(dir, ref);
	want = tu_dump(ref);
	meta0 = tu_slurp(dir, "tasks/t0/events.meta", &mlen);
	print_message("t0 sidecar %zu records\n", mlen / TASKLOG_REC);
	tu_spit(dir, "tasks/t1/events.meta", meta0, mlen);
	st = tu_open_default(dir);
	evl_store_stats(st, &s);
	print_message("aside %" PRIu64 " unapplied %" PRIu64 " foreign %d\n", s.tasks_aside,
		      s.events_unapplied, tu_exists(dir, "tasks/t1/events.meta.foreign"));
	assert_int_equal(evl_store_close(st), 0);
	got = tu_dump(dir);
	assert_string_equal(want, got);
	assert_int_equal(s.tasks_aside, 0);
	free(got);
	free(want);
	free(meta0);
	tu_rmrf(ref);
}

/*
 * Review of issue 15 part 4 (find_tail's sidecar_foreign): a clean store,
 * another task's sidecar with one record more (how 0) or fewer (how 1)
 * over a task's own.  The open keeps it aside and rebuilds the task's.
 */
static void another_tasks_sidecar_over_a_clean_task(void **state)
{
	const char *dir = *state;

	for (int how = 0; how < 2; how++) {
		const char *victim = how ? "t0" : "t1", *donor = how ? "t1" : "t0";
		char rel[64], ref[4200], *meta, *want, *got;
		size_t mlen;
		struct evl_store *st = tu_open_default(dir);
		struct evl_stats s;

		tu_fill(st, 0, 25);	/* t0 has 7 events, the others 6 */
		assert_int_equal(evl_store_close(st), 0);
		snprintf(ref, sizeof(ref), "%s.ref", dir);
		tu_copy_store(dir, ref);
		want = tu_dump(ref);
		snprintf(rel, sizeof(rel), "tasks/%s/events.meta", donor);
		meta = tu_slurp(dir, rel, &mlen);
		snprintf(rel, sizeof(rel), "tasks/%s/events.meta", victim);
		tu_spit(dir, rel, meta, mlen);
		st = tu_open_default(dir);
		evl_store_stats(st, &s);
		snprintf(rel, sizeof(rel), "tasks/%s/events.meta.foreign", victim);
		print_message("how %d: aside %" PRIu64 " foreign %d\n", how, s.tasks_aside,
			      tu_exists(dir, rel));
		assert_int_equal(evl_store_close(st), 0);
		got = tu_dump(dir);
		assert_string_equal(want, got);
		{
			struct evl_check_result r;

			tu_fsck(dir, false, &r);
			for (int i = 0; i < tu_nlines; i++)
				print_message("  %s\n", tu_lines[i]);
			assert_int_equal(r.problems, 0);
		}
		free(got);
		free(want);
		free(meta);
		tu_rmrf(ref);
		tu_rmrf(dir);
		mkdir(dir, 0700);
	}
}

static void wait_compaction(struct evl_store *st)
{
	struct evl_compact_status cs;
	uint64_t deadline = tu_now_ms() + 300000;

	for (evl_compact_status(st, &cs); cs.running && tu_now_ms() < deadline;
	     evl_compact_status(st, &cs))
		usleep(1000);
	assert_false(cs.running);
	assert_int_equal(cs.last_rc, 0);
}

/*
 * Review of issue 15 part 4: tasks whose head retention dropped (their
 * first record is not the index's first entry).  A lost batch beside the
 * task's own sidecar (how 0) and a dirty task with its own (how 2) keep
 * it; another task's sidecar (how 1) is found and rebuilt.
 */
static void the_foreign_check_after_retention(void **state)
{
	static const char ev[] = "{\"type\":\"note\",\"i\":99}\n";
	const char *dir = *state;

	for (int how = 0; how < 3; how++) {
		struct evl_compact_args keep = { .keep_last = 3 };
		char ref[4200], *meta0 = NULL, *log, *want, *got;
		size_t mlen, llen;
		struct evl_store *st = tu_open_default(dir);
		struct evl_stats s;
		struct evl_task_info info;

		tu_fill(st, 0, 24);
		assert_int_equal(evl_compact_start(st, &keep), 0);
		wait_compaction(st);
		tu_fill(st, 24, 4);	/* one more each, past the retained head */
		assert_int_equal(evl_task_lookup(st, "t1", &info), 0);
		print_message("how %d: t1 has %" PRIu64 " events\n", how, info.events);
		assert_int_equal(evl_store_close(st), 0);
		if (how < 2) {
			tu_journal_to(dir, "t1", ev);
		} else {
			pid_t pid = fork();
			int status;

			if (pid == 0) {
				struct evl_store *cst = tu_open_default(dir);
				struct evl_stats cs;

				tu_fill(cst, 28, 8);
				for (int k = 0; k < 30000; k++) {
					evl_store_stats(cst, &cs);
					if (cs.applied_lsn == cs.written_lsn && !cs.pending_events)
						break;
					usleep(1000);
				}
				_exit(0);
			}
			waitpid(pid, &status, 0);
		}
		snprintf(ref, sizeof(ref), "%s.ref", dir);
		tu_copy_store(dir, ref);
		want = tu_dump(ref);
		if (how < 2) {
			log = tu_slurp(ref, "tasks/t1/events", &llen);
			tu_spit(dir, "tasks/t1/events", log, llen);
			free(log);
		}
		if (how == 1) {
			meta0 = tu_slurp(dir, "tasks/t0/events.meta", &mlen);
			tu_spit(dir, "tasks/t1/events.meta", meta0, mlen);
		}
		st = tu_open_default(dir);
		evl_store_stats(st, &s);
		print_message("how %d: aside %" PRIu64 " unapplied %" PRIu64 " foreign %d\n", how,
			      s.tasks_aside, s.events_unapplied,
			      tu_exists(dir, "tasks/t1/events.meta.foreign"));
		assert_int_equal(s.tasks_aside, 0);
		assert_int_equal(s.events_unapplied, 0);
		assert_int_equal(tu_exists(dir, "tasks/t1/events.meta.foreign"), how == 1);
		assert_int_equal(evl_store_close(st), 0);
		got = tu_dump(dir);
		assert_string_equal(want, got);
		{
			struct evl_check_result r;

			tu_fsck(dir, false, &r);
			for (int i = 0; i < tu_nlines; i++)
				print_message("  %s\n", tu_lines[i]);
			assert_int_equal(r.problems, 0);
		}
		free(got);
		free(want);
		free(meta0);
		tu_rmrf(ref);
		tu_rmrf(dir);
		mkdir(dir, 0700);
	}
}

/*
 * Review of issue 15 part 4, finding 2: the rename to events.meta.foreign
 * fails with an errno task_damage() counts (EACCES).  apply_append went on
 * and wrote its record after the other task's, the bug sidecar_foreign was
 * made for.  Now the task is set aside (its event in events.unapplied) and
 * its sidecar left as it was, for fsck --repair.
 */
static void a_foreign_sidecar_that_cannot_be_moved_sets_the_task_aside(void **state)
{
	static const char ev[] = "{\"type\":\"note\",\"i\":99}\n";
	const char *dir = *state;
	char ref[4200], *meta0, *log, *m1;
	size_t mlen, llen, m1len;
	struct evl_store *st = tu_open_default(dir);
	struct evl_options o;
	struct evl_stats s;
	int rc;

	tu_fill(st, 0, 24);
	assert_int_equal(evl_store_close(st), 0);
	tu_journal_to(dir, "t1", ev);
	snprintf(ref, sizeof(ref), "%s.ref", dir);
	tu_copy_store(dir, ref);
	log = tu_slurp(ref, "tasks/t1/events", &llen);
	tu_spit(dir, "tasks/t1/events", log, llen);
	meta0 = tu_slurp(dir, "tasks/t0/events.meta", &mlen);
	tu_spit(dir, "tasks/t1/events.meta", meta0, mlen);

	evl_options_default(&o);
	fio_install();
	fio_fail_path(FIO_RENAME, "t1/events.meta", EACCES);
	rc = evl_store_open(dir, &o, &st);
	print_message("open: %d, injected %ld\n", rc, fio_failed());
	fio_clear();
	assert_int_equal(rc, 0);
	evl_store_stats(st, &s);
	print_message("aside %" PRIu64 " unapplied %" PRIu64 "\n", s.tasks_aside, s.events_unapplied);
	assert_int_equal(evl_store_close(st), 0);
	fio_uninstall();
	assert_int_equal(s.tasks_aside, 1);
	assert_int_equal(s.events_unapplied, 1);
	m1 = tu_slurp(dir, "tasks/t1/events.meta", &m1len);
	assert_int_equal(m1len, mlen);		/* nothing written after t0's records */
	assert_memory_equal(m1, meta0, mlen);
	{
		struct evl_check_result r;

		tu_fsck(dir, true, &r);
		for (int i = 0; i < tu_nlines; i++)
			print_message("  %s\n", tu_lines[i]);
		assert_int_equal(tu_fsck(dir, false, &r), 0);
		assert_int_equal(r.problems, 0);
	}
	free(m1);
	free(meta0);
	free(log);
	tu_rmrf(ref);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(changed_event_bytes_are_never_served, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(a_foreign_sidecar_is_rebuilt, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(a_foreign_log_is_never_served, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(a_format1_store_is_upgraded, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(a_format1_store_after_a_power_loss_is_upgraded,
						tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(a_changed_event_the_journal_holds_is_written_again,
						tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(a_damaged_sidecar_beside_a_lost_batch, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(a_short_sidecar_then_a_write, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(a_full_disk_while_mending_is_retried, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(a_removed_sidecar_of_a_new_task, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(a_cut_sidecar_of_a_dirty_task, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(another_tasks_sidecar_beside_a_lost_batch,
						tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(rev_v2_an_old_task_tree_copied_in_is_upgraded,
						tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(a_full_disk_while_the_recovery_mends_a_foreign_sidecar, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(another_tasks_sidecar_over_a_dirty_task, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(another_tasks_sidecar_over_a_clean_task, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(the_foreign_check_after_retention, tu_setup,
						tu_teardown),
		cmocka_unit_test_setup_teardown(a_foreign_sidecar_that_cannot_be_moved_sets_the_task_aside, tu_setup,
						tu_teardown),
	};

	return tu_run_tests("sidecar", tests, sizeof(tests) / sizeof(tests[0]));
}
