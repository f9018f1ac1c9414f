/*
 * main.c - evlogfs [options] DATA_DIR MOUNTPOINT
 *
 * Options go through one fuse_opt table into struct config and are checked
 * at once; standard FUSE options pass through to libfuse.  Unmounting
 * (fusermount3 -u) or SIGTERM/SIGINT ends the session loop; the store is
 * then flushed and checkpointed, and the exit status is 0 only if
 * everything acknowledged is on disk and the open lost no journal record
 * to damage.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <mntent.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "evlogfs.h"
#include "log.h"

enum { KEY_HELP, KEY_VERSION, KEY_RO };

/* Threads serving reads of logs and views (readpool.c). */
#define READ_THREADS 4

#define OPT(t, p) { t, offsetof(struct config, p), 1 }

static const struct fuse_opt opt_table[] = {
	{ "commit=%s", offsetof(struct config, commit), 0 },
	{ "commit_ms=%s", offsetof(struct config, commit_ms_s), 0 },
	{ "type_field=%s", offsetof(struct config, type_field), 0 },
	{ "max_event=%s", offsetof(struct config, max_event_s), 0 },
	{ "max_pending=%s", offsetof(struct config, max_pending_s), 0 },
	{ "max_held=%s", offsetof(struct config, max_held_s), 0 },
	{ "max_types=%s", offsetof(struct config, max_types_s), 0 },
	{ "max_fds=%s", offsetof(struct config, max_fds_s), 0 },
	{ "views=%s", offsetof(struct config, views), 0 },
	OPT("nodelete", nodelete),
	FUSE_OPT_KEY("ro", KEY_RO),
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_END
};

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct config *cfg = data;

	switch (key) {
	case KEY_HELP:
		cfg->show_help = 1;
		return 0;
	case KEY_VERSION:
		cfg->show_version = 1;
		return 0;
	case KEY_RO:
		cfg->ro = 1;
		return 1;	/* the kernel should know too */
	case FUSE_OPT_KEY_NONOPT:
		if (!cfg->data_dir) {
			cfg->data_dir = strdup(arg);
			return 0;
		}
		if (!cfg->mountpoint) {
			cfg->mountpoint = strdup(arg);
			return 0;
		}
		fprintf(stderr, "evlogfs: unexpected argument '%s'\n", arg);
		return -1;
	}
	return 1;
}

static void usage(const char *prog)
{
	printf("usage: %s [options] DATA_DIR MOUNTPOINT\n\n"
	       "Mount DATA_DIR (created if missing) as an indexed event log.\n\n"
	       "evlogfs options:\n"
	       "    -o commit=group|sync   acknowledge writes once journaled (group, default)\n"
	       "                           or once fsynced (sync)\n"
	       "    -o commit_ms=N         group commit: fsync at least every N ms (10)\n"
	       "    -o type_field=NAME     JSON member holding the event type (type)\n"
	       "    -o max_event=BYTES     largest event, newline included (1M)\n"
	       "    -o max_pending=BYTES   unapplied bytes before writers wait (64M)\n"
	       "    -o max_held=BYTES      unterminated-line bytes all open files may hold;\n"
	       "                           a write that would hold more gets ENOBUFS (64M)\n"
	       "    -o max_types=N         distinct types; a write bringing one more gets\n"
	       "                           EDQUOT (10000; 0: no bound)\n"
	       "    -o max_fds=N           task logs kept open (1024); raise it for\n"
	       "                           queries that span more tasks (fewer if the\n"
	       "                           open-file limit allows fewer)\n"
	       "    -o views=private|public\n"
	       "                           private (default): only the mounting user (and\n"
	       "                           root) reads views, which hold every user's events;\n"
	       "                           public: every view readable by everyone\n"
	       "    -o nodelete            refuse every deletion (EPERM)\n"
	       "    -o ro                  read-only mount (EROFS)\n"
	       "    -f                     stay in the foreground\n"
	       "    -d                     debug: foreground, log every request\n"
	       "    -h, --help             this help\n"
	       "    -V, --version          the version\n\n"
	       "Unmount with: fusermount3 -u MOUNTPOINT\n\n", prog);
}

