// SPDX-License-Identifier: MIT
/* bunshin server reboot, resize and rebuild. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* The answer printed; *state the instance's state in it (or ""). */
static int cli_life_post(struct cli *c, const char *verb, json_t *body, char *state, size_t size)
{
	char path[512];
	json_t *out = NULL;
	int ret;

	cli_path(path, sizeof(path), "/v1/instances/", c->pos[0], verb);
	ret = cli_call(c, "POST", path, body, &out, NULL);
	snprintf(state, size, "%s", json_string_value(json_object_get(out, "state")) ?: "");
	if (!ret)
		cli_print(c, out, NULL);
	json_decref(out);
	return ret;
}

int cli_server_reboot(struct cli *c)
{
	bool hard = cli_opt(c, "hard") != NULL;
	char state[32];
	int secs, ret;

	if ((ret = cli_wait_secs(c, &secs)))
		return ret;
	ret = cli_life_post(c, "/reboot", json_pack("{s:b}", "hard", hard), state, sizeof(state));
	/* A soft reboot happens inside the guest: there is no state to wait for. */
	if (!ret && hard && cli_opt(c, "wait"))
		ret = cli_wait(c, c->pos[0], "running", secs);
	return ret;
}

int cli_server_resize(struct cli *c)
{
	char state[32];
	int secs, ret;

	if ((ret = cli_wait_secs(c, &secs)))
		return ret;
	ret = cli_life_post(c, "/resize", json_pack("{s:s}", "flavor", c->pos[1]), state,
			    sizeof(state));
	/* A running server was stopped to be started again; a stopped one is done. */
	if (!ret && cli_opt(c, "wait") && strcmp(state, "stopped") && strcmp(state, "error"))
		ret = cli_wait(c, c->pos[0], "running", secs);
	return ret;
}

int cli_server_rebuild(struct cli *c)
{
	const char *image = cli_opt(c, "image");
	char state[32];

	return cli_life_post(c, "/rebuild",
			     image ? json_pack("{s:s}", "image", image) : json_object(), state,
			     sizeof(state));
}

/*
 * Asks bunshind again and again for the log past what it printed; each
 * answer waits up to a second for more, so this is not a busy loop.
 */
int cli_server_console_follow(struct cli *c)
{
	char base[512], path[600];
	long long next = 0;

	cli_path(base, sizeof(base), "/v1/instances/", c->pos[0], "/console?follow=1");
	for (;;) {
		json_t *out = NULL;
		const char *text;
		int ret;

		snprintf(path, sizeof(path), "%s&offset=%lld", base, next);
		if ((ret = cli_call(c, "GET", path, NULL, &out, NULL)))
			return ret;
		text = json_string_value(json_object_get(out, "text"));
		if (json_is_true(json_object_get(out, "reset")))
			fputs("\n--- the console log started again ---\n", stdout);
		if (text && *text) {
			fputs(text, stdout);
			fflush(stdout);
		} else {
			usleep(200000); /* no log yet: that answer does not wait */
		}
		next = (long long)json_integer_value(json_object_get(out, "next"));
		json_decref(out);
	}
}
