/* SPDX-License-Identifier: MIT */
/*
 * test=virtio-abuse: a hostile driver. On the entropy device's queue it
 * writes rings that break the split-virtqueue rules (virtio 1.2, 2.7) one
 * way at a time, notifies, and expects the device to refuse the ring by
 * setting DEVICE_NEEDS_RESET (2.1.2) rather than use it. After each case
 * it resets the device, initialises it again and checks that an ordinary
 * request is served: a broken queue must cost nothing but a reset.
 *   BUNSHIN-TEST name=virtio-abuse result=pass cases=N needs_reset=N recovered=N
 * with one line per case before it:
 *   BUNSHIN-INFO virtio-abuse case=NAME needs_reset=0|1 recovered=0|1
 * Options: abuse=NAME runs one case (default: all, in the order below);
 * abuse_rounds=N runs the selection N times (default 1), as a guest that
 * tries to flood the host's log would.
 * Fail words: the setup's (see virtio.c), unknown-case, CASE-no-reset,
 * CASE-not-recovered (the failing case is also given as case=NAME).
 */
#include "virtio.h"

#define ABUSE_WAIT_MS 2000
#define ABUSE_OUTSIDE (1ULL << 45)	    /* far above any RAM the tests give */
#define ABUSE_WRAP    0xfffffffffffff000ULL /* + 0x2000 wraps past 2^64 */

struct abuse_case {
	const char *name;
	bool indirect; /* negotiate VIRTIO_F_INDIRECT_DESC */
	void (*build)(struct virtio_dev *d);
};

static struct virtio_dev d;
static uint8_t abuse_buf[512] __attribute__((aligned(64)));
static struct vring_desc table1[4] __attribute__((aligned(16)));
static struct vring_desc table2[4] __attribute__((aligned(16)));

static void set_desc(struct virtio_dev *dev, uint16_t i, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	volatile struct vring_desc *v = &dev->vq[0].desc[i];

	v->addr = addr;
	v->len = len;
	v->flags = flags;
	v->next = next;
}

static uint64_t buf(void)
{
	return (uint64_t)abuse_buf;
}

