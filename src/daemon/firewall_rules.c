// SPDX-License-Identifier: MIT
/*
 * The ruleset text of firewall.h, from store rows. Every value that goes
 * into the text is parsed and printed again from its parsed form (an
 * address, a MAC, a number, a name of a known shape), so that no row can
 * put nft syntax of its own into the ruleset.
 *
 * Policy (docs/architecture.md, "Instance networking"):
 *  - a network's instances reach each other (one bridge: the inet hooks
 *    never see it), the tenant's other networks, and the outside through
 *    masquerade; other tenants' bridges never;
 *  - an isolated network's bridge is a wall both ways: no egress, no
 *    forwards in, not even to the tenant's other networks;
 *  - the host answers instances' DHCP, DNS and ICMP echo on the gateway
 *    and HTTP on 169.254.169.254 (the metadata service), nothing else;
 *  - nothing from outside reaches an instance but replies and forwards;
 *  - a tap may only send from its port's MAC and IPv4 address (or
 *    0.0.0.0 for a DHCP request); ARP must name them; IPv6 and any other
 *    ether type are dropped, so nothing goes around the IPv4 rules.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../hostnet/ipam.h"
#include "firewall.h"
#include "netroute.h"

#define FW_BRIDGE_PREFIX "bn-"
#define FW_TAP_PREFIX	 "bt-"
#define FW_METADATA	 "169.254.169.254"

struct fw_net {
	int64_t id, tenant;
	char bridge[16];
	char cidr[IPAM_CIDR_STRLEN];
	char gateway[IPAM_ADDR_STRLEN];
	bool isolated;
};

struct fw_gen {
	FILE *f;
	struct fw_net *nets;
	size_t nnets;
	int skipped;
};

static const char *fw_s(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static int64_t fw_i(const json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

/* "bn-ID" as the store names bridges: the prefix, then 1 to 12 digits. */
static bool fw_bridge_ok(const char *name)
{
	size_t n = name ? strlen(name) : 0, p = strlen(FW_BRIDGE_PREFIX);

	if (n <= p || n > p + 12 || strncmp(name, FW_BRIDGE_PREFIX, p))
		return false;
	return strspn(name + p, "0123456789") == n - p;
}

static bool fw_addr(const char *s, char out[IPAM_ADDR_STRLEN])
{
	struct error err = {0};
	uint32_t a;

	if (!s || ipam_parse_addr(s, &a, &err))
		return false;
	ipam_format_addr(a, out);
	return true;
}

static bool fw_mac(const char *s, char out[IPAM_MAC_STRLEN])
{
	uint8_t m[6];
	int end = 0;

	if (!s || strlen(s) != 17 ||
	    sscanf(s, "%2hhx:%2hhx:%2hhx:%2hhx:%2hhx:%2hhx%n", &m[0], &m[1], &m[2], &m[3], &m[4],
		   &m[5], &end) != 6 ||
	    end != 17)
		return false;
	ipam_format_mac(m, out);
	return true;
}

static bool fw_net_parse(const json_t *row, struct fw_net *n)
{
	struct ipam_net net;
	struct error err = {0};

	if (!fw_bridge_ok(fw_s(row, "bridge")) || !fw_s(row, "cidr") ||
	    ipam_parse_cidr(fw_s(row, "cidr"), &net, &err))
		return false;
	n->id = fw_i(row, "id");
	n->tenant = fw_i(row, "tenant_id");
	snprintf(n->bridge, sizeof(n->bridge), "%s", fw_s(row, "bridge"));
	ipam_format_cidr(&net, n->cidr);
	ipam_format_addr(net.gateway, n->gateway);
	n->isolated = json_is_true(json_object_get(row, "isolated")) || fw_i(row, "isolated") != 0;
	return true;
}

static int fw_nets_load(struct fw_gen *g, const json_t *nets)
{
	const json_t *row;
	size_t i;

	g->nets = calloc(json_array_size(nets) + 1, sizeof(*g->nets));
	if (!g->nets)
		return -1;
	json_array_foreach(nets, i, row)
	{
		if (fw_net_parse(row, &g->nets[g->nnets]))
			g->nnets++;
		else
			g->skipped++;
	}
	return 0;
}

/* ---- table inet bunshin ---- */

static void fw_forward_isolated(struct fw_gen *g)
{
	for (size_t i = 0; i < g->nnets; i++) {
		const char *b = g->nets[i].bridge;

		if (!g->nets[i].isolated)
			continue;
		fprintf(g->f,
			"\t\tiifname \"%s\" oifname != \"%s\" counter name \"isolated\" drop\n", b,
			b);
		fprintf(g->f,
			"\t\toifname \"%s\" iifname != \"%s\" counter name \"isolated\" drop\n", b,
			b);
	}
}

