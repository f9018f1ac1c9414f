/*
 * recover_tail.c - recovery's part for events past the index whose journal
 * records are gone: lines a task log holds past what the index says, kept
 * when they are proven to be the store's own, set apart otherwise.
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
 * ---- events past the index whose journal records are gone ----
 *
 * A crash can lose a batch's index commit after its bytes reached the
 * task's files; the replay writes them again from the journal.  When the
 * journal lost those records too (a damaged, emptied or restored journal),
 * nothing does: the events stay past the index's lengths, unserved, and the
 * next append finds the files longer than the index.  They are the store's
 * own events, acknowledged: each has its sidecar record (checksum good,
 * length ending a whole valid line).  After the replay, every live task's
 * files are compared with the index (a stat of each), and such events are
 * indexed where they are, with the gseqs and times their records hold
 * (handed out once, by the run that wrote them; next_gseq goes past them).
 * What no record vouches for is not cut away either: whole lines (appended
 * outside the store while it was down, or a batch that lost both its journal
 * and its sidecar records) go to the task's events.unapplied, counted
 * (lines_unapplied); only a last line without its newline, a torn write,
 * is cut.  Recovery leaves every such byte in place until the replay has
 * written what the journal still holds (dirty_cb).
 */
struct tail {
	struct index_task task;
	uint64_t len, n;		/* the files' sizes */
};

struct tails {
	struct evl_store *st;
	struct index_txn *t;
	struct tail *v;
	size_t n, cap;			/* cap in bytes (grow_bytes) */
	int rc;
};

static int find_tail(void *arg, const struct index_task *task)
{
	struct tails *c = arg;
	uint64_t len, n;
	int rc;

	if (task->state != TASK_LIVE || switch_broken(c->st, task->uid) ||
	    is_aside(c->st, task->uid))
		return 0;
	rc = tasklog_sizes(c->st->tl, task->name, &len, &n);
	/*
	 * A sidecar cut short, removed or another task's (sidecar_foreign)
	 * beside a log as long as the index says (a task the replay did not
	 * write): its records rebuilt now, not the task set aside at its
	 * first use.
	 */
	if ((rc == -ENOENT || (!rc && n != task->nevents - task->base_n &&
			       len >= task->log_len - task->base_len)) &&
	    mend_short(c->st, c->t, task, NULL) > 0)
		rc = tasklog_sizes(c->st->tl, task->name, &len, &n);
	/* no files, not the index's yet, or damage the replay found: not this pass's */
	if (rc)
		return 0;
	if (len <= task->log_len - task->base_len && n <= task->nevents - task->base_n)
		return 0;
	if (len < task->log_len - task->base_len || n < task->nevents - task->base_n)
		return 0;	/* shorter: damage, set aside at its first use */
	if (grow_bytes(&c->v, &c->cap, (c->n + 1) * sizeof(*c->v)))
		return -ENOMEM;
	c->v[c->n++] = (struct tail){ *task, len, n };
	return 0;
}

struct adopt {
	struct evl_store *st;
	struct tail *tl;
	struct tasklog_rec *recs;
	char *types;			/* EVENT_TYPE_MAX + 1 per event */
	size_t *tlens;
	uint64_t k, bytes, max_gseq;	/* the events adopted */
};

static int adopt_txn(struct index_txn *t, void *arg)
{
	struct adopt *a = arg;
	struct index_task task = a->tl->task;
	struct index_meta m;
	uint64_t off = task.log_len;
	int rc = index_get_meta(t, &m);

	for (uint64_t i = 0; i < a->k && !rc; i++) {
		rc = index_add_event(t, task.uid, a->recs[i].gseq, a->types + i * (EVENT_TYPE_MAX + 1),
				     a->tlens[i], off, a->recs[i].len);
		off += a->recs[i].len;
		if (task.last_ns < a->recs[i].time_ns)
			task.last_ns = a->recs[i].time_ns;
	}
	task.log_len += a->bytes;
	task.nevents += a->k;
	if (!rc)
		rc = index_task_put(t, &task);
	m.events += a->k;
	m.log_bytes += a->bytes;
	if (m.next_gseq <= a->max_gseq)
		m.next_gseq = a->max_gseq + 1;
	return rc ? rc : index_put_meta(t, &m);
}

