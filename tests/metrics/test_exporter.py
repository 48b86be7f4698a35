#!/usr/bin/env python3
"""The exporter from the attacker's side, and its HTTP contract.

- Flood: user nobody opens 1100 idle connections to the metrics port, from
  127.0.0.1 (the scraper's own address: the per-address limit), then from
  200 loopback addresses (the total limit). The daemon's fds stay bounded,
  a scrape answers again within the idle timeout, an alert still arrives
  (and reaches a real Prometheus), stderr stays a few lines that say what
  they suppressed, and the refusals are counted.
- A daemon whose every fd is numbered above 1024 (no select()) serves
  /healthz (200 "ok"; 503 once its main loop stalls on a full stdout pipe,
  while /metrics still answers), 404, 405 with Allow, HEAD; it raised its
  RLIMIT_NOFILE.
- --metrics forms: [::1]:PORT, :PORT and PORT listen where they say; a
  port in use is an error at start.
The limits are read from user/http.h and user/fdlimit.h, not repeated here.
"""

import fcntl
import http.client
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
sys.path.insert(0, os.path.dirname(__file__))
from hvtest import EMULATED, HOOKS, Hvguard, HvguardError, Tap, orphan_proof  # noqa: E402
from polling import wait_until  # noqa: E402
from test_prometheus import free_port, promql, sample, start_prometheus  # noqa: E402

HV = os.environ.get("HVGUARD", "build/hvguard")
TOOLS = os.environ.get("HVGUARD_TOOLS", "build/tests")
MINIVMM = os.path.join(TOOLS, "minivmm")
FLOOD = os.path.join(os.path.dirname(__file__), "idle_flood.py")
NOBODY = 65534
CONNECTIONS = 1100
# Under nested TCG (HVGUARD_EMULATED) every step takes 10-100x longer: a
# Python process opening 1100 sockets, the daemon's thread accepting them,
# a minivmm run. These are the bounds given to each there, and here.
SLACK_S = 20.0 if EMULATED else 3.0
ALERT_S = 60.0 if EMULATED else 15.0
# The daemon's own transient fds (a /proc directory its loop scans, a
# socket being accepted and closed) on top of what the limit lets clients
# hold.
FD_SLACK = 6
tap = Tap()


def limits():
    """The #defines of user/http.h and user/fdlimit.h, by name."""
    vals = {}
    for path in ("user/http.h", "user/fdlimit.h"):
        with open(path) as f:
            for m in re.finditer(r"^#define\s+(HV_\w+)\s+(\d+)\s*$", f.read(), re.M):
                vals[m[1]] = int(m[2])
    return vals


LIM = limits()


