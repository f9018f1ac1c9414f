/*
 * reindex.c - evl_reindex: a new index built from the scan (scan.c).
 *
 * REINDEX runs recovery through the old index when it still opens (so the
 * journal is applied and the task uids kept), builds a new index in
 * DATA_DIR/index.new from the scan and renames it into place.  Without a
 * usable old index, the journal's appends that the logs lack are written
 * to the logs first: a record's task is found by the uid its directory
 * carries (an extended attribute), by another record of the same task whose
 * events a log holds (gseq match), or by its create record; records whose
 * task cannot be found are reported as lost.
 *
 * A task tree copied inside tasks/ gets its own gseqs (renumber_copies);
 * the index is filled as fsck's repair would (ck_repair), and what belongs
 * to no task any more is removed last (clean_leftovers).
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "check_i.h"
#include "datadir.h"
#include "event.h"
#include "evlog.h"
#include "index.h"
#include "store.h"
#include "tasklog.h"

/* ---- reindex ---- */

struct gseq_task {
	uint64_t gseq;
	size_t task;
};

static int cmp_gt(const void *a, const void *b)
{
	uint64_t x = ((const struct gseq_task *)a)->gseq, y = ((const struct gseq_task *)b)->gseq;

	return x < y ? -1 : x > y;
}

/* Events in task, then log order: a task's k-th is its k-th sidecar record. */
static int cmp_task_off(const void *a, const void *b)
{
	const struct ck_ev *x = *(struct ck_ev *const *)a, *y = *(struct ck_ev *const *)b;

	if (x->task != y->task)
		return x->task < y->task ? -1 : 1;
	return x->off < y->off ? -1 : x->off > y->off;
}

static int cmp_ev_gseq(const void *a, const void *b)
{
	const struct ck_ev *x = *(struct ck_ev *const *)a, *y = *(struct ck_ev *const *)b;

	if (x->gseq != y->gseq)
		return x->gseq < y->gseq ? -1 : 1;
	return x->task < y->task ? -1 : x->task > y->task;
}

/*
 * A task tree copied inside tasks/ (cp -a tasks/t1 tasks/t1-copy) holds the
 * gseqs of its original: two events under one gseq, which no index can
 * hold.  For reindex: in each set of events sharing a gseq, the event of a
 * task @keep says (the old index's) keeps it, else the first task's by
 * name; the others get fresh gseqs from *@next on, written to their
 * sidecar records (their time kept) and synced before the index is built,
 * so a crash leaves either the old records or the new ones.  Reported per
 * task.  0 or -errno.
 */
static int renumber_copies(struct ck *ck, const bool *keep, uint64_t *next)
{
	struct ck_ev **by = NULL;
	uint64_t *idx = NULL, *moved = NULL;
	struct tasklog *tl = NULL;
	size_t dups = 0;
	int rc = 0;

	if (ck->nevs < 2)
		return 0;
	by = malloc(ck->nevs * sizeof(*by));
	idx = malloc(ck->nevs * sizeof(*idx));
	moved = calloc(ck->ntasks, sizeof(*moved));
	if (!by || !idx || !moved) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < ck->nevs; i++)
		by[i] = &ck->evs[i];
	qsort(by, ck->nevs, sizeof(*by), cmp_ev_gseq);
	for (size_t i = 1; i < ck->nevs; i++)
		dups += by[i]->gseq == by[i - 1]->gseq;
	if (!dups)
		goto out;
	/* each event's sidecar record: its place in its task's log */
	qsort(by, ck->nevs, sizeof(*by), cmp_task_off);
	for (size_t i = 0; i < ck->nevs; i++)
		idx[by[i] - ck->evs] = i && by[i - 1]->task == by[i]->task ?
			idx[by[i - 1] - ck->evs] + 1 : 0;
	qsort(by, ck->nevs, sizeof(*by), cmp_ev_gseq);
	rc = tasklog_open(ck->dir, 64, &tl);
	for (size_t i = 0; i < ck->nevs && !rc;) {
		size_t j = i + 1, keeper = i;

		while (j < ck->nevs && by[j]->gseq == by[i]->gseq)
			j++;
		for (size_t k = i; k < j; k++)
			if (keep[by[k]->task] && !keep[by[keeper]->task])
				keeper = k;
		for (size_t k = i; k < j && !rc; k++) {
			struct ck_ev *ev = by[k];
			struct ck_task *tk = &ck->tasks[ev->task];
			struct tasklog_rec rec;
			ssize_t n;

			if (k == keeper)
				continue;
			n = tasklog_read_recs(tl, tk->uid, tk->name, idx[ev - ck->evs], &rec, 1);
			if (n != 1 || rec.gseq != ev->gseq) {
				rc = n < 0 ? (int)n : -EIO;
				break;
			}
			rec.gseq = ev->gseq = (*next)++;
			rc = tasklog_write_recs(tl, tk->uid, tk->name, idx[ev - ck->evs], &rec, 1);
			moved[ev->task]++;
		}
		i = j;
	}
	for (size_t t = 0; t < ck->ntasks && !rc; t++) {
		if (!moved[t])
			continue;
		rc = tasklog_sync(tl, ck->tasks[t].uid, ck->tasks[t].name);
		if (!rc)
			ck_report(ck, 'F', "task %s: %" PRIu64 " events had the gseqs of another task's "
				  "(a copy of its tree?): given new ones", ck->tasks[t].name, moved[t]);
	}
	if (*next - 1 > ck->max_gseq)
		ck->max_gseq = *next - 1;
