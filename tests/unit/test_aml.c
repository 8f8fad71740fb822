// SPDX-License-Identifier: MIT
/*
 * AML builder: every encoding checked byte by byte against the ACPI
 * specification's grammar.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "../../src/common/error.h"
#include "../../src/vmm/boot/aml.h"

static void expect_bytes(const uint8_t *got, size_t got_len, const uint8_t *exp, size_t exp_len)
{
	size_t i;

	cr_assert_eq(got_len, exp_len, "length %zu, expected %zu", got_len, exp_len);
	for (i = 0; i < exp_len; i++)
		cr_assert_eq(got[i], exp[i], "byte %zu is 0x%02x, expected 0x%02x", i, got[i],
			     exp[i]);
}

/* Finishes the builder (which must have succeeded) and compares its bytes. */
#define EXPECT_AML(a, ...)                                                                         \
	do {                                                                                       \
		static const uint8_t exp_[] = {__VA_ARGS__};                                       \
		struct error err_;                                                                 \
		error_clear(&err_);                                                                \
		cr_assert_eq(aml_finish((a), &err_), 0, "aml_finish: %s", err_.msg);               \
		expect_bytes((a)->data, (a)->len, exp_, sizeof(exp_));                             \
	} while (0)

#define EXPECT_ENC(fn, val, ...)                                                                   \
	do {                                                                                       \
		static const uint8_t exp_[] = {__VA_ARGS__};                                       \
		uint8_t out_[4] = {0};                                                             \
		unsigned int n_ = fn((val), out_);                                                 \
		expect_bytes(out_, n_, exp_, sizeof(exp_));                                        \
	} while (0)

/* Builder must have failed with code; the message is returned for checks. */
static void expect_fail(struct aml *a, int code, struct error *err)
{
	error_clear(err);
	cr_assert_eq(aml_finish(a, err), -code, "expected -%d, message: %s", code, err->msg);
	cr_assert_eq(err->code, code);
	cr_assert(strncmp(err->msg, "AML: ", 5) == 0, "message \"%s\"", err->msg);
}

Test(aml, pkglen_encode_boundaries)
{
	EXPECT_ENC(aml_pkglen_encode, 0, 0x00);
	EXPECT_ENC(aml_pkglen_encode, 63, 0x3f);
	EXPECT_ENC(aml_pkglen_encode, 64, 0x40, 0x04);
	EXPECT_ENC(aml_pkglen_encode, 65, 0x41, 0x04);
	EXPECT_ENC(aml_pkglen_encode, 4095, 0x4f, 0xff);
	EXPECT_ENC(aml_pkglen_encode, 4096, 0x80, 0x00, 0x01);
	EXPECT_ENC(aml_pkglen_encode, 0xfffff, 0x8f, 0xff, 0xff);
	EXPECT_ENC(aml_pkglen_encode, 0x100000, 0xc0, 0x00, 0x00, 0x01);
	EXPECT_ENC(aml_pkglen_encode, 0x0fffffff, 0xcf, 0xff, 0xff, 0xff);
}

Test(aml, pkglen_encode_too_large)
{
	uint8_t out[4];

	cr_assert_eq(aml_pkglen_encode(0x10000000, out), 0);
	cr_assert_eq(aml_pkglen_encode(UINT32_MAX, out), 0);
}

Test(aml, pkglen_counts_its_own_bytes)
{
	uint8_t out[4];

	/* 62 body bytes + 1 = 63 fits one byte; 63 + 1 = 64 does not. */
	EXPECT_ENC(aml_pkglen_for_body, 0, 0x01);
	EXPECT_ENC(aml_pkglen_for_body, 62, 0x3f);
	EXPECT_ENC(aml_pkglen_for_body, 63, 0x41, 0x04);
	/* 4093 + 2 = 4095 fits two bytes; 4094 + 2 = 4096 needs three. */
	EXPECT_ENC(aml_pkglen_for_body, 4093, 0x4f, 0xff);
	EXPECT_ENC(aml_pkglen_for_body, 4094, 0x81, 0x00, 0x01);
	EXPECT_ENC(aml_pkglen_for_body, 0xfffff - 3, 0x8f, 0xff, 0xff);
	EXPECT_ENC(aml_pkglen_for_body, 0xfffff - 2, 0xc1, 0x00, 0x00, 0x01);
	cr_assert_eq(aml_pkglen_for_body(0x0fffffff, out), 0);
}

