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
#define VM_TSS_ADDR	     0xfffbd000ULL
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

static int vm_create_irqchips(struct vm *vm, struct error *err)
{
	/* KVM_PIT_SPEAKER_DUMMY: port 0x61 is answered in the kernel, no exit. */
	struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};

	if (ioctl(vm->fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return error_set(err, errno, "KVM_CREATE_IRQCHIP: %s", strerror(errno));
	if (ioctl(vm->fd, KVM_CREATE_PIT2, &pit) < 0)
		return error_set(err, errno, "KVM_CREATE_PIT2: %s", strerror(errno));
	/* The PC routes first; MSI routes join them as devices ask (irq.c). */
	return irq_router_init(&vm->irq, vm->fd, err);
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
	/*
	 * Memory first, interrupt controllers after: on the PVM host this
	 * project runs on, a memory-slot update made once an in-kernel irqchip
	 * exists takes about 7 ms (whatever the slot's size; the wait is in the
	 * host kernel), one made before it about 0.1 ms. It is most of the time
	 * a restore takes. KVM accepts either order as long as both come before
	 * the first vCPU.
	 */
	ret = vm_add_slots(vm, err);
	if (ret) {
		close(vm->fd);
		vm->fd = -1;
		return ret;
	}
	ret = vm_create_irqchips(vm, err);
	if (ret) {
		irq_router_destroy(&vm->irq);
		close(vm->fd);
		vm->fd = -1;
	}
	return ret;
}

void vm_destroy(struct vm *vm)
{
	irq_router_destroy(&vm->irq);
	if (vm->fd >= 0)
		close(vm->fd);
	vm->fd = -1;
}

int vm_clock_save(struct vm *vm, uint64_t *ns)
{
	struct kvm_clock_data data = {0};

	if (ioctl(vm->fd, KVM_GET_CLOCK, &data) < 0)
		return -errno;
	*ns = data.clock;
	return 0;
}

int vm_clock_restore(struct vm *vm, uint64_t ns)
{
	struct kvm_clock_data data = {.clock = ns};

	return ioctl(vm->fd, KVM_SET_CLOCK, &data) < 0 ? -errno : 0;
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
