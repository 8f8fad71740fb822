// SPDX-License-Identifier: MIT
/*
 * MSI-X (PCI Local Bus specification 3.0, section 6.8.2): capability,
 * vector table and pending-bit array. Everything the guest writes is
 * checked here: table and PBA offsets and sizes are the VMM's, vector
 * indices come from the device model and are bounds-checked, and only
 * the architected bits of each register are writable.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "msix.h"

struct msix_vector {
	uint32_t addr_lo, addr_hi, data, ctrl;
	bool pending;
	/* What the sink was last told, so it only hears about changes. */
	bool told_masked;
	struct msi_msg told;
};

struct msix {
	pthread_mutex_t lock; /* everything below; taken inside the PCI root's lock */
	struct pci_device *dev;
	unsigned int nvec;
	uint32_t cap; /* offset of the capability in config space */
	unsigned int table_bar, pba_bar;
	uint64_t table_off, table_len, pba_off, pba_len;
	bool enabled, fmask;
	struct msi_sink sink;
	struct msix_vector *v;
};

static bool msix_region_ok(const struct pci_device *dev, unsigned int bar, uint64_t off,
			   uint64_t len)
{
	const struct pci_bar *b;

	if (bar >= PCI_NUM_BARS || (off & 7))
		return false;
	b = &dev->bars[bar];
	if (b->type != PCI_BAR_MEM32 && b->type != PCI_BAR_MEM64)
		return false;
	return off < b->size && len <= b->size - off;
}

static int msix_check(const struct pci_device *dev, unsigned int nvec, unsigned int table_bar,
		      uint32_t table_off, unsigned int pba_bar, uint32_t pba_off,
		      const struct msi_sink *sink)
{
	uint64_t tlen = (uint64_t)nvec * MSIX_ENTRY_SIZE, plen = ((nvec + 63) / 64) * 8ULL;

	if (!nvec || nvec > MSIX_MAX_VECTORS || dev->root || dev->msix)
		return -EINVAL;
	if (!sink || !sink->ops || !sink->ops->send || !sink->ops->update)
		return -EINVAL;
	if (!msix_region_ok(dev, table_bar, table_off, tlen) ||
	    !msix_region_ok(dev, pba_bar, pba_off, plen))
		return -EINVAL;
	if (table_bar == pba_bar && table_off < pba_off + plen && pba_off < table_off + tlen)
		return -EINVAL;
	return 0;
}

static void msix_write_cap(struct msix *m)
{
	struct pci_device *dev = m->dev;

	pci_config_set16(dev, m->cap + MSIX_CAP_CTRL, (uint16_t)(m->nvec - 1));
	pci_config_set_wmask(dev, m->cap + MSIX_CAP_CTRL, 2, MSIX_CTRL_MASKALL | MSIX_CTRL_ENABLE);
	pci_config_set32(dev, m->cap + MSIX_CAP_TABLE, (uint32_t)m->table_off | m->table_bar);
	pci_config_set32(dev, m->cap + MSIX_CAP_PBA, (uint32_t)m->pba_off | m->pba_bar);
}

int msix_init(struct pci_device *dev, unsigned int nvec, unsigned int table_bar, uint32_t table_off,
	      unsigned int pba_bar, uint32_t pba_off, const struct msi_sink *sink)
{
	struct msix *m;
	int ret = msix_check(dev, nvec, table_bar, table_off, pba_bar, pba_off, sink);

	if (ret)
		return ret;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->v = calloc(nvec, sizeof(*m->v));
	ret = m->v ? pci_add_capability(dev, PCI_CAP_ID_MSIX, MSIX_CAP_LEN) : -ENOMEM;
	if (ret < 0) {
		free(m->v);
		free(m);
		return ret;
	}
	pthread_mutex_init(&m->lock, NULL);
	m->dev = dev;
	m->nvec = nvec;
	m->cap = (uint32_t)ret;
	m->table_bar = table_bar;
	m->table_off = table_off;
	m->table_len = (uint64_t)nvec * MSIX_ENTRY_SIZE;
	m->pba_bar = pba_bar;
	m->pba_off = pba_off;
	m->pba_len = ((nvec + 63) / 64) * 8ULL;
	m->sink = *sink;
	for (unsigned int i = 0; i < nvec; i++) {
		m->v[i].ctrl = MSIX_ENTRY_MASKED;
		m->v[i].told_masked = true;
	}
	msix_write_cap(m);
	dev->msix = m;
	return 0;
}

