/* Unit tests: event validation. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "bytes.h"
#include "event.h"
#include "event_cases.h"
#include "evlog.h"
#include "journal_i.h"
#include "testutil.h"

#define NCASES (sizeof(event_cases) / sizeof(*event_cases))

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

static int check_len(struct event_validator *ev, const char *line, size_t len, char *type,
		     struct event_error *err)
{
	size_t tlen = 0;
	int rc;

	memset(err, 0, sizeof(*err));
	rc = event_validate(ev, line, len, type, &tlen, err);
	if (rc == 0 && (tlen != strlen(type) || tlen == 0))
		return -1000;	/* *type_len and the NUL disagree */
	return rc;
}

static int check(const char *line, char *type, struct event_error *err)
{
	return check_len(v, line, strlen(line), type, err);
}

/* One case against @ev: 0 if as expected, else 1 (printed). */
static int run_case(struct event_validator *ev, const struct event_case *c, size_t i)
{
	struct event_error err;
	char type[EVENT_TYPE_MAX + 1];
	size_t col = c->col;
	int rc = check_len(ev, c->line, strlen(c->line), type, &err);

	if (c->at)
		col = strstr(c->line, c->at) - c->line + 1;
	if (c->type) {
		if (rc == 0 && !strcmp(type, c->type))
			return 0;
		print_error("case %zu '%s': want type '%s', got rc %d type '%s' (col %zu: %s)\n",
			    i, c->line, c->type, rc, rc ? "" : type, err.col, err.reason);
		return 1;
	}
	if (rc == -EINVAL && err.err == EINVAL && strstr(err.reason, c->reason) &&
	    (!col || err.col == col))
		return 0;
	print_error("case %zu '%s': want col %zu '%s', got rc %d col %zu '%s'\n", i, c->line,
		    col, c->reason, rc, err.col, rc ? err.reason : type);
	return 1;
}

/* Every case of the conformance set: verdict, type, reason and column. */
static void conformance_set(void **state)
{
	struct event_validator *big;
	int wrong = 0;

	/* max_event large enough for every case */
	assert_int_equal(event_validator_new("type", 4096, &big), 0);
	for (size_t i = 0; i < NCASES; i++)
		wrong += run_case(big, &event_cases[i], i);
	event_validator_free(big);
	assert_int_equal(wrong, 0);
}

/* NUL bytes: raw in a string (a control byte), escaped in a value (fine), in a type (not). */
static void nul_bytes(void **state)
{
	static const char raw[] = "{\"type\":\"a\",\"s\":\"x\0y\"}";
	static const char after[] = "{\"type\":\"a\"}\0";
	static const char ws[] = "{\"type\":\"a\", \0 \"b\":1}";
	static const char num[] = "{\"type\":\"a\",\"n\":123\0" "456}";
	static const char big[] = "{\"type\":\"a\",\"n\":1e999\0" "7}";
	struct event_error err;
	char type[256];

	assert_int_equal(check_len(v, raw, sizeof(raw) - 1, type, &err), -EINVAL);
	assert_non_null(strstr(err.reason, "control character"));
	assert_int_equal(err.col, 19);
	assert_int_equal(check_len(v, after, sizeof(after) - 1, type, &err), -EINVAL);
	assert_non_null(strstr(err.reason, "text after"));
	assert_int_equal(err.col, 13);
	assert_int_equal(check_len(v, ws, sizeof(ws) - 1, type, &err), -EINVAL);
	assert_int_equal(err.col, 14);
	/* simdjson's number parser stops at a NUL and skips the rest of the token */
	assert_int_equal(check_len(v, num, sizeof(num) - 1, type, &err), -EINVAL);
	assert_int_equal(err.col, 20);
	assert_non_null(strstr(err.reason, "unexpected byte 0x00"));
	assert_int_equal(check_len(v, big, sizeof(big) - 1, type, &err), -EINVAL);
	assert_int_equal(err.col, 22);
	assert_int_equal(check("{\"type\":\"a\",\"s\":\"x\\u0000y\"}", type, &err), 0);
	assert_int_equal(check("{\"type\":\"a\\u0000b\"}", type, &err), -EINVAL);
}

