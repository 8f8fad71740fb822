/* SPDX-License-Identifier: MIT */
/*
 * Entry points, descriptor tables, interrupt entry and the AP trampoline.
 *
 * Everything here runs at CPL 0, which on the development machines is
 * emulated one instruction at a time: keep it short and plain (no SSE,
 * no xsave, no int3).
 *
 * Entry points (all end up in kmain(entry, info) in 64-bit mode):
 *   LOAD_ADDR + 0x000  Linux 32-bit entry (code32_start), ESI = boot_params
 *   LOAD_ADDR + 0x200  Linux 64-bit entry, RSI = boot_params
 *   pvh_start32        PVH entry (XEN_ELFNOTE_PHYS32_ENTRY), EBX = start_info
 */
#include "defs.h"

#define MSR_EFER  0xc0000080
#define EFER_LME  0x100
#define CR0_PE    0x1
#define CR0_PG    0x80000000
#define CR0_CD_NW 0x60000000
#define CR4_PAE   0x20
#define PT_FLAGS  (PTE_P | PTE_W | PTE_U)
#define PT_LARGE  (PTE_P | PTE_W | PTE_U | PTE_PS)

/*
 * The first thing every entry point does: one '\n' on COM1. It costs one
 * exit and lets a benchmark see the exact moment the first guest
 * instruction ran, in any VMM. Clobbers AL and DX only, which no boot
 * protocol uses for its arguments.
 */
.macro ENTRY_MARK
	movw	$0x3f8, %dx
	movb	$0x0a, %al
	outb	%al, %dx
.endm

/* ------------------------------------------------------------------ */
	.section .head, "ax"
	.code32
	.globl	bz32_entry
bz32_entry:
	ENTRY_MARK
	cli
	cld
	movl	$ENTRY_BZ32, %ebp
	jmp	common32

	.org	0x200
	.code64
	.globl	bz64_entry
bz64_entry:
	ENTRY_MARK
	cli
	cld
	movq	$bsp_kstack_top, %rsp	/* the 64-bit protocol gives no stack */
	lgdt	gdt_desc(%rip)
	pushq	$SEL_KCODE64
	leaq	1f(%rip), %rax
	pushq	%rax
	lretq
1:	movl	$SEL_KDATA, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	xorl	%eax, %eax
	movl	%eax, %fs
	movl	%eax, %gs
	movq	%rsi, %r12
	movl	$__bss_start, %edi
	movl	$__bss_end, %ecx
	subl	%edi, %ecx
	shrl	$3, %ecx
	xorl	%eax, %eax
	rep stosq
	movl	$ENTRY_BZ64, %edi
	movq	%r12, %rsi
	call	kmain
	jmp	dead64

/* ------------------------------------------------------------------ */
	.text
	.code32
	.globl	pvh_start32
pvh_start32:
	ENTRY_MARK
	cli
	cld
	movl	$ENTRY_PVH, %ebp
	movl	%ebx, %esi
	/* fall through */

/* 32-bit protected mode, paging off, flat segments. EBP = entry, ESI = info. */
common32:
	lgdt	gdt_desc
	ljmp	$SEL_KCODE32, $1f
1:	movl	$SEL_KDATA, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	xorl	%eax, %eax
	movl	%eax, %fs
	movl	%eax, %gs

	/* Zero .bss (holds the PML4 and PDPT). */
	movl	$__bss_start, %edi
	movl	$__bss_end, %ecx
	subl	%edi, %ecx
	shrl	$2, %ecx
	xorl	%eax, %eax
	rep stosl

	/* Identity map of the first 4 GiB, user-accessible. */
	movl	$(pdpt + PT_FLAGS), pml4
	movl	$0x80000000, %eax
	cpuid
	cmpl	$0x80000001, %eax
	jb	2f
	movl	$0x80000001, %eax
	cpuid
	btl	$26, %edx		/* pdpe1gb */
	jnc	2f
	movl	$(PT_LARGE), pdpt
	movl	$(0x40000000 + PT_LARGE), pdpt + 8
	movl	$(0x80000000 + PT_LARGE), pdpt + 16
	movl	$(0xc0000000 + PT_LARGE), pdpt + 24
	jmp	3f
2:	movl	$pd_low, %edi
	movl	$(PT_LARGE), %eax
	movl	$2048, %ecx
