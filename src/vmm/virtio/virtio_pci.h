/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_VIRTIO_PCI_H
#define BUNSHIN_VMM_VIRTIO_PCI_H

#include <stdbool.h>
#include <stdint.h>

#include "../devices/ioevent.h"
#include "../devices/iothread.h"
#include "../devices/msi.h"
#include "../devices/pci.h"
#include "../snapshot/snapfile.h"
#include "virtq.h"

/*
 * The virtio 1.2 PCI transport (section 4.1), modern interface only:
 * vendor 0x1af4, device 0x1040 + virtio device ID, revision 1. One 64-bit
 * non-prefetchable memory BAR (BAR 0) holds every structure:
 *
 *   0x0000  common configuration (struct virtio_pci_common_cfg)
 *   0x1000  ISR status (one byte, read to clear)
 *   0x2000  device-specific configuration (when the device has one)
 *   0x3000  notifications: queue n at 0x3000 + 4 * n (notify_off_multiplier 4)
 *   0x4000  MSI-X table, one vector per queue plus one for config changes
 *   0x6000  MSI-X pending-bit array
 *
 * found through vendor capabilities (COMMON, NOTIFY, ISR, DEVICE, PCI_CFG).
 *
 * Threads: common and device configuration accesses arrive on vCPU threads;
 * queue work runs on the I/O thread, started by the queue's eventfd, which
 * is bound as an ioeventfd to the queue's notify address (and signalled by
 * hand when a write reaches the bus instead). One mutex per device
 * serialises both, so a device reset never races a notify handler.
 *
 * Resets the driver asks for (device_status 0, queue_reset 1) run on the
 * I/O thread too: they drain disk requests and close connections, which a
 * guest must not make its own vCPU wait for, nor the vCPU's seccomp filter
 * allow. The register write only records the request and signals an
 * eventfd; until the I/O thread is done, device_status reads non-zero
 * (the old status, or DEVICE_NEEDS_RESET if it was 0) and queue_reset
 * reads 1, as 4.1.4.3.2 has drivers poll for, no queue is served, and
 * every other write is ignored. Requests while one is pending are
 * coalesced, so a driver writing 0 in a loop costs one reset at a time.
 * Resets from the VMM itself (reboot, restore) are done at once.
 *
 * A driver that breaks the protocol (bad ring addresses, a malformed ring,
 * a status bit cleared) gets DEVICE_NEEDS_RESET and a configuration change
 * interrupt; the device then processes nothing until it is reset. Each such
 * fault is logged as one warning naming it, rate-limited per device
 * (VIRTIO_PCI_LOG_BURST per VIRTIO_PCI_LOG_WINDOW_S), so a guest cannot
 * flood the log by breaking and resetting the device in a loop.
 */

/* Device status (2.1) */
#define VIRTIO_STATUS_ACKNOWLEDGE	 0x01
#define VIRTIO_STATUS_DRIVER		 0x02
#define VIRTIO_STATUS_DRIVER_OK		 0x04
#define VIRTIO_STATUS_FEATURES_OK	 0x08
#define VIRTIO_STATUS_DEVICE_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED		 0x80

/* Reserved feature bits (6) */
#define VIRTIO_F_VERSION_1  32
#define VIRTIO_F_RING_RESET 40 /* queue_reset: one queue reset alone (4.1.4.3) */

#define VIRTIO_PCI_VENDOR      0x1af4
#define VIRTIO_PCI_DEVICE_BASE 0x1040
#define VIRTIO_PCI_SUBSYS_BASE 0x40 /* non-transitional: subsystem ID 0x40 or higher */
#define VIRTIO_MSI_NO_VECTOR   0xffff
#define VIRTIO_PCI_MAX_QUEUES  64
/* At most this many needs-reset warnings per device and window; the rest are debug. */
#define VIRTIO_PCI_LOG_BURST	32
#define VIRTIO_PCI_LOG_WINDOW_S 60
/* MSI-X vectors of a device with nq queues: one each, plus configuration changes. */
#define VIRTIO_PCI_MSIX_VECTORS(nq) ((nq) + 1)

/* Capability types (4.1.4) */
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG	  3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4
#define VIRTIO_PCI_CAP_PCI_CFG	  5

/* struct virtio_pci_cap field offsets */
#define VIRTIO_PCI_CAP_LEN	   2
#define VIRTIO_PCI_CAP_CFG_TYPE	   3
#define VIRTIO_PCI_CAP_BAR	   4
#define VIRTIO_PCI_CAP_ID	   5
#define VIRTIO_PCI_CAP_OFFSET	   8
#define VIRTIO_PCI_CAP_LENGTH	   12
#define VIRTIO_PCI_CAP_SIZE	   16
#define VIRTIO_PCI_NOTIFY_MULT	   16 /* notify_off_multiplier, in the NOTIFY capability */
#define VIRTIO_PCI_NOTIFY_CAP_SIZE 20
#define VIRTIO_PCI_CFG_DATA	   16 /* pci_cfg_data, in the PCI_CFG capability */
#define VIRTIO_PCI_CFG_CAP_SIZE	   20

