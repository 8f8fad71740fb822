// SPDX-License-Identifier: MIT
/*
 * Key pairs through the API and the CLI, and the key and user data an
 * instance create takes: what is accepted, and a 400 naming the field for
 * each way a key or user data can be wrong. The fingerprints below are
 * ssh-keygen -l's for these keys.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dharness.h"

#define ED25519                                                                                    \
	"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJf27JaBPWuYOaxd0mh4FzNLikoht52G7XxoH3muJvv9 "        \
	"user@test"
#define ED25519_FP "SHA256:2jy6eB/XhUneUGYXLvhRwp2XYYWtKOQIs6c3W7mCdG0"
#define RSA                                                                                        \
	"ssh-rsa "                                                                                 \
	"AAAAB3NzaC1yc2EAAAADAQABAAABAQDN8h792ME2ChYft/nJpCVbi3skZUvNt2HuQVHgLSLexA/+/"            \
	"isOBzEYQpA/jW6PclDbq1nSwmRq4Xxd/+Tcgyfy9fs/y3YNx+wxASnIRxqKGjKSTJ0OvShzaaXr8nsKdT1A6CjV"  \
	"wqt8lh4zmEx+SoFoqs2iqHkxMIbkTY3gBLP4Y3ygpwGccE104rI2eKfGYFup3LcT8REM5ABm9GDHp3yzUU3k52d"  \
	"fPHFoSLrYYBok/5ueugcvgmLhFKsZf2was4Mz2k8aXSSWVJwUKSMiR/383VqmxqHYr7qED5a41gXYV2sitkdRavF" \
	"AMrULoAtcwUrewIv9hjhuD3ZBpjUb5PQZ user@test"
#define RSA_FP "SHA256:Zm+H3vTLPMbahlNx933+WwmeQo5LPS0z5lBanFSyA4A"
#define ECDSA256                                                                                   \
	"ecdsa-sha2-nistp256 "                                                                     \
	"AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBAomTYxqJrZl0iC0HygH9rOrvtGOoPkv6yLW" \
	"d9v5nx/pnHNANy7VTsfq6tTcBv5AKXB6Y1wLwDeBfcnVd9mxjLk="
#define ECDSA256_FP "SHA256:xLqS3zfAYDi8XHrFQQQOXQ2FrRvfKHFYKyZuBLaagwY"
#define ECDSA521                                                                                   \
	"ecdsa-sha2-nistp521 "                                                                     \
	"AAAAE2VjZHNhLXNoYTItbmlzdHA1MjEAAAAIbmlzdHA1MjEAAACFBAFj0WsZjLhNj8HdOuRig5jpcfBfC4ZVuNkK" \
	"kZhIJdMRwLbHKPSyYgBLjJgarCGmh0jXHOtKmG1MYiBMTpWfcPWo4gExby84/"                            \
	"ckVvz3uYR/AGDOFoxQijh9NWw7jDPciJKVYe65DDw1R2QOPIKjAmqzmbEdJFm5noLtyeRzufjtTKX6D8A== c"
#define ECDSA521_FP "SHA256:biEH5xAeNTwCqOOoXCJq3rKoz7LTTDE/UyVy/dRK7pQ"

static struct dh h;

static void setup(void)
{
	dh_start(&h, NULL);
}

static void teardown(void)
{
	dh_cleanup(&h);
}

TestSuite(keypairs, .init = setup, .fini = teardown, .timeout = 300);

static void import_ok(const char *name, const char *key, const char *fp, const char *type)
{
	char body[2048];
	json_t *out;

	snprintf(body, sizeof(body), "{\"name\":\"%s\",\"public_key\":\"%s\"}", name, key);
	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/keypairs", body, &out), 201, "%s: %s", name,
		     dh_jstr(out, "error", "message"));
	cr_expect_str_eq(dh_jstr(out, NULL, "fingerprint"), fp, "%s", name);
	cr_expect_str_eq(dh_jstr(out, NULL, "type"), type);
	cr_expect_str_eq(dh_jstr(out, NULL, "public_key"), key);
	cr_expect_str_eq(dh_jstr(out, NULL, "name"), name);
	json_decref(out);
}

Test(keypairs, import_list_show_delete_and_tenants_apart)
{
	char tb[128];
	json_t *out;

	import_ok("ed", ED25519, ED25519_FP, "ssh-ed25519");
	import_ok("rsa", RSA, RSA_FP, "ssh-rsa");
	import_ok("ec256", ECDSA256, ECDSA256_FP, "ecdsa-sha2-nistp256");
	import_ok("ec521", ECDSA521, ECDSA521_FP, "ecdsa-sha2-nistp521");
	cr_assert_eq(dh_req(&h, h.admin, "GET", "/v1/keypairs", NULL, &out), 200);
	cr_expect_eq(json_array_size(out), 4);
	json_decref(out);
	cr_assert_eq(dh_req(&h, h.admin, "GET", "/v1/keypairs/ed", NULL, &out), 200);
	cr_expect_str_eq(dh_jstr(out, NULL, "fingerprint"), ED25519_FP);
	cr_expect_neq(json_integer_value(json_object_get(out, "created")), 0);
	json_decref(out);
	/* names are unique per tenant */
	cr_expect_eq(dh_req(&h, h.admin, "POST", "/v1/keypairs",
			    "{\"name\":\"ed\",\"public_key\":\"" ED25519 "\"}", &out),
		     409);
	cr_expect_str_eq(dh_jstr(out, "error", "field"), "name");
	json_decref(out);
	/* another tenant sees none of them, and may use the same name */
	dh_tenant_user(&h, "team-b", "bob", "member", tb, sizeof(tb));
	cr_expect_eq(dh_req(&h, tb, "GET", "/v1/keypairs/ed", NULL, NULL), 404);
	cr_expect_eq(dh_req(&h, tb, "DELETE", "/v1/keypairs/ed", NULL, NULL), 404);
	cr_assert_eq(dh_req(&h, tb, "GET", "/v1/keypairs", NULL, &out), 200);
	cr_expect_eq(json_array_size(out), 0);
	json_decref(out);
	cr_expect_eq(dh_req(&h, tb, "POST", "/v1/keypairs",
			    "{\"name\":\"ed\",\"public_key\":\"" ED25519 "\"}", NULL),
		     201);
	/* viewers may look, not change */
	char tv[128];
	dh_tenant_user(&h, "team-c", "vic", "viewer", tv, sizeof(tv));
	cr_expect_eq(dh_req(&h, tv, "GET", "/v1/keypairs", NULL, NULL), 200);
	cr_expect_eq(dh_req(&h, tv, "DELETE", "/v1/keypairs/ed", NULL, NULL), 403);
	cr_expect_eq(dh_req(&h, tv, "POST", "/v1/keypairs",
			    "{\"name\":\"v\",\"public_key\":\"" ED25519 "\"}", NULL),
		     403);
	cr_expect_eq(dh_req(&h, h.admin, "DELETE", "/v1/keypairs/ed", NULL, NULL), 204);
	/* the operator sees every tenant's: team-b's "ed" is what is left of that name */
	cr_assert_eq(dh_req(&h, h.admin, "GET", "/v1/keypairs/ed", NULL, &out), 200);
	cr_expect_str_eq(dh_jstr(out, NULL, "tenant"), "team-b");
	json_decref(out);
	cr_expect_eq(dh_req(&h, tb, "GET", "/v1/keypairs/ed", NULL, NULL), 200);
}