/* Scope(\) { <n raw bytes> }: the body is RootChar, NullName and the bytes. */
static void scope_of(struct aml *a, size_t n)
{
	static uint8_t filler[8192];

	aml_init(a);
	aml_scope_begin(a, "\\");
	aml_bytes(a, filler, n);
	aml_scope_end(a);
}

Test(aml, scope_pkglen_inserted_at_boundaries)
{
	static const struct {
		size_t raw;
		unsigned int pkglen_bytes;
		uint8_t lead, next;
	} cases[] = {
		{60, 1, 0x3f, 0},      /* body 62, total 63 */
		{61, 2, 0x41, 0x04},   /* body 63, total 65 */
		{4091, 2, 0x4f, 0xff}, /* body 4093, total 4095 */
		{4092, 3, 0x81, 0x00}, /* body 4094, total 4097 */
	};
	struct error err;
	struct aml a;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		scope_of(&a, cases[i].raw);
		cr_assert_eq(aml_finish(&a, &err), 0);
		cr_assert_eq(a.len, 1 + cases[i].pkglen_bytes + 2 + cases[i].raw);
		cr_assert_eq(a.data[0], 0x10);
		cr_assert_eq(a.data[1], cases[i].lead, "case %zu lead 0x%02x", i, a.data[1]);
		if (cases[i].pkglen_bytes > 1)
			cr_assert_eq(a.data[2], cases[i].next);
		/* The name follows the PkgLength: '\' NullName. */
		cr_assert_eq(a.data[1 + cases[i].pkglen_bytes], '\\');
		cr_assert_eq(a.data[2 + cases[i].pkglen_bytes], 0x00);
		aml_free(&a);
	}
}

Test(aml, integers_pick_the_shortest_form)
{
	struct aml a;

	aml_init(&a);
	aml_int(&a, 0);
	aml_int(&a, 1);
	aml_int(&a, UINT64_MAX);
	aml_int(&a, 2);
	aml_int(&a, 0xff);
	aml_int(&a, 0x100);
	aml_int(&a, 0xffff);
	aml_int(&a, 0x10000);
	aml_int(&a, 0xffffffff);
	aml_int(&a, 0x100000000ULL);
	aml_int(&a, 0xfffffffffffffffeULL);
	EXPECT_AML(&a, 0x00, 0x01, 0xff,				 /* Zero One Ones */
		   0x0a, 0x02, 0x0a, 0xff,				 /* BytePrefix */
		   0x0b, 0x00, 0x01, 0x0b, 0xff, 0xff,			 /* WordPrefix */
		   0x0c, 0x00, 0x00, 0x01, 0x00,			 /* DWordPrefix */
		   0x0c, 0xff, 0xff, 0xff, 0xff,			 /* */
		   0x0e, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, /* QWordPrefix */
		   0x0e, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
	aml_free(&a);
}

Test(aml, strings)
{
	struct aml a;

	aml_init(&a);
	aml_string(&a, "ACPI0007");
	aml_string(&a, "");
	EXPECT_AML(&a, 0x0d, 'A', 'C', 'P', 'I', '0', '0', '0', '7', 0x00, 0x0d, 0x00);
	aml_free(&a);
}

Test(aml, string_rejects_non_ascii)
{
	struct error err;
	struct aml a;

	aml_init(&a);
	aml_string(&a, "caf\xc3\xa9");
	expect_fail(&a, EINVAL, &err);
	aml_free(&a);
}

Test(aml, name_paths)
{
	struct aml a;

	aml_init(&a);
	aml_path(&a, "_S5");
	aml_path(&a, "RTC");
	aml_path(&a, "\\_SB");
	aml_path(&a, "\\_SB.PCI0");
	aml_path(&a, "\\_SB.PCI0.ISA");
	aml_path(&a, "^^FOO");
	aml_path(&a, "\\");
	aml_path(&a, "^");
	EXPECT_AML(&a, '_', 'S', '5', '_',			       /* padded NameSeg */
		   'R', 'T', 'C', '_',				       /* */
		   '\\', '_', 'S', 'B', '_',			       /* RootChar NameSeg */
		   '\\', 0x2e, '_', 'S', 'B', '_', 'P', 'C', 'I', '0', /* DualNamePrefix */
		   '\\', 0x2f, 0x03, '_', 'S', 'B', '_', 'P', 'C', 'I', '0', 'I', 'S', 'A',
		   '_',				 /* MultiNamePrefix */
		   '^', '^', 'F', 'O', 'O', '_', /* ParentPrefix */
		   '\\', 0x00,			 /* root: NullName */
		   '^', 0x00);
	aml_free(&a);
}

Test(aml, bad_names_are_refused)
{
	static const char *const bad[] = {"pci0", "1ABC", "ABCDE", "A..B", "A.",     ".A",
					  "",	  "\\",	  "^",	   "A-B",  "_SB.\\X"};
	struct error err;
	struct aml a;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		aml_init(&a);
		/* Name() needs at least one NameSeg: "\\" and "" are refused too. */
		aml_name_int(&a, bad[i], 1);
		expect_fail(&a, EINVAL, &err);
		cr_assert(strstr(err.msg, "bad ACPI name"), "%s: %s", bad[i], err.msg);
		aml_free(&a);
	}
}

