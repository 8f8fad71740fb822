// SPDX-License-Identifier: MIT
/*
 * The metadata service end to end with the real test guest: bunshind
 * (requiring IMDSv2 tokens) boots the guest's netprobe scenario, made with
 * the CLI's --key and --user-data; the guest gets its address by DHCP,
 * PUTs for a token and fetches its OpenStack and EC2 metadata with it.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dharness.h"

#define ED25519                                                                                    \
	"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJf27JaBPWuYOaxd0mh4FzNLikoht52G7XxoH3muJvv9 "        \
	"user@test"
#define MD "169.254.169.254"

static struct dh h;

static void setup(void)
{
	static const char *const extra[] = {"--imds-require-token", NULL};

	dh_need_dnsmasq();
	if (unshare(CLONE_NEWNET))
		cr_skip_test("cannot unshare a network namespace: %s", strerror(errno));
	dh_start(&h, extra);
}

static void teardown(void)
{
	dh_cleanup(&h);
}

TestSuite(metaguest, .init = setup, .fini = teardown, .timeout = 300);

/* The body the guest printed for an action ("http1"), up to the line's end; malloc'd. */
static char *data(const char *console, const char *action)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "BUNSHIN-DATA %s ", action);
	p = strstr(console, pat);
	if (!p)
		return strdup("");
	p += strlen(pat);
	return strndup(p, strcspn(p, "\r\n"));
}

static int cli(const char *args)
{
	char cmd[1024];
	int st;

	snprintf(cmd, sizeof(cmd), "%s --endpoint unix:%s/api.sock --token %s %s >>%s 2>&1",
		 getenv("BUNSHIN_CLI"), h.dir, h.admin, args, h.log);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(metaguest, the_real_guest_fetches_its_own_metadata_with_an_imdsv2_token)
{
	char body[1024], args[512], pub[256], ud[256], *con, *d;
	json_t *out;
	FILE *f;

	dh_need_kvm();
	snprintf(body, sizeof(body),
		 "{\"name\":\"probe\",\"path\":\"%s\",\"kind\":\"kernel\",\"cmdline\":"
		 "\"test=netprobe imds=1 http=" MD "/openstack/latest/meta_data.json+" MD
		 "/latest/meta-data/hostname+" MD "/latest/user-data+" MD
		 "/latest/meta-data/public-keys/0/openssh-key\"}",
		 getenv("BUNSHIN_GUEST_ELF"));
	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/images", body, NULL), 201);
	snprintf(pub, sizeof(pub), "%s/key.pub", h.dir);
	snprintf(ud, sizeof(ud), "%s/user-data", h.dir);
	cr_assert_not_null(f = fopen(pub, "w"));
	fputs(ED25519 "\n", f);
	fclose(f);
	cr_assert_not_null(f = fopen(ud, "w"));
	fputs("#cloud-config\nhostname: from-user-data\n", f);
	fclose(f);
	snprintf(args, sizeof(args), "keypair import k1 --file %s", pub);
	cr_assert_eq(cli(args), 0, "see %s", h.log);
	snprintf(args, sizeof(args),
		 "server create vm1 --flavor tiny --image probe --key k1 --user-data %s", ud);
	cr_assert_eq(cli(args), 0, "see %s", h.log);

	con = dh_console_until(&h, "vm1", "BUNSHIN-TEST name=netprobe", 90000);
	cr_assert(strstr(con, "BUNSHIN-TEST name=netprobe result=pass"), "console:\n%s", con);
	cr_assert_eq(dh_req(&h, h.admin, "GET", "/v1/instances/vm1", NULL, &out), 200);
	cr_expect_str_eq(dh_test_field(con, "netprobe", "ip"), dh_jstr(out, "port", "ip"),
			 "console:\n%s", con);
	json_decref(out);
	/* the DHCP answer names the gateway as DNS server */
	cr_expect_str_eq(dh_test_field(con, "netprobe", "dns"),
			 dh_test_field(con, "netprobe", "router"), "console:\n%s", con);
	for (int i = 1; i <= 4; i++) {
		char name[8];

		snprintf(name, sizeof(name), "http%d", i);
		cr_expect_str_eq(dh_test_field(con, "netprobe", name), "200", "%s; console:\n%s",
				 name, con);
	}
	d = data(con, "http1");
	cr_expect(strstr(d, "\"name\":\"vm1\"") && strstr(d, ED25519) &&
			  strstr(d, "\"hostname\":\"vm1.bunshin.internal\""),
		  "meta_data.json: %s", d);
	free(d);
	d = data(con, "http2");
	cr_expect_str_eq(d, "vm1.bunshin.internal");
	free(d);
	d = data(con, "http3");
	cr_expect(strstr(d, "#cloud-config") && strstr(d, "hostname: from-user-data"),
		  "user-data: %s", d);
	free(d);
	d = data(con, "http4");
	cr_expect_str_eq(d, ED25519);
	free(d);
	free(con);
}
