/*
 * testutil.h - helpers for the unit tests: private temp dirs, fixtures and
 * the sharded test runner.  The fault seam is fio.h.
 */
#ifndef EVL_TESTUTIL_H
#define EVL_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A fresh directory under $TMPDIR (or /tmp); caller frees, tu_rmrf removes. */
char *tu_tmpdir(void);
void tu_rmrf(const char *path);
/*
 * cmocka fixtures: *state becomes a fresh temp dir; teardown removes it
 * and takes the fault seam out (even after a failed test).
 */
int tu_setup(void **state);
int tu_teardown(void **state);
/*
 * Run @tests as cmocka group @name, or the part of them the environment
 * picks: EVL_TEST_SHARD=i/n runs every n-th test from the i-th (1-based),
 * so that meson runs a long suite as n tests side by side;
 * EVL_TEST_FILTER=glob runs those whose names match.
 */
struct CMUnitTest;
int tu_run_tests(const char *name, const struct CMUnitTest *tests, size_t n);
/* Milliseconds of CLOCK_MONOTONIC. */
uint64_t tu_now_ms(void);

#endif
