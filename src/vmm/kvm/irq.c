// SPDX-License-Identifier: MIT
/*
 * Interrupt routing on the KVM side: the GSI routing table (legacy PC
 * routes plus MSI routes), irqfd bindings and KVM_SIGNAL_MSI, and the
 * msi_sink that MSI-X device models deliver through.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "../../common/log.h"
#include "../layout.h"
#include "irq.h"
#include "vm.h"

#define IRQ_ISA_IRQS	   16
#define IRQ_DEFAULT_MAX	   (IRQ_ISA_IRQS + LAYOUT_IOAPIC_PINS)
#define VM_MSI_MAX_VECTORS 2048 /* the MSI-X limit; only vectors with eventfds use GSIs */

static atomic_uint_fast64_t irq_generations;

/*
 * The PC wiring of legacy interrupts: ISA IRQ n reaches PIC input n and
 * IOAPIC pin n, except that the timer (IRQ0) is wired to IOAPIC pin 2 and
 * PIC input 2 is the cascade. The MADT's interrupt source override tells
 * the guest the same thing.
 */
static unsigned int irq_default_routes(struct kvm_irq_routing_entry *e)
{
	unsigned int n = 0;

	for (unsigned int irq = 0; irq < IRQ_ISA_IRQS; irq++) {
		if (irq == 2)
			continue;
		e[n].gsi = irq;
		e[n].type = KVM_IRQ_ROUTING_IRQCHIP;
		e[n].u.irqchip.irqchip = irq < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE;
		e[n].u.irqchip.pin = irq % 8;
		n++;
	}
	for (unsigned int gsi = 0; gsi < LAYOUT_IOAPIC_PINS; gsi++) {
		if (gsi == 2)
			continue;
		e[n].gsi = gsi;
		e[n].type = KVM_IRQ_ROUTING_IRQCHIP;
		e[n].u.irqchip.irqchip = KVM_IRQCHIP_IOAPIC;
		e[n].u.irqchip.pin = gsi == 0 ? 2 : gsi;
		n++;
	}
	return n;
}

/* Hands KVM the whole table: the ioctl replaces, it does not amend. */
static int irq_commit(struct irq_router *r)
{
	struct kvm_irq_routing *t;
	unsigned int n;
	int ret = 0;

	if (r->vm_fd < 0)
		return -ENODEV;
	t = calloc(1, sizeof(*t) + (IRQ_DEFAULT_MAX + r->max_gsi) * sizeof(t->entries[0]));
	if (!t)
		return -ENOMEM;
	n = irq_default_routes(t->entries);
	for (unsigned int gsi = LAYOUT_IOAPIC_PINS; gsi < r->max_gsi; gsi++) {
		const struct irq_msi_route *m = &r->msi[gsi];
		struct kvm_irq_routing_entry *e = &t->entries[n];

		if (!m->used || !m->valid)
			continue;
		e->gsi = gsi;
		e->type = KVM_IRQ_ROUTING_MSI;
		e->u.msi.address_lo = (uint32_t)m->msg.address;
		e->u.msi.address_hi = (uint32_t)(m->msg.address >> 32);
		e->u.msi.data = m->msg.data;
		n++;
	}
	t->nr = n;
	if (ioctl(r->vm_fd, KVM_SET_GSI_ROUTING, t) < 0) {
		ret = -errno;
		log_warn("KVM_SET_GSI_ROUTING (%u routes): %s", n, strerror(errno));
	}
	free(t);
	return ret;
}

/*
 * The lock outlives VM rebuilds, since MSI sinks may take it at any time:
 * it is set up once, in the zeroed struct vm, before the first use.
 */
static void irq_router_prepare(struct irq_router *r)
{
	if (r->lock_ready)
		return;
	pthread_mutex_init(&r->lock, NULL);
	r->vm_fd = -1;
	r->lock_ready = true;
}

