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
	char q[8192] = "", part[4096];

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
	if (cli_opt(c, "cmdline")) {
		/* escaped, each byte may take three: refuse what would not fit whole */
		if (strlen(cli_opt(c, "cmdline")) > (sizeof(part) - 16) / 3)
			return cli_usage_error("--cmdline: longer than %zu bytes",
					       (sizeof(part) - 16) / 3);
		cli_path(part, sizeof(part), "&cmdline=", cli_opt(c, "cmdline"), NULL);
		strncat(q, part, sizeof(q) - strlen(q) - 1);
	}
	if (cli_opt(c, "kernel")) {
		cli_path(part, sizeof(part), "&kernel=", cli_opt(c, "kernel"), NULL);
		strncat(q, part, sizeof(q) - strlen(q) - 1);
	}
	if (q[0])
		q[0] = '?';
	cli_path(path, size, "/v1/images/", c->pos[0], "/data");
	strncat(path, q, size - strlen(path) - 1);
	return 0;
}

/* The same query (owner) for PUT .../initrd: ?public=true or ?tenant=T only. */
static void cli_upload_initrd_path(struct cli *c, char *path, size_t size)
{
	char q[300] = "";

	if (cli_opt(c, "public"))
		snprintf(q, sizeof(q), "?public=true");
	else if (cli_opt(c, "tenant"))
		cli_path(q, sizeof(q), "?tenant=", cli_opt(c, "tenant"), NULL);
	cli_path(path, size, "/v1/images/", c->pos[0], "/initrd");
	strncat(path, q, size - strlen(path) - 1);
}

/* One streamed PUT of file to path; *out the answer. */
static int cli_upload_file(struct cli *c, const char *path, const char *file, const char *sha,
			   json_t **out)
{
	struct cli_upload u = {.progress = cli_opt(c, "progress") || isatty(2)};
	char hdr[128];
	const char *headers[] = {sha ? hdr : NULL, NULL};
	struct httpc_request req = {.method = "PUT",
				    .path = path,
				    .timeout_ms = CLI_UPLOAD_TIMEOUT_MS,
				    .body_src = cli_upload_read,
				    .body_arg = &u,
				    .headers = headers};
	struct stat st;
	int ret;

	snprintf(hdr, sizeof(hdr), "X-Checksum-SHA256: %s", sha ? sha : "");
	u.fd = open(file, O_RDONLY | O_CLOEXEC);
	if (u.fd < 0 || fstat(u.fd, &st) || !S_ISREG(st.st_mode) || !st.st_size) {
		fprintf(stderr, "bunshin: %s: %s\n", file,
			u.fd < 0 ? strerror(errno) : "not a non-empty regular file");
		if (u.fd >= 0)
			close(u.fd);
		return CLI_USAGE;
	}
	u.size = req.body_len = (uint64_t)st.st_size;
	u.t0 = u.last = cli_upload_now();
	ret = cli_call_req(c, &req, out);
	close(u.fd);
	if (u.shown && u.sent < u.size)
		fputc('\n', stderr); /* the progress line stopped short */
	return ret;
}

int cli_image_upload(struct cli *c)
{
	const char *sha = cli_opt(c, "sha256"), *initrd = cli_opt(c, "initrd");
	char path[12288];
	json_t *out = NULL;
	int ret;

	if (sha && (strlen(sha) != 64 || strspn(sha, "0123456789abcdefABCDEF") != 64))
		return cli_usage_error("--sha256: '%s' is not 64 hex digits", sha);
	if (initrd && strcmp(cli_opt(c, "kind") ?: "raw", "kernel"))
		return cli_usage_error("image upload: --initrd needs --kind kernel");
	if (initrd && access(initrd, R_OK)) {
		fprintf(stderr, "bunshin: --initrd %s: %s\n", initrd, strerror(errno));
		return CLI_USAGE;
	}
	ret = cli_upload_path(c, path, sizeof(path));
	ret = ret ?: cli_upload_file(c, path, c->pos[1], sha, &out);
	if (!ret && initrd) { /* the kernel image is there: its initrd follows */
		json_decref(out);
		out = NULL;
		cli_upload_initrd_path(c, path, sizeof(path));
		ret = cli_upload_file(c, path, initrd, NULL, &out);
	}
	if (!ret)
		cli_print(c, out, NULL);
	json_decref(out);
	return ret;
}
