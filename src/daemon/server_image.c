// SPDX-License-Identifier: MIT
/*
 * POST /v1/instances/ID/image {"name": "NAME"} (OpenStack's `server image
 * create`): a new raw image of the instance's tenant holding its disk as
 * it is now, flattened (every copy-on-write layer read through, zeros left
 * as holes), booting with the kernel image its own image boots with.
 *
 * Consistency. A stopped instance's chain is read as it lies: no VMM
 * holds it, and none may start while the copy reads it (simg_holds():
 * a 409 saying why; the shared locks taken on every layer would make its
 * VMM fail). A running or paused one is asked for a snapshot into
 * /image-ID, as a clone's source is (disk_layers.c keeps the store's
 * chain right): its disk is frozen at that instant and the VM goes on in
 * a new top; the frozen layer is taken over (root's, read-only), the
 * snapshot's state and memory dropped, and the frozen chain read.
 *
 * MHD runs one thread: the request only admits, takes the name (a row
 * with status "saving", which cannot boot nor be deleted), freezes and
 * opens the chain, and answers 202. The copy runs on a thread of its own
 * into STATE/images/.snap-XXXXXX with its SHA-256; then it is renamed and
 * the row made "active", or on any failure the file and the row go. The
 * open chain holds every layer, so the instance may be stopped or
 * deleted meanwhile. A bunshind killed in the middle leaves a "saving"
 * row: simg_recover() removes it, and the temporary file, at start-up.
 *
 * The layers' paths are the VMM's (jail paths, in files it wrote):
 * overlay_open_in() resolves them inside the instance's directory only.
 * Unjailed (--no-jail) the headers name host paths: refused, as clones.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <nettle/sha2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/util.h"
#include "../vmm/block/overlay.h"
#include "api.h"
#include "supervisor.h"

#define SIMG_SNAP_PREFIX "image-"
#define SIMG_TMP_PREFIX	 ".snap-"
#define SIMG_CHUNK	 (1u << 20)
#define SIMG_HOLE	 (1u << OVL_BLOCK_SHIFT) /* runs of zeros this long become holes */
#define SIMG_DIR_TRIES	 100

struct simg_job {
	struct daemon *d;
	struct overlay *chain; /* the disk, or NULL: raw */
	int raw;	       /* the image's own file: the instance never wrote its disk */
	uint64_t size;
	int fd; /* the temporary file */
	char tmp[4200], dst[4200];
	int64_t image_id, inst_id, tenant_id;
	char name[STORE_NAME_MAX + 1], user[STORE_NAME_MAX + 1];
	struct simg_job *next; /* in simg_jobs.list */
};

/*
 * The copies in flight: at shutdown they stop between two chunks, before
 * the store's connections go, leaving their row "saving" for the next
 * start to remove (the temporary file they remove themselves).
 */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t done;
	unsigned int running;
	bool stopping;
	struct simg_job *list; /* the copies in flight: whose instance's disk they read */
} simg_jobs = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, false, NULL};

bool simg_holds(int64_t inst_id)
{
	bool held = false;

	pthread_mutex_lock(&simg_jobs.lock);
	for (struct simg_job *j = simg_jobs.list; j && !held; j = j->next)
		held = j->inst_id == inst_id;
	pthread_mutex_unlock(&simg_jobs.lock);
	return held;
}

static void simg_job_begin(struct simg_job *j)
{
	pthread_mutex_lock(&simg_jobs.lock);
	j->next = simg_jobs.list;
	simg_jobs.list = j;
	simg_jobs.running++;
	pthread_mutex_unlock(&simg_jobs.lock);
}

static bool simg_stopping(void)
{
	bool stop;

	pthread_mutex_lock(&simg_jobs.lock);
	stop = simg_jobs.stopping;
	pthread_mutex_unlock(&simg_jobs.lock);
	return stop;
}

