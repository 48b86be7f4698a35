#!/usr/bin/env bash
# The unit-level checks that need a real /dev/kvm, run by the vmm stage:
# libcompel injection into a real VM-owning process (test_inject, plain and
# under ASan+UBSan), and `hvguard run` mounting tracefs itself when it is
# not mounted (it needs something to watch to start). TAP lines on stdout.
set -uo pipefail
cd "$(dirname "$0")/../.."
HV=${HVGUARD:-build/hvguard}
logdir=${HVGUARD_LOGDIR:-build/test-logs}
export CMOCKA_MESSAGE_OUTPUT=TAP
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rc=0
mkdir -p "$logdir"
for t in build/tests/test_inject build/asan/tests/test_inject; do
	variant=plain
	case "$t" in build/asan/*) variant=asan ;; esac
	if [ ! -x "$t" ]; then
		echo "not ok - test_inject [$variant] # $t is not built (make unit)"
		rc=1
		continue
	fi
	"$t" 2>"$logdir/test_inject.$variant.err" |
		sed -E "s/^((not )?ok [0-9]+ - [^#]*)/\1 [$variant]/"
	st=${PIPESTATUS[0]}
	if [ "$st" -ne 0 ]; then
		echo "not ok - test_inject [$variant] exited $st # see $logdir/test_inject.$variant.err"
		rc=1
	fi
done

# tracefs unmounted: hvguard mounts it itself and starts.
if mountpoint -q /sys/kernel/tracing && umount /sys/kernel/tracing 2>/dev/null; then
	$HV run --json --duration 1 --no-pin >"$tmp/out" 2>&1
	st=$?
	mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing
	if [ "$st" -eq 0 ] && grep -q '"type":"ready"' "$tmp/out"; then
		echo "ok - run mounts tracefs when it is not mounted"
	else
		echo "not ok - run mounts tracefs when it is not mounted # exit $st: $(head -c 300 "$tmp/out")"
		rc=1
	fi
else
	echo "not ok - run mounts tracefs when it is not mounted # could not unmount tracefs to set the test up"
	rc=1
fi
exit $rc
