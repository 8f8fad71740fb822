// SPDX-License-Identifier: MIT
/*
 * The SQLite store against a real file: schema upgrades from every earlier
 * version, quotas inside the create transaction, visibility across tenants.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/daemon/store.h"

static char dir[] = "/tmp/bunshin-store-XXXXXX";
static char path[256];

static void setup(void)
{
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/state.db", dir);
}

static void teardown(void)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_expect_eq(system(cmd), 0);
}

TestSuite(store, .init = setup, .fini = teardown);

static struct store *open_latest(void)
{
	struct error err = {0};
	struct store *s = store_sqlite_open(path, &err);

	cr_assert_not_null(s, "%s", err.msg);
	return s;
}

/* A tenant with a flavor and an image, as most tests want. */
static void seed(struct store *s, int64_t *tenant, int64_t *flavor, int64_t *image)
{
	struct error err = {0};
	struct store_quota q = STORE_DEFAULT_QUOTA;

	cr_assert_eq(STORE(s, tenant_create, "team-a", &q, tenant, &err), 0, "%s", err.msg);
	cr_assert_eq(STORE(s, flavor_create, &(struct store_flavor_new){"small", 2, 512, 0, 0},
			   flavor, &err),
		     0, "%s", err.msg);
	cr_assert_eq(STORE(s, image_create,
			   &(struct store_image_new){.name = "img",
						     .kind = "kernel",
						     .path = "/x",
						     .cmdline = "test=boot",
						     .size = 1,
						     .sha256 = "00"},
			   image, &err),
		     0, "%s", err.msg);
}

Test(store, new_database_has_latest_schema)
{
	struct store *s = open_latest();
	bool empty = false;
	struct error err = {0};

	cr_expect_eq(STORE(s, schema_version), store_sqlite_latest_version());
	cr_expect_eq(STORE(s, is_empty, &empty, &err), 0);
	cr_expect(empty);
	s->ops->close(s);
}

/* Rows as version 1 wrote them: only the columns it had. */
static const char seed_v1[] =
	"INSERT INTO tenants(id, name, created) VALUES(1, 'team-a', 0);"
	"INSERT INTO quotas(tenant_id, instances, vcpus, ram_mib) VALUES(1, 10, 20, 51200);"
	"INSERT INTO flavors(id, name, vcpus, ram_mib, disk_gib, created)"
	" VALUES(1, 'small', 2, 512, 0, 0);"
	"INSERT INTO images(id, name, kind, path, size, sha256, created)"
	" VALUES(1, 'img', 'kernel', '/x', 1, '00', 0);"
	"INSERT INTO instances(tenant_id, name, flavor_id, image_id, state, created, updated)"
	" VALUES(1, 'web1', 1, 1, 'stopped', 0, 0);";

/*
 * Every older version: build the database as that version's bunshind left
 * it, with data in it, then open with this build: the schema reaches the
 * newest version and the data is still there and usable.
 */
Test(store, upgrade_from_every_version)
{
	for (int v = 1; v < store_sqlite_latest_version(); v++) {
		struct error err = {0};
		struct store *s;
		sqlite3 *db;
		int64_t id;
		json_t *row;

		unlink(path);
		s = store_sqlite_open_version(path, v, &err);
		cr_assert_not_null(s, "%s", err.msg);
		cr_assert_eq(STORE(s, schema_version), v);
		s->ops->close(s);
		cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
		cr_assert_eq(sqlite3_exec(db, seed_v1, NULL, NULL, NULL), SQLITE_OK, "v%d: %s", v,
			     sqlite3_errmsg(db));
		sqlite3_close(db);

		s = open_latest();
		cr_expect_eq(STORE(s, schema_version), store_sqlite_latest_version());
		cr_assert_eq(STORE(s, instance_get, 1, "web1", &row, &err), 0, "%s", err.msg);
		cr_expect_str_eq(json_string_value(json_object_get(row, "flavor")), "small");
		/* Columns added by later versions have their defaults on old rows. */
		cr_expect_str_eq(json_string_value(json_object_get(row, "restart_policy")),
				 "never");
		cr_expect_eq(json_integer_value(json_object_get(row, "restarts")), 0);
		cr_expect_null(json_string_value(json_object_get(row, "disk_top")));
		cr_expect_eq(STORE(s, instance_set_disk,
				   json_integer_value(json_object_get(row, "id")),
				   "/clone-2/disk0.live.ovl", "[\"/disk.overlay\"]", &err),
			     0, "%s", err.msg);
		json_decref(row);
		/* Everything works on the upgraded file, the later tables included. */
		cr_expect_eq(STORE(s, event_add,
				   &(struct store_event){1, "u", "POST /v1/x", "web1", "201"},
				   &err),
			     0, "%s", err.msg);
		cr_expect_eq(
			STORE(s, instance_create,
			      &(struct store_instance_new){1, "web2", 1, 1, "stopped", "always"},
			      NULL, &id, &err),
			0, "%s", err.msg);
		s->ops->close(s);
	}
}

Test(store, newer_schema_is_refused)
{
	struct store *s = open_latest();
	struct error err = {0};
	sqlite3 *db;

	s->ops->close(s);
	cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	cr_expect_null(store_sqlite_open(path, &err));
	cr_expect(strstr(err.msg, "newer"), "%s", err.msg);
}

