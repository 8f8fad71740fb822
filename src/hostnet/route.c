// SPDX-License-Identifier: MIT
/* Routes in the tables of policy rules, and rp_filter (route.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <linux/rtnetlink.h>

#include <netlink/route/route.h>

#include "internal.h"
#include "route.h"

static struct nl_addr *route_addr(uint32_t addr, unsigned int prefix)
{
	uint32_t be = htonl(addr);
	struct nl_addr *a = nl_addr_build(AF_INET, &be, sizeof(be));

	if (a)
		nl_addr_set_prefixlen(a, (int)prefix);
	return a;
}

static struct rtnl_route *route_build(uint32_t table, uint32_t dst, unsigned int prefix,
				      int ifindex, uint32_t src)
{
	struct nl_addr *d = route_addr(dst, prefix), *s = route_addr(src, 32);
	struct rtnl_route *r = rtnl_route_alloc();
	struct rtnl_nexthop *nh = rtnl_route_nh_alloc();
	bool ok = d && s && r && nh;

	if (ok) {
		rtnl_route_set_family(r, AF_INET);
		rtnl_route_set_table(r, table);
		rtnl_route_set_scope(r, RT_SCOPE_LINK);
		rtnl_route_set_type(r, RTN_UNICAST);
		ok = !rtnl_route_set_dst(r, d) && !rtnl_route_set_pref_src(r, s);
		rtnl_route_nh_set_ifindex(nh, ifindex);
		rtnl_route_add_nexthop(r, nh);
		nh = NULL;
	}
	nl_addr_put(d);
	nl_addr_put(s);
	if (nh)
		rtnl_route_nh_free(nh);
	if (!ok) {
		rtnl_route_put(r);
		return NULL;
	}
	return r;
}

int hostnet_route_add(struct hostnet *hn, uint32_t table, uint32_t dst, unsigned int prefix,
		      const char *dev, uint32_t src, struct error *err)
{
	struct hostnet_link info;
	struct rtnl_route *r;
	int ret = prefix > 32 ? error_set(err, EINVAL, "a route with prefix /%u", prefix)
			      : hostnet_link_find(hn, dev, &info, err);

	if (ret)
		return error_wrap(err, "adding a route in table %u", table);
	r = route_build(table, dst, prefix, info.ifindex, src);
	if (!r)
		return error_set(err, ENOMEM, "adding a route in table %u: out of memory", table);
	ret = rtnl_route_add(hn->sk, r, NLM_F_CREATE | NLM_F_REPLACE);
	rtnl_route_put(r);
	if (ret < 0)
		return error_set(err, hostnet_nl_errno(ret),
				 "adding a route via '%s' in table %u: %s", dev, table,
				 nl_geterror(ret));
	return 0;
}

/* Every IPv4 route of table to fn; counts them. */
static int route_walk(struct hostnet *hn, uint32_t table, int (*fn)(struct hostnet *, void *),
		      struct error *err)
{
	struct nl_cache *cache;
	struct nl_object *o;
	int n = 0, ret = rtnl_route_alloc_cache(hn->sk, AF_INET, 0, &cache);

	if (ret < 0)
		return error_set(err, hostnet_nl_errno(ret), "listing routes: %s",
				 nl_geterror(ret));
	for (o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
		if (rtnl_route_get_table((struct rtnl_route *)o) != table)
			continue;
		n++;
		if (fn && (ret = fn(hn, o)) < 0) {
			nl_cache_free(cache);
			return error_set(err, hostnet_nl_errno(ret),
					 "removing a route of table %u: %s", table,
					 nl_geterror(ret));
		}
	}
	nl_cache_free(cache);
	return n;
}

int hostnet_route_count(struct hostnet *hn, uint32_t table, struct error *err)
{
	return route_walk(hn, table, NULL, err);
}

static int route_del_one(struct hostnet *hn, void *route)
{
	int ret = rtnl_route_delete(hn->sk, route, 0);

	return ret == -NLE_OBJ_NOTFOUND ? 0 : ret;
}

int hostnet_route_flush(struct hostnet *hn, uint32_t table, struct error *err)
{
	int ret = route_walk(hn, table, route_del_one, err);

	return ret < 0 ? ret : 0;
}

int hostnet_rp_filter_loose(const char *name, struct error *err)
{
	char path[96];
	int fd, ret = hostnet_name_check(name, err);

	if (ret)
		return ret;
	snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/%s/rp_filter", name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return error_set(err, errno, "%s: %s", path, strerror(errno));
	ret = write(fd, "2\n", 2) == 2 ? 0 : -errno;
	close(fd);
	return ret ? error_set(err, -ret, "%s: %s", path, strerror(-ret)) : 0;
}
