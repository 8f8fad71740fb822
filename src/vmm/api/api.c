// SPDX-License-Identifier: MIT
#include <errno.h>
#include <linux/kvm.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/httpd.h"
#include "../../common/util.h"
#include "api.h"

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

		json_array_append_new(a, json_pack("{s:s, s:o, s:b, s:b, s:i}", "path", d->path,
						   "id", api_json_str_or_null(d->id), "readonly",
						   d->read_only, "direct", d->direct, "queues",
						   (int)d->queues));
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
	o = json_pack("{s:s, s:o, s:o, s:i, s:I, s:s, s:s}", "kernel", cfg->kernel, "initrd",
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

/* ---- PUT /vm/actions ---- */

static const char *const api_action_names[] = {
	[API_ACTION_POWER_BUTTON] = "power_button",
	[API_ACTION_CTRL_ALT_DEL] = "ctrl_alt_del",
	[API_ACTION_STOP] = "stop",
	[API_ACTION_PAUSE] = "pause",
	[API_ACTION_RESUME] = "resume",
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
		"unknown action '%s' (expected power_button, ctrl_alt_del, stop, pause or resume)",
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
	static const char *const fields[] = {"dir", NULL};
	struct api *api = ctx;
	struct error err = {0};
	double pause_ms, total_ms;
	const char *dir;

	if (httpd_only_fields(req->body, fields, resp) ||
	    httpd_field_str(req->body, "dir", true, &dir, resp))
		return;
	if (!*dir || dir[0] != '/')
		return httpd_error(resp, MHD_HTTP_BAD_REQUEST, "dir",
				   "dir must be an absolute path");
	if (api->backend.snapshot(api->backend.ctx, dir, &pause_ms, &total_ms, &err))
		return httpd_error(resp, MHD_HTTP_CONFLICT, NULL, "%s", err.msg);
	resp->body = json_pack("{s:s, s:f, s:f}", "dir", dir, "pause_ms", pause_ms, "total_ms",
			       total_ms);
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
			json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "id", m->disks[i].id,
				  "reads", API_I(st->reads), "writes", API_I(st->writes), "flushes",
				  API_I(st->flushes), "write_through", API_I(st->write_through),
				  "bytes_read", API_I(st->bytes_read), "bytes_written",
				  API_I(st->bytes_written), "errors", API_I(st->errors)));
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
	if (fclose(f)) {
		free(text);
		return httpd_error(resp, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
	}
	resp->text = text;
}

static const struct httpd_route api_routes[] = {
	{"GET", "/vm", api_get_vm},
	{"GET", "/vm/config", api_get_config},
	{"PUT", "/vm/actions", api_put_action},
	{"GET", "/vm/balloon", api_get_balloon},
	{"PUT", "/vm/balloon", api_put_balloon},
	{"PUT", "/vm/snapshot", api_put_snapshot},
	{"GET", "/vm/metrics", api_get_metrics_json},
	{"GET", "/metrics", api_get_metrics_text},
	{NULL, NULL, NULL},
};

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
	api->httpd = httpd_start(path, api_routes, api, err);
	if (!api->httpd) {
		free(api);
		return NULL;
	}
	return api;
}

void api_stop(struct api *api)
{
	if (!api)
		return;
	httpd_stop(api->httpd);
	free(api);
}
