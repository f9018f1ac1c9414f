/* Unit tests: line reassembly. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "linebuf.h"

struct seen {
	char out[8192];
	size_t len;
	int fail_at;	/* refuse the line with this index, or -1 */
};

static int collect(void *arg, const char *line, size_t len, size_t index)
{
	struct seen *s = arg;

	if ((int)index == s->fail_at)
		return -EINVAL;
	memcpy(s->out + s->len, line, len);
	s->out[s->len + len] = '|';
	s->len += len + 1;
	s->out[s->len] = '\0';
	return 0;
}

static int collect_none(void *arg, const char *line, size_t len, size_t index)
{
	return 0;
}

static int feed(struct linebuf *lb, struct seen *s, const char *data)
{
	int rc = linebuf_feed(lb, data, strlen(data), collect, s);

	if (rc == 0)
		linebuf_commit(lb);
	return rc;
}

static void splits_and_joins(void **state)
{
	struct linebuf lb;
	struct seen s = { .fail_at = -1 };

	linebuf_init(&lb, 100);
	assert_int_equal(feed(&lb, &s, "ab"), 0);
	assert_int_equal(linebuf_pending(&lb), 2);
	assert_int_equal(feed(&lb, &s, "c\nde\nf"), 0);
	assert_string_equal(s.out, "abc|de|");
	assert_int_equal(feed(&lb, &s, "g"), 0);
	assert_int_equal(feed(&lb, &s, "\n\n"), 0);
	assert_string_equal(s.out, "abc|de|fg||");
	assert_int_equal(linebuf_pending(&lb), 0);
	linebuf_release(&lb);
}

/* write(fd, buf, 0) onto a handle that never held bytes (found by fuzz_event: UBSan) */
static void empty_writes(void **state)
{
	struct linebuf lb;
	struct seen s = { .fail_at = -1 };

	linebuf_init(&lb, 100);
	assert_int_equal(feed(&lb, &s, ""), 0);
	assert_int_equal(linebuf_pending(&lb), 0);
	assert_int_equal(feed(&lb, &s, "a"), 0);
	assert_int_equal(feed(&lb, &s, ""), 0);
	assert_int_equal(feed(&lb, &s, "\n"), 0);
	assert_string_equal(s.out, "a|");
	linebuf_release(&lb);
}

static void refusal_rolls_back(void **state)
{
	struct linebuf lb;
	struct seen s = { .fail_at = 1 };

	linebuf_init(&lb, 100);
	assert_int_equal(feed(&lb, &s, "par"), 0);
	assert_int_equal(feed(&lb, &s, "t1\nbad\ntail"), -EINVAL);
	/* the held part is as before the refused call */
	assert_int_equal(linebuf_pending(&lb), 3);
	assert_memory_equal(lb.buf, "par", 3);
	s.fail_at = -1;
	s.len = 0;
	assert_int_equal(feed(&lb, &s, "t1\nok\n"), 0);
	assert_string_equal(s.out, "part1|ok|");
	/* an explicit rollback after a good feed */
	assert_int_equal(linebuf_feed(&lb, "x\ny", 3, collect, &s), 0);
	linebuf_rollback(&lb);
	assert_int_equal(linebuf_pending(&lb), 0);
	linebuf_release(&lb);
}

static void long_lines_are_refused(void **state)
{
	struct linebuf lb;
	struct seen s = { .fail_at = -1 };
	char big[64];

	memset(big, 'x', sizeof(big));
	big[63] = '\0';
	linebuf_init(&lb, 10);
	/* 9 bytes + newline fit in 10 */
	assert_int_equal(feed(&lb, &s, "123456789\n"), 0);
	assert_int_equal(feed(&lb, &s, "1234567890\n"), -EFBIG);
	assert_false(linebuf_refused_held(&lb));
	assert_int_equal(feed(&lb, &s, "12345"), 0);
	assert_int_equal(feed(&lb, &s, "67890"), -EFBIG);	/* held part would pass 9 */
	assert_int_equal(linebuf_pending(&lb), 5);
	assert_true(linebuf_refused_held(&lb));
	assert_int_equal(feed(&lb, &s, "67890\n"), -EFBIG);	/* and with its newline */
	assert_true(linebuf_refused_held(&lb));
	assert_int_equal(feed(&lb, &s, big), -EFBIG);
	assert_true(linebuf_refused_held(&lb));
	/* a long tail after the held line's end is a line of its own */
	assert_int_equal(feed(&lb, &s, "6\n1234567890"), -EFBIG);
	assert_false(linebuf_refused_held(&lb));
	assert_int_equal(linebuf_pending(&lb), 5);
	linebuf_release(&lb);
}

