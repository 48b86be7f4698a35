#!/usr/bin/env bash
# The mini VMM stage (see test_vmm.py). Needs root and /dev/kvm.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -c /dev/kvm ] || { echo "not ok - vmm stage # /dev/kvm missing: this stage needs KVM"; exit 1; }
exec python3 tests/vmm/test_vmm.py
