/*
 * compact.c - compaction and retention, asked for through `compact`.
 *
 * One run at a time, on its own thread; it never holds a lock across a
 * phase, so appends and reads go on.  Phases, in order:
 *
 *   checkpoint  evl_store_checkpoint: apply what was journaled before the
 *               run began, sync, trim the journal
 *   expire      expire-idle=D: list the tasks whose last append is older
 *               than D, then delete each by uid (evl_task_delete_uid), which
 *               checks again, with appends held off, that it is still idle
 *               and still that task; each leaves every view at once
 *   retain      max-age=D, keep-last=N: drop each task's head (store_retain,
 *               one task at a time; the mechanics are in retain.c), counting
 *               only events committed before the phase began (a gseq horizon)
 *   reclaim     wait until as many deleted tasks as awaited it when the phase
 *               began have their index entries and files purged (the applier
 *               does it in bounded steps)
 *   shrink      if more than half of the index file is free, the applier
 *               rewrites it compactly and swaps it in (index_shrink)
 *   checkpoint  again, of what is applied, so the journal of the deletions is
 *               trimmed too
 *
 * BOUNDED.  Each phase works up to a point fixed when it starts (a record,
 * a listing, a gseq, a count), so a compaction ends whatever the append
 * rate: it never chases writers.  evl_store_close stops a run between
 * tasks and between retention steps (-EINTR); every step is whole (C1), and
 * the next run, or the next open for a retention intent, goes on.  A run
 * logs one line, whatever it did to how many tasks.
 *
 * DROPPING A TASK'S HEAD (retention): its steps, their state diagram, its
 * invariants (C1 to C5: every phase here keeps C1) and its recovery are at
 * the top of retain.c.
 *
 * STATES
 *   idle --evl_compact_start--> running(phase) --done--> idle + last result
 *   running --evl_store_close--> idle + last result -EINTR (at the next step)
 *   a second start while running: -EBUSY.
 */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "datadir.h"
#include "evlog.h"
#include "grow.h"
#include "log.h"
#include "store.h"
#include "tasklog.h"

