#!/bin/bash
# The README's first command: installs what is missing, builds, starts
# bunshind on its embedded default (one SQLite file in STATE_DIR), creates
# an instance from the test-guest image, shows its console, then deletes
# it and says how to go on. Run it again: it reuses the daemon it started
# (or replaces one that no longer answers). `quickstart.sh stop` stops
# that daemon (VMs outlive it, as always with bunshind).
#
# Knobs (environment):
#   STATE_DIR=DIR          the daemon's state (default /var/lib/bunshin)
#   BUILD_DIR=DIR          the build tree (default build)
#   BUNSHIN_NO_INSTALL=1   do not run scripts/install-deps.sh
#   BUNSHIN_NO_BUILD=1     use BUILD_DIR as it is
#   KEEP_VM=1              leave the instance running
#   SERVER=NAME            the instance's name (default hello)
#   BUNSHIND_ARGS="..."    more bunshind options (e.g. --cgroup-parent X)
set -euo pipefail
cd "$(dirname "$0")/.."

STATE_DIR=${STATE_DIR:-/var/lib/bunshin}
BUILD_DIR=$(realpath -m "${BUILD_DIR:-build}")
SERVER=${SERVER:-hello}
PIDFILE=$STATE_DIR/quickstart.pid
BUNSHIND=$BUILD_DIR/src/daemon/bunshind
CLI=$BUILD_DIR/src/cli/bunshin
GUEST=$BUILD_DIR/guest/bunshin-guest.elf

say() { echo "== $*"; }
die() {
	echo "quickstart: $*" >&2
	exit 1
}

# The pid of the bunshind this script started on STATE_DIR, if it still runs.
daemon_pid() {
	local pid
	[ -r "$PIDFILE" ] || return 1
	pid=$(cat "$PIDFILE")
	[[ $pid =~ ^[0-9]+$ ]] && [ -r "/proc/$pid/cmdline" ] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "bunshind --state-dir $STATE_DIR " || return 1
	echo "$pid"
}

cli() { "$CLI" --endpoint "unix:$STATE_DIR/bunshind.sock" --token "$(cat "$STATE_DIR/admin.token")" "$@"; }

stop_daemon() {
	local pid
	pid=$(daemon_pid) || return 0
	kill -TERM "$pid"
	for _ in $(seq 100); do
		[ -d "/proc/$pid" ] || break
		sleep 0.1
	done
	[ ! -d "/proc/$pid" ] || die "bunshind (pid $pid) did not stop"
	rm -f "$PIDFILE"
	say "bunshind (pid $pid) stopped; its VMs, if any, keep running"
}

if [ "${1:-}" = stop ]; then
	stop_daemon
	exit 0
fi
[ $# -eq 0 ] || die "usage: quickstart.sh [stop]"
[ "$(id -u)" -eq 0 ] || die "run it as root (sudo): VMs need /dev/kvm, jails and cgroups"

if [ "${BUNSHIN_NO_INSTALL:-0}" != 1 ]; then
	scripts/install-deps.sh
fi
if [ "${BUNSHIN_NO_BUILD:-0}" != 1 ]; then
	[ -d "$BUILD_DIR" ] || meson setup "$BUILD_DIR" --buildtype=release
	ninja -C "$BUILD_DIR" src/daemon/bunshind src/cli/bunshin src/vmm/bunshin-vmm \
		guest/bunshin-guest.elf
fi
for f in "$BUNSHIND" "$CLI" "$GUEST"; do
	[ -e "$f" ] || die "$f is missing (build it, or unset BUNSHIN_NO_BUILD)"
done

mkdir -p "$STATE_DIR"
# A daemon that runs but does not answer is replaced; one that answers is reused.
if pid=$(daemon_pid) && ! cli host show >/dev/null 2>&1; then
	say "bunshind (pid $pid) does not answer: replacing it"
	stop_daemon
fi
if pid=$(daemon_pid); then
	say "reusing bunshind (pid $pid) on $STATE_DIR"
else
	# shellcheck disable=SC2086 # BUNSHIND_ARGS is a list of options
	setsid "$BUNSHIND" --state-dir "$STATE_DIR" --guest "$GUEST" ${BUNSHIND_ARGS:-} \
		>>"$STATE_DIR/bunshind.log" 2>&1 </dev/null &
	echo $! >"$PIDFILE"
	for _ in $(seq 100); do
		[ -s "$STATE_DIR/admin.token" ] && cli host show >/dev/null 2>&1 && break
		[ -d "/proc/$(cat "$PIDFILE")" ] || die "bunshind exited; see $STATE_DIR/bunshind.log"
		sleep 0.1
	done
	cli host show >/dev/null 2>&1 || die "bunshind does not answer; see $STATE_DIR/bunshind.log"
	say "bunshind (pid $(cat "$PIDFILE")) started on $STATE_DIR (log: $STATE_DIR/bunshind.log)"
fi

# One left by an earlier KEEP_VM=1 run goes first: the name is taken otherwise.
if cli server show "$SERVER" >/dev/null 2>&1; then
	say "deleting the earlier $SERVER"
	cli server delete "$SERVER" >/dev/null
fi
say "bunshin server create $SERVER --flavor tiny --image test-guest --wait"
cli server create "$SERVER" --flavor tiny --image test-guest --wait
# The guest prints its ready line a moment after the VMM starts.
for _ in $(seq 100); do
	cli server console "$SERVER" 2>/dev/null | grep -q "result=" && break
	sleep 0.1
done
say "bunshin server console $SERVER"
cli server console "$SERVER"
if [ "${KEEP_VM:-0}" = 1 ]; then
	say "$SERVER keeps running (KEEP_VM=1)"
else
	cli server delete "$SERVER" >/dev/null
	say "$SERVER deleted (KEEP_VM=1 keeps it)"
fi

cat <<EOF

bunshind runs on $STATE_DIR (one SQLite file: $STATE_DIR/state.db).
Go on with its admin token:

    export BUNSHIN_ENDPOINT=unix:$STATE_DIR/bunshind.sock
    export BUNSHIN_TOKEN=\$(cat $STATE_DIR/admin.token)
    $CLI server create web1 --flavor tiny --image test-guest --wait
    $CLI server list
    $CLI server console web1
    $CLI host show

Stop the daemon with: $(realpath "$0") stop   (VMs keep running; they are re-adopted at the next start)
EOF
