/*
 * ctl_util.c - what evlogctl's commands share: messages, the control file
 * of a mount, its status JSON, human sizes, progress.  A library of its own
 * so that tests drive the offline commands (offline.c) without a process
 * per command.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "evlogctl.h"

const char *prog = "evlogctl";

int fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_ERROR;
}

/* ---- talking to a mount ---- */

static void control_path(const char *mnt, char *buf, size_t n)
{
	snprintf(buf, n, "%s/.control", mnt);
}

/* The status JSON of @mnt, or NULL (the reason printed). */
struct json_object *read_status(const char *mnt)
{
	char path[4200], buf[1 << 16];
	struct json_object *o;
	ssize_t n, len = 0;
	int fd, err;

	control_path(mnt, path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fail("%s: %s (is an evlogfs store mounted there?)", path, strerror(errno));
		return NULL;
	}
	while ((n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += n;
	err = errno;	/* the read's, before close can change it */
	close(fd);
	if (n < 0) {
		fail("%s: %s", path, strerror(err));
		return NULL;
	}
	buf[len] = '\0';
	o = json_tokener_parse(buf);
	if (!o || !json_object_is_type(o, json_type_object)) {
		fail("%s: not an evlogfs status", path);
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* Write @cmd to @mnt's control file.  0, or the errno (the daemon's reason printed). */
int send_command(const char *mnt, const char *cmd)
{
	char path[4200];
	int fd, err = 0;

	control_path(mnt, path, sizeof(path));
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	if (write(fd, cmd, strlen(cmd)) < 0)
		err = errno;
	close(fd);
	if (err) {
		struct json_object *st = read_status(mnt), *lc, *why;

		if (st && json_object_object_get_ex(st, "last_command", &lc) &&
		    json_object_object_get_ex(lc, "error", &why))
			fprintf(stderr, "%s: %s: %s\n", prog, cmd, json_object_get_string(why));
		json_object_put(st);
	}
	return err;
}

struct json_object *get(struct json_object *o, const char *path)
{
	char key[64];

	while (o && *path) {
		size_t n = strcspn(path, ".");

		snprintf(key, sizeof(key), "%.*s", (int)n, path);
		if (!json_object_object_get_ex(o, key, &o))
			return NULL;
		path += n + (path[n] == '.');
	}
	return o;
}

uint64_t get_u64(struct json_object *o, const char *path)
{
	return (uint64_t)json_object_get_int64(get(o, path));
}

const char *get_str(struct json_object *o, const char *path, const char *dflt)
{
	struct json_object *v = get(o, path);

	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : dflt;
}

/* ---- human output ---- */

const char *human(uint64_t n, char *buf, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = n;
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)n);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
	return buf;
}

/* Progress on stderr: a bar on a terminal, a line per phase otherwise. */
void progress_show(struct progress *p, const char *phase, uint64_t done, uint64_t total)
{
	if (p->tty) {
		int width = 30, fill = total ? (int)(done * width / total) : 0;

		if (fill > width)
			fill = width;
		fprintf(stderr, "\r%-10s [%.*s%*s] %llu/%llu", phase, fill,
			"##############################", width - fill, "",
			(unsigned long long)done, (unsigned long long)total);
		p->shown_bar = true;
	} else if (strcmp(p->shown, phase)) {
		fprintf(stderr, "%s: %s: %s\n", prog, p->what, phase);
	}
	snprintf(p->shown, sizeof(p->shown), "%s", phase);
}

/* End the bar's line before other output. */
void progress_end(struct progress *p)
{
	if (p->tty && p->shown_bar)
		fputc('\n', stderr);
	p->shown_bar = false;
}