/* "64M" -> bytes; 0 on a bad value. */
/*
 * Option values are taken as strings and parsed here, strictly: digits only
 * (no sign, blank or trailing junk), no overflow, within [@min, @max], else
 * the option is refused by name.  A size may end in K, M or G.
 */
static int parse_num(const char *name, const char *s, bool size, unsigned long long min,
		     unsigned long long max, const char *range, unsigned long long *out)
{
	unsigned long long v = 0;
	unsigned shift = 0;
	char *end = NULL;

	if (*s >= '0' && *s <= '9') {
		errno = 0;
		v = strtoull(s, &end, 10);
		if (errno)
			end = NULL;
	}
	if (end && size) {
		switch (*end) {
		case 'k': case 'K': shift = 10; end++; break;
		case 'm': case 'M': shift = 20; end++; break;
		case 'g': case 'G': shift = 30; end++; break;
		}
		if (v > (ULLONG_MAX >> shift))
			end = NULL;	/* the multiply would wrap */
		else
			v <<= shift;
	}
	if (!end || *end || v < min || v > max) {
		fprintf(stderr, "evlogfs: %s=%s: must be %s\n", name, s, range);
		return -1;
	}
	*out = v;
	return 0;
}

static int validate(struct config *cfg)
{
	unsigned long long v;

	if (!cfg->data_dir || !cfg->mountpoint) {
		fprintf(stderr, "evlogfs: need DATA_DIR and MOUNTPOINT (see --help)\n");
		return -1;
	}
	if (strcmp(cfg->commit, "group") && strcmp(cfg->commit, "sync")) {
		fprintf(stderr, "evlogfs: commit=%s: must be group or sync\n", cfg->commit);
		return -1;
	}
	if (cfg->commit_ms_s) {
		if (parse_num("commit_ms", cfg->commit_ms_s, false, 1, 60000, "1 to 60000", &v))
			return -1;
		cfg->commit_ms = v;
	}
	if (cfg->max_fds_s) {
		if (parse_num("max_fds", cfg->max_fds_s, false, 1, 1u << 20, "1 to 1048576", &v))
			return -1;
		cfg->max_fds = v;
	}
	/* no default string: fuse_opt_parse would leak it when the option is given */
	if (cfg->views && strcmp(cfg->views, "private") && strcmp(cfg->views, "public")) {
		fprintf(stderr, "evlogfs: views=%s: must be private or public\n", cfg->views);
		return -1;
	}
	cfg->views_public = cfg->views && !strcmp(cfg->views, "public");
	if (!*cfg->type_field || strlen(cfg->type_field) > 255) {
		fprintf(stderr, "evlogfs: type_field must be 1 to 255 bytes\n");
		return -1;
	}
	if (cfg->max_event_s) {
		if (parse_num("max_event", cfg->max_event_s, true, 16, 64u << 20,
			      "16 bytes to 64M", &v))
			return -1;
		cfg->max_event = v;
	}
	if (cfg->max_held_s) {
		if (parse_num("max_held", cfg->max_held_s, true, 4u << 10, SIZE_MAX,
			      "at least 4K (digits and K, M or G)", &v))
			return -1;
		cfg->max_held = v;
	}
	if (cfg->max_types_s) {
		if (parse_num("max_types", cfg->max_types_s, false, 0, SIZE_MAX,
			      "0 (no bound) or more", &v))
			return -1;
		cfg->max_types = v;
	}
	if (cfg->max_pending_s) {
		if (parse_num("max_pending", cfg->max_pending_s, true, 64u << 10, SIZE_MAX,
			      "at least 64K (digits and K, M or G)", &v))
			return -1;
		cfg->max_pending = v;
	}
	return 0;
}

/*
 * Go to the background before the store starts its threads (a fork keeps
 * only the calling thread), but let the parent wait for the child's verdict:
 * it exits 0 once the child is mounted, 1 if the child failed, and the
 * child's error messages still reach the terminal.  fuse_daemonize() cannot
 * be used: it must run after the store is open, i.e. after its threads.
 * Returns the pipe to report readiness on (-1 in the foreground).
 */
