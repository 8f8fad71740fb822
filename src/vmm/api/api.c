// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdarg.h>
#include <linux/kvm.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/httpd.h"
#include "../../common/util.h"
#include "../sandbox/seccomp.h"
#include "api.h"
#include "limits.h"

struct api {
	struct httpd *httpd;
	const struct vmm_config *cfg;
	struct api_backend backend;
};

/* ---- GET /vm ---- */

static void api_get_vm(void *ctx, const struct httpd_request *req, struct httpd_response *resp)
{
	struct api *api = ctx;
	struct api_vm_info info = {0};

	(void)req;
	api->backend.info(api->backend.ctx, &info);
	resp->body = json_pack("{s:s, s:i, s:I, s:I, s:i}", "state", info.state, "vcpus",
			       (int)info.vcpus, "memory_mib", (json_int_t)(info.memory >> 20),
			       "uptime_ms", (json_int_t)info.uptime_ms, "boots", (int)info.boots);
}

/* ---- GET /vm/config ---- */

static json_t *api_json_str_or_null(const char *s)
{
	return s && *s ? json_string(s) : json_null();
}

static json_t *api_disks_json(const struct vmm_config *cfg)
{
	json_t *a = json_array();

	for (unsigned int i = 0; i < cfg->ndisks; i++) {
		const struct config_disk *d = &cfg->disks[i];

		json_array_append_new(
			a, json_pack("{s:s, s:o, s:b, s:b, s:i, s:I, s:I, s:I, s:I}", "path",
				     d->path, "id", api_json_str_or_null(d->id), "readonly",
				     d->read_only, "direct", d->direct, "queues", (int)d->queues,
				     "iops", (json_int_t)d->iops, "iops_burst",
				     (json_int_t)d->iops_burst, "bps", (json_int_t)d->bps,
				     "bps_burst", (json_int_t)d->bps_burst));
	}
	return a;
}

static json_t *api_nets_json(const struct vmm_config *cfg)
{
	json_t *a = json_array();

	for (unsigned int i = 0; i < cfg->nnets; i++) {
		const struct config_net *n = &cfg->nets[i];
		char mac[18] = "";

		if (n->has_mac)
			snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", n->mac[0],
				 n->mac[1], n->mac[2], n->mac[3], n->mac[4], n->mac[5]);
		json_array_append_new(a, json_pack("{s:s, s:o, s:o, s:i}", "tap", n->tap, "id",
						   api_json_str_or_null(n->id), "mac",
						   api_json_str_or_null(mac), "queues",
						   (int)n->queues));
	}
	return a;
}

static json_t *api_optional_devices_json(const struct vmm_config *cfg)
{
	const struct config_balloon *b = &cfg->balloon;
	json_t *o = json_object();

	json_object_set_new(o, "rng", json_boolean(cfg->rng));
	json_object_set_new(o, "console_virtio", api_json_str_or_null(cfg->console_virtio));
	json_object_set_new(o, "vsock",
			    cfg->vsock.enabled
				    ? json_pack("{s:I, s:s}", "cid", (json_int_t)cfg->vsock.cid,
						"uds", cfg->vsock.uds)
				    : json_null());
	json_object_set_new(
		o, "balloon",
		b->enabled
			? json_pack("{s:I, s:i, s:b, s:b}", "size_mib", (json_int_t)(b->size >> 20),
				    "stats_period", (int)b->stats_period, "free_page_reporting",
				    b->free_page_reporting, "deflate_on_oom", b->deflate_on_oom)
			: json_null());
	return o;
}

