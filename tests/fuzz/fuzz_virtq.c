// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the virtqueue parser. The input becomes guest memory
 * and queue parameters (fuzz_virtq.h); the target configures a queue, pops
 * and pushes until the ring is empty or broken, and checks what the module
 * promises: every segment lies inside guest memory, counts and totals are
 * bounded and add up, a broken queue stays broken with the same error.
 *
 * Guest memory is a heap buffer of exactly the input's size, so AddressSanitizer
 * catches any byte read or written outside it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_virtq.h"
#include "../../src/vmm/virtio/virtq.h"

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__,       \
				#cond);                                                            \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#define MAX_ITERATIONS 1024
#define BATCH	       4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

static struct iovec iov[FUZZ_VIRTQ_MAX_SEGS];

static void build_gmem(struct gmem *m, uint8_t *buf, size_t len, bool split)
{
	memset(m, 0, sizeof(*m));
	m->memfd = -1;
	m->base = buf;
	m->size = len;
	if (split && len >= 2) {
		m->nslots = 2;
		m->slots[0] = (struct gmem_slot){.gpa = 0, .size = len / 2, .host = buf};
		m->slots[1] = (struct gmem_slot){.gpa = FUZZ_VIRTQ_HIGH_GPA,
						 .size = len - len / 2,
						 .host = buf + len / 2,
						 .offset = len / 2};
	} else {
		m->nslots = 1;
		m->slots[0] = (struct gmem_slot){.gpa = 0, .size = len, .host = buf};
	}
}

static bool inside_one_slot(const struct gmem *m, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (int i = 0; i < m->nslots; i++) {
		const struct gmem_slot *s = &m->slots[i];

		if (b >= s->host && n <= s->size && (size_t)(b - s->host) <= s->size - n)
			return true;
	}
	return false;
}

static void check_elem(const struct virtq *q, const struct gmem *m, const struct virtq_elem *e,
		       uint8_t fill, bool write)
{
	uint64_t out = 0, in = 0;
	volatile uint8_t sink;

	CHECK(e->head < q->size);
	CHECK(e->out_num + e->in_num <= e->max_segs);
	for (unsigned int i = 0; i < e->out_num + e->in_num; i++) {
		uint8_t *p = e->iov[i].iov_base;
		size_t n = e->iov[i].iov_len;

		CHECK(n > 0);
		CHECK(inside_one_slot(m, p, n));
		/* Touch both ends: ASan vouches for the host pointer too. */
		sink = p[0];
		sink = p[n - 1];
		(void)sink;
		if (i < e->out_num) {
			out += n;
		} else {
			in += n;
			if (write)
				memset(p, fill, n);
		}
	}
	CHECK(out == e->out_len);
	CHECK(in == e->in_len);
	CHECK(out + in <= UINT32_MAX);
}

static void check_broken(struct virtq *q, struct virtq_elem *e, int rc)
{
	struct error err = {0};

	CHECK(rc != -ENODEV);
	CHECK(virtq_broken(q) == rc);
	CHECK(virtq_pop(q, e, &err) == rc);
	CHECK(err.code == -rc && err.msg[0]);
	CHECK(!virtq_has_avail(q));
}

/* Pushes the batch, after checking that a bad head in it writes nothing. */
static void flush(struct virtq *q, struct virtq_used_elem *batch, unsigned int *n)
{
	uint16_t used_idx = q->used_idx;

	if (*n) {
		uint32_t id = batch[*n - 1].id;

		batch[*n - 1].id = q->size;
		CHECK(virtq_push_batch(q, batch, *n) == -EINVAL);
		CHECK(q->used_idx == used_idx);
		batch[*n - 1].id = id;
	}
	CHECK(virtq_push_batch(q, batch, *n) == 0);
	CHECK(q->used_idx == (uint16_t)(used_idx + *n));
	*n = 0;
}