/* 128 levels of containers, the event included, and not one more. */
static void nesting_limit(void **state)
{
	struct event_validator *big;
	struct event_error err;
	char line[1024], type[256];
	size_t n;

	assert_int_equal(event_validator_new("type", sizeof(line) + 1, &big), 0);
	for (int depth = 127; depth <= 130; depth++) {
		for (int kind = 0; kind < 2; kind++) {
			/* {"type":"a","x": then depth-1 containers around a 1 */
			n = (size_t)sprintf(line, "{\"type\":\"a\",\"x\":");
			for (int d = 1; d < depth; d++)
				n += (size_t)sprintf(line + n, kind ? "[" : "{\"k\":");
			line[n++] = '1';
			for (int d = depth - 1; d >= 1; d--)
				line[n++] = kind ? ']' : '}';
			line[n++] = '}';
			if (depth <= EVENT_JSON_DEPTH) {
				assert_int_equal(check_len(big, line, n, type, &err), 0);
			} else {
				assert_int_equal(check_len(big, line, n, type, &err), -EINVAL);
				assert_non_null(strstr(err.reason, "nested deeper than 128"));
				/* the column of the 129th opening bracket */
				assert_int_equal(line[err.col - 1], kind ? '[' : '{');
			}
		}
	}
	event_validator_free(big);
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

/* A type of 255 bytes is fine, 256 is not, in bytes (not characters). */
static void type_length(void **state)
{
	struct event_validator *big;
	struct event_error err;
	char line[700], type[256];
	int n;

	assert_int_equal(event_validator_new("type", sizeof(line) + 1, &big), 0);
	n = sprintf(line, "{\"type\":\"%0255d\"}", 0);
	assert_int_equal(check_len(big, line, n, type, &err), 0);
	assert_int_equal(strlen(type), 255);
	n = sprintf(line, "{\"type\":\"%0256d\"}", 0);
	assert_int_equal(check_len(big, line, n, type, &err), -EINVAL);
	assert_non_null(strstr(err.reason, "must be 1-255"));
	/* 128 two-byte characters: 256 bytes */
	n = sprintf(line, "{\"type\":\"");
	for (int i = 0; i < 128; i++)
		n += sprintf(line + n, "\xc3\xa9");
	n += sprintf(line + n, "\"}");
	assert_int_equal(check_len(big, line, n, type, &err), -EINVAL);
	/* escapes count as what they decode to: 255 bytes from 6-byte escapes */
	n = sprintf(line, "{\"type\":\"");
	for (int i = 0; i < 85; i++)
		n += sprintf(line + n, "\\u20ac");
	n += sprintf(line + n, "\"}");
	assert_int_equal(check_len(big, line, n, type, &err), 0);
	assert_int_equal(strlen(type), 255);
	event_validator_free(big);
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
	/* "." and ".." are directory entries of every directory, never types */
	assert_int_equal(event_check_name(".", 1), -EINVAL);
	assert_int_equal(event_check_name("..", 2), -EINVAL);
	assert_int_equal(event_check_name(".x", 2), -EINVAL);
	assert_int_equal(event_check_name("x.", 2), 0);
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
	const char *dup = "{\"type\":\"a\",\"type\":\"b\",\"event_type\":\"yes\"}";

	assert_int_equal(event_validator_new("event_type", 1024, &ev), 0);
	assert_int_equal(event_validate(ev, line, strlen(line), type, &tlen, &err), 0);
	assert_string_equal(type, "yes");
	/* a duplicate of another member is not a duplicate type */
	assert_int_equal(event_validate(ev, dup, strlen(dup), type, &tlen, &err), 0);
	event_validator_free(ev);
	assert_int_equal(event_validator_new("", 1024, &ev), -EINVAL);
	assert_int_equal(event_validator_new_ex("type", 1024, 0x80, &ev), -EINVAL);
}

/*
 * EVENT_STORED: what the json-c based validator of earlier versions
 * accepted still replays (a journal written before the upgrade), with the
 * type it had then; everything the strict validator accepts too, with the
 * same type; and what nobody ever accepted is still refused.
 */
static void stored_events_of_earlier_versions(void **state)
{
	static const struct {
		const char *line;
		const char *type;
	} old[] = {
		{ "{\"type\":\"a\",\"n\":00}", "a" },
		{ "{\"type\":\"a\",\"n\":[-01]}", "a" },
		{ "{\"type\":\"a\",\"s\":\"\xc0\xaf\"}", "a" },
		{ "{\"type\":\"a\",\"s\":\"\xed\xa0\x80\"}", "a" },
		{ "{\"type\":\"a\",\"\xf4\x90\x80\x80\":1}", "a" },
		{ "{\"type\":\"\xe0\x80\xaf\"}", "\xe0\x80\xaf" },
		{ "{\"type\":\"a\",\"type\":\"b\"}", "b" },	/* json-c kept the last */
		{ "{\"type\":\".\"}", "." },
		{ "{\"type\":\"..\"}", ".." },
		{ "{\"type\":\".x\"}", ".x" },
	};
	static const char *const never[] = {
		"{\"type\":\"a\",\"n\":1.}",
		"{'type':'a'}",
		"{\"type\":\"a\",\"v\":NaN}",
		"{\"type\":\"a\"} x",
		"{\"type\":\"a\",\"s\":\"\xff\"}",
		"{\"type\":\"a/b\"}",
		"{\"type\":\"\"}",
		"{\"type\":3}",
		"[1]",
	};
	struct event_validator *st;
	struct event_error err;
	char type[256], stype[256];
	int wrong = 0;

	assert_int_equal(event_validator_new_ex("type", 4096, EVENT_STORED, &st), 0);
	for (size_t i = 0; i < sizeof(old) / sizeof(*old); i++) {
		/* refused now... */
		assert_int_equal(check(old[i].line, type, &err), -EINVAL);
		/* ...but it replays */
		if (check_len(st, old[i].line, strlen(old[i].line), type, &err) ||
		    strcmp(type, old[i].type)) {
			print_error("stored %zu '%s': %s\n", i, old[i].line, err.reason);
			wrong++;
		}
	}
	for (size_t i = 0; i < sizeof(never) / sizeof(*never); i++)
		if (check_len(st, never[i], strlen(never[i]), type, &err) != -EINVAL) {
			print_error("stored accepts '%s'\n", never[i]);
			wrong++;
		}
	/* strict acceptance implies stored acceptance with the same type */
	for (size_t i = 0; i < NCASES; i++) {
		const struct event_case *c = &event_cases[i];

		if (!c->type)
			continue;
		if (check_len(st, c->line, strlen(c->line), stype, &err) || strcmp(stype, c->type)) {
			print_error("stored refuses case %zu '%s': %s\n", i, c->line, err.reason);
			wrong++;
		}
	}
	event_validator_free(st);
	assert_int_equal(wrong, 0);
}

/*
 * Large lines get a parser of their own; small ones the thread's.  One
 * after the other, each judged as if alone.
 */
static void large_then_small(void **state)
{
	size_t big = 3 << 20;
	struct event_validator *ev;
	struct event_error err;
	char *line = malloc(big + 64), type[256];
	size_t n;

	assert_non_null(line);
	assert_int_equal(event_validator_new("type", big + 64, &ev), 0);
	n = (size_t)sprintf(line, "{\"type\":\"big\",\"a\":[");
	while (n < big)
		n += (size_t)sprintf(line + n, "{\"k\":\"v\",\"n\":-1.5e3},");
	n += (size_t)sprintf(line + n, "1e999]}");
	assert_int_equal(check_len(ev, line, n, type, &err), 0);
	assert_string_equal(type, "big");
	memcpy(line + n - 7, "01e99", 5);	/* the last number gets a leading zero */
	assert_int_equal(check_len(ev, line, n, type, &err), -EINVAL);
	assert_int_equal(err.col, n - 6);
	assert_int_equal(check("{\"type\":\"small\"}", type, &err), 0);
	assert_string_equal(type, "small");
	event_validator_free(ev);
	free(line);
}

/* Validators on several threads at once (the thread sanitizer run watches). */
static void *judge_all(void *arg)
{
	struct event_validator *ev;
	intptr_t wrong = 0;

	if (event_validator_new("type", 4096, &ev))
		return (void *)(intptr_t)1;
	for (int r = 0; r < 20; r++)
		for (size_t i = 0; i < NCASES; i++)
			wrong += run_case(ev, &event_cases[i], i);
	event_validator_free(ev);
	return (void *)wrong;
}

static void threads(void **state)
{
	pthread_t t[4];
	void *res;
	intptr_t wrong = 0;

	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, judge_all, NULL), 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], &res), 0);
		wrong += (intptr_t)res;
	}
	assert_int_equal(wrong, 0);
}

