/*
 * task.c - tasks: made (a create journaled is a task at once: the pending
 * creates answer for it until applied), found by name or uid, listed in
 * the index's name order with the pending ones merged in, and deleted (the
 * delete waits until applied: only then has the task left every view).
 * A full disk keeps DATA_DIR/reserve for a delete.
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
#include "datadir.h"
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

/* Add task @uid's pending part, as a snapshot applied up to @applied sees it, to @o. */
static void add_pending(struct evl_store *st, uint64_t uid, uint64_t applied,
			struct evl_task_info *o)
{
	uint64_t bytes, events, last_ns;

	pthread_mutex_lock(&st->tmem_lock);
	tmem_get(st, uid, applied, &bytes, &events, &last_ns);
	pthread_mutex_unlock(&st->tmem_lock);
	o->size += bytes;
	o->events += events;
	/* the last append, applied or not (the index has the applied ones') */
	if (o->last_ns < last_ns)
		o->last_ns = last_ns;
}

static void fill_info(struct evl_store *st, const struct index_task *t, uint64_t applied,
		      struct evl_task_info *o)
{
	o->uid = t->uid;
	o->size = t->log_len - t->base_len;
	o->events = t->nevents - t->base_n;
	o->created_ns = t->created_ns;
	o->last_ns = t->last_ns;
	o->has_owner = t->has_owner;
	o->owner_uid = t->owner_uid;
	o->owner_gid = t->owner_gid;
	o->mode = t->mode;
	memcpy(o->name, t->name, t->name_len + 1);
	add_pending(st, t->uid, applied, o);
}

/* A task whose create @p is not applied yet. */
static void fill_pending_info(struct evl_store *st, const struct pend *p, uint64_t applied,
			      struct evl_task_info *o)
{
	memset(o, 0, sizeof(*o));
	o->uid = p->uid;
	o->created_ns = o->last_ns = p->time_ns;
	o->has_owner = p->has_owner;
	o->owner_uid = p->owner_uid;
	o->owner_gid = p->owner_gid;
	o->mode = p->mode;
	memcpy(o->name, p->name, p->name_len);
	o->name[p->name_len] = '\0';
	add_pending(st, p->uid, applied, o);
}

/*
 * In snapshot @s, begun and still under st->lock: the live task @name (or
 * @uid, when @name is NULL), from the index, or from its create record if
 * that is not applied yet (then *@task is NULL-like: uid 0).  0, -ENOENT
 * or -errno.
 */
int store_find_task(const struct snap *s, const char *name, uint64_t uid,
		    struct index_task *task, struct evl_task_info *out)
{
	struct evl_store *st = s->st;
	struct index_txn *t = s->t;
	uint64_t applied = s->applied;
	size_t len = name ? strlen(name) : 0;
	const struct pend *p;
	int rc;

	rc = name ? index_task_by_name(t, name, len, task) : index_task_by_uid(t, uid, task);
	if (!rc && task->state == TASK_LIVE) {
		if (out)
			fill_info(st, task, applied, out);
		return 0;
	}
	if (rc && rc != -ENOENT)
		return rc;
	p = pc_find(st, name, len, uid, applied);
	if (!p)
		return -ENOENT;
	memset(task, 0, sizeof(*task));
	if (out)
		fill_pending_info(st, p, applied, out);
	return 0;
}

int evl_task_lookup(struct evl_store *st, const char *name, struct evl_task_info *out)
{
	struct index_task task;
	struct snap s;
	int rc;

	rc = snap_begin(st, &s);
	if (rc)
		return rc;
	rc = store_find_task(&s, name, 0, &task, out);
	snap_end(&s);
	return rc;
}

int evl_task_stat(struct evl_store *st, uint64_t uid, struct evl_task_info *out)
{
	struct index_task task;
	struct snap s;
	int rc;

	rc = snap_begin(st, &s);
	if (rc)
		return rc;
	rc = store_find_task(&s, NULL, uid, &task, out);
	snap_end(&s);
	return rc;
}

/* Names in the index's order: bytes, then length. */
static int name_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	return c ? c : (alen > blen) - (alen < blen);
}

static int info_cmp(const void *a, const void *b)
{
	const struct evl_task_info *x = a, *y = b;

	return name_cmp(x->name, strlen(x->name), y->name, strlen(y->name));
}

struct list_ctx {
	struct evl_store *st;
	uint64_t applied;
	int (*cb)(void *arg, const struct evl_task_info *task);
	void *arg;
	struct evl_task_info *pend;	/* tasks whose create is pending, by name */
	size_t npend, next, cap;	/* cap in bytes */
};

