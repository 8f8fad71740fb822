// SPDX-License-Identifier: MIT
/*
 * POST /v1/instances/ID/clone against a real bunshind with real jailed
 * VMMs. The source runs the test guest's test=vmgenid scenario, which
 * prints its VM generation ID at boot and again whenever the VMM
 * announces a new one: each clone's own console shows a new one (its
 * guest runs on after the restore and knows it is a copy), the source's
 * does not. Clones are first-class instances: their own port, jail, uid
 * and VMM, memory shared copy-on-write with their siblings, counted in
 * the quota, deletable on their own, re-adopted after kill -9 of bunshind;
 * unjailed (--no-jail) too.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dharness.h"

#define GENID_CMDLINE "test=vmgenid vmgenid_ms=600000"

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

TestSuite(clone, .init = setup, .fini = teardown, .timeout = 400);

/* A public image of the test guest that prints its generation ID. */
static void genid_image(void)
{
	char body[512];
	json_t *out = NULL;
	int st;

	snprintf(body, sizeof(body),
		 "{\"name\":\"genid\",\"path\":\"%s\",\"kind\":\"kernel\",\"cmdline\":\"%s\"}",
		 getenv("BUNSHIN_GUEST_ELF"), GENID_CMDLINE);
	st = dh_req(&h, h.admin, "POST", "/v1/images", body, &out);
	cr_assert_eq(st, 201, "%s", out ? json_dumps(out, 0) : "");
	json_decref(out);
}

static json_t *show(const char *token, const char *ref)
{
	char path[128];
	json_t *out = NULL;
	int st;

	snprintf(path, sizeof(path), "/v1/instances/%s", ref);
	st = dh_req(&h, token, "GET", path, NULL, &out);
	cr_assert_eq(st, 200, "%s: %d", ref, st);
	return out;
}

/* The instance's error, for a failure's message (static buffer). */
static const char *error_of(const char *ref)
{
	static char e[1024];
	char path[128];
	json_t *out = NULL;

	snprintf(path, sizeof(path), "/v1/instances/%s", ref);
	dh_req(&h, h.admin, "GET", path, NULL, &out);
	snprintf(e, sizeof(e), "%s", json_string_value(json_object_get(out, "error")) ?: "");
	json_decref(out);
	return e;
}

static void create(const char *token, const char *name)
{
	char body[256];
	json_t *out = NULL;
	int st;

	snprintf(body, sizeof(body), "{\"name\":\"%s\",\"flavor\":\"tiny\",\"image\":\"genid\"}",
		 name);
	st = dh_req(&h, token, "POST", "/v1/instances", body, &out);
	cr_assert_eq(st, 201, "%s", out ? json_dumps(out, 0) : "");
	json_decref(out);
	cr_assert_str_eq(dh_wait_state(&h, token, name, "running", 60000), "running", "%s: %s",
			 name, error_of(name));
}

static int clone_req(const char *token, const char *ref, const char *body, json_t **out)
{
	char path[128];

	snprintf(path, sizeof(path), "/v1/instances/%s/clone", ref);
	return dh_req(&h, token, "POST", path, body, out);
}

/* The line of the console holding needle, once it is there (up to ms): malloc'd or NULL. */
static char *console_line(const char *token, const char *ref, const char *needle, int ms)
{
	char path[128];

	snprintf(path, sizeof(path), "/v1/instances/%s/console", ref);
	for (int t = 0; t < ms; t += 200) {
		char *text = NULL, *p, *line = NULL;

		if (dh_text(&h, token, path, &text) == 200 && (p = strstr(text, needle))) {
			while (p > text && p[-1] != '\n')
				p--;
			line = strndup(p, strcspn(p, "\n"));
		}
		free(text);
		if (line)
			return line;
		usleep(200000);
	}
	return NULL;
}

/* The guid=... word of a vmgenid line (static buffer). */
static const char *guid_of(const char *line)
{
	static char g[40];
	const char *p = line ? strstr(line, "guid=") : NULL;

	snprintf(g, sizeof(g), "%.32s", p ? p + 5 : "");
	return g;
}

static int instance_count(const char *token)
{
	json_t *out = NULL;
	int n;

	cr_assert_eq(dh_req(&h, token, "GET", "/v1/instances", NULL, &out), 200);
	n = (int)json_array_size(out);
	json_decref(out);
	return n;
}

