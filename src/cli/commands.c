// SPDX-License-Identifier: MIT
/* bunshin's commands: one table row and one short function each. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define CLI_WAIT_DEFAULT_S 120
#define CLI_WAIT_POLL_US   200000

static const char *const server_cols[] = {"id",	   "name",  "tenant", "flavor",
					  "image", "state", "error",  NULL};
static const char *const flavor_cols[] = {"name", "vcpus", "ram_mib", "disk_gib", "tenant", NULL};
static const char *const image_cols[] = {"name",   "kind",   "status", "size",
					 "sha256", "tenant", NULL};
static const char *const tenant_cols[] = {"name", "quota_instances", "quota_vcpus", "quota_ram_mib",
					  NULL};
static const char *const user_cols[] = {"name", "tenant", "role", NULL};
static const char *const token_cols[] = {"id", "user", "tenant", "description", NULL};
static const char *const event_cols[] = {"id",	   "at",     "tenant", "who",
					 "action", "target", "result", NULL};
static const char *const network_cols[] = {"id",      "name",  "tenant", "cidr",
					   "gateway", "ports", NULL};
static const char *const usage_cols[] = {"tenant",	"instances", "quota_instances", "vcpus",
					 "quota_vcpus", "ram_mib",   "quota_ram_mib",	NULL};

/* GETs path and prints it. */
static int cli_show(struct cli *c, const char *path, const char *const *cols)
{
	json_t *out = NULL;
	int ret = cli_call(c, "GET", path, NULL, &out, NULL);

	if (!ret)
		cli_print(c, out, cols);
	json_decref(out);
	return ret;
}

int cli_send(struct cli *c, const char *method, const char *path, json_t *body,
	     const char *const *cols)
{
	json_t *out = NULL;
	int ret = cli_call(c, method, path, body, &out, NULL);

	if (!ret)
		cli_print(c, out, cols);
	json_decref(out);
	return ret;
}

/* Adds --NAME's value as an integer field; usage error when it is not one. */
int cli_int_field(struct cli *c, json_t *body, const char *opt, const char *field)
{
	const char *v = cli_opt(c, opt);
	char *end;
	long long n;

	if (!v)
		return 0;
	n = strtoll(v, &end, 10);
	if (!*v || *end || n < 0)
		return cli_usage_error("--%s: '%s' is not a number", opt, v);
	json_object_set_new(body, field, json_integer(n));
	return 0;
}

void cli_str_field(struct cli *c, json_t *body, const char *opt, const char *field)
{
	const char *v = cli_opt(c, opt);

	if (v)
		json_object_set_new(body, field, json_string(v));
}

/* ---- servers ---- */

int cli_wait_secs(struct cli *c, int *secs)
{
	const char *t = cli_opt(c, "timeout");
	char *end;
	long v;

	*secs = CLI_WAIT_DEFAULT_S;
	if (!t)
		return 0;
	v = strtol(t, &end, 10);
	if (!*t || *end || v < 1 || v > 86400)
		return cli_usage_error("--timeout: '%s' is not 1 to 86400 seconds", t);
	*secs = (int)v;
	return 0;
}

static double cli_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Polls until the server is in state `want`; a spinner on a terminal meanwhile. */
int cli_wait(struct cli *c, const char *ref, const char *want, int secs)
{
	static const char spin[] = "|/-\\";
	bool tty = isatty(2);
	double t0 = cli_now();
	char path[512];
	int ret;

	cli_path(path, sizeof(path), "/v1/instances/", ref, NULL);
	for (unsigned int n = 0;; n++) {
		json_t *inst = NULL;
		const char *state;

		if ((ret = cli_call(c, "GET", path, NULL, &inst, NULL)))
			return ret;
		state = json_string_value(json_object_get(inst, "state"));
		if (tty)
			fprintf(stderr, "\r%c %s: %-10s %5.1fs", spin[n % 4], ref,
				state ? state : "?", cli_now() - t0);
		if (state && (!strcmp(state, want) || !strcmp(state, "error"))) {
			bool err = strcmp(state, want);

			if (tty)
				fputc('\n', stderr);
			if (err)
				fprintf(stderr, "bunshin: %s: error: %s\n", ref,
					json_string_value(json_object_get(inst, "error")) ?: "?");
			json_decref(inst);
			return err ? CLI_API_ERROR : CLI_OK;
		}
		json_decref(inst);
		if (cli_now() - t0 > secs) {
			if (tty)
				fputc('\n', stderr);
			fprintf(stderr, "bunshin: %s: not %s after %d s\n", ref, want, secs);
			return CLI_TIMEOUT;
		}
		usleep(CLI_WAIT_POLL_US);
	}
}

