/*
 * testutil.h - helpers for the unit tests: private temp dirs and a fault
 * injecting I/O seam (see core/io.h).
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
/* Milliseconds of CLOCK_MONOTONIC. */
uint64_t tu_now_ms(void);

/* Which calls a fault hits. */
enum fio_op {
	FIO_WRITE, FIO_SYNC, FIO_TRUNC, FIO_OPEN, FIO_RENAME,
	FIO_READ, FIO_UNLINK, FIO_MKDIR, FIO_RMDIR, FIO_NOPS
};

/* Install (or remove) the fault seam.  Counts calls; injects nothing yet. */
void fio_install(void);
void fio_uninstall(void);
/*
 * Fail the @nth (0: the next) call of @op from now with @err; with @persist
 * every later one too, until fio_clear.  A failed write first writes half
 * its bytes when @err is ENOSPC (a short write), none otherwise.
 */
void fio_fail(enum fio_op op, long nth, int err, bool persist);
void fio_clear(void);
long fio_count(enum fio_op op);
long fio_failed(void);
/*
 * Distinct places faults were injected at in this process: a place is the
 * call stack's three frames above the seam (a helper such as io_pwrite_all
 * counts once per caller).  With @dump, each is appended to it as
 * "op frame frame frame" (backtrace_symbols: binary(+offset), for addr2line).
 */
long fio_sites(const char *dump);

/*
 * A crash: with the seam installed, the process _exit()s with @code before
 * the @nth (0: the next) open, write, sync, truncate, rename, unlink, mkdir,
 * rmdir or step mark
 * (io_mark) from now; -1 disarms.  fio_steps: such calls since arming.
 */
void fio_crash_at(long nth, int code);
long fio_steps(void);

/*
 * Power loss, in two halves.  In the process that runs the store:
 * fio_freeze_and_dump() stops every further I/O call (they block for ever)
 * and writes, for each file touched, the length known durable (fsynced) to
 * @dump.  The caller then _exit()s.  In the parent, fio_apply_powerloss()
 * cuts each file to a length between its durable length and its current
 * one (a random torn tail), as a power loss could leave it.
 */
void fio_freeze_and_dump(const char *dump);
int fio_apply_powerloss(const char *dump, unsigned seed);
/*
 * The index's meta page is not synced at commit (MDB_NOMETASYNC): if the
 * dump says a commit came after the last index sync, undo the last commit
 * of LMDB file @data_mdb as a power loss could (its older meta page wins).
 * Returns 1 if undone, 0 if the index was synced, -1 if it cannot tell.
 */
int fio_undo_index_commit(const char *dump, const char *data_mdb);

#endif
