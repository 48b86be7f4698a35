#!/usr/bin/env python3
"""hvguard as a service: the signals a service manager and logrotate send,
and --exec hooks, with real violations from the mini VMM.

- SIGHUP after a logrotate-style rename while alerts flow: the daemon keeps
  running, the alerts after it land in the new file, and across both files
  every pause the VMM made has exactly one alert (none lost, none twice).
- SIGHUP with a broken rules file: the rules in use stay, the warning gives
  FILE:LINE:COL. With a valid one: a severity change is live, a tolerance
  change is named as needing a restart and is not applied.
- SIGUSR1 prints the state; SIGUSR2 and SIGPIPE do not stop the daemon;
  SIGTERM stops it with a summary and exit 0.
- --exec: a hook's stdout/stderr never reach hvguard's stdout; a failing
  hook is counted; hanging hooks do not delay the next alert, further runs
  are dropped and counted, and the hangers' process group is killed at the
  timeout; corrections reach the hook too; counters in the state, the
  summary and /metrics.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from hvtest import EMULATED, HOOKS, Hvguard, HvguardError, Tap, orphan_proof, pin_dir  # noqa: E402,E501
from polling import wait_until  # noqa: E402
from test_vmm import run_vmm  # noqa: E402

HV = os.environ.get("HVGUARD", "build/hvguard")
# Under TCG a daemon start and a VMM cycle take seconds, not milliseconds.
SLOW = 6 if EMULATED else 1
tap = Tap()


def read_objs(path):
    """The JSON objects of a file (a line that is not one is kept as a str)."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            out.append(line)
    return out


def of_type(objs, t):
    return [o for o in objs if isinstance(o, dict) and o.get("type") == t]


class FileDaemon:
    """`hvguard run --json -o OUT`: what it writes to OUT is read from the
    file(s); its stdout (warnings only, with --json) is collected apart."""

    def __init__(self, out, rules, log):
        self.out = out
        args = [HV, "run", "--json", "--no-pin", "--rules", rules, "-o", out]
        if HOOKS:
            args += ["--hooks", HOOKS]
        err = open(log, "w")
        self.proc = subprocess.Popen(orphan_proof(args, "TERM"), stdout=subprocess.PIPE,
                                     stderr=err, text=True)
        err.close()
        self.stdout = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        self.ready = wait_until(lambda: of_type(read_objs(out), "ready"), 30 * SLOW, 0.1)

    def _read(self):
        for line in self.proc.stdout:
            with self.lock:
                self.stdout.append(line.rstrip("\n"))

    def stdout_objs(self):
        with self.lock:
            return [json.loads(l) if l.startswith("{") else l for l in self.stdout]

    def warnings(self):
        return [o["message"] for o in self.stdout_objs()
                if isinstance(o, dict) and o.get("type") == "warning"]

    def alive(self):
        return self.proc.poll() is None

    def signal(self, sig):
        self.proc.send_signal(sig)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def vmm_alerts(objs, pid):
    return [o for o in of_type(objs, "alert") if o.get("pid") == pid]


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def test_rotate(hv, out):
    """logrotate's move and SIGHUP while a VMM pauses and resumes 8 times."""
    old = out + ".1"
    result = {}

    def vmm():
        try:
            result["vmm"] = run_vmm(["qemu-stopcont", "--cycles", "8", "--pause-ms", "300"],
                                    timeout=300)
        except Exception as e:  # reported below
            result["error"] = e

    t = threading.Thread(target=vmm)
    t.start()
    first = wait_until(lambda: of_type(read_objs(out), "alert"), 60 * SLOW, 0.02)
    os.rename(out, old)
    hv.signal(signal.SIGHUP)
    t.join()
    if "error" in result:
        tap.fail("SIGHUP: the VMM ran its 8 pauses", str(result["error"]))
        return
    pid, cycles, _ = result["vmm"]
    tap.ok("SIGHUP: the first alert came before the rename", bool(first))
    tap.ok("SIGHUP: the daemon keeps running", hv.alive(), "running", hv.proc.returncode)
    wait_until(lambda: len(vmm_alerts(read_objs(old), pid) + vmm_alerts(read_objs(out), pid))
               >= len(cycles), 20 * SLOW, 0.1)
    before, after = read_objs(old), read_objs(out)
    a_old, a_new = vmm_alerts(before, pid), vmm_alerts(after, pid)
    tap.note(f"{len(cycles)} pauses: {len(a_old)} alert(s) in the moved file, "
             f"{len(a_new)} in the new one")
    tap.ok("SIGHUP: a new file at --output", os.path.exists(out))
    if os.path.exists(out):
        tap.eq("SIGHUP: the new file is created 0640", oct(os.stat(out).st_mode & 0o777),
               oct(0o640))
    tap.ok("SIGHUP: alerts before it stay in the moved file", len(a_old) >= 1, ">= 1", len(a_old))
    tap.ok("SIGHUP: the next alerts land in the new file", len(a_new) >= 1, ">= 1", len(a_new))
    tap.eq("SIGHUP: one alert per pause across both files, none lost",
           len(a_old) + len(a_new), len(cycles))
    stamps = [a["ts_ns"] for a in a_old + a_new]
    tap.eq("SIGHUP: no alert written twice", len(set(stamps)), len(stamps))
    tap.eq("SIGHUP: the ready line stays in the moved file only",
           (len(of_type(before, "ready")), len(of_type(after, "ready"))), (1, 0))
    reload = of_type(after, "reload")
    tap.ok("SIGHUP: the (unchanged) rules were reloaded, said in the new file",
           reload and reload[0].get("changed") == [], "changed []", reload)
    tap.eq("SIGHUP: every line of both files is a JSON object",
           [o for o in before + after if not isinstance(o, dict)], [])