/* A POST that must fail with 400 naming field. */
static void bad(const char *path, const char *body, const char *field, const char *why)
{
	json_t *out;
	int st = dh_req(&h, h.admin, "POST", path, body, &out);

	cr_expect_eq(st, 400, "%s: got %d", why, st);
	cr_expect_str_eq(dh_jstr(out, "error", "field"), field, "%s: %s", why,
			 dh_jstr(out, "error", "message"));
	json_decref(out);
}

static void bad_key(const char *key, const char *why)
{
	char body[20000];

	snprintf(body, sizeof(body), "{\"name\":\"k\",\"public_key\":\"%s\"}", key);
	bad("/v1/keypairs", body, "public_key", why);
}

Test(keypairs, bad_keys_are_refused_naming_the_field)
{
	char *huge = malloc(12000);

	bad_key("ssh-dss AAAAB3NzaC1kc3MAAACBAP", "unknown type");
	bad_key("ssh-ed25519", "no base64");
	bad_key("ssh-ed25519 ", "empty base64");
	bad_key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJf27JaBPWuYOaxd0mh4FzNLikoht52G7XxoH3mu!vv9",
		"not base64");
	bad_key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJf27JaBPWuYOaxd0mh4FzNLikoht52G7XxoH3muJvv",
		"base64 cut short");
	bad_key("ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIJf27JaBPWuYOaxd0mh4FzNLikoht52G7XxoH3muJvv9",
		"the blob's own type differs");
	bad_key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAEAEBAQEBAQEBAQEBAQEBAQE=",
		"an ed25519 key of 16 bytes");
	bad_key("ecdsa-sha2-nistp384 "
		"AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBAomTYxqJrZl0iC0HygH9rOrvtGOoP"
		"k"
		"v6yLWd9v5nx/pnHNANy7VTsfq6tTcBv5AKXB6Y1wLwDeBfcnVd9mxjLk=",
		"a nistp256 key called nistp384");
	bad_key("AAAAC3NzaC1lZDI1NTE5AAAAIJf27JaBPWuYOaxd0mh4FzNLikoht52G7XxoH3muJvv9",
		"no type at all");
	bad_key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJf27JaBPWuYOaxd0mh4FzNLikoht52G7XxoH3muJvv9"
		"\\u0001",
		"a control character");
	memcpy(huge, "ssh-rsa ", 8);
	memset(huge + 8, 'A', 11000);
	huge[11008] = 0;
	bad_key(huge, "longer than the limit");
	free(huge);
	bad("/v1/keypairs", "{\"name\":\"k\"}", "public_key", "missing");
	bad("/v1/keypairs", "{\"name\":\"k\",\"public_key\":5}", "public_key", "not a string");
	bad("/v1/keypairs", "{\"public_key\":\"" ED25519 "\"}", "name", "no name");
	bad("/v1/keypairs", "{\"name\":\"a b\",\"public_key\":\"" ED25519 "\"}", "name",
	    "a bad name");
	bad("/v1/keypairs", "{\"name\":\"k\",\"public_key\":\"" ED25519 "\",\"x\":1}", "x",
	    "an unknown field");
	cr_expect_eq(dh_req(&h, h.admin, "POST", "/v1/keypairs", "[1]", NULL), 400);
	json_t *out;
	cr_assert_eq(dh_req(&h, h.admin, "GET", "/v1/keypairs", NULL, &out), 200);
	cr_expect_eq(json_array_size(out), 0, "a refused key was stored");
	json_decref(out);
}

