/*
 * journal_frames.c - the records of a store's journal as fuzz_journal's
 * framed input ([type:1][len:2 LE][payload] each, after the mode byte 1),
 * on stdout.  The journal is read by the journal module itself
 * (journal_scan), so the seeds follow its format wherever it goes.
 *
 * Usage: journal_frames DATA_DIR > seed.  A record too long for the frame's
 * 16-bit length is left out.  Exit 0, 1 on an error (said on stderr), or 2
 * when the journal holds no record to frame.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "bytes.h"
#include "datadir.h"
#include "journal.h"

static uint64_t framed;

static int frame(void *arg, uint64_t lsn, unsigned type, const void *payload, size_t len)
{
	unsigned char hdr[3];

	if (len > 0xffff || type > 0xff)
		return 0;
	hdr[0] = (unsigned char)type;
	put_le16(hdr + 1, (uint16_t)len);
	if (fwrite(hdr, 1, 3, stdout) != 3 || fwrite(payload, 1, len, stdout) != len)
		return -EIO;
	framed++;
	return 0;
}

int main(int argc, char **argv)
{
	struct journal_scan js;
	char dir[DD_PATH_MAX];
	int rc;

	if (argc != 2) {
		fprintf(stderr, "usage: journal_frames DATA_DIR\n");
		return 1;
	}
	rc = dd_check(argv[1]);
	if (!rc)
		rc = dd_path(dir, argv[1], DD_JOURNAL, NULL);
	if (!rc && putchar(1) == EOF)
		rc = -EIO;
	if (!rc)
		rc = journal_scan(dir, 0, frame, NULL, &js);
	if (!rc && fflush(stdout))
		rc = -errno;
	if (rc) {
		fprintf(stderr, "journal_frames: %s: %s\n", argv[1], strerror(-rc));
		return 1;
	}
	return framed ? 0 : 2;
}
