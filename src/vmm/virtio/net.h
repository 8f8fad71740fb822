/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_VIRTIO_NET_H
#define BUNSHIN_VMM_VIRTIO_NET_H

#include <stdint.h>

#include "virtio_pci.h"

/*
 * virtio-net (virtio 1.2, section 5.1): device ID 1 on a tap interface
 * opened with IFF_VNET_HDR (and IFF_MULTI_QUEUE for more than one queue
 * pair). Queues: receiveq/transmitq pairs, then the control queue.
 *
 * Frames cross between guest buffers and the tap with readv/writev, the
 * virtio header included, without a copy of our own. One turn of a
 * queue moves at most VIRTIO_NET_BATCH received frames or
 * VIRTIO_NET_TX_BUDGET sent ones; the rest waits for the next turn of the
 * I/O thread, so a busy queue cannot starve the others.
 */
#define VIRTIO_ID_NET	       1
#define VIRTIO_NET_QSIZE       256
#define VIRTIO_NET_CTRL_QSIZE  64
#define VIRTIO_NET_BATCH       64
#define VIRTIO_NET_TX_BUDGET   256 /* frames one transmit pass sends before yielding */
#define VIRTIO_NET_TX_PUSH     16  /* frames handed back at a time */
#define VIRTIO_NET_HDR_SIZE    12  /* struct virtio_net_hdr with num_buffers (VERSION_1) */
#define VIRTIO_NET_CFG_SIZE    12
#define VIRTIO_NET_DEFAULT_MTU 1500

/* Feature bits (5.1.3) */
#define VIRTIO_NET_F_CSUM		 0
#define VIRTIO_NET_F_GUEST_CSUM		 1
#define VIRTIO_NET_F_CTRL_GUEST_OFFLOADS 2
#define VIRTIO_NET_F_MTU		 3
#define VIRTIO_NET_F_MAC		 5
#define VIRTIO_NET_F_GUEST_TSO4		 7
#define VIRTIO_NET_F_GUEST_TSO6		 8
#define VIRTIO_NET_F_GUEST_ECN		 9
#define VIRTIO_NET_F_GUEST_UFO		 10
#define VIRTIO_NET_F_HOST_TSO4		 11
#define VIRTIO_NET_F_HOST_TSO6		 12
#define VIRTIO_NET_F_HOST_ECN		 13
#define VIRTIO_NET_F_HOST_UFO		 14
#define VIRTIO_NET_F_MRG_RXBUF		 15
#define VIRTIO_NET_F_STATUS		 16
#define VIRTIO_NET_F_CTRL_VQ		 17
#define VIRTIO_NET_F_CTRL_RX		 18
#define VIRTIO_NET_F_CTRL_VLAN		 19
#define VIRTIO_NET_F_CTRL_RX_EXTRA	 20
#define VIRTIO_NET_F_GUEST_ANNOUNCE	 21
#define VIRTIO_NET_F_MQ			 22
#define VIRTIO_NET_F_CTRL_MAC_ADDR	 23

/* Device configuration (5.1.4) */
#define VIRTIO_NET_CFG_MAC	 0
#define VIRTIO_NET_CFG_STATUS	 6
#define VIRTIO_NET_CFG_MAX_PAIRS 8
#define VIRTIO_NET_CFG_MTU	 10
#define VIRTIO_NET_S_LINK_UP	 1
#define VIRTIO_NET_S_ANNOUNCE	 2

/* struct virtio_net_hdr (5.1.6) */
#define VIRTIO_NET_HDR_NUM_BUFFERS 10

/* Control queue (5.1.6.5): class, command, data... (readable), ack (writable) */
#define VIRTIO_NET_OK			   0
#define VIRTIO_NET_ERR			   1
#define VIRTIO_NET_CTRL_RX		   0
#define VIRTIO_NET_CTRL_RX_PROMISC	   0
#define VIRTIO_NET_CTRL_RX_NOBCAST	   5
#define VIRTIO_NET_CTRL_MAC		   1
#define VIRTIO_NET_CTRL_MAC_TABLE_SET	   0
#define VIRTIO_NET_CTRL_MAC_ADDR_SET	   1
#define VIRTIO_NET_CTRL_MQ		   4
#define VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET	   0
#define VIRTIO_NET_CTRL_GUEST_OFFLOADS	   5
#define VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET 0
#define VIRTIO_NET_CTRL_ANNOUNCE	   3
#define VIRTIO_NET_CTRL_ANNOUNCE_ACK	   0

struct virtio_net_opts {
	const char *tap;	  /* interface name */
	const uint8_t *mac;	  /* 6 bytes, or NULL: a random locally administered one */
	unsigned int queue_pairs; /* 1..CONFIG_MAX_QUEUES */
	/*
	 * Restoring with a new identity (a clone): the restored device shows
	 * mac instead of the recorded MAC, and tells the guest through a
	 * configuration change interrupt.
	 */
	bool new_identity;
};

/* Frames through the device, all queue pairs (the control API's metrics). */
struct virtio_net_stats {
	uint64_t rx_packets, rx_bytes, rx_dropped, rx_errors;
	uint64_t tx_packets, tx_bytes, tx_dropped;
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
/* Any thread; each counter is read whole, the set is not one instant. */
void virtio_net_get_stats(struct virtio_net *net, struct virtio_net_stats *out);

#endif
