#!/usr/bin/env python3
"""A real Linux guest is the judge (the realguest stage).

Debian's 6.1 kernel boots under QEMU -accel kvm with rgclock as its init
(tests/realguest/rgclock.c), which prints on its serial console what the
guest sees of its clocks: its kvm-clock against its TSC, and its
CLOCK_REALTIME against the host's through /dev/ptp0 (ptp_kvm). Every
verdict here is read from those lines, never from QEMU's exit status.

Three modes, one boot each (the daemon, when there is one, starts before
QEMU, so that it knows the VM from its creation):
- without hvguard: the bug's magnitudes, as the guest saw them;
- alerting (`hvguard run --json`): the same magnitudes, and hvguard's
  alerts agreeing with what the guest saw within 1%;
- corrected (`hvguard run --correct`): the guest sees its clocks continue,
  within CORRECTED_BOUND_NS.
In each, four scenarios (guest.py): stop/cont, savevm/loadvm, a
TSC-rewriting resume, and a live migration to a second QEMU (the guest
lives there after it). What the guest saw is also written as JSON to
$RG_RESULTS (the README's tables, `make demo-guest`).
"""

import json
import os
import shutil
import signal
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, HERE)
from hvtest import EMULATED, Hvguard, HvguardError, Tap, pin_dir  # noqa: E402
from guest import SCENARIOS, Guest, run_scenario  # noqa: E402

PAUSE = float(os.environ.get("RG_PAUSE", "3"))
# The pause as the guest lost it, against the pause measured here (QMP
# replies): under TCG each QMP round trip and savevm's own work add tens of
# ms to hundreds, so 10% there, as the qemu stage; 5% on hardware.
TOLERANCE = 0.10 if EMULATED else 0.05
AGREE = 0.01  # hvguard's alert against what the guest saw
ALERT_WAIT = 60 if EMULATED else 10  # s, for the destination's verdict
# What a corrected guest may still see of a step, in either clock. The
# repair's KVM_SET_CLOCK{KVM_CLOCK_REALTIME} lands ahead by KVM's gap
# between its two samples (the master clock's snapshot, then realtime),
# which TCG stretches: the guest saw +4 to +194 us here over two runs
# (hvguard's own residual_ns agreeing), the vmm stage a tail past 100 us,
# issue 12's run +0.29 ms. L1's realtime and raw clocks drift 2 ppm apart there, so
# the injection's time counts for nothing. 1 ms: 3x the largest seen.
# On hardware: 100 us.
CORRECTED_BOUND_NS = int(os.environ.get("RG_BOUND_NS", "1000000" if EMULATED else "100000"))
MODES = os.environ.get("RG_MODES", "without alerting corrected").split()
SCENARIO_NAMES = os.environ.get("RG_SCENARIOS", ",".join(l for l, _ in SCENARIOS)).split(",")

tap = Tap()
results = {"pause_s": PAUSE, "emulated": EMULATED, "modes": {}}


def within(value, target, tol):
    return value is not None and target is not None and abs(value - target) <= tol * abs(target)


def ms(ns):
    if ns is None:
        return "none"
    return "0" if abs(ns) < 500 else f"{ns / 1e6:+.3f} ms"


def hv_lines(hv, pid, t0, t1):
    with hv.cond:
        return [o for o in hv.lines if o.get("pid") == pid and t0 <= o["_t"] <= t1
                and o.get("type") in ("alert", "correction")]


def boot(name, tmp, kernel, initrd):
    g = Guest(name, tmp, kernel, initrd)
    ready = g.wait_ready()
    if not tap.ok(f"{name}: the guest boots and calibrates its TSC", ready is not None,
                  "an 'RG ready' line", g.tail()):
        g.quit()
        return None
    tap.note(f"{name}: guest ready after {g.boot_s:.0f} s: {ready}")
    g.tsc_hz = ready.get("tsc_hz")
    for _, line in g.lines():
        if line.startswith(("RG init", "RG dmesg", "RG insmod", "RG ptp")):
            tap.note(f"{name}: guest: {line}")
    init = [l for _, l in g.lines() if l.startswith("RG init ")]
    tap.ok(f"{name}: the guest's clocksource is kvm-clock",
           any("clocksource=kvm-clock" in l for l in init), "kvm-clock", init)
    tap.ok(f"{name}: the guest reads the host's realtime through /dev/ptp0 (ptp_kvm)",
           ready.get("ptp") in ("precise", "sys-offset"), "precise or sys-offset",
           f"{ready.get('ptp')}; {[l for _, l in g.lines() if 'insmod' in l or 'ptp' in l]}")
    return g


