/*
 * ops.c - the FUSE low-level handlers.
 *
 * Every event file and view opens with direct_io: one write() reaches us as
 * one request (so a write is all-or-nothing and its errno exact), and reads
 * always come here, so nothing the kernel caches can be stale.  Attributes
 * of files that grow are never cached (timeout 0): st_size is exact.
 *
 * Deleting a task is `rm -r`: unlink(events) deletes the task in the store
 * (it leaves every view at once); the emptied directory stays visible until
 * rmdir, as on a disk file system.  Those directories are "tombstones".
 *
 * WRITERS AND CLOSE.  One open file (struct handle) may be shared by many
 * descriptors and processes: dup, fork, exec.  The kernel sends FLUSH for
 * every close(2) of any of them, concurrently with WRITEs and other FLUSHes
 * of the same open file (it holds no lock for FLUSH), and RELEASE once,
 * after the last close, asynchronously.  So:
 *  - h->lock serialises write, flush and release on one handle.  A FLUSH
 *    from a process that wrote none of the held line does not wait for it
 *    (a write may wait long for max_pending): it looks at the line's
 *    writers under h->owner_lock only.
 *  - A FLUSH commits the held unterminated line only if it comes from a
 *    process that wrote part of that line: its lock_owner is one of the
 *    writes' (the kernel derives both from the caller's descriptor table,
 *    current->files, which a process's threads share and fork and
 *    CLONE_VM-without-CLONE_FILES copy; the request's pid would be the
 *    thread id, and a reused pid would pass for the writer).  A close by any
 *    other process (a child that inherited the descriptor, exited or
 *    exec'd) neither commits nor drops the line, and returns 0.
 *  - Even the writer's own close may not be its last descriptor: a shell
 *    running `printf half >&3` dups the file onto stdout and closes that
 *    after the builtin, then writes the rest of the line through fd 3.  So
 *    a writer's FLUSH stores the held line only if it is a valid event as
 *    it stands; otherwise close() fails with EINVAL and the line stays held
 *    (evl_writer_flush_valid).  A valid object cannot be continued into
 *    another, so storing it early changes nothing a reader sees.
 *  - RELEASE commits whatever is still held; no one can be told an errno
 *    then, so a bad line is logged and counted, and a failure to store one
 *    is logged.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "evlogfs.h"
#include "grow.h"
#include "log.h"

#define TIMEOUT_STABLE 1.0	/* names and attributes that do not change */
#define INO_UNKNOWN 0xffffffffu	/* d_ino of entries numbered at lookup */

/* Lock owners remembered per held line; past this, any FLUSH counts as the writer's. */
#define HELD_OWNERS 8

struct handle {
	struct fs *fs;
	enum node_kind kind;
	uint64_t uid;
	bool append;
	struct evl_writer *w;	/* N_TASKEV opened for writing */
	/*
	 * Without O_APPEND: where this open file's last write ended (under
	 * lock; 0 before any).  The kernel's offset counts bytes the store
	 * later dropped (a refused line) or added to (a close's newline), so
	 * a write there continues this writer's stream: it appends too.
	 */
	uint64_t next_off;
	/*
	 * Writers.  lock: the writer.  owner_lock (taken inside lock when
	 * both are): owners[], the lock owners of the writes that built the
	 * held line (see WRITERS AND CLOSE), empty when nothing is held;
	 * any_owner when they did not fit or one was unknown (0).
	 */
	pthread_mutex_t lock, owner_lock;
	uint64_t owners[HELD_OWNERS];
	unsigned nowners;
	bool any_owner;
	struct evl_view *v;	/* N_VEV, N_VTASK */
	char *buf;		/* .control/.metrics snapshot, directory listing */
	size_t len;
	/*
	 * The opener's reference, plus one per reply that sends from buf: the
	 * reader may close, and release run on another thread, as soon as the
	 * kernel has the bytes, before fuse_reply_buf has returned.
	 */
	atomic_int refs;
	struct handle *prev, *next;	/* in the list of open handles */
};

/* Open handles, so that what the kernel never released is closed at exit. */
static pthread_mutex_t handles_lock = PTHREAD_MUTEX_INITIALIZER;
static struct handle *handles;

static struct fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* ---- tombstones: task directories whose events were unlinked ---- */

struct tomb {
	struct tomb *next;
	uint64_t uid;
	char name[256];
	struct evl_task_info info;	/* the task's last attributes: owner, mode, times */
	bool deleting;	/* its unlink has not returned: the task may still be live */
};

