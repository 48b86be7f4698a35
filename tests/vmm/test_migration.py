#!/usr/bin/env python3
"""Live migration on one host, two mini VMM processes (issue 9): a source
saves its VM's clocks as QEMU 7.2 does at a migration's stop and exits (or
stays paused), a destination restores them in a new VM, QEMU's way (TSC
MSR as saved, KVM_SET_CLOCK flags 0) or the precise way (the source's TSC
offsets, KVM_CLOCK_REALTIME). Under one `hvguard run --json`, asserts what
a user of hvguard relies on, judged by what the guest itself saw (the
mini VMM's "restored" line):

- QEMU's way: a departure for the source and no alert for it; an arrival
  matched to it and exactly one migration-clock-warp alert whose downtime
  and warps are the guest's own, within 1%.
- the precise way: matched, no alert, a migration event "ok".
- hostile: a TSC an hour off what was saved (no match, no alert); two
  destinations from one saved state (never a wrong match, at most one);
  a VM that migrates twice (each arrival matched to its own source).
- a source still alive and paused while its destination starts: matched.
- a cpr-exec: the source execs itself as the destination, in one pid.
- under `--correct`, QEMU's way: the arrival frozen at its first entry and
  repaired, the guest's TSC and kvmclock continuous with the source's.

Every case uses its own vCPU count: KVM sets a new VM's TSC to 0, so every
mini VM's TSC fingerprint is "about as old as its run", and a departure
left unmatched by an earlier case (the hostile ones) could otherwise be a
fair candidate for a later arrival. Real VMs differ by their uptimes; here
the vCPU count keeps the cases apart.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from hvtest import EMULATED, HOOKS, Hvguard, HvguardError, Tap, orphan_proof, pin_dir  # noqa: E402
from polling import wait_until  # noqa: E402

TOOLS = os.environ.get("HVGUARD_TOOLS", "build/tests")
MINIVMM = os.path.join(TOOLS, "minivmm")
SLOW = 6 if EMULATED else 1
RULE = "migration-clock-warp"
# The daemon's numbers against the guest's: 1% (the bound), plus,
# under TCG, a few ms: every ioctl and exit there takes tens of us to ms.
REL = 0.01
SLACK_NS = 5_000_000 if EMULATED else 0
# The rule's tolerance, and what a precise migration may leave the guest:
# microseconds on hardware; KVM_SET_CLOCK's two clock samples and the
# exits around the guest's reads lie up to ~0.3 ms apart under TCG.
TOLERANCE_NS = 2_000_000 if EMULATED else 100_000
DOWNTIME_MS = 1000
# What a corrected arrival's guest may still see: the injected
# KVM_SET_CLOCK's two clock samples (emulated instructions apart under TCG:
# 24-34 us in the runs that set this, up to ~0.2 ms for a first correction
# in the realguest stage) and the TSC offsets set exactly; 10 us on hardware.
CORRECTED_NS = 1_000_000 if EMULATED else 10_000

tap = Tap()


def close(got, want, rel=REL, slack=SLACK_NS):
    return got is not None and want is not None and \
        abs(got - want) <= abs(want) * rel + slack


class Vmm:
    """One minivmm process, its JSON lines read in a thread as they come
    (a source that holds must be seen saved while it still runs). stderr
    goes to a file, read only once the process has exited."""

    def __init__(self, tmp, tag, args):
        self.args = args
        self.err_path = os.path.join(tmp, f"minivmm-{tag}.err")
        self.lines = []
        self.cond = threading.Condition()
        with open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(orphan_proof([MINIVMM, *args]), stdout=subprocess.PIPE,
                                         stderr=err, stdin=subprocess.DEVNULL, text=True)
        self.pid = self.proc.pid
        self.thread = threading.Thread(target=self._reader, daemon=True)
        self.thread.start()

    def _reader(self):
        for raw in self.proc.stdout:
            try:
                obj = json.loads(raw)
            except ValueError:
                continue
            with self.cond:
                self.lines.append(obj)
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def line(self, kind, timeout=60 * SLOW):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for o in self.lines:
                    if o.get("type") == kind:
                        return o
                left = deadline - time.monotonic()
                if left <= 0 or not self.thread.is_alive():
                    return None
                self.cond.wait(left)

    def finish(self, timeout=60 * SLOW):
        """Waits for the exit; returns its status (None if it had to be
        killed)."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = None
        self.thread.join(5)
        return rc

    def why(self):
        """For a failure message, once the process has exited."""
        try:
            with open(self.err_path) as f:
                err = f.read().strip()[-300:]
        except OSError:
            err = ""
        return f"minivmm {' '.join(self.args)}: exit {self.proc.poll()}: {err or '(no stderr)'}"


