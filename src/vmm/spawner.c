// SPDX-License-Identifier: MIT
/*
 * The clone spawner (spawner.h): the only part of bunshin-vmm that starts
 * processes. It runs outside the sandbox, so it trusts nothing it reads.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spawner.h"
#include "../common/procname.h"

extern char **environ;

/* ---- checking a request ---- */

/* A NUL-terminated string within its field, of printable characters only. */
static int spawn_str(const char *s, size_t size, bool may_be_empty, const char *field,
		     struct error *err)
{
	const char *nul = memchr(s, 0, size);

	if (!nul)
		return error_set(err, EINVAL, "spawner: %s is not terminated", field);
	if (nul == s && !may_be_empty)
		return error_set(err, EINVAL, "spawner: %s is empty", field);
	for (const char *p = s; p < nul; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return error_set(err, EINVAL, "spawner: %s holds a control character",
					 field);
	return 0;
}

/* Goes inside a key=value list (--net, --vsock): no separators, no surprises. */
static int spawn_kv_safe(const char *s, const char *field, struct error *err)
{
	if (strpbrk(s, ",="))
		return error_set(err, EINVAL, "spawner: %s holds ',' or '='", field);
	return 0;
}

static int spawn_path(const char *s, size_t size, bool may_be_empty, const char *field,
		      struct error *err)
{
	int ret = spawn_str(s, size, may_be_empty, field, err);

