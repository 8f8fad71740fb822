#!/bin/bash
# bench/blk.sh: virtio-blk throughput and latency, bunshin-vmm against QEMU,
# both running the test guest's blk-bench scenario (guest/virtio_blk_bench.c)
# on the same raw image in the same run. Builds the release bunshin in
# build-bench/ (as bench/run.sh does), prints the tables and writes the
# "virtio-blk" section of docs/benchmarks.md (between its markers; the rest
# of the file is bench/run.sh's and stays as it is).
#
# Environment:
#   RUNS        measured runs per configuration (default 7, at least 5)
#   BLK_IMG_DIR where the 256 MiB scratch image goes (default /var/tmp); it
#               must be a disk filesystem, not tmpfs, or O_DIRECT fails
#   BLK_MODES   guest completion modes to measure, "poll irq" by default
#   BLK_GUEST   extra guest options (e.g. "bench_ms=500")
#   BENCH_DOC   the report (default docs/benchmarks.md)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=bench/lib.sh
. bench/lib.sh

runs=${RUNS:-7}
doc=${BENCH_DOC:-docs/benchmarks.md}
img_dir=${BLK_IMG_DIR:-/var/tmp}
modes=${BLK_MODES:-poll irq}
guest_extra=${BLK_GUEST:-}
build="build-bench"
img_mib=256
timeout_s=120
if ! [[ $runs =~ ^[0-9]+$ ]] || ((runs < 5)); then
	echo "blk.sh: RUNS must be a number >= 5 (medians of at least 5 runs)" >&2
	exit 2
fi
for m in $modes; do
	[[ $m == poll || $m == irq ]] || {
		echo "blk.sh: BLK_MODES takes poll and/or irq, not '$m'" >&2
		exit 2
	}
done

qemu=$(command -v qemu-system-x86_64) || {
	echo "blk.sh: qemu-system-x86_64 not found (Debian: apt-get install qemu-system-x86)" >&2
	exit 1
}
bench_require_kvm
# O_DIRECT (bunshin direct=on, QEMU cache=none) needs a real filesystem.
fs_type=$(findmnt -no FSTYPE -T "$img_dir" 2>/dev/null || stat -f -c %T "$img_dir")
if [[ $fs_type == tmpfs || $fs_type == ramfs ]]; then
	echo "blk.sh: $img_dir is $fs_type; set BLK_IMG_DIR to a directory on a disk" >&2
	exit 1
fi
fs_dev=$(df --output=source "$img_dir" | tail -n 1)

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
work=$(mktemp -d /tmp/bunshin-blk-bench.XXXXXX)
img=$(mktemp "$img_dir/bunshin-blk-bench.XXXXXX.img")
trap 'rm -rf "$work" "$img"' EXIT

# ---- build ----------------------------------------------------------------

echo "== building bunshin (release, $build/)" >&2
bench_build "$work/build.log" src/vmm/bunshin-vmm guest/bunshin-guest.elf
vmm_bin=$build/src/vmm/bunshin-vmm
guest=$build/guest/bunshin-guest.elf

# Every block written (not a sparse file, not fallocate's unwritten
# extents): reads then reach the disk, and writes do not allocate.
echo "== writing the ${img_mib} MiB image $img ($fs_type on $fs_dev)" >&2
dd if=/dev/zero of="$img" bs=1M count=$img_mib oflag=direct conv=fsync status=none

# ---- configurations ----------------------------------------------------------
#
# NAME|VMM|DISK|MODE. DISK: direct (O_DIRECT + io_uring on both) or buffered
# (host page cache + io_uring on both). QEMU: q35 with SeaBIOS, which assigns
# the PCI BARs the guest expects (qboot leaves the virtio BARs unassigned, and
# microvm with pcie=on shows the guest no device); no iothread, no vhost.

configs=()
for m in $modes; do
	configs+=("bunshin-direct-$m|bunshin|direct|$m" "qemu-direct-$m|qemu|direct|$m")
	if [[ $m == poll ]]; then
		configs+=("bunshin-buffered-$m|bunshin|buffered|$m" "qemu-buffered-$m|qemu|buffered|$m")
	fi
done

guest_cmdline() {
	local opts="test=blk-bench"
	[[ $1 == irq ]] && opts+=" bench_irq=1"
	echo "$opts${guest_extra:+ $guest_extra}"
}

# vmm_cmd VMM DISK MODE: sets cmd.
vmm_cmd() {
	local vmm=$1 disk=$2 mode=$3 gcmd
	gcmd=$(guest_cmdline "$mode")
	if [[ $vmm == bunshin ]]; then
		local d="path=$img"
		[[ $disk == direct ]] && d+=",direct=on"
		cmd=("$vmm_bin" --kernel "$guest" --cmdline "$gcmd" --cpus 1 --memory 256M --disk "$d")
	else
		local cache=writeback
		[[ $disk == direct ]] && cache=none
		# PVM's KVM refuses QEMU's write of MSR 0x10a (see docs/benchmarks.md).
		cmd=("$qemu" -accel kvm -M "q35,memory-backend=mem" -cpu "host,-arch-capabilities"
			-smp 1 -m 256M -object "memory-backend-memfd,id=mem,size=256M"
			-nodefaults -no-user-config -nographic -serial stdio -no-reboot
			-kernel "$guest" -append "$gcmd"
			-device "virtio-blk-pci,drive=d0"
			-drive "file=$img,if=none,id=d0,format=raw,cache=$cache,aio=io_uring")
	fi
}

