// SPDX-License-Identifier: MIT
/*
 * End-to-end: boot Debian 12's stock kernel (linux-image-amd64) with a
 * busybox initramfs under bunshin-vmm, and check that the guest's /init
 * reports in on the serial console and powers off so the VMM exits 0; then
 * again with every virtio device, which the kernel must drive with its own
 * modules.
 *
 * A stock kernel needs hardware virtualization: under PVM-nested KVM (no
 * vmx/svm in /proc/cpuinfo) it cannot boot at all, so the test skips there,
 * and where /dev/kvm is missing or inaccessible.
 *
 * Environment (set by tests/e2e/meson.build):
 *   BUNSHIN_VMM        path of bunshin-vmm
 *   BUNSHIN_BUILDDIR   build root; the cache defaults to $BUNSHIN_BUILDDIR/e2e-cache
 *   BUNSHIN_E2E_DIR    tests/e2e in the source tree (fetch-kernel.sh, mkinitramfs)
 *   BUNSHIN_MKCPIO     path of the mkcpio tool
 * Optional:
 *   BUNSHIN_E2E_CACHE  cache directory for the kernel, busybox and initramfs
 *   BUNSHIN_E2E_KERNEL and BUNSHIN_E2E_BUSYBOX  use these instead of fetching
 *                      (offline machines); both must be set
 *   BUNSHIN_E2E_MODULES with them: the kernel's lib/modules/<release> (needed
 *                      by the virtio test)
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define GUEST_CPUS	2
#define GUEST_MEMORY	"512M"
#define GUEST_MEMORY_KB (512 * 1024)
#define GUEST_CMDLINE	"console=ttyS0 earlyprintk=serial panic=-1 rdinit=/init"

#define FETCH_TIMEOUT_S 120
#define BUILD_TIMEOUT_S 30
#define BOOT_TIMEOUT_S	120

#define MARKER "BUNSHIN-E2E "

/* Output of a child process: everything it wrote on stdout, and how it ended. */
struct run_result {
	char *out;
	size_t len;
	int status; /* as from waitpid() */
	bool timed_out;
};

/* True when /proc/cpuinfo's flags lists vmx or svm as a whole word. */
static bool has_hw_virt(void)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char *line = NULL;
	size_t cap = 0;
	bool found = false;

	if (!f)
		return false;
	while (!found && getline(&line, &cap, f) >= 0) {
		char *save = NULL;

		if (strncmp(line, "flags", 5) != 0)
			continue;
		for (char *tok = strtok_r(line, " \t\n:", &save); tok;
		     tok = strtok_r(NULL, " \t\n:", &save)) {
			if (!strcmp(tok, "vmx") || !strcmp(tok, "svm")) {
				found = true;
				break;
			}
		}
	}
	free(line);
	fclose(f);
	return found;
}

/* Why this machine cannot run the test, or NULL when it can. */
static const char *why_skip(void)
{
	if (access("/dev/kvm", F_OK) != 0)
		return "skipped: /dev/kvm is absent (no KVM on this host)";
	if (access("/dev/kvm", R_OK | W_OK) != 0)
		return "skipped: /dev/kvm is not readable and writable by this user";
	if (!has_hw_virt())
		return "skipped: no hardware virtualization (vmx/svm absent from "
		       "/proc/cpuinfo); a stock Linux kernel cannot boot under this KVM";
	return NULL;
}

static const char *need_env(const char *name)
{
	const char *v = getenv(name);

	if (!v || !*v)
		cr_assert_fail(
			"environment variable %s is not set (run the test through meson test)",
			name);
	return v;
}

/* A newly allocated formatted string; fails the test when out of memory. */
__attribute__((format(printf, 1, 2))) static char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	cr_assert_geq(n, 0, "out of memory");
	return s;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void append(struct run_result *r, const char *buf, size_t n)
{
	char *p = realloc(r->out, r->len + n + 1);

	cr_assert_not_null(p, "out of memory");
	memcpy(p + r->len, buf, n);
	r->out = p;
	r->len += n;
	r->out[r->len] = '\0';
}

