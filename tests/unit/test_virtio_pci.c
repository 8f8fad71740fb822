// SPDX-License-Identifier: MIT
/*
 * The virtio PCI transport and virtio-rng, driven the way a guest driver
 * drives them: through ECAM and BAR accesses on real buses, rings in a real
 * gmem (a memfd, no KVM), a real I/O thread, and recording MSI and
 * ioeventfd sinks.
 */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "../../src/common/util.h"
#include "../../src/vmm/devices/msix.h"
#include "../../src/vmm/kvm/ioevent.h"
#include "../../src/vmm/kvm/kvm.h"
#include "../../src/vmm/kvm/vm.h"
#include "../../src/vmm/layout.h"
#include "../../src/vmm/virtio/rng.h"
#include "virtio_fixture.h"

#define RAM	  (4 * MiB)
#define QSIZE	  16
#define DESC_GPA  0x10000ULL
#define AVAIL_GPA 0x20000ULL
#define USED_GPA  0x30000ULL
#define BUF_GPA	  0x100000ULL
#define NVEC	  2 /* rng: queue 0 and config */
#define CFG_VEC	  0
#define Q_VEC	  1

#define F_VERSION_1 (1ULL << VIRTIO_F_VERSION_1)
#define F_EVENT_IDX (1ULL << VIRTIO_F_EVENT_IDX)
#define F_INDIRECT  (1ULL << VIRTIO_F_INDIRECT_DESC)

/* ---- recording ioevent sink ---- */

struct ioev_rec {
	uint64_t addr;
	uint32_t len;
	int fd;
};

static struct ioev_rec ioev[8];
static int nioev, ndeassign;

static int e_assign(void *ctx, uint64_t addr, uint32_t len, int fd)
{
	cr_assert_lt(nioev, 8);
	ioev[nioev++] = (struct ioev_rec){addr, len, fd};
	return 0;
}

static void e_deassign(void *ctx, uint64_t addr, uint32_t len, int fd)
{
	for (int i = 0; i < nioev; i++) {
		if (ioev[i].addr == addr && ioev[i].len == len && ioev[i].fd == fd) {
			ioev[i] = ioev[--nioev];
			ndeassign++;
			return;
		}
	}
	cr_assert_fail("deassign of something never assigned");
}

static const struct ioevent_ops e_ops = {.assign = e_assign, .deassign = e_deassign};

/* ---- machine ---- */

static struct vfx fx;
static struct virtio_rng *rng;
static struct error err;

static void setup(void)
{
	error_clear(&err);
	nioev = ndeassign = 0;
	vfx_up(&fx, &(struct vfx_opts){.ram = RAM, .nvec = NVEC, .ioevent = &e_ops});
	rng = virtio_rng_create(&fx.host, fx.root, &err);
	cr_assert_not_null(rng, "%s", err.msg);
	vfx_attach(&fx, virtio_rng_transport(rng));
}

/* The VMM's order: I/O thread, root, devices. */
static void teardown(void)
{
	vfx_stop(&fx);
	virtio_rng_destroy(rng);
	vfx_down(&fx);
}

TestSuite(vpci, .init = setup, .fini = teardown);

/* ---- driver side helpers ---- */

static const struct vfx_ring ring = {DESC_GPA, AVAIL_GPA, USED_GPA, QSIZE};

/* 3.1.1 up to FEATURES_OK, ACKNOWLEDGE on its own first; returns whether the device kept it. */
static bool negotiate(uint64_t f)
{
	vfx_set_status(&fx, VIRTIO_STATUS_ACKNOWLEDGE);
	return vfx_negotiate(&fx, f);
}

