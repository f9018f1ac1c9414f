/*
 * journal_replay.c - reading the journal back: records checked (magic,
 * length, lsn, checksum), the durable marks that prove a torn tail was
 * never acknowledged, damaged records and segments set aside with a copy
 * kept, the replay at open (journal_open, journal.c) and the offline scan
 * (journal_scan).  The format is at the top of journal.c.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>
#include "bytes.h"
#include "datadir.h"
#include "grow.h"
#include "io.h"
#include "journal.h"
#include "journal_i.h"
#include "log.h"

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int scan_dir(struct journal *j)
{
	struct dirent *de;
	DIR *d = opendir(j->dir);

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char *end;
		uint64_t first;
		size_t l = strlen(de->d_name);

		if (l != SEG_NAME_LEN || strcmp(de->d_name + 16, SEG_SUFFIX))
			continue;
		first = strtoull(de->d_name, &end, 16);
		if (end != de->d_name + 16)
			continue;
		if (journal_segs_add(j, first)) {
			closedir(d);
			return -ENOMEM;
		}
	}
	closedir(d);
	if (j->nsegs)
		qsort(j->segs, j->nsegs, sizeof(*j->segs), cmp_u64);
	return 0;
}

/*
 * Read the record at @off of segment @fd (@size bytes): 1 if it is whole
 * and its checksum is right (header in @hdr, payload in *@buf), 0 if not,
 * -errno if the read failed.
 */
static int rec_read(int fd, uint64_t off, uint64_t size, unsigned char hdr[REC_HDR],
		    unsigned char **buf, size_t *cap)
{
	XXH3_state_t xs;
	uint32_t len;
	ssize_t n;

	if (off + REC_HDR > size)
		return 0;
	n = io_pread_all(fd, hdr, REC_HDR, off);
	if (n < 0)
		return -errno;
	len = get_le32(hdr + 8);
	if (n < REC_HDR || get_le32(hdr) != REC_MAGIC || len > REC_MAX || hdr[4] == 0 ||
	    off + REC_HDR + len > size)
		return 0;
	if (grow_bytes(buf, cap, len))
		return -ENOMEM;
	n = io_pread_all(fd, *buf, len, off + REC_HDR);
	if (n < 0)
		return -errno;
	if ((size_t)n < len)
		return 0;
	XXH3_64bits_reset(&xs);
	XXH3_64bits_update(&xs, hdr, 24);
	XXH3_64bits_update(&xs, *buf, len);
	return XXH3_64bits_digest(&xs) == get_le64(hdr + 24);
}

/* The lsn known durable when the record with header @hdr was written (0: unknown). */
static uint64_t rec_durable(const unsigned char hdr[REC_HDR])
{
	uint64_t lsn = get_le64(hdr + 16), gap = get_le32(hdr + 12);

	return gap && gap <= lsn ? lsn - gap : 0;
}

/*
 * Find the first record at or after byte @from of segment @fd that checks
 * out and has an lsn >= @min_lsn (a resync after damage: every position
 * holding the record magic is tried).  1 with its offset in *@at (header
 * and payload read as by rec_read), 0 if there is none, or -errno.
 */
static int rec_find(int fd, uint64_t from, uint64_t size, uint64_t min_lsn, uint64_t *at,
		    unsigned char hdr[REC_HDR], unsigned char **buf, size_t *cap)
{
	static const unsigned char magic[4] = { 0x45, 0x56, 0x4a, 0x52 };	/* REC_MAGIC */
	unsigned char chunk[65536];
	uint64_t pos = from;

	while (pos + REC_HDR <= size) {
		ssize_t n = io_pread_all(fd, chunk, sizeof(chunk), pos);
		unsigned char *p, *end;

		if (n < 0)
			return -errno;
		if (n < 4)
			break;
		end = chunk + n;
		for (p = chunk; (p = memmem(p, end - p, magic, 4)); p++) {
			int rc = rec_read(fd, pos + (p - chunk), size, hdr, buf, cap);

			if (rc < 0)
				return rc;
			if (rc && get_le64(hdr + 16) >= min_lsn) {
				*at = pos + (p - chunk);
				return 1;
			}
		}
		pos += n - 3;	/* a magic cut by the chunk's end is found in the next */
	}
	return 0;
}

