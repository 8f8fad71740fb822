/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_CPUID_H
#define BUNSHIN_VMM_CPUID_H

#include <stdint.h>

#include "kvm.h"

/*
 * CPU topology as the guest sees it. APIC IDs are packed the way real
 * processors pack them: thread bits, then core bits, then the package, each
 * field as wide as the next power of two needs (SDM vol. 3, 9.4.1).
 */
struct cpu_topology {
	unsigned int threads; /* per core */
	unsigned int cores;   /* per package */
	unsigned int packages;
};

unsigned int topo_ncpus(const struct cpu_topology *t);
uint32_t topo_apic_id(const struct cpu_topology *t, unsigned int index);
unsigned int topo_thread_shift(const struct cpu_topology *t);
unsigned int topo_core_shift(const struct cpu_topology *t); /* thread + core bits */

/*
 * Returns a malloc'd CPUID table for one vCPU: what KVM supports, with the
 * topology leaves (1, 4, 0xb, 0x1f), the hypervisor bit and KVM's leaves
 * filled in for this vCPU's APIC ID.
 */
struct kvm_cpuid2 *cpuid_for_vcpu(const struct kvm *k, const struct cpu_topology *t,
				  unsigned int index);

#endif
