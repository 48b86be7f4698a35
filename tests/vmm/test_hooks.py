#!/usr/bin/env python3
"""The hook tiers, from the outside: on the default tier no program of
hvguard's is attached to a syscall tracepoint (the whole point: processes
that are not VMMs pay nothing), and --hooks syscalls does attach there (so
the check below can tell the two apart). Read from the kernel with bpftool,
not from hvguard's own word."""

import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from hvtest import Hvguard, HvguardError, Tap  # noqa: E402

tap = Tap()


def attachments(pid):
    """(tracepoint names of pid's perf-event attachments, raw_tp links of
    the programs pid holds)."""
    perf = json.loads(subprocess.run(["bpftool", "-j", "perf", "list"], capture_output=True,
                                     text=True).stdout or "[]")
    tps = sorted(p.get("tracepoint", "") for p in perf if p.get("pid") == pid)
    links = json.loads(subprocess.run(["bpftool", "-j", "link", "list"], capture_output=True,
                                      text=True).stdout or "[]")
    fds = os.listdir(f"/proc/{pid}/fdinfo")
    link_ids = set()
    for fd in fds:
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                info = f.read()
        except OSError:
            continue
        for line in info.splitlines():
            if line.startswith("link_id:"):
                link_ids.add(int(line.split()[1]))
    raw = sorted(l.get("tp_name", "") for l in links
                 if l.get("id") in link_ids and l.get("type") == "raw_tracepoint")
    return tps, raw


def syscall_hooks(tps, raw):
    return [t for t in tps if t.startswith("sys_")] + \
        [t for t in raw if t in ("sys_enter", "sys_exit")]


def main():
    with tempfile.TemporaryDirectory(prefix="hvguard-hooks-") as tmp:
        try:
            hv = Hvguard(["--no-pin"], log=os.path.join(tmp, "default.err"))
        except HvguardError as e:
            tap.fail("hooks: hvguard starts on its default tier", str(e))
            return 1
        try:
            tap.eq("hooks: the default tier is kvm-tracepoints (ready line)", hv.hooks,
                   "kvm-tracepoints")
            tps, raw = attachments(hv.proc.pid)
            tap.note(f"default tier: perf tracepoints {tps}, raw_tp links {raw}")
            tap.eq("hooks: default tier: no program on a syscall tracepoint (bpftool)",
                   syscall_hooks(tps, raw), [])
            tap.ok("hooks: default tier: on KVM's own tracepoints (bpftool)",
                   {"kvm_pvclock_update", "kvm_write_tsc_offset", "kvm_msr"} <= set(raw),
                   "kvm_pvclock_update, kvm_write_tsc_offset, kvm_msr", raw)
        finally:
            hv.stop_and_check(tap)
        try:
            hv = Hvguard(["--no-pin", "--hooks", "syscalls"],
                         log=os.path.join(tmp, "syscalls.err"))
        except HvguardError as e:
            tap.fail("hooks: hvguard starts with --hooks syscalls", str(e))
            return 1
        try:
            tap.eq("hooks: --hooks syscalls is said in the ready line", hv.hooks, "syscalls")
            tps, raw = attachments(hv.proc.pid)
            tap.eq("hooks: --hooks syscalls attaches sys_enter_ioctl/sys_exit_ioctl (bpftool)",
                   syscall_hooks(tps, raw), ["sys_enter_ioctl", "sys_exit_ioctl"])
        finally:
            hv.stop_and_check(tap)
    return tap.exit_code()


if __name__ == "__main__":
    sys.exit(main())