static int background(bool foreground)
{
	int p[2];
	pid_t pid;
	char ok;

	if (foreground)
		return -1;
	if (pipe(p)) {
		perror("evlogfs: pipe");
		exit(1);
	}
	pid = fork();
	if (pid < 0) {
		perror("evlogfs: fork");
		exit(1);
	}
	if (pid > 0) {
		close(p[1]);
		exit(read(p[0], &ok, 1) == 1 && ok == 0 ? 0 : 1);
	}
	close(p[0]);
	setsid();
	return p[1];
}

/* In the background child, once mounted: detach from the terminal and tell the parent. */
static void ready(int fd)
{
	int null;
	char ok = 0;

	if (fd < 0)
		return;
	if (chdir("/"))
		return;
	null = open("/dev/null", O_RDWR);
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		if (null > STDERR_FILENO)
			close(null);
	}
	if (write(fd, &ok, 1) != 1)
		return;	/* the parent is gone: nothing to tell */
	close(fd);
}

static void *wait_for_cancel(void *arg)
{
	for (;;)
		pause();	/* a cancellation point */
	return NULL;
}

/*
 * When the session ends, libfuse's fuse_session_loop_mt cancels its worker
 * threads.  glibc's first pthread_cancel loads libgcc_s.so.1 (the unwinder)
 * and aborts the process if it cannot: at unmount, with every descriptor
 * taken, that lost the exit status and the checkpoint.  Make that first
 * cancel now, while descriptors are plentiful: glibc keeps the library for
 * the life of the process.  (Without libgcc_s this aborts at once, before
 * anything is mounted, instead of at the end.)
 */
static int prime_thread_cancel(void)
{
	pthread_t t;
	int rc = pthread_create(&t, NULL, wait_for_cancel, NULL);

	if (rc)
		return -rc;
	pthread_cancel(t);
	pthread_join(t, NULL);
	return 0;
}

/* Is @path a mount point now (per /proc/mounts)? */
static bool mounted(const char *path)
{
	FILE *f = setmntent("/proc/mounts", "r");
	struct mntent *m;
	bool found = false;

	if (!f)
		return true;	/* cannot tell: do not wait */
	while (!found && (m = getmntent(f)))
		found = !strcmp(m->mnt_dir, path);
	endmntent(f);
	return found;
}

#define HOLDER_WAIT_MS 10000

/*
 * Before opening: if the store is held by a daemon whose mount is gone, it
 * is closing (fusermount3 -u returns before the daemon has checkpointed and
 * released the store): wait for it, up to HOLDER_WAIT_MS, saying so once.
 * A holder still mounted, or an offline tool, is not waited for: the open
 * then fails at once, naming it.
 */
static void wait_closing_holder(const char *dir)
{
	char holder[600];
	bool said = false;

	for (int ms = 0; ms < HOLDER_WAIT_MS; ms += 50) {
		char *mnt, *end;

		/* (it waits a little for a holder that has not named itself yet) */
		if (evl_store_holder(dir, holder, sizeof(holder)) != 1)
			return;
		/* "pid N (/mount/point)"; not "another process (DIR/lock does not name it)" */
		if (strncmp(holder, "pid ", 4))
			return;
		mnt = strchr(holder, '(');
		end = strrchr(holder, ')');
		if (!mnt || !end || end < mnt || mnt[1] != '/')
			return;
		*end = '\0';
		if (mounted(mnt + 1))
			return;
		if (!said) {
			*(mnt - 1) = '\0';
			evl_log(LOG_NOTICE, "store %s is held by %s, whose mount %s is gone: waiting "
				"up to %d s for it to exit", dir, holder, mnt + 1,
				HOLDER_WAIT_MS / 1000);
			said = true;
		}
		usleep(50000);
	}
}