/* ---- vector state (lock held) ---- */

static bool msix_masked(const struct msix *m, const struct msix_vector *v)
{
	return !m->enabled || m->fmask || (v->ctrl & MSIX_ENTRY_MASKED);
}

static struct msi_msg msix_msg(const struct msix_vector *v)
{
	return (struct msi_msg){.address = (uint64_t)v->addr_hi << 32 | v->addr_lo,
				.data = v->data};
}

/* An event the sink's eventfd collected while the vector was masked. */
static void msix_collect(struct msix *m, unsigned int i)
{
	if (m->sink.ops->take_pending && m->sink.ops->take_pending(m->sink.ctx, i))
		m->v[i].pending = true;
}

/*
 * Tells the sink what changed for vector i and, when it becomes unmasked
 * with its pending bit set, delivers the held message (section 6.8.2.9).
 */
static void msix_sync(struct msix *m, unsigned int i)
{
	struct msix_vector *v = &m->v[i];
	struct msi_msg msg = msix_msg(v);

	if (msix_masked(m, v)) {
		if (!v->told_masked)
			m->sink.ops->update(m->sink.ctx, i, &msg, true);
		v->told_masked = true;
		return;
	}
	if (v->told_masked || v->told.address != msg.address || v->told.data != msg.data) {
		if (v->told_masked)
			msix_collect(m, i);
		m->sink.ops->update(m->sink.ctx, i, &msg, false);
		v->told_masked = false;
		v->told = msg;
	}
	if (v->pending) {
		v->pending = false;
		m->sink.ops->send(m->sink.ctx, i, &msg);
	}
}

static void msix_sync_all(struct msix *m)
{
	for (unsigned int i = 0; i < m->nvec; i++)
		msix_sync(m, i);
}

/* ---- the table and PBA in the BAR ---- */

static uint32_t *msix_field(struct msix_vector *v, unsigned int field)
{
	uint32_t *f[4] = {&v->addr_lo, &v->addr_hi, &v->data, &v->ctrl};

	return f[field & 3];
}

/* Where off..off+len falls: 1 inside region, 0 outside, -1 partly (a bad access). */
static int msix_within(uint64_t off, uint32_t len, uint64_t start, uint64_t rlen)
{
	if (off >= start + rlen || off + len <= start)
		return 0;
	return off >= start && off + len <= start + rlen ? 1 : -1;
}

static void msix_table_read(struct msix *m, uint64_t off, uint8_t *data, uint32_t len)
{
	for (uint32_t i = 0; i < len; i++) {
		uint64_t o = off + i;
		struct msix_vector *v = &m->v[o / MSIX_ENTRY_SIZE];

		data[i] = (uint8_t)(*msix_field(v, (o % MSIX_ENTRY_SIZE) / 4) >> (8 * (o % 4)));
	}
}

/* Only the architected bits: address bits 1:0 are reserved, as are control bits 31:1. */
static void msix_entry_store(struct msix_vector *v, unsigned int field, unsigned int byte,
			     uint8_t val)
{
	uint32_t *f = msix_field(v, field);
	uint32_t shift = 8 * byte;

	*f = (*f & ~(0xffu << shift)) | ((uint32_t)val << shift);
	v->addr_lo &= ~3u;
	v->ctrl &= MSIX_ENTRY_MASKED;
}

