/*
 * evlogctl - the operator's tool for evlogfs.
 *
 *   evlogctl status MOUNT [--json]
 *   evlogctl checkpoint MOUNT
 *   evlogctl compact MOUNT [--task ID] [--expire-idle D] [--max-age D] [--keep-last N]
 *   evlogctl fsck DATA_DIR [--repair]
 *   evlogctl reindex DATA_DIR [--type-field F]
 *   evlogctl backup SOURCE DEST
 *   evlogctl import DATA_DIR SOURCE [--skip-bad] [--type-field F]
 *
 * The commands on a mount talk to the daemon through MOUNT/.control: a
 * command is one write(), the status is a read of the JSON.  The commands
 * on a data directory (offline.c) call the core and hold the store's lock.  Exit codes:
 * 0 done, 1 done but something was found or left partial, 2 error.
 * Progress goes to stderr: a bar on a terminal, one line per phase
 * otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "config.h"
#include "evlogctl.h"
#include "log.h"

static const char *when(uint64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	localtime_r(&tt, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
	return buf;
}

static void print_last(struct json_object *last)
{
	char b1[32], b2[32];

	if (!strcmp(get_str(last, "result", ""), "ok"))
		printf("ok at %s, %.2f s: %llu tasks expired, %llu events dropped, %s reclaimed\n",
		       when(get_u64(last, "time"), b1, sizeof(b1)),
		       json_object_get_double(get(last, "duration_s")),
		       (unsigned long long)get_u64(last, "tasks_expired"),
		       (unsigned long long)get_u64(last, "events_dropped"),
		       human(get_u64(last, "bytes_reclaimed"), b2, sizeof(b2)));
	else
		printf("failed at %s: %s\n", when(get_u64(last, "time"), b1, sizeof(b1)),
		       get_str(last, "error", "?"));
}

static int cmd_status(const char *mnt, bool as_json)
{
	struct json_object *st = read_status(mnt), *last;
	char b[4][32];

	if (!st)
		return EXIT_ERROR;
	if (as_json) {
		printf("%s\n", json_object_to_json_string_ext(st, JSON_C_TO_STRING_PRETTY |
							      JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(st);
		return EXIT_OK;
	}
	printf("store at %s\n", mnt);
	printf("  tasks       %llu, %llu events of %llu types\n",
	       (unsigned long long)get_u64(st, "counts.tasks"),
	       (unsigned long long)get_u64(st, "counts.events"),
	       (unsigned long long)get_u64(st, "counts.types"));
	printf("  on disk     logs %s, index %s, journal %s\n",
	       human(get_u64(st, "counts.log_bytes"), b[0], 32),
	       human(get_u64(st, "counts.index_bytes"), b[1], 32),
	       human(get_u64(st, "counts.journal_bytes"), b[2], 32));
	printf("  journal lag %s not yet applied to logs and index\n",
	       human(get_u64(st, "counts.pending_bytes"), b[3], 32));
	printf("  commit      %s (fsync at least every %llu ms)%s%s\n", get_str(st, "commit", "?"),
	       (unsigned long long)get_u64(st, "commit_ms"),
	       json_object_get_boolean(get(st, "read_only")) ? ", read-only" : "",
	       json_object_get_boolean(get(st, "nodelete")) ? ", nodelete" : "");
	if (get(st, "journal_error"))
		printf("  JOURNAL     %s: writes refused until remount\n",
		       get_str(st, "journal_error", "?"));
	if (get_u64(st, "tasks_aside")) {
		struct json_object *names = get(st, "aside");
		size_t n = names ? json_object_array_length(names) : 0;

		printf("  SET ASIDE   %llu damaged tasks (", (unsigned long long)get_u64(st, "tasks_aside"));
		for (size_t i = 0; i < n; i++)
			printf("%s%s", i ? ", " : "",
			       json_object_get_string(json_object_array_get_idx(names, i)));
		printf("): reads and appends EIO; %llu acknowledged events in their "
		       "events.unapplied, %llu lost; unmount and run evlogctl fsck --repair\n",
		       (unsigned long long)get_u64(st, "events_unapplied"),
		       (unsigned long long)get_u64(st, "events_lost"));
	}
	if (!strcmp(get_str(st, "compaction.state", ""), "running"))
		printf("  compaction  running: %s %llu/%llu\n", get_str(st, "compaction.phase", "?"),
		       (unsigned long long)get_u64(st, "compaction.done"),
		       (unsigned long long)get_u64(st, "compaction.total"));
	else
		printf("  compaction  idle\n");
	if ((last = get(st, "compaction.last"))) {
		printf("  last run    ");
		print_last(last);
	}
	printf("  rejected    %llu writes%s%s\n", (unsigned long long)get_u64(st, "rejected_writes"),
	       get(st, "last_rejection") ? "; last: " : "", get_str(st, "last_rejection", ""));
	json_object_put(st);
	return EXIT_OK;
}

static int cmd_checkpoint(const char *mnt)
{
	int err = send_command(mnt, "checkpoint");

	if (err)
		return fail("checkpoint: %s", strerror(err));
	printf("checkpoint done\n");
	return EXIT_OK;
}

static int cmd_compact(const char *mnt, const char *args)
{
	struct progress pr = { .tty = isatty(2), .what = "compaction" };
	char cmd[1200];
	struct json_object *st, *last;
	int err, rc;

	snprintf(cmd, sizeof(cmd), "compact%s", args);
	err = send_command(mnt, cmd);
	if (err == EBUSY)
		return fail("a compaction is already running");
	if (err)
		return fail("compact: %s", strerror(err));
	for (;;) {
		st = read_status(mnt);
		if (!st)
			return EXIT_ERROR;
		if (strcmp(get_str(st, "compaction.state", ""), "running"))
			break;
		progress_show(&pr, get_str(st, "compaction.phase", "?"),
			      get_u64(st, "compaction.done"), get_u64(st, "compaction.total"));
		json_object_put(st);
		usleep(100000);	/* the daemon reports; we look ten times a second */
	}
	progress_end(&pr);
	last = get(st, "compaction.last");
	if (!last) {
		json_object_put(st);
		return fail("compaction ended without a result");
	}
	print_last(last);
	rc = strcmp(get_str(last, "result", ""), "ok") ? EXIT_ERROR : EXIT_OK;
	json_object_put(st);
	return rc;
}

