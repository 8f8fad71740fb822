// SPDX-License-Identifier: MIT
/* The jail's options (peeled off the front of argv) and its default cgroup limits. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "../../src/vmm/sandbox/jail.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])))

static int parse(struct jail_config *j, struct error *err, int argc, char **argv)
{
	error_clear(err);
	return jail_parse_args(j, argc, argv, err);
}

Test(jail_args, leading_options_are_taken)
{
	char *argv[] = {"vmm",	    "--jail",  "/srv/vm1",     "--uid=1000", "--gid",
			"1001",	    "--netns", "/run/netns/a", "--cgroup",   "vms/vm1",
			"--kernel", "/k",      "--cmdline",    "--uid"};
	struct jail_config j;
	struct error err;

	cr_assert_eq(parse(&j, &err, ARGC(argv), argv), 9, "%s", err.msg);
	cr_assert(j.enabled);
	cr_assert_str_eq(j.dir, "/srv/vm1");
	cr_assert_eq(j.uid, 1000);
	cr_assert_eq(j.gid, 1001);
	cr_assert_str_eq(j.netns, "/run/netns/a");
	cr_assert_str_eq(j.cgroup, "vms/vm1");
}

/* Once the VMM's options start, a word like "--uid" is theirs (a command line, say). */
Test(jail_args, none_without_jail_options)
{
	char *argv[] = {"vmm", "--kernel", "/k", "--uid", "5"};
	struct jail_config j;
	struct error err;

	cr_assert_eq(parse(&j, &err, ARGC(argv), argv), 0, "%s", err.msg);
	cr_assert(!j.enabled);
}

static void refused(const char *needle, int argc, char **argv)
{
	struct jail_config j;
	struct error err;

	cr_assert_eq(parse(&j, &err, argc, argv), -EINVAL, "%s", needle);
	cr_assert(strstr(err.msg, needle), "expected '%s' in '%s'", needle, err.msg);
}

Test(jail_args, bad_combinations)
{
	char *no_jail[] = {"vmm", "--uid", "5", "--gid", "5"};
	char *no_uid[] = {"vmm", "--jail", "/srv", "--gid", "5"};
	char *root_uid[] = {"vmm", "--jail", "/srv", "--uid", "0", "--gid", "5"};
	char *root_gid[] = {"vmm", "--jail", "/srv", "--uid", "5", "--gid=0"};
	char *name_uid[] = {"vmm", "--jail", "/srv", "--uid", "bob", "--gid", "5"};
	char *relative[] = {"vmm", "--jail", "srv", "--uid", "5", "--gid", "5"};
	char *slash[] = {"vmm", "--jail", "/", "--uid", "5", "--gid", "5"};
	char *twice[] = {"vmm", "--jail", "/a", "--jail", "/b", "--uid", "5", "--gid", "5"};
	char *no_value[] = {"vmm", "--jail"};
	char *limits_alone[] = {"vmm", "--jail",	  "/a",		"--uid", "5", "--gid",
				"5",   "--cgroup-limits", "pids_max=10"};
	char *bad_key[] = {"vmm", "--jail",   "/a", "--uid",	       "5",	"--gid",
			   "5",	  "--cgroup", "c",  "--cgroup-limits", "swap=1"};
	char *bad_val[] = {"vmm", "--jail",   "/a", "--uid",	       "5",	      "--gid",
			   "5",	  "--cgroup", "c",  "--cgroup-limits", "cpu_weight=0"};
	char *bad_cg[] = {"vmm", "--jail", "/a", "--uid", "5", "--gid", "5", "--cgroup", "../c"};

	refused("need --jail", ARGC(no_jail), no_jail);
	refused("needs --uid and --gid", ARGC(no_uid), no_uid);
	refused("--uid: 0 is root's", ARGC(root_uid), root_uid);
	refused("--gid: 0 is root's", ARGC(root_gid), root_gid);
	refused("not a numeric id", ARGC(name_uid), name_uid);
	refused("not an absolute directory", ARGC(relative), relative);
	refused("not an absolute directory", ARGC(slash), slash);
	refused("given twice", ARGC(twice), twice);
	refused("needs a value", ARGC(no_value), no_value);
	refused("needs --cgroup", ARGC(limits_alone), limits_alone);
	refused("unknown key 'swap'", ARGC(bad_key), bad_key);
	refused("cpu_weight=0 is out of range", ARGC(bad_val), bad_val);
	refused("'..' component", ARGC(bad_cg), bad_cg);
}

Test(jail_args, default_limits_follow_the_vm)
{
	char *argv[] = {"vmm", "--jail", "/a", "--uid", "5", "--gid", "5", "--cgroup", "c"};
	const struct jail_vm vm = {.cpus = 4, .memory = 1ULL << 30};
	struct cgroup_limits l;
	struct jail_config j;
	struct error err;

	cr_assert_eq(parse(&j, &err, ARGC(argv), argv), 8, "%s", err.msg);
	cr_assert_eq(jail_limits(&j, &vm, &l, &err), 0, "%s", err.msg);
	cr_assert_eq(l.cpu_period_us, 100000);
	cr_assert_eq(l.cpu_quota_us, 400000);
	cr_assert_eq(l.cpu_weight, 100);
	cr_assert_eq(l.memory_max, (1ULL << 30) + jail_memory_overhead(4));
	cr_assert_eq(l.pids_max, 4 + 64);
}

Test(jail_args, given_limits_win)
{
	char *argv[] = {
		"vmm",
		"--jail",
		"/a",
		"--uid",
		"5",
		"--gid",
		"5",
		"--cgroup",
		"c",
		"--cgroup-limits",
		"cpu_quota_us=max,cpu_period_us=50000,cpu_weight=300,memory_max=2G,pids_max=20"};
	const struct jail_vm vm = {.cpus = 4, .memory = 1ULL << 30};
	struct cgroup_limits l;
	struct jail_config j;
	struct error err;

	cr_assert_eq(parse(&j, &err, ARGC(argv), argv), 10, "%s", err.msg);
	cr_assert_eq(jail_limits(&j, &vm, &l, &err), 0, "%s", err.msg);
	cr_assert_eq(l.cpu_quota_us, 0, "max: no quota");
	cr_assert_eq(l.cpu_period_us, 50000);
	cr_assert_eq(l.cpu_weight, 300);
	cr_assert_eq(l.memory_max, 2ULL << 30);
	cr_assert_eq(l.pids_max, 20);
}

Test(jail_args, restore_needs_a_memory_limit)
{
	char *argv[] = {"vmm", "--jail", "/a", "--uid", "5", "--gid", "5", "--cgroup", "c"};
	const struct jail_vm vm = {.cpus = 1, .memory = 0};
	struct cgroup_limits l;
	struct jail_config j;
	struct error err;

	cr_assert_eq(parse(&j, &err, ARGC(argv), argv), 8);
	cr_assert_eq(jail_limits(&j, &vm, &l, &err), -EINVAL);
	cr_assert(strstr(err.msg, "memory_max=SIZE"), "%s", err.msg);
}
