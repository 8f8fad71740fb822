/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_MSR_H
#define BUNSHIN_VMM_MSR_H

#include "kvm.h"

/*
 * Puts a vCPU's MSRs in the state firmware leaves them in before it jumps
 * to a kernel: MTRRs enabled with write-back default, fast strings on, the
 * architectural PAT reset value, syscall MSRs zero. MSRs this KVM does not
 * know are skipped. Returns 0 or a negative errno.
 */
int msr_init_boot(const struct kvm *k, int vcpu_fd);

#endif
