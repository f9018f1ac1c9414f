/*
 * nodes.c - inode numbers.
 *
 * Fixed and task inodes are computed; by-type nodes (a prefix, and for
 * N_VTASK a task) get a number on their first lookup, kept in a table with
 * the kernel's lookup count and dropped when it forgets them.  The same
 * node looked up again while known gets the same number.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "evlogfs.h"

#define BUCKETS 4096

struct dyn {
	struct dyn *by_ino, *by_key;
	fuse_ino_t ino;
	uint64_t nlookup;
	struct node n;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;	/* all below */
static struct dyn *ino_tab[BUCKETS], *key_tab[BUCKETS];
static uint64_t next_dyn = INO_DYN_BASE;

static size_t hash_ino(fuse_ino_t ino)
{
	return (ino * 0x9e3779b97f4a7c15ull) >> 52;
}

static size_t hash_key(const struct node *n)
{
	uint64_t h = 1469598103934665603ull ^ n->kind ^ (n->uid << 8);

	for (size_t i = 0; i < n->plen; i++)
		h = (h ^ (unsigned char)n->prefix[i]) * 1099511628211ull;
	return h % BUCKETS;
}

static bool same_key(const struct node *a, const struct node *b)
{
	return a->kind == b->kind && a->uid == b->uid && a->plen == b->plen &&
	       !memcmp(a->prefix, b->prefix, a->plen);
}

int nodes_init(void)
{
	return 0;
}

void nodes_fini(void)
{
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < BUCKETS; i++)
		while (ino_tab[i]) {
			struct dyn *d = ino_tab[i];

			ino_tab[i] = d->by_ino;
			free(d);
		}
	memset(key_tab, 0, sizeof(key_tab));
	pthread_mutex_unlock(&lock);
}

int node_get(fuse_ino_t ino, struct node *out)
{
	memset(out, 0, sizeof(*out));
	switch (ino) {
	case INO_ROOT:
		out->kind = N_ROOT;
		return 0;
	case INO_TASKS:
		out->kind = N_TASKS;
		return 0;
	case INO_BYTYPE:
		out->kind = N_BYTYPE;
		return 0;
	case INO_CONTROL:
		out->kind = N_CONTROL;
		return 0;
	case INO_METRICS:
		out->kind = N_METRICS;
		return 0;
	}
	if (ino >= INO_TASK_BASE && ino < INO_DYN_BASE) {
		out->kind = (ino - INO_TASK_BASE) & 1 ? N_TASKEV : N_TASKDIR;
		out->uid = (ino - INO_TASK_BASE) / 2;
		return 0;
	}
	pthread_mutex_lock(&lock);
	for (struct dyn *d = ino_tab[hash_ino(ino)]; d; d = d->by_ino)
		if (d->ino == ino) {
			*out = d->n;
			pthread_mutex_unlock(&lock);
			return 0;
		}
	pthread_mutex_unlock(&lock);
	return -ENOENT;
}

fuse_ino_t node_ref(const struct node *n)
{
	struct dyn *d;
	size_t k;

	switch (n->kind) {
	case N_TASKDIR:
		return INO_TASK_BASE + 2 * n->uid;
	case N_TASKEV:
		return INO_TASK_BASE + 2 * n->uid + 1;
	case N_ROOT:
		return INO_ROOT;
	case N_TASKS:
		return INO_TASKS;
	case N_BYTYPE:
		return INO_BYTYPE;
	case N_CONTROL:
		return INO_CONTROL;
	case N_METRICS:
		return INO_METRICS;
	default:
		break;
	}
	k = hash_key(n);
	pthread_mutex_lock(&lock);
	for (d = key_tab[k]; d; d = d->by_key)
		if (same_key(&d->n, n))
			break;
	if (!d) {
		d = calloc(1, sizeof(*d));
		if (!d) {
			pthread_mutex_unlock(&lock);
			return 0;
		}
		d->n = *n;
		d->ino = next_dyn++;
		d->by_key = key_tab[k];
		key_tab[k] = d;
		d->by_ino = ino_tab[hash_ino(d->ino)];
		ino_tab[hash_ino(d->ino)] = d;
	}
	d->nlookup++;
	pthread_mutex_unlock(&lock);
	return d->ino;
}

void node_forget(fuse_ino_t ino, uint64_t count)
{
	struct dyn **pp, *d;

	if (ino < INO_DYN_BASE)
		return;
	pthread_mutex_lock(&lock);
	for (pp = &ino_tab[hash_ino(ino)]; *pp && (*pp)->ino != ino; pp = &(*pp)->by_ino)
		;
	d = *pp;
	if (d && (d->nlookup -= count < d->nlookup ? count : d->nlookup) == 0) {
		struct dyn **kp = &key_tab[hash_key(&d->n)];

		*pp = d->by_ino;
		while (*kp != d)
			kp = &(*kp)->by_key;
		*kp = d->by_key;
		free(d);
	}
	pthread_mutex_unlock(&lock);
}
