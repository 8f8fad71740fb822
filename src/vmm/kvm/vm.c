// SPDX-License-Identifier: MIT
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vm.h"
#include "../layout.h"
#include "../../common/log.h"

/*
 * Intel VMX needs three pages for the real-mode TSS and one for the EPT
 * identity map somewhere in guest-physical space; just below the 4 GiB
 * BIOS area, inside the PCI hole, where no RAM or device lives.
 */
#define VM_TSS_ADDR          0xfffbd000ULL
#define VM_IDENTITY_MAP_ADDR 0xfffbc000ULL

static int vm_add_slots(struct vm *vm, struct error *err)
{
	for (int i = 0; i < vm->mem->nslots; i++) {
		const struct gmem_slot *s = &vm->mem->slots[i];
		struct kvm_userspace_memory_region r = {
			.slot = i,
			.guest_phys_addr = s->gpa,
			.memory_size = s->size,
			.userspace_addr = (uintptr_t)s->host,
		};

		if (ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
			return error_set(err, errno, "KVM_SET_USER_MEMORY_REGION slot %d: %s", i,
					 strerror(errno));
	}
	return 0;
}

/*
 * The PC wiring of legacy interrupts: ISA IRQ n reaches PIC input n and
 * IOAPIC pin n, except that the timer (IRQ0) is wired to IOAPIC pin 2 and
 * PIC input 2 is the cascade. The MADT's interrupt source override tells
 * the guest the same thing.
 */
static int vm_set_default_routing(struct vm *vm, struct error *err)
{
	struct {
		struct kvm_irq_routing hdr;
		struct kvm_irq_routing_entry e[16 + LAYOUT_IOAPIC_PINS];
	} r;
	unsigned int n = 0;

	memset(&r, 0, sizeof(r));
	for (unsigned int irq = 0; irq < 16; irq++) {
		if (irq == 2)
			continue;
		r.e[n].gsi = irq;
		r.e[n].type = KVM_IRQ_ROUTING_IRQCHIP;
		r.e[n].u.irqchip.irqchip = irq < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE;
		r.e[n].u.irqchip.pin = irq % 8;
		n++;
	}
	for (unsigned int gsi = 0; gsi < LAYOUT_IOAPIC_PINS; gsi++) {
		if (gsi == 2)
			continue;
		r.e[n].gsi = gsi;
		r.e[n].type = KVM_IRQ_ROUTING_IRQCHIP;
		r.e[n].u.irqchip.irqchip = KVM_IRQCHIP_IOAPIC;
		r.e[n].u.irqchip.pin = gsi == 0 ? 2 : gsi;
		n++;
	}
	r.hdr.nr = n;
	if (ioctl(vm->fd, KVM_SET_GSI_ROUTING, &r) < 0)
		return error_set(err, errno, "KVM_SET_GSI_ROUTING: %s", strerror(errno));
	return 0;
}

static int vm_create_irqchips(struct vm *vm, struct error *err)
{
	/* KVM_PIT_SPEAKER_DUMMY: port 0x61 is answered in the kernel, no exit. */
	struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};

	if (ioctl(vm->fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return error_set(err, errno, "KVM_CREATE_IRQCHIP: %s", strerror(errno));
	if (ioctl(vm->fd, KVM_CREATE_PIT2, &pit) < 0)
		return error_set(err, errno, "KVM_CREATE_PIT2: %s", strerror(errno));
	return vm_set_default_routing(vm, err);
}

int vm_create(struct vm *vm, struct kvm *kvm, struct gmem *mem, struct error *err)
{
	uint64_t idmap = VM_IDENTITY_MAP_ADDR;
	int ret;

	vm->kvm = kvm;
	vm->mem = mem;
	vm->fd = ioctl(kvm->fd, KVM_CREATE_VM, 0);
	if (vm->fd < 0)
		return error_set(err, errno, "KVM_CREATE_VM: %s", strerror(errno));
	/* Only VMX uses these; other implementations may refuse, which is harmless. */
	if (ioctl(vm->fd, KVM_SET_TSS_ADDR, VM_TSS_ADDR) < 0)
		log_debug("KVM_SET_TSS_ADDR: %s", strerror(errno));
	if (ioctl(vm->fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0)
		log_debug("KVM_SET_IDENTITY_MAP_ADDR: %s", strerror(errno));
	ret = vm_create_irqchips(vm, err);
	if (!ret)
		ret = vm_add_slots(vm, err);
	if (ret) {
		close(vm->fd);
		vm->fd = -1;
	}
	return ret;
}

void vm_destroy(struct vm *vm)
{
	if (vm->fd >= 0)
		close(vm->fd);
	vm->fd = -1;
}

void vm_irq_set_level(void *opaque, unsigned int gsi, int level)
{
	struct vm *vm = opaque;
	struct kvm_irq_level irq = {.irq = gsi, .level = level};

	/* Console input can race with a reboot that is rebuilding the VM; drop it then. */
	if (vm->fd < 0)
		return;
	if (ioctl(vm->fd, KVM_IRQ_LINE, &irq) < 0)
		log_warn("KVM_IRQ_LINE gsi %u: %s", gsi, strerror(errno));
}
