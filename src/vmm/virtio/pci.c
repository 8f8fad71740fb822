// SPDX-License-Identifier: MIT
/*
 * Virtio over PCI, modern interface (virtio 1.2, section 4.1): the
 * capabilities, the common configuration registers with feature
 * negotiation and the device status state machine (2.1, 3.1), the ISR,
 * notifications through ioeventfds, and interrupts through MSI-X.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "../../common/log.h"
#include "../devices/msix.h"
#include "../devices/state.h"
#include "virtio_pci.h"

struct virtio_pci_queue {
	struct virtio_pci *vp;
	unsigned int index;
	struct virtq vq;
	uint16_t max;
	uint16_t size;
	uint16_t vector;
	bool enabled;
	uint64_t desc, driver, device;
	int efd;	     /* the notify eventfd: ioeventfd and bus writes both signal it */
	uint64_t bound_addr; /* where it is bound as an ioeventfd, 0 if nowhere */
	bool watched;	     /* on the I/O thread */
	bool resetting;	     /* queue_reset asked for, not yet done by the I/O thread */
};

struct virtio_pci {
	struct pci_device pci;
	struct virtio_device_info info;
	struct virtio_pci_host host;
	pthread_mutex_t lock; /* everything below; taken inside the PCI root's lock */

	uint64_t offered;  /* device features, transport bits included */
	uint64_t accepted; /* the driver's features */
	uint32_t dfselect, gfselect;
	uint16_t msix_config;
	uint16_t qsel;
	uint8_t status;
	uint8_t generation;
	uint8_t isr;
	/*
	 * Needs-reset warnings: a guest that breaks and resets the device in a
	 * loop must not flood the log, so at most VIRTIO_PCI_LOG_BURST per
	 * VIRTIO_PCI_LOG_WINDOW_S seconds; the rest go to debug and are counted.
	 */
	uint64_t log_window; /* start of the current window, monotonic seconds */
	unsigned int log_count;
	unsigned int log_suppressed;
	int pcicfg; /* offset of the PCI_CFG capability */

	/*
	 * Resets the driver asks for are done by the I/O thread (see
	 * virtio_pci.h): the register write only sets resetting (or a queue's)
	 * and signals reset_efd; reset_done wakes virtio_pci_settle().
	 */
	bool resetting;
	/*
	 * The same for the vCPU without the lock, which the I/O thread holds
	 * while the device drains: polling the status (what a driver does
	 * meanwhile) and writing 0 again never wait for it.
	 */
	_Atomic bool reset_pending;
	_Atomic uint8_t reset_status; /* what the status reads meanwhile */
	int reset_efd;
	bool reset_watched;
	pthread_cond_t reset_done;

	struct virtio_pci_queue *q; /* [info.num_queues] */
};

