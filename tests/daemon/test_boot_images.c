// SPDX-License-Identifier: MIT
/*
 * Raw disk images that boot (AMI-style: the kernel image they name, and
 * themselves as the root disk, a copy-on-write overlay per instance) and
 * kernel images with an initrd, through a real bunshind booting the test
 * guest: test=blk-verify checks the disk holds what the image held,
 * test=virtio-blk writes to it, test=boot checks the initrd's size and
 * CRC-32. Then every refused path, each a 4xx naming the field.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../src/common/httpc.h"
#include "dharness.h"
#include <sqlite3.h>

#define BI_DISK_BLOCKS 1024 /* 4 MiB */

static struct dh h;
static char work[256]; /* the test's own files, beside the state directory */

#define BI_MAX_SIZE "8M" /* --image-max-size: initrds are held to it as images are */

static void setup(void)
{
	static const char *const extra[] = {"--image-max-size", BI_MAX_SIZE, NULL};

	dh_start_work(&h, extra, work, sizeof(work));
}

static void teardown(void)
{
	dh_cleanup_work(&h, work);
}

TestSuite(bootimg, .init = setup, .fini = teardown, .timeout = 240);

/* What test=blk-verify expects: word i of 4 KiB block b (as test_migrate.c writes it). */
static void bi_pattern_disk(const char *path)
{
	static uint64_t w[512];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	cr_assert_geq(fd, 0);
	for (uint64_t b = 0; b < BI_DISK_BLOCKS; b++) {
		for (uint64_t i = 0; i < 512; i++)
			w[i] = (b << 32) ^ i ^ 0x5bd1e9955bd1e995ULL;
		cr_assert_eq(write(fd, w, sizeof(w)), (ssize_t)sizeof(w));
	}
	close(fd);
}

static void bi_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
}

/* zlib's CRC-32, bit by bit: what guest/boot.c compares the initrd with. */
static uint32_t bi_crc32(const uint8_t *p, size_t n)
{
	uint32_t c = 0xffffffff;

	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0xedb88320 : c >> 1;
	}
	return ~c;
}

/* POST /v1/images as the admin with this JSON body; the status, *out the answer. */
static int bi_import(const char *body, json_t **out)
{
	return dh_req(&h, h.admin, "POST", "/v1/images", body, out);
}

static void bi_import_ok(const char *body)
{
	json_t *out = NULL;
	int st = bi_import(body, &out);

	cr_assert_eq(
		st, 201, "%s: %d %s", body, st,
		out ? json_string_value(json_object_get(json_object_get(out, "error"), "message"))
		    : "");
	json_decref(out);
}

/* The status of a refused request, and that the error names field. */
static void bi_expect_refused_at(int line, int st, json_t **outp, int want, const char *field)
{
	json_t *out = *outp;
	const json_t *e = json_object_get(out, "error");
	const char *f = json_string_value(json_object_get(e, "field")) ?: "(none)";
	const char *msg = json_string_value(json_object_get(e, "message"));

	cr_expect(st == want && !strcmp(f, field), "line %d: %d field %s (%s), not %d field %s",
		  line, st, f, msg, want, field);
	json_decref(out);
	*outp = NULL;
}

/* out by address: it is read after the request that fills it, whatever the argument order. */
#define bi_expect_refused(...) bi_expect_refused_at(__LINE__, __VA_ARGS__)

/* A file of 9 MiB (over BI_MAX_SIZE) at path. */
static bool bi_create_big(const char *path)
{
	static char block[1 << 20];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	memset(block, 0x11, sizeof(block));
	for (int i = 0; fd >= 0 && i < 9; i++)
		cr_assert_eq(write(fd, block, sizeof(block)), (ssize_t)sizeof(block));
	if (fd >= 0)
		close(fd);
	return fd >= 0;
}

/* A kernel image of the test guest with this command line. */
static void bi_kernel(const char *name, const char *cmdline)
{
	char body[512];

	snprintf(body, sizeof(body),
		 "{\"name\":\"%s\",\"kind\":\"kernel\",\"path\":\"%s\",\"cmdline\":\"%s\"}", name,
		 getenv("BUNSHIN_GUEST_ELF"), cmdline);
	bi_import_ok(body);
}

static void bi_raw(const char *name, const char *path, const char *kernel)
{
	char body[512];

	snprintf(body, sizeof(body), "{\"name\":\"%s\",\"path\":\"%s\",\"kernel\":\"%s\"}", name,
		 path, kernel);
	bi_import_ok(body);
}

static void bi_create(const char *name, const char *image)
{
	char body[256];
	json_t *out = NULL;
	int st;

	snprintf(body, sizeof(body), "{\"name\":\"%s\",\"flavor\":\"small\",\"image\":\"%s\"}",
		 name, image);
	st = dh_req(&h, h.admin, "POST", "/v1/instances", body, &out);
	cr_assert_eq(st, 201, "%d %s", st,
		     json_string_value(json_object_get(json_object_get(out, "error"), "message")));
	json_decref(out);
}

/* Waits until the console shows text; false (the console in *seen) after ms. */
static bool bi_console_has(const char *ref, const char *text, int ms, char **seen)
{
	char path[128];

	snprintf(path, sizeof(path), "/v1/instances/%s/console", ref);
	*seen = NULL;
	for (int t = 0; t < ms; t += 200) {
		free(*seen);
		*seen = NULL;
		if (dh_text(&h, h.admin, path, seen) == 200 && strstr(*seen, text))
			return true;
		usleep(200000);
	}
	return false;
}

