// SPDX-License-Identifier: MIT
/*
 * The VM-wide KVM state in and out of a snapshot's "vm" section: the
 * in-kernel interrupt controllers, the PIT and kvmclock.
 *
 * Section "vm", version 1 (integers little-endian; "blob" is a u32 byte
 * count followed by the KVM structure as the x86-64 KVM ABI lays it out):
 *
 *   blob kvm_pic_state     master PIC (KVM_IRQCHIP_PIC_MASTER)
 *   blob kvm_pic_state     slave PIC (KVM_IRQCHIP_PIC_SLAVE)
 *   blob kvm_ioapic_state  IOAPIC (KVM_IRQCHIP_IOAPIC)
 *   blob kvm_pit_state2    PIT
 *   u64  clock             kvmclock, ns (KVM_GET_CLOCK)
 *   u32  clock_flags       as KVM_GET_CLOCK reported them
 *   u64  realtime          host CLOCK_REALTIME at that moment, when flagged
 *   u64  host_tsc          host TSC at that moment, when flagged
 *
 * The TSC rate is per vCPU in KVM (KVM_GET/SET_TSC_KHZ are vCPU ioctls;
 * the VM-wide form needs Linux 6.0 and must come before the vCPUs exist),
 * so it lives in each "vcpuN" section, where restore checks and sets it.
 *
 * The GSI routing table is not here: it is rebuilt from the devices'
 * state (irq.c), as on boot.
 */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vm.h"
#include "../snapshot/snapfile.h"

#define VM_STATE_VERSION 1
#define IOAPIC_BASE	 0xfec00000ULL

struct vm_image {
	struct kvm_pic_state pic[2];
	struct kvm_ioapic_state ioapic;
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock;
};

static const char *const chip_names[] = {"master PIC", "slave PIC", "IOAPIC"};

static int vm_ioctl(struct vm *vm, unsigned long req, void *arg, const char *what,
		    struct error *err)
{
	if (ioctl(vm->fd, req, arg) < 0)
		return error_set(err, errno, "vm: %s: %s", what, strerror(errno));
	return 0;
}

static int get_chip(struct vm *vm, uint32_t id, void *out, size_t len, struct error *err)
{
	struct kvm_irqchip chip = {.chip_id = id};

	if (ioctl(vm->fd, KVM_GET_IRQCHIP, &chip) < 0)
		return error_set(err, errno, "vm: KVM_GET_IRQCHIP (%s): %s", chip_names[id],
				 strerror(errno));
	memcpy(out, &chip.chip, len);
	return 0;
}

static int set_chip(struct vm *vm, uint32_t id, const void *in, size_t len, struct error *err)
{
	struct kvm_irqchip chip = {.chip_id = id};

	memcpy(&chip.chip, in, len);
	if (ioctl(vm->fd, KVM_SET_IRQCHIP, &chip) < 0)
		return error_set(err, errno, "vm: KVM_SET_IRQCHIP (%s): %s", chip_names[id],
				 strerror(errno));
	return 0;
}

static int capture(struct vm *vm, struct vm_image *im, struct error *err)
{
	int ret = get_chip(vm, KVM_IRQCHIP_PIC_MASTER, &im->pic[0], sizeof(im->pic[0]), err);

	if (!ret)
		ret = get_chip(vm, KVM_IRQCHIP_PIC_SLAVE, &im->pic[1], sizeof(im->pic[1]), err);
	if (!ret)
		ret = get_chip(vm, KVM_IRQCHIP_IOAPIC, &im->ioapic, sizeof(im->ioapic), err);
	if (!ret)
		ret = vm_ioctl(vm, KVM_GET_PIT2, &im->pit, "KVM_GET_PIT2", err);
	if (!ret)
		ret = vm_ioctl(vm, KVM_GET_CLOCK, &im->clock, "KVM_GET_CLOCK", err);
	return ret;
}

static void put_blob(struct snap_writer *w, const void *p, uint32_t len)
{
	snap_put_u32(w, len);
	snap_put_bytes(w, p, len);
}

