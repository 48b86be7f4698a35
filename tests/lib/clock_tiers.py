#!/usr/bin/env python3
"""Prints the clock hook tiers (hvguard run --hooks) this kernel offers,
best first, on one line: "fentry kvm-tracepoints syscalls" where hvguard's
fentry tier loads and attaches (Debian's 6.1 in the nested stages), else
"kvm-tracepoints syscalls". Asked of hvguard itself, not guessed from
kallsyms: a kernel can list the function and still refuse fentry. The
stage scripts loop over these; the tiers that should load and do not fail
in the tests themselves."""

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from hvtest import Hvguard, HvguardError  # noqa: E402


def fentry_loads(say=lambda text: print(f"# {text}", file=sys.stderr)):
    """Does this kernel load hvguard's fentry tier? (Asked of hvguard; why
    not goes to say.)"""
    with tempfile.TemporaryDirectory(prefix="hvguard-tiers-") as tmp:
        try:
            hv = Hvguard(["--no-pin", "--hooks", "fentry"], log=os.path.join(tmp, "err"),
                         ready_timeout=180.0)
        except HvguardError as e:
            say(f"clock tier fentry not offered here: {e}")
            return False
        hv.stop()
        return hv.hooks == "fentry"


if __name__ == "__main__":
    print(" ".join((["fentry"] if fentry_loads() else []) + ["kvm-tracepoints", "syscalls"]))
