// SPDX-License-Identifier: MIT
/* bunshin quota move, and image import's --initrd. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

int cli_quota_move(struct cli *c)
{
	const char *from = cli_opt(c, "from"), *to = cli_opt(c, "to");
	json_t *body;
	int ret;

	if (!from || !to)
		return cli_usage_error("quota move: --from and --to are required");
	body = json_pack("{s:s, s:s}", "from", from, "to", to);
	if ((ret = cli_int_field(c, body, "instances", "instances")) ||
	    (ret = cli_int_field(c, body, "vcpus", "vcpus")) ||
	    (ret = cli_int_field(c, body, "ram", "ram_mib"))) {
		json_decref(body);
		return ret;
	}
	if (json_object_size(body) == 2) {
		json_decref(body);
		return cli_usage_error("quota move: give --instances, --vcpus or --ram");
	}
	return cli_send(c, "POST", "/v1/quotas/move", body, NULL);
}

int cli_image_initrd_field(struct cli *c, json_t *body)
{
	char abs[PATH_MAX];

	if (!realpath(cli_opt(c, "initrd"), abs)) {
		fprintf(stderr, "bunshin: --initrd %s: no such file\n", cli_opt(c, "initrd"));
		json_decref(body);
		return CLI_USAGE;
	}
	json_object_set_new(body, "initrd", json_string(abs));
	return 0;
}
