#!/usr/bin/env bash
# `make demo`: hvguard catching QEMU's kvmclock rewind, live, in about 20 s.
# Starts a real QEMU under KVM and hvguard in its readable mode, pauses and
# resumes the VM over QMP with a narrative, shows hvguard's alert, cleans up.
# Needs root, /dev/kvm, qemu-system-x86 and a built hvguard (make).
set -euo pipefail
cd "$(dirname "$0")/../.."
HVGUARD="${HVGUARD:-$PWD/build/hvguard}"
PAUSE=${PAUSE:-3}
qmp() { python3 tests/qemu/qmp.py "$tmp/qmp.sock" "$@"; }

if [ -t 1 ]; then
	B=$'\e[1m' R=$'\e[1;31m' D=$'\e[2m' N=$'\e[0m'
else
	B='' R='' D='' N=''
fi
step() { printf '\n%s==> %s%s\n' "$B" "$*" "$N"; }
say() { printf '    %s\n' "$@"; }
die() { printf '%sdemo: %s%s\n' "$R" "$*" "$N" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (hvguard loads eBPF programs)"
[ -x "$HVGUARD" ] || die "no hvguard at $HVGUARD: run make first"
[ -c /dev/kvm ] || die "no /dev/kvm on this host"
command -v qemu-system-x86_64 >/dev/null || die "no qemu-system-x86_64 (apt-get install qemu-system-x86)"

tmp=$(mktemp -d /tmp/hvguard-demo-XXXXXX)
qemu_pid='' hv_pid=''
cleanup() {
	# QEMU first, so that hvguard does not see a half-torn-down VM.
	if [ -n "$qemu_pid" ]; then
		qmp quit >/dev/null 2>&1 || kill "$qemu_pid" 2>/dev/null || true
		wait "$qemu_pid" 2>/dev/null || true
	fi
	if [ -n "$hv_pid" ]; then
		kill -INT "$hv_pid" 2>/dev/null || true
		wait "$hv_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# hvguard's lines about our VM (a shared host may run other VMs; their
# alerts are not part of the story), from line $1 of its log on.
our_lines() { tail -n +"$1" "$tmp/hvguard.log" | grep -F "[$qemu_pid]" || true; }
show_hvguard() { # from-line
	local lines
	lines=$(our_lines "$1")
	if [ -z "$lines" ]; then
		say "${D}hvguard: (nothing to report)${N}"
	else
		while IFS= read -r l; do say "${R}hvguard: ${l}${N}"; done <<<"$lines"
	fi
}
log_len() { wc -l <"$tmp/hvguard.log"; }

step "Starting a small VM: QEMU $(qemu-system-x86_64 --version | awk 'NR==1 { print $4 }') under KVM, paused at power-on (-S)"
say "128 MB, 2 vCPUs, no disk: the firmware boots and idles. That is enough:" \
	"the clock bug is in what QEMU does to KVM at pause and resume," \
	"whatever runs inside the VM."
setpriv --pdeathsig KILL -- qemu-system-x86_64 -accel kvm -S -nodefaults -nographic \
	-m 128 -smp 2 -name guest=demo-vm -display none -serial none \
	-qmp "unix:$tmp/qmp.sock,server=on,wait=off" 2>"$tmp/qemu.log" &
qemu_pid=$!
qmp query-status >/dev/null || die "QEMU did not start: $(grep -v "doesn't support" "$tmp/qemu.log" | tail -3)"
say "QEMU pid $qemu_pid, VM name demo-vm, QMP socket $tmp/qmp.sock"

step "Starting hvguard:  hvguard run --no-pin"
say "It attaches eBPF programs to KVM's ioctls and tracepoints and checks," \
	"in the kernel, that a pause leaves every VM's clocks as they were."
setpriv --pdeathsig TERM -- "$HVGUARD" run --no-pin >"$tmp/hvguard.log" 2>&1 &
hv_pid=$!
for _ in $(seq 300); do
	grep -q 'watching' "$tmp/hvguard.log" && break
	kill -0 "$hv_pid" 2>/dev/null || die "hvguard exited: $(tail -3 "$tmp/hvguard.log")"
	sleep 0.1
done
grep -q 'watching' "$tmp/hvguard.log" || die "hvguard not ready after 30 s: $(tail -3 "$tmp/hvguard.log")"
say "${D}hvguard: $(grep -m1 watching "$tmp/hvguard.log")${N}"

step "Powering the VM on (QMP \"cont\") and letting it run for 2 s"
say "Creating, setting up and starting a VM is legitimate: hvguard stays quiet."
from=$(($(log_len) + 1))
qmp cont
sleep 2
show_hvguard "$from"

step "Pausing the VM for $PAUSE s (QMP \"stop\"), as an operator, a backup or a snapshot tool does"
say "QEMU saves the VM's kvmclock (KVM_GET_CLOCK). The guest's TSC keeps counting."
from=$(($(log_len) + 1))
qmp stop
printf '   '
for ((i = PAUSE; i > 0; i--)); do
	printf ' %s...' "$i"
	sleep 1
done
echo

step "Resuming it (QMP \"cont\")"
say "QEMU writes the saved clock back (KVM_SET_CLOCK): the guest's kvmclock" \
	"jumps back about $PAUSE s, to the moment of the pause, while its TSC moved on." \
	"A guest keeping time with kvmclock (Linux on KVM does) is now that much" \
	"behind the world, and its two clocks disagree by that much."
qmp cont
for _ in $(seq 100); do
	[ -n "$(our_lines "$from")" ] && break
	sleep 0.1
done
sleep 0.3 # anything else it has to say about this resume
show_hvguard "$from"
[ -n "$(our_lines "$from")" ] || die "hvguard raised no alert for the resume (see above)"

step "That is the point"
say "QEMU (every version to date) rewinds kvmclock on every stop/cont;" \
	"hvguard sees it at the ioctl, names the VM and the size of the jump." \
	"Next:  hvguard run --json      one JSON object per alert, for machines" \
	"       hvguard run --correct   repair the clock inside QEMU before the guest runs again" \
	"Cleaning up: QEMU quits, hvguard stops."
