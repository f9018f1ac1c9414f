/*
 * pending.c - records journaled but not applied yet, kept in memory so that
 * readers see their own writes at once: the list (pend_enqueue; the applier
 * dequeues), each task's pending bytes (tmem) and the pending creates and
 * deletes by name and uid (pc_).  Readers take "applied part from the index,
 * pending part from here" (each_pending, copy_pending).
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

static struct tmem **tmem_slot(struct evl_store *st, uint64_t uid)
{
	struct tmem **pp = &st->tmem[(uid * 0x9e3779b97f4a7c15ull) >> 54];

	while (*pp && (*pp)->uid != uid)
		pp = &(*pp)->next;
	return pp;
}

/*
 * With st->lock: account append @p to its task's pending bytes.  A
 * writer's append brings the entry along (p->spare): without it, a
 * failed allocation here would leave the task's pending appends out of
 * its size and of its idleness (expire-idle could then take it).
 */
static void tmem_add(struct evl_store *st, struct pend *p)
{
	struct tmem **pp, *t;

	if (p->kind != REC_APPEND)
		return;
	pthread_mutex_lock(&st->tmem_lock);
	pp = tmem_slot(st, p->uid);
	t = *pp;
	if (!t) {
		t = p->spare ? p->spare : calloc(1, sizeof(*t));
		p->spare = NULL;
		if (!t)
			goto out;	/* replay only: stat under-reports until applied */
		t->uid = p->uid;
		*pp = t;
		st->pending_mem += sizeof(*t) + MALLOC_OVERHEAD;
	}
	t->bytes += p->data_len;
	t->events += p->n;
	if (t->last_ns < p->time_ns)
		t->last_ns = p->time_ns;
out:
	pthread_mutex_unlock(&st->tmem_lock);
	free(p->spare);		/* the task had its entry */
	p->spare = NULL;
}

/*
 * With st->lock: records @first .. @last are about to be committed
 * (@sign +1) or were not after all (-1): move their share of their
 * tasks' pending bytes to the committing part and back.
 */
void tmem_committing(struct evl_store *st, struct pend *first, struct pend *last, int sign)
{
	pthread_mutex_lock(&st->tmem_lock);
	for (struct pend *p = first; p; p = p->next) {
		struct tmem *t = p->kind == REC_APPEND ? *tmem_slot(st, p->uid) : NULL;

		if (t) {
			t->bytes -= sign * (int64_t)p->data_len;
			t->events -= sign * (int64_t)p->n;
			t->cbytes += sign * (int64_t)p->data_len;
			t->cevents += sign * (int64_t)p->n;
			t->clsn = last->lsn;
		}
		if (p == last)
			break;
	}
	pthread_mutex_unlock(&st->tmem_lock);
}

/* With st->lock: committed append @p leaves its task's pending bytes. */
static void tmem_applied(struct evl_store *st, const struct pend *p)
{
	struct tmem **pp, *t;

	if (p->kind != REC_APPEND)
		return;
	pthread_mutex_lock(&st->tmem_lock);
	pp = tmem_slot(st, p->uid);
	t = *pp;
	if (t) {
		t->cbytes -= p->data_len;
		t->cevents -= p->n;
		if (!t->events && !t->cevents) {
			*pp = t->next;
			free(t);
			st->pending_mem -= sizeof(*t) + MALLOC_OVERHEAD;
		}
	}
	pthread_mutex_unlock(&st->tmem_lock);
}

/*
 * Task @uid's pending bytes and events as seen by an index snapshot that
 * has applied up to @applied.  With tmem_lock.
 */
void tmem_get(struct evl_store *st, uint64_t uid, uint64_t applied, uint64_t *bytes,
		     uint64_t *events, uint64_t *last_ns)
{
	struct tmem *t = *tmem_slot(st, uid);

	*bytes = *events = *last_ns = 0;
	if (t) {
		*bytes = t->bytes;
		*events = t->events;
		*last_ns = t->last_ns;
		if (applied < t->clsn) {
			*bytes += t->cbytes;
			*events += t->cevents;
		}
	}
}

/* ---- pending creates ---- */

static struct pend **pc_name_slot(struct evl_store *st, uint64_t hash)
{
	return &st->pc_name[hash % PC_BUCKETS];
}

static struct pend **pc_uid_slot(struct evl_store *st, uint64_t uid)
{
	return &st->pc_uid[(uid * 0x9e3779b97f4a7c15ull) >> 52];
}

/* With st->lock: create or delete @p joins the tables. */
static void pc_add(struct evl_store *st, struct pend *p)
{
	struct pend **pp;

	if (p->kind == REC_CREATE) {
		pp = pc_name_slot(st, p->name_hash);
		p->by_name = *pp;
		*pp = p;
		st->pending_tasks++;
	}
	pp = pc_uid_slot(st, p->uid);
	p->by_uid = *pp;
	*pp = p;
}

/* With st->lock: applied create or delete @p leaves the tables. */
static void pc_del(struct evl_store *st, struct pend *p)
{
	struct pend **pp;

	if (p->kind == REC_CREATE) {
		for (pp = pc_name_slot(st, p->name_hash); *pp && *pp != p; pp = &(*pp)->by_name)
			;
		if (*pp)
			*pp = p->by_name;
		if (!p->gone)
			st->pending_tasks--;
	}
	for (pp = pc_uid_slot(st, p->uid); *pp && *pp != p; pp = &(*pp)->by_uid)
		;
	if (*pp)
		*pp = p->by_uid;
}

/*
 * With st->lock: the pending create of task @name (@len bytes), or of
 * @uid when @name is NULL, that an index snapshot applied up to @applied
 * does not hold yet; NULL if none.
 */
