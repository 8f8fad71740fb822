// SPDX-License-Identifier: MIT
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../src/common/httpc.h"
#include "dharness.h"
#include "../../src/common/procname.h"

static const char *dh_env(const char *name)
{
	const char *v = getenv(name);

	cr_assert(v && *v, "%s is not set (run through meson test)", name);
	return v;
}

void dh_need_kvm(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		cr_skip_test("/dev/kvm is not usable here (%s)", strerror(errno));
	close(fd);
}

void dh_need_dnsmasq(void)
{
	if (access("/usr/sbin/dnsmasq", X_OK) && access("/sbin/dnsmasq", X_OK) &&
	    access("/usr/bin/dnsmasq", X_OK))
		cr_skip_test("skipped: no dnsmasq (dnsmasq-base) for bunshind to run");
}

const char *dh_jstr(const json_t *o, const char *sub, const char *key)
{
	if (sub)
		o = json_object_get(o, sub);
	return json_string_value(json_object_get(o, key)) ?: "";
}

char *dh_console_until(struct dh *h, const char *ref, const char *text, int ms)
{
	char path[128], *body = NULL;

	snprintf(path, sizeof(path), "/v1/instances/%s/console", ref);
	for (int t = 0; t < ms; t += 100) {
		const char *at;

		free(body);
		body = NULL;
		at = dh_text(h, h->admin, path, &body) == 200 ? strstr(body, text) : NULL;
		if (at && strchr(at, '\n'))
			return body;
		usleep(100000);
	}
	return body ?: strdup("");
}

void dh_console_send(struct dh *h, const char *ref, const char *text)
{
	char path[128];
	struct httpc_request req = {.method = "GET", .path = path, .token = h->admin};
	struct httpc_response resp = {0};
	struct httpc_conn *conn = NULL;
	struct error err = {0};

	snprintf(path, sizeof(path), "/v1/instances/%s/console/attach", ref);
	cr_assert_eq(httpc_upgrade(h->sock, &req, "bunshin-console", &conn, &resp, &err), 0, "%s",
		     err.msg);
	cr_assert_not_null(conn, "attaching to %s: HTTP %d: %s", ref, resp.status,
			   resp.body ? resp.body : "");
	cr_assert_eq(httpc_conn_write(conn, text, strlen(text)), (ssize_t)strlen(text));
	httpc_conn_close(conn);
	httpc_response_free(&resp);
}

const char *dh_test_field(const char *console, const char *name, const char *key)
{
	static char val[64];
	char pat[48];
	const char *line, *p;

	val[0] = 0;
	snprintf(pat, sizeof(pat), "BUNSHIN-TEST name=%s ", name);
	line = strstr(console, pat);
	snprintf(pat, sizeof(pat), " %s=", key);
	if (!line || !(p = strstr(line, pat)) || (strchr(line, '\n') && strchr(line, '\n') < p))
		return val;
	p += strlen(pat);
	snprintf(val, sizeof(val), "%.*s", (int)strcspn(p, " \r\n"), p);
	return val;
}

static pid_t dh_ppid(const char *pid);

/*
 * The namespace tests start in: init's, or where /proc/1 is not ours to
 * read (a container), the test runner's (the parent of the test process,
 * whose child this is): a test that made its own has left that one.
 */
static int dh_start_netns(struct stat *st)
{
	char pid[24], path[64];

	if (!stat("/proc/1/ns/net", st))
		return 0;
	snprintf(pid, sizeof(pid), "%d", (int)getppid());
	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)dh_ppid(pid));
	return stat(path, st);
}

/*
 * bunshind makes bridges and taps (bn-*, bt-*) and removes strays: a
 * daemon started from the host's network namespace gets a fresh one of its
 * own, so that tests never touch the host's links or each other's. A test
 * already in a namespace of its own (test_net) keeps it, and a TCP
 * listener stays where the test can reach it (it starts no instance).
 */
static void dh_private_netns(const char *const *extra)
{
	struct stat self, init;

	for (; extra && *extra; extra++) {
		if (!strncmp(*extra, "tcp:", 4))
			return;
	}
	if (stat("/proc/self/ns/net", &self) || dh_start_netns(&init) || self.st_ino != init.st_ino)
		return;
	if (unshare(CLONE_NEWNET))
		_exit(126);
}

