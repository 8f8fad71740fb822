// SPDX-License-Identifier: MIT
/*
 * bunshind over HTTPS (--tls-cert, --tls-key) and the CLI's https://
 * endpoints: a self-signed certificate for "localhost" made here with
 * openssl, trusted through --cacert, BUNSHIN_CACERT or the config file;
 * refused without it, with another CA, or for another host name; plain
 * HTTP to the TLS port fails cleanly; bad certificate files stop the
 * daemon at start. Each test runs in a network namespace of its own (its
 * loopback up), so the TCP listener is seen by nothing else.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dharness.h"

#define TLS_PORT "8443"

static struct dh h;
static char dir[64], cert[128], key[128], cert2[128], key2[128], https[64];
static char out[65536], err[8192];

/* Runs argv (NULL-ended), stdin from in (or /dev/null); stdout, stderr into out, err. */
static int run_in(const char *in, const char *const *argv, const char *const *env)
{
	int o[2], e[2], i[2], st = 0;
	ssize_t n;
	size_t olen = 0;
	pid_t pid;

	cr_assert(!pipe(o) && !pipe(e) && !pipe(i));
	pid = fork();
	cr_assert_geq(pid, 0);
	if (!pid) {
		dup2(i[0], 0);
		dup2(o[1], 1);
		dup2(e[1], 2);
		close_range(3, ~0U, 0);
		unsetenv("BUNSHIN_ENDPOINT");
		unsetenv("BUNSHIN_TOKEN");
		unsetenv("BUNSHIN_CACERT");
		unsetenv("XDG_CONFIG_HOME");
		setenv("HOME", "/nonexistent", 1);
		for (; env && *env; env += 2)
			setenv(env[0], env[1], 1);
		execv(argv[0], (char **)argv);
		_exit(127);
	}
	close(o[1]);
	close(e[1]);
	close(i[0]);
	if (in)
		cr_assert_eq(write(i[1], in, strlen(in)), (ssize_t)strlen(in));
	/* a console keeps stdin open until it saw its echo: the caller's input is all there is */
	if (!in || !strstr(in, "\n"))
		close(i[1]);
	for (;;) {
		n = read(o[0], out + olen, sizeof(out) - 1 - olen);
		if (n <= 0)
			break;
		olen += (size_t)n;
		out[olen] = 0;
		if (in && strstr(in, "\n") && strstr(out, "ECHO: ")) {
			close(i[1]);
			in = NULL;
		}
	}
	out[olen] = 0;
	if (in && strstr(in, "\n"))
		close(i[1]);
	n = read(e[0], err, sizeof(err) - 1);
	err[n > 0 ? n : 0] = 0;
	close(o[0]);
	close(e[0]);
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int cli(const char *in, const char *const *env, ...)
{
	const char *argv[24] = {getenv("BUNSHIN_CLI")};
	int n = 1;
	va_list ap;

	va_start(ap, env);
	while (n < 23 && (argv[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
	return run_in(in, argv, env);
}

static void sh(const char *cmd)
{
	cr_assert_eq(system(cmd), 0, "%s", cmd);
}

/* A self-signed certificate for host name (and nothing else), and its key. */
static void make_cert(const char *c, const char *k, const char *name)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd),
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
		 "-keyout %s -out %s -days 2 -subj /CN=%s -addext subjectAltName=DNS:%s "
		 ">/dev/null 2>&1",
		 k, c, name, name);
	sh(cmd);
}

static void setup(void)
{
	if (system("command -v openssl >/dev/null 2>&1"))
		cr_skip_test("openssl is not installed (scripts/install-deps.sh installs it)");
	/* our own network: the TCP listener below is nobody else's business */
	if (unshare(CLONE_NEWNET))
		cr_skip_test("cannot make a network namespace here (needs CAP_SYS_ADMIN)");
	sh("ip link set lo up");
	snprintf(dir, sizeof(dir), "/tmp/bunshin-tls-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
	snprintf(key, sizeof(key), "%s/key.pem", dir);
	snprintf(cert2, sizeof(cert2), "%s/other.pem", dir);
	snprintf(key2, sizeof(key2), "%s/other-key.pem", dir);
	make_cert(cert, key, "localhost");
	make_cert(cert2, key2, "elsewhere");
	snprintf(https, sizeof(https), "https://localhost:" TLS_PORT);
}

static void start_tls(void)
{
	dh_start(&h, (const char *const[]){"--listen", "tcp:127.0.0.1:" TLS_PORT, "--tls-cert",
					   cert, "--tls-key", key, NULL});
}

static void teardown(void)
{
	char cmd[128];

	if (h.pid)
		dh_cleanup(&h);
	if (dir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		cr_expect_eq(system(cmd), 0);
	}
}

TestSuite(tls, .init = setup, .fini = teardown, .timeout = 240);

Test(tls, cli_over_https_with_the_ca)
{
	char conf[160], cmd[512];

	start_tls();
	cr_assert_eq(cli(NULL, NULL, "--endpoint", https, "--token", h.admin, "--cacert", cert,
			 "flavor", "list", NULL),
		     0, "%s", err);
	cr_assert(strstr(out, "tiny"), "%s", out);
	cr_assert_eq(cli(NULL, (const char *const[]){"BUNSHIN_CACERT", cert, NULL}, "--endpoint",
			 https, "--token", h.admin, "--json", "flavor", "list", NULL),
		     0, "%s", err);
	/* from the config file */
	snprintf(conf, sizeof(conf), "%s/xdg/bunshin", dir);
	snprintf(cmd, sizeof(cmd),
		 "mkdir -p %s && printf 'endpoint = %s\\ncacert = %s\\n' > %s/config", conf, https,
		 cert, conf);
	sh(cmd);
	snprintf(conf, sizeof(conf), "%s/xdg", dir);
	cr_assert_eq(cli(NULL, (const char *const[]){"XDG_CONFIG_HOME", conf, NULL}, "--token",
			 h.admin, "host", "show", NULL),
		     0, "%s", err);
	/* the unix socket stays plain HTTP */
	cr_assert_eq(dh_req(&h, h.admin, "GET", "/v1/flavors", NULL, NULL), 200);
}

Test(tls, untrusted_or_misnamed_certificates_are_refused)
{
	start_tls();
	/* no CA file: the system's CAs do not know a self-signed certificate */
	cr_assert_eq(
		cli(NULL, NULL, "--endpoint", https, "--token", h.admin, "flavor", "list", NULL),
		5);
	cr_assert(strstr(err, "certificate") && strstr(err, "NOT trusted"), "%s", err);
	cr_assert_eq(strchr(err, '\n'), err + strlen(err) - 1, "one line: %s", err);
	/* another CA */
	cr_assert_eq(cli(NULL, NULL, "--endpoint", https, "--token", h.admin, "--cacert", cert2,
			 "flavor", "list", NULL),
		     5);
	cr_assert(strstr(err, "issuer is unknown"), "%s", err);
	/* the right CA, the wrong name: the certificate is localhost's, not 127.0.0.1's */
	cr_assert_eq(cli(NULL, NULL, "--endpoint", "https://127.0.0.1:" TLS_PORT, "--token",
			 h.admin, "--cacert", cert, "flavor", "list", NULL),
		     5);
	cr_assert(strstr(err, "does not match"), "%s", err);
	/* a CA file that is not there, or not PEM */
	cr_assert_eq(cli(NULL, NULL, "--endpoint", https, "--token", h.admin, "--cacert",
			 "/nonexistent.pem", "flavor", "list", NULL),
		     5);
	cr_assert(strstr(err, "/nonexistent.pem"), "%s", err);
	cr_assert_eq(cli(NULL, NULL, "--endpoint", https, "--token", h.admin, "--cacert",
			 "/etc/hostname", "flavor", "list", NULL),
		     5);
	cr_assert(strstr(err, "CA file"), "%s", err);
	/* the daemon is still there for those who do it right */
	cr_assert_eq(cli(NULL, NULL, "--endpoint", https, "--token", h.admin, "--cacert", cert,
			 "flavor", "list", NULL),
		     0, "%s", err);
}

Test(tls, plain_http_to_the_tls_port_fails_cleanly)
{
	start_tls();
	cr_assert_eq(cli(NULL, NULL, "--endpoint", "http://127.0.0.1:" TLS_PORT, "--token", h.admin,
			 "flavor", "list", NULL),
		     5);
	cr_assert(strstr(err, "https"), "%s", err);
	/* and https:// to a plain server */
	cr_assert_eq(cli(NULL, NULL, "--endpoint", "https://localhost:1", "--token", h.admin,
			 "--cacert", cert, "flavor", "list", NULL),
		     5);
	cr_assert(dh_alive(h.pid));
}

/* bunshind with these arguments must refuse to start, saying why. */
static void refused(const char *why, const char *c, const char *k)
{
	char state[128];
	const char *argv[12] = {getenv("BUNSHIND"), "--state-dir", state, "--listen",
				"tcp:127.0.0.1:" TLS_PORT};
	int n = 5;

	snprintf(state, sizeof(state), "%s/state", dir);
	if (c) {
		argv[n++] = "--tls-cert";
		argv[n++] = c;
	}
	if (k) {
		argv[n++] = "--tls-key";
		argv[n++] = k;
	}
	argv[n] = NULL;
	cr_assert_eq(run_in(NULL, argv, NULL), 1, "%s: %s", why, err);
	cr_assert(strstr(err, why), "wanted '%s' in: %s", why, err);
	cr_assert_eq(strchr(err, '\n'), err + strlen(err) - 1, "one line: %s", err);
}

Test(tls, bad_certificate_files_stop_the_start)
{
	refused("is not the key of", cert, key2);
	refused("/nonexistent.pem: No such file", "/nonexistent.pem", key);
	refused("not a PEM file", "/etc/hostname", key);
	refused("go together", cert, NULL);
	refused("go together", NULL, key);
}

Test(tls, plain_tcp_off_loopback_is_warned_about)
{
	char *log;

	dh_start(&h, (const char *const[]){"--listen", "tcp:0.0.0.0:" TLS_PORT, NULL});
	log = NULL;
	{
		FILE *f = fopen(h.log, "r");
		static char buf[16384];
		size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

		buf[n] = 0;
		if (f)
			fclose(f);
		log = buf;
	}
	cr_assert(strstr(log, "plain HTTP on an address other hosts may reach"), "%s", log);
	dh_cleanup(&h);
	h.pid = 0;
	dh_start(&h, (const char *const[]){"--listen", "tcp:127.0.0.1:" TLS_PORT, NULL});
	{
		FILE *f = fopen(h.log, "r");
		static char buf[16384];
		size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

		buf[n] = 0;
		if (f)
			fclose(f);
		cr_assert_null(strstr(buf, "plain HTTP"), "%s", buf);
	}
}

Test(tls, console_attach_over_https)
{
	start_tls();
	dh_need_kvm();
	cr_assert_eq(cli(NULL, NULL, "--endpoint", https, "--token", h.admin, "--cacert", cert,
			 "server", "create", "--flavor", "tiny", "--image", "test-guest", "--wait",
			 "s1", NULL),
		     0, "%s", err);
	for (int t = 0; t < 600; t++) {
		char *body = NULL;
		bool up = dh_text(&h, h.admin, "/v1/instances/s1/console", &body) == 200 &&
			  strstr(body, "result=ready");

		free(body);
		if (up)
			break;
		usleep(100000);
	}
	cr_assert_eq(cli("over tls\n", NULL, "--endpoint", https, "--token", h.admin, "--cacert",
			 cert, "console", "s1", NULL),
		     0, "%s", err);
	cr_assert(strstr(out, "ECHO: over tls"), "out: %s err: %s", out, err);
	/* the client's leaving ended its relay: the console is free for the next one */
	for (int i = 0; i < 2; i++) {
		int st = cli("again\n", NULL, "--endpoint", https, "--token", h.admin, "--cacert",
			     cert, "console", "s1", NULL);

		if (st == 1 && strstr(err, "already has a client") && i == 0) {
			usleep(500000); /* its relay polls every 200 ms */
			continue;
		}
		cr_assert_eq(st, 0, "%s", err);
		cr_assert(strstr(out, "ECHO: again"), "out: %s err: %s", out, err);
		break;
	}
}
