/*
 * mend.c - a task log or sidecar shorter than the index says, mended from
 * the records that wrote it: the events the journal still holds are
 * written again where the index has them, checked against what the files
 * hold (a line of another task, or of nobody, is kept apart, never
 * overwritten).  Recovery, the lines past the index and the applier mend
 * so.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "bytes.h"
#include "event.h"
#include "evlog.h"
#include "index.h"
#include "io.h"
#include "journal.h"
#include "linebuf.h"
#include "log.h"
#include "store.h"
#include "store_i.h"
#include "tasklog.h"

/*
 * Are task @uid's events @idx .. @idx + @n - 1, at log byte @off, what was
 * written (their sidecar records check out, and so do the checksums of
 * their bytes)?  1 yes, 0 no, -errno.  Reads what it checks once.
 */
int written_as_recorded(struct evl_store *st, uint64_t uid, const char *name, uint64_t off,
			       uint64_t idx, uint64_t n)
{
	struct tasklog_rec recs[64];
	char *buf = NULL;
	size_t cap = 0;
	int rc = 1;

	for (uint64_t done = 0; done < n && rc == 1;) {
		size_t chunk = n - done < 64 ? n - done : 64;
		ssize_t r = tasklog_read_recs(st->tl, uid, name, idx + done, recs, chunk);

		if (r == -EILSEQ || r == 0)
			rc = 0;
		else if (r < 0)
			rc = (int)r;
		for (ssize_t i = 0; rc == 1 && i < r; i++) {
			ssize_t got;

			if (grow_bytes(&buf, &cap, recs[i].len)) {
				rc = -ENOMEM;
				break;
			}
			got = tasklog_read(st->tl, uid, name, off, buf, recs[i].len);
			if (got < 0)
				rc = (int)got;
			else if ((size_t)got != recs[i].len ||
				 tasklog_sum(buf, recs[i].len) != recs[i].sum)
				rc = 0;
			off += recs[i].len;
		}
		done += r > 0 ? (uint64_t)r : 0;
	}
	free(buf);
	return rc;
}

struct mend {
	struct evl_store *st;
	const struct index_task *task;	/* lengths in the files */
	uint64_t base, len;		/* the task's base_len; its log's size */
	uint64_t have, k, end;		/* records there; events seen; where the last ended */
	uint64_t upto;			/* records rebuilt up to here only */
	struct tasklog_rec recs[64];
	size_t n;
	char *buf;
	size_t cap;
	int rc;
};

static int mend_flush(struct mend *m)
{
	int rc = m->n ? tasklog_write_recs(m->st->tl, m->task->uid, m->task->name,
					   m->k - m->n, m->recs, m->n) : 0;

	m->n = 0;
	return rc;
}

/* One of the task's events in log order: its record, if it is missing and a whole line is there. */
static int mend_cb(void *arg, const struct index_event *ev)
{
	struct mend *m = arg;
	uint64_t off = ev->off - m->base;
	char before = '\n';
	ssize_t got;

	if (ev->off < m->base)
		return 0;	/* dropped by retention */
	if (m->k >= m->upto)
		return 1;
	if (off != m->end || !ev->len || ev->len > m->len - off)
		return 1;	/* not where the last ended, or past the log: no longer agreeing */
	m->end = off + ev->len;
	if (m->k++ < m->have)
		return 0;
	if (grow_bytes(&m->buf, &m->cap, ev->len)) {
		m->rc = -ENOMEM;
		return 1;
	}
	got = tasklog_read(m->st->tl, m->task->uid, m->task->name, off, m->buf, ev->len);
	if (got == (ssize_t)ev->len && off)
		got = tasklog_read(m->st->tl, m->task->uid, m->task->name, off - 1, &before, 1) == 1
		      ? got : -EIO;
	if (got != (ssize_t)ev->len || m->buf[ev->len - 1] != '\n' || before != '\n') {
		m->k--;
		return 1;	/* not a whole line there */
	}
	m->recs[m->n++] = (struct tasklog_rec){ ev->gseq, m->task->last_ns, ev->len,
						tasklog_sum(m->buf, ev->len) };
	if (m->n == 64 && (m->rc = mend_flush(m)))
		return 1;
	return 0;
}

struct first_event {
	uint64_t base;
	struct index_event ev;
};

static int first_event_cb(void *arg, const struct index_event *ev)
{
	struct first_event *f = arg;

	if (ev->off < f->base)
		return 0;	/* dropped by retention */
	f->ev = *ev;
	return 1;
}

/*
 * During recovery: is the sidecar of task @task (lengths in its files; @n
 * records, a log of @len bytes) another log's, one copied over it?  Its
 * first record must be the task's first event: the index's, or for a task
 * the index has no event of yet, that of @p (the replayed append that
 * could not be written).  A gseq is one event's, so another task's sidecar
 * never has it, while a copy of this task's own, older or cut short, does.
 * If not, and the log holds that event where it should (the index's: a
 * whole line of its length at byte 0; @p's: its bytes), the sidecar is
 * kept as events.meta.foreign and an empty one made, for mend_records and
 * the replay to rebuild, as fsck --repair does.  Else the records would
 * give the log's events another task's gseqs, or the task would be set
 * aside and its journaled events sent to events.unapplied.  1 if the
 * sidecar was kept aside, 0 if not (it is this log's, or there is nothing
 * to tell by), or -errno.
 */
