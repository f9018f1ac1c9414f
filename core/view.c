/*
 * view.c - reads: a task's log and the views by type, each the applied part
 * from the index and the logs, then the pending part from memory.
 *
 * A view read is one straight line (view_read): the snapshot, the view's
 * size and pending part, the first event at the offset (index_view_seek,
 * or where the previous read stopped), then a pull loop: the next event
 * from the index (index_view_next), its bytes from its log (fill_one: runs
 * of adjacent bytes read with one pread, each log proven before it is
 * served), until the buffer is full; then the checks that every line
 * copied is whole.
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
 * Serve nothing unproven: task @uid's log up to physical byte @upto must
 * match its sidecar's checksums (tasklog_verify; each byte is hashed once
 * a mount).  A task whose bytes do not is set aside.  0, -EIO or -errno.
 */
static int prove(struct evl_store *st, uint64_t uid, const struct index_task *task,
		 uint64_t upto, uint64_t *proven)
{
	char why[256] = "";
	int rc;

	rc = tasklog_verify(st->tl, uid, task->name, task->base_len, task->base_n,
			    task->log_len - task->base_len, upto, proven, why, sizeof(why));
	if (rc && task_damage(rc)) {
		if (why[0])
			set_aside(st, uid, task->name, why);
		else
			set_aside_err(st, uid, task->name, rc);
		rc = -EIO;
	}
	return rc;
}

static ssize_t task_read(struct evl_store *st, uint64_t uid, uint64_t off, void *buf, size_t len)
{
	struct snap s;
	struct index_task task;
	uint64_t pend, end, flen;
	ssize_t n = 0;
	int rc;

	rc = snap_begin(st, &s);
	if (rc)
		return rc;
	rc = store_find_task(&s, NULL, uid, &task, NULL);
	if (rc) {
		snap_end(&s);
		return rc;
	}
	/* the file's applied bytes (none while the task's create is pending) */
	flen = task.log_len - task.base_len;
	pend = copy_pending(st, s.applied, uid, "", 0, flen, off, buf, len);
	snap_end(&s);

	end = flen + pend;
	if (is_aside(st, uid))
		return -EIO;	/* nothing of it, not even its size's worth of pending */
	if (off >= end)
		return 0;
	if (len > end - off)
		len = end - off;
	if (off < flen) {
		size_t want = flen - off < len ? flen - off : len;

		if (switch_broken(st, uid) || is_aside(st, uid))
			return -EIO;
		n = tasklog_read(st->tl, uid, task.name, off, buf, want);
		if (n < 0 && task_damage(n)) {
			set_aside_err(st, uid, task.name, n);
			n = -EIO;
		}
		if (n < 0)
			return n;
		if ((size_t)n < want) {
			char why[96];

			snprintf(why, sizeof(why), "log shorter than indexed (%" PRIu64 " bytes)",
				 flen);
			set_aside(st, uid, task.name, why);
			return -EIO;
		}
		rc = prove(st, uid, &task, off + want, NULL);
		if (rc)
			return rc;
	}
	return len;
}

ssize_t evl_task_read(struct evl_store *st, uint64_t uid, uint64_t off, void *buf, size_t len)
{
	ssize_t n;

	pthread_rwlock_rdlock(&st->swap_lock);
	n = task_read(st, uid, off, buf, len);
	pthread_rwlock_unlock(&st->swap_lock);
	return n;
}

/* ---- types and views ---- */

static int found_one(void *arg, const struct pend *p, const struct pend_ev *e)
{
	return 1;
}

bool evl_prefix_exists(struct evl_store *st, const char *prefix, size_t len)
{
	struct snap s;
	bool found;

	if (event_check_name(prefix, len))
		return false;
	if (snap_begin(st, &s))
		return false;
	found = each_pending(st, s.applied, 0, prefix, len, found_one, NULL);
	snap_release(&s);
	if (!found)
		found = index_prefix_exists(s.t, prefix, len);
	snap_end(&s);
	return found;
}

struct type_ctx {
	int (*cb)(void *arg, const char *type, size_t len);
	void *arg;
};

