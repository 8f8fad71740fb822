// SPDX-License-Identifier: MIT
/* bunshin server image: a raw image of a server's disk as it is now. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define CLI_IMAGE_POLL_US 250000

static double cli_image_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Why the image is gone: the server's newest "image" audit entry about it. */
static void cli_image_why(struct cli *c, const char *server, const char *name)
{
	char path[512], prefix[128];
	json_t *events = NULL, *e;
	size_t i;

	snprintf(prefix, sizeof(prefix), "image %s ", name);
	cli_path(path, sizeof(path), "/v1/instances/", server, "/events?limit=50");
	if (cli_call(c, "GET", path, NULL, &events, NULL))
		return;
	json_array_foreach(events, i, e)
	{
		const char *action = json_string_value(json_object_get(e, "action"));
		const char *result = json_string_value(json_object_get(e, "result"));

		if (action && result && !strcmp(action, "image") &&
		    !strncmp(result, prefix, strlen(prefix))) {
			fprintf(stderr, "bunshin: %s\n", result);
			break;
		}
	}
	json_decref(events);
}

/* --wait: polls the image until it is active (dots on a terminal); gone means it failed. */
static int cli_image_wait(struct cli *c, const char *server, const char *name, int secs)
{
	bool tty = isatty(2);
	double t0 = cli_image_now();
	char path[512];
	int ret;

	cli_path(path, sizeof(path), "/v1/images/", name, NULL);
	for (;;) {
		json_t *im = NULL;
		const char *status;
		bool done;

		ret = cli_call(c, "GET", path, NULL, &im, NULL);
		if (ret) {
			if (tty)
				fputc('\n', stderr);
			if (ret == CLI_NOT_FOUND)
				cli_image_why(c, server, name);
			return ret;
		}
		status = json_string_value(json_object_get(im, "status"));
		done = status && !strcmp(status, "active");
		json_decref(im);
		if (done) {
			if (tty)
				fprintf(stderr, " active after %.1fs\n", cli_image_now() - t0);
			return CLI_OK;
		}
		if (cli_image_now() - t0 > secs) {
			if (tty)
				fputc('\n', stderr);
			fprintf(stderr, "bunshin: image %s: still saving after %d s\n", name, secs);
			return CLI_TIMEOUT;
		}
		if (tty)
			fputc('.', stderr);
		usleep(CLI_IMAGE_POLL_US);
	}
}

int cli_server_image(struct cli *c)
{
	char path[512];
	json_t *out = NULL;
	int secs, ret;

	if ((ret = cli_wait_secs(c, &secs)))
		return ret;
	cli_path(path, sizeof(path), "/v1/instances/", c->pos[0], "/image");
	ret = cli_call(c, "POST", path, json_pack("{s:s}", "name", c->pos[1]), &out, NULL);
	if (ret)
		return ret;
	cli_print(c, out, NULL);
	json_decref(out);
	if (cli_opt(c, "wait"))
		ret = cli_image_wait(c, c->pos[0], c->pos[1], secs);
	return ret;
}