def judge(mode, label, rec, hv_out, tsc_hz):
    """The assertions on one scenario in one mode."""
    name = f"{mode}: {label}"
    ev = rec["event"]
    pause = rec["pause_ns"]
    if not tap.ok(f"{name}: the guest printed what it saw after the resume", ev is not None,
                  "an ev=1 sample", rec["events"]):
        return
    dskew, doff = ev.get("dskew_ns"), ev.get("doff_ns")
    tap.note(f"{name}: pause {ms(pause)} here; the guest saw kvm-clock - TSC {ms(dskew)}, "
             f"realtime - host {ms(doff)}, {ev.get('gap_tsc_ms')} ms of TSC between "
             f"its samples; {len(rec['events'])} event sample(s) in the window")
    alerts = [o for o in hv_out if o["type"] == "alert"]
    corr = [o for o in hv_out if o["type"] == "correction"]
    for a in alerts:
        keep = ("rule", "jump_ns", "offset_before", "offset_after", "tsc_written")
        tap.note(f"{name}: hvguard: {({k: a.get(k) for k in keep if k in a})}")
    for c in corr:
        tap.note(f"{name}: correction {c.get('rule')} {c.get('result')} residual_ns "
                 f"{c.get('residual_ns')} frozen_ns {c.get('frozen_ns')}")
    if mode in ("without", "alerting"):
        lost = -doff if doff is not None else None
        if label == "live migration":
            # The kvm-clock QEMU read at the source's save comes back at
            # the destination's cont: the guest loses the wait and the
            # final transfer, at most the source's STOP to the RESUME.
            tap.ok(f"{name}: the guest's realtime fell behind the host's by the downtime "
                   f"(at least the {PAUSE:g} s wait, at most STOP to RESUME, {TOLERANCE:.0%})",
                   lost is not None
                   and PAUSE * 1e9 * (1 - TOLERANCE) <= lost <= pause * (1 + TOLERANCE),
                   f"{ms(-pause)} .. {ms(-PAUSE * 1e9)}", ms(doff))
            # The TSC is written at the end of the load and runs during the
            # wait, the kvm-clock only from cont: the kvm-clock falls behind
            # the TSC by the wait less what the load's end took after the
            # source's save (2.4-2.9 s for a 3 s wait under nested TCG).
            tap.ok(f"{name}: the guest's kvm-clock fell behind its TSC by most of the "
                   f"{PAUSE:g} s wait (QEMU writes the TSC before it, the kvm-clock after)",
                   dskew is not None and -dskew >= PAUSE * 1e9 / 2,
                   f"<= {ms(-PAUSE * 1e9 / 2)}", ms(dskew))
        elif label == "savevm/loadvm":
            # The snapshot keeps the kvm-clock QEMU reads as it saves the
            # device state, after the RAM: the guest loses the PAUSE s it
            # ran on after the snapshot and loadvm's time, not savevm's.
            tap.ok(f"{name}: the guest's realtime fell behind the host's by the time since "
                   f"the snapshot (at least the {PAUSE:g} s it ran on, at most the whole "
                   f"scenario)", lost is not None
                   and PAUSE * 1e9 * (1 - TOLERANCE) <= lost <= pause * (1 + TOLERANCE),
                   f"{ms(-pause)} .. {ms(-PAUSE * 1e9)}", ms(doff))
        else:
            tap.ok(f"{name}: the guest's realtime fell behind the host's by the pause "
                   f"(within {TOLERANCE:.0%})", within(lost, pause, TOLERANCE),
                   f"{ms(-pause)}", ms(doff))
        if label == "stop/cont":
            tap.ok(f"{name}: the guest's kvm-clock fell behind its TSC by the pause "
                   f"(within {TOLERANCE:.0%})", within(-dskew, pause, TOLERANCE),
                   f"{ms(-pause)}", ms(dskew))
        if label == "TSC-rewriting resume":
            tap.ok(f"{name}: the guest's TSC went back with its kvm-clock (their step "
                   f"under {TOLERANCE:.0%} of the pause)",
                   dskew is not None and abs(dskew) < TOLERANCE * pause,
                   f"|step| < {ms(TOLERANCE * pause)}", ms(dskew))
    if mode == "without":
        tap.eq(f"{name}: no hvguard, nothing corrected", corr, [])
    if mode == "alerting" and label == "live migration":
        judge_migration_alert(name, alerts, doff, dskew)
        tap.eq(f"{name}: alerting only: nothing corrected", corr, [])
    elif mode == "alerting":
        jumps = [a for a in alerts if a.get("rule") == "kvmclock-jump"]
        total = sum(a.get("jump_ns") or 0 for a in jumps)
        if tap.ok(f"{name}: hvguard raised kvmclock-jump", bool(jumps), "an alert",
                  [a.get("rule") for a in alerts]):
            tap.ok(f"{name}: hvguard's jump_ns (sum: {ms(total)}) agrees with the step of the "
                   f"guest's realtime within {AGREE:.0%}", within(total, doff, AGREE),
                   ms(doff), ms(total))
        # What the guest saw of its TSC against the host's time: its realtime
        # step less its kvm-clock-against-TSC step. hvguard's offset moves,
        # in the guest's own calibrated cycles, must say the same.
        moves = [a["offset_after"] - a["offset_before"] for a in alerts
                 if a.get("rule") == "tsc-offset-change"]
        dtsc = doff - dskew if doff is not None and dskew is not None else None
        if label == "stop/cont":
            tap.eq(f"{name}: the guest's TSC ran on, and hvguard saw no TSC offset move",
                   moves, [])
        elif tap.ok(f"{name}: hvguard raised tsc-offset-change", bool(moves), "an alert",
                    [a.get("rule") for a in alerts]):
            seen = sum(moves) / tsc_hz * 1e9 if tsc_hz else None
            tap.ok(f"{name}: the offset's move ({ms(seen)} at the guest's "
                   f"{(tsc_hz or 0) / 1e9:.6f} GHz) agrees with the step of the guest's TSC "
                   f"within {AGREE:.0%}", within(seen, dtsc, AGREE), ms(dtsc), ms(seen))
        tap.eq(f"{name}: alerting only: nothing corrected", corr, [])
    if mode == "corrected":
        tap.ok(f"{name}: hvguard corrected, every correction applied",
               bool(corr) and all(c.get("result") == "applied" for c in corr),
               "applied", [(c.get("rule"), c.get("result"), c.get("reason")) for c in corr])
        bound = CORRECTED_BOUND_NS
        tap.ok(f"{name}: the guest's kvm-clock kept with its TSC within {ms(bound)}",
               dskew is not None and abs(dskew) <= bound, f"|step| <= {ms(bound)}", ms(dskew))
        tap.ok(f"{name}: the guest's realtime kept with the host's within {ms(bound)}",
               doff is not None and abs(doff) <= bound, f"|step| <= {ms(bound)}", ms(doff))


