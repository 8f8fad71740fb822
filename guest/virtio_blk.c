/* SPDX-License-Identifier: MIT */
/*
 * test=virtio-blk: the block device (virtio 1.2, 5.2). Reads capacity and
 * blk_size from the device configuration, writes a pattern to 8 sectors
 * per queue (out header + data + status), reads it back, FLUSH, GET_ID,
 * and when negotiated DISCARD and WRITE_ZEROES (then reads back zeroes).
 *   BUNSHIN-TEST name=virtio-blk result=pass capacity=N blk_size=N sector=N
 *     queues=N id=STR flush=ok|absent discard=ok|absent|skipped
 *     write_zeroes=ok|absent|skipped readonly=0|1 features=0x...
 *     indirect=0|1 event_idx=0|1 irq=N|poll
 * Options: blk_sector=N (default 0), blk_readonly=1 (writes must fail with
 * VIRTIO_BLK_S_IOERR; nothing is written), blk_queues=N (request queues
 * to use, 0: all the device has, up to VIRTIO_MAX_QUEUES; default 1),
 * blk_seed=N (a fixed pattern instead of a TSC-seeded one, so the host can
 * check the image), blk_keep=1 (no discard or write-zeroes: the pattern
 * stays), virtio_poll, virtio_features, blk_wait=1 (once the device is set
 * up, print "name=virtio-blk result=ready" and wait for a serial line
 * "seed=N" that gives the seed: a VM snapshotted while it waits writes
 * what each restored copy is told), blk_probe=1 (before writing, read the
 * range and report found=SEED|none|other|error: whose pattern the disk
 * kept), blk_hold=N (N more rounds after the first write: each prints
 *   BUNSHIN-INFO virtio-blk round=K found=...
 * for the round before, then waits for its seed as blk_wait=1 does, probes
 * and writes again; a VM migrated or snapshotted in between shows what its
 * disk kept of its own writes).
 *
 * Queue q writes sectors [blk_sector + 8q, +8): all queues have their
 * request in flight at once, each on its own ring. Byte i of the range that
 * starts at sector s is (i * 7 + (i >> 9) * 13 + seed + s) mod 256. Discard
 * and write-zeroes go to queue 0's range, through the last queue.
 */
#include "virtio.h"

#define VIRTIO_BLK_F_RO		  5
#define VIRTIO_BLK_F_BLK_SIZE	  6
#define VIRTIO_BLK_F_FLUSH	  9
#define VIRTIO_BLK_F_MQ		  12
#define VIRTIO_BLK_F_DISCARD	  13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

#define VIRTIO_BLK_CFG_BLK_SIZE	  20
#define VIRTIO_BLK_CFG_NUM_QUEUES 34

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
#define BLK_BYTES   (BLK_SECTORS * 512)
#define BLK_ID_LEN  20
#define NQ	    VIRTIO_MAX_QUEUES

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
static struct blk_hdr hdr[NQ] __attribute__((aligned(16)));
static struct blk_seg seg __attribute__((aligned(16)));
static volatile uint8_t blk_status[NQ] __attribute__((aligned(16)));
static uint8_t wbuf[NQ][BLK_BYTES] __attribute__((aligned(4096)));
static uint8_t rbuf[NQ][BLK_BYTES] __attribute__((aligned(4096)));
static char id[BLK_ID_LEN + 1];

/* The chain of one request on queue q: header, optional data, status. */
static int blk_chain(struct vbuf *b, uint16_t q, uint32_t type, uint64_t sector, void *data,
		     uint32_t len, bool dev_writes)
{
	int n = 0;

	hdr[q].type = type;
	hdr[q].reserved = 0;
	hdr[q].sector = sector;
	blk_status[q] = VIRTIO_BLK_S_NONE;
	b[n++] = (struct vbuf){&hdr[q], sizeof(hdr[q]), false};
	if (len)
		b[n++] = (struct vbuf){data, len, dev_writes};
	b[n++] = (struct vbuf){(void *)&blk_status[q], 1, true};
	return n;
}

/* One request on queue q. Returns the status byte, or VIRTIO_BLK_S_NONE when the transport
 * failed. */
