#!/usr/bin/env python3
"""The shipped alerting rules and Grafana dashboard against a real
Prometheus scraping a real `hvguard run --correct --metrics`:

1. idle: every alert loaded, evaluated without error, none active;
2. a kvmclock-jump (the mini VMM's stop/cont), corrected: HvguardKvmclockJump
   fires, with the violation count as an integer in its description, and
   every other alert stays inactive; then every panel query of the
   dashboard returns data, but for the series that cannot exist on this
   host (each named, with the reason, and asserted empty);
3. the daemon stalls on a full stdout pipe while a VMM is frozen for a
   correction: the watchdog releases it, HvguardWatchdogRelease and
   HvguardCorrectionRefused fire, nothing else new;
4. hvguard stops: HvguardDown goes pending (it fires after its `for: 2m`,
   which the promtool tests check);
5. service discovery loses the target: HvguardTargetMissing goes pending,
   HvguardDown goes inactive.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
sys.path.insert(0, os.path.dirname(__file__))
from hvtest import EMULATED, Tap, pin_dir  # noqa: E402
from polling import wait_until  # noqa: E402
from test_exporter import Daemon  # noqa: E402
from test_prometheus import RULES, free_port  # noqa: E402

TOOLS = os.environ.get("HVGUARD_TOOLS", "build/tests")
MINIVMM = os.path.join(TOOLS, "minivmm")
DASHBOARD = os.path.abspath("packaging/grafana/hvguard-dashboard.json")
# Under nested TCG Prometheus and hvguard run 10-100x slower.
WAIT_S = 120.0 if EMULATED else 30.0
# Evaluations (every second here) to wait before judging that an alert
# stays silent: a wrong one would show in the same evaluation as the right.
SETTLE_S = 8.0 if EMULATED else 3.0
# Panel series that cannot exist on this host, and why. Each is asserted
# empty (a query that errs or returns data fails).
ABSENT_HERE = {
    "hvguard_xen_grant_ops_total":
        "appears at a designated Xen backend's first grant operation; this host has no Xen",
    "hvguard_xen_unchecked_total": "exported only where the Xen family runs; this host has no Xen",
    "hvguard_xen_enforcements_total": "exported only where the Xen family runs; this host has no Xen",
    "hvguard_exec_total": "exported only with --exec, which this daemon does not have",
    "hvguard_rules_reloads_total": "appears at the first SIGHUP reload; this test sends none",
}
tap = Tap()


def set_targets(path, targets):
    """The file service discovery reads, replaced atomically."""
    with open(path + ".new", "w") as f:
        json.dump([{"targets": targets}] if targets else [], f)
    os.rename(path + ".new", path)


def start_prometheus(tmp, target, web_port):
    """Prometheus with the shipped rules, scraping job "hvguard" every
    second; its targets come from a file (file_sd), as from a service
    discovery that can lose them: a target gone from it has its series
    marked stale at once (a job removed from the configuration does not,
    and its up series would linger for the 5-minute lookback)."""
    targets = os.path.join(tmp, "targets.json")
    set_targets(targets, [target])
    conf = os.path.join(tmp, "prometheus.yml")
    with open(conf, "w") as f:
        f.write(f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ["{RULES}"]
scrape_configs:
  - job_name: hvguard
    file_sd_configs:
      - files: ["{targets}"]
        refresh_interval: 1s
""")
    log = open(os.path.join(tmp, "prometheus.log"), "w")
    return targets, subprocess.Popen(["prometheus", f"--config.file={conf}",
                                      f"--storage.tsdb.path={tmp}/data",
                                      f"--web.listen-address=127.0.0.1:{web_port}"],
                                     stdout=log, stderr=log)


def api(port, path, **params):
    """(data, error) of a Prometheus HTTP API call."""
    url = f"http://127.0.0.1:{port}/api/v1/{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.loads(r.read().decode())
    except urllib.error.HTTPError as e:
        try:
            body = json.loads(e.read().decode())
        except ValueError:
            return None, f"HTTP {e.code}"
    except (OSError, ValueError) as e:
        return None, repr(e)
    if body.get("status") != "success":
        return None, f"{body.get('errorType')}: {body.get('error')}"
    return body.get("data"), None


def query(port, q):
    data, err = api(port, "query", query=q)
    return (data or {}).get("result", []), err


