// SPDX-License-Identifier: MIT
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "httpd.h"
#include "log.h"

#define HTTPD_MAX_CONNECTIONS 32
#define HTTPD_IDLE_TIMEOUT_S  30 /* a client that stalls mid-request is dropped */
#define HTTPD_METRICS_CTYPE   "text/plain; version=0.0.4"
/*
 * A stream refused from its headers alone still has its body read and
 * dropped when it is at most this big: closing on unread bytes resets the
 * connection, and a reset can cost the client the answer saying why.
 */
#define HTTPD_DRAIN_MAX (1024 * 1024)

struct httpd {
	struct MHD_Daemon *daemon;
	const struct httpd_route *routes;
	void *ctx;
	char *path; /* the unix socket to remove at stop; NULL for TCP */
	bool nested_errors;
	void (*thread_hook)(void); /* called once on each server thread, or NULL */
	const struct httpd_stream_ops *stream;
	size_t body_max;
	bool tls;

	/* Upgraded connections' threads: stopping ends them, and stop waits for them. */
	volatile bool stopping;
	pthread_mutex_t up_lock;
	pthread_cond_t up_cond;
	unsigned int upgraded;
};

struct httpd_upgrade {
	char protocol[64];
	const struct httpd_upgrade_ops *ops;
	void *arg;
	struct httpd *h;
	struct MHD_UpgradeResponseHandle *urh;
	int fd, peer;
	char *extra;
	size_t extra_len;
};

/* One request's body as it arrives, in pieces. */
struct httpd_conn {
	char *buf;
	size_t len;
	bool too_big;
	size_t max;    /* the server's body_max */
	void *stream;  /* a streamed body's state until end() or abort() */
	bool draining; /* a small body read and dropped, then early is sent */
	struct httpd_response early;
	struct httpd_upgrade *upgrade; /* a 101 queued, until its switch takes it */
};

