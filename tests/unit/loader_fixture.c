// SPDX-License-Identifier: MIT
#include <criterion/criterion.h>
#include <string.h>

#include "loader_fixture.h"

void loader_fx_init(struct fixture *fx, uint64_t ram, uint8_t *image, size_t len)
{
	memset(fx, 0, sizeof(*fx));
	error_clear(&fx->err);
	cr_assert_eq(gmem_init(&fx->m, ram, &fx->err), 0, "%s", fx->err.msg);
	fx->image = image;
	fx->in.kernel = image;
	fx->in.kernel_len = len;
	fx->in.rsdp_gpa = FIXTURE_RSDP;
}

void fx_fini(struct fixture *fx)
{
	free(fx->image);
	gmem_destroy(&fx->m);
}

int fx_load(struct fixture *fx)
{
	return boot_load(&fx->m, &fx->in, &fx->out, &fx->err);
}

uint8_t *guest(struct fixture *fx, uint64_t gpa, uint64_t len)
{
	uint8_t *p = gmem_ptr(&fx->m, gpa, len);

	cr_assert_not_null(p, "0x%llx+%llu not in guest RAM", (unsigned long long)gpa,
			   (unsigned long long)len);
	return p;
}

void expect_err(int ret, const struct error *err, int code, const char *needle)
{
	cr_assert_eq(ret, -code, "ret %d, want %d (%s)", ret, -code, err->msg);
	cr_assert_eq(err->code, code);
	cr_assert_not_null(strstr(err->msg, needle), "message '%s' lacks '%s'", err->msg, needle);
}
