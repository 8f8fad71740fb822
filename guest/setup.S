/* SPDX-License-Identifier: MIT */
/*
 * bzImage setup sectors: the Linux boot protocol 2.15 header and a small
 * real-mode setup routine (what QEMU's -kernel and other BIOS-style loaders
 * run). The routine builds a zero page (boot_params) with the BIOS e820 map,
 * switches to 32-bit protected mode and jumps to code32_start with
 * ESI = boot_params, as the 32-bit boot protocol describes.
 *
 * Setup segment layout (offsets from its start):
 *   0x0000-0x03ff  this code (setup_sects = 1)
 *   0x1000-0x1fff  the zero page we hand on
 *   0x2000-0x2fff  stack
 */
#include "defs.h"

#define BP	   0x1000
#define STACK_TOP  0x3000
#define SMAP	   0x534d4150
#define HDR_END	   0x26c

	.section .setup, "ax"
	.code16
	.globl	setup_start
setup_start:
	.org	0x1f1
	.byte	__setup_sects		/* 0x1f1 setup_sects */
	.word	0			/* 0x1f2 root_flags */
	.long	KERNEL_SYSSIZE		/* 0x1f4 syssize (16-byte units) */
	.word	0			/* 0x1f8 ram_size */
	.word	0xffff			/* 0x1fa vid_mode: normal */
	.word	0			/* 0x1fc root_dev */
	.word	0xaa55			/* 0x1fe boot_flag */
	.byte	0xeb			/* 0x200 jump to the setup code */
	.byte	start_of_setup - 1f
1:	.ascii	"HdrS"			/* 0x202 header */
	.word	0x020f			/* 0x206 version 2.15 */
	.long	0			/* 0x208 realmode_swtch */
	.word	0x1000			/* 0x20c start_sys_seg */
	.word	kernel_version - 0x200	/* 0x20e kernel_version */
	.byte	0			/* 0x210 type_of_loader */
	.byte	0x01			/* 0x211 loadflags: LOADED_HIGH */
	.word	0			/* 0x212 setup_move_size */
	.long	LOAD_ADDR		/* 0x214 code32_start */
	.long	0			/* 0x218 ramdisk_image */
	.long	0			/* 0x21c ramdisk_size */
	.long	0			/* 0x220 bootsect_kludge */
	.word	0			/* 0x224 heap_end_ptr */
	.byte	0			/* 0x226 ext_loader_ver */
	.byte	0			/* 0x227 ext_loader_type */
	.long	0			/* 0x228 cmd_line_ptr */
	.long	0x7fffffff		/* 0x22c initrd_addr_max */
	.long	LOAD_ADDR		/* 0x230 kernel_alignment */
	.byte	0			/* 0x234 relocatable_kernel */
	.byte	20			/* 0x235 min_alignment (log2) */
	.word	0x0001			/* 0x236 xloadflags: XLF_KERNEL_64 */
	.long	4095			/* 0x238 cmdline_size */
	.long	0			/* 0x23c hardware_subarch */
	.quad	0			/* 0x240 hardware_subarch_data */
	.long	0			/* 0x248 payload_offset */
	.long	0			/* 0x24c payload_length */
	.quad	0			/* 0x250 setup_data */
	.quad	LOAD_ADDR		/* 0x258 pref_address */
	.long	KERNEL_INIT_SIZE	/* 0x260 init_size */
	.long	0			/* 0x264 handover_offset */
	.long	0			/* 0x268 kernel_info_offset */
	.org	HDR_END		/* errors out if the header grew past 0x26c */

/* Entered with CS = segment + 0x20, IP = 0; DS = ES = SS = segment. */
start_of_setup:
	cli
	cld
	movw	%ds, %ax
	pushw	%ax
	pushw	$2f
	lretw				/* CS = segment, so labels are offsets */
2:	movw	%ax, %es
	movw	%ax, %ss
	movw	$STACK_TOP, %sp

	/* A clean zero page carrying the (loader-updated) setup header. */
	movw	$BP, %di
	xorw	%ax, %ax
	movw	$2048, %cx
	rep stosw
	movw	$0x1f1, %si
	movw	$(BP + 0x1f1), %di
	movw	$(HDR_END - 0x1f1), %cx
	rep movsb

	/* BIOS memory map (int 0x15, e820) into boot_params.e820_table. */
	movw	$(BP + 0x2d0), %di
	xorl	%ebx, %ebx
	xorw	%bp, %bp
3:	movl	$0xe820, %eax
	movl	$20, %ecx
	movl	$SMAP, %edx
	int	$0x15
	jc	4f
	cmpl	$SMAP, %eax
	jne	4f
	incw	%bp
	addw	$20, %di
	cmpw	$128, %bp
	jae	4f
	testl	%ebx, %ebx
	jnz	3b
4:	movw	%bp, %ax
	movb	%al, BP + 0x1e8		/* e820_entries */
	movl	$BZ16_MAGIC, BP + 0x1e4	/* scratch: tells the kernel how it came */

	/* Fast A20. */
	inb	$0x92, %al
	orb	$2, %al
	andb	$0xfe, %al
	outb	%al, $0x92

	/* Linear addresses: this segment's base, the GDT, boot_params. */
	cli
	xorl	%esi, %esi
	movw	%ds, %si
	shll	$4, %esi
	leal	gdt16(%esi), %eax
	movl	%eax, gdt16_desc + 2
	movl	BP + 0x214, %eax	/* code32_start */
	movl	%eax, jmp32_ptr
	addl	$BP, %esi

	lgdtl	gdt16_desc
	movl	%cr0, %eax
	orl	$1, %eax
	movl	%eax, %cr0
	movw	$0x18, %ax
	movw	%ax, %ds
	movw	%ax, %es
	movw	%ax, %ss
	movw	%ax, %fs
	movw	%ax, %gs
	ljmpl	*%cs:jmp32_ptr

	.align	8
gdt16:
	.quad	0
	.quad	0
	.quad	0x00cf9a000000ffff	/* 0x10 __BOOT_CS */
	.quad	0x00cf92000000ffff	/* 0x18 __BOOT_DS */
gdt16_end:
gdt16_desc:
	.word	gdt16_end - gdt16 - 1
	.long	0
jmp32_ptr:
	.long	0
	.word	0x10
kernel_version:
	.asciz	"bunshin-guest"

	.section .note.GNU-stack, "", @progbits