/* Entries of STATE/instances: one directory per instance that has files. */
static int instance_dirs(void)
{
	char path[256];
	struct dirent *e;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "%s/instances", h.dir);
	d = opendir(path);
	cr_assert_not_null(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* Private_Dirty and Pss (kB) of a process, from smaps_rollup. */
static void rollup_kb(pid_t pid, long *priv, long *pss)
{
	char path[64], line[256];
	FILE *f;

	*priv = *pss = -1;
	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	f = fopen(path, "r");
	cr_assert_not_null(f, "%s", path);
	while (fgets(line, sizeof(line), f)) {
		sscanf(line, "Private_Dirty: %ld kB", priv);
		sscanf(line, "Pss: %ld kB", pss);
	}
	fclose(f);
}

#define CLONE_MEMORY "snapshot/memory"

/* Whether the process maps a file whose path ends so (its guest memory, for a clone). */
static bool maps_has(pid_t pid, const char *tail)
{
	char path[64], line[512];
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "r");
	cr_assert_not_null(f, "%s", path);
	while (!found && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		found = strlen(line) >= strlen(tail) &&
			!strcmp(line + strlen(line) - strlen(tail), tail);
	}
	fclose(f);
	return found;
}

static void instance_dir(const json_t *inst, char *out, size_t size)
{
	snprintf(out, size, "%s/instances/%lld", h.dir,
		 (long long)json_integer_value(json_object_get(inst, "id")));
}

Test(clone, three_clones_run_with_their_own_identity)
{
	const char *names[] = {"web1-1", "web1-2", "web1-3"};
	char *src_ready, *line, guids[3][40], dir[256], path[300];
	json_t *out = NULL, *src, *cl[3];
	int64_t src_id;
	struct stat st;
	int st_code;

	genid_image();
	create(h.admin, "web1");
	src_ready = console_line(h.admin, "web1", "name=vmgenid result=ready", 60000);
	cr_assert_not_null(src_ready, "the source guest did not print its generation ID");
	src = show(h.admin, "web1");
	src_id = json_integer_value(json_object_get(src, "id"));

	st_code = clone_req(h.admin, "web1", "{\"count\":3}", &out);
	cr_assert_eq(st_code, 201, "%s", out ? json_dumps(out, 0) : "");
	cr_expect_eq(json_integer_value(json_object_get(out, "source")), src_id);
	cr_assert_eq(json_array_size(json_object_get(out, "clones")), 3);
	json_decref(out);

	for (int i = 0; i < 3; i++) {
		cr_assert_str_eq(dh_wait_state(&h, h.admin, names[i], "running", 60000), "running",
				 "%s: %s", names[i], error_of(names[i]));
		cl[i] = show(h.admin, names[i]);
		cr_expect_eq(json_integer_value(json_object_get(cl[i], "cloned_from")), src_id);
		/* Its guest ran on from the snapshot and was told it is a copy. */
		line = console_line(h.admin, names[i], "name=vmgenid result=changed", 60000);
		cr_assert_not_null(line, "%s: no new generation ID on its console", names[i]);
		snprintf(guids[i], sizeof(guids[i]), "%s", guid_of(line));
		cr_expect_neq(strlen(guids[i]), 0);
		cr_expect_str_neq(guids[i], guid_of(src_ready));
		free(line);
		/* its own port, jail and VMM */
		cr_expect_str_neq(
			json_string_value(json_object_get(json_object_get(cl[i], "port"), "ip")),
			json_string_value(json_object_get(json_object_get(src, "port"), "ip")));
		cr_expect_str_neq(
			json_string_value(json_object_get(json_object_get(cl[i], "port"), "mac")),
			json_string_value(json_object_get(json_object_get(src, "port"), "mac")));
		cr_expect_neq(json_integer_value(json_object_get(cl[i], "pid")),
			      json_integer_value(json_object_get(src, "pid")));
		instance_dir(cl[i], dir, sizeof(dir));
		snprintf(path, sizeof(path), "%s/snapshot/memory", dir);
		cr_expect_eq(stat(path, &st), 0, "%s", path);
		/* one inode for the three clones, read-only and root's */
		cr_expect_eq(st.st_nlink, 3, "%s has %ld links", path, (long)st.st_nlink);
		cr_expect_eq(st.st_uid, 0);
		cr_expect_eq(st.st_mode & 0222, 0);
		cr_expect_eq(stat(dir, &st), 0);
		cr_expect_neq(st.st_uid, 0, "the clone's jail is its own user's");
	}
	for (int i = 0; i < 3; i++)
		for (int j = i + 1; j < 3; j++)
			cr_expect_str_neq(guids[i], guids[j]);
	for (int i = 0; i < 3; i++)
		for (int j = i + 1; j < 3; j++)
			cr_expect_str_neq(json_string_value(json_object_get(
						  json_object_get(cl[i], "port"), "ip")),
					  json_string_value(json_object_get(
						  json_object_get(cl[j], "port"), "ip")));
	/* The source runs on, its generation unchanged, its snapshot gone from its jail. */
	cr_expect_str_eq(dh_wait_state(&h, h.admin, "web1", "running", 1000), "running");
	cr_expect(dh_alive((pid_t)dh_instance_pid(&h, h.admin, "web1")));
	line = console_line(h.admin, "web1", "result=changed", 1000);
	cr_expect_null(line, "the source was told it changed: %s", line);
	free(line);
	instance_dir(src, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/clone-%lld", dir,
		 (long long)json_integer_value(json_object_get(cl[0], "id")));
	cr_expect_neq(stat(path, &st), 0, "%s is left in the source's jail", path);
	cr_expect_eq(instance_count(h.admin), 4);

	/* Memory: each clone's VMM owns little of its 64 MiB, the rest is the shared file. */
	for (int i = 0; i < 3; i++) {
		pid_t launcher = (pid_t)json_integer_value(json_object_get(cl[i], "pid"));
		pid_t vmm = dh_jailed_vmm(launcher);
		long priv, pss;

		cr_assert_gt(vmm, 0, "%s: no jailed VMM under %d", names[i], (int)launcher);
		rollup_kb(vmm, &priv, &pss);
		cr_log_info("%s: VMM %d Private_Dirty %ld kB, Pss %ld kB (RAM 65536 kB)", names[i],
			    (int)vmm, priv, pss);
		cr_expect(priv >= 0 && priv < 32 * 1024, "%s: Private_Dirty %ld kB", names[i],
			  priv);
		cr_expect(maps_has(vmm, CLONE_MEMORY), "%s: no mapping of the snapshot's memory",
			  names[i]);
	}
	/* the audit log names each clone's source */
	cr_assert_eq(dh_req(&h, h.admin, "GET", "/v1/instances/web1-2/events", NULL, &out), 200);
	cr_expect(strstr(json_dumps(out, 0), "cloned from instance"), "%s", json_dumps(out, 0));
	json_decref(out);
	for (int i = 0; i < 3; i++)
		json_decref(cl[i]);
	json_decref(src);
	free(src_ready);
}