4:	movl	%eax, (%edi)
	movl	$0, 4(%edi)
	addl	$0x200000, %eax
	addl	$8, %edi
	decl	%ecx
	jnz	4b
	movl	$(pd_low + PT_FLAGS), pdpt
	movl	$(pd_low + 0x1000 + PT_FLAGS), pdpt + 8
	movl	$(pd_low + 0x2000 + PT_FLAGS), pdpt + 16
	movl	$(pd_low + 0x3000 + PT_FLAGS), pdpt + 24

	/* Long mode. */
3:	movl	$CR4_PAE, %eax
	movl	%eax, %cr4
	movl	$pml4, %eax
	movl	%eax, %cr3
	movl	$MSR_EFER, %ecx
	rdmsr
	orl	$EFER_LME, %eax
	wrmsr
	movl	%cr0, %eax
	andl	$~CR0_CD_NW, %eax
	orl	$(CR0_PG | CR0_PE), %eax
	movl	%eax, %cr0
	ljmp	$SEL_KCODE64, $long64

	.code64
long64:
	movq	$bsp_kstack_top, %rsp
	movl	%ebp, %edi
	movl	%esi, %esi
	call	kmain
dead64:
	cli
	hlt
	jmp	dead64

/* ------------------------------------------------------------------ */
/*
 * Drop to CPL 3: enter_user(fn, user_rsp, arg) runs fn(arg). Port I/O at
 * CPL 3 is allowed by the TSS I/O permission bitmap, not by IOPL: PVM
 * strips IOPL from a CPL-3 RFLAGS but honors the bitmap.
 */
	.globl	enter_user
enter_user:
	pushq	$SEL_UDATA
	pushq	%rsi
	pushq	$0x202			/* IF, reserved bit 1; IOPL 0 (see load_tss) */
	pushq	$SEL_UCODE64
	leaq	user_thunk(%rip), %rax
	pushq	%rax
	movq	%rdi, %rax
	movq	%rdx, %rdi
	iretq

user_thunk:				/* CPL 3 */
	call	*%rax
	movl	$4, %eax		/* SYS_HALT */
	call	syscall_gate
	jmp	user_thunk

/* ------------------------------------------------------------------ */
/*
 * System call gate (CPL 3 -> 0). On the development machines (KVM under
 * PVM) neither "int $n" from CPL 3 (the guest gets #UD: the emulator cannot
 * deliver software interrupts in protected mode) nor SYSCALL (the handler
 * was observed running with CPL 3) works, but exceptions are delivered
 * properly. So a system call is the #UD raised by this one ud2: the
 * handler recognizes its address, skips it and returns with IRETQ.
 * RAX = number and result (SYS_CPUID also returns RBX, RCX, RDX),
 * RDI/RSI = arguments; every other register is preserved.
 */
	.globl	syscall_gate, syscall_gate_ud2
syscall_gate:
syscall_gate_ud2:
	ud2
	ret

/* ------------------------------------------------------------------ */
/* Interrupt and exception entry: one 16-byte stub per vector. */
	.align	16
	.globl	isr_stubs
isr_stubs:
	.set	vec, 0
	.rept	256
	.align	16
	.if (vec == 8) || ((vec >= 10) && (vec <= 14)) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
	.else
	pushq	$0
	.endif
	pushq	$vec
	jmp	isr_common
	.set	vec, vec + 1
	.endr

isr_common:
	pushq	%rax
	pushq	%rcx
	pushq	%rdx
	pushq	%rbx
	pushq	%rbp
	pushq	%rsi
	pushq	%rdi
	pushq	%r8
	pushq	%r9
	pushq	%r10
	pushq	%r11
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	movq	%rsp, %rdi
	cld
	call	trap_dispatch
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%r11
	popq	%r10
	popq	%r9
	popq	%r8
	popq	%rdi
	popq	%rsi
	popq	%rbp
	popq	%rbx
	popq	%rdx
	popq	%rcx
	popq	%rax
	addq	$16, %rsp
	iretq

/* ------------------------------------------------------------------ */
/*
 * AP trampoline, copied to TRAMPOLINE_ADDR and started by SIPI in real mode
 * with CS = TRAMPOLINE_ADDR >> 4, IP = 0. The BSP fills in ap_tramp_gdtr
 * (the kernel GDT) and ap_tramp_cr3 (the kernel PML4, below 4 GiB).
 */