/* The core's messages (offline commands), under our name. */
static void log_sink(int prio, const char *msg)
{
	fprintf(stderr, "%s: %s\n", prog, msg);
}

/* ---- command line ---- */

static const char usage[] =
	"usage: evlogctl COMMAND ARGS...\n"
	"\n"
	"On a mounted store:\n"
	"  status MOUNT [--json]        the store's counts, sizes, commit mode, compaction\n"
	"  checkpoint MOUNT             apply the journal, sync logs and index, trim the journal\n"
	"  compact MOUNT [--task ID] [--expire-idle D] [--max-age D] [--keep-last N]\n"
	"                               compact in the background and wait for the result\n"
	"On a data directory (not mounted):\n"
	"  fsck DATA_DIR [--repair]     check journal, logs and index; repair the index\n"
	"  reindex DATA_DIR             build the index anew from the task logs\n"
	"  import DATA_DIR SOURCE [--skip-bad]\n"
	"                               load JSONL task logs as tasks\n"
	"Either:\n"
	"  backup SOURCE DEST           a consistent copy that mounts as is (incremental)\n"
	"\n"
	"Durations: 90s, 15m, 12h, 30d.  Exit: 0 done, 1 found or partial, 2 error.\n"
	"evlogctl COMMAND --help for one command; evlogctl --version.\n";

static const char *const helps[][2] = {
	{ "status", "usage: evlogctl status MOUNT [--json]\n"
	  "Show the status of the store mounted at MOUNT: tasks, events, types, bytes of\n"
	  "logs, index and journal, what is not applied yet, commit mode, compaction\n"
	  "state and last result, rejected writes.  --json: the daemon's JSON as is.\n" },
	{ "checkpoint", "usage: evlogctl checkpoint MOUNT\n"
	  "Apply the journal, fsync task logs and index, trim the journal; returns when done.\n" },
	{ "compact", "usage: evlogctl compact MOUNT [--task ID] [--expire-idle D] [--max-age D]\n"
	  "                        [--keep-last N]\n"
	  "Start a compaction and wait for it, showing its progress: checkpoint, expire\n"
	  "tasks idle longer than D, drop events older than D (--max-age) or all but\n"
	  "each task's newest N (--keep-last), reclaim deleted tasks, shrink the index.\n"
	  "--task ID limits expiry and retention to one task.  Exit 2 if it fails or\n"
	  "one is already running.\n" },
	{ "fsck", "usage: evlogctl fsck DATA_DIR [--repair]\n"
	  "Check an unmounted store: journal checksums; every logged event indexed once,\n"
	  "under its type; every index entry pointing at a real event; the index's\n"
	  "structure and counters.  --repair recovers an uncleanly closed store, then\n"
	  "adds what the index lacks and removes what is stale, reporting each fix.\n"
	  "Exit 0 clean, 1 problems found (or repaired), 2 error (e.g. mounted).\n" },
	{ "reindex", "usage: evlogctl reindex DATA_DIR [--type-field F]\n"
	  "Build the index of an unmounted store anew from its task logs, also when the\n"
	  "index is missing or corrupt; views afterwards hold the same bytes.  Journaled\n"
	  "events the logs lack are written to them first.  --type-field names the type\n"
	  "member when no index records it (default: type).\n" },
	{ "backup", "usage: evlogctl backup SOURCE DEST\n"
	  "Copy the store at SOURCE (a mountpoint, or a data directory, mounted or not)\n"
	  "into the data directory DEST, consistently: DEST mounts as is.  A second run\n"
	  "copies only what is new (logs are append-only); tasks gone from SOURCE go\n"
	  "from DEST.  Prints what it copied.\n" },
	{ "import", "usage: evlogctl import DATA_DIR SOURCE [--skip-bad] [--type-field F]\n"
	  "Load JSONL task logs into the unmounted store DATA_DIR: SOURCE holds\n"
	  "<id>.jsonl files or <id>/events or <id>/events.jsonl, one task each.  Every\n"
	  "line is validated first; malformed lines are listed as FILE:LINE and nothing\n"
	  "is imported unless --skip-bad (then exit 1).  Existing tasks are refused.\n" },
};

