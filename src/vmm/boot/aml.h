/* SPDX-License-Identifier: MIT */
#ifndef BUNSHIN_VMM_AML_H
#define BUNSHIN_VMM_AML_H

#include <stddef.h>
#include <stdint.h>

#include "../../common/error.h"

/*
 * A small AML (ACPI Machine Language) byte-code builder.
 *
 * Objects with a PkgLength (Scope, Device, Method, Package, Buffer) are
 * written as begin ... end pairs: the body is emitted first and the length
 * is inserted in front of it when the object is closed, so callers never
 * compute sizes by hand. Errors are sticky: after the first failure every
 * call is a no-op, and aml_finish() reports it once.
 *
 *	struct aml a;
 *
 *	aml_init(&a);
 *	aml_scope_begin(&a, "\\_SB");
 *	aml_device_begin(&a, "COM1");
 *	aml_name_eisaid(&a, "_HID", "PNP0501");
 *	aml_name(&a, "_CRS");
 *	aml_restemplate_begin(&a);
 *	aml_io(&a, 0x3f8, 0x3f8, 1, 8);
 *	aml_irq_noflags(&a, 4);
 *	aml_restemplate_end(&a);
 *	aml_device_end(&a);
 *	aml_scope_end(&a);
 *	if (aml_finish(&a, err) < 0) ...
 *	use a.data, a.len; aml_free(&a);
 */

#define AML_MAX_DEPTH 16

/* Largest value a PkgLength can carry (4 bytes, 28 bits). */
#define AML_PKGLEN_MAX 0x0fffffffU

struct aml_open {
	size_t start;	    /* offset right after the opcode: PkgLength goes here */
	unsigned int kind;  /* enum aml_kind, private to aml.c */
	unsigned int count; /* data items emitted directly inside (Package elements) */
};

struct aml {
	uint8_t *data;
	size_t len;
	size_t cap;
	struct aml_open open[AML_MAX_DEPTH];
	unsigned int depth;
	int error; /* first failure as a negative errno, 0 when none */
	char why[128];
};

void aml_init(struct aml *a);
void aml_free(struct aml *a);

/*
 * Checks that no error happened and every begin has its end. Returns 0, or
 * a negative errno with err filled in. a->data / a->len hold the byte code.
 */
int aml_finish(struct aml *a, struct error *err);

/*
 * Encodes a PkgLength whose total value (the value includes the encoding's
 * own bytes) is total. Returns the number of bytes (1-4) written to out, or
 * 0 when total is beyond AML_PKGLEN_MAX.
 */
unsigned int aml_pkglen_encode(uint32_t total, uint8_t out[4]);

/* PkgLength for body_len bytes that follow it: picks the shortest form. */
unsigned int aml_pkglen_for_body(size_t body_len, uint8_t out[4]);

/* Packs a "PNP0501"-style EISA ID into its 32-bit form; -EINVAL if malformed. */
int aml_eisaid_value(const char *id, uint32_t *out);

/* Raw bytes, for anything the builder does not know yet. Not validated. */
void aml_bytes(struct aml *a, const void *p, size_t n);

/*
 * Data objects. Each counts as one element when emitted inside a Package.
 * aml_int picks the shortest encoding (Zero, One, Ones, Byte..QWord).
 * aml_path emits a NameString ("\\_SB.PCI0", "^FOO", "_S5") as a reference.
 */
void aml_int(struct aml *a, uint64_t v);
void aml_string(struct aml *a, const char *s);
void aml_eisaid(struct aml *a, const char *id);
void aml_path(struct aml *a, const char *path);

/*
 * Name(name, <value>): the next data object emitted (an integer, string,
 * package or resource template) is the value.
 */
void aml_name(struct aml *a, const char *name);
void aml_name_int(struct aml *a, const char *name, uint64_t v);
void aml_name_string(struct aml *a, const char *name, const char *s);
void aml_name_eisaid(struct aml *a, const char *name, const char *id);