static void run(struct virtq *q, const struct gmem *m, const struct fuzz_virtq_hdr *h,
		unsigned int max_segs)
{
	struct virtq_elem e = {.iov = iov, .max_segs = max_segs};
	struct virtq_used_elem batch[BATCH];
	unsigned int nbatch = 0;
	struct error err = {0};

	for (int i = 0; i < MAX_ITERATIONS; i++) {
		int rc = virtq_pop(q, &e, &err);

		if (rc == 0)
			break;
		if (rc < 0) {
			check_broken(q, &e, rc);
			break;
		}
		CHECK(rc == 1);
		check_elem(q, m, &e, h->fill, h->flags & FUZZ_VIRTQ_WRITE);
		batch[nbatch++] = (struct virtq_used_elem){.id = e.head, .len = e.in_len};
		if (!(h->flags & FUZZ_VIRTQ_BATCH) || nbatch == BATCH)
			flush(q, batch, &nbatch);
		(void)virtq_needs_notify(q);
		if (h->flags & FUZZ_VIRTQ_TOGGLE)
			(void)virtq_set_notify(q, i & 1);
	}
	flush(q, batch, &nbatch);
	(void)virtq_needs_notify(q);
}

/* Everything popped was pushed: pushes beyond that, or bad heads, are refused. */
static void check_push_limits(struct virtq *q)
{
	CHECK(virtq_push(q, 0, 0) == -ENOSPC);
	CHECK(virtq_push(q, q->size, 0) == -ENOSPC);
}

static void check_state_round_trip(struct virtq *q, const struct virtq_config *cfg)
{
	struct virtq_state st, st2;
	struct error err = {0};

	virtq_get_state(q, &st);
	virtq_reset(q);
	CHECK(!virtq_is_ready(q) && !virtq_broken(q));
	CHECK(virtq_configure(q, cfg, &err) == 0);
	CHECK(virtq_set_state(q, &st, &err) == 0);
	virtq_get_state(q, &st2);
	CHECK(st.last_avail_idx == st2.last_avail_idx && st.used_idx == st2.used_idx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct fuzz_virtq_hdr h;
	struct virtq_config cfg;
	struct error err = {0};
	struct gmem m;
	struct virtq q;
	uint8_t *buf;
	size_t mlen;

	if (len <= sizeof(h))
		return 0;
	memcpy(&h, data, sizeof(h));
	mlen = len - sizeof(h);
	buf = malloc(mlen);
	CHECK(buf);
	memcpy(buf, data + sizeof(h), mlen);
	build_gmem(&m, buf, mlen, h.flags & FUZZ_VIRTQ_SPLIT);

	cfg = (struct virtq_config){
		.size = 1U << (h.size_log2 % 16),
		.desc_gpa = h.desc_gpa,
		.avail_gpa = h.avail_gpa,
		.used_gpa = h.used_gpa,
		.features = ((h.flags & FUZZ_VIRTQ_INDIRECT) ? 1ULL << VIRTIO_F_INDIRECT_DESC : 0) |
			    ((h.flags & FUZZ_VIRTQ_EVENT_IDX) ? 1ULL << VIRTIO_F_EVENT_IDX : 0),
	};
	virtq_init(&q, &m);
	if (virtq_configure(&q, &cfg, &err) < 0) {
		CHECK(err.code == EINVAL && !virtq_is_ready(&q));
		CHECK(virtq_pop(&q, &(struct virtq_elem){0}, &err) == -ENODEV);
		goto out;
	}
	if (h.flags & FUZZ_VIRTQ_IMPORT) {
		struct virtq_state st = {.last_avail_idx = h.last_avail_idx,
					 .used_idx = h.used_idx};

		if (virtq_set_state(&q, &st, &err) < 0)
			CHECK((uint16_t)(st.last_avail_idx - st.used_idx) > q.size);
	}
	run(&q, &m, &h, h.max_segs % (FUZZ_VIRTQ_MAX_SEGS + 1));
	if (!virtq_broken(&q) && q.last_avail_idx == q.used_idx) {
		check_push_limits(&q);
		check_state_round_trip(&q, &cfg);
	}
out:
	free(buf);
	return 0;
}
