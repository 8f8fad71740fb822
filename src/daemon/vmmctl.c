// SPDX-License-Identifier: MIT
/*
 * One VMM process: its command line, the fork into a session of its own,
 * calls to its control API, and the stop sequence (power button, then
 * the API's stop, then SIGKILL, each after the one before had its time).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../common/httpc.h"
#include "../common/log.h"
#include "../common/procname.h"
#include "../common/util.h"
#include "supervisor.h"

#define SUP_ARGV_MAX	   40
#define SUP_API_WAIT_MS	   30000 /* for a new VMM to answer on its API */
#define SUP_API_POLL_MS	   20
#define SUP_FORCED_WAIT_MS 5000

/* ---- starting a VMM ---- */

static void sup_argv_free(char **argv, int argc)
{
	for (int i = 0; i < argc; i++)
		free(argv[i]);
}

/*
 * Jailed, the VMM's paths are the jail's: DIR is its /. Unjailed
 * (--no-jail), they are the host's, under DIR.
 */
static int sup_argv(struct daemon *d, const json_t *inst, const char *dir, char **argv, int *argc,
		    struct error *err)
{
	bool jail = !d->opts.no_jail;
	const char *vdir = jail ? "" : dir;
	int n = 1, ret;

	argv[0] = strdup(d->opts.vmm);
	*argc = 1;
	ret = argv[0] ? 0 : error_set(err, ENOMEM, "out of memory");
	/* The jail's options come first: bunshin-vmm peels them off before its own. */
	ret = ret ?: (jail ? djail_argv(d, inst, dir, argv, argc, SUP_ARGV_MAX - 1, err) : 0);
	if (ret)
		return ret;
	/* A clone's first start (clone.c): the snapshot fixes kernel, CPUs and memory. */
	if (sup_str(inst, "restore")) {
		ret = clone_vmm_argv(d, inst, vdir, argv, argc, SUP_ARGV_MAX - 1, err);
		if (ret)
			return ret;
		n = *argc;
	} else {
		ret = dboot_vmm_args(inst, jail, argv, argc, SUP_ARGV_MAX - 1, err);
		if (ret)
			return ret;
		n = *argc;
		argv[n++] = strdup("--cpus");
		if (asprintf(&argv[n++], "%lld", (long long)sup_int(inst, "vcpus")) < 0)
			argv[n - 1] = NULL;
		argv[n++] = strdup("--memory");
		if (asprintf(&argv[n++], "%lldM", (long long)sup_int(inst, "ram_mib")) < 0)
			argv[n - 1] = NULL;
	}
	argv[n++] = strdup("--api-sock");
	if (asprintf(&argv[n++], "%s/api.sock", vdir) < 0)
		argv[n - 1] = NULL;
	/* A guest reboot stays inside its VMM, as on real hardware. */
	argv[n++] = strdup("--on-reboot");
	argv[n++] = strdup("restart");
	/* the log for `console`, the socket for `console attach` (console_attach.c) */
	argv[n++] = strdup("--serial");
	if (asprintf(&argv[n++], "unix:%s/console.sock,log=%s/console.log", vdir, vdir) < 0)
		argv[n - 1] = NULL;
	*argc = n;
	for (int i = 0; i < n; i++) {
		if (!argv[i])
			return error_set(err, ENOMEM, "out of memory");
	}
	return disk_vmm_args(d, inst, vdir, argv, argc, SUP_ARGV_MAX - 1, err)
		       ?: netd_vmm_args(d, inst, argv, argc, SUP_ARGV_MAX - 1, err);
}

/* After fork: only async-signal-safe calls until exec. */
static __attribute__((noreturn)) void sup_child(char **argv, int logfd)
{
	sigset_t none;
	int null = open("/dev/null", O_RDONLY);

	setsid(); /* its own session: no signal meant for the daemon reaches it */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	dup2(null, 0);
	dup2(logfd, 1);
	dup2(logfd, 2);
	close_range(3, ~0U, 0);
	fd_limit_restore(); /* bunshind's raised limit is its own */
	execv(argv[0], argv);
	/* Into vmm.log, whose last line becomes the instance's error. */
	if (write(2, "bunshind: cannot execute the VMM\n", 33) < 0)
		_exit(126);
	_exit(127);
}

