// SPDX-License-Identifier: MIT
/*
 * bunshind's /v1 API against a real daemon and a real SQLite file:
 * authentication, roles, tenant isolation, bad input (and that a rejected
 * request changes nothing), quotas under 100 concurrent creates.
 * Instances here are created with "start": false where booting adds
 * nothing to what is tested; test_vm.c boots them.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dharness.h"

static struct dh h;

static void setup(void)
{
	dh_start(&h, NULL);
}

static void teardown(void)
{
	dh_cleanup(&h);
}

TestSuite(api, .init = setup, .fini = teardown, .timeout = 120);

static int count_instances(const char *token)
{
	json_t *out;
	int n;

	cr_assert_eq(dh_req(&h, token, "GET", "/v1/instances", NULL, &out), 200);
	n = (int)json_array_size(out);
	json_decref(out);
	return n;
}

static int create_stopped(const char *token, const char *name, json_t **out)
{
	char body[256];

	snprintf(body, sizeof(body),
		 "{\"name\":\"%s\",\"flavor\":\"tiny\",\"image\":\"test-guest\",\"start\":false}",
		 name);
	return dh_req(&h, token, "POST", "/v1/instances", body, out);
}

Test(api, first_start_made_admin_flavors_and_image)
{
	json_t *out;
	char path[256];

	snprintf(path, sizeof(path), "%s/admin.token", h.dir);
	cr_expect_eq(access(path, R_OK), 0);
	cr_assert_eq(dh_req(&h, h.admin, "GET", "/v1/flavors", NULL, &out), 200);
	cr_expect_eq(json_array_size(out), 4);
	json_decref(out);
	cr_assert_eq(dh_req(&h, h.admin, "GET", "/v1/images/test-guest", NULL, &out), 200);
	cr_expect_str_eq(json_string_value(json_object_get(out, "kind")), "kernel");
	cr_expect_eq(strlen(json_string_value(json_object_get(out, "sha256"))), 64);
	json_decref(out);
}

Test(api, tokens_are_checked)
{
	json_t *out;

	cr_expect_eq(dh_req(&h, NULL, "GET", "/v1/instances", NULL, &out), 401);
	cr_expect_str_eq(dh_code(out), "unauthorized");
	json_decref(out);
	cr_expect_eq(dh_req(&h, "bsn_0000", "GET", "/v1/instances", NULL, NULL), 401);
	cr_expect_eq(dh_req(&h, "", "GET", "/v1/instances", NULL, NULL), 401);
	cr_expect_eq(dh_req(&h, h.admin, "GET", "/v1/instances", NULL, NULL), 200);
}

Test(api, revoked_token_stops_working)
{
	char tok[128];
	json_t *out;
	char path[64];

	dh_tenant_user(&h, "team-a", "alice", "member", tok, sizeof(tok));
	cr_assert_eq(dh_req(&h, h.admin, "GET", "/v1/tokens", NULL, &out), 200);
	/* The admin's token is 1, alice's 2; tokens never show their secret. */
	cr_expect_eq(json_array_size(out), 2);
	cr_expect_null(json_object_get(json_array_get(out, 1), "token"));
	snprintf(path, sizeof(path), "/v1/tokens/%lld",
		 (long long)json_integer_value(json_object_get(json_array_get(out, 1), "id")));
	json_decref(out);
	cr_expect_eq(dh_req(&h, tok, "GET", "/v1/instances", NULL, NULL), 200);
	cr_expect_eq(dh_req(&h, tok, "DELETE", path, NULL, NULL), 403);
	cr_expect_eq(dh_req(&h, h.admin, "DELETE", path, NULL, NULL), 204);
	cr_expect_eq(dh_req(&h, tok, "GET", "/v1/instances", NULL, NULL), 401);
}

