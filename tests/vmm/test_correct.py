#!/usr/bin/env python3
"""Correcting writes on the mini VMM: with --correct (or `action: correct`)
the guest must never see the rewound clock. The guest reports its own TSC
and kvmclock, so the test asserts what the guest saw, not only what
hvguard says it did."""

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import json
import fcntl

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from hvtest import EMULATED, Hvguard, HvguardError, Tap, pin_dir  # noqa: E402
from polling import wait_until  # noqa: E402
from test_vmm import run_vmm, within  # noqa: E402

TOOLS = os.environ.get("HVGUARD_TOOLS", "build/tests")
MINIVMM = os.path.join(TOOLS, "minivmm")
# What a corrected guest may still see: 10 us in every cycle on a real KVM.
# Nested under TCG, KVM_SET_CLOCK's two clock samples are emulated
# instructions apart and the host preempts the emulator at will: measured
# there p50 6-20 us with a tail past 100 us. Bound the typical cycle (the
# median) by 50 us, and every cycle by 1% of the pause (the rewind is gone).
SKEW_LIMIT_NS = 10_000
MEDIAN_LIMIT_NS = 50_000
# The pause a VMM replays is the time from its first stop ioctl to its last
# resume ioctl; the rewind covers GET_CLOCK to SET_CLOCK only, and under
# TCG the ioctls around them take milliseconds.
REL = 0.15 if EMULATED else 0.05
F_SETPIPE_SZ = 1031

tap = Tap()


def lines_for(hv, pid, kind):
    with hv.cond:
        return [o for o in hv.lines if o.get("type") == kind and o.get("pid") == pid]


def settle(hv, pid, kind, count, timeout=5):
    wait_until(lambda: len(lines_for(hv, pid, kind)) >= count, timeout)
    return lines_for(hv, pid, kind)


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else None


def test_stopcont_corrected(hv, cycles=20, pause_ms=200):
    name = f"qemu-stopcont x{cycles} corrected"
    pid, cyc, done = run_vmm(["qemu-stopcont", "--pause-ms", str(pause_ms),
                              "--cycles", str(cycles)])
    corr = settle(hv, pid, "correction", cycles)
    skews = [c["skew_ns"] for c in cyc]
    tap.eq(f"{name}: one correction per pause", len(corr), cycles)
    results = sorted({c["result"] for c in corr})
    tap.ok(f"{name}: every correction applied", results == ["applied"], "['applied']",
           f"{results}: " + "; ".join(c.get("reason", "?") for c in corr
                                      if c["result"] != "applied"))
    residuals = [c["residual_ns"] for c in corr if c.get("residual_ns") is not None]
    # A KVM_SET_CLOCK that landed over 50 us off is written again, 3 times
    # at most: each correction either ends within 50 us or used all three.
    writes = [(c.get("after", {}).get("set_clock_writes"), c.get("residual_ns")) for c in corr]
    tap.ok(f"{name}: a write that landed over 50 us off was made again (3 writes at most)",
           len(writes) == cycles and
           all(w in (1, 2, 3) and r is not None and (abs(r) <= 50_000 or w == 3)
               for w, r in writes),
           "writes 1-3, |residual| <= 50 us unless 3 writes", writes)
    tap.note(f"KVM_SET_CLOCK writes per correction: {sorted(w for w, _ in writes if w)}")
    if EMULATED:
        bound = pause_ms * 1e6 / 100
        tap.ok(f"{name}: the guest never saw the rewind (|skew| < 1% of the pause every cycle)",
               len(skews) == cycles and all(abs(s) < bound for s in skews), f"< {bound}",
               skews)
        tap.ok(f"{name}: typical guest skew under TCG: median |skew| < 50 us",
               skews and statistics.median(abs(s) for s in skews) < MEDIAN_LIMIT_NS,
               f"< {MEDIAN_LIMIT_NS}", skews)
        tap.ok(f"{name}: kvmclock offset restored: median |residual| < 50 us",
               len(residuals) == cycles and
               statistics.median(abs(r) for r in residuals) < MEDIAN_LIMIT_NS,
               f"< {MEDIAN_LIMIT_NS} ns", residuals)
    else:
        tap.ok(f"{name}: the guest never saw the rewind (|skew| < 10 us every cycle)",
               len(skews) == cycles and all(abs(s) < SKEW_LIMIT_NS for s in skews),
               f"< {SKEW_LIMIT_NS} ns", skews)
        tap.ok(f"{name}: kvmclock offset restored to within 10 us",
               len(residuals) == cycles and all(abs(r) < SKEW_LIMIT_NS for r in residuals),
               f"< {SKEW_LIMIT_NS} ns", residuals)
    frozen = [c["frozen_ns"] for c in corr]
    if skews:
        tap.note(f"guest skew ns: median {statistics.median(skews):.0f}, "
                 f"min {min(skews)}, max {max(skews)}")
    if frozen:
        tap.note(f"VMM frozen per correction: p50 {pct(frozen, .5) / 1e6:.2f} ms, "
                 f"p99 {pct(frozen, .99) / 1e6:.2f} ms")
    alerts = [a for a in hv.alerts(lambda a: a["pid"] == pid)]
    tap.eq(f"{name}: alerts say the action taken", sorted({a["action"] for a in alerts}),
           ["correct"])


