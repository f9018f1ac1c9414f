/*
 * typeset.h - the distinct types of a store, counted against max_types
 * (SPEC: an event bringing one type more is refused with EDQUOT), so that
 * no writer can make views O(types) for everyone.  Private to core/.
 *
 * A set of names (glibc's hsearch_r table, grown by rebuilding it when it
 * fills): filled at open with the types the index holds live events of
 * and those of records not yet applied, then added to by each write the
 * store accepts.  A type whose events are all deleted stays counted until
 * the next open.  Not thread-safe: the store guards it with append_lock.
 */
#ifndef EVL_TYPESET_H
#define EVL_TYPESET_H

#include <stdbool.h>
#include <stddef.h>

struct typeset;

/* An empty set.  0 or -ENOMEM. */
int typeset_new(struct typeset **out);
void typeset_free(struct typeset *s);

/* Is type @name (@len bytes, no NUL needed) in @s? */
bool typeset_has(struct typeset *s, const char *name, size_t len);
/* Add @name (nothing if it is there).  0 or -ENOMEM (@s unchanged). */
int typeset_add(struct typeset *s, const char *name, size_t len);
/* How many types @s holds. */
size_t typeset_count(const struct typeset *s);

#endif
