#!/usr/bin/env bash
# The Xen test stage: real Xen 4.17 and a Debian 6.1 dom0 under QEMU TCG
# (tests/xen/lib.sh), hvguard and xenops run inside dom0 against the real
# gntdev, gntalloc and privcmd drivers (tests/xen/dom0.sh), and the verdicts
# read from the markers dom0 prints on the serial log, never from QEMU's exit
# code. Prints "ok - NAME" / "not ok - NAME # why"; exits 1 on any failure.
#
#   tests/xen/run.sh           the test stage (two boots)
#   tests/xen/run.sh bench     per-call cost in dom0, nothing attached against
#                              each hook tier (grant = MAP_GRANT_REF + mmap +
#                              munmap + UNMAP, privcmd = DM_OP with no buffers,
#                              hypercall = HYPERCALL xen_version; "other" = not
#                              a backend, also doing ordinary ioctl, file mmap
#                              and getppid calls)
#
# Boots: "main" with BPF LSM active (alert, kill, deny and deny-mmap phases;
# deny through a sleepable file_ioctl program, which Linux 6.1 allows; and
# deny-nosleep, on the fentry tier only, forced onto the non-sleepable
# file_ioctl program, the fallback where a kernel refuses sleepable), and
# "nolsm" with an lsm= list lacking bpf, where deny must say so and fall
# back to fmod_ret programs on security_file_ioctl/security_mmap_file, and
# where a Xen module is unloaded to see the fentry tier fall back. Every
# detection phase runs on both hook tiers: PHASE/fentry (hvguard's own
# choice, which must be fentry on this dom0) and PHASE/syscalls (forced).
set -u
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
HVGUARD=${HVGUARD:-$repo/build/hvguard}
HVGUARD_TOOLS=${HVGUARD_TOOLS:-$repo/build/tests}
XENOPS=$HVGUARD_TOOLS/xenops
logdir=${XEN_LOGDIR:-$repo/build/test-logs}
# shellcheck source=lib.sh
. "$here/lib.sh"

LSM_WITH_BPF=lockdown,capability,landlock,yama,apparmor,tomoyo,bpf
LSM_WITHOUT_BPF=lockdown,capability,landlock,yama,apparmor,tomoyo

# shellcheck source=../lib/serial.sh
. "$here/../lib/serial.sh"

out_field() { # phase label field: from the "XENOPS cmd k=v..." line of that op
	markers HVGOUT "$1" | awk -v l="$2" -v f="$3" '$1 == l && $2 == "XENOPS" && !done {
		for (i = 4; i <= NF && !done; i++) { split($i, kv, "="); if (kv[1] == f) { print kv[2]; done = 1 } } }'
}
count() { # phase jq-filter: how many JSON objects match
	json "$1" | jq -c "select($2)" | wc -l
}

boot() { # name lsm phases...
	local name=$1 lsm=$2 t0=$SECONDS
	shift 2
	log=$logdir/xen-$name.serial
	rm -f "$log"
	xen_boot "$log" "$here/dom0.sh" "$HVGUARD" "$XENOPS" "$@" -- quiet loglevel=3 "lsm=$lsm"
	echo "# boot $name: $((SECONDS - t0)) s, serial log $log"
	if ! grep -aq '^HVG init script-exit' "$log"; then
		not_ok "xen boot $name" "dom0 never finished its script (last lines: $(tr -d '\r' <"$log" | tail -5 | tr '\n' '|'))"
		return 1
	fi
	ok "xen boot $name: Xen 4.17 + dom0 $(cat "$DEBIAN_KERNEL_CACHE/version") ran the scenarios"
	local p
	for p in "$@"; do
		echo "# $p: hvguard $(markers HVGPHASE "$p" | grep -o 'ready after=[0-9.]*s' | tr '\n' ' ')"
		if markers HVGPHASE "$p" | grep -q no-ready; then
			not_ok "$p: hvguard ready in dom0" "no ready line; stderr: $(markers HVGERR "$p" | tail -3 | tr '\n' '|')"
		fi
	done
}

# --- assertions -----------------------------------------------------------

common_checks() { # phase
	local p=$1
	check "$p: hvguard attached the xen family in dom0" "ready: $(json "$p" | jq -c 'select(.type=="ready") | .families' | head -1)" \
		eq "$(count "$p" '.type=="ready" and .families.xen=="attached"')" 1
	check "$p: hvguard stopped cleanly with a summary" "rc=$(op_field "$p" hvguard rc), summaries=$(count "$p" '.type=="summary"')" \
		eq "$(op_field "$p" hvguard rc):$(count "$p" '.type=="summary"')" 0:1
	check "$p: no event lost" "events_lost=$(json "$p" | jq 'select(.type=="summary") | .events_lost')" \
		eq "$(count "$p" '.type=="summary" and .events_lost==0')" 1
}