#define TRAMP(sym) (TRAMPOLINE_ADDR + (sym) - ap_trampoline_start)

	.code16
	.align	16
	.globl	ap_trampoline_start
ap_trampoline_start:
	cli
	cld
	movw	%cs, %ax
	movw	%ax, %ds
	lgdtl	ap_tramp_gdtr - ap_trampoline_start
	movl	%cr0, %eax
	andl	$~CR0_CD_NW, %eax
	orl	$CR0_PE, %eax
	movl	%eax, %cr0
	ljmpl	$SEL_KCODE32, $TRAMP(ap_tramp32)

	.code32
ap_tramp32:
	movl	$SEL_KDATA, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	xorl	%eax, %eax
	movl	%eax, %fs
	movl	%eax, %gs
	movl	$CR4_PAE, %eax
	movl	%eax, %cr4
	movl	TRAMP(ap_tramp_cr3), %eax
	movl	%eax, %cr3
	movl	$MSR_EFER, %ecx
	rdmsr
	orl	$EFER_LME, %eax
	wrmsr
	movl	%cr0, %eax
	orl	$CR0_PG, %eax
	movl	%eax, %cr0
	ljmp	$SEL_KCODE64, $TRAMP(ap_tramp64)

	.code64
ap_tramp64:
	movl	$1, %eax
	lock xaddl %eax, ap_next_index
	cmpl	$MAX_CPUS, %eax
	jae	1f
	movl	%eax, %edi
	movl	%eax, %ecx
	shlq	$12, %rcx		/* index * KSTACK_SIZE: top of slot index - 1 */
	addq	$ap_kstacks, %rcx
	movq	%rcx, %rsp
	movq	$ap_kmain, %rax
	call	*%rax
1:	cli
	hlt
	jmp	1b

	.align	8
	.globl	ap_tramp_gdtr
ap_tramp_gdtr:
	.word	0
	.long	0
	.align	4
	.globl	ap_tramp_cr3
ap_tramp_cr3:
	.long	0
	.globl	ap_trampoline_end
ap_trampoline_end:

/* ------------------------------------------------------------------ */
	.section .note.Xen, "a", @note
	.align	4
	.long	4			/* namesz: "Xen\0" */
	.long	4			/* descsz */
	.long	18			/* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz	"Xen"
	.align	4
	.long	pvh_start32

/* ------------------------------------------------------------------ */
	.data
	.align	16
	.globl	gdt
gdt:
	.quad	0
	.quad	0x00cf9a000000ffff	/* 0x08 kernel code, 32-bit */
	.quad	0x00af9a000000ffff	/* 0x10 kernel code, 64-bit */
	.quad	0x00cf92000000ffff	/* 0x18 kernel data */
	.quad	0x00affa000000ffff	/* 0x20 user code, 64-bit, DPL 3 */
	.quad	0x00cff2000000ffff	/* 0x28 user data, DPL 3 */
	.fill	MAX_CPUS * 2, 8, 0	/* 0x30.. one 16-byte TSS descriptor per CPU */
gdt_end:
	.align	8
	.globl	gdt_desc
gdt_desc:
	.word	gdt_end - gdt - 1
	.quad	gdt

	.globl	ap_next_index
	.align	4
ap_next_index:
	.long	1

/* ------------------------------------------------------------------ */
	.bss
	.align	4096
	.globl	pml4, pdpt
pml4:	.skip	4096
pdpt:	.skip	4096

/* Not zeroed at boot: every byte is written before it is read. */
	.section .noinit, "aw", @nobits
	.align	4096
	.globl	pd_low, pd_pool, idt, tss_array, io_bitmap
pd_low:	.skip	4 * 4096
pd_pool: .skip	PD_POOL * 4096
idt:	.skip	4096
tss_array: .skip MAX_CPUS * 128
io_bitmap: .skip 8192 + 16		/* shared by every TSS: all ports allowed */
	.align	16
	.globl	bsp_kstack_top, bsp_ustack_top, ap_kstacks, ap_ustacks
	.skip	BSP_KSTACK
bsp_kstack_top:
	.skip	BSP_USTACK
bsp_ustack_top:
ap_kstacks: .skip (MAX_CPUS - 1) * KSTACK_SIZE
ap_ustacks: .skip (MAX_CPUS - 1) * USTACK_SIZE

	.section .note.GNU-stack, "", @progbits