void httpd_error(struct httpd_response *resp, int status, const char *field, const char *fmt, ...)
{
	char reason[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	json_decref(resp->body);
	resp->status = status;
	resp->body = json_pack("{s:s}", "error", reason);
	if (field && resp->body)
		json_object_set_new(resp->body, "field", json_string(field));
}

static void httpd_conn_append(struct httpd_conn *hc, const char *data, size_t len)
{
	char *p;

	if (hc->too_big || hc->len + len > hc->max) {
		hc->too_big = true;
		return;
	}
	p = realloc(hc->buf, hc->len + len + 1);
	if (!p) {
		hc->too_big = true; /* answered as 413: the client can retry smaller */
		return;
	}
	memcpy(p + hc->len, data, len);
	hc->buf = p;
	hc->len += len;
}

static bool httpd_path_match(const char *pattern, const char *path)
{
	size_t n = strlen(pattern);

	if (n && pattern[n - 1] == '*')
		return !strncmp(pattern, path, n - 1);
	return !strcmp(pattern, path);
}

/* The route for (method, path), or why there is none (404 or 405). */
static const struct httpd_route *httpd_route_find(const struct httpd *h, const char *method,
						  const char *path, struct httpd_response *resp)
{
	bool path_known = false;

	for (const struct httpd_route *r = h->routes; r->path; r++) {
		if (!httpd_path_match(r->path, path))
			continue;
		if (!strcmp(r->method, method))
			return r;
		path_known = true;
	}
	if (path_known)
		httpd_error(resp, MHD_HTTP_METHOD_NOT_ALLOWED, NULL, "%s is not allowed on %s",
			    method, path);
	else
		httpd_error(resp, MHD_HTTP_NOT_FOUND, NULL, "no such resource: %s", path);
	return NULL;
}

/* Parses the body, if any, into req->body; 400 or 413 into resp otherwise. */
static int httpd_parse_body(const struct httpd_conn *hc, struct httpd_request *req,
			    struct httpd_response *resp)
{
	json_error_t jerr;

	if (hc->too_big) {
		httpd_error(resp, MHD_HTTP_CONTENT_TOO_LARGE, NULL,
			    "request body larger than %zu bytes", hc->max);
		return -1;
	}
	if (!hc->len)
		return 0;
	req->body = json_loadb(hc->buf, hc->len, JSON_REJECT_DUPLICATES, &jerr);
	if (!req->body) {
		httpd_error(resp, MHD_HTTP_BAD_REQUEST, NULL,
			    "invalid JSON (line %d, column %d): %s", jerr.line, jerr.column,
			    jerr.text);
		return -1;
	}
	if (!json_is_object(req->body)) {
		httpd_error(resp, MHD_HTTP_BAD_REQUEST, NULL, "the body must be a JSON object");
		return -1;
	}
	return 0;
}

static struct MHD_Response *httpd_build(struct httpd_response *resp)
{
	struct MHD_Response *r;
	char *s = NULL;
	const char *ctype = "application/json";

	if (resp->body) {
		s = json_dumps(resp->body, JSON_COMPACT);
		if (!s)
			return NULL;
	} else if (resp->text) {
		s = resp->text;
		resp->text = NULL;
		ctype = resp->ctype ? resp->ctype : HTTPD_METRICS_CTYPE;
	}
	if (!resp->status)
		resp->status = s ? MHD_HTTP_OK : MHD_HTTP_NO_CONTENT;
	r = MHD_create_response_from_buffer(s ? strlen(s) : 0, s,
					    s ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (!r) {
		free(s);
		return NULL;
	}
	if (s)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	return r;
}

static const char *httpd_error_code(int status)
{
	switch (status) {
	case MHD_HTTP_NOT_FOUND:
		return "not_found";
	case MHD_HTTP_METHOD_NOT_ALLOWED:
		return "method_not_allowed";
	case MHD_HTTP_CONTENT_TOO_LARGE:
		return "too_large";
	default:
		return "invalid_request";
	}
}

/* {"error": "why", "field": F} becomes {"error": {"code", "message", "field"}}. */
static void httpd_nest_error(struct httpd_response *resp)
{
	json_t *e = resp->body ? json_object_get(resp->body, "error") : NULL;
	json_t *nested;

	if (!json_is_string(e))
		return;
	nested = json_pack("{s:s, s:O}", "code", httpd_error_code(resp->status), "message", e);
	if (!nested)
		return;
	if (json_object_get(resp->body, "field"))
		json_object_set(nested, "field", json_object_get(resp->body, "field"));
	json_object_del(resp->body, "field");
	json_object_set_new(resp->body, "error", nested);
}

static enum MHD_Result httpd_send(struct MHD_Connection *c, const char *url, const char *method,
				  struct httpd_response *resp)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = httpd_build(resp);
	json_decref(resp->body);
	free(resp->text);
	if (!r)
		return MHD_NO; /* out of memory: MHD drops the connection */
	log_debug("api: %s %s -> %d", method, url, resp->status);
	ret = MHD_queue_response(c, (unsigned int)resp->status, r);
	MHD_destroy_response(r);
	return ret;
}

/* ---- protocol switches (101) ---- */

struct httpd_upgrade *httpd_upgrade_new(const char *protocol, const struct httpd_upgrade_ops *ops,
					void *arg)
{
	struct httpd_upgrade *u = calloc(1, sizeof(*u));

	if (!u)
		return NULL;
	snprintf(u->protocol, sizeof(u->protocol), "%s", protocol);
	u->ops = ops;
	u->arg = arg;
	u->fd = -1;
	return u;
}

static void httpd_upgrade_free(struct httpd_upgrade *u)
{
	if (!u)
		return;
	u->ops->done(u->arg);
	free(u->extra);
	free(u);
}

static void *httpd_upgrade_main(void *arg)
{
	struct httpd_upgrade *u = arg;
	struct httpd *h = u->h;

	u->ops->run(u->arg, u->fd, u->peer, u->extra, u->extra_len, &h->stopping);
	MHD_upgrade_action(u->urh, MHD_UPGRADE_ACTION_CLOSE);
	httpd_upgrade_free(u);
	pthread_mutex_lock(&h->up_lock);
	h->upgraded--;
	pthread_cond_broadcast(&h->up_cond);
	pthread_mutex_unlock(&h->up_lock);
	return NULL;
}

/* On the server's thread, the 101 sent: the connection goes to a thread of its own. */
static void httpd_upgraded(void *cls, struct MHD_Connection *c, void *con_cls, const char *extra,
			   size_t extra_len, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
	struct httpd_upgrade *u = cls;
	struct httpd_conn *hc = con_cls;
	struct httpd *h = u->h;
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	pthread_t t;

	if (hc && hc->upgrade == u)
		hc->upgrade = NULL; /* the thread's now */
	u->fd = sock;
	u->peer = ci ? ci->connect_fd : sock;
	u->urh = urh;
	u->extra = extra_len ? malloc(extra_len) : NULL;
	if (u->extra) {
		memcpy(u->extra, extra, extra_len);
		u->extra_len = extra_len;
	}
	/* Counted under the lock httpd_stop() sets stopping under: none starts after its wait. */
	pthread_mutex_lock(&h->up_lock);
	if (!h->stopping && !pthread_create(&t, NULL, httpd_upgrade_main, u)) {
		h->upgraded++;
		pthread_mutex_unlock(&h->up_lock);
		pthread_detach(t);
		return;
	}
	pthread_mutex_unlock(&h->up_lock);
	if (!h->stopping)
		log_warn("api: no thread for an upgraded connection");
	MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
	httpd_upgrade_free(u);
}

static enum MHD_Result httpd_send_upgrade(struct httpd *h, struct MHD_Connection *c,
					  const char *url, struct httpd_conn *hc,
					  struct httpd_response *resp)
{
	struct httpd_upgrade *u = resp->upgrade;
	struct MHD_Response *r;
	enum MHD_Result ret;

	json_decref(resp->body);
	free(resp->text);
	u->h = h;
	hc->upgrade = u; /* freed with the request unless the switch happens */
	r = MHD_create_response_for_upgrade(httpd_upgraded, u);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_UPGRADE, u->protocol);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "Upgrade");
	log_debug("api: GET %s -> 101 %s", url, u->protocol);
	ret = MHD_queue_response(c, MHD_HTTP_SWITCHING_PROTOCOLS, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result httpd_respond(struct httpd *h, struct MHD_Connection *c, const char *url,
				     const char *method, struct httpd_conn *hc)
{
	struct httpd_request req = {.method = method, .path = url, .conn = c};
	struct httpd_response resp = {0};
	const struct httpd_route *route;

	route = httpd_route_find(h, method, url, &resp);
	if (route && !httpd_parse_body(hc, &req, &resp))
		route->fn(h->ctx, &req, &resp);
	else if (h->nested_errors)
		httpd_nest_error(&resp);
	json_decref(req.body);
	if (resp.upgrade)
		return httpd_send_upgrade(h, c, url, hc, &resp);
	return httpd_send(c, url, method, &resp);
}

/* Headers are in: a stream route takes the request, answers it now, or passes. */
static enum MHD_Result httpd_stream_begin(struct httpd *h, struct MHD_Connection *c,
					  const char *url, const char *method,
					  struct httpd_conn *hc)
{
	struct httpd_request req = {.method = method, .path = url, .conn = c};
	struct httpd_response resp = {0};
	const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
	unsigned long long n = cl ? strtoull(cl, NULL, 10) : 0;

	hc->stream = h->stream->begin(h->ctx, &req, &resp);
	if (hc->stream || (!resp.status && !resp.body && !resp.text))
		return MHD_YES;
	if (n && n <= HTTPD_DRAIN_MAX) {
		hc->draining = true;
		hc->early = resp;
		return MHD_YES;
	}
	return httpd_send(c, url, method, &resp);
}

static enum MHD_Result httpd_stream_step(struct httpd *h, struct MHD_Connection *c, const char *url,
					 const char *method, struct httpd_conn *hc,
					 const char *data, size_t *size)
{
	struct httpd_request req = {.method = method, .path = url, .conn = c};
	struct httpd_response resp = {0};
	void *st = hc->stream;

	if (*size) {
		h->stream->data(st, data, *size);
		*size = 0;
		return MHD_YES;
	}
	hc->stream = NULL; /* end() frees it, whatever happens next */
	h->stream->end(st, &req, &resp);
	return httpd_send(c, url, method, &resp);
}

/*
 * MHD calls this once when the headers are in (we only set up), then once
 * per piece of body, then once more with nothing left to upload: that is
 * when the request is complete and gets its answer.
 */
static enum MHD_Result httpd_access(void *cls, struct MHD_Connection *c, const char *url,
				    const char *method, const char *version,
				    const char *upload_data, size_t *upload_data_size,
				    void **con_cls)
{
	struct httpd_conn *hc = *con_cls;
	struct httpd *h = cls;

	(void)version;
	if (!hc) {
		hc = calloc(1, sizeof(*hc));
		*con_cls = hc;
		if (hc)
			hc->max = h->body_max;
		if (hc && h->stream)
			return httpd_stream_begin(h, c, url, method, hc);
		return hc ? MHD_YES : MHD_NO;
	}
	if (hc->stream)
		return httpd_stream_step(h, c, url, method, hc, upload_data, upload_data_size);
	if (hc->draining) {
		if (!*upload_data_size) {
			hc->draining = false; /* httpd_send() takes the response */
			return httpd_send(c, url, method, &hc->early);
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (*upload_data_size) {
		httpd_conn_append(hc, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	return httpd_respond(cls, c, url, method, hc);
}

static void httpd_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			    enum MHD_RequestTerminationCode code)
{
	struct httpd_conn *hc = *con_cls;
	struct httpd *h = cls;

	(void)c;
	(void)code;
	if (hc && hc->stream)
		h->stream->abort(hc->stream);
	if (hc && hc->draining) {
		json_decref(hc->early.body);
		free(hc->early.text);
	}
	if (hc)
		httpd_upgrade_free(hc->upgrade);
	if (hc) {
		free(hc->buf);
		free(hc);
	}
	*con_cls = NULL;
}

static void httpd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[256];

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = 0;
	log_warn("api: %s", msg);
}

/* Refuses to replace anything but a socket: a typo must not delete a file. */
static int httpd_clear_path(const char *path, struct error *err)
{
	struct stat st;

	if (lstat(path, &st)) {
		if (errno == ENOENT)
			return 0;
		return error_set(err, errno, "%s: %s", path, strerror(errno));
	}
	if (!S_ISSOCK(st.st_mode))
		return error_set(err, EEXIST, "%s exists and is not a socket", path);
	if (unlink(path))
		return error_set(err, errno, "cannot remove the old socket %s: %s", path,
				 strerror(errno));
	return 0;
}

static int httpd_listen(const char *path, struct error *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return error_set(err, ENAMETOOLONG, "%s: longer than %zu characters", path,
				 sizeof(sa.sun_path) - 1);
	if (httpd_clear_path(path, err))
		return -1;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return error_set(err, errno, "socket: %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || chmod(path, 0600) ||
	    listen(fd, HTTPD_MAX_CONNECTIONS)) {
		error_set(err, errno, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* "HOST:PORT" (HOST may be [v6]) to a listening TCP socket. */
static int httpd_listen_tcp(const char *spec, unsigned int backlog, struct error *err)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *res;
	char host[256];
	const char *colon = strrchr(spec, ':');
	int fd, one = 1, rc;
	size_t hlen;

	if (!colon || colon == spec || !colon[1] || (size_t)(colon - spec) >= sizeof(host))
		return error_set(err, EINVAL, "tcp:%s: expected tcp:HOST:PORT", spec);
	memcpy(host, spec, colon - spec);
	host[colon - spec] = 0;
	hlen = strlen(host);
	if (hlen > 2 && host[0] == '[' && host[hlen - 1] == ']') {
		memmove(host, host + 1, hlen - 2);
		host[hlen - 2] = 0;
	}
	rc = getaddrinfo(host, colon + 1, &hints, &res);
	if (rc)
		return error_set(err, EINVAL, "tcp:%s: %s", spec, gai_strerror(rc));
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		freeaddrinfo(res);
		return error_set(err, errno, "socket: %s", strerror(errno));
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) || listen(fd, (int)backlog)) {
		error_set(err, errno, "tcp:%s: %s", spec, strerror(errno));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

/* On a server thread, as a connection starts and before anything is read from it. */
static void httpd_connection_notify(void *cls, struct MHD_Connection *c, void **socket_ctx,
				    enum MHD_ConnectionNotificationCode toe)
{
	static _Thread_local bool hooked;
	struct httpd *h = cls;

	(void)c;
	(void)socket_ctx;
	if (toe != MHD_CONNECTION_NOTIFY_STARTED || hooked || !h->thread_hook)
		return;
	hooked = true;
	h->thread_hook();
}

static int httpd_run(struct httpd *h, int fd, const struct httpd_opts *o, struct error *err)
{
	unsigned int max = o->max_connections ? o->max_connections : HTTPD_MAX_CONNECTIONS;
	/* MHD warns about a pool of size 0: only ask for one when there is one. */
	struct MHD_OptionItem pool[] = {
		{o->threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, o->threads, NULL},
		{MHD_OPTION_END, 0, NULL},
		{MHD_OPTION_END, 0, NULL},
		{MHD_OPTION_END, 0, NULL},
	};
	/*
	 * MHD_USE_AUTO: epoll on Linux. The default, select(), cannot watch a
	 * descriptor numbered past FD_SETSIZE (1024), and bunshind holds one
	 * pidfd per VMM: past ~1000 instances it dropped every new connection.
	 */
	unsigned int flags =
		MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG | MHD_ALLOW_UPGRADE;

	if (h->tls) {
		/* after the pool size, which may be an END that stops the list */
		struct MHD_OptionItem *t = o->threads > 1 ? &pool[1] : &pool[0];

		t[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0,
					       (void *)o->tls_cert_pem};
		t[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)o->tls_key_pem};
		flags |= MHD_USE_TLS;
	}
	/* The logger goes first: MHD logs its option parsing with whatever is set by then. */
	h->daemon = MHD_start_daemon(
		flags, 0, NULL, NULL, httpd_access, h, MHD_OPTION_EXTERNAL_LOGGER, httpd_log, h,
		MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_NOTIFY_COMPLETED, httpd_completed, h,
		MHD_OPTION_CONNECTION_LIMIT, max, MHD_OPTION_CONNECTION_TIMEOUT,
		HTTPD_IDLE_TIMEOUT_S, MHD_OPTION_NOTIFY_CONNECTION, httpd_connection_notify, h,
		MHD_OPTION_ARRAY, pool, MHD_OPTION_END);
	if (!h->daemon)
		return error_set(err, EIO, "cannot start the HTTP server");
	return 0;
}

struct httpd *httpd_start_opts(const char *listen, const struct httpd_opts *opts,
			       const struct httpd_route *routes, void *ctx, struct error *err)
{
	struct httpd *h = calloc(1, sizeof(*h));
	bool is_unix = !strncmp(listen, "unix:", 5);
	int fd;

	if (!h) {
		error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	h->routes = routes;
	h->ctx = ctx;
	h->nested_errors = opts->nested_errors;
	h->thread_hook = opts->thread_hook;
	h->stream = opts->stream;
	h->body_max = opts->body_max ?: HTTPD_BODY_MAX;
	/* The unix socket is reached only by who may open it: it stays plain HTTP. */
	h->tls = !is_unix && opts->tls_cert_pem && opts->tls_key_pem;
	pthread_mutex_init(&h->up_lock, NULL);
	pthread_cond_init(&h->up_cond, NULL);
	if (is_unix) {
		h->path = strdup(listen + 5);
		fd = h->path ? httpd_listen(h->path, err) : error_set(err, ENOMEM, "out of memory");
	} else if (!strncmp(listen, "tcp:", 4)) {
		fd = httpd_listen_tcp(listen + 4, HTTPD_MAX_CONNECTIONS, err);
	} else {
		fd = error_set(err, EINVAL, "%s: expected unix:PATH or tcp:HOST:PORT", listen);
	}
	if (fd >= 0 && httpd_run(h, fd, opts, err)) {
		error_wrap(err, "%s", listen);
		close(fd);
		if (is_unix)
			unlink(h->path);
		fd = -1;
	}
	if (fd < 0) {
		pthread_mutex_destroy(&h->up_lock);
		pthread_cond_destroy(&h->up_cond);
		free(h->path);
		free(h);
		return NULL;
	}
	return h;
}

struct httpd *httpd_start(const char *path, const struct httpd_route *routes, void *ctx,
			  struct error *err)
{
	return httpd_start_hooked(path, routes, ctx, NULL, err);
}

struct httpd *httpd_start_hooked(const char *path, const struct httpd_route *routes, void *ctx,
				 void (*thread_hook)(void), struct error *err)
{
	struct httpd_opts opts = {.thread_hook = thread_hook};
	char *listen;
	struct httpd *h;

	if (asprintf(&listen, "unix:%s", path) < 0) {
		error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	h = httpd_start_opts(listen, &opts, routes, ctx, err);
	free(listen);
	return h;
}

const char *httpd_header(const struct httpd_request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *httpd_query(const struct httpd_request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

void httpd_stop(struct httpd *h)
{
	int fd;

	if (!h)
		return;
	/* Upgraded connections first: MHD must not be stopped under them. */
	pthread_mutex_lock(&h->up_lock);
	h->stopping = true;
	while (h->upgraded)
		pthread_cond_wait(&h->up_cond, &h->up_lock);
	pthread_mutex_unlock(&h->up_lock);
	/* Quiescing hands the listening socket back, so it is closed exactly once, by us. */
	fd = MHD_quiesce_daemon(h->daemon);
	MHD_stop_daemon(h->daemon);
	if (fd >= 0)
		close(fd);
	if (h->path)
		unlink(h->path);
	pthread_mutex_destroy(&h->up_lock);
	pthread_cond_destroy(&h->up_cond);
	free(h->path);
	free(h);
}

/* ---- request fields ---- */

static const json_t *httpd_field(const json_t *obj, const char *name, bool required,
				 struct httpd_response *resp, int *ret)
{
	const json_t *v = obj ? json_object_get(obj, name) : NULL;

	*ret = 0;
	if (!v && required) {
		httpd_error(resp, MHD_HTTP_BAD_REQUEST, name, "%s is required", name);
		*ret = -1;
	}
	return v;
}

int httpd_field_u64(const json_t *obj, const char *name, bool required, uint64_t min, uint64_t max,
		    uint64_t *out, struct httpd_response *resp)
{
	int ret;
	const json_t *v = httpd_field(obj, name, required, resp, &ret);
	json_int_t n;

	if (!v)
		return ret;
	if (!json_is_integer(v)) {
		httpd_error(resp, MHD_HTTP_BAD_REQUEST, name, "%s must be an integer", name);
		return -1;
	}
	n = json_integer_value(v);
	if (n < 0 || (uint64_t)n < min || (uint64_t)n > max) {
		httpd_error(resp, MHD_HTTP_BAD_REQUEST, name,
			    "%s=%lld is out of range (%llu to %llu)", name, (long long)n,
			    (unsigned long long)min, (unsigned long long)max);
		return -1;
	}
	*out = (uint64_t)n;
	return 0;
}

int httpd_field_str(const json_t *obj, const char *name, bool required, const char **out,
		    struct httpd_response *resp)
{
	int ret;
	const json_t *v = httpd_field(obj, name, required, resp, &ret);

	if (!v)
		return ret;
	if (!json_is_string(v)) {
		httpd_error(resp, MHD_HTTP_BAD_REQUEST, name, "%s must be a string", name);
		return -1;
	}
	*out = json_string_value(v);
	return 0;
}

int httpd_field_bool(const json_t *obj, const char *name, bool required, bool *out,
		     struct httpd_response *resp)
{
	int ret;
	const json_t *v = httpd_field(obj, name, required, resp, &ret);

	if (!v)
		return ret;
	if (!json_is_boolean(v)) {
		httpd_error(resp, MHD_HTTP_BAD_REQUEST, name, "%s must be true or false", name);
		return -1;
	}
	*out = json_is_true(v);
	return 0;
}

int httpd_only_fields(const json_t *obj, const char *const *allowed, struct httpd_response *resp)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)obj, key, v)
	{
		const char *const *a = allowed;

		while (*a && strcmp(*a, key))
			a++;
		if (!*a) {
			httpd_error(resp, MHD_HTTP_BAD_REQUEST, key, "unknown field %s", key);
			return -1;
		}
	}
	return 0;
}
