/*
 * fuzz_journal.c - libFuzzer target: recovery from arbitrary journal bytes.
 *
 * Each input becomes the journal of an empty store, which is then checked
 * read-only (journal_scan, as fsck does) and opened, which replays and
 * applies it.  Input byte 0 is the mode:
 *   bit 0 clear: the rest is one segment file, as is.  This reaches the
 *     journal's own checks: header, magic, lengths, lsns, checksums.
 *   bit 0 set: the rest is records, each [type:1][len:2 LE][payload]; they
 *     are framed with a valid segment header, lsns from 1 and right
 *     checksums, so that the store's decoding and apply see any payload.
 *     Bits 1-7 cut that many bytes off the end (a torn tail).
 * Checked: nothing crashes, leaks or hangs; results are 0 or -errno; the
 * scan accepts no more records than were framed; and a store that opens
 * closes with 0, after which evl_fsck finds nothing wrong in it: whatever
 * the journal held, what recovery made of it is consistent.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "datadir.h"
#include "evlog.h"
#include "journal.h"
#include "journal_i.h"
#include "log.h"
#include "store.h"

#define check(c) do { if (!(c)) { fprintf(stderr, "fuzz_journal: %s:%d: %s\n", \
	__FILE__, __LINE__, #c); abort(); } } while (0)

static char store[4096], jdir[4200], seg[4300];

/* The store's log: silent, unless EVL_FUZZ_LOG is set (to replay a failing input). */
static void quiet(int prio, const char *msg)
{
	if (getenv("EVL_FUZZ_LOG"))
		fprintf(stderr, "evlogfs: %s\n", msg);
}

static char top[4096];

static void cleanup(void)
{
	store_rmrf(top);
}

static void setup(void)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	char tmpl[4096];

	snprintf(tmpl, sizeof(tmpl), "%s/evl-fuzz-journal-XXXXXX", base);
	check(mkdtemp(tmpl));
	snprintf(top, sizeof(top), "%s", tmpl);
	atexit(cleanup);
	snprintf(store, sizeof(store), "%s/store", tmpl);
	snprintf(jdir, sizeof(jdir), "%s/journal", store);
	snprintf(seg, sizeof(seg), "%s/%016llx.jnl", jdir, 1ull);
	evl_log_set(quiet, LOG_DEBUG);
}

/*
 * Frame the records of @data as a segment starting at lsn 1, with the
 * journal's own encoders (no durable marks).  Returns its size; *@n records.
 */
static size_t frame(const uint8_t *data, size_t size, unsigned char *out, uint64_t *n)
{
	size_t o = JOURNAL_SEG_HDR;

	journal_seg_header(out, 1);
	*n = 0;
	for (size_t pos = 0; pos + 3 <= size;) {
		unsigned type = data[pos] ? data[pos] : 1;
		size_t len = data[pos + 1] | (size_t)data[pos + 2] << 8;
		struct iovec iov;

		pos += 3;
		if (len > size - pos)
			len = size - pos;
		iov.iov_base = (void *)(data + pos);
		iov.iov_len = len;
		journal_rec_header(out + o, type, len, ++*n, 0, &iov, 1);
		memcpy(out + o + JOURNAL_REC_HDR, data + pos, len);
		o += JOURNAL_REC_HDR + len;
		pos += len;
	}
	return o;
}

static void finding(void *arg, char level, const char *line)
{
	fprintf(stderr, "fuzz_journal: fsck: %c %s\n", level, line);
}

static int count(void *arg, uint64_t lsn, unsigned type, const void *payload, size_t len)
{
	(*(uint64_t *)arg)++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct evl_options o;
	struct evl_store *st;
	struct journal_scan scan;
	struct evl_check_result cr;
	struct evl_check_opts co = { .report = finding };
	unsigned char *buf;
	size_t len;
	uint64_t framed = UINT64_MAX, seen = 0;
	int fd, rc;

	if (!store[0])
		setup();
	if (size < 1)
		return 0;
	check(store_rmrf(store) == 0);
	check(mkdir(store, 0755) == 0 && mkdir(jdir, 0755) == 0);
	/* a record header per 3 input bytes at most, plus the segment header */
	buf = malloc(JOURNAL_SEG_HDR + size / 3 * JOURNAL_REC_HDR + size);
	check(buf);
	if (data[0] & 1) {
		len = frame(data + 1, size - 1, buf, &framed);
		len -= (data[0] >> 1) < len ? data[0] >> 1 : len;
	} else {
		len = size - 1;
		memcpy(buf, data + 1, len);
	}
	fd = open(seg, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	check(fd >= 0 && write(fd, buf, len) == (ssize_t)len && close(fd) == 0);
	free(buf);

	rc = journal_scan(jdir, 0, count, &seen, &scan);
	check(rc <= 0);
	check(rc < 0 || (seen == scan.records && seen <= framed));

	evl_options_default(&o);
	o.max_pending = 1 << 20;
	rc = evl_store_open(store, &o, &st);
	check(rc <= 0);
	if (rc == 0) {
		check(evl_store_close(st) == 0);
		rc = evl_fsck(store, &co, &cr);
		check(rc == 0 && cr.problems == 0);
	}
	return 0;
}
