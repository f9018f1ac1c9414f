/*
 * event_cases.h - the conformance set of the event validator: what RFC
 * 8259 + RFC 3629 + the type rules (SPEC section 3) accept and refuse.
 * tests/unit/test_event.c checks the validator against every case (verdict,
 * type, reason, column); tests/bench/validator_bench.c checks every
 * candidate validator's verdict against it before timing one.  The fuzz
 * seeds (tests/fuzz/make_corpus.py) carry the same inputs.
 *
 * Every string-level problem appears three times: in a value, in a key and
 * in the type; every number in a value, in an array and as the type.
 */
#ifndef EVL_EVENT_CASES_H
#define EVL_EVENT_CASES_H

#include <stddef.h>

struct event_case {
	const char *line;	/* no NUL inside */
	const char *type;	/* accepted, with this type; NULL: refused */
	const char *reason;	/* refused: part of the reason */
	const char *at;		/* refused: the column is where this first occurs in line, */
	size_t col;		/* or this, if at is NULL (0: not checked) */
};

/* @frag makes a JSON string invalid; the column is where @at is */
#define EC_BAD_STR(frag, at, why) \
	{ "{\"type\":\"a\",\"k\":\"" frag "\"}", NULL, why, at, 0 }, \
	{ "{\"type\":\"a\",\"" frag "\":1}", NULL, why, at, 0 }, \
	{ "{\"type\":\"" frag "\"}", NULL, why, at, 0 }

/* @frag is fine in a string; as the whole type it decodes to @type */
#define EC_OK_STR(frag, type) \
	{ "{\"type\":\"a\",\"k\":\"" frag "\"}", "a", NULL, NULL, 0 }, \
	{ "{\"type\":\"a\",\"" frag "\":1}", "a", NULL, NULL, 0 }, \
	{ "{\"type\":\"" frag "\"}", type, NULL, NULL, 0 }

/* @frag is fine in a string but not in a type */
#define EC_NOT_TYPE(frag) \
	{ "{\"type\":\"a\",\"k\":\"" frag "\"}", "a", NULL, NULL, 0 }, \
	{ "{\"type\":\"a\",\"" frag "\":1}", "a", NULL, NULL, 0 }, \
	{ "{\"type\":\"" frag "\"}", NULL, "must be 1-255", NULL, 1 }

#define EC_BAD_NUM(num, why) \
	{ "{\"type\":\"a\",\"n\":" num "}", NULL, why, num, 0 }, \
	{ "{\"type\":\"a\",\"n\":[true," num "]}", NULL, why, num, 0 }, \
	{ "{\"type\":" num "}", NULL, why, num, 0 }

#define EC_OK_NUM(num) \
	{ "{\"type\":\"a\",\"n\":" num "}", "a", NULL, NULL, 0 }, \
	{ "{\"type\":\"a\",\"n\":[true," num "]}", "a", NULL, NULL, 0 }, \
	{ "{\"type\":" num "}", NULL, "not a string", NULL, 1 }

/* invalid UTF-8: the column is its first byte */
#define EC_UTF8(frag) EC_BAD_STR(frag, frag, "invalid UTF-8")
/* a bad escape: the column is the string's opening quote */
#define EC_ESC(frag) EC_BAD_STR(frag, "\"" frag, "bad escape or unpaired surrogate")

