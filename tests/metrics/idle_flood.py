#!/usr/bin/env python3
"""The attacker of test_exporter.py, run as an unprivileged user: opens N
TCP connections to 127.0.0.1:PORT, sends nothing on any of them, and holds
them until its stdin closes. Once every connect has finished it prints one
JSON line: {"uid", "opened", "connected", "failed"} (connected: the
handshake completed; the server may have closed it since).

usage: idle_flood.py PORT N [SOURCES]
SOURCES > 1 spreads the connections over that many source addresses,
127.0.0.2 and up (any local user may bind them): the per-address limit
then does not apply, the total limit does."""

import json
import os
import select
import socket
import sys
import time


def main():
    port, n = int(sys.argv[1]), int(sys.argv[2])
    sources = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    socks = []
    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if sources > 1:
            s.bind((f"127.0.{2 + i % sources // 250}.{2 + i % sources % 250}", 0))
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        socks.append(s)
    poller = select.poll()
    pending = {}
    for s in socks:
        poller.register(s, select.POLLOUT)
        pending[s.fileno()] = s
    connected = failed = 0
    deadline = time.monotonic() + 120
    while pending and time.monotonic() < deadline:
        for fd, _ in poller.poll(1000):
            s = pending.pop(fd, None)
            if s is None:
                continue
            poller.unregister(fd)
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                connected += 1
            else:
                failed += 1
    print(json.dumps({"uid": os.getuid(), "opened": n, "connected": connected,
                      "failed": failed + len(pending)}), flush=True)
    sys.stdin.read()  # idle until told to go
    return 0


if __name__ == "__main__":
    sys.exit(main())
