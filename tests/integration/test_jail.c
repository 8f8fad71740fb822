// SPDX-License-Identifier: MIT
/*
 * The jail (--jail DIR --uid U --gid G [--netns] [--cgroup]): the jailed
 * VMM is unprivileged, in namespaces of its own, rooted in DIR, limited by
 * its cgroup, and still runs the guest with a disk, a serial log and a
 * network device. Needs root (the tests make the jail directory, a tap
 * owned by U and a network namespace); skipped with the reason otherwise.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define JAIL_UID  64123
#define JAIL_GID  64124
#define JAIL_UIDS "64123"
#define JAIL_GIDS "64124"
#define GUEST_IP  "10.0.2.15"
#define HOST_IP	  "10.0.2.1"

/* The first words of every jailed VMM's command line. */
#define JAILED_VMM "vmm", "--jail", jail, "--uid", JAIL_UIDS, "--gid", JAIL_GIDS

static char jail[64];
static char cgname[64];

static void jail_path(char *out, size_t len, const char *rel)
{
	snprintf(out, len, "%s/%s", jail, rel);
}

static void copy_file(const char *from, const char *to)
{
	char buf[65536];
	int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ssize_t n;

	cr_assert(in >= 0 && out >= 0, "copying %s to %s: %s", from, to, strerror(errno));
	while ((n = read(in, buf, sizeof(buf))) > 0)
		cr_assert_eq(write(out, buf, n), n);
	close(in);
	close(out);
	cr_assert_eq(chown(to, JAIL_UID, JAIL_GID), 0);
}

/* A jail directory owned by U with the guest in it. */
static void setup(void)
{
	char path[128];

	if (geteuid())
		cr_skip_test("skipped: the jail needs root (namespaces, pivot_root, setuid)");
	harness_require_kvm();
	harness_tmpdir(jail, sizeof(jail), "jail");
	cr_assert_eq(chmod(jail, 0755), 0);
	cr_assert_eq(chown(jail, JAIL_UID, JAIL_GID), 0);
	jail_path(path, sizeof(path), "guest.elf");
	copy_file(harness_guest("elf"), path);
	snprintf(cgname, sizeof(cgname), "bunshin-jail-test-%d", (int)getpid());
}

static void teardown(void)
{
	if (jail[0])
		harness_rm_rf(jail);
}

TestSuite(jail, .init = setup, .fini = teardown, .timeout = 120);

/* What this host cannot do is a skip with the reason, not a failure. */
static void skip_if_unsupported(const char *err)
{
	if (strstr(err, "this kernel has no openat2()"))
		cr_skip_test(
			"skipped: the kernel has no openat2() (5.6+) for the jail's path checks");
	if (strstr(err, "--cgroup: no cgroup v2 hierarchy offering"))
		cr_skip_test("skipped: no cgroup hierarchy with cpu, memory and pids here");
}

/* ---- what /proc says about the jailed VMM ---- */

/* The launcher forks once: the jailed VMM is its only child. */
static int jailed_pid(int launcher)
{
	char path[300], val[32];
	struct dirent *e;
	int found = -1;
	DIR *d = opendir("/proc");

	while (d && found < 0 && (e = readdir(d))) {
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/status", e->d_name);
		harness_status_field(path, "PPid", val, sizeof(val));
		if (atoi(val) == launcher)
			found = atoi(e->d_name);
	}
	if (d)
		closedir(d);
	return found;
}

struct sample {
	int pid;
	char uid[64], gid[64], groups[64], cap_eff[32], cap_prm[32], cap_bnd[32], cap_inh[32],
		cap_amb[32], no_new_privs[8], seccomp[8];
	bool ns_differs[4]; /* pid, mnt, ipc, uts */
	bool net_same;
	char cgroup[512];  /* /proc/PID/cgroup */
	char limits[1024]; /* GET /vm/limits, when the VM has --api-sock /api.sock */
};

static bool same_ns(int pid, const char *ns)
{
	char a[64], b[64], la[64] = "", lb[64] = "";

	snprintf(a, sizeof(a), "/proc/%d/ns/%s", pid, ns);
	snprintf(b, sizeof(b), "/proc/self/ns/%s", ns);
	if (readlink(a, la, sizeof(la) - 1) < 0 || readlink(b, lb, sizeof(lb) - 1) < 0)
		return false;
	return !strcmp(la, lb);
}

static void read_small(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, len - 1, f) : 0;

	buf[n] = 0;
	if (f)
		fclose(f);
}

