/*
 * scan.c - what the files hold, for the offline tools (check.c): every
 * task directory read, and the journal.
 *
 * THE TRUTH.  Task logs and sidecars hold everything the index knows
 * (tasklog.h).  A scan reads every task directory: sidecar records (their
 * checksums, gseqs rising), the event each one describes (its bytes end in
 * a newline, it is a valid event; its type comes from the store's
 * type_field).  The first record that fails ends the task's consistent
 * prefix.  The events found are sorted by (type, gseq): each type's run is
 * what its view must hand out.
 *
 * A sidecar record that is damaged or missing where the log and the index
 * agree on its event is no such failure: the scan rebuilds it (mend_rec)
 * for a repair to write (ck_write_mends).  The journal's records are
 * checked and kept (ck_check_journal): reindex without a usable index
 * writes the appends the logs lack.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "check_i.h"
#include "datadir.h"
#include "event.h"
#include "evlog.h"
#include "index.h"
#include "io.h"
#include "journal.h"
#include "store.h"
#include "tasklog.h"

/* ---- the scan ---- */

int ck_type_id(struct ck *ck, const char *name, size_t len, uint32_t *id)
{
	ENTRY e = { .key = (char *)name }, *found;
	int rc;

	if (hsearch_r(e, FIND, &found, &ck->htab)) {
		*id = (uint32_t)(uintptr_t)found->data;
		return 0;
	}
	rc = grow_bytes(&ck->types, &ck->tycap, (ck->ntypes + 1) * sizeof(*ck->types));
	if (rc)
		return rc;
	e.key = strndup(name, len);
	if (!e.key)
		return -ENOMEM;
	e.data = (void *)(uintptr_t)ck->ntypes;
	if (!hsearch_r(e, ENTER, &found, &ck->htab)) {
		free(e.key);
		return -ENOMEM;
	}
	ck->types[ck->ntypes] = (struct ck_type){ .name = e.key, .len = len };
	*id = ck->ntypes++;
	return 0;
}

int ck_add_event(struct ck *ck, size_t task, uint64_t gseq, uint64_t off, uint32_t len,
		 const char *type, size_t tlen)
{
	uint32_t tid;
	int rc = ck_type_id(ck, type, tlen, &tid);

	if (!rc)
		rc = grow_bytes(&ck->evs, &ck->ecap, (ck->nevs + 1) * sizeof(*ck->evs));
	if (rc)
		return rc;
	ck->evs[ck->nevs++] = (struct ck_ev){ .gseq = gseq, .off = off, .len = len,
					       .type = tid, .task = task };
	if (gseq > ck->max_gseq)
		ck->max_gseq = gseq;
	return 0;
}

void *ck_map_file(const char *path, uint64_t *size, int *err)
{
	struct stat sb;
	void *p;
	int fd = io->open(path, O_RDONLY, 0);

	*size = 0;
	*err = 0;
	if (fd < 0) {
		*err = -errno;
		return NULL;
	}
	if (fstat(fd, &sb)) {
		*err = -errno;
		io->close(fd);
		return NULL;
	}
	*size = sb.st_size;
	if (!sb.st_size) {
		io->close(fd);
		return NULL;
	}
	p = mmap(NULL, sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED)
		*err = -errno;	/* before close can change it */
	io->close(fd);
	if (p == MAP_FAILED)
		return NULL;
	madvise(p, sb.st_size, MADV_SEQUENTIAL);
	return p;
}

struct first_ev {
	struct index_event ev;
	bool got;
};

static int first_cb(void *arg, const struct index_event *ev)
{
	struct first_ev *f = arg;

	f->ev = *ev;
	f->got = true;
	return 1;
}

/*
 * Sidecar record @k of task @i is damaged or missing: rebuild it if the
 * log and the index agree on its event.  The log's bytes from @off to the
 * next newline must be a valid event, and the index must hold, for this
 * task and under that type, its next event after gseq @prev at exactly
 * that byte and length (below gseq @next, the following record's, if
 * known).  Its commit time: the journal's if it still holds the event,
 * else @next_ns (a later time only makes retention keep it longer).
 * 0 with *@rec (and its type), -ENOENT if they do not agree, or -errno.
 */
