/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_PCI_H
#define BUNSHIN_VMM_PCI_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus.h"

/*
 * The PCI root complex: segment 0, bus 0, 32 slots, function 0 only. The
 * guest reaches configuration space through ECAM (MMIO, the MCFG window)
 * and through configuration mechanism #1 (ports 0xcf8/0xcfc). Device 00.0
 * is a host bridge.
 *
 * A device model embeds a struct pci_device, describes itself with
 * pci_device_init(), pci_device_add_bar() and pci_add_capability() (and
 * msix_init() from msix.h), then calls pci_register_device(). The root
 * assigns every BAR an address in its windows, as firmware would, so the
 * guest can keep the resources as given. Configuration writes go through
 * per-byte masks: the guest only changes what a real device lets it.
 *
 * Locking: configuration accesses are serialised by the root's lock (the
 * device's config hooks run under it); BAR accesses reach the device's
 * bar_read/bar_write without it, from any vCPU thread.
 */

#define PCI_CFG_SIZE	4096
#define PCI_CFG_LEGACY	256 /* what mechanism #1 reaches; capabilities live here */
#define PCI_NUM_BARS	6
#define PCI_SLOTS	32
#define PCI_CFG_HDR_END 0x40 /* first byte after the type 0 header */

/* Type 0 header registers. */
#define PCI_VENDOR_ID	     0x00
#define PCI_DEVICE_ID	     0x02
#define PCI_COMMAND	     0x04
#define PCI_STATUS	     0x06
#define PCI_REVISION_ID	     0x08
#define PCI_CLASS_PROG	     0x09
#define PCI_CLASS_DEVICE     0x0a
#define PCI_CACHE_LINE_SIZE  0x0c
#define PCI_LATENCY_TIMER    0x0d
#define PCI_HEADER_TYPE	     0x0e
#define PCI_BASE_ADDRESS_0   0x10
#define PCI_SUBSYSTEM_VENDOR 0x2c
#define PCI_SUBSYSTEM_ID     0x2e
#define PCI_CAPABILITY_LIST  0x34
#define PCI_INTERRUPT_LINE   0x3c
#define PCI_INTERRUPT_PIN    0x3d

#define PCI_COMMAND_IO		 0x0001
#define PCI_COMMAND_MEMORY	 0x0002
#define PCI_COMMAND_MASTER	 0x0004
#define PCI_COMMAND_PARITY	 0x0040
#define PCI_COMMAND_SERR	 0x0100
#define PCI_COMMAND_INTX_DISABLE 0x0400

#define PCI_STATUS_INTERRUPT	    0x0008
#define PCI_STATUS_CAP_LIST	    0x0010
#define PCI_STATUS_PARITY	    0x0100 /* master data parity error */
#define PCI_STATUS_SIG_TARGET_ABORT 0x0800
#define PCI_STATUS_REC_TARGET_ABORT 0x1000
#define PCI_STATUS_REC_MASTER_ABORT 0x2000
#define PCI_STATUS_SIG_SYSTEM_ERROR 0x4000
#define PCI_STATUS_DETECTED_PARITY  0x8000

#define PCI_BAR_SPACE_IO     0x01
#define PCI_BAR_MEM_TYPE_64  0x04
#define PCI_BAR_MEM_PREFETCH 0x08

#define PCI_CAP_ID_VNDR 0x09
#define PCI_CAP_ID_MSIX 0x11

#define PCI_CLASS_BRIDGE_HOST 0x060000

/*
 * Host bridge IDs: Red Hat's 1b36:0008 is the "generic PCIe host bridge"
 * ID assigned for virtual machines (QEMU's gpex uses it). Guests bind no
 * driver and apply no quirk to it, which is what a host bridge needs.
 */
#define PCI_HOST_BRIDGE_VENDOR 0x1b36
#define PCI_HOST_BRIDGE_DEVICE 0x0008

enum pci_bar_type {
	PCI_BAR_UNUSED,
	PCI_BAR_IO,
	PCI_BAR_MEM32,
	PCI_BAR_MEM64, /* takes two BAR slots: index and index + 1 */
};

struct pci_device;

/* Every callback is optional. */
struct pci_device_ops {
	/* Access to [offset, offset+len) of BAR bar (len 1, 2, 4 or 8). */
	void (*bar_read)(struct pci_device *dev, unsigned int bar, uint64_t offset, uint8_t *data,
			 uint32_t len);
	void (*bar_write)(struct pci_device *dev, unsigned int bar, uint64_t offset,
			  const uint8_t *data, uint32_t len);
	/* After the root filled data from config space: may replace bytes (live registers). */
	void (*config_read)(struct pci_device *dev, uint32_t offset, uint8_t *data, uint32_t len);
	/* After the root applied a masked write: react to the new contents of dev->cfg. */
	void (*config_write)(struct pci_device *dev, uint32_t offset, const uint8_t *data,
			     uint32_t len);
	/* Device reset; config space and BARs are already back to their power-on state. */
	void (*reset)(struct pci_device *dev);
	/*
	 * BAR bar is now decoded at addr, or no longer decoded (addr 0): for
	 * devices that bind guest addresses elsewhere (ioeventfds). Called
	 * with the root's lock held, so it must not call pci_bar_address().
	 */
	void (*bar_moved)(struct pci_device *dev, unsigned int bar, uint64_t addr);
};