static pthread_mutex_t tomb_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tomb *tombs;
/*
 * The entries of tasks/ are the live tasks plus the tombstones.  A listing
 * holds this shared; a mkdir (create, then the tombstone of its name gone)
 * and an unlink's tombstone changes hold it exclusive, so a listing never
 * sees a name twice: a new task of a tombstone's name and that tombstone.
 * An unlink adds its tombstone (deleting) before the delete, which may wait
 * for the applier, and holds nothing while it waits; a listing shows a
 * deleting tombstone only if its task is no longer listed live.
 */
static pthread_rwlock_t names_lock = PTHREAD_RWLOCK_INITIALIZER;

/* Find a tombstone by @name, or by @uid if @name is NULL; its task's last attributes in @info. */
static bool tomb_find(const char *name, uint64_t uid, uint64_t *uid_out,
		      struct evl_task_info *info)
{
	bool found = false;

	pthread_mutex_lock(&tomb_lock);
	for (struct tomb *t = tombs; t; t = t->next)
		if (name ? !strcmp(t->name, name) : t->uid == uid) {
			if (uid_out)
				*uid_out = t->uid;
			if (info)
				*info = t->info;
			found = true;
			break;
		}
	pthread_mutex_unlock(&tomb_lock);
	return found;
}

/*
 * The directory of deleted task @info stays until rmdir, with its owner and
 * mode: in sticky tasks/ only its owner (or tasks/' owner) may remove it.
 */
static struct tomb *tomb_add(const struct evl_task_info *info, bool deleting)
{
	struct tomb *t;

	pthread_mutex_lock(&tomb_lock);
	for (t = tombs; t; t = t->next)
		if (t->uid == info->uid)
			break;		/* a second unlink of the task: one tombstone */
	if (t) {
		pthread_mutex_unlock(&tomb_lock);
		return NULL;
	}
	t = calloc(1, sizeof(*t));
	if (t) {
		t->uid = info->uid;
		t->info = *info;
		t->deleting = deleting;
		snprintf(t->name, sizeof(t->name), "%s", info->name);
		t->next = tombs;
		tombs = t;
	}
	/* else the directory just vanishes early */
	pthread_mutex_unlock(&tomb_lock);
	return t;
}

/* Unlink's end: tombstone @t (if still there) stays (with @info if not NULL), or goes. */
static void tomb_done(struct tomb *t, const struct evl_task_info *info, bool keep)
{
	struct tomb **pp;

	pthread_mutex_lock(&tomb_lock);
	for (pp = &tombs; *pp && *pp != t; pp = &(*pp)->next)
		;
	if (*pp && keep) {
		if (info)
			t->info = *info;
		t->deleting = false;
	} else if (*pp) {
		*pp = t->next;
		free(t);
	}
	pthread_mutex_unlock(&tomb_lock);
}

/* Remove the tombstone named @name, not one whose unlink is under way. */
static bool tomb_remove(const char *name)
{
	struct tomb **pp, *t = NULL;

	pthread_mutex_lock(&tomb_lock);
	for (pp = &tombs; *pp; pp = &(*pp)->next)
		if (!(*pp)->deleting && !strcmp((*pp)->name, name)) {
			t = *pp;
			*pp = t->next;
			break;
		}
	pthread_mutex_unlock(&tomb_lock);
	free(t);
	return t != NULL;
}

/* ---- attributes ---- */

static void set_time(struct timespec *ts, uint64_t ns)
{
	ts->tv_sec = ns / 1000000000ull;
	ts->tv_nsec = ns % 1000000000ull;
}

static int view_size(struct evl_store *st, const struct node *n, uint64_t *size)
{
	struct evl_view *v;
	int rc;

	rc = evl_view_open(st, n->prefix, n->plen, n->kind == N_VTASK ? n->uid : 0, &v);
	if (rc)
		return rc;
	rc = evl_view_size(v, size);
	evl_view_close(v);
	return rc;
}

/*
 * The permission bits of everything under by-type/ (views=, SPEC 1 and 2).
 * A view holds the events of every task, whatever their owners and modes,
 * so a view must not be readable by a user who could not read those tasks'
 * logs.  views=private (the default): the mounting user's alone (and
 * root's), the by-type directory included, since the type names come from
 * the events too; with allow_other the kernel then refuses everyone else
 * (default_permissions is always on), and each user reads their own tasks'
 * logs.  views=public: the operator opts in; everyone may read every view.
 */
static mode_t view_mode(const struct fs *fs, mode_t public_mode)
{
	return fs->cfg->views_public ? public_mode : public_mode & 0700;
}