/*
 * In every journal segment of @dir, find the record whose payload holds
 * @from and make it @to (same length), with a checksum to match: what an
 * earlier version's writer would have journaled (see core/journal.c for
 * the format).  Returns the records changed.
 */
static int patch_journal_n(const char *dir, const char *from, const char *to, size_t n)
{
	char path[4200];
	struct dirent *de;
	int changed = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/journal", dir);
	d = opendir(path);
	assert_non_null(d);
	while ((de = readdir(d))) {
		unsigned char *buf;
		size_t off = JOURNAL_SEG_HDR, size;
		FILE *f;

		if (!strstr(de->d_name, ".jnl"))
			continue;
		snprintf(path, sizeof(path), "%s/journal/%s", dir, de->d_name);
		f = fopen(path, "r+b");
		assert_non_null(f);
		buf = malloc(64 << 20);
		size = fread(buf, 1, 64 << 20, f);
		while (off + JOURNAL_REC_HDR <= size) {
			unsigned char *rec = (unsigned char *)buf + off, *hit;
			uint32_t len = get_le32(rec + 8);

			if (off + JOURNAL_REC_HDR + len > size)
				break;
			hit = memmem(rec + JOURNAL_REC_HDR, len, from, n);
			if (hit) {
				struct iovec iov = { rec + JOURNAL_REC_HDR, len };

				memcpy(hit, to, n);
				/* the journal's own framing: a new checksum, nothing else changed */
				journal_rec_header(rec, rec[4], len, get_le64(rec + 16), get_le32(rec + 12),
						   &iov, 1);
				changed++;
			}
			off += JOURNAL_REC_HDR + len;
		}
		rewind(f);
		assert_int_equal(fwrite(buf, 1, size, f), size);
		fclose(f);
		free(buf);
	}
	closedir(d);
	return changed;
}

