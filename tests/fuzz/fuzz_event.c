/*
 * fuzz_event.c - libFuzzer target: the writers' path for one handle, the
 * line buffer feeding the event validator, against a model.
 *
 * Input: byte 0 picks max_event (small, so that EFBIG paths are reached);
 * then a sequence of write() calls, each one length byte and its bytes.
 * Every complete line goes to event_validate; a refused line fails the
 * whole write, which is rolled back, as the store does.  Checked:
 *   - the lines the buffer hands out, and what it holds after each write,
 *     equal a plain model of "held bytes + this write, split at newlines";
 *   - lines are shown in order and the first bad one is refused: a write
 *     fails with EFBIG exactly when the model's first line longer than
 *     max_event (or a held tail that long) comes before any line the
 *     validator refuses, with EINVAL when a refused line comes first;
 *   - the buffer says whether the refused line is the held one, and, as the
 *     store does, that line is then dropped (the next line starts clean);
 *   - judging a line twice gives the same verdict, column and reason (the
 *     thread's reused parser keeps nothing of the line before);
 *   - a refusal has a column within the line (or just past its end);
 *   - what the strict validator accepts, the EVENT_STORED one (recovery's)
 *     accepts with the same type, so a journal never fails to replay;
 *   - an accepted event's type is the member's string, checked again with
 *     json-c when json-c parses the line too (it refuses some valid lines:
 *     128 levels deep) and the line has no \u0000 escape: json-c keeps
 *     object keys as C strings, so {"type":"a","type\u0000":"b"} has the
 *     type "b" for json-c and "a" for RFC 8259 (and for us).
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "event.h"
#include "linebuf.h"

#define check(c) do { if (!(c)) { fprintf(stderr, "fuzz_event: %s:%d: %s\n", \
	__FILE__, __LINE__, #c); abort(); } } while (0)

struct feed {
	struct event_validator *v, *stored;
	const char *model_lines[256];	/* the model's lines of this write */
	size_t model_len[256], nmodel;
	size_t seen;
};

/* json-c's verdict on @line: 1 if an object with a string type member. */
static int fresh_verdict(const char *line, size_t len, char *type, size_t *tlen)
{
	struct json_tokener *tok = json_tokener_new_ex(128);
	struct json_object *obj, *m;
	int ok = 0;

	check(tok);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, line, len);
	if (obj && json_object_object_get_ex(obj, "type", &m) &&
	    json_object_is_type(m, json_type_string)) {
		*tlen = json_object_get_string_len(m);
		if (*tlen <= EVENT_TYPE_MAX)
			memcpy(type, json_object_get_string(m), *tlen);
		ok = 1;
	}
	json_object_put(obj);
	json_tokener_free(tok);
	return ok;
}

static int take(void *arg, const char *line, size_t len, size_t index)
{
	struct feed *f = arg;
	char type[EVENT_TYPE_MAX + 1], ftype[EVENT_TYPE_MAX + 1];
	size_t tlen = 0, flen = 0;
	struct event_error err = { 0 };
	int rc;

	check(index == f->seen && index < f->nmodel);
	check(len == f->model_len[index] && !memcmp(line, f->model_lines[index], len));
	f->seen++;
	if (event_is_blank(line, len))
		return 0;
	rc = event_validate(f->v, line, len, type, &tlen, &err);
	check(rc == 0 || rc == -EINVAL || rc == -EFBIG);
	check(rc == 0 || (err.err == -rc && err.reason[0] && memchr(err.reason, 0, sizeof(err.reason))));
	check(rc != -EINVAL || (err.col >= 1 && err.col <= len + 1));
	{
		struct event_error again = { 0 };
		char atype[EVENT_TYPE_MAX + 1];
		size_t alen = 0;
		int arc = event_validate(f->v, line, len, atype, &alen, &again);

		check(arc == rc);
		check(rc ? again.col == err.col && !strcmp(again.reason, err.reason) :
			   alen == tlen && !memcmp(atype, type, tlen));
	}
	if (rc == 0) {
		check(tlen >= 1 && tlen <= EVENT_TYPE_MAX && type[tlen] == '\0');
		check(event_check_name(type, tlen) == 0);
		if (!memmem(line, len, "\\u0000", 6) && fresh_verdict(line, len, ftype, &flen))
			check(tlen == flen && !memcmp(type, ftype, tlen));
		check(event_validate(f->stored, line, len, ftype, &flen, &err) == 0);
		check(flen == tlen && !memcmp(type, ftype, tlen));
	}
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct event_validator *v[4], *stored;
	static const size_t maxes[4] = { 16, 64, 300, 4096 };
	struct linebuf lb;
	char *held = NULL;	/* the model's held bytes */
	size_t held_len = 0, max;
	struct feed f;

	if (size < 1)
		return 0;
	max = maxes[data[0] & 3];
	if (!v[data[0] & 3])
		check(event_validator_new("type", max, &v[data[0] & 3]) == 0);
	if (!stored)
		check(event_validator_new_ex("type", 8192, EVENT_STORED, &stored) == 0);
	f.v = v[data[0] & 3];
	f.stored = stored;
	linebuf_init(&lb, max);
	held = malloc(size + 1);
	check(held);
	for (size_t pos = 1; pos < size;) {
		size_t n = data[pos++], all_len, start, i, big_at = SIZE_MAX, refused;
		const char *w = (const char *)data + pos;
		char *all;
		int rc;

		if (n > size - pos)
			n = size - pos;
		pos += n;
		/* the model: held + this write, split at newlines */
		all = malloc(held_len + n + 1);
		check(all);
		memcpy(all, held, held_len);
		memcpy(all + held_len, w, n);
		all_len = held_len + n;
		f.nmodel = f.seen = 0;
		for (start = 0, i = 0; i < all_len; i++) {
			if (all[i] != '\n')
				continue;
			if (i - start + 1 > max && big_at == SIZE_MAX)
				big_at = f.nmodel;
			if (f.nmodel < 256) {
				f.model_lines[f.nmodel] = all + start;
				f.model_len[f.nmodel] = i - start;
			}
			f.nmodel++;
			start = i + 1;
		}
		if (all_len - start + 1 > max && big_at == SIZE_MAX)
			big_at = f.nmodel;	/* the tail could never become a line */
		check(f.nmodel <= 256);

		rc = linebuf_feed(&lb, w, n, take, &f);
		if (rc == 0) {
			check(big_at == SIZE_MAX && f.seen == f.nmodel);
			check(linebuf_next_pending(&lb) == all_len - start);
			linebuf_commit(&lb);
			held_len = all_len - start;
			memmove(held, all + start, held_len);
		} else {
			check(rc == -EFBIG || rc == -EINVAL);
			check(rc == -EINVAL || f.seen == big_at);
			check(rc == -EFBIG || (f.seen > 0 && f.seen - 1 < big_at));
			refused = rc == -EFBIG ? big_at : f.seen - 1;
			check(linebuf_refused_held(&lb) == (held_len > 0 && refused == 0));
			check(linebuf_pending(&lb) == held_len);
			if (linebuf_refused_held(&lb)) {
				linebuf_clear(&lb);
				held_len = 0;
			}
		}
		check(linebuf_pending(&lb) == held_len && (!held_len || !memcmp(lb.buf, held, held_len)));
		free(all);
	}
	linebuf_release(&lb);
	free(held);
	return 0;
}
