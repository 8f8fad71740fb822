/* SPDX-License-Identifier: MIT */
/*
 * The CPL-0 part of the guest: boot-info normalization, page tables,
 * IDT/TSS, interrupt dispatch and the system calls. Everything here is
 * emulated on the development machines, so it does as little as it can
 * and hands over to CPL 3 (user_main) quickly.
 */
#include "guest.h"

struct bootinfo g_boot;
struct cpu g_cpus[MAX_CPUS];
volatile uint32_t g_irq_count[256];

struct idt_gate {
	uint16_t off0;
	uint16_t sel;
	uint8_t ist;
	uint8_t type;
	uint16_t off1;
	uint32_t off2;
	uint32_t zero;
} PACKED;

struct tss {
	uint32_t rsvd0;
	uint64_t rsp0, rsp1, rsp2;
	uint64_t rsvd1;
	uint64_t ist[7];
	uint64_t rsvd2;
	uint16_t rsvd3;
	uint16_t iomap_base;
	uint8_t pad[24]; /* 128-byte stride */
} PACKED;

struct desc_ptr {
	uint16_t limit;
	uint64_t base;
} PACKED;

extern uint64_t pml4[512], pdpt[512], pd_low[4 * 512], pd_pool[PD_POOL * 512];
extern uint8_t gdt[];
extern struct desc_ptr gdt_desc;
extern struct idt_gate idt[256];
extern struct tss tss_array[MAX_CPUS];
extern uint8_t io_bitmap[8192 + 16];
extern uint8_t isr_stubs[];
extern uint8_t bsp_kstack_top[], bsp_ustack_top[], ap_kstacks[], ap_ustacks[];
extern uint8_t __image_start[], _end[];
extern uint8_t syscall_gate_ud2[];

NORETURN void enter_user(void (*fn)(uint64_t), uint64_t rsp, uint64_t arg);
void user_main(uint64_t arg);
void kmain(uint32_t entry, uint64_t info);
void ap_kmain(uint32_t index);
void trap_dispatch(struct frame *f);

#define HVM_START_MAGIC 0x336ec578

struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
};

struct hvm_memmap_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
};

static inline uint64_t rdmsr(uint32_t msr)
{
	uint32_t lo, hi;
	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return ((uint64_t)hi << 32) | lo;
}

static inline void wrmsr(uint32_t msr, uint64_t v)
{
	__asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}

static bool has_1g_pages(void)
{
	uint32_t a, b, c, d;

	cpuid_raw(0x80000000, 0, &a, &b, &c, &d);
	if (a < 0x80000001)
		return false;
	cpuid_raw(0x80000001, 0, &a, &b, &c, &d);
	return (d >> 26) & 1;
}

/* The 64-bit entry runs on the loader's tables: build ours (first 4 GiB). */
static void pt_build_low(bool big)
{
	pml4[0] = (uint64_t)pdpt | PTE_P | PTE_W | PTE_U;
	for (uint64_t i = 0; i < 4; i++) {
		if (big)
			pdpt[i] = (i << 30) | PTE_P | PTE_W | PTE_U | PTE_PS;
		else
			pdpt[i] = (uint64_t)&pd_low[i * 512] | PTE_P | PTE_W | PTE_U;
	}
	if (!big)
		for (uint64_t i = 0; i < 2048; i++)
			pd_low[i] = (i << 21) | PTE_P | PTE_W | PTE_U | PTE_PS;
}

/* Extends the identity map to the highest RAM end (above 4 GiB). */
static void pt_extend(bool big)
{
	uint64_t top = (g_boot.ram_top + (1ULL << 30) - 1) >> 30; /* in GiB */
	uint64_t gib;

	if (top > 512)
		top = 512;
	for (gib = 4; gib < top; gib++) {
		if (big) {
			pdpt[gib] = (gib << 30) | PTE_P | PTE_W | PTE_U | PTE_PS;
			continue;
		}
		if (gib - 4 >= PD_POOL)
			break;
		uint64_t *pd = &pd_pool[(gib - 4) * 512];
		for (uint64_t i = 0; i < 512; i++)
			pd[i] = (gib << 30) | (i << 21) | PTE_P | PTE_W | PTE_U | PTE_PS;
		pdpt[gib] = (uint64_t)pd | PTE_P | PTE_W | PTE_U;
	}
	g_boot.mapped_top = (gib < 4 ? 4 : gib) << 30;
}

