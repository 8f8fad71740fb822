// SPDX-License-Identifier: MIT
/*
 * AML byte-code builder. Encodings follow the ACPI specification, chapter
 * "ACPI Machine Language (AML) Specification", and the resource descriptor
 * formats of chapter "Resource Data Types for ACPI".
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aml.h"

/* Opcodes and prefixes. */
#define AML_ZERO	 0x00
#define AML_ONE		 0x01
#define AML_NAME_OP	 0x08
#define AML_BYTE_PREFIX	 0x0a
#define AML_WORD_PREFIX	 0x0b
#define AML_DWORD_PREFIX 0x0c
#define AML_STRING	 0x0d
#define AML_QWORD_PREFIX 0x0e
#define AML_SCOPE_OP	 0x10
#define AML_BUFFER_OP	 0x11
#define AML_PACKAGE_OP	 0x12
#define AML_METHOD_OP	 0x14
#define AML_DUAL_NAME	 0x2e
#define AML_MULTI_NAME	 0x2f
#define AML_EXT_PREFIX	 0x5b
#define AML_DEVICE_OP	 0x82 /* after AML_EXT_PREFIX */
#define AML_ROOT_CHAR	 '\\'
#define AML_PARENT_CHAR	 '^'
#define AML_RETURN_OP	 0xa4
#define AML_NOTIFY_OP	 0x86
#define AML_ONES	 0xff

/* Resource descriptor tags (small items carry their length in bits 2:0). */
#define AML_RES_IRQ_NOFLAGS 0x22
#define AML_RES_IO	    0x47
#define AML_RES_END_TAG	    0x79
#define AML_RES_DWORD_ADDR  0x87
#define AML_RES_WORD_ADDR   0x88
#define AML_RES_EXT_IRQ	    0x89
#define AML_RES_QWORD_ADDR  0x8a

#define AML_IO_DECODE16 0x01

enum aml_kind {
	AML_KIND_SCOPE,
	AML_KIND_DEVICE,
	AML_KIND_METHOD,
	AML_KIND_PACKAGE,
	AML_KIND_RESTEMPLATE,
};

static const char *const aml_kind_names[] = {
	[AML_KIND_SCOPE] = "Scope",
	[AML_KIND_DEVICE] = "Device",
	[AML_KIND_METHOD] = "Method",
	[AML_KIND_PACKAGE] = "Package",
	[AML_KIND_RESTEMPLATE] = "ResourceTemplate",
};

void aml_init(struct aml *a)
{
	memset(a, 0, sizeof(*a));
}

void aml_free(struct aml *a)
{
	free(a->data);
	aml_init(a);
}

/* Only the first failure is kept: later ones are usually its consequences. */
__attribute__((format(printf, 3, 4))) static void aml_fail(struct aml *a, int code, const char *fmt,
							   ...)
{
	va_list ap;

	if (a->error)
		return;
	a->error = -code;
	va_start(ap, fmt);
	vsnprintf(a->why, sizeof(a->why), fmt, ap);
	va_end(ap);
}

int aml_finish(struct aml *a, struct error *err)
{
	if (a->error)
		return error_set(err, -a->error, "AML: %s", a->why);
	if (a->depth)
		return error_set(err, EINVAL, "AML: %s left open",
				 aml_kind_names[a->open[a->depth - 1].kind]);
	return 0;
}

static bool aml_reserve(struct aml *a, size_t extra)
{
	size_t cap;
	uint8_t *p;

	if (a->error)
		return false;
	if (a->len + extra <= a->cap)
		return true;
	cap = a->cap ? a->cap : 256;
	while (cap < a->len + extra)
		cap *= 2;
	p = realloc(a->data, cap);
	if (!p) {
		aml_fail(a, ENOMEM, "out of memory growing to %zu bytes", cap);
		return false;
	}
	a->data = p;
	a->cap = cap;
	return true;
}