def test_bad_reload(hv, out, rules):
    write(rules, "rules:\n  kvmclock-jump:\n    severity: bogus\n")
    hv.signal(signal.SIGHUP)
    w = wait_until(lambda: [m for m in hv.warnings() if "reload" in m], 10 * SLOW, 0.05)
    tap.note(f"warning: {w}")
    tap.ok("bad reload: a warning with the file's LINE:COL position",
           w and f"{rules}:3:15:" in w[0] and "bogus" in w[0], f"{rules}:3:15: ...", w)
    tap.ok("bad reload: the warning says the rules in use are unchanged",
           w and "unchanged" in w[0], "unchanged", w)
    tap.ok("bad reload: the daemon keeps running", hv.alive())
    pid, cycles, _ = run_vmm(["qemu-stopcont", "--pause-ms", "200"])
    a = wait_until(lambda: vmm_alerts(read_objs(out), pid), 20 * SLOW, 0.05)
    tap.eq("bad reload: the old rules stay (kvmclock-jump still critical)",
           [x["severity"] for x in a or []], ["critical"])


def test_good_reload(hv, out, rules):
    write(rules, "rules:\n  kvmclock-jump:\n    severity: warning\n    tolerance_ns: 200000\n")
    n = len(hv.warnings())
    hv.signal(signal.SIGHUP)
    r = wait_until(lambda: [o for o in of_type(read_objs(out), "reload")
                            if "kvmclock-jump.severity" in o.get("changed", [])],
                   10 * SLOW, 0.05)
    tap.ok("reload: a reload object names the severity change",
           bool(r), "changed: [kvmclock-jump.severity]", of_type(read_objs(out), "reload"))
    if r:
        tap.eq("reload: the tolerance change is named as needing a restart",
               r[0].get("restart_needed"), ["kvmclock-jump.tolerance_ns"])
        tap.ok("reload: a tolerance kept is not listed as changed",
               "kvmclock-jump.tolerance_ns" not in r[0].get("changed", []), "absent",
               r[0].get("changed"))
    w = hv.warnings()[n:]
    tap.ok("reload: a warning says tolerance_ns takes effect at a restart",
           any("kvmclock-jump.tolerance_ns" in m and "restart" in m for m in w), "warning", w)
    pid, _, _ = run_vmm(["qemu-stopcont", "--pause-ms", "200"])
    a = wait_until(lambda: vmm_alerts(read_objs(out), pid), 20 * SLOW, 0.05)
    tap.eq("reload: the new severity is live (kvmclock-jump now warning)",
           [x["severity"] for x in a or []], ["warning"])


def test_state_and_ignored(hv, out):
    hv.signal(signal.SIGUSR1)
    st = wait_until(lambda: of_type(read_objs(out), "state"), 10 * SLOW, 0.05)
    if not tap.ok("SIGUSR1: one state object", bool(st) and len(st) == 1, "1", st):
        return
    s = st[0]
    alerts = len(of_type(read_objs(out + ".1"), "alert") + of_type(read_objs(out), "alert"))
    tap.eq("SIGUSR1: the state counts the alerts so far", s.get("alerts"), alerts)
    tap.ok("SIGUSR1: the state names the families and their hooks",
           "clock" in (s.get("hooks") or {}), "hooks.clock", s.get("hooks"))
    tap.ok("SIGUSR1: the state counts the VMs tracked",
           isinstance((s.get("clock") or {}).get("vms"), int), "clock.vms", s.get("clock"))
    tap.ok("SIGUSR1: the daemon keeps running", hv.alive())
    hv.signal(signal.SIGUSR2)
    hv.signal(signal.SIGPIPE)
    time.sleep(1)
    tap.ok("SIGUSR2 and SIGPIPE are ignored (the daemon keeps running)", hv.alive(),
           "running", hv.proc.returncode)