static void dh_spawn(struct dh *h, const char *const *extra)
{
	const char *argv[32];
	char listen[200];
	int n = 0, fd;

	snprintf(listen, sizeof(listen), "unix:%s/api.sock", h->dir);
	argv[n++] = dh_env("BUNSHIND");
	argv[n++] = "--state-dir";
	argv[n++] = h->dir;
	argv[n++] = "--listen";
	argv[n++] = listen;
	argv[n++] = "--vmm";
	argv[n++] = dh_env("BUNSHIN_VMM");
	argv[n++] = "--guest";
	argv[n++] = dh_env("BUNSHIN_GUEST_ELF");
	argv[n++] = "--stop-timeout";
	argv[n++] = "1";
	/* instance ids start at 1 in every state directory: cgroups apart */
	argv[n++] = "--cgroup-parent";
	argv[n++] = h->cgparent;
	/* extra itself stays: dh_private_netns() looks for a TCP listener in it */
	for (const char *const *e = extra; e && *e && n < 31; e++)
		argv[n++] = *e;
	argv[n] = NULL;
	h->pid = fork();
	cr_assert_geq(h->pid, 0);
	if (!h->pid) {
		dh_private_netns(extra);
		fd = open(h->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		dup2(fd, 1);
		dup2(fd, 2);
		execv(argv[0], (char **)argv);
		_exit(127);
	}
	/* Ready when the API answers. */
	for (int i = 0; i < 200; i++) {
		if (dh_req(h, "x", "GET", "/v1/host", NULL, NULL) == 401)
			return;
		cr_assert(dh_alive(h->pid), "bunshind exited at start; see %s", h->log);
		usleep(50000);
	}
	cr_assert_fail("bunshind did not answer within 10 s; see %s", h->log);
}

void dh_start(struct dh *h, const char *const *extra)
{
	FILE *f;
	char path[200];

	memset(h, 0, sizeof(*h));
	snprintf(h->dir, sizeof(h->dir), "/tmp/bunshind-test-XXXXXX");
	cr_assert_not_null(mkdtemp(h->dir));
	snprintf(h->sock, sizeof(h->sock), "unix:%s/api.sock", h->dir);
	snprintf(h->log, sizeof(h->log), "%s.log", h->dir);
	snprintf(h->cgparent, sizeof(h->cgparent), "%s", strrchr(h->dir, '/') + 1);
	dh_spawn(h, extra);
	snprintf(path, sizeof(path), "%s/admin.token", h->dir);
	f = fopen(path, "r");
	cr_assert_not_null(f, "no admin token at %s", path);
	cr_assert(fgets(h->admin, sizeof(h->admin), f));
	fclose(f);
	h->admin[strcspn(h->admin, "\n")] = 0;
}

void dh_restart(struct dh *h, const char *const *extra)
{
	dh_spawn(h, extra);
}

bool dh_alive(pid_t pid)
{
	char path[64], state = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return false;
	/* A zombie is not alive. */
	if (fscanf(f, "%*d (%*[^)]) %c", &state) != 1)
		state = 0;
	fclose(f);
	return state && state != 'Z';
}

void dh_kill9(struct dh *h)
{
	kill(h->pid, SIGKILL);
	waitpid(h->pid, NULL, 0);
	h->pid = 0;
}

int dh_term(struct dh *h)
{
	int st = 0;

	kill(h->pid, SIGTERM);
	waitpid(h->pid, &st, 0);
	h->pid = 0;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* A VMM's clone spawner: a fork of it with its command line, named apart. */
static bool dh_is_spawner(const char *pid)
{
	char path[300], comm[32] = "";
	int fd;

	snprintf(path, sizeof(path), "/proc/%s/comm", pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return false;
	if (read(fd, comm, sizeof(comm) - 1) < 0)
		comm[0] = 0;
	close(fd);
	return !strcmp(comm, PROCNAME_VMM_SPAWNER "\n");
}

/*
 * Pids of the live processes whose argv[0] ends in prog and whose command
 * line names this state directory; VMMs (vmm) without their clone spawners
 * and the inner halves of jails (another PID namespace).
 */
static int dh_pids_of(struct dh *h, const char *prog, bool vmm, pid_t *pids, int max)
{
	size_t plen = strlen(prog);
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d)) && n < max) {
		char path[300], cmd[8192];
		size_t n0;
		ssize_t len;
		int fd, pid = atoi(e->d_name);

		if (pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
		fd = open(path, O_RDONLY);
		if (fd < 0)
			continue;
		len = read(fd, cmd, sizeof(cmd) - 1);
		close(fd);
		if (len <= 0)
			continue;
		cmd[len] = 0;
		n0 = strlen(cmd);
		for (ssize_t i = 0; i < len; i++)
			cmd[i] = cmd[i] ? cmd[i] : ' ';
		if (n0 < plen || strncmp(cmd + n0 - plen, prog, plen) || !strstr(cmd, h->dir) ||
		    !dh_alive(pid))
			continue;
		if (vmm && (dh_is_spawner(e->d_name) || dh_other_pidns(pid)))
			continue;
		pids[n++] = pid;
	}
	if (d)
		closedir(d);
	return n;
}

int dh_vmm_pids(struct dh *h, pid_t *pids, int max)
{
	/* argv[0] is the VMM (bunshind's own command line names it too, later). */
	return dh_pids_of(h, "bunshin-vmm", true, pids, max);
}

/* dnsmasq processes of this state directory: bunshind leaves them serving its VMs. */
static int dh_dnsmasq_pids(struct dh *h, pid_t *pids, int max)
{
	return dh_pids_of(h, "dnsmasq", false, pids, max);
}

/* A sanitizer build's reports land in bunshind's log: any is a failure. */
static void dh_check_log(const struct dh *h)
{
	static const char *const bad[] = {"AddressSanitizer", "LeakSanitizer", "runtime error:"};
	char line[1024];
	FILE *f = fopen(h->log, "r");

	while (f && fgets(line, sizeof(line), f)) {
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
			cr_expect(!strstr(line, bad[i]), "bunshind: %s", line);
	}
	if (f)
		fclose(f);
}

bool dh_other_pidns(pid_t pid)
{
	char path[64], mine[64] = "", its[64] = "";

	snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)pid);
	if (readlink("/proc/self/ns/pid", mine, sizeof(mine) - 1) <= 0 ||
	    readlink(path, its, sizeof(its) - 1) <= 0)
		return false;
	return strcmp(mine, its) != 0;
}