Test(aml, name_object)
{
	struct aml a;

	aml_init(&a);
	aml_name_int(&a, "_UID", 1);
	aml_name_string(&a, "_HID", "ACPI0007");
	aml_name_int(&a, "\\_SB.X", 0x1234);
	EXPECT_AML(&a, 0x08, '_', 'U', 'I', 'D', 0x01, /* Name(_UID, One) */
		   0x08, '_', 'H', 'I', 'D', 0x0d, 'A', 'C', 'P', 'I', '0', '0', '0', '7', 0x00,
		   0x08, '\\', 0x2e, '_', 'S', 'B', '_', 'X', '_', '_', '_', 0x0b, 0x34, 0x12);
	aml_free(&a);
}

Test(aml, eisaid_values)
{
	uint32_t v;

	cr_assert_eq(aml_eisaid_value("PNP0501", &v), 0);
	cr_assert_eq(v, 0x0105d041);
	cr_assert_eq(aml_eisaid_value("PNP0303", &v), 0);
	cr_assert_eq(v, 0x0303d041);
	cr_assert_eq(aml_eisaid_value("PNP0B00", &v), 0);
	cr_assert_eq(v, 0x000bd041);
	cr_assert_eq(aml_eisaid_value("PNP0A08", &v), 0);
	cr_assert_eq(v, 0x080ad041);
	/* "ABC" = 00001 00010 00011: 0x0443, then product 0x1234, byte-swapped. */
	cr_assert_eq(aml_eisaid_value("ABC1234", &v), 0);
	cr_assert_eq(v, 0x34124304);
	cr_assert_eq(aml_eisaid_value("ZZZFFFF", &v), 0);
	cr_assert_eq(v, 0xffff5a6b);
}

Test(aml, eisaid_rejects_malformed)
{
	static const char *const bad[] = {"pnp0501", "PNP050",	"PNP05011", "PNP05G1",
					  "PNP050a", "P1P0501", "",	    "PNP 501"};
	uint32_t v = 7;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(aml_eisaid_value(bad[i], &v), -EINVAL, "%s", bad[i]);
	cr_assert_eq(aml_eisaid_value(NULL, &v), -EINVAL);
	cr_assert_eq(v, 7);
}

Test(aml, eisaid_is_always_a_dword)
{
	struct error err;
	struct aml a;

	aml_init(&a);
	aml_name_eisaid(&a, "_HID", "PNP0501");
	aml_eisaid(&a, "PNP0B00");
	EXPECT_AML(&a, 0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x05, 0x01, /* */
		   0x0c, 0x41, 0xd0, 0x0b, 0x00);
	aml_free(&a);

	aml_init(&a);
	aml_eisaid(&a, "PNP05011");
	expect_fail(&a, EINVAL, &err);
	aml_free(&a);
}

Test(aml, package_counts_its_elements)
{
	struct aml a;

	/* Name(_S5, Package() {5, 5, 0, 0}) */
	aml_init(&a);
	aml_name(&a, "_S5");
	aml_package_begin(&a);
	aml_int(&a, 5);
	aml_int(&a, 5);
	aml_int(&a, 0);
	aml_int(&a, 0);
	aml_package_end(&a);
	EXPECT_AML(&a, 0x08, '_', 'S', '5', '_', 0x12, 0x08, 0x04, 0x0a, 0x05, 0x0a, 0x05, 0x00,
		   0x00);
	aml_free(&a);
}

