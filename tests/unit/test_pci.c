// SPDX-License-Identifier: MIT
/*
 * The PCI root complex driven as a guest drives it: through real buses,
 * ECAM on the MMIO bus and mechanism #1 on the port I/O bus.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "../../src/vmm/devices/legacy.h"
#include "../../src/vmm/devices/pci.h"
#include "../../src/vmm/layout.h"

#define ECAM	 LAYOUT_ECAM_BASE
#define MMIO64	 0x400000000ULL
#define MMIO64_E (MMIO64 + 0x1000000000ULL)

static struct bus pio, mmio;
static struct pci_root *root;

static void setup(void)
{
	struct pci_root_config c = {
		.ecam_base = ECAM,
		.nbuses = 256,
		.mmio32_base = LAYOUT_PCI_MMIO32_BASE,
		.mmio32_end = LAYOUT_PCI_MMIO32_END,
		.mmio64_base = MMIO64,
		.mmio64_end = MMIO64_E,
		.io_base = LAYOUT_PCI_IO_BASE,
		.io_end = LAYOUT_PCI_IO_END,
	};

	bus_init(&pio, "pio");
	bus_init(&mmio, "mmio");
	root = pci_root_create(&pio, &mmio, &c);
	cr_assert_not_null(root);
}

static void teardown(void)
{
	pci_root_destroy(root);
	bus_destroy(&pio);
	bus_destroy(&mmio);
}

TestSuite(pci, .init = setup, .fini = teardown);

/* ---- access helpers ---- */

