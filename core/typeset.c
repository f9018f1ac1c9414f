/*
 * typeset.c - the distinct types of a store, counted against max_types
 * (typeset.h).
 */
#include <errno.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "grow.h"
#include "typeset.h"

struct typeset {
	struct hsearch_data h;
	size_t slots;		/* the table's size: rebuilt larger at 3/4 full */
	char **names;		/* every name, NUL-terminated, owned */
	size_t n, cap;
};

static int table_make(struct typeset *s, size_t slots)
{
	struct hsearch_data h;

	memset(&h, 0, sizeof(h));
	if (!hcreate_r(slots, &h))
		return -ENOMEM;
	for (size_t i = 0; i < s->n; i++) {
		ENTRY e = { s->names[i], NULL }, *found;

		if (!hsearch_r(e, ENTER, &found, &h)) {
			hdestroy_r(&h);
			return -ENOMEM;
		}
	}
	if (s->slots)
		hdestroy_r(&s->h);
	s->h = h;
	s->slots = slots;
	return 0;
}

int typeset_new(struct typeset **out)
{
	struct typeset *s = calloc(1, sizeof(*s));
	int rc;

	if (!s)
		return -ENOMEM;
	rc = table_make(s, 64);
	if (rc) {
		free(s);
		return rc;
	}
	*out = s;
	return 0;
}

void typeset_free(struct typeset *s)
{
	if (!s)
		return;
	if (s->slots)
		hdestroy_r(&s->h);
	for (size_t i = 0; i < s->n; i++)
		free(s->names[i]);
	free(s->names);
	free(s);
}

bool typeset_has(struct typeset *s, const char *name, size_t len)
{
	char key[EVENT_TYPE_MAX + 1];
	ENTRY e = { key, NULL }, *found;

	if (len > EVENT_TYPE_MAX)
		return false;
	memcpy(key, name, len);
	key[len] = '\0';
	return hsearch_r(e, FIND, &found, &s->h) != 0;
}

int typeset_add(struct typeset *s, const char *name, size_t len)
{
	ENTRY e, *found;
	char *copy;

	if (typeset_has(s, name, len))
		return 0;
	if (len > EVENT_TYPE_MAX)
		return -EINVAL;
	if (GROW(s->names, s->cap, s->n + 1))
		return -ENOMEM;
	/* hsearch_r fills badly past 3/4 and fails when full: a table twice the size */
	if ((s->n + 1) * 4 > s->slots * 3 && table_make(s, s->slots * 2))
		return -ENOMEM;
	copy = strndup(name, len);
	if (!copy)
		return -ENOMEM;
	e = (ENTRY){ copy, NULL };
	if (!hsearch_r(e, ENTER, &found, &s->h)) {
		free(copy);
		return -ENOMEM;
	}
	s->names[s->n++] = copy;
	return 0;
}

size_t typeset_count(const struct typeset *s)
{
	return s->n;
}
