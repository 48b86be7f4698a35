#!/usr/bin/env python3
"""`hvguard audit`: a one-shot look at the VMs on the host, exit 1 on
violations. A mini VMM whose vCPUs were given different TSC offsets must
be found, on whichever vCPU differs, past the first 64; a clean one must
not. Every line of `--json` output is checked against
docs/audit.schema.json. The host section says what the kernel says (BPF
links for a daemon attached, tracefs, securityfs), and debugfs is mounted
for the audit alone: the mount table it was run from is left as it was."""

import copy
import json
import os
import subprocess
import sys
import tempfile

import jsonschema

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from hvtest import HOOKS, Hvguard, HvguardError, Tap  # noqa: E402
from polling import wait_until  # noqa: E402

TOOLS = os.environ.get("HVGUARD_TOOLS", "build/tests")
MINIVMM = os.path.join(TOOLS, "minivmm")
NOMNTNS = os.path.join(TOOLS, "nomntns")
HV = os.environ.get("HVGUARD", "build/hvguard")
SCHEMA = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "audit.schema.json")
# vcpu-mismatch-last: vCPUs past audit's old cap of 64, the last one skewed.
MANY_VCPUS = 100
DEBUGFS = "/sys/kernel/debug"
tap = Tap()

with open(SCHEMA) as f:
    schema = json.load(f)
validator = jsonschema.Draft202012Validator(schema)


def schema_errors(obj):
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(obj)]


def parse(stdout):
    """Every stdout line as JSON (None where one is not), and the audit
    object (the last line) or None."""
    objs = []
    for line in stdout.splitlines():
        try:
            objs.append(json.loads(line))
        except ValueError:
            objs.append(None)
    last = objs[-1] if objs else None
    return objs, last if isinstance(last, dict) and last.get("type") == "audit" else None


def audit(name, prefix=()):
    """Runs `hvguard audit --json` (under prefix), checks every line of its
    output against the schema, returns (exit status, audit object, stdout)."""
    p = subprocess.run([*prefix, HV, "audit", "--json"], capture_output=True, text=True,
                       timeout=120)
    objs, out = parse(p.stdout)
    bad = [(i, o) for i, o in enumerate(objs) if o is None]
    errors = [e for o in objs if o is not None for e in schema_errors(o)]
    tap.ok(f"{name}: every --json line is valid against docs/audit.schema.json",
           objs and not bad and not errors and out is not None,
           "JSON objects, the audit object last, no schema error",
           (bad[:2], errors[:3], p.stdout[-300:], p.stderr[-300:]))
    return p.returncode, out, p.stdout


def held_vmm(hv, scenario, *args, hold_ms=4000):
    """A mini VMM held after its scenario; returns it and its done line."""
    vmm = subprocess.Popen([MINIVMM, scenario, "--hold-ms", str(hold_ms), *args],
                           stdout=subprocess.PIPE, text=True)
    hv.wait_for(lambda o: o.get("type") == "event" and o.get("pid") == vmm.pid, 60)
    done = {}

    def read_done():
        line = vmm.stdout.readline() or ""
        if '"done"' in line:
            done.update(json.loads(line))
        return done

    wait_until(read_done, 120)
    return vmm, done


def s64(u):
    """minivmm prints offsets as KVM's u64; debugfs (and audit) as s64."""
    return None if u is None else u - (1 << 64) if u >= 1 << 63 else u


def vm_of(out, pid):
    return next((v for v in (out or {}).get("vms", []) if v["pid"] == pid), None)


def findings_of(out, pid):
    return [f for f in (out or {}).get("findings", []) if f["pid"] == pid]


def check_two_vcpus(hv):
    bad, _ = held_vmm(hv, "vcpu-mismatch")
    rc, out, _ = audit("vcpu-mismatch")
    mine = findings_of(out, bad.pid)
    tap.eq("audit exits 1 when a VM's vCPUs disagree", rc, 1)
    tap.eq("audit names the rule for that VMM", [f["rule"] for f in mine],
           ["vcpu-tsc-mismatch"])
    vm = vm_of(out, bad.pid)
    tap.ok("audit lists the VM with both vCPUs", vm and len(vm["vcpus"]) == 2, "2 vCPUs", vm)
    bad.kill()
    bad.wait()


