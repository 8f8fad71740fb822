/* SPDX-License-Identifier: MIT */
/*
 * bunshin test guest: shared declarations.
 *
 * The guest has two halves that live in one image and one address space:
 *   - a tiny CPL-0 kernel (kernel.c, head.S): page tables, GDT/IDT/TSS,
 *     interrupt and exception entry, a handful of system calls;
 *   - CPL-3 "user" code (everything else): ACPI parsing, APIC programming,
 *     the scenarios. It runs with every I/O port allowed (TSS I/O bitmap)
 *     on an identity map in which every page is user-accessible.
 */
#ifndef BUNSHIN_GUEST_H
#define BUNSHIN_GUEST_H

#include "defs.h"

typedef unsigned char uint8_t;
typedef unsigned short uint16_t;
typedef unsigned int uint32_t;
typedef unsigned long uint64_t;
typedef signed char int8_t;
typedef int int32_t;
typedef long int64_t;
typedef unsigned long size_t;
typedef unsigned long uintptr_t;
typedef _Bool bool;
#define true 1
#define false 0
#define NULL ((void *)0)

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define PACKED	      __attribute__((packed))
#define NORETURN      __attribute__((noreturn))

/* ---- boot information, normalized from PVH start_info or boot_params ---- */

#define E820_RAM      1
#define E820_RESERVED 2
#define E820_ACPI     3
#define E820_NVS      4
#define E820_MAX      128

struct e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
};

#define CMDLINE_MAX 4096

struct bootinfo {
	uint32_t entry; /* ENTRY_* (defs.h) */
	uint32_t e820_count;
	struct e820_entry e820[E820_MAX];
	uint64_t ram_top;    /* highest end of any RAM range */
	uint64_t mapped_top; /* what the page tables cover */
	uint64_t initrd_addr;
	uint64_t initrd_size;
	uint64_t rsdp; /* 0: not given by the loader */
	uint32_t cmdline_len;
	char cmdline[CMDLINE_MAX];
};

extern struct bootinfo g_boot;

/* ---- per-CPU state and bring-up ---- */

struct cpu {
	uint32_t index;
	uint32_t apic_id;
	uint64_t kstack_top;
	uint64_t ustack_top;
};

extern struct cpu g_cpus[MAX_CPUS];
extern volatile uint32_t ap_next_index; /* bumped by each AP in the trampoline */
extern uint8_t ap_trampoline_start[], ap_trampoline_end[];
extern uint8_t ap_tramp_gdtr[], ap_tramp_cr3[];

/* ---- interrupt frame and system calls ---- */

struct frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
	uint64_t rdi, rsi, rbp, rbx, rdx, rcx, rax;
	uint64_t vector, error;
	uint64_t rip, cs, rflags, rsp, ss;
};

enum syscall_nr {
	SYS_WAIT = 1,	  /* (u32 *p, u32 seen): halt until an interrupt if *p == seen */
	SYS_RDMSR = 2,	  /* (msr) -> value */
	SYS_WRMSR = 3,	  /* (msr, value) */
	SYS_HALT = 4,	  /* cli; hlt forever */
	SYS_POWEROFF = 5, /* ACPI power-off, then halt forever */
	SYS_RESET = 6,	  /* (method) */
	SYS_CPUID = 7,	  /* (leaf, subleaf) -> eax, ebx, ecx, edx */
	SYS_RDTSC = 8,	  /* -> the vCPU's TSC */
	SYS_MAP = 9,	  /* (phys, size): identity-map MMIO (2 MiB pages, uncached) -> 0 or -1 */
};

enum reset_method {
	RESET_ACPI = 1,
	RESET_KBD = 2,
	RESET_TRIPLE = 3,
};

static inline uint64_t syscall2(uint64_t nr, uint64_t a, uint64_t b)
{
	uint64_t ret;
	/* See syscall_gate in head.S: a #UD at a known address. */
	__asm__ volatile("call syscall_gate" : "=a"(ret) : "a"(nr), "D"(a), "S"(b) : "memory");
	return ret;
}

