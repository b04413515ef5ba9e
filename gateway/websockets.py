"""A cap on open websockets, within the descriptors the process may open.

Every open websocket holds a file descriptor for as long as it lives, and a client may open as
many as it likes (without a token, too: the token comes in `connection_init`). With no cap, a few
thousand idle sockets use up the usual 1024 descriptors, and then `/health`, the API and Meta's
webhook cannot be accepted. So at most `WS_MAX_CONNECTIONS` websockets are open at once in a
process, and never more than the descriptor limit leaves once a reserve is kept for HTTP, the
store and files; the next is accepted and closed at once with 1013 (try again later).

At start-up the soft descriptor limit is raised as far as the hard limit allows, so that the
default cap is not cut down by a soft limit no one chose.
"""

from __future__ import annotations

import logging
import resource
import time

from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)

# Descriptors kept for everything but websockets: HTTP connections, the store's connection pool,
# the Graph API client's, log and data files.
RESERVED_DESCRIPTORS = 256
TRY_AGAIN_LATER = 1013
REFUSALS_LOGGED_EVERY_SECONDS = 60.0


def raise_descriptor_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit where the system allows; the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # Unlimited: Linux caps descriptors at fs.nr_open (2**20 by default) anyway.
    target = hard if hard != resource.RLIM_INFINITY else 2**20
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:  # e.g. macOS, where OPEN_MAX is lower
            log.warning("could not raise the descriptor limit from %d to %d (%s)", soft, target,
                        exc)
    return soft


def websocket_cap(configured: int, descriptors: int) -> int:
    """How many websockets may be open at once: `configured`, within the descriptor limit."""
    if descriptors == resource.RLIM_INFINITY:
        return configured
    return max(1, min(configured, descriptors - RESERVED_DESCRIPTORS))


class WebsocketLimit:
    """ASGI middleware: refuses a websocket past the cap with 1013 and a reason."""

    def __init__(self, app: ASGIApp, max_connections: int) -> None:
        """Built once, as the app starts (Starlette builds its middleware for the lifespan)."""
        self.app = app
        descriptors = raise_descriptor_limit()
        self.cap = websocket_cap(max_connections, descriptors)
        if self.cap < max_connections:
            log.warning("at most %d websockets open at once: WS_MAX_CONNECTIONS is %d, but the "
                        "process may open %d descriptors, %d of them kept for HTTP, the store "
                        "and files", self.cap, max_connections, descriptors,
                        RESERVED_DESCRIPTORS)
        self.open = 0
        self._logged_at = -REFUSALS_LOGGED_EVERY_SECONDS  # the last refusal logged

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        if self.open >= self.cap:
            if time.monotonic() - self._logged_at >= REFUSALS_LOGGED_EVERY_SECONDS:
                self._logged_at = time.monotonic()  # one line a minute at most, under a flood
                log.warning("%d websockets open, the most allowed: refusing more with 1013",
                            self.open)
            await self._refuse(scope, receive, send)
            return
        self.open += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.open -= 1

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Accepted, then closed: a client sees the close code and the reason (closed before it
        is accepted, the handshake would only get 403). The first subprotocol the client asks
        for is accepted, so that no client fails the handshake before it sees the close."""
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept",
                    "subprotocol": next(iter(scope.get("subprotocols") or []), None)})
        await send({"type": "websocket.close", "code": TRY_AGAIN_LATER,
                    "reason": f"too many open websockets (at most {self.cap}); try again later"})
