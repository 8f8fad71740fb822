/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_HOSTNET_INTERNAL_H
#define BUNSHIN_HOSTNET_INTERNAL_H

/* What the link files share; not for hostnet's users. */
#include <netlink/netlink.h>
#include <netlink/route/link.h>

#include "link.h"

struct hostnet {
	struct nl_sock *sk;
};

/* libnl's NLE_* code -> a positive errno (libnl keeps no errno of its own). */
int hostnet_nl_errno(int nlerr);

/* error_set() for a failed libnl call on a link: "<what> '<name>': <reason>". */
int hostnet_nl_fail(struct error *err, int nlerr, const char *what, const char *name);

/* The kernel's idea of a link; -ENODEV (no message) when there is none. */
int hostnet_link_get(struct hostnet *hn, const char *name, struct rtnl_link **out);

/* 0 when name is absent or already a link of kind; -EEXIST with a message otherwise. */
int hostnet_link_expect_kind(struct hostnet *hn, const char *name, const char *kind,
			     const char *what, bool *exists, struct error *err);

#endif
