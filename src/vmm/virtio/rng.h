/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_VIRTIO_RNG_H
#define BUNSHIN_VMM_VIRTIO_RNG_H

#include "virtio_pci.h"

/*
 * virtio-rng (virtio 1.2, section 5.4): device ID 4, one request queue, no
 * device configuration and no feature bits. Every device-writable buffer
 * the driver offers is filled from getrandom(2).
 *
 * A guest cannot keep the I/O thread to itself: one notification serves at
 * most VIRTIO_RNG_BATCH chains and VIRTIO_RNG_BUDGET bytes (at most
 * VIRTIO_RNG_REQ_MAX per chain: the device may return fewer bytes than the
 * buffer holds, 5.4.7.2 lets the driver cope); leftovers wait for the next
 * turn of the loop.
 */
#define VIRTIO_ID_RNG	   4
#define VIRTIO_RNG_QUEUES  1
#define VIRTIO_RNG_QSIZE   256
#define VIRTIO_RNG_BATCH   64
#define VIRTIO_RNG_REQ_MAX (64 * 1024)
#define VIRTIO_RNG_BUDGET  (256 * 1024)

struct virtio_rng;

struct virtio_rng *virtio_rng_create(const struct virtio_pci_host *host, struct pci_root *root,
				     struct error *err);
/* After the I/O thread stopped and the PCI root is gone. */
void virtio_rng_destroy(struct virtio_rng *rng);
struct virtio_pci *virtio_rng_transport(struct virtio_rng *rng);

#endif
