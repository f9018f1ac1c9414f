/*
 * event.h - validate one event line and extract its type.
 *
 * An event is one line: a JSON object (RFC 8259, valid UTF-8) whose member
 * named by the store's type_field is a string of 1-255 bytes with no '/',
 * NUL or control byte.  Parsing is json-c's (a reused tokener in strict mode
 * with UTF-8 validation); a short lexical pass afterwards rejects what json-c
 * still accepts in strict mode but RFC 8259 does not (single quotes, raw
 * control bytes in strings, NaN/Infinity, "1.").
 *
 * Caveats: a validator is not thread-safe; give each thread or handle its
 * own.  It keeps no reference to the lines it is shown.
 */
#ifndef EVL_EVENT_H
#define EVL_EVENT_H

#include <stdbool.h>
#include <stddef.h>

#define EVENT_TYPE_MAX 255

struct event_validator;

/* Why a line was refused: errno (EINVAL or EFBIG), 1-based column, words. */
struct event_error {
	int err;
	size_t col;
	char reason[96];
};

/*
 * Make a validator for members named @type_field and events of at most
 * @max_event bytes, newline included.
 * Returns 0, -EINVAL (bad field name) or -ENOMEM.  Free with event_validator_free.
 */
int event_validator_new(const char *type_field, size_t max_event,
			struct event_validator **out);
void event_validator_free(struct event_validator *v);

/*
 * Validate @line (@len bytes, newline excluded).  On success copy the decoded
 * type into @type (EVENT_TYPE_MAX + 1 bytes, NUL-terminated), set *@type_len
 * and return 0.  On refusal fill @err and return -EINVAL or -EFBIG.
 */
int event_validate(struct event_validator *v, const char *line, size_t len,
		   char *type, size_t *type_len, struct event_error *err);

/* True if @line holds only JSON whitespace (such lines are skipped). */
bool event_is_blank(const char *line, size_t len);

/*
 * Check a type name or a view prefix: 1-255 bytes, no '/', NUL or control
 * byte.  Returns 0, -EINVAL or -ENAMETOOLONG.
 */
int event_check_name(const char *name, size_t len);

#endif