/* Common configuration registers (4.1.4.3) */
#define VIRTIO_PCI_COMMON_DFSELECT  0x00
#define VIRTIO_PCI_COMMON_DF	    0x04
#define VIRTIO_PCI_COMMON_GFSELECT  0x08
#define VIRTIO_PCI_COMMON_GF	    0x0c
#define VIRTIO_PCI_COMMON_MSIX	    0x10
#define VIRTIO_PCI_COMMON_NUMQ	    0x12
#define VIRTIO_PCI_COMMON_STATUS    0x14
#define VIRTIO_PCI_COMMON_CFGGEN    0x15
#define VIRTIO_PCI_COMMON_Q_SELECT  0x16
#define VIRTIO_PCI_COMMON_Q_SIZE    0x18
#define VIRTIO_PCI_COMMON_Q_MSIX    0x1a
#define VIRTIO_PCI_COMMON_Q_ENABLE  0x1c
#define VIRTIO_PCI_COMMON_Q_NOFF    0x1e
#define VIRTIO_PCI_COMMON_Q_DESCLO  0x20
#define VIRTIO_PCI_COMMON_Q_DESCHI  0x24
#define VIRTIO_PCI_COMMON_Q_AVAILLO 0x28
#define VIRTIO_PCI_COMMON_Q_AVAILHI 0x2c
#define VIRTIO_PCI_COMMON_Q_USEDLO  0x30
#define VIRTIO_PCI_COMMON_Q_USEDHI  0x34
#define VIRTIO_PCI_COMMON_Q_NDATA   0x38
#define VIRTIO_PCI_COMMON_Q_RESET   0x3a
#define VIRTIO_PCI_COMMON_SIZE	    0x3c

/* BAR 0 layout */
#define VIRTIO_PCI_BAR		   0
#define VIRTIO_PCI_BAR_SIZE	   0x8000
#define VIRTIO_PCI_COMMON_OFF	   0x0000
#define VIRTIO_PCI_ISR_OFF	   0x1000
#define VIRTIO_PCI_DEVICE_OFF	   0x2000
#define VIRTIO_PCI_DEVICE_MAX	   0x1000
#define VIRTIO_PCI_NOTIFY_OFF	   0x3000
#define VIRTIO_PCI_NOTIFY_MULT_VAL 4
#define VIRTIO_PCI_MSIX_TABLE_OFF  0x4000
#define VIRTIO_PCI_MSIX_PBA_OFF	   0x6000

#define VIRTIO_PCI_ISR_QUEUE  0x1
#define VIRTIO_PCI_ISR_CONFIG 0x2

struct virtio_pci;

/*
 * What a device model (blk, net, rng, ...) gives the transport. Every
 * callback runs with the device's mutex held.
 */
struct virtio_device_ops {
	/* Optional: refuse a feature set at FEATURES_OK (false keeps FEATURES_OK clear). */
	bool (*features_ok)(struct virtio_pci *vp, uint64_t features);
	/* Optional: device configuration, [off, off + len) inside config_size. */
	void (*config_read)(struct virtio_pci *vp, uint32_t off, uint8_t *data, uint32_t len);
	void (*config_write)(struct virtio_pci *vp, uint32_t off, const uint8_t *data,
			     uint32_t len);
	/*
	 * The driver notified queue q (or the device asked for a rerun with
	 * virtio_pci_queue_kick()); I/O thread. Only called while the driver
	 * is up (DRIVER_OK), the device needs no reset and q is enabled.
	 */
	void (*queue_notify)(struct virtio_pci *vp, unsigned int q, struct virtq *vq);
	/*
	 * Optional: the device was reset (status 0, on the I/O thread; or a PCI
	 * reset or restore, on the thread doing it); queues are already reset.
	 */
	void (*reset)(struct virtio_pci *vp);
	/*
	 * Optional: queue q alone was reset through queue_reset
	 * (VIRTIO_F_RING_RESET) and is already reset; let what is in flight
	 * on it finish without pushing it, the driver is reclaiming the ring.
	 * The transport offers VIRTIO_F_RING_RESET only to devices that have it.
	 */
	void (*queue_reset)(struct virtio_pci *vp, unsigned int q);

	/*
	 * Snapshot, all optional. The machine is paused and drained when it
	 * saves: nothing is in flight to a backend. held: how many chains the
	 * device popped from q and keeps unused (receive buffers waiting for
	 * data); they must be the last ones popped. The saved queue is
	 * rewound past them, so the restored device pops them again instead
	 * of losing them. save appends the device's own fields to the
	 * transport's section; restore reads them back after the transport
	 * state is in place, checks every value (an error resets the device)
	 * and re-applies what lives outside the device (tap offloads, ...).
	 */
	uint16_t (*held)(struct virtio_pci *vp, unsigned int q);
	void (*save)(struct virtio_pci *vp, struct snap_writer *w);
	int (*restore)(struct virtio_pci *vp, struct snap_section *s, const char *name,
		       struct error *err);
};

