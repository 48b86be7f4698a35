#!/bin/bash
# Runs inside the kvm stage's QEMU TCG guest (Debian 6.1, nested kvm_amd;
# chrooted into the host's root, see tests/kvm/init) and plays minivmm's
# scenarios under hvguard, once alerting and once correcting. It decides
# nothing: it prints what happened as markers on the serial log, and
# tests/kvm/run.sh on the host judges them.
#   HVGENV   KEY VALUE                  facts about this kernel's KVM
#   HVGOP    PHASE LABEL pid=N rc=N start=S end=S
#                                       a minivmm run, how it ended, when
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
#   HVGHOOKS PHASE links|progs|perf JSON
#                                       bpftool's link, prog and perf lists
#                                       while hvguard runs (detect phases)
# Usage: guest.sh HVGUARD MINIVMM PHASE...   (phases: detect-TIER correct-TIER,
#                                             TIER a hook tier: hvguard run --hooks)
# set -u only: one failed step must not stop the others, the host judges.
set -u
# init runs us with PATH=/bin, busybox's: the host's tools live elsewhere.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
HVG=$1
MINIVMM=$2
shift 2
T=/sys/kernel/tracing
phase=none
hvg_pid=

# Builtins only where it is cheap to avoid them: every exec from the 9p share
# costs a few hundred ms under TCG.
uptime_s() {
	local up _
	read -r up _ </proc/uptime
	echo "$up"
}
# Waits for PID, SIGKILLs it after SECONDS (rc 137): a VMM left frozen or a
# daemon that never exits must not hang the boot until QEMU's timeout.
wait_bounded() { # seconds pid
	local wd rc
	(
		sleep "$1"
		kill -KILL "$2"
	) 2>/dev/null &
	wd=$!
	wait "$2"
	rc=$?
	kill "$wd" 2>/dev/null
	wait "$wd" 2>/dev/null
	return $rc
}
prefix() { # PREFIX < lines
	local line
	while IFS= read -r line || [ -n "$line" ]; do
		printf '%s %s\n' "$1" "$line"
	done
}

val() { # FILE: its first line, or "none"
	local v
	if read -r v <"$1"; then echo "$v"; else echo none; fi 2>/dev/null
}

environment() {
	local m
	echo "HVGENV kernel $(val /proc/sys/kernel/osrelease)"
	for m in kvm kvm_amd; do
		echo "HVGENV ${m}_initstate $(val /sys/module/$m/initstate)"
		echo "HVGENV btf_$m $([ -f /sys/kernel/btf/$m ] && echo yes || echo no)"
	done
	echo "HVGENV nested $(val /sys/module/kvm_amd/parameters/nested)"
	echo "HVGENV dev_kvm $([ -c /dev/kvm ] && echo yes || echo no)"
	echo "HVGENV btf_vmlinux $([ -f /sys/kernel/btf/vmlinux ] && echo yes || echo no)"
	# The function symbols hvguard resolves, with the module they live in.
	awk '$3 == "kvm_vm_ioctl" || $3 == "kvm_vcpu_ioctl" || $3 == "kvm_dev_ioctl" || $3 == "kvm_arch_vm_ioctl" {
		print "HVGENV kallsyms_" $3, ($4 == "" ? "[vmlinux]" : $4) }' /proc/kallsyms
	echo "HVGENV clocksource $(val /sys/devices/system/clocksource/clocksource0/current_clocksource)"
}

# One minivmm run, its output and the TSC offsets the kernel set for it.
op() { # label minivmm-args...
	local label=$1 pid rc t0
	shift
	t0=$(uptime_s)
	echo >"$T/trace"
	"$MINIVMM" "$@" >/tmp/vmm.out 2>/tmp/vmm.err &
	pid=$!
	wait_bounded 180 "$pid"
	rc=$?
	echo "HVGOP $phase $label pid=$pid rc=$rc start=$t0 end=$(uptime_s)"
	prefix "HVGVMM $phase $label" </tmp/vmm.out
	prefix "HVGVMERR $phase $label" </tmp/vmm.err
	# "minivmm-PID [000] ....: kvm_write_tsc_offset: vcpu=0 prev=A next=B"
	local line re="minivmm-$pid .*kvm_write_tsc_offset: vcpu=([0-9]+) prev=([0-9]+) next=([0-9]+)"
	while IFS= read -r line; do
		[[ $line =~ $re ]] &&
			echo "HVGTSC $phase $label pid=$pid vcpu=${BASH_REMATCH[1]} prev=${BASH_REMATCH[2]} next=${BASH_REMATCH[3]}"
	done <"$T/trace"
}