class CaseError(Exception):
    pass


def run(tmp, tag, args, want):
    """Runs minivmm to its end; returns (pid, its `want` line), the line
    with "_exited_ns": CLOCK_REALTIME once its exit was seen."""
    v = Vmm(tmp, tag, args)
    rc = v.finish()
    exited = time.time_ns()
    obj = v.line(want, 1)
    if rc != 0 or obj is None:
        raise CaseError(v.why())
    obj["_exited_ns"] = exited
    return v.pid, obj


def save(tmp, tag, vcpus, extra=()):
    state = os.path.join(tmp, f"{tag}.state")
    pid, saved = run(tmp, f"{tag}-src", ["migrate-save", "--state", state, "--vcpus",
                                         str(vcpus), *extra], "saved")
    return pid, state, saved


def restore(tmp, tag, state, how="qemu", downtime_ms=DOWNTIME_MS, extra=()):
    return run(tmp, tag, ["migrate-restore", "--state", state, "--how", how,
                          "--downtime-ms", str(downtime_ms), *extra], "restored")


# --- what the daemon printed ----------------------------------------------

def events(hv, name, pid):
    with hv.cond:
        return [o for o in hv.lines if o.get("type") == "event" and o.get("event") == name
                and o.get("pid") == pid]


def alerts_for(hv, pid):
    return hv.alerts(lambda a: a.get("pid") == pid)


# Records come within milliseconds of their ioctl or exit; once one never
# came, the later waits are short, so that a daemon without them fails the
# test in minutes, not in the stage's timeout.
MISSED = {"events": 0}


def wait_event(hv, name, pid):
    timeout = (1 if MISSED["events"] else 10) * SLOW
    ev = hv.wait_for(lambda o: o.get("type") == "event" and o.get("event") == name
                     and o.get("pid") == pid, timeout)
    if ev is None:
        MISSED["events"] += 1
    return ev


def settle():
    """Records are printed as the ioctls happen; give the reader a moment."""
    wait_until(lambda: False, 0.5 * SLOW)


def source_pid(arrival):
    src = (arrival or {}).get("source") or {}
    return src.get("pid")


def check_departure(name, hv, pid, vcpus, reason=None):
    dep = wait_event(hv, "departure", pid)
    tap.ok(f"{name}: the source's departure is recorded", dep is not None,
           f"a departure event for pid {pid}", "none")
    if dep and reason:
        tap.eq(f"{name}: the departure's reason", dep.get("reason"), reason)
    if dep:
        tap.eq(f"{name}: the departure holds every vCPU's TSC",
               sorted(v.get("vcpu") for v in dep.get("vcpus") or []), list(range(vcpus)))
    return dep


def check_no_alert(name, hv, pid, who):
    tap.eq(f"{name}: no alert for the {who}", [a.get("rule") for a in alerts_for(hv, pid)], [])


