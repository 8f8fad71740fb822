// SPDX-License-Identifier: MIT
/*
 * The interactive console end to end: bunshin console NAME (stdin a pipe)
 * through bunshind's GET .../console/attach (101, then raw bytes) to the
 * jailed VMM's console socket and the test guest (test=serial-echo), which
 * echoes each line it gets. Who may attach, when, how many at once, and
 * that the attach ends with the instance.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "../../src/common/httpc.h"
#include "dharness.h"

static struct dh h;

static void setup(void)
{
	dh_need_kvm();
	dh_start(&h, (const char *const[]){"--stop-timeout", "1", NULL});
}

static void teardown(void)
{
	dh_cleanup(&h);
}

TestSuite(console, .init = setup, .fini = teardown, .timeout = 300);

/* ---- bunshin console, driven through pipes ---- */

struct cli_proc {
	pid_t pid;
	int in, out, err;
	char got[65536];
	size_t len;
};

static void cli_spawn(struct cli_proc *p, const char *token, const char *const *args)
{
	const char *argv[16] = {getenv("BUNSHIN_CLI"), "--endpoint", h.sock, "--token", token};
	int in[2], out[2], err[2], n = 5;

	for (; *args && n < 15; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	cr_assert(!pipe(in) && !pipe(out) && !pipe(err));
	p->len = 0;
	p->got[0] = 0;
	p->pid = fork();
	cr_assert_geq(p->pid, 0);
	if (!p->pid) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(err[1], 2);
		close_range(3, ~0U, 0);
		execv(argv[0], (char **)argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	close(err[1]);
	p->in = in[1];
	p->out = out[0];
	p->err = err[0];
}

static bool cli_read_until(struct cli_proc *p, const char *needle, int ms)
{
	for (int t = 0; !strstr(p->got, needle) && t < ms; t += 20) {
		struct pollfd pfd = {.fd = p->out, .events = POLLIN};
		ssize_t n;

		if (poll(&pfd, 1, 20) <= 0)
			continue;
		n = read(p->out, p->got + p->len, sizeof(p->got) - 1 - p->len);
		if (n <= 0)
			break;
		p->len += (size_t)n;
		p->got[p->len] = 0;
	}
	return strstr(p->got, needle) != NULL;
}

/* Its exit status, waiting up to ms (then killed: -1); its stderr into err. */
static int cli_finish(struct cli_proc *p, int ms, char *err, size_t size)
{
	int st = 0;
	ssize_t n;

	if (p->in >= 0)
		close(p->in);
	p->in = -1;
	for (int t = 0; waitpid(p->pid, &st, WNOHANG) == 0; t += 20) {
		if (t >= ms) {
			kill(p->pid, SIGKILL);
			waitpid(p->pid, &st, 0);
			st = -1;
			break;
		}
		/* keep its output flowing so a full pipe cannot hold it */
		cli_read_until(p, "\x01never", 20);
		usleep(20000); /* its stdout may be at its end already: then no wait above */
	}
	n = read(p->err, err, size - 1);
	err[n > 0 ? n : 0] = 0;
	close(p->out);
	close(p->err);
	return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---- instances ---- */

static void create_running(const char *token, const char *name)
{
	char body[256];

	snprintf(body, sizeof(body),
		 "{\"name\":\"%s\",\"flavor\":\"tiny\",\"image\":\"test-guest\"}", name);
	cr_assert_eq(dh_req(&h, token, "POST", "/v1/instances", body, NULL), 201);
	if (strcmp(dh_wait_state(&h, token, name, "running", 30000), "running")) {
		char path[128];
		json_t *out = NULL;

		snprintf(path, sizeof(path), "/v1/instances/%s", name);
		dh_req(&h, token, "GET", path, NULL, &out);
		cr_assert_fail("%s is %s: %s", name,
			       json_string_value(json_object_get(out, "state")),
			       json_string_value(json_object_get(out, "error")));
	}
}

static bool console_log_has(const char *name, const char *text, int ms)
{
	char path[128];

	snprintf(path, sizeof(path), "/v1/instances/%s/console", name);
	for (int t = 0; t < ms; t += 100) {
		char *body = NULL;
		bool found = dh_text(&h, h.admin, path, &body) == 200 && strstr(body, text);

		free(body);
		if (found)
			return true;
		usleep(100000);
	}
	return false;
}

static void ready(const char *name)
{
	create_running(h.admin, name);
	cr_assert(console_log_has(name, "name=serial-echo result=ready", 60000));
}

static int action(const char *name, const char *what)
{
	char path[128], body[64];

	snprintf(path, sizeof(path), "/v1/instances/%s/actions", name);
	snprintf(body, sizeof(body), "{\"action\":\"%s\"}", what);
	return dh_req(&h, h.admin, "POST", path, body, NULL);
}

/* ---- the tests ---- */

Test(console, typed_input_is_echoed_and_logged)
{
	struct cli_proc p;
	char err[4096];
	json_t *ev;
	char *dump;

	ready("c1");
	cli_spawn(&p, h.admin, (const char *const[]){"console", "c1", NULL});
	cr_assert_eq(write(p.in, "hello console\n", 14), 14);
	cr_assert(cli_read_until(&p, "ECHO: hello console", 20000), "got: %s", p.got);
	/* stdin ends: a short drain, then exit 0 */
	{
		int st_ = cli_finish(&p, 10000, err, sizeof(err));
		cr_assert_eq(st_, 0, "status %d stderr: %s out: %s", st_, err, p.got);
	}
	cr_assert(console_log_has("c1", "ECHO: hello console", 5000));
	/* the attach is on the record */
	cr_assert_eq(dh_req(&h, h.admin, "GET", "/v1/instances/c1/events", NULL, &ev), 200);
	dump = json_dumps(ev, JSON_COMPACT);
	cr_assert(dump && strstr(dump, "console/attach") && strstr(dump, "101"), "%s", dump);
	free(dump);
	json_decref(ev);

	/* the same through server console --attach */
	cli_spawn(&p, h.admin, (const char *const[]){"server", "console", "c1", "--attach", NULL});
	cr_assert_eq(write(p.in, "second way\n", 11), 11);
	cr_assert(cli_read_until(&p, "ECHO: second way", 20000), "got: %s", p.got);
	{
		int st_ = cli_finish(&p, 10000, err, sizeof(err));
		cr_assert_eq(st_, 0, "status %d stderr: %s out: %s", st_, err, p.got);
	}
}

Test(console, who_may_attach)
{
	char viewer[128], other[128], member[128], err[4096], *text = NULL;
	struct cli_proc p;
	json_t *out;

	dh_tenant_user(&h, "team", "alice", "member", member, sizeof(member));
	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/users",
			    "{\"name\":\"vic\",\"tenant\":\"team\",\"role\":\"viewer\"}", NULL),
		     201);
	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/tokens", "{\"user\":\"vic\"}", &out), 201);
	snprintf(viewer, sizeof(viewer), "%s", json_string_value(json_object_get(out, "token")));
	json_decref(out);
	dh_tenant_user(&h, "rivals", "mallory", "admin", other, sizeof(other));
	create_running(member, "t1");

	/* a viewer may read the log, not type: 403, exit 4 */
	cr_assert_eq(dh_text(&h, viewer, "/v1/instances/t1/console", &text), 200);
	free(text);
	cli_spawn(&p, viewer, (const char *const[]){"console", "t1", NULL});
	cr_assert_eq(cli_finish(&p, 10000, err, sizeof(err)), 4, "stderr: %s", err);
	cr_assert(strstr(err, "viewers") && strstr(err, "403"), "%s", err);
	/* another tenant does not see it at all: 404, exit 3 */
	cli_spawn(&p, other, (const char *const[]){"console", "t1", NULL});
	cr_assert_eq(cli_finish(&p, 10000, err, sizeof(err)), 3, "stderr: %s", err);
	/* a bad token: 401, exit 4 */
	cli_spawn(&p, "bsn_nope", (const char *const[]){"console", "t1", NULL});
	cr_assert_eq(cli_finish(&p, 10000, err, sizeof(err)), 4, "stderr: %s", err);
	/* no Upgrade header: 400, not a half-open console */
	cr_assert_eq(dh_req(&h, member, "GET", "/v1/instances/t1/console/attach", NULL, &out), 400);
	json_decref(out);
	/* the member may */
	cli_spawn(&p, member, (const char *const[]){"console", "t1", NULL});
	cr_assert_eq(write(p.in, "member typing\n", 14), 14);
	cr_assert(cli_read_until(&p, "ECHO: member typing", 30000), "got: %s", p.got);
	{
		int st_ = cli_finish(&p, 10000, err, sizeof(err));
		cr_assert_eq(st_, 0, "status %d stderr: %s out: %s", st_, err, p.got);
	}
}

