// SPDX-License-Identifier: MIT
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../src/vmm/snapshot/snapfile.h"

static char dir[] = "/tmp/bunshin-snapfile.XXXXXX";
static char path[64];

static void setup(void)
{
	strcpy(dir, "/tmp/bunshin-snapfile.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/state", dir);
}

static void teardown(void)
{
	unlink(path);
	rmdir(dir);
}

TestSuite(snapfile, .init = setup, .fini = teardown);

/* Two sections: "cpu" v2 with numbers of every width and bytes, "empty" v1. */
static void write_sample(void)
{
	struct snap_writer w;
	struct error err = {0};

	snap_writer_init(&w);
	snap_begin(&w, "cpu", 2);
	snap_put_u8(&w, 0xab);
	snap_put_u16(&w, 0xbeef);
	snap_put_u32(&w, 0xdeadbeef);
	snap_put_u64(&w, 0x0123456789abcdefULL);
	snap_put_bytes(&w, "regs", 4);
	snap_end(&w);
	snap_begin(&w, "empty", 1);
	snap_end(&w);
	cr_assert_eq(snap_save(&w, path, &err), 0, "%s", err.msg);
	snap_writer_free(&w);
}

static void patch_byte(long off, uint8_t xor)
{
	int fd = open(path, O_RDWR);
	uint8_t b;

	cr_assert_geq(fd, 0);
	cr_assert_eq(pread(fd, &b, 1, off), 1);
	b ^= xor;
	cr_assert_eq(pwrite(fd, &b, 1, off), 1);
	close(fd);
}

Test(snapfile, round_trip)
{
	struct snap_file f;
	struct snap_section s;
	struct error err = {0};
	char regs[4];

	write_sample();
	cr_assert_eq(snap_open(&f, path, &err), 0, "%s", err.msg);
	cr_assert_eq(snap_find(&f, "cpu", 2, &s, &err), 0, "%s", err.msg);
	cr_assert_eq(s.version, 2);
	cr_assert_eq(snap_get_u8(&s), 0xab);
	cr_assert_eq(snap_get_u16(&s), 0xbeef);
	cr_assert_eq(snap_get_u32(&s), 0xdeadbeef);
	cr_assert_eq(snap_get_u64(&s), 0x0123456789abcdefULL);
	snap_get_bytes(&s, regs, 4);
	cr_assert_arr_eq(regs, "regs", 4);
	cr_assert_eq(snap_section_done(&s, &err), 0, "%s", err.msg);
	cr_assert_eq(snap_find(&f, "empty", 1, &s, &err), 0);
	cr_assert_eq(snap_section_done(&s, &err), 0);
	snap_close(&f);
}

Test(snapfile, short_and_long_sections_are_errors)
{
	struct snap_file f;
	struct snap_section s;
	struct error err = {0};

	write_sample();
	cr_assert_eq(snap_open(&f, path, &err), 0);
	cr_assert_eq(snap_find(&f, "cpu", 2, &s, &err), 0);
	snap_get_u64(&s);
	cr_assert_eq(snap_section_done(&s, &err), -EBADMSG);
	cr_assert(strstr(err.msg, "state section 'cpu' has 11 unexpected bytes"), "%s", err.msg);
	snap_get_bytes(&s, (uint8_t[64]){0}, 64);
	cr_assert_eq(snap_get_u32(&s), 0, "nothing is read past the end");
	cr_assert_eq(snap_section_done(&s, &err), -EBADMSG);
	cr_assert(strstr(err.msg, "state section 'cpu' is too short"), "%s", err.msg);
	snap_close(&f);
}

Test(snapfile, missing_and_newer_sections)
{
	struct snap_file f;
	struct snap_section s;
	struct error err = {0};

	write_sample();
	cr_assert_eq(snap_open(&f, path, &err), 0);
	cr_assert_eq(snap_find(&f, "gpu", 1, &s, &err), -ENOENT);
	cr_assert(strstr(err.msg, "the state has no 'gpu' section"), "%s", err.msg);
	cr_assert_eq(snap_find(&f, "cpu", 1, &s, &err), -EPROTO);
	cr_assert(strstr(err.msg, "'cpu' is version 2; this bunshin-vmm reads up to 1"), "%s",
		  err.msg);
	cr_assert_eq(snap_find(&f, "end", 1, &s, &err), -ENOENT, "the terminator is not a section");
	snap_close(&f);
}

