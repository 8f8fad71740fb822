/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_HOSTNET_ROUTE_H
#define BUNSHIN_HOSTNET_ROUTE_H

/*
 * Policy routing for networks whose subnets overlap (rule.c, route.c):
 * "fwmark MARK lookup TABLE" rules at a priority of the caller's choosing
 * and routes in those tables, over rtnetlink (libnl-3-route), in the
 * namespace of the struct hostnet. IPv4 only. Adding what is there is
 * success, so is removing what is not. Errors: a negative errno and one
 * line in err.
 */
#include <stdint.h>

#include "link.h"

struct hostnet_rule {
	uint32_t prio;
	uint32_t mark; /* matched whole (mask 0xffffffff) */
	uint32_t table;
};

int hostnet_rule_add(struct hostnet *hn, const struct hostnet_rule *r, struct error *err);
int hostnet_rule_del(struct hostnet *hn, const struct hostnet_rule *r, struct error *err);

/* Calls fn for every IPv4 rule at priority prio; a non-zero return stops the walk. */
typedef int (*hostnet_rule_fn)(const struct hostnet_rule *r, void *opaque);
int hostnet_rule_list(struct hostnet *hn, uint32_t prio, hostnet_rule_fn fn, void *opaque,
		      struct error *err);

/* dst/prefix (host byte order) directly on link dev, source src, in table; replaces one there. */
int hostnet_route_add(struct hostnet *hn, uint32_t table, uint32_t dst, unsigned int prefix,
		      const char *dev, uint32_t src, struct error *err);
/* How many IPv4 routes table holds (0 for a table that does not exist). */
int hostnet_route_count(struct hostnet *hn, uint32_t table, struct error *err);
/* Removes every IPv4 route of table. */
int hostnet_route_flush(struct hostnet *hn, uint32_t table, struct error *err);

/*
 * net.ipv4.conf.NAME.rp_filter = 2 (loose): the kernel uses the larger of
 * this and conf.all's, so loose is the strictest setting that can be
 * forced per link whatever the host's own.
 */
int hostnet_rp_filter_loose(const char *name, struct error *err);

#endif