/* Queue 0 with all 64 address bits written and its MSI-X vector, unlike vfx_queue_setup. */
static void setup_queue(uint64_t desc, uint64_t avail, uint64_t used)
{
	vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
	vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_Q_SIZE, 2, QSIZE);
	vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_Q_DESCLO, 4, (uint32_t)desc);
	vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_Q_DESCHI, 4, (uint32_t)(desc >> 32));
	vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_Q_AVAILLO, 4, (uint32_t)avail);
	vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_Q_AVAILHI, 4, (uint32_t)(avail >> 32));
	vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_Q_USEDLO, 4, (uint32_t)used);
	vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_Q_USEDHI, 4, (uint32_t)(used >> 32));
	vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_Q_MSIX, 2, Q_VEC);
	vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
}

/* A driver up to DRIVER_OK with queue 0 live and MSI-X on. */
static void bring_up(void)
{
	vfx_msix_enable(&fx, NVEC);
	cr_assert(negotiate(F_VERSION_1));
	vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_MSIX, 2, CFG_VEC);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_MSIX, 2), CFG_VEC);
	setup_queue(DESC_GPA, AVAIL_GPA, USED_GPA);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 1);
	vfx_driver_ok(&fx);
}

/* Offers one chain: head -> desc[head], device-writable, len bytes at BUF_GPA. */
static void offer(uint16_t slot_head, uint16_t desc_idx, uint32_t len, uint16_t new_idx)
{
	uint16_t idx = new_idx - 1;

	vfx_desc_set(&fx, ring, desc_idx, BUF_GPA + 0x1000 * desc_idx, len, VIRTQ_DESC_F_WRITE, 0);
	vfx_avail_push(&fx, ring, &idx, slot_head);
}

static bool wait_used(uint16_t idx)
{
	return vfx_wait_used(&fx, ring, idx, 2000);
}

/* Eventfd count of a vector, waiting up to 2 s for at least one event. */
static uint64_t wait_vector(unsigned int v)
{
	return vfx_wait_vector(&fx, v, 2000);
}

static bool wait_status(uint8_t bits)
{
	return vfx_wait_status(&fx, bits, 2000);
}

static void kick_ioeventfd(int q)
{
	uint64_t one = 1;

	cr_assert_gt(nioev, q);
	cr_assert_eq(write(ioev[q].fd, &one, sizeof(one)), sizeof(one));
}

/* ---- identity, capabilities, BAR ---- */

