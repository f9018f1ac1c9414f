/*
 * tasklog_i.h - what the parts of the task log module share: the module's
 * state and its descriptor cache (tasklog_fd.c).  Private to tasklog.c,
 * tasklog_fd.c, sidecar.c and rewrite.c; everything else uses tasklog.h.
 *
 * Caveats: tl->lock guards the cache (entries, clock, counts) and is a
 * leaf; tl->vlock guards the proven-offset table and is a leaf too.  An
 * entry from tasklog_get_fds stays open until tasklog_put_fds, whatever
 * else closes or forgets it meanwhile.
 */
#ifndef EVL_TASKLOG_I_H
#define EVL_TASKLOG_I_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tasklog.h"

struct fd_entry {
	uint64_t uid;		/* 0: free slot */
	int log_fd, meta_fd;
	unsigned refs;
	bool stale;		/* close when the last user lets go */
	uint64_t used;		/* LRU clock */
};

struct tasklog {
	char *data_dir;		/* DATA_DIR: every path is built from it (datadir.h) */
	char *dir;		/* DATA_DIR/tasks, built once: listed and fsynced */
	bool rdonly;		/* tasklog_read_only(): files opened for reading only */
	pthread_mutex_t lock;	/* protects the cache */
	pthread_cond_t cv;	/* an entry's refs dropped */
	struct fd_entry *ents;
	unsigned nents;
	uint64_t clock;
	unsigned nfds;		/* descriptors the entries hold */
	unsigned room;		/* tasklog_fd_room() at room_ns */
	uint64_t room_ns;
	uint64_t shed;		/* entries closed to stay under the open-file limit */
	/*
	 * An fsync of a task file or directory failed: the kernel may have
	 * dropped what it was to write and marked it clean, so a later fsync
	 * that succeeds proves nothing.  Sticky (see tasklog_sync_failed).
	 */
	atomic_bool sync_failed;
	void (*failed_fn)(void *arg);
	void *failed_arg;
	/*
	 * How far each task's log is proven (tasklog_verify): uid -> logical
	 * offset and event number up to which every event's bytes matched
	 * their checksum.  Open addressing, linear probing; own lock (leaf).
	 */
	pthread_mutex_t vlock;
	struct vent {
		uint64_t uid, off, idx;
	} *vents;
	size_t nvents, vcap;
};

/* fsync @fd (@fd >= 0) or directory @dir; a failure is remembered for good.  0 or -1, errno. */
int tasklog_sync_one(struct tasklog *tl, int fd, const char *dir);
/* io->open, shedding cached descriptors while the limit refuses it. */
int tasklog_open_shed(struct tasklog *tl, const char *path, int flags, mode_t mode);
/* Find or open the descriptors of task @uid; the caller must tasklog_put_fds(). */
int tasklog_get_fds(struct tasklog *tl, uint64_t uid, const char *name, struct fd_entry **out);
/*
 * Open @e's sidecar if it is not yet (the caller holds @e).  Opened without
 * the cache lock, which shedding takes; of two threads racing here the
 * first one's descriptor is kept.  0 or -errno.
 */
int tasklog_need_meta(struct tasklog *tl, struct fd_entry *e, const char *name);
/* Let go of @e (from tasklog_get_fds); a stale entry is closed by its last user. */
void tasklog_put_fds(struct tasklog *tl, struct fd_entry *e);
/* Forget @uid's descriptors (closed now, or by their last user). */
void tasklog_forget_fds(struct tasklog *tl, uint64_t uid);

#endif