	if (!ret && *s && s[0] != '/')
		ret = error_set(err, EINVAL, "spawner: %s is not an absolute path", field);
	return ret;
}

static int spawn_chardev(const char *s, bool may_be_empty, const char *field, struct error *err)
{
	int ret = spawn_str(s, SPAWN_SERIAL, may_be_empty, field, err);

	if (ret || !*s)
		return ret;
	if (strncmp(s, "unix:/", 6) && strncmp(s, "file:/", 6))
		return error_set(err, EINVAL, "spawner: %s is not unix:/PATH or file:/PATH", field);
	return 0;
}

/* Interface and NIC names: letters, digits, '_', '-', '.'. */
static int spawn_name(const char *s, size_t size, const char *field, struct error *err)
{
	int ret = spawn_str(s, size, false, field, err);

	for (const char *p = s; !ret && *p; p++)
		if (!(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') &&
		    !(*p >= '0' && *p <= '9') && !strchr("_-.", *p))
			ret = error_set(err, EINVAL, "spawner: %s holds '%c'", field, *p);
	return ret;
}

static int spawn_check_net(const struct spawn_net *n, struct error *err)
{
	static const uint8_t zero[6];
	int ret = spawn_name(n->id, sizeof(n->id), "net id", err);

	if (!ret)
		ret = spawn_name(n->tap, sizeof(n->tap), "net tap", err);
	if (!ret && ((n->mac[0] & 1) || !memcmp(n->mac, zero, 6)))
		ret = error_set(err, EINVAL, "spawner: net mac is multicast or zero");
	return ret;
}

static int spawn_check_vsock(const struct spawn_req *r, struct error *err)
{
	int ret = spawn_path(r->vsock_uds, sizeof(r->vsock_uds), true, "vsock uds", err);

	if (!ret)
		ret = spawn_kv_safe(r->vsock_uds, "vsock uds", err);
	if (!ret && *r->vsock_uds && (r->vsock_cid < 3 || r->vsock_cid > 0xfffffffeu))
		ret = error_set(err, EINVAL, "spawner: vsock cid %u out of range", r->vsock_cid);
	return ret;
}

/* The overlay paths must fit: the directory leaves room for "/diskNN.ovl". */
static int spawn_check_overlays(const struct spawn_req *r, struct error *err)
{
	int ret;

	if (!r->noverlays)
		return 0;
	if (r->noverlays > CONFIG_MAX_DISKS)
		return error_set(err, EINVAL, "spawner: %u overlays", r->noverlays);
	ret = spawn_path(r->overlay_dir, sizeof(r->overlay_dir) - 16, false, "overlay dir", err);
	for (uint32_t i = 0; !ret && i < r->noverlays; i++)
		if (r->overlay_disk[i] >= CONFIG_MAX_DISKS)
			ret = error_set(err, EINVAL, "spawner: overlay for disk %u",
					r->overlay_disk[i]);
	return ret;
}

int spawner_check(const struct spawn_req *r, struct error *err)
{
	int ret = 0;

	if (r->magic != SPAWN_MAGIC)
		return error_set(err, EINVAL, "spawner: bad magic 0x%x", r->magic);
	if (r->verbose > SPAWN_MAX_VERBOSE)
		return error_set(err, EINVAL, "spawner: verbose %u", r->verbose);
	if (r->nnets > CONFIG_MAX_NETS)
		return error_set(err, EINVAL, "spawner: %u NICs", r->nnets);
	ret = spawn_path(r->dir, sizeof(r->dir), false, "dir", err);
	if (!ret)
		ret = spawn_path(r->log, sizeof(r->log), false, "log", err);
	if (!ret)
		ret = spawn_path(r->api_sock, sizeof(r->api_sock), false, "api socket", err);
	if (!ret)
		ret = spawn_chardev(r->serial, false, "serial", err);
	if (!ret)
		ret = spawn_chardev(r->console_virtio, true, "console", err);
	if (!ret)
		ret = spawn_check_vsock(r, err);
	for (uint32_t i = 0; !ret && i < r->nnets; i++)
		ret = spawn_check_net(&r->nets[i], err);
	if (!ret)
		ret = spawn_check_overlays(r, err);
	return ret;
}

/* ---- the clone's command line ---- */

#define SPAWN_ARGS_MAX	(16 + 2 * CONFIG_MAX_NETS + 2 * CONFIG_MAX_DISKS + SPAWN_MAX_VERBOSE)
#define SPAWN_NET_LEN	(CONFIG_ID + CONFIG_IFNAME + 48)
#define SPAWN_VSOCK_LEN (CONFIG_VSOCK_UDS_MAX + 32)

struct spawn_argv {
	const char *argv[SPAWN_ARGS_MAX + 1];
	int argc;
	char nets[CONFIG_MAX_NETS][SPAWN_NET_LEN];
	char vsock[SPAWN_VSOCK_LEN];
	char overlays[CONFIG_MAX_DISKS][CONFIG_PATH_MAX];
};

static void spawn_arg(struct spawn_argv *a, const char *s)
{
	if (a->argc < SPAWN_ARGS_MAX)
		a->argv[a->argc++] = s;
}

/*
 * The clone's disks. The snapshot froze every writable disk, so each clone
 * writes into a copy-on-write overlay of its own over the frozen layer and
 * never into the parent's or another clone's data; read-only disks are
 * shared as they are and need nothing here.
 */
static void spawn_disk_args(struct spawn_argv *a, const struct spawn_req *r)
{
	for (uint32_t i = 0; i < r->noverlays; i++) {
		snprintf(a->overlays[i], sizeof(a->overlays[i]), "%u=%s/disk%u.ovl",
			 r->overlay_disk[i], r->overlay_dir, r->overlay_disk[i]);
		spawn_arg(a, "--overlay");
		spawn_arg(a, a->overlays[i]);
	}
}

static void spawn_build_argv(struct spawn_argv *a, const struct spawn_req *r)
{
	static const uint8_t *m;

	a->argc = 0;
	spawn_arg(a, "bunshin-vmm");
	spawn_arg(a, "--restore");
	spawn_arg(a, r->dir);
	spawn_arg(a, "--api-sock");
	spawn_arg(a, r->api_sock);
	spawn_arg(a, "--serial");
	spawn_arg(a, r->serial);
	if (*r->console_virtio) {
		spawn_arg(a, "--console-virtio");
		spawn_arg(a, r->console_virtio);
	}
	if (*r->vsock_uds) {
		snprintf(a->vsock, sizeof(a->vsock), "cid=%u,uds=%s", r->vsock_cid, r->vsock_uds);
		spawn_arg(a, "--vsock");
		spawn_arg(a, a->vsock);
	}
	for (uint32_t i = 0; i < r->nnets; i++) {
		m = r->nets[i].mac;
		snprintf(a->nets[i], sizeof(a->nets[i]),
			 "id=%s,tap=%s,mac=%02x:%02x:%02x:%02x:%02x:%02x", r->nets[i].id,
			 r->nets[i].tap, m[0], m[1], m[2], m[3], m[4], m[5]);
		spawn_arg(a, "--net");
		spawn_arg(a, a->nets[i]);
	}
	spawn_disk_args(a, r);
	for (uint32_t i = 0; i < r->verbose; i++)
		spawn_arg(a, "--verbose");
	a->argv[a->argc] = NULL;
}

/* ---- the spawner process ---- */

/* In the forked child: stdio, then the binary; errno goes back through the pipe on failure. */
static void spawn_exec(int exe_fd, const struct spawn_argv *a, const char *log, int errpipe)
{
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int out = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	int e;

	/* Its own session: a terminal's signals for the parent's group are not the clone's. */
	setsid();
	signal(SIGINT, SIG_DFL); /* an ignored signal would stay ignored across exec */
	if (null >= 0 && out >= 0 && dup2(null, 0) == 0 && dup2(out, 1) == 1 && dup2(out, 2) == 2)
		syscall(SYS_execveat, exe_fd, "", a->argv, environ, AT_EMPTY_PATH);
	e = errno;
	if (write(errpipe, &e, sizeof(e)) < 0)
		_exit(127);
	_exit(127);
}

static void spawn_reply(int sock, int error, pid_t pid, const struct error *err)
{
	struct spawn_resp resp = {.error = error, .pid = (int32_t)pid};

	if (error && err)
		snprintf(resp.msg, sizeof(resp.msg), "%s", err->msg);
	if (send(sock, &resp, sizeof(resp), MSG_NOSIGNAL) < 0)
		_exit(1);
}

static void spawn_one(int sock, int exe_fd, const struct spawn_req *r)
{
	static struct spawn_argv a;
	struct error err = {0};
	int pipefd[2], e = 0;
	pid_t pid;

	if (spawner_check(r, &err))
		return spawn_reply(sock, EINVAL, 0, &err);
	spawn_build_argv(&a, r);
	if (pipe2(pipefd, O_CLOEXEC))
		return spawn_reply(sock, errno, 0, NULL);
	pid = fork();
	if (pid == 0)
		spawn_exec(exe_fd, &a, r->log, pipefd[1]);
	close(pipefd[1]);
	if (pid < 0) {
		e = errno;
		close(pipefd[0]);
		return spawn_reply(sock, e, 0, NULL);
	}
	/* End of file: the exec went through (the pipe was close-on-exec). */
	if (read(pipefd[0], &e, sizeof(e)) == sizeof(e)) {
		close(pipefd[0]);
		waitpid(pid, NULL, 0);
		error_set(&err, e, "spawner: exec: %s", strerror(e));
		return spawn_reply(sock, e, 0, &err);
	}
	close(pipefd[0]);
	spawn_reply(sock, 0, pid, NULL);
}

static void spawn_reap(void)
{
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

/* The spawner's whole life: requests until the VMM's end closes. */
static void spawner_main(int sock)
{
	static struct spawn_req req;
	struct pollfd pfd = {.fd = sock, .events = POLLIN};
	int exe_fd = open("/proc/self/exe", O_PATH | O_CLOEXEC);
	sigset_t none;
	ssize_t n;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGINT, SIG_IGN); /* Ctrl-C at the VMM's terminal is for the VMM */
	if (exe_fd < 0)
		_exit(1);
	for (;;) {
		spawn_reap();
		if (poll(&pfd, 1, 1000) < 0 && errno != EINTR)
			_exit(1);
		if (!(pfd.revents & (POLLIN | POLLHUP)))
			continue;
		n = recv(sock, &req, sizeof(req), MSG_TRUNC);
		if (n <= 0)
			_exit(0);
		if (n != (ssize_t)sizeof(req)) {
			struct error err;

			error_set(&err, EINVAL, "spawner: message of %zd bytes", n);
			spawn_reply(sock, EINVAL, 0, &err);
			continue;
		}
		spawn_one(sock, exe_fd, &req);
	}
}

int spawner_start(struct spawner *s, struct error *err)
{
	int sv[2];
	int null;

	s->fd = -1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		return error_set(err, errno, "clone spawner: socketpair: %s", strerror(errno));
	s->pid = fork();
	if (s->pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return error_set(err, errno, "clone spawner: fork: %s", strerror(errno));
	}
	if (s->pid == 0) {
		/* Its command line is the VMM's: the name tells scanners it is not one. */
		prctl(PR_SET_NAME, PROCNAME_VMM_SPAWNER);
		close(sv[0]);
		/* Nothing of the VMM's but the socket and stderr: no fd of it outlives it here. */
		if (sv[1] != 3 && dup2(sv[1], 3) != 3)
			_exit(1);
		close_range(4, ~0U, 0);
		null = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
		}
		fcntl(3, F_SETFD, FD_CLOEXEC);
		spawner_main(3);
	}
	close(sv[1]);
	s->fd = sv[0];
	return 0;
}

int spawner_spawn(struct spawner *s, const struct spawn_req *req, pid_t *pid, struct error *err)
{
	struct spawn_resp resp;
	ssize_t n;

	if (s->fd < 0)
		return error_set(err, ENOSYS,
				 "no clone spawner (the VMM was started without --api-sock)");
	if (send(s->fd, req, sizeof(*req), MSG_NOSIGNAL) != (ssize_t)sizeof(*req))
		return error_set(err, errno ? errno : EIO, "clone spawner: send: %s",
				 strerror(errno));
	do
		n = recv(s->fd, &resp, sizeof(resp), 0);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(resp))
		return error_set(err, EIO, "clone spawner: no answer (it is gone)");
	if (resp.error) {
		resp.msg[sizeof(resp.msg) - 1] = 0;
		return error_set(err, resp.error, "%s",
				 resp.msg[0] ? resp.msg : strerror(resp.error));
	}
	*pid = resp.pid;
	return 0;
}

void spawner_stop(struct spawner *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}
