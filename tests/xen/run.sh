#!/usr/bin/env bash
# The Xen test stage: real Xen 4.17 and a Debian 6.1 dom0 under QEMU TCG
# (tests/xen/lib.sh), hvguard and xenops run inside dom0 against the real
# gntdev, gntalloc and privcmd drivers (tests/xen/dom0.sh), and the verdicts
# read from the markers dom0 prints on the serial log, never from QEMU's exit
# code. Prints "ok - NAME" / "not ok - NAME # why"; exits 1 on any failure.
#
#   tests/xen/run.sh           the test stage (two boots, about 2 minutes)
#   tests/xen/run.sh bench     per-call cost in dom0, hvguard attached or not
#                              (grant = MAP_GRANT_REF + mmap + munmap + UNMAP,
#                              privcmd = DM_OP with no buffers, hypercall =
#                              HYPERCALL xen_version; "other" = not a backend)
#
# Boots: "main" with BPF LSM active (alert, kill, deny and deny-mmap phases),
# and "nolsm" with an lsm= list lacking bpf, where deny must say so and fall
# back to fmod_ret programs on security_file_ioctl/security_mmap_file.
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

checks_alert() {
	local p=alert child_pid
	common_checks $p
	grant_cycle_checks $p
	alert_is $p mmapbatch foreign-map \
		'and .ioctl=="IOCTL_PRIVCMD_MMAPBATCH_V2" and .domid==32752 and .pages==2 and .action=="alert" and .ret==0' \
		"backend MMAPBATCH_V2: foreign-map with domid 32752 (DOMID_SELF) and 2 pages"
	check "$p: alert only: the foreign mapping was made" "xenops mapped=$(out_field $p mmapbatch mapped)" \
		eq "$(out_field $p mmapbatch mapped)" 1
	alert_is $p hypercall forbidden-hypercall 'and .ioctl=="IOCTL_PRIVCMD_HYPERCALL" and .hypercall==17' \
		"backend HYPERCALL xen_version: forbidden-hypercall, hypercall 17"
	alert_is $p resource resource-map 'and .resource_type==1 and .domid==0' \
		"backend MMAP_RESOURCE of the grant table: resource-map, type 1"
	alert_is $p grantdom grant-domain 'and .ioctl=="IOCTL_GNTDEV_MAP_GRANT_REF" and .domid==7 and .refs==[8] and .pages==1' \
		"backend MAP_GRANT_REF of a grant of domain 7 (allowed: 0): grant-domain, domid 7, ref 8"
	alert_is $p leak-mapped grant-leak 'and .leak=="was still mapped at exit" and .refs==[8]' \
		"backend exiting with a grant mapped: grant-leak (still mapped)"
	alert_is $p leak-reserved grant-leak 'and (.leak|test("never mapped"))' \
		"backend holding a reservation never mapped past grant_leak_after: grant-leak"
	local hpid
	hpid=$(op_field $p hostile pid)
	check "$p: hostile arguments (huge count, bad pointers): clear events, daemon unharmed" \
		"bad-argument events: $(count $p ".type==\"xen-bad-argument\" and .pid==${hpid:-0}"), huge count seen: $(count $p ".type==\"xen-bad-argument\" and .pid==${hpid:-0} and .count==4294967295 and .refs_read==2")" \
		eq "$(count $p ".type==\"xen-bad-argument\" and .pid==${hpid:-0}"):$(count $p ".type==\"xen-bad-argument\" and .pid==${hpid:-0} and .count==4294967295 and .refs_read==2")" 3:1
	alert_is $p hostile foreign-map 'and .decode=="unreadable" and .ret==-14' \
		"hostile MMAPBATCH_V2 with a kernel pointer: still foreign-map (by command), marked unreadable"
	child_pid=$(markers HVGOUT $p | awk '$1 == "child" && $3 == "hypercall" { for (i = 4; i <= NF; i++) if ($i ~ /^pid=/) print substr($i, 5) }')
	check "$p: a backend's child inherits the designation (fork), its HYPERCALL is reported" \
		"child pid ${child_pid:-?}: $(json $p | jq -c "select(.pid==${child_pid:-0}) | {type,rule,how}" | tr '\n' ' ')" \
		eq "$(count $p ".pid==${child_pid:-0} and .type==\"xen-backend\" and .how==\"inherited\""):$(count $p ".pid==${child_pid:-0} and .rule==\"forbidden-hypercall\"")" 1:1
	no_alerts_for $p other-cycle other-mmapbatch other-hypercall
}

