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
#   HVGHOOKS PHASE perf|links|deny-progs JSON  where hvguard's programs are attached
#   HVGMOD  PHASE LABEL rc=N            a module (un)load and how it ended
# Usage: dom0.sh HVGUARD XENOPS PHASE...
#   phases: alert kill deny deny-nosleep deny-mmap fallback, each as NAME/TIER to run it
#   on a hook tier (NAME/fentry lets hvguard choose, which must be fentry;
#   NAME/syscalls forces --xen-hooks syscalls); modules; bench
set -u
HVG=$1
XENOPS=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
RULES=$here/rules
PATH=$PATH:/usr/sbin:/sbin # bpftool, rmmod, insmod
BPFTOOL=$(command -v bpftool)
MODDIR=$here/../cache/debian-kernel/lib/modules/$(uname -r)/kernel/drivers/xen
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
	sed "s|^|HVGOUT $phase $label |" /tmp/op.out
}

start_hvguard() { # rules [hvguard option...]
	local t0 rules=$1
	shift
	t0=$(cut -d' ' -f1 /proc/uptime)
	"$HVG" run --json --no-pin --rules "$rules" "$@" >/tmp/hvg.json 2>/tmp/hvg.err &
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
	kill -INT "$hvg_pid" 2>/dev/null
	wait "$hvg_pid"
	echo "HVGOP $phase hvguard pid=$hvg_pid rc=$?"
	sed "s|^|HVGJSON $phase |" /tmp/hvg.json
	sed "s|^|HVGERR $phase |" /tmp/hvg.err
	# Why, in libbpf's and the verifier's words (the end of the log).
	"$HVG" run --json --no-pin --verbose --duration 1 --rules "$rules" "$@" 2>&1 |
		tail -n 80 | sed "s|^|HVGERR $phase verbose: |"
	return 1
}

stop_hvguard() {
	sleep 1.5 # let the daemon drain its ring buffer and run a leak scan
	kill -INT "$hvg_pid" 2>/dev/null
	wait "$hvg_pid"
	echo "HVGOP $phase hvguard pid=$hvg_pid rc=$?"
	sed "s|^|HVGJSON $phase |" /tmp/hvg.json
	sed "s|^|HVGERR $phase |" /tmp/hvg.err
}

