"""A Graph API that answers like Meta: the sandbox's, the tests' and the benchmarks' one simulator.

It knows pages (by token), people's profiles and users' pages; records every call; answers the
Send API with a message id; echoes each accepted send to the app's webhook, signed, as Meta does;
and fails on demand with Meta's own errors. It is an ASGI app (`FakeGraph.app`): the sandbox
mounts it in the gateway's process, the tests and benchmarks serve it on loopback
(`FakeGraphServer`), and the fast tests call it through httpx's ASGI transport.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.sandbox.payloads import envelope, signed, ts

# What each failure mode answers, as Meta answers it.
FAILURES: dict[str, tuple[int, dict[str, Any]]] = {
    "server_error": (500, {"error": {"message": "An unexpected error has occurred. Please retry your request later.", "type": "OAuthException", "code": 2, "is_transient": True, "fbtrace_id": "Atrace500"}}),  # noqa: E501
    "http_500_plain": (500, {}),
    "rate_limit": (400, {"error": {"message": "(#613) Calls to this api have exceeded the rate limit.", "type": "OAuthException", "code": 613, "fbtrace_id": "Atrace613"}}),  # noqa: E501
    "http_429": (429, {"error": {"message": "Too many requests", "type": "OAuthException", "code": 4, "fbtrace_id": "Atrace429"}}),  # noqa: E501
    "bad_token": (400, {"error": {"message": "Error validating access token: The session has been invalidated because the user changed their password.", "type": "OAuthException", "code": 190, "error_subcode": 460, "fbtrace_id": "Atrace190"}}),  # noqa: E501
    "outside_window": (400, {"error": {"message": "(#10) This message is sent outside of allowed window.", "type": "OAuthException", "code": 10, "error_subcode": 2018278, "fbtrace_id": "Atrace10"}}),  # noqa: E501
    "unavailable_user": (400, {"error": {"message": "(#551) This person isn't available right now.", "type": "OAuthException", "code": 551, "error_subcode": 1545041, "fbtrace_id": "Atrace551"}}),  # noqa: E501
    "bad_param": (400, {"error": {"message": "(#100) Invalid parameter", "type": "OAuthException", "code": 100, "fbtrace_id": "Atrace100"}}),  # noqa: E501
}
FAILURE_MODES = (*FAILURES, "timeout")
# The handover protocol's calls (`me/<name>`), each recorded as a call of that kind.
THREAD_CONTROL = ("pass_thread_control", "take_thread_control", "request_thread_control")
# Sender actions: `me/messages` with a `sender_action` and no `message`, recorded as calls of
# kind "sender_action". They count against a page's Send API rate as sends do.
SENDER_ACTIONS = ("typing_on", "typing_off", "mark_seen")
SEND_API = ("send", "sender_action")


@dataclass
class Call:
    method: str
    path: str  # without the version prefix, e.g. "me/messages"
    query: dict[str, str]
    json: Any
    kind: str  # send, sender_action, subscribe, unsubscribe, page, profile, accounts,
    # THREAD_CONTROL, other
    answered: bool = False  # the fake has sent its answer
    status: int = 0  # the HTTP status of that answer
    answer: Any = None  # its JSON body
    at: float = field(default_factory=time.time)


@dataclass
class FakeGraph:
    """State shared between the thread that drives it (a test) and the one that serves it."""

    pages: dict[str, dict[str, Any]] = field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    users: dict[str, list[str]] = field(default_factory=dict)  # user token -> page ids managed
    accounts_page_size: int = 2  # /me/accounts answers in pages this long, like Meta's paging
    calls: list[Call] = field(default_factory=list)
    max_calls: int = 0  # keep only the newest this many calls (0: all, as the tests need)
    failures: dict[str, deque] = field(default_factory=lambda: defaultdict(deque))
    delays: dict[str, float] = field(default_factory=dict)
    jitter: dict[str, float] = field(default_factory=dict)  # plus a random delay up to this
    # Like Meta, a page's sends beyond this many in any second are answered 613 (0: no limit).
    send_rate_limit: int = 0
    _recent_sends: dict[str, deque] = field(default_factory=lambda: defaultdict(deque))
    next_mid: itertools.count = field(default_factory=lambda: itertools.count(1))
    mids: deque = field(default_factory=deque)  # mids the next sends answer with, in order
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Like Meta, echo each accepted send to the app's webhook (signed), retrying while it is down.
    echo_to: str = ""
    echo_secret: str = ""
    echo_app_id: str = ""
    echoes: list[str] = field(default_factory=list)  # mids whose echo the webhook accepted
    # Files taken by the Attachment Upload API, by the attachment_id answered: the page they
    # were uploaded for (an id works for that page only), their type, name, MIME type and bytes.
    attachments: dict[str, dict[str, Any]] = field(default_factory=dict)
    next_attachment_id: itertools.count = field(
        default_factory=lambda: itertools.count(900_000_001))
    _tasks: set[asyncio.Task] = field(default_factory=set)

    def reset(self) -> None:
        with self.lock:
            self.pages.clear()
            self.profiles.clear()
            self.users.clear()
            self.calls.clear()
            self.failures.clear()
            self.delays.clear()
            self.jitter.clear()
            self.send_rate_limit = 0
            self._recent_sends.clear()
            self.mids.clear()
            self.echo_to = ""
            self.echoes.clear()
            self.attachments.clear()

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

    def _over_rate(self, token: str) -> bool:
        """Count a send to the page; more than `send_rate_limit` in the last second is too many."""
        now, recent = time.monotonic(), self._recent_sends[token]
        while recent and recent[0] <= now - 1:
            recent.popleft()
        recent.append(now)
        return len(recent) > self.send_rate_limit

    def calls_of(self, kind: str) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.kind == kind]

    async def aclose(self) -> None:
        """Stop the echoes under way (the sandbox's shutdown)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- the server ---

    def app(self, timeout_sleep: float) -> Starlette:
        """The Graph API as an ASGI app at /<version>/<path>; a "timeout" sleeps this long."""
        async def handle(request: Request) -> Response:
            path = request.path_params["rest"]
            body: Any = None
            raw = await request.body()
            if request.headers.get("content-type", "").startswith("multipart/form-data"):
                body = await _form(request)
            elif raw:
                try:
                    body = await request.json()
                except ValueError:
                    body = raw.decode(errors="replace")
            kind = self._kind(request.method, path, body)
            call = Call(request.method, path, dict(request.query_params), body, kind)
            with self.lock:
                self.calls.append(call)
                if self.max_calls and len(self.calls) > self.max_calls:
                    del self.calls[0]
                mode = self.failures[kind].popleft() if self.failures[kind] else None
                delay = self.delays.get(kind, 0) + random.uniform(0, self.jitter.get(kind, 0))
                if kind in SEND_API and self.send_rate_limit and not mode and self._over_rate(
                        call.query.get("access_token", "")):
                    mode = "rate_limit"
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
            call.status = response.status_code
            call.answer = json.loads(bytes(response.body)) if response.body else None
            if kind == "send" and call.status == 200 and self.echo_to and not mode:
                task = asyncio.get_running_loop().create_task(self._echo(call))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            call.answered = True
            return response

        return Starlette(routes=[Route("/{version}/{rest:path}", handle,
                                       methods=["GET", "POST", "DELETE"])])

    async def _echo(self, call: Call) -> None:
        mid = call.answer["message_id"]
        token = call.query.get("access_token", "")
        page_id = next(pid for pid, page in self.pages.items() if page["token"] == token)
        message = {**call.json["message"], "mid": mid, "is_echo": True}
        if self.echo_app_id.isdigit():
            message["app_id"] = int(self.echo_app_id)
        event = {"sender": {"id": page_id}, "recipient": call.json["recipient"],
                 "timestamp": ts(), "message": message}
        body, headers = signed(self.echo_secret, envelope(page_id, event))
        async with httpx.AsyncClient(timeout=5) as client:
            for _ in range(80):
                try:
                    answer = await client.post(self.echo_to, content=body, headers=headers)
                    if answer.status_code == 200:
                        self.echoes.append(mid)
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.25)

    def _kind(self, method: str, path: str, body: Any = None) -> str:
        if path == "me/messages":
            return "sender_action" if isinstance(body, dict) and "sender_action" in body \
                else "send"
        if path.endswith("/message_attachments"):
            return "upload"
        if path == "me/accounts":
            return "accounts"
        if path.removeprefix("me/") in THREAD_CONTROL:
            return path.removeprefix("me/")
        if path.endswith("/subscribed_apps"):
            return "subscribe" if method == "POST" else "unsubscribe"
        if "/" not in path and method == "GET":
            return "page" if path in self.pages else "profile"
        return "other"

    def _answer(self, method: str, path: str, call: Call) -> JSONResponse:
        token = call.query.get("access_token", "")
        parts = path.split("/")
        if path == "me/messages" and method == "POST":
            page = next((p for p in self.pages.values() if p["token"] == token), None)
            if page is None:
                return JSONResponse(FAILURES["bad_token"][1], status_code=400)
            recipient = (call.json or {}).get("recipient", {}).get("id")
            if call.kind == "sender_action":  # as Meta: the recipient, no message id
                if call.json.get("sender_action") not in SENDER_ACTIONS or "message" in call.json:
                    return JSONResponse(FAILURES["bad_param"][1], status_code=400)
                return JSONResponse({"recipient_id": recipient})
            if not self._known_attachment(call.json, token):
                return JSONResponse(FAILURES["bad_param"][1], status_code=400)
            mid = self.mids.popleft() if self.mids else f"m_fake_{next(self.next_mid)}"
            return JSONResponse({"recipient_id": recipient, "message_id": mid})
        if call.kind == "upload" and method == "POST":
            return self._upload(token, call)
        if path == "me/accounts" and method == "GET":
            return self._accounts(token, call.query)
        if path.removeprefix("me/") in THREAD_CONTROL and method == "POST":
            if not any(p["token"] == token for p in self.pages.values()):
                return JSONResponse(FAILURES["bad_token"][1], status_code=400)
            if not str((call.json or {}).get("recipient", {}).get("id", "")).isdigit():
                return JSONResponse(FAILURES["bad_param"][1], status_code=400)
            return JSONResponse({"success": True})
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

    def _upload(self, token: str, call: Call) -> JSONResponse:
        """Attachment Upload API: `message` (JSON: attachment type, is_reusable) and `filedata`
        (the file) as multipart form fields; answers the attachment_id."""
        page_id = next((pid for pid, p in self.pages.items() if p["token"] == token), None)
        if page_id is None:
            return JSONResponse(FAILURES["bad_token"][1], status_code=400)
        form = call.json if isinstance(call.json, dict) else {}
        attachment = (form.get("message") or {}).get("attachment") or {}
        filedata = form.get("filedata")
        if attachment.get("type") not in ("image", "video", "audio", "file") or not filedata:
            return JSONResponse(FAILURES["bad_param"][1], status_code=400)
        attachment_id = str(next(self.next_attachment_id))
        with self.lock:
            self.attachments[attachment_id] = {
                "page": page_id, "type": attachment["type"], "data": filedata.pop("data"),
                "reusable": bool((attachment.get("payload") or {}).get("is_reusable")),
                **filedata}
        return JSONResponse({"attachment_id": attachment_id})

    def _known_attachment(self, body: Any, token: str) -> bool:
        """A send naming an attachment_id names one uploaded for its page (as Meta requires)."""
        attachment = ((body or {}).get("message") or {}).get("attachment")
        payload = attachment.get("payload") if isinstance(attachment, dict) else None
        if not isinstance(payload, dict) or "attachment_id" not in payload:
            return True
        known = self.attachments.get(str(payload["attachment_id"]))
        return known is not None and self.pages.get(known["page"], {}).get("token") == token

    def _accounts(self, token: str, query: dict[str, str]) -> JSONResponse:
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


async def _form(request: Request) -> dict[str, Any]:
    """A multipart call's fields: JSON ones read, a file as its name, type, size and bytes."""
    fields: dict[str, Any] = {}
    async with request.form() as form:
        for name, value in form.multi_items():
            if isinstance(value, str):
                try:
                    fields[name] = json.loads(value)
                except ValueError:
                    fields[name] = value
            else:
                data = await value.read()
                fields[name] = {"filename": value.filename, "content_type": value.content_type,
                                "size": len(data), "data": data}
    return fields


class FakeGraphServer:
    """Serves a FakeGraph on 127.0.0.1 (a free port) from a daemon thread of this process."""

    def __init__(self, timeout_sleep: float = 3.0) -> None:
        self.graph = FakeGraph()
        config = uvicorn.Config(self.graph.app(timeout_sleep), host="127.0.0.1", port=0,
                                log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="fake Graph API", daemon=True)

    def start(self) -> FakeGraph:
        """Serve; the graph's `url` is then its base URL (…/v21.0)."""
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the fake Graph API did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.graph.url = f"http://127.0.0.1:{port}/v21.0"
        return self.graph

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(5)
