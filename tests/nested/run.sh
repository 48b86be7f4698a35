#!/usr/bin/env bash
# Runs a test stage that needs /dev/kvm (vmm, metrics, qemu) on a host that
# has none: inside a nested KVM, Debian's 6.1 kernel under QEMU TCG with
# `-cpu max` (AMD svm + npt), where kvm_amd loads and /dev/kvm is a real,
# ordinary KVM. The host's root is shared read-only (the host-built hvguard,
# tools and Python tests run unchanged, as in the kvm stage); the stage's
# output comes back through a read-write share and is printed here as the
# stage's own. Its verdicts are the stage's own: nothing is judged twice.
#
#   tests/nested/run.sh STAGE-SCRIPT [ARGS...]   e.g. tests/vmm/run.sh
#
# Under TCG every guest instruction is emulated: what the stage measures in
# time (freeze lengths, latencies) is 10-100x what real hardware gives.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo" || exit 2
# shellcheck source=../lib/debian-kernel.sh
. "$here/../lib/debian-kernel.sh"
KVM_CACHE=${KVM_CACHE:-$repo/tests/kvm/cache}
# The stage itself is stopped after NESTED_STAGE_TIMEOUT (a hang fails it
# with the guest's process list), QEMU after NESTED_TIMEOUT.
NESTED_STAGE_TIMEOUT=${NESTED_STAGE_TIMEOUT:-1500}
NESTED_TIMEOUT=${NESTED_TIMEOUT:-$((NESTED_STAGE_TIMEOUT + 300))}
NESTED_MEM=${NESTED_MEM:-3072}
# One vCPU, as the kvm stage: with two (multi-threaded TCG), nested runs
# hung now and then, whole-guest, after minutes of nested SVM under TCG.
NESTED_CPUS=${NESTED_CPUS:-1}
[ $# -ge 1 ] || { echo "usage: $0 STAGE-SCRIPT [ARGS...]" >&2; exit 2; }
name=$(basename "$(dirname "$1")")

fail() {
	echo "not ok - $name (nested KVM): $1"
	echo "# end of stage"
	exit 1
}

for t in qemu-system-x86_64 cpio depmod; do
	command -v "$t" >/dev/null || fail "$t is not installed (make test-deps)"
done
[ -x /bin/busybox ] || fail "busybox-static is not installed (make test-deps)"
mkdir -p "$KVM_CACHE" build/test-logs
msg=$(debian_kernel_fetch "$DEBIAN_KERNEL_CACHE" 2>&1) || fail "fetching Debian's kernel: $msg"
msg=$(debian_build_initramfs "$DEBIAN_KERNEL_CACHE" "$KVM_CACHE/initrd.gz" "$repo/tests/kvm/init" \
	kvm_amd virtio_pci 9pnet_virtio 9p fuse 2>&1) || fail "building the initramfs: $msg"

out=$(mktemp -d "$repo/build/nested-$name.XXXXXX")
serial=build/test-logs/nested-$name.serial
trap 'rm -rf "$out"' EXIT
echo "# $name: this host has no /dev/kvm; running the stage in a nested KVM (Debian $(cat "$DEBIAN_KERNEL_CACHE/version"), kvm_amd under QEMU TCG, $NESTED_CPUS vCPUs, $NESTED_MEM MiB)"
args=$(printf '%s+' "$out" "$NESTED_STAGE_TIMEOUT" "$repo/$1" "${@:2}")
t0=$SECONDS
timeout --foreground -k 10 "$NESTED_TIMEOUT" \
	qemu-system-x86_64 -accel tcg -machine pc -cpu max -smp "$NESTED_CPUS" -m "$NESTED_MEM" \
	-nographic -no-reboot -serial file:"$serial" -monitor none -display none -net none \
	-virtfs local,path=/,mount_tag=host0,security_model=none,readonly=on,multidevs=remap,id=host0 \
	-virtfs local,path="$out",mount_tag=out0,security_model=none,id=out0 \
	-kernel "$DEBIAN_KERNEL_CACHE/vmlinux" -initrd "$KVM_CACHE/initrd.gz" \
	-append "console=ttyS0 rdinit=/init panic=-1 tsc=reliable quiet loglevel=3 hvg_script=$here/guest.sh hvg_args=${args%+} hvg_out=$out" \
	</dev/null >"$serial.qemu" 2>&1
qrc=$?
echo "# $name: nested boot took $((SECONDS - t0)) s (qemu exit $qrc), serial log $serial"
cat "$out/stage.out" 2>/dev/null
if [ -s "$out/stage.err" ]; then
	cp "$out/stage.err" "build/test-logs/nested-$name.err"
	cat "$out/stage.err" >&2
fi
cp -r "$out/logs" "build/test-logs/nested-$name-logs" 2>/dev/null
problems=$(tr -d '\r' <"$serial" | grep -a '^HVG kernel-problem' | head -3 | tr '\n' '|')
if [ -n "$problems" ]; then
	echo "not ok - $name (nested KVM): no kernel warning, BUG or oops in the guest # $problems"
fi
if [ ! -s "$out/rc" ]; then
	fail "the guest did not finish the stage (timeout ${NESTED_TIMEOUT} s?): $(tr -d '\r' <"$serial" | tail -5 | tr '\n' '|')"
fi
rc=$(cat "$out/rc")
if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
	echo "not ok - $name (nested KVM): the stage ran past ${NESTED_STAGE_TIMEOUT} s and was stopped # its processes then: $(grep -v ' ps -eo' "$out/ps.txt" | tail -12 | tr -s ' ' | tr '\n' '|')"
fi
if [ "$rc" != 0 ] && [ -s "$out/ps.txt" ]; then
	cp "$out/ps.txt" "build/test-logs/nested-$name.ps"
	cp "$out/dmesg.txt" "build/test-logs/nested-$name.dmesg" 2>/dev/null
	echo "# $name: the guest's processes and kernel log at the end: build/test-logs/nested-$name.{ps,dmesg}"
fi
[ -z "$problems" ] || rc=1
exit "$rc"
