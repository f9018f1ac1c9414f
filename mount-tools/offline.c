/*
 * offline.c - evlogctl's commands on a data directory: fsck, reindex,
 * backup, import.  The work is in the core (evlog.h); this file prints.
 *
 * Findings go to stdout, one per line, as "problem: ...", "fixed: ...",
 * "note: ...", then a summary line; errors and progress go to stderr.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "evlog.h"
#include "evlogctl.h"
#include "grow.h"

struct out {
	struct progress pr;
};

static void on_report(void *arg, char level, const char *line)
{
	struct out *o = arg;

	progress_end(&o->pr);
	switch (level) {
	case 'E':
	case 'U':
		printf("problem: %s\n", line);
		break;
	case 'F':
		printf("fixed: %s\n", line);
		break;
	case 'X':
		fprintf(stderr, "%s: %s\n", prog, line);
		break;
	default:
		printf("note: %s\n", line);
	}
	fflush(stdout);
}

static void on_progress(void *arg, const char *phase, uint64_t done, uint64_t total)
{
	struct out *o = arg;

	progress_show(&o->pr, phase, done, total);
}

/* A data directory the command can work on: it exists (else said, and false). */
static bool is_dir(const char *cmd, const char *dir)
{
	struct stat sb;

	if (stat(dir, &sb)) {
		fail("%s: %s: %s", cmd, dir, strerror(errno));
		return false;
	}
	if (!S_ISDIR(sb.st_mode)) {
		fail("%s: %s: %s", cmd, dir, strerror(ENOTDIR));
		return false;
	}
	return true;
}

/* The errors every offline command shares, as an exit code. */
static int offline_error(const char *cmd, const char *dir, int rc)
{
	if (rc == -EBUSY)
		return EXIT_ERROR;	/* the holder was reported */
	return fail("%s %s: %s", cmd, dir, strerror(-rc));
}

/*
 * fsck --repair writes into the index in place, through LMDB, which trusts
 * its pages: bit flips the checks at open cannot see (a page that reads
 * whole) can crash it there.  So the repair runs in a child; if that dies
 * of a signal, the index is rebuilt beside the damaged one from the logs
 * instead (reindex, which never writes into the old one).  -ECHILD then
 * (said), else evl_fsck's result.  A child ended by another signal (a
 * closed pipe, SIGTERM, an OOM kill) is no crash: this process ends alike.
 */
static int repair_in_child(const char *dir, const struct evl_check_opts *opts,
			   struct evl_check_result *r, struct out *o)
{
	struct shared { int rc; struct evl_check_result r; } *sh;
	int status, rc;
	pid_t pid, parent;

	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		return evl_fsck(dir, opts, r);
	fflush(stdout);
	fflush(stderr);
	parent = getpid();
	pid = fork();
	if (pid < 0) {
		munmap(sh, sizeof(*sh));
		return evl_fsck(dir, opts, r);
	}
	if (pid == 0) {
		/*
		 * It holds the store's lock: it must not outlive an evlogctl
		 * killed meanwhile (a timeout, ^C), repairing on, unseen, while
		 * every mount and command is refused.
		 */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != parent)
			_exit(1);
		sh->rc = evl_fsck(dir, opts, &sh->r);
		progress_end(&o->pr);	/* its progress line was the child's */
		fflush(stdout);
		fflush(stderr);
		_exit(0);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		rc = sh->rc;
		*r = sh->r;
	} else if (WIFSIGNALED(status) && WTERMSIG(status) != SIGSEGV &&
		   WTERMSIG(status) != SIGBUS && WTERMSIG(status) != SIGABRT &&
		   WTERMSIG(status) != SIGILL && WTERMSIG(status) != SIGFPE) {
		/* not a crash (SIGPIPE of a closed pipe, SIGTERM, SIGKILL): the same end here */
		munmap(sh, sizeof(*sh));
		signal(WTERMSIG(status), SIG_DFL);
		raise(WTERMSIG(status));
		return -EINTR;
	} else {
		fprintf(stderr, "%s: fsck --repair %s: the repair died (%s) writing into the "
			"damaged index; rebuilding the index beside it from the task logs "
			"instead (evlogctl reindex)\n", prog, dir,
			WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : "exit status");
		rc = -ECHILD;
	}
	munmap(sh, sizeof(*sh));
	return rc;
}

