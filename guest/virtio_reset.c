/* SPDX-License-Identifier: MIT */
/*
 * test=virtio-reset: a driver that resets the block device with requests
 * in flight, in storms, and without waiting for the reset to end. Each
 * round brings the disk up, posts a queue's worth of 4 KiB writes, kicks,
 * and at once writes 0 to device_status reset_storm times (default 64) with
 * no wait between, and some other status writes mixed in that the device
 * must ignore while its reset is pending; then it resets properly (waits
 * for status 0, 4.1.4.3.2) and checks the device reads as reset. At the
 * end an ordinary write and read back must work.
 *   BUNSHIN-TEST name=virtio-reset result=pass rounds=N resets=N max_write_us=N avg_write_ns=N
 * max_write_us, avg_write_ns: how long one write of 0 kept this vCPU (it
 * only records the request; the host's I/O thread does the work). The
 * maximum is mostly the host's scheduling where its CPUs are busy.
 * Options: reset_rounds=N (default 50), reset_storm=N (default 64),
 * reset_ms=N (rounds for N ms instead of reset_rounds: a storm that lasts
 * as long on any machine, for tests that snapshot or migrate it).
 * Fail words: the setup's (see virtio.c), reset-timeout, request, readback.
 */
#include "virtio.h"

#define RST_SECTORS  8
#define RST_BYTES    (RST_SECTORS * 512)
#define RST_INFLIGHT 8
#define CC_STATUS    20 /* device_status in the common configuration (4.1.4.3) */

struct rst_hdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

static struct virtio_dev d;
static struct rst_hdr hdr[RST_INFLIGHT] __attribute__((aligned(16)));
static volatile uint8_t st[RST_INFLIGHT] __attribute__((aligned(16)));
static uint8_t wbuf[RST_BYTES] __attribute__((aligned(4096)));
static uint8_t rbuf[RST_BYTES] __attribute__((aligned(4096)));

/* Raw status writes: virtio_reset() waits, and this driver must not. */
static void status_write(uint8_t v)
{
	*(volatile uint8_t *)(d.common + CC_STATUS) = v;
}

static uint8_t status_read(void)
{
	return *(volatile uint8_t *)(d.common + CC_STATUS);
}

static bool rst_up(void)
{
	return virtio_init(&d, 0) && virtio_setup_queue(&d, 0) && virtio_driver_ok(&d);
}

static int rst_submit(int i, uint32_t type, uint64_t sector, void *buf)
{
	struct vbuf b[3] = {
		{&hdr[i], sizeof(hdr[i]), false},
		{buf, RST_BYTES, type == 0},
		{(void *)&st[i], 1, true},
	};

	hdr[i] = (struct rst_hdr){.type = type, .sector = sector};
	st[i] = 0xff;
	return virtio_submit(&d, 0, b, 3);
}

static uint64_t total_ticks;

/* Writes 0 n times as fast as it can; returns the longest one in TSC ticks. */
static uint64_t rst_storm(uint64_t n)
{
	uint64_t worst = 0;

	for (uint64_t i = 0; i < n; i++) {
		uint64_t t0 = rdtsc(), t;

		status_write(0);
		t = rdtsc() - t0;
		total_ticks += t;
		if (t > worst)
			worst = t;
		/* A driver that does not wait: the device must not hear it yet. */
		if (i % 8 == 7)
			status_write(VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER);
	}
	return worst;
}

/* One write and its read back on a device fresh from all that. */
static const char *rst_check(void)
{
	uint32_t len;
	struct vbuf w[3] = {{&hdr[0], sizeof(hdr[0]), false},
			    {wbuf, RST_BYTES, false},
			    {(void *)&st[0], 1, true}};
	struct vbuf r[3] = {{&hdr[0], sizeof(hdr[0]), false},
			    {rbuf, RST_BYTES, true},
			    {(void *)&st[0], 1, true}};

	for (uint32_t i = 0; i < RST_BYTES; i++)
		wbuf[i] = (uint8_t)(i * 7 + 3);
	hdr[0] = (struct rst_hdr){.type = 1, .sector = 64};
	st[0] = 0xff;
	if (!virtio_request(&d, 0, w, 3, &len) || st[0] != 0)
		return "request";
	hdr[0] = (struct rst_hdr){.type = 0, .sector = 64};
	st[0] = 0xff;
	if (!virtio_request(&d, 0, r, 3, &len) || st[0] != 0)
		return "request";
	return memcmp(wbuf, rbuf, RST_BYTES) ? "readback" : NULL;
}

static const char *rst_round(uint64_t round, uint64_t storm, uint64_t *worst)
{
	uint64_t t;

	if (!rst_up())
		return d.fail;
	for (int i = 0; i < RST_INFLIGHT; i++)
		if (rst_submit(i, 1, (round * RST_INFLIGHT + (uint64_t)i) * RST_SECTORS % 2048,
			       wbuf) < 0)
			return d.fail;
	virtio_kick(&d, 0);
	t = rst_storm(storm);
	if (t > *worst)
		*worst = t;
	virtio_reset(&d);
	if (status_read() != 0)
		return "reset-timeout";
	return NULL;
}

void run_virtio_reset(void)
{
	uint64_t rounds = 50, storm = 64, ms = 0, worst = 0, round = 0, end;
	const char *reason = NULL;
	struct line l;

	opt_u64("reset_rounds", 10, &rounds);
	opt_u64("reset_storm", 10, &storm);
	opt_u64("reset_ms", 10, &ms);
	end = rdtsc() + ms * (tsc_hz() / 1000);
	if (!storm)
		storm = 1;
	if (!virtio_find(&d, 2, 0))
		reason = d.fail;
	for (; (ms ? rdtsc() < end : round < rounds) && !reason; round++)
		reason = rst_round(round, storm, &worst);
	if (!reason)
		reason = rst_up() ? rst_check() : d.fail;
	if (d.common)
		virtio_reset(&d);

	line_init(&l);
	line_str(&l, "BUNSHIN-TEST name=virtio-reset result=");
	line_str(&l, reason ? "fail" : "pass");
	if (reason)
		line_kv_str(&l, "reason", reason);
	line_kv_dec(&l, "rounds", round);
	line_kv_dec(&l, "resets", round * storm);
	line_kv_dec(&l, "max_write_us", worst * 1000000 / tsc_hz());
	if (round)
		line_kv_dec(&l, "avg_write_ns",
			    total_ticks * 1000 / (tsc_hz() / 1000000) / (round * storm));
	line_emit(&l);
}
