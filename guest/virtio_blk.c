/* SPDX-License-Identifier: MIT */
/*
 * test=virtio-blk: the block device (virtio 1.2, 5.2). Reads capacity and
 * blk_size from the device configuration, writes a pattern to 8 sectors
 * (out header + data + status), reads it back, FLUSH, GET_ID, and when
 * negotiated DISCARD and WRITE_ZEROES (then reads back zeroes).
 *   BUNSHIN-TEST name=virtio-blk result=pass capacity=N blk_size=N sector=N
 *     id=STR flush=ok|absent discard=ok|absent write_zeroes=ok|absent
 *     readonly=0|1 features=0x... indirect=0|1 event_idx=0|1 irq=N|poll
 * Options: blk_sector=N (default 0), blk_readonly=1 (writes must fail with
 * VIRTIO_BLK_S_IOERR; nothing is written), virtio_poll, virtio_features.
 */
#include "virtio.h"

#define VIRTIO_BLK_F_RO		  5
#define VIRTIO_BLK_F_BLK_SIZE	  6
#define VIRTIO_BLK_F_FLUSH	  9
#define VIRTIO_BLK_F_DISCARD	  13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

#define VIRTIO_BLK_T_IN		  0
#define VIRTIO_BLK_T_OUT	  1
#define VIRTIO_BLK_T_FLUSH	  4
#define VIRTIO_BLK_T_GET_ID	  8
#define VIRTIO_BLK_T_DISCARD	  11
#define VIRTIO_BLK_T_WRITE_ZEROES 13

#define VIRTIO_BLK_S_OK	    0
#define VIRTIO_BLK_S_IOERR  1
#define VIRTIO_BLK_S_UNSUPP 2
#define VIRTIO_BLK_S_NONE   0xff /* not written by the device */

#define BLK_SECTORS 8 /* 4 KiB per test request */
#define BLK_ID_LEN  20

struct blk_hdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

struct blk_seg {
	uint64_t sector;
	uint32_t num_sectors;
	uint32_t flags;
};

static struct virtio_dev d;
static struct blk_hdr hdr __attribute__((aligned(16)));
static struct blk_seg seg __attribute__((aligned(16)));
static volatile uint8_t blk_status __attribute__((aligned(16)));
static uint8_t wbuf[BLK_SECTORS * 512] __attribute__((aligned(4096)));
static uint8_t rbuf[BLK_SECTORS * 512] __attribute__((aligned(4096)));
static char id[BLK_ID_LEN + 1];

/* One request: header, optional data (device-writable for reads), status.
 * Returns the status byte, or VIRTIO_BLK_S_NONE when the transport failed. */
static uint8_t blk_req(uint32_t type, uint64_t sector, void *data, uint32_t len, bool dev_writes)
{
	struct vbuf b[3];
	int n = 0;

	hdr.type = type;
	hdr.reserved = 0;
	hdr.sector = sector;
	blk_status = VIRTIO_BLK_S_NONE;
	b[n++] = (struct vbuf){&hdr, sizeof(hdr), false};
	if (len)
		b[n++] = (struct vbuf){data, len, dev_writes};
	b[n++] = (struct vbuf){(void *)&blk_status, 1, true};
	if (!virtio_request(&d, 0, b, n, NULL))
		return VIRTIO_BLK_S_NONE;
	return blk_status;
}

