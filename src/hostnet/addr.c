// SPDX-License-Identifier: MIT
/*
 * Extra addresses on a link, each with a label of its own ("bn-5:md"):
 * the label tells them from the link's main address, so that the bridge's
 * own upkeep (bridge.c drops stale addresses) and dnsmasq's --interface
 * (which matches labels) leave them alone.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include <netlink/route/addr.h>

#include "internal.h"

static struct rtnl_addr *addr_build(int ifindex, uint32_t addr, unsigned int prefix,
				    const char *label)
{
	uint32_t be = htonl(addr);
	struct nl_addr *local = nl_addr_build(AF_INET, &be, sizeof(be));
	struct rtnl_addr *a = rtnl_addr_alloc();

	if (!a || !local || rtnl_addr_set_local(a, local) < 0 ||
	    (label && rtnl_addr_set_label(a, label) < 0)) {
		nl_addr_put(local);
		rtnl_addr_put(a);
		return NULL;
	}
	nl_addr_put(local);
	rtnl_addr_set_ifindex(a, ifindex);
	rtnl_addr_set_family(a, AF_INET);
	rtnl_addr_set_prefixlen(a, (int)prefix);
	return a;
}

int hostnet_addr_add(struct hostnet *hn, const char *name, uint32_t addr, unsigned int prefix,
		     const char *label, struct error *err)
{
	struct hostnet_link info;
	struct rtnl_addr *a;
	int ret = hostnet_link_find(hn, name, &info, err);

	if (ret)
		return error_wrap(err, "adding an address");
	a = addr_build(info.ifindex, addr, prefix, label);
	if (!a)
		return error_set(err, ENOMEM, "adding an address to '%s': out of memory", name);
	ret = rtnl_addr_add(hn->sk, a, NLM_F_REPLACE);
	rtnl_addr_put(a);
	return ret < 0 ? hostnet_nl_fail(err, ret, "adding an address to", name) : 0;
}

int hostnet_addr_del(struct hostnet *hn, const char *name, uint32_t addr, unsigned int prefix,
		     struct error *err)
{
	struct hostnet_link info;
	struct rtnl_addr *a;
	int ret = hostnet_link_find(hn, name, &info, err);

	if (ret == -ENODEV)
		return 0; /* the link went, and its addresses with it */
	if (ret)
		return error_wrap(err, "removing an address");
	a = addr_build(info.ifindex, addr, prefix, NULL);
	if (!a)
		return error_set(err, ENOMEM, "removing an address of '%s': out of memory", name);
	ret = rtnl_addr_delete(hn->sk, a, 0);
	rtnl_addr_put(a);
	if (ret == -NLE_NOADDR || ret == -NLE_OBJ_NOTFOUND)
		return 0;
	return ret < 0 ? hostnet_nl_fail(err, ret, "removing an address of", name) : 0;
}