int irq_router_init(struct irq_router *r, int vm_fd, struct error *err)
{
	int max = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQ_ROUTING);
	int ret;

	irq_router_prepare(r);
	pthread_mutex_lock(&r->lock);
	r->vm_fd = vm_fd;
	r->max_gsi = max > 0 && max < IRQ_MAX_GSI ? (unsigned int)max : IRQ_MAX_GSI;
	r->signal_msi = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SIGNAL_MSI) > 0;
	r->generation = atomic_fetch_add(&irq_generations, 1) + 1;
	r->msi = calloc(r->max_gsi, sizeof(*r->msi));
	ret = r->msi ? irq_commit(r) : -ENOMEM;
	if (ret) {
		free(r->msi);
		r->msi = NULL;
		r->vm_fd = -1;
	}
	pthread_mutex_unlock(&r->lock);
	if (ret)
		return error_set(err, -ret, "KVM_SET_GSI_ROUTING: %s", strerror(-ret));
	return 0;
}

void irq_router_destroy(struct irq_router *r)
{
	if (!r->lock_ready)
		return;
	pthread_mutex_lock(&r->lock);
	/* Closing the VM releases its routes and irqfds; only our copy goes here. */
	free(r->msi);
	r->msi = NULL;
	r->vm_fd = -1;
	r->generation = 0;
	pthread_mutex_unlock(&r->lock);
}

/* ---- GSIs and routes (lock held) ---- */

static int irq_gsi_alloc_locked(struct irq_router *r)
{
	if (r->vm_fd < 0)
		return -ENODEV;
	for (unsigned int gsi = LAYOUT_IOAPIC_PINS; gsi < r->max_gsi; gsi++) {
		if (!r->msi[gsi].used) {
			r->msi[gsi] = (struct irq_msi_route){.used = true};
			return (int)gsi;
		}
	}
	return -ENOSPC;
}

static bool irq_gsi_ours(const struct irq_router *r, unsigned int gsi)
{
	return r->vm_fd >= 0 && gsi >= LAYOUT_IOAPIC_PINS && gsi < r->max_gsi && r->msi[gsi].used;
}

static void irq_gsi_free_locked(struct irq_router *r, unsigned int gsi)
{
	bool had_route;

	if (!irq_gsi_ours(r, gsi))
		return;
	had_route = r->msi[gsi].valid;
	r->msi[gsi] = (struct irq_msi_route){0};
	if (had_route)
		irq_commit(r);
}

static int irq_route_msi_locked(struct irq_router *r, unsigned int gsi, const struct msi_msg *msg)
{
	struct irq_msi_route *m;

	if (!irq_gsi_ours(r, gsi))
		return -EINVAL;
	m = &r->msi[gsi];
	if (m->valid && m->msg.address == msg->address && m->msg.data == msg->data)
		return 0;
	m->valid = true;
	m->msg = *msg;
	return irq_commit(r);
}

static int irq_irqfd_locked(struct irq_router *r, unsigned int gsi, int efd, bool assign)
{
	struct kvm_irqfd fd = {
		.fd = (uint32_t)efd,
		.gsi = gsi,
		.flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN,
	};

	if (r->vm_fd < 0)
		return -ENODEV;
	if (ioctl(r->vm_fd, KVM_IRQFD, &fd) < 0) {
		log_warn("KVM_IRQFD %s gsi %u: %s", assign ? "assign" : "deassign", gsi,
			 strerror(errno));
		return -errno;
	}
	return 0;
}

static int irq_signal_msi_locked(struct irq_router *r, const struct msi_msg *msg)
{
	struct kvm_msi m = {
		.address_lo = (uint32_t)msg->address,
		.address_hi = (uint32_t)(msg->address >> 32),
		.data = msg->data,
	};

	if (r->vm_fd < 0)
		return -ENODEV;
	if (!r->signal_msi)
		return -EOPNOTSUPP;
	/*
	 * 0 means the guest blocked it (a masked LAPIC); KVM's -1 (EPERM) that
	 * no vCPU has the destination APIC ID. Both are the guest's doing.
	 */
	if (ioctl(r->vm_fd, KVM_SIGNAL_MSI, &m) < 0 && errno != EPERM)
		return -errno;
	return 0;
}

