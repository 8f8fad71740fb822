// SPDX-License-Identifier: MIT
/*
 * An instance's disk chain, for clones of instances that boot from a raw
 * disk image.
 *
 * The VMM writes to a top layer over the image (/disk.base in the jail).
 * A snapshot freezes that top and the VM goes on in a new one the VMM
 * makes inside the snapshot's directory (DIR/disk0.live.ovl): every later
 * cold boot must open that new top, or it loses what was written since.
 * Each overlay file names the layer below it by the path the VMM saw, a
 * jail path, so a chain is only whole in a jail that has every layer at
 * the same path. Hence the rules here:
 *
 *  - The store keeps the chain: disk_top (the top's jail path, NULL for
 *    the first, /disk.overlay) and disk_layers (the frozen layers' jail
 *    paths, bottom first), written before the snapshot so that a bunshind
 *    killed in the middle cannot lose the new top; dlayer_settle() puts
 *    the chain back when that snapshot never happened.
 *  - A frozen layer becomes root's and read-only (the source VMM keeps a
 *    read-only descriptor only: overlay_freeze() reopens the chain), and
 *    so does the snapshot directory that holds the new top, so nothing
 *    the source does later reaches its clones' disks.
 *  - Every frozen layer is hard-linked into each clone's directory at the
 *    same jail path; a clone's own top is /disk-ID.ovl, a name no layer
 *    it inherits can have (IDs are unique, snapshot directories are
 *    /clone-ID). Its first start is a restore with --overlay 0=TOP, its
 *    cold boots --disk path=/disk.base,overlay=TOP.
 *
 * A source VMM could rename files in its own directory, which bunshind
 * links from again at its next clone: opened without following links,
 * only regular files that are root's and read-only (or, for the layer
 * just frozen, the VMM's own with a single link) are taken, so a VMM can
 * at most give its own clones other bytes it could have written anyway.
 * The chain is at most OVL_MAX_DEPTH (16) layers: past that the VMM
 * refuses the snapshot and the clone fails with its reason.
 *
 * Unjailed (--no-jail), the layers' paths would be the source's own
 * directory's: such clones are refused (clone.c).
 *
 * A server image of a running instance (server_image.c) freezes its disk
 * the same way with no clone (the snapshot directory is /image-ID):
 * dlayer_share() with none only takes the frozen layers over.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/httpc.h"
#include "../common/log.h"
#include "supervisor.h"

#define DLAYER_FIRST_TOP "/disk.overlay"
#define DLAYER_LIVE_NAME "disk0.live.ovl" /* the VMM's name for disk 0's new top */
#define DLAYER_PATH_MAX	 128
#define DLAYER_DEPTH_MAX 2  /* components of a jail path: /NAME or /DIR/NAME */
#define DLAYER_MAX	 16 /* frozen layers: OVL_MAX_DEPTH, more than the VMM can open */
/* frozen layers a chain may hold and still freeze once more: the image + 14 + a top is 16 */
#define DLAYER_FREEZE_MAX 13

#define DLAYER_SNAP_TIMEOUT_MS 60000 /* PUT /vm/snapshot: the VMM copies the memory */

