/*
 * writer.c - a task's writers: lines reassembled from write()s, validated,
 * journaled as one record per write and put on the pending list; a refused
 * line leaves nothing stored.
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
#include "typeset.h"

/* ---- writing ---- */

/* Record buffers larger than this are given back after each write. */
#define RECORD_KEEP (64u << 10)

int evl_writer_open(struct evl_store *st, uint64_t uid, struct evl_writer **out)
{
	struct evl_task_info info;
	struct evl_writer *w;
	uint64_t gen;
	int rc;

	if (st->opt.read_only)
		return -EROFS;
	pthread_mutex_lock(&st->lock);
	gen = st->delete_gen;
	pthread_mutex_unlock(&st->lock);
	rc = evl_task_stat(st, uid, &info);
	if (!rc)
		rc = task_writable(st, uid);
	if (rc)
		return rc;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	rc = event_validator_new(st->opt.type_field, st->opt.max_event, &w->val);
	if (rc) {
		free(w);
		return rc;
	}
	w->st = st;
	w->uid = uid;
	w->gen = gen;
	memcpy(w->name, info.name, sizeof(w->name));
	linebuf_init(&w->lb, st->opt.max_event);
	*out = w;
	return 0;
}

/* Count @more held bytes against max_held.  0 or -ENOBUFS. */
static int held_take(struct evl_store *st, size_t more)
{
	uint_fast64_t cur = atomic_load(&st->held_bytes);

	do {
		if (st->opt.max_held && cur + more > st->opt.max_held)
			return -ENOBUFS;
	} while (!atomic_compare_exchange_weak(&st->held_bytes, &cur, cur + more));
	return 0;
}

static void held_give(struct evl_store *st, size_t less)
{
	atomic_fetch_sub(&st->held_bytes, less);
}

/* Forget the held line (stored, refused, or lost). */
static void drop_held(struct evl_writer *w)
{
	held_give(w->st, linebuf_pending(&w->lb));
	linebuf_clear(&w->lb);
}

/* Start a new record (one write(), or the held line at close). */
static int record_reset(struct evl_writer *w)
{
	w->dir_len = w->data_len = 0;
	w->n = 0;
	memset(&w->err, 0, sizeof(w->err));
	if (!w->val)
		return event_validator_new(w->st->opt.type_field, w->st->opt.max_event, &w->val);
	return 0;
}

/* After a write: give back memory only a long line needed. */
static void record_trim(struct evl_writer *w)
{
	if (w->dir_cap > RECORD_KEEP) {
		free(w->dir);
		w->dir = NULL;
		w->dir_cap = 0;
	}
	if (w->data_cap > RECORD_KEEP) {
		free(w->data);
		w->data = NULL;
		w->data_cap = 0;
	}
}

/* linebuf callback: validate one line and add it to the record. */
static int take_line(void *arg, const char *line, size_t len, size_t index)
{
	struct evl_writer *w = arg;
	char type[EVENT_TYPE_MAX + 1];
	size_t tlen;
	int rc;

	if (event_is_blank(line, len))
		return 0;
	rc = event_validate(w->val, line, len, type, &tlen, &w->err);
	if (rc)
		return rc;
	if (grow_bytes(&w->dir, &w->dir_cap, w->dir_len + REC_EVENT_DIR(tlen)) ||
	    grow_bytes(&w->data, &w->data_cap, w->data_len + len + 1))
		return -ENOMEM;
	rec_put_event(w->dir + w->dir_len, len + 1, type, tlen);
	w->dir_len += REC_EVENT_DIR(tlen);
	memcpy(w->data + w->data_len, line, len);
	w->data[w->data_len + len] = '\n';
	w->data_len += len + 1;
	w->n++;
	return 0;
}

/*
 * Log, count and show a refused write (-EINVAL, -EFBIG or -ENOBUFS).  The
 * refused event is named by the place it would have had in the task log:
 * its ordinal (1 = the first event) and its byte offset, counting what is
 * stored now plus the events of the same write() before it.
 */
