#!/usr/bin/env bash
# The exporter against a real Prometheus (Debian's prometheus package).
set -uo pipefail
cd "$(dirname "$0")/../.."
exec python3 tests/metrics/test_prometheus.py
