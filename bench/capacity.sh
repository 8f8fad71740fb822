#!/bin/bash
# bench/capacity.sh: how many 64 MiB test-guest instances one host holds
# under bunshind. Builds the release bunshin in build-bench/, starts
# bunshind (in a network namespace of its own: it makes bridges and taps)
# with allocation ratios that let it try (--cpu-ratio 1024, --ram-ratio 64:
# the capacity check still refuses past host CPUs x the CPU ratio), then
# bench/capbench.c creates tiny instances (1 vCPU, 64 MiB, test=serial-echo:
# idle) one after the other until the first failure, CAP, or the host's
# MemAvailable under MIN_FREE_MIB; reports how many ran, the first failure,
# bunshind's memory and each VMM's PSS/RSS at that point, create-to-running
# as the count grows; deletes them all. Then the same guest, QN VMs at once,
# QREPS times, under bunshin-vmm alone and under qemu-system-x86_64 -m 64
# (microvm, as bench/migrate.sh): their per-VM PSS and RSS (medians over
# every VM of every round), and how many of each would fit in the memory
# the run started with. Writes the "capacity" section of docs/benchmarks.md.
#
# Environment:
#   CAP           most instances (default 2000)
#   MIN_FREE_MIB  stop when MemAvailable falls under it (default 1024)
#   QN            VMs at once in the per-VM comparison (default 8)
#   QREPS         rounds of it (default 3)
#   CPU_RATIO     bunshind's --cpu-ratio (default 1024, its largest)
#   RAM_RATIO     bunshind's --ram-ratio (default 64)
#   BENCH_DOC     the report (default docs/benchmarks.md)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=bench/lib.sh
. bench/lib.sh

cap=${CAP:-2000}
min_free=${MIN_FREE_MIB:-1024}
qn=${QN:-8}
qreps=${QREPS:-3}
cpu_ratio=${CPU_RATIO:-1024}
ram_ratio=${RAM_RATIO:-64}
doc=${BENCH_DOC:-docs/benchmarks.md}
build="build-bench"
for v in cap min_free qn qreps cpu_ratio ram_ratio; do
	if ! [[ ${!v} =~ ^[0-9]+$ ]] || [ "${!v}" -lt 1 ]; then
		echo "capacity.sh: ${v^^} must be a positive number" >&2
		exit 2
	fi
done
[ "$(id -u)" -eq 0 ] || {
	echo "capacity.sh: run it as root (bunshind jails its VMMs)" >&2
	exit 1
}
bench_require_kvm
qemu=$(command -v qemu-system-x86_64) || qemu=

