// SPDX-License-Identifier: MIT
/* The shared virtio test machine and fake guest driver; see virtio_fixture.h. */
#include "virtio_fixture.h"

#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../../src/vmm/devices/msix.h"
#include "../../src/common/util.h"
#include "../../src/vmm/layout.h"

/* ---- the default MSI sink: nothing to record, eventfds for the irqfd path ---- */

static void quiet_send(void *ctx, unsigned int v, const struct msi_msg *m)
{
	struct vfx *fx = ctx;

	__atomic_add_fetch(&fx->msi_sends, 1, __ATOMIC_RELAXED);
}

static void quiet_update(void *ctx, unsigned int v, const struct msi_msg *m, bool masked)
{
}

static int quiet_eventfd(void *ctx, unsigned int v)
{
	struct vfx *fx = ctx;

	return v < fx->nvec ? fx->vec_efd[v] : -EINVAL;
}

static const struct msi_ops quiet_ops = {
	.send = quiet_send, .update = quiet_update, .eventfd = quiet_eventfd};

/* ---- machine ---- */

void vfx_pci_up(struct vfx *fx)
{
	struct pci_root_config c = {
		.ecam_base = LAYOUT_ECAM_BASE,
		.nbuses = 1,
		.mmio32_base = LAYOUT_PCI_MMIO32_BASE,
		.mmio32_end = LAYOUT_PCI_MMIO32_END,
		.io_base = LAYOUT_PCI_IO_BASE,
		.io_end = LAYOUT_PCI_IO_END,
	};

	bus_init(&fx->pio, "pio");
	bus_init(&fx->mmio, "mmio");
	fx->root = pci_root_create(&fx->pio, &fx->mmio, &c);
	cr_assert_not_null(fx->root);
}

void vfx_pci_down(struct vfx *fx)
{
	bus_destroy(&fx->pio);
	bus_destroy(&fx->mmio);
}

