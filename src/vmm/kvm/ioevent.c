// SPDX-License-Identifier: MIT
/*
 * KVM_IOEVENTFD for device models: MMIO writes that signal an eventfd in
 * the kernel, so a queue notification costs no exit to user space.
 */
#include <errno.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "../../common/log.h"
#include "ioevent.h"

struct vm_ioevent_reg {
	uint64_t addr;
	uint32_t len;
	int fd;
	bool bound; /* registered on the current VM */
};

struct vm_ioevent {
	pthread_mutex_t lock;
	int vm_fd; /* -1 between VMs */
	bool any_length;
	struct vm_ioevent_reg *regs;
	unsigned int nregs, cap;
};

/*
 * A device asks for len 0 (any length) when it does not care about the
 * width; without KVM_CAP_IOEVENTFD_ANY_LENGTH use 2, the width virtio
 * drivers write notifications with. Other widths then take the bus path.
 */
static uint32_t vm_ioevent_len(const struct vm_ioevent *v, uint32_t len)
{
	return len == 0 && !v->any_length ? 2 : len;
}

static int vm_ioevent_ioctl(struct vm_ioevent *v, const struct vm_ioevent_reg *r, bool assign)
{
	struct kvm_ioeventfd io = {
		.addr = r->addr,
		.len = vm_ioevent_len(v, r->len),
		.fd = r->fd,
		.flags = assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN,
	};

	if (v->vm_fd < 0)
		return -ENODEV;
	if (ioctl(v->vm_fd, KVM_IOEVENTFD, &io) < 0) {
		log_warn("KVM_IOEVENTFD %s 0x%llx: %s", assign ? "assign" : "deassign",
			 (unsigned long long)r->addr, strerror(errno));
		return -errno;
	}
	return 0;
}

static int vm_ioevent_grow(struct vm_ioevent *v)
{
	unsigned int cap = v->cap ? 2 * v->cap : 8;
	struct vm_ioevent_reg *n;

	if (v->nregs < v->cap)
		return 0;
	n = realloc(v->regs, cap * sizeof(*n));
	if (!n)
		return -ENOMEM;
	v->regs = n;
	v->cap = cap;
	return 0;
}

static int vm_ioevent_assign(void *ctx, uint64_t addr, uint32_t len, int fd)
{
	struct vm_ioevent *v = ctx;
	struct vm_ioevent_reg *r;
	int ret;

	pthread_mutex_lock(&v->lock);
	ret = vm_ioevent_grow(v);
	if (!ret) {
		r = &v->regs[v->nregs++];
		*r = (struct vm_ioevent_reg){.addr = addr, .len = len, .fd = fd};
		r->bound = vm_ioevent_ioctl(v, r, true) == 0;
	}
	pthread_mutex_unlock(&v->lock);
	return ret;
}

static void vm_ioevent_deassign(void *ctx, uint64_t addr, uint32_t len, int fd)
{
	struct vm_ioevent *v = ctx;

	pthread_mutex_lock(&v->lock);
	for (unsigned int i = 0; i < v->nregs; i++) {
		struct vm_ioevent_reg *r = &v->regs[i];

		if (r->addr != addr || r->len != len || r->fd != fd)
			continue;
		if (r->bound)
			vm_ioevent_ioctl(v, r, false);
		v->regs[i] = v->regs[--v->nregs];
		break;
	}
	pthread_mutex_unlock(&v->lock);
}

static const struct ioevent_ops vm_ioevent_ops = {
	.assign = vm_ioevent_assign,
	.deassign = vm_ioevent_deassign,
};

struct vm_ioevent *vm_ioevent_create(void)
{
	struct vm_ioevent *v = calloc(1, sizeof(*v));

	if (!v)
		return NULL;
	pthread_mutex_init(&v->lock, NULL);
	v->vm_fd = -1;
	return v;
}

void vm_ioevent_destroy(struct vm_ioevent *v)
{
	if (!v)
		return;
	vm_ioevent_detach(v);
	pthread_mutex_destroy(&v->lock);
	free(v->regs);
	free(v);
}

void vm_ioevent_attach(struct vm_ioevent *v, int vm_fd)
{
	pthread_mutex_lock(&v->lock);
	v->vm_fd = vm_fd;
	v->any_length = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IOEVENTFD_ANY_LENGTH) > 0;
	for (unsigned int i = 0; i < v->nregs; i++)
		v->regs[i].bound = vm_ioevent_ioctl(v, &v->regs[i], true) == 0;
	pthread_mutex_unlock(&v->lock);
}

/* The VM is going away: its ioeventfds go with it, nothing to undo. */
void vm_ioevent_detach(struct vm_ioevent *v)
{
	pthread_mutex_lock(&v->lock);
	v->vm_fd = -1;
	for (unsigned int i = 0; i < v->nregs; i++)
		v->regs[i].bound = false;
	pthread_mutex_unlock(&v->lock);
}

struct ioevent_sink vm_ioevent_sink(struct vm_ioevent *v)
{
	return (struct ioevent_sink){.ops = &vm_ioevent_ops, .ctx = v};
}
