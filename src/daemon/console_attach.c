// SPDX-License-Identifier: MIT
/*
 * GET /v1/instances/ID/console/attach (Upgrade: bunshin-console): the
 * interactive console. After the 101, the connection carries raw bytes
 * both ways between the client and the VMM's console socket
 * (STATE/instances/ID/console.sock, made by --serial unix:...,log=...),
 * on a thread per attached client, until either side closes, the VMM
 * ends (its socket closes) or bunshind stops.
 *
 * One client per instance: a second attach gets 409 here rather than a
 * connection the VMM would close at once (its console takes one client,
 * and the one typing must not be cut off by someone else's attach).
 * Viewers may read the log (GET .../console) but not type: 403.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../common/log.h"
#include "api.h"
#include "supervisor.h"

#define CONSOLE_PROTOCOL "bunshin-console"
#define CONSOLE_POLL_MS	 200 /* how soon a relay sees bunshind stopping */
#define CONSOLE_MAX	 1024

/* The instances with a client attached: a handful, so a plain array. */
static pthread_mutex_t console_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t console_attached[CONSOLE_MAX];

static int console_claim(int64_t id)
{
	int free_at = -1;

	pthread_mutex_lock(&console_lock);
	for (int i = 0; i < CONSOLE_MAX; i++) {
		if (console_attached[i] == id) {
			pthread_mutex_unlock(&console_lock);
			return -EBUSY;
		}
		if (!console_attached[i] && free_at < 0)
			free_at = i;
	}
	if (free_at >= 0)
		console_attached[free_at] = id;
	pthread_mutex_unlock(&console_lock);
	return free_at >= 0 ? 0 : -ENOSPC;
}

static void console_release(int64_t id)
{
	pthread_mutex_lock(&console_lock);
	for (int i = 0; i < CONSOLE_MAX; i++) {
		if (console_attached[i] == id)
			console_attached[i] = 0;
	}
	pthread_mutex_unlock(&console_lock);
}

/* The VMM's console socket, reached without following anything the VMM made. */
static int console_connect_vmm(const struct daemon *d, int64_t id)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char dir[4096], path[4200], ep[64];
	int pfd, fd, ret = 0;

	supervisor_instance_dir(d, id, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/console.sock", dir);
	pfd = djail_sock_ep(path, ep, sizeof(ep));
	if (pfd < 0)
		return pfd;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", ep + strlen("unix:"));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
		ret = -errno;
	close(pfd);
	if (ret) {
		if (fd >= 0)
			close(fd);
		return ret;
	}
	return fd;
}

struct console_relay {
	int64_t id;
	int vmm;
};

/* Writes all of buf unless the peer is gone or bunshind stops; false then. */
static bool console_put(int fd, const char *buf, size_t len, const volatile bool *stop)
{
	while (len && !*stop) {
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return false;
		/* A client that does not read holds up only its own relay, never the VMM. */
		if (poll(&p, 1, CONSOLE_POLL_MS) < 0 && errno != EINTR)
			return false;
		if (p.revents & (POLLERR | POLLHUP))
			return false;
	}
	return !len;
}

/* Moves what is ready on from to to; false at the end of either. */
static bool console_pass(int from, int to, const volatile bool *stop)
{
	char buf[4096];
	ssize_t n = recv(from, buf, sizeof(buf), MSG_DONTWAIT);

	if (n < 0)
		return errno == EAGAIN || errno == EINTR;
	return n > 0 && console_put(to, buf, (size_t)n, stop);
}

static void console_run(void *arg, int client, int peer, const char *extra, size_t extra_len,
			const volatile bool *stop)
{
	struct console_relay *r = arg;
	bool up = console_put(r->vmm, extra, extra_len, stop);

	log_info("instance %lld: console attached", (long long)r->id);
	while (up && !*stop) {
		/* peer: the client's TCP end behind TLS, watched for its leaving only */
		struct pollfd p[3] = {{.fd = client, .events = POLLIN},
				      {.fd = r->vmm, .events = POLLIN},
				      {.fd = peer != client ? peer : -1, .events = POLLRDHUP}};

		if (poll(p, 3, CONSOLE_POLL_MS) < 0) {
			up = errno == EINTR;
			continue;
		}
		if (p[0].revents)
			up = console_pass(client, r->vmm, stop);
		if (up && p[1].revents)
			up = console_pass(r->vmm, client, stop);
		if (p[2].revents & (POLLRDHUP | POLLHUP | POLLERR))
			up = false;
	}
	log_info("instance %lld: console detached", (long long)r->id);
}

static void console_done(void *arg)
{
	struct console_relay *r = arg;

	close(r->vmm);
	console_release(r->id);
	free(r);
}

static const struct httpd_upgrade_ops console_upgrade_ops = {
	.run = console_run,
	.done = console_done,
};

/* Everything but the switch itself: false after answering. */
static bool console_may_attach(struct api_ctx *c, const json_t *inst)
{
	const char *up = httpd_header(c->req, "Upgrade");
	const char *state = sup_str(inst, "state");

	if (c->who.role == STORE_ROLE_VIEWER) {
		api_err(c, 403, "forbidden", NULL,
			"viewers may read the console log, not type on the console");
		return false;
	}
	if (!up || strcasecmp(up, CONSOLE_PROTOCOL)) {
		api_err(c, 400, "invalid_request", NULL,
			"attaching needs Connection: Upgrade and Upgrade: " CONSOLE_PROTOCOL);
		return false;
	}
	if (strcmp(state, ST_RUNNING) && strcmp(state, ST_PAUSED)) {
		api_err(c, 409, "conflict", NULL, "the instance is %s, not running", state);
		return false;
	}
	return true;
}

static void console_switch(struct api_ctx *c, int64_t id)
{
	struct console_relay *r;
	int fd, ret = console_claim(id);

	if (ret)
		return api_err(c, 409, "conflict", NULL,
			       ret == -EBUSY ? "the console already has a client (one at a time)"
					     : "too many consoles attached");
	fd = console_connect_vmm(c->d, id);
	if (fd < 0) {
		console_release(id);
		return api_err(c, 409, "conflict", NULL,
			       "the VMM has no interactive console (%s): a VMM started by an "
			       "older bunshind gets one when the instance is started again",
			       strerror(-fd));
	}
	r = malloc(sizeof(*r));
	if (r) {
		*r = (struct console_relay){.id = id, .vmm = fd};
		c->resp->upgrade = httpd_upgrade_new(CONSOLE_PROTOCOL, &console_upgrade_ops, r);
	}
	if (!r || !c->resp->upgrade) {
		free(r);
		close(fd);
		console_release(id);
		return api_err(c, 500, "internal", NULL, "out of memory");
	}
	c->resp->status = 101;
}

static void console_attach(struct api_ctx *c)
{
	json_t *inst = api_instance_lookup(c);

	if (inst && console_may_attach(c, inst))
		console_switch(c, sup_int(inst, "id"));
	json_decref(inst);
	/* a GET, but one that may type on a VM: on the record, whatever came of it */
	api_stream_audit(c);
}

const struct api_op api_console_ops[] = {
	{"GET", "instances/:/console/attach", console_attach},
	{NULL, NULL, NULL},
};
