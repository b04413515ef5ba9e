"""Run an ASGI app under uvicorn in a daemon thread on 127.0.0.1: how the tests' fakes serve."""

from __future__ import annotations

import threading
import time

import uvicorn


class LoopbackServer:
    def __init__(self, app, name: str) -> None:
        self.name = name
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def serve(self) -> str:
        """Start serving; returns the base URL."""
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(5)