static void aml_put(struct aml *a, const void *p, size_t n)
{
	/* n == 0 may come with no buffer yet: memcpy must not see NULL. */
	if (!n || !aml_reserve(a, n))
		return;
	memcpy(a->data + a->len, p, n);
	a->len += n;
}

static void aml_put8(struct aml *a, uint8_t v)
{
	aml_put(a, &v, 1);
}

/* AML and resource descriptors are little-endian whatever the host is. */
static void aml_put_le(struct aml *a, uint64_t v, unsigned int n)
{
	uint8_t b[8];
	unsigned int i;

	for (i = 0; i < n; i++)
		b[i] = v >> (8 * i);
	aml_put(a, b, n);
}

void aml_bytes(struct aml *a, const void *p, size_t n)
{
	aml_put(a, p, n);
}

static unsigned int aml_cur_kind(const struct aml *a)
{
	/* The table's top level is the root scope. */
	return a->depth ? a->open[a->depth - 1].kind : AML_KIND_SCOPE;
}

/* Terms and named objects: not inside a Package or a ResourceTemplate. */
static bool aml_want_term(struct aml *a, const char *what)
{
	unsigned int kind = aml_cur_kind(a);

	if (a->error)
		return false;
	if (kind == AML_KIND_PACKAGE || kind == AML_KIND_RESTEMPLATE) {
		aml_fail(a, EINVAL, "%s is not allowed inside a %s", what, aml_kind_names[kind]);
		return false;
	}
	return true;
}

/* Data objects: anywhere but in a ResourceTemplate; counted as Package elements. */
static bool aml_want_data(struct aml *a, const char *what)
{
	if (a->error)
		return false;
	if (aml_cur_kind(a) == AML_KIND_RESTEMPLATE) {
		aml_fail(a, EINVAL, "%s is not allowed inside a ResourceTemplate", what);
		return false;
	}
	if (a->depth)
		a->open[a->depth - 1].count++;
	return true;
}

static bool aml_want_desc(struct aml *a, const char *what)
{
	if (a->error)
		return false;
	if (aml_cur_kind(a) != AML_KIND_RESTEMPLATE) {
		aml_fail(a, EINVAL, "%s descriptor outside a ResourceTemplate", what);
		return false;
	}
	return true;
}

unsigned int aml_pkglen_encode(uint32_t total, uint8_t out[4])
{
	unsigned int n, i;

	if (total <= 0x3f) {
		out[0] = total;
		return 1;
	}
	if (total > AML_PKGLEN_MAX)
		return 0;
	n = total <= 0xfff ? 2 : total <= 0xfffff ? 3 : 4;
	/* Lead byte: count of following bytes in bits 7:6, low nibble in 3:0. */
	out[0] = ((n - 1) << 6) | (total & 0xf);
	for (i = 1; i < n; i++)
		out[i] = total >> (4 + 8 * (i - 1));
	return n;
}

unsigned int aml_pkglen_for_body(size_t body_len, uint8_t out[4])
{
	static const uint32_t max[] = {0x3f, 0xfff, 0xfffff, AML_PKGLEN_MAX};
	unsigned int n;

	/* The length counts its own bytes, so the form is picked per size. */
	for (n = 1; n <= 4; n++)
		if (body_len + n <= max[n - 1])
			return aml_pkglen_encode(body_len + n, out);
	return 0;
}

static unsigned int aml_int_encode(uint64_t v, uint8_t out[9])
{
	unsigned int n, i;

	if (v == 0 || v == 1) {
		out[0] = v ? AML_ONE : AML_ZERO;
		return 1;
	}
	if (v == UINT64_MAX) {
		out[0] = AML_ONES;
		return 1;
	}
	if (v <= 0xff) {
		out[0] = AML_BYTE_PREFIX;
		n = 1;
	} else if (v <= 0xffff) {
		out[0] = AML_WORD_PREFIX;
		n = 2;
	} else if (v <= 0xffffffff) {
		out[0] = AML_DWORD_PREFIX;
		n = 4;
	} else {
		out[0] = AML_QWORD_PREFIX;
		n = 8;
	}
	for (i = 0; i < n; i++)
		out[1 + i] = v >> (8 * i);
	return 1 + n;
}