static void api_get_config(void *ctx, const struct httpd_request *req, struct httpd_response *resp)
{
	const struct vmm_config *cfg = ((struct api *)ctx)->cfg;
	json_t *o, *opt;

	(void)req;
	o = json_pack("{s:o, s:o, s:o, s:i, s:I, s:s, s:s}", "kernel",
		      api_json_str_or_null(cfg->kernel), "initrd",
		      api_json_str_or_null(cfg->initrd), "cmdline",
		      api_json_str_or_null(cfg->cmdline), "vcpus", (int)cfg->cpus, "memory_mib",
		      (json_int_t)(cfg->memory >> 20), "serial", cfg->serial, "on_reboot",
		      cfg->on_reboot == ON_REBOOT_RESTART ? "restart" : "exit");
	if (!o)
		return httpd_error(resp, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
	json_object_set_new(o, "disks", api_disks_json(cfg));
	json_object_set_new(o, "nets", api_nets_json(cfg));
	opt = api_optional_devices_json(cfg);
	json_object_update(o, opt);
	json_decref(opt);
	resp->body = o;
}

/* ---- PUT /vm/config: the JSON stands for a command line, validated as one ---- */

#define API_ARGV_MAX 128

struct api_argv {
	int argc;
	char *argv[API_ARGV_MAX];
};

static void api_argv_free(struct api_argv *a)
{
	for (int i = 0; i < a->argc; i++)
		free(a->argv[i]);
	a->argc = 0;
}

__attribute__((format(printf, 2, 3))) static int api_arg(struct api_argv *a, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (a->argc == API_ARGV_MAX - 1)
		return -E2BIG;
	va_start(ap, fmt);
	n = vasprintf(&a->argv[a->argc], fmt, ap);
	va_end(ap);
	if (n < 0)
		return -ENOMEM;
	a->argc++;
	return 0;
}

/* A string that goes into a key=value list must not carry its separators. */
static int api_plain(const char *field, const char *s, struct httpd_response *resp)
{
	if (strpbrk(s, ",")) {
		httpd_error(resp, MHD_HTTP_BAD_REQUEST, field, "%s must not contain ','", field);
		return -1;
	}
	return 0;
}

static int api_opt_str(struct api_argv *a, const json_t *o, const char *key, const char *opt,
		       struct httpd_response *resp)
{
	const char *v = NULL;

	if (httpd_field_str(o, key, false, &v, resp))
		return -1;
	return v ? api_arg(a, "%s=%s", opt, v) : 0;
}

static int api_opt_uint(struct api_argv *a, const json_t *o, const char *key, const char *opt,
			const char *suffix, struct httpd_response *resp)
{
	uint64_t v;

	if (!json_object_get(o, key))
		return 0;
	if (httpd_field_u64(o, key, true, 0, UINT32_MAX, &v, resp))
		return -1;
	return api_arg(a, "%s=%llu%s", opt, (unsigned long long)v, suffix);
}

/* Appends ",key=value" pairs of one device object to buf. */
static int api_kv(char *buf, size_t size, const json_t *o, const char *const *strs,
		  const char *const *bools, const char *const *uints, struct httpd_response *resp)
{
	size_t len = strlen(buf);

	for (; strs && *strs; strs++) {
		const char *v = NULL;

		if (httpd_field_str(o, *strs, false, &v, resp) || (v && api_plain(*strs, v, resp)))
			return -1;
		if (v)
			len += snprintf(buf + len, size - len, ",%s=%s", *strs, v);
	}
	for (; bools && *bools; bools++) {
		bool v;

		if (!json_object_get(o, *bools))
			continue;
		if (httpd_field_bool(o, *bools, true, &v, resp))
			return -1;
		len += snprintf(buf + len, size - len, ",%s=%s", *bools, v ? "on" : "off");
	}
	for (; uints && *uints; uints++) {
		uint64_t v;

		if (!json_object_get(o, *uints))
			continue;
		if (httpd_field_u64(o, *uints, true, 0, UINT32_MAX, &v, resp))
			return -1;
		len += snprintf(buf + len, size - len, ",%s=%llu", *uints, (unsigned long long)v);
	}
	if (len >= size) {
		httpd_error(resp, MHD_HTTP_BAD_REQUEST, NULL, "device description too long");
		return -1;
	}
	return 0;
}

/* "disks": [{...}], "nets": [{...}]: one option per element. */
static int api_opt_list(struct api_argv *a, const json_t *body, const char *key, const char *opt,
			const char *const *strs, const char *const *bools, const char *const *uints,
			struct httpd_response *resp)
{
	const json_t *list = json_object_get(body, key), *o;
	size_t i;

	if (!list)
		return 0;
	if (!json_is_array(list)) {
		httpd_error(resp, MHD_HTTP_BAD_REQUEST, key, "%s must be an array", key);
		return -1;
	}
	json_array_foreach(list, i, o)
	{
		char buf[4400] = "";

		if (!json_is_object(o)) {
			httpd_error(resp, MHD_HTTP_BAD_REQUEST, key, "%s[%zu] must be an object",
				    key, i);
			return -1;
		}
		if (api_kv(buf, sizeof(buf), o, strs, bools, uints, resp))
			return -1;
		if (api_arg(a, "%s=%s", opt, buf[0] ? buf + 1 : ""))
			return -1;
	}
	return 0;
}

static int api_opt_object(struct api_argv *a, const json_t *body, const char *key, const char *opt,
			  const char *const *strs, const char *const *bools,
			  const char *const *uints, struct httpd_response *resp)
{
	const json_t *o = json_object_get(body, key);
	char buf[4400] = "";

	if (!o || json_is_null(o))
		return 0;
	if (!json_is_object(o)) {
		httpd_error(resp, MHD_HTTP_BAD_REQUEST, key, "%s must be an object", key);
		return -1;
	}
	if (api_kv(buf, sizeof(buf), o, strs, bools, uints, resp))
		return -1;
	return buf[0] ? api_arg(a, "%s=%s", opt, buf + 1) : api_arg(a, "%s", opt);
}

/* "balloon": {"size_mib", "stats_period", "free_page_reporting", "deflate_on_oom"} */
static int api_config_balloon(struct api_argv *a, const json_t *o, struct httpd_response *resp)
{
	static const char *const fields[] = {"size_mib", "stats_period", "free_page_reporting",
					     "deflate_on_oom", NULL};
	uint64_t mib = 0, stats = 0;
	bool fpr = false, doo = false;

	if (!o || json_is_null(o))
		return 0;
	if (!json_is_object(o)) {
		httpd_error(resp, MHD_HTTP_BAD_REQUEST, "balloon", "balloon must be an object");
		return -1;
	}
	if (httpd_only_fields(o, fields, resp) ||
	    httpd_field_u64(o, "size_mib", false, 0, UINT32_MAX, &mib, resp) ||
	    httpd_field_u64(o, "stats_period", false, 0, UINT32_MAX, &stats, resp) ||
	    httpd_field_bool(o, "free_page_reporting", false, &fpr, resp) ||
	    httpd_field_bool(o, "deflate_on_oom", false, &doo, resp))
		return -1;
	return api_arg(a,
		       "--balloon=size=%lluM,stats=%llu,free_page_reporting=%s,deflate_on_oom=%s",
		       (unsigned long long)mib, (unsigned long long)stats, fpr ? "on" : "off",
		       doo ? "on" : "off");
}

static int api_config_devices(struct api_argv *a, const json_t *b, struct httpd_response *resp)
{
	static const char *const disk_s[] = {"path", "id", NULL}, *const disk_b[] = {"readonly",
										     "direct",
										     NULL};
	static const char *const net_s[] = {"tap", "mac", "id", NULL}, *const queues[] = {"queues",
											  NULL};
	static const char *const vsock_s[] = {"uds", NULL}, *const vsock_u[] = {"cid", NULL};
	static const char *const disk_u[] = {"queues", "iops",	    "iops_burst",
					     "bps",    "bps_burst", NULL};
	bool rng = false;

	if (api_opt_list(a, b, "disks", "--disk", disk_s, disk_b, disk_u, resp) ||
	    api_opt_list(a, b, "nets", "--net", net_s, NULL, queues, resp) ||
	    api_opt_object(a, b, "vsock", "--vsock", vsock_s, NULL, vsock_u, resp) ||
	    api_opt_str(a, b, "console_virtio", "--console-virtio", resp) ||
	    httpd_field_bool(b, "rng", false, &rng, resp))
		return -1;
	if (rng && api_arg(a, "--rng"))
		return -1;
	return api_config_balloon(a, json_object_get(b, "balloon"), resp);
}

/* The JSON of PUT /vm/config as options; fills resp (400) and returns -1 on a bad field. */
static int api_config_argv(const json_t *b, struct api_argv *a, struct httpd_response *resp)
{
	static const char *const fields[] = {"kernel",	   "initrd", "cmdline",	       "vcpus",
					     "memory_mib", "serial", "on_reboot",      "rng",
					     "disks",	   "nets",   "console_virtio", "vsock",
					     "balloon",	   NULL};

	if (httpd_only_fields(b, fields, resp) || api_arg(a, "bunshin-vmm"))
		return -1;
	if (!json_object_get(b, "kernel")) {
		httpd_error(resp, MHD_HTTP_BAD_REQUEST, "kernel", "kernel is required");
		return -1;
	}
	if (api_opt_str(a, b, "kernel", "--kernel", resp) ||
	    api_opt_str(a, b, "initrd", "--initrd", resp) ||
	    api_opt_str(a, b, "cmdline", "--cmdline", resp) ||
	    api_opt_uint(a, b, "vcpus", "--cpus", "", resp) ||
	    api_opt_uint(a, b, "memory_mib", "--memory", "M", resp) ||
	    api_opt_str(a, b, "serial", "--serial", resp) ||
	    api_opt_str(a, b, "on_reboot", "--on-reboot", resp))
		return -1;
	return api_config_devices(a, b, resp);
}

/* The JSON field an error from the option parser is about ("--memory: ..." -> memory_mib). */
static const char *api_config_field(const char *msg)
{
	static const char *const map[][2] = {
		{"--kernel", "kernel"},
		{"--initrd", "initrd"},
		{"--cmdline", "cmdline"},
		{"--cpus", "vcpus"},
		{"--memory", "memory_mib"},
		{"--serial", "serial"},
		{"--on-reboot", "on_reboot"},
		{"--disk", "disks"},
		{"--net", "nets"},
		{"--vsock", "vsock"},
		{"--balloon", "balloon"},
		{"--console-virtio", "console_virtio"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(map); i++) {
		size_t n = strlen(map[i][0]);

		if (!strncmp(msg, map[i][0], n) && (msg[n] == ':' || msg[n] == ' '))
			return map[i][1];
	}
	return NULL;
}

static void api_put_config(void *ctx, const struct httpd_request *req, struct httpd_response *resp)
{
	struct api *api = ctx;
	struct api_argv a = {0};
	struct error err = {0};

	if (!req->body) {
		httpd_error(resp, MHD_HTTP_BAD_REQUEST, NULL, "a JSON object is required");
		return;
	}
	if (!api_config_argv(req->body, &a, resp) &&
	    api->backend.configure(api->backend.ctx, a.argc, a.argv, &err))
		httpd_error(resp, err.code == EBUSY ? MHD_HTTP_CONFLICT : MHD_HTTP_BAD_REQUEST,
			    api_config_field(err.msg), "%s", err.msg);
	api_argv_free(&a);
}

/* ---- PUT /vm/restore ---- */

/* "overlays": [{"disk": ID, "file": PATH}] as --overlay DISK=FILE. */
static int api_restore_overlays(struct api_argv *a, const json_t *b, struct httpd_response *resp)
{
	static const char *const fields[] = {"disk", "file", NULL};
	const json_t *list = json_object_get(b, "overlays"), *o;
	const char *disk, *file;
	size_t i;

	if (!list)
		return 0;
	if (!json_is_array(list)) {
		httpd_error(resp, MHD_HTTP_BAD_REQUEST, "overlays", "overlays must be an array");
		return -1;
	}
	json_array_foreach(list, i, o)
	{
		if (!json_is_object(o) || httpd_only_fields(o, fields, resp) ||
		    httpd_field_str(o, "disk", true, &disk, resp) ||
		    httpd_field_str(o, "file", true, &file, resp)) {
			if (!json_is_object(o))
				httpd_error(resp, MHD_HTTP_BAD_REQUEST, "overlays",
					    "each overlay is an object {disk, file}");
			return -1;
		}
		if (strchr(disk, '=')) {
			httpd_error(resp, MHD_HTTP_BAD_REQUEST, "overlays",
				    "a disk name must not contain '='");
			return -1;
		}
		if (api_arg(a, "--overlay") || api_arg(a, "%s=%s", disk, file))
			return -1;
	}
	return 0;
}

/* The JSON of PUT /vm/restore as the options of `bunshin-vmm --restore DIR`. */
static int api_restore_argv(const json_t *b, struct api_argv *a, struct httpd_response *resp)
{
	static const char *const fields[] = {
		"dir", "serial", "nets", "vsock", "console_virtio", "overlays", NULL};
	static const char *const net_s[] = {"tap", "mac", "id", NULL};
	static const char *const vsock_s[] = {"uds", NULL}, *const vsock_u[] = {"cid", NULL};
	const char *dir;

	if (httpd_only_fields(b, fields, resp) || httpd_field_str(b, "dir", true, &dir, resp) ||
	    api_arg(a, "bunshin-vmm") || api_arg(a, "--restore") || api_arg(a, "%s", dir))
		return -1;
	if (api_opt_str(a, b, "serial", "--serial", resp) ||
	    api_opt_list(a, b, "nets", "--net", net_s, NULL, NULL, resp) ||
	    api_opt_object(a, b, "vsock", "--vsock", vsock_s, NULL, vsock_u, resp) ||
	    api_opt_str(a, b, "console_virtio", "--console-virtio", resp))
		return -1;
	return api_restore_overlays(a, b, resp);
}

/* The JSON field a restore error is about. */
static const char *api_restore_field(const char *msg)
{
	static const char *const map[][2] = {
		{"--overlay", "overlays"},
		{"--net", "nets"},
		{"--vsock", "vsock"},
		{"--serial", "serial"},
		{"--console-virtio", "console_virtio"},
	};

	for (size_t i = 0; i < ARRAY_SIZE(map); i++)
		if (strstr(msg, map[i][0]))
			return map[i][1];
	return "dir";
}

/*
 * A VMM started with only --api-sock becomes the VM a snapshot holds, as
 * `--restore DIR` would make it, with the same new identity options; it
 * runs as soon as the snapshot checks out.
 */
static void api_put_restore(void *ctx, const struct httpd_request *req, struct httpd_response *resp)
{
	struct api *api = ctx;
	struct api_argv a = {0};
	struct error err = {0};
	int ret;

	if (!req->body) {
		httpd_error(resp, MHD_HTTP_BAD_REQUEST, NULL, "a JSON object is required");
		return;
	}
	if (!api->backend.restore) {
		httpd_error(resp, MHD_HTTP_NOT_IMPLEMENTED, NULL, "no restore here");
		return;
	}
	if (!api_restore_argv(req->body, &a, resp)) {
		ret = api->backend.restore(api->backend.ctx, a.argc, a.argv, &err);
		if (ret == -EBUSY || ret == -EALREADY)
			httpd_error(resp, MHD_HTTP_CONFLICT, NULL, "%s", err.msg);
		else if (ret)
			httpd_error(resp, MHD_HTTP_BAD_REQUEST, api_restore_field(err.msg), "%s",
				    err.msg);
	}
	api_argv_free(&a);
}

/* ---- PUT /vm/actions ---- */

static const char *const api_action_names[] = {
	[API_ACTION_POWER_BUTTON] = "power_button",
	[API_ACTION_CTRL_ALT_DEL] = "ctrl_alt_del",
	[API_ACTION_STOP] = "stop",
	[API_ACTION_PAUSE] = "pause",
	[API_ACTION_RESUME] = "resume",
	[API_ACTION_START] = "start",
};

static void api_put_action(void *ctx, const struct httpd_request *req, struct httpd_response *resp)
{
	static const char *const fields[] = {"action", NULL};
	struct api *api = ctx;
	struct error err = {0};
	const char *name;

	if (httpd_only_fields(req->body, fields, resp) ||
	    httpd_field_str(req->body, "action", true, &name, resp))
		return;
	for (size_t i = 0; i < ARRAY_SIZE(api_action_names); i++) {
		if (strcmp(name, api_action_names[i]))
			continue;
		if (api->backend.action(api->backend.ctx, (enum api_action)i, &err))
			httpd_error(resp, MHD_HTTP_CONFLICT, "action", "%s", err.msg);
		return;
	}
	httpd_error(
		resp, MHD_HTTP_BAD_REQUEST, "action",
		"unknown action '%s' (expected power_button, ctrl_alt_del, stop, pause, resume or "
		"start)",
		name);
}

/* ---- PUT /vm/balloon ---- */

static void api_put_balloon(void *ctx, const struct httpd_request *req, struct httpd_response *resp)
{
	static const char *const fields[] = {"target_mib", NULL};
	struct api *api = ctx;
	struct error err = {0};
	uint64_t mib;
	int ret;

	if (httpd_only_fields(req->body, fields, resp) ||
	    httpd_field_u64(req->body, "target_mib", true, 0, (api->cfg->memory >> 20) - 1, &mib,
			    resp))
		return;
	ret = api->backend.balloon_target(api->backend.ctx, mib << 20, &err);
	if (ret == -ENODEV)
		httpd_error(resp, MHD_HTTP_NOT_FOUND, NULL, "this VM has no balloon (--balloon)");
	else if (ret)
		httpd_error(resp, MHD_HTTP_CONFLICT, "target_mib", "%s", err.msg);
}

/* The guest's statistics (virtio 1.2, 5.5.6.3), under the names they are reported as. */
static const char *const api_balloon_stat_names[] = {
	[VIRTIO_BALLOON_S_SWAP_IN] = "swap_in_bytes",
	[VIRTIO_BALLOON_S_SWAP_OUT] = "swap_out_bytes",
	[VIRTIO_BALLOON_S_MAJFLT] = "major_faults",
	[VIRTIO_BALLOON_S_MINFLT] = "minor_faults",
	[VIRTIO_BALLOON_S_MEMFREE] = "free_memory_bytes",
	[VIRTIO_BALLOON_S_MEMTOT] = "total_memory_bytes",
	[VIRTIO_BALLOON_S_AVAIL] = "available_memory_bytes",
	[VIRTIO_BALLOON_S_CACHES] = "disk_caches_bytes",
	[VIRTIO_BALLOON_S_HTLB_PGALLOC] = "hugetlb_allocations",
	[VIRTIO_BALLOON_S_HTLB_PGFAIL] = "hugetlb_failures",
};

static json_t *api_balloon_guest_stats(const struct virtio_balloon_stats *st)
{
	json_t *o = json_object();
	char name[32];

	for (unsigned int i = 0; i < VIRTIO_BALLOON_S_NR; i++) {
		const char *n =
			i < ARRAY_SIZE(api_balloon_stat_names) ? api_balloon_stat_names[i] : NULL;

		if (!(st->valid & (1u << i)))
			continue;
		if (!n) {
			snprintf(name, sizeof(name), "tag_%u", i);
			n = name;
		}
		json_object_set_new(o, n, json_integer((json_int_t)st->value[i]));
	}
	return o;
}

static void api_get_balloon(void *ctx, const struct httpd_request *req, struct httpd_response *resp)
{
	struct api *api = ctx;
	struct virtio_balloon_stats st = {0};

	(void)req;
	if (api->backend.balloon_stats(api->backend.ctx, &st))
		return httpd_error(resp, MHD_HTTP_NOT_FOUND, NULL,
				   "this VM has no balloon (--balloon)");
	/* Pages are 4 KiB: 256 to the MiB. */
	resp->body = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "target_mib",
			       (json_int_t)(st.num_pages / 256), "actual_mib",
			       (json_int_t)(st.actual / 256), "inflated_pages",
			       (json_int_t)st.inflated, "deflated_pages", (json_int_t)st.deflated,
			       "reported_bytes", (json_int_t)st.reported, "bad_pfns",
			       (json_int_t)st.bad_pfns, "stats_updates", (json_int_t)st.updates,
			       "guest_stats", api_balloon_guest_stats(&st));
}

/* ---- PUT /vm/snapshot ---- */

static void api_put_snapshot(void *ctx, const struct httpd_request *req,
			     struct httpd_response *resp)
{
	static const char *const fields[] = {"dir", "type", NULL};
	struct api *api = ctx;
	struct error err = {0};
	double pause_ms, total_ms;
	const char *dir, *type = "full";
	int ret;

	if (httpd_only_fields(req->body, fields, resp) ||
	    httpd_field_str(req->body, "dir", true, &dir, resp) ||
	    httpd_field_str(req->body, "type", false, &type, resp))
		return;
	if (!*dir || dir[0] != '/')
		return httpd_error(resp, MHD_HTTP_BAD_REQUEST, "dir",
				   "dir must be an absolute path");
	if (strcmp(type, "full") && strcmp(type, "diff") && strcmp(type, "suspend"))
		return httpd_error(resp, MHD_HTTP_BAD_REQUEST, "type",
				   "type must be \"full\", \"diff\" or \"suspend\"");
	if ((!strcmp(type, "diff") && !api->backend.snapshot_diff) ||
	    (!strcmp(type, "suspend") && !api->backend.snapshot_suspend))
		return httpd_error(resp, MHD_HTTP_NOT_IMPLEMENTED, "type", "no %s snapshots here",
				   type);
	if (!strcmp(type, "diff"))
		ret = api->backend.snapshot_diff(api->backend.ctx, dir, &pause_ms, &total_ms, &err);
	else if (!strcmp(type, "suspend"))
		ret = api->backend.snapshot_suspend(api->backend.ctx, dir, &pause_ms, &total_ms,
						    &err);
	else
		ret = api->backend.snapshot(api->backend.ctx, dir, &pause_ms, &total_ms, &err);
	if (ret == -EINVAL || ret == -EEXIST)
		return httpd_error(resp, MHD_HTTP_BAD_REQUEST, ret == -EINVAL ? "type" : "dir",
				   "%s", err.msg);
	if (ret)
		return httpd_error(resp, MHD_HTTP_CONFLICT, NULL, "%s", err.msg);
	resp->body = json_pack("{s:s, s:s, s:f, s:f}", "dir", dir, "type", type, "pause_ms",
			       pause_ms, "total_ms", total_ms);
}

/* ---- PUT /vm/migrate ---- */

static void api_put_migrate(void *ctx, const struct httpd_request *req, struct httpd_response *resp)
{
	static const char *const fields[] = {"url", NULL};
	struct api *api = ctx;
	struct api_migrate_info out = {0};
	struct error err = {0};
	const char *url;
	int ret;

	if (httpd_only_fields(req->body, fields, resp) ||
	    httpd_field_str(req->body, "url", true, &url, resp))
		return;
	if (!api->backend.migrate)
		return httpd_error(resp, MHD_HTTP_NOT_IMPLEMENTED, NULL, "no migration here");
	ret = api->backend.migrate(api->backend.ctx, url, &out, &err);
	if (ret == -EINVAL)
		return httpd_error(resp, MHD_HTTP_BAD_REQUEST, "url", "%s", err.msg);
	if (ret == -EAGAIN || ret == -EALREADY)
		return httpd_error(resp, MHD_HTTP_CONFLICT, NULL, "%s", err.msg);
	if (ret)
		return httpd_error(resp, MHD_HTTP_BAD_GATEWAY, NULL, "migration failed: %s",
				   err.msg);
	resp->body =
		json_pack("{s:s, s:f, s:f, s:I, s:I, s:i}", "url", url, "total_ms", out.total_ms,
			  "downtime_ms", out.downtime_ms, "bytes", (json_int_t)out.bytes, "pages",
			  (json_int_t)out.pages, "rounds", (int)out.rounds);
}

/* ---- PUT /vm/clone ---- */

static int api_clone_status(int ret)
{
	if (ret == -EINVAL)
		return MHD_HTTP_BAD_REQUEST;
	if (ret == -EBUSY || ret == -EAGAIN || ret == -EALREADY)
		return MHD_HTTP_CONFLICT;
	return MHD_HTTP_INTERNAL_SERVER_ERROR;
}

static void api_put_clone(void *ctx, const struct httpd_request *req, struct httpd_response *resp)
{
	struct api *api = ctx;
	struct api_clone_req creq;
	struct api_clone_result res = {0};
	struct error err = {0};
	int ret;

	if (!api->backend.clone)
		return httpd_error(resp, MHD_HTTP_NOT_FOUND, NULL, "cloning is not offered here");
	if (!api_clone_parse(req->body, &creq, resp)) {
		ret = api->backend.clone(api->backend.ctx, &creq, &res, &err);
		if (ret)
			httpd_error(resp, api_clone_status(ret), ret == -EINVAL ? res.field : NULL,
				    "%s", err.msg);
		else
			resp->body = api_clone_json(&res);
	}
	api_clone_req_free(&creq);
	free(res.vms);
}

/* ---- PUT /vm/disk-limits ---- */

static json_t *api_limits_json(const struct virtio_blk_limits *l)
{
	return json_pack("{s:I, s:I, s:I, s:I}", "iops", (json_int_t)l->iops, "iops_burst",
			 (json_int_t)l->iops_burst, "bps", (json_int_t)l->bps, "bps_burst",
			 (json_int_t)l->bps_burst);
}

/* The limits the body gives, over cur: a field left out keeps its value. */
static int api_limit_fields(const json_t *b, struct virtio_blk_limits *cur,
			    struct httpd_response *resp)
{
	static const char *const names[] = {"iops", "iops_burst", "bps", "bps_burst"};
	uint64_t *vals[] = {&cur->iops, &cur->iops_burst, &cur->bps, &cur->bps_burst};

	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (json_object_get(b, names[i]) &&
		    httpd_field_u64(b, names[i], true, 0, CONFIG_RATE_MAX, vals[i], resp))
			return -1;
	return 0;
}

/* A burst is the size of a bucket only a rate fills: given alone it means nothing. */
static int api_limit_bursts(const json_t *b, struct virtio_blk_limits *l,
			    struct httpd_response *resp)
{
	if (json_object_get(b, "iops_burst") && l->iops_burst && !l->iops) {
		httpd_error(resp, MHD_HTTP_BAD_REQUEST, "iops_burst",
			    "iops_burst needs an iops limit");
		return -1;
	}
	if (json_object_get(b, "bps_burst") && l->bps_burst && !l->bps) {
		httpd_error(resp, MHD_HTTP_BAD_REQUEST, "bps_burst", "bps_burst needs a bps limit");
		return -1;
	}
	if (!l->iops)
		l->iops_burst = 0;
	if (!l->bps)
		l->bps_burst = 0;
	return 0;
}

static void api_disk_error(struct httpd_response *resp, int ret, const char *disk)
{
	if (ret == -ENOENT)
		httpd_error(resp, MHD_HTTP_NOT_FOUND, "disk", "no disk '%s' (an id or an index)",
			    disk);
	else
		httpd_error(resp, MHD_HTTP_CONFLICT, NULL, "the VM is not started");
}

static void api_put_disk_limits(void *ctx, const struct httpd_request *req,
				struct httpd_response *resp)
{
	static const char *const fields[] = {"disk", "iops",	  "iops_burst",
					     "bps",  "bps_burst", NULL};
	struct api *api = ctx;
	struct virtio_blk_limits l = {0};
	const char *disk;
	int ret;

	/* the values are checked first, so a bad one is a 400 whatever the disk */
	if (httpd_only_fields(req->body, fields, resp) ||
	    httpd_field_str(req->body, "disk", true, &disk, resp) ||
	    api_limit_fields(req->body, &l, resp))
		return;
	ret = api->backend.disk_get_limits
		      ? api->backend.disk_get_limits(api->backend.ctx, disk, &l)
		      : -ENOENT;
	if (ret)
		return api_disk_error(resp, ret, disk);
	if (api_limit_fields(req->body, &l, resp) || api_limit_bursts(req->body, &l, resp))
		return;
	ret = api->backend.disk_set_limits(api->backend.ctx, disk, &l);
	if (ret)
		return api_disk_error(resp, ret, disk);
	resp->body = json_pack("{s:s, s:o}", "disk", disk, "limits", api_limits_json(&l));
}

/* ---- metrics ---- */

/* Names for the exits a healthy VM has; the rest appear by number. */
static const char *api_exit_name(unsigned int reason, char *buf, size_t size)
{
	switch (reason) {
	case KVM_EXIT_IO:
		return "io";
	case KVM_EXIT_MMIO:
		return "mmio";
	case KVM_EXIT_HLT:
		return "hlt";
	case KVM_EXIT_INTR:
		return "intr";
	case KVM_EXIT_SHUTDOWN:
		return "shutdown";
	case KVM_EXIT_SYSTEM_EVENT:
		return "system_event";
	case KVM_EXIT_FAIL_ENTRY:
		return "fail_entry";
	case KVM_EXIT_INTERNAL_ERROR:
		return "internal_error";
	}
	snprintf(buf, size, "reason_%u", reason);
	return buf;
}

#define API_I(v) ((json_int_t)(v))

static json_t *api_disks_metrics_json(const struct api_metrics *m)
{
	json_t *a = json_array();

	for (unsigned int i = 0; i < m->ndisks; i++) {
		const struct virtio_blk_stats *st = &m->disks[i].st;

		json_array_append_new(
			a,
			json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "id",
				  m->disks[i].id, "reads", API_I(st->reads), "writes",
				  API_I(st->writes), "flushes", API_I(st->flushes), "write_through",
				  API_I(st->write_through), "bytes_read", API_I(st->bytes_read),
				  "bytes_written", API_I(st->bytes_written), "errors",
				  API_I(st->errors), "throttled", API_I(st->throttled), "limits",
				  api_limits_json(&m->disks[i].limits)));
	}
	return a;
}

