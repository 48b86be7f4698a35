#!/usr/bin/env python3
"""The pin directory with real daemons on a real KVM (the refusals that need
no KVM are in tests/unit/pindir.sh):

- two daemons on one pin directory: the second is refused (exit 7, naming
  the first's pid) while the first runs on; audit reads beside it; once
  the first stops, the directory is free again;
- a daemon killed while a VMM is frozen for a correction: the record
  survives it in the pin directory, and the next daemon lets the VMM go;
- a frozen record whose VMM pid now names a process started after the
  freeze (the VMM died, the pid was reused): the next daemon drops the
  record and leaves that process alone, but continues a real one;
- a pinned map whose definition changed although the layout version did
  not (a forgotten bump): refused, not reused, not dropped.
"""

import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from hvtest import EMULATED, Hvguard, HvguardError, Tap, orphan_proof, pin_dir  # noqa: E402
from polling import wait_until  # noqa: E402

HV = os.environ.get("HVGUARD", "build/hvguard")
TOOLS = os.environ.get("HVGUARD_TOOLS", "build/tests")
MINIVMM = os.path.join(TOOLS, "minivmm")
SLOW = 10 if EMULATED else 1
tap = Tap()


def state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def bpftool(*args):
    p = subprocess.run(["bpftool", "-j", *args], capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError(f"bpftool {' '.join(args[:4])}: {p.stderr.strip()[-200:]}")
    return json.loads(p.stdout or "null")


def hexbytes(b):
    return ["hex", *(f"{x:02x}" for x in b)]


def frozen_keys(pins):
    return [e.get("formatted", e)["key"] for e in bpftool("map", "dump", "pinned",
                                                           pins + "/hv_clock_frozen")]


def test_second_daemon(tmp):
    name = "two daemons on one pin directory"
    pins = pin_dir("two")
    first = Hvguard(["--pin-dir", pins], log=os.path.join(tmp, "first.err"))
    try:
        second = subprocess.run([HV, "run", "--json", "--pin-dir", pins], capture_output=True,
                                text=True, timeout=60 * SLOW)
        errors = [json.loads(line)["message"] for line in second.stdout.splitlines()
                  if line.startswith('{"type":"error"')]
        tap.eq(f"{name}: the second is refused with exit 7", second.returncode, 7)
        tap.ok(f"{name}: its error names the first daemon's pid and what to do",
               any(f"in use by another hvguard (pid {first.proc.pid})" in e
                   and "--pin-dir of its own" in e for e in errors),
               f"pid {first.proc.pid}", errors)
        tap.ok(f"{name}: the second never got ready",
               '"type":"ready"' not in second.stdout, "no ready line", second.stdout[-200:])
        tap.eq(f"{name}: the first runs on", first.proc.poll(), None)
        audit = subprocess.run([HV, "audit", "--json", "--pin-dir", pins],
                               capture_output=True, text=True, timeout=60 * SLOW)
        out = json.loads(audit.stdout.splitlines()[-1]) if audit.stdout.strip() else {}
        tap.ok(f"{name}: audit reads the pinned state beside the daemon",
               audit.returncode in (0, 1) and out.get("pinned_state") is True,
               "exit 0/1, pinned_state true", (audit.returncode, out))
    finally:
        first.stop_and_check(tap)
    third = Hvguard(["--pin-dir", pins], log=os.path.join(tmp, "third.err"))
    tap.ok(f"{name}: once the first stopped, the next one starts", third.ready is not None,
           "ready", None)
    third.stop_and_check(tap)


def test_killed_mid_freeze(tmp):
    """The daemon cannot act (SIGSTOP, its watchdog too), BPF freezes the
    VMM at KVM_SET_CLOCK, the daemon is killed: the record in the pin
    directory outlives it, and the next daemon continues the VMM."""
    name = "daemon killed mid-freeze"
    pins = pin_dir("killed")
    hv = Hvguard(["--pin-dir", pins, "--correct"], log=os.path.join(tmp, "killed.err"))
    vmm = None
    try:
        os.kill(hv.proc.pid, signal.SIGSTOP)
        vmm = subprocess.Popen(orphan_proof([MINIVMM, "qemu-stopcont", "--pause-ms", "100"]),
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        tap.ok(f"{name}: BPF froze the VMM", wait_until(lambda: state(vmm.pid) == "T", 20 * SLOW),
               "state T", state(vmm.pid))
        hv.kill()
        time.sleep(1)
        tap.eq(f"{name}: the VMM stays frozen with no daemon", state(vmm.pid), "T")
        tap.eq(f"{name}: its frozen record survives in the pin directory",
               len(frozen_keys(pins)), 1)
        nxt = Hvguard(["--pin-dir", pins, "--correct"], log=os.path.join(tmp, "next.err"))
        try:
            said = nxt.wait_for(lambda o: o.get("type") == "warning"
                                and "continued 1 VMM(s)" in o.get("message", ""), 5)
            tap.ok(f"{name}: the next daemon says it continued it", said is not None,
                   "continued 1 VMM(s)", nxt.stderr_tail())
            try:
                vmm.wait(60 * SLOW)
            except subprocess.TimeoutExpired:
                pass
            tap.eq(f"{name}: the VMM runs to its end", vmm.returncode, 0)
            tap.eq(f"{name}: no frozen record is left", frozen_keys(pins), [])
        finally:
            nxt.stop_and_check(tap)
    finally:
        if vmm and vmm.poll() is None:
            vmm.kill()
        if hv.proc.poll() is None:
            os.kill(hv.proc.pid, signal.SIGCONT)
            hv.kill()


def vm_record(pins, pid):
    """A pinned hv_clock_vms value owned by pid, the rest zero."""
    size = bpftool("map", "show", "pinned", pins + "/hv_clock_vms")["bytes_value"]
    head = struct.pack("<QIIII", 4000 + pid, pid, 1, 0, 0)  # id, owner, phase, flags, vcpus
    return head + bytes(size - len(head))


def test_reused_pid(tmp):
    """Records a daemon that died left behind: one for a VMM still there (it
    started before the freeze: continued), one whose pid a process started
    after the freeze now holds (stopped for reasons of its own: left alone)."""
    name = "stale freeze, reused pid"
    pins = pin_dir("reused")
    first = Hvguard(["--pin-dir", pins], log=os.path.join(tmp, "maps.err"))
    first.stop()  # its maps stay pinned
    real = subprocess.Popen(orphan_proof(["sleep", "300"]))
    time.sleep(0.1)
    since = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    time.sleep(0.3)  # /proc's start times count 10 ms ticks
    other = subprocess.Popen(orphan_proof(["sleep", "300"]))
    try:
        for p in (real, other):
            os.kill(p.pid, signal.SIGSTOP)
        wait_until(lambda: state(real.pid) == "T" and state(other.pid) == "T", 5)
        for n, p in enumerate((real, other)):
            key = struct.pack("<Q", 0xffff888000100000 + n * 0x1000)
            subprocess.run(["bpftool", "map", "update", "pinned", pins + "/hv_clock_vms",
                            "key", *hexbytes(key), "value", *hexbytes(vm_record(pins, p.pid))],
                           check=True)
            subprocess.run(["bpftool", "map", "update", "pinned", pins + "/hv_clock_frozen",
                            "key", *hexbytes(key), "value",
                            *hexbytes(struct.pack("<Q", since))], check=True)
        tap.eq(f"{name}: two frozen records set up", len(frozen_keys(pins)), 2)
        hv = Hvguard(["--pin-dir", pins], log=os.path.join(tmp, "reused.err"))
        try:
            tap.ok(f"{name}: the VMM that started before the freeze is continued",
                   wait_until(lambda: state(real.pid) not in ("T", None), 5),
                   "not T", state(real.pid))
            tap.eq(f"{name}: the process that started after it is left stopped",
                   state(other.pid), "T")
            tap.eq(f"{name}: both records are gone", frozen_keys(pins), [])
            said = hv.wait_for(lambda o: o.get("type") == "warning"
                               and "started after the freeze" in o.get("message", ""), 5)
            tap.ok(f"{name}: the daemon says it dropped one without continuing it",
                   said is not None and "dropped 1 frozen record" in said["message"],
                   "dropped 1 ...", said)
        finally:
            hv.stop_and_check(tap)
    finally:
        for p in (real, other):
            p.kill()
            p.wait()


def test_changed_map(tmp):
    name = "a pinned map changed without a version bump"
    pins = pin_dir("changed")
    first = Hvguard(["--pin-dir", pins], log=os.path.join(tmp, "changed.err"))
    first.stop()
    vmms = pins + "/hv_clock_vmms"
    info = bpftool("map", "show", "pinned", vmms)
    os.unlink(vmms)
    subprocess.run(["bpftool", "map", "create", vmms, "type", "hash", "key",
                    str(info["bytes_key"]), "value", str(info["bytes_value"]), "entries",
                    str(info["max_entries"] // 2), "name", "hv_clock_vmms"], check=True)
    p = subprocess.run([HV, "run", "--json", "--pin-dir", pins], capture_output=True,
                       text=True, timeout=120 * SLOW)
    errors = [json.loads(line)["message"] for line in p.stdout.splitlines()
              if line.startswith('{"type":"error"')]
    tap.eq(f"{name}: the daemon refuses to start (exit 2)", p.returncode, 2)
    tap.ok(f"{name}: it names the map and says what to do",
           any(f"{pins}/hv_clock_vmms does not fit" in e and "--reset-pins" in e
               for e in errors), "hv_clock_vmms does not fit ... --reset-pins", errors)
    tap.eq(f"{name}: the map is left as it was, not dropped",
           bpftool("map", "show", "pinned", vmms)["max_entries"], info["max_entries"] // 2)


def main():
    with tempfile.TemporaryDirectory(prefix="hvguard-pindir-") as tmp:
        for t in (test_second_daemon, test_killed_mid_freeze, test_reused_pid,
                  test_changed_map):
            try:
                t(tmp)
            except (HvguardError, RuntimeError, subprocess.SubprocessError, OSError) as e:
                tap.fail(t.__name__, repr(e))
    return tap.exit_code()


if __name__ == "__main__":
    sys.exit(main())
