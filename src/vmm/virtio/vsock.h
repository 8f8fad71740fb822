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
 *                  answers "OK <host port>\n" once the guest accepted.
 *   guest -> host: a guest connection to (CID 2, port P) is connected to
 *                  the unix socket "<uds>_<P>".
 *
 * Queues: rx, tx, event.
 */
#define VIRTIO_ID_VSOCK	    19
#define VIRTIO_VSOCK_QUEUES 3

struct virtio_vsock_opts {
	uint32_t guest_cid;
	const char *uds; /* the listening socket's path; removed and recreated */
};

struct virtio_vsock;

struct virtio_vsock *virtio_vsock_create(const struct virtio_pci_host *host, struct pci_root *root,
					 const struct virtio_vsock_opts *opts, struct error *err);
/* After the I/O thread stopped and the PCI root is gone; closes every socket. */
void virtio_vsock_destroy(struct virtio_vsock *vs);
struct virtio_pci *virtio_vsock_transport(struct virtio_vsock *vs);

#endif