def check_warp_alert(name, hv, src, dst, got):
    """The destination of a QEMU-way migration: one alert, the guest's
    numbers."""
    arr = wait_event(hv, "arrival", dst)
    if not tap.ok(f"{name}: the destination's arrival is recorded", arr is not None,
                  f"an arrival event for pid {dst}", "none"):
        return
    tap.eq(f"{name}: the arrival is matched", arr.get("match"), "matched")
    tap.eq(f"{name}: the arrival's source is the source's pid", source_pid(arr), src)
    hv.wait_for(lambda o: o.get("type") == "alert" and o.get("pid") == dst, 5 * SLOW)
    settle()
    mine = alerts_for(hv, dst)
    warps = [a for a in mine if a.get("rule") == RULE]
    tap.eq(f"{name}: exactly one {RULE} alert for the destination", len(warps), 1)
    tap.eq(f"{name}: nothing else for the destination",
           sorted({a.get("rule") for a in mine}), [RULE])
    if not warps:
        return
    a = warps[0]
    tap.note(f"{name}: guest: downtime {got['downtime_ns']} (first KVM_RUN "
             f"{got['entry_downtime_ns']}) tsc {got['guest_tsc_warp_ns']} "
             f"kvmclock {got['guest_kvmclock_warp_ns']}; hvguard: downtime "
             f"{a.get('downtime_ns')} tsc {a.get('tsc_warp_ns')} kvmclock "
             f"{a.get('kvmclock_warp_ns')} pvti_changed {a.get('pvti_changed_ns')}")
    tap.eq(f"{name}: severity critical", a.get("severity"), "critical")
    tap.eq(f"{name}: the alert's source pid", ((a.get("source") or {}).get("pid")), src)
    tap.eq(f"{name}: the alert names the arrival's VM", a.get("vm"), arr.get("vm"))
    check_downtime(name, a, got)
    tap.ok(f"{name}: kvmclock_warp_ns within 1% of the guest's own",
           close(a.get("kvmclock_warp_ns"), got["guest_kvmclock_warp_ns"]),
           f"~{got['guest_kvmclock_warp_ns']}", a.get("kvmclock_warp_ns"))
    tap.ok(f"{name}: tsc_warp_ns within 1% of the guest's own",
           close(a.get("tsc_warp_ns"), got["guest_tsc_warp_ns"]),
           f"~{got['guest_tsc_warp_ns']}", a.get("tsc_warp_ns"))
    per = {v.get("vcpu"): v.get("tsc_warp_ns") for v in a.get("vcpus") or []}
    want = dict(enumerate(got["guest_tsc_warps_ns"]))
    tap.ok(f"{name}: every vCPU's tsc_warp_ns within 1% of what that vCPU saw",
           sorted(per) == sorted(want) and all(close(per[i], want[i]) for i in want),
           want, per)
    pvti = a.get("pvti_changed_ns")
    tap.ok(f"{name}: pvti unchanged on one host (|pvti_changed_ns| < 1 us)",
           pvti is not None and abs(pvti) < 1000, "< 1000", pvti)


def check_downtime(name, alert, got):
    """The issue's downtime ends at the destination's first guest entry: in
    the VMM's first KVM_RUN, before the guest's first TSC read, which the
    first entry delays by milliseconds under TCG (4-14 ms measured)."""
    d = alert.get("downtime_ns")
    tap.ok(f"{name}: downtime_ns within 1% of the save to the destination's first KVM_RUN",
           close(d, got["entry_downtime_ns"]), f"~{got['entry_downtime_ns']}", d)
    tap.ok(f"{name}: downtime_ns no later than the guest's first TSC read",
           d is not None and d <= got["downtime_ns"] + SLACK_NS, f"<= {got['downtime_ns']}", d)


def check_guest_rewound(name, got):
    """The ground truth: QEMU's way, the guest loses the downtime (but for
    the destination's own setup, a few ms under TCG)."""
    d = got["downtime_ns"]
    for k in ("guest_tsc_warp_ns", "guest_kvmclock_warp_ns"):
        tap.ok(f"{name}: the guest itself lost the downtime ({k} ~ -downtime)",
               close(got[k], -d, 0.05), f"~{-d}", got[k])


# --- the cases --------------------------------------------------------------

def case_qemu(hv, tmp):
    name = "QEMU 7.2 way, downtime 1 s"
    src, state, _ = save(tmp, "qemu", 2)
    dst, got = restore(tmp, "qemu-dst", state)
    check_guest_rewound(name, got)
    check_departure(name, hv, src, 2, "vmm-exit")
    check_warp_alert(name, hv, src, dst, got)
    check_no_alert(name, hv, src, "source")


