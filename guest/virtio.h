/* SPDX-License-Identifier: MIT */
/*
 * A small virtio 1.x (modern) PCI driver library: capability discovery,
 * the status handshake, feature negotiation, split virtqueues, MSI-X or
 * polled completion. CPL-3 code on BARs mapped user-accessible.
 */
#ifndef BUNSHIN_GUEST_VIRTIO_H
#define BUNSHIN_GUEST_VIRTIO_H

#include "pci.h"

#define VIRTIO_VENDOR 0x1af4

/* Device status (virtio 1.2, 2.1). */
#define VIRTIO_S_ACKNOWLEDGE	    1
#define VIRTIO_S_DRIVER		    2
#define VIRTIO_S_DRIVER_OK	    4
#define VIRTIO_S_FEATURES_OK	    8
#define VIRTIO_S_DEVICE_NEEDS_RESET 64
#define VIRTIO_S_FAILED		    128

/* Reserved feature bits (6). */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX     29
#define VIRTIO_F_VERSION_1     32

/* Split virtqueue (2.7). */
#define VRING_DESC_F_NEXT	   1
#define VRING_DESC_F_WRITE	   2
#define VRING_DESC_F_INDIRECT	   4
#define VRING_AVAIL_F_NO_INTERRUPT 1
#define VRING_USED_F_NO_NOTIFY	   1

#define VQ_MAX_SIZE	  64
#define VQ_MAX_SEGS	  8
#define VIRTIO_MAX_QUEUES 8 /* per device; MSI-X vectors VEC_VIRTIO_Q0 + index */

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vring_used_elem {
	uint32_t id;
	uint32_t len;
};

/* One buffer of a request, in the order the device must see them. */
struct vbuf {
	void *addr;
	uint32_t len;
	bool device_writes;
};

struct virtq {
	uint16_t index, size;
	uint16_t free_head, nfree;
	uint16_t last_used;
	uint16_t avail_shadow; /* our avail->idx */
	uint16_t kicked;       /* avail_shadow at the last virtio_kick() */
	uint16_t msix;	       /* queue_msix_vector, 0xffff: none (polled) */
	uint8_t vector;	       /* LAPIC vector of its MSI-X entry */
	volatile struct vring_desc *desc;
	volatile uint16_t *avail; /* flags, idx, ring[size], used_event */
	volatile uint16_t *used;  /* flags, idx, then elements; avail_event */
	uint64_t notify;	  /* address of its notification register */
	/* one indirect table per descriptor head */
	struct vring_desc (*indirect)[VQ_MAX_SEGS];
};

struct virtio_dev {
	struct pci_dev *pci;
	uint16_t type; /* virtio device id: 2 block, 4 entropy */
	uint64_t common, isr, device_cfg, notify_base;
	uint32_t notify_mul;
	uint8_t msix_cap;
	uint64_t msix_table;
	uint16_t msix_count;
	bool use_irq;
	uint64_t dev_features, features;
	uint32_t nqueues;
	struct virtq vq[VIRTIO_MAX_QUEUES];
	const char *fail; /* reason word when a step failed */
};

/* Finds the nth virtio device of this type (modern 0x1040 + type, or a
 * transitional 0x1000..0x103f with that subsystem id) and maps its
 * structures. Returns false and sets d->fail otherwise. */
bool virtio_find(struct virtio_dev *d, uint16_t type, uint32_t nth);

/* Reset, ACKNOWLEDGE | DRIVER, negotiates 'wanted' (device-specific bits)
 * plus VERSION_1 and the optional ring features the command line allows
 * (virtio_features=...), FEATURES_OK. */
bool virtio_init(struct virtio_dev *d, uint64_t wanted);

/* The same, with the optional ring features (INDIRECT_DESC, EVENT_IDX bits)
 * given instead of taken from the command line. */
bool virtio_init_ring(struct virtio_dev *d, uint64_t wanted, uint64_t ring);

/* Sets up queue qi (size min(device, VQ_MAX_SIZE)), with an MSI-X vector
 * unless virtio_poll=1 or the device has no MSI-X. */
bool virtio_setup_queue(struct virtio_dev *d, uint16_t qi);

/* DRIVER_OK. */
bool virtio_driver_ok(struct virtio_dev *d);

/* Submits one request and waits (interrupt or polling, 5 s) for it.
 * Returns false with d->fail set on timeout, a bad used element or
 * DEVICE_NEEDS_RESET; *written is the used length. */
bool virtio_request(struct virtio_dev *d, uint16_t qi, const struct vbuf *bufs, int n,
		    uint32_t *written);

/*
 * The same in steps, for devices that keep buffers posted (net, vsock,
 * console) or several requests in flight:
 *   virtio_submit() puts a chain on the available ring and returns its head
 *     (or -1, d->fail set); nothing is notified yet;
 *   virtio_kick() notifies the device of everything submitted since the
 *     last kick, unless it asked not to be;
 *   virtio_get_used() takes the next used element: the head (its chain is
 *     free again) and *len, -1 when none is there, -2 (d->fail) on a bad id;
 *   virtio_wait_used() waits until one is there: false on timeout or
 *     DEVICE_NEEDS_RESET (d->fail says which).
 */
int virtio_submit(struct virtio_dev *d, uint16_t qi, const struct vbuf *bufs, int n);
void virtio_kick(struct virtio_dev *d, uint16_t qi);
int virtio_get_used(struct virtio_dev *d, uint16_t qi, uint32_t *len);
bool virtio_wait_used(struct virtio_dev *d, uint16_t qi, uint32_t timeout_ms);
bool virtio_needs_reset(const struct virtio_dev *d);

/*
 * Raw ring access, for tests that break the protocol on purpose: nothing is
 * checked. Descriptors are written straight into d->vq[qi].desc.
 *   virtio_post_head() puts head on the next available-ring slot and bumps
 *     avail->idx;
 *   virtio_set_avail_idx() writes avail->idx as given;
 *   virtio_notify() notifies the device whatever it asked for;
 *   virtio_wait_status() waits until all of bits are set in device_status.
 */
void virtio_post_head(struct virtio_dev *d, uint16_t qi, uint16_t head);
void virtio_set_avail_idx(struct virtio_dev *d, uint16_t qi, uint16_t idx);
void virtio_notify(struct virtio_dev *d, uint16_t qi);
bool virtio_wait_status(const struct virtio_dev *d, uint8_t bits, uint32_t timeout_ms);

bool virtio_has(const struct virtio_dev *d, int bit);
uint8_t virtio_cfg8(const struct virtio_dev *d, uint32_t off);
uint16_t virtio_cfg16(const struct virtio_dev *d, uint32_t off);
uint32_t virtio_cfg32(const struct virtio_dev *d, uint32_t off);
uint64_t virtio_cfg64(const struct virtio_dev *d, uint32_t off);
uint32_t virtio_irqs(const struct virtio_dev *d);
void virtio_reset(struct virtio_dev *d);

/* " features=0x... indirect=0|1 event_idx=0|1 irq=N|poll" */
void virtio_line_common(struct line *l, const struct virtio_dev *d);

#endif