/* Field 4 of /proc/PID/stat. */
static pid_t dh_ppid(const char *pid)
{
	char path[300], buf[512], *p;
	int ppid = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%s/stat", pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %*c %d", &ppid) != 1)
		return 0;
	return ppid;
}

pid_t dh_jailed_vmm(pid_t launcher)
{
	for (int t = 0; t < 200; t++) {
		DIR *d = opendir("/proc");
		struct dirent *e;
		pid_t found = 0;

		while (d && !found && (e = readdir(d)))
			if (e->d_name[0] >= '1' && e->d_name[0] <= '9' &&
			    dh_ppid(e->d_name) == launcher)
				found = atoi(e->d_name);
		if (d)
			closedir(d);
		if (found)
			return found;
		usleep(10000);
	}
	return 0;
}

/* rmdir, for a cgroup whose last tasks may be leaving. */
static void dh_rmdir_cgroup(const char *path)
{
	for (int i = 0; i < 100 && rmdir(path) && errno == EBUSY; i++)
		usleep(10000);
}

/* Our cgroup in a hierarchy (ctrl "": v2), from /proc/self/cgroup. */
static bool dh_self_cgroup(const char *ctrl, char *out, size_t size)
{
	char line[1024];
	FILE *f = fopen("/proc/self/cgroup", "r");
	bool found = false;

	while (f && !found && fgets(line, sizeof(line), f)) {
		char *c = strchr(line, ':'), *p = c ? strchr(c + 1, ':') : NULL;

		if (!p)
			continue;
		*p++ = 0;
		p[strcspn(p, "\n")] = 0;
		c++;
		if ((!*ctrl && !*c) || (*ctrl && !strcmp(c, ctrl))) {
			snprintf(out, size, "%s", strcmp(p, "/") ? p : "");
			found = true;
		}
	}
	if (f)
		fclose(f);
	return found;
}

