/*
 * journal.c - the write-ahead journal.
 *
 * ON-DISK FORMAT (version 1; all integers little-endian)
 *
 * DATA_DIR/journal/ holds segment files named %016llx.jnl after the lsn of
 * their first record.  A segment is a 32-byte header followed by records:
 *
 *   segment header            record header (then `len` payload bytes)
 *   0  8  magic "EVLJRNL\0"   0  4  magic 0x524a5645 ("EVJR")
 *   8  4  version = 1         4  1  type (store-defined, 1..255)
 *   12 4  header size = 32    5  3  zero
 *   16 8  first lsn           8  4  len: payload bytes, at most 128 MiB
 *   24 8  XXH64 of bytes 0-23 12 4  durable mark: lsn minus the last lsn
 *                                   known durable when it was written
 *                                   (capped; 0 = not recorded)
 *                             16 8  lsn: previous record's lsn + 1
 *                             24 8  XXH3-64 of header bytes 0-23 + payload
 *
 * journal_seg_header and journal_rec_header (journal_i.h) write the two
 * headers, for the appends here and for the test tools that build segments.
 *
 * REPLAY RULE.  Segments are read in name order.  A record is accepted if
 * its magic, length, lsn (exactly one past the previous record's, or the
 * segment's first lsn) and checksum are right and all its bytes are there.
 * When one fails, replay looks for the next record that checks out (any
 * byte holding the record magic, lsn not below the one expected; in this
 * segment or, past its end, in the next) and asks whether the bad bytes
 * were ever known durable:
 *   - yes (the index applied them, a record after them carries a durable
 *     mark at or past them, or a later segment exists: a segment is
 *     synced before the next is created): it is damage, not a crash.  The
 *     lsns skipped are lost, counted and named (journal_damage), the
 *     segment is copied to *.corrupt and kept in place, and replay goes on
 *     with the next good record.
 *   - no: it is a torn tail (a crash before the fsync that covers it;
 *     a power loss may keep later pages and lose earlier ones, so records
 *     after it that check out were never durable either).  journal_open
 *     cuts the file there and renames later segments to *.corrupt, so no
 *     torn bytes are ever re-read as records.
 * A segment whose header is bad but whose records check out is replayed
 * (its header was synced before any record was written); one with no
 * record that checks out is renamed *.corrupt.
 *
 * GROUP COMMIT.  Appends write() under j->lock; a syncer thread fdatasyncs
 * the current segment when asked (sync mode, barriers) or commit_ms after
 * the first unsynced record (group mode), outside the lock, so appends go
 * on during an fsync and every waiter covered by it wakes together.
 *
 * FAILURES.  A failed or short write is cut back with ftruncate to the
 * record's start and its errno returned: nothing partial remains and later
 * appends may succeed (ENOSPC clears when space returns).  If the cut fails,
 * or an fsync fails, the kernel may have dropped pages we cannot rewrite:
 * j->error becomes EIO for good and every append and wait reports it.
 *
 * Lock order: store locks -> j->lock.  j->lock is never held across fsync
 * except at segment rotation (rare: the old segment must be durable before
 * it is closed).
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


static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

int journal_seg_path(const struct journal *j, uint64_t first, char buf[static DD_PATH_MAX])
{
	char name[SEG_NAME_LEN + 1];

	snprintf(name, sizeof(name), "%016" PRIx64 SEG_SUFFIX, first);
	return dd_join(buf, j->dir, name);
}

int journal_segs_add(struct journal *j, uint64_t first)
{
	if (GROW(j->segs, j->segs_cap, j->nsegs + 1))
		return -ENOMEM;
	j->segs[j->nsegs++] = first;
	return 0;
}

void journal_seg_header(unsigned char hdr[SEG_HDR], uint64_t first)
{
	memset(hdr, 0, SEG_HDR);
	memcpy(hdr, SEG_MAGIC, 8);
	put_le32(hdr + 8, SEG_VERSION);
	put_le32(hdr + 12, SEG_HDR);
	put_le64(hdr + 16, first);
	put_le64(hdr + 24, XXH64(hdr, 24, 0));
}

void journal_rec_header(unsigned char hdr[REC_HDR], unsigned type, uint32_t len,
			uint64_t lsn, uint32_t mark, const struct iovec *iov, int cnt)
{
	XXH3_state_t xs;

	memset(hdr, 0, REC_HDR);
	put_le32(hdr, REC_MAGIC);
	hdr[4] = type;
	put_le32(hdr + 8, len);
	put_le32(hdr + 12, mark);
	put_le64(hdr + 16, lsn);
	XXH3_64bits_reset(&xs);
	XXH3_64bits_update(&xs, hdr, 24);
	for (int i = 0; i < cnt; i++)
		XXH3_64bits_update(&xs, iov[i].iov_base, iov[i].iov_len);
	put_le64(hdr + 24, XXH3_64bits_digest(&xs));
}

/*
 * Create segment @first, write and sync its header, sync the directory.
 * A failure removes the file only if this call made it: one made anew in
 * place (journal_open) still marks where the journal ends.
 */
