// SPDX-License-Identifier: MIT
/* The jail's options, peeled off the front of the command line, and its cgroup limits. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../../common/util.h"
#include "jail.h"

#define JAIL_PERIOD_US 100000 /* the kernel's default CFS period */
#define JAIL_PIDS_BASE 64     /* tasks beyond the vCPUs: main, I/O, console, API, ... */

static int jail_id(const char *opt, const char *arg, bool *has, uint32_t *out, struct error *err)
{
	uint64_t v;

	if (*has)
		return error_set(err, EINVAL, "%s: given twice", opt);
	/* -1 is "no change" to setresuid(), never an id */
	if (parse_uint(arg, 0, 0xfffffffeULL, &v))
		return error_set(err, EINVAL, "%s: '%s' is not a numeric id", opt, arg);
	if (!v)
		return error_set(
			err, EINVAL,
			"%s: 0 is root's; the jail runs the VMM unprivileged, give another", opt);
	*has = true;
	*out = (uint32_t)v;
	return 0;
}

static int jail_limit_pair(struct jail_config *j, const char *key, const char *val,
			   struct error *err)
{
	struct cgroup_limits *l = &j->limits;
	int ret = 0;

	if (!strcmp(key, "cpu_quota_us") && !strcmp(val, "max"))
		j->no_cpu_quota = true;
	else if (!strcmp(key, "cpu_quota_us"))
		ret = parse_uint(val, 1000, 1ULL << 40, &l->cpu_quota_us);
	else if (!strcmp(key, "cpu_period_us"))
		ret = parse_uint(val, 1000, 1000000, &l->cpu_period_us);
	else if (!strcmp(key, "cpu_weight"))
		ret = parse_uint(val, 1, 10000, &l->cpu_weight);
	else if (!strcmp(key, "pids_max"))
		ret = parse_uint(val, 1, 4194304, &l->pids_max);
	else if (!strcmp(key, "memory_max"))
		ret = parse_size(val, &l->memory_max)
			      ?: (l->memory_max < (16ULL << 20) ? -ERANGE : 0);
	else
		return error_set(err, EINVAL,
				 "--cgroup-limits: unknown key '%s' (expected cpu_quota_us, "
				 "cpu_period_us, cpu_weight, memory_max, pids_max)",
				 key);
	if (ret)
		return error_set(
			err, EINVAL,
			"--cgroup-limits: %s=%s is out of range or not a number (quota "
			"1000.. or max, period 1000..1000000, weight 1..10000, memory 16M.., "
			"pids 1..4194304)",
			key, val);
	return 0;
}

static int jail_limits_arg(struct jail_config *j, const char *arg, struct error *err)
{
	char buf[256], *save, *item;

	if (strlen(arg) >= sizeof(buf))
		return error_set(err, EINVAL, "--cgroup-limits: too long");
	strcpy(buf, arg);
	for (item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '=');
		int ret;

		if (!eq)
			return error_set(err, EINVAL, "--cgroup-limits: '%s' is not key=value",
					 item);
		*eq = 0;
		ret = jail_limit_pair(j, item, eq + 1, err);
		if (ret)
			return ret;
	}
	return 0;
}

static int jail_dir_arg(struct jail_config *j, const char *arg, struct error *err)
{
	if (j->dir)
		return error_set(err, EINVAL, "--jail: given twice");
	if (arg[0] != '/' || !arg[1])
		return error_set(err, EINVAL,
				 "--jail: '%s' is not an absolute directory other than /", arg);
	j->dir = arg;
	return 0;
}

static int jail_option(struct jail_config *j, const char *name, const char *arg, struct error *err)
{
	if (!strcmp(name, "jail"))
		return jail_dir_arg(j, arg, err);
	if (!strcmp(name, "uid"))
		return jail_id("--uid", arg, &j->has_uid, &j->uid, err);
	if (!strcmp(name, "gid"))
		return jail_id("--gid", arg, &j->has_gid, &j->gid, err);
	if (!strcmp(name, "netns"))
		j->netns = arg;
	else if (!strcmp(name, "cgroup"))
		return cgroup_check_name(arg, err) ?: (j->cgroup = arg, 0);
	else
		return jail_limits_arg(j, arg, err);
	return 0;
}

