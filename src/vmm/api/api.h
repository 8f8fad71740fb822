/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_API_H
#define BUNSHIN_VMM_API_H

#include <stdint.h>

#include "../../common/error.h"
#include "../config.h"
#include "../virtio/balloon.h"
#include "../virtio/blk.h"
#include "../virtio/net.h"
#include "clone.h"

/*
 * The VMM's control API: HTTP/1.1 + JSON on a unix socket (--api-sock),
 * served on its own thread. It knows the machine only through struct
 * api_backend, so the routes can be tested against a fake machine and the
 * machine never sees HTTP.
 *
 *   PUT  /vm/config     the whole configuration, before the VM starts (a VMM
 *                       started with --api-sock and no --kernel waits for it)
 *   GET  /vm            state, vCPUs, memory, uptime, boots
 *   GET  /vm/config     the configuration the VM runs with
 *   PUT  /vm/actions    {"action": "power_button" | "ctrl_alt_del" | "stop" |
 *                                  "pause" | "resume"}
 *   GET  /vm/balloon    target, actual size, counters, the guest's statistics
 *   PUT  /vm/balloon    {"target_mib": N}
 *   PUT  /vm/snapshot   {"dir": PATH, "type": "full" | "diff" | "suspend"}: state and memory
 *                       files into PATH; a diff holds the pages written since
 *                       the previous snapshot (snapdiff.h)
 *   PUT  /vm/disk-limits {"disk": ID or index, "iops", "iops_burst", "bps",
 *                       "bps_burst"}: a disk's rate limits at run time; the
 *                       fields left out keep their value, 0 is unlimited
 *   PUT  /vm/clone      {"count": N, ...}: snapshot into memory, start N
 *                       clones (api/clone.h)
 *   PUT  /vm/migrate    {"url": "unix:PATH" | "tcp:HOST:PORT"}: live migration to
 *                       a bunshin-vmm --incoming; this VMM exits once it is done
 *   PUT  /vm/restore    {"dir": D, ...}: before start, become the snapshot's VM and run
 *   GET  /vm/metrics    counters as JSON
 *   GET  /metrics       the same in Prometheus text format
 *
 * docs/api.yaml is the OpenAPI description.
 */

enum api_action {
	API_ACTION_POWER_BUTTON, /* ACPI power button: the guest shuts down cleanly */
	API_ACTION_CTRL_ALT_DEL, /* the key combination on the PS/2 keyboard */
	API_ACTION_STOP,	 /* stop now, as SIGTERM does */
	API_ACTION_PAUSE,	 /* vCPUs and device work stop; the guest's clock stops too */
	API_ACTION_RESUME,
	API_ACTION_START, /* boot the VM configured through PUT /vm/config */
};

#define API_EXIT_REASONS 64 /* KVM exit reasons counted (as VCPU_EXIT_REASONS) */

struct api_vm_info {
	/* "not_started", "starting", "running", "paused", "rebooting", "stopping" */
	const char *state;
	unsigned int vcpus;
	uint64_t memory;
	uint64_t uptime_ms; /* since the process started the VM */
	unsigned int boots; /* 1 + guest reboots */
};

struct api_migrate_info {
	double total_ms, downtime_ms;
	uint64_t bytes, pages;
	unsigned int rounds;
};

struct api_disk_metrics {
	const char *id; /* the disk's id=, else its path */
	struct virtio_blk_stats st;
	struct virtio_blk_limits limits; /* the ones in force */
};

struct api_net_metrics {
	const char *tap;
	struct virtio_net_stats st;
};

struct api_metrics {
	uint64_t exits[API_EXIT_REASONS]; /* by KVM exit reason, all vCPUs, all boots */
	uint64_t console_dropped;	  /* serial bytes dropped for want of a reader */
	unsigned int ndisks, nnets;
	struct api_disk_metrics disks[CONFIG_MAX_DISKS];
	struct api_net_metrics nets[CONFIG_MAX_NETS];
	/* Outgoing live migrations (PUT /vm/migrate) and the latest one's figures. */
	unsigned int migrations, migrations_failed;
	struct api_migrate_info migration;
};

struct api_backend {
	void *ctx;
	void (*info)(void *ctx, struct api_vm_info *out);
	void (*metrics)(void *ctx, struct api_metrics *out);
	int (*action)(void *ctx, enum api_action a, struct error *err);
	/* Both -ENODEV when the VM has no balloon. */
	int (*balloon_target)(void *ctx, uint64_t bytes, struct error *err);
	int (*balloon_stats)(void *ctx, struct virtio_balloon_stats *out);
	/*
	 * Pre-boot configuration as command-line options (argv[0] is a
	 * placeholder): validated exactly as the command line is.
	 */
	int (*configure)(void *ctx, int argc, char **argv, struct error *err);
	/*
	 * PUT /vm/restore: the options of `--restore DIR` (argv[0] a
	 * placeholder), before anything was started; the VM then runs.
	 * -EBUSY: already configured and started (409); others: a 400.
	 */
	int (*restore)(void *ctx, int argc, char **argv, struct error *err);
	/* Fills the timings (ms) on success. */
	int (*snapshot)(void *ctx, const char *dir, double *pause_ms, double *total_ms,
			struct error *err);
	/*
	 * A disk's rate limits. disk: its id (as in the metrics: id=, else the
	 * path) or its index ("0"). -ENOENT: no such disk; -EAGAIN: the VM is
	 * not built yet.
	 */
	int (*disk_get_limits)(void *ctx, const char *disk, struct virtio_blk_limits *out);
	int (*disk_set_limits)(void *ctx, const char *disk, const struct virtio_blk_limits *l);
	/*
	 * PUT /vm/clone (NULL: not offered). -EINVAL: the request does not fit
	 * this VM (a 400 naming out->field); -EBUSY, -EAGAIN: not now (409).
	 */
	int (*clone)(void *ctx, const struct api_clone_req *req, struct api_clone_result *out,
		     struct error *err);

	/*
	 * A diff snapshot: the pages written since the previous snapshot.
	 * -EINVAL when there is no previous one to build on, -EEXIST when dir
	 * is that previous one's (both 400s).
	 */
	int (*snapshot_diff)(void *ctx, const char *dir, double *pause_ms, double *total_ms,
			     struct error *err);
	/* Live migration to url; -EINVAL: a bad url (a 400). On success the VMM exits after. */
	int (*migrate)(void *ctx, const char *url, struct api_migrate_info *out, struct error *err);
	/*
	 * A suspend snapshot (NULL: not offered): the disks not frozen, the VM
	 * left paused, for a VMM about to be stopped and restored later.
	 */
	int (*snapshot_suspend)(void *ctx, const char *dir, double *pause_ms, double *total_ms,
				struct error *err);
};

struct api;

/* The configuration must outlive the API. */
struct api *api_start(const char *path, const struct vmm_config *cfg,
		      const struct api_backend *backend, struct error *err);
void api_stop(struct api *api);
/* The configuration GET /vm/config shows from now on (after a pre-boot PUT). */
void api_set_config(struct api *api, const struct vmm_config *cfg);

#endif