Test(vpci, pci_identity)
{
	cr_assert_eq(vfx_cfg_rd(&fx, PCI_VENDOR_ID, 2), 0x1af4);
	cr_assert_eq(vfx_cfg_rd(&fx, PCI_DEVICE_ID, 2), 0x1040 + VIRTIO_ID_RNG);
	cr_assert_eq(vfx_cfg_rd(&fx, PCI_REVISION_ID, 1), 1);
	cr_assert_eq(vfx_cfg_rd(&fx, PCI_SUBSYSTEM_VENDOR, 2), 0x1af4);
	cr_assert_geq(vfx_cfg_rd(&fx, PCI_SUBSYSTEM_ID, 2), 0x40);
	cr_assert(vfx_cfg_rd(&fx, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
}

Test(vpci, bar_is_64bit_non_prefetchable_memory)
{
	uint32_t lo = vfx_cfg_rd(&fx, PCI_BASE_ADDRESS_0, 4);

	cr_assert_eq(lo & 0xf, PCI_BAR_MEM_TYPE_64);
	cr_assert_eq(fx.bar0 & (VIRTIO_PCI_BAR_SIZE - 1), 0);
	/* Sizing: all ones in, size back. */
	vfx_cfg_wr(&fx, PCI_COMMAND, 2, 0);
	vfx_cfg_wr(&fx, PCI_BASE_ADDRESS_0, 4, 0xffffffffu);
	vfx_cfg_wr(&fx, PCI_BASE_ADDRESS_0 + 4, 4, 0xffffffffu);
	cr_assert_eq(vfx_cfg_rd(&fx, PCI_BASE_ADDRESS_0, 4) & ~0xfu,
		     (uint32_t)-VIRTIO_PCI_BAR_SIZE);
	cr_assert_eq(vfx_cfg_rd(&fx, PCI_BASE_ADDRESS_0 + 4, 4), 0xffffffffu);
}

static void check_cap(uint8_t type, uint32_t off, uint32_t min_len, uint8_t cap_len)
{
	uint32_t c = vfx_find_cap(&fx, PCI_CAP_ID_VNDR, type);

	cr_assert_neq(c, 0, "no capability of type %u", type);
	cr_assert_eq(vfx_cfg_rd(&fx, c + VIRTIO_PCI_CAP_LEN, 1), cap_len);
	cr_assert_eq(vfx_cfg_rd(&fx, c + VIRTIO_PCI_CAP_BAR, 1), 0);
	cr_assert_eq(vfx_cfg_rd(&fx, c + VIRTIO_PCI_CAP_OFFSET, 4), off);
	cr_assert_geq(vfx_cfg_rd(&fx, c + VIRTIO_PCI_CAP_LENGTH, 4), min_len);
	cr_assert_eq(c % 4, 0);
}

Test(vpci, capability_chain)
{
	uint32_t n = vfx_find_cap(&fx, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_NOTIFY_CFG);
	uint32_t x = vfx_find_cap(&fx, PCI_CAP_ID_MSIX, 0);
	int caps = 0;

	check_cap(VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_COMMON_OFF, VIRTIO_PCI_COMMON_SIZE, 16);
	check_cap(VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_NOTIFY_OFF, 4, 20);
	check_cap(VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_ISR_OFF, 1, 16);
	check_cap(VIRTIO_PCI_CAP_PCI_CFG, 0, 0, 20);
	/* virtio-rng has no device configuration, so no DEVICE capability. */
	cr_assert_eq(vfx_find_cap(&fx, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_DEVICE_CFG), 0);
	cr_assert_eq(vfx_cfg_rd(&fx, n + VIRTIO_PCI_NOTIFY_MULT, 4), 4);
	cr_assert_neq(x, 0);
	cr_assert_eq(vfx_cfg_rd(&fx, x + MSIX_CAP_CTRL, 2) & MSIX_CTRL_TABLE_SIZE, NVEC - 1);
	cr_assert_eq(vfx_cfg_rd(&fx, x + MSIX_CAP_TABLE, 4), VIRTIO_PCI_MSIX_TABLE_OFF);
	cr_assert_eq(vfx_cfg_rd(&fx, x + MSIX_CAP_PBA, 4), VIRTIO_PCI_MSIX_PBA_OFF);
	for (uint32_t p = vfx_cfg_rd(&fx, PCI_CAPABILITY_LIST, 1); p && caps < 48;
	     p = vfx_cfg_rd(&fx, p + 1, 1))
		caps++;
	cr_assert_eq(caps, 5, "COMMON, NOTIFY, ISR, PCI_CFG, MSI-X");
	/* Read-only: the driver cannot rewrite where structures are. */
	vfx_cfg_wr(&fx, n + VIRTIO_PCI_CAP_OFFSET, 4, 0x1234);
	cr_assert_eq(vfx_cfg_rd(&fx, n + VIRTIO_PCI_CAP_OFFSET, 4), VIRTIO_PCI_NOTIFY_OFF);
}

Test(vpci, common_config_after_reset)
{
	cr_assert_eq(vfx_status(&fx), 0);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_NUMQ, 2), 1);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_Q_SIZE, 2), VIRTIO_RNG_QSIZE);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_Q_NOFF, 2), 0);
	/* A queue that does not exist has size 0. */
	vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_Q_SELECT, 2, 1);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_Q_SIZE, 2), 0);
}

