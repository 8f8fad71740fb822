// SPDX-License-Identifier: MIT
/*
 * mkcpio: write an uncompressed "newc" cpio archive (the format the Linux
 * kernel unpacks as an initramfs) from a list of entries, so the end-to-end
 * test needs no cpio tool and no root privileges for device nodes.
 *
 * usage: mkcpio SPEC|- >archive.cpio
 *
 * One entry per line; blank lines and lines starting with '#' are ignored:
 *   dir   NAME MODE UID GID
 *   file  NAME SOURCE MODE UID GID
 *   slink NAME TARGET MODE UID GID
 *   nod   NAME MODE UID GID c|b MAJOR MINOR
 * MODE is octal permission bits; NAME is the path inside the archive (a
 * leading '/' is dropped). Every entry gets mtime 0, so the archive depends
 * only on its inputs.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define NEWC_MAGIC   "070701"
#define NEWC_HDR_LEN 110
#define MAX_FIELDS   9

struct entry {
	const char *name;
	uint32_t mode; /* file type | permissions */
	uint32_t uid;
	uint32_t gid;
	uint32_t rdev_major;
	uint32_t rdev_minor;
	const char *data;   /* symlink target, or NULL */
	const char *source; /* regular file contents, or NULL */
};

static const char *spec_name;
static unsigned long spec_line;
static uint64_t out_pos;
static uint32_t next_ino = 1;

static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("mkcpio: ", stderr);
	if (spec_line)
		fprintf(stderr, "%s:%lu: ", spec_name, spec_line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void out(const void *buf, size_t len)
{
	if (len && fwrite(buf, 1, len, stdout) != len)
		die("write error: %s", strerror(errno));
	out_pos += len;
}

static void out_pad4(void)
{
	static const char zero[4];

	out(zero, (4 - out_pos % 4) % 4);
}

static uint32_t parse_num(const char *s, int base, const char *what)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, base);
	if (errno || end == s || *end || v > UINT32_MAX)
		die("bad %s '%s'", what, s);
	return (uint32_t)v;
}

static uint32_t parse_perm(const char *s)
{
	uint32_t mode = parse_num(s, 8, "mode");

	if (mode & ~07777u)
		die("mode '%s' has bits outside 07777", s);
	return mode;
}

static void write_header(const struct entry *e, uint32_t ino, uint32_t nlink, uint32_t size)
{
	char hdr[NEWC_HDR_LEN + 1];
	size_t namesize = strlen(e->name) + 1;
	int n;

	if (namesize > UINT32_MAX)
		die("name too long");
	n = snprintf(hdr, sizeof(hdr), "%s%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		     NEWC_MAGIC, ino, e->mode, e->uid, e->gid, nlink, 0u /* mtime */, size, 0u, 0u,
		     e->rdev_major, e->rdev_minor, (uint32_t)namesize, 0u /* check */);
	if (n != NEWC_HDR_LEN)
		die("internal error: header is %d bytes", n);
	out(hdr, NEWC_HDR_LEN);
	out(e->name, namesize);
	out_pad4();
}

static void write_file_data(const char *source, uint64_t size)
{
	char buf[65536];
	uint64_t left = size;
	FILE *f = fopen(source, "rb");

	if (!f)
		die("cannot open '%s': %s", source, strerror(errno));
	while (left) {
		size_t want = left < sizeof(buf) ? (size_t)left : sizeof(buf);
		size_t got = fread(buf, 1, want, f);

		if (got == 0)
			die("'%s' shrank while being archived", source);
		out(buf, got);
		left -= got;
	}
	fclose(f);
	out_pad4();
}