Test(console, stopped_instance_is_409)
{
	struct cli_proc p;
	char err[4096];

	ready("s1");
	cr_assert_eq(action("s1", "stop"), 202);
	cr_assert_str_eq(dh_wait_state(&h, h.admin, "s1", "stopped", 30000), "stopped");
	cli_spawn(&p, h.admin, (const char *const[]){"console", "s1", NULL});
	cr_assert_eq(cli_finish(&p, 10000, err, sizeof(err)), 1, "stderr: %s", err);
	cr_assert(strstr(err, "409") && strstr(err, "stopped"), "%s", err);
	cli_spawn(&p, h.admin, (const char *const[]){"console", "nosuch", NULL});
	cr_assert_eq(cli_finish(&p, 10000, err, sizeof(err)), 3, "stderr: %s", err);
}

Test(console, one_client_at_a_time)
{
	struct cli_proc first, second;
	char err[4096];

	ready("o1");
	cli_spawn(&first, h.admin, (const char *const[]){"console", "o1", NULL});
	cr_assert_eq(write(first.in, "first\n", 6), 6);
	cr_assert(cli_read_until(&first, "ECHO: first", 20000), "got: %s", first.got);
	/* the second is refused; the first keeps the console */
	cli_spawn(&second, h.admin, (const char *const[]){"console", "o1", NULL});
	cr_assert_eq(cli_finish(&second, 10000, err, sizeof(err)), 1, "stderr: %s", err);
	cr_assert(strstr(err, "already has a client"), "%s", err);
	cr_assert_eq(write(first.in, "still mine\n", 11), 11);
	cr_assert(cli_read_until(&first, "ECHO: still mine", 20000), "got: %s", first.got);
	cr_assert_eq(cli_finish(&first, 10000, err, sizeof(err)), 0, "stderr: %s", err);
	/* once it left, the next one gets it */
	cli_spawn(&second, h.admin, (const char *const[]){"console", "o1", NULL});
	cr_assert_eq(write(second.in, "next\n", 5), 5);
	cr_assert(cli_read_until(&second, "ECHO: next", 20000), "got: %s", second.got);
	cr_assert_eq(cli_finish(&second, 10000, err, sizeof(err)), 0, "stderr: %s", err);
}

