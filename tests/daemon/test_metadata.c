// SPDX-License-Identifier: MIT
/*
 * The metadata service end to end: a real bunshind in a network namespace
 * of the test's own, real bridges, and fake instances (fakeinst.h: a
 * namespace with a veth on the bridge carrying a port's MAC and IP)
 * asking 169.254.169.254 over real TCP.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dharness.h"
#include "fakeinst.h"

#define ED25519                                                                                    \
	"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJf27JaBPWuYOaxd0mh4FzNLikoht52G7XxoH3muJvv9 "        \
	"user@test"
#define USER_DATA     "#cloud-config\nhostname: from-user-data\n"
#define USER_DATA_B64 "I2Nsb3VkLWNvbmZpZwpob3N0bmFtZTogZnJvbS11c2VyLWRhdGEK"

static struct dh h;

static void setup_with(const char *const *extra)
{
	if (unshare(CLONE_NEWNET))
		cr_skip_test("cannot unshare a network namespace: %s", strerror(errno));
	dh_start(&h, extra);
}

static void setup(void)
{
	setup_with(NULL);
}

static void setup_v2(void)
{
	static const char *const extra[] = {"--imds-require-token", NULL};

	setup_with(extra);
}

static void teardown(void)
{
	dh_cleanup(&h);
}

TestSuite(metadata, .init = setup, .fini = teardown, .timeout = 300);
TestSuite(metadata_v2, .init = setup_v2, .fini = teardown, .timeout = 300);

struct inst {
	int64_t id;
	char mac[32], ip[32], cidr[32], gw[32], bridge[16];
};

/* A stopped instance (its port is all a fake needs) on network (NULL: default). */
static void create(const char *token, const char *name, const char *network, const char *extra,
		   struct inst *in)
{
	char body[512], path[128];
	json_t *out;
	int64_t nid;

	snprintf(body, sizeof(body),
		 "{\"name\":\"%s\",\"flavor\":\"tiny\",\"image\":\"test-guest\",\"start\":false%s%"
		 "s%s%s}",
		 name, network ? ",\"network\":\"" : "", network ?: "", network ? "\"" : "",
		 extra ?: "");
	cr_assert_eq(dh_req(&h, token, "POST", "/v1/instances", body, &out), 201, "%s: %s", name,
		     dh_jstr(out, "error", "message"));
	in->id = json_integer_value(json_object_get(out, "id"));
	snprintf(in->mac, sizeof(in->mac), "%s", dh_jstr(out, "port", "mac"));
	snprintf(in->ip, sizeof(in->ip), "%s", dh_jstr(out, "port", "ip"));
	snprintf(path, sizeof(path), "/v1/networks/%s", dh_jstr(out, "port", "network"));
	json_decref(out);
	cr_assert_eq(dh_req(&h, token, "GET", path, NULL, &out), 200);
	nid = json_integer_value(json_object_get(out, "id"));
	snprintf(in->gw, sizeof(in->gw), "%s", dh_jstr(out, NULL, "gateway"));
	snprintf(in->cidr, sizeof(in->cidr), "%s/%s", in->ip,
		 strchr(dh_jstr(out, NULL, "cidr"), '/') + 1);
	snprintf(in->bridge, sizeof(in->bridge), "bn-%lld", (long long)nid);
	json_decref(out);
}

/* A fake instance holding in's port; waits for its metadata service. */
static void fake_of(struct fake *f, const char *veth, const struct inst *in)
{
	for (int t = 0; t < 5000 && !if_nametoindex(in->bridge); t += 100)
		usleep(100000);
	fake_make(f, veth, in->bridge, in->mac, in->cidr, in->gw);
	cr_assert(fake_wait_metadata(f, 8000), "no metadata service on %s; see %s", in->bridge,
		  h.log);
}

static char *get_ok(struct fake *f, const char *path, const char *head)
{
	char *body;
	int st = fake_http(f, "GET", path, head, &body);

	cr_assert_eq(st, 200, "GET %s: %d %s", path, st, body ?: "");
	return body;
}

static void expect_get(struct fake *f, const char *path, const char *want)
{
	char *body = get_ok(f, path, NULL);

	cr_expect_str_eq(body, want, "GET %s", path);
	free(body);
}