Test(vpci, pci_cfg_window_reaches_the_bar)
{
	uint32_t c = vfx_find_cap(&fx, PCI_CAP_ID_VNDR, VIRTIO_PCI_CAP_PCI_CFG);

	vfx_cfg_wr(&fx, c + VIRTIO_PCI_CAP_BAR, 1, 0);
	vfx_cfg_wr(&fx, c + VIRTIO_PCI_CAP_OFFSET, 4, VIRTIO_PCI_COMMON_NUMQ);
	vfx_cfg_wr(&fx, c + VIRTIO_PCI_CAP_LENGTH, 4, 2);
	cr_assert_eq(vfx_cfg_rd(&fx, c + VIRTIO_PCI_CFG_DATA, 2), 1);
	/* A write through the window: the status register. */
	vfx_cfg_wr(&fx, c + VIRTIO_PCI_CAP_OFFSET, 4, VIRTIO_PCI_COMMON_STATUS);
	vfx_cfg_wr(&fx, c + VIRTIO_PCI_CAP_LENGTH, 4, 1);
	vfx_cfg_wr(&fx, c + VIRTIO_PCI_CFG_DATA, 1, VIRTIO_STATUS_ACKNOWLEDGE);
	cr_assert_eq(vfx_status(&fx), VIRTIO_STATUS_ACKNOWLEDGE);
	/* A bad length does nothing. */
	vfx_cfg_wr(&fx, c + VIRTIO_PCI_CAP_LENGTH, 4, 3);
	vfx_cfg_wr(&fx, c + VIRTIO_PCI_CFG_DATA, 1, 0);
	cr_assert_eq(vfx_status(&fx), VIRTIO_STATUS_ACKNOWLEDGE);
}

/* ---- feature negotiation and status ---- */

Test(vpci, device_offers_version_1_and_ring_features)
{
	uint64_t f = vfx_device_features(&fx);

	cr_assert(f & F_VERSION_1);
	cr_assert(f & F_INDIRECT);
	cr_assert(f & F_EVENT_IDX);
	vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_DFSELECT, 4, 2);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_DF, 4), 0);
}

Test(vpci, features_ok_refused_without_version_1)
{
	cr_assert_not(negotiate(F_INDIRECT));
	cr_assert_eq(vfx_status(&fx) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0);
}

Test(vpci, features_ok_refused_for_unoffered_bits)
{
	cr_assert_not(negotiate(F_VERSION_1 | (1ULL << 5)));
}

Test(vpci, features_ok_accepted_and_then_fixed)
{
	cr_assert(negotiate(F_VERSION_1 | F_EVENT_IDX));
	vfx_write_features(&fx, F_VERSION_1);
	vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_GF, 4), 1);
	vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_GF, 4), (uint32_t)F_EVENT_IDX);
	cr_assert_eq(virtio_pci_features(virtio_rng_transport(rng)), F_VERSION_1 | F_EVENT_IDX);
}

Test(vpci, driver_ok_without_features_ok_needs_reset)
{
	vfx_msix_enable(&fx, NVEC);
	vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_MSIX, 2, CFG_VEC);
	vfx_set_status(&fx,
		       VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK);
	cr_assert(vfx_status(&fx) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	cr_assert_eq(vfx_status(&fx) & VIRTIO_STATUS_DRIVER_OK, 0);
	cr_assert_geq(wait_vector(CFG_VEC), 1);
}

Test(vpci, clearing_a_status_bit_needs_reset)
{
	cr_assert(negotiate(F_VERSION_1));
	vfx_set_status(&fx, VIRTIO_STATUS_ACKNOWLEDGE);
	cr_assert(vfx_status(&fx) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	/* ISR tells INTx-style drivers why; reading clears it. */
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_ISR_OFF, 1), VIRTIO_PCI_ISR_CONFIG);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_ISR_OFF, 1), 0);
}

Test(vpci, bad_msix_vector_reads_back_no_vector)
{
	vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_MSIX, 2, NVEC);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_Q_MSIX, 2, 7);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
}

/* ---- queues ---- */

Test(vpci, queue_setup_reads_back)
{
	cr_assert(negotiate(F_VERSION_1));
	setup_queue(DESC_GPA, AVAIL_GPA, USED_GPA);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_Q_SIZE, 2), QSIZE);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_Q_DESCLO, 4), DESC_GPA);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_Q_AVAILLO, 4), AVAIL_GPA);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_Q_USEDLO, 4), USED_GPA);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_Q_MSIX, 2), Q_VEC);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 1);
	/* Fixed while enabled. */
	vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_Q_SIZE, 2, 4);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_Q_SIZE, 2), QSIZE);
	cr_assert_eq(vfx_status(&fx) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0);
}

