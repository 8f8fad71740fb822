/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_HOSTNET_LINK_H
#define BUNSHIN_HOSTNET_LINK_H

/*
 * Host links for instance networks over rtnetlink (libnl-3-route): bridges
 * with their gateway address, persistent taps that bunshin-vmm opens later,
 * veth pairs, and what reconciliation needs to compare the kernel with the
 * store (find one link, list links by name prefix).
 *
 * Everything acts in the network namespace of the calling thread at
 * hostnet_open() time (taps: at hostnet_tap_create() time). Creating what
 * already exists as the same kind of link is success and brings it to the
 * asked settings; deleting what is gone is success. Errors are a negative
 * errno with one line in err that names the link.
 */
#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "../common/error.h"

/* One netlink socket: use one per thread (libnl sockets are not shared safely). */
struct hostnet;

struct hostnet_link {
	char name[IF_NAMESIZE];
	char kind[16]; /* rtnetlink's IFLA_INFO_KIND: "bridge", "tun", "veth"; "" if none */
	int ifindex;
	int master; /* ifindex of the bridge it is attached to, 0 if none */
	bool up;    /* administratively up (IFF_UP) */
};

struct hostnet_tap_opts {
	uid_t uid; /* who may open it without CAP_NET_ADMIN: the VMM's user */
	gid_t gid;
	/* Must match what the VMM asks for: it opens multi_queue when queues > 1. */
	bool multi_queue;
};

int hostnet_open(struct hostnet **hn, struct error *err);
void hostnet_close(struct hostnet *hn);

/* 0 and *out filled, or -ENODEV when there is no such link. */
int hostnet_link_find(struct hostnet *hn, const char *name, struct hostnet_link *out,
		      struct error *err);

/*
 * Calls fn for every link whose name starts with prefix ("" for all), in
 * ifindex order; a non-zero return from fn stops the walk and is returned.
 */
typedef int (*hostnet_link_fn)(const struct hostnet_link *link, void *opaque);
int hostnet_link_list(struct hostnet *hn, const char *prefix, hostnet_link_fn fn, void *opaque,
		      struct error *err);

int hostnet_link_delete(struct hostnet *hn, const char *name, struct error *err);
int hostnet_link_set_up(struct hostnet *hn, const char *name, bool up, struct error *err);
/* Attaches name to bridge; bridge NULL detaches it from any. */
int hostnet_link_set_master(struct hostnet *hn, const char *name, const char *bridge,
			    struct error *err);

/* A bridge with addr/prefix (the gateway, host byte order) on it, up. */
int hostnet_bridge_create(struct hostnet *hn, const char *name, uint32_t addr, unsigned int prefix,
			  struct error *err);

/* A persistent tap (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, as the VMM opens it), down. */
int hostnet_tap_create(struct hostnet *hn, const char *name, const struct hostnet_tap_opts *opts,
		       struct error *err);

/*
 * A veth pair: name here, peer moved into the namespace netns_fd (-1: stays
 * here) or the one at netns_path (/run/netns/x, /proc/PID/ns/net).
 */
int hostnet_veth_create(struct hostnet *hn, const char *name, const char *peer, int netns_fd,
			struct error *err);
int hostnet_veth_create_at(struct hostnet *hn, const char *name, const char *peer,
			   const char *netns_path, struct error *err);

/*
 * addr.c: an extra address addr/prefix on link name, under label (e.g.
 * "bn-5:md"; NULL: the link's name). Adding what is there is success, so
 * is removing what is not (or a link that is gone).
 */
int hostnet_addr_add(struct hostnet *hn, const char *name, uint32_t addr, unsigned int prefix,
		     const char *label, struct error *err);
int hostnet_addr_del(struct hostnet *hn, const char *name, uint32_t addr, unsigned int prefix,
		     struct error *err);

/* Refuses what the kernel would (empty, too long, '/', ':', spaces, "." and ".."). */
int hostnet_name_check(const char *name, struct error *err);

#endif