static int patch_journal(const char *dir, const char *from, const char *to)
{
	assert_int_equal(strlen(to), strlen(from));
	return patch_journal_n(dir, from, to, strlen(from));
}

static int collect_type(void *arg, const char *type, size_t len)
{
	char *all = arg;

	strncat(all, type, len);
	strcat(all, ",");
	return 0;
}

/*
 * An upgrade with journal records not yet applied: events the earlier,
 * json-c based validator accepted (a leading zero, overlong UTF-8, the
 * type ".") were journaled; the new version must open the store, apply
 * them as they were acknowledged, and check it clean.  Strict replay
 * refused them ("is not what its writer validated; run evlogctl reindex")
 * and the store could not be opened.  A "." type of such a store has no
 * view and is not listed (listing it would show "." twice).
 */
static void upgrade_replays_what_earlier_versions_accepted(void **state)
{
	static const char *const now[] = {
		"{\"type\":\"old\",\"n\":10}\n",
		"{\"type\":\"utf\",\"s\":\"\xc3\xa9\"}\n",
		"{\"type\":\"d\",\"k\":1}\n",
	};
	static const char *const then[] = {
		"{\"type\":\"old\",\"n\":00}\n",
		"{\"type\":\"utf\",\"s\":\"\xc0\xaf\"}\n",
		"{\"type\":\".\",\"k\":1}\n",
	};
	const char *dir = *state;
	struct evl_check_opts co = { 0 };
	struct evl_check_result cr;
	struct evl_task_info info;
	struct evl_options o;
	struct evl_store *st;
	struct evl_writer *w;
	char got[256] = "", types[256] = "";
	ssize_t n;
	pid_t pid;
	int status;

	evl_options_default(&o);
	assert_int_equal(evl_store_open(dir, &o, &st), 0);
	assert_int_equal(evl_task_create(st, "t"), 0);
	assert_int_equal(evl_store_close(st), 0);

	/* a run that journals three events, applies none and dies */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		o.hold_apply = true;
		if (evl_store_open(dir, &o, &st) || evl_task_lookup(st, "t", &info) ||
		    evl_writer_open(st, info.uid, &w))
			_exit(2);
		for (int i = 0; i < 3; i++)
			if (evl_writer_write(w, now[i], strlen(now[i])))
				_exit(3);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* ...as an earlier version's writer would have journaled them */
	assert_int_equal(patch_journal(dir, "\"n\":10", "\"n\":00"), 1);
	assert_int_equal(patch_journal(dir, "\"\xc3\xa9\"", "\"\xc0\xaf\""), 1);
	assert_int_equal(patch_journal(dir, "\"d\",\"k\"", "\".\",\"k\""), 1);
	/* the record's directory (event length 19, type length 1, type) says "d": "." */
	assert_int_equal(patch_journal_n(dir, "\x13\0\0\0\x01" "d", "\x13\0\0\0\x01.", 6), 1);

	assert_int_equal(evl_store_open(dir, &o, &st), 0);
	assert_int_equal(evl_task_lookup(st, "t", &info), 0);
	n = evl_task_read(st, info.uid, 0, got, sizeof(got) - 1);
	assert_true(n > 0);
	assert_int_equal((size_t)n, strlen(then[0]) + strlen(then[1]) + strlen(then[2]));
	assert_memory_equal(got, then[0], strlen(then[0]));
	assert_memory_equal(got + strlen(then[0]), then[1], strlen(then[1]));
	assert_memory_equal(got + strlen(then[0]) + strlen(then[1]), then[2], strlen(then[2]));
	assert_int_equal(evl_type_list(st, collect_type, types), 0);
	assert_string_equal(types, "old,utf,");
	assert_false(evl_prefix_exists(st, ".", 1));
	assert_true(evl_prefix_exists(st, "ol", 2));
	/* new writes of the same get the strict verdict */
	assert_int_equal(evl_writer_open(st, info.uid, &w), 0);
	assert_int_equal(evl_writer_write(w, then[0], strlen(then[0])), -EINVAL);
	assert_int_equal(evl_writer_close(w), 0);
	assert_int_equal(evl_store_close(st), 0);

	/* the offline check reads the logs and the journal as recovery does */
	assert_int_equal(evl_fsck(dir, &co, &cr), 0);
	assert_int_equal(cr.problems, 0);
	assert_int_equal(cr.events, 3);
}

