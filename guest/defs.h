/* SPDX-License-Identifier: MIT */
/* Constants shared by the guest's C and assembly sources. */
#ifndef BUNSHIN_GUEST_DEFS_H
#define BUNSHIN_GUEST_DEFS_H

#define LOAD_ADDR 0x100000 /* where the image runs (bzImage pref_address) */

/* GDT selectors. TSS descriptors (16 bytes each) follow, one per CPU. */
#define SEL_KCODE32 0x08
#define SEL_KCODE64 0x10
#define SEL_KDATA   0x18
#define SEL_UCODE64 0x23 /* 0x20 | RPL 3 */
#define SEL_UDATA   0x2b /* 0x28 | RPL 3 */
#define SEL_TSS0    0x30
#define GDT_FIXED   6 /* descriptors before the first TSS */

#define MAX_CPUS    256
#define KSTACK_SIZE 4096  /* CPL-0 stack of an AP */
#define USTACK_SIZE 4096  /* CPL-3 stack of an AP */
#define BSP_KSTACK  16384 /* CPL-0 stack of the BSP */
#define BSP_USTACK  32768 /* CPL-3 stack of the BSP */

/* Real-mode AP trampoline: a page below 1 MiB; SIPI vector = ADDR >> 12. */
#define TRAMPOLINE_ADDR 0x70000

/* Interrupt vectors. */
#define VEC_LAPIC_TIMER 0x30
#define VEC_PIT		0x31
#define VEC_SERIAL	0x34
#define VEC_SCI		0x35 /* ACPI SCI (test=vmgenid) */
#define VEC_VIRTIO_CFG	0x40 /* virtio MSI-X: config change */
#define VEC_VIRTIO_Q0	0x41 /* virtio MSI-X: queue N -> VEC_VIRTIO_Q0 + N */
#define VEC_SPURIOUS	0xff

/* How the guest was entered (struct bootinfo.entry). */
#define ENTRY_PVH  1 /* PVH 32-bit entry, hvm_start_info in EBX */
#define ENTRY_BZ64 2 /* Linux 64-bit entry (load address + 0x200), RSI = boot_params */
#define ENTRY_BZ32 3 /* Linux 32-bit entry (code32_start), ESI = boot_params */
#define ENTRY_BZ16 4 /* our real-mode setup code, then the 32-bit entry */

/* Page-directory pool for RAM above 4 GiB when 1 GiB pages are missing. */
#define PD_POOL 28

/* Marker that our real-mode setup code leaves in boot_params.scratch. */
#define BZ16_MAGIC 0x36315a42 /* "BZ16" */

/* Page table entry bits. */
#define PTE_P	0x1
#define PTE_W	0x2
#define PTE_U	0x4
#define PTE_PWT 0x8
#define PTE_PCD 0x10
#define PTE_PS	0x80

/* Page-table pages for MMIO mapped above the boot map (SYS_MAP). */
#define MAP_POOL 8

#endif
