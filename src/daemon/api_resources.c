// SPDX-License-Identifier: MIT
/* The /v1 API's flavors, images and instances. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/log.h"
#include "api.h"
#include "meta.h"
#include "firewall.h"

#define API_CONSOLE_MAX (64 * 1024) /* the console's tail a GET returns */

static const char *api_s(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static int64_t api_i(const json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

/* httpd's readers answer {"error": "..."}: reword as ours. */
static bool api_fix(struct api_ctx *c, int ret)
{
	char m[256], f[64];

	if (!ret)
		return true;
	snprintf(m, sizeof(m), "%s", api_s(c->resp->body, "error") ?: "bad field");
	snprintf(f, sizeof(f), "%s", api_s(c->resp->body, "field") ?: "");
	api_err(c, 400, "invalid_request", f, "%s", m);
	return false;
}

/* An optional "tenant" field (operator only): its id, 0 for public; -1 after answering. */
static int64_t api_owner(struct api_ctx *c)
{
	const char *tenant = NULL;
	struct error err = {0};
	json_t *t;
	int64_t id;
	int ret;

	if (!api_fix(c, httpd_field_str(c->req->body, "tenant", false, &tenant, c->resp)))
		return -1;
	if (!tenant)
		return 0;
	ret = STORE(c->s, tenant_get, tenant, &t, &err);
	if (ret) {
		api_fail(c, ret, &err, "tenant");
		return -1;
	}
	id = api_i(t, "id");
	json_decref(t);
	return id;
}

/* ---- flavors ---- */

static void api_flavor_list(struct api_ctx *c)
{
	struct error err = {0};
	json_t *out;
	int ret = STORE(c->s, flavor_list, api_scope(c), &out, &err);

	if (ret)
		return api_fail(c, ret, &err, NULL);
	api_ok(c, 200, out);
}

static void api_flavor_show(struct api_ctx *c)
{
	struct error err = {0};
	json_t *out;
	int ret = STORE(c->s, flavor_get, api_scope(c), c->seg[1], &out, &err);

	if (ret)
		return api_fail(c, ret, &err, NULL);
	api_ok(c, 200, out);
}

static void api_flavor_create(struct api_ctx *c)
{
	static const char *const fields[] = {"name",	 "vcpus",  "ram_mib",
					     "disk_gib", "tenant", NULL};
	struct store_flavor_new f = {0};
	uint64_t vcpus, ram, disk = 0;
	struct error err = {0};
	json_t *out;
	int64_t id;
	int ret;

	if (!api_need_operator(c) || !api_body(c, fields, true) ||
	    !api_fix(c, httpd_field_str(c->req->body, "name", true, &f.name, c->resp)) ||
	    !api_valid_name(c, "name", f.name) ||
	    !api_fix(c, httpd_field_u64(c->req->body, "vcpus", true, 1, 255, &vcpus, c->resp)) ||
	    !api_fix(c,
		     httpd_field_u64(c->req->body, "ram_mib", true, 4, 1 << 24, &ram, c->resp)) ||
	    !api_fix(c,
		     httpd_field_u64(c->req->body, "disk_gib", false, 0, 1 << 20, &disk, c->resp)))
		return;
	if (ram % 2)
		return api_err(c, 400, "invalid_request", "ram_mib",
			       "ram_mib must be a multiple of 2 (the VMM's granularity)");
	f.tenant_id = api_owner(c);
	if (f.tenant_id < 0)
		return;
	f.vcpus = (int64_t)vcpus;
	f.ram_mib = (int64_t)ram;
	f.disk_gib = (int64_t)disk;
	snprintf(c->target, sizeof(c->target), "flavor %s", f.name);
	ret = STORE(c->s, flavor_create, &f, &id, &err);
	if (!ret)
		ret = STORE(c->s, flavor_get, f.tenant_id ? f.tenant_id : 0, f.name, &out, &err);
	if (ret)
		return api_fail(c, ret, &err, "name");
	api_ok(c, 201, out);
}

/*
 * The flavor or image named in the path, as the operator means it: the
 * public one, or with ?tenant=NAME that tenant's own. Its id (*row its
 * row), or 0 after answering.
 */
static int64_t api_owned_id(struct api_ctx *c, bool image, json_t **row)
{
	const char *tenant = httpd_query(c->req, "tenant");
	struct error err = {0};
	json_t *list = NULL, *r;
	int64_t id = 0;
	size_t i;
	int ret;

	*row = NULL;
	ret = image ? STORE(c->s, image_list, 0, &list, &err)
		    : STORE(c->s, flavor_list, 0, &list, &err);
	if (ret) {
		api_fail(c, ret, &err, NULL);
		return 0;
	}
	json_array_foreach(list, i, r)
	{
		const char *owner = api_s(r, "tenant");

		if (!id && !strcmp(api_s(r, "name"), c->seg[1]) &&
		    (tenant ? owner && !strcmp(owner, tenant) : !owner)) {
			id = api_i(r, "id");
			*row = json_incref(r);
		}
	}
	json_decref(list);
	if (!id)
		api_err(c, 404, "not_found", NULL, "no such %s", image ? "image" : "flavor");
	return id;
}

static void api_flavor_delete(struct api_ctx *c)
{
	struct error err = {0};
	json_t *f;
	int64_t id;
	int ret;

	if (!api_need_operator(c))
		return;
	snprintf(c->target, sizeof(c->target), "flavor %s", c->seg[1]);
	id = api_owned_id(c, false, &f);
	json_decref(f);
	if (!id)
		return;
	ret = STORE(c->s, flavor_delete, id, &err);
	if (ret)
		return api_fail(c, ret, &err, NULL);
	api_ok(c, 204, NULL);
}

/* ---- images ---- */

static json_t *api_image_view(json_t *im)
{
	json_object_del(im, "path"); /* a host path is the operator's business */
	json_object_del(im, "initrd_path");
	return im;
}

static void api_image_list(struct api_ctx *c)
{
	struct error err = {0};
	json_t *out, *im;
	size_t i;
	int ret = STORE(c->s, image_list, api_scope(c), &out, &err);

	if (ret)
		return api_fail(c, ret, &err, NULL);
	if (!api_is_operator(c))
		json_array_foreach(out, i, im) api_image_view(im);
	api_ok(c, 200, out);
}

static void api_image_show(struct api_ctx *c)
{
	struct error err = {0};
	json_t *out;
	int ret = STORE(c->s, image_get, api_scope(c), c->seg[1], &out, &err);

	if (ret)
		return api_fail(c, ret, &err, NULL);
	api_ok(c, 200, api_is_operator(c) ? out : api_image_view(out));
}

/*
 * Copies the file into STATE_DIR/images under a temporary name, then
 * renames it: a failed or interrupted import leaves no half image with a
 * real name behind. Hashing reads the copy, so the checksum is of what
 * instances will boot.
 */
int daemon_image_copy(const struct daemon *d, const char *src, const char *name, char *dst,
		      size_t size, char sha[AUTH_SHA256_HEX], int64_t *bytes, struct error *err)
{
	char tmp[4200];
	struct stat st;
	bool converted;
	int in, out, ret = 0;
	ssize_t n;

	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return error_set(err, errno == ENOENT ? EINVAL : errno, "%s: %s", src,
				 strerror(errno));
	if (fstat(in, &st) || !S_ISREG(st.st_mode)) {
		close(in);
		return error_set(err, EINVAL, "%s is not a regular file", src);
	}
	snprintf(tmp, sizeof(tmp), "%s/images/.import-XXXXXX", d->opts.state_dir);
	out = mkostemp(tmp, O_CLOEXEC);
	if (out < 0) {
		close(in);
		return error_set(err, errno, "%s: %s", tmp, strerror(errno));
	}
	while ((n = copy_file_range(in, NULL, out, NULL, 1 << 30, 0)) > 0)
		;
	if (n < 0 || fsync(out))
		ret = error_set(err, errno, "copying %s: %s", src, strerror(errno));
	close(in);
	close(out);
	if (ret) {
		unlink(tmp);
		return ret;
	}
	/* A qcow2 file becomes raw there: hashing follows, so the checksum is of what boots. */
	return dimage_finish(d, tmp, sizeof(tmp), name, dst, size, sha, bytes, false, &converted,
			     err);
}

static void api_image_create(struct api_ctx *c)
{
	static const char *const fields[] = {"name",   "path",	 "kind",   "cmdline",
					     "tenant", "kernel", "initrd", NULL};
	struct store_image_new im = {.kind = "raw"};
	char dst[4200], sha[AUTH_SHA256_HEX], idst[4200] = "", isha[AUTH_SHA256_HEX];
	const char *src, *kernel = NULL, *initrd = NULL;
	struct error err = {0};
	json_t *out;
	int64_t id;
	int ret;

	if (!api_need_operator(c) || !api_body(c, fields, true) ||
	    !api_fix(c, httpd_field_str(c->req->body, "name", true, &im.name, c->resp)) ||
	    !api_valid_name(c, "name", im.name) ||
	    !api_fix(c, httpd_field_str(c->req->body, "path", true, &src, c->resp)) ||
	    !api_fix(c, httpd_field_str(c->req->body, "kind", false, &im.kind, c->resp)) ||
	    !api_fix(c, httpd_field_str(c->req->body, "cmdline", false, &im.cmdline, c->resp)) ||
	    !api_fix(c, httpd_field_str(c->req->body, "kernel", false, &kernel, c->resp)) ||
	    !api_fix(c, httpd_field_str(c->req->body, "initrd", false, &initrd, c->resp)))
		return;
	if (strcmp(im.kind, "raw") && strcmp(im.kind, "kernel"))
		return api_err(c, 400, "invalid_request", "kind", "kind must be raw or kernel");
	if (src[0] != '/')
		return api_err(c, 400, "invalid_request", "path", "path must be absolute");
	if (initrd && strcmp(im.kind, "kernel"))
		return api_err(c, 400, "invalid_request", "initrd",
			       "an initrd belongs to a kernel image (a raw image boots with its"
			       " kernel image's)");
	im.tenant_id = api_owner(c);
	if (im.tenant_id < 0)
		return;
	snprintf(c->target, sizeof(c->target), "image %s", im.name);
	ret = dboot_kernel_ref(c->s, im.tenant_id, im.kind, kernel, &im.kernel_id, &err);
	if (ret)
		return api_fail(c, ret, &err, "kernel");
	if (initrd) {
		ret = dboot_initrd_copy(c->d, initrd, im.name, idst, sizeof(idst), isha,
					&im.initrd_size, &err);
		if (ret == -EFBIG)
			return api_err(c, 413, "too_large", "initrd", "%s", err.msg);
		if (ret)
			return api_fail(c, ret, &err, "initrd");
		im.initrd_path = idst;
		im.initrd_sha256 = isha;
	}
	ret = daemon_image_copy(c->d, src, im.name, dst, sizeof(dst), sha, &im.size, &err);
	if (ret) {
		if (idst[0])
			unlink(idst);
		if (ret == -EFBIG) /* a qcow2 image larger than --image-max-size once raw */
			return api_err(c, 413, "too_large", "path", "%s", err.msg);
		return api_fail(c, ret, &err, "path");
	}
	im.path = dst;
	im.sha256 = sha;
	ret = STORE(c->s, image_create, &im, &id, &err);
	if (!ret)
		ret = STORE(c->s, image_get, im.tenant_id, im.name, &out, &err);
	if (ret) {
		unlink(dst);
		if (idst[0])
			unlink(idst);
		return api_fail(c, ret, &err, "name");
	}
	api_ok(c, 201, out);
}

static void api_image_delete(struct api_ctx *c)
{
	struct error err = {0};
	char path[4200], initrd[4200];
	json_t *im;
	int64_t id;
	int ret;

	if (!api_need_operator(c))
		return;
	snprintf(c->target, sizeof(c->target), "image %s", c->seg[1]);
	id = api_owned_id(c, true, &im);
	if (!id) {
		json_decref(im);
		return;
	}
	if (strcmp(api_s(im, "status") ?: "active", "active")) {
		/* server_image.c's copy is writing its file: it removes it on failure */
		json_decref(im);
		return api_err(c, 409, "conflict", NULL, "image %s is still being saved",
			       c->seg[1]);
	}
	snprintf(path, sizeof(path), "%s", api_s(im, "path"));
	snprintf(initrd, sizeof(initrd), "%s", api_s(im, "initrd_path") ?: "");
	json_decref(im);
	ret = STORE(c->s, image_delete, id, &err);
	if (ret)
		return api_fail(c, ret, &err, NULL);
	/* The row went first: a file without a row is garbage, a row without a file a lie. */
	if (unlink(path))
		log_warn("%s: %s", path, strerror(errno));
	if (initrd[0] && unlink(initrd))
		log_warn("%s: %s", initrd, strerror(errno));
	api_ok(c, 204, NULL);
}

/* ---- instances ---- */

json_t *api_instance_view(json_t *inst)
{
	static const char *const internal[] = {
		"image_path",  "image_cmdline",	 "pid_start",	"api_sock", "tenant_id",
		"kernel_path", "kernel_cmdline", "initrd_path", "disk_top", "disk_layers"};

	for (size_t i = 0; i < sizeof(internal) / sizeof(internal[0]); i++)
		json_object_del(inst, internal[i]);
	return netd_instance_view(inst);
}

static void api_instance_list(struct api_ctx *c)
{
	struct error err = {0};
	json_t *out, *inst;
	size_t i;
	int ret = STORE(c->s, instance_list, api_scope(c), &out, &err);

	if (ret)
		return api_fail(c, ret, &err, NULL);
	json_array_foreach(out, i, inst) api_instance_view(inst);
	api_ok(c, 200, out);
}

json_t *api_instance_lookup(struct api_ctx *c)
{
	struct error err = {0};
	json_t *inst;
	int ret = STORE(c->s, instance_get, api_scope(c), c->seg[1], &inst, &err);

	snprintf(c->target, sizeof(c->target), "instance %s", c->seg[1]);
	if (ret) {
		api_fail(c, ret, &err, NULL);
		return NULL;
	}
	snprintf(c->target, sizeof(c->target), "instance %lld", (long long)api_i(inst, "id"));
	return inst;
}

void api_instance_answer(struct api_ctx *c, int64_t id, int status)
{
	struct error err = {0};
	char ref[24];
	json_t *inst;
	int ret;

	snprintf(ref, sizeof(ref), "%lld", (long long)id);
	ret = STORE(c->s, instance_get, 0, ref, &inst, &err);
	if (ret)
		return api_fail(c, ret, &err, NULL);
	api_ok(c, status, fwd_attach(c, api_instance_view(inst)));
}

static void api_instance_show(struct api_ctx *c)
{
	json_t *inst = api_instance_lookup(c);

	if (inst)
		api_ok(c, 200, fwd_attach(c, api_instance_view(inst)));
}

/* Looks up the flavor and image a create names; false after answering. */
static bool api_instance_refs(struct api_ctx *c, const char *flavor, const char *image,
			      int64_t *fid, int64_t *iid)
{
	struct error err = {0};
	json_t *f = NULL, *im = NULL;
	int ret = STORE(c->s, flavor_get, c->who.tenant_id, flavor, &f, &err);

	if (ret) {
		api_fail(c, ret, &err, "flavor");
		return false;
	}
	ret = STORE(c->s, image_get, c->who.tenant_id, image, &im, &err);
	if (ret) {
		json_decref(f);
		api_fail(c, ret, &err, "image");
		return false;
	}
	*fid = api_i(f, "id");
	*iid = api_i(im, "id");
	ret = disk_check(im, &err);
	json_decref(f);
	json_decref(im);
	if (ret)
		api_fail(c, ret, &err, "image");
	return !ret;
}

/* Starts instance id's VMM: a cold boot, or (restore, a directory of its own) a restore. */
static void api_instance_boot(struct api_ctx *c, int64_t id, const char *restore)
{
	struct error err = {0};
	char ref[24];
	json_t *inst;

	snprintf(ref, sizeof(ref), "%lld", (long long)id);
	if (STORE(c->s, instance_get, 0, ref, &inst, &err))
		return;
	if (restore)
		json_object_set_new(inst, "restore", json_string(restore));
	/* A failed boot is recorded in the instance (ERROR and why), which the answer shows. */
	if (supervisor_spawn(c->d, c->s, inst, &err))
		log_warn("instance %lld: %s", (long long)id, err.msg);
	json_decref(inst);
}

static void api_instance_create(struct api_ctx *c)
{
	static const char *const fields[] = {"name",  "flavor",		"image",
					     "start", "restart_policy", "network",
					     "key",   "user_data",	NULL};
	struct store_instance_new in = {.tenant_id = c->who.tenant_id};
	const char *flavor, *image;
	struct store_capacity cap;
	struct error err = {0};
	bool start = true;
	int64_t id, network_id = 0;
	struct store_instance_meta meta = {0};
	json_t *key = NULL;
	int ret;

	if (!api_need_writer(c) || !api_body(c, fields, true) ||
	    !api_fix(c, httpd_field_str(c->req->body, "name", true, &in.name, c->resp)) ||
	    !api_valid_name(c, "name", in.name) ||
	    !api_fix(c, httpd_field_str(c->req->body, "flavor", true, &flavor, c->resp)) ||
	    !api_fix(c, httpd_field_str(c->req->body, "image", true, &image, c->resp)) ||
	    !api_fix(c, httpd_field_bool(c->req->body, "start", false, &start, c->resp)) ||
	    !api_fix(c, httpd_field_str(c->req->body, "restart_policy", false, &in.restart_policy,
					c->resp)))
		return;
	if (in.restart_policy && strcmp(in.restart_policy, "never") &&
	    strcmp(in.restart_policy, "on-failure") && strcmp(in.restart_policy, "always"))
		return api_err(c, 400, "invalid_request", "restart_policy",
			       "restart_policy must be never, on-failure or always");
	snprintf(c->target, sizeof(c->target), "instance %s", in.name);
	if (!api_instance_refs(c, flavor, image, &in.flavor_id, &in.image_id) ||
	    !meta_instance_fields(c, &meta, &key) || netd_instance_network(c, &network_id)) {
		json_decref(key);
		return;
	}
	in.state = start ? ST_STARTING : ST_STOPPED;
	daemon_capacity(c->d, &cap);
	ret = STORE(c->s, instance_create_meta, &in, &cap, network_id, &meta, &id, &err);
	json_decref(key);
	if (ret)
		return api_fail(c, ret, &err, ret == -EEXIST ? "name" : NULL);
	snprintf(c->target, sizeof(c->target), "instance %lld", (long long)id);
	fw_port_added(c->d, c->s, id); /* its port's elements, before its tap can exist */
	if (start)
		api_instance_boot(c, id, NULL);
	api_instance_answer(c, id, 201);
}

static void api_instance_delete(struct api_ctx *c)
{
	struct error err = {0};
	json_t *inst, *fw;
	int64_t id;
	int ret;

	if (!api_need_writer(c) || !(inst = api_instance_lookup(c)))
		return;
	id = api_i(inst, "id");
	if (api_i(inst, "pid") && strcmp(api_s(inst, "state"), ST_STOPPED) &&
	    strcmp(api_s(inst, "state"), ST_ERROR))
		supervisor_kill_wait(c->d, id, &err);
	json_decref(inst);
	fw = fw_rows(c->s, id, 0); /* its port's and forwards' elements, read while they are */
	ret = STORE(c->s, instance_delete, id, &err);
	if (ret) {
		json_decref(fw);
		return api_fail(c, ret, &err, NULL);
	}
	supervisor_remove_dir(c->d, id);
	netd_instance_gone(id);
	fw_gone(c->d, c->s, fw);
	api_ok(c, 204, NULL);
}

static void api_instance_start(struct api_ctx *c, json_t *inst)
{
	int64_t id = api_i(inst, "id");
	const char *state = api_s(inst, "state");
	struct error err = {0};
	int ret;

	bool suspended = !strcmp(state, ST_SUSPENDED);

	if (strcmp(state, ST_STOPPED) && strcmp(state, ST_ERROR) && !suspended)
		return api_err(c, 409, "conflict", "action", "the instance is %s", state);
	/* the copy holds its disk's layers: a VMM could not take the top for writing */
	if (simg_holds(id))
		return api_err(c, 409, "conflict", "action",
			       "an image of the instance's disk is being saved: start it when the "
			       "image is active");
	/* the suspended VMM held the disk: it must be gone before another takes it */
	if (suspended && !supervisor_vmm_gone(inst, 10000))
		return api_err(c, 409, "conflict", "action",
			       "the instance's suspended VMM has not ended yet");
	ret = STORE(c->s, instance_set_state, id, state, ST_STARTING, NULL, &err);
	if (!ret)
		ret = STORE(c->s, instance_count_restart, id, true, &err);
	if (ret)
		return api_fail(c, ret, &err, NULL);
	/* a suspended instance goes on where it was: its VMM restores what the suspend saved */
	api_instance_boot(c, id, suspended ? SUSP_DIR : NULL);
	api_instance_answer(c, id, 200);
}

/* pause and resume: from one state to the other through the VMM's API. */
static void api_instance_flip(struct api_ctx *c, json_t *inst, const char *action, const char *from,
			      const char *to)
{
	int64_t id = api_i(inst, "id");
	struct error err = {0};
	int ret;

	if (strcmp(api_s(inst, "state"), from))
		return api_err(c, 409, "conflict", "action", "the instance is %s, not %s",
			       api_s(inst, "state"), from);
	ret = supervisor_vmm_action(inst, action, &err);
	if (ret)
		return api_err(c, 502, "vmm_error", NULL, "%s", err.msg);
	ret = STORE(c->s, instance_set_state, id, from, to, NULL, &err);
	if (ret)
		return api_fail(c, ret, &err, NULL);
	api_instance_answer(c, id, 200);
}

static void api_instance_action(struct api_ctx *c)
{
	static const char *const fields[] = {"action", NULL};
	struct error err = {0};
	const char *action;
	json_t *inst;
	int ret;

	if (!api_need_writer(c) || !api_body(c, fields, true) ||
	    !api_fix(c, httpd_field_str(c->req->body, "action", true, &action, c->resp)) ||
	    !(inst = api_instance_lookup(c)))
		return;
	if (!strcmp(action, "start") ||
	    (!strcmp(action, "resume") && !strcmp(api_s(inst, "state"), ST_SUSPENDED))) {
		api_instance_start(c, inst);
	} else if (!strcmp(action, "suspend")) {
		susp_suspend(c, inst);
	} else if (!strcmp(action, "stop") && !strcmp(api_s(inst, "state"), ST_SUSPENDED)) {
		susp_forget(c, inst);
	} else if (!strcmp(action, "stop")) {
		ret = supervisor_stop_async(c->d, api_i(inst, "id"), false, &err);
		if (ret)
			api_fail(c, ret, &err, "action");
		else
			api_instance_answer(c, api_i(inst, "id"), 202);
	} else if (!strcmp(action, "pause")) {
		api_instance_flip(c, inst, "pause", ST_RUNNING, ST_PAUSED);
	} else if (!strcmp(action, "resume")) {
		api_instance_flip(c, inst, "resume", ST_PAUSED, ST_RUNNING);
	} else {
		api_err(c, 400, "invalid_request", "action",
			"action must be start, stop, pause, resume or suspend");
	}
	json_decref(inst);
}

/* The console's last API_CONSOLE_MAX bytes, as text. */
static void api_instance_console(struct api_ctx *c)
{
	char dir[4096], path[4200];
	json_t *inst = api_instance_lookup(c);
	off_t end, from;
	ssize_t n;
	char *buf;
	int fd;

	if (!inst)
		return;
	if (httpd_query(c->req, "follow")) {
		console_follow(c, api_i(inst, "id"));
		json_decref(inst);
		return;
	}
	supervisor_instance_dir(c->d, api_i(inst, "id"), dir, sizeof(dir));
	json_decref(inst);
	snprintf(path, sizeof(path), "%s/console.log", dir);
	buf = calloc(1, API_CONSOLE_MAX + 1);
	/* the VMM's file: no symbolic link or FIFO it made may be read in its place */
	fd = djail_open_read(path);
	if (!buf || fd < 0) {
		free(buf);
		if (fd >= 0)
			close(fd);
		c->resp->status = 200;
		c->resp->text = strdup("");
		c->resp->ctype = "text/plain; charset=utf-8";
		return;
	}
	end = lseek(fd, 0, SEEK_END);
	from = end > API_CONSOLE_MAX ? end - API_CONSOLE_MAX : 0;
	n = pread(fd, buf, API_CONSOLE_MAX, from);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	c->resp->status = 200;
	c->resp->text = buf;
	c->resp->ctype = "text/plain; charset=utf-8";
}

static void api_instance_events(struct api_ctx *c)
{
	json_t *inst = api_instance_lookup(c);

	if (!inst)
		return;
	json_decref(inst);
	api_events(c, c->target); /* "instance ID", as its events name it */
}

const struct api_op api_resource_ops[] = {
	{"GET", "flavors", api_flavor_list},
	{"POST", "flavors", api_flavor_create},
	{"GET", "flavors/:", api_flavor_show},
	{"DELETE", "flavors/:", api_flavor_delete},
	{"GET", "images", api_image_list},
	{"POST", "images", api_image_create},
	{"GET", "images/:", api_image_show},
	{"DELETE", "images/:", api_image_delete},
	{"GET", "instances", api_instance_list},
	{"POST", "instances", api_instance_create},
	{"GET", "instances/:", api_instance_show},
	{"DELETE", "instances/:", api_instance_delete},
	{"POST", "instances/:/actions", api_instance_action},
	{"GET", "instances/:/console", api_instance_console},
	{"GET", "instances/:/events", api_instance_events},
	{NULL, NULL, NULL},
};
