// SPDX-License-Identifier: MIT
/*
 * The entropy device (virtio 1.2, section 5.4). Requests are buffers the
 * device writes random bytes into; readable descriptors carry nothing the
 * device needs and are ignored.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "../../common/log.h"
#include "rng.h"

#define VIRTIO_RNG_CLASS 0xff0000 /* "unassigned class": there is none for an RNG */
#define VIRTIO_RNG_SEGS	 64

struct virtio_rng {
	struct virtio_pci *vp;
	uint64_t bytes; /* served so far, for debugging */
};

static const uint16_t virtio_rng_qmax[] = {VIRTIO_RNG_QSIZE};

/* Fills len bytes; getrandom() returns short counts for large requests and on signals. */
static int virtio_rng_fill(uint8_t *p, size_t len)
{
	while (len) {
		ssize_t n = getrandom(p, len, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Writes up to max bytes into the chain's writable segments; returns how many. */
static uint32_t virtio_rng_serve(const struct virtq_elem *e, uint32_t max)
{
	uint32_t done = 0;

	for (unsigned int i = e->out_num; i < e->out_num + e->in_num && done < max; i++) {
		size_t n = e->iov[i].iov_len;

		if (n > max - done)
			n = max - done;
		if (virtio_rng_fill(e->iov[i].iov_base, n)) {
			log_warn("virtio-rng: getrandom: %s", strerror(errno));
			break;
		}
		done += (uint32_t)n;
	}
	return done;
}

static uint32_t virtio_rng_min(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

static void virtio_rng_notify(struct virtio_pci *vp, unsigned int q, struct virtq *vq)
{
	struct virtio_rng *rng = virtio_pci_opaque(vp);
	struct iovec iov[VIRTIO_RNG_SEGS];
	struct virtq_elem e = {.iov = iov, .max_segs = VIRTIO_RNG_SEGS};
	struct error err = {0};
	uint32_t budget = VIRTIO_RNG_BUDGET, n;
	int ret = 0;

	for (unsigned int i = 0; i < VIRTIO_RNG_BATCH && budget; i++) {
		ret = virtq_pop(vq, &e, &err);
		if (ret <= 0)
			break;
		n = virtio_rng_serve(&e, virtio_rng_min(budget, VIRTIO_RNG_REQ_MAX));
		budget -= n;
		rng->bytes += n;
		virtq_push(vq, e.head, n);
	}
	virtio_pci_queue_used(vp, q);
	if (ret < 0)
		virtio_pci_needs_reset(vp, err.msg);
	else if (ret > 0 && virtq_has_avail(vq))
		virtio_pci_queue_kick(vp, q); /* more later, after the other handlers */
}

/* Requests are served whole inside the notify handler: a reset queue has nothing in flight. */
static void virtio_rng_queue_reset(struct virtio_pci *vp, unsigned int q)
{
}

static const struct virtio_device_ops virtio_rng_ops = {
	.queue_notify = virtio_rng_notify,
	.queue_reset = virtio_rng_queue_reset,
};

struct virtio_rng *virtio_rng_create(const struct virtio_pci_host *host, struct pci_root *root,
				     struct error *err)
{
	struct virtio_rng *rng = calloc(1, sizeof(*rng));
	struct virtio_device_info info = {
		.name = "virtio-rng",
		.device_id = VIRTIO_ID_RNG,
		.class_code = VIRTIO_RNG_CLASS,
		.num_queues = VIRTIO_RNG_QUEUES,
		.queue_max = virtio_rng_qmax,
		.ops = &virtio_rng_ops,
		.opaque = rng,
	};

	if (!rng) {
		error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	rng->vp = virtio_pci_create(&info, host, err);
	if (!rng->vp || virtio_pci_register(rng->vp, root, err)) {
		virtio_rng_destroy(rng);
		return NULL;
	}
	return rng;
}

void virtio_rng_destroy(struct virtio_rng *rng)
{
	if (!rng)
		return;
	virtio_pci_destroy(rng->vp);
	free(rng);
}

struct virtio_pci *virtio_rng_transport(struct virtio_rng *rng)
{
	return rng->vp;
}