def test_signals(tmp):
    out = os.path.join(tmp, "alerts.json")
    rules = os.path.join(tmp, "rules.yaml")
    write(rules, "rules:\n  kvmclock-jump:\n    severity: critical\n")
    hv = FileDaemon(out, rules, os.path.join(tmp, "signals.err"))
    if not tap.ok("signals: hvguard starts with -o FILE", bool(hv.ready), "a ready line",
                  hv.proc.poll()):
        hv.kill()
        return
    try:
        test_rotate(hv, out)
        test_bad_reload(hv, out, rules)
        test_good_reload(hv, out, rules)
        test_state_and_ignored(hv, out)
    finally:
        hv.signal(signal.SIGTERM)
        try:
            rc = hv.proc.wait(30 * SLOW)
        except subprocess.TimeoutExpired:
            rc = None
        hv.kill()
    hv.thread.join(2)
    tap.eq("SIGTERM: exit status 0", rc, 0)
    everything = read_objs(out + ".1") + read_objs(out)
    summary = of_type(everything, "summary")
    tap.ok("SIGTERM: a summary line", len(summary) == 1, "one", summary)
    if summary:
        tap.eq("SIGTERM: the summary counts the alerts of both files",
               summary[0].get("alerts"), len(of_type(everything, "alert")))
    tap.eq("signals: nothing but warnings on stdout with -o (no alert there)",
           [o for o in hv.stdout_objs()
            if not (isinstance(o, dict) and o.get("type") == "warning")], [])


# --- --exec ----------------------------------------------------------------

HOOK = r"""#!/bin/sh
cat > "$HOOK_DIR/in.$$"
echo "HOOK-STDOUT $$"
echo "HOOK-STDERR $$" >&2
case $(cat "$HOOK_DIR/mode") in
fail) exit 3 ;;
hang) sleep 600 & echo $! > "$HOOK_DIR/.sleep.$$" && mv "$HOOK_DIR/.sleep.$$" "$HOOK_DIR/sleep.$$"; wait ;;
esac
exit 0
"""


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def exec_state(hv):
    """SIGUSR1, then the exec counters of the state object it prints."""
    n = len([o for o in hv.lines if o.get("type") == "state"])
    hv.proc.send_signal(signal.SIGUSR1)
    st = hv.wait_for(lambda o: o.get("type") == "state" and
                     len([x for x in hv.lines if x.get("type") == "state"]) > n, 10 * SLOW)
    with hv.cond:
        states = [o for o in hv.lines if o.get("type") == "state"]
    return (states[-1] if st else {}).get("exec") or {}


def wait_exec(hv, want, timeout):
    got = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = exec_state(hv)
        if all(got.get(k) == v for k, v in want.items()):
            break
        time.sleep(0.5)
    return got


def hook_inputs(tmp):
    objs = []
    for name in sorted(os.listdir(tmp)):
        if name.startswith("in."):
            objs += [o for o in read_objs(os.path.join(tmp, name)) if isinstance(o, dict)]
    return objs