struct compactor {
	struct evl_store *st;
	pthread_mutex_t lock;		/* protects everything below */
	pthread_t thread;
	bool joinable;			/* a thread was started and not joined */
	struct evl_compact_args args;
	struct evl_compact_status s;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- parsing ---- */

/*
 * The longest duration: its nanoseconds fit an int64 (292 years), so no
 * arithmetic on it can wrap.  Longer ones are refused, not clamped: a typo
 * (an extra digit) should not read as "forever".
 */
#define DURATION_MAX_S (INT64_MAX / 1000000000)
#define BLANKS " \t\r\n"

/* A count in decimal digits only (no sign, no blank, no overflow).  0 or -EINVAL. */
static int decimal(const char *v, uint64_t *out)
{
	uint64_t n = 0;

	if (!*v)
		return -EINVAL;
	for (; *v; v++) {
		if (*v < '0' || *v > '9' || n > (UINT64_MAX - (*v - '0')) / 10)
			return -EINVAL;
		n = n * 10 + (*v - '0');
	}
	*out = n;
	return 0;
}

static int duration(const char *v, uint64_t *out)
{
	char digits[32];
	size_t len = strlen(v);
	uint64_t n, unit;

	if (len < 2 || len - 1 >= sizeof(digits))
		return -EINVAL;
	switch (v[len - 1]) {
	case 's': unit = 1; break;
	case 'm': unit = 60; break;
	case 'h': unit = 3600; break;
	case 'd': unit = 86400; break;
	default: return -EINVAL;
	}
	memcpy(digits, v, len - 1);
	digits[len - 1] = '\0';
	if (decimal(digits, &n) || n == 0 || n > DURATION_MAX_S / unit)
		return -EINVAL;
	*out = n * unit;
	return 0;
}

/*
 * The next word of @p into @word (at most @cap bytes with its NUL): words
 * are separated by blanks; a `"` starts a quoted part, in which blanks are
 * kept and a backslash makes the next `"` or `\` literal.  Returns the
 * bytes consumed, 0 at the end, or -EINVAL (unterminated quote, a bad
 * escape, too long) with the reason in @why.
 */
static int next_word(const char *p, char *word, size_t cap, char *why, size_t whylen)
{
	const char *s = p;
	size_t n = 0;
	bool quoted = false;

	while (*s && strchr(BLANKS, *s))
		s++;
	if (!*s)
		return 0;
	for (; *s && (quoted || !strchr(BLANKS, *s)); s++) {
		char c = *s;

		if (c == '"') {
			quoted = !quoted;
			continue;
		}
		if (c == '\\' && quoted) {
			if (s[1] != '"' && s[1] != '\\') {
				snprintf(why, whylen, "compact: inside quotes a backslash goes only "
					 "before \" or \\");
				return -EINVAL;
			}
			c = *++s;
		}
		if (n + 1 >= cap) {
			snprintf(why, whylen, "compact: an argument is longer than %zu bytes", cap - 1);
			return -EINVAL;
		}
		word[n++] = c;
	}
	if (quoted) {
		snprintf(why, whylen, "compact: a quote is not closed");
		return -EINVAL;
	}
	word[n] = '\0';
	return s - p;
}

int evl_compact_parse(const char *words, struct evl_compact_args *out, char *why, size_t whylen)
{
	static const char *const keys[] = { "task", "expire-idle", "max-age", "keep-last" };
	bool seen[4] = { false };
	char w[300];
	int used;

	memset(out, 0, sizeof(*out));
	while ((used = next_word(words, w, sizeof(w), why, whylen)) > 0) {
		char *eq = strchr(w, '=');
		const char *v;
		size_t k;

		words += used;
		if (!eq) {
			snprintf(why, whylen, "compact: argument '%.60s' is not NAME=VALUE", w);
			return -EINVAL;
		}
		*eq = '\0';
		v = eq + 1;
		for (k = 0; k < 4 && strcmp(w, keys[k]); k++)
			;
		if (k == 4) {
			snprintf(why, whylen, "compact: unknown argument '%.60s' (known: task, "
				 "expire-idle, max-age, keep-last)", w);
			return -EINVAL;
		}
		if (seen[k]) {
			/* which one was meant?  Never guess on a deletion */
			snprintf(why, whylen, "compact: %s given twice", keys[k]);
			return -EINVAL;
		}
		seen[k] = true;
		if (k == 0) {
			if (evl_task_check_name(v, strlen(v))) {
				snprintf(why, whylen, "compact: task=%.60s is not a task id", v);
				return -EINVAL;
			}
			snprintf(out->task, sizeof(out->task), "%s", v);
		} else if (k == 1 || k == 2) {
			if (duration(v, k == 1 ? &out->expire_idle_s : &out->max_age_s)) {
				snprintf(why, whylen, "compact: %s=%.40s: want a duration such as "
					 "90s, 15m, 12h or 30d (at most %llu s)", keys[k], v,
					 (unsigned long long)DURATION_MAX_S);
				return -EINVAL;
			}
		} else if (decimal(v, &out->keep_last) || out->keep_last == 0) {
			snprintf(why, whylen, "compact: keep-last=%.40s: want a count of "
				 "events, 1 or more (rm -r deletes a whole task)", v);
			return -EINVAL;
		}
	}
	return used;
}

int evl_control_parse(const char *buf, size_t size, struct evl_control *out,
		      char *why, size_t whylen)
{
	char *cmd = out->text;
	size_t n = size, i;

	memset(out, 0, sizeof(*out));
	/* blanks and line ends around the command: `echo`, CRLF, a leading space */
	while (n && buf[n - 1] && strchr(" \t\r\n", buf[n - 1]))
		n--;
	while (n && buf[0] && strchr(" \t\r\n", buf[0])) {
		buf++;
		n--;
	}
	/* the status shows the command: control bytes but the tab as '?' */
	for (i = 0; i < n && i < sizeof(out->text) - 1; i++) {
		unsigned char c = buf[i];

		cmd[i] = (c < ' ' && c != '\t') || c == 0x7f ? '?' : c;
	}
	if (n >= sizeof(out->text)) {
		snprintf(why, whylen, "command longer than %zu bytes", sizeof(out->text) - 1);
		return -EINVAL;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = buf[i];

		if ((c < ' ' && c != '\t') || c == 0x7f) {
			snprintf(why, whylen, "one command per write, with no NUL, line end or "
				 "other control byte inside");
			return -EINVAL;
		}
	}
	if (!strcmp(cmd, "checkpoint")) {
		out->cmd = EVL_CONTROL_CHECKPOINT;
		return 0;
	}
	if (!strncmp(cmd, "compact", 7) && (!cmd[7] || cmd[7] == ' ' || cmd[7] == '\t')) {
		out->cmd = EVL_CONTROL_COMPACT;
		return evl_compact_parse(cmd + 7, &out->compact, why, whylen);
	}
	snprintf(why, whylen, "unknown command (known: checkpoint, compact)");
	return -EINVAL;
}

/* ---- the run ---- */

static void set_phase(struct compactor *c, const char *phase, uint64_t total)
{
	pthread_mutex_lock(&c->lock);
	snprintf(c->s.phase, sizeof(c->s.phase), "%s", phase);
	c->s.done = 0;
	c->s.total = total;
	pthread_mutex_unlock(&c->lock);
}

static void set_done(struct compactor *c, uint64_t done)
{
	pthread_mutex_lock(&c->lock);
	c->s.done = done;
	pthread_mutex_unlock(&c->lock);
}

static uint64_t du_total;

static int du_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	du_total += (uint64_t)sb->st_blocks * 512;
	return 0;
}

