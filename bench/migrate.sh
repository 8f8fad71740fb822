#!/bin/bash
# bench/migrate.sh: live migration, bunshin-vmm against QEMU, on the same
# test guest (1 vCPU, 256 MiB) over a unix socket in the same run: an idle
# guest (test=serial-echo) and one rewriting 8 MiB as fast as it can
# (test=mem-writer). Builds the release bunshin in build-bench/ (as
# bench/snap.sh does) and the helper bench/migbench.c in a temporary
# directory, prints the table and writes the "live migration" section of
# docs/benchmarks.md (between its markers; the rest belongs to the other
# scripts).
#
# Environment:
#   RUNS       measured rounds per VMM and workload (default 5, at least 5)
#   BENCH_DOC  the report (default docs/benchmarks.md)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=bench/lib.sh
. bench/lib.sh

runs=${RUNS:-5}
doc=${BENCH_DOC:-docs/benchmarks.md}
build="build-bench"
timeout_s=60
if ! [[ $runs =~ ^[0-9]+$ ]] || ((runs < 5)); then
	echo "migrate.sh: RUNS must be a number >= 5 (medians of at least 5 runs)" >&2
	exit 2
fi
qemu=$(command -v qemu-system-x86_64) || {
	echo "migrate.sh: qemu-system-x86_64 not found (Debian: apt-get install qemu-system-x86)" >&2
	exit 1
}
bench_require_kvm

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
work=$(mktemp -d /tmp/bunshin-mig-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "== building the helper and bunshin (release, $build/)" >&2
cc -std=gnu17 -O2 -Wall -Wextra -Werror -o "$work/migbench" bench/migbench.c
bench_build "$work/build.log" src/vmm/bunshin-vmm guest/bunshin-guest.elf
vmm_bin=$build/src/vmm/bunshin-vmm
guest=$build/guest/bunshin-guest.elf
idle_cmdline="test=serial-echo"
writer_cmdline="test=mem-writer mib=8 ms=600000 report_ms=20"

# vmm_cmd VMM CMDLINE: the source's command line (the helper adds the sockets).
vmm_cmd() {
	if [[ $1 == bunshin ]]; then
		cmd=("$vmm_bin" --kernel "$guest" --cmdline "$2" --cpus 1 --memory 256M)
	else
		# As bench/snap.sh: microvm, RAM in a memfd; PVM's KVM refuses
		# QEMU's write of MSR 0x10a, hence -arch-capabilities.
		cmd=("$qemu" -accel kvm -M "microvm,memory-backend=mem" -cpu "host,-arch-capabilities"
			-smp 1 -m 256M -object "memory-backend-memfd,id=mem,size=256M"
			-nodefaults -no-user-config -nographic -serial stdio -no-reboot
			-kernel "$guest" -append "$2")
	fi
}

# dest_cmd VMM CMDLINE: the destination's (bunshin: only the binary; the stream brings the VM).
dest_cmd() {
	if [[ $1 == bunshin ]]; then
		dcmd=("$vmm_bin")
	else
		vmm_cmd qemu "$2"
		dcmd=("${cmd[@]}")
	fi
}

results=$work/results # "VMM WORKLOAD KEY VALUE"
: >"$results"

run_one() { # VMM WORKLOAD RECORD
	local vmm=$1 wl=$2 line d out word
	line=$idle_cmdline
	[[ $wl == writer ]] && line=$writer_cmdline
	d=$(mktemp -d "$work/$vmm.XXXXXX")
	vmm_cmd "$vmm" "$line"
	dest_cmd "$vmm" "$line"
	if ! out=$("$work/migbench" "$vmm" "$d" "$timeout_s" -- "${cmd[@]}" -- "${dcmd[@]}" 2>"$d/err"); then
		cat "$d/err" >&2
		echo "migrate.sh: $vmm ($wl) failed" >&2
		exit 1
	fi
	rm -rf "$d"
	if (($3)); then
		for word in $out; do
			echo "$vmm $wl ${word%%=*} ${word#*=}" >>"$results"
		done
		echo "$vmm $wl: $out" >>"$work/raw"
	fi
}

echo "== one warm-up round, then $runs rounds, VMMs interleaved" >&2
for ((i = 0; i <= runs; i++)); do
	if ((i % 2)); then order=(bunshin qemu); else order=(qemu bunshin); fi
	for wl in idle writer; do
		for vmm in "${order[@]}"; do
			run_one "$vmm" "$wl" $((i > 0))
		done
	done
	((i == 0)) || echo "   round $i/$runs done" >&2
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# summary VMM WORKLOAD KEY [SCALE]: "median min max".
summary() {
	awk -v m="$1" -v w="$2" -v k="$3" -v s="${4:-1}" '$1 == m && $2 == w && $3 == k { print $4 / s }' \
		"$results" | bench_stats
}

table() {
	local line wl key scale label unit
	echo "| Row | unit | better | bunshin-vmm median (min–max) | QEMU median (min–max) | ratio bunshin/QEMU | bunshin ahead |"
	echo "| --- | --- | --- | --- | --- | --- | --- |"
	for wl in idle writer; do
		for line in "wall_ms|1|migration: request → done, wall|ms" \
			"total_ms|1|total time, the VMM's own figure|ms" \
			"downtime_ms|1|downtime, the VMM's own figure|ms" \
			"bytes|1048576|bytes sent|MiB" \
			"resume_ms|1|done → guest seen running on the destination|ms"; do
			IFS='|' read -r key scale label unit <<<"$line"
			read -r bm blo bhi <<<"$(summary bunshin "$wl" "$key" "$scale")"
			read -r qm qlo qhi <<<"$(summary qemu "$wl" "$key" "$scale")"
			bench_row "$wl: $label" "$unit" lower "$bm" "$blo" "$bhi" "$qm" "$qlo" "$qhi"
		done
	done
}

tab=$(table)
echo
echo "$tab"

load_note=""
if awk -v l="${load_start%% *}" -v n="$(nproc)" 'BEGIN { exit !(l > n) }'; then
	load_note="The 1-minute load was above the CPU count at the start: other jobs were
running or had just run. Read the ratios before the absolute times."
fi
rev=$(git describe --always --dirty 2>/dev/null || echo unknown)
vmm_cmd bunshin "$idle_cmdline"
bunshin_line="${cmd[*]}"
vmm_cmd qemu "$idle_cmdline"
qemu_line="${cmd[*]}"
if [ -d /sys/module/kvm_pvm ]; then
	kvm_note="\`/dev/kvm\` is KVM nested under PVM: write faults that dirty logging adds are expensive."
else
	kvm_note="\`/dev/kvm\`: $(grep -qw -e vmx -e svm /proc/cpuinfo && echo hardware-assisted || echo unknown kind)."
fi

section=$work/section
cat >"$section" <<EOF
<!-- BEGIN migration: generated by bench/migrate.sh, do not edit by hand -->
## Live migration

Generated by \`bench/migrate.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') (bunshin $rev);
bunshin-vmm release build in \`$build/\`; $("$qemu" --version | head -n 1).
Load average (1, 5, 15 min) $load_start at the start, $load_end at the end
($(nproc) logical CPUs). $kvm_note
$load_note

Both VMMs run the same test guest (\`$guest\`, PVH ELF, 1 vCPU, 256 MiB)
and migrate it between two processes on this host over a unix socket; the
measuring helper is \`bench/migbench.c\`. Workloads: **idle**
(\`$idle_cmdline\`: the guest waits for console input) and **writer**
(\`$writer_cmdline\`: rewrites 8 MiB over and over, checking each page
against what it wrote before; a lost page fails the run). Each VMM ran
$runs rounds per workload after one unrecorded warm-up round, the VMMs
alternating which goes first; cells show the median in bold, then
min–max; lower is better in every row.

- **bunshin:** \`PUT /vm/migrate {"url": "unix:..."}\` to a destination
  \`bunshin-vmm --incoming unix:...\`; the reply comes once the destination
  says its VM runs, and gives \`total_ms\` and \`downtime_ms\` (pause on the
  source → the destination's answer, so it includes loading the state
  there) and \`bytes\`.
- **QEMU:** \`migrate\` over QMP with \`max-bandwidth\` lifted (1 TiB/s;
  default 32 MiB/s) to a destination started with \`-incoming unix:...\`,
  then \`query-migrate\` every 2 ms until \`completed\`; \`total-time\`,
  \`downtime\` (measured on the source: it does not wait for the destination
  to run) and \`ram.transferred\`.
- **wall** is the helper's clock from the request to the reply
  (bunshin) or to \`completed\` (QEMU); **resume** from then until the
  guest shows it runs on the destination (an echo of a console line,
  written every 2 ms until it comes, or a progress line of the writer,
  which prints one every 20 ms).

$tab

Reading the numbers: QEMU's downtime is the source's view only, so the
downtime rows favour it; "resume" shows what its destination still had to
do. bunshin's downtime runs until the destination's VM runs, and the
destination builds its KVM VM and vCPUs while the first rounds arrive: an
idle guest's whole migration (a few hundred KiB: the first round skips the
memfd's holes and zero pages) is over before that is done, so its
downtime is mostly the destination's start-up; a writing guest's rounds
take longer than that, and its downtime is the stop-and-copy alone.

### Commands

    bench/migrate.sh           # RUNS=$runs

The sources (the helper adds \`--api-sock DIR/src.api\` / \`-qmp unix:DIR/src.qmp,server=on,wait=off\`):

    $bunshin_line
    $qemu_line

The destinations: \`$vmm_bin --incoming unix:DIR/mig.sock\` and the QEMU
line above plus \`-incoming unix:DIR/mig.sock\`.

\`tests/integration/test_migbench.c\` (meson test \`integration-migbench\`)
runs the bunshin side once as a smoke test: it checks that every number is
there and above zero, never how fast.

<details><summary>Raw samples (per round, in order)</summary>

\`\`\`
$(cat "$work/raw")
\`\`\`

</details>
<!-- END migration -->
EOF

bench_doc_section "$doc" migration "$section"
echo "== wrote the live migration section of $doc" >&2
