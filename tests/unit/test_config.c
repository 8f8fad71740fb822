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

/* Parses "vmm --kernel k OPT ARG" and expects an error containing want. */
static void expect_error(const char *opt, const char *arg, const char *want)
{
	char *argv[] = {"vmm", "--kernel", "k", (char *)opt, (char *)arg};
	struct vmm_config cfg;
	struct error err;

	cr_assert_lt(parse(&cfg, &err, arg ? 5 : 4, argv), 0, "%s %s", opt, arg);
	cr_assert(strstr(err.msg, want), "%s %s: got '%s', want '%s'", opt, arg, err.msg, want);
	cr_assert_null(strchr(err.msg, '\n'), "one line");
}

Test(config, disk_queues)
{
	char *argv[] = {"vmm", "--kernel", "k", "--disk", "path=a,queues=4", "--disk", "path=b"};
	struct vmm_config cfg;
	struct error err;

	cr_assert_eq(parse(&cfg, &err, ARGC(argv), argv), 0, "%s", err.msg);
	cr_assert_eq(cfg.disks[0].queues, 4);
	cr_assert_eq(cfg.disks[1].queues, 1, "one queue by default");
	expect_error("--disk", "path=a,queues=0", "--disk: queues=0 is out of range (1 to 16)");
	expect_error("--disk", "path=a,queues=17", "out of range");
	expect_error("--disk", "path=a,queues=many", "--disk: queues='many' is not a number");
}

Test(config, disk_rate_limits)
{
	char *argv[] = {"vmm",
			"--kernel",
			"k",
			"--disk",
			"path=a,iops=200,bps=10M,iops_burst=50,bps_burst=1G",
			"--disk",
			"path=b",
			"--disk",
			"path=c,bps=4096,iops=0"};
	struct vmm_config cfg;
	struct error err;

	cr_assert_eq(parse(&cfg, &err, ARGC(argv), argv), 0, "%s", err.msg);
	cr_assert_eq(cfg.disks[0].iops, 200);
	cr_assert_eq(cfg.disks[0].bps, 10ULL << 20);
	cr_assert_eq(cfg.disks[0].iops_burst, 50);
	cr_assert_eq(cfg.disks[0].bps_burst, 1ULL << 30);
	cr_assert_eq(cfg.disks[1].iops | cfg.disks[1].bps, 0, "unlimited by default");
	cr_assert_eq(cfg.disks[1].iops_burst | cfg.disks[1].bps_burst, 0);
	cr_assert_eq(cfg.disks[2].bps, 4096);
	cr_assert_eq(cfg.disks[2].iops, 0);
	expect_error("--disk", "path=a,iops=fast", "--disk: iops='fast' is not a number");
	expect_error("--disk", "path=a,iops=-1", "--disk: iops='-1' is not a number");
	expect_error("--disk", "path=a,iops=1000000000000001",
		     "--disk: iops=1000000000000001 is out of range (0 to 1000000000000000)");
	expect_error("--disk", "path=a,bps=10X", "--disk: bps='10X' is not a size");
	expect_error("--disk", "path=a,bps=1000T", "--disk: bps=1000T is out of range");
	expect_error("--disk", "path=a,bps=", "--disk: bps='' is not a size");
	expect_error("--disk", "path=a,iops_burst=10", "--disk: iops_burst= needs iops=");
	expect_error("--disk", "path=a,bps_burst=1M,iops=5", "--disk: bps_burst= needs bps=");
}

Test(config, nets)
{
	char *argv[] = {"vmm",
			"--kernel",
			"k",
			"--net",
			"tap=tap0",
			"--net",
			"tap=tap1,mac=52:54:00:AB:cd:ef,queues=2,id=eth1"};
	struct vmm_config cfg;
	struct error err;

	cr_assert_eq(parse(&cfg, &err, ARGC(argv), argv), 0, "%s", err.msg);
	cr_assert_eq(cfg.nnets, 2);
	cr_assert_str_eq(cfg.nets[0].tap, "tap0");
	cr_assert_not(cfg.nets[0].has_mac);
	cr_assert_eq(cfg.nets[0].queues, 1);
	cr_assert(cfg.nets[1].has_mac);
	cr_assert_arr_eq(cfg.nets[1].mac, ((uint8_t[]){0x52, 0x54, 0, 0xab, 0xcd, 0xef}), 6);
	cr_assert_eq(cfg.nets[1].queues, 2);
	cr_assert_str_eq(cfg.nets[1].id, "eth1");
}

