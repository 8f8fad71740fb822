#!/bin/bash
# bench/net.sh: virtio-net throughput and latency, bunshin-vmm against QEMU
# on the same test guest image (test=net-bench, guest/virtio_net_bench.c),
# in the same run, the VMMs interleaved run by run. Each VMM gets a tap in a
# private network namespace (10.0.2.1/24 on the host side, the guest is
# 10.0.2.15); QEMU's tap backend runs without vhost (this host has no
# /dev/vhost-net, and bunshin has no vhost either).
#
# Rows (all in one guest run per VMM and round):
#   tx     the guest sends UDP datagrams (net_payload bytes) to the host
#          as fast as its transmit ring allows for NET_MS; the guest times
#          it, the tap's rx counters confirm the host kernel got them;
#   rx     bench/netsend (in the namespace, a static neighbour entry for
#          the guest) sends UDP datagrams to the guest as fast as it can;
#          the guest counts what arrives in NET_MS from the first one;
#   rtt    the guest pings the host kernel NET_PINGS times, one at a time,
#          timed on the TSC (no host process in the path);
#   ping   the host pings the guest (HOST_PINGS, 10 ms apart) with ping(8).
#
# Environment: RUNS (per VMM, default 5, at least 5), NET_MS (default
# 3000), NET_PINGS (1000), HOST_PINGS (200), PAYLOAD (1472), BENCH_DOC
# (default docs/benchmarks.md: the "virtio-net" section is replaced or
# appended, the rest of the file is kept), NET_DOC=0 to print only.
# Needs root (namespaces, taps), qemu-system-x86_64, ip, ping.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=bench/lib.sh
. bench/lib.sh

runs=${RUNS:-5}
net_ms=${NET_MS:-3000}
pings=${NET_PINGS:-1000}
host_pings=${HOST_PINGS:-200}
payload=${PAYLOAD:-1472}
doc=${BENCH_DOC:-docs/benchmarks.md}
write_doc=${NET_DOC:-1}
build="build-bench"
guest_mac=52:54:00:12:34:56
guest_ip=10.0.2.15
host_ip=10.0.2.1
# Nothing listens on tx_port: the host kernel takes each datagram through IP
# and UDP in the VMM's write() and drops it there (answering with ICMP port
# unreachable, rate-limited, which the guest ignores), so no host process
# competes for the CPUs; the tap's rx counters do the counting.
tx_port=9000
rx_port=9001
tap=nbtap0
ns=bunshin-netbench-$$
run_timeout=120