Test(console, attach_ends_when_the_instance_stops)
{
	struct cli_proc p;
	char err[4096];
	int st = 0;

	ready("e1");
	cli_spawn(&p, h.admin, (const char *const[]){"console", "e1", NULL});
	cr_assert_eq(write(p.in, "before stop\n", 12), 12);
	cr_assert(cli_read_until(&p, "ECHO: before stop", 20000), "got: %s", p.got);
	cr_assert_eq(action("e1", "stop"), 202);
	/* stdin still open: only the console's end can make it exit */
	for (int t = 0; t < 30000 && waitpid(p.pid, &st, WNOHANG) == 0; t += 50)
		usleep(50000);
	cr_assert(dh_alive(p.pid) == false, "still attached 30 s after the stop");
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
	close(p.in);
	close(p.out);
	close(p.err);
	cr_assert_str_eq(dh_wait_state(&h, h.admin, "e1", "stopped", 30000), "stopped");
	(void)err;
}

/* Types and never reads what comes back: the guest goes on, the log has it all. */
Test(console, a_client_that_never_reads_does_not_stall_the_guest)
{
	struct httpc_request req = {.method = "GET", .path = "/v1/instances/n1/console/attach"};
	struct httpc_response resp;
	struct httpc_conn *conn;
	struct error err = {0};
	char line[128], want[64];

	ready("n1");
	req.token = h.admin;
	cr_assert_eq(httpc_upgrade(h.sock, &req, "bunshin-console", &conn, &resp, &err), 0, "%s",
		     err.msg);
	cr_assert_not_null(conn, "HTTP %d: %s", resp.status, resp.body);
	memset(line, 'q', sizeof(line));
	line[sizeof(line) - 1] = '\n';
	/* under 4 KiB in all: see tests/integration/test_serial_log.c */
	for (int i = 0; i < 28; i++)
		cr_assert_eq(httpc_conn_write(conn, line, sizeof(line)), (ssize_t)sizeof(line));
	cr_assert_eq(httpc_conn_write(conn, "last one\n", 9), 9);
	cr_assert(console_log_has("n1", "ECHO: last one", 30000));
	/* and the instance still answers: its console log has every line */
	snprintf(want, sizeof(want), "ECHO: %.20s", line);
	cr_assert(console_log_has("n1", want, 1000));
	httpc_conn_close(conn);
	cr_assert_str_eq(dh_wait_state(&h, h.admin, "n1", "running", 1000), "running");
}