out:
	if (tl)
		tasklog_close(tl);
	free(by);
	free(idx);
	free(moved);
	return rc;
}

/*
 * Without a usable index: name the journal's tasks.  A task directory takes
 * the uid of a record whose events its log holds, else of a create record
 * of its name.
 */
/* Has a task directory uid @uid already? */
static bool uid_held(const struct ck *ck, uint64_t uid)
{
	for (size_t i = 0; i < ck->ntasks; i++)
		if (ck->tasks[i].uid == uid)
			return true;
	return false;
}

static int map_journal(struct ck *ck)
{
	struct gseq_task *gt = calloc(ck->nevs + 1, sizeof(*gt));

	if (!gt)
		return -ENOMEM;
	for (size_t i = 0; i < ck->nevs; i++)
		gt[i] = (struct gseq_task){ ck->evs[i].gseq, ck->evs[i].task };
	if (ck->nevs)
		qsort(gt, ck->nevs, sizeof(*gt), cmp_gt);
	for (size_t i = 0; i < ck->ntasks; i++) {
		if (ck->tasks[i].uid)
			continue;
		ck->tasks[i].uid = tasklog_uid_of(ck->dir, ck->tasks[i].name);
		ck->tasks[i].uid_from = ck->tasks[i].uid ? UID_XATTR : UID_NONE;
		/* a tree copied with its xattrs (cp -a): the first by name keeps the uid */
		for (size_t k = 0; k < i && ck->tasks[i].uid; k++)
			if (ck->tasks[k].uid == ck->tasks[i].uid) {
				ck_report(ck, 'I', "task %s has the uid of task %s (a copy of it?): it"
					  " gets a new one", ck->tasks[i].name, ck->tasks[k].name);
				ck->tasks[k].uid_shared = ck->tasks[i].uid_shared = true;
				ck->tasks[i].uid = 0;
				ck->tasks[i].uid_from = UID_NONE;
			}
	}
	/* then from the journal, never a uid a directory has already */
	for (size_t i = 0; i < ck->njev; i++) {
		struct gseq_task key = { ck->jev[i].gseq, 0 }, *hit;

		hit = ck->nevs ? bsearch(&key, gt, ck->nevs, sizeof(*gt), cmp_gt) : NULL;
		if (hit && !ck->tasks[hit->task].uid && !ck->tasks[hit->task].uid_shared &&
		    !uid_held(ck, ck->jev[i].uid)) {
			ck->tasks[hit->task].uid = ck->jev[i].uid;
			ck->tasks[hit->task].uid_from = UID_EVENT;
		}
	}
	for (size_t i = 0; i < ck->njcr; i++) {
		struct ck_task *tk = ck_task_named(ck, ck->ntasks, ck->jcr[i].name);

		if (tk && !tk->uid && !tk->uid_shared && !uid_held(ck, ck->jcr[i].uid)) {
			tk->uid = ck->jcr[i].uid;
			tk->uid_from = UID_CREATE;
		}
	}
	free(gt);
	return 0;
}

