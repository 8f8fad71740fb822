#!/bin/bash
# scripts/quickstart.sh for real, in a private state directory and network
# namespace: a first run starts bunshind and shows the guest's console and
# leaves no VM; a second (KEEP_VM=1) reuses the daemon and keeps its VM; a
# third, after the daemon was killed, starts a new one that re-adopts it and
# replaces it cleanly. Then the README's "two teams" walkthrough, its lines
# taken from README.md, and `quickstart.sh stop`.
# Environment (meson): BUILD_DIR, SOURCE_DIR.
set -euo pipefail

if [ "${QS_IN_NETNS:-}" != 1 ]; then
	[ "$(id -u)" -eq 0 ] || { echo "skip: needs root (jails, cgroups, namespaces)"; exit 77; }
	[ -w /dev/kvm ] || { echo "skip: /dev/kvm is not usable here"; exit 77; }
	exec unshare -n env QS_IN_NETNS=1 "$0" "$@"
fi

SRC=${SOURCE_DIR:?}
export STATE_DIR
STATE_DIR=$(mktemp -d /tmp/bunshin-qs-XXXXXX)
export BUILD_DIR=${BUILD_DIR:?} BUNSHIN_NO_INSTALL=1 BUNSHIN_NO_BUILD=1
BUNSHIND_ARGS="--cgroup-parent $(basename "$STATE_DIR") --stop-timeout 1"
export BUNSHIND_ARGS
QS=$SRC/scripts/quickstart.sh
OUT=$STATE_DIR.out
CLI=$BUILD_DIR/src/cli/bunshin

fail() {
	echo "FAIL: $*"
	echo "--- last output:"
	cat "$OUT" 2>/dev/null || true
	echo "--- bunshind.log:"
	tail -20 "$STATE_DIR/bunshind.log" 2>/dev/null || true
	exit 1
}

# VMMs (or their jails' launchers) of this state directory: ours only.
vmm_pids() { pgrep -f "bunshin-vmm.*$STATE_DIR" || true; }

cleanup() {
	local pid
	"$QS" stop >/dev/null 2>&1 || true
	for pid in $(vmm_pids); do kill -9 "$pid" 2>/dev/null || true; done
	sleep 0.2
	rm -rf "$STATE_DIR" "$OUT"
}
trap cleanup EXIT

cli() { "$CLI" --endpoint "unix:$STATE_DIR/bunshind.sock" --token "$(cat "$STATE_DIR/admin.token")" "$@"; }

# 1: a fresh start, the console, no VM left.
"$QS" >"$OUT" 2>&1 || fail "first run exited with $?"
grep -q "bunshind (pid [0-9]*) started" "$OUT" || fail "no daemon start"
grep -q "name=serial-echo result=ready" "$OUT" || fail "no console"
grep -q "BUNSHIN_TOKEN=.*admin.token" "$OUT" || fail "no hint how to go on"
[ -z "$(vmm_pids)" ] || fail "a VMM was left behind"
pid1=$(cat "$STATE_DIR/quickstart.pid")
echo "ok 1 - first run: started, console shown, no VM left"

# 2: again, keeping the VM: the same daemon.
KEEP_VM=1 "$QS" >"$OUT" 2>&1 || fail "second run exited with $?"
grep -q "reusing bunshind (pid $pid1)" "$OUT" || fail "the daemon was not reused"
[ -n "$(vmm_pids)" ] || fail "KEEP_VM=1 left no VM"
echo "ok 2 - second run: daemon reused, KEEP_VM=1 keeps the VM"

# 3: the daemon killed: a new one, which adopts the VM; the run replaces it.
kill -9 "$pid1"
while [ -d "/proc/$pid1" ]; do sleep 0.1; done
"$QS" >"$OUT" 2>&1 || fail "third run exited with $?"
grep -q "started" "$OUT" || fail "no new daemon"
grep -q "deleting the earlier hello" "$OUT" || fail "the kept VM was not replaced"
[ -z "$(vmm_pids)" ] || fail "a VMM was left behind after the third run"
[ "$(cli server list --json | grep -c '"name"')" -eq 0 ] || fail "instances left"
echo "ok 3 - third run after kill -9: new daemon, kept VM replaced, none left"

# 4: the README's two-teams walkthrough, as written there.
sed -n '/<!-- two-teams:begin -->/,/<!-- two-teams:end -->/p' "$SRC/README.md" |
	sed -n 's/^    //p' >"$STATE_DIR/two-teams.sh"
[ "$(wc -l <"$STATE_DIR/two-teams.sh")" -gt 10 ] || fail "no walkthrough in README.md"
(cd "$SRC" && PATH=$BUILD_DIR/src/cli:$PATH bash -e "$STATE_DIR/two-teams.sh") >"$OUT" 2>&1 ||
	fail "the walkthrough failed"
grep -q "quota exceeded: ram_mib" "$OUT" || fail "b2 was not refused at first"
grep -q "refused: b2 needs" "$OUT" || fail "no refusal"
grep -q "name=serial-echo result=ready" "$OUT" || fail "no console of b1"
grep -q "quota_ram_mib *2560" "$OUT" || fail "the quota did not move"
[ -z "$(vmm_pids)" ] || fail "the walkthrough left a VMM"
echo "ok 4 - the README's two-teams walkthrough"

# 5: stop: the daemon is gone.
"$QS" stop >"$OUT" 2>&1 || fail "stop exited with $?"
[ ! -e "$STATE_DIR/quickstart.pid" ] || fail "the pid file stayed"
pgrep -f "bunshind --state-dir $STATE_DIR " >/dev/null && fail "bunshind still runs"
echo "ok 5 - quickstart.sh stop"
