// SPDX-License-Identifier: MIT
/*
 * The SQLite store's networks and ports (schema version 5): addresses are
 * allocated inside the instance-create transaction, never twice while a
 * port holds one, released with the instance; a network in use stays.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/daemon/store.h"

static char dir[] = "/tmp/bunshin-storenet-XXXXXX";
static char path[256];
static struct store *s;
static int64_t tenant, flavor, image;

static void setup(void)
{
	struct store_quota q = {100, 1000, 1 << 30};
	struct error err = {0};

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/state.db", dir);
	s = store_sqlite_open(path, &err);
	cr_assert_not_null(s, "%s", err.msg);
	cr_assert_eq(STORE(s, tenant_create, "team-a", &q, &tenant, &err), 0, "%s", err.msg);
	cr_assert_eq(STORE(s, flavor_create, &(struct store_flavor_new){"small", 1, 64, 0, 0},
			   &flavor, &err),
		     0, "%s", err.msg);
	cr_assert_eq(STORE(s, image_create,
			   &(struct store_image_new){.name = "img",
						     .kind = "kernel",
						     .path = "/x",
						     .cmdline = "test=boot",
						     .size = 1,
						     .sha256 = "00"},
			   &image, &err),
		     0, "%s", err.msg);
}

static void teardown(void)
{
	char cmd[300];

	s->ops->close(s);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_expect_eq(system(cmd), 0);
}

TestSuite(store_net, .init = setup, .fini = teardown);

static int64_t net_new(const char *name, const char *cidr)
{
	struct store_network_new n = {tenant, name, cidr};
	struct error err = {0};
	int64_t id;

	cr_assert_eq(STORE(s, network_create, &n, &id, &err), 0, "%s", err.msg);
	return id;
}

static int inst_new(const char *name, int64_t net, int64_t *id)
{
	struct store_instance_new in = {tenant, name, flavor, image, "stopped", NULL};
	struct error err = {0};

	return STORE(s, instance_create_port, &in, NULL, net, id, &err);
}

static const char *inst_field(int64_t id, const char *key, char *buf, size_t size)
{
	struct error err = {0};
	char ref[24];
	json_t *row;

	snprintf(ref, sizeof(ref), "%lld", (long long)id);
	cr_assert_eq(STORE(s, instance_get, 0, ref, &row, &err), 0, "%s", err.msg);
	snprintf(buf, size, "%s", json_string_value(json_object_get(row, key)) ?: "(null)");
	json_decref(row);
	return buf;
}

Test(store_net, network_has_bridge_and_unique_name)
{
	struct store_network_new dup = {0, "net1", "10.1.0.0/24"};
	struct error err = {0};
	int64_t id = net_new("net1", "10.1.0.0/24"), other;
	char ref[24], want[32];
	json_t *row;

	dup.tenant_id = tenant;
	cr_expect_eq(STORE(s, network_create, &dup, &other, &err), -EEXIST);
	snprintf(ref, sizeof(ref), "%lld", (long long)id);
	snprintf(want, sizeof(want), "bn-%lld", (long long)id);
	cr_assert_eq(STORE(s, network_get, tenant, "net1", &row, &err), 0, "%s", err.msg);
	cr_expect_str_eq(json_string_value(json_object_get(row, "bridge")), want);
	cr_expect_str_eq(json_string_value(json_object_get(row, "cidr")), "10.1.0.0/24");
	json_decref(row);
	/* Another tenant's view: absent. */
	cr_expect_eq(STORE(s, network_get, tenant + 1000, ref, &row, &err), -ENOENT);
}

Test(store_net, addresses_unique_released_and_reused)
{
	int64_t net = net_new("net1", "10.1.0.0/29"), a, b, c, d;
	char ip[32], mac_a[32], mac_b[32];

	cr_assert_eq(inst_new("a", net, &a), 0);
	cr_assert_eq(inst_new("b", net, &b), 0);
	cr_expect_str_eq(inst_field(a, "ip", ip, sizeof(ip)), "10.1.0.2");
	cr_expect_str_eq(inst_field(b, "ip", ip, sizeof(ip)), "10.1.0.3");
	inst_field(a, "mac", mac_a, sizeof(mac_a));
	inst_field(b, "mac", mac_b, sizeof(mac_b));
	cr_expect(!strncmp(mac_a, "02:b5:", 6), "%s", mac_a);
	cr_expect_str_neq(mac_a, mac_b);
	/* The address goes with the instance, and the lowest free one is handed out next. */
	cr_assert_eq(STORE(s, instance_delete, a, &(struct error){0}), 0);
	cr_assert_eq(inst_new("c", net, &c), 0);
	cr_expect_str_eq(inst_field(c, "ip", ip, sizeof(ip)), "10.1.0.2");
	/* .2 .. .6 are the ports of a /29: fill it, then one more is refused whole. */
	for (int i = 0; i < 3; i++) {
		char name[8];

		snprintf(name, sizeof(name), "f%d", i);
		cr_assert_eq(inst_new(name, net, &d), 0);
	}
	cr_expect_eq(inst_new("full", net, &d), -ENOSPC);
	cr_expect_eq(STORE(s, instance_get, 0, "full", &(json_t *){NULL}, &(struct error){0}),
		     -ENOENT);
}

Test(store_net, network_in_use_stays)
{
	int64_t net = net_new("net1", "10.1.0.0/24"), a;
	struct error err = {0};
	json_t *ports;

	cr_assert_eq(inst_new("a", net, &a), 0);
	cr_expect_eq(STORE(s, network_delete, net, &err), -EBUSY);
	cr_assert_eq(STORE(s, port_list, 0, &ports, &err), 0, "%s", err.msg);
	cr_expect_eq(json_array_size(ports), 1);
	json_decref(ports);
	cr_assert_eq(STORE(s, instance_delete, a, &err), 0, "%s", err.msg);
	cr_expect_eq(STORE(s, network_delete, net, &err), 0, "%s", err.msg);
	cr_expect_eq(STORE(s, network_delete, net, &err), -ENOENT);
}

Test(store_net, no_network_no_port)
{
	char ip[32];
	int64_t a;

	cr_assert_eq(inst_new("a", 0, &a), 0);
	cr_expect_str_eq(inst_field(a, "ip", ip, sizeof(ip)), "(null)");
}

/*
 * A network's instances are ports of one Linux bridge, which takes 1023
 * taps: a bigger subnet does not make room for more (the 1024th is refused
 * here, with the reason, instead of failing at the bridge).
 */
Test(store_net, a_network_holds_what_one_bridge_can)
{
	struct store_quota q = {2000, 2000, 1 << 30};
	struct error err = {0};
	int64_t net = net_new("big", "10.200.0.0/20"), id;
	struct store_instance_new in = {tenant, "one-more", flavor, image, "stopped", NULL};
	char name[32];

	cr_assert_eq(STORE(s, quota_set, tenant, &q, &err), 0, "%s", err.msg);
	for (int i = 0; i < STORE_NETWORK_PORTS_MAX; i++) {
		snprintf(name, sizeof(name), "i%d", i);
		cr_assert_eq(inst_new(name, net, &id), 0, "instance %d", i);
	}
	cr_expect_eq(STORE(s, instance_create_port, &in, NULL, net, &id, &err), -ENOSPC);
	cr_expect(strstr(err.msg, "holds at most 1023"), "%s", err.msg);
}