static bool aml_seg_char_ok(char c, bool first)
{
	if ((c >= 'A' && c <= 'Z') || c == '_')
		return true;
	return !first && c >= '0' && c <= '9';
}

static bool aml_seg_ok(const char *s, size_t n)
{
	size_t i;

	if (n < 1 || n > 4)
		return false;
	for (i = 0; i < n; i++)
		if (!aml_seg_char_ok(s[i], i == 0))
			return false;
	return true;
}

/* Counts the dot-separated NameSegs of body; -1 if one is malformed. */
static int aml_count_segs(const char *body)
{
	const char *p = body, *q;
	int n = 0;

	if (!*p)
		return 0;
	for (;;) {
		q = strchrnul(p, '.');
		if (!aml_seg_ok(p, q - p))
			return -1;
		n++;
		if (!*q)
			return n;
		p = q + 1;
	}
}

/* One NameSeg, padded with '_' to four characters as ASL compilers do. */
static void aml_put_seg(struct aml *a, const char *s, size_t n)
{
	char seg[4] = {'_', '_', '_', '_'};

	memcpy(seg, s, n);
	aml_put(a, seg, 4);
}

/*
 * NameString := RootChar NamePath | PrefixPath NamePath, where NamePath is
 * NullName, one NameSeg, DualNamePrefix + 2 segs or MultiNamePrefix + count.
 */
static void aml_put_namestring(struct aml *a, const char *path, bool need_seg)
{
	const char *body = path, *p, *q;
	int nseg;

	if (*body == AML_ROOT_CHAR)
		body++;
	else
		while (*body == AML_PARENT_CHAR)
			body++;
	nseg = aml_count_segs(body);
	if (nseg < 0 || nseg > 255 || (need_seg && nseg == 0)) {
		aml_fail(a, EINVAL, "bad ACPI name \"%.64s\"", path);
		return;
	}
	aml_put(a, path, body - path);
	if (nseg == 0)
		aml_put8(a, AML_ZERO); /* NullName */
	else if (nseg == 2)
		aml_put8(a, AML_DUAL_NAME);
	else if (nseg > 2) {
		aml_put8(a, AML_MULTI_NAME);
		aml_put8(a, nseg);
	}
	for (p = body; nseg > 0; nseg--, p = q + 1) {
		q = strchrnul(p, '.');
		aml_put_seg(a, p, q - p);
	}
}

int aml_eisaid_value(const char *id, uint32_t *out)
{
	uint32_t v = 0;
	int i;

	if (!id || strlen(id) != 7)
		return -EINVAL;
	for (i = 0; i < 3; i++) {
		if (id[i] < 'A' || id[i] > 'Z')
			return -EINVAL;
		/* Manufacturer letters are compressed to 5 bits each, 'A' = 1. */
		v = (v << 5) | (id[i] - '@');
	}
	for (i = 3; i < 7; i++) {
		char c = id[i];

		if (c >= '0' && c <= '9')
			v = (v << 4) | (c - '0');
		else if (c >= 'A' && c <= 'F')
			v = (v << 4) | (c - 'A' + 10);
		else
			return -EINVAL;
	}
	/* The ID is stored big-endian: "PNP0501" is bytes 41 d0 05 01. */
	*out = __builtin_bswap32(v);
	return 0;
}

void aml_int(struct aml *a, uint64_t v)
{
	uint8_t b[9];

	if (!aml_want_data(a, "Integer"))
		return;
	aml_put(a, b, aml_int_encode(v, b));
}

void aml_string(struct aml *a, const char *s)
{
	const char *p;

	if (!aml_want_data(a, "String"))
		return;
	/* AsciiCharList: 0x01-0x7f, NUL terminated. */
	for (p = s; *p; p++) {
		if ((unsigned char)*p > 0x7f) {
			aml_fail(a, EINVAL, "non-ASCII character in AML string");
			return;
		}
	}
	aml_put8(a, AML_STRING);
	aml_put(a, s, p - s + 1);
}