/* The instances' cgroups the killed launchers left, and their parent. */
static void dh_cgroup_cleanup(const struct dh *h)
{
	static const char *const hiers[][2] = {{"/sys/fs/cgroup", ""},
					       {"/sys/fs/cgroup/unified", ""},
					       {"/sys/fs/cgroup/cpu", "cpu"},
					       {"/sys/fs/cgroup/memory", "memory"},
					       {"/sys/fs/cgroup/pids", "pids"}};
	char self[1024], base[1600], path[1900];

	for (size_t i = 0; i < sizeof(hiers) / sizeof(hiers[0]); i++) {
		struct dirent *e;
		DIR *d;

		if (!dh_self_cgroup(hiers[i][1], self, sizeof(self)))
			continue;
		snprintf(base, sizeof(base), "%s%s/%s", hiers[i][0], self, h->cgparent);
		d = opendir(base);
		while (d && (e = readdir(d))) {
			if (strncmp(e->d_name, "instance-", 9))
				continue;
			snprintf(path, sizeof(path), "%s/%s", base, e->d_name);
			dh_rmdir_cgroup(path);
		}
		if (d)
			closedir(d);
		dh_rmdir_cgroup(base);
	}
}

void dh_cleanup(struct dh *h)
{
	pid_t pids[256];
	int n;
	char cmd[300];

	if (h->pid)
		dh_term(h);
	dh_check_log(h);
	/* Until none is left: a VMM may still be on its way from fork to exec. */
	for (int round = 0; round < 20 && (n = dh_vmm_pids(h, pids, 256)); round++) {
		for (int i = 0; i < n; i++)
			kill(pids[i], SIGKILL);
		usleep(50000);
	}
	for (int round = 0; round < 20 && (n = dh_dnsmasq_pids(h, pids, 256)); round++) {
		for (int i = 0; i < n; i++)
			kill(pids[i], SIGKILL);
		usleep(50000);
	}
	dh_cgroup_cleanup(h);
	snprintf(cmd, sizeof(cmd), "rm -rf %s %s", h->dir, h->log);
	if (system(cmd))
		fprintf(stderr, "cannot remove %s\n", h->dir);
}

int dh_req(struct dh *h, const char *token, const char *method, const char *path, const char *body,
	   json_t **out)
{
	struct httpc_request req = {
		.method = method, .path = path, .token = token, .body = body, .timeout_ms = 60000};
	struct httpc_response resp;
	struct error err = {0};
	int status;

	if (out)
		*out = NULL;
	if (httpc_do(h->sock, &req, &resp, &err))
		return -1;
	status = resp.status;
	if (out && resp.len)
		*out = json_loads(resp.body, 0, NULL);
	httpc_response_free(&resp);
	return status;
}

int dh_text(struct dh *h, const char *token, const char *path, char **body)
{
	struct httpc_request req = {.method = "GET", .path = path, .token = token};
	struct httpc_response resp;
	struct error err = {0};

	*body = NULL;
	if (httpc_do(h->sock, &req, &resp, &err))
		return -1;
	*body = resp.body;
	return resp.status;
}

const char *dh_code(const json_t *out)
{
	const char *c = json_string_value(json_object_get(json_object_get(out, "error"), "code"));

	return c ? c : "";
}

void dh_tenant_user(struct dh *h, const char *tenant, const char *user, const char *role,
		    char *token, size_t size)
{
	char body[256];
	json_t *out;

	snprintf(body, sizeof(body), "{\"name\":\"%s\"}", tenant);
	cr_assert_eq(dh_req(h, h->admin, "POST", "/v1/tenants", body, NULL), 201);
	snprintf(body, sizeof(body), "{\"name\":\"%s\",\"tenant\":\"%s\",\"role\":\"%s\"}", user,
		 tenant, role);
	cr_assert_eq(dh_req(h, h->admin, "POST", "/v1/users", body, NULL), 201);
	snprintf(body, sizeof(body), "{\"user\":\"%s\"}", user);
	cr_assert_eq(dh_req(h, h->admin, "POST", "/v1/tokens", body, &out), 201);
	snprintf(token, size, "%s", json_string_value(json_object_get(out, "token")));
	json_decref(out);
}

const char *dh_wait_state(struct dh *h, const char *token, const char *ref, const char *want,
			  int ms)
{
	static char state[32];
	char path[128];

	snprintf(path, sizeof(path), "/v1/instances/%s", ref);
	for (int t = 0;; t += 50) {
		json_t *out;

		state[0] = 0;
		if (dh_req(h, token, "GET", path, NULL, &out) == 200)
			snprintf(state, sizeof(state), "%s",
				 json_string_value(json_object_get(out, "state")));
		json_decref(out);
		if (!strcmp(state, want) || t >= ms)
			return state;
		usleep(50000);
	}
}