static const struct event_case event_cases[] = {
	/* valid events */
	{ "{\"type\":\"a\"}", "a", NULL, NULL, 0 },
	{ "  {\"type\" : \"tool.call\", \"n\": [1, 2.5, -3e7, true, false, null]}  ", "tool.call",
	  NULL, NULL, 0 },
	{ "{\"type\":\"x\",\"s\":\"caf\xc3\xa9 \\u00e9 \\n \\\"q\\\"\"}\r", "x", NULL, NULL, 0 },
	{ "{\"a\":{\"type\":\"nested-not-used\"},\"type\":\"top\"}", "top", NULL, NULL, 0 },
	{ "{\"type\":\"\\u0061b\"}", "ab", NULL, NULL, 0 },
	{ "{\"\\u0074ype\":\"escaped-key\"}", "escaped-key", NULL, NULL, 0 },
	{ " \t{\"type\" : \"a\" , \"e\":{}, \"l\":[], \"o\":{\"p\":[{}]}}\r\t ", "a", NULL, NULL, 0 },
	{ "{\"type\":\"a\",\"k\":1,\"k\":2}", "a", NULL, NULL, 0 },	/* other duplicates: allowed */
	{ "{\"type\":\"a.b\"}", "a.b", NULL, NULL, 0 },
	{ "{\"type\":\"a.\"}", "a.", NULL, NULL, 0 },
	{ "{\"type\":\"\xc3\xa9t\xc3\xa9\"}", "\xc3\xa9t\xc3\xa9", NULL, NULL, 0 },

	/* RFC 3629: overlong forms, surrogates, past U+10FFFF, bytes never valid */
	EC_UTF8("\xc0\xaf"),
	EC_UTF8("\xc1\xbf"),
	EC_UTF8("\xe0\x80\xaf"),
	EC_UTF8("\xe0\x9f\xbf"),
	EC_UTF8("\xf0\x80\x80\xaf"),
	EC_UTF8("\xf0\x8f\xbf\xbf"),
	EC_UTF8("\xed\xa0\x80"),
	EC_UTF8("\xed\xbf\xbf"),
	EC_UTF8("\xed\xa0\xbd\xed\xb8\x80"),	/* a pair encoded as two surrogates (CESU-8) */
	EC_UTF8("\xf4\x90\x80\x80"),
	EC_UTF8("\xf5\x80\x80\x80"),
	EC_UTF8("\xf8\x88\x80\x80\x80"),
	EC_UTF8("\xfe"),
	EC_UTF8("\xff"),
	EC_UTF8("\x80"),
	EC_UTF8("\xbf"),
	EC_UTF8("\xe2\x82"),			/* cut short by the quote */
	EC_UTF8("\xf0\x9f\x98"),
	EC_UTF8("\xc3"),
	/* the edges that are valid */
	EC_OK_STR("\xc2\x80", "\xc2\x80"),
	EC_OK_STR("\xdf\xbf", "\xdf\xbf"),
	EC_OK_STR("\xe0\xa0\x80", "\xe0\xa0\x80"),
	EC_OK_STR("\xed\x9f\xbf", "\xed\x9f\xbf"),
	EC_OK_STR("\xee\x80\x80", "\xee\x80\x80"),
	EC_OK_STR("\xef\xbf\xbf", "\xef\xbf\xbf"),
	EC_OK_STR("\xef\xbb\xbf", "\xef\xbb\xbf"),
	EC_OK_STR("\xf0\x90\x80\x80", "\xf0\x90\x80\x80"),
	EC_OK_STR("\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf"),

	/* escapes: a lone surrogate is no Unicode scalar value (I-JSON, RFC 7493) */
	EC_ESC("\\ud800"),
	EC_ESC("\\udbff"),
	EC_ESC("\\udc00"),
	EC_ESC("\\udfff"),
	EC_ESC("\\ud800\\u0041"),
	EC_ESC("\\ud800\\ud800"),
	EC_ESC("\\ude00\\ud83d"),
	EC_ESC("\\ud800x"),
	EC_ESC("\\x"),
	EC_ESC("\\u12"),
	EC_ESC("\\uZZZZ"),
	EC_ESC("\\U0041"),
	EC_ESC("\\'"),
	EC_ESC("\\a"),
	EC_OK_STR("\\ud83d\\ude00", "\xf0\x9f\x98\x80"),
	EC_OK_STR("\\uDBFF\\uDFFF", "\xf4\x8f\xbf\xbf"),
	EC_OK_STR("\\u00e9\\\\\\\"", "\xc3\xa9\\\""),
	EC_NOT_TYPE("\\/"),
	EC_NOT_TYPE("\\b\\f\\n\\r\\t"),
	EC_NOT_TYPE("\\u0000"),
	EC_NOT_TYPE("\\u0007"),
	EC_NOT_TYPE("\\u001f"),
	EC_NOT_TYPE("\\u007f"),
	EC_NOT_TYPE("a\x7f"),			/* raw DEL: valid JSON, not a name */
	EC_NOT_TYPE("a/b"),

	/* raw control bytes in strings */
	EC_BAD_STR("\x01", "\x01", "control character"),
	EC_BAD_STR("x\x1f", "\x1f", "control character"),
	EC_BAD_STR("x\ty", "\t", "control character"),
	EC_BAD_STR("x\ry", "\r", "control character"),

	/* numbers: RFC 8259 section 6 */
	EC_BAD_NUM("00", "bad number"),
	EC_BAD_NUM("-01", "bad number"),
	EC_BAD_NUM("00.5", "bad number"),
	EC_BAD_NUM("01", "bad number"),
	EC_BAD_NUM("-00", "bad number"),
	EC_BAD_NUM("0123456789012345678901234567890", "bad number"),
	EC_BAD_NUM("1.", "bad number"),
	EC_BAD_NUM("1.e5", "bad number"),
	EC_BAD_NUM("1e", "bad number"),
	EC_BAD_NUM("1e+", "bad number"),
	EC_BAD_NUM("1E-", "bad number"),
	EC_BAD_NUM("-", "bad number"),
	EC_BAD_NUM("--1", "bad number"),
	EC_BAD_NUM("-.5", "bad number"),
	EC_BAD_NUM("0x10", "bad number"),
	EC_BAD_NUM("1_000", "bad number"),
	EC_BAD_NUM("1.5.5", "bad number"),
	EC_BAD_NUM("1e5e5", "bad number"),
	EC_BAD_NUM("-Infinity", "bad number"),
	EC_BAD_NUM(".5", "unexpected '.'"),
	EC_BAD_NUM("+1", "unexpected '+'"),
	{ "{\"type\":\"a\",\"n\":[00]}", NULL, "bad number", "00", 0 },
	EC_OK_NUM("0"),
	EC_OK_NUM("-0"),
	EC_OK_NUM("0.5"),
	EC_OK_NUM("-0.0"),
	EC_OK_NUM("1e5"),
	EC_OK_NUM("1E+5"),
	EC_OK_NUM("1e-5"),
	EC_OK_NUM("0e0"),
	EC_OK_NUM("-123.456e-07"),
	EC_OK_NUM("18446744073709551615"),
	EC_OK_NUM("-9223372036854775808"),
	EC_OK_NUM("1.7976931348623157e308"),
	EC_OK_NUM("1e-999"),
	/* grammatical, past what simdjson represents: RFC 8259 accepts them */
	EC_OK_NUM("18446744073709551616"),
	EC_OK_NUM("-9223372036854775809"),
	EC_OK_NUM("123456789012345678901234567890"),
	EC_OK_NUM("1e999"),
	EC_OK_NUM("-1E+400"),
	EC_OK_NUM("2e308"),
	{ "{\"type\":\"a\",\"n\":[1e999,00]}", NULL, "bad number", "00", 0 },
	{ "{\"type\":\"a\",\"n\":1e999,\"type\":\"b\"}", NULL, "duplicate", NULL, 1 },
	{ "{\"type\":\"a\",\"n\":1e999,\"s\":\"\\ud800\"}", NULL, "unpaired", "\"\\ud800", 0 },
	{ "{\"type\":\"a\",\"n\":1e999,\"s\":tru}", NULL, "bare word 'tru'", "tru", 0 },
	{ "{\"type\":\"a\",\"n\":1e999} x", NULL, "text after", "x", 0 },

	/* literals */
	{ "{\"type\":\"a\",\"v\":tru}", NULL, "bare word 'tru'", "tru", 0 },
	{ "{\"type\":\"a\",\"v\":nul}", NULL, "bare word", "nul", 0 },
	{ "{\"type\":\"a\",\"v\":True}", NULL, "bare word 'True'", "True", 0 },
	{ "{\"type\":\"a\",\"v\":NULL}", NULL, "bare word", "NULL", 0 },
	{ "{\"type\":\"a\",\"v\":falsey}", NULL, "bare word", "falsey", 0 },
	{ "{\"type\":\"a\",\"v\":[truex]}", NULL, "bare word", "truex", 0 },
	{ "{\"type\":\"a\",\"v\":NaN}", NULL, "bare word 'NaN'", "NaN", 0 },
	{ "{\"type\":\"a\",\"v\":Infinity}", NULL, "bare word 'Infinity'", "Infinity", 0 },
	{ "{\"type\":\"a\",\"v\":undefined}", NULL, "bare word", "undefined", 0 },
	{ "{\"type\":null}", NULL, "not a string", NULL, 1 },
	{ "{\"type\":true}", NULL, "not a string", NULL, 1 },
	{ "{\"type\":nul}", NULL, "bare word", "nul", 0 },

	/* structure */
	{ "not json", NULL, "not a JSON object", NULL, 1 },
	{ "[1,2]", NULL, "not a JSON object", NULL, 1 },
	{ "  \"s\"", NULL, "not a JSON object", NULL, 3 },
	{ "1", NULL, "not a JSON object", NULL, 1 },
	{ "null", NULL, "not a JSON object", NULL, 1 },
	{ "", NULL, "not a JSON object", NULL, 1 },
	{ "\xef\xbb\xbf{\"type\":\"a\"}", NULL, "not a JSON object", NULL, 1 },	/* BOM */
	{ "\v{\"type\":\"a\"}", NULL, "not a JSON object", NULL, 1 },
	{ "/*c*/{\"type\":\"a\"}", NULL, "not a JSON object", NULL, 1 },
	{ "{\"type\":\"a\"", NULL, "unexpected end", NULL, 12 },
	{ "{\"type\":\"a\",\"b\":[1,{\"c\":2}", NULL, "unexpected end", NULL, 27 },
	{ "{\"type\":\"a\",\"b\":\"x}", NULL, "unexpected end", NULL, 20 },
	{ "{\"type\":\"a\",}", NULL, "unexpected '}'", NULL, 13 },
	{ "{\"type\":\"a\"} x", NULL, "text after the object", NULL, 14 },
	{ "{\"type\":\"a\"} {}", NULL, "text after the object", NULL, 14 },
	{ "{\"type\":\"a\"}{\"type\":\"b\"}", NULL, "text after the object", NULL, 13 },
	{ "{\"type\":\"a\"}}", NULL, "text after the object", NULL, 13 },
	{ "{\"type\":\"a\"}//c", NULL, "text after the object", NULL, 13 },
	{ "{\"type\":\"a\"}\f", NULL, "text after the object", NULL, 13 },
	{ "{\"type\":\"a\"}\xc2\xa0", NULL, "text after the object", NULL, 13 },
	{ "{\"type\":\"a\"]", NULL, "unexpected ']'", NULL, 12 },
	{ "{\"type\":\"a\",\"b\":[1}", NULL, "unexpected '}'", NULL, 19 },
	{ "{'type':'a'}", NULL, "single-quoted", NULL, 2 },
	{ "{'x':1,\"type\":\"a\"}", NULL, "single-quoted", NULL, 2 },
	{ "{\"type\":'a'}", NULL, "single-quoted", NULL, 9 },
	{ "{\"type\" \"a\"}", NULL, "unexpected '\"'", NULL, 9 },
	{ "{\"type\":\"a\" \"b\":1}", NULL, "unexpected '\"'", NULL, 13 },
	{ "{\"type\":\"a\",,\"b\":1}", NULL, "unexpected ','", NULL, 13 },
	{ "{\"type\":\"a\",\"b\"}", NULL, "unexpected '}'", NULL, 16 },
	{ "{\"type\":\"a\",\"b\":}", NULL, "unexpected '}'", NULL, 17 },
	{ "{\"type\":\"a\",1:2}", NULL, "unexpected '1'", NULL, 13 },
	{ "{\"type\":\"a\",b:2}", NULL, "bare word 'b'", NULL, 13 },
	{ "{\"type\":\"a\",\"b\":[1,]}", NULL, "unexpected ']'", NULL, 20 },
	{ "{\"type\":\"a\",\"b\":[1 2]}", NULL, "unexpected '2'", NULL, 20 },
	{ "{\"type\":\"a\",\x01\"b\":1}", NULL, "unexpected byte 0x01", NULL, 13 },
	{ "{\"type\":\"a\",\"s\":\"x\ty\"}", NULL, "control character", NULL, 19 },
	{ "{\"type\":\"a\",\"s\":\"\xff\"}", NULL, "invalid UTF-8", NULL, 18 },

	/* the type member */
	{ "{\"kind\":\"a\"}", NULL, "missing \"type\"", NULL, 1 },
	{ "{}", NULL, "missing \"type\"", NULL, 1 },
	{ "{\"type\":3}", NULL, "not a string", NULL, 1 },
	{ "{\"type\":{}}", NULL, "not a string", NULL, 1 },
	{ "{\"type\":[\"a\"]}", NULL, "not a string", NULL, 1 },
	{ "{\"type\":\"\"}", NULL, "must be 1-255", NULL, 1 },
	{ "{\"type\":\"a\",\"type\":\"b\"}", NULL, "duplicate \"type\"", NULL, 1 },
	{ "{\"type\":\"a\",\"type\":\"a\"}", NULL, "duplicate \"type\"", NULL, 1 },
	{ "{\"type\":\"a\",\"\\u0074ype\":\"b\"}", NULL, "duplicate \"type\"", NULL, 1 },
	{ "{\"type\":1,\"type\":\"a\"}", NULL, "duplicate \"type\"", NULL, 1 },
	{ "{\"type\":\".\"}", NULL, "leading '.'", NULL, 1 },
	{ "{\"type\":\"..\"}", NULL, "leading '.'", NULL, 1 },
	{ "{\"type\":\".hidden\"}", NULL, "leading '.'", NULL, 1 },
	{ "{\"type\":\"\\u002e\"}", NULL, "leading '.'", NULL, 1 },
	{ "{\"type\":\"\\u002e\\u002e\"}", NULL, "leading '.'", NULL, 1 },
	{ "{\"type\":\"a\\u0000b\"}", NULL, "must be 1-255", NULL, 1 },
};

#endif