static int type_cb(void *arg, const char *name, size_t len, uint64_t ev, uint64_t bytes)
{
	struct type_ctx *c = arg;

	/* a type of a store written before types had to be names ("." or ".."): no view */
	if (event_check_name(name, len))
		return 0;
	return c->cb(c->arg, name, len);
}

/* Types seen only in pending events (not yet in the index), once each. */
struct extra_types {
	struct index_txn *t;
	struct { char name[256]; size_t len; } *v;
	size_t n, cap;
};

static int extra_type(void *arg, const struct pend *p, const struct pend_ev *e)
{
	struct extra_types *x = arg;

	for (size_t k = 0; k < x->n; k++)
		if (x->v[k].len == e->tlen && !memcmp(x->v[k].name, ev_type(p, e), e->tlen))
			return 0;
	if (index_prefix_exists(x->t, ev_type(p, e), e->tlen))
		return 0;
	if (GROW(x->v, x->cap, x->n + 1))
		return -ENOMEM;
	memcpy(x->v[x->n].name, ev_type(p, e), e->tlen);
	x->v[x->n++].len = e->tlen;
	return 0;
}

int evl_type_list(struct evl_store *st,
		  int (*cb)(void *arg, const char *type, size_t len), void *arg)
{
	struct type_ctx c = { cb, arg };
	struct extra_types x = { 0 };
	struct snap s;
	int rc;

	rc = snap_begin(st, &s);
	if (rc)
		return rc;
	x.t = s.t;
	rc = each_pending(st, s.applied, 0, "", 0, extra_type, &x);
	snap_release(&s);
	if (!rc)
		rc = index_type_list(s.t, type_cb, &c);
	snap_end(&s);
	for (size_t k = 0; k < x.n && !rc; k++)
		if (!event_check_name(x.v[k].name, x.v[k].len))
			rc = cb(arg, x.v[k].name, x.v[k].len);
	free(x.v);
	return rc;
}

int evl_view_open(struct evl_store *st, const char *prefix, size_t len, uint64_t task_uid,
		  struct evl_view **out)
{
	struct evl_view *v;
	int rc;

	rc = event_check_name(prefix, len);
	if (rc)
		return rc;
	if (!evl_prefix_exists(st, prefix, len))
		return -ENOENT;
	if (task_uid) {
		struct evl_task_info info;

		rc = evl_task_stat(st, task_uid, &info);
		if (rc)
			return rc;
	}
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->st = st;
	v->uid = task_uid;
	v->len = len;
	memcpy(v->prefix, prefix, len);
	pthread_mutex_init(&v->mu, NULL);
	*out = v;
	return 0;
}

void evl_view_close(struct evl_view *v)
{
	if (!v)
		return;
	pthread_mutex_destroy(&v->mu);
	free(v);
}

/*
 * A view read or size the index itself failed (LMDB found a page it
 * cannot use, or the disk failed reading it): counted in index_damage and
 * logged, so that status names it.  Returns @rc.
 */
static int index_fault(struct evl_store *st, const struct evl_view *v, uint64_t off, int rc)
{
	if (rc == -ENOMEM || rc == -ENOENT || rc == -EAGAIN)
		return rc;
	atomic_fetch_add(&st->index_damage, 1);
	evl_log(LOG_ERR, "view %.*s: the index fails at offset %" PRIu64 ": %s (damaged? evlogctl"
		" fsck finds it, evlogctl reindex rebuilds it)", (int)v->len, v->prefix, off,
		strerror(-rc));
	return rc == -EUCLEAN ? -EIO : rc;
}

/* Open the index view of @v in @t; a view with nothing applied yet is NULL. */
static int view_index(struct evl_view *v, struct index_txn *t, struct index_view **iv)
{
	int rc = index_view_open(t, v->prefix, v->len, v->uid, iv);

	if (rc == -ENOENT) {
		*iv = NULL;
		rc = 0;
	}
	return rc;
}

