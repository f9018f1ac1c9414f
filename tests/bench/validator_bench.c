/*
 * validator_bench - the event validator's candidates, for the choice made
 * in core/json_simd.cpp and for "ns/event before and after".
 *
 *   jsonc-before   json-c strict + UTF-8 flag + the lexical pass of the
 *                  validator before simdjson (core/event.c, EVENT_STORED's
 *                  fallback): the baseline; it fails the conformance set.
 *   jsonc-utf8     candidate B: json-c as above, plus libunistring's
 *                  u8_check (RFC 3629) and a lexical pass grown to the rest
 *                  of the set (leading zeros, escaped surrogates, duplicate
 *                  type member, NUL): what "json-c plus a UTF-8 checker"
 *                  costs once it is as strict.
 *   simdjson       candidate A, what the core uses: event_validate.
 *   simdjson-dom   simdjson's parse alone (jsimd_check), the floor.
 *
 * Before timing, each candidate judges the conformance set of
 * tests/unit/event_cases.h (verdict and type) plus nesting at 128/129
 * levels; a candidate that gets any wrong is reported as failing it.
 * Workloads: one ~200-byte event, one ~64 KiB event (ns/event), and 1 MB
 * and 100 MB of ~200-byte JSON lines validated line by line (MB/s).
 * Each figure is the median of --runs runs (default 5).  --quick: tiny
 * sizes and one run, for CI to see that it runs; its timings mean nothing.
 *
 * Usage: validator_bench [--quick] [--runs N]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>
#ifdef HAVE_UNISTRING
#include <unistr.h>
#endif

#include "event.h"
#include "json_simd.h"
#include "../unit/event_cases.h"

#define NCASES (sizeof(event_cases) / sizeof(*event_cases))

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool name_ok(const char *s, size_t n)
{
	if (n == 0 || n > EVENT_TYPE_MAX || s[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f || s[i] == '/')
			return false;
	return true;
}

/* ---- jsonc-before: the validator of earlier versions ---- */

static int old_lexical(const char *s, size_t len)
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
				return -1;
			continue;
		}
		if (c == '"') {
			in_str = true;
		} else if (c == '\'') {
			return -1;
		} else if (c == '.' && (i + 1 >= len || !is_digit(s[i + 1]))) {
			return -1;
		} else if (is_alpha(c)) {
			size_t j = i;

			while (j < len && is_alpha(s[j]))
				j++;
			if ((c == 'e' || c == 'E') && j == i + 1 && i > 0 && is_digit(s[i - 1]))
				continue;
			if (!((j - i == 4 && (!memcmp(s + i, "true", 4) || !memcmp(s + i, "null", 4))) ||
			      (j - i == 5 && !memcmp(s + i, "false", 5))))
				return -1;
			i = j - 1;
		}
	}
	return 0;
}

struct jc {
	struct json_tokener *tok;
	bool strict;	/* candidate B: the extra checks */
};

/*
 * Candidate B's extra lexical checks: leading zeros, '-' without a digit,
 * escapes that are lone surrogates, a NUL, and the top-level members
 * named "type" (counted, escapes decoded by json-c).
 */
static int b_lexical(const char *s, size_t len, int *ntype)
{
	int depth = 0;
	bool in_str = false;
	size_t str_start = 0;

	*ntype = 0;
	if (memchr(s, 0, len))
		return -1;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (in_str) {
			if (c == '\\') {
				if (s[i + 1] == 'u' && i + 5 < len) {
					unsigned u = (unsigned)strtoul((char[]){ s[i + 2], s[i + 3], s[i + 4],
										s[i + 5], 0 }, NULL, 16);

					if (u >= 0xdc00 && u <= 0xdfff)
						return -1;
					if (u >= 0xd800 && u <= 0xdbff) {
						unsigned lo;

						if (i + 11 >= len || s[i + 6] != '\\' || s[i + 7] != 'u')
							return -1;
						lo = (unsigned)strtoul((char[]){ s[i + 8], s[i + 9], s[i + 10],
										 s[i + 11], 0 }, NULL, 16);
						if (lo < 0xdc00 || lo > 0xdfff)
							return -1;
						i += 6;
					}
					i += 5;
				} else {
					i++;
				}
			} else if (c == '"') {
				in_str = false;
				if (depth == 1) {
					size_t j = i + 1;

					while (j < len && (s[j] == ' ' || s[j] == '\t' || s[j] == '\r'))
						j++;
					if (j < len && s[j] == ':') {	/* a top-level key */
						const char *k = s + str_start;
						size_t kn = i + 1 - str_start;

						if (kn == 6 && !memcmp(k, "\"type\"", 6)) {
							(*ntype)++;
						} else if (memchr(k, '\\', kn)) {
							struct json_object *o = json_tokener_parse(
								strndupa(k, kn));

							if (o && !strcmp(json_object_get_string(o), "type"))
								(*ntype)++;
							json_object_put(o);
						}
					}
				}
			}
			continue;
		}
		if (c == '"') {
			in_str = true;
			str_start = i;
		} else if (c == '{' || c == '[') {
			if (++depth > EVENT_JSON_DEPTH)
				return -1;
		} else if (c == '}' || c == ']') {
			depth--;
		} else if (c == '-' || is_digit(c)) {
			size_t d = i + (c == '-');

			/* a number starts: a digit after '-', no 0 before a digit */
			if (d >= len || !is_digit(s[d]) ||
			    (s[d] == '0' && d + 1 < len && is_digit(s[d + 1])))
				return -1;
			while (i + 1 < len && (is_digit(s[i + 1]) || s[i + 1] == '.' || s[i + 1] == 'e' ||
					       s[i + 1] == 'E' || s[i + 1] == '+' || s[i + 1] == '-'))
				i++;
		}
	}
	return 0;
}

