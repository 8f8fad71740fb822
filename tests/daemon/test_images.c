// SPDX-License-Identifier: MIT
/*
 * Image upload and conversion against a real bunshind and SQLite file:
 * PUT /v1/images/NAME/data streamed to disk, checksummed and bounded by
 * --image-max-size; every refused or cut-off upload leaves no file and
 * no row; qcow2 (upload or path import) becomes raw through qemu-img;
 * bunshin image upload streams a file with --progress and --json.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../src/common/httpc.h"
#include "dharness.h"

#define IMG_MAX "4M" /* the daemon's --image-max-size in these tests */

static struct dh h;

static void setup(void)
{
	static const char *const extra[] = {"--image-max-size", IMG_MAX, NULL};

	dh_start(&h, extra);
}

static void teardown(void)
{
	dh_cleanup(&h);
}

TestSuite(images, .init = setup, .fini = teardown, .timeout = 120);

struct img_src {
	const char *data;
	size_t len, off;
};

static ssize_t img_read(void *arg, char *buf, size_t size)
{
	struct img_src *s = arg;
	size_t n = s->len - s->off < size ? s->len - s->off : size;

	memcpy(buf, s->data + s->off, n);
	s->off += n;
	return (ssize_t)n;
}

/* PUT path with data as the raw body (and the checksum header when sha); the status. */
static int img_put(const char *token, const char *path, const char *data, size_t len,
		   const char *sha, json_t **out)
{
	struct img_src src = {.data = data, .len = len};
	char hdr[128];
	const char *headers[] = {sha ? hdr : NULL, NULL};
	struct httpc_request req = {.method = "PUT",
				    .path = path,
				    .token = token,
				    .body_len = len,
				    .body_src = img_read,
				    .body_arg = &src,
				    .headers = headers};
	struct httpc_response resp;
	struct error err = {0};

	snprintf(hdr, sizeof(hdr), "X-Checksum-SHA256: %s", sha ? sha : "");
	cr_assert_eq(httpc_do(h.sock, &req, &resp, &err), 0, "%s", err.msg);
	if (out)
		*out = json_loads(resp.body, 0, NULL);
	httpc_response_free(&resp);
	return resp.status;
}

static char *img_random(size_t len)
{
	char *p = malloc(len);
	int fd = open("/dev/urandom", O_RDONLY);

	cr_assert_not_null(p);
	cr_assert_eq(read(fd, p, len), (ssize_t)len);
	close(fd);
	return p;
}

/* The SHA-256 of a buffer, by sha256sum: an implementation other than the daemon's. */
static void img_sha(const char *data, size_t len, char out[65])
{
	char path[256], cmd[300];
	FILE *f;

	snprintf(path, sizeof(path), "%s.sha", h.dir);
	f = fopen(path, "w");
	cr_assert_eq(fwrite(data, 1, len, f), len);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "sha256sum %s", path);
	f = popen(cmd, "r");
	cr_assert(fscanf(f, "%64s", out) == 1);
	pclose(f);
	unlink(path);
}

/* Files in STATE/images: temporary ones (".upload-", ".convert-", ".import-") or NAME.* */
static int img_files(const char *name)
{
	char dir[256];
	struct dirent *e;
	int n = 0;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/images", h.dir);
	d = opendir(dir);
	cr_assert_not_null(d);
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (e->d_name[0] == '.' ||
		    (!strncmp(e->d_name, name, strlen(name)) && e->d_name[strlen(name)] == '.'))
			n++;
	}
	closedir(d);
	return n;
}

/* No row (as the operator sees it) and no file, temporary or not. */
static void img_nothing_left(const char *name)
{
	char path[128];

	snprintf(path, sizeof(path), "/v1/images/%s", name);
	cr_expect_eq(dh_req(&h, h.admin, "GET", path, NULL, NULL), 404, "%s has a row", name);
	cr_expect_eq(img_files(name), 0, "%s left a file behind", name);
}

static bool img_file_equals(const char *path, const char *data, size_t len)
{
	char *buf = malloc(len + 1);
	FILE *f = fopen(path, "r");
	bool same = f && fread(buf, 1, len + 1, f) == len && !memcmp(buf, data, len);

	if (f)
		fclose(f);
	free(buf);
	return same;
}

