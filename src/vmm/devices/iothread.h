/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_IOTHREAD_H
#define BUNSHIN_VMM_IOTHREAD_H

#include <stdbool.h>
#include <stdint.h>

#include "../../common/error.h"

/*
 * An I/O thread: one epoll loop that runs device work (queue
 * notifications, backend completions) so vCPU threads only ever signal an
 * eventfd. Handlers run on this thread, one at a time.
 *
 * Removal is synchronous: once iothread_remove_fd() returns, the handler
 * is not running and will not run again, so its owner may free what it
 * points at. A handler may remove itself (or another) from inside the loop.
 *
 * iothread_pause() is the quiesce hook (guest reboot, later VM pause and
 * snapshots): it returns once the thread is parked between handlers and
 * runs none until iothread_resume(). Pauses nest.
 */

struct iothread;

/* events: the EPOLL* bits that fired. */
typedef void (*iothread_fn)(void *opaque, uint32_t events);

/* Creates the loop and starts its thread, named name (at most 15 characters shown). */
struct iothread *iothread_create(const char *name, struct error *err);

/* Watches fd for events (EPOLLIN, ...), level-triggered. -EEXIST if fd is already watched. */
int iothread_add_fd(struct iothread *t, int fd, uint32_t events, iothread_fn fn, void *opaque);
/* -ENOENT if fd is not watched. */
int iothread_remove_fd(struct iothread *t, int fd);

void iothread_pause(struct iothread *t);
void iothread_resume(struct iothread *t);

/*
 * The most the thread busy-polls for the next event after handling some,
 * before it sleeps (0: never polls). Trades a little CPU after each burst
 * of work for the latency of waking a sleeping thread. Default
 * IOTHREAD_POLL_NS.
 */
#define IOTHREAD_POLL_NS     50000
#define IOTHREAD_POLL_MIN_NS 4000 /* where a window grows from, and under which it is none */
void iothread_set_poll(struct iothread *t, uint64_t ns);
/*
 * The next polling window after a wait of blocked_ns that polling for cur
 * did not end: the event came later, so poll longer (doubled, up to max)
 * unless it came later than max, where polling is only waste (halved, to
 * none). As QEMU adapts its AioContext polling.
 */
uint64_t iothread_poll_next(uint64_t cur, uint64_t blocked_ns, uint64_t max);

/* Handlers held, removed ones not yet freed included (for tests). */
unsigned int iothread_nhandlers(struct iothread *t);

/* True on the I/O thread itself. */
bool iothread_is_current(const struct iothread *t);

/* Ends the loop and joins the thread; handlers stay registered but never run again. */
void iothread_stop(struct iothread *t);
/* Stops it if need be and frees it. */
void iothread_destroy(struct iothread *t);

#endif