static void api_limits(struct sample *s)
{
	static const char req[] = "GET /vm/limits HTTP/1.0\r\nHost: vm\r\n\r\n";
	char path[128];
	size_t len = 0;
	int fd;

	jail_path(path, sizeof(path), "api.sock");
	fd = harness_unix_connect(path, 0);
	if (fd < 0)
		return;
	if (write(fd, req, sizeof(req) - 1) == (ssize_t)sizeof(req) - 1)
		harness_read_until(fd, s->limits, sizeof(s->limits), &len, "}}", 5000);
	close(fd);
}

static void sample(void *ctx, int i, int launcher)
{
	static const char *const ns[] = {"pid", "mnt", "ipc", "uts"};
	struct sample *s = ctx;
	char path[64];

	(void)i;
	s->pid = jailed_pid(launcher);
	if (s->pid < 0)
		return;
	snprintf(path, sizeof(path), "/proc/%d/status", s->pid);
	harness_status_field(path, "Uid", s->uid, sizeof(s->uid));
	harness_status_field(path, "Gid", s->gid, sizeof(s->gid));
	harness_status_field(path, "Groups", s->groups, sizeof(s->groups));
	harness_status_field(path, "CapEff", s->cap_eff, sizeof(s->cap_eff));
	harness_status_field(path, "CapPrm", s->cap_prm, sizeof(s->cap_prm));
	harness_status_field(path, "CapBnd", s->cap_bnd, sizeof(s->cap_bnd));
	harness_status_field(path, "CapInh", s->cap_inh, sizeof(s->cap_inh));
	harness_status_field(path, "CapAmb", s->cap_amb, sizeof(s->cap_amb));
	harness_status_field(path, "NoNewPrivs", s->no_new_privs, sizeof(s->no_new_privs));
	harness_status_field(path, "Seccomp", s->seccomp, sizeof(s->seccomp));
	for (int k = 0; k < 4; k++)
		s->ns_differs[k] = !same_ns(s->pid, ns[k]);
	s->net_same = same_ns(s->pid, "net");
	snprintf(path, sizeof(path), "/proc/%d/cgroup", s->pid);
	read_small(path, s->cgroup, sizeof(s->cgroup));
	api_limits(s);
}

/* The jailed VMM: the jail's options, extra ones (NULL-terminated), then the VMM's. */
static void run_jailed(const char *const *jail_extra, const char *const *vmm, struct sample *s,
		       const char *term_when, struct vmm_result *r)
{
	static const struct vmm_step steps[] = {{"result=ready", "quit\n"}};
	const char *argv[48] = {JAILED_VMM};
	int n = 7;

	for (int i = 0; jail_extra && jail_extra[i]; i++)
		argv[n++] = jail_extra[i];
	for (int i = 0; vmm[i]; i++)
		argv[n++] = vmm[i];
	argv[n] = NULL;
	cr_assert_lt(n, 48);
	harness_run(&(struct vmm_run){.argv = argv,
				      .steps = s && !term_when ? steps : NULL,
				      .nsteps = s && !term_when ? 1 : 0,
				      .timeout_ms = 60000,
				      .run_as_uid = -1,
				      .term_when = term_when,
				      .term_count = term_when ? 1 : 0,
				      .on_step = s ? sample : NULL,
				      .ctx = s},
		    r);
	skip_if_unsupported(r->err);
	cr_assert(!r->timed_out, "timed out; stdout:\n%s\nstderr:\n%s", r->out, r->err);
}

static const char *const echo_vm[] = {"--kernel",  "/guest.elf", "--cmdline", "test=serial-echo",
				      "--cpus",	   "2",		 "--rng",     "--api-sock",
				      "/api.sock", NULL};

