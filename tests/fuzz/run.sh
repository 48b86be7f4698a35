#!/usr/bin/env bash
# The parsers' fuzzers (libFuzzer), each replaying its regression inputs
# (each crash or hang ever found) and then fuzzing for SECONDS (default 60):
#  - fuzz_rules, the rules parser: regressions in tests/fuzz/regressions/,
#    seeds every YAML file in rules/ and tests/;
#  - fuzz_migrations, the departure/arrival record reader of `hvguard
#    migrations`: seeds and regressions in tests/fuzz/migrations/.
# `run.sh [SECONDS] [TARGET...]` (default: both). TAP lines on stdout. A new
# crash is left in build/fuzz/crashes/: once fixed, copy it into the
# target's regression directory.
set -uo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_rules fuzz_migrations)
out=${OUTPUT:-build}/fuzz
rc=0
mkdir -p "$out/crashes"

seed_rules() {
	find rules tests -type f \( -name '*.yaml' -o -name '*.yml' \) -print0 |
		while IFS= read -r -d '' f; do cp "$f" "$1/seed-${f//\//_}"; done
}

seed_migrations() {
	cp tests/fuzz/migrations/* "$1/"
}

# fuzz NAME REGRESSION-DIR DICT SEEDER
fuzz() {
	local name=$1 regdir=$2 dict=$3 seeder=$4 bin=$out/$1 corpus=$out/corpus-$1 st execs art
	local opts regs
	if [ ! -x "$bin" ]; then
		echo "not ok - $name: $bin is not built (make $bin)"
		rc=1
		return
	fi
	# fuzz_rules kept its corpus in $out/corpus before fuzz_migrations came.
	[ "$name" = fuzz_rules ] && corpus=$out/corpus
	mkdir -p "$corpus"
	# A slow input is a failure too (-timeout): 1 MiB of '[' once took minutes.
	opts=(-timeout=10 -rss_limit_mb=2048 -max_len=16384 -dict="$dict"
		-artifact_prefix="$out/crashes/")
	regs=("$regdir"/*)
	if "$bin" "${opts[@]}" "${regs[@]}" >"$out/$name-regressions.log" 2>&1; then
		echo "ok - $name: ${#regs[@]} regression inputs replay without a crash"
	else
		echo "not ok - $name: a regression input fails again # see $out/$name-regressions.log"
		rc=1
	fi
	# Seeds, gathered afresh each run; what the fuzzer finds stays in the corpus.
	"$seeder" "$corpus"
	"$bin" "${opts[@]}" -max_total_time="$secs" -print_final_stats=1 \
		"$corpus" "$regdir" >"$out/$name.log" 2>&1
	st=$?
	execs=$(sed -nE 's/^Done ([0-9]+) runs in .*/\1/p' "$out/$name.log")
	if [ "$st" -eq 0 ] && [ -n "$execs" ]; then
		echo "ok - $name: $secs s, $execs execs, no crash"
	else
		art=$(sed -nE 's/.*Test unit written to (.*)$/\1/p' "$out/$name.log" | tail -1)
		echo "not ok - $name: $secs s, exit $st${art:+, input $art} # see $out/$name.log"
		rc=1
	fi
}

for t in "${targets[@]}"; do
	case "$t" in
	fuzz_rules) fuzz fuzz_rules tests/fuzz/regressions tests/fuzz/rules.dict seed_rules ;;
	fuzz_migrations)
		fuzz fuzz_migrations tests/fuzz/migrations tests/fuzz/migrations.dict seed_migrations
		;;
	*)
		echo "not ok - unknown fuzz target '$t'"
		rc=1
		;;
	esac
done
exit $rc
