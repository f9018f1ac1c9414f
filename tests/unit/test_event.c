/* Unit tests: event validation. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "event.h"

static struct event_validator *v;

static int setup(void **state)
{
	return event_validator_new("type", 256, &v);
}

static int teardown(void **state)
{
	event_validator_free(v);
	return 0;
}

static int check(const char *line, char *type, struct event_error *err)
{
	size_t tlen;

	memset(err, 0, sizeof(*err));
	return event_validate(v, line, strlen(line), type, &tlen, err);
}

static void accepts_valid_events(void **state)
{
	static const char *const good[] = {
		"{\"type\":\"a\"}",
		"  {\"type\" : \"tool.call\", \"n\": [1, 2.5, -3e7, true, false, null]}  ",
		"{\"type\":\"x\",\"s\":\"caf\xc3\xa9 \\u00e9 \\n \\\"q\\\"\"}\r",
		"{\"a\":{\"type\":\"nested-not-used\"},\"type\":\"top\"}",
		"{\"type\":\"\\u0061b\"}",
	};
	static const char *const want[] = { "a", "tool.call", "x", "top", "ab" };
	struct event_error err;
	char type[256];

	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++) {
		assert_int_equal(check(good[i], type, &err), 0);
		assert_string_equal(type, want[i]);
	}
}

static void rejects_with_reason_and_column(void **state)
{
	static const struct {
		const char *line;
		size_t col;
		const char *reason;
	} bad[] = {
		{ "not json", 1, "not a JSON object" },
		{ "[1,2]", 1, "not a JSON object" },
		{ "{\"type\":\"a\"", 12, "unexpected end" },
		{ "{\"type\":\"a\",}", 13, "invalid JSON" },
		{ "{\"type\":\"a\"} x", 14, "invalid JSON" },
		{ "{'type':'a'}", 9, "invalid JSON" },
		{ "{'x':1,\"type\":\"a\"}", 2, "single-quoted" },
		{ "{\"type\":\"a\",\"v\":NaN}", 17, "invalid JSON" },
		{ "{\"type\":\"a\",\"v\":1.}", 18, "number ends" },
		{ "{\"type\":\"a\",\"s\":\"x\ty\"}", 19, "control character" },
		{ "{\"type\":\"a\",\"s\":\"\xff\"}", 18, "invalid JSON" },
		{ "{\"kind\":\"a\"}", 1, "missing \"type\"" },
		{ "{\"type\":3}", 1, "not a string" },
		{ "{\"type\":\"\"}", 1, "must be 1-255" },
		{ "{\"type\":\"a/b\"}", 1, "must be 1-255" },
		{ "{\"type\":\"a\\u0000b\"}", 1, "must be 1-255" },
		{ "{\"type\":\"a\\u0007\"}", 1, "must be 1-255" },
	};
	struct event_error err;
	char type[256];
	int wrong = 0;

	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		int rc = check(bad[i].line, type, &err);

		if (rc != -EINVAL || !strstr(err.reason, bad[i].reason) || err.col != bad[i].col) {
			print_error("case %zu %s: rc %d col %zu reason '%s'\n", i, bad[i].line, rc,
				    err.col, err.reason);
			wrong++;
		}
	}
	assert_int_equal(wrong, 0);
}

static void refuses_oversized_events(void **state)
{
	char line[400], type[256];
	struct event_error err;
	size_t tlen;

	memset(line, ' ', sizeof(line));
	memcpy(line, "{\"type\":\"a\"}", 12);
	/* 255 bytes + newline = 256 = max_event: fits; one more does not */
	assert_int_equal(event_validate(v, line, 255, type, &tlen, &err), 0);
	assert_int_equal(event_validate(v, line, 256, type, &tlen, &err), -EFBIG);
	assert_int_equal(err.err, EFBIG);
}

static void type_names_are_checked(void **state)
{
	char long_name[300];

	memset(long_name, 'x', sizeof(long_name));
	assert_int_equal(event_check_name("tool.call", 9), 0);
	assert_int_equal(event_check_name("", 0), -EINVAL);
	assert_int_equal(event_check_name("a/b", 3), -EINVAL);
	assert_int_equal(event_check_name("a\x7f", 2), -EINVAL);
	assert_int_equal(event_check_name(long_name, 255), 0);
	assert_int_equal(event_check_name(long_name, 256), -ENAMETOOLONG);
	assert_true(event_is_blank(" \t\r", 3));
	assert_false(event_is_blank(" {", 2));
}

static void other_type_field(void **state)
{
	struct event_validator *ev;
	struct event_error err;
	char type[256];
	size_t tlen;
	const char *line = "{\"type\":\"no\",\"event_type\":\"yes\"}";

	assert_int_equal(event_validator_new("event_type", 1024, &ev), 0);
	assert_int_equal(event_validate(ev, line, strlen(line), type, &tlen, &err), 0);
	assert_string_equal(type, "yes");
	event_validator_free(ev);
	assert_int_equal(event_validator_new("", 1024, &ev), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(accepts_valid_events),
		cmocka_unit_test(rejects_with_reason_and_column),
		cmocka_unit_test(refuses_oversized_events),
		cmocka_unit_test(type_names_are_checked),
		cmocka_unit_test(other_type_field),
	};

	return cmocka_run_group_tests_name("event", tests, setup, teardown);
}
