#!/usr/bin/env bash
# The rules-parser fuzzer (libFuzzer): replays every file in
# tests/fuzz/regressions/ (each crash or hang ever found), then fuzzes for
# SECONDS (default 60) from a seed corpus of every YAML file in rules/ and
# tests/. TAP lines on stdout. A new crash is left in build/fuzz/crashes/:
# once fixed, copy it into tests/fuzz/regressions/.
set -uo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
out=${OUTPUT:-build}/fuzz
bin=$out/fuzz_rules
rc=0

if [ ! -x "$bin" ]; then
	echo "not ok - fuzz_rules: $bin is not built (make $bin)"
	exit 1
fi
mkdir -p "$out/corpus" "$out/crashes"
# A slow input is a failure too (-timeout): 1 MiB of '[' once took minutes.
opts=(-timeout=10 -rss_limit_mb=2048 -max_len=16384 -dict=tests/fuzz/rules.dict
	-artifact_prefix="$out/crashes/")

regs=(tests/fuzz/regressions/*)
if "$bin" "${opts[@]}" "${regs[@]}" >"$out/regressions.log" 2>&1; then
	echo "ok - fuzz_rules: ${#regs[@]} regression inputs replay without a crash"
else
	echo "not ok - fuzz_rules: a regression input fails again # see $out/regressions.log"
	rc=1
fi

# Seeds, gathered afresh each run; what the fuzzer finds stays in the corpus.
find rules tests -type f \( -name '*.yaml' -o -name '*.yml' \) -print0 |
	while IFS= read -r -d '' f; do cp "$f" "$out/corpus/seed-${f//\//_}"; done
"$bin" "${opts[@]}" -max_total_time="$secs" -print_final_stats=1 \
	"$out/corpus" tests/fuzz/regressions >"$out/fuzz.log" 2>&1
st=$?
execs=$(sed -nE 's/^Done ([0-9]+) runs in .*/\1/p' "$out/fuzz.log")
if [ "$st" -eq 0 ] && [ -n "$execs" ]; then
	echo "ok - fuzz_rules: $secs s, $execs execs, no crash"
else
	art=$(sed -nE 's/.*Test unit written to (.*)$/\1/p' "$out/fuzz.log" | tail -1)
	echo "not ok - fuzz_rules: $secs s, exit $st${art:+, input $art} # see $out/fuzz.log"
	rc=1
fi
exit $rc
