/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_API_CLONE_H
#define BUNSHIN_VMM_API_CLONE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "../config.h"
#include "../../common/httpd.h"

/*
 * PUT /vm/clone: clone the running VM N times.
 *
 *   {"count": N,                      1..API_CLONE_MAX, required
 *    "dir": "/abs/path",              snapshot and clone files; new or empty
 *                                     (default: a new directory in /dev/shm)
 *    "cid_base": C,                   clone i gets vsock CID C + i (required
 *                                     when the VM has vsock)
 *    "serial": "unix" | "file",       each clone's COM1 (default unix)
 *    "nets": [[{"tap": T, "mac": M}, ...], ...]}
 *                                     per clone, one entry per NIC of the VM
 *                                     in its order (required when it has
 *                                     NICs); mac optional: random, locally
 *                                     administered
 */
#define API_CLONE_MAX 1024

struct api_clone_net {
	char tap[CONFIG_IFNAME];
	uint8_t mac[6];
	bool has_mac;
};

struct api_clone_req {
	unsigned int count;
	const char *dir; /* NULL: a new directory under /dev/shm */
	bool has_cid_base;
	uint32_t cid_base;
	bool serial_file;			       /* file:, not unix: */
	unsigned int nnets;			       /* per clone; 0: "nets" not given */
	struct api_clone_net (*nets)[CONFIG_MAX_NETS]; /* [count] */
};

struct api_clone_vm {
	int pid;
	char dir[CONFIG_PATH_MAX];
	char api_sock[CONFIG_UDS_MAX];
	char serial[CONFIG_UDS_MAX + 8];
	char console_virtio[CONFIG_UDS_MAX + 8]; /* "" none */
	char vsock_uds[CONFIG_VSOCK_UDS_MAX];	 /* "" none */
	uint32_t cid;
	unsigned int nnets;
	char taps[CONFIG_MAX_NETS][CONFIG_IFNAME];
	uint8_t macs[CONFIG_MAX_NETS][6];
};

struct api_clone_result {
	char dir[CONFIG_PATH_MAX];
	unsigned int count;	  /* clones started */
	struct api_clone_vm *vms; /* [count], malloc'd by the backend, freed by the API */
	double pause_ms, snapshot_ms, spawn_ms, total_ms;
	const char *field; /* on a 400: the request field at fault */
};

/* The body into req (nets malloc'd: api_clone_req_free); -1 with resp filled for a 400. */
int api_clone_parse(const json_t *body, struct api_clone_req *req, struct httpd_response *resp);
void api_clone_req_free(struct api_clone_req *req);
json_t *api_clone_json(const struct api_clone_result *res);

#endif
