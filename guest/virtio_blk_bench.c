/* SPDX-License-Identifier: MIT */
/*
 * test=blk-bench: throughput and latency of the first virtio-blk device, for
 * bench/blk.sh (the same guest on bunshin-vmm and on QEMU). One queue of 64
 * entries; a request is header + data + status (one descriptor with
 * INDIRECT_DESC). Rows, one line each:
 *   BUNSHIN-BENCH blk row=randread4k_qd1 iops=N reqs=N ms=N.N
 *   ... randread4k_qd32, randwrite4k_qd1, randwrite4k_qd32 (4 KiB at random
 *   4 KiB-aligned offsets), seqread1m and seqwrite1m (mbps=N.N, 10^6 bytes/s,
 *   1 MiB requests, seq_qd in flight), and
 *   BUNSHIN-BENCH blk row=lat4k_qd1 lat_us_p50=N.N lat_us_p99=N.N ... (QD1
 *   4 KiB random reads: TSC just before the notify write to TSC when the
 *   used index moves), then
 *   BUNSHIN-TEST name=blk-bench result=pass capacity=N span_mib=N mode=poll|irq ...
 *
 * By default the guest polls the used ring at CPL 3 (no MSI-X vectors): on
 * KVM-under-PVM a halt and an interrupt go through emulated CPL-0 code
 * whose cost would swamp the device's; bench_irq=1 uses MSI-X and halts
 * instead, as a real guest would. The spin loop touches no device register,
 * so the vCPU makes no exit while it waits.
 *
 * Options: bench_ms=N (measured time per row, default 300), warm_ms=N
 * (unmeasured lead-in per row, default 20), bench_reqs=N (stop each row
 * after N requests instead of after bench_ms; CI smoke runs; also turns off
 * the warm-up), seq_qd=N (1..4, default 4), seq_segs=N (data descriptors per
 * 1 MiB request: 1, 2 or 4, default 4), blk_span_mib=N (offsets stay in the
 * first N MiB, default the whole disk), bench_row=NAME (that row only),
 * bench_irq=1, virtio_features.
 * Writes destroy the image's contents.
 */
#include "virtio.h"

#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX  2
#define VIRTIO_BLK_F_FLUSH    9
#define VIRTIO_BLK_T_IN	      0
#define VIRTIO_BLK_T_OUT      1
#define VIRTIO_BLK_S_OK	      0
#define VIRTIO_BLK_S_NONE     0xff

#define SMALL	    4096u
#define SEQ	    (1u << 20)
#define MAX_QD	    32
#define MAX_SEQ_QD  4
#define MAX_SEGS    4 /* data descriptors; + header + status <= VQ_MAX_SEGS */
#define LAT_MAX	    (1u << 16)
#define TIMEOUT_S   5
#define SPIN_CHECKS 4096 /* spins between TSC deadline checks */
#define PRNG_SEED   0x9e3779b97f4a7c15ULL

enum metric { M_IOPS, M_MBPS, M_LAT };

struct row {
	const char *name;
	uint32_t type;
	bool seq;
	uint32_t qd; /* 0: seq_qd */
	enum metric metric;
};

static const struct row rows[] = {
	{"randread4k_qd1", VIRTIO_BLK_T_IN, false, 1, M_IOPS},
	{"randread4k_qd32", VIRTIO_BLK_T_IN, false, 32, M_IOPS},
	{"randwrite4k_qd1", VIRTIO_BLK_T_OUT, false, 1, M_IOPS},
	{"randwrite4k_qd32", VIRTIO_BLK_T_OUT, false, 32, M_IOPS},
	{"seqread1m", VIRTIO_BLK_T_IN, true, 0, M_MBPS},
	{"seqwrite1m", VIRTIO_BLK_T_OUT, true, 0, M_MBPS},
	{"lat4k_qd1", VIRTIO_BLK_T_IN, false, 1, M_LAT},
};

struct blk_hdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

/* Per in-flight request: its header and status byte live together. */
struct slot {
	struct blk_hdr hdr;
	volatile uint8_t status;
	uint64_t kicked; /* TSC just before the notify that carried it */
} __attribute__((aligned(64)));

static struct virtio_dev d;
static struct slot slots[VQ_MAX_SIZE];
static int8_t head_slot[VQ_MAX_SIZE];
static uint8_t unkicked[VQ_MAX_SIZE]; /* slots submitted since the last kick */
static uint32_t nunkicked;

/*
 * Data buffers and latency samples: 4 MiB+ that every row overwrites
 * anyway, so not in .bss — head.S zeroes .bss with CPL-0 code, which is
 * emulated (slow) on PVM and would lengthen every scenario's boot.
 */
