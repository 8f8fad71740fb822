// SPDX-License-Identifier: MIT
/*
 * The policy routing of netroute.h: one rule and one table per network,
 * made with its bridge (netd_bridge() calls netr_bridge_up() every time it
 * makes sure of the bridge, so a bridge made again gets its route again:
 * the kernel drops a table's routes with their link), removed with the
 * network, and swept at start-up.
 */

#include "../common/log.h"
#include "../hostnet/ipam.h"
#include "../hostnet/route.h"
#include "netroute.h"

static struct hostnet_rule netr_rule(int64_t id)
{
	return (struct hostnet_rule){
		.prio = NETR_RULE_PRIO, .mark = (uint32_t)id, .table = netr_table(id)};
}

int netr_bridge_up(struct hostnet *hn, const char *bridge, const struct ipam_net *net,
		   struct error *err)
{
	int64_t id = netr_bridge_id(bridge);
	struct hostnet_rule r = netr_rule(id);
	int ret;

	/*
	 * Loose: an instance's packets on a bridge whose subnet another
	 * bridge has too fail the strict check (the main table names the
	 * other bridge). Spoofing is the bridge table's job (firewall.c).
	 */
	ret = hostnet_rp_filter_loose(bridge, err);
	if (ret || !netr_routed(id))
		return ret;
	ret = hostnet_rule_add(hn, &r, err);
	return ret
		       ?: hostnet_route_add(hn, r.table, net->network, net->prefix, bridge,
					    net->gateway, err);
}

static void netr_remove(struct hostnet *hn, const struct hostnet_rule *r)
{
	struct error err = {0};

	if (hostnet_rule_del(hn, r, &err) || hostnet_route_flush(hn, r->table, &err))
		log_warn("network routing: %s", err.msg);
}

void netr_network_gone(int64_t id)
{
	struct hostnet *hn = NULL;
	struct error err = {0};
	struct hostnet_rule r = netr_rule(id);

	if (!netr_routed(id))
		return;
	if (hostnet_open(&hn, &err)) {
		log_warn("network routing: %s", err.msg);
		return;
	}
	netr_remove(hn, &r);
	hostnet_close(hn);
}

struct netr_sweep {
	struct hostnet *hn;
	const json_t *nets;
	int removed;
};

static bool netr_known(const json_t *nets, const struct hostnet_rule *r)
{
	const json_t *n;
	size_t i;

	json_array_foreach(nets, i, n)
	{
		int64_t id = json_integer_value(json_object_get(n, "id"));

		if (netr_routed(id) && r->mark == (uint32_t)id && r->table == netr_table(id))
			return true;
	}
	return false;
}

static int netr_sweep_one(const struct hostnet_rule *r, void *opaque)
{
	struct netr_sweep *s = opaque;

	if (netr_known(s->nets, r))
		return 0;
	netr_remove(s->hn, r);
	s->removed++;
	return 0;
}

void netr_reconcile(struct hostnet *hn, const json_t *nets)
{
	struct netr_sweep s = {.hn = hn, .nets = nets};
	struct error err = {0};

	if (hostnet_rule_list(hn, NETR_RULE_PRIO, netr_sweep_one, &s, &err))
		log_warn("reconcile: %s", err.msg);
	else if (s.removed)
		log_info("network routing: %d stray rules (priority %u) removed", s.removed,
			 NETR_RULE_PRIO);
}
