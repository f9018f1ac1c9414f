/*
 * aside.c - tasks set aside: a task whose files are not what the index says
 * is served nothing and written nothing until the offline tools rebuild it;
 * the other tasks go on.
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

/*
 * ---- tasks set aside ----
 *
 * A task's log and sidecar end where the index says: the applier writes
 * them at the index's offsets, recovery cuts them back to it.  Files removed
 * or replaced behind the store's back, a log cut short on disk (a partial
 * restore, copytruncate) or appended to outside the store break that:
 * writing at the index's offset would fail for ever, leave a hole of zeros
 * or overwrite other lines.  Such a task is set aside until evlogctl fsck
 * --repair or reindex rebuilds it from its files: its opens for writing,
 * writes and reads fail with EIO; the other tasks go on.  It is found
 * without a scan: a writer's open compares the files' sizes with the
 * index's (shorter only: the applier may be past it), the applier checks
 * both files before each write (tasklog_write: -EUCLEAN) and sets the task
 * aside on an error no wait cures (task_damage), and so does a read that
 * fails so or comes up short.
 */

/*
 * Does @err, from a task's files, say that they are not what the index
 * says (gone, replaced by something else, unreadable to us)?  No wait cures
 * that; a full disk, a descriptor or memory shortage, an I/O error may pass.
 */
bool task_damage(int err)
{
	switch (-err) {
	case ENOENT: case ENOTDIR: case EISDIR: case ELOOP: case ESTALE: case EILSEQ:
	case EACCES: case EPERM: case ENXIO: case ESPIPE: case EUCLEAN: case EBADMSG:
		return true;
	}
	return false;
}

/* With aside_lock held. */
static bool aside_has(const struct evl_store *st, uint64_t uid)
{
	for (size_t i = 0; i < st->naside; i++)
		if (st->aside[i].uid == uid)
			return true;
	return st->aside_unknown;
}

bool is_aside(struct evl_store *st, uint64_t uid)
{
	bool found;

	pthread_mutex_lock(&st->aside_lock);
	found = aside_has(st, uid);
	pthread_mutex_unlock(&st->aside_lock);
	return found;
}

/*
 * Set task @uid (@name) aside, saying @why its files are not what the
 * index says.  Any thread, any locks but aside_lock held.  Said once.
 */
void set_aside(struct evl_store *st, uint64_t uid, const char *name, const char *why)
{
	pthread_mutex_lock(&st->aside_lock);
	if (aside_has(st, uid)) {
		pthread_mutex_unlock(&st->aside_lock);
		return;
	}
	if (grow_bytes(&st->aside, &st->aside_cap, (st->naside + 1) * sizeof(*st->aside))) {
		st->aside_unknown = true;
	} else {
		st->aside[st->naside].uid = uid;
		snprintf(st->aside[st->naside].name, sizeof(st->aside->name), "%s", name);
		st->naside++;
	}
	pthread_mutex_unlock(&st->aside_lock);
	evl_log(LOG_ERR, "task %s set aside: %s; its reads and appends get EIO, the other "
		"tasks go on; after unmounting, evlogctl fsck --repair or reindex recovers "
		"what its files still hold", name, why);
}

/*
 * The names of the tasks set aside, as many as fit in @buf (@size > 0),
 * each followed by @sep ('\0': and the list by another), "..." for the
 * rest; returns how many tasks are set aside.
 */
size_t aside_names(struct evl_store *st, char *buf, size_t size, char sep)
{
	size_t at = 0, n;

	pthread_mutex_lock(&st->aside_lock);
	for (size_t i = 0; i < st->naside; i++) {
		size_t l = strlen(st->aside[i].name);

		if (at + l + 6 > size) {
			at += snprintf(buf + at, size - at, "...%c", sep);
			break;
		}
		memcpy(buf + at, st->aside[i].name, l);
		buf[at + l] = sep;
		at += l + 1;
	}
	n = st->naside;
	pthread_mutex_unlock(&st->aside_lock);
	if (sep == '\0' || !at)
		buf[at] = '\0';
	else
		buf[at - 1] = '\0';	/* no separator after the last */
	return n;
}

/* Task @uid is deleted: it is no longer set aside (a new task of its name is not). */
void aside_forget(struct evl_store *st, uint64_t uid)
{
	pthread_mutex_lock(&st->aside_lock);
	for (size_t i = 0; i < st->naside; i++)
		if (st->aside[i].uid == uid) {
			st->aside[i] = st->aside[--st->naside];
			break;
		}
	pthread_mutex_unlock(&st->aside_lock);
}

/* set_aside() for an error @err from its files. */
void set_aside_err(struct evl_store *st, uint64_t uid, const char *name, int err)
{
	char why[128];

	snprintf(why, sizeof(why), "its files are not what the index says (%s)",
		 err == -EUCLEAN ? "they do not end where it says" : strerror(-err));
	set_aside(st, uid, name, why);
}

/* With swap_lock held: is @uid's rewrite switched in the index but its files not renamed? */
bool switch_broken(const struct evl_store *st, uint64_t uid)
{
	if (st->broken_unknown)
		return true;
	for (size_t i = 0; i < st->nbroken; i++)
		if (st->broken[i] == uid)
			return true;
	return false;
}