int cmd_fsck(const char *dir, bool repair)
{
	struct out o = { .pr = { .tty = isatty(2), .what = "fsck" } };
	struct evl_check_opts opts = {
		.repair = repair, .report = on_report, .progress = on_progress, .arg = &o,
	};
	struct evl_check_result r;
	int rc;

	if (!is_dir("fsck", dir))
		return EXIT_ERROR;
	rc = repair ? repair_in_child(dir, &opts, &r, &o) : evl_fsck(dir, &opts, &r);
	if (rc == -ECHILD) {
		/* the repair died: an index too damaged to write into; said */
		int x;

		progress_end(&o.pr);
		x = cmd_reindex(dir, NULL);
		return x == EXIT_OK ? EXIT_FOUND : x;	/* found and fixed */
	}

	progress_end(&o.pr);
	if (rc == -ENOENT || rc == -ESTALE)
		return EXIT_ERROR;	/* reported: no index, or not this store's */
	if (rc == -EUCLEAN)
		return EXIT_FOUND;	/* reported: a damaged index, for reindex */
	if (rc)
		return offline_error("fsck", dir, rc);
	printf("%s: %llu tasks, %llu events, %llu types, %llu journal records: ", dir,
	       (unsigned long long)r.tasks, (unsigned long long)r.events,
	       (unsigned long long)r.types, (unsigned long long)r.journal_records);
	if (!r.problems && !r.fixed)
		printf("clean\n");
	else if (repair)
		printf("%llu problems, %llu fixes\n", (unsigned long long)r.problems,
		       (unsigned long long)r.fixed);
	else if (r.problems > r.unfixable)
		printf("%llu problems (evlogctl fsck --repair fixes the index%s)\n",
		       (unsigned long long)r.problems,
		       r.unfixable ? "; not the damaged task files" : "");
	else
		printf("%llu problems, in task files evlogctl fsck --repair cannot fix"
		       " (see \"Damage and recovery\" in the README)\n",
		       (unsigned long long)r.problems);
	return r.problems || r.fixed ? EXIT_FOUND : EXIT_OK;
}

int cmd_reindex(const char *dir, const char *type_field)
{
	struct out o = { .pr = { .tty = isatty(2), .what = "reindex" } };
	struct evl_check_opts opts = {
		.type_field = type_field, .report = on_report, .progress = on_progress, .arg = &o,
	};
	struct evl_check_result r;
	int rc;

	if (!is_dir("reindex", dir))
		return EXIT_ERROR;
	rc = evl_reindex(dir, &opts, &r);

	progress_end(&o.pr);
	if (rc == -EILSEQ)
		return EXIT_ERROR;	/* reported */
	if (rc)
		return offline_error("reindex", dir, rc);
	if (r.lost)
		printf("%s: %llu journaled events could not be placed (listed above)\n", dir,
		       (unsigned long long)r.lost);
	if (r.damaged)
		printf("%s: %llu events were not what was written: moved to their task's "
		       "events.damaged\n", dir, (unsigned long long)r.damaged);
	if (r.deletes_kept)
		printf("%s: %llu tasks a journaled delete may name were kept (listed above)\n",
		       dir, (unsigned long long)r.deletes_kept);
	return r.lost || r.damaged || r.deletes_kept ? EXIT_FOUND : EXIT_OK;
}

/* ---- backup ---- */

/* The data directory of the store mounted at @mnt (NULL if it is not one). */
static char *mounted_data_dir(const char *mnt)
{
	char path[4200];
	struct json_object *st;
	char *dir = NULL;

	snprintf(path, sizeof(path), "%s/.control", mnt);
	if (access(path, F_OK))
		return NULL;
	st = read_status(mnt);
	if (st && get_str(st, "data_dir", NULL))
		dir = strdup(get_str(st, "data_dir", NULL));
	json_object_put(st);
	return dir;
}

