/*
 * fsck.c - evl_fsck: the index compared with the scan (scan.c), and made
 * to agree with it.
 *
 * FSCK compares, per type, the index's entries (index_type_check, which
 * also checks the type's own structure: Fenwick nodes, both row orders,
 * counters) with that run, and each live task record with its files.
 * Entries of deleted tasks awaiting purge are not findings.  If the store
 * was not closed cleanly (journal records past the index, tasks changed
 * since the last checkpoint, retention under way), tasks changed since the
 * checkpoint are compared up to the index's lengths only, as recovery would
 * cut them; --repair runs recovery first.
 *
 * REPAIR works in the index's own transactions: a task directory the index
 * lacks gets a task record, a task whose directory is gone is deleted, task
 * counters are set from the files, and every type with a finding is
 * dropped and rebuilt from its run (index_type_drop + index_add_event), one
 * transaction per type.  Meta counters are recomputed last.  Reindex fills
 * its new index the same way (ck_repair with every type).  The files are
 * repaired too: the sidecar records the scan rebuilt are written
 * (ck_write_mends), torn tails cut (ck_cut_tails).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_i.h"
#include "datadir.h"
#include "event.h"
#include "evlog.h"
#include "index.h"
#include "io.h"
#include "tasklog.h"

/* ---- compare ---- */

struct cmp_ctx {
	struct ck *ck;
	struct ck_type *ty;
	size_t pos;			/* next event of the run */
	struct ck_task **by_uid;	/* sorted by uid, for lookups */
	size_t nby;
};

static int cmp_uid(const void *a, const void *b)
{
	uint64_t x = (*(struct ck_task *const *)a)->uid, y = (*(struct ck_task *const *)b)->uid;

	return x < y ? -1 : x > y;
}

static struct ck_task *find_uid(struct cmp_ctx *c, uint64_t uid)
{
	size_t lo = 0, hi = c->nby;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (c->by_uid[mid]->uid < uid)
			lo = mid + 1;
		else if (c->by_uid[mid]->uid > uid)
			hi = mid;
		else
			return c->by_uid[mid];
	}
	return NULL;
}