def alert_rules(port):
    """{alert name: rule object} as Prometheus loaded and evaluates them."""
    data, _ = api(port, "rules", type="alert")
    return {r["name"]: r for g in (data or {}).get("groups", []) for r in g["rules"]}


def states(port):
    return {n: r.get("state") for n, r in alert_rules(port).items()}


def wait_state(port, name, state):
    return wait_until(lambda: states(port).get(name) == state, WAIT_S, 0.5)


def value_of(port, q):
    res, _ = query(port, q)
    return float(res[0]["value"][1]) if res else None


def check_states(port, when, expect):
    """Every alert as `expect` says ({name: state}), every other inactive,
    none in error."""
    rules = alert_rules(port)
    for name, r in sorted(rules.items()):
        want = expect.get(name, "inactive")
        tap.eq(f"{when}: {name} is {want}", r.get("state"), want)
    bad = {n: r.get("lastError") for n, r in rules.items() if r.get("health") != "ok"}
    tap.eq(f"{when}: every alerting rule evaluates without error", bad, {})


def dashboard_queries():
    with open(DASHBOARD) as f:
        dash = json.load(f)
    out = []
    for p in dash["panels"]:
        for q in [p, *p.get("panels", [])]:
            for t in q.get("targets", []):
                if t.get("expr"):
                    out.append((q["title"], t.get("legendFormat") or t["refId"], t["expr"]))
    return out


def substitute(expr, instance):
    """Grafana's variables as the dashboard uses them: this instance, a
    rate interval of 4 scrapes or more, the range of the last hour."""
    inst = re.escape(instance).replace("\\", "\\\\")
    return (expr.replace("$instance", inst).replace("$__rate_interval", "1m")
            .replace("$__range", "1h"))


def check_dashboard(port, instance):
    queries = dashboard_queries()
    tap.ok("dashboard: has panel queries", len(queries) >= 15, ">= 15", len(queries))
    results = {}
    for title, legend, expr in queries:
        q = substitute(expr, instance)
        res, err = query(port, q)
        results[(title, legend)] = res
        absent = [m for m in ABSENT_HERE if m in expr]
        if absent:
            tap.ok(f"dashboard: '{title}' ({legend}) evaluates and is empty here: "
                   f"{absent[0]} {ABSENT_HERE[absent[0]]}", err is None and res == [],
                   "no error, no series", err or res)
        else:
            tap.ok(f"dashboard: '{title}' ({legend}) returns data", err is None and bool(res),
                   "series", err or res)
    return results


def series(results, title, **labels):
    """The values of the series of panel `title` whose labels match."""
    out = []
    for (t, _), res in results.items():
        if t != title:
            continue
        for s in res:
            if all(s["metric"].get(k) == v for k, v in labels.items()):
                out.append(float(s["value"][1]))
    return out


def explain(d):
    """hvguard's own account, for the reader of a failure."""
    for kind in ("warning", "error", "correction"):
        for o in d.lines(kind):
            tap.note(f"hvguard {kind}: {json.dumps(o)[:400]}")
    for o in d.lines("event"):
        if o.get("event") == "vm-untracked":
            tap.note(f"hvguard event: {json.dumps(o)[:400]}")


