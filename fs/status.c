/*
 * status.c - what reading .control and .metrics returns.
 *
 * .control: one JSON object (built with json-c): counts, commit mode,
 * compaction state, rejections and the last command's outcome.  Counts
 * (tasks, events, types, log bytes) include what is journaled and not yet
 * applied, as readers see it; pending_* say how much of it that is.  Every
 * string is valid UTF-8 (jstr), whatever bytes a task id or command held.
 * .metrics: Prometheus text exposition format 0.0.4.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "evlogfs.h"
#include "grow.h"

static pthread_mutex_t cmd_lock = PTHREAD_MUTEX_INITIALIZER;
static char last_cmd[1024], last_reason[256];
static int last_rc;
static time_t last_at;

void status_note_command(const char *cmd, int rc, const char *reason)
{
	pthread_mutex_lock(&cmd_lock);
	snprintf(last_cmd, sizeof(last_cmd), "%s", cmd);
	snprintf(last_reason, sizeof(last_reason), "%s", reason ? reason : "");
	last_rc = rc;
	last_at = time(NULL);
	pthread_mutex_unlock(&cmd_lock);
}

/*
 * @s as a JSON string that is valid UTF-8 whatever bytes it holds: a task
 * id, a command or a path may hold any byte but NUL and '/', and a strict
 * reader (Python's json) refuses the whole status over one bad byte.  Each
 * byte that does not start a well-formed sequence (RFC 3629: no overlong
 * form, surrogate or code point past U+10FFFF) becomes U+FFFD.
 */
static struct json_object *jstr(const char *s)
{
	size_t len = strlen(s), n = 0;
	struct json_object *o;
	char *buf = malloc(3 * len + 1);

	if (!buf)
		return NULL;
	for (size_t i = 0; i < len;) {
		size_t k = evl_utf8_prefix(s + i, len - i);

		memcpy(buf + n, s + i, k);
		n += k;
		i += k;
		if (i < len) {
			memcpy(buf + n, "\xef\xbf\xbd", 3);
			n += 3;
			i++;
		}
	}
	o = json_object_new_string_len(buf, n);
	free(buf);
	return o;
}

static void add_u64(struct json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_uint64(v));
}

