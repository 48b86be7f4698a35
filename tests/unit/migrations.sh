#!/usr/bin/env bash
# `hvguard migrations` on logs generated from the model (issue 9): hosts'
# JSON logs with departures and arrivals, the clocks computed the way QEMU
# 7.2 or a precise destination sets them. What is joined, what is left
# alone and why, hostile records, and a join that scales linearly.
# TAP lines on stdout. Runs anywhere (no KVM, no root).
set -uo pipefail
cd "$(dirname "$0")/../.."
HV=${HVGUARD:-build/hvguard}
HV=$(cd "$(dirname "$HV")" && pwd)/$(basename "$HV")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0
ok() { echo "ok - migrations: $1"; }
nok() {
	echo "not ok - migrations: $1 # $2"
	failed=1
}

# The generator: scenario NAME writes NAME-*.log in $tmp and NAME.expect,
# one line per fact the test then checks.
cat >"$tmp/gen.py" <<'EOF'
import json, sys

K = 2995200                     # kHz, a 2.9952 GHz TSC
T0 = 1764000000 * 10**9         # the first save, a realtime in 2025
S, MS = 10**9, 10**6

def cyc(ns):
    return ns * K // 1000000

class VM:
    """A guest whose clocks are lines of realtime: TSC (2 vCPUs, 7 cycles
    apart) and kvmclock, both rewritten by each arrival."""
    def __init__(self, vm, name, origin, uuid=True):
        self.vm, self.name = vm, name
        self.uuid = "4a1c-%d" % vm if uuid else None
        def line(t):
            return [cyc(t - origin) + 7 * i for i in range(2)], t - origin - 5 * S
        self.line = line

def record(event, host, pid, vm, rt, kvm, tscs, extra):
    o = {"type": "event", "event": event, "ts_ns": rt, "pid": pid,
         "comm": "qemu-system-x86", "vm": vm.vm, "vm_name": vm.name, "vcpu": None,
         "host": host, "vm_uuid": vm.uuid, "realtime_ns": rt,
         "tai_ns": rt + 37 * S, "kvmclock_ns": kvm, "tsc_khz": K,
         "pvti_mul": 2868080099, "pvti_shift": -1, "clock_error_ns": 1000,
         "future_field": {"ignored": True}}
    o.update(extra)
    o["vcpus"] = [{"vcpu": i, "tsc": t} for i, t in enumerate(tscs)]
    return json.dumps(o, separators=(",", ":"))

def departure(vm, host, pid, ts):
    """Saved at ts, the VMM gone 5 ms later."""
    tscs, kvm = vm.line(ts)
    return record("departure", host, pid, vm, ts, kvm, tscs, {"saved_by_ns": ts + 5 * MS})

def arrival(vm, host, pid, ts, w, way, shift=0):
    """Written at w what was saved at ts (qemu) or the clocks of w
    (precise); first run 1 ms later."""
    W, k = vm.line(ts if way == "qemu" else w)
    W = [x + shift for x in W]
    def line(t):
        return [x + cyc(t - w) for x in W], k + (t - w)
    vm.line = line
    tscs, kvm = line(w + MS)
    return record("arrival", host, pid, vm, w + MS, kvm, tscs, {"written_ns": w})

def noise(f):
    print('{"type":"alert","rule":"kvmclock-jump","pid":1,"message":"departure"}', file=f)
    print('{"type":"event","event":"pause","pid":100,"vm":1}', file=f)
    print("hvguard: a line of text", file=f)
    print("", file=f)

def logs(name, *hosts):
    return [open("%s-%s.log" % (name, h), "w") for h in hosts]

def basic(name, way):
    a, b = logs(name, "a", "b")
    noise(a)
    vm = VM(1, "web1", T0 - 3600 * S)
    print(departure(vm, "hostA", 100, T0), file=a)
    print("Nov 26 12:00:00 hostB hvguard[9]: " +
          arrival(vm, "hostB", 200, T0, T0 + 2 * S, way), file=b)

