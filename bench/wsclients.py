"""Thousands of graphql-transport-ws subscribers, spread over a few client processes.

Each connection is a bare asyncio protocol that frames websockets by hand and only counts the
`next` messages it gets and when: a real client library would cost more CPU per message than the
server spends sending it, and on two cores the clients would be what is measured.
"""

from __future__ import annotations

import asyncio
import base64
import json
import multiprocessing
import os
import time
from multiprocessing.connection import Connection
from typing import Any

from bench.common import raise_open_files

NEXT = b'"type":"next"'


def _frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (every client frame must be masked)."""
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        header = bytes([0x80 | opcode, 0x80 | length])
    else:
        header = bytes([0x80 | opcode, 0x80 | 126]) + length.to_bytes(2, "big")
    return header + mask + bytes(b ^ mask[i & 3] for i, b in enumerate(payload))


class Subscriber(asyncio.Protocol):
    def __init__(self, host: str, port: int, subscribe: bytes, pool: Pool) -> None:
        self.host, self.port, self.subscribe, self.pool = host, port, subscribe, pool
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = False
        self.ready = asyncio.get_running_loop().create_future()
        self.count = 0  # `next` messages received
        self.errors = 0  # of which carried errors
        self.last = 0.0  # when the latest arrived (time.monotonic, shared by all processes)
        self.target = 0  # the count the pool is waiting for

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            f"GET /graphql HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n".encode())

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        buffer = self.buffer
        buffer += data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if b" 101 " not in buffer[:end]:
                self._fail(f"upgrade refused: {bytes(buffer[:end])[:80]!r}")
                return
            del buffer[:end + 4]
            self.upgraded = True
            self._send_text({"type": "connection_init", "payload": {}})
        while len(buffer) >= 2:
            opcode, length, start = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
            if length == 126:
                if len(buffer) < 4:
                    return
                length, start = int.from_bytes(buffer[2:4], "big"), 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length, start = int.from_bytes(buffer[2:10], "big"), 10
            if len(buffer) < start + length:
                return
            payload = bytes(buffer[start:start + length])
            del buffer[:start + length]
            if opcode == 1:
                self._text(payload, now)
            elif opcode == 9:  # ping: the server closes sockets that do not answer
                assert self.transport
                self.transport.write(_frame(10, payload))
            elif opcode == 8:
                self._fail("closed by the server")

    def _text(self, payload: bytes, now: float) -> None:
        if NEXT in payload[:64]:
            self.count += 1
            self.last = now
            if b'"errors"' in payload:
                self.errors += 1
            self.pool.arrived(self)
        elif not self.ready.done() and b"connection_ack" in payload:
            assert self.transport
            self.transport.write(_frame(1, self.subscribe))
            self.ready.set_result(None)

    def _send_text(self, message: dict[str, Any]) -> None:
        assert self.transport
        self.transport.write(_frame(1, json.dumps(message).encode()))

    def _fail(self, why: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(why))
        if self.transport:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail("connection lost")


class Pool:
    """The subscribers of one client process, and the one wait it can be asked for."""

    def __init__(self) -> None:
        self.subscribers: list[Subscriber] = []
        self.pending = 0
        self.done: asyncio.Future | None = None

    def arrived(self, subscriber: Subscriber) -> None:
        if self.done is not None and subscriber.count == subscriber.target:
            self.pending -= 1
            if self.pending == 0 and not self.done.done():
                self.done.set_result(None)

    async def connect(self, host: str, port: int, count: int, subscribe: bytes) -> int:
        loop = asyncio.get_running_loop()
        for start in range(0, count, 100):
            batch = []
            for _ in range(min(100, count - start)):
                _, subscriber = await loop.create_connection(
                    lambda: Subscriber(host, port, subscribe, self), host, port)
                batch.append(subscriber)
            await asyncio.wait_for(asyncio.gather(*(s.ready for s in batch)), 60)
            self.subscribers += batch
        return len(self.subscribers)

    def arm(self, more: int) -> None:
        """Wait, from now, for `more` messages to every subscriber."""
        for subscriber in self.subscribers:
            subscriber.target = subscriber.count + more
        self.pending = len(self.subscribers)
        self.done = asyncio.get_running_loop().create_future()

    async def wait(self, timeout: float) -> dict[str, Any]:
        assert self.done
        if self.pending:
            await asyncio.wait([self.done], timeout=timeout)
        self.done = None
        return {"last": [s.last for s in self.subscribers],
                "complete": sum(1 for s in self.subscribers if s.count >= s.target),
                "messages": sum(s.count for s in self.subscribers),
                "errors": sum(s.errors for s in self.subscribers)}


def _worker(pipe: Connection) -> None:
    raise_open_files()

    async def serve() -> None:
        pool = Pool()
        loop = asyncio.get_running_loop()
        while True:
            command, args = await loop.run_in_executor(None, pipe.recv)
            if command == "connect":
                pipe.send(await pool.connect(*args))
            elif command == "wait":
                more, timeout = args
                pool.arm(more)
                pipe.send("armed")
                pipe.send(await pool.wait(timeout))
            elif command == "close":
                for subscriber in pool.subscribers:
                    if subscriber.transport:
                        subscriber.transport.close()
                await asyncio.sleep(0.2)
                pipe.send(None)
                return

    asyncio.run(serve())


class Clients:
    """Client processes holding `count` subscribers of one subscription document between them."""

    def __init__(self, processes: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs = []
        for _ in range(processes):
            parent, child = context.Pipe()
            proc = context.Process(target=_worker, args=(child,), daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)

    def connect(self, url: str, count: int, query: str,
                variables: dict[str, Any] | None = None) -> int:
        host, port = url.removeprefix("http://").split(":")
        subscribe = json.dumps({"type": "subscribe", "id": "1", "payload": {
            "query": query, "variables": variables or {}}}).encode()
        shares = [count // len(self.pipes) + (i < count % len(self.pipes))
                  for i in range(len(self.pipes))]
        for pipe, share in zip(self.pipes, shares):
            pipe.send(("connect", (host, int(port), share, subscribe)))
        return sum(pipe.recv() for pipe in self.pipes)

    def start_wait(self, more: int, timeout: float) -> None:
        """Have every process wait for `more` messages per subscriber; `results()` tells."""
        for pipe in self.pipes:
            pipe.send(("wait", (more, timeout)))
        for pipe in self.pipes:
            assert pipe.recv() == "armed"

    def results(self) -> dict[str, Any]:
        answers = [pipe.recv() for pipe in self.pipes]
        return {"last": [t for a in answers for t in a["last"]],
                "complete": sum(a["complete"] for a in answers),
                "messages": sum(a["messages"] for a in answers),
                "errors": sum(a["errors"] for a in answers)}

    def close(self) -> None:
        for pipe in self.pipes:
            pipe.send(("close", ()))
        for pipe, proc in zip(self.pipes, self.procs):
            pipe.recv()
            proc.join(10)