def check_khz(hv):
    """vCPU 1 at another TSC frequency than vCPU 0: only hvguard's record
    (each vCPU's frequency at its last clock update) shows it."""
    bad, done = held_vmm(hv, "vcpu-tsc-khz-mismatch")
    rc, out, _ = audit("vcpu-tsc-khz-mismatch")
    mine = findings_of(out, bad.pid)
    tap.eq("vcpu-tsc-khz-mismatch: audit exits 1", rc, 1)
    tap.eq("vcpu-tsc-khz-mismatch: one finding, on vCPU 1 against vCPU 0, from the record",
           [(f["rule"], f.get("vcpu"), f.get("reference_vcpu"), f.get("source")) for f in mine],
           [("vcpu-tsc-khz-mismatch", 1, 0, "hvguard-record")])
    if mine:
        skew = done.get("tsc_khz_skew", {})
        tap.eq("vcpu-tsc-khz-mismatch: the finding's frequencies are the vCPUs'",
               (mine[0].get("tsc_khz"), mine[0].get("reference_tsc_khz")),
               (skew.get("tsc_khz_after"), done.get("tsc_khz")))
    bad.kill()
    bad.wait()


def check_many_vcpus(hv):
    """vCPU 99 of 100 skewed: reported on vCPU 99, every vCPU listed."""
    bad, done = held_vmm(hv, "vcpu-mismatch-last", "--vcpus", str(MANY_VCPUS), hold_ms=120000)
    last = MANY_VCPUS - 1
    tap.eq(f"minivmm skewed vCPU {last} of {MANY_VCPUS}", done.get("skewed_vcpu"), last)
    rc, out, _ = audit(f"{MANY_VCPUS} vCPUs")
    mine = findings_of(out, bad.pid)
    tap.eq(f"{MANY_VCPUS} vCPUs: audit exits 1", rc, 1)
    tap.eq(f"{MANY_VCPUS} vCPUs: one vcpu-tsc-mismatch, on vCPU {last} against vCPU 0",
           [(f["rule"], f.get("vcpu"), f.get("reference_vcpu")) for f in mine],
           [("vcpu-tsc-mismatch", last, 0)])
    if mine and "offset" in mine[0]:
        tap.eq(f"{MANY_VCPUS} vCPUs: the finding's offsets are the ones minivmm set",
               (mine[0]["offset"], mine[0]["reference_offset"]),
               (s64(done.get("tsc_offset_skewed")), s64(done.get("tsc_offset_vcpu0"))))
    vm = vm_of(out, bad.pid)
    tap.eq(f"{MANY_VCPUS} vCPUs: audit lists every vCPU, by id",
           [c["vcpu"] for c in (vm or {}).get("vcpus", [])], list(range(MANY_VCPUS)))
    return bad


def check_sparse_ids(hv):
    """vCPU ids as KVM has them, sparse and past 256: vCPU 0 and vCPU 300,
    the latter skewed. The daemon's record keeps them in slots of their
    own, so both are recorded and nothing is beyond it."""
    bad, done = held_vmm(hv, "vcpu-mismatch-last", "--vcpus", "2", "--last-vcpu-id", "300")
    tap.eq("minivmm skewed vCPU 300, its second", done.get("skewed_vcpu"), 300)
    rc, out, _ = audit("vCPU ids 0 and 300")
    vm = vm_of(out, bad.pid)
    tap.eq("vCPU ids 0 and 300: audit lists both by their ids",
           [c["vcpu"] for c in (vm or {}).get("vcpus", [])], [0, 300])
    mine = sorted(findings_of(out, bad.pid), key=lambda f: f["rule"])
    tap.eq("vCPU ids 0 and 300: the mismatch on vCPU 300, and nothing beyond the record",
           [(f["rule"], f["severity"], f.get("vcpu")) for f in mine],
           [("vcpu-tsc-mismatch", "critical", 300)])
    tap.ok("vCPU ids 0 and 300: the daemon recorded both offsets (slots, not ids)",
           vm and all(c.get("recorded_tsc_offset") is not None for c in vm.get("vcpus", [])),
           "both recorded", (vm or {}).get("vcpus"))
    tap.eq("vCPU ids 0 and 300: audit exits 1", rc, 1)
    bad.kill()
    bad.wait()