# Where the running hvguard's programs are attached, read from the kernel
# with bpftool rather than taken from hvguard's word: the tracepoints of its
# perf events, and per BPF link it holds, the tracepoint or attach type.
attachments() {
	local ids
	ids=$(cat /proc/"$hvg_pid"/fdinfo/* 2>/dev/null | awk '$1 == "link_id:" { printf "%s%s", sep, $2; sep = "," }')
	echo "HVGHOOKS $phase perf $("$BPFTOOL" -j perf list 2>&1 | jq -c --argjson pid "$hvg_pid" \
		'[.[] | select(.pid == $pid) | .tracepoint // .fd_type] | sort' 2>&1 | tr '\n' ' ')"
	echo "HVGHOOKS $phase links $("$BPFTOOL" -j link list 2>&1 | jq -c --argjson ids "[$ids]" \
		'[.[] | select(.id as $i | $ids | index($i)) | .tp_name // .attach_type // .type] | sort' 2>&1 | tr '\n' ' ')"
	# The programs on the deny links, by name (the sleepable file_ioctl
	# program is another program than the non-sleepable one).
	echo "HVGHOOKS $phase deny-progs $("$BPFTOOL" -j link list 2>&1 | jq -c --argjson ids "[$ids]" \
		--argjson progs "$("$BPFTOOL" -j prog list 2>/dev/null || echo '[]')" \
		'[.[] | select(.id as $i | $ids | index($i)) | select(.attach_type == "lsm_mac" or .attach_type == "modify_return")
		  | .prog_id as $p | $progs[] | select(.id == $p) | .name] | sort' 2>&1 | tr '\n' ' ')"
}

frame() { # the grant table frame, fetched by an ordinary process
	"$XENOPS" gnttab-frame | sed -n 's/.*frame=\([0-9]*\).*/\1/p'
}

# A backend trying to get past the checks (issue 11): a foreign ref after
# the 16 hvguard used to read, a copy whose dest is a foreign gref, an
# argument on a page only a sleepable BPF program can read (as the driver
# does), of a grant of an allowed domain and of a foreign one, more refs
# than hvguard walks, and shedding its designation by exec'ing an ordinary
# program (not named as a backend) from a thread that is not the leader.
attacks() {
	op many-refs "$BACKEND" many-refs 20 16 7
	op copy-to "$BACKEND" copy-to 7
	op unfaulted "$BACKEND" unfaulted
	op unfaulted-foreign "$BACKEND" unfaulted 7
	op over-bound "$BACKEND" many-refs 65537 -1 0
	op exec-thread "$BACKEND" exec-thread "$XENOPS" hypercall
}

phase_alert() {
	start_hvguard "$RULES/alert.yaml" "${HOOKS[@]}" || return
	attachments
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
	attacks
	op child "$BACKEND" spawn "$XENOPS" hypercall
	op other-cycle "$XENOPS" grant-cycle
	op other-mmapbatch "$XENOPS" mmapbatch "$f" 2
	op other-hypercall "$XENOPS" hypercall
	stop_hvguard
}

phase_enforce() { # rules
	start_hvguard "$1" "${HOOKS[@]}" || return
	attachments
	local f
	f=$(frame)
	op cycle "$BACKEND" grant-cycle
	op mmapbatch "$BACKEND" mmapbatch "$f" 1
	op hypercall "$BACKEND" hypercall
	op grantdom "$BACKEND" reserve 7 8
	attacks
	op other-mmapbatch "$XENOPS" mmapbatch "$f" 1
	op other-hypercall "$XENOPS" hypercall
	stop_hvguard
}

# With no target_domain, privcmd mmap() itself serves only foreign mappings:
# with action deny, the LSM mmap_file hook refuses it.
phase_deny_mmap() {
	start_hvguard "$RULES/deny-notarget.yaml" "${HOOKS[@]}" || return
	op mmap "$BACKEND" resource 0
	op other-mmap "$XENOPS" resource 0
	stop_hvguard
}

mod() { # label insmod|rmmod module [tries]: the last try's answer
	local rc try
	for try in $(seq 1 "${4:-1}"); do
		"$2" "$3" >/tmp/mod.out 2>&1
		rc=$?
		[ $rc = 0 ] && break
		sleep 0.5
	done
	echo "HVGMOD $phase $1 rc=$rc tries=$try $(tr '\n' ' ' </tmp/mod.out)"
}

# The fentry tier pins the modules it hooks; without one of them loaded it
# cannot attach and hvguard falls back to the syscall tracepoints, saying so.
phase_modules() {
	start_hvguard "$RULES/alert.yaml" || return
	mod pinned-rmmod rmmod xen_gntalloc
	stop_hvguard
	# hvguard's links (and their module references) go with its last fd.
	mod free-rmmod rmmod xen_gntalloc 10
	start_hvguard "$RULES/alert.yaml" || { mod reload insmod "$MODDIR/xen-gntalloc.ko"; return; }
	op hypercall "$BACKEND" hypercall
	stop_hvguard
	mod reload insmod "$MODDIR/xen-gntalloc.ko"
}

# Per-call cost, nothing attached against each tier, interleaved (the
# order of the tiers alternates between rounds) so that drift in the
# emulator shows as the spread between rounds. backend: the designated
# process; other: an ordinary one, doing Xen calls and ordinary ones.
bench_ops() { # prefix
	op "$1-grant" "$BACKEND" bench-grant 150
	op "$1-privcmd" "$BACKEND" bench-privcmd 1500
	op "$1-hypercall" "$BACKEND" bench-hypercall 1500
	op "$1-other-grant" "$XENOPS" bench-grant 150
	op "$1-other-privcmd" "$XENOPS" bench-privcmd 1500
	op "$1-other-ioctl" "$XENOPS" bench-ioctl 1500
	op "$1-other-mmap" "$XENOPS" bench-mmap 600
	op "$1-other-syscall" "$XENOPS" bench-syscall 1500
}

bench_tier() { # round tier
	start_hvguard "$RULES/bench.yaml" --xen-hooks "$2" || return
	bench_ops "$2$1"
	# The daemon stopped: what the BPF programs alone cost (the ring
	# buffer holds the ~1200 records of one grant run).
	kill -STOP "$hvg_pid"
	op "$2$1-bpf-grant" "$BACKEND" bench-grant 150
	op "$2$1-bpf-privcmd" "$BACKEND" bench-privcmd 1500
	kill -CONT "$hvg_pid"
	kill -INT "$hvg_pid"
	wait "$hvg_pid"
}

phase_bench() {
	local round
	for round in 1 2 3 4 5 6 7; do
		bench_ops "off$round"
		if [ $((round % 2)) = 1 ]; then
			bench_tier "$round" fentry
			bench_tier "$round" syscalls
		else
			bench_tier "$round" syscalls
			bench_tier "$round" fentry
		fi
	done
}

for phase in "$@"; do
	echo "HVGPHASE $phase start uptime=$(cut -d' ' -f1 /proc/uptime)"
	# NAME/fentry: hvguard's own choice; NAME/syscalls: forced.
	HOOKS=()
	[ "${phase#*/}" = syscalls ] && HOOKS=(--xen-hooks syscalls)
	case "${phase%/*}" in
	alert) phase_alert ;;
	kill) phase_enforce "$RULES/kill.yaml" ;;
	deny | fallback) phase_enforce "$RULES/deny.yaml" ;;
	# deny with BPF LSM's non-sleepable file_ioctl program, forced
	deny-nosleep)
		HOOKS+=(--xen-deny bpf-lsm)
		phase_enforce "$RULES/deny.yaml"
		;;
	deny-mmap) phase_deny_mmap ;;
	modules) phase_modules ;;
	bench) phase_bench ;;
	*) echo "HVGPHASE $phase unknown" ;;
	esac
	echo "HVGPHASE $phase end uptime=$(cut -d' ' -f1 /proc/uptime)"
done
