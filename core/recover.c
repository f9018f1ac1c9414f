/*
 * recover.c - opening a store that was not closed cleanly: cutting or
 * rewriting the task files changed since the last checkpoint, replaying the
 * journal, and opening on read-only media.
 *
 * RECOVERY (store_recover), idempotent: a crash during it recovers again.
 *   0. A task the index has live whose directory is in the trash had its
 *      delete applied in a batch the crash lost: its directory goes back
 *      (the replay deletes it again).
 *   1. For each dirty task: files at least as long as the index says, and
 *      trusted (I6) -> cut them to the index's lengths (kill -9 left an
 *      unapplied batch).  Files shorter (power loss took unsynced log
 *      bytes), or not trusted -> cut them to their checkpoint lengths and
 *      rewrite from the journal records in (ckpt_lsn, applied_lsn] (present
 *      by I1, I4 and I5).  The running boot id is recorded once done.
 *   2. Replay the journal past applied_lsn onto the pending list, applying
 *      in batches when it exceeds max_pending, then apply the rest.
 * The index is never scanned as a whole and no log is read.
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

struct repair {
	uint64_t uid;
	char name[256];
	uint64_t pos, idx;		/* where the next rewritten event goes (in the files) */
	uint64_t want_len, want_n;	/* what the index says */
	uint64_t gseq_from;		/* records below are in the files (a log rewrite) */
};

struct recover {
	struct evl_store *st;
	struct index_txn *t;		/* the read transaction of the dirty list */
	struct event_validator *val;	/* replayed events are checked again */
	bool trusted;			/* I6: files written under the running boot */
	uint64_t applied;
	struct repair *rep;
	size_t nrep, cap;
	int rc;
};

