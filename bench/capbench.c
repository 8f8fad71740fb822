// SPDX-License-Identifier: MIT
/*
 * capbench: how many test-guest instances one bunshind holds, for
 * bench/capacity.sh.
 *
 *   capbench ENDPOINT TOKEN FLAVOR CAP MIN_FREE_MIB DAEMON_PID
 *
 * Creates instances of FLAVOR (test-guest, test=serial-echo: idle, its
 * vCPU halted) one after the other, each from the POST to the state
 * "running", until the first failure (a refused create, an instance in
 * ERROR, 60 s without running), CAP instances, or the host's MemAvailable
 * under MIN_FREE_MIB, whichever comes first. Then, with all of them
 * running: the daemon's RSS and PSS, and each instance's PSS and RSS (its
 * VMM process tree: a jail's launcher and the VMM in it). Then deletes
 * them all. Prints "key value" lines; "boot_ms N MS" per instance.
 */
#include <dirent.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../src/common/httpc.h"

#define CB_BOOT_TIMEOUT_MS 60000
#define CB_POLL_MS	   10
#define CB_TREE_MAX	   64

static const char *endpoint, *token;

/* 10.200.0.0/20: 4093 instance addresses. */
#define CB_NETWORK	"capacity"
#define CB_NETWORK_CIDR "10.200.0.0/20"

static double cb_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One request; its status (-1: no answer), *out the parsed body (may be NULL). */
static int cb_req(const char *method, const char *path, const char *body, json_t **out)
{
	struct httpc_request req = {.method = method, .path = path, .token = token, .body = body};
	struct httpc_response resp;
	struct error err = {0};
	int st;

	if (out)
		*out = NULL;
	if (httpc_do(endpoint, &req, &resp, &err)) {
		fprintf(stderr, "capbench: %s\n", err.msg);
		return -1;
	}
	st = resp.status;
	if (out && resp.body)
		*out = json_loads(resp.body, 0, NULL);
	httpc_response_free(&resp);
	return st;
}

static const char *cb_error(const json_t *o)
{
	return json_string_value(json_object_get(json_object_get(o, "error"), "message"))
		       ?: "(no message)";
}

static long cb_meminfo_mib(const char *key)
{
	char line[256];
	long kib = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	while (f && fgets(line, sizeof(line), f)) {
		if (!strncmp(line, key, strlen(key)) && line[strlen(key)] == ':')
			kib = strtol(line + strlen(key) + 1, NULL, 10);
	}
	if (f)
		fclose(f);
	return kib < 0 ? -1 : kib / 1024;
}

/* A field ("Pss", "Rss") of /proc/PID/smaps_rollup, in KiB; 0 when unreadable. */
static long cb_rollup_kib(int pid, const char *key)
{
	char path[64], line[256];
	long kib = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", pid);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f)) {
		if (!strncmp(line, key, strlen(key)) && line[strlen(key)] == ':')
			kib = strtol(line + strlen(key) + 1, NULL, 10);
	}
	if (f)
		fclose(f);
	return kib;
}

/* pid and its descendants (through /proc/PID/task/TID/children), at most max. */
static int cb_tree(int pid, int *pids, int n, int max)
{
	char path[96];
	struct dirent *e;
	DIR *d;

	if (n >= max)
		return n;
	pids[n++] = pid;
	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	while (d && (e = readdir(d))) {
		char cpath[160];
		FILE *f;
		int child;

		if (e->d_name[0] == '.')
			continue;
		snprintf(cpath, sizeof(cpath), "/proc/%d/task/%s/children", pid, e->d_name);
		f = fopen(cpath, "r");
		while (f && fscanf(f, "%d", &child) == 1)
			n = cb_tree(child, pids, n, max);
		if (f)
			fclose(f);
	}
	if (d)
		closedir(d);
	return n;
}

static void cb_tree_mem(int pid, long *pss, long *rss)
{
	int pids[CB_TREE_MAX];
	int n = cb_tree(pid, pids, 0, CB_TREE_MAX);

	*pss = *rss = 0;
	for (int i = 0; i < n; i++) {
		*pss += cb_rollup_kib(pids[i], "Pss");
		*rss += cb_rollup_kib(pids[i], "Rss");
	}
}

static int cb_cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

/* The q-quantile (0..1) of n sorted values, nearest rank. */
static long cb_quantile(const long *v, int n, double q)
{
	int i = (int)(q * n + 0.999999) - 1;

	return n ? v[i < 0 ? 0 : i >= n ? n - 1 : i] : 0;
}

