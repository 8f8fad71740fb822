// SPDX-License-Identifier: MIT
/*
 * The HTTP server wrapper (src/common/httpd.c) with the project's client:
 * a server process that holds many descriptors (bunshind keeps a pidfd per
 * VMM) must still take connections whose descriptor numbers are past
 * FD_SETSIZE, which select() cannot watch.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "../../src/common/httpc.h"
#include "../../src/common/httpd.h"

static void hello(void *ctx, const struct httpd_request *req, struct httpd_response *resp)
{
	resp->body = json_pack("{s:s}", "hello", "world");
}

static const struct httpd_route routes[] = {
	{"GET", "/hello", hello},
	{NULL, NULL, NULL},
};

/* Descriptors up to past FD_SETSIZE, so that the next ones are numbered above it. */
static void fill_descriptors(int upto)
{
	struct rlimit rl;
	int fd;

	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max < (rlim_t)upto + 64)
		cr_skip_test("RLIMIT_NOFILE's hard limit (%llu) is below %d",
			     (unsigned long long)rl.rlim_max, upto + 64);
	rl.rlim_cur = rl.rlim_max;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	do {
		fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		cr_assert_geq(fd, 0);
	} while (fd < upto);
}

Test(httpd, serves_connections_numbered_past_fd_setsize)
{
	char dir[] = "/tmp/bunshin-httpd-XXXXXX", sock[64], endpoint[80];
	struct httpc_request req = {.method = "GET", .path = "/hello"};
	struct httpc_response resp = {0};
	struct error err = {0};
	struct httpd *h;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(sock, sizeof(sock), "%s/api.sock", dir);
	snprintf(endpoint, sizeof(endpoint), "unix:%s", sock);
	fill_descriptors(1100);
	h = httpd_start(sock, routes, NULL, &err);
	cr_assert_not_null(h, "%s", err.msg);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(httpc_do(endpoint, &req, &resp, &err), 0, "%s", err.msg);
		cr_expect_eq(resp.status, 200, "request %d: HTTP %d", i, resp.status);
		httpc_response_free(&resp);
	}
	httpd_stop(h);
	unlink(sock);
	rmdir(dir);
}