struct virtio_device_info {
	const char *name;
	uint16_t device_id;	   /* virtio device ID (5) */
	uint32_t class_code;	   /* PCI class, base:sub:prog-if */
	uint64_t features;	   /* device-specific bits; the transport adds its own */
	uint32_t config_size;	   /* bytes of device configuration, 0 for none */
	unsigned int num_queues;   /* 1 .. VIRTIO_PCI_MAX_QUEUES */
	const uint16_t *queue_max; /* [num_queues] maximum sizes, powers of two */
	const struct virtio_device_ops *ops;
	void *opaque;
};

/* What the transport needs from the machine. */
struct virtio_pci_host {
	const struct gmem *mem;
	struct iothread *io;
	struct msi_sink msi;
	struct ioevent_sink ioevent; /* ops NULL: notifications only through the bus */
};

/* Builds the device (capabilities, BAR, MSI-X, queue eventfds); not yet on a bus. */
struct virtio_pci *virtio_pci_create(const struct virtio_device_info *info,
				     const struct virtio_pci_host *host, struct error *err);
/* Puts it on the root (BAR assigned, ioeventfds bound) and its queues on the I/O thread. */
int virtio_pci_register(struct virtio_pci *vp, struct pci_root *root, struct error *err);
/*
 * After the I/O thread stopped (or while paused) and after the root is
 * destroyed: drops the ioeventfds, handlers, MSI-X and the device.
 */
void virtio_pci_destroy(struct virtio_pci *vp);

struct pci_device *virtio_pci_pci(struct virtio_pci *vp);
void *virtio_pci_opaque(struct virtio_pci *vp);
/* Negotiated features (valid once FEATURES_OK is set). */
uint64_t virtio_pci_features(struct virtio_pci *vp);
uint8_t virtio_pci_status(struct virtio_pci *vp);

/* For device models, with the device's mutex held (inside their callbacks). */

/* After pushing to q: interrupts the driver if it asked for it. */
void virtio_pci_queue_used(struct virtio_pci *vp, unsigned int q);
/*
 * Runs q's notify handler again later: work left over after a bounded batch.
 * Safe from any thread while the device exists (it only signals the queue's
 * eventfd), so work that starts elsewhere can hand itself to the I/O thread.
 */
void virtio_pci_queue_kick(struct virtio_pci *vp, unsigned int q);
/*
 * For work that finishes on the I/O thread outside the queue's own handler
 * (a backend completion): runs fn with the device's mutex held, as a
 * queue_notify callback is, if queue q may be used right now (DRIVER_OK,
 * no NEEDS_RESET, q enabled) and returns true; else returns false without
 * calling it. Saves the round trip of kicking the queue handler.
 */
typedef void (*virtio_pci_queue_fn)(struct virtio_pci *vp, unsigned int q, struct virtq *vq,
				    void *arg);
bool virtio_pci_with_queue(struct virtio_pci *vp, unsigned int q, virtio_pci_queue_fn fn,
			   void *arg);

/* The driver broke the protocol: DEVICE_NEEDS_RESET, a config interrupt, one (rate-limited)
 * warning. */
void virtio_pci_needs_reset(struct virtio_pci *vp, const char *why);
/* Device configuration changed: new generation and a config interrupt. */
void virtio_pci_config_changed(struct virtio_pci *vp);

/*
 * Waits up to timeout_ms for resets the driver asked for to be done by the
 * I/O thread; -ETIMEDOUT if one is still pending. For pausing: after the
 * vCPUs stopped (no new requests) and before the I/O thread is parked, so
 * a snapshot never holds half a reset (virtio_pci_save() refuses one).
 */
int virtio_pci_settle(struct virtio_pci *vp, int timeout_ms);

/*
 * Snapshot of the transport: status, negotiated features, the feature
 * selectors, the config vector and generation, the ISR, and per queue its
 * size, vector, enable, ring addresses and indices; then the device's own
 * fields (ops->save). Config space, BAR and MSI-X table belong to the PCI
 * root's section (pci_root_save()).
 *
 * Precondition: the machine is paused and the device drained, so no
 * request is in flight (virtio_blk_drain() for disks).
 *
 * Restore loads a device created with the same configuration, after
 * pci_root_restore(): every queue is configured at its saved addresses
 * (checked against guest memory by virtq_configure()) with its saved
 * indices, and enabled queues are kicked once so buffers made available
 * around the snapshot are looked at. On any error the device is reset and
 * err names the section and the field.
 */
#define VIRTIO_PCI_STATE_VERSION 1
int virtio_pci_save(struct virtio_pci *vp, struct snap_writer *w, const char *name);
int virtio_pci_restore(struct virtio_pci *vp, const struct snap_file *f, const char *name,
		       struct error *err);

#endif
