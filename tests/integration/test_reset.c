// SPDX-License-Identifier: MIT
/*
 * Driver-requested resets on the I/O thread (test=virtio-reset): a guest
 * resets its disk with writes in flight, in storms of status writes that
 * do not wait, and the VMM, sandboxed with the narrow vCPU filter, must
 * neither die (SIGSYS) nor hang; the disk works afterwards. Snapshots
 * taken while the storm runs must succeed, and a guest restored from one
 * must finish it.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define DISK_SIZE (2 * 1024 * 1024)

static char dir[64];

static void setup(void)
{
	harness_dir_setup();
	snprintf(dir, sizeof(dir), "%s", harness_dir);
}

TestSuite(reset, .init = setup, .fini = harness_dir_teardown);

static void expect_clean(const char *err)
{
	cr_assert_null(strstr(err, "SIGSYS"), "stderr:\n%s", err);
	cr_assert_null(strstr(err, "seccomp"), "stderr:\n%s", err);
}

Test(reset, storm_with_requests_in_flight)
{
	struct vmm_result r;
	char disk[160], val[32];
	uint32_t crc;
	char *img;
	const char *argv[] = {"vmm",
			      "--kernel",
			      harness_guest("elf"),
			      "--cmdline",
			      "test=virtio-reset reset_rounds=40 reset_storm=200",
			      "--memory",
			      "128M",
			      "--disk",
			      disk,
			      NULL};

	harness_require_kvm();
	img = harness_temp_file(DISK_SIZE, 1, &crc);
	snprintf(disk, sizeof(disk), "path=%s", img);
	harness_run(&(struct vmm_run){.argv = argv, .timeout_ms = 120000, .run_as_uid = -1}, &r);
	cr_assert(!r.timed_out, "VMM timed out; console:\n%s\nstderr:\n%s", r.out, r.err);
	cr_assert(harness_passed(r.out, "virtio-reset"), "console:\n%s\nstderr:\n%s", r.out, r.err);
	cr_assert(harness_result_field(r.out, "virtio-reset", "resets", val, sizeof(val)));
	cr_assert_str_eq(val, "8000");
	cr_assert_eq(r.status, 0, "the VMM must exit 0; stderr:\n%s", r.err);
	expect_clean(r.err);
	harness_free(&r);
	unlink(img);
	free(img);
}

/* Polled queues: the reset must not depend on interrupts either. */
Test(reset, storm_polled)
{
	struct vmm_result r;
	char disk[160];
	uint32_t crc;
	char *img;
	const char *argv[] = {"vmm",
			      "--kernel",
			      harness_guest("elf"),
			      "--cmdline",
			      "test=virtio-reset reset_rounds=20 reset_storm=50 virtio_poll=1",
			      "--memory",
			      "128M",
			      "--disk",
			      disk,
			      NULL};

	harness_require_kvm();
	img = harness_temp_file(DISK_SIZE, 2, &crc);
	snprintf(disk, sizeof(disk), "path=%s", img);
	harness_run(&(struct vmm_run){.argv = argv, .timeout_ms = 120000, .run_as_uid = -1}, &r);
	cr_assert(!r.timed_out, "VMM timed out; console:\n%s\nstderr:\n%s", r.out, r.err);
	cr_assert(harness_passed(r.out, "virtio-reset"), "console:\n%s\nstderr:\n%s", r.out, r.err);
	cr_assert_eq(r.status, 0, "stderr:\n%s", r.err);
	expect_clean(r.err);
	harness_free(&r);
	unlink(img);
	free(img);
}

/*
 * Snapshots while the guest storms the device with resets: each pause
 * finishes the reset in progress (or none is pending), so every snapshot
 * is whole; a VMM restored from the last one finishes the storm and the
 * final write and read back.
 */
