// SPDX-License-Identifier: MIT
#include <criterion/criterion.h>
#include <errno.h>

#include "../../src/common/util.h"
#include "../../src/vmm/config.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])))

static int parse(struct vmm_config *cfg, struct error *err, int argc, char **argv)
{
	error_clear(err);
	return config_parse(cfg, argc, argv, 24 * GiB, err);
}

Test(config, full_command_line)
{
	char *argv[] = {"vmm",		 "--kernel",	"k",	       "--initrd=i", "--cmdline",
			"console=ttyS0", "--cpus",	"8",	       "--memory",   "1G",
			"--serial",	 "unix:/tmp/s", "--on-reboot", "restart"};
	struct vmm_config cfg;
	struct error err;

	cr_assert_eq(parse(&cfg, &err, ARGC(argv), argv), 0, "%s", err.msg);
	cr_assert_str_eq(cfg.kernel, "k");
	cr_assert_str_eq(cfg.initrd, "i");
	cr_assert_str_eq(cfg.cmdline, "console=ttyS0");
	cr_assert_eq(cfg.cpus, 8);
	cr_assert_eq(cfg.memory, GiB);
	cr_assert_str_eq(cfg.serial, "unix:/tmp/s");
	cr_assert_eq(cfg.on_reboot, ON_REBOOT_RESTART);
}

Test(config, defaults)
{
	char *argv[] = {"vmm", "--kernel", "k"};
	struct vmm_config cfg;
	struct error err;

	cr_assert_eq(parse(&cfg, &err, ARGC(argv), argv), 0);
	cr_assert_eq(cfg.cpus, 1);
	cr_assert_eq(cfg.memory, 256 * MiB);
	cr_assert_str_eq(cfg.serial, "stdio");
	cr_assert_eq(cfg.on_reboot, ON_REBOOT_EXIT);
	cr_assert_str_eq(cfg.kvm_device, "/dev/kvm");
}

Test(config, rng_flag)
{
	char *argv[] = {"vmm", "--kernel", "k", "--rng"};
	char *plain[] = {"vmm", "--kernel", "k"};
	char *valued[] = {"vmm", "--kernel", "k", "--rng=1"};
	struct vmm_config cfg;
	struct error err;

	cr_assert_eq(parse(&cfg, &err, ARGC(argv), argv), 0, "%s", err.msg);
	cr_assert(cfg.rng);
	cr_assert_eq(parse(&cfg, &err, ARGC(plain), plain), 0);
	cr_assert_not(cfg.rng);
	cr_assert_lt(parse(&cfg, &err, ARGC(valued), valued), 0);
}

Test(config, disks)
{
	char *argv[] = {"vmm",	       "--kernel",
			"k",	       "--disk",
			"path=/a.img", "--disk=path=b.img,readonly=on,id=data,direct=on",
			"--disk",      "readonly=off,path=c,direct=off"};
	struct vmm_config cfg;
	struct error err;

	cr_assert_eq(parse(&cfg, &err, ARGC(argv), argv), 0, "%s", err.msg);
	cr_assert_eq(cfg.ndisks, 3);
	cr_assert_str_eq(cfg.disks[0].path, "/a.img");
	cr_assert_str_eq(cfg.disks[0].id, "");
	cr_assert_not(cfg.disks[0].read_only);
	cr_assert_not(cfg.disks[0].direct);
	cr_assert_str_eq(cfg.disks[1].path, "b.img");
	cr_assert_str_eq(cfg.disks[1].id, "data");
	cr_assert(cfg.disks[1].read_only);
	cr_assert(cfg.disks[1].direct);
	cr_assert_str_eq(cfg.disks[2].path, "c");
	cr_assert_not(cfg.disks[2].read_only);
}

Test(config, at_most_16_disks)
{
	char *argv[3 + 2 * (CONFIG_MAX_DISKS + 1)] = {"vmm", "--kernel", "k"};
	struct vmm_config cfg;
	struct error err;

	for (int i = 0; i <= CONFIG_MAX_DISKS; i++) {
		argv[3 + 2 * i] = "--disk";
		argv[4 + 2 * i] = "path=x";
	}
	cr_assert_eq(parse(&cfg, &err, ARGC(argv) - 2, argv), 0, "%s", err.msg);
	cr_assert_eq(cfg.ndisks, CONFIG_MAX_DISKS);
	cr_assert_lt(parse(&cfg, &err, ARGC(argv), argv), 0);
	cr_assert(strstr(err.msg, "more than 16 disks"), "%s", err.msg);
}