def test_crosvm_corrected(hv):
    name = "crosvm-resume corrected"
    pid, cyc, done = run_vmm(["crosvm-resume", "--pause-ms", "300", "--cycles", "2"])
    corr = settle(hv, pid, "correction", 2)
    tap.eq(f"{name}: corrections applied", [c["result"] for c in corr], ["applied"] * 2)
    limit = 300e6 / 100 if EMULATED else SKEW_LIMIT_NS  # as above
    tap.ok(f"{name}: the guest never saw the rewind",
           all(abs(c["skew_ns"]) < limit for c in cyc), f"< {limit}", cyc)


def test_tsc_offset_corrected(hv):
    name = "tsc-msr-rewrite corrected"
    pid, cyc, done = run_vmm(["tsc-msr-rewrite", "--pause-ms", "200", "--vcpus", "2"])
    corr = settle(hv, pid, "correction", 2)
    alerts = sorted(hv.alerts(lambda a: a["pid"] == pid and a["rule"] == "tsc-offset-change"),
                    key=lambda a: a["vcpu"])
    corr = sorted(corr, key=lambda c: c["vcpu"])
    tap.eq(f"{name}: one correction per vCPU", [c["vcpu"] for c in corr], [0, 1])
    tap.eq(f"{name}: applied", [c["result"] for c in corr], ["applied", "applied"])
    # This kernel reads TSC offsets back as 0: the kvm_write_tsc_offset
    # tracepoint's value after the injected write is the proof.
    tap.ok(f"{name}: each vCPU's offset is back to its value before the rewrite",
           len(alerts) == len(corr) == 2 and
           all(c["after"]["offset"] == a["offset_before"] for a, c in zip(alerts, corr)),
           [a["offset_before"] for a in alerts], [c["after"] for c in corr])


def test_mismatch_corrected(hv, stride=1):
    name = "vcpu-mismatch corrected" + (f", vCPU ids 0 and {stride}" if stride > 1 else "")
    pid, cyc, done = run_vmm(["vcpu-mismatch", "--vcpu-id-stride", str(stride)])
    corr = settle(hv, pid, "correction", 1)
    tap.eq(f"{name}: applied", [c["result"] for c in corr], ["applied"])
    tap.eq(f"{name}: one vCPU aligned on vCPU 0",
           [c["after"].get("vcpus_aligned") for c in corr], [1])
    tap.eq(f"{name}: no mismatch left to report",
           len(hv.alerts(lambda a: a["pid"] == pid and a["rule"] == "vcpu-tsc-mismatch")), 1)


def test_sparse_mismatch_corrected(hv):
    """vCPU ids are APIC ids, sparse: the vCPU with id 256 is found and
    aligned, not taken for vCPU 0."""
    test_mismatch_corrected(hv, stride=256)


def test_khz_not_corrected(hv):
    name = "tsc-khz-then-cont with --correct"
    pid, cyc, done = run_vmm(["tsc-khz-then-cont"])
    wait_until(lambda: False, 0.3)
    alerts = hv.alerts(lambda a: a["pid"] == pid)
    tap.eq(f"{name}: alert only", [a["rule"] for a in alerts], ["tsc-khz-change"])
    tap.ok(f"{name}: the alert says no safe correction exists",
           alerts and "none" in alerts[0].get("correction", ""), "correction: none...", alerts)
    tap.eq(f"{name}: no correction attempted", lines_for(hv, pid, "correction"), [])


