// SPDX-License-Identifier: MIT
/*
 * Generic link operations over rtnetlink: the socket, find, list, delete,
 * up/down and bridge membership.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <netlink/route/link.h>

#include "internal.h"

int hostnet_nl_errno(int nlerr)
{
	static const int map[][2] = {
		{NLE_NOMEM, ENOMEM},
		{NLE_EXIST, EEXIST},
		{NLE_INVAL, EINVAL},
		{NLE_RANGE, ERANGE},
		{NLE_OPNOTSUPP, EOPNOTSUPP},
		{NLE_PERM, EPERM},
		{NLE_NOACCESS, EACCES},
		{NLE_BUSY, EBUSY},
		{NLE_OBJ_NOTFOUND, ENODEV},
		{NLE_NODEV, ENODEV},
		{NLE_AGAIN, EAGAIN},
		{NLE_INTR, EINTR},
		{NLE_AF_NOSUPPORT, EAFNOSUPPORT},
		{NLE_BAD_SOCK, EBADF},
		{NLE_MSGSIZE, EMSGSIZE},
	};

	if (nlerr < 0)
		nlerr = -nlerr;
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (map[i][0] == nlerr)
			return map[i][1];
	return EIO;
}

int hostnet_nl_fail(struct error *err, int nlerr, const char *what, const char *name)
{
	int code = hostnet_nl_errno(nlerr);
	const char *hint = code == EPERM ? " (needs CAP_NET_ADMIN)" : "";

	return error_set(err, code, "%s '%s': %s%s", what, name, nl_geterror(nlerr), hint);
}

int hostnet_name_check(const char *name, struct error *err)
{
	size_t n = strnlen(name, IF_NAMESIZE);

	if (n == 0)
		return error_set(err, EINVAL, "link name is empty");
	if (n >= IF_NAMESIZE)
		return error_set(err, ENAMETOOLONG,
				 "link name '%.16s...' longer than %d characters", name,
				 IF_NAMESIZE - 1);
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return error_set(err, EINVAL, "link name '%s' is not allowed", name);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c == '/' || c == ':' || c <= ' ' || c >= 0x7f)
			return error_set(err, EINVAL,
					 "link name '%s': character 0x%02x not allowed", name, c);
	}
	return 0;
}

int hostnet_open(struct hostnet **out, struct error *err)
{
	struct hostnet *hn = calloc(1, sizeof(*hn));
	int ret;

	if (!hn)
		return error_set(err, ENOMEM, "netlink: out of memory");
	hn->sk = nl_socket_alloc();
	if (!hn->sk) {
		free(hn);
		return error_set(err, ENOMEM, "netlink: out of memory");
	}
	ret = nl_connect(hn->sk, NETLINK_ROUTE);
	if (ret < 0) {
		nl_socket_free(hn->sk);
		free(hn);
		return error_set(err, hostnet_nl_errno(ret), "netlink: cannot connect: %s",
				 nl_geterror(ret));
	}
	*out = hn;
	return 0;
}

void hostnet_close(struct hostnet *hn)
{
	if (!hn)
		return;
	nl_socket_free(hn->sk);
	free(hn);
}

int hostnet_link_get(struct hostnet *hn, const char *name, struct rtnl_link **out)
{
	int ret = rtnl_link_get_kernel(hn->sk, 0, name, out);

	if (ret == -NLE_OBJ_NOTFOUND || ret == -NLE_NODEV)
		return -ENODEV;
	return ret < 0 ? -hostnet_nl_errno(ret) : 0;
}

static void hostnet_link_fill(struct rtnl_link *l, struct hostnet_link *out)
{
	const char *kind = rtnl_link_get_type(l);

	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s", rtnl_link_get_name(l));
	snprintf(out->kind, sizeof(out->kind), "%s", kind ? kind : "");
	out->ifindex = rtnl_link_get_ifindex(l);
	out->master = rtnl_link_get_master(l);
	out->up = rtnl_link_get_flags(l) & IFF_UP;
}

int hostnet_link_find(struct hostnet *hn, const char *name, struct hostnet_link *out,
		      struct error *err)
{
	struct rtnl_link *l;
	int ret;

	ret = hostnet_name_check(name, err);
	if (ret)
		return ret;
	ret = hostnet_link_get(hn, name, &l);
	if (ret == -ENODEV)
		return error_set(err, ENODEV, "link '%s' does not exist", name);
	if (ret)
		return error_set(err, -ret, "looking up link '%s': %s", name, strerror(-ret));
	hostnet_link_fill(l, out);
	rtnl_link_put(l);
	return 0;
}

int hostnet_link_expect_kind(struct hostnet *hn, const char *name, const char *kind,
			     const char *what, bool *exists, struct error *err)
{
	struct hostnet_link info;
	int ret;

	*exists = false;
	ret = hostnet_link_find(hn, name, &info, err);
	if (ret == -ENODEV) {
		error_clear(err);
		return 0;
	}
	if (ret)
		return ret;
	if (strcmp(info.kind, kind))
		return error_set(err, EEXIST, "creating %s '%s': a link of kind '%s' has that name",
				 what, name, info.kind[0] ? info.kind : "(none)");
	*exists = true;
	return 0;
}

int hostnet_link_list(struct hostnet *hn, const char *prefix, hostnet_link_fn fn, void *opaque,
		      struct error *err)
{
	size_t plen = strlen(prefix);
	struct nl_cache *cache;
	struct nl_object *o;
	int ret;

	ret = rtnl_link_alloc_cache(hn->sk, AF_UNSPEC, &cache);
	if (ret < 0)
		return error_set(err, hostnet_nl_errno(ret), "listing links '%s*': %s", prefix,
				 nl_geterror(ret));
	ret = 0;
	for (o = nl_cache_get_first(cache); o && !ret; o = nl_cache_get_next(o)) {
		struct rtnl_link *l = (struct rtnl_link *)o;
		struct hostnet_link info;

		if (strncmp(rtnl_link_get_name(l), prefix, plen))
			continue;
		hostnet_link_fill(l, &info);
		ret = fn(&info, opaque);
	}
	nl_cache_free(cache);
	return ret;
}

int hostnet_link_delete(struct hostnet *hn, const char *name, struct error *err)
{
	struct rtnl_link *l;
	int ret;

	ret = hostnet_name_check(name, err);
	if (ret)
		return ret;
	l = rtnl_link_alloc();
	if (!l)
		return error_set(err, ENOMEM, "deleting link '%s': out of memory", name);
	rtnl_link_set_name(l, name);
	ret = rtnl_link_delete(hn->sk, l);
	rtnl_link_put(l);
	if (ret == -NLE_OBJ_NOTFOUND || ret == -NLE_NODEV)
		return 0; /* gone already: what the caller wanted */
	if (ret < 0)
		return hostnet_nl_fail(err, ret, "deleting link", name);
	return 0;
}

