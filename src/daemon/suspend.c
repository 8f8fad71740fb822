// SPDX-License-Identifier: MIT
/*
 * Suspend and resume, as OpenStack's: the action "suspend" saves a
 * running or paused instance's VM into its directory (SUSP_DIR: its
 * state and memory) and ends its VMM, so the host's RAM is free again
 * while the instance keeps its place in the quota; "resume" or "start"
 * restores it (`bunshin-vmm --restore /suspend`): the guest goes on where
 * it was, without a boot. The suspend snapshot does not freeze the disks
 * (the VMM records their live tops instead), so a suspend adds no layer
 * to the disk's chain. "stop" forgets what was saved: the next start
 * boots cold.
 *
 * Order matters against the reaper: the row says SUSPENDED before the
 * VMM is asked to stop, so the VMM's end is recorded as a suspend, not as
 * a stop or a failure; if the stop is refused, the row and the VM go back
 * to what they were.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../common/log.h"
#include "api.h"
#include "supervisor.h"

#define SUSP_STOP_MS 10000 /* a stopped VMM's exit: it closes its disks and is gone */

static const char *const susp_files[] = {"state", "memory"};

void susp_drop(const struct daemon *d, int64_t id)
{
	char dir[4096], path[4200];
	int fd;

	supervisor_instance_dir(d, id, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/" SUSP_DIR, dir);
	/* the VMM's directory: never through a link it left there */
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	for (size_t k = 0; fd >= 0 && k < sizeof(susp_files) / sizeof(susp_files[0]); k++)
		unlinkat(fd, susp_files[k], 0);
	if (fd >= 0)
		close(fd);
	if (rmdir(path) && errno != ENOENT)
		log_warn("%s: %s", path, strerror(errno));
}

/* Back to what it was after a failed suspend: the row, and a VM it paused. */
static void susp_undo(struct api_ctx *c, const json_t *inst, const char *was)
{
	struct error err = {0};
	int64_t id = json_integer_value(json_object_get(inst, "id"));

	if (STORE(c->s, instance_set_state, id, ST_SUSPENDED, was, NULL, &err))
		log_warn("instance %lld: %s", (long long)id, err.msg);
	if (!strcmp(was, ST_RUNNING) && supervisor_vmm_action(inst, "resume", &err))
		log_warn("instance %lld: resuming after a failed suspend: %s", (long long)id,
			 err.msg);
	susp_drop(c->d, id);
}

void susp_suspend(struct api_ctx *c, const json_t *inst)
{
	const char *was = json_string_value(json_object_get(inst, "state"));
	int64_t id = json_integer_value(json_object_get(inst, "id"));
	char dir[4096], vdir[4200];
	struct error err = {0};
	int ret;

	if (strcmp(was, ST_RUNNING) && strcmp(was, ST_PAUSED))
		return api_err(c, 409, "conflict", "action",
			       "the instance is %s: only a running or paused one is suspended",
			       was);
	supervisor_instance_dir(c->d, id, dir, sizeof(dir));
	snprintf(vdir, sizeof(vdir), "%s/" SUSP_DIR, c->d->opts.no_jail ? dir : "");
	susp_drop(c->d, id); /* what an earlier suspend left */
	ret = dlayer_vmm_snapshot(inst, vdir, "suspend", &err);
	if (ret) {
		if (!strcmp(was, ST_RUNNING))
			supervisor_vmm_action(inst, "resume", &(struct error){0});
		susp_drop(c->d, id);
		return api_err(c, 502, "vmm_error", NULL, "cannot suspend the instance: %s",
			       err.msg);
	}
	ret = STORE(c->s, instance_set_state, id, was, ST_SUSPENDED, NULL, &err);
	if (!ret && supervisor_vmm_action(inst, "stop", &err)) {
		susp_undo(c, inst, was);
		return api_err(c, 502, "vmm_error", NULL, "cannot stop the suspended VMM: %s",
			       err.msg);
	}
	if (ret)
		return api_fail(c, ret, &err, NULL);
	/* gone before the answer: a resume right after must find its disk's top free */
	if (!supervisor_vmm_gone(inst, SUSP_STOP_MS))
		log_warn("instance %lld: its VMM is still there %d ms after its suspend",
			 (long long)id, SUSP_STOP_MS);
	sup_event(c->s, json_integer_value(json_object_get(inst, "tenant_id")), id, c->who.user,
		  "suspend", "saved; its VMM stopped");
	log_info("instance %lld: suspended", (long long)id);
	api_instance_answer(c, id, 202);
}

void susp_forget(struct api_ctx *c, const json_t *inst)
{
	int64_t id = json_integer_value(json_object_get(inst, "id"));
	struct error err = {0};
	int ret = STORE(c->s, instance_set_state, id, ST_SUSPENDED, ST_STOPPED, NULL, &err);

	if (ret)
		return api_fail(c, ret, &err, NULL);
	susp_drop(c->d, id);
	sup_event(c->s, json_integer_value(json_object_get(inst, "tenant_id")), id, c->who.user,
		  "stop", "what its suspend saved is gone");
	api_instance_answer(c, id, 200);
}
