/*
 * check.c - the offline tools: fsck (compare the index with the logs,
 * repair it) and reindex (build a new index from the logs), and what a run
 * of either needs: its state (check_i.h), its reports, the lock, recovery
 * through the store (store_cycle, which backup runs too), the index opened
 * and loaded.  And the validator evlogctl import checks lines with.
 *
 * The tools' parts, one file each:
 *   scan.c     THE TRUTH: what the files hold (every task directory read),
 *              and the journal's records
 *   fsck.c     FSCK compares the index with the scan, REPAIR makes it agree
 *   sidecar_repair.c  a task's sidecar put right from its log and the index,
 *              before the scan reads the task
 *   salvage.c  events whose bytes are not the ones written, set aside by
 *              reindex
 *   reindex.c  REINDEX: a new index from the scan (and the journal)
 *
 * Both hold DATA_DIR/lock for their whole run (released only while the
 * store itself is opened for recovery).
 */
#include <errno.h>
#include <search.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check_i.h"
#include "datadir.h"
#include "event.h"
#include "evlog.h"
#include "index.h"
#include "store.h"
#include "tasklog.h"

void ck_report(struct ck *ck, char level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (level == 'E' || level == 'U')
		ck->r->problems++;
	if (level == 'U')
		ck->r->unfixable++;
	else if (level == 'F')
		ck->r->fixed++;
	if (ck->o->report)
		ck->o->report(ck->o->arg, level, line);
}

void ck_progress(struct ck *ck, const char *phase, uint64_t done, uint64_t total)
{
	if (ck->o->progress)
		ck->o->progress(ck->o->arg, phase, done, total);
}

/* ---- the lock ---- */

int ck_lock_store(struct ck *ck, const char *what)
{
	char holder[600];
	int rc;

	rc = store_lock(ck->dir, what, &ck->lock);
	if (rc == -EBUSY && evl_store_holder(ck->dir, holder, sizeof(holder)) == 1)
		ck_report(ck, 'X', "%s is in use by %s: unmount it first", ck->dir, holder);
	return rc;
}

/* The sidecars' format (tasklog_format_check): upgraded by a run that may write. */
int ck_check_format(struct ck *ck, bool may_write)
{
	char why[600];
	int rc;

	rc = tasklog_format_check(ck->dir, may_write, true, why, sizeof(why));
	if (rc == -EPROTO)
		ck_report(ck, 'X', "%s", why);
	else if (rc)
		ck_report(ck, 'X', "cannot check or upgrade the task sidecars of %s: %s", ck->dir,
			  strerror(-rc));
	return rc;
}

static void unlock_store(struct ck *ck)
{
	store_unlock(ck->dir, &ck->lock);
}

int store_cycle(const char *dir, const char *type_field, const char *holder)
{
	struct evl_options opts;
	struct evl_store *st;
	char tf[256] = "type";
	int rc;

	if (!type_field) {
		struct index_txn *t;
		struct index *ix;
		char path[DD_PATH_MAX];

		/* a path too long: no index to read, the open below says why */
		if (!dd_path(path, dir, DD_INDEX, NULL) &&
		    index_open_ex(path, NULL, INDEX_RDONLY, &ix) == 0) {
			if (index_begin(ix, false, &t) == 0) {
				index_get_type_field(t, tf, sizeof(tf));
				index_abort(t);
			}
			index_close(ix);
		}
		type_field = tf;
	}
	evl_options_default(&opts);
	opts.type_field = type_field;
	opts.holder = holder;
	rc = evl_store_open(dir, &opts, &st);
	if (!rc)
		rc = evl_store_close(st);
	return rc;
}

/* Open the store through the normal path (recovery, checkpoint) and close it. */
int ck_recover(struct ck *ck, const char *what)
{
	int rc, lr;

	if (ck->ix) {
		index_close(ck->ix);
		ck->ix = NULL;
	}
	unlock_store(ck);
	rc = store_cycle(ck->dir, ck->type_field, what);
	lr = ck_lock_store(ck, what);
	return rc ? rc : lr;
}