/* One forward's address and ports, checked; false for a row to leave out. */
static bool fw_forward_parse(const json_t *row, char ip[IPAM_ADDR_STRLEN], const char **proto,
			     int64_t *hp, int64_t *gp)
{
	const char *p = fw_s(row, "proto");

	*hp = fw_i(row, "host_port");
	*gp = fw_i(row, "guest_port");
	if (!p || (strcmp(p, "tcp") && strcmp(p, "udp")))
		return false;
	*proto = !strcmp(p, "tcp") ? "tcp" : "udp";
	return fw_addr(fw_s(row, "ip"), ip) && fw_bridge_ok(fw_s(row, "bridge")) && *hp >= 1 &&
	       *hp <= 65535 && *gp >= 1 && *gp <= 65535;
}

static void fw_forward_accepts(struct fw_gen *g, const json_t *fwds)
{
	char ip[IPAM_ADDR_STRLEN];
	const json_t *row;
	const char *proto;
	int64_t hp, gp;
	size_t i;

	json_array_foreach(fwds, i, row)
	{
		if (!fw_forward_parse(row, ip, &proto, &hp, &gp)) {
			g->skipped++;
			continue;
		}
		fprintf(g->f,
			"\t\tct status dnat oifname \"%s\" ip daddr %s %s dport %" PRId64
			" accept\n",
			fw_s(row, "bridge"), ip, proto, gp);
	}
}

/* The bridges of a tenant's networks, as an nft set ("{ "bn-1", "bn-4" }"). */
static void fw_tenant_bridges(struct fw_gen *g, int64_t tenant)
{
	const char *sep = "{ ";

	for (size_t i = 0; i < g->nnets; i++) {
		if (g->nets[i].tenant != tenant || g->nets[i].isolated)
			continue;
		fprintf(g->f, "%s\"%s\"", sep, g->nets[i].bridge);
		sep = ", ";
	}
	fprintf(g->f, " }");
}

static void fw_forward_chain(struct fw_gen *g, const json_t *fwds)
{
	fprintf(g->f, "\tchain forward {\n"
		      "\t\ttype filter hook forward priority filter; policy accept;\n"
		      "\t\tct state established,related accept\n");
	fw_forward_isolated(g);
	fw_forward_accepts(g, fwds);
	for (size_t i = 0; i < g->nnets; i++) {
		const struct fw_net *n = &g->nets[i];

		if (!n->isolated) {
			fprintf(g->f, "\t\tiifname \"%s\" oifname ", n->bridge);
			fw_tenant_bridges(g, n->tenant);
			fprintf(g->f, " accept\n");
		}
		fprintf(g->f,
			"\t\tiifname \"%s\" oifname \"" FW_BRIDGE_PREFIX
			"*\" counter name \"tenant\" drop\n",
			n->bridge);
		fprintf(g->f, "\t\tiifname \"%s\" ip saddr %s accept\n", n->bridge, n->cidr);
	}
	/* A source outside its network's range got past the bridge's checks: a spoof. */
	fprintf(g->f, "\t\tiifname \"" FW_BRIDGE_PREFIX "*\" counter name \"spoof\" drop\n"
		      "\t\toifname \"" FW_BRIDGE_PREFIX "*\" counter name \"inbound\" drop\n"
		      "\t}\n");
}

static void fw_input_chain(struct fw_gen *g)
{
	fprintf(g->f, "\tchain input {\n"
		      "\t\ttype filter hook input priority filter; policy accept;\n"
		      "\t\tiifname != \"" FW_BRIDGE_PREFIX "*\" accept\n"
		      "\t\tct state established,related accept\n"
		      "\t\tudp sport 68 udp dport 67 accept\n"
		      "\t\tip daddr " FW_METADATA " tcp dport 80 accept\n");
	for (size_t i = 0; i < g->nnets; i++) {
		const struct fw_net *n = &g->nets[i];

		/* DNS: redirected from port 53 to its own dnsmasq's (fw_dns_redirect()). */
		fprintf(g->f,
			"\t\tiifname \"%s\" ip daddr %s meta l4proto { tcp, udp } th dport %d "
			"accept\n"
			"\t\tiifname \"%s\" ip daddr %s icmp type echo-request accept\n",
			n->bridge, n->gateway, netr_dns_port(n->id) ?: 53, n->bridge, n->gateway);
	}
	fprintf(g->f, "\t\tcounter name \"host\" drop\n\t}\n");
}

