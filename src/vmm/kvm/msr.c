// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdlib.h>
#include <sys/ioctl.h>

#include "msr.h"

#define MSR_IA32_TSC	      0x10
#define MSR_IA32_SYSENTER_CS  0x174
#define MSR_IA32_SYSENTER_ESP 0x175
#define MSR_IA32_SYSENTER_EIP 0x176
#define MSR_IA32_MISC_ENABLE  0x1a0
#define MSR_MTRR_DEF_TYPE     0x2ff
#define MSR_IA32_CR_PAT	      0x277
#define MSR_STAR	      0xc0000081
#define MSR_LSTAR	      0xc0000082
#define MSR_CSTAR	      0xc0000083
#define MSR_SYSCALL_MASK      0xc0000084
#define MSR_KERNEL_GS_BASE    0xc0000102

#define MISC_ENABLE_FAST_STRING (1ULL << 0)
#define MTRR_DEF_TYPE_E		(1ULL << 11)
#define MTRR_TYPE_WRBACK	6ULL
#define PAT_POWER_ON_VALUE	0x0007040600070406ULL

struct msr_boot_value {
	uint32_t index;
	uint64_t value;
};

static const struct msr_boot_value msr_boot_values[] = {
	{MSR_IA32_SYSENTER_CS, 0},
	{MSR_IA32_SYSENTER_ESP, 0},
	{MSR_IA32_SYSENTER_EIP, 0},
	{MSR_STAR, 0},
	{MSR_CSTAR, 0},
	{MSR_KERNEL_GS_BASE, 0},
	{MSR_SYSCALL_MASK, 0},
	{MSR_LSTAR, 0},
	{MSR_IA32_TSC, 0},
	{MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING},
	{MSR_MTRR_DEF_TYPE, MTRR_DEF_TYPE_E | MTRR_TYPE_WRBACK},
	{MSR_IA32_CR_PAT, PAT_POWER_ON_VALUE},
};

#define MSR_BOOT_COUNT (sizeof(msr_boot_values) / sizeof(msr_boot_values[0]))

int msr_init_boot(const struct kvm *k, int vcpu_fd)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry entries[MSR_BOOT_COUNT];
	} msrs = {0};
	uint32_t n = 0;

	for (size_t i = 0; i < MSR_BOOT_COUNT; i++) {
		if (!kvm_has_msr(k, msr_boot_values[i].index))
			continue;
		msrs.entries[n].index = msr_boot_values[i].index;
		msrs.entries[n].data = msr_boot_values[i].value;
		n++;
	}
	msrs.hdr.nmsrs = n;
	/* KVM_SET_MSRS returns how many it set; fewer means one was refused. */
	if (ioctl(vcpu_fd, KVM_SET_MSRS, &msrs) != (int)n)
		return -EINVAL;
	return 0;
}