static void reject_at(struct evl_writer *w, int rc, uint32_t n_before, size_t bytes_before)
{
	struct evl_store *st = w->st;
	struct evl_task_info info = { 0 };
	char where[96], col[32] = "";

	if (rc == -EFBIG && !w->err.err)
		snprintf(w->err.reason, sizeof(w->err.reason),
			 "line longer than max_event=%zu", st->opt.max_event);
	if (rc == -ENOBUFS)
		snprintf(w->err.reason, sizeof(w->err.reason),
			 "unterminated lines over max_held=%zu", st->opt.max_held);
	if (w->err.col && rc == -EINVAL)
		snprintf(col, sizeof(col), " col %zu", w->err.col);
	evl_task_stat(st, w->uid, &info);	/* a deleted task: counted from 0 */
	snprintf(where, sizeof(where), "event %" PRIu64 " (byte %" PRIu64 ")%s",
		 info.events + n_before + 1, info.size + bytes_before, col);
	pthread_mutex_lock(&st->lock);
	if (rc == -EFBIG)
		st->rejected_too_big++;
	else if (rc == -ENOBUFS)
		st->rejected_held++;
	else if (rc == -EDQUOT)
		st->rejected_types++;
	else
		st->rejected_invalid++;
	snprintf(st->last_rejection, sizeof(st->last_rejection), "task %s %s: %s", w->name,
		 where, w->err.reason);
	pthread_mutex_unlock(&st->lock);
	evl_log(LOG_WARNING, "rejected %s: task %s %s: %s", rc == -ENOBUFS ? "write" : "event",
		w->name, where, w->err.reason);
}

/* The event after the record's last: where a refused line would have stood. */
static void reject(struct evl_writer *w, int rc)
{
	reject_at(w, rc, w->n, w->data_len);
}

/* ---- max_types ---- */

static int seen_type(void *arg, const char *name, size_t len, uint64_t ev, uint64_t bytes)
{
	/* a name no event can have (a damaged index): views refuse it, writes cannot add it */
	if (len > EVENT_TYPE_MAX)
		return 0;
	return typeset_add(arg, name, len);
}

static int seen_pending(void *arg, const struct pend *p, const struct pend_ev *e)
{
	return typeset_add(arg, ev_type(p, e), e->tlen);
}

int store_types_load(struct evl_store *st)
{
	struct snap s;
	int rc;

	if (!st->opt.max_types || st->opt.read_only)
		return 0;
	rc = typeset_new(&st->types_seen);
	if (rc)
		return rc;
	rc = snap_begin(st, &s);
	if (rc)
		return rc;
	rc = each_pending(st, s.applied, 0, "", 0, seen_pending, st->types_seen);
	snap_release(&s);
	if (!rc)
		rc = index_type_list(s.t, seen_type, st->types_seen);
	snap_end(&s);
	return rc;
}

/*
 * Under append_lock: may record @p be stored, or does it bring the store
 * more than max_types distinct types?  0, with the events that bring a new
 * type in w->fresh (types_took adds them once the record is journaled);
 * -EDQUOT for the whole write (nothing of it is stored), the first event
 * past the bound in *@refused and why in w->err (the caller says it, once
 * append_lock is let go); or -ENOMEM.  A hash lookup per event: a write of
 * many new types holds the lock no longer than one of known ones.
 */
static int types_admit(struct evl_writer *w, const struct pend *p, uint32_t *refused)
{
	struct evl_store *st = w->st;
	struct typeset *mine = NULL;	/* this write's new types, made at the first */
	size_t have;
	int rc = 0;

	w->nfresh = 0;
	if (!st->types_seen)
		return 0;
	have = typeset_count(st->types_seen);
	for (uint32_t i = 0; i < p->n && !rc; i++) {
		const struct pend_ev *e = &p->ev[i];
		const char *t = ev_type(p, e);

		if (typeset_has(st->types_seen, t, e->tlen) ||
		    (mine && typeset_has(mine, t, e->tlen)))
			continue;
		if (have + w->nfresh + 1 > st->opt.max_types) {
			snprintf(w->err.reason, sizeof(w->err.reason), "a type past max_types=%zu"
				 " (type %zu of the store): \"%.*s\"", st->opt.max_types,
				 have + w->nfresh + 1, (int)e->tlen, t);
			w->err.col = 0;
			*refused = i;
			rc = -EDQUOT;
		} else if ((!mine && typeset_new(&mine)) || typeset_add(mine, t, e->tlen) ||
			   GROW(w->fresh, w->fresh_cap, w->nfresh + 1)) {
			rc = -ENOMEM;
		} else {
			w->fresh[w->nfresh++] = i;
		}
	}
	typeset_free(mine);
	return rc;
}

/* Under append_lock, once @p is journaled: its new types count from now on. */
static void types_took(struct evl_writer *w, const struct pend *p)
{
	for (size_t k = 0; k < w->nfresh; k++) {
		const struct pend_ev *e = &p->ev[w->fresh[k]];

		/* no memory: the type goes uncounted (the bound is passed by one per failure) */
		typeset_add(w->st->types_seen, ev_type(p, e), e->tlen);
	}
	w->nfresh = 0;
}

