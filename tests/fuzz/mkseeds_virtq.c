// SPDX-License-Identifier: MIT
/*
 * Writes the seed corpus of fuzz_virtq: a few small, well-formed rings (and
 * one malformed) in the fuzz_virtq.h format, so the fuzzer starts from
 * inputs that get past configuration and into the chain walker.
 *
 * usage: mkseeds_virtq OUTDIR
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_virtq.h"
#include "../../src/vmm/virtio/virtq.h"

#define MEM 2048

struct seed {
	struct fuzz_virtq_hdr h;
	uint8_t mem[MEM];
};

static void put_desc(struct seed *s, uint32_t table, uint16_t i, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	struct virtq_desc d = {.addr = htole64(addr),
			       .len = htole32(len),
			       .flags = htole16(flags),
			       .next = htole16(next)};

	memcpy(s->mem + table + 16 * i, &d, sizeof(d));
}

static void put16(struct seed *s, uint32_t off, uint16_t v)
{
	v = htole16(v);
	memcpy(s->mem + off, &v, 2);
}

/* Size 8 rings at the start of memory; buffers from 0x400 on. */
static void base(struct seed *s, uint8_t flags)
{
	memset(s, 0, sizeof(*s));
	s->h.size_log2 = 3;
	s->h.flags = flags | FUZZ_VIRTQ_WRITE;
	s->h.max_segs = htole16(16);
	s->h.desc_gpa = htole32(0x000);
	s->h.avail_gpa = htole32(0x100);
	s->h.used_gpa = htole32(0x200);
	s->h.fill = 0xa5;
}

static void offer(struct seed *s, uint16_t start, uint16_t n, const uint16_t *heads)
{
	for (uint16_t i = 0; i < n; i++)
		put16(s, 0x100 + 4 + 2 * ((start + i) % 8), heads[i]);
	put16(s, 0x100 + 2, start + n);
}

static int write_seed(const char *dir, const char *name, const struct seed *s)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(s, sizeof(*s), 1, f) != 1 || fclose(f)) {
		perror(path);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static struct seed s;
	int rc = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
		return 2;
	}
	if (mkdir(argv[1], 0755) && errno != EEXIST) {
		perror(argv[1]);
		return 1;
	}

	/* Two chains: header + data readable, status writable; then one buffer. */
	base(&s, 0);
	put_desc(&s, 0, 0, 0x400, 16, VIRTQ_DESC_F_NEXT, 1);
	put_desc(&s, 0, 1, 0x410, 64, VIRTQ_DESC_F_NEXT, 2);
	put_desc(&s, 0, 2, 0x450, 1, VIRTQ_DESC_F_WRITE, 0);
	put_desc(&s, 0, 5, 0x500, 128, VIRTQ_DESC_F_WRITE, 0);
	offer(&s, 0, 2, (const uint16_t[]){0, 5});
	rc |= write_seed(argv[1], "simple", &s);

	/* An indirect table, behind one direct descriptor. */
	base(&s, FUZZ_VIRTQ_INDIRECT | FUZZ_VIRTQ_BATCH);
	put_desc(&s, 0, 3, 0x400, 8, VIRTQ_DESC_F_NEXT, 4);
	put_desc(&s, 0, 4, 0x600, 3 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	put_desc(&s, 0x600, 0, 0x408, 8, VIRTQ_DESC_F_NEXT, 1);
	put_desc(&s, 0x600, 1, 0x480, 32, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
	put_desc(&s, 0x600, 2, 0x4a0, 32, VIRTQ_DESC_F_WRITE, 0);
	offer(&s, 0, 1, (const uint16_t[]){3});
	rc |= write_seed(argv[1], "indirect", &s);

	/* EVENT_IDX with the indices about to wrap. */
	base(&s, FUZZ_VIRTQ_EVENT_IDX | FUZZ_VIRTQ_IMPORT | FUZZ_VIRTQ_TOGGLE);
	s.h.last_avail_idx = htole16(65534);
	s.h.used_idx = htole16(65534);
	for (uint16_t i = 0; i < 4; i++)
		put_desc(&s, 0, i, 0x400 + 0x40 * i, 0x40, VIRTQ_DESC_F_WRITE, 0);
	offer(&s, 65534, 4, (const uint16_t[]){0, 1, 2, 3});
	put16(&s, 0x100 + 4 + 2 * 8, 65535); /* used_event */
	rc |= write_seed(argv[1], "event-idx-wrap", &s);

	/* Two memory slots: a buffer in the upper one, as above the PCI hole. */
	base(&s, FUZZ_VIRTQ_SPLIT);
	put_desc(&s, 0, 0, 0x300, 8, VIRTQ_DESC_F_NEXT, 1);
	put_desc(&s, 0, 1, FUZZ_VIRTQ_HIGH_GPA + 0x10, 64, VIRTQ_DESC_F_WRITE, 0);
	offer(&s, 0, 1, (const uint16_t[]){0});
	rc |= write_seed(argv[1], "split", &s);

	/* A loop, so the error paths are in the corpus from the start. */
	base(&s, 0);
	put_desc(&s, 0, 0, 0x400, 8, VIRTQ_DESC_F_NEXT, 1);
	put_desc(&s, 0, 1, 0x400, 8, VIRTQ_DESC_F_NEXT, 0);
	offer(&s, 0, 1, (const uint16_t[]){0});
	rc |= write_seed(argv[1], "loop", &s);
	return rc;
}