def phase_violation(d, port, instance):
    r = subprocess.run([MINIVMM, "qemu-stopcont", "--pause-ms", "200"], capture_output=True,
                       text=True, timeout=120)
    tap.eq("violation: the mini VMM's stop/cont ran", r.returncode, 0)
    alerts = wait_until(lambda: d.lines("alert"), WAIT_S, 0.5)
    if not tap.eq("violation: hvguard reports one kvmclock-jump",
                  [a.get("rule") for a in alerts or []], ["kvmclock-jump"]):
        explain(d)
        return False
    seen = wait_until(lambda: value_of(
        port, 'hvguard_corrections_total{rule="kvmclock-jump",result="applied"}') == 1, WAIT_S,
        0.5)
    tap.ok("violation: Prometheus sees the kvmclock-jump corrected (applied == 1)", seen, 1,
           value_of(port, 'hvguard_corrections_total{rule="kvmclock-jump",result="applied"}'))
    fired = wait_state(port, "HvguardKvmclockJump", "firing")
    tap.ok("violation: HvguardKvmclockJump fires", fired, "firing",
           states(port).get("HvguardKvmclockJump"))
    time.sleep(SETTLE_S)
    check_states(port, "after one corrected kvmclock-jump", {"HvguardKvmclockJump": "firing"})
    data, _ = api(port, "alerts")
    mine = [a for a in (data or {}).get("alerts", [])
            if a["labels"].get("alertname") == "HvguardKvmclockJump"]
    total = value_of(port, 'hvguard_violations_total{rule="kvmclock-jump"}')
    desc = mine[0]["annotations"].get("description", "") if mine else ""
    tap.ok("violation: the alert's description counts the violations as an integer",
           total is not None and f" {int(total)} kvmclock-jump violation(s)" in desc
           and not re.search(r"\d\.\d+ kvmclock-jump", desc),
           f"'{total} kvmclock-jump violation(s)'", desc)
    tap.ok("violation: the alert is labelled critical, with its rule and instance",
           mine and mine[0]["labels"].get("severity") == "critical"
           and mine[0]["labels"].get("rule") == "kvmclock-jump"
           and mine[0]["labels"].get("instance") == instance, "critical kvmclock-jump",
           mine and mine[0]["labels"])
    tap.eq("violation: runbook_url points into the README's runbook",
           mine and mine[0]["annotations"].get("runbook_url"), "README.md#hvguardkvmclockjump")
    results = check_dashboard(port, instance)
    got = series(results, "Violations in the time range, by rule", rule="kvmclock-jump")
    tap.ok("dashboard: 'Violations in the time range' shows the kvmclock-jump",
           got and got[0] >= 1, ">= 1", got)
    got = series(results, "Violations in the time range, by rule", rule="tsc-offset-change")
    tap.eq("dashboard: 'Violations in the time range' shows no tsc-offset-change", got, [0.0])
    got = series(results, "Corrections in the time range, by rule and result",
                 rule="kvmclock-jump", result="applied")
    tap.ok("dashboard: 'Corrections in the time range' shows the applied correction",
           got and got[0] >= 1, ">= 1", got)
    got = series(results, "Firing hvguard alerts, by severity", severity="critical")
    tap.eq("dashboard: 'Firing hvguard alerts' counts one critical", got, [1.0])
    got = series(results, "Targets up")
    tap.eq("dashboard: 'Targets up' shows the target up", got, [1.0])
    return True


def phase_watchdog(d, port, instance):
    """As the vmm stage's test_watchdog: the daemon blocks writing to a full
    pipe while the BPF side freezes a VMM; the watchdog lets it go."""
    d.reading.clear()
    try:
        filler = subprocess.run([MINIVMM, "many-vms", "8", "--pause-ms", "20"],
                                capture_output=True, text=True, timeout=240)
        tap.eq("watchdog: the filler VMM ran to its end", filler.returncode, 0)
        vmm = subprocess.run([MINIVMM, "qemu-stopcont", "--pause-ms", "300"],
                             capture_output=True, text=True, timeout=240)
        tap.eq("watchdog: a VMM frozen behind the blocked daemon ran to its end",
               vmm.returncode, 0)
    finally:
        d.reading.set()
    released = wait_until(lambda: (value_of(port, "hvguard_watchdog_releases_total") or 0) >= 1,
                          WAIT_S, 0.5)
    if not tap.ok("watchdog: Prometheus sees hvguard_watchdog_releases_total >= 1", released,
                  ">= 1", value_of(port, "hvguard_watchdog_releases_total")):
        explain(d)
        return
    for name in ("HvguardWatchdogRelease", "HvguardCorrectionRefused"):
        fired = wait_state(port, name, "firing")
        tap.ok(f"watchdog: {name} fires", fired, "firing", states(port).get(name))
    time.sleep(SETTLE_S)
    refused = [c for c in d.lines("correction") if c.get("result") == "refused"]
    tap.ok("watchdog: hvguard reported a correction refused, naming the watchdog",
           any("watchdog" in (c.get("reason") or "") for c in refused), "refused: watchdog",
           [c.get("reason") for c in refused])
    failed = [c for c in d.lines("correction") if c.get("result") == "failed"]
    tap.eq("watchdog: no correction failed (HvguardCorrectionFailed has nothing to say)",
           failed, [])
    check_states(port, "after a watchdog release", {
        "HvguardKvmclockJump": "firing", "HvguardWatchdogRelease": "firing",
        "HvguardCorrectionRefused": "firing"})
    data, _ = api(port, "alerts")
    wd = [a for a in (data or {}).get("alerts", [])
          if a["labels"].get("alertname") == "HvguardWatchdogRelease"]
    total = value_of(port, "hvguard_watchdog_releases_total")
    tap.ok("watchdog: the alert's description counts the releases as an integer",
           wd and total is not None
           and f" {int(total)} release(s)" in wd[0]["annotations"].get("description", ""),
           f"{total} release(s)", wd and wd[0]["annotations"])
    res, err = query(port, substitute(
        'sum by (instance) (increase(hvguard_watchdog_releases_total{instance=~"$instance"}'
        '[$__range]))', instance))
    panel = [q for q in dashboard_queries() if q[0] == "Watchdog releases"]
    tap.ok("dashboard: the 'Watchdog releases' panel queries hvguard_watchdog_releases_total",
           len(panel) == 1 and "hvguard_watchdog_releases_total" in panel[0][2], "1 query",
           panel)
    tap.ok("dashboard: watchdog releases in the range are >= 1",
           err is None and res and float(res[0]["value"][1]) >= 1, ">= 1", err or res)


