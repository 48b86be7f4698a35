#!/usr/bin/env bash
# `make demo-guest`: what a real Linux guest sees when QEMU pauses it, with
# and without hvguard, in one table, in about two minutes. Debian's 6.1
# kernel boots under QEMU -accel kvm (twice: once without hvguard, once
# with `hvguard run --correct` started first), and is paused for 3 s over
# QMP; its init (tests/realguest/rgclock.c) prints how its kvm-clock moved
# against its TSC, and its realtime against the host's (ptp_kvm). Where the
# host has no /dev/kvm, all of it runs in the nested KVM the tests use
# (tests/nested/run.sh): slower, and the guest's clocks just as real.
set -uo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" -eq 0 ] || { echo "demo-guest: run as root (hvguard loads eBPF programs)" >&2; exit 1; }
out=$(mktemp /tmp/hvguard-demo-guest-XXXXXX)
trap 'rm -f "$out"' EXIT
echo "==> Booting Debian's $(cat tests/cache/debian-kernel/version 2>/dev/null || echo 6.1) kernel as a guest under QEMU -accel kvm,"
echo "    pausing it 3 s without hvguard, then again with hvguard --correct."
if [ -c /dev/kvm ]; then
	tests/realguest/run.sh --demo >"$out" 2>&1
else
	echo "    (no /dev/kvm here: inside a nested KVM under QEMU TCG, 2-3 minutes)"
	NESTED_STAGE_TIMEOUT=900 tests/nested/run.sh tests/realguest/run.sh --demo >"$out" 2>&1
fi
rc=$?
echo
echo "==> What the guest itself saw across the pause (a clock that is right moves by 0):"
echo
sed -n 's/^# table: //p' "$out" | sed 's/^\*\*\(.*\)\*\*/\1/'
nok=$(grep -c '^not ok' "$out")
echo
if [ "$rc" -ne 0 ] || [ "$nok" -ne 0 ]; then
	echo "==> Something went wrong ($nok failed checks):"
	grep -E '^not ok|^# .*(ready|hvguard)' "$out"
	exit 1
fi
echo "    Without hvguard the guest's kvm-clock came back behind its TSC, and its"
echo "    realtime behind the host's, by the whole pause; with --correct both held."
