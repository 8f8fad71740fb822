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
	OPT_NET,
	OPT_CONSOLE_VIRTIO,
	OPT_VSOCK,
	OPT_BALLOON,
	OPT_API_SOCK,
	OPT_RESTORE,
	OPT_SECCOMP,
	OPT_VERBOSE,
	OPT_HELP,
	OPT_VERSION,
	OPT_OVERLAY,
	OPT_INCOMING,
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
	{"net", required_argument, NULL, OPT_NET},
	{"console-virtio", required_argument, NULL, OPT_CONSOLE_VIRTIO},
	{"vsock", required_argument, NULL, OPT_VSOCK},
	{"balloon", optional_argument, NULL, OPT_BALLOON},
	{"api-sock", required_argument, NULL, OPT_API_SOCK},
	{"restore", required_argument, NULL, OPT_RESTORE},
	{"seccomp", required_argument, NULL, OPT_SECCOMP},
	{"verbose", no_argument, NULL, OPT_VERBOSE},
	{"help", no_argument, NULL, OPT_HELP},
	{"version", no_argument, NULL, OPT_VERSION},
	{"overlay", required_argument, NULL, OPT_OVERLAY},
	{"incoming", required_argument, NULL, OPT_INCOMING},
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
	       "  --serial BACKEND       COM1: stdio (default), file:PATH, unix:PATH,\n"
	       "                         unix:PATH,log=FILE (a socket, and a log of all output)\n"
	       "  --on-reboot ACTION     exit (status 3) or restart (default exit)\n"
	       "  --kvm-device PATH      KVM device (default /dev/kvm)\n"
	       "  --rng                  virtio-rng device fed from the host's getrandom()\n"
	       "  --disk path=IMG[,readonly=on][,id=NAME][,direct=on][,queues=N]\n"
	       "         [,iops=N][,bps=N][,iops_burst=N][,bps_burst=N]\n"
	       "                         virtio-blk disk on a raw image (repeat, up to 16);\n"
	       "                         iops/bps: rate limits (bps takes K M G suffixes);\n"
	       "         [,overlay=FILE]  copy-on-write: writes go to FILE (created if missing),\n"
	       "                         IMG is only read\n"
	       "  --net tap=NAME[,mac=MAC][,queues=N][,id=NAME]\n"
	       "                         virtio-net device on a tap interface (repeat, up to 8)\n"
	       "  --console-virtio BACKEND\n"
	       "                         virtio console (hvc0): stdio, file:PATH, unix:PATH\n"
	       "  --vsock cid=N,uds=PATH virtio-vsock; the host reaches guest ports through PATH\n"
	       "  --balloon [size=SIZE][,stats=SECONDS][,free_page_reporting=on]"
	       "[,deflate_on_oom=on]\n"
	       "                         virtio-balloon; size is how much the guest gives back\n"
	       "  --api-sock PATH        serve the control API (HTTP/JSON) on this unix socket\n"
	       "  --restore DIR          resume the VM snapshotted into DIR (with only --serial,\n"
	       "                         --api-sock, --on-reboot, --kvm-device, --seccomp,\n"
	       "                         --verbose, --overlay; --net id=ID,tap=NAME[,mac=MAC],\n"
	       "                         --vsock and --console-virtio replace the recorded "
	       "device)\n"
	       "  --overlay DISK=FILE    with --restore: the disk's writes go to FILE, a fresh\n"
	       "                         overlay over the snapshot's frozen disk (DISK: id,\n"
	       "                         path or index; default DIR/diskN.restore-PID.ovl)\n"
	       "  --seccomp MODE         system calls outside the VMM's allow-list: kill (the\n"
	       "                         default: logged, then exit 1), log (allowed, logged by\n"
	       "                         the kernel's audit) or off (no filter); for debugging\n"
	       "  --verbose              more log output (repeat for debug)\n"
	       "  --incoming URL         wait for a live migration on unix:PATH or\n"
	       "                         tcp:[HOST:]PORT and run the VM it brings (with the\n"
	       "                         options --restore allows)\n"
	       "  --help, --version\n"
	       "\n"
	       "Jail (these come first, before every other option; root only):\n"
	       "  --jail DIR --uid U --gid G [--netns PATH] [--cgroup PATH]\n"
	       "         [--cgroup-limits cpu_quota_us=N|max,cpu_period_us=N,cpu_weight=N,\n"
	       "                          memory_max=SIZE,pids_max=N]\n"
	       "                         run the VM as U:G in namespaces of its own, rooted in\n"
	       "                         DIR (paths are then inside DIR), in its own cgroup\n"
	       "\n"
	       "Exit status: 0 guest powered off, 1 error, 2 bad usage, 3 guest rebooted,\n"
	       "4 stopped by a signal or the API.\n",
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