/*
 * A forward into network ID is routed by its mark (netroute.h): its
 * address may be another network's too, and the main table knows only one.
 */
static const char *fw_forward_mark(const char *bridge, char buf[64])
{
	int64_t id = netr_bridge_id(bridge);

	if (!netr_routed(id))
		return "";
	snprintf(buf, 64, " meta mark set %" PRId64 " ct mark set %" PRId64, id, id);
	return buf;
}

/* Each network's DNS on its gateway's port 53 goes to its own dnsmasq's port. */
static void fw_dns_redirect(struct fw_gen *g)
{
	static const char *const protos[] = {"udp", "tcp"};

	for (size_t i = 0; i < g->nnets; i++) {
		const struct fw_net *n = &g->nets[i];

		for (int p = 0; p < 2 && netr_dns_port(n->id); p++)
			fprintf(g->f,
				"\t\tiifname \"%s\" ip daddr %s %s dport 53 dnat ip to %s:%d\n",
				n->bridge, n->gateway, protos[p], n->gateway, netr_dns_port(n->id));
	}
}

/* DNAT in prerouting (from outside and from instances) and output (from the host itself). */
static void fw_dnat_chain(struct fw_gen *g, const json_t *fwds, const char *name, const char *hook)
{
	char ip[IPAM_ADDR_STRLEN], mark[64];
	const json_t *row;
	const char *proto;
	int64_t hp, gp;
	size_t i;

	/* "dstnat" is prerouting's name for -100 only: output takes the number. */
	fprintf(g->f, "\tchain %s {\n\t\ttype nat hook %s priority -100; policy accept;\n", name,
		hook);
	json_array_foreach(fwds, i, row)
	{
		if (!fw_forward_parse(row, ip, &proto, &hp, &gp))
			continue; /* counted by fw_forward_accepts() */
		fprintf(g->f,
			"\t\tfib daddr type local %s dport %" PRId64 "%s dnat ip to %s:%" PRId64
			"\n",
			proto, hp, fw_forward_mark(fw_s(row, "bridge"), mark), ip, gp);
	}
	if (!strcmp(hook, "prerouting"))
		fw_dns_redirect(g);
	fprintf(g->f, "\t}\n");
}

static void fw_postrouting_chain(struct fw_gen *g)
{
	fprintf(g->f, "\tchain postrouting {\n"
		      "\t\ttype nat hook postrouting priority srcnat; policy accept;\n");
	for (size_t i = 0; i < g->nnets; i++) {
		const struct fw_net *n = &g->nets[i];

		if (!n->isolated)
			fprintf(g->f,
				"\t\tiifname \"%s\" ip saddr %s oifname != \"" FW_BRIDGE_PREFIX
				"*\" masquerade\n",
				n->bridge, n->cidr);
		/*
		 * A forward used from the network's own subnet (a neighbour,
		 * or another tenant's overlapping one): the answer must come
		 * back through the host to be un-NATed, not straight over the
		 * bridge. Matched by source, as a packet routed back out of
		 * the interface it came in by has no iifname here.
		 */
		fprintf(g->f, "\t\tct status dnat oifname \"%s\" ip saddr %s masquerade\n",
			n->bridge, n->cidr);
	}
	fprintf(g->f, "\t}\n");
}

/*
 * Overlapping subnets (netroute.h): a zone per bridge for what it sends
 * (original direction: replies from outside are looked up in the default
 * zone, where masquerade made their tuples unique), a connection mark
 * per bridge (or per forward's network, set with its DNAT), and every
 * packet of a marked connection marked for the policy rules: replies
 * must find their bridge, and so must a forward's later packets (only
 * its first one passes the nat chain that routed it).
 */