results=$work/results # "CONFIG ROW KEY VALUE"
: >"$results"

# run_one CONFIG RECORD: one boot of the guest; RECORD=0 for the warm-up.
run_one() {
	local name vmm disk mode out=$work/out
	IFS='|' read -r name vmm disk mode <<<"$1"
	vmm_cmd "$vmm" "$disk" "$mode"
	# Buffered runs start with the whole image in the page cache, whatever
	# ran before (O_DIRECT writes drop the cached pages they overwrite).
	if [[ $disk == buffered ]]; then
		dd if="$img" of=/dev/null bs=1M status=none
	fi
	if ! timeout "$timeout_s" "${cmd[@]}" </dev/null >"$out" 2>"$work/stderr"; then
		echo "blk.sh: $name exited with an error; command: ${cmd[*]}" >&2
	fi
	if ! grep -aq 'BUNSHIN-TEST name=blk-bench result=pass' "$out"; then
		echo "blk.sh: $name: blk-bench did not pass:" >&2
		grep -a BUNSHIN "$out" >&2 || true
		tail -n 20 "$work/stderr" >&2
		exit 1
	fi
	if (($2)); then
		tr -d '\r' <"$out" | awk -v c="$name" '$1 == "BUNSHIN-BENCH" && $2 == "blk" {
			row = ""
			for (i = 3; i <= NF; i++) {
				split($i, kv, "=")
				if (kv[1] == "row") row = kv[2]
				else if (kv[1] ~ /^(iops|mbps|lat_us_p50|lat_us_p99)$/)
					print c, row, kv[1], kv[2]
			}
		}' >>"$results"
	fi
}

echo "== ${#configs[@]} configurations; one warm-up round, then $runs rounds" >&2
n=${#configs[@]}
for ((i = 0; i <= runs; i++)); do
	# Rotate the order each round, and reverse it every other round, so no
	# configuration always runs first or always after the same one (and
	# inherits what that one left in caches below the VMM).
	for ((k = 0; k < n; k++)); do
		if ((i % 2)); then j=$(((n - 1 - k + i) % n)); else j=$(((k + i) % n)); fi
		run_one "${configs[$j]}" $((i > 0))
	done
	((i == 0)) || echo "   round $i/$runs done" >&2
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- report ------------------------------------------------------------------

# summary CONFIG ROW KEY: "median min max" of the samples.
summary() {
	awk -v c="$1" -v r="$2" -v k="$3" '$1 == c && $2 == r && $3 == k { print $4 }' "$results" |
		bench_stats
}

# table BUNSHIN_CONFIG QEMU_CONFIG: one markdown table.
table() {
	local b=$1 q=$2 line row key label unit better
	echo "| Row | unit | better | bunshin-vmm median (min–max) | QEMU median (min–max) | ratio bunshin/QEMU | bunshin ahead |"
	echo "| --- | --- | --- | --- | --- | --- | --- |"
	for line in "randread4k_qd1|iops|4 KiB random read, QD1|IOPS|higher" \
		"randread4k_qd32|iops|4 KiB random read, QD32|IOPS|higher" \
		"randwrite4k_qd1|iops|4 KiB random write, QD1|IOPS|higher" \
		"randwrite4k_qd32|iops|4 KiB random write, QD32|IOPS|higher" \
		"seqread1m|mbps|1 MiB sequential read, QD$seq_qd|MB/s|higher" \
		"seqwrite1m|mbps|1 MiB sequential write, QD$seq_qd|MB/s|higher" \
		"lat4k_qd1|lat_us_p50|notify → completion, 4 KiB read QD1, p50|µs|lower" \
		"lat4k_qd1|lat_us_p99|notify → completion, 4 KiB read QD1, p99|µs|lower"; do
		IFS='|' read -r row key label unit better <<<"$line"
		read -r bm blo bhi <<<"$(summary "$b" "$row" "$key")"
		read -r qm qlo qhi <<<"$(summary "$q" "$row" "$key")"
		bench_row "$label" "$unit" "$better" "$bm" "$blo" "$bhi" "$qm" "$qlo" "$qhi"
	done
}

# The guest's defaults (guest/virtio_blk_bench.c), unless BLK_GUEST changed them.
bench_ms=300 warm_ms=20 seq_qd=4 seq_segs=4
for w in $guest_extra; do
	case $w in
	bench_ms=* | warm_ms=* | seq_qd=* | seq_segs=*) declare "${w%%=*}=${w#*=}" ;;
	esac
done

tables=""
for m in $modes; do
	if [[ $m == poll ]]; then
		tables+="### Guest polls the used ring (\`mode=poll\`): O_DIRECT

