/*
 * scan.c - the baseline a store without an index pays per query: read
 * every task log and parse every line with json-c (strict, UTF-8), keeping
 * the events whose type starts with a prefix.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "scan.h"

long scan_parse(const char *tasks_dir, const char *prefix, size_t plen)
{
	struct json_tokener *tok = json_tokener_new();
	DIR *d = opendir(tasks_dir);
	struct dirent *de;
	char path[4608], *line = NULL;
	size_t cap = 0;
	long matched = 0;

	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	while ((de = readdir(d))) {
		FILE *f;
		ssize_t n;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/events", tasks_dir, de->d_name);
		f = fopen(path, "r");
		while ((n = getline(&line, &cap, f)) > 0) {
			struct json_object *o, *t;

			json_tokener_reset(tok);
			o = json_tokener_parse_ex(tok, line, n);
			if (o && json_object_object_get_ex(o, "type", &t) &&
			    !strncmp(json_object_get_string(t), prefix, plen))
				matched += n;
			json_object_put(o);
		}
		fclose(f);
	}
	closedir(d);
	free(line);
	json_tokener_free(tok);
	return matched;
}