/* Page-table pages for SYS_MAP (MMIO above the boot map, e.g. 64-bit BARs). */
static uint64_t map_pool[MAP_POOL][512] __attribute__((aligned(4096)));
static uint32_t map_pool_used;

static uint64_t *pt_next(uint64_t *e)
{
	uint64_t *t;

	if (*e & PTE_P)
		return (uint64_t *)(*e & 0x000ffffffffff000ULL);
	if (map_pool_used >= MAP_POOL)
		return NULL;
	t = map_pool[map_pool_used++];
	memset(t, 0, 4096);
	*e = (uint64_t)t | PTE_P | PTE_W | PTE_U;
	return t;
}

/* Identity-maps [phys, phys + size) with uncached 2 MiB pages where nothing
 * is mapped yet. Returns 0, or -1 when out of table pages or address. */
static int64_t map_range(uint64_t phys, uint64_t size)
{
	uint64_t a = phys & ~((1ULL << 21) - 1), end = phys + size;

	if (size == 0 || end < phys || end > (1ULL << 46))
		return -1;
	for (; a < end; a += 1ULL << 21) {
		uint64_t *l3 = pt_next(&pml4[(a >> 39) & 511]);
		if (!l3)
			return -1;
		uint64_t *e3 = &l3[(a >> 30) & 511];
		if ((*e3 & PTE_P) && (*e3 & PTE_PS))
			continue;
		uint64_t *l2 = pt_next(e3);
		if (!l2)
			return -1;
		uint64_t *e2 = &l2[(a >> 21) & 511];
		if (!(*e2 & PTE_P))
			*e2 = a | PTE_P | PTE_W | PTE_U | PTE_PS | PTE_PCD | PTE_PWT;
	}
	__asm__ volatile("mov %%cr3, %%rax; mov %%rax, %%cr3" ::: "rax", "memory");
	return 0;
}

static void copy_cmdline(uint64_t paddr, uint32_t max)
{
	const char *s = (const char *)paddr;
	uint32_t n = 0;

	if (paddr && paddr < (4ULL << 30)) {
		if (max > CMDLINE_MAX - 1)
			max = CMDLINE_MAX - 1;
		while (n < max && s[n]) {
			g_boot.cmdline[n] = s[n];
			n++;
		}
	}
	g_boot.cmdline[n] = 0;
	g_boot.cmdline_len = n;
}

static void add_e820(uint64_t addr, uint64_t size, uint32_t type)
{
	struct e820_entry *e;

	if (g_boot.e820_count >= E820_MAX)
		return;
	e = &g_boot.e820[g_boot.e820_count++];
	e->addr = addr;
	e->size = size;
	e->type = type;
	if (type == E820_RAM && addr + size > g_boot.ram_top)
		g_boot.ram_top = addr + size;
}

static bool boot_from_pvh(uint64_t info)
{
	const struct hvm_start_info *si = (const void *)info;

	if (si->magic != HVM_START_MAGIC)
		return false;
	copy_cmdline(si->cmdline_paddr, CMDLINE_MAX - 1);
	if (si->nr_modules >= 1 && si->modlist_paddr) {
		const struct hvm_modlist_entry *m = (const void *)si->modlist_paddr;
		g_boot.initrd_addr = m->paddr;
		g_boot.initrd_size = m->size;
	}
	g_boot.rsdp = si->rsdp_paddr;
	if (si->version >= 1 && si->memmap_paddr) {
		const struct hvm_memmap_entry *m = (const void *)si->memmap_paddr;
		for (uint32_t i = 0; i < si->memmap_entries; i++)
			add_e820(m[i].addr, m[i].size, m[i].type);
	}
	return true;
}

static uint32_t le32(const uint8_t *p)
{
	return *(const uint32_t *)p;
}