const struct pend *pc_find(struct evl_store *st, const char *name, size_t len,
				  uint64_t uid, uint64_t applied)
{
	if (name) {
		uint64_t h = XXH3_64bits(name, len);

		for (const struct pend *p = *pc_name_slot(st, h); p; p = p->by_name)
			if (p->name_hash == h && p->name_len == len && !memcmp(p->name, name, len) &&
			    p->lsn > applied && !p->gone)
				return p;
	} else {
		for (const struct pend *p = *pc_uid_slot(st, uid); p; p = p->by_uid)
			if (p->uid == uid && p->kind == REC_CREATE && p->lsn > applied && !p->gone)
				return p;
	}
	return NULL;
}

/* With st->lock: is a delete of task @uid journaled and not dropped from the list yet? */
bool pd_find(struct evl_store *st, uint64_t uid)
{
	for (const struct pend *p = *pc_uid_slot(st, uid); p; p = p->by_uid)
		if (p->uid == uid && p->kind == REC_DELETE)
			return true;
	return false;
}

/* With st->lock held: put @p at the tail. */
void pend_enqueue(struct evl_store *st, struct pend *p)
{
	/*
	 * The appends (and the create) a delete follows need not be applied:
	 * the task goes before anyone can read them.  Not writing them is what
	 * lets a delete free a full disk whose appends could not be applied.
	 */
	for (struct pend *q = st->head; p->kind == REC_DELETE && q; q = q->next)
		if (q->kind != REC_DELETE && q->uid == p->uid &&
		    !atomic_load_explicit(&q->dead, memory_order_relaxed))
			atomic_store_explicit(&q->dead, p->lsn, memory_order_relaxed);
	p->next = NULL;
	if (st->tail)
		st->tail->next = p;
	else
		st->head = p;
	st->tail = p;
	p->enq_ns = mono_ns();
	st->pending_mem += p->mem;
	if (p->kind == REC_APPEND) {
		st->pending_events += p->n;
		st->pending_data += p->data_len;
	}
	if (p->kind != REC_APPEND)
		pc_add(st, p);
	st->enqueued_lsn = p->lsn;
	tmem_add(st, p);
	/*
	 * The applier takes only durable records and applier_on_durable() wakes it
	 * when they become so; wake it here only if the syncer already passed
	 * this record (a wakeup per append costs a context switch).
	 */
	if (p->lsn <= st->durable_lsn || p->kind != REC_APPEND)
		pthread_cond_signal(&st->applier_cv);
}

/* With st->lock held: drop the applied records from the head up to @last. */
void pend_dequeue(struct evl_store *st, struct pend *last)
{
	struct pend *p, *next = NULL;

	for (p = st->head; p; p = next) {
		next = p->next;
		st->pending_mem -= p->mem;
		if (p->kind == REC_APPEND && !p->gone) {
			st->pending_events -= p->n;
			st->pending_data -= p->data_len;
		}
		if (p->fate != PEND_APPLIED) {
			if (p->fate == PEND_LOST)
				st->events_lost += p->n;
			else
				st->events_unapplied += p->n;
			st->view_gen++;	/* its events left the views' pending part */
		}
		if (p->kind != REC_APPEND)
			pc_del(st, p);
		tmem_applied(st, p);
		st->applied_lsn = p->lsn;
		if (p == last)
			break;
		pend_free(p);
	}
	st->head = next;
	if (!next)
		st->tail = NULL;
	pend_free(last);
}

/*
 * Call @fn for each pending event past @applied_lsn (the snapshot's) of task
 * @uid (0: every task) whose type starts with @prefix (@plen 0: any), in
 * commit order, until it returns non-zero (that value is returned).  With
 * st->lock held.
 */
int each_pending(struct evl_store *st, uint64_t applied_lsn, uint64_t uid,
			const char *prefix, size_t plen,
			int (*fn)(void *arg, const struct pend *p, const struct pend_ev *e),
			void *arg)
{
	for (struct pend *p = st->head; p; p = p->next) {
		if (p->kind != REC_APPEND || p->lsn <= applied_lsn || (uid && p->uid != uid) ||
		    p->gone)
			continue;
		for (uint32_t i = 0; i < p->n; i++) {
			const struct pend_ev *e = &p->ev[i];
			int rc;

			if (e->tlen < plen || memcmp(ev_type(p, e), prefix, plen))
				continue;
			rc = fn(arg, p, e);
			if (rc)
				return rc;
		}
	}
	return 0;
}

struct copy_ctx {
	uint64_t pos, off;	/* the next pending byte's offset; the read's */
	char *buf;
	size_t len;
};

static int copy_one(void *arg, const struct pend *p, const struct pend_ev *e)
{
	struct copy_ctx *c = arg;
	uint64_t lo = c->pos > c->off ? c->pos : c->off;
	uint64_t hi = c->pos + e->len < c->off + c->len ? c->pos + e->len : c->off + c->len;

	if (lo < hi)
		memcpy(c->buf + (lo - c->off), p->data + e->off + (lo - c->pos), hi - lo);
	c->pos += e->len;
	return 0;
}

/*
 * Copy the part of [@off, @off + @len) that falls in the pending events of
 * task @uid (or of view @prefix / @uid), whose first byte is at @base.  With
 * st->lock held.  Returns the pending part's size.
 */
uint64_t copy_pending(struct evl_store *st, uint64_t applied_lsn, uint64_t uid,
			     const char *prefix, size_t plen, uint64_t base,
			     uint64_t off, char *buf, size_t len)
{
	struct copy_ctx c = { base, off, buf, len };

	each_pending(st, applied_lsn, uid, prefix, plen, copy_one, &c);
	return c.pos - base;
}
