// SPDX-License-Identifier: MIT
/*
 * snapbench: the measuring half of bench/snap.sh (and of the smoke test
 * tests/integration/test_snapbench.c). One round for one VMM:
 *
 *   snapbench bunshin N WORKDIR TIMEOUT_S -- BUNSHIN-VMM [ARG...]
 *   snapbench qemu    N WORKDIR TIMEOUT_S -- QEMU [ARG...]
 *
 * The command line boots the test guest with test=serial-echo; the serial
 * port must be stdio (bunshin-vmm's default; QEMU: -serial stdio, which the
 * caller passes), so that every process has its console on a pair of pipes.
 *
 *  1. Boots the source VM (bunshin: plus --api-sock WORKDIR/api; QEMU: plus
 *     -qmp unix:WORKDIR/qmp), waits for the guest's ready line and one echo.
 *  2. Snapshot: bunshin PUT /vm/snapshot {"dir": "WORKDIR/snap"}; QEMU
 *     migrate to "exec:cat > WORKDIR/qemu.state" until its MIGRATION event
 *     says completed. Timed from just before the request is written.
 *  3. Restore: spawns one restoring process (bunshin: --restore
 *     WORKDIR/snap; QEMU: the source's command line plus -incoming
 *     "exec:cat WORKDIR/qemu.state") and times from just before fork()
 *     until the guest's "ECHO: p" for the line "p" written to its console.
 *  4. Clones: spawns N restoring processes back to back, then waits until
 *     every one has echoed; then reads each one's /proc/PID/smaps_rollup.
 *
 * Prints one line of key=value pairs; times in ms, sizes in KiB.
 */
#ifndef _GNU_SOURCE /* meson passes -D_GNU_SOURCE for the smoke test */
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLONES 256
#define MAX_ARGS   96
#define CON_BUF	   16384

struct vm {
	pid_t pid;
	int in, out; /* the console: the VMM's stdin and stdout */
	size_t len;
	bool done;
	int sends; /* console lines written while waiting for an echo */
	int64_t t_done;
	char err[300]; /* its stderr file */
	char buf[CON_BUF];
};

static struct vm *vms[MAX_CLONES + 2];
static int nvms;

/* Copies src into dst, cut to size - 1 bytes (a reply longer than that is not needed). */
static void copy_str(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size - 1);

	memcpy(dst, src, n);
	dst[n] = 0;
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double ms(int64_t ns)
{
	return (double)ns / 1e6;
}

/* Kills every VMM still running, so that a failure leaves nothing behind. */
static void kill_all(void)
{
	for (int i = 0; i < nvms; i++) {
		if (vms[i] && vms[i]->pid > 0) {
			kill(vms[i]->pid, SIGKILL);
			waitpid(vms[i]->pid, NULL, 0);
			vms[i]->pid = -1;
		}
	}
}

static void vm_dump_stderr(const struct vm *v)
{
	char buf[2048];
	int fd = open(v->err, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n > 0) {
		buf[n] = 0;
		fprintf(stderr, "snapbench: stderr of pid %d:\n%s\n", (int)v->pid, buf);
	}
}

static _Noreturn void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "snapbench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	kill_all();
	exit(1);
}