void run_virtio_blk(void)
{
	const char *reason = NULL;
	const char *flush = "absent", *discard = "absent", *wz = "absent";
	uint64_t capacity = 0, sector = 0, ro = 0;
	uint32_t blk_size = 512;
	int bad_status = -1;
	struct line l;
	uint8_t st;

	opt_u64("blk_sector", 10, &sector);
	opt_u64("blk_readonly", 10, &ro);
	memset(id, 0, sizeof(id));

	if (!virtio_find(&d, 2, 0) ||
	    !virtio_init(&d, 1ULL << VIRTIO_BLK_F_RO | 1ULL << VIRTIO_BLK_F_BLK_SIZE |
				     1ULL << VIRTIO_BLK_F_FLUSH | 1ULL << VIRTIO_BLK_F_DISCARD |
				     1ULL << VIRTIO_BLK_F_WRITE_ZEROES) ||
	    !virtio_setup_queue(&d, 0) || !virtio_driver_ok(&d)) {
		reason = d.fail;
		goto out;
	}
	if (!d.device_cfg) {
		reason = "no-device-cfg";
		goto out;
	}
	capacity = virtio_cfg64(&d, 0);
	if (virtio_has(&d, VIRTIO_BLK_F_BLK_SIZE))
		blk_size = virtio_cfg32(&d, 20);
	if (sector + BLK_SECTORS > capacity || sector + BLK_SECTORS < sector) {
		reason = "capacity";
		goto out;
	}

	/* Write a pattern that depends on the run (TSC) and the sector. */
	uint8_t seed = (uint8_t)(rdtsc() >> 4) | 1;
	for (uint32_t i = 0; i < sizeof(wbuf); i++)
		wbuf[i] = (uint8_t)(i * 7 + (i >> 9) * 13 + seed + sector);
	st = blk_req(VIRTIO_BLK_T_OUT, sector, wbuf, sizeof(wbuf), false);
	if (st == VIRTIO_BLK_S_NONE && d.fail) {
		reason = d.fail;
		goto out;
	}
	if (ro && st != VIRTIO_BLK_S_IOERR) {
		reason = st == VIRTIO_BLK_S_OK ? "write-not-rejected" : "write-status";
		bad_status = st;
		goto out;
	}
	if (!ro && st != VIRTIO_BLK_S_OK) {
		reason = "write-status";
		bad_status = st;
		goto out;
	}

	memset(rbuf, 0x5a, sizeof(rbuf));
	st = blk_req(VIRTIO_BLK_T_IN, sector, rbuf, sizeof(rbuf), true);
	if (st != VIRTIO_BLK_S_OK) {
		reason = d.fail ? d.fail : "read-status";
		bad_status = st;
		goto out;
	}
	if (!ro && memcmp(rbuf, wbuf, sizeof(wbuf)) != 0) {
		reason = "mismatch";
		goto out;
	}

	if (virtio_has(&d, VIRTIO_BLK_F_FLUSH)) {
		st = blk_req(VIRTIO_BLK_T_FLUSH, 0, NULL, 0, false);
		if (st != VIRTIO_BLK_S_OK) {
			reason = d.fail ? d.fail : "flush-status";
			bad_status = st;
			goto out;
		}
		flush = "ok";
	}

	st = blk_req(VIRTIO_BLK_T_GET_ID, 0, id, BLK_ID_LEN, true);
	if (st != VIRTIO_BLK_S_OK && st != VIRTIO_BLK_S_UNSUPP) {
		reason = d.fail ? d.fail : "get-id-status";
		bad_status = st;
		goto out;
	}
	if (st != VIRTIO_BLK_S_OK)
		id[0] = 0;

	if (!ro && virtio_has(&d, VIRTIO_BLK_F_DISCARD)) {
		seg = (struct blk_seg){sector, BLK_SECTORS, 0};
		st = blk_req(VIRTIO_BLK_T_DISCARD, 0, &seg, sizeof(seg), false);
		if (st != VIRTIO_BLK_S_OK) {
			reason = d.fail ? d.fail : "discard-status";
			bad_status = st;
			goto out;
		}
		discard = "ok";
	}
	if (!ro && virtio_has(&d, VIRTIO_BLK_F_WRITE_ZEROES)) {
		seg = (struct blk_seg){sector, BLK_SECTORS, 0};
		st = blk_req(VIRTIO_BLK_T_WRITE_ZEROES, 0, &seg, sizeof(seg), false);
		if (st != VIRTIO_BLK_S_OK) {
			reason = d.fail ? d.fail : "write-zeroes-status";
			bad_status = st;
			goto out;
		}
		memset(rbuf, 0x5a, sizeof(rbuf));
		st = blk_req(VIRTIO_BLK_T_IN, sector, rbuf, sizeof(rbuf), true);
		if (st != VIRTIO_BLK_S_OK) {
			reason = d.fail ? d.fail : "read-status";
			bad_status = st;
			goto out;
		}
		for (uint32_t i = 0; i < sizeof(rbuf) && !reason; i++)
			if (rbuf[i])
				reason = "zeroes-mismatch";
		if (reason)
			goto out;
		wz = "ok";
	}
	if (d.use_irq && virtio_irqs(&d) == 0)
		reason = "no-irq";

out:
	if (d.common)
		virtio_reset(&d);
	line_init(&l);
	line_str(&l, "BUNSHIN-TEST name=virtio-blk result=");
	line_str(&l, reason ? "fail" : "pass");
	if (reason)
		line_kv_str(&l, "reason", reason);
	if (bad_status >= 0)
		line_kv_dec(&l, "status", (uint64_t)bad_status);
	line_kv_dec(&l, "capacity", capacity);
	line_kv_dec(&l, "blk_size", blk_size);
	line_kv_dec(&l, "sector", sector);
	line_str(&l, " id=");
	if (!id[0])
		line_str(&l, "none");
	for (int i = 0; i < BLK_ID_LEN && id[i]; i++)
		line_chr(&l, id[i] > ' ' && id[i] < 127 ? id[i] : '_');
	line_kv_str(&l, "flush", flush);
	line_kv_str(&l, "discard", discard);
	line_kv_str(&l, "write_zeroes", wz);
	line_kv_dec(&l, "readonly", ro ? 1 : 0);
	if (d.pci)
		virtio_line_common(&l, &d);
	line_emit(&l);
}
