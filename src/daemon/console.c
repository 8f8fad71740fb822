// SPDX-License-Identifier: MIT
/*
 * GET /v1/instances/ID/console?follow=1&offset=N: the console log from
 * byte N on, for `bunshin server console --follow`, which asks again
 * from the "next" offset it is given, like tail -f. bunshind's API has no
 * streamed answers, so this is a long poll: with nothing new it waits up
 * to CONSOLE_WAIT_MS for more (short, because each wait holds one of the
 * API's few threads). Output only: the console is the VMM's serial log
 * file, so there is no input path yet.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"

#define CONSOLE_CHUNK	(64 * 1024)
#define CONSOLE_WAIT_MS 1000
#define CONSOLE_POLL_US 100000

/* A query parameter as a byte offset: false after answering 400. */
static bool console_offset(struct api_ctx *c, int64_t *off)
{
	const char *v = httpd_query(c->req, "offset");
	char *end;
	long long n;

	*off = 0;
	if (!v)
		return true;
	errno = 0;
	n = strtoll(v, &end, 10);
	if (!*v || *end || n < 0 || errno) {
		api_err(c, 400, "invalid_request", "offset", "offset must be a byte count");
		return false;
	}
	*off = n;
	return true;
}

/* The log's size, waiting (a little) while it has nothing past off; -1 when absent. */
static off_t console_size_after(int fd, int64_t off)
{
	struct stat st;

	for (int waited = 0;; waited += CONSOLE_POLL_US / 1000) {
		if (fstat(fd, &st))
			return -1;
		if (st.st_size != off || waited >= CONSOLE_WAIT_MS)
			return st.st_size;
		usleep(CONSOLE_POLL_US);
	}
}

/* JSON holds UTF-8 only: a byte that is not part of valid UTF-8 becomes '?'. */
static json_t *console_text(char *buf, size_t n)
{
	json_t *s = json_stringn(buf, n);

	if (s)
		return s;
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)buf[i] >= 0x80 || !buf[i])
			buf[i] = '?';
	}
	return json_stringn(buf, n);
}

static void console_chunk(struct api_ctx *c, int fd, int64_t off)
{
	off_t size = console_size_after(fd, off);
	bool reset = size >= 0 && off > size; /* a new log (a new VMM): from its start */
	char *buf = malloc(CONSOLE_CHUNK);
	ssize_t n = 0;

	if (reset)
		off = 0;
	if (!buf)
		return api_err(c, 500, "internal", NULL, "out of memory");
	if (size > off)
		n = pread(fd, buf, CONSOLE_CHUNK, off);
	if (n < 0)
		n = 0;
	api_ok(c, 200,
	       json_pack("{s:I, s:I, s:I, s:b, s:o}", "offset", (json_int_t)off, "next",
			 (json_int_t)(off + n), "size", (json_int_t)(size < 0 ? 0 : size), "reset",
			 reset, "text", console_text(buf, (size_t)n)));
	free(buf);
}

void console_follow(struct api_ctx *c, int64_t id)
{
	char dir[4096], path[4200];
	int64_t off;
	int fd;

	if (!console_offset(c, &off))
		return;
	supervisor_instance_dir(c->d, id, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/console.log", dir);
	/* the VMM's file: no symbolic link or FIFO it made may be read in its place */
	fd = djail_open_read(path);
	if (fd < 0) {
		/* not booted yet: nothing to show, and nothing to wait on */
		api_ok(c, 200,
		       json_pack("{s:I, s:I, s:I, s:b, s:s}", "offset", (json_int_t)0, "next",
				 (json_int_t)0, "size", (json_int_t)0, "reset", off > 0, "text",
				 ""));
		return;
	}
	console_chunk(c, fd, off);
	close(fd);
}