# The guest's TSC step against hvguard's tsc_warp_ns: 1%, and no tighter
# than 0.5 ms, what the guest's own samples can tell apart when the step
# is the transfer's tens of ms (ptp's realtime against the TSC it reads
# a few us apart, TCG stretching those).
TSC_FLOOR_NS = 500_000


def judge_migration_alert(name, alerts, doff, dskew):
    """hvguard's migration-clock-warp against what the guest saw."""
    warps = [a for a in alerts if a.get("rule") == "migration-clock-warp"]
    if not tap.ok(f"{name}: hvguard raised one migration-clock-warp for the destination",
                  len(warps) == 1, "one", [a.get("rule") for a in alerts]):
        return
    a = warps[0]
    tap.note(f"{name}: hvguard: downtime_ns {a.get('downtime_ns')}, kvmclock_warp_ns "
             f"{a.get('kvmclock_warp_ns')}, tsc_warp_ns {a.get('tsc_warp_ns')}, source "
             f"{(a.get('source') or {}).get('pid')}")
    kw, tw = a.get("kvmclock_warp_ns"), a.get("tsc_warp_ns")
    tap.ok(f"{name}: kvmclock_warp_ns ({ms(kw)}) agrees with the step of the guest's "
           f"realtime within {AGREE:.0%}", within(kw, doff, AGREE), ms(doff), ms(kw))
    dtsc = doff - dskew if doff is not None and dskew is not None else None
    tap.ok(f"{name}: tsc_warp_ns ({ms(tw)}) agrees with the step of the guest's TSC within "
           f"{AGREE:.0%} or {TSC_FLOOR_NS / 1e6:g} ms",
           tw is not None and dtsc is not None
           and abs(tw - dtsc) <= max(AGREE * abs(dtsc), TSC_FLOOR_NS), ms(dtsc), ms(tw))