static int dirty_cb(void *arg, uint64_t uid, uint64_t ck_len, uint64_t ck_n,
		    uint64_t gseq_from)
{
	struct recover *r = arg;
	struct evl_store *st = r->st;
	struct index_task task;
	uint64_t len, n;
	bool missing, trust, changed = false;
	int rc;

	rc = store_live_task(st, uid, &task);
	if (rc)
		return rc == -ENOENT ? 0 : rc;
	if (ck_len < task.base_len || ck_n < task.base_n) {
		evl_log(LOG_ERR, "recovery: task %s: checkpoint length %" PRIu64 " before its "
			"retained head %" PRIu64, task.name, ck_len, task.base_len);
		return -EIO;
	}
	/* from here on, lengths in the files */
	ck_len -= task.base_len;
	ck_n -= task.base_n;
	task.log_len -= task.base_len;
	task.nevents -= task.base_n;
	rc = tasklog_sizes(st->tl, task.name, &len, &n);
	if (rc == -ENOENT && task.nevents && tasklog_recreate_meta(st->tl, task.name) > 0)
		rc = tasklog_sizes(st->tl, task.name, &len, &n);	/* a sidecar removed: mended below */
	if (rc && task_damage(rc) && (ck_len || ck_n)) {
		/*
		 * Files it had at its checkpoint are gone or unusable: only
		 * fsck --repair can tell what they still hold.  The other tasks
		 * open; its records are skipped, counted and named.
		 */
		set_aside_err(st, uid, task.name, rc);
		return 0;
	}
	missing = rc == -ENOENT;
	if (missing)
		len = n = 0;
	else if (rc)
		return rc;
	/*
	 * Only the records of its last checkpoint: those since are rebuilt
	 * with their events from the journal (whose bytes, not the log's,
	 * are the ones written: a checksum of the log's would vouch for bytes
	 * changed since).
	 */
	if (!missing && n && len >= ck_len) {
		rc = sidecar_foreign(st, r->t, &task, n, len, NULL);	/* another task's over it */
		if (rc < 0 && task_damage(rc)) {
			set_aside_err(st, uid, task.name, rc);
			return 0;
		}
		if (rc < 0)
			return rc;
		if (rc)
			n = 0;
	}
	if (!missing && n < ck_n && len >= ck_len) {
		rc = mend_records(st, r->t, &task, n, len, ck_n);
		if (rc < 0 && task_damage(rc)) {
			set_aside_err(st, uid, task.name, rc);
			return 0;
		}
		if (rc < 0)
			return rc;
		n += rc;
	}
	/* I6, or all its bytes are from the last checkpoint or before (synced then) */
	trust = r->trusted || (task.log_len == ck_len && task.nevents == ck_n);
	if (trust && len >= task.log_len && n >= task.nevents) {
		/*
		 * What it got since its checkpoint is in the journal too: bytes
		 * changed since they were written (damage, in the same boot)
		 * are written again from there, not found later by a reader
		 * (who would set the task aside) or moved out by a salvage.
		 */
		rc = written_as_recorded(st, uid, task.name, ck_len, ck_n, task.nevents - ck_n);
		if (rc < 0 && task_damage(rc)) {
			set_aside_err(st, uid, task.name, rc);
			return 0;
		}
		if (rc < 0)
			return rc;
		/*
		 * Bytes past the index: a batch whose index commit the crash
		 * lost (the replay finds them as it writes them again), or
		 * what settle_tails sorts out after the replay.  Nothing here
		 * may be cut before the replay has had its say.
		 */
		if (rc)
			return 0;
		changed = true;
	}
	/* power loss took log bytes the index covers: rewrite them from the journal */
	if (len < ck_len || n < ck_n) {
		char why[200];

		/*
		 * What its last checkpoint synced is gone: a file cut or
		 * replaced (damage), or a disk that lost synced data.  Only
		 * fsck --repair can tell what its files still hold; the other
		 * tasks open (item 6).
		 */
		snprintf(why, sizeof(why), "its files are shorter than at the last checkpoint "
			 "(log %" PRIu64 " of %" PRIu64 " bytes, sidecar %" PRIu64 " of %" PRIu64
			 " records)", len, ck_len, n, ck_n);
		set_aside(st, uid, task.name, why);
		return 0;
	}
	if (changed)
		evl_log(LOG_WARNING, "recovery: task %s: its events since the last checkpoint are "
			"not what was written (changed on disk): rewriting its last %" PRIu64
			" bytes from the journal", task.name, task.log_len - ck_len);
	else if (!r->trusted)
		evl_log(LOG_INFO, "recovery: task %s: rewriting its last %" PRIu64 " bytes from "
			"the journal (written before a reboot or a failed fsync)", task.name,
			task.log_len - ck_len);
	else if (len < task.log_len)
		evl_log(LOG_WARNING, "recovery: task %s: %" PRIu64 " bytes lost by the disk, "
			"rewriting them from the journal", task.name, task.log_len - len);
	else
		evl_log(LOG_WARNING, "recovery: task %s: its sidecar lacks records since the last "
			"checkpoint (%" PRIu64 " of %" PRIu64 "): rewriting its last %" PRIu64
			" bytes from the journal", task.name, n, task.nevents, task.log_len - ck_len);
	/* created since the last checkpoint, and its entries lost with a failed fsync */
	if (missing && (rc = tasklog_create(st->tl, uid, task.name, task.has_owner ?
					    &(struct tasklog_owner){ task.owner_uid,
								     task.owner_gid, task.mode } :
					    NULL)))
		return rc;
	rc = tasklog_truncate(st->tl, uid, task.name, ck_len, ck_n);
	if (rc)
		return rc;
	if (GROW(r->rep, r->cap, r->nrep + 1))
		return -ENOMEM;
	r->rep[r->nrep++] = (struct repair){ .uid = uid, .pos = ck_len, .idx = ck_n,
					     .want_len = task.log_len, .want_n = task.nevents,
					     .gseq_from = gseq_from };
	memcpy(r->rep[r->nrep - 1].name, task.name, task.name_len + 1);
	return 0;
}

