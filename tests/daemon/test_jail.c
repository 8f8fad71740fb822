// SPDX-License-Identifier: MIT
/*
 * Every instance's VMM is jailed by default: seen from the host, through
 * /proc (the jailed VMM is its launcher's child, in a PID namespace of its
 * own), the instance directory and the cgroup file systems. Then what must
 * keep working around the jail: re-adoption after kill -9 of bunshind,
 * stop, delete (directory and cgroup gone), --no-jail.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dharness.h"

#define UID_BASE 100000 /* bunshind's default --uid-base (and --gid-base) */
#define MiB	 (1024ULL * 1024)

static struct dh h;

static void setup(void)
{
	dh_need_kvm();
	if (geteuid())
		cr_skip_test("the jail needs root (namespaces, pivot_root, setuid)");
	dh_start(&h, NULL);
}

static void teardown(void)
{
	dh_cleanup(&h);
}

TestSuite(jail, .init = setup, .fini = teardown, .timeout = 300);

/* Creates a running instance of flavor "j2" (2 vCPUs, 96 MiB); returns its id. */
static int64_t create_running(const char *name)
{
	char body[256];
	json_t *out;
	int64_t id;

	dh_req(&h, h.admin, "POST", "/v1/flavors", "{\"name\":\"j2\",\"vcpus\":2,\"ram_mib\":96}",
	       NULL);
	snprintf(body, sizeof(body), "{\"name\":\"%s\",\"flavor\":\"j2\",\"image\":\"test-guest\"}",
		 name);
	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/instances", body, &out), 201);
	id = json_integer_value(json_object_get(out, "id"));
	json_decref(out);
	cr_assert(id > 0);
	cr_assert_str_eq(dh_wait_state(&h, h.admin, name, "running", 30000), "running", "see %s",
			 h.log);
	return id;
}

/* The value of "Key:" in /proc/PID/status, tabs as spaces, or "". */
static const char *status_field(pid_t pid, const char *key)
{
	static char val[256];
	char path[64], line[512];
	FILE *f;

	val[0] = 0;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f)) {
		size_t kl = strlen(key);

		if (strncmp(line, key, kl) || line[kl] != ':')
			continue;
		snprintf(val, sizeof(val), "%s", line + kl + 1 + strspn(line + kl + 1, "\t "));
		val[strcspn(val, "\n")] = 0;
		for (char *p = val; *p; p++)
			*p = *p == '\t' ? ' ' : *p;
	}
	if (f)
		fclose(f);
	return val;
}

/* Whether pid ends within 2 s: the jailed VMM dies a moment after its launcher. */
static bool gone(pid_t pid)
{
	for (int i = 0; i < 200 && dh_alive(pid); i++)
		usleep(10000);
	return !dh_alive(pid);
}

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

/* A cgroup control file's number ("max": -1), or -2 when it cannot be read. */
static long long cg_read(const char *dir, const char *file)
{
	char path[1200], buf[64] = "";
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "r");
	if (!f)
		return -2;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	return strncmp(buf, "max", 3) ? atoll(buf) : -1;
}

/* pid's cgroup in the hierarchy of ctrl ("": v2), from /proc/PID/cgroup, or "". */
static const char *cg_of(pid_t pid, const char *ctrl)
{
	static char out[1024];
	char path[64], line[1024];
	FILE *f;

	out[0] = 0;
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f)) {
		char *c = strchr(line, ':'), *p = c ? strchr(c + 1, ':') : NULL;

		if (!p)
			continue;
		*p++ = 0;
		p[strcspn(p, "\n")] = 0;
		if (!strcmp(c + 1, ctrl))
			snprintf(out, sizeof(out), "%s", p);
	}
	if (f)
		fclose(f);
	return out;
}

static bool ends_with(const char *s, const char *tail)
{
	size_t a = strlen(s), b = strlen(tail);

	return a >= b && !strcmp(s + a - b, tail);
}

/*
 * The flavor's limits on the VMM's cgroup: CPU quota 2 x the period,
 * memory 96 MiB + the VMM's overhead (96 MiB + 2 MiB per vCPU), tasks
 * 2 + 64 (bunshin-vmm's defaults, src/vmm/sandbox/jail_args.c).
 */
