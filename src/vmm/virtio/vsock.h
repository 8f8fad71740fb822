/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_VIRTIO_VSOCK_H
#define BUNSHIN_VMM_VIRTIO_VSOCK_H

#include <stdint.h>

#include "virtio_pci.h"

/*
 * virtio-vsock (virtio 1.2, section 5.10): device ID 19, stream sockets
 * between the guest and host programs, backed in user space by unix
 * sockets (the protocol Firecracker uses):
 *
 *   host -> guest: connect to uds and write "CONNECT <port>\n"; the VMM
 *                  answers "OK <host port>\n" once the guest accepted, and
 *                  closes the socket if it refused (or the line was bad).
 *   guest -> host: a guest connection to (CID 2, port P) is connected to
 *                  the unix socket "<uds>_<P>"; RST when nobody listens.
 *
 * Queues: rx, tx, event. Only VIRTIO_VSOCK_F_STREAM is offered.
 *
 * What a guest sends that the device cannot route is answered, never
 * trusted: a packet whose src_cid is not the guest's own CID is dropped
 * without an answer (a reply would go to an address the guest does not
 * have); one for a dst_cid other than the host (2), of an unknown type or
 * op, or for a connection we do not know gets an RST. A guest that sends
 * more than the credit we gave it loses the connection (RST).
 *
 * Everything is bounded: VIRTIO_VSOCK_MAX_CONNS connections (more are
 * refused: the host client's socket is closed, a guest REQUEST gets an
 * RST), VIRTIO_VSOCK_BUF_ALLOC bytes buffered per connection towards a
 * host socket that does not keep up, and a batch of packets per wakeup.
 */
#define VIRTIO_ID_VSOCK	    19
#define VIRTIO_VSOCK_QUEUES 3
#define VIRTIO_VSOCK_Q_RX   0
#define VIRTIO_VSOCK_Q_TX   1
#define VIRTIO_VSOCK_Q_EVT  2
#define VIRTIO_VSOCK_QSIZE  256

#define VIRTIO_VSOCK_F_STREAM 0

#define VIRTIO_VSOCK_CFG_SIZE 8 /* le64 guest_cid */
#define VIRTIO_VSOCK_HOST_CID 2

/* struct virtio_vsock_hdr (5.10.6), little-endian, packed */
#define VIRTIO_VSOCK_HDR_SIZE	   44
#define VIRTIO_VSOCK_HDR_SRC_CID   0
#define VIRTIO_VSOCK_HDR_DST_CID   8
#define VIRTIO_VSOCK_HDR_SRC_PORT  16
#define VIRTIO_VSOCK_HDR_DST_PORT  20
#define VIRTIO_VSOCK_HDR_LEN	   24
#define VIRTIO_VSOCK_HDR_TYPE	   28
#define VIRTIO_VSOCK_HDR_OP	   30
#define VIRTIO_VSOCK_HDR_FLAGS	   32
#define VIRTIO_VSOCK_HDR_BUF_ALLOC 36
#define VIRTIO_VSOCK_HDR_FWD_CNT   40

/* Event queue (5.10.6.7): struct virtio_vsock_event { le32 id; } */
#define VIRTIO_VSOCK_EVENT_TRANSPORT_RESET 0
#define VIRTIO_VSOCK_EVENT_SIZE		   4

#define VIRTIO_VSOCK_TYPE_STREAM 1

#define VIRTIO_VSOCK_OP_REQUEST	       1
#define VIRTIO_VSOCK_OP_RESPONSE       2
#define VIRTIO_VSOCK_OP_RST	       3
#define VIRTIO_VSOCK_OP_SHUTDOWN       4
#define VIRTIO_VSOCK_OP_RW	       5
#define VIRTIO_VSOCK_OP_CREDIT_UPDATE  6
#define VIRTIO_VSOCK_OP_CREDIT_REQUEST 7

#define VIRTIO_VSOCK_SHUTDOWN_RCV  1
#define VIRTIO_VSOCK_SHUTDOWN_SEND 2

#define VIRTIO_VSOCK_BUF_ALLOC (256 * 1024) /* our receive buffer, per connection */
#define VIRTIO_VSOCK_MAX_CONNS 1024
#define VIRTIO_VSOCK_MAX_PKT   (64 * 1024) /* payload of one packet we send */
#define VIRTIO_VSOCK_BATCH     64	   /* packets per queue wakeup */
#define VIRTIO_VSOCK_LINE_MAX  32	   /* "CONNECT 4294967295\n" fits */

struct virtio_vsock_opts {
	uint32_t guest_cid;
	const char *uds; /* the listening socket's path; removed and recreated */
	/* Restoring with a new identity (a clone): guest_cid replaces the recorded CID. */
	bool new_identity;
};

struct virtio_vsock;

struct virtio_vsock *virtio_vsock_create(const struct virtio_pci_host *host, struct pci_root *root,
					 const struct virtio_vsock_opts *opts, struct error *err);
/* After the I/O thread stopped and the PCI root is gone; closes every socket. */
void virtio_vsock_destroy(struct virtio_vsock *vs);
struct virtio_pci *virtio_vsock_transport(struct virtio_vsock *vs);

#endif
