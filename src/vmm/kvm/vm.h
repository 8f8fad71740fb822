/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_VM_H
#define BUNSHIN_VMM_VM_H

#include "gmem.h"
#include "irq.h"
#include "kvm.h"

/*
 * The KVM VM: its file descriptor, guest memory slots and the in-kernel
 * interrupt controllers (PIC, IOAPIC, LAPICs) and PIT. Devices reach it
 * only through vm_irq_set_level(), used as an irq_line callback, and
 * through the MSI sinks of irq.h. The struct starts zeroed (fd -1) and is
 * reused across VM rebuilds: the router's lock persists.
 */
struct vm {
	struct kvm *kvm;
	struct gmem *mem;
	int fd;
	struct irq_router irq;
};

int vm_create(struct vm *vm, struct kvm *kvm, struct gmem *mem, struct error *err);
void vm_destroy(struct vm *vm);

/*
 * kvmclock across a pause: save the guest's clock when its vCPUs stop and
 * put the same value back before they run again, so the guest's time does
 * not jump by however long it was paused (-errno on failure).
 */
int vm_clock_save(struct vm *vm, uint64_t *ns);
int vm_clock_restore(struct vm *vm, uint64_t ns);

struct snap_writer;
struct snap_section;

/*
 * Snapshot state of the VM, section "vm" (vm_state.c): PICs, IOAPIC,
 * PIT and kvmclock. Save with every vCPU out of KVM_RUN; kvmclock is
 * read as it is at the call. Restore into a VM fresh from vm_create()
 * after its vCPUs were restored: the IOAPIC re-delivers pending edges to
 * the LAPICs, and the clock is set after the vCPUs' TSCs. 0 or -errno
 * with err.
 */
int vm_save(struct vm *vm, struct snap_writer *w, struct error *err);
int vm_restore(struct vm *vm, struct snap_section *s, struct error *err);

/* irq_line callback: drives an in-kernel PIC/IOAPIC input. */
void vm_irq_set_level(void *vm, unsigned int gsi, int level);

#endif