static void adopt_free(struct adopt *a)
{
	free(a->recs);
	free(a->tlens);
	free(a->types);
}

/*
 * The events of @task past the index that its files vouch for (@len log
 * bytes, @n records on disk): each a sidecar record that checks out, a
 * whole valid line where the last ended with the checksum its record has
 * (a line changed by damage is not adopted, to set the task aside at its
 * first read), gseqs rising.  Fills @a (recs,
 * types, k, bytes, max_gseq; adopt_free() it).  0 or -ENOMEM.
 */
static int vouched(struct evl_store *st, struct event_validator *val,
		   const struct index_task *task, uint64_t len, uint64_t n, struct adopt *a)
{
	uint64_t off = task->log_len - task->base_len, idx = task->nevents - task->base_n;
	uint64_t want = n > idx ? n - idx : 0, last = 0;
	char *line = NULL;

	a->k = a->bytes = a->max_gseq = 0;
	if (!want || len <= off)
		return 0;
	if (want > 1u << 20)
		want = 1u << 20;	/* a bound on memory: the rest is not vouched for */
	a->recs = calloc(want, sizeof(*a->recs));
	a->tlens = calloc(want, sizeof(*a->tlens));
	a->types = calloc(want, EVENT_TYPE_MAX + 1);
	if (!a->recs || !a->tlens || !a->types)
		return -ENOMEM;
	for (uint64_t got = 0; got < want;) {
		size_t chunk = want - got < 64 ? want - got : 64;
		ssize_t r = tasklog_read_recs(st->tl, task->uid, task->name, idx + got,
					      a->recs + got, chunk);

		if (r <= 0)
			break;		/* a bad record ends what is vouched for */
		got += r;
		a->k = got;
	}
	for (uint64_t i = 0; i < a->k; i++) {
		struct tasklog_rec *rec = &a->recs[i];
		struct event_error ee;
		ssize_t got;

		/*
		 * A batch whose index commit was lost came after every one the
		 * index holds: its gseqs are at least the index's next_gseq at
		 * the open (a record copied from elsewhere is not the store's).
		 */
		if (!rec->len || rec->len > (1u << 30) || rec->gseq <= last ||
		    rec->gseq < st->recover_gseq || off + a->bytes + rec->len > len) {
			a->k = i;
			break;
		}
		free(line);
		line = malloc(rec->len);
		if (!line)
			return -ENOMEM;
		got = tasklog_read(st->tl, task->uid, task->name, off + a->bytes, line, rec->len);
		if (got != (ssize_t)rec->len || line[rec->len - 1] != '\n' ||
		    tasklog_sum(line, rec->len) != rec->sum ||
		    event_validate(val, line, rec->len - 1, a->types + i * (EVENT_TYPE_MAX + 1),
				   &a->tlens[i], &ee)) {
			a->k = i;
			break;
		}
		last = rec->gseq;
		a->bytes += rec->len;
	}
	free(line);
	a->max_gseq = last;
	return 0;
}

/* Largest rest past a task's index that is moved to events.unapplied at open. */
#define TAIL_KEEP_MAX (16u << 20)

/*
 * What is past @tl's index after its vouched events: whole lines no record
 * vouches for (appended outside the store, or a batch whose journal record
 * and sidecar records are both gone) go to its events.unapplied, counted;
 * a last line without its newline is a torn write.  Then the files are cut
 * where the index ends.  0 or -errno.
 */
