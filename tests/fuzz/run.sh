#!/bin/sh
# Runs one libFuzzer target: run.sh FUZZER SEED_DIR CORPUS_DIR ARTIFACT_DIR [libFuzzer options]
# New inputs go to CORPUS_DIR (created; emptied first when FUZZ_FRESH=1), the
# seeds are only read, and a crashing input is kept in ARTIFACT_DIR.
set -eu
fuzzer=$1 seeds=$2 corpus=$3 artifacts=$4
shift 4
[ "${FUZZ_FRESH:-0}" = 1 ] && rm -rf "$corpus"
mkdir -p "$corpus" "$artifacts"
log=$artifacts/last-run.log
if "$fuzzer" -print_final_stats=1 -artifact_prefix="$artifacts/" "$@" "$corpus" "$seeds" >"$log" 2>&1; then
	grep -E '^(#[0-9]+[[:space:]]+DONE|Done|stat::)' "$log" || tail -n 5 "$log"
	exit 0
fi
tail -n 60 "$log"
echo "fuzzer failed; crashing inputs (if any) in $artifacts:"
ls -l "$artifacts"
exit 1