no_alerts_for() { # phase label...
	local p=$1 l pid
	shift
	for l in "$@"; do
		pid=$(op_field "$p" "$l" pid)
		check "$p: $l by a process that is not a backend: ran, nothing reported" \
			"rc=$(op_field "$p" "$l" rc), reports=$(count "$p" ".pid==${pid:-0} and .type!=\"ready\"")" \
			eq "$(op_field "$p" "$l" rc):$(count "$p" ".pid==${pid:-0}")" 0:0
	done
}

grant_cycle_checks() { # phase
	local p=$1 pid ops exit_counts
	pid=$(op_field "$p" cycle pid)
	check "$p: backend grant cycle works (gntalloc self-grant, gntdev map, data both ways)" \
		"xenops: $(markers HVGOUT "$p" | grep '^cycle ')" eq "$(out_field "$p" cycle data)$(out_field "$p" cycle back)" okok
	check "$p: backend grant cycle raises no alert" "$(json "$p" | jq -c "select(.type==\"alert\" and .pid==$pid) | .rule" | tr '\n' ' ')" \
		eq "$(count "$p" ".type==\"alert\" and .pid==$pid")" 0
	ops=$(json "$p" | jq -r "select(.type==\"grant\" and .pid==$pid) | .op" | tr '\n' ' ')
	check "$p: grant lifecycle events map, mmap, munmap, unmap in order" "got: $ops" eq "$ops" "map mmap munmap unmap "
	exit_counts=$(json "$p" | jq -r "select(.type==\"xen-backend-exit\" and .pid==$pid) | \"\(.map) \(.mmap) \(.munmap) \(.unmap) \(.reserved) \(.mapped) \(.leaks)\"")
	check "$p: lifecycle counts at exit: 1 map, 1 mmap, 1 munmap, 1 unmap, nothing held, no leak" \
		"map mmap munmap unmap reserved mapped leaks = $exit_counts" eq "$exit_counts" "1 1 1 1 0 0 0"
	check "$p: lifecycle events carry domid 0, 1 page and the gntalloc ref" \
		"$(json "$p" | jq -c "select(.type==\"grant\" and .pid==$pid) | [.op,.domid,.pages,.refs]" | tr '\n' ' ')" \
		eq "$(count "$p" ".type==\"grant\" and .pid==$pid and .domid==0 and .pages==1 and .refs==[$(out_field "$p" cycle ref)]")" 4
}

alert_is() { # phase label rule jq-extra description
	local p=$1 l=$2 rule=$3 extra=$4 what=$5 pid
	pid=$(op_field "$p" "$l" pid)
	check "$p: $what" "alerts for pid $pid: $(json "$p" | jq -c "select(.type==\"alert\" and .pid==${pid:-0}) | {rule,ioctl,domid,pages,hypercall,resource_type,enforcement,ret,leak}" | tr '\n' ' ')" \
		eq "$(count "$p" ".type==\"alert\" and .pid==${pid:-0} and .rule==\"$rule\" $extra")" 1
}

# The tier in use, from hvguard's word (ready line, summary) and from the
# kernel's (bpftool, on the alert phases).
tier_checks() { # phase
	local p=$1 tier=${1#*/}
	check "$p: the ready line and the summary say the xen checks hook at $tier" \
		"ready hooks: $(json "$p" | jq -c 'select(.type=="ready") | .hooks'), summary: $(json "$p" | jq -c 'select(.type=="summary") | .xen.hooks')" \
		eq "$(count "$p" ".type==\"ready\" and .hooks.xen==\"$tier\""):$(count "$p" ".type==\"summary\" and .xen.hooks==\"$tier\"")" 1:1
	if [ "$tier" = fentry ]; then
		check "$p: fentry chosen by hvguard itself, no fallback said" \
			"warnings: $(json "$p" | jq -c 'select(.type=="warning") | .message' | tr '\n' ' ')" \
			eq "$(count "$p" '.type=="warning" and (.message|test("falling back"))')" 0
	fi
}

hooks_field() { # phase perf|links: the JSON list dom0 read with bpftool
	markers HVGHOOKS "$1" | awk -v k="$2" '$1 == k { sub("^[^ ]+ ", ""); print }'
}

