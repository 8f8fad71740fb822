// SPDX-License-Identifier: MIT
/*
 * MSI-X through the root complex and real buses, with a recording sink;
 * then the KVM sink on a real VM where /dev/kvm is usable.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../../src/common/util.h"
#include "../../src/vmm/devices/msix.h"
#include "../../src/vmm/kvm/irq.h"
#include "../../src/vmm/kvm/vm.h"
#include "../../src/vmm/layout.h"
#include "virtio_fixture.h"

#define NVEC	  8
#define TABLE_OFF 0x0
#define PBA_OFF	  0x2000

/* ---- recording sink ---- */

struct rec {
	int sends, updates;
	unsigned int last_vec;
	struct msi_msg last_msg;
	bool last_masked;
	bool efd_fired[NVEC]; /* what take_pending will report */
	int takes;
};

static struct rec rec;

static void r_send(void *ctx, unsigned int v, const struct msi_msg *m)
{
	rec.sends++;
	rec.last_vec = v;
	rec.last_msg = *m;
}

static void r_update(void *ctx, unsigned int v, const struct msi_msg *m, bool masked)
{
	rec.updates++;
	rec.last_vec = v;
	rec.last_msg = *m;
	rec.last_masked = masked;
}

static int r_eventfd(void *ctx, unsigned int v)
{
	return 100 + (int)v;
}

static bool r_take(void *ctx, unsigned int v)
{
	bool f = rec.efd_fired[v];

	rec.takes++;
	rec.efd_fired[v] = false;
	return f;
}

static const struct msi_ops r_ops = {
	.send = r_send, .update = r_update, .eventfd = r_eventfd, .take_pending = r_take};
static const struct msi_sink r_sink = {.ops = &r_ops};

/* ---- machine: buses and a root from the virtio fixture, no guest memory ---- */

static struct vfx fx;
static struct pci_device dev;
static uint32_t cap;
static int dev_reads;

static void d_read(struct pci_device *d, unsigned int bar, uint64_t off, uint8_t *data,
		   uint32_t len)
{
	dev_reads++;
	memset(data, 0x5a, len);
}

static const struct pci_device_ops d_ops = {.bar_read = d_read};

static void setup(void)
{
	memset(&rec, 0, sizeof(rec));
	dev_reads = 0;
	vfx_pci_up(&fx);
	pci_device_init(&dev, 0x1af4, 0x1042, 0x018000, 1, 0x1af4, 2);
	dev.name = "msix-dev";
	dev.ops = &d_ops;
	cr_assert_eq(pci_device_add_bar(&dev, 0, PCI_BAR_MEM32, 0x4000, false), 0);
	cr_assert_eq(msix_init(&dev, NVEC, 0, TABLE_OFF, 0, PBA_OFF, &r_sink), 0);
	cr_assert_eq(pci_register_device(fx.root, &dev), VFX_SLOT);
	fx.bar0 = pci_bar_address(&dev, 0);
	cr_assert_neq(fx.bar0, 0);
}

static void teardown(void)
{
	pci_root_destroy(fx.root);
	msix_destroy(&dev);
	vfx_pci_down(&fx);
}

TestSuite(msix, .init = setup, .fini = teardown);

static uint32_t find_msix(void)
{
	uint32_t p = vfx_find_cap(&fx, PCI_CAP_ID_MSIX, 0);

	if (!p)
		cr_assert_fail("no MSI-X capability");
	return p;
}

static void set_ctrl(uint16_t bits)
{
	cap = find_msix();
	vfx_cfg_wr(&fx, cap + 2, 2, bits);
}

static void program(unsigned int v, uint64_t addr, uint32_t data, bool masked)
{
	uint64_t e = TABLE_OFF + 16 * v;

	vfx_bar_wr(&fx, e + 0, 4, (uint32_t)addr);
	vfx_bar_wr(&fx, e + 4, 4, (uint32_t)(addr >> 32));
	vfx_bar_wr(&fx, e + 8, 4, data);
	vfx_bar_wr(&fx, e + 12, 4, masked);
}

/* ---- capability and table ---- */