void aml_eisaid(struct aml *a, const char *id)
{
	uint32_t v;

	if (!aml_want_data(a, "EisaId"))
		return;
	if (aml_eisaid_value(id, &v) < 0) {
		aml_fail(a, EINVAL, "bad EISA ID \"%.16s\"", id ? id : "(null)");
		return;
	}
	/* Always a DWord, as ASL compilers emit it, so _HID readers see one form. */
	aml_put8(a, AML_DWORD_PREFIX);
	aml_put_le(a, v, 4);
}

void aml_path(struct aml *a, const char *path)
{
	if (!aml_want_data(a, "name reference"))
		return;
	aml_put_namestring(a, path, false);
}

void aml_name(struct aml *a, const char *name)
{
	if (!aml_want_term(a, "Name"))
		return;
	aml_put8(a, AML_NAME_OP);
	aml_put_namestring(a, name, true);
}

void aml_name_int(struct aml *a, const char *name, uint64_t v)
{
	aml_name(a, name);
	aml_int(a, v);
}

void aml_name_string(struct aml *a, const char *name, const char *s)
{
	aml_name(a, name);
	aml_string(a, s);
}

void aml_name_eisaid(struct aml *a, const char *name, const char *id)
{
	aml_name(a, name);
	aml_eisaid(a, id);
}

/* Opens an object whose PkgLength will sit at the current offset. */
static void aml_push(struct aml *a, unsigned int kind)
{
	if (a->error)
		return;
	if (a->depth == AML_MAX_DEPTH) {
		aml_fail(a, E2BIG, "objects nested deeper than %d", AML_MAX_DEPTH);
		return;
	}
	a->open[a->depth].start = a->len;
	a->open[a->depth].kind = kind;
	a->open[a->depth].count = 0;
	a->depth++;
}

static const struct aml_open *aml_pop(struct aml *a, unsigned int kind)
{
	if (a->error)
		return NULL;
	if (!a->depth || a->open[a->depth - 1].kind != kind) {
		aml_fail(a, EINVAL, "%s end without a matching begin", aml_kind_names[kind]);
		return NULL;
	}
	return &a->open[--a->depth];
}

/*
 * Inserts PkgLength (and extra, the fixed fields that follow it but are
 * only known now, e.g. a Package's element count) at start.
 */
static void aml_insert_head(struct aml *a, size_t start, const uint8_t *extra, size_t extra_len)
{
	uint8_t head[4 + 9];
	size_t body = a->len - start;
	unsigned int n;

	n = aml_pkglen_for_body(body + extra_len, head);
	if (!n) {
		aml_fail(a, E2BIG, "object of %zu bytes is too large for a PkgLength", body);
		return;
	}
	if (extra_len)
		memcpy(head + n, extra, extra_len);
	if (!aml_reserve(a, n + extra_len))
		return;
	memmove(a->data + start + n + extra_len, a->data + start, body);
	memcpy(a->data + start, head, n + extra_len);
	a->len += n + extra_len;
}

static void aml_end_plain(struct aml *a, unsigned int kind)
{
	const struct aml_open *o = aml_pop(a, kind);

	if (o)
		aml_insert_head(a, o->start, NULL, 0);
}

void aml_scope_begin(struct aml *a, const char *path)
{
	if (!aml_want_term(a, "Scope"))
		return;
	aml_put8(a, AML_SCOPE_OP);
	aml_push(a, AML_KIND_SCOPE);
	aml_put_namestring(a, path, false);
}

void aml_scope_end(struct aml *a)
{
	aml_end_plain(a, AML_KIND_SCOPE);
}

void aml_device_begin(struct aml *a, const char *name)
{
	if (!aml_want_term(a, "Device"))
		return;
	aml_put8(a, AML_EXT_PREFIX);
	aml_put8(a, AML_DEVICE_OP);
	aml_push(a, AML_KIND_DEVICE);
	aml_put_namestring(a, name, true);
}

