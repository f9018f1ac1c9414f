/*
 * fio.h - the fault seam of the unit tests: an I/O ops table (core/io.h)
 * that counts calls, fails them (short writes, EIO, ENOSPC...), crashes
 * the process before one, or models a power loss (drop everything not
 * fsynced, undo directory changes not made durable).
 */
#ifndef EVL_FIO_H
#define EVL_FIO_H

#include <stdbool.h>

/* Which calls a fault hits (FIO_ALLOC: fallocate, FIO_LOCK: flock). */
enum fio_op {
	FIO_WRITE, FIO_SYNC, FIO_TRUNC, FIO_OPEN, FIO_RENAME,
	FIO_READ, FIO_UNLINK, FIO_MKDIR, FIO_RMDIR, FIO_ALLOC, FIO_LOCK, FIO_NOPS
};

/*
 * Install (or remove) the fault seam.  Counts calls; injects nothing yet.
 * Install and remove it only when no store is open: the seam is a plain
 * pointer the store's threads read without a lock.  To start or stop
 * failing calls while a store runs, fio_fail* and fio_clear.
 */
void fio_install(void);
void fio_uninstall(void);
/*
 * Fail the @nth (0: the next) call of @op from now with @err; with @persist
 * every later one too, until fio_clear.  A failed write first writes half
 * its bytes when @err is ENOSPC (a short write), none otherwise.
 *
 * A failed fsync of a file models what Linux does after a writeback error:
 * the pages it was to write are dropped and marked clean.  The bytes not
 * synced before it are "dropped": a later fsync that succeeds does not make
 * them durable (a power loss zeroes them, fio_apply_powerloss), and
 * fio_uninstall zeroes them in task files (what a read returns once the
 * cache lets the pages go) unless they were written again since.  Journal
 * segments are left alone there: the journal's own sticky error covers
 * them, and group commit may lose what they held.
 */
void fio_fail(enum fio_op op, long nth, int err, bool persist);
/* Fail the next call of @op on a descriptor or path ending in @suffix, with @err. */
void fio_fail_path(enum fio_op op, const char *suffix, int err);
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
 * rmdir, fallocate or step mark (io_mark) from now; -1 disarms.
 * fio_steps: such calls since arming.
 */
void fio_crash_at(long nth, int code);
long fio_steps(void);
/* The same, but a power loss: the crash first dumps as fio_freeze_and_dump(@dump) does. */
void fio_powerloss_at(long nth, int code, const char *dump);

/*
 * The seam's boot id (io->boot_id): "fio-boot-N", never the real one, so
 * a store written under the seam and reopened without it (or after a
 * power loss, which starts boot N + 1) does not trust its unsynced bytes.
 */

/*
 * Directory entries for the power-loss model, in the process that runs the
 * store (before it opens): creates, mkdirs, renames, unlinks and rmdirs are
 * recorded, and durable once their directory (a rename's target's) is
 * fsynced after them.  An unlinked or replaced file is kept as a hard link
 * in @stash (a directory on the same file system, made here) so that a
 * power loss can bring it back.
 */
void fio_track_dirs(const char *stash);

/*
 * Power loss, in two halves.  In the process that runs the store:
 * fio_freeze_and_dump() stops every further I/O call (they block for ever)
 * and writes to @dump, for each file touched, the length known durable
 * (fsynced), the bytes a failed fsync dropped, and the directory changes
 * (fio_track_dirs).  The caller then _exit()s.  In the parent,
 * fio_apply_powerloss() leaves each file as a power loss could (@seed):
 * - its size anywhere between its durable length and its current one;
 * - with FIO_LOSS_HOLES, each page of that unsynced tail kept or zeroed
 *   independently (the disk wrote them in any order), else kept whole (a
 *   torn tail);
 * - bytes a failed fsync dropped zeroed;
 * - with FIO_LOSS_DIRS, in each directory a random suffix of the changes
 *   not made durable undone: a created file or directory gone, an unlinked
 *   file or removed directory back, a rename undone.
 */
#define FIO_LOSS_HOLES 1
#define FIO_LOSS_DIRS 2
#define FIO_LOSS_ALL 4	/* the worst case: nothing unsynced is kept, every such change lost */
struct fio_loss {
	long files_cut;		/* files shorter than before */
	long pages_holed;	/* unsynced pages zeroed (FIO_LOSS_HOLES) */
	long dropped;		/* files with bytes a failed fsync dropped, zeroed */
	long dir_undone;	/* directory changes undone (FIO_LOSS_DIRS) */
};
void fio_freeze_and_dump(const char *dump);
/* 0 (counts added to *@out), or -1 if @dump cannot be read. */
int fio_apply_powerloss(const char *dump, unsigned seed, unsigned how, struct fio_loss *out);
/*
 * The index's meta page is not synced at commit (MDB_NOMETASYNC): if the
 * dump says a commit came after the last index sync, undo the last commit
 * of LMDB file @data_mdb as a power loss could (its older meta page wins).
 * Returns 1 if undone, 0 if the index was synced, -1 if it cannot tell.
 */
int fio_undo_index_commit(const char *dump, const char *data_mdb);

#endif
