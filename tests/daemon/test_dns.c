// SPDX-License-Identifier: MIT
/*
 * DNS on instance networks: each network's dnsmasq answers on its
 * gateway with its instances' names (networks that share a gateway
 * address: test_overlap.c). Fake instances (fakeinst.h) ask with a DNS
 * message of the test's making.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dharness.h"
#include "fakeinst.h"

static struct dh h;

static void setup(void)
{
	if (access("/usr/sbin/dnsmasq", X_OK) && access("/sbin/dnsmasq", X_OK) &&
	    access("/usr/bin/dnsmasq", X_OK))
		cr_skip_test("skipped: no dnsmasq (dnsmasq-base) for bunshind to run");
	if (unshare(CLONE_NEWNET))
		cr_skip_test("cannot unshare a network namespace: %s", strerror(errno));
	dh_start(&h, NULL);
}

static void teardown(void)
{
	dh_cleanup(&h);
}

TestSuite(dns, .init = setup, .fini = teardown, .timeout = 300);

static const char *jstr(const json_t *o, const char *path1, const char *key)
{
	if (path1)
		o = json_object_get(o, path1);
	return json_string_value(json_object_get(o, key)) ?: "";
}

struct inst {
	int64_t nid;
	char mac[32], ip[32], cidr[32], gw[32], bridge[16];
};

static void create(const char *token, const char *name, const char *network, struct inst *in)
{
	char body[512], path[128];
	json_t *out;

	snprintf(body, sizeof(body),
		 "{\"name\":\"%s\",\"flavor\":\"tiny\",\"image\":\"test-guest\",\"start\":false,"
		 "\"network\":\"%s\"}",
		 name, network);
	cr_assert_eq(dh_req(&h, token, "POST", "/v1/instances", body, &out), 201, "%s: %s", name,
		     jstr(out, "error", "message"));
	snprintf(in->mac, sizeof(in->mac), "%s", jstr(out, "port", "mac"));
	snprintf(in->ip, sizeof(in->ip), "%s", jstr(out, "port", "ip"));
	json_decref(out);
	snprintf(path, sizeof(path), "/v1/networks/%s", network);
	cr_assert_eq(dh_req(&h, token, "GET", path, NULL, &out), 200);
	in->nid = json_integer_value(json_object_get(out, "id"));
	snprintf(in->gw, sizeof(in->gw), "%s", jstr(out, NULL, "gateway"));
	snprintf(in->cidr, sizeof(in->cidr), "%s/%s", in->ip,
		 strchr(jstr(out, NULL, "cidr"), '/') + 1);
	snprintf(in->bridge, sizeof(in->bridge), "bn-%lld", (long long)in->nid);
	json_decref(out);
}

/* The argument of a dnsmasq of network nid that starts with prefix, or "". */
static const char *dnsmasq_arg(int64_t nid, const char *prefix)
{
	static char arg[256];
	char path[256], buf[8192];
	FILE *f;
	int pid = 0;
	size_t n;

	arg[0] = 0;
	snprintf(path, sizeof(path), "%s/networks/%lld/dnsmasq.pid", h.dir, (long long)nid);
	f = fopen(path, "r");
	if (!f)
		return arg;
	if (fscanf(f, "%d", &pid) != 1)
		pid = 0;
	fclose(f);
	snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
	f = fopen(path, "r");
	if (!f)
		return arg;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	for (size_t off = 0; off < n; off += strlen(buf + off) + 1) {
		if (!strncmp(buf + off, prefix, strlen(prefix))) {
			snprintf(arg, sizeof(arg), "%s", buf + off);
			break;
		}
	}
	return arg;
}

Test(dns, instance_names_resolve_on_the_gateway)
{
	struct inst a, b;
	struct fake f;
	char want[64];

	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/networks",
			    "{\"name\":\"lab\",\"cidr\":\"10.55.0.0/24\"}", NULL),
		     201);
	create(h.admin, "web1", "lab", &a);
	create(h.admin, "db1", "lab", &b);
	fake_make(&f, "vf-a", a.bridge, a.mac, a.cidr, a.gw);
	cr_expect_str_eq(fake_dns_a_wait(&f, a.gw, "db1", 10000), b.ip);
	cr_expect_str_eq(fake_dns_a_wait(&f, a.gw, "db1.bunshin.internal", 3000), b.ip);
	cr_expect_str_eq(fake_dns_a_wait(&f, a.gw, "web1.bunshin.internal", 3000), a.ip);
	cr_expect_str_eq(fake_dns_a(&f, a.gw, "nobody.bunshin.internal"), "",
			 "a name no instance has");
	/* the DHCP answer's DNS server is the gateway */
	snprintf(want, sizeof(want), "--dhcp-option=option:dns-server,%s", a.gw);
	cr_expect_str_eq(dnsmasq_arg(a.nid, "--dhcp-option=option:dns-server"), want);

	/* a new instance resolves without a restart; a deleted one no longer does */
	struct inst c;
	create(h.admin, "cache1", "lab", &c);
	cr_expect_str_eq(fake_dns_a_wait(&f, a.gw, "cache1", 10000), c.ip);
	cr_assert_eq(dh_req(&h, h.admin, "DELETE", "/v1/instances/db1", NULL, NULL), 204);
	for (int t = 0; t < 10000 && *fake_dns_a(&f, a.gw, "db1"); t += 250)
		usleep(250000);
	cr_expect_str_eq(fake_dns_a(&f, a.gw, "db1"), "", "a deleted instance still resolves");
	fake_free(&f);
}
