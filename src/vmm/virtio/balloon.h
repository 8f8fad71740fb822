/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_VIRTIO_BALLOON_H
#define BUNSHIN_VMM_VIRTIO_BALLOON_H

#include <stdbool.h>
#include <stdint.h>

#include "virtio_pci.h"

/*
 * virtio-balloon (virtio 1.2, section 5.5): device ID 5. Pages the guest
 * puts in the balloon (and, with free page reporting, pages it reports
 * free) are given back to the host: their backing in the guest memfd is
 * released, so the VMM's resident memory falls.
 *
 * Queues: inflateq, deflateq, statsq (with stats), reporting_vq (with free
 * page reporting), in that order: absent queues close the gaps (5.5.2).
 * The device offers queues for what it was asked for; a driver that
 * declines a feature numbers the later queues without it, so the role of
 * a queue index follows the negotiated features.
 *
 * Bounded work: one notification handles at most VIRTIO_BALLOON_BATCH
 * chains and VIRTIO_BALLOON_MAX_PFNS page numbers per chain (Linux sends
 * 256); the rest of a longer chain is ignored. Page numbers outside guest
 * RAM are skipped (and logged once).
 */
#define VIRTIO_ID_BALLOON 5

/* Feature bits (5.5.3) */
#define VIRTIO_BALLOON_F_MUST_TELL_HOST 0
#define VIRTIO_BALLOON_F_STATS_VQ	1
#define VIRTIO_BALLOON_F_DEFLATE_ON_OOM 2
#define VIRTIO_BALLOON_F_FREE_PAGE_HINT 3
#define VIRTIO_BALLOON_F_PAGE_POISON	4
#define VIRTIO_BALLOON_F_PAGE_REPORTING 5

/* Configuration (5.5.4) */
#define VIRTIO_BALLOON_CFG_NUM_PAGES 0
#define VIRTIO_BALLOON_CFG_ACTUAL    4
#define VIRTIO_BALLOON_CFG_SIZE	     8

#define VIRTIO_BALLOON_PFN_SHIFT 12 /* page numbers count 4 KiB pages, whatever the guest uses */
#define VIRTIO_BALLOON_QSIZE	 128
#define VIRTIO_BALLOON_BATCH	 16
#define VIRTIO_BALLOON_MAX_PFNS	 4096
#define VIRTIO_BALLOON_STATS_MAX 64 /* tag/value pairs looked at in one statistics buffer */

/* Statistics tags (5.5.6.3); later tags are kept too, up to VIRTIO_BALLOON_S_NR. */
enum virtio_balloon_stat {
	VIRTIO_BALLOON_S_SWAP_IN = 0,
	VIRTIO_BALLOON_S_SWAP_OUT = 1,
	VIRTIO_BALLOON_S_MAJFLT = 2,
	VIRTIO_BALLOON_S_MINFLT = 3,
	VIRTIO_BALLOON_S_MEMFREE = 4,
	VIRTIO_BALLOON_S_MEMTOT = 5,
	VIRTIO_BALLOON_S_AVAIL = 6,
	VIRTIO_BALLOON_S_CACHES = 7,
	VIRTIO_BALLOON_S_HTLB_PGALLOC = 8,
	VIRTIO_BALLOON_S_HTLB_PGFAIL = 9,
	VIRTIO_BALLOON_S_NR = 16,
};
#define VIRTIO_BALLOON_STAT_SIZE 10 /* le16 tag, le64 value, packed */

struct virtio_balloon_opts {
	uint64_t target;	   /* bytes the guest should give back */
	unsigned int stats_period; /* seconds between statistics requests, 0: none */
	bool free_page_reporting;
	bool deflate_on_oom;
};

/* What the device knows, for the control API. */
struct virtio_balloon_stats {
	uint32_t num_pages; /* target, 4 KiB pages */
	uint32_t actual;    /* what the driver says the balloon holds */
	uint64_t inflated;  /* pages received on inflateq, ever */
	uint64_t deflated;  /* pages received on deflateq, ever */
	uint64_t reported;  /* bytes given back through free page reporting */
	uint64_t bad_pfns;  /* page numbers skipped as outside guest RAM */
	uint64_t updates;   /* statistics buffers received */
	uint32_t valid;	    /* bit n: value[n] was reported */
	uint64_t value[VIRTIO_BALLOON_S_NR];
};

struct virtio_balloon;

unsigned int virtio_balloon_num_queues(const struct virtio_balloon_opts *opts);

struct virtio_balloon *virtio_balloon_create(const struct virtio_pci_host *host,
					     struct pci_root *root,
					     const struct virtio_balloon_opts *opts,
					     struct error *err);
/* After the I/O thread stopped and the PCI root is gone. NULL: no-op. */
void virtio_balloon_destroy(struct virtio_balloon *b);
struct virtio_pci *virtio_balloon_transport(struct virtio_balloon *b);

/*
 * A new target (the control API's resize); the guest is told through a
 * config change, sent from the I/O thread. Any thread.
 */
void virtio_balloon_set_target(struct virtio_balloon *b, uint64_t bytes);

/* A consistent copy of the counters and the latest statistics. Any thread. */
void virtio_balloon_get_stats(struct virtio_balloon *b, struct virtio_balloon_stats *out);

#endif
