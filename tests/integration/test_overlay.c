// SPDX-License-Identifier: MIT
/*
 * Copy-on-write disks: the guest writes through an overlay and the image
 * under it stays as it was; a snapshot freezes a running VM's disk, and
 * clones restored from it each write into an overlay of their own. What
 * each VM wrote is read back on the host through the block layer's own
 * overlay reader (block/overlay.h).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "../../src/vmm/block/overlay.h"

#define IMG_SIZE   (1 << 20)
#define BLK_SECTOR 16 /* where the guest writes: 8 sectors per queue from here */
#define BLK_BYTES  4096

static char *const dir = harness_dir;

TestSuite(overlay, .init = harness_dir_setup, .fini = harness_dir_teardown);

static uint8_t *read_raw(const char *path)
{
	uint8_t *buf = malloc(IMG_SIZE);
	int fd = open(path, O_RDONLY);

	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	cr_assert_eq(pread(fd, buf, IMG_SIZE, 0), IMG_SIZE);
	close(fd);
	return buf;
}

/* The disk as a VM on this overlay sees it, read through the chain. */
static uint8_t *read_chain(const char *top)
{
	struct overlay *o = NULL;
	struct error err = {0};
	uint8_t *buf = malloc(IMG_SIZE);

	cr_assert_eq(overlay_open(&o, top, false, &err), 0, "%s", err.msg);
	cr_assert_eq(o->size, IMG_SIZE);
	cr_assert_eq(overlay_pread(o, buf, IMG_SIZE, 0), 0);
	overlay_close(o);
	return buf;
}

/* guest/virtio_blk.c: byte i of the 8 sectors from sector s. */
static uint8_t blk_pattern(size_t i, unsigned seed, uint64_t s)
{
	return (uint8_t)(i * 7 + (i >> 9) * 13 + seed + s);
}

/*
 * after is before but for n 4 KiB ranges from BLK_SECTOR: the first
 * `zeroed` of them zero, the rest the guest's pattern.
 */
static void check_disk(const uint8_t *before, const uint8_t *after, unsigned seed, unsigned n,
		       unsigned zeroed, const char *what)
{
	for (size_t i = 0; i < IMG_SIZE; i++) {
		size_t off = i - BLK_SECTOR * 512;
		unsigned r = (unsigned)(off / BLK_BYTES);
		uint8_t want = before[i];

		if (i >= BLK_SECTOR * 512 && r < n)
			want = r < zeroed ? 0
					  : blk_pattern(off % BLK_BYTES, seed, BLK_SECTOR + 8 * r);
		cr_assert_eq(after[i], want, "%s: byte %zu (range %u)", what, i, r);
	}
}

/* The disk read through the chain from top is before but for what check_disk() says. */
static void check_chain(const uint8_t *before, const char *top, unsigned seed, unsigned n,
			unsigned zeroed, const char *what)
{
	uint8_t *got = read_chain(top);

	check_disk(before, got, seed, n, zeroed, what);
	free(got);
}

static void path_in(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", dir, name);
}

/* ---- an overlay disk from the command line ---- */

Test(overlay, guest_writes_land_in_the_overlay)
{
	char *img = harness_temp_file(IMG_SIZE, 17, NULL);
	uint8_t *before = read_raw(img), *after;
	char disk[256], top[128], val[64];
	const char *argv[] = {"vmm",
			      "--kernel",
			      harness_guest("elf"),
			      "--cmdline",
			      "test=virtio-blk blk_queues=4 blk_seed=91 blk_sector=16",
			      "--memory",
			      "128M",
			      "--disk",
			      disk,
			      NULL};
	struct vmm_result r;

	harness_require_kvm();
	path_in(top, sizeof(top), "top.ovl");
	snprintf(disk, sizeof(disk), "path=%s,overlay=%s,queues=4", img, top);
	harness_run(&(struct vmm_run){.argv = argv, .timeout_ms = 60000, .run_as_uid = -1}, &r);
	cr_assert(!r.timed_out, "timed out; stderr:\n%s", r.err);
	cr_assert(harness_passed(r.out, "virtio-blk"), "console:\n%s\nstderr:\n%s", r.out, r.err);
	/* the guest still sees the image's name as the disk's serial */
	cr_assert(harness_result_field(r.out, "virtio-blk", "id", val, sizeof(val)));
	cr_assert(!strncmp(strrchr(img, '/') + 1, val, strlen(val)), "id %s", val);
	cr_assert_eq(r.status, 0);
	after = read_raw(img);
	cr_assert(!memcmp(before, after, IMG_SIZE), "the image under the overlay was written");
	free(after);
	after = read_chain(top);
	check_disk(before, after, 91, 4, 1, "through the overlay");
	harness_free(&r);
	unlink(img);
	free(before);
	free(after);
	free(img);
}

