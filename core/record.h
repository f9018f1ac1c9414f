/*
 * record.h - the journal's payloads (their format is at the top of
 * record.c): made by writers, creates and deletes, parsed at replay, and
 * decoded by the offline tools and the fuzzer.
 */
#ifndef EVL_RECORD_H
#define EVL_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "evlog.h"

/* Record kinds: the journal's record type. */
enum { REC_CREATE = 1, REC_APPEND = 2, REC_DELETE = 3 };

#define REC_CREATE_HDR 18	/* then the name, then REC_OWNER_LEN if it has an owner */
#define REC_OWNER_LEN 12
#define REC_DELETE_LEN 16
#define APPEND_HDR 32		/* then the directory, then the event bytes */
#define REC_EVENT_DIR(tlen) (5 + (tlen))	/* one event's directory entry */

/*
 * Write a create's payload into @buf (REC_CREATE_HDR + @len +
 * REC_OWNER_LEN bytes at most): task @uid named @name (@len bytes), made
 * at @time_ns by @owner (NULL: none recorded).  Returns its length.
 */
size_t rec_put_create(unsigned char *buf, uint64_t uid, uint64_t time_ns, const char *name,
		      size_t len, const struct evl_owner *owner);
/* Write a delete's payload (REC_DELETE_LEN bytes) into @buf. */
void rec_put_delete(unsigned char *buf, uint64_t uid, uint64_t time_ns);
/* One event's directory entry: its length @ev_len and its type. */
void rec_put_event(unsigned char *dir, uint32_t ev_len, const char *type, size_t tlen);
/*
 * An append's header, in two steps: what the writer knows (task, events,
 * data length), then the commit's first gseq and time, taken later.
 */
void rec_put_append(unsigned char *buf, uint64_t uid, uint32_t n, uint32_t data_len);
void rec_put_commit(unsigned char *buf, uint64_t gseq, uint64_t time_ns);

/* A journal record, as store_rec_decode hands it out (one call per event of an append). */
enum { STORE_REC_CREATE = 1, STORE_REC_APPEND, STORE_REC_DELETE };
struct store_rec {
	int kind;
	uint64_t uid, gseq, time_ns;	/* gseq of the first event */
	uint32_t n;			/* events */
	const char *name;		/* create */
	size_t name_len;
	bool has_owner;			/* create: who, and the mode */
	uint32_t owner_uid, owner_gid, mode;
	const char *ev;			/* append: event ev_index (gseq + ev_index) */
	size_t ev_len;
	uint32_t ev_index;
};

/*
 * Decode journal payload @payload of record type @kind and call @cb once
 * per event of an append, once for a create or delete.  0, -EILSEQ
 * (malformed), -ENOMEM, or @cb's value.
 */
int store_rec_decode(unsigned kind, const void *payload, size_t len,
		     int (*cb)(void *arg, const struct store_rec *r), void *arg);

#endif