die() {
	echo "net.sh: $*" >&2
	exit 1
}
for v in runs net_ms pings host_pings payload; do
	[[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a number"
done
((runs >= 5)) || die "RUNS must be >= 5 (medians of at least 5 runs)"
((payload >= 18 && payload <= 1472)) || die "PAYLOAD must be in [18, 1472]"
((pings >= 1 && pings <= 4096)) || die "NET_PINGS must be in [1, 4096]"
((net_ms >= 100)) || die "NET_MS must be >= 100"

qemu=$(command -v qemu-system-x86_64) || die "qemu-system-x86_64 not found (Debian: qemu-system-x86)"
command -v ip >/dev/null || die "no 'ip' command (iproute2)"
command -v ping >/dev/null || die "no 'ping' command (iputils-ping)"
if ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; then
	die "/dev/kvm is missing or not usable by $(id -un)"
fi

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
work=$(mktemp -d /tmp/bunshin-netbench.XXXXXX)
# The VMM and the sender running now, if any: only those are ever killed
# (a pid already waited for may belong to someone else by then).
vmm_pid=""
sender=""
# Whatever happens (error, ^C), no VMM, sender or namespace is left behind.
cleanup() {
	local p
	for p in "$vmm_pid" "$sender"; do
		[ -n "$p" ] || continue
		kill -9 "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	ip netns del "$ns" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- build ----------------------------------------------------------------

echo "== building netsend and bunshin (release, $build/)" >&2
cc -std=gnu17 -O2 -Wall -Wextra -Werror -o "$work/netsend" bench/netsend.c
bench_build "$work/build.log" src/vmm/bunshin-vmm guest/bunshin-guest.elf
vmm_bin=$build/src/vmm/bunshin-vmm
image=$build/guest/bunshin-guest.elf

# ---- the namespace ----------------------------------------------------------

ip netns add "$ns" || die "'ip netns add' failed (needs CAP_NET_ADMIN)"
ip -n "$ns" link set lo up
ip -n "$ns" tuntap add dev "$tap" mode tap
ip -n "$ns" addr add "$host_ip/24" dev "$tap"
ip -n "$ns" link set "$tap" up
# IPv6 autoconfiguration would put router solicitations on the guest's rings
ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$tap.disable_ipv6=1"
# the receive row must not wait for ARP: the sender knows the guest's MAC
ip -n "$ns" neigh replace "$guest_ip" lladdr "$guest_mac" dev "$tap" nud permanent

tap_stat() {
	ip netns exec "$ns" cat "/sys/class/net/$tap/statistics/$1"
}

# ---- command lines -----------------------------------------------------------

guest_cmdline="test=net-bench net_rows=tx,rx,rtt,serve net_ms=$net_ms net_payload=$payload"
guest_cmdline+=" net_pings=$pings net_serve_echo=$host_pings net_serve_ms=30000"
guest_cmdline+=" net_tx_port=$tx_port net_rx_port=$rx_port net_gap_ms=200"

bunshin_cmd() {
	cmd=("$vmm_bin" --kernel "$image" --cmdline "$1" --cpus 1 --memory 256M
		--net "tap=$tap,mac=$guest_mac")
}

# QEMU's virtio-net needs PCI: -M microvm has none by default. The machine
# is picked below among those on which the guest finds the device.
qemu_machine=()
qemu_cmd() {
	cmd=("$qemu" -accel kvm "${qemu_machine[@]}" -cpu "host,-arch-capabilities" -smp 1 -m 256M
		-object "memory-backend-memfd,id=mem,size=256M"
		-nodefaults -no-user-config -nographic -serial stdio -no-reboot
		-name "net-bench,debug-threads=on"
		-kernel "$image" -append "$1"
		-netdev "tap,id=n0,ifname=$tap,script=no,downscript=no,vhost=off"
		-device "virtio-net-pci,netdev=n0,mac=$guest_mac,disable-legacy=on")
}

# start VMM CMDLINE: the VMM in the namespace, console to $work/out, in the background.
start_vmm() {
	"${1}_cmd" "$2"
	# emptied here, not by the redirection below: that one runs in the
	# background, maybe after wait_line has read the previous run's lines
	: >"$work/out"
	: >"$work/err"
	ip netns exec "$ns" "${cmd[@]}" </dev/null >"$work/out" 2>"$work/err" &
	vmm_pid=$!
}

# wait_line WORDS: until the console has a line with WORDS; false when the VMM
# exited or $run_timeout passed first.
wait_line() {
	local deadline=$((SECONDS + run_timeout))
	while ! grep -q -- "$1" "$work/out"; do
		if ! kill -0 "$vmm_pid" 2>/dev/null || ((SECONDS > deadline)); then
			grep -q -- "$1" "$work/out"
			return
		fi
		sleep 0.02
	done
}

# finish_vmm: waits for the VMM to power off (killing it after the timeout).
finish_vmm() {
	local deadline=$((SECONDS + run_timeout))
	while kill -0 "$vmm_pid" 2>/dev/null && ((SECONDS <= deadline)); do
		sleep 0.05
	done
	if ((SECONDS > deadline)); then
		kill -9 "$vmm_pid" 2>/dev/null || true
	fi
	wait "$vmm_pid" 2>/dev/null || true
	vmm_pid=""
}

run_failed() {
	echo "net.sh: $1 failed: $2; command: ${cmd[*]}" >&2
	echo "--- console:" >&2
	tail -n 20 "$work/out" >&2
	echo "--- stderr:" >&2
	tail -n 20 "$work/err" >&2
	exit 1
}

# dev_cpu FILE: "TID NS" per VMM thread but the vCPU's, NS its time on a CPU
# from schedstat: the device side's work. The guest polls, so its vCPU
# thread is busy all the time whatever the VMM does. bunshin names it
# "vcpu0", QEMU "CPU 0/KVM" (with -name debug-threads=on); fails if there is
# none, so that a renamed thread cannot silently count the vCPU in.
dev_cpu() {
	local t comm ns vcpus=0
	: >"$1"
	for t in /proc/"$vmm_pid"/task/*; do
		comm=$(cat "$t/comm" 2>/dev/null) || continue
		if [[ $comm == vcpu* || $comm == "CPU "*"/KVM" ]]; then
			vcpus=$((vcpus + 1))
			continue
		fi
		read -r ns _ <"$t/schedstat" 2>/dev/null || continue
		echo "${t##*/} $ns" >>"$1"
	done
	((vcpus > 0))
}

# cpu_delta BEFORE AFTER: nanoseconds the threads ran in between, thread by
# thread (one that started in between counts whole; one that exited is lost).
cpu_delta() {
	awk 'NR == FNR { before[$1] = $2; next } { sum += $2 - before[$1] } END { printf "%.0f\n", sum }' \
		"$1" "$2"
}

# kv KEY LINE: the value of KEY=VALUE in LINE.
kv() {
	local w
	for w in $2; do
		if [[ $w == "$1="* ]]; then
			echo "${w#*=}"
			return 0
		fi
	done
	echo "net.sh: no $1 in: $2" >&2
	return 1
}

# ---- QEMU machine types ------------------------------------------------------
# A short tx row on each: the first on which the guest finds the device and
# passes is used. bench/run.sh boots QEMU with -M microvm (qboot), which has
# no PCI bus unless pcie=on, and then nobody assigns BARs.

machines=("microvm,pcie=on|qboot|-M microvm,pcie=on,memory-backend=mem"
	"q35|qboot|-M q35,memory-backend=mem -bios /usr/share/qemu/qboot.rom"
	"q35|SeaBIOS|-M q35,memory-backend=mem")
machine_table=$work/machines
{
	echo "| QEMU machine | firmware | guest's result (\`net_rows=tx net_ms=100\`) |"
	echo "| --- | --- | --- |"
} >"$machine_table"
qemu_name=""
echo "== QEMU machine types" >&2
for m in "${machines[@]}"; do
	IFS='|' read -r name fw args <<<"$m"
	read -r -a qemu_machine <<<"$args"
	start_vmm qemu "test=net-bench net_rows=tx net_ms=100"
	finish_vmm
	line=$(grep -a 'BUNSHIN-TEST name=net-bench' "$work/out" || true)
	res="no result line"
	if [ -n "$line" ]; then
		res=$(kv result "$line")
		[[ $res == pass ]] || res="$res, reason=$(kv reason "$line" || true)"
	fi
	echo "| \`$name\` | $fw | $res |" >>"$machine_table"
	if [ -z "$qemu_name" ] && [[ $res == pass ]]; then
		qemu_name=$name qemu_fw=$fw qemu_args=$args
	fi
done
[ -n "$qemu_name" ] || { cat "$machine_table" >&2; die "the guest finds no virtio-net on any QEMU machine"; }
read -r -a qemu_machine <<<"$qemu_args"
echo "   QEMU: $qemu_name with $qemu_fw" >&2

# ---- measuring ---------------------------------------------------------------

results=$work/results # "METRIC VMM VALUE"
raw=$work/raw         # the guest's lines, per run
: >"$results"
: >"$raw"

# one_run VMM RECORD: every row once; RECORD=0 for the warm-up.
one_run() {
	local vmm=$1 record=$2 rx0 rxb0 line tx rx rtt serve tx_cpu rx_cpu
	local -a t

	rx0=$(tap_stat rx_packets)
	rxb0=$(tap_stat rx_bytes)
	start_vmm "$vmm" "$guest_cmdline"
	# the guest waits 200 ms after tx-ready: time to sample before it sends
	wait_line "net tx-ready" || run_failed "$vmm" "no tx-ready line"
	dev_cpu "$work/c0" || run_failed "$vmm" "no vCPU thread found in /proc/$vmm_pid/task"
	wait_line "net row=tx" || run_failed "$vmm" "no tx row"
	dev_cpu "$work/c1" || run_failed "$vmm" "no vCPU thread found in /proc/$vmm_pid/task"
	wait_line "net rx-ready" || run_failed "$vmm" "no rx-ready line"
	dev_cpu "$work/c2" || run_failed "$vmm" "no vCPU thread found in /proc/$vmm_pid/task"
	# everything the guest sent so far: its ARP request and the tx row
	local host_frames=$(($(tap_stat rx_packets) - rx0)) host_bytes=$(($(tap_stat rx_bytes) - rxb0))
	ip netns exec "$ns" "$work/netsend" "$guest_ip" "$rx_port" "$payload" $((net_ms / 1000 + 60)) \
		>"$work/sender" 2>&1 &
	sender=$!
	wait_line "net row=rx" || run_failed "$vmm" "no rx row"
	dev_cpu "$work/c3" || run_failed "$vmm" "no vCPU thread found in /proc/$vmm_pid/task"
	kill "$sender" 2>/dev/null || true
	wait "$sender" 2>/dev/null || true
	sender=""
	wait_line "net serve-ready" || run_failed "$vmm" "no serve-ready line"
	ip netns exec "$ns" ping -n -c "$host_pings" -i 0.01 -W 1 "$guest_ip" >"$work/ping" 2>&1 || true
	finish_vmm
	tx_cpu=$(cpu_delta "$work/c0" "$work/c1")
	rx_cpu=$(cpu_delta "$work/c2" "$work/c3")
	line=$(grep -a 'BUNSHIN-TEST name=net-bench' "$work/out" || true)
	[[ $(kv result "$line" 2>/dev/null) == pass ]] || run_failed "$vmm" "the guest did not pass"
	tx=$(grep -a 'net row=tx' "$work/out")
	rx=$(grep -a 'net row=rx' "$work/out")
	rtt=$(grep -a 'net row=rtt' "$work/out")
	serve=$(grep -a 'net row=serve' "$work/out")
	mapfile -t t < <(sed -n 's/.*time=\([0-9.]*\) ms.*/\1/p' "$work/ping" | sort -g)
	((${#t[@]} > 0)) || run_failed "$vmm" "no ping replies: $(tail -n 3 "$work/ping")"
	if ((record)); then
		local frames bytes us
		frames=$(kv frames "$tx") bytes=$(kv bytes "$tx") us=$(kv us "$tx")
		# the host kernel must have got what the guest was told was sent
		((host_frames >= frames)) ||
			run_failed "$vmm" "the tap counted $host_frames frames, the guest sent $frames"
		# rec METRIC X Y K: X * K / Y, one decimal
		rec() {
			awk -v m="$1" -v v="$vmm" -v x="$2" -v y="$3" -v k="$4" \
				'BEGIN { printf "%s %s %.2f\n", m, v, x * k / y }'
		}
		local n=${#t[@]}
		{
			rec tx_mbps "$bytes" "$us" 8
			rec tx_kpps "$frames" "$us" 1000
			rec tx_kicks "$(kv kicks "$tx")" "$frames" 1000
			rec rx_mbps "$(kv bytes "$rx")" "$(kv us "$rx")" 8
			rec rx_kpps "$(kv frames "$rx")" "$(kv us "$rx")" 1000
			# ns / frames / 1000: microseconds of device-side CPU per frame
			rec tx_cpu "$tx_cpu" "$frames" 0.001
			rec rx_cpu "$rx_cpu" "$(kv frames "$rx")" 0.001
			rec rtt_p50 "$(kv p50_ns "$rtt")" 1000 1
			rec rtt_p99 "$(kv p99_ns "$rtt")" 1000 1
			# nearest rank, as the guest does for its own RTT
			rec ping_p50 "${t[$(((n * 50 + 99) / 100 - 1))]}" 1 1000
			rec ping_p99 "${t[$(((n * 99 + 99) / 100 - 1))]}" 1 1000
		} >>"$results"
		{
			echo "$vmm: $tx host_frames=$host_frames host_bytes=$host_bytes dev_cpu_ns=$tx_cpu"
			echo "$vmm: $rx $(cat "$work/sender") dev_cpu_ns=$rx_cpu"
			echo "$vmm: $rtt"
			echo "$vmm: $serve ping_replies=${#t[@]}/$host_pings"
		} >>"$raw"
	fi
}

echo "== warm-up round (not recorded), then $runs rounds, VMMs interleaved" >&2
for ((i = 0; i <= runs; i++)); do
	if ((i % 2)); then order=(bunshin qemu); else order=(qemu bunshin); fi
	for vmm in "${order[@]}"; do
		one_run "$vmm" $((i > 0))
	done
	((i == 0)) || echo "   round $i/$runs done" >&2
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- the table ---------------------------------------------------------------

# metric|label|unit|better (hi or lo)
rows=("tx_mbps|tx: guest → host, UDP $payload-byte payload|Mbit/s|hi"
	"tx_kpps|tx: guest → host|kframes/s|hi"
	"tx_kicks|tx: guest notifications per 1000 frames (estimate)|1/1000 frames|lo"
	"tx_cpu|tx: VMM CPU per frame, all threads but the vCPU's|µs|lo"
	"rx_mbps|rx: host → guest, UDP $payload-byte payload|Mbit/s|hi"
	"rx_kpps|rx: host → guest|kframes/s|hi"
	"rx_cpu|rx: VMM CPU per frame, all threads but the vCPU's|µs|lo"
	"rtt_p50|RTT guest → host (ICMP, guest TSC), p50|µs|lo"
	"rtt_p99|RTT guest → host (ICMP, guest TSC), p99|µs|lo"
	"ping_p50|RTT host → guest (ping -i 0.01), p50|µs|lo"
	"ping_p99|RTT host → guest (ping -i 0.01), p99|µs|lo")

# stats METRIC VMM: "median min max" of the samples.
stats() {
	awk -v m="$1" -v v="$2" '$1 == m && $2 == v { print $3 }' "$results" | bench_stats
}

table=$work/table
{
	echo "| Row | unit | bunshin-vmm median (min–max) | QEMU median (min–max) | ratio bunshin/QEMU | better |"
	echo "| --- | --- | --- | --- | --- | --- |"
	for r in "${rows[@]}"; do
		IFS='|' read -r metric label unit better <<<"$r"
		read -r bm blo bhi <<<"$(stats "$metric" bunshin)"
		read -r qm qlo qhi <<<"$(stats "$metric" qemu)"
		awk -v l="$label" -v u="$unit" -v bm="$bm" -v blo="$blo" -v bhi="$bhi" -v qm="$qm" \
			-v qlo="$qlo" -v qhi="$qhi" -v better="$better" 'BEGIN {
			ratio = qm > 0 ? bm / qm : 0
			if (bm == qm) who = "equal"
			else if ((better == "hi") == (bm > qm)) who = "bunshin"
			else who = "QEMU"
			printf "| %s | %s | **%s** (%s–%s) | **%s** (%s–%s) | %.2f | %s (%s is better) |\n",
				l, u, bm, blo, bhi, qm, qlo, qhi, ratio, who,
				better == "hi" ? "higher" : "lower" }'
	done
} >"$table"

cat "$table"
echo
cat "$machine_table"

# ---- the report ----------------------------------------------------------------

bunshin_cmd "$guest_cmdline"
bunshin_line="ip netns exec NS ${cmd[*]}"
qemu_cmd "$guest_cmdline"
qemu_line="ip netns exec NS ${cmd[*]}"
rev=$(git describe --always --dirty 2>/dev/null || echo unknown)
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
if [ -d /sys/module/kvm_pvm ]; then
	kvm_note="\`/dev/kvm\` is KVM nested under PVM: the guest's CPL-3 code (this whole benchmark
after boot) runs natively, each exit to the VMM is expensive (about 29 µs to user space,
3.4 µs through an ioeventfd), and there is no \`/dev/vhost-net\`."
else
	kvm_note="\`/dev/kvm\` is not PVM here."
fi

section=$work/section
cat >"$section" <<EOF
<!-- BEGIN virtio-net: generated by bench/net.sh, do not edit by hand -->
## virtio-net

Generated by \`bench/net.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') (bunshin $rev).

- Host: $cpu_model, $(nproc) logical CPUs; $(uname -sr); $("$qemu" --version | head -n 1)
- Load average (1, 5, 15 min): $load_start at the start, $load_end at the end.
  The machine is shared: other jobs ran during the measurement, so treat
  absolute numbers as rough and compare the ratios.
- $kvm_note

Both VMMs boot the same test guest (\`$image\`, scenario \`net-bench\`,
guest/virtio_net_bench.c) with 1 vCPU and 256 MiB and one virtio-net device
on a tap in a private network namespace (host side $host_ip/24, guest
$guest_ip, MAC $guest_mac). The guest drives the device itself, polled (no
interrupts: under PVM the guest's CPL-0 interrupt path is emulated, which
would measure the emulator), 64-entry rings, MRG_RXBUF, EVENT_IDX and
INDIRECT_DESC when offered, no offloads. QEMU's tap runs without vhost
(there is no \`/dev/vhost-net\` here, and bunshin has none either). Each VMM
ran $runs times after one unrecorded warm-up round, the VMMs alternating
which goes first; cells show the median in bold, then min–max.

- **tx**: the guest keeps its transmit ring full of UDP datagrams
  ($payload-byte payload, $((payload + 42))-byte frames) to the host for $net_ms ms,
  refilling 16 at a time, and times from the first submission to the last
  completion. Mbit/s counts whole Ethernet frames. Nothing listens on the
  port: the host kernel runs each datagram through IP and UDP and drops it,
  so no host process competes for the CPUs. The tap's rx counters
  confirmed each run that the host kernel received at least as many frames as
  the guest counted. The notifications row is the guest's own count of the
  kicks it issued (EVENT_IDX decides): every one is a VM exit.
- **VMM CPU per frame**: the CPU time of every VMM thread except the vCPU
  thread (bunshin's \`vcpu0\`, QEMU's \`CPU 0/KVM\`; the guest polls, so that
  thread is busy regardless), summed from \`/proc/PID/task/*/schedstat\`,
  sampled when the guest prints its \`tx-ready\` line (it then waits 200 ms
  before sending) and its tx row, and at \`rx-ready\` and the rx row, divided
  by the frames of the row. This is the device model's cost per frame (tap
  \`writev\`/\`readv\` and the host network stack under them included), and it
  depends much less on the machine's load than the rates do.
- **rx**: \`bench/netsend.c\` in the namespace sends $payload-byte UDP datagrams to the
  guest as fast as the kernel takes them (\`sendmmsg\`, 64 at a time; what
  the tap cannot queue is dropped there). The guest counts what arrives for
  $net_ms ms from the first datagram, giving each buffer back at once and
  notifying the device every 16.
- **RTT guest → host**: $pings ICMP echo requests to the host kernel, one at a
  time, timed on the guest's TSC from before the submission to the reply in
  the receive ring.
- **RTT host → guest**: \`ping -c $host_pings -i 0.01\` from the namespace, the guest
  answering (polled); p50/p99 of ping's own times.

$(cat "$table")

### Commands

    RUNS=$runs NET_MS=$net_ms bench/net.sh

which runs, in a namespace NS with tap \`$tap\`:

    $bunshin_line

    $qemu_line

\`tests/integration/test_netbench.c\` (meson test \`integration-netbench\`) runs the
same scenario with every row for 200 ms as a smoke test: it checks that each
row reports numbers, never how fast they are.

QEMU needs a machine with PCI: it runs \`$qemu_name\` with $qemu_fw. Machine
types tried in the same run:

$(cat "$machine_table")

<details><summary>Raw guest lines</summary>

\`\`\`
$(cat "$raw")
\`\`\`

</details>
<!-- END virtio-net -->
EOF

if [[ $write_doc == 1 ]]; then
	bench_doc_section "$doc" virtio-net "$section"
	echo "== wrote the virtio-net section of $doc" >&2
fi