def run_mode(mode, tmp, kernel, initrd):
    hv = None
    out = results["modes"].setdefault(mode, {})
    if mode != "without":
        args = ["--pin-dir", pin_dir(f"rg-{mode}")] + (["--correct"] if mode == "corrected" else [])
        try:
            hv = Hvguard(args, log=os.path.join(tmp, f"hvguard-{mode}.err"),
                         ready_timeout=120 if EMULATED else 30)
        except HvguardError as e:
            tap.fail(f"{mode}: hvguard starts", str(e))
            return
        tap.ok(f"{mode}: hvguard starts", True)
    g = None
    try:
        g = boot(f"{mode}", tmp, kernel, initrd)
        if g is None:
            return
        if hv:
            with hv.cond:
                seen = [{k: o.get(k) for k in ("type", "event", "rule", "match", "result")}
                        for o in hv.lines if o.get("pid") == g.pid]
            tap.note(f"{mode}: hvguard's lines about the guest's QEMU at boot: {seen}")
        out["boot_s"] = round(g.boot_s)
        time.sleep(2)
        for label, fn in SCENARIOS:
            if label not in SCENARIO_NAMES:
                continue
            t0 = time.monotonic()
            try:
                rec = run_scenario(g, fn, PAUSE)
            except Exception as e:  # noqa: BLE001 - a scenario that cannot run fails
                tap.fail(f"{mode}: {label}: ran", f"{type(e).__name__}: {e}")
                continue
            time.sleep(1)
            if hv and label == "live migration":
                # The daemon decides at the arrival's first entry, after
                # matching it against every paused VM on the host: under
                # nested TCG with both cores busy that can take seconds.
                hv.wait_for(lambda o: o["_t"] >= t0 and o.get("pid") == g.pid and (
                    o.get("type") == "alert" or o.get("event") == "migration"), ALERT_WAIT)
            g.quit_source()
            hv_out = hv_lines(hv, g.pid, t0, time.monotonic()) if hv else []
            if hv and label == "live migration":
                with hv.cond:
                    seen = [{k: o.get(k) for k in ("type", "event", "rule", "pid", "match",
                                                   "result", "reason", "candidates")}
                            for o in hv.lines if o["_t"] >= t0 and o.get("type") != "alert"]
                tap.note(f"{mode}: {label}: hvguard's other lines: {seen}")
            rec["hvguard"] = [{k: v for k, v in o.items() if k != "_t"} for o in hv_out]
            out[label] = rec
            judge(mode, label, rec, hv_out, g.tsc_hz)
    finally:
        if g:
            g.quit()
            with open(os.path.join(tmp, f"{mode}.serial.copy"), "w") as f:
                f.write(g.log())
        if hv:
            hv.stop_and_check(tap)


def table():
    """What the guest saw, per scenario, one row per mode: markdown, as in
    the README (and `make demo-guest`), each line a TAP comment."""
    for label, _ in SCENARIOS:
        if label not in SCENARIO_NAMES:
            continue
        tap.note(f"table: **{label}** ({PAUSE:g} s)")
        tap.note("table: | mode | the host's pause (QMP) | guest: kvm-clock - TSC | "
                 "guest: realtime - host | guest: TSC - host | hvguard said |")
        tap.note("table: |---|---:|---:|---:|---:|---|")
        for mode in MODES:
            rec = results["modes"].get(mode, {}).get(label)
            if not rec or not rec.get("event"):
                tap.note(f"table: | {mode} | (no record) | | | | |")
                continue
            ev = rec["event"]
            dskew, doff = ev.get("dskew_ns"), ev.get("doff_ns")
            dtsc = doff - dskew if doff is not None and dskew is not None else None
            said = []
            for o in rec.get("hvguard", []):
                if o.get("type") == "alert" and o.get("jump_ns") is not None:
                    said.append(f"{o.get('rule')} {ms(o.get('jump_ns'))}")
                elif o.get("type") == "alert" and o.get("kvmclock_warp_ns") is not None:
                    said.append(f"{o.get('rule')}: kvmclock {ms(o['kvmclock_warp_ns'])}, "
                                f"TSC {ms(o.get('tsc_warp_ns'))}, downtime "
                                f"{ms(o.get('downtime_ns'))}")
                elif o.get("type") == "alert" and o.get("offset_before") is not None:
                    moved = o["offset_after"] - o["offset_before"]
                    said.append(f"{o.get('rule')} {moved / 1e9:+.1f}G cycles")
                elif o.get("type") == "alert":
                    said.append(o.get("rule"))
                elif o.get("residual_ns") is not None:
                    said.append(f"corrected ({o.get('result')}, residual "
                                f"{o['residual_ns'] / 1e3:.1f} us)")
                else:
                    said.append(f"corrected ({o.get('result')})")
            tap.note(f"table: | {mode} | {rec['pause_ns'] / 1e6:.0f} ms | {ms(dskew)} | "
                     f"{ms(doff)} | {ms(dtsc)} | {'; '.join(said) or '-'} |")


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    kernel, initrd = sys.argv[1], sys.argv[2]
    given = os.environ.get("RG_TMP")
    tmp = given or tempfile.mkdtemp(prefix="hvguard-rg-")
    t0 = time.monotonic()
    try:
        for mode in MODES:
            try:
                run_mode(mode, tmp, kernel, initrd)
            except Exception as e:  # noqa: BLE001 - a mode that cannot run fails
                tap.fail(f"{mode}: ran to the end", f"{type(e).__name__}: {e}")
        table()
        results["seconds"] = round(time.monotonic() - t0)
        path = os.environ.get("RG_RESULTS")
        if path:
            with open(path, "w") as f:
                json.dump(results, f, indent=1, default=str)
    finally:
        if not given:
            shutil.rmtree(tmp, ignore_errors=True)
    return tap.exit_code()


if __name__ == "__main__":
    sys.exit(main())
