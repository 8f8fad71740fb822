/* SPDX-License-Identifier: MIT */
/*
 * test=virtio-rng: the entropy device (virtio 1.2, 5.4), one request queue
 * of device-writable buffers. Reads 4 KiB in 512-byte requests; passes when
 * the bytes are not all equal and two requests returned different data.
 *   BUNSHIN-TEST name=virtio-rng result=pass bytes=N requests=N features=0x...
 *     indirect=0|1 event_idx=0|1 irq=N|poll
 * Options: see virtio.c (virtio_poll, virtio_features).
 */
#include "virtio.h"

#define RNG_TOTAL 4096
#define RNG_CHUNK 512

static uint8_t rng_buf[RNG_TOTAL] __attribute__((aligned(64)));

void run_virtio_rng(void)
{
	static struct virtio_dev d;
	uint32_t got = 0, requests = 0;
	const char *reason = NULL;
	struct line l;

	memset(rng_buf, 0, sizeof(rng_buf));
	if (!virtio_find(&d, 4, 0) || !virtio_init(&d, 0) || !virtio_setup_queue(&d, 0) ||
	    !virtio_driver_ok(&d))
		reason = d.fail;
	while (!reason && got < RNG_TOTAL) {
		uint32_t want = RNG_TOTAL - got < RNG_CHUNK ? RNG_TOTAL - got : RNG_CHUNK;
		uint32_t len = 0;
		struct vbuf b = {rng_buf + got, want, true};
		if (!virtio_request(&d, 0, &b, 1, &len)) {
			reason = d.fail;
			break;
		}
		requests++;
		if (len > want) {
			reason = "bad-length";
			break;
		}
		if (len == 0 && requests > 64) {
			reason = "no-entropy";
			break;
		}
		got += len;
	}
	if (!reason) {
		bool varied = false;
		for (uint32_t i = 1; i < got && !varied; i++)
			varied = rng_buf[i] != rng_buf[0];
		if (!varied)
			reason = "constant";
		else if (requests < 2 || memcmp(rng_buf, rng_buf + RNG_CHUNK, 64) == 0)
			reason = "repeated";
	}
	if (!reason && d.use_irq && virtio_irqs(&d) == 0)
		reason = "no-irq";
	if (d.common)
		virtio_reset(&d);

	line_init(&l);
	line_str(&l, "BUNSHIN-TEST name=virtio-rng result=");
	line_str(&l, reason ? "fail" : "pass");
	if (reason)
		line_kv_str(&l, "reason", reason);
	line_kv_dec(&l, "bytes", got);
	line_kv_dec(&l, "requests", requests);
	if (d.pci)
		virtio_line_common(&l, &d);
	line_emit(&l);
}
