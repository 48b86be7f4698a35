#!/usr/bin/env python3
"""The shipped alerting rules and Grafana dashboard, without a daemon:

- promtool accepts rules/prometheus-alerts.yaml, and its unit tests
  (tests/unit/alerts/prometheus-alerts-test.yaml) pass;
- every rule id `hvguard rules list` names has exactly one alert, labelled
  with that rule's severity; every alert has a summary, a description that
  humanizes any value it prints, and a runbook_url to a README anchor that
  exists; the promtool tests expect every alert to fire somewhere and to
  stay silent somewhere else;
- the dashboard is dashboard JSON on a Prometheus datasource variable, its
  severity split matches the rules' severities, and it shows every metric
  of the README's table; the table lists every metric the code exports.

What the queries return against a real hvguard and Prometheus is the
metrics stage's (tests/metrics/test_alerting.py).
"""

import json
import os
import re
import subprocess
import sys

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from hvtest import Tap  # noqa: E402

HV = os.environ.get("HVGUARD", "build/hvguard")
RULES = "rules/prometheus-alerts.yaml"
PROMTEST = "tests/unit/alerts/prometheus-alerts-test.yaml"
DASHBOARD = "packaging/grafana/hvguard-dashboard.json"
tap = Tap()


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


def rule_severities():
    """{rule id: severity} from `hvguard rules list`."""
    rc, out = run([HV, "rules", "list"])
    rules = {}
    for line in out.splitlines()[1:]:
        f = line.split()
        if len(f) >= 3:
            rules[f[0]] = f[2]
    return rc, rules


def github_anchor(heading):
    """The anchor GitHub gives a Markdown heading."""
    a = heading.strip().lower()
    a = re.sub(r"[^\w\- ]", "", a)
    return a.replace(" ", "-")


def readme_anchors(text):
    return {github_anchor(m[1]) for m in re.finditer(r"^#+ (.*)$", text, re.M)}


def readme_metrics(text):
    """Metric names in the README's metrics table (first column)."""
    names = set()
    for line in text.splitlines():
        if line.startswith("| `hvguard_"):
            cell = line.split("|")[1]
            names |= set(re.findall(r"`(hvguard_\w+)", cell))
    return names


def code_metrics():
    """Every metric name the daemon's C code spells out."""
    names = set()
    for f in sorted(os.listdir("user")):
        if f.endswith(".c"):
            with open(os.path.join("user", f)) as fh:
                names |= set(re.findall(r'"(hvguard_[a-z_]+)"', fh.read()))
    return names


def expr_metrics(expr):
    """Metric names an expression queries; a histogram's _bucket, _sum and
    _count series count as the histogram."""
    return {re.sub(r"_(bucket|sum|count)$", "", n)
            for n in re.findall(r"\b(hvguard_[a-z_]+)", expr)}


def check_promtool():
    rc, out = run(["promtool", "check", "rules", RULES])
    tap.ok("promtool check rules accepts rules/prometheus-alerts.yaml", rc == 0, "exit 0", out)
    rc, out = run(["promtool", "test", "rules", PROMTEST])
    tap.ok("promtool test rules: every case of tests/unit/alerts/prometheus-alerts-test.yaml "
           "passes", rc == 0 and "SUCCESS" in out, "SUCCESS", out[-3000:])


def check_rules(alerts, readme):
    rc, sev = rule_severities()
    tap.ok("hvguard rules list names the rules", rc == 0 and len(sev) >= 10, ">= 10 rules", sev)
    for rule, severity in sev.items():
        mine = [a for a in alerts
                if re.search(r'hvguard_violations_total\{rule="%s"\}' % re.escape(rule), a["expr"])]
        tap.ok(f"alerts: exactly one alert on {rule} violations", len(mine) == 1, "1",
               [a["alert"] for a in mine])
        if len(mine) == 1:
            tap.eq(f"alerts: {mine[0]['alert']} has {rule}'s severity",
                   mine[0].get("labels", {}).get("severity"), severity)
    anchors = readme_anchors(readme)
    runbook = readme.split("\n## Runbook", 1)[-1].split("\n## ", 1)[0] if "\n## Runbook" in readme else ""
    tap.ok("README has a Runbook section", bool(runbook), "## Runbook", "none")
    names = [a["alert"] for a in alerts]
    tap.eq("alerts: no two alerts share a name", len(names), len(set(names)))
    for a in alerts:
        name, ann = a["alert"], a.get("annotations", {})
        tap.ok(f"alerts: {name} has a severity label",
               a.get("labels", {}).get("severity") in ("critical", "warning", "info"),
               "critical|warning|info", a.get("labels"))
        tap.ok(f"alerts: {name} has a summary and a description",
               bool(ann.get("summary")) and bool(ann.get("description")), "both", ann)
        bare = [k for k, v in ann.items() if re.search(r"\{\{\s*\$value\s*\}\}", v)]
        tap.eq(f"alerts: {name} prints $value only humanized", bare, [])
        url = ann.get("runbook_url", "")
        m = re.fullmatch(r"README\.md#([\w-]+)", url)
        tap.ok(f"alerts: {name}'s runbook_url is a README anchor that exists",
               bool(m) and m[1] in anchors, "README.md#<existing anchor>", url)
        tap.ok(f"alerts: the README's Runbook section has a paragraph for {name}",
               re.search(rf"^### {name}\n\n\S", runbook, re.M) is not None,
               f"### {name} and a paragraph", "missing")
    return set(names)


