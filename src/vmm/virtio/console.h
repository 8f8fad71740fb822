/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_VIRTIO_CONSOLE_H
#define BUNSHIN_VMM_VIRTIO_CONSOLE_H

#include "virtio_pci.h"

/*
 * virtio-console (virtio 1.2, section 5.3): device ID 3, one port (the
 * guest's hvc0) on a character backend ("stdio", "file:PATH", "unix:PATH",
 * as for --serial). Queues: receiveq, transmitq. No MULTIPORT: the driver
 * then uses port 0 on these two queues alone.
 *
 * Input arrives on the backend's thread and waits in a bounded buffer of
 * VIRTIO_CONSOLE_RX_BUF bytes until the guest posts receive buffers; while
 * it is full the backend thread waits, so a client that types faster than
 * the guest reads is slowed down rather than losing bytes. Output is handed
 * to the backend, which drops what it cannot take right now.
 */
#define VIRTIO_ID_CONSOLE	 3
#define VIRTIO_CONSOLE_QUEUES	 2
#define VIRTIO_CONSOLE_RXQ	 0
#define VIRTIO_CONSOLE_TXQ	 1
#define VIRTIO_CONSOLE_QSIZE	 256
#define VIRTIO_CONSOLE_BATCH	 64 /* chains per notification, then the others get a turn */
#define VIRTIO_CONSOLE_RX_BUF	 4096
#define VIRTIO_CONSOLE_TX_BUDGET (1024 * 1024) /* bytes per transmitq turn, then a kick */

/* Feature bits and configuration (5.3.3, 5.3.4) */
#define VIRTIO_CONSOLE_F_SIZE	     0
#define VIRTIO_CONSOLE_CFG_COLS	     0
#define VIRTIO_CONSOLE_CFG_ROWS	     2
#define VIRTIO_CONSOLE_CFG_MAX_PORTS 4
#define VIRTIO_CONSOLE_CFG_EMERG_WR  8
#define VIRTIO_CONSOLE_CFG_SIZE	     12
#define VIRTIO_CONSOLE_DEFAULT_COLS  80
#define VIRTIO_CONSOLE_DEFAULT_ROWS  25

struct virtio_console;

struct virtio_console *virtio_console_create(const struct virtio_pci_host *host,
					     struct pci_root *root, const char *backend,
					     struct error *err);
/* After the I/O thread stopped and the PCI root is gone; closes the backend. NULL: no-op. */
void virtio_console_destroy(struct virtio_console *con);
struct virtio_pci *virtio_console_transport(struct virtio_console *con);

#endif