Test(console, attach_after_bunshind_restarts)
{
	struct cli_proc p;
	char err[4096];
	int st;

	ready("r1");
	dh_kill9(&h);
	dh_restart(&h, (const char *const[]){"--stop-timeout", "1", NULL});
	cr_assert_str_eq(dh_wait_state(&h, h.admin, "r1", "running", 30000), "running");
	/* the re-adopted VMM's console socket is still there */
	cli_spawn(&p, h.admin, (const char *const[]){"console", "r1", NULL});
	cr_assert_eq(write(p.in, "after restart\n", 14), 14);
	cr_assert(cli_read_until(&p, "ECHO: after restart", 20000), "got: %s", p.got);
	st = cli_finish(&p, 10000, err, sizeof(err));
	cr_assert_eq(st, 0, "status %d stderr: %s", st, err);
}

Test(console, bunshind_stopping_ends_the_attach_not_the_vm)
{
	struct cli_proc p;
	char err[4096];
	int st;

	ready("d1");
	cli_spawn(&p, h.admin, (const char *const[]){"console", "d1", NULL});
	cr_assert_eq(write(p.in, "attached\n", 9), 9);
	cr_assert(cli_read_until(&p, "ECHO: attached", 20000), "got: %s", p.got);
	/* SIGTERM: the relay sees it within its poll, the server stops, the client ends */
	cr_assert_eq(dh_term(&h), 0);
	st = cli_finish(&p, 10000, err, sizeof(err));
	cr_assert_eq(st, 0, "status %d stderr: %s", st, err);
	dh_restart(&h, (const char *const[]){"--stop-timeout", "1", NULL});
	cr_assert_str_eq(dh_wait_state(&h, h.admin, "d1", "running", 30000), "running");
}

/* ---- the command line alone (no VM needed) ---- */

static void setup_nokvm(void)
{
	dh_start(&h, NULL);
}

TestSuite(console_cli, .init = setup_nokvm, .fini = teardown, .timeout = 60);

static int cli_status(const char *const *args, char *err, size_t size)
{
	struct cli_proc p;

	cli_spawn(&p, h.admin, args);
	return cli_finish(&p, 10000, err, size);
}

