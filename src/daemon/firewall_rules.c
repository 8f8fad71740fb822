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
 *
 * What belongs to one port or one forward is an element of a named set or
 * map (fw_port_kind, fw_fwd_kind below) that a constant number of rules
 * look up: adding or removing an instance or a forward is then a few
 * element lines (fw_port_elements(), fw_forward_elements()), not a new
 * ruleset. Only networks still have rules of their own.
 */
#include <errno.h>
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

/* ---- per-port and per-forward elements ---- */

/* A set or map of the tables: what a row of its kind puts there. */
struct fw_set {
	const char *kw, *name, *type;
};

struct fw_port {
	int64_t id;
	char mac[IPAM_MAC_STRLEN], ip[IPAM_ADDR_STRLEN];
};

struct fw_fwd {
	const char *proto;
	int64_t host_port, guest_port, mark;
	char ip[IPAM_ADDR_STRLEN], bridge[16];
};

union fw_row {
	struct fw_port port;
	struct fw_fwd fwd;
};

/* A kind of row (port, forward): its sets, its parser, its elements. */
struct fw_kind {
	const char *family;
	const struct fw_set *sets;
	int nsets;
	bool (*parse)(const json_t *row, union fw_row *r);
	/* Whether r has an element in set i; then writes its key, and its data unless key_only. */
	bool (*in)(const union fw_row *r, int i);
	void (*elem)(FILE *f, const union fw_row *r, int i, bool key_only);
};

/*
 * A tap may send from its MAC (port_macs) and, for IPv4 and ARP, from its
 * MAC and address together (ports).
 */
static const struct fw_set fw_port_sets[] = {
	{"set", "port_macs", "ifname . ether_addr"},
	{"set", "ports", "ifname . ether_addr . ipv4_addr"},
};

static bool fw_port_parse(const json_t *row, union fw_row *r)
{
	r->port.id = fw_i(row, "instance_id");
	return r->port.id > 0 && fw_mac(fw_s(row, "mac"), r->port.mac) &&
	       fw_addr(fw_s(row, "ip"), r->port.ip);
}

static bool fw_port_in(const union fw_row *r, int i)
{
	(void)r;
	(void)i;
	return true;
}

static void fw_port_elem(FILE *f, const union fw_row *r, int i, bool key_only)
{
	(void)key_only;
	fprintf(f, "\"" FW_TAP_PREFIX "%" PRId64 "\" . %s", r->port.id, r->port.mac);
	if (i == 1)
		fprintf(f, " . %s", r->port.ip);
}

static const struct fw_kind fw_port_kind = {
	.family = "bridge",
	.sets = fw_port_sets,
	.nsets = 2,
	.parse = fw_port_parse,
	.in = fw_port_in,
	.elem = fw_port_elem,
};

/*
 * A forward: its DNAT by protocol and host port; the mark that routes it
 * into an overlapping network (netroute.h); what its DNATed packets may
 * then pass to its bridge. Every key starts with protocol and host port,
 * unique among forwards, so no two forwards ever share an element.
 */
static const struct fw_set fw_fwd_sets[] = {
	{"map", "fwd_dnat", "inet_proto . inet_service : ipv4_addr . inet_service"},
	{"map", "fwd_mark", "inet_proto . inet_service : mark"},
	{"set", "fwd_in", "inet_proto . inet_service . ifname . ipv4_addr . inet_service"},
};

static bool fw_fwd_parse(const json_t *row, union fw_row *r)
{
	struct fw_fwd *w = &r->fwd;
	const char *p = fw_s(row, "proto"), *bridge = fw_s(row, "bridge");

	w->host_port = fw_i(row, "host_port");
	w->guest_port = fw_i(row, "guest_port");
	if (!p || (strcmp(p, "tcp") && strcmp(p, "udp")) || !fw_bridge_ok(bridge) ||
	    !fw_addr(fw_s(row, "ip"), w->ip))
		return false;
	w->proto = !strcmp(p, "tcp") ? "tcp" : "udp";
	snprintf(w->bridge, sizeof(w->bridge), "%s", bridge);
	w->mark = netr_routed(netr_bridge_id(bridge)) ? netr_bridge_id(bridge) : 0;
	return w->host_port >= 1 && w->host_port <= 65535 && w->guest_port >= 1 &&
	       w->guest_port <= 65535;
}

static bool fw_fwd_in(const union fw_row *r, int i)
{
	return i != 1 || r->fwd.mark;
}

static void fw_fwd_elem(FILE *f, const union fw_row *r, int i, bool key_only)
{
	const struct fw_fwd *w = &r->fwd;

	fprintf(f, "%s . %" PRId64, w->proto, w->host_port);
	if (i == 2)
		fprintf(f, " . \"%s\" . %s . %" PRId64, w->bridge, w->ip, w->guest_port);
	else if (i == 0 && !key_only)
		fprintf(f, " : %s . %" PRId64, w->ip, w->guest_port);
	else if (i == 1 && !key_only)
		fprintf(f, " : %" PRId64, w->mark);
}

static const struct fw_kind fw_fwd_kind = {
	.family = "inet",
	.sets = fw_fwd_sets,
	.nsets = 3,
	.parse = fw_fwd_parse,
	.in = fw_fwd_in,
	.elem = fw_fwd_elem,
};