def lone(name):
    a, b = logs(name, "a", "b")
    print(departure(VM(1, "gone", T0 - 3600 * S), "hostA", 100, T0), file=a)
    print(arrival(VM(2, "new", T0 - 7200 * S), "hostB", 200, T0, T0 + S, "qemu"), file=b)

def wrongfp(name):
    a, b = logs(name, "a", "b")
    vm = VM(1, "web1", T0 - 3600 * S)
    print(departure(vm, "hostA", 100, T0), file=a)
    # The TSC written is 30 s of cycles off what the source ever held.
    print(arrival(vm, "hostB", 200, T0, T0 + 2 * S, "qemu", shift=cyc(30 * S)), file=b)

def twice(name, way, stay):
    a, b, c = logs(name, "a", "b", "c")
    vm = VM(1, "web1", T0 - 3600 * S)
    print(departure(vm, "hostA", 100, T0), file=a)
    print(arrival(vm, "hostB", 200, T0, T0 + 2 * S, way), file=b)
    t2 = T0 + stay * S
    print(departure(vm, "hostB", 200, t2), file=b)
    print(arrival(vm, "hostC", 300, t2, t2 + 3 * S, way), file=c)

def similar(name, uuid=False):
    """Two VMs started together (one clock line), saved 30 s apart."""
    a, b = logs(name, "a", "b")
    x, y = VM(1, "x", T0 - 3600 * S, uuid), VM(2, "y", T0 - 3600 * S, uuid)
    print(departure(x, "hostA", 100, T0), file=a)
    print(departure(y, "hostA", 101, T0 + 30 * S), file=a)
    print(arrival(x, "hostB", 200, T0, T0 + S, "precise"), file=b)
    print(arrival(y, "hostB", 201, T0 + 30 * S, T0 + 31 * S, "precise"), file=b)

def conflict(name):
    """One saved state restored on two hosts (QEMU's way, 2 s and 5 s on)."""
    a, b, c = logs(name, "a", "b", "c")
    vm = VM(1, "web1", T0 - 3600 * S)
    print(departure(vm, "hostA", 100, T0), file=a)
    saved = vm.line
    print(arrival(vm, "hostB", 200, T0, T0 + 2 * S, "qemu"), file=b)
    vm.line = saved
    print(arrival(vm, "hostC", 300, T0, T0 + 5 * S, "qemu"), file=c)

def malformed(name):
    a, b = logs(name, "a", "b")
    vm = VM(1, "web1", T0 - 3600 * S)
    print(departure(vm, "hostA", 100, T0), file=a)
    bad = json.loads(departure(VM(2, "bad", T0 - 60 * S), "hostA", 101, T0))
    bad["tsc_khz"] = str(K)
    print(json.dumps(bad), file=a)                       # a-log line 2
    bad = json.loads(departure(VM(3, "bad", T0 - 60 * S), "hostA", 102, T0))
    bad["vcpus"].reverse()
    print(json.dumps(bad), file=a)                       # line 3
    print('{"type":"event","event":"arrival","pid":', file=a)  # line 4: cut short
    print("x" * 70000 + '"departure"', file=a)            # line 5: too long
    print(arrival(vm, "hostB", 200, T0, T0 + 2 * S, "precise"), file=b)

def big(name, n):
    """n migrations between two hosts, the precise way, VMs created 1 s
    apart over a day, 20 ms of downtime each."""
    a, b = logs(name, "a", "b")
    for i in range(n):
        vm = VM(i, "vm%d" % i, T0 - 86400 * S + i * S)
        ts = T0 + (i % 600) * S
        print(departure(vm, "hostA", 1000 + i, ts), file=a)
        print(arrival(vm, "hostB", 5000 + i, ts, ts + 20 * MS, "precise"), file=b)

scenario = sys.argv[1]
if scenario in ("big", "small"):
    big(scenario, int(sys.argv[2]))
elif scenario in ("qemu", "precise"):
    basic(scenario, scenario)
elif scenario == "twice-qemu":
    twice(scenario, "qemu", 100)
elif scenario == "twice-precise":
    twice(scenario, "precise", 1200)
elif scenario == "similar-uuid":
    similar(scenario, True)
elif scenario == "twice-close":
    twice(scenario, "precise", 100)
