// SPDX-License-Identifier: MIT
/* PCI enumeration and virtio devices, driven by the test guest's own drivers. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static void run_guest(const char *cmdline, const char *const *extra, struct vmm_result *r)
{
	const char *argv[16] = {"vmm",	    "--kernel", harness_guest("elf"), "--cmdline", cmdline,
				"--memory", "128M"};
	int n = 7;

	harness_require_kvm();
	for (int i = 0; extra && extra[i] && n < 15; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	harness_run(&(struct vmm_run){.argv = argv, .timeout_ms = 60000, .run_as_uid = -1}, r);
	cr_assert(!r->timed_out, "VMM timed out; console:\n%s\nstderr:\n%s", r->out, r->err);
}

Test(pci, host_bridge_alone)
{
	struct vmm_result r;
	char val[32];

	run_guest("test=pci expect_devices=1", NULL, &r);
	cr_assert(harness_passed(r.out, "pci"), "console:\n%s\nstderr:\n%s", r.out, r.err);
	cr_assert(harness_result_field(r.out, "pci", "host_bridge", val, sizeof(val)));
	cr_assert_str_eq(val, "1b36:0008");
	cr_assert(harness_result_field(r.out, "pci", "method", val, sizeof(val)));
	cr_assert_str_eq(val, "ecam", "the guest must find ECAM through the MCFG");
	cr_assert_eq(r.status, 0);
	harness_free(&r);
}

Test(pci, rng_device_enumerates)
{
	const char *extra[] = {"--rng", NULL};
	struct vmm_result r;

	run_guest("test=pci expect_devices=2 expect=1af4:1044", extra, &r);
	cr_assert(harness_passed(r.out, "pci"), "console:\n%s\nstderr:\n%s", r.out, r.err);
	cr_assert_eq(r.status, 0);
	harness_free(&r);
}

static void rng_check(const char *options, const char *irq_expect)
{
	const char *extra[] = {"--rng", NULL};
	char cmdline[128], val[32];
	struct vmm_result r;

	snprintf(cmdline, sizeof(cmdline), "test=virtio-rng %s", options);
	run_guest(cmdline, extra, &r);
	cr_assert(harness_passed(r.out, "virtio-rng"), "console:\n%s\nstderr:\n%s", r.out, r.err);
	cr_assert(harness_result_field(r.out, "virtio-rng", "bytes", val, sizeof(val)));
	cr_assert_eq(atoi(val), 4096);
	cr_assert(harness_result_field(r.out, "virtio-rng", "irq", val, sizeof(val)));
	if (irq_expect)
		cr_assert_str_eq(val, irq_expect);
	else
		cr_assert_gt(atoi(val), 0, "MSI-X interrupts must arrive");
	cr_assert_eq(r.status, 0);
	harness_free(&r);
}

Test(virtio_rng, msix_interrupts)
{
	rng_check("", NULL);
}
Test(virtio_rng, polling)
{
	rng_check("virtio_poll=1", "poll");
}
Test(virtio_rng, no_optional_features)
{
	rng_check("virtio_features=none", NULL);
}
Test(virtio_rng, without_event_idx)
{
	rng_check("virtio_features=-event_idx", NULL);
}

Test(virtio_rng, absent_without_flag)
{
	struct vmm_result r;
	char val[32];

	run_guest("test=virtio-rng", NULL, &r);
	cr_assert(harness_result_field(r.out, "virtio-rng", "reason", val, sizeof(val)),
		  "console:\n%s", r.out);
	cr_assert_str_eq(val, "no-device");
	harness_free(&r);
}

/* ---- virtio-blk ---- */

#define IMG_SIZE   (1 << 20)
#define BLK_SECTOR 16 /* where the guest writes: 8 sectors from here */

static uint8_t *read_image(const char *path)
{
	uint8_t *buf = malloc(IMG_SIZE);
	int fd = open(path, O_RDONLY);

	cr_assert_geq(fd, 0);
	cr_assert_eq(pread(fd, buf, IMG_SIZE, 0), IMG_SIZE);
	close(fd);
	return buf;
}