Test(console_cli, bad_command_lines)
{
	char err[4096];
	struct cli_proc p;
	int st;

	cr_assert_eq(cli_status((const char *const[]){"console", NULL}, err, sizeof(err)), 2);
	cr_assert(strstr(err, "expected NAME|ID"), "%s", err);
	cr_assert_eq(cli_status((const char *const[]){"console", "a", "b", NULL}, err, sizeof(err)),
		     2);
	cr_assert(strstr(err, "unexpected argument 'b'"), "%s", err);
	cr_assert_eq(cli_status((const char *const[]){"console", "a", "--follow", NULL}, err,
				sizeof(err)),
		     2);
	cr_assert(strstr(err, "unknown option --follow"), "%s", err);
	cr_assert_eq(cli_status((const char *const[]){"console", "a", "--cacert", NULL}, err,
				sizeof(err)),
		     2);
	cr_assert(strstr(err, "--cacert needs a value"), "%s", err);
	cr_assert_eq(cli_status((const char *const[]){"server", "console", "a", "--attach",
						      "--follow", NULL},
				err, sizeof(err)),
		     2);
	cr_assert(strstr(err, "not both"), "%s", err);
	/* a name nobody has: 404, exit 3, one line */
	cr_assert_eq(cli_status((const char *const[]){"console", "ghost", NULL}, err, sizeof(err)),
		     3);
	cr_assert_eq(strchr(err, '\n'), err + strlen(err) - 1, "%s", err);
	/* --help says how to leave */
	cli_spawn(&p, h.admin, (const char *const[]){"console", "--help", NULL});
	cr_assert(cli_read_until(&p, "Ctrl-]", 5000), "%s", p.got);
	st = cli_finish(&p, 5000, err, sizeof(err));
	cr_assert_eq(st, 0, "status %d: %s", st, err);
	cli_spawn(&p, h.admin, (const char *const[]){"--help", NULL});
	cr_assert(cli_read_until(&p, "console  NAME|ID", 5000), "%s", p.got);
	cli_finish(&p, 5000, err, sizeof(err));
	cli_spawn(&p, h.admin, (const char *const[]){"server", "console", "--help", NULL});
	cr_assert(cli_read_until(&p, "--attach", 5000), "%s", p.got);
	cli_finish(&p, 5000, err, sizeof(err));
}

Test(console_cli, not_a_console_endpoint)
{
	char err[4096];

	/* an unreachable endpoint: exit 5, one line */
	cr_assert_eq(cli_status((const char *const[]){"--endpoint", "unix:/nonexistent.sock",
						      "console", "x", NULL},
				err, sizeof(err)),
		     5);
	cr_assert(strstr(err, "/nonexistent.sock"), "%s", err);
	cr_assert_eq(
		cli_status((const char *const[]){"--endpoint", "ftp://x", "console", "x", NULL},
			   err, sizeof(err)),
		5);
	cr_assert(strstr(err, "expected unix:PATH"), "%s", err);
}

Test(console_cli, bash_completion_knows_console)
{
	char cmd[2048], dir[1024], got[4096];
	FILE *f;
	size_t n;

	snprintf(dir, sizeof(dir), "%s", getenv("BUNSHIN_CLI"));
	*strrchr(dir, '/') = 0;
	snprintf(cmd, sizeof(cmd),
		 "PATH='%s':$PATH bash -c 'source %s; COMP_WORDS=(bunshin con); COMP_CWORD=1; "
		 "_bunshin; echo \"${COMPREPLY[*]}\"; COMP_WORDS=(bunshin --ca); COMP_CWORD=1; "
		 "_bunshin; echo \"${COMPREPLY[*]}\"; COMP_WORDS=(bunshin server console x --); "
		 "COMP_CWORD=4; _bunshin; echo \"${COMPREPLY[*]}\"'",
		 dir, getenv("BUNSHIN_COMPLETION"));
	f = popen(cmd, "r");
	cr_assert_not_null(f);
	n = fread(got, 1, sizeof(got) - 1, f);
	got[n] = 0;
	cr_expect_eq(pclose(f), 0);
	cr_expect(strstr(got, "console\n"), "%s", got);
	cr_expect(strstr(got, "--cacert\n"), "%s", got);
	cr_expect(strstr(got, "--attach"), "%s", got);
}