static void record_latency(struct evl_store *st, uint64_t start)
{
	double s = (mono_ns() - start) / 1e9;
	int i = 0;

	while (s > evl_lat_bounds[i])
		i++;
	st->lat_count[i]++;
	st->lat_sum += s;
}

/* Journal the record built in @w and put it on the pending list. */
static int submit(struct evl_writer *w)
{
	struct evl_store *st = w->st;
	size_t len = APPEND_HDR + w->dir_len + w->data_len;
	uint64_t start = mono_ns(), lsn, gen, failures;
	struct iovec iov;
	unsigned char *buf;
	struct pend *p;
	uint32_t refused = 0;
	int rc;

	/* its files cannot take it: refused, not acknowledged and lost */
	if (is_aside(st, w->uid))
		return -EIO;
	buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	rec_put_append(buf, w->uid, w->n, w->data_len);
	memcpy(buf + APPEND_HDR, w->dir, w->dir_len);
	memcpy(buf + APPEND_HDR + w->dir_len, w->data, w->data_len);
	p = pend_parse(REC_APPEND, buf, len);
	if (!p)
		return -ENOMEM;
	p->spare = calloc(1, sizeof(*p->spare));
	if (!p->spare) {
		pend_free(p);
		return -ENOMEM;
	}

	pthread_mutex_lock(&st->lock);
	failures = st->apply_failures;
	while (st->pending_mem && st->pending_mem + p->mem > st->opt.max_pending) {
		/* wait for the applier; nothing drains after a failed fsync */
		uint64_t at = mono_ns() + 100000000ull;
		struct timespec ts = { at / 1000000000ull, at % 1000000000ull };
		struct journal_stats js;

		pthread_cond_timedwait(&st->applied_cv, &st->lock, &ts);
		store_journal_stats(st, &js);
		rc = -js.error;
		/*
		 * Nor while the applier keeps failing (no descriptor, no room,
		 * an I/O error): the writer gets its errno in bounded time, and
		 * the FUSE workers it would hold stay free for everyone else.
		 * It has failed since this wait began and for a while: one
		 * failure the next try cures does not refuse anything.
		 */
		if (!rc && st->apply_err && st->apply_failures != failures &&
		    mono_ns() - st->apply_failing_since >= WRITER_GIVE_UP_NS)
			rc = st->apply_err;
		if (rc) {
			pthread_mutex_unlock(&st->lock);
			pend_free(p);
			return rc;
		}
	}
	pthread_mutex_unlock(&st->lock);

	pthread_mutex_lock(&st->append_lock);
	/*
	 * Deletes are journaled under append_lock too: looked at here, the
	 * task cannot be deleted before this record, whose events would then
	 * be acknowledged and never written.
	 */
	pthread_mutex_lock(&st->lock);
	gen = st->delete_gen;
	pthread_mutex_unlock(&st->lock);
	if (gen != w->gen) {
		struct delete_check d = { .uid = w->uid };

		rc = store_delete_check(st, &d);
		if (rc) {
			pthread_mutex_unlock(&st->append_lock);
			pend_free(p);
			return rc;
		}
		w->gen = gen;
	}
	rc = types_admit(w, p, &refused);
	if (rc) {
		pthread_mutex_unlock(&st->append_lock);
		if (rc == -EDQUOT)
			reject_at(w, rc, refused, p->ev[refused].off);
		pend_free(p);
		return rc;
	}
	pthread_mutex_lock(&st->lock);
	p->gseq = st->next_gseq;
	st->next_gseq += p->n;
	pthread_mutex_unlock(&st->lock);
	p->time_ns = wall_ns();
	rec_put_commit(buf, p->gseq, p->time_ns);
	iov.iov_base = buf;
	iov.iov_len = len;
	rc = journal_append(st->jn, REC_APPEND, &iov, 1, &lsn);
	pthread_mutex_lock(&st->lock);
	if (rc) {
		st->next_gseq -= p->n;	/* nobody took one since: append_lock */
	} else {
		p->lsn = lsn;
		pend_enqueue(st, p);
		st->appended_events += p->n;
		st->appended_bytes += p->data_len;
	}
	pthread_mutex_unlock(&st->lock);
	if (!rc)
		types_took(w, p);
	pthread_mutex_unlock(&st->append_lock);
	if (rc) {
		pend_free(p);
		return rc;
	}
	if (st->opt.commit_sync)
		rc = journal_wait(st->jn, lsn);
	pthread_mutex_lock(&st->lock);
	record_latency(st, start);
	pthread_mutex_unlock(&st->lock);
	return rc;
}