/*
 * Lines are shown in order, a long tail only after them: the first bad
 * line in the data is the one refused, and whether it is the held one.
 */
static void first_bad_line_is_refused(void **state)
{
	struct linebuf lb;
	struct seen s = { .fail_at = 0 };

	linebuf_init(&lb, 10);
	assert_int_equal(feed(&lb, &s, "ab"), 0);
	/* an invalid held line before a long tail: the held line is refused */
	assert_int_equal(feed(&lb, &s, "c\n12345678901"), -EINVAL);
	assert_true(linebuf_refused_held(&lb));
	assert_int_equal(linebuf_pending(&lb), 2);
	/* valid lines, then a long tail: EFBIG, after the lines were shown */
	s.fail_at = -1;
	assert_int_equal(feed(&lb, &s, "c\nd\n12345678901"), -EFBIG);
	assert_string_equal(s.out, "abc|d|");
	assert_false(linebuf_refused_held(&lb));
	/* the second line refused: not the held one */
	s.fail_at = 1;
	s.len = 0;
	assert_int_equal(feed(&lb, &s, "c\nd\n"), -EINVAL);
	assert_false(linebuf_refused_held(&lb));
	assert_int_equal(linebuf_pending(&lb), 2);
	linebuf_clear(&lb);
	assert_int_equal(linebuf_pending(&lb), 0);
	linebuf_release(&lb);
}

/* A buffer that grew for a long line is given back once the line is done. */
static void long_line_memory_is_given_back(void **state)
{
	size_t n = 1 << 20;
	char *big = malloc(n + 2);
	struct linebuf lb;
	struct seen s = { .fail_at = -1 };

	memset(big, 'x', n);
	linebuf_init(&lb, n + 16);
	assert_int_equal(linebuf_feed(&lb, big, n, collect_none, &s), 0);
	linebuf_commit(&lb);
	assert_true(lb.cap >= n);
	memcpy(big, "\nab", 3);
	assert_int_equal(linebuf_feed(&lb, big, 3, collect_none, &s), 0);
	assert_int_equal(linebuf_next_pending(&lb), 2);
	linebuf_commit(&lb);
	assert_int_equal(linebuf_pending(&lb), 2);
	assert_memory_equal(lb.buf, "ab", 2);
	assert_true(lb.cap <= 4096);
	assert_int_equal(linebuf_feed(&lb, big + 3, n - 3, collect_none, &s), 0);
	linebuf_commit(&lb);
	assert_true(lb.cap >= n);
	linebuf_clear(&lb);
	assert_true(lb.cap <= 4096);
	/* and when a feed that grew it is undone (refused, or not stored) */
	assert_int_equal(linebuf_feed(&lb, big + 3, n - 3, collect_none, &s), 0);
	assert_true(lb.cap >= n);
	linebuf_rollback(&lb);
	assert_true(lb.cap <= 4096);
	linebuf_release(&lb);
	free(big);
}

static void random_splits_give_the_same_lines(void **state)
{
	char text[4096], whole[8192];
	struct seen s1 = { .fail_at = -1 }, s2 = { .fail_at = -1 };
	struct linebuf a, b;
	unsigned seed = 7;
	size_t n = 0;

	while (n < sizeof(text) - 40)
		n += snprintf(text + n, sizeof(text) - n, "line %u\n", rand_r(&seed) % 100000);
	linebuf_init(&a, 64);
	linebuf_init(&b, 64);
	assert_int_equal(linebuf_feed(&a, text, n, collect, &s1), 0);
	linebuf_commit(&a);
	for (size_t pos = 0; pos < n;) {
		size_t k = 1 + rand_r(&seed) % 23;

		if (k > n - pos)
			k = n - pos;
		assert_int_equal(linebuf_feed(&b, text + pos, k, collect, &s2), 0);
		linebuf_commit(&b);
		pos += k;
	}
	memcpy(whole, s1.out, s1.len + 1);
	assert_string_equal(whole, s2.out);
	linebuf_release(&a);
	linebuf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(splits_and_joins),
		cmocka_unit_test(empty_writes),
		cmocka_unit_test(refusal_rolls_back),
		cmocka_unit_test(long_lines_are_refused),
		cmocka_unit_test(first_bad_line_is_refused),
		cmocka_unit_test(long_line_memory_is_given_back),
		cmocka_unit_test(random_splits_give_the_same_lines),
	};

	return cmocka_run_group_tests_name("linebuf", tests, NULL, NULL);
}