Test(images, upload_streamed_checksummed_and_stored)
{
	size_t len = 3 * 1000 * 1000 + 7;
	char *data = img_random(len), sha[65];
	json_t *out;

	img_sha(data, len, sha);
	cr_assert_eq(img_put(h.admin, "/v1/images/up/data?public=true", data, len, sha, &out), 201);
	cr_expect_eq(json_integer_value(json_object_get(out, "size")), (json_int_t)len);
	cr_expect_str_eq(json_string_value(json_object_get(out, "sha256")), sha);
	cr_expect(json_is_null(json_object_get(out, "tenant")), "public=true: no tenant");
	cr_expect(img_file_equals(json_string_value(json_object_get(out, "path")), data, len));
	json_decref(out);
	/* Without an expected checksum it is still computed; the name is now taken. */
	cr_assert_eq(img_put(h.admin, "/v1/images/up2/data", data, len, NULL, &out), 201);
	cr_expect_str_eq(json_string_value(json_object_get(out, "sha256")), sha);
	cr_expect_str_eq(json_string_value(json_object_get(out, "tenant")), "admin");
	json_decref(out);
	cr_expect_eq(img_put(h.admin, "/v1/images/up2/data", data, len, NULL, NULL), 409);
	cr_expect_eq(img_files("up2"), 1);
	free(data);
}

Test(images, checksum_mismatch_leaves_nothing)
{
	size_t len = 1 << 20;
	char *data = img_random(len), sha[65];
	json_t *out;

	img_sha(data, len, sha);
	sha[0] = sha[0] == '0' ? '1' : '0';
	cr_assert_eq(img_put(h.admin, "/v1/images/bad/data", data, len, sha, &out), 400);
	cr_expect(
		strstr(json_string_value(json_object_get(json_object_get(out, "error"), "message")),
		       "checksum mismatch"));
	json_decref(out);
	img_nothing_left("bad");
	/* A malformed checksum is refused before the body is read. */
	cr_expect_eq(img_put(h.admin, "/v1/images/bad/data", data, len, "xyz", NULL), 400);
	img_nothing_left("bad");
	free(data);
}