static inline uint64_t rdmsr_user(uint32_t msr)
{
	return syscall2(SYS_RDMSR, msr, 0);
}

static inline void wrmsr_user(uint32_t msr, uint64_t val)
{
	syscall2(SYS_WRMSR, msr, val);
}

/* Identity-maps [phys, phys + size) user-accessible and uncached where it
 * is not mapped yet (MMIO above the boot map). */
static inline bool map_mmio(uint64_t phys, uint64_t size)
{
	return syscall2(SYS_MAP, phys, size) == 0;
}

static inline void wait_change(volatile uint32_t *p, uint32_t seen)
{
	syscall2(SYS_WAIT, (uint64_t)p, seen);
}

NORETURN void halt_forever(void);
NORETURN void power_off(void);

/* Interrupt counters, indexed by vector (bumped by the CPL-0 handler). */
extern volatile uint32_t g_irq_count[256];

/* ---- port I/O and MMIO (usable at CPL 0 and, through the TSS I/O bitmap, CPL 3) ---- */

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}
static inline void outw(uint16_t port, uint16_t v)
{
	__asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}
static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}
static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline uint16_t inw(uint16_t port)
{
	uint16_t v;
	__asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline uint32_t inl(uint16_t port)
{
	uint32_t v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline uint32_t mmio_read32(uint64_t addr)
{
	return *(volatile uint32_t *)addr;
}
static inline void mmio_write32(uint64_t addr, uint32_t v)
{
	*(volatile uint32_t *)addr = v;
}
static inline void cpu_relax(void)
{
	__asm__ volatile("pause" ::: "memory");
}
static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}
/* The CPUID instruction itself: only meaningful at CPL 0 (see cpuid()). */
static inline void cpuid_raw(uint32_t leaf, uint32_t sub, uint32_t *a, uint32_t *b, uint32_t *c,
			     uint32_t *d)
{
	__asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(sub));
}

/*
 * CPUID for CPL-3 code, through a system call. Under PVM a CPL-3 CPUID is
 * not intercepted: it returns the *host's* values (host APIC IDs, host
 * feature bits). Only CPL 0 sees the vCPU's CPUID.
 */
static inline void cpuid(uint32_t leaf, uint32_t sub, uint32_t *a, uint32_t *b, uint32_t *c,
			 uint32_t *d)
{
	__asm__ volatile("call syscall_gate"
			 : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d)
			 : "a"(SYS_CPUID), "D"(leaf), "S"(sub)
			 : "memory");
}

/* The vCPU's TSC. A CPL-3 RDTSC under PVM reads the host's TSC (same rate,
 * other offset): fine for delays, wrong against kvmclock's tsc_timestamp. */
static inline uint64_t rdtsc_virt(void)
{
	return syscall2(SYS_RDTSC, 0, 0);
}

/* ---- library (lib.c) ---- */

void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

/* Output is assembled in a line buffer and written to COM1 under a lock. */
struct line {
	char buf[512];
	uint32_t len;
};
void line_init(struct line *l);
void line_str(struct line *l, const char *s);
void line_strn(struct line *l, const char *s, size_t n);
void line_chr(struct line *l, char c);
void line_dec(struct line *l, uint64_t v);
void line_hex(struct line *l, uint64_t v);
void line_kv_dec(struct line *l, const char *key, uint64_t v);
void line_kv_str(struct line *l, const char *key, const char *v);
void line_emit(struct line *l); /* appends "\n", writes, takes the serial lock */

void serial_init(void);
void serial_write(const char *s, size_t n); /* no lock */
void serial_lock(void);
void serial_unlock(void);

uint32_t crc32(const void *data, size_t n);
uint64_t tsc_hz(void);
void delay_us(uint64_t us);
bool parse_u64(const char *s, size_t n, int base, uint64_t *out);

/* Command line options: "key=value" words. */
bool opt_get(const char *key, const char **val, size_t *len);
bool opt_u64(const char *key, int base, uint64_t *out);

extern const char *g_scenario; /* for the exception line */
extern uint32_t g_scenario_len;

/* ---- ACPI (acpi.c) ---- */