/* Creates cap-I and waits for it to run: its create-to-running ms, or -1 (why in reason). */
static long cb_boot(int i, const char *flavor, char *reason, size_t size)
{
	char body[256], path[64];
	double t0 = cb_now();
	json_t *out;
	int st;

	snprintf(body, sizeof(body),
		 "{\"name\":\"cap-%d\",\"flavor\":\"%s\",\"image\":\"test-guest\","
		 "\"network\":\"" CB_NETWORK "\"}",
		 i, flavor);
	st = cb_req("POST", "/v1/instances", body, &out);
	if (st != 201) {
		snprintf(reason, size, "create %d: HTTP %d: %s", i, st, cb_error(out));
		json_decref(out);
		return -1;
	}
	json_decref(out);
	snprintf(path, sizeof(path), "/v1/instances/cap-%d", i);
	while ((cb_now() - t0) * 1000 < CB_BOOT_TIMEOUT_MS) {
		const char *state;

		st = cb_req("GET", path, NULL, &out);
		state = json_string_value(json_object_get(out, "state"));
		if (st == 200 && state && !strcmp(state, "running")) {
			json_decref(out);
			return (long)((cb_now() - t0) * 1000 + 0.5);
		}
		if (st != 200 || (state && !strcmp(state, "error"))) {
			snprintf(reason, size, "instance %d: %s: %s", i, state ? state : "gone",
				 json_string_value(json_object_get(out, "error")) ?: cb_error(out));
			json_decref(out);
			return -1;
		}
		json_decref(out);
		usleep(CB_POLL_MS * 1000);
	}
	snprintf(reason, size, "instance %d: not running after %d s", i, CB_BOOT_TIMEOUT_MS / 1000);
	return -1;
}

/* Every cap- instance's PSS and RSS (KiB), sorted; how many. */
static int cb_instances_mem(long *pss, long *rss, int max)
{
	json_t *list, *inst;
	size_t i;
	int n = 0;

	if (cb_req("GET", "/v1/instances", NULL, &list) != 200)
		return 0;
	json_array_foreach(list, i, inst)
	{
		int pid = (int)json_integer_value(json_object_get(inst, "pid"));

		if (pid > 0 && n < max)
			cb_tree_mem(pid, &pss[n], &rss[n]), n++;
	}
	json_decref(list);
	qsort(pss, (size_t)n, sizeof(*pss), cb_cmp_long);
	qsort(rss, (size_t)n, sizeof(*rss), cb_cmp_long);
	return n;
}

static void cb_report_memory(int daemon_pid, int running)
{
	long *pss = calloc((size_t)running + 1, sizeof(long));
	long *rss = calloc((size_t)running + 1, sizeof(long));
	int n = cb_instances_mem(pss, rss, running);

	printf("daemon_rss_kib %ld\n", cb_rollup_kib(daemon_pid, "Rss"));
	printf("daemon_pss_kib %ld\n", cb_rollup_kib(daemon_pid, "Pss"));
	printf("measured %d\n", n);
	printf("vmm_pss_median_kib %ld\nvmm_pss_p99_kib %ld\n", cb_quantile(pss, n, 0.5),
	       cb_quantile(pss, n, 0.99));
	printf("vmm_rss_median_kib %ld\nvmm_rss_p99_kib %ld\n", cb_quantile(rss, n, 0.5),
	       cb_quantile(rss, n, 0.99));
	printf("mem_available_mib %ld\n", cb_meminfo_mib("MemAvailable"));
	free(pss);
	free(rss);
}

int main(int argc, char **argv)
{
	int cap, running = 0, daemon_pid;
	long min_free, ms;
	char reason[600] = "";
	double t0;

	if (argc != 7) {
		fprintf(stderr,
			"usage: capbench ENDPOINT TOKEN FLAVOR CAP MIN_FREE_MIB DAEMON_PID\n");
		return 2;
	}
	endpoint = argv[1];
	token = argv[2];
	cap = atoi(argv[4]);
	min_free = atol(argv[5]);
	daemon_pid = atoi(argv[6]);
	/*
	 * One network big enough for every instance: a tenant's default one is
	 * a /24, and its 253 addresses are not what this measures.
	 */
	if (cb_req("POST", "/v1/networks",
		   "{\"name\":\"" CB_NETWORK "\",\"cidr\":\"" CB_NETWORK_CIDR "\"}", NULL) != 201) {
		fprintf(stderr, "capbench: cannot create the network " CB_NETWORK_CIDR "\n");
		return 1;
	}
	printf("mem_available_start_mib %ld\n", cb_meminfo_mib("MemAvailable"));
	for (int i = 1; i <= cap; i++) {
		long avail = cb_meminfo_mib("MemAvailable");

		if (avail >= 0 && avail < min_free) {
			snprintf(reason, sizeof(reason),
				 "stopped: host MemAvailable %ld MiB < %ld MiB", avail, min_free);
			break;
		}
		ms = cb_boot(i, argv[3], reason, sizeof(reason));
		if (ms < 0)
			break;
		running++;
		printf("boot_ms %d %ld\n", i, ms);
		fflush(stdout);
	}
	printf("running %d\n", running);
	printf("first_failure %s\n", reason[0] ? reason : "none: the cap was reached");
	cb_report_memory(daemon_pid, running);
	t0 = cb_now();
	for (int i = 1; i <= running + 1; i++) {
		char path[64];

		snprintf(path, sizeof(path), "/v1/instances/cap-%d", i);
		cb_req("DELETE", path, NULL, NULL);
	}
	printf("delete_all_s %.1f\n", cb_now() - t0);
	return 0;
}
