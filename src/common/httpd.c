// SPDX-License-Identifier: MIT
#include <errno.h>
#include <microhttpd.h>
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

struct httpd {
	struct MHD_Daemon *daemon;
	const struct httpd_route *routes;
	void *ctx;
	char *path;
	void (*thread_hook)(void); /* called once on the server's thread, or NULL */
};

/* One request's body as it arrives, in pieces. */
struct httpd_conn {
	char *buf;
	size_t len;
	bool too_big;
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

	if (hc->too_big || hc->len + len > HTTPD_BODY_MAX) {
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

/* The route for (method, path), or why there is none (404 or 405). */
static const struct httpd_route *httpd_route_find(const struct httpd *h, const char *method,
						  const char *path, struct httpd_response *resp)
{
	bool path_known = false;

	for (const struct httpd_route *r = h->routes; r->path; r++) {
		if (strcmp(r->path, path))
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
			    "request body larger than %d bytes", HTTPD_BODY_MAX);
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

static enum MHD_Result httpd_respond(struct httpd *h, struct MHD_Connection *c, const char *url,
				     const char *method, const struct httpd_conn *hc)
{
	struct httpd_request req = {.method = method, .path = url};
	struct httpd_response resp = {0};
	const struct httpd_route *route;
	struct MHD_Response *r;
	enum MHD_Result ret;

	route = httpd_route_find(h, method, url, &resp);
	if (route && !httpd_parse_body(hc, &req, &resp))
		route->fn(h->ctx, &req, &resp);
	json_decref(req.body);
	r = httpd_build(&resp);
	json_decref(resp.body);
	free(resp.text);
	if (!r)
		return MHD_NO; /* out of memory: MHD drops the connection */
	log_debug("api: %s %s -> %d", method, url, resp.status);
	ret = MHD_queue_response(c, (unsigned int)resp.status, r);
	MHD_destroy_response(r);
	return ret;
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

	(void)version;
	if (!hc) {
		hc = calloc(1, sizeof(*hc));
		*con_cls = hc;
		return hc ? MHD_YES : MHD_NO;
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

	(void)cls;
	(void)c;
	(void)code;
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

/* On the server's thread, as a connection starts and before anything is read from it. */
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

struct httpd *httpd_start(const char *path, const struct httpd_route *routes, void *ctx,
			  struct error *err)
{
	return httpd_start_hooked(path, routes, ctx, NULL, err);
}

struct httpd *httpd_start_hooked(const char *path, const struct httpd_route *routes, void *ctx,
				 void (*thread_hook)(void), struct error *err)
{
	struct httpd *h = calloc(1, sizeof(*h));
	int fd;

	if (!h || !(h->path = strdup(path))) {
		free(h);
		error_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	h->routes = routes;
	h->ctx = ctx;
	h->thread_hook = thread_hook;
	fd = httpd_listen(path, err);
	if (fd < 0) {
		free(h->path);
		free(h);
		return NULL;
	}
	/* The logger goes first: MHD logs its option parsing with whatever is set by then. */
	h->daemon = MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG, 0, NULL, NULL,
		httpd_access, h, MHD_OPTION_EXTERNAL_LOGGER, httpd_log, h, MHD_OPTION_LISTEN_SOCKET,
		fd, MHD_OPTION_NOTIFY_COMPLETED, httpd_completed, h, MHD_OPTION_CONNECTION_LIMIT,
		HTTPD_MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT, HTTPD_IDLE_TIMEOUT_S,
		MHD_OPTION_NOTIFY_CONNECTION, httpd_connection_notify, h, MHD_OPTION_END);
	if (!h->daemon) {
		error_set(err, EIO, "%s: cannot start the HTTP server", path);
		close(fd);
		unlink(path);
		free(h->path);
		free(h);
		return NULL;
	}
	return h;
}

void httpd_stop(struct httpd *h)
{
	int fd;

	if (!h)
		return;
	/* Quiescing hands the listening socket back, so it is closed exactly once, by us. */
	fd = MHD_quiesce_daemon(h->daemon);
	MHD_stop_daemon(h->daemon);
	if (fd >= 0)
		close(fd);
	unlink(h->path);
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