static void bi_expect_console(const char *ref, const char *text)
{
	char *seen = NULL, path[128];
	json_t *inst = NULL;
	bool found = bi_console_has(ref, text, 60000, &seen);

	snprintf(path, sizeof(path), "/v1/instances/%s", ref);
	if (!found) /* the instance's state and error say why, for the failure's message */
		dh_req(&h, h.admin, "GET", path, NULL, &inst);
	cr_expect(found, "no '%s' on %s's console (state %s, error %s):\n%s", text, ref,
		  json_string_value(json_object_get(inst, "state")),
		  json_string_value(json_object_get(inst, "error")), seen ? seen : "(none)");
	json_decref(inst);
	free(seen);
}

/* Waits until text is on the console twice (a second boot's). */
static void bi_expect_console_twice(const char *ref, const char *text)
{
	char path[128], *seen = NULL, *first;
	bool twice = false;

	snprintf(path, sizeof(path), "/v1/instances/%s/console", ref);
	for (int t = 0; t < 60000 && !twice; t += 200) {
		free(seen);
		seen = NULL;
		if (dh_text(&h, h.admin, path, &seen) == 200 && (first = strstr(seen, text)))
			twice = strstr(first + 1, text) != NULL;
		if (!twice)
			usleep(200000);
	}
	cr_expect(twice, "'%s' not twice on %s's console:\n%s", text, ref, seen ? seen : "(none)");
	free(seen);
}

/* An image's field as the operator sees it. */
static char *bi_image_field(const char *name, const char *field)
{
	char path[128];
	json_t *out = NULL;
	char *v;

	snprintf(path, sizeof(path), "/v1/images/%s", name);
	cr_assert_eq(dh_req(&h, h.admin, "GET", path, NULL, &out), 200);
	v = strdup(json_string_value(json_object_get(out, field)) ?: "");
	json_decref(out);
	return v;
}

/*
 * Raw image NAME of zeros (work/NAME.raw), booted by kernel image KERNEL
 * with cmdline; its file in the store (malloc'd), whose sha256 goes to sha.
 */
static char *bi_blank_raw(const char *name, const char *kernel, const char *cmdline, char sha[65])
{
	static char zero[BI_DISK_BLOCKS * 4096];
	char disk[300], *path;

	snprintf(disk, sizeof(disk), "%s/%s.raw", work, name);
	bi_file(disk, zero, sizeof(zero));
	bi_kernel(kernel, cmdline);
	bi_raw(name, disk, kernel);
	path = bi_image_field(name, "path");
	dh_sha256_file(path, sha);
	return path;
}

Test(bootimg, raw_image_boots_with_its_kernel_and_reads_its_disk)
{
	char disk[300], zeros[300];
	static char zero[64 * 1024];

	dh_need_kvm();
	snprintf(disk, sizeof(disk), "%s/disk.raw", work);
	snprintf(zeros, sizeof(zeros), "%s/zeros.raw", work);
	bi_pattern_disk(disk);
	bi_file(zeros, zero, sizeof(zero));
	bi_kernel("kverify", "test=blk-verify ms=1500 bufs=64 virtio_poll=1");
	bi_raw("disk1", disk, "kverify");
	/* The control: the same guest on a disk without the pattern must fail its check. */
	bi_raw("zero1", zeros, "kverify");
	bi_create("vm1", "disk1");
	bi_create("vm0", "zero1");
	cr_expect_str_eq(dh_wait_state(&h, h.admin, "vm1", "running", 30000), "running");
	bi_expect_console("vm1", "name=blk-verify result=pass");
	bi_expect_console("vm0", "name=blk-verify result=fail");
}

Test(bootimg, writes_go_to_the_overlay_never_the_image)
{
	char before[65], after[65], overlay[300], *path;
	struct stat st;
	json_t *out = NULL;

	dh_need_kvm();
	path = bi_blank_raw("blank", "kwrite",
			    "test=virtio-blk blk_seed=7 blk_keep=1 virtio_poll=1", before);
	bi_create("w1", "blank");
	bi_expect_console("w1", "name=virtio-blk result=pass");
	dh_sha256_file(path, after);
	cr_expect_str_eq(after, before, "the guest's writes reached the image file");
	cr_assert_eq(dh_req(&h, h.admin, "GET", "/v1/instances/w1", NULL, &out), 200);
	snprintf(overlay, sizeof(overlay), "%s/instances/%lld/disk.overlay", h.dir,
		 (long long)json_integer_value(json_object_get(out, "id")));
	json_decref(out);
	/* A copy-on-write overlay, not a copy: what the guest wrote, not the whole disk. */
	cr_expect_eq(stat(overlay, &st), 0, "no overlay at %s", overlay);
	cr_expect_lt((long long)st.st_blocks * 512, BI_DISK_BLOCKS * 4096LL, "%lld bytes",
		     (long long)st.st_blocks * 512);
	/* Started again, the VMM takes the same overlay over the same image (relinked in the jail).
	 */
	cr_assert_str_eq(dh_wait_state(&h, h.admin, "w1", "stopped", 30000), "stopped");
	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/instances/w1/actions",
			    "{\"action\":\"start\"}", NULL),
		     200);
	bi_expect_console_twice("w1", "name=virtio-blk result=pass");
	dh_sha256_file(path, after);
	cr_expect_str_eq(after, before, "the guest's writes reached the image file");
	free(path);
}

/* A test=boot kernel image that expects this initrd; the initrd's file. */
static void bi_initrd_kernel_body(char *body, size_t size, const char *name, const char *initrd,
				  const uint8_t *data, size_t len)
{
	snprintf(body, size,
		 "{\"name\":\"%s\",\"kind\":\"kernel\",\"path\":\"%s\",\"initrd\":\"%s\","
		 "\"cmdline\":\"test=boot initrd_size=%zu initrd_crc32=%x\"}",
		 name, getenv("BUNSHIN_GUEST_ELF"), initrd, len, bi_crc32(data, len));
}

