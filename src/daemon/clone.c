// SPDX-License-Identifier: MIT
/*
 * POST /v1/instances/ID/clone {"count": N, "name_prefix": "P"}: N
 * copy-on-write copies of a running (or paused) instance.
 *
 * Design. The VMM's own PUT /vm/clone starts its clones from a spawner the
 * source VMM forked: inside the source's jail, as its uid, in its cgroup,
 * supervised by nobody but that spawner. bunshind's model is one jail,
 * uid, cgroup, tap and pidfd per instance, and an instance bunshind did
 * not start is one it cannot re-adopt, stop or count. So bunshind does
 * not use /vm/clone; it uses the two halves the VMM already has:
 *
 *  1. PUT /vm/snapshot on the source, into SRC/clone-ID (the source's jail
 *     path /clone-ID, ID the first clone's): the VMM pauses only for the
 *     copy. A disk-booted source's disk is frozen there too and it goes
 *     on in a new top; disk_layers.c keeps the chains in the store, links
 *     the frozen layers into each clone's jail and gives each clone a
 *     top of its own (--overlay).
 *  2. bunshind takes the files over (opened without following links,
 *     made root's and read-only: the source VMM can no longer change
 *     what the clones map), hard-links them into each clone's own
 *     instance directory (CLONE_SNAP_DIR, same file system) and removes
 *     them from the source's.
 *  3. Each clone is then an ordinary instance (its own row, port, uid,
 *     jail, cgroup, tap) started through supervisor_spawn(), whose first
 *     start is `bunshin-vmm --restore /snapshot --net id=net0,tap=bt-CLONE,
 *     mac=MAC` (vmmctl.c asks clone_vmm_argv() for it) instead of a cold
 *     boot. Every clone maps the same memory inode MAP_PRIVATE, so they
 *     share every page none of them wrote; each restore gives its guest a
 *     new VM generation ID, and its NIC the clone's own MAC.
 *
 * After birth a clone is like any instance: supervised and re-adopted by
 * its --jail path, deletable on its own (its directory goes; the memory
 * file goes with the last link), counted in its tenant's quota. A stop
 * and start, or a restart by its policy, is a cold boot of the same
 * kernel over its own disk chain; only the first start restores.
 * A paused source may be cloned (the snapshot of a paused VM is taken
 * without resuming it; the clones run); a stopped one cannot (409).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/log.h"
#include "api.h"
#include "supervisor.h"

#define CLONE_COUNT_MAX	       100
#define CLONE_SNAP_NAME_PREFIX "clone-"
#define CLONE_CPU_PERIOD_US    100000		/* the kernel's default CFS period, as the jail's */
#define CLONE_LIVE_TOP	       "disk0.live.ovl" /* the VMM's new top for disk 0 */

static const char *const clone_files[] = {"state", "memory"};