static int mend_rec(struct ck *ck, size_t i, const unsigned char *log, uint64_t log_size,
		    uint64_t off, uint64_t prev, uint64_t next, uint64_t next_ns,
		    struct tasklog_rec *rec, char *type, size_t *tlen)
{
	struct ck_task *tk = &ck->tasks[i];
	struct first_ev f = { .got = false };
	struct event_error ee;
	struct index_view *v;
	struct index_txn *t;
	const unsigned char *nl;
	uint64_t len;
	int rc;

	if (!ck->ix || !tk->uid || off >= log_size)
		return -ENOENT;
	nl = memchr(log + off, '\n', log_size - off);
	if (!nl)
		return -ENOENT;
	len = nl - (log + off) + 1;
	if (len > CHECK_MAX_EVENT ||
	    event_validate(ck->val, (const char *)log + off, len - 1, type, tlen, &ee))
		return -ENOENT;
	rc = index_begin(ck->ix, false, &t);
	if (rc)
		return rc;
	rc = index_view_open(t, type, *tlen, tk->uid, &v);
	if (!rc) {
		rc = index_view_iter(v, prev + 1, first_cb, &f);
		index_view_free(v);
	}
	index_abort(t);
	if (rc < 0 && rc != -ENOENT)
		return rc;
	if (!f.got || f.ev.off != tk->base_len + off || f.ev.len != len ||
	    (next && f.ev.gseq >= next))
		return -ENOENT;
	*rec = (struct tasklog_rec){ .gseq = f.ev.gseq, .time_ns = next_ns, .len = len,
				     .sum = tasklog_sum(log + off, len) };
	for (size_t k = 0; k < ck->njev; k++)
		if (ck->jev[k].uid == tk->uid && ck->jev[k].gseq == f.ev.gseq) {
			rec->time_ns = ck->jev[k].time_ns;
			break;
		}
	rc = grow_bytes(&ck->mends, &ck->mcap, (ck->nmends + 1) * sizeof(*ck->mends));
	if (rc)
		return rc;
	return 0;
}

/*
 * Read task @i's files: its consistent prefix (at most @limit events) goes
 * to the events; what breaks it is reported.  *@done advances by the bytes read.
 */