static json_t *api_nets_metrics_json(const struct api_metrics *m)
{
	json_t *a = json_array();

	for (unsigned int i = 0; i < m->nnets; i++) {
		const struct virtio_net_stats *st = &m->nets[i].st;

		json_array_append_new(
			a, json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "tap",
				     m->nets[i].tap, "rx_packets", API_I(st->rx_packets),
				     "rx_bytes", API_I(st->rx_bytes), "rx_dropped",
				     API_I(st->rx_dropped), "rx_errors", API_I(st->rx_errors),
				     "tx_packets", API_I(st->tx_packets), "tx_bytes",
				     API_I(st->tx_bytes), "tx_dropped", API_I(st->tx_dropped)));
	}
	return a;
}

static json_t *api_migration_json(const struct api_metrics *m)
{
	const struct api_migrate_info *l = &m->migration;

	return json_pack("{s:i, s:i, s:{s:f, s:f, s:I, s:I, s:i}}", "attempts", (int)m->migrations,
			 "failed", (int)m->migrations_failed, "last", "total_ms", l->total_ms,
			 "downtime_ms", l->downtime_ms, "bytes", (json_int_t)l->bytes, "pages",
			 (json_int_t)l->pages, "rounds", (int)l->rounds);
}

static void api_get_metrics_json(void *ctx, const struct httpd_request *req,
				 struct httpd_response *resp)
{
	struct api *api = ctx;
	struct api_metrics m = {0};
	json_t *exits = json_object();
	char buf[32];

