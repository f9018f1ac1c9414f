/*
 * append_bench - N writers, each appending M 200-byte events to DIR/w<i>/events,
 * one write() per event (O_APPEND), as agents do.  DIR is a plain directory
 * or the tasks/ directory of an evlogfs mount (mkdir creates the task).
 * Prints events per second.
 * Usage: append_bench DIR WRITERS EVENTS_PER_WRITER
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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

static void *writer(void *p)
{
	struct arg *a = p;
	char buf[256];
	int fd = open(a->path, O_WRONLY | O_APPEND | O_CREAT, 0644);

	if (fd < 0) {
		a->rc = errno;
		return NULL;
	}
	for (long i = 0; i < a->n; i++) {
		int k = snprintf(buf, sizeof(buf), "{\"type\":\"bench.t%ld\",\"w\":%d,\"i\":%ld,\"pad\":\"",
				 i % 50, a->id, i);

		memset(buf + k, 'p', 197 - k);
		memcpy(buf + 197, "\"}\n", 3);
		if (write(fd, buf, 200) != 200) {
			a->rc = errno ? errno : EIO;
			break;
		}
	}
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

	if (argc != 4 || (n = atoi(argv[2])) < 1 || n > 64 || (per = atol(argv[3])) < 1) {
		fprintf(stderr, "usage: append_bench DIR WRITERS EVENTS_PER_WRITER\n");
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
