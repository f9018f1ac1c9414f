/*
 * store_i.h - what the compaction module needs from the store.  Private to core/.
 *
 * Caveats: the functions that wait (store_shrink_index, store_wait_purged)
 * must not be called from the applier thread or with a transaction open.
 */
#ifndef EVL_STORE_I_H
#define EVL_STORE_I_H

#include <stdbool.h>

#include "evlog.h"

struct compactor;

/* The store's data directory. */
const char *store_dir(const struct evl_store *st);
bool store_nodelete(const struct evl_store *st);
bool store_read_only(const struct evl_store *st);
/* The compaction state the store owns (made at open, freed at close). */
struct compactor *store_compactor(struct evl_store *st);

/* Have the applier shrink the index file if more than half of it is free.  0 or -errno. */
int store_shrink_index(struct evl_store *st);
/* Wait until no deleted task awaits the purge of its entries and files. */
void store_wait_purged(struct evl_store *st, void (*progress)(void *arg, uint64_t left),
		       void *arg);

/*
 * Drop the head of live task @uid: its events that are not among its
 * newest @keep_last (0: no such rule) or were committed before @min_ns
 * (wall clock; 0: no such rule).  The log is rewritten crash-safely (see
 * compact.c).  Events and bytes dropped go to *@events, *@bytes.
 * 0 (also when the task is gone) or -errno.
 */
int store_retain(struct evl_store *st, uint64_t uid, uint64_t keep_last, uint64_t min_ns,
		 uint64_t *events, uint64_t *bytes);

/* compact.c */
int compactor_new(struct evl_store *st, struct compactor **out);
/* Wait for a running compaction and free. */
void compactor_free(struct compactor *c);

#endif