/* Compaction runs so far, or -1 while one runs (or the status is unreadable). */
static long long compactions(const char *mnt)
{
	struct json_object *st = read_status(mnt);
	long long n = -1;

	if (st && strcmp(get_str(st, "compaction.state", ""), "running"))
		n = (long long)get_u64(st, "compaction.runs");
	json_object_put(st);
	return n;
}

int cmd_backup(const char *src, const char *dest)
{
	struct out o = { .pr = { .tty = isatty(2), .what = "backup" } };
	struct evl_backup_opts opts = { .report = on_report, .progress = on_progress, .arg = &o };
	struct evl_backup_result r;
	char holder[600], *data = NULL, *mnt = NULL, b1[32], b2[32];
	int rc = -EAGAIN, tries;

	data = mounted_data_dir(src);
	if (data) {
		mnt = strdup(src);
	} else if (evl_store_holder(src, holder, sizeof(holder)) == 1) {
		/* a data directory in use: copy beside the daemon, through its mountpoint */
		char *open = strchr(holder, '('), *close = strrchr(holder, ')');

		if (open && close && close > open + 1 && open[1] == '/') {
			mnt = strndup(open + 1, close - open - 1);
			data = mnt ? mounted_data_dir(mnt) : NULL;
		}
		if (!data) {
			free(mnt);
			return fail("backup: %s is in use by %s, and no mount of it was found",
				    src, holder);
		}
	}
	opts.live = data != NULL;
	opts.mount = mnt;
	if (mnt && send_command(mnt, "checkpoint"))
		fprintf(stderr, "%s: backup: the checkpoint before the copy failed; copying anyway\n",
			prog);
	for (tries = 0; tries < 5 && rc == -EAGAIN; tries++) {
		long long before = 0;

		if (mnt) {
			/* not while a compaction may rewrite logs: wait for it */
			for (int i = 0; (before = compactions(mnt)) < 0 && i < 3000; i++)
				usleep(100000);
			if (before < 0) {
				free(mnt);
				free(data);
				return fail("backup: %s: a compaction has run for 5 minutes", src);
			}
		}
		rc = evl_backup(data ? data : src, dest, &opts, &r);
		if (!rc && mnt && compactions(mnt) != before) {
			printf("note: a compaction ran during the copy: copying again\n");
			rc = -EAGAIN;
		}
	}
	progress_end(&o.pr);
	free(mnt);
	free(data);
	if (rc == -EAGAIN)
		return fail("backup: the source kept changing under the copy (5 tries)");
	if (rc == -ECANCELED)
		return EXIT_ERROR;	/* refused: reported */
	if (rc)
		return offline_error("backup", src, rc);
	printf("%s -> %s: %llu tasks, %llu events: %llu new, %llu appended, %llu replaced, "
	       "%llu unchanged, %llu removed; %s of logs copied, index %s\n", src, dest,
	       (unsigned long long)r.tasks, (unsigned long long)r.events,
	       (unsigned long long)r.tasks_new, (unsigned long long)r.tasks_appended,
	       (unsigned long long)r.tasks_replaced, (unsigned long long)r.tasks_unchanged,
	       (unsigned long long)r.tasks_removed, human(r.log_bytes_copied, b1, sizeof(b1)),
	       human(r.index_bytes, b2, sizeof(b2)));
	return EXIT_OK;
}

/* ---- import ---- */

struct source {
	char id[256];
	char path[4500];
	uint64_t size;
};

static int cmp_source(const void *a, const void *b)
{
	return strcmp(((const struct source *)a)->id, ((const struct source *)b)->id);
}

