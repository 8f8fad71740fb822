// SPDX-License-Identifier: MIT
/*
 * The VM's cgroup against fake cgroup trees in a temporary directory: the
 * v2 code path (pure and hybrid hosts), the v1 fallback, and the refusals.
 * The real hierarchies are exercised by tests/integration/test_jail.c.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../src/vmm/sandbox/cgroup.h"

static char root[64];
static char self[96];

static void put(const char *rel, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	f = fopen(path, "w");
	cr_assert(f, "%s", path);
	fputs(text, f);
	fclose(f);
}

static void dir(const char *rel)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	cr_assert_eq(mkdir(path, 0755), 0, "%s: %s", path, strerror(errno));
}

/* The file's first line, without its newline. */
static const char *get(const char *rel)
{
	static char buf[128];
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	f = fopen(path, "r");
	if (!f)
		return "(missing)";
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	buf[strcspn(buf, "\n")] = 0;
	return buf;
}

static bool exists(const char *rel)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	return access(path, F_OK) == 0;
}

static void setup(void)
{
	strcpy(root, "/tmp/bunshin-cgroup-XXXXXX");
	cr_assert(mkdtemp(root));
	snprintf(self, sizeof(self), "%s/self-cgroup", root);
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
	cr_assert_eq(system(cmd), 0);
}

static const struct cgroup_limits limits = {
	.cpu_quota_us = 200000,
	.cpu_period_us = 100000,
	.cpu_weight = 50,
	.memory_max = 512ULL << 20,
	.pids_max = 66,
};

static int create(struct cgroup *cg, const char *name, const struct cgroup_limits *l,
		  struct error *err)
{
	const struct cgroup_fs fs = {.root = root, .self = self, .create_files = true};

	return cgroup_create(cg, &fs, name, l, err);
}

TestSuite(cgroup, .init = setup, .fini = teardown);

Test(cgroup, v2_pure_writes_every_limit)
{
	struct cgroup cg;
	struct error err = {0};

	put("cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma\n");
	put("cgroup.subtree_control", "");
	put("self-cgroup", "0::/\n");
	cr_assert_eq(create(&cg, "vm1", &limits, &err), 0, "%s", err.msg);
	cr_assert_eq(cg.version, CGROUP_V2);
	cr_assert_eq(cg.ndirs, 1);
	cr_assert_str_eq(get("vm1/cpu.max"), "200000 100000");
	cr_assert_str_eq(get("vm1/cpu.weight"), "50");
	cr_assert_str_eq(get("vm1/memory.max"), "536870912");
	cr_assert_str_eq(get("vm1/memory.swap.max"), "0");
	cr_assert_str_eq(get("vm1/pids.max"), "66");
	cr_assert(cg.swap_limited);
	/* the launcher's cgroup hands the controllers down */
	cr_assert_str_eq(get("cgroup.subtree_control"), "+cpu +memory +pids");
	cr_assert_eq(cgroup_destroy(&cg), 0);
	cr_assert(!exists("vm1"));
}

Test(cgroup, v2_hybrid_under_the_launchers_cgroup)
{
	struct cgroup cg;
	struct error err = {0};

	dir("unified");
	dir("unified/svc");
	put("unified/cgroup.controllers", "cpu memory pids\n");
	put("unified/svc/cgroup.controllers", "cpu memory pids\n");
	/* already delegated: left as it is */
	put("unified/svc/cgroup.subtree_control", "cpu memory pids\n");
	put("self-cgroup", "1:name=systemd:/svc\n0::/svc\n");
	cr_assert_eq(create(&cg, "vms/vm2", &limits, &err), 0, "%s", err.msg);
	cr_assert_eq(cg.version, CGROUP_V2);
	cr_assert_str_eq(get("unified/svc/cgroup.subtree_control"), "cpu memory pids");
	/* a parent made on the way hands them down too */
	cr_assert_str_eq(get("unified/svc/vms/cgroup.subtree_control"), "+cpu +memory +pids");
	cr_assert_str_eq(get("unified/svc/vms/vm2/pids.max"), "66");
	cr_assert_eq(cgroup_destroy(&cg), 0);
	cr_assert(!exists("unified/svc/vms/vm2"));
	cr_assert(exists("unified/svc/vms"), "shared parents stay");
}

Test(cgroup, v2_no_quota_is_max)
{
	struct cgroup_limits l = limits;
	struct cgroup cg;
	struct error err = {0};

	l.cpu_quota_us = 0;
	put("cgroup.controllers", "cpu memory pids\n");
	put("self-cgroup", "0::/\n");
	cr_assert_eq(create(&cg, "vm", &l, &err), 0, "%s", err.msg);
	cr_assert_str_eq(get("vm/cpu.max"), "max 100000");
	cgroup_destroy(&cg);
}

