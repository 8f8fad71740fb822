/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_TEST_LOADER_FIXTURE_H
#define BUNSHIN_TEST_LOADER_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "../../src/common/error.h"
#include "../../src/vmm/boot/boot.h"
#include "../../src/vmm/kvm/gmem.h"

/* What the bzImage and PVH loader tests share: guest RAM, one image, one load. */

#define FIXTURE_RSDP 0xe0000ULL

struct fixture {
	struct gmem m;
	struct error err;
	struct boot_entry out;
	struct boot_input in;
	uint8_t *image;
};

/* Takes ownership of image (malloc'd). */
void loader_fx_init(struct fixture *fx, uint64_t ram, uint8_t *image, size_t len);
void fx_fini(struct fixture *fx);
int fx_load(struct fixture *fx);

/* Host pointer to guest memory, asserting the range is RAM. */
uint8_t *guest(struct fixture *fx, uint64_t gpa, uint64_t len);

/* A failed load returned -code and a message containing needle. */
void expect_err(int ret, const struct error *err, int code, const char *needle);

#endif