static void on_signal(int sig)
{
	kill_all();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Starts argv with its console on pipes and its stderr in errpath. */
static struct vm *vm_spawn(char *const *argv, const char *errpath)
{
	struct vm *v = calloc(1, sizeof(*v));
	int in[2], out[2];

	if (!v || nvms >= (int)(sizeof(vms) / sizeof(vms[0])))
		die("too many VMs");
	snprintf(v->err, sizeof(v->err), "%s", errpath);
	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC))
		die("pipe: %s", strerror(errno));
	v->pid = fork();
	if (v->pid < 0)
		die("fork: %s", strerror(errno));
	if (v->pid == 0) {
		int fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (fd < 0 || dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 || dup2(fd, 2) < 0)
			_exit(126);
		execv(argv[0], argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	v->in = in[1];
	v->out = out[0];
	fcntl(v->out, F_SETFL, O_NONBLOCK);
	vms[nvms++] = v;
	return v;
}

static void vm_stop(struct vm *v)
{
	if (v->pid > 0) {
		kill(v->pid, SIGKILL);
		waitpid(v->pid, NULL, 0);
		v->pid = -1;
	}
	close(v->in);
	close(v->out);
}

static void vm_send(struct vm *v, const char *s)
{
	size_t len = strlen(s);

	v->sends++;
	if (write(v->in, s, len) != (ssize_t)len)
		die("writing to the console of pid %d: %s", (int)v->pid, strerror(errno));
}

/* Reads what the console has; false at EOF (the VMM is gone). */
static bool vm_read(struct vm *v)
{
	for (;;) {
		ssize_t n;

		/* Keep the tail: the needles are short, the guest's output is not. */
		if (v->len > CON_BUF - 1024) {
			memmove(v->buf, v->buf + v->len - 512, 512);
			v->len = 512;
		}
		n = read(v->out, v->buf + v->len, CON_BUF - 1 - v->len);
		if (n > 0) {
			v->len += (size_t)n;
			v->buf[v->len] = 0;
			continue;
		}
		if (n == 0)
			return false;
		if (errno == EAGAIN || errno == EINTR)
			return true;
		die("reading a console: %s", strerror(errno));
	}
}

/*
 * Waits until each of vs[0..n) has shown needle on its console; records
 * when. With resend, writes it to every VM not done yet every resend_ms:
 * QEMU's serial device may take console input while the incoming state is
 * still being loaded, and the load then overwrites its FIFO.
 */
static void vm_wait_all(struct vm **vs, int n, const char *needle, const char *resend,
			int resend_ms, int timeout_s)
{
	int64_t deadline = now_ns() + (int64_t)timeout_s * 1000000000;
	int64_t next_send = now_ns() + (int64_t)resend_ms * 1000000;
	struct pollfd pfd[MAX_CLONES + 2];
	int left = n;

	while (left) {
		int64_t t = now_ns();
		int wait_ms;

		if (t > deadline) {
			for (int i = 0; i < n; i++)
				if (!vs[i]->done) {
					vm_dump_stderr(vs[i]);
					die("pid %d: no '%s' in %d s; console tail:\n%s",
					    (int)vs[i]->pid, needle, timeout_s,
					    vs[i]->buf + (vs[i]->len > 400 ? vs[i]->len - 400 : 0));
				}
		}
		if (resend && t >= next_send) {
			for (int i = 0; i < n; i++)
				if (!vs[i]->done)
					vm_send(vs[i], resend);
			next_send = t + (int64_t)resend_ms * 1000000;
		}
		wait_ms = resend ? resend_ms : 100;
		for (int i = 0; i < n; i++)
			pfd[i] = (struct pollfd){.fd = vs[i]->done ? -1 : vs[i]->out,
						 .events = POLLIN};
		if (poll(pfd, (nfds_t)n, wait_ms) < 0 && errno != EINTR)
			die("poll: %s", strerror(errno));
		t = now_ns();
		for (int i = 0; i < n; i++) {
			if (vs[i]->done || !pfd[i].revents)
				continue;
			if (!vm_read(vs[i]) && !strstr(vs[i]->buf, needle)) {
				vm_dump_stderr(vs[i]);
				die("pid %d exited before '%s'; console tail:\n%s", (int)vs[i]->pid,
				    needle, vs[i]->buf + (vs[i]->len > 400 ? vs[i]->len - 400 : 0));
			}
			if (strstr(vs[i]->buf, needle)) {
				vs[i]->done = true;
				vs[i]->t_done = t;
				vs[i]->len = 0;
				vs[i]->buf[0] = 0;
				left--;
			}
		}
	}
	for (int i = 0; i < n; i++)
		vs[i]->done = false;
}

static void vm_wait(struct vm *v, const char *needle, int timeout_s)
{
	vm_wait_all(&v, 1, needle, NULL, 0, timeout_s);
}

/* ---- control sockets ---- */

static int sock_connect(const char *path, int timeout_s)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int64_t deadline = now_ns() + (int64_t)timeout_s * 1000000000;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	while (now_ns() < deadline) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd < 0)
			die("socket: %s", strerror(errno));
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return fd;
		close(fd);
		usleep(2000);
	}
	die("%s: nobody listens", path);
}