Test(clone, quota_and_bad_input)
{
	char member[128], viewer[128], other[128];
	json_t *out = NULL;
	int n0;

	genid_image();
	dh_tenant_user(&h, "team", "alice", "member", member, sizeof(member));
	dh_tenant_user(&h, "rivals", "bob", "member", other, sizeof(other));
	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/users",
			    "{\"name\":\"vera\",\"tenant\":\"team\",\"role\":\"viewer\"}", NULL),
		     201);
	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/tokens", "{\"user\":\"vera\"}", &out), 201);
	snprintf(viewer, sizeof(viewer), "%s", json_string_value(json_object_get(out, "token")));
	json_decref(out);
	cr_assert_eq(
		dh_req(&h, h.admin, "PUT", "/v1/tenants/team/quota", "{\"instances\":3}", NULL),
		200);
	create(member, "db");
	n0 = instance_count(member);

	/* over the quota: 409 naming it, nothing created */
	cr_expect_eq(clone_req(member, "db", "{\"count\":3}", &out), 409);
	cr_expect_str_eq(dh_code(out), "quota_exceeded");
	cr_expect(strstr(json_dumps(out, 0), "instances"), "%s", json_dumps(out, 0));
	json_decref(out);
	cr_expect_eq(instance_count(member), n0);
	cr_expect_eq(instance_count(h.admin), n0);

	/* bad input */
	cr_expect_eq(clone_req(member, "db", "{\"count\":0}", &out), 400);
	cr_expect_str_eq(json_string_value(json_object_get(json_object_get(out, "error"), "field")),
			 "count", "%s", json_dumps(out, 0));
	json_decref(out);
	cr_expect_eq(clone_req(member, "db", "{\"count\":1000}", NULL), 400);
	cr_expect_eq(clone_req(member, "db", "{\"count\":-1}", NULL), 400);
	cr_expect_eq(clone_req(member, "db", "{\"count\":\"2\"}", NULL), 400);
	cr_expect_eq(clone_req(member, "db", "{\"count\":1,\"extra\":1}", NULL), 400);
	cr_expect_eq(clone_req(member, "db", "{\"name_prefix\":\"bad name\"}", NULL), 400);
	cr_expect_eq(clone_req(member, "db", "{\"name_prefix\":7}", NULL), 400);
	cr_expect_eq(clone_req(member, "db", "[1]", NULL), 400);
	cr_expect_eq(clone_req(member, "nosuch", "{\"count\":1}", NULL), 404);
	cr_expect_eq(clone_req(other, "db", "{\"count\":1}", NULL), 404);
	cr_expect_eq(clone_req(viewer, "db", "{\"count\":1}", NULL), 403);
	cr_expect_eq(instance_count(member), n0);

	/* within the quota, with a prefix; a name taken: 409, nothing created */
	cr_expect_eq(clone_req(member, "db", "{\"count\":1,\"name_prefix\":\"db\"}", &out), 201,
		     "%s", out ? json_dumps(out, 0) : "");
	json_decref(out);
	cr_expect_eq(clone_req(member, "db", "{\"count\":1,\"name_prefix\":\"db\"}", &out), 409);
	cr_expect_str_eq(dh_code(out), "conflict");
	json_decref(out);
	cr_expect_eq(instance_count(member), n0 + 1);
	cr_expect_str_eq(dh_wait_state(&h, member, "db-1", "running", 60000), "running", "%s",
			 error_of("db-1"));

	/* the source's VMM out of reach: 502, and the clones' rows and files are gone */
	{
		json_t *db = show(member, "db");
		char dir[256], sock[300], moved[300];

		instance_dir(db, dir, sizeof(dir));
		snprintf(sock, sizeof(sock), "%s/api.sock", dir);
		snprintf(moved, sizeof(moved), "%s/api.sock.moved", dir);
		cr_assert_eq(rename(sock, moved), 0);
		cr_expect_eq(
			clone_req(member, "db", "{\"count\":1,\"name_prefix\":\"gone\"}", &out),
			502);
		cr_expect_str_eq(dh_code(out), "vmm_error");
		json_decref(out);
		cr_assert_eq(rename(moved, sock), 0);
		cr_expect_eq(instance_count(member), n0 + 1);
		cr_expect_eq(dh_req(&h, member, "GET", "/v1/instances/gone-1", NULL, NULL), 404);
		cr_expect_eq(instance_dirs(), n0 + 1);
		json_decref(db);
	}

	/* a stopped instance cannot be cloned */
	cr_expect_eq(dh_req(&h, member, "POST", "/v1/instances/db/actions", "{\"action\":\"stop\"}",
			    NULL),
		     202);
	cr_assert_str_eq(dh_wait_state(&h, member, "db", "stopped", 30000), "stopped");
	cr_expect_eq(clone_req(member, "db", "{\"count\":1,\"name_prefix\":\"x\"}", &out), 409);
	cr_expect_str_eq(dh_code(out), "conflict");
	json_decref(out);
	cr_expect_eq(instance_count(member), n0 + 1);
}