/* ---- the index ---- */

/*
 * Open the store's index (read-only unless @write), checked for damage
 * first: -EUCLEAN if it is damaged (index_open_ex logged how).
 */
int ck_open_index(struct ck *ck, bool must_exist, bool write)
{
	char path[DD_PATH_MAX];
	struct index_txn *t;
	struct stat sb;
	int rc;

	rc = dd_path(path, ck->dir, DD_INDEX, DD_MDB_DATA);
	if (rc)
		return rc;
	if (must_exist && stat(path, &sb))
		return -errno;
	rc = dd_path(path, ck->dir, DD_INDEX, NULL);
	if (rc)
		return rc;
	rc = index_open_ex(path, NULL, write ? 0 : INDEX_RDONLY, &ck->ix);
	if (rc)
		return rc;
	rc = index_begin(ck->ix, false, &t);
	if (rc)
		return rc;
	rc = index_get_type_field(t, ck->type_field, sizeof(ck->type_field));
	index_abort(t);
	return rc;
}

/*
 * S1 (stamp.c): is the index this store's, as new as its logs?  0, or
 * -ESTALE (reported at @level) or -errno.
 */
int ck_check_stamp(struct ck *ck, char level)
{
	struct store_stamp s;
	char why[512];
	int rc;

	rc = store_stamp_check(ck->dir, ck->ix, &s, why, sizeof(why));
	if (rc == -ESTALE)
		ck_report(ck, level, "the index does not describe the logs of %s: %s%s", ck->dir, why,
			  level == 'X' ? "; evlogctl reindex rebuilds it from them" :
			  ": building a new one");
	return rc;
}

struct load {
	struct ck *ck;
	struct index_txn *t;
	int rc;
};

static int load_task(void *arg, const struct index_task *it)
{
	struct load *l = arg;
	struct ck *ck = l->ck;
	struct ck_task *tk;
	int rc = grow_bytes(&ck->tasks, &ck->tcap, (ck->ntasks + 1) * sizeof(*ck->tasks));

	if (rc)
		return rc;
	tk = &ck->tasks[ck->ntasks++];
	memset(tk, 0, sizeof(*tk));
	memcpy(tk->name, it->name, it->name_len);
	tk->name_len = it->name_len;
	tk->uid = it->uid;
	tk->in_index = true;
	tk->vouched = true;	/* owner and mode: the index's, even none */
	tk->idx_n = it->nevents - it->base_n;
	tk->idx_len = it->log_len - it->base_len;
	tk->base_len = it->base_len;
	tk->base_n = it->base_n;
	tk->created_ns = it->created_ns;
	tk->last_ns = it->last_ns;
	tk->have_times = true;
	tk->has_owner = it->has_owner;
	tk->owner_uid = it->owner_uid;
	tk->owner_gid = it->owner_gid;
	tk->mode = it->mode;
	tk->dirty = index_dirty_has(l->t, it->uid);
	return 0;
}

static int count_cb(void *arg, uint64_t uid, uint64_t a, uint64_t b, uint64_t c)
{
	(*(uint64_t *)arg)++;
	return 0;
}

struct retain_count {
	struct ck *ck;
	uint64_t all, dropping;
};

/*
 * A retention a close stopped between its steps (retain.c: DROPPING):
 * some of the task's oldest events have left the index, the files are the
 * old ones; the next open finishes it.  The check does not call those
 * events missing.
 */
static int count_retain(void *arg, const struct index_retain *tr)
{
	struct retain_count *c = arg;

	c->all++;
	if (tr->phase != RETAIN_DROPPING)
		return 0;
	for (size_t i = 0; i < c->ck->ntasks; i++)
		if (c->ck->tasks[i].in_index && c->ck->tasks[i].uid == tr->uid) {
			c->ck->tasks[i].retain_cut = tr->cut_gseq;
			c->ck->tasks[i].retain_len = tr->cut_len;
			c->ck->tasks[i].retain_n = tr->cut_n;
			c->dropping++;
		}
	return 0;
}

