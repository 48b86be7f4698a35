#!/usr/bin/env python3
"""State pinned under bpffs survives a daemon restart: a pause that began
under one hvguard is caught at the resume by the next one, with the whole
pause length; and a fresh daemon sweeps the state of VMMs gone meanwhile."""

import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from hvtest import Hvguard, HvguardError, Tap  # noqa: E402
from polling import wait_until  # noqa: E402
from test_vmm import within  # noqa: E402

TOOLS = os.environ.get("HVGUARD_TOOLS", "build/tests")
MINIVMM = os.path.join(TOOLS, "minivmm")
tap = Tap()


def owners(pins):
    """The owner pids of the VMs in the pinned state."""
    out = subprocess.run(["bpftool", "-j", "map", "dump", "pinned", pins + "/hv_clock_vms"],
                         capture_output=True, text=True).stdout
    return [e.get("formatted", e)["value"]["owner_tgid"] for e in json.loads(out or "[]")]


def main():
    with tempfile.TemporaryDirectory(prefix="hvguard-restart-") as tmp:
        pins = "/sys/fs/bpf/hvguard-test-%d" % os.getpid()
        args = ["--pin-dir", pins]
        vmm = None
        try:
            t0 = time.monotonic()
            first = Hvguard(args, log=os.path.join(tmp, "first.err"))
            # The pause must outlast a stop and a start of the daemon: 3 s
            # on a real KVM, more where loading takes longer (nested TCG).
            pause_ms = max(3000, int((time.monotonic() - t0) * 3000) + 2000)
            tap.note(f"daemon ready in {time.monotonic() - t0:.1f} s: pause of {pause_ms} ms")
            vmm = subprocess.Popen([MINIVMM, "qemu-stopcont", "--pause-ms", str(pause_ms)],
                                   stdout=subprocess.PIPE, text=True)
            # The VMM says when its stop ioctls are done; the daemon knew the
            # VM before (its vm-new event, with the id it must keep).
            stopped = vmm.stdout.readline()
            tap.ok("the VMM stops its VM under the first daemon", '"stopped"' in stopped,
                   "a stopped line", stopped)
            paused = first.wait_for(lambda o: o.get("event") == "vm-new"
                                    and o.get("pid") == vmm.pid, 20)
            tap.ok("the first daemon knew the VM", paused is not None, "vm-new", None)
            status, _ = first.stop()
            tap.eq("the first daemon stops cleanly mid-pause", status, 0)
            second = Hvguard(args, log=os.path.join(tmp, "second.err"))
            out, _ = vmm.communicate(timeout=60)
            cycle = next(json.loads(line) for line in out.splitlines() if '"cycle"' in line)
            alert = second.wait_for(lambda o: o.get("type") == "alert"
                                    and o.get("pid") == vmm.pid, 5)
            tap.ok("the restarted daemon catches the resume", alert is not None
                   and alert["rule"] == "kvmclock-jump", "kvmclock-jump", alert)
            seen_pause = second.hooks in ("syscalls", "fentry")  # KVM_GET_CLOCK
            if alert and seen_pause:
                tap.ok("with the whole pause, begun before the restart",
                       within(alert["paused_ns"] or 0, cycle["pause_ns"], 0.05),
                       cycle["pause_ns"], alert["paused_ns"])
            if alert and not seen_pause:
                tap.eq("paused_ns null on this tier", alert["paused_ns"], None)
                tap.ok("and the rewind it caused",
                       within(alert["jump_ns"], -cycle["pause_ns"], 0.05),
                       -cycle["pause_ns"], alert["jump_ns"])
            tap.eq("the VM keeps its id across the restart", alert and alert["vm"],
                   paused and paused["vm"])
            # A VMM that exits while no daemon runs: the next one forgets it.
            held = subprocess.Popen([MINIVMM, "vm-exit-midpause", "--pause-ms", "50",
                                     "--hold-ms", "1500"], stdout=subprocess.PIPE, text=True)
            held.stdout.readline()  # its stop is done
            seen = second.wait_for(lambda o: o.get("event") == "vm-new"
                                   and o.get("pid") == held.pid, 20)
            status, summary = second.stop()
            tap.eq("the second daemon stops cleanly", status, 0)
            held.communicate(timeout=60)
            tap.ok("a VMM known to a daemon that exits while none runs leaves pinned state",
                   seen is not None and held.pid in owners(pins), held.pid, owners(pins))
            third = Hvguard(args, log=os.path.join(tmp, "third.err"))
            tap.ok("the next daemon sweeps it at start", held.pid not in owners(pins),
                   "gone", owners(pins))
            status, summary = third.stop()
            tap.eq("the third daemon stops cleanly", status, 0)
        except HvguardError as e:
            tap.fail("daemon restart", str(e))
        finally:
            if vmm and vmm.poll() is None:
                vmm.kill()
            subprocess.run(["rm", "-rf", pins])
    return tap.exit_code()


if __name__ == "__main__":
    sys.exit(main())
