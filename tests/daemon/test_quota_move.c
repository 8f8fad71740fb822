// SPDX-License-Identifier: MIT
/*
 * POST /v1/quotas/move and `bunshin quota move`: capacity from one team to
 * another in one step. The donor keeps at least what its instances hold;
 * any refusal changes neither quota. Instances are created stopped: they
 * hold quota without booting.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dharness.h"

static struct dh h;
static char tok_a[80], tok_b[80], viewer[80];

static void setup(void)
{
	dh_start(&h, NULL);
	dh_tenant_user(&h, "team-a", "alice", "member", tok_a, sizeof(tok_a));
	dh_tenant_user(&h, "team-b", "bob", "member", tok_b, sizeof(tok_b));
}

static void teardown(void)
{
	dh_cleanup(&h);
}

TestSuite(qmove, .init = setup, .fini = teardown, .timeout = 120);

struct qm {
	long long instances, vcpus, ram_mib;
};

static struct qm qm_quota(const char *tenant)
{
	char path[128];
	json_t *out = NULL;
	struct qm q;

	snprintf(path, sizeof(path), "/v1/tenants/%s/quota", tenant);
	cr_assert_eq(dh_req(&h, h.admin, "GET", path, NULL, &out), 200);
	q = (struct qm){json_integer_value(json_object_get(out, "quota_instances")),
			json_integer_value(json_object_get(out, "quota_vcpus")),
			json_integer_value(json_object_get(out, "quota_ram_mib"))};
	json_decref(out);
	return q;
}

static void qm_expect(const char *tenant, long long inst, long long vcpus, long long ram)
{
	struct qm q = qm_quota(tenant);

	cr_expect_eq(q.instances, inst, "%s instances %lld", tenant, q.instances);
	cr_expect_eq(q.vcpus, vcpus, "%s vcpus %lld", tenant, q.vcpus);
	cr_expect_eq(q.ram_mib, ram, "%s ram_mib %lld", tenant, q.ram_mib);
}

static int qm_move(const char *token, const char *body, json_t **out)
{
	return dh_req(&h, token, "POST", "/v1/quotas/move", body, out);
}

static void qm_refused(const char *body, int want, const char *field)
{
	json_t *out = NULL;
	int st = qm_move(h.admin, body, &out);

	cr_expect_eq(st, want, "%s: %d, not %d: %s", body, st, want,
		     json_string_value(json_object_get(json_object_get(out, "error"), "message")));
	if (field)
		cr_expect_str_eq(
			json_string_value(json_object_get(json_object_get(out, "error"), "field"))
				?: "(none)",
			field, "%s: %s", body,
			json_string_value(
				json_object_get(json_object_get(out, "error"), "message")));
	json_decref(out);
}

Test(qmove, moves_quota_in_one_step)
{
	json_t *out = NULL;

	cr_assert_eq(qm_move(h.admin,
			     "{\"from\":\"team-a\",\"to\":\"team-b\",\"instances\":2,"
			     "\"vcpus\":4,\"ram_mib\":4096}",
			     &out),
		     200);
	cr_expect_eq(json_integer_value(json_object_get(json_object_get(out, "to"), "quota_vcpus")),
		     24);
	json_decref(out);
	qm_expect("team-a", 8, 16, 50 * 1024 - 4096);
	qm_expect("team-b", 12, 24, 50 * 1024 + 4096);
}

Test(qmove, the_donor_keeps_what_it_uses_and_nothing_changes_on_refusal)
{
	json_t *out = NULL;

	/* team-a holds 2 medium instances: 2 of 10 instances, 4 of 20 vCPUs, 4096 MiB */
	for (int i = 0; i < 2; i++) {
		char body[128];

		snprintf(body, sizeof(body),
			 "{\"name\":\"s%d\",\"flavor\":\"medium\",\"image\":\"test-guest\","
			 "\"start\":false}",
			 i);
		cr_assert_eq(dh_req(&h, tok_a, "POST", "/v1/instances", body, &out), 201);
		json_decref(out);
	}
	/* vcpus fits (16 of 16 free), ram does not: neither moves */
	qm_refused("{\"from\":\"team-a\",\"to\":\"team-b\",\"vcpus\":16,\"ram_mib\":50000}", 409,
		   "ram_mib");
	qm_refused("{\"from\":\"team-a\",\"to\":\"team-b\",\"vcpus\":17}", 409, "vcpus");
	qm_refused("{\"from\":\"team-a\",\"to\":\"team-b\",\"instances\":9}", 409, "instances");
	qm_expect("team-a", 10, 20, 50 * 1024);
	qm_expect("team-b", 10, 20, 50 * 1024);
	/* exactly what is free moves */
	cr_expect_eq(qm_move(h.admin,
			     "{\"from\":\"team-a\",\"to\":\"team-b\",\"instances\":8,\"vcpus\":16,"
			     "\"ram_mib\":47104}",
			     NULL),
		     200);
	qm_expect("team-a", 2, 4, 4096);
	/* and the donor, now full, creates nothing more */
	cr_expect_eq(dh_req(&h, tok_a, "POST", "/v1/instances",
			    "{\"name\":\"s9\",\"flavor\":\"tiny\",\"image\":\"test-guest\","
			    "\"start\":false}",
			    &out),
		     409);
	json_decref(out);
}