static int rewrite(struct evl_store *st, struct repair *rp, const struct pend *p)
{
	struct tasklog_rec *recs = malloc(p->n * sizeof(*recs));
	int rc;

	if (!recs)
		return -ENOMEM;
	for (uint32_t i = 0; i < p->n; i++)
		recs[i] = (struct tasklog_rec){ p->gseq + i, p->time_ns, p->ev[i].len, 0 };
	rc = tasklog_write(st->tl, rp->uid, rp->name, rp->pos, p->data, p->data_len,
			   rp->idx, recs, p->n, 0);	/* cut to rp->pos before: nothing past it */
	free(recs);
	rp->pos += p->data_len;
	rp->idx += p->n;
	return rc;
}

/*
 * Check the events of replayed append @p as a writer's were: its checksum
 * proves only that the bytes are what was written, and what was written is
 * applied without a second look.  0 or -EIO (logged).
 */
static int replay_check(struct recover *r, const struct pend *p)
{
	char type[EVENT_TYPE_MAX + 1];
	size_t tlen;

	for (uint32_t i = 0; p->kind == REC_APPEND && i < p->n; i++) {
		const struct pend_ev *e = &p->ev[i];
		struct event_error err = { 0 };

		if (event_validate(r->val, p->data + e->off, e->len - 1, type, &tlen, &err) ||
		    tlen != e->tlen || memcmp(type, ev_type(p, e), tlen)) {
			evl_log(LOG_ERR, "journal record %" PRIu64 ": event %u is not what its "
				"writer validated (%s); run evlogctl reindex", p->lsn, i,
				err.err ? err.reason : "its type differs");
			return -EIO;
		}
	}
	return 0;
}

static int replay_cb(void *arg, uint64_t lsn, unsigned kind, const void *payload, size_t len)
{
	struct recover *r = arg;
	struct evl_store *st = r->st;
	unsigned char *copy = malloc(len ? len : 1);
	struct pend *p;
	int rc = 0;

	if (!copy)
		return -ENOMEM;
	if (len)
		memcpy(copy, payload, len);	/* an empty record has no buffer */
	p = pend_parse(kind, copy, len);
	if (!p) {
		evl_log(LOG_ERR, "journal record %" PRIu64 " is malformed (kind %u, %zu bytes)",
			lsn, kind, len);
		return -EIO;
	}
	p->lsn = lsn;
	if (lsn <= r->applied) {
		/* applied before: used only to rewrite what the disk lost */
		for (size_t i = 0; i < r->nrep && kind == REC_APPEND && !rc; i++)
			if (r->rep[i].uid == p->uid && p->gseq >= r->rep[i].gseq_from)
				rc = replay_check(r, p) ?: rewrite(st, &r->rep[i], p);
		pend_free(p);
		return rc;
	}
	rc = replay_check(r, p);
	if (rc) {
		pend_free(p);
		return rc;
	}
	if (kind == REC_APPEND && st->next_gseq < p->gseq + p->n)
		st->next_gseq = p->gseq + p->n;
	if (kind == REC_CREATE && st->next_uid <= p->uid)
		st->next_uid = p->uid + 1;
	pend_enqueue(st, p);
	if (st->pending_mem > st->opt.max_pending)
		rc = apply_all(st);
	return rc;
}

/*
 * ---- a store on read-only media ----
 *
 * -o ro on a file system mounted read-only (a backup on a DVD, a read-only
 * bind mount): nothing can be written there, not even LMDB's lock file or
 * the cut of a torn journal tail.  A store closed cleanly needs nothing
 * written to be served: its index is opened read-only, no journal is kept
 * and no applier runs.  One that needs recovery (journal records past the
 * index, a delete or a retention rewrite cut short, a task written since
 * the last checkpoint) is refused: its recovery must be written first.
 */
bool on_read_only_media(const char *dir)
{
	struct statvfs sv;

	return !statvfs(dir, &sv) && (sv.f_flag & ST_RDONLY);
}

static int count_dirty(void *arg, uint64_t uid, uint64_t log_len, uint64_t nevents,
		       uint64_t gseq_from)
{
	(void)uid, (void)log_len, (void)nevents, (void)gseq_from;
	(*(uint64_t *)arg)++;
	return 0;
}

static int count_retains(void *arg, const struct index_retain *tr)
{
	(void)tr;
	(*(uint64_t *)arg)++;
	return 0;
}