attachment_checks() { # phase
	local p=$1 tier=${1#*/} perf links sys tracing
	perf=$(hooks_field "$p" perf)
	links=$(hooks_field "$p" links)
	# The controls: programs every tier has must show, or an empty answer
	# (bpftool missing, an error) would pass for "no syscall tracepoint".
	check "$p: bpftool sees hvguard's exec/exit tracepoints and fork link (control)" \
		"perf: $perf; links: $links" \
		eq "$(echo "$perf" | jq -c 'index("sched_process_exec") != null and index("sched_process_exit") != null' 2>&1):$(echo "$links" | jq -c 'index("sched_process_fork") != null' 2>&1)" true:true
	sys=$(echo "$perf $links" | jq -s -c 'add | map(select(test("^sys_"))) | sort' 2>&1)
	tracing=$(echo "$links" | jq -c 'map(select(test("^trace_f"))) | group_by(.) | map("\(.[0])=\(length)")' 2>&1)
	if [ "$tier" = fentry ]; then
		check "$p: no program of hvguard's on a syscall tracepoint (bpftool perf list, link list)" \
			"syscall hooks: $sys" eq "$sys" "[]"
		check "$p: fentry on the 6 driver functions, fexit on their 5 ioctl/mmap ops (bpftool link list)" \
			"tracing links: $tracing" eq "$tracing" '["trace_fentry=6","trace_fexit=5"]'
	else
		check "$p: --xen-hooks syscalls attaches the ioctl, mmap, munmap syscall tracepoints (bpftool)" \
			"syscall hooks: $sys" eq "$sys" '["sys_enter_ioctl","sys_enter_mmap","sys_enter_munmap","sys_exit_ioctl","sys_exit_mmap","sys_exit_munmap"]'
		check "$p: and no fentry/fexit program (bpftool link list)" "tracing links: $tracing" eq "$tracing" "[]"
	fi
}

# The deny programs are attached only when a rule asks for deny: BPF LSM
# links where it is active, fmod_ret links where it is not.
deny_hook_checks() { # phase lsm-links:fmod_ret-links what
	local p=$1 links got
	links=$(hooks_field "$p" links)
	got=$(echo "$links" | jq -r '"\(map(select(. == "lsm_mac")) | length):\(map(select(. == "modify_return")) | length)"' 2>&1)
	check "$p: $3 (bpftool link list)" "lsm:fmod_ret links = $got; links: $links" eq "$got" "$2"
}

# Which programs the deny links run, by name: the sleepable file_ioctl
# program (xen_lsm_s_file_ioctl) is a program of its own.
deny_progs_check() { # phase expected-json what
	local p=$1 progs
	progs=$(hooks_field "$p" deny-progs | jq -c 'map(.[0:15])' 2>&1)
	check "$p: $3 (bpftool link list, prog list)" "deny programs: $(hooks_field "$p" deny-progs)" \
		eq "$progs" "$2"
}

checks_alert() { # phase
	local p=$1 child_pid
	common_checks "$p"
	tier_checks "$p"
	attachment_checks "$p"
	deny_hook_checks "$p" 0:0 "no rule asks for deny: no deny program attached"
	grant_cycle_checks "$p"
	alert_is "$p" mmapbatch foreign-map \
		'and .ioctl=="IOCTL_PRIVCMD_MMAPBATCH_V2" and .domid==32752 and .pages==2 and .action=="alert" and .ret==0' \
		"backend MMAPBATCH_V2: foreign-map with domid 32752 (DOMID_SELF) and 2 pages"
	check "$p: alert only: the foreign mapping was made" "xenops mapped=$(out_field "$p" mmapbatch mapped)" \
		eq "$(out_field "$p" mmapbatch mapped)" 1
	alert_is "$p" hypercall forbidden-hypercall 'and .ioctl=="IOCTL_PRIVCMD_HYPERCALL" and .hypercall==17' \
		"backend HYPERCALL xen_version: forbidden-hypercall, hypercall 17"
	alert_is "$p" resource resource-map 'and .resource_type==1 and .domid==0' \
		"backend MMAP_RESOURCE of the grant table: resource-map, type 1"
	alert_is "$p" grantdom grant-domain 'and .ioctl=="IOCTL_GNTDEV_MAP_GRANT_REF" and .domid==7 and .refs==[8] and .pages==1' \
		"backend MAP_GRANT_REF of a grant of domain 7 (allowed: 0): grant-domain, domid 7, ref 8"
	alert_is "$p" leak-mapped grant-leak 'and .leak=="was still mapped at exit" and .refs==[8]' \
		"backend exiting with a grant mapped: grant-leak (still mapped)"
	alert_is "$p" leak-reserved grant-leak 'and (.leak|test("never mapped"))' \
		"backend holding a reservation never mapped past grant_leak_after: grant-leak"
	local hpid
	hpid=$(op_field "$p" hostile pid)
	check "$p: hostile arguments (huge count, bad pointers): clear events, daemon unharmed" \
		"bad-argument events: $(count "$p" ".type==\"xen-bad-argument\" and .pid==${hpid:-0}"), huge count seen: $(count "$p" ".type==\"xen-bad-argument\" and .pid==${hpid:-0} and .count==4294967295 and .refs_read==2")" \
		eq "$(count "$p" ".type==\"xen-bad-argument\" and .pid==${hpid:-0}"):$(count "$p" ".type==\"xen-bad-argument\" and .pid==${hpid:-0} and .count==4294967295 and .refs_read==2")" 3:1
	alert_is "$p" hostile foreign-map 'and .decode=="unreadable" and .ret==-14' \
		"hostile MMAPBATCH_V2 with a kernel pointer: still foreign-map (by command), marked unreadable"
	attack_checks_alert "$p"
	child_pid=$(markers HVGOUT "$p" | awk '$1 == "child" && $3 == "hypercall" { for (i = 4; i <= NF; i++) if ($i ~ /^pid=/) print substr($i, 5) }')
	check "$p: a backend's child inherits the designation (fork), its HYPERCALL is reported" \
		"child pid ${child_pid:-?}: $(json "$p" | jq -c "select(.pid==${child_pid:-0}) | {type,rule,how}" | tr '\n' ' ')" \
		eq "$(count "$p" ".pid==${child_pid:-0} and .type==\"xen-backend\" and .how==\"inherited\""):$(count "$p" ".pid==${child_pid:-0} and .rule==\"forbidden-hypercall\"")" 1:1
	no_alerts_for "$p" other-cycle other-mmapbatch other-hypercall
}