static void finding(struct cmp_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void finding(struct cmp_ctx *c, const char *fmt, ...)
{
	char line[900];
	va_list ap;

	c->ty->differs = true;
	if (c->ty->reported++ >= REPORT_PER_TYPE) {
		c->ck->r->problems++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	ck_report(c->ck, 'E', "type %s: %s", c->ty->name, line);
}

/* A logged event the index lacks (or has elsewhere). */
static void missing(struct cmp_ctx *c, const struct ck_ev *e)
{
	struct ck_task *tk = &c->ck->tasks[e->task];

	if (tk->skip || e->gseq < tk->retain_cut)
		return;	/* retain_cut: retention under way, leaving the index */
	finding(c, "event gseq %" PRIu64 " of task %s (log byte %" PRIu64 ") is not indexed",
		e->gseq, tk->name, e->off);
}

static int compare_entry(void *arg, const struct index_entry *ie)
{
	struct cmp_ctx *c = arg;
	struct ck_type *ty = c->ty;
	struct ck_task *tk;
	const struct ck_ev *e;

	if (ie->state == TASK_DELETED)
		return 0;	/* awaiting purge */
	tk = ie->state == TASK_LIVE ? find_uid(c, ie->uid) : NULL;
	while (c->pos < ty->count && c->ck->evs[ty->first + c->pos].gseq < ie->gseq)
		missing(c, &c->ck->evs[ty->first + c->pos++]);
	e = c->pos < ty->count ? &c->ck->evs[ty->first + c->pos] : NULL;
	if (tk && tk->skip) {
		if (e && e->gseq == ie->gseq)
			c->pos++;
		return 0;
	}
	if (!tk) {
		finding(c, "entry gseq %" PRIu64 " names task uid %" PRIu64 ", which %s",
			ie->gseq, ie->uid, ie->state ? "is not live" : "does not exist");
		return 0;
	}
	if (!e || e->gseq != ie->gseq) {
		finding(c, "entry gseq %" PRIu64 " of task %s (log byte %" PRIu64
			") has no such event in the log", ie->gseq, tk->name,
			ie->off - tk->base_len);
		return 0;
	}
	c->pos++;
	if (&c->ck->tasks[e->task] != tk || ie->off - tk->base_len != e->off || ie->len != e->len)
		finding(c, "entry gseq %" PRIu64 " says task %s byte %" PRIu64 " (%" PRIu32
			" bytes); the log has it in task %s at byte %" PRIu64 " (%" PRIu32 " bytes)",
			ie->gseq, tk->name, ie->off - tk->base_len, ie->len,
			c->ck->tasks[e->task].name, e->off, e->len);
	return 0;
}

static int index_type_cb(void *arg, const char *name, size_t len)
{
	struct ck *ck = arg;
	char buf[256];
	uint32_t id;

	snprintf(buf, sizeof(buf), "%.*s", (int)len, name);
	return ck_type_id(ck, buf, len, &id);
}

/* Compare every type of the index and of the logs. */
static int compare_types(struct ck *ck)
{
	struct cmp_ctx c = { .ck = ck };
	struct index_txn *t;
	int rc;

	c.by_uid = calloc(ck->ntasks + 1, sizeof(*c.by_uid));
	if (!c.by_uid)
		return -ENOMEM;
	for (size_t i = 0; i < ck->ntasks; i++)
		if (ck->tasks[i].in_index)
			c.by_uid[c.nby++] = &ck->tasks[i];
	if (c.nby)
		qsort(c.by_uid, c.nby, sizeof(*c.by_uid), cmp_uid);
	rc = index_begin(ck->ix, false, &t);
	if (rc)
		goto out;
	rc = index_type_names(t, index_type_cb, ck);
	for (size_t i = 0; i < ck->ntypes && !rc; i++) {
		struct ck_type *ty = &ck->types[i];
		uint64_t bad = 0;
		char why[300];

		c.ty = ty;
		c.pos = 0;
		rc = index_type_check(t, ty->name, ty->len, compare_entry, &c, &bad, why,
				      sizeof(why));
		if (rc == -ENOENT) {
			rc = 0;	/* the index has no such type */
		} else if (rc) {
			break;
		} else if (bad) {
			ty->differs = true;
			if (bad > 1)
				ck_report(ck, 'E', "type %s: %s (%" PRIu64 " faults of its structure"
					  " in all)", ty->name, why, bad);
			else
				ck_report(ck, 'E', "type %s: %s", ty->name, why);
		}
		while (c.pos < ty->count)
			missing(&c, &ck->evs[ty->first + c.pos++]);
		if (ty->reported > REPORT_PER_TYPE)
			ck_report(ck, 'I', "type %s: %" PRIu64 " more findings not shown", ty->name,
				  ty->reported - REPORT_PER_TYPE);
		ck_progress(ck, "check", i + 1, ck->ntypes);
	}
	index_abort(t);
out:
	free(c.by_uid);
	return rc;
}

static int cmp_ev_off(const void *a, const void *b)
{
	const struct ck_ev *x = *(struct ck_ev *const *)a, *y = *(struct ck_ev *const *)b;

	return x->off < y->off ? -1 : x->off > y->off;
}

/*
 * A retention intent (DROPPING) against the task's files: its first
 * cut_n - base_n events take cut_len - base_len bytes, all before cut_gseq,
 * and the next one is at or past cut_gseq (past it when the plan dropped
 * every event it looked at; gseqs are the store's, not the task's: see
 * retain.c retain_matches, which the open applies).  One that does not match (a damaged retention
 * row) is no excuse for events the index lacks.  0 or -ENOMEM.
 */
static int check_retains(struct ck *ck)
{
	for (size_t i = 0; i < ck->ntasks; i++) {
		struct ck_task *tk = &ck->tasks[i];
		const struct ck_ev **ev;
		uint64_t n = 0, drop_n, drop_len;
		bool ok;

		if (!tk->retain_cut || tk->skip || !tk->on_disk)
			continue;
		ev = malloc((tk->n + 1) * sizeof(*ev));
		if (!ev)
			return -ENOMEM;
		for (size_t e = 0; e < ck->nevs && n < tk->n; e++)
			if (ck->evs[e].task == i)
				ev[n++] = &ck->evs[e];
		if (n)
			qsort(ev, n, sizeof(*ev), cmp_ev_off);
		drop_n = tk->retain_n - tk->base_n;
		drop_len = tk->retain_len - tk->base_len;
		ok = tk->retain_n >= tk->base_n && tk->retain_len >= tk->base_len && drop_n <= n &&
		     (drop_n < n ? ev[drop_n]->off == drop_len && ev[drop_n]->gseq >= tk->retain_cut :
				   drop_len == tk->bytes);
		for (uint64_t k = 0; k < drop_n && ok; k++)
			ok = ev[k]->gseq < tk->retain_cut;
		free(ev);
		if (ok)
			continue;
		ck_report(ck, 'E', "task %s: its retention under way (up to gseq %" PRIu64 ", log byte %"
			  PRIu64 ", event %" PRIu64 ") does not match its files: a damaged index?"
			  " evlogctl reindex builds a new one", tk->name, tk->retain_cut,
			  tk->retain_len - tk->base_len, tk->retain_n - tk->base_n);
		tk->retain_cut = 0;
	}
	return 0;
}

/* Task records against the files. */
static void compare_tasks(struct ck *ck)
{
	for (size_t i = 0; i < ck->ntasks; i++) {
		struct ck_task *tk = &ck->tasks[i];

		if (tk->in_index && !tk->on_disk) {
			ck_report(ck, 'E', "task %s: in the index but its directory is missing",
				  tk->name);
		} else if (!tk->in_index) {
			ck_report(ck, 'E', "task %s: its directory (%" PRIu64 " events) is not in the"
				  " index", tk->name, tk->n);
		} else if (tk->skip) {
			continue;
		} else if (tk->n != tk->idx_n || tk->bytes != tk->idx_len) {
			ck_report(ck, 'E', "task %s: the index counts %" PRIu64 " events, %" PRIu64
				  " bytes; its files hold %" PRIu64 ", %" PRIu64, tk->name,
				  tk->idx_n, tk->idx_len, tk->n, tk->bytes);
		}
	}
}

/* ---- repair ---- */

/* Run @fn in a write transaction, growing the map and redoing it when full. */
int ck_in_txn(struct ck *ck, int (*fn)(struct ck *ck, struct index_txn *t, void *arg),
	      void *arg)
{
	for (;;) {
		struct index_txn *t;
		int rc = index_begin(ck->ix, true, &t);

		if (rc)
			return rc;
		rc = fn(ck, t, arg);
		if (rc) {
			index_abort(t);
		} else {
			rc = index_commit(t);
		}
		if (rc != -EAGAIN)
			return rc;
		rc = index_grow(ck->ix);
		if (rc)
			return rc;
	}
}

struct meta_sum {
	uint64_t tasks, events, bytes, max_uid;
};

static int sum_task(void *arg, const struct index_task *it)
{
	struct meta_sum *s = arg;

	s->tasks++;
	s->events += it->nevents - it->base_n;
	s->bytes += it->log_len - it->base_len;
	if (it->uid > s->max_uid)
		s->max_uid = it->uid;
	return 0;
}

/*
 * A task the index does not vouch for: its owner and mode from its
 * directory's attribute (tasklog_owner_of), if it carries one, rather than
 * the mounting user's and 0755.
 */
void ck_owner_from_dir(struct ck *ck, struct ck_task *tk)
{
	struct tasklog_owner o;

	if (tk->has_owner || tk->vouched)
		return;
	if (!tasklog_owner_of(ck->dir, tk->name, &o))
		return;
	tk->has_owner = true;
	tk->owner_uid = o.uid;
	tk->owner_gid = o.gid;
	tk->mode = o.mode;
}

static int fix_tasks(struct ck *ck, struct index_txn *t, void *arg)
{
	struct index_meta m;
	int rc = index_get_meta(t, &m);

	for (size_t i = 0; i < ck->ntasks && !rc; i++) {
		struct ck_task *tk = &ck->tasks[i];
		struct index_task it;

		if (tk->in_index && !tk->on_disk) {
			rc = index_task_delete(t, tk->uid);
			tk->in_index = false;
			continue;
		}
		if (tk->skip || !tk->on_disk)
			continue;	/* !on_disk: a task a journaled delete removed */
		if (!tk->in_index) {
			it = (struct index_task){ .uid = tk->uid ? tk->uid : m.next_uid++,
						  .state = TASK_LIVE };
			ck_owner_from_dir(ck, tk);
			it.has_owner = tk->has_owner;
			it.owner_uid = tk->owner_uid;
			it.owner_gid = tk->owner_gid;
			it.mode = tk->mode;
			tk->uid = it.uid;
			tk->in_index = true;
			if (m.next_uid <= it.uid)
				m.next_uid = it.uid + 1;
		} else if (tk->n == tk->idx_n && tk->bytes == tk->idx_len) {
			continue;
		} else {
			rc = index_task_by_uid(t, tk->uid, &it);
			if (rc)
				break;
		}
		it.nevents = it.base_n + tk->n;
		it.log_len = it.base_len + tk->bytes;
		it.created_ns = it.created_ns ? it.created_ns : tk->created_ns;
		it.last_ns = tk->last_ns > it.last_ns ? tk->last_ns : it.last_ns;
		it.name_len = tk->name_len;
		memcpy(it.name, tk->name, tk->name_len + 1);
		tk->base_len = it.base_len;
		tk->base_n = it.base_n;
		rc = index_task_put(t, &it);
	}
	/*
	 * The live totals with the task records, in this transaction: the
	 * open's walk takes records and totals that do not add up for damage,
	 * and a repair cut short between here and check_meta would leave a
	 * store only reindex opens.
	 */
	if (!rc) {
		struct meta_sum s = { 0 };

		rc = index_task_list(t, NULL, 0, sum_task, &s);
		m.tasks = s.tasks;
		m.events = s.events;
		m.log_bytes = s.bytes;
	}
	/*
	 * And the next gseq past every logged one, before rebuild_type's
	 * transactions add their entries: a repair cut short between them
	 * would leave a gseq in use past it, which the open's walk calls damage.
	 */
	if (m.next_gseq <= ck->max_gseq)
		m.next_gseq = ck->max_gseq + 1;
	if (!rc)
		rc = index_put_meta(t, &m);
	return rc;
}

/* Drop type @arg's entries and add its run again, in gseq order. */
static int rebuild_type(struct ck *ck, struct index_txn *t, void *arg)
{
	struct ck_type *ty = arg;
	int rc = index_type_drop(t, ty->name, ty->len);

	if (rc == -ENOENT)
		rc = 0;
	for (size_t k = 0; k < ty->count && !rc; k++) {
		const struct ck_ev *e = &ck->evs[ty->first + k];
		const struct ck_task *tk = &ck->tasks[e->task];

		if (!tk->in_index || tk->skip)
			continue;
		rc = index_add_event(t, tk->uid, e->gseq, ty->name, ty->len, e->off + tk->base_len,
				     e->len);
	}
	return rc;
}

/* Meta counters from the task records; fix them when @fix. */
static int check_meta(struct ck *ck, struct index_txn *t, void *arg)
{
	bool fix = arg != NULL;
	struct meta_sum s = { 0 };
	struct index_meta m;
	int rc = index_get_meta(t, &m);

	if (!rc)
		rc = index_task_list(t, NULL, 0, sum_task, &s);
	if (rc)
		return rc;
	if (m.tasks == s.tasks && m.events == s.events && m.log_bytes == s.bytes &&
	    m.next_gseq > ck->max_gseq && m.next_uid > s.max_uid)
		return 0;
	if (!fix) {
		ck_report(ck, 'E', "index totals: %" PRIu64 " tasks, %" PRIu64 " events, %" PRIu64
			  " bytes, next gseq %" PRIu64 "; the task records add up to %" PRIu64
			  ", %" PRIu64 ", %" PRIu64 " and the logs reach gseq %" PRIu64,
			  m.tasks, m.events, m.log_bytes, m.next_gseq, s.tasks, s.events, s.bytes,
			  ck->max_gseq);
		return 0;
	}
	m.tasks = s.tasks;
	m.events = s.events;
	m.log_bytes = s.bytes;
	if (m.next_gseq <= ck->max_gseq)
		m.next_gseq = ck->max_gseq + 1;
	if (m.next_uid <= s.max_uid)
		m.next_uid = s.max_uid + 1;
	ck_report(ck, 'F', "index totals set to %" PRIu64 " tasks, %" PRIu64 " events, %" PRIu64
		  " bytes", s.tasks, s.events, s.bytes);
	return index_put_meta(t, &m);
}

static int check_meta_ro(struct ck *ck)
{
	struct index_txn *t;
	int rc = index_begin(ck->ix, false, &t);

	if (rc)
		return rc;
	rc = check_meta(ck, t, NULL);
	index_abort(t);
	return rc;
}

/* Make the index agree with the scan: task records, differing types, totals. */
int ck_repair(struct ck *ck, bool all_types)
{
	uint64_t ntypes = 0, done = 0;
	int rc;

	for (size_t i = 0; i < ck->ntasks; i++) {
		struct ck_task *tk = &ck->tasks[i];

		if (tk->in_index && !tk->on_disk)
			ck_report(ck, all_types ? 'I' : 'F', "task %s: deleted from the index",
				  tk->name);
		else if (tk->skip)
			;
		else if (!tk->in_index && !all_types)
			ck_report(ck, 'F', "task %s: added to the index", tk->name);
		else if (tk->in_index && (tk->n != tk->idx_n || tk->bytes != tk->idx_len))
			ck_report(ck, 'F', "task %s: counters set to %" PRIu64 " events, %" PRIu64
				  " bytes", tk->name, tk->n, tk->bytes);
	}
	rc = ck_in_txn(ck, fix_tasks, NULL);
	if (rc)
		return rc;
	for (size_t i = 0; i < ck->ntypes; i++)
		ntypes += all_types || ck->types[i].differs;
	for (size_t i = 0; i < ck->ntypes && !rc; i++) {
		struct ck_type *ty = &ck->types[i];

		if (!all_types && !ty->differs)
			continue;
		rc = ck_in_txn(ck, rebuild_type, ty);
		if (!rc && !all_types)
			ck_report(ck, 'F', "type %s: entries rebuilt from the logs (%zu events)",
				  ty->name, ty->count);
		ck_progress(ck, all_types ? "index" : "repair", ++done, ntypes);
	}
	if (!rc)
		rc = ck_in_txn(ck, check_meta, (void *)1);
	if (!rc)
		rc = index_sync(ck->ix);
	return rc;
}

/* ---- fsck ---- */

/* Write the sidecar records rebuilt by the scan (mend_rec), synced. */
int ck_write_mends(struct ck *ck)
{
	struct tasklog *tl = NULL;
	int rc;

	if (!ck->nmends)
		return 0;
	rc = tasklog_open(ck->dir, 64, &tl);
	for (size_t k = 0; k < ck->nmends && !rc; k++) {
		struct ck_task *tk = &ck->tasks[ck->mends[k].task];

		rc = tasklog_write_recs(tl, tk->uid, tk->name, ck->mends[k].idx, &ck->mends[k].rec,
					1);
		if (!rc && (k + 1 == ck->nmends || ck->mends[k + 1].task != ck->mends[k].task)) {
			rc = tasklog_sync(tl, tk->uid, tk->name);
			if (!rc)
				ck_report(ck, 'F', "task %s: %" PRIu64 " sidecar records rewritten from"
					  " the log and the index", tk->name, tk->mended);
		}
	}
	if (tl)
		tasklog_close(tl);
	return rc;
}

/*
 * Whole lines after a task's last event (appended to the log outside the
 * store) are no torn write: they go to its events.unapplied, not away.
 */
static int keep_tail(struct ck *ck, struct tasklog *tl, struct ck_task *tk)
{
	enum { CHUNK = 1 << 20 };
	char path[DD_PATH_MAX], *buf;
	uint64_t len = tk->log_size > tk->bytes ? tk->log_size - tk->bytes : 0, whole = 0, skip = 0;
	int fd, rc = 0;

	if (!len)
		return 0;
	if (dd_task(path, ck->dir, tk->name, DD_EVENTS))
		return -ENAMETOOLONG;
	buf = malloc(CHUNK);
	if (!buf)
		return -ENOMEM;
	fd = io->open(path, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0) {
		free(buf);
		return -errno;
	}
	/* the whole lines: up to the last newline (what follows is a torn write) */
	for (uint64_t end = len; end > 0 && !whole && !rc;) {
		size_t k = end < CHUNK ? end : CHUNK;
		ssize_t n = io_pread_all(fd, buf, k, tk->bytes + end - k);

		if (n != (ssize_t)k) {
			rc = n < 0 ? -errno : -EIO;
			break;
		}
		for (size_t i = k; i > 0; i--)
			if (buf[i - 1] == '\n') {
				whole = end - k + i;
				break;
			}
		end -= k;
	}
	/*
	 * Reindex without a usable index replays the journal next: the tail's
	 * first lines that are the journal's next events of this task (a batch
	 * whose sidecar records a crash took) are written again by it, so
	 * keeping them aside too would leave a copy a user might append again.
	 */
	for (size_t i = 0; ck->will_replay && i < ck->njev && skip < whole && !rc; i++) {
		const struct ck_jev *je = &ck->jev[i];
		ssize_t n;

		if (je->uid != tk->uid || je->gseq <= tk->last_gseq)
			continue;
		if (je->len > CHUNK || skip + je->len > whole)
			break;
		n = io_pread_all(fd, buf, je->len, tk->bytes + skip);
		if (n != (ssize_t)je->len) {
			rc = n < 0 ? -errno : -EIO;
			break;
		}
		if (memcmp(buf, je->data, je->len))
			break;
		/* only what replay_journal will write (it refuses what does not validate) */
		{
			char type[EVENT_TYPE_MAX + 1];
			struct event_error ee;
			size_t tlen;

			if (!ck->val || event_validate(ck->val, je->data, je->len - 1, type, &tlen,
						       &ee))
				break;
		}
		skip += je->len;
	}
	if (!rc && skip)
		ck_report(ck, 'I', "task %s: %" PRIu64 " bytes after its last event are the journal's"
			  " next events of it: written again by the replay", tk->name, skip);
	/* copied in chunks: a tail of any size, in bounded memory */
	for (uint64_t done = skip; done < whole && !rc;) {
		size_t k = whole - done < CHUNK ? whole - done : CHUNK;
		ssize_t n = io_pread_all(fd, buf, k, tk->bytes + done);

		if (n != (ssize_t)k)
			rc = n < 0 ? -errno : -EIO;
		else
			rc = tasklog_rescue(tl, tk->name, buf, k);
		done += k;
	}
	io->close(fd);
	free(buf);
	if (!rc && whole > skip)
		ck_report(ck, 'F', "task %s: %" PRIu64 " bytes of whole lines after its last event "
			  "moved to tasks/%s/events.unapplied", tk->name, whole - skip, tk->name);
	return rc;
}

/* Cut torn tails off the files (the consistent prefix stays). */
int ck_cut_tails(struct ck *ck)
{
	struct tasklog *tl = NULL;
	int rc;

	rc = tasklog_open(ck->dir, 64, &tl);
	for (size_t i = 0; i < ck->ntasks && !rc; i++) {
		struct ck_task *tk = &ck->tasks[i];

		if (!tk->torn || tk->skip || !tk->on_disk || !tk->uid)
			continue;
		rc = keep_tail(ck, tl, tk);
		if (!rc)
			rc = tasklog_truncate(tl, tk->uid, tk->name, tk->bytes, tk->n);
		if (!rc)
			rc = tasklog_sync(tl, tk->uid, tk->name);
		if (!rc)
			ck_report(ck, 'F', "task %s: torn tail cut (%" PRIu64 " events kept%s)", tk->name,
				  tk->n, tk->lost ? ", the rest lost with the log's end" : "");
	}
	if (tl)
		tasklog_close(tl);
	return rc;
}

/*
 * An error reading an index that passed the checks at open (a value of the
 * wrong size, an entry naming what the index lacks, LMDB's MDB_CORRUPTED)
 * is damage too: a finding for reindex, not an error of fsck.
 */
static int index_unreadable(struct ck *ck, int rc)
{
	if (rc != -EIO && rc != -ENOENT && rc != -EUCLEAN && rc != -EINVAL)
		return rc;
	ck_report(ck, 'E', "the index of %s is damaged (reading it gave: %s): evlogctl reindex %s"
		  " builds a new one from the task logs", ck->dir, strerror(-rc), ck->dir);
	return -EUCLEAN;
}

int evl_fsck(const char *dir, const struct evl_check_opts *o, struct evl_check_result *r)
{
	struct index_meta m;
	uint64_t dirty, retains, dropping = 0, p0;
	struct ck ck;
	int rc;

	rc = ck_init(&ck, dir, o, r);
	if (!rc)
		rc = ck_lock_store(&ck, "evlogctl fsck");
	if (!rc)
		rc = ck_check_format(&ck, o->repair);
	if (rc)
		goto out;
	/* read-only: a check writes nothing, least of all into a damaged file */
	rc = ck_open_index(&ck, true, o->repair);
	if (rc == -ENOENT) {
		ck_report(&ck, 'X', "%s has no index (%s/index/data.mdb): evlogctl reindex builds one",
			  dir, dir);
		goto out;
	}
	if (rc == -EUCLEAN) {
		/* counted: fsck found it; --repair cannot fix it, reindex can */
		ck_report(&ck, 'E', "the index of %s is damaged (see above): evlogctl reindex %s"
			  " builds a new one from the task logs", dir, dir);
		goto out;
	}
	if (rc) {
		ck_report(&ck, 'X', "cannot open the index of %s: %s (evlogctl reindex rebuilds it)",
			  dir, strerror(-rc));
		goto out;
	}
	/* nothing to compare with: --repair would "fix" the logs to an older index */
	rc = ck_check_stamp(&ck, 'X');
	if (!rc)
		rc = event_validator_new_ex(ck.type_field, CHECK_MAX_EVENT, EVENT_STORED, &ck.val);
	if (!rc)
		rc = index_unreadable(&ck, ck_load_index(&ck, &m, &dirty, &retains, &dropping));
	if (rc)
		goto out;
	ck.applied_lsn = m.applied_lsn;
	rc = ck_finish_salvages(&ck, o->repair);
	if (!rc)
		rc = ck_check_journal(&ck);
	if (rc)
		goto out;
	/* store_recover's position checks: the open refuses such an index */
	if (m.ckpt_lsn > m.applied_lsn || (ck.j_intact && ck.j_end < m.applied_lsn)) {
		ck_report(&ck, 'E', "the index of %s is damaged: it says journal records up to %" PRIu64
			  " are applied (checkpoint %" PRIu64 "), but the journal ends at %" PRIu64
			  ": evlogctl reindex %s builds a new one from the task logs and the journal",
			  dir, m.applied_lsn, m.ckpt_lsn, ck.j_end, dir);
		rc = -EUCLEAN;
		goto out;
	}
	if (ck.j_unapplied || dirty || retains)
		ck.needs_recovery = true;
	if (!ck.j_unapplied && !dirty && retains && retains == dropping)
		/* what a clean close leaves when it stops a compaction (compact.c) */
		ck_report(&ck, 'I', "retention of %" PRIu64 " task%s was under way when the store"
			  " closed: some of the oldest events have left the index; the next mount"
			  " (or fsck --repair) finishes it", retains, retains == 1 ? "" : "s");
	else if (ck.needs_recovery)
		ck_report(&ck, 'E', "the store was not closed cleanly: %" PRIu64 " journal records not"
			  " applied, %" PRIu64 " tasks changed since the last checkpoint%s; the next"
			  " mount (or fsck --repair) recovers them", ck.j_unapplied, dirty,
			  retains ? ", retention under way" : "");
	if (ck.needs_recovery && o->repair) {
		uint64_t unapplied = ck.j_unapplied;

		rc = ck_mend_short_sidecars(&ck);
		if (!rc)
			rc = ck_recover(&ck, "evlogctl fsck");
		if (rc) {
			ck_report(&ck, 'X', "recovery failed: %s", strerror(-rc));
			goto out;
		}
		ck_report(&ck, 'F', "recovered: %" PRIu64 " journal records applied, %" PRIu64
			  " tasks changed since the last checkpoint made durable%s", unapplied, dirty,
			  retains ? ", retention finished" : "");
		ck.needs_recovery = false;
		ck_forget(&ck);
		rc = ck_open_index(&ck, true, true);
		if (!rc)
			rc = ck_load_index(&ck, &m, &dirty, &retains, NULL);
		if (rc)
			goto out;
	}
	p0 = r->problems;
	/* a log without a sidecar: its whole lines are whole events */
	if (o->repair)
		rc = ck_rebuild_sidecars(&ck);
	if (!rc)
		rc = ck_scan_all(&ck);
	if (!rc)
		rc = check_retains(&ck);
	if (!rc) {
		compare_tasks(&ck);
		rc = index_unreadable(&ck, compare_types(&ck));
	}
	if (!rc)
		rc = index_unreadable(&ck, check_meta_ro(&ck));
	if (!rc && o->repair && r->problems > p0) {
		rc = ck_write_mends(&ck);
		if (!rc)
			rc = ck_repair(&ck, false);
		if (!rc)
			rc = ck_cut_tails(&ck);
	}
out:
	ck_free(&ck);
	return rc;
}