static int img_raw_connect(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", h.sock + strlen("unix:"));
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Sends the headers and part of the body on a raw connection, then hangs up. */
static void img_cut_off(const char *head, size_t body_part)
{
	int fd = img_raw_connect();
	char *junk = calloc(1, body_part + 1);

	cr_assert_eq(send(fd, head, strlen(head), MSG_NOSIGNAL), (ssize_t)strlen(head));
	cr_assert_eq(send(fd, junk, body_part, MSG_NOSIGNAL), (ssize_t)body_part);
	usleep(200 * 1000); /* let the daemon write part of it to its temporary file */
	close(fd);
	free(junk);
}

Test(images, interrupted_upload_leaves_nothing)
{
	char head[512];
	int left = 1;
	json_t *out;
	char *dump;

	snprintf(head, sizeof(head),
		 "PUT /v1/images/cut/data HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
		 "Content-Length: 3000000\r\n\r\n",
		 h.admin);
	img_cut_off(head, 1000000);
	for (int t = 0; t < 40 && (left = img_files("cut")); t++)
		usleep(50 * 1000);
	cr_expect_eq(left, 0, "the temporary file stayed");
	img_nothing_left("cut");
	/* Who cut what off is in the audit log. */
	cr_assert_eq(dh_req(&h, h.admin, "GET", "/v1/events", NULL, &out), 200);
	dump = json_dumps(out, 0);
	cr_expect(strstr(dump, "499 cut off after"), "no audit line");
	free(dump);
	json_decref(out);
	/* The daemon is still fine. */
	cr_expect_eq(img_put(h.admin, "/v1/images/cut/data", "abc", 3, NULL, NULL), 201);
}

Test(images, over_the_size_limit_is_413_and_leaves_nothing)
{
	size_t len = (4 << 20) + 1;
	char *data = calloc(1, len);
	json_t *out;

	cr_assert_eq(img_put(h.admin, "/v1/images/big/data", data, len, NULL, &out), 413);
	cr_expect_str_eq(dh_code(out), "too_large");
	json_decref(out);
	img_nothing_left("big");
	cr_expect_eq(img_put(h.admin, "/v1/images/big/data", data, len - 1, NULL, NULL), 201);
	free(data);
}

Test(images, no_content_length_is_411)
{
	char head[512], resp[1024] = "";
	int fd = img_raw_connect();
	size_t len = 0;
	ssize_t n;

	snprintf(head, sizeof(head),
		 "PUT /v1/images/chunky/data HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
		 "Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		 h.admin);
	send(fd, head, strlen(head), MSG_NOSIGNAL);
	while (len < sizeof(resp) - 1 && (n = read(fd, resp + len, sizeof(resp) - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	cr_expect(!strncmp(resp, "HTTP/1.1 411", 12), "%s", resp);
	img_nothing_left("chunky");
}

Test(images, who_may_upload)
{
	char member[80], viewer[80];
	json_t *out;

	dh_tenant_user(&h, "team", "mem", "member", member, sizeof(member));
	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/users",
			    "{\"name\":\"view\",\"tenant\":\"team\",\"role\":\"viewer\"}", NULL),
		     201);
	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/tokens", "{\"user\":\"view\"}", &out), 201);
	snprintf(viewer, sizeof(viewer), "%s", json_string_value(json_object_get(out, "token")));
	json_decref(out);

	cr_expect_eq(img_put(viewer, "/v1/images/v/data", "abc", 3, NULL, NULL), 403);
	img_nothing_left("v");
	cr_expect_eq(img_put(member, "/v1/images/pub/data?public=true", "abc", 3, NULL, NULL), 403);
	img_nothing_left("pub");
	cr_expect_eq(img_put("bsn_nope", "/v1/images/x/data", "abc", 3, NULL, NULL), 401);
	cr_assert_eq(img_put(member, "/v1/images/mine/data", "abc", 3, NULL, &out), 201);
	cr_expect_str_eq(json_string_value(json_object_get(out, "tenant")), "team");
	cr_expect_null(json_object_get(out, "path"), "a host path is the operator's business");
	json_decref(out);
	/* The viewer sees the tenant's image, another tenant does not. */
	cr_expect_eq(dh_req(&h, viewer, "GET", "/v1/images/mine", NULL, NULL), 200);
	cr_expect_eq(img_put(member, "/v1/images/9bad/data", "abc", 3, NULL, NULL), 400);
	cr_expect_eq(img_put(member, "/v1/images/k/data?kind=qcow2", "abc", 3, NULL, NULL), 400);
}

static bool img_have_qemu_img(void)
{
	return !system("qemu-img --version >/dev/null 2>&1");
}

/* An 8 MiB qcow2 file at path whose first MiB is 0xab. */
static void img_make_qcow2(const char *path)
{
	char cmd[600], raw[300];

	if (!system("qemu-io --version >/dev/null 2>&1")) {
		snprintf(cmd, sizeof(cmd),
			 "qemu-img create -q -f qcow2 %s 8M && "
			 "qemu-io -c 'write -P 0xab 0 1M' %s >/dev/null",
			 path, path);
	} else {
		snprintf(raw, sizeof(raw), "%s.raw", path);
		snprintf(cmd, sizeof(cmd),
			 "truncate -s 8M %s && printf '\\253%%.0s' $(seq 1048576) | "
			 "dd of=%s conv=notrunc status=none && "
			 "qemu-img convert -q -f raw -O qcow2 %s %s && rm -f %s",
			 raw, raw, raw, path, raw);
	}
	cr_assert_eq(system(cmd), 0, "%s", cmd);
}

static char *img_slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	cr_assert_not_null(f, "%s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* The converted image is raw: 8 MiB, the first MiB 0xab, the rest zero. */
static void img_expect_converted(json_t *out)
{
	size_t len;
	char *raw;

	cr_expect_eq(json_integer_value(json_object_get(out, "size")), 8 << 20);
	raw = img_slurp(json_string_value(json_object_get(out, "path")), &len);
	cr_assert_eq(len, 8u << 20);
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)raw[i] != (i < (1u << 20) ? 0xab : 0)) {
			cr_expect_fail("byte %zu is 0x%02x", i, (unsigned char)raw[i]);
			break;
		}
	}
	free(raw);
}

