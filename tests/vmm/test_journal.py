#!/usr/bin/env python3
"""--log journald, read back as journald would receive it.

No systemd runs here, so this test is the journal: in a private mount
namespace (unshare -m; the host's /run is never touched) it mounts a tmpfs
where journald's socket lives, binds a unix datagram socket at
/run/systemd/journal/socket, and parses what libsystemd's sd_journal_sendv
sends there: the native protocol, KEY=value lines, or KEY, a 64-bit
little-endian length and the raw bytes for a value holding a newline; an
entry too big for a datagram comes as a memfd (SCM_RIGHTS).

Asserted: PRIORITY from the rule's severity (critical 2, warning 4, info 6,
the last two after SIGHUP reloads), HVGUARD_RULE/PID/VM/VM_NAME/SEVERITY,
a VM name with a newline kept whole in its field and escaped in MESSAGE,
corrections at 5 (applied) or 4, a broken reload's warning at 4 with its
FILE:LINE:COL, --exec hooks' output on a journal stream of its own
(sd_journal_stream_fd, the stdout socket, also served here), and nothing
at all on the daemon's stdout.
"""

import array
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from hvtest import EMULATED, HOOKS, Tap, orphan_proof, pin_dir  # noqa: E402
from polling import wait_until  # noqa: E402
from test_vmm import run_vmm  # noqa: E402

HV = os.path.abspath(os.environ.get("HVGUARD", "build/hvguard"))
SOCKET = "/run/systemd/journal/socket"
STDOUT = "/run/systemd/journal/stdout"  # sd_journal_stream_fd's stream socket
SLOW = 6 if EMULATED else 1
tap = Tap()


def private_namespace():
    """Re-executes this test under `unshare -m` unless already in a mount
    namespace of its own; then mounts a tmpfs for the socket there."""
    mine = os.readlink("/proc/self/ns/mnt")
    before = os.environ.get("HVGUARD_JOURNAL_NS")
    if not before:
        os.environ["HVGUARD_JOURNAL_NS"] = mine
        os.execvp("unshare", ["unshare", "-m", "--propagation", "private",
                              sys.executable, os.path.abspath(__file__)])
    if before == mine:
        raise RuntimeError("unshare -m gave no private mount namespace")
    where = "/run/systemd/journal" if os.path.isdir("/run/systemd/journal") else "/run"
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "hvguard-journal-test", where],
                   check=True)
    os.makedirs("/run/systemd/journal", exist_ok=True)


def parse_native(data):
    """One datagram of the native journal protocol -> {KEY: value}."""
    fields = {}
    i = 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            k, v = line.split(b"=", 1)
            fields[k.decode()] = v.decode(errors="replace")
            i = nl + 1
        else:
            (size,) = struct.unpack_from("<Q", data, nl + 1)
            start = nl + 9
            fields[line.decode()] = data[start:start + size].decode(errors="replace")
            i = start + size + 1  # the value's trailing newline
    return fields


