// SPDX-License-Identifier: MIT
/* A VM's cgroup: cgroup v2, or the v1 hierarchies of a hybrid host. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"

static const char *const cgroup_v1_ctrls[CGROUP_V1_DIRS] = {"cpu", "memory", "pids"};

const char *cgroup_version_name(enum cgroup_version v)
{
	return v == CGROUP_V2 ? "v2" : v == CGROUP_V1 ? "v1" : "none";
}

int cgroup_check_name(const char *name, struct error *err)
{
	const char *p = name;

	while (*p == '/')
		p++;
	if (!*p || strlen(name) >= CGROUP_NAME_MAX)
		return error_set(err, EINVAL,
				 "--cgroup: '%s' is not a cgroup path (1 to %d characters)", name,
				 CGROUP_NAME_MAX - 1);
	while (*p) {
		size_t len = strcspn(p, "/");

		if (!len || (len == 1 && p[0] == '.') || (len == 2 && !strncmp(p, "..", 2)))
			return error_set(err, EINVAL,
					 "--cgroup: '%s' has an empty, '.' or '..' component",
					 name);
		/* "cgroup.procs" and the like are the kernel's files, not cgroups */
		if (!strncmp(p, "cgroup.", 7))
			return error_set(err, EINVAL, "--cgroup: '%s' names a control file", name);
		p += len;
		while (*p == '/')
			p++;
	}
	return 0;
}

static int cgroup_write(const struct cgroup_fs *fs, const char *dir, const char *file,
			const char *val, struct error *err)
{
	char path[CGROUP_DIR_MAX + 64];
	int flags = O_WRONLY | O_CLOEXEC | (fs->create_files ? O_CREAT | O_TRUNC : 0);
	size_t len = strlen(val);
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, flags, 0644);
	if (fd < 0)
		return error_set(err, errno, "cgroup: opening %s: %s", path, strerror(errno));
	n = write(fd, val, len);
	if (n != (ssize_t)len) {
		int e = n < 0 ? errno : EIO;

		close(fd);
		return error_set(err, e, "cgroup: writing '%s' to %s: %s", val, path, strerror(e));
	}
	close(fd);
	return 0;
}

static bool cgroup_exists(const char *dir, const char *file)
{
	char path[CGROUP_DIR_MAX + 64];

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	return access(path, F_OK) == 0;
}

/* Whether the whitespace-separated words of a small file include every one of words. */
static bool cgroup_file_has(const char *path, const char *const *words, unsigned int n)
{
	char buf[512], *save, *w;
	unsigned int found = 0;
	FILE *f = fopen(path, "re");
	size_t len;

	if (!f)
		return false;
	len = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[len] = 0;
	for (w = strtok_r(buf, " \n", &save); w; w = strtok_r(NULL, " \n", &save))
		for (unsigned int i = 0; i < n; i++)
			if (!strcmp(w, words[i]))
				found |= 1u << i;
	return found == (1u << n) - 1;
}

/*
 * The launcher's cgroup in the hierarchy holding ctrl ("" for v2's unified
 * one), from /proc/self/cgroup lines "ID:CONTROLLERS:PATH".
 */
static int cgroup_self(const struct cgroup_fs *fs, const char *ctrl, char *out, size_t size)
{
	char line[CGROUP_DIR_MAX];
	FILE *f = fopen(fs->self, "re");
	int ret = -ENOENT;

	if (!f)
		return -errno;
	while (ret && fgets(line, sizeof(line), f)) {
		char *ctrls = strchr(line, ':'), *path = ctrls ? strchr(ctrls + 1, ':') : NULL;
		char *save, *c;

		if (!path)
			continue;
		*path++ = 0;
		path[strcspn(path, "\n")] = 0;
		ctrls++;
		if (!*ctrl && !*ctrls && strlen(path) < size) {
			strcpy(out, path);
			ret = 0;
		}
		for (c = strtok_r(ctrls, ",", &save); *ctrl && c; c = strtok_r(NULL, ",", &save))
			if (!strcmp(c, ctrl) && strlen(path) < size) {
				strcpy(out, path);
				ret = 0;
			}
	}
	fclose(f);
	return ret;
}

