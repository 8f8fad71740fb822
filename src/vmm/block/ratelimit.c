// SPDX-License-Identifier: MIT
/*
 * Token buckets in whole tokens. A refill adds the whole tokens the time
 * since last_ns bought and moves last_ns forward by just that much time,
 * so the fraction of a token left over is not lost: a slow rate still
 * refills at exactly its rate however often it is looked at. 128-bit
 * products keep rate * time from overflowing.
 */
#include "ratelimit.h"

typedef unsigned __int128 u128;

static uint64_t rl_burst(uint64_t rate, uint64_t burst)
{
	return burst ? burst : rate;
}

static void rl_refill(struct rl_bucket *b, uint64_t now_ns)
{
	u128 added;

	if (!b->rate || now_ns <= b->last_ns)
		return;
	added = (u128)b->rate * (now_ns - b->last_ns) / RATELIMIT_NS;
	if (added >= (u128)((int64_t)b->burst - b->tokens)) {
		b->tokens = (int64_t)b->burst; /* full: time beyond that buys nothing */
		b->last_ns = now_ns;
		return;
	}
	b->tokens += (int64_t)added;
	b->last_ns += (uint64_t)(added * RATELIMIT_NS / b->rate);
}

static void rl_bucket_set(struct rl_bucket *b, uint64_t rate, uint64_t burst, uint64_t now_ns)
{
	b->rate = rate;
	b->burst = rl_burst(rate, burst);
	b->tokens = (int64_t)b->burst;
	b->last_ns = now_ns;
}

void ratelimit_init(struct ratelimit *rl, const struct ratelimit_limits *l, uint64_t now_ns)
{
	*rl = (struct ratelimit){0};
	ratelimit_set(rl, l, now_ns);
}

void ratelimit_set(struct ratelimit *rl, const struct ratelimit_limits *l, uint64_t now_ns)
{
	rl_bucket_set(&rl->bytes, l->bps, l->bps_burst, now_ns);
	rl_bucket_set(&rl->ops, l->iops, l->iops_burst, now_ns);
}

void ratelimit_get(const struct ratelimit *rl, struct ratelimit_limits *out)
{
	*out = (struct ratelimit_limits){
		.bps = rl->bytes.rate,
		.bps_burst = rl->bytes.rate ? rl->bytes.burst : 0,
		.iops = rl->ops.rate,
		.iops_burst = rl->ops.rate ? rl->ops.burst : 0,
	};
}

bool ratelimit_enabled(const struct ratelimit *rl)
{
	return rl->bytes.rate || rl->ops.rate;
}

/*
 * 0 if the bucket lets cost through now, else the nanoseconds until it
 * will. A full bucket lets anything through (cost beyond the burst is
 * taken as debt), so what it waits for is min(cost, burst) tokens.
 */
static uint64_t rl_wait(struct rl_bucket *b, uint64_t cost, uint64_t now_ns)
{
	uint64_t need, deficit, ns, accrued;

	if (!b->rate || !cost)
		return 0;
	rl_refill(b, now_ns);
	need = cost < b->burst ? cost : b->burst;
	if (b->tokens >= (int64_t)need)
		return 0;
	deficit = (uint64_t)((int64_t)need - b->tokens);
	ns = (uint64_t)(((u128)deficit * RATELIMIT_NS + b->rate - 1) / b->rate);
	accrued = now_ns > b->last_ns ? now_ns - b->last_ns : 0; /* a fraction of a token */
	return ns > accrued ? ns - accrued : 1;
}

bool ratelimit_consume(struct ratelimit *rl, uint64_t bytes, uint64_t now_ns, uint64_t *wait_ns)
{
	uint64_t wb = rl_wait(&rl->bytes, bytes, now_ns);
	uint64_t wo = rl_wait(&rl->ops, 1, now_ns);

	if (wb || wo) {
		*wait_ns = wb > wo ? wb : wo;
		return false;
	}
	if (rl->bytes.rate)
		rl->bytes.tokens -= (int64_t)bytes;
	if (rl->ops.rate)
		rl->ops.tokens -= 1;
	*wait_ns = 0;
	return true;
}
