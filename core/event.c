/*
 * event.c - event validation with json-c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "event.h"

struct event_validator {
	struct json_tokener *tok;
	char *type_field;
	size_t max_event;
};

#define EVENT_JSON_DEPTH 128

int event_validator_new(const char *type_field, size_t max_event,
			struct event_validator **out)
{
	struct event_validator *v;

	if (!type_field || !*type_field || max_event < 2)
		return -EINVAL;
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->tok = json_tokener_new_ex(EVENT_JSON_DEPTH);
	v->type_field = strdup(type_field);
	if (!v->tok || !v->type_field) {
		event_validator_free(v);
		return -ENOMEM;
	}
	json_tokener_set_flags(v->tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	v->max_event = max_event;
	*out = v;
	return 0;
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

int event_check_name(const char *name, size_t len)
{
	if (len == 0)
		return -EINVAL;
	if (len > EVENT_TYPE_MAX)
		return -ENAMETOOLONG;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = name[i];

		if (c < 0x20 || c == 0x7f || c == '/')
			return -EINVAL;
	}
	return 0;
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

/*
 * What json-c accepts in strict mode but RFC 8259 does not.  Runs only on
 * lines json-c parsed, so brackets and escapes are already known good.
 */
static int rfc_check(const char *s, size_t len, struct event_error *err)
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
				return refuse(err, EINVAL, i + 1,
					      "invalid JSON: unescaped control character in string");
			continue;
		}
		if (c == '"') {
			in_str = true;
		} else if (c == '\'') {
			return refuse(err, EINVAL, i + 1, "invalid JSON: single-quoted string");
		} else if (c == '.' && (i + 1 >= len || !is_digit(s[i + 1]))) {
			return refuse(err, EINVAL, i + 1, "invalid JSON: number ends with '.'");
		} else if (is_alpha(c)) {
			size_t j = i;

			while (j < len && is_alpha(s[j]))
				j++;
			if ((c == 'e' || c == 'E') && j == i + 1 && i > 0 && is_digit(s[i - 1]))
				continue;
			if (!((j - i == 4 && (!memcmp(s + i, "true", 4) || !memcmp(s + i, "null", 4))) ||
			      (j - i == 5 && !memcmp(s + i, "false", 5))))
				return refuse(err, EINVAL, i + 1, "invalid JSON: bare word '%.*s'",
					      (int)(j - i > 20 ? 20 : j - i), s + i);
			i = j - 1;
		}
	}
	return 0;
}

int event_validate(struct event_validator *v, const char *line, size_t len,
		   char *type, size_t *type_len, struct event_error *err)
{
	struct json_object *obj, *member;
	enum json_tokener_error jerr;
	const char *tstr;
	size_t i, tlen;
	int rc;

	if (len + 1 > v->max_event)
		return refuse(err, EFBIG, v->max_event,
			      "event of %zu bytes exceeds max_event=%zu", len + 1, v->max_event);
	for (i = 0; i < len && is_ws(line[i]); i++)
		;
	if (i == len || line[i] != '{')
		return refuse(err, EINVAL, i + 1, "not a JSON object");

	json_tokener_reset(v->tok);
	obj = json_tokener_parse_ex(v->tok, line, len);
	jerr = json_tokener_get_error(v->tok);
	if (!obj) {
		if (jerr == json_tokener_continue)
			return refuse(err, EINVAL, len + 1, "invalid JSON: unexpected end of line");
		return refuse(err, EINVAL, json_tokener_get_parse_end(v->tok) + 1,
			      "invalid JSON: %s", json_tokener_error_desc(jerr));
	}
	rc = rfc_check(line, len, err);
	if (rc)
		goto out;

	if (!json_object_object_get_ex(obj, v->type_field, &member)) {
		rc = refuse(err, EINVAL, 1, "missing \"%s\" member", v->type_field);
		goto out;
	}
	if (!json_object_is_type(member, json_type_string)) {
		rc = refuse(err, EINVAL, 1, "\"%s\" is not a string", v->type_field);
		goto out;
	}
	tstr = json_object_get_string(member);
	tlen = json_object_get_string_len(member);
	rc = event_check_name(tstr, tlen);
	if (rc) {
		rc = refuse(err, EINVAL, 1, "\"%s\" must be 1-255 bytes without '/' or control bytes",
			    v->type_field);
		goto out;
	}
	memcpy(type, tstr, tlen);
	type[tlen] = '\0';
	*type_len = tlen;
out:
	json_object_put(obj);
	return rc;
}