static int scan_task(struct ck *ck, size_t i, uint64_t limit, uint64_t *done, uint64_t total)
{
	struct ck_task *tk = &ck->tasks[i];
	char path[DD_PATH_MAX], type[EVENT_TYPE_MAX + 1];
	unsigned char *log, *meta = NULL;
	uint64_t log_size, meta_size, off = 0, prev = 0, prev_ns = 0, n;
	int err, rc = 0;

	if (dd_task(path, ck->dir, tk->name, DD_EVENTS))
		return -ENAMETOOLONG;
	/* a missing file is a finding; a failing read (EIO, EMFILE) fails the run */
	log = ck_map_file(path, &log_size, &err);
	if (err && err != -ENOENT)
		return err;
	if (err) {
		ck_report(ck, 'U', "task %s: cannot read its log: %s", tk->name, strerror(-err));
		tk->skip = true;
		return 0;
	}
	if (dd_task(path, ck->dir, tk->name, DD_META)) {
		rc = -ENAMETOOLONG;
		goto out;
	}
	meta = ck_map_file(path, &meta_size, &err);
	if (err && err != -ENOENT) {
		rc = err;
		goto out;
	}
	if (err) {
		ck_report(ck, 'U', "task %s: cannot read its sidecar: %s", tk->name, strerror(-err));
		tk->skip = true;
		goto out;
	}
	tk->file_recs = meta_size / TASKLOG_REC;
	n = tk->file_recs < limit ? tk->file_recs : limit;
	for (uint64_t k = 0; k < limit; k++) {
		struct tasklog_rec rec, nrec = { 0 };
		struct event_error ee;
		size_t tlen;
		const char *why = NULL, *bad = NULL, *sum_bad = NULL;

		if (k >= n && (k < tk->file_recs || off >= log_size))
			break;
		if (k >= n)
			bad = "is missing";	/* the sidecar is short of the log */
		else if (tasklog_decode(meta + k * TASKLOG_REC, &rec))
			bad = "is damaged (bad checksum)";
		if (bad) {
			/* never cut an event the log and the index agree on: rebuild its record */
			if (k + 1 < tk->file_recs &&
			    tasklog_decode(meta + (k + 1) * TASKLOG_REC, &nrec))
				nrec = (struct tasklog_rec){ 0 };
			if (!nrec.time_ns)
				nrec.time_ns = tk->have_times && tk->last_ns ? tk->last_ns : prev_ns;
			rc = mend_rec(ck, i, log, log_size, off, prev, nrec.gseq, nrec.time_ns,
				      &rec, type, &tlen);
			if (rc && rc != -ENOENT)
				goto out;
			if (!rc) {
				ck->mends[ck->nmends++] = (struct ck_mend){ .task = i, .idx = k,
									    .rec = rec };
				if (tk->mended++ < REPORT_PER_TYPE)
					ck_report(ck, 'E', "task %s: sidecar record %" PRIu64 " %s; the"
						  " log and the index agree on its event (gseq %" PRIu64
						  ", log byte %" PRIu64 "): a repair rewrites the record",
						  tk->name, k + 1, bad, rec.gseq, off);
				else
					ck->r->problems++;
			} else if (k >= n) {
				rc = 0;
				break;	/* bytes past the last event: reported below */
			} else {
				why = "bad checksum";
			}
			rc = 0;
		}
		if (why)
			;
		else if (rec.gseq <= prev)
			why = "gseq out of order";
		else if (rec.len == 0 || off + rec.len > log_size)
			why = "event runs past the end of the log";
		else if (log[off + rec.len - 1] != '\n')
			why = "event does not end with a newline";
		else if (event_validate(ck->val, (const char *)log + off, rec.len - 1, type, &tlen,
					&ee))
			why = ee.reason;
		else if (tasklog_sum(log + off, rec.len) != rec.sum)
			why = sum_bad = "its bytes are not the ones written (its checksum does not"
					" match; evlogctl reindex moves it to events.damaged)";
		if (why && rec.len && off + rec.len > log_size && !tasklog_decode(meta + k *
									       TASKLOG_REC, &rec)) {
			/*
			 * The log was cut short (a partial restore, copytruncate):
			 * this event and every later one (at higher offsets) are
			 * not in it.  What precedes is whole: a torn tail.
			 */
			tk->torn = true;
			tk->lost = tk->file_recs - k;
			ck_report(ck, 'E', "task %s: log shorter than its sidecar (%" PRIu64 " bytes): "
				  "events %" PRIu64 "-%" PRIu64 " are not in it (%" PRIu64 " lost)",
				  tk->name, log_size, k + 1, tk->file_recs, tk->lost);
			break;
		}
		if (why) {
			/* a last event changed in place is no torn write: never cut */
			tk->torn = k + 1 == tk->file_recs && !sum_bad;
			/* a torn tail is cut by recovery; damage before it is not repairable */
			ck_report(ck, tk->torn ? 'E' : 'U', "task %s: event %" PRIu64 " (log byte %"
				  PRIu64 "): %s%s",
				  tk->name, k + 1, off, why,
				  tk->torn ? " (a torn last write)" : "");
			tk->skip = !tk->torn;
			break;
		}
		rc = ck_add_event(ck, i, rec.gseq, off, rec.len, type, tlen);
		if (rc)
			goto out;
		if (!tk->have_times) {
			if (!tk->n)
				tk->created_ns = rec.time_ns;
			tk->last_ns = rec.time_ns;
		}
		tk->n++;
		tk->bytes = off += rec.len;
		tk->last_gseq = prev = rec.gseq;
		prev_ns = rec.time_ns;
		if ((k & 4095) == 0)
			ck_progress(ck, "scan", *done + off, total);
	}
	if (tk->mended > REPORT_PER_TYPE)
		ck_report(ck, 'I', "task %s: %" PRIu64 " more sidecar records to rewrite not shown",
			  tk->name, tk->mended - REPORT_PER_TYPE);
	if (tk->n == tk->file_recs && limit >= tk->file_recs && meta_size % TASKLOG_REC) {
		tk->torn = true;
		ck_report(ck, 'E', "task %s: sidecar ends in a partial record (a torn last write)",
			  tk->name);
	}
	tk->log_size = log_size;
	if (tk->n >= tk->file_recs && limit >= tk->file_recs && log_size > tk->bytes) {
		tk->torn = true;
		ck_report(ck, 'E', "task %s: %" PRIu64 " log bytes after its last event (lines "
			  "appended outside the store, or a torn last write): --repair moves whole "
			  "lines to events.unapplied", tk->name, log_size - tk->bytes);
	}
out:
	*done += log_size;
	if (log)
		munmap(log, log_size);
	if (meta)
		munmap(meta, meta_size);
	return rc;
}