struct pci_bar {
	enum pci_bar_type type; /* the upper half of a 64-bit BAR stays PCI_BAR_UNUSED */
	bool prefetchable;
	uint64_t size; /* a power of two */
	uint64_t mapped_at;
	bool mapped; /* registered on its bus at mapped_at */
	struct pci_device *dev;
	unsigned int index;
};

struct msix;

struct pci_device {
	/* Set by the device model. */
	const char *name;
	const struct pci_device_ops *ops;
	void *opaque;

	/* Private to pci.c and msix.c. */
	struct pci_root *root;
	unsigned int slot;
	uint8_t cfg[PCI_CFG_SIZE];
	uint8_t wmask[PCI_CFG_SIZE]; /* bits the guest may write */
	uint8_t w1c[PCI_CFG_SIZE];   /* bits the guest clears by writing 1 */
	uint8_t *reset_cfg;	     /* power-on contents, saved at registration */
	struct pci_bar bars[PCI_NUM_BARS];
	uint16_t cap_next; /* where the next capability goes */
	uint16_t cap_link; /* offset of the last "next" pointer in the chain */
	struct msix *msix;
};

/* Initialises the header: IDs, class (24 bits: base, sub, prog-if), default masks. */
void pci_device_init(struct pci_device *dev, uint16_t vendor, uint16_t device, uint32_t class_code,
		     uint8_t revision, uint16_t subsys_vendor, uint16_t subsys_id);

/*
 * Declares BAR index. size is a power of two, at least 16 bytes for memory
 * and 4 for I/O (I/O at most 256). -EINVAL on a bad index, size or a clash
 * with an already declared BAR.
 */
int pci_device_add_bar(struct pci_device *dev, unsigned int index, enum pci_bar_type type,
		       uint64_t size, bool prefetchable);

/*
 * Appends a capability of len bytes (header included) to the list in the
 * first 256 bytes and returns its offset, or -ENOSPC. The body starts
 * zeroed and read-only; use pci_config_set_wmask() for writable fields.
 */
int pci_add_capability(struct pci_device *dev, uint8_t id, uint8_t len);

/* Device-side access to config space: no masks, little endian. */
void pci_config_set8(struct pci_device *dev, uint32_t off, uint8_t v);
void pci_config_set16(struct pci_device *dev, uint32_t off, uint16_t v);
void pci_config_set32(struct pci_device *dev, uint32_t off, uint32_t v);
uint8_t pci_config_get8(const struct pci_device *dev, uint32_t off);
uint16_t pci_config_get16(const struct pci_device *dev, uint32_t off);
uint32_t pci_config_get32(const struct pci_device *dev, uint32_t off);
/* Sets the writable (or write-1-to-clear) bits of len bytes from a little-endian mask. */
void pci_config_set_wmask(struct pci_device *dev, uint32_t off, uint32_t len, uint64_t mask);
void pci_config_set_w1c(struct pci_device *dev, uint32_t off, uint32_t len, uint64_t mask);

/* Where BAR index is decoded now, or 0 when it is not. */
uint64_t pci_bar_address(struct pci_device *dev, unsigned int index);

struct pci_root_config {
	uint64_t ecam_base;
	unsigned int nbuses;  /* ECAM covers buses 0 .. nbuses-1 (1-256) */
	uint64_t mmio32_base; /* windows BARs are assigned from: [base, end) */
	uint64_t mmio32_end;
	uint64_t mmio64_base;
	uint64_t mmio64_end;
	uint64_t io_base;
	uint64_t io_end;
};

struct pci_root;
struct acpi_pm;

/*
 * Creates the root complex: claims ports 0xcf8-0xcff on pio and the ECAM
 * window on mmio, and puts the host bridge at 00:00.0. NULL on failure.
 */
struct pci_root *pci_root_create(struct bus *pio, struct bus *mmio,
				 const struct pci_root_config *cfg);
void pci_root_destroy(struct pci_root *root);

/* 0xcf9 lies inside 0xcf8-0xcff: byte accesses there go to the ACPI reset register. */
void pci_root_set_reset_register(struct pci_root *root, struct acpi_pm *pm);

/*
 * Places dev in the first free slot, assigns its BARs and maps them.
 * Returns the slot or a negative errno (-ENOSPC when the bus is full or a
 * window is exhausted).
 */
int pci_register_device(struct pci_root *root, struct pci_device *dev);

/* Power-on state for every device (a guest reboot); BARs go back where they were assigned. */
void pci_root_reset(struct pci_root *root);

/*
 * Snapshot (pci_state.c): one section for the root and every function on
 * it: the 0xcf8 address latch, each device's configuration space (BARs,
 * command, capabilities including the MSI-X enable and function mask),
 * where each BAR was decoded, and the MSI-X table and pending bits.
 *
 * Restore expects a root populated exactly as when it was saved (same
 * devices, same slots, same read-only registers). It moves every BAR to
 * its saved address through the same path a guest's BAR write takes (the
 * device's bar_moved hook rebinds its ioeventfds) and re-programs every
 * MSI-X route through the msi_sink. A refused section, a BAR that would
 * overlap something already on a bus included, leaves every device as it
 * was. Call it before the devices' own restores.
 */
#define PCI_STATE_VERSION 1
struct snap_writer;
struct snap_file;
struct error;
int pci_root_save(struct pci_root *root, struct snap_writer *w, const char *name);
int pci_root_restore(struct pci_root *root, const struct snap_file *f, const char *name,
		     struct error *err);

#endif
