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

#include "httpc.h"

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

static int httpc_connect(const char *endpoint, struct error *err)
{
	if (!strncmp(endpoint, "unix:", 5))
		return httpc_connect_unix(endpoint + 5, err);
	if (endpoint[0] == '/')
		return httpc_connect_unix(endpoint, err);
	if (!strncmp(endpoint, "tcp:", 4))
		return httpc_connect_tcp(endpoint + 4, err);
	if (!strncmp(endpoint, "http://", 7)) {
		char hp[300];

		snprintf(hp, sizeof(hp), "%s", endpoint + 7);
		hp[strcspn(hp, "/")] = 0;
		return httpc_connect_tcp(hp, err);
	}
	return error_set(err, EINVAL, "%s: expected unix:PATH or http://HOST:PORT", endpoint);
}

static int httpc_write_all(int fd, const char *p, size_t n, struct error *err)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

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
static int httpc_read_all(int fd, int timeout_ms, char **out, size_t *len, struct error *err)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap + 1);

	if (!buf)
		return error_set(err, ENOMEM, "out of memory");
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		ssize_t r;

		if (poll(&pfd, 1, timeout_ms) == 0) {
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
		r = recv(fd, buf + n, cap - n, 0);
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
static int httpc_write_stream(int fd, const struct httpc_request *req, struct error *err)
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
			ret = httpc_write_all(fd, buf, (size_t)n, err);
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
static int httpc_await_continue(int fd, char *buf, size_t cap, size_t *len, bool *final,
				struct error *err)
{
	char *end;

	*len = 0;
	*final = false;
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (poll(&pfd, 1, *len ? HTTPC_DEFAULT_TIMEOUT_MS : HTTPC_CONTINUE_MS) == 0) {
			if (!*len)
				return 0;
			return error_set(err, ETIMEDOUT, "a partial answer, then nothing");
		}
		n = recv(fd, buf + *len, cap - 1 - *len, 0);
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
static int httpc_read_rest(int fd, int timeout, const char *head, size_t hlen, char **raw,
			   size_t *rawlen, struct error *err)
{
	char *rest = NULL, *all;
	size_t rlen = 0;
	int ret = httpc_read_all(fd, timeout, &rest, &rlen, err);

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
static int httpc_send_stream(int fd, const struct httpc_request *req, int timeout, char **raw,
			     size_t *rawlen, struct error *err)
{
	char head[8192];
	size_t hlen;
	bool final;
	int ret = httpc_await_continue(fd, head, sizeof(head), &hlen, &final, err);

	if (!ret && final)
		return httpc_read_rest(fd, timeout, head, hlen, raw, rawlen, err);
	if (!ret)
		ret = httpc_write_stream(fd, req, err);
	/* A server may still answer and close before the body is all sent: read why. */
	if (ret && (err->code == EPIPE || err->code == ECONNRESET) &&
	    !httpc_read_all(fd, timeout, raw, rawlen, &(struct error){0}))
		return 0;
	return ret;
}

int httpc_do(const char *endpoint, const struct httpc_request *req, struct httpc_response *resp,
	     struct error *err)
{
	int timeout = req->timeout_ms ? req->timeout_ms : HTTPC_DEFAULT_TIMEOUT_MS;
	bool stream = !req->body && req->body_src;
	uint64_t blen = req->body ? strlen(req->body) : stream ? req->body_len : 0;
	char *head = NULL, *raw = NULL, *extra;
	size_t rawlen = 0;
	int fd, ret, n;

	memset(resp, 0, sizeof(*resp));
	fd = httpc_connect(endpoint, err);
	if (fd < 0)
		return fd;
	extra = httpc_extra_headers(req->headers);
	n = extra ? asprintf(&head,
			     "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
			     "%s%s%s%s%sContent-Length: %llu\r\n\r\n",
			     req->method, req->path, req->token ? "Authorization: Bearer " : "",
			     req->token ? req->token : "", req->token ? "\r\n" : "",
			     req->body ? "Content-Type: application/json\r\n"
			     : stream  ? "Content-Type: application/octet-stream\r\n"
					 "Expect: 100-continue\r\n"
				       : "",
			     extra, (unsigned long long)blen)
		  : -1;
	free(extra);
	if (n < 0) {
		close(fd);
		return error_set(err, ENOMEM, "out of memory");
	}
	ret = httpc_write_all(fd, head, (size_t)n, err);
	free(head);
	if (!ret && req->body && blen)
		ret = httpc_write_all(fd, req->body, (size_t)blen, err);
	else if (!ret && stream)
		ret = httpc_send_stream(fd, req, timeout, &raw, &rawlen, err);
	if (!ret && !raw)
		ret = httpc_read_all(fd, timeout, &raw, &rawlen, err);
	close(fd);
	if (!ret)
		ret = httpc_parse(raw, rawlen, resp, err);
	free(raw);
	return ret;
}

void httpc_response_free(struct httpc_response *resp)
{
	free(resp->body);
	resp->body = NULL;
}
