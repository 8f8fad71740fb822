// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "../../common/log.h"
#include "../sandbox/seccomp.h"
#include "chardev.h"

#define CHARDEV_CTRL_A	 0x01
#define CHARDEV_STALL_MS 100	  /* longest a writer waits for a slow reader */
#define CHARDEV_CHUNK	 PIPE_BUF /* a pipe that polls writable takes this much at once */

enum chardev_kind {
	CHARDEV_STDIO,
	CHARDEV_FILE,
	CHARDEV_UNIX,
};

struct chardev {
	enum chardev_kind kind;
	int in_fd;     /* stdio: 0, -1 after EOF */
	int out_fd;    /* stdio: 1; file: the file; unix: the log (log=FILE) or -1 */
	int listen_fd; /* unix */
	int client_fd; /* unix: the connected client or -1; guarded by out_lock */
	char *path;    /* unix: unlinked at close */

	pthread_mutex_t out_lock;
	bool out_pollable; /* false for regular files, where a write cannot stall */
	bool congested;	   /* the last write timed out: drop at once until it drains */
	uint64_t dropped;

	int stop_fd; /* eventfd that ends the input thread */
	pthread_t thread;
	bool thread_started;
	chardev_sink_fn sink;
	void *sink_ctx;

	chardev_quit_fn quit;
	void *quit_ctx;
	bool escape; /* the previous input byte was Ctrl-A */
};

/*
 * The terminal is process-wide, so its saved state is too: only one stdio
 * chardev may exist, and the atexit hook finds the state here.
 */
static bool stdio_taken;
static bool tty_raw;
static struct termios tty_saved;

static void tty_restore(void)
{
	if (tty_raw) {
		tcsetattr(STDIN_FILENO, TCSANOW, &tty_saved);
		tty_raw = false;
	}
}

/*
 * Raw input so every key (Ctrl-C included) reaches the guest; output
 * flags are left alone so the host terminal keeps translating newlines.
 */
static void tty_make_raw(void)
{
	static bool hooked;
	struct termios t;

	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &tty_saved) < 0)
		return;
	t = tty_saved;
	t.c_iflag &= ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
	t.c_lflag &= ~(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
	t.c_cflag &= ~(CSIZE | PARENB);
	t.c_cflag |= CS8;
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	if (tcsetattr(STDIN_FILENO, TCSANOW, &t) < 0)
		return;
	tty_raw = true;
	if (!hooked && atexit(tty_restore) == 0)
		hooked = true;
}

static void ignore_default_sigpipe(void)
{
	struct sigaction sa;

	if (sigaction(SIGPIPE, NULL, &sa) == 0 && !(sa.sa_flags & SA_SIGINFO) &&
	    sa.sa_handler == SIG_DFL)
		signal(SIGPIPE, SIG_IGN);
}

/* Regular files never stall a writer (and always poll ready); pipes and terminals may. */
static bool fd_pollable(int fd)
{
	struct stat st;

	return !(fstat(fd, &st) == 0 && S_ISREG(st.st_mode));
}

static int chardev_open_stdio(struct chardev *c, struct error *err)
{
	if (stdio_taken)
		return error_set(err, EBUSY, "stdio is already used by another console");
	stdio_taken = true;
	c->in_fd = STDIN_FILENO;
	c->out_fd = STDOUT_FILENO;
	c->out_pollable = fd_pollable(STDOUT_FILENO);
	/*
	 * Whoever reads our stdout may go away (a pipe to a closed pager); that
	 * must cost console output, not the VM, so a default SIGPIPE is ignored.
	 */
	ignore_default_sigpipe();
	tty_make_raw();
	return 0;
}

static int chardev_open_file(struct chardev *c, const char *path, struct error *err)
{
	if (!*path)
		return error_set(err, EINVAL, "file: needs a path (file:PATH)");
	/* O_NONBLOCK: a FIFO with no reader fails now instead of hanging start-up. */
	c->out_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0644);
	if (c->out_fd < 0)
		return error_set(err, errno, "cannot open %s: %s", path, strerror(errno));
	c->out_pollable = fd_pollable(c->out_fd); /* the path may name a FIFO */
	return 0;
}