/* What this project's hosts look like: v2 with hugetlb only, the rest on v1. */
Test(cgroup, v1_fallback_when_v2_lacks_the_controllers)
{
	struct cgroup cg;
	struct error err = {0};

	dir("unified");
	put("unified/cgroup.controllers", "hugetlb\n");
	put("self-cgroup", "8:pids:/\n4:memory:/box/1\n1:cpu,cpuacct:/\n0::/\n");
	dir("cpu");
	dir("memory");
	dir("memory/box");
	dir("memory/box/1");
	dir("pids");
	put("cpu/cgroup.procs", "");
	put("memory/cgroup.procs", "");
	put("pids/cgroup.procs", "");
	cr_assert_eq(create(&cg, "vm3", &limits, &err), 0, "%s", err.msg);
	cr_assert_eq(cg.version, CGROUP_V1);
	cr_assert_eq(cg.ndirs, 3);
	cr_assert_str_eq(get("cpu/vm3/cpu.cfs_period_us"), "100000");
	cr_assert_str_eq(get("cpu/vm3/cpu.cfs_quota_us"), "200000");
	cr_assert_str_eq(get("cpu/vm3/cpu.shares"), "512");
	cr_assert_str_eq(get("memory/box/1/vm3/memory.limit_in_bytes"), "536870912");
	cr_assert(!cg.swap_limited, "no memsw file in the fake tree");
	cr_assert_str_eq(get("pids/vm3/pids.max"), "66");
	cr_assert_eq(cgroup_destroy(&cg), 0);
	cr_assert(!exists("cpu/vm3") && !exists("memory/box/1/vm3") && !exists("pids/vm3"));
}

Test(cgroup, nothing_usable_is_refused)
{
	struct cgroup cg;
	struct error err = {0};

	put("self-cgroup", "0::/\n");
	cr_assert_eq(create(&cg, "vm", &limits, &err), -ENOTSUP);
	cr_assert(strstr(err.msg, "no cgroup v2 hierarchy"), "%s", err.msg);
	cr_assert(!exists("vm"));
}

Test(cgroup, a_cgroup_in_use_is_refused)
{
	struct cgroup cg;
	struct error err = {0};

	put("cgroup.controllers", "cpu memory pids\n");
	put("self-cgroup", "0::/\n");
	dir("vm");
	put("vm/cgroup.procs", "1234\n"); /* a fake tree's "in use": rmdir fails */
	cr_assert_eq(create(&cg, "vm", &limits, &err), -EBUSY);
	cr_assert(strstr(err.msg, "already exists and is in use"), "%s", err.msg);
	cr_assert(exists("vm/cgroup.procs"), "left alone");
}

Test(cgroup, an_empty_leftover_is_replaced)
{
	struct cgroup cg;
	struct error err = {0};

	put("cgroup.controllers", "cpu memory pids\n");
	put("self-cgroup", "0::/\n");
	dir("vm");
	cr_assert_eq(create(&cg, "vm", &limits, &err), 0, "%s", err.msg);
	cr_assert_str_eq(get("vm/pids.max"), "66");
	cgroup_destroy(&cg);
}

Test(cgroup, names)
{
	struct error err = {0};

	cr_assert_eq(cgroup_check_name("vm1", &err), 0);
	cr_assert_eq(cgroup_check_name("/bunshin/vm1", &err), 0);
	cr_assert_eq(cgroup_check_name("", &err), -EINVAL);
	cr_assert_eq(cgroup_check_name("/", &err), -EINVAL);
	cr_assert_eq(cgroup_check_name("../up", &err), -EINVAL);
	cr_assert_eq(cgroup_check_name("a/../b", &err), -EINVAL);
	cr_assert_eq(cgroup_check_name("a/./b", &err), -EINVAL);
	cr_assert_eq(cgroup_check_name("a//b", &err), 0);
	cr_assert_eq(cgroup_check_name("cgroup.procs", &err), -EINVAL);
	cr_assert(strstr(err.msg, "control file"), "%s", err.msg);
}

/* A systemd-style host: the launcher's own cgroup holds processes, so an absolute PATH. */
Test(cgroup, v2_absolute_path_goes_under_the_root)
{
	struct cgroup cg;
	struct error err = {0};

	put("cgroup.controllers", "cpu memory pids\n");
	put("cgroup.subtree_control", "");
	dir("user.slice");
	put("user.slice/cgroup.subtree_control", "");
	put("self-cgroup", "0::/user.slice\n");
	cr_assert_eq(create(&cg, "/bunshin/vm1", &limits, &err), 0, "%s", err.msg);
	cr_assert_eq(cg.version, CGROUP_V2);
	cr_assert_str_eq(cg.dirs[0] + strlen(root), "/bunshin/vm1");
	cr_assert_str_eq(get("cgroup.subtree_control"), "+cpu +memory +pids");
	cr_assert_str_eq(get("bunshin/cgroup.subtree_control"), "+cpu +memory +pids");
	cr_assert_str_eq(get("user.slice/cgroup.subtree_control"), "",
			 "the launcher's is untouched");
	cr_assert_str_eq(get("bunshin/vm1/cpu.max"), "200000 100000");
	cgroup_destroy(&cg);
	cr_assert(!exists("bunshin/vm1"));
}

Test(cgroup, v1_absolute_path_ignores_the_launchers_place)
{
	struct cgroup cg;
	struct error err = {0};

	put("self-cgroup", "8:pids:/\n4:memory:/box/1\n1:cpu,cpuacct:/\n0::/\n");
	dir("cpu");
	dir("memory");
	dir("pids");
	put("cpu/cgroup.procs", "");
	put("memory/cgroup.procs", "");
	put("pids/cgroup.procs", "");
	cr_assert_eq(create(&cg, "/vms/vm", &limits, &err), 0, "%s", err.msg);
	cr_assert_eq(cg.version, CGROUP_V1);
	cr_assert_str_eq(get("memory/vms/vm/memory.limit_in_bytes"), "536870912");
	cr_assert(!exists("memory/box"));
	cgroup_destroy(&cg);
}