Test(metadata, both_layouts_serve_the_callers_keys_and_user_data)
{
	char want[256], *body;
	struct inst a;
	struct fake f;
	json_t *md, *md2;

	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/keypairs",
			    "{\"name\":\"mykey\",\"public_key\":\"" ED25519 "\"}", NULL),
		     201);
	create(h.admin, "web1", NULL, ",\"key\":\"mykey\",\"user_data\":\"" USER_DATA_B64 "\"", &a);
	fake_of(&f, "vf-a", &a);

	/* OpenStack */
	body = get_ok(&f, "/openstack", NULL);
	cr_expect(strstr(body, "latest") && strstr(body, "2018-08-27"), "%s", body);
	free(body);
	body = get_ok(&f, "/openstack/latest/meta_data.json", NULL);
	md = json_loads(body, 0, NULL);
	cr_assert_not_null(md, "%s", body);
	free(body);
	cr_expect_eq(strlen(dh_jstr(md, NULL, "uuid")), 36);
	cr_expect_str_eq(dh_jstr(md, NULL, "name"), "web1");
	cr_expect_str_eq(dh_jstr(md, NULL, "hostname"), "web1.bunshin.internal");
	cr_expect_str_eq(dh_jstr(md, NULL, "availability_zone"), "nova");
	cr_expect(*dh_jstr(md, NULL, "project_id"), "no project_id");
	cr_expect_eq(json_integer_value(json_object_get(md, "launch_index")), 0);
	cr_expect_str_eq(dh_jstr(md, "public_keys", "mykey"), ED25519);
	cr_expect_str_eq(json_string_value(json_object_get(
				 json_array_get(json_object_get(md, "keys"), 0), "data"))
				 ?: "",
			 ED25519);
	body = get_ok(&f, "/openstack/2018-08-27/meta_data.json", NULL);
	md2 = json_loads(body, 0, NULL);
	free(body);
	cr_expect_str_eq(dh_jstr(md2, NULL, "uuid"), dh_jstr(md, NULL, "uuid"), "the dated alias");
	json_decref(md2);
	expect_get(&f, "/openstack/latest/user_data", USER_DATA);
	expect_get(&f, "/openstack/latest/vendor_data.json", "{}");
	body = get_ok(&f, "/openstack/latest/network_data.json", NULL);
	cr_expect(strstr(body, a.mac) && strstr(body, a.gw), "%s", body);
	free(body);

	/* EC2, IMDSv1 (allowed by default) */
	body = get_ok(&f, "/latest/meta-data/", NULL);
	cr_expect(strstr(body, "instance-id\n") && strstr(body, "placement/\n") &&
			  strstr(body, "public-keys/"),
		  "%s", body);
	free(body);
	snprintf(want, sizeof(want), "i-%08llx", (long long)a.id);
	expect_get(&f, "/latest/meta-data/instance-id", want);
	expect_get(&f, "/latest/meta-data/hostname", "web1.bunshin.internal");
	expect_get(&f, "/latest/meta-data/local-hostname", "web1.bunshin.internal");
	expect_get(&f, "/latest/meta-data/local-ipv4", a.ip);
	expect_get(&f, "/latest/meta-data/mac", a.mac);
	expect_get(&f, "/latest/meta-data/instance-type", "tiny");
	expect_get(&f, "/latest/meta-data/placement/availability-zone", "nova");
	expect_get(&f, "/latest/meta-data/public-keys/", "0=mykey");
	expect_get(&f, "/latest/meta-data/public-keys/0/openssh-key", ED25519);
	expect_get(&f, "/latest/user-data", USER_DATA);
	body = get_ok(&f, "/latest/meta-data/ami-id", NULL);
	cr_expect(!strncmp(body, "ami-", 4), "%s", body);
	free(body);

	/* anything else */
	cr_expect_eq(fake_http(&f, "GET", "/latest/meta-data/nope", NULL, NULL), 404);
	cr_expect_eq(fake_http(&f, "GET", "/openstack/2009-01-01/meta_data.json", NULL, NULL), 404);
	cr_expect_eq(fake_http(&f, "GET", "/", NULL, NULL), 404);
	cr_expect_eq(fake_http(&f, "POST", "/openstack/latest/meta_data.json", NULL, NULL), 405);
	cr_expect_eq(fake_http(&f, "DELETE", "/latest/meta-data/", NULL, NULL), 405);
	cr_expect_eq(fake_http(&f, "PUT", "/openstack/latest/user_data", NULL, NULL), 405);

	/* the key was copied: deleting the key pair does not change the instance */
	cr_assert_eq(dh_req(&h, h.admin, "DELETE", "/v1/keypairs/mykey", NULL, NULL), 204);
	expect_get(&f, "/latest/meta-data/public-keys/0/openssh-key", ED25519);
	json_decref(md);
	fake_free(&f);
}

