"""Node clients the tests run (Airy's STOMP library, Apollo Client): their output lines."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from typing import Any


class Lines:
    """A child's output lines (JSON each), read in a thread, waited for one kind at a time; an
    event among `failures` fails the wait at once."""

    def __init__(self, process: subprocess.Popen, name: str, timeout: float = 20,
                 failures: tuple[str, ...] = ()) -> None:
        self.process = process
        self.name, self.timeout, self.failures = name, timeout, failures
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout
        for line in self.process.stdout:
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                self.lines.put({"event": "output", "line": line})

    def until(self, event: str, timeout: float | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            try:
                item = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise AssertionError(f"no {event} from {self.name}; saw {self.seen[-20:]}") \
                    from None
            self.seen.append(item)
            assert item["event"] not in self.failures, self.seen[-20:]
            if item["event"] == event:
                return item