static uint64_t du(const char *path)
{
	static pthread_mutex_t du_lock = PTHREAD_MUTEX_INITIALIZER;
	uint64_t n;

	pthread_mutex_lock(&du_lock);	/* nftw has no context argument */
	du_total = 0;
	nftw(path, du_cb, 32, FTW_PHYS);
	n = du_total;
	pthread_mutex_unlock(&du_lock);
	return n;
}

/* Disk bytes of the index file. */
static uint64_t index_du(const char *dir)
{
	char path[DD_PATH_MAX];

	return dd_path(path, dir, DD_INDEX, NULL) ? 0 : du(path);
}

/* Disk bytes of deleted tasks' files not removed yet (a removal that failed). */
static uint64_t trash_du(const char *dir)
{
	char tasks[DD_PATH_MAX], path[DD_PATH_MAX];
	struct dirent *de;
	uint64_t n = 0;
	DIR *d;

	d = dd_path(tasks, dir, DD_TASKS, NULL) ? NULL : opendir(tasks);
	while (d && (de = readdir(d)))
		if (!strncmp(de->d_name, DD_TRASH_PREFIX, sizeof(DD_TRASH_PREFIX) - 1) &&
		    !dd_join(path, tasks, de->d_name))
			n += du(path);
	if (d)
		closedir(d);
	return n;
}

static uint64_t minus(uint64_t a, uint64_t b)
{
	return a > b ? a - b : 0;
}

/* The tasks a phase works on, listed first: the listing's snapshot ends before any change. */
struct task_set {
	const char *only;	/* "" = every task */
	uint64_t idle_before;	/* only those last written before (ns; 0 = any) */
	uint64_t *uid;		/* by uid: a name may be reused meanwhile */
	size_t n, cap;
};

static int task_set_cb(void *arg, const struct evl_task_info *t)
{
	struct task_set *s = arg;

	if ((s->only[0] && strcmp(s->only, t->name)) ||
	    (s->idle_before && t->last_ns >= s->idle_before))
		return 0;
	if (GROW(s->uid, s->cap, s->n + 1))
		return -ENOMEM;
	s->uid[s->n++] = t->uid;
	return 0;
}

/* The live tasks the run's task= allows, last written before @idle_before (0: any). */
static int task_set_list(struct compactor *c, uint64_t idle_before, struct task_set *s)
{
	*s = (struct task_set){ .only = c->args.task, .idle_before = idle_before };
	return evl_task_list(c->st, NULL, task_set_cb, s);
}

/*
 * The wall-clock time @age_s seconds ago, in ns; 0 if the clock is not
 * that old (nothing was written that long ago).
 */
