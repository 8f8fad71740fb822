// SPDX-License-Identifier: MIT
/*
 * bunshin console NAME (and server console NAME --attach): the interactive
 * serial console, over GET /v1/instances/ID/console/attach upgraded to a
 * raw byte stream. On a terminal, stdin goes raw (every key, Ctrl-C
 * included, is the guest's) and Ctrl-] leaves, as in telnet and virsh; the
 * terminal is put back on every way out, signals included. With stdin not
 * a terminal (a pipe, a script), stdin is sent as it is and, at its end,
 * what the guest still prints is shown until it has been quiet for
 * CONSOLE_DRAIN_MS.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "../common/httpc.h"
#include "../common/util.h"
#include "cli.h"

#define CONSOLE_ESCAPE	 0x1d /* Ctrl-] */
#define CONSOLE_DRAIN_MS 1000

static struct termios console_saved;
static volatile sig_atomic_t console_raw, console_signal;

static void console_restore(void)
{
	if (console_raw) {
		tcsetattr(STDIN_FILENO, TCSANOW, &console_saved);
		console_raw = 0;
	}
}

/* Only notes the signal: poll() returns EINTR and the loop leaves through the one exit. */
static void console_on_signal(int sig)
{
	console_signal = sig;
}

static void console_signals(void)
{
	struct sigaction sa = {.sa_handler = console_on_signal}; /* no SA_RESTART */
	const int sigs[] = {SIGTERM, SIGHUP, SIGQUIT, SIGINT};

	sigemptyset(&sa.sa_mask);
	/* On a raw terminal Ctrl-C is a byte for the guest; a SIGINT sent by kill still ends. */
	for (unsigned int i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* Input flags raw, output left alone, so the terminal still turns \n into \r\n. */
static void console_make_raw(void)
{
	struct termios t;

	if (tcgetattr(STDIN_FILENO, &console_saved))
		return;
	t = console_saved;
	t.c_iflag &= ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
	t.c_lflag &= ~(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
	t.c_cflag &= ~(CSIZE | PARENB);
	t.c_cflag |= CS8;
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	if (tcsetattr(STDIN_FILENO, TCSANOW, &t))
		return;
	console_raw = 1;
	atexit(console_restore);
}

enum console_end { CONSOLE_GOING, CONSOLE_ESCAPED, CONSOLE_CLOSED, CONSOLE_INPUT_DONE };

struct console {
	struct httpc_conn *conn;
	bool tty;
	bool stdin_open;
};

/* Keys to the guest; on a terminal, Ctrl-] ends the session instead. */
static enum console_end console_from_stdin(struct console *s)
{
	char buf[4096];
	ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
	char *esc;

	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? CONSOLE_GOING : CONSOLE_INPUT_DONE;
	if (n == 0)
		return CONSOLE_INPUT_DONE;
	esc = s->tty ? memchr(buf, CONSOLE_ESCAPE, (size_t)n) : NULL;
	if (httpc_conn_write_full(s->conn, buf, esc ? (size_t)(esc - buf) : (size_t)n))
		return CONSOLE_CLOSED;
	return esc ? CONSOLE_ESCAPED : CONSOLE_GOING;
}

static enum console_end console_from_server(struct console *s)
{
	char buf[4096];
	ssize_t n = httpc_conn_read(s->conn, buf, sizeof(buf));

	if (n < 0 && errno == EINTR)
		return CONSOLE_GOING;
	if (n <= 0 || write_full(STDOUT_FILENO, buf, (size_t)n))
		return CONSOLE_CLOSED;
	return CONSOLE_GOING;
}

/* One round: what is ready, moved; -1 timeout means none (stdin still open). */
static enum console_end console_step(struct console *s)
{
	struct pollfd p[2] = {{.fd = httpc_conn_fd(s->conn), .events = POLLIN},
			      {.fd = s->stdin_open ? STDIN_FILENO : -1, .events = POLLIN}};
	enum console_end e;
	int n;

	if (httpc_conn_pending(s->conn))
		return console_from_server(s);
	n = poll(p, 2, s->stdin_open ? -1 : CONSOLE_DRAIN_MS);
	if (n < 0)
		return console_signal || errno != EINTR ? CONSOLE_CLOSED : CONSOLE_GOING;
	if (n == 0)
		return CONSOLE_INPUT_DONE; /* stdin ended and the guest has been quiet since */
	if (p[0].revents) {
		e = console_from_server(s);
		if (e != CONSOLE_GOING)
			return e;
	}
	if (p[1].revents) {
		e = console_from_stdin(s);
		if (e == CONSOLE_INPUT_DONE) {
			s->stdin_open = false; /* now only drain */
			return CONSOLE_GOING;
		}
		return e;
	}
	return CONSOLE_GOING;
}

static int console_session(struct console *s, const char *name)
{
	enum console_end e = CONSOLE_GOING;

	if (s->tty) {
		/* raw first: what is typed once the line is read already goes as it is */
		console_make_raw();
		fprintf(stderr, "Connected to %s's console. Escape character is '^]'.\n", name);
	}
	while (e == CONSOLE_GOING && !console_signal)
		e = console_step(s);
	console_restore();
	if (console_signal) {
		fprintf(stderr, "\nbunshin: signal %d: console detached\n", (int)console_signal);
		return 128 + (int)console_signal;
	}
	if (s->tty)
		fprintf(stderr, "\n%s\n",
			e == CONSOLE_ESCAPED ? "Console detached."
					     : "Connection closed (the server stopped?).");
	return CLI_OK;
}

int cli_console_attach(struct cli *c)
{
	struct httpc_request req = {.method = "GET", .token = c->token};
	struct console s = {.stdin_open = true, .tty = isatty(STDIN_FILENO)};
	struct httpc_response resp;
	struct error err = {0};
	char path[512];
	int ret;

	cli_path(path, sizeof(path), "/v1/instances/", c->pos[0], "/console/attach");
	req.path = path;
	console_signals();
	ret = httpc_upgrade(c->endpoint, &req, "bunshin-console", &s.conn, &resp, &err);
	if (ret) {
		fprintf(stderr, "bunshin: %s: %s\n", c->endpoint, err.msg);
		return CLI_UNREACHABLE;
	}
	if (!s.conn) {
		ret = cli_http_error(resp.status, resp.body);
		httpc_response_free(&resp);
		return ret;
	}
	ret = console_session(&s, c->pos[0]);
	httpc_conn_close(s.conn);
	return ret;
}