int sup_write_pidfile(const char *dir, pid_t pid, uint64_t start)
{
	char path[4200], tmp[4210];
	FILE *f;
	int fd;

	snprintf(path, sizeof(path), "%s/vmm.pid", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	/* A jailed VMM owns the directory: write only a file made here, now. */
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	fprintf(f, "%d %llu\n", (int)pid, (unsigned long long)start);
	if (fclose(f) || rename(tmp, path))
		return -errno;
	return 0;
}

static int sup_fork(char **argv, const char *dir, pid_t *pid, int *pidfd, struct error *err)
{
	char log[4200], name[17] = "";
	int logfd;

	snprintf(log, sizeof(log), "%s/vmm.log", dir);
	logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK,
		     0600);
	if (logfd < 0)
		return error_set(err, errno, "%s: %s", log, strerror(errno));
	/*
	 * The child carries PROCNAME_DAEMON_FORK from its first instant until its
	 * exec: a bunshind killed in between leaves a VMM-to-be that no
	 * command line names yet, and the next one waits for it to become one
	 * (adopt.c) instead of missing it.
	 */
	prctl(PR_GET_NAME, name);
	prctl(PR_SET_NAME, PROCNAME_DAEMON_FORK);
	*pid = fork();
	if (*pid == 0)
		sup_child(argv, logfd);
	prctl(PR_SET_NAME, name);
	close(logfd);
	if (*pid < 0)
		return error_set(err, errno, "fork: %s", strerror(errno));
	/* Still our unreaped child: the pid cannot have been reused. */
	*pidfd = pidfd_open(*pid, 0);
	if (*pidfd < 0) {
		kill(*pid, SIGKILL);
		waitpid(*pid, NULL, 0);
		return error_set(err, errno, "pidfd_open: %s", strerror(errno));
	}
	return 0;
}

static void sup_kill(pid_t pid, uint64_t start);

struct sup_ready {
	struct daemon *d;
	int64_t id;
	pid_t pid;
	uint64_t start;
	char sock[4200];
};

static bool sup_api_answers(const char *sock)
{
	struct httpc_request req = {.method = "GET", .path = "/vm", .timeout_ms = 1000};
	struct httpc_response resp;
	struct error err = {0};
	char ep[64];
	bool ok;
	int fd = djail_sock_ep(sock, ep, sizeof(ep)), ret;

	if (fd < 0)
		return false;
	ret = httpc_do(ep, &req, &resp, &err);
	close(fd);
	if (ret)
		return false;
	ok = resp.status == 200;
	httpc_response_free(&resp);
	return ok;
}

/*
 * An instance is STARTING until its VMM's API answers, then RUNNING (only
 * if still STARTING: a VMM that died meanwhile is the supervisor's). One
 * that never answers is killed, and the supervisor records its end.
 */
static void *sup_ready_thread(void *arg)
{
	struct sup_ready *r = arg;
	struct error err = {0};
	struct store *s;

	for (int t = 0; t < SUP_API_WAIT_MS; t += SUP_API_POLL_MS) {
		if (sup_start_time(r->pid) != r->start || sup_quitting(r->d->sup))
			goto out; /* gone, or bunshind is (a restart re-adopts it) */
		if (sup_api_answers(r->sock)) {
			s = pool_get(r->d->pool);
			STORE(s, instance_set_state, r->id, ST_STARTING, ST_RUNNING, NULL, &err);
			pool_put(r->d->pool, s);
			goto out;
		}
		usleep(SUP_API_POLL_MS * 1000);
	}
	log_warn("instance %lld: the VMM's API did not answer in %d s: killing it",
		 (long long)r->id, SUP_API_WAIT_MS / 1000);
	sup_kill(r->pid, r->start);
out:
	sup_helper_leave(r->d->sup);
	free(r);
	return NULL;
}

void sup_watch_ready(struct daemon *d, int64_t id, pid_t pid, uint64_t start, const char *sock)
{
	struct sup_ready *r = calloc(1, sizeof(*r));
	pthread_t t;

	if (!r || !sup_helper_enter(d->sup)) {
		free(r);
		return;
	}
	*r = (struct sup_ready){.d = d, .id = id, .pid = pid, .start = start};
	snprintf(r->sock, sizeof(r->sock), "%s", sock);
	if (pthread_create(&t, NULL, sup_ready_thread, r)) {
		sup_helper_leave(d->sup);
		free(r);
		return;
	}
	pthread_detach(t);
}

