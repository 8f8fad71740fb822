/* SPDX-License-Identifier: MIT */
/*
 * virtio 1.x over PCI (virtio 1.2, 4.1): the vendor capabilities locate the
 * common, notification, ISR and device configuration structures inside the
 * BARs; split virtqueues (2.7) live in the guest image's .bss (identity
 * mapped, so virtual == physical). Completion by MSI-X (one vector per
 * queue, delivered to this CPU's LAPIC; the CPU halts through the system
 * call gate until it arrives) or by polling (virtio_poll=1).
 *
 * Options: virtio_poll=1; virtio_features=WORD,... where WORD is indirect,
 * event_idx (accept only those listed), -indirect, -event_idx (decline) or
 * none. By default both are accepted when offered.
 */
#include "virtio.h"

/* Common configuration structure (4.1.4.3). */
#define CC_DFSELECT	     0
#define CC_DF		     4
#define CC_GFSELECT	     8
#define CC_GF		     12
#define CC_MSIX		     16
#define CC_NUMQ		     18
#define CC_STATUS	     20
#define CC_CFGGEN	     21
#define CC_Q_SELECT	     22
#define CC_Q_SIZE	     24
#define CC_Q_MSIX	     26
#define CC_Q_ENABLE	     28
#define CC_Q_NOFF	     30
#define CC_Q_DESC	     32
#define CC_Q_DRIVER	     40
#define CC_Q_DEVICE	     48
#define VIRTIO_MSI_NO_VECTOR 0xffff

/* Vendor capability cfg_type (4.1.4). */
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG	  3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4

#define TIMEOUT_S 5

/* One device at a time: each scenario drives one device, so queues share this memory. */
static uint8_t vq_mem[VIRTIO_MAX_QUEUES][4096] __attribute__((aligned(4096)));
static struct vring_desc vq_indirect[VIRTIO_MAX_QUEUES][VQ_MAX_SIZE][VQ_MAX_SEGS]
	__attribute__((aligned(16)));

static inline uint8_t rd8(uint64_t a)
{
	return *(volatile uint8_t *)a;
}
static inline uint16_t rd16(uint64_t a)
{
	return *(volatile uint16_t *)a;
}
static inline uint32_t rd32(uint64_t a)
{
	return *(volatile uint32_t *)a;
}
static inline void wr8(uint64_t a, uint8_t v)
{
	*(volatile uint8_t *)a = v;
}
static inline void wr16(uint64_t a, uint16_t v)
{
	*(volatile uint16_t *)a = v;
}
static inline void wr32(uint64_t a, uint32_t v)
{
	*(volatile uint32_t *)a = v;
}
static inline void wr64(uint64_t a, uint64_t v)
{
	wr32(a, (uint32_t)v);
	wr32(a + 4, (uint32_t)(v >> 32));
}
static inline void mb(void)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static bool fail(struct virtio_dev *d, const char *reason)
{
	if (!d->fail)
		d->fail = reason;
	return false;
}

bool virtio_has(const struct virtio_dev *d, int bit)
{
	return (d->features >> bit) & 1;
}

static uint8_t status(const struct virtio_dev *d)
{
	return rd8(d->common + CC_STATUS);
}

static void set_status(struct virtio_dev *d, uint8_t bits)
{
	wr8(d->common + CC_STATUS, status(d) | bits);
}

void virtio_reset(struct virtio_dev *d)
{
	uint64_t deadline = rdtsc() + tsc_hz();

	wr8(d->common + CC_STATUS, 0);
	/* 4.1.4.3.2: the reset is complete once device_status reads 0. */
	while (rd8(d->common + CC_STATUS) != 0 && (int64_t)(rdtsc() - deadline) < 0)
		cpu_relax();
}

static bool map_cap(struct virtio_dev *d, uint8_t cap, uint64_t *out)
{
	uint8_t bar = pci_read8(d->pci, cap + 4);
	uint32_t off = pci_read32(d->pci, cap + 8);
	uint64_t base;

	if (bar > 5)
		return false;
	base = pci_bar_map(d->pci, bar);
	if (!base) {
		const struct pci_bar *b = &d->pci->bar[bar];
		return fail(d, b->addr >= (4ULL << 30) ? "bar-above-4g" : "bar-unassigned");
	}
	*out = base + off;
	return true;
}