/* Fill @st for node @n (inode @ino).  0 or -errno. */
static int node_attr(struct fs *fs, const struct node *n, fuse_ino_t ino, struct stat *st)
{
	struct evl_task_info info;
	uint64_t size;
	int rc;

	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_nlink = 1;
	set_time(&st->st_mtim, fs->mount_ns);
	st->st_ctim = st->st_atim = st->st_mtim;
	switch (n->kind) {
	case N_ROOT:
	case N_TASKS:
		/* like /tmp: anyone may create a task, only its owner remove it */
		st->st_mode = S_IFDIR | (n->kind == N_TASKS ? 01777 : 0755);
		st->st_nlink = 2;
		return 0;
	case N_BYTYPE:
	case N_VDIR:
	case N_VTASKS:
		/* views: see view_mode() */
		st->st_mode = S_IFDIR | view_mode(fs, 0555);
		st->st_nlink = 2;
		return 0;
	case N_CONTROL:
	case N_METRICS: {
		/* the size of what a read would return now */
		size_t len = 0;
		char *text = n->kind == N_CONTROL ? status_json(fs, &len) : metrics_text(fs, &len);

		free(text);
		st->st_mode = S_IFREG | (n->kind == N_CONTROL ? 0600 : 0444);
		st->st_size = len;
		return 0;
	}
	case N_TASKDIR:
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
		rc = evl_task_stat(fs->st, n->uid, &info);
		if (rc == -ENOENT && tomb_find(NULL, n->uid, NULL, &info))
			rc = 0;
		if (rc)
			return rc;
		if (info.has_owner) {
			st->st_uid = info.owner_uid;
			st->st_gid = info.owner_gid;
			st->st_mode = S_IFDIR | (info.mode & 07777);
		}
		set_time(&st->st_mtim, info.last_ns);
		set_time(&st->st_ctim, info.created_ns);
		set_time(&st->st_atim, info.last_ns);
		return 0;
	case N_TASKEV:
		rc = evl_task_stat(fs->st, n->uid, &info);
		if (rc)
			return rc;
		st->st_mode = S_IFREG | 0644;
		if (info.has_owner) {
			/* the task's permissions, without execute */
			st->st_uid = info.owner_uid;
			st->st_gid = info.owner_gid;
			st->st_mode = S_IFREG | (info.mode & 0666);
		}
		st->st_size = info.size;
		st->st_blocks = (info.size + 511) / 512;
		st->st_blksize = 4096;
		set_time(&st->st_mtim, info.last_ns);
		set_time(&st->st_ctim, info.last_ns);
		set_time(&st->st_atim, info.last_ns);
		return 0;
	case N_VEV:
	case N_VTASK:
		rc = view_size(fs->st, n, &size);
		if (rc)
			return rc;
		st->st_mode = S_IFREG | view_mode(fs, 0444);
		st->st_size = size;
		st->st_blocks = (size + 511) / 512;
		st->st_blksize = 4096;
		return 0;
	}
	return -ENOENT;
}

static bool grows(enum node_kind k)
{
	return k == N_TASKEV || k == N_VEV || k == N_VTASK || k == N_TASKDIR ||
	       k == N_CONTROL || k == N_METRICS;
}

static void reply_entry(fuse_req_t req, const struct node *n)
{
	struct fuse_entry_param e;
	int rc;

	memset(&e, 0, sizeof(e));
	e.ino = node_ref(n);
	if (!e.ino) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rc = node_attr(fs_of(req), n, e.ino, &e.attr);
	if (rc) {
		node_forget(e.ino, 1);
		fuse_reply_err(req, -rc);
		return;
	}
	/* by-type names come and go with the events; task names only by us */
	e.entry_timeout = n->kind >= N_VDIR ? 0 : TIMEOUT_STABLE;
	e.attr_timeout = grows(n->kind) ? 0 : TIMEOUT_STABLE;
	fuse_reply_entry(req, &e);
}

