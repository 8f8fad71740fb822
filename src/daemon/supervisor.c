// SPDX-License-Identifier: MIT
/*
 * Supervision of the VMMs. Each bunshin-vmm runs in a session of its own
 * so that it outlives bunshind (a restart or a crash of the daemon must
 * never stop a VM). One thread waits on every VMM's pidfd; when one ends,
 * the instance becomes STOPPED if that was asked for or the guest powered
 * off, else ERROR with the reason, and the instance's restart policy
 * applies. Starting a VMM is in vmmctl.c; re-adopting the VMMs that
 * outlived a bunshind, in adopt.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/util.h"
#include "supervisor.h"

#define SUP_RESTART_MAX 3

struct sup_watch {
	int64_t id;
	pid_t pid;
	int pidfd;
	bool child; /* ours since fork: its exit status can be had */
	struct sup_watch *next;
};

struct supervisor {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t helpers_gone;
	int epfd, stopfd;
	struct sup_watch *watches;
	unsigned int helpers; /* threads that use the store, such as sup_ready's */
	bool quitting;
};

bool sup_helper_enter(struct supervisor *sup)
{
	bool ok;

	pthread_mutex_lock(&sup->lock);
	ok = !sup->quitting;
	sup->helpers += ok;
	pthread_mutex_unlock(&sup->lock);
	return ok;
}

void sup_helper_leave(struct supervisor *sup)
{
	pthread_mutex_lock(&sup->lock);
	if (!--sup->helpers)
		pthread_cond_broadcast(&sup->helpers_gone);
	pthread_mutex_unlock(&sup->lock);
}

bool sup_quitting(struct supervisor *sup)
{
	bool q;

	pthread_mutex_lock(&sup->lock);
	q = sup->quitting;
	pthread_mutex_unlock(&sup->lock);
	return q;
}

/* Helpers see the flag within one poll and leave; the store outlives them. */
static void sup_helpers_wait(struct supervisor *sup)
{
	pthread_mutex_lock(&sup->lock);
	sup->quitting = true;
	while (sup->helpers)
		pthread_cond_wait(&sup->helpers_gone, &sup->lock);
	pthread_mutex_unlock(&sup->lock);
}

void supervisor_instance_dir(const struct daemon *d, int64_t id, char *out, size_t size)
{
	snprintf(out, size, "%s/instances/%lld", d->opts.state_dir, (long long)id);
}

int sup_proc_times(pid_t pid, uint64_t *start, uint64_t *cpu_ticks)
{
	char path[64], buf[1024];
	unsigned long long v[22] = {0};
	const char *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	/* The command name may hold spaces and parentheses: count from the last ')'. */
	p = strrchr(buf, ')');
	/* A zombie has ended: it only waits for its parent (or a subreaper) to reap it. */
	if (!p || p[1] != ' ' || p[2] == 'Z')
		return -1;
	/* fields 3 (state) to 22 (starttime); 14 and 15 are utime and stime */
	for (int field = 3; field <= 22 && (p = strchr(p + 1, ' ')); field++)
		if (field > 3 && sscanf(p + 1, "%llu", &v[field - 1]) != 1)
			return -1;
	if (!p)
		return -1;
	*start = v[21];
	*cpu_ticks = v[13] + v[14];
	return 0;
}

uint64_t sup_start_time(pid_t pid)
{
	uint64_t start, ticks;

	return sup_proc_times(pid, &start, &ticks) ? 0 : start;
}

void sup_event(struct store *s, int64_t tenant_id, int64_t id, const char *who, const char *action,
	       const char *result)
{
	char target[40];
	struct error err = {0};

	snprintf(target, sizeof(target), "instance %lld", (long long)id);
	if (STORE(s, event_add, &(struct store_event){tenant_id, who, action, target, result},
		  &err))
		log_warn("audit: %s", err.msg);
}

/* The last non-empty line of a file (the VMM's log), for error reasons. */
static void sup_last_line(const char *path, char *out, size_t size)
{
	char buf[1024];
	int fd = djail_open_read(path); /* in a directory a jailed VMM owns */
	off_t end;
	ssize_t n;
	char *nl;

	out[0] = 0;
	if (fd < 0)
		return;
	end = lseek(fd, 0, SEEK_END);
	n = pread(fd, buf, sizeof(buf) - 1,
		  end > (off_t)sizeof(buf) - 1 ? end - (off_t)sizeof(buf) + 1 : 0);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = 0;
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = 0;
	nl = strrchr(buf, '\n');
	snprintf(out, size, "%s", nl ? nl + 1 : buf);
}