static uint8_t small_buf[MAX_QD][SMALL] __attribute__((section(".noinit"), aligned(4096)));
static uint8_t seq_buf[MAX_SEQ_QD][SEQ] __attribute__((section(".noinit"), aligned(4096)));
static uint32_t lat[LAT_MAX] __attribute__((section(".noinit")));

static uint64_t hz, span_blocks, prng_state, seq_next;
static uint32_t seq_segs = 4;
static const char *reason;
static const char *fail_row; /* the row that was running when it failed */

/* xorshift64*: cheap, and the same sequence on every VMM for one seed. */
static uint64_t prng(void)
{
	prng_state ^= prng_state >> 12;
	prng_state ^= prng_state << 25;
	prng_state ^= prng_state >> 27;
	return prng_state * 0x2545f4914f6cdd1dULL;
}

static uint64_t ticks_to_us(uint64_t t)
{
	return t * 1000000 / hz;
}

/* "key=I.F" with one decimal from a value in tenths. */
static void line_kv_tenths(struct line *l, const char *key, uint64_t tenths)
{
	line_chr(l, ' ');
	line_str(l, key);
	line_chr(l, '=');
	line_dec(l, tenths / 10);
	line_chr(l, '.');
	line_dec(l, tenths % 10);
}

static bool set_reason(const char *r)
{
	if (!reason)
		reason = r;
	return false;
}

static bool submit(const struct row *r, uint32_t s)
{
	uint32_t bytes = r->seq ? SEQ : SMALL;
	uint64_t off;
	struct vbuf b[MAX_SEGS + 2];
	int n = 0, head;

	if (r->seq) {
		off = seq_next;
		seq_next = (seq_next + SEQ) % (span_blocks * SMALL);
	} else {
		off = prng() % span_blocks * SMALL;
	}
	slots[s].hdr = (struct blk_hdr){r->type, 0, off / 512};
	slots[s].status = VIRTIO_BLK_S_NONE;
	b[n++] = (struct vbuf){&slots[s].hdr, sizeof(slots[s].hdr), false};
	if (r->seq) {
		for (uint32_t i = 0; i < seq_segs; i++)
			b[n++] = (struct vbuf){seq_buf[s] + i * (bytes / seq_segs),
					       bytes / seq_segs, r->type == VIRTIO_BLK_T_IN};
	} else {
		b[n++] = (struct vbuf){small_buf[s], bytes, r->type == VIRTIO_BLK_T_IN};
	}
	b[n++] = (struct vbuf){(void *)&slots[s].status, 1, true};
	head = virtio_submit(&d, 0, b, n);
	if (head < 0)
		return set_reason(d.fail);
	head_slot[head] = (int8_t)s;
	unkicked[nunkicked++] = (uint8_t)s;
	return true;
}

static void kick(void)
{
	uint64_t now = rdtsc();

	for (uint32_t i = 0; i < nunkicked; i++)
		slots[unkicked[i]].kicked = now;
	nunkicked = 0;
	virtio_kick(&d, 0);
}

/* Until the used index moves. Polling reads only the ring in guest RAM. */
static bool wait_used(void)
{
	struct virtq *q = &d.vq[0];
	uint64_t deadline = rdtsc() + TIMEOUT_S * hz;

	if (d.use_irq)
		return virtio_wait_used(&d, 0, TIMEOUT_S * 1000) || set_reason(d.fail);
	for (uint32_t spin = 1; q->used[1] == q->last_used; spin++) {
		if (spin % SPIN_CHECKS == 0 && (int64_t)(rdtsc() - deadline) > 0)
			return set_reason(virtio_needs_reset(&d) ? "needs-reset" : "timeout");
		cpu_relax();
	}
	return true;
}

enum run_kind {
	WARM, /* unmeasured lead-in */
	MEASURE,
	SAMPLE, /* measured, and each request's latency kept in lat[] */
};

struct result {
	uint64_t reqs, ticks, nlat;
};

/*
 * Keeps qd requests in flight until 'ticks' have passed or max_reqs were
 * submitted (whichever is set), then drains.
 */
static bool run_row(const struct row *r, uint32_t qd, uint64_t ticks, uint64_t max_reqs,
		    enum run_kind kind, struct result *res)
{
	uint64_t t0, submitted = 0, done = 0, nlat = 0;
	uint32_t inflight = 0;
	bool stopping = false;
	int id;

