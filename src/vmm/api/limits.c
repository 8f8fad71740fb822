// SPDX-License-Identifier: MIT
/* GET /vm/limits: the jail, rlimits and cgroup the VMM runs under. */
#include <jansson.h>

#include "../sandbox/jail.h"
#include "limits.h"

static json_t *api_cgroup_json(const struct jail_info *ji)
{
	const struct cgroup_limits *l = &ji->limits;

	if (!ji->has_cgroup)
		return json_null();
	return json_pack("{s:s, s:s, s:o, s:I, s:I, s:I, s:o, s:I}", "path", ji->cgroup, "version",
			 cgroup_version_name(ji->version), "cpu_quota_us",
			 l->cpu_quota_us ? json_integer((json_int_t)l->cpu_quota_us) : json_null(),
			 "cpu_period_us", (json_int_t)l->cpu_period_us, "cpu_weight",
			 (json_int_t)l->cpu_weight, "memory_max", (json_int_t)l->memory_max,
			 "memory_swap_max", ji->swap_limited ? json_integer(0) : json_null(),
			 "pids_max", (json_int_t)l->pids_max);
}

json_t *api_vm_limits_json(void)
{
	const struct jail_info *ji = jail_info();

	if (!ji)
		return json_pack("{s:b, s:n}", "jailed", 0, "cgroup");
	return json_pack("{s:b, s:I, s:I, s:{s:I, s:I}, s:o}", "jailed", 1, "uid",
			 (json_int_t)ji->uid, "gid", (json_int_t)ji->gid, "rlimits", "nofile",
			 (json_int_t)ji->nofile, "core", (json_int_t)0, "cgroup",
			 api_cgroup_json(ji));
}