Test(config, net_errors_name_the_problem)
{
	static const char *const cases[][2] = {
		{"mac=52:54:00:00:00:01", "--net: missing tap="},
		{"tap=", "--net: tap= is empty"},
		{"tap=0123456789abcdef", "--net: tap= is longer than 15 characters"},
		{"tap=t,mac=52:54:00:00:00", "--net: mac='52:54:00:00:00' is not a MAC address"},
		{"tap=t,mac=52-54-00-00-00-01", "is not a MAC address"},
		{"tap=t,mac=52:54:00:00:00:0g", "is not a MAC address"},
		{"tap=t,mac=01:00:5e:00:00:01",
		 "--net: mac=01:00:5e:00:00:01 is a multicast address"},
		{"tap=t,mac=00:00:00:00:00:00", "is all zeroes"},
		{"tap=t,queues=0", "--net: queues=0 is out of range"},
		{"tap=t,speed=10", "--net: unknown key 'speed'"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_error("--net", cases[i][0], cases[i][1]);
}

Test(config, net_duplicates)
{
	static const char *const cases[][3] = {
		{"tap=a", "tap=a", "--net: tap 'a' given twice"},
		{"tap=a,id=x", "tap=b,id=x", "--net: duplicate id 'x'"},
		{"tap=a,mac=52:54:00:00:00:01", "tap=b,mac=52:54:00:00:00:01",
		 "--net: duplicate mac on 'a' and 'b'"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *argv[] = {"vmm",	 "--kernel",	     "k", "--net", (char *)cases[i][0],
				"--net", (char *)cases[i][1]};
		struct vmm_config cfg;
		struct error err;

		cr_assert_lt(parse(&cfg, &err, ARGC(argv), argv), 0, "case %zu", i);
		cr_assert(strstr(err.msg, cases[i][2]), "case %zu: got '%s'", i, err.msg);
	}
}

Test(config, vsock)
{
	char *argv[] = {"vmm", "--kernel", "k", "--vsock", "cid=42,uds=/tmp/v.sock"};
	struct vmm_config cfg;
	struct error err;

	cr_assert_eq(parse(&cfg, &err, ARGC(argv), argv), 0, "%s", err.msg);
	cr_assert(cfg.vsock.enabled);
	cr_assert_eq(cfg.vsock.cid, 42);
	cr_assert_str_eq(cfg.vsock.uds, "/tmp/v.sock");
	expect_error("--vsock", "uds=/x", "--vsock: missing cid=");
	expect_error("--vsock", "cid=3", "--vsock: missing uds=");
	expect_error("--vsock", "cid=2,uds=/x", "--vsock: cid=2 is out of range (3 to 4294967294)");
	expect_error("--vsock", "cid=4294967295,uds=/x", "out of range");
	expect_error("--vsock", "cid=x,uds=/x", "--vsock: cid='x' is not a number");
	expect_error("--vsock",
		     "cid=3,uds=/tmp/0123456789012345678901234567890123456789012345678901234567890"
		     "12345678901234567890123456789012345678901234567890",
		     "--vsock: uds= is longer than 96 characters");
}

Test(config, vsock_twice)
{
	char *argv[] = {"vmm",		"--kernel", "k",	   "--vsock",
			"cid=3,uds=/a", "--vsock",  "cid=4,uds=/b"};
	struct vmm_config cfg;
	struct error err;

	cr_assert_lt(parse(&cfg, &err, ARGC(argv), argv), 0);
	cr_assert(strstr(err.msg, "--vsock: given twice"), "%s", err.msg);
}

Test(config, balloon_forms)
{
	char *bare[] = {"vmm", "--kernel", "k", "--balloon"};
	char *glued[] = {"vmm", "--kernel", "k", "--balloon=size=64M,stats=5"};
	char *spaced[] = {"vmm",    "--kernel", "k", "--balloon", "size=32M,free_page_reporting=on",
			  "--cpus", "2"};
	struct vmm_config cfg;
	struct error err;

	cr_assert_eq(parse(&cfg, &err, ARGC(bare), bare), 0, "%s", err.msg);
	cr_assert(cfg.balloon.enabled);
	cr_assert_eq(cfg.balloon.size, 0);
	cr_assert_eq(parse(&cfg, &err, ARGC(glued), glued), 0, "%s", err.msg);
	cr_assert_eq(cfg.balloon.size, 64 * MiB);
	cr_assert_eq(cfg.balloon.stats_period, 5);
	cr_assert_eq(parse(&cfg, &err, ARGC(spaced), spaced), 0, "%s", err.msg);
	cr_assert_eq(cfg.balloon.size, 32 * MiB);
	cr_assert(cfg.balloon.free_page_reporting);
	cr_assert_eq(cfg.cpus, 2, "options after the balloon's list are still parsed");
}

Test(config, balloon_errors)
{
	char *toobig[] = {"vmm", "--kernel", "k", "--memory", "128M", "--balloon", "size=128M"};
	struct vmm_config cfg;
	struct error err;

	expect_error("--balloon", "size=lots", "--balloon: size='lots' is not a size");
	expect_error("--balloon", "stats=-1", "--balloon: stats='-1' is not a number");
	expect_error("--balloon", "colour=red", "--balloon: unknown key 'colour'");
	cr_assert_lt(parse(&cfg, &err, ARGC(toobig), toobig), 0);
	cr_assert(strstr(err.msg, "--balloon: size=128 MiB is not below the 128 MiB of --memory"),
		  "%s", err.msg);
}

Test(config, console_virtio)
{
	char *argv[] = {"vmm", "--kernel", "k", "--console-virtio", "unix:/tmp/hvc0"};
	char *both_stdio[] = {"vmm", "--kernel", "k", "--console-virtio", "stdio"};
	char *twice[] = {"vmm", "--kernel", "k", "--console-virtio=unix:/a",
			 "--console-virtio=file:/b"};
	struct vmm_config cfg;
	struct error err;

	cr_assert_eq(parse(&cfg, &err, ARGC(argv), argv), 0, "%s", err.msg);
	cr_assert_str_eq(cfg.console_virtio, "unix:/tmp/hvc0");
	expect_error("--console-virtio", "tcp:1", "--console-virtio: unknown backend 'tcp:1'");
	cr_assert_lt(parse(&cfg, &err, ARGC(both_stdio), both_stdio), 0);
	cr_assert(strstr(err.msg, "stdio is taken by --serial"), "%s", err.msg);
	cr_assert_lt(parse(&cfg, &err, ARGC(twice), twice), 0);
	cr_assert(strstr(err.msg, "--console-virtio: given twice"), "%s", err.msg);
}

Test(config, api_sock)
{
	char *argv[] = {"vmm", "--kernel", "k", "--api-sock", "/run/vm1.sock"};
	struct vmm_config cfg;
	struct error err;

	cr_assert_eq(parse(&cfg, &err, ARGC(argv), argv), 0, "%s", err.msg);
	cr_assert_str_eq(cfg.api_sock, "/run/vm1.sock");
	expect_error("--api-sock", "", "--api-sock: '' is not a socket path (1 to 107 characters)");
}

Test(config, restore_takes_host_side_options_only)
{
	char *ok[] = {"vmm",	     "--restore",  "/snap/a",	  "--serial",
		      "file:/tmp/c", "--api-sock", "/tmp/a.sock", "--verbose"};
	char *bad[] = {"vmm", "--restore", "/snap/a", "--memory", "1G"};
	struct vmm_config cfg;
	struct error err;

	cr_assert_eq(parse(&cfg, &err, ARGC(ok), ok), 0, "%s", err.msg);
	cr_assert_str_eq(cfg.restore, "/snap/a");
	cr_assert_null(cfg.kernel, "no --kernel needed");
	cr_assert_str_eq(cfg.serial, "file:/tmp/c");
	cr_assert_eq(cfg.argc, ARGC(ok));
	cr_assert_lt(parse(&cfg, &err, ARGC(bad), bad), 0);
	cr_assert(strstr(err.msg, "--memory cannot be combined with --restore"), "%s", err.msg);
	expect_error("--restore", "", "--restore: the snapshot directory is empty");
}

Test(config, seccomp_modes)
{
	char *plain[] = {"vmm", "--kernel", "k"};
	char *kill[] = {"vmm", "--kernel", "k", "--seccomp", "kill"};
	char *log[] = {"vmm", "--kernel", "k", "--seccomp=log"};
	char *off[] = {"vmm", "--kernel", "k", "--seccomp", "off"};
	char *restore[] = {"vmm", "--restore", "/snap/a", "--seccomp", "log"};
	struct vmm_config cfg;
	struct error err;

	cr_assert_eq(parse(&cfg, &err, ARGC(plain), plain), 0, "%s", err.msg);
	cr_assert_eq(cfg.seccomp, SANDBOX_SECCOMP_KILL, "the sandbox is on by default");
	cr_assert_eq(parse(&cfg, &err, ARGC(kill), kill), 0, "%s", err.msg);
	cr_assert_eq(cfg.seccomp, SANDBOX_SECCOMP_KILL);
	cr_assert_eq(parse(&cfg, &err, ARGC(log), log), 0, "%s", err.msg);
	cr_assert_eq(cfg.seccomp, SANDBOX_SECCOMP_LOG);
	cr_assert_eq(parse(&cfg, &err, ARGC(off), off), 0, "%s", err.msg);
	cr_assert_eq(cfg.seccomp, SANDBOX_SECCOMP_OFF);
	/* How the restored process is sandboxed is the host's choice, not the snapshot's. */
	cr_assert_eq(parse(&cfg, &err, ARGC(restore), restore), 0, "%s", err.msg);
	cr_assert_eq(cfg.seccomp, SANDBOX_SECCOMP_LOG);
	expect_error("--seccomp", "trap", "--seccomp: 'trap' is not kill, log or off");
	expect_error("--seccomp", "", "--seccomp: '' is not kill, log or off");
	expect_error("--seccomp", NULL, "option '--seccomp' needs a value");
}

Test(config, disk_overlay)
{
	char *argv[] = {"vmm", "--kernel", "k", "--disk", "path=/b.img,overlay=/t.ovl,queues=2"};
	char *ro[] = {"vmm", "--kernel", "k", "--disk", "path=/b.img,overlay=/t.ovl,readonly=on"};
	char *dio[] = {"vmm", "--kernel", "k", "--disk", "path=/b.img,direct=on,overlay=/t.ovl"};
	struct vmm_config cfg;
	struct error err;

	cr_assert_eq(parse(&cfg, &err, ARGC(argv), argv), 0, "%s", err.msg);
	cr_assert_str_eq(cfg.disks[0].path, "/b.img");
	cr_assert_str_eq(cfg.disks[0].overlay, "/t.ovl");
	cr_assert_eq(cfg.disks[0].frozen[0], 0);
	cr_assert_eq(parse(&cfg, &err, ARGC(ro), ro), -EINVAL);
	cr_assert(strstr(err.msg, "--disk: overlay="), "%s", err.msg);
	cr_assert_eq(parse(&cfg, &err, ARGC(dio), dio), -EINVAL);
	cr_assert(strstr(err.msg, "direct=on"), "%s", err.msg);
	expect_error("--disk", "path=/b.img,overlay=", "--disk: overlay= is empty");
}

/* --overlay DISK=FILE names a disk as PUT /vm/disk-limits does: id, path or index. */
Test(config, overlay_option)
{
	char *argv[] = {"vmm",
			"--kernel",
			"k",
			"--disk",
			"path=/a.img",
			"--disk",
			"path=/b.img,id=bee",
			"--disk",
			"path=/c.img",
			"--overlay",
			"bee=/1.ovl",
			"--overlay",
			"/a.img=/0.ovl",
			"--overlay",
			"2=/x.ovl",
			"--overlay",
			"2=/2.ovl"};
	char *restore[] = {"vmm", "--restore", "/snap", "--overlay", "0=/r.ovl"};
	char *unknown[] = {"vmm", "--kernel", "k", "--disk", "path=/a.img", "--overlay", "3=/x"};
	char *ro[] = {"vmm",	   "--kernel", "k", "--disk", "path=/a.img,readonly=on",
		      "--overlay", "0=/x"};
	struct vmm_config cfg;
	struct error err;

	cr_assert_eq(parse(&cfg, &err, ARGC(argv), argv), 0, "%s", err.msg);
	cr_assert_str_eq(cfg.disks[0].overlay, "/0.ovl");
	cr_assert_str_eq(cfg.disks[1].overlay, "/1.ovl");
	cr_assert_str_eq(cfg.disks[2].overlay, "/2.ovl", "the last one given wins");
	cr_assert_eq(config_find_disk(&cfg, "bee", 3), 1);
	cr_assert_eq(config_find_disk(&cfg, "/b.img", 6), -1, "a disk with an id goes by it");
	cr_assert_eq(config_find_disk(&cfg, "9", 1), -1);
	cr_assert_eq(parse(&cfg, &err, ARGC(restore), restore), 0, "%s", err.msg);
	cr_assert_eq(cfg.noverlays, 1);
	cr_assert_eq(parse(&cfg, &err, ARGC(unknown), unknown), -ENOENT);
	cr_assert(strstr(err.msg, "--overlay: no disk '3'"), "%s", err.msg);
	cr_assert_eq(parse(&cfg, &err, ARGC(ro), ro), -EINVAL);
	cr_assert(strstr(err.msg, "read-only"), "%s", err.msg);
	expect_error("--overlay", "noequals", "--overlay: 'noequals' is not DISK=FILE");
	expect_error("--overlay", "=/x", "is not DISK=FILE");
	expect_error("--overlay", "0=", "is not DISK=FILE");
}