unchecked_is() { # phase label cause jq-extra description: one xen-unchecked event, no alert
	local p=$1 l=$2 cause=$3 extra=$4 what=$5 pid
	pid=$(op_field "$p" "$l" pid)
	check "$p: $what" "events for pid $pid: $(json "$p" | jq -c "select(.pid==${pid:-0} and (.type==\"alert\" or .type==\"xen-unchecked\")) | {type,rule,ioctl,unchecked,count,checked}" | tr '\n' ' ')" \
		eq "$(count "$p" ".type==\"xen-unchecked\" and .pid==${pid:-0} and .rule==\"grant-domain\" and .unchecked==\"$cause\" $extra"):$(count "$p" ".type==\"alert\" and .pid==${pid:-0}")" 1:0
}

# Issue 11's fail-closed attacks (dom0.sh attacks), with action alert: the
# foreign domains found wherever they are, what cannot be checked said.
attack_checks_alert() { # phase
	local p=$1
	alert_is "$p" many-refs grant-domain 'and .ioctl=="IOCTL_GNTDEV_MAP_GRANT_REF" and .domid==7 and .pages==20 and .checked==null and (.refs|length)==16 and .ret==0' \
		"MAP_GRANT_REF of 20 refs, the 17th of domain 7: grant-domain, domid 7 (alert: the call went through)"
	alert_is "$p" copy-to grant-domain 'and .ioctl=="IOCTL_GNTDEV_GRANT_COPY" and .domid==7 and .refs[1]==8' \
		"GRANT_COPY gref to gref, the dest of domain 7: grant-domain, domid 7, dest ref 8"
	check "$p: the argument on an untouched page: the driver read it (the call worked)" \
		"xenops: $(markers HVGOUT "$p" | grep '^unfaulted ')" eq "$(out_field "$p" unfaulted ret)" 0
	unchecked_is "$p" unfaulted unreadable 'and .ioctl=="IOCTL_GNTDEV_MAP_GRANT_REF" and .count==0' \
		"...while hvguard could not: a xen-unchecked event (unreadable), no alert under action alert"
	check "$p: the same with a grant of domain 7: the driver reserved it" \
		"xenops: $(markers HVGOUT "$p" | grep '^unfaulted-foreign ')" eq "$(out_field "$p" unfaulted-foreign ret)" 0
	unchecked_is "$p" unfaulted-foreign unreadable 'and .ioctl=="IOCTL_GNTDEV_MAP_GRANT_REF" and .count==0' \
		"...and the detection hooks (no deny program loaded) could not read it: xen-unchecked, no alert"
	unchecked_is "$p" over-bound truncated 'and .count==65537 and .checked==0' \
		"MAP_GRANT_REF of 65537 refs (past the walk): a xen-unchecked event (truncated), no alert"
	alert_is "$p" exec-thread forbidden-hypercall 'and .ioctl=="IOCTL_PRIVCMD_HYPERCALL" and .comm=="xenops"' \
		"a backend exec'ing an ordinary program from a non-leader thread stays one: its HYPERCALL is reported"
	check "$p: ...and its designation ended once, when the process did, not at the exec" \
		"exit records: $(json "$p" | jq -c "select(.type==\"xen-backend-exit\" and .pid==$(op_field "$p" exec-thread pid)) | {comm,violations}" | tr '\n' ' ')" \
		eq "$(count "$p" ".type==\"xen-backend-exit\" and .pid==$(op_field "$p" exec-thread pid) and .violations==1")" 1
	check "$p: the summary counts unchecked calls by cause, as many as were reported" \
		"summary: $(json "$p" | jq -c 'select(.type=="summary") | .xen.unchecked'); events: $(json "$p" | jq -c 'select(.type=="xen-unchecked") | .unchecked' | sort | uniq -c | tr '\n' ' ')" \
		eq "$(json "$p" | jq -r 'select(.type=="summary") | "\(.xen.unchecked.unreadable):\(.xen.unchecked.truncated)"')" \
		"$(count "$p" '.type=="xen-unchecked" and .unchecked=="unreadable"'):$(count "$p" '.type=="xen-unchecked" and .unchecked=="truncated"')"
}

# The same attacks with action kill or deny: each stopped, the alert saying
# what was found or why it could not be checked.
attack_checks_enforce() { # phase kill|deny
	local p=$1 mode=$2 l enf
	if [ "$mode" = kill ]; then
		enf='.enforcement=="killed"'
		for l in many-refs copy-to unfaulted unfaulted-foreign over-bound exec-thread; do
			check "$p: $l with action kill: the offender dies (SIGKILL)" \
				"rc=$(op_field "$p" $l rc)" eq "$(op_field "$p" $l rc)" 137
		done
	else
		enf='.enforcement=="denied" and .ret==-1'
		check "$p: MAP_GRANT_REF, 17th ref of domain 7, action deny: EPERM" \
			"xenops: $(markers HVGOUT "$p" | grep '^many-refs ')" eq "$(out_field "$p" many-refs errno)" 1
		check "$p: GRANT_COPY to a gref of domain 7, action deny: EPERM, the driver never saw the segment" \
			"xenops: $(markers HVGOUT "$p" | grep '^copy-to ')" \
			eq "$(out_field "$p" copy-to errno):$(out_field "$p" copy-to status)" 1:12345
		unfaulted_checks_deny "$p"
		check "$p: 65537 refs, action deny: EPERM from hvguard, before the driver's own EINVAL" \
			"xenops: $(markers HVGOUT "$p" | grep '^over-bound ')" eq "$(out_field "$p" over-bound errno)" 1
		check "$p: exec from a non-leader thread, then HYPERCALL, action deny: EPERM (still a backend)" \
			"xenops: $(markers HVGOUT "$p" | grep '^exec-thread ')" eq "$(out_field "$p" exec-thread errno)" 1
	fi
	alert_is "$p" exec-thread forbidden-hypercall "and $enf and .comm==\"xenops\"" \
		"$mode: the HYPERCALL after exec from a non-leader thread: forbidden-hypercall"
	alert_is "$p" many-refs grant-domain "and $enf and .domid==7 and .pages==20 and .unchecked==null" \
		"$mode: the 17th ref's domain 7 named in the alert"
	alert_is "$p" copy-to grant-domain "and $enf and .ioctl==\"IOCTL_GNTDEV_GRANT_COPY\" and .domid==7" \
		"$mode: the copy's dest domain 7 named in the alert"
	if [ "$mode" = kill ]; then
		for l in unfaulted unfaulted-foreign; do
			alert_is "$p" $l grant-domain "and $enf and .unchecked==\"unreadable\" and .domid==null" \
				"$mode: $l: the unreadable call is a grant-domain violation, unchecked: unreadable"
		done
	fi
	alert_is "$p" over-bound grant-domain "and $enf and .unchecked==\"truncated\" and .pages==65537" \
		"$mode: the call past the walk is a grant-domain violation, unchecked: truncated"
	local unreadable=2
	[ "$mode" = deny ] && unreadable=0
	check "$p: the summary counts them: $unreadable unreadable, 1 truncated" \
		"summary: $(json "$p" | jq -c 'select(.type=="summary") | .xen.unchecked')" \
		eq "$(count "$p" ".type==\"summary\" and .xen.unchecked.unreadable==$unreadable and .xen.unchecked.truncated==1")" 1
}

