/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_API_LIMITS_H
#define BUNSHIN_VMM_API_LIMITS_H

#include <jansson.h>

/*
 * The body of GET /vm/limits: {"jailed": false, "cgroup": null}, or the
 * uid, gid, rlimits and cgroup (its path, "v1" or "v2", and the limits
 * written there) of a jailed VMM.
 */
json_t *api_vm_limits_json(void);

#endif