/* ---- the watch list ---- */

int sup_watch_add(struct supervisor *sup, int64_t id, pid_t pid, int pidfd, bool child)
{
	struct sup_watch *w = calloc(1, sizeof(*w));
	struct epoll_event ev = {.events = EPOLLIN};

	if (!w)
		return -ENOMEM;
	pidfd = fd_move_high(pidfd); /* one per VM: keep them out of libnftables' select() */
	*w = (struct sup_watch){.id = id, .pid = pid, .pidfd = pidfd, .child = child};
	ev.data.ptr = w;
	pthread_mutex_lock(&sup->lock);
	w->next = sup->watches;
	sup->watches = w;
	epoll_ctl(sup->epfd, EPOLL_CTL_ADD, pidfd, &ev);
	pthread_mutex_unlock(&sup->lock);
	return 0;
}

static void sup_watch_remove(struct supervisor *sup, struct sup_watch *w)
{
	pthread_mutex_lock(&sup->lock);
	for (struct sup_watch **pp = &sup->watches; *pp; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	}
	epoll_ctl(sup->epfd, EPOLL_CTL_DEL, w->pidfd, NULL);
	pthread_mutex_unlock(&sup->lock);
	close(w->pidfd);
	free(w);
}

/* Why a VMM ended, in words, and whether that is an orderly stop. */
static bool sup_exit_reason(struct daemon *d, const struct sup_watch *w, char *why, size_t size)
{
	char log[512], dir[4096], tail[200];
	siginfo_t si = {0};

	supervisor_instance_dir(d, w->id, dir, sizeof(dir));
	snprintf(log, sizeof(log), "%s/vmm.log", dir);
	sup_last_line(log, tail, sizeof(tail));
	if (!w->child || waitid(P_PIDFD, (id_t)w->pidfd, &si, WEXITED) || !si.si_pid) {
		snprintf(why, size,
			 "VMM (pid %d) exited; status unknown (adopted after a bunshind"
			 " restart)%s%s",
			 (int)w->pid, *tail ? "; last log line: " : "", tail);
		return false;
	}
	if (si.si_code == CLD_EXITED && si.si_status == 0) {
		snprintf(why, size, "guest powered off");
		return true;
	}
	/* A jail's launcher exits with 128 + N when its VMM died of signal N. */
	if (si.si_code == CLD_EXITED && si.si_status > 128 && !d->opts.no_jail) {
		si.si_code = CLD_KILLED;
		si.si_status -= 128;
	}
	if (si.si_code == CLD_EXITED)
		snprintf(why, size, "VMM exited with status %d%s%s", si.si_status,
			 *tail ? ": " : "", tail);
	else
		snprintf(why, size, "VMM killed by signal %d (%s)", si.si_status,
			 strsignal(si.si_status));
	return false;
}

/*
 * The instance's restart policy after its VMM ended on its own (not asked
 * to stop): "on-failure" restarts it after a failure, "always" also after
 * the guest powered off. SUP_RESTART_MAX restarts in a row at most, so a
 * VMM that cannot start does not loop; a start by hand resets the count.
 */
static bool sup_should_restart(const json_t *inst, bool orderly)
{
	const char *policy = sup_str(inst, "restart_policy");

	if (!policy || !strcmp(sup_str(inst, "state"), ST_STOPPING) ||
	    sup_int(inst, "restarts") >= SUP_RESTART_MAX)
		return false;
	return !strcmp(policy, "always") || (!orderly && !strcmp(policy, "on-failure"));
}

static void sup_restart(struct daemon *d, struct store *s, const json_t *inst, const char *why)
{
	int64_t id = sup_int(inst, "id");
	char result[600], target[64];
	struct error err = {0};
	json_t *fresh = NULL;

	snprintf(result, sizeof(result), "restarted by its policy after: %s", why);
	snprintf(target, sizeof(target), "instance %lld", (long long)id);
	sup_event(s, sup_int(inst, "tenant_id"), id, "bunshind", "restart", result);
	log_warn("instance %lld: %s", (long long)id, result);
	if (STORE(s, instance_count_restart, id, false, &err) ||
	    STORE(s, instance_set_state, id, NULL, ST_STARTING, NULL, &err) ||
	    STORE(s, instance_get, 0, target + strlen("instance "), &fresh, &err) ||
	    supervisor_spawn(d, s, fresh, &err))
		log_error("instance %lld: restart failed: %s", (long long)id, err.msg);
	json_decref(fresh);
}

