/*
 * test_datadir.c - the paths inside a data directory (datadir.h): each
 * builder spells the layout, a path too long for DD_PATH_MAX is refused
 * whole (never truncated into another path), and the store, the offline
 * tools and backup refuse a DATA_DIR longer than DD_DIR_MAX before they
 * touch anything.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "datadir.h"
#include "evlog.h"
#include "testutil.h"

static void builders_spell_the_layout(void **state)
{
	char buf[DD_PATH_MAX];

	(void)state;
	assert_int_equal(dd_path(buf, "/d", DD_INDEX, NULL), 0);
	assert_string_equal(buf, "/d/index");
	assert_int_equal(dd_path(buf, "/d", DD_INDEX, DD_MDB_DATA), 0);
	assert_string_equal(buf, "/d/index/data.mdb");
	assert_int_equal(dd_task(buf, "/d", "t1", NULL), 0);
	assert_string_equal(buf, "/d/tasks/t1");
	assert_int_equal(dd_task(buf, "/d", "t1", DD_META), 0);
	assert_string_equal(buf, "/d/tasks/t1/events.meta");
	assert_int_equal(dd_trash(buf, "/d", 0x2a, NULL), 0);
	assert_string_equal(buf, "/d/tasks/.trash-000000000000002a");
	assert_int_equal(dd_trash(buf, "/d", 0x2a, DD_EVENTS), 0);
	assert_string_equal(buf, "/d/tasks/.trash-000000000000002a/events");
	assert_int_equal(dd_rewrite(buf, "/d", 7, NULL), 0);
	assert_string_equal(buf, "/d/tasks/.rewrite");
	assert_int_equal(dd_rewrite(buf, "/d", 7, "meta"), 0);
	assert_string_equal(buf, "/d/tasks/.rewrite/0000000000000007.meta");
	assert_int_equal(dd_join(buf, "/d/tasks", "x"), 0);
	assert_string_equal(buf, "/d/tasks/x");
	assert_int_equal(dd_suffix(buf, "/d/journal/1.jnl", ".corrupt"), 0);
	assert_string_equal(buf, "/d/journal/1.jnl.corrupt");
}

static void trash_names(void **state)
{
	uint64_t uid = 0;

	(void)state;
	assert_true(dd_is_trash(".trash-000000000000002a", &uid));
	assert_int_equal(uid, 0x2a);
	assert_true(dd_is_trash(".trash-ff", NULL));
	assert_false(dd_is_trash(".trash-", &uid));
	assert_false(dd_is_trash(".trash-12g", &uid));
	assert_false(dd_is_trash("trash-12", &uid));
	assert_false(dd_is_trash(".rewrite", &uid));
}

/* A longest DATA_DIR and a longest task name fit; one byte more is refused, whole. */
static void too_long_is_refused_not_cut(void **state)
{
	char buf[DD_PATH_MAX], dir[DD_DIR_MAX + 2], name[NAME_MAX + 2], big[DD_PATH_MAX + 8];

	(void)state;
	memset(dir, 'd', DD_DIR_MAX);
	dir[DD_DIR_MAX] = 0;
	memset(name, 'n', NAME_MAX);
	name[NAME_MAX] = 0;
	assert_int_equal(dd_check(dir), 0);
	assert_int_equal(dd_task(buf, dir, name, "events.damaged.salvage"), 0);
	assert_int_equal(dd_trash(buf, dir, UINT64_MAX, DD_META), 0);
	assert_int_equal(dd_rewrite(buf, dir, UINT64_MAX, "events"), 0);
	strcat(dir, "d");
	assert_int_equal(dd_check(dir), -ENAMETOOLONG);
	strcat(name, "n");
	strcpy(buf, "unchanged");
	assert_int_equal(dd_task(buf, "/d", name, NULL), -ENAMETOOLONG);
	assert_string_equal(buf, "");
	memset(big, 'b', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	assert_int_equal(dd_join(buf, big, "x"), -ENAMETOOLONG);
	assert_string_equal(buf, "");
	assert_int_equal(dd_suffix(buf, big, ".new"), -ENAMETOOLONG);
	assert_int_equal(dd_path(buf, big, DD_INDEX, NULL), -ENAMETOOLONG);
}

/* evl_store_open checks DATA_DIR's length before it makes or locks anything. */
static void store_refuses_a_long_data_dir(void **state)
{
	const char *tmp = *state;
	struct evl_options o;
	struct evl_store *st = NULL;
	size_t len = strlen(tmp);
	char *dir = malloc(DD_DIR_MAX + 2);
	struct stat sb;

	assert_non_null(dir);
	evl_options_default(&o);
	memcpy(dir, tmp, len);
	dir[len] = '/';
	memset(dir + len + 1, 'x', DD_DIR_MAX - len);
	dir[DD_DIR_MAX + 1] = 0;
	assert_int_equal(evl_store_open(dir, &o, &st), -ENAMETOOLONG);
	assert_null(st);
	dir[len + 1 + NAME_MAX] = 0;	/* the first component of it: never made */
	assert_int_equal(stat(dir, &sb), -1);
	free(dir);
}

static int x_lines;

static void count_x(void *arg, char level, const char *line)
{
	if (level == 'X' && strstr(line, "3800"))
		x_lines++;
}

/*
 * The offline tools and backup check each DATA_DIR they are handed before
 * they build a path in it: -ENAMETOOLONG, said in an 'X' line, nothing
 * made; backup checks DEST as well as SOURCE.
 */
static void tools_refuse_a_long_data_dir(void **state)
{
	const char *tmp = *state;
	struct evl_check_opts co = { .report = count_x };
	struct evl_backup_opts bo = { .report = count_x };
	struct evl_check_result cr;
	struct evl_backup_result br;
	char *dir = malloc(DD_DIR_MAX + 2), store[DD_PATH_MAX];
	size_t len = strlen(tmp);
	struct stat sb;

	assert_non_null(dir);
	memcpy(dir, tmp, len);
	dir[len] = '/';
	memset(dir + len + 1, 'x', DD_DIR_MAX - len);
	dir[DD_DIR_MAX + 1] = 0;
	x_lines = 0;
	memset(&cr, 0, sizeof(cr));
	assert_int_equal(evl_fsck(dir, &co, &cr), -ENAMETOOLONG);
	co.repair = true;
	assert_int_equal(evl_fsck(dir, &co, &cr), -ENAMETOOLONG);
	assert_int_equal(evl_reindex(dir, &co, &cr), -ENAMETOOLONG);
	assert_int_equal(dd_join(store, tmp, "s"), 0);
	evl_store_close(tu_open_store(store, false, 5));
	memset(&br, 0, sizeof(br));
	assert_int_equal(evl_backup(dir, store, &bo, &br), -ECANCELED);
	assert_int_equal(evl_backup(store, dir, &bo, &br), -ECANCELED);
	assert_int_equal(x_lines, 5);
	dir[len + 1 + NAME_MAX] = 0;
	assert_int_equal(stat(dir, &sb), -1);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(builders_spell_the_layout),
		cmocka_unit_test(trash_names),
		cmocka_unit_test(too_long_is_refused_not_cut),
		cmocka_unit_test_setup_teardown(store_refuses_a_long_data_dir, tu_setup, tu_teardown),
		cmocka_unit_test_setup_teardown(tools_refuse_a_long_data_dir, tu_setup, tu_teardown),
	};

	return tu_run_tests("datadir", tests, sizeof(tests) / sizeof(tests[0]));
}