static const char *dlayer_str(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

bool dlayer_has_disk(const json_t *inst)
{
	const char *kind = dlayer_str(inst, "image_kind");

	return kind && strcmp(kind, "kernel");
}

const char *dlayer_top(const json_t *inst)
{
	return dlayer_str(inst, "disk_top") ?: DLAYER_FIRST_TOP;
}

/* A jail path bunshind made: /NAME or /DIR/NAME, of [A-Za-z0-9._-], no dot names. */
static bool dlayer_path_ok(const char *p)
{
	int parts = 0;

	if (!p || p[0] != '/' || strlen(p) >= DLAYER_PATH_MAX)
		return false;
	while (*p == '/') {
		size_t n = strspn(++p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				       "0123456789._-");

		if (!n || ++parts > DLAYER_DEPTH_MAX || (p[0] == '.' && (n == 1 || p[1] == '.')))
			return false;
		p += n;
	}
	return !*p;
}

/* The stored chain: its frozen layers (a new reference, an array, maybe empty). */
static int dlayer_layers(const json_t *inst, json_t **out, struct error *err)
{
	const char *text = dlayer_str(inst, "disk_layers");
	json_t *l = text ? json_loads(text, 0, NULL) : json_array(), *v;
	bool ok = json_is_array(l) && json_array_size(l) < DLAYER_MAX &&
		  dlayer_path_ok(dlayer_top(inst));
	size_t i;

	json_array_foreach(l, i, v)
	{
		ok = ok && dlayer_path_ok(json_string_value(v));
	}
	if (!ok) {
		json_decref(l);
		return error_set(err, EINVAL, "the instance's stored disk chain is not valid");
	}
	*out = l;
	return 0;
}

/* The chain into the store, and into inst when given (the row a start goes on with). */
static int dlayer_store(struct store *s, int64_t id, const char *top, const json_t *layers,
			json_t *inst, struct error *err)
{
	char *text = json_array_size(layers) ? json_dumps(layers, JSON_COMPACT) : NULL;
	int ret;

	if (json_array_size(layers) && !text)
		return error_set(err, ENOMEM, "out of memory");
	ret = STORE(s, instance_set_disk, id, top, text, err);
	if (!ret && inst) {
		json_object_set_new(inst, "disk_top", top ? json_string(top) : json_null());
		json_object_set_new(inst, "disk_layers", text ? json_string(text) : json_null());
	}
	free(text);
	return ret;
}

/* ---- files under an instance directory, by jail path ---- */

/*
 * DIR + jail path p, opened without following a link at any step: the
 * last component with flags, the ones before it as directories. An fd or
 * -errno.
 */
static int dlayer_open(const char *dir, const char *p, int flags)
{
	char buf[DLAYER_PATH_MAX], *name, *slash;
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), fd;

	snprintf(buf, sizeof(buf), "%s", p + 1);
	for (name = buf; dfd >= 0 && (slash = strchr(name, '/')); name = slash + 1) {
		*slash = 0;
		fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(dfd);
		dfd = fd;
	}
	if (dfd < 0)
		return -errno;
	fd = openat(dfd, name, flags | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		fd = -errno;
	close(dfd);
	return fd;
}

static bool dlayer_exists(const char *dir, const char *p)
{
	int fd = dlayer_open(dir, p, O_PATH);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

/*
 * A frozen layer in the source's directory, made root's and read-only if
 * it is not yet (then it must be the VMM's file with no other link: the
 * top it just froze). An fd, or -errno with err set.
 */
static int dlayer_take(const char *dir, const char *p, struct error *err)
{
	int fd = dlayer_open(dir, p, O_RDONLY | O_NONBLOCK);
	struct stat st;

	if (fd < 0)
		return error_set(err, -fd, "disk layer %s: %s", p, strerror(-fd));
	if (fstat(fd, &st) || !S_ISREG(st.st_mode))
		goto bad;
	if (st.st_uid == 0 && !(st.st_mode & 0222))
		return fd;
	if (st.st_uid == 0 || st.st_nlink != 1)
		goto bad;
	if (!fchown(fd, 0, 0) && !fchmod(fd, 0444))
		return fd;
	error_set(err, errno, "disk layer %s: %s", p, strerror(errno));
	close(fd);
	return -err->code;
bad:
	close(fd);
	return error_set(err, EINVAL, "disk layer %s is not a frozen layer of this instance", p);
}

/* The snapshot directory that holds the source's new top: root's from now on. */
static int dlayer_take_dir(const char *dir, const char *top, struct error *err)
{
	char parent[DLAYER_PATH_MAX];
	int fd;

	snprintf(parent, sizeof(parent), "%s", top);
	*strrchr(parent, '/') = 0;
	if (!parent[0])
		return 0;
	fd = dlayer_open(dir, parent, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return error_set(err, -fd, "%s%s: %s", dir, parent, strerror(-fd));
	if (fchown(fd, 0, 0) || fchmod(fd, 0755)) {
		close(fd);
		return error_set(err, errno, "%s%s: %s", dir, parent, strerror(errno));
	}
	close(fd);
	return 0;
}

/* The open layer fd at jail path p in a clone's (root's, new) directory. */
static int dlayer_link(const char *cdir, const char *p, int fd, struct error *err)
{
	char dst[4400], fdpath[64];
	char *slash;

	snprintf(dst, sizeof(dst), "%s%s", cdir, p);
	slash = strrchr(dst, '/');
	*slash = 0;
	if (strcmp(dst, cdir) && mkdir(dst, 0755) && errno != EEXIST)
		return error_set(err, errno, "%s: %s", dst, strerror(errno));
	*slash = '/';
	snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", fd);
	unlink(dst);
	if (linkat(AT_FDCWD, fdpath, AT_FDCWD, dst, AT_SYMLINK_FOLLOW))
		return error_set(err, errno, "linking disk layer %s to %s: %s", p, dst,
				 strerror(errno));
	return 0;
}

/* ---- cloning ---- */

int dlayer_freezable(const json_t *inst, struct error *err)
{
	json_t *layers;
	size_t n;
	int ret = dlayer_layers(inst, &layers, err);

	if (ret)
		return ret;
	n = json_array_size(layers);
	json_decref(layers);
	if (n > DLAYER_FREEZE_MAX)
		return error_set(
			err, ELOOP,
			"its disk is %zu copy-on-write layers deep (the image, %zu frozen, "
			"its own top): one more would pass the %d a chain may have",
			n + 2, n, DLAYER_MAX);
	return 0;
}

int dlayer_freeze_begin(struct store *s, const json_t *src, const char *snapname,
			const int64_t *ids, int64_t n, struct error *err)
{
	char top[DLAYER_PATH_MAX];
	json_t *layers;
	int ret = dlayer_freezable(src, err) ?: dlayer_layers(src, &layers, err);

	if (ret)
		return ret;
	snprintf(top, sizeof(top), "/%s/" DLAYER_LIVE_NAME, snapname);
	ret = json_array_append_new(layers, json_string(dlayer_top(src)));
	ret = ret ? error_set(err, ENOMEM, "out of memory")
		  : dlayer_store(s, json_integer_value(json_object_get(src, "id")), top, layers,
				 NULL, err);
	for (int64_t k = 0; !ret && k < n; k++) {
		snprintf(top, sizeof(top), "/disk-%lld.ovl", (long long)ids[k]);
		ret = dlayer_store(s, ids[k], top, layers, NULL, err);
	}
	json_decref(layers);
	return ret;
}

void dlayer_freeze_failed(struct store *s, const json_t *src, const char *sdir,
			  const char *snapname)
{
	char top[DLAYER_PATH_MAX];
	struct error err = {0};
	json_t *layers;

	/* Frozen after all (the VMM failed later, writing its memory): the new chain stands. */
	snprintf(top, sizeof(top), "/%s/" DLAYER_LIVE_NAME, snapname);
	if (dlayer_exists(sdir, top) || dlayer_layers(src, &layers, &err))
		return;
	if (dlayer_store(s, json_integer_value(json_object_get(src, "id")),
			 dlayer_str(src, "disk_top"), layers, NULL, &err))
		log_error("instance %lld: putting its disk chain back: %s",
			  (long long)json_integer_value(json_object_get(src, "id")), err.msg);
	json_decref(layers);
}

/* The source's chain as dlayer_freeze_begin() stored it: its frozen layers, taken. */
static int dlayer_take_all(const char *sdir, const json_t *layers, int *fds, struct error *err)
{
	const json_t *v;
	size_t i;

	json_array_foreach(layers, i, v)
	{
		fds[i] = dlayer_take(sdir, json_string_value(v), err);
		if (fds[i] < 0)
			return fds[i];
	}
	return 0;
}

int dlayer_share(const struct daemon *d, const json_t *src, const char *snapname,
		 const int64_t *ids, int64_t n, struct error *err)
{
	char sdir[4096], cdir[4096], top[DLAYER_PATH_MAX];
	int fds[DLAYER_MAX], ret;
	json_t *layers;
	size_t nl = 0;

	ret = dlayer_layers(src, &layers, err);
	if (ret)
		return ret;
	/* src is the row as it was before the snapshot: its top is frozen now */
	if (json_array_append_new(layers, json_string(dlayer_top(src))) ||
	    json_array_size(layers) > DLAYER_MAX) {
		json_decref(layers);
		return error_set(err, ELOOP, "the disk chain is too deep to clone");
	}
	supervisor_instance_dir(d, json_integer_value(json_object_get(src, "id")), sdir,
				sizeof(sdir));
	snprintf(top, sizeof(top), "/%s/" DLAYER_LIVE_NAME, snapname);
	ret = dlayer_take_dir(sdir, top, err) ?: dlayer_take_all(sdir, layers, fds, err);
	nl = ret ? 0 : json_array_size(layers);
	for (int64_t k = 0; !ret && k < n; k++) {
		supervisor_instance_dir(d, ids[k], cdir, sizeof(cdir));
		for (size_t i = 0; !ret && i < nl; i++)
			ret = dlayer_link(cdir, json_string_value(json_array_get(layers, i)),
					  fds[i], err);
	}
	for (size_t i = 0; i < nl; i++)
		close(fds[i]);
	json_decref(layers);
	return ret;
}

/* ---- starting ---- */

/*
 * The top is missing: a clone not yet restored restores; a source whose
 * snapshot never froze its top (bunshind killed between storing the new
 * chain and the snapshot: the last layer is still the VMM's) gets its
 * chain back.
 */
static int dlayer_recover(struct store *s, json_t *inst, const char *dir, json_t *layers,
			  struct error *err)
{
	size_t n = json_array_size(layers);
	const char *last = n ? json_string_value(json_array_get(layers, n - 1)) : NULL;
	char snap[64], top[DLAYER_PATH_MAX];
	struct stat st;
	int fd, ret;

	snprintf(snap, sizeof(snap), "/" CLONE_SNAP_DIR "/state");
	if (dlayer_exists(dir, snap))
		return json_object_set_new(inst, "restore", json_string(CLONE_SNAP_DIR)) ? -ENOMEM
											 : 0;
	fd = last ? dlayer_open(dir, last, O_PATH) : -ENOENT;
	if (fd < 0 || fstat(fd, &st) || st.st_uid == 0) {
		if (fd >= 0)
			close(fd);
		return error_set(err, ENOENT, "the disk's top layer %s is missing",
				 dlayer_top(inst));
	}
	close(fd);
	snprintf(top, sizeof(top), "%s", last);
	json_array_remove(layers, n - 1);
	ret = dlayer_store(s, json_integer_value(json_object_get(inst, "id")),
			   strcmp(top, DLAYER_FIRST_TOP) ? top : NULL, layers, inst, err);
	log_warn("instance %lld: a clone's snapshot never froze its disk: back to %s",
		 (long long)json_integer_value(json_object_get(inst, "id")), top);
	return ret;
}

int dlayer_settle(const struct daemon *d, struct store *s, json_t *inst, struct error *err)
{
	json_t *layers = NULL;
	char dir[4096];
	int ret;

	if (!dlayer_has_disk(inst) || !dlayer_str(inst, "disk_top"))
		return 0; /* the first top: the VMM makes it when it is missing */
	supervisor_instance_dir(d, json_integer_value(json_object_get(inst, "id")), dir,
				sizeof(dir));
	ret = dlayer_layers(inst, &layers, err);
	if (!ret && !dlayer_exists(dir, dlayer_top(inst)))
		ret = dlayer_recover(s, inst, dir, layers, err);
	json_decref(layers);
	return ret;
}

/*
 * A server image's snapshot directory (image-ID, server_image.c): what a
 * killed bunshind left of the snapshot, and the live top it holds.
 */
static void dlayer_remove_snapdir(int dfd, const char *name)
{
	static const char *const files[] = {"state", "memory", DLAYER_LIVE_NAME};
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	for (size_t i = 0; fd >= 0 && i < sizeof(files) / sizeof(files[0]); i++)
		unlinkat(fd, files[i], 0);
	if (fd >= 0)
		close(fd);
	unlinkat(dfd, name, AT_REMOVEDIR);
}

/* A removed instance's tops (disk-ID.ovl, its own and inherited) go with its directory. */
void dlayer_remove(const char *dir)
{
	DIR *dp = opendir(dir);
	struct dirent *e;
	size_t len;

	while (dp && (e = readdir(dp))) {
		len = strlen(e->d_name);
		if (!strncmp(e->d_name, "disk-", 5) && len > 4 &&
		    !strcmp(e->d_name + len - 4, ".ovl"))
			unlinkat(dirfd(dp), e->d_name, 0);
		else if (!strncmp(e->d_name, "image-", 6))
			dlayer_remove_snapdir(dirfd(dp), e->d_name);
	}
	if (dp)
		closedir(dp);
}

/* ---- snapshots (clone.c, server_image.c) ---- */

int dlayer_vmm_snapshot(const json_t *src, const char *vdir, const char *type, struct error *err)
{
	const char *sock = dlayer_str(src, "api_sock");
	struct httpc_response resp;
	char ep[64];
	json_t *body;
	char *text;
	int fd, ret;

	if (!sock)
		return error_set(err, ENOTCONN, "the instance has no VMM");
	fd = djail_sock_ep(sock, ep, sizeof(ep));
	if (fd < 0)
		return error_set(err, -fd, "%s: %s", sock, strerror(-fd));
	body = json_pack("{s:s, s:s}", "dir", vdir, "type", type);
	text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	ret = text ? httpc_do(ep,
			      &(struct httpc_request){.method = "PUT",
						      .path = "/vm/snapshot",
						      .body = text,
						      .timeout_ms = DLAYER_SNAP_TIMEOUT_MS},
			      &resp, err)
		   : error_set(err, ENOMEM, "out of memory");
	free(text);
	close(fd);
	if (ret)
		return ret;
	if (resp.status != 200)
		ret = error_set(err, EIO, "the VMM refused the snapshot (%d): %.200s", resp.status,
				resp.body ? resp.body : "");
	httpc_response_free(&resp);
	return ret;
}

/*
 * A rebuilt instance's chain out of its directory: its tops and the links
 * to its frozen layers (clones keep theirs), the snapshot directories
 * that held them, and a clone's own snapshot (its next start boots cold).
 */
void dlayer_reset(const struct daemon *d, int64_t id)
{
	static const char *const files[] = {"disk.overlay", CLONE_SNAP_DIR "/state",
					    CLONE_SNAP_DIR "/memory"};
	char dir[4096], path[4400];

	supervisor_instance_dir(d, id, dir, sizeof(dir));
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		if (unlink(path) && errno != ENOENT)
			log_warn("%s: %s", path, strerror(errno));
	}
	snprintf(path, sizeof(path), "%s/" CLONE_SNAP_DIR, dir);
	rmdir(path);
	clone_remove_leftovers(dir);
	dlayer_remove(dir);
}
