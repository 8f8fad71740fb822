// SPDX-License-Identifier: MIT
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/vmm/kvm/cpuid.h"

Test(cpuid, apic_ids_pack_threads_cores_packages)
{
	struct cpu_topology t = {.threads = 2, .cores = 3, .packages = 2};

	cr_assert_eq(topo_ncpus(&t), 12);
	cr_assert_eq(topo_thread_shift(&t), 1);
	cr_assert_eq(topo_core_shift(&t), 3); /* 3 cores need 2 bits */
	cr_assert_eq(topo_apic_id(&t, 0), 0);
	cr_assert_eq(topo_apic_id(&t, 1), 1);
	cr_assert_eq(topo_apic_id(&t, 2), 2);
	cr_assert_eq(topo_apic_id(&t, 5), 5);
	cr_assert_eq(topo_apic_id(&t, 6), 8, "package 1 starts at 1 << core_shift");
	cr_assert_eq(topo_apic_id(&t, 11), 13);
}

Test(cpuid, single_package_ids_are_dense)
{
	struct cpu_topology t = {.threads = 1, .cores = 64, .packages = 1};

	for (unsigned int i = 0; i < 64; i++)
		cr_assert_eq(topo_apic_id(&t, i), i);
	cr_assert_eq(topo_core_shift(&t), 6);
}

static struct kvm fake_kvm(void)
{
	static const struct kvm_cpuid_entry2 host[] = {
		{.function = 1, .eax = 0xa10f11, .ebx = 0xff0f0800, .ecx = 0, .edx = 1u << 28},
		{.function = 4, .index = 0, .eax = 0x121 | (7u << 26), .flags = 1},
		{.function = 4, .index = 3, .eax = 0x163 | (7u << 26), .flags = 1},
		{.function = 0xb, .index = 0},
		{.function = 0xb, .index = 1},
		{.function = 0xb, .index = 2},
		{.function = 0x40000000, .eax = 0x40000001},
		{.function = 0x80000008, .ecx = 0xffff},
	};
	struct kvm k = {.fd = -1};

	k.cpuid = calloc(1, sizeof(*k.cpuid) + sizeof(host));
	k.cpuid->nent = sizeof(host) / sizeof(host[0]);
	memcpy(k.cpuid->entries, host, sizeof(host));
	return k;
}

static const struct kvm_cpuid_entry2 *find(const struct kvm_cpuid2 *c, uint32_t fn, uint32_t idx)
{
	for (uint32_t i = 0; i < c->nent; i++)
		if (c->entries[i].function == fn && c->entries[i].index == idx)
			return &c->entries[i];
	cr_assert_fail("leaf %#x.%u missing", fn, idx);
	return NULL;
}

Test(cpuid, leaves_describe_this_vcpu)
{
	struct kvm k = fake_kvm();
	struct cpu_topology t = {.threads = 1, .cores = 8, .packages = 1};
	struct kvm_cpuid2 *c = cpuid_for_vcpu(&k, &t, 5);
	const struct kvm_cpuid_entry2 *e;
	char sig[13] = {0};

	cr_assert_not_null(c);
	e = find(c, 1, 0);
	cr_assert_eq(e->ebx >> 24, 5, "initial APIC ID");
	cr_assert_eq((e->ebx >> 16) & 0xff, 8, "addressable logical processors");
	cr_assert_eq(e->ebx & 0xffff, 0x0800, "CLFLUSH size kept");
	cr_assert(e->ecx & (1u << 31), "hypervisor bit");
	cr_assert(e->ecx & (1u << 21), "x2APIC");
	cr_assert(e->edx & (1u << 28), "HTT for a multi-core package");

	e = find(c, 4, 0);
	cr_assert_eq(e->eax >> 26, 7, "8 cores per package");
	cr_assert_eq((e->eax >> 14) & 0xfff, 0, "L1 private to the thread");
	e = find(c, 4, 3);
	cr_assert_eq((e->eax >> 14) & 0xfff, 7, "L3 shared by the package");

	e = find(c, 0xb, 0);
	cr_assert_eq(e->eax, 0);
	cr_assert_eq(e->ebx, 1);
	cr_assert_eq(e->ecx, 0x100);
	cr_assert_eq(e->edx, 5);
	e = find(c, 0xb, 1);
	cr_assert_eq(e->eax, 3);
	cr_assert_eq(e->ebx, 8);
	cr_assert_eq(e->ecx, 0x201);
	e = find(c, 0xb, 2);
	cr_assert_eq(e->ebx, 0, "level 2 is invalid");

	e = find(c, 0x40000000, 0);
	memcpy(sig, &e->ebx, 4);
	memcpy(sig + 4, &e->ecx, 4);
	memcpy(sig + 8, &e->edx, 4);
	cr_assert_str_eq(sig, "KVMKVMKVM");
	cr_assert_eq(e->eax, 0x40000001);

	e = find(c, 0x80000008, 0);
	cr_assert_eq(e->ecx & 0xff, 7, "AMD: cores - 1");
	cr_assert_eq((e->ecx >> 12) & 0xf, 3, "AMD: APIC ID core bits");
	free(c);
	free(k.cpuid);
}

Test(cpuid, single_cpu_has_no_htt)
{
	struct kvm k = fake_kvm();
	struct cpu_topology t = {.threads = 1, .cores = 1, .packages = 1};
	struct kvm_cpuid2 *c = cpuid_for_vcpu(&k, &t, 0);

	cr_assert_not(find(c, 1, 0)->edx & (1u << 28));
	free(c);
	free(k.cpuid);
}
