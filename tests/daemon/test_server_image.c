// SPDX-License-Identifier: MIT
/*
 * Server images (POST /v1/instances/ID/image, `bunshin server image`)
 * through a real bunshind booting the disk guest (test=virtio-blk
 * blk_wait=1 blk_probe=1: it waits for "seed=N", reports whose pattern
 * its disk held as found=, writes N's and powers off). An image of a
 * stopped or running instance must boot into the disk as it was; the
 * source goes on with its own; every refusal is a 4xx; a "saving" image a
 * killed bunshind left is gone after its restart.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dharness.h"
#include <sqlite3.h>

#define SI_DISK_SIZE (4u << 20)
#define SI_CMDLINE   "test=virtio-blk blk_keep=1 blk_wait=1 blk_probe=1 virtio_poll=1"
#define SI_PASS	     "BUNSHIN-TEST name=virtio-blk result=pass"

static struct dh h;
static char work[256];

static void setup(void)
{
	dh_start_work(&h, NULL, work, sizeof(work));
}

static void teardown(void)
{
	dh_cleanup_work(&h, work);
}

TestSuite(srvimg, .init = setup, .fini = teardown, .timeout = 300);

static const char *si_msg(const json_t *out)
{
	return dh_jstr(out, "error", "message");
}

/* A public kernel image of the test guest, and a public raw image of `size` zero bytes over it. */
static void si_images(const char *raw, const char *kernel, const char *cmdline, uint64_t size)
{
	char disk[300], body[1024];
	json_t *out = NULL;
	int fd, st;

	snprintf(disk, sizeof(disk), "%s/%s.raw", work, raw);
	fd = open(disk, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert(fd >= 0 && !ftruncate(fd, (off_t)size));
	close(fd);
	snprintf(body, sizeof(body),
		 "{\"name\":\"%s\",\"kind\":\"kernel\",\"path\":\"%s\",\"cmdline\":\"%s\"}", kernel,
		 getenv("BUNSHIN_GUEST_ELF"), cmdline);
	st = dh_req(&h, h.admin, "POST", "/v1/images", body, &out);
	cr_assert_eq(st, 201, "%d %s", st, si_msg(out));
	json_decref(out);
	snprintf(body, sizeof(body), "{\"name\":\"%s\",\"path\":\"%s\",\"kernel\":\"%s\"}", raw,
		 disk, kernel);
	st = dh_req(&h, h.admin, "POST", "/v1/images", body, &out);
	cr_assert_eq(st, 201, "%d %s", st, si_msg(out));
	json_decref(out);
}

static void si_create(const char *token, const char *name, const char *image)
{
	char body[256];
	json_t *out = NULL;
	int st;

	snprintf(body, sizeof(body), "{\"name\":\"%s\",\"flavor\":\"small\",\"image\":\"%s\"}",
		 name, image);
	st = dh_req(&h, token, "POST", "/v1/instances", body, &out);
	cr_assert_eq(st, 201, "%s: %d %s", name, st, si_msg(out));
	json_decref(out);
}

/* POST /v1/instances/REF/image with this body: the status, *out the answer. */
static int si_post(const char *token, const char *ref, const char *body, json_t **out)
{
	char path[128];

	snprintf(path, sizeof(path), "/v1/instances/%s/image", ref);
	return dh_req(&h, token, "POST", path, body, out);
}

/* An image of ref named name, answered 202 "saving". */
static void si_image(const char *token, const char *ref, const char *name)
{
	char body[128];
	json_t *out = NULL;
	int st;

	snprintf(body, sizeof(body), "{\"name\":\"%s\"}", name);
	st = si_post(token, ref, body, &out);
	cr_assert_eq(st, 202, "image %s of %s: %d %s", name, ref, st, si_msg(out));
	cr_expect_str_eq(dh_jstr(out, NULL, "status"), "saving");
	cr_expect_str_eq(dh_jstr(out, NULL, "kind"), "raw");
	json_decref(out);
}

/* The image's row (as token sees it) once it is active (asserted, within 60 s). */
static json_t *si_wait_active(const char *token, const char *name)
{
	char path[128];
	json_t *out = NULL;

	snprintf(path, sizeof(path), "/v1/images/%s", name);
	for (int t = 0; t < 60000; t += 100) {
		json_decref(out);
		out = NULL;
		cr_assert_eq(dh_req(&h, token, "GET", path, NULL, &out), 200, "image %s is gone",
			     name);
		if (!strcmp(dh_jstr(out, NULL, "status"), "active"))
			return out;
		usleep(100000);
	}
	cr_assert_fail("image %s still %s", name, dh_jstr(out, NULL, "status"));
	return NULL;
}

static char *si_path(const char *name)
{
	char path[128], *p;
	json_t *out = NULL;

	snprintf(path, sizeof(path), "/v1/images/%s", name);
	cr_assert_eq(dh_req(&h, h.admin, "GET", path, NULL, &out), 200);
	p = strdup(dh_jstr(out, NULL, "path"));
	json_decref(out);
	return p;
}

static void si_expect_found(const char *ref, int readies, int seed, int passes, const char *want)
{
	char *found = dh_blk_tell(&h, ref, readies, seed, passes);

	cr_expect_str_eq(found, want, "%s (seed %d): found %s, not %s", ref, seed, found, want);
	free(found);
}

static void si_start(const char *ref)
{
	char path[128];
	json_t *out = NULL;
	int st;

	snprintf(path, sizeof(path), "/v1/instances/%s/actions", ref);
	st = dh_req(&h, h.admin, "POST", path, "{\"action\":\"start\"}", &out);
	cr_assert(st == 200 || st == 202, "start %s: %d %s", ref, st, si_msg(out));
	json_decref(out);
}

/* The result of ref's newest "image" event, "" when none. */
static char *si_event(const char *ref)
{
	char path[128], *r = NULL;
	json_t *out = NULL, *e;
	size_t i;

	snprintf(path, sizeof(path), "/v1/instances/%s/events", ref);
	cr_assert_eq(dh_req(&h, h.admin, "GET", path, NULL, &out), 200);
	json_array_foreach(out, i, e)
	{
		if (!r && !strcmp(dh_jstr(e, NULL, "action"), "image"))
			r = strdup(dh_jstr(e, NULL, "result"));
	}
	json_decref(out);
	return r ?: strdup("");
}

Test(srvimg, an_image_of_a_stopped_instance_boots_into_its_disk)
{
	char before[65], after[65], sha[65], *src, *img;
	struct stat st;
	json_t *im;

	dh_need_kvm();
	si_images("dstop", "kstop", SI_CMDLINE, SI_DISK_SIZE);
	src = si_path("dstop");
	dh_sha256_file(src, before);
	si_create(h.admin, "s1", "dstop");
	si_expect_found("s1", 1, 11, 1, "none");

	si_image(h.admin, "s1", "s1-img");
	im = si_wait_active(h.admin, "s1-img");
	cr_expect_str_eq(dh_jstr(im, NULL, "kernel"), "kstop");
	cr_expect_str_eq(dh_jstr(im, NULL, "tenant"), "admin");
	cr_expect_eq(json_integer_value(json_object_get(im, "size")), SI_DISK_SIZE);
	img = strdup(dh_jstr(im, NULL, "path"));
	dh_sha256_file(img, sha);
	cr_expect_str_eq(dh_jstr(im, NULL, "sha256"), sha);
	json_decref(im);
	/* flattened and sparse: the guest wrote 4 KiB (one 64 KiB block of the overlay) */
	cr_assert_eq(stat(img, &st), 0);
	cr_expect_eq(st.st_size, SI_DISK_SIZE);
	cr_expect_leq((long long)st.st_blocks * 512, 256 << 10, "%lld bytes allocated",
		      (long long)st.st_blocks * 512);
	free(img);
	img = si_event("s1");
	cr_expect(strstr(img, "image s1-img saved"), "event: %s", img);
	free(img);
	cr_expect_eq(dh_image_files(&h, ".snap-"), 0);

	si_create(h.admin, "s2", "s1-img");
	si_expect_found("s2", 1, 12, 1, "11");
	/* the source's own disk is its own still, and its image never changed */
	si_start("s1");
	si_expect_found("s1", 2, 13, 2, "11");
	dh_sha256_file(src, after);
	cr_expect_str_eq(after, before, "the source image's file changed");
	free(src);
}

/* A server image's snapshot directory: the live top only (root's), no state, no memory. */
static void si_expect_snapdir(const char *dir)
{
	static const char *const gone[] = {"state", "memory"};
	char path[400];
	struct stat st;

	for (size_t i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, gone[i]);
		cr_expect(lstat(path, &st) && errno == ENOENT, "%s is still there", path);
	}
	snprintf(path, sizeof(path), "%s/disk0.live.ovl", dir);
	cr_expect_eq(lstat(path, &st), 0, "%s: %s", path, strerror(errno));
	cr_expect_eq(lstat(dir, &st), 0);
	cr_expect(st.st_uid == 0 && S_ISDIR(st.st_mode), "%s: uid %d", dir, (int)st.st_uid);
}