static int cmp_task(const void *a, const void *b)
{
	return strcmp(((const struct ck_task *)a)->name, ((const struct ck_task *)b)->name);
}

/* The task named @name among the first @n, which are in name order. */
struct ck_task *ck_task_named(struct ck *ck, size_t n, const char *name)
{
	struct ck_task key;

	if (!n)
		return NULL;	/* ck->tasks may still be NULL */
	snprintf(key.name, sizeof(key.name), "%s", name);
	return bsearch(&key, ck->tasks, n, sizeof(*ck->tasks), cmp_task);
}

/* Add the task directories of DATA_DIR/tasks not known yet. */
/* Does @dir/@file exist (as anything; a path too long: cannot tell, so yes)? */
static bool has_file(const char *dir, const char *file)
{
	char path[DD_PATH_MAX];
	struct stat sb;

	return dd_join(path, dir, file) || lstat(path, &sb) == 0 || errno != ENOENT;
}

static int list_dirs(struct ck *ck)
{
	char path[DD_PATH_MAX];
	struct dirent *de;
	DIR *d;
	int rc = 0;

	if (dd_path(path, ck->dir, DD_TASKS, NULL))
		return -ENAMETOOLONG;
	d = opendir(path);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	/* the index's tasks come in name order; directories it lacks are appended */
	size_t nindex = ck->ntasks;

	while ((de = readdir(d)) && !rc) {
		struct ck_task *tk;
		struct stat sb;
		char p[DD_PATH_MAX];
		size_t len = strlen(de->d_name);

		if (de->d_name[0] == '.' || evl_task_check_name(de->d_name, len))
			continue;
		if (dd_join(p, path, de->d_name) || stat(p, &sb) || !S_ISDIR(sb.st_mode))
			continue;
		tk = ck_task_named(ck, nindex, de->d_name);
		if (!tk && !has_file(p, DD_EVENTS) && !has_file(p, DD_META)) {
			/* no task's files (lost+found, a stray mkdir): not a task, left alone */
			ck_report(ck, 'I', "tasks/%s holds no task log: not a task, ignored",
				  de->d_name);
			continue;
		}
		if (!tk) {
			rc = grow_bytes(&ck->tasks, &ck->tcap, (ck->ntasks + 1) * sizeof(*ck->tasks));
			if (rc)
				break;
			tk = &ck->tasks[ck->ntasks++];
			memset(tk, 0, sizeof(*tk));
			memcpy(tk->name, de->d_name, len + 1);
			tk->name_len = len;
			tk->created_ns = tk->last_ns =
				sb.st_mtim.tv_sec * 1000000000ull + sb.st_mtim.tv_nsec;
		}
		tk->on_disk = true;
	}
	closedir(d);
	return rc;
}

static uint64_t file_size(const char *dir, const char *name, const char *file)
{
	char path[DD_PATH_MAX];
	struct stat sb;

	return (dd_task(path, dir, name, file) || stat(path, &sb)) ? 0 : sb.st_size;
}

