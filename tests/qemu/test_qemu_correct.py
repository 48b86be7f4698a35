#!/usr/bin/env python3
"""Corrections on real QEMU: `hvguard run --correct` repairs the kvmclock
inside QEMU at every cont, and QEMU keeps working: after 100 corrected
stop/cont cycles it still answers QMP and its vCPUs still answer (each
must service `info registers`, which QEMU runs on the vCPU's own thread).
A correction that cannot be applied because QEMU died first is reported as
refused, and the daemon carries on."""

import os
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from hvtest import EMULATED, HOOKS, Hvguard, HvguardError, Qemu, Tap, pin_dir  # noqa: E402
from polling import wait_until  # noqa: E402

CYCLES = int(os.environ.get("HVGUARD_QEMU_CYCLES", "100"))
tap = Tap()


def corrections(hv, pid):
    with hv.cond:
        return [o for o in hv.lines if o.get("type") == "correction" and o.get("pid") == pid]


def state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def busy_bios(tmp):
    """A 64 KiB BIOS image whose only work is to enable kvmclock (PVTI at
    0x1000) and spin with interrupts off: a guest whose vCPU always runs,
    as a running OS's does. SeaBIOS, the default, ends up halted for good
    once it finds nothing to boot, and a vCPU that never enters the guest
    again has no clock to check: on the kvm-tracepoints tier the check
    comes before the guest runs, so a guest must run."""
    code = bytes([0xfa,                                 # cli
                  0x66, 0xb9, 0x01, 0x4d, 0x56, 0x4b,   # mov ecx, MSR_KVM_SYSTEM_TIME_NEW
                  0x66, 0xb8, 0x01, 0x10, 0x00, 0x00,   # mov eax, 0x1001
                  0x66, 0x31, 0xd2,                     # xor edx, edx
                  0x0f, 0x30,                           # wrmsr
                  0xeb, 0xfe])                          # jmp $
    image = bytearray(0x10000)
    image[0xff00:0xff00 + len(code)] = code
    image[0xfff0:0xfff2] = bytes([0xe9, 0x0d])          # jmp near 0xff00 (rel16 -0xf3)
    image[0xfff2] = 0xff
    path = os.path.join(tmp, "busy-bios.bin")
    with open(path, "wb") as f:
        f.write(image)
    return path


def settled(hv, pid, at_least, timeout):
    """Waits for at least that many corrections, then until none came for
    a second (on kvm-tracepoints, clock changes the guest did not run in
    between are seen, and corrected, as one)."""
    wait_until(lambda: len(corrections(hv, pid)) >= at_least, timeout)
    n = -1
    while n != len(corrections(hv, pid)):
        n = len(corrections(hv, pid))
        time.sleep(1)
    return corrections(hv, pid)


def hundred_cycles(hv, tmp):
    name = f"{CYCLES} corrected stop/cont cycles"
    vm = Qemu("corrected", tmp, extra=("-bios", busy_bios(tmp)))
    try:
        vm.cmd("cont")
        time.sleep(0.3)
        for _ in range(CYCLES):
            vm.cmd("stop")
            time.sleep(0.02)
            vm.cmd("cont")
        at_set_clock = HOOKS in ("syscalls", "fentry")
        corr = settled(hv, vm.pid, CYCLES if at_set_clock else 1, 30)
        alerts = hv.alerts(lambda a: a["pid"] == vm.pid)
        if at_set_clock:  # decided at each KVM_SET_CLOCK
            tap.eq(f"{name}: one correction per cont", len(corr), CYCLES)
        else:  # decided before the guest runs: conts it did not run between are one
            tap.ok(f"{name}: one correction per alert, at most one per cont",
                   0 < len(corr) == len(alerts) <= CYCLES, f"1..{CYCLES}, as many as alerts",
                   (len(corr), len(alerts)))
        tap.eq(f"{name}: all applied", sorted({c["result"] for c in corr}), ["applied"])
        res = [c["residual_ns"] for c in corr if c.get("residual_ns") is not None]
        if EMULATED:  # see tests/vmm/test_correct.py: KVM's samples under TCG
            tap.ok(f"{name}: kvmclock offset restored: median |residual| < 50 us",
                   len(res) == len(corr) and statistics.median(abs(r) for r in res) < 50_000,
                   "< 50 us", res[:5])
        else:
            tap.ok(f"{name}: kvmclock offset restored within 10 us each time",
                   len(res) == len(corr) and all(abs(r) < 10_000 for r in res), "< 10 us",
                   res[:5])
        frozen = sorted(c["frozen_ns"] for c in corr)
        if frozen:
            tap.note(f"QEMU frozen per correction: p50 {statistics.median(frozen) / 1e6:.2f} ms, "
                     f"p99 {frozen[int(0.99 * (len(frozen) - 1))] / 1e6:.2f} ms, "
                     f"max {frozen[-1] / 1e6:.2f} ms")
        status = vm.cmd("query-status")
        tap.eq(f"{name}: QEMU still answers QMP and runs", status.get("status"), "running")
        regs = vm.cmd("human-monitor-command", **{"command-line": "info registers -a"})
        tap.eq(f"{name}: both vCPU threads still service requests (info registers)",
               (regs.count("CPU#"), regs.count("IP=")), (2, 2))
        before = len(corrections(hv, vm.pid))
        vm.cmd("stop")
        time.sleep(0.2)
        vm.cmd("cont")
        one_more = wait_until(lambda: len(corrections(hv, vm.pid)) > before, 10)
        tap.ok(f"{name}: the next pause is still caught and corrected", one_more,
               "another correction", len(corrections(hv, vm.pid)))
        tap.eq(f"{name}: only kvmclock-jump was raised",
               sorted({a["rule"] for a in hv.alerts(lambda a: a["pid"] == vm.pid)}),
               ["kvmclock-jump"])
    finally:
        vm.quit()


