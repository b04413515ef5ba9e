"""A TCP proxy the tests put between a gateway and its store, to fail one write on demand.

Armed with a byte pattern, it cuts the connection that sends the first client packet holding it:
before the store sees the packet (the write never happens) or just after (the write happens and
its answer is lost). Then it refuses new connections for a while, so that the driver's own retry
of the write fails too, as it would in a real outage. Everything else passes through untouched.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time


def update_of(collection: str) -> bytes:
    """The bytes that open a MongoDB `update` command on `collection` (its first BSON element):
    unlike the bare words, they appear in no other command (a change stream's `$match` on
    operation types names "update" as an array element)."""
    name = collection.encode() + b"\x00"
    return b"\x02update\x00" + struct.pack("<i", len(name)) + name


class FaultProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"mongodb://127.0.0.1:{self.port}/?directConnection=true"
        self._lock = threading.Lock()
        self._armed: tuple[bytes, bool, float] | None = None
        self._refuse_until = 0.0
        self._sockets: set[socket.socket] = set()
        self._closed = False
        self.cut = threading.Event()  # set once an armed cut has happened
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self, pattern: bytes, *, forward: bool = False, refuse_seconds: float = 2.5) -> None:
        """Cut the next connection whose client sends `pattern`: before the packet reaches the
        store, or (`forward`) after the store has it but before its answer comes back."""
        with self._lock:
            self.cut.clear()
            self._armed = (pattern, forward, refuse_seconds)

    def disarm(self) -> None:
        with self._lock:
            self._armed = None

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            for sock in list(self._sockets):
                _hard_close(sock)

    # --- the proxy -------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if time.monotonic() < self._refuse_until:
                _hard_close(client)  # the store is "away"
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                _hard_close(client)
                continue
            server.settimeout(None)
            with self._lock:
                self._sockets |= {client, server}
            muted = threading.Event()  # the store's answers are dropped once set
            threading.Thread(target=self._upstream, args=(client, server, muted),
                             daemon=True).start()
            threading.Thread(target=self._downstream, args=(server, client, muted),
                             daemon=True).start()

    def _upstream(self, client: socket.socket, server: socket.socket,
                  muted: threading.Event) -> None:
        cut = False
        try:
            while data := client.recv(65536):
                with self._lock:
                    armed = self._armed
                    cut = armed is not None and armed[0] in data
                    if armed and cut:
                        self._armed = None
                        self._refuse_until = time.monotonic() + armed[2]
                if armed and cut:
                    if armed[1]:  # the store gets the write; its answer is lost
                        muted.set()
                        server.sendall(data)
                        time.sleep(0.3)
                    break
                server.sendall(data)
        except OSError:
            pass
        self._drop(client, server)
        if cut:
            self.cut.set()

    def _downstream(self, server: socket.socket, client: socket.socket,
                    muted: threading.Event) -> None:
        try:
            while data := server.recv(65536):
                if not muted.is_set():
                    client.sendall(data)
        except OSError:
            pass
        self._drop(client, server)

    def _drop(self, *sockets: socket.socket) -> None:
        with self._lock:
            for sock in sockets:
                self._sockets.discard(sock)
                _hard_close(sock)


def _hard_close(sock: socket.socket) -> None:
    """Close with a reset, as a dying server's socket does."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()
