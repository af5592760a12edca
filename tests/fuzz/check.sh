#!/bin/bash
# tests/fuzz/check.sh: the fuzz targets' part of make check, as TAP.
#
# Per target: every input of corpus/TARGET and regressions/TARGET runs once
# (a fixed crash stays fixed), then the target fuzzes from a scratch copy of
# its corpus for PARLEY_FUZZ_SECONDS (default 15). A crash, leak, sanitizer
# report or broken invariant fails the test; the input that caused it is
# kept under tests/fuzz/findings/ in the build tree, to be fixed and then
# added to regressions/TARGET. scripts/dev fuzz runs the long version.
#
# make check runs this also when configure found no clang with libFuzzer
# (PARLEY_FUZZ_BUILT=no, from Makefile.am): then the targets are one skipped
# test, and under CI=true one failed test, so CI never passes without them.
set -uo pipefail

if [ "${PARLEY_FUZZ_BUILT:-yes}" = no ]; then
	why="configure found no clang with libFuzzer, or ran with --disable-fuzz (apt-get install clang libclang-rt-14-dev, then re-run configure)"
	if [ "${CI:-}" = true ]; then
		echo "1..1"
		echo "not ok 1 - fuzz targets could not run: $why"
	else
		echo "1..0 # SKIP fuzz targets not built: $why"
	fi
	exit 0
fi

src=${abs_top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/fuzz
bin=${abs_top_builddir:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/fuzz
seconds=${PARLEY_FUZZ_SECONDS:-15}
targets=(fuzz_config fuzz_frame fuzz_request fuzz_push fuzz_attachment)
work=$(mktemp -d "${TMPDIR:-/tmp}/parley-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
# libFuzzer reports leaks itself; UBSan reports stop the run.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

echo "1..$((2 * ${#targets[@]}))"
n=0
for t in "${targets[@]}"; do
	inputs=()
	for d in "$src/corpus/$t" "$src/regressions/$t"; do
		[ -d "$d" ] && while IFS= read -r f; do inputs+=("$f"); done \
			< <(find "$d" -type f ! -name '.*' | sort)
	done
	n=$((n + 1))
	if [ ! -x "$bin/$t" ]; then
		echo "not ok $n - $t: replay (no $bin/$t: make fuzz)"
	elif "$bin/$t" "${inputs[@]}" >"$work/$t.replay.log" 2>&1; then
		echo "ok $n - $t: replays ${#inputs[@]} corpus and regression inputs"
	else
		echo "not ok $n - $t: replay of corpus and regressions failed"
		sed 's/^/# /' "$work/$t.replay.log" | tail -40
	fi

	n=$((n + 1))
	dict=()
	[ -f "$src/dict/$t.dict" ] && dict=(-dict="$src/dict/$t.dict")
	mkdir -p "$work/$t" "$work/$t.findings"
	cp "$src/corpus/$t"/* "$work/$t/" 2>/dev/null
	if [ ! -x "$bin/$t" ]; then
		echo "not ok $n - $t: fuzz (not built)"
	elif nice -n 5 "$bin/$t" -max_total_time="$seconds" -timeout=10 \
		-print_final_stats=1 "${dict[@]}" \
		-artifact_prefix="$work/$t.findings/" "$work/$t" \
		>"$work/$t.log" 2>&1; then
		execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log")
		echo "ok $n - $t: ${execs:-?} executions in ${seconds} s without a finding"
	else
		mkdir -p "$bin/findings"
		cp "$work/$t.findings"/* "$bin/findings/" 2>/dev/null
		echo "not ok $n - $t: fuzzing found a problem (input kept in $bin/findings/)"
		grep -E 'ERROR|SUMMARY|invariant|runtime error|^    #[0-9]' "$work/$t.log" |
			head -40 | sed 's/^/# /'
	fi
done
