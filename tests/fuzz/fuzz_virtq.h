/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_FUZZ_VIRTQ_H
#define BUNSHIN_FUZZ_VIRTQ_H

#include <stdint.h>

/*
 * Input format of fuzz_virtq, shared with the seed generator: this header,
 * then guest memory. Memory is the rest of the input, byte for byte, at
 * guest-physical 0; with FUZZ_VIRTQ_SPLIT its second half appears at 4 GiB
 * instead, as RAM above the PCI hole does. All fields little-endian.
 */
struct fuzz_virtq_hdr {
	uint8_t size_log2; /* queue size = 1 << (size_log2 % 16) */
	uint8_t flags;	   /* FUZZ_VIRTQ_* */
	uint16_t max_segs; /* caller's segment limit, % (FUZZ_VIRTQ_MAX_SEGS + 1) */
	uint32_t desc_gpa;
	uint32_t avail_gpa;
	uint32_t used_gpa;
	uint16_t last_avail_idx; /* imported with FUZZ_VIRTQ_IMPORT */
	uint16_t used_idx;
	uint8_t fill; /* what the "device" writes into writable segments */
	uint8_t pad[3];
} __attribute__((packed));

#define FUZZ_VIRTQ_INDIRECT  (1 << 0) /* negotiate VIRTIO_F_INDIRECT_DESC */
#define FUZZ_VIRTQ_EVENT_IDX (1 << 1) /* negotiate VIRTIO_F_EVENT_IDX */
#define FUZZ_VIRTQ_IMPORT    (1 << 2) /* start from the indices in the header */
#define FUZZ_VIRTQ_SPLIT     (1 << 3) /* two memory slots */
#define FUZZ_VIRTQ_TOGGLE    (1 << 4) /* flip notifications on and off while popping */
#define FUZZ_VIRTQ_WRITE     (1 << 5) /* write into writable segments, as a device does */
#define FUZZ_VIRTQ_BATCH     (1 << 6) /* push in batches of up to 4 */

#define FUZZ_VIRTQ_MAX_SEGS 1024
#define FUZZ_VIRTQ_HIGH_GPA 0x100000000ULL

#endif