char *status_json(struct fs *fs, size_t *len)
{
	struct json_object *o = json_object_new_object(), *c, *comp;
	struct evl_compact_status cs;
	struct evl_stats s;
	const char *text;
	char *out;

	evl_store_stats(fs->st, &s);
	c = json_object_new_object();
	add_u64(c, "tasks", s.tasks);
	add_u64(c, "events", s.events);
	add_u64(c, "types", s.types);
	add_u64(c, "log_bytes", s.log_bytes);
	add_u64(c, "index_bytes", s.index_bytes);
	add_u64(c, "journal_bytes", s.journal_bytes);
	add_u64(c, "pending_bytes", s.pending_bytes);
	add_u64(c, "pending_events", s.pending_events);
	add_u64(c, "held_bytes", s.held_bytes);
	json_object_object_add(o, "counts", c);
	json_object_object_add(o, "data_dir", jstr(fs->cfg->data_dir));
	json_object_object_add(o, "commit", jstr(s.commit_sync ? "sync" : "group"));
	add_u64(o, "commit_ms", s.commit_ms);
	json_object_object_add(o, "read_only", json_object_new_boolean(fs->cfg->ro));
	json_object_object_add(o, "nodelete", json_object_new_boolean(fs->cfg->nodelete));
	json_object_object_add(o, "journal_error",
			       s.error ? jstr(strerror(s.error)) : NULL);
	if (s.journal_lost || s.journal_damaged_segments) {
		struct json_object *d = json_object_new_object();
		char kept[64];

		add_u64(d, "lost_records", s.journal_lost);
		if (s.journal_lost) {
			add_u64(d, "first_lost_lsn", s.journal_lost_first);
			add_u64(d, "last_lost_lsn", s.journal_lost_last);
		}
		add_u64(d, "damaged_segments", s.journal_damaged_segments);
		snprintf(kept, sizeof(kept), "journal/%016llx.jnl.corrupt",
			 (unsigned long long)s.journal_damaged_first);
		json_object_object_add(d, "kept_as", jstr(kept));
		json_object_object_add(o, "journal_damage", d);
	} else {
		json_object_object_add(o, "journal_damage", NULL);
	}
	{
		/* damaged tasks this mount set aside (reads and appends EIO), and what it cost */
		struct json_object *d = json_object_new_array();

		for (const char *n = s.aside; *n; n += strlen(n) + 1)
			json_object_array_add(d, jstr(n));
		add_u64(o, "tasks_aside", s.tasks_aside);
		json_object_object_add(o, "aside", d);
		add_u64(o, "events_unapplied", s.events_unapplied);
		add_u64(o, "events_lost", s.events_lost);
		add_u64(o, "lines_unapplied", s.lines_unapplied);
		add_u64(o, "index_damage", s.index_damage);
	}
	comp = json_object_new_object();
	evl_compact_status(fs->st, &cs);
	json_object_object_add(comp, "state", jstr(cs.running ? "running" : "idle"));
	add_u64(comp, "runs", cs.runs_ok + cs.runs_failed);
	if (cs.running) {
		json_object_object_add(comp, "phase", jstr(cs.phase));
		add_u64(comp, "done", cs.done);
		add_u64(comp, "total", cs.total);
	}
	if (cs.have_last) {
		struct json_object *last = json_object_new_object();

		json_object_object_add(last, "result", jstr(cs.last_rc ? "error" : "ok"));
		if (cs.last_rc)
			json_object_object_add(last, "error", jstr(strerror(-cs.last_rc)));
		add_u64(last, "time", cs.last_time_s);
		json_object_object_add(last, "duration_s", json_object_new_double(cs.last_duration_s));
		add_u64(last, "tasks_expired", cs.last_tasks_expired);
		add_u64(last, "events_dropped", cs.last_events_dropped);
		add_u64(last, "bytes_reclaimed", cs.last_bytes_reclaimed);
		json_object_object_add(comp, "last", last);
	}
	json_object_object_add(o, "compaction", comp);
	add_u64(o, "rejected_writes", s.rejected_invalid + s.rejected_too_big + s.rejected_held +
		s.rejected_types);
	json_object_object_add(o, "last_rejection", s.last_rejection[0] ?
			       jstr(s.last_rejection) : NULL);
	pthread_mutex_lock(&cmd_lock);
	if (last_cmd[0]) {
		struct json_object *lc = json_object_new_object();

		json_object_object_add(lc, "command", jstr(last_cmd));
		json_object_object_add(lc, "result", jstr(
			last_rc ? "error" : "ok"));
		if (last_rc)
			json_object_object_add(lc, "error", jstr(last_reason));
		add_u64(lc, "time", last_at);
		json_object_object_add(o, "last_command", lc);
	}
	pthread_mutex_unlock(&cmd_lock);
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
					      JSON_C_TO_STRING_NOSLASHESCAPE);
	*len = strlen(text) + 1;
	out = malloc(*len + 1);
	if (out) {
		memcpy(out, text, *len - 1);
		out[*len - 1] = '\n';
		out[*len] = '\0';
	} else {
		*len = 0;
	}
	json_object_put(o);
	return out;
}

struct mbuf {
	char *p;
	size_t len, cap;
};

static void mprintf(struct mbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void mprintf(struct mbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if (b->p && b->len + n < b->cap) {
			b->len += n;
			return;
		}
		if (grow_bytes(&b->p, &b->cap, b->len + n + 1))
			return;
	}
}

static void metric(struct mbuf *b, const char *name, const char *type, const char *help, uint64_t v)
{
	mprintf(b, "# HELP evlogfs_%s %s\n# TYPE evlogfs_%s %s\nevlogfs_%s %llu\n", name, help,
		name, type, name, (unsigned long long)v);
}