Test(vpci, queue_enable_before_features_ok_needs_reset)
{
	vfx_set_status(&fx, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	setup_queue(DESC_GPA, AVAIL_GPA, USED_GPA);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	cr_assert(vfx_status(&fx) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

Test(vpci, ring_outside_ram_needs_reset)
{
	vfx_msix_enable(&fx, NVEC);
	cr_assert(negotiate(F_VERSION_1));
	vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_MSIX, 2, CFG_VEC);
	setup_queue(RAM - 8, AVAIL_GPA, USED_GPA);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	cr_assert(vfx_status(&fx) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	cr_assert_geq(wait_vector(CFG_VEC), 1);
}

Test(vpci, ioeventfd_per_queue_at_the_notify_address)
{
	cr_assert_eq(nioev, 1);
	cr_assert_eq(ioev[0].addr, fx.bar0 + VIRTIO_PCI_NOTIFY_OFF);
	cr_assert_eq(ioev[0].len, 0, "any length, no datamatch");
}

/* ---- a request end to end ---- */

static void rng_request(bool through_ioeventfd)
{
	uint8_t *buf = vfx_gp(&fx, BUF_GPA, 64), zero[64] = {0};
	struct virtq_used *u = vfx_gp(&fx, USED_GPA, 4 + 8 * QSIZE);

	memset(buf, 0, 64);
	bring_up();
	offer(0, 0, 64, 1);
	if (through_ioeventfd)
		kick_ioeventfd(0);
	else
		vfx_bar_wr(&fx, VIRTIO_PCI_NOTIFY_OFF, 2, 0);
	cr_assert(wait_used(1), "no used entry");
	cr_assert_eq(le32toh(u->ring[0].id), 0);
	cr_assert_eq(le32toh(u->ring[0].len), 64);
	cr_assert_neq(memcmp(buf, zero, 64), 0, "no random bytes");
	cr_assert_geq(wait_vector(Q_VEC), 1, "no MSI-X delivery");
	cr_assert_eq(vfx_status(&fx) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0);
}

Test(vpci, rng_request_through_ioeventfd)
{
	rng_request(true);
}

Test(vpci, rng_request_through_the_bus)
{
	rng_request(false);
}

Test(vpci, buffers_before_driver_ok_wait_for_it)
{
	vfx_msix_enable(&fx, NVEC);
	cr_assert(negotiate(F_VERSION_1));
	setup_queue(DESC_GPA, AVAIL_GPA, USED_GPA);
	offer(0, 0, 32, 1);
	kick_ioeventfd(0);
	usleep(50 * 1000);
	cr_assert_eq(le16toh(((struct virtq_used *)vfx_gp(&fx, USED_GPA, 4))->idx), 0);
	vfx_set_status(&fx, 0x0f);
	cr_assert(wait_used(1));
}

Test(vpci, many_requests_are_served_in_bounded_batches)
{
	struct virtq_used *u = vfx_gp(&fx, USED_GPA, 4 + 8 * QSIZE);
	uint16_t idx = 0;

	bring_up();
	/* More than one batch's worth of chains, offered over and over. */
	for (int round = 0; round < 8; round++) {
		for (int i = 0; i < QSIZE; i++) {
			idx++;
			offer((uint16_t)i, (uint16_t)i, 4096, idx);
		}
		kick_ioeventfd(0);
		cr_assert(wait_used(idx), "round %d: used %u", round, le16toh(u->idx));
	}
	cr_assert_eq(vfx_status(&fx) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0);
}

/* ---- a malicious ring ---- */

Test(vpci, malformed_ring_needs_reset_and_interrupts)
{
	struct virtq_avail *a;

	bring_up();
	a = vfx_gp(&fx, AVAIL_GPA, 4 + 2 * QSIZE);
	a->ring[0] = htole16(QSIZE + 3); /* head out of range */
	__atomic_store_n(&a->idx, htole16(1), __ATOMIC_RELEASE);
	kick_ioeventfd(0);
	cr_assert(wait_status(VIRTIO_STATUS_DEVICE_NEEDS_RESET));
	cr_assert_geq(wait_vector(CFG_VEC), 1, "no configuration interrupt");
	cr_assert_eq(le16toh(((struct virtq_used *)vfx_gp(&fx, USED_GPA, 4))->idx), 0);
	/* The device is dead to the driver until reset... */
	offer(0, 0, 16, 2);
	kick_ioeventfd(0);
	usleep(20 * 1000);
	cr_assert_eq(le16toh(((struct virtq_used *)vfx_gp(&fx, USED_GPA, 4))->idx), 0);
}

/* ---- reset ---- */

Test(vpci, status_zero_resets_everything)
{
	bring_up();
	vfx_set_status(&fx, 0);
	cr_assert_eq(vfx_status(&fx), 0);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_Q_SIZE, 2), VIRTIO_RNG_QSIZE);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_Q_DESCLO, 4), 0);
	vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_GF, 4), 0);
	/* And it works again from scratch, rings zeroed as a new driver would. */
	memset(vfx_gp(&fx, USED_GPA, 4 + 8 * QSIZE), 0, 4 + 8 * QSIZE);
	memset(vfx_gp(&fx, AVAIL_GPA, 4 + 2 * QSIZE), 0, 4 + 2 * QSIZE);
	bring_up();
	offer(0, 0, 8, 1);
	kick_ioeventfd(0);
	cr_assert(wait_used(1));
}