Test(srvimg, an_image_of_a_running_instance_is_its_disk_at_that_instant)
{
	char snap[300];
	json_t *im, *inst = NULL;

	dh_need_kvm();
	si_images("drun", "krun", SI_CMDLINE, SI_DISK_SIZE);
	si_create(h.admin, "r1", "drun");
	si_expect_found("r1", 1, 21, 1, "none");
	si_start("r1");
	free(dh_wait_lines(&h, "r1", "result=ready", 2)); /* running, waiting for a seed */

	si_image(h.admin, "r1", "r1-img");
	im = si_wait_active(h.admin, "r1-img");
	/* the snapshot's state and memory are gone; its directory holds the live top */
	cr_assert_eq(dh_req(&h, h.admin, "GET", "/v1/instances/r1", NULL, &inst), 200);
	snprintf(snap, sizeof(snap), "%s/instances/%lld/image-%lld", h.dir,
		 (long long)json_integer_value(json_object_get(inst, "id")),
		 (long long)json_integer_value(json_object_get(im, "id")));
	json_decref(inst);
	json_decref(im);
	si_expect_snapdir(snap);

	/* the source goes on: what it had, then its own later writes through a cold boot */
	si_expect_found("r1", 2, 22, 2, "21");
	si_create(h.admin, "r2", "r1-img");
	si_expect_found("r2", 1, 23, 1, "21");
	si_start("r1");
	si_expect_found("r1", 3, 24, 3, "22");
}

