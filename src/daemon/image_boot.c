// SPDX-License-Identifier: MIT
/*
 * How an image boots. bunshin-vmm has no firmware: it boots a --kernel.
 * A kernel image is that kernel (and may carry an initrd, a file of its
 * own beside it); a raw disk image boots as OpenStack's AMI-style images
 * do, with the kernel image it names (its kernel_id) and itself as the
 * root disk, a copy-on-write overlay per instance over the shared file.
 *
 * Jailed, the VMM sees its directory as /: the kernel, initrd and base
 * disk are hard-linked there (root's files, 0644: read-only to the VMM's
 * user) and named by their jail paths.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "supervisor.h"

static const char *dboot_str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/*
 * The image named kernel as the owner of a new image sees it: the
 * tenant's own before a public one; for a public image (tenant_id 0), the
 * public one before any tenant's (which it must not boot: others could
 * not see it).
 */
static int dboot_lookup(struct store *s, int64_t tenant_id, const char *kernel, json_t **out,
			struct error *err)
{
	json_t *list, *im;
	size_t i;
	int ret;

	if (tenant_id)
		return STORE(s, image_get, tenant_id, kernel, out, err);
	ret = STORE(s, image_list, 0, &list, err);
	if (ret)
		return ret;
	*out = NULL;
	json_array_foreach(list, i, im)
	{
		if (strcmp(dboot_str(im, "name"), kernel))
			continue;
		if (!*out || (!dboot_str(im, "tenant") && dboot_str(*out, "tenant")))
			*out = im;
	}
	json_incref(*out);
	json_decref(list);
	return *out ? 0 : -ENOENT;
}

int dboot_kernel_ref(struct store *s, int64_t tenant_id, const char *kind, const char *kernel,
		     int64_t *kernel_id, struct error *err)
{
	json_t *k;
	int ret;

	*kernel_id = 0;
	if (!kernel)
		return 0;
	if (strcmp(kind, "raw"))
		return error_set(err, EINVAL, "only a raw disk image names a kernel image");
	ret = dboot_lookup(s, tenant_id, kernel, &k, err);
	if (ret == -ENOENT)
		return error_set(err, ENOENT, "no such kernel image %s", kernel);
	if (ret)
		return ret;
	if (strcmp(dboot_str(k, "kind"), "kernel"))
		ret = error_set(err, EINVAL, "%s is a raw image, not a kernel image", kernel);
	else if (!tenant_id && dboot_str(k, "tenant"))
		ret = error_set(err, EINVAL, "a public image needs a public kernel image, not %s's",
				dboot_str(k, "tenant"));
	*kernel_id = json_integer_value(json_object_get(k, "id"));
	json_decref(k);
	return ret;
}

/* Copies in to out, at most max bytes, and syncs out. */
static int dboot_copy(int in, int out, uint64_t max, struct error *err)
{
	uint64_t total = 0;
	ssize_t n;

	while ((n = copy_file_range(in, NULL, out, NULL, 1 << 30, 0)) > 0) {
		total += (uint64_t)n;
		if (total > max)
			return error_set(err, EFBIG, "the initrd is over the limit of %llu bytes",
					 (unsigned long long)max);
	}
	if (n < 0 || fsync(out))
		return error_set(err, errno, "copying the initrd: %s", strerror(errno));
	return 0;
}

int dboot_initrd_finish(const struct daemon *d, const char *tmp, const char *name, char *dst,
			size_t size, char sha[AUTH_SHA256_HEX], int64_t *bytes, struct error *err)
{
	int ret = auth_hash_file(tmp, sha, bytes, err);

	if (ret)
		return ret;
	/* The random suffix keeps two imports of one name from sharing a file. */
	snprintf(dst, size, "%s/images/%s.initrd.%s", d->opts.state_dir, name,
		 tmp + strlen(tmp) - 6);
	if (rename(tmp, dst))
		return error_set(err, errno, "%s: %s", dst, strerror(errno));
	return 0;
}

