/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_TEST_VIRTIO_FIXTURE_H
#define BUNSHIN_TEST_VIRTIO_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../src/common/error.h"
#include "../../src/vmm/devices/bus.h"
#include "../../src/vmm/devices/iothread.h"
#include "../../src/vmm/devices/pci.h"
#include "../../src/vmm/kvm/gmem.h"
#include "../../src/vmm/kvm/kvm.h"
#include "../../src/vmm/kvm/vm.h"
#include "../../src/vmm/virtio/virtio_pci.h"

/*
 * What the virtio device tests share: a machine without KVM (guest RAM in a
 * memfd, real pio and mmio buses, a PCI root, an I/O thread, a quiet MSI
 * sink with one eventfd per vector) and a fake guest driver that reaches
 * the device only the way a real one does, through BAR 0 and rings in
 * guest memory. Each test file keeps what is particular to its device:
 * creating it, its configuration space, its request formats.
 *
 * Every helper asserts (Criterion) instead of returning errors, so a test
 * reads as the driver's steps; Criterion runs each test in a process of its
 * own, so one fixture per machine, file-scope in the test, is enough.
 */

#define VFX_MAX_VECTORS 16
/* ECAM slot of the device under test: the first after the host bridge. */
#define VFX_SLOT 1

struct vfx_opts {
	uint64_t ram;			   /* guest RAM, when the fixture owns it */
	unsigned int nvec;		   /* MSI-X vectors that get an eventfd */
	const struct msi_ops *msi;	   /* NULL: the quiet default sink */
	void *msi_ctx;			   /* its ctx, with msi */
	const struct ioevent_ops *ioevent; /* NULL: notifies go through the bus */
	void *ioevent_ctx;		   /* its ctx, with ioevent */
	struct gmem *shared_mem;	   /* memory that outlives this machine */
};

struct vfx {
	struct gmem *mem; /* own_mem or the shared one */
	struct gmem own_mem;
	struct bus pio, mmio;
	struct pci_root *root;
	struct iothread *io;
	struct virtio_pci_host host; /* what a device is created with */
	int vec_efd[VFX_MAX_VECTORS];
	unsigned int nvec;
	int msi_sends; /* messages the default sink was asked to send (atomic) */
	uint64_t bar0; /* BAR 0 of the device under test, set by vfx_attach */
	struct error err;
};

/*
 * Builds the machine in the VMM's order (memory, buses, root, I/O thread)
 * and fills fx->host for the device's create function. The default MSI
 * sink only counts sends (fx->msi_sends) and hands out fx->vec_efd, so
 * tests can read what a vector's irqfd would have delivered.
 */
void vfx_up(struct vfx *fx, const struct vfx_opts *o);
/* The device under test is vp: remembers its BAR 0, which must be assigned. */
void vfx_attach(struct vfx *fx, struct virtio_pci *vp);
/*
 * Teardown is split around the device's destroy because the VMM's order
 * puts it in the middle: vfx_stop (I/O thread stopped, root destroyed),
 * then the device, then vfx_down (I/O thread, buses, own memory, eventfds).
 */
void vfx_stop(struct vfx *fx);
void vfx_down(struct vfx *fx);
/*
 * Only the buses and the PCI root, for tests of PCI pieces that need no
 * guest memory or I/O thread; vfx_pci_down destroys the buses once the
 * root is gone.
 */
void vfx_pci_up(struct vfx *fx);
void vfx_pci_down(struct vfx *fx);

/* ---- bytes and guest memory ---- */

/* Little-endian loads and stores of 1 to 8 bytes: the wire format of BARs and headers. */
uint64_t vfx_le(const uint8_t *b, uint32_t len);
void vfx_put(uint8_t *b, uint32_t len, uint64_t v);
/* Host pointer to len bytes at gpa, asserting they are RAM. */
void *vfx_gp(struct vfx *fx, uint64_t gpa, uint64_t len);

/* ---- PCI configuration space (ECAM) ---- */

/*
 * Config accesses to the device at VFX_SLOT. They do not assert: reads
 * and writes a device ignores are part of what some tests check.
 */
uint32_t vfx_cfg_rd(struct vfx *fx, uint32_t reg, uint32_t len);
void vfx_cfg_wr(struct vfx *fx, uint32_t reg, uint32_t len, uint32_t v);
/*
 * Offset of the first capability id (for a vendor capability, also of
 * virtio cfg type vndr_type); 0 when there is none.
 */
uint32_t vfx_find_cap(struct vfx *fx, uint8_t id, uint8_t vndr_type);
/*
 * Turns MSI-X on and programs vectors [0, nvec) with an x86 message
 * (data 0x40 + vector), unmasked, as a driver does before DRIVER_OK.
 */
void vfx_msix_enable(struct vfx *fx, unsigned int nvec);
/* What vector v's eventfd counted, waiting up to ms for it to fire; 0 if it did not. */
uint64_t vfx_wait_vector(struct vfx *fx, unsigned int v, int ms);

/* ---- BAR 0: common configuration, notifications, device configuration ---- */

