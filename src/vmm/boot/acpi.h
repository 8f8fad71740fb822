/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_ACPI_H
#define BUNSHIN_VMM_ACPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../common/error.h"

/*
 * Everything the ACPI tables describe comes from this configuration, so the
 * tables are generated at start from what the VM really has.
 */
struct acpi_config {
	unsigned int ncpus;
	const uint32_t *apic_ids; /* ncpus entries; IDs >= 255 get x2APIC MADT entries */
	bool com1;		  /* 8250 at LAYOUT_COM1_PORT, IRQ 4 */
	bool i8042;		  /* keyboard controller at 0x60/0x64, IRQ 1 */
	bool rtc;		  /* CMOS RTC at 0x70, IRQ 8 */
	uint64_t ecam_base;	  /* MCFG window for PCI segment 0 */
	uint8_t pci_bus_end;	  /* last bus number decoded by ECAM */
	bool pci;		  /* PCI root bridge PCI0 in the DSDT, windows below */
	uint64_t pci_mmio64_base; /* 64-bit memory window above RAM; size 0: none */
	uint64_t pci_mmio64_size;
	/*
	 * VM generation ID: device VGEN whose ADDR method returns this
	 * guest-physical address, notified from \_GPE._Exx for GPE
	 * vmgenid_gpe; 0: none.
	 */
	uint64_t vmgenid_gpa;
	unsigned int vmgenid_gpe;
};

/*
 * Writes RSDP, XSDT, FADT, FACS, DSDT, MADT and MCFG into buf, which the
 * guest sees at guest-physical address gpa (size bytes available). The RSDP
 * comes first, at gpa itself, so legacy scanners of 0xe0000 find it.
 * Returns 0 and the RSDP address, or a negative errno with err filled in.
 */
int acpi_build(const struct acpi_config *cfg, uint8_t *buf, uint64_t gpa, size_t size,
	       uint64_t *rsdp_gpa, struct error *err);

#endif
