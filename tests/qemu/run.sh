#!/usr/bin/env bash
# Stage "qemu": hvguard against real QEMU (-accel kvm) driven over QMP.
# Prints TAP-style lines; exits non-zero if any test failed. A missing
# prerequisite is a failure with its reason, never a silent pass.
set -euo pipefail
cd "$(dirname "$0")/../.."
export HVGUARD="${HVGUARD:-$PWD/build/hvguard}"

missing=()
[ "$(id -u)" -eq 0 ] || missing+=("root")
[ -c /dev/kvm ] || missing+=("/dev/kvm")
command -v qemu-system-x86_64 >/dev/null || missing+=("qemu-system-x86_64 (apt-get install qemu-system-x86)")
command -v python3 >/dev/null || missing+=("python3")
command -v setpriv >/dev/null || missing+=("setpriv (util-linux)")
[ -s "${HVGUARD_TOOLS:-$PWD/build/tests}/clock-bios.code" ] ||
	missing+=("${HVGUARD_TOOLS:-$PWD/build/tests}/clock-bios.code (make tools)")
if [ ${#missing[@]} -gt 0 ]; then
	echo "not ok - qemu stage: prerequisites # missing: ${missing[*]}"
	exit 1
fi
# tracefs and bpffs, if `make check` has not mounted them already.
scripts/mount-fs.sh

# Our own scratch and pin directories, removed however the tests end. QEMU
# and hvguard die with the test process (setpriv --pdeathsig, see hvtest.py).
export HVGUARD_QEMU_TMP HVGUARD_QEMU_PIN
HVGUARD_QEMU_TMP=$(mktemp -d /tmp/hvguard-qemu-XXXXXX)
HVGUARD_QEMU_PIN=/sys/fs/bpf/$(basename "$HVGUARD_QEMU_TMP")
child=
cleanup() {
	[ -z "$child" ] || kill -TERM "$child" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$HVGUARD_QEMU_TMP" "$HVGUARD_QEMU_PIN"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# Detection first, then corrections: never both daemons at once, since a
# --correct daemon's repairs are themselves clock writes the other one sees.
rc=0
# Each hook tier of the clock checks this kernel offers (fentry where it
# loads: Debian's 6.1 in the nested stage).
read -ra tiers <<<"$(python3 tests/lib/clock_tiers.py)"
echo "# clock hook tiers offered here: ${tiers[*]}"
for hooks in "${tiers[@]}"; do
	for t in test_qemu.py test_qemu_migration.py test_qemu_correct.py; do
		HVGUARD_HOOKS=$hooks python3 "tests/qemu/$t" &
		child=$!
		wait "$child" || rc=1
		child=
	done
done
echo "# end of stage"
exit $rc
