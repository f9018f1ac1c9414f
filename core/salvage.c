/*
 * salvage.c - events whose bytes are not the ones written: reindex moves
 * them to the task's events.damaged (ck_salvage_all), in steps a crash
 * may cut short, which fsck --repair and reindex finish
 * (ck_finish_salvages).  The rule and the steps are below, above
 * salvage_finish.
 */
#include <dirent.h>
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
#include "index.h"
#include "io.h"
#include "store.h"
#include "tasklog.h"

/*
 * ---- salvage: events whose bytes are not the ones written ----
 *
 * A task whose sidecar records all check out, some of whose events do not
 * match their checksums (a bad disk, a hand edit), is rewritten without
 * them: the events that check out keep their bytes, gseqs and times; the
 * others go, byte for byte, to the task's events.damaged (a newline added
 * after one that lacks it), where a person can look at them.  Nothing that
 * checks out is moved, and nothing moves unless the sidecar is provably
 * this log's: when the index is there, every record must be the index's
 * (gseq, length and place, in order: then bytes that do not check out are
 * not that event, whatever they are: a part of another log copied over
 * it, say); without it, each event that does not check out must sit where
 * its record says as a line of the log (its boundaries newlines, or zeros
 * where a range was zeroed).  Anything else (a sidecar or
 * log of another task) is foreign_files' case (sidecar_repair.c), or the scan's.
 *
 * Crash-safe, in this order: events.meta.salvage written and synced (and
 * the directory), then events.salvage and events.damaged.salvage (the old
 * events.damaged plus the new bytes), the directory synced; then renamed
 * into place: the sidecar, the log, events.damaged.  So a run finding
 * events.meta.salvage renamed nothing yet and starts over; one finding
 * events.salvage without it finishes the renames, once it has checked
 * that the sidecar in place describes events.salvage.
 */
static int salvage_finish(const char *tdir)
{
	char log[DD_PATH_MAX], meta[DD_PATH_MAX], slog[DD_PATH_MAX], smeta[DD_PATH_MAX];
	char dmg[DD_PATH_MAX], sdmg[DD_PATH_MAX];
	unsigned char *l = NULL, *m = NULL;
	uint64_t lsize, msize, off = 0;
	struct stat sb;
	bool ok = true;
	int err, rc = 0;

	if (dd_join(log, tdir, DD_EVENTS) || dd_join(meta, tdir, DD_META) ||
	    dd_join(slog, tdir, DD_EVENTS DD_SALVAGE) || dd_join(smeta, tdir, DD_META DD_SALVAGE) ||
	    dd_join(dmg, tdir, DD_DAMAGED) || dd_join(sdmg, tdir, DD_DAMAGED DD_SALVAGE))
		return -ENAMETOOLONG;
	if (!stat(smeta, &sb)) {
		/* nothing renamed yet: start over */
		if ((io->unlink(smeta) && errno != ENOENT) || (io->unlink(slog) && errno != ENOENT) ||
		    (io->unlink(sdmg) && errno != ENOENT))
			return -errno;
		return io_fsync_dir(tdir) ? -errno : 0;
	}
	if (!stat(slog, &sb)) {
		/* the sidecar is in place: it must describe the new log */
		l = ck_map_file(slog, &lsize, &err);
		if (!err)
			m = ck_map_file(meta, &msize, &err);
		if (err) {
			rc = err;
			goto out;
		}
		/*
		 * Every record that fits checks out; the first that does not
		 * fit starts the torn tail the salvage keeps for the scan (its
		 * records and the log's bytes past the kept events, together).
		 */
		for (uint64_t k = 0; k < msize / TASKLOG_REC && ok; k++) {
			struct tasklog_rec r;

			ok = !tasklog_decode(m + k * TASKLOG_REC, &r) && r.len;
			if (ok && r.len > lsize - off)
				break;
			ok = ok && tasklog_sum(l + off, r.len) == r.sum;
			off += r.len;
		}
		if (!ok || off > lsize) {
			/* not the salvage's pair: a leftover, the files in place stay */
			if (io->unlink(slog) || (io->unlink(sdmg) && errno != ENOENT))
				rc = -errno;
			goto out;
		}
		if (io->rename(slog, log)) {
			rc = -errno;
			goto out;
		}
		rc = 1;
	}
	if (!stat(sdmg, &sb)) {
		if (io->rename(sdmg, dmg)) {
			rc = -errno;
			goto out;
		}
		rc = 1;
	}
	if (rc > 0 && io_fsync_dir(tdir))
		rc = -errno;
out:
	if (l)
		munmap(l, lsize);
	if (m)
		munmap(m, msize);
	return rc;
}

static int write_synced(const char *path, const void *data, size_t len)
{
	int fd, rc = 0;

	fd = io->open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if ((len && io_pwrite_all(fd, data, len, 0)) || io->fsync(fd))
		rc = -errno;
	io->close(fd);
	return rc;
}

