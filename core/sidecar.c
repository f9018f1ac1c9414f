/*
 * sidecar.c - a task's sidecar (events.meta; its record layout is in
 * tasklog.h): the record codec and the event checksum, reads and writes
 * of records without the log (records mended or rebuilt by fsck and
 * recovery, a sidecar made anew or set aside), DATA_DIR/format and the
 * upgrade of format-1 sidecars, and the proof that a log's bytes are the
 * ones its records vouch for (tasklog_verify).  The write of events with
 * their records, and the descriptors, are tasklog.c's.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <xxhash.h>

#include "bytes.h"
#include "datadir.h"
#include "grow.h"
#include "io.h"
#include "log.h"
#include "tasklog.h"
#include "tasklog_i.h"

/* ---- records ---- */

uint32_t tasklog_sum(const void *event, size_t len)
{
	return XXH32(event, len, 0);
}

void tasklog_encode(const struct tasklog_rec *r, unsigned char out[TASKLOG_REC])
{
	put_le64(out, r->gseq);
	put_le64(out + 8, r->time_ns);
	put_le32(out + 16, r->len);
	put_le32(out + 20, r->sum);
	put_le32(out + 24, 0);
	put_le32(out + 28, XXH32(out, 28, 2));
}

int tasklog_decode(const unsigned char in[TASKLOG_REC], struct tasklog_rec *r)
{
	r->gseq = get_le64(in);
	r->time_ns = get_le64(in + 8);
	r->len = get_le32(in + 16);
	r->sum = get_le32(in + 20);
	return get_le32(in + 28) == XXH32(in, 28, 2) ? 0 : -EILSEQ;
}

int tasklog_decode_v1(const unsigned char in[TASKLOG_REC_V1], struct tasklog_rec *r)
{
	r->gseq = get_le64(in);
	r->time_ns = get_le64(in + 8);
	r->len = get_le32(in + 16);
	r->sum = 0;
	return get_le32(in + 20) == XXH32(in, 20, 0) ? 0 : -EILSEQ;
}

int tasklog_write_recs(struct tasklog *tl, uint64_t uid, const char *name, uint64_t idx,
		       const struct tasklog_rec *recs, size_t n)
{
	unsigned char mb[64 * TASKLOG_REC];
	struct fd_entry *e;
	int rc;

	if (n > 64)
		return -EINVAL;
	rc = tasklog_get_fds(tl, uid, name, &e);
	if (rc)
		return rc;
	rc = tasklog_need_meta(tl, e, name);
	if (!rc) {
		for (size_t i = 0; i < n; i++)
			tasklog_encode(&recs[i], mb + i * TASKLOG_REC);
		if (io_pwrite_all(e->meta_fd, mb, n * TASKLOG_REC, idx * TASKLOG_REC))
			rc = -errno;
	}
	tasklog_put_fds(tl, e);
	return rc;
}

ssize_t tasklog_read_recs(struct tasklog *tl, uint64_t uid, const char *name,
			  uint64_t idx, struct tasklog_rec *recs, size_t n)
{
	unsigned char *mb;
	struct fd_entry *e;
	ssize_t got;
	int rc;

	mb = malloc(n * TASKLOG_REC + 1);
	if (!mb)
		return -ENOMEM;
	rc = tasklog_get_fds(tl, uid, name, &e);
	if (rc) {
		free(mb);
		return rc;
	}
	rc = tasklog_need_meta(tl, e, name);
	if (rc) {
		tasklog_put_fds(tl, e);
		free(mb);
		return rc;
	}
	got = io_pread_all(e->meta_fd, mb, n * TASKLOG_REC, idx * TASKLOG_REC);
	if (got < 0) {
		got = -errno;
	} else {
		got /= TASKLOG_REC;
		for (ssize_t i = 0; i < got; i++)
			if (tasklog_decode(mb + i * TASKLOG_REC, &recs[i])) {
				got = -EILSEQ;
				break;
			}
	}
	tasklog_put_fds(tl, e);
	free(mb);
	return got;
}