static int cli_server_list(struct cli *c)
{
	return cli_show(c, "/v1/instances", server_cols);
}

static int cli_server_show(struct cli *c)
{
	char path[512];

	cli_path(path, sizeof(path), "/v1/instances/", c->pos[0], NULL);
	return cli_show(c, path, NULL);
}

static int cli_server_create(struct cli *c)
{
	const char *flavor = cli_opt(c, "flavor"), *image = cli_opt(c, "image");
	bool start = !cli_opt(c, "stopped");
	int secs, ret;
	json_t *body;

	if (!flavor || !image)
		return cli_usage_error("server create: --flavor and --image are required");
	if ((ret = cli_wait_secs(c, &secs)))
		return ret;
	body = json_pack("{s:s, s:s, s:s, s:b}", "name", c->pos[0], "flavor", flavor, "image",
			 image, "start", start);
	cli_str_field(c, body, "restart", "restart_policy");
	cli_str_field(c, body, "network", "network");
	ret = cli_server_meta_fields(c, body);
	if (ret) {
		json_decref(body);
		return ret;
	}
	ret = cli_send(c, "POST", "/v1/instances", body, NULL);
	if (!ret && start && cli_opt(c, "wait"))
		ret = cli_wait(c, c->pos[0], "running", secs);
	return ret;
}

static int cli_server_action(struct cli *c, const char *action, const char *want)
{
	char path[512];
	int secs, ret;

	if ((ret = cli_wait_secs(c, &secs)))
		return ret;
	cli_path(path, sizeof(path), "/v1/instances/", c->pos[0], "/actions");
	ret = cli_send(c, "POST", path, json_pack("{s:s}", "action", action), NULL);
	if (!ret && want && cli_opt(c, "wait"))
		ret = cli_wait(c, c->pos[0], want, secs);
	return ret;
}

static int cli_server_start(struct cli *c)
{
	return cli_server_action(c, "start", "running");
}

static int cli_server_stop(struct cli *c)
{
	return cli_server_action(c, "stop", "stopped");
}

static int cli_server_pause(struct cli *c)
{
	return cli_server_action(c, "pause", NULL);
}

static int cli_server_resume(struct cli *c)
{
	return cli_server_action(c, "resume", NULL);
}

static int cli_server_suspend(struct cli *c)
{
	return cli_server_action(c, "suspend", NULL);
}

static int cli_server_delete(struct cli *c)
{
	char path[512];

	cli_path(path, sizeof(path), "/v1/instances/", c->pos[0], NULL);
	return cli_call(c, "DELETE", path, NULL, NULL, NULL);
}

static int cli_server_events(struct cli *c)
{
	const char *limit = cli_opt(c, "limit");
	char path[512], q[64];

	snprintf(q, sizeof(q), "/events%s%s", limit ? "?limit=" : "", limit ? limit : "");
	cli_path(path, sizeof(path), "/v1/instances/", c->pos[0], q);
	return cli_show(c, path, event_cols);
}

static int cli_server_console(struct cli *c)
{
	char path[512], *text = NULL;
	int ret;

	if (cli_opt(c, "attach") && cli_opt(c, "follow"))
		return cli_usage_error("server console: --attach or --follow, not both");
	if (cli_opt(c, "attach"))
		return cli_console_attach(c);
	if (cli_opt(c, "follow"))
		return cli_server_console_follow(c);
	cli_path(path, sizeof(path), "/v1/instances/", c->pos[0], "/console");
	ret = cli_call(c, "GET", path, NULL, NULL, &text);
	if (!ret)
		fputs(text, stdout);
	free(text);
	return ret;
}

/* ---- flavors, images ---- */

static int cli_flavor_list(struct cli *c)
{
	return cli_show(c, "/v1/flavors", flavor_cols);
}

