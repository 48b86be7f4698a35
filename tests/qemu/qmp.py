"""A minimal QMP client (QEMU Machine Protocol), Python 3 stdlib only.

QMP is one JSON object per line over a socket: a greeting, then replies
({"return": ...} or {"error": ...}) to commands in the order they were sent,
with asynchronous {"event": ...} objects in between. We send one command at a
time, so the next reply is always the answer to the last command.
"""

import json
import socket
import time


class QMPError(Exception):
    pass


class QMP:
    def __init__(self, path, timeout=10.0):
        """Connects to QEMU's QMP unix socket, waiting up to `timeout` s for
        QEMU to create it, and negotiates capabilities."""
        self.events = []  # every asynchronous event seen, in order
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(timeout)
                self.sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                self.sock.close()
                if time.monotonic() > deadline:
                    raise QMPError(f"no QMP socket at {path} after {timeout} s")
                time.sleep(0.05)
        self.file = self.sock.makefile("rw", encoding="utf-8")
        greeting = self._read()
        if "QMP" not in greeting:
            raise QMPError(f"not a QMP greeting: {greeting}")
        self.version = greeting["QMP"]["version"]["qemu"]
        self.cmd("qmp_capabilities")

    def _read(self):
        line = self.file.readline()
        if not line:
            raise QMPError("QEMU closed the QMP connection")
        return json.loads(line)

    def cmd(self, name, **arguments):
        """Runs one command and returns its "return" value; raises QMPError
        with QEMU's message when the command fails."""
        msg = {"execute": name}
        if arguments:
            msg["arguments"] = arguments
        self.file.write(json.dumps(msg) + "\n")
        self.file.flush()
        while True:
            reply = self._read()
            if "event" in reply:
                self.events.append(reply)
            elif "error" in reply:
                err = reply["error"]
                raise QMPError(f"{name}: {err.get('class')}: {err.get('desc')}")
            elif "return" in reply:
                return reply["return"]

    def close(self):
        try:
            self.file.close()
            self.sock.close()
        except OSError:
            pass


if __name__ == "__main__":
    # From a shell: python3 qmp.py SOCKET COMMAND ['{"json": "arguments"}']
    # Prints the command's return value when it has one; exit 1 on error.
    import sys

    try:
        q = QMP(sys.argv[1])
        ret = q.cmd(sys.argv[2], **(json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}))
        q.close()
    except (QMPError, OSError) as e:
        sys.exit(f"qmp: {e}")
    if ret:
        print(json.dumps(ret))
