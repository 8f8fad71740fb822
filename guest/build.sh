#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Builds the test guest with the system toolchain directly, never with the
# project's C flags (a sanitizer build must not leak into a freestanding
# guest).
#
#   build.sh elf     OUT.elf     SRCDIR WORKDIR CC LD OBJCOPY NM
#   build.sh bzimage OUT.bzImage SRCDIR WORKDIR CC LD OBJCOPY NM GUEST.elf
set -eu

mode=$1 out=$2 src=$3 work=$4 cc=$5 ld=$6 objcopy=$7 nm=$8

# CPL-0 code is emulated on the development machines: general registers
# only (no SSE/AVX), no red zone (interrupts nest on the kernel stack), no
# CET endbr64, no stack protector, no PIC.
CFLAGS="-std=gnu11 -O2 -m64 -march=x86-64 -mtune=generic -ffreestanding -nostdlib
	-mgeneral-regs-only -mno-red-zone -mcmodel=small -fno-pic -fno-pie
	-fno-stack-protector -fno-stack-clash-protection -fcf-protection=none
	-fno-asynchronous-unwind-tables -fno-unwind-tables -fno-omit-frame-pointer
	-fno-tree-loop-distribute-patterns -fno-common -fno-strict-aliasing
	--param=min-pagesize=0
	-Wall -Wextra -Werror -Wno-unused-parameter -I$src"
LDFLAGS="-m elf_x86_64 -nostdlib -static -z noexecstack -z max-page-size=4096 --no-warn-rwx-segments"

mkdir -p "$work"

case "$mode" in
elf)
	objs=""
	for f in head.S kernel.c lib.c acpi.c apic.c main.c boot.c smp.c timer.c serial_echo.c power.c \
		pci.c virtio.c virtio_rng.c virtio_blk.c virtio_net.c virtio_console.c virtio_vsock.c \
		virtio_balloon.c virtio_abuse.c virtio_blk_bench.c virtio_net_bench.c net.c vmgenid.c identity.c \
		mem_writer.c blk_verify.c dhcp.c netstack.c nettcp.c netprobe.c virtio_reset.c; do
		o="$work/${f%.*}.o"
		# shellcheck disable=SC2086
		"$cc" $CFLAGS -c "$src/$f" -o "$o"
		objs="$objs $o"
	done
	# shellcheck disable=SC2086
	"$ld" $LDFLAGS -T "$src/guest.ld" -o "$out.tmp" $objs
	mv "$out.tmp" "$out"
	;;
bzimage)
	elf=$9
	"$objcopy" -O binary "$elf" "$work/kernel.bin"
	size=$(wc -c < "$work/kernel.bin")
	syssize=$(( (size + 15) / 16 ))
	# syssize counts whole 16-byte paragraphs: pad the image to match, as
	# Linux's build does, or a strict loader sees a truncated kernel.
	truncate -s $((syssize * 16)) "$work/kernel.bin"
	start=$("$nm" "$elf" | awk '$3 == "__image_start" { print $1 }')
	end=$("$nm" "$elf" | awk '$3 == "_end" { print $1 }')
	init_size=$(( 0x$end - 0x$start ))
	# shellcheck disable=SC2086
	"$cc" $CFLAGS -c "$src/setup.S" -o "$work/setup.o"
	# shellcheck disable=SC2086
	"$ld" $LDFLAGS -T "$src/setup.ld" --defsym=KERNEL_SYSSIZE=$syssize \
		--defsym=KERNEL_INIT_SIZE=$init_size -o "$work/setup.elf" "$work/setup.o"
	"$objcopy" -O binary -j .setup "$work/setup.elf" "$work/setup.bin"
	ssize=$(wc -c < "$work/setup.bin")
	if [ $((ssize % 512)) -ne 0 ] || [ "$ssize" -lt 1024 ]; then
		echo "build.sh: bad setup size $ssize" >&2
		exit 1
	fi
	cat "$work/setup.bin" "$work/kernel.bin" > "$out.tmp"
	mv "$out.tmp" "$out"
	;;
*)
	echo "build.sh: unknown mode $mode" >&2
	exit 1
	;;
esac
