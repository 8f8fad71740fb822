// SPDX-License-Identifier: MIT
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/un.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static const char *env_or_die(const char *name)
{
	const char *v = getenv(name);

	if (!v)
		cr_assert_fail("environment variable %s is not set (run through meson test)", name);
	return v;
}

const char *harness_vmm(void)
{
	return env_or_die("BUNSHIN_VMM");
}

const char *harness_guest(const char *wrapper)
{
	return env_or_die(strcmp(wrapper, "elf") ? "BUNSHIN_GUEST_BZIMAGE" : "BUNSHIN_GUEST_ELF");
}

void harness_require_kvm(void)
{
	if (access("/dev/kvm", R_OK | W_OK) != 0)
		cr_skip_test(
			"skipped: /dev/kvm is not usable here (%s); integration tests need KVM",
			strerror(errno));
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

struct buf {
	char *data;
	size_t len, cap;
};

static void buf_append(struct buf *b, const char *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->data = realloc(b->data, b->cap);
		cr_assert_not_null(b->data);
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static pid_t spawn(const struct vmm_run *run, int in[2], int out[2], int err[2])
{
	int n = 0;
	pid_t pid;

	/* Resolved before fork: a failed assertion must happen in the test, not the child. */
	const char *vmm = run->vmm_path ? run->vmm_path : harness_vmm();

	while (run->argv[n])
		n++;
	cr_assert_eq(pipe2(in, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(err, O_CLOEXEC), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		char **argv = calloc(n + 1, sizeof(*argv));

		harness_die_with_parent();
		for (int i = 1; i < n; i++)
			argv[i] = (char *)run->argv[i];
		argv[0] = (char *)vmm;
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(err[1], 2);
		if (run->run_as_uid >= 0 && (setgid(run->run_as_uid) || setuid(run->run_as_uid)))
			_exit(126);
		execv(argv[0], argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	close(err[1]);
	return pid;
}

/*
 * The VMM may have exited by the time a step's input is sent (a test that
 * makes it die on purpose): that is EPIPE here, not a SIGPIPE that kills
 * the test.
 */
static ssize_t write_nosigpipe(int fd, const void *buf, size_t len)
{
	struct sigaction ign = {.sa_handler = SIG_IGN}, old;
	ssize_t n;

	sigaction(SIGPIPE, &ign, &old);
	n = write(fd, buf, len);
	sigaction(SIGPIPE, &old, NULL);
	return n;
}

static void feed_steps(const struct vmm_run *run, pid_t pid, int *step, struct buf *out, int infd)
{
	while (*step < run->nsteps && out->data && strstr(out->data, run->steps[*step].wait_for)) {
		const char *s = run->steps[*step].send;

		if (run->on_step)
			run->on_step(run->ctx, *step, (int)pid);

		if (write_nosigpipe(infd, s, strlen(s)) < 0)
			break;
		(*step)++;
	}
}

static int pump(const struct vmm_run *run, pid_t pid, int infd, int outfd, int errfd,
		struct buf *out, struct buf *err, double deadline)
{
	struct pollfd fds[2] = {{.fd = outfd, .events = POLLIN}, {.fd = errfd, .events = POLLIN}};
	int step = 0, open_fds = 2;
	bool termed = false;
	char chunk[4096];

	while (open_fds > 0) {
		double left = deadline - now_ms();

		if (left <= 0)
			return -ETIMEDOUT;
		if (poll(fds, 2, (int)left + 1) < 0 && errno != EINTR)
			return -errno;
		for (int i = 0; i < 2; i++) {
			ssize_t n;

			if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP)))
				continue;
			n = read(fds[i].fd, chunk, sizeof(chunk));
			if (n <= 0) {
				fds[i].fd = -1;
				open_fds--;
				continue;
			}
			buf_append(i == 0 ? out : err, chunk, n);
		}
		feed_steps(run, pid, &step, out, infd);
		if (!termed && run->term_when && out->data &&
		    harness_count(out->data, run->term_when) >= run->term_count) {
			kill(pid, SIGTERM);
			termed = true;
		}
	}
	return 0;
}

int harness_run(const struct vmm_run *run, struct vmm_result *res)
{
	struct buf out = {0}, err = {0};
	int in[2], o[2], e[2], wstatus = 0;
	double start = now_ms();
	pid_t pid;
	int ret;

	memset(res, 0, sizeof(*res));
	pid = spawn(run, in, o, e);
	ret = pump(run, pid, in[1], o[0], e[0], &out, &err, start + run->timeout_ms);
	if (ret == -ETIMEDOUT) {
		res->timed_out = true;
		kill(pid, SIGKILL);
	}
	waitpid(pid, &wstatus, 0);
	res->wall_ms = now_ms() - start;
	close(in[1]);
	close(o[0]);
	close(e[0]);
	res->status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
	buf_append(&out, "", 0);
	buf_append(&err, "", 0);
	res->out = out.data;
	res->err = err.data;
	return 0;
}

void harness_free(struct vmm_result *res)
{
	free(res->out);
	free(res->err);
}

static const char *find_result_line(const char *out, const char *name)
{
	char key[128];
	const char *p = NULL;

	/* The last line for a name is its verdict ("result=ready" may precede it). */
	snprintf(key, sizeof(key), "BUNSHIN-TEST name=%s ", name);
	for (const char *q = strstr(out, key); q; q = strstr(q + 1, key))
		p = q;
	return p;
}

bool harness_result_field(const char *out, const char *name, const char *key, char *val, size_t len)
{
	const char *line = find_result_line(out, name);
	const char *eol, *p;
	char k[64];

	if (!line)
		return false;
	eol = strchr(line, '\n');
	if (!eol)
		eol = line + strlen(line);
	snprintf(k, sizeof(k), " %s=", key);
	p = strstr(line, k);
	if (!p || p > eol)
		return false;
	p += strlen(k);
	size_t n = strcspn(p, " \r\n");
	if (n >= len)
		n = len - 1;
	memcpy(val, p, n);
	val[n] = '\0';
	return true;
}

bool harness_passed(const char *out, const char *name)
{
	char v[16];

	return harness_result_field(out, name, "result", v, sizeof(v)) && !strcmp(v, "pass");
}

int harness_count(const char *out, const char *needle)
{
	int n = 0;

	for (const char *p = strstr(out, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

uint32_t harness_crc32(const uint8_t *buf, size_t len)
{
	uint32_t crc = 0xffffffff;

	for (size_t i = 0; i < len; i++) {
		crc ^= buf[i];
		for (int b = 0; b < 8; b++)
			crc = (crc >> 1) ^ (0xedb88320 & -(crc & 1));
	}
	return ~crc;
}

char *harness_temp_file(size_t len, uint32_t seed, uint32_t *crc)
{
	char *path = strdup("/tmp/bunshin-test-XXXXXX");
	uint8_t *data = malloc(len);
	int fd = mkstemp(path);

	cr_assert_geq(fd, 0);
	for (size_t i = 0; i < len; i++) {
		seed = seed * 1103515245 + 12345;
		data[i] = seed >> 16;
	}
	cr_assert_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
	if (crc)
		*crc = harness_crc32(data, len);
	free(data);
	return path;
}

void harness_die_with_parent(void)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
}

void harness_enter_netns(const char *ns)
{
	char path[128];
	int fd;

	harness_die_with_parent();
	snprintf(path, sizeof(path), "/run/netns/%s", ns);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNET) < 0)
		_exit(126);
	close(fd);
}

int harness_unix_connect(const char *path, int timeout_ms)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	for (int waited = 0;; waited += 10) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return fd;
		if (fd >= 0)
			close(fd);
		if (waited >= timeout_ms)
			return -1;
		usleep(10000);
	}
}