	/*
	 * Every measured run of a row, on any VMM, sees the same offsets in the
	 * same order; the warm-up sees others, so that what it brought into a
	 * cache below the VMM does not favour whichever VMM warmed up faster.
	 */
	prng_state = kind == WARM ? ~PRNG_SEED : PRNG_SEED;
	seq_next = kind == WARM ? span_blocks / 2 * SMALL / SEQ * SEQ : 0;
	t0 = rdtsc();
	for (uint32_t s = 0; s < qd && (!max_reqs || submitted < max_reqs); s++) {
		if (!submit(r, s))
			return false;
		submitted++;
		inflight++;
	}
	kick();
	while (inflight) {
		if (!wait_used())
			return false;
		uint64_t now = rdtsc();
		uint32_t len;
		while ((id = virtio_get_used(&d, 0, &len)) >= 0) {
			uint32_t s = (uint32_t)head_slot[id];
			if (slots[s].status != VIRTIO_BLK_S_OK)
				return set_reason("io-status");
			inflight--;
			done++;
			if (kind == SAMPLE && nlat < LAT_MAX) {
				uint64_t dt = now - slots[s].kicked;
				lat[nlat++] = dt > 0xffffffffu ? 0xffffffffu : (uint32_t)dt;
			}
			if (!stopping)
				stopping = max_reqs ? submitted >= max_reqs : now - t0 >= ticks;
			if (stopping)
				continue;
			if (!submit(r, s))
				return false;
			submitted++;
			inflight++;
		}
		if (id == -2)
			return set_reason(d.fail);
		kick();
	}
	res->reqs = done;
	res->ticks = rdtsc() - t0;
	res->nlat = nlat;
	return true;
}

/* Shell sort: the samples are few enough, and there is no libc here. */
static void sort_u32(uint32_t *a, uint64_t n)
{
	static const uint32_t gaps[] = {8929, 3905, 1750, 701, 301, 132, 57, 23, 10, 4, 1};

	for (uint32_t g = 0; g < ARRAY_SIZE(gaps); g++) {
		uint64_t gap = gaps[g];
		for (uint64_t i = gap; i < n; i++) {
			uint32_t v = a[i];
			uint64_t j = i;
			for (; j >= gap && a[j - gap] > v; j -= gap)
				a[j] = a[j - gap];
			a[j] = v;
		}
	}
}

static uint64_t tick_tenths_us(uint32_t t)
{
	return (uint64_t)t * 10000000 / hz;
}

static void report(const struct row *r, uint32_t qd, const struct result *res)
{
	uint64_t us = ticks_to_us(res->ticks);
	struct line l;

	if (!us)
		us = 1;
	line_init(&l);
	line_str(&l, "BUNSHIN-BENCH blk row=");
	line_str(&l, r->name);
	if (r->metric == M_IOPS) {
		line_kv_dec(&l, "iops", res->reqs * 1000000 / us);
	} else if (r->metric == M_MBPS) {
		/* bytes per microsecond is 10^6 bytes per second */
		line_kv_tenths(&l, "mbps", res->reqs * SEQ * 10 / us);
	} else {
		uint64_t n = res->nlat, p99 = n * 99 / 100;
		sort_u32(lat, n);
		line_kv_tenths(&l, "lat_us_p50", tick_tenths_us(lat[n / 2]));
		line_kv_tenths(&l, "lat_us_p99", tick_tenths_us(lat[p99 < n ? p99 : n - 1]));
		line_kv_tenths(&l, "lat_us_min", tick_tenths_us(lat[0]));
		line_kv_tenths(&l, "lat_us_max", tick_tenths_us(lat[n - 1]));
	}
	line_kv_dec(&l, "reqs", res->reqs);
	line_kv_tenths(&l, "ms", us / 100);
	line_kv_dec(&l, "qd", qd);
	if (r->seq)
		line_kv_dec(&l, "segs", seq_segs);
	line_emit(&l);
}

/* Fits seq_segs to what the device accepts: seg_max data segments, size_max bytes each. */
static bool fit_segments(void)
{
	uint32_t seg_max = 0, size_max = 0;

	if (virtio_has(&d, VIRTIO_BLK_F_SEG_MAX))
		seg_max = virtio_cfg32(&d, 12);
	if (virtio_has(&d, VIRTIO_BLK_F_SIZE_MAX))
		size_max = virtio_cfg32(&d, 8);
	while (size_max && SEQ / seq_segs > size_max && seq_segs < MAX_SEGS)
		seq_segs *= 2;
	while (seg_max && seq_segs > seg_max && seq_segs > 1)
		seq_segs /= 2;
	if ((size_max && SEQ / seq_segs > size_max) || (seg_max && seq_segs > seg_max))
		return set_reason("segments");
	return true;
}