int evl_view_size(struct evl_view *v, uint64_t *size)
{
	struct evl_store *st = v->st;
	struct index_view *iv;
	struct snap s;
	uint64_t applied;
	int rc;

	rc = snap_begin(st, &s);
	if (rc)
		return rc;
	rc = view_index(v, s.t, &iv);
	if (!rc) {
		applied = iv ? index_view_size(iv) : 0;
		*size = applied + copy_pending(st, s.applied, v->uid, v->prefix, v->len,
					       applied, 0, NULL, 0);
	}
	snap_release(&s);
	index_view_free(iv);
	snap_end(&s);
	return rc ? index_fault(st, v, 0, rc) : 0;
}

struct fill_ctx {
	struct evl_store *st;
	struct index_txn *t;
	char *buf;
	size_t len, done;
	uint64_t skip;		/* bytes of the first event to leave out */
	uint64_t next_gseq;	/* the event after the last one copied */
	struct tasklog_file *pin;	/* the log of pin_uid, held open */
	uint64_t pin_uid, pin_base;	/* ... and its base_len (index offset - file offset) */
	struct index_task pin_task;	/* ... as this transaction has it */
	uint64_t pin_proven;		/* file bytes proven (prove()) */
	bool bad_entry;			/* an entry outside its task's log (index damage) */
	/* a run of adjacent bytes of one log, read with one pread */
	uint64_t run_off;
	size_t run_at, run_len;
	bool run_head;		/* ... which begins where an event begins */
	bool bad_start;		/* an event not after a newline of its log */
	size_t *ends;		/* where in buf each event copied whole ends */
	size_t nends, ends_cap;	/* ends_cap in bytes (grow_bytes) */
	int rc;
};

/*
 * Read the run.  One that begins an event reads the byte before it too (a
 * log is lines only: a newline, unless the event is the log's first), so
 * that an index entry whose offset damage moved into a line is caught
 * (view_lines_whole checks where each event ends).
 */
static int flush_run(struct fill_ctx *c)
{
	bool head = c->run_head && c->run_off > 0;
	char *at = c->buf + c->run_at, keep = 0;
	ssize_t n;

	if (!c->run_len)
		return 0;
	if (head && c->run_at) {
		keep = at[-1];	/* the last byte of the run before: read, put back */
		n = tasklog_pread(c->pin, c->run_off - 1, at - 1, c->run_len + 1);
		if (n >= 0 && (size_t)n < c->run_len + 1)
			n = -EIO;
		if (n >= 0 && at[-1] != '\n')
			c->bad_start = true;
		at[-1] = keep;
	} else {
		char before = '\n';

		n = head ? tasklog_pread(c->pin, c->run_off - 1, &before, 1) : 1;
		if (n == 0)
			n = -EIO;
		if (n > 0 && before != '\n')
			c->bad_start = true;
		if (n > 0)
			n = tasklog_pread(c->pin, c->run_off, at, c->run_len);
		if (n >= 0 && (size_t)n < c->run_len)
			n = -EIO;
	}
	c->run_len = 0;
	return n < 0 ? (int)n : 0;
}

/*
 * Copy (what fits of) the view's next event @ev: into the current run when
 * it is adjacent in the same log, else after reading the run and pinning
 * @ev's log.  True when the read is done: the buffer is full, or c->rc.
 */