/*
 * Without a usable index (after map_journal): a task on disk that a
 * journal record deleted (rm returned; a crash came before the applier
 * moved its directory) is deleted now, as the recovery would: its
 * directory goes to the trash and is emptied, its events leave the scan.
 * The delete names a uid, not a name, so only when the directory's uid is
 * sure: its xattr, or a journaled event of it in its log; and only if the
 * directory has not changed since the delete (before reindex touched it)
 * and no other directory has the uid: a copy (cp -a) keeps the xattr.  A
 * task kept for doubt is reported and counted (r->deletes_kept).  0 or
 * -errno.
 */
static int apply_journal_deletes(struct ck *ck)
{
	struct tasklog *tl = NULL;
	char path[DD_PATH_MAX];
	size_t kept;
	int rc = 0;

	for (size_t i = 0; i < ck->ntasks && !rc; i++) {
		struct ck_task *tk = &ck->tasks[i];
		const char *doubt = NULL;
		uint64_t when = 0, ctime = UINT64_MAX;
		bool deleted = false;
		struct stat sb;

		for (size_t k = 0; k < ck->njdel && tk->uid && !deleted; k++)
			if (ck->jdel[k].uid == tk->uid) {
				deleted = true;
				when = ck->jdel[k].time_ns;
			}
		if (!tk->on_disk || !deleted)
			continue;
		for (size_t k = 0; k < ck->nctimes; k++)
			if (!strcmp(ck->ctimes[k].name, tk->name))
				ctime = ck->ctimes[k].ns;
		/* a path that does not fit: no ctime, as if unreadable (kept, below) */
		if (ctime == UINT64_MAX && !dd_task(path, ck->dir, tk->name, NULL) && !stat(path, &sb))
			ctime = (uint64_t)sb.st_ctim.tv_sec * 1000000000u + sb.st_ctim.tv_nsec;
		if (tk->uid_shared)
			doubt = "another task directory has the same uid (a copy?)";
		else if (tk->uid_from != UID_XATTR && tk->uid_from != UID_EVENT)
			doubt = "its uid is only guessed from its name";
		else if (ctime > when)
			doubt = "its directory changed after the delete (a copy, or restored?)";
		if (doubt) {
			ck->r->deletes_kept++;
			ck_report(ck, 'E', "task %s: a journal record deleted task uid %" PRIu64 ", which"
				  " this may be, but %s: kept; delete it by hand if it is the deleted"
				  " task", tk->name, tk->uid, doubt);
			continue;
		}
		if (!tl) {
			rc = tasklog_open(ck->dir, 4, &tl);
			if (rc)
				break;
		}
		rc = tasklog_remove(tl, tk->uid, tk->name);
		if (rc)
			break;
		/* the whole trash: events.unapplied, events.damaged, ... too */
		rc = dd_trash(path, ck->dir, tk->uid, NULL);
		if (!rc)
			rc = store_rmrf(path);
		if (rc)
			break;
		ck_report(ck, 'F', "task %s: deleted by a journal record before its directory was"
			  " removed: removed now (%" PRIu64 " events)", tk->name, tk->n);
		tk->on_disk = false;
		tk->skip = false;
		ck->r->tasks--;
		ck->r->events -= tk->n;
		ck->r->bytes -= tk->bytes;
		tk->n = tk->bytes = 0;
		kept = 0;
		for (size_t e = 0; e < ck->nevs; e++)
			if (ck->evs[e].task != i)
				ck->evs[kept++] = ck->evs[e];
		ck->nevs = kept;
		kept = 0;
		for (size_t m = 0; m < ck->nmends; m++)
			if (ck->mends[m].task != i)
				ck->mends[kept++] = ck->mends[m];
		ck->nmends = kept;
	}
	if (tl)
		tasklog_close(tl);
	return rc;
}

/*
 * Without a usable index (after map_journal): the tasks the journal
 * created whose directory the applier had not made yet (a crash soon after
 * their mkdir), unless a later record deleted them, are made now, empty,
 * so that replay_journal writes their journaled events instead of finding
 * no task for them.  0 or -errno.
 */