/*
 * A socket file left by a VMM that died is removed; a live one (someone
 * accepts connections) or anything that is not a socket is not ours.
 */
static int unix_clear_stale(const char *path, const struct sockaddr_un *sa, struct error *err)
{
	struct stat st;
	int fd, ret;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : error_set(err, errno, "%s: %s", path, strerror(errno));
	if (!S_ISSOCK(st.st_mode))
		return error_set(err, EEXIST, "%s exists and is not a socket", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return error_set(err, errno, "socket: %s", strerror(errno));
	ret = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	close(fd);
	if (ret == 0)
		return error_set(err, EADDRINUSE, "%s is in use by another process", path);
	if (unlink(path) < 0 && errno != ENOENT)
		return error_set(err, errno, "cannot remove stale %s: %s", path, strerror(errno));
	return 0;
}

static int chardev_open_unix(struct chardev *c, const char *path, struct error *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char *path_copy;
	int ret;

	if (!*path)
		return error_set(err, EINVAL, "unix: needs a path (unix:PATH)");
	if (strlen(path) >= sizeof(sa.sun_path))
		return error_set(err, ENAMETOOLONG, "socket path %s is longer than %zu bytes", path,
				 sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	ret = unix_clear_stale(path, &sa, err);
	if (ret)
		return ret;
	c->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->listen_fd < 0)
		return error_set(err, errno, "socket: %s", strerror(errno));
	path_copy = strdup(path);
	if (!path_copy)
		return error_set(err, ENOMEM, "out of memory");
	if (bind(c->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		free(path_copy);
		return error_set(err, errno, "cannot bind %s: %s", path, strerror(errno));
	}
	c->path = path_copy; /* from here on, close removes the socket file */
	if (listen(c->listen_fd, 1) < 0)
		return error_set(err, errno, "cannot listen on %s: %s", path, strerror(errno));
	return 0;
}

/*
 * unix:PATH,log=FILE: the socket, and a log that gets every byte whether a
 * client is there or not (what bunshind's console log and attach share).
 */
static int chardev_open_unix_log(struct chardev *c, const char *spec, struct error *err)
{
	const char *log = strstr(spec, ",log=");
	char *path;
	int ret;

	if (!log)
		return chardev_open_unix(c, spec, err);
	path = strndup(spec, (size_t)(log - spec));
	if (!path)
		return error_set(err, ENOMEM, "out of memory");
	ret = chardev_open_unix(c, path, err);
	free(path);
	if (ret)
		return ret;
	if (!log[5])
		return error_set(err, EINVAL, "log= needs a path (unix:PATH,log=FILE)");
	return chardev_open_file(c, log + 5, err);
}

static int chardev_open_spec(struct chardev *c, const char *spec, struct error *err)
{
	if (strcmp(spec, "stdio") == 0) {
		int ret = chardev_open_stdio(c, err);

		/* Only a stdio chardev that got the terminal gives it back at close. */
		if (ret == 0)
			c->kind = CHARDEV_STDIO;
		return ret;
	}
	if (strncmp(spec, "file:", 5) == 0) {
		c->kind = CHARDEV_FILE;
		return chardev_open_file(c, spec + 5, err);
	}
	if (strncmp(spec, "unix:", 5) == 0) {
		c->kind = CHARDEV_UNIX;
		return chardev_open_unix_log(c, spec + 5, err);
	}
	return error_set(err, EINVAL,
			 "unknown backend '%s' (expected stdio, file:PATH or unix:PATH)", spec);
}

int chardev_open(const char *spec, struct chardev **out, struct error *err)
{
	struct chardev *c;
	int ret;

	c = calloc(1, sizeof(*c));
	if (!c)
		return error_set(err, ENOMEM, "out of memory");
	c->in_fd = c->out_fd = c->listen_fd = c->client_fd = -1;
	c->kind = CHARDEV_FILE; /* until parsed: nothing for close to give back */
	pthread_mutex_init(&c->out_lock, NULL);
	c->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (c->stop_fd < 0)
		ret = error_set(err, errno, "eventfd: %s", strerror(errno));
	else
		ret = chardev_open_spec(c, spec ? spec : "", err);
	if (ret) {
		chardev_close(c);
		return ret;
	}
	*out = c;
	return 0;
}

void chardev_set_quit_handler(struct chardev *c, chardev_quit_fn fn, void *ctx)
{
	c->quit = fn;
	c->quit_ctx = ctx;
}

uint64_t chardev_dropped(struct chardev *c)
{
	uint64_t n;

	pthread_mutex_lock(&c->out_lock);
	n = c->dropped;
	pthread_mutex_unlock(&c->out_lock);
	return n;
}

static void chardev_stop_input(struct chardev *c)
{
	uint64_t one = 1;

	if (!c->thread_started)
		return;
	if (write(c->stop_fd, &one, sizeof(one)) != sizeof(one))
		log_warn("chardev: cannot signal the input thread: %s", strerror(errno));
	pthread_join(c->thread, NULL);
	c->thread_started = false;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void chardev_close(struct chardev *c)
{
	if (!c)
		return;
	chardev_stop_input(c);
	if (c->kind == CHARDEV_STDIO) {
		tty_restore();
		stdio_taken = false;
	} else {
		close_fd(&c->out_fd);
	}
	close_fd(&c->client_fd);
	close_fd(&c->listen_fd);
	if (c->path)
		unlink(c->path);
	free(c->path);
	close_fd(&c->stop_fd);
	pthread_mutex_destroy(&c->out_lock);
	free(c);
}

/* Waits at most ms for fd to take data; false if it still cannot. */
static bool fd_writable(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	int n;

	do {
		n = poll(&p, 1, ms);
	} while (n < 0 && errno == EINTR);
	return n > 0 && !(p.revents & (POLLERR | POLLNVAL));
}

/*
 * stdout or a file: a pipe or terminal may be full, so wait for room, but
 * only briefly, and not at all while the reader is known to be stuck.
 */
static size_t write_fd_bounded(struct chardev *c, const uint8_t *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		size_t chunk = len - done < CHARDEV_CHUNK ? len - done : CHARDEV_CHUNK;
		ssize_t n;

		if (c->out_pollable &&
		    !fd_writable(c->out_fd, c->congested ? 0 : CHARDEV_STALL_MS)) {
			c->congested = true;
			break;
		}
		n = write(c->out_fd, buf + done, chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		c->congested = false;
		done += (size_t)n;
	}
	return done;
}

/*
 * The socket client: never wait; what does not fit now is dropped. With a
 * log, the log is the record and the client only a viewer: bytes no client
 * was there to see are not lost, only those a connected client missed.
 */
static size_t write_client(struct chardev *c, const uint8_t *buf, size_t len)
{
	size_t done = 0;

	if (c->out_fd >= 0 && c->client_fd < 0)
		return len;

	while (c->client_fd >= 0 && done < len) {
		ssize_t n = send(c->client_fd, buf + done, len - done, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	return done;
}

void chardev_write(struct chardev *c, const uint8_t *buf, size_t len)
{
	size_t done;

	if (!c || !len)
		return;
	pthread_mutex_lock(&c->out_lock);
	if (c->kind == CHARDEV_UNIX && c->out_fd >= 0)
		c->dropped += len - write_fd_bounded(c, buf, len); /* the log first */
	if (c->kind == CHARDEV_UNIX)
		done = write_client(c, buf, len);
	else
		done = write_fd_bounded(c, buf, len);
	c->dropped += len - done;
	pthread_mutex_unlock(&c->out_lock);
}

static void chardev_quit(struct chardev *c)
{
	if (c->quit) {
		c->quit(c->quit_ctx);
		return;
	}
	tty_restore();
	log_info("console: Ctrl-A x, exiting");
	exit(0);
}

/*
 * QEMU's escape: Ctrl-A x quits, Ctrl-A Ctrl-A is a literal Ctrl-A, and any
 * other byte after Ctrl-A goes through with the Ctrl-A before it. out needs
 * room for 2 * len bytes; returns how many it holds.
 */
static size_t stdio_unescape(struct chardev *c, const uint8_t *in, size_t len, uint8_t *out)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		uint8_t b = in[i];

		if (!c->escape) {
			if (b == CHARDEV_CTRL_A)
				c->escape = true;
			else
				out[n++] = b;
			continue;
		}
		c->escape = false;
		if (b == 'x' || b == 'X') {
			chardev_quit(c);
			continue;
		}
		out[n++] = CHARDEV_CTRL_A;
		if (b != CHARDEV_CTRL_A)
			out[n++] = b;
	}
	return n;
}

static void chardev_deliver(struct chardev *c, const uint8_t *buf, size_t len)
{
	uint8_t out[2 * 256];

	if (c->kind == CHARDEV_STDIO) {
		len = stdio_unescape(c, buf, len, out);
		buf = out;
	}
	if (len)
		c->sink(c->sink_ctx, buf, len);
}

static void chardev_drop_client(struct chardev *c)
{
	pthread_mutex_lock(&c->out_lock);
	close_fd(&c->client_fd);
	pthread_mutex_unlock(&c->out_lock);
}

/* Reads what is ready on fd; false at end of input or on an error. */
static bool chardev_pump(struct chardev *c, int fd)
{
	uint8_t buf[256];
	ssize_t n;

	n = read(fd, buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return true;
	if (n <= 0)
		return false;
	chardev_deliver(c, buf, (size_t)n);
	return true;
}

/* One client at a time: a second one is turned away rather than left hanging. */
static void chardev_accept(struct chardev *c)
{
	int fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return;
	pthread_mutex_lock(&c->out_lock);
	if (c->client_fd < 0) {
		c->client_fd = fd;
		fd = -1;
	}
	pthread_mutex_unlock(&c->out_lock);
	if (fd >= 0) {
		log_warn("console %s: already has a client, refusing another", c->path);
		close(fd);
	}
}

/* The fd input comes from right now, or -1 if none. Only this thread changes it. */
static int chardev_input_fd(const struct chardev *c)
{
	return c->kind == CHARDEV_UNIX ? c->client_fd : c->in_fd;
}

static void chardev_input_event(struct chardev *c, int fd)
{
	if (chardev_pump(c, fd))
		return;
	if (c->kind == CHARDEV_UNIX)
		chardev_drop_client(c);
	else
		c->in_fd = -1; /* stdin at EOF: keep running until stopped */
}

static void *chardev_input_main(void *arg)
{
	struct chardev *c = arg;

	pthread_setname_np(pthread_self(), "bunshin-con");
	/* Only what taking input needs (added when start-up is over, if it is not yet). */
	sandbox_seccomp_thread(SANDBOX_THREAD_CONSOLE);

	for (;;) {
		struct pollfd p[3] = {{.fd = c->stop_fd, .events = POLLIN}};
		int in = chardev_input_fd(c), n = 1, in_at = -1, listen_at = -1;

		if (in >= 0) {
			in_at = n;
			p[n++] = (struct pollfd){.fd = in, .events = POLLIN};
		}
		if (c->listen_fd >= 0) {
			listen_at = n;
			p[n++] = (struct pollfd){.fd = c->listen_fd, .events = POLLIN};
		}
		if (poll(p, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error("console: poll: %s", strerror(errno));
			break;
		}
		if (p[0].revents)
			break;
		/* A leaving client is noticed before a new one is turned away. */
		if (in_at > 0 && p[in_at].revents)
			chardev_input_event(c, in);
		if (listen_at > 0 && p[listen_at].revents)
			chardev_accept(c);
	}
	return NULL;
}

int chardev_start_input(struct chardev *c, chardev_sink_fn sink, void *ctx, struct error *err)
{
	int ret;

	if (c->kind == CHARDEV_FILE)
		return 0;
	if (c->thread_started)
		return error_set(err, EBUSY, "console input is already running");
	c->sink = sink;
	c->sink_ctx = ctx;
	ret = pthread_create(&c->thread, NULL, chardev_input_main, c);
	if (ret)
		return error_set(err, ret, "cannot start console input thread: %s", strerror(ret));
	c->thread_started = true;
	return 0;
}
