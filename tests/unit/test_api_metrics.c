// SPDX-License-Identifier: MIT
/* The control API's metrics against a fake machine: formats, grouping, escaping. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../src/vmm/api/api.h"

static void fake_info(void *ctx, struct api_vm_info *out)
{
	(void)ctx;
	*out = (struct api_vm_info){.state = "running", .vcpus = 1, .memory = 64 << 20, .boots = 1};
}

static void fake_metrics(void *ctx, struct api_metrics *out)
{
	(void)ctx;
	out->exits[2] = 7; /* KVM_EXIT_IO */
	out->ndisks = 2;
	out->disks[0] = (struct api_disk_metrics){
		.id = "root",
		.st = {.reads = 3, .writes = 2, .bytes_read = 12288, .errors = 1, .throttled = 7},
		.limits = {.iops = 200}};
	out->disks[1] = (struct api_disk_metrics){.id = "a\"b\\c\nd", .st = {.flushes = 5}};
	out->nnets = 2;
	out->nets[0] =
		(struct api_net_metrics){.tap = "tap0", .st = {.rx_packets = 10, .tx_packets = 20}};
	out->nets[1] = (struct api_net_metrics){.tap = "tap1", .st = {.tx_dropped = 4}};
}

/* Not reached by these tests. */
static int fake_action(void *ctx, enum api_action a, struct error *err)
{
	return error_set(err, ENOSYS, "fake %p %d", ctx, a);
}

static int fake_balloon(void *ctx, uint64_t bytes, struct error *err)
{
	return error_set(err, ENOSYS, "fake %p %llu", ctx, (unsigned long long)bytes);
}

static int fake_balloon_stats(void *ctx, struct virtio_balloon_stats *out)
{
	(void)ctx;
	(void)out;
	return -ENODEV;
}

static int fake_snapshot(void *ctx, const char *dir, double *pause_ms, double *total_ms,
			 struct error *err)
{
	(void)pause_ms;
	(void)total_ms;
	return error_set(err, ENOSYS, "fake %p %s", ctx, dir);
}

static struct api *api;
static char sock[64];
static struct vmm_config cfg;

static void setup(void)
{
	struct api_backend b = {.info = fake_info,
				.metrics = fake_metrics,
				.action = fake_action,
				.balloon_target = fake_balloon,
				.balloon_stats = fake_balloon_stats,
				.snapshot = fake_snapshot};
	struct error err = {0};

	snprintf(sock, sizeof(sock), "/tmp/bunshin-api-unit.%d", (int)getpid());
	cfg.memory = 64 << 20;
	api = api_start(sock, &cfg, &b, &err);
	cr_assert_not_null(api, "%s", err.msg);
}

static void teardown(void)
{
	api_stop(api);
}

TestSuite(api_metrics, .init = setup, .fini = teardown);

/* GET path; returns the body (static). */
static const char *get(const char *path)
{
	static char raw[16384];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	char req[128];
	size_t len = 0;
	ssize_t n;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
	cr_assert_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	while ((n = read(fd, raw + len, sizeof(raw) - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	raw[len] = 0;
	cr_assert(strstr(raw, "HTTP/1.1 200"), "%s", raw);
	return strstr(raw, "\r\n\r\n") + 4;
}

Test(api_metrics, prometheus_text)
{
	const char *t = get("/metrics");
	const char *want[] = {
		"bunshin_vcpu_exits_total{reason=\"io\"} 7\n",
		"bunshin_disk_requests_total{disk=\"root\",op=\"read\"} 3\n",
		"bunshin_disk_requests_total{disk=\"root\",op=\"write\"} 2\n",
		"bunshin_disk_bytes_total{disk=\"root\",op=\"read\"} 12288\n",
		"bunshin_disk_errors_total{disk=\"root\"} 1\n",
		"bunshin_disk_requests_total{disk=\"a\\\"b\\\\c\\nd\",op=\"flush\"} 5\n",
		"bunshin_net_packets_total{tap=\"tap0\",dir=\"rx\"} 10\n",
		"bunshin_net_packets_total{tap=\"tap0\",dir=\"tx\"} 20\n",
		"bunshin_net_dropped_total{tap=\"tap1\",dir=\"tx\"} 4\n",
	};

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		cr_assert(strstr(t, want[i]), "missing %s in:\n%s", want[i], t);
}

/* The text format wants each metric's samples in one group, after its TYPE line. */
Test(api_metrics, each_family_is_one_group)
{
	const char *t = get("/metrics");
	const char *fams[] = {"bunshin_disk_requests_total", "bunshin_net_packets_total",
			      "bunshin_net_bytes_total", "bunshin_net_dropped_total"};

	for (size_t k = 0; k < sizeof(fams) / sizeof(fams[0]); k++) {
		char type[96];
		const char *p, *first, *last = NULL;
		size_t flen = strlen(fams[k]);

		snprintf(type, sizeof(type), "# TYPE %s counter\n", fams[k]);
		first = strstr(t, type);
		cr_assert_not_null(first, "no TYPE for %s", fams[k]);
		for (p = first + strlen(type); (p = strstr(p, fams[k])); p += flen)
			if (p[flen] == '{')
				last = p;
		cr_assert_not_null(last);
		/* nothing but this family's samples between its TYPE line and its last sample */
		for (p = first + strlen(type); p < last; p = strchr(p, '\n') + 1)
			cr_assert(!strncmp(p, fams[k], flen), "%s interrupted at: %.60s", fams[k],
				  p);
	}
}

Test(api_metrics, json)
{
	const char *t = get("/vm/metrics");

	cr_assert(strstr(t, "\"vcpu_exits\":{\"io\":7}"), "%s", t);
	cr_assert(strstr(t, "{\"id\":\"root\",\"reads\":3,\"writes\":2,\"flushes\":0,"
			    "\"write_through\":0,\"bytes_read\":12288,\"bytes_written\":0,"
			    "\"errors\":1,\"throttled\":7,\"limits\":{\"iops\":200,"
			    "\"iops_burst\":0,\"bps\":0,\"bps_burst\":0}}"),
		  "%s", t);
	cr_assert(strstr(t, "\"tap\":\"tap1\""), "%s", t);
	cr_assert(strstr(t, "\"tx_dropped\":4"), "%s", t);
}
