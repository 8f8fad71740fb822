// SPDX-License-Identifier: MIT
/*
 * POST /v1/instances/ID/rebuild {"image": "NAME"} (OpenStack's `server
 * rebuild`): a stopped instance boots afresh from an image (its own by
 * default, or another it may see), keeping its name, id, flavor, port
 * (address and MAC), forwards, key and user data. Its disk starts again
 * as a new overlay over the image: every layer of its old chain goes from
 * its directory (frozen layers its clones share are only unlinked here,
 * they live on in the clones'), and a clone's snapshot goes too, so the
 * next start is a cold boot.
 *
 * Only a stopped (or failed) instance: a running one is stopped first by
 * whoever asks (409 says so), so nothing writes the chain while it goes.
 * Nor while an image of its disk is being saved (the copy reads it).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../common/log.h"
#include "api.h"
#include "supervisor.h"

static const char *rb_s(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* The image to boot, as the caller may see it: bootable, or answered. */
static json_t *rb_image(struct api_ctx *c, const json_t *inst)
{
	const char *name = rb_s(inst, "image");
	struct error err = {0};
	json_t *im = NULL;
	int ret;

	if (c->req->body && httpd_field_str(c->req->body, "image", false, &name, c->resp))
		return NULL;
	ret = STORE(c->s, image_get, c->who.tenant_id, name, &im, &err);
	ret = ret ?: disk_check(im, &err);
	if (ret) {
		json_decref(im);
		api_fail(c, ret, &err, "image");
		return NULL;
	}
	return im;
}

/* The new image's id into the row, the old chain out of the directory, on the record. */
static void rb_run(struct api_ctx *c, const json_t *inst, const json_t *im)
{
	int64_t id = json_integer_value(json_object_get(inst, "id"));
	struct error err = {0};
	char result[160];
	int ret = STORE(c->s, instance_rebuild, id, json_integer_value(json_object_get(im, "id")),
			&err);

	if (ret)
		return api_fail(c, ret, &err, NULL);
	dlayer_reset(c->d, id);
	snprintf(result, sizeof(result), "rebuilt from image %s", rb_s(im, "name"));
	sup_event(c->s, json_integer_value(json_object_get(inst, "tenant_id")), id, c->who.user,
		  "rebuild", result);
	log_info("instance %lld: %s", (long long)id, result);
	api_instance_answer(c, id, 200);
}

static void rb_post(struct api_ctx *c)
{
	static const char *const fields[] = {"image", NULL};
	const char *state;
	json_t *inst, *im;

	if (!api_need_writer(c) || !api_body(c, fields, false) || !(inst = api_instance_lookup(c)))
		return;
	state = rb_s(inst, "state");
	if (strcmp(state, ST_STOPPED) && strcmp(state, ST_ERROR))
		api_err(c, 409, "conflict", NULL,
			"the instance is %s: stop it first, only a stopped instance is rebuilt",
			state);
	else if (simg_holds(json_integer_value(json_object_get(inst, "id"))))
		api_err(c, 409, "conflict", NULL,
			"an image of the instance's disk is being saved: rebuild it when the image "
			"is active");
	else if ((im = rb_image(c, inst))) {
		rb_run(c, inst, im);
		json_decref(im);
	}
	json_decref(inst);
}

const struct api_op api_rebuild_ops[] = {
	{"POST", "instances/:/rebuild", rb_post},
	{NULL, NULL, NULL},
};
