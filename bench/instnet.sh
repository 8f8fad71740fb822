#!/bin/bash
# bench/instnet.sh: instance networking, bunshin-vmm against QEMU on the
# same test guest (test=net-bench, guest/virtio_net_bench.c) through the
# path an instance's traffic takes: a tap on a Linux bridge with the
# gateway address, the bridge's own nftables filter (anti-spoofing per
# port), IP forwarding with conntrack and masquerade out of a veth into an
# "outside" namespace. Everything lives in private network namespaces made
# here; the host's own links and rules are never touched.
#
#   namespace H (the host of the instances)     namespace O (outside)
#     bridge bn-1 10.0.2.1/24 (the gateway)
#       tap bt-1: guest A 10.0.2.15
#       tap bt-2: guest B 10.0.2.16
#     veth vh0 192.168.100.1/24  <---------->  veth vo0 192.168.100.2/24
#     nft: the tables bunshind's firewall makes for this network and its
#          two ports (forward and input filters, masquerade, each port's
#          MAC and IP on the bridge), printed by its own generator
# O has no route back to 10.0.2.0/24: only masqueraded traffic can answer.
#
# Rows, each for bunshin-vmm and for QEMU (no vhost on either), the VMMs
# interleaved round by round, medians of RUNS rounds:
#   g2g     A sends UDP to B through the bridge as fast as its ring allows
#           (tx row), B counts what arrives (rx row); then A pings B
#           (rtt rows, B answering in its serve row), and the script reads
#           how long both VMMs' device threads waited for a CPU meanwhile
#           and how much CPU they used each time they ran (schedstat);
#   g2o     A (net_via=the gateway) sends UDP to 192.168.100.2 for NET_MS,
#           counted by vo0's receive counter in O; then A pings O's kernel
#           through the NAT;
#   setup   bunshin only: a real bunshind in a third namespace, the time
#           from POST /v1/instances (test=netprobe: DHCP, then its line)
#           to the guest's DHCP ACK on the wire (bench/dhcpwatch.c), split
#           into the daemon's answer (store, bridge, tap, dnsmasq, VMM
#           start), the guest's boot to its DISCOVER and the DHCP exchange;
#           for the first instance (the network made with it) and a later
#           one on the same network.
#
# Environment: RUNS (default 5, at least 5), NET_MS (2000), NET_PINGS
# (1000), PAYLOAD (1472), BENCH_DOC (default docs/benchmarks.md: the
# "instnet" section is replaced or appended), INSTNET_DOC=0 to print only.
# Needs root, qemu-system-x86_64 (SeaBIOS q35, as bench/net.sh found),
# ip, nft, curl, jq, dnsmasq.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=bench/lib.sh
. bench/lib.sh

runs=${RUNS:-5}
net_ms=${NET_MS:-2000}
pings=${NET_PINGS:-1000}
payload=${PAYLOAD:-1472}
doc=${BENCH_DOC:-docs/benchmarks.md}
write_doc=${INSTNET_DOC:-1}
build="build-bench"
run_timeout=120

