/*
 * log.c - formatting and the default stderr sink.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static evl_log_sink log_sink;
static int log_max = LOG_INFO;

static void stderr_sink(int prio, const char *msg)
{
	static const char *const names[] = {
		"emerg", "alert", "crit", "error", "warning", "notice", "info", "debug"
	};
	char line[1200];
	int n = snprintf(line, sizeof(line), "evlogfs: %s: %s\n",
			 names[prio & 7], msg);

	if (n > (int)sizeof(line) - 1)
		n = sizeof(line) - 1;
	if (write(STDERR_FILENO, line, n) < 0)
		return;	/* nowhere left to report it */
}

void evl_log_set(evl_log_sink sink, int max_prio)
{
	log_sink = sink;
	log_max = max_prio;
}

void evl_log(int prio, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if ((prio & 7) > log_max)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	(log_sink ? log_sink : stderr_sink)(prio & 7, msg);
}
