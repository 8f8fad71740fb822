/* SPDX-License-Identifier: MIT */
/* Tiny runtime: memory and string helpers, serial output, CRC-32, options. */
#include "guest.h"

#define COM1 0x3f8

const char *g_scenario;
uint32_t g_scenario_len;

/* String instructions: each iteration is one step of the CPL-0 emulator,
 * so use 8-byte ones where the buffer allows. */
void *memset(void *d, int c, size_t n)
{
	void *ret = d;

	if ((((uintptr_t)d | n) & 7) == 0) {
		uint64_t v = (uint8_t)c * 0x0101010101010101ULL;
		n /= 8;
		__asm__ volatile("rep stosq" : "+D"(d), "+c"(n) : "a"(v) : "memory");
	} else {
		__asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
	}
	return ret;
}

void *memcpy(void *d, const void *s, size_t n)
{
	void *ret = d;

	if ((((uintptr_t)d | (uintptr_t)s | n) & 7) == 0) {
		n /= 8;
		__asm__ volatile("rep movsq" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
	} else {
		__asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
	}
	return ret;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const uint8_t *x = a, *y = b;

	for (size_t i = 0; i < n; i++)
		if (x[i] != y[i])
			return x[i] < y[i] ? -1 : 1;
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

/* ---- serial ---- */

void serial_init(void)
{
	outb(COM1 + 1, 0x00); /* IER: no interrupts (yet) */
	outb(COM1 + 3, 0x80); /* LCR: DLAB */
	outb(COM1 + 0, 0x01); /* 115200 baud */
	outb(COM1 + 1, 0x00);
	outb(COM1 + 3, 0x03); /* 8N1 */
	serial_rx_isr();      /* keep what already arrived: enabling FIFOs clears */
	outb(COM1 + 2, 0x07); /* FCR: FIFOs on, cleared */
	outb(COM1 + 4, 0x0b); /* MCR: DTR, RTS, OUT2 (IRQ gate) */
}

/*
 * Every port access is a VM exit, so write in bursts: once LSR says the
 * transmitter is empty, the 16-byte FIFO takes 16 bytes.
 */
void serial_write(const char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint32_t spins = 0;
		while (!(inb(COM1 + 5) & 0x20) && spins < 1000000)
			spins++;
		for (int k = 0; k < 16 && i < n; k++, i++)
			outb(COM1, (uint8_t)s[i]);
	}
}

static volatile uint32_t serial_lock_word;

void serial_lock(void)
{
	while (__atomic_exchange_n(&serial_lock_word, 1, __ATOMIC_ACQUIRE))
		while (serial_lock_word)
			cpu_relax();
}

void serial_unlock(void)
{
	__atomic_store_n(&serial_lock_word, 0, __ATOMIC_RELEASE);
}

/* ---- line building ---- */

void line_init(struct line *l)
{
	l->len = 0;
}

void line_chr(struct line *l, char c)
{
	if (l->len < sizeof(l->buf) - 1)
		l->buf[l->len++] = c;
}

void line_strn(struct line *l, const char *s, size_t n)
{
	for (size_t i = 0; i < n && s[i]; i++)
		line_chr(l, s[i]);
}

void line_str(struct line *l, const char *s)
{
	while (*s)
		line_chr(l, *s++);
}

void line_dec(struct line *l, uint64_t v)
{
	char tmp[20];
	int n = 0;

	do {
		tmp[n++] = '0' + v % 10;
		v /= 10;
	} while (v);
	while (n)
		line_chr(l, tmp[--n]);
}

void line_hex(struct line *l, uint64_t v)
{
	char tmp[16];
	int n = 0;

	line_str(l, "0x");
	do {
		tmp[n++] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v);
	while (n)
		line_chr(l, tmp[--n]);
}

void line_kv_dec(struct line *l, const char *key, uint64_t v)
{
	line_chr(l, ' ');
	line_str(l, key);
	line_chr(l, '=');
	line_dec(l, v);
}

void line_kv_str(struct line *l, const char *key, const char *v)
{
	line_chr(l, ' ');
	line_str(l, key);
	line_chr(l, '=');
	line_str(l, v);
}

void line_emit(struct line *l)
{
	l->buf[l->len++] = '\n';
	serial_lock();
	serial_write(l->buf, l->len);
	serial_unlock();
	l->len--;
}

/* ---- CRC-32 (IEEE 802.3, reflected, as zlib's crc32()) ---- */

static uint32_t crc_table[256];
static bool crc_ready;

uint32_t crc32(const void *data, size_t n)
{
	const uint8_t *p = data;
	uint32_t crc = 0xffffffff;

	if (!crc_ready) {
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t c = i;
			for (int k = 0; k < 8; k++)
				c = (c & 1) ? 0xedb88320 ^ (c >> 1) : c >> 1;
			crc_table[i] = c;
		}
		crc_ready = true;
	}
	for (size_t i = 0; i < n; i++)
		crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
	return crc ^ 0xffffffff;
}