static void msix_table_write(struct msix *m, uint64_t off, const uint8_t *data, uint32_t len)
{
	unsigned int first = (unsigned int)(off / MSIX_ENTRY_SIZE);
	unsigned int last = (unsigned int)((off + len - 1) / MSIX_ENTRY_SIZE);

	for (uint32_t i = 0; i < len; i++) {
		uint64_t o = off + i;

		msix_entry_store(&m->v[o / MSIX_ENTRY_SIZE], (o % MSIX_ENTRY_SIZE) / 4, o % 4,
				 data[i]);
	}
	for (unsigned int e = first; e <= last; e++)
		msix_sync(m, e);
}

static void msix_pba_read(struct msix *m, uint64_t off, uint8_t *data, uint32_t len)
{
	for (uint32_t i = 0; i < len; i++) {
		uint8_t byte = 0;

		for (unsigned int bit = 0; bit < 8; bit++) {
			unsigned int vec = (unsigned int)((off + i) * 8 + bit);

			if (vec >= m->nvec)
				break;
			if (msix_masked(m, &m->v[vec]))
				msix_collect(m, vec);
			if (m->v[vec].pending)
				byte |= 1u << bit;
		}
		data[i] = byte;
	}
}

bool msix_bar_read(struct msix *m, unsigned int bar, uint64_t off, uint8_t *data, uint32_t len)
{
	int t = bar == m->table_bar ? msix_within(off, len, m->table_off, m->table_len) : 0;
	int p = bar == m->pba_bar ? msix_within(off, len, m->pba_off, m->pba_len) : 0;

	if (!t && !p)
		return false;
	memset(data, 0xff, len);
	pthread_mutex_lock(&m->lock);
	if (t > 0)
		msix_table_read(m, off - m->table_off, data, len);
	else if (p > 0)
		msix_pba_read(m, off - m->pba_off, data, len);
	pthread_mutex_unlock(&m->lock);
	return true;
}

bool msix_bar_write(struct msix *m, unsigned int bar, uint64_t off, const uint8_t *data,
		    uint32_t len)
{
	int t = bar == m->table_bar ? msix_within(off, len, m->table_off, m->table_len) : 0;
	int p = bar == m->pba_bar ? msix_within(off, len, m->pba_off, m->pba_len) : 0;

	if (!t && !p)
		return false;
	/* The PBA is read-only; accesses straddling a region's edge are dropped. */
	if (t > 0 && len) {
		pthread_mutex_lock(&m->lock);
		msix_table_write(m, off - m->table_off, data, len);
		pthread_mutex_unlock(&m->lock);
	}
	return true;
}

/* ---- capability, notification, lifecycle ---- */

void msix_config_written(struct msix *m, uint32_t off, uint32_t len)
{
	uint16_t ctrl;

	if (off >= m->cap + MSIX_CAP_CTRL + 2 || off + len <= m->cap + MSIX_CAP_CTRL)
		return;
	ctrl = pci_config_get16(m->dev, m->cap + MSIX_CAP_CTRL);
	pthread_mutex_lock(&m->lock);
	m->enabled = ctrl & MSIX_CTRL_ENABLE;
	m->fmask = ctrl & MSIX_CTRL_MASKALL;
	msix_sync_all(m);
	pthread_mutex_unlock(&m->lock);
}

int msix_notify(struct pci_device *dev, unsigned int vector)
{
	struct msix *m = dev->msix;
	struct msix_vector *v;
	struct msi_msg msg;
	int ret = 0;

	if (!m || vector >= m->nvec)
		return -EINVAL;
	pthread_mutex_lock(&m->lock);
	v = &m->v[vector];
	if (!m->enabled) {
		ret = -EAGAIN;
	} else if (msix_masked(m, v)) {
		v->pending = true;
		ret = 1;
	} else {
		msg = msix_msg(v);
		m->sink.ops->send(m->sink.ctx, vector, &msg);
	}
	pthread_mutex_unlock(&m->lock);
	return ret;
}