# With BPF LSM active the deny program is sleepable and faults the argument
# in as the driver does: a real verdict, both ways.
unfaulted_checks_deny() { # phase
	local p=$1 pid
	pid=$(op_field "$p" unfaulted pid)
	check "$p: an argument on a page not faulted in, its grant from domain 0 (allowed): the call works" \
		"xenops: $(markers HVGOUT "$p" | grep '^unfaulted ')" \
		eq "$(out_field "$p" unfaulted ret)/$(out_field "$p" unfaulted errno)" 0/0
	check "$p: ...with no alert and nothing unchecked for it" \
		"events for pid $pid: $(json "$p" | jq -c "select(.pid==${pid:-0} and (.type==\"alert\" or .type==\"xen-unchecked\")) | {type,rule,unchecked}" | tr '\n' ' ')" \
		eq "$(count "$p" ".pid==${pid:-0} and (.type==\"alert\" or .type==\"xen-unchecked\")")" 0
	check "$p: an argument on a page not faulted in, its grant from domain 7: EPERM" \
		"xenops: $(markers HVGOUT "$p" | grep '^unfaulted-foreign ')" eq "$(out_field "$p" unfaulted-foreign errno)" 1
	alert_is "$p" unfaulted-foreign grant-domain \
		'and .enforcement=="denied" and .ret==-1 and .ioctl=="IOCTL_GNTDEV_MAP_GRANT_REF" and .domid==7 and .refs==[8] and .unchecked==null' \
		"deny: ...the alert names domain 7 and ref 8, nothing unchecked"
}

checks_enforce() { # phase action
	local p=$1 mode=$2
	common_checks "$p"
	tier_checks "$p"
	attachment_checks "$p"
	if [ "$mode" = kill ]; then
		deny_hook_checks "$p" 0:0 "kill only: no deny program attached"
	else
		deny_hook_checks "$p" 2:0 "deny with BPF LSM active: file_ioctl and mmap_file LSM programs"
		deny_progs_check "$p" '["xen_lsm_mmap_fi","xen_lsm_s_file_"]' \
			"...file_ioctl's the sleepable one (xen_lsm_s_file_ioctl), mmap_file's not"
	fi
	grant_cycle_checks "$p"
	if [ "$mode" = kill ]; then
		check "$p: backend MMAPBATCH_V2 with action kill: the offender dies (SIGKILL)" \
			"rc=$(op_field "$p" mmapbatch rc)" eq "$(op_field "$p" mmapbatch rc)" 137
		alert_is "$p" mmapbatch foreign-map 'and .enforcement=="killed" and .domid==32752 and .pages==1' \
			"kill: foreign-map alert says killed, with domid and pages"
		check "$p: backend HYPERCALL with action kill: the offender dies" \
			"rc=$(op_field "$p" hypercall rc)" eq "$(op_field "$p" hypercall rc)" 137
		alert_is "$p" hypercall forbidden-hypercall 'and .enforcement=="killed"' \
			"kill: forbidden-hypercall alert says killed"
		check "$p: backend MAP_GRANT_REF from a domain not allowed, action kill: dies" \
			"rc=$(op_field "$p" grantdom rc)" eq "$(op_field "$p" grantdom rc)" 137
	else
		check "$p: sleepable BPF LSM is the deny mechanism, no fallback said" \
			"summary: $(json "$p" | jq -c 'select(.type=="summary") | .xen.deny'); warnings: $(json "$p" | jq -c 'select(.type=="warning") | .message' | tr '\n' ' ')" \
			eq "$(count "$p" '.type=="summary" and .xen.deny=="bpf-lsm-sleepable"'):$(count "$p" '.type=="warning" and (.message|test("sleepable"))')" 1:0
		check "$p: backend MMAPBATCH_V2 with action deny gets EPERM" \
			"xenops: $(markers HVGOUT "$p" | grep '^mmapbatch ')" \
			eq "$(out_field "$p" mmapbatch ret)/$(out_field "$p" mmapbatch errno)" -1/1
		check "$p: deny: the foreign mapping never exists (driver never ran, page not backed)" \
			"mapped=$(out_field "$p" mmapbatch mapped) err0=$(out_field "$p" mmapbatch err0)" \
			eq "$(out_field "$p" mmapbatch mapped):$(out_field "$p" mmapbatch err0)" 0:12345
		alert_is "$p" mmapbatch foreign-map 'and .enforcement=="denied" and .ret==-1 and .domid==32752' \
			"deny: foreign-map alert says denied, ret -EPERM"
		check "$p: backend HYPERCALL with action deny gets EPERM" \
			"xenops: $(markers HVGOUT "$p" | grep '^hypercall ')" eq "$(out_field "$p" hypercall errno)" 1
		alert_is "$p" hypercall forbidden-hypercall 'and .enforcement=="denied"' \
			"deny: forbidden-hypercall alert says denied"
		check "$p: backend MAP_GRANT_REF from a domain not allowed, action deny: EPERM" \
			"xenops: $(markers HVGOUT "$p" | grep '^grantdom ')" eq "$(out_field "$p" grantdom errno)" 1
		alert_is "$p" grantdom grant-domain 'and .enforcement=="denied" and .domid==7' \
			"deny: grant-domain alert says denied, domid 7"
	fi
	attack_checks_enforce "$p" "$mode"
	no_alerts_for "$p" other-mmapbatch other-hypercall
	check "$p: the same calls by other processes succeed" \
		"mapped=$(out_field "$p" other-mmapbatch mapped) hypercall ok=$(out_field "$p" other-hypercall ok)" \
		eq "$(out_field "$p" other-mmapbatch mapped)$(out_field "$p" other-hypercall ok)" 11
}

checks_deny_mmap() { # phase
	local p=$1
	common_checks "$p"
	tier_checks "$p"
	check "$p: no target_domain: a backend's mmap of privcmd gets EPERM (LSM mmap_file)" \
		"xenops: $(markers HVGOUT "$p" | grep '^mmap ')" \
		eq "$(out_field "$p" mmap error)/$(out_field "$p" mmap errno)" mmap-privcmd/1
	alert_is "$p" mmap foreign-map 'and .ioctl=="mmap" and .enforcement=="denied"' \
		"deny-mmap: foreign-map alert for the mmap, denied"
	no_alerts_for "$p" other-mmap
}

checks_fallback() { # phase
	local p=$1
	common_checks "$p"
	tier_checks "$p"
	attachment_checks "$p"
	deny_hook_checks "$p" 0:2 "deny without BPF LSM: fmod_ret on security_file_ioctl and security_mmap_file"
	deny_progs_check "$p" '["xen_fmod_file_i","xen_fmod_mmap_f"]' "...the fmod_ret programs, nothing sleepable"
	check "$p: without BPF LSM, hvguard says so and denies through fmod_ret instead" \
		"warnings: $(json "$p" | jq -c 'select(.type=="warning") | .message' | tr '\n' ' '); summary deny: $(json "$p" | jq -c 'select(.type=="summary") | .xen.deny')" \
		eq "$(count "$p" '.type=="warning" and (.message|test("BPF LSM is not active.*fmod_ret"))'):$(count "$p" '.type=="summary" and .xen.deny=="fmod-ret"')" 1:1
	checks_deny_nofault "$p" fallback
}

# deny forced onto BPF LSM's non-sleepable file_ioctl program, which is
# what a kernel that refuses the sleepable one gets.
checks_deny_nosleep() { # phase
	local p=$1
	common_checks "$p"
	tier_checks "$p"
	attachment_checks "$p"
	deny_hook_checks "$p" 2:0 "--xen-deny bpf-lsm: file_ioctl and mmap_file LSM programs"
	deny_progs_check "$p" '["xen_lsm_file_io","xen_lsm_mmap_fi"]' "...both non-sleepable (xen_lsm_file_ioctl)"
	check "$p: --xen-deny bpf-lsm: the summary says bpf-lsm, no warning" \
		"warnings: $(json "$p" | jq -c 'select(.type=="warning") | .message' | tr '\n' ' '); summary deny: $(json "$p" | jq -c 'select(.type=="summary") | .xen.deny')" \
		eq "$(count "$p" '.type=="warning"'):$(count "$p" '.type=="summary" and .xen.deny=="bpf-lsm"')" 0:1
	grant_cycle_checks "$p"
	checks_deny_nofault "$p" "non-sleepable LSM"
}

# A deny program that cannot fault pages in: what it refuses, and the
# untouched-page arguments refused as unchecked (fail closed).
checks_deny_nofault() { # phase what
	local p=$1 what=$2
	check "$p: backend MMAPBATCH_V2 gets EPERM, the mapping never exists" \
		"xenops: $(markers HVGOUT "$p" | grep '^mmapbatch ')" \
		eq "$(out_field "$p" mmapbatch errno):$(out_field "$p" mmapbatch mapped):$(out_field "$p" mmapbatch err0)" 1:0:12345
	alert_is "$p" mmapbatch foreign-map 'and .enforcement=="denied" and .action=="deny"' \
		"$what: foreign-map alert says denied"
	check "$p: backend HYPERCALL gets EPERM" "xenops: $(markers HVGOUT "$p" | grep '^hypercall ')" \
		eq "$(out_field "$p" hypercall errno)" 1
	check "$p: the fail-closed attacks get EPERM too (17th ref foreign, copy to a foreign gref, unreadable twice, past the walk)" \
		"errnos: $(for l in many-refs copy-to unfaulted unfaulted-foreign over-bound; do printf '%s=%s ' $l "$(out_field "$p" $l errno)"; done)" \
		eq "$(for l in many-refs copy-to unfaulted unfaulted-foreign over-bound; do out_field "$p" $l errno; done | tr -d '\n')" 11111
	local l
	for l in unfaulted unfaulted-foreign; do
		alert_is "$p" $l grant-domain 'and .enforcement=="denied" and .ret==-1 and .unchecked=="unreadable" and .domid==null' \
			"$what: $l: the page cannot be faulted in here: denied as unchecked (unreadable), no domain named"
	done
	no_alerts_for "$p" other-mmapbatch other-hypercall
}

mod_field() { # phase label: "rc=N output..." of that module operation
	markers HVGMOD "$1" | awk -v l="$2" '$1 == l { sub("^[^ ]+ ", ""); print }'
}

checks_modules() {
	local p=modules
	check "$p: while the fentry tier is attached, its modules cannot be unloaded" \
		"rmmod xen_gntalloc with hvguard running: $(mod_field "$p" pinned-rmmod)" \
		eq "$(mod_field "$p" pinned-rmmod | grep -c '^rc=1 .*is in use')" 1
	check "$p: with hvguard stopped, the module unloads (the pin was hvguard's)" \
		"rmmod xen_gntalloc: $(mod_field "$p" free-rmmod)" eq "$(mod_field "$p" free-rmmod | cut -d' ' -f1)" rc=0
	check "$p: a Xen module missing: hvguard falls back to the syscall tracepoints and says why" \
		"warnings: $(json "$p" | jq -c 'select(.type=="warning") | .message' | tr '\n' ' '); ready hooks: $(json "$p" | jq -c 'select(.type=="ready") | .hooks' | tr '\n' ' ')" \
		eq "$(count "$p" '.type=="warning" and (.message|test("gntalloc_ioctl is not in /proc/kallsyms.*falling back to the syscall tracepoints"))'):$(count "$p" '.type=="ready" and .hooks.xen=="syscalls"')" 1:1
	alert_is "$p" hypercall forbidden-hypercall 'and .ioctl=="IOCTL_PRIVCMD_HYPERCALL"' \
		"fallen back to syscalls: a backend's HYPERCALL is still reported"
	check "$p: the module loads again afterwards" "insmod: $(mod_field "$p" reload)" \
		eq "$(mod_field "$p" reload | cut -d' ' -f1)" rc=0
}

# --- benchmark ------------------------------------------------------------

# "median min max" of the numbers on stdin.
stats() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)], v[1], v[NR]; else print "? ? ?" }'; }

