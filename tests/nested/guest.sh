#!/bin/bash
# Runs inside the nested Debian 6.1 KVM of tests/nested/run.sh (chrooted
# into the host's root, see tests/kvm/init): one test stage, its stdout,
# stderr and exit status written to the read-write results share OUT.
# Usage: guest.sh OUT STAGE-SCRIPT [ARGS...]
set -u
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
out=$1
shift
cd "$(dirname "$0")/../.." || exit 1
export HVGUARD_LOGDIR=$out/logs
mkdir -p "$HVGUARD_LOGDIR"
echo "HVG nested stage-start $* uptime=$(cut -d' ' -f1 /proc/uptime)"
"$@" >"$out/stage.out" 2>"$out/stage.err"
echo $? >"$out/rc"
echo "HVG nested stage-end rc=$(cat "$out/rc") uptime=$(cut -d' ' -f1 /proc/uptime)"
sync