static int make_journal_tasks(struct ck *ck, struct tasklog *tl)
{
	for (size_t i = 0; i < ck->njcr; i++) {
		const struct ck_jcreate *c = &ck->jcr[i];
		struct ck_task *tk;
		bool known = c->deleted;
		int rc;

		/* a directory of that name (maybe of an older task of the name) is the scan's */
		for (size_t k = 0; k < ck->ntasks && !known; k++)
			known = ck->tasks[k].on_disk && (ck->tasks[k].uid == c->uid ||
							 !strcmp(ck->tasks[k].name, c->name));
		if (known)
			continue;
		rc = tasklog_create(tl, c->uid, c->name, c->has_owner ? &c->owner : NULL);
		if (rc == -ENOTDIR) {
			/* not a directory (a file put there by hand): replay_journal counts them lost */
			ck_report(ck, 'E', "task %s: created by journal record %" PRIu64 ", but tasks/%s"
				  " is not a directory: not made", c->name, c->lsn, c->name);
			continue;
		}
		if (!rc)
			rc = grow_bytes(&ck->tasks, &ck->tcap, (ck->ntasks + 1) * sizeof(*ck->tasks));
		if (rc)
			return rc;
		tk = &ck->tasks[ck->ntasks++];
		memset(tk, 0, sizeof(*tk));
		snprintf(tk->name, sizeof(tk->name), "%s", c->name);
		tk->name_len = strlen(tk->name);
		tk->uid = c->uid;
		tk->on_disk = true;
		tk->created_ns = tk->last_ns = c->time_ns;
		tk->has_owner = c->has_owner;
		tk->owner_uid = c->owner.uid;
		tk->owner_gid = c->owner.gid;
		tk->mode = c->owner.mode;
		ck->r->tasks++;
		ck_report(ck, 'F', "task %s: created by journal record %" PRIu64 " before its directory"
			  " was made: made now, for its journaled events", c->name, c->lsn);
	}
	return 0;
}

/* Write the journaled events the logs lack (after map_journal).  0 or -errno. */
static int replay_journal(struct ck *ck, struct tasklog *tl)
{
	struct ck_task *tk = NULL;
	uint64_t applied = 0;
	int rc = 0;

	for (size_t i = 0; i < ck->njev && !rc; i++) {
		struct ck_jev *je = &ck->jev[i];
		char type[EVENT_TYPE_MAX + 1];
		struct event_error ee;
		struct tasklog_rec rec;
		size_t tlen;

		if (!tk || tk->uid != je->uid) {
			tk = NULL;
			for (size_t k = 0; k < ck->ntasks; k++)
				if (ck->tasks[k].on_disk && ck->tasks[k].uid == je->uid)
					tk = &ck->tasks[k];
		}
		if (!tk) {
			bool deleted = false;

			for (size_t k = 0; k < ck->njdel && !deleted; k++)
				deleted = ck->jdel[k].uid == je->uid;
			if (deleted) {
				/* its task's delete follows: as the recovery would, never written */
				if (i + 1 == ck->njev || ck->jev[i + 1].lsn != je->lsn)
					ck_report(ck, 'I', "journal record %" PRIu64 ": events of"
						  " task uid %" PRIu64 ", which a later record deleted:"
						  " dropped", je->lsn, je->uid);
				continue;
			}
			ck->r->lost++;
			if (i + 1 == ck->njev || ck->jev[i + 1].lsn != je->lsn)
				ck_report(ck, 'E', "journal record %" PRIu64 ": events to gseq %" PRIu64
					  " of task uid %" PRIu64 ", which no task directory, log or"
					  " create record names: not placed", je->lsn, je->gseq, je->uid);
			continue;
		}
		if (je->gseq <= tk->last_gseq)
			continue;	/* in the log already */
		if (event_validate(ck->val, je->data, je->len - 1, type, &tlen, &ee)) {
			ck->r->lost++;
			ck_report(ck, 'E', "journal record %" PRIu64 ": event gseq %" PRIu64
				  " of task %s is not valid: not placed", je->lsn, je->gseq, tk->name);
			continue;
		}
		rec = (struct tasklog_rec){ .gseq = je->gseq, .time_ns = je->time_ns,
					    .len = je->len };
		rc = tasklog_write(tl, tk->uid, tk->name, tk->bytes, je->data, je->len, tk->n,
				   &rec, 1, 0);
		if (!rc)
			rc = ck_add_event(ck, tk - ck->tasks, je->gseq, tk->bytes, je->len, type, tlen);
		if (rc)
			break;
		tk->bytes += je->len;
		tk->n++;
		tk->last_gseq = je->gseq;
		tk->last_ns = je->time_ns;
		applied++;
	}
	for (size_t i = 0; i < ck->ntasks && !rc && applied; i++)
		rc = tasklog_sync(tl, ck->tasks[i].uid, ck->tasks[i].name);
	if (applied)
		ck_report(ck, 'F', "%" PRIu64 " journaled events the logs lacked written to them",
			  applied);
	return rc;
}