static void syslog_sink(int prio, const char *msg)
{
	syslog(prio, "%s", msg);
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct config cfg = {
		.commit_ms = 10, .max_event = 1 << 20, .max_pending = 64u << 20,
		.max_held = 64u << 20, .max_types = 10000,
	};
	struct fuse_cmdline_opts copts = { 0 };
	struct fuse_loop_config *lcfg = NULL;
	struct evl_options eo;
	struct fs fs = { .cfg = &cfg };
	char real[PATH_MAX];
	int rc = 1, loop_rc, ready_fd;

	cfg.commit = strdup("group");
	cfg.type_field = strdup("type");
	rc = 2;
	if (fuse_opt_parse(&args, &cfg, opt_table, opt_proc))
		goto out_args;
	if (cfg.show_help) {
		usage(argv[0]);
		fuse_cmdline_help();
		fuse_lowlevel_help();
		rc = 0;
		goto out_args;
	}
	if (cfg.show_version) {
		printf("evlogfs %s (libfuse %s)\n", EVL_VERSION, fuse_pkgversion());
		rc = 0;
		goto out_args;
	}
	if (validate(&cfg))
		goto out_args;
	/* modes mean what they say: the kernel checks them (tasks have owners) */
	if (fuse_opt_add_arg(&args, "-odefault_permissions"))
		goto out_args;
	if (fuse_parse_cmdline(&args, &copts))
		goto out_args;
	if (copts.show_help || copts.show_version) {
		rc = 0;
		goto out_args;
	}

	rc = 1;
	if (prime_thread_cancel()) {
		fprintf(stderr, "evlogfs: cannot start a thread\n");
		goto out_args;
	}
	if (mkdir(cfg.data_dir, 0755) && errno != EEXIST) {
		fprintf(stderr, "evlogfs: cannot create %s: %s\n", cfg.data_dir, strerror(errno));
		goto out_args;
	}
	/* after daemonizing the working directory is /: keep absolute paths */
	if (!realpath(cfg.data_dir, real)) {
		fprintf(stderr, "evlogfs: %s: %s\n", cfg.data_dir, strerror(errno));
		goto out_args;
	}
	free(cfg.data_dir);
	cfg.data_dir = strdup(real);
	if (realpath(cfg.mountpoint, real)) {
		free(cfg.mountpoint);
		cfg.mountpoint = strdup(real);
	}
	{
		struct stat sb;
		int err = stat(cfg.mountpoint, &sb) ? errno : 0;

		/* FUSE would mount on a file too, and then every access gets EIO */
		if (err || !S_ISDIR(sb.st_mode)) {
			fprintf(stderr, "evlogfs: %s: %s\n", cfg.mountpoint, err ? strerror(err) :
				"not a directory (MOUNTPOINT must be one)");
			goto out_args;
		}
	}

	ready_fd = background(copts.foreground);
	evl_options_default(&eo);
	eo.type_field = cfg.type_field;
	eo.max_event = cfg.max_event;
	eo.max_pending = cfg.max_pending;
	eo.max_held = cfg.max_held;
	eo.max_types = cfg.max_types;
	if (cfg.max_fds)
		eo.max_fds = cfg.max_fds;
	eo.commit_sync = !strcmp(cfg.commit, "sync");
	eo.commit_ms = cfg.commit_ms;
	eo.read_only = cfg.ro;
	eo.nodelete = cfg.nodelete;
	eo.holder = cfg.mountpoint;
	if (copts.debug)
		evl_log_set(NULL, LOG_DEBUG);
	wait_closing_holder(cfg.data_dir);
	rc = evl_store_open(cfg.data_dir, &eo, &fs.st);
	if (rc == -EUCLEAN) {
		/* nothing is served from a damaged index: the logs rebuild it */
		fprintf(stderr, "evlogfs: cannot open %s: its index is damaged (see above);"
			" nothing is mounted: run evlogctl reindex %s\n", cfg.data_dir,
			cfg.data_dir);
		rc = 1;
		goto out_args;
	}
	if (rc) {
		fprintf(stderr, "evlogfs: cannot open %s: %s\n", cfg.data_dir, strerror(-rc));
		rc = 1;
		goto out_args;
	}
	fs.uid = getuid();
	fs.gid = getgid();
	{
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		fs.mount_ns = ts.tv_sec * 1000000000ull + ts.tv_nsec;
	}
	nodes_init();

	rc = 1;
	fs.se = fuse_session_new(&args, &evlogfs_ops, sizeof(evlogfs_ops), &fs);
	if (!fs.se)
		goto out_store;
	if (fuse_set_signal_handlers(fs.se))
		goto out_session;
	if (fuse_session_mount(fs.se, cfg.mountpoint))
		goto out_signals;
	ready(ready_fd);
	if (!copts.foreground) {
		openlog("evlogfs", LOG_PID, LOG_DAEMON);
		evl_log_set(syslog_sink, copts.debug ? LOG_DEBUG : LOG_INFO);
	}
	evl_log(LOG_INFO, "mounted %s at %s (commit=%s)", cfg.data_dir, cfg.mountpoint, cfg.commit);

	/* reads go to their own threads: libfuse's workers stay free for appends */
	if (!copts.singlethread && readpool_start(READ_THREADS))
		evl_log(LOG_WARNING, "no reader threads: reads are served by the FUSE workers");
	if (copts.singlethread) {
		loop_rc = fuse_session_loop(fs.se);
	} else {
		lcfg = fuse_loop_cfg_create();
		fuse_loop_cfg_set_clone_fd(lcfg, copts.clone_fd);
		fuse_loop_cfg_set_max_threads(lcfg, copts.max_threads);
		loop_rc = fuse_session_loop_mt(fs.se, lcfg);
		fuse_loop_cfg_destroy(lcfg);
	}
	rc = loop_rc < 0 ? 1 : 0;
	/* replies to what is queued go out before the unmount closes the device */
	readpool_stop();
	fuse_session_unmount(fs.se);
	ops_close_handles();
out_signals:
	fuse_remove_signal_handlers(fs.se);
out_session:
	fuse_session_destroy(fs.se);
out_store:
	{
		struct evl_stats s;

		/* records the mount found corrupt are lost: not a clean run */
		evl_store_stats(fs.st, &s);
		if (s.journal_lost) {
			evl_log(LOG_ERR, "%s: %llu journal records (lsns %llu-%llu) were corrupt and"
				" are lost; the damaged segment is kept as journal/%016llx.jnl.corrupt",
				cfg.data_dir, (unsigned long long)s.journal_lost,
				(unsigned long long)s.journal_lost_first,
				(unsigned long long)s.journal_lost_last,
				(unsigned long long)s.journal_damaged_first);
			rc = 1;
		}
		/* damaged tasks: not a clean run either, even if nothing was lost */
		if (s.tasks_aside) {
			char names[256] = "";
			size_t at = 0;

			for (const char *n = s.aside; *n && at < sizeof(names); n += strlen(n) + 1)
				at += snprintf(names + at, sizeof(names) - at, "%s%s", at ? ", " : "", n);
			evl_log(LOG_ERR, "%s: %llu damaged tasks were set aside (%s); %llu acknowledged "
				"events of theirs are in their events.unapplied, %llu lost; run "
				"evlogctl fsck --repair %s", cfg.data_dir,
				(unsigned long long)s.tasks_aside, names,
				(unsigned long long)s.events_unapplied,
				(unsigned long long)s.events_lost, cfg.data_dir);
			rc = 1;
		}
	}
	/* flush and checkpoint: 0 only if everything acknowledged is on disk */
	if (evl_store_close(fs.st)) {
		evl_log(LOG_ERR, "unmounted %s, but not everything reached the disk", cfg.data_dir);
		rc = 1;
	} else {
		evl_log(LOG_INFO, "unmounted %s cleanly", cfg.data_dir);
	}
	nodes_fini();
out_args:
	fuse_opt_free_args(&args);
	free(copts.mountpoint);
	free(cfg.data_dir);
	free(cfg.mountpoint);
	free(cfg.commit);
	free(cfg.type_field);
	free(cfg.views);
	free(cfg.commit_ms_s);
	free(cfg.max_fds_s);
	free(cfg.max_event_s);
	free(cfg.max_pending_s);
	free(cfg.max_held_s);
	free(cfg.max_types_s);
	return rc;
}