/* Does segment @first start with a header that checks out? */
static bool seg_header_ok(const struct journal *j, uint64_t first)
{
	unsigned char hdr[SEG_HDR];
	char path[DD_PATH_MAX];
	bool ok;
	int fd;

	if (journal_seg_path(j, first, path))
		return false;	/* as when it cannot be opened */
	fd = io->open(path, O_RDONLY, 0);
	if (fd < 0)
		return false;
	ok = io_pread_all(fd, hdr, SEG_HDR, 0) == SEG_HDR && !memcmp(hdr, SEG_MAGIC, 8) &&
	     get_le32(hdr + 8) == SEG_VERSION && get_le64(hdr + 24) == XXH64(hdr, 24, 0) &&
	     get_le64(hdr + 16) == first;
	io->close(fd);
	return ok;
}

/*
 * Was record @lsn durable before the record at byte @off of segment
 * @segs[@i] (or any later one) was written?  Yes if a record from there on
 * says so (its durable mark reaches @lsn), or if a later segment has a
 * good header: a segment is synced before the next one is created.  A
 * torn write (a crash before the fsync that covers it) never has such a
 * witness, so damage with one is not a torn tail.
 */
static int proven_durable(const struct journal *j, size_t i, int fd, uint64_t off,
			  uint64_t size, uint64_t lsn, unsigned char **buf, size_t *cap)
{
	unsigned char hdr[REC_HDR];
	uint64_t at;
	int rc;

	for (size_t k = i + 1; k < j->nsegs; k++)
		if (seg_header_ok(j, j->segs[k]))
			return 1;
	while ((rc = rec_find(fd, off, size, lsn, &at, hdr, buf, cap)) == 1) {
		if (rec_durable(hdr) >= lsn)
			return 1;
		off = at + REC_HDR + get_le32(hdr + 8);
	}
	return rc;
}

/* What replay found in one segment. */
struct seg_res {
	uint64_t size;
	uint64_t stop_off;	/* where the records replay may keep end */
	uint64_t records;	/* records that checked out */
	uint64_t needed;	/* records up to this one are applied: no loss */
	uint64_t lost;		/* records set aside as corrupt (lsns skipped) */
	uint64_t lost_first, lost_last;
	bool bad_header;	/* set aside if no record in it checks out */
	bool damaged;		/* corrupt bytes before records that check out */
	bool torn;		/* bad bytes at stop_off: cut them and what follows */
};

/* Lsns @from..@to are skipped; those at or below res->needed were applied already. */
static void res_lost(struct seg_res *res, uint64_t from, uint64_t to)
{
	if (from <= res->needed)
		from = res->needed + 1;
	if (to < from)
		return;
	if (!res->lost)
		res->lost_first = from;
	res->lost_last = to;
	res->lost += to - from + 1;
}

/*
 * Replay segment @j->segs[@i].  Damage (a bad header, a corrupt record)
 * followed by records that check out is skipped when the damaged records
 * are proven durable (lsn <= @durable, the index has applied them, or
 * proven_durable): the lsns skipped are counted as lost and replay goes on
 * with the next good record (lsns at or below @needed were applied: their
 * loss costs nothing and is not counted).  Anything else that fails ends
 * the segment's records: a torn tail (*@res says where).  Returns 0, or a negative errno
 * / callback error (a read error is not damage: the journal stays as it is).
 */
static int seg_replay(struct journal *j, size_t i, uint64_t from_lsn, uint64_t durable,
		      uint64_t needed, uint64_t *expect, journal_replay_cb cb, void *arg,
		      struct seg_res *res)
{
	uint64_t first = j->segs[i];
	unsigned char hdr[REC_HDR];
	unsigned char *buf = NULL;
	size_t cap = 0;
	char path[DD_PATH_MAX];
	struct stat st;
	uint64_t off, at;
	ssize_t n;
	int fd, rc = 0;

