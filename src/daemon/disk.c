// SPDX-License-Identifier: MIT
/*
 * An instance's disk. Kernel images (the test guest) boot without one.
 * Raw images must never be copied whole: each instance gets a
 * copy-on-write overlay over the shared base, which bunshin-vmm takes as
 * --disk path=BASE,overlay=FILE. bunshin-vmm has no firmware, so a raw
 * image cannot be the boot source on its own: it needs a kernel image
 * beside it (kernel + root disk, as Firecracker boots): the kernel image
 * it names at import (image_boot.c).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "daemon.h"

int disk_check(const json_t *image, struct error *err)
{
	const char *kind = json_string_value(json_object_get(image, "kind"));

	if (!kind || !strcmp(kind, "kernel"))
		return 0;
	if (strcmp(json_string_value(json_object_get(image, "status")) ?: "active", "active"))
		return error_set(err, EBUSY, "image %s is still being saved: it cannot boot yet",
				 json_string_value(json_object_get(image, "name")));
	if (!json_string_value(json_object_get(image, "kernel")))
		return error_set(err, EINVAL,
				 "raw disk image %s names no kernel image to boot with (import "
				 "it with kernel=NAME)",
				 json_string_value(json_object_get(image, "name")));
	return 0;
}

/*
 * A cold boot: --disk path=BASE,overlay=TOP; a clone's restore: the
 * snapshot has the disk, its top is --overlay 0=TOP (disk_layers.c).
 */
int disk_vmm_args(const struct daemon *d, const json_t *inst, const char *dir, char **argv,
		  int *argc, int max, struct error *err)
{
	const char *kind = json_string_value(json_object_get(inst, "image_kind"));
	const char *base = json_string_value(json_object_get(inst, "image_path"));
	const char *from = json_string_value(json_object_get(inst, "restore"));
	/* a clone's restore gets a top of its own; a suspend's state has its disks' */
	bool restore = from && !strcmp(from, CLONE_SNAP_DIR);
	int ret;

	if (!kind || !base)
		return error_set(err, EINVAL, "the instance has no image");
	if (!strcmp(kind, "kernel") || (from && !restore))
		return 0;
	if (*argc + 2 > max)
		return error_set(err, E2BIG, "too many VMM arguments");
	argv[(*argc)++] = strdup(restore ? "--overlay" : "--disk");
	/* Jailed, the base is the jail's hard link to it (image_boot.c). */
	if (restore)
		ret = asprintf(&argv[*argc], "0=%s%s", dir, dlayer_top(inst));
	else
		ret = asprintf(&argv[*argc], "path=%s,overlay=%s%s",
			       d->opts.no_jail ? base : "/disk.base", dir, dlayer_top(inst));
	if (ret < 0)
		argv[*argc] = NULL;
	(*argc)++;
	if (!argv[*argc - 2] || !argv[*argc - 1])
		return error_set(err, ENOMEM, "out of memory");
	return 0;
}
