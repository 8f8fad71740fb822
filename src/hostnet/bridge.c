// SPDX-License-Identifier: MIT
/*
 * A network's bridge: a Linux bridge carrying the gateway address.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include <netlink/route/addr.h>
#include <netlink/route/link.h>

#include "internal.h"

static int bridge_add(struct hostnet *hn, const char *name, struct error *err)
{
	struct rtnl_link *l = rtnl_link_alloc();
	int ret;

	if (!l)
		return error_set(err, ENOMEM, "creating bridge '%s': out of memory", name);
	rtnl_link_set_name(l, name);
	ret = rtnl_link_set_type(l, "bridge");
	if (ret >= 0)
		ret = rtnl_link_add(hn->sk, l, NLM_F_CREATE | NLM_F_EXCL);
	rtnl_link_put(l);
	/* EEXIST: someone made it between our look-up and now; checked again below. */
	if (ret < 0 && ret != -NLE_EXIST)
		return hostnet_nl_fail(err, ret, "creating bridge", name);
	return 0;
}

static struct nl_addr *bridge_nl_addr(uint32_t addr)
{
	uint32_t be = htonl(addr);

	return nl_addr_build(AF_INET, &be, sizeof(be));
}

/* REPLACE: the same address again is an update, not EEXIST. */
static int bridge_set_addr(struct hostnet *hn, const char *name, int ifindex, uint32_t addr,
			   unsigned int prefix, struct error *err)
{
	uint32_t mask = prefix ? ~0u << (32 - prefix) : 0;
	struct nl_addr *local = bridge_nl_addr(addr);
	struct nl_addr *bcast = bridge_nl_addr(addr | ~mask);
	struct rtnl_addr *a = rtnl_addr_alloc();
	int ret = -NLE_NOMEM;

	if (a && local && bcast) {
		rtnl_addr_set_ifindex(a, ifindex);
		rtnl_addr_set_family(a, AF_INET);
		ret = rtnl_addr_set_local(a, local);
		rtnl_addr_set_prefixlen(a, (int)prefix);
		if (ret >= 0)
			ret = rtnl_addr_set_broadcast(a, bcast);
		if (ret >= 0)
			ret = rtnl_addr_add(hn->sk, a, NLM_F_REPLACE);
	}
	nl_addr_put(local);
	nl_addr_put(bcast);
	rtnl_addr_put(a);
	return ret < 0 ? hostnet_nl_fail(err, ret, "setting the address of bridge", name) : 0;
}

static bool bridge_addr_is(struct rtnl_addr *a, uint32_t addr, unsigned int prefix)
{
	struct nl_addr *local = rtnl_addr_get_local(a);
	uint32_t be = htonl(addr);

	return local && nl_addr_get_len(local) == sizeof(be) &&
	       !memcmp(nl_addr_get_binary_addr(local), &be, sizeof(be)) &&
	       rtnl_addr_get_prefixlen(a) == (int)prefix;
}

/*
 * Drops the IPv4 addresses on the bridge other than addr/prefix: a network
 * whose subnet changed in the store must not keep answering on the old one.
 */
static int bridge_drop_other_addrs(struct hostnet *hn, const char *name, int ifindex, uint32_t addr,
				   unsigned int prefix, struct error *err)
{
	struct nl_cache *cache;
	struct nl_object *o;
	int ret;

	ret = rtnl_addr_alloc_cache(hn->sk, &cache);
	if (ret < 0)
		return hostnet_nl_fail(err, ret, "listing the addresses of bridge", name);
	for (o = nl_cache_get_first(cache); o && ret >= 0; o = nl_cache_get_next(o)) {
		struct rtnl_addr *a = (struct rtnl_addr *)o;

		const char *label = rtnl_addr_get_label(a);

		/* A labelled one (addr.c's, the metadata service's) is someone else's. */
		if (rtnl_addr_get_ifindex(a) != ifindex || rtnl_addr_get_family(a) != AF_INET ||
		    bridge_addr_is(a, addr, prefix) || (label && strcmp(label, name)))
			continue;
		ret = rtnl_addr_delete(hn->sk, a, 0);
	}
	nl_cache_free(cache);
	return ret < 0 ? hostnet_nl_fail(err, ret, "removing an old address of bridge", name) : 0;
}

int hostnet_bridge_create(struct hostnet *hn, const char *name, uint32_t addr, unsigned int prefix,
			  struct error *err)
{
	struct hostnet_link info;
	bool exists;
	int ret;

	if (prefix < 1 || prefix > 32)
		return error_set(err, EINVAL, "creating bridge '%s': prefix /%u outside /1../32",
				 name, prefix);
	ret = hostnet_link_expect_kind(hn, name, "bridge", "bridge", &exists, err);
	if (ret)
		return ret;
	if (!exists) {
		ret = bridge_add(hn, name, err);
		if (ret)
			return ret;
	}
	ret = hostnet_link_find(hn, name, &info, err);
	if (ret)
		return error_wrap(err, "creating bridge");
	if (strcmp(info.kind, "bridge"))
		return error_set(err, EEXIST, "creating bridge '%s': a '%s' took the name", name,
				 info.kind);
	ret = bridge_set_addr(hn, name, info.ifindex, addr, prefix, err);
	if (!ret)
		ret = bridge_drop_other_addrs(hn, name, info.ifindex, addr, prefix, err);
	if (ret)
		return ret;
	return hostnet_link_set_up(hn, name, true, err);
}