Test(overlay, bad_overlay_option_is_a_usage_error)
{
	char *img = harness_temp_file(IMG_SIZE, 3, NULL);
	char disk[256];
	const char *argv[] = {"vmm", "--kernel", harness_guest("elf"), "--disk", disk, NULL};
	struct vmm_result r;

	snprintf(disk, sizeof(disk), "path=%s,overlay=%s/x.ovl,readonly=on", img, dir);
	harness_run(&(struct vmm_run){.argv = argv, .timeout_ms = 10000, .run_as_uid = -1}, &r);
	cr_assert_eq(r.status, 2, "stderr:\n%s", r.err);
	cr_assert(strstr(r.err, "overlay="), "%s", r.err);
	harness_free(&r);
	unlink(img);
	free(img);
}

/* ---- snapshots and clones ---- */

/*
 * The parent: a guest with the virtio-blk device set up, waiting on its
 * serial line for the seed of what to write, snapshotted into DIR/snap
 * while it waits. Returns its console connection; it keeps running.
 */
static int parent_snapshot(struct harness_proc *a, const char *img, const char *overlay, char *snap,
			   size_t size)
{
	char con[96], sock[96], serial[104], disk[256], body[256], reply[1024];
	int fd;

	path_in(con, sizeof(con), "a.con");
	path_in(sock, sizeof(sock), "a.api");
	snprintf(serial, sizeof(serial), "unix:%s", con);
	if (overlay)
		snprintf(disk, sizeof(disk), "path=%s,overlay=%s", img, overlay);
	else
		snprintf(disk, sizeof(disk), "path=%s", img);
	{
		const char *args[] = {
			"--kernel",   harness_guest("elf"),
			"--cmdline",  "test=virtio-blk blk_wait=1 blk_keep=1 blk_sector=16",
			"--memory",   "64M",
			"--serial",   serial,
			"--api-sock", sock,
			"--disk",     disk,
			NULL};

		harness_proc_start(a, dir, "a", args);
	}
	fd = harness_unix_connect(con, 5000);
	cr_assert_geq(fd, 0, "no console; stderr:\n%s", harness_proc_stderr(a));
	harness_wait_text(fd, "name=virtio-blk result=ready", 20000);
	path_in(snap, size, "snap");
	snprintf(body, sizeof(body), "{\"dir\": \"%s\"}", snap);
	cr_assert_eq(harness_api(sock, "PUT", "/vm/snapshot", body, reply, sizeof(reply)), 200,
		     "%s", reply);
	return fd;
}

/* Tells the parent its seed; it writes, passes and exits 0. */
static void parent_finish(struct harness_proc *a, int fd, unsigned seed)
{
	char send[32];

	snprintf(send, sizeof(send), "seed=%u\n", seed);
	cr_assert_eq(write(fd, send, strlen(send)), (ssize_t)strlen(send));
	harness_wait_text(fd, "name=virtio-blk result=pass", 20000);
	close(fd);
	cr_assert_eq(harness_proc_wait(a, 30000), 0, "stderr:\n%s", harness_proc_stderr(a));
}