/*
 * Run argv[0] with stdin from /dev/null and stdout captured (and copied to
 * @tee when not NULL). stderr goes to the file @err_path, or when that is
 * NULL into the captured output too: Criterion silences the test's own
 * stderr under --tap=-, so a child's complaints must be caught to be seen.
 * The child gets its own process group; past @timeout_s seconds the whole
 * group is killed.
 */
static void run(char *const argv[], int timeout_s, FILE *tee, const char *err_path,
		struct run_result *r)
{
	int pipefd[2];
	int errfd = -1;
	pid_t pid;
	double deadline = now_s() + timeout_s;

	memset(r, 0, sizeof(*r));
	append(r, "", 0);
	if (err_path) {
		errfd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		cr_assert_geq(errfd, 0, "cannot create %s: %s", err_path, strerror(errno));
	}
	cr_assert_eq(pipe2(pipefd, O_CLOEXEC), 0, "pipe2: %s", strerror(errno));
	fflush(NULL);
	pid = fork();
	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);

		setpgid(0, 0);
		if (devnull < 0 || dup2(devnull, STDIN_FILENO) < 0 ||
		    dup2(pipefd[1], STDOUT_FILENO) < 0 ||
		    dup2(errfd >= 0 ? errfd : pipefd[1], STDERR_FILENO) < 0)
			_exit(126);
		execv(argv[0], argv);
		fprintf(stderr, "test_linux: cannot execute %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	setpgid(pid, pid); /* also here, so the kill below cannot miss */
	close(pipefd[1]);
	if (errfd >= 0)
		close(errfd);

	for (;;) {
		struct pollfd pfd = {.fd = pipefd[0], .events = POLLIN};
		double left = deadline - now_s();
		char buf[4096];
		ssize_t n;
		int ret;

		if (left <= 0) {
			r->timed_out = true;
			break;
		}
		ret = poll(&pfd, 1, (int)(left * 1000) + 1);
		if (ret < 0 && errno == EINTR)
			continue;
		cr_assert_geq(ret, 0, "poll: %s", strerror(errno));
		if (ret == 0)
			continue;
		n = read(pipefd[0], buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		cr_assert_geq(n, 0, "read: %s", strerror(errno));
		if (n == 0)
			break;
		append(r, buf, (size_t)n);
		if (tee) {
			fwrite(buf, 1, (size_t)n, tee);
			fflush(tee);
		}
	}
	close(pipefd[0]);

	/*
	 * The pipe closed, so the child is exiting (or handed stdout on to
	 * someone else): give it what is left of its time, then kill it.
	 */
	for (;;) {
		pid_t w = waitpid(pid, &r->status, WNOHANG);

		if (w == pid)
			break;
		cr_assert_geq(w, 0, "waitpid: %s", strerror(errno));
		if (r->timed_out || now_s() >= deadline) {
			r->timed_out = true;
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			waitpid(pid, &r->status, 0);
			break;
		}
		usleep(10000);
	}
}

static void free_result(struct run_result *r)
{
	free(r->out);
	r->out = NULL;
}

static bool exited_ok(const struct run_result *r)
{
	return !r->timed_out && WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0;
}

static const char *describe(const struct run_result *r)
{
	static char buf[64];

	if (r->timed_out)
		return "timed out";
	if (WIFEXITED(r->status))
		snprintf(buf, sizeof(buf), "exit status %d", WEXITSTATUS(r->status));
	else if (WIFSIGNALED(r->status))
		snprintf(buf, sizeof(buf), "killed by signal %d", WTERMSIG(r->status));
	else
		snprintf(buf, sizeof(buf), "wait status 0x%x", r->status);
	return buf;
}

/* The start of the line after the one @p points into, or NULL at the end. */
static const char *next_line(const char *p)
{
	p = strchr(p, '\n');
	return p && p[1] ? p + 1 : NULL;
}

/* What bunshin-vmm's exit status means (see bunshin-vmm --help). */
static const char *vmm_status_hint(const struct run_result *r)
{
	if (r->timed_out || !WIFEXITED(r->status))
		return "";
	switch (WEXITSTATUS(r->status)) {
	case 1:
		return " (VMM error)";
	case 2:
		return " (bad usage)";
	case 3:
		return " (guest rebooted; with panic=-1 a kernel panic does that)";
	case 4:
		return " (stopped by a signal)";
	default:
		return "";
	}
}

/* The value after "KEY=" on a line of "KEY=VALUE" lines, newly allocated, or NULL. */
static char *kv_lookup(const char *text, const char *key)
{
	size_t klen = strlen(key);

	for (const char *p = text; p; p = next_line(p)) {
		if (!strncmp(p, key, klen) && p[klen] == '=')
			return strndup(p + klen + 1, strcspn(p + klen + 1, "\r\n"));
	}
	return NULL;
}

/* The value of "key=" in the space-separated marker line, newly allocated, or NULL. */
static char *marker_field(const char *line, const char *key)
{
	size_t klen = strlen(key);
	const char *p = line;

	while ((p = strstr(p, key)) != NULL) {
		if ((p == line || p[-1] == ' ') && p[klen] == '=')
			return strndup(p + klen + 1, strcspn(p + klen + 1, " \r\n"));
		p += klen;
	}
	return NULL;
}

/* A copy of the first console line that starts with the marker, or NULL. */
static char *find_marker(const char *console)
{
	for (const char *p = console; p; p = next_line(p)) {
		/* A serial console may prefix the line with stray carriage returns. */
		while (*p == '\r')
			p++;
		if (!strncmp(p, MARKER, strlen(MARKER)))
			return strndup(p, strcspn(p, "\r\n"));
	}
	return NULL;
}

/* The last @n bytes of a child's output, for failure messages. */
static const char *tail(const struct run_result *r, size_t n)
{
	return r->len > n ? r->out + r->len - n : r->out;
}

/* The last @n bytes of file @path, newly allocated; empty when unreadable. */
static char *file_tail(const char *path, long n)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, (size_t)n + 1);
	size_t got = 0;

	cr_assert_not_null(buf, "out of memory");
	if (!f)
		return buf;
	if (fseek(f, 0, SEEK_END) == 0 && ftell(f) > n)
		fseek(f, -n, SEEK_END);
	else
		rewind(f);
	got = fread(buf, 1, (size_t)n, f);
	buf[got] = '\0';
	fclose(f);
	return buf;
}

