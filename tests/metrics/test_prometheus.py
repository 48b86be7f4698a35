#!/usr/bin/env python3
"""The Prometheus exporter against a real Prometheus: it scrapes
`hvguard run --metrics`, sees a violation the mini VMM causes, and the
shipped alerting rules (rules/prometheus-alerts.yaml) fire on it. Every
alert and every dashboard query, against a real Prometheus: test_alerting.py."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from hvtest import Hvguard, HvguardError, Tap  # noqa: E402
from polling import wait_until  # noqa: E402

TOOLS = os.environ.get("HVGUARD_TOOLS", "build/tests")
MINIVMM = os.path.join(TOOLS, "minivmm")
RULES = os.path.abspath("rules/prometheus-alerts.yaml")
tap = Tap()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.headers.get("Content-Type", ""), r.read().decode()


def promql(port, query):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    try:
        _, _, body = http_get(url)
    except OSError:
        return []
    return json.loads(body).get("data", {}).get("result", [])


def sample(text, name, labels=""):
    """The value of one series in the exposition text, or None."""
    want = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    return None


def check_exposition(port):
    status, ctype, text = http_get(f"http://127.0.0.1:{port}/metrics")
    tap.eq("exporter: GET /metrics answers 200", status, 200)
    tap.ok("exporter: Prometheus text format", ctype.startswith("text/plain; version=0.0.4"),
           "text/plain; version=0.0.4", ctype)
    tap.ok("exporter: hvguard_build_info is 1", sample(text, "hvguard_build_info",
           text.split("hvguard_build_info{", 1)[-1].split("}", 1)[0]) == 1, 1, text[:200])
    for rule, severity in (("kvmclock-jump", "critical"), ("tsc-offset-change", "critical"),
                           ("foreign-map", "critical"), ("grant-leak", "warning")):
        tap.eq(f"exporter: violations_total for {rule} exists from the start, at 0, with "
               f"its severity ({severity})",
               sample(text, "hvguard_violations_total", f'rule="{rule}",severity="{severity}"'),
               0.0)
    tap.eq("exporter: corrections_total exists from the start, at 0",
           sample(text, "hvguard_corrections_total", 'rule="kvmclock-jump",result="applied"'), 0.0)
    tap.ok("exporter: events_lost and vms are exported",
           sample(text, "hvguard_events_lost_total") == 0 and
           sample(text, "hvguard_vms") is not None, "both", text[:300])
    check = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                           capture_output=True)
    tap.ok("exporter: promtool check metrics finds no error", check.returncode == 0,
           "exit 0", check.stdout + check.stderr)


def start_prometheus(tmp, target_port, web_port):
    conf = os.path.join(tmp, "prometheus.yml")
    with open(conf, "w") as f:
        f.write(f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ["{RULES}"]
scrape_configs:
  - job_name: hvguard
    static_configs:
      - targets: ["127.0.0.1:{target_port}"]
""")
    log = open(os.path.join(tmp, "prometheus.log"), "w")
    return subprocess.Popen(["prometheus", f"--config.file={conf}",
                             f"--storage.tsdb.path={tmp}/data",
                             f"--web.listen-address=127.0.0.1:{web_port}"],
                            stdout=log, stderr=log)


def main():
    if not shutil.which("prometheus"):
        tap.fail("prometheus scrapes hvguard", "prometheus is not installed (make test-deps)")
        return 1
    with tempfile.TemporaryDirectory(prefix="hvguard-prom-") as tmp:
        mport, pport = free_port(), free_port()
        prom = None
        try:
            hv = Hvguard(["--no-pin", "--metrics", f"127.0.0.1:{mport}"],
                         log=os.path.join(tmp, "hv.err"))
        except HvguardError as e:
            tap.fail("hvguard --metrics starts", str(e))
            return 1
        try:
            check_exposition(mport)
            prom = start_prometheus(tmp, mport, pport)
            up = wait_until(lambda: promql(pport, 'up{job="hvguard"} == 1'), 60, 0.5)
            tap.ok("prometheus scrapes hvguard (up == 1)", bool(up), "up 1", up)
            subprocess.run([MINIVMM, "qemu-stopcont", "--pause-ms", "200"], check=True,
                           capture_output=True, timeout=60)
            seen = wait_until(lambda: promql(
                pport, 'hvguard_violations_total{rule="kvmclock-jump",severity="critical"} >= 1'), 30, 0.5)
            tap.ok("prometheus sees the kvmclock-jump violation", bool(seen), ">= 1", seen)
            fired = wait_until(lambda: promql(
                pport, 'ALERTS{alertname="HvguardKvmclockJump",rule="kvmclock-jump",'
                'alertstate="firing"}'), 30, 0.5)
            tap.ok("the shipped alerting rule HvguardKvmclockJump fires", bool(fired),
                   "ALERTS series", fired)
        finally:
            if prom:
                prom.terminate()
                prom.wait(20)
            status, _ = hv.stop()
        tap.eq("hvguard --metrics exits 0", status, 0)
        chk = subprocess.run(["promtool", "check", "rules", RULES], capture_output=True, text=True)
        tap.ok("promtool accepts rules/prometheus-alerts.yaml", chk.returncode == 0, "exit 0",
               chk.stdout + chk.stderr)
    return tap.exit_code()


if __name__ == "__main__":
    sys.exit(main())
