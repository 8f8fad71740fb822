// SPDX-License-Identifier: MIT
/*
 * An instance's sandbox, as bunshind sets it up: bunshin-vmm's own jail
 * (src/vmm/sandbox/jail.c) rooted in the instance directory, run as the
 * instance's own unprivileged uid and gid, in a cgroup of its own.
 *
 *   STATE/instances/ID/          the jail's /, owned by UID_BASE+ID:GID_BASE+ID, 0700
 *     kernel                     a hard link to the image (a copy only if linking fails)
 *     console.log                the serial console, owned by the VMM's user
 *     api.sock                   made by the VMM; bunshind reaches the same file from outside
 *     vmm.log, vmm.pid           bunshind's (the log is opened before the fork)
 *     dev/, proc/                mount points the VMM's launcher makes
 *
 * The directory is the VMM's, so bunshind opens or connects to nothing in
 * it by a path that the VMM could have turned into a symbolic link or a
 * FIFO (djail_open_read(), djail_sock_ep(), the O_NOFOLLOW opens of
 * vmmctl.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../common/log.h"
#include "supervisor.h"

#define DJAIL_ID_MAX	  0xfffffffeULL /* -1 is no id to setresuid() */
#define DJAIL_CGROUP_ROOT "/sys/fs/cgroup"

static const char *const djail_v1_ctrls[] = {"cpu", "memory", "pids"};

int djail_ids(const struct daemon *d, int64_t id, uid_t *uid, gid_t *gid, struct error *err)
{
	if (id <= 0 || d->opts.uid_base + (uint64_t)id > DJAIL_ID_MAX ||
	    d->opts.gid_base + (uint64_t)id > DJAIL_ID_MAX)
		return error_set(err, ERANGE,
				 "instance %lld: no uid/gid left above --uid-base/--gid-base",
				 (long long)id);
	*uid = (uid_t)(d->opts.uid_base + (uint64_t)id);
	*gid = (gid_t)(d->opts.gid_base + (uint64_t)id);
	return 0;
}

int djail_open_read(const char *path)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	return fd;
}

int djail_sock_ep(const char *sock, char *ep, size_t size)
{
	struct stat st;
	int fd = open(sock, O_PATH | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) || !S_ISSOCK(st.st_mode)) {
		close(fd);
		return -ENOTSOCK;
	}
	/* connect() through the magic link reaches this very inode, whatever is renamed since */
	snprintf(ep, size, "unix:/proc/self/fd/%d", fd);
	return fd;
}

/* ---- the jail's files ---- */

static int djail_copy(const char *src, const char *dst, struct error *err)
{
	int in = open(src, O_RDONLY | O_CLOEXEC);
	int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	struct stat st;
	off_t off = 0;
	int ret = 0;

	if (in < 0 || out < 0 || fstat(in, &st))
		ret = error_set(err, errno, "copying %s to %s: %s", src, dst, strerror(errno));
	while (!ret && off < st.st_size)
		if (sendfile(out, in, &off, (size_t)(st.st_size - off)) <= 0)
			ret = error_set(err, errno ?: EIO, "copying %s: %s", src,
					strerror(errno ?: EIO));
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	if (ret)
		unlink(dst);
	return ret;
}

/*
 * DIR/NAME (kernel, initrd, disk.base): made anew at each start, so
 * nothing the VMM left there is booted. The image (0600 in images/)
 * becomes 0644: the VMM reads it as its own user; images/ stays 0700, so
 * on the host only root reaches it.
 */
int djail_link(const char *image, const char *dir, const char *name, struct error *err)
{
	char dst[4200];

	if (!image)
		return error_set(err, EINVAL, "the instance has no image");
	snprintf(dst, sizeof(dst), "%s/%s", dir, name);
	if (unlink(dst) && errno != ENOENT)
		return error_set(err, errno, "%s: %s", dst, strerror(errno));
	if (chmod(image, 0644))
		return error_set(err, errno, "%s: %s", image, strerror(errno));
	if (!link(image, dst))
		return 0;
	log_warn("cannot hard-link %s to %s (%s): copying it", image, dst, strerror(errno));
	return djail_copy(image, dst, err);
}