Test(api, tenants_cannot_see_each_other)
{
	char a[128], b[128], path[64];
	json_t *out;
	int64_t id;

	dh_tenant_user(&h, "team-a", "alice", "member", a, sizeof(a));
	dh_tenant_user(&h, "team-b", "bob", "admin", b, sizeof(b));
	cr_assert_eq(create_stopped(a, "web", &out), 201);
	id = json_integer_value(json_object_get(out, "id"));
	json_decref(out);
	snprintf(path, sizeof(path), "/v1/instances/%lld", (long long)id);
	cr_expect_eq(dh_req(&h, b, "GET", path, NULL, NULL), 404);
	cr_expect_eq(dh_req(&h, b, "GET", "/v1/instances/web", NULL, NULL), 404);
	cr_expect_eq(dh_req(&h, b, "DELETE", path, NULL, NULL), 404);
	snprintf(path, sizeof(path), "/v1/instances/%lld/actions", (long long)id);
	cr_expect_eq(dh_req(&h, b, "POST", path, "{\"action\":\"start\"}", NULL), 404);
	cr_expect_eq(count_instances(b), 0);
	cr_expect_eq(count_instances(a), 1);
	/* The same name in another tenant is another instance. */
	cr_expect_eq(create_stopped(b, "web", NULL), 201);
	cr_expect_eq(create_stopped(a, "web", NULL), 409);
	/* Tenants, users and quotas of others look absent too. */
	cr_expect_eq(dh_req(&h, b, "GET", "/v1/tenants/team-a", NULL, NULL), 404);
	cr_expect_eq(dh_req(&h, b, "GET", "/v1/tenants/team-a/quota", NULL, NULL), 404);
	cr_expect_eq(dh_req(&h, b, "GET", "/v1/users/alice", NULL, NULL), 404);
	cr_expect_eq(dh_req(&h, b, "POST", "/v1/tokens", "{\"user\":\"alice\"}", NULL), 404);
	/* The operator sees both. */
	cr_expect_eq(count_instances(h.admin), 2);
}

Test(api, viewer_changes_nothing)
{
	char v[128];
	json_t *out;

	dh_tenant_user(&h, "team-a", "victor", "viewer", v, sizeof(v));
	cr_expect_eq(create_stopped(v, "web", &out), 403);
	cr_expect_str_eq(dh_code(out), "forbidden");
	json_decref(out);
	cr_expect_eq(dh_req(&h, v, "POST", "/v1/tokens", "{}", NULL), 403);
	cr_expect_eq(dh_req(&h, v, "POST", "/v1/users", "{\"name\":\"x\"}", NULL), 403);
	cr_expect_eq(dh_req(&h, v, "GET", "/v1/instances", NULL, NULL), 200);
	cr_expect_eq(dh_req(&h, v, "GET", "/v1/quota", NULL, NULL), 200);
	cr_expect_eq(count_instances(h.admin), 0);
}

Test(api, members_are_not_operators)
{
	char m[128];

	dh_tenant_user(&h, "team-a", "mia", "admin", m, sizeof(m));
	cr_expect_eq(dh_req(&h, m, "GET", "/v1/host", NULL, NULL), 403);
	cr_expect_eq(dh_req(&h, m, "POST", "/v1/tenants", "{\"name\":\"x\"}", NULL), 403);
	cr_expect_eq(dh_req(&h, m, "PUT", "/v1/tenants/team-a/quota", "{\"instances\":99}", NULL),
		     403);
	cr_expect_eq(dh_req(&h, m, "POST", "/v1/flavors",
			    "{\"name\":\"huge\",\"vcpus\":64,\"ram_mib\":1024}", NULL),
		     403);
	cr_expect_eq(dh_req(&h, m, "POST", "/v1/images",
			    "{\"name\":\"x\",\"path\":\"/etc/passwd\"}", NULL),
		     403);
	/* A tenant admin manages its own tenant's users, not others'. */
	cr_expect_eq(dh_req(&h, m, "POST", "/v1/users", "{\"name\":\"sam\"}", NULL), 201);
	cr_expect_eq(
		dh_req(&h, m, "POST", "/v1/users", "{\"name\":\"eve\",\"tenant\":\"admin\"}", NULL),
		404);
}

