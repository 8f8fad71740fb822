// SPDX-License-Identifier: MIT
/*
 * Instances that really boot: the test guest (test=serial-echo, which
 * runs until stopped and ignores the power button, so stops go the
 * forced way after --stop-timeout 1) in bunshin-vmm, supervised by
 * bunshind. Then what must survive: a VMM killed, bunshind killed with
 * SIGKILL (also in the middle of creates) or stopped with SIGTERM.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dharness.h"

static struct dh h;

static void setup(void)
{
	dh_need_kvm();
	dh_start(&h, NULL);
}

static void teardown(void)
{
	dh_cleanup(&h);
}

TestSuite(vm, .init = setup, .fini = teardown, .timeout = 300);

static void create_running(const char *name)
{
	char body[256];
	json_t *out;

	snprintf(body, sizeof(body),
		 "{\"name\":\"%s\",\"flavor\":\"tiny\",\"image\":\"test-guest\"}", name);
	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/instances", body, &out), 201);
	/* starting until the VMM's API answers, then running */
	cr_assert_str_eq(json_string_value(json_object_get(out, "state")), "starting", "%s",
			 json_string_value(json_object_get(out, "error")));
	json_decref(out);
	cr_assert_str_eq(dh_wait_state(&h, h.admin, name, "running", 30000), "running");
}

static int action(const char *ref, const char *what)
{
	char path[128], body[64];

	snprintf(path, sizeof(path), "/v1/instances/%s/actions", ref);
	snprintf(body, sizeof(body), "{\"action\":\"%s\"}", what);
	return dh_req(&h, h.admin, "POST", path, body, NULL);
}

/* Waits until the console, read through the API, shows text. */
static bool console_has(const char *ref, const char *text, int ms)
{
	char path[128];

	snprintf(path, sizeof(path), "/v1/instances/%s/console", ref);
	for (int t = 0; t < ms; t += 100) {
		char *body = NULL;
		bool found = dh_text(&h, h.admin, path, &body) == 200 && strstr(body, text);

		free(body);
		if (found)
			return true;
		usleep(100000);
	}
	return false;
}

Test(vm, lifecycle)
{
	int64_t pid;
	json_t *out;
	char dir[256];

	create_running("web1");
	pid = dh_instance_pid(&h, h.admin, "web1");
	cr_assert(pid > 0 && dh_alive((pid_t)pid));
	cr_expect(console_has("web1", "name=serial-echo result=ready", 60000));
	cr_expect_eq(action("web1", "pause"), 200);
	cr_expect_str_eq(dh_wait_state(&h, h.admin, "web1", "paused", 0), "paused");
	cr_expect_eq(action("web1", "pause"), 409);
	cr_expect_eq(action("web1", "resume"), 200);
	cr_expect_str_eq(dh_wait_state(&h, h.admin, "web1", "running", 30000), "running");
	cr_expect_eq(action("web1", "stop"), 202);
	cr_expect_str_eq(dh_wait_state(&h, h.admin, "web1", "stopped", 20000), "stopped");
	cr_expect(!dh_alive((pid_t)pid));
	cr_expect_eq(action("web1", "stop"), 409);
	cr_expect_eq(action("web1", "start"), 200);
	cr_expect_str_eq(dh_wait_state(&h, h.admin, "web1", "running", 30000), "running");
	pid = dh_instance_pid(&h, h.admin, "web1");
	cr_expect(dh_alive((pid_t)pid));
	/* The console through the API is the guest's serial output. */
	cr_assert_eq(dh_req(&h, h.admin, "GET", "/v1/instances/web1", NULL, &out), 200);
	snprintf(dir, sizeof(dir), "%s/instances/%lld", h.dir,
		 (long long)json_integer_value(json_object_get(out, "id")));
	json_decref(out);
	cr_expect_eq(dh_req(&h, h.admin, "DELETE", "/v1/instances/web1", NULL, NULL), 204);
	cr_expect(!dh_alive((pid_t)pid));
	cr_expect_neq(access(dir, F_OK), 0);
	cr_expect_eq(dh_req(&h, h.admin, "GET", "/v1/instances/web1", NULL, NULL), 404);
}

Test(vm, killed_vmm_marks_error_with_reason)
{
	json_t *out;
	int64_t pid;

	create_running("web1");
	pid = dh_instance_pid(&h, h.admin, "web1");
	kill((pid_t)pid, SIGKILL);
	cr_assert_str_eq(dh_wait_state(&h, h.admin, "web1", "error", 5000), "error");
	cr_assert_eq(dh_req(&h, h.admin, "GET", "/v1/instances/web1", NULL, &out), 200);
	cr_expect(strstr(json_string_value(json_object_get(out, "error")), "signal 9"), "%s",
		  json_string_value(json_object_get(out, "error")));
	json_decref(out);
	/* From ERROR it can be started again. */
	cr_expect_eq(action("web1", "start"), 200);
	cr_expect_str_eq(dh_wait_state(&h, h.admin, "web1", "running", 30000), "running");
}