int journal_seg_create(struct journal *j, uint64_t first, int *fdp)
{
	unsigned char hdr[SEG_HDR];
	char path[DD_PATH_MAX];
	bool made = true;
	int fd, rc;

	rc = journal_seg_path(j, first, path);
	if (rc)
		return rc;
	fd = io->open(path, O_RDWR | O_CREAT | O_EXCL, 0644);
	if (fd < 0 && errno == EEXIST) {
		made = false;
		fd = io->open(path, O_RDWR | O_TRUNC, 0644);
	}
	if (fd < 0)
		return -errno;
	journal_seg_header(hdr, first);
	if (io_pwrite_all(fd, hdr, SEG_HDR, 0) || io->fdatasync(fd) || io_fsync_dir(j->dir)) {
		rc = -errno;
		io->close(fd);
		if (made)
			io->unlink(path);
		return rc;
	}
	*fdp = fd;
	return 0;
}


/* Called with j->lock held: make the syncer sync now. */
static void request_sync(struct journal *j)
{
	j->sync_req = true;
	pthread_cond_signal(&j->sync_cv);
}

void *journal_syncer_main(void *arg)
{
	struct journal *j = arg;

	pthread_mutex_lock(&j->lock);
	while (!j->stop || (j->written_lsn > j->durable_lsn && !j->error)) {
		uint64_t target, deadline;
		int fd, rc;

		if (j->error || j->written_lsn <= j->durable_lsn) {
			j->sync_req = false;
			if (j->stop)
				break;
			pthread_cond_wait(&j->sync_cv, &j->lock);
			continue;
		}
		deadline = j->first_unsynced_ns + j->opts.commit_ms * 1000000ull;
		if (!j->sync_req && !j->stop && now_ns() < deadline) {
			struct timespec ts = {
				.tv_sec = deadline / 1000000000ull,
				.tv_nsec = deadline % 1000000000ull,
			};

			pthread_cond_timedwait(&j->sync_cv, &j->lock, &ts);
			continue;
		}
		target = j->written_lsn;
		fd = j->fd;
		j->sync_req = false;
		j->syncing = true;
		pthread_mutex_unlock(&j->lock);
		rc = io->fdatasync(fd);
		pthread_mutex_lock(&j->lock);
		j->syncing = false;
		j->fsyncs++;
		if (rc) {
			j->error = EIO;
			evl_log(LOG_CRIT, "journal fsync failed: %s; refusing writes until remount",
				strerror(errno));
		} else if (target > j->durable_lsn) {
			j->durable_lsn = target;
			if (j->written_lsn > target)
				j->first_unsynced_ns = now_ns();
		}
		pthread_cond_broadcast(&j->durable_cv);
		if (!rc && j->opts.on_durable) {
			pthread_mutex_unlock(&j->lock);
			j->opts.on_durable(j->opts.arg, target);
			pthread_mutex_lock(&j->lock);
		}
	}
	pthread_mutex_unlock(&j->lock);
	return NULL;
}

/* With j->lock held: close the current segment (synced) and start another. */
static int rotate(struct journal *j)
{
	int fd, rc;

	while (j->syncing)
		pthread_cond_wait(&j->durable_cv, &j->lock);
	if (j->error)
		return -j->error;
	if (j->written_lsn > j->durable_lsn) {
		if (io->fdatasync(j->fd)) {
			j->error = EIO;
			evl_log(LOG_CRIT, "journal fsync failed: %s; refusing writes until remount",
				strerror(errno));
			pthread_cond_broadcast(&j->durable_cv);
			return -EIO;
		}
		j->fsyncs++;
		j->durable_lsn = j->written_lsn;
		pthread_cond_broadcast(&j->durable_cv);
	}
	rc = journal_seg_create(j, j->next_lsn, &fd);
	if (rc)
		return rc;
	rc = journal_segs_add(j, j->next_lsn);
	if (rc) {
		io->close(fd);
		return rc;
	}
	io->close(j->fd);
	j->fd = fd;
	j->seg_first = j->next_lsn;
	j->off = SEG_HDR;
	j->bytes += SEG_HDR;
	return 0;
}