Test(vpci, needs_reset_cleared_by_reset)
{
	cr_assert(negotiate(F_VERSION_1));
	vfx_set_status(&fx, VIRTIO_STATUS_ACKNOWLEDGE);
	cr_assert(vfx_status(&fx) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	vfx_set_status(&fx, 0);
	cr_assert_eq(vfx_status(&fx), 0);
	cr_assert(negotiate(F_VERSION_1));
}

Test(vpci, pci_reset_resets_the_device)
{
	bring_up();
	pci_root_reset(fx.root);
	cr_assert_eq(vfx_status(&fx), 0);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
}

/* ---- the BAR moves, the ioeventfds follow ---- */

Test(vpci, ioeventfds_follow_the_bar)
{
	uint64_t nbar = fx.bar0 + 0x100000;

	vfx_cfg_wr(&fx, PCI_BASE_ADDRESS_0, 4, (uint32_t)nbar);
	cr_assert_eq(ndeassign, 1);
	cr_assert_eq(nioev, 1);
	cr_assert_eq(ioev[0].addr, nbar + VIRTIO_PCI_NOTIFY_OFF);
	/* Decoding off: nothing is bound. */
	vfx_cfg_wr(&fx, PCI_COMMAND, 2, 0);
	cr_assert_eq(nioev, 0);
	vfx_cfg_wr(&fx, PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
	cr_assert_eq(nioev, 1);
	fx.bar0 = nbar;
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_NUMQ, 2), 1);
}

/* ---- the KVM ioevent sink on a real VM ---- */

/*
 * Whether KVM already has this ioeventfd: it refuses an identical second
 * registration with EEXIST. A probe that succeeds is undone at once.
 */
static bool kvm_has_ioeventfd(int vm_fd, uint64_t addr, int fd)
{
	bool any = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IOEVENTFD_ANY_LENGTH) > 0;
	struct kvm_ioeventfd k = {.addr = addr, .len = any ? 0 : 2, .fd = fd};

	if (ioctl(vm_fd, KVM_IOEVENTFD, &k) < 0)
		return errno == EEXIST;
	k.flags = KVM_IOEVENTFD_FLAG_DEASSIGN;
	cr_assert_eq(ioctl(vm_fd, KVM_IOEVENTFD, &k), 0);
	return false;
}

