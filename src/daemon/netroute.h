/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_DAEMON_NETROUTE_H
#define BUNSHIN_DAEMON_NETROUTE_H

/*
 * What lets two tenants' networks share a subnet (docs/architecture.md,
 * "Overlapping subnets"): per network ID,
 *  - conntrack zone ID for what its bridge sends (original direction
 *    only), so two instances with one address and port are two
 *    connections; masquerade then gives each a public tuple of its own;
 *  - connection mark ID on what comes from its bridge or is forwarded
 *    into it; its packets carry it as their mark, and the policy rule
 *    "fwmark ID lookup NETR_TABLE_BASE + ID" (priority NETR_RULE_PRIO)
 *    finds a table that holds only "CIDR dev bn-ID": a reply goes back
 *    to the bridge its connection came from, not the main table's first
 *    connected route for the subnet;
 *  - DNS: its dnsmasq listens on the gateway at port NETR_DNS_PORT_BASE
 *    + ID (two dnsmasqs cannot both bind GATEWAY:53) and the gateway's
 *    port 53 is redirected there for packets from bn-ID only.
 * The pure parts (numbers) are here for firewall_rules.c; netroute.c
 * keeps the rules and tables.
 */
#include <stdint.h>

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../common/error.h"

#define NETR_RULE_PRIO	   31900u   /* below main's 32766; bunshind owns this priority */
#define NETR_TABLE_BASE	   1000000u /* tables NETR_TABLE_BASE + 1 .. + NETR_MAX_ID */
#define NETR_MAX_ID	   65535    /* conntrack zones are 16 bits */
#define NETR_DNS_PORT_BASE 20000    /* + ID: below the usual ephemeral range (32768) */
#define NETR_DNS_MAX_ID	   12767

/* Whether network id gets a zone, a mark and a table (ids past NETR_MAX_ID do not). */
static inline bool netr_routed(int64_t id)
{
	return id >= 1 && id <= NETR_MAX_ID;
}

static inline uint32_t netr_table(int64_t id)
{
	return NETR_TABLE_BASE + (uint32_t)id;
}

/* The port its dnsmasq answers DNS on; 0: none (the id is past NETR_DNS_MAX_ID). */
static inline int netr_dns_port(int64_t id)
{
	return id >= 1 && id <= NETR_DNS_MAX_ID ? NETR_DNS_PORT_BASE + (int)id : 0;
}

/* The network id in a bridge name "bn-ID"; 0 when it is not one. */
static inline int64_t netr_bridge_id(const char *bridge)
{
	char *end;
	long long id;

	if (!bridge || strncmp(bridge, "bn-", 3) || bridge[3] < '1' || bridge[3] > '9')
		return 0;
	errno = 0;
	id = strtoll(bridge + 3, &end, 10);
	return errno || *end ? 0 : id;
}

struct hostnet;
struct ipam_net;

/* Bridge bn-ID (just made) of network net: its rp_filter, rule and table. */
int netr_bridge_up(struct hostnet *hn, const char *bridge, const struct ipam_net *net,
		   struct error *err);
/* Network id is gone: its rule and table too (failures logged). */
void netr_network_gone(int64_t id);
/* At start-up: rules at NETR_RULE_PRIO of no network in nets removed, with their tables. */
void netr_reconcile(struct hostnet *hn, const json_t *nets);

#endif