static int list_cb(void *arg, const struct index_task *task)
{
	struct list_ctx *c = arg;
	struct evl_task_info info;
	int rc = 0;

	/* the pending tasks that sort before this one first */
	while (!rc && c->next < c->npend &&
	       name_cmp(c->pend[c->next].name, strlen(c->pend[c->next].name), task->name,
			task->name_len) < 0)
		rc = c->cb(c->arg, &c->pend[c->next++]);
	if (rc)
		return rc;
	/*
	 * tmem_lock only: a transaction is open.  Appends the applier commits
	 * and drops meanwhile may be missing from the size: a listing's sizes
	 * are a snapshot's, evl_task_stat's are exact.
	 */
	fill_info(c->st, task, c->applied, &info);
	return c->cb(c->arg, &info);
}

int evl_task_list(struct evl_store *st, const char *after,
		  int (*cb)(void *arg, const struct evl_task_info *task), void *arg)
{
	struct list_ctx c = { .st = st, .cb = cb, .arg = arg };
	size_t alen = after ? strlen(after) : 0;
	struct snap s;
	int rc;

	rc = snap_begin(st, &s);
	if (rc)
		return rc;
	c.applied = s.applied;
	for (size_t b = 0; b < PC_BUCKETS && !rc; b++)
		for (const struct pend *p = st->pc_uid[b]; p && !rc; p = p->by_uid) {
			/* pending creates only: the table holds pending deletes too */
			if (p->kind != REC_CREATE || p->lsn <= c.applied || p->gone ||
			    (after && name_cmp(p->name, p->name_len, after, alen) <= 0))
				continue;
			rc = grow_bytes(&c.pend, &c.cap, (c.npend + 1) * sizeof(*c.pend));
			if (!rc)
				fill_pending_info(st, p, c.applied, &c.pend[c.npend++]);
		}
	snap_release(&s);
	if (c.npend)
		qsort(c.pend, c.npend, sizeof(*c.pend), info_cmp);
	if (!rc)
		rc = index_task_list(s.t, after, alen, list_cb, &c);
	snap_end(&s);
	while (!rc && c.next < c.npend)
		rc = cb(arg, &c.pend[c.next++]);
	free(c.pend);
	return rc;
}

/*
 * DATA_DIR/reserve: space held back so that a task can still be deleted on
 * a full disk (its journal record needs room).  Made at open and after
 * each compaction, best effort; given up by the first delete that meets
 * ENOSPC.
 */
#define RESERVE_BYTES (256u << 10)

void store_reserve(struct evl_store *st)
{
	char path[DD_PATH_MAX];
	int fd, err;

	if (st->opt.read_only || dd_path(path, st->dir, DD_RESERVE, NULL))
		return;
	fd = io->open(path, O_WRONLY | O_CREAT, 0600);
	if (fd < 0)
		return;
	err = io->fallocate(fd, 0, RESERVE_BYTES);
	io->close(fd);
	if (err)
		io->unlink(path);	/* no room for it now: the next try */
}

static bool release_reserve(struct evl_store *st)
{
	char path[DD_PATH_MAX];

	if (dd_path(path, st->dir, DD_RESERVE, NULL) || io->unlink(path))
		return false;
	evl_log(LOG_WARNING, "disk full: the reserve of %u KiB is given up so that a task "
		"can be deleted; a compaction after the delete makes it again",
		RESERVE_BYTES >> 10);
	return true;
}

/*
 * Journal a create or delete record (payload @buf, taken over) and put it
 * on the pending list; *@pp is the record (valid while it is not applied:
 * see store_wait_applied) and *@lsnp its lsn.  With meta_lock.  With @check, it
 * runs first with append_lock held (no append can be journaled between it
 * and the record); a non-zero result is returned instead.
 */
static int submit_meta(struct evl_store *st, unsigned kind, unsigned char *buf, size_t len,
		       int (*check)(struct evl_store *st, void *arg), void *arg,
		       struct pend **pp, uint64_t *lsnp)
{
	struct iovec iov = { buf, len };
	struct pend *p;
	uint64_t lsn;
	int rc;

	p = pend_parse(kind, buf, len);
	if (!p)
		return -ENOMEM;
	pthread_mutex_lock(&st->append_lock);
	rc = check ? check(st, arg) : 0;
	if (!rc)
		rc = journal_append(st->jn, kind, &iov, 1, &lsn);
	if (rc == -ENOSPC && kind == REC_DELETE && release_reserve(st))
		rc = journal_append(st->jn, kind, &iov, 1, &lsn);
	if (!rc) {
		p->lsn = lsn;
		pthread_mutex_lock(&st->lock);
		pend_enqueue(st, p);
		if (kind == REC_DELETE) {
			st->delete_gen++;
			st->view_gen++;
		}
		pthread_mutex_unlock(&st->lock);
	}
	pthread_mutex_unlock(&st->append_lock);
	if (rc) {
		pend_free(p);
		return rc;
	}
	*pp = p;
	*lsnp = lsn;
	return 0;
}

