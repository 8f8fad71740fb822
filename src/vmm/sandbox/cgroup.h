/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_SANDBOX_CGROUP_H
#define BUNSHIN_VMM_SANDBOX_CGROUP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "../../common/error.h"

/*
 * A VM's own cgroup (--cgroup PATH): CPU bandwidth and weight, memory
 * without swap, and a bound on tasks. cgroup v2 is the target; a host whose
 * cpu, memory and pids controllers are still on v1 hierarchies (a "hybrid"
 * host, where v2 is mounted with none of them) gets the v1 equivalents.
 * A relative PATH ("vms/vm1") is taken under the cgroup the launcher itself
 * is in, in each hierarchy (as a delegated subtree would be), so a VMM never
 * leaves the limits its launcher is under; an absolute one ("/bunshin/vm1")
 * under the hierarchy's root (on cgroup v2 the launcher's own cgroup can
 * only hand controllers down if it holds no process, as a systemd service's
 * usually does).
 */

enum cgroup_version {
	CGROUP_NONE,
	CGROUP_V1,
	CGROUP_V2,
};

#define CGROUP_NAME_MAX 256
#define CGROUP_DIR_MAX	1024
#define CGROUP_V1_DIRS	3 /* cpu, memory, pids */

struct cgroup_limits {
	uint64_t cpu_quota_us;	/* per period; 0: no quota ("max") */
	uint64_t cpu_period_us; /* 1000..1000000 */
	uint64_t cpu_weight;	/* v2 weight 1..10000 (100 is the default); v1 shares scale it */
	uint64_t memory_max;	/* bytes */
	uint64_t pids_max;	/* tasks (threads count) */
};

/* Where the cgroup file systems are; tests point this at a fake tree. */
struct cgroup_fs {
	const char *root;  /* "/sys/fs/cgroup" */
	const char *self;  /* "/proc/self/cgroup": where the launcher is */
	bool create_files; /* a fake tree has no kernel to provide control files */
};

struct cgroup {
	enum cgroup_version version;
	unsigned int ndirs;
	char dirs[CGROUP_V1_DIRS][CGROUP_DIR_MAX]; /* created, leaf first in each hierarchy */
	bool swap_limited; /* memory.swap.max or memory.memsw.limit_in_bytes was there */
	bool fake;	   /* made in a fake tree (cgroup_fs.create_files) */
	struct cgroup_limits limits;
};

/*
 * Checks a --cgroup PATH: relative components, no "." or "..", no empty
 * ones, no control-file-like names. Returns 0 or -EINVAL with err set.
 */
int cgroup_check_name(const char *name, struct error *err);

/*
 * Creates the cgroup name under the launcher's own cgroup in the
 * hierarchies that have cpu, memory and pids, and writes the limits there.
 * An empty leftover cgroup of that name (from a launcher that was killed)
 * is replaced; one with tasks in it is refused. Returns 0, or a negative
 * errno with err set and nothing left behind.
 */
int cgroup_create(struct cgroup *cg, const struct cgroup_fs *fs, const char *name,
		  const struct cgroup_limits *l, struct error *err);

/* Moves pid (0: the caller) into the cgroup, in every hierarchy. */
int cgroup_join(const struct cgroup *cg, pid_t pid, struct error *err);

/*
 * Removes what cgroup_create() made. Tasks that just exited may linger for a
 * moment, so a busy cgroup is retried for up to a second. Returns 0 or a
 * negative errno.
 */
int cgroup_destroy(struct cgroup *cg);

const char *cgroup_version_name(enum cgroup_version v);

#endif
