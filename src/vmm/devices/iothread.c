// SPDX-License-Identifier: MIT
/*
 * The I/O thread's epoll loop. Handlers are never freed while the thread
 * might still hold a pointer from an epoll batch: a removed handler is
 * only marked dead and kept on a list until iothread_destroy(). There are
 * few of them (one per queue, added at device creation), so this costs
 * nothing and needs no reference counting.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "../../common/log.h"
#include "../sandbox/seccomp.h"
#include "iothread.h"

#define IOTHREAD_BATCH 32

struct iothread_handler {
	int fd;
	iothread_fn fn;
	void *opaque;
	atomic_bool dead;
	struct iothread_handler *next;
};

struct iothread {
	pthread_t thread;
	bool started;
	int epfd;
	int ctl_efd; /* wakes the loop for stop and pause requests */
	char name[16];

	pthread_mutex_t lock; /* handlers list and the pause/stop state */
	pthread_cond_t cond;
	struct iothread_handler *handlers;
	unsigned int ndead; /* removed handlers not freed yet */
	unsigned int pause_depth;
	bool paused; /* the thread is parked */
	atomic_bool stop;

	/* Held by the thread while it runs a batch of handlers; removers wait on it. */
	pthread_mutex_t run_lock;

	_Atomic uint64_t poll_ns; /* the most the busy-poll window grows to, 0: no polling */
	uint64_t poll_cur_ns;	  /* the window now: the thread's own */
};

static void iothread_wake(struct iothread *t)
{
	uint64_t one = 1;

	if (write(t->ctl_efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("iothread %s: wake: %s", t->name, strerror(errno));
}

static void iothread_drain_ctl(struct iothread *t)
{
	uint64_t count;

	if (read(t->ctl_efd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		log_warn("iothread %s: control eventfd: %s", t->name, strerror(errno));
}

/*
 * Frees removed handlers. Only between batches: an event fetched before a
 * removal may still point at its handler until the batch that carries it
 * is over (it is skipped there, being dead), and no later epoll_wait()
 * returns it. Without this, a device whose sockets come and go (vsock)
 * would grow the list for ever.
 */
static void iothread_reap(struct iothread *t)
{
	struct iothread_handler **pp, *h;

	pthread_mutex_lock(&t->lock);
	for (pp = &t->handlers; t->ndead && (h = *pp);) {
		if (!atomic_load(&h->dead)) {
			pp = &h->next;
			continue;
		}
		*pp = h->next;
		free(h);
		t->ndead--;
	}
	pthread_mutex_unlock(&t->lock);
}

static void iothread_dispatch(struct iothread *t, const struct epoll_event *ev, int n)
{
	pthread_mutex_lock(&t->run_lock);
	for (int i = 0; i < n; i++) {
		struct iothread_handler *h = ev[i].data.ptr;

		if (!h) {
			iothread_drain_ctl(t);
			continue;
		}
		if (!atomic_load(&h->dead))
			h->fn(h->opaque, ev[i].events);
	}
	if (__atomic_load_n(&t->ndead, __ATOMIC_RELAXED))
		iothread_reap(t);
	pthread_mutex_unlock(&t->run_lock);
}

/* Parks while a pause is requested; false once the loop must end. */
static bool iothread_check_state(struct iothread *t)
{
	pthread_mutex_lock(&t->lock);
	while (t->pause_depth && !atomic_load(&t->stop)) {
		if (!t->paused) {
			t->paused = true;
			pthread_cond_broadcast(&t->cond);
		}
		pthread_cond_wait(&t->cond, &t->lock);
	}
	t->paused = false;
	pthread_mutex_unlock(&t->lock);
	return !atomic_load(&t->stop);
}

static uint64_t iothread_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

uint64_t iothread_poll_next(uint64_t cur, uint64_t blocked_ns, uint64_t max)
{
	if (!max)
		return 0;
	if (blocked_ns > max)
		return cur / 2 < IOTHREAD_POLL_MIN_NS ? 0 : cur / 2;
	if (blocked_ns <= cur)
		return cur;
	cur = cur ? cur * 2 : IOTHREAD_POLL_MIN_NS;
	return cur > max ? max : cur;
}

/*
 * Waits for events, busy-polling for up to t->poll_cur_ns first: right
 * after work the next event often follows within microseconds (a guest
 * waiting on its last request issues the next), and waking a thread that
 * went to sleep costs more than that here (~15 us under nested KVM). The
 * window adapts to what it catches (iothread_poll_next()): a guest that
 * pings every 200 us, or an idle one, soon costs no polling at all, which
 * matters most when the CPUs are short and a polling I/O thread takes its
 * time from the vCPUs. A pause or stop request ends the polling at once:
 * it is an event too (the control eventfd).
 */
static int iothread_wait(struct iothread *t, struct epoll_event *ev)
{
	uint64_t start = iothread_now_ns(), until = start + t->poll_cur_ns;
	int n;

	while (t->poll_cur_ns && iothread_now_ns() < until) {
		n = epoll_wait(t->epfd, ev, IOTHREAD_BATCH, 0);
		if (n != 0)
			return n;
	}
	n = epoll_wait(t->epfd, ev, IOTHREAD_BATCH, -1);
	t->poll_cur_ns = iothread_poll_next(t->poll_cur_ns, iothread_now_ns() - start,
					    atomic_load(&t->poll_ns));
	return n;
}

static void *iothread_main(void *arg)
{
	struct iothread *t = arg;
	struct epoll_event ev[IOTHREAD_BATCH];
	int n;

	pthread_setname_np(pthread_self(), t->name);
	/* Only what device backends do (added when start-up is over, if it is not yet). */
	sandbox_seccomp_thread(SANDBOX_THREAD_IO);
	while (iothread_check_state(t)) {
		n = iothread_wait(t, ev);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_error("iothread %s: epoll_wait: %s", t->name, strerror(errno));
			break;
		}
		iothread_dispatch(t, ev, n);
	}
	return NULL;
}

void iothread_set_poll(struct iothread *t, uint64_t ns)
{
	atomic_store(&t->poll_ns, ns);
}

static int iothread_setup(struct iothread *t, const char *name)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};

	snprintf(t->name, sizeof(t->name), "%s", name);
	atomic_store(&t->poll_ns, IOTHREAD_POLL_NS);
	pthread_mutex_init(&t->lock, NULL);
	pthread_mutex_init(&t->run_lock, NULL);
	pthread_cond_init(&t->cond, NULL);
	t->ctl_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	t->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (t->ctl_efd < 0 || t->epfd < 0)
		return -errno;
	if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, t->ctl_efd, &ev) < 0)
		return -errno;
	return 0;
}

