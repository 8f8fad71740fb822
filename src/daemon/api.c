// SPDX-License-Identifier: MIT
/*
 * The /v1 API: authentication, dispatch, the audit log, and the
 * identity side (tenants, users, tokens, quotas, host, events). Flavors,
 * images and instances are in api_resources.c. docs/daemon-api.yaml is the
 * OpenAPI description.
 *
 * Visibility rules: the operator (an admin of the "admin" tenant) sees
 * and acts on everything; everyone else only on their tenant's resources,
 * and another tenant's resource answers 404, not 403, so that its
 * existence does not leak. Viewers read only.
 */
#include <errno.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/log.h"
#include "../common/util.h"
#include "api.h"
#include "firewall.h"
#include "meta.h"

#define API_EVENTS_DEFAULT 100
#define API_EVENTS_MAX	   1000

void api_err(struct api_ctx *c, int status, const char *code, const char *field, const char *fmt,
	     ...)
{
	char msg[512];
	va_list ap;
	json_t *e;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	e = json_pack("{s:s, s:s}", "code", code, "message", msg);
	if (e && field)
		json_object_set_new(e, "field", json_string(field));
	json_decref(c->resp->body);
	c->resp->status = status;
	c->resp->body = json_pack("{s:o}", "error", e);
}

void api_fail(struct api_ctx *c, int ret, const struct error *err, const char *field)
{
	const char *msg = err->msg[0] ? err->msg : strerror(-ret);

	switch (-ret) {
	case ENOENT:
		api_err(c, 404, "not_found", field, "%s", msg);
		break;
	case EEXIST:
	case EBUSY:
	case EAGAIN:
	case EALREADY:
		api_err(c, 409, "conflict", field, "%s", msg);
		break;
	case EDQUOT:
		api_err(c, 409, "quota_exceeded", field, "%s", msg);
		break;
	case ENOSPC:
		api_err(c, 409, "capacity_exceeded", field, "%s", msg);
		break;
	case EINVAL:
	case ERANGE:
		api_err(c, 400, "invalid_request", field, "%s", msg);
		break;
	case ENOTSUP:
		api_err(c, 501, "not_implemented", field, "%s", msg);
		break;
	default:
		log_error("api: %s", msg);
		api_err(c, 500, "internal", field, "%s", msg);
	}
}

void api_ok(struct api_ctx *c, int status, json_t *body)
{
	json_decref(c->resp->body);
	c->resp->status = status;
	c->resp->body = body;
}

bool api_is_operator(const struct api_ctx *c)
{
	return c->who.role == STORE_ROLE_ADMIN && !strcmp(c->who.tenant, "admin");
}

bool api_need_writer(struct api_ctx *c)
{
	if (c->who.role != STORE_ROLE_VIEWER)
		return true;
	api_err(c, 403, "forbidden", NULL, "viewers may not change anything");
	return false;
}

bool api_need_operator(struct api_ctx *c)
{
	if (api_is_operator(c))
		return true;
	api_err(c, 403, "forbidden", NULL, "only an admin of the admin tenant may do this");
	return false;
}

int64_t api_scope(const struct api_ctx *c)
{
	return api_is_operator(c) ? 0 : c->who.tenant_id;
}

