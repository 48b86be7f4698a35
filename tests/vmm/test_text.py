#!/usr/bin/env python3
"""Text output from the attacker's side: a VMM names its VM with a newline
and a forged alert after it (QEMU takes any -name). The readable output must
show it escaped on the alert's own line, never as a line of its own."""

import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from hvtest import HOOKS, Tap, orphan_proof  # noqa: E402
from polling import wait_until  # noqa: E402
from test_vmm import run_vmm  # noqa: E402

HV = os.environ.get("HVGUARD", "build/hvguard")
FORGED = "2026-01-01T00:00:00Z critical forged[1]: all is well"
tap = Tap()


def main():
    args = [HV, "run", "--no-pin"] + (["--hooks", HOOKS] if HOOKS else [])
    hv = subprocess.Popen(orphan_proof(args, "TERM"), stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True)
    out = []
    try:
        line = hv.stdout.readline()
        while line and "watching" not in line:
            out.append(line)
            line = hv.stdout.readline()
        pid, _, _ = run_vmm(["qemu-stopcont", "--pause-ms", "300",
                             "-name", "guest=evil\n" + FORGED])
        time.sleep(0.5)
    finally:
        hv.send_signal(signal.SIGINT)
        rest, _ = hv.communicate(timeout=30)
        out.extend(rest.splitlines(keepends=True))
    lines = [l.rstrip("\n") for l in out]
    alert = [l for l in lines if f"[{pid}]" in l and "kvmclock-jump" in l]
    tap.eq("text output: the alert is one line", len(alert), 1)
    tap.ok("text output: the VM's name is shown with its newline escaped",
           alert and "evil\\x0a" + FORGED in alert[0], "evil\\x0a...", alert)
    tap.eq("text output: no forged line", [l for l in lines if l.startswith(FORGED)], [])
    return tap.exit_code()


if __name__ == "__main__":
    sys.exit(main())
