/*
 * append_latency - one paced writer: appends a 200-byte event to FILE every
 * PACE_US microseconds for SECONDS, timing each write(), and prints
 * {"n":N,"p50":S,"p99":S,"max":S} (seconds).  Paced, not flat out, so the
 * figure is the latency an agent sees, not the throughput: a writer that
 * waits behind readers shows here.
 *
 * Usage: append_latency FILE SECONDS PACE_US
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	double secs, *lat, end;
	long pace_us, n = 0, cap;
	struct timespec next;
	char ev[256];
	int fd;

	if (argc != 4) {
		fprintf(stderr, "usage: append_latency FILE SECONDS PACE_US\n");
		return 2;
	}
	secs = atof(argv[2]);
	pace_us = atol(argv[3]);
	if (secs <= 0 || pace_us <= 0) {
		fprintf(stderr, "append_latency: SECONDS and PACE_US must be positive\n");
		return 2;
	}
	cap = (long)(secs * 1e6 / pace_us) + 16;
	lat = malloc(cap * sizeof(*lat));
	fd = open(argv[1], O_WRONLY | O_APPEND);
	if (!lat || fd < 0) {
		fprintf(stderr, "append_latency: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &next);
	end = now() + secs;
	while (n < cap && now() < end) {
		int len = snprintf(ev, sizeof(ev), "{\"type\":\"lat.w\",\"i\":%ld,\"pad\":\"%0*d\"}\n",
				   n, 160, 0);
		double t0 = now();

		if (write(fd, ev, len) != len) {
			fprintf(stderr, "append_latency: write: %s\n", strerror(errno));
			return 1;
		}
		lat[n++] = now() - t0;
		next.tv_nsec += pace_us * 1000;
		while (next.tv_nsec >= 1000000000) {
			next.tv_nsec -= 1000000000;
			next.tv_sec++;
		}
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
	}
	close(fd);
	qsort(lat, n, sizeof(*lat), cmp);
	printf("{\"n\":%ld,\"p50\":%.9f,\"p99\":%.9f,\"max\":%.9f}\n", n, lat[n / 2],
	       lat[n * 99 / 100], lat[n - 1]);
	free(lat);
	return 0;
}