/* Applies the attributes set in change to the link called name. */
static int hostnet_link_change(struct hostnet *hn, const char *name, struct rtnl_link *change,
			       const char *what, struct error *err)
{
	struct rtnl_link *l;
	int ret;

	ret = hostnet_name_check(name, err);
	if (ret)
		return ret;
	ret = hostnet_link_get(hn, name, &l);
	if (ret == -ENODEV)
		return error_set(err, ENODEV, "%s '%s': no such link", what, name);
	if (ret)
		return error_set(err, -ret, "%s '%s': %s", what, name, strerror(-ret));
	ret = rtnl_link_change(hn->sk, l, change, 0);
	rtnl_link_put(l);
	return ret < 0 ? hostnet_nl_fail(err, ret, what, name) : 0;
}

int hostnet_link_set_up(struct hostnet *hn, const char *name, bool up, struct error *err)
{
	struct rtnl_link *change = rtnl_link_alloc();
	int ret;

	if (!change)
		return error_set(err, ENOMEM, "setting link '%s' up: out of memory", name);
	if (up)
		rtnl_link_set_flags(change, IFF_UP);
	else
		rtnl_link_unset_flags(change, IFF_UP);
	ret = hostnet_link_change(hn, name, change, up ? "setting up link" : "setting down link",
				  err);
	rtnl_link_put(change);
	return ret;
}

int hostnet_link_set_master(struct hostnet *hn, const char *name, const char *bridge,
			    struct error *err)
{
	struct hostnet_link br = {0};
	struct rtnl_link *change;
	int ret;

	if (bridge) {
		ret = hostnet_link_find(hn, bridge, &br, err);
		if (ret)
			return error_wrap(err, "attaching '%s'", name);
		if (strcmp(br.kind, "bridge"))
			return error_set(err, EINVAL, "attaching '%s': '%s' is not a bridge", name,
					 bridge);
	}
	change = rtnl_link_alloc();
	if (!change)
		return error_set(err, ENOMEM, "attaching link '%s': out of memory", name);
	rtnl_link_set_master(change, br.ifindex);
	ret = hostnet_link_change(hn, name, change, bridge ? "attaching link" : "detaching link",
				  err);
	rtnl_link_put(change);
	return ret;
}