Test(api, bad_input_is_refused_and_changes_nothing)
{
	static const char *const bodies[] = {
		"{\"name\":\"web\",\"flavor\":\"tiny\",\"image\":\"test-guest\",\"extra\":1}",
		"{\"flavor\":\"tiny\",\"image\":\"test-guest\"}",
		"{\"name\":7,\"flavor\":\"tiny\",\"image\":\"test-guest\"}",
		"{\"name\":\"9lives\",\"flavor\":\"tiny\",\"image\":\"test-guest\"}",
		"{\"name\":\"a/b\",\"flavor\":\"tiny\",\"image\":\"test-guest\"}",
		"{\"name\":\"web\",\"flavor\":\"tiny\",\"image\":\"test-guest\",\"start\":\"yes\"}",
		"{\"name\":\"web\"",
		"[1,2]",
		"",
	};
	json_t *out;

	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		int st = dh_req(&h, h.admin, "POST", "/v1/instances", bodies[i], &out);

		cr_expect_eq(st, 400, "body %zu: %d", i, st);
		cr_expect_str_eq(dh_code(out), "invalid_request", "body %zu", i);
		cr_expect(
			json_is_string(json_object_get(json_object_get(out, "error"), "message")));
		json_decref(out);
	}
	cr_expect_eq(dh_req(&h, h.admin, "POST", "/v1/instances",
			    "{\"name\":\"web\",\"flavor\":\"nope\",\"image\":\"test-guest\"}",
			    &out),
		     404);
	cr_expect_str_eq(json_string_value(json_object_get(json_object_get(out, "error"), "field")),
			 "flavor");
	json_decref(out);
	cr_expect_eq(dh_req(&h, h.admin, "POST", "/v1/instances",
			    "{\"name\":\"web\",\"flavor\":\"tiny\",\"image\":\"nope\"}", NULL),
		     404);
	cr_expect_eq(count_instances(h.admin), 0);
	cr_expect_eq(dh_req(&h, h.admin, "GET", "/v1/nothing", NULL, NULL), 404);
	cr_expect_eq(dh_req(&h, h.admin, "PATCH", "/v1/instances", "{}", NULL), 405);
	cr_expect_eq(dh_req(&h, h.admin, "GET", "/v1/instances/a/b/c/d/e/f/g", NULL, NULL), 404);
	cr_expect_eq(dh_req(&h, h.admin, "POST", "/v1/instances/nope/actions",
			    "{\"action\":\"start\"}", NULL),
		     404);
	cr_expect_eq(create_stopped(h.admin, "web", NULL), 201);
	cr_expect_eq(dh_req(&h, h.admin, "POST", "/v1/instances/web/actions",
			    "{\"action\":\"explode\"}", NULL),
		     400);
	cr_expect_eq(dh_req(&h, h.admin, "POST", "/v1/instances/web/actions",
			    "{\"action\":\"pause\"}", NULL),
		     409);
	cr_expect_eq(dh_req(&h, h.admin, "GET", "/v1/events?limit=0", NULL, NULL), 400);
	cr_expect_eq(dh_req(&h, h.admin, "POST", "/v1/tenants", "{\"name\":\"t\",\"instances\":-1}",
			    NULL),
		     400);
	cr_expect_eq(dh_req(&h, h.admin, "POST", "/v1/flavors",
			    "{\"name\":\"odd\",\"vcpus\":1,\"ram_mib\":63}", NULL),
		     400);
}

Test(api, images_import_and_refuse)
{
	char src[256], body[512];
	json_t *out;
	FILE *f;

	snprintf(src, sizeof(src), "%s.raw", h.dir);
	f = fopen(src, "w");
	cr_assert_not_null(f);
	fputs("not really a disk", f);
	fclose(f);
	snprintf(body, sizeof(body), "{\"name\":\"disk\",\"path\":\"%s\"}", src);
	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/images", body, &out), 201);
	cr_expect_eq(json_integer_value(json_object_get(out, "size")), 17);
	json_decref(out);
	cr_expect_eq(dh_req(&h, h.admin, "POST", "/v1/images", body, NULL), 409);
	unlink(src);
	cr_expect_eq(dh_req(&h, h.admin, "POST", "/v1/images",
			    "{\"name\":\"x\",\"path\":\"relative\"}", NULL),
		     400);
	cr_expect_eq(dh_req(&h, h.admin, "POST", "/v1/images",
			    "{\"name\":\"x\",\"path\":\"/nonexistent\"}", NULL),
		     400);
	cr_expect_eq(dh_req(&h, h.admin, "POST", "/v1/images", "{\"name\":\"x\",\"path\":\"/tmp\"}",
			    NULL),
		     400);
	cr_expect_eq(dh_req(&h, h.admin, "POST", "/v1/images",
			    "{\"name\":\"x\",\"path\":\"/etc/hostname\",\"kind\":\"qcow2\"}", NULL),
		     400);
	/* A raw image that names no kernel image cannot boot: refused, nothing created. */
	cr_expect_eq(dh_req(&h, h.admin, "POST", "/v1/instances",
			    "{\"name\":\"r\",\"flavor\":\"tiny\",\"image\":\"disk\"}", &out),
		     400);
	cr_expect_str_eq(dh_code(out), "invalid_request");
	json_decref(out);
	cr_expect_eq(count_instances(h.admin), 0);
}