	memset(res, 0, sizeof(*res));
	res->needed = needed;
	rc = journal_seg_path(j, first, path);
	if (rc)
		return rc;
	fd = io->open(path, O_RDONLY, 0);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st)) {
		rc = -errno;
		goto out;
	}
	res->size = st.st_size;
	res->stop_off = SEG_HDR;
	/*
	 * What is replayed must be durable before anything is applied from
	 * it: the callback may apply records before the segment's end (a
	 * replay larger than the pending limit), and an index that applied
	 * records a power loss then took would be ahead of the journal.
	 */
	if (io->fdatasync(fd)) {
		rc = -errno;
		goto out;
	}
	off = 0;
	n = io_pread_all(fd, hdr, SEG_HDR, off);
	if (n < 0)
		goto read_error;
	if (n != SEG_HDR || memcmp(hdr, SEG_MAGIC, 8) ||
	    get_le32(hdr + 8) != SEG_VERSION || get_le64(hdr + 24) != XXH64(hdr, 24, 0) ||
	    get_le64(hdr + 16) != first || (*expect && first < *expect)) {
		/* its records may still be whole: look for them */
		res->bad_header = true;
		res->stop_off = 0;
	}
	if (*expect && first > *expect && first > from_lsn + 1) {
		uint64_t lo = *expect > from_lsn ? *expect : from_lsn + 1;

		evl_log(LOG_ERR, "journal: records %" PRIu64 "-%" PRIu64 " missing before %s",
			lo, first - 1, path);
		res_lost(res, lo, first - 1);
	}
	if (!*expect || first > *expect)
		*expect = first;
	for (off = SEG_HDR;;) {
		uint64_t lsn, lo;

		rc = rec_read(fd, off, res->size, hdr, &buf, &cap);
		if (rc < 0)
			goto out;
		lsn = get_le64(hdr + 16);
		if (rc == 0 || lsn != *expect) {
			/* the records after this point, if any check out */
			if (off >= res->size)
				break;
			/* from @off itself: a whole record with an lsn past the one expected counts */
			rc = rec_find(fd, off, res->size, *expect, &at, hdr, &buf, &cap);
			if (rc < 0)
				goto out;
			if (rc == 0) {
				res->torn = true;	/* the caller decides what it is */
				break;
			}
			lsn = get_le64(hdr + 16);
			lo = *expect;
			if (lo > durable) {
				rc = proven_durable(j, i, fd, at, res->size, lo, &buf, &cap);
				if (rc < 0)
					goto out;
				if (!rc) {
					evl_log(LOG_WARNING, "journal segment %s: bad record at byte %"
						PRIu64 " that was never known durable, and records"
						" after it: a torn tail", path, off);
					res->torn = true;
					break;
				}
			}
			{
				uint64_t lost = res->lost;

				res_lost(res, lo, lsn - 1);
				lost = res->lost - lost;
				evl_log(LOG_ERR, "journal segment %s: %" PRIu64 " corrupt bytes at byte %"
					PRIu64 "%s; replay goes on with record %" PRIu64, path,
					at - off, off, lost ? "" : " (no unapplied record lost)", lsn);
				if (lost)
					evl_log(LOG_ERR, "journal: %" PRIu64 " records (lsns %" PRIu64
						"-%" PRIu64 ") are lost: corrupt in %s", lost,
						lsn - lost, lsn - 1, path);
			}
			res->damaged = true;
			*expect = lsn;
			rc = rec_read(fd, at, res->size, hdr, &buf, &cap);
			if (rc < 0)
				goto out;
			off = at;
		}
		if (lsn > from_lsn && cb) {
			rc = cb(arg, lsn, hdr[4], buf, get_le32(hdr + 8));
			if (rc) {
				if (rc > 0)
					rc = -EIO;
				goto out;
			}
		}
		res->records++;
		*expect = lsn + 1;
		off += REC_HDR + get_le32(hdr + 8);
		res->stop_off = off;
	}
	rc = 0;
	if (res->bad_header && res->records)
		res->damaged = true;
	if (res->bad_header && res->records)
		evl_log(LOG_ERR, "journal segment %s: bad header, but %" PRIu64 " records in it"
			" check out and are replayed", path, res->records);
	goto out;
read_error:
	rc = -errno;
	evl_log(LOG_ERR, "journal segment %s: cannot read at byte %" PRIu64 ": %s", path, off,
		strerror(errno));
