/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_VIRTIO_NET_H
#define BUNSHIN_VMM_VIRTIO_NET_H

#include <stdint.h>

#include "virtio_pci.h"

/*
 * virtio-net (virtio 1.2, section 5.1): device ID 1 on a tap interface
 * opened with IFF_VNET_HDR (and IFF_MULTI_QUEUE for more than one queue
 * pair). Queues: receiveq/transmitq pairs, then the control queue.
 */
#define VIRTIO_ID_NET 1

struct virtio_net_opts {
	const char *tap;	  /* interface name */
	const uint8_t *mac;	  /* 6 bytes, or NULL: a random locally administered one */
	unsigned int queue_pairs; /* 1..CONFIG_MAX_QUEUES */
};

struct virtio_net;

/* Queues (and so MSI-X vectors less one) a device with these options has. */
unsigned int virtio_net_num_queues(const struct virtio_net_opts *opts);

/* Opens the tap and puts the device on root. */
struct virtio_net *virtio_net_create(const struct virtio_pci_host *host, struct pci_root *root,
				     const struct virtio_net_opts *opts, struct error *err);
/* After the I/O thread stopped and the PCI root is gone; closes the tap. */
void virtio_net_destroy(struct virtio_net *net);
struct virtio_pci *virtio_net_transport(struct virtio_net *net);

#endif
