// SPDX-License-Identifier: MIT
/*
 * Every bad input named by the VMM's contract gets exactly one clear line on
 * stderr and a non-zero exit status, before any guest code runs.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "../../src/common/util.h"

static void expect_error(const char *const *argv, int status, const char *message, int uid)
{
	struct vmm_result r;

	harness_run(&(struct vmm_run){.argv = argv, .timeout_ms = 20000, .run_as_uid = uid}, &r);
	cr_assert(!r.timed_out);
	cr_assert_eq(r.status, status, "status %d, want %d; stderr:\n%s", r.status, status, r.err);
	cr_assert(strstr(r.err, message), "stderr lacks '%s':\n%s", message, r.err);
	cr_assert_eq(harness_count(r.err, "\n"), 1, "want exactly one line, got:\n%s", r.err);
	cr_assert_str_eq(r.out, "", "nothing may reach the console");
	harness_free(&r);
}

/* Copies the bzImage test guest, lets the caller damage it, returns the copy's path. */
static char *damaged_copy(size_t keep, size_t patch_at, const void *patch, size_t patch_len)
{
	char *path = strdup("/tmp/bunshin-bad-kernel-XXXXXX");
	uint8_t *data;
	size_t len;
	int fd = mkstemp(path);

	cr_assert_geq(fd, 0);
	cr_assert_eq(read_file(harness_guest("bzImage"), 64 << 20, &data, &len), 0);
	if (keep && keep < len)
		len = keep;
	if (patch)
		memcpy(data + patch_at, patch, patch_len);
	cr_assert_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
	free(data);
	return path;
}

Test(errors, missing_kernel)
{
	const char *argv[] = {"vmm", "--kernel", "/nonexistent/vmlinuz", NULL};

	expect_error(argv, 1, "kernel /nonexistent/vmlinuz: No such file or directory", -1);
}

Test(errors, kernel_is_a_directory)
{
	const char *argv[] = {"vmm", "--kernel", "/tmp", NULL};

	expect_error(argv, 1, "not a regular file", -1);
}

Test(errors, kernel_is_not_a_kernel)
{
	char *path = harness_temp_file(100000, 42, NULL);
	const char *argv[] = {"vmm", "--kernel", path, NULL};

	harness_require_kvm();
	expect_error(argv, 1, "not a bzImage or PVH ELF", -1);
	unlink(path);
	free(path);
}

Test(errors, empty_kernel)
{
	char *path = harness_temp_file(0, 1, NULL);
	const char *argv[] = {"vmm", "--kernel", path, NULL};

	harness_require_kvm();
	expect_error(argv, 1, "kernel", -1);
	unlink(path);
	free(path);
}

Test(errors, truncated_bzimage)
{
	char *path = damaged_copy(1536, 0, NULL, 0);
	const char *argv[] = {"vmm", "--kernel", path, NULL};

	harness_require_kvm();
	expect_error(argv, 1, "truncated", -1);
	unlink(path);
	free(path);
}

Test(errors, old_boot_protocol)
{
	const uint8_t v206[2] = {0x06, 0x02};
	char *path = damaged_copy(0, 0x206, v206, 2);
	const char *argv[] = {"vmm", "--kernel", path, NULL};

	harness_require_kvm();
	expect_error(argv, 1, "boot protocol 2.06", -1);
	unlink(path);
	free(path);
}

Test(errors, missing_initrd)
{
	const char *argv[] = {"vmm",	  "--kernel",	    harness_guest("elf"),
			      "--initrd", "/nonexistent/i", NULL};

	expect_error(argv, 1, "initrd /nonexistent/i: No such file or directory", -1);
}

Test(errors, no_kvm_device)
{
	const char *argv[] = {"vmm",	      "--kernel",	  harness_guest("elf"),
			      "--kvm-device", "/nonexistent/kvm", NULL};

	expect_error(argv, 1, "/nonexistent/kvm does not exist", -1);
}

Test(errors, device_is_not_kvm)
{
	const char *argv[] = {"vmm",	      "--kernel",  harness_guest("elf"),
			      "--kvm-device", "/dev/null", NULL};

	expect_error(argv, 1, "/dev/null is not a KVM device", -1);
}

static void copy_file(const char *from, const char *to, mode_t mode)
{
	uint8_t *data;
	size_t len;
	int fd;

	cr_assert_eq(read_file(from, 256 << 20, &data, &len), 0, "reading %s", from);
	fd = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, data, len), (ssize_t)len);
	fchmod(fd, mode);
	close(fd);
	free(data);
}

/*
 * Runs the VMM as 'nobody'. The build tree may sit in a directory nobody
 * cannot enter (a 0700 temp dir), so the VMM and the guest are copied into
 * a world-readable directory first.
 */
Test(errors, no_permission_on_kvm)
{
	char dir[] = "/tmp/bunshin-perm-XXXXXX";
	char vmm[64], kernel[64];
	struct vmm_result r;
	struct stat st;

	if (geteuid() != 0)
		cr_skip_test("skipped: needs root to run the VMM as an unprivileged user");
	if (stat("/dev/kvm", &st) < 0 || (st.st_mode & 0006))
		cr_skip_test("skipped: /dev/kvm missing or world-accessible on this host");
	cr_assert_not_null(mkdtemp(dir));
	chmod(dir, 0755);
	snprintf(vmm, sizeof(vmm), "%s/bunshin-vmm", dir);
	snprintf(kernel, sizeof(kernel), "%s/guest.elf", dir);
	copy_file(harness_vmm(), vmm, 0755);
	copy_file(harness_guest("elf"), kernel, 0644);

	const char *argv[] = {"vmm", "--kernel", kernel, NULL};
	harness_run(
		&(struct vmm_run){
			.argv = argv, .timeout_ms = 20000, .run_as_uid = 65534, .vmm_path = vmm},
		&r);
	unlink(vmm);
	unlink(kernel);
	rmdir(dir);
	cr_assert_eq(r.status, 1, "status %d; stderr:\n%s", r.status, r.err);
	cr_assert(strstr(r.err, "no permission to open /dev/kvm"), "stderr:\n%s", r.err);
	cr_assert_eq(harness_count(r.err, "\n"), 1, "want exactly one line, got:\n%s", r.err);
	harness_free(&r);
}

Test(errors, memory_larger_than_host)
{
	const char *argv[] = {"vmm", "--kernel", harness_guest("elf"), "--memory", "512T", NULL};

	expect_error(argv, 2, "--memory: 512T is more than this host's", -1);
}

Test(errors, unknown_option)
{
	const char *argv[] = {"vmm", "--kernel", harness_guest("elf"), "--frobnicate", NULL};

	expect_error(argv, 2, "unknown option '--frobnicate'", -1);
}

Test(errors, malformed_cpus)
{
	const char *argv[] = {"vmm", "--kernel", harness_guest("elf"), "--cpus", "lots", NULL};

	expect_error(argv, 2, "--cpus: 'lots' is not a number", -1);
}

Test(errors, bad_serial_backend)
{
	const char *argv[] = {"vmm", "--kernel", harness_guest("elf"), "--serial", "pty", NULL};

	expect_error(argv, 2, "--serial: unknown backend 'pty'", -1);
}