Test(config, disk_errors_name_the_problem)
{
	static const char *const cases[][2] = {
		{"readonly=on", "--disk: missing path="},
		{"", "--disk: '' is not key=value"},
		{"img.raw", "--disk: 'img.raw' is not key=value"},
		{"path=a,size=1G", "--disk: unknown key 'size'"},
		{"path=a,readonly=yes", "--disk: readonly='yes' is not on or off"},
		{"path=a,direct=", "--disk: direct='' is not on or off"},
		{"path=", "--disk: path= is empty"},
		{"path=a,id=", "--disk: id= is empty"},
		{"path=a,id=123456789012345678901", "--disk: id= is longer than 20 characters"},
		{"path=a,", "--disk: '' is not key=value"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *argv[] = {"vmm", "--kernel", "k", "--disk", (char *)cases[i][0]};
		struct vmm_config cfg;
		struct error err;

		cr_assert_lt(parse(&cfg, &err, ARGC(argv), argv), 0, "case %zu", i);
		cr_assert(strstr(err.msg, cases[i][1]), "case %zu: got '%s', want '%s'", i, err.msg,
			  cases[i][1]);
		cr_assert_null(strchr(err.msg, '\n'), "one line");
	}
}

Test(config, duplicate_disk_id)
{
	char *argv[] = {"vmm", "--kernel", "k", "--disk", "path=a,id=x", "--disk", "path=b,id=x"};
	char *ok[] = {"vmm", "--kernel", "k", "--disk", "path=a,id=x", "--disk", "path=b,id=y"};
	struct vmm_config cfg;
	struct error err;

	cr_assert_lt(parse(&cfg, &err, ARGC(argv), argv), 0);
	cr_assert(strstr(err.msg, "--disk: duplicate id 'x'"), "%s", err.msg);
	cr_assert_eq(parse(&cfg, &err, ARGC(ok), ok), 0, "%s", err.msg);
}

struct bad_case {
	char *argv[4];
	const char *message;
};

Test(config, errors_name_the_problem)
{
	static struct bad_case cases[] = {
		{{"vmm", "--kernel", "k", "--bogus"}, "unknown option '--bogus'"},
		{{"vmm", "--kernel", "k", "--cpus"}, "needs a value"},
		{{"vmm", "--kernel", "k", "stray"}, "unexpected argument 'stray'"},
		{{"vmm", "--cpus", "2", NULL}, "--kernel is required"},
		{{"vmm", "--kernel", "k", "--cpus=0"}, "--cpus: 0 is out of range"},
		{{"vmm", "--kernel", "k", "--cpus=4096"}, "--cpus: 4096 is out of range"},
		{{"vmm", "--kernel", "k", "--cpus=two"}, "--cpus: 'two' is not a number"},
		{{"vmm", "--kernel", "k", "--memory=lots"}, "--memory: 'lots' is not a size"},
		{{"vmm", "--kernel", "k", "--memory=1M"}, "too small"},
		{{"vmm", "--kernel", "k", "--memory=5M"}, "not a multiple of 2M"},
		{{"vmm", "--kernel", "k", "--memory=64G"}, "more than this host's 24576 MiB"},
		{{"vmm", "--kernel", "k", "--serial=tcp:1"}, "unknown backend 'tcp:1'"},
		{{"vmm", "--kernel", "k", "--serial=file:"}, "unknown backend 'file:'"},
		{{"vmm", "--kernel", "k", "--on-reboot=maybe"}, "'maybe' is not exit or restart"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vmm_config cfg;
		struct error err;
		int argc = cases[i].argv[3] ? 4 : 3;

		cr_assert_lt(parse(&cfg, &err, argc, cases[i].argv), 0, "case %zu", i);
		cr_assert(strstr(err.msg, cases[i].message), "case %zu: got '%s', want '%s'", i,
			  err.msg, cases[i].message);
	}
}

Test(config, help_and_version_need_no_kernel)
{
	char *h[] = {"vmm", "--help"};
	char *v[] = {"vmm", "--version"};
	struct vmm_config cfg;
	struct error err;

	cr_assert_eq(parse(&cfg, &err, 2, h), 0);
	cr_assert(cfg.help);
	cr_assert_eq(parse(&cfg, &err, 2, v), 0);
	cr_assert(cfg.version);
}
