// SPDX-License-Identifier: MIT
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "migstream.h"
#include "../../common/le.h"

#define MIGSTREAM_TIMEOUT_S 30 /* a peer silent this long is gone */

static int migstream_port(const char *s, struct migstream_url *out, struct error *err)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (!*s || *end || errno || v < 1 || v > 65535)
		return error_set(err, EINVAL, "url: '%s' is not a port (1-65535)", s);
	snprintf(out->port, sizeof(out->port), "%ld", v);
	return 0;
}

/* HOST:PORT, [V6]:PORT, or (listen) PORT alone. */
static int migstream_parse_tcp(const char *s, bool listen, struct migstream_url *out,
			       struct error *err)
{
	const char *colon = strrchr(s, ':'), *host = s;
	size_t hlen;

	if (!colon) {
		if (!listen)
			return error_set(err, EINVAL, "url: tcp:HOST:PORT needs a host");
		return migstream_port(s, out, err);
	}
	hlen = (size_t)(colon - s);
	if (hlen >= 2 && s[0] == '[' && s[hlen - 1] == ']') {
		host++;
		hlen -= 2;
	}
	if (!hlen || hlen >= sizeof(out->host))
		return error_set(err, EINVAL, "url: the host of '%s' is empty or too long", s);
	memcpy(out->host, host, hlen);
	out->host[hlen] = 0;
	if (!strcmp(out->host, "localhost"))
		strcpy(out->host, "127.0.0.1");
	return migstream_port(colon + 1, out, err);
}

int migstream_parse_url(const char *url, bool listen, struct migstream_url *out, struct error *err)
{
	memset(out, 0, sizeof(*out));
	if (!strncmp(url, "unix:", 5)) {
		if (!url[5] || strlen(url + 5) >= sizeof(out->path))
			return error_set(err, EINVAL, "url: the socket path is empty or too long");
		strcpy(out->path, url + 5);
		return 0;
	}
	if (!strncmp(url, "tcp:", 4)) {
		out->tcp = true;
		return migstream_parse_tcp(url + 4, listen, out, err);
	}
	return error_set(err, EINVAL, "url: '%s' is neither unix:PATH nor tcp:%sPORT", url,
			 listen ? "[HOST:]" : "HOST:");
}

void migstream_put_header(uint8_t *buf, uint64_t mem_size, uint32_t cfg_len)
{
	memcpy(buf, MIGSTREAM_MAGIC, 8);
	le_put(buf + 8, 4, MIGSTREAM_VERSION);
	le_put(buf + 12, 4, 0);
	le_put(buf + 16, 8, mem_size);
	le_put(buf + 24, 4, cfg_len);
}

int migstream_check_header(const uint8_t *buf, uint64_t *mem_size, uint32_t *cfg_len,
			   struct error *err)
{
	uint32_t version = (uint32_t)le_get(buf + 8, 4);

	if (memcmp(buf, MIGSTREAM_MAGIC, 8))
		return error_set(err, EBADMSG, "not a bunshin migration stream (bad magic)");
	if (version != MIGSTREAM_VERSION)
		return error_set(err, EPROTO, "migration stream version %u, this VMM reads %u",
				 version, MIGSTREAM_VERSION);
	if (le_get(buf + 12, 4) & ~(uint64_t)MIGSTREAM_FLAGS_KNOWN)
		return error_set(err, EPROTO, "migration stream flags %#x unknown",
				 (unsigned int)le_get(buf + 12, 4));
	*mem_size = le_get(buf + 16, 8);
	*cfg_len = (uint32_t)le_get(buf + 24, 4);
	if (!*cfg_len || *cfg_len > MIGSTREAM_CFG_MAX)
		return error_set(err, EBADMSG, "migration stream: a %u-byte configuration",
				 *cfg_len);
	return 0;
}