static uint8_t blk_req(uint16_t q, uint32_t type, uint64_t sector, void *data, uint32_t len,
		       bool dev_writes)
{
	struct vbuf b[3];
	int n = blk_chain(b, q, type, sector, data, len, dev_writes);

	if (!virtio_request(&d, q, b, n, NULL))
		return VIRTIO_BLK_S_NONE;
	return blk_status[q];
}

/*
 * The same request type on queues [0, nq) at once, queue q on its own 8
 * sectors and buffer: all submitted, then all notified, then all waited
 * for. Returns the first status that is not want (VIRTIO_BLK_S_NONE when the
 * transport failed), else want.
 */
static uint8_t blk_req_all(uint32_t nq, uint32_t type, uint64_t sector, uint8_t (*bufs)[BLK_BYTES],
			   bool dev_writes, uint8_t want)
{
	uint8_t st = want;

	for (uint16_t q = 0; q < nq; q++) {
		struct vbuf b[3];
		int n = blk_chain(b, q, type, sector + (uint64_t)q * BLK_SECTORS, bufs[q],
				  BLK_BYTES, dev_writes);

		if (virtio_submit(&d, q, b, n) < 0)
			return VIRTIO_BLK_S_NONE;
	}
	for (uint16_t q = 0; q < nq; q++)
		virtio_kick(&d, q);
	for (uint16_t q = 0; q < nq; q++) {
		if (!virtio_wait_used(&d, q, 5000) || virtio_get_used(&d, q, NULL) < 0)
			return VIRTIO_BLK_S_NONE;
		if (st == want)
			st = blk_status[q];
	}
	return st;
}

/* blk_wait=1: the seed from a "seed=N" serial line. */
static uint8_t blk_wait_seed(uint8_t seed)
{
	char buf[64];
	struct line l;
	uint32_t n, v = 0;

	line_init(&l);
	line_str(&l, "BUNSHIN-TEST name=virtio-blk result=ready");
	line_emit(&l);
	n = serial_read_line(buf, sizeof(buf));
	if (n < 6 || memcmp(buf, "seed=", 5))
		return seed;
	for (uint32_t i = 5; i < n && buf[i] >= '0' && buf[i] <= '9'; i++)
		v = v * 10 + (uint32_t)(buf[i] - '0');
	return (uint8_t)v;
}

static void blk_pattern(uint8_t *p, uint8_t seed, uint64_t sector)
{
	for (uint32_t i = 0; i < BLK_BYTES; i++)
		p[i] = (uint8_t)(i * 7 + (i >> 9) * 13 + seed + sector);
}

/*
 * blk_probe=1: the seed whose pattern the range holds before this run
 * writes it, -1 for zeroes, -2 for anything else, -3 when the read fails.
 * A clone restored from a snapshot, or a VM booted again, so reports what
 * its disk kept.
 */
static int blk_probe(uint32_t nq, uint64_t sector)
{
	uint8_t seed, zero = 0;

	if (blk_req_all(nq, VIRTIO_BLK_T_IN, sector, rbuf, true, VIRTIO_BLK_S_OK))
		return -3;
	seed = (uint8_t)(rbuf[0][0] - sector);
	for (uint32_t q = 0; q < nq; q++)
		for (uint32_t i = 0; i < BLK_BYTES; i++)
			zero |= rbuf[q][i];
	if (!zero)
		return -1;
	for (uint32_t q = 0; q < nq; q++) {
		blk_pattern(wbuf[q], seed, sector + (uint64_t)q * BLK_SECTORS);
		if (memcmp(rbuf[q], wbuf[q], BLK_BYTES))
			return -2;
	}
	return seed;
}

static void blk_line_found(struct line *l, int found)
{
	static const char *const what[] = {"none", "other", "error"};

	if (found >= 0)
		line_kv_dec(l, "found", (uint64_t)found);
	else
		line_kv_str(l, "found", what[-found - 1]);
}

