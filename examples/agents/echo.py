#!/usr/bin/env python3
"""Mark-1 process agent: capability text.echo.

Returns its input unchanged. If the input carries {"delay": seconds}, it waits that
long first, checking for a cancel message meanwhile, so cancellation can be tried out.
If it carries {"fail": "reason"}, it answers with that error instead (not retryable), so
error handling can be tried out.
Protocol: docs/process-protocol.md. Standard library only.
"""
import json
import os
import select
import sys
import time


class Lines:
    """Reads stdin's lines through our own buffer. Python's buffered sys.stdin could
    swallow a cancel that arrived together with its task, where select() cannot see it."""

    def __init__(self):
        self.buffer = b""

    def pending(self):
        return b"\n" in self.buffer

    def readline(self):
        """The next line, or None once stdin is closed."""
        while b"\n" not in self.buffer:
            chunk = os.read(0, 65536)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line


def send(message):
    # One line per message, flushed at once: the node waits for whole lines.
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def wait_or_cancel(stdin, task_id, seconds):
    """Sleeps up to `seconds`; True if a cancel for `task_id` arrived meanwhile."""
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        if stdin.pending() or select.select([0], [], [], left)[0]:
            line = stdin.readline()
            if line is None:  # stdin closed: the node is gone or shutting us down
                sys.exit(0)
            message = json.loads(line)
            if message.get("type") == "cancel" and message.get("id") == task_id:
                return True


def main():
    send({"type": "hello", "protocol": 1, "capabilities": ["text.echo"]})
    stdin = Lines()
    while True:
        line = stdin.readline()
        if line is None:  # the node closed stdin: time to go
            return
        message = json.loads(line)
        if message.get("type") != "task":
            continue  # a late cancel for a task already answered
        task_id, data = message["id"], message["input"]
        delay = data.get("delay", 0) if isinstance(data, dict) else 0
        if delay and wait_or_cancel(stdin, task_id, float(delay)):
            send({"type": "error", "id": task_id, "message": "cancelled", "retryable": False})
            continue
        if isinstance(data, dict) and data.get("fail"):
            send({"type": "error", "id": task_id, "message": str(data["fail"]), "retryable": False})
            continue
        send({"type": "result", "id": task_id, "output": data})


if __name__ == "__main__":
    main()
