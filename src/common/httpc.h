/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_COMMON_HTTPC_H
#define BUNSHIN_COMMON_HTTPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

/*
 * A small blocking HTTP/1.1 client for our own servers: one request per
 * connection (Connection: close), over a unix socket or TCP. What bunshind
 * uses to drive each VMM's control API, and bunshin to reach bunshind.
 *
 * endpoint: "unix:PATH", "/PATH" (a unix socket), "tcp:HOST:PORT",
 * "http://HOST:PORT" or "https://HOST[:PORT]" (TLS, the server's
 * certificate checked against httpc_set_cacert()'s file or the system's CAs,
 * and against HOST).
 */

#define HTTPC_RESPONSE_MAX (16 * 1024 * 1024)

struct httpc_response {
	int status;
	char *body; /* NUL-terminated, malloc'd; "" when there was none */
	size_t len;
};

struct httpc_request {
	const char *method;
	const char *path;  /* with its query string */
	const char *token; /* Authorization: Bearer TOKEN, or NULL */
	const char *body;  /* JSON, or NULL */
	int timeout_ms;	   /* for connecting and each read; 0: 30 s */
	/*
	 * Or, body NULL, a raw body of body_len bytes streamed from body_src
	 * (never held whole): it fills buf with up to size bytes and returns
	 * how many, or -errno. An early 0 is an error: the file shrank.
	 */
	uint64_t body_len;
	ssize_t (*body_src)(void *arg, char *buf, size_t size);
	void *body_arg;
	const char *const *headers; /* extra "Name: value" lines, NULL-ended, or NULL */
};

/* 0 with resp filled (any HTTP status), or a negative errno with err when there was no answer. */
int httpc_do(const char *endpoint, const struct httpc_request *req, struct httpc_response *resp,
	     struct error *err);

void httpc_response_free(struct httpc_response *resp);

/* The CA certificates (PEM file) https:// servers are checked with; NULL: the system's. */
void httpc_set_cacert(const char *path);

/*
 * A protocol switch: req (a GET, no body) goes with Connection: Upgrade and
 * Upgrade: protocol. On 101 returns 0 with *conn, a raw byte stream both
 * ways; on any other answer 0 with resp filled and *conn NULL; a negative
 * errno with err when there was no answer.
 */
struct httpc_conn;
int httpc_upgrade(const char *endpoint, const struct httpc_request *req, const char *protocol,
		  struct httpc_conn **conn, struct httpc_response *resp, struct error *err);
/* For poll(): but first read while httpc_conn_pending() says bytes are already in. */
int httpc_conn_fd(const struct httpc_conn *c);
bool httpc_conn_pending(const struct httpc_conn *c);
/* As read()/write(): n, 0 at the end, -1 with errno. */
ssize_t httpc_conn_read(struct httpc_conn *c, void *buf, size_t len);
ssize_t httpc_conn_write(struct httpc_conn *c, const void *buf, size_t len);
/* All len bytes (EINTR and short writes retried): 0, or -1 with errno. */
int httpc_conn_write_full(struct httpc_conn *c, const void *buf, size_t len);
void httpc_conn_close(struct httpc_conn *c);

#endif