Test(msix, capability_layout)
{
	cap = find_msix();
	cr_assert(vfx_cfg_rd(&fx, 0x06, 2) & PCI_STATUS_CAP_LIST);
	cr_assert_eq(vfx_cfg_rd(&fx, cap + 2, 2), NVEC - 1, "table size N-1, disabled, unmasked");
	cr_assert_eq(vfx_cfg_rd(&fx, cap + 4, 4), TABLE_OFF | 0, "table offset / BIR");
	cr_assert_eq(vfx_cfg_rd(&fx, cap + 8, 4), PBA_OFF | 0, "PBA offset / BIR");
	vfx_cfg_wr(&fx, cap + 2, 2, 0xffff);
	cr_assert_eq(vfx_cfg_rd(&fx, cap + 2, 2), 0xc000 | (NVEC - 1),
		     "only enable and mask-all write");
	cr_assert(msix_enabled(&dev));
	vfx_cfg_wr(&fx, cap + 4, 4, 0x1234);
	vfx_cfg_wr(&fx, cap + 8, 4, 0x1234);
	cr_assert_eq(vfx_cfg_rd(&fx, cap + 4, 4), TABLE_OFF);
	cr_assert_eq(vfx_cfg_rd(&fx, cap + 8, 4), PBA_OFF, "the guest cannot move the table");
	cr_assert_eq(msix_nvectors(&dev), NVEC);
}

Test(msix, table_power_on_and_writes)
{
	for (unsigned int v = 0; v < NVEC; v++) {
		cr_assert_eq(vfx_bar_rd(&fx, 16 * v + 12, 4), 1, "vector %u masked at power-on", v);
		cr_assert_eq(vfx_bar_rd(&fx, 16 * v, 8), 0);
	}
	program(3, 0xfee01003, 0x4041, true);
	cr_assert_eq(vfx_bar_rd(&fx, 48, 4), 0xfee01000, "address bits 1:0 are reserved");
	cr_assert_eq(vfx_bar_rd(&fx, 52, 4), 0);
	cr_assert_eq(vfx_bar_rd(&fx, 56, 4), 0x4041);
	vfx_bar_wr(&fx, 60, 4, 0xfffffffe);
	cr_assert_eq(vfx_bar_rd(&fx, 60, 4), 0, "only the mask bit in vector control");
	vfx_bar_wr(&fx, 16, 8, 0x00000001fee00000ULL);
	cr_assert_eq(vfx_bar_rd(&fx, 16, 4), 0xfee00000, "qword write, low");
	cr_assert_eq(vfx_bar_rd(&fx, 20, 4), 1, "qword write, high");
	vfx_bar_wr(&fx, 24, 1, 0x77);
	cr_assert_eq(vfx_bar_rd(&fx, 24, 2), 0x77, "byte writes");
	cr_assert_eq(dev_reads, 0, "nothing reached the device");
}

Test(msix, notify_needs_enable)
{
	program(0, 0xfee00000, 0x30, false);
	cr_assert_eq(msix_notify(&dev, 0), -EAGAIN);
	cr_assert_eq(rec.sends, 0);
	set_ctrl(MSIX_CTRL_ENABLE);
	cr_assert_eq(msix_notify(&dev, 0), 0);
	cr_assert_eq(rec.sends, 1);
	cr_assert_eq(rec.last_vec, 0);
	cr_assert_eq(rec.last_msg.address, 0xfee00000);
	cr_assert_eq(rec.last_msg.data, 0x30);
}

Test(msix, out_of_range_vectors)
{
	set_ctrl(MSIX_CTRL_ENABLE);
	cr_assert_eq(msix_notify(&dev, NVEC), -EINVAL);
	cr_assert_eq(msix_notify(&dev, 0xffffffffu), -EINVAL);
	cr_assert_eq(msix_vector_eventfd(&dev, NVEC), -EINVAL);
	cr_assert_eq(msix_vector_eventfd(&dev, 2), 102);
	cr_assert_eq(rec.sends, 0);
}

