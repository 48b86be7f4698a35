#!/usr/bin/env bash
# Stage "realguest": a real Linux guest is the judge. Debian's 6.1 kernel
# runs as a guest under QEMU -accel kvm (on this project's machines inside
# the nested KVM of tests/nested/run.sh: L2 under L1's kvm_amd under TCG),
# with a static init (rgclock.c) that prints what the guest sees of its
# kvm-clock, its TSC and its realtime against the host's (ptp_kvm); QEMU is
# paused over QMP without hvguard, with it alerting and with --correct
# (test_realguest.py). Prints TAP-style lines, ends with "# end of stage".
#
#   tests/realguest/run.sh           the stage: 3 modes x 4 scenarios
#   tests/realguest/run.sh --demo    make demo-guest: stop/cont only, without
#                                    hvguard and with --correct
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo" || exit 2
export HVGUARD="${HVGUARD:-$repo/build/hvguard}"
RGCLOCK=${RGCLOCK:-${HVGUARD_TOOLS:-$repo/build/tests}/rgclock}
# shellcheck source=../lib/debian-kernel.sh
. "$here/../lib/debian-kernel.sh"

fail() {
	echo "not ok - realguest: $1"
	echo "# end of stage"
	exit 1
}
missing=()
[ "$(id -u)" -eq 0 ] || missing+=("root")
[ -c /dev/kvm ] || missing+=("/dev/kvm")
for t in qemu-system-x86_64 qemu-img python3 setpriv cpio gzip; do
	command -v "$t" >/dev/null || missing+=("$t")
done
[ -x /bin/busybox ] || missing+=("busybox-static")
[ -x "$HVGUARD" ] || missing+=("$HVGUARD (make)")
[ -x "$RGCLOCK" ] || missing+=("$RGCLOCK (make tools)")
[ ${#missing[@]} -eq 0 ] || fail "prerequisites # missing: ${missing[*]}"
scripts/mount-fs.sh || fail "mounting tracefs and bpffs"

export RG_TMP
RG_TMP=$(mktemp -d /tmp/hvguard-rg-XXXXXX)
trap 'rm -rf "$RG_TMP"' EXIT
# The guest's initramfs: busybox and our init, then ptp_kvm and rgclock
# appended as a second archive (the kernel unpacks them in turn).
[ -s "$DEBIAN_KERNEL_CACHE/vmlinux" ] || {
	msg=$(debian_kernel_fetch "$DEBIAN_KERNEL_CACHE" 2>&1) || fail "fetching Debian's kernel # $msg"
}
initrd=$RG_TMP/initrd.gz
msg=$(debian_build_initramfs "$DEBIAN_KERNEL_CACHE" "$RG_TMP/base.gz" "$here/init" 2>&1) ||
	fail "building the guest's initramfs # $msg"
# ptp_kvm and what it needs, from modules.dep read here (the initramfs
# recipe's modprobe -d listed nothing inside the nested KVM), loaded in
# the reverse of the order it lists them.
moddir=$DEBIAN_KERNEL_CACHE/lib/modules/$(cat "$DEBIAN_KERNEL_CACHE/version")
dep=$(grep -m1 '/ptp_kvm\.ko:' "$moddir/modules.dep") || fail "ptp_kvm is not in $moddir/modules.dep"
mkdir -p "$RG_TMP/extra/bin" "$RG_TMP/extra/modules"
: >"$RG_TMP/extra/modules/order"
for ko in $(echo ${dep#*:} | tr ' ' '\n' | tac) ${dep%%:*}; do
	cp "$moddir/$ko" "$RG_TMP/extra/modules/" || fail "copying $ko"
	basename "$ko" >>"$RG_TMP/extra/modules/order"
done
cp "$RGCLOCK" "$RG_TMP/extra/bin/rgclock"
(cd "$RG_TMP/extra" && find bin modules | cpio -o -H newc --quiet | gzip -1) >"$RG_TMP/extra.gz" ||
	fail "building the guest's initramfs # cpio"
cat "$RG_TMP/base.gz" "$RG_TMP/extra.gz" >"$initrd"

if [ "${1:-}" = --demo ]; then
	export RG_MODES="without corrected" RG_SCENARIOS="stop/cont"
fi
export RG_RESULTS=${RG_RESULTS:-$RG_TMP/results.json}
python3 "$here/test_realguest.py" "$DEBIAN_KERNEL_CACHE/vmlinux" "$initrd"
rc=$?
logs=${HVGUARD_LOGDIR:-$repo/build/test-logs}
mkdir -p "$logs/realguest"
cp "$RG_TMP"/*.serial* "$RG_TMP"/*.err "$RG_RESULTS" "$logs/realguest/" 2>/dev/null
echo "# end of stage"
exit $rc