die() {
	echo "instnet.sh: $*" >&2
	exit 1
}
for v in RUNS:runs NET_MS:net_ms NET_PINGS:pings PAYLOAD:payload; do
	var=${v#*:}
	[[ ${!var} =~ ^[0-9]{1,9}$ ]] || die "${v%%:*} must be a number: '${!var}'"
done
((runs >= 5)) || die "RUNS must be >= 5 (medians of at least 5 runs)"
((payload >= 18 && payload <= 1472)) || die "PAYLOAD must be in [18, 1472]"
((pings >= 1 && pings <= 4096)) || die "NET_PINGS must be in [1, 4096]"
((net_ms >= 100 && net_ms <= 60000)) || die "NET_MS must be in [100, 60000]"
qemu=$(command -v qemu-system-x86_64) || die "qemu-system-x86_64 not found (Debian: qemu-system-x86)"
for t in ip nft curl jq dnsmasq; do
	command -v "$t" >/dev/null || die "no '$t' command (scripts/install-deps.sh installs it)"
done
bench_require_kvm

# the topology
gw=10.0.2.1
a_ip=10.0.2.15 a_mac=52:54:00:12:34:56
b_ip=10.0.2.16 b_mac=52:54:00:12:34:57
out_host=192.168.100.1 out_ip=192.168.100.2
port=9001
suffix=$$
ns_h=bunshin-instnet-h-$suffix
ns_o=bunshin-instnet-o-$suffix
ns_d=bunshin-instnet-d-$suffix

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
work=$(mktemp -d /tmp/bunshin-instnet.XXXXXX)
# Only the processes this script started, by pid, are ever killed.
pids=()
daemon_pid=""
watch_pid=""
# shellcheck disable=SC2034 # read as ${!p} and ${!pid_var}
pid_a="" pid_b="" # the VMMs of guests A and B, set by start()
cleanup() {
	local p
	for p in "${pids[@]}" "$watch_pid"; do
		[ -n "$p" ] || continue
		kill -9 "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	# --stop-vms-on-exit: bunshind stops its VMs and dnsmasqs on SIGTERM
	if [ -n "$daemon_pid" ]; then
		kill "$daemon_pid" 2>/dev/null || true
		wait "$daemon_pid" 2>/dev/null || true
	fi
	for n in "$ns_h" "$ns_o" "$ns_d"; do
		ip netns del "$n" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- build ------------------------------------------------------------------

echo "== building dhcpwatch and bunshin (release, $build/)" >&2
cc -std=gnu17 -O2 -Wall -Wextra -Werror -o "$work/dhcpwatch" bench/dhcpwatch.c
bench_build "$work/build.log" src/vmm/bunshin-vmm guest/bunshin-guest.elf src/daemon/bunshind
vmm_bin=$build/src/vmm/bunshin-vmm
image=$build/guest/bunshin-guest.elf

# ---- the topology -----------------------------------------------------------

hx() { ip netns exec "$ns_h" "$@"; }
ox() { ip netns exec "$ns_o" "$@"; }

ip netns add "$ns_h" || die "'ip netns add' failed (needs CAP_NET_ADMIN)"
ip netns add "$ns_o"
for n in "$ns_h" "$ns_o"; do
	ip -n "$n" link set lo up
	# IPv6 autoconfiguration would put router solicitations on the guests' rings
	ip netns exec "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
hx sysctl -qw net.ipv4.ip_forward=1
ip -n "$ns_h" link add bn-1 type bridge
ip -n "$ns_h" addr add "$gw/24" dev bn-1
ip -n "$ns_h" link set bn-1 up
for t in bt-1 bt-2; do
	ip -n "$ns_h" tuntap add dev "$t" mode tap
	ip -n "$ns_h" link set "$t" master bn-1
	ip -n "$ns_h" link set "$t" up
done
ip -n "$ns_h" link add vh0 type veth peer name vo0 netns "$ns_o"
ip -n "$ns_h" addr add "$out_host/24" dev vh0
ip -n "$ns_h" link set vh0 up
ip -n "$ns_o" addr add "$out_ip/24" dev vo0
ip -n "$ns_o" link set vo0 up
# nothing waits for ARP in a measured row: the gateway knows both guests
ip -n "$ns_h" neigh replace "$a_ip" lladdr "$a_mac" dev bn-1 nud permanent
ip -n "$ns_h" neigh replace "$b_ip" lladdr "$b_mac" dev bn-1 nud permanent

# The rules bunshind's firewall makes for one network bn-1 (10.0.2.0/24, not
# isolated) with ports 1 (A) and 2 (B) and no port forwards: printed by
# src/daemon/firewall_rules.c itself (bench/fwrules.c), the tables bunshind
# loads (inet bunshin, bridge bunshin) in this script's namespace.
cc -std=gnu17 -O2 -D_GNU_SOURCE -Isrc/daemon -o "$work/fwrules" bench/fwrules.c \
	src/daemon/firewall_rules.c src/hostnet/ipam.c src/common/error.c -ljansson ||
	die "cannot build bench/fwrules.c"
"$work/fwrules" 1 1 10.0.2.0/24 "1,$a_mac,$a_ip" "2,$b_mac,$b_ip" >"$work/rules.nft" ||
	die "bench/fwrules.c failed"
hx nft -f "$work/rules.nft" || die "nft rejected the rules ($work/rules.nft)"

# ---- VMMs -------------------------------------------------------------------

bunshin_cmd() { # TAP MAC CMDLINE
	cmd=("$vmm_bin" --kernel "$image" --cmdline "$3" --cpus 1 --memory 256M
		--net "tap=$1,mac=$2")
}
# q35 with SeaBIOS: the machine bench/net.sh found the guest's virtio-net on
qemu_cmd() {
	cmd=("$qemu" -accel kvm -M "q35,memory-backend=mem" -cpu "host,-arch-capabilities" -smp 1
		-m 256M -object "memory-backend-memfd,id=mem,size=256M"
		-nodefaults -no-user-config -nographic -serial stdio -no-reboot
		-name "instnet,debug-threads=on" -kernel "$image" -append "$3"
		-netdev "tap,id=n0,ifname=$1,script=no,downscript=no,vhost=off"
		-device "virtio-net-pci,netdev=n0,mac=$2,disable-legacy=on")
}

# start VMM NAME TAP MAC CMDLINE: a VMM in H, console to $work/NAME.out.
start() {
	"${1}_cmd" "$3" "$4" "$5"
	: >"$work/$2.out"
	# not through hx: a function put in the background runs in a subshell,
	# and $! would be that shell's pid, not the VMM's (ip netns exec execs)
	ip netns exec "$ns_h" "${cmd[@]}" </dev/null >"$work/$2.out" 2>"$work/$2.err" &
	pids+=($!)
	printf -v "pid_$2" '%s' "$!"
}

# wait_line NAME WORDS: until NAME's console has WORDS; false if its VMM
# exited or run_timeout passed first.
wait_line() {
	local pid_var="pid_$1" deadline=$((SECONDS + run_timeout))
	while ! grep -q -- "$2" "$work/$1.out"; do
		if ! kill -0 "${!pid_var}" 2>/dev/null || ((SECONDS > deadline)); then
			grep -q -- "$2" "$work/$1.out"
			return
		fi
		sleep 0.02
	done
}

# wait_line2 NAME WORDS: as wait_line, for a second line with WORDS.
wait_line2() {
	local pid_var="pid_$1" deadline=$((SECONDS + run_timeout))
	while (($(grep -c -- "$2" "$work/$1.out") < 2)); do
		if ! kill -0 "${!pid_var}" 2>/dev/null || ((SECONDS > deadline)); then
			(($(grep -c -- "$2" "$work/$1.out") >= 2))
			return
		fi
		sleep 0.02
	done
}

# finish NAME: waits for its VMM to power off (killed after run_timeout).
finish() {
	local pid_var="pid_$1" deadline=$((SECONDS + run_timeout))
	while kill -0 "${!pid_var}" 2>/dev/null && ((SECONDS <= deadline)); do
		sleep 0.05
	done
	kill -9 "${!pid_var}" 2>/dev/null || true
	wait "${!pid_var}" 2>/dev/null || true
	local p keep=()
	for p in "${pids[@]}"; do
		[[ $p == "${!pid_var}" ]] || keep+=("$p")
	done
	pids=("${keep[@]}")
}

failed() { # VMM NAME WHY
	echo "instnet.sh: $1 failed: $3" >&2
	for f in "$work/$2.out" "$work/$2.err"; do
		echo "--- $f:" >&2
		tail -n 15 "$f" >&2
	done
	exit 1
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
	echo "instnet.sh: no $1 in: $2" >&2
	return 1
}

# passed VMM NAME: NAME's guest printed result=pass.
passed() {
	local line
	line=$(grep -a 'BUNSHIN-TEST name=net-bench' "$work/$2.out" || true)
	[[ $(kv result "$line" 2>/dev/null) == pass ]] || failed "$1" "$2" "the guest did not pass: $line"
}

results=$work/results # "METRIC VMM VALUE"
raw=$work/raw
: >"$results"
: >"$raw"

# rec METRIC VMM X Y K: X * K / Y into the results.
rec() {
	awk -v m="$1" -v v="$2" -v x="$3" -v y="$4" -v k="$5" \
		'BEGIN { printf "%s %s %.3f\n", m, v, x * k / y }' >>"$results"
}

common="test=net-bench net_payload=$payload net_pings=$pings"

# rq_wait: nanoseconds the threads of guest A's and B's VMMs, but their
# vCPU threads, spent runnable but not running (schedstat's second field):
# how long the device side waited for a CPU. bunshin names its vCPU threads
# vcpuN, QEMU (debug-threads=on) "CPU N/KVM".
# rq_wait FILE: that sum on stdout, and "GUEST:TID:COMM WAIT RUNS CPU" per
# thread (vCPUs included; RUNS: how many times it got a CPU, CPU its time on
# one, ns) in FILE, for the raw lines.
rq_wait() {
	local p t comm w n c sum=0 g
	: >"$1"
	for g in a b; do
		p=pid_$g
		for t in /proc/"${!p}"/task/*; do
			read -r comm <"$t/comm" 2>/dev/null || continue
			read -r c w n <"$t/schedstat" 2>/dev/null || continue
			echo "$g:${t##*/}:${comm// /_} $w $n $c" >>"$1"
			[[ $comm == vcpu* || $comm == "CPU "*"/KVM" ]] && continue
			sum=$((sum + w))
		done
	done
	echo "$sum"
}

# rq_threads BEFORE AFTER: "GUEST:COMM=WAIT_US/RUNS/CPU_US" per thread that ran in between.
rq_threads() {
	awk 'NR == FNR { b[$1] = $2; r[$1] = $3; c[$1] = $4; next } $3 > r[$1] { split($1, k, ":");
		printf "%s%s:%s=%.0f/%d/%.0f", sep, k[1], k[3], ($2 - b[$1]) / 1000, $3 - r[$1],
		($4 - c[$1]) / 1000; sep = "," } END { print "" }' "$1" "$2"
}

# g2g VMM RECORD: A -> B through the bridge, then A pings B in three rtt
# rows: the first after the flood (B's tap may still hold some of it), the
# second measured, the third keeps both VMMs alive while the script reads
# their threads' wait after the second (each row starts with 100 ms of
# draining: time for the script to read before the pings start).
g2g() {
	local vmm=$1 rx tx rtt w0 w1 c r
	# B first: it must be listening (and answer A's ARP) when A starts
	start "$vmm" b bt-2 "$b_mac" "$common net_ip=$b_ip net_peer=$gw net_rows=rx,serve \
net_ms=$net_ms net_rx_port=$port net_rx_wait_ms=60000 net_serve_echo=$((3 * pings)) net_serve_ms=60000"
	wait_line b "net rx-ready" || failed "$vmm" b "no rx-ready line"
	# A sends a little longer than B counts: B's window starts at the first frame
	start "$vmm" a bt-1 "$a_mac" "$common net_ip=$a_ip net_peer=$b_ip net_rows=tx,rtt,rtt,rtt \
net_ms=$((net_ms + 500)) net_tx_port=$port"
	wait_line a "net row=rtt" || failed "$vmm" a "no rtt row"
	w0=$(rq_wait "$work/w0")
	wait_line2 a "net row=rtt" || failed "$vmm" a "no second rtt row"
	w1=$(rq_wait "$work/w1")
	wait_line a "BUNSHIN-TEST" || failed "$vmm" a "no result line"
	wait_line b "BUNSHIN-TEST" || failed "$vmm" b "no result line"
	finish a
	finish b
	passed "$vmm" a
	passed "$vmm" b
	tx=$(grep -a 'net row=tx' "$work/a.out")
	rx=$(grep -a 'net row=rx' "$work/b.out")
	rtt=$(grep -a 'net row=rtt' "$work/a.out" | sed -n 2p)
	if ((!$2)); then return; fi
	rec g2g_rtt_wait "$vmm" "$((w1 - w0))" "$pings" 0.001
	# CPU per wake-up of the same threads: "CPU_NS RUNS" summed
	read -r c r < <(awk 'NR == FNR { w[$1] = $3; c[$1] = $4; next }
		$1 !~ /:(vcpu|CPU_)/ { r += $3 - w[$1]; cpu += $4 - c[$1] } END { print cpu, r }' \
		"$work/w0" "$work/w1")
	rec g2g_rtt_cpu_run "$vmm" "$c" "$r" 0.001
	rec g2g_kpps "$vmm" "$(kv frames "$rx")" "$(kv us "$rx")" 1000
	rec g2g_gbps "$vmm" "$(kv bytes "$rx")" "$(kv us "$rx")" 0.008
	rec g2g_sent_kpps "$vmm" "$(kv frames "$tx")" "$(kv us "$tx")" 1000
	rec g2g_rtt_p50 "$vmm" "$(kv p50_ns "$rtt")" 1000 1
	rec g2g_rtt_p99 "$vmm" "$(kv p99_ns "$rtt")" 1000 1
	printf '%s g2g: A %s\n%s g2g: B %s\n%s g2g: A %s rq_wait_ns=%s\n%s g2g: wait_us/runs/cpu_us %s\n' \
		"$vmm" "$tx" "$vmm" "$rx" "$vmm" "$rtt" $((w1 - w0)) "$vmm" \
		"$(rq_threads "$work/w0" "$work/w1")" >>"$raw"
}

vo_rx() { ox cat /sys/class/net/vo0/statistics/rx_packets; }

# g2o VMM RECORD: A -> outside through the NAT, then A pings the outside.
g2o() {
	local vmm=$1 tx rtt r0 r1 frames us
	start "$vmm" a bt-1 "$a_mac" "$common net_ip=$a_ip net_peer=$out_ip net_via=$gw \
net_rows=tx,rtt net_ms=$net_ms net_tx_port=$port net_gap_ms=200"
	wait_line a "net tx-ready" || failed "$vmm" a "no tx-ready line"
	r0=$(vo_rx)
	wait_line a "net row=tx" || failed "$vmm" a "no tx row"
	# the last frames are still on their way when the guest prints its line
	sleep 0.05
	r1=$(vo_rx)
	wait_line a "BUNSHIN-TEST" || failed "$vmm" a "no result line"
	finish a
	passed "$vmm" a
	tx=$(grep -a 'net row=tx' "$work/a.out")
	rtt=$(grep -a 'net row=rtt' "$work/a.out")
	frames=$((r1 - r0)) us=$(kv us "$tx")
	if ((!$2)); then return; fi
	rec g2o_kpps "$vmm" "$frames" "$us" 1000
	rec g2o_gbps "$vmm" "$((frames * (payload + 42)))" "$us" 0.008
	rec g2o_sent_kpps "$vmm" "$(kv frames "$tx")" "$us" 1000
	rec g2o_delivered "$vmm" "$frames" "$(kv frames "$tx")" 100
	rec g2o_rtt_p50 "$vmm" "$(kv p50_ns "$rtt")" 1000 1
	rec g2o_rtt_p99 "$vmm" "$(kv p99_ns "$rtt")" 1000 1
	printf '%s g2o: A %s outside_frames=%s\n%s g2o: A %s\n' "$vmm" "$tx" "$frames" "$vmm" "$rtt" >>"$raw"
}

echo "== data path: a warm-up round (not recorded), then $runs rounds, VMMs interleaved" >&2
for ((i = 0; i <= runs; i++)); do
	if ((i % 2)); then order=(bunshin qemu); else order=(qemu bunshin); fi
	for vmm in "${order[@]}"; do
		g2g "$vmm" $((i > 0))
		g2o "$vmm" $((i > 0))
	done
	((i == 0)) || echo "   round $i/$runs done" >&2
done
# every drop rule's counter: a rule that dropped measured traffic would be a bug here
echo "nft drop counters (packets): $(hx nft list counters | awk '/^table / { t = $2 }
	/^\tcounter / { n = $2 } /packets/ { printf "%s%s:%s=%s", sep, t, n, $2; sep = "," }
	END { print "" }')" >>"$raw"

# ---- instance network setup, through bunshind ------------------------------

state=$work/state
sock=$state/api.sock
ip netns add "$ns_d"
ip -n "$ns_d" link set lo up
# The wire's times: every DHCP message on every link of the daemon's namespace.
ip netns exec "$ns_d" "$work/dhcpwatch" >"$work/dhcp" 2>"$work/dhcpwatch.err" &
watch_pid=$!
ip netns exec "$ns_d" "$build/src/daemon/bunshind" --state-dir "$state" --listen "unix:$sock" --vmm "$vmm_bin" \
	--guest "$image" --stop-timeout 1 --stop-vms-on-exit --cgroup-parent "bunshin-instnet-$suffix" \
	>"$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 200); do
	[ -S "$sock" ] && [ -s "$state/admin.token" ] && break
	kill -0 "$daemon_pid" 2>/dev/null || { tail -n 20 "$work/daemon.log" >&2; die "bunshind exited"; }
	sleep 0.05
done
if ! [ -S "$sock" ] || ! [ -s "$state/admin.token" ]; then
	die "bunshind did not start in 10 s: $(tail -n 5 "$work/daemon.log")"
fi
token=$(cat "$state/admin.token")

# api METHOD PATH [BODY]: "CODE SECONDS" on stdout, the answer in $work/resp.
api() {
	curl -s --unix-socket "$sock" -H "Authorization: Bearer $token" \
		-H 'Content-Type: application/json' -X "$1" ${3:+-d "$3"} -o "$work/resp" \
		-w '%{http_code} %{time_total}' "http://bunshind$2"
}
need() { # WANT METHOD PATH [BODY]
	local got
	got=$(api "${@:2}")
	[[ ${got%% *} == "$1" ]] || die "$2 $3: HTTP ${got%% *}, wanted $1: $(head -c 300 "$work/resp")"
}
need 201 POST /v1/images "{\"name\":\"netprobe\",\"path\":\"$root/$image\",\"kind\":\"kernel\",\"cmdline\":\"test=netprobe\"}"

# wire_us TAP MAC TYPE DIR min|max: the first or last time of a DHCP
# message of TYPE for MAC on the instance's own TAP (a broadcast is flooded
# to every port of the bridge), in microseconds; empty when none.
wire_us() {
	awk -v tap="$1" -v mac="$2" -v t="$3" -v dir="$4" -v f="$5" \
		'$2 == tap && $3 == dir && $4 == t && $5 == mac {
		if (!n++ || (f == "min" ? $1 < v : $1 > v)) v = $1 } END { if (n) print v }' "$work/dhcp"
}

# boot_one NAME KIND RECORD: POST /v1/instances, then the guest's lease.
boot_one() {
	local name=$1 kind=$2 got t1 secs id mac con disc ack line t_con c=""
	t1=$EPOCHREALTIME
	got=$(api POST /v1/instances "{\"name\":\"$name\",\"flavor\":\"tiny\",\"image\":\"netprobe\",\"start\":true}")
	t1=$EPOCHREALTIME
	[[ ${got%% *} == 201 ]] || die "POST /v1/instances: HTTP ${got%% *}: $(head -c 300 "$work/resp")"
	secs=${got#* }
	id=$(jq -r .id "$work/resp")
	mac=$(jq -r .port.mac "$work/resp")
	[[ $id =~ ^[0-9]+$ && $mac =~ ^[0-9a-f:]{17}$ ]] || die "no id or port in: $(head -c 300 "$work/resp")"
	con=$state/instances/$id/console.log
	local deadline=$((SECONDS + run_timeout))
	until [[ $c == *"BUNSHIN-TEST name=netprobe"*$'\n'* ]]; do
		((SECONDS <= deadline)) || die "$name: no netprobe line in 120 s: $c"
		sleep 0.002
		if [ -r "$con" ]; then IFS= read -r -d '' c <"$con" || true; fi
	done
	t_con=$EPOCHREALTIME
	line=$(grep -a 'BUNSHIN-TEST name=netprobe' <<<"$c")
	[[ $(kv result "$line") == pass ]] || die "$name: the guest got no lease: $line"
	sleep 0.1 # dhcpwatch's line for the ACK
	disc=$(wire_us "bt-$id" "$mac" 1 in min)
	ack=$(wire_us "bt-$id" "$mac" 5 out min)
	[[ -n $disc && -n $ack ]] || die "$name: dhcpwatch saw no DISCOVER or ACK for $mac"
	if (($3)); then
		# from the request's start: curl's own time back from its end
		awk -v k="$kind" -v t1="$t1" -v s="$secs" -v d="$disc" -v a="$ack" -v c="$t_con" 'BEGIN {
			t0 = t1 - s
			printf "setup_%s_daemon bunshin %.3f\n", k, s * 1000
			printf "setup_%s_boot bunshin %.3f\n", k, (d / 1e6 - t1) * 1000
			printf "setup_%s_dhcp bunshin %.3f\n", k, (a - d) / 1000
			printf "setup_%s_total bunshin %.3f\n", k, (a / 1e6 - t0) * 1000
			printf "setup_%s_console bunshin %.3f\n", k, (c - t0) * 1000 }' >>"$results"
		echo "setup $kind: $line discovers=$(awk -v tap="bt-$id" -v m="$mac" '$2 == tap && $3 == "in" && $4 == 1 && $5 == m' "$work/dhcp" | wc -l) post_s=$secs" >>"$raw"
	fi
}

echo "== setup: a warm-up round (not recorded), then $runs rounds through bunshind" >&2
for ((i = 0; i <= runs; i++)); do
	# the network is made with the first instance, taken by the second
	boot_one "first-$i" first $((i > 0))
	boot_one "later-$i" later $((i > 0))
	need 204 DELETE "/v1/instances/first-$i"
	need 204 DELETE "/v1/instances/later-$i"
	need 204 DELETE /v1/networks/default
	((i == 0)) || echo "   round $i/$runs done" >&2
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- the table ----------------------------------------------------------------

# stats METRIC VMM: "median min max" of the samples.
stats() {
	awk -v m="$1" -v v="$2" '$1 == m && $2 == v { print $3 }' "$results" | bench_stats
}
frame=$((payload + 42))
# metric|label|unit|better
rows=("g2g_kpps|guest → guest through the bridge: UDP received by B ($frame-byte frames)|kframes/s|higher"
	"g2g_gbps|guest → guest: the same in bits (whole frames)|Gbit/s|higher"
	"g2g_sent_kpps|guest → guest: what A sent meanwhile (the rest was dropped at B's tap)|kframes/s|higher"
	"g2g_rtt_p50|RTT guest → guest (ICMP, A's TSC), p50|µs|lower"
	"g2g_rtt_p99|RTT guest → guest, p99|µs|lower"
	"g2g_rtt_wait|RTT guest → guest: run-queue wait of both VMMs' threads but the vCPUs', per ping|µs|lower"
	"g2g_rtt_cpu_run|RTT guest → guest: CPU of those threads per time they ran|µs|lower"
	"g2o_kpps|guest → outside through NAT: UDP received in the outside namespace|kframes/s|higher"
	"g2o_gbps|guest → outside: the same in bits (whole frames)|Gbit/s|higher"
	"g2o_sent_kpps|guest → outside: what the guest sent|kframes/s|higher"
	"g2o_rtt_p50|RTT guest → outside through NAT (ICMP, guest TSC), p50|µs|lower"
	"g2o_rtt_p99|RTT guest → outside through NAT, p99|µs|lower")
setup_rows=("daemon|POST /v1/instances answered (store, bridge, tap, dnsmasq hosts file, VMM forked)"
	"boot|then the guest's first DHCPDISCOVER on its tap (VMM start, guest boot, virtio-net up)"
	"dhcp|then the DHCPACK on its tap (the DHCP exchange with dnsmasq)"
	"total|POST to the guest holding its lease (DHCPACK on its tap)"
	"console|POST to the guest's line on its console (polled every 2 ms)")
table=$work/table
{
	echo "| Row | unit | better | bunshin-vmm median (min–max) | QEMU median (min–max) | ratio bunshin/QEMU | bunshin ahead |"
	echo "| --- | --- | --- | --- | --- | --- | --- |"
	for r in "${rows[@]}"; do
		IFS='|' read -r metric label unit better <<<"$r"
		read -r bm blo bhi <<<"$(stats "$metric" bunshin)"
		read -r qm qlo qhi <<<"$(stats "$metric" qemu)"
		bench_row "$label" "$unit" "$better" "$bm" "$blo" "$bhi" "$qm" "$qlo" "$qhi"
	done
	for kind in first later; do
		for r in "${setup_rows[@]}"; do
			IFS='|' read -r metric label <<<"$r"
			read -r bm blo bhi <<<"$(stats "setup_${kind}_$metric" bunshin)"
			echo "| setup, $kind instance of the tenant: $label | ms | lower |" \
				"**$(bench_fmt "$bm")** ($(bench_fmt "$blo")–$(bench_fmt "$bhi")) | n/a (no daemon) | | |"
		done
	done
} >"$table"
cat "$table"

# ---- the report ----------------------------------------------------------------

# med METRIC VMM: the median, formatted; lowest METRIC VMM: the minimum.
med() { bench_fmt "$(stats "$1" "$2" | cut -d' ' -f1)"; }
lowest() { bench_fmt "$(stats "$1" "$2" | cut -d' ' -f2)"; }
# spread METRIC VMM: the fastest round over the slowest.
spread() { stats "$1" "$2" | awk '{ printf "%.2f", ($2 > 0 ? $3 / $2 : 0) }'; }
disc_max=$(sed -n 's/.* discovers=\([0-9]*\).*/\1/p' "$raw" | sort -n | tail -n 1)
if [[ $disc_max == 1 ]]; then
	disc_note="Every guest's first DHCPDISCOVER was answered (one DISCOVER per instance in
every round, the first instance's included: its network's dnsmasq was already listening)."
else
	disc_note="Some guest sent up to $disc_max DHCPDISCOVERs (see the raw lines): one was not