checks_enforce() { # phase action
	local p=$1 mode=$2
	common_checks "$p"
	grant_cycle_checks "$p"
	if [ "$mode" = kill ]; then
		check "$p: backend MMAPBATCH_V2 with action kill: the offender dies (SIGKILL)" \
			"rc=$(op_field $p mmapbatch rc)" eq "$(op_field $p mmapbatch rc)" 137
		alert_is $p mmapbatch foreign-map 'and .enforcement=="killed" and .domid==32752 and .pages==1' \
			"kill: foreign-map alert says killed, with domid and pages"
		check "$p: backend HYPERCALL with action kill: the offender dies" \
			"rc=$(op_field $p hypercall rc)" eq "$(op_field $p hypercall rc)" 137
		alert_is $p hypercall forbidden-hypercall 'and .enforcement=="killed"' \
			"kill: forbidden-hypercall alert says killed"
		check "$p: backend MAP_GRANT_REF from a domain not allowed, action kill: dies" \
			"rc=$(op_field $p grantdom rc)" eq "$(op_field $p grantdom rc)" 137
	else
		check "$p: BPF LSM is the deny mechanism" "summary: $(json $p | jq -c 'select(.type=="summary") | .xen.deny')" \
			eq "$(count $p '.type=="summary" and .xen.deny=="bpf-lsm"')" 1
		check "$p: backend MMAPBATCH_V2 with action deny gets EPERM" \
			"xenops: $(markers HVGOUT $p | grep '^mmapbatch ')" \
			eq "$(out_field $p mmapbatch ret)/$(out_field $p mmapbatch errno)" -1/1
		check "$p: deny: the foreign mapping never exists (driver never ran, page not backed)" \
			"mapped=$(out_field $p mmapbatch mapped) err0=$(out_field $p mmapbatch err0)" \
			eq "$(out_field $p mmapbatch mapped):$(out_field $p mmapbatch err0)" 0:12345
		alert_is $p mmapbatch foreign-map 'and .enforcement=="denied" and .ret==-1 and .domid==32752' \
			"deny: foreign-map alert says denied, ret -EPERM"
		check "$p: backend HYPERCALL with action deny gets EPERM" \
			"xenops: $(markers HVGOUT $p | grep '^hypercall ')" eq "$(out_field $p hypercall errno)" 1
		alert_is $p hypercall forbidden-hypercall 'and .enforcement=="denied"' \
			"deny: forbidden-hypercall alert says denied"
		check "$p: backend MAP_GRANT_REF from a domain not allowed, action deny: EPERM" \
			"xenops: $(markers HVGOUT $p | grep '^grantdom ')" eq "$(out_field $p grantdom errno)" 1
		alert_is $p grantdom grant-domain 'and .enforcement=="denied" and .domid==7' \
			"deny: grant-domain alert says denied, domid 7"
	fi
	no_alerts_for "$p" other-mmapbatch other-hypercall
	check "$p: the same calls by other processes succeed" \
		"mapped=$(out_field $p other-mmapbatch mapped) hypercall ok=$(out_field $p other-hypercall ok)" \
		eq "$(out_field $p other-mmapbatch mapped)$(out_field $p other-hypercall ok)" 11
}