Test(jail, unprivileged_in_its_own_namespaces)
{
	struct sample s = {0};
	struct vmm_result r;

	run_jailed(NULL, echo_vm, &s, NULL, &r);
	cr_assert_eq(r.status, 0, "stdout:\n%s\nstderr:\n%s", r.out, r.err);
	cr_assert(harness_passed(r.out, "serial-echo"), "stdout:\n%s", r.out);
	cr_assert_gt(s.pid, 0, "no jailed VMM under the launcher");
	cr_assert_str_eq(s.uid, JAIL_UIDS "\t" JAIL_UIDS "\t" JAIL_UIDS "\t" JAIL_UIDS);
	cr_assert_str_eq(s.gid, JAIL_GIDS "\t" JAIL_GIDS "\t" JAIL_GIDS "\t" JAIL_GIDS);
	cr_assert_str_eq(s.groups, "", "supplementary groups: '%s'", s.groups);
	cr_assert_str_eq(s.cap_eff, "0000000000000000");
	cr_assert_str_eq(s.cap_prm, "0000000000000000");
	cr_assert_str_eq(s.cap_bnd, "0000000000000000");
	cr_assert_str_eq(s.cap_inh, "0000000000000000");
	cr_assert_str_eq(s.cap_amb, "0000000000000000");
	cr_assert_str_eq(s.no_new_privs, "1");
	cr_assert_str_eq(s.seccomp, "2");
	cr_assert(s.ns_differs[0] && s.ns_differs[1] && s.ns_differs[2] && s.ns_differs[3],
		  "pid %d mnt %d ipc %d uts %d", s.ns_differs[0], s.ns_differs[1], s.ns_differs[2],
		  s.ns_differs[3]);
	cr_assert(s.net_same, "no --netns: the host's network namespace");
	cr_assert(strstr(s.limits, "\"jailed\":true") && strstr(s.limits, "\"uid\":" JAIL_UIDS) &&
			  strstr(s.limits, "\"cgroup\":null"),
		  "GET /vm/limits:\n%s", s.limits);
	harness_free(&r);
}

/* What the jail leaves in DIR: no device nodes, no old root. */
Test(jail, leaves_no_nodes_behind)
{
	struct vmm_result r;
	const char *vm[] = {"--kernel", "/guest.elf", "--cmdline", "test=boot", NULL};
	char path[128];
	struct stat st;

	run_jailed(NULL, vm, NULL, NULL, &r);
	cr_assert_eq(r.status, 0, "stderr:\n%s", r.err);
	jail_path(path, sizeof(path), "dev/kvm");
	cr_assert_neq(lstat(path, &st), 0, "dev/kvm left in the jail directory");
	/* nothing but the dev/ and proc/ mount points and what the test put there */
	{
		DIR *d = opendir(jail);
		struct dirent *e;

		cr_assert(d);
		while ((e = readdir(d)))
			cr_assert(!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
					  !strcmp(e->d_name, "dev") || !strcmp(e->d_name, "proc") ||
					  !strcmp(e->d_name, "guest.elf"),
				  "%s left in the jail directory", e->d_name);
		closedir(d);
	}
	/* and the host's root is untouched: the old root was only unmounted in the jail */
	cr_assert_eq(stat("/etc", &st), 0);
	harness_free(&r);
}

/* A disk image and a serial log, both inside the jail, owned by U. */
Test(jail, guest_uses_a_disk_and_a_serial_file_inside)
{
	char img[128], log[128], *tmp;
	uint32_t crc;
	struct vmm_result r;
	const char *vm[] = {"--kernel",	 "/guest.elf",
			    "--cmdline", "test=virtio-blk blk_sector=16",
			    "--disk",	 "path=/disk.img,id=jailed",
			    "--serial",	 "file:/serial.log",
			    NULL};
	FILE *f;
	char out[4096] = "";

	tmp = harness_temp_file(1 << 20, 7, &crc);
	jail_path(img, sizeof(img), "disk.img");
	copy_file(tmp, img);
	unlink(tmp);
	free(tmp);
	run_jailed(NULL, vm, NULL, NULL, &r);
	cr_assert_eq(r.status, 0, "stderr:\n%s", r.err);
	jail_path(log, sizeof(log), "serial.log");
	f = fopen(log, "r");
	cr_assert(f, "no serial log in the jail");
	out[fread(out, 1, sizeof(out) - 1, f)] = 0;
	fclose(f);
	cr_assert(harness_passed(out, "virtio-blk"), "serial log:\n%s\nstderr:\n%s", out, r.err);
	cr_assert(strstr(out, "id=jailed"), "serial log:\n%s", out);
	harness_free(&r);
}