def request(host, port, method="GET", path="/", timeout=5.0, body=None):
    """(status, headers dict with lower-case names, body text)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode()
    finally:
        conn.close()


def try_request(*args, **kw):
    try:
        return request(*args, **kw)
    except (OSError, http.client.HTTPException) as e:
        return None, {}, repr(e)


def nfds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


class FdWatch:
    """The most fds the process had, sampled every 50 ms until stop()."""

    def __init__(self, pid):
        self.pid, self.most, self.done = pid, nfds(pid), threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done.wait(0.05):
            self.most = max(self.most, nfds(self.pid))

    def stop(self):
        self.done.set()
        self.thread.join()
        return self.most


def raise_own_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    hard = hard if hard == resource.RLIM_INFINITY else max(hard, want)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))


class Flood:
    """idle_flood.py as user nobody (setpriv): CONNECTIONS idle sockets,
    held until release()."""

    def __init__(self, port, sources=1):
        with open(FLOOD) as f:
            src = f.read()
        # The script as an argument: nobody need not be able to read this tree.
        python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
        self.proc = subprocess.Popen(
            orphan_proof(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                          "--clear-groups", python, "-c", src, str(port),
                          str(CONNECTIONS), str(sources)]),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.report = None
        line = []
        reader = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(120 if EMULATED else 30)
        if line and line[0]:
            self.report = json.loads(line[0])

    def release(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def check_flood_report(what, flood):
    r = flood.report or {}
    tap.ok(f"{what}: the attacker runs as nobody and completed {CONNECTIONS} connects",
           r.get("uid") == NOBODY and r.get("connected") == CONNECTIONS,
           f"uid {NOBODY}, {CONNECTIONS} connected", r)


def scrape_recovers(port, t0, bound):
    """Scrapes every 0.2 s until one answers 200 or bound s after t0 pass:
    (seconds after t0 of the first 200 or None, that request's own seconds)."""
    while time.monotonic() - t0 < bound:
        t = time.monotonic()
        status, _, _ = try_request("127.0.0.1", port, path="/metrics", timeout=5)
        if status == 200:
            return time.monotonic() - t0, time.monotonic() - t
        time.sleep(0.2)
    return None, None


def run_minivmm():
    subprocess.run([MINIVMM, "qemu-stopcont", "--pause-ms", "200"], check=True,
                   capture_output=True, timeout=ALERT_S * 2)


def stderr_size(hv):
    try:
        return os.path.getsize(hv.log_path)
    except OSError:
        return -1


def flood_same_address(hv, mport, pport):
    """1100 idle connections from 127.0.0.1: the per-address limit."""
    pid, timeout_s = hv.proc.pid, LIM["HV_HTTP_TIMEOUT_S"]
    per_ip = LIM["HV_HTTP_MAX_PER_IP"]
    base_fds, base_err = nfds(pid), stderr_size(hv)
    watch = FdWatch(pid)
    started = time.monotonic()
    flood = Flood(mport)
    t0 = time.monotonic()
    # The daemon holds per_ip of the address's connections and refuses the
    # rest; each idle timeout that passes while the flood is still
    # connecting (seconds under TCG) frees those slots for per_ip more.
    held = per_ip * (1 + int((t0 - started) // timeout_s))
    try:
        check_flood_report("flood from 127.0.0.1", flood)
        took, one = scrape_recovers(mport, t0, timeout_s + SLACK_S)
        tap.note(f"flood from 127.0.0.1: first scrape answered {took} s after the flood was "
                 f"up (that request: {one} s); idle timeout {timeout_s} s")
        tap.ok(f"flood from 127.0.0.1: a scrape answers within the idle timeout "
               f"({timeout_s} s) + {SLACK_S} s", took is not None,
               f"a 200 within {timeout_s + SLACK_S} s", took)
        run_minivmm()
        alert = hv.wait_for(lambda o: o.get("type") == "alert"
                            and o.get("rule") == "kvmclock-jump", ALERT_S)
        tap.ok("flood from 127.0.0.1: the kvmclock-jump alert still arrives",
               alert is not None, "an alert line", hv.stderr_tail())
        seen = wait_until(lambda: promql(
            pport, 'hvguard_violations_total{rule="kvmclock-jump"} >= 1'), ALERT_S, 0.5)
        tap.ok("flood from 127.0.0.1: Prometheus still scrapes the violation", bool(seen),
               ">= 1", seen)
        # The bucket's count of what it dropped: said once a token is back.
        said = wait_until(lambda: "suppressed" in open(hv.log_path).read(),
                          LIM["HV_HTTP_LOG_EVERY_S"] + SLACK_S, 0.5)
        tap.ok("flood from 127.0.0.1: stderr says how many exporter messages it suppressed",
               said, "a 'N message(s) suppressed' line", hv.stderr_tail())
        most = watch.stop()
        tap.note(f"flood from 127.0.0.1: daemon fds {base_fds} before, at most {most} during")
        tap.ok(f"flood from 127.0.0.1: the daemon's fds grow by at most the per-address "
               f"limit ({per_ip}) + {FD_SLACK}", 0 < most <= base_fds + per_ip + FD_SLACK,
               f"<= {base_fds + per_ip + FD_SLACK}", most)
        grown = stderr_size(hv) - base_err
        tap.note(f"flood from 127.0.0.1: stderr grew by {grown} bytes")
        tap.ok("flood from 127.0.0.1: stderr grows by under 4 KiB", 0 <= grown < 4096,
               "< 4096 bytes", grown)
        _, _, text = request("127.0.0.1", mport, path="/metrics")
        refused = sample(text, "hvguard_http_connections_refused_total")
        tap.note(f"flood from 127.0.0.1: its connects took {t0 - started:.1f} s: "
                 f"{held} of its connections may have been held")
        tap.ok("flood from 127.0.0.1: hvguard_http_connections_refused_total counts the "
               "refused connections", refused is not None and
               refused >= CONNECTIONS - held, f">= {CONNECTIONS - held}", refused)
        dropped = sample(text, "hvguard_http_log_suppressed_total")
        tap.ok("flood from 127.0.0.1: hvguard_http_log_suppressed_total counts the dropped "
               "lines", dropped is not None and dropped > 0, "> 0", dropped)
    finally:
        watch.stop()
        flood.release()


class Scraper:
    """One keep-alive connection, opened before a flood, that scrapes
    /metrics every 0.5 s: it keeps its slot, so it sees the exporter's own
    gauges while newcomers wait. Records the most each gauge showed."""

    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        self.most, self.scrapes, self.error = {}, 0, None
        self.done = threading.Event()
        self._scrape()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _scrape(self):
        self.conn.request("GET", "/metrics")
        text = self.conn.getresponse().read().decode()
        self.scrapes += 1
        for name in ("hvguard_http_connections", "hvguard_http_accept_queue"):
            v = sample(text, name)
            if v is not None:
                self.most[name] = max(self.most.get(name, 0), v)

    def _run(self):
        while not self.done.wait(0.5):
            try:
                self._scrape()
            except (OSError, http.client.HTTPException) as e:
                self.error = repr(e)
                return

    def stop(self):
        """One last scrape (the flood is up now), and the most seen."""
        if not self.done.is_set():
            self.done.set()
            self.thread.join()
            if not self.error:
                try:
                    self._scrape()
                except (OSError, http.client.HTTPException) as e:
                    self.error = repr(e)
            self.conn.close()
        return self.most


def flood_many_addresses(hv, mport):
    """1100 idle connections from 200 loopback addresses: the total limit."""
    pid, total = hv.proc.pid, LIM["HV_HTTP_MAX_CONNECTIONS"]
    base_fds = nfds(pid)
    alerts = len(hv.alerts(lambda a: a.get("rule") == "kvmclock-jump"))
    watch = FdWatch(pid)
    scraper = Scraper(mport)
    flood = Flood(mport, sources=200)
    try:
        check_flood_report("flood from 200 addresses", flood)
        most = scraper.stop()
        tap.note(f"flood from 200 addresses: a scraper connected before it saw, in "
                 f"{scraper.scrapes} scrapes, at most {most}")
        tap.eq(f"flood from 200 addresses: a keep-alive scraper connected before keeps "
               f"scraping, and sees hvguard_http_connections reach the total limit ({total}) "
               f"and no more", (most.get("hvguard_http_connections"), scraper.error),
               (float(total), None))
        tap.ok("flood from 200 addresses: hvguard_http_accept_queue counts most of the flood "
               "waiting", most.get("hvguard_http_accept_queue", 0) >= CONNECTIONS // 2,
               f">= {CONNECTIONS // 2}", most.get("hvguard_http_accept_queue"))
        run_minivmm()
        more = hv.wait_for(lambda o: o.get("type") == "alert" and
                           o.get("rule") == "kvmclock-jump" and
                           len(hv.alerts(lambda a: a.get("rule") == "kvmclock-jump")) > alerts,
                           ALERT_S)
        tap.ok("flood from 200 addresses: the kvmclock-jump alert still arrives",
               more is not None, "a second alert line", hv.stderr_tail())
        most = watch.stop()
        tap.note(f"flood from 200 addresses: daemon fds {base_fds} before, at most {most}")
        tap.ok(f"flood from 200 addresses: the daemon's fds grow by at most the total limit "
               f"({total}) + {FD_SLACK}", 0 < most <= base_fds + total + FD_SLACK,
               f"<= {base_fds + total + FD_SLACK}", most)
        tap.ok(f"flood from 200 addresses: the exporter holds connections up to its limit "
               f"(the flood was felt)", most >= base_fds + total // 2,
               f">= {base_fds + total // 2}", most)
    finally:
        scraper.stop()
        watch.stop()
        flood.release()
    t0 = time.monotonic()
    took, _ = scrape_recovers(mport, t0, SLACK_S)
    tap.note(f"flood from 200 addresses: a scrape answered {took} s after the flood left")
    tap.ok("flood from 200 addresses: once it leaves, a scrape answers at once",
           took is not None, f"a 200 within {SLACK_S} s", took)


def test_flood(tmp):
    mport, pport = free_port(), free_port()
    raise_own_nofile(CONNECTIONS + 256)
    try:
        hv = Hvguard(["--no-pin", "--metrics", f"127.0.0.1:{mport}"],
                     log=os.path.join(tmp, "flood.err"))
    except HvguardError as e:
        tap.fail("flood: hvguard --metrics starts", str(e))
        return
    prom = None
    try:
        prom = start_prometheus(tmp, mport, pport)
        up = wait_until(lambda: promql(pport, 'up{job="hvguard"} == 1'), 60, 0.5)
        tap.ok("flood: prometheus scrapes hvguard before the flood", bool(up), "up 1", up)
        flood_same_address(hv, mport, pport)
        flood_many_addresses(hv, mport)
    finally:
        if prom:
            prom.terminate()
            prom.wait(20)
        hv.stop_and_check(tap)


class Daemon:
    """hvguard run --json with a stdout pipe of 4 KiB that the test reads
    only while self.reading is set (clearing it stalls the daemon's main
    loop), and FDS extra fds inherited: every fd the daemon opens is
    numbered above them. Also used by test_alerting.py."""

    def __init__(self, args, err_path, fds=0):
        r, w = os.pipe()
        fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 4096)
        extra = [os.open("/dev/null", os.O_RDONLY) for _ in range(fds)]
        # Every fd of this process from 3 up (the pipe's two ends included),
        # so that the child has no hole below them where its own would land.
        keep = list(range(3, max([r, w, *extra]) + 1)) if extra else []
        if HOOKS:
            args = [*args, "--hooks", HOOKS]
        with open(err_path, "w") as err:
            self.proc = subprocess.Popen(orphan_proof([HV, "run", "--json", *args], "TERM"),
                                         stdout=w, stderr=err, pass_fds=keep)
        os.close(w)
        for fd in extra:
            os.close(fd)
        self.r, self.text, self.reading = r, "", threading.Event()
        self.reading.set()
        self.thread = threading.Thread(target=self._reader, daemon=True)
        self.thread.start()

    def _reader(self):
        while True:
            self.reading.wait()
            chunk = os.read(self.r, 65536)
            if not chunk:
                return
            self.text += chunk.decode(errors="replace")

    def ready(self, timeout):
        return wait_until(lambda: '"type":"ready"' in self.text, timeout, 0.1)

    def lines(self, kind):
        """The JSON objects of that type printed so far."""
        out = []
        for line in self.text.splitlines():
            try:
                o = json.loads(line)
            except ValueError:
                continue
            if isinstance(o, dict) and o.get("type") == kind:
                out.append(o)
        return out

    def stop(self):
        self.reading.set()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def socket_fds(pid):
    fds = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                fds.append(int(fd))
        except OSError:
            pass
    return fds


def check_endpoints(port):
    status, hdr, body = request("127.0.0.1", port, path="/healthz")
    lines = body.splitlines()
    tap.ok("/healthz answers 200 'ok' while the main loop runs",
           (status, lines[:1]) == (200, ["ok"]), "200 ok", (status, body))
    tap.ok("/healthz says each family's state and hook tier",
           any(l.startswith("clock: attached, hooks ") for l in lines)
           and any(l.startswith("xen: off: ") for l in lines),
           "clock: attached, hooks TIER / xen: off: WHY", lines)
    # Per-program BPF stats (on while the exporter is): a process exits,
    # so hv_clock_process_exit runs; the series refresh once a second.
    subprocess.run(["true"])
    time.sleep(2.5 if EMULATED else 1.5)
    status, _, metrics = request("127.0.0.1", port, path="/metrics")
    runs = [l for l in metrics.splitlines()
            if l.startswith('hvguard_bpf_program_runs_total{program="hv_clock_process_exit"}')]
    tap.ok("the kernel's BPF stats count hvguard's programs' runs",
           runs and float(runs[0].split()[-1]) > 0, "> 0 runs of hv_clock_process_exit", runs)
    tap.ok("... and their run time",
           'hvguard_bpf_program_run_seconds_total{program="hv_clock_process_exit"}' in metrics,
           "a run-time series", "none")
    tap.ok("hvguard_family_attached says the same",
           'hvguard_family_attached{family="clock",hooks="' in metrics
           and 'hvguard_family_attached{family="xen",hooks="none"} 0' in metrics,
           "clock 1 with its hooks, xen 0",
           [l for l in metrics.splitlines() if l.startswith("hvguard_family_attached")])
    status, hdr, body = request("127.0.0.1", port, "HEAD", "/healthz")
    tap.ok("HEAD /healthz answers 200 without a body", (status, body) == (200, ""),
           "200, empty", (status, body))
    status, _, body = request("127.0.0.1", port, path="/")
    tap.eq("GET / answers 200 as before", (status, body),
           (200, "hvguard exporter: metrics at /metrics\n"))
    status, hdr, text = request("127.0.0.1", port, path="/metrics")
    tap.ok("GET /metrics answers 200 in the Prometheus text format",
           status == 200 and hdr.get("content-type", "").startswith("text/plain; version=0.0.4"),
           "200 text/plain; version=0.0.4", (status, hdr.get("content-type")))
    for name in ("hvguard_http_connections_refused_total", "hvguard_http_log_suppressed_total"):
        tap.eq(f"{name} exists from the start, at 0", sample(text, name), 0.0)
    tap.ok("hvguard_http_connections counts this scrape's connection",
           (sample(text, "hvguard_http_connections") or 0) >= 1, ">= 1",
           sample(text, "hvguard_http_connections"))
    for path in ("/nope", "/metrics/x", "/healthz2"):
        status, _, _ = request("127.0.0.1", port, path=path)
        tap.eq(f"GET {path} answers 404", status, 404)
    for method, path in (("POST", "/metrics"), ("DELETE", "/healthz"), ("PUT", "/"),
                         ("OPTIONS", "/metrics")):
        status, hdr, _ = request("127.0.0.1", port, method, path, body="x=1")
        tap.ok(f"{method} {path} answers 405 with Allow: GET, HEAD",
               (status, hdr.get("allow")) == (405, "GET, HEAD"), "405, GET, HEAD",
               (status, hdr.get("allow")))


def check_stall(d, port):
    """A full stdout pipe stops the main loop (it blocks writing alerts):
    /healthz must say so, /metrics must not care, and both recover."""
    stale = LIM["HV_HEALTHZ_STALE_S"]
    d.reading.clear()
    cycles = subprocess.Popen([MINIVMM, "qemu-stopcont", "--pause-ms", "20", "--cycles", "20"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        t0 = time.monotonic()
        got = wait_until(lambda: try_request("127.0.0.1", port, path="/healthz")[0] == 503,
                         ALERT_S + stale + SLACK_S, 0.5)
        status, _, body = try_request("127.0.0.1", port, path="/healthz")
        tap.note(f"stall: /healthz answered {status} {body.strip()!r} after "
                 f"{time.monotonic() - t0:.1f} s")
        tap.ok("/healthz answers 503 'stalled' while the main loop is blocked",
               got and status == 503 and body.startswith("stalled"), "503 stalled",
               (status, body))
        status, _, _ = try_request("127.0.0.1", port, path="/metrics")
        tap.eq("/metrics still answers while the main loop is blocked", status, 200)
        d.reading.set()
        back = wait_until(lambda: try_request("127.0.0.1", port, path="/healthz")[0] == 200,
                          stale + SLACK_S, 0.2)
        tap.ok("/healthz answers 200 again once the main loop runs", back, "200",
               try_request("127.0.0.1", port, path="/healthz")[:3:2])
    finally:
        d.reading.set()
        try:
            cycles.wait(ALERT_S * 2)
        except subprocess.TimeoutExpired:
            cycles.kill()
            cycles.wait()


def test_daemon(tmp):
    port, extra = free_port(), 1100
    want = LIM["HV_NOFILE_WANT"]
    raise_own_nofile(extra + 256)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < want:
        try:  # root may raise the hard limit: then the raise reaches its target
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, want))
        except (OSError, ValueError):
            want = hard
    d = Daemon(["--no-pin", "--metrics", f"127.0.0.1:{port}"], os.path.join(tmp, "d.err"),
               extra)
    try:
        if not tap.ok("hvguard starts with 1100 inherited fds", d.ready(60 if EMULATED else 20),
                      "a ready line", open(os.path.join(tmp, "d.err")).read()[-300:]):
            return
        socks = socket_fds(d.proc.pid)
        tap.ok("the exporter's sockets are numbered above 1024 (select() could not)",
               socks and min(socks) > 1024, "> 1024", socks)
        with open(f"/proc/{d.proc.pid}/limits") as f:
            line = next(x for x in f if x.startswith("Max open files"))
        tap.eq(f"hvguard raised its open-files soft limit from {soft} to {want}",
               int(line.split()[3]), want)
        check_endpoints(port)
        status, _, _ = try_request("127.0.0.2", port, path="/healthz", timeout=2)
        tap.eq("127.0.0.1:PORT listens on 127.0.0.1 only (127.0.0.2 refused)", status, None)
        check_stall(d, port)
    finally:
        tap.eq("hvguard exits 0 after SIGINT", d.stop(), 0)


def test_forms(tmp):
    for form, host in (("[::1]:{}", "::1"), (":{}", "127.0.0.2"), ("{}", "127.0.0.2")):
        port = free_port()
        arg = form.format(port)
        try:
            hv = Hvguard(["--no-pin", "--metrics", arg], log=os.path.join(tmp, "forms.err"))
        except HvguardError as e:
            tap.fail(f"--metrics {form.format('PORT')} starts", str(e))
            continue
        try:
            # 503 "starting" until the main loop's first turn, just after ready
            ok = wait_until(lambda: try_request(host, port, path="/healthz")[0] == 200,
                            SLACK_S, 0.2)
            status, _, body = try_request(host, port, path="/healthz")
            tap.ok(f"--metrics {form.format('PORT')} serves /healthz on {host}",
                   ok and status == 200, "200", (status, body))
        finally:
            status, _ = hv.stop()
        tap.eq(f"--metrics {form.format('PORT')}: exit 0", status, 0)


def test_port_in_use():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = subprocess.run([HV, "run", "--no-pin", "--metrics", f"127.0.0.1:{port}",
                            *(["--hooks", HOOKS] if HOOKS else [])],
                           capture_output=True, text=True, timeout=120)
    tap.ok("--metrics on a port in use: exit 2, the error and libmicrohttpd's reason",
           r.returncode == 2 and
           f"Error: cannot serve metrics on 127.0.0.1:{port}" in r.stderr and
           "Address already in use" in r.stderr,
           "exit 2, both lines", (r.returncode, r.stderr[-400:]))


def main():
    with tempfile.TemporaryDirectory(prefix="hvguard-exporter-") as tmp:
        test_daemon(tmp)
        test_forms(tmp)
        test_port_in_use()
        test_flood(tmp)
    return tap.exit_code()


if __name__ == "__main__":
    sys.exit(main())
