"""Shared helpers for hvguard's Python tests (stdlib only).

- Tap: TAP-style reporting, one line per assertion ("ok - NAME" or
  "not ok - NAME # expected X, got Y"), never skipping.
- Hvguard: `$HVGUARD run --json ARGS` as a subprocess; waits for its ready
  line, collects its JSON lines in a background thread, stops it with SIGINT
  and asserts its summary line and exit status 0 (stop_and_check).
- Qemu: a qemu-system-x86_64 with a QMP unix socket, always killed at the end.
Children get a parent-death signal, so none outlives a killed test.
"""

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

QEMU = os.environ.get("QEMU", "qemu-system-x86_64")
# Set by tests/nested/guest.sh: the KVM under test runs nested under QEMU
# TCG, where every guest instruction is emulated. Timings stretch 10-100x
# and KVM_SET_CLOCK's two clock samples lie microseconds apart, so bounds
# on time and residual skew are those measured there (see README, Tests).
EMULATED = bool(os.environ.get("HVGUARD_EMULATED"))
# The hook tier the daemons of this run are forced onto (hvguard run
# --hooks), set by the stage scripts that run their tests once per tier;
# every test name then says which.
HOOKS = os.environ.get("HVGUARD_HOOKS") or None


def orphan_proof(cmd, sig="KILL"):
    """Prefixes cmd so that the child gets `sig` when this test process dies,
    however it dies: no QEMU or hvguard outlives a crashed or killed test.
    setpriv execs the command, so the child's pid is the command's own.
    (The signal follows the *thread* that started the child: start children
    from a thread that lives as long as they should.)"""
    return ["setpriv", f"--pdeathsig={sig}", "--", *cmd]


_pin_dirs = []


def pin_dir(tag):
    """A pin directory of the caller's own under bpffs (hvguard run
    --pin-dir), removed when the test process exits. Daemons that correct
    need one: hvguard refuses --no-pin with corrections (the frozen-VMM
    record must outlive the daemon), and one daemon per directory."""
    path = f"/sys/fs/bpf/hvguard-{tag}-{os.getpid()}"
    _pin_dirs.append(path)
    return path


@atexit.register
def _remove_pin_dirs():
    for path in _pin_dirs:
        shutil.rmtree(path, ignore_errors=True)


class Tap:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def ok(self, name, cond, expected="", got=""):
        """One assertion. `expected` and `got` are shown only on failure."""
        if HOOKS:
            name = f"{name} [hooks {HOOKS}]"
        if cond:
            self.passed += 1
            print(f"ok - {name}", flush=True)
        else:
            self.failed += 1
            why = f"expected {expected}, got {got}" if expected or got else "failed"
            print(f"not ok - {name} # {why}", flush=True)
        return cond

    def eq(self, name, got, expected):
        return self.ok(name, got == expected, repr(expected), repr(got))

    def fail(self, name, reason):
        """A test that could not run: it fails with its reason."""
        if HOOKS:
            name = f"{name} [hooks {HOOKS}]"
        self.failed += 1
        print(f"not ok - {name} # {reason}", flush=True)

    def note(self, text):
        """A diagnostic line (TAP comment), for the reader of the log."""
        for line in str(text).splitlines():
            print(f"# {line}", flush=True)

    def exit_code(self):
        return 1 if self.failed else 0


class HvguardError(Exception):
    pass