/* Another user (and token) of an existing tenant. */
static void si_user(const char *tenant, const char *user, const char *role, char *token,
		    size_t size)
{
	char body[256];
	json_t *out = NULL;

	snprintf(body, sizeof(body), "{\"name\":\"%s\",\"tenant\":\"%s\",\"role\":\"%s\"}", user,
		 tenant, role);
	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/users", body, NULL), 201);
	snprintf(body, sizeof(body), "{\"user\":\"%s\"}", user);
	cr_assert_eq(dh_req(&h, h.admin, "POST", "/v1/tokens", body, &out), 201);
	snprintf(token, size, "%s", dh_jstr(out, NULL, "token"));
	json_decref(out);
}

Test(srvimg, bad_requests_are_refused)
{
	char tok_a[80], tok_b[80], tok_v[80], db_path[300];
	json_t *out = NULL, *im;
	sqlite3 *db;

	dh_need_kvm();
	si_images("dbad", "kbad", SI_CMDLINE, SI_DISK_SIZE);
	dh_tenant_user(&h, "team-a", "alice", "member", tok_a, sizeof(tok_a));
	dh_tenant_user(&h, "team-b", "bob", "member", tok_b, sizeof(tok_b));
	si_user("team-a", "vera", "viewer", tok_v, sizeof(tok_v));
	si_create(tok_a, "a1", "dbad");
	si_create(tok_a, "ak", "kbad"); /* a kernel-image instance: no disk */
	cr_assert_str_eq(dh_wait_state(&h, tok_a, "a1", "running", 30000), "running");

	cr_expect_eq(si_post(tok_a, "ak", "{\"name\":\"x\"}", &out), 409, "%s", si_msg(out));
	cr_expect(strstr(si_msg(out), "kernel image"), "%s", si_msg(out));
	json_decref(out);
	cr_expect_eq(si_post(tok_a, "a1", "{\"name\":\"bad name\"}", &out), 400);
	cr_expect_str_eq(dh_jstr(out, "error", "field"), "name");
	json_decref(out);
	cr_expect_eq(si_post(tok_a, "a1", "{}", &out), 400);
	json_decref(out);
	cr_expect_eq(si_post(tok_a, "a1", "{\"name\":7}", &out), 400);
	json_decref(out);
	cr_expect_eq(si_post(tok_a, "a1", "{\"name\":\"x\",\"public\":true}", &out), 400);
	json_decref(out);
	cr_expect_eq(si_post(tok_a, "a1", "[1", &out), 400);
	json_decref(out);
	cr_expect_eq(si_post(tok_b, "a1", "{\"name\":\"x\"}", &out), 404);
	json_decref(out);
	cr_expect_eq(si_post(tok_v, "a1", "{\"name\":\"x\"}", &out), 403);
	json_decref(out);
	cr_expect_eq(si_post(tok_a, "nope", "{\"name\":\"x\"}", &out), 404);
	json_decref(out);

	/* a name the tenant has taken; a public image of that name does not count */
	si_image(tok_a, "a1", "a1-img");
	im = si_wait_active(tok_a, "a1-img");
	cr_expect_str_eq(dh_jstr(im, NULL, "tenant"), "team-a");
	cr_expect_null(json_object_get(im, "path"), "a host path shown to a member");
	json_decref(im);
	cr_expect_eq(si_post(tok_a, "a1", "{\"name\":\"a1-img\"}", &out), 409);
	cr_expect_str_eq(dh_jstr(out, "error", "field"), "name");
	json_decref(out);
	cr_expect_eq(dh_req(&h, tok_b, "GET", "/v1/images/a1-img", NULL, &out), 404,
		     "another tenant sees the image");
	json_decref(out);
	si_image(tok_a, "a1", "dbad"); /* the public image's name */
	json_decref(si_wait_active(tok_a, "dbad"));

	/* an image still saving can neither be deleted nor booted */
	snprintf(db_path, sizeof(db_path), "%s/state.db", h.dir);
	cr_assert_eq(sqlite3_open(db_path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	cr_assert_eq(sqlite3_exec(db, "UPDATE images SET status = 'saving' WHERE name = 'a1-img'",
				  NULL, NULL, NULL),
		     SQLITE_OK);
	sqlite3_close(db);
	cr_expect_eq(dh_req(&h, h.admin, "DELETE", "/v1/images/a1-img?tenant=team-a", NULL, &out),
		     409);
	cr_expect(strstr(si_msg(out), "saving") || strstr(si_msg(out), "saved"), "%s", si_msg(out));
	json_decref(out);
	cr_expect_eq(dh_req(&h, tok_a, "POST", "/v1/instances",
			    "{\"name\":\"a2\",\"flavor\":\"small\",\"image\":\"a1-img\"}", &out),
		     409);
	cr_expect_str_eq(dh_jstr(out, "error", "field"), "image");
	json_decref(out);
}

/* The status of image NAME in the store's file, "" when there is no such row. */
static char *si_db_status(const char *name)
{
	char db_path[300], *sql, *r = NULL;
	sqlite3_stmt *st;
	sqlite3 *db;

	snprintf(db_path, sizeof(db_path), "%s/state.db", h.dir);
	cr_assert_eq(sqlite3_open(db_path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	sql = sqlite3_mprintf("SELECT status FROM images WHERE name = %Q", name);
	cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		r = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_free(sql);
	sqlite3_close(db);
	return r ?: strdup("");
}

/* A row left "saving", its temporary file and its final file, as a killed copy leaves them. */
static void si_fake_saving(void)
{
	char db_path[300], tmp[300], dst[300], *sql;
	sqlite3 *db;
	int fd;

	snprintf(tmp, sizeof(tmp), "%s/images/.snap-Ab12Cd", h.dir);
	snprintf(dst, sizeof(dst), "%s/images/ghost.Ab12Cd", h.dir);
	fd = open(tmp, O_WRONLY | O_CREAT, 0600);
	cr_assert_geq(fd, 0);
	close(fd);
	snprintf(db_path, sizeof(db_path), "%s/state.db", h.dir);
	cr_assert_eq(sqlite3_open(db_path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	sql = sqlite3_mprintf("INSERT INTO images(name, kind, path, size, sha256, created, status)"
			      " VALUES('ghost', 'raw', %Q, 1, '', 1, 'saving')",
			      dst);
	cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
	sqlite3_free(sql);
	sqlite3_close(db);
}

Test(srvimg, an_image_left_saving_by_a_killed_bunshind_is_removed)
{
	char *status;
	json_t *out = NULL;

	dh_need_kvm();
	/* a disk large enough that the copy is still going when bunshind dies */
	si_images("dbig", "kbig", SI_CMDLINE, 512u << 20);
	si_create(h.admin, "b1", "dbig");
	free(dh_wait_lines(&h, "b1", "result=ready", 1));
	si_image(h.admin, "b1", "b1-img");
	dh_kill9(&h);
	status = si_db_status("b1-img");
	si_fake_saving();
	dh_restart(&h, NULL);

	/* killed saving: gone; finished in time: whole */
	if (!strcmp(status, "saving")) {
		cr_expect_eq(dh_req(&h, h.admin, "GET", "/v1/images/b1-img", NULL, &out), 404);
		json_decref(out);
	} else {
		json_decref(si_wait_active(h.admin, "b1-img"));
	}
	cr_log_info("b1-img was %s when bunshind was killed", status);
	free(status);
	cr_expect_eq(dh_req(&h, h.admin, "GET", "/v1/images/ghost", NULL, &out), 404);
	json_decref(out);
	cr_expect_eq(dh_image_files(&h, ".snap-"), 0);
	cr_expect_eq(dh_image_files(&h, "ghost"), 0);
	/* the instance lives on, and a new image of it works */
	si_image(h.admin, "b1", "b1-again");
	json_decref(si_wait_active(h.admin, "b1-again"));
}

Test(srvimg, cli_server_image_waits_until_active)
{
	char out[8192];
	json_t *im;

	dh_need_kvm();
	si_images("dcli", "kcli", SI_CMDLINE, SI_DISK_SIZE);
	si_create(h.admin, "c1", "dcli");
	free(dh_wait_lines(&h, "c1", "result=ready", 1));
	cr_assert_eq(dh_cli(&h, (const char *[]){"server", "image", "c1", "c1-img", "--wait", NULL},
			    out, sizeof(out)),
		     0, "%s", out);
	im = si_wait_active(h.admin, "c1-img");
	json_decref(im);
	/* the table says which images are ready */
	cr_assert_eq(dh_cli(&h, (const char *[]){"image", "list", NULL}, out, sizeof(out)), 0);
	cr_expect(strstr(out, "STATUS") && strstr(out, "active"), "%s", out);
	cr_expect_eq(dh_cli(&h, (const char *[]){"server", "image", "c1", "c1-img", NULL}, out,
			    sizeof(out)),
		     1, "%s", out);
	cr_expect(strstr(out, "already exists"), "%s", out);
	cr_expect_eq(dh_cli(&h, (const char *[]){"server", "image", "c1", NULL}, out, sizeof(out)),
		     2);
	cr_expect_eq(dh_cli(&h, (const char *[]){"server", "image", "nope", "x", NULL}, out,
			    sizeof(out)),
		     3);
	cr_expect_eq(dh_cli(&h,
			    (const char *[]){"server", "image", "c1", "x", "--timeout", "0",
					     "--wait", NULL},
			    out, sizeof(out)),
		     2);
	cr_expect_eq(
		dh_cli(&h, (const char *[]){"server", "image", "--help", NULL}, out, sizeof(out)),
		0);
	cr_expect(strstr(out, "--wait"), "%s", out);
}

Test(srvimg, a_bunshind_stopping_mid_copy_exits_cleanly_and_leaves_no_half_image)
{
	char *status;
	json_t *out = NULL;

	dh_need_kvm();
	si_images("dterm", "kterm", SI_CMDLINE, 512u << 20);
	si_create(h.admin, "t1", "dterm");
	free(dh_wait_lines(&h, "t1", "result=ready", 1));
	si_image(h.admin, "t1", "t1-img");
	cr_expect_eq(dh_term(&h), 0, "bunshind did not exit cleanly with a copy in flight");
	status = si_db_status("t1-img");
	cr_expect_eq(dh_image_files(&h, ".snap-"), 0, "a stopped copy left its temporary file");
	dh_restart(&h, NULL);
	if (!strcmp(status, "saving")) {
		cr_expect_eq(dh_req(&h, h.admin, "GET", "/v1/images/t1-img", NULL, &out), 404);
		json_decref(out);
	} else {
		json_decref(si_wait_active(h.admin, "t1-img"));
	}
	cr_log_info("t1-img was %s when bunshind stopped", status);
	free(status);
	cr_expect_eq(dh_image_files(&h, ".snap-"), 0);
}

Test(srvimg, a_disk_over_the_image_limit_and_unjailed_instances_are_refused)
{
	static const char *const small[] = {"--image-max-size", "1M", NULL};
	static const char *const nojail[] = {"--no-jail", NULL};
	json_t *out = NULL;

	dh_need_kvm();
	si_images("dlim", "klim", SI_CMDLINE, SI_DISK_SIZE);
	si_create(h.admin, "l1", "dlim");
	free(dh_wait_lines(&h, "l1", "result=ready", 1));
	cr_assert_eq(dh_term(&h), 0);
	dh_restart(&h, small);
	cr_expect_eq(si_post(h.admin, "l1", "{\"name\":\"l1-img\"}", &out), 413, "%s", si_msg(out));
	json_decref(out);
	cr_expect_eq(dh_req(&h, h.admin, "GET", "/v1/images/l1-img", NULL, &out), 404);
	json_decref(out);
	cr_expect_eq(dh_image_files(&h, ".snap-"), 0);

	/* unjailed, the layers' headers name host paths */
	dh_cleanup(&h);
	dh_start(&h, nojail);
	si_images("dnj", "knj", SI_CMDLINE, SI_DISK_SIZE);
	si_create(h.admin, "n1", "dnj");
	cr_expect_eq(si_post(h.admin, "n1", "{\"name\":\"n1-img\"}", &out), 409, "%s", si_msg(out));
	cr_expect(strstr(si_msg(out), "--no-jail"), "%s", si_msg(out));
	json_decref(out);
}

static void si_action(const char *ref, const char *action)
{
	char path[128], body[64];
	json_t *out = NULL;
	int st;

	snprintf(path, sizeof(path), "/v1/instances/%s/actions", ref);
	snprintf(body, sizeof(body), "{\"action\":\"%s\"}", action);
	st = dh_req(&h, h.admin, "POST", path, body, &out);
	cr_assert(st == 200 || st == 202, "%s %s: %d %s", action, ref, st, si_msg(out));
	json_decref(out);
}

Test(srvimg, a_paused_instance_stays_paused_and_its_image_holds_its_disk)
{
	dh_need_kvm();
	si_images("dpause", "kpause", SI_CMDLINE, SI_DISK_SIZE);
	si_create(h.admin, "p1", "dpause");
	si_expect_found("p1", 1, 31, 1, "none");
	si_start("p1");
	free(dh_wait_lines(&h, "p1", "result=ready", 2));
	si_action("p1", "pause");
	cr_assert_str_eq(dh_wait_state(&h, h.admin, "p1", "paused", 10000), "paused");
	si_image(h.admin, "p1", "p1-img");
	json_decref(si_wait_active(h.admin, "p1-img"));
	cr_expect_str_eq(dh_wait_state(&h, h.admin, "p1", "paused", 1000), "paused");
	si_action("p1", "resume");
	si_expect_found("p1", 2, 32, 2, "31");
	si_create(h.admin, "p2", "p1-img");
	si_expect_found("p2", 1, 33, 1, "31");
}

/*
 * A stopped instance cannot start while an image of its disk is being
 * saved (the copy reads its layers): a 409 saying why, and it starts
 * once the image is active. A disk large enough that the copy usually
 * still runs; if it was quicker, the image is active already.
 */
Test(srvimg, a_start_waits_for_the_image_of_its_disk)
{
	json_t *out = NULL;
	int st;

	dh_need_kvm();
	si_images("dhold", "khold", SI_CMDLINE, 512u << 20);
	si_create(h.admin, "h1", "dhold");
	free(dh_blk_tell(&h, "h1", 1, 5, 1));
	si_image(h.admin, "h1", "h1-img");
	st = dh_req(&h, h.admin, "POST", "/v1/instances/h1/actions", "{\"action\":\"start\"}",
		    &out);
	cr_log_info("a start during the copy: %d", st);
	if (st == 409) {
		cr_expect(strstr(si_msg(out), "being saved"), "%s", si_msg(out));
	} else {
		cr_assert_eq(st, 200, "%s", si_msg(out));
		json_decref(out);
		out = NULL;
		cr_assert_eq(dh_req(&h, h.admin, "GET", "/v1/images/h1-img", NULL, &out), 200);
		cr_expect_str_eq(dh_jstr(out, NULL, "status"), "active", "started while saving");
	}
	json_decref(out);
	json_decref(si_wait_active(h.admin, "h1-img"));
	if (st == 409)
		si_start("h1");
	free(dh_wait_lines(&h, "h1", "result=ready", 2));
}
