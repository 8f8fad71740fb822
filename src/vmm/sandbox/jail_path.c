// SPDX-License-Identifier: MIT
/*
 * Paths from the command line, checked inside the jail. The jail's root
 * already stops ".." and absolute symlinks from reaching the host; refusing
 * them outright as well means a file the operator put in DIR is the file
 * the VMM opens, with no link in DIR (planted by a previous tenant of the
 * directory, say) redirecting it to another VM's disk.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "jail.h"

static bool jail_has_dotdot(const char *path)
{
	for (const char *p = path; *p;) {
		size_t len = strcspn(p, "/");

		if (len == 2 && !strncmp(p, "..", 2))
			return true;
		p += len;
		while (*p == '/')
			p++;
	}
	return false;
}

/* 0, or -errno: ELOOP for a symlink on the way, EXDEV for an escape. */
static int jail_resolve(const char *path)
{
	struct open_how how = {
		.flags = O_PATH | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	int root, fd;

	while (*path == '/')
		path++;
	root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return -errno;
	fd = (int)syscall(SYS_openat2, root, *path ? path : ".", &how, sizeof(how));
	if (fd < 0)
		fd = -errno;
	else
		close(fd);
	close(root);
	return fd < 0 ? fd : 0;
}

static int jail_path_error(const char *opt, const char *path, int ret, struct error *err)
{
	if (ret == -ELOOP)
		return error_set(err, ELOOP,
				 "%s: %s: a symbolic link on the path (refused in the jail)", opt,
				 path);
	if (ret == -ENOSYS)
		return error_set(err, ENOSYS,
				 "%s: %s: this kernel has no openat2() (5.6+) to check it", opt,
				 path);
	return error_set(err, -ret, "%s: %s: %s (inside the jail)", opt, path, strerror(-ret));
}

int jail_check_path(const char *opt, const char *path, bool may_be_missing, struct error *err)
{
	char dir[4096];
	const char *slash;
	int ret;

	if (jail_has_dotdot(path))
		return error_set(err, EINVAL, "%s: %s: '..' in a path (refused in the jail)", opt,
				 path);
	ret = jail_resolve(path);
	if (ret != -ENOENT || !may_be_missing)
		return ret ? jail_path_error(opt, path, ret, err) : 0;
	slash = strrchr(path, '/');
	if (!slash)
		return 0;
	if ((size_t)(slash - path) >= sizeof(dir))
		return error_set(err, ENAMETOOLONG, "%s: %s: too long", opt, path);
	memcpy(dir, path, slash - path);
	dir[slash - path] = 0;
	ret = jail_resolve(dir);
	return ret ? jail_path_error(opt, path, ret, err) : 0;
}
