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

/* ---- memory mapped from a snapshot's file ---- */

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void make_file(char *path, size_t size, uint64_t len)
{
	int fd;

	snprintf(path, size, "/tmp/bunshin-gmem.XXXXXX");
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, (off_t)len), 0);
	cr_assert_eq(pwrite(fd, "snapshot", 8, 4096), 8);
	close(fd);
}

Test(gmem, file_mapping_is_copy_on_write)
{
	struct gmem m;
	struct error err = {0};
	char path[64], buf[8];
	int fd;

	make_file(path, sizeof(path), 8 * MiB);
	cr_assert_eq(gmem_init_file(&m, 8 * MiB, path, &err), 0, "%s", err.msg);
	cr_assert_eq(m.memfd, -1);
	cr_assert_eq(m.nslots, 1);
	cr_assert_eq(gmem_read(&m, 4096, buf, 8), 0);
	cr_assert_arr_eq(buf, "snapshot", 8, "the file's contents show through");
	cr_assert_eq(gmem_write(&m, 4096, "guest!!!", 8), 0);
	fd = open(path, O_RDONLY);
	cr_assert_eq(pread(fd, buf, 8, 4096), 8);
	close(fd);
	cr_assert_arr_eq(buf, "snapshot", 8, "the guest's writes never reach the file");
	gmem_destroy(&m);
	unlink(path);
}

Test(gmem, discard_on_a_file_mapping_reads_zero)
{
	struct gmem m;
	struct error err = {0};
	char path[64], buf[8], zero[8] = {0};

	make_file(path, sizeof(path), 8 * MiB);
	cr_assert_eq(gmem_init_file(&m, 8 * MiB, path, &err), 0, "%s", err.msg);
	cr_assert_eq(gmem_discard(&m, 0, 2 * GMEM_PAGE_SIZE), 0);
	cr_assert_eq(gmem_read(&m, 4096, buf, 8), 0);
	cr_assert_arr_eq(buf, zero, 8, "zeroes, not the file's bytes, as the balloon promises");
	gmem_destroy(&m);
	unlink(path);
}

Test(gmem, file_of_the_wrong_size_is_refused)
{
	struct gmem m;
	struct error err = {0};
	char path[64];

	make_file(path, sizeof(path), 4 * MiB);
	cr_assert_eq(gmem_init_file(&m, 8 * MiB, path, &err), -EINVAL);
	cr_assert(strstr(err.msg, "4194304 bytes, the VM has 8388608 bytes of memory"), "%s",
		  err.msg);
	cr_assert_lt(gmem_init_file(&m, 8 * MiB, "/nonexistent/memory", &err), 0);
	unlink(path);
}