def case_precise(hv, tmp):
    name = "precise way, downtime 1 s"
    src, state, saved = save(tmp, "precise", 1)
    dst, got = restore(tmp, "precise-dst", state, how="precise")
    for k in ("guest_tsc_warp_ns", "guest_kvmclock_warp_ns"):
        tap.ok(f"{name}: the guest lost nothing (|{k}| < {TOLERANCE_NS // 1000} us)",
               abs(got[k]) < TOLERANCE_NS, f"< {TOLERANCE_NS}", got[k])
    check_departure(name, hv, src, 1)
    arr = wait_event(hv, "arrival", dst)
    tap.ok(f"{name}: the destination's arrival is recorded", arr is not None, "an arrival", "none")
    tap.eq(f"{name}: the arrival is matched to the source", (
        (arr or {}).get("match"), source_pid(arr)), ("matched", src))
    mig = wait_event(hv, "migration", dst)
    tap.eq(f"{name}: a migration event, result ok", (mig or {}).get("result"), "ok")
    if mig:
        tap.note(f"{name}: guest: downtime {got['downtime_ns']} (first KVM_RUN "
                 f"{got['entry_downtime_ns']}) tsc {got['guest_tsc_warp_ns']} kvmclock "
                 f"{got['guest_kvmclock_warp_ns']}; hvguard: downtime {mig.get('downtime_ns')} "
                 f"tsc {mig.get('tsc_warp_ns')} kvmclock {mig.get('kvmclock_warp_ns')}")
        tap.eq(f"{name}: the migration event's source pid",
               (mig.get("source") or {}).get("pid"), src)
        # The advanced TSC hides the save: the daemon counts from the
        # latest moment it can have been, the source VMM's exit at most.
        d = mig.get("downtime_ns")
        exit_to_entry = got["entry_downtime_ns"] - (saved["_exited_ns"] -
                                                     saved["save_realtime_ns"])
        tap.ok(f"{name}: downtime_ns from the source's exit at the earliest",
               d is not None and exit_to_entry - SLACK_NS <= d, f">= {exit_to_entry}", d)
        tap.ok(f"{name}: downtime_ns no longer than the save to the first KVM_RUN",
               d is not None and d <= got["entry_downtime_ns"] * (1 + REL) + SLACK_NS,
               f"<= {got['entry_downtime_ns']}", d)
        for k in ("tsc_warp_ns", "kvmclock_warp_ns"):
            tap.ok(f"{name}: hvguard's {k} within the tolerance",
                   mig.get(k) is not None and abs(mig[k]) <= TOLERANCE_NS,
                   f"|x| <= {TOLERANCE_NS}", mig.get(k))
    settle()
    for a in alerts_for(hv, dst):
        tap.note(f"{name}: guest: tsc {got['guest_tsc_warp_ns']} kvmclock "
                 f"{got['guest_kvmclock_warp_ns']}; alert {a.get('rule')}: downtime "
                 f"{a.get('downtime_ns')} tsc {a.get('tsc_warp_ns')} kvmclock "
                 f"{a.get('kvmclock_warp_ns')}")
    check_no_alert(name, hv, dst, "destination")
    check_no_alert(name, hv, src, "source")


def case_tsc_skew(hv, tmp):
    name = "hostile: TSC restored an hour off"
    src, state, _ = save(tmp, "skew", 3)
    dst, got = restore(tmp, "skew-dst", state, downtime_ms=300,
                       extra=["--tsc-skew-ms", "3600000"])
    tap.ok(f"{name}: the guest's TSC is an hour ahead", close(got["guest_tsc_warp_ns"], 3600e9,
                                                              0.001), "~3600e9",
           got["guest_tsc_warp_ns"])
    arr = wait_event(hv, "arrival", dst)
    tap.ok(f"{name}: the arrival is recorded", arr is not None, "an arrival", "none")
    tap.eq(f"{name}: matched to nothing", ((arr or {}).get("match"), source_pid(arr)),
           ("none", None))
    settle()
    check_no_alert(name, hv, dst, "destination")


def case_two_destinations(hv, tmp):
    name = "hostile: two destinations from one saved state"
    src, state, _ = save(tmp, "twin", 4)
    # Both start together: the same fingerprint, arriving at once.
    twins = [Vmm(tmp, f"twin-dst{i}", ["migrate-restore", "--state", state, "--how", "qemu",
                                       "--downtime-ms", "500"]) for i in range(2)]
    rcs = [t.finish() for t in twins]
    if rcs != [0, 0]:
        raise CaseError("; ".join(t.why() for t in twins))
    arrs = [wait_event(hv, "arrival", t.pid) for t in twins]
    tap.ok(f"{name}: both arrivals recorded", all(arrs), "2 arrivals", arrs)
    arrs = [a for a in arrs if a]
    matched = [a for a in arrs if a.get("match") == "matched"]
    tap.ok(f"{name}: at most one matched", len(matched) <= 1, "<= 1",
           [(a.get("pid"), a.get("match")) for a in arrs])
    tap.ok(f"{name}: never a wrong match (a match names the source)",
           all(source_pid(a) == src for a in matched), src, [source_pid(a) for a in matched])
    tap.ok(f"{name}: the other is reported as not matched",
           all(a.get("match") in ("none", "ambiguous", "conflict")
               for a in arrs if a not in matched),
           "none, ambiguous or conflict", [a.get("match") for a in arrs])
    settle()
    unmatched = {t.pid for t in twins} - {a.get("pid") for a in matched}
    tap.eq(f"{name}: no alert for an unmatched destination",
           [a.get("rule") for p in sorted(unmatched) for a in alerts_for(hv, p)], [])
    tap.note(f"{name}: arrivals {[(a.get('pid'), a.get('match'), a.get('candidates')) for a in arrs]}")