static int jc_validate(struct jc *j, const char *line, size_t len, char *type)
{
	struct json_object *obj, *m;
	int ntype = 1, rc = -1;
	size_t n;

#ifdef HAVE_UNISTRING
	if (j->strict && u8_check((const uint8_t *)line, len))
		return -1;
#endif
	json_tokener_reset(j->tok);
	obj = json_tokener_parse_ex(j->tok, line, len);
	if (!obj)
		return -1;
	if (json_object_is_type(obj, json_type_object) && !old_lexical(line, len) &&
	    (!j->strict || !b_lexical(line, len, &ntype)) && ntype == 1 &&
	    json_object_object_get_ex(obj, "type", &m) && json_object_is_type(m, json_type_string)) {
		n = json_object_get_string_len(m);
		if ((j->strict ? name_ok(json_object_get_string(m), n) :
		     n >= 1 && n <= EVENT_TYPE_MAX) && !memchr(json_object_get_string(m), '/', n)) {
			memcpy(type, json_object_get_string(m), n);
			type[n] = 0;
			rc = 0;
		}
	}
	json_object_put(obj);
	return rc;
}

/* ---- the candidates behind one interface ---- */

struct cand {
	const char *name;
	int (*fn)(void *ctx, const char *line, size_t len, char *type);
	void *ctx;
};

static int c_jsonc(void *ctx, const char *line, size_t len, char *type)
{
	return jc_validate(ctx, line, len, type);
}

static int c_simdjson(void *ctx, const char *line, size_t len, char *type)
{
	size_t tlen;
	struct event_error err;

	return event_validate(ctx, line, len, type, &tlen, &err);
}

static int c_dom(void *ctx, const char *line, size_t len, char *type)
{
	struct jsimd_result r;

	return jsimd_check(line, len, "type", 4, type, EVENT_TYPE_MAX + 1, &r) ? -1 : 0;
}

/* Cases the candidate gets wrong (verdict or type), printed up to 5. */
static int conformance(const struct cand *c)
{
	char type[EVENT_TYPE_MAX + 2], line[1024];
	int wrong = 0;

	for (size_t i = 0; i < NCASES; i++) {
		const struct event_case *ec = &event_cases[i];
		int rc = c->fn(c->ctx, ec->line, strlen(ec->line), type);
		bool ok = ec->type ? rc == 0 && !strcmp(type, ec->type) : rc != 0;

		if (!ok && wrong++ < 5)
			fprintf(stderr, "  %s: case %zu %s '%s'\n", c->name, i,
				ec->type ? "refused" : "accepted", ec->line);
	}
	for (int depth = 128; depth <= 129; depth++) {
		size_t n = (size_t)sprintf(line, "{\"type\":\"d\",\"x\":");
		int rc;

		for (int d = 1; d < depth; d++)
			line[n++] = '[';
		for (int d = 1; d < depth; d++)
			line[n++] = ']';
		line[n++] = '}';
		rc = c->fn(c->ctx, line, n, type);
		if ((depth == 128) != (rc == 0) && wrong++ < 5)
			fprintf(stderr, "  %s: %s %d levels\n", c->name,
				rc ? "refused" : "accepted", depth);
	}
	return wrong;
}

static char *small_event(char *buf, unsigned k)
{
	sprintf(buf, "{\"type\":\"tool.call\",\"ts\":\"2026-01-01T00:00:%02u.123Z\",\"task\":"
		"\"t-%05u\",\"args\":{\"path\":\"/tmp/x/%u\",\"n\":%u,\"ok\":true,\"r\":[1,2.5,"
		"-3e7]},\"msg\":\"caf\xc3\xa9 \\u00e9 and some more words to reach 200\"}",
		k % 60, k % 100000, k, k * 7);
	return buf;
}

static char *large_event(size_t *len)
{
	size_t cap = 65536, n;
	char *b = malloc(cap + 256);

	n = (size_t)sprintf(b, "{\"type\":\"blob\",\"items\":[");
	while (n < cap - 100)
		n += (size_t)sprintf(b + n, "{\"k\":\"value \xc3\xa9 of some length\",\"n\":%zu,"
				     "\"f\":-1.5e3,\"b\":false},", n);
	n += (size_t)sprintf(b + n, "null]}");
	*len = n;
	return b;
}