/*
 * A line over max_event that began in earlier writes is refused, and
 * dropped, when a write continues it past the limit.  The kernel cuts a big
 * write() into requests and returns a short count when one is refused; a
 * careful writer then sends the rest again, which begins with the refused
 * request's bytes: that must fail with EFBIG again (the caller's write()
 * gets the errno), not start a new line with the refused line's middle.
 * Any other write starts a new line.
 */
#define RESEND_PREFIX 4096

static void remember_refused(struct evl_writer *w, const void *data, size_t n)
{
	w->resend_len = n < RESEND_PREFIX ? n : RESEND_PREFIX;
	w->resend_hash = XXH3_64bits(data, w->resend_len);
}

static bool resends_refused(struct evl_writer *w, const void *data, size_t n)
{
	size_t len = w->resend_len;

	w->resend_len = 0;	/* only the next write may be the resend */
	return len && n >= len && XXH3_64bits(data, len) == w->resend_hash;
}

int evl_writer_write(struct evl_writer *w, const void *data, size_t n)
{
	size_t held = linebuf_pending(&w->lb), next;
	int rc;

	if (resends_refused(w, data, n))
		return -EFBIG;	/* the same refusal, not counted again */
	rc = record_reset(w);
	if (rc)
		return rc;
	rc = linebuf_feed(&w->lb, data, n, take_line, w);
	if (rc == -EINVAL || rc == -EFBIG) {
		/*
		 * The handle forgets the refused line.  A refused line begun
		 * in this write leaves the handle as it was (a line held from
		 * earlier writes stays); one that continued the held line
		 * drops it, and the next write starts a new line.
		 */
		reject(w, rc);
		if (linebuf_refused_held(&w->lb)) {
			drop_held(w);
			if (rc == -EFBIG)
				remember_refused(w, data, n);
		}
		goto out;
	}
	if (rc)
		goto out;
	next = linebuf_next_pending(&w->lb);
	if (next > held) {
		/* nothing of the write is stored or held: it may be tried again */
		rc = held_take(w->st, next - held);
		if (rc) {
			linebuf_rollback(&w->lb);
			reject(w, rc);
			goto out;
		}
	}
	rc = w->n ? submit(w) : 0;
	if (rc) {
		linebuf_rollback(&w->lb);
		if (next > held)
			held_give(w->st, next - held);
	} else {
		linebuf_commit(&w->lb);
		if (next < held)
			held_give(w->st, held - next);
	}
out:
	record_trim(w);
	return rc;
}

/* Validate the held line as a whole event: 0 (or blank) or -EINVAL/-EFBIG/-ENOMEM. */
static int take_held(struct evl_writer *w)
{
	int rc = record_reset(w);

	return rc ? rc : take_line(w, w->lb.buf, linebuf_pending(&w->lb), 0);
}

int evl_writer_flush(struct evl_writer *w)
{
	int rc;

	if (!linebuf_pending(&w->lb))
		return 0;
	rc = take_held(w);
	if (rc == -EINVAL || rc == -EFBIG)
		reject(w, rc);
	else if (!rc && w->n)
		rc = submit(w);
	drop_held(w);
	record_trim(w);
	return rc;
}

int evl_writer_flush_valid(struct evl_writer *w)
{
	int rc;

	if (!linebuf_pending(&w->lb))
		return 0;
	rc = take_held(w);
	if (rc == -EFBIG)
		rc = -EINVAL;	/* cannot happen: feed holds less than max_event */
	if (rc == -EINVAL || rc == -ENOMEM)
		goto out;	/* still held, nothing logged: more may come */
	if (w->n)
		rc = submit(w);
	drop_held(w);	/* stored, or its writer is told it was not */
out:
	record_trim(w);
	return rc;
}

size_t evl_writer_held(const struct evl_writer *w)
{
	return linebuf_pending(&w->lb);
}

int evl_writer_close(struct evl_writer *w)
{
	int rc;

	if (!w)
		return 0;
	rc = evl_writer_flush(w);
	linebuf_release(&w->lb);
	event_validator_free(w->val);
	free(w->dir);
	free(w->data);
	free(w->fresh);
	free(w);
	return rc;
}