class Hvguard:
    """`$HVGUARD run --json ARGS`, read line by line in a thread.

    Every JSON object it prints lands in self.lines (with the host's
    monotonic arrival time in "_t"); alerts() filters them. Its stderr goes
    to `log` so a failure can be explained.
    """

    def __init__(self, args=(), log=None, ready_timeout=30.0):
        binary = os.environ.get("HVGUARD", "build/hvguard")
        if not os.access(binary, os.X_OK):
            raise HvguardError(f"no hvguard binary at {binary} (run make)")
        self.lines = []
        self.garbage = []  # stdout lines that were not JSON objects
        if HOOKS and "--hooks" not in args:
            args = [*args, "--hooks", HOOKS]
        self.cond = threading.Condition()
        self.log_path = log
        err = open(log, "w") if log else subprocess.DEVNULL
        # TERM, not KILL: an orphaned daemon still detaches its programs.
        self.proc = subprocess.Popen(
            orphan_proof([binary, "run", "--json", *args], "TERM"),
            stdout=subprocess.PIPE, stderr=err, text=True, bufsize=1)
        if log:
            err.close()
        self.thread = threading.Thread(target=self._reader, daemon=True)
        self.thread.start()
        self.ready = self.wait_for(lambda o: o.get("type") == "ready", ready_timeout)
        # The clock family's hook tier: what some fields depend on.
        self.hooks = ((self.ready or {}).get("hooks") or {}).get("clock")
        if not self.ready:
            rc = self.proc.poll()
            self.kill()
            when = (f"exited {rc} before" if rc is not None
                    else "still running without")
            errors = [o.get("message") for o in self.lines
                      if o.get("type") == "error"]
            raise HvguardError(f"hvguard {when} its ready line after "
                               f"{ready_timeout} s at most; errors: {errors}; "
                               f"{self.stderr_tail()}")

    def _reader(self):
        for raw in self.proc.stdout:
            try:
                obj = json.loads(raw)
                if not isinstance(obj, dict):
                    raise ValueError
            except ValueError:
                with self.cond:
                    self.garbage.append(raw.rstrip("\n"))
                continue
            obj["_t"] = time.monotonic()
            with self.cond:
                self.lines.append(obj)
                self.cond.notify_all()
        with self.cond:  # EOF: wake waiters so they notice the exit
            self.cond.notify_all()

    def wait_for(self, pred, timeout):
        """Waits until some line matches pred; returns it, or None."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for o in self.lines:
                    if pred(o):
                        return o
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None
                                 and not self.thread.is_alive()):
                    return None
                self.cond.wait(left)

    def alerts(self, pred=lambda a: True):
        with self.cond:
            return [o for o in self.lines if o.get("type") == "alert" and pred(o)]

    def stderr_tail(self, n=5):
        if not self.log_path:
            return "no stderr log"
        try:
            with open(self.log_path) as f:
                tail = f.read().strip().splitlines()[-n:]
        except OSError:
            return "no stderr log"
        return "stderr: " + (" | ".join(tail) if tail else "(empty)")

    def stop(self, timeout=10.0):
        """SIGINT, then waits for the exit. Returns (exit status, summary
        object or None). Kills it if it does not exit in time (status None)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            rc = None
        self.thread.join(2)
        with self.cond:
            summaries = [o for o in self.lines if o.get("type") == "summary"]
        return rc, (summaries[-1] if summaries else None)

    def stop_and_check(self, tap):
        """stop() plus the assertions every test of the daemon makes: exit
        status 0 after SIGINT, a summary line that counts the alerts printed,
        nothing but JSON objects on stdout."""
        rc, summary = self.stop()
        tap.eq("hvguard: exit status 0 after SIGINT", rc, 0)
        if tap.ok("hvguard: summary line at exit", summary is not None,
                  "a summary line", self.stderr_tail()):
            tap.eq("hvguard: summary counts every alert it printed",
                   summary.get("alerts"), len(self.alerts()))
        tap.ok("hvguard: every stdout line is a JSON object", not self.garbage,
               "none other", self.garbage[:3])

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Qemu:
    """qemu-system-x86_64 -accel kvm, prelaunch (-S) by default, with a QMP
    unix socket in `tmpdir`. self.pid is QEMU's own pid, the one hvguard
    reports (setpriv execs QEMU; no shell in between)."""

    def __init__(self, name, tmpdir, mem=128, smp=2, extra=(), prelaunch=True,
                 serial=None):
        # Imported here so that users of Tap/Hvguard need not have qmp.py.
        sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "qemu"))
        from qmp import QMP

        self.name = name
        self.sock = os.path.join(tmpdir, f"{name}.qmp")
        self.log_path = os.path.join(tmpdir, f"{name}.qemu.log")
        cmd = [QEMU, "-accel", "kvm", "-nodefaults", "-nographic",
               "-display", "none", "-m", str(mem), "-smp", str(smp),
               "-name", f"guest={name}",
               "-qmp", f"unix:{self.sock},server=on,wait=off",
               "-serial", serial or "none", *extra]
        if prelaunch:
            cmd.append("-S")
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(orphan_proof(cmd), stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log)
        self.pid = self.proc.pid
        try:
            self.qmp = QMP(self.sock, timeout=90 if EMULATED else 15)
        except Exception as e:
            self.kill()
            raise RuntimeError(f"QEMU {name} did not come up: {e}; "
                               f"{self.log_tail()}") from e

    def cmd(self, name, **args):
        return self.qmp.cmd(name, **args)

    def timed(self, name, **args):
        """Runs a command; returns the host monotonic time of its reply."""
        self.qmp.cmd(name, **args)
        return time.monotonic()

    def log_tail(self, n=5):
        try:
            with open(self.log_path) as f:
                lines = [l for l in f.read().splitlines()
                         if "host doesn't support requested feature" not in l]
        except OSError:
            return "no QEMU log"
        return "QEMU log: " + (" | ".join(lines[-n:]) if lines else "(empty)")

    def quit(self, timeout=10.0):
        """Asks QEMU to quit over QMP; kills it if it does not."""
        try:
            self.qmp.cmd("quit")
        except Exception:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        self.kill()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if hasattr(self, "qmp"):
            self.qmp.close()