bunshin-vmm \`--disk path=IMG,direct=on\` against QEMU \`cache=none,aio=io_uring\`:
both open the image with O_DIRECT and use io_uring.

$(table bunshin-direct-poll qemu-direct-poll)

### Guest polls the used ring (\`mode=poll\`): host page cache

bunshin-vmm \`--disk path=IMG\` against QEMU \`cache=writeback,aio=io_uring\`:
both go through the host page cache. The whole image is read into the page
cache (\`dd\`, untimed) before each of these runs, so the reads hit the
cache: what is measured is mostly the VMM and io_uring.

$(table bunshin-buffered-poll qemu-buffered-poll)

"
	else
		tables+="### Guest waits for MSI-X interrupts (\`mode=irq\`): O_DIRECT

The same as the first table, but the guest halts until the queue's MSI-X
interrupt arrives (\`bench_irq=1\`), as a real driver does.

$(table bunshin-direct-irq qemu-direct-irq)

"
	fi
done

raw=$(awk '{ k = $1 " " $2 " " $3; if (!(k in v)) o[++n] = k; v[k] = v[k] " " $4 }
	END { for (i = 1; i <= n; i++) printf "%-46s%s\n", o[i], v[o[i]] }' "$results")
rev=$(git describe --always --dirty 2>/dev/null || echo unknown)

bunshin_cmd_direct() {
	vmm_cmd bunshin direct poll
	local line="${cmd[*]}"
	echo "${line//$img/IMG}"
}
qemu_cmd_direct() {
	vmm_cmd qemu direct poll
	local line="${cmd[*]}"
	echo "${line//$img/IMG}"
}

section=$work/section
cat >"$section" <<EOF
<!-- begin virtio-blk: generated by bench/blk.sh, do not edit by hand -->
## virtio-blk

Generated by \`bench/blk.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') (bunshin $rev);
bunshin-vmm release build in \`$build/\`; $("$qemu" --version | head -n 1).
Load average (1, 5, 15 min) $load_start at the start, $load_end at the end
($(nproc) logical CPUs).

Both VMMs boot the same test guest (\`$guest\`, PVH ELF, 1 vCPU, 256 MiB)
with \`test=blk-bench\` (\`guest/virtio_blk_bench.c\`), which drives the
first virtio-blk device itself: one queue of 64 entries, INDIRECT_DESC,
EVENT_IDX and FLUSH negotiated, each request one indirect descriptor
(header, data, status).
Every row runs $bench_ms ms of guest TSC after $warm_ms ms unmeasured; 4 KiB rows
use random 4 KiB-aligned offsets over the whole image (one xorshift
sequence from a fixed seed: every measured run, on both VMMs, sees the same
offsets in the same order; the warm-up uses another); the 1 MiB rows keep $seq_qd requests of
$seq_segs data descriptors each in flight, sequentially. Latency is the guest's
TSC from just before its notify write to the moment it sees the used index
move, for QD1 4 KiB random reads. Each configuration ran $runs times after one
unrecorded warm-up round, the configurations in an order rotated round by
round and reversed every other round; cells show the median in bold, then min–max; the ratio is
bunshin's median over QEMU's, and "bunshin ahead" reads it in the row's
"better" direction (higher IOPS and MB/s, lower latency). The spread
(min–max) is wide on a loaded machine: compare the medians, and rerun on
a quiet one before drawing conclusions from small ratios.

FLUSH is negotiated, as Linux does, so that both devices run write-back
(no flush is ever sent): without it virtio 1.2, 5.2.5 makes the device
write-through, which QEMU honours by syncing after every write and
bunshin-vmm (as of this run) does not.

The image: ${img_mib} MiB raw, every block written beforehand (no holes), on
$fs_type (\`$fs_dev\`), a virtio disk of this (itself virtual) machine.
QEMU runs \`-M q35\` with SeaBIOS, its main-loop thread doing the I/O (no
iothread, no vhost); bunshin-vmm does it on its I/O thread.

By default (\`mode=poll\`) the guest has no queue interrupt and spins on
the used ring at CPL 3, touching no device register: on KVM-under-PVM the
halt and the interrupt go through CPL-0 guest code, which PVM emulates, and
would cost more than the device itself. With \`mode=irq\` they are in.

$tables
### Commands

    bench/blk.sh            # RUNS=7 BLK_IMG_DIR=/var/tmp BLK_MODES="poll irq"

bunshin-vmm (page cache: \`path=IMG\` alone; \`bench_irq=1\` for \`mode=irq\`):

    $(bunshin_cmd_direct)

QEMU (page cache: \`cache=writeback\`):

    $(qemu_cmd_direct)

<details><summary>Raw samples (configuration, row, value: per run, in order)</summary>

\`\`\`
$raw
\`\`\`

</details>
<!-- end virtio-blk -->
EOF

echo
sed -n '/^### Guest/,/^### Commands/p' "$section" | sed '$d'

# Replace the section between the markers, or append it.
bench_doc_section "$doc" virtio-blk "$section"
echo "== wrote the virtio-blk section of $doc" >&2