int vm_save(struct vm *vm, struct snap_writer *w, struct error *err)
{
	struct vm_image im;
	int ret;

	memset(&im, 0, sizeof(im));
	ret = capture(vm, &im, err);
	if (ret)
		return ret;
	snap_begin(w, "vm", VM_STATE_VERSION);
	put_blob(w, &im.pic[0], sizeof(im.pic[0]));
	put_blob(w, &im.pic[1], sizeof(im.pic[1]));
	put_blob(w, &im.ioapic, sizeof(im.ioapic));
	put_blob(w, &im.pit, sizeof(im.pit));
	snap_put_u64(w, im.clock.clock);
	snap_put_u32(w, im.clock.flags);
	snap_put_u64(w, im.clock.realtime);
	snap_put_u64(w, im.clock.host_tsc);
	snap_end(w);
	return 0;
}

/* ---- restore: the section is untrusted input ---- */

static int get_blob(struct snap_section *s, void *p, size_t want, const char *what,
		    struct error *err)
{
	uint32_t len = snap_get_u32(s);

	if (s->overrun)
		return error_set(err, EBADMSG, "vm: the state ends before its %s", what);
	if (len != want)
		return error_set(err, EBADMSG,
				 "vm: %s state of %u bytes, this bunshin-vmm uses %zu", what, len,
				 want);
	snap_get_bytes(s, p, len);
	return 0;
}

/*
 * KVM checks the rest itself (or treats odd values as a PC would, e.g. an
 * unprogrammed PIT channel in mode 0xff); these it would take silently,
 * and no PC this VMM builds has them.
 */
static int check(const struct vm_image *im, struct error *err)
{
	const uint32_t pit_flags = KVM_PIT_FLAGS_HPET_LEGACY | KVM_PIT_FLAGS_SPEAKER_DATA_ON;

	if (im->ioapic.base_address != IOAPIC_BASE)
		return error_set(err, EINVAL, "vm: IOAPIC at %#llx, not at %#llx",
				 (unsigned long long)im->ioapic.base_address, IOAPIC_BASE);
	if (im->pit.flags & ~pit_flags)
		return error_set(err, EINVAL, "vm: unknown PIT flags %#x", im->pit.flags);
	return 0;
}

static int parse(struct snap_section *s, struct vm_image *im, struct error *err)
{
	int ret = get_blob(s, &im->pic[0], sizeof(im->pic[0]), chip_names[0], err);

	if (!ret)
		ret = get_blob(s, &im->pic[1], sizeof(im->pic[1]), chip_names[1], err);
	if (!ret)
		ret = get_blob(s, &im->ioapic, sizeof(im->ioapic), chip_names[2], err);
	if (!ret)
		ret = get_blob(s, &im->pit, sizeof(im->pit), "PIT", err);
	if (ret)
		return ret;
	im->clock.clock = snap_get_u64(s);
	im->clock.flags = snap_get_u32(s);
	im->clock.realtime = snap_get_u64(s);
	im->clock.host_tsc = snap_get_u64(s);
	ret = snap_section_done(s, err);
	return ret ? ret : check(im, err);
}

/*
 * kvmclock goes back to the value it had when saved, with no flags: the
 * guest sees no time pass while it was a snapshot, as across a pause
 * (KVM_CLOCK_REALTIME would instead jump it by the wall time since).
 */
static int apply(struct vm *vm, const struct vm_image *im, struct error *err)
{
	struct kvm_clock_data clock = {.clock = im->clock.clock};
	int ret = set_chip(vm, KVM_IRQCHIP_PIC_MASTER, &im->pic[0], sizeof(im->pic[0]), err);

	if (!ret)
		ret = set_chip(vm, KVM_IRQCHIP_PIC_SLAVE, &im->pic[1], sizeof(im->pic[1]), err);
	if (!ret)
		ret = set_chip(vm, KVM_IRQCHIP_IOAPIC, &im->ioapic, sizeof(im->ioapic), err);
	if (!ret)
		ret = vm_ioctl(vm, KVM_SET_PIT2, (void *)&im->pit, "KVM_SET_PIT2", err);
	if (!ret)
		ret = vm_ioctl(vm, KVM_SET_CLOCK, &clock, "KVM_SET_CLOCK", err);
	return ret;
}

int vm_restore(struct vm *vm, struct snap_section *s, struct error *err)
{
	struct vm_image im;
	int ret;

	if (s->version != VM_STATE_VERSION)
		return error_set(err, EPROTO, "vm: state section version %u, expected %u",
				 s->version, VM_STATE_VERSION);
	memset(&im, 0, sizeof(im));
	ret = parse(s, &im, err);
	return ret ? ret : apply(vm, &im, err);
}