	(void)req;
	api->backend.metrics(api->backend.ctx, &m);
	for (unsigned int r = 0; r < API_EXIT_REASONS; r++)
		if (m.exits[r])
			json_object_set_new(exits, api_exit_name(r, buf, sizeof(buf)),
					    json_integer((json_int_t)m.exits[r]));
	resp->body = json_pack("{s:o, s:I, s:o, s:o}", "vcpu_exits", exits, "console_dropped_bytes",
			       (json_int_t)m.console_dropped, "disks", api_disks_metrics_json(&m),
			       "nets", api_nets_metrics_json(&m));
	if (resp->body)
		json_object_set_new(resp->body, "migration", api_migration_json(&m));
}

static void api_migration_metrics_text(FILE *f, const struct api_metrics *m)
{
	fprintf(f,
		"# HELP bunshin_migrations_total Live migrations this VMM started.\n"
		"# TYPE bunshin_migrations_total counter\n"
		"bunshin_migrations_total %u\n"
		"# HELP bunshin_migrations_failed_total Of those, the ones that failed (the VM ran "
		"on here).\n"
		"# TYPE bunshin_migrations_failed_total counter\n"
		"bunshin_migrations_failed_total %u\n"
		"# HELP bunshin_migration_last_downtime_seconds The latest migration's downtime.\n"
		"# TYPE bunshin_migration_last_downtime_seconds gauge\n"
		"bunshin_migration_last_downtime_seconds %.6f\n"
		"# HELP bunshin_migration_last_bytes The latest migration's bytes sent.\n"
		"# TYPE bunshin_migration_last_bytes gauge\n"
		"bunshin_migration_last_bytes %llu\n",
		m->migrations, m->migrations_failed, m->migration.downtime_ms / 1e3,
		(unsigned long long)m->migration.bytes);
}