def mountinfo():
    with open("/proc/self/mountinfo") as f:
        return f.read()


def debugfs_mounts(text):
    return [l for l in text.splitlines() if l.split()[4] == DEBUGFS]


def check_mounts(vmm):
    """debugfs is mounted for the audit alone. Run from a mount namespace of
    the test's own where debugfs is not mounted, audit must still read KVM's
    debugfs and leave that namespace's mount table exactly as it was; also
    where it cannot enter a private namespace (a seccomp filter refuses
    unshare), then saying so and unmounting what it mounted."""
    before = mountinfo()
    rc, out, _ = audit("debugfs already mounted")
    tap.ok("audit leaves the mount table as it was (debugfs mounted before)",
           mountinfo() == before, "same /proc/self/mountinfo", debugfs_mounts(mountinfo()))
    for name, prefix, want_warning in (
            ("private namespace", [], False),
            ("no private namespace", [NOMNTNS], True)):
        with tempfile.TemporaryDirectory(prefix="hvguard-audit-mnt-") as tmp:
            cmd = ("while mountpoint -q %s; do umount -l %s || exit; done; "
                   "cat /proc/self/mountinfo > %s/before; "
                   "%s %s audit --json > %s/out 2> %s/err; echo $? > %s/rc; "
                   "cat /proc/self/mountinfo > %s/after"
                   % (DEBUGFS, DEBUGFS, tmp, " ".join(prefix), HV, tmp, tmp, tmp, tmp))
            subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", cmd],
                           timeout=120)
            files = {}
            for n in ("before", "after", "out", "err", "rc"):
                with open(os.path.join(tmp, n)) as f:
                    files[n] = f.read()
        tap.eq(f"{name}: the test's namespace has no debugfs before audit",
               debugfs_mounts(files["before"]), [])
        tap.ok(f"{name}: after audit, the mount table is exactly as before",
               files["before"] == files["after"], "same /proc/self/mountinfo",
               debugfs_mounts(files["after"]))
        objs, out = parse(files["out"])
        errors = [e for o in objs if o for e in schema_errors(o)]
        tap.ok(f"{name}: output valid against the schema", out and not errors,
               "valid", errors[:3])
        vm = vm_of(out, vmm.pid)
        tap.eq(f"{name}: audit still read every vCPU from debugfs (exit 1, mismatch found)",
               (files["rc"].strip(), len((vm or {}).get("vcpus", []))), ("1", MANY_VCPUS))
        warnings = [o["message"] for o in objs
                    if o and o.get("type") == "warning" and "debugfs" in o["message"]]
        if want_warning:
            tap.ok(f"{name}: audit says it mounted debugfs in the host's namespace",
                   any("private mount namespace" in w and "unmounted" in w for w in warnings),
                   "a warning naming debugfs", objs[:3])
        else:
            tap.eq(f"{name}: no warning about debugfs", warnings, [])


def bpftool(*args):
    p = subprocess.run(["bpftool", "-j", *args], capture_output=True, text=True, timeout=60)
    return json.loads(p.stdout or "[]")


def hvguard_links_by_bpftool():
    """The kernel's BPF links to programs named as hvguard's, per bpftool."""
    names = {p["id"]: p.get("name", "") for p in bpftool("prog", "show")}
    return sorted(l["id"] for l in bpftool("link", "show")
                  if names.get(l.get("prog_id"), "").startswith(("hv_clock_", "xen_")))


def lsm_oracle():
    """The active LSMs, read in a mount namespace of the test's own."""
    p = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c",
         "mountpoint -q /sys/kernel/security || "
         "mount -t securityfs securityfs /sys/kernel/security; cat /sys/kernel/security/lsm"],
        capture_output=True, text=True, timeout=60)
    return p.stdout.strip() if p.returncode == 0 else None