static int cli_flavor_show(struct cli *c)
{
	char path[512];

	cli_path(path, sizeof(path), "/v1/flavors/", c->pos[0], NULL);
	return cli_show(c, path, NULL);
}

static int cli_flavor_create(struct cli *c)
{
	json_t *body = json_pack("{s:s}", "name", c->pos[0]);
	int ret;

	if (!cli_opt(c, "vcpus") || !cli_opt(c, "ram")) {
		json_decref(body);
		return cli_usage_error("flavor create: --vcpus and --ram are required");
	}
	if ((ret = cli_int_field(c, body, "vcpus", "vcpus")) ||
	    (ret = cli_int_field(c, body, "ram", "ram_mib")) ||
	    (ret = cli_int_field(c, body, "disk", "disk_gib"))) {
		json_decref(body);
		return ret;
	}
	cli_str_field(c, body, "tenant", "tenant");
	return cli_send(c, "POST", "/v1/flavors", body, NULL);
}

/* DELETE prefix/NAME[?tenant=T]: flavors and images are public or a tenant's. */
static int cli_delete_owned(struct cli *c, const char *prefix)
{
	const char *tenant = cli_opt(c, "tenant");
	char path[512], q[200] = "";

	if (tenant)
		cli_path(q, sizeof(q), "?tenant=", tenant, NULL);
	cli_path(path, sizeof(path), prefix, c->pos[0], q);
	return cli_call(c, "DELETE", path, NULL, NULL, NULL);
}

static int cli_flavor_delete(struct cli *c)
{
	return cli_delete_owned(c, "/v1/flavors/");
}

static int cli_image_delete(struct cli *c)
{
	return cli_delete_owned(c, "/v1/images/");
}

static int cli_image_list(struct cli *c)
{
	return cli_show(c, "/v1/images", image_cols);
}

static int cli_image_show(struct cli *c)
{
	char path[512];

	cli_path(path, sizeof(path), "/v1/images/", c->pos[0], NULL);
	return cli_show(c, path, NULL);
}

static int cli_image_import(struct cli *c)
{
	char abs[4096];
	json_t *body;

	/* The daemon reads the file: hand it an absolute path. */
	if (!realpath(c->pos[1], abs)) {
		fprintf(stderr, "bunshin: %s: no such file\n", c->pos[1]);
		return CLI_USAGE;
	}
	body = json_pack("{s:s, s:s}", "name", c->pos[0], "path", abs);
	cli_str_field(c, body, "kind", "kind");
	cli_str_field(c, body, "cmdline", "cmdline");
	cli_str_field(c, body, "tenant", "tenant");
	cli_str_field(c, body, "kernel", "kernel");
	if (cli_opt(c, "initrd") && cli_image_initrd_field(c, body))
		return CLI_USAGE;
	return cli_send(c, "POST", "/v1/images", body, NULL);
}

/* ---- quotas, host, tenants, users, tokens, events ---- */

static int cli_quota_show(struct cli *c)
{
	const char *tenant = cli_opt(c, "tenant");
	char path[512];

	if (!tenant)
		return cli_show(c, "/v1/quota", NULL);
	cli_path(path, sizeof(path), "/v1/tenants/", tenant, "/quota");
	return cli_show(c, path, NULL);
}

static int cli_quota_body(struct cli *c, json_t *body)
{
	int ret;

	if ((ret = cli_int_field(c, body, "instances", "instances")) ||
	    (ret = cli_int_field(c, body, "vcpus", "vcpus")) ||
	    (ret = cli_int_field(c, body, "ram", "ram_mib")))
		json_decref(body);
	return ret;
}

static int cli_quota_set(struct cli *c)
{
	json_t *body = json_object();
	char path[512];
	int ret = cli_quota_body(c, body);

	if (ret)
		return ret;
	if (!json_object_size(body)) {
		json_decref(body);
		return cli_usage_error("quota set: give --instances, --vcpus or --ram");
	}
	cli_path(path, sizeof(path), "/v1/tenants/", c->pos[0], "/quota");
	return cli_send(c, "PUT", path, body, NULL);
}

static json_t *cli_get2(json_t *o, const char *a, const char *b)
{
	return json_object_get(json_object_get(o, a), b);
}