static int config_seccomp(struct vmm_config *cfg, const char *arg, struct error *err)
{
	if (!strcmp(arg, "kill"))
		cfg->seccomp = SANDBOX_SECCOMP_KILL;
	else if (!strcmp(arg, "log"))
		cfg->seccomp = SANDBOX_SECCOMP_LOG;
	else if (!strcmp(arg, "off"))
		cfg->seccomp = SANDBOX_SECCOMP_OFF;
	else
		return error_set(err, EINVAL, "--seccomp: '%s' is not kill, log or off", arg);
	return 0;
}

/*
 * Device options are comma-separated key=value lists. One parser walks the
 * list and hands each pair to the device's handler, so every device words
 * its errors the same way: "--OPT: problem".
 */
struct config_kv {
	const char *opt;    /* "--disk" */
	const char *syntax; /* shown when the list itself is malformed */
	int (*pair)(struct vmm_config *cfg, void *obj, const char *key, const char *val,
		    const struct config_kv *kv, struct error *err);
};

static int config_on_off(const struct config_kv *kv, const char *key, const char *val, bool *out,
			 struct error *err)
{
	if (!strcmp(val, "on"))
		*out = true;
	else if (!strcmp(val, "off"))
		*out = false;
	else
		return error_set(err, EINVAL, "%s: %s='%s' is not on or off", kv->opt, key, val);
	return 0;
}

/* Copies val into a fixed field; the option's text may not outlive parsing. */
static int config_str(const struct config_kv *kv, char *dst, size_t size, const char *key,
		      const char *val, struct error *err)
{
	if (!*val)
		return error_set(err, EINVAL, "%s: %s= is empty", kv->opt, key);
	if (strlen(val) >= size)
		return error_set(err, EINVAL, "%s: %s= is longer than %zu characters", kv->opt, key,
				 size - 1);
	strcpy(dst, val);
	return 0;
}

static int config_uint(const struct config_kv *kv, const char *key, const char *val, uint64_t min,
		       uint64_t max, uint64_t *out, struct error *err)
{
	int ret = parse_uint(val, min, max, out);

	if (ret == -ERANGE)
		return error_set(err, ERANGE, "%s: %s=%s is out of range (%llu to %llu)", kv->opt,
				 key, val, (unsigned long long)min, (unsigned long long)max);
	if (ret)
		return error_set(err, EINVAL, "%s: %s='%s' is not a number", kv->opt, key, val);
	return 0;
}

static int config_queues(const struct config_kv *kv, const char *key, const char *val,
			 unsigned int *out, struct error *err)
{
	uint64_t v;
	int ret = config_uint(kv, key, val, 1, CONFIG_MAX_QUEUES, &v, err);

	if (!ret)
		*out = (unsigned int)v;
	return ret;
}

/* One comma-separated item, item[0, len). */
static int config_kv_item(struct vmm_config *cfg, void *obj, const char *item, size_t len,
			  const struct config_kv *kv, struct error *err)
{
	char buf[CONFIG_PATH_MAX + 32];
	char *eq;

	if (len >= sizeof(buf))
		return error_set(err, EINVAL, "%s: option too long", kv->opt);
	memcpy(buf, item, len);
	buf[len] = 0;
	eq = strchr(buf, '=');
	if (!eq)
		return error_set(err, EINVAL, "%s: '%s' is not key=value (expected %s)", kv->opt,
				 buf, kv->syntax);
	*eq = 0;
	return kv->pair(cfg, obj, buf, eq + 1, kv, err);
}

static int config_kv_parse(struct vmm_config *cfg, void *obj, const char *arg,
			   const struct config_kv *kv, struct error *err)
{
	const char *p = arg;

	for (;;) {
		size_t len = strcspn(p, ",");
		int ret = config_kv_item(cfg, obj, p, len, kv, err);

		if (ret)
			return ret;
		if (!p[len])
			return 0;
		p += len + 1;
	}
}

