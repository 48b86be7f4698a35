#!/usr/bin/env python3
"""A local user filling the VM table, from the attacker's side.

Any user with /dev/kvm can create VMs, and each takes a slot in hvguard's
VM table. Before the quotas, one process holding more VMs than the table
switched detection off for everyone: another VMM's rewind raised nothing,
and nothing said so. Here user `nobody` creates more VMs than its per-user
quota; its VMs past the quota go untracked, and that is said (once, naming
it) and counted, while another user's and root's rewinds are still caught.
When the filler exits, its user gets its quota back.

A VMM that lives on while its VMs come and go (it closes each one and
creates the next) gets each destroyed VM's room back while it runs: before,
its VMs past the quota went untracked until it exited, even with one VM
alive at a time, and its last VM's rewind raised nothing.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from hvtest import EMULATED, Hvguard, HvguardError, Tap, orphan_proof  # noqa: E402
from polling import wait_until  # noqa: E402
from test_vmm import run_vmm  # noqa: E402

TOOLS = os.environ.get("HVGUARD_TOOLS", "build/tests")
MINIVMM = os.path.join(TOOLS, "minivmm")
# Quotas small enough to exceed quickly under TCG (VM creation there takes
# tens of ms); the defaults (512 per VMM, 1024 per user) work the same way.
PER_VMM, PER_USER = 40, 20
NOBODY, OTHER = 65534, 65533
PAUSE_MS = 300
tap = Tap()


def as_user(uid, argv):
    """argv run as uid, with a /dev/kvm it may open: a private mount
    namespace binds a 0666 node of the same device over /dev/kvm, so the
    host's own node keeps its mode."""
    dev = os.stat("/dev/kvm").st_rdev
    script = ('d=$(mktemp -d) && mount -t tmpfs -o mode=0755 hvkvm "$d" && '
              f'mknod -m 0666 "$d/kvm" c {os.major(dev)} {os.minor(dev)} && '
              'mount --bind "$d/kvm" /dev/kvm && '
              f'exec setpriv --reuid={uid} --regid={uid} --clear-groups "$@"')
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *argv]


def events(hv, pid, event):
    with hv.cond:
        return [o for o in hv.lines if o.get("type") == "event" and o.get("pid") == pid
                and o.get("event") == event]


def rewind_as(uid, name, hv):
    """A QEMU-style stop/cont as uid: its rewind must be reported."""
    argv = [MINIVMM, "qemu-stopcont", "--cycles", "1", "--pause-ms", str(PAUSE_MS)]
    p = subprocess.run(as_user(uid, argv) if uid else argv, capture_output=True,
                       text=True, timeout=120)
    done = next((json.loads(l) for l in p.stdout.splitlines() if '"type":"done"' in l), None)
    if not tap.ok(f"{name}: its VMM runs", p.returncode == 0 and done, "exit 0",
                  f"exit {p.returncode}: {p.stderr[-300:]}"):
        return
    pid = done["pid"]
    wait_until(lambda: hv.alerts(lambda a: a.get("pid") == pid), 10)
    jumps = hv.alerts(lambda a: a.get("pid") == pid and a.get("rule") == "kvmclock-jump")
    tap.ok(f"{name}: its rewind is reported",
           len(jumps) == 1 and -jumps[0]["jump_ns"] >= PAUSE_MS * 1e6 * 0.99,
           f"one kvmclock-jump of at least -{PAUSE_MS} ms",
           [a.get("jump_ns") for a in jumps])


