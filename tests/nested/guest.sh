#!/bin/bash
# Runs inside the nested Debian 6.1 KVM of tests/nested/run.sh (chrooted
# into the host's root, see tests/kvm/init): one test stage, its stdout,
# stderr and exit status written to the read-write results share OUT.
# While it runs, a snapshot of the guest's processes (state, kernel wait
# channel) and of its kernel log is kept there every 30 s: if the stage
# hangs, the host shows where.
# Usage: guest.sh OUT TIMEOUT STAGE-SCRIPT [ARGS...]
set -u
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
out=$1
limit=$2
shift 2
cd "$(dirname "$0")/../.." || exit 1
export HVGUARD_LOGDIR=$out/logs
# The tests' bounds on time and residual skew under emulation (hvtest.py).
export HVGUARD_EMULATED=1
mkdir -p "$HVGUARD_LOGDIR"
# Shell builtins only (every exec costs ~0.3 s under TCG), and only files
# that take no lock of the task's memory (/proc/PID/{stat,wchan,stack}): a
# task stuck with its mm locked blocks readers of its command line, ps too.
snapshot() {
	local p st w line
	for p in /proc/[0-9]*; do
		read -r st <"$p/stat" 2>/dev/null || continue
		case "$st" in *"(kworker"* | *"(ksoftirq"* | *"(rcu_"* | *"(migration"* | *"(cpuhp"*) continue ;; esac
		read -r w <"$p/wchan" 2>/dev/null
		echo "${st%% [0-9]* [0-9]* [0-9]* [0-9]* [0-9]* *} ${w:-}"
		case "$st" in *") D "* | *"(minivmm)"* | *"(hvguard)"* | *"(qemu-system-x86)"*)
			while read -r line; do echo "    $line"; done <"$p/stack" 2>/dev/null ;;
		esac
	done >"$out/ps.txt"
	dmesg 2>&1 | tail -40 >"$out/dmesg.txt"
}
echo "HVG nested stage-start $* uptime=$(cut -d' ' -f1 /proc/uptime)"
timeout -k 10 "$limit" "$@" >"$out/stage.out" 2>"$out/stage.err" &
stage=$!
while kill -0 "$stage" 2>/dev/null; do
	snapshot
	for _ in $(seq 30); do
		kill -0 "$stage" 2>/dev/null || break
		sleep 1
	done
done
wait "$stage"
echo $? >"$out/rc"
snapshot
echo "HVG nested stage-end rc=$(cat "$out/rc") uptime=$(cut -d' ' -f1 /proc/uptime)"
sync
