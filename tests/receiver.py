"""A webhook receiver the tests run on 127.0.0.1: records what it is sent, fails on demand."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.servers import LoopbackServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    url: str = ""
    received: list[Received] = field(default_factory=list)
    fail_next: int = 0  # answer this many calls with 500
    refused: int = 0  # how many calls were answered with 500
    lock: threading.Lock = field(default_factory=threading.Lock)

    def events(self, path: str = "/hook") -> list[dict[str, Any]]:
        with self.lock:
            return [r.json for r in self.received if r.path == path]

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            body = await request.body()
            with self.lock:
                if self.fail_next > 0:
                    self.fail_next -= 1
                    self.refused += 1
                    return Response("down for maintenance", status_code=500)
                self.received.append(Received(request.url.path, dict(request.headers), body))
            return Response(status_code=200)

        return Starlette(routes=[Route("/{path:path}", hook, methods=["POST"])])


class ReceiverServer(LoopbackServer):
    def __init__(self) -> None:
        self.receiver = Receiver()
        super().__init__(self.receiver.app(), "webhook receiver")

    def start(self) -> Receiver:
        self.receiver.url = self.serve()
        return self.receiver