static uint64_t le(const uint8_t *b, uint32_t len)
{
	uint64_t v = 0;

	for (uint32_t i = 0; i < len; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

static void put(uint8_t *b, uint32_t len, uint64_t v)
{
	for (uint32_t i = 0; i < len; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t ecam_addr(unsigned int bus, unsigned int dev, unsigned int fn, uint32_t reg)
{
	return ECAM + ((uint64_t)bus << 20 | dev << 15 | fn << 12 | reg);
}

static uint32_t ecam_rd(unsigned int dev, uint32_t reg, uint32_t len)
{
	uint8_t b[8];

	cr_assert(bus_read(&mmio, ecam_addr(0, dev, 0, reg), b, len));
	return (uint32_t)le(b, len);
}

static void ecam_wr(unsigned int dev, uint32_t reg, uint32_t len, uint32_t v)
{
	uint8_t b[8];

	put(b, len, v);
	cr_assert(bus_write(&mmio, ecam_addr(0, dev, 0, reg), b, len));
}

static uint64_t pio_rd(uint16_t port, uint32_t len)
{
	uint8_t b[4];

	bus_read(&pio, port, b, len);
	return le(b, len);
}

static void pio_wr(uint16_t port, uint32_t len, uint32_t v)
{
	uint8_t b[4];

	put(b, len, v);
	bus_write(&pio, port, b, len);
}

static uint32_t cf8_addr(unsigned int bus, unsigned int dev, unsigned int fn, uint32_t reg)
{
	return 0x80000000u | bus << 16 | dev << 11 | fn << 8 | (reg & 0xfc);
}

static uint32_t cf8_rd(unsigned int dev, uint32_t reg, uint32_t len)
{
	pio_wr(0xcf8, 4, cf8_addr(0, dev, 0, reg));
	return (uint32_t)pio_rd(0xcfc + (reg & 3), len);
}

static void cf8_wr(unsigned int dev, uint32_t reg, uint32_t len, uint32_t v)
{
	pio_wr(0xcf8, 4, cf8_addr(0, dev, 0, reg));
	pio_wr(0xcfc + (reg & 3), len, v);
}

/* ---- a test device ---- */

struct tdev {
	struct pci_device pci;
	int bar_reads, bar_writes, cfg_writes, resets;
	unsigned int last_bar;
	uint64_t last_off;
	uint32_t last_len;
	uint8_t last_data[8];
	uint32_t live; /* what the config_read hook serves at 0x44 */
};

static void t_bar_read(struct pci_device *d, unsigned int bar, uint64_t off, uint8_t *data,
		       uint32_t len)
{
	struct tdev *t = (struct tdev *)d;

	t->bar_reads++;
	t->last_bar = bar;
	t->last_off = off;
	put(data, len, 0x1122334455667788ULL);
}

static void t_bar_write(struct pci_device *d, unsigned int bar, uint64_t off, const uint8_t *data,
			uint32_t len)
{
	struct tdev *t = (struct tdev *)d;

	t->bar_writes++;
	t->last_bar = bar;
	t->last_off = off;
	t->last_len = len;
	memcpy(t->last_data, data, len);
}

static void t_cfg_read(struct pci_device *d, uint32_t off, uint8_t *data, uint32_t len)
{
	struct tdev *t = (struct tdev *)d;

	for (uint32_t i = 0; i < len; i++)
		if (off + i >= 0x44 && off + i < 0x48)
			data[i] = (uint8_t)(t->live >> (8 * (off + i - 0x44)));
}

static void t_cfg_write(struct pci_device *d, uint32_t off, const uint8_t *data, uint32_t len)
{
	((struct tdev *)d)->cfg_writes++;
}

static void t_reset(struct pci_device *d)
{
	((struct tdev *)d)->resets++;
}

static const struct pci_device_ops t_ops = {
	.bar_read = t_bar_read,
	.bar_write = t_bar_write,
	.config_read = t_cfg_read,
	.config_write = t_cfg_write,
	.reset = t_reset,
};

static struct tdev dev1;

/* IO BAR0 (32 B), MEM32 BAR1 (4 KiB), MEM64 BAR2 (16 KiB, prefetchable), MEM64 BAR4 (8 KiB). */
static int add_tdev(struct tdev *t)
{
	memset(t, 0, sizeof(*t));
	pci_device_init(&t->pci, 0x1af4, 0x1041, 0x020000, 1, 0x1af4, 0x0001);
	t->pci.name = "tdev";
	t->pci.ops = &t_ops;
	cr_assert_eq(pci_device_add_bar(&t->pci, 0, PCI_BAR_IO, 32, false), 0);
	cr_assert_eq(pci_device_add_bar(&t->pci, 1, PCI_BAR_MEM32, 4096, false), 0);
	cr_assert_eq(pci_device_add_bar(&t->pci, 2, PCI_BAR_MEM64, 16384, true), 0);
	cr_assert_eq(pci_device_add_bar(&t->pci, 4, PCI_BAR_MEM64, 8192, false), 0);
	return pci_register_device(root, &t->pci);
}

/* Whether addr decodes to the device's BAR bar (through the bus, as a vCPU would). */
static bool hits(struct bus *b, uint64_t addr, unsigned int bar)
{
	uint8_t v[4];
	int before = dev1.bar_reads;

	if (!bus_read(b, addr, v, 4))
		return false;
	return dev1.bar_reads == before + 1 && dev1.last_bar == bar;
}

/* ---- host bridge, decode ---- */

Test(pci, host_bridge)
{
	cr_assert_eq(ecam_rd(0, 0x00, 4), 0x00081b36);
	cr_assert_eq(ecam_rd(0, 0x08, 4) >> 8, 0x060000, "class: host bridge");
	cr_assert_eq(ecam_rd(0, 0x0e, 1), 0, "header type 0, single function");
	cr_assert_eq(cf8_rd(0, 0x00, 4), 0x00081b36, "mechanism #1 agrees");
	cr_assert_eq(ecam_rd(0, 0x2c, 4), 0x00081b36, "subsystem IDs");
}

Test(pci, unpopulated_functions_read_all_ones)
{
	uint8_t b[4];

	cr_assert_eq(ecam_rd(5, 0, 4), 0xffffffff);
	cr_assert_eq(ecam_rd(31, 0x3c, 2), 0xffff);
	cr_assert(bus_read(&mmio, ecam_addr(0, 0, 1, 0), b, 4));
	cr_assert_eq(le(b, 4), 0xffffffff, "function 1 of the host bridge");
	cr_assert(bus_read(&mmio, ecam_addr(1, 0, 0, 0), b, 4));
	cr_assert_eq(le(b, 4), 0xffffffff, "bus 1");
	cr_assert(bus_read(&mmio, ecam_addr(255, 31, 7, 0xffc), b, 4));
	cr_assert_eq(le(b, 4), 0xffffffff, "last dword of ECAM");
	ecam_wr(5, 4, 2, 0xffff);
	cr_assert_eq(ecam_rd(5, 4, 2), 0xffff);
	pio_wr(0xcf8, 4, cf8_addr(0, 0, 3, 0));
	cr_assert_eq(pio_rd(0xcfc, 4), 0xffffffff, "cf8: function 3");
	pio_wr(0xcf8, 4, cf8_addr(2, 0, 0, 0));
	cr_assert_eq(pio_rd(0xcfc, 4), 0xffffffff, "cf8: bus 2");
}

Test(pci, ecam_sizes_agree)
{
	uint32_t dw;

	cr_assert_geq(add_tdev(&dev1), 1);
	for (uint32_t reg = 0; reg < 0x40; reg += 4) {
		dw = ecam_rd(1, reg, 4);
		for (uint32_t i = 0; i < 4; i++)
			cr_assert_eq(ecam_rd(1, reg + i, 1), (dw >> (8 * i)) & 0xff, "byte %u",
				     reg + i);
		cr_assert_eq(ecam_rd(1, reg + 0, 2), dw & 0xffff);
		cr_assert_eq(ecam_rd(1, reg + 2, 2), dw >> 16);
		cr_assert_eq(ecam_rd(1, reg + 1, 2), (dw >> 8) & 0xffff,
			     "unaligned word in a dword");
	}
}

Test(pci, ecam_straddling_and_wide_accesses)
{
	uint8_t b[8];

	cr_assert_geq(add_tdev(&dev1), 1);
	cr_assert_eq(ecam_rd(1, 0x03, 2), 0xffff, "a word across a dword boundary");
	cr_assert_eq(ecam_rd(1, 0x02, 4), 0xffffffff, "a misaligned dword");
	cr_assert(bus_read(&mmio, ecam_addr(0, 1, 0, 0), b, 8));
	cr_assert_eq(le(b, 8), ~0ULL, "8-byte config access");
	ecam_wr(1, 0x3b, 2, 0x5555); /* interrupt line + prior byte: straddles */
	cr_assert_eq(ecam_rd(1, 0x3c, 1), 0, "a straddling write is dropped");
	ecam_wr(1, 0x3c, 1, 0x0b);
	cr_assert_eq(ecam_rd(1, 0x3c, 1), 0x0b);
	cr_assert(!bus_read(&mmio, ECAM + LAYOUT_ECAM_SIZE - 2, b, 4), "past the window");
}

Test(pci, cf8_address_register)
{
	pio_wr(0xcf8, 4, 0xffffffff);
	cr_assert_eq(pio_rd(0xcf8, 4), 0x80fffffc, "reserved and low bits read 0");
	pio_wr(0xcf8, 4, 0);
	cr_assert_eq(pio_rd(0xcfc, 4), 0xffffffff, "disabled: data reads all ones");
	pio_wr(0xcf8, 4, cf8_addr(0, 0, 0, 0));
	pio_wr(0xcf8, 1, 0); /* byte writes do not touch CONFIG_ADDRESS */
	pio_wr(0xcfa, 2, 0);
	cr_assert_eq(pio_rd(0xcf8, 4), 0x80000000);
	cr_assert_eq(pio_rd(0xcf8, 2), 0xffff, "only dword reads of 0xcf8");
	cr_assert_eq(pio_rd(0xcfc, 4), 0x00081b36);
	cr_assert_eq(pio_rd(0xcfe, 2), 0x0008, "word at 0xcfe: register byte 2");
	cr_assert_eq(pio_rd(0xcfd, 1), 0x1b, "byte at 0xcfd");
	cr_assert_eq(pio_rd(0xcfd, 2), 0x081b, "word at 0xcfd");
	pio_wr(0xcf8, 4, cf8_addr(0, 0, 0, 0x08));
	cr_assert_eq(pio_rd(0xcff, 1), 0x06, "register number selects the dword");
}

Test(pci, cf8_decodes_device_and_writes)
{
	int slot = add_tdev(&dev1);

	cr_assert_eq(slot, 1, "first free slot after the host bridge");
	cr_assert_eq(cf8_rd(1, 0x00, 4), 0x10411af4);
	cf8_wr(1, 0x3c, 1, 0x0a);
	cr_assert_eq(ecam_rd(1, 0x3c, 1), 0x0a, "cf8 writes land in the same space");
	cr_assert_eq(cf8_rd(1, 0x3c, 1), 0x0a);
	pio_wr(0xcf8, 4, cf8_addr(0, 1, 0, 0x3c) | 0x0f000000);
	cr_assert_eq(pio_rd(0xcfc, 1), 0x0a, "extended/reserved bits ignored");
}

static struct {
	int resets;
} power;

static void power_event(void *ctx, enum power_event ev)
{
	if (ev == POWER_RESET)
		power.resets++;
}

Test(pci, cf9_goes_to_the_reset_register)
{
	struct power_sink sink = {.event = power_event};
	struct acpi_pm *pm = acpi_pm_create(&pio, NULL, &sink);

	cr_assert_not_null(pm, "the PM device accepts a root that owns 0xcf9");
	pci_root_set_reset_register(root, pm);
	power.resets = 0;
	pio_wr(0xcf9, 1, 0x02);
	cr_assert_eq(pio_rd(0xcf9, 1), 0x02, "reset register reads back");
	cr_assert_eq(power.resets, 0);
	pio_wr(0xcf8, 4, cf8_addr(0, 0, 0, 0));
	pio_wr(0xcf9, 1, LAYOUT_RESET_VALUE);
	cr_assert_eq(power.resets, 1, "0x06 at 0xcf9 resets");
	cr_assert_eq(pio_rd(0xcf8, 4), 0x80000000, "CONFIG_ADDRESS is untouched");
	pio_wr(0xcf9, 2, 0x0606);
	cr_assert_eq(power.resets, 1, "only byte accesses reach the reset register");
	acpi_pm_destroy(pm);
}

/* ---- masks ---- */

Test(pci, read_only_fields)
{
	cr_assert_geq(add_tdev(&dev1), 1);
	ecam_wr(1, 0x00, 4, 0);
	ecam_wr(1, 0x08, 4, 0);
	ecam_wr(1, 0x0e, 1, 0x80);
	ecam_wr(1, 0x2c, 4, 0);
	ecam_wr(1, 0x34, 1, 0x80);
	ecam_wr(1, 0x3d, 1, 0x04);
	cr_assert_eq(ecam_rd(1, 0x00, 4), 0x10411af4, "IDs");
	cr_assert_eq(ecam_rd(1, 0x08, 4), 0x02000001, "class and revision");
	cr_assert_eq(ecam_rd(1, 0x0e, 1), 0, "header type");
	cr_assert_eq(ecam_rd(1, 0x2c, 4), 0x00011af4, "subsystem");
	cr_assert_eq(ecam_rd(1, 0x34, 1), 0, "no capabilities");
	cr_assert_eq(ecam_rd(1, 0x3d, 1), 0, "interrupt pin");
	ecam_wr(1, 0x30, 4, 0xffffffff);
	cr_assert_eq(ecam_rd(1, 0x30, 4), 0, "no expansion ROM");
	ecam_wr(1, 0x100, 4, 0xffffffff);
	cr_assert_eq(ecam_rd(1, 0x100, 4), 0, "extended space is read-only zero");
}

Test(pci, command_and_status_masks)
{
	cr_assert_geq(add_tdev(&dev1), 1);
	ecam_wr(1, 0x04, 2, 0xffff);
	cr_assert_eq(ecam_rd(1, 0x04, 2), 0x0547, "only the implemented command bits");
	/* The device reports an error; the guest clears it by writing 1. */
	pci_config_set16(&dev1.pci, PCI_STATUS, PCI_STATUS_REC_MASTER_ABORT | PCI_STATUS_PARITY);
	ecam_wr(1, 0x06, 2, 0);
	cr_assert_eq(ecam_rd(1, 0x06, 2), 0x2100, "writing 0 keeps status bits");
	ecam_wr(1, 0x06, 2, PCI_STATUS_PARITY | PCI_STATUS_CAP_LIST);
	cr_assert_eq(ecam_rd(1, 0x06, 2), 0x2000, "write 1 clears; CAP_LIST is read-only");
	ecam_wr(1, 0x04, 4, 0xffff0000 | PCI_COMMAND_MEMORY);
	cr_assert_eq(ecam_rd(1, 0x06, 2), 0, "a dword write to command clears status too");
	cr_assert_eq(ecam_rd(1, 0x04, 2), PCI_COMMAND_MEMORY);
}

/* ---- BARs ---- */

static uint32_t size_bar(unsigned int dev, uint32_t reg)
{
	uint32_t old = ecam_rd(dev, reg, 4), v;

	ecam_wr(dev, reg, 4, 0xffffffff);
	v = ecam_rd(dev, reg, 4);
	ecam_wr(dev, reg, 4, old);
	cr_assert_eq(ecam_rd(dev, reg, 4), old, "restored");
	return v;
}

Test(pci, bar_sizing)
{
	cr_assert_geq(add_tdev(&dev1), 1);
	ecam_wr(1, 0x04, 2, 0); /* decode off while sizing, as Linux does */
	cr_assert_eq(size_bar(1, 0x10), 0x0000ffe1, "32-byte I/O BAR");
	cr_assert_eq(size_bar(1, 0x14), 0xfffff000, "4 KiB memory BAR");
	cr_assert_eq(size_bar(1, 0x18), 0xffffc00c, "16 KiB 64-bit prefetchable, low");
	cr_assert_eq(size_bar(1, 0x1c), 0xffffffff, "... high");
	cr_assert_eq(size_bar(1, 0x20), 0xffffe004, "8 KiB 64-bit");
	cr_assert_eq(size_bar(1, 0x24), 0xffffffff);
	cr_assert_eq(size_bar(1, 0x28), 0, "unused BAR");
}

Test(pci, initial_assignment)
{
	uint64_t io, m32, m64p, m64;

	cr_assert_geq(add_tdev(&dev1), 1);
	io = ecam_rd(1, 0x10, 4) & ~3u;
	m32 = ecam_rd(1, 0x14, 4) & ~0xfu;
	m64p = (ecam_rd(1, 0x18, 4) & ~0xfu) | (uint64_t)ecam_rd(1, 0x1c, 4) << 32;
	m64 = (ecam_rd(1, 0x20, 4) & ~0xfu) | (uint64_t)ecam_rd(1, 0x24, 4) << 32;
	cr_assert(io >= LAYOUT_PCI_IO_BASE && io % 32 == 0, "io 0x%llx", (unsigned long long)io);
	cr_assert(m32 >= LAYOUT_PCI_MMIO32_BASE && m32 + 4096 <= LAYOUT_PCI_MMIO32_END);
	cr_assert(m64p >= MMIO64 && m64p % 16384 == 0, "prefetchable 64-bit above 4 GiB");
	cr_assert(m64 >= LAYOUT_PCI_MMIO32_BASE && m64 + 8192 <= LAYOUT_PCI_MMIO32_END &&
			  m64 % 8192 == 0,
		  "non-prefetchable 64-bit stays below 4 GiB");
	cr_assert_eq(ecam_rd(1, 0x04, 2), PCI_COMMAND_IO | PCI_COMMAND_MEMORY,
		     "decoding as firmware leaves it; no bus mastering");
	cr_assert_eq(pci_bar_address(&dev1.pci, 1), m32);
	cr_assert(hits(&pio, io + 4, 0));
	cr_assert_eq(dev1.last_off, 4);
	cr_assert(hits(&mmio, m32 + 0x10, 1));
	cr_assert(hits(&mmio, m64p, 2));
	cr_assert(hits(&mmio, m64 + 8188, 4));
	cr_assert_eq(dev1.last_off, 8188);
}

Test(pci, bar_writes_reach_the_device)
{
	uint8_t b[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	uint64_t m32;

	cr_assert_geq(add_tdev(&dev1), 1);
	m32 = pci_bar_address(&dev1.pci, 1);
	cr_assert(bus_write(&mmio, m32 + 0x20, b, 8));
	cr_assert_eq(dev1.bar_writes, 1);
	cr_assert_eq(dev1.last_off, 0x20);
	cr_assert_eq(dev1.last_len, 8);
	cr_assert(memcmp(dev1.last_data, b, 8) == 0);
}

Test(pci, bar_move_reregisters)
{
	uint64_t old;

	cr_assert_geq(add_tdev(&dev1), 1);
	old = pci_bar_address(&dev1.pci, 1);
	ecam_wr(1, 0x14, 4, 0xd0000000);
	cr_assert(!hits(&mmio, old, 1), "old range gone");
	cr_assert(hits(&mmio, 0xd0000000, 1), "new range decoded");
	cr_assert_eq(pci_bar_address(&dev1.pci, 1), 0xd0000000);
	/* 64-bit: high dword then low dword. */
	ecam_wr(1, 0x1c, 4, 0x5);
	ecam_wr(1, 0x18, 4, 0x00100000);
	cr_assert(hits(&mmio, 0x500100000ULL, 2));
	cr_assert_eq(pci_bar_address(&dev1.pci, 2), 0x500100000ULL);
	/* I/O through mechanism #1. */
	cf8_wr(1, 0x10, 4, 0xe000);
	cr_assert(hits(&pio, 0xe000, 0));
	cr_assert(hits(&pio, 0xe01c, 0));
	cr_assert(!hits(&pio, 0xe020, 0));
}

Test(pci, bar_over_another_device_stays_unmapped)
{
	uint64_t addr;

	cr_assert_geq(add_tdev(&dev1), 1);
	ecam_wr(1, 0x14, 4, (uint32_t)ECAM);
	cr_assert_eq(pci_bar_address(&dev1.pci, 1), 0, "ECAM is not given away");
	cr_assert_eq(ecam_rd(0, 0, 4), 0x00081b36, "and still decodes");
	ecam_wr(1, 0x14, 4, 0xd0000000);
	addr = pci_bar_address(&dev1.pci, 1);
	cr_assert_eq(addr, 0xd0000000, "a later valid address maps again");
	ecam_wr(1, 0x10, 4, 0xfffffffc);
	cr_assert_eq(ecam_rd(1, 0x10, 4), 0xffe1, "16-bit I/O decode");
	cr_assert_eq(pci_bar_address(&dev1.pci, 0), 0xffe0, "the last 32 ports");
}

Test(pci, command_gates_decoding)
{
	uint64_t m32, io;

	cr_assert_geq(add_tdev(&dev1), 1);
	m32 = pci_bar_address(&dev1.pci, 1);
	io = pci_bar_address(&dev1.pci, 0);
	ecam_wr(1, 0x04, 2, PCI_COMMAND_IO);
	cr_assert(!hits(&mmio, m32, 1), "memory decode off");
	cr_assert(hits(&pio, io, 0), "I/O still on");
	ecam_wr(1, 0x04, 2, PCI_COMMAND_MEMORY);
	cr_assert(hits(&mmio, m32, 1));
	cr_assert(!hits(&pio, io, 0));
	ecam_wr(1, 0x04, 1, 0);
	cr_assert_eq(pci_bar_address(&dev1.pci, 2), 0);
	/* Moving a disabled BAR maps nothing until decode is enabled. */
	ecam_wr(1, 0x14, 4, 0xd0000000);
	cr_assert(!hits(&mmio, 0xd0000000, 1));
	ecam_wr(1, 0x04, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	cr_assert(hits(&mmio, 0xd0000000, 1));
}

Test(pci, bar_declaration_errors)
{
	struct pci_device d;

	pci_device_init(&d, 1, 2, 0xff0000, 0, 0, 0);
	cr_assert_eq(pci_device_add_bar(&d, 6, PCI_BAR_MEM32, 4096, false), -EINVAL);
	cr_assert_eq(pci_device_add_bar(&d, 0, PCI_BAR_MEM32, 3000, false), -EINVAL);
	cr_assert_eq(pci_device_add_bar(&d, 0, PCI_BAR_MEM32, 8, false), -EINVAL);
	cr_assert_eq(pci_device_add_bar(&d, 0, PCI_BAR_IO, 512, false), -EINVAL);
	cr_assert_eq(pci_device_add_bar(&d, 5, PCI_BAR_MEM64, 4096, false), -EINVAL, "no room");
	cr_assert_eq(pci_device_add_bar(&d, 0, PCI_BAR_UNUSED, 4096, false), -EINVAL);
	cr_assert_eq(pci_device_add_bar(&d, 2, PCI_BAR_MEM64, 4096, false), 0);
	cr_assert_eq(pci_device_add_bar(&d, 3, PCI_BAR_MEM32, 4096, false), -EINVAL,
		     "upper half of BAR2");
	cr_assert_eq(pci_device_add_bar(&d, 1, PCI_BAR_MEM64, 4096, false), -EINVAL);
	cr_assert_eq(pci_device_add_bar(&d, 2, PCI_BAR_MEM32, 4096, false), -EINVAL);
}

Test(pci, windows_run_out)
{
	struct pci_device big;

	pci_device_init(&big, 1, 2, 0xff0000, 0, 0, 0);
	cr_assert_eq(pci_device_add_bar(&big, 0, PCI_BAR_MEM32, 1ULL << 31, false), 0);
	cr_assert_eq(pci_register_device(root, &big), -ENOSPC, "2 GiB does not fit the window");
	cr_assert_null(big.root);
	cr_assert_eq(ecam_rd(1, 0, 4), 0xffffffff, "the slot stays empty");
}

Test(pci, bus_fills_up)
{
	static struct pci_device d[PCI_SLOTS];

	for (unsigned int i = 1; i < PCI_SLOTS; i++) {
		pci_device_init(&d[i], 0x1234, (uint16_t)i, 0xff0000, 0, 0, 0);
		cr_assert_eq(pci_register_device(root, &d[i]), (int)i);
	}
	pci_device_init(&d[0], 0x1234, 0, 0xff0000, 0, 0, 0);
	cr_assert_eq(pci_register_device(root, &d[0]), -ENOSPC);
	cr_assert_eq(ecam_rd(31, 0, 4), 0x001f1234);
	cr_assert_eq(pci_register_device(root, &d[5]), -EBUSY, "registered twice");
}

/* ---- capabilities and hooks ---- */

Test(pci, capability_chain)
{
	int a, b, c;
	uint32_t ptr, n = 0;
	static const uint8_t ids[] = {PCI_CAP_ID_VNDR, PCI_CAP_ID_VNDR, 0x05};

	pci_device_init(&dev1.pci, 0x1af4, 0x1041, 0x020000, 1, 0, 0);
	dev1.pci.ops = &t_ops;
	a = pci_add_capability(&dev1.pci, PCI_CAP_ID_VNDR, 16);
	b = pci_add_capability(&dev1.pci, PCI_CAP_ID_VNDR, 7);
	c = pci_add_capability(&dev1.pci, 0x05, 14);
	cr_assert_eq(a, 0x40);
	cr_assert_eq(b, 0x50);
	cr_assert_eq(c, 0x58, "lengths are rounded to dwords");
	pci_config_set8(&dev1.pci, a + 2, 16);
	pci_config_set_wmask(&dev1.pci, a + 8, 4, 0x0000ffff);
	cr_assert_eq(pci_register_device(root, &dev1.pci), 1);
	cr_assert_eq(pci_add_capability(&dev1.pci, 0x09, 4), -ENOSPC, "after registration");

	cr_assert(ecam_rd(1, 0x06, 2) & PCI_STATUS_CAP_LIST);
	for (ptr = ecam_rd(1, 0x34, 1); ptr; ptr = ecam_rd(1, ptr + 1, 1)) {
		cr_assert_lt(n, 3);
		cr_assert_eq(ecam_rd(1, ptr, 1), ids[n], "capability %u", n);
		cr_assert_eq(ptr % 4, 0);
		n++;
	}
	cr_assert_eq(n, 3);
	ecam_wr(1, a + 8, 4, 0xabcdef12);
	cr_assert_eq(ecam_rd(1, a + 8, 4), 0xef12, "only the field's writable bits");
	ecam_wr(1, a + 1, 1, 0);
	cr_assert_eq(ecam_rd(1, a + 1, 1), b, "the chain is read-only");
}

Test(pci, capability_space_runs_out)
{
	struct pci_device d;
	int n = 0;

	pci_device_init(&d, 1, 2, 0xff0000, 0, 0, 0);
	while (pci_add_capability(&d, PCI_CAP_ID_VNDR, 16) > 0)
		n++;
	cr_assert_eq(n, (256 - 0x40) / 16);
	cr_assert_eq(pci_add_capability(&d, PCI_CAP_ID_VNDR, 4), -ENOSPC);
	cr_assert_eq(pci_add_capability(&d, PCI_CAP_ID_VNDR, 1), -ENOSPC, "shorter than a header");
}

Test(pci, config_hooks)
{
	cr_assert_geq(add_tdev(&dev1), 1);
	dev1.live = 0xcafef00d;
	cr_assert_eq(ecam_rd(1, 0x44, 4), 0xcafef00d, "config_read sees live state");
	cr_assert_eq(cf8_rd(1, 0x46, 2), 0xcafe);
	ecam_wr(1, 0x3c, 1, 5);
	cr_assert_eq(dev1.cfg_writes, 1);
	ecam_wr(1, 0x3f, 2, 5);
	cr_assert_eq(dev1.cfg_writes, 1, "a rejected access reaches no hook");
}

Test(pci, reset_restores_power_on_state)
{
	uint64_t m32;

	cr_assert_geq(add_tdev(&dev1), 1);
	m32 = pci_bar_address(&dev1.pci, 1);
	ecam_wr(1, 0x14, 4, 0xd0000000);
	ecam_wr(1, 0x04, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	ecam_wr(1, 0x3c, 1, 9);
	pio_wr(0xcf8, 4, cf8_addr(0, 1, 0, 0));
	pci_root_reset(root);
	cr_assert_eq(dev1.resets, 1);
	cr_assert_eq(pio_rd(0xcf8, 4), 0);
	cr_assert_eq(ecam_rd(1, 0x3c, 1), 0);
	cr_assert_eq(ecam_rd(1, 0x04, 2), PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
	cr_assert_eq(pci_bar_address(&dev1.pci, 1), m32);
	cr_assert(hits(&mmio, m32, 1));
	cr_assert(!hits(&mmio, 0xd0000000, 1));
}

Test(pci, destroy_releases_every_range)
{
	cr_assert_geq(add_tdev(&dev1), 1);
	pci_root_destroy(root);
	cr_assert_eq(pio.nranges, 0);
	cr_assert_eq(mmio.nranges, 0);
	cr_assert_null(dev1.pci.root);
	root = NULL;
}

Test(pci, bad_root_configs)
{
	struct pci_root_config c = {.ecam_base = 0xb0001000, .nbuses = 1};
	struct bus p2, m2;

	bus_init(&p2, "p2");
	bus_init(&m2, "m2");
	cr_assert_null(pci_root_create(&p2, &m2, &c), "unaligned ECAM");
	c.ecam_base = ECAM;
	c.nbuses = 0;
	cr_assert_null(pci_root_create(&p2, &m2, &c));
	c.nbuses = 257;
	cr_assert_null(pci_root_create(&p2, &m2, &c));
	c.nbuses = 1;
	cr_assert_null(pci_root_create(&pio, &m2, &c), "0xcf8 already taken");
	cr_assert_eq(m2.nranges, 0, "nothing left behind");
	bus_destroy(&p2);
	bus_destroy(&m2);
}