/* "--name" or "--name=value" for one of the jail's options; the name, or NULL. */
static const char *jail_match(const char *word, size_t *len)
{
	static const char *const names[] = {"jail",  "uid",    "gid",
					    "netns", "cgroup", "cgroup-limits"};

	if (strncmp(word, "--", 2))
		return NULL;
	word += 2;
	*len = strcspn(word, "=");
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (strlen(names[i]) == *len && !strncmp(word, names[i], *len))
			return names[i];
	return NULL;
}

static int jail_check(const struct jail_config *j, struct error *err)
{
	if (!j->dir && (j->has_uid || j->has_gid || j->netns || j->cgroup))
		return error_set(err, EINVAL, "--uid, --gid, --netns and --cgroup need --jail DIR");
	if (!j->dir)
		return 0;
	if (!j->has_uid || !j->has_gid)
		return error_set(err, EINVAL, "--jail: needs --uid and --gid (the VMM's user)");
	return 0;
}

int jail_parse_args(struct jail_config *j, int argc, char **argv, struct error *err)
{
	int i = 1;

	memset(j, 0, sizeof(*j));
	while (i < argc) {
		size_t len;
		const char *name = jail_match(argv[i], &len), *arg;
		int ret;

		if (!name)
			break;
		arg = argv[i][2 + len] == '=' ? &argv[i][3 + len] : i + 1 < argc ? argv[++i] : NULL;
		if (!arg)
			return error_set(err, EINVAL, "option '--%s' needs a value", name);
		ret = jail_option(j, name, arg, err);
		if (ret)
			return ret;
		i++;
	}
	if (!j->cgroup && memcmp(&j->limits, &(struct cgroup_limits){0}, sizeof(j->limits)))
		return error_set(err, EINVAL, "--cgroup-limits: needs --cgroup");
	j->enabled = j->dir != NULL;
	return jail_check(j, err) ?: i - 1;
}

uint64_t jail_memory_overhead(unsigned int cpus)
{
	/*
	 * Measured (docs/benchmarks.md, bench/jail.sh): the VMM's own pages,
	 * its libraries, KVM's page tables and per-vCPU state, with room for
	 * disk page cache it reclaims under the limit. 2 MiB per vCPU covers
	 * a thread stack's touched pages and KVM's vCPU structures.
	 */
	return (96ULL << 20) + (uint64_t)cpus * (2ULL << 20);
}

int jail_limits(const struct jail_config *j, const struct jail_vm *vm, struct cgroup_limits *out,
		struct error *err)
{
	*out = j->limits;
	if (!out->cpu_period_us)
		out->cpu_period_us = JAIL_PERIOD_US;
	/* a VM whose size comes later (snapshot, API): no quota unless given */
	if (!out->cpu_quota_us && !j->no_cpu_quota && vm->memory)
		out->cpu_quota_us = (uint64_t)vm->cpus * out->cpu_period_us;
	if (!out->cpu_weight)
		out->cpu_weight = 100;
	if (!out->pids_max) /* a restored VM may have up to 1024 vCPUs */
		out->pids_max = (uint64_t)(vm->memory ? vm->cpus : 1024) + JAIL_PIDS_BASE;
	if (!out->memory_max && !vm->memory)
		return error_set(
			err, EINVAL,
			"--cgroup: the VM's size is not known at launch (--restore, or "
			"configured through the API): give --cgroup-limits memory_max=SIZE");
	if (!out->memory_max)
		out->memory_max = vm->memory + jail_memory_overhead(vm->cpus);
	return 0;
}
