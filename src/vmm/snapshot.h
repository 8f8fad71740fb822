/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_SNAPSHOT_H
#define BUNSHIN_VMM_SNAPSHOT_H

#include "config.h"
#include "snapshot/snapfile.h"

/* The files of a snapshot directory. */
#define SNAPSHOT_STATE	"state"
#define SNAPSHOT_MEMORY "memory"

struct machine;

struct snapshot_info {
	double pause_ms; /* until the VM was paused */
	double total_ms; /* until both files were on disk */
};

/* The command line a restored VM is built from (owned strings). */
struct snapshot_args {
	int argc;
	char **argv;
};

/*
 * Writes DIR/state and DIR/memory (DIR is created if need be). A running
 * VM is paused for it and resumed after; a paused one stays paused.
 */
int machine_snapshot(struct machine *m, const char *dir, struct snapshot_info *info,
		     struct error *err);

/*
 * A suspend: as machine_snapshot(), but the disks are not frozen and the
 * VM stays paused (a running one is paused for it): the VMM is to end,
 * and a restore goes on from the disks' live tops.
 */
int machine_snapshot_suspend(struct machine *m, const char *dir, struct snapshot_info *info,
			     struct error *err);

/* Writes one kind of snapshot into dir, the machine paused. */
typedef int (*snapshot_write_fn)(struct machine *m, const char *dir, struct error *err);
/*
 * Creates dir, pauses a running VM (a paused one stays so), calls write,
 * resumes, and fills the timings: what full and diff snapshots share.
 */
int machine_snapshot_paused(struct machine *m, const char *dir, snapshot_write_fn write,
			    struct snapshot_info *info, struct error *err);

/*
 * The configuration to restore now->restore with: the recorded command
 * line, then the host-side options of this one. Opens the state file into
 * f for the restore that follows; a keeps the strings out points to.
 */
int snapshot_load_config(const struct vmm_config *now, struct vmm_config *out,
			 struct snapshot_args *a, struct snap_file *f, struct error *err);
void snapshot_args_free(struct snapshot_args *a);
/* The same from a state file already open (a migration stream's); out->restore is left NULL. */
int snapshot_config_from(const struct vmm_config *now, struct vmm_config *out,
			 struct snapshot_args *a, const struct snap_file *f, struct error *err);
/* The "config" section: the command line, less the options naming this process's sockets. */
void snapshot_save_config(const struct vmm_config *cfg, struct snap_writer *w);

/* Pieces of a restore, in this order, on a machine built from that configuration:
 * guest memory (mapped from the memory file), then KVM and device state. */
int machine_restore_memory(struct machine *m, struct error *err);
int machine_restore_state(struct machine *m, const struct snap_file *f, struct error *err);

/* KVM and device state of a paused machine into w (snapshot.c). */
int machine_save_state(struct machine *m, struct snap_writer *w, struct error *err);
/* The devices' part of it, each device one section named after it. */
int machine_save_devices(struct machine *m, struct snap_writer *w, struct error *err);
int machine_restore_devices(struct machine *m, const struct snap_file *f, struct error *err);
/* Before the I/O thread is paused: waits for the virtio resets it still owes (see pci.c). */
#define MACHINE_SETTLE_MS 5000
void machine_settle_resets(struct machine *m);

#endif
