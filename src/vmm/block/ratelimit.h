/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_BLOCK_RATELIMIT_H
#define BUNSHIN_VMM_BLOCK_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Token buckets for a disk: one of bytes, one of operations. Each refills
 * at its rate per second up to its burst; a request takes its bytes from
 * one and 1 from the other, from both or from neither. Rate 0 means
 * unlimited; burst 0 means one second's worth.
 *
 * A request bigger than the burst can never find that many tokens, so a
 * bucket that is full lets any request through and goes into debt: the
 * next requests wait until the debt is paid back. The clock is the
 * caller's (nanoseconds, monotonic), so tests drive time by hand.
 *
 * Not locked: the owner serialises calls.
 */

#define RATELIMIT_MAX 1000000000000000ULL /* 10^15 per second, or tokens of burst */
#define RATELIMIT_NS  1000000000ULL

struct ratelimit_limits {
	uint64_t bps, bps_burst;   /* bytes per second, bucket size in bytes */
	uint64_t iops, iops_burst; /* operations per second, bucket size in operations */
};

struct rl_bucket {
	uint64_t rate, burst; /* rate 0: unlimited */
	int64_t tokens;	      /* negative: debt */
	uint64_t last_ns;     /* the refill has accounted for time up to here */
};

struct ratelimit {
	struct rl_bucket bytes, ops;
};

/* Starts with full buckets. */
void ratelimit_init(struct ratelimit *rl, const struct ratelimit_limits *l, uint64_t now_ns);
/*
 * New limits, with full buckets: debt is forgiven and whoever waited may go
 * at once (an operator who changes limits wants to see them take effect).
 */
void ratelimit_set(struct ratelimit *rl, const struct ratelimit_limits *l, uint64_t now_ns);
void ratelimit_get(const struct ratelimit *rl, struct ratelimit_limits *out);
bool ratelimit_enabled(const struct ratelimit *rl);
/*
 * Takes bytes and one operation if both buckets allow it and returns true;
 * otherwise takes nothing, sets *wait_ns to the time until they would
 * (at least 1) and returns false.
 */
bool ratelimit_consume(struct ratelimit *rl, uint64_t bytes, uint64_t now_ns, uint64_t *wait_ns);

#endif