Test(bootimg, imported_initrd_arrives_in_kernel_and_raw_instances)
{
	static uint8_t data[200 * 1000];
	char initrd[300], disk[300], body[1024];
	json_t *out = NULL;

	dh_need_kvm();
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 31 + (i >> 8));
	snprintf(initrd, sizeof(initrd), "%s/initrd.img", work);
	snprintf(disk, sizeof(disk), "%s/d.raw", work);
	bi_file(initrd, data, sizeof(data));
	bi_pattern_disk(disk);
	bi_initrd_kernel_body(body, sizeof(body), "kinit", initrd, data, sizeof(data));
	cr_assert_eq(bi_import(body, &out), 201, "%s",
		     json_string_value(json_object_get(json_object_get(out, "error"), "message")));
	cr_expect_eq(json_integer_value(json_object_get(out, "initrd_size")),
		     (json_int_t)sizeof(data));
	cr_expect_eq(strlen(json_string_value(json_object_get(out, "initrd_sha256")) ?: ""), 64);
	json_decref(out);
	bi_raw("withinit", disk, "kinit");
	bi_create("k1", "kinit");
	bi_create("r1", "withinit");
	bi_expect_console("k1", "initrd=ok");
	bi_expect_console("r1", "initrd=ok");
	bi_expect_console("r1", "name=boot result=pass");
}

struct bi_src {
	const uint8_t *data;
	size_t len, off;
};

static ssize_t bi_read(void *arg, char *buf, size_t size)
{
	struct bi_src *s = arg;
	size_t n = s->len - s->off < size ? s->len - s->off : size;

	memcpy(buf, s->data + s->off, n);
	s->off += n;
	return (ssize_t)n;
}

static int bi_put(const char *token, const char *path, const void *data, size_t len, json_t **out)
{
	struct bi_src src = {.data = data, .len = len};
	struct httpc_request req = {.method = "PUT",
				    .path = path,
				    .token = token,
				    .body_len = len,
				    .body_src = bi_read,
				    .body_arg = &src};
	struct httpc_response resp;
	struct error err = {0};

	cr_assert_eq(httpc_do(h.sock, &req, &resp, &err), 0, "%s", err.msg);
	*out = json_loads(resp.body, 0, NULL);
	httpc_response_free(&resp);
	return resp.status;
}

/* The test guest's ELF, read whole. */
static uint8_t *bi_guest(size_t *len)
{
	struct stat st;
	int fd = open(getenv("BUNSHIN_GUEST_ELF"), O_RDONLY);
	uint8_t *p;

	cr_assert(fd >= 0 && !fstat(fd, &st));
	p = malloc((size_t)st.st_size);
	cr_assert_eq(read(fd, p, (size_t)st.st_size), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return p;
}

Test(bootimg, uploaded_initrd_arrives_and_is_refused_twice)
{
	static uint8_t data[100 * 1000];
	char path[300];
	size_t glen;
	uint8_t *guest = bi_guest(&glen);
	json_t *out = NULL;

	dh_need_kvm();
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + 3);
	snprintf(path, sizeof(path),
		 "/v1/images/kup/data?kind=kernel&public=true&cmdline=test%%3Dboot%%20"
		 "initrd_size%%3D%zu%%20initrd_crc32%%3D%x",
		 sizeof(data), bi_crc32(data, sizeof(data)));
	cr_assert_eq(bi_put(h.admin, path, guest, glen, &out), 201);
	json_decref(out);
	cr_assert_eq(bi_put(h.admin, "/v1/images/kup/initrd?public=true", data, sizeof(data), &out),
		     201, "%s",
		     json_string_value(json_object_get(json_object_get(out, "error"), "message")));
	cr_expect_eq(json_integer_value(json_object_get(out, "initrd_size")),
		     (json_int_t)sizeof(data));
	json_decref(out);
	bi_expect_refused(
		bi_put(h.admin, "/v1/images/kup/initrd?public=true", data, sizeof(data), &out),
		&out, 409, "name");
	bi_create("u1", "kup");
	bi_expect_console("u1", "initrd=ok");
	free(guest);
}

