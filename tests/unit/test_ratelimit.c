// SPDX-License-Identifier: MIT
/* Token buckets on a clock the tests move by hand: no sleeping, no timing. */
#include <criterion/criterion.h>

#include "../../src/vmm/block/ratelimit.h"

#define MS 1000000ULL
#define S  1000000000ULL

static struct ratelimit rl;
static uint64_t wait_ns;

static bool take(uint64_t bytes, uint64_t now)
{
	return ratelimit_consume(&rl, bytes, now, &wait_ns);
}

Test(ratelimit, unlimited_by_default)
{
	ratelimit_init(&rl, &(struct ratelimit_limits){0}, 0);
	cr_assert_not(ratelimit_enabled(&rl));
	for (int i = 0; i < 100000; i++)
		cr_assert(take(1 << 20, 0));
}

Test(ratelimit, iops_burst_then_refill)
{
	ratelimit_init(&rl, &(struct ratelimit_limits){.iops = 100}, 0);
	for (int i = 0; i < 100; i++)
		cr_assert(take(4096, 0), "request %d", i);
	cr_assert_not(take(4096, 0));
	cr_assert_eq(wait_ns, 10 * MS);
	cr_assert_not(take(4096, 9 * MS));
	cr_assert_eq(wait_ns, 1 * MS);
	cr_assert(take(4096, 10 * MS));
	cr_assert_not(take(4096, 10 * MS));
}

Test(ratelimit, fractions_of_a_token_are_kept)
{
	int got = 0;

	ratelimit_init(&rl, &(struct ratelimit_limits){.iops = 3}, 0);
	for (int i = 0; i < 3; i++)
		cr_assert(take(0, 0));
	/* 1/3 s per token, looked at every millisecond: still 3 per second */

	for (uint64_t t = MS; t <= S; t += MS)
		got += take(0, t);
	cr_assert_eq(got, 3);
}

Test(ratelimit, bytes_bucket_waits_for_what_is_missing)
{
	ratelimit_init(&rl, &(struct ratelimit_limits){.bps = 1000, .bps_burst = 1000}, 0);
	cr_assert(take(600, 0));
	cr_assert_not(take(600, 0));
	cr_assert_eq(wait_ns, 200 * MS); /* 200 bytes short at 1000/s */
	cr_assert(take(600, 200 * MS));
}

Test(ratelimit, bigger_than_the_burst_goes_through_into_debt)
{
	ratelimit_init(&rl, &(struct ratelimit_limits){.bps = 1000}, 0);
	cr_assert(take(5000, 0)); /* full bucket: allowed, 4000 in debt */
	cr_assert_not(take(1, 0));
	cr_assert_eq(wait_ns, 4001 * MS);
	cr_assert_not(take(5000, 4 * S)); /* 0 tokens: needs a full bucket */
	cr_assert_eq(wait_ns, 1 * S);
	cr_assert(take(5000, 5 * S));
}

Test(ratelimit, both_buckets_or_neither)
{
	ratelimit_init(&rl, &(struct ratelimit_limits){.bps = 1000, .iops = 10, .iops_burst = 10},
		       0);
	cr_assert(take(1000, 0));
	cr_assert_not(take(1000, 0)); /* bytes short; the op must not be taken */
	for (int i = 0; i < 9; i++)
		cr_assert(take(0, 0), "op %d", i);
	cr_assert_not(take(0, 0));
	cr_assert_eq(wait_ns, 100 * MS);
}

Test(ratelimit, wait_is_the_longer_of_the_two)
{
	ratelimit_init(&rl, &(struct ratelimit_limits){.bps = 1000, .iops = 1}, 0);
	cr_assert(take(1000, 0));
	cr_assert_not(take(500, 0));
	cr_assert_eq(wait_ns, 1 * S); /* ops: 1 s; bytes: 0.5 s */
}

Test(ratelimit, a_long_idle_time_refills_only_to_the_burst)
{
	ratelimit_init(&rl, &(struct ratelimit_limits){.iops = 1000000, .iops_burst = 5}, 0);
	for (int i = 0; i < 5; i++)
		cr_assert(take(0, 0));
	cr_assert_not(take(0, 0));
	for (int i = 0; i < 5; i++)
		cr_assert(take(0, 3600 * S));
	cr_assert_not(take(0, 3600 * S));
}

Test(ratelimit, huge_rates_and_times_do_not_overflow)
{
	ratelimit_init(&rl, &(struct ratelimit_limits){.bps = RATELIMIT_MAX, .iops = RATELIMIT_MAX},
		       0);
	cr_assert(take(RATELIMIT_MAX, 0));
	cr_assert(take(RATELIMIT_MAX, UINT64_MAX / 2));
}

Test(ratelimit, set_changes_limits_at_run_time)
{
	struct ratelimit_limits l;

	ratelimit_init(&rl, &(struct ratelimit_limits){.iops = 1, .iops_burst = 1}, 0);
	cr_assert(take(0, 0));
	cr_assert_not(take(0, 0));
	ratelimit_set(&rl, &(struct ratelimit_limits){0}, 0); /* unlimited: released */
	cr_assert(take(0, 0));
	ratelimit_set(&rl, &(struct ratelimit_limits){.iops = 2}, 0); /* limited again: full */
	cr_assert(take(0, 0));
	cr_assert(take(0, 0));
	cr_assert_not(take(0, 0));
	ratelimit_get(&rl, &l);
	cr_assert_eq(l.iops, 2);
	cr_assert_eq(l.iops_burst, 2);
	cr_assert_eq(l.bps, 0);
	cr_assert_eq(l.bps_burst, 0);
	/* new limits start full, debt forgiven; a clock going backwards buys nothing */
	ratelimit_set(&rl, &(struct ratelimit_limits){.iops = 1000, .iops_burst = 3, .bps = 10},
		      10 * S);
	cr_assert(take(50, 10 * S)); /* 40 bytes in debt */
	cr_assert_not(take(10, 10 * S));
	ratelimit_set(&rl, &(struct ratelimit_limits){.iops = 1000, .iops_burst = 3, .bps = 10},
		      10 * S);
	cr_assert(take(10, 10 * S));
	cr_assert(take(0, 10 * S));
	cr_assert(take(0, 10 * S));
	cr_assert_not(take(0, 5 * S));
	cr_assert(take(0, 10 * S + MS));
	cr_assert(ratelimit_enabled(&rl));
}