Test(aml, nested_and_empty_packages)
{
	struct aml a;

	/* Package() { One, Package() { 2 }, "x", \_SB, Package() {} } */
	aml_init(&a);
	aml_package_begin(&a);
	aml_int(&a, 1);
	aml_package_begin(&a);
	aml_int(&a, 2);
	aml_package_end(&a);
	aml_string(&a, "x");
	aml_path(&a, "\\_SB");
	aml_package_begin(&a);
	aml_package_end(&a);
	aml_package_end(&a);
	EXPECT_AML(&a, 0x12, 0x13, 0x05,	 /* PkgLength 19, 5 elements */
		   0x01,			 /* One */
		   0x12, 0x04, 0x01, 0x0a, 0x02, /* Package() { 2 } */
		   0x0d, 'x', 0x00,		 /* "x" */
		   '\\', '_', 'S', 'B', '_',	 /* \_SB */
		   0x12, 0x02, 0x00);		 /* Package() {} */
	aml_free(&a);
}

Test(aml, package_over_255_elements_refused)
{
	struct error err;
	struct aml a;
	int i;

	aml_init(&a);
	aml_package_begin(&a);
	for (i = 0; i < 256; i++)
		aml_int(&a, 0);
	aml_package_end(&a);
	expect_fail(&a, E2BIG, &err);
	aml_free(&a);
}

Test(aml, device_and_scope)
{
	struct aml a;

	/* Scope(\_SB) { Device(COM1) { Name(_UID, One) } } */
	aml_init(&a);
	aml_scope_begin(&a, "\\_SB");
	aml_device_begin(&a, "COM1");
	aml_name_int(&a, "_UID", 1);
	aml_device_end(&a);
	aml_scope_end(&a);
	EXPECT_AML(&a, 0x10, 0x13, '\\', '_', 'S', 'B', '_', /* Scope, PkgLength 19 */
		   0x5b, 0x82, 0x0b, 'C', 'O', 'M', '1',     /* Device, PkgLength 11 */
		   0x08, '_', 'U', 'I', 'D', 0x01);
	aml_free(&a);
}

Test(aml, method_with_return)
{
	struct aml a;

	/* Method(_STA, 0, NotSerialized) { Return(0x0F) } */
	aml_init(&a);
	aml_method_begin(&a, "_STA", 0, 0);
	aml_return(&a);
	aml_int(&a, 0x0f);
	aml_method_end(&a);
	/* Method(FOO, 2, Serialized) { Return(Zero) } */
	aml_method_begin(&a, "FOO", 2, 1);
	aml_return(&a);
	aml_int(&a, 0);
	aml_method_end(&a);
	EXPECT_AML(&a, 0x14, 0x09, '_', 'S', 'T', 'A', 0x00, 0xa4, 0x0a, 0x0f, /* */
		   0x14, 0x08, 'F', 'O', 'O', '_', 0x0a, 0xa4, 0x00);
	aml_free(&a);
}

Test(aml, method_arg_count_limit)
{
	struct error err;
	struct aml a;

	aml_init(&a);
	aml_method_begin(&a, "_DSM", 8, 0);
	expect_fail(&a, EINVAL, &err);
	aml_free(&a);
}

Test(aml, resource_template_io_irq)
{
	struct aml a;

	/* ResourceTemplate() { IO(Decode16, 0x3F8, 0x3F8, 1, 8) IRQNoFlags() {4} } */
	aml_init(&a);
	aml_restemplate_begin(&a);
	aml_io(&a, 0x3f8, 0x3f8, 1, 8);
	aml_irq_noflags(&a, 4);
	aml_restemplate_end(&a);
	EXPECT_AML(&a, 0x11, 0x10, 0x0a, 0x0d,			   /* Buffer, PkgLength, size 13 */
		   0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08, /* IO */
		   0x22, 0x10, 0x00,				   /* IRQNoFlags {4} */
		   0x79, 0x00);					   /* End Tag */
	aml_free(&a);
}

Test(aml, empty_resource_template)
{
	struct aml a;

	aml_init(&a);
	aml_restemplate_begin(&a);
	aml_restemplate_end(&a);
	EXPECT_AML(&a, 0x11, 0x05, 0x0a, 0x02, 0x79, 0x00);
	aml_free(&a);
}