else:
    globals()[scenario](scenario)
EOF

gen() { (cd "$tmp" && python3 gen.py "$@") || nok "generate $1" "python3 failed"; }

# run NAME ARGS...: $tmp/NAME.out, .err, .rc (the logs are NAME-*.log)
run() {
	local name=$1
	shift
	(cd "$tmp" && "$HV" migrations "$@" >"$name.out" 2>"$name.err")
	echo $? >"$tmp/$name.rc"
}

# expect NAME TEST-NAME RC PYTHON-CONDITION: the condition over m (the
# migration objects), u (every other object) and s (the summary) of
# NAME.json, a --json run.
expect() {
	local name=$1 test=$2 want=$3 cond=$4 got why
	got=$(cat "$tmp/$name.rc")
	if [ "$got" != "$want" ]; then
		nok "$test" "exit $got, expected $want: $(head -c 300 "$tmp/$name.err")"
		return
	fi
	why=$(python3 - "$tmp/$name.out" "$cond" 2>&1 <<'EOF'
import json, sys
objs = [json.loads(l) for l in open(sys.argv[1])]
m = [o for o in objs if o["type"] == "migration"]
u = [o for o in objs if o["type"] not in ("migration", "summary")]
s = [o for o in objs if o["type"] == "summary"][0]
S, MS = 10**9, 10**6
if not eval("(" + sys.argv[2] + ")"):
    print(json.dumps(objs)[:600])
EOF
	) || why="the check itself failed: $why"
	if [ -n "$why" ]; then nok "$test" "not ($cond): $why"; else ok "$test"; fi
}

# The join found, QEMU 7.2's way: guest TSC and kvmclock lose the 2 s.
gen qemu
run qemu --json qemu-a.log qemu-b.log
expect qemu "QEMU 7.2's migration joined: source, destination, downtime, warps" 1 \
	'len(m) == 1 and m[0]["source"]["host"] == "hostA" and m[0]["source"]["pid"] == 100
	 and m[0]["destination"]["host"] == "hostB" and m[0]["destination"]["pid"] == 200
	 and m[0]["source"]["vm_name"] == "web1" and m[0]["destination"]["line"] == 1
	 and m[0]["source"]["line"] == 5 and m[0]["downtime_ns"] == 2 * S + MS
	 and m[0]["kvmclock_warp_ns"] == -2 * S and abs(m[0]["worst_tsc_warp_ns"] + 2 * S) <= 1
	 and len(m[0]["tsc_warp_ns"]) == 2 and m[0]["pvti_changed_ns"] == 0
	 and m[0]["uncertainty_ns"] == 2000 and m[0]["tolerance_ns"] == 102000
	 and not m[0]["within_tolerance"] and not u and s["ignored"] == 4 and s["records"] == 2'
run qemu-text qemu-a.log qemu-b.log
if grep -qE '^migration hostA pid 100 vm 1 \(web1\) -> hostB pid 200 vm 1 \(web1\): downtime 2\.001 s, kvmclock warp -2\.000 s, TSC warp -2\.000 s \(vCPU [01]\), pvti change 0 ns/s, uncertainty 2\.0 us: WARPED beyond 102\.0 us \[qemu-a\.log:5 -> qemu-b\.log:1\]$' "$tmp/qemu-text.out"; then
	ok "the text line says it all, WARPED"
else
	nok "the text line says it all, WARPED" "$(head -c 400 "$tmp/qemu-text.out")"
fi

gen precise
run precise --json precise-a.log - <"$tmp/precise-b.log"
expect precise "the precise way joined from a file and stdin, within tolerance (exit 0)" 0 \
	'len(m) == 1 and m[0]["within_tolerance"] and abs(m[0]["kvmclock_warp_ns"]) <= 1
	 and abs(m[0]["worst_tsc_warp_ns"]) <= 1 and m[0]["downtime_ns"] == 2 * S - 4 * MS
	 and m[0]["destination"]["file"] == "-"'
run precise-tol --json --tolerance 0 precise-a.log precise-b.log
expect precise-tol "--tolerance 0 still allows the clocks' uncertainty" 0 'len(m) == 1'