def test_exec(tmp):
    hookdir = os.path.join(tmp, "hook")
    os.mkdir(hookdir)
    hook = os.path.join(tmp, "hook.sh")
    write(hook, HOOK)
    write(os.path.join(hookdir, "mode"), "print\n")
    timeout = 15 if EMULATED else 4
    port = free_port()
    try:
        # Corrections need a pin directory (a frozen VMM outlives the daemon).
        hv = Hvguard(["--pin-dir", pin_dir("exec"), "--correct",
                      "--exec", f"HOOK_DIR={hookdir} sh {hook}",
                      "--exec-timeout", str(timeout), "--exec-max", "2",
                      "--metrics", f"127.0.0.1:{port}"], log=os.path.join(tmp, "exec.err"))
    except HvguardError as e:
        tap.fail("exec: hvguard starts with --exec", str(e))
        return
    try:
        # A hook that prints: it gets the alert and the correction, and
        # nothing it prints reaches hvguard's stdout.
        pid, _, _ = run_vmm(["qemu-stopcont", "--pause-ms", "200"])
        got = wait_exec(hv, {"ran": 2}, 20 * SLOW)
        tap.eq("exec: a printing hook ran for the alert and for its correction",
               got.get("ran"), 2)
        ins = hook_inputs(hookdir)
        tap.eq("exec: the hook got the alert's JSON on stdin",
               [(o["type"], o["rule"]) for o in ins if o.get("pid") == pid and
                o.get("type") == "alert"], [("alert", "kvmclock-jump")])
        tap.eq("exec: the hook got the correction's JSON on stdin",
               [o["type"] for o in ins if o.get("pid") == pid and
                o.get("type") == "correction"], ["correction"])
        with hv.cond:
            leaked = [l for l in hv.garbage if "HOOK-" in l] + \
                [o for o in hv.lines if "HOOK-" in json.dumps(o)]
        tap.eq("exec: nothing the hook printed (stdout or stderr) is in hvguard's stdout",
               leaked, [])
        # A hook that fails: counted.
        write(os.path.join(hookdir, "mode"), "fail\n")
        run_vmm(["qemu-stopcont", "--pause-ms", "200"])
        got = wait_exec(hv, {"failed": 2}, 20 * SLOW)
        tap.eq("exec: a failing hook is counted as failed (alert and correction)",
               got.get("failed"), 2)
        # Hooks that hang: both slots taken by the first pause's alert and
        # correction; the second pause's runs are dropped, its alert is not
        # delayed; the hangers are killed at the timeout.
        write(os.path.join(hookdir, "mode"), "hang\n")
        n0 = len(hv.alerts())
        pid, cycles, _ = run_vmm(["qemu-stopcont", "--pause-ms", "200", "--cycles", "2"])
        mine = hv.wait_for(lambda o: len(hv.alerts(lambda a: a["pid"] == pid)) >= 2, 20 * SLOW)
        al = hv.alerts(lambda a: a["pid"] == pid)
        tap.eq("exec: with hooks hanging, both pauses' alerts still arrive", len(al), 2)
        if mine and len(al) == 2:
            gap = al[1]["_t"] - al[0]["_t"]
            tap.note(f"alert to alert with both hooks hanging: {gap:.3f} s")
            tap.ok(f"exec: the next alert is not held by the hanging hooks (< {timeout} s)",
                   gap < timeout, f"< {timeout}", f"{gap:.3f}")
        sleepers = []
        wait_until(lambda: len([n for n in os.listdir(hookdir) if n.startswith("sleep.")]) >= 2,
                   5 * SLOW, 0.05)
        for name in os.listdir(hookdir):
            if name.startswith("sleep."):
                with open(os.path.join(hookdir, name)) as f:
                    sleepers.append(int(f.read().strip() or 0))
        t_hang = al[0]["_t"] if al else time.monotonic()
        tap.ok("exec: the hanging hooks' children run until the timeout",
               len(sleepers) == 2 and all(alive(p) for p in sleepers), "2 alive",
               [(p, alive(p)) for p in sleepers])
        gone = wait_until(lambda: not any(alive(p) for p in sleepers), timeout + 10 * SLOW, 0.1)
        t_gone = time.monotonic() - t_hang
        tap.note(f"hanging hooks' process groups gone {t_gone:.2f} s after the alert "
                 f"(--exec-timeout {timeout})")
        tap.ok("exec: the hanging hooks' process groups are killed at the timeout",
               gone and t_gone >= timeout * 0.9, f"gone after ~{timeout} s",
               f"gone={gone} after {t_gone:.2f} s")
        got = wait_exec(hv, {"timeout": 2, "running": 0}, 10 * SLOW)
        tap.eq("exec: counters: ran 2, dropped 2, failed 2, timeout 2, none running", got,
               {"ran": 2, "dropped": 2, "failed": 2, "timeout": 2, "running": 0})
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                text = r.read().decode()
        except OSError as e:
            text = f"({e})"
        want = [f'hvguard_exec_total{{result="{r}"}} 2'
                for r in ("ran", "dropped", "failed", "timeout")]
        tap.eq("exec: /metrics has hvguard_exec_total by result",
               [w for w in want if w in text.splitlines()], want)
        warn = [o["message"] for o in hv.lines if o.get("type") == "warning"]
        tap.ok("exec: the first drop is said in a warning",
               any("dropping" in m for m in warn), "a warning", warn)
    finally:
        rc, summary = hv.stop(30 * SLOW)
    tap.eq("exec: exit status 0 after SIGINT", rc, 0)
    tap.eq("exec: the summary has the exec counters", (summary or {}).get("exec"),
           {"ran": 2, "dropped": 2, "failed": 2, "timeout": 2, "running": 0})
    tap.eq("exec: every stdout line is a JSON object", hv.garbage, [])


def main():
    os.umask(0o022)
    with tempfile.TemporaryDirectory(prefix="hvguard-service-") as tmp:
        os.chmod(tmp, 0o755)
        test_signals(tmp)
        test_exec(tmp)
    return tap.exit_code()


if __name__ == "__main__":
    sys.exit(main())
