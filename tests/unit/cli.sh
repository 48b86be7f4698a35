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

# rules show: the effective rules, as a file rules check accepts, stable.
$HV rules show >"$tmp/show.yaml" 2>"$tmp/out"
check "rules show prints the built-in rules" 0 $? "$tmp/show.yaml" "^    tolerance_ns: 100000$"
$HV rules check "$tmp/show.yaml" >"$tmp/out" 2>&1
check "rules check accepts what rules show prints" 0 $? "$tmp/out" "valid"
$HV rules show rules/xen-example.yaml >"$tmp/show1.yaml" 2>&1
$HV rules show "$tmp/show1.yaml" >"$tmp/show2.yaml" 2>&1
check "rules show FILE merges FILE over the built-in rules" 0 $? "$tmp/show1.yaml" \
	'^    - name: "qemu-dm"$'
if cmp -s "$tmp/show1.yaml" "$tmp/show2.yaml"; then
	echo "ok - rules show of rules show is rules show"
else
	echo "not ok - rules show of rules show is rules show # $(diff "$tmp/show1.yaml" "$tmp/show2.yaml" | head -5)"
	failed=1
fi
$HV rules show "$tmp/bad.yaml" >"$tmp/out" 2>&1
check "rules show FILE refuses a bad FILE with its position" 2 $? "$tmp/out" "bad.yaml:3:19:"
$HV rules --help >"$tmp/out" 2>&1
check "rules --help documents show" 0 $? "$tmp/out" "rules show \[FILE\]"

# Hostile rules files: refused with their position, fast, never a crash.
printf 'version: 1\nxen:\n  backends:\n    - comm: a\n    - comm: b\n  allowed_frontends: [1]\n  backends: []\n' \
	>"$tmp/dup.yaml"
$HV rules check "$tmp/dup.yaml" >"$tmp/out" 2>&1
check "rules check refuses a duplicate key (was a heap overflow)" 2 $? "$tmp/out" \
	"dup.yaml:7:3: duplicate key 'backends' \(first at 3:3\)"
head -c 1048576 /dev/zero | tr '\0' '[' >"$tmp/deep.yaml"
timeout 10 $HV rules check "$tmp/deep.yaml" >"$tmp/out" 2>&1
check "rules check refuses 1 MiB of '[' at depth 17, in time" 2 $? "$tmp/out" \
	"deep.yaml:1:17: nested deeper than 16 levels"
printf 'xen:\n  backends: &b [{comm: a}]\n  allowed_frontends: *b\n' >"$tmp/alias.yaml"
$HV rules check "$tmp/alias.yaml" >"$tmp/out" 2>&1
check "rules check refuses anchors and aliases" 2 $? "$tmp/out" "alias.yaml:2:13: anchors"
printf 'version: 1\n---\nversion: 1\n' >"$tmp/two.yaml"
$HV rules check "$tmp/two.yaml" >"$tmp/out" 2>&1
check "rules check refuses a second document" 2 $? "$tmp/out" "two.yaml:2:1: a second YAML document"
head -c 1048577 /dev/zero | tr '\0' '#' >"$tmp/big.yaml"
$HV rules check "$tmp/big.yaml" >"$tmp/out" 2>&1
check "rules check refuses a file over 1 MiB" 2 $? "$tmp/out" "big.yaml:1:1: larger than 1048576 bytes"

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