/* The task logs in @dir: <id>.jsonl, <id>/events, <id>/events.jsonl. */
static int list_sources(const char *dir, struct source **out, size_t *n)
{
	struct source *s = NULL;
	size_t cap = 0;
	struct dirent *de;
	DIR *d = opendir(dir);

	*n = 0;
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		static const char *const inner[] = { "events", "events.jsonl" };
		struct source one = { 0 };
		size_t len = strlen(de->d_name);
		struct stat sb;
		char p[4400];

		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		if (stat(p, &sb))
			continue;
		if (S_ISREG(sb.st_mode) && len > 6 && !strcmp(de->d_name + len - 6, ".jsonl")) {
			snprintf(one.id, sizeof(one.id), "%.*s", (int)(len - 6), de->d_name);
			snprintf(one.path, sizeof(one.path), "%s", p);
			one.size = sb.st_size;
		} else if (S_ISDIR(sb.st_mode)) {
			for (size_t i = 0; i < 2 && !one.id[0]; i++) {
				snprintf(one.path, sizeof(one.path), "%s/%s", p, inner[i]);
				if (!stat(one.path, &sb) && S_ISREG(sb.st_mode)) {
					snprintf(one.id, sizeof(one.id), "%s", de->d_name);
					one.size = sb.st_size;
				}
			}
		}
		if (!one.id[0])
			continue;
		if (GROW(s, cap, *n + 1)) {
			free(s);
			closedir(d);
			return -ENOMEM;
		}
		s[(*n)++] = one;
	}
	closedir(d);
	if (*n)
		qsort(s, *n, sizeof(*s), cmp_source);
	*out = s;
	return 0;
}

struct import {
	struct evl_validator *v;
	struct evl_store *st;
	struct out o;
	uint64_t bytes_total, bytes_done;
	uint64_t bad, blank, events, tasks;
	char *batch;
	size_t blen, bcap;
};

/*
 * Read @s line by line.  Without a writer: validate, report bad lines.
 * With one: write the good lines in batches.  0 or the errno of a write.
 */
static int each_line(struct import *im, const struct source *s, struct evl_writer *w)
{
	FILE *f = fopen(s->path, "r");
	char *line = NULL, why[160];
	size_t cap = 0;
	uint64_t no = 0;
	ssize_t len;
	int rc = 0;

	if (!f)
		return errno;
	while ((len = getline(&line, &cap, f)) > 0 && !rc) {
		size_t body = len - (line[len - 1] == '\n');
		int v;

		no++;
		im->bytes_done += len;
		if ((no & 1023) == 0)
			progress_show(&im->o.pr, w ? "import" : "validate", im->bytes_done,
				      im->bytes_total);
		v = evl_validate(im->v, line, body, why, sizeof(why));
		if (v == 1) {
			im->blank += !w;
			continue;
		}
		if (v) {
			if (!w) {
				progress_end(&im->o.pr);
				printf("%s:%llu: %s%s\n", s->path, (unsigned long long)no,
				       v == -EFBIG ? "event too large: " : "", why);
				im->bad++;
			}
			continue;
		}
		if (!w)
			continue;
		if (grow_bytes(&im->batch, &im->bcap, im->blen + body + 1)) {
			rc = ENOMEM;
			break;
		}
		memcpy(im->batch + im->blen, line, body);
		im->batch[im->blen + body] = '\n';
		im->blen += body + 1;
		im->events++;
		if (im->blen >= (1u << 20)) {
			rc = -evl_writer_write(w, im->batch, im->blen);
			im->blen = 0;
		}
	}
	if (!rc && w && im->blen) {
		rc = -evl_writer_write(w, im->batch, im->blen);
		im->blen = 0;
	}
	if (!rc && ferror(f))
		rc = errno ? errno : EIO;
	free(line);
	fclose(f);
	return rc;
}

