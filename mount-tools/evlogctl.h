/*
 * evlogctl.h - what evlogctl's command files share.
 */
#ifndef EVLOGCTL_H
#define EVLOGCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

enum { EXIT_OK = 0, EXIT_FOUND = 1, EXIT_ERROR = 2 };

extern const char *prog;

/* Print "evlogctl: ..." to stderr; returns EXIT_ERROR. */
int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The status JSON of the store mounted at @mnt, or NULL (the reason printed). */
struct json_object *read_status(const char *mnt);
/* Write @cmd to @mnt's control file.  0, or the errno (the daemon's reason printed). */
int send_command(const char *mnt, const char *cmd);
/* A member by dotted path ("compaction.state"), or NULL. */
struct json_object *get(struct json_object *o, const char *path);
uint64_t get_u64(struct json_object *o, const char *path);
const char *get_str(struct json_object *o, const char *path, const char *dflt);

/* @n bytes as "12.3 MiB". */
const char *human(uint64_t n, char *buf, size_t len);

/* Progress on stderr: a bar on a terminal, one line per phase otherwise. */
struct progress {
	bool tty;
	const char *what;	/* "compaction", "fsck", ... */
	char shown[32];
	bool shown_bar;
};
void progress_show(struct progress *p, const char *phase, uint64_t done, uint64_t total);
void progress_end(struct progress *p);

/* offline.c: the commands on a data directory */
int cmd_fsck(const char *dir, bool repair);
int cmd_reindex(const char *dir, const char *type_field);
int cmd_backup(const char *src, const char *dest);
int cmd_import(const char *dir, const char *src, bool skip_bad, const char *type_field);

#endif
