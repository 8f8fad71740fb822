/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_IDENTITY_H
#define BUNSHIN_VMM_IDENTITY_H

#include "config.h"
#include "snapshot.h"

/*
 * A restored VM's identity: what --restore may change about the recorded
 * machine so that N VMs restored from one snapshot do not collide.
 *
 *   --net id=ID,tap=NAME[,mac=MAC]  replaces the recorded NIC named ID: its
 *                                   id=, or "netN" for the Nth --net of the
 *                                   recorded command line (from 0). Without
 *                                   mac= it gets a new random one.
 *   --vsock cid=N,uds=PATH          replaces the vsock device's CID and socket
 *   --console-virtio BACKEND        replaces the virtio console's backend
 *   --serial, --api-sock            already this process's own
 *
 * identity_merge() turns the recorded arguments in a (as read from the
 * snapshot) into the restored VM's command line: recorded options with the
 * replaced devices rewritten in place, then this command line's host-side
 * options. a must have room for now->argc more arguments.
 * identity_mark() then flags the replaced devices in the parsed result, so
 * the devices show the guest the change on restore.
 */
int identity_merge(struct snapshot_args *a, const struct vmm_config *now, struct error *err);
void identity_mark(struct vmm_config *out, const struct vmm_config *now);

#endif