Test(vpci_kvm, ioevent_sink_binds_and_survives_a_vm_rebuild)
{
	struct vfx_kvm f;
	struct vm_ioevent *v = vm_ioevent_create();
	struct ioevent_sink s = vm_ioevent_sink(v);
	uint64_t addr = LAYOUT_PCI_MMIO32_BASE + VIRTIO_PCI_NOTIFY_OFF;
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	vfx_kvm_up(&f);
	/* Assigned before any VM exists: kept, and bound on attach. */
	cr_assert_eq(s.ops->assign(s.ctx, addr, 0, fd), 0);
	vm_ioevent_attach(v, f.vm.fd);
	cr_assert(kvm_has_ioeventfd(f.vm.fd, addr, fd));
	/* A reboot: the old VM goes, a new one gets the same registrations. */
	vm_ioevent_detach(v);
	vm_destroy(&f.vm);
	cr_assert_eq(vm_create(&f.vm, &f.kvm, &f.mem, &f.err), 0, "%s", f.err.msg);
	cr_assert_not(kvm_has_ioeventfd(f.vm.fd, addr, fd));
	vm_ioevent_attach(v, f.vm.fd);
	cr_assert(kvm_has_ioeventfd(f.vm.fd, addr, fd));
	s.ops->deassign(s.ctx, addr, 0, fd);
	cr_assert_not(kvm_has_ioeventfd(f.vm.fd, addr, fd));
	vm_ioevent_destroy(v);
	close(fd);
	vfx_kvm_down(&f);
}

/* ---- VIRTIO_F_RING_RESET: one queue reset alone ---- */

#define F_RING_RESET (1ULL << VIRTIO_F_RING_RESET)

/* bring_up() with features f. */
static void bring_up_with(uint64_t f)
{
	vfx_msix_enable(&fx, NVEC);
	cr_assert(negotiate(f));
	vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_MSIX, 2, CFG_VEC);
	setup_queue(DESC_GPA, AVAIL_GPA, USED_GPA);
	vfx_set_status(&fx, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
				    VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	cr_assert_eq(vfx_status(&fx), 0x0f);
}

static void zero_rings(void)
{
	memset(vfx_gp(&fx, USED_GPA, 4 + 8 * QSIZE), 0, 4 + 8 * QSIZE);
	memset(vfx_gp(&fx, AVAIL_GPA, 4 + 2 * QSIZE), 0, 4 + 2 * QSIZE);
}

Test(vpci, ring_reset_is_offered)
{
	cr_assert(vfx_device_features(&fx) & F_RING_RESET);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_Q_RESET, 2), 0);
}

Test(vpci, queue_reset_without_the_feature_is_ignored)
{
	bring_up_with(F_VERSION_1);
	vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_Q_RESET, 2, 1);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_Q_RESET, 2), 0);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 1);
	offer(0, 0, 16, 1);
	kick_ioeventfd(0);
	cr_assert(wait_used(1));
}

/*
 * queue_reset = 1: the queue stops and forgets its setup (reset complete
 * when queue_reset reads 0 again, queue_enable 0), the device itself stays
 * live; re-enabled on fresh rings it starts again from index 0.
 */
Test(vpci, queue_reset_resets_only_that_queue)
{
	struct virtq_used *u = vfx_gp(&fx, USED_GPA, 4 + 8 * QSIZE);

	bring_up_with(F_VERSION_1 | F_RING_RESET);
	offer(0, 0, 16, 1);
	kick_ioeventfd(0);
	cr_assert(wait_used(1));

	vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
	vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_Q_RESET, 2, 1);
	cr_assert(vfx_wait_queue_reset(&fx, 2000), "the queue reset never completed");
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 0);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_Q_SIZE, 2), VIRTIO_RNG_QSIZE);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_Q_DESCLO, 4), 0);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_Q_MSIX, 2), VIRTIO_MSI_NO_VECTOR);
	cr_assert_eq(vfx_status(&fx), 0x0f, "the device is not reset, nor broken");

	/* A stopped queue uses nothing. */
	offer(0, 0, 16, 2);
	kick_ioeventfd(0);
	usleep(20 * 1000);
	cr_assert_eq(le16toh(u->idx), 1);

	/* Fresh rings, enabled again: indices start over. */
	zero_rings();
	setup_queue(DESC_GPA, AVAIL_GPA, USED_GPA);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_Q_ENABLE, 2), 1);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_Q_RESET, 2), 0);
	offer(0, 0, 16, 1);
	kick_ioeventfd(0);
	cr_assert(wait_used(1));
	cr_assert_eq(vfx_status(&fx), 0x0f);
}

