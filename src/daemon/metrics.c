// SPDX-License-Identifier: MIT
/*
 * GET /metrics: Prometheus text for the operator: instances by state,
 * capacity and allocations, each tenant's usage against its quota, the
 * API's request latencies as a histogram, and each live instance's CPU,
 * memory and network use.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "firewall.h"
#include "supervisor.h"

static const double metrics_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
					0.1,   0.25,   0.5,   1,    2.5,   10};
#define METRICS_NBUCKETS (sizeof(metrics_bounds) / sizeof(metrics_bounds[0]))

static struct {
	pthread_mutex_t lock;
	uint64_t buckets[METRICS_NBUCKETS]; /* not cumulative here; summed when printed */
	uint64_t count;
	double sum;
	uint64_t by_class[6]; /* 1xx..5xx by status / 100 */
} metrics = {.lock = PTHREAD_MUTEX_INITIALIZER};

void metrics_observe(int status, double seconds)
{
	size_t b = 0;

	while (b < METRICS_NBUCKETS && seconds > metrics_bounds[b])
		b++;
	pthread_mutex_lock(&metrics.lock);
	if (b < METRICS_NBUCKETS)
		metrics.buckets[b]++;
	metrics.count++;
	metrics.sum += seconds;
	if (status >= 100 && status < 600)
		metrics.by_class[status / 100]++;
	pthread_mutex_unlock(&metrics.lock);
}

struct metrics_buf {
	char *s;
	size_t len, cap;
	bool oom;
};

__attribute__((format(printf, 2, 3))) static void mb_add(struct metrics_buf *b, const char *fmt,
							 ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0 || b->oom)
			return;
		if (b->s && b->len + (size_t)n < b->cap) {
			b->len += (size_t)n;
			return;
		}
		char *p = realloc(b->s, b->cap * 2 + (size_t)n + 256);

		if (!p) {
			b->oom = true;
			return;
		}
		b->s = p;
		b->cap = b->cap * 2 + (size_t)n + 256;
	}
}

static void metrics_states(struct metrics_buf *b, json_t *list)
{
	static const char *const states[] = {ST_STARTING, ST_RUNNING, ST_PAUSED,   ST_STOPPING,
					     ST_STOPPED,  ST_ERROR,   ST_SUSPENDED};
	json_t *inst;
	size_t i;

	mb_add(b, "# HELP bunshind_instances Instances by state.\n"
		  "# TYPE bunshind_instances gauge\n");
	for (size_t k = 0; k < sizeof(states) / sizeof(states[0]); k++) {
		int n = 0;

		json_array_foreach(list, i, inst) n +=
			!strcmp(json_string_value(json_object_get(inst, "state")), states[k]);
		mb_add(b, "bunshind_instances{state=\"%s\"} %d\n", states[k], n);
	}
}

static void metrics_tenants(struct metrics_buf *b, json_t *usage)
{
	static const char *const keys[][2] = {{"instances", "quota_instances"},
					      {"vcpus", "quota_vcpus"},
					      {"ram_mib", "quota_ram_mib"}};
	json_t *t;
	size_t i;

	for (size_t k = 0; k < 3; k++) {
		for (size_t q = 0; q < 2; q++) {
			mb_add(b, "# TYPE bunshind_tenant_%s gauge\n", keys[k][q]);
			json_array_foreach(usage, i, t) mb_add(
				b, "bunshind_tenant_%s{tenant=\"%s\"} %lld\n", keys[k][q],
				json_string_value(json_object_get(t, "tenant")),
				(long long)json_integer_value(json_object_get(t, keys[k][q])));
		}
	}
}

static void metrics_latency(struct metrics_buf *b)
{
	uint64_t cum = 0;

	pthread_mutex_lock(&metrics.lock);
	mb_add(b, "# HELP bunshind_api_request_duration_seconds API request latency.\n"
		  "# TYPE bunshind_api_request_duration_seconds histogram\n");
	for (size_t k = 0; k < METRICS_NBUCKETS; k++) {
		cum += metrics.buckets[k];
		mb_add(b, "bunshind_api_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
		       metrics_bounds[k], (unsigned long long)cum);
	}
	mb_add(b,
	       "bunshind_api_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
	       "bunshind_api_request_duration_seconds_sum %.6f\n"
	       "bunshind_api_request_duration_seconds_count %llu\n"
	       "# TYPE bunshind_api_requests_total counter\n",
	       (unsigned long long)metrics.count, metrics.sum, (unsigned long long)metrics.count);
	for (int c = 1; c <= 5; c++)
		mb_add(b, "bunshind_api_requests_total{code=\"%dxx\"} %llu\n", c,
		       (unsigned long long)metrics.by_class[c]);
	pthread_mutex_unlock(&metrics.lock);
}