bool virtio_find(struct virtio_dev *d, uint16_t type, uint32_t nth)
{
	memset(d, 0, sizeof(*d));
	d->type = type;
	pci_init();
	for (uint32_t i = 0; i < g_pci.ndevs && !d->pci; i++) {
		struct pci_dev *p = &g_pci.devs[i];
		bool modern = p->device == 0x1040 + type;
		bool trans = p->device >= 0x1000 && p->device <= 0x103f && p->subsys_id == type;
		if (p->vendor == VIRTIO_VENDOR && (modern || trans) && nth-- == 0)
			d->pci = p;
	}
	if (!d->pci)
		return fail(d, "no-device");

	pci_write16(d->pci, PCI_COMMAND,
		    pci_read16(d->pci, PCI_COMMAND) | PCI_CMD_MEM | PCI_CMD_MASTER |
			    PCI_CMD_INTX_OFF);

	/* 4.1.4: the first capability of each type is the one to use. */
	for (uint8_t cap = pci_find_cap(d->pci, PCI_CAP_ID_VENDOR, 0); cap;
	     cap = pci_find_cap(d->pci, PCI_CAP_ID_VENDOR, cap)) {
		uint8_t cfg_type = pci_read8(d->pci, cap + 3);
		uint64_t *slot = NULL;

		if (cfg_type == VIRTIO_PCI_CAP_COMMON_CFG)
			slot = &d->common;
		else if (cfg_type == VIRTIO_PCI_CAP_NOTIFY_CFG)
			slot = &d->notify_base;
		else if (cfg_type == VIRTIO_PCI_CAP_ISR_CFG)
			slot = &d->isr;
		else if (cfg_type == VIRTIO_PCI_CAP_DEVICE_CFG)
			slot = &d->device_cfg;
		if (!slot || *slot)
			continue;
		if (!map_cap(d, cap, slot))
			continue;
		if (cfg_type == VIRTIO_PCI_CAP_NOTIFY_CFG)
			d->notify_mul = pci_read32(d->pci, cap + 16);
	}
	if (d->fail)
		return false;
	if (!d->common || !d->notify_base)
		return fail(d, "no-virtio-caps");

	d->msix_cap = pci_find_cap(d->pci, PCI_CAP_ID_MSIX, 0);
	if (d->msix_cap) {
		uint16_t ctrl = pci_read16(d->pci, d->msix_cap + 2);
		uint32_t tbl = pci_read32(d->pci, d->msix_cap + 4);
		uint64_t base = pci_bar_map(d->pci, tbl & 7);
		d->msix_count = (ctrl & 0x7ff) + 1;
		if (base)
			d->msix_table = base + (tbl & ~7u);
	}
	d->use_irq = d->msix_table != 0;
	uint64_t poll;
	if (opt_u64("virtio_poll", 10, &poll) && poll)
		d->use_irq = false;
	return true;
}

/* The optional ring features the command line lets us accept. */
static uint64_t allowed_ring_features(void)
{
	uint64_t all = 1ULL << VIRTIO_F_INDIRECT_DESC | 1ULL << VIRTIO_F_EVENT_IDX;
	uint64_t on = 0, off = 0;
	bool positive = false;
	const char *v;
	size_t n, i = 0;

	if (!opt_get("virtio_features", &v, &n))
		return all;
	while (i < n) {
		size_t j = i;
		while (j < n && v[j] != ',')
			j++;
		const char *w = v + i;
		size_t wl = j - i;
		bool neg = wl && w[0] == '-';
		uint64_t bit = 0;
		if (neg) {
			w++;
			wl--;
		}
		if (wl == 8 && memcmp(w, "indirect", 8) == 0)
			bit = 1ULL << VIRTIO_F_INDIRECT_DESC;
		else if (wl == 9 && memcmp(w, "event_idx", 9) == 0)
			bit = 1ULL << VIRTIO_F_EVENT_IDX;
		else if (wl == 4 && memcmp(w, "none", 4) == 0)
			positive = true;
		if (neg) {
			off |= bit;
		} else if (bit) {
			on |= bit;
			positive = true;
		}
		i = j + 1;
	}
	return ((positive ? on : all) & ~off);
}

bool virtio_init(struct virtio_dev *d, uint64_t wanted)
{
	return virtio_init_ring(d, wanted, allowed_ring_features());
}

