# bench/lib.sh: what every benchmark script does the same way; sourced, not run.
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
