/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_SPAWNER_H
#define BUNSHIN_VMM_SPAWNER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "../common/error.h"

/*
 * The clone spawner: a small process forked at start-up, before any
 * thread and before the seccomp sandbox, that starts clone VMMs for
 * PUT /vm/clone. The VMM itself never forks or execs once it runs. The two
 * talk over a SOCK_SEQPACKET socketpair, one fixed-size message each way;
 * the spawner treats every request as hostile (a compromised VMM could
 * send anything): it checks each field, builds the clone's command line
 * itself from them (never from text the VMM wrote as a command line), and
 * execs the VMM binary it opened when it started (execveat on that fd),
 * so what runs is the binary that started, whatever the file system holds
 * by then. It reaps its children and exits when the VMM's end closes.
 */

#define SPAWN_MAGIC	  0x424e5350u /* "PSNB" */
#define SPAWN_SERIAL	  (CONFIG_UDS_MAX + 8)
#define SPAWN_MAX_VERBOSE 3

struct spawn_net {
	char id[CONFIG_ID];	 /* the parent's NIC: its id=, or "netN" */
	char tap[CONFIG_IFNAME]; /* the clone's tap */
	uint8_t mac[6];		 /* the clone's MAC (always given) */
	uint8_t pad[2];
};

/* One clone: bunshin-vmm --restore dir --api-sock api_sock --serial serial ... */
struct spawn_req {
	uint32_t magic;
	uint32_t verbose;		      /* --verbose, 0..SPAWN_MAX_VERBOSE times */
	char dir[CONFIG_PATH_MAX];	      /* the snapshot */
	char log[CONFIG_PATH_MAX];	      /* the clone's stdout and stderr (appended) */
	char api_sock[CONFIG_UDS_MAX];	      /* absolute */
	char serial[SPAWN_SERIAL];	      /* "unix:/..." or "file:/..." */
	char console_virtio[SPAWN_SERIAL];    /* same backends, or "" for none */
	char vsock_uds[CONFIG_VSOCK_UDS_MAX]; /* "" for no vsock */
	uint32_t vsock_cid;
	uint32_t nnets;
	struct spawn_net nets[CONFIG_MAX_NETS];
	/*
	 * The VM's writable disks, by index: each gets the overlay
	 * overlay_dir/diskI.ovl over the snapshot's frozen disk.
	 */
	char overlay_dir[CONFIG_PATH_MAX];
	uint32_t noverlays;
	uint32_t overlay_disk[CONFIG_MAX_DISKS];
};

struct spawn_resp {
	int32_t error; /* 0, or a positive errno */
	int32_t pid;
	char msg[160]; /* why, when error is set */
};

struct spawner {
	int fd;	   /* our end of the socketpair; -1: no spawner */
	pid_t pid; /* the spawner process */
};

/*
 * Forks the spawner. Call it before any thread exists and before the
 * sandbox: the child of a multi-threaded process may only exec.
 */
int spawner_start(struct spawner *s, struct error *err);
/* Starts one clone; its pid on success. Any thread, one call at a time. */
int spawner_spawn(struct spawner *s, const struct spawn_req *req, pid_t *pid, struct error *err);
/* Closes our end: the spawner exits (clones it started keep running). */
void spawner_stop(struct spawner *s);

/* The checks the spawner makes, for unit tests: 0 or -EINVAL with err saying which field. */
int spawner_check(const struct spawn_req *req, struct error *err);

#endif