/* How many queues to use: blk_queues=N, 0 meaning all the device has. 0 when it has too few. */
static uint32_t blk_nqueues(void)
{
	uint64_t want = 1;
	uint32_t have = 1;

	opt_u64("blk_queues", 10, &want);
	if (virtio_has(&d, VIRTIO_BLK_F_MQ))
		have = virtio_cfg16(&d, VIRTIO_BLK_CFG_NUM_QUEUES);
	if (have > d.nqueues)
		have = d.nqueues;
	if (have > NQ)
		have = NQ;
	if (want == 0)
		return have;
	return want <= have ? (uint32_t)want : 0;
}

static bool blk_setup(uint32_t *nq)
{
	if (!virtio_find(&d, 2, 0) ||
	    !virtio_init(&d, 1ULL << VIRTIO_BLK_F_RO | 1ULL << VIRTIO_BLK_F_BLK_SIZE |
				     1ULL << VIRTIO_BLK_F_FLUSH | 1ULL << VIRTIO_BLK_F_DISCARD |
				     1ULL << VIRTIO_BLK_F_WRITE_ZEROES | 1ULL << VIRTIO_BLK_F_MQ))
		return false;
	*nq = blk_nqueues();
	if (!*nq) {
		d.fail = "queues";
		return false;
	}
	for (uint16_t q = 0; q < *nq; q++)
		if (!virtio_setup_queue(&d, q))
			return false;
	return virtio_driver_ok(&d);
}

/* Sets *reason (and *bad) when st is not what the step wanted. */
static bool blk_check(uint8_t st, uint8_t want, const char *what, const char **reason, int *bad)
{
	if (st == want)
		return true;
	*reason = st == VIRTIO_BLK_S_NONE && d.fail ? d.fail : what;
	*bad = st;
	return false;
}

/* One round: the pattern of seed written over the range, read back and compared. */
static bool blk_round(uint32_t nq, uint64_t sector, uint8_t seed, bool ro, const char **reason,
		      int *bad_status)
{
	uint8_t want = ro ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK, st;

	/* A pattern that depends on the seed and the sector: queues write different bytes. */
	for (uint32_t q = 0; q < nq; q++)
		blk_pattern(wbuf[q], seed, sector + (uint64_t)q * BLK_SECTORS);
	st = blk_req_all(nq, VIRTIO_BLK_T_OUT, sector, wbuf, false, want);
	if (st == VIRTIO_BLK_S_NONE && d.fail) {
		*reason = d.fail;
		return false;
	}
	if (!blk_check(st, want,
		       ro && st == VIRTIO_BLK_S_OK ? "write-not-rejected" : "write-status", reason,
		       bad_status))
		return false;
	memset(rbuf, 0x5a, sizeof(rbuf));
	st = blk_req_all(nq, VIRTIO_BLK_T_IN, sector, rbuf, true, VIRTIO_BLK_S_OK);
	if (!blk_check(st, VIRTIO_BLK_S_OK, "read-status", reason, bad_status))
		return false;
	for (uint32_t q = 0; q < nq && !ro; q++)
		if (memcmp(rbuf[q], wbuf[q], BLK_BYTES) != 0) {
			*reason = "mismatch";
			return false;
		}
	return true;
}

/* blk_hold: the round just done, before the next one waits for its seed. */
static void blk_line_round(uint64_t round, int found)
{
	struct line l;

	line_init(&l);
	line_str(&l, "BUNSHIN-INFO virtio-blk");
	line_kv_dec(&l, "round", round);
	blk_line_found(&l, found);
	line_emit(&l);
}

