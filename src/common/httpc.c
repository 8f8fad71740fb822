// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdbool.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "httpc_internal.h"

#define HTTPC_DEFAULT_TIMEOUT_MS 30000

/* How long a server that does not do 100-continue delays a streamed body. */
#define HTTPC_CONTINUE_MS 1000

static int httpc_connect_unix(const char *path, struct error *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return error_set(err, ENAMETOOLONG, "%s: socket path too long", path);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return error_set(err, errno, "socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		error_set(err, errno, "cannot connect to %s: %s", path, strerror(errno));
		close(fd);
		return -err->code;
	}
	return fd;
}

static int httpc_connect_tcp(const char *hostport, struct error *err)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res, *ai;
	char host[256];
	const char *colon = strrchr(hostport, ':');
	int fd = -1, rc;

	if (!colon || colon == hostport || (size_t)(colon - hostport) >= sizeof(host))
		return error_set(err, EINVAL, "%s: expected HOST:PORT", hostport);
	memcpy(host, hostport, colon - hostport);
	host[colon - hostport] = 0;
	rc = getaddrinfo(host, colon + 1, &hints, &res);
	if (rc)
		return error_set(err, EHOSTUNREACH, "%s: %s", hostport, gai_strerror(rc));
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && !connect(fd, ai->ai_addr, ai->ai_addrlen))
			break;
		rc = errno;
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return error_set(err, rc, "cannot connect to %s: %s", hostport, strerror(rc));
	return fd;
}

/* https://HOST[:PORT][/]: TCP to it (443 by default), then TLS checked against HOST. */
static int httpc_connect_https(struct httpc_conn *c, const char *rest, int timeout_ms,
			       struct error *err)
{
	char hp[300], host[280];
	size_t hlen;

	snprintf(hp, sizeof(hp), "%s", rest);
	hp[strcspn(hp, "/")] = 0;
	if (hp[0] == '[') {
		hlen = strcspn(hp, "]");
		if (!hp[hlen])
			return error_set(err, EINVAL, "https://%s: an unclosed [", hp);
		snprintf(host, sizeof(host), "%.*s", (int)hlen - 1, hp + 1);
	} else {
		hlen = strcspn(hp, ":");
		snprintf(host, sizeof(host), "%.*s", (int)hlen, hp);
	}
	if (!host[0])
		return error_set(err, EINVAL, "https://%s: no host", hp);
	if (!strchr(hp + (hp[0] == '[' ? hlen : 0), ':'))
		strncat(hp, ":443", sizeof(hp) - strlen(hp) - 1);
	c->fd = httpc_connect_tcp(hp, err);
	if (c->fd < 0)
		return c->fd;
	return httpc_tls_start(c, host, timeout_ms, err);
}

static void httpc_conn_end(struct httpc_conn *c)
{
	httpc_tls_end(c);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->early);
	c->early = NULL;
}

static int httpc_connect(struct httpc_conn *c, const char *endpoint, int timeout_ms,
			 struct error *err)
{
	*c = (struct httpc_conn){.fd = -1};
	if (!strncmp(endpoint, "unix:", 5))
		c->fd = httpc_connect_unix(endpoint + 5, err);
	else if (endpoint[0] == '/')
		c->fd = httpc_connect_unix(endpoint, err);
	else if (!strncmp(endpoint, "tcp:", 4))
		c->fd = httpc_connect_tcp(endpoint + 4, err);
	else if (!strncmp(endpoint, "http://", 7)) {
		char hp[300];

		snprintf(hp, sizeof(hp), "%s", endpoint + 7);
		hp[strcspn(hp, "/")] = 0;
		c->fd = httpc_connect_tcp(hp, err);
	} else if (!strncmp(endpoint, "https://", 8)) {
		int ret = httpc_connect_https(c, endpoint + 8, timeout_ms, err);

		if (ret)
			httpc_conn_end(c);
		return ret;
	} else
		return error_set(err, EINVAL,
				 "%s: expected unix:PATH, http://HOST:PORT or https://HOST[:PORT]",
				 endpoint);
	return c->fd < 0 ? c->fd : 0;
}

