// SPDX-License-Identifier: MIT
/*
 * Instance networks: the /v1/networks API, each tenant's default network
 * (made on its first instance, with a /24 carved from --network-pool), and
 * the host side through src/hostnet: a bridge bn-NETWORK with the gateway
 * address, a tap bt-INSTANCE owned by the instance's VMM user on it, and
 * the reconciliation of both with the store at start-up.
 *
 * The store is the truth; links are made again whenever they are needed
 * (creation is idempotent), so a failure to make one is a failed start of
 * the instance, not lost state. DHCP is dhcp.c's, NAT and filtering
 * firewall.c's (both told of changes here).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "../common/util.h"
#include "../hostnet/ipam.h"
#include "../hostnet/link.h"
#include "api.h"
#include "meta.h"
#include "firewall.h"
#include "netroute.h"

#define NETD_BRIDGE_PREFIX "bn-"
#define NETD_TAP_PREFIX	   "bt-"
#define NETD_DEFAULT	   "default"
#define NETD_POOL_SUBNET   24 /* each tenant's default network */

static const char *netd_s(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static int64_t netd_i(const json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

/* ---- the default networks' pool ---- */

int netd_pool_parse(const char *s, uint32_t *base, unsigned int *prefix, struct error *err)
{
	char addr[IPAM_ADDR_STRLEN];
	const char *slash = strchr(s, '/');
	uint64_t p;

	if (!slash || (size_t)(slash - s) >= sizeof(addr) ||
	    parse_uint(slash + 1, 1, NETD_POOL_SUBNET, &p))
		return error_set(
			err, EINVAL,
			"--network-pool: '%s' is not ADDRESS/PREFIX with a prefix of 1 to %d", s,
			NETD_POOL_SUBNET);
	memcpy(addr, s, (size_t)(slash - s));
	addr[slash - s] = 0;
	if (ipam_parse_addr(addr, base, err))
		return error_wrap(err, "--network-pool");
	if (*base & ~(0xffffffffu << (32 - p)))
		return error_set(err, EINVAL, "--network-pool: '%s' has host bits set", s);
	*prefix = (unsigned int)p;
	return 0;
}

static bool netd_overlaps(const json_t *nets, uint32_t first, uint32_t last)
{
	const json_t *n;
	size_t i;

	json_array_foreach(nets, i, n)
	{
		struct ipam_net in;
		struct error err = {0};

		if (!ipam_parse_cidr(netd_s(n, "cidr"), &in, &err) && in.network <= last &&
		    in.broadcast >= first)
			return true;
	}
	return false;
}

/*
 * The pool's lowest /24 no network of any tenant uses. Tenants may overlap,
 * but default networks that do not keep routing between them possible later.
 */
static int netd_pool_pick(struct api_ctx *c, char cidr[IPAM_CIDR_STRLEN], struct error *err)
{
	uint32_t base, count;
	unsigned int prefix;
	json_t *nets;
	int ret = netd_pool_parse(c->d->opts.network_pool, &base, &prefix, err);

	ret = ret ?: STORE(c->s, network_list, 0, &nets, err);
	if (ret)
		return ret;
	count = 1u << (NETD_POOL_SUBNET - prefix);
	for (uint32_t k = 0; k < count; k++) {
		uint32_t first = base + (k << (32 - NETD_POOL_SUBNET));

		if (!netd_overlaps(nets, first, first + 255)) {
			json_decref(nets);
			snprintf(cidr, IPAM_CIDR_STRLEN, "%u.%u.%u.%u/%d", first >> 24,
				 (first >> 16) & 255, (first >> 8) & 255, first & 255,
				 NETD_POOL_SUBNET);
			return 0;
		}
	}
	json_decref(nets);
	return error_set(err, ENOSPC, "the network pool %s has no free /%d left",
			 c->d->opts.network_pool, NETD_POOL_SUBNET);
}

static int netd_bridge(struct hostnet *hn, const char *bridge, const char *cidr, struct error *err);

/* A network's bridge, from its creation on: its metadata service (metadata.c) lives there. */
static void netd_network_bridge(const char *bridge, const char *cidr)
{
	struct hostnet *hn = NULL;
	struct error err = {0};

	if (hostnet_open(&hn, &err) || netd_bridge(hn, bridge, cidr, &err))
		log_warn("%s (made again at its first instance's start)", err.msg);
	if (hn)
		hostnet_close(hn);
	mdd_kick();
}

/* The tenant's default network, made on first use; a concurrent maker's wins. */
static int netd_default(struct api_ctx *c, json_t **out, struct error *err)
{
	struct store_network_new n = {.tenant_id = c->who.tenant_id, .name = NETD_DEFAULT};
	char cidr[IPAM_CIDR_STRLEN];
	int64_t id;
	int ret = STORE(c->s, network_get, c->who.tenant_id, NETD_DEFAULT, out, err);

	if (ret != -ENOENT)
		return ret;
	ret = netd_pool_pick(c, cidr, err);
	if (ret)
		return ret;
	n.cidr = cidr;
	ret = STORE(c->s, network_create, &n, &id, err);
	if (ret && ret != -EEXIST)
		return ret;
	if (!ret)
		log_info("tenant %s: default network %s", c->who.tenant, cidr);
	ret = STORE(c->s, network_get, c->who.tenant_id, NETD_DEFAULT, out, err);
	if (!ret)
		netd_network_bridge(netd_s(*out, "bridge"), netd_s(*out, "cidr"));
	return ret;
}

int netd_instance_network(struct api_ctx *c, int64_t *network_id)
{
	const char *name = NULL;
	struct error err = {0};
	json_t *n;
	int ret = httpd_field_str(c->req->body, "network", false, &name, c->resp);

	if (ret) {
		api_err(c, 400, "invalid_request", "network", "network must be a string");
		return ret;
	}
	ret = name ? STORE(c->s, network_get, c->who.tenant_id, name, &n, &err)
		   : netd_default(c, &n, &err);
	if (ret) {
		api_fail(c, ret, &err, "network");
		return ret;
	}
	*network_id = netd_i(n, "id");
	json_decref(n);
	return 0;
}

/* ---- host links ---- */

static void netd_tap_name(int64_t id, char name[IF_NAMESIZE])
{
	snprintf(name, IF_NAMESIZE, NETD_TAP_PREFIX "%lld", (long long)id);
}

/* The bridge of a network with cidr, with its gateway, up. */
static int netd_bridge(struct hostnet *hn, const char *bridge, const char *cidr, struct error *err)
{
	struct ipam_net net;
	int ret = ipam_parse_cidr(cidr, &net, err);

	ret = ret ?: hostnet_bridge_create(hn, bridge, net.gateway, net.prefix, err);
	return ret ?: netr_bridge_up(hn, bridge, &net, err);
}

/* A port's tap, owned by its VMM's user, on its bridge (made if absent), up. */
static int netd_port_links(const struct daemon *d, struct hostnet *hn, int64_t id,
			   const char *bridge, const char *cidr, struct error *err)
{
	struct hostnet_tap_opts opts = {0};
	char tap[IF_NAMESIZE];
	int ret = 0;

	/* Unjailed (--no-jail) VMMs run as root: the tap is root's. */
	if (!d->opts.no_jail)
		ret = djail_ids(d, id, &opts.uid, &opts.gid, err);
	netd_tap_name(id, tap);
	ret = ret ?: netd_bridge(hn, bridge, cidr, err);
	ret = ret ?: hostnet_tap_create(hn, tap, &opts, err);
	ret = ret ?: hostnet_link_set_master(hn, tap, bridge, err);
	return ret ?: hostnet_link_set_up(hn, tap, true, err);
}

int netd_instance_links(const struct daemon *d, const json_t *inst, struct error *err)
{
	struct hostnet *hn;
	int ret;

	if (!netd_s(inst, "ip"))
		return 0;
	ret = hostnet_open(&hn, err);
	if (ret)
		return ret;
	ret = netd_port_links(d, hn, netd_i(inst, "id"), netd_s(inst, "bridge"),
			      netd_s(inst, "network_cidr"), err);
	hostnet_close(hn);
	return ret;
}

int netd_vmm_args(const struct daemon *d, const json_t *inst, char **argv, int *argc, int max,
		  struct error *err)
{
	char tap[IF_NAMESIZE];
	int ret;

	if (!netd_s(inst, "ip"))
		return 0;
	if (*argc + 2 > max)
		return error_set(err, E2BIG, "too many VMM arguments");
	ret = netd_instance_links(d, inst, err);
	if (ret)
		return error_wrap(err, "network");
	dhcpd_sync_wait(); /* its lease in dnsmasq's hosts file before it boots */
	/* Its tap's anti-spoofing elements in place before it can send. */
	ret = fw_port_ready(d, inst, err);
	if (ret)
		return ret;
	netd_tap_name(netd_i(inst, "id"), tap);
	argv[*argc] = strdup("--net");
	/* A clone's restore replaces the snapshot's NIC: the daemon gives only one, net0. */
	if (asprintf(&argv[*argc + 1], "%stap=%s,mac=%s",
		     json_object_get(inst, "restore") ? "id=net0," : "", tap,
		     netd_s(inst, "mac")) < 0)
		argv[*argc + 1] = NULL;
	*argc += 2;
	if (!argv[*argc - 2] || !argv[*argc - 1])
		return error_set(err, ENOMEM, "out of memory");
	return 0;
}

static void netd_link_delete(const char *name)
{
	struct error err = {0};
	struct hostnet *hn = NULL;

	if (hostnet_open(&hn, &err) || hostnet_link_delete(hn, name, &err))
		log_warn("%s", err.msg);
	if (hn)
		hostnet_close(hn);
}

void netd_instance_gone(int64_t id)
{
	char tap[IF_NAMESIZE];

	netd_tap_name(id, tap);
	netd_link_delete(tap);
	dhcpd_kick();
}

/* The bridges of a tenant's networks, to remove once the tenant is gone (NULL: none). */
json_t *netd_tenant_bridges(struct api_ctx *c, const char *tenant)
{
	struct error err = {0};
	json_t *t, *nets = NULL;

	if (STORE(c->s, tenant_get, tenant, &t, &err))
		return NULL;
	if (STORE(c->s, network_list, netd_i(t, "id"), &nets, &err))
		nets = NULL;
	json_decref(t);
	return nets;
}

void netd_bridges_gone(json_t *nets)
{
	const json_t *n;
	size_t i;

	json_array_foreach(nets, i, n)
	{
		if (netd_s(n, "bridge"))
			netd_link_delete(netd_s(n, "bridge"));
		netr_network_gone(netd_i(n, "id"));
	}
	json_decref(nets);
	dhcpd_kick();
}

/* ---- reconciliation ---- */

struct netd_known {
	json_t *nets, *ports;
	struct hostnet *hn;
	int removed;
};

static bool netd_known_link(const struct netd_known *k, const char *name)
{
	const json_t *r;
	char tap[IF_NAMESIZE];
	size_t i;

	json_array_foreach(k->nets, i, r)
	{
		if (!strcmp(name, netd_s(r, "bridge") ?: ""))
			return true;
	}
	json_array_foreach(k->ports, i, r)
	{
		netd_tap_name(netd_i(r, "instance_id"), tap);
		if (!strcmp(name, tap))
			return true;
	}
	return false;
}

static int netd_sweep_one(const struct hostnet_link *link, void *opaque)
{
	struct netd_known *k = opaque;
	struct error err = {0};

	if (netd_known_link(k, link->name))
		return 0;
	if (hostnet_link_delete(k->hn, link->name, &err))
		log_warn("reconcile: %s", err.msg);
	else
		k->removed++;
	return 0;
}

/*
 * Without nftables bunshind still serves its API, but instances with a
 * port fail to start (netd_vmm_args()) rather than run unfiltered.
 */
static void netd_firewall_begin(struct daemon *d)
{
	struct error err = {0};

	if (fw_begin(d, &err))
		log_error("%s: instances on networks cannot start until it works", err.msg);
}

int netd_reconcile(struct daemon *d, struct error *err)
{
	struct netd_known k = {0};
	struct store *s = pool_get(d->pool);
	const json_t *p;
	size_t i;
	int ret = STORE(s, network_list, 0, &k.nets, err);

	ret = ret ?: STORE(s, port_list, 0, &k.ports, err);
	pool_put(d->pool, s);
	ret = ret ?: hostnet_open(&k.hn, err);
	if (ret)
		goto out;
	/* Taps first: a bridge's deletion would only detach them. */
	ret = hostnet_link_list(k.hn, NETD_TAP_PREFIX, netd_sweep_one, &k, err)
		      ?: hostnet_link_list(k.hn, NETD_BRIDGE_PREFIX, netd_sweep_one, &k, err);
	netr_reconcile(k.hn, k.nets);
	json_array_foreach(k.nets, i, p)
	{
		struct error perr = {0};

		if (netd_s(p, "bridge") &&
		    netd_bridge(k.hn, netd_s(p, "bridge"), netd_s(p, "cidr"), &perr))
			log_warn("reconcile: network %lld: %s", (long long)netd_i(p, "id"),
				 perr.msg);
	}
	json_array_foreach(k.ports, i, p)
	{
		struct error perr = {0};

		if (netd_port_links(d, k.hn, netd_i(p, "instance_id"), netd_s(p, "bridge"),
				    netd_s(p, "cidr"), &perr))
			log_warn("reconcile: instance %lld: %s",
				 (long long)netd_i(p, "instance_id"), perr.msg);
	}
	log_info("networks: %zu networks, %zu ports, %d stray links removed",
		 json_array_size(k.nets), json_array_size(k.ports), k.removed);
out:
	if (k.hn)
		hostnet_close(k.hn);
	json_decref(k.nets);
	json_decref(k.ports);
	dhcpd_begin(d);
	mdd_begin(d);
	netd_firewall_begin(d);
	return ret;
}

/* ---- the API ---- */

/* Moves an instance's port columns into "port": {network, mac, ip}, or null. */
json_t *netd_instance_view(json_t *inst)
{
	static const char *const cols[] = {"network", "network_id", "mac",
					   "ip",      "bridge",	    "network_cidr"};
	json_t *port = json_null();

	if (netd_s(inst, "ip"))
		port = json_pack("{s:O, s:O, s:O}", "network", json_object_get(inst, "network"),
				 "mac", json_object_get(inst, "mac"), "ip",
				 json_object_get(inst, "ip"));
	for (size_t i = 0; i < sizeof(cols) / sizeof(cols[0]); i++)
		json_object_del(inst, cols[i]);
	json_object_set_new(inst, "port", port);
	return inst;
}

static json_t *netd_view(json_t *n)
{
	char gw[IPAM_ADDR_STRLEN];
	struct ipam_net net;
	struct error err = {0};

	json_object_del(n, "tenant_id");
	json_object_set_new(n, "isolated", json_boolean(netd_i(n, "isolated")));
	if (!ipam_parse_cidr(netd_s(n, "cidr"), &net, &err)) {
		ipam_format_addr(net.gateway, gw);
		json_object_set_new(n, "gateway", json_string(gw));
	}
	return n;
}

static void api_network_list(struct api_ctx *c)
{
	struct error err = {0};
	json_t *out, *n;
	size_t i;
	int ret = STORE(c->s, network_list, api_scope(c), &out, &err);

	if (ret)
		return api_fail(c, ret, &err, NULL);
	json_array_foreach(out, i, n) netd_view(n);
	api_ok(c, 200, out);
}

static json_t *netd_lookup(struct api_ctx *c)
{
	struct error err = {0};
	json_t *n;
	int ret = STORE(c->s, network_get, api_scope(c), c->seg[1], &n, &err);

	snprintf(c->target, sizeof(c->target), "network %s", c->seg[1]);
	if (ret) {
		api_fail(c, ret, &err, NULL);
		return NULL;
	}
	snprintf(c->target, sizeof(c->target), "network %lld", (long long)netd_i(n, "id"));
	return n;
}

static void api_network_show(struct api_ctx *c)
{
	json_t *n = netd_lookup(c);

	if (n)
		api_ok(c, 200, netd_view(n));
}

static void api_network_create(struct api_ctx *c)
{
	static const char *const fields[] = {"name", "cidr", "isolated", NULL};
	struct store_network_new n = {.tenant_id = c->who.tenant_id};
	struct ipam_net net;
	struct error err = {0};
	bool isolated = false;
	char ref[24];
	json_t *out;
	int64_t id;
	int ret;

	if (!api_need_writer(c) || !api_body(c, fields, true))
		return;
	if (httpd_field_str(c->req->body, "name", true, &n.name, c->resp))
		return api_err(c, 400, "invalid_request", "name", "name is required");
	if (!api_valid_name(c, "name", n.name))
		return;
	if (httpd_field_str(c->req->body, "cidr", true, &n.cidr, c->resp))
		return api_err(c, 400, "invalid_request", "cidr",
			       "cidr is required, a string like 10.20.0.0/24");
	if (ipam_parse_cidr(n.cidr, &net, &err))
		return api_err(c, 400, "invalid_request", "cidr", "cidr: %s", err.msg);
	if (httpd_field_bool(c->req->body, "isolated", false, &isolated, c->resp))
		return api_err(c, 400, "invalid_request", "isolated", "isolated must be a boolean");
	snprintf(c->target, sizeof(c->target), "network %s", n.name);
	ret = STORE(c->s, network_create, &n, &id, &err);
	if (ret)
		return api_fail(c, ret, &err, ret == -EEXIST ? "name" : NULL);
	snprintf(c->target, sizeof(c->target), "network %lld", (long long)id);
	/* No port can be on it yet: a moment not isolated lets nothing through. */
	ret = isolated ? STORE(c->s, network_set_isolated, id, true, &err) : 0;
	if (ret)
		return api_fail(c, ret, &err, NULL);
	fw_changed(c->d, c->s);
	snprintf(ref, sizeof(ref), "%lld", (long long)id);
	ret = STORE(c->s, network_get, 0, ref, &out, &err);
	if (ret)
		return api_fail(c, ret, &err, NULL);
	netd_network_bridge(netd_s(out, "bridge"), netd_s(out, "cidr"));
	api_ok(c, 201, netd_view(out));
}

static void api_network_delete(struct api_ctx *c)
{
	struct error err = {0};
	char bridge[IF_NAMESIZE];
	int64_t id;
	json_t *n;
	int ret;

	if (!api_need_writer(c) || !(n = netd_lookup(c)))
		return;
	id = netd_i(n, "id");
	snprintf(bridge, sizeof(bridge), "%s", netd_s(n, "bridge") ?: "");
	ret = STORE(c->s, network_delete, id, &err);
	json_decref(n);
	if (ret)
		return api_fail(c, ret, &err, NULL);
	if (bridge[0])
		netd_link_delete(bridge);
	netr_network_gone(id);
	dhcpd_kick();
	mdd_kick();
	fw_changed(c->d, c->s);
	api_ok(c, 204, NULL);
}

const struct api_op api_network_ops[] = {
	{"GET", "networks", api_network_list},
	{"POST", "networks", api_network_create},
	{"GET", "networks/:", api_network_show},
	{"DELETE", "networks/:", api_network_delete},
	{NULL, NULL, NULL},
};
