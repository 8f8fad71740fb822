// SPDX-License-Identifier: MIT
#include <stdlib.h>
#include <string.h>

#include "cpuid.h"

#define CPUID_1_ECX_X2APIC     (1u << 21)
#define CPUID_1_ECX_HYPERVISOR (1u << 31)
#define CPUID_1_EDX_HTT	       (1u << 28)
#define KVM_CPUID_SIGNATURE    0x40000000u
#define KVM_CPUID_FEATURES     0x40000001u

static unsigned int order_base_2(unsigned int n)
{
	unsigned int s = 0;

	while ((1u << s) < n)
		s++;
	return s;
}

unsigned int topo_ncpus(const struct cpu_topology *t)
{
	return t->threads * t->cores * t->packages;
}

unsigned int topo_thread_shift(const struct cpu_topology *t)
{
	return order_base_2(t->threads);
}

unsigned int topo_core_shift(const struct cpu_topology *t)
{
	return topo_thread_shift(t) + order_base_2(t->cores);
}

uint32_t topo_apic_id(const struct cpu_topology *t, unsigned int index)
{
	unsigned int thread = index % t->threads;
	unsigned int core = (index / t->threads) % t->cores;
	unsigned int pkg = index / (t->threads * t->cores);

	return (pkg << topo_core_shift(t)) | (core << topo_thread_shift(t)) | thread;
}

static void cpuid_leaf1(struct kvm_cpuid_entry2 *e, const struct cpu_topology *t, uint32_t apic)
{
	unsigned int per_pkg = 1u << topo_core_shift(t);

	e->ebx &= 0x0000ffff; /* keep brand index and CLFLUSH line size */
	e->ebx |= (apic & 0xff) << 24;
	e->ebx |= (per_pkg > 255 ? 255 : per_pkg) << 16;
	if (t->threads * t->cores > 1)
		e->edx |= CPUID_1_EDX_HTT;
	else
		e->edx &= ~CPUID_1_EDX_HTT;
	e->ecx |= CPUID_1_ECX_HYPERVISOR | CPUID_1_ECX_X2APIC;
}

/* Deterministic cache parameters: who shares each cache, and cores per package. */
static void cpuid_leaf4(struct kvm_cpuid_entry2 *e, const struct cpu_topology *t)
{
	unsigned int level = (e->eax >> 5) & 7;
	unsigned int sharing;

	if ((e->eax & 0x1f) == 0)
		return; /* no more caches */
	sharing = level >= 3 ? (1u << topo_core_shift(t)) : (1u << topo_thread_shift(t));
	e->eax &= 0x3fff;
	e->eax |= ((sharing - 1) & 0xfff) << 14;
	e->eax |= (((1u << order_base_2(t->cores)) - 1) & 0x3f) << 26;
}

/* Extended topology (0xb, and 0x1f when present): SMT level, core level, then invalid. */
static void cpuid_leaf_topo(struct kvm_cpuid_entry2 *e, const struct cpu_topology *t, uint32_t apic)
{
	switch (e->index) {
	case 0:
		e->eax = topo_thread_shift(t);
		e->ebx = t->threads;
		e->ecx = (1u << 8) | 0;
		break;
	case 1:
		e->eax = topo_core_shift(t);
		e->ebx = t->threads * t->cores;
		e->ecx = (2u << 8) | 1;
		break;
	default:
		e->eax = 0;
		e->ebx = 0;
		e->ecx = e->index & 0xff;
		break;
	}
	e->edx = apic;
}

/* AMD: number of cores (0x80000008 ECX) and the extended APIC ID leaf (0x8000001e). */
static void cpuid_leaf_amd_size(struct kvm_cpuid_entry2 *e, const struct cpu_topology *t)
{
	unsigned int n = t->threads * t->cores;

	e->ecx &= ~0xf0ffu;
	e->ecx |= ((n - 1) & 0xff) | (topo_core_shift(t) << 12);
}

static void cpuid_leaf_amd_ext_apic(struct kvm_cpuid_entry2 *e, const struct cpu_topology *t,
				    unsigned int index, uint32_t apic)
{
	e->eax = apic;
	e->ebx = ((t->threads - 1) << 8) | ((index / t->threads) % t->cores);
	e->ecx = index / (t->threads * t->cores); /* node id = package */
	e->edx = 0;
}

static void cpuid_kvm_signature(struct kvm_cpuid_entry2 *e)
{
	e->eax = KVM_CPUID_FEATURES;
	memcpy(&e->ebx, "KVMK", 4);
	memcpy(&e->ecx, "VMKV", 4);
	memcpy(&e->edx, "M\0\0\0", 4);
}

struct kvm_cpuid2 *cpuid_for_vcpu(const struct kvm *k, const struct cpu_topology *t,
				  unsigned int index)
{
	size_t sz = sizeof(*k->cpuid) + k->cpuid->nent * sizeof(k->cpuid->entries[0]);
	struct kvm_cpuid2 *c = malloc(sz);
	uint32_t apic = topo_apic_id(t, index);

	if (!c)
		return NULL;
	memcpy(c, k->cpuid, sz);
	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		switch (e->function) {
		case 1:
			cpuid_leaf1(e, t, apic);
			break;
		case 4:
			cpuid_leaf4(e, t);
			break;
		case 0xb:
		case 0x1f:
			cpuid_leaf_topo(e, t, apic);
			break;
		case 0x80000008:
			cpuid_leaf_amd_size(e, t);
			break;
		case 0x8000001e:
			cpuid_leaf_amd_ext_apic(e, t, index, apic);
			break;
		case KVM_CPUID_SIGNATURE:
			cpuid_kvm_signature(e);
			break;
		}
	}
	return c;
}