void vfx_up(struct vfx *fx, const struct vfx_opts *o)
{
	cr_assert_leq(o->nvec, VFX_MAX_VECTORS);
	error_clear(&fx->err);
	fx->nvec = o->nvec;
	fx->msi_sends = 0;
	fx->bar0 = 0;
	for (unsigned int i = 0; i < fx->nvec; i++)
		fx->vec_efd[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (o->shared_mem) {
		fx->mem = o->shared_mem;
	} else {
		cr_assert_eq(gmem_init(&fx->own_mem, o->ram, &fx->err), 0, "%s", fx->err.msg);
		fx->mem = &fx->own_mem;
	}
	vfx_pci_up(fx);
	fx->io = iothread_create("test-io", &fx->err);
	cr_assert_not_null(fx->io, "%s", fx->err.msg);
	fx->host = (struct virtio_pci_host){
		.mem = fx->mem,
		.io = fx->io,
		.msi = {.ops = o->msi ? o->msi : &quiet_ops, .ctx = o->msi ? o->msi_ctx : fx},
		.ioevent = {.ops = o->ioevent, .ctx = o->ioevent_ctx},
	};
}

void vfx_attach(struct vfx *fx, struct virtio_pci *vp)
{
	fx->bar0 = pci_bar_address(virtio_pci_pci(vp), 0);
	cr_assert_neq(fx->bar0, 0);
}

void vfx_stop(struct vfx *fx)
{
	iothread_stop(fx->io);
	pci_root_destroy(fx->root);
}

void vfx_down(struct vfx *fx)
{
	iothread_destroy(fx->io);
	vfx_pci_down(fx);
	if (fx->mem == &fx->own_mem)
		gmem_destroy(&fx->own_mem);
	for (unsigned int i = 0; i < fx->nvec; i++)
		close(fx->vec_efd[i]);
}

/* ---- bytes and guest memory ---- */

uint64_t vfx_le(const uint8_t *b, uint32_t len)
{
	uint64_t v = 0;

	for (uint32_t i = 0; i < len; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

void vfx_put(uint8_t *b, uint32_t len, uint64_t v)
{
	for (uint32_t i = 0; i < len; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

void *vfx_gp(struct vfx *fx, uint64_t gpa, uint64_t len)
{
	void *p = gmem_ptr(fx->mem, gpa, len);

	cr_assert_not_null(p);
	return p;
}

/* ---- PCI configuration space ---- */

uint32_t vfx_cfg_rd(struct vfx *fx, uint32_t reg, uint32_t len)
{
	uint8_t b[4];

	bus_read(&fx->mmio, LAYOUT_ECAM_BASE + (VFX_SLOT << 15) + reg, b, len);
	return (uint32_t)vfx_le(b, len);
}

void vfx_cfg_wr(struct vfx *fx, uint32_t reg, uint32_t len, uint32_t v)
{
	uint8_t b[4];

	vfx_put(b, len, v);
	bus_write(&fx->mmio, LAYOUT_ECAM_BASE + (VFX_SLOT << 15) + reg, b, len);
}

uint32_t vfx_find_cap(struct vfx *fx, uint8_t id, uint8_t vndr_type)
{
	for (uint32_t p = vfx_cfg_rd(fx, PCI_CAPABILITY_LIST, 1); p; p = vfx_cfg_rd(fx, p + 1, 1))
		if (vfx_cfg_rd(fx, p, 1) == id &&
		    (id != PCI_CAP_ID_VNDR || vfx_cfg_rd(fx, p + 3, 1) == vndr_type))
			return p;
	return 0;
}

void vfx_msix_enable(struct vfx *fx, unsigned int nvec)
{
	uint32_t cap = vfx_find_cap(fx, PCI_CAP_ID_MSIX, 0);

	cr_assert_neq(cap, 0);
	vfx_cfg_wr(fx, cap + MSIX_CAP_CTRL, 2, MSIX_CTRL_ENABLE);
	for (unsigned int v = 0; v < nvec; v++) {
		uint64_t e = VIRTIO_PCI_MSIX_TABLE_OFF + 16 * v;

		vfx_bar_wr(fx, e + 0, 4, 0xfee00000u);
		vfx_bar_wr(fx, e + 4, 4, 0);
		vfx_bar_wr(fx, e + 8, 4, 0x40 + v);
		vfx_bar_wr(fx, e + 12, 4, 0);
	}
}

uint64_t vfx_wait_vector(struct vfx *fx, unsigned int v, int ms)
{
	uint64_t n = 0;

	cr_assert_lt(v, fx->nvec);
	for (int i = 0; i < ms; i++) {
		if (read(fx->vec_efd[v], &n, sizeof(n)) == sizeof(n))
			return n;
		usleep(1000);
	}
	return 0;
}

/* ---- BAR 0 ---- */

uint64_t vfx_bar_rd(struct vfx *fx, uint64_t off, uint32_t len)
{
	uint8_t b[8];

	cr_assert(bus_read(&fx->mmio, fx->bar0 + off, b, len), "nothing at 0x%llx",
		  (unsigned long long)(fx->bar0 + off));
	return vfx_le(b, len);
}

void vfx_bar_wr(struct vfx *fx, uint64_t off, uint32_t len, uint64_t v)
{
	uint8_t b[8];

	vfx_put(b, len, v);
	cr_assert(bus_write(&fx->mmio, fx->bar0 + off, b, len));
}

uint64_t vfx_device_features(struct vfx *fx)
{
	uint64_t f;

	vfx_bar_wr(fx, VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
	f = vfx_bar_rd(fx, VIRTIO_PCI_COMMON_DF, 4);
	vfx_bar_wr(fx, VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
	return f | vfx_bar_rd(fx, VIRTIO_PCI_COMMON_DF, 4) << 32;
}

void vfx_write_features(struct vfx *fx, uint64_t f)
{
	vfx_bar_wr(fx, VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
	vfx_bar_wr(fx, VIRTIO_PCI_COMMON_GF, 4, (uint32_t)f);
	vfx_bar_wr(fx, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
	vfx_bar_wr(fx, VIRTIO_PCI_COMMON_GF, 4, (uint32_t)(f >> 32));
}

uint8_t vfx_status(struct vfx *fx)
{
	return (uint8_t)vfx_bar_rd(fx, VIRTIO_PCI_COMMON_STATUS, 1);
}

void vfx_set_status(struct vfx *fx, uint8_t s)
{
	vfx_bar_wr(fx, VIRTIO_PCI_COMMON_STATUS, 1, s);
	/* A reset is done by the I/O thread: a driver waits for status 0 (4.1.4.3.2). */
	if (s == 0)
		cr_assert(vfx_wait_reset(fx, 2000), "the reset never completed (status 0x%x)",
			  vfx_status(fx));
}

bool vfx_wait_reset(struct vfx *fx, int ms)
{
	for (int i = 0; i < ms; i++) {
		if (vfx_status(fx) == 0)
			return true;
		usleep(1000);
	}
	return false;
}

bool vfx_wait_queue_reset(struct vfx *fx, int ms)
{
	for (int i = 0; i < ms; i++) {
		if (vfx_bar_rd(fx, VIRTIO_PCI_COMMON_Q_RESET, 2) == 0)
			return true;
		usleep(1000);
	}
	return false;
}

bool vfx_negotiate(struct vfx *fx, uint64_t f)
{
	vfx_set_status(fx, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	vfx_write_features(fx, f);
	vfx_set_status(fx, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
				   VIRTIO_STATUS_FEATURES_OK);
	return vfx_status(fx) & VIRTIO_STATUS_FEATURES_OK;
}

void vfx_driver_ok(struct vfx *fx)
{
	vfx_set_status(fx, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
				   VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	cr_assert_eq(vfx_status(fx), 0x0f);
}

void vfx_notify(struct vfx *fx, unsigned int q)
{
	vfx_bar_wr(fx, VIRTIO_PCI_NOTIFY_OFF + VIRTIO_PCI_NOTIFY_MULT_VAL * q, 2, q);
}

bool vfx_wait_status(struct vfx *fx, uint8_t bits, int ms)
{
	for (int i = 0; i < ms; i++) {
		if ((vfx_status(fx) & bits) == bits)
			return true;
		usleep(1000);
	}
	return false;
}

/* ---- rings ---- */

struct vfx_ring vfx_ring_at(uint64_t base, uint16_t size)
{
	return (struct vfx_ring){base, base + 0x1000, base + 0x2000, size};
}

/* Everything of a queue's setup but the enable, which must come last. */
static void queue_program(struct vfx *fx, unsigned int q, struct vfx_ring r)
{
	vfx_bar_wr(fx, VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
	vfx_bar_wr(fx, VIRTIO_PCI_COMMON_Q_SIZE, 2, r.size);
	vfx_bar_wr(fx, VIRTIO_PCI_COMMON_Q_DESCLO, 4, (uint32_t)r.desc);
	vfx_bar_wr(fx, VIRTIO_PCI_COMMON_Q_AVAILLO, 4, (uint32_t)r.avail);
	vfx_bar_wr(fx, VIRTIO_PCI_COMMON_Q_USEDLO, 4, (uint32_t)r.used);
}

void vfx_queue_setup(struct vfx *fx, unsigned int q, struct vfx_ring r)
{
	queue_program(fx, q, r);
	vfx_bar_wr(fx, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
}

void vfx_queue_setup_msix(struct vfx *fx, unsigned int q, struct vfx_ring r, uint16_t vec)
{
	queue_program(fx, q, r);
	vfx_bar_wr(fx, VIRTIO_PCI_COMMON_Q_MSIX, 2, vec);
	vfx_bar_wr(fx, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
}

void vfx_bring_up(struct vfx *fx, uint64_t f, const struct vfx_ring *rings, unsigned int nq)
{
	cr_assert(vfx_negotiate(fx, f), "features 0x%llx refused", (unsigned long long)f);
	for (unsigned int q = 0; q < nq; q++)
		vfx_queue_setup(fx, q, rings[q]);
	vfx_driver_ok(fx);
}

struct virtq_desc *vfx_desc(struct vfx *fx, struct vfx_ring r, uint16_t i)
{
	return vfx_gp(fx, r.desc + 16ULL * i, 16);
}

struct virtq_avail *vfx_avail(struct vfx *fx, struct vfx_ring r)
{
	return vfx_gp(fx, r.avail, 4 + 2ULL * r.size);
}

struct virtq_used *vfx_used(struct vfx *fx, struct vfx_ring r)
{
	return vfx_gp(fx, r.used, 4 + 8ULL * r.size);
}

void vfx_desc_set(struct vfx *fx, struct vfx_ring r, uint16_t i, uint64_t gpa, uint32_t len,
		  uint16_t flags, uint16_t next)
{
	struct virtq_desc *d = vfx_desc(fx, r, i);

	d->addr = htole64(gpa);
	d->len = htole32(len);
	d->flags = htole16(flags);
	d->next = htole16(next);
}

void vfx_chain(struct vfx *fx, struct vfx_ring r, uint16_t first, const struct vfx_seg *s, int n)
{
	for (int i = 0; i < n; i++) {
		uint16_t idx = (uint16_t)((first + i) % r.size);
		uint16_t flags = (uint16_t)((s[i].write ? VIRTQ_DESC_F_WRITE : 0) |
					    (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0));

		vfx_desc_set(fx, r, idx, s[i].gpa, s[i].len, flags, (uint16_t)((idx + 1) % r.size));
	}
}

void vfx_avail_push(struct vfx *fx, struct vfx_ring r, uint16_t *idx, uint16_t head)
{
	struct virtq_avail *a = vfx_avail(fx, r);

	a->ring[*idx % r.size] = htole16(head);
	(*idx)++;
	__atomic_store_n(&a->idx, htole16(*idx), __ATOMIC_RELEASE);
}

uint16_t vfx_used_idx(struct vfx *fx, struct vfx_ring r)
{
	return le16toh(__atomic_load_n(&vfx_used(fx, r)->idx, __ATOMIC_ACQUIRE));
}

bool vfx_wait_used(struct vfx *fx, struct vfx_ring r, uint16_t idx, int ms)
{
	for (int i = 0; i < ms; i++) {
		if (vfx_used_idx(fx, r) == idx)
			return true;
		usleep(1000);
	}
	return false;
}

bool vfx_wait_used_past(struct vfx *fx, struct vfx_ring r, uint16_t seen, int ms)
{
	for (int i = 0;; i++) {
		if (vfx_used_idx(fx, r) != seen)
			return true;
		if (i >= ms)
			return false;
		usleep(1000);
	}
}

struct virtq_used_elem vfx_used_elem(struct vfx *fx, struct vfx_ring r, uint16_t i)
{
	struct virtq_used_elem e = vfx_used(fx, r)->ring[i % r.size];

	return (struct virtq_used_elem){le32toh(e.id), le32toh(e.len)};
}

/* ---- snapshots ---- */

int vfx_save_restore(struct virtio_pci *vp, const char *name, struct error *err)
{
	struct snap_writer w;
	struct snap_file f;
	char state[] = "/tmp/bunshin-vfx-state.XXXXXX";
	int fd = mkstemp(state), ret;

	cr_assert_geq(fd, 0);
	close(fd);
	snap_writer_init(&w);
	cr_assert_eq(virtio_pci_save(vp, &w, name), 0);
	cr_assert_eq(snap_save(&w, state, err), 0, "%s", err->msg);
	snap_writer_free(&w);
	cr_assert_eq(snap_open(&f, state, err), 0, "%s", err->msg);
	ret = virtio_pci_restore(vp, &f, name, err);
	snap_close(&f);
	unlink(state);
	return ret;
}

uint8_t *vfx_saved_payload(struct virtio_pci *vp, const char *path, const char *name, size_t *len,
			   uint32_t *version, struct error *err)
{
	struct snap_section sec;
	struct snap_writer w;
	struct snap_file f;
	uint8_t *p;

	snap_writer_init(&w);
	cr_assert_eq(virtio_pci_save(vp, &w, name), 0);
	cr_assert_eq(snap_save(&w, path, err), 0, "%s", err->msg);
	snap_writer_free(&w);
	cr_assert_eq(snap_open(&f, path, err), 0, "%s", err->msg);
	cr_assert_eq(snap_find(&f, name, 1, &sec, err), 0);
	p = malloc(sec.len);
	cr_assert_not_null(p);
	memcpy(p, sec.p, sec.len);
	*len = sec.len;
	*version = sec.version;
	snap_close(&f);
	return p;
}

/* ---- a real VM ---- */

void vfx_kvm_up(struct vfx_kvm *k)
{
	if (access("/dev/kvm", R_OK | W_OK) != 0)
		cr_skip_test("/dev/kvm is not usable here");
	memset(k, 0, sizeof(*k));
	k->vm.fd = -1;
	cr_assert_eq(kvm_open(&k->kvm, "/dev/kvm", &k->err), 0, "%s", k->err.msg);
	cr_assert_eq(gmem_init(&k->mem, 4 * MiB, &k->err), 0, "%s", k->err.msg);
	cr_assert_eq(vm_create(&k->vm, &k->kvm, &k->mem, &k->err), 0, "%s", k->err.msg);
}

void vfx_kvm_down(struct vfx_kvm *k)
{
	vm_destroy(&k->vm);
	gmem_destroy(&k->mem);
	kvm_close(&k->kvm);
}