int dboot_initrd_copy(const struct daemon *d, const char *src, const char *name, char *dst,
		      size_t size, char sha[AUTH_SHA256_HEX], int64_t *bytes, struct error *err)
{
	char tmp[4200];
	struct stat st;
	int in, out, ret;

	if (src[0] != '/')
		return error_set(err, EINVAL, "the initrd's path must be absolute");
	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return error_set(err, EINVAL, "initrd %s: %s", src, strerror(errno));
	if (fstat(in, &st) || !S_ISREG(st.st_mode) || !st.st_size) {
		close(in);
		return error_set(err, EINVAL, "initrd %s: not a non-empty regular file", src);
	}
	snprintf(tmp, sizeof(tmp), "%s/images/.initrd-XXXXXX", d->opts.state_dir);
	out = mkostemp(tmp, O_CLOEXEC);
	if (out < 0) {
		close(in);
		return error_set(err, errno, "%s: %s", tmp, strerror(errno));
	}
	ret = dboot_copy(in, out, d->opts.image_max_size, err);
	close(in);
	close(out);
	ret = ret ?: dboot_initrd_finish(d, tmp, name, dst, size, sha, bytes, err);
	if (ret)
		unlink(tmp);
	return ret;
}

/* ---- an instance's boot ---- */

/* The host files an instance boots from: kernel (required), initrd, cmdline. */
static int dboot_files(const json_t *inst, const char **kernel, const char **initrd,
		       const char **cmdline, struct error *err)
{
	bool raw = strcmp(dboot_str(inst, "image_kind") ?: "", "kernel");

	*kernel = raw ? dboot_str(inst, "kernel_path") : dboot_str(inst, "image_path");
	*cmdline = raw ? dboot_str(inst, "kernel_cmdline") : dboot_str(inst, "image_cmdline");
	*initrd = dboot_str(inst, "initrd_path");
	if (!*kernel)
		return error_set(err, EINVAL,
				 "image %s is a raw disk with no kernel image to boot it",
				 dboot_str(inst, "image") ?: "?");
	return 0;
}

static int dboot_push(char **argv, int *argc, int max, const char *a, const char *b,
		      struct error *err)
{
	if (*argc + 2 > max)
		return error_set(err, E2BIG, "too many VMM arguments");
	argv[*argc] = strdup(a);
	argv[*argc + 1] = strdup(b);
	*argc += 2;
	return argv[*argc - 1] && argv[*argc - 2] ? 0 : error_set(err, ENOMEM, "out of memory");
}

int dboot_vmm_args(const json_t *inst, bool jail, char **argv, int *argc, int max,
		   struct error *err)
{
	const char *kernel, *initrd, *cmdline;
	int ret = dboot_files(inst, &kernel, &initrd, &cmdline, err);

	ret = ret ?: dboot_push(argv, argc, max, "--kernel", jail ? "/kernel" : kernel, err);
	if (!ret && initrd)
		ret = dboot_push(argv, argc, max, "--initrd", jail ? "/initrd" : initrd, err);
	if (!ret && cmdline)
		ret = dboot_push(argv, argc, max, "--cmdline", cmdline, err);
	return ret;
}

int dboot_jail_files(const json_t *inst, const char *dir, struct error *err)
{
	const char *kernel, *initrd, *cmdline;
	int ret = dboot_files(inst, &kernel, &initrd, &cmdline, err);
	char path[4200];

	ret = ret ?: djail_link(kernel, dir, "kernel", err);
	if (!ret && initrd)
		ret = djail_link(initrd, dir, "initrd", err);
	if (!ret && !initrd) { /* one left by an earlier start of another image's */
		snprintf(path, sizeof(path), "%s/initrd", dir);
		unlink(path);
	}
	if (!ret && strcmp(dboot_str(inst, "image_kind") ?: "", "kernel"))
		ret = djail_link(dboot_str(inst, "image_path"), dir, "disk.base", err);
	return ret;
}
