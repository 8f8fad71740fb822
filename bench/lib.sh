# bench/lib.sh: what every benchmark script does the same way; sourced, not run.
# shellcheck shell=bash
# Each script sets $build (its build directory) before calling these.

# bench_require_kvm: /dev/kvm must be there and usable, or the script stops.
bench_require_kvm() {
	if ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; then
		echo "${0##*/}: /dev/kvm is missing or not usable by $(id -un)" >&2
		exit 1
	fi
}

# bench_build LOG TARGET...: the release build of bunshin in $build (made or
# reconfigured), only the targets named; on failure the log's tail and exit 1.
# Release and no sanitizers: the benchmarks measure what users run.
bench_build() {
	local log=$1
	shift
	if ! {
		if [ -f "$build/build.ninja" ]; then
			meson configure "$build" --buildtype=release -Db_sanitize=none -Dtests=false
		else
			meson setup "$build" --buildtype=release -Db_sanitize=none -Dtests=false
		fi
		ninja -C "$build" "$@"
	} >"$log" 2>&1; then
		tail -n 40 "$log" >&2
		echo "${0##*/}: the build failed" >&2
		exit 1
	fi
}

# bench_stats: "median min max" of the numbers on stdin, one per line
# ("nan nan nan" when there are none).
bench_stats() {
	sort -g | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "nan nan nan"; exit }
		m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		print m, v[1], v[NR] }'
}

# bench_fmt X: X with three significant digits or so, for a table cell.
bench_fmt() {
	awk -v x="$1" 'BEGIN { if (x >= 1000) printf "%.0f", x; else if (x >= 100) printf "%.1f", x;
		else printf "%.2f", x }'
}

# bench_row LABEL UNIT BETTER BM BLO BHI QM QLO QHI: one markdown row of a
# bunshin-vs-QEMU table (BETTER: higher or lower), as the header
#   | Row | unit | better | bunshin-vmm median (min–max) | QEMU median (min–max) | ratio bunshin/QEMU | bunshin ahead |
bench_row() {
	local label=$1 unit=$2 better=$3 bm=$4 blo=$5 bhi=$6 qm=$7 qlo=$8 qhi=$9
	awk -v label="$label" -v unit="$unit" -v better="$better" -v bm="$bm" -v qm="$qm" \
		-v bs="**$(bench_fmt "$bm")** ($(bench_fmt "$blo")–$(bench_fmt "$bhi"))" \
		-v qs="**$(bench_fmt "$qm")** ($(bench_fmt "$qlo")–$(bench_fmt "$qhi"))" 'BEGIN {
		r = qm > 0 ? bm / qm : 0
		ahead = qm > 0 ? ((better == "higher") == (r > 1) ? "yes" : "no") : "n/a"
		printf "| %s | %s | %s | %s | %s | %.3g | %s |\n", label, unit, better, bs, qs, r, ahead
	}'
}

# bench_doc_section DOC NAME SECTION: replaces the part of DOC between the
# lines "<!-- BEGIN NAME" and "<!-- END NAME" (either case) with the file
# SECTION, or appends SECTION after a blank line; the rest of DOC is kept.
bench_doc_section() {
	local doc=$1 name=$2 section=$3 tmp
	mkdir -p "$(dirname "$doc")"
	touch "$doc"
	tmp=$(mktemp)
	awk -v sect="$section" -v name="$name" '
		function marks(l, word) { return tolower(l) ~ ("^<!-- " word " " name "([ :-]|$)") }
		marks($0, "begin") { skip = 1; while ((getline l < sect) > 0) print l; done = 1; next }
		skip && marks($0, "end") { skip = 0; next }
		!skip { print }
		END { if (!done) { print ""; while ((getline l < sect) > 0) print l } }' "$doc" >"$tmp"
	cat "$tmp" >"$doc"
	rm -f "$tmp"
}

# bench_daemon_start STATE LOG [ARG...]: bunshind from $build on the state
# directory STATE (stdout and stderr into LOG), with ARGs; sets daemon_pid
# and waits (up to 10 s) for its socket and admin token. Prefix the call
# with BENCH_DAEMON_WRAP="unshare -n" for a network namespace of its own.
bench_daemon_start() {
	local state=$1 log=$2
	shift 2
	mkdir -p "$state"
	${BENCH_DAEMON_WRAP:-} "$build/src/daemon/bunshind" --state-dir "$state" \
		--guest "$build/guest/bunshin-guest.elf" "$@" >"$log" 2>&1 &
	daemon_pid=$!
	for _ in $(seq 100); do
		[ -S "$state/bunshind.sock" ] && [ -s "$state/admin.token" ] && return 0
		sleep 0.1
	done
	echo "${0##*/}: bunshind did not start; its log:" >&2
	tail -n 20 "$log" >&2
	exit 1
}

# bench_netns_daemon NAME [ARG...]: for a benchmark of bunshind. The first
# time, builds the release bunshind, VMM, guest and CLI in $build and runs
# the script again (no arguments: benchmarks take the environment) in a
# network namespace of its own, whose bridges and taps never touch the
# host's. There: $work (removed at exit), bunshind on $work/state with
# ARGs (stopped at exit), $state, and cli() calling bunshin as its admin.
bench_netns_daemon() {
	local name=$1
	shift
	if [ -z "${BENCH_IN_NETNS:-}" ]; then
		echo "== building bunshin (release, $build/)" >&2
		bench_build "/tmp/$name-bench-build.log" src/vmm/bunshin-vmm guest/bunshin-guest.elf \
			src/daemon/bunshind src/cli/bunshin
		exec unshare -n env BENCH_IN_NETNS=1 "$0"
	fi
	work=$(mktemp -d "/tmp/bunshin-$name-bench.XXXXXX")
	daemon_pid=
	trap bench_netns_daemon_end EXIT
	state=$work/state
	bench_daemon_start "$state" "$work/daemon.log" "$@"
}

bench_netns_daemon_end() {
	if [ -n "$daemon_pid" ]; then
		kill "$daemon_pid" 2>/dev/null || true
		wait "$daemon_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}

cli() {
	"$build/src/cli/bunshin" --endpoint "unix:$state/bunshind.sock" \
		--token "$(cat "$state/admin.token")" "$@"
}

# bench_vmm_smaps LAUNCHER: "RSS PSS PRIVATE_DIRTY" (kB) of the jailed VMM,
# the child of its launcher LAUNCHER (a PID namespace of its own); "0 0 0"
# when there is none.
bench_vmm_smaps() {
	local vmm
	vmm=$(pgrep -P "$1" | head -1 || true)
	if [ -z "$vmm" ]; then
		echo "0 0 0"
		return
	fi
	awk '/^Rss:/ {r = $2} /^Pss:/ {p = $2} /^Private_Dirty:/ {d = $2} END {print r, p, d}' \
		"/proc/$vmm/smaps_rollup"
}