/* An access on the mmio bus at BAR 0 + off; asserts something answered. */
uint64_t vfx_bar_rd(struct vfx *fx, uint64_t off, uint32_t len);
void vfx_bar_wr(struct vfx *fx, uint64_t off, uint32_t len, uint64_t v);
/* All 64 feature bits, read through the two select windows. */
uint64_t vfx_device_features(struct vfx *fx);
/* Writes the driver's 64 feature bits through the two select windows. */
void vfx_write_features(struct vfx *fx, uint64_t f);
uint8_t vfx_status(struct vfx *fx);
/* Writing 0 waits (asserting, up to 2 s) for the reset to complete, as a driver must. */
void vfx_set_status(struct vfx *fx, uint8_t s);
/* Polls up to ms milliseconds for device_status to read 0 (a reset complete). */
bool vfx_wait_reset(struct vfx *fx, int ms);
/* Polls up to ms milliseconds for the selected queue's queue_reset to read 0. */
bool vfx_wait_queue_reset(struct vfx *fx, int ms);
/*
 * 3.1.1 up to FEATURES_OK (ACKNOWLEDGE|DRIVER, features, FEATURES_OK);
 * returns whether the device kept FEATURES_OK, since refusing is a result
 * some tests want to see.
 */
bool vfx_negotiate(struct vfx *fx, uint64_t f);
/* Sets DRIVER_OK on top of the negotiated status and asserts the device took it. */
void vfx_driver_ok(struct vfx *fx);
/* Writes queue q's notify register (the bus path, no ioeventfd needed). */
void vfx_notify(struct vfx *fx, unsigned int q);
/* Reads the status until it has all of bits, for up to ms milliseconds. */
bool vfx_wait_status(struct vfx *fx, uint8_t bits, int ms);

/* ---- rings ---- */

/* Where one queue's three parts lie in guest memory, and its size. */
struct vfx_ring {
	uint64_t desc, avail, used;
	uint16_t size;
};

/* The common layout: descriptors at base, avail at +0x1000, used at +0x2000. */
struct vfx_ring vfx_ring_at(uint64_t base, uint16_t size);
/* Selects queue q, gives it r's size and addresses, and enables it. */
void vfx_queue_setup(struct vfx *fx, unsigned int q, struct vfx_ring r);
/* The same with MSI-X vector vec routed to the queue before it is enabled. */
void vfx_queue_setup_msix(struct vfx *fx, unsigned int q, struct vfx_ring r, uint16_t vec);
/*
 * The usual bring-up: negotiate f (asserting FEATURES_OK), set up queue i
 * on rings[i] for i < nq, DRIVER_OK.
 */
void vfx_bring_up(struct vfx *fx, uint64_t f, const struct vfx_ring *rings, unsigned int nq);

struct virtq_desc *vfx_desc(struct vfx *fx, struct vfx_ring r, uint16_t i);
struct virtq_avail *vfx_avail(struct vfx *fx, struct vfx_ring r);
struct virtq_used *vfx_used(struct vfx *fx, struct vfx_ring r);
/* Fills descriptor i (little-endian, as the device reads it). */
void vfx_desc_set(struct vfx *fx, struct vfx_ring r, uint16_t i, uint64_t gpa, uint32_t len,
		  uint16_t flags, uint16_t next);

/* One buffer of a chain: where, how long, and whether the device writes it. */
struct vfx_seg {
	uint64_t gpa;
	uint32_t len;
	bool write;
};

/*
 * Writes the n segments as descriptors first, first + 1, ... (mod size),
 * linked with NEXT; does not offer them.
 */
void vfx_chain(struct vfx *fx, struct vfx_ring r, uint16_t first, const struct vfx_seg *s, int n);
/*
 * Puts head in the avail ring at *idx and publishes *idx + 1 with a release
 * store, as a driver must so the device sees the ring entry before the
 * index. Does not notify.
 */
void vfx_avail_push(struct vfx *fx, struct vfx_ring r, uint16_t *idx, uint16_t head);
/* The used index the device published (acquire, pairing with its release). */
uint16_t vfx_used_idx(struct vfx *fx, struct vfx_ring r);
/* Polls for up to ms milliseconds until the used index is idx. */
bool vfx_wait_used(struct vfx *fx, struct vfx_ring r, uint16_t idx, int ms);
/* Polls for up to ms milliseconds until the used index moves off seen. */
bool vfx_wait_used_past(struct vfx *fx, struct vfx_ring r, uint16_t seen, int ms);
/* Used element i (mod size), in host byte order. */
struct virtq_used_elem vfx_used_elem(struct vfx *fx, struct vfx_ring r, uint16_t i);

/* ---- snapshots ---- */

/*
 * Saves vp's state as section name in a temporary file and restores it
 * into vp itself; returns what the restore returned (its message in err).
 * The restore resets the device first, so this stands for a fresh twin.
 */
int vfx_save_restore(struct virtio_pci *vp, const char *name, struct error *err);
/*
 * Saves vp's state as section name (version 1) in the file at path and
 * returns a malloc'd copy of its payload, with its length and version:
 * what a test edits and writes back to see a restore refuse bad state.
 */
uint8_t *vfx_saved_payload(struct virtio_pci *vp, const char *path, const char *name, size_t *len,
			   uint32_t *version, struct error *err);

/* ---- a real VM, for the tests of the KVM sinks ---- */

struct vfx_kvm {
	struct kvm kvm;
	struct gmem mem;
	struct vm vm;
	struct error err;
};

/*
 * Opens /dev/kvm and makes a VM with 4 MiB of RAM; skips the test where
 * /dev/kvm is not usable, since the fake sinks cover the logic anyway.
 */
void vfx_kvm_up(struct vfx_kvm *k);
void vfx_kvm_down(struct vfx_kvm *k);

#endif
