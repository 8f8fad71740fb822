/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_DEVICE_STATE_H
#define BUNSHIN_VMM_DEVICE_STATE_H

#include <errno.h>
#include <stdint.h>

#include "../../common/error.h"
#include "../snapshot/snapfile.h"

/*
 * Helpers shared by the devices' save and restore functions. A state file
 * is untrusted input: a restore reads its whole section into locals,
 * checks every value, and only then touches the device, so a refused
 * section leaves the device as it was created.
 */

/* The error every refused field gets: it names the section and the field. */
static inline int state_bad(struct error *err, const char *section, const char *field,
			    uint64_t value)
{
	return error_set(err, EINVAL, "state section '%s': invalid %s (0x%llx)", section, field,
			 (unsigned long long)value);
}

/* snap_find() and the version check every loader starts with. */
static inline int state_open(const struct snap_file *f, const char *name, uint32_t version,
			     struct snap_section *s, struct error *err)
{
	int ret = snap_find(f, name, version, s, err);

	if (ret)
		return ret;
	if (s->version == 0)
		return error_set(err, EPROTO, "state section '%s': unknown version 0", name);
	return 0;
}

#endif