int journal_append(struct journal *j, unsigned type, const struct iovec *iov,
		   int cnt, uint64_t *lsn_out)
{
	unsigned char hdr[REC_HDR];
	struct iovec v[cnt + 1];
	uint64_t len = 0, lsn;
	int rc = 0, i;

	for (i = 0; i < cnt; i++)
		len += iov[i].iov_len;
	if (len > REC_MAX || type == 0 || type > 255)
		return -EFBIG;

	pthread_mutex_lock(&j->lock);
	if (j->error) {
		rc = -j->error;
		goto out;
	}
	if (j->off >= j->opts.segment_bytes && j->off > SEG_HDR) {
		rc = rotate(j);
		if (rc)
			goto out;
	}
	lsn = j->next_lsn;
	/* the durable mark: how far behind this record the last fsync was */
	journal_rec_header(hdr, type, len, lsn,
			   lsn - j->durable_lsn > UINT32_MAX ? UINT32_MAX : lsn - j->durable_lsn,
			   iov, cnt);

	v[0].iov_base = hdr;
	v[0].iov_len = REC_HDR;
	memcpy(v + 1, iov, cnt * sizeof(*iov));
	if (io_pwritev_all(j->fd, v, cnt + 1, j->off)) {
		rc = -errno;
		if (io->ftruncate(j->fd, j->off)) {
			j->error = EIO;
			evl_log(LOG_CRIT, "journal: cannot cut back a failed write (%s); "
				"refusing writes until remount", strerror(errno));
			pthread_cond_broadcast(&j->durable_cv);
			rc = -EIO;
		}
		goto out;
	}
	j->off += REC_HDR + len;
	j->bytes += REC_HDR + len;
	j->next_lsn++;
	if (j->written_lsn == j->durable_lsn) {
		j->first_unsynced_ns = now_ns();
		pthread_cond_signal(&j->sync_cv);
	}
	j->written_lsn = lsn;
	*lsn_out = lsn;
out:
	pthread_mutex_unlock(&j->lock);
	return rc;
}

int journal_wait(struct journal *j, uint64_t lsn)
{
	int rc = 0;

	pthread_mutex_lock(&j->lock);
	while (j->durable_lsn < lsn && !j->error) {
		request_sync(j);
		pthread_cond_wait(&j->durable_cv, &j->lock);
	}
	if (j->durable_lsn < lsn)
		rc = -j->error;
	pthread_mutex_unlock(&j->lock);
	return rc;
}

int journal_barrier(struct journal *j)
{
	uint64_t lsn;

	pthread_mutex_lock(&j->lock);
	lsn = j->written_lsn;
	pthread_mutex_unlock(&j->lock);
	return journal_wait(j, lsn);
}

void journal_fail(struct journal *j)
{
	pthread_mutex_lock(&j->lock);
	if (!j->error) {
		j->error = EIO;
		pthread_cond_broadcast(&j->durable_cv);
	}
	pthread_mutex_unlock(&j->lock);
}

int journal_trim(struct journal *j, uint64_t upto)
{
	char path[DD_PATH_MAX];
	size_t i, drop = 0;
	int rc = 0;

	pthread_mutex_lock(&j->lock);
	/* after a failed fsync (here or elsewhere) the segments are the only sure copy */
	if (j->error) {
		rc = -j->error;
		goto out;
	}
	/* the current segment can go too once all of it is applied */
	if (j->off > SEG_HDR && j->written_lsn <= upto) {
		rc = rotate(j);
		if (rc)
			goto out;
	}
	/* segment i ends where segment i + 1 begins */
	for (i = 0; i + 1 < j->nsegs && j->segs[i + 1] <= upto + 1; i++) {
		struct stat st;

		rc = journal_seg_path(j, j->segs[i], path);
		if (rc)
			break;
		if (stat(path, &st) == 0)
			j->bytes -= st.st_size;
		if (io->unlink(path) && errno != ENOENT) {
			rc = -errno;
			break;
		}
		drop++;
	}
	memmove(j->segs, j->segs + drop, (j->nsegs - drop) * sizeof(*j->segs));
	j->nsegs -= drop;
	if (drop && io_fsync_dir(j->dir))
		rc = -errno;
out:
	pthread_mutex_unlock(&j->lock);
	return rc;
}

void journal_get_stats(struct journal *j, struct journal_stats *st)
{
	pthread_mutex_lock(&j->lock);
	st->written_lsn = j->written_lsn;
	st->durable_lsn = j->durable_lsn;
	st->bytes = j->bytes;
	st->fsyncs = j->fsyncs;
	st->error = j->error;
	st->damage = j->dmg;
	pthread_mutex_unlock(&j->lock);
}

int journal_close(struct journal *j)
{
	int rc;

	if (!j)
		return 0;
	pthread_mutex_lock(&j->lock);
	j->stop = true;
	pthread_cond_signal(&j->sync_cv);
	pthread_mutex_unlock(&j->lock);
	pthread_join(j->syncer, NULL);
	rc = -j->error;
	io->close(j->fd);
	pthread_mutex_destroy(&j->lock);
	pthread_cond_destroy(&j->durable_cv);
	pthread_cond_destroy(&j->sync_cv);
	free(j->segs);
	free(j->dir);
	free(j);
	return rc;
}