int64_t dh_instance_pid(struct dh *h, const char *token, const char *ref)
{
	char path[128];
	json_t *out;
	int64_t pid;

	snprintf(path, sizeof(path), "/v1/instances/%s", ref);
	cr_assert_eq(dh_req(h, token, "GET", path, NULL, &out), 200);
	pid = json_integer_value(json_object_get(out, "pid"));
	json_decref(out);
	return pid;
}

/* ---- the disk guest (test=virtio-blk blk_wait=1 blk_probe=1) ---- */

int dh_count_lines(const char *text, const char *needle)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, needle)) && strchr(p, '\n'); p++)
		n++;
	return n;
}

char *dh_wait_lines(struct dh *h, const char *ref, const char *needle, int n)
{
	char *log = NULL;

	for (int t = 0; t < 60000; t += 100) {
		free(log);
		log = dh_console_until(h, ref, needle, 100);
		if (dh_count_lines(log, needle) >= n)
			break;
		usleep(100000);
	}
	cr_assert_eq(dh_count_lines(log, needle), n, "%s: not %d times '%s':\n%s", ref, n, needle,
		     log);
	return log;
}

char *dh_blk_tell(struct dh *h, const char *ref, int readies, int seed, int passes)
{
	static const char pass[] = "BUNSHIN-TEST name=virtio-blk result=pass";
	char *log, line[32];
	const char *last;

	if (readies)
		free(dh_wait_lines(h, ref, "result=ready", readies));
	else
		cr_assert_str_eq(dh_wait_state(h, h->admin, ref, "running", 30000), "running");
	snprintf(line, sizeof(line), "seed=%d\n", seed);
	dh_console_send(h, ref, line);
	log = dh_wait_lines(h, ref, pass, passes);
	for (last = strstr(log, pass); strstr(last + 1, pass);)
		last = strstr(last + 1, pass);
	snprintf(line, sizeof(line), "%s", dh_test_field(last, "virtio-blk", "found"));
	free(log);
	/* it powers off after the test */
	cr_assert_str_eq(dh_wait_state(h, h->admin, ref, "stopped", 30000), "stopped");
	return strdup(line);
}

void dh_sha256_file(const char *path, char out[65])
{
	char cmd[4300];
	FILE *f;

	snprintf(cmd, sizeof(cmd), "sha256sum '%s'", path);
	f = popen(cmd, "r");
	cr_assert_not_null(f);
	cr_assert_eq(fscanf(f, "%64s", out), 1);
	pclose(f);
}

int dh_cli(struct dh *h, const char *const *args, char *out, size_t size)
{
	const char *argv[24] = {dh_env("BUNSHIN_CLI"), "--endpoint", h->sock, "--token", h->admin};
	int n = 5, p[2], st = 0;
	ssize_t len;
	pid_t pid;

	for (; *args && n < 23; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	cr_assert_eq(pipe(p), 0);
	pid = fork();
	if (!pid) {
		dup2(p[1], 1);
		dup2(p[1], 2);
		close(p[0]);
		execv(argv[0], (char **)argv);
		_exit(127);
	}
	close(p[1]);
	/* to the end: a reader gone early would kill the CLI with SIGPIPE */
	for (size_t got = 0;; got += (size_t)len) {
		len = read(p[0], out + got, size - 1 - got);
		if (len <= 0 || got + (size_t)len == size - 1) {
			out[got + (len > 0 ? (size_t)len : 0)] = 0;
			break;
		}
	}
	while (read(p[0], (char[256]){0}, 256) > 0)
		;
	close(p[0]);
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void dh_start_work(struct dh *h, const char *const *extra, char *work, size_t size)
{
	dh_start(h, extra);
	snprintf(work, size, "%s.work", h->dir);
	cr_assert_eq(mkdir(work, 0700), 0);
}

void dh_cleanup_work(struct dh *h, const char *work)
{
	char cmd[300];

	dh_cleanup(h);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", work);
	cr_expect_eq(system(cmd), 0);
}

int dh_image_files(struct dh *h, const char *part)
{
	char path[300];
	struct dirent *e;
	int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/images", h->dir);
	d = opendir(path);
	cr_assert_not_null(d);
	while ((e = readdir(d)))
		n += strstr(e->d_name, part) != NULL;
	closedir(d);
	return n;
}
