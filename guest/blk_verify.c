/* SPDX-License-Identifier: MIT */
/*
 * test=blk-verify: device writes across a migration. Reads random 4 KiB
 * blocks of the first virtio-blk disk (read-only, filled by the host with
 * blk_verify_word() below) into a ring of bufs buffers, and checks each
 * buffer only when it comes round again, bufs reads later. The guest never
 * writes those buffers: only the device does, so a copy of guest memory
 * that misses the device's writes leaves a buffer holding an older block,
 * and the check shows it.
 *   BUNSHIN-TEST name=blk-verify result=ready bufs=N
 *   BUNSHIN-INFO blk-verify reads=N mismatches=M          (every report_ms)
 *   BUNSHIN-INFO blk-verify mismatch buf=I block=B        (the first few)
 *   BUNSHIN-TEST name=blk-verify result=pass|fail reads=N mismatches=M
 * Options: bufs=N (1..2048, default 1024), ms=N (default 5000), report_ms=N
 * (default 250), virtio_poll=1 advised; fill=1: the guest writes the
 * pattern over the whole disk first (a writable disk, e.g. a copy-on-write
 * overlay over zeroes: then only the overlay's bitmap can give it back).
 */
#include "virtio.h"

#define BV_BLOCK    4096
#define BV_MAX	    2048
#define BV_SHOW	    5
#define BV_T_IN	    0
#define BV_T_OUT    1
#define BV_NO_BLOCK UINT64_MAX

struct bv_hdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

/* 8 MiB that only the device writes: not .bss, which CPL-0 code would zero slowly. */
static uint8_t bv_buf[BV_MAX][BV_BLOCK] __attribute__((section(".noinit"), aligned(4096)));
static uint64_t bv_block[BV_MAX];
static struct bv_hdr bv_req;
static volatile uint8_t bv_status;
static struct virtio_dev bv_dev;

/* What the host wrote: word i of block b (tests/integration/test_migrate.c). */
static uint64_t blk_verify_word(uint64_t b, uint64_t i)
{
	return (b << 32) ^ i ^ 0x5bd1e9955bd1e995ULL;
}

static bool bv_check(uint32_t i)
{
	const uint64_t *w = (const uint64_t *)bv_buf[i];

	for (uint64_t k = 0; k < BV_BLOCK / 8; k++)
		if (w[k] != blk_verify_word(bv_block[i], k))
			return false;
	return true;
}

static bool bv_read(uint32_t i, uint64_t block)
{
	struct vbuf b[3] = {{&bv_req, sizeof(bv_req), false},
			    {bv_buf[i], BV_BLOCK, true},
			    {(void *)&bv_status, 1, true}};
	uint32_t written;

	bv_req = (struct bv_hdr){.type = BV_T_IN, .sector = block * (BV_BLOCK / 512)};
	bv_status = 0xff;
	if (!virtio_request(&bv_dev, 0, b, 3, &written) || bv_status != 0)
		return false;
	bv_block[i] = block;
	return true;
}

/* Writes the pattern of block into the disk, from bv_buf[0]. */
static bool bv_write(uint64_t block)
{
	struct vbuf b[3] = {{&bv_req, sizeof(bv_req), false},
			    {bv_buf[0], BV_BLOCK, false},
			    {(void *)&bv_status, 1, true}};
	uint64_t *w = (uint64_t *)bv_buf[0];
	uint32_t written;

	for (uint64_t k = 0; k < BV_BLOCK / 8; k++)
		w[k] = blk_verify_word(block, k);
	bv_req = (struct bv_hdr){.type = BV_T_OUT, .sector = block * (BV_BLOCK / 512)};
	bv_status = 0xff;
	return virtio_request(&bv_dev, 0, b, 3, &written) && bv_status == 0;
}

static void bv_line(const char *what, uint64_t reads, uint64_t bad)
{
	struct line l;

	line_init(&l);
	line_str(&l, what);
	line_kv_dec(&l, "reads", reads);
	line_kv_dec(&l, "mismatches", bad);
	line_emit(&l);
}

static void bv_mismatch(uint32_t i)
{
	struct line l;

	line_init(&l);
	line_str(&l, "BUNSHIN-INFO blk-verify mismatch");
	line_kv_dec(&l, "buf", i);
	line_kv_dec(&l, "block", bv_block[i]);
	line_emit(&l);
}

static void bv_setup(uint64_t *blocks)
{
	if (!virtio_find(&bv_dev, 2, 0) || !virtio_init(&bv_dev, 0) ||
	    !virtio_setup_queue(&bv_dev, 0) || !virtio_driver_ok(&bv_dev))
		fail_and_poweroff("blk-verify", bv_dev.fail ? bv_dev.fail : "virtio");
	if (!bv_dev.device_cfg)
		fail_and_poweroff("blk-verify", "no-device-cfg");
	*blocks = virtio_cfg64(&bv_dev, 0) / (BV_BLOCK / 512);
	if (!*blocks)
		fail_and_poweroff("blk-verify", "capacity");
}

void run_blk_verify(void)
{
	uint64_t nbufs = 1024, ms = 5000, report_ms = 250, blocks, hz = tsc_hz();
	uint64_t reads = 0, bad = 0, seed = 0x9e3779b97f4a7c15ULL, start, next_report, fill = 0;
	struct line l;

	opt_u64("bufs", 10, &nbufs);
	opt_u64("ms", 10, &ms);
	opt_u64("report_ms", 10, &report_ms);
	if (!nbufs || nbufs > BV_MAX)
		fail_and_poweroff("blk-verify", "bad-option");
	opt_u64("fill", 10, &fill);
	bv_setup(&blocks);
	for (uint64_t b = 0; fill && b < blocks; b++)
		if (!bv_write(b))
			fail_and_poweroff("blk-verify", bv_dev.fail ? bv_dev.fail : "write-error");
	for (uint32_t i = 0; i < nbufs; i++, reads++)
		if (!bv_read(i, i % blocks))
			fail_and_poweroff("blk-verify", bv_dev.fail ? bv_dev.fail : "io-error");
	line_init(&l);
	line_str(&l, "BUNSHIN-TEST name=blk-verify result=ready");
	line_kv_dec(&l, "bufs", nbufs);
	line_emit(&l);
	start = rdtsc();
	next_report = start + report_ms * hz / 1000;
	for (uint32_t i = 0; rdtsc() - start < ms * hz / 1000; i = (i + 1) % nbufs, reads++) {
		if (!bv_check(i) && ++bad <= BV_SHOW)
			bv_mismatch(i);
		seed ^= seed >> 12;
		seed ^= seed << 25;
		seed ^= seed >> 27;
		if (!bv_read(i, (seed * 0x2545f4914f6cdd1dULL >> 11) % blocks))
			fail_and_poweroff("blk-verify", bv_dev.fail ? bv_dev.fail : "io-error");
		if (rdtsc() >= next_report) {
			bv_line("BUNSHIN-INFO blk-verify", reads, bad);
			next_report = rdtsc() + report_ms * hz / 1000;
		}
	}
	bv_line(bad ? "BUNSHIN-TEST name=blk-verify result=fail"
		    : "BUNSHIN-TEST name=blk-verify result=pass",
		reads, bad);
}