out:
	free(buf);
	io->close(fd);
	return rc;
}

static void dmg_seg(struct journal_damage *d, uint64_t seg)
{
	if (!d->segments++)
		d->first_segment = seg;
}

/* Add what replay of segment @seg found to @d. */
static void dmg_add(struct journal_damage *d, const struct seg_res *res, uint64_t seg)
{
	if (res->lost) {
		if (!d->lost || res->lost_first < d->first_lsn)
			d->first_lsn = res->lost_first;
		if (res->lost_last > d->last_lsn)
			d->last_lsn = res->lost_last;
		d->lost += res->lost;
	}
	if (res->damaged)
		dmg_seg(d, seg);
}

/*
 * Keep a copy of damaged segment @first as <name>.corrupt (what the
 * records set aside held), synced.  The segment itself stays: its good
 * records are the only copy until a checkpoint trims it.
 */
static int seg_keep_copy(struct journal *j, uint64_t first)
{
	char path[DD_PATH_MAX], bad[DD_PATH_MAX];
	loff_t in_off = 0, out_off = 0;
	int in, out, rc = 0;
	struct stat st;

	if (journal_seg_path(j, first, path) || dd_suffix(bad, path, DD_CORRUPT))
		return -ENAMETOOLONG;
	in = io->open(path, O_RDONLY, 0);
	if (in < 0)
		return -errno;
	out = io->open(bad, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (out < 0) {
		rc = -errno;
		io->close(in);
		return rc;
	}
	if (fstat(in, &st))
		rc = -errno;
	while (!rc && in_off < st.st_size) {
		ssize_t n = io->copy_range(in, &in_off, out, &out_off, st.st_size - in_off);

		if (n < 0)
			rc = -errno;
		else if (n == 0)
			rc = -EIO;
	}
	if (!rc && io->fdatasync(out))
		rc = -errno;
	io->close(in);
	io->close(out);
	if (!rc && io_fsync_dir(j->dir))
		rc = -errno;
	return rc;
}

int journal_scan(const char *dir, uint64_t durable, journal_replay_cb cb, void *arg,
		 struct journal_scan *out)
{
	struct journal j = { .dir = (char *)dir };
	uint64_t expect = 0;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	rc = scan_dir(&j);
	if (rc == -ENOENT)
		return 0;
	out->segments = j.nsegs;
	for (size_t i = 0; i < j.nsegs && !rc; i++) {
		struct seg_res res;
		bool later = false;

		rc = seg_replay(&j, i, 0, durable, durable, &expect, cb, arg, &res);
		if (rc)
			break;
		out->records += res.records;
		if (expect) {
			if (!out->first_lsn)
				out->first_lsn = j.segs[i] > 0 ? j.segs[i] : 1;
			out->last_lsn = expect - 1;
		}
		dmg_add(&out->damage, &res, j.segs[i]);
		for (size_t k = i + 1; k < j.nsegs && !later && (res.torn || res.bad_header); k++)
			later = seg_header_ok(&j, j.segs[k]);
		if (res.bad_header && !res.records) {
			if (later) {
				dmg_seg(&out->damage, j.segs[i]);
				continue;
			}
		} else if (!res.torn) {
			continue;
		} else if (expect <= durable || later) {
			if (!res.damaged)
				dmg_seg(&out->damage, j.segs[i]);
			if (later)
				continue;
		}
		/* a torn tail: this and what follows is cut at the next open */
		out->bad_bytes = res.size - res.stop_off;
		out->bad_segment = j.segs[i];
		out->bad_off = res.stop_off;
		for (size_t k = i + 1; k < j.nsegs; k++) {
			char path[DD_PATH_MAX];
			struct stat sb;

			if (!journal_seg_path(&j, j.segs[k], path) && !stat(path, &sb))
				out->bad_bytes += sb.st_size;
			out->bad_later++;
		}
		break;
	}
	free(j.segs);
	return rc;
}

int journal_open(const char *dir, uint64_t from_lsn, const struct journal_opts *opts,
		 journal_replay_cb cb, void *arg, struct journal **out)
{
	struct journal *j;
	uint64_t expect = 0, last = from_lsn, durable, next;
	bool *gone = NULL, clean = true;
	size_t i, keep;
	int rc;

	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->fd = -1;
	j->opts = *opts;
	if (!j->opts.segment_bytes)
		j->opts.segment_bytes = 64u << 20;
	if (!j->opts.commit_ms)
		j->opts.commit_ms = 10;
	j->dir = strdup(dir);
	if (!j->dir) {
		rc = -ENOMEM;
		goto fail;
	}
	if (io_mkdir_durable(dir, 0755)) {
		rc = -errno;
		goto fail;
	}
	rc = scan_dir(j);
	if (rc)
		goto fail;

	/* Skip whole segments that end at or before from_lsn. */
	for (i = 0; i + 1 < j->nsegs && j->segs[i + 1] <= from_lsn + 1; i++)
		;
	durable = from_lsn > opts->min_lsn ? from_lsn : opts->min_lsn;
	gone = calloc(j->nsegs + 1, sizeof(*gone));
	if (!gone) {
		rc = -ENOMEM;
		goto fail;
	}
	keep = j->nsegs;
	for (; i < j->nsegs; i++) {
		struct seg_res res;
		char path[DD_PATH_MAX], bad[DD_PATH_MAX];
		bool later = false, drop, first = false;
		int fd;

		rc = seg_replay(j, i, from_lsn, durable, from_lsn, &expect, cb, arg, &res);
		if (rc < 0)
			goto fail;
		j->bytes += res.size;
		if (expect)
			last = expect - 1;
		dmg_add(&j->dmg, &res, j->segs[i]);
		clean &= !res.torn && !res.bad_header && !res.damaged && !res.lost;
		for (size_t k = i + 1; k < j->nsegs && !later && (res.torn || res.bad_header); k++)
			later = seg_header_ok(j, j->segs[k]);
		if (journal_seg_path(j, j->segs[i], path) || dd_suffix(bad, path, DD_CORRUPT)) {
			rc = -ENAMETOOLONG;
			goto fail;
		}
		drop = res.bad_header && !res.records;
		if (drop) {
			/* nothing in it checks out: set it aside */
			evl_log(later ? LOG_ERR : LOG_WARNING, "journal segment %s: bad header and"
				" no record that checks out: kept as %s", path, bad);
			if (later) {
				if (io->rename(path, bad)) {
					rc = -errno;
					goto fail;
				}
				j->bytes -= res.size;
				gone[i] = true;
				dmg_seg(&j->dmg, j->segs[i]);
				continue;	/* what it held is counted as missing at the next */
			}
		} else {
			bool proven = res.torn && (expect <= durable || later);

			if (res.damaged || proven) {
				int err = seg_keep_copy(j, j->segs[i]);

				if (!res.damaged)
					dmg_seg(&j->dmg, j->segs[i]);
				if (err)
					evl_log(LOG_ERR, "journal segment %s: cannot keep a copy as %s: %s",
						path, bad, strerror(-err));
				else
					evl_log(LOG_ERR, "journal segment %s is damaged: a copy is kept"
						" as %s", path, bad);
			}
			if (!res.torn || (proven && later)) {
				if (res.torn)
					evl_log(LOG_ERR, "journal segment %s: corrupt from byte %" PRIu64
						" to its end; replay goes on with the next segment",
						path, res.stop_off);
				continue;
			}
			first = !expect || expect - 1 < durable;	/* what the cut leaves */
		}
		/* the end of the journal: what follows is set aside, this one cut or set aside */
		for (size_t k = i + 1; k < j->nsegs; k++) {
			char p2[DD_PATH_MAX], b2[DD_PATH_MAX];

			if (journal_seg_path(j, j->segs[k], p2) || dd_suffix(b2, p2, DD_CORRUPT)) {
				rc = -ENAMETOOLONG;
				goto fail;
			}
			evl_log(LOG_ERR, "journal segment %s follows a torn record: kept as %s",
				p2, b2);
			if (io->rename(p2, b2)) {
				rc = -errno;
				goto fail;
			}
		}
		if (j->nsegs > i + 1 && io_fsync_dir(dir)) {
			rc = -errno;
			goto fail;
		}
		/*
		 * A segment set aside, or damage at or before what the index
		 * applied cut: the journal could end before what was applied.
		 * Its successor first (a crash next finds this segment followed
		 * by a good one: damage, kept, as here), so that no crash or full
		 * disk leaves a journal that seems to end there (check_end: a
		 * damaged index).  A segment set aside whose name the successor
		 * takes is made anew in place (nothing in it checked out).
		 */
		next = (last > durable ? last : durable) + 1;
		if (drop && next == j->segs[i]) {
			/* no more than a header: a crash's leftover, no copy (over an earlier one) */
			int err = res.size > SEG_HDR ? seg_keep_copy(j, j->segs[i]) : 0;

			if (err)
				evl_log(LOG_ERR, "journal segment %s: cannot keep a copy as %s: %s",
					path, bad, strerror(-err));
		} else if (drop || first) {
			rc = journal_seg_create(j, next, &j->fd);
			if (rc)
				goto fail;
		}
		if (drop) {
			if (next == j->segs[i]) {
				rc = journal_seg_create(j, next, &j->fd);	/* over it */
				if (rc)
					goto fail;
			} else if (io->rename(path, bad)) {
				rc = -errno;
				goto fail;
			}
			j->bytes -= res.size;
			gone[i] = true;
			keep = i;
		} else {
			/* a torn tail: cut it */
			if (res.stop_off < res.size)
				evl_log(LOG_WARNING, "journal segment %s: torn or corrupt record at"
					" byte %" PRIu64 " of %" PRIu64 ", cut there", path,
					res.stop_off, res.size);
			fd = io->open(path, O_RDWR, 0);
			if (fd < 0 || io->ftruncate(fd, res.stop_off) || io->fdatasync(fd)) {
				rc = -errno;
				if (fd >= 0)
					io->close(fd);
				goto fail;
			}
			io->close(fd);
			j->bytes -= res.size - res.stop_off;
			keep = i + 1;
		}
		rc = 0;
		break;
	}
	if (opts->check_end && clean && j->nsegs && last < durable) {
		evl_log(LOG_ERR, "journal %s ends at record %" PRIu64 ", but the index says records"
			" up to %" PRIu64 " are applied: its position is wrong (a damaged index)",
			dir, last, durable);
		rc = -EUCLEAN;
		goto fail;
	}
	{
		size_t n = 0;

		for (size_t k = 0; k < keep; k++)
			if (!gone[k])
				j->segs[n++] = j->segs[k];
		keep = n;
	}
	free(gone);
	gone = NULL;
	j->nsegs = keep;
	if (io_fsync_dir(dir)) {
		rc = -errno;
		goto fail;
	}

	/* Everything replayed is on disk now; appends go to a fresh segment. */
	if (last < from_lsn)
		last = from_lsn;
	if (last < j->opts.min_lsn)
		last = j->opts.min_lsn;
	j->next_lsn = last + 1;
	j->written_lsn = j->durable_lsn = last;
	if (j->nsegs && j->segs[j->nsegs - 1] == j->next_lsn) {
		/* an empty segment starting here already exists: reuse its name */
		j->nsegs--;
		j->bytes -= SEG_HDR;
	}
	/* made above, before a cut (the same name: last is what the cut left) */
	if (j->fd < 0)
		rc = journal_seg_create(j, j->next_lsn, &j->fd);
	if (rc)
		goto fail;
	rc = journal_segs_add(j, j->next_lsn);
	if (rc)
		goto fail;
	j->seg_first = j->next_lsn;
	j->off = SEG_HDR;
	j->bytes += SEG_HDR;

	pthread_mutex_init(&j->lock, NULL);
	pthread_cond_init(&j->durable_cv, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&j->sync_cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	rc = -pthread_create(&j->syncer, NULL, journal_syncer_main, j);
	if (rc) {
		pthread_mutex_destroy(&j->lock);
		pthread_cond_destroy(&j->durable_cv);
		pthread_cond_destroy(&j->sync_cv);
		goto fail;
	}
	*out = j;
	return 0;
fail:
	free(gone);
	if (j->fd >= 0)
		io->close(j->fd);
	free(j->segs);
	free(j->dir);
	free(j);
	return rc;
}