/* ---- on a terminal: raw keys, Ctrl-] and the terminal put back ---- */

struct pty_cli {
	pid_t pid;
	int master;
	char got[65536];
	size_t len;
};

static void pty_spawn(struct pty_cli *p, const char *name)
{
	const char *argv[] = {getenv("BUNSHIN_CLI"),
			      "--endpoint",
			      h.sock,
			      "--token",
			      h.admin,
			      "console",
			      name,
			      NULL};

	p->len = 0;
	p->got[0] = 0;
	p->pid = forkpty(&p->master, NULL, NULL, NULL);
	cr_assert_geq(p->pid, 0);
	if (!p->pid) {
		execv(argv[0], (char **)argv);
		_exit(127);
	}
}

static bool pty_read_until(struct pty_cli *p, const char *needle, int ms)
{
	for (int t = 0; !strstr(p->got, needle) && t < ms; t += 20) {
		struct pollfd pfd = {.fd = p->master, .events = POLLIN};
		ssize_t n;

		if (poll(&pfd, 1, 20) <= 0)
			continue;
		n = read(p->master, p->got + p->len, sizeof(p->got) - 1 - p->len);
		if (n <= 0)
			break;
		p->len += (size_t)n;
		p->got[p->len] = 0;
	}
	return strstr(p->got, needle) != NULL;
}

/* The terminal's line discipline as the CLI left it: canonical with echo again? */
static bool pty_cooked(const struct pty_cli *p)
{
	struct termios t;

	return !tcgetattr(p->master, &t) && (t.c_lflag & ICANON) && (t.c_lflag & ECHO) &&
	       (t.c_lflag & ISIG);
}

static int pty_wait(struct pty_cli *p, int ms)
{
	int st = 0;

	for (int t = 0; waitpid(p->pid, &st, WNOHANG) == 0; t += 20) {
		if (t >= ms) {
			kill(p->pid, SIGKILL);
			waitpid(p->pid, &st, 0);
			return -1;
		}
		pty_read_until(p, "\x01never", 20);
		usleep(20000); /* the pty may be at its end already: then no wait above */
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

Test(console, terminal_raw_escape_and_restore)
{
	struct pty_cli p;
	int st;

	ready("p1");
	pty_spawn(&p, "p1");
	cr_assert(pty_read_until(&p, "Escape character is '^]'", 10000), "%s", p.got);
	cr_assert(!pty_cooked(&p), "the terminal is not raw while attached");
	/* raw: Enter is \r, Ctrl-C a byte for the guest, not a signal */
	cr_assert_eq(write(p.master, "typed\x03 on a tty\r", 16), 16);
	cr_assert(pty_read_until(&p, "ECHO: typed", 20000), "%s", p.got);
	cr_assert_eq(write(p.master, "\x1d", 1), 1);
	st = pty_wait(&p, 10000);
	cr_assert_eq(st, 0, "status %d: %s", st, p.got);
	cr_assert(pty_read_until(&p, "Console detached.", 2000), "%s", p.got);
	cr_assert(pty_cooked(&p), "the terminal was not put back");
	close(p.master);

	/* a signal on the way out puts it back too */
	pty_spawn(&p, "p1");
	cr_assert(pty_read_until(&p, "Escape character", 10000), "%s", p.got);
	cr_assert(!pty_cooked(&p));
	kill(p.pid, SIGTERM);
	st = pty_wait(&p, 10000);
	cr_assert_eq(st, 128 + SIGTERM, "status %d: %s", st, p.got);
	cr_assert(pty_cooked(&p), "the terminal was not put back after SIGTERM");
	close(p.master);
}
