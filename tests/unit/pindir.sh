#!/usr/bin/env bash
# The pin directory from the attacker's side (README "Who may touch the
# pinned state"): user nobody pre-creates it, plants in it, points a
# symlink at it; root left an old layout in it; a second daemon wants it.
# Every refusal happens before any family loads, so this runs on any host
# with bpffs, KVM or not (on a KVM host `run` would start: --duration 1
# bounds it). Needs root, like `hvguard run`.
set -uo pipefail
cd "$(dirname "$0")/../.."
HV=${HVGUARD:-build/hvguard}
BPF=/sys/fs/bpf
base=$BPF/hvguard-pt-$$
tmp=$(mktemp -d)
holder=
cleanup() {
	[ -n "$holder" ] && kill "$holder" 2>/dev/null
	rm -rf "$tmp" "$base"-*
}
trap cleanup EXIT
failed=0
ok() { echo "ok - pindir: $1"; }
nok() {
	echo "not ok - pindir: $1 # $2"
	failed=1
}

check() { # name expected-status actual-status output-file grep-pattern
	if [ "$3" != "$2" ]; then
		nok "$1" "expected exit $2, got $3: $(head -c 300 "$4")"
	elif ! grep -qE -- "$5" "$4"; then
		nok "$1" "output lacks /$5/: $(head -c 300 "$4")"
	else
		ok "$1"
	fi
}

empty() { # name dir: nothing pinned in dir
	local left
	left=$(ls -A "$2" 2>&1)
	if [ -z "$left" ]; then ok "$1"; else nok "$1" "it holds: $left"; fi
}

as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }

if [ "$(id -u)" != 0 ]; then
	nok "these tests run hvguard as root (sudo tests/run unit)" "uid $(id -u)"
	echo "# end of pindir"
	exit 1
fi

# A pin directory user nobody created first (bpffs is often 1777).
d=$base-nobody
as_nobody mkdir -m 0755 "$d"
$HV run --duration 1 --pin-dir "$d" >"$tmp/out" 2>&1
check "a pin directory nobody pre-created is refused (exit 6), saying what to do" 6 $? \
	"$tmp/out" "owned by uid 65534.*chown root:root $d && chmod 0700 $d"
empty "nothing is pinned in nobody's directory" "$d"

d=$base-0777
mkdir -m 0777 "$d"
$HV run --duration 1 --pin-dir "$d" >"$tmp/out" 2>&1
check "a root pin directory of mode 0777 is refused (exit 6)" 6 $? "$tmp/out" "mode 0777.*chmod 0700"
empty "nothing is pinned in the 0777 directory" "$d"

d=$base-group
mkdir -m 0770 "$d"
$HV run --duration 1 --pin-dir "$d" >"$tmp/out" 2>&1
check "a group-writable pin directory is refused (exit 6)" 6 $? "$tmp/out" "mode 0770"

# nobody owns a directory above it: nobody could swap the pin directory.
as_nobody mkdir -m 0755 "$base-above"
mkdir -m 0700 "$base-above/pins"
$HV run --duration 1 --pin-dir "$base-above/pins" >"$tmp/out" 2>&1
check "a pin directory below nobody's directory is refused (exit 6)" 6 $? "$tmp/out" \
	"$base-above, above the pin directory .* owned by uid 65534"
empty "nothing is pinned below nobody's directory" "$base-above/pins"

# nobody's symlink to a directory of root's: never followed.
mkdir -m 0700 "$base-real"
as_nobody ln -s "$base-real" "$base-link"
$HV run --duration 1 --pin-dir "$base-link" >"$tmp/out" 2>&1
check "a symlink as the pin directory is refused (exit 6)" 6 $? "$tmp/out" "symlink"
empty "nothing is pinned through the symlink" "$base-real"

# A directory made root's after the fact still holds what nobody planted.
d=$base-fixed
as_nobody mkdir -m 0777 "$d"
as_nobody ln -s /sys/fs/bpf/elsewhere "$d/hv_clock_vms"
chown root:root "$d" && chmod 0700 "$d"
$HV run --duration 1 --pin-dir "$d" >"$tmp/out" 2>&1
check "an entry nobody planted before the directory was fixed is refused (exit 6)" 6 $? \
	"$tmp/out" "$d/hv_clock_vms is not hvguard's \(owned by uid 65534"
if [ -L "$d/hv_clock_vms" ] && [ ! -e "$d/hv_layout" ]; then
	ok "the planted entry is left for the operator to look at, nothing added"
else
	nok "the planted entry is left for the operator to look at, nothing added" "$(ls -la "$d")"
fi