int tasklog_recreate_meta(struct tasklog *tl, const char *name)
{
	char path[DD_PATH_MAX], dir[DD_PATH_MAX];
	struct stat st;
	int fd;

	if (dd_task(path, tl->data_dir, name, DD_EVENTS))
		return -ENAMETOOLONG;
	if (stat(path, &st))
		return -errno;
	if (dd_task(path, tl->data_dir, name, DD_META) || dd_task(dir, tl->data_dir, name, NULL))
		return -ENAMETOOLONG;
	if (!stat(path, &st))
		return 0;
	if (errno != ENOENT)
		return -errno;
	fd = tasklog_open_shed(tl, path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return errno == EEXIST ? 0 : -errno;
	if (tasklog_sync_one(tl, fd, NULL) || tasklog_sync_one(tl, -1, dir)) {
		int rc = -errno;

		io->close(fd);
		return rc;
	}
	io->close(fd);
	return 1;
}

int tasklog_meta_foreign(struct tasklog *tl, uint64_t uid, const char *name)
{
	char from[DD_PATH_MAX], to[DD_PATH_MAX];
	int rc;

	tasklog_forget_fds(tl, uid);
	tasklog_verify_forget(tl, uid);
	if (dd_task(from, tl->data_dir, name, DD_META) ||
	    dd_task(to, tl->data_dir, name, DD_META_FOREIGN))
		return -ENAMETOOLONG;
	if (io->rename(from, to))
		return -errno;
	rc = tasklog_recreate_meta(tl, name);	/* syncs the directory: the rename too */
	return rc < 0 ? rc : 0;
}

/* ---- the sidecar format (format 1: 24-byte records without the event checksum) ---- */

#define FORMAT 2

/*
 * DATA_DIR/format: "evlogfs-format N XXXXXXXX\n", the hex an XXH32 of
 * "evlogfs-format N", so that a flipped bit is damage (the sidecars are
 * looked at again), not a claim of a newer format.  Returns N, or 0 if
 * @buf is not such a line.
 */
static unsigned format_parse(const char *buf)
{
	unsigned n, sum;
	int head;
	char nl;

	if (sscanf(buf, "evlogfs-format %u%n %8x%c", &n, &head, &sum, &nl) != 3 || nl != '\n' ||
	    sum != XXH32(buf, head, 0) || strchr(buf, '\n')[1])
		return 0;
	return n;
}

static int format_line(char *buf, size_t len)
{
	int head = snprintf(buf, len, "evlogfs-format %u", FORMAT);

	return head + snprintf(buf + head, len - head, " %08x\n", XXH32(buf, head, 0));
}

/* The format of a sidecar's @size bytes at @m: 2, 1, or 0 (empty, or no record checks out). */
static int sidecar_format(const unsigned char *m, size_t size)
{
	struct tasklog_rec r;

	for (size_t k = 0; k < 4; k++) {
		if ((k + 1) * TASKLOG_REC <= size && !tasklog_decode(m + k * TASKLOG_REC, &r))
			return 2;
		if ((k + 1) * TASKLOG_REC_V1 <= size && !tasklog_decode_v1(m + k * TASKLOG_REC_V1, &r))
			return 1;
	}
	return 0;
}

static void *map_ro(int fd, size_t *size)
{
	struct stat sb;
	void *p;

	*size = 0;
	if (fstat(fd, &sb))
		return NULL;
	*size = sb.st_size;
	if (!*size)
		return "";
	p = mmap(NULL, *size, PROT_READ, MAP_PRIVATE, fd, 0);
	return p == MAP_FAILED ? NULL : p;
}

/*
 * How many of the @nrec format-1 records of @m to upgrade: up to the last
 * whose event is a line of log @l.  Records past it are a batch a power
 * loss cut from the log (bytes gone, or a hole of zeros) after its records
 * were written: a checksum made of those bytes would not be the event's,
 * and the replay of the journal, which still holds the batch, could not
 * write it again over records that differ.  Dropped, they are written
 * anew by that replay (or, if no journal holds them, the index's check at
 * open finds the sidecar short, as before the upgrade).
 */
static size_t upgrade_keep(const unsigned char *m, size_t nrec, const unsigned char *l,
			   size_t lsize)
{
	size_t keep = 0, off = 0;

	for (size_t k = 0; k < nrec; k++) {
		struct tasklog_rec r;

		if (tasklog_decode_v1(m + k * TASKLOG_REC_V1, &r)) {
			const unsigned char *nl = off < lsize ? memchr(l + off, '\n', lsize - off)
							      : NULL;

			off = nl ? (size_t)(nl - l) + 1 : lsize;
			continue;
		}
		if (off <= lsize && r.len && r.len <= lsize - off && l[off] &&
		    l[off + r.len - 1] == '\n')
			keep = k + 1;
		off += r.len;
	}
	return keep;
}

/*
 * Rewrite format-1 sidecar @meta (of log @log, both in directory @dir) as
 * format 2: each record with its event's checksum, computed from the log.
 * A record that does not check out becomes 32 zero bytes (it fails its
 * check as before: fsck mends it from the log and the index), and the next
 * event starts after the next newline.  A partial last record is dropped (a torn write), and
 * so are the last records whose events the log lacks (upgrade_keep).
 * Crash-safe: a new file, synced, renamed over the old, directory synced.
 * 0 (also: not format 1), or -errno.
 */
static int upgrade_sidecar(const char *dir, const char *meta, const char *log, bool *done)
{
	char tmp[DD_PATH_MAX];
	const unsigned char *m = NULL, *l = NULL;
	unsigned char out[64 * TASKLOG_REC];
	size_t msize = 0, lsize = 0, k, nrec, off = 0, at = 0;
	int mfd, lfd = -1, fd = -1, rc = 0;

	*done = false;
	mfd = io->open(meta, O_RDONLY | O_CLOEXEC, 0);
	if (mfd < 0)
		return errno == ENOENT ? 0 : -errno;
	m = map_ro(mfd, &msize);
	if (!m) {
		rc = -errno;
		goto out;
	}
	if (sidecar_format(m, msize) != 1)
		goto out;
	lfd = io->open(log, O_RDONLY | O_CLOEXEC, 0);
	if (lfd >= 0)
		l = map_ro(lfd, &lsize);
	else if (errno != ENOENT)
		rc = -errno;
	if (rc || (lfd >= 0 && !l)) {
		rc = rc ? rc : -errno;
		goto out;
	}
	if (dd_suffix(tmp, meta, DD_UPGRADE)) {
		rc = -ENAMETOOLONG;
		goto out;
	}
	fd = io->open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	nrec = upgrade_keep(m, msize / TASKLOG_REC_V1, l, lsize);
	for (k = 0; k < nrec && !rc; k++) {
		struct tasklog_rec r;
		unsigned char *o = out + (k % 64) * TASKLOG_REC;

		if (tasklog_decode_v1(m + k * TASKLOG_REC_V1, &r)) {
			const unsigned char *nl = off < lsize ? memchr(l + off, '\n', lsize - off) : NULL;

			memset(o, 0, TASKLOG_REC);
			off = nl ? (size_t)(nl - l) + 1 : lsize;
		} else {
			if (r.len <= lsize - off && off <= lsize)
				r.sum = tasklog_sum(l + off, r.len);
			off += r.len;
			tasklog_encode(&r, o);
		}
		if (k % 64 == 63 || k + 1 == nrec) {
			size_t n = k % 64 + 1;

			if (io_pwrite_all(fd, out, n * TASKLOG_REC, at))
				rc = -errno;
			at += n * TASKLOG_REC;
		}
	}
	if (!rc && io->fsync(fd))
		rc = -errno;
	if (!rc && io->rename(tmp, meta))
		rc = -errno;
	if (rc) {
		io->unlink(tmp);
	} else {
		if (io_fsync_dir(dir))
			rc = -errno;
		*done = !rc;
	}
out:
	if (fd >= 0)
		io->close(fd);
	if (l && lsize)
		munmap((void *)l, lsize);
	if (m && msize)
		munmap((void *)m, msize);
	if (lfd >= 0)
		io->close(lfd);
	io->close(mfd);
	return rc;
}

/* Is sidecar @meta of format 1?  (A missing or unreadable one is not.) */
static bool is_format1(const char *meta)
{
	unsigned char head[4 * TASKLOG_REC];
	ssize_t n;
	int fd;

	fd = io->open(meta, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
		return false;
	n = io_pread_all(fd, head, sizeof(head), 0);
	io->close(fd);
	return n > 0 && sidecar_format(head, n) == 1;
}

/*
 * Look at (or upgrade) every sidecar under DATA_DIR/tasks of store
 * @data_dir: task directories, .trash-<uid> (a delete that recovery may
 * undo), .rewrite/<uid>.meta.  Counts format-1 ones in *@old, upgraded
 * ones in *@upgraded.
 */
static int upgrade_all(const char *data_dir, bool may_write, uint64_t *old, uint64_t *upgraded)
{
	static const char rw_meta[] = "." DD_REWRITE_META;
	char tasks[DD_PATH_MAX], dir[DD_PATH_MAX], meta[DD_PATH_MAX], log[DD_PATH_MAX];
	struct dirent *de;
	DIR *d;
	int rc = 0;

	if (dd_path(tasks, data_dir, DD_TASKS, NULL))
		return -ENAMETOOLONG;
	d = opendir(tasks);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while (!rc && (de = readdir(d))) {
		bool rewrite = !strcmp(de->d_name, DD_REWRITE);

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (rewrite) {
			char stem[DD_PATH_MAX];
			struct dirent *re;
			DIR *rd;

			if (dd_rewrite(dir, data_dir, 0, NULL)) {
				rc = -ENAMETOOLONG;
				break;
			}
			rd = opendir(dir);
			while (rd && !rc && (re = readdir(rd))) {
				size_t len = strlen(re->d_name), mlen = strlen(rw_meta);
				bool done;

				if (len <= mlen || strcmp(re->d_name + len - mlen, rw_meta))
					continue;
				/* <uid>.meta, and its log <uid>.events */
				if (dd_join(meta, dir, re->d_name) || dd_join(stem, dir, re->d_name)) {
					rc = -ENAMETOOLONG;
					break;
				}
				stem[strlen(stem) - strlen(DD_REWRITE_META)] = '\0';
				if (dd_suffix(log, stem, DD_EVENTS)) {
					rc = -ENAMETOOLONG;
					break;
				}
				if (!is_format1(meta))
					continue;
				(*old)++;
				if (may_write && !(rc = upgrade_sidecar(dir, meta, log, &done)) && done)
					(*upgraded)++;
			}
			if (rd)
				closedir(rd);
			continue;
		}
		{
			bool done;

			if (dd_task(dir, data_dir, de->d_name, NULL) ||
			    dd_task(meta, data_dir, de->d_name, DD_META) ||
			    dd_task(log, data_dir, de->d_name, DD_EVENTS)) {
				rc = -ENAMETOOLONG;
				break;
			}
			if (!is_format1(meta))
				continue;
			(*old)++;
			if (may_write && !(rc = upgrade_sidecar(dir, meta, log, &done)) && done)
				(*upgraded)++;
		}
	}
	closedir(d);
	return rc;
}

int tasklog_format_check(const char *data_dir, bool may_write, bool every, char *why, size_t n)
{
	char path[DD_PATH_MAX], buf[64], tmp[DD_PATH_MAX], line[64];
	uint64_t old = 0, upgraded = 0;
	unsigned have = 0;
	ssize_t got;
	int fd, rc, len;

	if (dd_path(path, data_dir, DD_FORMAT, NULL))
		return -ENAMETOOLONG;
	fd = io->open(path, O_RDONLY | O_CLOEXEC, 0);
	if (fd >= 0) {
		got = io_pread_all(fd, buf, sizeof(buf) - 1, 0);
		io->close(fd);
		buf[got > 0 ? got : 0] = '\0';
		have = got > 0 ? format_parse(buf) : 0;
		if (have == FORMAT && !every)
			return 0;
		if (have > FORMAT) {
			snprintf(why, n, "%s says the store is of a newer format (%u): this "
				 "evlogfs cannot read it", path, have);
			return -EPROTO;
		}
		/* have == 0: damaged; look at the sidecars as if it were missing */
	} else if (errno != ENOENT) {
		return -errno;
	}
	rc = upgrade_all(data_dir, may_write, &old, &upgraded);
	if (rc)
		return rc;
	if (old && !may_write) {
		snprintf(why, n, "%" PRIu64 " task sidecars are of format 1 (an older evlogfs): "
			 "mount the store read-write once, or run evlogctl fsck --repair, to "
			 "upgrade them", old);
		return -EPROTO;
	}
	if (upgraded)
		evl_log(LOG_NOTICE, "%s: %" PRIu64 " task sidecars upgraded to format 2 (each "
			"event's checksum added)", data_dir, upgraded);
	if (!may_write || have == FORMAT)
		return 0;
	len = format_line(line, sizeof(line));
	if (dd_suffix(tmp, path, ".new"))
		return -ENAMETOOLONG;
	fd = io->open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	rc = io_pwrite_all(fd, line, len, 0) || io->fsync(fd) ? -errno : 0;
	io->close(fd);
	if (!rc && io->rename(tmp, path))
		rc = -errno;
	if (!rc && io_fsync_dir(data_dir))
		rc = -errno;
	if (rc)
		io->unlink(tmp);
	return rc;
}

/* ---- proving what a reader is served (each event's checksum) ---- */

static size_t vslot(const struct tasklog *tl, uint64_t uid)
{
	return (size_t)(XXH64(&uid, sizeof(uid), 0) & (tl->vcap - 1));
}

/* The entry of @uid, or NULL.  With vlock held. */
static struct vent *vfind(struct tasklog *tl, uint64_t uid)
{
	if (!tl->vcap)
		return NULL;
	for (size_t i = vslot(tl, uid);; i = (i + 1) & (tl->vcap - 1)) {
		if (tl->vents[i].uid == uid)
			return &tl->vents[i];
		if (!tl->vents[i].uid)
			return NULL;
	}
}

/* Set @uid's entry (made if missing).  With vlock held.  0 or -ENOMEM. */
static int vset(struct tasklog *tl, uint64_t uid, uint64_t off, uint64_t idx)
{
	struct vent *e = vfind(tl, uid);

	if (!e && (tl->nvents + 1) * 2 > tl->vcap) {
		size_t cap = tl->vcap ? tl->vcap * 2 : 256;
		struct vent *old = tl->vents, *nv = calloc(cap, sizeof(*nv));
		size_t oldcap = tl->vcap;

		if (!nv)
			return -ENOMEM;
		tl->vents = nv;
		tl->vcap = cap;
		for (size_t i = 0; i < oldcap; i++)
			if (old[i].uid) {
				size_t k = vslot(tl, old[i].uid);

				while (nv[k].uid)
					k = (k + 1) & (cap - 1);
				nv[k] = old[i];
			}
		free(old);
	}
	if (!e) {
		size_t k = vslot(tl, uid);

		while (tl->vents[k].uid)
			k = (k + 1) & (tl->vcap - 1);
		e = &tl->vents[k];
		e->uid = uid;
		tl->nvents++;
	}
	e->off = off;
	e->idx = idx;
	return 0;
}

void tasklog_verify_forget(struct tasklog *tl, uint64_t uid)
{
	struct vent *e;

	pthread_mutex_lock(&tl->vlock);
	e = vfind(tl, uid);
	if (e) {
		/* backward-shift deletion: the entries after it move up where they may */
		size_t i = e - tl->vents, j = i;

		for (;;) {
			j = (j + 1) & (tl->vcap - 1);
			if (!tl->vents[j].uid)
				break;
			size_t home = vslot(tl, tl->vents[j].uid);

			/* j's entry may fill i if its home is not in (i, j] (cyclically) */
			if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
				tl->vents[i] = tl->vents[j];
				i = j;
			}
		}
		tl->vents[i].uid = 0;
		tl->nvents--;
	}
	pthread_mutex_unlock(&tl->vlock);
}

/* Bytes of log a verification step reads at once (more for one larger event). */
#define VERIFY_CHUNK (256u << 10)

int tasklog_verify(struct tasklog *tl, uint64_t uid, const char *name, uint64_t base_len,
		   uint64_t base_n, uint64_t flen, uint64_t upto, uint64_t *proven,
		   char *why, size_t n)
{
	struct tasklog_rec recs[256];
	uint64_t off, idx, target;
	struct vent *e;
	char *buf = NULL;
	size_t cap = 0;
	int rc = 0;

	if (upto > flen)
		upto = flen;
	pthread_mutex_lock(&tl->vlock);
	e = vfind(tl, uid);
	if (e && e->off >= base_len && e->idx >= base_n) {
		off = e->off - base_len;
		idx = e->idx - base_n;
	} else {
		off = idx = 0;	/* unknown, or retention dropped the head past it */
	}
	pthread_mutex_unlock(&tl->vlock);
	if (off >= upto) {
		if (proven)
			*proven = off;
		return 0;
	}
	/* go on a little past @upto: the next reads of a follower find it done */
	target = flen - upto > VERIFY_CHUNK ? upto + VERIFY_CHUNK : flen;
	while (off < target) {
		ssize_t got = tasklog_read_recs(tl, uid, name, idx, recs, 256);
		size_t k = 0, span = 0;

		/*
		 * A bad record among the next ones may be past what the index
		 * has (a batch a failed write left, cut back later): only the
		 * one at @idx, which an event the index has needs, is damage.
		 */
		if (got == -EILSEQ)
			got = tasklog_read_recs(tl, uid, name, idx, recs, 1);
		if (got == -EILSEQ) {
			snprintf(why, n, "its sidecar record %" PRIu64 " does not check out",
				 base_n + idx + 1);
			rc = -EILSEQ;
			break;
		}
		if (got < 0) {
			rc = (int)got;
			break;
		}
		if (got == 0) {
			snprintf(why, n, "its sidecar ends at event %" PRIu64 ", before log byte %"
				 PRIu64 " the index has", base_n + idx, base_len + off);
			rc = -EUCLEAN;
			break;
		}
		/* the events of these records that a chunk holds (at least one) */
		while (k < (size_t)got && (k == 0 || span + recs[k].len <= VERIFY_CHUNK) &&
		       off + span < target) {
			if (recs[k].len == 0 || recs[k].len > flen - off - span) {
				snprintf(why, n, "its event %" PRIu64 " (log byte %" PRIu64 ") runs "
					 "past the %" PRIu64 " bytes the index has", base_n + idx + k + 1,
					 base_len + off + span, base_len + flen);
				rc = -EUCLEAN;
				break;
			}
			span += recs[k++].len;
		}
		if (rc)
			break;
		if (grow_bytes(&buf, &cap, span)) {
			rc = -ENOMEM;
			break;
		}
		got = tasklog_read(tl, uid, name, off, buf, span);
		if (got >= 0 && (size_t)got < span) {
			snprintf(why, n, "its log ends at byte %" PRIu64 ", before the %" PRIu64
				 " bytes the index has", base_len + off + got, base_len + flen);
			rc = -EUCLEAN;
			break;
		}
		if (got < 0) {
			rc = (int)got;
			break;
		}
		for (size_t i = 0, at = 0; i < k; at += recs[i++].len)
			if (tasklog_sum(buf + at, recs[i].len) != recs[i].sum) {
				snprintf(why, n, "its event %" PRIu64 " (log byte %" PRIu64 ", %" PRIu32
					 " bytes) is not what was written: its checksum does not "
					 "match (damaged on disk)", base_n + idx + i + 1,
					 base_len + off + at, recs[i].len);
				rc = -EBADMSG;
				break;
			}
		if (rc)
			break;
		off += span;
		idx += k;
		pthread_mutex_lock(&tl->vlock);
		e = vfind(tl, uid);
		if (!e || e->off < base_len + off)
			rc = vset(tl, uid, base_len + off, base_n + idx);
		pthread_mutex_unlock(&tl->vlock);
		if (rc)
			break;
	}
	free(buf);
	if (proven)
		*proven = off;
	return rc;
}

/* ---- a record of a sidecar open elsewhere ---- */

int tasklog_read_rec(int fd, uint64_t i, struct tasklog_rec *r, unsigned char raw[TASKLOG_REC])
{
	unsigned char rec[TASKLOG_REC];
	ssize_t n = io_pread_all(fd, rec, TASKLOG_REC, i * TASKLOG_REC);

	if (n < 0)
		return -errno;
	if (n < TASKLOG_REC)
		return -EAGAIN;
	if (raw)
		memcpy(raw, rec, TASKLOG_REC);
	return tasklog_decode(rec, r);
}
