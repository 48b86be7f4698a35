#!/usr/bin/env bash
# The CLI's contract: what a user can get wrong gets one clear line and a
# distinct exit code (README "Exit codes").
set -uo pipefail
cd "$(dirname "$0")/../.."
HV=${HVGUARD:-build/hvguard}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0

check() { # name expected-status actual-status [output-file grep-pattern]
	local name=$1 want=$2 got=$3
	if [ "$got" != "$want" ]; then
		echo "not ok - $name # expected exit $want, got $got"
		failed=1
		return
	fi
	if [ $# -ge 5 ] && ! grep -qE -- "$5" "$4"; then
		echo "not ok - $name # output lacks /$5/: $(head -c 300 "$4")"
		failed=1
		return
	fi
	echo "ok - $name"
}

$HV rules check rules/default.yaml >"$tmp/out" 2>&1
check "rules check accepts the shipped rules" 0 $? "$tmp/out" "valid"

printf 'rules:\n  kvmclock-jump:\n    tolerance_ns: ten\n' >"$tmp/bad.yaml"
$HV rules check "$tmp/bad.yaml" >"$tmp/out" 2>&1
check "rules check rejects a wrong type with FILE:LINE:COL" 2 $? "$tmp/out" \
	"^$tmp/bad.yaml:3:19: 'tolerance_ns' must be an integer"

printf 'rules:\n  kvmclock-jump:\n    colour: red\n' >"$tmp/bad2.yaml"
$HV rules check "$tmp/bad2.yaml" >"$tmp/out" 2>&1
check "rules check rejects an unknown key" 2 $? "$tmp/out" "bad2.yaml:3:5: unknown key 'colour'"

$HV run --json --rules "$tmp/bad.yaml" >"$tmp/out" 2>&1
st=$?
check "run --rules BAD refuses to start" 2 $st "$tmp/out" "bad.yaml:3:19"
if grep -q '"type":"ready"' "$tmp/out"; then
	echo "not ok - run --rules BAD loads nothing # it printed a ready line"
	failed=1
else
	echo "ok - run --rules BAD loads nothing"
fi

$HV run --bogus >"$tmp/out" 2>&1
check "run with an unknown option says how to get help" 2 $? "$tmp/out" "Usage: hvguard run"

$HV frobnicate >"$tmp/out" 2>&1
check "an unknown command is named" 2 $? "$tmp/out" "unknown command 'frobnicate'"

$HV run --help >"$tmp/out" 2>&1
check "run --help documents --correct and the exit codes" 0 $? "$tmp/out" "--correct"

$HV run --duration -3 >"$tmp/out" 2>&1
check "a bad --duration is refused" 2 $? "$tmp/out" "positive number of seconds"

setpriv --reuid=65534 --regid=65534 --clear-groups $HV run >"$tmp/out" 2>&1
check "run as an unprivileged user: exit 3 and what to do" 3 $? "$tmp/out" "needs root.*sudo"

setpriv --reuid=65534 --regid=65534 --clear-groups $HV audit >"$tmp/out" 2>&1
check "audit as an unprivileged user: exit 3" 3 $? "$tmp/out" "needs root"

setpriv --bounding-set -sys_ptrace --inh-caps -sys_ptrace $HV run --correct >"$tmp/out" 2>&1
check "--correct without CAP_SYS_PTRACE is refused at start" 3 $? "$tmp/out" "correcting writes .* need CAP_SYS_PTRACE"

printf 'rules:\n  kvmclock-jump:\n    action: correct\n' >"$tmp/correct.yaml"
setpriv --bounding-set -sys_ptrace --inh-caps -sys_ptrace $HV run --rules "$tmp/correct.yaml" >"$tmp/out" 2>&1
check "action: correct without CAP_SYS_PTRACE is refused too" 3 $? "$tmp/out" "CAP_SYS_PTRACE"

$HV run --pin-dir /sys/fs/bpf/a.b >"$tmp/out" 2>&1
check "a --pin-dir bpffs cannot hold is refused with the reason" 2 $? "$tmp/out" "does not allow '.'"

$HV run --metrics nonsense >"$tmp/out" 2>&1
check "a bad --metrics address is refused" 2 $? "$tmp/out" "ADDR:PORT"

exit $failed
