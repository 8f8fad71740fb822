// SPDX-License-Identifier: MIT
/* Strict base64 (src/common/b64.c): RFC 4648's vectors, and what must be refused. */
#include <criterion/criterion.h>
#include <string.h>

#include "../../src/common/b64.h"

static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
static const char *const coded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};

Test(b64, rfc4648_vectors_both_ways)
{
	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		char enc[16];
		uint8_t dec[16];
		ssize_t n;

		b64_encode((const uint8_t *)plain[i], strlen(plain[i]), enc, true);
		cr_expect_str_eq(enc, coded[i]);
		n = b64_decode(coded[i], strlen(coded[i]), dec, sizeof(dec));
		cr_assert_eq(n, (ssize_t)strlen(plain[i]), "%s", coded[i]);
		cr_expect_eq(memcmp(dec, plain[i], (size_t)n), 0);
	}
}

Test(b64, unpadded_for_fingerprints)
{
	char enc[16];

	b64_encode((const uint8_t *)"fo", 2, enc, false);
	cr_expect_str_eq(enc, "Zm8");
	b64_encode((const uint8_t *)"f", 1, enc, false);
	cr_expect_str_eq(enc, "Zg");
}

Test(b64, refuses_what_is_not_strict_base64)
{
	static const char *const bad[] = {
		"Zg",	    /* no padding */
		"Zg=",	    /* short padding */
		"Z===",	    /* three pads */
		"Zg==Zm8=", /* padding in the middle */
		"Zm9v\n",   /* a line break */
		"Zm 9",	    /* a space */
		"Zm9-",	    /* the URL alphabet */
		"=Zm9",	    /* a pad first */
		"Zm=v",	    /* a pad before a digit */
	};
	uint8_t out[16];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect_eq(b64_decode(bad[i], strlen(bad[i]), out, sizeof(out)), -1, "%s",
			     bad[i]);
	/* no room: refused, never written past */
	cr_expect_eq(b64_decode("Zm9vYmFy", 8, out, 5), -1);
	cr_expect_eq(b64_decode("Zm9vYmE=", 8, out, 5), 5);
}