static uint64_t ago_ns(uint64_t age_s)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	if (now.tv_sec < 0 || (uint64_t)now.tv_sec <= age_s)
		return 0;
	return ((uint64_t)now.tv_sec - age_s) * 1000000000ull + now.tv_nsec;
}

/*
 * Drop the heads of the tasks, by max-age and keep-last, counting only the
 * events committed before the phase began: a task appended to meanwhile
 * loses no more than it had then, so the work is fixed at the start
 * however fast appends come.  0, -EINTR (the store is closing) or -errno.
 */
static int retain(struct compactor *c, uint64_t *events, uint64_t *bytes)
{
	struct task_set ts;
	uint64_t min_ns = 0, horizon;
	int rc;

	if (c->args.max_age_s)
		min_ns = ago_ns(c->args.max_age_s);
	if (!min_ns && !c->args.keep_last)
		return 0;
	horizon = store_next_gseq(c->st);
	rc = task_set_list(c, 0, &ts);
	set_phase(c, "retain", ts.n);
	for (size_t i = 0; i < ts.n && !rc; i++) {
		uint64_t ev, b;

		if (store_closing(c->st)) {
			rc = -EINTR;
			break;
		}
		rc = store_retain(c->st, ts.uid[i], c->args.keep_last, min_ns, horizon, &ev, &b);
		*events += ev;
		/* the log bytes and their sidecar records */
		*bytes += b + ev * TASKLOG_REC;
		set_done(c, i + 1);
	}
	free(ts.uid);
	return rc;
}

/*
 * Delete the tasks idle longer than expire-idle, by uid, each checked
 * again as it is deleted.  Counts them and their disk bytes.  0, -EINTR
 * or -errno.
 */
static int expire_idle(struct compactor *c, uint64_t *expired, uint64_t *bytes)
{
	uint64_t before = ago_ns(c->args.expire_idle_s);
	struct task_set ts;
	int rc;

	if (!before)
		return 0;	/* longer than the clock's age: nothing is that old */
	rc = task_set_list(c, before, &ts);
	set_phase(c, "expire", ts.n);
	for (size_t i = 0; i < ts.n && !rc; i++) {
		struct evl_task_info info;

		if (store_closing(c->st)) {
			rc = -EINTR;
			break;
		}
		rc = evl_task_delete_uid(c->st, ts.uid[i], before, &info);
		if (rc == -ENOENT || rc == -EBUSY) {
			rc = 0;	/* deleted, or written, since the listing */
		} else if (!rc) {
			(*expired)++;
			*bytes += info.size + info.events * TASKLOG_REC;
		}
		set_done(c, i + 1);
	}
	free(ts.uid);
	return rc;
}

static void reclaim_progress(void *arg, uint64_t left)
{
	struct compactor *c = arg;

	pthread_mutex_lock(&c->lock);
	if (left > c->s.total)
		c->s.total = left;
	c->s.done = c->s.total - left;
	pthread_mutex_unlock(&c->lock);
}

