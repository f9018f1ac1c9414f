/*
 * bench_store - builds and breaks stores for tests/bench/run, through the
 * core API (much faster than through a mount, and the store is the same).
 *
 *   gen DIR TASKS EVENTS MATCH_EVERY
 *       TASKS tasks t00000.. of EVENTS 200-byte events each, written 64 per
 *       write().  Event k of the store (k = task * EVENTS + i) has type
 *       "e.q.match" if k % MATCH_EVERY == 0, else "e.rare" if k % 1000 == 1,
 *       else one of 48 "e.kindNN" types.  Prints one JSON object: events,
 *       matches, rare, log_bytes, index_bytes, seconds.
 *   hold DIR N
 *       appends N events to task "held" and leaves them journaled but not
 *       applied (hold_apply), prints "ready" and waits to be killed: the
 *       state kill -9 leaves while the applier lags N events behind.
 *   scan TASKS_DIR PREFIX
 *       the no-index baseline: parse every line of every log with json-c,
 *       print the bytes of the events whose type starts with PREFIX.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "evlog.h"
#include "log.h"
#include "scan.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int event(char *buf, const char *type, long k)
{
	int n = snprintf(buf, 256, "{\"type\":\"%s\",\"k\":%ld,\"pad\":\"", type, k);

	memset(buf + n, 'p', 197 - n);
	memcpy(buf + 197, "\"}\n", 3);
	return 200;
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "bench_store: %s: %s\n", what, strerror(-rc));
	exit(1);
}

static uint64_t task(struct evl_store *st, const char *name)
{
	struct evl_task_info info;
	int rc = evl_task_create(st, name);

	if (rc && rc != -EEXIST)
		die("create", rc);
	rc = evl_task_lookup(st, name, &info);
	if (rc)
		die("lookup", rc);
	return info.uid;
}

static int gen(const char *dir, long ntasks, long nev, long every)
{
	struct evl_options o;
	struct evl_store *st;
	struct evl_stats s;
	long k = 0, matches = 0, rare = 0;
	double t0 = now();
	char buf[64 * 200], type[32];
	int rc;

	evl_options_default(&o);
	rc = evl_store_open(dir, &o, &st);
	if (rc)
		die(dir, rc);
	for (long t = 0; t < ntasks; t++) {
		struct evl_writer *w;
		char name[32];

		snprintf(name, sizeof(name), "t%05ld", t);
		rc = evl_writer_open(st, task(st, name), &w);
		if (rc)
			die("writer", rc);
		for (long i = 0; i < nev; i += 64) {
			int n = 0;

			for (long j = i; j < i + 64 && j < nev; j++, k++) {
				if (k % every == 0) {
					strcpy(type, "e.q.match");
					matches++;
				} else if (k % 1000 == 1) {
					strcpy(type, "e.rare");
					rare++;
				} else {
					snprintf(type, sizeof(type), "e.kind%02ld", k % 48);
				}
				n += event(buf + n, type, k);
			}
			rc = evl_writer_write(w, buf, n);
			if (rc)
				die("write", rc);
		}
		rc = evl_writer_close(w);
		if (rc)
			die("close", rc);
	}
	rc = evl_store_checkpoint(st);
	if (rc)
		die("checkpoint", rc);
	evl_store_stats(st, &s);
	rc = evl_store_close(st);
	if (rc)
		die("close", rc);
	printf("{\"events\":%ld,\"matches\":%ld,\"rare\":%ld,\"log_bytes\":%llu,"
	       "\"index_bytes\":%llu,\"seconds\":%.3f}\n", k, matches, rare,
	       (unsigned long long)s.log_bytes, (unsigned long long)s.index_bytes, now() - t0);
	return 0;
}

static _Noreturn void hold(const char *dir, long n)
{
	struct evl_options o;
	struct evl_store *st;
	struct evl_writer *w;
	char buf[64 * 200];
	uint64_t uid;
	int rc;

	evl_options_default(&o);
	rc = evl_store_open(dir, &o, &st);	/* creating a task needs the applier */
	if (rc)
		die(dir, rc);
	uid = task(st, "held");
	rc = evl_store_close(st);
	if (rc)
		die("close", rc);
	o.hold_apply = true;
	o.max_pending = (size_t)n * 256 + (64u << 20);
	rc = evl_store_open(dir, &o, &st);
	if (rc)
		die(dir, rc);
	rc = evl_writer_open(st, uid, &w);
	for (long i = 0; i < n && !rc; i += 64) {
		int len = 0;

		for (long j = i; j < i + 64 && j < n; j++)
			len += event(buf + len, "e.held", j);
		rc = evl_writer_write(w, buf, len);
	}
	if (!rc)
		rc = evl_writer_close(w);
	if (!rc)
		rc = evl_store_sync(st);	/* journaled and durable, not applied */
	if (rc)
		die("hold", rc);
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause();	/* until kill -9: nothing is applied or closed */
}

int main(int argc, char **argv)
{
	evl_log_set(NULL, LOG_WARNING);
	if (argc == 6 && !strcmp(argv[1], "gen"))
		return gen(argv[2], atol(argv[3]), atol(argv[4]), atol(argv[5]));
	if (argc == 4 && !strcmp(argv[1], "hold"))
		hold(argv[2], atol(argv[3]));
	if (argc == 4 && !strcmp(argv[1], "scan")) {
		printf("%ld\n", scan_parse(argv[2], argv[3], strlen(argv[3])));
		return 0;
	}
	fprintf(stderr, "usage: bench_store gen DIR TASKS EVENTS MATCH_EVERY\n"
		"       bench_store hold DIR N\n       bench_store scan TASKS_DIR PREFIX\n");
	return 2;
}