/* DIR/console.log, the VMM's to write: kept across starts, replaced if it is not a file. */
static int djail_console(const char *dir, uid_t uid, gid_t gid, struct error *err)
{
	char path[4200];
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "%s/console.log", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
	if (fd >= 0 && (fstat(fd, &st) || !S_ISREG(st.st_mode))) {
		close(fd);
		fd = -1;
	}
	if (fd < 0) {
		unlink(path);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	}
	if (fd < 0 || fchown(fd, uid, gid)) {
		int e = errno;

		if (fd >= 0)
			close(fd);
		return error_set(err, e, "%s: %s", path, strerror(e));
	}
	close(fd);
	return 0;
}

int djail_setup(const struct daemon *d, const json_t *inst, const char *dir, struct error *err)
{
	uid_t uid = 0;
	gid_t gid = 0;
	int ret = djail_ids(d, sup_int(inst, "id"), &uid, &gid, err);

	if (ret)
		return ret;
	/*
	 * A killed launcher's VMM dies a moment after it (its parent-death
	 * signal) and leaves the cgroup behind: the next VMM's launcher
	 * refuses a busy one, so wait for it to empty and remove it here.
	 */
	djail_cgroup_remove(d, sup_int(inst, "id"));
	/* Its socket is made in the jail's /: the directory is the VMM user's. */
	if (chown(dir, uid, gid) || chmod(dir, 0700))
		return error_set(err, errno, "%s: %s", dir, strerror(errno));
	ret = dboot_jail_files(inst, dir, err);
	return ret ?: djail_console(dir, uid, gid, err);
}

/* ---- the command line ---- */

static int djail_push(char **argv, int *argc, int max, char *word, struct error *err)
{
	if (!word)
		return error_set(err, ENOMEM, "out of memory");
	if (*argc >= max) {
		free(word);
		return error_set(err, E2BIG, "too many VMM arguments");
	}
	argv[(*argc)++] = word;
	return 0;
}

static char *djail_fmt(const char *fmt, long long v)
{
	char *s;

	return asprintf(&s, fmt, v) < 0 ? NULL : s;
}

int djail_argv(const struct daemon *d, const json_t *inst, const char *dir, char **argv, int *argc,
	       int max, struct error *err)
{
	int64_t id = sup_int(inst, "id");
	uid_t uid = 0;
	gid_t gid = 0;
	int ret = djail_ids(d, id, &uid, &gid, err);

	ret = ret ?: djail_push(argv, argc, max, strdup("--jail"), err);
	ret = ret ?: djail_push(argv, argc, max, strdup(dir), err);
	ret = ret ?: djail_push(argv, argc, max, strdup("--uid"), err);
	ret = ret ?: djail_push(argv, argc, max, djail_fmt("%lld", uid), err);
	ret = ret ?: djail_push(argv, argc, max, strdup("--gid"), err);
	ret = ret ?: djail_push(argv, argc, max, djail_fmt("%lld", gid), err);
	if (ret || !d->cgroups)
		return ret;
	/* The VMM's defaults are the flavor's: quota vCPUs x period, memory RAM + overhead. */
	ret = djail_push(argv, argc, max, strdup("--cgroup"), err);
	ret = ret ?: djail_push(argv, argc, max, djail_cgroup_name(d, id), err);
	/* A restore's size is in its snapshot, unknown at launch: the flavor's, said here. */
	if (ret || !sup_str(inst, "restore"))
		return ret;
	ret = djail_push(argv, argc, max, strdup("--cgroup-limits"), err);
	return ret ?: djail_push(argv, argc, max, clone_cgroup_limits(inst), err);
}

/* ---- the cgroup ---- */

char *djail_cgroup_name(const struct daemon *d, int64_t id)
{
	char *s;

	return asprintf(&s, "%s/instance-%lld", d->opts.cgroup_parent, (long long)id) < 0 ? NULL
											  : s;
}