/* mkdir -p of name's parents under base; they are shared by VMs and stay. */
static int cgroup_mkdirs(const char *base, const char *name, char *leaf, size_t size,
			 struct error *err)
{
	const char *p = name;

	while (*p == '/')
		p++;
	if ((size_t)snprintf(leaf, size, "%s/%s", base, p) >= size)
		return error_set(err, ENAMETOOLONG, "cgroup: path %s/%s is too long", base, p);
	for (char *s = strchr(leaf + strlen(base) + 1, '/'); s; s = strchr(s + 1, '/')) {
		*s = 0;
		if (mkdir(leaf, 0755) < 0 && errno != EEXIST) {
			int e = errno;

			error_set(err, e, "cgroup: creating %s: %s", leaf, strerror(e));
			*s = '/';
			return -e;
		}
		*s = '/';
	}
	return 0;
}

/* The leaf itself: replaces an empty leftover, refuses one in use. */
static int cgroup_mkleaf(const char *leaf, struct error *err)
{
	if (mkdir(leaf, 0755) == 0)
		return 0;
	if (errno == EEXIST && rmdir(leaf) == 0 && mkdir(leaf, 0755) == 0)
		return 0;
	if (errno == EBUSY || errno == ENOTEMPTY)
		return error_set(err, EBUSY, "--cgroup: %s already exists and is in use", leaf);
	return error_set(err, errno, "cgroup: creating %s: %s", leaf, strerror(errno));
}

/*
 * Where name goes in hierarchy hier: under the root for "/a/b", under the
 * launcher's own cgroup (ctrl's line of /proc/self/cgroup) for "a/b".
 */
static int cgroup_base(const struct cgroup_fs *fs, const char *hier, const char *ctrl,
		       const char *name, char *base, size_t size, struct error *err)
{
	char self[CGROUP_DIR_MAX];
	int ret;

	if (name[0] == '/') {
		snprintf(base, size, "%s", hier);
		return 0;
	}
	ret = cgroup_self(fs, ctrl, self, sizeof(self));
	if (ret)
		return error_set(err, -ret, "cgroup: no %s line in %s", *ctrl ? ctrl : "v2",
				 fs->self);
	snprintf(base, size, "%s%s", hier, strcmp(self, "/") ? self : "");
	return 0;
}

static int cgroup_add_dir(struct cgroup *cg, const struct cgroup_fs *fs, const char *hier,
			  const char *ctrl, const char *name, struct error *err)
{
	char base[CGROUP_DIR_MAX];
	char *leaf = cg->dirs[cg->ndirs];
	int ret = cgroup_base(fs, hier, ctrl, name, base, sizeof(base), err);

	ret = ret ?: cgroup_mkdirs(base, name, leaf, CGROUP_DIR_MAX, err);
	ret = ret ?: cgroup_mkleaf(leaf, err);
	if (!ret)
		cg->ndirs++;
	return ret;
}

/* ---- v2 ---- */

static const char *const cgroup_v2_ctrls[] = {"cpu", "memory", "pids"};

/* The unified hierarchy: at the root (pure v2) or under unified/ (hybrid). */
static bool cgroup_v2_root(const struct cgroup_fs *fs, char *out, size_t size)
{
	snprintf(out, size, "%s", fs->root);
	if (cgroup_exists(out, "cgroup.controllers"))
		return true;
	snprintf(out, size, "%s/unified", fs->root);
	return cgroup_exists(out, "cgroup.controllers");
}

/* v2 usable: the cgroup name goes under offers cpu, memory and pids to its children. */
static bool cgroup_v2_usable(const struct cgroup_fs *fs, const char *hier, const char *name)
{
	char base[CGROUP_DIR_MAX], path[CGROUP_DIR_MAX + 32];
	struct error ignored;

	if (cgroup_base(fs, hier, "", name, base, sizeof(base), &ignored))
		return false;
	snprintf(path, sizeof(path), "%s/cgroup.controllers", base);
	return cgroup_file_has(path, cgroup_v2_ctrls, 3);
}

/* Each cgroup from the launcher's down to the leaf's parent hands the controllers down. */
static int cgroup_v2_delegate(const struct cgroup_fs *fs, const char *leaf, size_t base_len,
			      struct error *err)
{
	char dir[CGROUP_DIR_MAX], path[CGROUP_DIR_MAX + 32];
	char *s;

