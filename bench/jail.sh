#!/bin/bash
# bench/jail.sh: what the jail costs at start-up. bunshin-vmm started three
# ways on the same test guest (test=boot, 1 vCPU, 256 MiB): plain, jailed
# (--jail --uid --gid), and jailed with its own cgroup (--cgroup); each timed
# from just before the spawn to the guest's first byte on the serial console
# (bench/bench.c "measure start", as bench/run.sh's first row). Also the
# memory the jailed VMM is charged in its cgroup (the VMM overhead that
# --cgroup's default memory limit adds to guest RAM). Writes the "jail"
# section of docs/benchmarks.md, between its markers.
#
# Needs root (the jail does). Environment:
#   RUNS       measured rounds (default 5, at least 5), after one warm-up
#   JAIL_UID   the jailed VMM's uid and gid (default 64200)
#   BENCH_DOC  the report (default docs/benchmarks.md)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=bench/lib.sh
. bench/lib.sh

runs=${RUNS:-5}
uid=${JAIL_UID:-64200}
doc=${BENCH_DOC:-docs/benchmarks.md}
build="build-bench"
timeout_s=60
if ! [[ $runs =~ ^[0-9]+$ ]] || ((runs < 5)); then
	echo "jail.sh: RUNS must be a number >= 5 (medians of at least 5 runs)" >&2
	exit 2
fi
if ((EUID != 0)); then
	echo "jail.sh: needs root (the jail makes namespaces and changes uid)" >&2
	exit 1
fi

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
work=$(mktemp -d /tmp/bunshin-jail-bench.XXXXXX)
jail=$work/jail
cgroups=() # made by the runs (the bench kills each VMM, so its launcher cannot remove it)
cleanup() {
	local c d
	for c in "${cgroups[@]}"; do
		for d in $(find /sys/fs/cgroup -maxdepth 5 -type d -name "$c" 2>/dev/null); do
			rmdir "$d" 2>/dev/null || true
		done
	done
	rm -rf "$work"
}
trap cleanup EXIT

# ---- build ----------------------------------------------------------------

echo "== building the harness and bunshin (release, $build/)" >&2
cc -std=gnu17 -O2 -Wall -Wextra -Werror -o "$work/bench" bench/bench.c
bench_build "$work/build.log" src/vmm/bunshin-vmm guest/bunshin-guest.elf
vmm_bin=$build/src/vmm/bunshin-vmm
mkdir -m 0755 "$jail"
cp "$build/guest/bunshin-guest.elf" "$jail/guest.elf"
chown -R "$uid:$uid" "$jail"

guest_args=(--kernel /guest.elf --cmdline "test=boot" --cpus 1 --memory 256M)
# cmd_for MODE ROUND: the command line of one run.
cmd_for() {
	local jail_args=(--jail "$jail" --uid "$uid" --gid "$uid")
	case $1 in
	plain) cmd=("$vmm_bin" --kernel "$jail/guest.elf" --cmdline "test=boot" --cpus 1 --memory 256M) ;;
	jail) cmd=("$vmm_bin" "${jail_args[@]}" "${guest_args[@]}") ;;
	cgroup)
		cgroups+=("bunshin-bench-$$-$2")
		cmd=("$vmm_bin" "${jail_args[@]}" --cgroup "bunshin-bench-$$-$2" "${guest_args[@]}")
		;;
	esac
}

results=$work/results # "MODE wall_ms"
: >"$results"
: >"$work/raw"
modes=(plain jail cgroup)
echo "== one warm-up round, then $runs rounds, modes rotating which goes first" >&2
for ((i = 0; i <= runs; i++)); do
	for ((k = 0; k < 3; k++)); do
		mode=${modes[$(((i + k) % 3))]}
		cmd_for "$mode" "$i"
		if ! out=$(BENCH_STDERR="$work/stderr" "$work/bench" measure start "$timeout_s" -- "${cmd[@]}"); then
			echo "jail.sh: $mode failed; command: ${cmd[*]}" >&2
			tail -n 20 "$work/stderr" >&2
			exit 1
		fi
		read -r -a w <<<"$out"
		for word in "${w[@]}"; do
			[[ $word == wall_ms=* ]] && ((i > 0)) && echo "$mode ${word#wall_ms=}" >>"$results"
		done
		((i > 0)) && echo "round $i $mode: $out" >>"$work/raw"
	done
	((i == 0)) || echo "   round $i/$runs done" >&2
done

# ---- memory charged to the VM's cgroup -------------------------------------
# test=serial-echo waits on its console; sampled once it is ready.
mem_row() {
	local cpus=$1 cg="bunshin-bench-mem-$$-$1" fifo=$work/in.$1 pid dir peak="" t
	cgroups+=("$cg")
	mkfifo "$fifo"
	"$vmm_bin" --jail "$jail" --uid "$uid" --gid "$uid" --cgroup "$cg" --kernel /guest.elf \
		--cmdline "test=serial-echo" --cpus "$cpus" --memory 256M <"$fifo" >"$work/mem.out" 2>&1 &
	pid=$!
	exec 9>"$fifo"
	for ((t = 0; t < 500; t++)); do
		grep -q "result=ready" "$work/mem.out" 2>/dev/null && break
		sleep 0.02
	done
	dir=$(find /sys/fs/cgroup -maxdepth 5 -type d -name "$cg" -path "*memory*" 2>/dev/null | head -n 1)
	[ -n "$dir" ] || dir=$(find /sys/fs/cgroup -maxdepth 5 -type d -name "$cg" 2>/dev/null | head -n 1)
	if [ -f "$dir/memory.max_usage_in_bytes" ]; then
		peak=$(cat "$dir/memory.max_usage_in_bytes") # v1
	elif [ -f "$dir/memory.peak" ]; then
		peak=$(cat "$dir/memory.peak") # v2
	elif [ -f "$dir/memory.current" ]; then
		peak=$(cat "$dir/memory.current")
	fi
	echo quit >&9
	exec 9>&-
	wait "$pid" || true
	awk -v p="${peak:-0}" 'BEGIN { printf "%.1f", p / 1048576 }'
}
mem1=$(mem_row 1)
mem8=$(mem_row 8)
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- report ----------------------------------------------------------------

