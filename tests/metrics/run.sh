#!/usr/bin/env bash
# The exporter against a real Prometheus (Debian's prometheus package), and
# against a local user who floods it; the shipped alerting rules and
# Grafana dashboard against both.
set -uo pipefail
cd "$(dirname "$0")/../.."
rc=0
python3 tests/metrics/test_prometheus.py || rc=1
# Every shipped alert and every dashboard query against a real Prometheus.
python3 tests/metrics/test_alerting.py || rc=1
# The exporter from the attacker's side; its HTTP contract.
python3 tests/metrics/test_exporter.py || rc=1
echo "# end of stage"
exit $rc