/* A queue reset on a queue that was never enabled, or out of range, is harmless. */
Test(vpci, queue_reset_of_an_idle_or_missing_queue)
{
	vfx_msix_enable(&fx, NVEC);
	cr_assert(negotiate(F_VERSION_1 | F_RING_RESET));
	vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
	vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_Q_RESET, 2, 1);
	cr_assert(vfx_wait_queue_reset(&fx, 2000));
	vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_Q_SELECT, 2, 5);
	vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_Q_RESET, 2, 1);
	cr_assert_eq(vfx_bar_rd(&fx, VIRTIO_PCI_COMMON_Q_RESET, 2), 0);
	cr_assert_eq(vfx_status(&fx) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0);
	vfx_bar_wr(&fx, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
	setup_queue(DESC_GPA, AVAIL_GPA, USED_GPA);
	vfx_set_status(&fx, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
				    VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	offer(0, 0, 16, 1);
	kick_ioeventfd(0);
	cr_assert(wait_used(1));
}

/* ---- the log ---- */

static void setup_logged(void)
{
	cr_redirect_stderr();
	setup();
}

TestSuite(vpci_log, .init = setup_logged, .fini = teardown);

/* Everything logged so far, without waiting for more. */
static size_t logged(char *buf, size_t len)
{
	int fd = fileno(cr_get_redirected_stderr());
	size_t got = 0;
	ssize_t n;

	fflush(stderr);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	while (got < len - 1 && (n = read(fd, buf + got, len - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = 0;
	return got;
}

static int count(const char *s, const char *needle)
{
	int n = 0;

	for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* A driver that breaks the device and resets it in a loop gets a bounded number of lines. */
Test(vpci_log, needs_reset_warnings_are_rate_limited)
{
	static char buf[64 * 1024];

	for (int i = 0; i < VIRTIO_PCI_LOG_BURST + 20; i++) {
		cr_assert(negotiate(F_VERSION_1));
		vfx_set_status(&fx, VIRTIO_STATUS_ACKNOWLEDGE); /* clears DRIVER and FEATURES_OK */
		cr_assert(vfx_status(&fx) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
		vfx_set_status(&fx, 0);
	}
	logged(buf, sizeof(buf));
	cr_assert_eq(count(buf, "virtio-rng: driver cleared a status bit; device needs reset\n"),
		     VIRTIO_PCI_LOG_BURST, "%s", buf);
}

/* Each fault is its own line, naming it. */
Test(vpci_log, each_needs_reset_is_logged_once_with_its_reason)
{
	static char buf[4096];

	cr_assert(negotiate(F_VERSION_1));
	vfx_set_status(&fx, VIRTIO_STATUS_ACKNOWLEDGE);
	vfx_set_status(&fx, VIRTIO_STATUS_ACKNOWLEDGE); /* already needs reset: nothing new */
	vfx_set_status(&fx, 0);
	vfx_set_status(&fx,
		       VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK);
	logged(buf, sizeof(buf));
	cr_assert_eq(count(buf, "\n"), 2, "%s", buf);
	cr_assert(strstr(buf, "driver cleared a status bit; device needs reset"), "%s", buf);
	cr_assert(strstr(buf, "DRIVER_OK without FEATURES_OK; device needs reset"), "%s", buf);
}
