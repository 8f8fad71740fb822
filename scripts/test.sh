#!/bin/bash
# Set-up command 2: install what is missing, build with AddressSanitizer and
# UndefinedBehaviorSanitizer, and run every test suite. Ends with one line
# "N passed, N failed, N skipped".
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
BUILD=${BUILD:-build-test}
[ -d "$BUILD" ] || meson setup "$BUILD" -Db_sanitize=address,undefined -Db_lundef=false
ninja -C "$BUILD"
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=abort_on_error=0:detect_leaks=1
status=0
meson test -C "$BUILD" --print-errorlogs --num-processes 1 "$@" || status=$?
python3 scripts/test-summary.py "$BUILD/meson-logs/testlog.json" || status=1
exit $status