# A fresh directory: created root's, 0700, with the layout recorded.
d=$base-fresh
$HV run --duration 1 --pin-dir "$d" >"$tmp/out" 2>&1
got=$(stat -c '%U %a' "$d" 2>&1)
if [ "$got" = "root 700" ]; then ok "a pin directory hvguard creates is root's, mode 0700"; else
	nok "a pin directory hvguard creates is root's, mode 0700" "got $got"
fi
version=$(sed -n 's/^#define HV_CLOCK_LAYOUT_VERSION[[:space:]]*\([0-9]*\).*/\1/p' \
	include/hvguard/clock.h)
got=$(bpftool -j map dump pinned "$d/hv_layout" 2>&1)
if python3 -c 'import json,sys; v=json.loads(sys.argv[1])[0]["value"];
sys.exit(int(v[0],16) != int(sys.argv[2]))' "$got" "$version" 2>/dev/null; then
	ok "the layout version ($version, from clock.h) is pinned in hv_layout"
else
	nok "the layout version ($version, from clock.h) is pinned in hv_layout" "$got"
fi

$HV run --duration 1 --pin-dir "$base-new/a/b" >"$tmp/out" 2>&1
got=$(stat -c '%U %a' "$base-new" "$base-new/a" "$base-new/a/b" 2>&1 | tr '\n' ' ')
if [ "$got" = "root 700 root 700 root 700 " ]; then
	ok "every directory hvguard creates on the way is root's, mode 0700"
else
	nok "every directory hvguard creates on the way is root's, mode 0700" "got $got"
fi

# Old layouts, left by root: refused, not reused, not dropped.
d=$base-old
mkdir -m 0700 "$d"
bpftool map create "$d/hv_layout" type array key 4 value 8 entries 1 name hv_layout &&
	bpftool map update pinned "$d/hv_layout" key 0 0 0 0 value 0 1 0 0 0 0 0 0
$HV run --duration 1 --pin-dir "$d" >"$tmp/out" 2>&1
check "pinned state of another layout version is refused (exit 6), saying what to do" 6 $? \
	"$tmp/out" "has layout 256 .*this hvguard $version .*--reset-pins"
$HV run --json --duration 1 --pin-dir "$d" >"$tmp/out" 2>&1
check "the refusal is a JSON error with --json" 6 $? "$tmp/out" '^\{"type":"error","message":".*layout 256'
got=$(bpftool -j map dump pinned "$d/hv_layout" 2>&1)
case "$got" in
*'"0x00","0x01","0x00"'*) ok "the old layout record is left as it was" ;;
*) nok "the old layout record is left as it was" "$got" ;;
esac

# The service's way through an upgrade: --reset-pins=old-layout drops the
# old version's state, and only that.
$HV run --duration 1 --pin-dir "$d" --reset-pins=old-layout >"$tmp/out" 2>&1
got=$(bpftool -j map dump pinned "$d/hv_layout" 2>&1 | jq -r '.[0].value[0]' 2>&1)
if grep -q "another version of hvguard (an upgrade): dropping it" "$tmp/out" &&
	grep -q "dropped 1 pinned object" "$tmp/out" && [ "$got" = "$(printf '0x%02x' "$version")" ]; then
	ok "--reset-pins=old-layout drops another version's state, says so, records this layout"
else
	nok "--reset-pins=old-layout drops another version's state, says so, records this layout" \
		"$(cat "$tmp/out"; echo "$got")"
fi
id_before=$(bpftool -j map show pinned "$d/hv_layout" 2>/dev/null | jq .id)
$HV run --duration 1 --pin-dir "$d" --reset-pins=old-layout >"$tmp/out" 2>&1
id_after=$(bpftool -j map show pinned "$d/hv_layout" 2>/dev/null | jq .id)
if [ -n "$id_before" ] && [ "$id_before" = "$id_after" ] && ! grep -q "dropp" "$tmp/out"; then
	ok "--reset-pins=old-layout keeps this version's own state (the same map, nothing dropped)"
else
	nok "--reset-pins=old-layout keeps this version's own state (the same map, nothing dropped)" \
		"map id $id_before -> $id_after; $(cat "$tmp/out")"
fi
$HV run --duration 1 --pin-dir "$d" --reset-pins=all >"$tmp/out" 2>&1
check "--reset-pins=VALUE other than old-layout is bad usage (exit 2)" 2 $? "$tmp/out" \
	"the only value is old-layout"

# An old version's state that records a VMM it froze: a person must
# continue it first, so even --reset-pins=old-layout refuses.
d=$base-oldfrozen
mkdir -m 0700 "$d"
bpftool map create "$d/hv_layout" type array key 4 value 8 entries 1 name hv_layout &&
	bpftool map update pinned "$d/hv_layout" key 0 0 0 0 value 0 1 0 0 0 0 0 0