int supervisor_spawn(struct daemon *d, struct store *s, const json_t *inst, struct error *err)
{
	json_t *own = json_copy((json_t *)inst); /* settled below */
	int64_t id = sup_int(inst, "id");
	char dir[4096], sock[4200];
	char *argv[SUP_ARGV_MAX] = {0};
	struct store_instance_run run = {.state = ST_STARTING};
	int argc = 0, pidfd = -1, ret;
	struct error serr = {0};
	pid_t pid = 0;

	supervisor_instance_dir(d, id, dir, sizeof(dir));
	snprintf(sock, sizeof(sock), "%s/api.sock", dir);
	if (!own)
		ret = error_set(err, ENOMEM, "out of memory");
	else if (mkdir(dir, 0700) && errno != EEXIST)
		ret = error_set(err, errno, "%s: %s", dir, strerror(errno));
	else
		ret = d->opts.no_jail ? 0 : djail_setup(d, inst, dir, err);
	/* the disk chain as it really is: this start may become a restore */
	ret = ret ?: dlayer_settle(d, s, own, err);
	ret = ret ?: sup_argv(d, own, dir, argv, &argc, err);
	if (!ret)
		ret = sup_fork(argv, dir, &pid, &pidfd, err);
	sup_argv_free(argv, argc);
	json_decref(own);
	if (ret) {
		STORE(s, instance_set_run, id,
		      &(struct store_instance_run){.state = ST_ERROR, .error = err->msg}, &serr);
		return ret;
	}
	run.pid = pid;
	run.pid_start = sup_start_time(pid);
	run.api_sock = sock;
	sup_write_pidfile(dir, pid, run.pid_start);
	ret = STORE(s, instance_set_run, id, &run, err);
	sup_watch_add(d->sup, id, pid, pidfd, true);
	if (ret) {
		/* The row went (deleted meanwhile): its VMM must not live on unrecorded. */
		sup_kill(pid, run.pid_start);
		return ret;
	}
	sup_watch_ready(d, id, pid, run.pid_start, sock);
	log_info("instance %lld: VMM pid %d", (long long)id, (int)pid);
	return 0;
}

void supervisor_remove_dir(const struct daemon *d, int64_t id)
{
	static const char *const files[] = {"api.sock",
					    "console.log",
					    "vmm.log",
					    "vmm.pid",
					    "vmm.pid.tmp",
					    "disk.overlay",
					    "kernel",
					    "initrd",
					    "disk.base",
					    "console.sock",
					    CLONE_SNAP_DIR "/state",
					    CLONE_SNAP_DIR "/memory",
					    SUSP_DIR "/state",
					    SUSP_DIR "/memory"};
	/* the jail's mount points, empty outside its mount namespace */
	static const char *const dirs[] = {"dev/net", "dev", "proc", CLONE_SNAP_DIR, SUSP_DIR};
	char dir[4096], path[4300];

	supervisor_instance_dir(d, id, dir, sizeof(dir));
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		unlink(path);
	}
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, dirs[i]);
		rmdir(path);
	}
	clone_remove_leftovers(dir);
	dlayer_remove(dir);
	djail_cgroup_remove(d, id);
	if (rmdir(dir) && errno != ENOENT)
		log_warn("%s: %s", dir, strerror(errno));
}

/* ---- talking to a VMM ---- */

static int sup_vmm_put_action(const char *sock, const char *action, struct error *err)
{
	struct httpc_response resp;
	char body[64], ep[64];
	int ret, fd = djail_sock_ep(sock, ep, sizeof(ep));

	if (fd < 0)
		return error_set(err, -fd, "%s: %s", sock,
				 fd == -ENOTSOCK ? "not the VMM's socket" : strerror(-fd));
	snprintf(body, sizeof(body), "{\"action\":\"%s\"}", action);
	ret = httpc_do(ep,
		       &(struct httpc_request){.method = "PUT",
					       .path = "/vm/actions",
					       .body = body,
					       .timeout_ms = SUP_VMM_API_TIMEOUT},
		       &resp, err);
	close(fd);
	if (ret)
		return ret;
	if (resp.status >= 300)
		ret = error_set(err, EIO, "the VMM refused %s (%d): %s", action, resp.status,
				resp.body);
	httpc_response_free(&resp);
	return ret;
}

int supervisor_vmm_action(const json_t *inst, const char *action, struct error *err)
{
	const char *sock = sup_str(inst, "api_sock");

	if (!sock)
		return error_set(err, ENOTCONN, "the instance has no VMM");
	return sup_vmm_put_action(sock, action, err);
}

