/*
 * sidecar_repair.c - a task's sidecar put right from its log and the index,
 * before the scan reads the task (fsck --repair, reindex): rebuilt when it
 * is missing, completed when it is cut short of the events the index has
 * (before recovery), set aside when it describes another log (or the log
 * set aside when it is another's), and a task whose log is gone made an
 * empty task.  The index says which events are the task's
 * (ck_rb_task_events, which the salvage uses too).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_i.h"
#include "datadir.h"
#include "event.h"
#include "index.h"
#include "io.h"
#include "store.h"
#include "tasklog.h"

/* ---- a sidecar rebuilt from its log ---- */

static int rb_collect(void *arg, const struct index_event *ev)
{
	struct rb_list *l = arg;

	if (ev->off < l->base)
		return 0;
	if (grow_bytes(&l->v, &l->cap, (l->n + 1) * sizeof(*l->v)))
		return -ENOMEM;
	l->v[l->n++] = (struct rb_ev){ ev->off - l->base, ev->gseq, ev->len };
	return 0;
}

/* The task's events of one type (index_type_list callback). */
int ck_rb_type(void *arg, const char *name, size_t len, uint64_t events, uint64_t bytes)
{
	struct rb_list *l = arg;
	struct index_view *v;
	int rc = index_view_open(l->t, name, len, l->uid, &v);

	if (rc == -ENOENT)
		return 0;	/* none of its events has this type */
	if (rc)
		return rc;
	rc = index_view_iter(v, 0, rb_collect, l);
	index_view_free(v);
	return rc;
}

static int cmp_rb(const void *a, const void *b)
{
	const struct rb_ev *x = a, *y = b;

	if (x->off != y->off)
		return x->off < y->off ? -1 : 1;
	return x->gseq < y->gseq ? -1 : x->gseq > y->gseq;
}

/*
 * The task's events in log order, each once: a type's view holds the
 * types below it too ("a.y" has "a.y.z"), so ck_rb_type meets those twice.
 */
void ck_rb_sort(struct rb_list *l)
{
	size_t n = 0;

	if (!l->n)
		return;
	qsort(l->v, l->n, sizeof(*l->v), cmp_rb);
	for (size_t k = 0; k < l->n; k++)
		if (!n || l->v[k].gseq != l->v[n - 1].gseq || l->v[k].off != l->v[n - 1].off)
			l->v[n++] = l->v[k];
	l->n = n;
}

/* Task @uid's events in read transaction @t, in log order, into @l.  0 or -errno. */
static int rb_task_in(struct index_txn *t, uint64_t uid, struct rb_list *l)
{
	int rc;

	l->t = t;
	l->uid = uid;
	rc = index_type_list(t, ck_rb_type, l);
	if (!rc)
		ck_rb_sort(l);
	return rc;
}

int ck_rb_task_events(struct ck *ck, uint64_t uid, struct rb_list *l)
{
	struct index_txn *t;
	int rc = index_begin(ck->ix, false, &t);

	if (rc)
		return rc;
	rc = rb_task_in(t, uid, l);
	index_abort(t);
	l->t = NULL;
	return rc;
}

/*
 * Task @tk (in the index) has a log but no sidecar (removed, or never
 * made): its whole lines are whole events, so the sidecar is rebuilt.
 * Each event the index has at that offset keeps its gseq; a valid line the
 * index lacks (appended before the damage was found) gets a new one from
 * *@next.  The commit time of each is the task's last append (the index
 * keeps no other): retention by age keeps them longer, never shorter.  The
 * first line that is not a whole valid event ends the rebuild; what
 * follows is left for the scan to report.  0 or -errno.
 */