# audit takes no argument: one is refused by name, before the root check.
for args in "stray" "--json stray" "stray --json" "--pin-dir /sys/fs/bpf/hvguard x y"; do
	# shellcheck disable=SC2086 # word splitting wanted
	setpriv --reuid=65534 --regid=65534 --clear-groups $HV audit $args >"$tmp/out" 2>&1
	st=$?
	arg=${args##* }
	[ "$args" = "stray --json" ] && arg=stray
	[ "$arg" = y ] && arg=x
	check "audit $args: the argument '$arg' is refused (exit 2), pointing at --help" 2 $st \
		"$tmp/out" "takes no arguments, got '$arg' \(see 'hvguard audit --help'\)"
done

# audit --help gives every exit status audit can return, as README says them.
$HV audit --help >"$tmp/out" 2>&1
check "audit --help exits 0 and lists its exit statuses" 0 $? "$tmp/out" "^Exit status:"
for code in 0 1 2 3 5; do
	check "audit --help says what exit $code means" 0 0 "$tmp/out" "^  $code  [a-z]"
done
codes=$(grep -E '^  [0-9]  ' "$tmp/out" | awk '{print $1}' | tr '\n' ' ')
if [ "$codes" = "0 1 2 3 5 " ]; then
	echo "ok - audit --help lists exactly the exit statuses audit returns (0 1 2 3 5)"
else
	echo "not ok - audit --help lists exactly the exit statuses audit returns # got: $codes"
	failed=1
fi

setpriv --bounding-set -sys_ptrace --inh-caps -sys_ptrace $HV run --correct >"$tmp/out" 2>&1
check "--correct without CAP_SYS_PTRACE is refused at start" 3 $? "$tmp/out" "correcting writes .* need CAP_SYS_PTRACE"

printf 'rules:\n  kvmclock-jump:\n    action: correct\n' >"$tmp/correct.yaml"
setpriv --bounding-set -sys_ptrace --inh-caps -sys_ptrace $HV run --rules "$tmp/correct.yaml" >"$tmp/out" 2>&1
check "action: correct without CAP_SYS_PTRACE is refused too" 3 $? "$tmp/out" "CAP_SYS_PTRACE"

$HV run --pin-dir /sys/fs/bpf/a.b >"$tmp/out" 2>&1
check "a --pin-dir bpffs cannot hold is refused with the reason" 2 $? "$tmp/out" "does not allow '.'"

$HV run --xen-hooks kprobes >"$tmp/out" 2>&1
check "an unknown --xen-hooks tier is refused, the tiers named" 2 $? "$tmp/out" "--xen-hooks wants fentry or syscalls, not 'kprobes'"

$HV run --xen-deny kill >"$tmp/out" 2>&1
check "an unknown --xen-deny mechanism is refused, the mechanisms named" 2 $? "$tmp/out" "--xen-deny wants bpf-lsm-sleepable, bpf-lsm or fmod-ret, not 'kill'"

$HV run --hooks kprobes >"$tmp/out" 2>&1
check "an unknown --hooks tier is refused, the tiers named" 2 $? "$tmp/out" "--hooks wants fentry, kvm-tracepoints or syscalls, not 'kprobes'"

$HV run --metrics nonsense >"$tmp/out" 2>&1
check "a bad --metrics address is refused" 2 $? "$tmp/out" "ADDR:PORT"

# --metrics: ADDR:PORT, [IPV6]:PORT, :PORT or PORT. Anything else is refused
# while the options are read (exit 2, before the root check, so as nobody
# too), on one line that gives the reason and the accepted forms.
forms='accepted: ADDR:PORT (an IPv4 address or a host name), [IPV6]:PORT, :PORT or PORT (e.g. 127.0.0.1:9477)'
while IFS='|' read -r addr why; do
	setpriv --reuid=65534 --regid=65534 --clear-groups $HV run --metrics "$addr" >"$tmp/out" 2>&1
	st=$?
	want="Error: --metrics '$addr': $why; $forms"
	if [ "$st" = 2 ] && grep -qxF -- "$want" "$tmp/out"; then
		echo "ok - --metrics '$addr' is refused: $why"
	else
		echo "not ok - --metrics '$addr' is refused: $why # expected exit 2 and '$want', got $st: $(head -c 300 "$tmp/out")"
		failed=1
	fi
done <<'FORMS'
127.0.0.1:0|the port must be 1-65535
127.0.0.1:65536|the port must be 1-65535
127.0.0.1:94x|the port must be 1-65535
1.2.3.4:|the port must be 1-65535
300.1.1.1:9477|not an IPv4 address
::1:9477|an IPv6 address needs brackets, [::1]:9477
[::1]|a port (1-65535) must follow ']:'
[::1]9477|a port (1-65535) must follow ']:'
[::1:9477|no ']' after the IPv6 address
[fe80::zz]:9477|not an IPv6 address
+9477|not a port (1-65535)
0|not a port (1-65535)
|not a port (1-65535)
FORMS
# The accepted forms get past the options: as nobody, on to the root check.
for addr in 127.0.0.1:9477 localhost:9477 '[::1]:9477' :9477 9477; do
	setpriv --reuid=65534 --regid=65534 --clear-groups $HV run --metrics "$addr" >"$tmp/out" 2>&1
	check "--metrics $addr is accepted (then: needs root)" 3 $? "$tmp/out" "needs root"
done
# A name that does not resolve: said with the resolver's reason.
setpriv --reuid=65534 --regid=65534 --clear-groups $HV run --metrics no-such-host.invalid:9477 \
	>"$tmp/out" 2>&1
check "--metrics with a name that does not resolve is refused" 2 $? "$tmp/out" \
	"^Error: --metrics 'no-such-host.invalid:9477': cannot resolve 'no-such-host.invalid': "
$HV run --help >"$tmp/out" 2>&1
check "run --help names every --metrics form" 0 $? "$tmp/out" "\[IPV6\]:PORT, or :PORT or PORT"

# RLIMIT_NOFILE: raised at start (before the root check), said; a warning
# when the hard limit leaves under 4096.
setpriv --reuid=65534 --regid=65534 --clear-groups prlimit --nofile=1024:8192 \
	$HV run >"$tmp/out" 2>&1
check "run raises its open-files limit to the hard limit and says so" 3 $? "$tmp/out" \
	"open-files limit raised from 1024 to 8192 \(the hard limit\)"
if grep -q "Warning: open files" "$tmp/out"; then
	echo "not ok - no open-files warning with 8192 # $(grep Warning "$tmp/out")"
	failed=1
else
	echo "ok - no open-files warning with 8192"
fi
setpriv --reuid=65534 --regid=65534 --clear-groups prlimit --nofile=1024:1024 \
	$HV run >"$tmp/out" 2>&1
check "run warns when the hard limit keeps it at 1024 open files" 3 $? "$tmp/out" \
	"^Warning: open files limited to 1024 by the hard limit \(wanted 65536, at least 4096\)"
# The service options: refused before anything loads.
$HV run --log syslog >"$tmp/out" 2>&1
check "--log wants journald or stdout" 2 $? "$tmp/out" "--log wants journald or stdout, not 'syslog'"
$HV run --log journald --json >"$tmp/out" 2>&1
check "--log journald is refused with --json" 2 $? "$tmp/out" "not with --json"
$HV run --log journald -o "$tmp/alerts" >"$tmp/out" 2>&1
check "--log journald is refused with --output" 2 $? "$tmp/out" "not with --output"
$HV run --exec true --exec-max 0 >"$tmp/out" 2>&1
check "--exec-max 0 is refused" 2 $? "$tmp/out" "--exec-max wants a number from 1 to 1024"
$HV run --exec true --exec-timeout 0 >"$tmp/out" 2>&1
check "--exec-timeout 0 is refused" 2 $? "$tmp/out" "--exec-timeout wants a positive number"
$HV run --help >"$tmp/out" 2>&1
check "run --help documents the signals" 0 $? "$tmp/out" "SIGHUP reopens --output and reloads the rules"

exit $failed