Test(api, quota_and_host_report)
{
	char a[128];
	json_t *out;

	dh_tenant_user(&h, "team-a", "alice", "member", a, sizeof(a));
	cr_assert_eq(
		dh_req(&h, h.admin, "PUT", "/v1/tenants/team-a/quota", "{\"instances\":1}", &out),
		200);
	cr_expect_eq(json_integer_value(json_object_get(out, "quota_instances")), 1);
	cr_expect_eq(json_integer_value(json_object_get(out, "quota_vcpus")), 20);
	json_decref(out);
	cr_expect_eq(create_stopped(a, "one", NULL), 201);
	cr_expect_eq(create_stopped(a, "two", &out), 409);
	cr_expect_str_eq(dh_code(out), "quota_exceeded");
	json_decref(out);
	/* The operator moves capacity: one command, and the next create fits. */
	cr_assert_eq(
		dh_req(&h, h.admin, "PUT", "/v1/tenants/team-a/quota", "{\"instances\":2}", NULL),
		200);
	cr_expect_eq(create_stopped(a, "two", NULL), 201);
	cr_assert_eq(dh_req(&h, h.admin, "GET", "/v1/host", NULL, &out), 200);
	cr_expect_eq(
		json_integer_value(json_object_get(json_object_get(out, "allocated"), "instances")),
		2);
	cr_expect_eq(
		json_real_value(json_object_get(json_object_get(out, "allocation_ratios"), "cpu")),
		4.0);
	cr_expect_eq(json_array_size(json_object_get(out, "tenants")), 2);
	json_decref(out);
	/* Both creates and the refused one are in the audit log. */
	cr_assert_eq(dh_req(&h, a, "GET", "/v1/events", NULL, &out), 200);
	cr_expect_eq(json_array_size(out), 3);
	cr_expect(strstr(json_string_value(json_object_get(json_array_get(out, 1), "result")),
			 "409"));
	json_decref(out);
}

#define RACERS 100
#define QUOTA  7

static int race_status[RACERS];
static char race_token[128];

static void *racer(void *arg)
{
	int i = (int)(long)arg;
	char name[32];

	snprintf(name, sizeof(name), "vm%d", i);
	race_status[i] = create_stopped(race_token, name, NULL);
	return NULL;
}

/*
 * 100 creates at once, on 100 connections, against a quota of 7: the
 * daemon serves 4 at a time on separate SQLite connections, and the check
 * and insert share one write transaction, so exactly 7 can succeed.
 */
Test(api, parallel_creates_never_exceed_the_quota)
{
	pthread_t t[RACERS];
	int ok = 0, refused = 0;
	json_t *out;
	char body[64];

	dh_tenant_user(&h, "team-a", "alice", "member", race_token, sizeof(race_token));
	snprintf(body, sizeof(body), "{\"instances\":%d}", QUOTA);
	cr_assert_eq(dh_req(&h, h.admin, "PUT", "/v1/tenants/team-a/quota", body, NULL), 200);
	for (long i = 0; i < RACERS; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, racer, (void *)i), 0);
	for (int i = 0; i < RACERS; i++) {
		pthread_join(t[i], NULL);
		ok += race_status[i] == 201;
		refused += race_status[i] == 409;
	}
	cr_expect_eq(ok, QUOTA);
	cr_expect_eq(refused, RACERS - QUOTA);
	cr_expect_eq(count_instances(race_token), QUOTA);
	cr_assert_eq(dh_req(&h, race_token, "GET", "/v1/quota", NULL, &out), 200);
	cr_expect_eq(json_integer_value(json_object_get(out, "instances")), QUOTA);
	json_decref(out);
}

