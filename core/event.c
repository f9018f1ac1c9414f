/*
 * event.c - event validation: the JSON verdict of json_simd.cpp, then the
 * type member's rules; and, for EVENT_STORED validators, the json-c based
 * verdict of earlier versions as a fallback.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "event.h"
#include "evlog.h"
#include "json_simd.h"

struct event_validator {
	char *type_field;
	size_t field_len;
	size_t max_event;
	unsigned flags;
	struct json_tokener *tok;	/* EVENT_STORED: the earlier versions' parser */
};

int event_validator_new_ex(const char *type_field, size_t max_event, unsigned flags,
			   struct event_validator **out)
{
	struct event_validator *v;

	if (!type_field || !*type_field || max_event < 2 || (flags & ~EVENT_STORED))
		return -EINVAL;
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->type_field = strdup(type_field);
	if (flags & EVENT_STORED)
		v->tok = json_tokener_new_ex(EVENT_JSON_DEPTH);
	if (!v->type_field || (flags & EVENT_STORED && !v->tok)) {
		event_validator_free(v);
		return -ENOMEM;
	}
	if (v->tok)
		json_tokener_set_flags(v->tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	v->field_len = strlen(type_field);
	v->max_event = max_event;
	v->flags = flags;
	*out = v;
	return 0;
}

int event_validator_new(const char *type_field, size_t max_event,
			struct event_validator **out)
{
	return event_validator_new_ex(type_field, max_event, 0, out);
}

void event_validator_free(struct event_validator *v)
{
	if (!v)
		return;
	if (v->tok)
		json_tokener_free(v->tok);
	free(v->type_field);
	free(v);
}

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

bool event_is_blank(const char *line, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!is_ws(line[i]))
			return false;
	return true;
}

/* The rules of a type name, with or without the one about a leading '.'. */
static int check_name(const char *name, size_t len, bool dot_ok)
{
	if (len == 0)
		return -EINVAL;
	if (len > EVENT_TYPE_MAX)
		return -ENAMETOOLONG;
	if (name[0] == '.' && !dot_ok)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = name[i];

		if (c < 0x20 || c == 0x7f || c == '/')
			return -EINVAL;
	}
	return 0;
}

int event_check_name(const char *name, size_t len)
{
	return check_name(name, len, false);
}