/* Waits (up to 15 s) until no instance is on its way between states. */
static void settle(void)
{
	for (int t = 0; t < 300; t++) {
		json_t *list, *inst;
		bool moving = false;
		size_t i;

		cr_assert_eq(dh_req(&h, h.admin, "GET", "/v1/instances", NULL, &list), 200);
		json_array_foreach(list, i, inst)
		{
			const char *st = json_string_value(json_object_get(inst, "state"));

			moving |= !strcmp(st, "stopping") || !strcmp(st, "starting");
		}
		json_decref(list);
		if (!moving)
			return;
		usleep(50000);
	}
	cr_assert_fail("instances still stopping or starting after 15 s");
}

/* Every instance directory belongs to an instance (a half-done delete is swept at start). */
static void expect_dirs_have_rows(json_t *list)
{
	char path[256];
	struct dirent *e;
	DIR *dir;

	snprintf(path, sizeof(path), "%s/instances", h.dir);
	dir = opendir(path);
	cr_assert_not_null(dir);
	while ((e = readdir(dir))) {
		long long id = atoll(e->d_name);
		bool known = false;
		json_t *inst;
		size_t i;

		if (id <= 0)
			continue;
		json_array_foreach(list, i, inst) known |=
			json_integer_value(json_object_get(inst, "id")) == id;
		cr_expect(known, "instances/%lld has no instance", id);
	}
	closedir(dir);
}

/*
 * Once settled, every live VMM of this state directory is a running
 * instance's, and the other way round.
 */
static void expect_consistent(void)
{
	pid_t live[64];
	int nlive, nrunning = 0;
	json_t *list, *inst;
	size_t i;

	settle();
	nlive = dh_vmm_pids(&h, live, 64);
	cr_assert_eq(dh_req(&h, h.admin, "GET", "/v1/instances", NULL, &list), 200);
	json_array_foreach(list, i, inst)
	{
		const char *st = json_string_value(json_object_get(inst, "state"));
		pid_t pid = (pid_t)json_integer_value(json_object_get(inst, "pid"));
		bool found = false;

		if (strcmp(st, "running") && strcmp(st, "paused")) {
			cr_expect(!pid || !dh_alive(pid), "%s instance with a live VMM", st);
			continue;
		}
		nrunning++;
		for (int k = 0; k < nlive; k++)
			found |= live[k] == pid;
		cr_expect(found, "instance %s: its VMM %d is not there",
			  json_string_value(json_object_get(inst, "name")), (int)pid);
	}
	cr_expect_eq(nlive, nrunning, "%d VMMs for %d running instances", nlive, nrunning);
	expect_dirs_have_rows(list);
	json_decref(list);
}

Test(vm, kill9_daemon_readopts_running_vms)
{
	int64_t p1, p2;

	create_running("a");
	create_running("b");
	cr_assert(console_has("b", "result=ready", 60000));
	cr_expect_eq(action("b", "pause"), 200);
	p1 = dh_instance_pid(&h, h.admin, "a");
	p2 = dh_instance_pid(&h, h.admin, "b");
	dh_kill9(&h);
	cr_expect(dh_alive((pid_t)p1) && dh_alive((pid_t)p2), "a VMM died with bunshind");
	dh_restart(&h, NULL);
	cr_expect_str_eq(dh_wait_state(&h, h.admin, "a", "running", 30000), "running");
	cr_expect_str_eq(dh_wait_state(&h, h.admin, "b", "paused", 0), "paused");
	cr_expect_eq(dh_instance_pid(&h, h.admin, "a"), p1);
	cr_expect_eq(dh_instance_pid(&h, h.admin, "b"), p2);
	expect_consistent();
	/* Adopted VMMs are still watched: a death is seen, and stops still work. */
	kill((pid_t)p1, SIGKILL);
	cr_expect_str_eq(dh_wait_state(&h, h.admin, "a", "error", 5000), "error");
	cr_expect_eq(action("b", "stop"), 202);
	cr_expect_str_eq(dh_wait_state(&h, h.admin, "b", "stopped", 20000), "stopped");
	expect_consistent();
}