static int cli_host_show(struct cli *c)
{
	json_t *out = NULL, *tenants;
	int ret = cli_call(c, "GET", "/v1/host", NULL, &out, NULL);

	if (ret || c->json) {
		if (!ret)
			cli_print(c, out, NULL);
		json_decref(out);
		return ret;
	}
	printf("host: %lld CPUs, %lld MiB RAM\n",
	       (long long)json_integer_value(json_object_get(out, "cpus")),
	       (long long)json_integer_value(json_object_get(out, "ram_mib")));
	printf("capacity: %lld vCPUs, %lld MiB (ratios cpu %.1f, ram %.1f)\n",
	       (long long)json_integer_value(cli_get2(out, "capacity", "vcpus")),
	       (long long)json_integer_value(cli_get2(out, "capacity", "ram_mib")),
	       json_real_value(cli_get2(out, "allocation_ratios", "cpu")),
	       json_real_value(cli_get2(out, "allocation_ratios", "ram")));
	printf("allocated: %lld instances, %lld vCPUs, %lld MiB\n\n",
	       (long long)json_integer_value(cli_get2(out, "allocated", "instances")),
	       (long long)json_integer_value(cli_get2(out, "allocated", "vcpus")),
	       (long long)json_integer_value(cli_get2(out, "allocated", "ram_mib")));
	tenants = json_object_get(out, "tenants");
	cli_print(c, tenants, usage_cols);
	json_decref(out);
	return 0;
}

static int cli_tenant_list(struct cli *c)
{
	return cli_show(c, "/v1/tenants", tenant_cols);
}

static int cli_tenant_show(struct cli *c)
{
	char path[512];

	cli_path(path, sizeof(path), "/v1/tenants/", c->pos[0], NULL);
	return cli_show(c, path, NULL);
}

static int cli_tenant_create(struct cli *c)
{
	json_t *body = json_pack("{s:s}", "name", c->pos[0]);
	int ret = cli_quota_body(c, body);

	return ret ? ret : cli_send(c, "POST", "/v1/tenants", body, NULL);
}

static int cli_tenant_delete(struct cli *c)
{
	char path[512];

	cli_path(path, sizeof(path), "/v1/tenants/", c->pos[0], NULL);
	return cli_call(c, "DELETE", path, NULL, NULL, NULL);
}

static int cli_user_list(struct cli *c)
{
	return cli_show(c, "/v1/users", user_cols);
}

static int cli_user_show(struct cli *c)
{
	char path[512];

	cli_path(path, sizeof(path), "/v1/users/", c->pos[0], NULL);
	return cli_show(c, path, NULL);
}

static int cli_user_create(struct cli *c)
{
	json_t *body = json_pack("{s:s}", "name", c->pos[0]);

	cli_str_field(c, body, "tenant", "tenant");
	cli_str_field(c, body, "role", "role");
	return cli_send(c, "POST", "/v1/users", body, NULL);
}

static int cli_user_delete(struct cli *c)
{
	char path[512];

	cli_path(path, sizeof(path), "/v1/users/", c->pos[0], NULL);
	return cli_call(c, "DELETE", path, NULL, NULL, NULL);
}

static int cli_token_list(struct cli *c)
{
	return cli_show(c, "/v1/tokens", token_cols);
}

static int cli_token_create(struct cli *c)
{
	json_t *body = json_object();

	cli_str_field(c, body, "user", "user");
	cli_str_field(c, body, "description", "description");
	return cli_send(c, "POST", "/v1/tokens", body, NULL);
}

static int cli_token_delete(struct cli *c)
{
	char path[512];

	cli_path(path, sizeof(path), "/v1/tokens/", c->pos[0], NULL);
	return cli_call(c, "DELETE", path, NULL, NULL, NULL);
}

static int cli_event_list(struct cli *c)
{
	const char *limit = cli_opt(c, "limit");
	char path[512];

	if (limit)
		cli_path(path, sizeof(path), "/v1/events?limit=", limit, NULL);
	else
		snprintf(path, sizeof(path), "/v1/events");
	return cli_show(c, path, event_cols);
}

/* ---- networks ---- */

static int cli_network_list(struct cli *c)
{
	return cli_show(c, "/v1/networks", network_cols);
}

