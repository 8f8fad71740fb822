/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_MACHINE_H
#define BUNSHIN_VMM_MACHINE_H

/*
 * The machine, shared by the files that run it: vmm.c (build, boot, run,
 * pause, tear down) and snapshot.c (save and restore). Nothing outside
 * the files directly in src/vmm sees it: devices and the API reach it through their own
 * small interfaces.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "config.h"
#include "layout.h"
#include "api/api.h"
#include "boot/acpi.h"
#include "boot/boot.h"
#include "devices/bus.h"
#include "devices/chardev.h"
#include "devices/iothread.h"
#include "devices/legacy.h"
#include "devices/pci.h"
#include "devices/serial.h"
#include "devices/vmgenid.h"
#include "kvm/cpuid.h"
#include "kvm/dirty.h"
#include "kvm/gmem.h"
#include "kvm/ioevent.h"
#include "kvm/irq.h"
#include "kvm/kvm.h"
#include "kvm/vcpu.h"
#include "kvm/vm.h"
#include "virtio/balloon.h"
#include "virtio/blk.h"
#include "virtio/console.h"
#include "virtio/net.h"
#include "virtio/rng.h"
#include "virtio/vsock.h"
#include "snapshot/snapfile.h"
#include "snapshot.h"
#include "spawner.h"
#include "migrate.h"

/*
 * Why the machine stopped, in rising priority: a later, stronger reason
 * replaces a weaker one that has not been acted on yet, so a signal or a
 * crash is never lost to a guest reset that raced with it.
 */
enum machine_stop {
	STOP_NONE,
	STOP_RESET,
	STOP_POWEROFF,
	STOP_MIGRATED, /* the guest runs on in another process (migrate.c): exit 0 */
	STOP_ERROR,
	STOP_SIGNAL,
};

/*
 * One virtual machine. Buses, devices and the console live as long as the
 * process (they survive a guest reboot, as the chardev's clients expect);
 * guest memory, the KVM VM and vCPUs are rebuilt on every boot.
 */
struct machine {
	const struct vmm_config *cfg;
	struct kvm kvm;
	struct gmem mem;
	struct vm vm;
	struct cpu_topology topo;
	struct vcpu *vcpus;
	unsigned int nvcpus_created;
	struct vcpu_host vcpu_host;

	struct bus pio;
	struct bus mmio;
	struct chardev *console;
	struct serial *com1;
	struct i8042 *i8042;
	struct rtc *rtc;
	struct acpi_pm *pm;
	struct pci_root *pci;
	struct irq_line irq_com1, irq_i8042, irq_rtc, irq_sci;
	struct power_sink power;

	/* virtio devices and what they run on; NULL when none is configured */
	struct iothread *io;
	bool io_paused;
	struct vm_ioevent *ioevent;
	struct vm_msi *rng_msi;
	struct virtio_rng *rng;
	struct vm_msi *blk_msi[CONFIG_MAX_DISKS];
	struct virtio_blk *blk[CONFIG_MAX_DISKS];
	struct vm_msi *net_msi[CONFIG_MAX_NETS];
	struct virtio_net *net[CONFIG_MAX_NETS];
	struct vm_msi *vcon_msi;
	struct virtio_console *vcon;
	struct vm_msi *vsock_msi;
	struct virtio_vsock *vsock;
	struct vm_msi *balloon_msi;
	struct virtio_balloon *balloon;

	uint8_t *kernel;
	size_t kernel_len;
	uint8_t *initrd;
	size_t initrd_len;

	atomic_int stop;
	int stop_efd; /* written once a stop reason is recorded; the main thread polls it */

	/*
	 * Pause: the gate parks the vCPUs. life_lock keeps a pause or resume
	 * (API thread) from overlapping a boot or a halt (main thread).
	 */
	struct vcpu_gate gate;
	pthread_mutex_t life_lock;
	/*
	 * Console input waits here until the first boot has built the guest:
	 * a restore loads the UART's state over whatever arrived before it,
	 * so early input would be lost (console_open: under console_lock).
	 */
	pthread_mutex_t console_lock;
	pthread_cond_t console_cond;
	bool console_open;
	bool paused;	       /* under life_lock */
	uint64_t paused_clock; /* kvmclock when paused */

	/* Restoring: the snapshot's state file, used by the first boot only. */
	bool restore_pending;
	struct snap_file snap;
	/* PUT /vm/restore: the merged command line the restored config points into. */
	struct snapshot_args restore_args;

	/*
	 * Configured through the API (--api-sock without --kernel): the options
	 * PUT /vm/config gave, parsed into staged; "start" makes it cfg.
	 */
	const struct vmm_config *base_cfg; /* the command line's */
	struct vmm_config staged;
	char **staged_argv;
	int staged_argc;
	bool staged_ok, start_requested; /* API thread only */
	int start_efd;
	atomic_bool ready; /* devices built: actions may reach them */

	/* What the control API reads from its own thread. */
	struct api *api;
	pthread_mutex_t stats_lock; /* vcpus and nvcpus_created (their lifetime), exit_totals */
	uint64_t exit_totals[VCPU_EXIT_REASONS]; /* of the vCPUs of earlier boots */
	atomic_uint boots;
	uint64_t started_ns;

	/* PUT /vm/clone starts clones through it (forked at start-up with --api-sock). */
	struct spawner spawner;

	/* The VM generation ID: new at the first boot and each restore, kept across reboots. */
	uint8_t vmgenid[VMGENID_SIZE];
	bool vmgenid_set;

	/*
	 * Dirty tracking (kvm/dirty.h) for diff snapshots (snapdiff.c) and
	 * migration (migrate.c), both driven from the API thread.
	 */
	struct dirty dirty;
	char last_snap[4096];	/* the base of the next diff snapshot, "": none */
	uint32_t last_snap_crc; /* CRC-32 of its state file */
	/* --incoming: the stream the first boot restores from, -1 once done. */
	int incoming_fd;
	struct migrate_record migrations; /* outgoing, API thread */
};

/* vmm.c */
void machine_request_stop(struct machine *m, enum machine_stop why);
int machine_pause(struct machine *m, struct error *err);
int machine_resume(struct machine *m, struct error *err);

/* clone.c: the API's PUT /vm/clone (struct api_backend's clone). */
int machine_api_clone(void *ctx, const struct api_clone_req *req, struct api_clone_result *out,
		      struct error *err);

#endif
