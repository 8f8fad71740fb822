// SPDX-License-Identifier: MIT
/* PLACEHOLDER: replaced by the real device model before this reaches main. */
#include <errno.h>

#include "vsock.h"

struct virtio_vsock *virtio_vsock_create(const struct virtio_pci_host *host, struct pci_root *root,
					 const struct virtio_vsock_opts *opts, struct error *err)
{
	(void)host;
	(void)root;
	(void)opts;
	error_set(err, ENOSYS, "not implemented yet");
	return NULL;
}

void virtio_vsock_destroy(struct virtio_vsock *d)
{
	(void)d;
}

struct virtio_pci *virtio_vsock_transport(struct virtio_vsock *d)
{
	(void)d;
	return NULL;
}