static int settle_rest(struct evl_store *st, struct tail *tl, uint64_t len, uint64_t n)
{
	const struct index_task *task = &tl->task;
	uint64_t rest = tl->len - len, whole = 0;
	char *buf = NULL;
	int rc = 0;

	if (rest > TAIL_KEEP_MAX) {
		evl_log(LOG_ERR, "recovery: task %s: %" PRIu64 " bytes past its index that no "
			"record vouches for, too many to move aside at open: left for evlogctl fsck "
			"--repair (the task is set aside at its first use)", task->name, rest);
		return 0;
	}
	if (rest) {
		ssize_t got;

		buf = malloc(rest);
		if (!buf)
			return -ENOMEM;
		got = tasklog_read(st->tl, task->uid, task->name, len, buf, rest);
		if (got != (ssize_t)rest) {
			free(buf);
			return got < 0 ? (int)got : -EIO;
		}
		for (uint64_t i = rest; i > 0 && !whole; i--)
			if (buf[i - 1] == '\n')
				whole = i;
	}
	if (whole) {
		uint64_t lines = 0;

		for (uint64_t i = 0; i < whole; i++)
			lines += buf[i] == '\n';
		rc = tasklog_rescue(st->tl, task->name, buf, whole);
		if (rc) {
			free(buf);
			return rc;
		}
		evl_log(LOG_WARNING, "recovery: task %s: %" PRIu64 " lines past its index that "
			"no record vouches for (appended outside the store?) moved to "
			"tasks/%s/events.unapplied", task->name, lines, task->name);
		pthread_mutex_lock(&st->lock);
		st->lines_moved += lines;
		pthread_mutex_unlock(&st->lock);
	}
	if (rest > whole)
		evl_log(LOG_INFO, "recovery: task %s: cutting %" PRIu64 " bytes of a torn write",
			task->name, rest - whole);
	free(buf);
	rc = tasklog_truncate(st->tl, task->uid, task->name, len, n);
	if (!rc)
		rc = tasklog_sync(st->tl, task->uid, task->name);
	return rc;
}

/*
 * Index the whole events of @tl past the index that its files vouch for;
 * settle the rest (settle_rest).
 */
static int adopt_tail(struct evl_store *st, struct event_validator *val, struct tail *tl)
{
	struct adopt a = { .st = st, .tl = tl };
	uint64_t len = tl->task.log_len - tl->task.base_len;
	uint64_t n = tl->task.nevents - tl->task.base_n;
	int rc = vouched(st, val, &tl->task, tl->len, tl->n, &a);

	if (rc)
		goto out;
	if (!a.k)
		goto rest;
	/* the bytes are durable before the index vouches for them */
	rc = tasklog_sync(st->tl, tl->task.uid, tl->task.name);
	if (!rc)
		rc = store_write_txn(st, adopt_txn, &a);
	if (rc)
		goto out;
	if (st->next_gseq <= a.max_gseq)
		st->next_gseq = a.max_gseq + 1;
	evl_log(LOG_WARNING, "recovery: task %s: %" PRIu64 " events past its index (gseq %"
		PRIu64 "-%" PRIu64 ") whose journal records are gone were indexed from its files",
		tl->task.name, a.k, a.recs[0].gseq, a.max_gseq);
	len += a.bytes;
	n += a.k;
rest:
	if (tl->len > len || tl->n > n)
		rc = settle_rest(st, tl, len, n);
out:
	adopt_free(&a);
	return rc;
}

int adopt_tails(struct evl_store *st, struct event_validator *val)
{
	struct tails c = { .st = st };
	struct index_txn *t;
	int rc = index_begin(st->ix, false, &t);

	if (rc)
		return rc;
	c.t = t;
	rc = index_task_list(t, NULL, 0, find_tail, &c);
	index_abort(t);
	for (size_t i = 0; i < c.n && !rc; i++)
		rc = adopt_tail(st, val, &c.v[i]);
	free(c.v);
	return rc;
}