/* Every single flipped byte anywhere in the file is caught at open. */
Test(snapfile, any_corruption_is_refused)
{
	struct snap_file f;
	struct error err = {0};
	long size;
	FILE *fp;

	write_sample();
	fp = fopen(path, "r");
	fseek(fp, 0, SEEK_END);
	size = ftell(fp);
	fclose(fp);
	for (long off = 0; off < size; off++) {
		patch_byte(off, 0x40);
		cr_assert_lt(snap_open(&f, path, &err), 0, "byte %ld flipped, still accepted", off);
		patch_byte(off, 0x40);
	}
	cr_assert_eq(snap_open(&f, path, &err), 0, "%s", err.msg);
	snap_close(&f);
}

Test(snapfile, truncation_and_foreign_files)
{
	struct snap_file f;
	struct error err = {0};
	int fd;

	write_sample();
	cr_assert_eq(truncate(path, 40), 0);
	cr_assert_eq(snap_open(&f, path, &err), -EBADMSG);
	cr_assert(strstr(err.msg, "truncated") || strstr(err.msg, "overruns"), "%s", err.msg);

	fd = open(path, O_WRONLY | O_TRUNC);
	cr_assert_eq(write(fd, "#!/bin/sh\necho not a snapshot\n", 30), 30);
	close(fd);
	cr_assert_eq(snap_open(&f, path, &err), -EBADMSG);
	cr_assert(strstr(err.msg, "not a bunshin state file"), "%s", err.msg);

	cr_assert_eq(snap_open(&f, "/nonexistent/state", &err), -ENOENT);
	cr_assert(strstr(err.msg, "/nonexistent/state"), "%s", err.msg);
}

Test(snapfile, other_format_version)
{
	struct snap_file f;
	struct error err = {0};
	uint8_t hdr[12];
	uint32_t crc;
	int fd;

	write_sample();
	/* format 2, with a header CRC that matches: only the version is wrong */
	fd = open(path, O_RDWR);
	cr_assert_eq(pread(fd, hdr, 12, 0), 12);
	hdr[8] = 2;
	crc = snap_crc32(0, hdr, 12);
	cr_assert_eq(pwrite(fd, hdr, 12, 0), 12);
	cr_assert_eq(pwrite(fd, &crc, 4, 12), 4);
	close(fd);
	cr_assert_eq(snap_open(&f, path, &err), -EPROTO);
	cr_assert(strstr(err.msg, "state file format 2, this bunshin-vmm reads format 1"), "%s",
		  err.msg);
}

Test(snapfile, crc32_matches_zlib)
{
	cr_assert_eq(snap_crc32(0, "123456789", 9), 0xcbf43926u);
}

/* ---- memory files ---- */

#include <sys/mman.h>
#include <sys/stat.h>

#include "../../src/vmm/snapshot/memfile.h"

#define MEM_SIZE (8u << 20)

static uint8_t *mem_create(int *fd)
{
	uint8_t *p;

	*fd = memfd_create("test-ram", MFD_CLOEXEC);
	cr_assert_geq(*fd, 0);
	cr_assert_eq(ftruncate(*fd, MEM_SIZE), 0);
	p = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	return p;
}

Test(snapfile, memory_round_trip_is_sparse)
{
	struct error err = {0};
	uint8_t *a, *b;
	struct stat st;
	int fa, fb;

	a = mem_create(&fa);
	for (uint32_t i = 0; i < 4096; i++)
		a[i] = (uint8_t)(i * 7 + 1);
	a[5 * 1024 * 1024 + 17] = 0x5a;
	memset(a + 6 * 1024 * 1024, 0, 4096); /* touched but zero: stays a hole */
	cr_assert_eq(memfile_save(fa, a, MEM_SIZE, path, &err), 0, "%s", err.msg);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_size, MEM_SIZE);
	cr_assert_leq(st.st_blocks * 512, 1024 * 1024, "sparse: %lld bytes allocated",
		      (long long)st.st_blocks * 512);

	b = mem_create(&fb);
	cr_assert_eq(memfile_load(b, MEM_SIZE, path, &err), 0, "%s", err.msg);
	cr_assert_arr_eq(a, b, MEM_SIZE);
	munmap(a, MEM_SIZE);
	munmap(b, MEM_SIZE);
	close(fa);
	close(fb);
}

Test(snapfile, memory_file_of_another_size_is_refused)
{
	struct error err = {0};
	uint8_t *b;
	int fd, fb;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_eq(ftruncate(fd, MEM_SIZE / 2), 0);
	close(fd);
	b = mem_create(&fb);
	cr_assert_eq(memfile_load(b, MEM_SIZE, path, &err), -EINVAL);
	cr_assert(strstr(err.msg, "4194304 bytes, the VM has 8388608 bytes of memory"), "%s",
		  err.msg);
	munmap(b, MEM_SIZE);
	close(fb);
}