static int count_trash(void *arg, uint64_t uid)
{
	(void)uid;
	(*(uint64_t *)arg)++;
	return 0;
}

static int count_records(void *arg, uint64_t lsn, unsigned type, const void *payload, size_t len)
{
	(void)lsn, (void)type, (void)payload, (void)len;
	(*(uint64_t *)arg)++;
	return 0;
}

int open_frozen(struct evl_store *st)
{
	struct journal_scan js;
	struct index_txn *t;
	struct index_meta m;
	uint64_t dirty = 0, retains = 0, trash = 0, records = 0;
	char path[DD_PATH_MAX];
	int rc;

	rc = index_begin(st->ix, false, &t);
	if (rc)
		return rc;
	rc = index_get_meta(t, &m);
	if (!rc)
		rc = index_dirty_list(t, count_dirty, &dirty);
	if (!rc)
		rc = index_retain_list(t, count_retains, &retains);
	index_abort(t);
	if (!rc)
		rc = tasklog_trash_list(st->tl, count_trash, &trash);
	if (!rc)
		rc = dd_path(path, st->dir, DD_JOURNAL, NULL);
	if (!rc)
		rc = journal_scan(path, m.applied_lsn, count_records, &records, &js);
	if (rc)
		return rc;
	/* store_recover's position checks (journal_open: check_end) */
	if (m.ckpt_lsn > m.applied_lsn || (js.segments && !js.damage.lost && !js.damage.segments &&
					     !js.bad_bytes && js.last_lsn < m.applied_lsn)) {
		evl_log(LOG_ERR, "index %s/index/data.mdb is damaged: it says journal records up to %"
			PRIu64 " are applied (checkpoint %" PRIu64 "), but the journal ends at %" PRIu64
			"; nothing is served from it: copy the store (cp -a) and run evlogctl reindex"
			" on the copy", st->dir, m.applied_lsn, m.ckpt_lsn, js.last_lsn);
		return -EUCLEAN;
	}
	/* records at or before the index's applied lsn are in the logs already */
	if (js.records && js.last_lsn <= m.applied_lsn)
		records = 0;
	if (dirty || retains || trash || records || js.bad_bytes || js.damage.lost) {
		evl_log(LOG_ERR, "store %s is on read-only media and was not closed cleanly "
			"(%" PRIu64 " tasks written since its last checkpoint, %" PRIu64 " journal "
			"records to apply, %" PRIu64 " deletes and %" PRIu64 " retention rewrites "
			"to finish): its recovery must be written first; mount it read-write once, "
			"or copy it (cp -a) and mount the copy", st->dir, dirty, records, trash,
			retains);
		return -EROFS;
	}
	st->next_gseq = m.next_gseq;
	st->next_uid = m.next_uid;
	st->applied_lsn = st->durable_lsn = m.applied_lsn;
	st->frozen = true;
	evl_log(LOG_INFO, "store %s is on read-only media: served as it is, nothing written",
		st->dir);
	return 0;
}

