// SPDX-License-Identifier: MIT
/*
 * The control API (--api-sock) of a running VM, spoken to over its unix
 * socket with a minimal HTTP/1.1 client. The guest idles in test=serial-echo
 * (halted, waiting for input) so the VM stays up until the API stops it.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

struct vm {
	pid_t pid;
	char dir[64];
	char sock[96];
	char err[96];	      /* the VMM's stderr */
	char serial[96];      /* the guest's console */
	char serial_arg[104]; /* file:<serial> */
};

struct reply {
	int status;
	char body[8192];
};

static void write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		cr_assert_gt(n, 0, "write to the API: %s", strerror(errno));
		buf += n;
		len -= (size_t)n;
	}
}

/* One request on a fresh connection ("Connection: close": the reply ends at EOF). */
static void http(const struct vm *vm, const char *method, const char *path, const char *body,
		 struct reply *r)
{
	static char raw[1 << 17];
	size_t len = 0, blen = body ? strlen(body) : 0;
	char head[256];
	int fd = harness_unix_connect(vm->sock, 0);
	ssize_t n;
	char *sep;

	cr_assert_geq(fd, 0, "connect %s: %s", vm->sock, strerror(errno));
	snprintf(head, sizeof(head),
		 "%s %s HTTP/1.1\r\nHost: vmm\r\nConnection: close\r\n"
		 "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
		 method, path, blen);
	write_all(fd, head, strlen(head));
	if (blen)
		write_all(fd, body, blen);
	while ((n = read(fd, raw + len, sizeof(raw) - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	raw[len] = 0;
	cr_assert_eq(sscanf(raw, "HTTP/1.1 %d", &r->status), 1, "no status line in '%s'", raw);
	sep = strstr(raw, "\r\n\r\n");
	cr_assert_not_null(sep);
	snprintf(r->body, sizeof(r->body), "%s", sep + 4);
}

/*
 * Starts the VMM running the guest with cmdline, the API at DIR/api.sock
 * and the console in DIR/serial, and waits until the API answers.
 */
static void vm_start_guest(struct vm *vm, const char *cmdline, const char *const *extra)
{
	const char *argv[24] = {harness_vmm(), "--kernel",     harness_guest("elf"),
				"--cmdline",   cmdline,	       "--memory",
				"64M",	       "--cpus",       "2",
				"--serial",    vm->serial_arg, "--api-sock",
				vm->sock};
	int n = 13;

	harness_require_kvm();
	snprintf(vm->dir, sizeof(vm->dir), "/tmp/bunshin-api.XXXXXX");
	cr_assert_not_null(mkdtemp(vm->dir));
	snprintf(vm->sock, sizeof(vm->sock), "%s/api.sock", vm->dir);
	snprintf(vm->err, sizeof(vm->err), "%s/stderr", vm->dir);
	snprintf(vm->serial, sizeof(vm->serial), "%s/serial", vm->dir);
	snprintf(vm->serial_arg, sizeof(vm->serial_arg), "file:%s", vm->serial);
	for (int i = 0; extra && extra[i]; i++)
		argv[n++] = extra[i];
	vm->pid = fork();
	cr_assert_geq(vm->pid, 0);
	if (vm->pid == 0) {
		int fd = open(vm->err, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		harness_die_with_parent();
		dup2(fd, STDERR_FILENO);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	for (int i = 0; i < 500; i++) {
		int fd = harness_unix_connect(vm->sock, 0);

		if (fd >= 0) {
			close(fd);
			return;
		}
		usleep(10000);
	}
	kill(vm->pid, SIGKILL);
	cr_assert_fail("the API socket never answered");
}

/* An idle guest: halted, waiting for serial input that never comes. */
static void vm_start(struct vm *vm, const char *const *extra)
{
	vm_start_guest(vm, "test=serial-echo", extra);
}

/* The guest's console so far, newly allocated. */
static char *vm_console(const struct vm *vm)
{
	FILE *f = fopen(vm->serial, "r");
	char *buf = calloc(1, 65536);

	cr_assert_not_null(buf);
	if (f) {
		size_t n = fread(buf, 1, 65535, f);

		buf[n] = 0;
		fclose(f);
	}
	return buf;
}

static void vm_wait_console(const struct vm *vm, const char *want)
{
	for (int i = 0; i < 1000; i++) {
		char *out = vm_console(vm);
		bool found = strstr(out, want);

		free(out);
		if (found)
			return;
		usleep(10000);
	}
	cr_assert_fail("the guest never printed '%s'", want);
}

static void vm_cleanup(struct vm *vm)
{
	unlink(vm->err);
	unlink(vm->serial);
	unlink(vm->sock);
	rmdir(vm->dir);
}

/* The API answers from before the first boot: wait until GET path shows want. */
static void vm_wait_for(struct vm *vm, const char *path, const char *want, struct reply *r)
{
	for (int i = 0; i < 500; i++) {
		http(vm, "GET", path, NULL, r);
		if (strstr(r->body, want))
			return;
		usleep(10000);
	}
	cr_assert_fail("GET %s never showed %s; last: %s", path, want, r->body);
}

/* Waits for the VMM to exit; returns its exit status (or -1 after 10 s, killed). */
static int vm_wait(struct vm *vm)
{
	int status;

	for (int i = 0; i < 1000; i++) {
		if (waitpid(vm->pid, &status, WNOHANG) == vm->pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		usleep(10000);
	}
	kill(vm->pid, SIGKILL);
	waitpid(vm->pid, &status, 0);
	return -1;
}

/* Stops the VM through the API: 204, exit status 4, socket file gone. */
static void vm_stop(struct vm *vm)
{
	struct reply r;

	http(vm, "PUT", "/vm/actions", "{\"action\": \"stop\"}", &r);
	cr_assert_eq(r.status, 204, "%s", r.body);
	cr_assert_eq(vm_wait(vm), 4, "stopped by the API: exit status 4");
	cr_assert_neq(access(vm->sock, F_OK), 0, "the socket file is removed");
	vm_cleanup(vm);
}

Test(api, info_and_config)
{
	const char *extra[] = {"--rng", NULL};
	struct reply r;
	struct vm vm;

	vm_start(&vm, extra);
	vm_wait_for(&vm, "/vm", "\"state\":\"running\"", &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_assert(strstr(r.body, "\"vcpus\":2"), "%s", r.body);
	cr_assert(strstr(r.body, "\"memory_mib\":64"), "%s", r.body);
	cr_assert(strstr(r.body, "\"boots\":1"), "%s", r.body);

	http(&vm, "GET", "/vm/config", NULL, &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_assert(strstr(r.body, "\"cmdline\":\"test=serial-echo\""), "%s", r.body);
	cr_assert(strstr(r.body, "\"rng\":true"), "%s", r.body);
	cr_assert(strstr(r.body, "\"balloon\":null"), "%s", r.body);
	vm_stop(&vm);
}

Test(api, metrics_count_exits)
{
	struct reply r;
	struct vm vm;

	vm_start(&vm, NULL);
	vm_wait_for(&vm, "/metrics", "bunshin_vcpu_exits_total{reason=\"io\"}", &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_assert(strstr(r.body, "# TYPE bunshin_vcpu_exits_total counter"), "%s", r.body);
	cr_assert(strstr(r.body, "bunshin_vcpu_exits_total{reason=\"io\"} "), "%s", r.body);
	http(&vm, "GET", "/vm/metrics", NULL, &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_assert(strstr(r.body, "\"vcpu_exits\":{"), "%s", r.body);
	cr_assert(strstr(r.body, "\"io\":"), "the guest's serial output exits: %s", r.body);
	vm_stop(&vm);
}

/* Every bad request gets a 4xx JSON error naming the problem, and the VM runs on. */
Test(api, bad_requests_change_nothing)
{
	static const struct {
		const char *method, *path, *body;
		int status;
		const char *error;
	} cases[] = {
		{"PUT", "/vm/actions", "{\"action\": \"fly\"}", 400,
		 "\"error\":\"unknown action 'fly' (expected power_button, ctrl_alt_del, stop, "
		 "pause, resume or start)\",\"field\":\"action\""},
		{"PUT", "/vm/actions", "{\"action\": \"resume\"}", 409, "the VM is not paused"},
		{"PUT", "/vm/actions", "{\"action\": 3}", 400, "\"field\":\"action\""},
		{"PUT", "/vm/actions", "{}", 400, "\"error\":\"action is required\""},
		{"PUT", "/vm/actions", "{\"action\": \"stop\", \"now\": true}", 400,
		 "\"error\":\"unknown field now\",\"field\":\"now\""},
		{"PUT", "/vm/actions", "{\"action\": \"st", 400, "invalid JSON"},
		{"PUT", "/vm/actions", "[\"stop\"]", 400, "the body must be a JSON object"},
		{"PUT", "/vm/actions", "{\"action\": \"stop\", \"action\": \"stop\"}", 400,
		 "duplicate object key"},
		{"PUT", "/vm/balloon", "{\"target_mib\": 1}", 404, "this VM has no balloon"},
		{"GET", "/vm/balloon", NULL, 404, "this VM has no balloon"},
		{"PUT", "/vm/snapshot", "{\"dir\": \"relative/dir\"}", 400,
		 "\"error\":\"dir must be an absolute path\",\"field\":\"dir\""},
		{"PUT", "/vm/snapshot", "{}", 400, "dir is required"},
		{"PUT", "/vm/balloon", "{\"target_mib\": -1}", 400, "\"field\":\"target_mib\""},
		{"PUT", "/vm/balloon", "{\"target_mib\": 64}", 400, "out of range (0 to 63)"},
		{"DELETE", "/vm", NULL, 405, "DELETE is not allowed on /vm"},
		{"GET", "/nowhere", NULL, 404, "no such resource: /nowhere"},
	};
	struct reply r;
	struct vm vm;

	vm_start(&vm, NULL);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		http(&vm, cases[i].method, cases[i].path, cases[i].body, &r);
		cr_assert_eq(r.status, cases[i].status, "case %zu: %d %s", i, r.status, r.body);
		cr_assert(strstr(r.body, cases[i].error), "case %zu: got %s, want %s", i, r.body,
			  cases[i].error);
	}
	vm_wait_for(&vm, "/vm", "\"state\":\"running\"", &r);
	vm_stop(&vm);
}

Test(api, balloon_target)
{
	const char *extra[] = {"--balloon", "size=8M", NULL};
	struct reply r;
	struct vm vm;

	vm_start(&vm, extra);
	http(&vm, "GET", "/vm/balloon", NULL, &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_assert(strstr(r.body, "\"target_mib\":8,"), "from --balloon size=8M: %s", r.body);
	cr_assert(strstr(r.body, "\"actual_mib\":0,"), "no driver: nothing inflated: %s", r.body);
	http(&vm, "PUT", "/vm/balloon", "{\"target_mib\": 32}", &r);
	cr_assert_eq(r.status, 204, "%s", r.body);
	http(&vm, "GET", "/vm/balloon", NULL, &r);
	cr_assert(strstr(r.body, "\"target_mib\":32,"), "%s", r.body);
	http(&vm, "PUT", "/vm/balloon", "{\"target_mib\": \"lots\"}", &r);
	cr_assert_eq(r.status, 400, "%s", r.body);
	http(&vm, "GET", "/vm/balloon", NULL, &r);
	cr_assert(strstr(r.body, "\"target_mib\":32,"), "a refused request changes nothing: %s",
		  r.body);
	vm_stop(&vm);
}

Test(api, oversized_body_is_refused)
{
	size_t len = 70 * 1024;
	char *body = malloc(len + 1);
	struct reply r;
	struct vm vm;

	cr_assert_not_null(body);
	memset(body, ' ', len);
	memcpy(body, "{\"action\":", 10);
	body[len - 1] = '}';
	body[len] = 0;
	vm_start(&vm, NULL);
	http(&vm, "PUT", "/vm/actions", body, &r);
	cr_assert_eq(r.status, 413, "%s", r.body);
	cr_assert(strstr(r.body, "larger than 65536 bytes"), "%s", r.body);
	free(body);
	vm_stop(&vm);
}

/* The guest does not read its keyboard: two key combinations fit the controller, then 409. */
Test(api, power_button_and_ctrl_alt_del)
{
	struct reply r;
	struct vm vm;

	vm_start(&vm, NULL);
	http(&vm, "PUT", "/vm/actions", "{\"action\": \"power_button\"}", &r);
	cr_assert_eq(r.status, 204, "%s", r.body);
	for (int i = 0; i < 2; i++) {
		http(&vm, "PUT", "/vm/actions", "{\"action\": \"ctrl_alt_del\"}", &r);
		cr_assert_eq(r.status, 204, "press %d: %s", i, r.body);
	}
	http(&vm, "PUT", "/vm/actions", "{\"action\": \"ctrl_alt_del\"}", &r);
	cr_assert_eq(r.status, 409, "%s", r.body);
	cr_assert(strstr(r.body, "not reading its keyboard"), "%s", r.body);
	vm_stop(&vm);
}

Test(api, stale_socket_is_replaced)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char dir[] = "/tmp/bunshin-api-stale.XXXXXX";
	int fd;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/api.sock", dir);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd); /* what a crashed VMM leaves behind */
	{
		const char *argv[] = {"vmm",	   "--kernel",	 harness_guest("elf"), "--cmdline",
				      "test=boot", "--api-sock", sa.sun_path,	       NULL};
		struct vmm_result res;

		harness_require_kvm();
		harness_run(&(struct vmm_run){.argv = argv, .timeout_ms = 30000, .run_as_uid = -1},
			    &res);
		cr_assert_eq(res.status, 0, "stderr: %s", res.err);
		cr_assert(harness_passed(res.out, "boot"), "%s", res.out);
		harness_free(&res);
	}
	cr_assert_neq(access(sa.sun_path, F_OK), 0);
	rmdir(dir);
}

Test(api, refuses_to_replace_a_file)
{
	char dir[] = "/tmp/bunshin-api-file.XXXXXX";
	char path[64];
	struct vmm_result res;
	int fd;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/precious", dir);
	fd = open(path, O_WRONLY | O_CREAT, 0644);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "data", 4), 4);
	close(fd);
	{
		const char *argv[] = {"vmm",	   "--kernel",	harness_guest("elf"),
				      "--cmdline", "test=boot", "--api-sock",
				      path,	   NULL};

		harness_require_kvm();
		harness_run(&(struct vmm_run){.argv = argv, .timeout_ms = 30000, .run_as_uid = -1},
			    &res);
	}
	cr_assert_eq(res.status, 1);
	cr_assert(strstr(res.err, "--api-sock: ") && strstr(res.err, "exists and is not a socket"),
		  "%s", res.err);
	cr_assert_eq(harness_count(res.err, "\n"), 1, "one line: %s", res.err);
	cr_assert_eq(access(path, F_OK), 0, "the file is still there");
	harness_free(&res);
	unlink(path);
	rmdir(dir);
}

/* The field key= of the guest's result line for name, as a number (-1 when absent). */
static long result_number(const char *console, const char *name, const char *key)
{
	char val[32];

	if (!harness_result_field(console, name, key, val, sizeof(val)))
		return -1;
	return atol(val);
}

/*
 * Paused, the vCPUs leave KVM_RUN (no exit is counted any more) and the
 * guest's clock stops with them: the guest watching kvmclock sees no jump
 * across a pause that its TSC, which keeps running, shows in full.
 */
Test(api, pause_is_exact)
{
	struct reply r, m1, m2;
	long tsc_gap, kvm_gap;
	struct vm vm;
	char *out;

	vm_start_guest(&vm, "test=clock-watch watch_ms=4000", NULL);
	vm_wait_console(&vm, "name=clock-watch result=ready");
	http(&vm, "PUT", "/vm/actions", "{\"action\": \"pause\"}", &r);
	cr_assert_eq(r.status, 204, "%s", r.body);
	http(&vm, "GET", "/vm", NULL, &r);
	cr_assert(strstr(r.body, "\"state\":\"paused\""), "%s", r.body);
	http(&vm, "PUT", "/vm/actions", "{\"action\": \"pause\"}", &r);
	cr_assert_eq(r.status, 409, "%s", r.body);
	cr_assert(strstr(r.body, "already paused"), "%s", r.body);

	/*
	 * 1.5 s paused, asserted below as at least 1 s of TSC: the guest turns
	 * TSC ticks into time with its own estimate of the TSC's rate, a few
	 * per cent off at times (a pause of exactly 1 s once read as 978 ms).
	 */
	http(&vm, "GET", "/vm/metrics", NULL, &m1);
	usleep(1500 * 1000);
	http(&vm, "GET", "/vm/metrics", NULL, &m2);
	cr_assert_str_eq(m1.body, m2.body, "no vCPU ran while paused");

	http(&vm, "PUT", "/vm/actions", "{\"action\": \"resume\"}", &r);
	cr_assert_eq(r.status, 204, "%s", r.body);
	cr_assert_eq(vm_wait(&vm), 0, "the guest finishes and powers off");
	out = vm_console(&vm);
	cr_assert(harness_passed(out, "clock-watch"), "%s", out);
	/*
	 * The TSC step spans the whole pause (1.5 s); kvmclock's must not. Both
	 * also see the host descheduling the guest (hundreds of ms on a loaded
	 * machine), so compare them rather than bound kvmclock alone: without
	 * the clock restore they are equal.
	 */
	tsc_gap = result_number(out, "clock-watch", "max_tsc_gap_us");
	kvm_gap = result_number(out, "clock-watch", "max_gap_us");
	cr_assert_geq(tsc_gap, 1000000, "the pause happened while the guest watched: %s", out);
	cr_assert_geq(tsc_gap - kvm_gap, 400000, "kvmclock must not jump across the pause: %s",
		      out);
	free(out);
	vm_cleanup(&vm);
}

Test(api, stop_while_paused)
{
	struct reply r;
	struct vm vm;

	vm_start(&vm, NULL);
	vm_wait_for(&vm, "/vm", "\"state\":\"running\"", &r);
	http(&vm, "PUT", "/vm/actions", "{\"action\": \"pause\"}", &r);
	cr_assert_eq(r.status, 204, "%s", r.body);
	vm_stop(&vm);
}

/* --api-sock alone: the VM is configured with PUT /vm/config and started by the API. */
Test(api, configured_and_started_through_the_api)
{
	char body[512], *out;
	struct reply r;
	struct vm vm;
	const char *argv[] = {harness_vmm(), "--api-sock",  vm.sock,
			      "--serial",    vm.serial_arg, NULL};

	harness_require_kvm();
	snprintf(vm.dir, sizeof(vm.dir), "/tmp/bunshin-api.XXXXXX");
	cr_assert_not_null(mkdtemp(vm.dir));
	snprintf(vm.sock, sizeof(vm.sock), "%s/api.sock", vm.dir);
	snprintf(vm.err, sizeof(vm.err), "%s/stderr", vm.dir);
	snprintf(vm.serial, sizeof(vm.serial), "%s/serial", vm.dir);
	snprintf(vm.serial_arg, sizeof(vm.serial_arg), "file:%s", vm.serial);
	vm.pid = fork();
	cr_assert_geq(vm.pid, 0);
	if (vm.pid == 0) {
		int fd = open(vm.err, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		harness_die_with_parent();
		dup2(fd, STDERR_FILENO);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	for (int i = 0; i < 500 && access(vm.sock, F_OK); i++)
		usleep(10000);
	vm_wait_for(&vm, "/vm", "\"state\":\"not_started\"", &r);

	http(&vm, "PUT", "/vm/actions", "{\"action\": \"start\"}", &r);
	cr_assert_eq(r.status, 409, "%s", r.body);
	cr_assert(strstr(r.body, "configure the VM first"), "%s", r.body);
	http(&vm, "PUT", "/vm/actions", "{\"action\": \"pause\"}", &r);
	cr_assert_eq(r.status, 409, "%s", r.body);
	http(&vm, "PUT", "/vm/config", "{\"kernel\": \"/nonexistent/kernel\"}", &r);
	cr_assert_eq(r.status, 400, "%s", r.body);
	cr_assert(strstr(r.body, "\"field\":\"kernel\""), "%s", r.body);
	snprintf(body, sizeof(body), "{\"kernel\": \"%s\", \"memory_mib\": 3}",
		 harness_guest("elf"));
	http(&vm, "PUT", "/vm/config", body, &r);
	cr_assert_eq(r.status, 400, "%s", r.body);
	cr_assert(strstr(r.body, "--memory: 3M is too small"), "%s", r.body);
	cr_assert(strstr(r.body, "\"field\":\"memory_mib\""), "%s", r.body);
	http(&vm, "PUT", "/vm/config", "{\"kernel\": \"k\", \"gpus\": 1}", &r);
	cr_assert_eq(r.status, 400, "%s", r.body);
	cr_assert(strstr(r.body, "\"field\":\"gpus\""), "%s", r.body);
	http(&vm, "PUT", "/vm/config", "{\"kernel\": \"k\", \"disks\": [{\"path\": \"a,b\"}]}", &r);
	cr_assert_eq(r.status, 400, "%s", r.body);
	cr_assert(strstr(r.body, "path must not contain ','"), "%s", r.body);

	snprintf(body, sizeof(body),
		 "{\"kernel\": \"%s\", \"cmdline\": \"test=boot expect_cpus=2 expect_mem_mib=64\", "
		 "\"vcpus\": 2, \"memory_mib\": 64, \"rng\": true, \"balloon\": {\"size_mib\": 8}}",
		 harness_guest("elf"));
	http(&vm, "PUT", "/vm/config", body, &r);
	cr_assert_eq(r.status, 204, "%s", r.body);
	http(&vm, "GET", "/vm/config", NULL, &r);
	cr_assert(strstr(r.body, "\"vcpus\":2"), "the staged configuration shows: %s", r.body);
	cr_assert(strstr(r.body, "\"rng\":true"), "%s", r.body);
	cr_assert(strstr(r.body, "\"size_mib\":8"), "%s", r.body);
	http(&vm, "PUT", "/vm/actions", "{\"action\": \"start\"}", &r);
	cr_assert_eq(r.status, 204, "%s", r.body);
	cr_assert_eq(vm_wait(&vm), 0, "the guest boots and powers off");
	out = vm_console(&vm);
	cr_assert(harness_passed(out, "boot"), "%s", out);
	free(out);
	vm_cleanup(&vm);
}

/* ---- disk rate limits ---- */

/* The number after "key": in body, or -1. */
static long json_number(const char *body, const char *key)
{
	char needle[64];
	const char *p;

	snprintf(needle, sizeof(needle), "\"%s\":", key);
	p = strstr(body, needle);
	return p ? strtol(p + strlen(needle), NULL, 10) : -1;
}

/*
 * A guest reading its disk for bench_ms (its own clock), with the disk
 * limited as disk_opts says. Waits until GET /vm/metrics shows reads and
 * leaves that reply in r.
 */
static char *vm_start_reader(struct vm *vm, const char *disk_opts, struct reply *r)
{
	static char disk[256];
	const char *extra[] = {"--disk", disk, NULL};
	char *img = harness_temp_file(4 << 20, 5, NULL);

	snprintf(disk, sizeof(disk), "path=%s,id=data%s", img, disk_opts);
	vm_start_guest(vm, "test=blk-bench bench_row=randread4k_qd32 bench_ms=1500", extra);
	for (int i = 0; i < 1000; i++) {
		http(vm, "GET", "/vm/metrics", NULL, r);
		if (json_number(r->body, "reads") > 0)
			return img;
		usleep(10000);
	}
	cr_assert_fail("the guest never read its disk: %s", r->body);
	return img;
}

/* The guest finishes its row and powers off: exit status 0, a passing result. */
static void vm_reader_done(struct vm *vm, char *img)
{
	char *out;

	cr_assert_eq(vm_wait(vm), 0, "the guest powers off after its row");
	out = vm_console(vm);
	cr_assert(harness_passed(out, "blk-bench"), "%s", out);
	free(out);
	vm_cleanup(vm);
	unlink(img);
	free(img);
}

Test(api, disk_without_limits_is_never_throttled)
{
	struct reply r;
	struct vm vm;
	char *img = vm_start_reader(&vm, "", &r);

	cr_assert_eq(json_number(r.body, "throttled"), 0, "%s", r.body);
	cr_assert(strstr(r.body, "\"limits\":{\"iops\":0,\"iops_burst\":0,\"bps\":0,"
				 "\"bps_burst\":0}"),
		  "%s", r.body);
	vm_reader_done(&vm, img);
}

/* Reads at 50 per second wait for tokens; lifting the limit through the API frees them. */
Test(api, disk_limits_throttle_and_change_at_run_time)
{
	static const struct {
		const char *body;
		int status;
		const char *error;
	} bad[] = {
		{"{\"disk\": \"nope\", \"iops\": 5}", 404, "no disk 'nope'"},
		{"{\"disk\": \"7\"}", 404, "\"field\":\"disk\""},
		{"{\"iops\": 5}", 400, "disk is required"},
		{"{\"disk\": \"data\", \"iops\": -1}", 400, "\"field\":\"iops\""},
		{"{\"disk\": \"data\", \"bps\": \"fast\"}", 400, "\"field\":\"bps\""},
		{"{\"disk\": \"data\", \"iops\": 0, \"iops_burst\": 5}", 400,
		 "\"field\":\"iops_burst\""},
		{"{\"disk\": \"data\", \"rate\": 5}", 400, "\"field\":\"rate\""},
	};
	struct reply r;
	struct vm vm;
	char *img = vm_start_reader(&vm, ",iops=50,iops_burst=4", &r);

	cr_assert(strstr(r.body, "\"limits\":{\"iops\":50,\"iops_burst\":4,\"bps\":0,"), "%s",
		  r.body);
	for (int i = 0; i < 500 && json_number(r.body, "throttled") <= 0; i++) {
		usleep(10000);
		http(&vm, "GET", "/vm/metrics", NULL, &r);
	}
	cr_assert_gt(json_number(r.body, "throttled"), 0, "%s", r.body);
	http(&vm, "GET", "/metrics", NULL, &r);
	cr_assert(strstr(r.body, "bunshin_disk_throttled_total{disk=\"data\"} "), "%s", r.body);
	http(&vm, "GET", "/vm/config", NULL, &r);
	cr_assert(strstr(r.body, "\"iops\":50,\"iops_burst\":4,\"bps\":0,\"bps_burst\":0"), "%s",
		  r.body);

	/* absent fields keep their value */
	http(&vm, "PUT", "/vm/disk-limits", "{\"disk\": \"data\", \"bps\": 1048576}", &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	cr_assert(strstr(r.body, "{\"iops\":50,\"iops_burst\":4,\"bps\":1048576,\"bps_burst\":0}"),
		  "%s", r.body);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		http(&vm, "PUT", "/vm/disk-limits", bad[i].body, &r);
		cr_assert_eq(r.status, bad[i].status, "case %zu: %d %s", i, r.status, r.body);
		cr_assert(strstr(r.body, bad[i].error), "case %zu: got %s, want %s", i, r.body,
			  bad[i].error);
	}
	/* by index; 0 lifts a limit (and its burst) */
	http(&vm, "PUT", "/vm/disk-limits", "{\"disk\": \"0\", \"iops\": 0, \"bps\": 0}", &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	http(&vm, "GET", "/vm/metrics", NULL, &r);
	cr_assert(strstr(r.body, "\"limits\":{\"iops\":0,\"iops_burst\":0,\"bps\":0,"
				 "\"bps_burst\":0}"),
		  "%s", r.body);
	vm_reader_done(&vm, img);
}

/*
 * A snapshot taken while a request waits for tokens: the waiting chain was
 * popped but never started, so the snapshot hands it back to the ring and
 * the restored VM runs it. Lost, the guest would wait for it forever.
 */
Test(api, snapshot_while_throttled_loses_no_request)
{
	char snap[64] = "/tmp/bunshin-rl-snap.XXXXXX", body[128], cmd[96];
	const char *argv[] = {"vmm", "--restore", snap, "--serial", "stdio", NULL};
	struct vmm_result res;
	struct reply r;
	struct vm vm;
	char *img = vm_start_reader(&vm, ",iops=40,iops_burst=1", &r);

	cr_assert_not_null(mkdtemp(snap));
	for (int i = 0; i < 500 && json_number(r.body, "throttled") <= 0; i++) {
		usleep(10000);
		http(&vm, "GET", "/vm/metrics", NULL, &r);
	}
	cr_assert_gt(json_number(r.body, "throttled"), 0, "%s", r.body);
	snprintf(body, sizeof(body), "{\"dir\": \"%s\"}", snap);
	http(&vm, "PUT", "/vm/snapshot", body, &r);
	cr_assert_eq(r.status, 200, "%s", r.body);
	vm_stop(&vm);
	harness_run(&(struct vmm_run){.argv = argv, .timeout_ms = 60000, .run_as_uid = -1}, &res);
	cr_assert(!res.timed_out, "the restored guest hangs; console:\n%s\nstderr:\n%s", res.out,
		  res.err);
	cr_assert(harness_passed(res.out, "blk-bench"), "console:\n%s\nstderr:\n%s", res.out,
		  res.err);
	cr_assert_eq(res.status, 0);
	harness_free(&res);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", snap);
	cr_assert_eq(system(cmd), 0);
	unlink(img);
	free(img);
}