static void write_all(int fd, const char *s)
{
	size_t len = strlen(s);

	while (len) {
		ssize_t n = write(fd, s, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("write to a control socket: %s", strerror(errno));
		s += n;
		len -= (size_t)n;
	}
}

/* bunshin's API: one request per connection; returns the status, the body in reply. */
static int http(const char *sock, const char *method, const char *path, const char *body,
		char *reply, size_t size, int timeout_s)
{
	char req[2048], raw[8192];
	size_t len = 0;
	int fd = sock_connect(sock, timeout_s), status = 0;
	ssize_t n;
	const char *b;

	snprintf(req, sizeof(req),
		 "%s %s HTTP/1.1\r\nHost: vmm\r\nConnection: close\r\n"
		 "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
		 method, path, strlen(body), body);
	write_all(fd, req);
	while (len < sizeof(raw) - 1 && (n = read(fd, raw + len, sizeof(raw) - 1 - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("reading the API reply: %s", strerror(errno));
		len += (size_t)n;
	}
	raw[len] = 0;
	close(fd);
	if (sscanf(raw, "HTTP/1.1 %d", &status) != 1)
		status = 0;
	b = strstr(raw, "\r\n\r\n");
	copy_str(reply, size, b ? b + 4 : raw);
	return status;
}

/* QMP: reads lines until one contains want (events and replies alike). */
struct qmp {
	int fd;
	size_t len;
	char buf[65536];
};

static void qmp_until(struct qmp *q, const char *want, int timeout_s, char *line, size_t size)
{
	int64_t deadline = now_ns() + (int64_t)timeout_s * 1000000000;

	for (;;) {
		char *nl;

		while ((nl = memchr(q->buf, '\n', q->len))) {
			size_t l = (size_t)(nl - q->buf) + 1;

			q->buf[l - 1] = 0;
			if (strstr(q->buf, "\"error\""))
				die("QMP: %s", q->buf);
			if (strstr(q->buf, want)) {
				if (line)
					copy_str(line, size, q->buf);
				memmove(q->buf, q->buf + l, q->len - l);
				q->len -= l;
				return;
			}
			memmove(q->buf, q->buf + l, q->len - l);
			q->len -= l;
		}
		if (now_ns() > deadline)
			die("QMP: no '%s' in %d s", want, timeout_s);
		struct pollfd p = {.fd = q->fd, .events = POLLIN};

		if (poll(&p, 1, 100) > 0) {
			ssize_t n = read(q->fd, q->buf + q->len, sizeof(q->buf) - 1 - q->len);

			if (n <= 0)
				die("QMP: the connection closed");
			q->len += (size_t)n;
		}
	}
}

static void qmp_cmd(struct qmp *q, const char *cmd, char *line, size_t size, int timeout_s)
{
	write_all(q->fd, cmd);
	write_all(q->fd, "\n");
	qmp_until(q, "\"return\"", timeout_s, line, size);
}

/* The number after "key": in json, or -1. */
static double json_num(const char *json, const char *key)
{
	char k[64];
	const char *p;

	snprintf(k, sizeof(k), "\"%s\":", key);
	p = strstr(json, k);
	if (!p)
		return -1;
	p += strlen(k);
	while (*p == ' ')
		p++;
	return strtod(p, NULL);
}

/* ---- /proc ---- */

struct mem {
	long rss, pss, dirty; /* KiB */
};

static struct mem smaps_rollup(pid_t pid)
{
	char path[64], line[256];
	struct mem m = {0};
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	f = fopen(path, "r");
	if (!f)
		die("%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		long kb;

		if (sscanf(line, "Rss: %ld kB", &kb) == 1)
			m.rss = kb;
		else if (sscanf(line, "Pss: %ld kB", &kb) == 1)
			m.pss = kb;
		else if (sscanf(line, "Private_Dirty: %ld kB", &kb) == 1)
			m.dirty = kb;
	}
	fclose(f);
	return m;
}

/* Allocated size on disk, KiB (the bunshin memory file is sparse). */
static long disk_kib(const char *path)
{
	struct stat st;

	if (stat(path, &st))
		die("%s: %s", path, strerror(errno));
	return (long)(st.st_blocks / 2);
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static void usage(void)
{
	fprintf(stderr, "usage: snapbench bunshin|qemu N WORKDIR TIMEOUT_S -- VMM [ARG...]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	char *src_argv[MAX_ARGS], *rst_argv[MAX_ARGS], path[300], snapdir[256], state[256];
	char sock[256], incoming[300], qmp_arg[300], reply[4096], body[1024];
	int nclones, timeout_s, nsrc = 0, nrst = 0, rst_sends, clone_sends = 0;
	const char *work;
	bool qemu;
	struct vm *src, *one, *clones[MAX_CLONES];
	int64_t t0, t_snap, t_rst, lat[MAX_CLONES];
	double vmm_ms, snap_kib;
	struct mem sum = {0}, m;

	if (argc < 7 || strcmp(argv[5], "--") || argc - 6 > MAX_ARGS - 12)
		usage();
	if (!strcmp(argv[1], "qemu"))
		qemu = true;
	else if (!strcmp(argv[1], "bunshin"))
		qemu = false;
	else
		usage();
	nclones = atoi(argv[2]);
	work = argv[3];
	timeout_s = atoi(argv[4]);
	if (nclones < 1 || nclones > MAX_CLONES || timeout_s < 1)
		usage();
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);

	snprintf(snapdir, sizeof(snapdir), "%s/snap", work);
	snprintf(state, sizeof(state), "%s/qemu.state", work);
	snprintf(sock, sizeof(sock), "%s/%s", work, qemu ? "qmp" : "api");
	for (int i = 6; i < argc; i++)
		src_argv[nsrc++] = rst_argv[nrst++] = argv[i];
	if (qemu) {
		snprintf(qmp_arg, sizeof(qmp_arg), "unix:%s,server=on,wait=off", sock);
		src_argv[nsrc++] = "-qmp";
		src_argv[nsrc++] = qmp_arg;
		snprintf(incoming, sizeof(incoming), "exec:cat %s", state);
		rst_argv[nrst++] = "-incoming";
		rst_argv[nrst++] = incoming;
	} else {
		src_argv[nsrc++] = "--api-sock";
		src_argv[nsrc++] = sock;
		/* The snapshot fixes the machine: only the program name stays. */
		nrst = 1;
		rst_argv[nrst++] = "--restore";
		rst_argv[nrst++] = snapdir;
	}
	src_argv[nsrc] = rst_argv[nrst] = NULL;

	/* 1. the source VM, idle in serial-echo after one echoed line */
	snprintf(path, sizeof(path), "%s/source.err", work);
	src = vm_spawn(src_argv, path);
	vm_wait(src, "name=serial-echo result=ready", timeout_s);
	vm_send(src, "warm\n");
	vm_wait(src, "ECHO: warm", timeout_s);

	/* 2. the snapshot */
	if (qemu) {
		struct qmp *q = calloc(1, sizeof(*q));

		if (!q)
			die("out of memory");
		q->fd = sock_connect(sock, timeout_s);
		qmp_until(q, "\"QMP\"", timeout_s, NULL, 0);
		qmp_cmd(q, "{\"execute\": \"qmp_capabilities\"}", NULL, 0, timeout_s);
		/* The event marks the end without polling; no bandwidth cap (32 MiB/s by default).
		 */
		qmp_cmd(q,
			"{\"execute\": \"migrate-set-capabilities\", \"arguments\": "
			"{\"capabilities\": [{\"capability\": \"events\", \"state\": true}]}}",
			NULL, 0, timeout_s);
		qmp_cmd(q,
			"{\"execute\": \"migrate-set-parameters\", \"arguments\": "
			"{\"max-bandwidth\": 1099511627776}}",
			NULL, 0, timeout_s);
		/* Renamed into place once cat has written it all: then it is complete. */
		snprintf(body, sizeof(body),
			 "{\"execute\": \"migrate\", \"arguments\": {\"uri\": "
			 "\"exec:cat > %s.tmp && mv %s.tmp %s\"}}",
			 state, state, state);
		t0 = now_ns();
		qmp_cmd(q, body, NULL, 0, timeout_s);
		qmp_until(q, "\"completed\"", timeout_s, NULL, 0);
		while (access(state, F_OK)) {
			if (now_ns() - t0 > (int64_t)timeout_s * 1000000000)
				die("%s never appeared", state);
			usleep(100);
		}
		t_snap = now_ns() - t0;
		qmp_cmd(q, "{\"execute\": \"query-migrate\"}", reply, sizeof(reply), timeout_s);
		vmm_ms = json_num(reply, "total-time");
		close(q->fd);
		free(q);
		snap_kib = (double)disk_kib(state);
	} else {
		int status;

		snprintf(body, sizeof(body), "{\"dir\": \"%s\"}", snapdir);
		t0 = now_ns();
		status = http(sock, "PUT", "/vm/snapshot", body, reply, sizeof(reply), timeout_s);
		t_snap = now_ns() - t0;
		if (status != 200)
			die("PUT /vm/snapshot: %d %s", status, reply);
		vmm_ms = json_num(reply, "total_ms");
		snprintf(path, sizeof(path), "%s/memory", snapdir);
		snap_kib = (double)disk_kib(path);
		snprintf(path, sizeof(path), "%s/state", snapdir);
		snap_kib += (double)disk_kib(path);
	}
	vm_stop(src);

	/* 3. one restore, alone */
	snprintf(path, sizeof(path), "%s/restore.err", work);
	t0 = now_ns();
	one = vm_spawn(rst_argv, path);
	vm_send(one, "p\n");
	vm_wait_all(&one, 1, "ECHO: p", "p\n", 2, timeout_s);
	t_rst = one->t_done - t0;
	rst_sends = one->sends;
	vm_stop(one);

	/* 4. N clones, started back to back */
	t0 = now_ns();
	for (int i = 0; i < nclones; i++) {
		snprintf(path, sizeof(path), "%s/clone%d.err", work, i);
		clones[i] = vm_spawn(rst_argv, path);
		vm_send(clones[i], "p\n");
	}
	vm_wait_all(clones, nclones, "ECHO: p", "p\n", 2, timeout_s);
	int64_t t_last = 0;

	for (int i = 0; i < nclones; i++) {
		lat[i] = clones[i]->t_done - t0;
		if (clones[i]->sends > clone_sends)
			clone_sends = clones[i]->sends;
		if (lat[i] > t_last)
			t_last = lat[i];
		m = smaps_rollup(clones[i]->pid);
		sum.rss += m.rss;
		sum.pss += m.pss;
		sum.dirty += m.dirty;
	}
	qsort(lat, (size_t)nclones, sizeof(lat[0]), cmp_i64);
	for (int i = 0; i < nclones; i++)
		vm_stop(clones[i]);

	printf("snapshot_ms=%.3f snapshot_vmm_ms=%.3f snapshot_kib=%.0f restore_ms=%.3f "
	       "clones=%d clones_ms=%.3f clones_per_s=%.2f clone_ready_ms_p50=%.3f "
	       "clone_rss_kib=%.0f clone_pss_kib=%.0f clone_dirty_kib=%.0f restore_sends=%d "
	       "clone_sends_max=%d\n",
	       ms(t_snap), vmm_ms, snap_kib, ms(t_rst), nclones, ms(t_last),
	       (double)nclones / ((double)t_last / 1e9), ms(lat[nclones / 2]),
	       (double)sum.rss / nclones, (double)sum.pss / nclones, (double)sum.dirty / nclones,
	       rst_sends, clone_sends);
	return 0;
}