/* 0 -> 1 -> 0 ...: zero-length, so only the loop bound can stop it. */
static void build_loop(struct virtio_dev *dev)
{
	set_desc(dev, 0, buf(), 0, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	set_desc(dev, 1, buf(), 0, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 0);
	virtio_post_head(dev, 0, 0);
}

static void build_next_range(struct virtio_dev *dev)
{
	set_desc(dev, 0, buf(), 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, dev->vq[0].size);
	virtio_post_head(dev, 0, 0);
}

/* Every descriptor chained to the next, the last back to the first: longer than the queue. */
static void build_long_chain(struct virtio_dev *dev)
{
	uint16_t n = dev->vq[0].size;

	for (uint16_t i = 0; i < n; i++)
		set_desc(dev, i, buf(), 0, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT,
			 (uint16_t)((i + 1) % n));
	virtio_post_head(dev, 0, 0);
}

static void build_nested_indirect(struct virtio_dev *dev)
{
	table2[0] = (struct vring_desc){buf(), 16, VRING_DESC_F_WRITE, 0};
	table1[0] =
		(struct vring_desc){(uint64_t)table2, sizeof(table2[0]), VRING_DESC_F_INDIRECT, 0};
	set_desc(dev, 0, (uint64_t)table1, sizeof(table1[0]), VRING_DESC_F_INDIRECT, 0);
	virtio_post_head(dev, 0, 0);
}

/* A well-formed indirect table, but the feature was not negotiated. */
static void build_indirect_off(struct virtio_dev *dev)
{
	table1[0] = (struct vring_desc){buf(), 16, VRING_DESC_F_WRITE, 0};
	set_desc(dev, 0, (uint64_t)table1, sizeof(table1[0]), VRING_DESC_F_INDIRECT, 0);
	virtio_post_head(dev, 0, 0);
}

static void build_outside_ram(struct virtio_dev *dev)
{
	set_desc(dev, 0, ABUSE_OUTSIDE, 64, VRING_DESC_F_WRITE, 0);
	virtio_post_head(dev, 0, 0);
}

static void build_wrap(struct virtio_dev *dev)
{
	set_desc(dev, 0, ABUSE_WRAP, 0x2000, VRING_DESC_F_WRITE, 0);
	virtio_post_head(dev, 0, 0);
}

/* More chains available than the queue could ever hold; no ring entry is valid. */
static void build_avail_jump(struct virtio_dev *dev)
{
	set_desc(dev, 0, buf(), 16, VRING_DESC_F_WRITE, 0);
	virtio_set_avail_idx(dev, 0, (uint16_t)(dev->vq[0].size + 1));
}

static void build_head_range(struct virtio_dev *dev)
{
	virtio_post_head(dev, 0, dev->vq[0].size);
}

static void build_read_after_write(struct virtio_dev *dev)
{
	set_desc(dev, 0, buf(), 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	set_desc(dev, 1, buf() + 16, 16, 0, 0);
	virtio_post_head(dev, 0, 0);
}

static void build_indirect_empty(struct virtio_dev *dev)
{
	set_desc(dev, 0, (uint64_t)table1, 0, VRING_DESC_F_INDIRECT, 0);
	virtio_post_head(dev, 0, 0);
}

static const struct abuse_case cases[] = {
	{"loop", false, build_loop},
	{"next-range", false, build_next_range},
	{"long-chain", false, build_long_chain},
	{"nested-indirect", true, build_nested_indirect},
	{"indirect-off", false, build_indirect_off},
	{"outside-ram", false, build_outside_ram},
	{"wrap", false, build_wrap},
	{"avail-jump", false, build_avail_jump},
	{"head-range", false, build_head_range},
	{"read-after-write", false, build_read_after_write},
	{"indirect-empty", true, build_indirect_empty},
};

/* Reset, handshake, one queue, DRIVER_OK: what a driver does after DEVICE_NEEDS_RESET. */
static bool abuse_bring_up(bool indirect)
{
	uint64_t ring = 1ULL << VIRTIO_F_EVENT_IDX;

	if (indirect)
		ring |= 1ULL << VIRTIO_F_INDIRECT_DESC;
	d.fail = NULL;
	return virtio_init_ring(&d, 0, ring) && virtio_setup_queue(&d, 0) && virtio_driver_ok(&d);
}

/* An ordinary request after the reset: the device must serve it. */
static bool abuse_recovered(void)
{
	struct vbuf b = {abuse_buf, 64, true};
	uint32_t len = 0;

	virtio_reset(&d);
	if (!abuse_bring_up(true))
		return false;
	return virtio_request(&d, 0, &b, 1, &len) && len > 0 && len <= 64;
}

static void abuse_info(const char *name, bool reset, bool recovered)
{
	struct line l;

	line_init(&l);
	line_str(&l, "BUNSHIN-INFO virtio-abuse");
	line_kv_str(&l, "case", name);
	line_kv_dec(&l, "needs_reset", reset);
	line_kv_dec(&l, "recovered", recovered);
	line_emit(&l);
}

static bool wanted(const struct abuse_case *c)
{
	const char *v;
	size_t n;

	if (!opt_get("abuse", &v, &n) || (n == 3 && memcmp(v, "all", 3) == 0))
		return true;
	return n == strlen(c->name) && memcmp(v, c->name, n) == 0;
}

void run_virtio_abuse(void)
{
	uint32_t ncases = 0, nreset = 0, nrecovered = 0;
	const char *reason = NULL, *failed = NULL;
	static char why[48];
	uint64_t rounds = 1;
	struct line l;

	opt_u64("abuse_rounds", 10, &rounds);
	if (!virtio_find(&d, 4, 0))
		reason = d.fail;
	for (uint64_t i = 0; i < rounds * ARRAY_SIZE(cases) && !reason; i++) {
		const struct abuse_case *c = &cases[i % ARRAY_SIZE(cases)];
		bool reset, recovered = false;

		if (!wanted(c))
			continue;
		ncases++;
		if (!abuse_bring_up(c->indirect)) {
			reason = d.fail;
			failed = c->name;
			break;
		}
		c->build(&d);
		virtio_notify(&d, 0);
		reset = virtio_wait_status(&d, VIRTIO_S_DEVICE_NEEDS_RESET, ABUSE_WAIT_MS);
		nreset += reset;
		if (reset) {
			recovered = abuse_recovered();
			nrecovered += recovered;
		}
		abuse_info(c->name, reset, recovered);
		if (!reset || !recovered) {
			/* name the case in the word: CASE-no-reset, CASE-not-recovered */
			size_t k = strlen(c->name);
			const char *tail = reset ? "-not-recovered" : "-no-reset";

			memcpy(why, c->name, k);
			memcpy(why + k, tail, strlen(tail) + 1);
			reason = why;
			failed = c->name;
		}
	}
	if (!reason && !ncases)
		reason = "unknown-case";
	if (d.common)
		virtio_reset(&d);

	line_init(&l);
	line_str(&l, "BUNSHIN-TEST name=virtio-abuse result=");
	line_str(&l, reason ? "fail" : "pass");
	if (reason)
		line_kv_str(&l, "reason", reason);
	if (failed)
		line_kv_str(&l, "case", failed);
	line_kv_dec(&l, "cases", ncases);
	line_kv_dec(&l, "needs_reset", nreset);
	line_kv_dec(&l, "recovered", nrecovered);
	line_emit(&l);
}