static void expect_cgroup(pid_t vmm, int64_t id)
{
	const unsigned long long mem = 96 * MiB + 96 * MiB + 2 * 2 * MiB;
	char leaf[64], dir[1200];
	const char *p;

	snprintf(leaf, sizeof(leaf), "/%s/instance-%lld", h.cgparent, (long long)id);
	if (ends_with(p = cg_of(vmm, "memory"), leaf)) {
		fprintf(stderr, "jail: the instance's cgroup is v1: %s\n", p);
		snprintf(dir, sizeof(dir), "/sys/fs/cgroup/memory%s", p);
		cr_expect_eq(cg_read(dir, "memory.limit_in_bytes"), (long long)mem);
		snprintf(dir, sizeof(dir), "/sys/fs/cgroup/cpu%s", cg_of(vmm, "cpu"));
		cr_expect_eq(cg_read(dir, "cpu.cfs_quota_us"),
			     2 * cg_read(dir, "cpu.cfs_period_us"));
		snprintf(dir, sizeof(dir), "/sys/fs/cgroup/pids%s", cg_of(vmm, "pids"));
		cr_expect_eq(cg_read(dir, "pids.max"), 2 + 64);
		return;
	}
	if (ends_with(p = cg_of(vmm, ""), leaf)) {
		fprintf(stderr, "jail: the instance's cgroup is v2: %s\n", p);
		snprintf(dir, sizeof(dir), "/sys/fs/cgroup%s", p);
		if (cg_read(dir, "memory.max") == -2)
			snprintf(dir, sizeof(dir), "/sys/fs/cgroup/unified%s", p);
		cr_expect_eq(cg_read(dir, "memory.max"), (long long)mem);
		cr_expect_eq(cg_read(dir, "pids.max"), 2 + 64);
		return;
	}
	cr_skip_test("the VMM is in no cgroup of its own (%s): this host offers none with cpu,"
		     " memory and pids; see %s",
		     cg_of(vmm, ""), h.log);
}

Test(jail, vmm_runs_jailed_as_the_instance_user)
{
	int64_t id = create_running("j1");
	pid_t launcher = (pid_t)dh_instance_pid(&h, h.admin, "j1"), vmm;
	char uid[64], path[300], ns_vmm[64] = "", ns_self[64] = "", ns_launcher[64] = "";
	struct stat st;

	cr_assert(launcher > 0);
	vmm = dh_jailed_vmm(launcher);
	cr_assert(vmm > 0, "no jailed VMM under launcher %d", (int)launcher);
	snprintf(uid, sizeof(uid), "%lld %lld %lld %lld", UID_BASE + (long long)id,
		 UID_BASE + (long long)id, UID_BASE + (long long)id, UID_BASE + (long long)id);
	cr_expect_str_eq(status_field(vmm, "Uid"), uid);
	cr_expect_str_eq(status_field(vmm, "Gid"), uid);
	cr_expect_str_eq(status_field(vmm, "NoNewPrivs"), "1");
	cr_expect_str_eq(status_field(vmm, "Seccomp"), "2");
	cr_expect_str_eq(status_field(vmm, "CapEff"), "0000000000000000");
	cr_expect_str_eq(status_field(vmm, "CapPrm"), "0000000000000000");
	cr_expect_str_eq(status_field(vmm, "CapBnd"), "0000000000000000");
	cr_expect_str_eq(status_field(vmm, "Groups"), "");
	/* the launcher stays in our PID namespace; the VMM is init of its own */
	cr_expect(dh_other_pidns(vmm));
	cr_expect(!dh_other_pidns(launcher));
	snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)vmm);
	cr_assert_gt(readlink(path, ns_vmm, sizeof(ns_vmm) - 1), 0);
	snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)launcher);
	cr_assert_gt(readlink(path, ns_launcher, sizeof(ns_launcher) - 1), 0);
	cr_assert_gt(readlink("/proc/self/ns/pid", ns_self, sizeof(ns_self) - 1), 0);
	cr_expect_str_neq(ns_vmm, ns_self);
	cr_expect_str_eq(ns_launcher, ns_self);
	/* the console, written by the VMM as its user, read by bunshind from outside */
	cr_expect(console_has("j1", "name=serial-echo result=ready", 60000), "see %s", h.log);
	snprintf(path, sizeof(path), "%s/instances/%lld/console.log", h.dir, (long long)id);
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq(st.st_uid, UID_BASE + id);
	snprintf(path, sizeof(path), "%s/instances/%lld", h.dir, (long long)id);
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq(st.st_uid, UID_BASE + id);
	cr_expect_eq(st.st_mode & 0777, 0700);
	/* the kernel is a hard link to the image, not a copy */
	snprintf(path, sizeof(path), "%s/instances/%lld/kernel", h.dir, (long long)id);
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_geq(st.st_nlink, 2);
	cr_expect_eq(st.st_mode & 0777, 0644);
	expect_cgroup(vmm, id);
}