gen lone
run lone --json lone-a.log lone-b.log
expect lone "an arrival with no departure and a departure never matched, as such" 0 \
	'not m and sorted(o["type"] for o in u) == ["unmatched_arrival", "unmatched_departure"]
	 and s["unmatched_arrivals"] == 1 and s["unmatched_departures"] == 1'
run lone-text lone-a.log lone-b.log
if grep -q '^arrival with no departure in these logs: hostB pid 200 vm 2 (new) \[lone-b.log:1\]$' "$tmp/lone-text.out" &&
	grep -q '^departure never matched: hostA pid 100 vm 1 (gone) \[lone-a.log:1\]$' "$tmp/lone-text.out"; then
	ok "the text names the lone arrival and departure"
else
	nok "the text names the lone arrival and departure" "$(head -c 400 "$tmp/lone-text.out")"
fi

gen wrongfp
run wrongfp --json wrongfp-a.log wrongfp-b.log
expect wrongfp "a wrong fingerprint matches nothing" 0 \
	'not m and s["unmatched_arrivals"] == 1 and s["unmatched_departures"] == 1'

gen twice-qemu
run twice-qemu --json twice-qemu-a.log twice-qemu-b.log twice-qemu-c.log
expect twice-qemu "A->B->C (QEMU's way): two migrations, A->B and B->C" 1 \
	'len(m) == 2 and not u and
	 sorted((x["source"]["host"], x["destination"]["host"]) for x in m) ==
	 [("hostA", "hostB"), ("hostB", "hostC")]'
gen twice-precise
run twice-precise --json twice-precise-c.log twice-precise-b.log twice-precise-a.log
expect twice-precise "A->B->C (precise, 20 min on B), logs in any order: two migrations" 0 \
	'len(m) == 2 and not u and
	 sorted((x["source"]["host"], x["destination"]["host"]) for x in m) ==
	 [("hostA", "hostB"), ("hostB", "hostC")]'
gen twice-close
run twice-close --json twice-close-a.log twice-close-b.log twice-close-c.log
expect twice-close "A->B->C (precise, 100 s on B): one clock line, left unmatched, never A->C" 0 \
	'not m and s["ambiguous"] == 1 and s["conflicts"] == 1 and s["unmatched_departures"] == 2'

gen similar
run similar --json similar-a.log similar-b.log
expect similar "two VMs on one clock line, no uuid: both ambiguous, never matched" 0 \
	'not m and s["ambiguous"] == 2 and s["unmatched_departures"] == 2
	 and all(o["count"] == 2 for o in u if o["type"] == "ambiguous")'

gen similar-uuid
run similar-uuid --json similar-uuid-a.log similar-uuid-b.log
expect similar-uuid "the same two VMs with their uuids: each joined to its own" 0 \
	'len(m) == 2 and not u and all(x["source"]["vm"] == x["destination"]["vm"] for x in m)'

gen conflict
run conflict --json conflict-a.log conflict-b.log conflict-c.log
expect conflict "one departure two arrivals fit: both in conflict, neither matched" 0 \
	'not m and s["conflicts"] == 2 and s["unmatched_departures"] == 1
	 and all(o["arrivals"] == 2 for o in u if o["type"] == "conflict")
	 and [o["candidates"] for o in u if o["type"] == "unmatched_departure"] == [2]'
run conflict-text conflict-a.log conflict-b.log conflict-c.log
if grep -q '^conflict: the arrival of hostC pid 300 vm 1 (web1) \[conflict-c.log:1\] matches the departure of hostA pid 100 vm 1 (web1) \[conflict-a.log:1\], which 2 arrivals match: not matched$' "$tmp/conflict-text.out" &&
	grep -q '^departure never matched: hostA pid 100 vm 1 (web1) \[conflict-a.log:1\] (2 arrivals match it, each ambiguous or in conflict)$' "$tmp/conflict-text.out"; then
	ok "the text names both sides of a conflict"
else
	nok "the text names both sides of a conflict" "$(head -c 600 "$tmp/conflict-text.out")"
fi