struct iothread *iothread_create(const char *name, struct error *err)
{
	struct iothread *t = calloc(1, sizeof(*t));
	int ret;

	if (!t) {
		error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	t->ctl_efd = t->epfd = -1;
	ret = iothread_setup(t, name);
	if (!ret)
		ret = -pthread_create(&t->thread, NULL, iothread_main, t);
	if (ret) {
		error_set(err, -ret, "I/O thread %s: %s", name, strerror(-ret));
		iothread_destroy(t);
		return NULL;
	}
	t->started = true;
	return t;
}

bool iothread_is_current(const struct iothread *t)
{
	return t->started && pthread_equal(pthread_self(), t->thread);
}

static struct iothread_handler *iothread_find(struct iothread *t, int fd)
{
	for (struct iothread_handler *h = t->handlers; h; h = h->next)
		if (h->fd == fd && !atomic_load(&h->dead))
			return h;
	return NULL;
}

int iothread_add_fd(struct iothread *t, int fd, uint32_t events, iothread_fn fn, void *opaque)
{
	struct iothread_handler *h;
	struct epoll_event ev = {.events = events};
	int ret = 0;

	pthread_mutex_lock(&t->lock);
	if (iothread_find(t, fd)) {
		ret = -EEXIST;
		goto out;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		ret = -ENOMEM;
		goto out;
	}
	*h = (struct iothread_handler){.fd = fd, .fn = fn, .opaque = opaque, .next = t->handlers};
	ev.data.ptr = h;
	if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		ret = -errno;
		free(h);
		goto out;
	}
	t->handlers = h;
out:
	pthread_mutex_unlock(&t->lock);
	return ret;
}

int iothread_remove_fd(struct iothread *t, int fd)
{
	struct iothread_handler *h;

	pthread_mutex_lock(&t->lock);
	h = iothread_find(t, fd);
	if (h) {
		atomic_store(&h->dead, true);
		t->ndead++;
		epoll_ctl(t->epfd, EPOLL_CTL_DEL, fd, NULL);
	}
	pthread_mutex_unlock(&t->lock);
	if (!h)
		return -ENOENT;
	/* Wait out a batch that may be calling it right now (unless we are that batch). */
	if (!iothread_is_current(t)) {
		pthread_mutex_lock(&t->run_lock);
		pthread_mutex_unlock(&t->run_lock);
	}
	return 0;
}

void iothread_pause(struct iothread *t)
{
	if (iothread_is_current(t)) {
		log_error("iothread %s: cannot pause itself", t->name);
		return;
	}
	pthread_mutex_lock(&t->lock);
	t->pause_depth++;
	iothread_wake(t);
	while (t->started && !t->paused && !atomic_load(&t->stop))
		pthread_cond_wait(&t->cond, &t->lock);
	pthread_mutex_unlock(&t->lock);
}

void iothread_resume(struct iothread *t)
{
	pthread_mutex_lock(&t->lock);
	if (t->pause_depth)
		t->pause_depth--;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

void iothread_stop(struct iothread *t)
{
	if (!t->started)
		return;
	pthread_mutex_lock(&t->lock);
	atomic_store(&t->stop, true);
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
	iothread_wake(t);
	pthread_join(t->thread, NULL);
	t->started = false;
}

void iothread_destroy(struct iothread *t)
{
	struct iothread_handler *h, *next;

	if (!t)
		return;
	iothread_stop(t);
	for (h = t->handlers; h; h = next) {
		next = h->next;
		free(h);
	}
	if (t->epfd >= 0)
		close(t->epfd);
	if (t->ctl_efd >= 0)
		close(t->ctl_efd);
	pthread_cond_destroy(&t->cond);
	pthread_mutex_destroy(&t->run_lock);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

unsigned int iothread_nhandlers(struct iothread *t)
{
	unsigned int n = 0;

	pthread_mutex_lock(&t->lock);
	for (struct iothread_handler *h = t->handlers; h; h = h->next)
		n++;
	pthread_mutex_unlock(&t->lock);
	return n;
}
