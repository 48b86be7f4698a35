#!/usr/bin/env python3
"""make bench, corrections: how long the VMM stays frozen per correction
(the BPF side stops it at KVM_SET_CLOCK, the daemon repairs the clock inside
it and lets it go), and the skew the guest sees after each repair, over
FREEZE_CYCLES QEMU-style stop/cont cycles of the mini VMM. Prints one
markdown table; the raw lines go to build/bench/freeze.jsonl."""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time

HV = os.environ.get("HVGUARD", "build/hvguard")
MINIVMM = os.path.join(os.environ.get("HVGUARD_TOOLS", "build/tests"), "minivmm")
CYCLES = int(os.environ.get("FREEZE_CYCLES", "100"))
OUT = "build/bench/freeze.jsonl"


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def main():
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as rules:
        # The default rate limit (30 per VM and minute) stops loops; lift it.
        rules.write("rules:\n  kvmclock-jump:\n    max_corrections_per_min: 100000\n")
    daemon = subprocess.Popen([HV, "run", "--json", "--correct", "--no-pin", "--rules",
                               rules.name], stdout=subprocess.PIPE, text=True)
    lines, ready = [], threading.Event()

    def drain():  # a daemon whose stdout is not read blocks on it
        for line in daemon.stdout:
            if '"type":"ready"' in line:
                ready.set()
            if line.startswith("{"):
                lines.append(json.loads(line))

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    if not ready.wait(60):
        print("bench: hvguard did not become ready", file=sys.stderr)
        daemon.kill()
        return 1
    vmm = subprocess.run([MINIVMM, "qemu-stopcont", "--pause-ms", "20", "--cycles",
                          str(CYCLES)], capture_output=True, text=True, timeout=600)
    time.sleep(0.5)
    daemon.send_signal(2)
    daemon.wait(30)
    reader.join(10)
    os.unlink(rules.name)
    cycles = [json.loads(l) for l in vmm.stdout.splitlines() if '"cycle"' in l]
    corr = [o for o in lines if o.get("type") == "correction"]
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        for o in corr + cycles:
            f.write(json.dumps(o) + "\n")
    applied = [c for c in corr if c["result"] == "applied"]
    if vmm.returncode or len(applied) != CYCLES or len(cycles) != CYCLES:
        print(f"bench: freeze run incomplete: minivmm exit {vmm.returncode}, "
              f"{len(applied)}/{CYCLES} corrections applied", file=sys.stderr)
        return 1
    frozen = [c["frozen_ns"] / 1e6 for c in applied]
    skew = [abs(c["skew_ns"]) / 1e3 for c in cycles]
    print(f"### Corrections ({CYCLES} QEMU-style stop/cont cycles, mini VMM, --correct)\n")
    print("| | p50 | p99 | max |")
    print("|---|---:|---:|---:|")
    print(f"| VMM frozen per correction (ms) | {pct(frozen, .5):.2f} | {pct(frozen, .99):.2f} "
          f"| {max(frozen):.2f} |")
    print(f"| guest-observed \\|skew\\| after the repair (us) | {pct(skew, .5):.2f} | "
          f"{pct(skew, .99):.2f} | {max(skew):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