static bool fill_one(struct fill_ctx *c, const struct index_event *ev)
{
	uint64_t skip = c->skip;
	size_t want = ev->len - skip;

	if (want > c->len - c->done)
		want = c->len - c->done;
	if (c->run_len && (ev->uid != c->pin_uid ||
			   ev->off - c->pin_base + skip != c->run_off + c->run_len))
		c->rc = flush_run(c);
	if (!c->rc && ev->uid != c->pin_uid) {
		struct index_task task;

		tasklog_unpin(c->st->tl, c->pin);
		c->pin = NULL;
		c->pin_uid = 0;
		c->rc = index_task_by_uid(c->t, ev->uid, &task);
		if (c->rc == -ENOENT)
			c->rc = -EUCLEAN;	/* an entry of a task the index lacks: damage */
		if (!c->rc && (switch_broken(c->st, ev->uid) || is_aside(c->st, ev->uid)))
			c->rc = -EIO;
		if (!c->rc) {
			c->rc = tasklog_pin(c->st->tl, ev->uid, task.name, &c->pin);
			/* a view never serves what it cannot read: EIO */
			if (c->rc && task_damage(c->rc)) {
				set_aside_err(c->st, ev->uid, task.name, c->rc);
				c->rc = -EIO;
			}
		}
		if (!c->rc) {
			c->pin_uid = ev->uid;
			c->pin_base = task.base_len;
			c->pin_task = task;
			c->pin_proven = 0;
		}
	}
	if (!c->rc && (ev->off < c->pin_base || ev->len > c->pin_task.log_len ||
		       ev->off > c->pin_task.log_len - ev->len)) {
		c->bad_entry = true;	/* the index's entry is not inside its own task's log */
		c->rc = -EUCLEAN;
	}
	if (!c->rc && ev->off - c->pin_base + ev->len > c->pin_proven)
		c->rc = prove(c->st, ev->uid, &c->pin_task, ev->off - c->pin_base + ev->len,
			      &c->pin_proven);
	if (c->rc)
		return true;
	if (!c->run_len) {
		c->run_off = ev->off - c->pin_base + skip;
		c->run_at = c->done;
		c->run_head = !skip;
	}
	c->run_len += want;
	c->done += want;
	c->skip = 0;
	if (skip + want < ev->len) {
		c->next_gseq = 0;	/* stopped inside this event */
		return true;
	}
	if (grow_bytes(&c->ends, &c->ends_cap, (c->nends + 1) * sizeof(*c->ends))) {
		c->rc = -ENOMEM;
		return true;
	}
	c->ends[c->nends++] = c->done - 1;
	c->next_gseq = ev->gseq + 1;
	return c->done == c->len;
}

/*
 * Each event is one line: the newlines in what fill_one read are exactly
 * where the events it completed end (so none inside an event, and none in
 * the part of one it stopped in), and each event it began follows a
 * newline of its log.
 */
static bool view_lines_whole(const struct fill_ctx *c)
{
	const char *p = c->buf, *end = c->buf + c->done;
	size_t n = 0;

	if (c->bad_start)
		return false;
	while (p < end && (p = memchr(p, '\n', end - p))) {
		if (n == c->nends || (size_t)(p - c->buf) != c->ends[n])
			return false;
		n++;
		p++;
	}
	return n == c->nends;
}