/* The NSpid line shows the VMM as pid 1 of its namespace: checked apart, it needs a new kernel. */
Test(jail, vmm_is_init_of_its_pid_namespace)
{
	pid_t launcher, vmm;
	const char *nspid;

	create_running("j1");
	launcher = (pid_t)dh_instance_pid(&h, h.admin, "j1");
	vmm = dh_jailed_vmm(launcher);
	cr_assert(vmm > 0);
	nspid = status_field(vmm, "NSpid");
	if (!*nspid)
		cr_skip_test("no NSpid line in /proc/PID/status on this kernel");
	cr_expect(ends_with(nspid, " 1"), "NSpid: %s", nspid);
}

static bool dir_exists(const char *path)
{
	struct stat st;

	return !stat(path, &st) && S_ISDIR(st.st_mode);
}

Test(jail, delete_removes_the_directory_and_the_cgroup)
{
	int64_t id = create_running("j1");
	pid_t launcher = (pid_t)dh_instance_pid(&h, h.admin, "j1"), vmm = dh_jailed_vmm(launcher);
	char inst[300], cg[1200], leaf[64];
	const char *p;

	cr_assert(vmm > 0);
	snprintf(inst, sizeof(inst), "%s/instances/%lld", h.dir, (long long)id);
	snprintf(leaf, sizeof(leaf), "/%s/instance-%lld", h.cgparent, (long long)id);
	if (ends_with(p = cg_of(vmm, "memory"), leaf))
		snprintf(cg, sizeof(cg), "/sys/fs/cgroup/memory%s", p);
	else if (ends_with(p = cg_of(vmm, ""), leaf))
		snprintf(cg, sizeof(cg), "/sys/fs/cgroup%s%s",
			 dir_exists("/sys/fs/cgroup/unified") ? "/unified" : "", p);
	else
		cg[0] = 0;
	cr_expect(!*cg || dir_exists(cg), "%s", cg);
	cr_assert_eq(dh_req(&h, h.admin, "DELETE", "/v1/instances/j1", NULL, NULL), 204);
	cr_expect(gone(launcher) && gone(vmm));
	cr_expect(!dir_exists(inst), "%s is still there", inst);
	if (!*cg)
		cr_skip_test("no cgroup per instance on this host; see %s", h.log);
	cr_expect(!dir_exists(cg), "%s is still there", cg);
	/* With no instance left, bunshind's exit removes their parent too. */
	*strrchr(cg, '/') = 0;
	cr_expect(dir_exists(cg), "%s", cg);
	cr_expect_eq(dh_term(&h), 0, "see %s", h.log);
	cr_expect(!dir_exists(cg), "%s is still there after bunshind's exit", cg);
}

