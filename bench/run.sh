#!/bin/bash
# bench/run.sh: bunshin-vmm against QEMU on the same test guest image, in the
# same run. Builds what it needs (release build in build-bench/, the
# measuring harness bench/bench.c in a temporary directory), prints the
# results table and writes docs/benchmarks.md.
#
# Environment: RUNS (measured runs per VMM and row, default 7, at least 5),
# BENCH_DOC (where the report goes, default docs/benchmarks.md).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=bench/lib.sh
. bench/lib.sh

runs=${RUNS:-7}
doc=${BENCH_DOC:-docs/benchmarks.md}
build="build-bench"
timeout_s=120
if ! [[ $runs =~ ^[0-9]+$ ]] || ((runs < 5)); then
	echo "run.sh: RUNS must be a number >= 5 (medians of at least 5 runs)" >&2
	exit 2
fi

qemu=$(command -v qemu-system-x86_64) || {
	echo "run.sh: qemu-system-x86_64 not found (Debian: apt-get install qemu-system-x86)" >&2
	exit 1
}
bench_require_kvm

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
work=$(mktemp -d /tmp/bunshin-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

# ---- build ----------------------------------------------------------------

echo "== building the harness and bunshin (release, $build/)" >&2
cc -std=gnu17 -O2 -Wall -Wextra -Werror -o "$work/bench" bench/bench.c
build_log=$work/build.log
bench_build "$build_log" src/vmm/bunshin-vmm guest/bunshin-guest.elf guest/bunshin-guest.bzImage

vmm_bin=$build/src/vmm/bunshin-vmm
# The PVH ELF: both bunshin-vmm and QEMU (-kernel, every machine type) boot it.
image=$build/guest/bunshin-guest.elf

bunshin_ram='/memfd:bunshin-guest-ram (deleted)'
qemu_ram='/memfd:memory-backend-memfd (deleted)'

# The VMM command lines; $1 is the guest command line.
bunshin_cmd() {
	cmd=("$vmm_bin" --kernel "$image" --cmdline "$1" --cpus 1 --memory 256M)
}

# Guest RAM from a memfd, like bunshin's, so that its mapping is identifiable.
# PVM's KVM rejects writes of MSR 0x10a (arch-capabilities), so -cpu host has
# to leave that one feature out. The machine (-M ...) is chosen below.
qemu_machine=()
qemu_cmd() {
	cmd=("$qemu" -accel kvm "${qemu_machine[@]}" -cpu "host,-arch-capabilities" -smp 1 -m 256M
		-object "memory-backend-memfd,id=mem,size=256M"
		-nodefaults -no-user-config -nographic -serial stdio -no-reboot
		-kernel "$image" -append "$1")
}

boot_line="BUNSHIN-TEST name=boot result="
echo_line="BUNSHIN-TEST name=serial-echo result=ready"

# kv KEY WORDS...: the value of KEY=VALUE among WORDS.
kv() {
	local key=$1 word
	shift
	for word in "$@"; do
		if [[ $word == "$key="* ]]; then
			echo "${word#*=}"
			return 0
		fi
	done
	echo "run.sh: no $key in: $*" >&2
	return 1
}

# ---- QEMU machine types ----------------------------------------------------
# qboot (microvm's firmware, or -bios on q35) is small; SeaBIOS runs in real
# mode, which PVM emulates, and writes to the serial port itself. Each is
# timed to the test guest's boot result line, 3 runs.

machines=("microvm|qboot|-M microvm,memory-backend=mem"
	"q35|SeaBIOS|-M q35,memory-backend=mem"
	"pc|SeaBIOS|-M pc,memory-backend=mem"
	"q35|qboot|-M q35,memory-backend=mem -bios /usr/share/qemu/qboot.rom")
alt_table=$work/alternatives
{
	echo "| QEMU machine | firmware | \`boot\` result line, wall ms: median of 3 (min–max) | guest's result |"
	echo "| --- | --- | --- | --- |"
} >"$alt_table"
best_pass="" best_pass_ms=""
echo "== QEMU machine types (3 runs each)" >&2
for m in "${machines[@]}"; do
	IFS='|' read -r name fw args <<<"$m"
	read -r -a qemu_machine <<<"$args"
	samples=() result=""
	for i in 1 2 3; do
		qemu_cmd "test=boot"
		if out=$(BENCH_STDERR=/dev/null "$work/bench" measure line "$timeout_s" "$boot_line" \
			-- "${cmd[@]}" 2>/dev/null); then
			read -r -a w <<<"$out"
			samples+=("$(kv wall_ms "${w[@]}")")
			r=$(kv result "${w[@]}")
			[[ $r == pass ]] || r="$r $(kv reason "${w[@]}" 2>/dev/null || true)"
			result=$r
		fi
	done
	if ((${#samples[@]} == 3)); then
		read -r lo mid hi <<<"$(printf '%s\n' "${samples[@]}" | sort -g | tr '\n' ' ')"
		printf '| %s | %s | %.0f (%.0f–%.0f) | %s |\n' "\`$name\`" "$fw" "$mid" "$lo" "$hi" \
			"$result" >>"$alt_table"
		if [[ $result == pass ]] &&
			{ [ -z "$best_pass" ] || awk -v a="$mid" -v b="$best_pass_ms" 'BEGIN { exit !(a < b) }'; }; then
			best_pass=$m
			best_pass_ms=$mid
		fi
	else
		echo "| \`$name\` | $fw | no result line in ${timeout_s} s (${#samples[@]}/3 runs) | — |" \
			>>"$alt_table"
	fi
done

# Rows 1 and 3 run on microvm: QEMU's smallest machine, and its firmware
# (qboot) does not write to the console, so the first byte there is the
# guest's. Row 2 runs on the fastest machine on which the guest passes.
qemu_start_machine=(-M "microvm,memory-backend=mem")
if [ -z "$best_pass" ]; then
	echo "run.sh: the test guest's boot scenario passes on no QEMU machine type" >&2
	exit 1
fi
IFS='|' read -r boot_name boot_fw boot_args <<<"$best_pass"
read -r -a qemu_boot_machine <<<"$boot_args"

# ---- measuring -------------------------------------------------------------

results=$work/results # "METRIC VMM VALUE", what the table is made of
crosscheck=$work/crosscheck
: >"$results"
: >"$crosscheck"
first_bytes=""

# measure VMM MODE GUEST_CMDLINE [MODE ARGS...]: one harness run, prints its line.
measure() {
	local vmm=$1 mode=$2 guest_cmdline=$3
	shift 3
	"${vmm}_cmd" "$guest_cmdline"
	if ! BENCH_STDERR="$work/$vmm.stderr" "$work/bench" measure "$mode" "$timeout_s" "$@" \
		-- "${cmd[@]}"; then
		echo "run.sh: $vmm failed; command: ${cmd[*]}" >&2
		echo "run.sh: its stderr:" >&2
		tail -n 20 "$work/$vmm.stderr" >&2
		exit 1
	fi
}

# one_round VMM RECORD: the three measurements of one VMM; RECORD=0 for the warm-up.
one_round() {
	local vmm=$1 record=$2 out
	local -a w

	qemu_machine=("${qemu_start_machine[@]}")
	out=$(measure "$vmm" start "test=boot")
	read -r -a w <<<"$out"
	if ((record)); then
		echo "start_cpu $vmm $(kv cpu_ms "${w[@]}")" >>"$results"
		echo "start_wall $vmm $(kv wall_ms "${w[@]}")" >>"$results"
		echo "start $vmm cpu_ms=$(kv cpu_ms "${w[@]}") sched_ms=$(kv sched_ms "${w[@]}")" \
			>>"$crosscheck"
		first_bytes+="$vmm:$(kv byte "${w[@]}") "
	fi

	qemu_machine=("${qemu_boot_machine[@]}")
	out=$(measure "$vmm" line "test=boot" "$boot_line")
	read -r -a w <<<"$out"
	if [[ $(kv result "${w[@]}") != pass ]]; then
		echo "run.sh: $vmm: the boot scenario did not pass: ${out#*sched_ms=* }" >&2
		exit 1
	fi
	if ((record)); then
		echo "boot_wall $vmm $(kv wall_ms "${w[@]}")" >>"$results"
		echo "boot_cpu $vmm $(kv cpu_ms "${w[@]}")" >>"$results"
		echo "boot $vmm cpu_ms=$(kv cpu_ms "${w[@]}") sched_ms=$(kv sched_ms "${w[@]}")" \
			>>"$crosscheck"
	fi

	local ram_var="${vmm}_ram"
	qemu_machine=("${qemu_start_machine[@]}")
	out=$(measure "$vmm" rss "test=serial-echo" "$echo_line" "${!ram_var}")
	read -r -a w <<<"$out"
	if ((record)); then
		echo "rss $vmm $(kv rss_kib "${w[@]}")" >>"$results"
		echo "ram_rss $vmm $(kv ram_kib "${w[@]}")" >>"$results"
	fi
}

echo "== warm-up round (not recorded), then $runs rounds, VMMs interleaved" >&2
for ((i = 0; i <= runs; i++)); do
	if ((i % 2)); then order=(bunshin qemu); else order=(qemu bunshin); fi
	for vmm in "${order[@]}"; do
		one_round "$vmm" $((i > 0))
	done
	((i == 0)) || echo "   round $i/$runs done" >&2
done

# Did every run's first console byte come from the guest's entry stub ('\n')?
declare -A odd=()
for fb in $first_bytes; do
	[[ $fb == *:0x0a ]] || odd[$fb]=$((${odd[$fb]:-0} + 1))
done
odd_bytes=""
for fb in "${!odd[@]}"; do
	odd_bytes+="${odd_bytes:+; }${fb%%:*}: ${fb#*:} in ${odd[$fb]} of $runs runs"
done

# ---- report ----------------------------------------------------------------

"$work/bench" table "$results" >"$work/table"
cat "$work/table"
echo
cat "$alt_table"

cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
if [ -d /sys/module/kvm_pvm ]; then
	kvm_note="\`/dev/kvm\` here is KVM nested under PVM (the \`kvm_pvm\` module; the CPU shows no
vmx/svm). Guest code at CPL 3 runs natively, but CPL-0 and real-mode guest code —
the test guest's entry and kernel part, and all of QEMU's firmware — is emulated
one instruction at a time (about 2 M instructions/s), and every exit to user space
is expensive. Absolute numbers are PVM-shaped; compare the ratios."
elif grep -qw -e vmx -e svm /proc/cpuinfo; then
	kvm_note="\`/dev/kvm\` here uses hardware virtualization (vmx/svm)."
else
	kvm_note="\`/dev/kvm\` here is neither PVM nor hardware-assisted as far as can be told."
fi
if [ -z "$odd_bytes" ]; then
	byte_note="In every measured run the first byte on the console was the
   \`\\n\` that the test guest writes to COM1 (port 0x3f8) at each entry point
   before anything else."
else
	byte_note="**Warning:** not every run's first console byte was the
   \`\\n\` of the test guest's entry stub ($odd_bytes); those runs measure the
   time to the first byte of whatever the guest wrote first."
fi
rev=$(git describe --always --dirty 2>/dev/null || echo unknown)
raw_samples=$(awk '!(($1 " " $2) in seen) { seen[$1 " " $2] = ++n; key[n] = $1 " " $2 }
	{ v[$1 " " $2] = v[$1 " " $2] " " $3 }
	END { for (i = 1; i <= n; i++) printf "%-18s%s\n", key[i], v[key[i]] }' "$results")
agree=$(awk '{ split($3, c, "="); split($4, s, "="); d = c[2] - s[2]; if (d < 0) d = -d;
	if (d < 0.05) n++ } END { printf "%d of %d", n, NR }' "$crosscheck")

bunshin_cmd "test=boot"
bunshin_line="${cmd[*]}"
qemu_machine=("${qemu_start_machine[@]}")
qemu_cmd "test=boot"
qemu_start_line="${cmd[*]}"
qemu_machine=("${qemu_boot_machine[@]}")
qemu_cmd "test=boot"
qemu_boot_line="${cmd[*]}"

if [[ $qemu_boot_line == "$qemu_start_line" ]]; then
	qemu_commands="QEMU, every row (\`-M microvm\`, firmware qboot):

    $qemu_start_line"
	machine_note="QEMU runs \`-M microvm\` (firmware: qboot) for every row: it is QEMU's
fastest machine type to this guest here, and qboot does not write to the
console, so the first byte there is the guest's."
else
	qemu_commands="QEMU, rows 1 and 3 (\`-M microvm\`, firmware qboot):

    $qemu_start_line

QEMU, row 2 (\`$boot_name\`, firmware $boot_fw):

    $qemu_boot_line"
	machine_note="QEMU runs \`-M microvm\` (firmware: qboot) for rows 1 and 3: it is QEMU's
smallest and fastest-starting machine type, and qboot does not write to the
console, so the first byte there is the guest's (SeaBIOS prints its banner to
the serial port first). Row 2 needs the guest's \`boot\` scenario to *pass*,
and on the qboot machines it does not (see the table: qboot hands the guest an
e820 map that is not sorted by address, which the test guest's \`boot\`
scenario rejects), so row 2 runs on the fastest machine type on which it
passes: \`$boot_name\` with $boot_fw."
fi

mkdir -p "$(dirname "$doc")"
# The other scripts own their sections (between their BEGIN and END
# markers): keep every one of them as it is, in order.
kept=""
if [ -f "$doc" ]; then
	kept=$(awk '/^<!-- (BEGIN|begin) /{on=1} on{print} /^<!-- (END|end) /{if (on) print ""; on=0}' "$doc")
fi
{
	cat <<EOF
# Benchmarks

Generated by \`bench/run.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') (bunshin $rev).
Do not edit by hand: run \`bench/run.sh\` again (the virtio-blk section:
\`bench/blk.sh\`; the virtio-net section: \`bench/net.sh\`; snapshots and
clones: \`bench/snap.sh\`).

## Host

- CPU: $cpu_model, $(nproc) logical CPUs; $(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM
- Kernel: $(uname -sr); load average (1, 5, 15 min) $load_start at the start
  of the run, $(cut -d' ' -f1-3 /proc/loadavg) at the end
- QEMU: $("$qemu" --version | head -n 1)
- bunshin-vmm: release build (\`meson setup $build --buildtype=release -Db_sanitize=none\`)

$kvm_note

## What is measured

Both VMMs boot the very same file, the test guest's PVH ELF
(\`$image\`), with 1 vCPU and 256 MiB, console on a pipe. Each row is
measured $runs times per VMM after one unrecorded warm-up round, the two VMMs
alternating which goes first, round by round. Cells show the median in bold,
then min–max. The ratio is bunshin-vmm's median over QEMU's (lower is better
for bunshin). The measuring harness is \`bench/bench.c\`.

1. **VMM start to first guest instruction.** Wall time from just before the
   VMM is spawned to the first byte on its stdout pipe, and the VMM's CPU time
   at that moment; then the VMM is killed. $byte_note
2. **Test guest boot to its \`boot\` pass line** (\`test=boot\`): wall time
   to the console line \`BUNSHIN-TEST name=boot result=pass\`, and CPU time at
   that moment.
3. **VMM RSS beyond guest RAM** (\`test=serial-echo\`): when the guest prints
   \`BUNSHIN-TEST name=serial-echo result=ready\` and waits for input, the sum
   of \`Rss\` over every mapping in \`/proc/PID/smaps\` except the guest RAM
   memfd (\`$bunshin_ram\` for bunshin-vmm, \`$qemu_ram\` for QEMU), in MiB.
   The guest RAM the guest had touched by then is shown in the next row for
   reference.

CPU time is the VMM's thread-group CPU clock (\`clock_getcpuclockid\`): the
time on a CPU of all its threads, those already exited included, up to the
nanosecond of the sample. The harness also sums the first field of
\`/proc/PID/task/*/schedstat\` right after: that counts live threads only,
each as of its last accounting update. The two agree to 0.05 ms in $agree
samples (listed at the end); where they do not, the VMM kept running between
the two reads or, after the \`boot\` line (the guest powers off right after
it), a thread exited between them, which the schedstat sum then misses.

## Results

$(cat "$work/table")

## Commands

bunshin-vmm (the guest command line is \`test=serial-echo\` for row 3):

    $bunshin_line

$qemu_commands

$machine_note

QEMU machine types measured in the same run:

$(cat "$alt_table")

\`-cpu host,-arch-capabilities\`: PVM's KVM refuses QEMU's write of MSR 0x10a,
so plain \`-cpu host\` does not start. Guest RAM comes from
\`memory-backend-memfd\`, as bunshin-vmm's does, which also makes it one
identifiable mapping for the RSS row.

<details><summary>Raw samples</summary>

Per metric and VMM, in the order measured (ms; KiB for the two RSS rows):

\`\`\`
$raw_samples
\`\`\`

CPU clock against the schedstat sum, per run:

\`\`\`
$(cat "$crosscheck")
\`\`\`

</details>
EOF
	if [ -n "$kept" ]; then
		printf '\n%s\n' "$kept"
	fi
} >"$doc"
echo "== wrote $doc" >&2
