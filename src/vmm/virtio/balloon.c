// SPDX-License-Identifier: MIT
/* PLACEHOLDER: replaced by the real device model before this reaches main. */
#include <errno.h>

#include "balloon.h"

unsigned int virtio_balloon_num_queues(const struct virtio_balloon_opts *opts)
{
	return 2 + (opts->stats_period ? 1 : 0) + (opts->free_page_reporting ? 1 : 0);
}
void virtio_balloon_set_target(struct virtio_balloon *b, uint64_t bytes)
{
	(void)b;
	(void)bytes;
}

struct virtio_balloon *virtio_balloon_create(const struct virtio_pci_host *host,
					     struct pci_root *root,
					     const struct virtio_balloon_opts *opts,
					     struct error *err)
{
	(void)host;
	(void)root;
	(void)opts;
	error_set(err, ENOSYS, "not implemented yet");
	return NULL;
}

void virtio_balloon_destroy(struct virtio_balloon *d)
{
	(void)d;
}

struct virtio_pci *virtio_balloon_transport(struct virtio_balloon *d)
{
	(void)d;
	return NULL;
}
