/*
 * testutil.c - temp dirs, fixtures and the sharded test runner.
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <execinfo.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "io.h"
#include "fio.h"
#include "testutil.h"

char *tu_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char *p;

	if (asprintf(&p, "%s/evl-test-XXXXXX", base && *base ? base : "/tmp") < 0)
		abort();
	if (!mkdtemp(p))
		abort();
	return p;
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

void tu_rmrf(const char *path)
{
	nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

int tu_setup(void **state)
{
	*state = tu_tmpdir();
	return 0;
}

int tu_teardown(void **state)
{
	fio_uninstall();
	tu_rmrf(*state);
	free(*state);
	return 0;
}

int tu_run_tests(const char *name, const struct CMUnitTest *tests, size_t n)
{
	const char *shard = getenv("EVL_TEST_SHARD");
	struct CMUnitTest *some;
	unsigned i, k;
	size_t m = 0;
	int rc;

	if (getenv("EVL_TEST_FILTER"))
		cmocka_set_test_filter(getenv("EVL_TEST_FILTER"));
	if (!shard)
		return _cmocka_run_group_tests(name, tests, n, NULL, NULL);
	if (sscanf(shard, "%u/%u", &i, &k) != 2 || i < 1 || i > k) {
		fprintf(stderr, "EVL_TEST_SHARD=%s: want i/n with 1 <= i <= n\n", shard);
		return 1;
	}
	some = calloc(n, sizeof(*some));
	if (!some)
		return 1;
	for (size_t t = i - 1; t < n; t += k)
		some[m++] = tests[t];
	rc = _cmocka_run_group_tests(name, some, m, NULL, NULL);
	free(some);
	return rc;
}

uint64_t tu_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ull + ts.tv_nsec / 1000000;
}
