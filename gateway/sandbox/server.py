"""`messenger-gateway --sandbox`: the gateway, with Meta simulated in the same process.

Mounted at /sandbox, the sandbox plays Meta's part and the customers' over real HTTP, as Meta
would: the Graph API simulator at /sandbox/graph (the gateway's FACEBOOK_GRAPH_API_URL) records
sends and echoes them to /facebook, signed; the customer page at /sandbox posts what a person
writes, reacts or reads as Meta's signed webhooks to /facebook; and at start-up the demo page is
connected through `channels.facebook.connect`. Meta sends no token, so the sandbox runs as the
gateway does without SYSTEM_TOKEN: on loopback only (cli.py refuses anything else).
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import logging
import secrets
import time
from pathlib import Path
from typing import Annotated, Any, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from gateway.config import Settings
from gateway.sandbox import payloads
from gateway.sandbox.graph import FAILURE_MODES, Call, FakeGraph

log = logging.getLogger("gateway.sandbox")

PREFIX = "/sandbox"
GRAPH_PATH = PREFIX + "/graph"
GRAPH_VERSION = "v21.0"
DEMO_PAGE_ID = "1234567890"
DEMO_PAGE_NAME = "Demo Shop"
DEMO_PAGE_TOKEN = "sandbox-page-token"
DEMO_USER_TOKEN = "sandbox-user-token"  # a Facebook user who manages the demo page
SANDBOX_APP_ID = "1000000000000001"
SANDBOX_DATABASE = "messenger_gateway_sandbox"
DEMO_PEOPLE = ("Ada Lovelace", "Grace Hopper")
STATIC = Path(__file__).resolve().parent / "static"
# In memory only, and bounded: the people named, each one's own messages, the calls recorded.
MAX_PEOPLE = 200
MAX_WRITTEN = 200
MAX_CALLS = 5000
CONNECT_SECONDS = 30.0

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)]
Psid = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,32}$")]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewPerson(Input):
    name: Name


class Write(Input):
    psid: Psid
    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class React(Input):
    psid: Psid
    mid: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    emoji: Annotated[str, StringConstraints(max_length=16)] = ""  # empty: take the reaction back


class Read(Input):
    psid: Psid


class Fail(Input):
    mode: Annotated[str, StringConstraints(max_length=40)]  # a failure mode, or "" for none
    times: Annotated[int, Field(ge=1, le=100)] = 1


def own_url(settings: Settings) -> str:
    """Where this gateway answers on loopback, as the sandbox calls it."""
    host = settings.host.strip("[]")
    return f"http://{f'[{host}]' if ':' in host else host}:{settings.port}"


def configure(settings: Settings) -> Settings:
    """The settings of a sandbox gateway: the simulator as the Graph API, an app secret and a
    verify token made up for this run (unless set), the sandbox's app id and, unless
    MONGODB_DATABASE is set, a database of its own (the sandbox's made-up people never mix with
    a real page's)."""
    given = settings.model_fields_set
    return settings.model_copy(update={
        "graph_api_url": f"{own_url(settings)}{GRAPH_PATH}/{GRAPH_VERSION}",
        "facebook_app_secret": settings.facebook_app_secret or secrets.token_hex(16),
        "facebook_webhook_secret": settings.facebook_webhook_secret or secrets.token_hex(16),
        "facebook_app_id": settings.facebook_app_id or SANDBOX_APP_ID,
        "mongodb_database": (settings.mongodb_database if "mongodb_database" in given
                             else SANDBOX_DATABASE),
    })


def psid_of(name: str) -> str:
    """A person's page-scoped id, the same for the same name: after a restart, writing as the
    same person continues the same conversation."""
    digest = hashlib.sha256(name.casefold().encode()).digest()
    return str(10**15 + int.from_bytes(digest[:8], "big") % (9 * 10**15))


class Sandbox:
    """Meta and the customers: the simulator, who the customers are, and what they wrote."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = own_url(settings)
        self.graph = FakeGraph(max_calls=MAX_CALLS, url=settings.graph_api_url,
                               echo_to=self.url + "/facebook",
                               echo_secret=settings.facebook_app_secret,
                               echo_app_id=settings.facebook_app_id)
        self.graph.add_page(DEMO_PAGE_ID, DEMO_PAGE_TOKEN, DEMO_PAGE_NAME,
                            picture=f"{self.url}{PREFIX}/avatar/page.svg")
        self.graph.add_user(DEMO_USER_TOKEN, [DEMO_PAGE_ID])
        self.people: dict[str, str] = {}  # psid -> name
        self.written: dict[str, list[dict[str, Any]]] = {}  # psid -> their messages, oldest first
        self.reactions: dict[str, str] = {}  # mid of a reply -> the person's emoji
        self.read_at: dict[str, int] = {}  # psid -> watermark of their last read receipt
        for name in DEMO_PEOPLE:
            self.add_person(name)
        self.http: httpx.AsyncClient | None = None
        self.connecting: asyncio.Task | None = None
        # Mounted at PREFIX, inside the gateway's middleware (cross-site checks, body limit).
        self.app = Starlette(routes=[
            Route("/api/state", self.state, methods=["GET"]),
            Route("/api/thread", self.thread, methods=["GET"]),
            Route("/api/people", self.new_person, methods=["POST"]),
            Route("/api/message", self.message, methods=["POST"]),
            Route("/api/reaction", self.reaction, methods=["POST"]),
            Route("/api/read", self.read, methods=["POST"]),
            Route("/api/fail", self.fail, methods=["POST"]),
            Route("/avatar/{who}.svg", self.avatar, methods=["GET"]),
            Mount(GRAPH_PATH.removeprefix(PREFIX),
                  self.graph.app(timeout_sleep=settings.graph_api_timeout + 1)),
            Mount("/", StaticFiles(directory=STATIC, html=True)),
        ])

    def add_person(self, name: str) -> str:
        psid = psid_of(name)
        if psid not in self.people and len(self.people) >= MAX_PEOPLE:
            raise ValueError(f"the sandbox keeps at most {MAX_PEOPLE} people")
        first, _, last = name.partition(" ")
        self.people[psid] = name
        self.graph.add_profile(psid, first, last, pic=f"{self.url}{PREFIX}/avatar/{psid}.svg")
        return psid

    def replies(self, psid: str) -> list[Call]:
        """The sends to the person that Meta (the simulator) accepted."""
        return [call for call in self.graph.calls_of("send") if call.status == 200
                and isinstance(call.json, dict) and call.json["recipient"].get("id") == psid]

    async def avatar(self, request: Request) -> Response:
        """A picture for a person or the page (initials on a colour), so that nothing the
        sandbox shows is loaded from elsewhere."""
        who = request.path_params["who"]
        name = DEMO_PAGE_NAME if who == "page" else self.people.get(who, "?")
        initials = "".join(part[0] for part in name.split()[:2]).upper()
        hue = int(hashlib.sha256(name.encode()).hexdigest()[:4], 16) % 360
        svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
               f'<rect width="64" height="64" fill="hsl({hue},45%,55%)"/>'
               f'<text x="32" y="40" font-family="sans-serif" font-size="24" fill="#fff" '
               f'text-anchor="middle">{html.escape(initials)}</text></svg>')
        return Response(svg, media_type="image/svg+xml")

    # --- start and stop, with the gateway ---

    async def start(self) -> None:
        self.http = httpx.AsyncClient(timeout=10)
        self.connecting = asyncio.get_running_loop().create_task(self._connect_demo_page())

    async def stop(self) -> None:
        if self.connecting:
            self.connecting.cancel()
            await asyncio.gather(self.connecting, return_exceptions=True)
        await self.graph.aclose()
        if self.http:
            await self.http.aclose()

    async def _connect_demo_page(self) -> None:
        """Connect the demo page as anyone would, once the gateway listens (again at each start:
        connecting a connected page changes nothing but its token)."""
        assert self.http
        deadline = time.monotonic() + CONNECT_SECONDS
        while True:
            try:
                answer = await self.http.post(
                    self.url + "/channels.facebook.connect",
                    json={"page_id": DEMO_PAGE_ID, "page_token": DEMO_PAGE_TOKEN})
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    log.warning("sandbox: the gateway did not answer at %s; the demo page is "
                                "not connected", self.url)
                    return
                await asyncio.sleep(0.2)
                continue
            if answer.status_code == 200:
                log.info("sandbox: demo page %r (%s) connected; write to it as a customer at "
                         "%s%s/, read and answer in the inbox", DEMO_PAGE_NAME, DEMO_PAGE_ID,
                         self.url, PREFIX)
            else:
                log.warning("sandbox: connecting the demo page failed: %s %s",
                            answer.status_code, answer.text[:300])
            return

    # --- the customer page's API ---

    async def state(self, request: Request) -> Response:
        return JSONResponse({
            "page": {"id": DEMO_PAGE_ID, "name": DEMO_PAGE_NAME},
            "people": [{"psid": psid, "name": name} for psid, name in self.people.items()],
            "failure_modes": list(FAILURE_MODES),
            "failing": list(self.graph.failures["send"]),
        })

    async def thread(self, request: Request) -> Response:
        """What the person wrote and what the page sent them (as Meta accepted it), in order."""
        psid = request.query_params.get("psid", "")
        if psid not in self.people:
            return _problem(404, f"no person {psid[:40]!r} in the sandbox")
        items = [{**item, "from": "person"} for item in self.written.get(psid, [])]
        for call in self.replies(psid):
            mid = call.answer["message_id"]
            items.append({"from": "page", "mid": mid, "text": _shown(call.json["message"]),
                          "at": int(call.at * 1000), "reaction": self.reactions.get(mid, "")})
        items.sort(key=lambda item: item["at"])
        return JSONResponse({"messages": items[-MAX_WRITTEN:],
                             "read_at": self.read_at.get(psid, 0),
                             "failing": list(self.graph.failures["send"])})

    async def new_person(self, request: Request) -> Response:
        body = await _parse(request, NewPerson)
        if isinstance(body, Response):
            return body
        try:
            psid = self.add_person(body.name)
        except ValueError as exc:
            return _problem(409, str(exc))
        return JSONResponse({"psid": psid, "name": body.name})

    async def message(self, request: Request) -> Response:
        body = await _parse(request, Write)
        if isinstance(body, Response):
            return body
        if body.psid not in self.people:
            return _problem(404, f"no person {body.psid!r} in the sandbox")
        event = payloads.text(DEMO_PAGE_ID, body.psid, body.text)
        answer = await self._post(event)
        if answer.status_code == 200:
            written = self.written.setdefault(body.psid, [])
            written.append({"mid": event["message"]["mid"], "text": body.text,
                            "at": event["timestamp"]})
            del written[:-MAX_WRITTEN]
        return self._answered(answer, mid=event["message"]["mid"])

    async def reaction(self, request: Request) -> Response:
        body = await _parse(request, React)
        if isinstance(body, Response):
            return body
        if body.mid not in {call.answer["message_id"] for call in self.replies(body.psid)}:
            return _problem(404, "the page sent this person no message with that mid")
        action = "react" if body.emoji else "unreact"
        answer = await self._post(payloads.reaction(DEMO_PAGE_ID, body.psid, body.mid, action,
                                                    emoji=body.emoji))
        if answer.status_code == 200:
            if body.emoji:
                self.reactions[body.mid] = body.emoji
            else:
                self.reactions.pop(body.mid, None)
        return self._answered(answer)

    async def read(self, request: Request) -> Response:
        body = await _parse(request, Read)
        if isinstance(body, Response):
            return body
        if body.psid not in self.people:
            return _problem(404, f"no person {body.psid!r} in the sandbox")
        watermark = payloads.ts()
        answer = await self._post(payloads.read(DEMO_PAGE_ID, body.psid, watermark))
        if answer.status_code == 200:
            self.read_at[body.psid] = watermark
        return self._answered(answer)

    async def fail(self, request: Request) -> Response:
        """The next `times` sends fail with `mode`, as Meta fails them ("": no more failures)."""
        body = await _parse(request, Fail)
        if isinstance(body, Response):
            return body
        if body.mode and body.mode not in FAILURE_MODES:
            return _problem(400, f"mode must be one of {', '.join(FAILURE_MODES)}, or empty")
        if body.mode:
            self.graph.fail("send", body.mode, body.times)
        else:
            with self.graph.lock:
                self.graph.failures["send"].clear()
        return JSONResponse({"failing": list(self.graph.failures["send"])})

    async def _post(self, event: dict[str, Any]) -> httpx.Response:
        """Post one event to the gateway's webhook as Meta does: enveloped, signed, over HTTP."""
        assert self.http
        body, headers = payloads.signed(self.settings.facebook_app_secret,
                                        payloads.envelope(DEMO_PAGE_ID, event))
        return await self.http.post(self.url + "/facebook", content=body, headers=headers)

    @staticmethod
    def _answered(answer: httpx.Response, **extra: Any) -> Response:
        if answer.status_code != 200:
            return _problem(502, f"the gateway answered {answer.status_code}: "
                                 f"{answer.text[:300]}")
        return JSONResponse({"gateway": answer.text[:300], **extra})


def _shown(message: dict[str, Any]) -> str:
    """A reply as the person's Messenger shows it, in words."""
    if isinstance(message.get("text"), str):
        return message["text"]
    kinds = [str(item.get("type")) for item in message.get("attachments") or []
             if isinstance(item, dict)]
    attachment = message.get("attachment")
    if isinstance(attachment, dict):
        kinds.append(str(attachment.get("type")))
    return "[" + ", ".join(kinds or ["message"]) + "]"


InputT = TypeVar("InputT", bound=Input)


async def _parse(request: Request, model: type[InputT]) -> InputT | Response:
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "body"
        return _problem(400, f"{where}: {error['msg']}")


def _problem(status: int, message: str) -> Response:
    return JSONResponse({"message": message}, status_code=status)