int migstream_check_pages(uint64_t first, uint32_t count, uint64_t npages, struct error *err)
{
	if (!count || count > MIGSTREAM_RUN_MAX)
		return error_set(err, ERANGE, "migration stream: a run of %u pages (1 to %d)",
				 count, MIGSTREAM_RUN_MAX);
	/* As a subtraction: first + count cannot wrap. */
	if (first >= npages || count > npages - first)
		return error_set(err, ERANGE,
				 "migration stream: pages %#llx+%u are outside guest RAM (%llu "
				 "pages)",
				 (unsigned long long)first, count, (unsigned long long)npages);
	return 0;
}

int migstream_read(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		if (n == 0)
			return -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int migstream_writev(int fd, struct iovec *iov, int n)
{
	while (n) {
		ssize_t w = writev(fd, iov, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		while (n && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n) {
			iov->iov_base = (uint8_t *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

static void migstream_timeouts(int fd)
{
	struct timeval tv = {.tv_sec = MIGSTREAM_TIMEOUT_S};

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static int migstream_unix_addr(const struct migstream_url *u, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, u->path, strlen(u->path) + 1);
	return socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
}

/* Numeric hosts only: a name lookup would open files and sockets the sandbox does not allow. */
static int migstream_tcp_addr(const struct migstream_url *u, bool listen, struct addrinfo **ai,
			      struct error *err)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV |
					     (listen ? AI_PASSIVE : 0)};
	int r = getaddrinfo(u->host[0] ? u->host : NULL, u->port, &hints, ai);

	if (r)
		return error_set(err, EINVAL, "url: '%s': %s (an IP address is needed)", u->host,
				 gai_strerror(r));
	return 0;
}

int migstream_connect(const struct migstream_url *u, int *fd, struct error *err)
{
	struct sockaddr_un sa;
	struct addrinfo *ai = NULL;
	int ret = 0;

	if (u->tcp) {
		ret = migstream_tcp_addr(u, false, &ai, err);
		if (ret)
			return ret;
		*fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	} else {
		*fd = migstream_unix_addr(u, &sa);
	}
	if (*fd < 0)
		ret = -errno;
	else if (u->tcp ? connect(*fd, ai->ai_addr, ai->ai_addrlen)
			: connect(*fd, (struct sockaddr *)&sa, sizeof(sa)))
		ret = -errno;
	if (ai)
		freeaddrinfo(ai);
	if (ret) {
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
		return error_set(err, -ret, "connecting to the destination: %s", strerror(-ret));
	}
	migstream_timeouts(*fd);
	return 0;
}

static int migstream_listen(const struct migstream_url *u, struct error *err)
{
	struct sockaddr_un sa;
	struct addrinfo *ai = NULL;
	int fd, one = 1, ret = 0;

	if (u->tcp) {
		ret = migstream_tcp_addr(u, true, &ai, err);
		if (ret)
			return ret;
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	} else {
		fd = migstream_unix_addr(u, &sa);
		unlink(u->path); /* a stale socket of an earlier run */
	}
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 ||
	    (u->tcp ? bind(fd, ai->ai_addr, ai->ai_addrlen)
		    : bind(fd, (struct sockaddr *)&sa, sizeof(sa))) ||
	    listen(fd, 1))
		ret = -errno;
	if (ai)
		freeaddrinfo(ai);
	if (ret) {
		if (fd >= 0)
			close(fd);
		return error_set(err, -ret, "listening for the source: %s", strerror(-ret));
	}
	return fd;
}

int migstream_accept(const struct migstream_url *u, int *fd, struct error *err)
{
	int lfd = migstream_listen(u, err);

	if (lfd < 0)
		return lfd;
	do
		*fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	while (*fd < 0 && errno == EINTR);
	if (*fd < 0)
		error_set(err, errno, "accepting the source: %s", strerror(errno));
	close(lfd);
	if (!u->tcp)
		unlink(u->path);
	if (*fd < 0)
		return -1;
	migstream_timeouts(*fd);
	return 0;
}

void migstream_set_flags(uint8_t *buf, uint32_t flags)
{
	le_put(buf + 12, 4, flags);
}

uint32_t migstream_flags(const uint8_t *buf)
{
	return (uint32_t)le_get(buf + 12, 4);
}
