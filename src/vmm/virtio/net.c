// SPDX-License-Identifier: MIT
/* PLACEHOLDER: replaced by the real device model before this reaches main. */
#include <errno.h>

#include "net.h"

unsigned int virtio_net_num_queues(const struct virtio_net_opts *opts)
{
	return 2 * opts->queue_pairs + 1;
}

struct virtio_net *virtio_net_create(const struct virtio_pci_host *host, struct pci_root *root,
				     const struct virtio_net_opts *opts, struct error *err)
{
	(void)host;
	(void)root;
	(void)opts;
	error_set(err, ENOSYS, "not implemented yet");
	return NULL;
}

void virtio_net_destroy(struct virtio_net *d)
{
	(void)d;
}

struct virtio_pci *virtio_net_transport(struct virtio_net *d)
{
	(void)d;
	return NULL;
}