/* A file that exists on the host, outside DIR: the jailed VMM cannot see it. */
Test(jail, host_files_are_out_of_reach)
{
	struct vmm_result r;
	const char *vm[] = {"--kernel", "/guest.elf", "--cmdline", "test=boot", NULL};
	char host_file[64], want[160];
	int fd;

#ifndef BUNSHIN_TEST_HOOKS
	cr_skip_test("built without test hooks (-Dtests=false): no jail self-test");
#endif
	snprintf(host_file, sizeof(host_file), "/tmp/bunshin-jail-host-%d", (int)getpid());
	fd = open(host_file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert_geq(fd, 0);
	close(fd);
	setenv("BUNSHIN_JAIL_SELFTEST", host_file, 1);
	run_jailed(NULL, vm, NULL, NULL, &r);
	unsetenv("BUNSHIN_JAIL_SELFTEST");
	unlink(host_file);
	snprintf(want, sizeof(want),
		 "jail selftest: opening host file %s: No such file or directory", host_file);
	cr_assert(strstr(r.err, want), "stderr:\n%s", r.err);
	/* and it carried on */
	cr_assert_eq(r.status, 0, "stderr:\n%s", r.err);
	cr_assert(harness_passed(r.out, "boot"), "stdout:\n%s", r.out);
	harness_free(&r);
}

static void refused_path(const char *const *vm, const char *needle)
{
	struct vmm_result r;

	run_jailed(NULL, vm, NULL, NULL, &r);
	cr_assert_eq(r.status, 1, "status %d; stderr:\n%s", r.status, r.err);
	cr_assert(strstr(r.err, needle), "expected '%s' in stderr:\n%s", needle, r.err);
	cr_assert_eq(harness_count(r.err, "\n"), 1, "one line:\n%s", r.err);
	cr_assert_str_eq(r.out, "", "the guest ran:\n%s", r.out);
	harness_free(&r);
}

Test(jail, dotdot_and_symlinks_are_refused)
{
	char path[128];
	const char *dotdot[] = {"--kernel", "/sub/../guest.elf", NULL};
	const char *link[] = {"--kernel", "/link.elf", NULL};
	const char *in_dir[] = {"--kernel", "/guest.elf", "--disk", "path=/lnkdir/x.img", NULL};
	const char *new_file[] = {"--kernel", "/guest.elf", "--serial", "file:/lnkdir/new.log",
				  NULL};
	const char *missing[] = {"--kernel", "/nope.elf", NULL};

	jail_path(path, sizeof(path), "sub");
	cr_assert_eq(mkdir(path, 0755), 0);
	jail_path(path, sizeof(path), "link.elf");
	cr_assert_eq(symlink("guest.elf", path), 0);
	jail_path(path, sizeof(path), "lnkdir");
	cr_assert_eq(symlink("sub", path), 0);
	refused_path(dotdot, "--kernel: /sub/../guest.elf: '..' in a path (refused in the jail)");
	refused_path(link, "--kernel: /link.elf: a symbolic link on the path");
	refused_path(in_dir, "--disk: /lnkdir/x.img: a symbolic link on the path");
	refused_path(new_file, "--serial: /lnkdir/new.log: a symbolic link on the path");
	refused_path(missing, "--kernel: /nope.elf: No such file or directory (inside the jail)");
}

/* Bad combinations: one line each, nothing started. */
Test(jail, bad_options_are_refused)
{
	static const struct {
		const char *argv[10];
		int status;
		const char *needle;
	} cases[] = {
		{{"vmm", "--uid", JAIL_UIDS, "--kernel", "/k", NULL}, 2, "need --jail DIR"},
		{{"vmm", "--jail", "/tmp", "--gid", "5", "--kernel", "/k", NULL},
		 2,
		 "needs --uid and --gid"},
		{{"vmm", "--jail", "/tmp", "--uid", "0", "--gid", "5", "--kernel", "/k", NULL},
		 2,
		 "--uid: 0 is root's"},
		{{"vmm", "--jail", "/no/such/dir", "--uid", "5", "--gid", "5", "--kernel", "/k",
		  NULL},
		 1,
		 "--jail: /no/such/dir is not a directory"},
		{{"vmm", "--kernel", "/k", "--jail", "/tmp", NULL}, 2, "unknown option '--jail'"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vmm_result r;

		harness_run(&(struct vmm_run){.argv = cases[i].argv,
					      .timeout_ms = 10000,
					      .run_as_uid = -1},
			    &r);
		skip_if_unsupported(r.err);
		cr_assert_eq(r.status, cases[i].status, "case %zu: status %d; stderr:\n%s", i,
			     r.status, r.err);
		cr_assert(strstr(r.err, cases[i].needle), "case %zu: stderr:\n%s", i, r.err);
		cr_assert_eq(harness_count(r.err, "\n"), 1, "case %zu: one line:\n%s", i, r.err);
		harness_free(&r);
	}
}

/* SIGTERM to the launcher reaches the VMM, whose status (4) the launcher exits with. */
Test(jail, launcher_forwards_sigterm)
{
	struct vmm_result r;
	const char *vm[] = {"--kernel", "/guest.elf", "--cmdline", "test=serial-echo", NULL};

	run_jailed(NULL, vm, NULL, "result=ready", &r);
	cr_assert_eq(r.status, 4, "status %d; stderr:\n%s", r.status, r.err);
	harness_free(&r);
}

/* ---- cgroups ---- */

/* The directory of the VMM's cgroup in hierarchy ctrl ("" for v2), from /proc/PID/cgroup. */
static bool cgroup_dir(const char *proc_cgroup, const char *ctrl, char *out, size_t len)
{
	char buf[512], *save, *line;
	bool hybrid = access("/sys/fs/cgroup/unified/cgroup.controllers", F_OK) == 0;

	snprintf(buf, sizeof(buf), "%s", proc_cgroup);
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *ctrls = strchr(line, ':'), *path = ctrls ? strchr(ctrls + 1, ':') : NULL;
		char *csave, *c;
		bool match = false;

		if (!path)
			continue;
		*path++ = 0;
		ctrls++;
		if (!*ctrl)
			match = !*ctrls;
		for (c = strtok_r(ctrls, ",", &csave); *ctrl && c; c = strtok_r(NULL, ",", &csave))
			match = match || !strcmp(c, ctrl);
		if (!match)
			continue;
		if (*ctrl)
			snprintf(out, len, "/sys/fs/cgroup/%s%s", ctrl, path);
		else
			snprintf(out, len, "/sys/fs/cgroup%s%s", hybrid ? "/unified" : "", path);
		return true;
	}
	return false;
}

/* The cgroup files, read while the VMM runs (the cgroup goes with it). */
struct cg_sample {
	bool v2;
	char dirs[3][512];
	char val[6][64]; /* period quota weight memory swap pids, as the files say */
};

static struct cg_sample cgs;

static void cg_read(int i, const char *dir, const char *file)
{
	char path[640];

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	read_small(path, cgs.val[i], sizeof(cgs.val[i]));
	cgs.val[i][strcspn(cgs.val[i], "\n")] = 0;
}

static void cg_sample(void *ctx, int i, int launcher)
{
	struct sample *s = ctx;
	static const char *const ctrls[3] = {"cpu", "memory", "pids"};

	sample(ctx, i, launcher);
	cgs.v2 = strstr(s->limits, "\"version\":\"v2\"") != NULL;
	if (cgs.v2) {
		cgroup_dir(s->cgroup, "", cgs.dirs[0], sizeof(cgs.dirs[0]));
		cg_read(1, cgs.dirs[0], "cpu.max");
		cg_read(2, cgs.dirs[0], "cpu.weight");
		cg_read(3, cgs.dirs[0], "memory.max");
		cg_read(4, cgs.dirs[0], "memory.swap.max");
		cg_read(5, cgs.dirs[0], "pids.max");
		return;
	}
	for (int k = 0; k < 3; k++)
		cgroup_dir(s->cgroup, ctrls[k], cgs.dirs[k], sizeof(cgs.dirs[k]));
	cg_read(0, cgs.dirs[0], "cpu.cfs_period_us");
	cg_read(1, cgs.dirs[0], "cpu.cfs_quota_us");
	cg_read(2, cgs.dirs[0], "cpu.shares");
	cg_read(3, cgs.dirs[1], "memory.limit_in_bytes");
	cg_read(4, cgs.dirs[1], "memory.memsw.limit_in_bytes");
	cg_read(5, cgs.dirs[2], "pids.max");
}

/* 2 vCPUs, 128M: the default limits (jail_args.c: guest RAM + 96 MiB + 2 MiB per vCPU) */
#define CG_MEM "239075328"

Test(jail, cgroup_limits_and_cleanup)
{
	static const struct vmm_step steps[] = {{"result=ready", "quit\n"}};
	const char *argv[] = {
		JAILED_VMM,  "--cgroup",	 cgname,      "--kernel", "/guest.elf",
		"--cmdline", "test=serial-echo", "--cpus",    "2",	  "--memory",
		"128M",	     "--api-sock",	 "/api.sock", NULL};
	struct sample s = {0};
	struct vmm_result r;
	struct stat st;

	memset(&cgs, 0, sizeof(cgs));
	harness_run(&(struct vmm_run){.argv = argv,
				      .steps = steps,
				      .nsteps = 1,
				      .timeout_ms = 60000,
				      .run_as_uid = -1,
				      .on_step = cg_sample,
				      .ctx = &s},
		    &r);
	skip_if_unsupported(r.err);
	cr_assert_eq(r.status, 0, "stdout:\n%s\nstderr:\n%s", r.out, r.err);
	cr_assert_gt(s.pid, 0);
	cr_assert(strstr(s.limits, "\"version\":\"v"), "GET /vm/limits:\n%s", s.limits);
	for (int k = 0; k < (cgs.v2 ? 1 : 3); k++)
		cr_assert(strstr(cgs.dirs[k], cgname), "not in %s:\n%s", cgname, s.cgroup);
	if (cgs.v2) {
		cr_assert_str_eq(cgs.val[1], "200000 100000");
		cr_assert_str_eq(cgs.val[2], "100");
	} else {
		cr_assert_str_eq(cgs.val[0], "100000");
		cr_assert_str_eq(cgs.val[1], "200000");
		cr_assert_str_eq(cgs.val[2], "1024");
	}
	cr_assert_str_eq(cgs.val[3], CG_MEM);
	/* no swap: 0 on v2, memory+swap = memory on v1, where the kernel accounts swap */
	if (strstr(s.limits, "\"memory_swap_max\":0"))
		cr_assert_str_eq(cgs.val[4], cgs.v2 ? "0" : CG_MEM);
	cr_assert_str_eq(cgs.val[5], "66");
	cr_assert(strstr(s.limits, "\"cpu_quota_us\":200000") &&
			  strstr(s.limits, "\"pids_max\":66") &&
			  strstr(s.limits, "\"memory_max\":" CG_MEM),
		  "GET /vm/limits:\n%s", s.limits);
	fprintf(stderr, "jail: tested cgroup %s (%s)\n", cgs.v2 ? "v2" : "v1 (the fallback)",
		cgs.dirs[0]);
	for (int k = 0; k < 3; k++)
		cr_assert(!cgs.dirs[k][0] || stat(cgs.dirs[k], &st) != 0, "%s left behind",
			  cgs.dirs[k]);
	harness_free(&r);
}

/* ---- a network device, unprivileged: a tap owned by U, in a namespace ---- */

static int run_ip(const char *const *args)
{
	const char *argv[16] = {"ip"};
	int status, n = 1;
	pid_t pid;

	for (int i = 0; args[i]; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		dup2(null, 1);
		dup2(null, 2);
		execvp("ip", (char *const *)argv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Test(jail, network_in_a_namespace_without_capabilities)
{
	char ns[64], nspath[128];
	const char *add[] = {"netns", "add", ns, NULL};
	const char *tap[] = {"-n",   ns,    "tuntap", "add",	 "dev", "tap0",
			     "mode", "tap", "user",   JAIL_UIDS, NULL};
	const char *addr[] = {"-n", ns, "addr", "add", HOST_IP "/24", "dev", "tap0", NULL};
	const char *up[] = {"-n", ns, "link", "set", "tap0", "up", NULL};
	const char *del[] = {"netns", "del", ns, NULL};
	const char *jx[] = {"--netns", nspath, NULL};
	const char *vm[] = {"--kernel",	 "/guest.elf",
			    "--memory",	 "128M",
			    "--net",	 "tap=tap0",
			    "--cmdline", "test=virtio-net net_ip=" GUEST_IP " net_peer=" HOST_IP,
			    NULL};
	struct vmm_result r;

	snprintf(ns, sizeof(ns), "bunshin-jail-%d", (int)getpid());
	snprintf(nspath, sizeof(nspath), "/run/netns/%s", ns);
	if (run_ip(add))
		cr_skip_test("skipped: 'ip netns add' failed (no iproute2, or no CAP_NET_ADMIN)");
	cr_assert_eq(run_ip(tap), 0);
	cr_assert_eq(run_ip(addr), 0);
	cr_assert_eq(run_ip(up), 0);
	run_jailed(jx, vm, NULL, NULL, &r);
	run_ip(del);
	cr_assert_eq(r.status, 0, "stdout:\n%s\nstderr:\n%s", r.out, r.err);
	cr_assert(harness_passed(r.out, "virtio-net"), "stdout:\n%s\nstderr:\n%s", r.out, r.err);
	harness_free(&r);
}

/* ---- snapshots and restores, jailed ---- */

static void snapshot_inside(void *ctx, int i, int pid)
{
	static const char body[] = "{\"dir\": \"/snap\"}";
	char *reply = ctx, path[128], req[256];
	size_t len = 0;
	int fd, n;

	(void)i;
	(void)pid;
	jail_path(path, sizeof(path), "api.sock");
	fd = harness_unix_connect(path, 5000);
	if (fd < 0)
		return;
	n = snprintf(req, sizeof(req),
		     "PUT /vm/snapshot HTTP/1.0\r\nHost: vm\r\nContent-Type: application/json\r\n"
		     "Content-Length: %zu\r\n\r\n%s",
		     sizeof(body) - 1, body);
	if (write(fd, req, n) == n)
		harness_read_until(fd, reply, 512, &len, "}", 10000);
	close(fd);
}

/* The guest watches its clock for 2 s; snapshotted at once, it finishes in the restored VM. */
Test(jail, snapshot_and_restore_inside)
{
	static const struct vmm_step snap_steps[] = {{"name=clock-watch result=ready", ""}};
	const char *snap_argv[] = {JAILED_VMM,
				   "--kernel",
				   "/guest.elf",
				   "--cmdline",
				   "test=clock-watch watch_ms=2000",
				   "--api-sock",
				   "/api.sock",
				   NULL};
	const char *restore_argv[] = {JAILED_VMM,	 "--cgroup",  cgname,  "--cgroup-limits",
				      "memory_max=512M", "--restore", "/snap", NULL};
	char reply[512] = "";
	struct vmm_result r;

	harness_run(&(struct vmm_run){.argv = snap_argv,
				      .steps = snap_steps,
				      .nsteps = 1,
				      .timeout_ms = 60000,
				      .run_as_uid = -1,
				      .on_step = snapshot_inside,
				      .ctx = reply},
		    &r);
	skip_if_unsupported(r.err);
	cr_assert_eq(r.status, 0, "stderr:\n%s", r.err);
	cr_assert(strstr(reply, "\"dir\":\"/snap\""), "PUT /vm/snapshot:\n%s", reply);
	cr_assert(harness_passed(r.out, "clock-watch"), "stdout:\n%s", r.out);
	harness_free(&r);
	harness_run(&(struct vmm_run){.argv = restore_argv, .timeout_ms = 60000, .run_as_uid = -1},
		    &r);
	skip_if_unsupported(r.err);
	cr_assert(!r.timed_out, "stdout:\n%s\nstderr:\n%s", r.out, r.err);
	cr_assert_eq(r.status, 0, "stdout:\n%s\nstderr:\n%s", r.out, r.err);
	/* the restored guest carries on from the snapshot: no second "ready" */
	cr_assert(harness_passed(r.out, "clock-watch"), "stdout:\n%s", r.out);
	cr_assert(!strstr(r.out, "result=ready"), "the guest booted again:\n%s", r.out);
	harness_free(&r);
}

/* ---- a VM configured through the API, jailed ---- */

/*
 * The jailed VMM's stderr goes to the jail's parent (/tmp), out of the
 * jailed VMM's sight: DIR/../<jail's name>.err.
 */
static void start_beside_jail(struct harness_proc *p, const char *const *args)
{
	char parent[64], *name;

	snprintf(parent, sizeof(parent), "%s", jail);
	name = strrchr(parent, '/');
	*name++ = 0;
	harness_proc_start(p, parent, name, args);
}

Test(jail, configured_through_the_api_inside)
{
	const char *argv[] = {JAILED_VMM,	  "--cgroup",	cgname,	     "--cgroup-limits",
			      "memory_max=256M",  "--api-sock", "/api.sock", "--serial",
			      "file:/serial.log", NULL};
	const char *config = "{\"kernel\": \"/guest.elf\", \"cmdline\": \"test=boot\", "
			     "\"vcpus\": 1, \"memory_mib\": 64}";
	char reply[2048], sock[128], log[128], *text;
	struct harness_proc p;
	int status, fd;

	start_beside_jail(&p, argv + 1);
	jail_path(sock, sizeof(sock), "api.sock");
	fd = harness_unix_connect(sock, 10000);
	if (fd < 0) {
		status = harness_proc_wait(&p, 5000);
		text = harness_proc_stderr(&p);
		unlink(p.err);
		skip_if_unsupported(text);
		cr_assert_fail("no API socket; status %d, output:\n%s", status, text);
	}
	close(fd);
	harness_api(sock, "GET", "/vm/limits", NULL, reply, sizeof(reply));
	cr_assert(strstr(reply, "\"memory_max\":268435456"), "GET /vm/limits:\n%s", reply);
	status = harness_api(sock, "PUT", "/vm/config", config, reply, sizeof(reply));
	cr_assert(status == 204 || status == 200, "PUT /vm/config: %d %s", status, reply);
	harness_api(sock, "PUT", "/vm/actions", "{\"action\": \"start\"}", reply, sizeof(reply));
	status = harness_proc_wait(&p, 30000);
	text = harness_proc_stderr(&p);
	unlink(p.err);
	cr_assert_eq(status, 0, "status %d; output:\n%s", status, text);
	jail_path(log, sizeof(log), "serial.log");
	text = harness_slurp(log);
	cr_assert(harness_passed(text, "boot"), "serial log:\n%s", text);
}

Test(jail, api_configured_vm_needs_a_memory_limit)
{
	const char *argv[] = {JAILED_VMM, "--cgroup", cgname, "--api-sock", "/api.sock", NULL};
	struct vmm_result r;

	harness_run(&(struct vmm_run){.argv = argv, .timeout_ms = 10000, .run_as_uid = -1}, &r);
	skip_if_unsupported(r.err);
	cr_assert_eq(r.status, 1, "status %d; stderr:\n%s", r.status, r.err);
	cr_assert(strstr(r.err, "give --cgroup-limits memory_max=SIZE"), "stderr:\n%s", r.err);
	cr_assert_eq(harness_count(r.err, "\n"), 1, "one line:\n%s", r.err);
	harness_free(&r);
}

/* ---- vsock: the VMM makes its socket in DIR and reaches a host program's there ---- */

#define VS_GUEST "hello host, this is the guest"
#define VS_HOST	 "hello guest, this is the host"

struct vs_host {
	int lfd;
	char why[160]; /* empty when all went well */
};

/* The host program the guest connects to (port 5678: <uds>_5678). */
static void *vs_serve(void *arg)
{
	struct vs_host *h = arg;
	struct pollfd p = {.fd = h->lfd, .events = POLLIN};
	char msg[sizeof(VS_GUEST)] = "";
	size_t got = 0;
	int fd;

	if (poll(&p, 1, 30000) <= 0) {
		snprintf(h->why, sizeof(h->why), "the guest never connected");
		return NULL;
	}
	fd = accept(h->lfd, NULL, NULL);
	while (fd >= 0 && got < sizeof(VS_GUEST) - 1) {
		struct pollfd q = {.fd = fd, .events = POLLIN};
		ssize_t n =
			poll(&q, 1, 30000) > 0 ? read(fd, msg + got, sizeof(msg) - 1 - got) : -1;

		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (strcmp(msg, VS_GUEST))
		snprintf(h->why, sizeof(h->why), "the guest said '%s'", msg);
	else if (write(fd, VS_HOST, sizeof(VS_HOST) - 1) != sizeof(VS_HOST) - 1)
		snprintf(h->why, sizeof(h->why), "replying: %s", strerror(errno));
	if (fd >= 0)
		close(fd);
	return NULL;
}

Test(jail, vsock_sockets_inside)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	const char *vm[] = {
		"--kernel", "/guest.elf",    "--memory",  "128M",
		"--vsock",  "cid=9,uds=/vs", "--cmdline", "test=virtio-vsock vsock_connect=5678",
		NULL};
	struct vs_host h = {0};
	struct vmm_result r;
	pthread_t t;
	char val[32];

	snprintf(a.sun_path, sizeof(a.sun_path), "%s/vs_5678", jail);
	h.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(h.lfd, 0);
	cr_assert_eq(bind(h.lfd, (struct sockaddr *)&a, sizeof(a)), 0, "%s", strerror(errno));
	/* the jailed VMM connects as U: the socket must be U's to write to */
	cr_assert_eq(chown(a.sun_path, JAIL_UID, JAIL_GID), 0);
	cr_assert_eq(listen(h.lfd, 1), 0);
	cr_assert_eq(pthread_create(&t, NULL, vs_serve, &h), 0);
	run_jailed(NULL, vm, NULL, NULL, &r);
	pthread_join(t, NULL);
	close(h.lfd);
	cr_assert_eq(r.status, 0, "stdout:\n%s\nstderr:\n%s", r.out, r.err);
	cr_assert(harness_passed(r.out, "virtio-vsock"), "stdout:\n%s\nstderr:\n%s", r.out, r.err);
	cr_assert(harness_result_field(r.out, "virtio-vsock", "reply", val, sizeof(val)));
	cr_assert_str_eq(val, "ok");
	cr_assert_str_eq(h.why, "", "host side: %s", h.why);
	harness_free(&r);
}
