// SPDX-License-Identifier: MIT
/* bunshin server expose, unexpose and forwards: a server's port forwards. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *const forward_cols[] = {"id", "proto", "host_port", "guest_port", NULL};

/* "PORT" (1 to 65535) at s, up to a byte in stops; its end in *end. */
static long cli_fwd_port(const char *s, const char *stops, const char **end)
{
	char *e;
	long v;

	if (*s < '0' || *s > '9')
		return -1;
	v = strtol(s, &e, 10);
	if (v < 1 || v > 65535 || (*e && !strchr(stops, *e)))
		return -1;
	*end = e;
	return v;
}

/* "/tcp" or "/udp" or nothing (tcp). */
static const char *cli_fwd_proto(const char *s)
{
	if (!*s)
		return "tcp";
	if (!strcmp(s, "/tcp"))
		return "tcp";
	if (!strcmp(s, "/udp"))
		return "udp";
	return NULL;
}

int cli_server_expose(struct cli *c)
{
	const char *end, *proto;
	long host = cli_fwd_port(c->pos[1], ":", &end), guest = -1;
	char path[512];

	if (host > 0 && *end == ':')
		guest = cli_fwd_port(end + 1, "/", &end);
	proto = guest > 0 ? cli_fwd_proto(end) : NULL;
	if (!proto)
		return cli_usage_error("server expose: '%s' is not HOST_PORT:GUEST_PORT[/tcp|/udp]",
				       c->pos[1]);
	cli_path(path, sizeof(path), "/v1/instances/", c->pos[0], "/forwards");
	return cli_send(c, "POST", path,
			json_pack("{s:i, s:i, s:s}", "host_port", (int)host, "guest_port",
				  (int)guest, "proto", proto),
			NULL);
}

int cli_server_forwards(struct cli *c)
{
	char path[512];
	json_t *out = NULL;
	int ret;

	cli_path(path, sizeof(path), "/v1/instances/", c->pos[0], "/forwards");
	ret = cli_call(c, "GET", path, NULL, &out, NULL);
	if (!ret)
		cli_print(c, out, forward_cols);
	json_decref(out);
	return ret;
}

int cli_server_unexpose(struct cli *c)
{
	const char *end, *proto;
	long host = cli_fwd_port(c->pos[1], "/", &end);
	char path[512], del[600];
	json_t *out = NULL, *f;
	long long id = 0;
	size_t i;
	int ret;

	proto = host > 0 ? cli_fwd_proto(end) : NULL;
	if (!proto)
		return cli_usage_error("server unexpose: '%s' is not HOST_PORT[/tcp|/udp]",
				       c->pos[1]);
	cli_path(path, sizeof(path), "/v1/instances/", c->pos[0], "/forwards");
	if ((ret = cli_call(c, "GET", path, NULL, &out, NULL)))
		return ret;
	json_array_foreach(out, i, f)
	{
		if (json_integer_value(json_object_get(f, "host_port")) == host &&
		    !strcmp(json_string_value(json_object_get(f, "proto")) ?: "", proto))
			id = json_integer_value(json_object_get(f, "id"));
	}
	json_decref(out);
	if (!id) {
		fprintf(stderr, "bunshin: %s forwards no host port %ld/%s\n", c->pos[0], host,
			proto);
		return CLI_NOT_FOUND;
	}
	snprintf(del, sizeof(del), "%s/%lld", path, id);
	return cli_call(c, "DELETE", del, NULL, NULL, NULL);
}