/* Re-adoption finds the launcher only (the VMM has its command line too), then stops it. */
Test(jail, kill9_daemon_readopts_the_launcher)
{
	pid_t launcher, vmm, pids[8];
	int64_t id = create_running("j1");

	launcher = (pid_t)dh_instance_pid(&h, h.admin, "j1");
	vmm = dh_jailed_vmm(launcher);
	cr_assert(vmm > 0);
	dh_kill9(&h);
	dh_restart(&h, NULL);
	cr_expect_str_eq(dh_wait_state(&h, h.admin, "j1", "running", 10000), "running");
	cr_expect_eq(dh_instance_pid(&h, h.admin, "j1"), launcher);
	cr_expect_eq(dh_vmm_pids(&h, pids, 8), 1);
	cr_expect(dh_alive(vmm), "the re-adoption killed the jailed VMM %d", (int)vmm);
	cr_expect(console_has("j1", "name=serial-echo result=ready", 60000));
	/* paused and resumed through its API, whose socket is the jail's /api.sock */
	cr_expect_eq(dh_req(&h, h.admin, "POST", "/v1/instances/j1/actions",
			    "{\"action\":\"pause\"}", NULL),
		     200);
	cr_expect_str_eq(dh_wait_state(&h, h.admin, "j1", "paused", 5000), "paused");
	cr_expect_eq(dh_req(&h, h.admin, "POST", "/v1/instances/j1/actions",
			    "{\"action\":\"resume\"}", NULL),
		     200);
	cr_expect_eq(dh_req(&h, h.admin, "POST", "/v1/instances/j1/actions",
			    "{\"action\":\"stop\"}", NULL),
		     202);
	cr_expect_str_eq(dh_wait_state(&h, h.admin, "j1", "stopped", 20000), "stopped");
	cr_expect(gone(launcher) && gone(vmm));
	/* a stopped instance's launcher removed its cgroup; a start makes it again */
	cr_expect_eq(dh_req(&h, h.admin, "POST", "/v1/instances/j1/actions",
			    "{\"action\":\"start\"}", NULL),
		     200);
	cr_expect_str_eq(dh_wait_state(&h, h.admin, "j1", "running", 30000), "running");
	vmm = dh_jailed_vmm((pid_t)dh_instance_pid(&h, h.admin, "j1"));
	cr_assert(vmm > 0);
	expect_cgroup(vmm, id);
}

/* The VMM owns its directory: a link it plants there must not make bunshind read a host file. */
Test(jail, console_read_never_follows_a_planted_link)
{
	int64_t id = create_running("j1");
	char secret[300], link[300], path[128], *body = NULL;
	FILE *f;

	snprintf(secret, sizeof(secret), "%s.secret", h.dir);
	f = fopen(secret, "w");
	cr_assert_not_null(f);
	fputs("host-secret-4242\n", f);
	fclose(f);
	snprintf(link, sizeof(link), "%s/instances/%lld/console.log", h.dir, (long long)id);
	cr_assert_eq(unlink(link), 0);
	cr_assert_eq(symlink(secret, link), 0);
	snprintf(path, sizeof(path), "/v1/instances/j1/console");
	cr_expect_eq(dh_text(&h, h.admin, path, &body), 200);
	cr_expect(!body || !strstr(body, "host-secret"), "%s", body);
	free(body);
	unlink(secret);
}

static void setup_no_jail(void)
{
	dh_need_kvm();
	dh_start(&h, (const char *const[]){"--no-jail", NULL});
}

TestSuite(no_jail, .init = setup_no_jail, .fini = teardown, .timeout = 300);

/* For debugging: today's VMM, unjailed, as root; supervised and re-adopted as ever. */
Test(no_jail, runs_the_vmm_as_root)
{
	pid_t pid, pids[8];

	dh_req(&h, h.admin, "POST", "/v1/flavors", "{\"name\":\"j2\",\"vcpus\":2,\"ram_mib\":96}",
	       NULL);
	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/instances",
			    "{\"name\":\"n1\",\"flavor\":\"j2\",\"image\":\"test-guest\"}", NULL),
		     201);
	cr_assert_str_eq(dh_wait_state(&h, h.admin, "n1", "running", 30000), "running");
	pid = (pid_t)dh_instance_pid(&h, h.admin, "n1");
	cr_expect_str_eq(status_field(pid, "Uid"), "0 0 0 0");
	cr_expect(!dh_other_pidns(pid));
	cr_expect_eq(dh_vmm_pids(&h, pids, 8), 1);
	cr_expect(console_has("n1", "name=serial-echo result=ready", 60000));
	dh_kill9(&h);
	dh_restart(&h, (const char *const[]){"--no-jail", NULL});
	cr_expect_eq(dh_instance_pid(&h, h.admin, "n1"), pid);
	cr_expect_eq(dh_req(&h, h.admin, "DELETE", "/v1/instances/n1", NULL, NULL), 204);
	cr_expect(!dh_alive(pid));
}