Test(bootimg, bad_kernels_and_initrds_are_refused_naming_the_field)
{
	char disk[300], body[1024], tok_a[80], tok_b[80], *big;
	static char zero[4096];
	json_t *out = NULL;

	snprintf(disk, sizeof(disk), "%s/bad.raw", work);
	bi_file(disk, zero, sizeof(zero));
	bi_kernel("kpub", "test=boot");
	bi_raw("rawpub", disk, "kpub");
	dh_tenant_user(&h, "team-a", "alice", "member", tok_a, sizeof(tok_a));
	dh_tenant_user(&h, "team-b", "bob", "member", tok_b, sizeof(tok_b));
	snprintf(body, sizeof(body),
		 "{\"name\":\"kb\",\"kind\":\"kernel\",\"path\":\"%s\",\"tenant\":\"team-b\"}",
		 getenv("BUNSHIN_GUEST_ELF"));
	bi_import_ok(body);

	/* a missing kernel, a raw image as kernel, another tenant's, a tenant's for a public one */
	snprintf(body, sizeof(body), "{\"name\":\"r\",\"path\":\"%s\",\"kernel\":\"nope\"}", disk);
	bi_expect_refused(bi_import(body, &out), &out, 404, "kernel");
	snprintf(body, sizeof(body), "{\"name\":\"r\",\"path\":\"%s\",\"kernel\":\"rawpub\"}",
		 disk);
	bi_expect_refused(bi_import(body, &out), &out, 400, "kernel");
	snprintf(body, sizeof(body),
		 "{\"name\":\"r\",\"path\":\"%s\",\"kernel\":\"kb\",\"tenant\":\"team-a\"}", disk);
	bi_expect_refused(bi_import(body, &out), &out, 404, "kernel");
	snprintf(body, sizeof(body), "{\"name\":\"r\",\"path\":\"%s\",\"kernel\":\"kb\"}", disk);
	bi_expect_refused(bi_import(body, &out), &out, 400, "kernel");
	/* a kernel image names no kernel; a raw image carries no initrd */
	snprintf(body, sizeof(body),
		 "{\"name\":\"r\",\"kind\":\"kernel\",\"path\":\"%s\",\"kernel\":\"kpub\"}",
		 getenv("BUNSHIN_GUEST_ELF"));
	bi_expect_refused(bi_import(body, &out), &out, 400, "kernel");
	snprintf(body, sizeof(body),
		 "{\"name\":\"r\",\"path\":\"%s\",\"kernel\":\"kpub\",\"initrd\":\"%s\"}", disk,
		 disk);
	bi_expect_refused(bi_import(body, &out), &out, 400, "initrd");
	/* unreadable initrds: missing, a directory, relative, empty */
	snprintf(body, sizeof(body),
		 "{\"name\":\"r\",\"kind\":\"kernel\",\"path\":\"%s\",\"initrd\":\"%s/none\"}",
		 getenv("BUNSHIN_GUEST_ELF"), work);
	bi_expect_refused(bi_import(body, &out), &out, 400, "initrd");
	snprintf(body, sizeof(body),
		 "{\"name\":\"r\",\"kind\":\"kernel\",\"path\":\"%s\",\"initrd\":\"%s\"}",
		 getenv("BUNSHIN_GUEST_ELF"), work);
	bi_expect_refused(bi_import(body, &out), &out, 400, "initrd");
	snprintf(body, sizeof(body),
		 "{\"name\":\"r\",\"kind\":\"kernel\",\"path\":\"%s\",\"initrd\":\"x.img\"}",
		 getenv("BUNSHIN_GUEST_ELF"));
	bi_expect_refused(bi_import(body, &out), &out, 400, "initrd");
	snprintf(body, sizeof(body), "%s/empty", work);
	bi_file(body, "", 0);
	snprintf(body, sizeof(body),
		 "{\"name\":\"r\",\"kind\":\"kernel\",\"path\":\"%s\",\"initrd\":\"%s/empty\"}",
		 getenv("BUNSHIN_GUEST_ELF"), work);
	bi_expect_refused(bi_import(body, &out), &out, 400, "initrd");
	/* an initrd over --image-max-size */
	snprintf(body, sizeof(body), "%s/big", work);
	cr_assert(bi_create_big(body));
	snprintf(body, sizeof(body),
		 "{\"name\":\"r\",\"kind\":\"kernel\",\"path\":\"%s\",\"initrd\":\"%s/big\"}",
		 getenv("BUNSHIN_GUEST_ELF"), work);
	bi_expect_refused(bi_import(body, &out), &out, 413, "initrd");
	/* nothing of the refused imports was kept */
	cr_expect_eq(dh_req(&h, h.admin, "GET", "/v1/images/r", NULL, NULL), 404);

	/* uploads: ?kernel= checked before the body; initrds only for one's own kernel image */
	bi_expect_refused(bi_put(tok_a, "/v1/images/up/data?kernel=nope", zero, 512, &out), &out,
			  404, "kernel");
	bi_expect_refused(bi_put(tok_a, "/v1/images/up/data?kernel=kb", zero, 512, &out), &out, 404,
			  "kernel");
	bi_expect_refused(bi_put(tok_a, "/v1/images/up/data?kernel=rawpub", zero, 512, &out), &out,
			  400, "kernel");
	bi_expect_refused(bi_put(tok_a, "/v1/images/kb/initrd", zero, 512, &out), &out, 404,
			  "name");
	bi_expect_refused(bi_put(h.admin, "/v1/images/rawpub/initrd?public=true", zero, 512, &out),
			  &out, 400, "name");
	bi_expect_refused(bi_put(h.admin, "/v1/images/ghost/initrd?public=true", zero, 512, &out),
			  &out, 404, "name");
	bi_expect_refused(
		bi_put(h.admin, "/v1/images/kpub/initrd?public=true&kind=raw", zero, 512, &out),
		&out, 400, "kind");
	/* a checksum mismatch (or any refused body) leaves the kernel image without an initrd */
	cr_expect_eq(bi_put(h.admin,
			    "/v1/images/kpub/initrd?public=true&sha256="
			    "0000000000000000000000000000000000000000000000000000000000000000",
			    zero, 512, &out),
		     400);
	json_decref(out);
	cr_expect_eq(dh_image_files(&h, ".initrd"), 0);
	cr_expect_eq(dh_image_files(&h, ".upload-"), 0);
	big = calloc(1, 9 << 20);
	cr_assert_not_null(big);
	cr_expect_eq(bi_put(h.admin, "/v1/images/kpub/initrd?public=true", big, 9 << 20, &out),
		     413);
	json_decref(out);
	free(big);

	/* a public image boots the public kernel of a name a tenant's kernel also has */
	snprintf(body, sizeof(body),
		 "{\"name\":\"kb\",\"kind\":\"kernel\",\"path\":\"%s\",\"cmdline\":\"test=boot\"}",
		 getenv("BUNSHIN_GUEST_ELF"));
	bi_import_ok(body);
	snprintf(body, sizeof(body), "{\"name\":\"rpub\",\"path\":\"%s\",\"kernel\":\"kb\"}", disk);
	bi_import_ok(body);
	/* a raw image without a kernel cannot boot; a kernel in use cannot go */
	snprintf(body, sizeof(body), "{\"name\":\"nokernel\",\"path\":\"%s\"}", disk);
	bi_import_ok(body);
	bi_expect_refused(dh_req(&h, h.admin, "POST", "/v1/instances",
				 "{\"name\":\"x\",\"flavor\":\"tiny\",\"image\":\"nokernel\"}",
				 &out),
			  &out, 400, "image");
	cr_expect_eq(dh_req(&h, h.admin, "DELETE", "/v1/images/kpub", NULL, &out), 409);
	json_decref(out);
	cr_expect_eq(dh_req(&h, h.admin, "DELETE", "/v1/images/rawpub", NULL, NULL), 204);
	cr_expect_eq(dh_req(&h, h.admin, "DELETE", "/v1/images/kpub", NULL, NULL), 204);
}