/* The longest valid UTF-8 prefix (the status shows the rest as U+FFFD). */
static void utf8_prefix(void **state)
{
	static const struct {
		const char *s;
		size_t len, want;
	} cases[] = {
		{ "plain", 5, 5 },
		{ "\xc3\xa9t\xc3\xa9", 6, 6 },
		{ "ab\xc0\xaf", 4, 2 },			/* overlong */
		{ "a\xe0\x80\xaf", 4, 1 },		/* overlong, 3 bytes */
		{ "\xed\xa0\x80x", 4, 0 },		/* a surrogate */
		{ "x\xf4\x90\x80\x80", 5, 1 },		/* past U+10FFFF */
		{ "\xf4\x8f\xbf\xbfz", 5, 5 },		/* U+10FFFF itself */
		{ "ok\xf5", 3, 2 },			/* F5 lead byte */
		{ "ok\xe2\x82", 4, 2 },			/* cut short */
		{ "\x80\x81", 2, 0 },			/* continuation bytes */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++)
		if (evl_utf8_prefix(cases[i].s, cases[i].len) != cases[i].want)
			fail_msg("case %zu: %zu, want %zu", i,
				 evl_utf8_prefix(cases[i].s, cases[i].len), cases[i].want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(conformance_set),
		cmocka_unit_test(utf8_prefix),
		cmocka_unit_test(nul_bytes),
		cmocka_unit_test(nesting_limit),
		cmocka_unit_test(refuses_oversized_events),
		cmocka_unit_test(type_length),
		cmocka_unit_test(type_names_are_checked),
		cmocka_unit_test(other_type_field),
		cmocka_unit_test(stored_events_of_earlier_versions),
		cmocka_unit_test(large_then_small),
		cmocka_unit_test(threads),
		cmocka_unit_test_setup_teardown(upgrade_replays_what_earlier_versions_accepted,
						tu_setup, tu_teardown),
	};

	return cmocka_run_group_tests_name("event", tests, setup, teardown);
}
