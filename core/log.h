/*
 * log.h - the one logging function of evlogfs.
 *
 * Messages are lowercase, name the problem first and carry the task or path:
 *   "rejected event: task t42 line 3 col 17: invalid JSON"
 * The sink defaults to stderr; the daemon may install syslog.  Thread-safe:
 * each message is formatted into one buffer and written with one call.
 */
#ifndef EVL_LOG_H
#define EVL_LOG_H

#include <stdarg.h>
#include <syslog.h>

typedef void (*evl_log_sink)(int prio, const char *msg);

void evl_log(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Install @sink (NULL: stderr) and drop messages above @max_prio. */
void evl_log_set(evl_log_sink sink, int max_prio);

#endif