Test(metadata, no_user_data_no_key)
{
	struct inst a;
	struct fake f;
	char *body;

	create(h.admin, "bare", NULL, NULL, &a);
	fake_of(&f, "vf-a", &a);
	cr_expect_eq(fake_http(&f, "GET", "/openstack/latest/user_data", NULL, NULL), 404);
	cr_expect_eq(fake_http(&f, "GET", "/latest/user-data", NULL, NULL), 404);
	cr_expect_eq(fake_http(&f, "GET", "/latest/meta-data/public-keys/", NULL, NULL), 404);
	body = get_ok(&f, "/openstack/latest/meta_data.json", NULL);
	cr_expect(strstr(body, "\"public_keys\":{}"), "%s", body);
	free(body);
	fake_free(&f);
}

/* Overlapping subnets: two tenants' instances with the same address each see only their own. */
Test(metadata, callers_are_told_apart_by_bridge_even_with_the_same_address)
{
	char tb[128];
	struct inst a, b;
	struct fake fa, fb, stranger;
	char *body;

	dh_tenant_user(&h, "team-b", "bob", "member", tb, sizeof(tb));
	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/networks",
			    "{\"name\":\"lab\",\"cidr\":\"10.77.0.0/24\"}", NULL),
		     201);
	cr_assert_eq(dh_req(&h, tb, "POST", "/v1/networks",
			    "{\"name\":\"lab\",\"cidr\":\"10.77.0.0/24\"}", NULL),
		     201);
	create(h.admin, "alpha", "lab", NULL, &a);
	create(tb, "beta", "lab", NULL, &b);
	cr_assert_str_eq(a.ip, b.ip, "the test wants the same address on both");
	cr_assert_str_neq(a.bridge, b.bridge);
	fake_of(&fa, "vf-a", &a);
	fake_of(&fb, "vf-b", &b);
	for (int i = 0; i < 3; i++) {
		expect_get(&fa, "/latest/meta-data/hostname", "alpha.bunshin.internal");
		expect_get(&fb, "/latest/meta-data/hostname", "beta.bunshin.internal");
	}
	body = get_ok(&fb, "/openstack/latest/meta_data.json", NULL);
	cr_expect(strstr(body, "\"name\":\"beta\"") && !strstr(body, "alpha"), "%s", body);
	free(body);

	/* an address no port holds gets nobody's data */
	fake_make(&stranger, "vf-s", a.bridge, "02:00:00:00:00:99", "10.77.0.200/24", a.gw);
	cr_expect_eq(fake_http(&stranger, "GET", "/openstack/latest/meta_data.json", NULL, NULL),
		     404);
	cr_expect_eq(fake_http(&stranger, "GET", "/latest/meta-data/hostname", NULL, NULL), 404);
	fake_free(&stranger);
	fake_free(&fa);
	fake_free(&fb);
}

static int put_token(struct fake *f, const char *head, char *token, size_t size)
{
	char *body;
	int st = fake_http(f, "PUT", "/latest/api/token", head, &body);

	snprintf(token, size, "%s", body ?: "");
	free(body);
	return st;
}

static int get_with(struct fake *f, const char *path, const char *token)
{
	char head[256];

	snprintf(head, sizeof(head), "X-aws-ec2-metadata-token: %s\r\n", token);
	return fake_http(f, "GET", path, head, NULL);
}