bool harness_read_until(int fd, char *buf, size_t size, size_t *len, const char *needle,
			int timeout_ms)
{
	buf[*len] = 0;
	for (int waited = 0; !strstr(buf, needle) && waited < timeout_ms; waited += 10) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (poll(&p, 1, 10) <= 0)
			continue;
		n = read(fd, buf + *len, size - 1 - *len);
		if (n <= 0)
			return false;
		*len += (size_t)n;
		buf[*len] = 0;
	}
	return strstr(buf, needle) != NULL;
}

void harness_tmpdir(char *dir, size_t size, const char *name)
{
	cr_assert_lt((size_t)snprintf(dir, size, "/tmp/bunshin-%s.XXXXXX", name), size);
	cr_assert_not_null(mkdtemp(dir), "mkdtemp %s: %s", dir, strerror(errno));
}

char harness_dir[64];

void harness_dir_setup(void)
{
	harness_tmpdir(harness_dir, sizeof(harness_dir), program_invocation_short_name);
}

void harness_dir_teardown(void)
{
	if (harness_dir[0])
		harness_rm_rf(harness_dir);
}

void harness_rm_rf(const char *path)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	if (system(cmd) != 0)
		cr_log_warn("cannot remove %s", path);
}

void harness_proc_start(struct harness_proc *p, const char *dir, const char *tag,
			const char *const *args)
{
	const char *argv[40] = {harness_vmm()};
	int n = 1;

	harness_require_kvm();
	while (args[n - 1]) {
		cr_assert_lt(n, 39, "too many VMM arguments");
		argv[n] = args[n - 1];
		n++;
	}
	snprintf(p->err, sizeof(p->err), "%s/%s.err", dir, tag);
	snprintf(p->out, sizeof(p->out), "%s/%s.out", dir, tag);
	p->pid = fork();
	cr_assert_geq(p->pid, 0);
	if (p->pid == 0) {
		int fd = open(p->err, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		harness_die_with_parent();
		dup2(fd, STDERR_FILENO);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
}

char *harness_slurp(const char *path)
{
	static char buf[65536];
	int fd = open(path, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : 0;

	buf[n > 0 ? n : 0] = 0;
	if (fd >= 0)
		close(fd);
	return buf;
}

char *harness_proc_stderr(const struct harness_proc *p)
{
	return harness_slurp(p->err);
}

int harness_proc_wait(struct harness_proc *p, int timeout_ms)
{
	int status;

	for (int waited = 0; waited < timeout_ms; waited += 10) {
		if (waitpid(p->pid, &status, WNOHANG) == p->pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		usleep(10000);
	}
	kill(p->pid, SIGKILL);
	waitpid(p->pid, &status, 0);
	cr_assert_fail("the VMM did not exit; stderr:\n%s", harness_proc_stderr(p));
	return -1;
}

int harness_api(const char *sock, const char *method, const char *path, const char *body,
		char *reply, size_t size)
{
	static char raw[262144];
	char req[8192];
	size_t len = 0, blen = body ? strlen(body) : 0;
	int fd = harness_unix_connect(sock, 5000), status = 0, n;
	ssize_t r;

	cr_assert_geq(fd, 0, "%s never accepted a connection", sock);
	n = snprintf(
		req, sizeof(req),
		"%s %s HTTP/1.1\r\nHost: vmm\r\nConnection: close\r\nContent-Length: %zu\r\n\r\n%s",
		method, path, blen, body ? body : "");
	cr_assert_lt((size_t)n, sizeof(req), "request too long for the test's buffer");
	cr_assert_eq(write(fd, req, (size_t)n), n);
	while ((r = read(fd, raw + len, sizeof(raw) - 1 - len)) > 0)
		len += (size_t)r;
	raw[len] = 0;
	close(fd);
	sscanf(raw, "HTTP/1.1 %d", &status);
	snprintf(reply, size, "%s", strstr(raw, "\r\n\r\n") ? strstr(raw, "\r\n\r\n") + 4 : raw);
	return status;
}

void harness_wait_running(const char *sock, int timeout_ms)
{
	char reply[4096];

	for (int waited = 0; waited < timeout_ms; waited += 10) {
		harness_api(sock, "GET", "/vm", NULL, reply, sizeof(reply));
		if (strstr(reply, "\"state\":\"running\""))
			return;
		usleep(10000);
	}
	cr_assert_fail("the VM never ran: %s", reply);
}

void harness_status_field(const char *path, const char *key, char *val, size_t len)
{
	char line[256];
	size_t klen = strlen(key);
	FILE *f = fopen(path, "r");

	val[0] = '\0';
	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, klen) && line[klen] == ':') {
			snprintf(val, len, "%s", line + klen + 1 + strspn(line + klen + 1, " \t"));
			val[strcspn(val, "\n")] = 0;
			break;
		}
	fclose(f);
}

void harness_run_seccomp_selftest(const char *what, struct vmm_result *r)
{
	const char *argv[] = {"vmm",	   "--kernel",	harness_guest("elf"),
			      "--cmdline", "test=boot", NULL};

	harness_require_kvm();
#ifndef BUNSHIN_TEST_HOOKS
	cr_skip_test("built without test hooks (-Dtests=false): no forbidden call on demand");
#endif
	setenv("BUNSHIN_SECCOMP_SELFTEST", what, 1);
	harness_run(&(struct vmm_run){.argv = argv, .timeout_ms = 30000, .run_as_uid = -1}, r);
	unsetenv("BUNSHIN_SECCOMP_SELFTEST");
}

char *harness_wait_text(int fd, const char *needle, int timeout_ms)
{
	static char buf[16384];
	size_t len = 0;

	cr_assert(harness_read_until(fd, buf, sizeof(buf), &len, needle, timeout_ms),
		  "never saw '%s'; got:\n%s", needle, buf);
	return buf;
}

int harness_cmd(const char *const *argv, int out_fd)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		dup2(null, 0);
		dup2(out_fd >= 0 ? out_fd : null, 1);
		dup2(out_fd >= 0 ? out_fd : null, 2);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool harness_find_tool(const char *name, char *path, size_t len)
{
	static const char *const dirs[] = {"/usr/sbin", "/sbin", "/usr/bin", "/bin"};

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(path, len, "%s/%s", dirs[i], name);
		if (access(path, X_OK) == 0)
			return true;
	}
	return false;
}

/*
 * A VMM a test expects to die (a seccomp kill, a refused start) may be gone
 * when the test writes to its socket or stdin: that write must fail with
 * EPIPE, not kill the test with SIGPIPE. Criterion's workers are forked
 * after this runs, and an ignored signal stays ignored across fork.
 */
__attribute__((constructor)) static void harness_ignore_sigpipe(void)
{
	signal(SIGPIPE, SIG_IGN);
}

void harness_netns_guest_argv(const char **argv, const char *ns, const char *net,
			      const char *cmdline)
{
	const char *a[HARNESS_NETNS_ARGV] = {
		"ip",	    "netns", "exec",  ns,  harness_vmm(), "--kernel", harness_guest("elf"),
		"--memory", "128M",  "--net", net, "--cmdline",	  cmdline,    NULL};

	memcpy(argv, a, sizeof(a));
}

/* ---- live migration (test_migrate.c, test_migrate_layers.c) ---- */

void harness_mig_start(struct harness_proc *p, const char *tag, const char *const *args)
{
	const char *argv[32];
	char serial[160];
	int n = 0;

	snprintf(serial, sizeof(serial), "file:%s/%s.out", harness_dir, tag);
	for (int i = 0; args[i] && n < 29; i++)
		argv[n++] = args[i];
	argv[n++] = "--serial";
	argv[n++] = serial;
	argv[n] = NULL;
	harness_proc_start(p, harness_dir, tag, argv);
}

/*
 * Whether a unix socket bound to path listens: /proc/net/unix flags it
 * (__SO_ACCEPTCON, 0x10000). The file alone appears at bind(), before
 * listen(), when a connect is still refused; a probe connection would be
 * the destination's one migration stream.
 */
static bool harness_unix_listens(const char *path)
{
	FILE *f = fopen("/proc/net/unix", "re");
	char line[4200];
	bool yes = false;

	while (f && !yes && fgets(line, sizeof(line), f)) {
		unsigned long flags;
		char *name = strrchr(line, ' ');

		if (!name || sscanf(line, "%*s %*s %*s %lx", &flags) != 1)
			continue;
		name[strcspn(name, "\n")] = 0;
		yes = !strcmp(name + 1, path) && (flags & 0x10000);
	}
	if (f)
		fclose(f);
	return yes;
}

void harness_wait_listening(const char *url)
{
	for (int i = 0; i < 1000 && !strncmp(url, "unix:", 5) && !harness_unix_listens(url + 5);
	     i++)
		usleep(10000);
}

pid_t harness_listen_and_fork(const char *path, int *lfd)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	pid_t pid;

	*lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	cr_assert_geq(*lfd, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	cr_assert_eq(bind(*lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(*lfd, 1), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	return pid;
}

pid_t harness_fake_destination(const char *path, size_t n, const char *save)
{
	int lfd;
	pid_t pid = harness_listen_and_fork(path, &lfd);

	if (pid == 0) {
		uint8_t hdr[28], *buf = malloc(n + 1);
		int fd = accept(lfd, NULL, NULL), out;
		size_t got = 0, cfg;

		if (fd < 0 || read(fd, hdr, sizeof(hdr)) != sizeof(hdr))
			_exit(1);
		cfg = hdr[24] | hdr[25] << 8 | (size_t)hdr[26] << 16;
		if (save) { /* the header and the command line, for the corrupt-stream test */
			uint8_t *c = malloc(cfg);

			for (size_t k = 0; k < cfg;) {
				ssize_t r = read(fd, c + k, cfg - k);

				if (r <= 0)
					_exit(1);
				k += (size_t)r;
			}
			out = open(save, O_WRONLY | O_CREAT | O_TRUNC, 0644);
			if (write(out, hdr, sizeof(hdr)) != sizeof(hdr) ||
			    write(out, c, cfg) != (ssize_t)cfg)
				_exit(1);
			close(out);
		}
		while (got < n) {
			ssize_t r = read(fd, buf, n - got);

			if (r <= 0)
				break;
			got += (size_t)r;
		}
		_exit(0);
	}
	close(lfd);
	return pid;
}

static void harness_feed(const char *url_path, const uint8_t *head, size_t hlen, const void *tail,
			 size_t tlen)
{
	int fd = harness_unix_connect(url_path, 5000);

	cr_assert_geq(fd, 0);
	if (hlen)
		cr_assert_eq(write(fd, head, hlen), (ssize_t)hlen);
	if (tlen)
		cr_assert_eq(write(fd, tail, tlen), (ssize_t)tlen);
	shutdown(fd, SHUT_WR);
	close(fd);
}

void harness_expect_refusal(const char *want, const uint8_t *head, size_t hlen, const void *tail,
			    size_t tlen)
{
	char in[96], path[96];
	struct harness_proc b;

	snprintf(path, sizeof(path), "%s/in.sock", harness_dir);
	snprintf(in, sizeof(in), "unix:%s", path);
	{
		const char *args[] = {"--incoming", in, NULL};

		harness_mig_start(&b, "b", args);
	}
	harness_feed(path, head, hlen, tail, tlen);
	cr_assert_eq(harness_proc_wait(&b, 30000), 1, "%s", harness_slurp(b.err));
	cr_assert(strstr(harness_slurp(b.err), want), "want '%s': %s", want, harness_slurp(b.err));
	cr_assert_eq(harness_count(harness_slurp(b.err), "\n"), 1, "one line: %s",
		     harness_slurp(b.err));
}