/*
 * A clone restored from snap with the given --overlay (NULL: none), told
 * its seed once it runs: input that reached the UART before its state was
 * restored would be lost.
 */
static void run_clone(const char *snap, const char *overlay, unsigned seed)
{
	static unsigned n;
	char tag[16], con[96], sock[96], serial[104], send[32];
	const char *args[] = {"--restore", snap,	"--serial", serial, "--api-sock",
			      sock,	   "--overlay", overlay,    NULL};
	struct harness_proc p;
	int fd;

	snprintf(tag, sizeof(tag), "clone%u", n++);
	snprintf(con, sizeof(con), "%s/%s.con", dir, tag);
	snprintf(sock, sizeof(sock), "%s/%s.api", dir, tag);
	snprintf(serial, sizeof(serial), "unix:%s", con);
	if (!overlay)
		args[6] = NULL; /* the default top layer */
	harness_proc_start(&p, dir, tag, args);
	fd = harness_unix_connect(con, 10000);
	cr_assert_geq(fd, 0, "no console; stderr:\n%s", harness_proc_stderr(&p));
	harness_wait_running(sock, 10000);
	snprintf(send, sizeof(send), "seed=%u\n", seed);
	cr_assert_eq(write(fd, send, strlen(send)), (ssize_t)strlen(send));
	harness_wait_text(fd, "name=virtio-blk result=pass", 20000);
	close(fd);
	cr_assert_eq(harness_proc_wait(&p, 30000), 0, "stderr:\n%s", harness_proc_stderr(&p));
}

Test(overlay, snapshot_clones_write_apart)
{
	char *img = harness_temp_file(IMG_SIZE, 29, NULL);
	uint8_t *before = read_raw(img), *got;
	char snap[96], live[128], ob[160], oc[160], pb[128], pc[128];
	struct harness_proc a;
	int fd;

	harness_require_kvm();
	fd = parent_snapshot(&a, img, NULL, snap, sizeof(snap));
	snprintf(live, sizeof(live), "%s/disk0.live.ovl", snap);
	cr_assert_eq(access(live, F_OK), 0, "no %s; stderr:\n%s", live, harness_proc_stderr(&a));
	/* clone b while the parent still runs (by index), clone c after it (by path) */
	path_in(pb, sizeof(pb), "b.ovl");
	path_in(pc, sizeof(pc), "c.ovl");
	snprintf(ob, sizeof(ob), "0=%s", pb);
	snprintf(oc, sizeof(oc), "%s=%s", img, pc);
	run_clone(snap, ob, 11);
	parent_finish(&a, fd, 33);
	run_clone(snap, oc, 22);

	got = read_raw(img);
	cr_assert(!memcmp(before, got, IMG_SIZE), "the frozen image was written");
	free(got);
	check_chain(before, live, 33, 1, 0, "the parent after the snapshot");
	check_chain(before, pb, 11, 1, 0, "clone b");
	check_chain(before, pc, 22, 1, 0, "clone c");
	unlink(img);
	free(before);
	free(img);
}

/* One restore that must fail with a line naming --overlay. */
static void expect_refused(const char *snap, const char *overlay, const char *words)
{
	const char *argv[] = {"vmm", "--restore", snap, "--overlay", overlay, NULL};
	struct vmm_result r;

	harness_run(&(struct vmm_run){.argv = argv, .timeout_ms = 20000, .run_as_uid = -1}, &r);
	cr_assert_neq(r.status, 0, "restored with --overlay %s", overlay);
	cr_assert(strstr(r.err, "--overlay"), "stderr:\n%s", r.err);
	cr_assert(strstr(r.err, words), "'%s' not in:\n%s", words, r.err);
	cr_assert(!strstr(r.out, "result="), "the guest ran:\n%s", r.out);
	harness_free(&r);
}

