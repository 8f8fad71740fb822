/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_VMGENID_H
#define BUNSHIN_VMM_VMGENID_H

#include <stdint.h>

#include "../../common/error.h"

struct acpi_pm;

/*
 * The VM generation ID (Microsoft's "Virtual Machine Generation ID", as
 * QEMU's vmgenid): a 16-byte GUID in guest memory that changes whenever
 * the VM may have been duplicated, so the guest knows to reseed its random
 * number generators and drop what must stay unique (Linux feeds it to its
 * RNG). The ACPI device that tells the guest where it is lives in the DSDT
 * (boot/acpi.c); this is the device's other half: a fresh random GUID
 * written into guest memory at the first boot and at every restore (and so
 * in every clone), kept across guest reboots, never changed on
 * pause/resume, with a GPE announcing each change.
 */
#define VMGENID_SIZE 16

/*
 * Writes a new random GUID (RFC 4122 version 4, from getrandom) to dst,
 * the VMGENID_SIZE bytes of guest memory the ACPI device points at, into
 * out if not NULL, and raises GPE gpe on pm if pm is not NULL.
 */
int vmgenid_update(uint8_t *dst, struct acpi_pm *pm, unsigned int gpe, uint8_t out[VMGENID_SIZE],
		   struct error *err);
/* Writes the GUID the VM already has (a guest reboot keeps its generation). */
int vmgenid_write(uint8_t *dst, const uint8_t guid[VMGENID_SIZE], struct error *err);

#endif