static ssize_t view_read(struct evl_view *v, uint64_t off, void *buf, size_t len)
{
	struct evl_store *st = v->st;
	struct fill_ctx c = { .st = st, .buf = buf };
	struct index_view_cursor *cur;
	struct index_event ev;
	struct index_view *iv;
	struct snap s;
	uint64_t applied, pend, gseq, gen;
	bool cached, counted = false;
	int rc;

	rc = snap_begin(st, &s);
	if (rc)
		return rc;
	c.t = s.t;
	rc = view_index(v, s.t, &iv);
	if (rc) {
		snap_end(&s);
		return index_fault(st, v, off, rc);
	}
	applied = iv ? index_view_size(iv) : 0;
	pend = copy_pending(st, s.applied, v->uid, v->prefix, v->len, applied, off, buf, len);
	gen = st->view_gen;
	snap_release(&s);
	pthread_mutex_lock(&v->mu);
	cached = v->have_next && v->gen == gen && v->next_off == off;
	gseq = v->next_gseq;
	pthread_mutex_unlock(&v->mu);

	if (off >= applied + pend) {
		len = 0;
		goto out;
	}
	if (len > applied + pend - off)
		len = applied + pend - off;
	if (off < applied) {
		c.len = applied - off < len ? applied - off : len;
		if (!cached) {
			rc = index_view_seek(iv, off, &gseq, &c.skip);
			if (rc)
				goto out;
		}
		/* the index's events from gseq on, each copied from its log */
		rc = index_view_cursor_open(iv, gseq, &cur);
		if (!rc) {
			while ((rc = index_view_next(cur, &ev)) > 0 && !fill_one(&c, &ev))
				;
			if (rc > 0)
				rc = 0;		/* fill_one stopped it: full, or c.rc */
			index_view_cursor_close(cur);
		}
		if (!rc)
			rc = c.rc;
		if (rc == -EUCLEAN) {
			counted = true;
			atomic_fetch_add(&st->index_damage, 1);
			evl_log(LOG_ERR, "view %.*s: an index entry %s at offset %" PRIu64 " (a damaged"
				" index? evlogctl fsck finds it, evlogctl reindex rebuilds it)",
				(int)v->len, v->prefix, c.bad_entry ? "lies outside its task's log" :
				"names a task the index lacks", off);
			rc = -EIO;
		}
		if (!rc)
			rc = flush_run(&c);
		tasklog_unpin(st->tl, c.pin);
		if (!rc && c.done < c.len) {
			counted = true;
			atomic_fetch_add(&st->index_damage, 1);
			evl_log(LOG_ERR, "view %.*s: index ends before its size", (int)v->len,
				v->prefix);
			rc = -EIO;
		}
		if (!rc && !view_lines_whole(&c)) {
			/*
			 * An entry's offset or length is not an event's: damage in
			 * the index that its checks at open cannot see.  Never
			 * serve a spliced line.
			 */
			counted = true;
			atomic_fetch_add(&st->index_damage, 1);
			evl_log(LOG_ERR, "view %.*s: an index entry does not match its log at"
				" offset %" PRIu64 " (a damaged index? evlogctl fsck finds it,"
				" evlogctl reindex rebuilds it)", (int)v->len, v->prefix, off);
			rc = -EIO;
		}
		if (rc)
			goto out;
		pthread_mutex_lock(&v->mu);
		v->have_next = c.next_gseq != 0;
		v->next_off = off + c.len;
		v->next_gseq = c.next_gseq;
		v->gen = gen;
		pthread_mutex_unlock(&v->mu);
	}
out:
	free(c.ends);
	index_view_free(iv);
	snap_end(&s);
	/* an error of the index's own (not a task's files, whose are fill_one's) */
	if (rc && !counted && rc != c.rc) {
		/*
		 * The view opened, so an entry its own structure names is
		 * missing (damage the walk cannot see: sweep seed 600002 case
		 * 650, a flipped ordinal): EIO, counted and said, never a
		 * silent "no such file".
		 */
		if (rc == -ENOENT)
			rc = -EUCLEAN;
		rc = index_fault(st, v, off, rc);
	}
	return rc ? rc : (ssize_t)len;
}

ssize_t evl_view_read(struct evl_view *v, uint64_t off, void *buf, size_t len)
{
	ssize_t n;

	pthread_rwlock_rdlock(&v->st->swap_lock);
	n = view_read(v, off, buf, len);
	pthread_rwlock_unlock(&v->st->swap_lock);
	return n;
}

struct vt_ctx {
	uint64_t *uids;
	size_t n, cap;
};

static int vt_cb(void *arg, uint64_t uid)
{
	struct vt_ctx *c = arg;

	if (GROW(c->uids, c->cap, c->n + 1))
		return -ENOMEM;
	c->uids[c->n++] = uid;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int pending_task(void *arg, const struct pend *p, const struct pend_ev *e)
{
	return vt_cb(arg, p->uid);	/* duplicates are dropped after sorting */
}

int evl_view_tasks(struct evl_store *st, const char *prefix, size_t len,
		   int (*cb)(void *arg, uint64_t uid), void *arg)
{
	struct vt_ctx c = { 0 };
	struct snap s;
	int rc;

	rc = snap_begin(st, &s);
	if (rc)
		return rc;
	rc = each_pending(st, s.applied, 0, prefix, len, pending_task, &c);
	snap_release(&s);
	if (!rc) {
		rc = index_view_tasks(s.t, prefix, len, 0, vt_cb, &c);
		if (rc == -ENOENT)
			rc = 0;
	}
	snap_end(&s);
	if (!rc) {
		if (c.n)
			qsort(c.uids, c.n, sizeof(*c.uids), cmp_u64);
		for (size_t i = 0; i < c.n && !rc; i++)
			if (i == 0 || c.uids[i] != c.uids[i - 1])
				rc = cb(arg, c.uids[i]);
	}
	free(c.uids);
	return rc;
}