Test(clone, delete_stop_start_and_readopt)
{
	pid_t before[8], after[8];
	char dir[256], path[300];
	json_t *out = NULL, *c1, *c2;
	struct stat st;
	int nb, na;

	genid_image();
	create(h.admin, "app");
	cr_assert_not_null(console_line(h.admin, "app", "result=ready", 60000));
	cr_assert_eq(clone_req(h.admin, "app", "{\"count\":3,\"name_prefix\":\"c\"}", &out), 201,
		     "%s", out ? json_dumps(out, 0) : "");
	json_decref(out);
	for (int i = 1; i <= 3; i++) {
		char name[8];

		snprintf(name, sizeof(name), "c-%d", i);
		cr_assert_str_eq(dh_wait_state(&h, h.admin, name, "running", 60000), "running",
				 "%s: %s", name, error_of(name));
	}
	c1 = show(h.admin, "c-1");
	c2 = show(h.admin, "c-2");

	/* delete one: its files go, the others and the source run on */
	cr_assert_eq(dh_req(&h, h.admin, "DELETE", "/v1/instances/c-1", NULL, NULL), 204);
	instance_dir(c1, dir, sizeof(dir));
	cr_expect_neq(stat(dir, &st), 0, "%s is left", dir);
	instance_dir(c2, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/snapshot/memory", dir);
	cr_expect_eq(stat(path, &st), 0);
	cr_expect_eq(st.st_nlink, 2, "the snapshot has %ld links", (long)st.st_nlink);
	cr_expect(dh_alive((pid_t)dh_instance_pid(&h, h.admin, "c-2")));
	cr_expect(dh_alive((pid_t)dh_instance_pid(&h, h.admin, "c-3")));
	cr_expect(dh_alive((pid_t)dh_instance_pid(&h, h.admin, "app")));

	/* stopped and started again: a cold boot of the image, by its own VMM */
	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/instances/c-3/actions",
			    "{\"action\":\"stop\"}", NULL),
		     202);
	cr_assert_str_eq(dh_wait_state(&h, h.admin, "c-3", "stopped", 30000), "stopped");
	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/instances/c-3/actions",
			    "{\"action\":\"start\"}", NULL),
		     200);
	cr_assert_str_eq(dh_wait_state(&h, h.admin, "c-3", "running", 60000), "running");
	cr_expect_not_null(console_line(h.admin, "c-3", "name=vmgenid result=ready", 60000),
			   "c-3 did not boot again");

	/* kill -9 of bunshind: every VMM re-adopted, none duplicated */
	nb = dh_vmm_pids(&h, before, 8);
	cr_expect_eq(nb, 3, "VMMs before: %d", nb);
	dh_kill9(&h);
	dh_restart(&h, NULL);
	cr_expect_str_eq(dh_wait_state(&h, h.admin, "c-2", "running", 10000), "running");
	cr_expect_str_eq(dh_wait_state(&h, h.admin, "c-3", "running", 10000), "running");
	cr_expect_str_eq(dh_wait_state(&h, h.admin, "app", "running", 10000), "running");
	na = dh_vmm_pids(&h, after, 8);
	cr_expect_eq(na, nb, "VMMs after the restart: %d, before: %d", na, nb);
	for (int i = 0; i < nb; i++) {
		bool found = false;

		for (int j = 0; j < na; j++)
			found = found || after[j] == before[i];
		cr_expect(found, "VMM %d was not kept", (int)before[i]);
	}
	cr_expect_eq(instance_count(h.admin), 3);
	json_decref(c1);
	json_decref(c2);
	c2 = show(h.admin, "c-2");
	c1 = show(h.admin, "app");
	cr_expect_eq(json_integer_value(json_object_get(c2, "cloned_from")),
		     json_integer_value(json_object_get(c1, "id")));
	/* the re-adopted clone is still deletable on its own */
	cr_expect_eq(dh_req(&h, h.admin, "DELETE", "/v1/instances/c-2", NULL, NULL), 204);
	cr_expect(dh_alive((pid_t)dh_instance_pid(&h, h.admin, "app")));
	/* a snapshot a killed bunshind left in the source's jail goes with the source */
	instance_dir(c1, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/clone-999", dir);
	cr_assert_eq(mkdir(path, 0700), 0, "%s", path);
	snprintf(path, sizeof(path), "%s/clone-999/memory", dir);
	cr_assert_eq(close(open(path, O_WRONLY | O_CREAT, 0600)), 0);
	cr_expect_eq(dh_req(&h, h.admin, "DELETE", "/v1/instances/app", NULL, NULL), 204);
	cr_expect_neq(stat(dir, &st), 0, "%s is left", dir);
	json_decref(c1);
	json_decref(c2);
}

