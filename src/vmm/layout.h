/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_LAYOUT_H
#define BUNSHIN_VMM_LAYOUT_H

/*
 * The guest-physical memory map, in one place. It follows what real x86
 * machines (and therefore every guest kernel) expect:
 *
 *   0x0000_0000  low RAM (real-mode IVT/BDA area, boot structures)
 *   0x0009_fc00  EBDA                       reserved
 *   0x000a_0000  VGA hole / option ROMs     not RAM
 *   0x000e_0000  ACPI tables (RSDP first)   reserved
 *   0x0010_0000  RAM: kernel, initrd, ...   up to LOW_RAM_END
 *   0xb000_0000  PCI ECAM (MCFG)            reserved
 *   0xc000_0000  32-bit PCI MMIO window
 *   0xfec0_0000  IOAPIC
 *   0xfee0_0000  LAPIC
 *   0x1_0000_0000 RAM above 4 GiB (what did not fit below the hole)
 */

#define LAYOUT_LOW_RAM_END    0xb0000000ULL
#define LAYOUT_HIGH_RAM_START 0x100000000ULL

#define LAYOUT_EBDA_START     0x9fc00ULL
#define LAYOUT_EBDA_END	      0xa0000ULL
#define LAYOUT_ACPI_START     0xe0000ULL
#define LAYOUT_ACPI_SIZE      0x20000ULL
#define LAYOUT_HIGH_MEM_START 0x100000ULL /* 1 MiB: where kernels load */

#define LAYOUT_ECAM_BASE       0xb0000000ULL
#define LAYOUT_ECAM_SIZE       0x10000000ULL /* 256 buses x 1 MiB */
#define LAYOUT_PCI_MMIO32_BASE 0xc0000000ULL
#define LAYOUT_PCI_MMIO32_END  0xfec00000ULL
#define LAYOUT_IOAPIC_BASE     0xfec00000ULL

/*
 * PCI port I/O BARs come from 0xc000 up, clear of every legacy port; the
 * root bridge still forwards all of 0x0000-0xffff except 0xcf8-0xcff.
 */
#define LAYOUT_PCI_IO_BASE 0xc000ULL
#define LAYOUT_PCI_IO_END  0x10000ULL

/*
 * The 64-bit PCI window starts at the first 1 GiB boundary above the top
 * of RAM (so it moves with the memory size) and spans 64 GiB: plenty for
 * virtio BARs, and low enough that any guest with 40 physical address bits
 * reaches it with small VMs.
 */
#define LAYOUT_PCI_MMIO64_ALIGN 0x40000000ULL
#define LAYOUT_PCI_MMIO64_SIZE	0x1000000000ULL
#define LAYOUT_LAPIC_BASE	0xfee00000ULL

/* Boot structures in low memory, below the EBDA. */
#define LAYOUT_GDT_GPA	      0x500ULL
#define LAYOUT_START_INFO_GPA 0x6000ULL /* PVH hvm_start_info + memmap + modlist */
#define LAYOUT_ZERO_PAGE_GPA  0x7000ULL /* Linux boot_params */
#define LAYOUT_BOOT_STACK_GPA 0x8ff0ULL
#define LAYOUT_PML4_GPA	      0x9000ULL
#define LAYOUT_PDPT_GPA	      0xa000ULL
#define LAYOUT_PD_GPA	      0xb000ULL /* 4 pages: identity map of the first 4 GiB */
#define LAYOUT_CMDLINE_GPA    0x20000ULL
#define LAYOUT_CMDLINE_MAX    0x10000ULL

/* Boot GDT selectors, as Linux's boot protocol expects (__BOOT_CS, __BOOT_DS). */
#define LAYOUT_BOOT_CS	0x10
#define LAYOUT_BOOT_DS	0x18
#define LAYOUT_BOOT_TSS 0x20

/* Legacy devices. */
#define LAYOUT_COM1_PORT       0x3f8
#define LAYOUT_COM1_IRQ	       4
#define LAYOUT_I8042_DATA_PORT 0x60
#define LAYOUT_I8042_CMD_PORT  0x64
#define LAYOUT_I8042_IRQ       1
#define LAYOUT_RTC_PORT	       0x70
#define LAYOUT_RTC_IRQ	       8

/* ACPI fixed hardware (PM1a event/control blocks, PM timer) and reset. */
#define LAYOUT_PM1A_EVT_PORT 0x600 /* 4 bytes: PM1_STS, PM1_EN */
#define LAYOUT_PM1A_CNT_PORT 0x604 /* 2 bytes: PM1_CNT */
#define LAYOUT_PM_TMR_PORT   0x608 /* 4 bytes: 32-bit 3.579545 MHz counter (FADT TMR_VAL_EXT) */
#define LAYOUT_GPE0_PORT     0x60c /* 4 bytes: GPE0_STS, GPE0_EN (16 GPEs) */
#define LAYOUT_SCI_IRQ	     9
#define LAYOUT_RESET_PORT    0xcf9
#define LAYOUT_RESET_VALUE   0x06
#define LAYOUT_S5_SLP_TYP    5 /* value of \_S5 and of PM1_CNT.SLP_TYP for power-off */

/*
 * VM generation ID (devices/vmgenid.c): a 16-byte GUID the guest reads at
 * this address, announced by GPE0 bit LAYOUT_VMGENID_GPE. It lies below the
 * ACPI tables in 0x9fc00-0x100000, which the e820 map reserves, so no
 * guest allocates it.
 */
#define LAYOUT_VMGENID_GPA 0xdf000ULL
#define LAYOUT_VMGENID_GPE 0

/* Top of guest RAM (exclusive) for ram_size bytes split around the PCI hole, as gmem does. */
static inline unsigned long long layout_ram_end(unsigned long long ram_size)
{
	if (ram_size <= LAYOUT_LOW_RAM_END)
		return ram_size;
	return LAYOUT_HIGH_RAM_START + (ram_size - LAYOUT_LOW_RAM_END);
}

static inline unsigned long long layout_pci_mmio64_base(unsigned long long ram_size)
{
	unsigned long long end = layout_ram_end(ram_size);

	if (end < LAYOUT_HIGH_RAM_START)
		end = LAYOUT_HIGH_RAM_START;
	return (end + LAYOUT_PCI_MMIO64_ALIGN - 1) & ~(LAYOUT_PCI_MMIO64_ALIGN - 1);
}

#define LAYOUT_IOAPIC_ID   0xfe /* above every APIC ID we hand out to vCPUs below 254 */
#define LAYOUT_IOAPIC_PINS 24

#endif