static void boot_from_linux(uint64_t bp)
{
	const uint8_t *p = (const uint8_t *)bp;
	uint32_t n = p[0x1e8];
	uint16_t version = *(const uint16_t *)(p + 0x206);
	uint32_t cmdmax = 255;

	if (*(const uint32_t *)(p + 0x1e4) == BZ16_MAGIC)
		g_boot.entry = ENTRY_BZ16;
	if (version >= 0x206)
		cmdmax = *(const uint32_t *)(p + 0x238);
	copy_cmdline(le32(p + 0x228) | (uint64_t)le32(p + 0x0c8) << 32, cmdmax);
	g_boot.initrd_addr = le32(p + 0x218) | (uint64_t)le32(p + 0x0c0) << 32;
	g_boot.initrd_size = le32(p + 0x21c) | (uint64_t)le32(p + 0x0c4) << 32;
	g_boot.rsdp = *(const uint64_t *)(p + 0x070);
	if (n > E820_MAX)
		n = E820_MAX;
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *e = p + 0x2d0 + 20 * i;
		add_e820(*(const uint64_t *)e, *(const uint64_t *)(e + 8),
			 *(const uint32_t *)(e + 16));
	}
}

static void set_gate(int vec, uint64_t handler, uint8_t type)
{
	struct idt_gate *g = &idt[vec];

	g->off0 = handler & 0xffff;
	g->sel = SEL_KCODE64;
	g->ist = 0;
	g->type = type;
	g->off1 = (handler >> 16) & 0xffff;
	g->off2 = handler >> 32;
	g->zero = 0;
}

static void load_idt(void)
{
	struct desc_ptr d = {.limit = sizeof(struct idt_gate) * 256 - 1, .base = (uint64_t)idt};

	__asm__ volatile("lidt %0" : : "m"(d));
}

/*
 * Per-CPU TSS (RSP0 for interrupts from CPL 3) and its GDT descriptor. All
 * TSSs share one I/O permission bitmap that allows every port, which is how
 * CPL-3 code gets port I/O: PVM drops IOPL from a CPL-3 RFLAGS but honors
 * the bitmap. The bitmap sits right after the TSS array, within the 64 KiB
 * that iomap_base can reach.
 */
static void load_tss(uint32_t index, uint64_t kstack_top)
{
	struct tss *t = &tss_array[index];
	uint64_t base = (uint64_t)t;
	uint64_t *d = (uint64_t *)(gdt + SEL_TSS0 + 16 * index);
	uint16_t sel = SEL_TSS0 + 16 * index;

	uint64_t iomap = (uint64_t)io_bitmap - base;
	uint64_t limit = iomap + 8192; /* the bitmap and its 0xff terminator */

	memset(t, 0, sizeof(*t));
	t->rsp0 = kstack_top;
	t->iomap_base = (uint16_t)iomap;
	d[0] = (limit & 0xffff) | (base & 0xffffff) << 16 | 0x89ULL << 40 |
	       ((limit >> 16) & 0xf) << 48 | ((base >> 24) & 0xff) << 56;
	d[1] = base >> 32;
	__asm__ volatile("ltr %0" : : "r"(sel));
}

static void pic_disable(void)
{
	/* Remap the 8259s away from the exception vectors, then mask them. */
	outb(0x20, 0x11);
	outb(0xa0, 0x11);
	outb(0x21, 0x20);
	outb(0xa1, 0x28);
	outb(0x21, 0x04);
	outb(0xa1, 0x02);
	outb(0x21, 0x01);
	outb(0xa1, 0x01);
	outb(0x21, 0xff);
	outb(0xa1, 0xff);
}

void kmain(uint32_t entry, uint64_t info)
{
	bool big = has_1g_pages();
	bool ok = true;

	if (entry == ENTRY_BZ64)
		pt_build_low(big);
	__asm__ volatile("mov %0, %%cr4" : : "r"(0x20UL));
	__asm__ volatile("mov %0, %%cr3" : : "r"((uint64_t)pml4) : "memory");

	serial_init();
	g_boot.entry = entry;
	if (entry == ENTRY_PVH)
		ok = boot_from_pvh(info);
	else
		boot_from_linux(info);
	pt_extend(big);
	__asm__ volatile("mov %0, %%cr3" : : "r"((uint64_t)pml4) : "memory");

	for (int v = 0; v < 256; v++)
		set_gate(v, (uint64_t)isr_stubs + 16 * v, 0x8e);
	load_idt();
	memset(io_bitmap, 0, 8192);
	memset(io_bitmap + 8192, 0xff, 16);
	load_tss(0, (uint64_t)bsp_kstack_top);
	pic_disable();

	g_cpus[0].index = 0;
	g_cpus[0].kstack_top = (uint64_t)bsp_kstack_top;
	g_cpus[0].ustack_top = (uint64_t)bsp_ustack_top;
	if (!ok) {
		static const char msg[] = "BUNSHIN-TEST name=boot result=fail "
					  "reason=bad-start-info\n";
		serial_write(msg, sizeof(msg) - 1);
		halt_forever();
	}
	enter_user(user_main, (uint64_t)bsp_ustack_top, 0);
}