def test_rate_limit(tmp):
    """`action: correct` from the rules file, and the per-VM rate limit."""
    name = "rate limit"
    rules = os.path.join(tmp, "rate.yaml")
    with open(rules, "w") as f:
        f.write("rules:\n  kvmclock-jump:\n    action: correct\n"
                "    max_corrections_per_min: 2\n")
    hv = Hvguard(["--pin-dir", pin_dir("rate"), "--rules", rules],
                 log=os.path.join(tmp, "rate.err"))
    try:
        pid, cyc, done = run_vmm(["qemu-stopcont", "--pause-ms", "200", "--cycles", "4"])
        corr = settle(hv, pid, "correction", 4)
        # Another VM right after: its budget is its own (struct kvm pointers
        # are page-aligned: a bucket per pointer modulo 256 was one for all).
        pid2, _, _ = run_vmm(["qemu-stopcont", "--pause-ms", "200"])
        other = settle(hv, pid2, "correction", 1)
    finally:
        status, _ = hv.stop()
    tap.eq(f"{name}: another VM's correction is not limited by the first's",
           [c["result"] for c in other], ["applied"])
    tap.eq(f"{name}: two applied, then refused",
           [c["result"] for c in corr], ["applied", "applied", "refused", "refused"])
    tap.ok(f"{name}: the refusal says why",
           all("rate limit" in (c["reason"] or "") for c in corr[2:]) and len(corr) == 4,
           "rate limit ...", [c["reason"] for c in corr])
    tap.ok(f"{name}: refused cycles leave the VMM running as before (guest sees the rewind)",
           len(cyc) == 4 and all(within(c["skew_ns"], -c["pause_ns"], REL) for c in cyc[2:]),
           "skew ~ -pause", [c["skew_ns"] for c in cyc])
    tap.eq(f"{name}: hvguard exits 0", status, 0)