/* The index's live tasks into ck->tasks; what recovery has left to do. */
int ck_load_index(struct ck *ck, struct index_meta *m, uint64_t *dirty, uint64_t *retains,
		  uint64_t *dropping)
{
	struct retain_count tc = { .ck = ck };
	struct load l = { .ck = ck };
	int rc;

	*dirty = *retains = 0;
	rc = index_begin(ck->ix, false, &l.t);
	if (rc)
		return rc;
	rc = index_get_meta(l.t, m);
	if (!rc)
		rc = index_task_list(l.t, NULL, 0, load_task, &l);
	if (!rc)
		rc = index_dirty_list(l.t, count_cb, dirty);
	if (!rc)
		rc = index_retain_list(l.t, count_retain, &tc);
	index_abort(l.t);
	*retains = tc.all;
	if (dropping)
		*dropping = tc.dropping;
	return rc;
}

/* ---- a run ---- */

void ck_free(struct ck *ck)
{
	if (ck->ix)
		index_close(ck->ix);
	unlock_store(ck);
	if (ck->val)
		event_validator_free(ck->val);
	if (ck->htab_made)
		hdestroy_r(&ck->htab);
	for (size_t i = 0; i < ck->ntypes; i++)
		free(ck->types[i].name);
	for (size_t i = 0; i < ck->njev; i++)
		free(ck->jev[i].data);
	free(ck->jev);
	free(ck->jcr);
	free(ck->jdel);
	free(ck->ctimes);
	free(ck->mends);
	free(ck->types);
	free(ck->tasks);
	free(ck->evs);
}

int ck_init(struct ck *ck, const char *dir, const struct evl_check_opts *o,
	    struct evl_check_result *r)
{
	memset(ck, 0, sizeof(*ck));
	memset(r, 0, sizeof(*r));
	ck->dir = dir;
	ck->o = o;
	ck->r = r;
	ck->lock = STORE_LOCK_NONE;
	if (!hcreate_r(4096, &ck->htab))
		return -ENOMEM;
	ck->htab_made = true;
	/* the one length check of the tool's DATA_DIR: every path below it fits */
	if (dd_check(dir)) {
		ck_report(ck, 'X', "the path of the data directory is %zu bytes long, more than the %d a"
			  " store allows: %s", strlen(dir), DD_DIR_MAX, dir);
		return -ENAMETOOLONG;
	}
	return 0;
}

/* Forget the scan (to scan again after recovery). */
void ck_forget(struct ck *ck)
{
	hdestroy_r(&ck->htab);
	ck->htab_made = false;
	for (size_t i = 0; i < ck->ntypes; i++)
		free(ck->types[i].name);
	ck->ntypes = ck->ntasks = ck->nevs = ck->nmends = 0;
	ck->max_gseq = 0;
	memset(&ck->htab, 0, sizeof(ck->htab));
	if (hcreate_r(4096, &ck->htab))
		ck->htab_made = true;
}

/* ---- validation for tools (import) ---- */

int evl_validator_new(const char *type_field, size_t max_event, struct evl_validator **out)
{
	return event_validator_new(type_field, max_event, (struct event_validator **)out);
}

void evl_validator_free(struct evl_validator *v)
{
	event_validator_free((struct event_validator *)v);
}

int evl_validate(struct evl_validator *v, const char *line, size_t len, char *why, size_t n)
{
	char type[EVENT_TYPE_MAX + 1];
	struct event_error ee;
	size_t tlen;
	int rc;

	if (event_is_blank(line, len))
		return 1;
	rc = event_validate((struct event_validator *)v, line, len, type, &tlen, &ee);
	if (rc)
		snprintf(why, n, "col %zu: %s", ee.col, ee.reason);
	return rc;
}
