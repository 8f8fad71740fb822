// SPDX-License-Identifier: MIT
/*
 * Images that arrive as bytes: the streamed upload (PUT
 * /v1/images/NAME/data) and the qcow2 conversion every import goes
 * through. An upload is written to STATE_DIR/images/.upload-XXXXXX while
 * its SHA-256 is computed; only a whole, checksum-matching body is
 * fsync'd, renamed to its real name and given its row. Anything else
 * (a client gone midway, a wrong checksum, a full disk) unlinks the
 * temporary file, so no half image is ever visible.
 *
 * The format comes from the file's magic, never from the client: a qcow2
 * file is converted to raw by qemu-img, in a child process under a
 * timeout, into another temporary file.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <nettle/sha2.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/util.h"
#include "api.h"

#define DIMAGE_CONVERT_TIMEOUT_MS (30 * 60 * 1000)
#define DIMAGE_QCOW2_MAGIC	  "QFI\xfb"
#define DIMAGE_QCOW2_DATA_FILE	  (1ULL << 2) /* incompatible feature: an external data file */
#define DIMAGE_REASON_MAX	  400

extern char **environ;

static uint64_t dimage_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static uint32_t dimage_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/*
 * 1 for a qcow2 file qemu-img may convert, 0 for anything else (raw),
 * or an error: a qcow2 header naming a backing or data file would have
 * qemu-img read another host file into the image.
 */
static int dimage_probe(const struct daemon *d, const char *path, struct error *err)
{
	uint8_t h[104] = {0};
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;
	uint64_t vsize;

	if (fd < 0)
		return error_set(err, errno, "%s: %s", path, strerror(errno));
	n = pread(fd, h, sizeof(h), 0);
	close(fd);
	if (n < 4 || memcmp(h, DIMAGE_QCOW2_MAGIC, 4))
		return 0;
	if (n < 72)
		return error_set(err, EINVAL, "truncated qcow2 header");
	if (dimage_be64(h + 8))
		return error_set(err, EINVAL, "qcow2 images with a backing file are refused");
	if (dimage_be32(h + 32))
		return error_set(err, EINVAL, "encrypted qcow2 images are refused");
	if (dimage_be32(h + 4) >= 3 && n >= 80 && (dimage_be64(h + 72) & DIMAGE_QCOW2_DATA_FILE))
		return error_set(err, EINVAL,
				 "qcow2 images with an external data file are refused");
	vsize = dimage_be64(h + 24);
	if (vsize > d->opts.image_max_size)
		return error_set(err, EFBIG,
				 "the qcow2 image's size (%llu bytes) is over the limit "
				 "of %llu",
				 (unsigned long long)vsize,
				 (unsigned long long)d->opts.image_max_size);
	return 1;
}

/* Collects the child's stderr until it closes or the deadline; its last line into reason. */
static bool dimage_drain(int fd, char *reason, size_t size, int timeout_ms)
{
	struct timespec t0, t;
	char buf[4096];
	size_t len = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		long left;
		ssize_t n;

		clock_gettime(CLOCK_MONOTONIC, &t);
		left = timeout_ms -
		       ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
		if (left <= 0 || poll(&pfd, 1, (int)left) == 0)
			return false;
		n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == sizeof(buf) - 1) { /* keep the tail: the reason comes last */
			memmove(buf, buf + len / 2, len - len / 2);
			len -= len / 2;
		}
	}
	while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	buf[len] = 0;
	snprintf(reason, size, "%s", strrchr(buf, '\n') ? strrchr(buf, '\n') + 1 : buf);
	return true;
}