Test(api, tcp_listener_serves_the_same_api)
{
	char listen[64];
	const char *extra[] = {"--listen", listen, NULL};
	int port = 20000 + getpid() % 20000;
	struct dh h2;

	snprintf(listen, sizeof(listen), "tcp:127.0.0.1:%d", port);
	dh_start(&h2, extra);
	snprintf(h2.sock, sizeof(h2.sock), "http://127.0.0.1:%d", port);
	cr_expect_eq(dh_req(&h2, h2.admin, "GET", "/v1/flavors", NULL, NULL), 200);
	cr_expect_eq(dh_req(&h2, "bad", "GET", "/v1/flavors", NULL, NULL), 401);
	dh_cleanup(&h2);
}

Test(api, flavors_users_tenants_events)
{
	char a[128], b[128];
	json_t *out;

	dh_tenant_user(&h, "team-a", "alice", "admin", a, sizeof(a));
	dh_tenant_user(&h, "team-b", "bob", "member", b, sizeof(b));
	/* A flavor of team-a's own: team-a sees it, team-b does not. */
	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/flavors",
			    "{\"name\":\"fat\",\"vcpus\":2,\"ram_mib\":128,\"tenant\":\"team-a\"}",
			    &out),
		     201);
	cr_expect_str_eq(json_string_value(json_object_get(out, "tenant")), "team-a");
	json_decref(out);
	cr_expect_eq(dh_req(&h, a, "GET", "/v1/flavors/fat", NULL, NULL), 200);
	cr_expect_eq(dh_req(&h, b, "GET", "/v1/flavors/fat", NULL, NULL), 404);
	cr_assert_eq(dh_req(&h, b, "GET", "/v1/flavors", NULL, &out), 200);
	cr_expect_eq(json_array_size(out), 4);
	json_decref(out);
	cr_expect_eq(dh_req(&h, h.admin, "POST", "/v1/flavors",
			    "{\"name\":\"tiny\",\"vcpus\":1,\"ram_mib\":64}", NULL),
		     409);
	/* Users: a tenant sees its own. */
	cr_assert_eq(dh_req(&h, a, "GET", "/v1/users", NULL, &out), 200);
	cr_expect_eq(json_array_size(out), 1);
	json_decref(out);
	cr_expect_eq(dh_req(&h, a, "GET", "/v1/users/alice", NULL, NULL), 200);
	cr_expect_eq(dh_req(&h, h.admin, "GET", "/v1/users/bob", NULL, NULL), 200);
	cr_expect_eq(dh_req(&h, a, "POST", "/v1/users", "{\"name\":\"z\",\"role\":\"god\"}", NULL),
		     400);
	cr_expect_eq(dh_req(&h, a, "POST", "/v1/users", "{\"name\":\"alice\"}", NULL), 409);
	cr_expect_eq(dh_req(&h, b, "POST", "/v1/users", "{\"name\":\"z\"}", NULL), 403);
	/* Tenants: a tenant in use cannot go, an empty one can, admin never. */
	cr_assert_eq(dh_req(&h, a, "GET", "/v1/tenants", NULL, &out), 200);
	cr_expect_eq(json_array_size(out), 1);
	json_decref(out);
	cr_expect_eq(dh_req(&h, h.admin, "DELETE", "/v1/tenants/team-b", NULL, NULL), 409);
	cr_expect_eq(dh_req(&h, h.admin, "DELETE", "/v1/tenants/admin", NULL, NULL), 409);
	cr_expect_eq(dh_req(&h, h.admin, "POST", "/v1/tenants", "{\"name\":\"empty\"}", NULL), 201);
	cr_expect_eq(dh_req(&h, h.admin, "DELETE", "/v1/tenants/empty", NULL, NULL), 204);
	cr_expect_eq(dh_req(&h, h.admin, "GET", "/v1/tenants/empty", NULL, NULL), 404);
	cr_expect_eq(dh_req(&h, h.admin, "DELETE", "/v1/tenants/empty", NULL, NULL), 404);
	/* Events: team-b sees none of team-a's; the operator sees all, refusals included. */
	cr_assert_eq(dh_req(&h, b, "GET", "/v1/events", NULL, &out), 200);
	cr_expect_eq(json_array_size(out), 1); /* its refused POST /v1/users */
	cr_expect_str_eq(json_string_value(json_object_get(json_array_get(out, 0), "who")), "bob");
	json_decref(out);
	cr_assert_eq(dh_req(&h, h.admin, "GET", "/v1/events?limit=2", NULL, &out), 200);
	cr_expect_eq(json_array_size(out), 2);
	json_decref(out);
}