bool virtio_init_ring(struct virtio_dev *d, uint64_t wanted, uint64_t ring)
{
	uint64_t accept;

	virtio_reset(d);
	if (status(d) != 0)
		return fail(d, "reset");
	set_status(d, VIRTIO_S_ACKNOWLEDGE);
	set_status(d, VIRTIO_S_DRIVER);

	wr32(d->common + CC_DFSELECT, 0);
	d->dev_features = rd32(d->common + CC_DF);
	wr32(d->common + CC_DFSELECT, 1);
	d->dev_features |= (uint64_t)rd32(d->common + CC_DF) << 32;
	if (!((d->dev_features >> VIRTIO_F_VERSION_1) & 1)) {
		set_status(d, VIRTIO_S_FAILED);
		return fail(d, "no-version-1");
	}
	accept = (wanted | 1ULL << VIRTIO_F_VERSION_1 | ring) & d->dev_features;
	d->features = accept;
	wr32(d->common + CC_GFSELECT, 0);
	wr32(d->common + CC_GF, (uint32_t)accept);
	wr32(d->common + CC_GFSELECT, 1);
	wr32(d->common + CC_GF, (uint32_t)(accept >> 32));
	set_status(d, VIRTIO_S_FEATURES_OK);
	if (!(status(d) & VIRTIO_S_FEATURES_OK)) {
		set_status(d, VIRTIO_S_FAILED);
		return fail(d, "features-rejected");
	}
	d->nqueues = rd16(d->common + CC_NUMQ);

	if (d->msix_cap) {
		uint16_t ctrl = pci_read16(d->pci, d->msix_cap + 2);
		/* enable, function mask off; entries stay masked until programmed */
		pci_write16(d->pci, d->msix_cap + 2, (ctrl | 0x8000) & ~0x4000);
	}
	if (d->use_irq) {
		lapic_enable();
		if (d->msix_count < 2) {
			d->use_irq = false;
		} else {
			uint64_t e = d->msix_table;
			wr32(e + 0, 0xfee00000u | cpu_apic_id() << 12);
			wr32(e + 4, 0);
			wr32(e + 8, VEC_VIRTIO_CFG);
			wr32(e + 12, 0);
		}
	}
	wr16(d->common + CC_MSIX, d->use_irq ? 0 : VIRTIO_MSI_NO_VECTOR);
	if (d->use_irq && rd16(d->common + CC_MSIX) != 0)
		return fail(d, "msix-vector");
	return true;
}

bool virtio_setup_queue(struct virtio_dev *d, uint16_t qi)
{
	struct virtq *q = &d->vq[qi];
	uint16_t size, max;
	uint8_t *mem = vq_mem[qi];

	if (qi >= VIRTIO_MAX_QUEUES || qi >= d->nqueues)
		return fail(d, "no-queue");
	wr16(d->common + CC_Q_SELECT, qi);
	max = rd16(d->common + CC_Q_SIZE);
	if (max == 0 || rd16(d->common + CC_Q_ENABLE))
		return fail(d, "no-queue");
	for (size = VQ_MAX_SIZE; size > max; size >>= 1)
		;
	memset(mem, 0, sizeof(vq_mem[qi]));
	memset(q, 0, sizeof(*q));
	q->index = qi;
	q->size = size;
	q->desc = (volatile struct vring_desc *)mem;
	q->avail = (volatile uint16_t *)(mem + 1024);
	q->used = (volatile uint16_t *)(mem + 2048);
	q->indirect = vq_indirect[qi];
	q->nfree = size;
	for (uint16_t i = 0; i < size; i++)
		q->desc[i].next = i + 1;

	wr16(d->common + CC_Q_SIZE, size);
	wr64(d->common + CC_Q_DESC, (uint64_t)q->desc);
	wr64(d->common + CC_Q_DRIVER, (uint64_t)q->avail);
	wr64(d->common + CC_Q_DEVICE, (uint64_t)q->used);

	q->msix = VIRTIO_MSI_NO_VECTOR;
	q->vector = VEC_VIRTIO_Q0 + qi;
	if (d->use_irq && d->msix_count >= 2 + qi) {
		uint64_t e = d->msix_table + 16 * (1 + qi);
		wr32(e + 0, 0xfee00000u | cpu_apic_id() << 12);
		wr32(e + 4, 0);
		wr32(e + 8, q->vector);
		wr32(e + 12, 0); /* unmasked */
		q->msix = 1 + qi;
	}
	wr16(d->common + CC_Q_MSIX, q->msix);
	if (rd16(d->common + CC_Q_MSIX) != q->msix)
		return fail(d, "msix-vector");
	if (q->msix == VIRTIO_MSI_NO_VECTOR)
		q->avail[0] = VRING_AVAIL_F_NO_INTERRUPT;
	q->notify = d->notify_base + (uint64_t)rd16(d->common + CC_Q_NOFF) * d->notify_mul;
	wr16(d->common + CC_Q_ENABLE, 1);
	return true;
}

bool virtio_driver_ok(struct virtio_dev *d)
{
	set_status(d, VIRTIO_S_DRIVER_OK);
	if (status(d) & VIRTIO_S_DEVICE_NEEDS_RESET)
		return fail(d, "needs-reset");
	return true;
}