def test_vmm_exits_first(tmp):
    """The VMM dies while frozen, before the daemon reaches it: refused,
    nothing crashes, the daemon carries on."""
    name = "VMM exits before its correction"
    hv = Hvguard(["--pin-dir", pin_dir("exit"), "--correct"], log=os.path.join(tmp, "exit.err"))
    vmm = None
    try:
        os.kill(hv.proc.pid, signal.SIGSTOP)  # the daemon cannot act yet
        vmm = subprocess.Popen([MINIVMM, "qemu-stopcont", "--pause-ms", "100"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        frozen = wait_until(lambda: _state(vmm.pid) == "T", 20)
        tap.ok(f"{name}: BPF froze the VMM at KVM_SET_CLOCK on its own", frozen,
               "state T", _state(vmm.pid))
        vmm.kill()
        vmm.wait(10)
        os.kill(hv.proc.pid, signal.SIGCONT)
        corr = settle(hv, vmm.pid, "correction", 1)
        tap.eq(f"{name}: reported as refused", [c["result"] for c in corr], ["refused"])
        tap.ok(f"{name}: the reason names the exit",
               corr and any(w in (corr[0]["reason"] or "") for w in ("exited", "gone")),
               "exited/gone", corr)
        pid, cyc, done = run_vmm(["qemu-stopcont", "--pause-ms", "200"])
        later = settle(hv, pid, "correction", 1)
        tap.eq(f"{name}: the daemon still corrects the next VMM",
               [c["result"] for c in later], ["applied"])
    finally:
        if vmm and vmm.poll() is None:
            vmm.kill()
        try:
            os.kill(hv.proc.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
        status, _ = hv.stop()
    tap.eq(f"{name}: hvguard exits 0", status, 0)


def test_watchdog(tmp):
    """The event loop blocks (nobody reads hvguard's stdout): a VMM the BPF
    side froze must not stay frozen; the watchdog lets it go."""
    name = "watchdog"
    hv = subprocess.Popen([os.environ.get("HVGUARD", "build/hvguard"), "run", "--json",
                           "--correct", "--pin-dir", pin_dir("watchdog")],
                          stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True)
    try:
        while '"type":"ready"' not in (hv.stdout.readline() or '"type":"ready"'):
            pass
        # Shrink the pipe to a page, fill it with a filler VMM's events
        # (a few corrections, then the daemon blocks), and stop reading.
        fcntl.fcntl(hv.stdout.fileno(), F_SETPIPE_SZ, 4096)
        filler = subprocess.run([MINIVMM, "many-vms", "8", "--pause-ms", "20"],
                                capture_output=True, text=True, timeout=120)
        t0 = time.monotonic()
        pid, cyc, done = run_vmm(["qemu-stopcont", "--pause-ms", "300"], timeout=60)
        took = time.monotonic() - t0
        tap.eq(f"{name}: the filler VMM ran to its end", filler.returncode, 0)
        tap.ok(f"{name}: a VMM frozen behind a blocked daemon still runs to its end",
               took < 20, "< 20 s", f"{took:.1f} s")
        # pause_ns runs to the end of KVM_SET_CLOCK, so it includes the
        # freeze; the rewind is the 300 ms before it.
        tap.ok(f"{name}: it went uncorrected (the guest saw the 300 ms rewind)",
               cyc and -cyc[0]["pause_ns"] <= cyc[0]["skew_ns"] <= -0.95 * 300e6,
               "-pause_ns <= skew <= -285 ms", cyc)
        # The guest's TSC advance runs from its last sample before the stop
        # to its first after the release: the 300 ms pause and the freeze
        # (at KVM_SET_CLOCK, or at the next KVM_RUN on kvm-tracepoints).
        tap.ok(f"{name}: released about 500 ms after the freeze",
               cyc and 0.4e9 <= cyc[0]["guest_tsc_advance_ns"] - 300e6 <= 2e9, "~500 ms",
               cyc and cyc[0]["guest_tsc_advance_ns"] - 300e6)
        out = []
        reader = threading.Thread(target=lambda: out.extend(hv.stdout), daemon=True)
        reader.start()
        wait_until(lambda: any(f'"pid":{pid}' in l and '"correction"' in l for l in out), 30)
        hv.send_signal(signal.SIGINT)
        hv.wait(30)
        reader.join(10)
        corr = [json.loads(l) for l in out if '"correction"' in l and f'"pid":{pid}' in l]
        tap.ok(f"{name}: the late daemon reports the correction refused, naming the watchdog",
               corr and corr[0]["result"] == "refused" and "watchdog" in corr[0]["reason"],
               "refused: watchdog ...", corr)
        tap.eq(f"{name}: hvguard exits 0", hv.returncode, 0)
    finally:
        if hv.poll() is None:
            hv.kill()
            hv.wait()


def _state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def test_traced_not_frozen(hv, cycles=2, pause_ms=300):
    """A VMM under a debugger: its tracer would see our SIGSTOP first and
    pass it on when it likes, after the release, leaving the VMM stopped
    for good. So it is never frozen: each rewind is reported, its
    correction refused with the reason, and the VMM runs to its end."""
    name = "VMM under a tracer"
    pid, cyc, done = run_vmm(["qemu-stopcont", "--pause-ms", str(pause_ms), "--cycles",
                              str(cycles), "--traced-as", "gdb"], timeout=120)
    tap.eq(f"{name}: the VMM ran every cycle", len(cyc), cycles)
    corr = settle(hv, pid, "correction", cycles)
    tap.eq(f"{name}: every correction refused", [c["result"] for c in corr],
           ["refused"] * cycles)
    tap.ok(f"{name}: the reason says it is traced",
           corr and all("traced" in (c["reason"] or "") for c in corr), "traced", corr)
    tap.eq(f"{name}: never frozen", [c["frozen_ns"] for c in corr], [0] * cycles)
    # The rewind spans GET_CLOCK to SET_CLOCK: the whole sleep, at most the
    # pause from first stop to last resume ioctl.
    tap.ok(f"{name}: the guest saw the rewind (nothing was repaired)",
           all(pause_ms * 1e6 * 0.99 <= -c["skew_ns"] <= c["pause_ns"] * 1.01 for c in cyc),
           "-skew between the sleep and the pause",
           [(c["skew_ns"], c["pause_ns"]) for c in cyc])


def main():
    with tempfile.TemporaryDirectory(prefix="hvguard-correct-") as tmp:
        try:
            hv = Hvguard(["--pin-dir", pin_dir("correct"), "--correct"],
                         log=os.path.join(tmp, "hvguard.err"))
        except HvguardError as e:
            tap.fail("hvguard --correct starts", str(e))
            return 1
        tests = [test_stopcont_corrected, test_crosvm_corrected, test_tsc_offset_corrected,
                 test_mismatch_corrected, test_khz_not_corrected, test_traced_not_frozen,
                 test_sparse_mismatch_corrected]
        try:
            for t in tests:
                try:
                    t(hv)
                except Exception as e:  # noqa: BLE001 - a test that cannot run fails
                    tap.fail(t.__name__, repr(e))
        finally:
            status, summary = hv.stop()
        tap.eq("hvguard --correct exits 0 at SIGINT", status, 0)
        for t in (test_rate_limit, test_vmm_exits_first, test_watchdog):
            try:
                t(tmp)
            except Exception as e:  # noqa: BLE001
                tap.fail(t.__name__, repr(e))
    return tap.exit_code()


if __name__ == "__main__":
    sys.exit(main())