int msix_vector_eventfd(struct pci_device *dev, unsigned int vector)
{
	struct msix *m = dev->msix;
	int fd;

	if (!m || vector >= m->nvec)
		return -EINVAL;
	if (!m->sink.ops->eventfd)
		return -EOPNOTSUPP;
	pthread_mutex_lock(&m->lock);
	fd = m->sink.ops->eventfd(m->sink.ctx, vector);
	pthread_mutex_unlock(&m->lock);
	return fd;
}

bool msix_enabled(struct pci_device *dev)
{
	struct msix *m = dev->msix;
	bool on;

	if (!m)
		return false;
	pthread_mutex_lock(&m->lock);
	on = m->enabled;
	pthread_mutex_unlock(&m->lock);
	return on;
}

unsigned int msix_nvectors(const struct pci_device *dev)
{
	return dev->msix ? dev->msix->nvec : 0;
}

void msix_reset(struct msix *m)
{
	pthread_mutex_lock(&m->lock);
	m->enabled = false;
	m->fmask = false;
	for (unsigned int i = 0; i < m->nvec; i++) {
		struct msix_vector *v = &m->v[i];

		v->addr_lo = v->addr_hi = v->data = 0;
		v->ctrl = MSIX_ENTRY_MASKED;
		msix_sync(m, i);
		/* Events raised before the reset must not reach the new guest. */
		msix_collect(m, i);
		v->pending = false;
	}
	pthread_mutex_unlock(&m->lock);
}

void msix_destroy(struct pci_device *dev)
{
	struct msix *m = dev->msix;

	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	m->enabled = false;
	msix_sync_all(m);
	pthread_mutex_unlock(&m->lock);
	pthread_mutex_destroy(&m->lock);
	free(m->v);
	free(m);
	dev->msix = NULL;
}

/* ---- snapshot ---- */

void msix_save_vectors(struct msix *m, struct msix_vector_state *out)
{
	pthread_mutex_lock(&m->lock);
	for (unsigned int i = 0; i < m->nvec; i++) {
		struct msix_vector *v = &m->v[i];

		/* An event the irqfd held back while masked is a pending bit too. */
		if (msix_masked(m, v))
			msix_collect(m, i);
		out[i] = (struct msix_vector_state){.addr_lo = v->addr_lo,
						    .addr_hi = v->addr_hi,
						    .data = v->data,
						    .ctrl = v->ctrl,
						    .pending = v->pending};
	}
	pthread_mutex_unlock(&m->lock);
}

int msix_check_vectors(const struct msix_vector_state *in, unsigned int nvec, const char *section,
		       struct error *err)
{
	for (unsigned int i = 0; i < nvec; i++) {
		if (in[i].addr_lo & 3)
			return error_set(
				err, EINVAL,
				"state section '%s': MSI-X vector %u: invalid address 0x%x",
				section, i, in[i].addr_lo);
		if (in[i].ctrl & ~MSIX_ENTRY_MASKED)
			return error_set(
				err, EINVAL,
				"state section '%s': MSI-X vector %u: invalid control 0x%x",
				section, i, in[i].ctrl);
	}
	return 0;
}

void msix_load_vectors(struct msix *m, const struct msix_vector_state *in)
{
	uint16_t ctrl = pci_config_get16(m->dev, m->cap + MSIX_CAP_CTRL);

	pthread_mutex_lock(&m->lock);
	m->enabled = ctrl & MSIX_CTRL_ENABLE;
	m->fmask = ctrl & MSIX_CTRL_MASKALL;
	for (unsigned int i = 0; i < m->nvec; i++) {
		struct msix_vector *v = &m->v[i];

		v->addr_lo = in[i].addr_lo;
		v->addr_hi = in[i].addr_hi;
		v->data = in[i].data;
		v->ctrl = in[i].ctrl;
		/* Whatever the sink collected for the fresh device is not the guest's. */
		if (msix_masked(m, v))
			msix_collect(m, i);
		v->pending = in[i].pending;
	}
	msix_sync_all(m);
	pthread_mutex_unlock(&m->lock);
}
