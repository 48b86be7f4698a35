#!/usr/bin/env python3
"""`hvguard audit`: a one-shot look at the VMs on the host, exit 1 on
violations. A mini VMM whose vCPUs were given different TSC offsets must
be found; a clean one must not."""

import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from hvtest import Hvguard, HvguardError, Tap  # noqa: E402
from polling import wait_until  # noqa: E402

TOOLS = os.environ.get("HVGUARD_TOOLS", "build/tests")
MINIVMM = os.path.join(TOOLS, "minivmm")
HV = os.environ.get("HVGUARD", "build/hvguard")
tap = Tap()


def audit():
    p = subprocess.run([HV, "audit", "--json"], capture_output=True, text=True, timeout=60)
    return p.returncode, json.loads(p.stdout) if p.stdout.startswith("{") else None


def held_vmm(scenario, hv):
    vmm = subprocess.Popen([MINIVMM, scenario, "--hold-ms", "4000"],
                           stdout=subprocess.PIPE, text=True)
    hv.wait_for(lambda o: o.get("type") == "event" and o.get("pid") == vmm.pid, 10)
    wait_until(lambda: vmm.stdout and '"done"' in (vmm.stdout.readline() or ""), 10)
    return vmm


def main():
    with tempfile.TemporaryDirectory(prefix="hvguard-audit-") as tmp:
        try:
            hv = Hvguard([], log=os.path.join(tmp, "hv.err"))
        except HvguardError as e:
            tap.fail("audit: hvguard starts", str(e))
            return 1
        try:
            bad = held_vmm("vcpu-mismatch", hv)
            rc, out = audit()
            mine = [f for f in (out or {}).get("findings", []) if f["pid"] == bad.pid]
            tap.eq("audit exits 1 when a VM's vCPUs disagree", rc, 1)
            tap.eq("audit names the rule for that VMM", [f["rule"] for f in mine],
                   ["vcpu-tsc-mismatch"])
            tap.ok("audit lists the VM with both vCPUs",
                   any(v["pid"] == bad.pid and len(v["vcpus"]) == 2
                       for v in (out or {}).get("vms", [])), "2 vCPUs", out)
            bad.kill()
            bad.wait()
            good = held_vmm("create-reset", hv)
            rc, out = audit()
            mine = [f for f in (out or {}).get("findings", []) if f["pid"] == good.pid]
            tap.eq("audit finds nothing wrong with a clean VM", mine, [])
            others = (out or {}).get("violations", -1)
            tap.eq("audit's exit code follows its violation count", rc, 1 if others else 0)
            tap.ok("audit lists the clean VM",
                   any(v["pid"] == good.pid for v in (out or {}).get("vms", [])), good.pid, out)
            good.kill()
            good.wait()
        finally:
            hv.stop()
        p = subprocess.run([HV, "audit"], capture_output=True, text=True, timeout=60)
        tap.ok("audit's text output ends with the violation count",
               p.stdout.strip().endswith("violation(s)"), "N violation(s)", p.stdout[-200:])
    return tap.exit_code()


if __name__ == "__main__":
    sys.exit(main())
