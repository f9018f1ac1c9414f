/*
 * readpool.c - threads that serve reads of task logs and views.
 *
 * A read of a view can take milliseconds (it walks the index and reads many
 * logs), and libfuse's workers are few: fifty processes looping `cat` on a
 * large view kept every worker busy, and an append waited in the kernel's
 * queue behind their reads (SPEC 4.7: reads never block appends).  So a
 * worker only queues a READ here and goes back to /dev/fuse at once; these
 * threads read and reply (the low-level API lets any thread reply).  Appends
 * and everything else stay on the workers, which are now never all busy
 * reading.
 *
 * Bounded: a queued read is one small job, and the kernel has at most one
 * READ outstanding per blocked reader thread, plus max_background for
 * asynchronous direct I/O; the buffers are allocated by the thread serving
 * the read, at most one per thread.  The threads run at a lower priority
 * (nice +READ_NICE), so that on a busy machine the workers, the applier and
 * the journal get the CPU first: reads wait for appends, not the reverse.
 *
 * Caveats: readpool_stop runs what is queued, then joins (it never cancels
 * a thread); call it once the session loop has ended and before the
 * handles and the store are closed.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "evlogfs.h"
#include "log.h"

#define READ_NICE 10

struct job {
	struct job *next;
	fuse_req_t req;
	readpool_fn *fn;
	void *arg;
	size_t size;
	off_t off;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;	/* all below */
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct job *head, *tail;
static bool stopping;
static pthread_t *threads;
static unsigned nthreads;

static void *reader_main(void *unused)
{
	int nice_now;

	/* this thread only (Linux nice values are per thread), relative to the daemon's */
	errno = 0;
	nice_now = getpriority(PRIO_PROCESS, gettid());
	if (!errno && setpriority(PRIO_PROCESS, gettid(),
				  nice_now + READ_NICE < 19 ? nice_now + READ_NICE : 19))
		evl_log(LOG_DEBUG, "reader thread: cannot lower its priority: %s", strerror(errno));
	pthread_mutex_lock(&lock);
	for (;;) {
		struct job *j = head;

		if (!j) {
			if (stopping)
				break;
			pthread_cond_wait(&cv, &lock);
			continue;
		}
		head = j->next;
		if (!head)
			tail = NULL;
		pthread_mutex_unlock(&lock);
		j->fn(j->req, j->arg, j->size, j->off);
		free(j);
		pthread_mutex_lock(&lock);
	}
	pthread_mutex_unlock(&lock);
	return NULL;
}

int readpool_start(unsigned n)
{
	int rc = 0;

	threads = calloc(n, sizeof(*threads));
	if (!threads)
		return -ENOMEM;
	stopping = false;
	for (nthreads = 0; nthreads < n; nthreads++) {
		rc = -pthread_create(&threads[nthreads], NULL, reader_main, NULL);
		if (rc)
			break;
	}
	if (rc && !nthreads) {
		free(threads);
		threads = NULL;
		return rc;
	}
	if (rc)
		evl_log(LOG_WARNING, "started %u of %u reader threads: %s", nthreads, n,
			strerror(-rc));
	return 0;
}

bool readpool_submit(fuse_req_t req, readpool_fn *fn, void *arg, size_t size, off_t off)
{
	struct job *j;

	if (!nthreads)
		return false;
	j = malloc(sizeof(*j));
	if (!j)
		return false;
	*j = (struct job){ NULL, req, fn, arg, size, off };
	pthread_mutex_lock(&lock);
	if (stopping) {
		pthread_mutex_unlock(&lock);
		free(j);
		return false;
	}
	if (tail)
		tail->next = j;
	else
		head = j;
	tail = j;
	pthread_cond_signal(&cv);
	pthread_mutex_unlock(&lock);
	return true;
}

void readpool_stop(void)
{
	pthread_mutex_lock(&lock);
	stopping = true;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&lock);
	for (unsigned i = 0; i < nthreads; i++)
		pthread_join(threads[i], NULL);
	free(threads);
	threads = NULL;
	nthreads = 0;
}
