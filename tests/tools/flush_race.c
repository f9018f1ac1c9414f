/*
 * flush_race - close(2) races on one open events file, for the mount tests.
 *
 * FUSE sends FLUSH for every close of any descriptor of an open file, with
 * no lock against WRITEs and other FLUSHes of that file.  Each mode makes
 * many such closes race with each other and with writes:
 *
 *   flush_race fork EVENTS ROUNDS
 *       each round: open, write {"type":"d","r":N} without a newline, fork
 *       8 children holding the descriptor that _exit(0) together while the
 *       parent closes it.  The log must hold each round's event once.
 *   flush_race dup-halves EVENTS LINES
 *       one thread writes each line {"type":"h","r":N,"x":1} in two
 *       halves while two threads loop close(dup(fd)).  Every write must
 *       succeed; the log must hold each line once, in order.
 *   flush_race dup-valid EVENTS LINES
 *       the same with {"type":"v","r":N} and its newline written apart: a
 *       valid held line may be stored by any of the closes, once.
 *
 * Exit 0 when every write() and the writer's own close() succeeded (the
 * closes of dups may fail with EINVAL while half a line is held), else 1
 * with the reason on stderr.  The caller checks the log.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHILDREN 8

static const char *path;
static int fd;
static atomic_bool done;

static int write_all(int f, const char *buf, size_t n)
{
	while (n) {
		ssize_t w = write(f, buf, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += w;
		n -= w;
	}
	return 0;
}

static int fork_rounds(long rounds)
{
	for (long r = 0; r < rounds; r++) {
		pid_t kids[CHILDREN];
		int go[2], f, rc;
		char line[64];
		char c;

		f = open(path, O_WRONLY | O_APPEND);
		if (f < 0 || pipe(go)) {
			perror("flush_race: open");
			return 1;
		}
		snprintf(line, sizeof(line), "{\"type\":\"d\",\"r\":%ld}", r);
		if (write_all(f, line, strlen(line))) {
			fprintf(stderr, "flush_race: round %ld: write: %s\n", r, strerror(errno));
			return 1;
		}
		for (int i = 0; i < CHILDREN; i++) {
			kids[i] = fork();
			if (kids[i] < 0) {
				perror("flush_race: fork");
				return 1;
			}
			if (kids[i] == 0) {
				close(go[1]);
				/* all wait here, then exit together: 8 FLUSHes at once */
				if (read(go[0], &c, 1) < 0)
					_exit(2);
				_exit(0);
			}
		}
		close(go[0]);
		close(go[1]);	/* releases the children */
		rc = close(f);
		if (rc) {
			fprintf(stderr, "flush_race: round %ld: close: %s\n", r, strerror(errno));
			return 1;
		}
		for (int i = 0; i < CHILDREN; i++) {
			int status;

			if (waitpid(kids[i], &status, 0) != kids[i] || !WIFEXITED(status) ||
			    WEXITSTATUS(status)) {
				fprintf(stderr, "flush_race: round %ld: a child failed\n", r);
				return 1;
			}
		}
	}
	return 0;
}

static void *closer(void *arg)
{
	while (!atomic_load(&done)) {
		int d = dup(fd);

		if (d < 0) {
			perror("flush_race: dup");
			exit(1);
		}
		close(d);	/* EINVAL while half a line is held: fine */
	}
	return NULL;
}

static int dup_lines(long lines, bool halves)
{
	pthread_t th[2];
	int rc = 0;

	fd = open(path, O_WRONLY | O_APPEND);
	if (fd < 0) {
		perror("flush_race: open");
		return 1;
	}
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, closer, NULL);
	for (long r = 0; r < lines && !rc; r++) {
		char a[64], b[16];

		if (halves) {
			snprintf(a, sizeof(a), "{\"type\":\"h\",\"r\":%ld,", r);
			snprintf(b, sizeof(b), "\"x\":1}\n");
		} else {
			snprintf(a, sizeof(a), "{\"type\":\"v\",\"r\":%ld}", r);
			snprintf(b, sizeof(b), "\n");
		}
		if (write_all(fd, a, strlen(a)) || write_all(fd, b, strlen(b))) {
			fprintf(stderr, "flush_race: line %ld: write: %s\n", r, strerror(errno));
			rc = 1;
		}
	}
	atomic_store(&done, true);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	if (close(fd)) {
		fprintf(stderr, "flush_race: close: %s\n", strerror(errno));
		rc = 1;
	}
	return rc;
}

int main(int argc, char **argv)
{
	long n;

	if (argc != 4) {
		fprintf(stderr, "usage: flush_race fork|dup-halves|dup-valid EVENTS N\n");
		return 2;
	}
	path = argv[2];
	n = atol(argv[3]);
	if (!strcmp(argv[1], "fork"))
		return fork_rounds(n);
	if (!strcmp(argv[1], "dup-halves"))
		return dup_lines(n, true);
	if (!strcmp(argv[1], "dup-valid"))
		return dup_lines(n, false);
	fprintf(stderr, "flush_race: unknown mode %s\n", argv[1]);
	return 2;
}