static void emit(const struct entry *e)
{
	uint32_t ino = next_ino++;

	if (e->source) {
		struct stat st;

		if (stat(e->source, &st) != 0)
			die("cannot stat '%s': %s", e->source, strerror(errno));
		if (!S_ISREG(st.st_mode))
			die("'%s' is not a regular file", e->source);
		if ((uint64_t)st.st_size > UINT32_MAX)
			die("'%s' is too large for newc (4 GiB limit)", e->source);
		write_header(e, ino, 1, (uint32_t)st.st_size);
		write_file_data(e->source, (uint64_t)st.st_size);
	} else if (e->data) {
		size_t len = strlen(e->data);

		write_header(e, ino, 1, (uint32_t)len);
		out(e->data, len);
		out_pad4();
	} else {
		write_header(e, ino, S_ISDIR(e->mode) ? 2 : 1, 0);
	}
}

/* Split a line into whitespace-separated fields; returns the field count. */
static int split(char *line, char **field, int max)
{
	int n = 0;
	char *save = NULL;

	for (char *tok = strtok_r(line, " \t\r\n", &save); tok;
	     tok = strtok_r(NULL, " \t\r\n", &save)) {
		if (n == max)
			die("too many fields");
		field[n++] = tok;
	}
	return n;
}

static const char *archive_name(const char *name)
{
	while (*name == '/')
		name++;
	if (!*name)
		die("empty name");
	return name;
}

static void parse_line(char *line)
{
	char *f[MAX_FIELDS];
	struct entry e = {0};
	int n = split(line, f, MAX_FIELDS);

	if (n == 0 || f[0][0] == '#')
		return;

	if (!strcmp(f[0], "dir") && n == 5) {
		e.mode = S_IFDIR | parse_perm(f[2]);
		e.uid = parse_num(f[3], 10, "uid");
		e.gid = parse_num(f[4], 10, "gid");
	} else if (!strcmp(f[0], "file") && n == 6) {
		e.source = f[2];
		e.mode = S_IFREG | parse_perm(f[3]);
		e.uid = parse_num(f[4], 10, "uid");
		e.gid = parse_num(f[5], 10, "gid");
	} else if (!strcmp(f[0], "slink") && n == 6) {
		e.data = f[2];
		e.mode = S_IFLNK | parse_perm(f[3]);
		e.uid = parse_num(f[4], 10, "uid");
		e.gid = parse_num(f[5], 10, "gid");
	} else if (!strcmp(f[0], "nod") && n == 8) {
		if (!strcmp(f[5], "c"))
			e.mode = S_IFCHR;
		else if (!strcmp(f[5], "b"))
			e.mode = S_IFBLK;
		else
			die("device type must be 'c' or 'b', not '%s'", f[5]);
		e.mode |= parse_perm(f[2]);
		e.uid = parse_num(f[3], 10, "uid");
		e.gid = parse_num(f[4], 10, "gid");
		e.rdev_major = parse_num(f[6], 10, "major");
		e.rdev_minor = parse_num(f[7], 10, "minor");
	} else {
		die("cannot parse '%s' entry with %d fields", f[0], n);
	}
	e.name = archive_name(f[1]);
	emit(&e);
}

int main(int argc, char **argv)
{
	static const struct entry trailer = {.name = "TRAILER!!!"};
	char *line = NULL;
	size_t cap = 0;
	FILE *spec;

	if (argc != 2) {
		fprintf(stderr, "usage: mkcpio SPEC|- >archive.cpio\n");
		return 2;
	}
	spec_name = argv[1];
	spec = strcmp(spec_name, "-") ? fopen(spec_name, "r") : stdin;
	if (!spec)
		die("cannot open '%s': %s", spec_name, strerror(errno));

	while (getline(&line, &cap, spec) >= 0) {
		spec_line++;
		parse_line(line);
	}
	if (ferror(spec))
		die("read error: %s", strerror(errno));
	spec_line = 0;
	free(line);
	if (spec != stdin)
		fclose(spec);

	/* The trailer has inode 0 and nlink 1, as the kernel and cpio(1) write it. */
	write_header(&trailer, 0, 1, 0);
	if (fflush(stdout) != 0)
		die("write error: %s", strerror(errno));
	return 0;
}