/* ---- the connection's bytes, over TLS or not ---- */

static ssize_t httpc_send(struct httpc_conn *c, const void *buf, size_t len)
{
	return c->tls ? httpc_tls_send(c, buf, len) : send(c->fd, buf, len, MSG_NOSIGNAL);
}

static ssize_t httpc_recv(struct httpc_conn *c, void *buf, size_t len)
{
	if (c->early_off < c->early_len) {
		size_t n = c->early_len - c->early_off < len ? c->early_len - c->early_off : len;

		memcpy(buf, c->early + c->early_off, n);
		c->early_off += n;
		return (ssize_t)n;
	}
	return c->tls ? httpc_tls_recv(c, buf, len) : recv(c->fd, buf, len, 0);
}

bool httpc_conn_pending(const struct httpc_conn *c)
{
	return c->early_off < c->early_len || httpc_tls_pending(c);
}

/* poll() on the socket, but TLS may hold a record already read: 0 on a timeout. */
static int httpc_wait_readable(struct httpc_conn *c, int timeout_ms)
{
	struct pollfd pfd = {.fd = c->fd, .events = POLLIN};

	if (httpc_conn_pending(c))
		return 1;
	return poll(&pfd, 1, timeout_ms);
}

static int httpc_write_all(struct httpc_conn *c, const char *p, size_t n, struct error *err)
{
	while (n) {
		ssize_t w = httpc_send(c, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return error_set(err, errno ? errno : EIO, "sending the request: %s",
					 strerror(errno));
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads until the server closes (we asked it to): the whole response. */
static int httpc_read_all(struct httpc_conn *c, int timeout_ms, char **out, size_t *len,
			  struct error *err)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap + 1);

	if (!buf)
		return error_set(err, ENOMEM, "out of memory");
	for (;;) {
		ssize_t r;

		if (httpc_wait_readable(c, timeout_ms) == 0) {
			free(buf);
			return error_set(err, ETIMEDOUT, "no answer within %d ms", timeout_ms);
		}
		if (n == cap) {
			char *p = cap >= HTTPC_RESPONSE_MAX ? NULL : realloc(buf, cap * 2 + 1);

			if (!p) {
				free(buf);
				return error_set(err, EFBIG, "response too large");
			}
			buf = p;
			cap *= 2;
		}
		r = httpc_recv(c, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			free(buf);
			return error_set(err, errno, "reading the response: %s", strerror(errno));
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = 0;
	*out = buf;
	*len = n;
	return 0;
}

/* Splits status line, headers and body; honours Content-Length when present. */
static int httpc_parse(char *raw, size_t len, struct httpc_response *resp, struct error *err)
{
	char *hdr_end = strstr(raw, "\r\n\r\n");
	char *body, *cl;
	size_t blen;

	if (strncmp(raw, "HTTP/1.", 7) || !hdr_end || sscanf(raw + 8, " %d", &resp->status) != 1 ||
	    resp->status < 100 || resp->status > 599)
		return error_set(err, EPROTO, "malformed HTTP response");
	body = hdr_end + 4;
	blen = len - (size_t)(body - raw);
	*hdr_end = 0;
	cl = strcasestr(raw, "\r\nContent-Length:");
	if (cl) {
		unsigned long long v = strtoull(cl + 17, NULL, 10);

		if (v < blen)
			blen = (size_t)v;
	}
	resp->body = malloc(blen + 1);
	if (!resp->body)
		return error_set(err, ENOMEM, "out of memory");
	memcpy(resp->body, body, blen);
	resp->body[blen] = 0;
	resp->len = blen;
	return 0;
}

/* The streamed body, piece by piece as body_src gives it. */
static int httpc_write_stream(struct httpc_conn *c, const struct httpc_request *req,
			      struct error *err)
{
	size_t size = 256 * 1024;
	char *buf = malloc(size);
	uint64_t left = req->body_len;
	int ret = 0;

	if (!buf)
		return error_set(err, ENOMEM, "out of memory");
	while (left && !ret) {
		ssize_t n = req->body_src(req->body_arg, buf, left < size ? (size_t)left : size);

		if (n < 0)
			ret = error_set(err, (int)-n, "reading the body: %s", strerror((int)-n));
		else if (n == 0)
			ret = error_set(err, EIO, "the body ended %llu bytes early",
					(unsigned long long)left);
		else
			ret = httpc_write_all(c, buf, (size_t)n, err);
		left -= n > 0 ? (uint64_t)n : 0;
	}
	free(buf);
	return ret;
}

/*
 * With "Expect: 100-continue" the server says before the body goes whether
 * it wants it: a refusal (401, 403, 409, 413) then arrives whole, instead of
 * racing a body the server stops reading and a connection it resets. Reads
 * the first answer's head into buf: *final when it is the final answer
 * (buf holds its first *len bytes), else (100, or no interim answer within
 * HTTPC_CONTINUE_MS from a server that does not do it) the body may go.
 */
static int httpc_await_continue(struct httpc_conn *c, char *buf, size_t cap, size_t *len,
				bool *final, struct error *err)
{
	char *end;

	*len = 0;
	*final = false;
	for (;;) {
		ssize_t n;

		if (httpc_wait_readable(c, *len ? HTTPC_DEFAULT_TIMEOUT_MS : HTTPC_CONTINUE_MS) ==
		    0) {
			if (!*len)
				return 0;
			return error_set(err, ETIMEDOUT, "a partial answer, then nothing");
		}
		n = httpc_recv(c, buf + *len, cap - 1 - *len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			*final = *len > 0;
			return *final ? 0 : error_set(err, n ? errno : EPROTO, "no answer");
		}
		*len += (size_t)n;
		buf[*len] = 0;
		end = strstr(buf, "\r\n\r\n");
		if (!end && *len == cap - 1)
			return error_set(err, EPROTO, "response head too large");
		if (!end)
			continue;
		if (strncmp(buf + 8, " 100", 4)) {
			*final = true;
			return 0;
		}
		*len -= (size_t)(end + 4 - buf);
		memmove(buf, end + 4, *len);
		return 0;
	}
}

/* The extra header lines, each ending in CRLF (malloc'd). */
static char *httpc_extra_headers(const char *const *h)
{
	char *out = strdup(""), *next;

	for (; out && h && *h; h++) {
		if (asprintf(&next, "%s%s\r\n", out, *h) < 0)
			next = NULL;
		free(out);
		out = next;
	}
	return out;
}

/* Appends the rest of an answer (until the server closes) to the head already read. */
static int httpc_read_rest(struct httpc_conn *c, int timeout, const char *head, size_t hlen,
			   char **raw, size_t *rawlen, struct error *err)
{
	char *rest = NULL, *all;
	size_t rlen = 0;
	int ret = httpc_read_all(c, timeout, &rest, &rlen, err);

	if (ret)
		return ret;
	all = malloc(hlen + rlen + 1);
	if (!all) {
		free(rest);
		return error_set(err, ENOMEM, "out of memory");
	}
	memcpy(all, head, hlen);
	memcpy(all + hlen, rest, rlen);
	all[hlen + rlen] = 0;
	free(rest);
	*raw = all;
	*rawlen = hlen + rlen;
	return 0;
}

/*
 * A streamed body after the server's go-ahead; *raw is set when the server
 * answered instead (a refusal: the body is not sent).
 */
static int httpc_send_stream(struct httpc_conn *c, const struct httpc_request *req, int timeout,
			     char **raw, size_t *rawlen, struct error *err)
{
	char head[8192];
	size_t hlen;
	bool final;
	int ret = httpc_await_continue(c, head, sizeof(head), &hlen, &final, err);

	if (!ret && final)
		return httpc_read_rest(c, timeout, head, hlen, raw, rawlen, err);
	if (!ret)
		ret = httpc_write_stream(c, req, err);
	/* A server may still answer and close before the body is all sent: read why. */
	if (ret && (err->code == EPIPE || err->code == ECONNRESET) &&
	    !httpc_read_all(c, timeout, raw, rawlen, &(struct error){0}))
		return 0;
	return ret;
}

/* The request's head (malloc'd), with extra header lines; its length, or -1. */
static int httpc_head(const struct httpc_request *req, const char *more, uint64_t blen, char **head)
{
	bool stream = !req->body && req->body_src;
	char *extra = httpc_extra_headers(req->headers);
	int n;

	n = extra ? asprintf(head,
			     "%s %s HTTP/1.1\r\nHost: localhost\r\n%s"
			     "%s%s%s%s%sContent-Length: %llu\r\n\r\n",
			     req->method, req->path, more,
			     req->token ? "Authorization: Bearer " : "",
			     req->token ? req->token : "", req->token ? "\r\n" : "",
			     req->body ? "Content-Type: application/json\r\n"
			     : stream  ? "Content-Type: application/octet-stream\r\n"
					 "Expect: 100-continue\r\n"
				       : "",
			     extra, (unsigned long long)blen)
		  : -1;
	free(extra);
	return n;
}

/* An empty answer, from a TLS server most often: say so rather than "malformed". */
static int httpc_parse_answer(const char *endpoint, char *raw, size_t len,
			      struct httpc_response *resp, struct error *err)
{
	if (!len)
		return error_set(
			err, EPROTO, "the server closed the connection without an answer%s",
			strncmp(endpoint, "http://", 7) ? "" : " (is it an https:// server?)");
	return httpc_parse(raw, len, resp, err);
}

int httpc_do(const char *endpoint, const struct httpc_request *req, struct httpc_response *resp,
	     struct error *err)
{
	int timeout = req->timeout_ms ? req->timeout_ms : HTTPC_DEFAULT_TIMEOUT_MS;
	bool stream = !req->body && req->body_src;
	uint64_t blen = req->body ? strlen(req->body) : stream ? req->body_len : 0;
	char *head = NULL, *raw = NULL;
	struct httpc_conn c;
	size_t rawlen = 0;
	int ret, n;

	memset(resp, 0, sizeof(*resp));
	ret = httpc_connect(&c, endpoint, timeout, err);
	if (ret)
		return ret;
	n = httpc_head(req, "Connection: close\r\n", blen, &head);
	if (n < 0) {
		httpc_conn_end(&c);
		return error_set(err, ENOMEM, "out of memory");
	}
	ret = httpc_write_all(&c, head, (size_t)n, err);
	free(head);
	if (!ret && req->body && blen)
		ret = httpc_write_all(&c, req->body, (size_t)blen, err);
	else if (!ret && stream)
		ret = httpc_send_stream(&c, req, timeout, &raw, &rawlen, err);
	if (!ret && !raw)
		ret = httpc_read_all(&c, timeout, &raw, &rawlen, err);
	httpc_conn_end(&c);
	if (!ret)
		ret = httpc_parse_answer(endpoint, raw, rawlen, resp, err);
	free(raw);
	return ret;
}

/* ---- protocol switches ---- */

/* Reads the answer's head; what came after it stays in c->early for the stream. */
static int httpc_upgrade_head(struct httpc_conn *c, int timeout, char *buf, size_t cap, size_t *len,
			      struct error *err)
{
	char *end = NULL;

	*len = 0;
	while (!end) {
		ssize_t n;

		if (*len == cap - 1)
			return error_set(err, EPROTO, "response head too large");
		if (httpc_wait_readable(c, timeout) == 0)
			return error_set(err, ETIMEDOUT, "no answer within %d ms", timeout);
		n = httpc_recv(c, buf + *len, cap - 1 - *len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return *len ? 0 : error_set(err, EPROTO, "no answer");
		*len += (size_t)n;
		buf[*len] = 0;
		end = strstr(buf, "\r\n\r\n");
	}
	return 0;
}

/* After a head: Content-Length bytes of body (or up to the server's close without one). */
static int httpc_read_body(struct httpc_conn *c, int timeout, const char *head, size_t hlen,
			   char **raw, size_t *rawlen, struct error *err)
{
	const char *cl = strcasestr(head, "\r\nContent-Length:");
	size_t body_at = (size_t)(strstr(head, "\r\n\r\n") + 4 - head), want, n = hlen;
	char *buf;

	if (!cl)
		return httpc_read_rest(c, timeout, head, hlen, raw, rawlen, err);
	want = (size_t)strtoull(cl + 17, NULL, 10);
	if (want > HTTPC_RESPONSE_MAX)
		return error_set(err, EFBIG, "response too large");
	buf = malloc(body_at + want + 1);
	if (!buf)
		return error_set(err, ENOMEM, "out of memory");
	memcpy(buf, head, hlen < body_at + want ? hlen : body_at + want);
	n = hlen < body_at + want ? hlen : body_at + want;
	while (n < body_at + want) {
		ssize_t r;

		if (httpc_wait_readable(c, timeout) == 0)
			break;
		r = httpc_recv(c, buf + n, body_at + want - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	buf[n] = 0;
	*raw = buf;
	*rawlen = n;
	return 0;
}

static int httpc_upgraded(struct httpc_conn *c, char *head, size_t hlen, struct httpc_conn **out,
			  struct error *err)
{
	char *end = strstr(head, "\r\n\r\n") + 4;
	size_t rest = hlen - (size_t)(end - head);

	*out = malloc(sizeof(**out));
	if (!*out)
		return error_set(err, ENOMEM, "out of memory");
	**out = *c;
	(*out)->early = rest ? malloc(rest) : NULL;
	if ((*out)->early) {
		memcpy((*out)->early, end, rest);
		(*out)->early_len = rest;
	}
	return 0;
}

int httpc_upgrade(const char *endpoint, const struct httpc_request *req, const char *protocol,
		  struct httpc_conn **conn, struct httpc_response *resp, struct error *err)
{
	int timeout = req->timeout_ms ? req->timeout_ms : HTTPC_DEFAULT_TIMEOUT_MS;
	char more[128], head[8192], *out = NULL, *raw = NULL;
	struct httpc_conn c;
	size_t hlen = 0, rawlen = 0;
	int ret, n;

	memset(resp, 0, sizeof(*resp));
	*conn = NULL;
	ret = httpc_connect(&c, endpoint, timeout, err);
	if (ret)
		return ret;
	snprintf(more, sizeof(more), "Connection: Upgrade\r\nUpgrade: %s\r\n", protocol);
	n = httpc_head(req, more, 0, &out);
	ret = n < 0 ? error_set(err, ENOMEM, "out of memory")
		    : httpc_write_all(&c, out, (size_t)n, err);
	free(out);
	ret = ret ?: httpc_upgrade_head(&c, timeout, head, sizeof(head), &hlen, err);
	if (!ret && !strncmp(head, "HTTP/1.1 101", 12))
		return httpc_upgraded(&c, head, hlen, conn, err) ?: 0;
	/* any other answer: read its body (the connection may stay open after it) */
	ret = ret ?: httpc_read_body(&c, timeout, head, hlen, &raw, &rawlen, err);
	httpc_conn_end(&c);
	if (!ret)
		ret = httpc_parse_answer(endpoint, raw, rawlen, resp, err);
	free(raw);
	return ret;
}

int httpc_conn_fd(const struct httpc_conn *c)
{
	return c->fd;
}

ssize_t httpc_conn_read(struct httpc_conn *c, void *buf, size_t len)
{
	return httpc_recv(c, buf, len);
}

ssize_t httpc_conn_write(struct httpc_conn *c, const void *buf, size_t len)
{
	return httpc_send(c, buf, len);
}

int httpc_conn_write_full(struct httpc_conn *c, const void *buf, size_t len)
{
	struct error err = {0};

	return httpc_write_all(c, buf, len, &err) ? -1 : 0;
}

void httpc_conn_close(struct httpc_conn *c)
{
	if (!c)
		return;
	httpc_conn_end(c);
	free(c);
}

void httpc_response_free(struct httpc_response *resp)
{
	free(resp->body);
	resp->body = NULL;
}