Test(bootimg, cli_import_and_upload_with_kernel_and_initrd)
{
	char disk[300], initrd[300], out[4096], *kernel;
	static char bytes[8192], longline[3000];

	snprintf(disk, sizeof(disk), "%s/c.raw", work);
	snprintf(initrd, sizeof(initrd), "%s/c.initrd", work);
	memset(bytes, 0x42, sizeof(bytes));
	bi_file(disk, bytes, sizeof(bytes));
	bi_file(initrd, bytes, 1000);
	cr_assert_eq(dh_cli(&h,
			    (const char *[]){"--json", "image", "import", "kc",
					     getenv("BUNSHIN_GUEST_ELF"), "--kind", "kernel",
					     "--initrd", initrd, "--cmdline", "test=boot", NULL},
			    out, sizeof(out)),
		     0, "%s", out);
	cr_expect(strstr(out, "\"initrd_size\": 1000"), "%s", out);
	cr_assert_eq(dh_cli(&h,
			    (const char *[]){"image", "import", "dc", disk, "--kernel", "kc", NULL},
			    out, sizeof(out)),
		     0, "%s", out);
	kernel = bi_image_field("dc", "kernel");
	cr_expect_str_eq(kernel, "kc");
	free(kernel);
	cr_assert_eq(
		dh_cli(&h,
		       (const char *[]){"--json", "image", "upload", "ku",
					getenv("BUNSHIN_GUEST_ELF"), "--public", "--kind", "kernel",
					"--initrd", initrd, "--cmdline", "test=boot", NULL},
		       out, sizeof(out)),
		0, "%s", out);
	cr_expect(strstr(out, "\"initrd_size\": 1000"), "%s", out);
	cr_assert_eq(dh_cli(&h,
			    (const char *[]){"image", "upload", "du", disk, "--public", "--kernel",
					     "ku", NULL},
			    out, sizeof(out)),
		     0, "%s", out);
	kernel = bi_image_field("du", "kernel");
	cr_expect_str_eq(kernel, "ku");
	free(kernel);
	/* bad input: --initrd on a raw upload, a missing initrd file, a missing kernel image */
	cr_expect_eq(
		dh_cli(&h, (const char *[]){"image", "upload", "x", disk, "--initrd", initrd, NULL},
		       out, sizeof(out)),
		2);
	cr_expect_neq(dh_cli(&h,
			     (const char *[]){"image", "import", "x", getenv("BUNSHIN_GUEST_ELF"),
					      "--kind", "kernel", "--initrd", "/nonexistent", NULL},
			     out, sizeof(out)),
		      0);
	memset(longline, 'x', sizeof(longline) - 1);
	cr_expect_eq(dh_cli(&h,
			    (const char *[]){"image", "upload", "x", disk, "--kind", "kernel",
					     "--cmdline", longline, NULL},
			    out, sizeof(out)),
		     2);
	cr_expect_neq(
		dh_cli(&h, (const char *[]){"image", "import", "x", disk, "--kernel", "nope", NULL},
		       out, sizeof(out)),
		0);
}

Test(bootimg, unjailed_raw_image_boots_from_host_paths)
{
	static const char *const extra[] = {"--image-max-size", BI_MAX_SIZE, "--no-jail", NULL};
	static uint8_t data[50 * 1000];
	char initrd[300], disk[300], body[1024];
	json_t *out = NULL;

	dh_need_kvm();
	/* The suite's daemon is jailed: this test wants one with --no-jail instead. */
	dh_cleanup(&h);
	dh_start(&h, extra);
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i ^ (i >> 7));
	snprintf(initrd, sizeof(initrd), "%s/nj.initrd", work);
	snprintf(disk, sizeof(disk), "%s/nj.raw", work);
	bi_file(initrd, data, sizeof(data));
	bi_pattern_disk(disk);
	bi_initrd_kernel_body(body, sizeof(body), "knj", initrd, data, sizeof(data));
	bi_import_ok(body);
	bi_raw("dnj", disk, "knj");
	bi_create("nj1", "dnj");
	bi_expect_console("nj1", "initrd=ok");
	bi_expect_console("nj1", "name=boot result=pass");
	/* Its disk layers would name the source's own directory: no clones unjailed. */
	bi_kernel("knjw", "test=virtio-blk blk_keep=1 blk_wait=1 virtio_poll=1");
	bi_raw("dnjw", disk, "knjw");
	bi_create("nj2", "dnjw");
	bi_expect_console("nj2", "result=ready");
	bi_expect_refused(dh_req(&h, h.admin, "POST", "/v1/instances/nj2/clone", "{}", &out), &out,
			  409, "(none)");
}