int cmd_import(const char *dir, const char *src, bool skip_bad, const char *type_field)
{
	struct import im = { .o = { .pr = { .tty = isatty(2), .what = "import" } } };
	struct evl_options opts;
	struct source *s = NULL;
	size_t n = 0, skipped_ids = 0;
	char holder[600], b1[32];
	int rc, exit_code = EXIT_OK;

	rc = list_sources(src, &s, &n);
	if (rc)
		return fail("import: %s: %s", src, strerror(-rc));
	if (!n) {
		free(s);
		return fail("import: %s holds no <id>.jsonl, <id>/events or <id>/events.jsonl", src);
	}
	evl_options_default(&opts);
	opts.type_field = type_field ? type_field : "type";
	opts.holder = "evlogctl import";
	opts.max_types = 0;	/* a bound for live writers, set per mount: not the import's */
	rc = evl_validator_new(opts.type_field, opts.max_event, &im.v);
	if (!rc)
		rc = evl_store_open(dir, &opts, &im.st);
	if (rc == -EBUSY && evl_store_holder(dir, holder, sizeof(holder)) == 1) {
		rc = fail("import: %s is in use by %s: unmount it first", dir, holder);
		goto out_free;
	}
	if (rc == -EINVAL) {
		rc = fail("import: %s was built with another type field than '%s' (--type-field)",
			  dir, opts.type_field);
		goto out_free;
	}
	if (rc) {
		rc = fail("import: %s: %s", dir, strerror(-rc));
		goto out_free;
	}

	/* pass 1: every line of every file, and names free in the store and unique */
	for (size_t i = 0, j; i < n; i = j) {
		for (j = i + 1; j < n && !strcmp(s[i].id, s[j].id); j++)
			;
		for (size_t k = i; j > i + 1 && k < j; k++)
			printf("%s: task %s comes from %zu files; import one of them\n", s[k].path,
			       s[k].id, j - i);
		for (size_t k = i; j > i + 1 && k < j; k++) {
			s[k].id[0] = '\0';
			skipped_ids++;
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct evl_task_info info;

		im.bytes_total += s[i].size;
		if (!s[i].id[0])
			continue;
		if (evl_task_check_name(s[i].id, strlen(s[i].id))) {
			printf("%s: '%s' is not a valid task id\n", s[i].path, s[i].id);
			s[i].id[0] = '\0';
			skipped_ids++;
		} else if (!evl_task_lookup(im.st, s[i].id, &info)) {
			printf("%s: task %s exists in %s already\n", s[i].path, s[i].id, dir);
			s[i].id[0] = '\0';
			skipped_ids++;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (!s[i].id[0])
			continue;
		rc = each_line(&im, &s[i], NULL);
		if (rc) {
			progress_end(&im.o.pr);
			rc = fail("import: %s: %s", s[i].path, strerror(rc));
			goto out_close;
		}
	}
	progress_end(&im.o.pr);
	if ((im.bad || skipped_ids) && !skip_bad) {
		rc = fail("import: %llu malformed lines, %zu files refused: nothing imported"
			  " (--skip-bad imports the rest)", (unsigned long long)im.bad, skipped_ids);
		goto out_close;
	}

	/* pass 2: one task per file, its good lines in batches */
	im.bytes_done = 0;
	for (size_t i = 0; i < n; i++) {
		struct evl_task_info info;
		struct evl_writer *w;

		if (!s[i].id[0])
			continue;
		rc = -evl_task_create(im.st, s[i].id);
		if (!rc)
			rc = -evl_task_lookup(im.st, s[i].id, &info);
		if (!rc)
			rc = -evl_writer_open(im.st, info.uid, &w);
		if (!rc) {
			rc = each_line(&im, &s[i], w);
			int crc = evl_writer_close(w);

			rc = rc ? rc : -crc;
		}
		if (rc) {
			progress_end(&im.o.pr);
			rc = fail("import: task %s from %s: %s (tasks before it are imported)",
				  s[i].id, s[i].path, strerror(rc));
			goto out_close;
		}
		im.tasks++;
	}
	progress_end(&im.o.pr);
	rc = EXIT_OK;
out_close:
	{
		int crc = evl_store_close(im.st);

		if (crc && rc == EXIT_OK)
			rc = fail("import: closing %s: %s", dir, strerror(-crc));
	}
	if (rc == EXIT_OK) {
		printf("imported %llu tasks, %llu events (%s read)", (unsigned long long)im.tasks,
		       (unsigned long long)im.events, human(im.bytes_total, b1, sizeof(b1)));
		if (im.bad || skipped_ids)
			printf("; skipped %llu malformed lines and %zu files",
			       (unsigned long long)im.bad, skipped_ids);
		if (im.blank)
			printf("; %llu blank lines ignored", (unsigned long long)im.blank);
		printf("\n");
		exit_code = im.bad || skipped_ids ? EXIT_FOUND : EXIT_OK;
		rc = exit_code;
	}
out_free:
	if (im.v)
		evl_validator_free(im.v);
	free(im.batch);
	free(s);
	return rc;
}