Test(msix, masked_vector_pends_until_unmasked)
{
	set_ctrl(MSIX_CTRL_ENABLE);
	program(5, 0xfee00000, 0x55, true);
	cr_assert_eq(msix_notify(&dev, 5), 1);
	cr_assert_eq(rec.sends, 0);
	cr_assert_eq(vfx_bar_rd(&fx, PBA_OFF, 8), 1u << 5, "pending bit");
	vfx_bar_wr(&fx, 16 * 5 + 12, 4, 0);
	cr_assert_eq(rec.sends, 1, "delivered on unmask");
	cr_assert_eq(rec.last_vec, 5);
	cr_assert_eq(rec.last_msg.data, 0x55);
	cr_assert_eq(vfx_bar_rd(&fx, PBA_OFF, 8), 0, "pending bit cleared");
	cr_assert_eq(msix_notify(&dev, 5), 0);
	cr_assert_eq(rec.sends, 2);
}

Test(msix, function_mask)
{
	program(1, 0xfee00000, 0x11, false);
	set_ctrl(MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL);
	cr_assert_eq(msix_notify(&dev, 1), 1);
	cr_assert_eq(vfx_bar_rd(&fx, PBA_OFF, 1), 2);
	cr_assert_eq(vfx_bar_rd(&fx, 16 + 12, 4), 0, "function mask leaves vector control alone");
	set_ctrl(MSIX_CTRL_ENABLE);
	cr_assert_eq(rec.sends, 1);
	cr_assert_eq(rec.last_vec, 1);
	cr_assert_eq(vfx_bar_rd(&fx, PBA_OFF, 1), 0);
}

Test(msix, sink_hears_routing_changes)
{
	set_ctrl(MSIX_CTRL_ENABLE);
	program(2, 0xfee00000, 0x22, true);
	cr_assert_eq(rec.updates, 0, "masked vectors need no route");
	vfx_bar_wr(&fx, 32 + 12, 4, 0);
	cr_assert_eq(rec.updates, 1);
	cr_assert(!rec.last_masked);
	cr_assert_eq(rec.last_msg.data, 0x22);
	vfx_bar_wr(&fx, 32 + 8, 4, 0x23);
	cr_assert_eq(rec.updates, 2, "a live vector's new message is routed");
	cr_assert_eq(rec.last_msg.data, 0x23);
	vfx_bar_wr(&fx, 32 + 8, 4, 0x23);
	cr_assert_eq(rec.updates, 2, "no change, no update");
	vfx_bar_wr(&fx, 32 + 12, 4, 1);
	cr_assert_eq(rec.updates, 3);
	cr_assert(rec.last_masked);
	set_ctrl(0);
	cr_assert_eq(rec.updates, 3, "already masked");
}

Test(msix, eventfd_events_while_masked_become_pending)
{
	set_ctrl(MSIX_CTRL_ENABLE);
	program(4, 0xfee00000, 0x44, true);
	rec.efd_fired[4] = true;
	cr_assert_eq(vfx_bar_rd(&fx, PBA_OFF, 1), 1u << 4, "the PBA shows the eventfd's event");
	vfx_bar_wr(&fx, 64 + 12, 4, 0);
	cr_assert_eq(rec.sends, 1);
	cr_assert_eq(rec.last_vec, 4);
	rec.efd_fired[6] = true;
	program(6, 0xfee00000, 0x66, false);
	cr_assert_eq(rec.sends, 2, "collected on unmask even without a PBA read");
}

Test(msix, pba_is_read_only_and_bad_accesses_are_dropped)
{
	set_ctrl(MSIX_CTRL_ENABLE);
	program(0, 0xfee00000, 1, true);
	msix_notify(&dev, 0);
	vfx_bar_wr(&fx, PBA_OFF, 8, 0);
	cr_assert_eq(vfx_bar_rd(&fx, PBA_OFF, 8), 1, "PBA writes are ignored");
	vfx_bar_wr(&fx, 16 * NVEC - 4, 8, 0); /* straddles the end of the table */
	cr_assert_eq(vfx_bar_rd(&fx, 16 * NVEC - 4, 4), 1, "last vector control untouched");
	cr_assert_eq(vfx_bar_rd(&fx, 16 * NVEC - 4, 8), ~0ULL, "straddling read floats");
	cr_assert_eq(dev_reads, 0);
	cr_assert_eq(vfx_bar_rd(&fx, 0x1000, 4), 0x5a5a5a5a, "the rest of the BAR is the device's");
	cr_assert_eq(vfx_bar_rd(&fx, PBA_OFF + 8, 4), 0x5a5a5a5a);
	cr_assert_eq(dev_reads, 2);
}