Test(pci, blk_device_enumerates)
{
	char *img = harness_temp_file(IMG_SIZE, 1, NULL);
	char disk[128];
	const char *extra[] = {"--disk", disk, NULL};
	struct vmm_result r;

	snprintf(disk, sizeof(disk), "path=%s", img);
	run_guest("test=pci expect_devices=2 expect=1af4:1042", extra, &r);
	cr_assert(harness_passed(r.out, "pci"), "console:\n%s\nstderr:\n%s", r.out, r.err);
	harness_free(&r);
	unlink(img);
	free(img);
}

/*
 * The guest writes a pattern, reads it back, flushes, then discards and
 * write-zeroes the same 8 sectors: afterwards those read as zeroes in the
 * file and every other byte of the image is as it was.
 */
Test(virtio_blk, read_write_flush_discard_write_zeroes)
{
	char *img = harness_temp_file(IMG_SIZE, 7, NULL);
	uint8_t *before = read_image(img), *after;
	char disk[128], val[32];
	const char *extra[] = {"--disk", disk, NULL};
	struct vmm_result r;

	snprintf(disk, sizeof(disk), "path=%s,id=bunshin-disk0", img);
	run_guest("test=virtio-blk blk_sector=16", extra, &r);
	cr_assert(harness_passed(r.out, "virtio-blk"), "console:\n%s\nstderr:\n%s", r.out, r.err);
	cr_assert(harness_result_field(r.out, "virtio-blk", "capacity", val, sizeof(val)));
	cr_assert_eq(atoi(val), IMG_SIZE / 512);
	cr_assert(harness_result_field(r.out, "virtio-blk", "blk_size", val, sizeof(val)));
	cr_assert_str_eq(val, "512");
	cr_assert(harness_result_field(r.out, "virtio-blk", "id", val, sizeof(val)));
	cr_assert_str_eq(val, "bunshin-disk0");
	cr_assert(harness_result_field(r.out, "virtio-blk", "flush", val, sizeof(val)));
	cr_assert_str_eq(val, "ok");
	cr_assert(harness_result_field(r.out, "virtio-blk", "discard", val, sizeof(val)));
	cr_assert_str_eq(val, "ok");
	cr_assert(harness_result_field(r.out, "virtio-blk", "write_zeroes", val, sizeof(val)));
	cr_assert_str_eq(val, "ok");
	cr_assert_gt(harness_result_field(r.out, "virtio-blk", "irq", val, sizeof(val)) ? atoi(val)
											: 0,
		     0);
	cr_assert_eq(r.status, 0);
	after = read_image(img);
	for (size_t i = 0; i < IMG_SIZE; i++) {
		bool guest = i >= BLK_SECTOR * 512 && i < (BLK_SECTOR + 8) * 512;

		cr_assert_eq(after[i], guest ? 0 : before[i], "byte %zu", i);
	}
	harness_free(&r);
	unlink(img);
	free(before);
	free(after);
	free(img);
}

Test(virtio_blk, polling_without_ring_features)
{
	char *img = harness_temp_file(IMG_SIZE, 8, NULL);
	char disk[128];
	const char *extra[] = {"--disk", disk, NULL};
	struct vmm_result r;

	snprintf(disk, sizeof(disk), "path=%s", img);
	run_guest("test=virtio-blk virtio_poll=1 virtio_features=none", extra, &r);
	cr_assert(harness_passed(r.out, "virtio-blk"), "console:\n%s\nstderr:\n%s", r.out, r.err);
	cr_assert_eq(r.status, 0);
	harness_free(&r);
	unlink(img);
	free(img);
}

Test(virtio_blk, read_only)
{
	uint32_t crc, crc_after;
	char *img = harness_temp_file(IMG_SIZE, 9, &crc);
	uint8_t *after;
	char disk[128], val[32];
	const char *extra[] = {"--disk", disk, NULL};
	struct vmm_result r;

	snprintf(disk, sizeof(disk), "path=%s,readonly=on", img);
	run_guest("test=virtio-blk blk_readonly=1", extra, &r);
	cr_assert(harness_passed(r.out, "virtio-blk"), "console:\n%s\nstderr:\n%s", r.out, r.err);
	cr_assert(harness_result_field(r.out, "virtio-blk", "readonly", val, sizeof(val)));
	cr_assert_str_eq(val, "1");
	cr_assert_eq(r.status, 0);
	after = read_image(img);
	crc_after = harness_crc32(after, IMG_SIZE);
	cr_assert_eq(crc_after, crc, "a read-only image must not change");
	harness_free(&r);
	unlink(img);
	free(after);
	free(img);
}