static void create_bad(const char *extra, int status, const char *field, const char *why)
{
	char body[100000];
	json_t *out;
	int st;

	snprintf(body, sizeof(body),
		 "{\"name\":\"s\",\"flavor\":\"tiny\",\"image\":\"test-guest\",\"start\":false%s}",
		 extra);
	st = dh_req(&h, h.admin, "POST", "/v1/instances", body, &out);
	cr_expect_eq(st, status, "%s: got %d", why, st);
	cr_expect_str_eq(dh_jstr(out, "error", "field"), field, "%s: %s", why,
			 dh_jstr(out, "error", "message"));
	json_decref(out);
}

/* base64 of n zero bytes (n a multiple of 3): "AAAA" per three */
static char *zeros_b64(size_t n)
{
	char *s = malloc(n / 3 * 4 + 1);

	memset(s, 'A', n / 3 * 4);
	s[n / 3 * 4] = 0;
	return s;
}

Test(keypairs, instances_take_a_key_and_user_data_within_limits)
{
	char extra[100000], *b64;
	json_t *out;

	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/keypairs",
			    "{\"name\":\"mine\",\"public_key\":\"" ED25519 "\"}", NULL),
		     201);
	create_bad(",\"key\":\"nope\"", 404, "key", "an unknown key pair");
	create_bad(",\"key\":7", 400, "key", "a key that is not a name");
	create_bad(",\"user_data\":\"not base64!\"", 400, "user_data", "not base64");
	create_bad(",\"user_data\":\"QUJD\\nREVG\"", 400, "user_data", "a line break");
	create_bad(",\"user_data\":\"QUI\"", 400, "user_data", "no padding");
	create_bad(",\"user_data\":false", 400, "user_data", "not a string");
	/* 64 KiB decoded is the limit: 65538 bytes (a multiple of 3) is over */
	b64 = zeros_b64(65538);
	snprintf(extra, sizeof(extra), ",\"user_data\":\"%s\"", b64);
	create_bad(extra, 400, "user_data", "user data over 64 KiB");
	free(b64);
	cr_assert_eq(dh_req(&h, h.admin, "GET", "/v1/instances", NULL, &out), 200);
	cr_expect_eq(json_array_size(out), 0, "a refused create left an instance");
	json_decref(out);

	/* exactly 64 KiB: 65536 bytes = 65535 (21845 groups) + 1 ("AA==") */
	b64 = zeros_b64(65535);
	snprintf(extra, sizeof(extra),
		 "{\"name\":\"s\",\"flavor\":\"tiny\",\"image\":\"test-guest\",\"start\":false,"
		 "\"key\":\"mine\",\"user_data\":\"%sAA==\"}",
		 b64);
	free(b64);
	cr_expect_eq(dh_req(&h, h.admin, "POST", "/v1/instances", extra, &out), 201, "%s",
		     dh_jstr(out, "error", "message"));
	json_decref(out);
}