Test(api, prometheus_metrics_for_the_operator)
{
	char m[128], *text = NULL;

	dh_tenant_user(&h, "team-a", "mia", "member", m, sizeof(m));
	cr_assert_eq(create_stopped(m, "web", NULL), 201);
	cr_expect_eq(dh_text(&h, NULL, "/metrics", &text), 401);
	free(text);
	cr_expect_eq(dh_text(&h, m, "/metrics", &text), 403);
	free(text);
	cr_assert_eq(dh_text(&h, h.admin, "/metrics", &text), 200);
	cr_expect(strstr(text, "bunshind_instances{state=\"stopped\"} 1\n"), "%s", text);
	cr_expect(strstr(text, "bunshind_tenant_instances{tenant=\"team-a\"} 1\n"), "%s", text);
	cr_expect(strstr(text, "bunshind_tenant_quota_instances{tenant=\"team-a\"} 10\n"), "%s",
		  text);
	cr_expect(strstr(text, "bunshind_capacity_vcpus "), "%s", text);
	cr_expect(strstr(text, "bunshind_api_request_duration_seconds_bucket{le=\"+Inf\"} "), "%s",
		  text);
	cr_expect(strstr(text, "bunshind_api_requests_total{code=\"4xx\"} "), "%s", text);
	free(text);
}

Test(api, one_daemon_per_state_directory)
{
	char cmd[1024];
	int st;

	snprintf(cmd, sizeof(cmd),
		 "%s --state-dir %s --listen unix:%s/other.sock 2>&1 | grep -q 'another bunshind'",
		 getenv("BUNSHIND"), h.dir, h.dir);
	st = system(cmd);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the second bunshind did not refuse");
	/* The first one still serves. */
	cr_expect_eq(dh_req(&h, h.admin, "GET", "/v1/host", NULL, NULL), 200);
}

Test(api, instance_events)
{
	char a[128], b[128];
	json_t *out;

	dh_tenant_user(&h, "team-a", "alice", "member", a, sizeof(a));
	dh_tenant_user(&h, "team-b", "bob", "member", b, sizeof(b));
	cr_assert_eq(create_stopped(a, "web", NULL), 201);
	cr_assert_eq(create_stopped(a, "other", NULL), 201);
	cr_expect_eq(
		dh_req(&h, a, "POST", "/v1/instances/web/actions", "{\"action\":\"pause\"}", NULL),
		409);
	cr_assert_eq(dh_req(&h, a, "GET", "/v1/instances/web/events", NULL, &out), 200);
	cr_assert_eq(json_array_size(out), 2);
	cr_expect(strstr(json_string_value(json_object_get(json_array_get(out, 0), "result")),
			 "409"));
	cr_expect_str_eq(json_string_value(json_object_get(json_array_get(out, 1), "action")),
			 "POST /v1/instances");
	json_decref(out);
	cr_expect_eq(dh_req(&h, b, "GET", "/v1/instances/web/events", NULL, NULL), 404);
	cr_expect_eq(dh_req(&h, a, "GET", "/v1/instances/web/events?limit=x", NULL, NULL), 400);
}