Test(images, qcow2_converted_on_upload_and_import)
{
	char q[256], body[512];
	size_t len;
	char *data;
	json_t *out;

	if (!img_have_qemu_img()) {
		cr_skip_test("qemu-img is not installed (qemu-utils)");
		return;
	}
	teardown(); /* 8 MiB of raw is over these tests' limit: a daemon with a larger one */
	{
		static const char *const extra[] = {"--image-max-size", "16M", NULL};

		dh_start(&h, extra);
	}
	snprintf(q, sizeof(q), "%s.qcow2", h.dir);
	img_make_qcow2(q);
	data = img_slurp(q, &len);
	cr_assert_eq(img_put(h.admin, "/v1/images/q/data", data, len, NULL, &out), 201);
	cr_expect_str_eq(json_string_value(json_object_get(out, "converted_from")), "qcow2");
	img_expect_converted(out);
	json_decref(out);
	cr_expect_eq(img_files("q"), 1, "the qcow2 file was kept beside the raw one");

	snprintf(body, sizeof(body), "{\"name\":\"qi\",\"path\":\"%s\"}", q);
	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/images", body, &out), 201);
	img_expect_converted(out);
	json_decref(out);

	/* Truncated: qemu-img check refuses it with its reason. */
	cr_assert_eq(img_put(h.admin, "/v1/images/trunc/data", data, 1000, NULL, &out), 400);
	cr_expect(
		strstr(json_string_value(json_object_get(json_object_get(out, "error"), "message")),
		       "not a usable qcow2 image"));
	json_decref(out);
	img_nothing_left("trunc");
	/* A bad cluster size in the header. */
	data[23] = 5;
	cr_expect_eq(img_put(h.admin, "/v1/images/hdr/data", data, len, NULL, NULL), 400);
	img_nothing_left("hdr");
	free(data);
	unlink(q);
}

Test(images, qcow2_with_a_backing_file_is_refused)
{
	char base[256], top[256], cmd[700];
	size_t len;
	char *data;

	if (!img_have_qemu_img()) {
		cr_skip_test("qemu-img is not installed (qemu-utils)");
		return;
	}
	snprintf(base, sizeof(base), "%s.base", h.dir);
	snprintf(top, sizeof(top), "%s.top", h.dir);
	snprintf(cmd, sizeof(cmd),
		 "qemu-img create -q -f qcow2 %s 1M && "
		 "qemu-img create -q -f qcow2 -b %s -F qcow2 %s",
		 base, base, top);
	cr_assert_eq(system(cmd), 0);
	data = img_slurp(top, &len);
	cr_expect_eq(img_put(h.admin, "/v1/images/bk/data", data, len, NULL, NULL), 400);
	img_nothing_left("bk");
	free(data);
	unlink(top);
	unlink(base);
}

/* The daemon's peak resident memory (VmHWM), in KiB. */
static long img_daemon_hwm_kib(void)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)h.pid);
	f = fopen(path, "r");
	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* bunshin with these arguments; stdout and stderr into files under the state dir. */