void aml_device_end(struct aml *a)
{
	aml_end_plain(a, AML_KIND_DEVICE);
}

void aml_method_begin(struct aml *a, const char *name, unsigned int nargs, int serialized)
{
	if (!aml_want_term(a, "Method"))
		return;
	if (nargs > 7) {
		aml_fail(a, EINVAL, "Method %.8s with %u arguments (at most 7)", name, nargs);
		return;
	}
	aml_put8(a, AML_METHOD_OP);
	aml_push(a, AML_KIND_METHOD);
	aml_put_namestring(a, name, true);
	/* MethodFlags: ArgCount in bits 2:0, SerializeFlag bit 3, SyncLevel 0. */
	aml_put8(a, nargs | (serialized ? 0x08 : 0));
}

void aml_method_end(struct aml *a)
{
	aml_end_plain(a, AML_KIND_METHOD);
}

void aml_return(struct aml *a)
{
	if (!aml_want_term(a, "Return"))
		return;
	aml_put8(a, AML_RETURN_OP);
}

void aml_package_begin(struct aml *a)
{
	if (!aml_want_data(a, "Package"))
		return;
	aml_put8(a, AML_PACKAGE_OP);
	aml_push(a, AML_KIND_PACKAGE);
}

void aml_package_end(struct aml *a)
{
	const struct aml_open *o = aml_pop(a, AML_KIND_PACKAGE);
	uint8_t count;

	if (!o)
		return;
	if (o->count > 255) {
		/* VarPackageOp would be needed; nothing here uses one yet. */
		aml_fail(a, E2BIG, "Package with %u elements (at most 255)", o->count);
		return;
	}
	count = o->count;
	aml_insert_head(a, o->start, &count, 1);
}

void aml_restemplate_begin(struct aml *a)
{
	if (!aml_want_data(a, "ResourceTemplate"))
		return;
	aml_put8(a, AML_BUFFER_OP);
	aml_push(a, AML_KIND_RESTEMPLATE);
}

void aml_restemplate_end(struct aml *a)
{
	const struct aml_open *o = aml_pop(a, AML_KIND_RESTEMPLATE);
	uint8_t size[9];
	size_t start;

	if (!o)
		return;
	start = o->start;
	/* End Tag; checksum 0 tells OSPM to treat the template as valid. */
	aml_put8(a, AML_RES_END_TAG);
	aml_put8(a, 0);
	/* Buffer := BufferOp PkgLength BufferSize ByteList */
	aml_insert_head(a, start, size, aml_int_encode(a->len - start, size));
}

void aml_io(struct aml *a, uint16_t min, uint16_t max, uint8_t align, uint8_t len)
{
	if (!aml_want_desc(a, "IO"))
		return;
	aml_put8(a, AML_RES_IO);
	aml_put8(a, AML_IO_DECODE16);
	aml_put_le(a, min, 2);
	aml_put_le(a, max, 2);
	aml_put8(a, align);
	aml_put8(a, len);
}

void aml_irq_noflags(struct aml *a, unsigned int irq)
{
	if (!aml_want_desc(a, "IRQNoFlags"))
		return;
	if (irq > 15) {
		aml_fail(a, EINVAL, "IRQNoFlags for IRQ %u (ISA IRQs are 0-15)", irq);
		return;
	}
	aml_put8(a, AML_RES_IRQ_NOFLAGS);
	aml_put_le(a, 1u << irq, 2);
}

void aml_ext_irq(struct aml *a, uint32_t gsi, unsigned int flags)
{
	if (!aml_want_desc(a, "Interrupt"))
		return;
	if (flags & ~0x1fu) {
		aml_fail(a, EINVAL, "Interrupt flags 0x%x has reserved bits set", flags);
		return;
	}
	aml_put8(a, AML_RES_EXT_IRQ);
	aml_put_le(a, 6, 2); /* flags, table length, one DWord */
	aml_put8(a, flags);
	aml_put8(a, 1);
	aml_put_le(a, gsi, 4);
}