class Journal:
    def __init__(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(SOCKET)
        self.entries = []
        self.bad = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        fds = array.array("i")
        while True:
            try:
                data, anc, _, _ = self.sock.recvmsg(1 << 20, socket.CMSG_SPACE(4 * fds.itemsize))
            except OSError:
                return
            for level, kind, raw in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fd = struct.unpack("i", raw[:4])[0]
                    with os.fdopen(fd, "rb") as f:
                        data = f.read()
            try:
                entry = parse_native(data)
            except (ValueError, struct.error) as e:
                with self.cond:
                    self.bad.append((repr(data[:200]), str(e)))
                continue
            with self.cond:
                self.entries.append(entry)
                self.cond.notify_all()

    def find(self, pred):
        with self.cond:
            return [e for e in self.entries if pred(e)]

    def wait(self, pred, timeout):
        return wait_until(lambda: self.find(pred), timeout, 0.05)


class Streams:
    """journald's stdout socket: each connection is a header (identifier,
    unit, priority, level prefix, three forward flags; one per line), then
    the lines logged through it."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(STDOUT)
        self.sock.listen(8)
        self.conns = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            buf = bytearray()
            with self.lock:
                self.conns.append(buf)
            threading.Thread(target=self._read, args=(c, buf), daemon=True).start()

    def _read(self, c, buf):
        while True:
            data = c.recv(65536)
            if not data:
                return
            with self.lock:
                buf.extend(data)

    def data(self):
        with self.lock:
            return [bytes(b) for b in self.conns]


def alerts_of(j, pid):
    return j.find(lambda e: e.get("HVGUARD_TYPE") == "alert" and e.get("HVGUARD_PID") == str(pid))


def one_pause(j, name, severity, priority):
    pid, cycles, _ = run_vmm(["qemu-stopcont", "--pause-ms", "200", "-name", f"guest={name}"])
    got = wait_until(lambda: alerts_of(j, pid), 20 * SLOW, 0.05)
    tap.eq(f"journal: one entry for the {severity} alert", len(got or []), len(cycles))
    if not got:
        return None, pid
    e = got[0]
    tap.eq(f"journal: {severity} alert: PRIORITY={priority}", e.get("PRIORITY"), str(priority))
    tap.eq(f"journal: {severity} alert: HVGUARD_RULE, HVGUARD_SEVERITY",
           (e.get("HVGUARD_RULE"), e.get("HVGUARD_SEVERITY")), ("kvmclock-jump", severity))
    return e, pid


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def main():
    try:
        private_namespace()
        j = Journal()
        streams = Streams()
    except (OSError, RuntimeError, subprocess.CalledProcessError) as e:
        tap.fail("journal: a private journald socket for the test", str(e))
        return tap.exit_code()
    tmp = tempfile.mkdtemp(prefix="hvguard-journal-")
    rules = os.path.join(tmp, "rules.yaml")
    write(rules, "rules:\n  kvmclock-jump:\n    severity: critical\n")
    hook = "cat >/dev/null; echo HOOK-OUT; echo HOOK-ERR >&2"
    # Corrections need a pin directory (a frozen VMM outlives the daemon).
    args = [HV, "run", "--log", "journald", "--pin-dir", pin_dir("journal"), "--correct",
            "--rules", rules,
            "--exec", hook]
    if HOOKS:
        args += ["--hooks", HOOKS]
    err = open(os.path.join(tmp, "hvguard.err"), "w")
    hv = subprocess.Popen(orphan_proof(args, "TERM"), stdout=subprocess.PIPE, stderr=err)
    try:
        ready = j.wait(lambda e: "watching" in e.get("MESSAGE", ""), 30 * SLOW)
        if not tap.ok("journal: the ready line is an entry (PRIORITY=6)",
                      ready and ready[0].get("PRIORITY") == "6", "PRIORITY 6", ready):
            return tap.exit_code()
        e, pid = one_pause(j, "evil\nline", "critical", 2)
        if e:
            tap.eq("journal: HVGUARD_PID is the VMM's pid", e.get("HVGUARD_PID"), str(pid))
            tap.ok("journal: HVGUARD_VM is the VM's id", e.get("HVGUARD_VM", "").isdigit(),
                   "digits", e.get("HVGUARD_VM"))
            tap.eq("journal: HVGUARD_VM_NAME holds the name whole (binary-safe field)",
                   e.get("HVGUARD_VM_NAME"), "evil\nline")
            tap.ok("journal: MESSAGE shows the newline escaped, on one line",
                   "evil\\x0aline" in e.get("MESSAGE", "") and "\n" not in e.get("MESSAGE", ""),
                   "evil\\x0aline", e.get("MESSAGE"))
            tap.eq("journal: SYSLOG_IDENTIFIER=hvguard", e.get("SYSLOG_IDENTIFIER"), "hvguard")
        corr = j.wait(lambda c: c.get("HVGUARD_TYPE") == "correction" and
                      c.get("HVGUARD_PID") == str(pid), 20 * SLOW)
        if tap.ok("journal: the correction is an entry", bool(corr), "an entry", corr):
            c = corr[0]
            want = "5" if c.get("HVGUARD_RESULT") == "applied" else "4"
            tap.note(f"correction result {c.get('HVGUARD_RESULT')}")
            tap.eq("journal: correction: PRIORITY 5 when applied, else 4",
                   c.get("PRIORITY"), want)
            tap.eq("journal: correction: HVGUARD_RULE", c.get("HVGUARD_RULE"), "kvmclock-jump")
        # The hooks' stdout and stderr: a journal stream named hvguard-exec.
        hooked = wait_until(lambda: [d for d in streams.data()
                                     if b"HOOK-OUT" in d and b"HOOK-ERR" in d], 20 * SLOW, 0.1)
        tap.ok("journal: the hooks' stdout and stderr reach the journal as hvguard-exec",
               hooked and hooked[0].startswith(b"hvguard-exec\n"), "a stream", streams.data())
        write(rules, "rules:\n  kvmclock-jump:\n    severity: [\n")
        hv.send_signal(signal.SIGHUP)
        w = j.wait(lambda x: x.get("HVGUARD_TYPE") == "warning" and "reload" in x.get("MESSAGE", ""),
                   10 * SLOW)
        pos = re.escape(rules) + r":\d+:\d+: "
        tap.ok("journal: a broken reload is a warning entry (PRIORITY=4) with FILE:LINE:COL",
               w and w[0].get("PRIORITY") == "4" and re.search(pos, w[0].get("MESSAGE", "")),
               "PRIORITY 4, FILE:LINE:COL", w)
        tap.note(f"reload warning: {w[0].get('MESSAGE') if w else None}")
        write(rules, "rules:\n  kvmclock-jump:\n    severity: warning\n")
        hv.send_signal(signal.SIGHUP)
        j.wait(lambda x: "rules reloaded" in x.get("MESSAGE", ""), 10 * SLOW)
        one_pause(j, "w", "warning", 4)
        write(rules, "rules:\n  kvmclock-jump:\n    severity: info\n")
        n = len(j.find(lambda x: "rules reloaded" in x.get("MESSAGE", "")))
        hv.send_signal(signal.SIGHUP)
        j.wait(lambda x: len(j.find(lambda y: "rules reloaded" in y.get("MESSAGE", ""))) > n,
               10 * SLOW)
        one_pause(j, "i", "info", 6)
        hv.send_signal(signal.SIGUSR1)
        st = j.wait(lambda x: x.get("MESSAGE", "").startswith("state: up"), 10 * SLOW)
        tap.ok("journal: SIGUSR1's state is one entry (PRIORITY=6) with VMs, alerts and hooks",
               st and st[0].get("PRIORITY") == "6" and
               all(k in st[0].get("MESSAGE", "") for k in
                   ("KVM VM(s) tracked", "3 alert(s)", "exec ran")), "state line", st)
    finally:
        hv.send_signal(signal.SIGTERM)
        try:
            out, _ = hv.communicate(timeout=30 * SLOW)
            rc = hv.returncode
        except subprocess.TimeoutExpired:
            hv.kill()
            out, _ = hv.communicate()
            rc = None
        err.close()
    tap.eq("journal: exit status 0 after SIGTERM", rc, 0)
    tap.ok("journal: the summary is an entry",
           bool(j.wait(lambda e: "stopped after" in e.get("MESSAGE", ""), 5)), "an entry")
    tap.eq("journal: nothing on stdout (no line twice)", out.decode(errors="replace"), "")
    tap.eq("journal: every datagram parsed", j.bad, [])
    return tap.exit_code()


if __name__ == "__main__":
    sys.exit(main())