void run_blk_bench(void)
{
	uint64_t bench_ms = 300, warm_ms = 20, max_reqs = 0, seq_qd = 4, segs = 4, span_mib = 0;
	uint64_t irq = 0, capacity = 0;
	const char *only = NULL;
	size_t only_len = 0;
	uint32_t nrows = 0;
	struct result res;
	struct line l;

	reason = NULL;
	fail_row = NULL;
	opt_u64("bench_ms", 10, &bench_ms);
	opt_u64("warm_ms", 10, &warm_ms);
	if (opt_u64("bench_reqs", 10, &max_reqs) && max_reqs)
		warm_ms = 0;
	opt_u64("seq_qd", 10, &seq_qd);
	opt_u64("seq_segs", 10, &segs);
	opt_u64("blk_span_mib", 10, &span_mib);
	opt_u64("bench_irq", 10, &irq);
	opt_get("bench_row", &only, &only_len);
	if (seq_qd < 1 || seq_qd > MAX_SEQ_QD || (segs != 1 && segs != 2 && segs != 4) ||
	    bench_ms == 0) {
		set_reason("bad-option");
		goto out;
	}
	seq_segs = (uint32_t)segs;
	hz = tsc_hz();

	if (!virtio_find(&d, 2, 0)) {
		set_reason(d.fail);
		goto out;
	}
	if (!irq)
		d.use_irq = false;
	/*
	 * FLUSH as every real driver does: without it the device must be
	 * write-through (virtio 1.2, 5.2.5), and QEMU then syncs after every
	 * write, which would compare different cache modes.
	 */
	if (!virtio_init(&d, 1ULL << VIRTIO_BLK_F_SIZE_MAX | 1ULL << VIRTIO_BLK_F_SEG_MAX |
				     1ULL << VIRTIO_BLK_F_FLUSH) ||
	    !virtio_setup_queue(&d, 0) || !virtio_driver_ok(&d)) {
		set_reason(d.fail);
		goto out;
	}
	if (!d.device_cfg) {
		set_reason("no-device-cfg");
		goto out;
	}
	if (!fit_segments())
		goto out;
	/* QD32 needs one ring entry per request: INDIRECT_DESC, or 3 entries each. */
	if (!virtio_has(&d, VIRTIO_F_INDIRECT_DESC) && d.vq[0].size < 3 * MAX_QD) {
		set_reason("queue-too-small");
		goto out;
	}
	capacity = virtio_cfg64(&d, 0);
	span_blocks = capacity / (SEQ / 512) * (SEQ / SMALL); /* whole MiBs */
	if (span_mib && span_mib * (SEQ / SMALL) < span_blocks)
		span_blocks = span_mib * (SEQ / SMALL);
	if (!span_blocks) {
		set_reason("capacity");
		goto out;
	}

	/* Touch every buffer once, so no row pays for first-use faults. */
	for (uint32_t i = 0; i < MAX_QD; i++)
		memset(small_buf[i], 0xa5 ^ i, SMALL);
	for (uint32_t i = 0; i < MAX_SEQ_QD; i++)
		memset(seq_buf[i], 0x3c ^ i, SEQ);

	for (uint32_t i = 0; i < ARRAY_SIZE(rows) && !reason; i++) {
		const struct row *r = &rows[i];
		uint32_t qd = r->qd ? r->qd : (uint32_t)seq_qd;
		if (only && (only_len != strlen(r->name) || memcmp(only, r->name, only_len)))
			continue;
		nrows++;
		fail_row = r->name;
		if (warm_ms && !run_row(r, qd, warm_ms * hz / 1000, 0, WARM, &res))
			break;
		fail_row = r->name;
		if (!run_row(r, qd, bench_ms * hz / 1000, max_reqs,
			     r->metric == M_LAT ? SAMPLE : MEASURE, &res))
			break;
		if (!res.reqs || (r->metric == M_LAT && !res.nlat)) {
			set_reason("no-requests");
			break;
		}
		report(r, qd, &res);
		fail_row = NULL;
	}
	if (!reason && !nrows)
		set_reason("bad-option"); /* bench_row named no row */

out:
	if (d.common)
		virtio_reset(&d);
	line_init(&l);
	line_str(&l, "BUNSHIN-TEST name=blk-bench result=");
	line_str(&l, reason ? "fail" : "pass");
	if (reason)
		line_kv_str(&l, "reason", reason);
	if (reason && fail_row)
		line_kv_str(&l, "row", fail_row);
	line_kv_dec(&l, "capacity", capacity);
	line_kv_dec(&l, "span_mib", span_blocks * SMALL / SEQ);
	line_kv_str(&l, "mode", d.use_irq ? "irq" : "poll");
	line_kv_dec(&l, "tsc_khz", hz / 1000);
	line_kv_dec(&l, "seq_qd", seq_qd);
	line_kv_dec(&l, "seq_segs", seq_segs);
	if (d.pci)
		virtio_line_common(&l, &d);
	line_emit(&l);
}