def qemu_dies_first(tmp):
    """The daemon is held (SIGSTOP) so that QEMU, frozen by BPF at its
    KVM_SET_CLOCK, can be killed before the daemon reaches it."""
    name = "QEMU killed before its correction"
    hv = Hvguard(["--pin-dir", pin_dir("dies"), "--correct"], log=os.path.join(tmp, "dies.err"))
    vm = Qemu("dies", tmp, extra=("-bios", busy_bios(tmp)))
    try:
        vm.cmd("cont")
        time.sleep(0.3)
        vm.cmd("stop")
        os.kill(hv.proc.pid, signal.SIGSTOP)
        # cont's reply never comes: QEMU is frozen inside it.
        threading.Thread(target=lambda: _ignore(vm.cmd, "cont"), daemon=True).start()
        frozen = wait_until(lambda: state(vm.pid) == "T", 10)
        tap.ok(f"{name}: BPF froze QEMU at KVM_SET_CLOCK by itself", frozen, "T",
               state(vm.pid))
        os.kill(vm.pid, signal.SIGKILL)
        vm.proc.wait(10)
        os.kill(hv.proc.pid, signal.SIGCONT)
        corr = wait_until(lambda: corrections(hv, vm.pid), 10) or []
        tap.eq(f"{name}: reported as refused", [c["result"] for c in corr], ["refused"])
        # Under TCG the kill and the SIGCONT can take longer than the
        # watchdog's 500 ms: then the watchdog let the (dead) VMM go first.
        words = ("exited", "gone") + (("watchdog",) if EMULATED else ())
        tap.ok(f"{name}: the reason says QEMU is gone",
               corr and any(w in (corr[0].get("reason") or "") for w in words),
               "/".join(words), corr)
    finally:
        try:
            os.kill(hv.proc.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
        vm.kill()
        status, _ = hv.stop()
    tap.eq(f"{name}: hvguard still exits 0", status, 0)


def _ignore(fn, *args):
    try:
        fn(*args)
    except Exception:  # noqa: BLE001 - QEMU is killed under this call
        pass


def main():
    given = os.environ.get("HVGUARD_QEMU_TMP")
    tmp = given or tempfile.mkdtemp(prefix="hvguard-qemu-")
    try:
        return run(tmp)
    finally:
        if not given:
            shutil.rmtree(tmp, ignore_errors=True)


def run(tmp):
    # 100 cycles in a few seconds would trip the default rate limit (30 per
    # VM and minute), which exists to stop correction loops: raise it here.
    rules = os.path.join(tmp, "many-corrections.yaml")
    with open(rules, "w") as f:
        f.write("rules:\n  kvmclock-jump:\n    max_corrections_per_min: 1000\n")
    try:
        hv = Hvguard(["--pin-dir", pin_dir("correct"), "--correct", "--rules", rules],
                     log=os.path.join(tmp, "correct.err"))
    except HvguardError as e:
        tap.fail("hvguard --correct starts", str(e))
        return 1
    try:
        hundred_cycles(hv, tmp)
    except Exception as e:  # noqa: BLE001 - a test that cannot run fails
        tap.fail("corrected stop/cont cycles", repr(e))
    finally:
        status, _ = hv.stop()
    tap.eq("hvguard --correct exits 0", status, 0)
    try:
        qemu_dies_first(tmp)
    except Exception as e:  # noqa: BLE001
        tap.fail("QEMU killed before its correction", repr(e))
    return tap.exit_code()


if __name__ == "__main__":
    sys.exit(main())
