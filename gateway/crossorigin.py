"""Cross-site requests: a web page the operator happens to visit must not drive the gateway.

A browser sends some requests to any site without asking that site first: a POST whose body is
`text/plain`, a form or multipart (or has no type at all), and a websocket upgrade. With no
`SYSTEM_TOKEN` (the default, on loopback) such a request from any page could subscribe an outgoing
webhook and copy every message out, or open `/graphql` and read live messages. So, in front of
auth and the query cache:

- a request carrying an `Origin` that is neither the gateway's own (the Origin's host and port
  equal the request's `Host`, a port left out being the default of the Origin's scheme; the
  scheme is not compared, since TLS may end at a proxy) nor listed in `ALLOWED_ORIGINS` is
  refused with 403, websocket upgrades included. Requests without an Origin (curl, servers,
  Meta) are not from a page, and pass, as do those a browser marks `Sec-Fetch-Site:
  same-origin` (no page can set that header; it keeps the inbox working behind a proxy that
  rewrites `Host`);
- a POST body must be JSON (`Content-Type: application/json`, parameters such as a charset
  allowed), else 415: a page can send JSON elsewhere only after a CORS preflight, which the
  gateway answers for `ALLOWED_ORIGINS` alone. A POST with no body and no Content-Type passes
  (it carries nothing to act on, and Airy clients send list calls that way). `POST /facebook` is
  exempt: Meta's signature over the body authenticates it, which no page can forge, and the
  route answers any body it cannot parse with 400 after checking that signature.
- uploads (`POST /media.upload`, and `/graphql` by the GraphQL multipart request spec) may be
  `multipart/form-data`, which any page may send, so only with an `Apollo-Require-Preflight` or
  `X-Apollo-Operation-Name` header (Apollo Server's rule; apollo-upload-client sends the first):
  a page can set a header only after a preflight, answered for `ALLOWED_ORIGINS` alone.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Iterable

from starlette.types import ASGIApp, Receive, Scope, Send
from strawberry.http.websocket_origin import (
    is_same_origin,
    normalize_allowed_origins,
    normalize_origin,
)

# Authenticated by Meta's X-Hub-Signature-256 over the exact body.
SIGNED_PATHS = ("/facebook",)
# Take multipart/form-data bodies (file uploads) that carry one of PREFLIGHT_HEADERS.
UPLOAD_PATHS = ("/media.upload", "/graphql")
PREFLIGHT_HEADERS = (b"apollo-require-preflight", b"x-apollo-operation-name")


def allowed_origins(origins: Iterable[str]) -> frozenset[str]:
    """ALLOWED_ORIGINS spelled as browsers send an Origin (lowercase, no default port).

    The rules are strawberry's, which checks a websocket's Origin the same way: one rule for
    HTTP and websockets alike.
    """
    return normalize_allowed_origins(list(origins))


class CrossOrigin:
    """ASGI middleware refusing foreign Origins (403) and POST bodies that are not JSON (415)."""

    def __init__(self, app: ASGIApp, allowed: Iterable[str] = (),
                 server_uploads: Iterable[str] = ()) -> None:
        self.app = app
        self.allowed = allowed_origins(allowed)
        # Paths servers post files to (the sandbox's Attachment Upload API, which the gateway
        # calls itself): multipart passes there without an Origin, which every browser's POST has.
        self.server_uploads = frozenset(server_uploads)

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """What passes is handed on, not awaited here: a websocket holds no frame of ours (nor
        the headers read) for its life."""
        if scope["type"] not in ("http", "websocket"):
            return self.app(scope, receive, send)
        headers: dict[bytes, str] = {}
        for name, value in scope["headers"]:
            if name in (b"origin", b"host", b"sec-fetch-site", b"content-type",
                        b"content-length", b"transfer-encoding", *PREFLIGHT_HEADERS):
                headers[name] = value.decode("latin-1")
        origin_header = headers.get(b"origin")
        if origin_header is not None and headers.get(b"sec-fetch-site") != "same-origin" \
                and not self._allowed(origin_header, headers.get(b"host", "")):
            message = (f"Origin {origin_header[:200]!r} may not call this gateway: only its own "
                       "origin and those in ALLOWED_ORIGINS may")
            if scope["type"] == "websocket":
                return _deny_websocket(scope, receive, send, message)
            return _answer(send, 403, message)
        if scope["type"] == "http" and scope["method"] == "POST" \
                and scope["path"] not in SIGNED_PATHS:
            problem = None if origin_header is None and scope["path"] in self.server_uploads \
                else _body_problem(headers, scope["path"] in UPLOAD_PATHS)
            if problem:
                return _answer(send, 415, problem)
        return self.app(scope, receive, send)

    def _allowed(self, origin: str, host: str) -> bool:
        """The gateway's own origin (host and port as in `Host`, the scheme not compared, since
        TLS may end at a proxy; a port left out is the origin scheme's default), or allowed."""
        return is_same_origin(origin, host) or normalize_origin(origin) in self.allowed


def _body_problem(headers: dict[bytes, str], upload: bool = False) -> str | None:
    """Why a POST's body is refused, or None when it is JSON or there is none (or, on an
    upload path, multipart with a header only a preflighted page can send)."""
    content_type = headers.get(b"content-type")
    if content_type is None:
        length = headers.get(b"content-length", "0").strip()
        if b"transfer-encoding" not in headers and length in ("", "0"):
            return None  # no body at all
        return "the body must be JSON: send it with Content-Type: application/json"
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/json":
        return None
    if upload and media_type == "multipart/form-data":
        if any(headers.get(name, "").strip() for name in PREFLIGHT_HEADERS):
            return None
        return ("the body must be JSON (Content-Type: application/json), or an upload "
                "(multipart/form-data) with the header Apollo-Require-Preflight: true (pages "
                "may send it only after a CORS preflight)")
    return (f"the body must be JSON: send it with Content-Type: application/json "
            f"(got {content_type[:100]!r})")


def _error_body(message: str) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    body = json.dumps({"message": message}).encode()
    return body, [(b"content-type", b"application/json"),
                  (b"content-length", str(len(body)).encode())]


async def _answer(send: Send, status: int, message: str) -> None:
    body, headers = _error_body(message)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _deny_websocket(scope: Scope, receive: Receive, send: Send, message: str) -> None:
    """Refuse the upgrade: 403 with the message where the server can send one, else a bare 403."""
    connect = await receive()
    if connect["type"] != "websocket.connect":
        return
    if "websocket.http.response" in (scope.get("extensions") or {}):
        body, headers = _error_body(message)
        await send({"type": "websocket.http.response.start", "status": 403, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})
