// SPDX-License-Identifier: MIT
/*
 * veth pairs: one end here, the other optionally in another namespace (the
 * metadata and DHCP helpers, or a test's "outside world").
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>

#include "internal.h"

static int veth_add(struct hostnet *hn, const char *name, const char *peer_name, int netns_fd,
		    struct error *err)
{
	struct rtnl_link *l = rtnl_link_veth_alloc();
	struct rtnl_link *peer;
	int ret;

	if (!l)
		return error_set(err, ENOMEM, "creating veth '%s': out of memory", name);
	rtnl_link_set_name(l, name);
	peer = rtnl_link_veth_get_peer(l);
	rtnl_link_set_name(peer, peer_name);
	if (netns_fd >= 0)
		rtnl_link_set_ns_fd(peer, netns_fd);
	ret = rtnl_link_add(hn->sk, l, NLM_F_CREATE | NLM_F_EXCL);
	rtnl_link_put(peer);
	rtnl_link_veth_release(l);
	if (ret < 0)
		return hostnet_nl_fail(err, ret, "creating veth", name);
	return 0;
}

int hostnet_veth_create(struct hostnet *hn, const char *name, const char *peer, int netns_fd,
			struct error *err)
{
	bool exists;
	int ret;

	ret = hostnet_name_check(name, err);
	if (!ret)
		ret = hostnet_name_check(peer, err);
	if (ret)
		return ret;
	ret = hostnet_link_expect_kind(hn, name, "veth", "veth", &exists, err);
	if (ret || exists)
		return ret;
	return veth_add(hn, name, peer, netns_fd, err);
}

int hostnet_veth_create_at(struct hostnet *hn, const char *name, const char *peer,
			   const char *netns_path, struct error *err)
{
	int fd, ret;

	fd = open(netns_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return error_set(err, errno, "creating veth '%s': namespace %s: %s", name,
				 netns_path, strerror(errno));
	ret = hostnet_veth_create(hn, name, peer, fd, err);
	close(fd);
	return ret;
}
