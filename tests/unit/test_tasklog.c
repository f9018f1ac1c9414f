/* Unit tests: task logs, sidecars and the descriptor cache. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "tasklog.h"
#include "testutil.h"

static void write_read_with_a_small_cache(void **state)
{
	char dir[4200], name[16], buf[64];
	struct tasklog *tl;
	uint64_t len[6] = { 0 }, n[6] = { 0 };

	snprintf(dir, sizeof(dir), "%s/tasks", (char *)*state);
	assert_int_equal(tasklog_open(dir, 2, &tl), 0);	/* 2 descriptors for 5 tasks */
	for (uint64_t u = 1; u <= 5; u++) {
		snprintf(name, sizeof(name), "task%d", (int)u);
		assert_int_equal(tasklog_create(tl, u, name), 0);
	}
	for (int round = 0; round < 20; round++)
		for (uint64_t u = 1; u <= 5; u++) {
			struct tasklog_rec r = { 100 * round + u, 7, 0 };
			int k = snprintf(buf, sizeof(buf), "{\"r\":%d,\"u\":%d}\n", round, (int)u);

			r.len = k;
			snprintf(name, sizeof(name), "task%d", (int)u);
			assert_int_equal(tasklog_write(tl, u, name, len[u], buf, k, n[u], &r, 1), 0);
			len[u] += k;
			n[u]++;
		}
	for (uint64_t u = 1; u <= 5; u++) {
		struct tasklog_rec recs[20];
		uint64_t l, c;
		char got[32];

		snprintf(name, sizeof(name), "task%d", (int)u);
		assert_int_equal(tasklog_sizes(tl, name, &l, &c), 0);
		assert_int_equal(l, len[u]);
		assert_int_equal(c, 20);
		assert_int_equal(tasklog_read_recs(tl, u, name, 0, recs, 20), 20);
		assert_int_equal(recs[19].gseq, 1900 + u);
		assert_int_equal(tasklog_read(tl, u, name, 0, got, 14), 14);
		snprintf(buf, sizeof(buf), "{\"r\":0,\"u\":%d}", (int)u);
		assert_memory_equal(got, buf, 13);
		assert_int_equal(got[13], '\n');
		assert_int_equal(tasklog_sync(tl, u, name), 0);
	}
	/* cut back, then remove and purge */
	assert_int_equal(tasklog_truncate(tl, 3, "task3", 15, 1), 0);
	{
		uint64_t l, c;

		assert_int_equal(tasklog_sizes(tl, "task3", &l, &c), 0);
		assert_int_equal(l, 15);
		assert_int_equal(c, 1);
	}
	assert_int_equal(tasklog_remove(tl, 3, "task3"), 0);
	assert_int_equal(tasklog_remove(tl, 3, "task3"), 0);	/* again after a crash */
	assert_true(tasklog_read(tl, 3, "task3", 0, buf, 4) < 0);
	assert_int_equal(tasklog_create(tl, 6, "task3"), 0);	/* the name is free */
	assert_int_equal(tasklog_purge(tl, 3), 0);
	assert_int_equal(tasklog_purge(tl, 3), 0);
	{
		char trash[4400];
		struct stat st;

		snprintf(trash, sizeof(trash), "%s/.trash-%016x", dir, 3);
		assert_int_not_equal(stat(trash, &st), 0);
	}
	tasklog_close(tl);
}

static void sidecar_records_are_checked(void **state)
{
	struct tasklog_rec r = { 0x1122334455667788ull, 99, 200 }, back;
	unsigned char enc[TASKLOG_REC];

	tasklog_encode(&r, enc);
	assert_int_equal(tasklog_decode(enc, &back), 0);
	assert_int_equal(back.gseq, r.gseq);
	assert_int_equal(back.time_ns, 99);
	assert_int_equal(back.len, 200);
	enc[3] ^= 1;
	assert_int_equal(tasklog_decode(enc, &back), -EILSEQ);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(write_read_with_a_small_cache, tu_setup, tu_teardown),
		cmocka_unit_test(sidecar_records_are_checked),
	};

	return cmocka_run_group_tests_name("tasklog", tests, NULL, NULL);
}