/* Remove what belongs to no task any more: .trash-<uid> (deleted tasks) and .rewrite. */
static int clean_leftovers(struct ck *ck)
{
	char path[DD_PATH_MAX];
	struct dirent *de;
	DIR *d;
	int rc = 0;

	if (dd_path(path, ck->dir, DD_TASKS, NULL))
		return 0;	/* as a tasks/ that does not open */
	d = opendir(path);
	if (!d)
		return 0;
	while ((de = readdir(d)) && !rc) {
		char p[DD_PATH_MAX];

		if (strncmp(de->d_name, DD_TRASH_PREFIX, sizeof(DD_TRASH_PREFIX) - 1) &&
		    strcmp(de->d_name, DD_REWRITE))
			continue;
		rc = dd_join(p, path, de->d_name);
		if (!rc)
			rc = store_rmrf(p);
		if (!rc)
			ck_report(ck, 'I', "removed tasks/%s (a deleted task or an unfinished rewrite)",
				  de->d_name);
	}
	closedir(d);
	return rc;
}

static int put_tasks(struct ck *ck, struct index_txn *t, void *arg)
{
	struct index_meta *m = arg;
	int rc;

	m->tasks = m->events = m->log_bytes = 0;
	for (size_t i = 0; i < ck->ntasks; i++) {
		if (!ck->tasks[i].on_disk)
			continue;
		m->tasks++;
		m->events += ck->tasks[i].n;
		m->log_bytes += ck->tasks[i].bytes;
	}
	rc = index_put_meta(t, m);
	for (size_t i = 0; i < ck->ntasks && !rc; i++) {
		struct ck_task *tk = &ck->tasks[i];
		struct index_task it;

		if (tk->on_disk)
			ck_owner_from_dir(ck, tk);
		it = (struct index_task){
			.uid = tk->uid, .state = TASK_LIVE, .log_len = tk->bytes, .nevents = tk->n,
			.created_ns = tk->created_ns, .last_ns = tk->last_ns,
			.has_owner = tk->has_owner, .owner_uid = tk->owner_uid,
			.owner_gid = tk->owner_gid, .mode = tk->mode, .name_len = tk->name_len,
		};

		if (!tk->on_disk)
			continue;
		memcpy(it.name, tk->name, tk->name_len + 1);
		tk->in_index = true;
		tk->idx_n = tk->n;
		tk->idx_len = tk->bytes;
		tk->base_len = tk->base_n = 0;
		rc = index_task_put(t, &it);
	}
	return rc;
}

static int put_stamp(struct ck *ck, struct index_txn *t, void *arg)
{
	const uint64_t *v = arg;

	(void)ck;
	return index_put_stamp(t, v[0], v[1]);
}

/* Sort the events again (after replay_journal added some) and redo the runs. */
static void resort(struct ck *ck)
{
	for (size_t i = 0; i < ck->ntypes; i++)
		ck->types[i].count = 0;
	if (ck->nevs)
		qsort(ck->evs, ck->nevs, sizeof(*ck->evs), ck_cmp_ev);
	for (size_t i = 0; i < ck->nevs; i++) {
		struct ck_type *ty = &ck->types[ck->evs[i].type];

		if (!ty->count)
			ty->first = i;
		ty->count++;
	}
	ck->r->events = 0;
	ck->r->bytes = 0;
	for (size_t i = 0; i < ck->ntasks; i++) {
		if (!ck->tasks[i].on_disk)
			continue;
		ck->r->events += ck->tasks[i].n;
		ck->r->bytes += ck->tasks[i].bytes;
	}
	ck->r->types = 0;
	for (size_t i = 0; i < ck->ntypes; i++)
		ck->r->types += ck->types[i].count > 0;	/* a deleted task's may have none left */
}

