/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_KVM_H
#define BUNSHIN_VMM_KVM_H

#include <linux/kvm.h>
#include <stdint.h>

#include "../../common/error.h"

/* The /dev/kvm system handle and what it told us at open time. */
struct kvm {
	int fd;
	int vcpu_mmap_size;
	int max_vcpus;		   /* KVM_CAP_MAX_VCPUS */
	int nr_vcpus;		   /* KVM_CAP_NR_VCPUS: the recommended maximum */
	struct kvm_cpuid2 *cpuid;  /* KVM_GET_SUPPORTED_CPUID, owned */
	struct kvm_msr_list *msrs; /* KVM_GET_MSR_INDEX_LIST, owned */
};

/*
 * Opens the device, checks the API version and every capability the VMM
 * relies on, so a VM never fails half-way through start-up for a missing
 * feature. path is normally "/dev/kvm".
 */
int kvm_open(struct kvm *k, const char *path, struct error *err);
void kvm_close(struct kvm *k);

int kvm_check_extension(const struct kvm *k, long cap);
int kvm_has_msr(const struct kvm *k, uint32_t index);

#endif