Test(metadata_v2, imdsv2_tokens_when_required)
{
	char ta[128], tb[128], head[256];
	struct inst a, b;
	struct fake fa, fb;

	create(h.admin, "one", NULL, NULL, &a);
	create(h.admin, "two", NULL, NULL, &b);
	fake_of(&fa, "vf-a", &a);
	fake_of(&fb, "vf-b", &b);

	cr_expect_eq(fake_http(&fa, "GET", "/latest/meta-data/hostname", NULL, NULL), 401,
		     "no token, --imds-require-token");
	/* the token's TTL header: required, 1 to 21600 */
	cr_expect_eq(put_token(&fa, NULL, ta, sizeof(ta)), 400);
	cr_expect_eq(put_token(&fa, "X-aws-ec2-metadata-token-ttl-seconds: 0\r\n", ta, sizeof(ta)),
		     400);
	cr_expect_eq(
		put_token(&fa, "X-aws-ec2-metadata-token-ttl-seconds: 21601\r\n", ta, sizeof(ta)),
		400);
	cr_expect_eq(
		put_token(&fa, "X-aws-ec2-metadata-token-ttl-seconds: abc\r\n", ta, sizeof(ta)),
		400);
	cr_expect_eq(put_token(&fa,
			       "X-aws-ec2-metadata-token-ttl-seconds: 60\r\n"
			       "X-Forwarded-For: 1.2.3.4\r\n",
			       ta, sizeof(ta)),
		     403, "a proxied PUT gets no token");
	cr_expect_eq(fake_http(&fa, "GET", "/latest/api/token", NULL, NULL), 405);

	cr_assert_eq(put_token(&fa, "X-aws-ec2-metadata-token-ttl-seconds: 60\r\n", ta, sizeof(ta)),
		     200);
	cr_assert_eq(put_token(&fb, "x-aws-ec2-metadata-token-ttl-seconds: 60\r\n", tb, sizeof(tb)),
		     200, "header names are case-insensitive");
	cr_expect_eq(get_with(&fa, "/latest/meta-data/hostname", ta), 200);
	cr_expect_eq(get_with(&fb, "/latest/meta-data/hostname", tb), 200);
	cr_expect_eq(get_with(&fb, "/latest/meta-data/hostname", ta), 401,
		     "another instance's token");
	cr_expect_eq(get_with(&fa, "/latest/meta-data/hostname", tb), 401,
		     "another instance's token");
	cr_expect_eq(get_with(&fa, "/latest/meta-data/hostname", "0123456789abcdef"), 401);
	cr_expect_eq(get_with(&fa, "/latest/user-data", "nope"), 401);
	/* OpenStack's layout knows no tokens */
	cr_expect_eq(fake_http(&fa, "GET", "/openstack/latest/meta_data.json", NULL, NULL), 200);

	/* expiry */
	cr_assert_eq(put_token(&fa, "X-aws-ec2-metadata-token-ttl-seconds: 1\r\n", ta, sizeof(ta)),
		     200);
	cr_expect_eq(get_with(&fa, "/latest/meta-data/local-ipv4", ta), 200);
	usleep(1500000);
	cr_expect_eq(get_with(&fa, "/latest/meta-data/local-ipv4", ta), 401, "an expired token");
	snprintf(head, sizeof(head), "X-aws-ec2-metadata-token: %s\r\n", tb);
	cr_expect_eq(fake_http(&fb, "GET", "/latest/meta-data/local-ipv4", head, NULL), 200);
	fake_free(&fa);
	fake_free(&fb);
}

Test(metadata, imdsv1_allowed_by_default_but_bad_tokens_refused)
{
	struct inst a;
	struct fake f;
	char t[128];

	create(h.admin, "one", NULL, NULL, &a);
	fake_of(&f, "vf-a", &a);
	cr_expect_eq(fake_http(&f, "GET", "/latest/meta-data/hostname", NULL, NULL), 200);
	cr_expect_eq(get_with(&f, "/latest/meta-data/hostname", "bad"), 401);
	cr_assert_eq(put_token(&f, "X-aws-ec2-metadata-token-ttl-seconds: 10\r\n", t, sizeof(t)),
		     200);
	cr_expect_eq(get_with(&f, "/latest/meta-data/hostname", t), 200);
	fake_free(&f);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

Test(metadata, slow_and_hostile_clients_do_not_block_others)
{
	char big[10000], *resp;
	struct inst a;
	struct fake f;
	double t0;
	int idle[8];

	create(h.admin, "one", NULL, NULL, &a);
	fake_of(&f, "vf-a", &a);
	/* connections that say nothing, and one that stops half way */
	for (int i = 0; i < 8; i++)
		cr_assert_geq(idle[i] = fake_connect(&f), 0);
	cr_assert_eq(write(idle[0], "GET /latest/me", 14), 14);
	t0 = now_s();
	expect_get(&f, "/latest/meta-data/local-ipv4", a.ip);
	cr_expect_lt(now_s() - t0, 1.0, "an answer waited for the idle ones");

	/* bad requests: a clear status, never a hang */
	int fd = fake_connect(&f);
	cr_assert_geq(fd, 0);
	memset(big, 'a', sizeof(big));
	memcpy(big, "GET /", 5);
	cr_assert_eq(write(fd, big, sizeof(big)), (ssize_t)sizeof(big));
	resp = fake_read_all(fd, 3000);
	cr_expect(!strncmp(resp, "HTTP/1.1 413", 12), "%.40s", resp);
	free(resp);
	close(fd);
	fd = fake_connect(&f);
	cr_assert_eq(write(fd, "HELLO\r\n\r\n", 9), 9);
	resp = fake_read_all(fd, 3000);
	cr_expect(!strncmp(resp, "HTTP/1.1 400", 12), "%.40s", resp);
	free(resp);
	close(fd);
	/* bare line feeds, a NUL: answered, never read past */
	static const char *const odd[] = {
		"GET /latest/meta-data/local-ipv4 HTTP/1.1\nX-a:\n\r\n\r\n",
		"GET /latest/meta-data/local-ipv4 HTTP/1.1\r\nX-aws-ec2-metadata-token:\r\n\r\n",
		"PUT /latest/api/token HTTP/1.1\r\nX-aws-ec2-metadata-token-ttl-seconds: "
		"99999999999999999999999\r\n\r\n",
		"GET /latest/meta-data/\0 HTTP/1.1\r\n\r\n",
	};
	static const char *const want[] = {"HTTP/1.1 200", "HTTP/1.1 401", "HTTP/1.1 400",
					   "HTTP/1.1 400"};
	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		size_t len =
			strlen(odd[i]) + (i == 3 ? 1 + strlen(odd[i] + strlen(odd[i]) + 1) : 0);

		fd = fake_connect(&f);
		cr_assert_eq(write(fd, odd[i], len), (ssize_t)len);
		resp = fake_read_all(fd, 3000);
		cr_expect(!strncmp(resp, want[i], 12), "%zu: %.40s", i, resp);
		free(resp);
		close(fd);
	}
	cr_expect_eq(fake_http(&f, "PUT", "/latest/api/token",
			       "X-aws-ec2-metadata-token-ttl-seconds: 60\r\nContent-Length: 5\r\n",
			       NULL),
		     413, "a body is refused, not waited for");

	/* the idle ones are dropped by the server after its timeout */
	resp = fake_read_all(idle[0], 10000);
	cr_expect_str_eq(resp, "", "the half request got an answer: %.40s", resp);
	free(resp);
	cr_expect_lt(now_s() - t0, 9.0, "the server did not drop an idle connection");
	for (int i = 0; i < 8; i++)
		close(idle[i]);
	expect_get(&f, "/latest/meta-data/local-ipv4", a.ip);
	fake_free(&f);
}

