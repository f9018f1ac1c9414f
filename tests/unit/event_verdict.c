/*
 * event_verdict - the event validator as a filter, for
 * tests/unit/event_differential.py.
 *
 * stdin: records of a 4-byte little-endian length and that many bytes (a
 * line, newline excluded).  stdout: one line per record, "ok HEX" (the type,
 * hex) or "err COL ERRNO".  With --cases, print the conformance set of
 * event_cases.h instead, one hex line each (seeds for the mutations).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "event.h"
#include "event_cases.h"

static void hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		printf("%02x", (unsigned char)s[i]);
}

int main(int argc, char **argv)
{
	struct event_validator *v;
	unsigned char hdr[4];
	size_t cap = 1 << 20;
	char *buf;

	if (argc > 1 && !strcmp(argv[1], "--cases")) {
		for (size_t i = 0; i < sizeof(event_cases) / sizeof(*event_cases); i++) {
			hex(event_cases[i].line, strlen(event_cases[i].line));
			putchar('\n');
		}
		return 0;
	}
	buf = malloc(cap);
	if (!buf || event_validator_new("type", cap + 1, &v))
		return 2;
	while (fread(hdr, 1, 4, stdin) == 4) {
		size_t n = get_le32(hdr);
		char type[EVENT_TYPE_MAX + 1];
		struct event_error err;
		size_t tlen;

		if (n > cap || fread(buf, 1, n, stdin) != n)
			return 2;
		if (event_validate(v, buf, n, type, &tlen, &err) == 0) {
			printf("ok ");
			hex(type, tlen);
			putchar('\n');
		} else {
			printf("err %zu %d\n", err.col, err.err);
		}
	}
	fflush(stdout);
	event_validator_free(v);
	free(buf);
	return 0;
}