/* bench/daemon.sh's load generator, small: its numbers come out and it cleans up. */
Test(api, daemonbench_smoke)
{
	char cmd[1024], buf[4096];
	size_t n;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "%s %s %s 2 1 5 0", getenv("BUNSHIN_DAEMONBENCH"), h.sock,
		 h.admin);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	n = fread(buf, 1, sizeof(buf) - 1, p);
	buf[n] = 0;
	cr_expect_eq(pclose(p), 0);
	cr_expect(strstr(buf, "creates_ok 5\n"), "%s", buf);
	cr_expect(strstr(buf, "read_errors 0\n"), "%s", buf);
	cr_expect(strstr(buf, "read_p99_ms "), "%s", buf);
	cr_expect(strstr(buf, "deleted 5\n"), "%s", buf);
	cr_expect_eq(count_instances(h.admin), 0);
}

Test(api, deleting_users_flavors_images)
{
	char a[128], m[128], src[256], body[512];
	json_t *out;
	FILE *f;

	dh_tenant_user(&h, "team-a", "alice", "admin", a, sizeof(a));
	cr_assert_eq(
		dh_req(&h, a, "POST", "/v1/users", "{\"name\":\"mo\",\"role\":\"member\"}", NULL),
		201);
	cr_assert_eq(dh_req(&h, a, "POST", "/v1/tokens", "{\"user\":\"mo\"}", &out), 201);
	snprintf(m, sizeof(m), "%s", json_string_value(json_object_get(out, "token")));
	json_decref(out);
	/* Users: members may not, nobody deletes themselves, other tenants' are absent. */
	cr_expect_eq(dh_req(&h, m, "DELETE", "/v1/users/alice", NULL, NULL), 403);
	cr_expect_eq(dh_req(&h, a, "DELETE", "/v1/users/alice", NULL, NULL), 409);
	cr_expect_eq(dh_req(&h, a, "DELETE", "/v1/users/admin", NULL, NULL), 404);
	cr_expect_eq(dh_req(&h, a, "DELETE", "/v1/users/mo", NULL, NULL), 204);
	cr_expect_eq(dh_req(&h, m, "GET", "/v1/instances", NULL, NULL), 401); /* tokens went too */
	/* Flavors: a used one stays; the public and a tenant's of one name are told apart. */
	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/flavors",
			    "{\"name\":\"tiny\",\"vcpus\":1,\"ram_mib\":32,\"tenant\":\"team-a\"}",
			    NULL),
		     201);
	cr_assert_eq(create_stopped(h.admin, "web", NULL), 201); /* public tiny */
	cr_expect_eq(dh_req(&h, a, "DELETE", "/v1/flavors/tiny", NULL, NULL), 403);
	cr_expect_eq(dh_req(&h, h.admin, "DELETE", "/v1/flavors/tiny", NULL, &out), 409);
	cr_expect_str_eq(dh_code(out), "conflict");
	json_decref(out);
	cr_expect_eq(dh_req(&h, h.admin, "DELETE", "/v1/flavors/tiny?tenant=team-a", NULL, NULL),
		     204);
	cr_expect_eq(dh_req(&h, h.admin, "DELETE", "/v1/flavors/tiny?tenant=team-a", NULL, NULL),
		     404);
	cr_expect_eq(dh_req(&h, h.admin, "DELETE", "/v1/flavors/large", NULL, NULL), 204);
	cr_expect_eq(dh_req(&h, h.admin, "GET", "/v1/flavors/large", NULL, NULL), 404);
	/* Images: the file goes with the row; a used one stays. */
	snprintf(src, sizeof(src), "%s.img", h.dir);
	f = fopen(src, "w");
	cr_assert_not_null(f);
	fputs("x", f);
	fclose(f);
	snprintf(body, sizeof(body), "{\"name\":\"spare\",\"path\":\"%s\",\"kind\":\"kernel\"}",
		 src);
	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/images", body, &out), 201);
	unlink(src);
	snprintf(src, sizeof(src), "%s", json_string_value(json_object_get(out, "path")));
	json_decref(out);
	cr_expect_eq(access(src, F_OK), 0);
	cr_expect_eq(dh_req(&h, h.admin, "DELETE", "/v1/images/test-guest", NULL, NULL), 409);
	cr_expect_eq(dh_req(&h, h.admin, "DELETE", "/v1/images/spare", NULL, NULL), 204);
	cr_expect_neq(access(src, F_OK), 0);
}
