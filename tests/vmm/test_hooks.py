#!/usr/bin/env python3
"""The hook tiers, from the outside: on the default tier no program of
hvguard's is attached to a syscall tracepoint (the whole point: processes
that are not VMMs pay nothing), and --hooks syscalls does attach there (so
the check below can tell the two apart). The default is fentry where the
kernel allows it (Debian's 6.1 here: its fentry and fexit on
kvm_arch_vm_ioctl, KVM's tracepoints, nothing on a syscall tracepoint),
else kvm-tracepoints. Read from the kernel with bpftool, not from hvguard's
own word."""

import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from clock_tiers import fentry_loads  # noqa: E402
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


def tracing_links(pid):
    """[program name, attach type] of the fentry/fexit links pid holds."""
    links = json.loads(subprocess.run(["bpftool", "-j", "link", "list"], capture_output=True,
                                      text=True).stdout or "[]")
    progs = json.loads(subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True,
                                      text=True).stdout or "[]")
    names = {p.get("id"): p.get("name") for p in progs}
    held = set()
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                held.update(int(line.split()[1]) for line in f
                            if line.startswith("link_id:"))
        except OSError:
            continue
    return sorted([names.get(l.get("prog_id")), l.get("attach_type")] for l in links
                  if l.get("id") in held and l.get("type") == "tracing")


FENTRY_LINKS = [["hv_clock_vm_ioctl", "trace_fentry"], ["hv_clock_vm_ioctl_ret", "trace_fexit"]]


def syscall_hooks(tps, raw):
    return [t for t in tps if t.startswith("sys_")] + \
        [t for t in raw if t in ("sys_enter", "sys_exit")]


def check_kvm_tier(hv, tag, fentry):
    tps, raw = attachments(hv.proc.pid)
    tap.note(f"{tag}: perf tracepoints {tps}, raw_tp links {raw}")
    tap.eq(f"hooks: {tag}: no program on a syscall tracepoint (bpftool)",
           syscall_hooks(tps, raw), [])
    tap.ok(f"hooks: {tag}: on KVM's own tracepoints (bpftool)",
           {"kvm_pvclock_update", "kvm_write_tsc_offset", "kvm_msr"} <= set(raw),
           "kvm_pvclock_update, kvm_write_tsc_offset, kvm_msr", raw)
    tap.eq(f"hooks: {tag}: fentry/fexit links (bpftool)", tracing_links(hv.proc.pid),
           FENTRY_LINKS if fentry else [])


def main():
    fentry = fentry_loads(tap.note)
    default = "fentry" if fentry else "kvm-tracepoints"
    with tempfile.TemporaryDirectory(prefix="hvguard-hooks-") as tmp:
        try:
            hv = Hvguard(["--no-pin"], log=os.path.join(tmp, "default.err"))
        except HvguardError as e:
            tap.fail("hooks: hvguard starts on its default tier", str(e))
            return 1
        try:
            tap.eq(f"hooks: the default tier is {default}, the best this kernel loads "
                   "(ready line)", hv.hooks, default)
            check_kvm_tier(hv, "default tier", fentry)
        finally:
            hv.stop_and_check(tap)
        if fentry:  # the default covered fentry: kvm-tracepoints on its own
            try:
                hv = Hvguard(["--no-pin", "--hooks", "kvm-tracepoints"],
                             log=os.path.join(tmp, "kvm-tracepoints.err"))
            except HvguardError as e:
                tap.fail("hooks: hvguard starts with --hooks kvm-tracepoints", str(e))
                return 1
            try:
                tap.eq("hooks: --hooks kvm-tracepoints is said in the ready line", hv.hooks,
                       "kvm-tracepoints")
                check_kvm_tier(hv, "--hooks kvm-tracepoints", False)
            finally:
                hv.stop_and_check(tap)
        else:  # forced where it cannot load: a clear refusal, no fallback
            with open(os.path.join(tmp, "fentry.err"), "w+") as err:
                p = subprocess.run([os.environ.get("HVGUARD", "build/hvguard"), "run",
                                    "--no-pin", "--hooks", "fentry"], stdout=subprocess.PIPE,
                                   stderr=err, text=True, timeout=120)
                err.seek(0)
                msg = err.read()
            tap.ok("hooks: --hooks fentry where it cannot load: exits non-zero, says why",
                   p.returncode != 0 and "--hooks fentry" in msg, "an error naming the tier",
                   (p.returncode, msg.strip()[-300:]))
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