	snprintf(dir, sizeof(dir), "%s", leaf);
	s = dir + base_len;
	for (;;) {
		char saved = *s;

		*s = 0;
		snprintf(path, sizeof(path), "%s/cgroup.subtree_control", dir);
		if (!cgroup_file_has(path, cgroup_v2_ctrls, 3) &&
		    cgroup_write(fs, dir, "cgroup.subtree_control", "+cpu +memory +pids", err))
			return error_wrap(err, "(cgroup v2 lets only a cgroup without tasks of "
					       "its own hand controllers down)");
		*s = saved;
		s = strchr(s + 1, '/');
		if (!s)
			return 0;
	}
}

static int cgroup_v2_limits(struct cgroup *cg, const struct cgroup_fs *fs, struct error *err)
{
	const struct cgroup_limits *l = &cg->limits;
	const char *d = cg->dirs[0];
	char v[64];
	int ret;

	if (l->cpu_quota_us)
		snprintf(v, sizeof(v), "%llu %llu", (unsigned long long)l->cpu_quota_us,
			 (unsigned long long)l->cpu_period_us);
	else
		snprintf(v, sizeof(v), "max %llu", (unsigned long long)l->cpu_period_us);
	ret = cgroup_write(fs, d, "cpu.max", v, err);
	snprintf(v, sizeof(v), "%llu", (unsigned long long)l->cpu_weight);
	ret = ret ?: cgroup_write(fs, d, "cpu.weight", v, err);
	snprintf(v, sizeof(v), "%llu", (unsigned long long)l->memory_max);
	ret = ret ?: cgroup_write(fs, d, "memory.max", v, err);
	cg->swap_limited = fs->create_files || cgroup_exists(d, "memory.swap.max");
	if (!ret && cg->swap_limited)
		ret = cgroup_write(fs, d, "memory.swap.max", "0", err);
	snprintf(v, sizeof(v), "%llu", (unsigned long long)l->pids_max);
	return ret ?: cgroup_write(fs, d, "pids.max", v, err);
}

static int cgroup_v2_create(struct cgroup *cg, const struct cgroup_fs *fs, const char *hier,
			    const char *name, struct error *err)
{
	char base[CGROUP_DIR_MAX];
	int ret;

	cg->version = CGROUP_V2;
	ret = cgroup_base(fs, hier, "", name, base, sizeof(base), err);
	ret = ret ?: cgroup_add_dir(cg, fs, hier, "", name, err);
	ret = ret ?: cgroup_v2_delegate(fs, cg->dirs[0], strlen(base), err);
	return ret ?: cgroup_v2_limits(cg, fs, err);
}

/* ---- v1 ---- */

/* A v1 hierarchy per controller, and the launcher has a place in each. */
static bool cgroup_v1_usable(const struct cgroup_fs *fs)
{
	char dir[CGROUP_DIR_MAX], self[CGROUP_DIR_MAX];

	for (unsigned int i = 0; i < CGROUP_V1_DIRS; i++) {
		snprintf(dir, sizeof(dir), "%s/%s", fs->root, cgroup_v1_ctrls[i]);
		if (!cgroup_exists(dir, "cgroup.procs") ||
		    cgroup_self(fs, cgroup_v1_ctrls[i], self, sizeof(self)))
			return false;
	}
	return true;
}

static int cgroup_v1_cpu(const struct cgroup *cg, const struct cgroup_fs *fs, struct error *err)
{
	const struct cgroup_limits *l = &cg->limits;
	/* v1 shares: 1024 is the default weight, v2's is 100 */
	unsigned long long shares = l->cpu_weight * 1024 / 100;
	char v[32];
	int ret;

	snprintf(v, sizeof(v), "%llu", (unsigned long long)l->cpu_period_us);
	ret = cgroup_write(fs, cg->dirs[0], "cpu.cfs_period_us", v, err);
	if (l->cpu_quota_us)
		snprintf(v, sizeof(v), "%llu", (unsigned long long)l->cpu_quota_us);
	else
		snprintf(v, sizeof(v), "-1");
	ret = ret ?: cgroup_write(fs, cg->dirs[0], "cpu.cfs_quota_us", v, err);
	snprintf(v, sizeof(v), "%llu", shares < 2 ? 2 : shares);
	return ret ?: cgroup_write(fs, cg->dirs[0], "cpu.shares", v, err);
}