bpftool map create "$d/hv_clock_frozen" type hash key 8 value 16 entries 64 name hv_clock_frozen &&
	bpftool map update pinned "$d/hv_clock_frozen" key 1 2 3 4 0 0 0 0 value 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
$HV run --duration 1 --pin-dir "$d" --reset-pins=old-layout >"$tmp/out" 2>&1
check "--reset-pins=old-layout refuses (exit 6) an old state that records a frozen VMM" 6 $? \
	"$tmp/out" "records 1 VMM\(s\) frozen.*kill -CONT"
if [ -e "$d/hv_clock_frozen" ]; then
	ok "the frozen VMM's record is left for the person who continues it"
else
	nok "the frozen VMM's record is left for the person who continues it" "$(ls "$d")"
fi

d=$base-nolayout
mkdir -m 0700 "$d"
bpftool map create "$d/hv_clock_globals" type array key 4 value 16 entries 1 \
	name hv_clock_globals
$HV run --duration 1 --pin-dir "$d" >"$tmp/out" 2>&1
check "a planted globals map without a layout version is refused (exit 6)" 6 $? "$tmp/out" \
	"without a readable layout version.*--reset-pins"
if [ -e "$d/hv_clock_globals" ] && [ ! -e "$d/hv_layout" ]; then
	ok "the planted map is not reused nor dropped, no layout recorded over it"
else
	nok "the planted map is not reused nor dropped, no layout recorded over it" "$(ls "$d")"
fi

$HV audit --pin-dir "$d" >"$tmp/out" 2>&1
check "audit goes on without state of unknown layout, and says so" 0 $? "$tmp/out" \
	"not reading hvguard's pinned state from $d"

$HV run --duration 1 --pin-dir "$d" --reset-pins >"$tmp/out" 2>&1
if grep -q "dropped 1 pinned object" "$tmp/out" && [ ! -e "$d/hv_clock_globals" ] &&
	[ -e "$d/hv_layout" ]; then
	ok "--reset-pins drops the old state and records this layout"
else
	nok "--reset-pins drops the old state and records this layout" "$(cat "$tmp/out"; ls "$d")"
fi

$HV run --no-pin --reset-pins >"$tmp/out" 2>&1
check "--reset-pins with --no-pin is bad usage (exit 2)" 2 $? "$tmp/out" "pick one"

# One daemon per pin directory: the lock is a flock on the directory.
d=$base-locked
mkdir -m 0700 "$d"
flock -x "$d" sleep 60 &
holder=$!
sleep 0.3
$HV run --duration 1 --pin-dir "$d" >"$tmp/out" 2>&1
check "a pin directory another process holds is refused (exit 7), naming its pid" 7 $? \
	"$tmp/out" "in use by another hvguard \(pid $holder\).*--pin-dir of its own"
empty "the refused daemon pinned nothing" "$d"
$HV audit --pin-dir "$d" >"$tmp/out" 2>&1
check "audit runs while the pin directory is held" 0 $? "$tmp/out" "violation"
kill "$holder"
wait "$holder" 2>/dev/null
holder=

# --no-pin would lose the frozen-VMM record with the daemon.
$HV run --correct --no-pin >"$tmp/out" 2>&1
check "--correct --no-pin is refused at start (exit 2)" 2 $? "$tmp/out" \
	"--no-pin cannot go with corrections"
printf 'rules:\n  kvmclock-jump:\n    action: correct\n' >"$tmp/correct.yaml"
$HV run --no-pin --rules "$tmp/correct.yaml" >"$tmp/out" 2>&1
check "action: correct with --no-pin is refused too (exit 2)" 2 $? "$tmp/out" \
	"--no-pin cannot go with corrections"

# bpffs mounted by hvguard itself is root's alone (a private mount
# namespace: the host's bpffs is untouched).
got=$(unshare -m --propagation private sh -c "umount $BPF && $HV run --duration 1 \
	--pin-dir $BPF/x >/dev/null 2>&1; stat -f -c %T $BPF; stat -c %a $BPF" 2>&1 | tr '\n' ' ')
# (bpffs always adds the sticky bit: 1700.)
case "$got" in
"bpf_fs 700 " | "bpf_fs 1700 ") ok "bpffs mounted by hvguard is root's alone (mode=0700)" ;;
*) nok "bpffs mounted by hvguard is root's alone (mode=0700)" "got $got" ;;
esac

echo "# end of pindir"
exit $failed