Test(aml, irq_noflags_range)
{
	struct error err;
	struct aml a;

	aml_init(&a);
	aml_restemplate_begin(&a);
	aml_irq_noflags(&a, 0);
	aml_irq_noflags(&a, 15);
	aml_restemplate_end(&a);
	EXPECT_AML(&a, 0x11, 0x0b, 0x0a, 0x08, 0x22, 0x01, 0x00, 0x22, 0x00, 0x80, 0x79, 0x00);
	aml_free(&a);

	aml_init(&a);
	aml_restemplate_begin(&a);
	aml_irq_noflags(&a, 16);
	expect_fail(&a, EINVAL, &err);
	aml_free(&a);
}

Test(aml, extended_interrupt)
{
	struct error err;
	struct aml a;

	/* Interrupt(ResourceConsumer, Level, ActiveHigh, Exclusive) {5} */
	aml_init(&a);
	aml_restemplate_begin(&a);
	aml_ext_irq(&a, 5, AML_IRQ_CONSUMER);
	/* Interrupt(ResourceConsumer, Edge, ActiveLow, Shared) {0x12345678} */
	aml_ext_irq(&a, 0x12345678,
		    AML_IRQ_CONSUMER | AML_IRQ_EDGE | AML_IRQ_ACTIVE_LOW | AML_IRQ_SHARED);
	aml_restemplate_end(&a);
	EXPECT_AML(&a, 0x11, 0x17, 0x0a, 0x14,				 /* */
		   0x89, 0x06, 0x00, 0x01, 0x01, 0x05, 0x00, 0x00, 0x00, /* */
		   0x89, 0x06, 0x00, 0x0f, 0x01, 0x78, 0x56, 0x34, 0x12, /* */
		   0x79, 0x00);
	aml_free(&a);

	aml_init(&a);
	aml_restemplate_begin(&a);
	aml_ext_irq(&a, 5, 0x20);
	expect_fail(&a, EINVAL, &err);
	aml_free(&a);
}

Test(aml, word_address_descriptors)
{
	struct aml a;

	aml_init(&a);
	aml_restemplate_begin(&a);
	/* WordBusNumber(ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, 0, 0xFF, 0, 0x100) */
	aml_word_bus_number(&a, 0, 0xff);
	/* WordIO(ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, 0, 0xD00, 0xFFFF, 0,
	 * 0xF300) */
	aml_word_io(&a, 0x0d00, 0xffff);
	aml_restemplate_end(&a);
	EXPECT_AML(&a, 0x11, 0x25, 0x0a, 0x22,	       /* 16 + 16 + 2 = 34 bytes */
		   0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, /* bus, MinFixed|MaxFixed */
		   0x00, 0x00, 0x00, 0x00, 0xff, 0x00, 0x00, 0x00, 0x00, 0x01, /* */
		   0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, /* I/O, EntireRange */
		   0x00, 0x00, 0x00, 0x0d, 0xff, 0xff, 0x00, 0x00, 0x00, 0xf3, /* */
		   0x79, 0x00);
	aml_free(&a);
}

Test(aml, dword_and_qword_memory)
{
	struct aml a;

	aml_init(&a);
	aml_restemplate_begin(&a);
	aml_dword_memory(&a, 0xc0000000, 0xfebfffff, AML_MEM_RW | AML_MEM_NONCACHEABLE);
	aml_qword_memory(&a, 0x8000000000ULL, 0xffffffffffULL, AML_MEM_RW | AML_MEM_PREFETCHABLE);
	aml_restemplate_end(&a);
	EXPECT_AML(&a, 0x11, 0x4e, 0x04, 0x0a, 0x4a,	  /* 26 + 46 + 2 = 74 bytes */
		   0x87, 0x17, 0x00, 0x00, 0x0c, 0x01,	  /* DWord memory, RW */
		   0x00, 0x00, 0x00, 0x00,		  /* granularity */
		   0x00, 0x00, 0x00, 0xc0,		  /* min */
		   0xff, 0xff, 0xbf, 0xfe,		  /* max */
		   0x00, 0x00, 0x00, 0x00,		  /* translation */
		   0x00, 0x00, 0xc0, 0x3e,		  /* length */
		   0x8a, 0x2b, 0x00, 0x00, 0x0c, 0x07,	  /* QWord memory, RW prefetchable */
		   0, 0, 0, 0, 0, 0, 0, 0,		  /* granularity */
		   0x00, 0x00, 0x00, 0x00, 0x80, 0, 0, 0, /* min */
		   0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, /* max */
		   0, 0, 0, 0, 0, 0, 0, 0,		  /* translation */
		   0x00, 0x00, 0x00, 0x00, 0x80, 0, 0, 0, /* length */
		   0x79, 0x00);
	aml_free(&a);
}

