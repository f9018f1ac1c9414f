/*
 * datadir.h - the data directory's shared mechanics that are not the store
 * itself.  Private to core/.
 *
 * It owns what every user of DATA_DIR needs, a mount, an offline tool or a
 * backup alike: who holds the store (evl_store_holder, declared in evlog.h:
 * the directory's flock, and what DATA_DIR/lock names), and the removal of
 * a tree inside it (store_rmrf).  It is going to own every path inside
 * DATA_DIR (the lock, the reserve, the trash, rewrites, the task files),
 * each built in one place with one length check; store_lock, store_unlock
 * and store_reserve (task.c, store.h) come here next.
 *
 * Caveats: it keeps no state; evl_store_holder may wait up to a second.
 */
#ifndef EVL_DATADIR_H
#define EVL_DATADIR_H

/* Remove @path and, if it is a directory, everything below it.  Missing is fine.  0 or -errno. */
int store_rmrf(const char *path);

#endif
