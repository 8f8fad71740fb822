/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_DAEMON_API_H
#define BUNSHIN_DAEMON_API_H

#include "daemon.h"

/*
 * The /v1 API's request context: who asks (from the bearer token), the
 * path cut into segments, a store connection for the request's life.
 * Handlers answer through api_err() or by setting ctx->resp.
 */
#define API_SEGS_MAX 6

struct api_ctx {
	struct daemon *d;
	struct store *s;
	struct store_principal who;
	const struct httpd_request *req;
	struct httpd_response *resp;
	const char *seg[API_SEGS_MAX];
	int nseg;
	char target[128]; /* what the request acted on, for the audit log */
};

struct api_op {
	const char *method;
	const char *pattern; /* segments after /v1/, ':' for any one */
	void (*fn)(struct api_ctx *c);
};

__attribute__((format(printf, 5, 6))) void api_err(struct api_ctx *c, int status, const char *code,
						   const char *field, const char *fmt, ...);
/* Answers with the store's (or anyone's) failure: errno to status. */
void api_fail(struct api_ctx *c, int ret, const struct error *err, const char *field);
void api_ok(struct api_ctx *c, int status, json_t *body);

bool api_is_operator(const struct api_ctx *c);
/* 403 unless the caller may change things (not a viewer). */
bool api_need_writer(struct api_ctx *c);
bool api_need_operator(struct api_ctx *c);
/* The tenant the caller's lists are limited to: 0 (all) for the operator. */
int64_t api_scope(const struct api_ctx *c);
/* 400 unless NAME is a valid resource name (a letter, then letters, digits, '-', '_', '.'). */
bool api_valid_name(struct api_ctx *c, const char *field, const char *name);
/* Checks the body is an object holding only these fields. */
bool api_body(struct api_ctx *c, const char *const *allowed, bool required);

/* The audit log (?limit=N), all the caller may see or only about target ("instance 12"). */
void api_events(struct api_ctx *c, const char *target);

/* metrics.c: GET /metrics, and one answered request's status and latency. */
void metrics_show(struct api_ctx *c);
void metrics_observe(int status, double seconds);

/* For image.c's streamed upload, which answers outside the route table. */
bool api_stream_authenticate(struct api_ctx *c);
void api_stream_audit(struct api_ctx *c);

/* api_resources.c */
extern const struct api_op api_resource_ops[];

/* network.c: /v1/networks; an instance create's "network" (the default when absent). */
extern const struct api_op api_network_ops[];
int netd_instance_network(struct api_ctx *c, int64_t *network_id);
json_t *netd_instance_view(json_t *inst);
/* A tenant's networks go with it (the store cascades): their bridges, after. */
json_t *netd_tenant_bridges(struct api_ctx *c, const char *tenant);
void netd_bridges_gone(json_t *nets);

/* lifecycle.c: /v1/instances/ID/reboot and /resize. */
/*
 * api_resources.c: the instance the path names (seg[1], an id or a name),
 * as the caller may see it, with c->target set; NULL after answering (404:
 * another tenant's looks absent). The caller owns the reference.
 */
json_t *api_instance_lookup(struct api_ctx *c);
/* The instance as the API shows it: the store's row less bunshind's own fields, inst itself. */
json_t *api_instance_view(json_t *inst);
/* Answers status with instance id as it is now (its forwards included). */
void api_instance_answer(struct api_ctx *c, int64_t id, int status);
extern const struct api_op api_lifecycle_ops[];
/* console.c: GET /v1/instances/ID/console?follow=1 (a JSON chunk of the log from ?offset=N). */
void console_follow(struct api_ctx *c, int64_t id);
/* clone.c: POST /v1/instances/ID/clone. */
extern const struct api_op api_clone_ops[];
/* console_attach.c: GET /v1/instances/ID/console/attach, the interactive console (101). */
extern const struct api_op api_console_ops[];

/* forward.c: /v1/instances/ID/forwards; an instance's JSON gets its "forwards". */
extern const struct api_op api_forward_ops[];
json_t *fwd_attach(struct api_ctx *c, json_t *inst);

/* quota_move.c: POST /v1/quotas/move, capacity from one tenant to another in one step. */
extern const struct api_op api_quota_ops[];

/* server_image.c: POST /v1/instances/ID/image, a raw image of the instance's disk. */
extern const struct api_op api_server_image_ops[];
/* rebuild.c: POST /v1/instances/ID/rebuild, a stopped instance afresh from an image. */
extern const struct api_op api_rebuild_ops[];

#endif
