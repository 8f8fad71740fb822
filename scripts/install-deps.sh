#!/bin/bash
# Installs what building and testing bunshin needs on Debian 12, and nothing
# when it is all there already. Safe to run again.
set -euo pipefail

PACKAGES=(
	build-essential pkg-config meson ninja-build clang clang-format
	libclang-rt-14-dev # libFuzzer and sanitizer runtimes for clang (tests/fuzz)
	libcriterion-dev acpica-tools python3
	liburing-dev # the block layer's io_uring engine
	libmicrohttpd-dev libjansson-dev # the control API: HTTP server and JSON
	libgnutls28-dev openssl # httpc's https:// client; the TLS tests make their certificates
	libseccomp-dev # the VMM's seccomp sandbox
	qemu-system-x86 # the benchmark's reference VMM; also boots the test guest
	iproute2 iputils-ping # network tests: namespaces, taps, pings
	e2fsprogs             # the e2e test's ext4 image (mkfs.ext4 -d, debugfs)
	libsqlite3-dev nettle-dev # bunshind: its embedded store; SHA-256 of tokens and images
	libnl-3-dev libnl-route-3-dev # src/hostnet: bridges, taps, veths over rtnetlink
	qemu-utils # bunshind: qemu-img converts qcow2 images to raw on import
	dnsmasq-base # bunshind: DHCP on instance networks; the guest DHCP test's server
	libnftables-dev nftables # bunshind: its NAT and filter tables (firewall.c); nft(8) to inspect them
	procps # pgrep: tests/daemon/quickstart_test.sh finds the VMMs it left
)

missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
echo "installing: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
