/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_DAEMON_FIREWALL_H
#define BUNSHIN_DAEMON_FIREWALL_H

#include <jansson.h>
#include <stdint.h>

#include "../common/error.h"

/*
 * bunshind's packet filter: two nftables tables it owns whole, `inet
 * bunshin` (egress NAT, isolation between tenants and from the host, port
 * forwards) and `bridge bunshin` (per-port anti-spoofing, decided on the
 * tap before the bridge forwards a frame to another tap, which the inet
 * hooks never see). Both are rebuilt from the store and replaced in one
 * nftables transaction on every change: there is no incremental state to
 * drift from the store's.
 */

/* Why a drop counter counted: the reason label of bunshin_firewall_dropped_total. */
#define FW_REASONS                                                                                 \
	{                                                                                          \
		"spoof", "ipv6", "tenant", "host", "isolated", "inbound"                           \
	}
#define FW_NREASONS 6

/*
 * The whole ruleset as nft(8) text, from store rows: networks (id,
 * tenant_id, bridge, cidr, isolated), ports (instance_id, tenant_id,
 * bridge, mac, ip) and forwards (proto, host_port, guest_port, ip,
 * bridge), as network_list, port_list and forward_list give them. Rows
 * that do not parse are left out (and counted in *skipped): a port left
 * out has its tap dropped whole. Pure: no I/O. Malloc'd; NULL on ENOMEM.
 */
char *fw_ruleset(const json_t *nets, const json_t *ports, const json_t *fwds, int *skipped);

struct daemon;
struct store;

/*
 * Rebuilds the tables at start-up (the reconciliation). While at least
 * one network exists, IPv4 forwarding is on in bunshind's network
 * namespace (turned on, and logged, at the first sync that finds one);
 * with none, the tables are removed and nothing else is touched.
 */
int fw_begin(const struct daemon *d, struct error *err);
/*
 * Rebuilds the tables from the store, with s or (NULL) a connection of
 * the pool; concurrent calls are serialised, each reads the store anew.
 */
int fw_sync(const struct daemon *d, struct store *s, struct error *err);
/* fw_sync() after a change, its failure logged (the change itself stands). */
void fw_changed(const struct daemon *d, struct store *s);
/* The drop counters' packets, in FW_REASONS order (zeros when the tables are not there). */
void fw_dropped(uint64_t out[FW_NREASONS]);

#endif
