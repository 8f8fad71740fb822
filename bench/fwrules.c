// SPDX-License-Identifier: MIT
/*
 * bench/fwrules.c: prints the nftables ruleset bunshind's firewall
 * (src/daemon/firewall_rules.c) makes for one network and its ports, so
 * that a benchmark building an instance's path by hand (bench/instnet.sh)
 * measures the very rules bunshind loads, not a copy that drifts from them.
 *
 *   fwrules NETWORK_ID TENANT_ID CIDR INSTANCE_ID,MAC,IP ...
 *
 * The network's bridge is bn-NETWORK_ID and each port's tap bt-INSTANCE_ID,
 * as bunshind names them. Exit status 2 on bad arguments.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "firewall.h"

static int fwrules_usage(void)
{
	fprintf(stderr, "usage: fwrules NETWORK_ID TENANT_ID CIDR INSTANCE_ID,MAC,IP ...\n");
	return 2;
}

/* INSTANCE_ID,MAC,IP as a port row of network bridge; NULL when it does not parse. */
static json_t *fwrules_port(const char *arg, const char *bridge)
{
	char id[24], mac[24], ip[24];

	if (sscanf(arg, "%23[0-9],%23[0-9a-fA-F:],%23[0-9.]", id, mac, ip) != 3)
		return NULL;
	return json_pack("{s:I, s:s, s:s, s:s}", "instance_id", (json_int_t)atoll(id), "bridge",
			 bridge, "mac", mac, "ip", ip);
}

int main(int argc, char **argv)
{
	json_t *nets, *ports = json_array(), *fwds = json_array(), *p;
	char bridge[24];
	int skipped = 0;
	char *text;

	if (argc < 4 || atoll(argv[1]) <= 0 || atoll(argv[2]) <= 0)
		return fwrules_usage();
	snprintf(bridge, sizeof(bridge), "bn-%lld", atoll(argv[1]));
	nets = json_pack("[{s:I, s:I, s:s, s:s, s:I}]", "id", (json_int_t)atoll(argv[1]),
			 "tenant_id", (json_int_t)atoll(argv[2]), "bridge", bridge, "cidr", argv[3],
			 "isolated", (json_int_t)0);
	for (int i = 4; i < argc; i++) {
		p = fwrules_port(argv[i], bridge);
		if (!p)
			return fwrules_usage();
		json_array_append_new(ports, p);
	}
	text = fw_ruleset(nets, ports, fwds, &skipped);
	if (!text || skipped) {
		fprintf(stderr, "fwrules: %s\n", text ? "a row did not parse" : "out of memory");
		return 1;
	}
	fputs(text, stdout);
	free(text);
	json_decref(nets);
	json_decref(ports);
	json_decref(fwds);
	return 0;
}