int irq_gsi_alloc(struct irq_router *r)
{
	int ret;

	pthread_mutex_lock(&r->lock);
	ret = irq_gsi_alloc_locked(r);
	pthread_mutex_unlock(&r->lock);
	return ret;
}

void irq_gsi_free(struct irq_router *r, unsigned int gsi)
{
	pthread_mutex_lock(&r->lock);
	irq_gsi_free_locked(r, gsi);
	pthread_mutex_unlock(&r->lock);
}

int irq_route_msi(struct irq_router *r, unsigned int gsi, const struct msi_msg *msg)
{
	int ret;

	pthread_mutex_lock(&r->lock);
	ret = irq_route_msi_locked(r, gsi, msg);
	pthread_mutex_unlock(&r->lock);
	return ret;
}

int irq_irqfd(struct irq_router *r, unsigned int gsi, int efd, bool assign)
{
	int ret;

	pthread_mutex_lock(&r->lock);
	ret = irq_irqfd_locked(r, gsi, efd, assign);
	pthread_mutex_unlock(&r->lock);
	return ret;
}

int irq_signal_msi(struct irq_router *r, const struct msi_msg *msg)
{
	int ret;

	pthread_mutex_lock(&r->lock);
	ret = irq_signal_msi_locked(r, msg);
	pthread_mutex_unlock(&r->lock);
	return ret;
}

/* ---- the msi_sink of one device ---- */

struct vm_msi_vec {
	int efd;    /* -1 until an I/O thread asks for one */
	int gsi;    /* -1 until the eventfd needs a route */
	bool bound; /* efd is an irqfd of gsi */
	bool masked;
	struct msi_msg msg;
	uint64_t generation; /* of the router that gsi and bound belong to */
};

struct vm_msi {
	struct irq_router *r;
	unsigned int nvec;
	struct vm_msi_vec v[];
};

/* After a VM rebuild the old GSI and irqfd are gone with the old VM. */
static void vm_msi_fresh(struct vm_msi *s, struct vm_msi_vec *v)
{
	if (v->generation == s->r->generation)
		return;
	v->gsi = -1;
	v->bound = false;
	v->generation = s->r->generation;
}

/* Makes KVM's view of the vector's eventfd match its mask and message. */
static void vm_msi_apply(struct vm_msi *s, struct vm_msi_vec *v)
{
	struct irq_router *r = s->r;

	if (v->efd < 0 || r->vm_fd < 0)
		return;
	if (v->masked) {
		if (v->bound)
			irq_irqfd_locked(r, (unsigned int)v->gsi, v->efd, false);
		v->bound = false;
		return;
	}
	if (v->gsi < 0)
		v->gsi = irq_gsi_alloc_locked(r);
	if (v->gsi < 0) {
		log_warn("msi: no GSI left for an irqfd: %s", strerror(-v->gsi));
		return;
	}
	if (irq_route_msi_locked(r, (unsigned int)v->gsi, &v->msg))
		return;
	if (!v->bound)
		v->bound = irq_irqfd_locked(r, (unsigned int)v->gsi, v->efd, true) == 0;
}

static void vm_msi_update(void *ctx, unsigned int vector, const struct msi_msg *msg, bool masked)
{
	struct vm_msi *s = ctx;
	struct vm_msi_vec *v;

	if (vector >= s->nvec)
		return;
	v = &s->v[vector];
	pthread_mutex_lock(&s->r->lock);
	vm_msi_fresh(s, v);
	v->msg = *msg;
	v->masked = masked;
	vm_msi_apply(s, v);
	pthread_mutex_unlock(&s->r->lock);
}