def case_twice(hv, tmp):
    name = "a VM that migrates twice"
    a, state1, _ = save(tmp, "twice", 5)
    state2 = os.path.join(tmp, "twice2.state")
    b, got_b = restore(tmp, "twice-b", state1, downtime_ms=500,
                       extra=["--save-to", state2, "--run-ms", "300"])
    c, got_c = restore(tmp, "twice-c", state2, downtime_ms=500)
    check_departure(f"{name}, first source", hv, a, 5)
    check_departure(f"{name}, second source (the first destination)", hv, b, 5)
    for dst, src, got, leg in ((b, a, got_b, "first"), (c, b, got_c, "second")):
        arr = wait_event(hv, "arrival", dst)
        tap.eq(f"{name}: the {leg} arrival is matched to its own source",
               ((arr or {}).get("match"), source_pid(arr)), ("matched", src))
        hv.wait_for(lambda o, dst=dst: o.get("type") == "alert" and o.get("pid") == dst, 5 * SLOW)
        warps = [x for x in alerts_for(hv, dst) if x.get("rule") == RULE]
        tap.eq(f"{name}: the {leg} leg: one {RULE}, naming its own source",
               [(x.get("source") or {}).get("pid") for x in warps], [src])
        if warps:
            check_downtime(f"{name}, {leg} leg", warps[0], got)
            tap.ok(f"{name}, {leg} leg: kvmclock_warp_ns within 1% of the guest's own",
                   close(warps[0].get("kvmclock_warp_ns"), got["guest_kvmclock_warp_ns"]),
                   f"~{got['guest_kvmclock_warp_ns']}", warps[0].get("kvmclock_warp_ns"))


def case_source_paused(hv, tmp):
    name = "QEMU way, source still alive and paused"
    state = os.path.join(tmp, "held.state")
    hold_ms = 3 * DOWNTIME_MS + 5000 * SLOW
    source = Vmm(tmp, "held-src", ["migrate-save", "--state", state, "--vcpus", "6",
                                   "--hold-ms", str(hold_ms)])
    if source.line("saved") is None:
        source.finish(1)
        raise CaseError(source.why())
    dst, got = restore(tmp, "held-dst", state)
    alive = source.proc.poll() is None
    tap.ok(f"{name}: the source was still running when the destination did", alive,
           "alive", "exited")
    check_guest_rewound(name, got)
    check_warp_alert(name, hv, source.pid, dst, got)
    check_departure(name, hv, source.pid, 6, "paused")
    source.proc.terminate()
    source.finish(10 * SLOW)
    settle()
    check_no_alert(name, hv, source.pid, "source")


def case_cpr_exec(hv, tmp):
    """QEMU's cpr-exec, replayed: the source saves and execs itself as the
    destination, in one pid. The VM goes with the old image (its fds are
    O_CLOEXEC): a departure at the exec, an arrival in the same pid."""
    name = "cpr-exec in one pid, QEMU way"
    state = os.path.join(tmp, "cpr.state")
    pid, got = run(tmp, "cpr", ["migrate-save", "--state", state, "--vcpus", "7",
                                "--exec-restore", "--how", "qemu",
                                "--downtime-ms", str(DOWNTIME_MS)], "restored")
    tap.eq(f"{name}: the restore ran in the saving process", got.get("pid"), pid)
    check_guest_rewound(name, got)
    check_departure(name, hv, pid, 7, "exec")
    check_warp_alert(name, hv, pid, pid, got)