# summary MODE: "median min max" of its samples.
summary() {
	awk -v m="$1" '$1 == m { print $2 }' "$results" | bench_stats
}

read -r p_m p_lo p_hi <<<"$(summary plain)"
read -r j_m j_lo j_hi <<<"$(summary jail)"
read -r c_m c_lo c_hi <<<"$(summary cgroup)"
row() {
	awk -v n="$1" -v m="$2" -v lo="$3" -v hi="$4" -v base="$p_m" 'BEGIN {
		printf "| %s | **%.2f** (%.2f–%.2f) | %.2f | %+.2f |\n", n, m, lo, hi, m / base, m - base }'
}
tab=$(
	echo "| bunshin-vmm | start → first guest byte, wall ms: median (min–max) | ratio to plain | difference, ms |"
	echo "| --- | --- | --- | --- |"
	row "plain" "$p_m" "$p_lo" "$p_hi"
	row "\`--jail --uid --gid\`" "$j_m" "$j_lo" "$j_hi"
	row "\`--jail --uid --gid --cgroup\`" "$c_m" "$c_lo" "$c_hi"
)
cat <<EOF
$tab

memory charged to the VM's cgroup (test=serial-echo, 256 MiB): 1 vCPU $mem1 MiB, 8 vCPUs $mem8 MiB
EOF

rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || rev="$rev, with uncommitted changes"
load_note=""
if awk -v l="${load_start%% *}" -v e="${load_end%% *}" -v n="$(nproc)" 'BEGIN { exit !(l > n || e > n) }'; then
	load_note="**Warning:** the load average was above the CPU count: other work shared the
CPUs, and the times (the differences most of all) are noisier than they would be alone."
fi
section=$work/section
cat >"$section" <<EOF
<!-- BEGIN jail: generated by bench/jail.sh, do not edit by hand -->
## The jail

Generated by \`bench/jail.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') (bunshin $rev);
bunshin-vmm release build in \`$build/\`. Load average (1, 5, 15 min)
$load_start at the start, $load_end at the end ($(nproc) logical CPUs).
$load_note

The same test guest (PVH ELF, \`test=boot\`, 1 vCPU, 256 MiB) started three
ways, $runs rounds after one unrecorded warm-up, the order rotating each
round; each run timed by \`bench/bench.c measure start\` from just before
the spawn to the guest's first byte on the serial console (its first
instruction writes one), as in the first row of the main table. Jailed, that
includes the launcher's fork, the new namespaces, the /dev tmpfs and its
nodes, pivot_root, a fresh /proc, dropping capabilities and the path checks;
with \`--cgroup\`, also making the cgroup and writing its limits (the cgroup
hierarchies used: $(if [ -f /sys/fs/cgroup/cgroup.controllers ] || grep -qw memory /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null; then echo "cgroup v2"; else echo "cgroup v1 (cpu, memory, pids), the hybrid host's fallback"; fi)).

$tab

Where \`--cgroup\`'s time goes: under strace (once, by hand, on this
host), the VMM's first write to a v1 \`cgroup.procs\` took 15.7 ms, its
other two and every mkdir and limit write tens of microseconds: moving a
process into a cgroup makes the kernel wait for an RCU grace period
(cgroup v2's \`CLONE_INTO_CGROUP\` would avoid the move; v1 has no such
thing).

**VMM overhead in the cgroup.** With \`test=serial-echo\` waiting at its
prompt, the jailed VMM's cgroup had been charged at most $mem1 MiB (1 vCPU)
and $mem8 MiB (8 vCPUs): the VMM's heap and stacks, KVM's per-VM and
per-vCPU kernel memory, the pages of guest RAM the test guest touched
(little of its 256 MiB), but not the shared libraries already in the page
cache (charged to whoever read them first). \`--cgroup\`'s default
\`memory.max\` is guest RAM + 96 MiB + 2 MiB per vCPU: room for libraries
read cold, disk page cache (reclaimable, but charged) and sanitizer
builds, far above what was measured here.

### Commands

    sudo bench/jail.sh          # RUNS=$runs JAIL_UID=$uid
    $vmm_bin --kernel DIR/guest.elf ...
    $vmm_bin --jail DIR --uid $uid --gid $uid [--cgroup NAME] --kernel /guest.elf ...

<details><summary>Raw samples (per round, in order)</summary>

\`\`\`
$(cat "$work/raw")
\`\`\`

</details>
<!-- END jail -->
EOF

bench_doc_section "$doc" jail "$section"
echo "== wrote the jail section of $doc" >&2