/*
 * Put DATA_DIR/index.new in place of DATA_DIR/index (a crash leaves one or
 * the other); index.old is what an older version left behind.
 */
static int swap_index(struct ck *ck)
{
	char path[DD_PATH_MAX], newpath[DD_PATH_MAX], oldpath[DD_PATH_MAX];
	int rc;

	if (dd_path(path, ck->dir, DD_INDEX, NULL) || dd_path(newpath, ck->dir, DD_INDEX_NEW, NULL) ||
	    dd_path(oldpath, ck->dir, DD_INDEX_OLD, NULL))
		return -ENAMETOOLONG;
	rc = index_install(newpath, path);
	return rc ? rc : store_rmrf(oldpath);
}

int evl_reindex(const char *dir, const struct evl_check_opts *o, struct evl_check_result *r)
{
	struct index_meta m = { .next_gseq = 1, .next_uid = 1 }, old = { 0 };
	uint64_t stamp_id, stamp_gen;
	char path[DD_PATH_MAX];
	uint64_t dirty, retains;
	struct tasklog *tl = NULL;
	bool usable = false, *keep = NULL;
	struct ck ck;
	int rc;

	rc = ck_init(&ck, dir, o, r);
	if (!rc)
		rc = ck_lock_store(&ck, "evlogctl reindex");
	if (!rc)
		rc = ck_check_format(&ck, true);
	if (rc)
		goto out;
	snprintf(ck.type_field, sizeof(ck.type_field), "%s", o->type_field ? o->type_field : "type");

	/* the old index, if it opens: recovery through it, and its task uids */
	rc = ck_open_index(&ck, true, false);
	if (rc == -ENOENT) {
		ck_report(&ck, 'I', "%s has no index: building one", dir);
	} else if (rc == -EUCLEAN) {
		/* never opened for writing: the new one is built beside it, then renamed over it */
		ck_report(&ck, 'I', "the old index is damaged (see above): building a new one beside"
			  " it from the task logs and the journal");
	} else if (rc) {
		ck_report(&ck, 'I', "the old index does not open (%s): building a new one",
			  strerror(-rc));
	} else if ((rc = ck_check_stamp(&ck, 'I'))) {
		/* recovery through it would cut the logs back to it: not used at all */
	} else {
		rc = ck_mend_short_sidecars(&ck);
		if (!rc)
			rc = ck_recover(&ck, "evlogctl reindex");
		if (rc == -EBUSY)
			goto out;
		if (!rc)
			rc = ck_open_index(&ck, true, false);
		if (!rc)
			rc = ck_load_index(&ck, &old, &dirty, &retains, NULL);
		if (rc) {
			ck_report(&ck, 'I', "the old index is unusable (%s): task uids are assigned anew",
				  strerror(-rc));
			ck_forget(&ck);
		} else {
			usable = true;
			ck.applied_lsn = old.applied_lsn;
			for (size_t i = 0; i < ck.ntasks; i++)
				ck.tasks[i].in_index = false;	/* uids and times only */
		}
	}
	if (ck.ix && !usable) {
		index_close(ck.ix);
		ck.ix = NULL;
	}
	rc = event_validator_new_ex(ck.type_field, CHECK_MAX_EVENT, EVENT_STORED, &ck.val);
	/* a log without a sidecar: rebuilt with the gseqs the old index has */
	if (!rc && usable)
		rc = ck_rebuild_sidecars(&ck);
	/* events that are not what was written: moved to events.damaged */
	if (!rc)
		rc = ck_salvage_all(&ck);
	if (!rc)
		rc = ck_check_journal(&ck);
	/* the old index stays open for the scan: sidecar records are rebuilt from it */
	if (!rc)
		rc = ck_scan_all(&ck);
	if (ck.ix) {
		index_close(ck.ix);
		ck.ix = NULL;
	}
	if (rc)
		goto out;
	for (size_t i = 0; i < ck.ntasks; i++) {
		if (ck.tasks[i].skip) {
			ck_report(&ck, 'X', "task %s is corrupt before its last event: reindex stops;"
				  " move the task aside or repair its files first", ck.tasks[i].name);
			rc = -EILSEQ;
			goto out;
		}
		if (!ck.tasks[i].on_disk)
			ck_report(&ck, 'I', "task %s: in the old index, but its directory is gone",
				  ck.tasks[i].name);
	}

	/* uids: the old index's, the journal's, then fresh ones */
	keep = calloc(ck.ntasks + 1, sizeof(*keep));
	if (!keep) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < ck.ntasks; i++)
		keep[i] = ck.tasks[i].uid != 0;	/* the old index's */
	if (!usable)
		rc = map_journal(&ck);
	if (!rc && !usable)
		rc = apply_journal_deletes(&ck);
	m.next_uid = old.next_uid > 1 ? old.next_uid : 1;
	if (m.next_uid <= ck.j_max_uid)
		m.next_uid = ck.j_max_uid + 1;
	for (size_t i = 0; i < ck.ntasks; i++)
		if (ck.tasks[i].uid >= m.next_uid)
			m.next_uid = ck.tasks[i].uid + 1;
	for (size_t i = 0; i < ck.ntasks; i++)
		if (!ck.tasks[i].uid)
			ck.tasks[i].uid = m.next_uid++;
	/* fresh gseqs after every one handed out: in the logs, the old index, the journal */
	m.next_gseq = ck.max_gseq + 1;
	if (m.next_gseq <= old.next_gseq)
		m.next_gseq = old.next_gseq;
	if (m.next_gseq <= ck.j_max_gseq)
		m.next_gseq = ck.j_max_gseq + 1;
	if (!rc)
		rc = renumber_copies(&ck, keep, &m.next_gseq);
	if (!rc)
		rc = ck_write_mends(&ck);
	ck.will_replay = !usable;
	if (!rc)
		rc = ck_cut_tails(&ck);
	if (!rc && !usable)
		rc = tasklog_open(dir, 64, &tl);
	if (!rc && !usable)
		rc = make_journal_tasks(&ck, tl);
	if (!rc && !usable)
		rc = replay_journal(&ck, tl);
	if (rc)
		goto out;
	resort(&ck);

	/* build DATA_DIR/index.new, then rename it into place */
	rc = dd_path(path, dir, DD_INDEX_NEW, NULL);
	if (!rc)
		rc = store_rmrf(path);
	if (!rc)
		rc = index_open(path, ck.type_field, &ck.ix);
	if (rc)
		goto out;
	if (m.next_gseq <= ck.max_gseq)	/* the journal's replay may have added some */
		m.next_gseq = ck.max_gseq + 1;
	m.applied_lsn = m.ckpt_lsn = ck.j_last_lsn > old.applied_lsn ? ck.j_last_lsn
								      : old.applied_lsn;
	if (store_stamp_read(dir, &stamp_id, &stamp_gen)) {
		stamp_gen = 0;
		if (getrandom(&stamp_id, sizeof(stamp_id), 0) != sizeof(stamp_id)) {
			rc = -errno;
			goto out;
		}
	}
	stamp_gen++;	/* ahead of every index made before */
	rc = ck_in_txn(&ck, put_tasks, &m);
	if (!rc)
		rc = ck_in_txn(&ck, put_stamp, (uint64_t[]){ stamp_id, stamp_gen });
	if (!rc)
		rc = ck_repair(&ck, true);
	/* its last commit's meta page is not synced (MDB_NOMETASYNC): before it replaces the old */
	if (!rc)
		rc = index_sync(ck.ix);
	if (rc)
		goto out;
	index_close(ck.ix);
	ck.ix = NULL;
	rc = swap_index(&ck);
	/* the index is one generation ahead of the file: the open would accept it too */
	if (!rc)
		rc = store_stamp_write(dir, stamp_id, stamp_gen);
	if (!rc)
		rc = clean_leftovers(&ck);
	if (rc)
		goto out;
	ck_report(&ck, 'I', "index rebuilt: %" PRIu64 " tasks, %" PRIu64 " events, %" PRIu64 " types",
		  r->tasks, r->events, r->types);
	if (tl)
		tasklog_close(tl);
	tl = NULL;
	/* it must open as a store: recovery and a checkpoint over the new index */
	rc = ck_recover(&ck, "evlogctl reindex");
	if (rc)
		ck_report(&ck, 'X', "the rebuilt store does not open: %s", strerror(-rc));
out:
	if (tl)
		tasklog_close(tl);
	free(keep);
	ck_free(&ck);
	return rc;
}