CASES_ALL = [
    ("qemu", case_qemu),
    ("precise", case_precise),
    ("skew", case_tsc_skew),
    ("twins", case_two_destinations),
    ("twice", case_twice),
    ("paused", case_source_paused),
    ("cpr-exec", case_cpr_exec),
]
# HVGUARD_MIGRATION_ONLY=qemu,twice runs a subset while developing.
ONLY = set(filter(None, os.environ.get("HVGUARD_MIGRATION_ONLY", "").split(",")))
CASES = [c for c in CASES_ALL if not ONLY or c[0] in ONLY]


def case_corrected(hv, tmp):
    name = "QEMU way under --correct"
    src, state, _ = save(tmp, "fix", 8)
    dst, got = restore(tmp, "fix-dst", state)
    arr = wait_event(hv, "arrival", dst)
    tap.eq(f"{name}: the arrival is matched to the source", (
        (arr or {}).get("match"), source_pid(arr)), ("matched", src))
    fix = hv.wait_for(lambda o: o.get("type") == "correction" and o.get("pid") == dst, 10 * SLOW)
    tap.eq(f"{name}: a correction for the destination, by {RULE}", (fix or {}).get("rule"), RULE)
    tap.eq(f"{name}: applied", (fix or {}).get("result"), "applied")
    tap.note(f"{name}: guest after the correction: tsc {got['guest_tsc_warp_ns']} kvmclock "
             f"{got['guest_kvmclock_warp_ns']}; frozen {(fix or {}).get('frozen_ns')} ns, "
             f"residual {(fix or {}).get('residual_ns')} ns")
    for k in ("guest_tsc_warp_ns", "guest_kvmclock_warp_ns"):
        tap.ok(f"{name}: the guest saw no warp (|{k}| < {CORRECTED_NS // 1000} us)",
               abs(got[k]) < CORRECTED_NS, f"< {CORRECTED_NS}", got[k])
    alert = [a for a in alerts_for(hv, dst) if a.get("rule") == RULE]
    tap.eq(f"{name}: the alert says it corrects", [a.get("action") for a in alert], ["correct"])


def run_corrected(tmp, rules):
    """The --correct daemon, after the other's, never both at once: its
    repairs are clock writes the other would see."""
    try:
        hv = Hvguard(["--correct", "--pin-dir", pin_dir("migration"), "--rules", rules],
                     log=os.path.join(tmp, "hvguard-correct.err"))
    except HvguardError as e:
        tap.fail("migration, --correct: hvguard starts", str(e))
        return
    try:
        case_corrected(hv, tmp)
    except CaseError as e:
        tap.fail("migration case corrected: the mini VMMs ran", str(e))
    finally:
        hv.stop_and_check(tap)


def main():
    with tempfile.TemporaryDirectory(prefix="hvguard-migration-") as tmp:
        rules = os.path.join(tmp, "rules.yaml")
        with open(rules, "w") as f:
            f.write(f"rules:\n  {RULE}:\n    tolerance_ns: {TOLERANCE_NS}\n")
        try:
            hv = Hvguard(["--no-pin", "--rules", rules], log=os.path.join(tmp, "hvguard.err"))
        except HvguardError as e:
            tap.fail("migration: hvguard starts", str(e))
            return 1
        tap.note(f"migration: clock checks on {hv.hooks} hooks")
        try:
            for tag, case in CASES:
                try:
                    case(hv, tmp)
                except CaseError as e:
                    tap.fail(f"migration case {tag}: the mini VMMs ran", str(e))
        finally:
            hv.stop_and_check(tap)
            keep_logs(hv, tmp)
        if not ONLY or "corrected" in ONLY:
            run_corrected(tmp, rules)
    return tap.exit_code()


def keep_logs(hv, tmp):
    """The daemon's records and stderr, for the reader of a failure."""
    logdir = os.environ.get("HVGUARD_LOGDIR", "build/test-logs")
    base = os.path.join(logdir, f"migration-{HOOKS or 'default'}")
    try:
        os.makedirs(logdir, exist_ok=True)
        with open(base + ".jsonl", "w") as f:
            for o in hv.lines:
                f.write(json.dumps(o) + "\n")
        shutil.copy(os.path.join(tmp, "hvguard.err"), base + ".err")
    except OSError as e:
        tap.note(f"migration: logs not kept: {e}")


if __name__ == "__main__":
    sys.exit(main())
