/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_DAEMON_FIREWALL_H
#define BUNSHIN_DAEMON_FIREWALL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "../common/error.h"

/*
 * bunshind's packet filter: two nftables tables it owns whole, `inet
 * bunshin` (egress NAT, isolation between tenants and from the host, port
 * forwards) and `bridge bunshin` (per-port anti-spoofing, decided on the
 * tap before the bridge forwards a frame to another tap, which the inet
 * hooks never see). What is per port or per forward lives in their named
 * sets and maps: creating or deleting an instance or a forward adds or
 * deletes a few elements in one nftables transaction. Both tables are
 * rebuilt whole from the store, in one transaction, at start-up, when a
 * network comes or goes, and whenever an element update fails.
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
/*
 * nft commands that add (add) or remove one port's elements (a port row
 * as above) or one forward's (a forward row), into *out (malloc'd).
 * Removing them is idempotent. -EINVAL when the row does not parse
 * (nothing written), -ENOMEM. Pure.
 */
int fw_port_elements(const json_t *port, bool add, char **out);
int fw_forward_elements(const json_t *fwd, bool add, char **out);

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
/*
 * Instance id's port (just made) into the tables, as the store has it
 * now: its elements, or a rebuild when its network is newer than the
 * last one (a tenant's default network, made with its first instance) or
 * when adding them fails (logged).
 */
void fw_port_added(const struct daemon *d, struct store *s, int64_t id);
/* Forward id of instance instance_id (just made) likewise. */
void fw_forward_added(const struct daemon *d, struct store *s, int64_t instance_id, int64_t id);
/*
 * What deleting instance_id (forward_id 0) or its forward forward_id will
 * take from the tables, read from the store before it is deleted; NULL
 * on a read error (fw_gone() then rebuilds instead).
 */
json_t *fw_rows(struct store *s, int64_t instance_id, int64_t forward_id);
/* After the deletion: rows' elements removed (and rows released); failures as fw_port_added(). */
void fw_gone(const struct daemon *d, struct store *s, json_t *rows);
/*
 * Before instance inst's VMM starts on its port: its elements known to be
 * in place (no nftables work), or added now; an error when the tables
 * cannot be made to hold them (the instance must not run unfiltered).
 */
int fw_port_ready(const struct daemon *d, const json_t *inst, struct error *err);
/* The drop counters' packets, in FW_REASONS order (zeros when the tables are not there). */
void fw_dropped(uint64_t out[FW_NREASONS]);

#endif