char *metrics_text(struct fs *fs, size_t *len)
{
	struct mbuf b = { 0 };
	struct evl_compact_status cs;
	struct evl_stats s;
	uint64_t cum = 0;

	evl_store_stats(fs->st, &s);
	metric(&b, "appended_events_total", "counter", "Events appended.", s.appended_events);
	metric(&b, "appended_bytes_total", "counter", "Bytes of events appended.", s.appended_bytes);
	mprintf(&b, "# HELP evlogfs_rejected_writes_total Writes refused, by reason.\n"
		"# TYPE evlogfs_rejected_writes_total counter\n"
		"evlogfs_rejected_writes_total{reason=\"invalid\"} %llu\n"
		"evlogfs_rejected_writes_total{reason=\"too_big\"} %llu\n"
		"evlogfs_rejected_writes_total{reason=\"max_held\"} %llu\n"
		"evlogfs_rejected_writes_total{reason=\"max_types\"} %llu\n",
		(unsigned long long)s.rejected_invalid, (unsigned long long)s.rejected_too_big,
		(unsigned long long)s.rejected_held, (unsigned long long)s.rejected_types);
	mprintf(&b, "# HELP evlogfs_commit_latency_seconds Time for a write to be journaled "
		"(and synced with commit=sync).\n# TYPE evlogfs_commit_latency_seconds histogram\n");
	for (int i = 0; i < EVL_LAT_BUCKETS; i++) {
		cum += s.lat_count[i];
		if (i == EVL_LAT_BUCKETS - 1)
			mprintf(&b, "evlogfs_commit_latency_seconds_bucket{le=\"+Inf\"} %llu\n",
				(unsigned long long)cum);
		else
			mprintf(&b, "evlogfs_commit_latency_seconds_bucket{le=\"%g\"} %llu\n",
				evl_lat_bounds[i], (unsigned long long)cum);
	}
	mprintf(&b, "evlogfs_commit_latency_seconds_sum %.9f\n"
		"evlogfs_commit_latency_seconds_count %llu\n", s.lat_sum, (unsigned long long)cum);
	metric(&b, "journal_bytes", "gauge", "Bytes in journal segments.", s.journal_bytes);
	metric(&b, "pending_bytes", "gauge", "Journaled bytes not yet applied.", s.pending_bytes);
	metric(&b, "held_bytes", "gauge", "Bytes of unterminated lines open files hold.",
	       s.held_bytes);
	metric(&b, "tasks", "gauge", "Live tasks.", s.tasks);
	metric(&b, "types", "gauge", "Types with live events.", s.types);
	metric(&b, "events", "gauge", "Live events.", s.events);
	metric(&b, "log_bytes", "gauge", "Bytes in task logs.", s.log_bytes);
	metric(&b, "index_bytes", "gauge", "Bytes of the index file.", s.index_bytes);
	metric(&b, "journal_fsyncs_total", "counter", "Journal fsyncs.", s.fsyncs);
	metric(&b, "journal_lost_records", "gauge",
	       "Journal records found corrupt at mount and set aside (lost).", s.journal_lost);
	metric(&b, "journal_damaged_segments", "gauge",
	       "Journal segments found damaged at mount (kept as .corrupt).",
	       s.journal_damaged_segments);
	metric(&b, "checkpoints_total", "counter", "Checkpoints done.", s.checkpoints);
	metric(&b, "apply_failures_total", "counter",
	       "Journal batches the applier failed to apply (a full disk), retried.",
	       s.apply_failures);
	metric(&b, "tasks_aside", "gauge",
	       "Damaged tasks set aside (reads and appends get EIO) since the mount.",
	       s.tasks_aside);
	metric(&b, "events_unapplied_total", "counter",
	       "Acknowledged events of set-aside tasks put in their events.unapplied.",
	       s.events_unapplied);
	metric(&b, "lines_unapplied_total", "counter",
	       "Lines past a task's index no record vouched for, put in its events.unapplied at mount.",
	       s.lines_unapplied);
	metric(&b, "events_lost_total", "counter",
	       "Acknowledged events of set-aside tasks not even events.unapplied could take.",
	       s.events_lost);
	metric(&b, "index_damage_total", "counter",
	       "View reads refused because an index entry did not match its log (run evlogctl reindex).",
	       s.index_damage);
	evl_compact_status(fs->st, &cs);
	mprintf(&b, "# HELP evlogfs_compaction_runs_total Compactions finished, by result.\n"
		"# TYPE evlogfs_compaction_runs_total counter\n"
		"evlogfs_compaction_runs_total{result=\"ok\"} %llu\n"
		"evlogfs_compaction_runs_total{result=\"error\"} %llu\n"
		"# HELP evlogfs_compaction_duration_seconds_total Time spent compacting.\n"
		"# TYPE evlogfs_compaction_duration_seconds_total counter\n"
		"evlogfs_compaction_duration_seconds_total %.6f\n",
		(unsigned long long)cs.runs_ok, (unsigned long long)cs.runs_failed, cs.duration_sum_s);
	metric(&b, "compaction_reclaimed_bytes_total", "counter", "Disk bytes compaction freed.",
	       cs.bytes_reclaimed_total);
	metric(&b, "compaction_running", "gauge", "1 while a compaction runs.", cs.running);
	*len = b.len;
	return b.p;
}
