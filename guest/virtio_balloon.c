/* SPDX-License-Identifier: MIT */
/*
 * test=virtio-balloon: the memory balloon (virtio 1.2, 5.5), inflateq (0)
 * and deflateq (1). Touches num_pages pages of its own RAM from 32 MiB up,
 * then gives all of them to the balloon, then takes half back and checks
 * they read as zeroes (the host really released them) before using them
 * again. It pauses after touching and after inflating so a test can sample
 * the VMM's memory: each pause ends with a byte on COM1, or after
 * balloon_wait_s seconds (default 5).
 *   BUNSHIN-INFO virtio-balloon touched pages=N
 *   BUNSHIN-INFO virtio-balloon inflated pages=N
 *   BUNSHIN-TEST name=virtio-balloon result=pass num_pages=N inflated=N deflated=N
 *     zeroed=N actual=N features=0x... indirect=0|1 event_idx=0|1 irq=N|poll
 * Fail words: no-target no-room not-zeroed, and those of virtio.c.
 */
#include "virtio.h"

#define BAL_INFLATEQ 0
#define BAL_DEFLATEQ 1
#define BAL_BASE     (32ULL << 20)
#define BAL_PAGE     4096ULL
#define BAL_BATCH    256 /* page numbers per buffer, as Linux sends them */
#define COM1	     0x3f8

static uint32_t pfns[BAL_BATCH] __attribute__((aligned(64)));

struct balloon {
	struct virtio_dev d;
	uint32_t num_pages, inflated, deflated, zeroed;
	uint64_t wait_s;
};

/* [BAL_BASE, + pages) inside one e820 RAM range. */
static bool bal_room(uint32_t pages)
{
	uint64_t end = BAL_BASE + (uint64_t)pages * BAL_PAGE;

	for (uint32_t i = 0; i < g_boot.e820_count; i++) {
		const struct e820_entry *e = &g_boot.e820[i];

		if (e->type == E820_RAM && e->addr <= BAL_BASE && e->addr + e->size >= end)
			return true;
	}
	return false;
}

static volatile uint64_t *bal_page(uint32_t i)
{
	return (volatile uint64_t *)(BAL_BASE + (uint64_t)i * BAL_PAGE);
}

/* Writes every page, so the host has to back all of them. */
static void bal_touch(uint32_t first, uint32_t n)
{
	for (uint32_t i = first; i < first + n; i++)
		*bal_page(i) = BAL_BASE + (uint64_t)i * BAL_PAGE + 1;
}

static void bal_info(const char *what, uint32_t pages)
{
	struct line l;

	line_init(&l);
	line_str(&l, "BUNSHIN-INFO virtio-balloon ");
	line_str(&l, what);
	line_kv_dec(&l, "pages", pages);
	line_emit(&l);
}

/* Until a byte arrives on COM1 (polled) or the timeout passes. */
static void bal_wait_host(const struct balloon *b)
{
	uint64_t deadline = rdtsc() + b->wait_s * tsc_hz();

	while ((int64_t)(rdtsc() - deadline) < 0) {
		if (inb(COM1 + 5) & 1) {
			(void)inb(COM1);
			return;
		}
		delay_us(1000);
	}
}

/* Sends page numbers [first, first + n) of the region on queue q. */
static bool bal_send(struct balloon *b, uint16_t q, uint32_t first, uint32_t n)
{
	for (uint32_t done = 0; done < n;) {
		uint32_t k = n - done < BAL_BATCH ? n - done : BAL_BATCH, written = 0;
		struct vbuf v = {pfns, k * 4, false};

		for (uint32_t i = 0; i < k; i++)
			pfns[i] = (uint32_t)((BAL_BASE >> 12) + first + done + i);
		if (!virtio_request(&b->d, q, &v, 1, &written))
			return false;
		done += k;
	}
	return true;
}

static void bal_set_actual(struct balloon *b, uint32_t pages)
{
	mmio_write32(b->d.device_cfg + 4, pages);
}

static bool bal_setup(struct balloon *b)
{
	struct virtio_dev *d = &b->d;

	if (!virtio_find(d, 5, 0) || !virtio_init(d, 0) || !virtio_setup_queue(d, BAL_INFLATEQ) ||
	    !virtio_setup_queue(d, BAL_DEFLATEQ) || !virtio_driver_ok(d))
		return false;
	b->num_pages = virtio_cfg32(d, 0);
	if (!b->num_pages)
		d->fail = "no-target";
	else if (!bal_room(b->num_pages))
		d->fail = "no-room";
	return !d->fail;
}

/* Deflates the first half, checks that it comes back as zeroes, and uses it again. */
static bool bal_deflate_half(struct balloon *b)
{
	uint32_t n = b->num_pages / 2;

	if (!bal_send(b, BAL_DEFLATEQ, 0, n))
		return false;
	b->deflated = n;
	for (uint32_t i = 0; i < n; i++)
		b->zeroed += *bal_page(i) == 0;
	bal_touch(0, n);
	for (uint32_t i = 0; i < n; i++)
		if (*bal_page(i) != BAL_BASE + (uint64_t)i * BAL_PAGE + 1)
			return b->d.fail = "reuse", false;
	if (b->zeroed != n)
		return b->d.fail = "not-zeroed", false;
	bal_set_actual(b, b->num_pages - n);
	return true;
}

static bool bal_run(struct balloon *b)
{
	if (!bal_setup(b))
		return false;
	bal_touch(0, b->num_pages);
	bal_info("touched", b->num_pages);
	bal_wait_host(b);
	if (!bal_send(b, BAL_INFLATEQ, 0, b->num_pages))
		return false;
	b->inflated = b->num_pages;
	bal_set_actual(b, b->num_pages);
	bal_info("inflated", b->num_pages);
	bal_wait_host(b);
	return bal_deflate_half(b);
}

void run_virtio_balloon(void)
{
	static struct balloon b = {.wait_s = 5};
	const char *reason = NULL;
	struct line l;

	opt_u64("balloon_wait_s", 10, &b.wait_s);
	if (!bal_run(&b))
		reason = b.d.fail ? b.d.fail : "failed";

	line_init(&l);
	line_str(&l, "BUNSHIN-TEST name=virtio-balloon result=");
	line_str(&l, reason ? "fail" : "pass");
	if (reason)
		line_kv_str(&l, "reason", reason);
	line_kv_dec(&l, "num_pages", b.num_pages);
	line_kv_dec(&l, "inflated", b.inflated);
	line_kv_dec(&l, "deflated", b.deflated);
	line_kv_dec(&l, "zeroed", b.zeroed);
	if (b.d.common)
		line_kv_dec(&l, "actual", virtio_cfg32(&b.d, 4));
	if (b.d.pci)
		virtio_line_common(&l, &b.d);
	if (b.d.common)
		virtio_reset(&b.d);
	line_emit(&l);
}
