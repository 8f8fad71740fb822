// SPDX-License-Identifier: MIT
/*
 * POST /v1/quotas/move {"from","to","instances","vcpus","ram_mib"}: the
 * operator moves capacity from one team to another in one step. The store
 * does it in one transaction, so a failure (the donor would keep less than
 * its instances hold) changes neither tenant's quota.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "api.h"

#define QMOVE_MAX_RAM_MIB (1ULL << 40)

/* httpd's field readers answer {"error","field"}: reword as the API's error. */
static bool qmove_fix(struct api_ctx *c, int ret)
{
	char m[256], f[64];

	if (!ret)
		return true;
	snprintf(m, sizeof(m), "%s",
		 json_string_value(json_object_get(c->resp->body, "error")) ?: "bad field");
	snprintf(f, sizeof(f), "%s",
		 json_string_value(json_object_get(c->resp->body, "field")) ?: "");
	api_err(c, 400, "invalid_request", f, "%s", m);
	return false;
}

static bool qmove_amounts(struct api_ctx *c, struct store_quota *q)
{
	uint64_t inst = 0, vcpus = 0, ram = 0;
	const json_t *b = c->req->body;

	if (!qmove_fix(c, httpd_field_u64(b, "instances", false, 0, 100000, &inst, c->resp)) ||
	    !qmove_fix(c, httpd_field_u64(b, "vcpus", false, 0, 1000000, &vcpus, c->resp)) ||
	    !qmove_fix(c,
		       httpd_field_u64(b, "ram_mib", false, 0, QMOVE_MAX_RAM_MIB, &ram, c->resp)))
		return false;
	if (!inst && !vcpus && !ram) {
		api_err(c, 400, "invalid_request", "instances",
			"nothing to move: give instances, vcpus or ram_mib");
		return false;
	}
	*q = (struct store_quota){(int64_t)inst, (int64_t)vcpus, (int64_t)ram};
	return true;
}

/* The tenant named by field, its id; 0 after answering. */
static int64_t qmove_tenant(struct api_ctx *c, const char *field, const char **name)
{
	struct error err = {0};
	json_t *t;
	int64_t id;
	int ret;

	if (!qmove_fix(c, httpd_field_str(c->req->body, field, true, name, c->resp)))
		return 0;
	ret = STORE(c->s, tenant_get, *name, &t, &err);
	if (ret) {
		api_fail(c, ret, &err, field);
		return 0;
	}
	id = json_integer_value(json_object_get(t, "id"));
	json_decref(t);
	return id;
}

static void qmove_answer(struct api_ctx *c, int64_t from, int64_t to)
{
	struct error err = {0};
	json_t *a = NULL, *b = NULL;
	int ret = STORE(c->s, quota_get, from, &a, &err) ?: STORE(c->s, quota_get, to, &b, &err);

	if (ret) {
		json_decref(a);
		return api_fail(c, ret, &err, NULL);
	}
	api_ok(c, 200, json_pack("{s:o,s:o}", "from", a, "to", b));
}

static void qmove_post(struct api_ctx *c)
{
	static const char *const fields[] = {"from", "to", "instances", "vcpus", "ram_mib", NULL};
	const char *fname = NULL, *tname = NULL;
	struct store_quota q;
	char field[32];
	struct error err = {0};
	int64_t from, to;
	int ret;

	if (!api_need_operator(c) || !api_body(c, fields, true))
		return;
	from = qmove_tenant(c, "from", &fname);
	to = from ? qmove_tenant(c, "to", &tname) : 0;
	if (!to || !qmove_amounts(c, &q))
		return;
	snprintf(c->target, sizeof(c->target), "quota of %s", fname);
	if (from == to)
		return api_err(c, 400, "invalid_request", "to",
			       "from and to are the same tenant (%s)", tname);
	ret = STORE(c->s, quota_move, from, to, &q, &err);
	if (ret) { /* -EBUSY's message starts with the resource the donor cannot spare */
		snprintf(field, sizeof(field), "%.*s", (int)strcspn(err.msg, ":"), err.msg);
		return api_fail(c, ret, &err, ret == -EBUSY ? field : NULL);
	}
	qmove_answer(c, from, to);
}

const struct api_op api_quota_ops[] = {
	{"POST", "quotas/move", qmove_post},
	{0},
};