Test(store, quota_counts_every_instance)
{
	struct store *s = open_latest();
	struct error err = {0};
	int64_t t, f, im, id;
	char name[16];
	int ok = 0, ret;

	seed(s, &t, &f, &im);
	cr_assert_eq(STORE(s, quota_set, t, &(struct store_quota){3, 100, 100000}, &err), 0);
	for (int i = 0; i < 5; i++) {
		snprintf(name, sizeof(name), "vm%d", i);
		ret = STORE(s, instance_create,
			    &(struct store_instance_new){t, name, f, im, "stopped", NULL}, NULL,
			    &id, &err);
		if (!ret)
			ok++;
		else
			cr_expect_eq(ret, -EDQUOT, "%s", err.msg);
	}
	cr_expect_eq(ok, 3);
	/* vCPUs: 2 per instance, quota 4 allows two. */
	cr_assert_eq(STORE(s, quota_set, t, &(struct store_quota){10, 7, 100000}, &err), 0);
	ret = STORE(s, instance_create,
		    &(struct store_instance_new){t, "vm9", f, im, "stopped", NULL}, NULL, &id,
		    &err);
	cr_expect_eq(ret, -EDQUOT);
	cr_expect(strstr(err.msg, "vcpus"), "%s", err.msg);
	s->ops->close(s);
}

Test(store, host_capacity_and_names)
{
	struct store *s = open_latest();
	struct error err = {0};
	struct store_capacity cap = {3, 100000};
	int64_t t, f, im, id;

	seed(s, &t, &f, &im);
	cr_expect_eq(STORE(s, instance_create,
			   &(struct store_instance_new){t, "a", f, im, "stopped", NULL}, &cap, &id,
			   &err),
		     0);
	cr_expect_eq(STORE(s, instance_create,
			   &(struct store_instance_new){t, "a", f, im, "stopped", NULL}, NULL, &id,
			   &err),
		     -EEXIST);
	cr_expect_eq(STORE(s, instance_create,
			   &(struct store_instance_new){t, "b", f, im, "stopped", NULL}, &cap, &id,
			   &err),
		     -ENOSPC);
	s->ops->close(s);
}

Test(store, tenants_see_only_their_own)
{
	struct store *s = open_latest();
	struct error err = {0};
	struct store_quota q = STORE_DEFAULT_QUOTA;
	int64_t a, b, f, im, id;
	char ref[24];
	json_t *row = NULL;

	seed(s, &a, &f, &im);
	cr_assert_eq(STORE(s, tenant_create, "team-b", &q, &b, &err), 0);
	cr_assert_eq(STORE(s, instance_create,
			   &(struct store_instance_new){a, "web", f, im, "stopped", NULL}, NULL,
			   &id, &err),
		     0);
	snprintf(ref, sizeof(ref), "%lld", (long long)id);
	cr_expect_eq(STORE(s, instance_get, b, ref, &row, &err), -ENOENT);
	cr_expect_eq(STORE(s, instance_get, b, "web", &row, &err), -ENOENT);
	cr_expect_eq(STORE(s, instance_get, a, ref, &row, &err), 0);
	json_decref(row);
	/* A tenant with an instance cannot go; a rejected delete leaves it whole. */
	cr_expect_eq(STORE(s, tenant_delete, "team-a", &err), -EBUSY);
	cr_expect_eq(STORE(s, tenant_get, "team-a", &row, &err), 0);
	json_decref(row);
	s->ops->close(s);
}

/*
 * An instance id is never handed out twice, not even the newest one after
 * its delete: it names a directory and a VMM socket that a dying VMM of
 * the deleted instance may still hold.
 */
Test(store, instance_ids_are_never_reused)
{
	struct store *s = open_latest();
	struct error err = {0};
	int64_t a, f, im, first, second;

	seed(s, &a, &f, &im);
	cr_assert_eq(STORE(s, instance_create,
			   &(struct store_instance_new){a, "x", f, im, "stopped", NULL}, NULL,
			   &first, &err),
		     0, "%s", err.msg);
	cr_assert_eq(STORE(s, instance_delete, first, &err), 0, "%s", err.msg);
	cr_assert_eq(STORE(s, instance_create,
			   &(struct store_instance_new){a, "x", f, im, "stopped", NULL}, NULL,
			   &second, &err),
		     0, "%s", err.msg);
	cr_expect_gt(second, first);
	s->ops->close(s);
}

Test(store, tokens_resolve_to_users)
{
	struct store *s = open_latest();
	struct error err = {0};
	struct store_principal p;
	int64_t t, f, im, u, k;

	seed(s, &t, &f, &im);
	cr_assert_eq(STORE(s, user_create, t, "alice", STORE_ROLE_VIEWER, &u, &err), 0);
	cr_assert_eq(STORE(s, token_create, u, "abcd", "cli", &k, &err), 0);
	cr_assert_eq(STORE(s, token_lookup, "abcd", &p, &err), 0);
	cr_expect_str_eq(p.user, "alice");
	cr_expect_str_eq(p.tenant, "team-a");
	cr_expect_eq(p.role, STORE_ROLE_VIEWER);
	cr_expect_eq(STORE(s, token_lookup, "abce", &p, &err), -ENOENT);
	cr_expect_eq(STORE(s, token_delete, t + 1, k, &err), -ENOENT);
	cr_expect_eq(STORE(s, token_delete, t, k, &err), 0);
	cr_expect_eq(STORE(s, token_lookup, "abcd", &p, &err), -ENOENT);
	s->ops->close(s);
}
