/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_IRQ_H
#define BUNSHIN_VMM_IRQ_H

/*
 * An interrupt line as a device model sees it. Devices never touch KVM file
 * descriptors; whoever wires the device (the VM, or a unit test) supplies
 * set_level. Edge-triggered ISA devices raise then lower.
 */
struct irq_line {
	void (*set_level)(void *ctx, unsigned int gsi, int level);
	void *ctx;
	unsigned int gsi;
};

static inline void irq_line_set(const struct irq_line *l, int level)
{
	if (l && l->set_level)
		l->set_level(l->ctx, l->gsi, level);
}

#endif