start_hvguard() { # hvguard-args...
	# Empty before the daemon starts: the poll below must not see a line
	# before the child's own redirection truncated the file.
	: >"/tmp/hvg.$phase.json"
	# A pin directory per phase: fresh state, and corrections need one.
	"$HVG" run --json --pin-dir "/sys/fs/bpf/hvg-$phase" --hooks "${phase#*-}" "$@" \
		>"/tmp/hvg.$phase.json" 2>"/tmp/hvg.$phase.err" &
	hvg_pid=$!
	# BPF loading and verification run under TCG: allow minutes.
	local i
	for ((i = 0; i < 1500; i++)); do
		if [[ $(<"/tmp/hvg.$phase.json") == *'"type":"ready"'* ]]; then
			echo "HVGPHASE $phase ready uptime=$(uptime_s)"
			return 0
		fi
		kill -0 "$hvg_pid" 2>/dev/null || break
		sleep 0.2
	done
	echo "HVGPHASE $phase no-ready"
	kill -INT "$hvg_pid" 2>/dev/null
	wait_bounded 60 "$hvg_pid"
	prefix "HVGJSON $phase" <"/tmp/hvg.$phase.json"
	prefix "HVGERR $phase" <"/tmp/hvg.$phase.err"
	return 1
}

stop_hvguard() {
	sleep 1.5 # let the daemon drain its ring buffer
	kill -INT "$hvg_pid" 2>/dev/null
	wait_bounded 60 "$hvg_pid"
	echo "HVGOP $phase hvguard pid=$hvg_pid rc=$?"
	prefix "HVGJSON $phase" <"/tmp/hvg.$phase.json"
	prefix "HVGERR $phase" <"/tmp/hvg.$phase.err"
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

# Live migration between two minivmm processes, as tests/vmm/test_migration.py
# drives it: the source runs its guest, saves its clocks as QEMU 7.2 does at
# a migration's stop and exits; the destination restores them in a new VM
# 1 s after the save, QEMU 7.2's way (the TSC MSR as saved, KVM_SET_CLOCK
# flags 0), and prints what its guest saw ("restored"). 3 vCPUs, a count
# no other scenario here uses: every mini VM's TSC counts from 0 at its
# creation, so a departure of another VM of that many vCPUs would be a
# second candidate source.
migration() { # label
	local state=/tmp/mig.$phase.state
	rm -f "$state"
	op "$1-src" migrate-save --state "$state" --vcpus 3
	op "$1-dst" migrate-restore --state "$state" --how qemu --downtime-ms 1000
}

# What the kernel says hvguard attached (bpftool), for the host to judge:
# the tier's hooks, not hvguard's own word.
hooks_seen() {
	echo "HVGHOOKS $phase links $(bpftool -j link list 2>&1 | jq -c '[.[] | {type, prog_id, attach_type, tp_name}]' 2>&1 | tr -d '\n')"
	echo "HVGHOOKS $phase progs $(bpftool -j prog show 2>&1 | jq -c '[.[] | {id, name}]' 2>&1 | tr -d '\n')"
	echo "HVGHOOKS $phase perf $(bpftool -j perf list 2>&1 | jq -c '[.[] | {pid, tracepoint}]' 2>&1 | tr -d '\n')"
}

phase_detect() {
	start_hvguard || return
	hooks_seen
	scenarios
	op stopcont qemu-stopcont --pause-ms 500 --cycles 3
	migration mig
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
	migration mig
	stop_hvguard
}

environment
echo 1 >"$T/events/kvm/kvm_write_tsc_offset/enable"
for phase in "$@"; do
	echo "HVGPHASE $phase start uptime=$(uptime_s)"
	case "${phase%%-*}" in
	detect) phase_detect ;;
	correct) phase_correct ;;
	*) echo "HVGPHASE $phase unknown" ;;
	esac
	echo "HVGPHASE $phase end uptime=$(uptime_s)"
done
