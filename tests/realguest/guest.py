"""A real Linux guest (Debian's 6.1 kernel under QEMU -accel kvm) whose
init, rgclock, prints what it sees of its clocks on its serial console
(tests/realguest/rgclock.c), and the scenarios that pause it over QMP.

Everything the guest saw is read back from its serial log: RG lines, each
with the log offset it starts at, so that a scenario takes the lines the
guest printed after the scenario began. Python 3 stdlib only.
"""

import os
import re
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from hvtest import EMULATED, Qemu  # noqa: E402

# Under nested TCG the guest's boot takes a minute or more, more with both
# cores busy; its TSC calibration another 10 s of its own time.
BOOT_TIMEOUT = 900 if EMULATED else 120
SAMPLE = re.compile(r"^RG s (.*)$")


def _fields(text):
    out = {}
    for word in text.split():
        k, _, v = word.partition("=")
        try:
            out[k] = int(v)
        except ValueError:
            out[k] = None if v == "none" else v
    return out


class Guest:
    """One boot of the guest: QEMU with a QMP socket, a serial log and a
    qcow2 drive (savevm stores its snapshots there)."""

    def __init__(self, name, tmp, kernel, initrd, mem=128):
        self.name, self.tmp, self.kernel, self.initrd, self.mem = name, tmp, kernel, initrd, mem
        self.t_start = time.monotonic()
        self.vm, self.serial = self._qemu(name, tmp)
        self.pid = self.vm.pid
        self.ready = None
        # Started prelaunch (-S) and then let go, as the qemu stage's QEMUs.
        self.vm.cmd("cont")

    def _qemu(self, tag, tmp, extra=()):
        """A QEMU of this guest: its serial log and qcow2 drive named by
        `tag`, its QMP socket in `tmp` (one per QEMU)."""
        serial = os.path.join(self.tmp, f"{tag}.serial")
        disk = os.path.join(self.tmp, f"{tag}.qcow2")
        if os.path.exists(disk):
            os.unlink(disk)
        rc = os.system(f"qemu-img create -q -f qcow2 {disk} 64M")
        if rc:
            raise RuntimeError(f"qemu-img create {disk}: exit {rc}")
        vm = Qemu(self.name, tmp, mem=self.mem, smp=1, serial=f"file:{serial}",
                  extra=("-kernel", self.kernel, "-initrd", self.initrd, "-no-reboot",
                         "-append", "console=ttyS0 rdinit=/init quiet loglevel=3 panic=-1",
                         "-drive", f"file={disk},if=none,id=snap,format=qcow2", *extra))
        return vm, serial

    def incoming(self, port):
        """A second QEMU with the same command line, waiting (-S) for this
        guest on tcp:127.0.0.1:port: the destination of a live migration.
        Its own serial log and drive (the guest never reads the drive: it
        holds savevm's snapshots, and two QEMUs cannot lock one file)."""
        n = getattr(self, "moves", 0) + 1
        self.moves = n
        dtmp = os.path.join(self.tmp, f"{self.name}-dst{n}")
        os.makedirs(dtmp, exist_ok=True)
        return self._qemu(f"{self.name}-dst{n}", dtmp,
                          ("-incoming", f"tcp:127.0.0.1:{port}"))

    def moved_to(self, vm, serial):
        """The guest lives in `vm` now."""
        self.vm, self.serial, self.pid = vm, serial, vm.pid

    def quit_source(self):
        """Quits the QEMU the guest migrated from, if it still runs."""
        src, self.source = getattr(self, "source", None), None
        if src:
            src.quit()

    def log(self):
        try:
            with open(self.serial, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def size(self):
        try:
            return os.path.getsize(self.serial)
        except OSError:
            return 0

    def lines(self, start=0):
        """(offset, line) of every complete RG line from byte `start` on."""
        data = self.log().encode("utf-8", "replace")
        out, pos = [], 0
        for raw in data.split(b"\n")[:-1]:
            line = raw.decode("utf-8", "replace").replace("\r", "")
            if pos >= start and line.startswith("RG "):
                out.append((pos, line))
            pos += len(raw) + 1
        return out

    def samples(self, start=0):
        """The guest's samples printed from byte `start` on, as dicts."""
        out = []
        for pos, line in self.lines(start):
            m = SAMPLE.match(line)
            if m:
                s = _fields(m.group(1))
                s["_pos"] = pos
                out.append(s)
        return out

    def wait_ready(self, timeout=BOOT_TIMEOUT):
        """Waits for rgclock's ready line; returns its fields or None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for _, line in self.lines():
                if line.startswith("RG ready "):
                    self.ready = _fields(line[len("RG ready "):])
                    self.boot_s = time.monotonic() - self.t_start
                    return self.ready
            if self.vm.proc.poll() is not None:
                return None
            time.sleep(1)
        return None

    def tail(self, n=5):
        lines = [l for l in self.log().replace("\r", "").splitlines() if l.strip()]
        return " | ".join(lines[-n:]) or "(empty serial log)"

    def hmp(self, command):
        """An HMP command; QEMU reports HMP errors as text, raised here."""
        out = self.vm.cmd("human-monitor-command", **{"command-line": command}) or ""
        if "rror" in out:
            raise RuntimeError(f"{command}: {out.strip()}")
        return out

    def wait_samples(self, start, count, timeout):
        """Waits until the guest printed `count` ev=1 samples and one more
        sample after them, from byte `start` on; returns all samples."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.samples(start)
            ev = [i for i, s in enumerate(got) if s.get("ev") == 1]
            if len(ev) >= count and len(got) > ev[count - 1] + 1:
                return got
            if time.monotonic() > deadline:
                return got
            time.sleep(0.5)

    def quit(self):
        self.quit_source()
        self.vm.quit()


def magnitude(s):
    """How much happened at a sample: its largest clock step, or the time
    its TSC says passed since the sample before (a repaired pause)."""
    return max(abs(s.get("dskew_ns") or 0), abs(s.get("doff_ns") or 0),
               (s.get("gap_tsc_ms") or 0) * 1_000_000)


# --- scenarios: each returns (what it did, in words; the pause measured
# here, in ns; the number of resumes it made) ------------------------------

def stop_cont(g, pause):
    """QMP stop, `pause` s, cont: QEMU restores the kvm-clock it read at
    the stop; the TSC ran on."""
    t0 = g.vm.timed("stop")
    time.sleep(pause)
    t1 = g.vm.timed("cont")
    return round((t1 - t0) * 1e9), 1


def savevm_loadvm(g, pause):
    """savevm of the running guest (QEMU stops it, saves, resumes it), the
    guest runs on `pause` s, then loadvm (QEMU stops it, loads the
    snapshot, resumes it): memory, TSC and kvm-clock back to the save."""
    t0 = time.monotonic()
    g.hmp("savevm rg-snap")
    time.sleep(pause)
    g.hmp("loadvm rg-snap")
    t1 = time.monotonic()
    g.hmp("delvm rg-snap")
    return round((t1 - t0) * 1e9), 2


def tsc_rewrite(g, pause):
    """A resume that rewrites the TSC: stop, savevm, `pause` s, loadvm,
    cont. The guest resumes from its state at the stop, its TSC written
    back to the value QEMU saved (KVM_SET_MSRS) and its kvm-clock too, as
    after QEMU's loadvm or an incoming migration."""
    t0 = g.vm.timed("stop")
    g.hmp("savevm rg-tsc")
    time.sleep(pause)
    g.hmp("loadvm rg-tsc")
    t1 = g.vm.timed("cont")
    g.hmp("delvm rg-tsc")
    return round((t1 - t0) * 1e9), 1


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _event_ns(vm, name):
    """CLOCK_REALTIME in ns of the last QMP event `name` QEMU sent."""
    vm.cmd("query-status")  # collects the events queued on the socket
    ts = [e["timestamp"] for e in vm.qmp.events if e.get("event") == name]
    return ts[-1]["seconds"] * 1_000_000_000 + ts[-1]["microseconds"] * 1000 if ts else None


MIGRATE_TIMEOUT = 300 if EMULATED else 60


def live_migration(g, pause):
    """A live migration to a second QEMU on this host over loopback, the
    destination started with -S and let go `pause` s after the migration
    completed (as a management layer that starts it paused does). QEMU 7.2
    writes the source's TSC, read at its stop, at the end of the load, and
    the kvm-clock read at the source's save at the destination's cont: the
    guest's kvm-clock loses the whole downtime, its TSC the transfer only.
    The pause reported: the source's STOP event to the destination's
    RESUME (QMP timestamps). The guest lives in the destination after."""
    port = _free_port()
    dst, serial = g.incoming(port)
    src = g.vm
    try:
        src.cmd("migrate-set-parameters", **{"max-bandwidth": 1 << 40})
        src.cmd("migrate", uri=f"tcp:127.0.0.1:{port}")
        deadline = time.monotonic() + MIGRATE_TIMEOUT
        while True:
            info = src.cmd("query-migrate")
            if info.get("status") in ("completed", "failed", "cancelled"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"migration still {info.get('status')} after "
                                   f"{MIGRATE_TIMEOUT} s")
            time.sleep(0.1)
        if info.get("status") != "completed":
            raise RuntimeError(f"migration {info.get('status')}: {info}; "
                               f"destination {dst.log_tail()}")
        time.sleep(pause)
        dst.cmd("cont")
        stop, resume = _event_ns(src, "STOP"), _event_ns(dst, "RESUME")
    except Exception:
        dst.kill()
        raise
    g.moved_to(dst, serial)
    # The source stays paused (postmigrate) until the caller has hvguard's
    # verdict: the daemon matches an arrival against the paused VMs and
    # the departures of the host at the destination's first entry, and a
    # source that quits in between is neither (README, Live migration).
    g.source = src
    if stop is None or resume is None:
        raise RuntimeError(f"QMP events missing: source STOP {stop}, destination RESUME {resume}")
    return resume - stop, 1


SCENARIOS = (("stop/cont", stop_cont), ("savevm/loadvm", savevm_loadvm),
             ("TSC-rewriting resume", tsc_rewrite), ("live migration", live_migration))


def run_scenario(g, fn, pause, settle=3.0):
    """Runs one scenario; returns a record of what the guest saw: the event
    (its ev=1 sample with the largest step: the one after the last resume),
    every ev=1 sample in the window, the pause measured here."""
    start, serial = g.size(), g.serial
    pause_ns, resumes = fn(g, pause)
    if g.serial != serial:
        start = 0  # the guest moved to another QEMU, another serial log
    got = g.wait_samples(start, resumes, 120 if EMULATED else 20)
    time.sleep(settle)
    got = g.samples(start)
    evs = [s for s in got if s.get("ev") == 1]
    event = max(evs, key=magnitude) if evs else None
    return {"pause_ns": pause_ns, "event": event, "events": evs}
