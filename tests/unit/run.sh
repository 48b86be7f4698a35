#!/usr/bin/env bash
# Unit stage: every cmocka test, plain and under ASan+UBSan, then the CLI's
# contract (exit codes and messages). TAP lines on stdout. The checks that
# need a real /dev/kvm (test_inject, hvguard run itself) belong to the vmm
# stage (tests/vmm/kvm_unit.sh), which runs wherever a KVM is.
set -uo pipefail
cd "$(dirname "$0")/../.."
export CMOCKA_MESSAGE_OUTPUT=TAP
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
rc=0
mkdir -p build/test-logs
for t in build/tests/test_* build/asan/tests/test_*; do
	[ -x "$t" ] || continue
	case "$t" in */test_inject) continue ;; esac # vmm stage: needs /dev/kvm
	variant=plain
	case "$t" in build/asan/*) variant=asan ;; esac
	# cmocka prints "ok N - name"; the variant is appended so both count.
	"$t" 2>"build/test-logs/$(basename "$t").$variant.err" |
		sed -E "s/^((not )?ok [0-9]+ - [^#]*)/\1 [$variant]/"
	st=${PIPESTATUS[0]}
	if [ "$st" -ne 0 ]; then
		echo "not ok - $(basename "$t") [$variant] exited $st # see build/test-logs/$(basename "$t").$variant.err"
		rc=1
	fi
done
tests/unit/cli.sh || rc=1
tests/unit/pindir.sh || rc=1
tests/unit/migrations.sh || rc=1
# The shipped alerting rules (promtool check + promtool test rules) and the
# Grafana dashboard, checked against the rule table and the README.
python3 tests/unit/alerting.py || rc=1
# The rules-parser fuzzer, time-boxed; its regression inputs replayed first.
tests/fuzz/run.sh 60 || rc=1
echo "# end of stage"
exit $rc
