/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_COMMON_HTTPD_H
#define BUNSHIN_COMMON_HTTPD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/*
 * A small HTTP/1.1 + JSON server on a unix socket, over libmicrohttpd:
 * what the VMM's control API and, later, bunshind's are built on. It owns
 * the socket file (created mode 0600, removed on stop), collects request
 * bodies up to HTTPD_BODY_MAX, parses JSON bodies, and dispatches on
 * (method, path) to a route table. Handlers run on the server's one
 * thread, one request at a time, so they need no locking among
 * themselves (they still do against the rest of the program).
 *
 * Every error leaves as JSON: {"error": "<reason>", "field": "<name>"}
 * ("field" only when one field of the request is at fault).
 */

#define HTTPD_BODY_MAX (64 * 1024)

struct httpd_request {
	const char *method; /* "GET", "PUT", ... */
	const char *path;   /* without the query string */
	json_t *body;	    /* the parsed JSON body, or NULL when there was none */
	void *conn;	    /* the connection, for httpd_header() and httpd_query() */
};

struct httpd_upgrade;

struct httpd_response {
	int status;	   /* HTTP status; 200 when left 0 and body is set, else 204 */
	json_t *body;	   /* JSON to send (the server takes the reference), or NULL */
	char *text;	   /* or plain text (malloc'd; the server frees it), e.g. metrics */
	const char *ctype; /* content type of text; "text/plain; version=0.0.4" by default */
	struct httpd_upgrade *upgrade; /* or a protocol switch (the server takes it), below */
};

/* Returns nothing: it fills resp, with httpd_error() for failures. */
typedef void (*httpd_handler)(void *ctx, const struct httpd_request *req,
			      struct httpd_response *resp);

/* A path ending in '*' matches every path that starts with what comes before it. */
struct httpd_route {
	const char *method;
	const char *path;
	httpd_handler fn;
};

struct httpd;

/*
 * Binds path (an existing socket file there is replaced: a stale one from
 * a crashed process must not keep the API away) and starts serving routes,
 * a table ended by an entry with a NULL path.
 */
struct httpd *httpd_start(const char *path, const struct httpd_route *routes, void *ctx,
			  struct error *err);
/*
 * httpd_start(), with a hook the server's thread calls once, when it takes
 * its first connection and before it reads a byte of it: the VMM adds the
 * API thread's own seccomp filter there (libmicrohttpd starts the thread,
 * and has no hook of its own at thread start).
 */
struct httpd *httpd_start_hooked(const char *path, const struct httpd_route *routes, void *ctx,
				 void (*thread_hook)(void), struct error *err);
/* Stops serving (a request being handled finishes first) and removes the socket file. */
void httpd_stop(struct httpd *h);

/* Fills resp with an error: status, reason and the field at fault (NULL for none). */
__attribute__((format(printf, 4, 5))) void httpd_error(struct httpd_response *resp, int status,
						       const char *field, const char *fmt, ...);

/*
 * Field readers for request bodies. Each returns 0, or fills resp with a
 * 400 naming the field and returns -1. Optional fields leave *out alone
 * when absent; required ones are an error when absent.
 */
int httpd_field_u64(const json_t *obj, const char *name, bool required, uint64_t min, uint64_t max,
		    uint64_t *out, struct httpd_response *resp);
int httpd_field_str(const json_t *obj, const char *name, bool required, const char **out,
		    struct httpd_response *resp);
int httpd_field_bool(const json_t *obj, const char *name, bool required, bool *out,
		     struct httpd_response *resp);
/* 400 for any member of obj not in the NULL-terminated list: a typo must not pass silently. */
int httpd_only_fields(const json_t *obj, const char *const *allowed, struct httpd_response *resp);

/*
 * A server with more choices than httpd_start(): listen is "unix:PATH" or
 * "tcp:HOST:PORT" (HTTPS with tls_cert_pem and tls_key_pem), threads > 1 serves
 * that many requests at once (handlers must then lock for themselves), and
 * nested_errors words the server's own errors (bad JSON, no such route) as
 * {"error": {"code": "...", "message": "...", "field": "..."}}.
 */
struct httpd_stream_ops;

struct httpd_opts {
	unsigned int threads;
	unsigned int max_connections; /* 0: 32 */
	bool nested_errors;
	void (*thread_hook)(void);	       /* as httpd_start_hooked()'s, or NULL */
	const struct httpd_stream_ops *stream; /* raw bodies streamed, or NULL */
	size_t body_max;		       /* a JSON body's largest size; 0: HTTPD_BODY_MAX */
	/* HTTPS on a tcp: listener: the certificate chain and its key, PEM in memory, or NULL. */
	const char *tls_cert_pem;
	const char *tls_key_pem;
};

struct httpd *httpd_start_opts(const char *listen, const struct httpd_opts *opts,
			       const struct httpd_route *routes, void *ctx, struct error *err);

/*
 * Requests whose body is not JSON but raw bytes of any size (an image
 * upload): the server never holds such a body, it hands it over piece by
 * piece as libmicrohttpd reads it. begin() sees each request as soon as its
 * headers are in (req->body is NULL) and either takes it as a stream (a
 * non-NULL state), answers it at once (NULL with resp filled: the body is
 * then not read), or leaves it to the route table (NULL, resp untouched).
 * A stream then gets data() per piece, and exactly one of end() (the whole
 * body is in: answer) or abort() (the client went away first); each frees
 * the state.
 */
struct httpd_stream_ops {
	void *(*begin)(void *ctx, const struct httpd_request *req, struct httpd_response *resp);
	void (*data)(void *state, const char *buf, size_t len);
	void (*end)(void *state, const struct httpd_request *req, struct httpd_response *resp);
	void (*abort)(void *state);
};

/*
 * A protocol switch (HTTP 101, Upgrade: protocol): once the answer is out,
 * the connection is no longer HTTP and run() gets its raw bytes (TLS
 * already undone) on a thread of its own: extra holds what the client sent
 * after its request's head. run() must return when *stop turns true (the
 * server is stopping: it waits for every run() to end), so it polls with a
 * short timeout; the connection closes when it returns. done() frees arg,
 * whether run() ran or the switch never happened (the client left first).
 *
 * peer is the client's own socket, to be polled for POLLRDHUP only (never
 * read): over TLS, fd is a socketpair libmicrohttpd relays through, and
 * it (0.9.75) does not pass the client's leaving on to it.
 */
struct httpd_upgrade_ops {
	void (*run)(void *arg, int fd, int peer, const char *extra, size_t extra_len,
		    const volatile bool *stop);
	void (*done)(void *arg);
};

/* NULL when out of memory (arg is then the caller's to free). */
struct httpd_upgrade *httpd_upgrade_new(const char *protocol, const struct httpd_upgrade_ops *ops,
					void *arg);

/* A request header's value, or NULL. */
const char *httpd_header(const struct httpd_request *req, const char *name);
/* A query-string argument's value, or NULL. */
const char *httpd_query(const struct httpd_request *req, const char *name);

#endif
