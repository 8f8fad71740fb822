/* SPDX-License-Identifier: MIT */
/*
 * PCI configuration space (ECAM from the ACPI MCFG, else ports 0xCF8/0xCFC),
 * enumeration with BAR sizing, capability lists. CPL-3 code.
 */
#ifndef BUNSHIN_GUEST_PCI_H
#define BUNSHIN_GUEST_PCI_H

#include "guest.h"

#define PCI_MAX_DEVS 64

#define PCI_COMMAND	  0x04
#define PCI_CMD_IO	  0x1
#define PCI_CMD_MEM	  0x2
#define PCI_CMD_MASTER	  0x4
#define PCI_CMD_INTX_OFF  0x400
#define PCI_STATUS	  0x06
#define PCI_STATUS_CAPS	  0x10
#define PCI_CAP_PTR	  0x34
#define PCI_CAP_ID_MSIX	  0x11
#define PCI_CAP_ID_VENDOR 0x09

enum pci_bar_type {
	PCI_BAR_NONE = 0,
	PCI_BAR_MEM32,
	PCI_BAR_MEM64,
	PCI_BAR_IO,
};

struct pci_bar {
	uint64_t addr;
	uint64_t size;
	uint8_t type; /* enum pci_bar_type; the upper half of a 64-bit BAR is NONE */
	bool prefetch;
};

struct pci_dev {
	uint8_t bus, dev, fn;
	uint8_t hdr_type; /* without the multi-function bit */
	uint16_t vendor, device;
	uint16_t subsys_vendor, subsys_id;
	uint32_t class; /* class << 16 | subclass << 8 | prog-if */
	uint8_t revision;
	struct pci_bar bar[6];
};

struct pci_info {
	const char *method; /* "ecam" or "cf8" */
	uint64_t ecam_base;
	uint32_t ndevs;
	struct pci_dev devs[PCI_MAX_DEVS];
	const char *fail; /* "bar-above-4g", ... */
};

extern struct pci_info g_pci;

/* Scans bus 0 (and the buses behind bridges); idempotent. */
void pci_init(void);

uint32_t pci_read32(const struct pci_dev *d, uint32_t off);
uint16_t pci_read16(const struct pci_dev *d, uint32_t off);
uint8_t pci_read8(const struct pci_dev *d, uint32_t off);
void pci_write32(const struct pci_dev *d, uint32_t off, uint32_t v);
void pci_write16(const struct pci_dev *d, uint32_t off, uint16_t v);

/* Offset of the first capability with this id at or after 'from' in the
 * list (from = 0: the start), or 0. */
uint8_t pci_find_cap(const struct pci_dev *d, uint8_t id, uint8_t from);

/* A memory BAR's address, mapped (SYS_MAP above the boot map), or 0. */
uint64_t pci_bar_map(const struct pci_dev *d, int bar);

struct pci_dev *pci_find(uint16_t vendor, uint16_t device, uint32_t nth);

#endif