/* An AP, fresh from the trampoline: 64-bit mode on the BSP's page tables. */
void ap_kmain(uint32_t index)
{
	struct cpu *c = &g_cpus[index];

	c->index = index;
	c->kstack_top = (uint64_t)ap_kstacks + (uint64_t)index * KSTACK_SIZE;
	c->ustack_top = (uint64_t)ap_ustacks + (uint64_t)index * USTACK_SIZE;
	load_idt();
	load_tss(index, c->kstack_top);
	enter_user(ap_user_main, c->ustack_top, index);
}

NORETURN void halt_forever(void)
{
	for (;;)
		__asm__ volatile("cli; hlt");
}

static NORETURN void fatal_exception(struct frame *f)
{
	struct line l;
	uint64_t cr2;

	__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
	line_init(&l);
	line_str(&l, "BUNSHIN-TEST name=");
	line_strn(&l, g_scenario ? g_scenario : "none", g_scenario ? g_scenario_len : 4);
	line_str(&l, " result=fail reason=exception");
	line_kv_dec(&l, "vector", f->vector);
	line_str(&l, " rip=");
	line_hex(&l, f->rip);
	line_str(&l, " error=");
	line_hex(&l, f->error);
	if (f->vector == 14) {
		line_str(&l, " cr2=");
		line_hex(&l, cr2);
	}
	line_kv_dec(&l, "cpl", f->cs & 3);
	line_str(&l, " rflags=");
	line_hex(&l, f->rflags);
	line_chr(&l, '\n');
	serial_write(l.buf, l.len);
	acpi_poweroff_raw();
	halt_forever();
}

static void do_syscall(struct frame *f)
{
	switch (f->rax) {
	case SYS_WAIT:
		if (*(volatile uint32_t *)f->rdi == (uint32_t)f->rsi)
			__asm__ volatile("sti; hlt; cli" ::: "memory");
		f->rax = 0;
		break;
	case SYS_RDMSR:
		f->rax = rdmsr(f->rdi);
		break;
	case SYS_WRMSR:
		wrmsr(f->rdi, f->rsi);
		f->rax = 0;
		break;
	case SYS_POWEROFF:
		acpi_poweroff_raw();
		halt_forever();
	case SYS_RESET:
		if (f->rdi == RESET_ACPI) {
			acpi_reset_raw();
		} else if (f->rdi == RESET_KBD) {
			outb(0x64, 0xfe);
		} else if (f->rdi == RESET_TRIPLE) {
			struct desc_ptr d = {0, 0};
			__asm__ volatile("lidt %0; ud2" : : "m"(d));
		}
		f->rax = 0;
		break;
	case SYS_CPUID: {
		uint32_t a, b, c, d;
		cpuid_raw((uint32_t)f->rdi, (uint32_t)f->rsi, &a, &b, &c, &d);
		f->rax = a;
		f->rbx = b;
		f->rcx = c;
		f->rdx = d;
		break;
	}
	case SYS_RDTSC:
		f->rax = rdtsc();
		break;
	case SYS_MAP:
		f->rax = (uint64_t)map_range(f->rdi, f->rsi);
		break;
	case SYS_HALT:
	default:
		halt_forever();
	}
}

void trap_dispatch(struct frame *f)
{
	uint64_t v = f->vector;

	if (v == 6 && (f->cs & 3) == 3 && f->rip == (uint64_t)syscall_gate_ud2) {
		f->rip += 2;
		do_syscall(f);
		return;
	}
	if (v < 32)
		fatal_exception(f);
	if (v == VEC_SPURIOUS)
		return;
	g_irq_count[v]++;
	if (v == VEC_SERIAL)
		serial_rx_isr();
	if (v == VEC_SCI)
		vmgenid_sci_isr();
	lapic_eoi_kernel();
}