void run_virtio_blk(void)
{
	const char *reason = NULL;
	const char *flush = "absent", *discard = "absent", *wz = "absent";
	uint64_t capacity = 0, sector = 0, ro = 0, keep = 0, wait = 0, probe = 0, hold = 0, seed64;
	uint32_t blk_size = 512, nq = 0;
	int bad_status = -1, found = -4;
	struct line l;
	uint8_t st, seed;

	opt_u64("blk_sector", 10, &sector);
	opt_u64("blk_readonly", 10, &ro);
	opt_u64("blk_keep", 10, &keep);
	opt_u64("blk_wait", 10, &wait);
	opt_u64("blk_probe", 10, &probe);
	opt_u64("blk_hold", 10, &hold);
	seed64 = (rdtsc() >> 4) | 1;
	opt_u64("blk_seed", 10, &seed64);
	seed = (uint8_t)seed64;
	memset(id, 0, sizeof(id));

	if (!blk_setup(&nq)) {
		reason = d.fail;
		goto out;
	}
	if (!d.device_cfg) {
		reason = "no-device-cfg";
		goto out;
	}
	capacity = virtio_cfg64(&d, 0);
	if (virtio_has(&d, VIRTIO_BLK_F_BLK_SIZE))
		blk_size = virtio_cfg32(&d, VIRTIO_BLK_CFG_BLK_SIZE);
	if (sector + (uint64_t)nq * BLK_SECTORS > capacity || sector + BLK_SECTORS < sector) {
		reason = "capacity";
		goto out;
	}

	if (wait)
		seed = blk_wait_seed(seed);
	if (probe)
		found = blk_probe(nq, sector);
	if (!blk_round(nq, sector, seed, ro, &reason, &bad_status))
		goto out;
	for (uint64_t r = 1; r <= hold; r++) {
		blk_line_round(r, found);
		seed = blk_wait_seed(seed);
		if (probe)
			found = blk_probe(nq, sector);
		if (!blk_round(nq, sector, seed, ro, &reason, &bad_status))
			goto out;
	}

	for (uint16_t q = 0; q < nq && virtio_has(&d, VIRTIO_BLK_F_FLUSH); q++) {
		st = blk_req(q, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, false);
		if (!blk_check(st, VIRTIO_BLK_S_OK, "flush-status", &reason, &bad_status))
			goto out;
		flush = "ok";
	}

	st = blk_req(0, VIRTIO_BLK_T_GET_ID, 0, id, BLK_ID_LEN, true);
	if (st != VIRTIO_BLK_S_UNSUPP &&
	    !blk_check(st, VIRTIO_BLK_S_OK, "get-id-status", &reason, &bad_status))
		goto out;
	if (st != VIRTIO_BLK_S_OK)
		id[0] = 0;

	uint16_t last = (uint16_t)(nq - 1);
	if (keep) {
		discard = wz = "skipped";
	} else if (!ro && virtio_has(&d, VIRTIO_BLK_F_DISCARD)) {
		seg = (struct blk_seg){sector, BLK_SECTORS, 0};
		st = blk_req(last, VIRTIO_BLK_T_DISCARD, 0, &seg, sizeof(seg), false);
		if (!blk_check(st, VIRTIO_BLK_S_OK, "discard-status", &reason, &bad_status))
			goto out;
		discard = "ok";
	}
	if (!keep && !ro && virtio_has(&d, VIRTIO_BLK_F_WRITE_ZEROES)) {
		seg = (struct blk_seg){sector, BLK_SECTORS, 0};
		st = blk_req(last, VIRTIO_BLK_T_WRITE_ZEROES, 0, &seg, sizeof(seg), false);
		if (!blk_check(st, VIRTIO_BLK_S_OK, "write-zeroes-status", &reason, &bad_status))
			goto out;
		memset(rbuf[last], 0x5a, BLK_BYTES);
		st = blk_req(last, VIRTIO_BLK_T_IN, sector, rbuf[last], BLK_BYTES, true);
		if (!blk_check(st, VIRTIO_BLK_S_OK, "read-status", &reason, &bad_status))
			goto out;
		for (uint32_t i = 0; i < BLK_BYTES && !reason; i++)
			if (rbuf[last][i])
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
	line_kv_dec(&l, "queues", nq);
	line_str(&l, " id=");
	if (!id[0])
		line_str(&l, "none");
	for (int i = 0; i < BLK_ID_LEN && id[i]; i++)
		line_chr(&l, id[i] > ' ' && id[i] < 127 ? id[i] : '_');
	line_kv_str(&l, "flush", flush);
	line_kv_str(&l, "discard", discard);
	line_kv_str(&l, "write_zeroes", wz);
	line_kv_dec(&l, "readonly", ro ? 1 : 0);
	if (found > -4)
		blk_line_found(&l, found);
	if (d.pci)
		virtio_line_common(&l, &d);
	line_emit(&l);
}
