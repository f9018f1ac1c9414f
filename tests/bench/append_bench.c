/*
 * append_bench - N writers, each appending M 200-byte events to DIR/w<i>/events
 * (O_APPEND), as agents do.  DIR is a plain directory, the tasks/ directory
 * of an evlogfs mount (mkdir creates the task) or a pass-through mount.
 * Prints events per second.
 *
 *   --chunk B   buffered writers: write() B bytes at a time, cutting lines
 *               wherever the chunk ends, as stdio and Python's buffered
 *               files do (default: one write() per event)
 *   --fsync     fdatasync after every write (the commit=sync baseline)
 *
 * Usage: append_bench [--chunk B] [--fsync] DIR WRITERS EVENTS_PER_WRITER
 */
#include <getopt.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct arg {
	char path[4096];
	long n;
	int id, rc;
};

static size_t chunk;
static bool fsync_each;

static int put(int fd, const char *buf, size_t n)
{
	while (n) {
		ssize_t w = write(fd, buf, n);

		if (w <= 0)
			return -1;
		buf += w;
		n -= w;
		if (fsync_each && fdatasync(fd))
			return -1;
	}
	return 0;
}

static void *writer(void *p)
{
	struct arg *a = p;
	char buf[256];
	int fd = open(a->path, O_WRONLY | O_APPEND | O_CREAT, 0644);

	if (fd < 0) {
		a->rc = errno;
		return NULL;
	}
	char *out = chunk ? malloc(chunk) : NULL;
	size_t held = 0;

	for (long i = 0; i < a->n && !a->rc; i++) {
		int k = snprintf(buf, sizeof(buf), "{\"type\":\"bench.t%ld\",\"w\":%d,\"i\":%ld,\"pad\":\"",
				 i % 50, a->id, i);

		memset(buf + k, 'p', 197 - k);
		memcpy(buf + 197, "\"}\n", 3);
		if (!chunk) {
			if (put(fd, buf, 200))
				a->rc = errno ? errno : EIO;
			continue;
		}
		for (size_t done = 0; done < 200 && !a->rc;) {
			size_t take = 200 - done < chunk - held ? 200 - done : chunk - held;

			memcpy(out + held, buf + done, take);
			held += take;
			done += take;
			if (held == chunk) {
				if (put(fd, out, held))
					a->rc = errno ? errno : EIO;
				held = 0;
			}
		}
	}
	if (held && !a->rc && put(fd, out, held))
		a->rc = errno ? errno : EIO;
	free(out);
	if (close(fd) && !a->rc)
		a->rc = errno;
	return NULL;
}

int main(int argc, char **argv)
{
	struct arg a[64];
	pthread_t th[64];
	struct timespec t0, t1;
	int n;
	long per;

	static const struct option longopts[] = {
		{ "chunk", required_argument, NULL, 'c' },
		{ "fsync", no_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "c:s", longopts, NULL)) != -1) {
		if (c == 'c')
			chunk = strtoul(optarg, NULL, 10);
		else if (c == 's')
			fsync_each = true;
		else
			return 2;
	}
	argc -= optind - 1;
	argv += optind - 1;
	if (argc != 4 || (n = atoi(argv[2])) < 1 || n > 64 || (per = atol(argv[3])) < 1 ||
	    chunk > (64u << 20)) {
		fprintf(stderr, "usage: append_bench [--chunk B] [--fsync] DIR WRITERS "
			"EVENTS_PER_WRITER\n");
		return 2;
	}
	for (int i = 0; i < n; i++) {
		char dir[4000];

		snprintf(dir, sizeof(dir), "%.3900s/w%d", argv[1], i);
		if (mkdir(dir, 0755) && errno != EEXIST) {
			perror(dir);
			return 1;
		}
		snprintf(a[i].path, sizeof(a[i].path), "%s/events", dir);
		a[i].n = per;
		a[i].id = i;
		a[i].rc = 0;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < n; i++)
		pthread_create(&th[i], NULL, writer, &a[i]);
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	for (int i = 0; i < n; i++)
		if (a[i].rc) {
			fprintf(stderr, "append_bench: writer %d: %s\n", i, strerror(a[i].rc));
			return 1;
		}
	printf("%.0f\n", n * per / (t1.tv_sec - t0.tv_sec + (t1.tv_nsec - t0.tv_nsec) / 1e9));
	return 0;
}