/* Our own cgroup in the hierarchy holding ctrl ("": v2's), from /proc/self/cgroup. */
static int djail_self(const char *ctrl, char *out, size_t size)
{
	char line[1024];
	FILE *f = fopen("/proc/self/cgroup", "re");
	int ret = -ENOENT;

	while (f && ret && fgets(line, sizeof(line), f)) {
		char *ctrls = strchr(line, ':'), *path = ctrls ? strchr(ctrls + 1, ':') : NULL;
		char *save, *c;

		if (!path)
			continue;
		*path++ = 0;
		path[strcspn(path, "\n")] = 0;
		if (!*ctrl && !ctrls[1])
			ret = snprintf(out, size, "%s", path) < (int)size ? 0 : -ENAMETOOLONG;
		for (c = strtok_r(ctrls + 1, ",", &save); *ctrl && c;
		     c = strtok_r(NULL, ",", &save))
			if (!strcmp(c, ctrl))
				ret = snprintf(out, size, "%s", path) < (int)size ? 0
										  : -ENAMETOOLONG;
	}
	if (f)
		fclose(f);
	return ret;
}

/*
 * Where the VMM's launcher (bunshind's child, so in bunshind's cgroups)
 * puts --cgroup PARENT/instance-ID in hierarchy hier: as cgroup.c does.
 */
static int djail_cgroup_base(const struct daemon *d, const char *hier, const char *ctrl, char *out,
			     size_t size)
{
	char self[1024];

	if (d->opts.cgroup_parent[0] == '/') {
		snprintf(out, size, "%s", hier);
		return 0;
	}
	if (djail_self(ctrl, self, sizeof(self)))
		return -ENOENT;
	snprintf(out, size, "%s%s", hier, strcmp(self, "/") ? self : "");
	return 0;
}

static bool djail_file_has(const char *path, const char *const *words, size_t n)
{
	char buf[512], *save, *w;
	unsigned int found = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t len = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

	if (fd >= 0)
		close(fd);
	if (len <= 0)
		return false;
	buf[len] = 0;
	for (w = strtok_r(buf, " \n", &save); w; w = strtok_r(NULL, " \n", &save))
		for (size_t i = 0; i < n; i++)
			found |= (unsigned int)!strcmp(w, words[i]) << i;
	return found == (1u << n) - 1;
}

/* The unified hierarchy: at the root (pure v2) or under unified/ (hybrid). */
static bool djail_v2_root(char *out, size_t size)
{
	char path[300];

	snprintf(out, size, DJAIL_CGROUP_ROOT);
	snprintf(path, sizeof(path), "%s/cgroup.controllers", out);
	if (!access(path, F_OK))
		return true;
	snprintf(out, size, DJAIL_CGROUP_ROOT "/unified");
	snprintf(path, sizeof(path), "%s/cgroup.controllers", out);
	return !access(path, F_OK);
}

const char *djail_cgroup_probe(const struct daemon *d)
{
	char hier[300], base[1400], path[1500];
	size_t v1 = 0;

	if (djail_v2_root(hier, sizeof(hier)) &&
	    !djail_cgroup_base(d, hier, "", base, sizeof(base))) {
		snprintf(path, sizeof(path), "%s/cgroup.controllers", base);
		if (djail_file_has(path, djail_v1_ctrls, 3))
			return "v2";
	}
	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), DJAIL_CGROUP_ROOT "/%s/cgroup.procs",
			 djail_v1_ctrls[i]);
		v1 += !access(path, F_OK) && !djail_self(djail_v1_ctrls[i], base, sizeof(base));
	}
	return v1 == 3 ? "v1" : NULL;
}

/* rmdir that waits a moment for tasks just killed to leave the cgroup. */
static void djail_rmdir(const char *path)
{
	struct timespec ts = {0, 20 * 1000 * 1000};

	for (int i = 0; i < 50; i++) {
		if (!rmdir(path) || errno == ENOENT || errno == ENOTDIR)
			return;
		if (errno != EBUSY)
			break;
		nanosleep(&ts, NULL);
	}
	log_warn("cgroup %s: %s", path, strerror(errno));
}