static int refuse(struct event_error *err, int e, size_t col, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int refuse(struct event_error *err, int e, size_t col, const char *fmt, ...)
{
	va_list ap;

	err->err = e;
	err->col = col;
	va_start(ap, fmt);
	vsnprintf(err->reason, sizeof(err->reason), fmt, ap);
	va_end(ap);
	return -e;
}

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Words for what json_simd refused at @line[@off]. */
static int refuse_json(struct event_error *err, const struct jsimd_result *r,
		       const char *line, size_t len)
{
	size_t col = r->off + 1, n;
	unsigned char c = r->off < len ? line[r->off] : 0;

	switch (r->code) {
	case JSIMD_NOT_OBJECT:
		return refuse(err, EINVAL, col, "not a JSON object");
	case JSIMD_UTF8:
		return refuse(err, EINVAL, col, "invalid JSON: invalid UTF-8 (RFC 3629)");
	case JSIMD_CONTROL:
		return refuse(err, EINVAL, col, "invalid JSON: unescaped control character in string");
	case JSIMD_STRING:
		return refuse(err, EINVAL, col,
			      "invalid JSON: bad escape or unpaired surrogate in string");
	case JSIMD_NUMBER:
		return refuse(err, EINVAL, col, "invalid JSON: bad number (RFC 8259: no leading "
			      "zero, digits after '.', 'e' and '-')");
	case JSIMD_LITERAL:
		for (n = 0; r->off + n < len && is_alpha(line[r->off + n]); n++)
			;
		return refuse(err, EINVAL, col, "invalid JSON: bare word '%.*s'",
			      (int)(n > 20 ? 20 : n), line + r->off);
	case JSIMD_END:
		return refuse(err, EINVAL, col, "invalid JSON: unexpected end of line");
	case JSIMD_TRAILING:
		return refuse(err, EINVAL, col, "invalid JSON: text after the object");
	case JSIMD_DEPTH:
		return refuse(err, EINVAL, col, "invalid JSON: nested deeper than %d",
			      EVENT_JSON_DEPTH);
	case JSIMD_NOMEM:
		return refuse(err, ENOMEM, col, "out of memory");
	case JSIMD_STRUCTURE:
	default:
		if (c == '\'')
			return refuse(err, EINVAL, col, "invalid JSON: single-quoted string");
		if (c > 0x20 && c < 0x7f)
			return refuse(err, EINVAL, col, "invalid JSON: unexpected '%c'", c);
		return refuse(err, EINVAL, col, "invalid JSON: unexpected byte 0x%02x", c);
	}
}

static int strict_validate(struct event_validator *v, const char *line, size_t len,
			   char *type, size_t *type_len, struct event_error *err)
{
	struct jsimd_result r;
	size_t i;

	for (i = 0; i < len && is_ws(line[i]); i++)
		;
	if (i == len || line[i] != '{')
		return refuse(err, EINVAL, i + 1, "not a JSON object");
	if (jsimd_check(line, len, v->type_field, v->field_len, type, EVENT_TYPE_MAX + 1, &r))
		return refuse_json(err, &r, line, len);
	if (!r.nfield)
		return refuse(err, EINVAL, 1, "missing \"%s\" member", v->type_field);
	if (r.nfield > 1)
		return refuse(err, EINVAL, 1, "duplicate \"%s\" member", v->type_field);
	if (!r.field_is_string)
		return refuse(err, EINVAL, 1, "\"%s\" is not a string", v->type_field);
	if (check_name(type, r.field_len, false))
		return refuse(err, EINVAL, 1, "\"%s\" must be 1-255 bytes, no '/', control byte "
			      "or leading '.'", v->type_field);
	type[r.field_len] = '\0';
	*type_len = r.field_len;
	return 0;
}

/* ---- the json-c based verdict of earlier versions (EVENT_STORED only) ---- */

/*
 * What json-c accepts in strict mode but RFC 8259 does not.  Runs only on
 * lines json-c parsed, so brackets and escapes are already known good.
 */
static int legacy_rfc_check(const char *s, size_t len)
{
	bool in_str = false;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = s[i];

		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = false;
			else if (c < 0x20)
				return -EINVAL;
			continue;
		}
		if (c == '"') {
			in_str = true;
		} else if (c == '\'') {
			return -EINVAL;
		} else if (c == '.' && (i + 1 >= len || !is_digit(s[i + 1]))) {
			return -EINVAL;
		} else if (is_alpha(c)) {
			size_t j = i;

			while (j < len && is_alpha(s[j]))
				j++;
			if ((c == 'e' || c == 'E') && j == i + 1 && i > 0 && is_digit(s[i - 1]))
				continue;
			if (!((j - i == 4 && (!memcmp(s + i, "true", 4) || !memcmp(s + i, "null", 4))) ||
			      (j - i == 5 && !memcmp(s + i, "false", 5))))
				return -EINVAL;
			i = j - 1;
		}
	}
	return 0;
}

static int legacy_validate(struct event_validator *v, const char *line, size_t len,
			   char *type, size_t *type_len)
{
	struct json_object *obj, *member;
	const char *tstr;
	size_t tlen;
	int rc = -EINVAL;

	json_tokener_reset(v->tok);
	obj = json_tokener_parse_ex(v->tok, line, len);
	if (!obj)
		return -EINVAL;
	if (json_object_is_type(obj, json_type_object) && !legacy_rfc_check(line, len) &&
	    json_object_object_get_ex(obj, v->type_field, &member) &&
	    json_object_is_type(member, json_type_string)) {
		tstr = json_object_get_string(member);
		tlen = json_object_get_string_len(member);
		if (!check_name(tstr, tlen, true)) {
			memcpy(type, tstr, tlen);
			type[tlen] = '\0';
			*type_len = tlen;
			rc = 0;
		}
	}
	json_object_put(obj);
	return rc;
}

int event_validate(struct event_validator *v, const char *line, size_t len,
		   char *type, size_t *type_len, struct event_error *err)
{
	int rc;

	if (len + 1 > v->max_event)
		return refuse(err, EFBIG, v->max_event,
			      "event of %zu bytes exceeds max_event=%zu", len + 1, v->max_event);
	rc = strict_validate(v, line, len, type, type_len, err);
	if (rc == -EINVAL && (v->flags & EVENT_STORED) &&
	    !legacy_validate(v, line, len, type, type_len))
		return 0;
	return rc;
}

size_t evl_utf8_prefix(const char *s, size_t len)
{
	return jsimd_utf8_prefix(s, len);
}