gen malformed
run malformed malformed-a.log malformed-b.log
st=$(cat "$tmp/malformed.rc")
if [ "$st" = 2 ] &&
	grep -q "^malformed-a.log:2: 'tsc_khz' must be an integer$" "$tmp/malformed.err" &&
	grep -q "^malformed-a.log:3: vcpus\[1\]: vCPU 0 not sorted by id$" "$tmp/malformed.err" &&
	grep -q "^malformed-a.log:4: a departure or arrival that is not valid JSON$" "$tmp/malformed.err" &&
	grep -q "^malformed-a.log:5: a line longer than 65536 bytes, skipped$" "$tmp/malformed.err" &&
	grep -q "^migration hostA pid 100 vm 1 (web1) -> hostB pid 200" "$tmp/malformed.out" &&
	grep -q "3 malformed, 1 too long" "$tmp/malformed.out"; then
	ok "malformed records: exit 2, each FILE:LINE: reason, the rest still joined"
else
	nok "malformed records: exit 2, each FILE:LINE: reason, the rest still joined" \
		"exit $st: $(head -c 500 "$tmp/malformed.err") | $(head -c 300 "$tmp/malformed.out")"
fi

run missing --json "$tmp/no-such.log" qemu-a.log
st=$(cat "$tmp/missing.rc")
if [ "$st" = 2 ] && grep -q "no-such.log: No such file" "$tmp/missing.err" &&
	grep -q '"unmatched_departures":1' "$tmp/missing.out"; then
	ok "an unreadable LOG: exit 2, the others still read"
else
	nok "an unreadable LOG: exit 2, the others still read" "exit $st: $(cat "$tmp/missing.err")"
fi
for bad in "--window 0" "--window 1.5" "--tolerance -1" "--colour red" ""; do
	# shellcheck disable=SC2086
	run usage $bad
	if [ "$(cat "$tmp/usage.rc")" = 2 ]; then ok "usage '$bad' refused (exit 2)"; else
		nok "usage '$bad' refused (exit 2)" "exit $(cat "$tmp/usage.rc")"
	fi
done
run help --help
if [ "$(cat "$tmp/help.rc")" = 0 ] && grep -q "Exit: 0 every migration" "$tmp/help.out"; then
	ok "--help documents the exit codes"
else
	nok "--help documents the exit codes" "$(head -c 300 "$tmp/help.out")"
fi

# The join scales linearly: 100,000 records (50,000 migrations) cost at
# most 10 times the CPU (user + sys) of 20,000: 5 times for a linear join,
# 25 for a quadratic one. A ratio, not a time, so that a slower machine
# does not decide it; each the best of three runs, so that the VMs other
# stages run on this machine do not either. The times are printed.
best_cpu() { # NAME ARGS...: the best CPU ms of three runs into $best
	local name=$1 wall user sys cpu
	shift
	best=
	for _ in 1 2 3; do
		TIMEFORMAT='%R %U %S'
		{ time run "$name" "$@"; } 2>"$tmp/time"
		read -r wall user sys <"$tmp/time"
		cpu=$(python3 -c "print(max(1, round(($user + $sys) * 1000)))")
		if [ -z "$best" ] || [ "$cpu" -lt "$best" ]; then
			best=$cpu
		fi
	done
}
gen small 10000
gen big 50000
best_cpu small --json small-a.log small-b.log
small_ms=$best
best_cpu big --json big-a.log big-b.log
big_ms=$best
expect small "20,000 records: 10,000 migrations, nothing else" 0 \
	's["migrations"] == 10000 and not u and s["records"] == 20000'
expect big "100,000 records: 50,000 migrations, nothing else" 0 \
	's["migrations"] == 50000 and not u and s["records"] == 100000'
if [ "$big_ms" -le $((10 * small_ms)) ]; then
	ok "the join scales linearly: 100,000 records in $big_ms ms of CPU, 20,000 in $small_ms ms (best of 3 each; at most 10x)"
else
	nok "the join scales linearly (100,000 records at most 10x the CPU of 20,000)" \
		"$big_ms ms against $small_ms ms, best of 3 each"
fi

echo "# end of migrations"
exit $failed