/* What both tests share: the kernel, its modules, busybox and the initramfs. */
struct e2e {
	const char *vmm;
	char *cache;
	char *kernel;
	char *modules;
	char *busybox;
	char *initrd;
	char *console_log;
	char *vmm_log;
};

/* Fetches (or finds in the cache) the kernel and busybox and builds the initramfs. */
static void e2e_prepare(struct e2e *e)
{
	const char *builddir = need_env("BUNSHIN_BUILDDIR");
	const char *e2edir = need_env("BUNSHIN_E2E_DIR");
	const char *mkcpio = need_env("BUNSHIN_MKCPIO");
	const char *cache_env = getenv("BUNSHIN_E2E_CACHE");
	char *fetch_sh = xasprintf("%s/fetch-kernel.sh", e2edir);
	char *mkinitramfs = xasprintf("%s/mkinitramfs", e2edir);
	struct run_result r;

	e->vmm = need_env("BUNSHIN_VMM");
	if (cache_env && *cache_env)
		e->cache = xasprintf("%s", cache_env);
	else
		e->cache = xasprintf("%s/e2e-cache", builddir);
	e->initrd = xasprintf("%s/initramfs.cpio.gz", e->cache);
	e->console_log = xasprintf("%s/console.log", e->cache);
	e->vmm_log = xasprintf("%s/vmm-stderr.log", e->cache);
	cr_assert_eq(access(e->vmm, X_OK), 0, "bunshin-vmm '%s' is not executable: %s", e->vmm,
		     strerror(errno));

	/* 1. The stock kernel and a static busybox, unless given. */
	if (getenv("BUNSHIN_E2E_KERNEL") && getenv("BUNSHIN_E2E_BUSYBOX")) {
		e->kernel = strdup(getenv("BUNSHIN_E2E_KERNEL"));
		e->busybox = strdup(getenv("BUNSHIN_E2E_BUSYBOX"));
		if (getenv("BUNSHIN_E2E_MODULES"))
			e->modules = strdup(getenv("BUNSHIN_E2E_MODULES"));
	} else {
		char *argv[] = {fetch_sh, e->cache, NULL};

		run(argv, FETCH_TIMEOUT_S, NULL, NULL, &r);
		cr_assert(exited_ok(&r),
			  "%s %s: %s; it needs 'apt-get update' done and network access, or set "
			  "BUNSHIN_E2E_KERNEL and BUNSHIN_E2E_BUSYBOX; its output:\n%s",
			  fetch_sh, e->cache, describe(&r), tail(&r, 2000));
		e->kernel = kv_lookup(r.out, "KERNEL");
		e->modules = kv_lookup(r.out, "MODULES");
		e->busybox = kv_lookup(r.out, "BUSYBOX");
		cr_assert(e->kernel && e->busybox, "%s printed no KERNEL=/BUSYBOX= lines:\n%s",
			  fetch_sh, r.out);
		free_result(&r);
	}
	cr_assert_not_null(e->kernel);
	cr_assert_not_null(e->busybox);

	/* 2. The initramfs; rebuilt every run, it takes well under a second. */
	{
		char *argv[] = {mkinitramfs, (char *)mkcpio, e->busybox,
				e->initrd,   e->modules,     NULL};

		run(argv, BUILD_TIMEOUT_S, NULL, NULL, &r);
		cr_assert(exited_ok(&r), "%s: %s; its output:\n%s", mkinitramfs, describe(&r),
			  tail(&r, 2000));
		free_result(&r);
	}
	free(fetch_sh);
	free(mkinitramfs);
}