/* ---- time ---- */

static uint64_t tsc_freq;

static uint64_t tsc_calibrate_pmtimer(void)
{
	/* 3.579545 MHz, 24 bits: measure ~10 ms (35795 ticks). */
	uint16_t port = (uint16_t)g_acpi.pm_tmr;
	uint32_t t0 = inl(port) & 0xffffff, t;
	uint64_t c0 = rdtsc(), c1;
	uint32_t spins = 0;

	do {
		t = inl(port) & 0xffffff;
		if (++spins > 100000)
			return 0;
	} while (((t - t0) & 0xffffff) < 35795);
	c1 = rdtsc();
	return (c1 - c0) * 3579545 / ((t - t0) & 0xffffff);
}

/*
 * Rate of the TSC as CPL-3 code reads it (under PVM: the host's TSC). The
 * ACPI PM timer measures exactly that; CPUID's frequency leaves describe
 * the vCPU's TSC, which runs at the same rate unless the VMM scales it.
 */
uint64_t tsc_hz(void)
{
	uint32_t a, b, c, d, max;

	if (tsc_freq)
		return tsc_freq;
	if (g_acpi.pm_tmr && g_acpi.pm_tmr < 0x10000)
		tsc_freq = tsc_calibrate_pmtimer();
	if (tsc_freq)
		return tsc_freq;
	cpuid(1, 0, &a, &b, &c, &d);
	if (c & (1u << 31)) {
		cpuid(0x40000000, 0, &a, &b, &c, &d);
		if (a >= 0x40000010) {
			cpuid(0x40000010, 0, &a, &b, &c, &d);
			if (a)
				tsc_freq = (uint64_t)a * 1000;
		}
	}
	cpuid(0, 0, &max, &b, &c, &d);
	if (!tsc_freq && max >= 0x15) {
		cpuid(0x15, 0, &a, &b, &c, &d);
		if (a && b && c)
			tsc_freq = (uint64_t)c * b / a;
	}
	if (!tsc_freq && max >= 0x16) {
		cpuid(0x16, 0, &a, &b, &c, &d);
		if (a & 0xffff)
			tsc_freq = (uint64_t)(a & 0xffff) * 1000000;
	}
	if (!tsc_freq)
		tsc_freq = 3000000000ULL;
	return tsc_freq;
}

void delay_us(uint64_t us)
{
	uint64_t end = rdtsc() + us * (tsc_hz() / 1000000);

	while ((int64_t)(rdtsc() - end) < 0)
		cpu_relax();
}

/* ---- command line ---- */

bool parse_u64(const char *s, size_t n, int base, uint64_t *out)
{
	uint64_t v = 0;
	size_t i = 0;

	if (base == 16 && n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		i = 2;
	if (i >= n)
		return false;
	for (; i < n; i++) {
		char c = s[i];
		uint32_t d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (base == 16 && c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (base == 16 && c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return false;
		v = v * base + d;
	}
	*out = v;
	return true;
}

bool opt_get(const char *key, const char **val, size_t *len)
{
	const char *s = g_boot.cmdline;
	size_t klen = strlen(key);

	while (*s) {
		while (*s == ' ' || *s == '\t' || *s == '\n')
			s++;
		const char *w = s;
		while (*s && *s != ' ' && *s != '\t' && *s != '\n')
			s++;
		size_t wlen = s - w;
		if (wlen > klen && w[klen] == '=' && memcmp(w, key, klen) == 0) {
			*val = w + klen + 1;
			*len = wlen - klen - 1;
			return true;
		}
	}
	return false;
}

bool opt_u64(const char *key, int base, uint64_t *out)
{
	const char *v;
	size_t n;

	return opt_get(key, &v, &n) && parse_u64(v, n, base, out);
}
