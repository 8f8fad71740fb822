/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_VCPU_H
#define BUNSHIN_VMM_VCPU_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cpuid.h"
#include "vm.h"
#include "../boot/boot.h"
#include "../devices/bus.h"

/* Why a vCPU thread asks the machine to stop. */
enum vcpu_event {
	VCPU_EVENT_RESET,    /* triple fault or KVM system event reset */
	VCPU_EVENT_POWEROFF, /* KVM system event shutdown */
	VCPU_EVENT_ERROR,    /* KVM could not run the vCPU (entry failure, internal error) */
};

/*
 * The gate every vCPU of a machine passes before each KVM_RUN. Closing it
 * (pause) takes each vCPU out of KVM_RUN and parks it; vcpu_gate_close()
 * returns once all of them are parked, so no vCPU touches guest state
 * until vcpu_gate_open().
 */
struct vcpu_gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool closed;
	unsigned int running; /* vCPU threads alive */
	unsigned int parked;  /* of those, waiting at the closed gate */
};

/* What a vCPU needs from the machine around it. */
struct vcpu_host {
	struct bus *pio;
	struct bus *mmio;
	void (*event)(void *ctx, unsigned int vcpu_index, enum vcpu_event ev);
	void *ctx;
	struct vcpu_gate *gate;
};

#define VCPU_EXIT_REASONS 64

struct vcpu {
	struct vm *vm;
	const struct vcpu_host *host;
	unsigned int index;
	uint32_t apic_id;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool started;
	atomic_bool stop;
	/* Exits by KVM exit reason; written by the vCPU thread only, read racily. */
	uint64_t exits[VCPU_EXIT_REASONS];
};

int vcpu_create(struct vcpu *v, struct vm *vm, const struct vcpu_host *host,
		const struct cpu_topology *topo, unsigned int index, struct error *err);
void vcpu_destroy(struct vcpu *v);

/* Registers for the first instruction of the boot protocol (BSP only). */
int vcpu_set_boot_state(struct vcpu *v, const struct boot_entry *entry, struct error *err);

int vcpu_start(struct vcpu *v, struct error *err);
/* Makes the vCPU leave KVM_RUN and its thread end; vcpu_join() waits for it. */
void vcpu_kick(struct vcpu *v);
void vcpu_join(struct vcpu *v);

void vcpu_gate_init(struct vcpu_gate *g);
void vcpu_gate_destroy(struct vcpu_gate *g);
/* Parks the n started vCPUs (all sharing g) outside KVM_RUN; returns once they all are. */
void vcpu_gate_close(struct vcpu_gate *g, struct vcpu *vcpus, unsigned int n);
void vcpu_gate_open(struct vcpu_gate *g);

/*
 * Completes the exit the vCPU last returned to user space for, without
 * running the guest: its registers are then complete and consistent, as a
 * snapshot needs. The vCPU must not be in KVM_RUN (parked or not started).
 * 0 or a negative errno.
 */
int vcpu_finish_pending_io(struct vcpu *v);

struct snap_writer;
struct snap_section;

/*
 * Snapshot state of one vCPU, section "vcpuN" (vcpu_state.c). Both need
 * the vCPU out of KVM_RUN: parked at a closed gate, or not started. Save
 * first completes a pending I/O exit (vcpu_finish_pending_io). Restore
 * goes into a vCPU fresh from vcpu_create(), whose CPUID is already set
 * (XSAVE and MSRs are checked against it), after guest memory is loaded
 * (KVM reads PAE PDPTEs and PV MSR areas from it). A malformed section
 * is refused before the vCPU changes; an ioctl KVM refuses part-way
 * leaves it half restored, so the caller throws the VM away. 0 or -errno
 * with err.
 */
int vcpu_save(struct vcpu *v, struct snap_writer *w, struct error *err);
int vcpu_restore(struct vcpu *v, struct snap_section *s, struct error *err);

/* Installs the no-op handler for the signal used to kick vCPUs; once per process. */
int vcpu_signal_init(void);

#endif