static int config_unknown_key(const struct config_kv *kv, const char *key, struct error *err)
{
	return error_set(err, EINVAL, "%s: unknown key '%s' (expected %s)", kv->opt, key,
			 kv->syntax);
}

/* --disk */

/* bps= and bps_burst=: bytes, with the size suffixes of --memory. */
static int config_bytes_rate(const struct config_kv *kv, const char *key, const char *val,
			     uint64_t *out, struct error *err)
{
	int ret = parse_size(val, out);

	if (ret == -ERANGE || (!ret && *out > CONFIG_RATE_MAX))
		return error_set(err, ERANGE, "%s: %s=%s is out of range (0 to %llu)", kv->opt, key,
				 val, CONFIG_RATE_MAX);
	if (ret)
		return error_set(err, EINVAL, "%s: %s='%s' is not a size (N, or N with K M G T)",
				 kv->opt, key, val);
	return 0;
}

/* The rate limit keys; 1 when key is none of them. */
static int config_disk_limit(struct config_disk *d, const char *key, const char *val,
			     const struct config_kv *kv, struct error *err)
{
	if (!strcmp(key, "iops"))
		return config_uint(kv, key, val, 0, CONFIG_RATE_MAX, &d->iops, err);
	if (!strcmp(key, "iops_burst"))
		return config_uint(kv, key, val, 0, CONFIG_RATE_MAX, &d->iops_burst, err);
	if (!strcmp(key, "bps"))
		return config_bytes_rate(kv, key, val, &d->bps, err);
	if (!strcmp(key, "bps_burst"))
		return config_bytes_rate(kv, key, val, &d->bps_burst, err);
	return 1;
}

static int config_disk_pair(struct vmm_config *cfg, void *obj, const char *key, const char *val,
			    const struct config_kv *kv, struct error *err)
{
	struct config_disk *d = obj;
	int ret;

	(void)cfg;
	if (!strcmp(key, "path"))
		return config_str(kv, d->path, sizeof(d->path), key, val, err);
	if (!strcmp(key, "id"))
		return config_str(kv, d->id, sizeof(d->id), key, val, err);
	if (!strcmp(key, "readonly"))
		return config_on_off(kv, key, val, &d->read_only, err);
	if (!strcmp(key, "direct"))
		return config_on_off(kv, key, val, &d->direct, err);
	if (!strcmp(key, "queues"))
		return config_queues(kv, key, val, &d->queues, err);
	if (!strcmp(key, "overlay"))
		return config_str(kv, d->overlay, sizeof(d->overlay), key, val, err);
	ret = config_disk_limit(d, key, val, kv, err);
	return ret <= 0 ? ret : config_unknown_key(kv, key, err);
}

static const struct config_kv config_disk_kv = {
	.opt = "--disk",
	.syntax = "path=IMG[,readonly=on][,id=NAME][,direct=on][,queues=N][,iops=N][,bps=N]"
		  "[,iops_burst=N][,bps_burst=N][,overlay=FILE]",
	.pair = config_disk_pair,
};

static int config_disk(struct vmm_config *cfg, const char *arg, struct error *err)
{
	struct config_disk *d;
	int ret;

	if (cfg->ndisks == CONFIG_MAX_DISKS)
		return error_set(err, E2BIG, "--disk: more than %d disks", CONFIG_MAX_DISKS);
	d = &cfg->disks[cfg->ndisks];
	memset(d, 0, sizeof(*d));
	d->queues = 1;
	ret = config_kv_parse(cfg, d, arg, &config_disk_kv, err);
	if (ret)
		return ret;
	if (!d->path[0])
		return error_set(err, EINVAL, "--disk: missing path= (expected %s)",
				 config_disk_kv.syntax);
	/* a burst is the size of a bucket that only a rate fills */
	if (d->iops_burst && !d->iops)
		return error_set(err, EINVAL, "--disk: iops_burst= needs iops=");
	if (d->bps_burst && !d->bps)
		return error_set(err, EINVAL, "--disk: bps_burst= needs bps=");
	if (d->overlay[0] && (d->read_only || d->direct))
		return error_set(err, EINVAL,
				 "--disk: overlay= makes a writable disk without "
				 "direct I/O (not with readonly=on or direct=on)");
	for (unsigned int i = 0; i < cfg->ndisks; i++)
		if (d->id[0] && !strcmp(cfg->disks[i].id, d->id))
			return error_set(err, EINVAL, "--disk: duplicate id '%s'", d->id);
	cfg->ndisks++;
	return 0;
}

