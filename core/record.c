/*
 * record.c - the journal's payloads: one record per create, delete and
 * write() (all its events, one task).  Parsed into pending records
 * (pend_parse: the writer's own record, and the journal's at replay, which
 * passed only a checksum, so every field is checked) and decoded for the
 * offline tools and the fuzzer (store_rec_decode).
 *
 * JOURNAL RECORDS (payloads, little-endian)
 *   REC_CREATE 0 8 uid, 8 8 time, 16 2 name length, name, then optionally
 *              4 owner uid, 4 owner gid, 4 mode
 *   REC_DELETE 0 8 uid, 8 8 time
 *   REC_APPEND 0 8 uid, 8 8 first gseq, 16 8 time, 24 4 n, 28 4 data length,
 *              n x (4 event length, 1 type length, type), event bytes
 *              (each event ends with '\n'; event i has gseq first + i)
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "bytes.h"
#include "event.h"
#include "evlog.h"
#include "index.h"
#include "io.h"
#include "journal.h"
#include "linebuf.h"
#include "log.h"
#include "store.h"
#include "store_i.h"
#include "tasklog.h"

/* ---- pending records ---- */

void pend_free(struct pend *p)
{
	if (p) {
		free(p->buf);
		free(p->spare);
		free(p);
	}
}

/*
 * Make a pending record of @kind from payload @buf (taken over: freed with
 * the record).  Checks the payload's structure: journal replay feeds it
 * bytes that passed only a checksum.  NULL if malformed or out of memory.
 */
struct pend *pend_parse(unsigned kind, unsigned char *buf, size_t len)
{
	uint32_t n = kind == REC_APPEND && len >= APPEND_HDR ? get_le32(buf + 24) : 0;
	struct pend *p;
	size_t pos;

	if (n > len) {
		free(buf);	/* malformed: no more events than bytes */
		return NULL;
	}
	p = calloc(1, sizeof(*p) + n * sizeof(*p->ev));
	if (!p) {
		free(buf);
		return NULL;
	}
	p->kind = kind;
	p->buf = buf;
	p->len = len;
	p->mem = malloc_usable_size(p) + malloc_usable_size(buf) + 2 * MALLOC_OVERHEAD;
	switch (kind) {
	case REC_CREATE:
		if (len < REC_CREATE_HDR)
			goto bad;
		p->uid = get_le64(buf);
		p->time_ns = get_le64(buf + 8);
		p->name_len = get_le16(buf + 16);
		if (p->name_len == 0 || p->name_len > 255 ||
		    (REC_CREATE_HDR + p->name_len != len &&
		     REC_CREATE_HDR + p->name_len + REC_OWNER_LEN != len))
			goto bad;
		p->name = (const char *)buf + REC_CREATE_HDR;
		if (evl_task_check_name(p->name, p->name_len))
			goto bad;	/* never a path outside tasks/ */
		if (len > REC_CREATE_HDR + p->name_len) {
			const unsigned char *o = buf + REC_CREATE_HDR + p->name_len;

			p->has_owner = true;
			p->owner_uid = get_le32(o);
			p->owner_gid = get_le32(o + 4);
			p->mode = get_le32(o + 8) & 07777;
		}
		p->name_hash = XXH3_64bits(p->name, p->name_len);
		break;
	case REC_DELETE:
		if (len != REC_DELETE_LEN)
			goto bad;
		p->uid = get_le64(buf);
		p->time_ns = get_le64(buf + 8);
		break;
	case REC_APPEND:
		if (len < APPEND_HDR)
			goto bad;
		p->uid = get_le64(buf);
		p->gseq = get_le64(buf + 8);
		p->time_ns = get_le64(buf + 16);
		p->n = n;
		p->data_len = get_le32(buf + 28);
		if (p->n == 0 || p->data_len > len || p->n > p->data_len)
			goto bad;
		pos = APPEND_HDR;
		{
			uint64_t off = 0;
			size_t data_at = len - p->data_len;

			for (uint32_t i = 0; i < p->n; i++) {
				struct pend_ev *e = &p->ev[i];

				if (pos + 5 > data_at)
					goto bad;
				e->len = get_le32(buf + pos);
				e->tlen = buf[pos + 4];
				e->toff = pos + 5;
				pos += 5 + e->tlen;
				if (pos > data_at || e->tlen == 0 || e->len == 0 ||
				    off + e->len > p->data_len)
					goto bad;
				e->off = off;
				off += e->len;
				if (buf[data_at + off - 1] != '\n')
					goto bad;
			}
			if (pos != data_at || off != p->data_len)
				goto bad;
			p->data = (const char *)buf + data_at;
		}
		break;
	default:
		goto bad;
	}
	if (p->uid == 0)
		goto bad;	/* uids start at 1: 0 names no task (and marks free fd slots) */
	return p;
bad:
	pend_free(p);
	return NULL;
}