/* ---- clones of a disk-booted instance ---- */

/* Waits for "seed=N", reports what the disk held (found=), writes N's pattern. */
#define BI_WAIT_CMDLINE "test=virtio-blk blk_keep=1 blk_wait=1 blk_probe=1 virtio_poll=1"

#define bi_expect_found(ref, readies, seed, passes, want)                                          \
	do {                                                                                       \
		char *found_ = dh_blk_tell(&h, ref, readies, seed, passes);                        \
		cr_expect_str_eq(found_, want, "%s (seed %d): found %s, not %s", ref, seed,        \
				 found_, want);                                                    \
		free(found_);                                                                      \
	} while (0)

static void bi_action(const char *ref, const char *action)
{
	char path[128], body[64];
	json_t *out = NULL;
	int st;

	snprintf(path, sizeof(path), "/v1/instances/%s/actions", ref);
	snprintf(body, sizeof(body), "{\"action\":\"%s\"}", action);
	st = dh_req(&h, h.admin, "POST", path, body, &out);
	cr_assert(st == 200 || st == 202, "%s %s: %d %s", action, ref, st,
		  json_string_value(json_object_get(json_object_get(out, "error"), "message")));
	json_decref(out);
}

static void bi_clone(const char *ref, int count, const char *prefix)
{
	char path[128], body[128];
	json_t *out = NULL;
	int st;

	snprintf(path, sizeof(path), "/v1/instances/%s/clone", ref);
	snprintf(body, sizeof(body), "{\"count\":%d,\"name_prefix\":\"%s\"}", count, prefix);
	st = dh_req(&h, h.admin, "POST", path, body, &out);
	cr_assert_eq(st, 201, "clone %s: %d %s", ref, st,
		     json_string_value(json_object_get(json_object_get(out, "error"), "message")));
	cr_expect_null(
		json_object_get(json_array_get(json_object_get(out, "clones"), 0), "disk_layers"),
		"bunshind's own fields leak into the API");
	json_decref(out);
}

static int64_t bi_id(const char *ref)
{
	char path[128];
	json_t *out = NULL;
	int64_t id;

	snprintf(path, sizeof(path), "/v1/instances/%s", ref);
	cr_assert_eq(dh_req(&h, h.admin, "GET", path, NULL, &out), 200);
	id = json_integer_value(json_object_get(out, "id"));
	json_decref(out);
	return id;
}

/* A frozen layer: root's, read-only, the same file in both instances' directories. */
static void bi_expect_shared_layer(const char *a, const char *b, const char *layer)
{
	char pa[512], pb[512];
	struct stat sa, sb;

	snprintf(pa, sizeof(pa), "%s/instances/%lld/%s", h.dir, (long long)bi_id(a), layer);
	snprintf(pb, sizeof(pb), "%s/instances/%lld/%s", h.dir, (long long)bi_id(b), layer);
	cr_assert_eq(lstat(pa, &sa), 0, "%s: %s", pa, strerror(errno));
	cr_assert_eq(lstat(pb, &sb), 0, "%s: %s", pb, strerror(errno));
	cr_expect(S_ISREG(sa.st_mode) && sa.st_uid == 0 && !(sa.st_mode & 0222),
		  "%s: uid %d mode %o", pa, (int)sa.st_uid, (unsigned)sa.st_mode);
	cr_expect(sa.st_ino == sb.st_ino && sa.st_dev == sb.st_dev, "%s and %s are not one file",
		  pa, pb);
}

/*
 * Each clone starts from the source's disk as it was at the snapshot,
 * then it and the source go their own ways: through restores, cold boots,
 * a second generation of clones and the source's deletion. The guest
 * reports what its disk held (found=), then writes a pattern of its own.
 */
Test(bootimg, clones_of_a_disk_instance_share_its_frozen_disk_and_diverge)
{
	char before[65], after[65], *path, layer[64];

	dh_need_kvm();
	path = bi_blank_raw("dclone", "kclone", BI_WAIT_CMDLINE, before);

	bi_create("src", "dclone");
	bi_expect_found("src", 1, 11, 1, "none");
	bi_action("src", "start");
	free(dh_wait_lines(&h, "src", "result=ready", 2)); /* the second boot waits */
	bi_clone("src", 2, "c");
	snprintf(layer, sizeof(layer), "clone-%lld/disk0.live.ovl", (long long)bi_id("c-1"));
	bi_expect_shared_layer("src", "c-1", "disk.overlay");
	bi_expect_shared_layer("c-2", "c-1", "disk.overlay");

	/* restored: the source's disk at the snapshot, whatever the others write */
	bi_expect_found("c-1", 0, 21, 1, "11");
	bi_expect_found("src", 2, 23, 2, "11");
	/* cold boots: each opens its own top over the shared layers */
	bi_action("c-1", "start");
	bi_expect_found("c-1", 1, 31, 2, "21");
	bi_action("src", "start");
	bi_expect_found("src", 3, 33, 3, "23");
	bi_expect_found("c-2", 0, 22, 1, "11");

	/* a second generation: the source's chain is two frozen layers deep now */
	bi_action("src", "start");
	free(dh_wait_lines(&h, "src", "result=ready", 4));
	bi_clone("src", 1, "d");
	bi_expect_shared_layer("src", "d-1", layer);
	bi_expect_shared_layer("c-1", "d-1", "disk.overlay");
	bi_expect_found("d-1", 0, 41, 1, "33");
	bi_expect_found("src", 4, 43, 4, "33");

	/* the clones outlive their source */
	cr_assert_eq(dh_req(&h, h.admin, "DELETE", "/v1/instances/src", NULL, NULL), 204);
	bi_action("d-1", "start");
	bi_expect_found("d-1", 1, 51, 2, "41");
	bi_action("c-2", "start");
	bi_expect_found("c-2", 1, 52, 2, "22");

	dh_sha256_file(path, after);
	cr_expect_str_eq(after, before, "the guests' writes reached the image file");
	free(path);
}