work=$(mktemp -d /tmp/bunshin-capacity.XXXXXX)
daemon_pid=
vm_pids=()
cleanup() {
	local p
	for p in "${vm_pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	# --stop-vms-on-exit stops any instance capbench did not delete.
	if [ -n "$daemon_pid" ]; then
		kill "$daemon_pid" 2>/dev/null || true
		wait "$daemon_pid" 2>/dev/null || true
	fi
	# A bunshind that died (or was killed) stopped none: its VMMs' launchers name their
	# instance directories, and each VMM dies with its launcher.
	pkill -9 -f -- "$work/state/instances/" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

echo "== building bunshin (release, $build/)" >&2
bench_build "$work/build.log" src/vmm/bunshin-vmm guest/bunshin-guest.elf src/daemon/bunshind \
	src/daemon/capbench src/cli/bunshin
guest=$build/guest/bunshin-guest.elf
vmm=$build/src/vmm/bunshin-vmm

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
state=$work/state
BENCH_DAEMON_WRAP="unshare -n" bench_daemon_start "$state" "$work/daemon.log" --stop-timeout 1 \
	--stop-vms-on-exit --cpu-ratio "$cpu_ratio" --ram-ratio "$ram_ratio" \
	--cgroup-parent "bunshin-capacity-$$"
token=$(cat "$state/admin.token")
endpoint=unix:$state/bunshind.sock
"$build/src/cli/bunshin" --endpoint "$endpoint" --token "$token" quota set admin \
	--instances $((cap + 1)) --vcpus $((cap + 1)) --ram $(((cap + 1) * 64)) >/dev/null

echo "== creating tiny instances until the first failure (cap $cap, MemAvailable >= $min_free MiB)" >&2
"$build/src/daemon/capbench" "$endpoint" "$token" tiny "$cap" "$min_free" "$daemon_pid" \
	>"$work/out"
grep -v '^boot_ms' "$work/out" >&2
kill "$daemon_pid"
wait "$daemon_pid" || true
daemon_pid=
get() { awk -v k="$1" '$1 == k { $1 = ""; sub(/^ /, ""); print }' "$work/out"; }
running=$(get running)

# Create-to-running as the count grows: the median of each eighth of the run.
boot_rows() {
	local ms lo hi step v
	mapfile -t ms < <(awk '$1 == "boot_ms" { print $3 }' "$work/out")
	[ "${#ms[@]}" -gt 0 ] || return 0
	step=$(((${#ms[@]} + 7) / 8))
	for ((lo = 0; lo < ${#ms[@]}; lo += step)); do
		hi=$((lo + step < ${#ms[@]} ? lo + step : ${#ms[@]}))
		mapfile -t v < <(printf '%s\n' "${ms[@]:lo:hi-lo}" | sort -n)
		echo "| $((lo + 1))-$hi | ${v[$(((${#v[@]} - 1) / 2))]} | ${v[0]} | ${v[-1]} |"
	done
}

# vm_mem NAME CMD...: QN VMs of CMD at once, QREPS rounds; "pss rss" KiB per VM into $work/NAME.
vm_mem() {
	local name=$1 i p
	shift
	: >"$work/$name"
	for _ in $(seq "$qreps"); do
		vm_pids=()
		for i in $(seq "$qn"); do
			"$@" >"$work/$name.$i.out" 2>&1 </dev/null &
			vm_pids+=($!)
		done
		for i in $(seq "$qn"); do
			for _ in $(seq 300); do
				grep -q "result=ready" "$work/$name.$i.out" && break
				sleep 0.1
			done
		done
		sleep 1 # settled
		for p in "${vm_pids[@]}"; do
			awk '/^Pss:/ { pss = $2 } /^Rss:/ { rss = $2 } END { print pss, rss }' \
				"/proc/$p/smaps_rollup" >>"$work/$name"
		done
		for p in "${vm_pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
		wait 2>/dev/null || true
		vm_pids=()
	done
}
median() { # COLUMN FILE
	sort -n -k"$1" "$2" | awk -v c="$1" '{ v[NR] = $c } END { print NR ? v[int((NR + 1) / 2)] : 0 }'
}

echo "== $qn VMs at once x $qreps: bunshin-vmm and QEMU, 64 MiB, test=serial-echo" >&2
vm_mem bunshin "$vmm" --kernel "$guest" --memory 64M --cpus 1 --cmdline test=serial-echo \
	--serial stdio
qemu_line="(qemu-system-x86_64 not installed)"
if [ -n "$qemu" ]; then
	qcmd=("$qemu" -accel kvm -M "microvm,memory-backend=mem" -cpu "host,-arch-capabilities"
		-smp 1 -m 64M -object "memory-backend-memfd,id=mem,size=64M"
		-nodefaults -no-user-config -nographic -serial stdio -no-reboot
		-kernel "$guest" -append test=serial-echo)
	vm_mem qemu "${qcmd[@]}"
	qemu_line="${qcmd[*]}"
fi
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
avail=$(get mem_available_start_mib)
b_pss=$(median 1 "$work/bunshin")
b_rss=$(median 2 "$work/bunshin")
q_pss=$([ -s "$work/qemu" ] 2>/dev/null && median 1 "$work/qemu" || echo 0)
q_rss=$([ -s "$work/qemu" ] 2>/dev/null && median 2 "$work/qemu" || echo 0)
fit() { [ "$1" -gt 0 ] && echo $((avail * 1024 / $1)) || echo "-"; }
# What the host gave each instance, kernel side (KVM, page tables, namespaces) included.
drop_kib=$(((avail - $(get mem_available_mib)) * 1024))
per_inst=$((running > 0 ? drop_kib / running : 0))
{
	echo "bunshin-vmm per VM: PSS $b_pss KiB, RSS $b_rss KiB"
	echo "qemu per VM: PSS $q_pss KiB, RSS $q_rss KiB"
} >&2

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
section=$work/section
cat >"$section" <<EOT
<!-- BEGIN capacity: generated by bench/capacity.sh, do not edit by hand -->
## Capacity: 64 MiB test-guest instances on one host

Generated by \`bench/capacity.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') (bunshin $(git rev-parse --short HEAD 2>/dev/null || echo '?')),
release build, $(nproc) logical CPUs, $(awk '/^MemTotal/ { printf "%d", $2 / 1024 }' /proc/meminfo) MiB RAM ($avail MiB available at the start), load average
$load_start at the start and $load_end at the end. bunshind ran with \`--cpu-ratio $cpu_ratio
--ram-ratio $ram_ratio\` (so that the capacity check, which refuses past $(nproc) x $cpu_ratio
vCPUs, is not what stops it first), every VMM jailed with its cgroup, as by default; instances of flavor tiny (1 vCPU,
64 MiB) of the test guest (\`test=serial-echo\`: idle, its vCPU halted) were created one
after the other until the first failure, $cap instances, or MemAvailable under $min_free MiB.

| what | result |
| --- | --- |
| instances running | **$running** |
| first failure | $(get first_failure) |
| bunshind's memory then | RSS $(mib "$(get daemon_rss_kib)") MiB, PSS $(mib "$(get daemon_pss_kib)") MiB |
| each instance's memory then (jail launcher + VMM, $(get measured) measured) | PSS median **$(mib "$(get vmm_pss_median_kib)") MiB**, p99 $(mib "$(get vmm_pss_p99_kib)") MiB; RSS median $(mib "$(get vmm_rss_median_kib)") MiB, p99 $(mib "$(get vmm_rss_p99_kib)") MiB |
| host MemAvailable then | $(get mem_available_mib) MiB: **$(mib "$per_inst") MiB per instance** (kernel side included), so about $([ "$per_inst" -gt 0 ] && echo $(((avail - min_free) * 1024 / per_inst)) || echo "-") would fit above $min_free MiB |
| deleting them all | $(get delete_all_s) s |

Create to running (POST to the state \`running\`, the VMM answering on its API) as the
count grows, in ms:

| instances | median | min | max |
| --- | --- | --- | --- |
$(boot_rows)

The same guest, $qn VMs at once, $qreps rounds (medians over all $((qn * qreps)) VMs of
each), without bunshind: what one VM costs, and how many of that cost the $avail MiB
available at the start would hold (memory only; CPU, the capacity check and the guest's
own growth are other limits):

| VMM | PSS per VM | RSS per VM | VMs in $avail MiB by PSS |
| --- | --- | --- | --- |
| bunshin-vmm | **$(mib "$b_pss") MiB** | $(mib "$b_rss") MiB | $(fit "$b_pss") |
| QEMU ($("$qemu" --version 2>/dev/null | head -n 1 | awk '{ print $4 }'), microvm) | **$(mib "$q_pss") MiB** | $(mib "$q_rss") MiB | $(fit "$q_pss") |

### Commands

\`\`\`
CAP=$cap MIN_FREE_MIB=$min_free QN=$qn QREPS=$qreps CPU_RATIO=$cpu_ratio RAM_RATIO=$ram_ratio bench/capacity.sh
$vmm --kernel $guest --memory 64M --cpus 1 --cmdline test=serial-echo --serial stdio
$qemu_line
\`\`\`
<!-- END capacity -->
EOT

bench_doc_section "$doc" capacity "$section"
echo "== wrote the capacity section of $doc" >&2
