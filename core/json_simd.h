/*
 * json_simd.h - the C face of json_simd.cpp: is this line one RFC 8259
 * JSON object, and what are its top-level members named @field?
 *
 * The verdict is simdjson's DOM parser (runtime-dispatched SIMD kernels):
 * RFC 8259 grammar, UTF-8 per RFC 3629 (no overlong forms, surrogates or
 * code points above U+10FFFF), escapes that decode to Unicode scalar
 * values (an escaped lone surrogate is refused, as I-JSON RFC 7493 asks),
 * nesting up to JSIMD_MAX_DEPTH.  simdjson refuses numbers it cannot
 * represent (integers past 64 bits, |x| >= 2^1024); those are accepted
 * when they match RFC 8259's number grammar, which is all the RFC asks.
 * Only refused lines take the slow path that finds the column.
 *
 * Thread-safe: each thread has its own parser (the memory it keeps is
 * bounded: see json_simd.cpp).
 */
#ifndef EVL_JSON_SIMD_H
#define EVL_JSON_SIMD_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Containers nested deeper than this are refused; the event object is level 1. */
#define JSIMD_MAX_DEPTH 128

enum jsimd_code {
	JSIMD_OK = 0,
	JSIMD_NOT_OBJECT,	/* valid JSON, but not an object */
	JSIMD_UTF8,		/* invalid UTF-8 */
	JSIMD_CONTROL,		/* raw control byte in a string */
	JSIMD_STRING,		/* bad escape, or an escape that is a lone surrogate */
	JSIMD_NUMBER,		/* not RFC 8259's number grammar */
	JSIMD_LITERAL,		/* not true, false or null (a bare word, NaN) */
	JSIMD_STRUCTURE,	/* a missing or extra comma, colon, brace or quote */
	JSIMD_END,		/* the line ends inside the object or a string */
	JSIMD_TRAILING,		/* something after the object */
	JSIMD_DEPTH,		/* nesting deeper than JSIMD_MAX_DEPTH */
	JSIMD_NOMEM,
};

struct jsimd_result {
	enum jsimd_code code;
	size_t off;		/* refused: byte offset of the problem (len at the end) */
	unsigned nfield;	/* valid: top-level members named @field */
	bool field_is_string;	/* valid: the first of them is a string, */
	size_t field_len;	/* decoded to this many bytes */
};

/*
 * Judge @line (@len bytes) and fill @r.  If the first member named @field
 * (@flen bytes) is a string, its decoded bytes go to @out, at most @cap of
 * them (r->field_len tells the whole length).  Returns r->code.
 */
enum jsimd_code jsimd_check(const char *line, size_t len, const char *field, size_t flen,
			    char *out, size_t cap, struct jsimd_result *r);

/* Bytes of the longest prefix of @s (@len bytes) that is valid UTF-8 (RFC 3629). */
size_t jsimd_utf8_prefix(const char *s, size_t len);

/* The simdjson kernel in use on this machine (for benchmarks and logs). */
const char *jsimd_kernel(void);

#ifdef __cplusplus
}
#endif

#endif
