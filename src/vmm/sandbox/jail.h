/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_SANDBOX_JAIL_H
#define BUNSHIN_VMM_SANDBOX_JAIL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "../../common/error.h"
#include "cgroup.h"

/*
 * The jail: bunshin-vmm --jail DIR --uid U --gid G [--netns PATH]
 * [--cgroup PATH [--cgroup-limits KEY=VAL,...]] ...the VMM's options.
 *
 * It is done in-process, early in main(), not by a separate launcher that
 * execs the VMM: the VMM is dynamically linked, and by the time main() runs
 * the loader has mapped every library, so nothing but the VM's own files
 * has to be inside DIR, and there is no second binary to keep in step.
 * The only cost is that the options must come first (they are peeled off
 * before the VMM's own parser sees argv, and a snapshot does not record
 * them: they are about the process, not the machine).
 */

#define JAIL_NOFILE 4096 /* RLIMIT_NOFILE: vsock connections, disk queues, eventfds */

struct jail_config {
	bool enabled;
	const char *dir;
	uid_t uid;
	gid_t gid;
	bool has_uid, has_gid;
	const char *netns;  /* a network namespace file to join, NULL: the host's */
	const char *cgroup; /* the VM's cgroup (cgroup.h says where); NULL: none */
	/* --cgroup-limits; zero: the default, computed from the VM */
	struct cgroup_limits limits;
	bool no_cpu_quota; /* cpu_quota_us=max */
};

/* What the jail needs to know of the VM. */
struct jail_vm {
	unsigned int cpus;
	uint64_t memory; /* guest RAM; 0: not known at launch (--restore, or set through the API) */
	bool tun;	 /* the VM has --net: /dev/net/tun goes into the jail */
};

/*
 * What the control API shows (GET /vm/limits). Set once by jail_enter()
 * before any thread exists, read-only afterwards.
 */
struct jail_info {
	bool jailed;
	uid_t uid;
	gid_t gid;
	uint64_t nofile;
	bool has_cgroup;
	char cgroup[CGROUP_NAME_MAX];
	enum cgroup_version version;
	bool swap_limited;
	struct cgroup_limits limits;
};

/*
 * Peels the jail options off the front of argv. Returns how many words
 * (after argv[0]) they took, or a negative errno with err set: a jail
 * option without --jail, --jail without --uid and --gid, root's uid or gid,
 * or a malformed value.
 */
int jail_parse_args(struct jail_config *j, int argc, char **argv, struct error *err);

/* The VMM overhead added to guest RAM for memory.max by default, in bytes. */
uint64_t jail_memory_overhead(unsigned int cpus);

/*
 * Fills in the defaults of j->limits from the VM: quota cpus x period,
 * weight 100, guest RAM + jail_memory_overhead(), cpus + 64 tasks.
 * -EINVAL with err set when memory_max is needed and cannot be known.
 */
int jail_limits(const struct jail_config *j, const struct jail_vm *vm, struct cgroup_limits *out,
		struct error *err);

/*
 * Enters the jail. Returns 1 in the launcher, which has waited for the
 * jailed VMM and removed its cgroup, with *status the VMM's exit status
 * (128 + N if it died of signal N); 0 in the jailed VMM, now PID 1 of its
 * own PID namespace, rooted in DIR, as U:G with no capabilities and
 * no_new_privs; or a negative errno with err set (nothing was started).
 */
int jail_enter(const struct jail_config *j, const struct jail_vm *vm, int *status,
	       struct error *err);

/*
 * Checks a path given on the command line, inside the jail: refuses any
 * ".." component and any symbolic link on the way (the last component
 * included). A path that may not exist yet (a socket or a log file to
 * create) has its directory checked instead. Returns 0 or a negative errno
 * with "OPT: PATH: why" in err.
 */
int jail_check_path(const char *opt, const char *path, bool may_be_missing, struct error *err);

struct vmm_config;

/* jail_check_path() on every path of the configuration (jail_config.c). */
int jail_check_config(const struct vmm_config *cfg, struct error *err);

/* NULL when the VMM is not jailed. */
const struct jail_info *jail_info(void);

#ifdef BUNSHIN_TEST_HOOKS
/*
 * Test builds only: with BUNSHIN_JAIL_SELFTEST set, the jailed VMM tries to
 * open a host file outside its directory (the variable's value if it is an
 * absolute path, else /etc/hostname) and logs what happened, then carries on.
 */
void jail_selftest(void);
#endif

#endif
