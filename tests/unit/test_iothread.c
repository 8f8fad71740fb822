// SPDX-License-Identifier: MIT
/*
 * The I/O thread's loop: handlers run on it, removal is synchronous,
 * pause parks it, stop joins it.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "../../src/vmm/devices/iothread.h"

static struct iothread *io;
static int efd;

struct probe {
	int fd;
	atomic_int calls;
	atomic_bool on_thread;
	atomic_bool remove_self;
	atomic_int sleep_ms;
};

static void setup(void)
{
	struct error err = {0};

	io = iothread_create("test-io", &err);
	cr_assert_not_null(io, "%s", err.msg);
	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	cr_assert_geq(efd, 0);
}

static void teardown(void)
{
	iothread_destroy(io);
	close(efd);
}

TestSuite(iothread, .init = setup, .fini = teardown);

static void probe_fn(void *opaque, uint32_t events)
{
	struct probe *p = opaque;
	uint64_t v;

	if (read(p->fd, &v, sizeof(v)) < 0)
		return;
	atomic_store(&p->on_thread, iothread_is_current(io));
	if (atomic_load(&p->sleep_ms))
		usleep(atomic_load(&p->sleep_ms) * 1000);
	if (atomic_load(&p->remove_self))
		iothread_remove_fd(io, p->fd);
	atomic_fetch_add(&p->calls, 1);
}

static void kick(int fd)
{
	uint64_t one = 1;

	cr_assert_eq(write(fd, &one, sizeof(one)), sizeof(one));
}

/* Waits up to 2 s for the count to reach n. */
static bool wait_calls(struct probe *p, int n)
{
	for (int i = 0; i < 2000; i++) {
		if (atomic_load(&p->calls) >= n)
			return true;
		usleep(1000);
	}
	return false;
}

Test(iothread, handler_runs_on_the_io_thread)
{
	struct probe p = {.fd = efd};

	cr_assert_eq(iothread_add_fd(io, efd, EPOLLIN, probe_fn, &p), 0);
	cr_assert_not(iothread_is_current(io));
	kick(efd);
	cr_assert(wait_calls(&p, 1));
	cr_assert(atomic_load(&p.on_thread));
	kick(efd);
	cr_assert(wait_calls(&p, 2));
	cr_assert_eq(iothread_remove_fd(io, efd), 0);
}

Test(iothread, duplicate_and_unknown_fds)
{
	struct probe p = {.fd = efd};

	cr_assert_eq(iothread_add_fd(io, efd, EPOLLIN, probe_fn, &p), 0);
	cr_assert_eq(iothread_add_fd(io, efd, EPOLLIN, probe_fn, &p), -EEXIST);
	cr_assert_eq(iothread_remove_fd(io, efd), 0);
	cr_assert_eq(iothread_remove_fd(io, efd), -ENOENT);
	cr_assert_eq(iothread_add_fd(io, -1, EPOLLIN, probe_fn, &p), -EBADF);
	/* A removed fd may be watched again. */
	cr_assert_eq(iothread_add_fd(io, efd, EPOLLIN, probe_fn, &p), 0);
	kick(efd);
	cr_assert(wait_calls(&p, 1));
	cr_assert_eq(iothread_remove_fd(io, efd), 0);
}

Test(iothread, removal_waits_for_a_running_handler)
{
	struct probe p = {.fd = efd, .sleep_ms = 100};

	cr_assert_eq(iothread_add_fd(io, efd, EPOLLIN, probe_fn, &p), 0);
	kick(efd);
	usleep(20 * 1000); /* the handler is now sleeping inside the loop */
	cr_assert_eq(iothread_remove_fd(io, efd), 0);
	cr_assert_eq(atomic_load(&p.calls), 1, "remove returned while the handler ran");
	kick(efd);
	usleep(50 * 1000);
	cr_assert_eq(atomic_load(&p.calls), 1, "a removed handler ran");
}

Test(iothread, handler_may_remove_itself)
{
	struct probe p = {.fd = efd, .remove_self = true};

	cr_assert_eq(iothread_add_fd(io, efd, EPOLLIN, probe_fn, &p), 0);
	kick(efd);
	cr_assert(wait_calls(&p, 1));
	kick(efd);
	usleep(50 * 1000);
	cr_assert_eq(atomic_load(&p.calls), 1);
	cr_assert_eq(iothread_remove_fd(io, efd), -ENOENT);
}

