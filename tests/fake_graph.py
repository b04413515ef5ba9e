"""A fake Graph API the tests run on loopback: it answers like Meta, records every call, and fails on demand."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.servers import LoopbackServer

# What each failure mode answers, as Meta answers it.
FAILURES: dict[str, tuple[int, dict[str, Any]]] = {
    "server_error": (500, {"error": {"message": "An unexpected error has occurred. Please retry your request later.", "type": "OAuthException", "code": 2, "is_transient": True, "fbtrace_id": "Atrace500"}}),
    "http_500_plain": (500, {}),
    "rate_limit": (400, {"error": {"message": "(#613) Calls to this api have exceeded the rate limit.", "type": "OAuthException", "code": 613, "fbtrace_id": "Atrace613"}}),
    "http_429": (429, {"error": {"message": "Too many requests", "type": "OAuthException", "code": 4, "fbtrace_id": "Atrace429"}}),
    "bad_token": (400, {"error": {"message": "Error validating access token: The session has been invalidated because the user changed their password.", "type": "OAuthException", "code": 190, "error_subcode": 460, "fbtrace_id": "Atrace190"}}),
    "outside_window": (400, {"error": {"message": "(#10) This message is sent outside of allowed window.", "type": "OAuthException", "code": 10, "error_subcode": 2018278, "fbtrace_id": "Atrace10"}}),
    "unavailable_user": (400, {"error": {"message": "(#551) This person isn't available right now.", "type": "OAuthException", "code": 551, "error_subcode": 1545041, "fbtrace_id": "Atrace551"}}),
    "bad_param": (400, {"error": {"message": "(#100) Invalid parameter", "type": "OAuthException", "code": 100, "fbtrace_id": "Atrace100"}}),
}


@dataclass
class Call:
    method: str
    path: str  # without the version prefix, e.g. "me/messages"
    query: dict[str, str]
    json: Any
    kind: str  # send, subscribe, unsubscribe, page, profile, other
    answered: bool = False  # the fake has sent its answer


@dataclass
class FakeGraph:
    """State shared between the test thread and the server thread."""

    pages: dict[str, dict[str, Any]] = field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    users: dict[str, list[str]] = field(default_factory=dict)  # user token -> page ids managed
    accounts_page_size: int = 2  # /me/accounts answers in pages this long, like Meta's paging
    calls: list[Call] = field(default_factory=list)
    failures: dict[str, deque] = field(default_factory=lambda: defaultdict(deque))
    delays: dict[str, float] = field(default_factory=dict)
    next_mid: itertools.count = field(default_factory=lambda: itertools.count(1))
    mids: deque = field(default_factory=deque)  # mids the next sends answer with, in order
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Like Meta, echo each accepted send to the app's webhook (signed), retrying while it is down.
    echo_to: str = ""
    echo_secret: str = ""
    echo_app_id: str = ""
    echoes: list[str] = field(default_factory=list)  # mids whose echo the webhook accepted

    def reset(self) -> None:
        with self.lock:
            self.pages.clear()
            self.profiles.clear()
            self.users.clear()
            self.calls.clear()
            self.failures.clear()
            self.delays.clear()
            self.mids.clear()
            self.echo_to = ""
            self.echoes.clear()

    def add_page(self, page_id: str, token: str, name: str = "Test Page",
                 picture: str = "https://img.example/page.png") -> None:
        self.pages[page_id] = {"token": token, "name": name, "picture": picture}

    def add_user(self, token: str, page_ids: list[str]) -> None:
        """A Facebook user (known by a user token) who manages these pages (added with add_page)."""
        self.users[token] = list(page_ids)

    def add_profile(self, psid: str, first: str, last: str, pic: str | None = None) -> None:
        self.profiles[psid] = {"first_name": first, "last_name": last,
                               "profile_pic": pic or f"https://img.example/{psid}.jpg"}

    def fail(self, kind: str, mode: str, times: int = 1) -> None:
        """The next `times` calls of `kind` fail with `mode` (a FAILURES key, or "timeout")."""
        with self.lock:
            self.failures[kind].extend([mode] * times)

    def calls_of(self, kind: str) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.kind == kind]

    # --- the server ---

    def app(self, timeout_sleep: float) -> Starlette:
        async def handle(request: Request) -> Response:
            path = request.path_params["rest"]
            body = None
            raw = await request.body()
            if raw:
                try:
                    body = await request.json()
                except ValueError:
                    body = raw.decode(errors="replace")
            kind = self._kind(request.method, path)
            call = Call(request.method, path, dict(request.query_params), body, kind)
            with self.lock:
                self.calls.append(call)
                mode = self.failures[kind].popleft() if self.failures[kind] else None
                delay = self.delays.get(kind, 0)
            if delay:
                await asyncio.sleep(delay)
            if mode == "timeout":
                await asyncio.sleep(timeout_sleep)
                response = JSONResponse({"error": {"message": "too late", "code": 2}},
                                        status_code=504)
            elif mode:
                status, payload = FAILURES[mode]
                response = JSONResponse(payload, status_code=status)
            else:
                response = self._answer(request.method, path, call)
                if kind == "send" and response.status_code == 200 and self.echo_to:
                    asyncio.get_running_loop().create_task(self._echo(call, response))
            call.answered = True
            return response

        return Starlette(routes=[Route("/{version}/{rest:path}", handle,
                                       methods=["GET", "POST", "DELETE"])])

    async def _echo(self, call: Call, response: Response) -> None:
        import httpx

        from gateway.sources.facebook.signature import sign

        mid = json.loads(response.body)["message_id"]
        token = call.query.get("access_token", "")
        page_id = next(pid for pid, page in self.pages.items() if page["token"] == token)
        event = {"sender": {"id": page_id}, "recipient": call.json["recipient"],
                 "timestamp": int(time.time() * 1000),
                 "message": {**call.json["message"], "mid": mid, "is_echo": True,
                             "app_id": int(self.echo_app_id)}}
        body = json.dumps({"object": "page", "entry": [
            {"id": page_id, "time": event["timestamp"], "messaging": [event]}]}).encode()
        async with httpx.AsyncClient(timeout=5) as client:
            for _ in range(80):
                try:
                    answer = await client.post(self.echo_to, content=body, headers={
                        "X-Hub-Signature-256": sign(self.echo_secret, body)})
                    if answer.status_code == 200:
                        self.echoes.append(mid)
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.25)

    def _kind(self, method: str, path: str) -> str:
        if path == "me/messages":
            return "send"
        if path == "me/accounts":
            return "accounts"
        if path.endswith("/subscribed_apps"):
            return "subscribe" if method == "POST" else "unsubscribe"
        if "/" not in path and method == "GET":
            return "page" if path in self.pages else "profile"
        return "other"

    def _answer(self, method: str, path: str, call: Call) -> Response:
        token = call.query.get("access_token", "")
        parts = path.split("/")
        if path == "me/messages" and method == "POST":
            page = next((p for p in self.pages.values() if p["token"] == token), None)
            if page is None:
                return JSONResponse(FAILURES["bad_token"][1], status_code=400)
            recipient = (call.json or {}).get("recipient", {}).get("id")
            mid = self.mids.popleft() if self.mids else f"m_fake_{next(self.next_mid)}"
            return JSONResponse({"recipient_id": recipient, "message_id": mid})
        if path == "me/accounts" and method == "GET":
            return self._accounts(token, call.query)
        if len(parts) == 2 and parts[1] == "subscribed_apps":
            page = self.pages.get(parts[0])
            if page is None or page["token"] != token:
                return JSONResponse(FAILURES["bad_token"][1], status_code=400)
            return JSONResponse({"success": True})
        if len(parts) == 1 and method == "GET":
            if parts[0] in self.pages:
                page = self.pages[parts[0]]
                if page["token"] != token:
                    return JSONResponse(FAILURES["bad_token"][1], status_code=400)
                return JSONResponse({"id": parts[0], "name": page["name"],
                                     "picture": {"data": {"url": page["picture"]}}})
            if parts[0] in self.profiles:
                return JSONResponse({"id": parts[0], **self.profiles[parts[0]]})
        return JSONResponse(FAILURES["bad_param"][1], status_code=400)

    def _accounts(self, token: str, query: dict[str, str]) -> Response:
        if token not in self.users:
            return JSONResponse(FAILURES["bad_token"][1], status_code=400)
        ids = self.users[token]
        start = int(query.get("after") or 0)
        chunk = ids[start:start + self.accounts_page_size]
        body: dict[str, Any] = {"data": [
            {"id": pid, "name": self.pages[pid]["name"], "access_token": self.pages[pid]["token"],
             "picture": {"data": {"url": self.pages[pid]["picture"]}}} for pid in chunk
        ], "paging": {"cursors": {"before": str(start), "after": str(start + len(chunk))}}}
        if start + len(chunk) < len(ids):
            # Meta's `next` is an absolute URL; the gateway follows the cursor instead.
            body["paging"]["next"] = "https://graph.example.invalid/me/accounts?after=x"
        return JSONResponse(body)


class FakeGraphServer(LoopbackServer):
    """Runs a FakeGraph on 127.0.0.1."""

    def __init__(self, timeout_sleep: float = 3.0) -> None:
        self.graph = FakeGraph()
        super().__init__(self.graph.app(timeout_sleep), "fake Graph API")

    def start(self) -> FakeGraph:
        self.graph.url = self.serve() + "/v21.0"
        return self.graph
