// SPDX-License-Identifier: MIT
/*
 * Reboot and resize of instances that really boot (the test guest,
 * test=serial-echo, in bunshin-vmm under bunshind), through the API and
 * the CLI: a soft reboot keeps its VMM, a hard one gets a new one, a
 * resize within the quota changes the flavor (a running instance gets a
 * new VMM of the new size), one beyond the quota or the host's capacity
 * changes nothing.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../src/common/httpc.h"
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

TestSuite(lifecycle, .init = setup, .fini = teardown, .timeout = 300);

static const char *field(const char *ref, const char *name);

static void create(const char *token, const char *name, const char *flavor, bool start)
{
	char body[256];
	json_t *out = NULL;
	int st;

	snprintf(body, sizeof(body),
		 "{\"name\":\"%s\",\"flavor\":\"%s\",\"image\":\"test-guest\",\"start\":%s}", name,
		 flavor, start ? "true" : "false");
	st = dh_req(&h, token, "POST", "/v1/instances", body, &out);
	cr_assert_eq(st, 201, "%s", out ? json_dumps(out, 0) : "");
	json_decref(out);
	if (start)
		cr_assert_str_eq(dh_wait_state(&h, token, name, "running", 30000), "running", "%s",
				 field(name, "error"));
}

static int post(const char *token, const char *ref, const char *verb, const char *body,
		json_t **out)
{
	char path[128];

	snprintf(path, sizeof(path), "/v1/instances/%s/%s", ref, verb);
	return dh_req(&h, token, "POST", path, body, out);
}

/* A field of the instance as the API shows it now (static buffer). */
static const char *field(const char *ref, const char *name)
{
	static char v[512];
	char path[128];
	json_t *out;

	snprintf(path, sizeof(path), "/v1/instances/%s", ref);
	cr_assert_eq(dh_req(&h, h.admin, "GET", path, NULL, &out), 200);
	snprintf(v, sizeof(v), "%s", json_string_value(json_object_get(out, name)) ?: "");
	json_decref(out);
	return v;
}

/* Whether the process's command line has this argument. */
static bool cmdline_has(pid_t pid, const char *arg)
{
	char path[64], buf[8192];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(buf + i) + 1) {
		buf[n] = 0;
		if (!strcmp(buf + i, arg))
			return true;
	}
	return false;
}

/* The instance's events hold one whose action and result start so. */
static bool has_event(const char *ref, const char *action, const char *result)
{
	char path[128];
	json_t *out, *ev;
	bool found = false;
	size_t i;

	snprintf(path, sizeof(path), "/v1/instances/%s/events", ref);
	cr_assert_eq(dh_req(&h, h.admin, "GET", path, NULL, &out), 200);
	json_array_foreach(out, i, ev)
	{
		const char *a = json_string_value(json_object_get(ev, "action"));
		const char *r = json_string_value(json_object_get(ev, "result"));

		if (a && r && strstr(a, action) && !strncmp(r, result, strlen(result)))
			found = true;
	}
	json_decref(out);
	return found;
}

Test(lifecycle, reboot_soft_keeps_the_vmm)
{
	json_t *out;
	int64_t pid;

	create(h.admin, "web1", "tiny", true);
	pid = dh_instance_pid(&h, h.admin, "web1");
	/* ctrl_alt_del reached the VMM (it answered 2xx); the serial-echo guest ignores keys. */
	cr_assert_eq(post(h.admin, "web1", "reboot", NULL, &out), 202);
	cr_expect_str_eq(json_string_value(json_object_get(out, "state")), "running");
	json_decref(out);
	cr_expect_eq(post(h.admin, "web1", "reboot", "{\"hard\":false}", NULL), 202);
	cr_expect_eq(dh_instance_pid(&h, h.admin, "web1"), pid);
	cr_expect(dh_alive((pid_t)pid));
	cr_expect(has_event("web1", "/reboot", "202"));
	/* bad bodies, and not running */
	cr_expect_eq(post(h.admin, "web1", "reboot", "{\"hard\":1}", NULL), 400);
	cr_expect_eq(post(h.admin, "web1", "reboot", "{\"force\":true}", NULL), 400);
	cr_expect_eq(post(h.admin, "web1", "reboot", "[]", NULL), 400);
	cr_expect_eq(post(h.admin, "nosuch", "reboot", NULL, NULL), 404);
	cr_expect_eq(post(h.admin, "web1", "actions", "{\"action\":\"stop\"}", NULL), 202);
	cr_assert_str_eq(dh_wait_state(&h, h.admin, "web1", "stopped", 20000), "stopped");
	cr_expect_eq(post(h.admin, "web1", "reboot", NULL, &out), 409);
	cr_expect_str_eq(dh_code(out), "conflict");
	json_decref(out);
	cr_expect_eq(post(h.admin, "web1", "reboot", "{\"hard\":true}", NULL), 409);
}