static int cli(const char *token, const char *args, char **output)
{
	char cmd[1024], path[] = "/tmp/bunshin-kpcli-XXXXXX";
	int fd = mkstemp(path), st;

	cr_assert_geq(fd, 0);
	close(fd);
	snprintf(cmd, sizeof(cmd), "%s --endpoint unix:%s/api.sock --token %s %s >%s 2>&1",
		 getenv("BUNSHIN_CLI"), h.dir, token, args, path);
	st = system(cmd);
	if (output) {
		FILE *f = fopen(path, "r");
		size_t n;

		*output = calloc(1, 65536);
		n = fread(*output, 1, 65535, f);
		(*output)[n] = 0;
		fclose(f);
	}
	unlink(path);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

Test(keypairs, cli_keypair_commands_and_server_create_key_user_data)
{
	char pub[256], ud[256], bad[256], args[1024], *out;
	json_t *o;

	snprintf(pub, sizeof(pub), "%s/key.pub", h.dir);
	snprintf(ud, sizeof(ud), "%s/user-data", h.dir);
	snprintf(bad, sizeof(bad), "%s/bad.pub", h.dir);
	write_file(pub, ED25519 "\n");
	write_file(ud, "#!/bin/sh\necho hi\n");
	write_file(bad, "ssh-ed25519 bm90IGEga2V5\n");

	snprintf(args, sizeof(args), "keypair import k1 --file %s", pub);
	cr_expect_eq(cli(h.admin, args, &out), 0, "%s", out);
	cr_expect(strstr(out, ED25519_FP), "%s", out);
	free(out);
	cr_expect_eq(cli(h.admin, "keypair list", &out), 0);
	cr_expect(strstr(out, "k1") && strstr(out, ED25519_FP), "%s", out);
	free(out);
	cr_expect_eq(cli(h.admin, "keypair show k1", NULL), 0);
	cr_expect_eq(cli(h.admin, "keypair show nope", NULL), 3);
	snprintf(args, sizeof(args), "keypair import k2 --file %s", bad);
	cr_expect_eq(cli(h.admin, args, &out), 1, "%s", out);
	cr_expect(strstr(out, "public_key"), "%s", out);
	free(out);
	cr_expect_eq(cli(h.admin, "keypair import k3", NULL), 2, "no --file");
	cr_expect_eq(cli(h.admin, "keypair import k3 --file /nonexistent/x.pub", NULL), 2);
	cr_expect_eq(cli(h.admin, "keypair import k3 --file /dev/zero", NULL), 2, "not a key");

	snprintf(args, sizeof(args),
		 "server create s1 --flavor tiny --image test-guest --stopped --key k1 "
		 "--user-data %s",
		 ud);
	cr_expect_eq(cli(h.admin, args, &out), 0, "%s", out);
	free(out);
	cr_expect_eq(cli(h.admin,
			 "server create s2 --flavor tiny --image test-guest --stopped --key nope",
			 NULL),
		     3);
	cr_expect_eq(cli(h.admin,
			 "server create s3 --flavor tiny --image test-guest --stopped "
			 "--user-data /nonexistent",
			 NULL),
		     2);
	/* user data over 64 KiB: refused before any request */
	char big[256];
	snprintf(big, sizeof(big), "%s/big", h.dir);
	FILE *f = fopen(big, "w");
	cr_assert_not_null(f);
	for (int i = 0; i < 70000; i++)
		fputc('x', f);
	fclose(f);
	snprintf(args, sizeof(args),
		 "server create s4 --flavor tiny --image test-guest --stopped --user-data %s", big);
	cr_expect_eq(cli(h.admin, args, NULL), 2);
	cr_expect_eq(dh_req(&h, h.admin, "GET", "/v1/instances/s4", NULL, NULL), 404);
	cr_expect_eq(cli(h.admin, "keypair delete k1", NULL), 0);
	cr_expect_eq(cli(h.admin, "keypair delete k1", NULL), 3);
	cr_assert_eq(dh_req(&h, h.admin, "GET", "/v1/instances/s1", NULL, &o), 200);
	json_decref(o);
}