static void vm_msi_send(void *ctx, unsigned int vector, const struct msi_msg *msg)
{
	struct vm_msi *s = ctx;
	uint64_t one = 1;
	int ret;

	if (vector >= s->nvec)
		return;
	pthread_mutex_lock(&s->r->lock);
	vm_msi_fresh(s, &s->v[vector]);
	/* The bound irqfd routes exactly msg: the same path the I/O threads use. */
	if (s->v[vector].bound)
		ret = write(s->v[vector].efd, &one, sizeof(one)) == sizeof(one) ? 0 : -errno;
	else
		ret = irq_signal_msi_locked(s->r, msg);
	pthread_mutex_unlock(&s->r->lock);
	if (ret && ret != -ENODEV)
		log_warn("msi: vector %u not delivered: %s", vector, strerror(-ret));
}

static int vm_msi_eventfd(void *ctx, unsigned int vector)
{
	struct vm_msi *s = ctx;
	struct vm_msi_vec *v;
	int fd;

	if (vector >= s->nvec)
		return -EINVAL;
	v = &s->v[vector];
	pthread_mutex_lock(&s->r->lock);
	if (v->efd < 0) {
		v->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (v->efd < 0)
			log_warn("msi: eventfd: %s", strerror(errno));
	}
	fd = v->efd < 0 ? -EMFILE : v->efd;
	if (v->efd >= 0) {
		vm_msi_fresh(s, v);
		vm_msi_apply(s, v);
	}
	pthread_mutex_unlock(&s->r->lock);
	return fd;
}

/* Only while unbound: a bound eventfd's events belong to KVM. */
static bool vm_msi_take_pending(void *ctx, unsigned int vector)
{
	struct vm_msi *s = ctx;
	struct vm_msi_vec *v;
	uint64_t count = 0;
	bool fired = false;

	if (vector >= s->nvec)
		return false;
	v = &s->v[vector];
	pthread_mutex_lock(&s->r->lock);
	vm_msi_fresh(s, v);
	if (v->efd >= 0 && !v->bound)
		fired = read(v->efd, &count, sizeof(count)) == sizeof(count) && count;
	pthread_mutex_unlock(&s->r->lock);
	return fired;
}

static const struct msi_ops vm_msi_ops = {
	.send = vm_msi_send,
	.update = vm_msi_update,
	.eventfd = vm_msi_eventfd,
	.take_pending = vm_msi_take_pending,
};

struct vm_msi *vm_msi_create(struct vm *vm, unsigned int nvec)
{
	struct vm_msi *s;

	if (!nvec || nvec > VM_MSI_MAX_VECTORS)
		return NULL;
	s = calloc(1, sizeof(*s) + nvec * sizeof(s->v[0]));
	if (!s)
		return NULL;
	s->r = &vm->irq;
	s->nvec = nvec;
	irq_router_prepare(s->r);
	for (unsigned int i = 0; i < nvec; i++) {
		s->v[i].efd = -1;
		s->v[i].gsi = -1;
		s->v[i].masked = true;
	}
	return s;
}

void vm_msi_destroy(struct vm_msi *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->r->lock);
	for (unsigned int i = 0; i < s->nvec; i++) {
		struct vm_msi_vec *v = &s->v[i];

		vm_msi_fresh(s, v);
		if (v->bound)
			irq_irqfd_locked(s->r, (unsigned int)v->gsi, v->efd, false);
		if (v->gsi >= 0)
			irq_gsi_free_locked(s->r, (unsigned int)v->gsi);
		if (v->efd >= 0)
			close(v->efd);
	}
	pthread_mutex_unlock(&s->r->lock);
	free(s);
}

struct msi_sink vm_msi_sink(struct vm_msi *s)
{
	return (struct msi_sink){.ops = &vm_msi_ops, .ctx = s};
}