static int rebuild_sidecar(struct ck *ck, struct ck_task *tk, uint64_t *next)
{
	char path[DD_PATH_MAX], tmp[DD_PATH_MAX], type[EVENT_TYPE_MAX + 1];
	struct rb_list l = { .base = tk->base_len };
	unsigned char *log, rec[TASKLOG_REC];
	uint64_t size, off = 0, n = 0, fresh = 0;
	size_t k = 0;
	int err, fd = -1, rc;

	if (dd_task(path, ck->dir, tk->name, DD_EVENTS))
		return -ENAMETOOLONG;
	log = ck_map_file(path, &size, &err);
	if (err)
		return err == -ENOENT ? 0 : err;	/* no log either: nothing to rebuild from */
	/* named first: a failure below unlinks it (a name that does not fit is "") */
	rc = dd_task(tmp, ck->dir, tk->name, DD_META DD_REBUILD);
	if (!rc)
		rc = dd_task(path, ck->dir, tk->name, DD_META);
	if (!rc)
		rc = ck_rb_task_events(ck, tk->uid, &l);
	if (rc)
		goto out;
	fd = io->open(tmp, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	while (off < size) {
		const unsigned char *nl = memchr(log + off, '\n', size - off);
		struct tasklog_rec r = { 0, tk->last_ns, 0, 0 };
		struct event_error ee;
		size_t tlen;

		if (!nl)
			break;		/* an unterminated line is no event */
		r.len = nl - (log + off) + 1;
		if (event_validate(ck->val, (const char *)log + off, r.len - 1, type, &tlen, &ee))
			break;
		while (k < l.n && l.v[k].off < off)
			k++;
		if (k < l.n && l.v[k].off == off && l.v[k].len == r.len) {
			r.gseq = l.v[k].gseq;
		} else {
			r.gseq = (*next)++;
			fresh++;
		}
		r.sum = tasklog_sum(log + off, r.len);
		tasklog_encode(&r, rec);
		if (io_pwrite_all(fd, rec, sizeof(rec), n * TASKLOG_REC)) {
			rc = -errno;
			goto out;
		}
		n++;
		off += r.len;
	}
	if (io->fsync(fd))
		rc = -errno;
	if (!rc && io->rename(tmp, path))	/* path: events.meta */
		rc = -errno;
out:
	if (fd >= 0)
		io->close(fd);
	if (rc) {
		unlink(tmp);
		ck_report(ck, 'X', "task %s: cannot rebuild its sidecar: %s", tk->name, strerror(-rc));
	} else {
		/* its directory's path is the start of events.meta's: it fits */
		if (!dd_task(path, ck->dir, tk->name, NULL))
			io_fsync_dir(path);
		ck_report(ck, 'F', "task %s: sidecar rebuilt from its log: %" PRIu64 " events (%"
			  PRIu64 " the index lacked, given new gseqs), %" PRIu64 " log bytes after "
			  "them", tk->name, n, fresh, size - off);
	}
	free(l.v);
	if (log)
		munmap(log, size);
	return rc;
}

/* Create @path empty and synced.  0 or -errno. */
static int make_empty(const char *path)
{
	int fd = io->open(path, O_RDWR | O_CREAT | O_TRUNC, 0644), rc = 0;

	if (fd < 0)
		return -errno;
	if (io->fsync(fd))
		rc = -errno;
	io->close(fd);
	return rc;
}

/*
 * Task @tk's directory is there but its log is gone: no byte of its events
 * is left, so it becomes an empty task (its name kept, appends work again);
 * the loss is reported with its count, and the old sidecar, which describes
 * events nobody can read any more, is kept beside as events.meta.lost.
 */
/* Append file @from (missing: nothing) to @to, synced.  0 or -errno. */
static int append_file(const char *from, const char *to)
{
	unsigned char *m;
	uint64_t size = 0;
	int err, fd, rc = 0;

	m = ck_map_file(from, &size, &err);
	if (err)
		return err == -ENOENT ? 0 : err;
	fd = io->open(to, O_WRONLY | O_CLOEXEC, 0);
	if (fd < 0)
		rc = -errno;
	else if (size && io_pwrite_all(fd, m, size, lseek(fd, 0, SEEK_END)))
		rc = -errno;
	else if (io->fsync(fd))
		rc = -errno;
	if (fd >= 0)
		io->close(fd);
	if (m)
		munmap(m, size);
	return rc;
}

static int empty_task(struct ck *ck, struct ck_task *tk)
{
	char path[DD_PATH_MAX], lost[DD_PATH_MAX];
	int rc = 0;

	if (dd_task(path, ck->dir, tk->name, DD_META) ||
	    dd_task(lost, ck->dir, tk->name, DD_META_LOST))
		rc = -ENAMETOOLONG;
	else if (!access(lost, F_OK))
		rc = append_file(path, lost);	/* an earlier one's records kept too */
	else if (io->rename(path, lost) && errno != ENOENT)
		rc = -errno;
	if (!rc)
		rc = make_empty(path);
	if (!rc)
		rc = dd_task(path, ck->dir, tk->name, DD_EVENTS);
	if (!rc)
		rc = make_empty(path);
	if (!rc)
		rc = dd_task(path, ck->dir, tk->name, NULL);
	if (!rc && io_fsync_dir(path))
		rc = -errno;
	if (rc)
		ck_report(ck, 'X', "task %s: its log is gone, and it cannot be made empty: %s",
			  tk->name, strerror(-rc));
	else
		ck_report(ck, 'F', "task %s: its log is gone: %" PRIu64 " events lost; it is an "
			  "empty task now (its old sidecar kept as events.meta.lost)", tk->name,
			  tk->idx_n);
	return rc;
}

/*
 * fsck --repair, reindex: rebuild the sidecar of every indexed task whose
 * log has none, and make a task whose log is gone an empty one.
 */
/*
 * Task @tk (in the index) has a log and a sidecar, and some of the
 * sidecar's events do not match the log's bytes (their checksums): one of
 * the two may have been copied from another task, or restored from another
 * time.  The index says which: if the sidecar's records are not the
 * index's events (gseqs are never shared between tasks) and more of those
 * are whole lines of the log, the sidecar is the stranger: kept as
 * events.meta.foreign, and rebuilt from the log.  If the sidecar is the
 * index's, none of its events that fit in the log checks out, and at most
 * half of them are lines there or one is not where a line could be (its
 * bytes changed in place would keep the lines' places), the log is: kept
 * as events.foreign, and
 * the task's log starts empty (its events are lost: the scan reports
 * them).  Otherwise events were changed in place (a bit flipped, a range
 * zeroed, the log cut): the salvage's case (reindex), or the scan's.
 * 0 or -errno.
 */
static int foreign_files(struct ck *ck, struct ck_task *tk, uint64_t *next)
{
	char path[DD_PATH_MAX], to[DD_PATH_MAX];
	struct rb_list l = { .base = tk->base_len };
	unsigned char *log = NULL, *meta = NULL;
	uint64_t lsize, msize, nrec, off = 0, good = 0, side = 0, lines = 0, fit = 0, placed = 0;
	int err, rc = 0;

	if (dd_task(path, ck->dir, tk->name, DD_EVENTS))
		return -ENAMETOOLONG;
	log = ck_map_file(path, &lsize, &err);
	if (err)
		return err == -ENOENT ? 0 : err;
	if (dd_task(path, ck->dir, tk->name, DD_META)) {
		rc = -ENAMETOOLONG;
		goto out;
	}
	meta = ck_map_file(path, &msize, &err);
	if (err || !meta || !log) {
		rc = err == -ENOENT ? 0 : err;
		goto out;
	}
	nrec = msize / TASKLOG_REC;
	for (uint64_t k = 0; k < nrec; k++) {
		struct tasklog_rec r;

		if (tasklog_decode(meta + k * TASKLOG_REC, &r))
			goto out;	/* damaged records: the scan mends what it can */
		if (r.len <= lsize - off && off <= lsize && tasklog_sum(log + off, r.len) == r.sum)
			good++;
		off += r.len;
	}
	if (good == nrec)
		goto out;	/* every event checks out (or there is none) */
	rc = ck_rb_task_events(ck, tk->uid, &l);
	if (rc)
		goto out;
	for (size_t k = 0; k < l.n; k++) {
		struct tasklog_rec r;

		if (k < nrec && !tasklog_decode(meta + k * TASKLOG_REC, &r) &&
		    r.gseq == l.v[k].gseq && r.len == l.v[k].len)
			side++;
		if (l.v[k].len && l.v[k].off + l.v[k].len <= lsize) {
			fit++;
			placed += ck_line_place(log, lsize, l.v[k].off, l.v[k].len);
			if (log[l.v[k].off + l.v[k].len - 1] == '\n' &&
			    (l.v[k].off == 0 || log[l.v[k].off - 1] == '\n'))
				lines++;
		}
	}
	/* of the events that fit in the log (a log cut short is not another log): those that match */
	off = 0;
	good = 0;
	for (uint64_t k = 0; k < nrec; k++) {
		struct tasklog_rec r;

		if (tasklog_decode(meta + k * TASKLOG_REC, &r) || r.len > lsize - off || off > lsize)
			break;
		good += tasklog_sum(log + off, r.len) == r.sum;
		off += r.len;
	}
	if (side < (nrec < l.n ? nrec : l.n) && lines > side) {
		if (dd_task(path, ck->dir, tk->name, DD_META) ||
		    dd_task(to, ck->dir, tk->name, DD_META_FOREIGN)) {
			rc = -ENAMETOOLONG;
			goto out;
		}
		if (io->rename(path, to)) {
			rc = -errno;
			goto out;
		}
		ck_report(ck, 'F', "task %s: its sidecar describes another log (%" PRIu64 " of its %"
			  PRIu64 " records are the index's events; the index agrees with the log): kept "
			  "as events.meta.foreign, rebuilt from the log", tk->name, side, nrec);
		munmap(log, lsize);
		log = NULL;
		rc = rebuild_sidecar(ck, tk, next);
	} else if (side && side == (nrec < l.n ? nrec : l.n) && fit && !good &&
		   (lines * 2 <= fit || placed < fit)) {
		/*
		 * The sidecar is the index's, the log holds few of its events
		 * where they were: not events changed in place (salvage moves
		 * those), another log.
		 */
		if (dd_task(path, ck->dir, tk->name, DD_EVENTS) ||
		    dd_task(to, ck->dir, tk->name, DD_FOREIGN)) {
			rc = -ENAMETOOLONG;
			goto out;
		}
		if (io->rename(path, to) || make_empty(path)) {
			rc = -errno;
			goto out;
		}
		/* its directory's path is the start of the log's: it fits */
		if (!dd_task(path, ck->dir, tk->name, NULL))
			io_fsync_dir(path);
		ck_report(ck, 'F', "task %s: its log is not the one its sidecar and the index describe "
			  "(%" PRIu64 " of the %" PRIu64 " events that fit in it match): kept as "
			  "events.foreign; the task's events are lost", tk->name, good, fit);
	}
out:
	free(l.v);
	if (log)
		munmap(log, lsize);
	if (meta)
		munmap(meta, msize);
	return rc;
}

/*
 * Before recovery: a task whose sidecar has fewer records than the index
 * has events for it (cut short, emptied, replaced by a shorter one) while
 * its log still holds those events.  Recovery would set it aside (its
 * replay finds the files short), and its journaled events would go to
 * events.unapplied rather than its log.  Its missing records are rebuilt
 * first from the log and the index, as far as each event the index has is
 * a whole line at exactly that byte and length (its gseq; its time the
 * task's last append, which makes retention keep it longer, never
 * shorter); then recovery replays the journal as usual.
 */
struct mend_short {
	struct ck *ck;
	struct index_txn *t;
	struct { uint64_t uid, ck_n; } *dirty;	/* tasks changed since the last checkpoint */
	size_t ndirty, cap;
	int rc;
};

static int mend_dirty_cb(void *arg, uint64_t uid, uint64_t ck_len, uint64_t ck_n,
			 uint64_t gseq_from)
{
	struct mend_short *md = arg;

	if (GROW(md->dirty, md->cap, md->ndirty + 1))
		return -ENOMEM;
	md->dirty[md->ndirty].uid = uid;
	md->dirty[md->ndirty++].ck_n = ck_n;
	return 0;
}

static int mend_short_cb(void *arg, const struct index_task *task)
{
	struct mend_short *md = arg;
	struct ck *ck = md->ck;
	struct rb_list l = { 0 };
	char path[DD_PATH_MAX];
	unsigned char *log = NULL, rec[TASKLOG_REC];
	uint64_t lsize = 0, msize = 0, have, want, upto, off = 0;
	struct stat sb;
	int err, fd = -1, rc;

	if (task->state != TASK_LIVE || task->nevents < task->base_n)
		return 0;
	want = task->nevents - task->base_n;
	/*
	 * A task changed since the last checkpoint: only the records of that
	 * checkpoint; those since come with their events from the journal in
	 * the recovery, whose bytes (not the log's, which may have changed
	 * since) are the ones written.
	 */
	for (size_t i = 0; i < md->ndirty; i++)
		if (md->dirty[i].uid == task->uid)
			want = md->dirty[i].ck_n < task->base_n ? 0 :
			       md->dirty[i].ck_n - task->base_n < want ?
			       md->dirty[i].ck_n - task->base_n : want;
	if (dd_task(path, ck->dir, task->name, DD_META) || stat(path, &sb))
		return 0;	/* none (ck_rebuild_sidecars' case), or unreadable (the scan's) */
	msize = sb.st_size;
	have = msize / TASKLOG_REC;
	if (have >= want)
		return 0;
	if (dd_task(path, ck->dir, task->name, DD_EVENTS))
		goto out;	/* as a log that does not map: the scan's */
	log = ck_map_file(path, &lsize, &err);
	if (err || !log)
		goto out;
	l.base = task->base_len;
	rc = rb_task_in(md->t, task->uid, &l);
	if (rc) {
		md->rc = rc;
		goto out;
	}
	if (l.n < want)
		goto out;
	for (uint64_t k = 0; k < have; k++)
		off += l.v[k].len;
	for (upto = have; upto < want; upto++) {
		if (l.v[upto].off != off || !l.v[upto].len || off > lsize ||
		    l.v[upto].len > lsize - off || log[off + l.v[upto].len - 1] != '\n')
			break;	/* no longer agreeing: what is left goes to the scan */
		off += l.v[upto].len;
	}
	if (upto == have)
		goto out;
	if (dd_task(path, ck->dir, task->name, DD_META)) {
		md->rc = -ENAMETOOLONG;
		goto out;
	}
	fd = io->open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0 || io->ftruncate(fd, have * TASKLOG_REC)) {
		md->rc = -errno;
		goto out;
	}
	for (uint64_t k = 0, at = 0; k < upto; at += l.v[k++].len) {
		struct tasklog_rec r = { l.v[k].gseq, task->last_ns, l.v[k].len, 0 };

		if (k < have)
			continue;
		r.sum = tasklog_sum(log + at, r.len);
		tasklog_encode(&r, rec);
		if (io_pwrite_all(fd, rec, sizeof(rec), k * TASKLOG_REC)) {
			md->rc = -errno;
			goto out;
		}
	}
	if (io->fsync(fd)) {
		md->rc = -errno;
		goto out;
	}
	ck_report(ck, 'F', "task %s: its sidecar had %" PRIu64 " of the %" PRIu64 " records the index "
		  "has: %" PRIu64 " rebuilt from the log and the index, before the recovery",
		  task->name, have, want, upto - have);
out:
	if (fd >= 0)
		io->close(fd);
	free(l.v);
	if (log)
		munmap(log, lsize);
	return md->rc;
}

