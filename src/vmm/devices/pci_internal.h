/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_PCI_INTERNAL_H
#define BUNSHIN_VMM_PCI_INTERNAL_H

/* What pci.c shares with pci_state.c (snapshot) and nothing else. */

#include "pci.h"

struct pci_root {
	pthread_mutex_t lock; /* configuration space of every device, cf8 */
	struct bus *pio;
	struct bus *mmio;
	struct pci_root_config cfg;
	struct pci_device *slots[PCI_SLOTS];
	uint32_t cf8;
	struct acpi_pm *pm;
	uint64_t next_mmio32, next_mmio64, next_io;
	bool ports_claimed, ecam_claimed;
	struct pci_device host;
};

/* Puts every BAR's range where command and address say (root lock held). */
void pci_bars_update(struct pci_device *dev);

#endif
