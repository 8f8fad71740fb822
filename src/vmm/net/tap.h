/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_NET_TAP_H
#define BUNSHIN_VMM_NET_TAP_H

#include <stdbool.h>

#include "../../common/error.h"

/*
 * Tap interfaces as a virtio-net backend. Every queue is one file
 * descriptor on /dev/net/tun, opened IFF_TAP | IFF_NO_PI | IFF_VNET_HDR
 * (plus IFF_MULTI_QUEUE when there are several), non-blocking, with the
 * virtio 1.x header (12 bytes, num_buffers included) in front of every
 * frame in both directions. The kernel writes only the first 10 bytes of
 * that header on receive: num_buffers is the device model's to fill in.
 */
#define TAP_VNET_HDR_SIZE 12

/* Offloads the guest can take (TUNSETOFFLOAD). */
#define TAP_OFFLOAD_CSUM    0x01
#define TAP_OFFLOAD_TSO4    0x02
#define TAP_OFFLOAD_TSO6    0x04
#define TAP_OFFLOAD_TSO_ECN 0x08
#define TAP_OFFLOAD_UFO	    0x10

/*
 * Opens one queue of the tap called name, creating it when it does not
 * exist (CAP_NET_ADMIN). Returns the descriptor, or -errno with
 * "cannot open tap 'name': <reason>" in err.
 */
int tap_open_queue(const char *name, bool multi_queue, struct error *err);

/* Sets the offloads (TAP_OFFLOAD_*); those the kernel cannot combine are dropped first. */
int tap_set_offload(int fd, unsigned int offloads);

/* Attaches (true) or detaches a queue of a multi-queue tap: detached queues receive nothing. */
int tap_set_queue_enabled(int fd, bool enabled);

#endif