/* The firewall's drop counters by reason: they start again from 0 at each rebuild. */
static void metrics_firewall(struct metrics_buf *b)
{
	static const char *const reasons[] = FW_REASONS;
	uint64_t n[FW_NREASONS];

	fw_dropped(n);
	mb_add(b, "# HELP bunshind_firewall_dropped_total Packets the firewall dropped.\n"
		  "# TYPE bunshind_firewall_dropped_total counter\n");
	for (unsigned int r = 0; r < FW_NREASONS; r++)
		mb_add(b, "bunshind_firewall_dropped_total{reason=\"%s\"} %llu\n", reasons[r],
		       (unsigned long long)n[r]);
}

/*
 * The host's counters of each tap (bt-ID), from /proc/self/net/dev: the
 * namespace bunshind's taps are in (sysfs would show its mount's). A
 * tap's transmit is its guest's receive.
 */
static json_t *metrics_taps(void)
{
	FILE *f = fopen("/proc/self/net/dev", "re");
	json_t *taps = json_object();
	char line[512], key[24];
	unsigned long long v[16];
	long long id;

	while (f && taps && fgets(line, sizeof(line), f)) {
		if (sscanf(line, " bt-%lld: %llu %llu %llu %llu %llu %llu %llu %llu %llu", &id,
			   &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8]) != 10)
			continue;
		snprintf(key, sizeof(key), "%lld", id);
		/* columns: receive bytes, packets, errs, drop, fifo, frame, compressed, multicast;
		 * transmit bytes */
		json_object_set_new(
			taps, key,
			json_pack("{s:I, s:I}", "rx", (json_int_t)v[8], "tx", (json_int_t)v[0]));
	}
	if (f)
		fclose(f);
	return taps;
}

/* An instance's labels: its name, id and tenant (names are [A-Za-z0-9._-]: nothing to escape). */
#define METRICS_LABELS "{instance=\"%s\",id=\"%lld\",tenant=\"%s\"}"

static bool metrics_live(const json_t *inst)
{
	const char *st = json_string_value(json_object_get(inst, "state"));

	return st && (!strcmp(st, ST_RUNNING) || !strcmp(st, ST_PAUSED));
}

/*
 * The CPU time of an instance's processes: its pid (the VMM, or jailed its
 * launcher) if it is still the one bunshind started, and its children
 * (the jailed VMM). -1 when it is gone.
 */
static double metrics_cpu_seconds(const json_t *inst)
{
	pid_t pid = (pid_t)json_integer_value(json_object_get(inst, "pid"));
	uint64_t start, child, child_ticks, total;
	char path[80], buf[512], *p, *end;
	ssize_t n;
	int fd;

	if (pid <= 0 || sup_proc_times(pid, &start, &total) ||
	    start != (uint64_t)json_integer_value(json_object_get(inst, "pid_start")))
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = 0;
	for (p = buf; (child = strtoull(p, &end, 10)) && end != p; p = end)
		if (!sup_proc_times((pid_t)child, &start, &child_ticks))
			total += child_ticks;
	return (double)total / (double)sysconf(_SC_CLK_TCK);
}

