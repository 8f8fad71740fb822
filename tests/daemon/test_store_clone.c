// SPDX-License-Identifier: MIT
/*
 * instance_clone on a real SQLite file: N rows and ports in one
 * transaction, all or none under the quota and a taken name, each row
 * naming its source.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/daemon/store.h"

static char dir[] = "/tmp/bunshin-storeclone-XXXXXX";
static char path[256];
static struct store *s;
static int64_t tenant, src;

static void setup(void)
{
	struct store_quota q = {5, 20, 5 * 64};
	struct store_network_new n = {0, "default", "10.9.0.0/24"};
	struct error err = {0};
	int64_t flavor, image, net;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/state.db", dir);
	s = store_sqlite_open(path, &err);
	cr_assert_not_null(s, "%s", err.msg);
	cr_assert_eq(STORE(s, tenant_create, "team-a", &q, &tenant, &err), 0, "%s", err.msg);
	cr_assert_eq(STORE(s, flavor_create, &(struct store_flavor_new){"tiny", 1, 64, 0, 0},
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
	n.tenant_id = tenant;
	cr_assert_eq(STORE(s, network_create, &n, &net, &err), 0, "%s", err.msg);
	cr_assert_eq(STORE(s, instance_create_port,
			   &(struct store_instance_new){tenant, "web", flavor, image, "running",
							"always"},
			   NULL, net, &src, &err),
		     0, "%s", err.msg);
}

static void teardown(void)
{
	char cmd[300];

	s->ops->close(s);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_expect_eq(system(cmd), 0);
}

TestSuite(store_clone, .init = setup, .fini = teardown);

static size_t count(void)
{
	struct error err = {0};
	json_t *all;
	size_t n;

	cr_assert_eq(STORE(s, instance_list, tenant, &all, &err), 0, "%s", err.msg);
	n = json_array_size(all);
	json_decref(all);
	return n;
}

Test(store_clone, clones_are_rows_with_ports_and_a_source)
{
	struct error err = {0};
	int64_t ids[3];
	json_t *a, *b;

	cr_assert_eq(STORE(s, instance_clone, src, "web", 3, NULL, ids, &err), 0, "%s", err.msg);
	cr_expect_eq(count(), 4);
	cr_assert_eq(STORE(s, instance_get, tenant, "web-1", &a, &err), 0, "%s", err.msg);
	cr_assert_eq(STORE(s, instance_get, tenant, "web-3", &b, &err), 0, "%s", err.msg);
	cr_expect_eq(json_integer_value(json_object_get(a, "id")), ids[0]);
	cr_expect_eq(json_integer_value(json_object_get(b, "id")), ids[2]);
	cr_expect_eq(json_integer_value(json_object_get(a, "cloned_from")), src);
	cr_expect_str_eq(json_string_value(json_object_get(a, "state")), "starting");
	cr_expect_str_eq(json_string_value(json_object_get(a, "restart_policy")), "always");
	cr_expect_str_eq(json_string_value(json_object_get(a, "network")), "default");
	cr_expect_str_neq(json_string_value(json_object_get(a, "ip")),
			  json_string_value(json_object_get(b, "ip")));
	cr_expect_str_neq(json_string_value(json_object_get(a, "mac")),
			  json_string_value(json_object_get(b, "mac")));
	json_decref(a);
	json_decref(b);
	/* the source's own row says nothing */
	cr_assert_eq(STORE(s, instance_get, tenant, "web", &a, &err), 0);
	cr_expect(json_is_null(json_object_get(a, "cloned_from")));
	json_decref(a);
}

Test(store_clone, all_or_none)
{
	struct error err = {0};
	int64_t ids[8];

	/* 1 + 5 > 5 instances: the first four would fit, none is made */
	cr_expect_eq(STORE(s, instance_clone, src, "web", 5, NULL, ids, &err), -EDQUOT);
	cr_expect(strstr(err.msg, "instances"), "%s", err.msg);
	cr_expect_eq(count(), 1);
	/* the host's capacity */
	cr_expect_eq(STORE(s, instance_clone, src, "web", 2,
			   &(struct store_capacity){.vcpus = 2, .ram_mib = 1024}, ids, &err),
		     -ENOSPC);
	cr_expect_eq(count(), 1);
	/* a name taken on the second: the first goes too */
	cr_assert_eq(STORE(s, instance_clone, src, "x", 1, NULL, ids, &err), 0, "%s", err.msg);
	cr_expect_eq(STORE(s, instance_clone, src, "x", 2, NULL, ids, &err), -EEXIST);
	cr_expect_eq(count(), 2);
	cr_expect_eq(STORE(s, instance_clone, 999, "y", 1, NULL, ids, &err), -ENOENT);
	cr_expect_eq(count(), 2);
}