static void *compact_main(void *arg)
{
	struct compactor *c = arg;
	struct evl_store *st = c->st;
	const char *dir = store_dir(st);
	uint64_t expired = 0, dropped = 0, trimmed = 0, freed = 0, b0, b1;
	double t0 = now_s();
	int rc;

	/*
	 * The first checkpoint applies what was journaled before the run
	 * began (retention then sees every event acknowledged before it), a
	 * bounded backlog; the last covers what is applied when it runs, not
	 * what writers keep adding.  Between steps, a closing store stops the
	 * run (-EINTR): each step is whole, and the next run or open goes on
	 * from there.
	 */
	set_phase(c, "checkpoint", 1);
	rc = store_finish_switches(st);	/* an earlier run's rewrite that failed late */
	if (!rc)
		rc = evl_store_checkpoint(st);
	if (!rc && c->args.expire_idle_s)
		rc = expire_idle(c, &expired, &freed);
	if (!rc)
		rc = retain(c, &dropped, &trimmed);
	if (!rc && store_closing(st))
		rc = -EINTR;
	if (!rc) {
		set_phase(c, "reclaim", 0);
		b0 = trash_du(dir);
		rc = store_wait_purged(st, reclaim_progress, c);
		freed += minus(b0, trash_du(dir));
	}
	if (!rc) {
		set_phase(c, "shrink", 1);
		b0 = index_du(dir);
		rc = store_shrink_index(st);
		b1 = index_du(dir);
		freed += minus(b0, b1);
	}
	if (!rc && store_closing(st))
		rc = -EINTR;
	if (!rc) {
		set_phase(c, "checkpoint", 1);
		rc = store_checkpoint_applied(st);
	}
	store_reserve(st);	/* given up by a delete on a full disk: room again now? */

	pthread_mutex_lock(&c->lock);
	c->s.running = false;
	c->s.have_last = true;
	c->s.last_rc = rc;
	c->s.last_time_s = time(NULL);
	c->s.last_duration_s = now_s() - t0;
	c->s.last_tasks_expired = expired;
	c->s.last_events_dropped = dropped;
	/* what compaction freed itself; the journal a checkpoint trims is not counted */
	c->s.last_bytes_reclaimed = freed + trimmed;
	c->s.duration_sum_s += c->s.last_duration_s;
	c->s.bytes_reclaimed_total += c->s.last_bytes_reclaimed;
	if (rc)
		c->s.runs_failed++;
	else
		c->s.runs_ok++;
	pthread_mutex_unlock(&c->lock);
	/* one line per run, whatever it did to how many tasks */
	if (rc == -EINTR)
		evl_log(LOG_NOTICE, "compaction stopped by the store closing after %.2f s: %" PRIu64
			" tasks expired, %" PRIu64 " events dropped; the next run goes on",
			c->s.last_duration_s, expired, dropped);
	else if (rc)
		evl_log(LOG_ERR, "compaction failed: %s", strerror(-rc));
	else
		evl_log(LOG_INFO, "compaction done in %.2f s: %" PRIu64 " tasks expired, %" PRIu64
			" events dropped, %" PRIu64 " bytes reclaimed", c->s.last_duration_s,
			expired, dropped, c->s.last_bytes_reclaimed);
	return NULL;
}

static void *compactor_new(struct evl_store *st)
{
	struct compactor *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->st = st;
	pthread_mutex_init(&c->lock, NULL);
	return c;
}

/* Wait for a running compaction and free (evl_store_close). */
static void compactor_free(void *obj)
{
	struct compactor *c = obj;

	if (c->joinable)
		pthread_join(c->thread, NULL);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/* The store's compaction state, made at its first use.  NULL: out of memory. */
static struct compactor *compactor_of(struct evl_store *st)
{
	return store_attached(st, compactor_new, compactor_free);
}

int evl_compact_start(struct evl_store *st, const struct evl_compact_args *args)
{
	struct compactor *c = compactor_of(st);
	int rc;

	if (store_read_only(st))
		return -EROFS;
	if ((args->expire_idle_s || args->max_age_s || args->keep_last) && store_nodelete(st))
		return -EPERM;
	if (args->task[0]) {
		struct evl_task_info info;

		/* a typo must not turn into a compaction of everything */
		rc = evl_task_lookup(st, args->task, &info);
		if (rc)
			return rc;
	}
	if (!c)	/* none made: out of memory, or the store is closing */
		return store_closing(st) ? -EINTR : -ENOMEM;
	pthread_mutex_lock(&c->lock);
	if (c->s.running) {
		pthread_mutex_unlock(&c->lock);
		return -EBUSY;
	}
	if (c->joinable) {
		pthread_join(c->thread, NULL);	/* finished: running is false */
		c->joinable = false;
	}
	c->args = *args;
	c->s.running = true;
	snprintf(c->s.phase, sizeof(c->s.phase), "start");
	c->s.done = c->s.total = 0;
	rc = -pthread_create(&c->thread, NULL, compact_main, c);
	if (rc)
		c->s.running = false;
	else
		c->joinable = true;
	pthread_mutex_unlock(&c->lock);
	return rc;
}

void evl_compact_status(struct evl_store *st, struct evl_compact_status *out)
{
	struct compactor *c = compactor_of(st);

	if (!c) {
		memset(out, 0, sizeof(*out));	/* none ran: idle */
		return;
	}
	pthread_mutex_lock(&c->lock);
	*out = c->s;
	pthread_mutex_unlock(&c->lock);
}
