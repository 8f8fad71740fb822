// SPDX-License-Identifier: MIT
/*
 * Port forwards: /v1/instances/ID/forwards. A host TCP or UDP port
 * DNATed to a port of the instance's address (firewall.c writes the
 * rules). Host ports are the whole host's: one forward per protocol and
 * port, whichever tenant; ports below 1024 are the operator's to give;
 * each tenant holds at most --max-forwards of them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "firewall.h"

#define FWD_PRIVILEGED 1024

static int64_t fwd_i(const json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

/* A forward as the API shows it: no internal columns. */
static json_t *fwd_view(json_t *f)
{
	static const char *const internal[] = {"tenant_id", "bridge"};

	for (size_t i = 0; i < sizeof(internal) / sizeof(internal[0]); i++)
		json_object_del(f, internal[i]);
	return f;
}

/* The instance in the path, as the caller may see it: its id, or 0 after answering. */
static int64_t fwd_instance(struct api_ctx *c)
{
	json_t *inst = api_instance_lookup(c);
	int64_t id = inst ? fwd_i(inst, "id") : 0;

	json_decref(inst);
	return id;
}

/* A port field, 1 to 65535: false after answering 400 naming it. */
static bool fwd_port(struct api_ctx *c, const char *field, int64_t *out)
{
	const json_t *v = json_object_get(c->req->body, field);

	if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65535) {
		api_err(c, 400, "invalid_request", field, "%s must be a port number, 1 to 65535",
			field);
		return false;
	}
	*out = json_integer_value(v);
	return true;
}

/* The new forward's fields, checked: false after answering. */
static bool fwd_parse(struct api_ctx *c, struct store_forward_new *f)
{
	static const char *const fields[] = {"host_port", "guest_port", "proto", NULL};
	const json_t *proto;

	if (!api_body(c, fields, true) || !fwd_port(c, "host_port", &f->host_port) ||
	    !fwd_port(c, "guest_port", &f->guest_port))
		return false;
	proto = json_object_get(c->req->body, "proto");
	f->proto = proto ? json_string_value(proto) : "tcp";
	if (!f->proto || (strcmp(f->proto, "tcp") && strcmp(f->proto, "udp"))) {
		api_err(c, 400, "invalid_request", "proto", "proto must be \"tcp\" or \"udp\"");
		return false;
	}
	if (f->host_port < FWD_PRIVILEGED && !api_is_operator(c)) {
		api_err(c, 403, "forbidden", "host_port",
			"host ports below %d are for the operator (an admin of the admin tenant)",
			FWD_PRIVILEGED);
		return false;
	}
	return true;
}

/* The forward with this id, as the list shows it (NULL: gone). */
static json_t *fwd_get(struct api_ctx *c, int64_t instance_id, int64_t id)
{
	struct error err = {0};
	json_t *all, *f, *found = NULL;
	size_t i;

	if (STORE(c->s, forward_list, instance_id, &all, &err))
		return NULL;
	json_array_foreach(all, i, f)
	{
		if (fwd_i(f, "id") == id)
			found = json_incref(f);
	}
	json_decref(all);
	return found ? fwd_view(found) : NULL;
}

static void api_forward_create(struct api_ctx *c)
{
	struct store_forward_new f = {0};
	struct error err = {0};
	int64_t id;
	json_t *out;
	int ret;

	if (!api_need_writer(c) || !(f.instance_id = fwd_instance(c)) || !fwd_parse(c, &f))
		return;
	ret = STORE(c->s, forward_create, &f, c->d->opts.max_forwards, &id, &err);
	if (ret)
		return api_fail(c, ret, &err, ret == -EEXIST ? "host_port" : NULL);
	snprintf(c->target, sizeof(c->target), "instance %lld forward %lld",
		 (long long)f.instance_id, (long long)id);
	fw_forward_added(c->d, c->s, f.instance_id, id);
	out = fwd_get(c, f.instance_id, id);
	if (!out)
		return api_err(c, 500, "internal", NULL, "the new forward is gone");
	api_ok(c, 201, out);
}

static void api_forward_list(struct api_ctx *c)
{
	struct error err = {0};
	json_t *out, *f;
	int64_t id = fwd_instance(c);
	size_t i;
	int ret;

	if (!id)
		return;
	ret = STORE(c->s, forward_list, id, &out, &err);
	if (ret)
		return api_fail(c, ret, &err, NULL);
	json_array_foreach(out, i, f) fwd_view(f);
	api_ok(c, 200, out);
}

static void api_forward_delete(struct api_ctx *c)
{
	struct error err = {0};
	int64_t id, fid;
	json_t *fw;
	char *end;
	int ret;

	if (!api_need_writer(c) || !(id = fwd_instance(c)))
		return;
	fid = strtoll(c->seg[3], &end, 10);
	if (*end || fid <= 0)
		return api_err(c, 404, "not_found", NULL, "no such forward: %s", c->seg[3]);
	snprintf(c->target, sizeof(c->target), "instance %lld forward %lld", (long long)id,
		 (long long)fid);
	fw = fw_rows(c->s, id, fid);
	ret = STORE(c->s, forward_delete, id, fid, &err);
	if (ret) {
		json_decref(fw);
		return api_fail(c, ret, &err, NULL);
	}
	fw_gone(c->d, c->s, fw);
	api_ok(c, 204, NULL);
}

json_t *fwd_attach(struct api_ctx *c, json_t *inst)
{
	struct error err = {0};
	json_t *out, *f;
	size_t i;

	if (!inst || STORE(c->s, forward_list, fwd_i(inst, "id"), &out, &err))
		return inst;
	json_array_foreach(out, i, f)
	{
		fwd_view(f);
		json_object_del(f, "instance");
		json_object_del(f, "instance_id");
		json_object_del(f, "ip");
	}
	json_object_set_new(inst, "forwards", out);
	return inst;
}

const struct api_op api_forward_ops[] = {
	{"GET", "instances/:/forwards", api_forward_list},
	{"POST", "instances/:/forwards", api_forward_create},
	{"DELETE", "instances/:/forwards/:", api_forward_delete},
	{NULL, NULL, NULL},
};
