/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_MSI_H
#define BUNSHIN_VMM_MSI_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Message-signalled interrupts as a device model sees them: the MSI-X
 * emulation (msix.c) drives one msi_sink per device, and never touches
 * KVM. In the VMM the sink is kvm/irq.c (GSI routes, irqfd, KVM_SIGNAL_MSI);
 * in unit tests it is a recorder.
 *
 * Vectors are indices below the count the sink was created for; msix.c
 * checks them before any call.
 */
struct msi_msg {
	uint64_t address;
	uint32_t data;
};

struct msi_ops {
	/* Deliver vector now with msg (the vector is unmasked). */
	void (*send)(void *ctx, unsigned int vector, const struct msi_msg *msg);
	/*
	 * The vector's message or its effective mask changed. A masked vector
	 * must not reach the guest from an eventfd either; an unmasked one
	 * must from now on arrive with msg.
	 */
	void (*update)(void *ctx, unsigned int vector, const struct msi_msg *msg, bool masked);
	/*
	 * Optional. An eventfd that delivers vector without leaving the
	 * kernel (irqfd); the sink owns it. Returns the fd or a negative errno.
	 */
	int (*eventfd)(void *ctx, unsigned int vector);
	/*
	 * Optional. Whether the vector's eventfd fired while it was masked;
	 * the event is consumed, the caller records it as pending.
	 */
	bool (*take_pending)(void *ctx, unsigned int vector);
};

struct msi_sink {
	const struct msi_ops *ops;
	void *ctx;
};

#endif
