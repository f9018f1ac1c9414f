/*
 * testutil.h - helpers for the unit tests: private temp dirs, fixtures and
 * the sharded test runner.  The fault seam is fio.h.
 */
#ifndef EVL_TESTUTIL_H
#define EVL_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "fio.h"

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

/*
 * ---- stores for the tests of the store (test_store.c, test_crash.c ...) ----
 * A store opened with small segments and a small descriptor cache,
 * events of a known shape, reads of whole logs and views, and the checks
 * every test ends with: views and task reads against a rescan of the
 * files on disk.
 */
struct evl_store;
struct evl_writer;
struct evl_view;
struct evl_task_info;
struct evl_compact_status;

struct evl_store *tu_open_store(const char *dir, bool sync, unsigned commit_ms);

uint64_t tu_task_uid(struct evl_store *st, const char *name);

uint64_t tu_task_events(struct evl_store *st, const char *name);

uint64_t tu_create(struct evl_store *st, const char *name);

int tu_write_str(struct evl_writer *w, const char *s);

int tu_event_line(char *buf, size_t n, int type, int w, int i, int pad);

/* Read all of a task log or a view through the API. */
char *tu_read_all(struct evl_store *st, uint64_t uid, struct evl_view *v, size_t *len);

char *tu_read_view(struct evl_store *st, const char *prefix, uint64_t uid, size_t *len);

char *tu_slurp_path(const char *path, size_t *len);

/* Every view the store offers equals the filter of the logs (store applied). */
void tu_check_views(struct evl_store *st, const char *dir);

struct tu_writer_arg {
	struct evl_store *st;
	uint64_t uid;
	int id, n;
	int split;	/* write lines in pieces */
};

void *tu_writer_main(void *arg);

/* Parse a task log: every line whole, each writer's events in order. */
void tu_check_task_order(const char *log, size_t len, int *per_writer, int nwriters);

/*
 * Task @name's events, all of writer @w, numbered from *@first (-1: none)
 * up without a gap; returns how many.  Fails on anything else.
 */
int tu_task_run(struct evl_store *st, uint64_t uid, int w, int *first, const char *what, long n);

int tu_iterations(const char *var, int dflt);

/* Make @work a fresh copy of store @pristine (each crash or fault run starts from one). */
void tu_copy_store(const char *pristine, const char *work);

/* Power cuts that undid the index's last commit (fio_undo_index_commit). */
extern long tu_index_undone;

/*
 * Journal one event to task x (@ev) and leave it unapplied, as a process
 * gone before its applier ran: a child under the seam's boot (so that the
 * next open, in the real boot, trusts no file past a checkpoint).
 */
void tu_journal_unapplied(const char *dir, const char *ev);

/* Append @len bytes of @fill (NULL: zeros) to task x's file @file. */
void tu_append_to(const char *dir, const char *file, const void *fill, size_t len);

/* A kind of fault: calls of @op fail with @err. */
struct tu_fault_kind {
	enum fio_op op;
	int err;
	const char *name;
};

/*
 * Which calls a sweep fails: every one, or every third (ASan) or eighth
 * (TSan), the sanitizer builds being slower; EVL_FAULT_STRIDE=N sets it.
 */
long tu_fault_stride(void);

void tu_wait_compaction(struct evl_store *st, struct evl_compact_status *cs);

struct tu_task_check_ctx {
	struct evl_task_info *t;
	size_t n;
};

int tu_task_collect_cb(void *arg, const struct evl_task_info *t);

/* Every task reads as its file, sizes and counts agree, no rewrite is left over. */
void tu_check_tasks(struct evl_store *st, const char *dir);

void tu_compact_and_wait(struct evl_store *st, const char *words, struct evl_compact_status *cs);

int tu_count_tasks(struct evl_store *st);

/*
 * In the child of a step test, before the step: with @power, step @k is a
 * power loss (dumped to @work.dump, directory changes tracked), else a
 * crash; either way the process ends there with @code.
 */
void tu_step_arm(const char *work, bool power, long k, int code);

/*
 * In the parent, after a step test's child ended: with @power, cut @work as
 * the worst power loss at that moment could (nothing unsynced kept, every
 * unsynced directory change lost, the index's unsynced commit undone).
 */
void tu_step_cut(const char *work, bool power, int status, struct fio_loss *loss);

/* Append @n events "ty01" numbered from @from to task @name. */
void tu_append_n(struct evl_store *st, const char *name, int from, int n);

struct tu_named {
	struct evl_store *st;
	const char *name;
};

/* @fn(@arg)'s result; fails the test if it has not returned within @secs. */
int tu_within(unsigned secs, const char *what, int (*fn)(void *arg), void *arg);

int tu_do_create(void *arg);

int tu_do_checkpoint(void *arg);

/*
 * ---- stores for the tests of the offline tools (test_check.c ...) ----
 * A small store of four tasks (tu_fill), what it serves (tu_dump), the
 * tools' reports, and the files of DATA_DIR read and written by hand.
 */
struct evl_check_result;
struct index_txn;

/* The event types tu_fill writes, and view prefixes that cover them (and none). */
extern const char *const tu_types[4];
extern const char *const tu_prefixes[6];

/* A store opened with the default options. */
struct evl_store *tu_open_default(const char *dir);

/* @n events spread over tasks t0..t3 and the four types, from event @from on. */
void tu_fill(struct evl_store *st, int from, int n);

/* Every view and every task log, concatenated with separators. */
char *tu_dump(const char *dir);

/*
 * tu_dump without cmocka's asserts (for a child process), with @err
 * (NULL: tu_dump's asserts): NULL if the store does not open, its error in
 * *@err; else the dump, and in *@err the close's error, or failing that the
 * last read's (0: all served).
 */
char *tu_dump_err(const char *dir, int *err);

/*
 * A report callback (evl_check_opts.report) that keeps the first 64 lines
 * in tu_lines[0 .. tu_nlines - 1], as "level message"; tu_reported says
 * whether one holds @what.  tu_fsck runs evl_fsck with it, from none.
 */
extern char tu_lines[64][300];
extern int tu_nlines;
void tu_collect(void *arg, char level, const char *line);
bool tu_reported(const char *what);
int tu_fsck(const char *dir, bool repair, struct evl_check_result *r);

/*
 * Change the index behind the store's back, through the index API: add an
 * index entry no log holds (damage to its key or value), past
 * every gseq handed out: the meta record's next gseq goes past it too, or
 * the open's walk calls the index damaged before anything reads the entry.
 */
void tu_stray_entry(struct index_txn *t, uint64_t uid, uint64_t gseq, const char *type,
		    uint64_t off, uint32_t len);

uint64_t tu_file_size(const char *dir, const char *file);

/* DIR/REL's bytes (malloc'd, NUL-ended; *@len its size), or NULL. */
char *tu_slurp(const char *dir, const char *rel, size_t *len);

void tu_spit(const char *dir, const char *rel, const void *data, size_t len);

/* Everything task @name's log serves (NULL-safe), and the read's result. */
ssize_t tu_read_task(struct evl_store *st, const char *name, char *buf, size_t cap);

/* Journal @ev for task @task and leave it unapplied, as a process gone before its applier ran. */
void tu_journal_to(const char *dir, const char *task, const char *ev);

bool tu_exists(const char *dir, const char *rel);

#endif