/* Starts a VMM holding img, waiting for console input; returns its pid once it booted. */
static pid_t start_holder(const char *img, int *in_fd)
{
	char disk[128], buf[4096];
	int in[2], out[2];
	size_t got = 0;
	pid_t pid;

	snprintf(disk, sizeof(disk), "path=%s", img);
	cr_assert_eq(pipe(in), 0);
	cr_assert_eq(pipe(out), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (!pid) {
		harness_die_with_parent();
		dup2(in[0], 0);
		dup2(out[1], 1);
		execl(harness_vmm(), "bunshin-vmm", "--kernel", harness_guest("elf"), "--memory",
		      "128M", "--cmdline", "test=serial-echo", "--disk", disk, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	/* serial-echo says ready once booted: the image was locked before that */
	while (got < sizeof(buf) - 1) {
		ssize_t n = read(out[0], buf + got, sizeof(buf) - 1 - got);

		if (n <= 0)
			break;
		got += (size_t)n;
		buf[got] = 0;
		if (strstr(buf, "result=ready"))
			break;
	}
	close(out[0]);
	cr_assert(got && strstr(buf, "result=ready"), "holder did not boot: %s", buf);
	*in_fd = in[1];
	return pid;
}

Test(virtio_blk, second_vmm_on_a_locked_image_fails)
{
	char *img = harness_temp_file(IMG_SIZE, 10, NULL);
	char disk[128];
	const char *extra[] = {"--disk", disk, NULL};
	struct vmm_result r;
	int in_fd, st;
	pid_t holder;

	harness_require_kvm();
	holder = start_holder(img, &in_fd);
	snprintf(disk, sizeof(disk), "path=%s", img);
	run_guest("test=virtio-blk", extra, &r);
	kill(holder, SIGTERM);
	close(in_fd);
	waitpid(holder, &st, 0);
	cr_assert_eq(r.status, 1, "stderr:\n%s", r.err);
	cr_assert(strstr(r.err, "locked"), "stderr:\n%s", r.err);
	cr_assert_eq(harness_count(r.err, "\n"), 1, "one line: %s", r.err);
	harness_free(&r);
	unlink(img);
	free(img);
}

Test(virtio_blk, missing_image_fails)
{
	const char *extra[] = {"--disk", "path=/nonexistent/bunshin.img", NULL};
	struct vmm_result r;

	run_guest("test=virtio-blk", extra, &r);
	cr_assert_eq(r.status, 1, "stderr:\n%s", r.err);
	cr_assert(strstr(r.err, "/nonexistent/bunshin.img"), "stderr:\n%s", r.err);
	cr_assert(strstr(r.err, "No such file"), "stderr:\n%s", r.err);
	cr_assert_eq(harness_count(r.err, "\n"), 1, "one line: %s", r.err);
	harness_free(&r);
}

Test(virtio_blk, bad_disk_option_is_a_usage_error)
{
	const char *extra[] = {"--disk", "path=x,readonly=maybe", NULL};
	struct vmm_result r;

	run_guest("test=virtio-blk", extra, &r);
	cr_assert_eq(r.status, 2, "stderr:\n%s", r.err);
	cr_assert(strstr(r.err, "readonly='maybe' is not on or off"), "stderr:\n%s", r.err);
	harness_free(&r);
}

/* ---- multiqueue and direct=on ---- */

#define BLK_SEED 91

/* What the guest writes to the 8 sectors from sector s (guest/virtio_blk.c). */
static uint8_t blk_pattern(size_t i, uint64_t s)
{
	return (uint8_t)(i * 7 + (i >> 9) * 13 + BLK_SEED + s);
}

/*
 * Compares the image with what it held before the guest ran: [first, +n)
 * 4 KiB ranges from BLK_SECTOR hold the pattern, [0, zeroed) of them read
 * as zeroes, every other byte is unchanged.
 */
static void check_image(const uint8_t *before, const uint8_t *after, unsigned int n,
			unsigned int zeroed)
{
	for (size_t i = 0; i < IMG_SIZE; i++) {
		size_t off = i - BLK_SECTOR * 512;
		unsigned int r = (unsigned int)(off / 4096);
		uint8_t want = before[i];

		if (i >= BLK_SECTOR * 512 && r < n)
			want = r < zeroed ? 0 : blk_pattern(off % 4096, BLK_SECTOR + 8 * r);
		cr_assert_eq(after[i], want, "byte %zu (range %u)", i, r);
	}
}

/*
 * queues=4: the guest writes a pattern through each queue at once, each
 * queue to sectors of its own, reads each back through the same queue,
 * then discards and write-zeroes queue 0's range through queue 3.
 */
Test(virtio_blk, multiqueue_every_queue_writes)
{
	char *img = harness_temp_file(IMG_SIZE, 11, NULL);
	uint8_t *before = read_image(img), *after;
	char disk[160], val[32], cmdline[128];
	const char *extra[] = {"--disk", disk, NULL};
	struct vmm_result r;

	snprintf(disk, sizeof(disk), "path=%s,queues=4", img);
	snprintf(cmdline, sizeof(cmdline), "test=virtio-blk blk_queues=4 blk_seed=%d blk_sector=%d",
		 BLK_SEED, BLK_SECTOR);
	run_guest(cmdline, extra, &r);
	cr_assert(harness_passed(r.out, "virtio-blk"), "console:\n%s\nstderr:\n%s", r.out, r.err);
	cr_assert(harness_result_field(r.out, "virtio-blk", "queues", val, sizeof(val)));
	cr_assert_str_eq(val, "4");
	cr_assert(harness_result_field(r.out, "virtio-blk", "write_zeroes", val, sizeof(val)));
	cr_assert_str_eq(val, "ok");
	cr_assert_eq(r.status, 0);
	after = read_image(img);
	check_image(before, after, 4, 1);
	harness_free(&r);
	unlink(img);
	free(before);
	free(after);
	free(img);
}

/* The guest asks for every queue the device has: one without queues= has one. */
Test(virtio_blk, single_queue_device_has_one_queue)
{
	char *img = harness_temp_file(IMG_SIZE, 12, NULL);
	char disk[160], val[32];
	const char *extra[] = {"--disk", disk, NULL};
	struct vmm_result r;

	snprintf(disk, sizeof(disk), "path=%s", img);
	run_guest("test=virtio-blk blk_queues=0", extra, &r);
	cr_assert(harness_passed(r.out, "virtio-blk"), "console:\n%s\nstderr:\n%s", r.out, r.err);
	cr_assert(harness_result_field(r.out, "virtio-blk", "queues", val, sizeof(val)));
	cr_assert_str_eq(val, "1");
	harness_free(&r);
	unlink(img);
	free(img);
}

/* True when fd's file really bypasses the page cache with O_DIRECT. */
static bool direct_works(const char *path, char *why, size_t len)
{
	struct statfs sf;
	int fd = open(path, O_RDWR | O_DIRECT);

	if (fd < 0) {
		snprintf(why, len, "%s: %s", path, strerror(errno));
		return false;
	}
	if (fstatfs(fd, &sf) == 0 && (sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC)) {
		snprintf(why, len, "%s: tmpfs", path);
		close(fd);
		return false;
	}
#ifdef STATX_DIOALIGN
	struct statx stx;

	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
	    (stx.stx_mask & STATX_DIOALIGN) && !stx.stx_dio_offset_align) {
		snprintf(why, len, "%s: no direct I/O on this file", path);
		close(fd);
		return false;
	}
#endif
	close(fd);
	return true;
}

/* A copy of harness_temp_file()'s image in dir; NULL (why says it) when dir cannot do O_DIRECT. */
static char *direct_image(const char *dir, uint32_t seed, char *why, size_t len)
{
	char *tmp = harness_temp_file(IMG_SIZE, seed, NULL), *path;
	uint8_t *data = read_image(tmp);
	int fd;

	unlink(tmp);
	free(tmp);
	if (asprintf(&path, "%s/bunshin-direct-XXXXXX", dir) < 0)
		cr_assert_fail("out of memory");
	fd = mkstemp(path);
	if (fd < 0 || write(fd, data, IMG_SIZE) != IMG_SIZE) {
		snprintf(why, len, "%s: %s", dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		unlink(path);
		free(path);
		free(data);
		return NULL;
	}
	close(fd);
	free(data);
	if (direct_works(path, why, len))
		return path;
	unlink(path);
	free(path);
	return NULL;
}

/* The first of $BUNSHIN_DIRECT_DIR, /var/tmp, the build directory and /tmp that can. */
static char *direct_image_somewhere(uint32_t seed)
{
	const char *dirs[] = {getenv("BUNSHIN_DIRECT_DIR"), "/var/tmp", getenv("MESON_BUILD_ROOT"),
			      ".", "/tmp"};
	char why[256] = "", all[1024] = "";

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		char *p;

		if (!dirs[i] || !dirs[i][0])
			continue;
		p = direct_image(dirs[i], seed, why, sizeof(why));
		if (p)
			return p;
		snprintf(all + strlen(all), sizeof(all) - strlen(all), "%s%s", all[0] ? "; " : "",
			 why);
	}
	cr_skip_test("no directory supports O_DIRECT (%s)", all);
	return NULL;
}

/*
 * direct=on end to end: the image is opened O_DIRECT, the guest's aligned
 * buffers go straight to the file; the host sees the pattern in it.
 */
Test(virtio_blk, direct_on_end_to_end)
{
	char *img;
	uint8_t *before, *after;
	char disk[160], val[32], cmdline[128];
	const char *extra[] = {"--disk", disk, NULL};
	struct vmm_result r;

	harness_require_kvm();
	img = direct_image_somewhere(13);
	before = read_image(img);
	snprintf(disk, sizeof(disk), "path=%s,direct=on", img);
	snprintf(cmdline, sizeof(cmdline), "test=virtio-blk blk_seed=%d blk_sector=%d blk_keep=1",
		 BLK_SEED, BLK_SECTOR);
	run_guest(cmdline, extra, &r);
	cr_assert(harness_passed(r.out, "virtio-blk"), "console:\n%s\nstderr:\n%s", r.out, r.err);
	cr_assert(harness_result_field(r.out, "virtio-blk", "discard", val, sizeof(val)));
	cr_assert_str_eq(val, "skipped");
	cr_assert_eq(r.status, 0);
	after = read_image(img);
	check_image(before, after, 1, 0);
	harness_free(&r);
	unlink(img);
	free(before);
	free(after);
	free(img);
}

/* direct=on with several queues, discard and write-zeroes included. */
Test(virtio_blk, direct_on_multiqueue)
{
	char *img;
	uint8_t *before, *after;
	char disk[160], cmdline[128];
	const char *extra[] = {"--disk", disk, NULL};
	struct vmm_result r;

	harness_require_kvm();
	img = direct_image_somewhere(14);
	before = read_image(img);
	snprintf(disk, sizeof(disk), "path=%s,direct=on,queues=2", img);
	snprintf(cmdline, sizeof(cmdline), "test=virtio-blk blk_queues=2 blk_seed=%d blk_sector=%d",
		 BLK_SEED, BLK_SECTOR);
	run_guest(cmdline, extra, &r);
	cr_assert(harness_passed(r.out, "virtio-blk"), "console:\n%s\nstderr:\n%s", r.out, r.err);
	cr_assert_eq(r.status, 0);
	after = read_image(img);
	check_image(before, after, 2, 1);
	harness_free(&r);
	unlink(img);
	free(before);
	free(after);
	free(img);
}

/* An image on tmpfs with direct=on: one clear line at start-up, not I/O errors later. */
Test(virtio_blk, direct_on_tmpfs_fails_at_start)
{
	char disk[160], want[256];
	const char *extra[] = {"--disk", disk, NULL};
	char path[] = "/dev/shm/bunshin-direct-XXXXXX";
	struct vmm_result r;
	struct statfs sf;
	int fd;

	if (statfs("/dev/shm", &sf) < 0 || sf.f_type != TMPFS_MAGIC)
		cr_skip_test("/dev/shm is not tmpfs");
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, IMG_SIZE), 0);
	close(fd);
	snprintf(disk, sizeof(disk), "path=%s,direct=on", path);
	run_guest("test=virtio-blk", extra, &r);
	unlink(path);
	snprintf(want, sizeof(want),
		 "--disk: %s: the filesystem does not support direct=on (O_DIRECT)", path);
	cr_assert_eq(r.status, 1, "stderr:\n%s", r.err);
	cr_assert(strstr(r.err, want), "stderr:\n%s", r.err);
	cr_assert_eq(harness_count(r.err, "\n"), 1, "one line: %s", r.err);
	harness_free(&r);
}