uint8_t virtio_cfg8(const struct virtio_dev *d, uint32_t off)
{
	return rd8(d->device_cfg + off);
}

uint16_t virtio_cfg16(const struct virtio_dev *d, uint32_t off)
{
	return rd16(d->device_cfg + off);
}

uint32_t virtio_cfg32(const struct virtio_dev *d, uint32_t off)
{
	return rd32(d->device_cfg + off);
}

uint64_t virtio_cfg64(const struct virtio_dev *d, uint32_t off)
{
	uint8_t gen;
	uint64_t v;

	/* 4.1.4.3.1 / 2.5.1: retry while config_generation changes. */
	do {
		gen = rd8(d->common + CC_CFGGEN);
		v = rd32(d->device_cfg + off) | (uint64_t)rd32(d->device_cfg + off + 4) << 32;
	} while (gen != rd8(d->common + CC_CFGGEN));
	return v;
}

uint32_t virtio_irqs(const struct virtio_dev *d)
{
	uint32_t n = g_irq_count[VEC_VIRTIO_CFG];

	for (uint32_t i = 0; i < ARRAY_SIZE(d->vq); i++)
		n += g_irq_count[VEC_VIRTIO_Q0 + i];
	return n;
}

/* vring_need_event (2.7.10): did new_idx pass event since old? */
static bool need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

int virtio_submit(struct virtio_dev *d, uint16_t qi, const struct vbuf *bufs, int n)
{
	struct virtq *q = &d->vq[qi];
	bool indirect = n > 1 && virtio_has(d, VIRTIO_F_INDIRECT_DESC);
	uint16_t head;

	if (qi >= VIRTIO_MAX_QUEUES || n < 1 || n > VQ_MAX_SEGS || q->size == 0)
		return fail(d, "bad-request"), -1;
	if (q->nfree < (indirect ? 1 : n))
		return fail(d, "queue-full"), -1;
	head = q->free_head;
	if (indirect) {
		struct vring_desc *t = q->indirect[head];
		for (int i = 0; i < n; i++) {
			t[i].addr = (uint64_t)bufs[i].addr;
			t[i].len = bufs[i].len;
			t[i].flags = (bufs[i].device_writes ? VRING_DESC_F_WRITE : 0) |
				     (i + 1 < n ? VRING_DESC_F_NEXT : 0);
			t[i].next = i + 1;
		}
		q->free_head = q->desc[head].next;
		q->desc[head].addr = (uint64_t)t;
		q->desc[head].len = n * sizeof(struct vring_desc);
		q->desc[head].flags = VRING_DESC_F_INDIRECT;
		q->nfree--;
	} else {
		uint16_t i = head, last = head;
		for (int k = 0; k < n; k++) {
			last = i;
			q->desc[i].addr = (uint64_t)bufs[k].addr;
			q->desc[i].len = bufs[k].len;
			q->desc[i].flags = (bufs[k].device_writes ? VRING_DESC_F_WRITE : 0) |
					   (k + 1 < n ? VRING_DESC_F_NEXT : 0);
			i = q->desc[i].next;
		}
		q->free_head = q->desc[last].next;
		q->nfree -= n;
	}
	/* used_event: interrupt us as soon as the device uses anything. */
	if (virtio_has(d, VIRTIO_F_EVENT_IDX))
		q->avail[2 + q->size] = q->last_used;
	q->avail[2 + q->avail_shadow % q->size] = head;
	mb();
	q->avail_shadow++;
	q->avail[1] = q->avail_shadow;
	mb();
	return head;
}

void virtio_kick(struct virtio_dev *d, uint16_t qi)
{
	struct virtq *q = &d->vq[qi];
	uint16_t old = q->kicked;

	mb();
	q->kicked = q->avail_shadow;
	if (old == q->avail_shadow)
		return;
	if (virtio_has(d, VIRTIO_F_EVENT_IDX)
		    ? need_event(q->used[2 + 4 * q->size], q->avail_shadow, old)
		    : !(q->used[0] & VRING_USED_F_NO_NOTIFY))
		wr16(q->notify, qi);
}

/* Puts the chain starting at head back on the free list. */
static void free_chain(struct virtq *q, uint16_t head)
{
	uint16_t i = head, cnt = 1;

	if (q->desc[head].flags & VRING_DESC_F_INDIRECT) {
		q->desc[head].flags = 0;
	} else {
		while ((q->desc[i].flags & VRING_DESC_F_NEXT) && cnt < q->size) {
			i = q->desc[i].next;
			cnt++;
		}
	}
	q->desc[i].next = q->free_head;
	q->free_head = head;
	q->nfree += cnt;
}