static void fw_overlap_chains(struct fw_gen *g)
{
	/*
	 * DHCP stays in the default zone: every client's first request has
	 * the same tuple (0.0.0.0:68 -> 255.255.255.255:67), so zoned ones
	 * from two bridges would share one reply tuple and the second would
	 * be dropped; dnsmasq answers on sockets bound to their bridge anyway.
	 */
	fprintf(g->f, "\tchain overlap_zone {\n"
		      "\t\ttype filter hook prerouting priority raw; policy accept;\n"
		      "\t\tiifname \"" FW_BRIDGE_PREFIX "*\" udp dport 67 accept\n");
	for (size_t i = 0; i < g->nnets; i++) {
		if (netr_routed(g->nets[i].id))
			fprintf(g->f, "\t\tiifname \"%s\" ct original zone set %" PRId64 "\n",
				g->nets[i].bridge, g->nets[i].id);
	}
	fprintf(g->f, "\t}\n\tchain overlap_mark {\n"
		      "\t\ttype filter hook prerouting priority mangle; policy accept;\n"
		      "\t\tct mark != 0 meta mark set ct mark\n");
	for (size_t i = 0; i < g->nnets; i++) {
		if (netr_routed(g->nets[i].id))
			fprintf(g->f, "\t\tiifname \"%s\" ct state new ct mark set %" PRId64 "\n",
				g->nets[i].bridge, g->nets[i].id);
	}
	/* The host's own answers (DNS, ping) to an instance: rerouted by the mark too. */
	fprintf(g->f, "\t}\n\tchain overlap_route {\n"
		      "\t\ttype route hook output priority mangle; policy accept;\n"
		      "\t\tct mark != 0 meta mark set ct mark\n"
		      "\t}\n");
}

static void fw_inet_table(struct fw_gen *g, const json_t *fwds)
{
	fprintf(g->f, "table inet bunshin {}\ndelete table inet bunshin\ntable inet bunshin {\n"
		      "\tcounter tenant {}\n\tcounter host {}\n\tcounter isolated {}\n"
		      "\tcounter inbound {}\n\tcounter spoof {}\n");
	fw_overlap_chains(g);
	fw_forward_chain(g, fwds);
	fw_input_chain(g);
	fw_dnat_chain(g, fwds, "prerouting", "prerouting");
	fw_dnat_chain(g, fwds, "output", "output");
	fw_postrouting_chain(g);
	fprintf(g->f, "}\n");
}

/* ---- table bridge bunshin ---- */

static void fw_port_chain(struct fw_gen *g, int64_t id, const char *mac, const char *ip)
{
	fprintf(g->f,
		"\tchain port_%" PRId64 " {\n"
		"\t\tether saddr != %s counter name \"spoof\" drop\n"
		"\t\tether type arp arp htype 1 arp ptype ip arp saddr ether %s"
		" arp saddr ip { %s, 0.0.0.0 } accept\n"
		"\t\tether type ip ip saddr %s accept\n"
		"\t\tether type ip ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp dport 67 accept\n"
		"\t\tether type ip6 counter name \"ipv6\" drop\n"
		"\t\tcounter name \"spoof\" drop\n"
		"\t}\n",
		id, mac, mac, ip, ip);
}

static void fw_bridge_table(struct fw_gen *g, const json_t *ports)
{
	char mac[IPAM_MAC_STRLEN], ip[IPAM_ADDR_STRLEN];
	const json_t *row;
	size_t i;

	fprintf(g->f,
		"table bridge bunshin {}\ndelete table bridge bunshin\ntable bridge bunshin {\n"
		"\tcounter spoof {}\n\tcounter ipv6 {}\n");
	json_array_foreach(ports, i, row)
	{
		int64_t id = fw_i(row, "instance_id");

		if (id > 0 && fw_mac(fw_s(row, "mac"), mac) && fw_addr(fw_s(row, "ip"), ip))
			fw_port_chain(g, id, mac, ip);
	}
	fprintf(g->f, "\tchain prerouting {\n"
		      "\t\ttype filter hook prerouting priority filter; policy accept;\n");
	json_array_foreach(ports, i, row)
	{
		int64_t id = fw_i(row, "instance_id");

		if (id > 0 && fw_mac(fw_s(row, "mac"), mac) && fw_addr(fw_s(row, "ip"), ip))
			fprintf(g->f,
				"\t\tiifname \"" FW_TAP_PREFIX "%" PRId64 "\" jump port_%" PRId64
				"\n",
				id, id);
		else
			g->skipped++;
	}
	/* A tap with no (valid) port: nothing it sends is trusted. */
	fprintf(g->f, "\t\tiifname \"" FW_TAP_PREFIX "*\" counter name \"spoof\" drop\n\t}\n}\n");
}

char *fw_ruleset(const json_t *nets, const json_t *ports, const json_t *fwds, int *skipped)
{
	struct fw_gen g = {0};
	char *text = NULL;
	size_t size = 0;

	g.f = open_memstream(&text, &size);
	if (!g.f)
		return NULL;
	if (fw_nets_load(&g, nets)) {
		fclose(g.f);
		free(text);
		return NULL;
	}
	fw_inet_table(&g, fwds);
	fw_bridge_table(&g, ports);
	free(g.nets);
	if (fclose(g.f)) {
		free(text);
		return NULL;
	}
	if (skipped)
		*skipped = g.skipped;
	return text;
}