/* Nor may a link planted in place of its API socket lead bunshind's requests elsewhere. */
Test(jail, api_calls_never_follow_a_planted_link)
{
	int64_t id = create_running("j1");
	char sock[300], moved[300];

	snprintf(sock, sizeof(sock), "%s/instances/%lld/api.sock", h.dir, (long long)id);
	snprintf(moved, sizeof(moved), "%s/instances/%lld/elsewhere.sock", h.dir, (long long)id);
	/* booted, so that a pause is refused for the link alone */
	cr_assert(console_has("j1", "name=serial-echo result=ready", 60000));
	cr_assert_eq(rename(sock, moved), 0);
	cr_assert_eq(symlink(moved, sock), 0);
	cr_expect_eq(dh_req(&h, h.admin, "POST", "/v1/instances/j1/actions",
			    "{\"action\":\"pause\"}", NULL),
		     502);
	cr_assert_eq(unlink(sock), 0);
	cr_assert_eq(rename(moved, sock), 0);
	cr_expect_eq(dh_req(&h, h.admin, "POST", "/v1/instances/j1/actions",
			    "{\"action\":\"pause\"}", NULL),
		     200);
}

static bool log_has(const char *text)
{
	char line[1024];
	FILE *f = fopen(h.log, "r");
	bool found = false;

	while (f && !found && fgets(line, sizeof(line), f))
		found = strstr(line, text) != NULL;
	if (f)
		fclose(f);
	return found;
}

/* Instances on another file system than the images: the kernel is copied, and the log says so. */
Test(jail, kernel_copied_when_it_cannot_be_linked)
{
	char inst[300], kernel[350];
	struct stat st;
	int64_t id;

	snprintf(inst, sizeof(inst), "%s/instances", h.dir);
	if (mount("tmpfs", inst, "tmpfs", 0, "mode=0700,size=64m"))
		cr_skip_test("cannot mount a tmpfs on %s: %s", inst, strerror(errno));
	id = create_running("j1");
	snprintf(kernel, sizeof(kernel), "%s/%lld/kernel", inst, (long long)id);
	cr_expect_eq(stat(kernel, &st), 0);
	cr_expect_eq(st.st_nlink, 1);
	cr_expect(log_has("copying it"), "see %s", h.log);
	cr_expect(console_has("j1", "name=serial-echo result=ready", 60000));
	cr_expect_eq(dh_req(&h, h.admin, "DELETE", "/v1/instances/j1", NULL, NULL), 204);
	cr_expect_eq(umount2(inst, MNT_DETACH), 0);
}

/* Hostile sandbox options: one clear line, exit status 2, nothing started. */
Test(options, bad_sandbox_options_are_refused)
{
	static const char *const bad[][2] = {
		{"--uid-base 0", "--uid-base: '0'"},
		{"--gid-base x", "--gid-base: 'x'"},
		{"--uid-base 99999999999", "--uid-base"},
		{"--cgroup-parent ''", "--cgroup-parent"},
		{"--cgroup-parent a/../b", "--cgroup-parent"},
	};
	char cmd[512], out[512];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		FILE *p;
		size_t n;

		snprintf(cmd, sizeof(cmd), "'%s' --state-dir /nonexistent/x %s 2>&1",
			 getenv("BUNSHIND"), bad[i][0]);
		p = popen(cmd, "r");
		cr_assert_not_null(p);
		n = fread(out, 1, sizeof(out) - 1, p);
		out[n] = 0;
		cr_expect_eq(pclose(p), 2 << 8, "%s: %s", bad[i][0], out);
		cr_expect(strstr(out, bad[i][1]) && strchr(out, '\n') == out + n - 1, "%s: %s",
			  bad[i][0], out);
	}
}
