// SPDX-License-Identifier: MIT
/* bunshin server clone: N copy-on-write copies of a running server. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *const clone_cols[] = {"id", "name", "state", "cloned_from", "error", NULL};

/* The request's body from --count and --name-prefix; NULL after a usage error. */
static json_t *cli_clone_body(struct cli *c, int *ret)
{
	const char *count = cli_opt(c, "count"), *prefix = cli_opt(c, "name-prefix");
	json_t *body = json_object();
	char *end;
	long long n;

	*ret = 0;
	if (count) {
		n = strtoll(count, &end, 10);
		if (!*count || *end || n < 1) {
			json_decref(body);
			*ret = cli_usage_error("--count: '%s' is not a number of 1 or more", count);
			return NULL;
		}
		json_object_set_new(body, "count", json_integer(n));
	}
	if (prefix)
		json_object_set_new(body, "name_prefix", json_string(prefix));
	return body;
}

/* --wait: each clone running, one after the other (they boot at once). */
static int cli_clone_wait(struct cli *c, const json_t *clones, int secs)
{
	const json_t *cl;
	size_t i;
	int ret = 0;

	json_array_foreach(clones, i, cl)
	{
		const char *name = json_string_value(json_object_get(cl, "name"));

		if (name && (ret = cli_wait(c, name, "running", secs)))
			return ret;
	}
	return ret;
}

int cli_server_clone(struct cli *c)
{
	char path[512];
	json_t *body, *out = NULL, *clones;
	int secs, ret;

	if ((ret = cli_wait_secs(c, &secs)) || !(body = cli_clone_body(c, &ret)))
		return ret;
	cli_path(path, sizeof(path), "/v1/instances/", c->pos[0], "/clone");
	ret = cli_call(c, "POST", path, body, &out, NULL);
	if (ret)
		return ret;
	clones = json_object_get(out, "clones");
	cli_print(c, c->json ? out : clones, c->json ? NULL : clone_cols);
	if (cli_opt(c, "wait"))
		ret = cli_clone_wait(c, clones, secs);
	json_decref(out);
	return ret;
}
