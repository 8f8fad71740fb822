// SPDX-License-Identifier: MIT
/* PUT /vm/clone: the request's JSON in, the clones' JSON out (clone.h). */
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clone.h"
#include "../../common/util.h"

static int api_clone_bad(struct httpd_response *resp, const char *field, const char *why)
{
	httpd_error(resp, MHD_HTTP_BAD_REQUEST, field, "%s: %s", field, why);
	return -1;
}

/* "52:54:00:12:34:56": unicast, not all zero. */
static bool api_clone_mac(const char *s, uint8_t mac[6])
{
	static const uint8_t zero[6];

	return !parse_mac(s, mac) && !(mac[0] & 1) && memcmp(mac, zero, 6);
}

/* Paths go inside the clones' option lists (uds=...): no separators, nothing unprintable. */
static bool api_clone_dir_ok(const char *s)
{
	if (s[0] != '/' || strlen(s) > 64)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f || *s == ',' || *s == '=')
			return false;
	return true;
}

/* A tap name as the kernel takes it, and safe inside --net's key=value list. */
static bool api_clone_tap_ok(const char *s)
{
	size_t n = strlen(s);

	if (!n || n >= CONFIG_IFNAME)
		return false;
	for (; *s; s++)
		if (!(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z') &&
		    !(*s >= '0' && *s <= '9') && !strchr("_-.", *s))
			return false;
	return true;
}

static int api_clone_net(const json_t *o, struct api_clone_net *n, struct httpd_response *resp)
{
	const json_t *tap = json_object_get(o, "tap"), *mac = json_object_get(o, "mac");
	const char *k;
	json_t *v;

	if (!json_is_object(o))
		return api_clone_bad(resp, "nets", "each NIC is an object {\"tap\", \"mac\"}");
	json_object_foreach(
		(json_t *)o, k,
		v) if (strcmp(k, "tap") &&
		       strcmp(k, "mac")) return api_clone_bad(resp, "nets",
							      "a NIC has only tap and mac");
	if (!json_is_string(tap) || !api_clone_tap_ok(json_string_value(tap)))
		return api_clone_bad(
			resp, "nets",
			"tap must be an interface name (1 to 15 of A-Z a-z 0-9 _ - .)");
	strcpy(n->tap, json_string_value(tap));
	n->has_mac = mac != NULL;
	if (mac && (!json_is_string(mac) || !api_clone_mac(json_string_value(mac), n->mac)))
		return api_clone_bad(resp, "nets",
				     "mac must be a unicast MAC like 52:54:00:12:34:56");
	return 0;
}

/* [[{tap, mac}, ...] per clone]: every clone the same number of NICs. */
static int api_clone_nets(const json_t *a, struct api_clone_req *req, struct httpd_response *resp)
{
	const json_t *row;
	size_t i, j;

	if (!json_is_array(a) || json_array_size(a) != req->count)
		return api_clone_bad(resp, "nets", "one array of NICs per clone (count of them)");
	req->nets = calloc(req->count, sizeof(*req->nets));
	if (!req->nets)
		return api_clone_bad(resp, "nets", "out of memory");
	json_array_foreach(a, i, row)
	{
		const json_t *nic;

		if (!json_is_array(row) || json_array_size(row) > CONFIG_MAX_NETS ||
		    (i && json_array_size(row) != req->nnets))
			return api_clone_bad(resp, "nets",
					     "every clone lists the same NICs (at most 8)");
		req->nnets = (unsigned int)json_array_size(row);
		json_array_foreach(row, j,
				   nic) if (api_clone_net(nic, &req->nets[i][j], resp)) return -1;
	}
	return 0;
}

static int api_clone_fields(const json_t *b, struct api_clone_req *req, struct httpd_response *resp)
{
	const char *serial = NULL;
	uint64_t v;

	if (httpd_field_u64(b, "count", true, 1, API_CLONE_MAX, &v, resp))
		return -1;
	req->count = (unsigned int)v;
	if (httpd_field_str(b, "dir", false, &req->dir, resp))
		return -1;
	if (req->dir && !api_clone_dir_ok(req->dir))
		return api_clone_bad(
			resp, "dir",
			"an absolute path of at most 64 characters, without ',' or '=' "
			"(sockets go inside it)");
	if (json_object_get(b, "cid_base")) {
		if (httpd_field_u64(b, "cid_base", true, 3, 0xfffffffeULL, &v, resp))
			return -1;
		req->has_cid_base = true;
		req->cid_base = (uint32_t)v;
	}
	if (httpd_field_str(b, "serial", false, &serial, resp))
		return -1;
	if (serial && strcmp(serial, "unix") && strcmp(serial, "file"))
		return api_clone_bad(resp, "serial", "unix or file");
	req->serial_file = serial && !strcmp(serial, "file");
	return json_object_get(b, "nets") ? api_clone_nets(json_object_get(b, "nets"), req, resp)
					  : 0;
}

int api_clone_parse(const json_t *body, struct api_clone_req *req, struct httpd_response *resp)
{
	static const char *const fields[] = {"count", "dir", "cid_base", "serial", "nets", NULL};

	memset(req, 0, sizeof(*req));
	if (httpd_only_fields(body, fields, resp))
		return -1;
	return api_clone_fields(body, req, resp);
}

void api_clone_req_free(struct api_clone_req *req)
{
	free(req->nets);
	req->nets = NULL;
}

static json_t *api_clone_vm_json(const struct api_clone_vm *vm)
{
	json_t *nets = json_array();
	char mac[18];

	for (unsigned int j = 0; j < vm->nnets; j++) {
		const uint8_t *m = vm->macs[j];

		snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3],
			 m[4], m[5]);
		json_array_append_new(nets,
				      json_pack("{s:s, s:s}", "tap", vm->taps[j], "mac", mac));
	}
	return json_pack("{s:i, s:s, s:s, s:s, s:o, s:o, s:o, s:o}", "pid", vm->pid, "dir", vm->dir,
			 "api_sock", vm->api_sock, "serial", vm->serial, "console_virtio",
			 *vm->console_virtio ? json_string(vm->console_virtio) : json_null(), "cid",
			 *vm->vsock_uds ? json_integer(vm->cid) : json_null(), "vsock_uds",
			 *vm->vsock_uds ? json_string(vm->vsock_uds) : json_null(), "nets", nets);
}

json_t *api_clone_json(const struct api_clone_result *res)
{
	json_t *clones = json_array();

	for (unsigned int i = 0; i < res->count; i++)
		json_array_append_new(clones, api_clone_vm_json(&res->vms[i]));
	return json_pack("{s:s, s:i, s:o, s:{s:f, s:f, s:f, s:f}}", "dir", res->dir, "count",
			 (int)res->count, "clones", clones, "timings_ms", "pause", res->pause_ms,
			 "snapshot", res->snapshot_ms, "spawn", res->spawn_ms, "total",
			 res->total_ms);
}
