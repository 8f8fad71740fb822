#!/bin/bash
# Set-up command 1: install what is missing, build, and boot the test guest
# on bunshin-vmm with its serial console on this terminal.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
[ -d build ] || meson setup build --buildtype=release
ninja -C build src/vmm/bunshin-vmm guest/bunshin-guest.bzImage guest/bunshin-guest.elf
echo "== booting the test guest (2 vCPUs, 256 MiB): scenario boot, then smp =="
build/src/vmm/bunshin-vmm --kernel build/guest/bunshin-guest.bzImage --cpus 2 --memory 256M \
	--cmdline "test=boot expect_cpus=2 expect_mem_mib=256"
build/src/vmm/bunshin-vmm --kernel build/guest/bunshin-guest.elf --cpus 2 --memory 256M \
	--cmdline "test=smp"
echo "== the guest powered off; bunshin-vmm exited with status $? =="