static int salvage_task(struct ck *ck, struct ck_task *tk, const char *name)
{
	char tdir[DD_PATH_MAX], path[DD_PATH_MAX];
	unsigned char *log = NULL, *meta = NULL, *nlog = NULL, *nmeta = NULL, *bad = NULL;
	unsigned char *old_bad = NULL;
	struct rb_list l = { .base = tk ? tk->base_len : 0 };
	uint64_t lsize, msize, obsize = 0, off = 0, nrec, k, good = 0, damaged = 0;
	size_t nl = 0, nm = 0, nb = 0;
	bool indexed = ck->ix && tk && tk->uid;
	int err, rc = 0;

	if (dd_task(tdir, ck->dir, name, NULL))
		return -ENAMETOOLONG;
	rc = salvage_finish(tdir);
	if (rc > 0)
		ck_report(ck, 'F', "task %s: a salvage cut short by a crash finished", name);
	if (rc < 0)
		return rc;
	rc = 0;
	if (dd_join(path, tdir, DD_EVENTS))
		return -ENAMETOOLONG;
	log = ck_map_file(path, &lsize, &err);
	if (err)
		return err == -ENOENT || err == -ENOTDIR ? 0 : err;
	if (dd_join(path, tdir, DD_META)) {
		rc = -ENAMETOOLONG;
		goto out;
	}
	meta = ck_map_file(path, &msize, &err);
	if (err || !meta || !log) {
		rc = err == -ENOENT ? 0 : err;
		goto out;
	}
	nrec = msize / TASKLOG_REC;
	/* the index's events of the task, when there is one: the records must be them */
	if (indexed) {
		rc = ck_rb_task_events(ck, tk->uid, &l);
		if (rc)
			goto out;
	}
	/* first: is there anything to salvage, and is the sidecar provably this log's? */
	for (k = 0, off = 0; k < nrec; k++) {
		struct tasklog_rec r;

		if (tasklog_decode(meta + k * TASKLOG_REC, &r) || !r.len)
			goto out;	/* a damaged record: the scan mends it if it can */
		if (r.len > lsize - off || off > lsize)
			break;		/* past the log's end: a torn tail, cut later */
		if (indexed && (k >= l.n || l.v[k].gseq != r.gseq || l.v[k].len != r.len ||
				l.v[k].off != off))
			goto out;	/* not the index's events: foreign_files, or the scan */
		if (tasklog_sum(log + off, r.len) == r.sum) {
			good++;
		} else {
			/*
			 * Without the index, only where a line of this log is (else the
			 * sidecar may be another's); with it, the record is the index's
			 * event, so these bytes are not that event, whatever they are.
			 */
			if (!indexed && !ck_line_place(log, lsize, off, r.len))
				goto out;
			damaged++;
		}
		off += r.len;
	}
	if (!damaged)
		goto out;
	if (dd_join(path, tdir, DD_DAMAGED)) {
		rc = -ENAMETOOLONG;
		goto out;
	}
	old_bad = ck_map_file(path, &obsize, &err);
	if (err && err != -ENOENT) {
		rc = err;
		goto out;
	}
	nlog = malloc(lsize ? lsize : 1);
	nmeta = malloc(msize ? msize : 1);
	bad = malloc(obsize + lsize + damaged + 1);
	if (!nlog || !nmeta || !bad) {
		rc = -ENOMEM;
		goto out;
	}
	if (obsize) {
		memcpy(bad, old_bad, obsize);
		nb = obsize;
	}
	for (k = 0, off = 0; k < nrec; k++) {
		struct tasklog_rec r;

		tasklog_decode(meta + k * TASKLOG_REC, &r);
		if (r.len > lsize - off || off > lsize)
			break;
		if (tasklog_sum(log + off, r.len) == r.sum) {
			memcpy(nlog + nl, log + off, r.len);
			nl += r.len;
			memcpy(nmeta + nm, meta + k * TASKLOG_REC, TASKLOG_REC);
			nm += TASKLOG_REC;
		} else {
			if (nb - obsize < REPORT_PER_TYPE * 1024 && damaged <= REPORT_PER_TYPE)
				ck_report(ck, 'F', "task %s: event %" PRIu64 " (gseq %" PRIu64 ", log"
					  " byte %" PRIu64 ", %" PRIu32 " bytes) is not what was written"
					  " (its checksum does not match): moved to events.damaged",
					  name, k + 1, r.gseq, off, r.len);
			memcpy(bad + nb, log + off, r.len);
			nb += r.len;
			if (log[off + r.len - 1] != '\n')
				bad[nb++] = '\n';
		}
		off += r.len;
	}
	/* what follows the records (a torn tail, lines from outside) stays, for the scan */
	memcpy(nlog + nl, log + off, lsize - off);
	nl += lsize - off;
	memcpy(nmeta + nm, meta + k * TASKLOG_REC, msize - k * TASKLOG_REC);
	nm += msize - k * TASKLOG_REC;

	rc = dd_join(path, tdir, DD_META DD_SALVAGE);
	if (!rc)
		rc = write_synced(path, nmeta, nm);
	if (!rc && io_fsync_dir(tdir))
		rc = -errno;
	if (!rc)
		rc = dd_join(path, tdir, DD_EVENTS DD_SALVAGE);
	if (!rc)
		rc = write_synced(path, nlog, nl);
	if (!rc)
		rc = dd_join(path, tdir, DD_DAMAGED DD_SALVAGE);
	if (!rc)
		rc = write_synced(path, bad, nb);
	if (!rc && io_fsync_dir(tdir))
		rc = -errno;
	if (!rc) {
		char from[DD_PATH_MAX];

		if (dd_join(from, tdir, DD_META DD_SALVAGE) || dd_join(path, tdir, DD_META))
			rc = -ENAMETOOLONG;
		else if (io->rename(from, path))
			rc = -errno;
		/* durable before the log's: a power loss must not keep that one alone */
		if (!rc && io_fsync_dir(tdir))
			rc = -errno;
	}
	if (!rc) {
		int f = salvage_finish(tdir);

		rc = f < 0 ? f : 0;
	}
	if (!rc) {
		ck->r->damaged += damaged;
		if (damaged > REPORT_PER_TYPE)
			ck_report(ck, 'I', "task %s: %" PRIu64 " more damaged events not shown", name,
				  damaged - REPORT_PER_TYPE);
	}
out:
	free(l.v);
	if (log)
		munmap(log, lsize);
	if (meta)
		munmap(meta, msize);
	if (old_bad)
		munmap(old_bad, obsize);
	free(nlog);
	free(nmeta);
	free(bad);
	return rc;
}

