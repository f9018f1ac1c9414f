/*
 * store.h - what other core modules (compaction, the offline tools, backup)
 * use of the store.  Private to core/ (and the test tools).
 *
 * Caveats: the functions that wait (store_shrink_index, store_wait_purged)
 * must not be called from the applier thread or with a transaction open.
 */
#ifndef EVL_STORE_H
#define EVL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "datadir.h"
#include "evlog.h"
#include "grow.h"
#include "record.h"

/* The store's data directory. */
const char *store_dir(const struct evl_store *st);
bool store_nodelete(const struct evl_store *st);
bool store_read_only(const struct evl_store *st);
/*
 * The state of a part that runs on the store (compaction): made by @make at
 * its first use, and released by evl_store_close once closing has begun
 * (store_closing is true: @release waits for the part's work to stop) and
 * before the store itself closes.  One part per store: the same @make each
 * call.  NULL if @make failed (out of memory).  The store knows the part by
 * these two functions only, so it imports nothing of it.
 */
void *store_attached(struct evl_store *st, void *(*make)(struct evl_store *st),
		     void (*release)(void *obj));

/* Have the applier shrink the index file if more than half of it is free.  0 or -errno. */
int store_shrink_index(struct evl_store *st);
/*
 * Wait until the tasks deleted before the call have their entries and files
 * purged (as many purges as awaited one then: deletes meanwhile do not make
 * it longer).  0, or -EINTR when the store starts closing.
 */
int store_wait_purged(struct evl_store *st, void (*progress)(void *arg, uint64_t left),
		      void *arg);
/* Has evl_store_close begun?  A compaction stops at its next step then. */
bool store_closing(struct evl_store *st);
/* The gseq the next event will get: every event committed so far has a lower one. */
uint64_t store_next_gseq(struct evl_store *st);
/*
 * Checkpoint what is applied now (sync logs and index, trim the journal up
 * to it), without waiting for the records not applied yet.  0 or -errno.
 */
int store_checkpoint_applied(struct evl_store *st);

/*
 * Drop the head of live task @uid, among its events committed before gseq
 * @horizon (0: all; later ones are kept and not counted): those that are
 * not among the newest @keep_last of them (0: no such rule) or were
 * committed before @min_ns (wall clock; 0: no such rule).  The log is
 * rewritten crash-safely (see retain.c).  Events and bytes dropped go to
 * *@events, *@bytes.  0 (also when the task is gone), -EINTR (the store is
 * closing: the drop is durable and finished at the next open), or -errno.
 */
int store_retain(struct evl_store *st, uint64_t uid, uint64_t keep_last, uint64_t min_ns,
		 uint64_t horizon, uint64_t *events, uint64_t *bytes);

/*
 * Open store @dir (recovering it) and close it again (a checkpoint), with
 * @type_field (NULL: the one its index records).  0 or -errno.
 */
int store_cycle(const char *dir, const char *type_field, const char *holder);

/*
 * Finish the log rewrites a failed rename or directory sync left switched
 * in the index only (the applier retries them too).  0 or -errno.
 */
int store_finish_switches(struct evl_store *st);

/* Make DATA_DIR/reserve if it is missing and there is room (see task.c). */
void store_reserve(struct evl_store *st);


/*
 * The stamp (stamp.c, S1): DATA_DIR/stamp and the index hold the store's id
 * and generation.  store_stamp_read: 0, -ENOENT, -EILSEQ (garbled) or
 * -errno.  store_stamp_write: durable on return.  store_stamp_check: does
 * index @ix describe the logs of @dir?  0, -ESTALE with the reason in @why
 * (evlogctl reindex is the cure), or -errno.
 */
struct index;
struct store_stamp {
	uint64_t id, file_gen, ix_gen;
	bool file, ix;		/* each was found */
};
int store_stamp_read(const char *dir, uint64_t *id, uint64_t *gen);
int store_stamp_write(const char *dir, uint64_t id, uint64_t gen);
int store_stamp_check(const char *dir, struct index *ix, struct store_stamp *s,
		      char *why, size_t n);
/* Make DATA_DIR/stamp say what the index there says (an index copied in).  0 or -errno. */
int store_stamp_adopt(const char *dir);

#endif