static void sup_reap(struct daemon *d, struct sup_watch *w)
{
	struct store *s = pool_get(d->pool);
	struct error err = {0};
	json_t *inst = NULL;
	char why[512], ref[24];
	bool orderly = sup_exit_reason(d, w, why, sizeof(why));
	struct store_instance_run run = {.state = ST_STOPPED};

	snprintf(ref, sizeof(ref), "%lld", (long long)w->id);
	if (STORE(s, instance_get, 0, ref, &inst, &err))
		goto out; /* deleted meanwhile: nothing to record */
	if (sup_int(inst, "pid") != w->pid)
		goto out; /* started again since: the row is a newer VMM's */
	if (!strcmp(sup_str(inst, "state"), ST_SUSPENDED)) {
		/* stopped by suspend.c once its state was saved: it stays so */
		run.state = ST_SUSPENDED;
		log_info("instance %lld suspended (%s)", (long long)w->id, why);
	} else if (sup_should_restart(inst, orderly)) {
		sup_restart(d, s, inst, why);
		goto out;
	} else if (!orderly && strcmp(sup_str(inst, "state"), ST_STOPPING)) {
		run.state = ST_ERROR;
		run.error = why;
		log_warn("instance %lld: %s", (long long)w->id, why);
	} else {
		log_info("instance %lld stopped (%s)", (long long)w->id, why);
	}
	/* A delete may take the row between the read above and this write: nothing to record. */
	if (STORE(s, instance_set_run, w->id, &run, &err) && err.code != ENOENT)
		log_error("instance %lld: %s", (long long)w->id, err.msg);
out:
	json_decref(inst);
	pool_put(d->pool, s);
}

static void *sup_main(void *arg)
{
	struct daemon *d = arg;
	struct supervisor *sup = d->sup;
	struct epoll_event evs[16];

	for (;;) {
		int n = epoll_wait(sup->epfd, evs, 16, -1);

		for (int i = 0; i < n; i++) {
			struct sup_watch *w = evs[i].data.ptr;

			if (!w)
				return NULL; /* the stop eventfd */
			sup_reap(d, w);
			sup_watch_remove(sup, w);
		}
		if (n < 0 && errno != EINTR) {
			log_error("supervisor: epoll_wait: %s", strerror(errno));
			return NULL;
		}
	}
}

int supervisor_start(struct daemon *d, struct error *err)
{
	struct supervisor *sup = calloc(1, sizeof(*sup));
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};

	if (!sup)
		return error_set(err, ENOMEM, "out of memory");
	pthread_mutex_init(&sup->lock, NULL);
	pthread_cond_init(&sup->helpers_gone, NULL);
	sup->epfd = epoll_create1(EPOLL_CLOEXEC);
	sup->stopfd = eventfd(0, EFD_CLOEXEC);
	if (sup->epfd < 0 || sup->stopfd < 0 ||
	    epoll_ctl(sup->epfd, EPOLL_CTL_ADD, sup->stopfd, &ev)) {
		free(sup);
		return error_set(err, errno, "supervisor: %s", strerror(errno));
	}
	d->sup = sup;
	if (pthread_create(&sup->thread, NULL, sup_main, d)) {
		d->sup = NULL;
		free(sup);
		return error_set(err, EAGAIN, "supervisor: cannot start its thread");
	}
	return 0;
}

void supervisor_shutdown(struct daemon *d)
{
	struct supervisor *sup = d->sup;
	uint64_t one = 1;

	if (!sup)
		return;
	if (d->opts.stop_vms_on_exit) {
		int64_t ids[256];
		size_t n = 0;

		pthread_mutex_lock(&sup->lock);
		for (struct sup_watch *w = sup->watches; w && n < 256; w = w->next)
			ids[n++] = w->id;
		pthread_mutex_unlock(&sup->lock);
		for (size_t i = 0; i < n; i++) {
			struct error err = {0};

			supervisor_kill_wait(d, ids[i], &err);
		}
		/* Let the supervisor record the exits before it goes. */
		for (int tries = 0; tries < 50 && sup->watches; tries++)
			usleep(100000);
	}
	sup_helpers_wait(sup);
	if (write(sup->stopfd, &one, sizeof(one)) != sizeof(one))
		log_warn("supervisor: cannot wake its thread");
	pthread_join(sup->thread, NULL);
	while (sup->watches) {
		struct sup_watch *w = sup->watches;

		sup->watches = w->next;
		close(w->pidfd);
		free(w);
	}
	close(sup->epfd);
	close(sup->stopfd);
	free(sup);
	d->sup = NULL;
}