int ck_cmp_ev(const void *a, const void *b)
{
	const struct ck_ev *x = a, *y = b;

	if (x->type != y->type)
		return x->type < y->type ? -1 : 1;
	return x->gseq < y->gseq ? -1 : x->gseq > y->gseq;
}

/* Scan every task on disk (the index's tasks are listed already), then sort. */
int ck_scan_all(struct ck *ck)
{
	uint64_t total = 0, done = 0, dups = 0;
	int rc;

	rc = list_dirs(ck);
	if (rc)
		return rc;
	if (ck->ntasks)
		qsort(ck->tasks, ck->ntasks, sizeof(*ck->tasks), cmp_task);
	for (size_t i = 0; i < ck->ntasks; i++)
		if (ck->tasks[i].on_disk)
			total += file_size(ck->dir, ck->tasks[i].name, DD_EVENTS);
	for (size_t i = 0; i < ck->ntasks && !rc; i++) {
		struct ck_task *tk = &ck->tasks[i];
		uint64_t limit = UINT64_MAX;

		if (!tk->on_disk)
			continue;
		if (tk->dirty && ck->needs_recovery)
			limit = tk->idx_n;	/* recovery cuts the rest */
		rc = scan_task(ck, i, limit, &done, total);
		if (tk->dirty && ck->needs_recovery && tk->n < tk->idx_n)
			tk->skip = true;	/* recovery rewrites it from the journal */
	}
	ck_progress(ck, "scan", total, total);
	if (rc)
		return rc;
	if (ck->nevs)
		qsort(ck->evs, ck->nevs, sizeof(*ck->evs), ck_cmp_ev);
	for (size_t i = 0; i < ck->nevs; i++) {
		struct ck_type *ty = &ck->types[ck->evs[i].type];

		if (!ty->count)
			ty->first = i;
		ty->count++;
		if (i && ck->evs[i - 1].gseq == ck->evs[i].gseq &&
		    ck->evs[i - 1].type == ck->evs[i].type) {
			/* no index repair fixes it: reindex renumbers (renumber_copies) */
			if (dups++ < REPORT_PER_TYPE)
				ck_report(ck, 'U', "gseq %" PRIu64 " is in the logs of tasks %s and %s "
					  "(a copy of a task's tree?): evlogctl reindex gives one of "
					  "them new gseqs", ck->evs[i].gseq,
					  ck->tasks[ck->evs[i - 1].task].name,
					  ck->tasks[ck->evs[i].task].name);
			else
				ck->r->problems++, ck->r->unfixable++;
		}
	}
	if (dups > REPORT_PER_TYPE)
		ck_report(ck, 'I', "%" PRIu64 " gseqs in all are in the logs of two tasks", dups);
	for (size_t i = 0; i < ck->ntasks; i++)
		if (ck->tasks[i].on_disk) {
			ck->r->tasks++;
			ck->r->events += ck->tasks[i].n;
			ck->r->bytes += ck->tasks[i].bytes;
		}
	ck->r->types = ck->ntypes;
	return 0;
}

/* ---- the journal ---- */