void aml_scope_begin(struct aml *a, const char *path);
void aml_scope_end(struct aml *a);
void aml_device_begin(struct aml *a, const char *name);
void aml_device_end(struct aml *a);
/* nargs 0-7; serialized methods get an implicit mutex (MethodFlags bit 3). */
void aml_method_begin(struct aml *a, const char *name, unsigned int nargs, int serialized);
void aml_method_end(struct aml *a);
/* Return(<value>): the next data object emitted is the value returned. */
void aml_return(struct aml *a);
/* Notify(path, value), inside a method. */
void aml_notify(struct aml *a, const char *path, uint64_t value);

/* Package() { ... }: the element count is counted for you (at most 255). */
void aml_package_begin(struct aml *a);
void aml_package_end(struct aml *a);

/*
 * ResourceTemplate() { ... }: a Buffer holding resource descriptors. The end
 * appends the End Tag (checksum 0: "treat as valid") and the buffer size.
 * Descriptors below may only be emitted inside one.
 */
void aml_restemplate_begin(struct aml *a);
void aml_restemplate_end(struct aml *a);

/* IO(Decode16, min, max, align, len) */
void aml_io(struct aml *a, uint16_t min, uint16_t max, uint8_t align, uint8_t len);
/* IRQNoFlags() {irq}: ISA interrupt 0-15, edge triggered, active high. */
void aml_irq_noflags(struct aml *a, unsigned int irq);

/* Extended Interrupt descriptor flags (byte 3 of the descriptor). */
#define AML_IRQ_CONSUMER   (1u << 0)
#define AML_IRQ_EDGE	   (1u << 1) /* clear: level triggered */
#define AML_IRQ_ACTIVE_LOW (1u << 2) /* clear: active high */
#define AML_IRQ_SHARED	   (1u << 3)
#define AML_IRQ_WAKE	   (1u << 4)

/* Interrupt(...) {gsi}: one 32-bit interrupt number. */
void aml_ext_irq(struct aml *a, uint32_t gsi, unsigned int flags);

/* Address space descriptors: resource types. */
#define AML_ADDR_MEMORY 0
#define AML_ADDR_IO	1
#define AML_ADDR_BUS	2

/* General flags. */
#define AML_ADDR_CONSUMER    (1u << 0) /* clear: ResourceProducer (bridges) */
#define AML_ADDR_SUBTRACTIVE (1u << 1)
#define AML_ADDR_MIN_FIXED   (1u << 2)
#define AML_ADDR_MAX_FIXED   (1u << 3)

/* Type-specific flags for memory ranges. */
#define AML_MEM_RW	      (1u << 0)
#define AML_MEM_NONCACHEABLE  (0u << 1)
#define AML_MEM_CACHEABLE     (1u << 1)
#define AML_MEM_WRITE_COMBINE (2u << 1)
#define AML_MEM_PREFETCHABLE  (3u << 1)
/* Type-specific flags for I/O ranges: ISA and non-ISA ranges both decoded. */
#define AML_IO_ENTIRE_RANGE 3u

struct aml_addr_space {
	uint8_t type;	    /* AML_ADDR_MEMORY / _IO / _BUS */
	uint8_t flags;	    /* AML_ADDR_* general flags */
	uint8_t type_flags; /* AML_MEM_* or AML_IO_* */
	uint64_t granularity;
	uint64_t min;
	uint64_t max;
	uint64_t translation;
	uint64_t length;
};

/* Word/DWord/QWord Address Space Descriptors; values must fit the width. */
void aml_word_addr(struct aml *a, const struct aml_addr_space *s);
void aml_dword_addr(struct aml *a, const struct aml_addr_space *s);
void aml_qword_addr(struct aml *a, const struct aml_addr_space *s);

/*
 * The windows a PCI host bridge produces, as firmware usually writes them:
 * ResourceProducer, PosDecode, MinFixed, MaxFixed, length = max - min + 1.
 */
void aml_word_bus_number(struct aml *a, uint16_t min, uint16_t max);
void aml_word_io(struct aml *a, uint16_t min, uint16_t max);
void aml_dword_memory(struct aml *a, uint32_t min, uint32_t max, uint8_t type_flags);
void aml_qword_memory(struct aml *a, uint64_t min, uint64_t max, uint8_t type_flags);

#endif
