/* SPDX-License-Identifier: MIT */
/*
 * test=mem-writer: keeps rewriting a pattern over mib MiB of RAM at
 * base_mib MiB and checks, before each rewrite, that a page still holds
 * what it last wrote there. Made for migration and diff snapshots: a page
 * the copy lost or took from an older time shows as a mismatch, printed.
 *   BUNSHIN-TEST name=mem-writer result=ready mib=M
 *   BUNSHIN-INFO mem-writer passes=N mismatches=M sum=HEX   (every report_ms)
 *   BUNSHIN-INFO mem-writer mismatch page=P want_gen=G     (the first few)
 *   BUNSHIN-TEST name=mem-writer result=pass|fail passes=N mismatches=M sum=HEX
 * Options: mib= (default 8), base_mib= (default 32), ms= (run time, default
 * 5000), report_ms= (default 250). Each pass bumps every page's generation.
 */
#include "guest.h"

#define MW_PAGE	     4096
#define MW_MAX_PAGES (256 * 256) /* 256 MiB */
#define MW_SHOW	     5

static uint32_t mw_gen[MW_MAX_PAGES];

static uint64_t mw_word(uint64_t page, uint64_t gen, uint64_t i)
{
	return (page << 40) ^ (gen << 16) ^ i ^ 0x9e3779b97f4a7c15ULL;
}

static bool mw_check(const uint64_t *p, uint64_t page, uint32_t gen)
{
	for (uint64_t i = 0; i < MW_PAGE / 8; i++)
		if (p[i] != mw_word(page, gen, i))
			return false;
	return true;
}

static void mw_fill(uint64_t *p, uint64_t page, uint32_t gen)
{
	for (uint64_t i = 0; i < MW_PAGE / 8; i++)
		p[i] = mw_word(page, gen, i);
}

static void mw_report(const char *what, uint64_t passes, uint64_t bad, uint64_t sum)
{
	struct line l;

	line_init(&l);
	line_str(&l, what);
	line_kv_dec(&l, "passes", passes);
	line_kv_dec(&l, "mismatches", bad);
	line_str(&l, " sum=");
	line_hex(&l, sum);
	line_emit(&l);
}

static void mw_mismatch(uint64_t page, uint32_t gen)
{
	struct line l;

	line_init(&l);
	line_str(&l, "BUNSHIN-INFO mem-writer mismatch");
	line_kv_dec(&l, "page", page);
	line_kv_dec(&l, "want_gen", gen);
	line_emit(&l);
}

/* One pass: check each page, then write its next generation. Returns mismatches. */
static uint64_t mw_pass(uint8_t *base, uint64_t npages, bool first, uint64_t *sum)
{
	uint64_t bad = 0;

	for (uint64_t pg = 0; pg < npages; pg++) {
		uint64_t *p = (uint64_t *)(base + pg * MW_PAGE);

		if (!first && !mw_check(p, pg, mw_gen[pg])) {
			bad++;
			mw_mismatch(pg, mw_gen[pg]);
		}
		mw_gen[pg]++;
		mw_fill(p, pg, mw_gen[pg]);
		*sum += mw_gen[pg] ^ pg;
	}
	return bad;
}

void run_mem_writer(void)
{
	uint64_t mib = 8, base_mib = 32, ms = 5000, report_ms = 250;
	uint64_t passes = 0, bad = 0, sum = 0, hz = tsc_hz();
	uint64_t npages, start, next_report;
	uint8_t *base;
	struct line l;

	opt_u64("mib", 10, &mib);
	opt_u64("base_mib", 10, &base_mib);
	opt_u64("ms", 10, &ms);
	opt_u64("report_ms", 10, &report_ms);
	npages = mib * 256;
	if (!mib || npages > MW_MAX_PAGES || (base_mib + mib) << 20 > g_boot.ram_top)
		fail_and_poweroff("mem-writer", "region-outside-ram");
	base = (uint8_t *)(uintptr_t)(base_mib << 20);
	bad += mw_pass(base, npages, true, &sum);
	passes++;
	line_init(&l);
	line_str(&l, "BUNSHIN-TEST name=mem-writer result=ready");
	line_kv_dec(&l, "mib", mib);
	line_emit(&l);
	start = rdtsc();
	next_report = start + report_ms * hz / 1000;
	while (rdtsc() - start < ms * hz / 1000) {
		uint64_t b = mw_pass(base, npages, false, &sum);

		bad += b;
		passes++;
		if (rdtsc() >= next_report || (b && bad <= MW_SHOW)) {
			mw_report("BUNSHIN-INFO mem-writer", passes, bad, sum);
			next_report = rdtsc() + report_ms * hz / 1000;
		}
	}
	mw_report(bad ? "BUNSHIN-TEST name=mem-writer result=fail"
		      : "BUNSHIN-TEST name=mem-writer result=pass",
		  passes, bad, sum);
}
