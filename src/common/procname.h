/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_COMMON_PROCNAME_H
#define BUNSHIN_COMMON_PROCNAME_H

/*
 * Names (/proc/PID/comm, set with PR_SET_NAME) of bunshin processes whose
 * command line is another's, so that whoever scans /proc for VMMs by their
 * command line (bunshind's adoption, the tests) can tell them apart.
 */

/* bunshin-vmm's clone spawner: a fork of the VMM, never exec'd (spawner.c). */
#define PROCNAME_VMM_SPAWNER "bunshin-spawner"
/* A VMM between bunshind's fork and its exec: still bunshind's command line. */
#define PROCNAME_DAEMON_FORK "bunshind-fork"

#endif
