/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_KVM_IRQ_H
#define BUNSHIN_VMM_KVM_IRQ_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "../../common/error.h"
#include "../devices/msi.h"

/*
 * The VM's interrupt routing, kept in user space and committed whole with
 * KVM_SET_GSI_ROUTING: the PC routes of GSIs 0-23 (PIC and IOAPIC pins),
 * then one MSI route per GSI handed out above the IOAPIC pins. A route
 * exists so an eventfd can be bound to it with KVM_IRQFD; messages sent
 * from user space go out with KVM_SIGNAL_MSI and need no GSI.
 *
 * The router lives inside struct vm and is rebuilt with it on a guest
 * reboot; every rebuild gets a new generation number, so MSI sinks notice
 * that their GSIs and irqfd bindings belonged to the previous VM.
 */

#define IRQ_MAX_GSI 1024 /* GSIs [LAYOUT_IOAPIC_PINS, IRQ_MAX_GSI) carry MSI routes */

struct irq_msi_route {
	bool used;  /* the GSI is allocated */
	bool valid; /* and has a message to route */
	struct msi_msg msg;
};

struct irq_router {
	pthread_mutex_t lock;
	bool lock_ready; /* the lock is set up once and kept across VM rebuilds */
	int vm_fd;	 /* -1 once the VM is gone */
	unsigned int max_gsi;
	bool signal_msi; /* KVM_CAP_SIGNAL_MSI */
	uint64_t generation;
	struct irq_msi_route *msi; /* indexed by GSI */
};

/* Sets the PC default routes and commits them. */
int irq_router_init(struct irq_router *r, int vm_fd, struct error *err);
void irq_router_destroy(struct irq_router *r);

/* A free GSI above the IOAPIC pins, or -ENOSPC. It has no route until irq_route_msi(). */
int irq_gsi_alloc(struct irq_router *r);
/* Drops the GSI's route (committed) and frees it. */
void irq_gsi_free(struct irq_router *r, unsigned int gsi);
/* Points an allocated GSI at msg and commits the table. */
int irq_route_msi(struct irq_router *r, unsigned int gsi, const struct msi_msg *msg);
/* KVM_IRQFD: a write to efd raises gsi (assign), or no longer does (deassign). */
int irq_irqfd(struct irq_router *r, unsigned int gsi, int efd, bool assign);
/* One message, now, without a route (KVM_SIGNAL_MSI). */
int irq_signal_msi(struct irq_router *r, const struct msi_msg *msg);

/*
 * The msi_sink of one device with nvec vectors on a VM. Vectors get a GSI
 * and an eventfd only when msix_vector_eventfd() asks for one; while a
 * vector is unmasked its eventfd is bound with KVM_IRQFD, while masked it
 * is not and its events wait in the eventfd (take_pending). Outlives VM
 * rebuilds: stale GSIs are dropped on first use after one.
 */
struct vm_msi;
struct vm;

struct vm_msi *vm_msi_create(struct vm *vm, unsigned int nvec);
void vm_msi_destroy(struct vm_msi *vm_msi);
struct msi_sink vm_msi_sink(struct vm_msi *vm_msi);

#endif