BENCH_ROUNDS="1 2 3 4 5 6 7"
bench_out=

# A run's value: its least disturbed batch (xenops' min). Interruptions of
# the emulator by the rest of the host only ever add time.
bench_value() { # label
	awk -v l="$1" '$1 == l && $2 == "XENOPS" { for (i = 4; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "min") print kv[2] } }' "$bench_out"
}

bench_row() { # label off-label on-label: nothing attached, and what each tier adds
	local label=$1 off=$2 on=$3 tier r a b cells=() s
	s=$(for r in $BENCH_ROUNDS; do bench_value "off$r-$off"; done | stats)
	# shellcheck disable=SC2086 # "median min max": split on purpose
	set -- $s
	cells+=("$(printf '%s (%s-%s)' "$1" "$2" "$3")")
	for tier in fentry syscalls; do
		s=$(for r in $BENCH_ROUNDS; do
			a=$(bench_value "off$r-$off")
			b=$(bench_value "$tier$r-$on")
			[ -n "$a" ] && [ -n "$b" ] && echo $((b - a))
		done | stats)
		# shellcheck disable=SC2086
		set -- $s
		if [ "$1" = "?" ]; then
			cells+=("? (no pairs)")
		else
			cells+=("$(printf '%+d (%+d..%+d)' "$1" "$2" "$3")")
		fi
	done
	printf '#   %-30s %22s %24s %24s\n' "$label" "${cells[@]}"
}