bool api_valid_name(struct api_ctx *c, const char *field, const char *name)
{
	size_t n = strlen(name);
	bool ok = n && n <= STORE_NAME_MAX &&
		  ((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z'));

	for (size_t i = 1; ok && i < n; i++)
		ok = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.",
			    name[i]) != NULL;
	if (!ok)
		api_err(c, 400, "invalid_request", field,
			"%s must be 1 to %d letters, digits, '-', '_' or '.', starting with a "
			"letter",
			field, STORE_NAME_MAX);
	return ok;
}

bool api_body(struct api_ctx *c, const char *const *allowed, bool required)
{
	if (!c->req->body) {
		if (required)
			api_err(c, 400, "invalid_request", NULL, "a JSON body is required");
		return !required;
	}
	if (httpd_only_fields(c->req->body, allowed, c->resp)) {
		/* httpd words it {"error": "..."}; say it our way. */
		const char *field = json_string_value(json_object_get(c->resp->body, "field"));
		char f[128];

		snprintf(f, sizeof(f), "%s", field ? field : "");
		api_err(c, 400, "invalid_request", f, "unknown field %s", f);
		return false;
	}
	return true;
}

/* httpd's field readers fill {"error": "..."}; this rewords their failure as ours. */
static bool api_field_fix(struct api_ctx *c, int ret)
{
	const char *msg, *field;
	char m[256], f[128];

	if (!ret)
		return true;
	msg = json_string_value(json_object_get(c->resp->body, "error"));
	field = json_string_value(json_object_get(c->resp->body, "field"));
	snprintf(m, sizeof(m), "%s", msg ? msg : "bad field");
	snprintf(f, sizeof(f), "%s", field ? field : "");
	api_err(c, 400, "invalid_request", f, "%s", m);
	return false;
}

static bool api_str(struct api_ctx *c, const char *name, bool required, const char **out)
{
	return api_field_fix(c, httpd_field_str(c->req->body, name, required, out, c->resp));
}

static bool api_u64(struct api_ctx *c, const char *name, bool required, uint64_t min, uint64_t max,
		    uint64_t *out)
{
	return api_field_fix(c,
			     httpd_field_u64(c->req->body, name, required, min, max, out, c->resp));
}

/* ---- tenants ---- */

static bool api_see_tenant(struct api_ctx *c, const char *name)
{
	if (api_is_operator(c) || !strcmp(name, c->who.tenant))
		return true;
	api_err(c, 404, "not_found", NULL, "no such tenant");
	return false;
}

static void api_tenant_list(struct api_ctx *c)
{
	struct error err = {0};
	json_t *out = NULL, *one = NULL;
	int ret;

	if (api_is_operator(c)) {
		ret = STORE(c->s, tenant_list, &out, &err);
	} else {
		ret = STORE(c->s, tenant_get, c->who.tenant, &one, &err);
		if (!ret)
			out = json_pack("[o]", one);
	}
	if (ret)
		return api_fail(c, ret, &err, NULL);
	api_ok(c, 200, out);
}

static bool api_quota_body(struct api_ctx *c, struct store_quota *q)
{
	uint64_t inst = (uint64_t)q->instances, vcpus = (uint64_t)q->vcpus,
		 ram = (uint64_t)q->ram_mib;

	if (!api_u64(c, "instances", false, 0, 100000, &inst) ||
	    !api_u64(c, "vcpus", false, 0, 1000000, &vcpus) ||
	    !api_u64(c, "ram_mib", false, 0, 1ULL << 40, &ram))
		return false;
	*q = (struct store_quota){(int64_t)inst, (int64_t)vcpus, (int64_t)ram};
	return true;
}

static void api_tenant_create(struct api_ctx *c)
{
	static const char *const fields[] = {"name", "instances", "vcpus", "ram_mib", NULL};
	struct store_quota q = STORE_DEFAULT_QUOTA;
	struct error err = {0};
	const char *name;
	json_t *out;
	int64_t id;
	int ret;

	if (!api_need_operator(c) || !api_body(c, fields, true) ||
	    !api_str(c, "name", true, &name) || !api_valid_name(c, "name", name) ||
	    !api_quota_body(c, &q))
		return;
	snprintf(c->target, sizeof(c->target), "tenant %s", name);
	ret = STORE(c->s, tenant_create, name, &q, &id, &err);
	if (!ret)
		ret = STORE(c->s, tenant_get, name, &out, &err);
	if (ret)
		return api_fail(c, ret, &err, "name");
	api_ok(c, 201, out);
}

static void api_tenant_show(struct api_ctx *c)
{
	struct error err = {0};
	json_t *out;
	int ret;

	if (!api_see_tenant(c, c->seg[1]))
		return;
	ret = STORE(c->s, tenant_get, c->seg[1], &out, &err);
	if (ret)
		return api_fail(c, ret, &err, NULL);
	api_ok(c, 200, out);
}

static void api_tenant_delete(struct api_ctx *c)
{
	struct error err = {0};
	json_t *nets;
	int ret;

	if (!api_need_operator(c))
		return;
	snprintf(c->target, sizeof(c->target), "tenant %s", c->seg[1]);
	if (!strcmp(c->seg[1], "admin"))
		return api_err(c, 409, "conflict", NULL, "the admin tenant cannot be deleted");
	nets = netd_tenant_bridges(c, c->seg[1]);
	ret = STORE(c->s, tenant_delete, c->seg[1], &err);
	if (ret) {
		json_decref(nets);
		return api_fail(c, ret, &err, NULL);
	}
	netd_bridges_gone(nets);
	fw_changed(c->d, c->s);
	api_ok(c, 204, NULL);
}

/* The tenant named in the path, as the caller may see it: its id, or 0 after answering. */
static int64_t api_path_tenant(struct api_ctx *c, const char *name)
{
	struct error err = {0};
	json_t *t;
	int64_t id;
	int ret;

	if (!api_see_tenant(c, name))
		return 0;
	ret = STORE(c->s, tenant_get, name, &t, &err);
	if (ret) {
		api_fail(c, ret, &err, NULL);
		return 0;
	}
	id = json_integer_value(json_object_get(t, "id"));
	json_decref(t);
	return id;
}

static void api_quota_show_for(struct api_ctx *c, int64_t tenant_id)
{
	struct error err = {0};
	json_t *out;
	int ret = STORE(c->s, quota_get, tenant_id, &out, &err);

	if (ret)
		return api_fail(c, ret, &err, NULL);
	api_ok(c, 200, out);
}

static void api_tenant_quota_show(struct api_ctx *c)
{
	int64_t id = api_path_tenant(c, c->seg[1]);

	if (id)
		api_quota_show_for(c, id);
}

static void api_quota_show(struct api_ctx *c)
{
	api_quota_show_for(c, c->who.tenant_id);
}

/* Fields left out keep their value; lowering below what is in use is allowed (no new creates). */
static void api_tenant_quota_set(struct api_ctx *c)
{
	static const char *const fields[] = {"instances", "vcpus", "ram_mib", NULL};
	struct error err = {0};
	struct store_quota q;
	json_t *cur;
	int64_t id;
	int ret;

	if (!api_need_operator(c) || !api_body(c, fields, true))
		return;
	snprintf(c->target, sizeof(c->target), "quota of %s", c->seg[1]);
	id = api_path_tenant(c, c->seg[1]);
	if (!id)
		return;
	ret = STORE(c->s, quota_get, id, &cur, &err);
	if (ret)
		return api_fail(c, ret, &err, NULL);
	q = (struct store_quota){json_integer_value(json_object_get(cur, "quota_instances")),
				 json_integer_value(json_object_get(cur, "quota_vcpus")),
				 json_integer_value(json_object_get(cur, "quota_ram_mib"))};
	json_decref(cur);
	if (!api_quota_body(c, &q))
		return;
	ret = STORE(c->s, quota_set, id, &q, &err);
	if (ret)
		return api_fail(c, ret, &err, NULL);
	api_quota_show_for(c, id);
}

/* ---- users and tokens ---- */

static void api_user_list(struct api_ctx *c)
{
	struct error err = {0};
	json_t *out;
	int ret = STORE(c->s, user_list, api_scope(c), &out, &err);

	if (ret)
		return api_fail(c, ret, &err, NULL);
	api_ok(c, 200, out);
}

/* A user the caller may see, or NULL after a 404. */
static json_t *api_user_lookup(struct api_ctx *c, const char *name, const char *field)
{
	struct error err = {0};
	json_t *u;
	int ret = STORE(c->s, user_get, name, &u, &err);

	if (!ret && !api_is_operator(c) &&
	    json_integer_value(json_object_get(u, "tenant_id")) != c->who.tenant_id) {
		json_decref(u);
		ret = error_set(&err, ENOENT, "no such user");
	}
	if (ret) {
		api_fail(c, ret, &err, field);
		return NULL;
	}
	return u;
}

static void api_user_show(struct api_ctx *c)
{
	json_t *u = api_user_lookup(c, c->seg[1], NULL);

	if (u)
		api_ok(c, 200, u);
}

static void api_user_create(struct api_ctx *c)
{
	static const char *const fields[] = {"name", "role", "tenant", NULL};
	const char *name, *role_s = "member", *tenant = c->who.tenant;
	struct error err = {0};
	enum store_role role;
	int64_t tid, id;
	json_t *out;
	int ret;

	if (!api_need_writer(c) || !api_body(c, fields, true) || !api_str(c, "name", true, &name) ||
	    !api_valid_name(c, "name", name) || !api_str(c, "role", false, &role_s) ||
	    !api_str(c, "tenant", false, &tenant))
		return;
	if (c->who.role != STORE_ROLE_ADMIN)
		return api_err(c, 403, "forbidden", NULL, "only admins may create users");
	if (store_role_parse(role_s, &role))
		return api_err(c, 400, "invalid_request", "role",
			       "role must be admin, member or viewer");
	snprintf(c->target, sizeof(c->target), "user %s", name);
	tid = api_path_tenant(c, tenant);
	if (!tid)
		return;
	ret = STORE(c->s, user_create, tid, name, role, &id, &err);
	if (!ret)
		ret = STORE(c->s, user_get, name, &out, &err);
	if (ret)
		return api_fail(c, ret, &err, "name");
	api_ok(c, 201, out);
}

/* Admins, in their tenant (the operator anywhere); not oneself, so that someone is left. */
static void api_user_delete(struct api_ctx *c)
{
	struct error err = {0};
	json_t *u;
	int ret;

	if (!api_need_writer(c))
		return;
	if (c->who.role != STORE_ROLE_ADMIN)
		return api_err(c, 403, "forbidden", NULL, "only admins may delete users");
	snprintf(c->target, sizeof(c->target), "user %s", c->seg[1]);
	u = api_user_lookup(c, c->seg[1], NULL);
	if (!u)
		return;
	if (json_integer_value(json_object_get(u, "id")) == c->who.user_id) {
		json_decref(u);
		return api_err(c, 409, "conflict", NULL, "you cannot delete yourself");
	}
	ret = STORE(c->s, user_delete, json_integer_value(json_object_get(u, "id")), &err);
	json_decref(u);
	if (ret)
		return api_fail(c, ret, &err, NULL);
	api_ok(c, 204, NULL);
}

static void api_token_list(struct api_ctx *c)
{
	struct error err = {0};
	json_t *out;
	int ret = STORE(c->s, token_list, api_scope(c), &out, &err);

	if (ret)
		return api_fail(c, ret, &err, NULL);
	api_ok(c, 200, out);
}

/* Members get tokens for themselves; admins for their tenant's users; the operator for anyone. */
static void api_token_create(struct api_ctx *c)
{
	static const char *const fields[] = {"user", "description", NULL};
	const char *user = c->who.user, *desc = NULL;
	char token[AUTH_TOKEN_LEN + 1], hash[AUTH_SHA256_HEX];
	struct error err = {0};
	int64_t uid, id;
	json_t *u;
	int ret;

	if (!api_need_writer(c) || !api_body(c, fields, false) ||
	    !api_str(c, "user", false, &user) || !api_str(c, "description", false, &desc))
		return;
	if (strcmp(user, c->who.user) && c->who.role != STORE_ROLE_ADMIN)
		return api_err(c, 403, "forbidden", "user",
			       "only admins may create tokens for other users");
	snprintf(c->target, sizeof(c->target), "token for %s", user);
	u = api_user_lookup(c, user, "user");
	if (!u)
		return;
	uid = json_integer_value(json_object_get(u, "id"));
	json_decref(u);
	ret = auth_new_token(token, &err);
	if (!ret) {
		auth_hash_token(token, hash);
		ret = STORE(c->s, token_create, uid, hash, desc, &id, &err);
	}
	if (ret)
		return api_fail(c, ret, &err, NULL);
	api_ok(c, 201,
	       json_pack("{s:I, s:s, s:s}", "id", (json_int_t)id, "user", user, "token", token));
}

static void api_token_delete(struct api_ctx *c)
{
	struct error err = {0};
	uint64_t id;
	int ret;

	if (!api_need_writer(c))
		return;
	if (c->who.role != STORE_ROLE_ADMIN)
		return api_err(c, 403, "forbidden", NULL, "only admins may revoke tokens");
	snprintf(c->target, sizeof(c->target), "token %s", c->seg[1]);
	if (parse_uint(c->seg[1], 1, INT64_MAX, &id))
		return api_err(c, 404, "not_found", NULL, "no such token");
	ret = STORE(c->s, token_delete, api_scope(c), (int64_t)id, &err);
	if (ret)
		return api_fail(c, ret, &err, NULL);
	api_ok(c, 204, NULL);
}

/* ---- host and events ---- */

void daemon_capacity(const struct daemon *d, struct store_capacity *cap)
{
	cap->vcpus = (int64_t)(d->host_cpus * d->opts.cpu_ratio);
	cap->ram_mib = (int64_t)((double)d->host_ram_mib * d->opts.ram_ratio);
}

static void api_host_show(struct api_ctx *c)
{
	struct store_capacity cap;
	struct error err = {0};
	json_t *tenants, *t;
	int64_t vcpus = 0, ram = 0, inst = 0;
	size_t i;
	int ret;

	if (!api_need_operator(c))
		return;
	ret = STORE(c->s, usage, &tenants, &err);
	if (ret)
		return api_fail(c, ret, &err, NULL);
	json_array_foreach(tenants, i, t)
	{
		inst += json_integer_value(json_object_get(t, "instances"));
		vcpus += json_integer_value(json_object_get(t, "vcpus"));
		ram += json_integer_value(json_object_get(t, "ram_mib"));
	}
	daemon_capacity(c->d, &cap);
	api_ok(c, 200,
	       json_pack("{s:I, s:I, s:{s:f, s:f, s:f}, s:{s:I, s:I}, s:{s:I, s:I, s:I}, s:o}",
			 "cpus", (json_int_t)c->d->host_cpus, "ram_mib",
			 (json_int_t)c->d->host_ram_mib, "allocation_ratios", "cpu",
			 c->d->opts.cpu_ratio, "ram", c->d->opts.ram_ratio, "disk",
			 c->d->opts.disk_ratio, "capacity", "vcpus", (json_int_t)cap.vcpus,
			 "ram_mib", (json_int_t)cap.ram_mib, "allocated", "instances",
			 (json_int_t)inst, "vcpus", (json_int_t)vcpus, "ram_mib", (json_int_t)ram,
			 "tenants", tenants));
}

void api_events(struct api_ctx *c, const char *target)
{
	const char *lim = httpd_query(c->req, "limit");
	uint64_t limit = API_EVENTS_DEFAULT;
	struct error err = {0};
	json_t *out;
	int ret;

	if (lim && parse_uint(lim, 1, API_EVENTS_MAX, &limit))
		return api_err(c, 400, "invalid_request", "limit", "limit must be 1 to %d",
			       API_EVENTS_MAX);
	ret = STORE(c->s, event_list, api_scope(c), target, (int)limit, &out, &err);
	if (ret)
		return api_fail(c, ret, &err, NULL);
	api_ok(c, 200, out);
}

static void api_event_list(struct api_ctx *c)
{
	api_events(c, NULL);
}

static const struct api_op api_ops[] = {
	{"GET", "tenants", api_tenant_list},
	{"POST", "tenants", api_tenant_create},
	{"GET", "tenants/:", api_tenant_show},
	{"DELETE", "tenants/:", api_tenant_delete},
	{"GET", "tenants/:/quota", api_tenant_quota_show},
	{"PUT", "tenants/:/quota", api_tenant_quota_set},
	{"GET", "quota", api_quota_show},
	{"GET", "users", api_user_list},
	{"POST", "users", api_user_create},
	{"GET", "users/:", api_user_show},
	{"DELETE", "users/:", api_user_delete},
	{"GET", "tokens", api_token_list},
	{"POST", "tokens", api_token_create},
	{"DELETE", "tokens/:", api_token_delete},
	{"GET", "host", api_host_show},
	{"GET", "events", api_event_list},
	{NULL, NULL, NULL},
};

/* ---- dispatch ---- */

static bool api_match(const struct api_op *op, const struct api_ctx *c, bool *path_known)
{
	const char *p = op->pattern;
	int i = 0;

	for (; i < c->nseg && *p; i++) {
		size_t n = strcspn(p, "/");

		if (!(n == 1 && *p == ':') && (strlen(c->seg[i]) != n || strncmp(p, c->seg[i], n)))
			return false;
		p += n;
		if (*p == '/')
			p++;
	}
	if (i != c->nseg || *p)
		return false;
	*path_known = true;
	return !strcmp(op->method, c->req->method);
}

static const struct api_op *api_find(struct api_ctx *c)
{
	const struct api_op *tables[] = {
		api_ops,       api_resource_ops,     api_network_ops, api_lifecycle_ops,
		api_clone_ops, api_keypair_ops,	     api_console_ops, api_forward_ops,
		api_quota_ops, api_server_image_ops, api_rebuild_ops};
	bool known = false;

	for (unsigned int t = 0; t < sizeof(tables) / sizeof(tables[0]); t++) {
		for (const struct api_op *op = tables[t]; op->pattern; op++) {
			if (api_match(op, c, &known))
				return op;
		}
	}
	if (known)
		api_err(c, 405, "method_not_allowed", NULL, "%s is not allowed on %s",
			c->req->method, c->req->path);
	else
		api_err(c, 404, "not_found", NULL, "no such resource: %s", c->req->path);
	return NULL;
}

/* Cuts "/v1/a/b" into segments in buf; false for an empty or too deep path. */
static bool api_split(struct api_ctx *c, char *buf)
{
	char *save = NULL;

	for (char *t = strtok_r(buf, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
		if (c->nseg == API_SEGS_MAX)
			return false;
		c->seg[c->nseg++] = t;
	}
	return c->nseg > 0;
}

static bool api_authenticate(struct api_ctx *c)
{
	const char *h = httpd_header(c->req, "Authorization");
	char hash[AUTH_SHA256_HEX];
	struct error err = {0};
	int ret;

	if (!h || strncmp(h, "Bearer ", 7) || !h[7]) {
		api_err(c, 401, "unauthorized", NULL, "a bearer token is required");
		return false;
	}
	auth_hash_token(h + 7, hash);
	ret = STORE(c->s, token_lookup, hash, &c->who, &err);
	if (ret == -ENOENT)
		api_err(c, 401, "unauthorized", NULL, "the token is not valid");
	else if (ret)
		api_fail(c, ret, &err, NULL);
	return !ret;
}

static void api_audit(struct api_ctx *c)
{
	const json_t *e = json_object_get(json_object_get(c->resp->body, "error"), "message");
	struct store_event ev = {.tenant_id = c->who.tenant_id,
				 .who = c->who.user,
				 .target = c->target[0] ? c->target : NULL};
	char action[256], result[384];
	struct error err = {0};

	snprintf(action, sizeof(action), "%s %s", c->req->method, c->req->path);
	snprintf(result, sizeof(result), "%d%s%s", c->resp->status ? c->resp->status : 200,
		 e ? " " : "", e ? json_string_value(e) : "");
	ev.action = action;
	ev.result = result;
	if (STORE(c->s, event_add, &ev, &err))
		log_warn("audit: %s", err.msg);
}

static double api_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void api_dispatch(void *ctx, const struct httpd_request *req, struct httpd_response *resp)
{
	struct api_ctx c = {.d = ctx, .req = req, .resp = resp};
	double t0 = api_now();
	char path[512];
	const struct api_op *op;

	if (strlen(req->path) >= sizeof(path))
		return api_err(&c, 404, "not_found", NULL, "no such resource");
	snprintf(path, sizeof(path), "%s", req->path + strlen("/v1"));
	c.s = pool_get(c.d->pool);
	if (!api_authenticate(&c))
		goto out;
	if (!strcmp(req->path, "/metrics")) {
		metrics_show(&c);
		goto out;
	}
	if (!api_split(&c, path)) {
		api_err(&c, 404, "not_found", NULL, "no such resource: %s", req->path);
		goto out;
	}
	op = api_find(&c);
	if (op)
		op->fn(&c);
	if (strcmp(req->method, "GET"))
		api_audit(&c);
out:
	pool_put(c.d->pool, c.s);
	metrics_observe(resp->status ? resp->status : 200, api_now() - t0);
}

const struct httpd_route daemon_routes[] = {
	{"GET", "/v1/*", api_dispatch},
	{"POST", "/v1/*", api_dispatch},
	{"PUT", "/v1/*", api_dispatch},
	{"DELETE", "/v1/*", api_dispatch},
	{"PATCH", "/v1/*", api_dispatch},
	{"GET", "/metrics", api_dispatch},
	{NULL, NULL, NULL},
};

bool api_stream_authenticate(struct api_ctx *c)
{
	return api_authenticate(c);
}

void api_stream_audit(struct api_ctx *c)
{
	api_audit(c);
}