static int cgroup_v1_limits(struct cgroup *cg, const struct cgroup_fs *fs, struct error *err)
{
	char v[32];
	int ret = cgroup_v1_cpu(cg, fs, err);

	snprintf(v, sizeof(v), "%llu", (unsigned long long)cg->limits.memory_max);
	ret = ret ?: cgroup_write(fs, cg->dirs[1], "memory.limit_in_bytes", v, err);
	/* memory + swap equal to memory: no swap; only where swap accounting is on */
	cg->swap_limited = cgroup_exists(cg->dirs[1], "memory.memsw.limit_in_bytes");
	if (!ret && cg->swap_limited)
		ret = cgroup_write(fs, cg->dirs[1], "memory.memsw.limit_in_bytes", v, err);
	snprintf(v, sizeof(v), "%llu", (unsigned long long)cg->limits.pids_max);
	return ret ?: cgroup_write(fs, cg->dirs[2], "pids.max", v, err);
}

static int cgroup_v1_create(struct cgroup *cg, const struct cgroup_fs *fs, const char *name,
			    struct error *err)
{
	char hier[CGROUP_DIR_MAX];

	cg->version = CGROUP_V1;
	for (unsigned int i = 0; i < CGROUP_V1_DIRS; i++) {
		int ret;

		snprintf(hier, sizeof(hier), "%s/%s", fs->root, cgroup_v1_ctrls[i]);
		ret = cgroup_add_dir(cg, fs, hier, cgroup_v1_ctrls[i], name, err);
		if (ret)
			return ret;
	}
	return cgroup_v1_limits(cg, fs, err);
}

int cgroup_create(struct cgroup *cg, const struct cgroup_fs *fs, const char *name,
		  const struct cgroup_limits *l, struct error *err)
{
	char v2[CGROUP_DIR_MAX];
	int ret;

	memset(cg, 0, sizeof(*cg));
	cg->limits = *l;
	cg->fake = fs->create_files;
	ret = cgroup_check_name(name, err);
	if (ret)
		return ret;
	if (cgroup_v2_root(fs, v2, sizeof(v2)) && cgroup_v2_usable(fs, v2, name))
		ret = cgroup_v2_create(cg, fs, v2, name, err);
	else if (cgroup_v1_usable(fs))
		ret = cgroup_v1_create(cg, fs, name, err);
	else
		return error_set(err, ENOTSUP,
				 "--cgroup: no cgroup v2 hierarchy offering cpu, memory and pids, "
				 "nor v1 hierarchies for them, under %s",
				 fs->root);
	if (ret)
		cgroup_destroy(cg);
	return ret;
}

int cgroup_join(const struct cgroup *cg, pid_t pid, struct error *err)
{
	const struct cgroup_fs fs = {0};
	char v[32];

	snprintf(v, sizeof(v), "%d", (int)pid);
	for (unsigned int i = 0; i < cg->ndirs; i++) {
		int ret = cgroup_write(&fs, cg->dirs[i], "cgroup.procs", v, err);

		if (ret)
			return ret;
	}
	return 0;
}

/* A fake tree's leaf holds the files we made; a real one's vanish with rmdir. */
static void cgroup_unlink_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	while (d && (e = readdir(d)))
		if (e->d_type == DT_REG)
			unlinkat(dirfd(d), e->d_name, 0);
	if (d)
		closedir(d);
}

static int cgroup_rmdir(const char *dir, bool fake)
{
	struct timespec ts = {0, 10 * 1000 * 1000};

	if (fake)
		cgroup_unlink_files(dir);

	for (int tries = 0; tries < 100; tries++) {
		if (rmdir(dir) == 0 || errno == ENOENT)
			return 0;
		if (errno != EBUSY)
			return -errno;
		nanosleep(&ts, NULL);
	}
	return -EBUSY;
}

int cgroup_destroy(struct cgroup *cg)
{
	int ret = 0;

	while (cg->ndirs) {
		int r = cgroup_rmdir(cg->dirs[--cg->ndirs], cg->fake);

		ret = ret ?: r;
	}
	return ret;
}
