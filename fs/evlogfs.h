/*
 * evlogfs.h - the FUSE daemon's private declarations.
 *
 * Inode numbers: fixed ones for the top of the tree; tasks derive theirs
 * from the task uid (never reused), so they are stable for the task's life;
 * by-type nodes are made on lookup and live until the kernel forgets them.
 *
 * Caveats: handlers run on libfuse's worker threads.  The node table has
 * its own lock; everything else is in the store (core/evlog.h), which is
 * thread-safe.
 */
#ifndef EVLOGFS_H
#define EVLOGFS_H

#define FUSE_USE_VERSION 312

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <fuse_lowlevel.h>

#include "evlog.h"

/* The daemon's configuration: -o options, validated at once. */
struct config {
	char *data_dir;
	char *mountpoint;
	char *commit;		/* "group" or "sync" */
	unsigned commit_ms;
	char *type_field;
	size_t max_event;
	size_t max_pending;
	size_t max_held;	/* unterminated-line bytes all handles may hold */
	size_t max_types;	/* distinct types (0: no bound) */
	unsigned max_fds;	/* task logs kept open */
	char *commit_ms_s, *max_fds_s, *max_event_s, *max_pending_s, *max_held_s, *max_types_s;
	int nodelete;
	int ro;
	char *views;		/* "private" (or NULL: the default) or "public" */
	bool views_public;
	int show_help, show_version, foreground, debug;
};

enum node_kind {
	N_ROOT, N_TASKS, N_BYTYPE, N_CONTROL, N_METRICS,
	N_TASKDIR, N_TASKEV,			/* tasks/<id>, tasks/<id>/events */
	N_VDIR, N_VEV, N_VTASKS, N_VTASK,	/* by-type/<p>, .../events, .../tasks, .../tasks/<id> */
};

#define INO_ROOT FUSE_ROOT_ID
#define INO_TASKS 2
#define INO_BYTYPE 3
#define INO_CONTROL 4
#define INO_METRICS 5
#define INO_TASK_BASE (1ull << 40)	/* + 2 uid: dir, + 2 uid + 1: events */
#define INO_DYN_BASE (1ull << 62)	/* by-type nodes */

/* What an inode number stands for. */
struct node {
	enum node_kind kind;
	uint64_t uid;		/* task nodes, N_VTASK */
	size_t plen;		/* view nodes: the prefix */
	char prefix[256];
};

struct fs {
	struct config *cfg;
	struct evl_store *st;
	struct fuse_session *se;
	uid_t uid;		/* the mounting user */
	gid_t gid;
	uint64_t mount_ns;	/* times of the nodes that never change */
};

/* ---- nodes.c ---- */
int nodes_init(void);
void nodes_fini(void);
/* Decode @ino.  0 or -ENOENT (a dynamic node the kernel already forgot). */
int node_get(fuse_ino_t ino, struct node *out);
/* The inode of view node @n, taking one lookup reference. */
fuse_ino_t node_ref(const struct node *n);
/* Drop @count lookup references of @ino. */
void node_forget(fuse_ino_t ino, uint64_t count);

/* ---- status.c ---- */
/* The status JSON (.control) and the metrics text; caller frees. */
char *status_json(struct fs *fs, size_t *len);
char *metrics_text(struct fs *fs, size_t *len);
/* Note a command's outcome for the status. */
void status_note_command(const char *cmd, int rc, const char *reason);

/* ---- readpool.c ---- */
/* Serve a read: reply to @req (with at most @size bytes at @off of @arg's file). */
typedef void readpool_fn(fuse_req_t req, void *arg, size_t size, off_t off);
/* Start @n reader threads.  0 or -errno (then reads are served where they arrive). */
int readpool_start(unsigned n);
/*
 * Have a reader thread run @fn(@req, @arg, @size, @off).  False if it
 * cannot (no thread, no memory, stopping): the caller runs it itself.
 */
bool readpool_submit(fuse_req_t req, readpool_fn *fn, void *arg, size_t size, off_t off);
/* Run what is queued, then end the threads (joined, never cancelled). */
void readpool_stop(void);

/* ---- ops.c ---- */
extern const struct fuse_lowlevel_ops evlogfs_ops;
/*
 * Close the handles the kernel did not release (the session ended on a
 * signal before their RELEASE came): before the store closes, after the
 * session loop.  A partial line a writer held is stored (or refused and
 * logged), as at the last close.
 */
void ops_close_handles(void);

#endif