bench_report() {
	local rounds
	rounds=$(echo "$BENCH_ROUNDS" | wc -w)
	bench_out=$(mktemp)
	markers HVGOUT bench >"$bench_out"
	echo "# per-call cost in dom0 under QEMU TCG, ns per operation. A run's value is its"
	echo "# fastest batch of 15 (xenops); nothing attached: median (min-max) over $rounds"
	echo "# interleaved rounds; each tier: the cost it adds over nothing attached in the"
	echo "# same round, median (min..max) over the rounds. Emulation inflates everything:"
	echo "# compare the columns, not the values. backend: designated, daemon running;"
	echo "# bpf-only: same with the daemon stopped; other: a process that is not a backend."
	printf '#   %-30s %22s %24s %24s\n' operation "nothing attached" "fentry adds" "syscalls adds"
	bench_row "grant cycle (backend)" grant grant
	bench_row "grant cycle (bpf-only)" grant bpf-grant
	bench_row "grant cycle (other)" other-grant other-grant
	bench_row "privcmd DM_OP (backend)" privcmd privcmd
	bench_row "privcmd DM_OP (bpf-only)" privcmd bpf-privcmd
	bench_row "privcmd DM_OP (other)" other-privcmd other-privcmd
	bench_row "HYPERCALL (backend)" hypercall hypercall
	bench_row "FIONREAD ioctl (other)" other-ioctl other-ioctl
	bench_row "mmap+munmap /dev/zero (other)" other-mmap other-mmap
	bench_row "getppid (other)" other-syscall other-syscall
	rm -f "$bench_out"
	check "bench: every measurement ran" "$(markers HVGOP bench | grep -vc 'rc=0') runs failed" \
		eq "$(markers HVGOP bench | grep -vc 'rc=0')" 0
	check "bench: every round measured both tiers" "runs: $(markers HVGOP bench | wc -l)" \
		eq "$(markers HVGOP bench | wc -l)" $((rounds * (8 + 2 * (8 + 2))))
}