/* --net */

/* Six two-digit hex octets separated by colons; unicast and not all zero. */
static int config_mac(const struct config_kv *kv, const char *val, uint8_t mac[6],
		      struct error *err)
{
	static const uint8_t zero[6];

	if (parse_mac(val, mac))
		return error_set(err, EINVAL,
				 "%s: mac='%s' is not a MAC address (like 52:54:00:12:34:56)",
				 kv->opt, val);
	if (mac[0] & 1)
		return error_set(err, EINVAL, "%s: mac=%s is a multicast address", kv->opt, val);
	if (!memcmp(mac, zero, 6))
		return error_set(err, EINVAL, "%s: mac=%s is all zeroes", kv->opt, val);
	return 0;
}

static int config_net_pair(struct vmm_config *cfg, void *obj, const char *key, const char *val,
			   const struct config_kv *kv, struct error *err)
{
	struct config_net *n = obj;

	(void)cfg;
	if (!strcmp(key, "tap"))
		return config_str(kv, n->tap, sizeof(n->tap), key, val, err);
	if (!strcmp(key, "id"))
		return config_str(kv, n->id, sizeof(n->id), key, val, err);
	if (!strcmp(key, "queues"))
		return config_queues(kv, key, val, &n->queues, err);
	if (!strcmp(key, "mac")) {
		n->has_mac = true;
		return config_mac(kv, val, n->mac, err);
	}
	return config_unknown_key(kv, key, err);
}

static const struct config_kv config_net_kv = {
	.opt = "--net",
	.syntax = "tap=NAME[,mac=MAC][,queues=N][,id=NAME]",
	.pair = config_net_pair,
};

static int config_net_unique(const struct vmm_config *cfg, const struct config_net *n,
			     struct error *err)
{
	for (unsigned int i = 0; i < cfg->nnets; i++) {
		const struct config_net *o = &cfg->nets[i];

		if (!strcmp(o->tap, n->tap))
			return error_set(err, EINVAL, "--net: tap '%s' given twice", n->tap);
		if (n->id[0] && !strcmp(o->id, n->id))
			return error_set(err, EINVAL, "--net: duplicate id '%s'", n->id);
		if (n->has_mac && o->has_mac && !memcmp(o->mac, n->mac, 6))
			return error_set(err, EINVAL, "--net: duplicate mac on '%s' and '%s'",
					 o->tap, n->tap);
	}
	return 0;
}

static int config_net(struct vmm_config *cfg, const char *arg, struct error *err)
{
	struct config_net *n;
	int ret;

	if (cfg->nnets == CONFIG_MAX_NETS)
		return error_set(err, E2BIG, "--net: more than %d network devices",
				 CONFIG_MAX_NETS);
	n = &cfg->nets[cfg->nnets];
	memset(n, 0, sizeof(*n));
	n->queues = 1;
	ret = config_kv_parse(cfg, n, arg, &config_net_kv, err);
	if (ret)
		return ret;
	if (!n->tap[0])
		return error_set(err, EINVAL, "--net: missing tap= (expected %s)",
				 config_net_kv.syntax);
	ret = config_net_unique(cfg, n, err);
	if (ret)
		return ret;
	cfg->nnets++;
	return 0;
}

/* --vsock */

static int config_vsock_pair(struct vmm_config *cfg, void *obj, const char *key, const char *val,
			     const struct config_kv *kv, struct error *err)
{
	struct config_vsock *v = obj;
	uint64_t cid;
	int ret;

	(void)cfg;
	if (!strcmp(key, "uds"))
		return config_str(kv, v->uds, sizeof(v->uds), key, val, err);
	if (strcmp(key, "cid"))
		return config_unknown_key(kv, key, err);
	/* 0 hypervisor, 1 loopback, 2 host; 0xffffffff is VMADDR_CID_ANY */
	ret = config_uint(kv, key, val, 3, 0xfffffffeULL, &cid, err);
	if (!ret)
		v->cid = (uint32_t)cid;
	return ret;
}