Test(vm, vmm_dead_while_daemon_down_is_error)
{
	json_t *out;
	int64_t pid;

	create_running("a");
	pid = dh_instance_pid(&h, h.admin, "a");
	dh_kill9(&h);
	kill((pid_t)pid, SIGKILL);
	usleep(200000);
	dh_restart(&h, NULL);
	cr_assert_eq(dh_req(&h, h.admin, "GET", "/v1/instances/a", NULL, &out), 200);
	cr_expect_str_eq(json_string_value(json_object_get(out, "state")), "error");
	cr_expect(strstr(json_string_value(json_object_get(out, "error")), "is gone"));
	json_decref(out);
}

static volatile bool looping;

static void *create_delete_loop(void *arg)
{
	(void)arg;
	for (int i = 0; looping; i++) {
		char body[256], path[64];

		snprintf(body, sizeof(body),
			 "{\"name\":\"loop%d\",\"flavor\":\"tiny\",\"image\":\"test-guest\"}", i);
		if (dh_req(&h, h.admin, "POST", "/v1/instances", body, NULL) < 0)
			break;
		if (i % 2) {
			snprintf(path, sizeof(path), "/v1/instances/loop%d", i - 1);
			if (dh_req(&h, h.admin, "DELETE", path, NULL, NULL) < 0)
				break;
		}
	}
	return NULL;
}

/*
 * SIGKILL in the middle of create and delete requests, three times: after
 * each restart, every VMM there is belongs to a running instance and every
 * running instance has its VMM: none lost, none duplicated.
 */
Test(vm, kill9_during_create_delete_loop)
{
	for (int round = 0; round < 3; round++) {
		pthread_t t;

		looping = true;
		cr_assert_eq(pthread_create(&t, NULL, create_delete_loop, NULL), 0);
		usleep(300000 + 250000 * round);
		dh_kill9(&h);
		looping = false;
		pthread_join(t, NULL);
		dh_restart(&h, NULL);
		expect_consistent();
		/* Clean the slate so the quota of 10 does not stop the next round. */
		{
			json_t *list, *inst;
			size_t i;
			char path[64];

			cr_assert_eq(dh_req(&h, h.admin, "GET", "/v1/instances", NULL, &list), 200);
			json_array_foreach(list, i, inst)
			{
				snprintf(
					path, sizeof(path), "/v1/instances/%lld",
					(long long)json_integer_value(json_object_get(inst, "id")));
				cr_expect_eq(dh_req(&h, h.admin, "DELETE", path, NULL, NULL), 204);
			}
			json_decref(list);
		}
		expect_consistent();
	}
}

Test(vm, sigterm_leaves_vms_running)
{
	int64_t pid;

	create_running("a");
	pid = dh_instance_pid(&h, h.admin, "a");
	cr_expect_eq(dh_term(&h), 0);
	cr_expect(dh_alive((pid_t)pid));
	dh_restart(&h, NULL);
	cr_expect_eq(dh_instance_pid(&h, h.admin, "a"), pid);
	cr_expect_str_eq(dh_wait_state(&h, h.admin, "a", "running", 30000), "running");
}

Test(vm, stop_vms_on_exit)
{
	const char *extra[] = {"--stop-vms-on-exit", NULL};
	int64_t pid;

	create_running("a");
	pid = dh_instance_pid(&h, h.admin, "a");
	cr_expect_eq(dh_term(&h), 0);
	dh_restart(&h, extra);
	cr_expect_eq(dh_term(&h), 0);
	cr_expect(!dh_alive((pid_t)pid));
	dh_restart(&h, NULL);
	cr_expect_str_eq(dh_wait_state(&h, h.admin, "a", "stopped", 0), "stopped");
}

