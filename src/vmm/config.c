// SPDX-License-Identifier: MIT
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "../common/util.h"

enum {
	OPT_KERNEL = 256,
	OPT_INITRD,
	OPT_CMDLINE,
	OPT_CPUS,
	OPT_MEMORY,
	OPT_SERIAL,
	OPT_ON_REBOOT,
	OPT_KVM_DEVICE,
	OPT_RNG,
	OPT_DISK,
	OPT_VERBOSE,
	OPT_HELP,
	OPT_VERSION,
};

static const struct option config_options[] = {
	{"kernel", required_argument, NULL, OPT_KERNEL},
	{"initrd", required_argument, NULL, OPT_INITRD},
	{"cmdline", required_argument, NULL, OPT_CMDLINE},
	{"cpus", required_argument, NULL, OPT_CPUS},
	{"memory", required_argument, NULL, OPT_MEMORY},
	{"serial", required_argument, NULL, OPT_SERIAL},
	{"on-reboot", required_argument, NULL, OPT_ON_REBOOT},
	{"kvm-device", required_argument, NULL, OPT_KVM_DEVICE},
	{"rng", no_argument, NULL, OPT_RNG},
	{"disk", required_argument, NULL, OPT_DISK},
	{"verbose", no_argument, NULL, OPT_VERBOSE},
	{"help", no_argument, NULL, OPT_HELP},
	{"version", no_argument, NULL, OPT_VERSION},
	{NULL, 0, NULL, 0},
};

void config_usage(const char *prog)
{
	printf("usage: %s --kernel PATH [options]\n"
	       "\n"
	       "  --kernel PATH          bzImage (64-bit boot protocol 2.12+) or PVH ELF kernel\n"
	       "  --initrd PATH          initial ramdisk\n"
	       "  --cmdline STR          kernel command line\n"
	       "  --cpus N               virtual CPUs (default 1)\n"
	       "  --memory SIZE          guest RAM, e.g. 512M, 4G (default 256M)\n"
	       "  --serial BACKEND       COM1: stdio (default), file:PATH, unix:PATH\n"
	       "  --on-reboot ACTION     exit (status 3) or restart (default exit)\n"
	       "  --kvm-device PATH      KVM device (default /dev/kvm)\n"
	       "  --rng                  virtio-rng device fed from the host's getrandom()\n"
	       "  --disk path=IMG[,readonly=on][,id=NAME][,direct=on]\n"
	       "                         virtio-blk disk on a raw image (repeat, up to 16)\n"
	       "  --verbose              more log output (repeat for debug)\n"
	       "  --help, --version\n"
	       "\n"
	       "Exit status: 0 guest powered off, 1 error, 2 bad usage, 3 guest rebooted,\n"
	       "4 stopped by a signal.\n",
	       prog);
}

static int config_memory(struct vmm_config *cfg, const char *arg, uint64_t host_ram,
			 struct error *err)
{
	uint64_t v;

	if (parse_size(arg, &v) < 0)
		return error_set(err, EINVAL, "--memory: '%s' is not a size (examples: 512M, 4G)",
				 arg);
	if (v < CONFIG_MIN_MEMORY)
		return error_set(err, EINVAL, "--memory: %s is too small (minimum 4M)", arg);
	if (v % (2 * MiB))
		return error_set(err, EINVAL, "--memory: %s is not a multiple of 2M", arg);
	if (host_ram && v > host_ram)
		return error_set(err, ERANGE,
				 "--memory: %s is more than this host's %llu MiB of RAM", arg,
				 (unsigned long long)(host_ram >> 20));
	cfg->memory = v;
	return 0;
}

static int config_cpus(struct vmm_config *cfg, const char *arg, struct error *err)
{
	uint64_t v;
	int ret = parse_uint(arg, 1, CONFIG_MAX_CPUS, &v);

	if (ret == -ERANGE)
		return error_set(err, ERANGE, "--cpus: %s is out of range (1 to %d)", arg,
				 CONFIG_MAX_CPUS);
	if (ret)
		return error_set(err, EINVAL, "--cpus: '%s' is not a number", arg);
	cfg->cpus = v;
	return 0;
}

static int config_serial(struct vmm_config *cfg, const char *arg, struct error *err)
{
	if (!strcmp(arg, "stdio") || (!strncmp(arg, "file:", 5) && arg[5]) ||
	    (!strncmp(arg, "unix:", 5) && arg[5])) {
		cfg->serial = arg;
		return 0;
	}
	return error_set(err, EINVAL,
			 "--serial: unknown backend '%s' (expected stdio, file:PATH or unix:PATH)",
			 arg);
}

static int config_on_reboot(struct vmm_config *cfg, const char *arg, struct error *err)
{
	if (!strcmp(arg, "exit"))
		cfg->on_reboot = ON_REBOOT_EXIT;
	else if (!strcmp(arg, "restart"))
		cfg->on_reboot = ON_REBOOT_RESTART;
	else
		return error_set(err, EINVAL, "--on-reboot: '%s' is not exit or restart", arg);
	return 0;
}

#define DISK_SYNTAX "path=IMG[,readonly=on][,id=NAME][,direct=on]"

static int config_on_off(const char *key, const char *val, bool *out, struct error *err)
{
	if (!strcmp(val, "on"))
		*out = true;
	else if (!strcmp(val, "off"))
		*out = false;
	else
		return error_set(err, EINVAL, "--disk: %s='%s' is not on or off", key, val);
	return 0;
}

