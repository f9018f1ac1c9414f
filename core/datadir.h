/*
 * datadir.h - the data directory's shared mechanics that are not the store
 * itself.  Private to core/.
 *
 * It owns what every user of DATA_DIR needs, a mount, an offline tool or a
 * backup alike: holding the store (store_lock, store_unlock) and saying
 * who holds it (evl_store_holder, declared in evlog.h: the directory's
 * flock, and what DATA_DIR/lock names), and the removal of a tree inside it
 * (store_rmrf).  It is going to own every path inside
 * DATA_DIR (the lock, the reserve, the trash, rewrites, the task files),
 * each built in one place with one length check.
 *
 * Caveats: it keeps no state; evl_store_holder may wait up to a second.
 */
#ifndef EVL_DATADIR_H
#define EVL_DATADIR_H

/*
 * Lock store @dir (a flock on the directory itself; "<pid> @holder" is
 * written into DATA_DIR/lock for the messages, unless the store is
 * read-only) for an offline tool or a store.  0 with the descriptors in *@l
 * (closing them releases the lock; store_unlock also clears DATA_DIR/lock),
 * -EBUSY (the caller names the holder: evl_store_holder), or -errno.
 * DATA_DIR/lock is flocked too: daemons before the directory lock took
 * only that, and must keep seeing the store as held (and be seen).
 */
struct store_lock {
	int dir_fd, file_fd;	/* -1: not held */
};
#define STORE_LOCK_NONE ((struct store_lock){ -1, -1 })
int store_lock(const char *dir, const char *holder, struct store_lock *l);
void store_unlock(const char *dir, struct store_lock *l);

/* Remove @path and, if it is a directory, everything below it.  Missing is fine.  0 or -errno. */
int store_rmrf(const char *path);

#endif
