/*
 * grow.h - the one way an array or a buffer grows in this project (core,
 * the daemon, the tools and the tests): doubling, so appending n elements
 * costs O(n) copies, with the size arithmetic checked once, here.
 */
#ifndef EVL_GROW_H
#define EVL_GROW_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

/*
 * Make the array *@pp (malloc'ed, room for *@cap elements of @size bytes)
 * hold at least @need elements: reallocated to twice its room as often as
 * needed (to 1 KiB, at least 8 elements, when empty).  0, or -ENOMEM with
 * the array and *@cap kept.
 */
static inline int grow_array(void *pp, size_t *cap, size_t need, size_t size)
{
	void **p = pp;
	size_t c = *cap ? *cap : (size < 128 ? 1024 / size : 8);
	void *n;

	if (need <= *cap)
		return 0;
	if (need > SIZE_MAX / 2 / size)
		return -ENOMEM;
	while (c < need)
		c *= 2;
	n = realloc(*p, c * size);
	if (!n)
		return -ENOMEM;
	*p = n;
	*cap = c;
	return 0;
}

/* grow_array for a byte buffer: *@pp holds *@cap bytes, make it hold @need. */
static inline int grow_bytes(void *pp, size_t *cap, size_t need)
{
	return grow_array(pp, cap, need, 1);
}

/* grow_array(&p, &cap, need, sizeof(*p)) for an array @p of any type. */
#define GROW(p, cap, need) grow_array(&(p), &(cap), (need), sizeof(*(p)))

#endif