def check_promtool_coverage(names):
    with open(PROMTEST) as f:
        tests = yaml.safe_load(f)["tests"]
    fires, silent = set(), set()
    for group in tests:
        for case in group.get("alert_rule_test", []):
            (fires if case.get("exp_alerts") else silent).add(case["alertname"])
    for n in sorted(names):
        tap.ok(f"promtool tests: {n} is expected to fire in one case and stay silent in another",
               n in fires and n in silent, "both",
               f"fires: {n in fires}, silent: {n in silent}")
    tap.eq("promtool tests: name no alert the rules lack", sorted((fires | silent) - names), [])


def panels(dash):
    for p in dash.get("panels", []):
        yield p
        yield from p.get("panels", [])


def check_dashboard(alerts, readme):
    try:
        with open(DASHBOARD) as f:
            dash = json.load(f)
    except (OSError, ValueError) as e:
        tap.fail("dashboard: packaging/grafana/hvguard-dashboard.json is JSON", repr(e))
        return
    tap.ok("dashboard: packaging/grafana/hvguard-dashboard.json is JSON", True)
    tap.ok("dashboard: has a title, a uid and a schemaVersion",
           all(dash.get(k) for k in ("title", "uid", "schemaVersion")), "all three",
           {k: dash.get(k) for k in ("title", "uid", "schemaVersion")})
    tvars = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    dsv = tvars.get("datasource", {})
    tap.ok("dashboard: a datasource variable of type prometheus",
           dsv.get("type") == "datasource" and dsv.get("query") == "prometheus",
           "type datasource, query prometheus", dsv)
    ids = [p.get("id") for p in panels(dash)]
    tap.ok("dashboard: every panel has its own id", None not in ids and len(ids) == len(set(ids)),
           "unique ids", ids)
    shown = [p for p in panels(dash) if p.get("type") != "row"]
    bad = [p.get("title") for p in shown
           if p.get("datasource", {}).get("uid") != "${datasource}" or not p.get("targets")
           or any(t.get("datasource", {}).get("uid") != "${datasource}" or not t.get("expr")
                  for t in p["targets"])]
    tap.eq("dashboard: every panel queries the datasource variable, with a PromQL expr", bad, [])
    nogrid = [p.get("title") for p in panels(dash)
              if not all(k in p.get("gridPos", {}) for k in ("h", "w", "x", "y"))]
    tap.eq("dashboard: every panel has a gridPos", nogrid, [])
    exprs = [t["expr"] for p in shown for t in p.get("targets", []) if t.get("expr")]
    used = set().union(*(expr_metrics(e) for e in exprs)) if exprs else set()
    documented = readme_metrics(readme)
    tap.eq("dashboard: shows every metric of the README's table",
           sorted(documented - used), [])
    tap.eq("dashboard: queries no metric the README's table lacks", sorted(used - documented), [])
    # The severity split follows `hvguard rules list`.
    _, sev = rule_severities()
    split = next((p for p in shown if p.get("title") == "Violations, by severity"), None)
    got = {}
    for t in (split or {}).get("targets", []):
        m = re.search(r'rule=~"([^"]+)"', t["expr"])
        got[t.get("legendFormat")] = sorted(m[1].split("|")) if m else None
    want = {}
    for rule, s in sev.items():
        want.setdefault(s, []).append(rule)
    tap.eq("dashboard: 'Violations, by severity' splits the rules as hvguard rules list does",
           got, {s: sorted(r) for s, r in want.items()})
    alert_metrics = set().union(*(expr_metrics(a["expr"]) for a in alerts))
    tap.eq("alerts: use no metric the README's table lacks", sorted(alert_metrics - documented),
           [])


def main():
    with open("README.md") as f:
        readme = f.read()
    check_promtool()
    try:
        with open(RULES) as f:
            groups = yaml.safe_load(f)["groups"]
        alerts = [r for g in groups for r in g["rules"] if "alert" in r]
    except (OSError, ValueError, KeyError, yaml.YAMLError) as e:
        tap.fail("alerts: rules/prometheus-alerts.yaml reads as rule groups", repr(e))
        return 1
    names = check_rules(alerts, readme)
    check_promtool_coverage(names)
    check_dashboard(alerts, readme)
    in_code = code_metrics()
    tap.eq("README: the metrics table lists every metric the code exports",
           sorted(in_code - readme_metrics(readme)), [])
    tap.eq("README: the metrics table lists no metric the code lacks",
           sorted(readme_metrics(readme) - in_code), [])
    return tap.exit_code()


if __name__ == "__main__":
    sys.exit(main())
