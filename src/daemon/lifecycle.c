// SPDX-License-Identifier: MIT
/*
 * An instance's reboot and resize: POST /v1/instances/ID/reboot and
 * POST /v1/instances/ID/resize.
 *
 * A soft reboot is the VMM's ctrl_alt_del: the VMM runs with --on-reboot
 * restart, so the guest reboots inside the same process. A hard reboot
 * stops the VMM (forced) and starts a new one. A resize changes the
 * flavor in the store (quota and capacity checked in that transaction);
 * a running instance is then stopped and started again at its new size,
 * because the VMM has no CPU or memory hotplug: online resize is not
 * there yet.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/log.h"
#include "api.h"
#include "supervisor.h"

#define LIFE_POLL_US	    50000
#define LIFE_FORCED_WAIT_MS 12000 /* the API's stop, then SIGKILL: 5 s each, and the reap */

static const char *life_s(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static int64_t life_i(const json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static int life_get(struct store *s, int64_t id, json_t **inst, struct error *err)
{
	char ref[24];

	snprintf(ref, sizeof(ref), "%lld", (long long)id);
	return STORE(s, instance_get, 0, ref, inst, err);
}

/* httpd's field readers answer {"error": "..."}: reword as ours. */
static bool life_field_ok(struct api_ctx *c, int ret)
{
	char m[256], f[64];

	if (!ret)
		return true;
	snprintf(m, sizeof(m), "%s", life_s(c->resp->body, "error") ?: "bad field");
	snprintf(f, sizeof(f), "%s", life_s(c->resp->body, "field") ?: "");
	api_err(c, 400, "invalid_request", f, "%s", m);
	return false;
}

/* Answers with the instance as it is now, in the API's view of it. */
static void life_answer(struct api_ctx *c, int64_t id, int status)
{
	struct error err = {0};
	json_t *inst;
	int ret = life_get(c->s, id, &inst, &err);

	if (ret)
		return api_fail(c, ret, &err, NULL);
	api_ok(c, status, api_instance_view(inst));
}

/* Waits for the reaper to record the VMM's end: 0, or -ETIMEDOUT. */
static int life_wait_stopped(struct daemon *d, struct store *s, int64_t id, int timeout_ms)
{
	for (int waited = 0; waited <= timeout_ms; waited += LIFE_POLL_US / 1000) {
		struct error err = {0};
		json_t *inst = NULL;
		bool stopped;

		if (life_get(s, id, &inst, &err))
			return -ENOENT; /* deleted meanwhile */
		stopped = !strcmp(life_s(inst, "state"), ST_STOPPED) ||
			  !strcmp(life_s(inst, "state"), ST_ERROR);
		json_decref(inst);
		if (stopped)
			return 0;
		if (sup_quitting(d->sup))
			return -ECANCELED;
		usleep(LIFE_POLL_US);
	}
	return -ETIMEDOUT;
}

/* STOPPED (or ERROR) to STARTING, and a new VMM; a failed one leaves the instance ERROR. */
static int life_start(struct daemon *d, struct store *s, int64_t id, struct error *err)
{
	json_t *inst = NULL;
	int ret = life_get(s, id, &inst, err);
	const char *state = ret ? NULL : life_s(inst, "state");

	ret = ret ?: STORE(s, instance_set_state, id, state, ST_STARTING, NULL, err);
	ret = ret ?: STORE(s, instance_count_restart, id, true, err);
	json_decref(inst);
	inst = NULL;
	ret = ret ?: life_get(s, id, &inst, err);
	ret = ret ?: supervisor_spawn(d, s, inst, err);
	json_decref(inst);
	return ret;
}

/* ---- reboot ---- */

static void life_reboot_soft(struct api_ctx *c, json_t *inst)
{
	struct error err = {0};

	if (strcmp(life_s(inst, "state"), ST_RUNNING))
		return api_err(c, 409, "conflict", NULL, "the instance is %s, not running",
			       life_s(inst, "state"));
	if (supervisor_vmm_action(inst, "ctrl_alt_del", &err))
		return api_err(c, 502, "vmm_error", NULL, "%s", err.msg);
	life_answer(c, life_i(inst, "id"), 202);
}

/* Forced stop, then a new VMM, before answering: a few seconds at most. */
static void life_reboot_hard(struct api_ctx *c, json_t *inst)
{
	const char *state = life_s(inst, "state");
	int64_t id = life_i(inst, "id");
	struct error err = {0};
	int ret;

	if (strcmp(state, ST_RUNNING) && strcmp(state, ST_PAUSED))
		return api_err(c, 409, "conflict", NULL, "the instance is %s, not running", state);
	ret = supervisor_kill_wait(c->d, id, &err);
	if (!ret && (ret = life_wait_stopped(c->d, c->s, id, LIFE_FORCED_WAIT_MS)))
		error_set(&err, -ret, "the old VMM did not end: %s", strerror(-ret));
	ret = ret ?: life_start(c->d, c->s, id, &err);
	if (ret == -EAGAIN) /* someone else started or deleted it meanwhile */
		return api_fail(c, ret, &err, NULL);
	if (ret)
		log_warn("instance %lld: hard reboot: %s", (long long)id, err.msg);
	/* A failed start is the instance's ERROR and why, which the answer shows. */
	life_answer(c, id, 200);
}

static void life_reboot(struct api_ctx *c)
{
	static const char *const fields[] = {"hard", NULL};
	bool hard = false;
	json_t *inst;

	if (!api_need_writer(c) || !api_body(c, fields, false) ||
	    (c->req->body &&
	     !life_field_ok(c, httpd_field_bool(c->req->body, "hard", false, &hard, c->resp))) ||
	    !(inst = api_instance_lookup(c)))
		return;
	if (hard)
		life_reboot_hard(c, inst);
	else
		life_reboot_soft(c, inst);
	json_decref(inst);
}

/* ---- resize ---- */

struct life_job {
	struct daemon *d;
	int64_t id, tenant_id;
	char flavor[STORE_NAME_MAX + 1];
};

/* After the stop a resize began: the new VMM, at the new size. */
static void *life_resize_thread(void *arg)
{
	struct life_job *j = arg;
	struct daemon *d = j->d;
	struct store *s = pool_get(d->pool);
	int wait_ms = (int)d->opts.stop_timeout_s * 1000 + LIFE_FORCED_WAIT_MS;
	struct error err = {0};
	char result[400];
	int ret = life_wait_stopped(d, s, j->id, wait_ms);

	if (ret)
		error_set(&err, -ret, "the old VMM did not end: %s", strerror(-ret));
	ret = ret ?: life_start(d, s, j->id, &err);
	if (ret)
		snprintf(result, sizeof(result), "not restarted after the resize to %s: %s",
			 j->flavor, err.msg);
	else
		snprintf(result, sizeof(result), "restarted with flavor %s", j->flavor);
	if (ret != -ENOENT && ret != -ECANCELED)
		sup_event(s, j->tenant_id, j->id, "bunshind", "resize", result);
	if (ret)
		log_warn("instance %lld: %s", (long long)j->id, result);
	pool_put(d->pool, s);
	sup_helper_leave(d->sup);
	free(j);
	return NULL;
}

static int life_restart_later(struct api_ctx *c, const json_t *inst, const char *flavor,
			      struct error *err)
{
	struct life_job *j = calloc(1, sizeof(*j));
	pthread_t t;
	int ret;

	if (!j)
		return error_set(err, ENOMEM, "out of memory");
	*j = (struct life_job){c->d, life_i(inst, "id"), life_i(inst, "tenant_id"), ""};
	snprintf(j->flavor, sizeof(j->flavor), "%s", flavor);
	if (!sup_helper_enter(c->d->sup)) {
		free(j);
		return error_set(err, ECANCELED, "bunshind is shutting down");
	}
	ret = supervisor_stop_async(c->d, j->id, false, err);
	if (!ret && pthread_create(&t, NULL, life_resize_thread, j))
		ret = error_set(err, EAGAIN, "cannot start a thread");
	if (ret) {
		sup_helper_leave(c->d->sup);
		free(j);
		return ret;
	}
	pthread_detach(t);
	return 0;
}

static void life_resize(struct api_ctx *c)
{
	static const char *const fields[] = {"flavor", NULL};
	const char *name, *state;
	struct store_capacity cap;
	struct error err = {0};
	json_t *inst, *f = NULL;
	bool running;
	int ret;

	if (!api_need_writer(c) || !api_body(c, fields, true) ||
	    !life_field_ok(c, httpd_field_str(c->req->body, "flavor", true, &name, c->resp)) ||
	    !(inst = api_instance_lookup(c)))
		return;
	state = life_s(inst, "state");
	running = !strcmp(state, ST_RUNNING) || !strcmp(state, ST_PAUSED);
	/* the flavors the instance's tenant may use, whoever asks */
	ret = STORE(c->s, flavor_get, life_i(inst, "tenant_id"), name, &f, &err);
	if (ret) {
		api_fail(c, ret, &err, "flavor");
	} else if (!running && strcmp(state, ST_STOPPED) && strcmp(state, ST_ERROR)) {
		api_err(c, 409, "conflict", NULL,
			"the instance is %s: resize it when it is"
			" running or stopped",
			state);
	} else if (!strcmp(life_s(inst, "flavor"), name)) {
		api_err(c, 409, "conflict", "flavor", "the instance's flavor is already %s", name);
	} else {
		daemon_capacity(c->d, &cap);
		ret = STORE(c->s, instance_resize, life_i(inst, "id"), life_i(f, "id"), &cap, &err);
		if (!ret && running)
			ret = life_restart_later(c, inst, name, &err);
		if (ret)
			api_fail(c, ret, &err, ret == -EDQUOT || ret == -ENOSPC ? "flavor" : NULL);
		else
			life_answer(c, life_i(inst, "id"), running ? 202 : 200);
	}
	json_decref(f);
	json_decref(inst);
}

const struct api_op api_lifecycle_ops[] = {
	{"POST", "instances/:/reboot", life_reboot},
	{"POST", "instances/:/resize", life_resize},
	{NULL, NULL, NULL},
};