Test(qmove, bad_requests_are_refused_naming_the_field)
{
	json_t *out = NULL;

	dh_tenant_user(&h, "team-c", "carol", "viewer", viewer, sizeof(viewer));
	cr_expect_eq(qm_move(tok_a, "{\"from\":\"team-a\",\"to\":\"team-b\",\"vcpus\":1}", &out),
		     403);
	json_decref(out);
	cr_expect_eq(qm_move(viewer, "{\"from\":\"team-a\",\"to\":\"team-b\",\"vcpus\":1}", &out),
		     403);
	json_decref(out);
	cr_expect_eq(
		qm_move("bad-token", "{\"from\":\"team-a\",\"to\":\"team-b\",\"vcpus\":1}", &out),
		401);
	json_decref(out);
	qm_refused("{\"from\":\"nope\",\"to\":\"team-b\",\"vcpus\":1}", 404, "from");
	qm_refused("{\"from\":\"team-a\",\"to\":\"nope\",\"vcpus\":1}", 404, "to");
	qm_refused("{\"to\":\"team-b\",\"vcpus\":1}", 400, "from");
	qm_refused("{\"from\":\"team-a\",\"vcpus\":1}", 400, "to");
	qm_refused("{\"from\":\"team-a\",\"to\":\"team-a\",\"vcpus\":1}", 400, "to");
	qm_refused("{\"from\":\"team-a\",\"to\":\"team-b\"}", 400, "instances");
	qm_refused("{\"from\":\"team-a\",\"to\":\"team-b\",\"vcpus\":-1}", 400, "vcpus");
	qm_refused("{\"from\":\"team-a\",\"to\":\"team-b\",\"vcpus\":\"4\"}", 400, "vcpus");
	qm_refused("{\"from\":\"team-a\",\"to\":\"team-b\",\"ram_mib\":1e99}", 400, "ram_mib");
	qm_refused("{\"from\":\"team-a\",\"to\":\"team-b\",\"disk\":1}", 400, "disk");
	qm_refused("{\"from\":7,\"to\":\"team-b\",\"vcpus\":1}", 400, "from");
	qm_refused("[1]", 400, NULL);
	qm_refused("{\"from\":\"team-a\",\"to\":\"team-b\",\"vcpus\":100}", 409, "vcpus");
	cr_expect_eq(dh_req(&h, h.admin, "GET", "/v1/quotas/move", NULL, NULL), 405);
	qm_expect("team-a", 10, 20, 50 * 1024);
	qm_expect("team-b", 10, 20, 50 * 1024);
}

Test(qmove, cli)
{
	char out[4096];

	cr_expect_eq(dh_cli(&h,
			    (const char *[]){"quota", "move", "--from", "team-a", "--to", "team-b",
					     "--vcpus", "4", "--ram", "4096", NULL},
			    out, sizeof(out)),
		     0, "%s", out);
	qm_expect("team-a", 10, 16, 50 * 1024 - 4096);
	qm_expect("team-b", 10, 24, 50 * 1024 + 4096);
	cr_expect_eq(
		dh_cli(&h,
		       (const char *[]){"quota", "move", "--to", "team-b", "--vcpus", "4", NULL},
		       out, sizeof(out)),
		2, "%s", out);
	cr_expect_eq(dh_cli(&h,
			    (const char *[]){"quota", "move", "--from", "team-a", "--to", "team-b",
					     NULL},
			    out, sizeof(out)),
		     2, "%s", out);
	cr_expect_eq(dh_cli(&h,
			    (const char *[]){"quota", "move", "--from", "team-a", "--to", "team-b",
					     "--vcpus", "x", NULL},
			    out, sizeof(out)),
		     2, "%s", out);
	cr_expect_neq(dh_cli(&h,
			     (const char *[]){"quota", "move", "--from", "team-a", "--to", "team-b",
					      "--vcpus", "99", NULL},
			     out, sizeof(out)),
		      0, "%s", out);
	cr_expect(strstr(out, "vcpus"), "%s", out);
	cr_expect_eq(
		dh_cli(&h, (const char *[]){"quota", "move", "--help", NULL}, out, sizeof(out)), 0,
		"%s", out);
	cr_expect(strstr(out, "--from"), "%s", out);
	qm_expect("team-a", 10, 16, 50 * 1024 - 4096);
}
