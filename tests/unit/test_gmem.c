// SPDX-License-Identifier: MIT
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "../../src/common/util.h"
#include "../../src/vmm/kvm/gmem.h"
#include "../../src/vmm/layout.h"

Test(gmem, small_vm_has_one_slot)
{
	struct gmem m;
	struct error err = {0};

	cr_assert_eq(gmem_init(&m, 64 * MiB, &err), 0, "%s", err.msg);
	cr_assert_eq(m.nslots, 1);
	cr_assert_eq(m.slots[0].gpa, 0);
	cr_assert_eq(m.slots[0].size, 64 * MiB);
	cr_assert_eq(gmem_end(&m), 64 * MiB);
	gmem_destroy(&m);
}

Test(gmem, large_vm_splits_around_the_pci_hole)
{
	struct gmem m;
	struct error err = {0};

	cr_assert_eq(gmem_init(&m, 5 * GiB, &err), 0, "%s", err.msg);
	cr_assert_eq(m.nslots, 2);
	cr_assert_eq(m.slots[0].size, LAYOUT_LOW_RAM_END);
	cr_assert_eq(m.slots[1].gpa, LAYOUT_HIGH_RAM_START);
	cr_assert_eq(m.slots[1].size, 5 * GiB - LAYOUT_LOW_RAM_END);
	cr_assert_eq(m.slots[1].offset, LAYOUT_LOW_RAM_END);
	cr_assert_eq(gmem_end(&m), LAYOUT_HIGH_RAM_START + 5 * GiB - LAYOUT_LOW_RAM_END);
	/* Both slots are views of one memfd mapping. */
	cr_assert_eq(m.slots[1].host, m.base + LAYOUT_LOW_RAM_END);
	cr_assert_null(gmem_ptr(&m, LAYOUT_LOW_RAM_END, 1), "the PCI hole is not RAM");
	cr_assert_null(gmem_ptr(&m, LAYOUT_HIGH_RAM_START - 1, 2));
	cr_assert_not_null(gmem_ptr(&m, LAYOUT_HIGH_RAM_START, 4096));
	gmem_destroy(&m);
}

Test(gmem, ptr_bounds_are_exact)
{
	struct gmem m;
	struct error err = {0};
	uint64_t sz = 16 * MiB;

	cr_assert_eq(gmem_init(&m, sz, &err), 0);
	cr_assert_eq(gmem_ptr(&m, 0, sz), m.base);
	cr_assert_eq(gmem_ptr(&m, sz - 1, 1), m.base + sz - 1);
	cr_assert_null(gmem_ptr(&m, sz - 1, 2));
	cr_assert_null(gmem_ptr(&m, sz, 1));
	cr_assert_null(gmem_ptr(&m, 0, sz + 1));
	gmem_destroy(&m);
}

Test(gmem, ptr_rejects_overflowing_ranges)
{
	struct gmem m;
	struct error err = {0};

	cr_assert_eq(gmem_init(&m, 16 * MiB, &err), 0);
	cr_assert_null(gmem_ptr(&m, 4096, UINT64_MAX));
	cr_assert_null(gmem_ptr(&m, UINT64_MAX, 2));
	cr_assert_null(gmem_ptr(&m, UINT64_MAX - 4095, 4096));
	cr_assert_null(gmem_ptr(&m, 8 * MiB, UINT64_MAX - 8 * MiB + 2));
	gmem_destroy(&m);
}

Test(gmem, read_write_round_trip)
{
	struct gmem m;
	struct error err = {0};
	char out[6] = {0};

	cr_assert_eq(gmem_init(&m, 4 * MiB, &err), 0);
	cr_assert_eq(gmem_write(&m, 0x1000, "hello", 6), 0);
	cr_assert_eq(gmem_read(&m, 0x1000, out, 6), 0);
	cr_assert_str_eq(out, "hello");
	cr_assert_eq(gmem_write(&m, 4 * MiB - 2, "hello", 6), -EFAULT);
	cr_assert_eq(gmem_read(&m, 4 * MiB, out, 1), -EFAULT);
	gmem_destroy(&m);
}

Test(gmem, bad_sizes_are_refused)
{
	struct gmem m;
	struct error err = {0};

	cr_assert_eq(gmem_init(&m, 3 * MiB, &err), -EINVAL);
	cr_assert(strstr(err.msg, "multiple of 2 MiB"));
	cr_assert_eq(gmem_init(&m, 0, &err), -EINVAL);
}

static long long memfd_bytes(const struct gmem *m)
{
	struct stat st;

	cr_assert_eq(fstat(m->memfd, &st), 0);
	return (long long)st.st_blocks * 512;
}

Test(gmem, discard_gives_memory_back_and_reads_zero)
{
	struct gmem m;
	struct error err = {0};
	uint8_t *p;

	cr_assert_eq(gmem_init(&m, 64 * MiB, &err), 0, "%s", err.msg);
	p = gmem_ptr(&m, 16 * MiB, 16 * MiB);
	memset(p, 0xa5, 16 * MiB);
	cr_assert_geq(memfd_bytes(&m), 16 * MiB);
	cr_assert_eq(gmem_discard(&m, 16 * MiB, 8 * MiB), 0);
	cr_assert_leq(memfd_bytes(&m), 8 * MiB + 64 * 1024, "the discarded half is freed");
	cr_assert_eq(p[0], 0, "discarded memory reads as zeroes");
	cr_assert_eq(p[8 * MiB - 1], 0);
	cr_assert_eq(p[8 * MiB], 0xa5, "the rest is untouched");
	gmem_destroy(&m);
}

Test(gmem, discard_checks_its_range)
{
	struct gmem m;
	struct error err = {0};

	cr_assert_eq(gmem_init(&m, 64 * MiB, &err), 0, "%s", err.msg);
	cr_assert_eq(gmem_discard(&m, 4096, 0), 0);
	cr_assert_eq(gmem_discard(&m, 100, 4096), -EINVAL);
	cr_assert_eq(gmem_discard(&m, 4096, 100), -EINVAL);
	cr_assert_eq(gmem_discard(&m, 64 * MiB, 4096), -EFAULT);
	cr_assert_eq(gmem_discard(&m, 64 * MiB - 4096, 8192), -EFAULT);
	cr_assert_eq(gmem_discard(&m, ~0ULL & ~4095ULL, 8192), -EFAULT);
	gmem_destroy(&m);
}