int store_recover(struct evl_store *st)
{
	struct recover r = { .st = st };
	struct journal_opts jo = {
		.sync_mode = st->opt.commit_sync,
		.commit_ms = st->opt.commit_ms,
		.segment_bytes = st->opt.segment_bytes,
		.on_durable = applier_on_durable,
		.arg = st,
	};
	struct index_txn *t;
	struct index_meta m;
	char path[DD_PATH_MAX], boot[64], now[64];
	int rc;

	/* deletes and log rewrites first: the repair below expects the files the index names */
	rc = tasklog_trash_list(st->tl, apply_undo_delete, st);
	if (!rc)
		rc = retain_recover_files(st);
	if (rc)
		return rc;
	if (io->boot_id(now, sizeof(now)))
		now[0] = '\0';	/* unknown: trust nothing past a checkpoint */
	/*
	 * Any size: the limit in force may be lower than the one they were
	 * written under.  EVENT_STORED: records journaled by an earlier
	 * version, whose validator was laxer, must still replay (and the
	 * events a task's files vouch for, dirty_cb and adopt_tails, check).
	 */
	rc = event_validator_new_ex(st->opt.type_field, (size_t)1 << 30, EVENT_STORED, &r.val);
	if (rc)
		return rc;
	rc = index_begin(st->ix, false, &t);
	if (rc)
		goto out;
	rc = index_get_meta(t, &m);
	st->recover_gseq = rc ? UINT64_MAX : m.next_gseq;
	if (!rc)
		rc = index_get_boot(t, boot, sizeof(boot));
	r.trusted = !rc && now[0] && !strcmp(boot, now);
	if (!rc)
		r.t = t;
	if (!rc)
		rc = index_dirty_list(t, dirty_cb, &r);
	index_abort(t);
	if (rc)
		goto out;
	r.applied = m.applied_lsn;
	st->next_gseq = m.next_gseq;
	st->next_uid = m.next_uid;
	st->applied_lsn = m.applied_lsn;
	jo.min_lsn = m.applied_lsn;
	/*
	 * Where the replay starts: a flipped bit moving it ahead (damage sweep
	 * seed 99602 case 638: 186 read as 131258) would skip every journaled
	 * event past the true one, without a word.  A checkpoint is taken at
	 * what was applied, never past it; the journal never ends before it
	 * (journal_open: check_end).
	 */
	jo.check_end = true;
	if (m.ckpt_lsn > m.applied_lsn) {
		evl_log(LOG_ERR, "index %s/index/data.mdb is damaged: its checkpoint (journal record"
			" %" PRIu64 ") is past what it applied (%" PRIu64 ")", st->dir, m.ckpt_lsn,
			m.applied_lsn);
		rc = -EUCLEAN;
	}
	if (rc == -EUCLEAN)
		goto damaged;

	/*
	 * I2 lets a crash leave, past the index's lengths, the bytes of a
	 * batch whose commit it lost.  A task dirty at the crash was cut back
	 * above; one the lost commit made dirty was not (its index entry is
	 * the lost one): the replay of the same records writes them again.
	 * After a kill -9 they are those very bytes; after a power loss any
	 * part of them may be a hole instead.
	 */
	st->replay_after_loss = !r.trusted;
	rc = dd_path(path, st->dir, DD_JOURNAL, NULL);
	if (!rc)
		rc = journal_open(path, r.nrep ? m.ckpt_lsn : m.applied_lsn, &jo, replay_cb, &r, &st->jn);
damaged:
	if (rc == -EUCLEAN)
		evl_log(LOG_ERR, "nothing is served from the index of %s: evlogctl reindex %s builds"
			" a new one from the task logs and the journal", st->dir, st->dir);
	if (rc)
		goto out;
	for (size_t i = 0; i < r.nrep; i++) {
		struct repair *rp = &r.rep[i];

		if (rp->pos != rp->want_len || rp->idx != rp->want_n) {
			evl_log(LOG_ERR, "recovery: task %s: the journal does not hold what the "
				"index covers (%" PRIu64 " of %" PRIu64 " bytes); run evlogctl reindex",
				rp->name, rp->pos, rp->want_len);
			rc = -EIO;
			goto out;
		}
		rc = tasklog_sync(st->tl, rp->uid, rp->name);
		if (rc)
			goto out;
	}
	{
		struct journal_stats js;

		store_journal_stats(st, &js);
		st->durable_lsn = js.durable_lsn;
	}
	rc = apply_all(st);
	st->replay_after_loss = false;	/* the replay is written: files as written from here */
	if (!rc)
		rc = retain_recover_dropping(st);
	if (!rc)
		rc = adopt_tails(st, r.val);
	/* I6: what this boot writes from now on is trusted by a reopen in it */
	if (!rc && !r.trusted && now[0])
		rc = store_write_txn(st, applier_boot_txn, now);
	if (rc)
		goto out;
	/* a deletion whose purge was cut short goes on in the background */
	st->purge_more = true;
out:
	st->replay_after_loss = false;
	event_validator_free(r.val);
	free(r.rep);
	return rc;
}
