/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_DAEMON_SUPERVISOR_H
#define BUNSHIN_DAEMON_SUPERVISOR_H

#include <sys/types.h>

#include "daemon.h"

/*
 * What supervisor.c (the watch on every VMM), vmmctl.c (starting,
 * driving and stopping one VMM process) and adopt.c (finding the VMMs
 * that outlived a bunshind) share.
 */

#define SUP_VMM_API_TIMEOUT 3000 /* ms for one call to a VMM's API */

static inline int64_t sup_int(const json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static inline const char *sup_str(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/*
 * Field 22 of /proc/PID/stat, in clock ticks since boot; 0 when the
 * process is not there or is a zombie.
 */
uint64_t sup_start_time(pid_t pid);
/* From /proc/PID/stat: its start time and user + system CPU (clock ticks); -1 when gone. */
int sup_proc_times(pid_t pid, uint64_t *start, uint64_t *cpu_ticks);
/* An audit-log entry about instance id ("instance ID"); a failure is only logged. */
void sup_event(struct store *s, int64_t tenant_id, int64_t id, const char *who, const char *action,
	       const char *result);
/* STATE/instances/ID/vmm.pid: "PID START", for people and tools. */
int sup_write_pidfile(const char *dir, pid_t pid, uint64_t start);
/* Watches pidfd (taken over) for the end of the instance's VMM; child: we forked it. */
int sup_watch_add(struct supervisor *sup, int64_t id, pid_t pid, int pidfd, bool child);

/* Flips the instance from STARTING to RUNNING once its VMM's API answers (a thread). */
void sup_watch_ready(struct daemon *d, int64_t id, pid_t pid, uint64_t start, const char *sock);

/*
 * Threads that outlive their request and use the store register, so that
 * shutdown waits for them before the store goes; they poll sup_quitting().
 * sup_helper_enter() is false once shutdown began: start nothing then.
 */
bool sup_helper_enter(struct supervisor *sup);
void sup_helper_leave(struct supervisor *sup);
bool sup_quitting(struct supervisor *sup);

#endif