static void e2e_free(struct e2e *e)
{
	free(e->cache);
	free(e->kernel);
	free(e->modules);
	free(e->busybox);
	free(e->initrd);
	free(e->console_log);
	free(e->vmm_log);
}

/*
 * Boots the kernel with the given command line and extra VMM options. The
 * console goes to console.log as well as into r; the VMM's own messages go
 * to vmm-stderr.log, so they cannot break up a console line. Returns the
 * tail of that log, newly allocated.
 */
static char *e2e_boot(const struct e2e *e, const char *cmdline, char *const *extra,
		      struct run_result *r)
{
	char *argv[40] = {(char *)e->vmm, "--kernel",	   e->kernel, "--initrd",    e->initrd,
			  "--cmdline",	  (char *)cmdline, "--cpus",  NULL,	     "--memory",
			  GUEST_MEMORY,	  "--serial",	   "stdio",   "--on-reboot", "exit"};
	int n = 15;
	char cpus[16];
	FILE *log;

	snprintf(cpus, sizeof(cpus), "%d", GUEST_CPUS);
	argv[8] = cpus;
	for (int i = 0; extra && extra[i] && n < 39; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	log = fopen(e->console_log, "w");
	if (!log)
		cr_log_warn("cannot write %s: %s", e->console_log, strerror(errno));
	fprintf(stderr, "e2e-linux: booting %s under %s (console: %s)\n", e->kernel, e->vmm,
		e->console_log);
	run(argv, BOOT_TIMEOUT_S, log, e->vmm_log, r);
	if (log)
		fclose(log);
	return file_tail(e->vmm_log, 2000);
}

/* The marker line, or a failed test that shows why it is missing. */
static char *e2e_marker(const struct run_result *r, const char *vmm_err)
{
	char *marker = find_marker(r->out);

	cr_assert_not_null(marker,
			   "no '" MARKER "' line on the console (bunshin-vmm: %s%s); last console "
			   "output:\n%s\nbunshin-vmm stderr:\n%s",
			   describe(r), vmm_status_hint(r), tail(r, 4000), vmm_err);
	fprintf(stderr, "e2e-linux: %s\n", marker);
	return marker;
}

/* A clean power-off, within the time limit. */
static void e2e_powered_off(const struct run_result *r, const char *vmm_err)
{
	cr_assert(!r->timed_out,
		  "bunshin-vmm was still running after %d s: the guest reported but did not "
		  "power off; last output:\n%s\nbunshin-vmm stderr:\n%s",
		  BOOT_TIMEOUT_S, tail(r, 2000), vmm_err);
	cr_assert(exited_ok(r),
		  "bunshin-vmm: %s%s (want exit status 0: guest powered off); its stderr:\n%s",
		  describe(r), vmm_status_hint(r), vmm_err);
}

Test(e2e, linux_boot, .timeout = 290)
{
	const char *why = why_skip();
	char *marker, *field, *release, *vmm_err;
	struct run_result r;
	struct e2e e = {0};

	if (why)
		cr_skip_test("%s", why);
	e2e_prepare(&e);
	vmm_err = e2e_boot(&e, GUEST_CMDLINE, NULL, &r);
	marker = e2e_marker(&r, vmm_err);

	field = marker_field(marker, "result");
	cr_assert(field && !strcmp(field, "pass"), "guest reported failure: %s", marker);
	free(field);

	field = marker_field(marker, "cpus");
	cr_assert(field && atoi(field) == GUEST_CPUS, "guest saw wrong CPU count (want %d): %s",
		  GUEST_CPUS, marker);
	free(field);

	/* MemTotal is RAM less what firmware and the kernel image reserve. */
	field = marker_field(marker, "mem_kb");
	cr_assert(field && atol(field) > GUEST_MEMORY_KB / 2 && atol(field) <= GUEST_MEMORY_KB,
		  "guest memory is not about %s: %s", GUEST_MEMORY, marker);
	free(field);

	/* Debian names the image vmlinuz-<release>: the guest must run that kernel. */
	field = marker_field(marker, "uname");
	release = strrchr(e.kernel, '/');
	release = release ? release + 1 : e.kernel;
	if (!strncmp(release, "vmlinuz-", 8))
		cr_assert(field && !strcmp(field, release + 8), "guest runs '%s', expected '%s'",
			  field ? field : "(none)", release + 8);
	else
		cr_assert(field && *field, "no uname in %s", marker);
	free(field);

	e2e_powered_off(&r, vmm_err);
	free(marker);
	free(vmm_err);
	free_result(&r);
	e2e_free(&e);
}

/* Runs a shell command line; fails the test with what it printed when it fails. */
static void sh(const char *cmd)
{
	char *argv[] = {"/bin/sh", "-c", (char *)cmd, NULL};
	struct run_result r;

	run(argv, BUILD_TIMEOUT_S, NULL, NULL, &r);
	cr_assert(exited_ok(&r), "'%s': %s:\n%s", cmd, describe(&r), tail(&r, 2000));
	free_result(&r);
}

/* The value of key= on the virtio line, which must be want. */
static void expect_virtio_field(const char *line, const char *key, const char *want)
{
	char *v = marker_field(line, key);

	cr_assert(v && !strcmp(v, want), "%s=%s, want %s: %s", key, v ? v : "(none)", want, line);
	free(v);
}

/*
 * The stock kernel drives every bunshin virtio device with its own modules:
 * it mounts an ext4 image (and what it writes there is in the image after
 * power-off), brings eth0 up with link, reads /dev/hwrng, writes to hvc0,
 * binds vsock and the balloon.
 */
Test(e2e, linux_virtio, .timeout = 290)
{
	const char *why = why_skip();
	char dir[] = "/tmp/bunshin-e2e-virtio.XXXXXX";
	char tap[16], *cmd, *img, *hvc, *net, *vsock, *disk, *con, *line, *vmm_err, *marker;
	struct run_result r;
	struct e2e e = {0};

	if (why)
		cr_skip_test("%s", why);
	e2e_prepare(&e);
	cr_assert_not_null(e.modules, "no kernel modules: set BUNSHIN_E2E_MODULES too");
	cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
	img = xasprintf("%s/disk.img", dir);
	hvc = xasprintf("%s/hvc0.out", dir);
	snprintf(tap, sizeof(tap), "bse2e%d", (int)getpid() % 100000);

	cmd = xasprintf("mkdir %s/root && echo bunshin-e2e-disk >%s/root/bunshin.txt && "
			"mkfs.ext4 -q -F -d %s/root %s 16M && ip tuntap add dev %s mode tap",
			dir, dir, dir, img, tap);
	sh(cmd);
	free(cmd);
	disk = xasprintf("path=%s", img);
	net = xasprintf("tap=%s,mac=52:54:00:e2:e2:01", tap);
	con = xasprintf("file:%s", hvc);
	vsock = xasprintf("cid=7,uds=%s/vsock", dir);
	{
		char *extra[] = {
			"--disk", disk,	     "--net", net,	   "--rng", "--console-virtio",
			con,	  "--vsock", vsock,   "--balloon", NULL};

		vmm_err = e2e_boot(&e, GUEST_CMDLINE " bunshin_virtio=1", extra, &r);
	}
	cmd = xasprintf("ip link del %s", tap);
	sh(cmd);
	free(cmd);

	marker = e2e_marker(&r, vmm_err);
	line = strstr(r.out, "BUNSHIN-E2E-VIRTIO ");
	cr_assert_not_null(line, "no BUNSHIN-E2E-VIRTIO line:\n%s", tail(&r, 4000));
	line = strndup(line, strcspn(line, "\r\n"));
	fprintf(stderr, "e2e-linux: %s\n", line);
	expect_virtio_field(line, "disk", "ok");
	expect_virtio_field(line, "ext4", "ok");
	expect_virtio_field(line, "eth0", "up");
	expect_virtio_field(line, "mac", "52:54:00:e2:e2:01");
	expect_virtio_field(line, "hwrng", "ok");
	expect_virtio_field(line, "hvc0", "ok");
	expect_virtio_field(line, "vsock", "ok");
	expect_virtio_field(line, "balloon", "ok");
	expect_virtio_field(line, "result", "pass");
	e2e_powered_off(&r, vmm_err);

	/* What the guest wrote reached the image, and hvc0 reached its backend. */
	cmd = xasprintf(
		"debugfs -R 'cat /written.txt' %s 2>/dev/null | grep -qx bunshin-e2e-written"
		" && grep -q BUNSHIN-E2E-HVC0 %s && rm -rf %s",
		img, hvc, dir);
	sh(cmd);
	free(cmd);

	free(line);
	free(marker);
	free(vmm_err);
	free_result(&r);
	free(img);
	free(hvc);
	free(disk);
	free(net);
	free(con);
	free(vsock);
	e2e_free(&e);
}

/*
 * Criterion's own main, plus one line: with --tap=- Criterion silences
 * stderr while tests run, so the reason for a skip (also in the TAP line) is
 * printed here first, where meson test and a person running the binary see it.
 */
int main(int argc, char **argv)
{
	struct criterion_test_set *tests = criterion_initialize();
	const char *why = why_skip();
	int result = 0;

	if (why)
		fprintf(stderr, "e2e-linux: %s\n", why);
	if (criterion_handle_args(argc, argv, true))
		result = !criterion_run_all_tests(tests);
	criterion_finalize(tests);
	return result;
}
