#!/usr/bin/env bash
# The mini VMM stage: detection (test_vmm.py), then correction
# (test_correct.py), restarts, audit, signals/--exec/journal (test_service.py,
# test_journal.py), a hostile VMM (test_hostile.py), live migration
# between two mini VMMs (test_migration.py); first the unit-level checks that need
# a real KVM (kvm_unit.sh). Needs root and /dev/kvm.
set -uo pipefail
cd "$(dirname "$0")/../.."
[ -c /dev/kvm ] || { echo "not ok - vmm stage # /dev/kvm missing: this stage needs KVM"; exit 1; }
rc=0
tests/vmm/kvm_unit.sh || rc=1
python3 tests/vmm/test_hooks.py || rc=1
# The pin directory with real daemons (once: it does not depend on the tier).
python3 tests/vmm/test_pindir.py || rc=1
# The service's side (signals, --exec, the journal): not tier-dependent.
python3 tests/vmm/test_service.py || rc=1
python3 tests/vmm/test_journal.py || rc=1
# A hostile VMM against the daemon's deadlines (the seize, the name read):
# not tier-dependent.
python3 tests/vmm/test_hostile.py || rc=1
# Every test once per hook tier of the clock checks (hvguard run --hooks)
# the kernel offers: fentry too where it loads (Debian's 6.1). On fentry,
# only the clock scenarios whose decision that tier moves (stop/cont in
# each VMM's way, TSC rewrite, mismatch, and the corrections): the rest
# runs the very programs of kvm-tracepoints, and the whole stage on a third
# tier would run past the nested stage's 1500 s under a loaded machine.
read -ra tiers <<<"$(python3 tests/lib/clock_tiers.py)"
echo "# clock hook tiers offered here: ${tiers[*]}"
FENTRY_SCENARIOS=qemu-stopcont,qemu-stopcont-4vcpu,crosvm-resume,compat-stopcont
FENTRY_SCENARIOS+=,ch-upstream-pause,ch-pause-resume,firecracker-pause,tsc-msr-rewrite
FENTRY_SCENARIOS+=,tsc-khz-then-cont,vcpu-mismatch
for hooks in "${tiers[@]}"; do
	export HVGUARD_HOOKS=$hooks
	if [ "$hooks" = fentry ]; then
		HVGUARD_VMM_ONLY=$FENTRY_SCENARIOS python3 tests/vmm/test_vmm.py || rc=1
		python3 tests/vmm/test_correct.py || rc=1
		continue
	fi
	python3 tests/vmm/test_vmm.py || rc=1
	python3 tests/vmm/test_correct.py || rc=1
	python3 tests/vmm/test_restart.py || rc=1
	python3 tests/vmm/test_audit.py || rc=1
	python3 tests/vmm/test_text.py || rc=1
	python3 tests/vmm/test_flood.py || rc=1
	python3 tests/vmm/test_quota.py || rc=1
	python3 tests/vmm/test_migration.py || rc=1
done
echo "# end of stage"
exit $rc
