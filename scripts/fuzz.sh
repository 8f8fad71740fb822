#!/bin/bash
# Fuzzes one target for a while: scripts/fuzz.sh TARGET [SECONDS] [libFuzzer options...]
#   scripts/fuzz.sh virtq 300 -jobs=2 -workers=2
# Builds in $BUILD (default build-fuzz, configured with -Dfuzz=enabled), keeps a
# growing corpus in $BUILD/tests/fuzz/corpus-long-TARGET and any crashing input
# in $BUILD/tests/fuzz/artifacts-TARGET/. Reproduce one with
#   $BUILD/tests/fuzz/fuzz_TARGET CRASH-FILE
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: scripts/fuzz.sh TARGET [SECONDS] [libFuzzer options...]}
secs=${2:-60}
shift $(($# < 2 ? $# : 2))
BUILD=${BUILD:-build-fuzz}
[ -d "$BUILD" ] || meson setup "$BUILD" -Dfuzz=enabled
ninja -C "$BUILD" "tests/fuzz/fuzz_$name" "tests/fuzz/corpus-$name"
dir=$BUILD/tests/fuzz
exec tests/fuzz/run.sh "$dir/fuzz_$name" "$dir/corpus-$name" "$dir/corpus-long-$name" \
	"$dir/artifacts-$name" -max_total_time="$secs" "$@"