static uint64_t le_read(const uint8_t *p, uint32_t len)
{
	uint64_t v = 0;

	for (uint32_t i = 0; i < len; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void le_write(uint8_t *p, uint32_t len, uint64_t v)
{
	for (uint32_t i = 0; i < len; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static struct virtio_pci_queue *vp_selected(struct virtio_pci *vp)
{
	return vp->qsel < vp->info.num_queues ? &vp->q[vp->qsel] : NULL;
}

/* ---- interrupts (lock held) ---- */

/* Queue vectors go out through the vector's eventfd, the path an irqfd takes in KVM. */
static void vp_signal_vector(struct virtio_pci *vp, uint16_t vector)
{
	uint64_t one = 1;
	int fd;

	if (vector == VIRTIO_MSI_NO_VECTOR)
		return;
	fd = msix_vector_eventfd(&vp->pci, vector);
	if (fd >= 0 && write(fd, &one, sizeof(one)) == sizeof(one))
		return;
	msix_notify(&vp->pci, vector);
}

static void vp_config_interrupt(struct virtio_pci *vp)
{
	vp->isr |= VIRTIO_PCI_ISR_CONFIG;
	vp_signal_vector(vp, vp->msix_config);
}

static uint64_t vp_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec;
}

/* One warning if the window has room for it; *suppressed: how many were dropped before it. */
static bool vp_log_allowed(struct virtio_pci *vp, unsigned int *suppressed)
{
	uint64_t now = vp_now_s();

	if (now - vp->log_window >= VIRTIO_PCI_LOG_WINDOW_S) {
		vp->log_window = now;
		vp->log_count = 0;
	}
	if (vp->log_count >= VIRTIO_PCI_LOG_BURST) {
		vp->log_suppressed++;
		return false;
	}
	vp->log_count++;
	*suppressed = vp->log_suppressed;
	vp->log_suppressed = 0;
	return true;
}

void virtio_pci_needs_reset(struct virtio_pci *vp, const char *why)
{
	unsigned int dropped = 0;

	if (vp->status & VIRTIO_STATUS_DEVICE_NEEDS_RESET)
		return;
	if (!vp_log_allowed(vp, &dropped))
		log_debug("%s: %s; device needs reset", vp->info.name, why);
	else if (dropped)
		log_warn("%s: %s; device needs reset (%u earlier ones not logged)", vp->info.name,
			 why, dropped);
	else
		log_warn("%s: %s; device needs reset", vp->info.name, why);
	vp->status |= VIRTIO_STATUS_DEVICE_NEEDS_RESET;
	vp_config_interrupt(vp);
}

void virtio_pci_config_changed(struct virtio_pci *vp)
{
	vp->generation++;
	vp_config_interrupt(vp);
}

void virtio_pci_queue_used(struct virtio_pci *vp, unsigned int q)
{
	struct virtio_pci_queue *vq;

	if (q >= vp->info.num_queues)
		return;
	vq = &vp->q[q];
	if (!virtq_needs_notify(&vq->vq))
		return;
	vp->isr |= VIRTIO_PCI_ISR_QUEUE;
	vp_signal_vector(vp, vq->vector);
}

void virtio_pci_queue_kick(struct virtio_pci *vp, unsigned int q)
{
	uint64_t one = 1;

	if (q < vp->info.num_queues && write(vp->q[q].efd, &one, sizeof(one)) < 0 &&
	    errno != EAGAIN)
		log_warn("%s: queue %u kick: %s", vp->info.name, q, strerror(errno));
}

/* ---- reset ---- */

/* Wakes the I/O thread for a reset the driver asked for. */
static void vp_reset_request(struct virtio_pci *vp)
{
	uint64_t one = 1;

	if (write(vp->reset_efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("%s: reset request: %s", vp->info.name, strerror(errno));
}

static void vp_queue_reset(struct virtio_pci_queue *q)
{
	virtq_reset(&q->vq);
	q->size = q->max;
	q->vector = VIRTIO_MSI_NO_VECTOR;
	q->enabled = false;
	q->desc = q->driver = q->device = 0;
}

/* Back to the state after power-on: queues stopped, features and vectors forgotten. */
static void vp_reset(struct virtio_pci *vp)
{
	for (unsigned int i = 0; i < vp->info.num_queues; i++) {
		vp_queue_reset(&vp->q[i]);
		vp->q[i].resetting = false;
	}
	vp->accepted = 0;
	vp->dfselect = vp->gfselect = 0;
	vp->msix_config = VIRTIO_MSI_NO_VECTOR;
	vp->qsel = 0;
	vp->status = 0;
	vp->isr = 0;
	if (vp->info.ops->reset)
		vp->info.ops->reset(vp);
	/* Only now may the status read 0 (and a status read need the lock again). */
	vp->resetting = false;
	atomic_store(&vp->reset_pending, false);
	pthread_cond_broadcast(&vp->reset_done);
}

/* ---- device status (2.1, 3.1.1) ---- */

static bool vp_features_acceptable(struct virtio_pci *vp, uint8_t status)
{
	uint64_t f = vp->accepted;

	if (!(status & VIRTIO_STATUS_DRIVER))
		return false;
	if (f & ~vp->offered)
		return false;
	if (!(f & (1ULL << VIRTIO_F_VERSION_1)))
		return false;
	return !vp->info.ops->features_ok || vp->info.ops->features_ok(vp, f);
}

static void vp_kick_enabled(struct virtio_pci *vp)
{
	for (unsigned int i = 0; i < vp->info.num_queues; i++)
		if (vp->q[i].enabled)
			virtio_pci_queue_kick(vp, i);
}

static void vp_status_write(struct virtio_pci *vp, uint8_t val)
{
	uint8_t keep = vp->status & VIRTIO_STATUS_DEVICE_NEEDS_RESET;
	uint8_t old = vp->status & ~VIRTIO_STATUS_DEVICE_NEEDS_RESET;
	uint8_t new = val & ~VIRTIO_STATUS_DEVICE_NEEDS_RESET;
	uint8_t added = new & ~old;

	/*
	 * A reset drains disks and closes connections: the I/O thread does it
	 * and the status reads non-zero until it is done (4.1.4.3.2): what it
	 * read, or DEVICE_NEEDS_RESET if that was 0 (a driver's first reset).
	 * Writes while one is pending are coalesced, so a storm costs one at a
	 * time.
	 */
	if (val == 0) {
		if (!vp->resetting) {
			atomic_store(&vp->reset_status,
				     vp->status ? vp->status : VIRTIO_STATUS_DEVICE_NEEDS_RESET);
			vp->resetting = true;
			atomic_store(&vp->reset_pending, true);
			vp_reset_request(vp);
		}
		return;
	}
	if (old & ~new) {
		virtio_pci_needs_reset(vp, "driver cleared a status bit");
		return;
	}
	/* A refused feature set: FEATURES_OK stays clear and the driver sees it (3.1.1). */
	if ((added & VIRTIO_STATUS_FEATURES_OK) && !vp_features_acceptable(vp, new))
		new &= ~VIRTIO_STATUS_FEATURES_OK;
	if ((added & VIRTIO_STATUS_DRIVER_OK) && !(new &VIRTIO_STATUS_FEATURES_OK)) {
		vp->status = old | keep;
		virtio_pci_needs_reset(vp, "DRIVER_OK without FEATURES_OK");
		return;
	}
	vp->status = new | keep;
	/* Buffers made available before DRIVER_OK were not looked at: look now. */
	if (added & VIRTIO_STATUS_DRIVER_OK)
		vp_kick_enabled(vp);
}

/* ---- queues ---- */

static void vp_queue_enable(struct virtio_pci *vp, struct virtio_pci_queue *q, uint16_t val)
{
	struct virtq_config c;
	struct error err = {0};

	if (val != 1 || q->enabled)
		return; /* writing 0 is not allowed (4.1.4.3.2); we ignore it */
	if (!(vp->status & VIRTIO_STATUS_FEATURES_OK)) {
		virtio_pci_needs_reset(vp, "queue enabled before FEATURES_OK");
		return;
	}
	c = (struct virtq_config){.size = q->size,
				  .desc_gpa = q->desc,
				  .avail_gpa = q->driver,
				  .used_gpa = q->device,
				  .features = vp->accepted};
	if (virtq_configure(&q->vq, &c, &err)) {
		virtio_pci_needs_reset(vp, err.msg);
		return;
	}
	q->enabled = true;
	if (vp->status & VIRTIO_STATUS_DRIVER_OK)
		virtio_pci_queue_kick(vp, q->index);
}

/*
 * queue_reset (VIRTIO_F_RING_RESET, 4.1.4.3, 2.6.1): the queue stops,
 * forgets its rings, indices, size and vector and reads as disabled until
 * the driver enables it again; the other queues and the device status are
 * untouched. The reset is complete when the write returns, so queue_reset
 * reads back 0 at once: it reads 1 only while a reset is in progress, and
 * drivers (Linux among them) poll for 0.
 */
static void vp_queue_ring_reset(struct virtio_pci *vp, struct virtio_pci_queue *q, uint16_t val)
{
	if (val != 1 || !(vp->accepted & (1ULL << VIRTIO_F_RING_RESET)) || q->resetting)
		return;
	/* Like a device reset, done by the I/O thread: queue_reset reads 1 until then. */
	q->resetting = true;
	vp_reset_request(vp);
}

/* I/O thread, lock held: the resets the driver asked for since the last call. */
static void vp_finish_resets(struct virtio_pci *vp)
{
	if (vp->resetting) {
		vp_reset(vp);
		return;
	}
	for (unsigned int i = 0; i < vp->info.num_queues; i++) {
		struct virtio_pci_queue *q = &vp->q[i];

		if (!q->resetting)
			continue;
		vp_queue_reset(q);
		if (vp->info.ops->queue_reset)
			vp->info.ops->queue_reset(vp, q->index);
		q->resetting = false;
	}
	pthread_cond_broadcast(&vp->reset_done);
}

static bool vp_reset_pending(const struct virtio_pci *vp)
{
	if (vp->resetting)
		return true;
	for (unsigned int i = 0; i < vp->info.num_queues; i++)
		if (vp->q[i].resetting)
			return true;
	return false;
}

static void vp_set_half(uint64_t *reg, unsigned int half, uint32_t val)
{
	unsigned int shift = 32 * half;

	*reg = (*reg & ~(0xffffffffULL << shift)) | ((uint64_t)val << shift);
}

/* Vectors beyond the table read back as NO_VECTOR: the driver learns it failed (4.1.4.3). */
static uint16_t vp_vector(struct virtio_pci *vp, uint16_t v)
{
	return v < msix_nvectors(&vp->pci) ? v : VIRTIO_MSI_NO_VECTOR;
}

/* Ring addresses and size are fixed while the queue is enabled. */
static void vp_queue_write(struct virtio_pci *vp, uint32_t off, uint32_t val)
{
	struct virtio_pci_queue *q = vp_selected(vp);

	if (!q || q->resetting)
		return;
	if (off == VIRTIO_PCI_COMMON_Q_MSIX) {
		q->vector = vp_vector(vp, (uint16_t)val);
		return;
	}
	if (off == VIRTIO_PCI_COMMON_Q_ENABLE) {
		vp_queue_enable(vp, q, (uint16_t)val);
		return;
	}
	if (off == VIRTIO_PCI_COMMON_Q_RESET) {
		vp_queue_ring_reset(vp, q, (uint16_t)val);
		return;
	}
	if (q->enabled)
		return;
	switch (off) {
	case VIRTIO_PCI_COMMON_Q_SIZE:
		q->size = (uint16_t)val;
		break;
	case VIRTIO_PCI_COMMON_Q_DESCLO:
	case VIRTIO_PCI_COMMON_Q_DESCHI:
		vp_set_half(&q->desc, off == VIRTIO_PCI_COMMON_Q_DESCHI, val);
		break;
	case VIRTIO_PCI_COMMON_Q_AVAILLO:
	case VIRTIO_PCI_COMMON_Q_AVAILHI:
		vp_set_half(&q->driver, off == VIRTIO_PCI_COMMON_Q_AVAILHI, val);
		break;
	case VIRTIO_PCI_COMMON_Q_USEDLO:
	case VIRTIO_PCI_COMMON_Q_USEDHI:
		vp_set_half(&q->device, off == VIRTIO_PCI_COMMON_Q_USEDHI, val);
		break;
	}
}

/* ---- common configuration ---- */

/* Width of the register at off; fields are accessed at their natural width (4.1.3.1). */
static uint32_t vp_common_width(uint32_t off)
{
	switch (off) {
	case VIRTIO_PCI_COMMON_STATUS:
	case VIRTIO_PCI_COMMON_CFGGEN:
		return 1;
	case VIRTIO_PCI_COMMON_MSIX:
	case VIRTIO_PCI_COMMON_NUMQ:
	case VIRTIO_PCI_COMMON_Q_SELECT:
	case VIRTIO_PCI_COMMON_Q_SIZE:
	case VIRTIO_PCI_COMMON_Q_MSIX:
	case VIRTIO_PCI_COMMON_Q_ENABLE:
	case VIRTIO_PCI_COMMON_Q_NOFF:
	case VIRTIO_PCI_COMMON_Q_NDATA:
	case VIRTIO_PCI_COMMON_Q_RESET:
		return 2;
	default:
		return 4;
	}
}

static uint32_t vp_features_half(uint64_t f, uint32_t sel)
{
	return sel < 2 ? (uint32_t)(f >> (32 * sel)) : 0;
}

static void vp_common_queue_image(struct virtio_pci *vp, uint8_t *img)
{
	struct virtio_pci_queue *q = vp_selected(vp);

	le_write(img + VIRTIO_PCI_COMMON_Q_SELECT, 2, vp->qsel);
	le_write(img + VIRTIO_PCI_COMMON_Q_MSIX, 2, q ? q->vector : VIRTIO_MSI_NO_VECTOR);
	if (!q)
		return;
	le_write(img + VIRTIO_PCI_COMMON_Q_SIZE, 2, q->size);
	le_write(img + VIRTIO_PCI_COMMON_Q_ENABLE, 2, q->enabled);
	le_write(img + VIRTIO_PCI_COMMON_Q_NOFF, 2, q->index);
	le_write(img + VIRTIO_PCI_COMMON_Q_DESCLO, 8, q->desc);
	le_write(img + VIRTIO_PCI_COMMON_Q_AVAILLO, 8, q->driver);
	le_write(img + VIRTIO_PCI_COMMON_Q_USEDLO, 8, q->device);
	le_write(img + VIRTIO_PCI_COMMON_Q_RESET, 2, q->resetting);
}

/* The status the driver sees: never 0 while a reset is pending (see vp_status_write()). */
static uint8_t vp_status_shown(struct virtio_pci *vp)
{
	return vp->resetting ? atomic_load(&vp->reset_status) : vp->status;
}

/* The whole structure as the driver would see it now; reads take any slice of it. */
static void vp_common_image(struct virtio_pci *vp, uint8_t *img)
{
	memset(img, 0, VIRTIO_PCI_COMMON_SIZE);
	le_write(img + VIRTIO_PCI_COMMON_DFSELECT, 4, vp->dfselect);
	le_write(img + VIRTIO_PCI_COMMON_DF, 4, vp_features_half(vp->offered, vp->dfselect));
	le_write(img + VIRTIO_PCI_COMMON_GFSELECT, 4, vp->gfselect);
	le_write(img + VIRTIO_PCI_COMMON_GF, 4, vp_features_half(vp->accepted, vp->gfselect));
	le_write(img + VIRTIO_PCI_COMMON_MSIX, 2, vp->msix_config);
	le_write(img + VIRTIO_PCI_COMMON_NUMQ, 2, vp->info.num_queues);
	img[VIRTIO_PCI_COMMON_STATUS] = vp_status_shown(vp);
	img[VIRTIO_PCI_COMMON_CFGGEN] = vp->generation;
	vp_common_queue_image(vp, img);
}

static void vp_common_read(struct virtio_pci *vp, uint64_t off, uint8_t *data, uint32_t len)
{
	uint8_t img[VIRTIO_PCI_COMMON_SIZE];

	if (off >= VIRTIO_PCI_COMMON_SIZE || len > VIRTIO_PCI_COMMON_SIZE - off)
		return;
	vp_common_image(vp, img);
	memcpy(data, img + off, len);
}

static void vp_common_write(struct virtio_pci *vp, uint32_t off, uint32_t val)
{
	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT:
		vp->dfselect = val;
		break;
	case VIRTIO_PCI_COMMON_GFSELECT:
		vp->gfselect = val;
		break;
	case VIRTIO_PCI_COMMON_GF:
		/* Features are fixed once FEATURES_OK is set. */
		if (vp->gfselect < 2 && !(vp->status & VIRTIO_STATUS_FEATURES_OK))
			vp_set_half(&vp->accepted, vp->gfselect, val);
		break;
	case VIRTIO_PCI_COMMON_MSIX:
		vp->msix_config = vp_vector(vp, (uint16_t)val);
		break;
	case VIRTIO_PCI_COMMON_STATUS:
		vp_status_write(vp, (uint8_t)val);
		break;
	case VIRTIO_PCI_COMMON_Q_SELECT:
		vp->qsel = (uint16_t)val;
		break;
	default:
		vp_queue_write(vp, off, val);
	}
}

/* ---- the BAR ---- */

static bool vp_in(uint64_t off, uint32_t len, uint64_t start, uint64_t size)
{
	return off >= start && off - start < size && len <= size - (off - start);
}

static void vp_isr_read(struct virtio_pci *vp, uint8_t *data)
{
	/* Reading clears it (4.1.4.5). */
	data[0] = vp->isr;
	vp->isr = 0;
}

static void vp_bar_read_locked(struct virtio_pci *vp, uint64_t off, uint8_t *data, uint32_t len)
{
	if (vp_in(off, len, VIRTIO_PCI_COMMON_OFF, VIRTIO_PCI_COMMON_SIZE))
		vp_common_read(vp, off - VIRTIO_PCI_COMMON_OFF, data, len);
	else if (off == VIRTIO_PCI_ISR_OFF)
		vp_isr_read(vp, data);
	else if (vp_in(off, len, VIRTIO_PCI_DEVICE_OFF, vp->info.config_size) &&
		 vp->info.ops->config_read)
		vp->info.ops->config_read(vp, (uint32_t)(off - VIRTIO_PCI_DEVICE_OFF), data, len);
}

static void vp_notify_write(struct virtio_pci *vp, uint64_t off)
{
	uint64_t q = off / VIRTIO_PCI_NOTIFY_MULT_VAL;

	/* The slow path of a notification: the I/O thread does the work, as with an ioeventfd. */
	if (q < vp->info.num_queues)
		virtio_pci_queue_kick(vp, (unsigned int)q);
}

static void vp_bar_write_locked(struct virtio_pci *vp, uint64_t off, const uint8_t *data,
				uint32_t len)
{
	/*
	 * A driver that did not wait for the reset to end (4.1.4.3.2) is not
	 * heard until it has; notifications only kick a queue that is not live.
	 */
	if (vp->resetting && !vp_in(off, len, VIRTIO_PCI_NOTIFY_OFF,
				    (uint64_t)vp->info.num_queues * VIRTIO_PCI_NOTIFY_MULT_VAL))
		return;
	if (vp_in(off, len, VIRTIO_PCI_COMMON_OFF, VIRTIO_PCI_COMMON_SIZE)) {
		off -= VIRTIO_PCI_COMMON_OFF;
		if (vp_common_width((uint32_t)off) == len)
			vp_common_write(vp, (uint32_t)off, (uint32_t)le_read(data, len));
	} else if (vp_in(off, len, VIRTIO_PCI_DEVICE_OFF, vp->info.config_size)) {
		if (vp->info.ops->config_write)
			vp->info.ops->config_write(vp, (uint32_t)(off - VIRTIO_PCI_DEVICE_OFF),
						   data, len);
	} else if (vp_in(off, len, VIRTIO_PCI_NOTIFY_OFF,
			 (uint64_t)vp->info.num_queues * VIRTIO_PCI_NOTIFY_MULT_VAL)) {
		vp_notify_write(vp, off - VIRTIO_PCI_NOTIFY_OFF);
	}
}

/* The status byte while a reset is pending: answered without the lock (see reset_pending). */
static bool vp_status_access(struct virtio_pci *vp, uint64_t off, uint32_t len)
{
	return off == VIRTIO_PCI_COMMON_OFF + VIRTIO_PCI_COMMON_STATUS && len == 1 &&
	       atomic_load(&vp->reset_pending);
}

static void vp_bar_read(struct pci_device *dev, unsigned int bar, uint64_t off, uint8_t *data,
			uint32_t len)
{
	struct virtio_pci *vp = dev->opaque;

	if (bar != VIRTIO_PCI_BAR)
		return;
	if (vp_status_access(vp, off, len)) {
		data[0] = atomic_load(&vp->reset_status);
		return;
	}
	pthread_mutex_lock(&vp->lock);
	vp_bar_read_locked(vp, off, data, len);
	pthread_mutex_unlock(&vp->lock);
}

static void vp_bar_write(struct pci_device *dev, unsigned int bar, uint64_t off,
			 const uint8_t *data, uint32_t len)
{
	struct virtio_pci *vp = dev->opaque;

	if (bar != VIRTIO_PCI_BAR)
		return;
	/* Any status write is ignored until the reset is done: 0 again is coalesced. */
	if (vp_status_access(vp, off, len))
		return;
	pthread_mutex_lock(&vp->lock);
	vp_bar_write_locked(vp, off, data, len);
	pthread_mutex_unlock(&vp->lock);
}

/* ---- the PCI_CFG window (4.1.4.9): BAR accesses through config space ---- */

/* The window's target, if the driver set a valid one. */
static bool vp_window(struct virtio_pci *vp, uint64_t *off, uint32_t *len)
{
	uint32_t c = (uint32_t)vp->pcicfg;
	uint8_t bar = pci_config_get8(&vp->pci, c + VIRTIO_PCI_CAP_BAR);

	*off = pci_config_get32(&vp->pci, c + VIRTIO_PCI_CAP_OFFSET);
	*len = pci_config_get32(&vp->pci, c + VIRTIO_PCI_CAP_LENGTH);
	if (bar != VIRTIO_PCI_BAR || (*len != 1 && *len != 2 && *len != 4) || *off % *len)
		return false;
	return *off + *len <= VIRTIO_PCI_BAR_SIZE;
}

static bool vp_touches_window_data(struct virtio_pci *vp, uint32_t off, uint32_t len)
{
	uint32_t d = (uint32_t)vp->pcicfg + VIRTIO_PCI_CFG_DATA;

	return off < d + 4 && off + len > d;
}

/* Root lock held; MSI-X takes its own lock inside it, as through the BAR. */
static void vp_window_read(struct virtio_pci *vp, uint32_t off, uint8_t *data, uint32_t len)
{
	uint32_t d = (uint32_t)vp->pcicfg + VIRTIO_PCI_CFG_DATA;
	uint8_t buf[4] = {0};
	uint64_t boff;
	uint32_t blen;

	if (!vp_touches_window_data(vp, off, len) || !vp_window(vp, &boff, &blen))
		return;
	if (!(vp->pci.msix && msix_bar_read(vp->pci.msix, VIRTIO_PCI_BAR, boff, buf, blen))) {
		pthread_mutex_lock(&vp->lock);
		vp_bar_read_locked(vp, boff, buf, blen);
		pthread_mutex_unlock(&vp->lock);
	}
	for (uint32_t i = 0; i < len; i++)
		if (off + i >= d && off + i < d + 4)
			data[i] = buf[off + i - d];
}

static void vp_window_write(struct virtio_pci *vp, uint32_t off, uint32_t len)
{
	uint32_t d = (uint32_t)vp->pcicfg + VIRTIO_PCI_CFG_DATA;
	uint8_t buf[4];
	uint64_t boff;
	uint32_t blen;

	if (!vp_touches_window_data(vp, off, len) || !vp_window(vp, &boff, &blen))
		return;
	for (uint32_t i = 0; i < 4; i++)
		buf[i] = pci_config_get8(&vp->pci, d + i);
	if (vp->pci.msix && msix_bar_write(vp->pci.msix, VIRTIO_PCI_BAR, boff, buf, blen))
		return;
	pthread_mutex_lock(&vp->lock);
	vp_bar_write_locked(vp, boff, buf, blen);
	pthread_mutex_unlock(&vp->lock);
}

static void vp_config_read(struct pci_device *dev, uint32_t off, uint8_t *data, uint32_t len)
{
	vp_window_read(dev->opaque, off, data, len);
}

static void vp_config_write(struct pci_device *dev, uint32_t off, const uint8_t *data, uint32_t len)
{
	vp_window_write(dev->opaque, off, len);
}

/* ---- notifications: ioeventfds follow the BAR ---- */

static uint64_t vp_notify_addr(uint64_t bar, unsigned int q)
{
	return bar + VIRTIO_PCI_NOTIFY_OFF + (uint64_t)q * VIRTIO_PCI_NOTIFY_MULT_VAL;
}

static void vp_ioevent_unbind(struct virtio_pci *vp)
{
	const struct ioevent_sink *s = &vp->host.ioevent;

	for (unsigned int i = 0; i < vp->info.num_queues; i++) {
		struct virtio_pci_queue *q = &vp->q[i];

		if (q->bound_addr && s->ops)
			s->ops->deassign(s->ctx, q->bound_addr, 0, q->efd);
		q->bound_addr = 0;
	}
}

/* Length 0, datamatch off: any write to a queue's notify address is a notification. */
static void vp_ioevent_bind(struct virtio_pci *vp, uint64_t bar)
{
	const struct ioevent_sink *s = &vp->host.ioevent;

	if (!s->ops)
		return;
	for (unsigned int i = 0; i < vp->info.num_queues; i++) {
		struct virtio_pci_queue *q = &vp->q[i];
		uint64_t a = vp_notify_addr(bar, i);

		if (s->ops->assign(s->ctx, a, 0, q->efd) == 0)
			q->bound_addr = a;
	}
}

static void vp_bar_moved(struct pci_device *dev, unsigned int bar, uint64_t addr)
{
	struct virtio_pci *vp = dev->opaque;

	if (bar != VIRTIO_PCI_BAR)
		return;
	pthread_mutex_lock(&vp->lock);
	vp_ioevent_unbind(vp);
	if (addr)
		vp_ioevent_bind(vp, addr);
	pthread_mutex_unlock(&vp->lock);
}

static void vp_pci_reset(struct pci_device *dev)
{
	struct virtio_pci *vp = dev->opaque;

	pthread_mutex_lock(&vp->lock);
	vp_reset(vp);
	pthread_mutex_unlock(&vp->lock);
}

static const struct pci_device_ops vp_pci_ops = {
	.bar_read = vp_bar_read,
	.bar_write = vp_bar_write,
	.config_read = vp_config_read,
	.config_write = vp_config_write,
	.reset = vp_pci_reset,
	.bar_moved = vp_bar_moved,
};

/* ---- the I/O thread side ---- */

/* With vp->lock held. */
static bool vp_queue_live(const struct virtio_pci *vp, const struct virtio_pci_queue *q)
{
	/* Nothing is consumed before DRIVER_OK (3.1.1) or after NEEDS_RESET. */
	return (vp->status & (VIRTIO_STATUS_DRIVER_OK | VIRTIO_STATUS_DEVICE_NEEDS_RESET)) ==
		       VIRTIO_STATUS_DRIVER_OK &&
	       q->enabled && !q->resetting && !vp->resetting;
}

bool virtio_pci_with_queue(struct virtio_pci *vp, unsigned int q, virtio_pci_queue_fn fn, void *arg)
{
	bool live;

	if (q >= vp->info.num_queues)
		return false;
	pthread_mutex_lock(&vp->lock);
	live = vp_queue_live(vp, &vp->q[q]);
	if (live)
		fn(vp, q, &vp->q[q].vq, arg);
	pthread_mutex_unlock(&vp->lock);
	return live;
}

static void vp_queue_event(void *opaque, uint32_t events)
{
	struct virtio_pci_queue *q = opaque;
	struct virtio_pci *vp = q->vp;
	uint64_t count;

	if (read(q->efd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		log_warn("%s: queue %u eventfd: %s", vp->info.name, q->index, strerror(errno));
	pthread_mutex_lock(&vp->lock);
	if (vp_queue_live(vp, q))
		vp->info.ops->queue_notify(vp, q->index, &q->vq);
	pthread_mutex_unlock(&vp->lock);
}

static void vp_reset_event(void *opaque, uint32_t events)
{
	struct virtio_pci *vp = opaque;
	uint64_t count;

	if (read(vp->reset_efd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		log_warn("%s: reset eventfd: %s", vp->info.name, strerror(errno));
	pthread_mutex_lock(&vp->lock);
	vp_finish_resets(vp);
	pthread_mutex_unlock(&vp->lock);
}

static struct timespec vp_deadline(int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

int virtio_pci_settle(struct virtio_pci *vp, int timeout_ms)
{
	struct timespec until = vp_deadline(timeout_ms);
	int ret = 0;

	pthread_mutex_lock(&vp->lock);
	while (vp_reset_pending(vp) && ret != ETIMEDOUT)
		ret = pthread_cond_timedwait(&vp->reset_done, &vp->lock, &until);
	ret = vp_reset_pending(vp) ? -ETIMEDOUT : 0;
	pthread_mutex_unlock(&vp->lock);
	return ret;
}

/* ---- construction ---- */

static int vp_add_cap(struct virtio_pci *vp, uint8_t type, uint8_t len, uint32_t off, uint32_t size)
{
	int c = pci_add_capability(&vp->pci, PCI_CAP_ID_VNDR, len);

	if (c < 0)
		return c;
	pci_config_set8(&vp->pci, c + VIRTIO_PCI_CAP_LEN, len);
	pci_config_set8(&vp->pci, c + VIRTIO_PCI_CAP_CFG_TYPE, type);
	pci_config_set8(&vp->pci, c + VIRTIO_PCI_CAP_BAR, VIRTIO_PCI_BAR);
	pci_config_set32(&vp->pci, c + VIRTIO_PCI_CAP_OFFSET, off);
	pci_config_set32(&vp->pci, c + VIRTIO_PCI_CAP_LENGTH, size);
	return c;
}

static int vp_add_caps(struct virtio_pci *vp)
{
	uint32_t nsize = vp->info.num_queues * VIRTIO_PCI_NOTIFY_MULT_VAL;
	int c;

	if (vp_add_cap(vp, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_CAP_SIZE, VIRTIO_PCI_COMMON_OFF,
		       VIRTIO_PCI_COMMON_SIZE) < 0)
		return -ENOSPC;
	c = vp_add_cap(vp, VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_NOTIFY_CAP_SIZE,
		       VIRTIO_PCI_NOTIFY_OFF, nsize);
	if (c < 0)
		return c;
	pci_config_set32(&vp->pci, c + VIRTIO_PCI_NOTIFY_MULT, VIRTIO_PCI_NOTIFY_MULT_VAL);
	if (vp_add_cap(vp, VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_CAP_SIZE, VIRTIO_PCI_ISR_OFF, 1) < 0)
		return -ENOSPC;
	if (vp->info.config_size && vp_add_cap(vp, VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_CAP_SIZE,
					       VIRTIO_PCI_DEVICE_OFF, vp->info.config_size) < 0)
		return -ENOSPC;
	/* The window: bar, offset, length and data are the driver's to write. */
	c = vp_add_cap(vp, VIRTIO_PCI_CAP_PCI_CFG, VIRTIO_PCI_CFG_CAP_SIZE, 0, 0);
	if (c < 0)
		return c;
	pci_config_set8(&vp->pci, c + VIRTIO_PCI_CAP_BAR, 0);
	pci_config_set_wmask(&vp->pci, c + VIRTIO_PCI_CAP_BAR, 1, 0xff);
	pci_config_set_wmask(&vp->pci, c + VIRTIO_PCI_CAP_OFFSET, 8, ~0ULL);
	pci_config_set_wmask(&vp->pci, c + VIRTIO_PCI_CFG_DATA, 4, 0xffffffffULL);
	vp->pcicfg = c;
	return 0;
}

static int vp_check_info(const struct virtio_device_info *info, struct error *err)
{
	if (!info->ops || !info->ops->queue_notify)
		return error_set(err, EINVAL, "%s: no queue handler", info->name);
	if (!info->num_queues || info->num_queues > VIRTIO_PCI_MAX_QUEUES)
		return error_set(err, EINVAL, "%s: %u queues", info->name, info->num_queues);
	if (info->config_size > VIRTIO_PCI_DEVICE_MAX)
		return error_set(err, EINVAL, "%s: device configuration too large", info->name);
	for (unsigned int i = 0; i < info->num_queues; i++) {
		uint16_t m = info->queue_max[i];

		if (!m || (m & (m - 1)))
			return error_set(err, EINVAL, "%s: queue %u size %u is not a power of two",
					 info->name, i, m);
	}
	return 0;
}

/* The deadline of virtio_pci_settle() is on the monotonic clock, as everything here. */
static void vp_cond_init(pthread_cond_t *c)
{
	pthread_condattr_t a;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(c, &a);
	pthread_condattr_destroy(&a);
}

static int vp_init_queues(struct virtio_pci *vp, struct error *err)
{
	vp->reset_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (vp->reset_efd < 0)
		return error_set(err, errno, "%s: eventfd: %s", vp->info.name, strerror(errno));
	for (unsigned int i = 0; i < vp->info.num_queues; i++) {
		struct virtio_pci_queue *q = &vp->q[i];

		q->vp = vp;
		q->index = i;
		q->max = vp->info.queue_max[i];
		virtq_init(&q->vq, vp->host.mem);
		q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (q->efd < 0)
			return error_set(err, errno, "%s: eventfd: %s", vp->info.name,
					 strerror(errno));
	}
	return 0;
}

static int vp_init_pci(struct virtio_pci *vp, struct error *err)
{
	const struct virtio_device_info *info = &vp->info;
	struct pci_device *d = &vp->pci;
	int ret;

	pci_device_init(d, VIRTIO_PCI_VENDOR, VIRTIO_PCI_DEVICE_BASE + info->device_id,
			info->class_code, 1, VIRTIO_PCI_VENDOR,
			VIRTIO_PCI_SUBSYS_BASE + info->device_id);
	d->name = info->name;
	d->ops = &vp_pci_ops;
	d->opaque = vp;
	ret = pci_device_add_bar(d, VIRTIO_PCI_BAR, PCI_BAR_MEM64, VIRTIO_PCI_BAR_SIZE, false);
	if (!ret)
		ret = vp_add_caps(vp);
	if (!ret)
		ret = msix_init(d, VIRTIO_PCI_MSIX_VECTORS(info->num_queues), VIRTIO_PCI_BAR,
				VIRTIO_PCI_MSIX_TABLE_OFF, VIRTIO_PCI_BAR, VIRTIO_PCI_MSIX_PBA_OFF,
				&vp->host.msi);
	if (ret)
		return error_set(err, -ret, "%s: PCI function: %s", info->name, strerror(-ret));
	return 0;
}

struct virtio_pci *virtio_pci_create(const struct virtio_device_info *info,
				     const struct virtio_pci_host *host, struct error *err)
{
	struct virtio_pci *vp;

	if (vp_check_info(info, err))
		return NULL;
	vp = calloc(1, sizeof(*vp));
	if (vp)
		vp->q = calloc(info->num_queues, sizeof(*vp->q));
	if (!vp || !vp->q) {
		free(vp);
		error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&vp->lock, NULL);
	vp_cond_init(&vp->reset_done);
	vp->info = *info;
	vp->log_window = vp_now_s();
	vp->host = *host;
	vp->pcicfg = -1;
	vp->reset_efd = -1;
	for (unsigned int i = 0; i < info->num_queues; i++)
		vp->q[i].efd = -1;
	vp->offered = info->features | 1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_F_INDIRECT_DESC |
		      1ULL << VIRTIO_F_EVENT_IDX;
	/* Only a device that knows how to let go of one queue's requests can reset it alone. */
	if (info->ops->queue_reset)
		vp->offered |= 1ULL << VIRTIO_F_RING_RESET;
	if (vp_init_queues(vp, err) || vp_init_pci(vp, err)) {
		virtio_pci_destroy(vp);
		return NULL;
	}
	vp_reset(vp);
	return vp;
}

/* Handlers first: the root has no way to take a device back if they failed. */
int virtio_pci_register(struct virtio_pci *vp, struct pci_root *root, struct error *err)
{
	int ret = iothread_add_fd(vp->host.io, vp->reset_efd, EPOLLIN, vp_reset_event, vp);

	if (ret)
		return error_set(err, -ret, "%s: I/O thread: %s", vp->info.name, strerror(-ret));
	vp->reset_watched = true;
	for (unsigned int i = 0; i < vp->info.num_queues; i++) {
		struct virtio_pci_queue *q = &vp->q[i];

		ret = iothread_add_fd(vp->host.io, q->efd, EPOLLIN, vp_queue_event, q);
		if (ret)
			return error_set(err, -ret, "%s: I/O thread: %s", vp->info.name,
					 strerror(-ret));
		q->watched = true;
	}
	ret = pci_register_device(root, &vp->pci);
	if (ret < 0)
		return error_set(err, -ret, "%s: no room on the PCI bus: %s", vp->info.name,
				 strerror(-ret));
	return 0;
}

void virtio_pci_destroy(struct virtio_pci *vp)
{
	if (!vp)
		return;
	vp_ioevent_unbind(vp);
	for (unsigned int i = 0; i < vp->info.num_queues; i++) {
		struct virtio_pci_queue *q = &vp->q[i];

		if (q->watched)
			iothread_remove_fd(vp->host.io, q->efd);
		if (q->efd >= 0)
			close(q->efd);
	}
	if (vp->reset_watched)
		iothread_remove_fd(vp->host.io, vp->reset_efd);
	if (vp->reset_efd >= 0)
		close(vp->reset_efd);
	msix_destroy(&vp->pci);
	pthread_cond_destroy(&vp->reset_done);
	pthread_mutex_destroy(&vp->lock);
	free(vp->q);
	free(vp);
}

struct pci_device *virtio_pci_pci(struct virtio_pci *vp)
{
	return &vp->pci;
}

void *virtio_pci_opaque(struct virtio_pci *vp)
{
	return vp->info.opaque;
}

uint64_t virtio_pci_features(struct virtio_pci *vp)
{
	return vp->accepted;
}

uint8_t virtio_pci_status(struct virtio_pci *vp)
{
	uint8_t s;

	pthread_mutex_lock(&vp->lock);
	s = vp->status;
	pthread_mutex_unlock(&vp->lock);
	return s;
}

/* ---- snapshot ---- */

/*
 * Section layout (version 1), little-endian:
 *   u16 num_queues, u64 offered (both must match the device as created),
 *   u64 accepted, u32 dfselect, u32 gfselect, u16 msix_config, u16 qsel,
 *   u8 status, u8 generation, u8 isr,
 *   per queue: u16 size, u16 vector, u8 enabled, u64 desc, u64 driver,
 *              u64 device, u16 last_avail_idx, u16 used_idx,
 *   then the device's own fields (ops->save).
 */
struct vp_queue_state {
	uint16_t size, vector;
	uint8_t enabled;
	uint64_t desc, driver, device;
	struct virtq_state idx;
};

struct vp_state {
	uint16_t num_queues;
	uint64_t offered, accepted;
	uint32_t dfselect, gfselect;
	uint16_t msix_config, qsel;
	uint8_t status, generation, isr;
	struct vp_queue_state q[VIRTIO_PCI_MAX_QUEUES];
};

static void vp_queue_save(struct virtio_pci *vp, struct virtio_pci_queue *q, struct snap_writer *w)
{
	struct virtq_state st = {0};

	if (q->enabled) {
		virtq_get_state(&q->vq, &st);
		/* Chains the device holds unused are handed out again after restore. */
		if (vp->info.ops->held)
			st.last_avail_idx -= vp->info.ops->held(vp, q->index);
	}
	snap_put_u16(w, q->size);
	snap_put_u16(w, q->vector);
	snap_put_u8(w, q->enabled);
	snap_put_u64(w, q->desc);
	snap_put_u64(w, q->driver);
	snap_put_u64(w, q->device);
	snap_put_u16(w, st.last_avail_idx);
	snap_put_u16(w, st.used_idx);
}

int virtio_pci_save(struct virtio_pci *vp, struct snap_writer *w, const char *name)
{
	pthread_mutex_lock(&vp->lock);
	/* Half a reset cannot be saved: virtio_pci_settle() before pausing finishes it. */
	if (vp_reset_pending(vp)) {
		pthread_mutex_unlock(&vp->lock);
		log_error("%s: a reset is still in progress; its state cannot be saved",
			  vp->info.name);
		return -EBUSY;
	}
	snap_begin(w, name, VIRTIO_PCI_STATE_VERSION);
	snap_put_u16(w, (uint16_t)vp->info.num_queues);
	snap_put_u64(w, vp->offered);
	snap_put_u64(w, vp->accepted);
	snap_put_u32(w, vp->dfselect);
	snap_put_u32(w, vp->gfselect);
	snap_put_u16(w, vp->msix_config);
	snap_put_u16(w, vp->qsel);
	snap_put_u8(w, vp->status);
	snap_put_u8(w, vp->generation);
	snap_put_u8(w, vp->isr);
	for (unsigned int i = 0; i < vp->info.num_queues; i++)
		vp_queue_save(vp, &vp->q[i], w);
	if (vp->info.ops->save)
		vp->info.ops->save(vp, w);
	snap_end(w);
	pthread_mutex_unlock(&vp->lock);
	return w->failed ? -ENOMEM : 0;
}

static void vp_state_read(struct snap_section *s, struct vp_state *st, unsigned int nq)
{
	st->num_queues = snap_get_u16(s);
	st->offered = snap_get_u64(s);
	st->accepted = snap_get_u64(s);
	st->dfselect = snap_get_u32(s);
	st->gfselect = snap_get_u32(s);
	st->msix_config = snap_get_u16(s);
	st->qsel = snap_get_u16(s);
	st->status = snap_get_u8(s);
	st->generation = snap_get_u8(s);
	st->isr = snap_get_u8(s);
	if (st->num_queues != nq)
		return; /* refused by the check, before the queues mean anything */
	for (unsigned int i = 0; i < nq; i++) {
		struct vp_queue_state *q = &st->q[i];

		q->size = snap_get_u16(s);
		q->vector = snap_get_u16(s);
		q->enabled = snap_get_u8(s);
		q->desc = snap_get_u64(s);
		q->driver = snap_get_u64(s);
		q->device = snap_get_u64(s);
		q->idx.last_avail_idx = snap_get_u16(s);
		q->idx.used_idx = snap_get_u16(s);
	}
}

static bool vp_vector_ok(struct virtio_pci *vp, uint16_t v)
{
	return v == VIRTIO_MSI_NO_VECTOR || v < msix_nvectors(&vp->pci);
}

/*
 * Only what the registers themselves cannot produce is refused: a disabled
 * queue may hold any size and addresses the driver wrote, and an enabled
 * one is checked again by virtq_configure() when it is loaded.
 */
static int vp_state_check_queue(struct virtio_pci *vp, const struct vp_state *st, unsigned int i,
				const char *name, struct error *err)
{
	const struct vp_queue_state *q = &st->q[i];

	if (!vp_vector_ok(vp, q->vector))
		return error_set(err, EINVAL, "state section '%s': queue %u: invalid vector %u",
				 name, i, q->vector);
	if (q->enabled > 1 || (q->enabled && !(st->status & VIRTIO_STATUS_FEATURES_OK)))
		return error_set(err, EINVAL,
				 "state section '%s': queue %u: invalid enable %u (status 0x%x)",
				 name, i, q->enabled, st->status);
	if (q->enabled && (!q->size || (q->size & (q->size - 1))))
		return error_set(err, EINVAL,
				 "state section '%s': queue %u: size %u is not a power of two",
				 name, i, q->size);
	return 0;
}

/* Features are the driver's to write until FEATURES_OK; from then on they are the negotiated set.
 */
static int vp_state_check(struct virtio_pci *vp, const struct vp_state *st, const char *name,
			  struct error *err)
{
	bool negotiated = st->status & VIRTIO_STATUS_FEATURES_OK;

	if (st->num_queues != vp->info.num_queues)
		return error_set(err, EINVAL, "state section '%s': %u queues, the device has %u",
				 name, st->num_queues, vp->info.num_queues);
	if (st->offered != vp->offered)
		return error_set(err, EINVAL,
				 "state section '%s': device features 0x%llx, the device offers "
				 "0x%llx",
				 name, (unsigned long long)st->offered,
				 (unsigned long long)vp->offered);
	if (negotiated &&
	    ((st->accepted & ~vp->offered) || !(st->accepted & (1ULL << VIRTIO_F_VERSION_1))))
		return state_bad(err, name, "driver features", st->accepted);
	if ((st->status & VIRTIO_STATUS_DRIVER_OK) && !negotiated)
		return state_bad(err, name, "device status", st->status);
	if (!vp_vector_ok(vp, st->msix_config))
		return state_bad(err, name, "config vector", st->msix_config);
	if (st->isr & ~(VIRTIO_PCI_ISR_QUEUE | VIRTIO_PCI_ISR_CONFIG))
		return state_bad(err, name, "ISR", st->isr);
	for (unsigned int i = 0; i < vp->info.num_queues; i++)
		if (vp_state_check_queue(vp, st, i, name, err))
			return -EINVAL;
	return 0;
}

/* The queue as the driver left it; its rings are checked against guest memory again. */
static int vp_queue_load(struct virtio_pci *vp, struct virtio_pci_queue *q,
			 const struct vp_queue_state *st, const char *name, struct error *err)
{
	struct virtq_config c = {.size = st->size,
				 .desc_gpa = st->desc,
				 .avail_gpa = st->driver,
				 .used_gpa = st->device,
				 .features = vp->accepted};

	q->size = st->size;
	q->vector = st->vector;
	q->desc = st->desc;
	q->driver = st->driver;
	q->device = st->device;
	if (!st->enabled)
		return 0;
	if (virtq_configure(&q->vq, &c, err) || virtq_set_state(&q->vq, &st->idx, err))
		return error_wrap(err, "state section '%s': queue %u", name, q->index);
	q->enabled = true;
	return 0;
}

static int vp_state_apply(struct virtio_pci *vp, const struct vp_state *st, const char *name,
			  struct error *err)
{
	vp->accepted = st->accepted;
	vp->dfselect = st->dfselect;
	vp->gfselect = st->gfselect;
	vp->msix_config = st->msix_config;
	vp->qsel = st->qsel;
	vp->status = st->status;
	vp->generation = st->generation;
	vp->isr = st->isr;
	for (unsigned int i = 0; i < vp->info.num_queues; i++)
		if (vp_queue_load(vp, &vp->q[i], &st->q[i], name, err))
			return -EINVAL;
	return 0;
}

static int vp_restore_locked(struct virtio_pci *vp, struct snap_section *s, const char *name,
			     struct error *err)
{
	struct vp_state *st = calloc(1, sizeof(*st));
	int ret;

	if (!st)
		return error_set(err, ENOMEM, "state section '%s': out of memory", name);
	vp_state_read(s, st, vp->info.num_queues);
	if (s->overrun)
		ret = snap_section_done(s, err); /* truncated: the fields mean nothing */
	else
		ret = vp_state_check(vp, st, name, err);
	/* From here on a failure resets the device: it is half loaded. */
	if (!ret)
		ret = vp_state_apply(vp, st, name, err);
	if (!ret && vp->info.ops->restore)
		ret = vp->info.ops->restore(vp, s, name, err);
	if (!ret)
		ret = snap_section_done(s, err);
	free(st);
	return ret;
}

int virtio_pci_restore(struct virtio_pci *vp, const struct snap_file *f, const char *name,
		       struct error *err)
{
	struct snap_section s;
	int ret = snap_find(f, name, VIRTIO_PCI_STATE_VERSION, &s, err);

	if (ret)
		return ret;
	if (s.version < 1)
		return error_set(err, EPROTO, "state section '%s': unknown version %u", name,
				 s.version);
	pthread_mutex_lock(&vp->lock);
	vp_reset(vp);
	ret = vp_restore_locked(vp, &s, name, err);
	if (ret)
		vp_reset(vp);
	else if ((vp->status & (VIRTIO_STATUS_DRIVER_OK | VIRTIO_STATUS_DEVICE_NEEDS_RESET)) ==
		 VIRTIO_STATUS_DRIVER_OK)
		vp_kick_enabled(vp);
	pthread_mutex_unlock(&vp->lock);
	return ret;
}
