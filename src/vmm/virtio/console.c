// SPDX-License-Identifier: MIT
/* PLACEHOLDER: replaced by the real device model before this reaches main. */
#include <errno.h>

#include "console.h"

struct virtio_console *virtio_console_create(const struct virtio_pci_host *host,
					     struct pci_root *root, const char *backend,
					     struct error *err)
{
	(void)host;
	(void)root;
	(void)backend;
	error_set(err, ENOSYS, "not implemented yet");
	return NULL;
}

void virtio_console_destroy(struct virtio_console *d)
{
	(void)d;
}

struct virtio_pci *virtio_console_transport(struct virtio_console *d)
{
	(void)d;
	return NULL;
}
