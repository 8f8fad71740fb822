/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_MSIX_H
#define BUNSHIN_VMM_MSIX_H

#include <stdbool.h>
#include <stdint.h>

#include "msi.h"
#include "pci.h"
#include "../../common/error.h"

/*
 * MSI-X for a PCI device: the capability (table size, table and PBA
 * BIR/offset, function mask, enable) and the vector table and pending-bit
 * array, emulated inside the device's BARs (pci.c routes accesses to those
 * ranges here before the device's own bar callbacks see anything).
 *
 * Deliveries go to an msi_sink. A vector is effectively masked when its
 * own mask bit, the function mask or a clear enable bit says so; a
 * notification then only sets the vector's pending bit, and the message
 * goes out when the vector is unmasked.
 */

#define MSIX_MAX_VECTORS 2048
#define MSIX_ENTRY_SIZE	 16

/* Message Control */
#define MSIX_CTRL_TABLE_SIZE 0x07ff
#define MSIX_CTRL_MASKALL    0x4000
#define MSIX_CTRL_ENABLE     0x8000

/* Capability layout (offsets from the capability) */
#define MSIX_CAP_CTRL  2
#define MSIX_CAP_TABLE 4
#define MSIX_CAP_PBA   8
#define MSIX_CAP_LEN   12

/* Vector table entry */
#define MSIX_ENTRY_ADDR_LO 0
#define MSIX_ENTRY_ADDR_HI 4
#define MSIX_ENTRY_DATA	   8
#define MSIX_ENTRY_CTRL	   12
#define MSIX_ENTRY_MASKED  0x1

/*
 * Adds the capability to dev (before pci_register_device()). The table
 * (nvec * 16 bytes) lives at table_off in BAR table_bar, the PBA at
 * pba_off in BAR pba_bar; both BARs must be declared memory BARs, offsets
 * 8-byte aligned, and the regions must fit and not overlap. The sink is
 * copied. Returns 0 or a negative errno.
 */
int msix_init(struct pci_device *dev, unsigned int nvec, unsigned int table_bar, uint32_t table_off,
	      unsigned int pba_bar, uint32_t pba_off, const struct msi_sink *sink);
void msix_destroy(struct pci_device *dev);

/*
 * Signals vector. Returns 0 when delivered, 1 when it was left pending
 * (masked), -EINVAL for a vector out of range, -EAGAIN when MSI-X is
 * disabled (the notification is dropped, as there is no INTx).
 */
int msix_notify(struct pci_device *dev, unsigned int vector);

/*
 * The sink's eventfd for vector, for I/O threads that signal the guest
 * without entering this module: a write delivers through KVM (irqfd)
 * while the vector is unmasked and becomes a pending bit while it is not.
 */
int msix_vector_eventfd(struct pci_device *dev, unsigned int vector);

bool msix_enabled(struct pci_device *dev);
unsigned int msix_nvectors(const struct pci_device *dev);

/* For pci.c: accesses that fall in the table or PBA. Return false if not ours. */
bool msix_bar_read(struct msix *m, unsigned int bar, uint64_t off, uint8_t *data, uint32_t len);
bool msix_bar_write(struct msix *m, unsigned int bar, uint64_t off, const uint8_t *data,
		    uint32_t len);
/* For pci.c: config space changed (under the root lock); pick up enable/function mask. */
void msix_config_written(struct msix *m, uint32_t off, uint32_t len);
/* For pci.c: power-on state (every vector masked, nothing pending). */
void msix_reset(struct msix *m);

/* One vector table entry and its pending bit, as a snapshot holds them. */
struct msix_vector_state {
	uint32_t addr_lo, addr_hi, data, ctrl;
	bool pending;
};

/*
 * For pci_state.c (root lock held). Save fills out[nvec], pending bits
 * collected from the sink's eventfds included. Check refuses what a guest
 * could not have written (-EINVAL, the vector named in err). Load puts the
 * table and PBA back, takes enable and function mask from config space
 * (already restored) and tells the sink every vector's route and mask, so
 * interrupts reach the guest again; pending unmasked vectors are delivered.
 */
void msix_save_vectors(struct msix *m, struct msix_vector_state *out);
int msix_check_vectors(const struct msix_vector_state *in, unsigned int nvec, const char *section,
		       struct error *err);
void msix_load_vectors(struct msix *m, const struct msix_vector_state *in);

#endif