/* A Prometheus label value: backslash, double quote and newline escaped. */
static void api_label(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fputc('\\', f);
		if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}

/* One sample: name{key="value"[,extra]} n */
static void api_sample(FILE *f, const char *name, const char *key, const char *value,
		       const char *extra, uint64_t n)
{
	fprintf(f, "%s{%s=\"", name, key);
	api_label(f, value);
	fprintf(f, "\"%s%s} %llu\n", extra ? "," : "", extra ? extra : "", (unsigned long long)n);
}

static void api_disks_metrics_text(FILE *f, const struct api_metrics *m)
{
	fputs("# HELP bunshin_disk_requests_total Disk requests handed to the block layer.\n"
	      "# TYPE bunshin_disk_requests_total counter\n",
	      f);
	for (unsigned int i = 0; i < m->ndisks; i++) {
		const struct virtio_blk_stats *st = &m->disks[i].st;
		const char *id = m->disks[i].id;

		api_sample(f, "bunshin_disk_requests_total", "disk", id, "op=\"read\"", st->reads);
		api_sample(f, "bunshin_disk_requests_total", "disk", id, "op=\"write\"",
			   st->writes);
		api_sample(f, "bunshin_disk_requests_total", "disk", id, "op=\"flush\"",
			   st->flushes);
	}
	fputs("# HELP bunshin_disk_bytes_total Bytes read and written.\n"
	      "# TYPE bunshin_disk_bytes_total counter\n",
	      f);
	for (unsigned int i = 0; i < m->ndisks; i++) {
		api_sample(f, "bunshin_disk_bytes_total", "disk", m->disks[i].id, "op=\"read\"",
			   m->disks[i].st.bytes_read);
		api_sample(f, "bunshin_disk_bytes_total", "disk", m->disks[i].id, "op=\"write\"",
			   m->disks[i].st.bytes_written);
	}
	fputs("# HELP bunshin_disk_errors_total Requests that failed in the block layer.\n"
	      "# TYPE bunshin_disk_errors_total counter\n",
	      f);
	for (unsigned int i = 0; i < m->ndisks; i++)
		api_sample(f, "bunshin_disk_errors_total", "disk", m->disks[i].id, NULL,
			   m->disks[i].st.errors);
	fputs("# HELP bunshin_disk_throttled_total Requests that waited for the disk's rate "
	      "limit.\n"
	      "# TYPE bunshin_disk_throttled_total counter\n",
	      f);
	for (unsigned int i = 0; i < m->ndisks; i++)
		api_sample(f, "bunshin_disk_throttled_total", "disk", m->disks[i].id, NULL,
			   m->disks[i].st.throttled);
}

