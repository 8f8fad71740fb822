// SPDX-License-Identifier: MIT
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <stdio.h>
#include <sys/select.h>
#include <unistd.h>

#include "../../src/common/error.h"
#include "../../src/common/iov.h"
#include "../../src/common/util.h"

Test(util, parse_size_suffixes)
{
	uint64_t v;

	cr_assert_eq(parse_size("512", &v), 0);
	cr_assert_eq(v, 512);
	cr_assert_eq(parse_size("64M", &v), 0);
	cr_assert_eq(v, 64ULL << 20);
	cr_assert_eq(parse_size("1G", &v), 0);
	cr_assert_eq(v, 1ULL << 30);
	cr_assert_eq(parse_size("5GiB", &v), 0);
	cr_assert_eq(v, 5ULL << 30);
	cr_assert_eq(parse_size("2k", &v), 0);
	cr_assert_eq(v, 2048);
	cr_assert_eq(parse_size("1T", &v), 0);
	cr_assert_eq(v, 1ULL << 40);
}

Test(util, parse_size_rejects_garbage)
{
	uint64_t v = 7;

	cr_assert_eq(parse_size("", &v), -EINVAL);
	cr_assert_eq(parse_size("-1G", &v), -EINVAL);
	cr_assert_eq(parse_size("1.5G", &v), -EINVAL);
	cr_assert_eq(parse_size("12X", &v), -EINVAL);
	cr_assert_eq(parse_size("G", &v), -EINVAL);
	cr_assert_eq(parse_size("1GG", &v), -EINVAL);
	cr_assert_eq(parse_size("99999999999999999999", &v), -ERANGE);
	cr_assert_eq(parse_size("17000000000T", &v), -ERANGE);
	cr_assert_eq(v, 7, "a failed parse must not touch the output");
}

Test(util, parse_uint_bounds)
{
	uint64_t v;

	cr_assert_eq(parse_uint("8", 1, 255, &v), 0);
	cr_assert_eq(v, 8);
	cr_assert_eq(parse_uint("0", 1, 255, &v), -ERANGE);
	cr_assert_eq(parse_uint("256", 1, 255, &v), -ERANGE);
	cr_assert_eq(parse_uint("8x", 1, 255, &v), -EINVAL);
	cr_assert_eq(parse_uint("-8", 1, 255, &v), -EINVAL);
	cr_assert_eq(parse_uint("", 1, 255, &v), -EINVAL);
}

Test(util, error_set_and_wrap)
{
	struct error err;

	error_clear(&err);
	cr_assert_eq(error_set(&err, ENOENT, "no file %s", "x"), -ENOENT);
	cr_assert_str_eq(err.msg, "no file x");
	cr_assert_eq(error_wrap(&err, "loading kernel"), -ENOENT);
	cr_assert_str_eq(err.msg, "loading kernel: no file x");
}

Test(util, read_file_limits)
{
	char path[] = "/tmp/bunshin-test-XXXXXX";
	uint8_t *data;
	size_t len;
	int fd = mkstemp(path);

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "hello", 5), 5);
	close(fd);
	cr_assert_eq(read_file(path, 100, &data, &len), 0);
	cr_assert_eq(len, 5);
	cr_assert_eq(memcmp(data, "hello", 5), 0);
	free(data);
	cr_assert_eq(read_file(path, 4, &data, &len), -EFBIG);
	cr_assert_eq(read_file("/nonexistent/x", 4, &data, &len), -ENOENT);
	cr_assert_eq(read_file("/tmp", 4, &data, &len), -EINVAL);
	unlink(path);
}

Test(util, align_and_overflow)
{
	cr_assert_eq(align_up(5, 4096), 4096);
	cr_assert_eq(align_down(8191, 4096), 4096);
	cr_assert(range_overflows(UINT64_MAX, 2));
	cr_assert(!range_overflows(UINT64_MAX, 1));
	cr_assert(!range_overflows(0, 0));
}

/* A header split across segments anywhere, as a guest may lay it out. */
Test(iov, copies_across_segments_from_an_offset)
{
	uint8_t a[3] = {1, 2, 3}, b[1] = {4}, c[4] = {5, 6, 7, 8}, out[5] = {0};
	struct iovec iov[] = {{a, 3}, {NULL, 0}, {b, 1}, {c, 4}};
	const uint8_t want[5] = {3, 4, 5, 6, 7};

	cr_assert_eq(iov_to_buf(iov, 4, 2, out, 5), 5);
	cr_assert_arr_eq(out, want, 5);
	cr_assert_eq(iov_to_buf(iov, 4, 6, out, 5), 2, "only two bytes left after offset 6");
	cr_assert_eq(iov_to_buf(iov, 4, 9, out, 1), 0);
	cr_assert_eq(iov_from_buf(iov, 4, 1, "xyz", 3), 3);
	cr_assert_eq(a[1], 'x');
	cr_assert_eq(a[2], 'y');
	cr_assert_eq(b[0], 'z');
	cr_assert_eq(iov_from_buf(iov, 4, 7, "pq", 2), 1, "the list ends after one byte");
	cr_assert_eq(c[3], 'p');
}

/*
 * A descriptor held long moves past FD_SETSIZE, where a library's select()
 * never meets it; it stays open, close-on-exec, the old number freed.
 */
Test(util, fd_move_high_leaves_the_select_range)
{
	int fd = open("/dev/null", O_RDONLY), high;

	cr_assert_geq(fd, 0);
	cr_assert_eq(fd_limit_raise(), 0);
	high = fd_move_high(fd);
	if (high == fd)
		cr_skip_test("RLIMIT_NOFILE's hard limit is below %d: nothing to move to",
			     FD_SETSIZE + 1);
	cr_expect_geq(high, FD_SETSIZE);
	cr_expect(fcntl(high, F_GETFD) & FD_CLOEXEC);
	cr_expect_eq(fcntl(fd, F_GETFD), -1, "the old number is still open");
	cr_expect_eq(fd_move_high(high), high, "already high: left alone");
	cr_expect_eq(fd_move_high(-1), -1);
	close(high);
}

/* bunshind's raised descriptor limit is its own: a child gets the one it had before. */
Test(util, fd_limit_restore_gives_children_the_limit_from_before)
{
	struct rlimit was, low, now;

	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &was), 0);
	if (was.rlim_max <= 256)
		cr_skip_test("RLIMIT_NOFILE's hard limit is %llu: no room to lower the soft one",
			     (unsigned long long)was.rlim_max);
	low = (struct rlimit){.rlim_cur = 256, .rlim_max = was.rlim_max};
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	cr_assert_eq(fd_limit_raise(), 0);
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &now), 0);
	cr_expect_eq(now.rlim_cur, was.rlim_max);
	fd_limit_restore();
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &now), 0);
	cr_expect_eq(now.rlim_cur, 256);
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &was), 0);
}
