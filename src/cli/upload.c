// SPDX-License-Identifier: MIT
/*
 * bunshin image upload NAME FILE: the file streamed to PUT
 * /v1/images/NAME/data as it is read (an image may be far larger than
 * memory), with a progress line on stderr for people.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../common/httpc.h"
#include "cli.h"

#define CLI_UPLOAD_TIMEOUT_MS (30 * 60 * 1000) /* a qcow2 conversion comes before the answer */
#define CLI_PROGRESS_EVERY_S  0.25

struct cli_upload {
	int fd;
	uint64_t size, sent;
	bool progress, shown;
	double t0, last;
};

static double cli_upload_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void cli_upload_show(struct cli_upload *u, bool last)
{
	double now = cli_upload_now(), secs = now - u->t0;

	if (!last && now - u->last < CLI_PROGRESS_EVERY_S)
		return;
	u->last = now;
	u->shown = true;
	fprintf(stderr, "\ruploading: %3d%%  %llu/%llu MB  %.1f MB/s%s",
		(int)(u->size ? u->sent * 100 / u->size : 100),
		(unsigned long long)(u->sent / 1000000), (unsigned long long)(u->size / 1000000),
		secs > 0 ? (double)u->sent / 1e6 / secs : 0.0, last ? "\n" : "");
}

static ssize_t cli_upload_read(void *arg, char *buf, size_t size)
{
	struct cli_upload *u = arg;
	ssize_t n;

	do
		n = read(u->fd, buf, size);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	u->sent += (uint64_t)n;
	if (u->progress)
		cli_upload_show(u, u->sent == u->size);
	return n;
}

/* "/v1/images/NAME/data?..." from the options. */
static int cli_upload_path(struct cli *c, char *path, size_t size)
{
	const char *kind = cli_opt(c, "kind"), *tenant = cli_opt(c, "tenant");
	char q[400] = "", part[300];

	if (cli_opt(c, "public") && tenant)
		return cli_usage_error("image upload: --public and --tenant exclude each other");
	if (cli_opt(c, "public"))
		snprintf(q, sizeof(q), "&public=true");
	if (kind) {
		cli_path(part, sizeof(part), "&kind=", kind, NULL);
		strncat(q, part, sizeof(q) - strlen(q) - 1);
	}
	if (tenant) {
		cli_path(part, sizeof(part), "&tenant=", tenant, NULL);
		strncat(q, part, sizeof(q) - strlen(q) - 1);
	}
	if (q[0])
		q[0] = '?';
	cli_path(path, size, "/v1/images/", c->pos[0], "/data");
	strncat(path, q, size - strlen(path) - 1);
	return 0;
}

int cli_image_upload(struct cli *c)
{
	struct cli_upload u = {.progress = cli_opt(c, "progress") || isatty(2)};
	const char *sha = cli_opt(c, "sha256");
	char path[1024], hdr[128];
	const char *headers[] = {sha ? hdr : NULL, NULL};
	struct httpc_request req = {.method = "PUT",
				    .path = path,
				    .timeout_ms = CLI_UPLOAD_TIMEOUT_MS,
				    .body_src = cli_upload_read,
				    .body_arg = &u,
				    .headers = headers};
	struct stat st;
	json_t *out = NULL;
	int ret;

	if (sha && (strlen(sha) != 64 || strspn(sha, "0123456789abcdefABCDEF") != 64))
		return cli_usage_error("--sha256: '%s' is not 64 hex digits", sha);
	snprintf(hdr, sizeof(hdr), "X-Checksum-SHA256: %s", sha ? sha : "");
	ret = cli_upload_path(c, path, sizeof(path));
	if (ret)
		return ret;
	u.fd = open(c->pos[1], O_RDONLY | O_CLOEXEC);
	if (u.fd < 0 || fstat(u.fd, &st) || !S_ISREG(st.st_mode) || !st.st_size) {
		fprintf(stderr, "bunshin: %s: %s\n", c->pos[1],
			u.fd < 0 ? strerror(errno) : "not a non-empty regular file");
		if (u.fd >= 0)
			close(u.fd);
		return CLI_USAGE;
	}
	u.size = req.body_len = (uint64_t)st.st_size;
	u.t0 = u.last = cli_upload_now();
	ret = cli_call_req(c, &req, &out);
	close(u.fd);
	if (u.shown && u.sent < u.size)
		fputc('\n', stderr); /* the progress line stopped short */
	if (!ret)
		cli_print(c, out, NULL);
	json_decref(out);
	return ret;
}