/* Each family in one group (the text format wants a metric's samples together). */
static void api_nets_metrics_text(FILE *f, const struct api_metrics *m)
{
	static const struct {
		const char *name, *help;
	} fam[] = {
		{"bunshin_net_packets_total", "Frames through the network device."},
		{"bunshin_net_bytes_total", "Bytes through the network device."},
		{"bunshin_net_dropped_total",
		 "Frames dropped (no guest buffer fits, tap refused)."},
	};

	for (size_t k = 0; k < ARRAY_SIZE(fam); k++) {
		fprintf(f, "# HELP %s %s\n# TYPE %s counter\n", fam[k].name, fam[k].help,
			fam[k].name);
		for (unsigned int i = 0; i < m->nnets; i++) {
			const struct virtio_net_stats *st = &m->nets[i].st;
			const uint64_t rx[] = {st->rx_packets, st->rx_bytes, st->rx_dropped};
			const uint64_t tx[] = {st->tx_packets, st->tx_bytes, st->tx_dropped};

			api_sample(f, fam[k].name, "tap", m->nets[i].tap, "dir=\"rx\"", rx[k]);
			api_sample(f, fam[k].name, "tap", m->nets[i].tap, "dir=\"tx\"", tx[k]);
		}
	}
}

static void api_get_metrics_text(void *ctx, const struct httpd_request *req,
				 struct httpd_response *resp)
{
	struct api *api = ctx;
	struct api_metrics m = {0};
	char *text = NULL, buf[32];
	size_t size = 0;
	FILE *f = open_memstream(&text, &size);

