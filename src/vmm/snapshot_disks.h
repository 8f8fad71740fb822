/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_SNAPSHOT_DISKS_H
#define BUNSHIN_VMM_SNAPSHOT_DISKS_H

#include "config.h"
#include "snapshot/snapfile.h"

struct machine;

/*
 * Disks in snapshots, without copying them. Taking a snapshot freezes
 * every writable disk: its top layer (the raw image, or the overlay on
 * top) is never written again and belongs to the snapshot, and the running
 * VM goes on in a fresh overlay DIR/diskN.live.ovl over it. The "disks"
 * section records each disk's frozen top (path and format); below it the
 * chain is named by the overlay headers themselves.
 *
 * Restoring gives every writable disk a top layer of its own over its
 * frozen top: --overlay DISK=FILE, or by default a fresh
 * DIR/diskN.restore-PID.ovl. So clones of one snapshot never see each
 * other's writes, and none of them, nor the parent, changes what the
 * snapshot holds.
 */

/*
 * With the machine paused: freezes the writable disks, then writes
 * "disks". Without freeze (a suspend: the VM will not run on) the disks
 * stay as they are and none is recorded frozen.
 */
int snapshot_disks_save(struct machine *m, const char *dir, bool freeze, struct snap_writer *w,
			struct error *err);
/*
 * The restored configuration's disks (out, parsed from the recorded
 * command line) open their frozen tops under the overlays that now (this
 * command line) names; the overlays are created or checked here, so a bad
 * --overlay is refused before the VM is built.
 */
int snapshot_disks_restore(const struct vmm_config *now, struct vmm_config *out,
			   const struct snap_file *f, struct error *err);

#endif