Test(msix, reset_masks_everything)
{
	set_ctrl(MSIX_CTRL_ENABLE);
	program(0, 0xfee00000, 1, false);
	program(7, 0xfee00000, 7, true);
	msix_notify(&dev, 7);
	rec.efd_fired[3] = true;
	pci_root_reset(fx.root);
	cr_assert(!msix_enabled(&dev));
	cr_assert(rec.last_masked, "the sink heard vector 0 go masked");
	cr_assert_eq(vfx_bar_rd(&fx, 0, 8), 0);
	cr_assert_eq(vfx_bar_rd(&fx, 12, 4), 1);
	cr_assert_eq(vfx_bar_rd(&fx, PBA_OFF, 8), 0, "nothing pending");
	cr_assert(!rec.efd_fired[3], "stale eventfd events are drained");
	cr_assert_eq(vfx_cfg_rd(&fx, find_msix() + 2, 2), NVEC - 1);
}

Test(msix, init_validates_layout)
{
	struct pci_device d;

	pci_device_init(&d, 1, 2, 0xff0000, 0, 0, 0);
	cr_assert_eq(pci_device_add_bar(&d, 0, PCI_BAR_MEM32, 0x1000, false), 0);
	cr_assert_eq(pci_device_add_bar(&d, 1, PCI_BAR_IO, 0x100, false), 0);
	cr_assert_eq(msix_init(&d, 0, 0, 0, 0, 0x800, &r_sink), -EINVAL, "no vectors");
	cr_assert_eq(msix_init(&d, 2049, 0, 0, 0, 0x800, &r_sink), -EINVAL);
	cr_assert_eq(msix_init(&d, 4, 1, 0, 0, 0x800, &r_sink), -EINVAL, "I/O BAR");
	cr_assert_eq(msix_init(&d, 4, 2, 0, 0, 0x800, &r_sink), -EINVAL, "no such BAR");
	cr_assert_eq(msix_init(&d, 4, 6, 0, 0, 0x800, &r_sink), -EINVAL);
	cr_assert_eq(msix_init(&d, 4, 0, 4, 0, 0x800, &r_sink), -EINVAL, "unaligned table");
	cr_assert_eq(msix_init(&d, 256, 0, 0, 0, 0x800, &r_sink), -EINVAL, "table past the BAR");
	cr_assert_eq(msix_init(&d, 4, 0, 0, 0, 0x38, &r_sink), -EINVAL, "PBA in the table");
	cr_assert_eq(msix_init(&d, 4, 0, 0, 0, 0x1000, &r_sink), -EINVAL, "PBA past the BAR");
	cr_assert_eq(msix_init(&d, 4, 0, 0, 0, 0x800, NULL), -EINVAL);
	cr_assert_null(d.msix);
	cr_assert_eq(pci_config_get8(&d, PCI_CAPABILITY_LIST), 0, "no capability added");
	cr_assert_eq(msix_init(&d, 4, 0, 0, 0, 0x40, &r_sink), 0);
	cr_assert_eq(msix_init(&d, 4, 0, 0, 0, 0x40, &r_sink), -EINVAL, "twice");
	msix_destroy(&d);
}

/* ---- the KVM sink on a real VM ---- */

