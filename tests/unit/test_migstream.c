// SPDX-License-Identifier: MIT
/* The migration stream's checks: URLs, the header, page ranges, short streams. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../src/vmm/snapshot/migstream.h"

static struct error err;
static struct migstream_url u;

Test(migstream, urls)
{
	cr_assert_eq(migstream_parse_url("unix:/run/x.sock", false, &u, &err), 0);
	cr_assert(!u.tcp);
	cr_assert_str_eq(u.path, "/run/x.sock");
	cr_assert_eq(migstream_parse_url("tcp:10.0.0.1:4444", false, &u, &err), 0);
	cr_assert(u.tcp);
	cr_assert_str_eq(u.host, "10.0.0.1");
	cr_assert_str_eq(u.port, "4444");
	cr_assert_eq(migstream_parse_url("tcp:[::1]:80", false, &u, &err), 0);
	cr_assert_str_eq(u.host, "::1");
	cr_assert_eq(migstream_parse_url("tcp:localhost:80", false, &u, &err), 0);
	cr_assert_str_eq(u.host, "127.0.0.1");
	cr_assert_eq(migstream_parse_url("tcp:4444", true, &u, &err), 0,
		     "a listener needs no host");
	cr_assert_str_eq(u.host, "");
}

Test(migstream, bad_urls_say_why)
{
	static const char *const bad[] = {"",	      "unix:",	   "http://x",	   "tcp:4444",
					  "tcp:h:",   "tcp:h:0",   "tcp:h:65536",  "tcp::80",
					  "tcp:h:8x", "tcp:[]:80", "udp:1.2.3.4:5"};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		error_clear(&err);
		cr_assert_lt(migstream_parse_url(bad[i], false, &u, &err), 0, "%s", bad[i]);
		cr_assert(strstr(err.msg, "url:"), "%s: %s", bad[i], err.msg);
	}
	cr_assert_lt(migstream_parse_url(
			     "unix:/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
			     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
			     false, &u, &err),
		     0, "longer than sun_path");
}

Test(migstream, header_round_trip_and_corruptions)
{
	uint8_t h[MIGSTREAM_HDR_LEN];
	uint64_t size;
	uint32_t len;

	migstream_put_header(h, 256ULL << 20, 1234);
	cr_assert_eq(migstream_check_header(h, &size, &len, &err), 0, "%s", err.msg);
	cr_assert_eq(size, 256ULL << 20);
	cr_assert_eq(len, 1234);
	h[0] ^= 1;
	cr_assert_eq(migstream_check_header(h, &size, &len, &err), -EBADMSG);
	h[0] ^= 1;
	h[8] = 2; /* version */
	cr_assert_eq(migstream_check_header(h, &size, &len, &err), -EPROTO);
	cr_assert(strstr(err.msg, "version 2"), "%s", err.msg);
	migstream_put_header(h, 1, MIGSTREAM_CFG_MAX + 1);
	cr_assert_eq(migstream_check_header(h, &size, &len, &err), -EBADMSG);
	migstream_put_header(h, 1, 0);
	cr_assert_eq(migstream_check_header(h, &size, &len, &err), -EBADMSG);
}

Test(migstream, page_ranges)
{
	cr_assert_eq(migstream_check_pages(0, 1, 16, &err), 0);
	cr_assert_eq(migstream_check_pages(15, 1, 16, &err), 0);
	cr_assert_eq(migstream_check_pages(0, 16, 16, &err), 0);
	cr_assert_eq(migstream_check_pages(15, 2, 16, &err), -ERANGE);
	cr_assert_eq(migstream_check_pages(16, 1, 16, &err), -ERANGE);
	cr_assert_eq(migstream_check_pages(UINT64_MAX, 2, 16, &err), -ERANGE, "no wrap");
	cr_assert_eq(migstream_check_pages(0, 0, 16, &err), -ERANGE);
	cr_assert_eq(migstream_check_pages(0, MIGSTREAM_RUN_MAX + 1, 1 << 20, &err), -ERANGE);
}

Test(migstream, a_short_stream_is_an_error_not_a_hang)
{
	int sv[2];
	uint8_t buf[8];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	cr_assert_eq(write(sv[0], "abc", 3), 3);
	close(sv[0]);
	cr_assert_eq(migstream_read(sv[1], buf, sizeof(buf)), -EPIPE);
	close(sv[1]);
}

/* A known flag passes and reads back; an unknown one is refused, naming it. */
Test(migstream, header_flags)
{
	uint8_t h[MIGSTREAM_HDR_LEN];
	uint64_t size;
	uint32_t len;

	migstream_put_header(h, 1 << 20, 10);
	cr_assert_eq(migstream_flags(h), 0);
	migstream_set_flags(h, MIGSTREAM_F_DISK_LAYOUT);
	cr_assert_eq(migstream_check_header(h, &size, &len, &err), 0, "%s", err.msg);
	cr_assert_eq(migstream_flags(h), MIGSTREAM_F_DISK_LAYOUT);
	migstream_set_flags(h, MIGSTREAM_F_DISK_LAYOUT | 0x100);
	cr_assert_eq(migstream_check_header(h, &size, &len, &err), -EPROTO);
	cr_assert(strstr(err.msg, "flags 0x101 unknown"), "%s", err.msg);
}