Test(lifecycle, reboot_hard_gets_a_new_vmm)
{
	int64_t pid, npid;
	json_t *out;

	create(h.admin, "web1", "tiny", true);
	pid = dh_instance_pid(&h, h.admin, "web1");
	cr_assert_eq(post(h.admin, "web1", "reboot", "{\"hard\":true}", &out), 200);
	cr_expect(json_integer_value(json_object_get(out, "pid")) > 0);
	json_decref(out);
	cr_assert_str_eq(dh_wait_state(&h, h.admin, "web1", "running", 30000), "running");
	npid = dh_instance_pid(&h, h.admin, "web1");
	cr_expect(npid > 0 && npid != pid, "pid %lld then %lld", (long long)pid, (long long)npid);
	cr_expect(!dh_alive((pid_t)pid));
	cr_expect(dh_alive((pid_t)npid));
	cr_expect(has_event("web1", "/reboot", "200"));
	/* paused: a hard reboot still works (a soft one cannot reach a paused guest) */
	cr_assert_eq(post(h.admin, "web1", "actions", "{\"action\":\"pause\"}", NULL), 200);
	cr_expect_eq(post(h.admin, "web1", "reboot", NULL, NULL), 409);
	cr_expect_eq(post(h.admin, "web1", "reboot", "{\"hard\":true}", NULL), 200);
	cr_expect_str_eq(dh_wait_state(&h, h.admin, "web1", "running", 30000), "running");
	cr_expect_neq(dh_instance_pid(&h, h.admin, "web1"), npid);
}