static int help(const char *cmd, FILE *to)
{
	for (size_t i = 0; i < sizeof(helps) / sizeof(*helps); i++)
		if (!strcmp(helps[i][0], cmd)) {
			fputs(helps[i][1], to);
			return 0;
		}
	fputs(usage, to);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "json", no_argument, NULL, 'j' },
		{ "task", required_argument, NULL, 't' },
		{ "expire-idle", required_argument, NULL, 'e' },
		{ "max-age", required_argument, NULL, 'a' },
		{ "keep-last", required_argument, NULL, 'k' },
		{ "version", no_argument, NULL, 'V' },
		{ "repair", no_argument, NULL, 'r' },
		{ "skip-bad", no_argument, NULL, 's' },
		{ "type-field", required_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	char args[1024] = "";
	bool as_json = false, repair = false, skip_bad = false;
	const char *type_field = NULL;
	int nargs;
	const char *cmd;
	int c;

	if (argc < 2) {
		fputs(usage, stderr);
		return EXIT_ERROR;
	}
	evl_log_set(log_sink, LOG_ERR);
	if (!strcmp(argv[1], "--version")) {
		printf("evlogctl %s\n", EVL_VERSION);
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help"))
		return help(argc > 2 ? argv[2] : "", stdout);
	cmd = argv[1];
	argv++;
	argc--;
	while ((c = getopt_long(argc, argv, "hj", longopts, NULL)) != -1) {
		size_t n = strlen(args);

		switch (c) {
		case 'h':
			return help(cmd, stdout);
		case 'j':
			as_json = true;
			break;
		case 'r':
			repair = true;
			break;
		case 's':
			skip_bad = true;
			break;
		case 'f':
			type_field = optarg;
			break;
		case 't':
		case 'e':
		case 'a':
		case 'k': {
			/* each option is the control file's argument of the same name */
			const char *key = c == 't' ? "task" : c == 'e' ? "expire-idle" :
					  c == 'a' ? "max-age" : "keep-last";

			if (strcmp(cmd, "compact"))
				return fail("%s: --%s is for compact", cmd, key);
			if (c == 't') {
				/* any task id: quoted, with \" and \\ escaped (the control file's rule) */
				char q[600], *o = q;

				for (const char *p = optarg; *p && o < q + sizeof(q) - 3; p++) {
					if (*p == '"' || *p == '\\')
						*o++ = '\\';
					*o++ = *p;
				}
				*o = '\0';
				snprintf(args + n, sizeof(args) - n, " task=\"%s\"", q);
				break;
			}
			if (strpbrk(optarg, " \t\n"))
				return fail("compact: --%s '%s' has blanks", key, optarg);
			snprintf(args + n, sizeof(args) - n, " %s=%s", key, optarg);
			break;
		}
		default:
			help(cmd, stderr);
			return EXIT_ERROR;
		}
	}
	nargs = !strcmp(cmd, "backup") || !strcmp(cmd, "import") ? 2 : 1;
	if (optind != argc - nargs) {
		help(cmd, stderr);
		return EXIT_ERROR;
	}
	if (repair && strcmp(cmd, "fsck"))
		return fail("%s: --repair is for fsck", cmd);
	if (skip_bad && strcmp(cmd, "import"))
		return fail("%s: --skip-bad is for import", cmd);
	if (type_field && strcmp(cmd, "import") && strcmp(cmd, "reindex"))
		return fail("%s: --type-field is for import and reindex", cmd);
	if (!strcmp(cmd, "fsck"))
		return cmd_fsck(argv[optind], repair);
	if (!strcmp(cmd, "reindex"))
		return cmd_reindex(argv[optind], type_field);
	if (!strcmp(cmd, "backup"))
		return cmd_backup(argv[optind], argv[optind + 1]);
	if (!strcmp(cmd, "import"))
		return cmd_import(argv[optind], argv[optind + 1], skip_bad, type_field);
	if (!strcmp(cmd, "status"))
		return cmd_status(argv[optind], as_json);
	if (as_json)
		return fail("%s: --json is for status", cmd);
	if (!strcmp(cmd, "checkpoint"))
		return cmd_checkpoint(argv[optind]);
	if (!strcmp(cmd, "compact"))
		return cmd_compact(argv[optind], args);
	fprintf(stderr, "%s: unknown command '%s'\n", prog, cmd);
	fputs(usage, stderr);
	return EXIT_ERROR;
}