Test(msix_kvm, router_allocates_above_the_ioapic)
{
	struct vfx_kvm f;
	struct msi_msg m = {.address = 0xfee00000, .data = 0x31};
	int a, b;

	vfx_kvm_up(&f);
	a = irq_gsi_alloc(&f.vm.irq);
	b = irq_gsi_alloc(&f.vm.irq);
	cr_assert_eq(a, LAYOUT_IOAPIC_PINS);
	cr_assert_eq(b, LAYOUT_IOAPIC_PINS + 1);
	cr_assert_eq(irq_route_msi(&f.vm.irq, a, &m), 0, "KVM takes the table");
	cr_assert_eq(irq_route_msi(&f.vm.irq, 3, &m), -EINVAL, "IOAPIC pins are not ours");
	irq_gsi_free(&f.vm.irq, a);
	cr_assert_eq(irq_gsi_alloc(&f.vm.irq), a, "freed GSIs are reused");
	cr_assert_eq(irq_signal_msi(&f.vm.irq, &m), f.vm.irq.signal_msi ? 0 : -EOPNOTSUPP);
	vfx_kvm_down(&f);
}

Test(msix_kvm, eventfd_vectors_bind_and_unbind)
{
	struct vfx_kvm f;
	struct vm_msi *s;
	struct msi_sink sink;
	struct msi_msg m = {.address = 0xfee00000, .data = 0x41};
	uint64_t one = 1;
	int fd;

	vfx_kvm_up(&f);
	s = vm_msi_create(&f.vm, 4);
	cr_assert_not_null(s);
	sink = vm_msi_sink(s);
	fd = sink.ops->eventfd(sink.ctx, 1);
	cr_assert_geq(fd, 0);
	cr_assert_eq(sink.ops->eventfd(sink.ctx, 1), fd, "one eventfd per vector");
	cr_assert_eq(sink.ops->eventfd(sink.ctx, 4), -EINVAL);
	/* Masked: events wait in the eventfd. */
	cr_assert_eq(write(fd, &one, 8), 8);
	cr_assert(sink.ops->take_pending(sink.ctx, 1));
	cr_assert(!sink.ops->take_pending(sink.ctx, 1), "consumed");
	/* Unmasked: bound as an irqfd, KVM consumes events. */
	sink.ops->update(sink.ctx, 1, &m, false);
	cr_assert_eq(f.vm.irq.msi[LAYOUT_IOAPIC_PINS].valid, true, "route installed");
	cr_assert_eq(f.vm.irq.msi[LAYOUT_IOAPIC_PINS].msg.data, 0x41);
	sink.ops->send(sink.ctx, 1, &m);
	sink.ops->send(sink.ctx, 0, &m); /* no eventfd: KVM_SIGNAL_MSI */
	m.data = 0x42;
	sink.ops->update(sink.ctx, 1, &m, false);
	cr_assert_eq(f.vm.irq.msi[LAYOUT_IOAPIC_PINS].msg.data, 0x42, "rerouted");
	sink.ops->update(sink.ctx, 1, &m, true);
	cr_assert_eq(write(fd, &one, 8), 8);
	cr_assert(sink.ops->take_pending(sink.ctx, 1), "unbound again while masked");
	vm_msi_destroy(s);
	cr_assert(!f.vm.irq.msi[LAYOUT_IOAPIC_PINS].used, "GSI released");
	vfx_kvm_down(&f);
}

Test(msix_kvm, sink_survives_a_vm_rebuild)
{
	struct vfx_kvm f;
	struct vm_msi *s;
	struct msi_sink sink;
	struct msi_msg m = {.address = 0xfee00000, .data = 0x51};
	int fd;

	vfx_kvm_up(&f);
	s = vm_msi_create(&f.vm, 2);
	sink = vm_msi_sink(s);
	fd = sink.ops->eventfd(sink.ctx, 0);
	sink.ops->update(sink.ctx, 0, &m, false);
	vm_destroy(&f.vm);
	sink.ops->send(sink.ctx, 0, &m); /* no VM: dropped quietly */
	cr_assert_eq(vm_create(&f.vm, &f.kvm, &f.mem, &f.err), 0, "%s", f.err.msg);
	sink.ops->update(sink.ctx, 0, &m, false);
	cr_assert(f.vm.irq.msi[LAYOUT_IOAPIC_PINS].valid, "re-routed on the new VM");
	cr_assert_eq(sink.ops->eventfd(sink.ctx, 0), fd, "the eventfd I/O threads hold stays");
	vm_msi_destroy(s);
	vfx_kvm_down(&f);
}