answered, and the guest's retry, 2 s later, is in that round's numbers."
fi

rev=$(git describe --always --dirty 2>/dev/null || echo unknown)
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
bunshin_cmd bt-1 "$a_mac" "CMDLINE"
bunshin_line="ip netns exec H ${cmd[*]}"
qemu_cmd bt-1 "$a_mac" "CMDLINE"
qemu_line="ip netns exec H ${cmd[*]}"
if [ -d /sys/module/kvm_pvm ]; then
	kvm_note="\`/dev/kvm\` is KVM nested under PVM: the guests' CPL-3 code (all of the data
  path rows after boot) runs natively, each exit to a VMM is expensive, and there is no
  \`/dev/vhost-net\`."
else
	kvm_note="\`/dev/kvm\` is not PVM here."
fi

section=$work/section
cat >"$section" <<EOF
<!-- BEGIN instnet: generated by bench/instnet.sh, do not edit by hand -->
## Instance networking

Generated by \`bench/instnet.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') (bunshin $rev).

- Host: $cpu_model, $(nproc) logical CPUs; $(uname -sr); $("$qemu" --version | head -n 1)
- Load average (1, 5, 15 min): $load_start at the start, $load_end at the end.
  The machine is shared: other jobs ran during the measurement, so treat
  absolute numbers as rough and compare the ratios.
- $kvm_note

What an instance's traffic crosses, built by the script in private network
namespaces (the host's links and rules are never touched), named as
bunshind names them: a Linux bridge \`bn-1\` with the gateway address
$gw/24, one tap per guest on it (\`bt-1\`, \`bt-2\`), IP forwarding with
conntrack, the nftables rules bunshind's firewall
(\`src/daemon/firewall_rules.c\`) makes for that network and its two ports
(\`table inet\`: the forward filter with replies by \`ct state\`, the input
filter, masquerade out of anything but a bridge; \`table bridge\`: each port
may only send from its own MAC and IP, looked up in sets), printed by that
generator itself (\`bench/fwrules.c\`) and loaded as bunshind loads them, and a veth to an "outside" namespace at $out_ip, which has no
route back to the guests' subnet (only masqueraded traffic can be
answered). Both VMMs boot the same test guest (\`$image\`,
scenario \`net-bench\`, guest/virtio_net_bench.c, polled queues: see the
virtio-net section) with 1 vCPU and 256 MiB on a tap, QEMU's with
\`vhost=off\` (there is no \`/dev/vhost-net\` here, and bunshin has no
vhost). QEMU runs q35 with SeaBIOS (the machine on which bench/net.sh finds
the guest's virtio-net). Each VMM ran $runs rounds after one unrecorded
warm-up round, the VMMs alternating which goes first; cells show the
median in bold, then min–max.

- **guest → guest**: guest B ($b_ip) starts first and waits in its \`rx\`
  row; guest A ($a_ip) then sends UDP datagrams ($payload-byte payload,
  $frame-byte frames) to B for $((net_ms + 500)) ms, its transmit ring kept
  full, and B counts what reaches it in the $net_ms ms from its first
  datagram. The frames cross A's VMM, A's tap, the bridge (with the bridge
  filter), B's tap and B's VMM. What A sends beyond what B's polled ring
  takes is dropped at B's tap, as on any bridge; both numbers are shown.
  Then A pings B, one at a time, timed on A's TSC, while B answers in its
  \`serve\` row: three rounds of $pings, of which the second is the one
  shown (the first follows the flood, the third keeps both VMMs alive
  while the script reads, from \`/proc/PID/task/*/schedstat\`, how long
  the threads of both VMMs but their vCPU threads waited runnable for a
  CPU during the second, summed over the threads and divided by the pings).
- **guest → outside**: guest A alone, with \`net_via=$gw\` (the frames go to
  the gateway's MAC, as a routed instance's do), sends the same datagrams
  to $out_ip:$port for $net_ms ms; the outside namespace's veth receive
  counter, sampled when the guest announces the row and 50 ms after it
  reports it, counts what crossed the bridge, the forward filter, the
  masquerade and the veth (nothing listens there: the outside kernel drops
  each datagram after UDP, so no process competes for the CPUs). Then A
  pings $out_ip $pings times through the NAT.
- **setup**: a real bunshind (release build, jailed VMMs, its own dnsmasq per
  network) in a third namespace, and \`bench/dhcpwatch.c\` there, which
  timestamps (kernel receive time, \`SO_TIMESTAMPNS\`) every DHCP message on
  every link of the namespace, the links bunshind makes later included.
  \`POST /v1/instances\` (tiny flavor, image \`test=netprobe\`: DHCP, then its
  line) is timed by curl; the instance's own tap \`bt-ID\` shows when the
  guest's first DHCPDISCOVER leaves it and when the DHCPACK reaches it. Each
  round makes the tenant's first instance (bunshind creates the default
  network with it: the bridge, the dnsmasq) and then a later one on the same
  network, then deletes both and the network. The daemon answers once the
  VMM is forked (state STARTING); the guest's boot up to its DISCOVER is
  the VMM's start, the guest's boot and its virtio-net set-up. There is no
  daemon for QEMU: these rows are bunshin's only.

$(cat "$table")

Reading the numbers: this machine has $(nproc) CPUs, and in the guest → guest
rows two guests poll, so both vCPU threads are busy all the time and
everything else (each VMM's device thread, and the bridge, netfilter and
tap work the kernel does in the context of those threads' tap writes) has
to take a CPU from a spinning vCPU. Those rows measure the scheduler as
much as the device models. A ping from A to B crosses four device-thread
wake-ups (A's transmit, B's receive, B's transmit, A's receive), and the
run-queue rows show the cost: the device threads of both VMMs waited
$(med g2g_rtt_wait bunshin) µs per ping for a CPU with bunshin and $(med g2g_rtt_wait qemu) µs with QEMU,
against round trips of $(med g2g_rtt_p50 bunshin) and $(med g2g_rtt_p50 qemu) µs. bunshin's I/O thread
also used $(med g2g_rtt_cpu_run bunshin) µs of CPU each time it ran, QEMU's main loop $(med g2g_rtt_cpu_run qemu) µs; a thread
that runs longer each time is placed later when it wakes (EEVDF), which
fits its longer waits. Its I/O thread used to busy-poll a fixed 50 µs
after every batch of work (perf showed \`epoll_wait\` and \`clock_gettime\`
on top), which for pings 100 µs apart is all waste and, with no CPU to
spare, time taken from a vCPU; the window now adapts to the gaps between
events (src/vmm/devices/iothread.c, as QEMU adapts its polling), which
took this row from 65.9 to about 28 µs and the round trip from 213 to
about 112 µs (from 1.77 to 1.22 times QEMU's) on this machine. The guest → guest p99
rows are milliseconds for both: a ping that waits behind a vCPU's whole
time slice.

In the guest → guest throughput rows the sender outruns the receiver: B's
ring takes what B's VMM hands it and B's tap drops the rest (its queue
holds 1000 frames), so the rate B received is the one to read, and it too
is bounded by how often the two device threads get a CPU. Guest → outside
has no receiving guest: the outside kernel took at least $(lowest g2o_delivered bunshin)% (bunshin)
and $(lowest g2o_delivered qemu)% (QEMU) of what the guest sent in every run, so those rows are the
transmit path (the VMM, the tap, the bridge, the forward filter with
conntrack, the masquerade, the veth) with one guest polling and a CPU
left for the rest; the round trip through the NAT is then
$(med g2o_rtt_p50 bunshin) µs (bunshin) and $(med g2o_rtt_p50 qemu) µs (QEMU) at the median. The fastest
round's rate was $(spread g2o_kpps bunshin) (bunshin) and $(spread g2o_kpps qemu) (QEMU) times the slowest's: on this
shared machine, read the guest → outside rates with that spread in mind.

Setting up an instance's network is cheap next to booting it: bunshind
answers the create in $(med setup_first_daemon bunshin) ms for the tenant's first instance (the
network, its bridge and its dnsmasq made with it) and $(med setup_later_daemon bunshin) ms for a
later one, and the DHCP exchange itself (DISCOVER to ACK, with the OFFER
and REQUEST between) takes $(med setup_first_dhcp bunshin) and $(med setup_later_dhcp bunshin) ms. Nearly all of the
$(med setup_first_total bunshin) ms (first) and $(med setup_later_total bunshin) ms (later) from the request to a lease is the
guest's boot up to its first DISCOVER: the jailed VMM's start, the test
guest's boot (its CPL-0 code is emulated under PVM) and its PCI and
virtio-net set-up. $disc_note

### Commands

    RUNS=$runs NET_MS=$net_ms NET_PINGS=$pings bench/instnet.sh

which runs each guest, in namespace H on tap \`bt-1\` (A) or \`bt-2\` (B), as

    $bunshin_line

    $qemu_line

with CMDLINE, for A to B: \`$common net_ip=$a_ip net_peer=$b_ip net_rows=tx,rtt,rtt,rtt net_ms=$((net_ms + 500)) net_tx_port=$port\`;
for B: \`$common net_ip=$b_ip net_peer=$gw net_rows=rx,serve net_ms=$net_ms net_rx_port=$port net_rx_wait_ms=60000 net_serve_echo=$((3 * pings)) net_serve_ms=60000\`;
for A to the outside: \`$common net_ip=$a_ip net_peer=$out_ip net_via=$gw net_rows=tx,rtt net_ms=$net_ms net_tx_port=$port net_gap_ms=200\`.
The nftables rules:

\`\`\`
$(cat "$work/rules.nft")
\`\`\`

<details><summary>Raw guest lines</summary>

\`\`\`
$(cat "$raw")
\`\`\`

</details>
<!-- END instnet -->
EOF

if [[ $write_doc == 1 ]]; then
	bench_doc_section "$doc" instnet "$section"
	echo "== wrote the instnet section of $doc" >&2
else
	cat "$section"
fi
