// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kvm.h"

struct kvm_required_cap {
	long cap;
	const char *name;
};

/* Capabilities without which bunshin cannot run a VM the way it is designed. */
static const struct kvm_required_cap kvm_required_caps[] = {
	{KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
	{KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
	{KVM_CAP_PIT2, "KVM_CAP_PIT2"},
	{KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
	{KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
	{KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING"},
	{KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD"},
	{KVM_CAP_IRQFD, "KVM_CAP_IRQFD"},
	{KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE"},
};

int kvm_check_extension(const struct kvm *k, long cap)
{
	int r = ioctl(k->fd, KVM_CHECK_EXTENSION, cap);

	return r < 0 ? 0 : r;
}

static int kvm_get_cpuid(struct kvm *k, struct error *err)
{
	for (int n = 128; n <= 4096; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));

		if (!c)
			return error_set(err, ENOMEM, "out of memory");
		c->nent = n;
		if (ioctl(k->fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
			k->cpuid = c;
			return 0;
		}
		free(c);
		if (errno != E2BIG)
			return error_set(err, errno, "KVM_GET_SUPPORTED_CPUID: %s",
					 strerror(errno));
	}
	return error_set(err, E2BIG, "KVM_GET_SUPPORTED_CPUID: too many entries");
}

static int kvm_get_msr_list(struct kvm *k, struct error *err)
{
	struct kvm_msr_list probe = {.nmsrs = 0};
	struct kvm_msr_list *l;

	/* The first call fails with E2BIG and tells us how many there are. */
	if (ioctl(k->fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG)
		return error_set(err, errno, "KVM_GET_MSR_INDEX_LIST: %s", strerror(errno));
	l = calloc(1, sizeof(*l) + probe.nmsrs * sizeof(l->indices[0]));
	if (!l)
		return error_set(err, ENOMEM, "out of memory");
	l->nmsrs = probe.nmsrs;
	if (ioctl(k->fd, KVM_GET_MSR_INDEX_LIST, l) < 0) {
		free(l);
		return error_set(err, errno, "KVM_GET_MSR_INDEX_LIST: %s", strerror(errno));
	}
	k->msrs = l;
	return 0;
}

int kvm_has_msr(const struct kvm *k, uint32_t index)
{
	for (uint32_t i = 0; i < k->msrs->nmsrs; i++)
		if (k->msrs->indices[i] == index)
			return 1;
	return 0;
}

static int kvm_open_device(struct kvm *k, const char *path, struct error *err)
{
	int e;

	k->fd = open(path, O_RDWR | O_CLOEXEC);
	if (k->fd >= 0)
		return 0;
	e = errno;
	if (e == ENOENT)
		return error_set(err, e,
				 "%s does not exist: is the kvm module loaded and "
				 "hardware virtualization enabled?",
				 path);
	if (e == EACCES || e == EPERM)
		return error_set(err, e,
				 "no permission to open %s (add the user to group "
				 "'kvm' or run as root)",
				 path);
	return error_set(err, e, "cannot open %s: %s", path, strerror(e));
}

int kvm_open(struct kvm *k, const char *path, struct error *err)
{
	int version, ret;

	memset(k, 0, sizeof(*k));
	ret = kvm_open_device(k, path, err);
	if (ret)
		return ret;
	version = ioctl(k->fd, KVM_GET_API_VERSION, 0);
	if (version < 0) {
		ret = error_set(err, ENOTTY, "%s is not a KVM device", path);
		goto fail;
	}
	if (version != KVM_API_VERSION) {
		ret = error_set(err, ENOTSUP, "%s: KVM API version %d, need %d", path, version,
				KVM_API_VERSION);
		goto fail;
	}
	for (size_t i = 0; i < sizeof(kvm_required_caps) / sizeof(kvm_required_caps[0]); i++) {
		if (!kvm_check_extension(k, kvm_required_caps[i].cap)) {
			ret = error_set(err, ENOTSUP, "KVM lacks required capability %s",
					kvm_required_caps[i].name);
			goto fail;
		}
	}
	k->vcpu_mmap_size = ioctl(k->fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (k->vcpu_mmap_size <= 0) {
		ret = error_set(err, errno, "KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
		goto fail;
	}
	k->nr_vcpus = kvm_check_extension(k, KVM_CAP_NR_VCPUS);
	k->max_vcpus = kvm_check_extension(k, KVM_CAP_MAX_VCPUS);
	if (!k->nr_vcpus)
		k->nr_vcpus = 4; /* the documented default when the cap is missing */
	if (!k->max_vcpus)
		k->max_vcpus = k->nr_vcpus;
	ret = kvm_get_cpuid(k, err);
	if (!ret)
		ret = kvm_get_msr_list(k, err);
	if (ret)
		goto fail;
	return 0;
fail:
	kvm_close(k);
	return ret;
}

void kvm_close(struct kvm *k)
{
	if (k->fd > 0)
		close(k->fd);
	free(k->cpuid);
	free(k->msrs);
	memset(k, 0, sizeof(*k));
	k->fd = -1;
}
