/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_LOADER_INTERNAL_H
#define BUNSHIN_VMM_LOADER_INTERNAL_H

/* Shared between the kernel loaders in this directory; not a public interface. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "boot.h"

#define BOOT_PAGE_SIZE 4096ULL

/*
 * Little-endian accessors for file images and structures built in host
 * buffers. Byte by byte, so they work on unaligned offsets of any buffer.
 */
static inline uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)get_le16(p) | (uint32_t)get_le16(p + 2) << 16;
}

static inline uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

static inline void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
	put_le16(p, (uint16_t)v);
	put_le16(p + 2, (uint16_t)(v >> 16));
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
	put_le32(p, (uint32_t)v);
	put_le32(p + 4, (uint32_t)(v >> 32));
}

/* True when [off, off+len) lies inside a buffer of size total, without wrapping. */
static inline bool in_bounds(uint64_t off, uint64_t len, uint64_t total)
{
	return off <= total && len <= total - off;
}

/* End of the RAM below the PCI hole: where 32-bit boot structures can go. */
uint64_t boot_low_ram_end(const struct gmem *m);

/*
 * Picks the caller's e820 map, or builds the default one for m's size in
 * buf; fails if it has more than limit entries. Returns the entry count.
 */
int boot_memmap(const struct gmem *m, const struct boot_input *in,
		struct e820_entry buf[E820_MAX_ENTRIES], int limit, const struct e820_entry **map,
		struct error *err);

/* Validates the command line against max bytes (NUL excluded); returns its length. */
int boot_check_cmdline(const char *cmdline, uint64_t max, size_t *len, struct error *err);
int boot_write_cmdline(struct gmem *m, const char *cmdline, size_t len, struct error *err);

/*
 * Chooses the initrd's address: page-aligned, as high as possible in
 * [lo, hi). Computes only, so a failure leaves guest memory untouched.
 */
int boot_place_initrd(const struct boot_input *in, uint64_t lo, uint64_t hi, uint64_t *gpa,
		      struct error *err);
int boot_write_initrd(struct gmem *m, const struct boot_input *in, uint64_t gpa, struct error *err);

/* The boot GDT at LAYOUT_GDT_GPA (selectors in layout.h), for proto's entry mode. */
int boot_write_gdt(struct gmem *m, enum boot_protocol proto, struct error *err);

/* Identity map of 0..4 GiB with 2 MiB pages at LAYOUT_PML4_GPA/PDPT/PD. */
int pagetable_build_identity(struct gmem *m, struct error *err);

bool bzimage_probe(const uint8_t *image, size_t len);
int bzimage_load(struct gmem *m, const struct boot_input *in, struct boot_entry *out,
		 struct error *err);

bool pvh_probe(const uint8_t *image, size_t len);
int pvh_load(struct gmem *m, const struct boot_input *in, struct boot_entry *out,
	     struct error *err);

#endif