/* Instance inst's line of metric kind (0 CPU, 1 memory, 2 receive, 3 transmit), if it has one. */
static void metrics_instance(struct metrics_buf *b, const struct daemon *d, const json_t *inst,
			     const json_t *taps, int kind)
{
	const char *name = json_string_value(json_object_get(inst, "name"));
	const char *tenant = json_string_value(json_object_get(inst, "tenant"));
	long long id = json_integer_value(json_object_get(inst, "id"));
	const json_t *tap;
	uint64_t bytes;
	double cpu;
	char key[24];

	snprintf(key, sizeof(key), "%lld", id);
	tap = json_object_get(taps, key);
	if (kind == 0 && (cpu = metrics_cpu_seconds(inst)) >= 0)
		mb_add(b, "bunshind_instance_cpu_seconds_total" METRICS_LABELS " %.2f\n", name, id,
		       tenant, cpu);
	if (kind == 1 && !djail_cgroup_memory(d, id, &bytes))
		mb_add(b, "bunshind_instance_memory_bytes" METRICS_LABELS " %llu\n", name, id,
		       tenant, (unsigned long long)bytes);
	if (kind >= 2 && tap)
		mb_add(b, "bunshind_instance_network_%s_bytes_total" METRICS_LABELS " %llu\n",
		       kind == 2 ? "receive" : "transmit", name, id, tenant,
		       (unsigned long long)json_integer_value(
			       json_object_get(tap, kind == 2 ? "rx" : "tx")));
}

/*
 * Each running or paused instance's use: CPU from /proc (its VMM, vCPUs
 * included), memory from its cgroup, network bytes from its tap, as the
 * guest sees them. What a host cannot tell (no cgroups, no tap) has no line.
 */
static void metrics_instances(struct metrics_buf *b, const struct daemon *d, const json_t *list)
{
	static const char *const heads[] = {
		"bunshind_instance_cpu_seconds_total CPU time of the instance's VMM, vCPUs "
		"included.\n# TYPE bunshind_instance_cpu_seconds_total counter",
		"bunshind_instance_memory_bytes Memory charged to the instance's cgroup.\n"
		"# TYPE bunshind_instance_memory_bytes gauge",
		"bunshind_instance_network_receive_bytes_total Bytes the guest received (its "
		"tap's transmit).\n# TYPE bunshind_instance_network_receive_bytes_total counter",
		"bunshind_instance_network_transmit_bytes_total Bytes the guest sent (its tap's "
		"receive).\n# TYPE bunshind_instance_network_transmit_bytes_total counter"};
	json_t *taps = metrics_taps(), *inst;
	size_t i;

	for (int kind = 0; kind < 4; kind++) {
		mb_add(b, "# HELP %s\n", heads[kind]);
		json_array_foreach(list, i, inst)
		{
			if (metrics_live(inst))
				metrics_instance(b, d, inst, taps, kind);
		}
	}
	json_decref(taps);
}

void metrics_show(struct api_ctx *c)
{
	struct metrics_buf b = {0};
	struct store_capacity cap;
	struct error err = {0};
	json_t *list = NULL, *usage = NULL, *t;
	int64_t vcpus = 0, ram = 0;
	size_t i;
	int ret;

	if (!api_need_operator(c))
		return;
	ret = STORE(c->s, instance_list, 0, &list, &err);
	if (!ret)
		ret = STORE(c->s, usage, &usage, &err);
	if (ret) {
		json_decref(list);
		return api_fail(c, ret, &err, NULL);
	}
	daemon_capacity(c->d, &cap);
	json_array_foreach(usage, i, t)
	{
		vcpus += json_integer_value(json_object_get(t, "vcpus"));
		ram += json_integer_value(json_object_get(t, "ram_mib"));
	}
	metrics_states(&b, list);
	mb_add(&b,
	       "# TYPE bunshind_capacity_vcpus gauge\nbunshind_capacity_vcpus %lld\n"
	       "# TYPE bunshind_capacity_ram_mib gauge\nbunshind_capacity_ram_mib %lld\n"
	       "# TYPE bunshind_allocated_vcpus gauge\nbunshind_allocated_vcpus %lld\n"
	       "# TYPE bunshind_allocated_ram_mib gauge\nbunshind_allocated_ram_mib %lld\n",
	       (long long)cap.vcpus, (long long)cap.ram_mib, (long long)vcpus, (long long)ram);
	metrics_tenants(&b, usage);
	metrics_latency(&b);
	metrics_firewall(&b);
	metrics_instances(&b, c->d, list);
	json_decref(list);
	json_decref(usage);
	if (b.oom) {
		free(b.s);
		return api_err(c, 500, "internal", NULL, "out of memory");
	}
	c->resp->status = 200;
	c->resp->text = b.s;
}
