/*
 * scan.h - a full scan of a data dir's task logs, parsing every line.
 */
#ifndef EVL_BENCH_SCAN_H
#define EVL_BENCH_SCAN_H

#include <stddef.h>

/* Bytes of the events of TASKS_DIR/<id>/events whose type starts with @prefix. */
long scan_parse(const char *tasks_dir, const char *prefix, size_t plen);

#endif