/* Listening sockets on 169.254.169.254:80 (/proc/net/tcp: FEA9FEA9:0050, state 0A). */
static int listeners(void)
{
	FILE *p = fopen("/proc/net/tcp", "r");
	char line[512];
	int n = 0;

	cr_assert_not_null(p);
	while (fgets(line, sizeof(line), p)) {
		if (strstr(line, "FEA9FEA9:0050 00000000:0000 0A"))
			n++;
	}
	fclose(p);
	return n;
}

static bool has_md_addr(const char *dev)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd),
		 "ip -4 addr show dev %s 2>/dev/null | grep -q 169.254.169.254/32", dev);
	return system(cmd) == 0;
}

static bool wait_until(bool (*fn)(const char *), const char *arg, bool want, int ms)
{
	for (int t = 0; t < ms; t += 100) {
		if (fn(arg) == want)
			return true;
		usleep(100000);
	}
	return fn(arg) == want;
}

static bool bridge_exists(const char *dev)
{
	return if_nametoindex(dev) != 0;
}

Test(metadata, network_create_starts_it_delete_leaves_nothing_restart_rebuilds)
{
	char bridge[16], cmd[128];
	json_t *out;

	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/networks",
			    "{\"name\":\"lab\",\"cidr\":\"10.66.0.0/24\"}", &out),
		     201);
	snprintf(bridge, sizeof(bridge), "bn-%lld",
		 (long long)json_integer_value(json_object_get(out, "id")));
	json_decref(out);
	cr_assert(bridge_exists(bridge), "no bridge at network create");
	cr_expect(wait_until(has_md_addr, bridge, true, 5000), "no 169.254.169.254 on %s", bridge);
	for (int t = 0; t < 5000 && listeners() != 1; t += 100)
		usleep(100000);
	cr_expect_eq(listeners(), 1);

	/* bunshind gone: the address stays for the VMs; a new bunshind listens again */
	dh_kill9(&h);
	cr_expect_eq(listeners(), 0);
	snprintf(cmd, sizeof(cmd), "ip addr del 169.254.169.254/32 dev %s", bridge);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
	dh_restart(&h, NULL);
	cr_expect(wait_until(has_md_addr, bridge, true, 5000), "not restored at restart");
	for (int t = 0; t < 5000 && listeners() != 1; t += 100)
		usleep(100000);
	cr_expect_eq(listeners(), 1);

	cr_assert_eq(dh_req(&h, h.admin, "DELETE", "/v1/networks/lab", NULL, NULL), 204);
	cr_expect(!bridge_exists(bridge), "%s left behind", bridge);
	for (int t = 0; t < 5000 && listeners(); t += 100)
		usleep(100000);
	cr_expect_eq(listeners(), 0, "a listener left behind");
}