def check_host(out, attached):
    host = (out or {}).get("host") or {}
    daemon = host.get("daemon") or {}
    tag = "with a daemon running" if attached else "with no daemon"
    links = sorted(l["id"] for l in daemon.get("links", []))
    tap.eq(f"host, {tag}: daemon attached is {attached}", daemon.get("attached"), attached)
    tap.eq(f"host, {tag}: the links are bpftool's links to hvguard's programs",
           links, hvguard_links_by_bpftool())
    if attached:
        want = {"kvm-tracepoints": "hv_clock_pvclock_update",
                "syscalls": "hv_clock_ioctl_enter"}[HOOKS or "kvm-tracepoints"]
        tap.ok(f"host, {tag}: the tier's program {want} is among them",
               want in [l["program"] for l in daemon.get("links", [])], want, daemon)
        tap.eq(f"host, {tag}: the tier the daemon attached is said available",
               host.get("hook_tiers", {}).get(HOOKS or "kvm-tracepoints"), True)
    tap.eq(f"host, {tag}: BTF as /sys/kernel/btf/vmlinux says", host.get("btf"),
           os.path.exists("/sys/kernel/btf/vmlinux"))
    lsm = lsm_oracle()
    tap.eq(f"host, {tag}: the LSMs as securityfs says", host.get("lsm"), lsm)
    tap.eq(f"host, {tag}: BPF LSM as securityfs says", host.get("bpf_lsm"),
           None if lsm is None else "bpf" in lsm.split(","))


def check_schema_negative(out):
    """The schema rejects what audit must never print: a check that cannot
    fail is no check."""
    broken = copy.deepcopy(out)
    del broken["host"]
    tap.ok("schema: an audit object without its host section is rejected",
           schema_errors(broken), "errors", "none")
    broken = copy.deepcopy(out)
    broken["findings"] = [{"rule": "vcpu-tsc-mismatch", "severity": "critical", "pid": 1,
                           "comm": "x", "vm_name": None, "message": "m", "offset": 1,
                           "reference_vcpu": 0, "reference_offset": 0, "source": "debugfs"}]
    tap.ok("schema: a vcpu-tsc-mismatch finding without its vcpu is rejected",
           schema_errors(broken), "errors", "none")
    broken["findings"][0]["vcpu"] = 3
    tap.eq("schema: the same finding with its vcpu is accepted", schema_errors(broken), [])


def main():
    with tempfile.TemporaryDirectory(prefix="hvguard-audit-") as tmp:
        try:
            hv = Hvguard([], log=os.path.join(tmp, "hv.err"))
        except HvguardError as e:
            tap.fail("audit: hvguard starts", str(e))
            return 1
        try:
            check_two_vcpus(hv)
            check_sparse_ids(hv)
            check_khz(hv)
            many = check_many_vcpus(hv)
            try:
                check_mounts(many)
                _, out, _ = audit("host section, daemon running")
                check_host(out, True)
                if out:
                    check_schema_negative(out)
            finally:
                many.kill()
                many.wait()
            good, _ = held_vmm(hv, "create-reset")
            rc, out, _ = audit("create-reset")
            tap.eq("audit finds nothing wrong with a clean VM", findings_of(out, good.pid), [])
            others = (out or {}).get("violations", -1)
            tap.eq("audit's exit code follows its violation count", rc, 1 if others else 0)
            tap.ok("audit lists the clean VM", vm_of(out, good.pid), good.pid, out)
            good.kill()
            good.wait()
        finally:
            hv.stop()
        _, out, _ = audit("host section, no daemon")
        check_host(out, False)
        p = subprocess.run([HV, "audit"], capture_output=True, text=True, timeout=120)
        tap.ok("audit's text output ends with the violation count",
               p.stdout.strip().endswith("violation(s)"), "N violation(s)", p.stdout[-200:])
        tap.ok("audit's text output has the host section",
               "daemon attached" in p.stdout and "clock hook tiers" in p.stdout,
               "host lines", p.stdout[:400])
    return tap.exit_code()


if __name__ == "__main__":
    sys.exit(main())