	(void)req;
	if (!f)
		return httpd_error(resp, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
	api->backend.metrics(api->backend.ctx, &m);
	fputs("# HELP bunshin_vcpu_exits_total KVM exits handled in the VMM, by reason.\n"
	      "# TYPE bunshin_vcpu_exits_total counter\n",
	      f);
	for (unsigned int r = 0; r < API_EXIT_REASONS; r++)
		if (m.exits[r])
			fprintf(f, "bunshin_vcpu_exits_total{reason=\"%s\"} %llu\n",
				api_exit_name(r, buf, sizeof(buf)), (unsigned long long)m.exits[r]);
	fprintf(f,
		"# HELP bunshin_console_dropped_bytes_total Serial output dropped for want of "
		"a reader.\n"
		"# TYPE bunshin_console_dropped_bytes_total counter\n"
		"bunshin_console_dropped_bytes_total %llu\n",
		(unsigned long long)m.console_dropped);
	api_disks_metrics_text(f, &m);
	api_nets_metrics_text(f, &m);
	api_migration_metrics_text(f, &m);
	if (fclose(f)) {
		free(text);
		return httpd_error(resp, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
	}
	resp->text = text;
}

static void api_get_limits(void *ctx, const struct httpd_request *req, struct httpd_response *resp)
{
	(void)ctx;
	(void)req;
	resp->body = api_vm_limits_json();
}

static const struct httpd_route api_routes[] = {
	{"GET", "/vm", api_get_vm},
	{"GET", "/vm/config", api_get_config},
	{"PUT", "/vm/config", api_put_config},
	{"PUT", "/vm/actions", api_put_action},
	{"GET", "/vm/balloon", api_get_balloon},
	{"PUT", "/vm/balloon", api_put_balloon},
	{"PUT", "/vm/snapshot", api_put_snapshot},
	{"PUT", "/vm/disk-limits", api_put_disk_limits},
	{"GET", "/vm/metrics", api_get_metrics_json},
	{"GET", "/metrics", api_get_metrics_text},
	{"PUT", "/vm/clone", api_put_clone},
	{"GET", "/vm/limits", api_get_limits},
	{"PUT", "/vm/migrate", api_put_migrate},
	{"PUT", "/vm/restore", api_put_restore},
	{NULL, NULL, NULL},
};

/* On the server's thread before its first request: the API thread's own seccomp filter. */
static void api_sandbox_thread(void)
{
	sandbox_seccomp_thread(SANDBOX_THREAD_API);
}

struct api *api_start(const char *path, const struct vmm_config *cfg,
		      const struct api_backend *backend, struct error *err)
{
	struct api *api = calloc(1, sizeof(*api));

	if (!api) {
		error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	api->cfg = cfg;
	api->backend = *backend;
	api->httpd = httpd_start_hooked(path, api_routes, api, api_sandbox_thread, err);
	if (!api->httpd) {
		free(api);
		return NULL;
	}
	return api;
}

void api_set_config(struct api *api, const struct vmm_config *cfg)
{
	api->cfg = cfg;
}

void api_stop(struct api *api)
{
	if (!api)
		return;
	httpd_stop(api->httpd);
	free(api);
}