static const struct config_kv config_vsock_kv = {
	.opt = "--vsock",
	.syntax = "cid=N,uds=PATH",
	.pair = config_vsock_pair,
};

static int config_vsock(struct vmm_config *cfg, const char *arg, struct error *err)
{
	struct config_vsock *v = &cfg->vsock;
	int ret;

	if (v->enabled)
		return error_set(err, EINVAL, "--vsock: given twice (a VM has one vsock device)");
	ret = config_kv_parse(cfg, v, arg, &config_vsock_kv, err);
	if (ret)
		return ret;
	if (!v->cid)
		return error_set(err, EINVAL, "--vsock: missing cid= (expected %s)",
				 config_vsock_kv.syntax);
	if (!v->uds[0])
		return error_set(err, EINVAL, "--vsock: missing uds= (expected %s)",
				 config_vsock_kv.syntax);
	v->enabled = true;
	return 0;
}

/* --balloon */

static int config_balloon_pair(struct vmm_config *cfg, void *obj, const char *key, const char *val,
			       const struct config_kv *kv, struct error *err)
{
	struct config_balloon *b = obj;
	uint64_t v;
	int ret;

	(void)cfg;
	if (!strcmp(key, "free_page_reporting"))
		return config_on_off(kv, key, val, &b->free_page_reporting, err);
	if (!strcmp(key, "deflate_on_oom"))
		return config_on_off(kv, key, val, &b->deflate_on_oom, err);
	if (!strcmp(key, "stats")) {
		ret = config_uint(kv, key, val, 0, 3600, &v, err);
		b->stats_period = (unsigned int)v;
		return ret;
	}
	if (strcmp(key, "size"))
		return config_unknown_key(kv, key, err);
	if (parse_size(val, &b->size) < 0)
		return error_set(err, EINVAL, "--balloon: size='%s' is not a size", val);
	return 0;
}

static const struct config_kv config_balloon_kv = {
	.opt = "--balloon",
	.syntax = "[size=SIZE][,stats=SECONDS][,free_page_reporting=on][,deflate_on_oom=on]",
	.pair = config_balloon_pair,
};

static int config_balloon(struct vmm_config *cfg, const char *arg, struct error *err)
{
	struct config_balloon *b = &cfg->balloon;

	if (b->enabled)
		return error_set(err, EINVAL, "--balloon: given twice");
	b->enabled = true;
	return arg ? config_kv_parse(cfg, b, arg, &config_balloon_kv, err) : 0;
}

/* Options that depend on others are checked once all are known. */
static int config_check(const struct vmm_config *cfg, struct error *err)
{
	if (cfg->balloon.size >= cfg->memory)
		return error_set(err, EINVAL,
				 "--balloon: size=%llu MiB is not below the %llu MiB of --memory",
				 (unsigned long long)(cfg->balloon.size >> 20),
				 (unsigned long long)(cfg->memory >> 20));
	if (cfg->console_virtio && !strcmp(cfg->console_virtio, "stdio") &&
	    !strcmp(cfg->serial, "stdio"))
		return error_set(err, EINVAL,
				 "--console-virtio: stdio is taken by --serial (give one of them "
				 "file: or unix:)");
	return 0;
}

/* --console-virtio and --serial take the same backends. */
static int config_chardev(const char *opt, const char **dst, const char *arg, struct error *err)
{
	if (!strcmp(arg, "stdio") || (!strncmp(arg, "file:", 5) && arg[5]) ||
	    (!strncmp(arg, "unix:", 5) && arg[5])) {
		*dst = arg;
		return 0;
	}
	return error_set(err, EINVAL,
			 "%s: unknown backend '%s' (expected stdio, file:PATH or unix:PATH)", opt,
			 arg);
}

static int config_overlay(struct vmm_config *cfg, const char *arg, struct error *err);