/* salvage_task for every task directory of the store. */
int ck_salvage_all(struct ck *ck)
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
	while (!rc && (de = readdir(d))) {
		struct ck_task *tk = NULL;

		struct stat sb;

		if (de->d_name[0] == '.')
			continue;
		/*
		 * apply_journal_deletes asks whether it changed after a delete: not
		 * by us (a path that does not fit: no ctime, as if unreadable)
		 */
		if (!dd_task(path, ck->dir, de->d_name, NULL) && !stat(path, &sb) &&
		    strlen(de->d_name) < sizeof(ck->ctimes->name)) {
			rc = grow_bytes(&ck->ctimes, &ck->ctcap,
					(ck->nctimes + 1) * sizeof(*ck->ctimes));
			if (rc)
				break;
			snprintf(ck->ctimes[ck->nctimes].name, sizeof(ck->ctimes->name), "%s",
				 de->d_name);
			ck->ctimes[ck->nctimes++].ns = (uint64_t)sb.st_ctim.tv_sec * 1000000000u +
						       sb.st_ctim.tv_nsec;
		}
		for (size_t i = 0; i < ck->ntasks && !tk; i++)
			if (!strcmp(ck->tasks[i].name, de->d_name))
				tk = &ck->tasks[i];
		rc = salvage_task(ck, tk, de->d_name);
	}
	closedir(d);
	return rc;
}

/*
 * A salvage a crash cut short (reindex's rewrite of a task without its
 * damaged events: events.meta.salvage, events.salvage): --repair finishes
 * or undoes it before anything reads the task (its sidecar may already
 * describe the new log, which the scan would take for damage and cut);
 * a check reports it.
 */
int ck_finish_salvages(struct ck *ck, bool repair)
{
	char path[DD_PATH_MAX], tdir[DD_PATH_MAX], probe[DD_PATH_MAX];
	struct dirent *de;
	struct stat sb;
	DIR *d;
	int rc = 0;

	if (dd_path(path, ck->dir, DD_TASKS, NULL))
		return -ENAMETOOLONG;
	d = opendir(path);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while (!rc && (de = readdir(d))) {
		bool cut;

		if (de->d_name[0] == '.')
			continue;
		if (dd_join(tdir, path, de->d_name)) {
			rc = -ENAMETOOLONG;
			break;
		}
		/* a file whose path would not fit is not there */
		cut = !dd_join(probe, tdir, DD_META DD_SALVAGE) && !stat(probe, &sb);
		cut |= !dd_join(probe, tdir, DD_EVENTS DD_SALVAGE) && !stat(probe, &sb);
		cut |= !dd_join(probe, tdir, DD_DAMAGED DD_SALVAGE) && !stat(probe, &sb);
		if (!cut)
			continue;
		if (!repair) {
			ck_report(ck, 'E', "task %s: a salvage (evlogctl reindex) was cut short by a"
				  " crash: fsck --repair or reindex finishes it", de->d_name);
			continue;
		}
		rc = salvage_finish(tdir);
		if (rc >= 0) {
			ck_report(ck, 'F', "task %s: a salvage cut short by a crash %s", de->d_name,
				  rc > 0 ? "finished" : "undone (it had renamed nothing)");
			rc = 0;
		}
	}
	closedir(d);
	return rc;
}