Test(aml, generic_address_descriptor_width_checked)
{
	struct aml_addr_space s = {
		.type = AML_ADDR_MEMORY,
		.flags = AML_ADDR_CONSUMER,
		.min = 0x100000000ULL,
		.max = 0x1ffffffffULL,
		.length = 0x100000000ULL,
	};
	struct error err;
	struct aml a;

	aml_init(&a);
	aml_restemplate_begin(&a);
	aml_dword_addr(&a, &s);
	expect_fail(&a, ERANGE, &err);
	aml_free(&a);

	aml_init(&a);
	aml_restemplate_begin(&a);
	aml_word_bus_number(&a, 0x10, 0x0f);
	expect_fail(&a, EINVAL, &err);
	aml_free(&a);
}

Test(aml, descriptors_only_inside_resource_templates)
{
	struct error err;
	struct aml a;

	aml_init(&a);
	aml_io(&a, 0x60, 0x60, 1, 1);
	expect_fail(&a, EINVAL, &err);
	cr_assert(strstr(err.msg, "outside a ResourceTemplate"), "%s", err.msg);
	aml_free(&a);

	aml_init(&a);
	aml_restemplate_begin(&a);
	aml_int(&a, 1);
	expect_fail(&a, EINVAL, &err);
	aml_free(&a);
}

Test(aml, named_objects_not_inside_packages)
{
	struct error err;
	struct aml a;

	aml_init(&a);
	aml_package_begin(&a);
	aml_name_int(&a, "FOO", 1);
	expect_fail(&a, EINVAL, &err);
	cr_assert(strstr(err.msg, "inside a Package"), "%s", err.msg);
	aml_free(&a);
}

Test(aml, unbalanced_begin_end)
{
	struct error err;
	struct aml a;

	aml_init(&a);
	aml_device_begin(&a, "DEV0");
	aml_scope_end(&a);
	expect_fail(&a, EINVAL, &err);
	aml_free(&a);

	aml_init(&a);
	aml_device_begin(&a, "DEV0");
	error_clear(&err);
	cr_assert_eq(aml_finish(&a, &err), -EINVAL);
	cr_assert(strstr(err.msg, "Device left open"), "%s", err.msg);
	aml_free(&a);
}

Test(aml, nesting_depth_limited)
{
	struct error err;
	struct aml a;
	int i;

	aml_init(&a);
	for (i = 0; i <= AML_MAX_DEPTH; i++)
		aml_package_begin(&a);
	expect_fail(&a, E2BIG, &err);
	aml_free(&a);
}

Test(aml, errors_are_sticky)
{
	struct error err;
	struct aml a;
	size_t len;

	aml_init(&a);
	aml_name_int(&a, "bad", 1);
	len = a.len;
	aml_name_int(&a, "GOOD", 2);
	aml_int(&a, 3);
	cr_assert_eq(a.len, len, "nothing is emitted after the first error");
	expect_fail(&a, EINVAL, &err);
	cr_assert(strstr(err.msg, "\"bad\""), "the first error is kept: %s", err.msg);
	aml_free(&a);
}

Test(aml, large_bodies_grow_the_buffer)
{
	struct error err;
	struct aml a;
	int i;

	/* 2000 devices: PkgLength of the scope needs 3 bytes. */
	aml_init(&a);
	aml_scope_begin(&a, "\\_SB");
	for (i = 0; i < 2000; i++) {
		aml_device_begin(&a, "D");
		aml_name_int(&a, "_UID", i);
		aml_device_end(&a);
	}
	aml_scope_end(&a);
	cr_assert_eq(aml_finish(&a, &err), 0, "%s", err.msg);
	cr_assert_eq(a.data[0], 0x10);
	cr_assert_eq(a.data[1] >> 6, 2, "3-byte PkgLength expected");
	cr_assert_eq((size_t)((a.data[1] & 0xf) | (a.data[2] << 4) | (a.data[3] << 12)), a.len - 1);
	aml_free(&a);
}
