/*
 * fuzz_control.c - libFuzzer target: the parser of writes to .control.
 *
 * Checked on every input: the result is 0 or -EINVAL; a refusal has a
 * reason; the status text is printable and NUL-terminated; an accepted
 * command is "checkpoint" or "compact" with arguments that hold what the
 * parser promises (a valid task id, durations that cannot wrap); and
 * parsing the status text again gives the same command, so what the status
 * shows is what ran.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evlog.h"

#define check(c) do { if (!(c)) { fprintf(stderr, "fuzz_control: %s:%d: %s\n", \
	__FILE__, __LINE__, #c); abort(); } } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct evl_control c, again;
	char why[200];
	size_t tlen;
	int rc;

	memset(why, 0, sizeof(why));
	rc = evl_control_parse((const char *)data, size, &c, why, sizeof(why));
	check(rc == 0 || rc == -EINVAL);
	tlen = strnlen(c.text, sizeof(c.text));
	check(tlen < sizeof(c.text));
	for (size_t i = 0; i < tlen; i++)
		check(((unsigned char)c.text[i] >= ' ' || c.text[i] == '\t') && c.text[i] != 0x7f);
	if (rc) {
		check(why[0] && memchr(why, 0, sizeof(why)));
		return 0;
	}
	check(c.cmd == EVL_CONTROL_CHECKPOINT || c.cmd == EVL_CONTROL_COMPACT);
	if (c.cmd == EVL_CONTROL_COMPACT) {
		const struct evl_compact_args *a = &c.compact;

		check(!a->task[0] || evl_task_check_name(a->task, strlen(a->task)) == 0);
		/* durations fit an int64 of ns: no arithmetic on them wraps */
		check(a->expire_idle_s <= INT64_MAX / 1000000000);
		check(a->max_age_s <= INT64_MAX / 1000000000);
	}
	/* the text shown in the status parses to the same command */
	rc = evl_control_parse(c.text, tlen, &again, why, sizeof(why));
	check(rc == 0 && again.cmd == c.cmd && !memcmp(&again.compact, &c.compact, sizeof(c.compact)));
	return 0;
}
