// SPDX-License-Identifier: MIT
#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "legacy.h"
#include "vmgenid.h"

/* Version 4 (random) and the RFC 4122 variant, so the guest sees a well-formed GUID. */
static void vmgenid_stamp(uint8_t g[VMGENID_SIZE])
{
	g[6] = (uint8_t)((g[6] & 0x0f) | 0x40);
	g[8] = (uint8_t)((g[8] & 0x3f) | 0x80);
}

int vmgenid_write(uint8_t *dst, const uint8_t guid[VMGENID_SIZE], struct error *err)
{
	if (!dst)
		return error_set(err, EFAULT, "vmgenid: its address is outside guest RAM");
	memcpy(dst, guid, VMGENID_SIZE);
	return 0;
}

int vmgenid_update(uint8_t *dst, struct acpi_pm *pm, unsigned int gpe, uint8_t out[VMGENID_SIZE],
		   struct error *err)
{
	uint8_t g[VMGENID_SIZE];
	ssize_t n;

	if (!dst)
		return error_set(err, EFAULT, "vmgenid: its address is outside guest RAM");
	do
		n = getrandom(g, sizeof(g), 0);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(g))
		return error_set(err, n < 0 ? errno : EIO, "vmgenid: getrandom: %s",
				 n < 0 ? strerror(errno) : "short read");
	vmgenid_stamp(g);
	/* Called before the vCPUs run (boot, restore): no reader sees it half-written. */
	memcpy(dst, g, sizeof(g));
	if (out)
		memcpy(out, g, sizeof(g));
	if (pm)
		acpi_pm_gpe_raise(pm, gpe);
	return 0;
}
