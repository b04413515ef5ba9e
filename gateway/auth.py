"""`SYSTEM_TOKEN` guard: every route but the public ones needs the token (header or cookie)."""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Iterable
from http.cookies import CookieError, SimpleCookie

from starlette.types import ASGIApp, Receive, Scope, Send

# Airy's browser client sends no Authorization header: it relies on this cookie (same token).
AUTH_COOKIE = "airy_auth_token"
# The webhook is guarded by Meta's signature instead; health checks come from load balancers.
PUBLIC_PATHS = ("/facebook", "/health", "/")  # "/": a page of links, nothing else


def token_of(header: str) -> str:
    """The token in an Authorization header: `Bearer <token>`, or the raw token as Airy allows."""
    scheme, _, rest = header.strip().partition(" ")
    return rest.strip() if scheme.lower() == "bearer" else header.strip()


def token_matches(expected: str, presented: str) -> bool:
    return hmac.compare_digest(expected.encode(), presented.encode())


def presented_tokens(headers: Iterable[tuple[bytes, bytes]]) -> list[str]:
    """The tokens a request presents: its Authorization header's, and the `airy_auth_token`
    cookie's. Empty values are not tokens."""
    tokens: list[str] = []
    for name, value in headers:
        if name == b"authorization" and value.strip():
            tokens.append(token_of(value.decode("latin-1")))
        elif name == b"cookie":
            cookie = SimpleCookie()
            try:
                cookie.load(value.decode("latin-1"))
            except CookieError:
                continue  # a malformed cookie header presents nothing
            morsel = cookie.get(AUTH_COOKIE)
            if morsel is not None and morsel.value.strip():
                tokens.append(morsel.value.strip())
    return tokens


def authorised(expected: str, tokens: list[str]) -> bool:
    return any(token_matches(expected, token) for token in tokens)


class TokenAuth:
    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Websockets present the token in their connection_init or upgrade (see the GraphQL
        # view and the STOMP endpoint). What passes is handed on, not awaited here: a
        # websocket holds no frame of ours for its life.
        if scope["type"] != "http" or not self.token or _is_public(scope):
            return self.app(scope, receive, send)
        tokens = presented_tokens(scope["headers"])
        if not tokens:
            return _refuse(send, 401, "Authorization: Bearer <token> (or the airy_auth_token "
                                      "cookie) is required")
        if not authorised(self.token, tokens):
            return _refuse(send, 403, "the API token is not valid")
        return self.app(scope, receive, send)


def _is_public(scope: Scope) -> bool:
    if scope["path"] in PUBLIC_PATHS:
        return True
    # The inbox's static files: the page asks for the token and sends it with each API call.
    if scope["path"] == "/inbox" or scope["path"].startswith("/inbox/"):
        return True
    # The GraphiQL page itself (no query in it) loads in a browser, which sends no token; the
    # queries it then runs carry the token in the headers GraphiQL lets the user set.
    if scope["path"] == "/graphql" and scope["method"] == "GET" and not scope["query_string"]:
        accept = next((v for k, v in scope["headers"] if k == b"accept"), b"")
        return b"text/html" in accept
    return False


async def _refuse(send: Send, status: int, message: str) -> None:
    body = json.dumps({"message": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