static const char *clone_s(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static int64_t clone_i(const json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

int clone_vmm_argv(const struct daemon *d, const json_t *inst, const char *vdir, char **argv,
		   int *argc, int max, struct error *err)
{
	(void)d;
	if (*argc + 2 > max)
		return error_set(err, E2BIG, "too many VMM arguments");
	argv[(*argc)++] = strdup("--restore");
	if (asprintf(&argv[*argc], "%s/%s", vdir, clone_s(inst, "restore")) < 0)
		argv[*argc] = NULL;
	(*argc)++;
	if (!argv[*argc - 2] || !argv[*argc - 1])
		return error_set(err, ENOMEM, "out of memory");
	return 0;
}

/*
 * What the VMM's jail would derive from --cpus and --memory, which a
 * restore does not give: the flavor's CPUs as the quota, its RAM plus the
 * VMM's own overhead (jail_memory_overhead()) as the memory limit.
 */
char *clone_cgroup_limits(const json_t *inst)
{
	long long cpus = clone_i(inst, "vcpus"), ram = clone_i(inst, "ram_mib");
	char *s;

	if (asprintf(&s, "cpu_period_us=%d,cpu_quota_us=%lld,memory_max=%lldM", CLONE_CPU_PERIOD_US,
		     cpus * CLONE_CPU_PERIOD_US, ram + 96 + 2 * cpus) < 0)
		return NULL;
	return s;
}

/* ---- the source's snapshot ---- */

/*
 * The snapshot's files, in a directory the source VMM owns: reached from
 * the instance directory (which it cannot rename) without following a
 * link at any step, each a regular file with no other link, made root's
 * and read-only so that nothing the source does later reaches the
 * clones. fds[] are the open files.
 */
static int clone_take(int snapfd, int fds[2], struct error *err)
{
	struct stat st;

	for (size_t k = 0; k < 2; k++) {
		fds[k] = openat(snapfd, clone_files[k],
				O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
		if (fds[k] < 0)
			return error_set(err, errno, "the snapshot's %s: %s", clone_files[k],
					 strerror(errno));
		if (fstat(fds[k], &st) || !S_ISREG(st.st_mode) || st.st_nlink != 1)
			return error_set(err, EINVAL, "the snapshot's %s is not a file of its own",
					 clone_files[k]);
		if (fchown(fds[k], 0, 0) || fchmod(fds[k], 0444))
			return error_set(err, errno, "the snapshot's %s: %s", clone_files[k],
					 strerror(errno));
	}
	return 0;
}

/* SDIR/NAME, a directory the VMM made: never through a link it planted. */
static int clone_open_dir(const char *sdir, const char *name)
{
	int sfd = open(sdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), fd;

	if (sfd < 0)
		return -errno;
	fd = openat(sfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		fd = -errno;
	close(sfd);
	return fd;
}

/*
 * Removes SDIR/NAME's state and memory, and the directory when nothing
 * else is left: after a clone of a disk-booted source it holds the
 * source's live top (disk_layers.c), which goes only with the instance
 * (all).
 */
static void clone_drop_snapshot(const char *sdir, const char *name, bool all)
{
	int sfd = open(sdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int fd = clone_open_dir(sdir, name);

	for (size_t k = 0; fd >= 0 && k < 2; k++)
		unlinkat(fd, clone_files[k], 0);
	if (fd >= 0 && all)
		unlinkat(fd, CLONE_LIVE_TOP, 0);
	if (sfd >= 0 && unlinkat(sfd, name, AT_REMOVEDIR) && errno != ENOENT && errno != ENOTEMPTY)
		log_warn("%s/%s: %s", sdir, name, strerror(errno));
	if (fd >= 0)
		close(fd);
	if (sfd >= 0)
		close(sfd);
}

/*
 * Snapshots a bunshind killed in the middle of a clone left in an
 * instance's directory (clone-ID), for supervisor_remove_dir().
 */
void clone_remove_leftovers(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	while (d && (e = readdir(d))) {
		if (!strncmp(e->d_name, CLONE_SNAP_NAME_PREFIX, strlen(CLONE_SNAP_NAME_PREFIX)))
			clone_drop_snapshot(dir, e->d_name, true);
	}
	if (d)
		closedir(d);
}

/* The clone's DIR/CLONE_SNAP_DIR: root's, readable, holding links to the taken files. */
static int clone_link(const struct daemon *d, int64_t id, const int fds[2], struct error *err)
{
	char dir[4096], path[4400], fdpath[64];

	supervisor_instance_dir(d, id, dir, sizeof(dir));
	if (mkdir(dir, 0700) && errno != EEXIST)
		return error_set(err, errno, "%s: %s", dir, strerror(errno));
	snprintf(path, sizeof(path), "%s/" CLONE_SNAP_DIR, dir);
	if (mkdir(path, 0755) && errno != EEXIST)
		return error_set(err, errno, "%s: %s", path, strerror(errno));
	for (size_t k = 0; k < 2; k++) {
		snprintf(path, sizeof(path), "%s/" CLONE_SNAP_DIR "/%s", dir, clone_files[k]);
		snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", fds[k]);
		unlink(path);
		/* The open file itself, whatever its old name became meanwhile. */
		if (linkat(AT_FDCWD, fdpath, AT_FDCWD, path, AT_SYMLINK_FOLLOW))
			return error_set(err, errno, "linking the snapshot to %s: %s", path,
					 strerror(errno));
	}
	return 0;
}

/* ---- the request ---- */

struct clone_req {
	int64_t count;
	const char *prefix;
};

static bool clone_parse(struct api_ctx *c, const json_t *src, struct clone_req *r)
{
	static const char *const fields[] = {"count", "name_prefix", NULL};
	uint64_t count = 1;
	char m[256], f[64];

	if (!api_body(c, fields, false))
		return false;
	r->prefix = clone_s(src, "name");
	if (c->req->body &&
	    (httpd_field_u64(c->req->body, "count", false, 1, CLONE_COUNT_MAX, &count, c->resp) ||
	     httpd_field_str(c->req->body, "name_prefix", false, &r->prefix, c->resp))) {
		snprintf(m, sizeof(m), "%s", clone_s(c->resp->body, "error") ?: "bad field");
		snprintf(f, sizeof(f), "%s", clone_s(c->resp->body, "field") ?: "");
		if (!strcmp(f, "count"))
			api_err(c, 400, "invalid_request", f, "count must be 1 to %d: %s",
				CLONE_COUNT_MAX, m);
		else
			api_err(c, 400, "invalid_request", f, "%s", m);
		return false;
	}
	r->count = (int64_t)count;
	if (!api_valid_name(c, "name_prefix", r->prefix))
		return false;
	/* "-" and the largest number must fit a name */
	if (strlen(r->prefix) + 1 + 3 > STORE_NAME_MAX) {
		api_err(c, 400, "invalid_request", "name_prefix",
			"name_prefix is too long: at most %d characters", STORE_NAME_MAX - 4);
		return false;
	}
	return true;
}

/* A clone that will not start: the row and what was made for it go. */
static void clone_undo(struct api_ctx *c, const int64_t *ids, int64_t n)
{
	struct error err = {0};

	for (int64_t k = 0; k < n; k++) {
		if (STORE(c->s, instance_delete, ids[k], &err))
			log_warn("clone: instance %lld: %s", (long long)ids[k], err.msg);
		supervisor_remove_dir(c->d, ids[k]);
		netd_instance_gone(ids[k]);
	}
}

/* Starts clone id from its linked snapshot; a failure is the clone's ERROR. */
static void clone_start(struct api_ctx *c, int64_t id, const char *result)
{
	struct error err = {0};
	char ref[24];
	json_t *inst;

	snprintf(ref, sizeof(ref), "%lld", (long long)id);
	if (STORE(c->s, instance_get, 0, ref, &inst, &err)) {
		log_warn("clone: instance %lld: %s", (long long)id, err.msg);
		return;
	}
	json_object_set_new(inst, "restore", json_string(CLONE_SNAP_DIR));
	if (supervisor_spawn(c->d, c->s, inst, &err))
		log_warn("instance %lld: %s", (long long)id, err.msg);
	sup_event(c->s, clone_i(inst, "tenant_id"), id, c->who.user, "clone", result);
	json_decref(inst);
}

/* The snapshot's state and memory, taken over and linked into every clone's directory. */
static int clone_share(struct api_ctx *c, const char *sdir, const char *name, const int64_t *ids,
		       int64_t n, struct error *err)
{
	int fds[2] = {-1, -1}, snapfd = clone_open_dir(sdir, name);
	int ret = 0;

	if (snapfd < 0)
		ret = error_set(err, -snapfd, "the snapshot %s/%s: %s", sdir, name,
				strerror(-snapfd));
	ret = ret ?: clone_take(snapfd, fds, err);
	for (int64_t k = 0; !ret && k < n; k++)
		ret = clone_link(c->d, ids[k], fds, err);
	for (size_t k = 0; k < 2; k++)
		if (fds[k] >= 0)
			close(fds[k]);
	if (snapfd >= 0)
		close(snapfd);
	return ret;
}

/*
 * Snapshot, files taken over and linked into every clone's directory. A
 * disk-booted source's chains are stored first (disk_layers.c): from the
 * snapshot on, the source writes to a new top.
 */
static int clone_prepare(struct api_ctx *c, const json_t *src, const int64_t *ids, int64_t n,
			 struct error *err)
{
	bool disk = dlayer_has_disk(src);
	char sdir[4096], snap[4400], name[64];
	int ret;

	supervisor_instance_dir(c->d, clone_i(src, "id"), sdir, sizeof(sdir));
	snprintf(name, sizeof(name), CLONE_SNAP_NAME_PREFIX "%lld", (long long)ids[0]);
	if (c->d->opts.no_jail)
		snprintf(snap, sizeof(snap), "%s/%s", sdir, name);
	else
		snprintf(snap, sizeof(snap), "/%s", name); /* the jail's path */
	ret = disk ? dlayer_freeze_begin(c->s, src, name, ids, n, err) : 0;
	ret = ret ?: dlayer_vmm_snapshot(src, snap, "full", err);
	if (ret && disk)
		dlayer_freeze_failed(c->s, src, sdir, name);
	ret = ret ?: clone_share(c, sdir, name, ids, n, err);
	ret = ret ?: (disk ? dlayer_share(c->d, src, name, ids, n, err) : 0);
	clone_drop_snapshot(sdir, name, false);
	return ret;
}

static json_t *clone_views(struct api_ctx *c, const int64_t *ids, int64_t n)
{
	json_t *arr = json_array();
	struct error err = {0};
	char ref[24];

	for (int64_t k = 0; arr && k < n; k++) {
		json_t *inst;

		snprintf(ref, sizeof(ref), "%lld", (long long)ids[k]);
		if (STORE(c->s, instance_get, 0, ref, &inst, &err))
			continue;
		json_array_append_new(arr, api_instance_view(inst));
	}
	return arr;
}

static void clone_run(struct api_ctx *c, const json_t *src, const struct clone_req *r)
{
	int64_t src_id = clone_i(src, "id"), *ids = calloc((size_t)r->count, sizeof(*ids));
	struct store_capacity cap;
	struct error err = {0};
	char result[128];
	int ret;

	if (!ids)
		return api_err(c, 500, "internal", NULL, "out of memory");
	daemon_capacity(c->d, &cap);
	ret = STORE(c->s, instance_clone, src_id, r->prefix, (int)r->count, &cap, ids, &err);
	if (ret) {
		free(ids);
		return api_fail(c, ret, &err,
				ret == -EEXIST || ret == -ENAMETOOLONG ? "name_prefix" : "count");
	}
	ret = clone_prepare(c, src, ids, r->count, &err);
	if (ret) {
		clone_undo(c, ids, r->count);
		free(ids);
		log_warn("instance %lld: clone: %s", (long long)src_id, err.msg);
		return api_err(c, 502, "vmm_error", NULL, "cannot clone the instance: %s", err.msg);
	}
	snprintf(result, sizeof(result), "cloned from instance %lld", (long long)src_id);
	for (int64_t k = 0; k < r->count; k++)
		clone_start(c, ids[k], result);
	log_info("instance %lld: %lld clones", (long long)src_id, (long long)r->count);
	api_ok(c, 201,
	       json_pack("{s:I, s:o}", "source", (json_int_t)src_id, "clones",
			 clone_views(c, ids, r->count)));
	free(ids);
}

static void clone_post(struct api_ctx *c)
{
	struct clone_req r = {0};
	struct error err = {0};
	const char *state;
	json_t *src;
	int ret;

	if (!api_need_writer(c))
		return;
	ret = STORE(c->s, instance_get, api_scope(c), c->seg[1], &src, &err);
	snprintf(c->target, sizeof(c->target), "instance %s", c->seg[1]);
	if (ret)
		return api_fail(c, ret, &err, NULL);
	snprintf(c->target, sizeof(c->target), "instance %lld", (long long)clone_i(src, "id"));
	state = clone_s(src, "state");
	if (!clone_parse(c, src, &r))
		goto out;
	if (strcmp(state, ST_RUNNING) && strcmp(state, ST_PAUSED))
		api_err(c, 409, "conflict", NULL,
			"the instance is %s: only a running or paused instance can be cloned",
			state);
	else if (dlayer_has_disk(src) && c->d->opts.no_jail)
		/* the frozen layers' paths would be the source's directory's (disk_layers.c) */
		api_err(c, 409, "conflict", NULL,
			"the instance boots from a disk image: its clones need the jail, and "
			"bunshind runs with --no-jail");
	else if (dlayer_has_disk(src) &&
		 (dlayer_settle(c->d, c->s, src, &err) || dlayer_freezable(src, &err)))
		api_err(c, 409, "conflict", NULL, "the instance's disk: %s", err.msg);
	else
		clone_run(c, src, &r);
out:
	json_decref(src);
}

const struct api_op api_clone_ops[] = {
	{"POST", "instances/:/clone", clone_post},
	{NULL, NULL, NULL},
};