def main():
    if not shutil.which("prometheus"):
        tap.fail("prometheus evaluates the shipped rules and dashboard",
                 "prometheus is not installed (make test-deps)")
        return 1
    with tempfile.TemporaryDirectory(prefix="hvguard-alerting-") as tmp:
        mport, pport = free_port(), free_port()
        instance = f"127.0.0.1:{mport}"
        d = Daemon(["--correct", "--pin-dir", pin_dir("alerting"), "--metrics", instance],
                   os.path.join(tmp, "hv.err"))
        prom = None
        try:
            ready = wait_until(lambda: '"type":"ready"' in d.text, 60, 0.2)
            if not ready:
                with open(os.path.join(tmp, "hv.err")) as f:
                    tap.fail("hvguard run --correct --metrics starts", f.read()[-500:])
                return 1
            targets, prom = start_prometheus(tmp, instance, pport)
            up = wait_until(lambda: value_of(pport, 'up{job="hvguard"}') == 1, WAIT_S, 0.5)
            tap.ok("prometheus scrapes hvguard (up == 1)", up, 1,
                   value_of(pport, 'up{job="hvguard"}'))
            loaded = wait_until(lambda: (lambda r: len(r) >= 20 and all(
                x.get("health") != "unknown" for x in r.values()))(alert_rules(pport)),
                WAIT_S, 0.5)
            with open(RULES) as f:
                names = set(re.findall(r"^\s*- alert: (\w+)", f.read(), re.M))
            tap.eq("prometheus loaded and evaluated every alert of rules/prometheus-alerts.yaml",
                   sorted(alert_rules(pport)) if loaded else None, sorted(names))
            time.sleep(SETTLE_S)
            check_states(pport, "idle", {})
            if phase_violation(d, pport, instance):
                phase_watchdog(d, pport, instance)
            else:
                tap.fail("watchdog: HvguardWatchdogRelease fires on a real release",
                         "not run: hvguard saw no violation to correct (above)")
            status = d.stop()
            tap.eq("hvguard exits 0", status, 0)
            down = wait_until(lambda: value_of(pport, 'up{job="hvguard"}') == 0, WAIT_S, 0.5)
            tap.ok("hvguard stopped: Prometheus sees up == 0", down, 0,
                   value_of(pport, 'up{job="hvguard"}'))
            tap.ok("hvguard stopped: HvguardDown goes pending (firing after its for: 2m)",
                   wait_state(pport, "HvguardDown", "pending"), "pending",
                   states(pport).get("HvguardDown"))
            tap.eq("hvguard stopped: HvguardTargetMissing stays inactive (the target is known)",
                   states(pport).get("HvguardTargetMissing"), "inactive")
            # Service discovery loses the target: its series go stale.
            set_targets(targets, [])
            tap.ok("target gone from service discovery: HvguardTargetMissing goes pending "
                   "(firing after its for: 10m)",
                   wait_state(pport, "HvguardTargetMissing", "pending"), "pending",
                   states(pport).get("HvguardTargetMissing"))
            tap.ok("target gone from service discovery: HvguardDown goes inactive",
                   wait_state(pport, "HvguardDown", "inactive"), "inactive",
                   states(pport).get("HvguardDown"))
        finally:
            if prom:
                prom.terminate()
                prom.wait(30)
            d.stop()
    return tap.exit_code()


if __name__ == "__main__":
    sys.exit(main())