Test(reset, snapshots_during_a_storm)
{
	char con[96], sock[96], serial[104], disk[160], snap[96], body[160], reply[1024];
	char con_b[96], serial_b[104];
	struct harness_proc a, b;
	uint32_t crc;
	char *img;
	int fd;

	harness_require_kvm();
	img = harness_temp_file(DISK_SIZE, 3, &crc);
	snprintf(disk, sizeof(disk), "path=%s", img);
	snprintf(con, sizeof(con), "%s/a.con", dir);
	snprintf(sock, sizeof(sock), "%s/a.api", dir);
	snprintf(serial, sizeof(serial), "unix:%s", con);
	{
		const char *args[] = {
			"--kernel",   harness_guest("elf"),
			"--cmdline",  "test=virtio-reset reset_ms=6000 reset_storm=100",
			"--memory",   "64M",
			"--disk",     disk,
			"--serial",   serial,
			"--api-sock", sock,
			NULL};

		harness_proc_start(&a, dir, "a", args);
	}
	fd = harness_unix_connect(con, 5000);
	cr_assert_geq(fd, 0);
	harness_wait_running(sock, 5000);
	for (int i = 0; i < 4; i++) {
		snprintf(snap, sizeof(snap), "%s/snap%d", dir, i);
		snprintf(body, sizeof(body), "{\"dir\": \"%s\"}", snap);
		usleep(100 * 1000);
		cr_assert_eq(harness_api(sock, "PUT", "/vm/snapshot", body, reply, sizeof(reply)),
			     200, "snapshot %d: %s\nstderr:\n%s", i, reply,
			     harness_proc_stderr(&a));
	}
	harness_wait_text(fd, "name=virtio-reset result=pass", 120000);
	close(fd);
	cr_assert_eq(harness_proc_wait(&a, 20000), 0, "stderr:\n%s", harness_proc_stderr(&a));
	expect_clean(harness_proc_stderr(&a));

	snprintf(con_b, sizeof(con_b), "%s/b.con", dir);
	snprintf(serial_b, sizeof(serial_b), "unix:%s", con_b);
	{
		const char *args[] = {"--restore", snap, "--serial", serial_b, NULL};

		harness_proc_start(&b, dir, "b", args);
	}
	fd = harness_unix_connect(con_b, 5000);
	cr_assert_geq(fd, 0);
	harness_wait_text(fd, "name=virtio-reset result=pass", 120000);
	close(fd);
	cr_assert_eq(harness_proc_wait(&b, 20000), 0, "stderr:\n%s", harness_proc_stderr(&b));
	expect_clean(harness_proc_stderr(&b));
	unlink(img);
	free(img);
}

/* Waits up to ms for the file at path to hold want. */
static bool file_has(const char *path, const char *want, int ms)
{
	for (int i = 0; i < ms / 10; i++) {
		if (strstr(harness_slurp(path), want))
			return true;
		usleep(10000);
	}
	return false;
}

/*
 * Live migration while the guest storms its disk with resets: the source
 * pauses (finishing a pending reset first), the destination carries on
 * and the guest finishes there, its final write and read back included.
 */
Test(reset, migration_during_a_storm)
{
	char sock[96], in[104], disk[160], body[160], reply[1024], out_a[96], out_b[96];
	char serial_a[104], serial_b[104];
	struct harness_proc a, b;
	uint32_t crc;
	char *img;

	harness_require_kvm();
	img = harness_temp_file(DISK_SIZE, 4, &crc);
	snprintf(disk, sizeof(disk), "path=%s", img);
	snprintf(sock, sizeof(sock), "%s/a.api", dir);
	snprintf(in, sizeof(in), "unix:%s/mig.sock", dir);
	snprintf(out_a, sizeof(out_a), "%s/a.out", dir);
	snprintf(out_b, sizeof(out_b), "%s/b.out", dir);
	snprintf(serial_a, sizeof(serial_a), "file:%s", out_a);
	snprintf(serial_b, sizeof(serial_b), "file:%s", out_b);
	{
		const char *args[] = {"--incoming", in, "--serial", serial_b, NULL};

		harness_proc_start(&b, dir, "b", args);
	}
	{
		const char *args[] = {
			"--kernel",   harness_guest("elf"),
			"--cmdline",  "test=virtio-reset reset_ms=4000 reset_storm=100",
			"--memory",   "64M",
			"--disk",     disk,
			"--serial",   serial_a,
			"--api-sock", sock,
			NULL};

		harness_proc_start(&a, dir, "a", args);
	}
	harness_wait_running(sock, 5000);
	for (int i = 0; i < 1000 && access(in + 5, F_OK); i++)
		usleep(10000);
	usleep(300 * 1000);
	snprintf(body, sizeof(body), "{\"url\": \"%s\"}", in);
	cr_assert_eq(harness_api(sock, "PUT", "/vm/migrate", body, reply, sizeof(reply)), 200,
		     "%s\nstderr:\n%s", reply, harness_proc_stderr(&a));
	cr_assert_eq(harness_proc_wait(&a, 30000), 0, "stderr:\n%s", harness_proc_stderr(&a));
	expect_clean(harness_proc_stderr(&a));
	cr_assert(file_has(out_b, "name=virtio-reset result=pass", 120000), "destination:\n%s",
		  harness_slurp(out_b));
	cr_assert_eq(harness_proc_wait(&b, 30000), 0, "stderr:\n%s", harness_proc_stderr(&b));
	expect_clean(harness_proc_stderr(&b));
	unlink(img);
	free(img);
}
