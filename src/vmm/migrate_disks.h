/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_MIGRATE_DISKS_H
#define BUNSHIN_VMM_MIGRATE_DISKS_H

#include <stdint.h>

#include "config.h"
#include "snapshot/snapfile.h"
#include "../common/error.h"

/*
 * Disks on copy-on-write layers in a live migration. The destination
 * rebuilds the VM from the source's command line, which names the layers
 * the VM booted on; a snapshot since (the disk now runs on
 * DIR/diskN.live.ovl) or a restore (--overlay) moved its writes to a top
 * the command line does not name. So the header's state file carries,
 * next to "config", the section "disk-layout" (version 1):
 *
 *   u32 disks (the command line's count), then per disk:
 *   u8 1 when the disk is overlay-backed, else 0
 *   u32 length + the absolute path of its live top (length 0 when not)
 *
 * The destination opens each overlay-backed disk as path= (the command
 * line's image, somewhere down the chain) under overlay= that top, which
 * it takes over with its bitmap as for any overlay (overlay_relock()).
 * Below the top the chain is named by the overlay headers themselves.
 */

struct machine;

/* Source, before anything is sent: 0, or -EALREADY with the reason a disk cannot move. */
int migrate_disks_check(struct machine *m, struct error *err);
/*
 * Source: "disk-layout" into w; MIGSTREAM_F_DISK_LAYOUT added to *flags
 * when a disk's top is not the one its command line names.
 */
void migrate_disks_save(struct machine *m, struct snap_writer *w, uint32_t *flags);
/*
 * Destination: the stream's layout onto out's disks (parsed from the
 * stream's command line). Every field is checked and each top must exist;
 * a stream without the section keeps the command line's layers unless its
 * header flags say it needs one.
 */
int migrate_disks_load(const struct snap_file *f, uint32_t flags, struct vmm_config *out,
		       struct error *err);

#endif
