#!/bin/bash
# Runs inside the kvm stage's QEMU TCG guest (Debian 6.1, nested kvm_amd;
# chrooted into the host's root, see tests/kvm/init) and plays minivmm's
# scenarios under hvguard, once alerting and once correcting. It decides
# nothing: it prints what happened as markers on the serial log, and
# tests/kvm/run.sh on the host judges them.
#   HVGENV   KEY VALUE                  facts about this kernel's KVM
#   HVGOP    PHASE LABEL pid=N rc=N     a minivmm run and how it ended
#   HVGVMM   PHASE LABEL LINE           what minivmm printed on stdout (JSON)
#   HVGVMERR PHASE LABEL LINE           what minivmm printed on stderr
#   HVGTSC   PHASE LABEL pid=N vcpu=N prev=N next=N
#                                       kvm:kvm_write_tsc_offset, from tracefs,
#                                       for that minivmm: the kernel's own
#                                       record of every TSC offset it set,
#                                       independent of hvguard
#   HVGJSON  PHASE LINE                 what hvguard printed on stdout (JSON)
#   HVGERR   PHASE LINE                 what hvguard printed on stderr
#   HVGPHASE PHASE start|end|no-ready|ready uptime=S
# Usage: guest.sh HVGUARD MINIVMM PHASE...   (phases: detect correct)
set -u
# init runs us with PATH=/bin, busybox's: the host's tools live elsewhere.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
HVG=$1
MINIVMM=$2
shift 2
T=/sys/kernel/tracing
phase=none
hvg_pid=

uptime_s() { cut -d' ' -f1 /proc/uptime; }

environment() {
	local m
	echo "HVGENV kernel $(uname -r)"
	for m in kvm kvm_amd; do
		echo "HVGENV ${m}_initstate $(cat /sys/module/$m/initstate 2>/dev/null || echo none)"
		echo "HVGENV btf_$m $([ -f /sys/kernel/btf/$m ] && echo yes || echo no)"
	done
	echo "HVGENV nested $(cat /sys/module/kvm_amd/parameters/nested 2>/dev/null || echo none)"
	echo "HVGENV dev_kvm $([ -c /dev/kvm ] && echo yes || echo no)"
	echo "HVGENV btf_vmlinux $([ -f /sys/kernel/btf/vmlinux ] && echo yes || echo no)"
	# The function symbols hvguard resolves, with the module they live in
	# (one pass: kallsyms is long and everything is slow under TCG).
	awk '$3 == "kvm_vm_ioctl" || $3 == "kvm_vcpu_ioctl" || $3 == "kvm_dev_ioctl" {
		print "HVGENV kallsyms_" $3, ($4 == "" ? "[vmlinux]" : $4) }' /proc/kallsyms
	echo "HVGENV clocksource $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
}

# One minivmm run, its output and the TSC offsets the kernel set for it.
op() { # label minivmm-args...
	local label=$1 pid rc
	shift
	echo >"$T/trace"
	"$MINIVMM" "$@" >/tmp/vmm.out 2>/tmp/vmm.err &
	pid=$!
	wait "$pid"
	rc=$?
	echo "HVGOP $phase $label pid=$pid rc=$rc"
	sed "s/^/HVGVMM $phase $label /" /tmp/vmm.out
	sed "s/^/HVGVMERR $phase $label /" /tmp/vmm.err
	# "minivmm-PID [000] ....: kvm_write_tsc_offset: vcpu=0 prev=A next=B"
	grep "minivmm-$pid .*kvm_write_tsc_offset:" "$T/trace" |
		sed -n "s/.*kvm_write_tsc_offset: vcpu=\([0-9]*\) prev=\([0-9]*\) next=\([0-9]*\).*/HVGTSC $phase $label pid=$pid vcpu=\1 prev=\2 next=\3/p"
}

start_hvguard() { # hvguard-args...
	"$HVG" run --json --no-pin "$@" >/tmp/hvg.json 2>/tmp/hvg.err &
	hvg_pid=$!
	# BPF loading and verification run under TCG: allow minutes.
	for _ in $(seq 1 1500); do
		if grep -q '"type":"ready"' /tmp/hvg.json 2>/dev/null; then
			echo "HVGPHASE $phase ready uptime=$(uptime_s)"
			return 0
		fi
		kill -0 "$hvg_pid" 2>/dev/null || break
		sleep 0.2
	done
	echo "HVGPHASE $phase no-ready"
	kill -INT "$hvg_pid" 2>/dev/null
	wait "$hvg_pid"
	sed "s/^/HVGJSON $phase /" /tmp/hvg.json
	sed "s/^/HVGERR $phase /" /tmp/hvg.err
	return 1
}

stop_hvguard() {
	sleep 1.5 # let the daemon drain its ring buffer
	kill -INT "$hvg_pid" 2>/dev/null
	wait "$hvg_pid"
	echo "HVGOP $phase hvguard pid=$hvg_pid rc=$?"
	sed "s/^/HVGJSON $phase /" /tmp/hvg.json
	sed "s/^/HVGERR $phase /" /tmp/hvg.err
}

# The scenarios without a violation come first, so that a rule firing on
# them cannot be blamed on state left by an earlier one.
scenarios() {
	op create-reset create-reset --vcpus 2
	op migrate-in migrate-in
	op firecracker firecracker-pause --pause-ms 300
	op mismatch vcpu-mismatch
	# 5 s back, far outside KVM's 1 s "this is a sync" window.
	op rewrite tsc-msr-rewrite --pause-ms 300 --vcpus 2
}

phase_detect() {
	start_hvguard || return
	scenarios
	op stopcont qemu-stopcont --pause-ms 500 --cycles 3
	stop_hvguard
}

phase_correct() {
	start_hvguard --correct || return
	scenarios
	# One vCPU: the correction alone, without a second vCPU's write racing
	# the VMM's release.
	op rewrite1 tsc-msr-rewrite --pause-ms 300 --vcpus 1
	# Enough cycles for a distribution of the residual skew.
	op stopcont qemu-stopcont --pause-ms 200 --cycles 20
	stop_hvguard
}

environment
echo 1 >"$T/events/kvm/kvm_write_tsc_offset/enable"
for phase in "$@"; do
	echo "HVGPHASE $phase start uptime=$(uptime_s)"
	case "$phase" in
	detect) phase_detect ;;
	correct) phase_correct ;;
	*) echo "HVGPHASE $phase unknown" ;;
	esac
	echo "HVGPHASE $phase end uptime=$(uptime_s)"
done