int store_rec_decode(unsigned kind, const void *payload, size_t len,
		     int (*cb)(void *arg, const struct store_rec *r), void *arg)
{
	unsigned char *buf = malloc(len ? len : 1);
	struct store_rec r;
	struct pend *p;
	int rc;

	if (!buf)
		return -ENOMEM;
	if (len)
		memcpy(buf, payload, len);	/* an empty record has no buffer */
	p = pend_parse(kind, buf, len);
	if (!p)
		return -EILSEQ;
	r = (struct store_rec){
		.kind = kind == REC_CREATE ? STORE_REC_CREATE :
			kind == REC_DELETE ? STORE_REC_DELETE : STORE_REC_APPEND,
		.uid = p->uid, .gseq = p->gseq, .time_ns = p->time_ns, .n = p->n,
		.name = p->name, .name_len = p->name_len, .has_owner = p->has_owner,
		.owner_uid = p->owner_uid, .owner_gid = p->owner_gid, .mode = p->mode,
	};
	rc = 0;
	for (uint32_t i = 0; i < p->n && !rc; i++) {
		r.ev = p->data + p->ev[i].off;
		r.ev_len = p->ev[i].len;
		r.ev_index = i;
		rc = cb(arg, &r);
	}
	if (!p->n)
		rc = cb(arg, &r);
	pend_free(p);
	return rc;
}

size_t rec_put_create(unsigned char *buf, uint64_t uid, uint64_t time_ns, const char *name,
		      size_t len, const struct evl_owner *owner)
{
	put_le64(buf, uid);
	put_le64(buf + 8, time_ns);
	put_le16(buf + 16, len);
	memcpy(buf + REC_CREATE_HDR, name, len);
	if (!owner)
		return REC_CREATE_HDR + len;
	put_le32(buf + REC_CREATE_HDR + len, owner->uid);
	put_le32(buf + REC_CREATE_HDR + 4 + len, owner->gid);
	put_le32(buf + REC_CREATE_HDR + 8 + len, owner->mode & 07777);
	return REC_CREATE_HDR + len + REC_OWNER_LEN;
}

void rec_put_delete(unsigned char *buf, uint64_t uid, uint64_t time_ns)
{
	put_le64(buf, uid);
	put_le64(buf + 8, time_ns);
}

void rec_put_event(unsigned char *dir, uint32_t ev_len, const char *type, size_t tlen)
{
	put_le32(dir, ev_len);
	dir[4] = tlen;
	memcpy(dir + 5, type, tlen);
}

void rec_put_append(unsigned char *buf, uint64_t uid, uint32_t n, uint32_t data_len)
{
	put_le64(buf, uid);
	put_le32(buf + 24, n);
	put_le32(buf + 28, data_len);
}

void rec_put_commit(unsigned char *buf, uint64_t gseq, uint64_t time_ns)
{
	put_le64(buf + 8, gseq);
	put_le64(buf + 16, time_ns);
}

int evl_task_check_name(const char *name, size_t len)
{
	if (len > 255)
		return -ENAMETOOLONG;
	if (len && name[0] == '.')
		return -EINVAL;
	return event_check_name(name, len);
}
