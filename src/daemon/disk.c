// SPDX-License-Identifier: MIT
/*
 * An instance's disk. Kernel images (the test guest) boot without one.
 * Raw images must never be copied whole: each instance gets a
 * copy-on-write overlay over the shared base, which bunshin-vmm takes as
 * --disk path=BASE,overlay=FILE. bunshin-vmm has no firmware, so a raw
 * image cannot be the boot source on its own: it needs a kernel image
 * beside it (kernel + root disk, as Firecracker boots), which instances
 * cannot name yet; until they can, raw-image instances are refused.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "daemon.h"

#define DISK_RAW_BOOTS 0 /* set once an instance names a kernel beside its raw disk */

int disk_check(const char *kind, struct error *err)
{
	if (!strcmp(kind, "kernel"))
		return 0;
	if (!DISK_RAW_BOOTS)
		return error_set(err, ENOTSUP,
				 "a raw disk image needs a kernel image to boot with, and"
				 " instances cannot name one yet: use a kernel image");
	return 0;
}

int disk_vmm_args(const struct daemon *d, const json_t *inst, const char *dir, char **argv,
		  int *argc, int max, struct error *err)
{
	const char *kind = json_string_value(json_object_get(inst, "image_kind"));
	const char *base = json_string_value(json_object_get(inst, "image_path"));
	int ret;

	(void)d;
	if (!kind || !base)
		return error_set(err, EINVAL, "the instance has no image");
	if (!strcmp(kind, "kernel"))
		return 0;
	ret = disk_check(kind, err);
	if (ret)
		return ret;
	if (*argc + 2 > max)
		return error_set(err, E2BIG, "too many VMM arguments");
	argv[(*argc)++] = strdup("--disk");
	if (asprintf(&argv[*argc], "path=%s,overlay=%s/disk.overlay", base, dir) < 0)
		return error_set(err, ENOMEM, "out of memory");
	(*argc)++;
	return 0;
}