/* The URL's form only: the socket is made when the VMM starts waiting. */
static int config_incoming(struct vmm_config *cfg, const char *arg, struct error *err)
{
	bool tcp = !strncmp(arg, "tcp:", 4);

	if ((!tcp && strncmp(arg, "unix:", 5)) || !arg[tcp ? 4 : 5] ||
	    (!tcp && strlen(arg + 5) >= CONFIG_UDS_MAX))
		return error_set(err, EINVAL,
				 "--incoming: '%s' is not unix:PATH or tcp:[HOST:]PORT", arg);
	cfg->incoming = arg;
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
		return config_chardev("--serial", &cfg->serial, arg, err);
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
	case OPT_NET:
		return config_net(cfg, arg, err);
	case OPT_CONSOLE_VIRTIO:
		if (cfg->console_virtio)
			return error_set(err, EINVAL, "--console-virtio: given twice");
		return config_chardev("--console-virtio", &cfg->console_virtio, arg, err);
	case OPT_VSOCK:
		return config_vsock(cfg, arg, err);
	case OPT_BALLOON:
		return config_balloon(cfg, arg, err);
	case OPT_RESTORE:
		if (!*arg)
			return error_set(err, EINVAL, "--restore: the snapshot directory is empty");
		cfg->restore = arg;
		return 0;
	case OPT_API_SOCK:
		if (!*arg || strlen(arg) >= CONFIG_UDS_MAX)
			return error_set(
				err, EINVAL,
				"--api-sock: '%s' is not a socket path (1 to %d characters)", arg,
				CONFIG_UDS_MAX - 1);
		cfg->api_sock = arg;
		return 0;
	case OPT_SECCOMP:
		return config_seccomp(cfg, arg, err);
	case OPT_VERBOSE:
		cfg->verbose++;
		return 0;
	case OPT_HELP:
		cfg->help = true;
		return 0;
	case OPT_VERSION:
		cfg->version = true;
		return 0;
	case OPT_OVERLAY:
		return config_overlay(cfg, arg, err);
	case OPT_INCOMING:
		return config_incoming(cfg, arg, err);
	}
	return error_set(err, EINVAL, "internal: unhandled option %d", opt);
}

/*
 * getopt_long() only takes an optional argument glued on ("--balloon=size=1G");
 * "--balloon size=1G" is what people type, so a following word that is a
 * key=value list belongs to the option too.
 */
static const char *config_optarg(int opt, int argc, char **argv)
{
	if (opt != OPT_BALLOON || optarg || optind >= argc)
		return optarg;
	if (argv[optind][0] == '-' || !strchr(argv[optind], '='))
		return NULL;
	return argv[optind++];
}

static int config_apply_overlays(struct vmm_config *cfg, struct error *err);

static void config_defaults(struct vmm_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->cpus = 1;
	cfg->memory = 256 * MiB;
	cfg->serial = "stdio";
	cfg->on_reboot = ON_REBOOT_EXIT;
	cfg->kvm_device = "/dev/kvm";
	cfg->seccomp = SANDBOX_SECCOMP_KILL;
}

/*
 * A snapshot fixes the machine (CPUs, memory, devices); what may differ in
 * the restored process is how it talks to the host.
 */
static const int config_restore_allowed[] = {
	OPT_RESTORE, OPT_SERIAL,  OPT_API_SOCK, OPT_ON_REBOOT, OPT_KVM_DEVICE,	  OPT_SECCOMP,
	OPT_VERBOSE, OPT_OVERLAY, OPT_NET,	OPT_VSOCK,     OPT_CONSOLE_VIRTIO};

static int config_check_restore(uint64_t seen, const char *with, struct error *err)
{
	for (const struct option *o = config_options; o->name; o++) {
		bool allowed = false;

		if (!(seen & (1ULL << (o->val - OPT_KERNEL))))
			continue;
		for (size_t i = 0; i < ARRAY_SIZE(config_restore_allowed); i++)
			allowed = allowed || config_restore_allowed[i] == o->val;
		if (!allowed)
			return error_set(
				err, EINVAL,
				"--%s cannot be combined with %s: the snapshot fixes "
				"the VM (--serial, --api-sock, --on-reboot, --kvm-device, "
				"--seccomp, --verbose, --overlay, and "
				"--net/--vsock/--console-virtio replacing a recorded device "
				"can be given)",
				o->name, with);
	}
	return 0;
}

int config_parse(struct vmm_config *cfg, int argc, char **argv, uint64_t host_ram,
		 struct error *err)
{
	uint64_t seen = 0;
	int opt, ret;