/* Runs qemu-img with argv, killed after the timeout: its exit status, its last stderr line. */
static int dimage_qemu_img(char **argv, char *reason, size_t size, struct error *err)
{
	posix_spawn_file_actions_t fa;
	int pipefd[2], status = 0, ret;
	bool done;
	pid_t pid;

	if (pipe2(pipefd, O_CLOEXEC))
		return error_set(err, errno, "pipe: %s", strerror(errno));
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
	ret = posix_spawnp(&pid, "qemu-img", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	if (ret) {
		close(pipefd[0]);
		return error_set(err, ENOTSUP, "qcow2 images need qemu-img (qemu-utils): %s",
				 strerror(ret));
	}
	done = dimage_drain(pipefd[0], reason, size, DIMAGE_CONVERT_TIMEOUT_MS);
	close(pipefd[0]);
	if (!done)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!done)
		return error_set(err, ETIMEDOUT, "qemu-img %s: no result within %d s", argv[1],
				 DIMAGE_CONVERT_TIMEOUT_MS / 1000);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* The reason without the temporary file's host path, which is no client's business. */
static void dimage_scrub(char *reason, const char *path)
{
	char *p = strstr(reason, path);
	size_t n = strlen(path);

	if (p)
		memmove(p, "the image", 9), memmove(p + 9, p + n, strlen(p + n) + 1);
}

/*
 * qemu-img check, then convert -O raw src dst. The check is what catches
 * a truncated file: convert alone reads what is missing as zeros.
 */
static int dimage_qemu_convert(const char *src, const char *dst, struct error *err)
{
	char *check[] = {"qemu-img", "check", "-f", "qcow2", (char *)src, NULL};
	char *convert[] = {"qemu-img", "convert", "-q",	       "-f",	    "qcow2",
			   "-O",       "raw",	  (char *)src, (char *)dst, NULL};
	char reason[DIMAGE_REASON_MAX] = "";
	int ret = dimage_qemu_img(check, reason, sizeof(reason), err);

	if (ret < 0)
		return ret;
	dimage_scrub(reason, src);
	if (ret && ret != 3) /* 3: leaked clusters only, harmless to a copy */
		return error_set(err, EINVAL, "not a usable qcow2 image: %s",
				 reason[0] ? reason : "qemu-img check failed");
	reason[0] = 0;
	ret = dimage_qemu_img(convert, reason, sizeof(reason), err);
	if (ret < 0)
		return ret;
	dimage_scrub(reason, src);
	if (ret)
		return error_set(err, EINVAL, "not a usable qcow2 image: %s",
				 reason[0] ? reason : "qemu-img convert failed");
	return 0;
}

/* Converts the qcow2 file tmp to raw; tmp then names the raw file (the qcow2 one is gone). */
static int dimage_convert(const struct daemon *d, char *tmp, size_t size, struct error *err)
{
	char raw[4200];
	int fd, ret;

	snprintf(raw, sizeof(raw), "%s/images/.convert-XXXXXX", d->opts.state_dir);
	fd = mkostemp(raw, O_CLOEXEC);
	if (fd < 0)
		return error_set(err, errno, "%s: %s", raw, strerror(errno));
	close(fd);
	ret = dimage_qemu_convert(tmp, raw, err);
	if (!ret) {
		fd = open(raw, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fsync(fd))
			ret = error_set(err, errno, "%s: %s", raw, strerror(errno));
		if (fd >= 0)
			close(fd);
	}
	unlink(tmp);
	tmp[0] = 0; /* gone: its name may be another upload's by now */
	if (ret) {
		unlink(raw);
		return ret;
	}
	snprintf(tmp, size, "%s", raw);
	return 0;
}

int dimage_finish(const struct daemon *d, char *tmp, size_t tmp_size, const char *name, char *dst,
		  size_t size, char sha[AUTH_SHA256_HEX], int64_t *bytes, bool hashed,
		  bool *converted, struct error *err)
{
	int ret = dimage_probe(d, tmp, err);

	*converted = ret > 0;
	if (ret > 0)
		ret = dimage_convert(d, tmp, tmp_size, err);
	if (ret >= 0 && (*converted || !hashed))
		ret = auth_hash_file(tmp, sha, bytes, err);
	if (ret < 0)
		goto out;
	/* The random suffix keeps two imports of one name from ever sharing a file. */
	snprintf(dst, size, "%s/images/%s.%s", d->opts.state_dir, name, tmp + strlen(tmp) - 6);
	if (rename(tmp, dst))
		ret = error_set(err, errno, "%s: %s", dst, strerror(errno));
out:
	if (ret < 0 && tmp[0])
		unlink(tmp);
	return ret < 0 ? ret : 0;
}

/* ---- the streamed upload ---- */

struct dimage_upload {
	struct daemon *d;
	struct store_principal who;
	char name[STORE_NAME_MAX + 1];
	char kind[8];
	char *cmdline;
	int64_t tenant_id;
	char tmp[4200];
	int fd;
	uint64_t expect, got;
	char want[AUTH_SHA256_HEX]; /* the checksum the client announced, or "" */
	struct sha256_ctx sha;
	int write_err; /* the first write's errno: the rest of the body is discarded */
	double t0;
	bool initrd;	   /* PUT .../initrd: a kernel image's initrd, not a new image */
	int64_t image_id;  /* initrd: the kernel image it is for */
	int64_t kernel_id; /* raw: ?kernel=NAME, the kernel image it boots with */
};

static double dimage_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* "/v1/images/NAME/data" (or "/initrd") to NAME; false for any other path. */
static bool dimage_path_name(const char *path, char *name, size_t size, bool *initrd)
{
	const char *p;
	size_t n;

	if (strncmp(path, "/v1/images/", strlen("/v1/images/")))
		return false;
	p = path + strlen("/v1/images/");
	n = strcspn(p, "/");
	*initrd = !strcmp(p + n, "/initrd");
	if (!n || n >= size || (strcmp(p + n, "/data") && !*initrd))
		return false;
	memcpy(name, p, n);
	name[n] = 0;
	return true;
}

static bool dimage_hex64(const char *s)
{
	return s && strlen(s) == 64 && strspn(s, "0123456789abcdefABCDEF") == 64;
}

/* Whose image it becomes: the caller's tenant, public (operator), or ?tenant= (operator). */
static bool dimage_owner(struct api_ctx *c, struct dimage_upload *u)
{
	const char *pub = httpd_query(c->req, "public"), *tenant = httpd_query(c->req, "tenant");
	struct error err = {0};
	json_t *t;
	int ret;

	u->tenant_id = c->who.tenant_id;
	if (pub && strcmp(pub, "true") && strcmp(pub, "false")) {
		api_err(c, 400, "invalid_request", "public", "public must be true or false");
		return false;
	}
	if ((pub && !strcmp(pub, "true")) || tenant) {
		if (!api_need_operator(c))
			return false;
		if (tenant && pub && !strcmp(pub, "true")) {
			api_err(c, 400, "invalid_request", "tenant",
				"an image is public or a tenant's, not both");
			return false;
		}
		u->tenant_id = 0;
	}
	if (!tenant)
		return true;
	ret = STORE(c->s, tenant_get, tenant, &t, &err);
	if (ret) {
		api_fail(c, ret, &err, "tenant");
		return false;
	}
	u->tenant_id = json_integer_value(json_object_get(t, "id"));
	json_decref(t);
	return true;
}

/* Content-Length (required, within the limit), kind, checksum; false after answering. */
static bool dimage_params(struct api_ctx *c, struct dimage_upload *u)
{
	const char *cl = httpd_header(c->req, "Content-Length");
	const char *kind = httpd_query(c->req, "kind") ?: "raw";
	const char *want =
		httpd_header(c->req, "X-Checksum-SHA256") ?: httpd_query(c->req, "sha256");
	const char *cmdline = httpd_query(c->req, "cmdline");
	uint64_t max = c->d->opts.image_max_size;

	if (httpd_header(c->req, "Transfer-Encoding") || !cl ||
	    parse_uint(cl, 0, UINT64_MAX, &u->expect)) {
		api_err(c, 411, "length_required", NULL,
			"an upload needs a Content-Length (no chunked encoding)");
		return false;
	}
	if (!u->expect || u->expect > max) {
		api_err(c, 413, "too_large", NULL, "an image must be 1 to %llu bytes, not %llu",
			(unsigned long long)max, (unsigned long long)u->expect);
		return false;
	}
	if (u->initrd && httpd_query(c->req, "kind")) {
		api_err(c, 400, "invalid_request", "kind", "an initrd has no kind");
		return false;
	}
	if (strcmp(kind, "raw") && strcmp(kind, "kernel")) {
		api_err(c, 400, "invalid_request", "kind", "kind must be raw or kernel");
		return false;
	}
	snprintf(u->kind, sizeof(u->kind), "%s", kind);
	if (want && !dimage_hex64(want)) {
		api_err(c, 400, "invalid_request", "sha256",
			"the expected SHA-256 must be 64 hex digits");
		return false;
	}
	for (size_t i = 0; want && i < 64; i++)
		u->want[i] = (char)tolower((unsigned char)want[i]);
	if (cmdline && !(u->cmdline = strdup(cmdline))) {
		api_err(c, 500, "internal", NULL, "out of memory");
		return false;
	}
	return true;
}

/* A raw upload's ?kernel=NAME: a kernel image the new image's owner sees. */
static bool dimage_admit_kernel(struct api_ctx *c, struct dimage_upload *u)
{
	struct error err = {0};
	int ret = dboot_kernel_ref(c->s, u->tenant_id, u->kind, httpd_query(c->req, "kernel"),
				   &u->kernel_id, &err);

	if (ret)
		api_fail(c, ret, &err, "kernel");
	return !ret;
}

/* PUT .../initrd: the owner's own kernel image, which has no initrd yet. */
static bool dimage_admit_initrd(struct api_ctx *c, struct dimage_upload *u)
{
	struct error err = {0};
	const char *owner, *kind;
	bool ok = false;
	json_t *im;
	int ret = STORE(c->s, image_get, u->tenant_id, u->name, &im, &err);

	if (ret) {
		api_fail(c, ret, &err, "name");
		return false;
	}
	owner = json_string_value(json_object_get(im, "tenant"));
	kind = json_string_value(json_object_get(im, "kind"));
	u->image_id = json_integer_value(json_object_get(im, "id"));
	if (u->tenant_id ? !owner : !!owner) /* a public image of that name is not the tenant's */
		api_err(c, 404, "not_found", "name", "no such image");
	else if (strcmp(kind, "kernel"))
		api_err(c, 400, "invalid_request", "name",
			"image %s is a raw image: only a kernel image carries an initrd", u->name);
	else if (json_string_value(json_object_get(im, "initrd_sha256")))
		api_err(c, 409, "conflict", "name", "image %s already has an initrd", u->name);
	else
		ok = true;
	json_decref(im);
	return ok;
}

/* Everything that can be refused before a byte of the body is read. */
static bool dimage_admit(struct api_ctx *c, struct dimage_upload *u)
{
	struct error err = {0};
	json_t *im;
	int ret;

	if (!api_stream_authenticate(c) || !api_need_writer(c) ||
	    !api_valid_name(c, "name", u->name) || !dimage_owner(c, u) || !dimage_params(c, u))
		return false;
	snprintf(c->target, sizeof(c->target), "image %s", u->name);
	if (u->initrd ? !dimage_admit_initrd(c, u) : !dimage_admit_kernel(c, u))
		return false;
	ret = STORE(c->s, image_get, u->tenant_id, u->name, &im, &err);
	if (!ret && !u->initrd) {
		const char *owner = json_string_value(json_object_get(im, "tenant"));
		bool same = u->tenant_id ? owner != NULL : owner == NULL;

		json_decref(im);
		if (same) {
			api_err(c, 409, "conflict", "name", "image %s already exists", u->name);
			return false;
		}
	} else if (!ret)
		json_decref(im);
	snprintf(u->tmp, sizeof(u->tmp), "%s/images/.upload-XXXXXX", c->d->opts.state_dir);
	u->fd = mkostemp(u->tmp, O_CLOEXEC);
	if (u->fd < 0) {
		api_err(c, 500, "internal", NULL, "%s: %s", u->tmp, strerror(errno));
		return false;
	}
	return true;
}

static void dimage_free(struct dimage_upload *u)
{
	if (u->fd >= 0)
		close(u->fd);
	free(u->cmdline);
	free(u);
}

static void *dimage_begin(void *ctx, const struct httpd_request *req, struct httpd_response *resp)
{
	struct api_ctx c = {.d = ctx, .req = req, .resp = resp};
	struct dimage_upload *u;
	bool ok;

	if (strcmp(req->method, "PUT"))
		return NULL;
	u = calloc(1, sizeof(*u));
	if (!u || !dimage_path_name(req->path, u->name, sizeof(u->name), &u->initrd)) {
		free(u);
		return NULL; /* not ours: the route table answers */
	}
	u->d = ctx;
	u->fd = -1;
	u->t0 = dimage_now();
	c.s = pool_get(c.d->pool);
	ok = dimage_admit(&c, u);
	u->who = c.who;
	if (!ok && c.who.user[0])
		api_stream_audit(&c);
	pool_put(c.d->pool, c.s);
	if (ok) {
		sha256_init(&u->sha);
		return u;
	}
	metrics_observe(resp->status, dimage_now() - u->t0);
	dimage_free(u);
	return NULL;
}

static void dimage_data(void *state, const char *buf, size_t len)
{
	struct dimage_upload *u = state;

	u->got += len;
	if (u->write_err)
		return;
	sha256_update(&u->sha, len, (const uint8_t *)buf);
	u->write_err = -write_full(u->fd, buf, len);
}

/* The image row with this id: by name, a public image and a tenant's of that name would mix. */
static int dimage_row(struct store *s, int64_t id, json_t **out, struct error *err)
{
	json_t *list, *r;
	size_t i;
	int ret = STORE(s, image_list, 0, &list, err);

	if (ret)
		return ret;
	*out = NULL;
	json_array_foreach(list, i, r)
	{
		if (json_integer_value(json_object_get(r, "id")) == id)
			*out = json_incref(r);
	}
	json_decref(list);
	return *out ? 0 : error_set(err, ENOENT, "image %lld vanished", (long long)id);
}

/* A whole initrd: filed beside its kernel image, then recorded in its row. */
static int dimage_commit_initrd(struct api_ctx *c, struct dimage_upload *u, json_t **out,
				struct error *err)
{
	char sha[AUTH_SHA256_HEX], dst[4200];
	int64_t size;
	int ret = dboot_initrd_finish(c->d, u->tmp, u->name, dst, sizeof(dst), sha, &size, err);

	if (ret)
		return ret;
	u->tmp[0] = 0; /* renamed */
	ret = STORE(c->s, image_set_initrd, u->image_id, dst, size, sha, err);
	if (ret) {
		unlink(dst);
		return ret;
	}
	return dimage_row(c->s, u->image_id, out, err);
}

/* The body is whole: check it, convert it if need be, then file and row in one step. */
static int dimage_commit(struct api_ctx *c, struct dimage_upload *u, json_t **out,
			 struct error *err)
{
	struct store_image_new im = {
		.name = u->name, .kind = u->kind, .cmdline = u->cmdline, .tenant_id = u->tenant_id};
	uint8_t digest[SHA256_DIGEST_SIZE];
	char sha[AUTH_SHA256_HEX], dst[4200];
	bool converted;
	int64_t id;
	int ret;

	if (u->write_err)
		return error_set(err, u->write_err, "writing the image: %s",
				 strerror(u->write_err));
	if (u->got != u->expect)
		return error_set(err, EINVAL, "%llu bytes received, Content-Length said %llu",
				 (unsigned long long)u->got, (unsigned long long)u->expect);
	sha256_digest(&u->sha, sizeof(digest), digest);
	for (size_t i = 0; i < sizeof(digest); i++)
		sprintf(sha + 2 * i, "%02x", digest[i]);
	if (u->want[0] && strcmp(u->want, sha))
		return error_set(err, EINVAL,
				 "checksum mismatch: the upload's SHA-256 is %s, "
				 "%s was expected",
				 sha, u->want);
	if (fsync(u->fd))
		return error_set(err, errno, "fsync: %s", strerror(errno));
	close(u->fd);
	u->fd = -1;
	if (u->initrd)
		return dimage_commit_initrd(c, u, out, err);
	im.size = (int64_t)u->got;
	im.kernel_id = u->kernel_id;
	ret = dimage_finish(c->d, u->tmp, sizeof(u->tmp), u->name, dst, sizeof(dst), sha, &im.size,
			    true, &converted, err);
	u->tmp[0] = 0; /* dimage_finish() removed or renamed it */
	if (ret)
		return ret;
	im.path = dst;
	im.sha256 = sha;
	ret = STORE(c->s, image_create, &im, &id, err);
	if (!ret)
		ret = dimage_row(c->s, id, out, err);
	if (ret) {
		unlink(dst);
		return ret;
	}
	if (converted)
		json_object_set_new(*out, "converted_from", json_string("qcow2"));
	return 0;
}

static void dimage_end(void *state, const struct httpd_request *req, struct httpd_response *resp)
{
	struct dimage_upload *u = state;
	struct api_ctx c = {.d = u->d, .req = req, .resp = resp, .who = u->who};
	struct error err = {0};
	json_t *out = NULL;
	int ret;

	c.s = pool_get(c.d->pool);
	snprintf(c.target, sizeof(c.target), "image %s", u->name);
	ret = dimage_commit(&c, u, &out, &err);
	if (ret == -EFBIG)
		api_err(&c, 413, "too_large", NULL, "%s", err.msg);
	else if (ret)
		api_fail(&c, ret, &err, ret == -EEXIST ? "name" : NULL);
	else {
		if (!api_is_operator(&c)) /* host paths are the operator's business */
			json_object_del(out, "initrd_path");
		if (!api_is_operator(&c))
			json_object_del(out, "path");
		api_ok(&c, 201, out);
	}
	if (u->tmp[0])
		unlink(u->tmp);
	api_stream_audit(&c);
	pool_put(c.d->pool, c.s);
	metrics_observe(resp->status, dimage_now() - u->t0);
	if (!ret)
		log_info("image %s uploaded by %s: %llu bytes", u->name, u->who.user,
			 (unsigned long long)u->got);
	dimage_free(u);
}

/* The audit log's line for an upload the client cut off (no request is left to answer). */
static void dimage_audit_cut(struct dimage_upload *u)
{
	char action[128], target[128], result[160];
	struct store_event ev = {.tenant_id = u->who.tenant_id,
				 .who = u->who.user,
				 .action = action,
				 .target = target,
				 .result = result};
	struct error err = {0};
	struct store *s = pool_get(u->d->pool);

	snprintf(action, sizeof(action), "PUT /v1/images/%s/data", u->name);
	snprintf(target, sizeof(target), "image %s", u->name);
	snprintf(result, sizeof(result), "499 cut off after %llu of %llu bytes",
		 (unsigned long long)u->got, (unsigned long long)u->expect);
	if (STORE(s, event_add, &ev, &err))
		log_warn("audit: %s", err.msg);
	pool_put(u->d->pool, s);
}

static void dimage_abort(void *state)
{
	struct dimage_upload *u = state;

	log_warn("image %s: upload by %s cut off after %llu of %llu bytes; nothing kept", u->name,
		 u->who.user, (unsigned long long)u->got, (unsigned long long)u->expect);
	unlink(u->tmp);
	dimage_audit_cut(u);
	dimage_free(u);
}

const struct httpd_stream_ops dimage_stream_ops = {
	.begin = dimage_begin,
	.data = dimage_data,
	.end = dimage_end,
	.abort = dimage_abort,
};