static int jrec_cb(void *arg, const struct store_rec *r)
{
	struct ck *ck = arg;
	int rc;

	if (r->uid > ck->j_max_uid)
		ck->j_max_uid = r->uid;
	if (r->kind == STORE_REC_CREATE) {
		rc = grow_bytes(&ck->jcr, &ck->jcrcap, (ck->njcr + 1) * sizeof(*ck->jcr));
		if (rc)
			return rc;
		ck->jcr[ck->njcr] = (struct ck_jcreate){ .uid = r->uid, .lsn = ck->j_last_lsn,
							 .time_ns = r->time_ns,
							 .has_owner = r->has_owner,
							 .owner = { r->owner_uid, r->owner_gid,
								    r->mode } };
		memcpy(ck->jcr[ck->njcr].name, r->name, r->name_len);
		ck->njcr++;
	} else if (r->kind == STORE_REC_DELETE) {
		for (size_t i = 0; i < ck->njcr; i++)
			if (ck->jcr[i].uid == r->uid)
				ck->jcr[i].deleted = true;
		rc = grow_bytes(&ck->jdel, &ck->jdelcap, (ck->njdel + 1) * sizeof(*ck->jdel));
		if (rc)
			return rc;
		ck->jdel[ck->njdel++] = (struct ck_jdel){ r->uid, r->time_ns };
	} else if (r->kind == STORE_REC_APPEND) {
		struct ck_jev *e;

		if (r->gseq + r->ev_index > ck->j_max_gseq)
			ck->j_max_gseq = r->gseq + r->ev_index;
		rc = grow_bytes(&ck->jev, &ck->jcap, (ck->njev + 1) * sizeof(*ck->jev));
		if (rc)
			return rc;
		e = &ck->jev[ck->njev];
		*e = (struct ck_jev){ .lsn = ck->j_last_lsn, .uid = r->uid,
				      .gseq = r->gseq + r->ev_index, .time_ns = r->time_ns,
				      .len = r->ev_len };
		e->data = malloc(r->ev_len);
		if (!e->data)
			return -ENOMEM;
		memcpy(e->data, r->ev, r->ev_len);
		ck->njev++;
	}
	return 0;
}

static int journal_cb(void *arg, uint64_t lsn, unsigned type, const void *payload, size_t len)
{
	struct ck *ck = arg;
	int rc;

	ck->j_last_lsn = lsn;
	if (lsn > ck->applied_lsn)
		ck->j_unapplied++;
	rc = store_rec_decode(type, payload, len, jrec_cb, ck);
	if (rc == -EILSEQ) {
		ck_report(ck, 'E', "journal record %" PRIu64 ": malformed payload", lsn);
		rc = 0;
	}
	return rc;
}

/* Check the journal; report what recovery would do with it. */
int ck_check_journal(struct ck *ck)
{
	struct journal_scan js;
	char path[DD_PATH_MAX];
	int rc;

	if (dd_path(path, ck->dir, DD_JOURNAL, NULL))
		return -ENAMETOOLONG;
	rc = journal_scan(path, ck->applied_lsn, journal_cb, ck, &js);
	if (rc)
		return rc;
	ck->r->journal_records = js.records;
	ck->r->journal_lost = js.damage.lost;
	ck->j_end = js.last_lsn;
	ck->j_intact = js.segments && !js.damage.lost && !js.damage.segments && !js.bad_bytes;
	if (js.damage.lost) {
		ck_report(ck, 'E', "journal: %" PRIu64 " records (lsns %" PRIu64 "-%" PRIu64 ") are"
			  " corrupt and lost, from segment %016" PRIx64 " on; the records after them"
			  " check out: the next mount (or fsck --repair) replays those and keeps"
			  " the damaged segment as %016" PRIx64 ".jnl.corrupt", js.damage.lost,
			  js.damage.first_lsn, js.damage.last_lsn, js.damage.first_segment,
			  js.damage.first_segment);
		ck->needs_recovery = true;
	} else if (js.damage.segments) {
		ck_report(ck, 'E', "journal: %" PRIu64 " damaged segments from %016" PRIx64 " on, but"
			  " no record lost: the next mount (or fsck --repair) keeps a copy as"
			  " .corrupt", js.damage.segments, js.damage.first_segment);
		ck->needs_recovery = true;
	}
	if (js.bad_bytes && js.bad_later) {
		ck_report(ck, 'E', "journal: %" PRIu64 " bytes from byte %" PRIu64 " of segment %016"
			  PRIx64 " on (%" PRIu64 " later segments) are corrupt: records after lsn %"
			  PRIu64 " are unreadable", js.bad_bytes, js.bad_off, js.bad_segment,
			  js.bad_later, js.last_lsn);
		ck->needs_recovery = true;
	} else if (js.bad_bytes) {
		ck_report(ck, 'E', "journal: a torn last record (%" PRIu64 " bytes at byte %" PRIu64
			  " of segment %016" PRIx64 "): the next mount cuts it",
			  js.bad_bytes, js.bad_off, js.bad_segment);
		ck->needs_recovery = true;
	}
	return 0;
}