int ck_mend_short_sidecars(struct ck *ck)
{
	struct mend_short md = { .ck = ck };
	int rc;

	if (!ck->ix)
		return 0;
	rc = index_begin(ck->ix, false, &md.t);
	if (rc)
		return rc;
	rc = index_dirty_list(md.t, mend_dirty_cb, &md);
	if (!rc)
		rc = index_task_list(md.t, NULL, 0, mend_short_cb, &md);
	index_abort(md.t);
	free(md.dirty);
	return rc ? rc : md.rc;
}

int ck_rebuild_sidecars(struct ck *ck)
{
	struct index_meta m;
	struct index_txn *t;
	int rc;

	rc = index_begin(ck->ix, false, &t);
	if (rc)
		return rc;
	rc = index_get_meta(t, &m);
	index_abort(t);
	for (size_t i = 0; i < ck->ntasks && !rc; i++) {
		struct ck_task *tk = &ck->tasks[i];
		char path[DD_PATH_MAX];
		struct stat sb;

		if (!tk->uid)
			continue;
		rc = dd_task(path, ck->dir, tk->name, DD_EVENTS);
		if (rc)
			break;
		if (stat(path, &sb) && errno == ENOENT) {
			/* a task whose directory is gone is deleted by the repair */
			if (!dd_task(path, ck->dir, tk->name, NULL) && !stat(path, &sb) &&
			    S_ISDIR(sb.st_mode))
				rc = empty_task(ck, tk);
			continue;
		}
		rc = dd_task(path, ck->dir, tk->name, DD_META);
		if (rc)
			break;
		if (!stat(path, &sb)) {
			rc = foreign_files(ck, tk, &m.next_gseq);
			continue;
		}
		if (errno != ENOENT)
			continue;
		/* fresh gseqs come after every gseq handed out; the scan sees them */
		rc = rebuild_sidecar(ck, tk, &m.next_gseq);
	}
	return rc;
}

/* Is [@off, @off + @len) of @log (@size bytes) where a line would be, zeros counting as newlines? */
bool ck_line_place(const unsigned char *log, uint64_t size, uint64_t off, uint64_t len)
{
	if (!len || off > size || len > size - off)
		return false;
	if (off && log[off - 1] != '\n' && log[off - 1] != 0)
		return false;
	return log[off + len - 1] == '\n' || log[off + len - 1] == 0;
}