/* Waits for a process to end, through a pidfd of our own; true when it did. */
static bool sup_wait_gone(pid_t pid, uint64_t start, int timeout_ms)
{
	int fd = pidfd_open(pid, 0);
	struct pollfd pfd;
	bool gone;

	if (fd < 0)
		return true;
	if (sup_start_time(pid) != start) {
		close(fd);
		return true; /* the pid is someone else's now */
	}
	pfd = (struct pollfd){.fd = fd, .events = POLLIN};
	gone = poll(&pfd, 1, timeout_ms) == 1;
	close(fd);
	return gone;
}

static void sup_kill(pid_t pid, uint64_t start)
{
	int fd = pidfd_open(pid, 0);

	if (fd < 0)
		return;
	if (sup_start_time(pid) == start)
		pidfd_send_signal(fd, SIGKILL, NULL, 0);
	close(fd);
}

struct sup_stop {
	pid_t pid;
	uint64_t start;
	char sock[4200];
	int graceful_ms; /* how long the guest has after the power button; 0: none */
};

/* Power button, then the API's stop, then SIGKILL: each after the one before had its time. */
static void sup_stop_sequence(const struct sup_stop *st)
{
	struct error err = {0};

	if (st->graceful_ms && !sup_vmm_put_action(st->sock, "power_button", &err) &&
	    sup_wait_gone(st->pid, st->start, st->graceful_ms))
		return;
	if (!sup_vmm_put_action(st->sock, "stop", &err) &&
	    sup_wait_gone(st->pid, st->start, SUP_FORCED_WAIT_MS))
		return;
	sup_kill(st->pid, st->start);
	sup_wait_gone(st->pid, st->start, SUP_FORCED_WAIT_MS);
}

/* Owns st; uses nothing of the daemon's, so it may run past a shutdown. */
static void *sup_stop_thread(void *arg)
{
	struct sup_stop *st = arg;

	sup_stop_sequence(st);
	free(st);
	return NULL;
}

/*
 * Marks the instance STOPPING (so its end is not an error) and reads its
 * VMM; one without a VMM is STOPPED at once and st->pid left 0.
 */
static int sup_begin_stop(struct daemon *d, int64_t id, bool any_state, struct sup_stop *st,
			  struct error *err)
{
	struct store *s = pool_get(d->pool);
	json_t *inst = NULL;
	char ref[24];
	const char *state;
	int ret;

	snprintf(ref, sizeof(ref), "%lld", (long long)id);
	ret = STORE(s, instance_get, 0, ref, &inst, err);
	if (ret)
		goto out;
	state = sup_str(inst, "state");
	if (!any_state && strcmp(state, ST_RUNNING) && strcmp(state, ST_PAUSED)) {
		ret = error_set(err, EALREADY, "the instance is %s", state);
		goto out;
	}
	st->pid = (pid_t)sup_int(inst, "pid");
	st->start = (uint64_t)sup_int(inst, "pid_start");
	snprintf(st->sock, sizeof(st->sock), "%s", sup_str(inst, "api_sock") ?: "");
	/* A paused guest cannot see the power button. */
	if (!strcmp(state, ST_RUNNING))
		st->graceful_ms = (int)d->opts.stop_timeout_s * 1000;
	ret = STORE(s, instance_set_state, id, state, st->pid ? ST_STOPPING : ST_STOPPED, NULL,
		    err);
out:
	json_decref(inst);
	pool_put(d->pool, s);
	return ret;
}

int supervisor_stop_async(struct daemon *d, int64_t id, bool resume, struct error *err)
{
	struct sup_stop *st = calloc(1, sizeof(*st));
	pthread_t t;
	int ret;

	if (!st)
		return error_set(err, ENOMEM, "out of memory");
	ret = sup_begin_stop(d, id, resume, st, err);
	if (ret || !st->pid) {
		free(st);
		return ret;
	}
	if (pthread_create(&t, NULL, sup_stop_thread, st)) {
		/* The instance says STOPPING: do it here rather than leave it so. */
		sup_stop_sequence(st);
		free(st);
		return 0;
	}
	pthread_detach(t);
	return 0;
}

bool supervisor_vmm_gone(const json_t *inst, int timeout_ms)
{
	pid_t pid = (pid_t)sup_int(inst, "pid");

	return pid <= 0 || sup_wait_gone(pid, (uint64_t)sup_int(inst, "pid_start"), timeout_ms);
}

int supervisor_kill_wait(struct daemon *d, int64_t id, struct error *err)
{
	struct sup_stop st = {0};
	int ret = sup_begin_stop(d, id, true, &st, err);

	if (ret)
		return ret;
	st.graceful_ms = 0;
	if (st.pid)
		sup_stop_sequence(&st);
	return 0;
}
