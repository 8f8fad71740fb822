/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_VIRTIO_CONSOLE_H
#define BUNSHIN_VMM_VIRTIO_CONSOLE_H

#include "virtio_pci.h"

/*
 * virtio-console (virtio 1.2, section 5.3): device ID 3, one port (the
 * guest's hvc0) on a character backend ("stdio", "file:PATH", "unix:PATH",
 * as for --serial). Queues: receiveq, transmitq.
 */
#define VIRTIO_ID_CONSOLE     3
#define VIRTIO_CONSOLE_QUEUES 2

struct virtio_console;

struct virtio_console *virtio_console_create(const struct virtio_pci_host *host,
					     struct pci_root *root, const char *backend,
					     struct error *err);
/* After the I/O thread stopped and the PCI root is gone; closes the backend. */
void virtio_console_destroy(struct virtio_console *con);
struct virtio_pci *virtio_console_transport(struct virtio_console *con);

#endif