int sidecar_foreign(struct evl_store *st, struct index_txn *t,
			   const struct index_task *task, uint64_t n, uint64_t len,
			   const struct pend *p)
{
	struct first_event f = { .base = task->base_len };
	struct tasklog_rec r;
	char *line;
	ssize_t got;
	int rc;

	if (!st->recovering || !n)
		return 0;
	if (task->nevents) {
		struct index_view *v;

		rc = index_view_open(t, "", 0, task->uid, &v);
		if (rc)
			return rc == -ENOENT ? 0 : rc;
		rc = index_view_iter(v, 0, first_event_cb, &f);
		index_view_free(v);
		if (rc <= 0)
			return rc;
		if (f.ev.off != task->base_len)
			return 0;
	} else if (p && p->kind == REC_APPEND && p->n && !task->log_len) {
		f.ev = (struct index_event){ .gseq = p->gseq, .len = p->ev[0].len };
	} else {
		return 0;
	}
	got = tasklog_read_recs(st->tl, task->uid, task->name, 0, &r, 1);
	if (got != 1)
		return got < 0 && !task_damage(got) && got != -EILSEQ ? (int)got : 0;
	if (r.gseq == f.ev.gseq && r.len == f.ev.len)
		return 0;
	/* the log must hold that event where it says: else not ours to tell */
	if (!f.ev.len || f.ev.len > len)
		return 0;
	line = malloc(f.ev.len);
	if (!line)
		return -ENOMEM;
	got = tasklog_read(st->tl, task->uid, task->name, 0, line, f.ev.len);
	if (got != (ssize_t)f.ev.len)
		rc = 0;
	else if (task->nevents)
		rc = line[f.ev.len - 1] == '\n' && !memchr(line, '\n', f.ev.len - 1);
	else
		rc = !memcmp(line, p->data + p->ev[0].off, f.ev.len);
	free(line);
	if (!rc)
		return got < 0 && !task_damage(got) ? (int)got : 0;
	rc = tasklog_meta_foreign(st->tl, task->uid, task->name);
	if (rc)
		return rc;
	evl_log(LOG_WARNING, "recovery: task %s: its sidecar describes another log (its first "
		"record is gseq %" PRIu64 ", %" PRIu32 " bytes; the log's first event is gseq %"
		PRIu64 ", %" PRIu32 " bytes): kept as events.meta.foreign, its records rebuilt",
		task->name, r.gseq, r.len, f.ev.gseq, f.ev.len);
	return 1;
}

/*
 * Task @task (lengths in its files) has fewer sidecar records (@n) than the
 * index has events, and its log holds at least what the index covers
 * (@len bytes): a sidecar cut short, emptied or replaced by a shorter one.
 * Its missing records are rebuilt from the index and the log, as far as
 * each event the index has is a whole line at exactly that byte (its gseq;
 * its time the task's last append, which makes retention keep it longer,
 * never shorter), as fsck --repair does.  Else the recovery would set the
 * task aside, and its journaled events would go to events.unapplied.
 * Records rebuilt (>= 0) or -errno.
 */
int mend_records(struct evl_store *st, struct index_txn *t, struct index_task *task,
			uint64_t n, uint64_t len, uint64_t upto)
{
	struct mend m = { .st = st, .task = task, .base = task->base_len, .len = len, .have = n,
			  .upto = upto };
	struct index_view *v;
	int rc;

	rc = index_view_open(t, "", 0, task->uid, &v);
	if (rc)
		return rc == -ENOENT ? 0 : rc;
	rc = tasklog_truncate(st->tl, task->uid, task->name, len, n);	/* no partial record */
	if (!rc) {
		rc = index_view_iter(v, 0, mend_cb, &m);
		rc = rc > 0 ? 0 : rc;
	}
	if (!rc)
		rc = m.rc;
	if (!rc)
		rc = mend_flush(&m);
	index_view_free(v);
	free(m.buf);
	if (rc)
		return rc;
	if (m.k > n)
		evl_log(LOG_WARNING, "task %s: its sidecar had %" PRIu64 " of the %" PRIu64
			" records the index has: %" PRIu64 " rebuilt from the log and the index",
			task->name, n, task->nevents, m.k - n);
	return (int)(m.k - n);
}

/*
 * mend_records for task @task (as the index has it) if its sidecar is
 * shorter than the index and its log is not, or another task's
 * (sidecar_foreign, with @p the append to write, or NULL).  > 0 if a
 * sidecar was made or records rebuilt (a write may be retried), 0 if not,
 * or -errno.
 */
int mend_short(struct evl_store *st, struct index_txn *t, const struct index_task *task,
		      const struct pend *p)
{
	struct index_task ft = *task;
	uint64_t len, n;
	int rc;

	ft.log_len -= ft.base_len;
	ft.nevents -= ft.base_n;
	bool made = false;

	rc = tasklog_sizes(st->tl, task->name, &len, &n);
	/* a sidecar removed before the mount (not while mounted: item 6 sets it aside) */
	if (rc == -ENOENT && st->recovering && tasklog_recreate_meta(st->tl, task->name) > 0) {
		made = true;
		rc = tasklog_sizes(st->tl, task->name, &len, &n);
	}
	/* ... or another task's copied over it */
	if (!rc && n && len >= ft.log_len) {
		rc = sidecar_foreign(st, t, &ft, n, len, p);
		if (rc < 0)
			return rc;
		if (rc) {
			made = true;
			n = 0;
		}
		rc = 0;
	}
	if (rc || n >= ft.nevents || len < ft.log_len)
		return rc == -ENOENT ? 0 : rc ? rc : made;
	rc = mend_records(st, t, &ft, n, len, ft.nevents);
	return rc < 0 ? rc : rc + made;
}