/* Copies val into a fixed field; the option's text may not outlive parsing. */
static int config_disk_str(char *dst, size_t size, const char *key, const char *val,
			   struct error *err)
{
	if (!*val)
		return error_set(err, EINVAL, "--disk: %s= is empty", key);
	if (strlen(val) >= size)
		return error_set(err, EINVAL, "--disk: %s= is longer than %zu characters", key,
				 size - 1);
	strcpy(dst, val);
	return 0;
}

static int config_disk_kv(struct config_disk *d, const char *key, const char *val,
			  struct error *err)
{
	if (!strcmp(key, "path"))
		return config_disk_str(d->path, sizeof(d->path), key, val, err);
	if (!strcmp(key, "id"))
		return config_disk_str(d->id, sizeof(d->id), key, val, err);
	if (!strcmp(key, "readonly"))
		return config_on_off(key, val, &d->read_only, err);
	if (!strcmp(key, "direct"))
		return config_on_off(key, val, &d->direct, err);
	return error_set(err, EINVAL, "--disk: unknown key '%s' (expected %s)", key, DISK_SYNTAX);
}

/* One comma-separated item, item[0, len). */
static int config_disk_item(struct config_disk *d, const char *item, size_t len, struct error *err)
{
	char buf[CONFIG_PATH_MAX + 16];
	char *eq;

	if (len >= sizeof(buf))
		return error_set(err, EINVAL, "--disk: option too long");
	memcpy(buf, item, len);
	buf[len] = 0;
	eq = strchr(buf, '=');
	if (!eq)
		return error_set(err, EINVAL, "--disk: '%s' is not key=value (expected %s)", buf,
				 DISK_SYNTAX);
	*eq = 0;
	return config_disk_kv(d, buf, eq + 1, err);
}

static int config_disk_unique(const struct vmm_config *cfg, const struct config_disk *d,
			      struct error *err)
{
	for (unsigned int i = 0; i < cfg->ndisks; i++)
		if (d->id[0] && !strcmp(cfg->disks[i].id, d->id))
			return error_set(err, EINVAL, "--disk: duplicate id '%s'", d->id);
	return 0;
}

static int config_disk(struct vmm_config *cfg, const char *arg, struct error *err)
{
	struct config_disk *d;
	const char *p = arg;
	int ret;

	if (cfg->ndisks == CONFIG_MAX_DISKS)
		return error_set(err, E2BIG, "--disk: more than %d disks", CONFIG_MAX_DISKS);
	d = &cfg->disks[cfg->ndisks];
	memset(d, 0, sizeof(*d));
	for (;;) {
		size_t len = strcspn(p, ",");

		ret = config_disk_item(d, p, len, err);
		if (ret)
			return ret;
		if (!p[len])
			break;
		p += len + 1;
	}
	if (!d->path[0])
		return error_set(err, EINVAL, "--disk: missing path= (expected %s)", DISK_SYNTAX);
	ret = config_disk_unique(cfg, d, err);
	if (ret)
		return ret;
	cfg->ndisks++;
	return 0;
}

static int config_option(struct vmm_config *cfg, int opt, const char *arg, uint64_t host_ram,
			 struct error *err)
{
	switch (opt) {
	case OPT_KERNEL:
		cfg->kernel = arg;
		return 0;
	case OPT_INITRD:
		cfg->initrd = arg;
		return 0;
	case OPT_CMDLINE:
		cfg->cmdline = arg;
		return 0;
	case OPT_CPUS:
		return config_cpus(cfg, arg, err);
	case OPT_MEMORY:
		return config_memory(cfg, arg, host_ram, err);
	case OPT_SERIAL:
		return config_serial(cfg, arg, err);
	case OPT_ON_REBOOT:
		return config_on_reboot(cfg, arg, err);
	case OPT_KVM_DEVICE:
		cfg->kvm_device = arg;
		return 0;
	case OPT_RNG:
		cfg->rng = true;
		return 0;
	case OPT_DISK:
		return config_disk(cfg, arg, err);
	case OPT_VERBOSE:
		cfg->verbose++;
		return 0;
	case OPT_HELP:
		cfg->help = true;
		return 0;
	case OPT_VERSION:
		cfg->version = true;
		return 0;
	}
	return error_set(err, EINVAL, "internal: unhandled option %d", opt);
}

static void config_defaults(struct vmm_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->cpus = 1;
	cfg->memory = 256 * MiB;
	cfg->serial = "stdio";
	cfg->on_reboot = ON_REBOOT_EXIT;
	cfg->kvm_device = "/dev/kvm";
}

int config_parse(struct vmm_config *cfg, int argc, char **argv, uint64_t host_ram,
		 struct error *err)
{
	int opt, ret;

	config_defaults(cfg);
	opterr = 0; /* we word the errors ourselves, once */
	optind = 1;
	while ((opt = getopt_long(argc, argv, ":", config_options, NULL)) != -1) {
		if (opt == '?')
			return error_set(err, EINVAL, "unknown option '%s' (see --help)",
					 argv[optind - 1]);
		if (opt == ':')
			return error_set(err, EINVAL, "option '%s' needs a value",
					 argv[optind - 1]);
		ret = config_option(cfg, opt, optarg, host_ram, err);
		if (ret)
			return ret;
	}
	if (optind < argc)
		return error_set(err, EINVAL, "unexpected argument '%s' (see --help)",
				 argv[optind]);
	if (cfg->help || cfg->version)
		return 0;
	if (!cfg->kernel)
		return error_set(err, EINVAL, "--kernel is required (see --help)");
	return 0;
}