def fill(hv, uid, vms, quota, limit):
    """A VMM of uid holding vms VMs, over quota; returns its Popen."""
    who = "root" if uid == 0 else "user nobody"
    name = f"{who} holding {vms} VMs ({quota} quota {limit})"
    argv = [MINIVMM, "hold-vms", str(vms), "--hold-ms", "600000"]
    t0 = time.monotonic()
    filler = subprocess.Popen(orphan_proof(as_user(uid, argv) if uid else argv),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done = None
    for line in filler.stdout:
        if '"type":"done"' in line:
            done = json.loads(line)
            break
    # (Its stderr is read only when it failed: a holding filler never closes it.)
    if not tap.ok(f"{name}: the filler creates its VMs", done is not None, "a done line",
                  done or f"exit {filler.wait()}: {filler.stderr.read()[-300:]}"):
        return filler
    tap.note(f"{name}: created in {time.monotonic() - t0:.1f} s")
    pid = filler.pid
    untracked = wait_until(lambda: events(hv, pid, "vm-untracked"), 30)
    tap.eq(f"{name}: said once, with the quota that refused it",
           [(o.get("quota"), o.get("limit"), o.get("uid")) for o in untracked],
           [(quota, limit, uid)])
    wait_until(lambda: len(events(hv, pid, "vm-new")) >= limit, 30)
    time.sleep(1)
    tap.eq(f"{name}: exactly its quota of VMs tracked", len(events(hv, pid, "vm-new")), limit)
    return filler


reclaimed = []
HOLD_S = 12


def churn(hv, vms):
    """Root's VMM closing and creating vms VMs, one alive at a time, then a
    stop/cont of the last: tracked, reported, and each closed VM said gone."""
    name = f"a VMM creating {vms} VMs one after another ({PER_VMM} quota per VMM)"
    # It lives on HOLD_S past its last VM: a VM closed and not yet taken
    # back when its VMM exits goes with that exit (vmm-exit), as its VMs do.
    argv = [MINIVMM, "vm-churn", "--churn", str(vms - 1), "--cycles", "1",
            "--pause-ms", str(PAUSE_MS), "--hold-ms", str(HOLD_S * 1000)]
    t0 = time.monotonic()
    p = subprocess.Popen(orphan_proof(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    lines = []
    for line in p.stdout:
        lines.append(line)
        if '"type":"done"' in line:
            break
    done = next((json.loads(l) for l in lines if '"type":"done"' in l), None)
    churned = next((json.loads(l) for l in lines if '"churned"' in l), {})
    if not tap.ok(f"{name}: its VMM runs", done and churned.get("vms") == vms,
                  f"a done line, {vms} VMs", f"exit {p.poll()}: {churned} {lines[-3:]}"):
        p.kill()
        p.wait()
        return
    tap.note(f"{name}: ran in {time.monotonic() - t0:.1f} s")
    pid = done["pid"]
    wait_until(lambda: hv.alerts(lambda a: a.get("pid") == pid), 10)
    jumps = hv.alerts(lambda a: a.get("pid") == pid and a.get("rule") == "kvmclock-jump")
    tap.ok(f"{name}: the last VM's rewind is reported",
           len(jumps) == 1 and -jumps[0]["jump_ns"] >= PAUSE_MS * 1e6 * 0.99,
           f"one kvmclock-jump of at least -{PAUSE_MS} ms", [a.get("jump_ns") for a in jumps])
    new = [o["vm"] for o in events(hv, pid, "vm-new")]
    tap.ok(f"{name}: more VMs tracked over its life than its quota", len(new) > PER_VMM,
           f"> {PER_VMM} vm-new", len(new))
    # Every tracked VM but the last is destroyed while the VMM lives on;
    # the last goes with its exit.
    wait_until(lambda: len(events(hv, pid, "vm-destroyed")) >= len(new) - 1, HOLD_S - 2)
    gone = [o["vm"] for o in events(hv, pid, "vm-destroyed")]
    p.kill()
    p.wait()
    reclaimed.extend(o for o in events(hv, pid, "vm-destroyed") if o.get("seen_by") == "reclaim")
    tap.note(f"{name}: {len(new)} tracked, {len(gone)} said destroyed "
             f"({len(reclaimed)} by the daemon's pass, the rest by a new VM at their address)")
    tap.ok(f"{name}: each closed VM said destroyed once, the last one not",
           len(gone) == len(set(gone)) == len(new) - 1 and set(gone) < set(new),
           f"{len(new) - 1} distinct vm-destroyed among the {len(new)} vm-new",
           f"{len(gone)} vm-destroyed ({len(set(gone))} distinct), "
           f"not among vm-new: {sorted(set(gone) - set(new))[:5]}")


def main():
    tmp = tempfile.mkdtemp()
    try:
        hv = Hvguard(["--no-pin", "--max-vms-per-vmm", str(PER_VMM),
                      "--max-vms-per-user", str(PER_USER)],
                     log=os.path.join(tmp, "quota.err"))
    except HvguardError as e:
        tap.fail("VM table quotas: hvguard starts", str(e))
        return tap.exit_code()
    fillers = []
    try:
        fillers.append(fill(hv, NOBODY, PER_USER + 10, "per-user", PER_USER))
        fillers.append(fill(hv, 0, PER_VMM + 10, "per-vmm", PER_VMM))
        rewind_as(OTHER, "another user, while the fillers hold their VMs", hv)
        rewind_as(0, "root, while the fillers hold their VMs", hv)
        churn(hv, 3 * PER_VMM)
    finally:
        for f in fillers:
            f.kill()
            f.wait()
    wait_until(lambda: events(hv, fillers[0].pid, "vmm-exit"), 30)
    rewind_as(NOBODY, "user nobody again, once its filler exited", hv)
    rc, summary = hv.stop()
    tap.eq("VM table quotas: hvguard exits 0", rc, 0)
    clock = (summary or {}).get("clock", {})
    refused = clock.get("quota_refused") or {}
    tap.ok("VM table quotas: the events of untracked VMs are counted per quota",
           refused.get("per-user", 0) > 0 and refused.get("per-vmm", 0) > 0,
           "per-user > 0 and per-vmm > 0", refused)
    tap.eq("VM table quotas: the table itself never filled",
           sorted(set((clock.get("map_full") or {"?": None}).values())), [0])
    tap.eq("VM table quotas: the summary counts the VMs the daemon took back",
           clock.get("vms_reclaimed"), len(reclaimed))
    return tap.exit_code()


if __name__ == "__main__":
    sys.exit(main())
