"""Polling with a deadline, for tests that wait on a daemon or a VMM."""

import time


def wait_until(cond, timeout, step=0.05):
    """Polls cond() until it returns something true or timeout s pass;
    returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)