checks_deny_mmap() {
	local p=deny-mmap
	common_checks $p
	check "$p: no target_domain: a backend's mmap of privcmd gets EPERM (LSM mmap_file)" \
		"xenops: $(markers HVGOUT $p | grep '^mmap ')" \
		eq "$(out_field $p mmap error)/$(out_field $p mmap errno)" mmap-privcmd/1
	alert_is $p mmap foreign-map 'and .ioctl=="mmap" and .enforcement=="denied"' \
		"deny-mmap: foreign-map alert for the mmap, denied"
	no_alerts_for $p other-mmap
}

checks_fallback() {
	local p=fallback
	common_checks $p
	check "$p: without BPF LSM, hvguard says so and denies through fmod_ret instead" \
		"warnings: $(json $p | jq -c 'select(.type=="warning") | .message' | tr '\n' ' '); summary deny: $(json $p | jq -c 'select(.type=="summary") | .xen.deny')" \
		eq "$(count $p '.type=="warning" and (.message|test("BPF LSM is not active.*fmod_ret"))'):$(count $p '.type=="summary" and .xen.deny=="fmod-ret"')" 1:1
	check "$p: backend MMAPBATCH_V2 gets EPERM, the mapping never exists" \
		"xenops: $(markers HVGOUT $p | grep '^mmapbatch ')" \
		eq "$(out_field $p mmapbatch errno):$(out_field $p mmapbatch mapped):$(out_field $p mmapbatch err0)" 1:0:12345
	alert_is $p mmapbatch foreign-map 'and .enforcement=="denied" and .action=="deny"' \
		"fallback: foreign-map alert says denied"
	check "$p: backend HYPERCALL gets EPERM" "xenops: $(markers HVGOUT $p | grep '^hypercall ')" \
		eq "$(out_field $p hypercall errno)" 1
	no_alerts_for $p other-mmapbatch other-hypercall
}

# --- benchmark ------------------------------------------------------------

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "?" }'; }

bench_report() {
	local p=bench kind who off on
	echo "# per-call cost in dom0 under QEMU TCG, median of 3 interleaved rounds, ns per"
	echo "# operation (emulation inflates everything; compare the columns, not the values)."
	echo "# backend: designated, daemon running; bpf-only: same with the daemon stopped;"
	echo "# other: a process that is not a backend."
	printf '#   %-36s %12s %12s %12s\n' operation detached attached added
	for kind in grant privcmd hypercall; do
		for who in backend bpf-only other; do
			[ "$who:$kind" = other:hypercall ] && continue
			[ "$who:$kind" = bpf-only:hypercall ] && continue
			off=$(for r in 1 2 3; do out_field $p "off$r-$kind" ns_per_op; done | median)
			case $who in
			backend) on=$(for r in 1 2 3; do out_field $p "on$r-$kind" ns_per_op; done | median) ;;
			other) on=$(for r in 1 2 3; do out_field $p "on$r-other-$kind" ns_per_op; done | median) ;;
			bpf-only) on=$(for r in 1 2 3; do out_field $p "bpf$r-$kind" ns_per_op; done | median) ;;
			esac
			printf '#   %-36s %12s %12s %+12d\n' "$kind ($who)" "$off" "$on" $((on - off))
		done
	done
	check "bench: every measurement ran" "$(markers HVGOP $p | grep -vc 'rc=0') runs failed" \
		eq "$(markers HVGOP $p | grep -vc 'rc=0')" 0
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
		boot bench "$LSM_WITH_BPF" bench && bench_report
		return $failed
	fi
	if boot main "$LSM_WITH_BPF" alert kill deny deny-mmap; then
		checks_alert
		checks_enforce kill kill
		checks_enforce deny deny
		checks_deny_mmap
	fi
	if boot nolsm "$LSM_WITHOUT_BPF" fallback; then
		checks_fallback
	fi
	return $failed
}

main "$@"
echo "# end of stage"
exit $failed