static bool aml_addr_fits(const struct aml_addr_space *s, unsigned int width)
{
	uint64_t lim = width == 8 ? UINT64_MAX : (1ULL << (8 * width)) - 1;

	return s->granularity <= lim && s->min <= lim && s->max <= lim && s->translation <= lim &&
	       s->length <= lim;
}

/* Word/DWord/QWord Address Space Descriptors differ only in field width. */
static void aml_addr(struct aml *a, const struct aml_addr_space *s, uint8_t tag, unsigned int width,
		     const char *what)
{
	if (!aml_want_desc(a, what))
		return;
	if (!aml_addr_fits(s, width)) {
		aml_fail(a, ERANGE, "%s: a value does not fit in %u bytes", what, width);
		return;
	}
	aml_put8(a, tag);
	aml_put_le(a, 3 + 5 * width, 2);
	aml_put8(a, s->type);
	aml_put8(a, s->flags);
	aml_put8(a, s->type_flags);
	aml_put_le(a, s->granularity, width);
	aml_put_le(a, s->min, width);
	aml_put_le(a, s->max, width);
	aml_put_le(a, s->translation, width);
	aml_put_le(a, s->length, width);
}

void aml_word_addr(struct aml *a, const struct aml_addr_space *s)
{
	aml_addr(a, s, AML_RES_WORD_ADDR, 2, "WordSpace");
}

void aml_dword_addr(struct aml *a, const struct aml_addr_space *s)
{
	aml_addr(a, s, AML_RES_DWORD_ADDR, 4, "DWordSpace");
}

void aml_qword_addr(struct aml *a, const struct aml_addr_space *s)
{
	aml_addr(a, s, AML_RES_QWORD_ADDR, 8, "QWordSpace");
}

/* A fixed window [min, max] produced by a bridge. */
static bool aml_window(struct aml *a, struct aml_addr_space *s, uint8_t type, uint8_t type_flags,
		       uint64_t min, uint64_t max)
{
	if (max < min || (min == 0 && max == UINT64_MAX)) {
		aml_fail(a, EINVAL, "bad address window 0x%llx-0x%llx", (unsigned long long)min,
			 (unsigned long long)max);
		return false;
	}
	memset(s, 0, sizeof(*s));
	s->type = type;
	s->flags = AML_ADDR_MIN_FIXED | AML_ADDR_MAX_FIXED;
	s->type_flags = type_flags;
	s->min = min;
	s->max = max;
	s->length = max - min + 1;
	return true;
}

void aml_word_bus_number(struct aml *a, uint16_t min, uint16_t max)
{
	struct aml_addr_space s;

	if (aml_window(a, &s, AML_ADDR_BUS, 0, min, max))
		aml_word_addr(a, &s);
}

void aml_word_io(struct aml *a, uint16_t min, uint16_t max)
{
	struct aml_addr_space s;

	if (aml_window(a, &s, AML_ADDR_IO, AML_IO_ENTIRE_RANGE, min, max))
		aml_word_addr(a, &s);
}

void aml_dword_memory(struct aml *a, uint32_t min, uint32_t max, uint8_t type_flags)
{
	struct aml_addr_space s;

	if (aml_window(a, &s, AML_ADDR_MEMORY, type_flags, min, max))
		aml_dword_addr(a, &s);
}

void aml_qword_memory(struct aml *a, uint64_t min, uint64_t max, uint8_t type_flags)
{
	struct aml_addr_space s;

	if (aml_window(a, &s, AML_ADDR_MEMORY, type_flags, min, max))
		aml_qword_addr(a, &s);
}

/* Notify(path, value): the OS's handler for that object gets value (0x80: "status changed"). */
void aml_notify(struct aml *a, const char *path, uint64_t value)
{
	if (!aml_want_term(a, "Notify"))
		return;
	aml_put8(a, AML_NOTIFY_OP);
	aml_put_namestring(a, path, false);
	aml_int(a, value);
}