/* Set i of kind k, declared with the elements of rows; rows that do not parse counted once. */
static void fw_set_decl(struct fw_gen *g, const struct fw_kind *k, int i, const json_t *rows)
{
	const char *sep = "\t\telements = { ";
	const json_t *row;
	union fw_row r;
	size_t n;

	fprintf(g->f, "\t%s %s {\n\t\ttype %s\n", k->sets[i].kw, k->sets[i].name, k->sets[i].type);
	json_array_foreach(rows, n, row)
	{
		if (!k->parse(row, &r)) {
			g->skipped += !i;
			continue;
		}
		if (!k->in(&r, i))
			continue;
		fputs(sep, g->f);
		k->elem(g->f, &r, i, false);
		sep = ",\n\t\t\t";
	}
	fprintf(g->f, "%s\t}\n", *sep == ',' ? " }\n" : "");
}

static void fw_sets_decl(struct fw_gen *g, const struct fw_kind *k, const json_t *rows)
{
	for (int i = 0; i < k->nsets; i++)
		fw_set_decl(g, k, i, rows);
}

/*
 * Removing is "add, then delete" each element in one transaction: an
 * element already gone is no error, and a map that holds the key with
 * other data (another forward's, on the same host port) fails the whole
 * batch rather than lose it.
 */
static int fw_elements(const struct fw_kind *k, const json_t *row, bool add, char **out)
{
	union fw_row r;
	size_t size = 0;
	FILE *f;

	*out = NULL;
	if (!k->parse(row, &r))
		return -EINVAL;
	f = open_memstream(out, &size);
	if (!f)
		return -ENOMEM;
	for (int i = 0; i < k->nsets; i++) {
		if (!k->in(&r, i))
			continue;
		fprintf(f, "add element %s bunshin %s { ", k->family, k->sets[i].name);
		k->elem(f, &r, i, false);
		fprintf(f, " }\n");
		if (add)
			continue;
		fprintf(f, "delete element %s bunshin %s { ", k->family, k->sets[i].name);
		k->elem(f, &r, i, true);
		fprintf(f, " }\n");
	}
	if (fclose(f)) {
		free(*out);
		*out = NULL;
		return -ENOMEM;
	}
	return 0;
}

int fw_port_elements(const json_t *port, bool add, char **out)
{
	return fw_elements(&fw_port_kind, port, add, out);
}

int fw_forward_elements(const json_t *fwd, bool add, char **out)
{
	return fw_elements(&fw_fwd_kind, fwd, add, out);
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

static void fw_forward_chain(struct fw_gen *g)
{
	fprintf(g->f, "\tchain forward {\n"
		      "\t\ttype filter hook forward priority filter; policy accept;\n"
		      "\t\tct state established,related accept\n");
	fw_forward_isolated(g);
	/* A forward's DNATed packets, by its protocol and host port (the original tuple's). */
	fprintf(g->f, "\t\tct status dnat meta l4proto { tcp, udp } meta l4proto . ct original "
		      "proto-dst . oifname . ip daddr . th dport @fwd_in accept\n");
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

/*
 * DNAT in prerouting (from outside and from instances) and output (from
 * the host itself). A forward into network ID is routed by its mark
 * (netroute.h): its address may be another network's too, and the main
 * table knows only one.
 */
static void fw_dnat_chain(struct fw_gen *g, const char *name, const char *hook)
{
	/* "dstnat" is prerouting's name for -100 only: output takes the number. */
	fprintf(g->f,
		"\tchain %s {\n\t\ttype nat hook %s priority -100; policy accept;\n"
		"\t\tfib daddr type local meta mark set meta l4proto . th dport map @fwd_mark"
		" ct mark set meta mark\n"
		"\t\tfib daddr type local dnat ip to meta l4proto . th dport map @fwd_dnat\n",
		name, hook);
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
	fw_sets_decl(g, &fw_fwd_kind, fwds);
	fw_overlap_chains(g);
	fw_forward_chain(g);
	fw_input_chain(g);
	fw_dnat_chain(g, "prerouting", "prerouting");
	fw_dnat_chain(g, "output", "output");
	fw_postrouting_chain(g);
	fprintf(g->f, "}\n");
}

/* ---- table bridge bunshin ---- */

/*
 * A tap's frames: from its port's MAC, and for IPv4 and ARP from its MAC
 * and address (or 0.0.0.0: a DHCP request, an ARP probe); IPv6 and any
 * other ether type dropped. A tap with no (valid) port matches nothing:
 * nothing it sends is trusted.
 */
static void fw_bridge_table(struct fw_gen *g, const json_t *ports)
{
	fprintf(g->f,
		"table bridge bunshin {}\ndelete table bridge bunshin\ntable bridge bunshin {\n"
		"\tcounter spoof {}\n\tcounter ipv6 {}\n");
	fw_sets_decl(g, &fw_port_kind, ports);
	fprintf(g->f,
		"\tchain prerouting {\n"
		"\t\ttype filter hook prerouting priority filter; policy accept;\n"
		"\t\tiifname != \"" FW_TAP_PREFIX "*\" accept\n"
		"\t\tiifname . ether saddr != @port_macs counter name \"spoof\" drop\n"
		"\t\tether type arp arp htype 1 arp ptype ip"
		" iifname . arp saddr ether . arp saddr ip @ports accept\n"
		"\t\tether type arp arp htype 1 arp ptype ip arp saddr ip 0.0.0.0"
		" iifname . arp saddr ether @port_macs accept\n"
		"\t\tether type ip iifname . ether saddr . ip saddr @ports accept\n"
		"\t\tether type ip ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp dport 67 accept\n"
		"\t\tether type ip6 counter name \"ipv6\" drop\n"
		"\t\tcounter name \"spoof\" drop\n"
		"\t}\n}\n");
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
