# shellcheck shell=bash
# For the stages that boot a guest under QEMU and judge it by the markers it
# prints on its serial log (tests/xen, tests/kvm): TAP-style verdicts, and
# readers of "KIND PHASE payload" marker lines in the log named by $log.

failed=0
ok() { echo "ok - $1"; }
not_ok() {
	echo "not ok - $1 # $2"
	failed=1
}
eq() { [ "$1" = "$2" ]; }
# check NAME REASON-IF-FALSE COMMAND...
check() {
	local name=$1 why=$2
	shift 2
	if "$@"; then ok "$name"; else not_ok "$name" "$why"; fi
}

log=
markers() { # kind phase: payloads of "KIND PHASE payload" lines
	tr -d '\r' <"$log" | awk -v k="$1" -v p="$2" '$1 == k && $2 == p { sub("^[^ ]+ [^ ]+ ", ""); print }'
}
json() { # phase: hvguard's stdout as JSON lines (garbled lines dropped)
	markers HVGJSON "$1" | jq -c -R 'fromjson? // empty' 2>/dev/null
}
# Readers here consume their whole input: a reader that leaves early (head,
# awk's exit) kills the writer with SIGPIPE, and a stage running under
# pipefail and errexit dies with it (exit 141, its later tests unreported).
op_field() { # phase label field: from "LABEL pid=N rc=N" (the first such line)
	markers HVGOP "$1" | awk -v l="$2" -v f="$3" '$1 == l && !done {
		for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == f) { print kv[2]; done = 1 } } }'
}