Test(lifecycle, resize_within_and_beyond_quota)
{
	char member[128], viewer[128];
	json_t *out;
	int64_t pid, npid;

	dh_tenant_user(&h, "team-a", "alice", "member", member, sizeof(member));
	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/users",
			    "{\"name\":\"vic\",\"tenant\":\"team-a\",\"role\":\"viewer\"}", NULL),
		     201);
	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/tokens", "{\"user\":\"vic\"}", &out), 201);
	snprintf(viewer, sizeof(viewer), "%s", json_string_value(json_object_get(out, "token")));
	json_decref(out);
	cr_assert_eq(dh_req(&h, h.admin, "PUT", "/v1/tenants/team-a/quota",
			    "{\"vcpus\":2,\"ram_mib\":600}", NULL),
		     200);
	create(member, "r1", "tiny", false);
	create(member, "r2", "tiny", true);

	/* stopped: only the flavor changes */
	cr_assert_eq(post(member, "r1", "resize", "{\"flavor\":\"small\"}", &out), 200);
	cr_expect_str_eq(json_string_value(json_object_get(out, "flavor")), "small");
	cr_expect_str_eq(json_string_value(json_object_get(out, "state")), "stopped");
	json_decref(out);
	/* beyond the quota (ram 512 + 2048 > 600, vcpus 1 + 2 > 2): nothing changes */
	cr_expect_eq(post(member, "r1", "resize", "{\"flavor\":\"medium\"}", &out), 409);
	cr_expect_str_eq(dh_code(out), "quota_exceeded");
	json_decref(out);
	cr_expect_str_eq(field("r1", "flavor"), "small");
	/* running, beyond the quota: not stopped, same VMM */
	pid = dh_instance_pid(&h, member, "r2");
	cr_expect_eq(post(member, "r2", "resize", "{\"flavor\":\"small\"}", NULL), 409);
	cr_expect_str_eq(field("r2", "flavor"), "tiny");
	cr_expect_str_eq(field("r2", "state"), "running");
	cr_expect_eq(dh_instance_pid(&h, member, "r2"), pid);
	/* shrinking always fits; then there is room */
	cr_expect_eq(post(member, "r1", "resize", "{\"flavor\":\"tiny\"}", NULL), 200);
	cr_assert_eq(post(member, "r2", "resize", "{\"flavor\":\"small\"}", &out), 202);
	cr_expect_str_eq(json_string_value(json_object_get(out, "state")), "stopping");
	json_decref(out);
	/* stopped, then started again: running at a new pid */
	cr_assert_str_eq(dh_wait_state(&h, member, "r2", "running", 30000), "running");
	npid = dh_instance_pid(&h, member, "r2");
	cr_expect(npid > 0 && npid != pid);
	cr_expect(!dh_alive((pid_t)pid));
	/* the new VMM has the new flavor's memory */
	cr_expect(cmdline_has((pid_t)npid, "512M"));
	cr_expect_str_eq(field("r2", "flavor"), "small");
	cr_expect(has_event("r2", "resize", "restarted with flavor small"));

	/* bad requests: none changes anything */
	cr_expect_eq(post(viewer, "r1", "resize", "{\"flavor\":\"small\"}", NULL), 403);
	cr_expect_eq(post(member, "r1", "resize", "{\"flavor\":\"tiny\"}", NULL), 409);
	cr_expect_eq(post(member, "r1", "resize", "{\"flavor\":\"nosuch\"}", NULL), 404);
	cr_expect_eq(post(member, "r1", "resize", "{}", NULL), 400);
	cr_expect_eq(post(member, "r1", "resize", NULL, NULL), 400);
	cr_expect_eq(post(member, "r1", "resize", "{\"flavor\":7}", NULL), 400);
	cr_expect_eq(post(member, "r1", "resize", "{\"flavor\":\"small\",\"x\":1}", NULL), 400);
	cr_expect_eq(post(member, "nosuch", "resize", "{\"flavor\":\"small\"}", NULL), 404);
	cr_expect_str_eq(field("r1", "flavor"), "tiny");
}

Test(lifecycle, resize_beyond_host_capacity)
{
	json_t *out;

	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/flavors",
			    "{\"name\":\"huge\",\"vcpus\":255,\"ram_mib\":64,\"disk_gib\":0}",
			    NULL),
		     201);
	cr_assert_eq(dh_req(&h, h.admin, "PUT", "/v1/tenants/admin/quota",
			    "{\"vcpus\":1000000,\"ram_mib\":1000000}", NULL),
		     200);
	create(h.admin, "big", "tiny", false);
	cr_expect_eq(post(h.admin, "big", "resize", "{\"flavor\":\"huge\"}", &out), 409);
	cr_expect_str_eq(dh_code(out), "capacity_exceeded");
	json_decref(out);
	cr_expect_str_eq(field("big", "flavor"), "tiny");
}