static void simg_job_done(struct simg_job *j)
{
	pthread_mutex_lock(&simg_jobs.lock);
	for (struct simg_job **pp = &simg_jobs.list; *pp; pp = &(*pp)->next) {
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	}
	simg_jobs.running--;
	pthread_cond_broadcast(&simg_jobs.done);
	pthread_mutex_unlock(&simg_jobs.lock);
}

void simg_shutdown(void)
{
	pthread_mutex_lock(&simg_jobs.lock);
	simg_jobs.stopping = true;
	while (simg_jobs.running)
		pthread_cond_wait(&simg_jobs.done, &simg_jobs.lock);
	pthread_mutex_unlock(&simg_jobs.lock);
}

static const char *simg_s(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static int64_t simg_i(const json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static void simg_free(struct simg_job *j)
{
	overlay_close(j->chain);
	if (j->raw >= 0)
		close(j->raw);
	if (j->fd >= 0)
		close(j->fd);
	free(j);
}

/* ---- the copy (its own thread) ---- */

static bool simg_zero(const uint8_t *p, size_t n)
{
	return !p[0] && !memcmp(p, p + 1, n - 1);
}

static int simg_read(struct simg_job *j, uint8_t *buf, uint64_t len, uint64_t off)
{
	ssize_t n;

	if (j->chain)
		return overlay_pread(j->chain, buf, len, off);
	while (len) {
		n = pread(j->raw, buf, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		buf += n;
		len -= (uint64_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Chunk buf of len bytes at off into the file, its all-zero blocks left as holes. */
static int simg_write(int fd, const uint8_t *buf, uint64_t len, uint64_t off)
{
	for (uint64_t at = 0; at < len; at += SIMG_HOLE) {
		uint64_t n = len - at < SIMG_HOLE ? len - at : SIMG_HOLE;
		int ret;

		if (simg_zero(buf + at, n))
			continue;
		ret = pwrite_full(fd, buf + at, n, (off_t)(off + at));
		if (ret)
			return ret;
	}
	return 0;
}

/* The whole disk into the temporary file (sparse), its SHA-256 into sha. */
static int simg_copy(struct simg_job *j, char sha[AUTH_SHA256_HEX], struct error *err)
{
	uint8_t *buf = malloc(SIMG_CHUNK), digest[SHA256_DIGEST_SIZE];
	struct sha256_ctx ctx;
	int ret = 0;

	if (!buf)
		return error_set(err, ENOMEM, "out of memory");
	sha256_init(&ctx);
	if (ftruncate(j->fd, (off_t)j->size))
		ret = error_set(err, errno, "%s: %s", j->tmp, strerror(errno));
	for (uint64_t off = 0; !ret && off < j->size; off += SIMG_CHUNK) {
		uint64_t n = j->size - off < SIMG_CHUNK ? j->size - off : SIMG_CHUNK;

		if (simg_stopping()) {
			ret = error_set(err, ECANCELED, "bunshind is stopping");
			break;
		}

		ret = simg_read(j, buf, n, off);
		if (ret) {
			ret = error_set(err, -ret, "reading the disk at %llu: %s",
					(unsigned long long)off, strerror(-ret));
			break;
		}
		sha256_update(&ctx, n, buf);
		ret = simg_write(j->fd, buf, n, off);
		if (ret)
			ret = error_set(err, -ret, "writing the image: %s", strerror(-ret));
	}
	free(buf);
	if (!ret && fsync(j->fd))
		ret = error_set(err, errno, "fsync: %s", strerror(errno));
	sha256_digest(&ctx, sizeof(digest), digest);
	for (size_t i = 0; i < sizeof(digest); i++)
		sprintf(sha + 2 * i, "%02x", digest[i]);
	return ret;
}

/* Copied, renamed, made active; on failure the file and the row go. An audit entry either way. */
static void *simg_thread(void *arg)
{
	struct simg_job *j = arg;
	char sha[AUTH_SHA256_HEX], result[600];
	struct error err = {0}, e2 = {0};
	struct store *s;
	bool renamed = false;
	int ret = simg_copy(j, sha, &err);

	if (ret == -ECANCELED) { /* the store may be gone: the next start removes the row */
		unlink(j->tmp);
		log_warn("image %s: %s: the copy stops, unfinished", j->name, err.msg);
		simg_job_done(j);
		simg_free(j);
		return NULL;
	}
	if (!ret && rename(j->tmp, j->dst))
		ret = error_set(&err, errno, "%s: %s", j->dst, strerror(errno));
	renamed = !ret;
	s = pool_get(j->d->pool);
	ret = ret ?: STORE(s, image_set_active, j->image_id, sha, (int64_t)j->size, &err);
	if (ret) {
		if (STORE(s, image_delete, j->image_id, &e2))
			log_warn("image %s: %s", j->name, e2.msg);
		unlink(renamed ? j->dst : j->tmp);
		snprintf(result, sizeof(result), "image %s failed: %s", j->name, err.msg);
		log_warn("instance %lld: %s", (long long)j->inst_id, result);
	} else {
		snprintf(result, sizeof(result), "image %s saved: %llu bytes", j->name,
			 (unsigned long long)j->size);
		log_info("instance %lld: %s", (long long)j->inst_id, result);
	}
	sup_event(s, j->tenant_id, j->inst_id, j->user, "image", result);
	pool_put(j->d->pool, s);
	simg_job_done(j);
	simg_free(j);
	return NULL;
}

/* ---- the disk, frozen and opened ---- */

/* Whether jail path p exists in the instance directory (lstat: the open itself is rooted). */
static bool simg_exists(int dfd, const char *p)
{
	struct stat st;

	return p[0] == '/' && p[1] && !fstatat(dfd, p + 1, &st, AT_SYMLINK_NOFOLLOW);
}

/*
 * A stopped instance's disk: its chain from the topmost layer that exists
 * (a top the VMM has not made yet holds nothing), or the image's own file
 * when it has never written at all.
 */
static int simg_open_cold(struct simg_job *j, int dfd, const json_t *inst, struct error *err)
{
	const char *text = simg_s(inst, "disk_layers");
	json_t *layers = text ? json_loads(text, 0, NULL) : json_array();
	const char *p = dlayer_top(inst);
	size_t n = json_array_size(layers);
	int ret = 0;

	if (!json_is_array(layers) || n > OVL_MAX_DEPTH) {
		json_decref(layers);
		return error_set(err, EINVAL, "the instance's stored disk chain is not valid");
	}
	while (p && !simg_exists(dfd, p))
		p = n ? json_string_value(json_array_get(layers, --n)) : NULL;
	if (p)
		ret = overlay_open_in(&j->chain, dfd, p, err);
	else if ((j->raw = open(simg_s(inst, "image_path"), O_RDONLY | O_CLOEXEC)) < 0)
		ret = error_set(err, errno, "the instance's image: %s", strerror(errno));
	json_decref(layers);
	return ret;
}

/* The snapshot's directory in the instance's: image-ID, or image-ID.N when that is taken. */
static int simg_snap_name(int dfd, int64_t image_id, char *name, size_t size, struct error *err)
{
	struct stat st;

	for (int k = 0; k < SIMG_DIR_TRIES; k++) {
		if (k)
			snprintf(name, size, SIMG_SNAP_PREFIX "%lld.%d", (long long)image_id, k);
		else
			snprintf(name, size, SIMG_SNAP_PREFIX "%lld", (long long)image_id);
		if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) && errno == ENOENT)
			return 0;
	}
	return error_set(err, EEXIST, "no free name for the snapshot's directory");
}

/* The snapshot's state and memory: only its disk is wanted (the directory holds the live top). */
static void simg_drop_snapshot(int dfd, const char *name)
{
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return;
	unlinkat(fd, "state", 0);
	unlinkat(fd, "memory", 0);
	close(fd);
}

/*
 * A running or paused instance's disk: frozen by a snapshot (the VM goes
 * on in a new top), the frozen layer taken over, the frozen chain opened.
 */
static int simg_open_live(struct api_ctx *c, struct simg_job *j, int dfd, const json_t *inst,
			  struct error *err)
{
	char sdir[4096], name[64], vdir[80];
	int ret = simg_snap_name(dfd, j->image_id, name, sizeof(name), err);

	if (ret)
		return ret;
	supervisor_instance_dir(c->d, j->inst_id, sdir, sizeof(sdir));
	snprintf(vdir, sizeof(vdir), "/%s", name);
	ret = dlayer_freeze_begin(c->s, inst, name, NULL, 0, err);
	ret = ret ?: dlayer_vmm_snapshot(inst, vdir, "full", err);
	if (ret) {
		dlayer_freeze_failed(c->s, inst, sdir, name);
		return ret;
	}
	/* inst is the row from before the snapshot: its top is the frozen layer now */
	ret = dlayer_share(c->d, inst, name, NULL, 0, err);
	simg_drop_snapshot(dfd, name);
	return ret ?: overlay_open_in(&j->chain, dfd, dlayer_top(inst), err);
}

/* ---- the request ---- */

/*
 * The instance's image row (found by its file: names repeat across
 * tenants) and the id of the kernel image it boots with.
 */
static int simg_source(struct store *s, const json_t *inst, json_t **image, int64_t *kernel_id,
		       struct error *err)
{
	const char *path = simg_s(inst, "image_path"), *kpath = simg_s(inst, "kernel_path");
	json_t *list, *r;
	size_t i;
	int ret = STORE(s, image_list, 0, &list, err);

	if (ret)
		return ret;
	*image = NULL;
	*kernel_id = 0;
	json_array_foreach(list, i, r)
	{
		const char *p = simg_s(r, "path");

		if (p && path && !strcmp(p, path) && !*image)
			*image = json_incref(r);
		if (p && kpath && !strcmp(p, kpath))
			*kernel_id = simg_i(r, "id");
	}
	json_decref(list);
	if (*image && *kernel_id)
		return 0;
	json_decref(*image);
	*image = NULL;
	return error_set(err, ENOENT, "the instance's image names no kernel image to boot with");
}

/* {"name": "NAME"}: *name (in the request's body), or false after answering. */
static bool simg_parse(struct api_ctx *c, const char **name)
{
	static const char *const fields[] = {"name", NULL};
	char m[256];

	if (!api_body(c, fields, true))
		return false;
	if (httpd_field_str(c->req->body, "name", true, name, c->resp)) {
		/* copied first: api_err() replaces the body that holds it */
		snprintf(m, sizeof(m), "%s", simg_s(c->resp->body, "error") ?: "bad name");
		api_err(c, 400, "invalid_request", "name", "%s", m);
		return false;
	}
	return api_valid_name(c, "name", *name);
}

/* Whether this instance's disk can be made an image now; false after answering. */
static bool simg_admit(struct api_ctx *c, const json_t *inst, bool *live)
{
	const char *state = simg_s(inst, "state");

	*live = !strcmp(state, ST_RUNNING) || !strcmp(state, ST_PAUSED);
	if (!dlayer_has_disk(inst))
		api_err(c, 409, "conflict", NULL,
			"the instance boots from kernel image %s: it has no disk to make an image "
			"of",
			simg_s(inst, "image") ?: "?");
	else if (c->d->opts.no_jail)
		api_err(c, 409, "conflict", NULL,
			"the instance's disk layers name host paths: images of disks need the "
			"jail, and bunshind runs with --no-jail");
	else if (!*live && strcmp(state, ST_STOPPED) && strcmp(state, ST_ERROR))
		api_err(c, 409, "conflict", NULL,
			"the instance is %s: an image is made of a running, paused or stopped "
			"instance",
			state);
	else
		return true;
	return false;
}

/* The new row, its temporary file and the job around them; false after answering. */
static bool simg_reserve(struct api_ctx *c, struct simg_job *j, const json_t *inst)
{
	struct store_image_new im = {.name = j->name, .kind = "raw", .tenant_id = j->tenant_id};
	struct error err = {0};
	json_t *src;
	int ret = simg_source(c->s, inst, &src, &im.kernel_id, &err);

	if (ret) {
		api_err(c, 409, "conflict", NULL, "%s", err.msg);
		return false;
	}
	im.size = simg_i(src, "size");
	json_decref(src);
	if ((uint64_t)im.size > c->d->opts.image_max_size) {
		api_err(c, 413, "too_large", NULL,
			"the instance's disk is %lld bytes, over the image limit of %llu",
			(long long)im.size, (unsigned long long)c->d->opts.image_max_size);
		return false;
	}
	snprintf(j->tmp, sizeof(j->tmp), "%s/images/" SIMG_TMP_PREFIX "XXXXXX",
		 c->d->opts.state_dir);
	j->fd = mkostemp(j->tmp, O_CLOEXEC);
	if (j->fd < 0) {
		api_err(c, 500, "internal", NULL, "%s: %s", j->tmp, strerror(errno));
		return false;
	}
	/* The random suffix keeps two images of one name from ever sharing a file. */
	snprintf(j->dst, sizeof(j->dst), "%s/images/%s.%s", c->d->opts.state_dir, j->name,
		 j->tmp + strlen(j->tmp) - 6);
	im.path = j->dst;
	ret = STORE(c->s, image_create_saving, &im, &j->image_id, &err);
	if (!ret)
		return true;
	unlink(j->tmp);
	api_fail(c, ret, &err, ret == -EEXIST ? "name" : NULL);
	return false;
}

/* The disk's virtual size, within --image-max-size. */
static int simg_size(const struct daemon *d, struct simg_job *j, struct error *err)
{
	struct stat st;

	if (j->chain)
		j->size = j->chain->size;
	else if (fstat(j->raw, &st))
		return error_set(err, errno, "the instance's image: %s", strerror(errno));
	else
		j->size = (uint64_t)st.st_size;
	if (j->size > d->opts.image_max_size)
		return error_set(err, EFBIG, "the disk is %llu bytes, over the image limit of %llu",
				 (unsigned long long)j->size,
				 (unsigned long long)d->opts.image_max_size);
	return 0;
}

/* The disk frozen (if need be) and opened; on failure the row and file go, false after answering.
 */
static bool simg_open(struct api_ctx *c, struct simg_job *j, const json_t *inst, bool live)
{
	struct error err = {0}, e2 = {0};
	char dir[4096];
	int dfd, ret;

	supervisor_instance_dir(c->d, j->inst_id, dir, sizeof(dir));
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		ret = error_set(&err, errno, "%s: %s", dir, strerror(errno));
	else
		ret = live ? simg_open_live(c, j, dfd, inst, &err)
			   : simg_open_cold(j, dfd, inst, &err);
	if (dfd >= 0)
		close(dfd);
	if (!ret)
		ret = simg_size(c->d, j, &err);
	if (!ret)
		return true;
	if (STORE(c->s, image_delete, j->image_id, &e2))
		log_warn("image %s: %s", j->name, e2.msg);
	unlink(j->tmp);
	log_warn("instance %lld: image %s: %s", (long long)j->inst_id, j->name, err.msg);
	if (ret == -EFBIG)
		api_err(c, 413, "too_large", NULL, "%s", err.msg);
	else if (live)
		api_err(c, 502, "vmm_error", NULL, "cannot freeze the instance's disk: %s",
			err.msg);
	else
		api_err(c, 409, "conflict", NULL, "the instance's disk: %s", err.msg);
	return false;
}

/* The new image's row as the caller may see it. */
static json_t *simg_view(struct api_ctx *c, int64_t id)
{
	struct error err = {0};
	json_t *list, *r, *out = NULL;
	size_t i;

	if (STORE(c->s, image_list, 0, &list, &err))
		return NULL;
	json_array_foreach(list, i, r)
	{
		if (simg_i(r, "id") == id)
			out = json_incref(r);
	}
	json_decref(list);
	if (out && !api_is_operator(c)) { /* host paths are the operator's business */
		json_object_del(out, "path");
		json_object_del(out, "initrd_path");
	}
	return out;
}

static void simg_start(struct api_ctx *c, const json_t *inst, const char *name)
{
	struct simg_job *j = calloc(1, sizeof(*j));
	bool live = false;
	pthread_t t;

	if (!j)
		return api_err(c, 500, "internal", NULL, "out of memory");
	*j = (struct simg_job){.d = c->d,
			       .raw = -1,
			       .fd = -1,
			       .inst_id = simg_i(inst, "id"),
			       .tenant_id = simg_i(inst, "tenant_id")};
	snprintf(j->name, sizeof(j->name), "%s", name);
	snprintf(j->user, sizeof(j->user), "%s", c->who.user);
	if (!simg_admit(c, inst, &live) || !simg_reserve(c, j, inst) ||
	    !simg_open(c, j, inst, live))
		return simg_free(j);
	simg_job_begin(j);
	api_ok(c, 202, simg_view(c, j->image_id));
	if (pthread_create(&t, NULL, simg_thread, j)) {
		/* no thread: the work is done here, late but whole */
		simg_thread(j);
		return;
	}
	pthread_detach(t);
}

static void simg_post(struct api_ctx *c)
{
	const char *name;
	json_t *inst;

	if (!api_need_writer(c))
		return;
	inst = api_instance_lookup(c);
	if (!inst)
		return;
	if (simg_parse(c, &name))
		simg_start(c, inst, name);
	json_decref(inst);
}

/* ---- start-up ---- */

/* Temporary files of copies a killed bunshind never finished. */
static void simg_remove_temps(const struct daemon *d)
{
	char path[4200];
	struct dirent *e;
	DIR *dp;

	snprintf(path, sizeof(path), "%s/images", d->opts.state_dir);
	dp = opendir(path);
	while (dp && (e = readdir(dp))) {
		if (!strncmp(e->d_name, SIMG_TMP_PREFIX, strlen(SIMG_TMP_PREFIX)) &&
		    !unlinkat(dirfd(dp), e->d_name, 0))
			log_warn("images: removed %s, an image copy left unfinished", e->d_name);
	}
	if (dp)
		closedir(dp);
}

void simg_recover(struct daemon *d)
{
	struct store *s = pool_get(d->pool);
	struct error err = {0};
	char target[STORE_NAME_MAX + 16];
	json_t *list, *r;
	size_t i;

	if (STORE(s, image_list_saving, &list, &err)) {
		log_warn("images: %s", err.msg);
		list = NULL;
	}
	json_array_foreach(list, i, r)
	{
		const char *path = simg_s(r, "path");

		if (STORE(s, image_delete, simg_i(r, "id"), &err)) {
			log_warn("image %s: %s", simg_s(r, "name"), err.msg);
			continue;
		}
		if (path)
			unlink(path);
		log_warn("image %s: left saving by a bunshind that stopped: removed",
			 simg_s(r, "name"));
		snprintf(target, sizeof(target), "image %s", simg_s(r, "name"));
		if (STORE(s, event_add,
			  &(struct store_event){simg_i(r, "tenant_id"), "bunshind", "image", target,
						"removed: left saving by a bunshind that stopped"},
			  &err))
			log_warn("audit: %s", err.msg);
	}
	json_decref(list);
	pool_put(d->pool, s);
	simg_remove_temps(d);
}

const struct api_op api_server_image_ops[] = {
	{"POST", "instances/:/image", simg_post},
	{NULL, NULL, NULL},
};