/* @size bytes of ~200-byte lines, newline-separated. */
static char *lines(size_t size, size_t *len)
{
	char *b = malloc(size + 512), ev[512];
	size_t n = 0;

	for (unsigned k = 0; n < size; k++) {
		size_t l = strlen(small_event(ev, k));

		memcpy(b + n, ev, l);
		b[n + l] = '\n';
		n += l + 1;
	}
	*len = n;
	return b;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp);
	return v[n / 2];
}

/* ns per call of @c on one @line, median of @runs runs of @iters calls. */
static double per_event(const struct cand *c, const char *line, size_t len, long iters, int runs)
{
	char type[EVENT_TYPE_MAX + 2];
	double v[16];

	for (int r = 0; r < runs; r++) {
		double t = now();

		for (long i = 0; i < iters; i++)
			if (c->fn(c->ctx, line, len, type)) {
				fprintf(stderr, "%s refused the benchmark event\n", c->name);
				exit(1);
			}
		v[r] = (now() - t) * 1e9 / iters;
	}
	return median(v, runs);
}

/* MB/s of @c validating every line of @buf, median of @runs runs. */
static double throughput(const struct cand *c, const char *buf, size_t len, int runs)
{
	char type[EVENT_TYPE_MAX + 2];
	double v[16];

	for (int r = 0; r < runs; r++) {
		double t = now();

		for (const char *p = buf, *end = buf + len; p < end;) {
			const char *nl = memchr(p, '\n', end - p);

			if (c->fn(c->ctx, p, nl - p, type)) {
				fprintf(stderr, "%s refused a benchmark line\n", c->name);
				exit(1);
			}
			p = nl + 1;
		}
		v[r] = len / 1e6 / (now() - t);
	}
	return median(v, runs);
}

int main(int argc, char **argv)
{
	bool quick = false;
	int runs = 5;
	struct jc before = { 0 }, b = { .strict = true };
	struct event_validator *ev;
	struct cand cands[4];
	int ncand = 0;
	char small[512];
	size_t small_len, large_len, mb_len, big_len;
	char *large, *mb, *big;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			quick = true;
		else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
			runs = atoi(argv[++i]);
	}
	if (quick)
		runs = 1;
	if (runs < 1 || runs > 16)
		runs = 5;
	before.tok = json_tokener_new_ex(128);
	b.tok = json_tokener_new_ex(EVENT_JSON_DEPTH + 1);	/* json-c stops one level short */
	json_tokener_set_flags(before.tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	json_tokener_set_flags(b.tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	if (event_validator_new("type", 64 << 20, &ev))
		return 1;
	cands[ncand++] = (struct cand){ "jsonc-before", c_jsonc, &before };
#ifdef HAVE_UNISTRING
	cands[ncand++] = (struct cand){ "jsonc-utf8", c_jsonc, &b };
#endif
	cands[ncand++] = (struct cand){ "simdjson", c_simdjson, ev };
	cands[ncand++] = (struct cand){ "simdjson-dom", c_dom, NULL };

	small_len = strlen(small_event(small, 7));
	large = large_event(&large_len);
	mb = lines(quick ? 64 << 10 : 1 << 20, &mb_len);
	big = lines(quick ? 256 << 10 : 100 << 20, &big_len);

	printf("simdjson kernel: %s; events of %zu and %zu bytes; %d runs (median)\n",
	       jsimd_kernel(), small_len, large_len, runs);
	printf("%-14s %-12s %12s %12s %12s %12s %12s\n", "candidate", "conformance",
	       "ns/small", "ns/64KiB", "MB/s 64KiB", "MB/s 1MB", "MB/s 100MB");
	for (int i = 0; i < ncand; i++) {
		const struct cand *c = &cands[i];
		/* the parse alone checks no type rule: no verdict to compare */
		int wrong = c->fn == c_dom ? -1 : conformance(c);
		double ns_small = per_event(c, small, small_len, quick ? 2000 : 200000, runs);
		double ns_large = per_event(c, large, large_len, quick ? 20 : 2000, runs);
		double t1 = throughput(c, mb, mb_len, runs);
		double t100 = throughput(c, big, big_len, quick ? 1 : runs < 3 ? runs : 3);
		char conf[32];

		snprintf(conf, sizeof(conf), wrong < 0 ? "n/a" : wrong ? "FAILS %d" : "passes", wrong);
		printf("%-14s %-12s %12.0f %12.0f %12.0f %12.0f %12.0f\n", c->name, conf, ns_small,
		       ns_large, large_len / ns_large * 1e3, t1, t100);
		printf("{\"name\":\"validator.%s\",\"conformance_wrong\":%d,\"ns_small\":%.0f,"
		       "\"ns_64k\":%.0f,\"mbs_1mb\":%.0f,\"mbs_100mb\":%.0f}\n", c->name, wrong,
		       ns_small, ns_large, t1, t100);
		fflush(stdout);
	}
	json_tokener_free(before.tok);
	json_tokener_free(b.tok);
	event_validator_free(ev);
	free(large);
	free(mb);
	free(big);
	return 0;
}