/* on-failure: a killed VMM comes back (3 times in a row at most), and the audit log says why. */
Test(vm, restart_policy_on_failure)
{
	json_t *out;
	int64_t pid, prev;

	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/instances",
			    "{\"name\":\"a\",\"flavor\":\"tiny\",\"image\":\"test-guest\","
			    "\"restart_policy\":\"on-failure\"}",
			    NULL),
		     201);
	cr_expect_eq(dh_req(&h, h.admin, "POST", "/v1/instances",
			    "{\"name\":\"b\",\"flavor\":\"tiny\",\"image\":\"test-guest\","
			    "\"restart_policy\":\"sometimes\"}",
			    NULL),
		     400);
	pid = dh_instance_pid(&h, h.admin, "a");
	for (int i = 1; i <= 3; i++) {
		prev = pid;
		kill((pid_t)prev, SIGKILL);
		for (int t = 0; t < 100 && (pid == prev || !pid); t++) {
			usleep(50000);
			pid = dh_instance_pid(&h, h.admin, "a");
		}
		cr_assert(pid && pid != prev, "restart %d did not happen", i);
		cr_expect(dh_alive((pid_t)pid));
		cr_assert_eq(dh_req(&h, h.admin, "GET", "/v1/instances/a", NULL, &out), 200);
		cr_expect_eq(json_integer_value(json_object_get(out, "restarts")), i);
		json_decref(out);
		cr_expect_str_eq(dh_wait_state(&h, h.admin, "a", "running", 30000), "running");
	}
	kill((pid_t)pid, SIGKILL);
	cr_expect_str_eq(dh_wait_state(&h, h.admin, "a", "error", 5000), "error");
	cr_assert_eq(dh_req(&h, h.admin, "GET", "/v1/instances/a/events", NULL, &out), 200);
	cr_expect_eq(json_array_size(out), 4); /* the create, then 3 restarts */
	cr_expect_str_eq(json_string_value(json_object_get(json_array_get(out, 0), "who")),
			 "bunshind");
	cr_expect(strstr(json_string_value(json_object_get(json_array_get(out, 0), "result")),
			 "signal 9"));
	json_decref(out);
	/* A start by hand resets the count. */
	cr_expect_eq(action("a", "start"), 200);
	cr_assert_eq(dh_req(&h, h.admin, "GET", "/v1/instances/a", NULL, &out), 200);
	cr_expect_eq(json_integer_value(json_object_get(out, "restarts")), 0);
	json_decref(out);
}

/* SIGTERM while an instance is still starting: bunshind exits cleanly, the next one adopts it. */
Test(vm, sigterm_while_starting)
{
	json_t *out;

	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/instances",
			    "{\"name\":\"a\",\"flavor\":\"tiny\",\"image\":\"test-guest\"}", &out),
		     201);
	json_decref(out);
	cr_expect_eq(dh_term(&h), 0);
	dh_restart(&h, NULL);
	cr_expect_str_eq(dh_wait_state(&h, h.admin, "a", "running", 30000), "running");
	expect_consistent();
}

/* The value of metric{instance="name",...}, or -1 when /metrics has no such line. */
static double metric_of(const char *metric, const char *name)
{
	char *text = NULL, want[160];
	const char *line;
	double v = -1;

	cr_assert_eq(dh_text(&h, h.admin, "/metrics", &text), 200);
	snprintf(want, sizeof(want), "\n%s{instance=\"%s\",", metric, name);
	line = strstr(text, want);
	if (line && (line = strchr(line + 1, ' ')))
		v = strtod(line + 1, NULL);
	free(text);
	return v;
}

/*
 * Live instances' CPU (their VMM), memory (their cgroup) and network bytes
 * (their tap) in /metrics: a guest that takes a DHCP lease, then serves
 * for a while; nothing for a stopped instance.
 */
Test(vm, metrics_per_instance)
{
	static const char *const metrics[] = {"bunshind_instance_cpu_seconds_total",
					      "bunshind_instance_memory_bytes",
					      "bunshind_instance_network_receive_bytes_total",
					      "bunshind_instance_network_transmit_bytes_total"};
	char body[256], *log;
	json_t *out = NULL;

	dh_need_dnsmasq();
	snprintf(body, sizeof(body),
		 "{\"name\":\"knet\",\"kind\":\"kernel\",\"path\":\"%s\","
		 "\"cmdline\":\"test=netprobe serve_udp=9000 serve_ms=60000\"}",
		 getenv("BUNSHIN_GUEST_ELF"));
	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/images", body, &out), 201, "%s",
		     dh_jstr(out, "error", "message"));
	json_decref(out);
	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/instances",
			    "{\"name\":\"m1\",\"flavor\":\"tiny\",\"image\":\"knet\"}", NULL),
		     201);
	log = dh_console_until(&h, "m1", "BUNSHIN-READY netprobe", 30000);
	cr_assert(strstr(log, "BUNSHIN-READY netprobe"), "no lease:\n%s", log);
	free(log);
	cr_expect_gt(metric_of(metrics[0], "m1"), 0);
	cr_expect_gt(metric_of(metrics[1], "m1"), 1 << 20);
	/* the DHCP exchange: DISCOVER and REQUEST out, OFFER and ACK in */
	cr_expect_gt(metric_of(metrics[2], "m1"), 2 * 300);
	cr_expect_gt(metric_of(metrics[3], "m1"), 2 * 300);
	cr_assert_eq(action("m1", "stop"), 202);
	cr_assert_str_eq(dh_wait_state(&h, h.admin, "m1", "stopped", 30000), "stopped");
	for (size_t k = 0; k < 4; k++)
		cr_expect_eq(metric_of(metrics[k], "m1"), -1, "%s for a stopped instance",
			     metrics[k]);
}
