#!/usr/bin/env python3
"""A flooding guest, from the attacker's side.

A guest may write its own TSC as often as it likes (wrmsr IA32_TSC is
legitimate, and KVM traces every write). The attacker's guest does nothing
else, as fast as it can, to drown the daemon: before alerts had a ring of
their own and guest writes were rate-limited per VM, another VM's rewinds
went unreported while such a guest ran. Here, while it floods, another VMM
rewinds its guest's kvmclock five times. Every rewind must be reported
with its magnitude (and corrected, with --correct), the flood must cost the
output a bounded number of lines, and the guest's writes must all be
accounted for: sent one by one or counted in a summary, never lost.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from hvtest import EMULATED, Hvguard, HvguardError, Tap, orphan_proof, pin_dir  # noqa: E402
from polling import wait_until  # noqa: E402
from test_vmm import run_vmm  # noqa: E402

TOOLS = os.environ.get("HVGUARD_TOOLS", "build/tests")
MINIVMM = os.path.join(TOOLS, "minivmm")
CYCLES = 5
PAUSE_MS = 300
# Long enough to cover the victim's five pauses (a few seconds under TCG).
FLOOD_MS = 20000 if EMULATED else 8000
# include/hvguard/clock.h: records sent one by one per VM and window.
BURST, WINDOW_S = 8, 1.0
tap = Tap()


def objs(hv, pid, kind, event=None):
    with hv.cond:
        return [o for o in hv.lines if o.get("type") == kind and o.get("pid") == pid
                and (event is None or o.get("event") == event)]


def flood_run(tmp, correct):
    name = "flooding guest" + (", --correct" if correct else "")
    args = ["--pin-dir", pin_dir("flood"), "--correct"] if correct else ["--no-pin"]
    try:
        hv = Hvguard(args, log=os.path.join(tmp, f"flood{int(correct)}.err"))
    except HvguardError as e:
        tap.fail(f"{name}: hvguard starts", str(e))
        return
    flooder = subprocess.Popen(
        orphan_proof([MINIVMM, "guest-tsc-flood", "--flood-ms", str(FLOOD_MS)]),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        started = wait_until(
            lambda: objs(hv, flooder.pid, "event", "guest-tsc-write"), 60)
        tap.ok(f"{name}: the flood is under way", bool(started),
               "guest-tsc-write events from the flooder", "none in 60 s")
        vpid, cycles, _ = run_vmm(["qemu-stopcont", "--cycles", str(CYCLES),
                                   "--pause-ms", str(PAUSE_MS)], timeout=300)
        tap.ok(f"{name}: the flood lasted past the victim's last pause",
               flooder.poll() is None, "flooder still running", "it had ended")
        out, err = flooder.communicate(timeout=FLOOD_MS / 1000 + 120)
    finally:
        if flooder.poll() is None:
            flooder.kill()
            flooder.wait()
    done = next((json.loads(l) for l in out.splitlines() if '"type":"done"' in l), None)
    if not tap.ok(f"{name}: the flooder ran to its end", flooder.returncode == 0 and done,
                  "exit 0 and a done line", f"exit {flooder.returncode}: {err[-300:]}"):
        hv.stop()
        return
    # Its writes in the window still open are summed up when it exits.
    wait_until(lambda: objs(hv, flooder.pid, "event", "vmm-exit"), 30)
    time.sleep(1)
    check_victim(name, hv, vpid, cycles, correct)
    check_flood(name, hv, flooder.pid, done)
    rc, summary = hv.stop()
    tap.eq(f"{name}: hvguard exits 0", rc, 0)
    clock = (summary or {}).get("clock", {})
    tap.eq(f"{name}: no information record lost", clock.get("events_lost"), 0)
    tap.eq(f"{name}: no alert missed",
           sorted(set((clock.get("alerts_missed") or {"?": None}).values())), [0])


def check_victim(name, hv, pid, cycles, correct):
    wait_until(lambda: len(objs(hv, pid, "alert")) >= CYCLES, 30)
    jumps = [a for a in objs(hv, pid, "alert") if a.get("rule") == "kvmclock-jump"]
    tap.eq(f"{name}: every rewind of the other VM reported", len(jumps), CYCLES)
    # The rewind spans KVM_GET_CLOCK to KVM_SET_CLOCK: the whole sleep of the
    # pause, and no more than the pause from first stop to last resume
    # ioctl (which the flood, taking the CPU, stretches under TCG).
    for a, c in zip(jumps, cycles):
        low, high = PAUSE_MS * 1e6 * 0.99, c["pause_ns"] * 1.01
        tap.ok(f"{name}: the rewind is the pause, as the VMM timed it",
               a["jump_ns"] < 0 and low <= -a["jump_ns"] <= high,
               f"-{low:.0f}..-{high:.0f}", a["jump_ns"])
    if correct:
        wait_until(lambda: len(objs(hv, pid, "correction")) >= CYCLES, 30)
        tap.eq(f"{name}: every rewind corrected",
               [c.get("result") for c in objs(hv, pid, "correction")], ["applied"] * CYCLES)


def check_flood(name, hv, pid, done):
    writes = done["guest_tsc_writes"]
    one_by_one = objs(hv, pid, "event", "guest-tsc-write")
    summaries = objs(hv, pid, "event", "guest-tsc-writes")
    summed = sum(s["suppressed"] for s in summaries)
    tap.note(f"{name}: {writes} guest TSC writes in {done['flood_ms']} ms: "
             f"{len(one_by_one)} records, {len(summaries)} summaries of {summed}")
    tap.ok(f"{name}: the guest wrote its TSC at flood rate", writes >= 10 * BURST * 3,
           f">= {10 * BURST * 3}", writes)
    tap.eq(f"{name}: every guest write sent or counted, none lost",
           len(one_by_one) + summed, writes)
    windows = done["flood_ms"] / 1000 / WINDOW_S + 3
    tap.ok(f"{name}: at most {BURST} records per window of {WINDOW_S:.0f} s",
           len(one_by_one) <= BURST * windows, f"<= {BURST * windows:.0f}", len(one_by_one))
    tap.ok(f"{name}: one summary per window at most", len(summaries) <= windows,
           f"<= {windows:.0f}", len(summaries))
    with hv.cond:
        size = sum(len(json.dumps(o)) for o in hv.lines)
    # A record is about 300 bytes; the victim's alerts, corrections and the
    # daemon's own lines stay under 50 kB.
    limit = 500 * (BURST + 1) * windows + 50_000
    tap.ok(f"{name}: the daemon's whole output stays under {limit / 1000:.0f} kB",
           size <= limit, f"<= {limit:.0f} bytes", size)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        flood_run(tmp, correct=False)
        flood_run(tmp, correct=True)
    return tap.exit_code()


if __name__ == "__main__":
    sys.exit(main())