Test(iothread, pause_holds_work_until_resume)
{
	struct probe p = {.fd = efd};

	cr_assert_eq(iothread_add_fd(io, efd, EPOLLIN, probe_fn, &p), 0);
	iothread_pause(io);
	iothread_pause(io); /* nests */
	kick(efd);
	usleep(50 * 1000);
	cr_assert_eq(atomic_load(&p.calls), 0, "ran while paused");
	iothread_resume(io);
	usleep(50 * 1000);
	cr_assert_eq(atomic_load(&p.calls), 0, "ran while still paused once");
	iothread_resume(io);
	cr_assert(wait_calls(&p, 1));
	cr_assert_eq(iothread_remove_fd(io, efd), 0);
}

Test(iothread, stop_while_paused_and_with_handlers)
{
	struct probe p = {.fd = efd};

	cr_assert_eq(iothread_add_fd(io, efd, EPOLLIN, probe_fn, &p), 0);
	iothread_pause(io);
	iothread_stop(io);
	kick(efd);
	usleep(20 * 1000);
	cr_assert_eq(atomic_load(&p.calls), 0);
	/* Removal after stop neither blocks nor fails. */
	cr_assert_eq(iothread_remove_fd(io, efd), 0);
}

/*
 * A thread busy-polling after work (here with a window far longer than the
 * test may run) still sees new events, and a pause or stop request ends
 * its polling: with the window ignored they would hang past the timeout.
 */
Test(iothread, polling_thread_still_pauses_and_stops, .timeout = 5)
{
	struct probe p = {.fd = efd};

	iothread_set_poll(io, 30ULL * 1000000000ULL);
	cr_assert_eq(iothread_add_fd(io, efd, EPOLLIN, probe_fn, &p), 0);
	/* events close together: the window doubles each time, to seconds */
	for (int i = 1; i <= 24; i++) {
		kick(efd);
		cr_assert(wait_calls(&p, i));
	}
	kick(efd); /* while it polls */
	cr_assert(wait_calls(&p, 25));
	iothread_pause(io);
	kick(efd);
	usleep(20 * 1000);
	cr_assert_eq(atomic_load(&p.calls), 25, "ran while paused");
	iothread_resume(io);
	cr_assert(wait_calls(&p, 26));
	cr_assert_eq(iothread_remove_fd(io, efd), 0);
	iothread_stop(io);
}

Test(iothread, without_polling_events_still_arrive)
{
	struct probe p = {.fd = efd};

	iothread_set_poll(io, 0);
	cr_assert_eq(iothread_add_fd(io, efd, EPOLLIN, probe_fn, &p), 0);
	for (int i = 1; i <= 3; i++) {
		kick(efd);
		cr_assert(wait_calls(&p, i));
	}
	cr_assert_eq(iothread_remove_fd(io, efd), 0);
}

/*
 * The polling window follows the gaps between events: it grows (doubling
 * from the minimum) while events come a little after it ends, stays while
 * they come within it, and goes (halving) when they come later than the
 * most it may poll: a guest pinging every 200 us costs no polling.
 */
Test(iothread, polling_window_adapts_to_the_gaps_between_events)
{
	const uint64_t max = IOTHREAD_POLL_NS;
	uint64_t cur = 0;

	cur = iothread_poll_next(cur, 10000, max);
	cr_assert_eq(cur, IOTHREAD_POLL_MIN_NS);
	for (int i = 0; i < 10; i++)
		cur = iothread_poll_next(cur, 30000, max);
	cr_assert_eq(cur, 32000, "grows past each 30 us gap, no further: %llu",
		     (unsigned long long)cur);
	cr_assert_eq(iothread_poll_next(cur, 20000, max), cur, "a hit keeps the window");
	for (int i = 0; i < 10; i++)
		cur = iothread_poll_next(cur, 45000, max);
	cr_assert_eq(cur, max, "never past the most: %llu", (unsigned long long)cur);
	for (int i = 0; i < 5; i++)
		cur = iothread_poll_next(cur, 200000, max);
	cr_assert_eq(cur, 0, "200 us gaps: polling is waste, still %llu", (unsigned long long)cur);
	cr_assert_eq(iothread_poll_next(32000, 10000, 0), 0, "polling off");
}

/* Sockets that come and go (vsock connections) must not grow the handler list for ever. */
Test(iothread, removed_handlers_are_freed)
{
	struct probe p = {.fd = efd};

	for (int i = 0; i < 1000; i++) {
		cr_assert_eq(iothread_add_fd(io, efd, EPOLLIN, probe_fn, &p), 0);
		cr_assert_eq(iothread_remove_fd(io, efd), 0);
	}
	/* the next batch of events frees what was removed */
	cr_assert_eq(iothread_add_fd(io, efd, EPOLLIN, probe_fn, &p), 0);
	kick(efd);
	cr_assert(wait_calls(&p, 1));
	cr_assert_leq(iothread_nhandlers(io), 2, "%u handlers held", iothread_nhandlers(io));
	cr_assert_eq(iothread_remove_fd(io, efd), 0);
}