Test(overlay, bad_overlays_are_refused)
{
	char *img = harness_temp_file(IMG_SIZE, 5, NULL);
	char snap[96], spec[256], bad[128];
	struct harness_proc a;
	int fd, junk;
	uint8_t garbage[8192];

	harness_require_kvm();
	fd = parent_snapshot(&a, img, NULL, snap, sizeof(snap));
	expect_refused(snap, "7=/tmp/never.ovl", "no disk '7'");
	snprintf(spec, sizeof(spec), "0=%s/x.ovl", img); /* a file is not a directory */
	expect_refused(snap, spec, "creating");
	path_in(bad, sizeof(bad), "bad.ovl");
	memset(garbage, 0xa5, sizeof(garbage));
	junk = open(bad, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_eq(write(junk, garbage, sizeof(garbage)), (ssize_t)sizeof(garbage));
	close(junk);
	snprintf(spec, sizeof(spec), "0=%s", bad);
	expect_refused(snap, spec, "bad magic");
	/* a valid overlay, but over some other image */
	{
		char *other = harness_temp_file(IMG_SIZE, 6, NULL);
		struct error err = {0};

		path_in(bad, sizeof(bad), "other.ovl");
		cr_assert_eq(overlay_create(bad, other, OVL_FMT_RAW, &err), 0, "%s", err.msg);
		snprintf(spec, sizeof(spec), "0=%s", bad);
		expect_refused(snap, spec, "not an overlay over the snapshot's disk");
		unlink(other);
		free(other);
	}
	parent_finish(&a, fd, 1);
	unlink(img);
	free(img);
}

/*
 * A parent on an overlay of its own (with data in it from before it
 * started): the snapshot freezes that overlay, and a clone restored without
 * --overlay gets a fresh DIR/snap/disk0.restore-PID.ovl over it, a
 * three-layer chain.
 */
Test(overlay, snapshot_of_an_overlay_disk_and_the_default_top)
{
	char *img = harness_temp_file(IMG_SIZE, 31, NULL);
	uint8_t *before = read_raw(img), *got, mark[8192];
	char snap[96], po[128], cmd[256], top[256] = "";
	struct overlay *o = NULL;
	struct error err = {0};
	struct harness_proc a;
	FILE *ls;
	int fd;

	harness_require_kvm();
	path_in(po, sizeof(po), "p.ovl");
	cr_assert_eq(overlay_create(po, img, OVL_FMT_RAW, &err), 0, "%s", err.msg);
	cr_assert_eq(overlay_open(&o, po, true, &err), 0, "%s", err.msg);
	memset(mark, 0x77, sizeof(mark));
	cr_assert_eq(overlay_pwrite(o, mark, sizeof(mark), 512 * 1024 - 100), 0);
	overlay_close(o);
	memcpy(before + 512 * 1024 - 100, mark, sizeof(mark));

	fd = parent_snapshot(&a, img, po, snap, sizeof(snap));
	run_clone(snap, NULL, 44);
	parent_finish(&a, fd, 55);

	snprintf(cmd, sizeof(cmd), "ls %s/disk0.restore-*.ovl", snap);
	ls = popen(cmd, "r");
	cr_assert_not_null(ls);
	cr_assert_not_null(fgets(top, sizeof(top), ls), "no default overlay in %s", snap);
	pclose(ls);
	top[strcspn(top, "\n")] = 0;
	cr_assert_eq(overlay_open(&o, top, false, &err), 0, "%s", err.msg);
	cr_assert_eq(o->n, 3, "the clone's chain has %u layers", o->n);
	overlay_close(o);
	check_chain(before, top, 44, 1, 0, "the clone");
	snprintf(cmd, sizeof(cmd), "%s/disk0.live.ovl", snap);
	check_chain(before, cmd, 55, 1, 0, "the parent after the snapshot");
	/* the frozen overlay and the image under it hold what they did */
	check_chain(before, po, 0, 0, 0, "the frozen overlay");
	got = read_raw(img);
	memcpy(before + 512 * 1024 - 100, got + 512 * 1024 - 100, sizeof(mark));
	cr_assert(!memcmp(before, got, IMG_SIZE), "the image was written");
	free(got);
	unlink(img);
	free(before);
	free(img);
}
