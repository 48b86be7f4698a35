#!/usr/bin/env bash
# The exporter against a real Prometheus (Debian's prometheus package).
set -uo pipefail
cd "$(dirname "$0")/../.."
rc=0
python3 tests/metrics/test_prometheus.py || rc=1
echo "# end of stage"
exit $rc