int evl_task_create(struct evl_store *st, const char *name)
{
	return evl_task_create_as(st, name, NULL);
}

int evl_task_create_as(struct evl_store *st, const char *name, const struct evl_owner *owner)
{
	size_t len = strlen(name);
	struct evl_task_info info;
	unsigned char *buf;
	struct pend *p;
	uint64_t uid, lsn;
	int rc;

	rc = evl_task_check_name(name, len);
	if (rc)
		return rc;
	if (st->opt.read_only)
		return -EROFS;
	pthread_mutex_lock(&st->meta_lock);
	rc = evl_task_lookup(st, name, &info);
	if (rc != -ENOENT) {
		rc = rc ? rc : -EEXIST;
		goto out;
	}
	{
		/*
		 * A task directory the index does not know, with events in its
		 * log (restored or copied back by hand): its create would empty
		 * it.  Refused; reindex adopts it.
		 */
		char path[DD_PATH_MAX];
		struct stat sb;

		if (!dd_task(path, st->dir, name, DD_EVENTS) && !stat(path, &sb) &&
		    sb.st_size > 0) {
			evl_log(LOG_ERR, "task %s: %s exists, with %lld bytes, but the index does not "
				"know it (restored or copied back?): not made anew over it; "
				"evlogctl reindex adopts it", name, path, (long long)sb.st_size);
			rc = -EEXIST;
			goto out;
		}
	}
	buf = malloc(REC_CREATE_HDR + len + REC_OWNER_LEN);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	pthread_mutex_lock(&st->lock);
	uid = st->next_uid++;
	pthread_mutex_unlock(&st->lock);
	rc = submit_meta(st, REC_CREATE, buf, rec_put_create(buf, uid, wall_ns(), name, len, owner),
			 NULL, NULL, &p, &lsn);
	pthread_mutex_unlock(&st->meta_lock);
	/*
	 * The task exists now (the pending part shows it): what is left is to
	 * make the record durable, not to wait for the applier, which may be
	 * busy with other tasks' appends (or unable to apply: a full disk).
	 */
	if (!rc)
		rc = journal_wait(st->jn, lsn);
	if (!rc)
		evl_log(LOG_DEBUG, "task %s created", name);
	return rc;
out:
	pthread_mutex_unlock(&st->meta_lock);
	return rc;
}

/*
 * With append_lock held: is task @uid live (applied or pending) with no
 * delete journaled, and (idle_before) last written before it, counting
 * appends not applied yet?  0, -ENOENT or -EBUSY (written since).
 */
int store_delete_check(struct evl_store *st, void *arg)
{
	struct delete_check *d = arg;
	struct index_task task;
	struct snap s;
	int rc;

	rc = snap_begin(st, &s);
	if (rc)
		return rc;
	rc = store_find_task(&s, NULL, d->uid, &task, &d->info);
	if (!rc && pd_find(st, d->uid))
		rc = -ENOENT;	/* journaled, not applied yet */
	if (!rc && d->idle_before && d->info.last_ns >= d->idle_before)
		rc = -EBUSY;
	snap_end(&s);
	return rc;
}

int evl_task_delete_uid(struct evl_store *st, uint64_t uid, uint64_t idle_before_ns,
			struct evl_task_info *out)
{
	struct delete_check d = { .uid = uid, .idle_before = idle_before_ns };
	unsigned char *buf;
	struct pend *p;
	uint64_t lsn;
	int rc;

	if (st->opt.read_only)
		return -EROFS;
	if (st->opt.nodelete)
		return -EPERM;
	if (!uid)
		return -ENOENT;	/* uids start at 1 */
	buf = malloc(REC_DELETE_LEN);
	if (!buf)
		return -ENOMEM;
	rec_put_delete(buf, uid, wall_ns());
	pthread_mutex_lock(&st->meta_lock);
	rc = submit_meta(st, REC_DELETE, buf, REC_DELETE_LEN, store_delete_check, &d, &p, &lsn);
	pthread_mutex_unlock(&st->meta_lock);
	/* the task leaves the views when the delete is applied, in order or ahead */
	if (!rc)
		rc = store_wait_applied(st, lsn, p, false);
	if (!rc && out)
		*out = d.info;
	/* an explicit delete is worth a line; an expiry run logs one summary */
	if (!rc)
		evl_log(idle_before_ns ? LOG_DEBUG : LOG_INFO, "task %s deleted", d.info.name);
	return rc;
}

int evl_task_delete(struct evl_store *st, const char *name)
{
	struct evl_task_info info;
	int rc;

	if (st->opt.read_only)
		return -EROFS;
	if (st->opt.nodelete)
		return -EPERM;
	rc = evl_task_lookup(st, name, &info);
	/* a task of that name made meanwhile has another uid: not deleted */
	return rc ? rc : evl_task_delete_uid(st, info.uid, 0, NULL);
}