/* The store's disk chain for ref, as a bunshind killed in the middle of a clone left it. */
static void bi_set_chain(const char *ref, const char *top, const char *layers)
{
	char db_path[300], *sql;
	sqlite3 *db;

	snprintf(db_path, sizeof(db_path), "%s/state.db", h.dir);
	cr_assert_eq(sqlite3_open(db_path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	sql = sqlite3_mprintf(
		"UPDATE instances SET disk_top = %Q, disk_layers = %Q WHERE name = %Q", top, layers,
		ref);
	cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
	sqlite3_free(sql);
	sqlite3_close(db);
}

/*
 * bunshind stores the chain a clone's snapshot will make before it asks
 * for the snapshot. Killed in between, the stored top does not exist and
 * the layer under it is still the VMM's own top: the next start puts the
 * chain back. A chain whose layers are gone is an error, never a disk
 * made anew over the image.
 */
Test(bootimg, a_disk_chain_left_by_an_unfinished_clone_is_put_back)
{
	char sha[65], path[128];
	json_t *out = NULL;

	dh_need_kvm();
	free(bi_blank_raw("dcrash", "kcrash", BI_WAIT_CMDLINE, sha));
	bi_create("k1", "dcrash");
	bi_expect_found("k1", 1, 61, 1, "none");

	bi_set_chain("k1", "/clone-999/disk0.live.ovl", "[\"/disk.overlay\"]");
	bi_action("k1", "start");
	bi_expect_found("k1", 2, 62, 2, "61");
	cr_assert_eq(dh_req(&h, h.admin, "GET", "/v1/instances/k1", NULL, &out), 200);
	cr_expect_null(json_object_get(out, "disk_top"));
	json_decref(out);

	bi_set_chain("k1", "/disk-999.ovl", "[\"/gone.ovl\"]");
	snprintf(path, sizeof(path), "/v1/instances/k1/actions");
	dh_req(&h, h.admin, "POST", path, "{\"action\":\"start\"}", NULL);
	cr_assert_str_eq(dh_wait_state(&h, h.admin, "k1", "error", 30000), "error");
	cr_assert_eq(dh_req(&h, h.admin, "GET", "/v1/instances/k1", NULL, &out), 200);
	cr_expect(strstr(dh_jstr(out, NULL, "error"), "missing"), "%s",
		  dh_jstr(out, NULL, "error"));
	json_decref(out);
}

/*
 * Each clone request freezes one more layer under the source: a chain is
 * at most 16 (the image, 14 frozen, the top), and the 15th request is
 * refused up front (409, nothing made), not half-way by the VMM; the
 * source runs on, its disk whole.
 */
Test(bootimg, a_disk_chain_too_deep_to_clone_is_refused_up_front)
{
	char sha[65], prefix[16], ref[32], path[64];
	json_t *out = NULL;

	dh_need_kvm();
	free(bi_blank_raw("ddeep", "kdeep", BI_WAIT_CMDLINE, sha));
	bi_create("deep", "ddeep");
	free(dh_wait_lines(&h, "deep", "result=ready", 1));
	for (int i = 1; i <= 14; i++) {
		snprintf(prefix, sizeof(prefix), "g%d", i);
		bi_clone("deep", 1, prefix);
		snprintf(path, sizeof(path), "/v1/instances/%s-1", prefix);
		cr_assert_eq(dh_req(&h, h.admin, "DELETE", path, NULL, NULL), 204);
	}
	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/instances/deep/clone",
			    "{\"name_prefix\":\"g15\"}", &out),
		     409);
	cr_expect(strstr(dh_jstr(out, "error", "message"), "layers deep"), "%s",
		  dh_jstr(out, "error", "message"));
	json_decref(out);
	snprintf(ref, sizeof(ref), "/v1/instances/g15-1");
	cr_expect_eq(dh_req(&h, h.admin, "GET", ref, NULL, NULL), 404, "a clone was made");
	bi_expect_found("deep", 1, 71, 1, "none");
}

/*
 * server rebuild: a stopped instance boots afresh from its image (a new
 * disk), keeping its name and address; a running one is refused; a
 * rebuilt clone boots cold, and its source's disk is untouched.
 */