int virtio_get_used(struct virtio_dev *d, uint16_t qi, uint32_t *len)
{
	struct virtq *q = &d->vq[qi];
	volatile struct vring_used_elem *e;
	uint32_t id;

	if (q->used[1] == q->last_used)
		return -1;
	mb();
	e = (volatile struct vring_used_elem *)(q->used + 2) + q->last_used % q->size;
	id = e->id;
	if (len)
		*len = e->len;
	if (id >= q->size)
		return fail(d, "used-id"), -2;
	q->last_used++;
	if (virtio_has(d, VIRTIO_F_EVENT_IDX))
		q->avail[2 + q->size] = q->last_used;
	free_chain(q, (uint16_t)id);
	return (int)id;
}

bool virtio_wait_used(struct virtio_dev *d, uint16_t qi, uint32_t timeout_ms)
{
	struct virtq *q = &d->vq[qi];
	uint64_t deadline = rdtsc() + (uint64_t)timeout_ms * (tsc_hz() / 1000);

	for (uint32_t spin = 0;; spin++) {
		uint32_t seen = g_irq_count[q->vector];
		if (q->used[1] != q->last_used)
			return true;
		if ((spin & 1023) == 1023 || q->msix != VIRTIO_MSI_NO_VECTOR) {
			if (status(d) & VIRTIO_S_DEVICE_NEEDS_RESET)
				return fail(d, "needs-reset");
			if ((int64_t)(rdtsc() - deadline) > 0)
				return fail(d, "timeout");
		}
		if (q->msix != VIRTIO_MSI_NO_VECTOR) {
			/* one-shot LAPIC timer (~16 ms under KVM) bounds the halt */
			lapic_write(LAPIC_TMR_DIV, 0x3);
			lapic_write(LAPIC_LVT_TMR, VEC_LAPIC_TIMER);
			lapic_write(LAPIC_TMR_INIT, 1000000);
			wait_change(&g_irq_count[q->vector], seen);
		} else {
			cpu_relax();
		}
	}
}

bool virtio_needs_reset(const struct virtio_dev *d)
{
	return status(d) & VIRTIO_S_DEVICE_NEEDS_RESET;
}

bool virtio_request(struct virtio_dev *d, uint16_t qi, const struct vbuf *bufs, int n,
		    uint32_t *written)
{
	int head = virtio_submit(d, qi, bufs, n), id;

	if (head < 0)
		return false;
	virtio_kick(d, qi);
	if (!virtio_wait_used(d, qi, TIMEOUT_S * 1000))
		return false;
	id = virtio_get_used(d, qi, written);
	if (id != head)
		return fail(d, "used-id");
	if (status(d) & VIRTIO_S_DEVICE_NEEDS_RESET)
		return fail(d, "needs-reset");
	return true;
}

void virtio_line_common(struct line *l, const struct virtio_dev *d)
{
	line_str(l, " features=");
	line_hex(l, d->features);
	line_kv_dec(l, "indirect", virtio_has(d, VIRTIO_F_INDIRECT_DESC));
	line_kv_dec(l, "event_idx", virtio_has(d, VIRTIO_F_EVENT_IDX));
	if (d->use_irq)
		line_kv_dec(l, "irq", virtio_irqs(d));
	else
		line_str(l, " irq=poll");
}

void virtio_post_head(struct virtio_dev *d, uint16_t qi, uint16_t head)
{
	struct virtq *q = &d->vq[qi];

	q->avail[2 + q->avail_shadow % q->size] = head;
	mb();
	q->avail_shadow++;
	q->avail[1] = q->avail_shadow;
	mb();
}

void virtio_set_avail_idx(struct virtio_dev *d, uint16_t qi, uint16_t idx)
{
	struct virtq *q = &d->vq[qi];

	mb();
	q->avail_shadow = idx;
	q->avail[1] = idx;
	mb();
}

void virtio_notify(struct virtio_dev *d, uint16_t qi)
{
	mb();
	d->vq[qi].kicked = d->vq[qi].avail_shadow;
	wr16(d->vq[qi].notify, qi);
}

bool virtio_wait_status(const struct virtio_dev *d, uint8_t bits, uint32_t timeout_ms)
{
	uint64_t deadline = rdtsc() + (uint64_t)timeout_ms * (tsc_hz() / 1000);

	while ((status(d) & bits) != bits) {
		if ((int64_t)(rdtsc() - deadline) > 0)
			return false;
		delay_us(50);
	}
	return true;
}
