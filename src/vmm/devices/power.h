/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_POWER_H
#define BUNSHIN_VMM_POWER_H

/* How devices (ACPI PM, reset register, i8042) tell the VM the guest wants off or reset. */
enum power_event {
	POWER_OFF,
	POWER_RESET,
};

struct power_sink {
	void (*event)(void *ctx, enum power_event ev);
	void *ctx;
};

static inline void power_sink_fire(const struct power_sink *p, enum power_event ev)
{
	if (p && p->event)
		p->event(p->ctx, ev);
}

#endif
