/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_VIRTIO_BALLOON_H
#define BUNSHIN_VMM_VIRTIO_BALLOON_H

#include <stdbool.h>
#include <stdint.h>

#include "virtio_pci.h"

/*
 * virtio-balloon (virtio 1.2, section 5.5): device ID 5. Pages the guest
 * puts in the balloon (and, with free page reporting, pages it reports
 * free) are given back to the host: their backing in the guest memfd is
 * released, so the VMM's resident memory falls.
 *
 * Queues: inflateq, deflateq, statsq (with stats), reporting_vq (with free
 * page reporting), in that order: absent queues close the gaps (5.5.2).
 */
#define VIRTIO_ID_BALLOON 5

struct virtio_balloon_opts {
	uint64_t target;	   /* bytes the guest should give back */
	unsigned int stats_period; /* seconds between statistics requests, 0: none */
	bool free_page_reporting;
	bool deflate_on_oom;
};

struct virtio_balloon;

unsigned int virtio_balloon_num_queues(const struct virtio_balloon_opts *opts);

struct virtio_balloon *virtio_balloon_create(const struct virtio_pci_host *host,
					     struct pci_root *root,
					     const struct virtio_balloon_opts *opts,
					     struct error *err);
/* After the I/O thread stopped and the PCI root is gone. */
void virtio_balloon_destroy(struct virtio_balloon *b);
struct virtio_pci *virtio_balloon_transport(struct virtio_balloon *b);

/* A new target (the control API's resize); the guest is told through a config change. */
void virtio_balloon_set_target(struct virtio_balloon *b, uint64_t bytes);

#endif