static char cli_out[65536];

/* bunshin with these arguments (NULL-terminated) as admin; stdout into cli_out. */
static int cli(const char *arg, ...)
{
	const char *argv[24] = {getenv("BUNSHIN_CLI"), arg};
	int n = 2, fds[2], st = 0;
	size_t len = 0;
	ssize_t r;
	va_list ap;
	pid_t pid;

	va_start(ap, arg);
	while (n < 23 && (argv[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
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
		execv(argv[0], (char **)argv);
		_exit(127);
	}
	close(fds[1]);
	while ((r = read(fds[0], cli_out + len, sizeof(cli_out) - 1 - len)) > 0)
		len += (size_t)r;
	cli_out[len] = 0;
	close(fds[0]);
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(clone, cli_paused_source_and_restart_policy)
{
	char body[256];
	json_t *out = NULL;
	pid_t old;

	genid_image();
	cr_expect_eq(cli("server", "clone", "--help", NULL), 0);
	cr_expect(strstr(cli_out, "--count") && strstr(cli_out, "--name-prefix"), "%s", cli_out);
	cr_expect(strstr(cli_out, "--wait"));
	cr_expect_eq(cli("server", "clone", NULL), 2);
	cr_expect_eq(cli("server", "clone", "x", "--count", "0", NULL), 2);
	cr_expect_eq(cli("server", "clone", "x", "--count", "two", NULL), 2);
	cr_expect_eq(cli("server", "clone", "nosuch", NULL), 3);

	snprintf(body, sizeof(body),
		 "{\"name\":\"pol\",\"flavor\":\"tiny\",\"image\":\"genid\","
		 "\"restart_policy\":\"always\"}");
	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/instances", body, NULL), 201);
	cr_assert_str_eq(dh_wait_state(&h, h.admin, "pol", "running", 60000), "running");
	cr_assert_not_null(console_line(h.admin, "pol", "result=ready", 60000));
	cr_expect_eq(cli("server", "clone", "pol", "--count", "200", NULL), 1, "%s", cli_out);

	/* a paused source may be cloned: it stays paused, the clones run */
	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/instances/pol/actions",
			    "{\"action\":\"pause\"}", NULL),
		     200);
	cr_assert_eq(cli("server", "clone", "pol", "--count", "2", "--name-prefix", "k", "--wait",
			 "--timeout", "60", NULL),
		     0, "%s", cli_out);
	cr_expect(strstr(cli_out, "k-1") && strstr(cli_out, "k-2"), "%s", cli_out);
	cr_expect_str_eq(dh_wait_state(&h, h.admin, "k-1", "running", 1000), "running");
	cr_expect_str_eq(dh_wait_state(&h, h.admin, "k-2", "running", 1000), "running");
	cr_expect_str_eq(dh_wait_state(&h, h.admin, "pol", "paused", 1000), "paused");
	cr_expect_not_null(console_line(h.admin, "k-1", "result=changed", 60000));
	cr_expect_eq(cli("server", "show", "k-1", NULL), 0);
	cr_expect(strstr(cli_out, "cloned_from"), "%s", cli_out);

	/* its restart policy is its source's, and applies: a cold boot */
	cr_assert_eq(dh_req(&h, h.admin, "GET", "/v1/instances/k-2", NULL, &out), 200);
	cr_expect_str_eq(json_string_value(json_object_get(out, "restart_policy")), "always");
	old = (pid_t)json_integer_value(json_object_get(out, "pid"));
	json_decref(out);
	cr_assert_gt(old, 0);
	kill(old, SIGKILL);
	for (int t = 0; t < 300 && dh_instance_pid(&h, h.admin, "k-2") == old; t++)
		usleep(100000);
	cr_expect_str_eq(dh_wait_state(&h, h.admin, "k-2", "running", 60000), "running", "%s",
			 error_of("k-2"));
	cr_expect_neq(dh_instance_pid(&h, h.admin, "k-2"), old);
	cr_expect_not_null(console_line(h.admin, "k-2", "name=vmgenid result=ready", 60000),
			   "k-2 was not booted again");
}

/* Unjailed VMMs (--no-jail): the snapshot and the restore take host paths. */
Test(clone, unjailed)
{
	const char *extra[] = {"--no-jail", NULL};
	json_t *out = NULL;
	char *line;

	dh_cleanup(&h); /* the suite's daemon, jailed: this test's own instead */
	dh_start(&h, extra);
	genid_image();
	create(h.admin, "nj");
	cr_assert_not_null(console_line(h.admin, "nj", "result=ready", 60000));
	cr_assert_eq(clone_req(h.admin, "nj", "{\"count\":2}", &out), 201, "%s",
		     out ? json_dumps(out, 0) : "");
	json_decref(out);
	for (int i = 1; i <= 2; i++) {
		char name[8];

		snprintf(name, sizeof(name), "nj-%d", i);
		cr_assert_str_eq(dh_wait_state(&h, h.admin, name, "running", 60000), "running",
				 "%s: %s", name, error_of(name));
		line = console_line(h.admin, name, "name=vmgenid result=changed", 60000);
		cr_expect_not_null(line, "%s: no new generation ID", name);
		free(line);
	}
	cr_expect_str_eq(dh_wait_state(&h, h.admin, "nj", "running", 1000), "running");
}