static void djail_cgroup_remove_in(const struct daemon *d, const char *hier, const char *ctrl,
				   int64_t id)
{
	char base[1400], path[1800];

	if (djail_cgroup_base(d, hier, ctrl, base, sizeof(base)))
		return;
	snprintf(path, sizeof(path), "%s/%s/instance-%lld", base, d->opts.cgroup_parent,
		 (long long)id);
	/* The parent stays: another instance's launcher may be creating its cgroup there. */
	djail_rmdir(path);
}

/*
 * At exit: the parent of the instances' cgroups, when no instance is left
 * in it (VMs that outlive bunshind keep it, and rmdir says EBUSY).
 */
void djail_cgroup_parent_remove(const struct daemon *d)
{
	char hier[300], base[1400], path[1800];

	if (!d->cgroups)
		return;
	for (size_t i = 0; i < 4; i++) {
		const char *ctrl = i < 3 ? djail_v1_ctrls[i] : "";

		if (i < 3)
			snprintf(hier, sizeof(hier), DJAIL_CGROUP_ROOT "/%s", ctrl);
		else if (!djail_v2_root(hier, sizeof(hier)))
			continue;
		if (djail_cgroup_base(d, hier, ctrl, base, sizeof(base)))
			continue;
		snprintf(path, sizeof(path), "%s/%s", base, d->opts.cgroup_parent);
		if (rmdir(path) && errno != ENOENT && errno != EBUSY && errno != ENOTDIR)
			log_warn("cgroup %s: %s", path, strerror(errno));
	}
}

/*
 * The launcher removes the cgroup when its VMM ends; one that was killed
 * (SIGKILL is the last step of a stop) leaves it behind.
 */
void djail_cgroup_remove(const struct daemon *d, int64_t id)
{
	char hier[300];

	if (!d->cgroups)
		return;
	if (djail_v2_root(hier, sizeof(hier)))
		djail_cgroup_remove_in(d, hier, "", id);
	for (size_t i = 0; i < 3; i++) {
		snprintf(hier, sizeof(hier), DJAIL_CGROUP_ROOT "/%s", djail_v1_ctrls[i]);
		djail_cgroup_remove_in(d, hier, djail_v1_ctrls[i], id);
	}
}

/* ---- finding jailed VMMs ---- */

bool djail_other_pidns(pid_t pid)
{
	char path[64], mine[64] = "", its[64] = "";

	snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)pid);
	if (readlink("/proc/self/ns/pid", mine, sizeof(mine) - 1) <= 0 ||
	    readlink(path, its, sizeof(its) - 1) <= 0)
		return false;
	return strcmp(mine, its) != 0;
}

/* ---- what an instance's cgroup counted ---- */

/* A control file that holds one number. */
static int djail_read_u64(const char *path, uint64_t *out)
{
	char buf[64];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t len = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

	if (fd >= 0)
		close(fd);
	if (len <= 0)
		return -ENOENT;
	buf[len] = 0;
	*out = strtoull(buf, NULL, 10);
	return 0;
}

/* DIR of hierarchy hier (controller ctrl, "" for v2) that holds instance id's cgroup. */
static int djail_cgroup_dir(const struct daemon *d, const char *hier, const char *ctrl, int64_t id,
			    char *out, size_t size)
{
	char base[1400];

	if (djail_cgroup_base(d, hier, ctrl, base, sizeof(base)))
		return -ENOENT;
	snprintf(out, size, "%s/%s/instance-%lld", base, d->opts.cgroup_parent, (long long)id);
	return 0;
}

int djail_cgroup_memory(const struct daemon *d, int64_t id, uint64_t *bytes)
{
	char hier[300], dir[1800], path[1900];

	if (!d->cgroups)
		return -ENOENT;
	if (djail_v2_root(hier, sizeof(hier)) &&
	    !djail_cgroup_dir(d, hier, "", id, dir, sizeof(dir))) {
		snprintf(path, sizeof(path), "%s/memory.current", dir);
		if (!djail_read_u64(path, bytes))
			return 0;
	}
	if (djail_cgroup_dir(d, DJAIL_CGROUP_ROOT "/memory", "memory", id, dir, sizeof(dir)))
		return -ENOENT;
	snprintf(path, sizeof(path), "%s/memory.usage_in_bytes", dir);
	return djail_read_u64(path, bytes);
}
