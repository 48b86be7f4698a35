#!/usr/bin/env python3
"""State pinned under bpffs survives a daemon restart: a pause that began
under one hvguard is caught at the resume by the next one, with the whole
pause length; and a fresh daemon sweeps the state of VMMs gone meanwhile."""

import json
import os
import subprocess
import sys
import tempfile

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
            first = Hvguard(args, log=os.path.join(tmp, "first.err"))
            vmm = subprocess.Popen([MINIVMM, "qemu-stopcont", "--pause-ms", "3000"],
                                   stdout=subprocess.PIPE, text=True)
            paused = first.wait_for(lambda o: o.get("event") == "pause"
                                    and o.get("pid") == vmm.pid, 20)
            tap.ok("the first daemon sees the pause begin", paused is not None, "pause", None)
            status, _ = first.stop()
            tap.eq("the first daemon stops cleanly mid-pause", status, 0)
            second = Hvguard(args, log=os.path.join(tmp, "second.err"))
            out, _ = vmm.communicate(timeout=60)
            cycle = next(json.loads(line) for line in out.splitlines() if '"cycle"' in line)
            alert = second.wait_for(lambda o: o.get("type") == "alert"
                                    and o.get("pid") == vmm.pid, 5)
            tap.ok("the restarted daemon catches the resume", alert is not None
                   and alert["rule"] == "kvmclock-jump", "kvmclock-jump", alert)
            if alert:
                tap.ok("with the whole pause, begun before the restart",
                       within(alert["paused_ns"], cycle["pause_ns"], 0.05),
                       cycle["pause_ns"], alert["paused_ns"])
                tap.ok("and the rewind it caused",
                       within(alert["jump_ns"], -cycle["pause_ns"], 0.05),
                       -cycle["pause_ns"], alert["jump_ns"])
            tap.eq("the VM keeps its id across the restart", alert and alert["vm"],
                   paused and paused["vm"])
            # A VMM that exits while no daemon runs: the next one forgets it.
            held = subprocess.Popen([MINIVMM, "vm-exit-midpause", "--pause-ms", "50",
                                     "--hold-ms", "1500"], stdout=subprocess.PIPE, text=True)
            seen = second.wait_for(lambda o: o.get("event") == "pause"
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
