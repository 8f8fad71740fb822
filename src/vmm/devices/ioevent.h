/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_DEVICES_IOEVENT_H
#define BUNSHIN_VMM_DEVICES_IOEVENT_H

#include <stdint.h>

/*
 * Guest writes that become eventfd signals without leaving the kernel
 * (KVM_IOEVENTFD), as a device model sees them: it names an MMIO range and
 * an eventfd it owns, and the sink arranges the rest. In the VMM the sink
 * is kvm/ioevent.c; in unit tests it is a recorder. A write the sink could
 * not bind still reaches the device's bus callback, so an ioeventfd is a
 * fast path, never the only path.
 */
struct ioevent_ops {
	/* Any write of len bytes (0: any length) to addr signals fd. */
	int (*assign)(void *ctx, uint64_t addr, uint32_t len, int fd);
	/* Undoes one assign with the same arguments. */
	void (*deassign)(void *ctx, uint64_t addr, uint32_t len, int fd);
};

struct ioevent_sink {
	const struct ioevent_ops *ops;
	void *ctx;
};

#endif
