/*
 * event.h - validate one event line and extract its type.
 *
 * An event is one line: a JSON object (RFC 8259 exactly, UTF-8 per RFC
 * 3629) whose member named by the store's type_field appears once, as a
 * string of 1-255 bytes with no '/', NUL or control byte, not starting
 * with '.'.  The JSON verdict is simdjson's (json_simd.h): no leading
 * zeros, no overlong UTF-8, surrogates or code points past U+10FFFF, no
 * escaped lone surrogates, no NaN, single quotes, raw control bytes in
 * strings, byte order mark, or anything after the object; containers
 * nested at most 128 deep (the event is level 1).  Other duplicate
 * members are allowed (RFC 8259 says SHOULD be unique, not MUST).
 *
 * A validator made with EVENT_STORED judges events that are already
 * stored or journaled: it also accepts what the json-c based validator of
 * earlier versions accepted (a duplicate type member then means the last
 * one, as it did then), so that a store they wrote still opens (journal
 * replay) and checks clean.  New writes always get the strict validator.
 *
 * Caveats: give each handle or thread its own validator (an EVENT_STORED
 * one holds a json-c tokener; the strict one holds only its settings and
 * uses a parser per thread).  It keeps no reference to the lines it is shown.
 */
#ifndef EVL_EVENT_H
#define EVL_EVENT_H

#include <stdbool.h>
#include <stddef.h>

#define EVENT_TYPE_MAX 255
#define EVENT_JSON_DEPTH 128

/* event_validator_new_ex flags */
#define EVENT_STORED 0x1	/* accept what any earlier version accepted */

struct event_validator;

/* Why a line was refused: errno (EINVAL, EFBIG or ENOMEM), 1-based column, words. */
struct event_error {
	int err;
	size_t col;
	char reason[96];
};

/*
 * Make a validator for members named @type_field and events of at most
 * @max_event bytes, newline included.
 * Returns 0, -EINVAL (bad field name or flags) or -ENOMEM.  Free with
 * event_validator_free.
 */
int event_validator_new(const char *type_field, size_t max_event,
			struct event_validator **out);
int event_validator_new_ex(const char *type_field, size_t max_event, unsigned flags,
			   struct event_validator **out);
void event_validator_free(struct event_validator *v);

/*
 * Validate @line (@len bytes, newline excluded).  On success copy the decoded
 * type into @type (EVENT_TYPE_MAX + 1 bytes, NUL-terminated), set *@type_len
 * and return 0.  On refusal fill @err and return -EINVAL, -EFBIG or -ENOMEM.
 */
int event_validate(struct event_validator *v, const char *line, size_t len,
		   char *type, size_t *type_len, struct event_error *err);

/* True if @line holds only JSON whitespace (such lines are skipped). */
bool event_is_blank(const char *line, size_t len);

/*
 * Check a type name or a view prefix: 1-255 bytes, no '/', NUL or control
 * byte, not starting with '.' (so "." and ".." are never types, and a
 * by-type listing never shows them twice).  Returns 0, -EINVAL or
 * -ENAMETOOLONG.
 */
int event_check_name(const char *name, size_t len);

#endif