main() {
	local mode=${1:-test}
	mkdir -p "$logdir"
	for f in "$HVGUARD" "$XENOPS"; do
		if [ ! -x "$f" ]; then
			not_ok "xen stage prerequisites" "$f not built (make all tools)"
			return 1
		fi
	done
	for t in qemu-system-x86_64 jq cpio; do
		command -v $t >/dev/null || { not_ok "xen stage prerequisites" "$t not installed (make test-deps)"; return 1; }
	done
	if ! prep_err=$(xen_prepare 2>&1); then
		not_ok "xen stage prerequisites" "cannot fetch Xen/kernel or build the initramfs: $prep_err"
		return 1
	fi
	if [ "$mode" = bench ]; then
		# Seven rounds of three configurations: longer than a test boot.
		# shellcheck disable=SC2034 # read by xen_boot (lib.sh)
		XEN_BOOT_TIMEOUT=${XEN_BENCH_TIMEOUT:-1500}
		boot bench "$LSM_WITH_BPF" bench && bench_report
		return $failed
	fi
	local tier
	if boot main "$LSM_WITH_BPF" alert/fentry alert/syscalls kill/fentry kill/syscalls \
		deny/fentry deny/syscalls deny-nosleep/fentry deny-mmap/fentry deny-mmap/syscalls; then
		for tier in fentry syscalls; do
			checks_alert alert/$tier
			checks_enforce kill/$tier kill
			checks_enforce deny/$tier deny
			checks_deny_mmap deny-mmap/$tier
		done
		checks_deny_nosleep deny-nosleep/fentry
	fi
	if boot nolsm "$LSM_WITHOUT_BPF" fallback/fentry fallback/syscalls modules; then
		checks_fallback fallback/fentry
		checks_fallback fallback/syscalls
		checks_modules
	fi
	return $failed
}

main "$@"
echo "# end of stage"
exit $failed