	_Static_assert(OPT_INCOMING - OPT_KERNEL < 64, "one bit per option in 'seen'");
	config_defaults(cfg);
	cfg->argc = argc;
	cfg->argv = argv;
	cfg->host_ram = host_ram;
	opterr = 0; /* we word the errors ourselves, once */
	optind = 1;
	while ((opt = getopt_long(argc, argv, ":", config_options, NULL)) != -1) {
		if (opt == '?')
			return error_set(err, EINVAL, "unknown option '%s' (see --help)",
					 argv[optind - 1]);
		if (opt == ':')
			return error_set(err, EINVAL, "option '%s' needs a value",
					 argv[optind - 1]);
		ret = config_option(cfg, opt, config_optarg(opt, argc, argv), host_ram, err);
		if (ret)
			return ret;
		seen |= 1ULL << (opt - OPT_KERNEL);
	}
	if (optind < argc)
		return error_set(err, EINVAL, "unexpected argument '%s' (see --help)",
				 argv[optind]);
	if (cfg->help || cfg->version)
		return 0;
	if (cfg->incoming && cfg->restore)
		return error_set(err, EINVAL, "--incoming and --restore exclude each other");
	if (cfg->incoming)
		return config_check_restore(seen & ~(1ULL << (OPT_INCOMING - OPT_KERNEL)),
					    "--incoming", err);
	if (cfg->restore)
		return config_check_restore(seen, "--restore", err);
	if (!cfg->kernel && !cfg->api_sock)
		return error_set(
			err, EINVAL,
			"--kernel is required, or --api-sock to configure the VM through the "
			"API (see --help)");
	ret = config_apply_overlays(cfg, err);
	return ret ? ret : config_check(cfg, err);
}

/* --overlay DISK=FILE */

static int config_overlay(struct vmm_config *cfg, const char *arg, struct error *err)
{
	const char *eq = strchr(arg, '=');
	struct config_overlay *o;

	if (!eq || eq == arg || !eq[1])
		return error_set(err, EINVAL, "--overlay: '%s' is not DISK=FILE", arg);
	if (strlen(eq + 1) >= CONFIG_PATH_MAX)
		return error_set(err, EINVAL, "--overlay: FILE is longer than %d characters",
				 CONFIG_PATH_MAX - 1);
	if (cfg->noverlays == CONFIG_MAX_DISKS)
		return error_set(err, E2BIG, "--overlay: more than %d given", CONFIG_MAX_DISKS);
	o = &cfg->overlays[cfg->noverlays++];
	o->disk = arg;
	o->disk_len = (size_t)(eq - arg);
	o->file = eq + 1;
	return 0;
}

int config_find_disk(const struct vmm_config *cfg, const char *name, size_t len)
{
	char buf[CONFIG_PATH_MAX];
	uint64_t idx;

	if (len >= sizeof(buf))
		return -1;
	memcpy(buf, name, len);
	buf[len] = 0;
	for (unsigned int i = 0; i < cfg->ndisks; i++) {
		const struct config_disk *d = &cfg->disks[i];

		if (!strcmp(buf, d->id[0] ? d->id : d->path))
			return (int)i;
	}
	if (cfg->ndisks && !parse_uint(buf, 0, cfg->ndisks - 1, &idx))
		return (int)idx;
	return -1;
}

/* Without --restore, --overlay DISK=FILE is overlay=FILE on that disk. */
static int config_apply_overlays(struct vmm_config *cfg, struct error *err)
{
	for (unsigned int i = 0; i < cfg->noverlays; i++) {
		const struct config_overlay *o = &cfg->overlays[i];
		int d = config_find_disk(cfg, o->disk, o->disk_len);

		if (d < 0)
			return error_set(err, ENOENT,
					 "--overlay: no disk '%.*s' (an id, path or index)",
					 (int)o->disk_len, o->disk);
		if (cfg->disks[d].read_only || cfg->disks[d].direct)
			return error_set(err, EINVAL, "--overlay: disk '%.*s' is %s",
					 (int)o->disk_len, o->disk,
					 cfg->disks[d].read_only ? "read-only" : "direct=on");
		snprintf(cfg->disks[d].overlay, sizeof(cfg->disks[d].overlay), "%s", o->file);
	}
	return 0;
}
