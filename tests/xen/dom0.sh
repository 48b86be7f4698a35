#!/bin/bash
# Runs inside the test dom0 (chrooted into the host's root, see tests/xen/init)
# and plays the scenarios of the Xen test stage against the real drivers.
# It decides nothing: it prints what happened as markers on the serial log,
# and tests/xen/run.sh on the host judges them.
#   HVGOP   PHASE LABEL pid=N rc=N      a xenops run and how it ended
#   HVGOUT  PHASE LABEL LINE            what xenops printed
#   HVGJSON PHASE LINE                  what hvguard printed on stdout (JSON)
#   HVGERR  PHASE LINE                  what hvguard printed on stderr
#   HVGPHASE PHASE start|end|no-ready
# Usage: dom0.sh HVGUARD XENOPS PHASE...   (phases: alert kill deny deny-mmap fallback bench)
set -u
HVG=$1
XENOPS=$2
shift 2
RULES=$(cd "$(dirname "$0")" && pwd)/rules
# The backend is designated by its comm: exec'd through this link, xenops
# runs with comm "xen-backend-dm"; run directly it is an ordinary process.
BACKEND=/tmp/xen-backend-dm
ln -sf "$XENOPS" "$BACKEND"
phase=none
hvg_pid=

op() { # label cmd...
	local label=$1 pid rc
	shift
	"$@" >/tmp/op.out 2>&1 &
	pid=$!
	wait "$pid"
	rc=$?
	echo "HVGOP $phase $label pid=$pid rc=$rc"
	sed "s/^/HVGOUT $phase $label /" /tmp/op.out
}

start_hvguard() { # rules
	local t0
	t0=$(cut -d' ' -f1 /proc/uptime)
	"$HVG" run --json --no-pin --rules "$1" >/tmp/hvg.json 2>/tmp/hvg.err &
	hvg_pid=$!
	for _ in $(seq 1 600); do
		if grep -q '"type":"ready"' /tmp/hvg.json 2>/dev/null; then
			echo "HVGPHASE $phase ready after=$(echo "$t0 $(cut -d' ' -f1 /proc/uptime)" | awk '{ printf "%.1f", $2 - $1 }')s"
			return 0
		fi
		kill -0 "$hvg_pid" 2>/dev/null || break
		sleep 0.2
	done
	echo "HVGPHASE $phase no-ready"
	return 1
}

stop_hvguard() {
	sleep 1.5 # let the daemon drain its ring buffer and run a leak scan
	kill -INT "$hvg_pid" 2>/dev/null
	wait "$hvg_pid"
	echo "HVGOP $phase hvguard pid=$hvg_pid rc=$?"
	sed "s/^/HVGJSON $phase /" /tmp/hvg.json
	sed "s/^/HVGERR $phase /" /tmp/hvg.err
}

frame() { # the grant table frame, fetched by an ordinary process
	"$XENOPS" gnttab-frame | sed -n 's/.*frame=\([0-9]*\).*/\1/p'
}

phase_alert() {
	start_hvguard "$RULES/alert.yaml" || return
	local f
	f=$(frame)
	op cycle "$BACKEND" grant-cycle
	op mmapbatch "$BACKEND" mmapbatch "$f" 2
	op hypercall "$BACKEND" hypercall
	op resource "$BACKEND" resource 1
	op grantdom "$BACKEND" reserve 7 8
	op leak-mapped "$BACKEND" grant-leak
	op leak-reserved "$BACKEND" grant-reserve-leak
	op hostile "$BACKEND" hostile
	op child "$BACKEND" spawn "$XENOPS" hypercall
	op other-cycle "$XENOPS" grant-cycle
	op other-mmapbatch "$XENOPS" mmapbatch "$f" 2
	op other-hypercall "$XENOPS" hypercall
	stop_hvguard
}

phase_enforce() { # rules
	start_hvguard "$1" || return
	local f
	f=$(frame)
	op cycle "$BACKEND" grant-cycle
	op mmapbatch "$BACKEND" mmapbatch "$f" 1
	op hypercall "$BACKEND" hypercall
	op grantdom "$BACKEND" reserve 7 8
	op other-mmapbatch "$XENOPS" mmapbatch "$f" 1
	op other-hypercall "$XENOPS" hypercall
	stop_hvguard
}

# With no target_domain, privcmd mmap() itself serves only foreign mappings:
# with action deny, the LSM mmap_file hook refuses it.
phase_deny_mmap() {
	start_hvguard "$RULES/deny-notarget.yaml" || return
	op mmap "$BACKEND" resource 0
	op other-mmap "$XENOPS" resource 0
	stop_hvguard
}

# Per-call cost, hvguard attached against not, interleaved (off on off on...)
# so that drift in the emulator shows as the spread between rounds.
phase_bench() {
	local round
	for round in 1 2 3; do
		op "off$round-grant" "$BACKEND" bench-grant 300
		op "off$round-privcmd" "$BACKEND" bench-privcmd 4000
		op "off$round-hypercall" "$BACKEND" bench-hypercall 2000
		start_hvguard "$RULES/bench.yaml" || return
		op "on$round-grant" "$BACKEND" bench-grant 300
		op "on$round-privcmd" "$BACKEND" bench-privcmd 4000
		op "on$round-hypercall" "$BACKEND" bench-hypercall 2000
		op "on$round-other-grant" "$XENOPS" bench-grant 300
		op "on$round-other-privcmd" "$XENOPS" bench-privcmd 4000
		# The daemon stopped: what the BPF programs alone cost (the ring
		# buffer holds the ~1200 records of one grant run).
		kill -STOP "$hvg_pid"
		op "bpf$round-grant" "$BACKEND" bench-grant 300
		op "bpf$round-privcmd" "$BACKEND" bench-privcmd 4000
		kill -CONT "$hvg_pid"
		kill -INT "$hvg_pid"
		wait "$hvg_pid"
	done
}

for phase in "$@"; do
	echo "HVGPHASE $phase start uptime=$(cut -d' ' -f1 /proc/uptime)"
	case "$phase" in
	alert) phase_alert ;;
	kill) phase_enforce "$RULES/kill.yaml" ;;
	deny | fallback) phase_enforce "$RULES/deny.yaml" ;;
	deny-mmap) phase_deny_mmap ;;
	bench) phase_bench ;;
	*) echo "HVGPHASE $phase unknown" ;;
	esac
	echo "HVGPHASE $phase end uptime=$(cut -d' ' -f1 /proc/uptime)"
done
