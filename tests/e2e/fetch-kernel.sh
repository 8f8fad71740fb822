#!/bin/bash
# Fetch the pieces of the end-to-end Linux guest without installing anything:
# Debian's stock kernel (the linux-image-*-amd64 package that the
# linux-image-amd64 metapackage currently depends on) and a static busybox.
#
# usage: fetch-kernel.sh [CACHE_DIR]
#   CACHE_DIR defaults to $BUNSHIN_E2E_CACHE, else build/e2e-cache.
#
# On success it prints three lines on stdout, nothing else:
#   KERNEL=<path to vmlinuz>
#   MODULES=<path to lib/modules/<release>: the virtio, ext4 and vsock modules>
#   BUSYBOX=<path to static busybox>
#
# Idempotent: a cached package whose version matches the one apt would pick
# is reused; when apt knows nothing (no lists) or the download fails but an
# older copy is cached, that copy is used with a warning. The caller runs
# `apt-get update` beforehand. Only the kernel image and busybox are
# unpacked: nothing is installed, nothing lands in /boot.
set -euo pipefail

prog=${0##*/}

die() {
	echo "$prog: error: $*" >&2
	exit 1
}

note() {
	echo "$prog: $*" >&2
}

cache=${1:-${BUNSHIN_E2E_CACHE:-build/e2e-cache}}
mkdir -p "$cache" || die "cannot create cache directory '$cache'"
cache=$(cd "$cache" && pwd)

for tool in apt-get apt-cache dpkg-deb tar; do
	command -v "$tool" >/dev/null 2>&1 ||
		die "'$tool' not found; this script needs a Debian-based host"
done

# Candidate version of a package as apt sees it, or nothing.
candidate() {
	apt-cache policy "$1" 2>/dev/null |
		awk '$1 == "Candidate:" && $2 != "(none)" { print $2; exit }'
}

# The concrete kernel package behind the metapackage, e.g.
# linux-image-6.1.0-56-amd64.
resolve_kernel_pkg() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9].*-amd64$/ { print $2; exit }'
}

# fetch PKG DESTDIR LAYOUT MEMBER...: unless DESTDIR already holds apt's
# candidate version of PKG unpacked with this LAYOUT (a tag naming the member
# list, so a cache made with fewer members is refreshed), download PKG and
# unpack the given archive members into DESTDIR, replacing it only once that
# succeeded. DESTDIR/.stamp records "PKG VERSION LAYOUT". When apt knows no
# candidate or the download fails, an older cached copy is used with a
# warning. Prints nothing on stdout.
fetch() {
	local pkg=$1 dest=$2 layout=$3
	shift 3
	local stamp="$dest/.stamp" want have=""

	want=$(candidate "$pkg")
	[ -f "$stamp" ] && have=$(cat "$stamp")
	if [ -z "$want" ]; then
		[ -n "$have" ] ||
			die "apt knows no candidate for '$pkg' and nothing is cached;" \
				"run 'apt-get update' (network needed) first"
		note "warning: apt has no candidate for '$pkg'; using cached $have"
		return 0
	fi
	if [ "$have" = "$pkg $want $layout" ]; then
		note "$pkg $want: cached"
		return 0
	fi

	note "$pkg $want: downloading"
	local dl="$cache/download" new="$dest.new"
	rm -rf "$dl" "$new"
	mkdir -p "$dl" "$new"
	# apt-get download writes into the current directory. As root, apt
	# would drop to the _apt user, which cannot write into a private cache.
	local -a aptopt=(-q)
	[ "$(id -u)" -eq 0 ] && aptopt+=(-o APT::Sandbox::User=root)
	if ! (cd "$dl" && apt-get download "${aptopt[@]}" "$pkg=$want" >&2); then
		rm -rf "$dl" "$new"
		if [ -n "$have" ]; then
			note "warning: 'apt-get download $pkg=$want' failed; using cached $have"
			return 0
		fi
		die "'apt-get download $pkg=$want' failed (network down or" \
			"stale lists? run 'apt-get update')"
	fi
	local deb
	deb=$(find "$dl" -maxdepth 1 -name "${pkg}_*.deb" -print -quit)
	[ -n "$deb" ] || die "apt-get download left no ${pkg}_*.deb in $dl"

	# Unpack only what we need (a kernel package is mostly modules):
	# what `dpkg-deb -x` does, restricted to a few members.
	if ! dpkg-deb --fsys-tarfile "$deb" |
		tar -x -C "$new" --wildcards --no-same-owner "$@"; then
		die "cannot extract $* from $deb"
	fi
	echo "$pkg $want $layout" >"$new/.stamp"
	rm -rf "$dest" "$dl"
	mv "$new" "$dest"
}

# One fetch at a time per cache (parallel test runs share it).
if command -v flock >/dev/null 2>&1; then
	exec 9>"$cache/.lock"
	flock 9
fi

kpkg=$(resolve_kernel_pkg)
if [ -z "$kpkg" ]; then
	[ -f "$cache/kernel/.stamp" ] ||
		die "cannot resolve the package behind linux-image-amd64" \
			"(run 'apt-get update' first)"
	kpkg=$(cut -d' ' -f1 "$cache/kernel/.stamp")
	note "warning: cannot resolve linux-image-amd64 with apt; using cached $kpkg"
fi
# The virtio drivers, ext4 and vsock are modules in Debian's kernel: the
# e2e initramfs loads them with busybox's depmod and modprobe.
mods='./lib/modules/*/kernel'
fetch "$kpkg" "$cache/kernel" virtio-modules-1 './boot/vmlinuz-*' \
	"$mods/drivers/virtio/*" "$mods/drivers/block/virtio_blk.ko" \
	"$mods/drivers/net/virtio_net.ko" "$mods/drivers/net/net_failover.ko" \
	"$mods/net/core/failover.ko" "$mods/drivers/char/hw_random/virtio-rng.ko" \
	"$mods/drivers/char/virtio_console.ko" "$mods/fs/ext4/*" "$mods/fs/jbd2/*" \
	"$mods/fs/mbcache.ko" "$mods/lib/crc16.ko" "$mods/lib/libcrc32c.ko" \
	"$mods/crypto/crc32c_generic.ko" "$mods/net/vmw_vsock/vsock.ko" \
	"$mods/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko" \
	"$mods/net/vmw_vsock/vmw_vsock_virtio_transport.ko"
fetch busybox-static "$cache/busybox" busybox-1 './bin/busybox'

kernel=$(find "$cache/kernel/boot" -maxdepth 1 -name 'vmlinuz-*' -print -quit 2>/dev/null || true)
if [ -z "$kernel" ] || [ ! -s "$kernel" ]; then
	die "no vmlinuz-* found in $cache/kernel/boot"
fi
modules=$(find "$cache/kernel/lib/modules" -mindepth 1 -maxdepth 1 -type d -print -quit 2>/dev/null || true)
[ -n "$modules" ] || die "no lib/modules/<release> in $cache/kernel"
busybox="$cache/busybox/bin/busybox"
[ -x "$busybox" ] || die "no executable busybox at $busybox"

echo "KERNEL=$kernel"
echo "MODULES=$modules"
echo "BUSYBOX=$busybox"