Test(bootimg, rebuild_gives_a_stopped_instance_a_new_disk)
{
	char sha[65], ip[64];
	json_t *out = NULL;

	dh_need_kvm();
	free(bi_blank_raw("drb", "krb", BI_WAIT_CMDLINE, sha));
	bi_create("rb", "drb");
	bi_expect_found("rb", 1, 11, 1, "none");
	bi_action("rb", "start");
	free(dh_wait_lines(&h, "rb", "result=ready", 2));
	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/instances/rb/rebuild", "{}", &out), 409);
	json_decref(out);
	cr_assert_eq(dh_req(&h, h.admin, "GET", "/v1/instances/rb", NULL, &out), 200);
	snprintf(ip, sizeof(ip), "%s", dh_jstr(out, "port", "ip"));
	json_decref(out);
	/* a clone of it, waiting, before its disk goes */
	bi_clone("rb", 1, "rc");
	bi_expect_found("rb", 2, 12, 2, "11");

	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/instances/rb/rebuild", "{\"image\":\"nope\"}",
			    &out),
		     404);
	json_decref(out);
	cr_assert_eq(
		dh_req(&h, h.admin, "POST", "/v1/instances/rb/rebuild", "{\"flavor\":\"x\"}", &out),
		400);
	json_decref(out);
	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/instances/rb/rebuild", "{\"image\":\"drb\"}",
			    &out),
		     200);
	cr_expect_str_eq(dh_jstr(out, "port", "ip"), ip, "the address changed");
	json_decref(out);
	bi_action("rb", "start");
	bi_expect_found("rb", 3, 13, 3, "none");

	/* the clone: its frozen layer was the source's, and it lives on */
	bi_expect_found("rc-1", 0, 21, 1, "11");
	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/instances/rc-1/rebuild", NULL, &out), 200);
	json_decref(out);
	bi_action("rc-1", "start");
	bi_expect_found("rc-1", 1, 22, 2, "none");
}

/*
 * suspend: the VM saved into the instance's directory, its VMM gone (no
 * pid), the instance still there; resume goes on where the guest was,
 * not a boot: the guest (one more round after the first, blk_hold=1)
 * finishes its last round and reads what it wrote before. A stop of a
 * suspended instance forgets what was saved.
 */
Test(bootimg, suspend_and_resume_go_on_where_the_guest_was)
{
	char sha[65], *log, path[512], cli_out[4096];
	json_t *out = NULL;
	struct stat st;

	dh_need_kvm();
	free(bi_blank_raw("dsus", "ksus", BI_WAIT_CMDLINE " blk_hold=1", sha));
	bi_create("su", "dsus");
	free(dh_wait_lines(&h, "su", "result=ready", 1));
	dh_console_send(&h, "su", "seed=31\n");
	free(dh_wait_lines(&h, "su", "round=1 found=none", 1));

	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/instances/su/actions",
			    "{\"action\":\"suspend\"}", &out),
		     202, "%s", dh_jstr(out, "error", "message"));
	json_decref(out);
	cr_assert_str_eq(dh_wait_state(&h, h.admin, "su", "suspended", 5000), "suspended");
	/* the VMM is gone when the answer comes; the reaper records it a moment later */
	for (int t = 0; t < 50 && dh_instance_pid(&h, h.admin, "su"); t++)
		usleep(100 * 1000);
	cr_expect_eq(dh_instance_pid(&h, h.admin, "su"), 0, "a suspended instance has a VMM");
	snprintf(path, sizeof(path), "%s/instances/%lld/suspend/memory", h.dir,
		 (long long)bi_id("su"));
	cr_expect_eq(stat(path, &st), 0, "nothing saved at %s", path);
	/* what a suspended instance cannot do */
	cr_expect_eq(dh_req(&h, h.admin, "POST", "/v1/instances/su/clone", "{}", NULL), 409);
	cr_expect_eq(dh_req(&h, h.admin, "POST", "/v1/instances/su/actions",
			    "{\"action\":\"suspend\"}", NULL),
		     409);

	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/instances/su/actions",
			    "{\"action\":\"resume\"}", &out),
		     200, "%s", dh_jstr(out, "error", "message"));
	json_decref(out);
	cr_assert_str_eq(dh_wait_state(&h, h.admin, "su", "running", 30000), "running");
	dh_console_send(&h, "su", "seed=32\n");
	/* its last round (a boot would start with round 1 again): the disk as it left it */
	log = dh_wait_lines(&h, "su", "name=virtio-blk result=pass", 1);
	cr_expect_str_eq(dh_test_field(strstr(log, "BUNSHIN-TEST name=virtio-blk result=pass"),
				       "virtio-blk", "found"),
			 "31", "%s", log);
	cr_expect_eq(dh_count_lines(log, "result=ready"), 2, "the guest booted again:\n%s", log);
	free(log);
	cr_assert_str_eq(dh_wait_state(&h, h.admin, "su", "stopped", 30000), "stopped");

	/* suspended, then stopped: the saved VM goes, the next start boots */
	bi_action("su", "start");
	free(dh_wait_lines(&h, "su", "result=ready", 3));
	cr_assert_str_eq(dh_wait_state(&h, h.admin, "su", "running", 30000), "running");
	cr_assert_eq(dh_cli(&h, (const char *[]){"server", "suspend", "su", NULL}, cli_out,
			    sizeof(cli_out)),
		     0, "%s", cli_out);
	cr_assert_str_eq(dh_wait_state(&h, h.admin, "su", "suspended", 5000), "suspended");
	bi_action("su", "stop");
	cr_assert_str_eq(dh_wait_state(&h, h.admin, "su", "stopped", 5000), "stopped");
	cr_expect_neq(stat(path, &st), 0, "%s is still there", path);
	bi_action("su", "start");
	free(dh_wait_lines(&h, "su", "result=ready", 4));
	/* deleted while suspended: its directory, saved VM included, goes */
	cr_assert_str_eq(dh_wait_state(&h, h.admin, "su", "running", 30000), "running");
	cr_assert_eq(dh_cli(&h, (const char *[]){"server", "suspend", "su", NULL}, cli_out,
			    sizeof(cli_out)),
		     0, "%s", cli_out);
	snprintf(path, sizeof(path), "%s/instances/%lld", h.dir, (long long)bi_id("su"));
	cr_assert_eq(dh_req(&h, h.admin, "DELETE", "/v1/instances/su", NULL, NULL), 204);
	cr_expect_neq(stat(path, &st), 0, "%s is still there", path);
}