/* Runs bunshin (stdout and stderr to /dev/null) as admin; its exit status. */
static int cli(const char *first, ...)
{
	const char *argv[16] = {getenv("BUNSHIN_CLI"), first};
	int n = 2, st = 0;
	va_list ap;
	pid_t pid;

	va_start(ap, first);
	while (n < 15 && (argv[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
	pid = fork();
	if (!pid) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, 1);
		dup2(null, 2);
		setenv("BUNSHIN_ENDPOINT", h.sock, 1);
		setenv("BUNSHIN_TOKEN", h.admin, 1);
		setenv("HOME", "/nonexistent", 1);
		execv(argv[0], (char **)argv);
		_exit(127);
	}
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(lifecycle, cli_commands_and_exit_codes)
{
	int64_t pid;

	create(h.admin, "web1", "tiny", true);
	pid = dh_instance_pid(&h, h.admin, "web1");
	cr_expect_eq(cli("server", "reboot", "web1", NULL), 0);
	cr_expect_eq(dh_instance_pid(&h, h.admin, "web1"), pid);
	cr_expect_eq(cli("server", "reboot", "web1", "--hard", "--wait", NULL), 0);
	cr_expect_str_eq(field("web1", "state"), "running");
	cr_expect_neq(dh_instance_pid(&h, h.admin, "web1"), pid);
	cr_expect_eq(cli("server", "resize", "web1", "small", "--wait", NULL), 0);
	cr_expect_str_eq(field("web1", "state"), "running");
	cr_expect_str_eq(field("web1", "flavor"), "small");
	cr_expect_eq(cli("server", "resize", "web1", "small", NULL), 1);
	cr_expect_eq(cli("server", "resize", "web1", "nosuch", NULL), 3);
	cr_expect_eq(cli("server", "resize", "nosuch", "tiny", NULL), 3);
	cr_expect_eq(cli("server", "resize", "web1", NULL), 2);
	cr_expect_eq(cli("server", "reboot", NULL), 2);
	cr_expect_eq(cli("server", "reboot", "web1", "--timeout", "x", NULL), 2);
	cr_expect_eq(cli("server", "reboot", "--help", NULL), 0);
	cr_expect_eq(cli("server", "resize", "--help", NULL), 0);
	cr_expect_eq(cli("server", "stop", "web1", "--wait", NULL), 0);
	cr_expect_eq(cli("server", "reboot", "web1", NULL), 1);
	cr_expect_eq(cli("server", "resize", "web1", "tiny", "--wait", NULL), 0);
	cr_expect_str_eq(field("web1", "flavor"), "tiny");
	cr_expect_str_eq(field("web1", "state"), "stopped");
}

/* One chunk of the followed console from offset (JSON; the caller frees it). */
static json_t *console_chunk(const char *ref, long long offset)
{
	char path[160];
	json_t *out = NULL;

	snprintf(path, sizeof(path), "/v1/instances/%s/console?follow=1&offset=%lld", ref, offset);
	cr_assert_eq(dh_req(&h, h.admin, "GET", path, NULL, &out), 200);
	cr_assert_not_null(out);
	return out;
}

static long long jint(const json_t *o, const char *k)
{
	return (long long)json_integer_value(json_object_get(o, k));
}

Test(lifecycle, console_follow_api)
{
	long long next = 0;
	bool ready = false;
	json_t *out;

	create(h.admin, "web1", "tiny", true);
	/* the guest's ready line arrives in chunks, each from where the last ended */
	for (int i = 0; i < 60 && !ready; i++) {
		out = console_chunk("web1", next);
		cr_assert_eq(jint(out, "offset"), next);
		cr_assert_eq(jint(out, "next"), next + (long long)strlen(json_string_value(
							       json_object_get(out, "text"))));
		ready = strstr(json_string_value(json_object_get(out, "text")),
			       "name=serial-echo result=ready");
		next = jint(out, "next");
		json_decref(out);
	}
	cr_assert(ready);
	/* past the end: a fresh log, from its start */
	out = console_chunk("web1", next + 1000000);
	cr_expect(json_is_true(json_object_get(out, "reset")));
	cr_expect_eq(jint(out, "offset"), 0);
	json_decref(out);
	cr_expect_eq(dh_req(&h, h.admin, "GET", "/v1/instances/web1/console?follow=1&offset=x",
			    NULL, NULL),
		     400);
	cr_expect_eq(dh_req(&h, h.admin, "GET", "/v1/instances/web1/console?follow=1&offset=-1",
			    NULL, NULL),
		     400);
	cr_expect_eq(
		dh_req(&h, h.admin, "GET", "/v1/instances/nosuch/console?follow=1", NULL, NULL),
		404);
}

Test(lifecycle, console_follow_cli)
{
	char buf[65536] = "";
	size_t len = 0;
	int fds[2], st = 0;
	pid_t done = 0;
	ssize_t r;
	pid_t pid;

	create(h.admin, "web1", "tiny", true);
	cr_assert_eq(pipe(fds), 0);
	pid = fork();
	if (!pid) {
		int null = open("/dev/null", O_WRONLY);

		dup2(fds[1], 1);
		dup2(null, 2);
		close(fds[0]);
		setenv("BUNSHIN_ENDPOINT", h.sock, 1);
		setenv("BUNSHIN_TOKEN", h.admin, 1);
		setenv("HOME", "/nonexistent", 1);
		execl(getenv("BUNSHIN_CLI"), "bunshin", "server", "console", "web1", "--follow",
		      (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	fcntl(fds[0], F_SETFL, O_NONBLOCK);
	/* it keeps running, printing the guest's output as it comes */
	for (int t = 0; t < 300 && !strstr(buf, "name=serial-echo result=ready"); t++) {
		while ((r = read(fds[0], buf + len, sizeof(buf) - 1 - len)) > 0)
			len += (size_t)r;
		buf[len] = 0;
		usleep(100000);
	}
	cr_expect(strstr(buf, "name=serial-echo result=ready"), "%s", buf);
	cr_expect_eq(waitpid(pid, &st, WNOHANG), 0, "it ended by itself");
	/* deleted: it ends with 3 (not found) */
	cr_expect_eq(dh_req(&h, h.admin, "DELETE", "/v1/instances/web1", NULL, NULL), 204);
	for (int t = 0; t < 50 && !(done = waitpid(pid, &st, WNOHANG)); t++)
		usleep(100000);
	if (!done) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
	}
	cr_expect(done == pid && WIFEXITED(st) && WEXITSTATUS(st) == 3, "status %#x", st);
	close(fds[0]);
}

struct racer {
	const char *token, *ref;
	int status;
};

static void *race_resize(void *arg)
{
	struct racer *r = arg;

	r->status = post(r->token, r->ref, "resize", "{\"flavor\":\"small\"}", NULL);
	return NULL;
}

/* Resizes at once, room for one of them: one fits, the others change nothing. */
Test(lifecycle, concurrent_resizes_never_exceed_the_quota)
{
	static const char *const names[] = {"c1", "c2", "c3", "c4"};
	struct racer r[4];
	pthread_t t[4];
	char member[128], path[64];
	int ok = 0, refused = 0, small = 0;
	json_t *out;

	dh_tenant_user(&h, "team-b", "bob", "member", member, sizeof(member));
	/* four tiny (4 x 64) and room for one of them to grow to 512 */
	cr_assert_eq(dh_req(&h, h.admin, "PUT", "/v1/tenants/team-b/quota",
			    "{\"vcpus\":8,\"ram_mib\":800}", NULL),
		     200);
	for (int i = 0; i < 4; i++) {
		create(member, names[i], "tiny", false);
		r[i] = (struct racer){member, names[i], 0};
	}
	for (int i = 0; i < 4; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, race_resize, &r[i]), 0);
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		ok += r[i].status == 200;
		refused += r[i].status == 409;
	}
	cr_expect_eq(ok, 1);
	cr_expect_eq(refused, 3);
	for (int i = 0; i < 4; i++)
		small += !strcmp(field(names[i], "flavor"), "small");
	cr_expect_eq(small, 1);
	snprintf(path, sizeof(path), "/v1/quota");
	cr_assert_eq(dh_req(&h, member, "GET", path, NULL, &out), 200);
	cr_expect_eq(json_integer_value(json_object_get(out, "ram_mib")), 3 * 64 + 512, "%s",
		     json_dumps(out, 0));
	json_decref(out);
}