struct gas {
	uint8_t space; /* 0 memory, 1 I/O */
	uint8_t bit_width;
	uint8_t bit_offset;
	uint8_t access_size;
	uint64_t addr;
};

struct irq_override {
	bool present;
	uint32_t gsi;
	uint16_t flags;
};

#define MAX_IOAPICS 8

struct acpi_info {
	const uint8_t *rsdp;
	const uint8_t *fadt;
	const uint8_t *dsdt;
	const uint8_t *madt;
	const uint8_t *mcfg; /* PCI ECAM (NULL: none) */
	const char *fail;    /* first validation failure ("reason" word), or NULL */
	char fail_table[5];
	char tables[256]; /* "FACP,APIC,..." */
	uint32_t ntables;

	/* MADT */
	uint64_t lapic_base;
	uint32_t ncpus; /* enabled */
	uint32_t cpu_apic_id[MAX_CPUS];
	uint32_t nioapics;
	struct {
		uint32_t id, addr, gsi_base;
	} ioapic[MAX_IOAPICS];
	struct irq_override isa[16];

	/* FADT */
	bool hw_reduced;
	uint16_t pm1a_cnt, pm1b_cnt;
	uint32_t pm_tmr;
	bool s5_found;
	uint8_t slp_typa, slp_typb;
	bool sleep_ctrl_valid;
	struct gas sleep_ctrl;
	bool reset_valid;
	struct gas reset_reg;
	uint8_t reset_value;
};

extern struct acpi_info g_acpi;
void acpi_init(void);
bool acpi_checksum_ok(const void *p, size_t n);

/* Raw power-off / reset steps; safe at CPL 0 (used by the kernel) and CPL 3. */
void acpi_poweroff_raw(void);
void acpi_reset_raw(void);

/* ---- APIC (apic.c) ---- */

extern bool g_x2apic;
extern uint64_t g_lapic_base;
uint32_t lapic_read(uint32_t reg);
void lapic_write(uint32_t reg, uint32_t val);
void lapic_enable(void);
void lapic_eoi_kernel(void); /* CPL 0 only */
uint32_t cpu_apic_id(void);
bool ioapic_route_isa(uint32_t isa_irq, uint8_t vector, uint32_t dest_apic_id);
void ioapic_mask_isa(uint32_t isa_irq);

#define LAPIC_ID       0x20
#define LAPIC_VER      0x30
#define LAPIC_TPR      0x80
#define LAPIC_EOI      0xb0
#define LAPIC_SVR      0xf0
#define LAPIC_ESR      0x280
#define LAPIC_ICR_LO   0x300
#define LAPIC_ICR_HI   0x310
#define LAPIC_LVT_TMR  0x320
#define LAPIC_TMR_INIT 0x380
#define LAPIC_TMR_CUR  0x390
#define LAPIC_TMR_DIV  0x3e0

/* ---- scenarios ---- */

void run_boot(void);
void run_smp(void);
void run_timer(void);
void run_serial_echo(void);
void run_poweroff(void);
void run_reboot(void);
void run_pci(void);
void run_clock_watch(void);
void run_virtio_rng(void);
void run_virtio_blk(void);
void run_virtio_net(void);
void run_virtio_net_bench(void);
void run_virtio_console(void);
void run_virtio_vsock(void);
void run_virtio_balloon(void);
void run_virtio_abuse(void);
void run_virtio_reset(void);
void run_blk_bench(void);
void run_mem_writer(void);
void run_blk_verify(void);
void serial_rx_isr(void); /* CPL 0: drains the UART into the RX ring */
/* Waits for one non-empty serial line (interrupt-driven); returns its length. */
uint32_t serial_read_line(char *buf, uint32_t max);
void run_vmgenid(void);
void run_identity(void);
void run_dhcp(void);
void run_netprobe(void);
void vmgenid_sci_isr(void); /* CPL 0: clears GPE0 status, notes the bits */
void ap_user_main(uint64_t index);

/* Reports "name=<scenario> result=fail reason=<reason>" and powers off. */
NORETURN void fail_and_poweroff(const char *name, const char *reason);

#endif