static int img_cli(const char *const *args, char **out, char **err)
{
	const char *argv[20] = {getenv("BUNSHIN_CLI"), "--endpoint", h.sock, "--token", h.admin};
	char opath[256], epath[256];
	int n = 5, st = 0;
	size_t len;
	pid_t pid;

	for (; *args && n < 19; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	snprintf(opath, sizeof(opath), "%s.out", h.dir);
	snprintf(epath, sizeof(epath), "%s.err", h.dir);
	pid = fork();
	if (!pid) {
		int o = open(opath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int e = open(epath, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		dup2(o, 1);
		dup2(e, 2);
		execv(argv[0], (char **)argv);
		_exit(127);
	}
	waitpid(pid, &st, 0);
	*out = img_slurp(opath, &len);
	*out = realloc(*out, len + 1);
	(*out)[len] = 0;
	*err = img_slurp(epath, &len);
	*err = realloc(*err, len + 1);
	(*err)[len] = 0;
	unlink(opath);
	unlink(epath);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(images, cli_upload_with_progress_and_json)
{
	size_t len = 2 * 1000 * 1000;
	char *data = img_random(len), sha[65], file[256], bad[65];
	char *out, *err;
	json_t *j;
	FILE *f;

	img_sha(data, len, sha);
	snprintf(file, sizeof(file), "%s.img", h.dir);
	f = fopen(file, "w");
	cr_assert_eq(fwrite(data, 1, len, f), len);
	fclose(f);
	cr_assert_eq(img_cli((const char *[]){"--json", "image", "upload", "cli", file,
					      "--progress", "--sha256", sha, "--public", NULL},
			     &out, &err),
		     0, "%s", err);
	j = json_loads(out, 0, NULL);
	cr_assert_not_null(j, "not JSON: %s", out);
	cr_expect_str_eq(json_string_value(json_object_get(j, "sha256")), sha);
	cr_expect_eq(json_integer_value(json_object_get(j, "size")), (json_int_t)len);
	cr_expect(img_file_equals(json_string_value(json_object_get(j, "path")), data, len));
	cr_expect(strstr(err, "100%") && strstr(err, "MB/s"), "no progress: %s", err);
	json_decref(j);
	free(out);
	free(err);

	/* Without --progress and with stderr not a terminal: quiet. A wrong checksum: 1. */
	memset(bad, 'a', 64);
	bad[64] = 0;
	cr_expect_eq(
		img_cli((const char *[]){"image", "upload", "cli2", file, "--sha256", bad, NULL},
			&out, &err),
		1);
	cr_expect(strstr(err, "checksum mismatch") && !strstr(err, "MB/s"), "%s", err);
	free(out);
	free(err);
	img_nothing_left("cli2");
	cr_expect_eq(img_cli((const char *[]){"image", "upload", "cli3", "/nonexistent", NULL},
			     &out, &err),
		     2);
	free(out);
	free(err);
	cr_expect_eq(img_cli((const char *[]){"image", "upload", "cli", file, "--public", NULL},
			     &out, &err),
		     1, "the name is taken");
	free(out);
	free(err);
	unlink(file);
	free(data);
}

Test(images, a_large_upload_is_streamed_not_held)
{
	size_t len = 256u << 20;
	char file[256];
	char *out, *err;
	long before, grew;
	json_t *j;
	int fd;

	teardown(); /* a daemon whose limit lets 256 MiB through */
	{
		static const char *const extra[] = {"--image-max-size", "1G", NULL};

		dh_start(&h, extra);
	}
	snprintf(file, sizeof(file), "%s.big", h.dir);
	fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert(fd >= 0 && !ftruncate(fd, (off_t)len));
	close(fd);
	before = img_daemon_hwm_kib();
	cr_assert_eq(img_cli((const char *[]){"--json", "image", "upload", "big", file, NULL}, &out,
			     &err),
		     0, "%s", err);
	j = json_loads(out, 0, NULL);
	cr_expect_eq(json_integer_value(json_object_get(j, "size")), (json_int_t)len);
	/* sha256sum of 256 MiB of zeros */
	cr_expect_str_eq(json_string_value(json_object_get(j, "sha256")),
			 "a6d72ac7690f53be6ae46ba88506bd97302a093f7108472bd9efc3cefda06484");
	/* Far less than the body: it went to disk piece by piece. */
	grew = img_daemon_hwm_kib() - before;
	cr_expect_lt(grew, 64 * 1024, "bunshind grew by %ld KiB", grew);
	json_decref(j);
	free(out);
	free(err);
	unlink(file);
}

Test(images, a_bad_image_max_size_is_a_usage_error)
{
	char cmd[512];
	int st;

	snprintf(cmd, sizeof(cmd), "'%s' --state-dir %s/x --image-max-size 12Q >/dev/null 2>&1",
		 getenv("BUNSHIND"), h.dir);
	st = system(cmd);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 2, "status %d", st);
	snprintf(cmd, sizeof(cmd), "'%s' --state-dir %s/x --image-max-size 0 >/dev/null 2>&1",
		 getenv("BUNSHIND"), h.dir);
	st = system(cmd);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 2, "status %d", st);
}