static int cli_network_show(struct cli *c)
{
	char path[512];

	cli_path(path, sizeof(path), "/v1/networks/", c->pos[0], NULL);
	return cli_show(c, path, NULL);
}

static int cli_network_create(struct cli *c)
{
	const char *cidr = cli_opt(c, "cidr");

	if (!cidr)
		return cli_usage_error("network create: --cidr is required");
	return cli_send(c, "POST", "/v1/networks",
			json_pack("{s:s, s:s, s:b}", "name", c->pos[0], "cidr", cidr, "isolated",
				  cli_opt(c, "isolated") != NULL),
			NULL);
}

static int cli_network_delete(struct cli *c)
{
	char path[512];

	cli_path(path, sizeof(path), "/v1/networks/", c->pos[0], NULL);
	return cli_call(c, "DELETE", path, NULL, NULL, NULL);
}

#define WAIT_OPTS                                                                                  \
	{"wait", NULL, "wait until it is done, showing progress"},                                 \
	{                                                                                          \
		"timeout", "S", "give up waiting after S seconds (default 120; exit status 6)"     \
	}

const struct cli_cmd cli_cmds[] = {
	{"server",
	 "create",
	 "NAME",
	 1,
	 "create a server (an instance) and boot it",
	 {{"flavor", "FLAVOR", "its size (see flavor list)"},
	  {"image", "IMAGE", "what it boots (see image list)"},
	  {"stopped", NULL, "create it without booting it"},
	  {"restart", "POLICY", "never (default), on-failure or always: when its VMM ends"},
	  {"network", "NETWORK", "its network (default: your tenant's default network)"},
	  WAIT_OPTS,
	  {"key", "KEYPAIR", "a key pair of yours, for its metadata (public-keys)"},
	  {"user-data", "FILE", "its user data (cloud-init), at most 64 KiB"}},
	 cli_server_create},
	{"server", "list", "", 0, "list the servers you can see", {{0}}, cli_server_list},
	{"server", "show", "NAME|ID", 1, "show one server", {{0}}, cli_server_show},
	{"server", "start", "NAME|ID", 1, "boot a stopped server", {WAIT_OPTS}, cli_server_start},
	{"server",
	 "stop",
	 "NAME|ID",
	 1,
	 "stop a server: ACPI power button, forced after bunshind's stop timeout",
	 {WAIT_OPTS},
	 cli_server_stop},
	{"server", "pause", "NAME|ID", 1, "pause a running server", {{0}}, cli_server_pause},
	{"server",
	 "resume",
	 "NAME|ID",
	 1,
	 "resume a paused server, or restore a suspended one",
	 {{0}},
	 cli_server_resume},
	{"server",
	 "suspend",
	 "NAME|ID",
	 1,
	 "save a running server to disk and end its VMM (its RAM freed); resume restores it",
	 {{0}},
	 cli_server_suspend},
	{"server",
	 "delete",
	 "NAME|ID",
	 1,
	 "stop (forced) and delete a server",
	 {{0}},
	 cli_server_delete},
	{"server",
	 "console",
	 "NAME|ID",
	 1,
	 "print the server's serial console log",
	 {{"follow", NULL, "keep printing what it writes, like tail -f (output only)"},
	  {"attach", NULL, "interactive: as bunshin console NAME (Ctrl-] leaves)"}},
	 cli_server_console},
	{"server",
	 "events",
	 "NAME|ID",
	 1,
	 "what was done to the server, newest first",
	 {{"limit", "N", "how many (default 100)"}},
	 cli_server_events},
	{"flavor", "list", "", 0, "list flavors", {{0}}, cli_flavor_list},
	{"flavor", "show", "NAME", 1, "show one flavor", {{0}}, cli_flavor_show},
	{"flavor",
	 "create",
	 "NAME",
	 1,
	 "create a flavor (operator)",
	 {{"vcpus", "N", "virtual CPUs"},
	  {"ram", "MIB", "RAM in MiB"},
	  {"disk", "GIB", "disk in GiB"},
	  {"tenant", "TENANT", "only for this tenant (default: public)"}},
	 cli_flavor_create},
	{"flavor",
	 "delete",
	 "NAME",
	 1,
	 "delete a flavor no instance uses (operator)",
	 {{"tenant", "TENANT", "that tenant's own flavor (default: the public one)"}},
	 cli_flavor_delete},
	{"image", "list", "", 0, "list images", {{0}}, cli_image_list},
	{"image", "show", "NAME", 1, "show one image", {{0}}, cli_image_show},
	{"image",
	 "import",
	 "NAME PATH",
	 2,
	 "import an image from a file on the daemon's host (operator)",
	 {{"kind", "raw|kernel", "a raw disk image (default) or a kernel"},
	  {"cmdline", "CMDLINE", "a kernel image's command line"},
	  {"tenant", "TENANT", "only for this tenant (default: public)"},
	  {"kernel", "IMAGE", "a raw image: the kernel image it boots with"},
	  {"initrd", "FILE", "a kernel image: its initrd (on the daemon's host)"}},
	 cli_image_import},
	{"image",
	 "upload",
	 "NAME FILE",
	 2,
	 "upload an image file, streamed (qcow2 is converted to raw by bunshind)",
	 {{"progress", NULL, "show progress on stderr (default: when it is a terminal)"},
	  {"public", NULL, "a public image (operator; default: your tenant's)"},
	  {"sha256", "HEX", "the file's expected SHA-256: refused unless it matches"},
	  {"kind", "raw|kernel", "a raw disk image (default) or a kernel"},
	  {"tenant", "TENANT", "for this tenant (operator)"},
	  {"kernel", "IMAGE", "a raw image: the kernel image it boots with"},
	  {"initrd", "FILE", "a kernel image: its initrd, uploaded after it"},
	  {"cmdline", "CMDLINE", "a kernel image's command line"}},
	 cli_image_upload},
	{"image",
	 "delete",
	 "NAME",
	 1,
	 "delete an image no instance uses, and its file (operator)",
	 {{"tenant", "TENANT", "that tenant's own image (default: the public one)"}},
	 cli_image_delete},
	{"quota",
	 "show",
	 "",
	 0,
	 "show your tenant's quota and usage",
	 {{"tenant", "TENANT", "another tenant's (operator)"}},
	 cli_quota_show},
	{"quota",
	 "set",
	 "TENANT",
	 1,
	 "change a tenant's quota (operator)",
	 {{"instances", "N", "instances"}, {"vcpus", "N", "vCPUs"}, {"ram", "MIB", "RAM in MiB"}},
	 cli_quota_set},
	{"host",
	 "show",
	 "",
	 0,
	 "host capacity, allocation ratios and usage per tenant (operator)",
	 {{0}},
	 cli_host_show},
	{"tenant", "list", "", 0, "list tenants", {{0}}, cli_tenant_list},
	{"tenant", "show", "NAME", 1, "show one tenant", {{0}}, cli_tenant_show},
	{"tenant",
	 "create",
	 "NAME",
	 1,
	 "create a tenant (operator)",
	 {{"instances", "N", "instance quota (default 10)"},
	  {"vcpus", "N", "vCPU quota (default 20)"},
	  {"ram", "MIB", "RAM quota in MiB (default 51200)"}},
	 cli_tenant_create},
	{"tenant",
	 "delete",
	 "NAME",
	 1,
	 "delete an empty tenant (operator)",
	 {{0}},
	 cli_tenant_delete},
	{"user", "list", "", 0, "list users", {{0}}, cli_user_list},
	{"user", "show", "NAME", 1, "show one user", {{0}}, cli_user_show},
	{"user",
	 "create",
	 "NAME",
	 1,
	 "create a user (admins)",
	 {{"tenant", "TENANT", "its tenant (default: yours)"},
	  {"role", "ROLE", "admin, member (default) or viewer"}},
	 cli_user_create},
	{"user",
	 "delete",
	 "NAME",
	 1,
	 "delete a user and its tokens (admins)",
	 {{0}},
	 cli_user_delete},
	{"token", "list", "", 0, "list tokens (never their secrets)", {{0}}, cli_token_list},
	{"token",
	 "create",
	 "",
	 0,
	 "create a token; its secret is shown once",
	 {{"user", "USER", "for this user (admins; default: you)"},
	  {"description", "TEXT", "what it is for"}},
	 cli_token_create},
	{"token", "delete", "ID", 1, "revoke a token (admins)", {{0}}, cli_token_delete},
	{"event",
	 "list",
	 "",
	 0,
	 "the audit log, newest first",
	 {{"limit", "N", "how many (default 100)"}},
	 cli_event_list},
	{"network", "list", "", 0, "list networks", {{0}}, cli_network_list},
	{"network", "show", "NAME|ID", 1, "show one network", {{0}}, cli_network_show},
	{"network",
	 "create",
	 "NAME",
	 1,
	 "create a private network of your tenant",
	 {{"cidr", "CIDR", "its IPv4 subnet, /16 to /29 (e.g. 10.20.0.0/24)"},
	  {"isolated", NULL, "no traffic leaves it (DHCP, DNS and metadata still answer)"}},
	 cli_network_create},
	{"network",
	 "delete",
	 "NAME|ID",
	 1,
	 "delete a network no server uses, and its bridge",
	 {{0}},
	 cli_network_delete},
	{"server",
	 "reboot",
	 "NAME|ID",
	 1,
	 "reboot a running server: Ctrl-Alt-Del to its guest, or with --hard a new VMM",
	 {{"hard", NULL, "stop its VMM (forced) and start a new one"}, WAIT_OPTS},
	 cli_server_reboot},
	{"server",
	 "resize",
	 "NAME|ID FLAVOR",
	 2,
	 "give a server another flavor (a running one is stopped and started again)",
	 {WAIT_OPTS},
	 cli_server_resize},
	{"server",
	 "rebuild",
	 "NAME|ID",
	 1,
	 "boot a stopped server afresh from an image: a new disk, the same name, address and "
	 "flavor",
	 {{"image", "IMAGE", "the image to boot (default: the one it has)"}},
	 cli_server_rebuild},
	{"server",
	 "clone",
	 "NAME|ID",
	 1,
	 "copy-on-write copies of a running (or paused) server, each a server of its own",
	 {{"count", "N", "how many (default 1, at most 100)"},
	  {"name-prefix", "P", "name them P-1, P-2, ... (default: the server's name)"},
	  WAIT_OPTS},
	 cli_server_clone},
	{"keypair",
	 "import",
	 "NAME",
	 1,
	 "import an OpenSSH public key as a key pair of your tenant",
	 {{"file", "PUB", "the public key file (e.g. ~/.ssh/id_ed25519.pub)"}},
	 cli_keypair_import},
	{"keypair", "list", "", 0, "list key pairs", {{0}}, cli_keypair_list},
	{"keypair", "show", "NAME", 1, "show one key pair", {{0}}, cli_keypair_show},
	{"keypair",
	 "delete",
	 "NAME",
	 1,
	 "delete a key pair (servers made with it keep their copy)",
	 {{0}},
	 cli_keypair_delete},
	{"console",
	 "",
	 "NAME|ID",
	 1,
	 "type on the server's serial console (Ctrl-] leaves; a piped stdin is sent)",
	 {{0}},
	 cli_console_attach},
	{"server",
	 "expose",
	 "NAME|ID HOST_PORT:GUEST_PORT[/udp]",
	 2,
	 "forward a host port to the server (tcp unless /udp; below 1024: operator)",
	 {{0}},
	 cli_server_expose},
	{"server",
	 "unexpose",
	 "NAME|ID HOST_PORT[/udp]",
	 2,
	 "remove the server's forward of that host port",
	 {{0}},
	 cli_server_unexpose},
	{"server",
	 "forwards",
	 "NAME|ID",
	 1,
	 "list the server's port forwards",
	 {{0}},
	 cli_server_forwards},
	{"quota",
	 "move",
	 "",
	 0,
	 "move quota from one tenant to another in one step (operator)",
	 {{"from", "TENANT", "the donor (keeps at least what it uses)"},
	  {"to", "TENANT", "the receiver"},
	  {"instances", "N", "instances"},
	  {"vcpus", "N", "vCPUs"},
	  {"ram", "MIB", "RAM in MiB"}},
	 cli_quota_move},
	{"server",
	 "image",
	 "NAME|ID IMAGE",
	 2,
	 "make IMAGE, a raw image of your tenant holding the server's disk as it is now "
	 "(a running server goes on)",
	 {WAIT_OPTS},
	 cli_server_image},
	{NULL, NULL, NULL, 0, NULL, {{0}}, NULL},
};