/* ---- lookup, getattr, forget ---- */

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	struct evl_task_info info;
	struct node p, n;
	size_t len = strlen(name);
	int rc;

	if (node_get(parent, &p)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (len > NAME_MAX) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	memset(&n, 0, sizeof(n));
	switch (p.kind) {
	case N_ROOT:
		if (!strcmp(name, "tasks"))
			n.kind = N_TASKS;
		else if (!strcmp(name, "by-type"))
			n.kind = N_BYTYPE;
		else if (!strcmp(name, ".control"))
			n.kind = N_CONTROL;
		else if (!strcmp(name, ".metrics"))
			n.kind = N_METRICS;
		else
			goto noent;
		break;
	case N_TASKS:
		rc = evl_task_lookup(fs->st, name, &info);
		if (rc == 0)
			n.uid = info.uid;
		else if (!tomb_find(name, 0, &n.uid, NULL))
			goto noent;
		n.kind = N_TASKDIR;
		break;
	case N_TASKDIR:
		if (strcmp(name, "events") || evl_task_stat(fs->st, p.uid, &info))
			goto noent;
		n.kind = N_TASKEV;
		n.uid = p.uid;
		break;
	case N_BYTYPE:
		if (!evl_prefix_exists(fs->st, name, len))
			goto noent;
		n.kind = N_VDIR;
		n.plen = len;
		memcpy(n.prefix, name, len);
		break;
	case N_VDIR:
		n = p;
		if (!strcmp(name, "events"))
			n.kind = N_VEV;
		else if (!strcmp(name, "tasks"))
			n.kind = N_VTASKS;
		else
			goto noent;
		break;
	case N_VTASKS:
		if (evl_task_lookup(fs->st, name, &info))
			goto noent;
		n = p;
		n.kind = N_VTASK;
		n.uid = info.uid;
		{
			struct evl_view *v;

			if (evl_view_open(fs->st, n.prefix, n.plen, n.uid, &v))
				goto noent;
			evl_view_close(v);
		}
		break;
	default:
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	reply_entry(req, &n);
	return;
noent:
	fuse_reply_err(req, ENOENT);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	node_forget(ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		node_forget(forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct node n;
	struct stat st;
	int rc = node_get(ino, &n);

	if (!rc)
		rc = node_attr(fs_of(req), &n, ino, &st);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, grows(n.kind) ? 0 : TIMEOUT_STABLE);
}

/*
 * Only what changes nothing succeeds: times (touch), and a truncate of an
 * events file to its current size.  Everything that would rewrite history
 * is EPERM.
 */
static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct node n;
	struct stat st;
	int rc = node_get(ino, &n);

	if (!rc)
		rc = node_attr(fs, &n, ino, &st);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		if (n.kind != N_TASKEV && n.kind != N_CONTROL) {
			/* the kernel refuses directories itself; files here are read-only */
			fuse_reply_err(req, S_ISDIR(st.st_mode) ? EISDIR : EPERM);
			return;
		}
		/* .control: O_TRUNC of `echo cmd > .control` is fine */
		if (n.kind == N_TASKEV && attr->st_size != st.st_size) {
			fuse_reply_err(req, EPERM);
			return;
		}
	}
	if (fs->cfg->ro && (to_set & FUSE_SET_ATTR_SIZE)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	fuse_reply_attr(req, &st, grows(n.kind) ? 0 : TIMEOUT_STABLE);
}

/* ---- directories ---- */

static int buf_add(fuse_req_t req, struct handle *h, size_t *cap, const char *name,
		   fuse_ino_t ino, mode_t mode)
{
	struct stat st = { .st_ino = ino, .st_mode = mode };
	size_t need = fuse_add_direntry(req, NULL, 0, name, NULL, 0);

	if (grow_bytes(&h->buf, cap, h->len + need))
		return -ENOMEM;
	fuse_add_direntry(req, h->buf + h->len, need, name, &st, h->len + need);
	h->len += need;
	return 0;
}

struct list_ctx {
	fuse_req_t req;
	struct handle *h;
	size_t *cap;
	uint64_t *uids;
	size_t nuids, ucap;
	int rc;
};

static int list_task(void *arg, const struct evl_task_info *t)
{
	struct list_ctx *c = arg;

	if (GROW(c->uids, c->ucap, c->nuids + 1))
		return -ENOMEM;
	c->uids[c->nuids++] = t->uid;
	return buf_add(c->req, c->h, c->cap, t->name, INO_TASK_BASE + 2 * t->uid, S_IFDIR);
}

static bool listed(const struct list_ctx *c, uint64_t uid)
{
	for (size_t i = 0; i < c->nuids; i++)
		if (c->uids[i] == uid)
			return true;
	return false;
}

static int list_type(void *arg, const char *type, size_t len)
{
	struct list_ctx *c = arg;
	char name[256];

	memcpy(name, type, len);
	name[len] = '\0';
	/* listed names get their inode at lookup: d_ino unknown here */
	return buf_add(c->req, c->h, c->cap, name, INO_UNKNOWN, S_IFDIR);
}

static int collect_uid(void *arg, uint64_t uid)
{
	struct list_ctx *c = arg;

	if (GROW(c->uids, c->ucap, c->nuids + 1))
		return -ENOMEM;
	c->uids[c->nuids++] = uid;
	return 0;
}

/*
 * The handle for opening @ino: decodes the node into @n and allocates.
 * On failure it has replied with the error and returns NULL.
 */
static struct handle *handle_new(fuse_req_t req, fuse_ino_t ino, struct node *n)
{
	struct handle *h;
	int rc = node_get(ino, n);

	if (rc) {
		fuse_reply_err(req, -rc);
		return NULL;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return NULL;
	}
	h->fs = fs_of(req);
	h->kind = n->kind;
	h->uid = n->uid;
	pthread_mutex_init(&h->lock, NULL);
	pthread_mutex_init(&h->owner_lock, NULL);
	atomic_init(&h->refs, 1);
	pthread_mutex_lock(&handles_lock);
	h->next = handles;
	if (handles)
		handles->prev = h;
	handles = h;
	pthread_mutex_unlock(&handles_lock);
	return h;
}

/*
 * Close what @h holds and free it: a writer stores the line it still holds
 * (RELEASE: nobody can be told an errno any more, so a line that cannot be
 * stored is logged; a refused one is logged by the store).
 */
static void handle_free(struct handle *h)
{
	int rc = h->w ? evl_writer_close(h->w) : 0;

	/* refused lines are logged by the store; a deleted task takes no more */
	if (rc && rc != -EINVAL && rc != -EFBIG && rc != -EDQUOT && rc != -ENOENT) {
		struct evl_task_info info;

		if (evl_task_stat(h->fs->st, h->uid, &info) == 0)
			evl_log(LOG_ERR, "task %s: the unterminated last line of a closed file "
				"is lost: %s", info.name, strerror(-rc));
	}

	pthread_mutex_lock(&handles_lock);
	if (h->prev)
		h->prev->next = h->next;
	else
		handles = h->next;
	if (h->next)
		h->next->prev = h->prev;
	pthread_mutex_unlock(&handles_lock);
	evl_view_close(h->v);
	pthread_mutex_destroy(&h->lock);
	pthread_mutex_destroy(&h->owner_lock);
	free(h->buf);
	free(h);
}

/* Drop a reference to @h; the last one frees it. */
static void handle_put(struct handle *h)
{
	if (atomic_fetch_sub(&h->refs, 1) == 1)
		handle_free(h);
}

/* Reply with bytes of h->buf, holding @h until the reply is sent. */
static void reply_from(fuse_req_t req, struct handle *h, off_t off, size_t size)
{
	atomic_fetch_add(&h->refs, 1);
	if ((size_t)off >= h->len)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_buf(req, h->buf + off, h->len - off < size ? h->len - off : size);
	handle_put(h);
}

void ops_close_handles(void)
{
	while (handles)
		handle_free(handles);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct evl_task_info ti;
	struct handle *h;
	struct node n;
	size_t cap = 0;
	struct list_ctx c = { req, NULL, &cap, NULL, 0, 0, 0 };
	int rc;

	h = handle_new(req, ino, &n);
	if (!h)
		return;
	c.h = h;
	rc = buf_add(req, h, &cap, ".", ino, S_IFDIR);
	if (!rc)
		rc = buf_add(req, h, &cap, "..", INO_UNKNOWN, S_IFDIR);
	switch (n.kind) {
	case N_ROOT:
		rc = rc ?: buf_add(req, h, &cap, "tasks", INO_TASKS, S_IFDIR);
		rc = rc ?: buf_add(req, h, &cap, "by-type", INO_BYTYPE, S_IFDIR);
		rc = rc ?: buf_add(req, h, &cap, ".control", INO_CONTROL, S_IFREG);
		rc = rc ?: buf_add(req, h, &cap, ".metrics", INO_METRICS, S_IFREG);
		break;
	case N_TASKS:
		pthread_rwlock_rdlock(&names_lock);
		rc = rc ?: evl_task_list(fs->st, NULL, list_task, &c);
		pthread_mutex_lock(&tomb_lock);
		for (struct tomb *t = tombs; t && !rc; t = t->next)
			if (!t->deleting || !listed(&c, t->uid))
				rc = buf_add(req, h, &cap, t->name, INO_TASK_BASE + 2 * t->uid,
					     S_IFDIR);
		pthread_mutex_unlock(&tomb_lock);
		pthread_rwlock_unlock(&names_lock);
		free(c.uids);
		break;
	case N_TASKDIR:
		if (evl_task_stat(fs->st, n.uid, &ti) == 0 || !tomb_find(NULL, n.uid, NULL, NULL))
			rc = rc ?: buf_add(req, h, &cap, "events", INO_TASK_BASE + 2 * n.uid + 1,
					   S_IFREG);
		break;
	case N_BYTYPE:
		rc = rc ?: evl_type_list(fs->st, list_type, &c);
		break;
	case N_VDIR:
		rc = rc ?: buf_add(req, h, &cap, "events", INO_UNKNOWN, S_IFREG);
		rc = rc ?: buf_add(req, h, &cap, "tasks", INO_UNKNOWN, S_IFDIR);
		break;
	case N_VTASKS:
		rc = rc ?: evl_view_tasks(fs->st, n.prefix, n.plen, collect_uid, &c);
		for (size_t i = 0; i < c.nuids && !rc; i++) {
			struct evl_task_info info;

			if (evl_task_stat(fs->st, c.uids[i], &info) == 0)
				rc = buf_add(req, h, &cap, info.name, INO_UNKNOWN, S_IFREG);
		}
		free(c.uids);
		break;
	default:
		rc = -ENOTDIR;
	}
	if (rc) {
		handle_free(h);
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = (uintptr_t)h;
	fuse_reply_open(req, fi);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;

	reply_from(req, h, off, size);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	handle_put((struct handle *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct fs *fs = fs_of(req);
	struct evl_task_info info;
	struct node p, n;
	int rc = node_get(parent, &p);

	if (!rc && strlen(name) > NAME_MAX)
		rc = -ENAMETOOLONG;
	if (rc || p.kind != N_TASKS) {
		fuse_reply_err(req, rc ? -rc : EPERM);
		return;
	}
	if (fs->cfg->ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	rc = evl_task_check_name(name, strlen(name));
	pthread_rwlock_wrlock(&names_lock);
	if (!rc) {
		/* the task belongs to its creator, with mkdir's mode (umask applied) */
		const struct fuse_ctx *ctx = fuse_req_ctx(req);
		struct evl_owner owner = {
			.uid = ctx->uid, .gid = ctx->gid, .mode = mode & ~ctx->umask & 07777,
		};

		/* a create never waits for the applier: fine to hold the lock */
		rc = evl_task_create_as(fs->st, name, &owner);
	}
	if (!rc)
		tomb_remove(name);	/* a new task of a deleted one's name */
	pthread_rwlock_unlock(&names_lock);
	if (!rc)
		rc = evl_task_lookup(fs->st, name, &info);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	memset(&n, 0, sizeof(n));
	n.kind = N_TASKDIR;
	n.uid = info.uid;
	reply_entry(req, &n);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	struct evl_task_info info;
	struct node p;
	int rc = node_get(parent, &p);

	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (p.kind != N_TASKDIR || strcmp(name, "events")) {
		fuse_reply_err(req, p.kind == N_TASKDIR ? ENOENT : EPERM);
		return;
	}
	if (fs->cfg->nodelete || fs->cfg->ro) {
		fuse_reply_err(req, fs->cfg->ro ? EROFS : EPERM);
		return;
	}
	/*
	 * By uid: the task this directory is, not one made since under its
	 * name.  The directory stays (a tombstone): made before the delete,
	 * which may wait for the applier while nothing else waits for it.
	 */
	rc = evl_task_stat(fs->st, p.uid, &info);
	if (!rc) {
		struct tomb *t;

		pthread_rwlock_wrlock(&names_lock);
		t = tomb_add(&info, true);
		pthread_rwlock_unlock(&names_lock);
		rc = evl_task_delete_uid(fs->st, p.uid, 0, &info);
		if (t) {
			/* ENOENT: a concurrent unlink deleted it (its tombstone is this one) */
			pthread_rwlock_wrlock(&names_lock);
			tomb_done(t, rc ? NULL : &info, rc == 0 || rc == -ENOENT);
			pthread_rwlock_unlock(&names_lock);
		}
	}
	fuse_reply_err(req, -rc);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	struct evl_task_info info;
	struct node p;
	int rc = node_get(parent, &p);

	if (rc || p.kind != N_TASKS) {
		fuse_reply_err(req, rc ? -rc : EPERM);
		return;
	}
	if (fs->cfg->nodelete || fs->cfg->ro) {
		fuse_reply_err(req, fs->cfg->ro ? EROFS : EPERM);
		return;
	}
	if (tomb_remove(name))
		rc = 0;
	else if (evl_task_lookup(fs->st, name, &info) == 0)
		rc = -ENOTEMPTY;	/* its events file is still there */
	else
		rc = -ENOENT;
	fuse_reply_err(req, -rc);
}

/* Refuse a change that makes @name (NULL: none), the name over 255 bytes first. */
static void op_refuse(fuse_req_t req, const char *name)
{
	if (name && strlen(name) > NAME_MAX)
		fuse_reply_err(req, ENAMETOOLONG);
	else
		fuse_reply_err(req, fs_of(req)->cfg->ro ? EROFS : EPERM);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	op_refuse(req, name);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	op_refuse(req, name);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	op_refuse(req, strlen(name) > NAME_MAX ? name : newname);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	op_refuse(req, newname);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	op_refuse(req, name);
}

/* ---- files ---- */

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	int acc = fi->flags & O_ACCMODE;
	struct handle *h;
	struct node n;
	int rc = 0;

	h = handle_new(req, ino, &n);
	if (!h)
		return;
	switch (n.kind) {
	case N_TASKEV:
		if (acc != O_RDONLY) {
			if (fs->cfg->ro)
				rc = -EROFS;
			else if (fi->flags & O_TRUNC)
				rc = -EPERM;
			else
				rc = evl_writer_open(fs->st, n.uid, &h->w);
			h->append = fi->flags & O_APPEND;
		} else {
			struct evl_task_info info;

			rc = evl_task_stat(fs->st, n.uid, &info);
		}
		break;
	case N_VEV:
	case N_VTASK:
		if (acc != O_RDONLY)
			rc = fs->cfg->ro ? -EROFS : -EPERM;
		else
			rc = evl_view_open(fs->st, n.prefix, n.plen, n.kind == N_VTASK ? n.uid : 0,
					   &h->v);
		break;
	case N_CONTROL:
		if (acc != O_WRONLY)
			h->buf = status_json(fs, &h->len);
		break;
	case N_METRICS:
		if (acc != O_RDONLY)
			rc = -EPERM;
		else
			h->buf = metrics_text(fs, &h->len);
		break;
	default:
		rc = -EISDIR;
	}
	if (rc) {
		handle_free(h);
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = (uintptr_t)h;
	fi->direct_io = 1;
	fuse_reply_open(req, fi);
}

/*
 * .control: a read at offset 0 takes the status anew (so a command written
 * through the same O_RDWR descriptor, then a pread at 0, shows its
 * outcome); reads further on continue that snapshot, so a reader taking
 * it in pieces gets one JSON object.  control_lock keeps a read that
 * replaces the snapshot from freeing it under another one on the handle.
 */
static pthread_mutex_t control_lock = PTHREAD_MUTEX_INITIALIZER;

static void read_control(fuse_req_t req, struct handle *h, off_t off, size_t size)
{
	char *copy = NULL;
	size_t n = 0;

	pthread_mutex_lock(&control_lock);
	if (off == 0) {
		size_t len;
		char *text = status_json(fs_of(req), &len);

		if (text) {
			free(h->buf);
			h->buf = text;
			h->len = len;
		}
	}
	if ((size_t)off < h->len) {
		n = h->len - off < size ? h->len - off : size;
		copy = malloc(n);
		if (copy)
			memcpy(copy, h->buf + off, n);
	}
	pthread_mutex_unlock(&control_lock);
	if (n && !copy)
		fuse_reply_err(req, ENOMEM);
	else
		fuse_reply_buf(req, copy, n);
	free(copy);
}

/* A read of a log or a view, on a reader thread (readpool.c); drops a reference to @arg. */
static void serve_read(fuse_req_t req, void *arg, size_t size, off_t off)
{
	struct handle *h = arg;
	struct fs *fs = fs_of(req);
	ssize_t n;
	char *buf;

	buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		goto out;
	}
	if (h->kind == N_TASKEV)
		n = evl_task_read(fs->st, h->uid, off, buf, size);
	else
		n = evl_view_read(h->v, off, buf, size);
	if (n < 0)
		fuse_reply_err(req, -n);
	else
		fuse_reply_buf(req, buf, n);
	free(buf);
out:
	handle_put(h);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;

	if (h->kind == N_CONTROL) {
		read_control(req, h, off, size);
		return;
	}
	if (h->kind == N_METRICS) {
		reply_from(req, h, off, size);
		return;
	}
	/* reads of logs and views may take milliseconds: not on a worker appends need */
	atomic_fetch_add(&h->refs, 1);
	if (!readpool_submit(req, serve_read, h, size, off))
		serve_read(req, h, size, off);
}

/* Run one .control command.  0 or -errno (the reason goes to the status). */
static int control_command(struct fs *fs, const char *buf, size_t size)
{
	struct evl_control c;
	char why[200];
	int rc;

	rc = evl_control_parse(buf, size, &c, why, sizeof(why));
	if (!rc && c.cmd == EVL_CONTROL_CHECKPOINT) {
		rc = evl_store_checkpoint(fs->st);
		snprintf(why, sizeof(why), "%s", rc ? strerror(-rc) : "");
	} else if (!rc) {
		rc = evl_compact_start(fs->st, &c.compact);
		if (rc == -ENOENT)
			snprintf(why, sizeof(why), "compact: no task %.60s", c.compact.task);
		else
			snprintf(why, sizeof(why), "%s", rc == -EBUSY ? "a compaction is running" :
				 rc == -EPERM ? "deleting is off (nodelete)" :
				 rc ? strerror(-rc) : "");
	}
	status_note_command(c.text, rc, rc ? why : NULL);
	if (rc)
		evl_log(LOG_WARNING, "control: %s: %s", c.text, why);
	return rc;
}

/* Did lock owner @owner write part of the line @h holds?  Under h->owner_lock. */
static bool held_by_locked(const struct handle *h, uint64_t owner)
{
	if (h->any_owner)
		return true;
	for (unsigned i = 0; i < h->nowners; i++)
		if (h->owners[i] == owner)
			return true;
	return false;
}

static bool held_by(struct handle *h, uint64_t owner)
{
	bool mine;

	pthread_mutex_lock(&h->owner_lock);
	mine = held_by_locked(h, owner);
	pthread_mutex_unlock(&h->owner_lock);
	return mine;
}

/*
 * After a write by @owner (@nl: its bytes hold a newline) that returned
 * @rc: who wrote the line now held.  Under h->lock.
 */
static void note_writer(struct handle *h, uint64_t owner, bool nl, int rc)
{
	bool held = evl_writer_held(h->w) > 0;

	pthread_mutex_lock(&h->owner_lock);
	if (!held || (!rc && nl)) {
		/* nothing held, or a new line begun by this write alone */
		h->nowners = 0;
		h->any_owner = false;
	}
	/* a refused write added nothing to the held line */
	if (!rc && held && !held_by_locked(h, owner)) {
		if (!owner || h->nowners == HELD_OWNERS)
			h->any_owner = true;
		else
			h->owners[h->nowners++] = owner;
	}
	pthread_mutex_unlock(&h->owner_lock);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct fs *fs = fs_of(req);
	int rc;

	if (h->kind == N_CONTROL) {
		if (fs->cfg->ro) {
			fuse_reply_err(req, EROFS);
			return;
		}
		rc = control_command(fs, buf, size);
	} else if (h->kind != N_TASKEV || !h->w) {
		rc = -EPERM;
	} else {
		rc = 0;
		pthread_mutex_lock(&h->lock);
		if (!h->append && (!h->next_off || (uint64_t)off != h->next_off)) {
			/*
			 * A write must land at the end (what is stored plus what
			 * this handle holds) or where this open file's last write
			 * ended (next_off).
			 */
			struct evl_task_info info;

			rc = evl_task_stat(fs->st, h->uid, &info);
			if (!rc && (uint64_t)off != info.size + evl_writer_held(h->w))
				rc = -EPERM;
		}
		if (!rc)
			rc = evl_writer_write(h->w, buf, size);
		if (!rc && !h->append)
			h->next_off = off + size;
		/* the kernel passes the writer's lock owner with every direct-io write */
		note_writer(h, fi->lock_owner, memchr(buf, '\n', size) != NULL, rc);
		pthread_mutex_unlock(&h->lock);
	}
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_write(req, size);
}

/* close(2) of one descriptor of the open file (see WRITERS AND CLOSE). */
static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	int rc = 0;

	/* a process that wrote none of the held line: nothing to do, nor to wait for */
	if (h->w && held_by(h, fi->lock_owner)) {
		pthread_mutex_lock(&h->lock);
		/* look again: the line may have ended, and another begun, meanwhile */
		if (evl_writer_held(h->w) && held_by(h, fi->lock_owner))
			rc = evl_writer_flush_valid(h->w);
		if (!evl_writer_held(h->w))
			note_writer(h, 0, false, 0);	/* nothing held: nobody's */
		pthread_mutex_unlock(&h->lock);
	}
	fuse_reply_err(req, -rc);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	/* the last close: a line still held is stored now, or logged (handle_free) */
	handle_put((struct handle *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	fuse_reply_err(req, -evl_store_sync(fs_of(req)->st));
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;

	if (statvfs(fs_of(req)->cfg->data_dir, &sv)) {
		fuse_reply_err(req, errno);
		return;
	}
	sv.f_namemax = 255;
	fuse_reply_statfs(req, &sv);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	/*
	 * Each write request is all-or-nothing.  The kernel cuts a write()
	 * into requests of at most max_write bytes and max_pages pages of the
	 * writer's buffer; libfuse 3.14 caps max_write at its 1 MiB receive
	 * buffer and sets max_pages = 256 from it, so a write() of up to
	 * 1 MiB - 4095 bytes is always one request (1 MiB from a page-aligned
	 * buffer), and a larger one ends at the first refused request with
	 * the count before it (README, "Writing").
	 */
	conn->max_write = 1 << 20;
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	/*
	 * Asynchronous direct I/O (io_submit on an O_DIRECT descriptor)
	 * would send a write's requests all at once, to run on any worker in
	 * any order: without it they come one after the other, as for write().
	 */
	conn->want &= ~FUSE_CAP_ASYNC_DIO;
}

const struct fuse_lowlevel_ops evlogfs_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.symlink = op_symlink,
	.rename = op_rename,
	.link = op_link,
	.create = op_create,
	.open = op_open,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
	.release = op_release,
	.fsync = op_fsync,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.releasedir = op_releasedir,
	.statfs = op_statfs,
};
