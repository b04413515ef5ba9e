"""The fast layer: every use-case run in-process; the whole folder takes a few seconds.

Every test that takes the `rig` runs twice, once on each store, so that each is a contract test
of both implementations of `gateway.store.ports`:
- `nx-27017`: the real one (gateway.store's repositories over the real driver) on nx-27017's own
  request handler, in memory, served from a thread of this process on a Unix socket: no
  subprocess, no TCP port. Each test gets a database of its own.
- `memory`: `gateway.store.memory.MemoryStore`, plain dicts.
A test that can run on one only says which and why: `@pytest.mark.only_store("nx-27017",
reason=...)`. Meta is the tests' fake Graph API, reached through httpx's ASGI transport.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from nx_27017.server import handle_client

from gateway.config import Settings
from gateway.domain import Channel, ConversationView, Message
from gateway.signals import Running, Signals
from gateway.sources.facebook.graph import GraphClient
from gateway.sources.facebook.webhook import parse_envelope
from gateway.store import Store
from gateway.store.memory import MemoryStore
from gateway.store.nxserve import Handler
from gateway.store.ports import StorePort
from gateway.usecases import Deps, UseCases, build
from tests import payloads
from tests.fake_graph import FakeGraph

APP_ID = "424242"
PAGE_ID = "1234567890"
PAGE_TOKEN = "page-token"
GRAPH_URL = "http://graph.unit.invalid/v21.0"  # never resolved: the transport is in-process
# A retry waits 50 to 100 ms: longer than a pass takes (so that one pass tries a job once), short
# enough for a test to wait for it.
# Sends wait for `deliver_due` (no send starts inside `messages.send`): the tests of the
# sender step through its queue; those of sends started at once turn it on.
SETTINGS = {"FACEBOOK_APP_ID": APP_ID, "RETRY_BASE_SECONDS": "0.1",
            "RETRY_MAX_SECONDS": "0.1", "SEND_MAX_ATTEMPTS": "3", "SEND_AT_ONCE": "0"}
RETRY_DUE = 0.12  # seconds: longer than any backoff with SETTINGS
STORES = ("nx-27017", "memory")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "only_store(name, reason): run the test on that store of the rig only")
    config.addinivalue_line(
        "markers", "settings(**env): the rig's settings, these changed (names as in the env)")


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def store_url() -> Iterator[str]:
    """nx-27017's handler (as the embedded store runs it, in memory) on a Unix socket, served by
    its own event loop in a thread for the whole session."""
    directory = Path(tempfile.mkdtemp(prefix="mg-unit-"))  # short: a socket path has 107 bytes
    path = directory / "store.sock"
    handler = Handler(data_dir="memory")
    loop = asyncio.new_event_loop()

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await handle_client(reader, writer, handler)

    server = loop.run_until_complete(asyncio.start_unix_server(client, path=str(path)))
    thread = threading.Thread(target=loop.run_forever, name="unit store", daemon=True)
    thread.start()
    try:
        yield f"mongodb://{quote(str(path), safe='')}/?directConnection=true"
    finally:
        async def stop() -> None:
            server.close()
            await server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        shutil.rmtree(directory, ignore_errors=True)


class Rig:
    """The use-cases on a fresh database and a fresh fake Graph API, and what tests say often."""

    def __init__(self, store: StorePort, fake: FakeGraph, settings: Settings) -> None:
        self.store = store
        self.fake = fake
        self.settings = settings
        self.signals = Signals()
        self.running = Running()
        # httpx's ASGI transport has no timeouts: the fake's "timeout" failure answers in 10 ms.
        self.graph = GraphClient(GRAPH_URL, transport=httpx.ASGITransport(app=fake.app(0.01)))
        self.uc: UseCases = build(Deps(store, self.graph, settings, self.signals, self.running))

    async def connect(self, page_id: str = PAGE_ID, token: str = PAGE_TOKEN,
                      name: str = "My Shop") -> Channel:
        """A page Meta knows, connected."""
        self.fake.add_page(page_id, token, name)
        return await self.uc.channels.connect_facebook(page_id, token)

    async def webhook(self, payload: dict[str, Any]) -> None:
        """What `POST /facebook` does with a signed body: parse it, ingest its events."""
        await self.uc.ingest.ingest(parse_envelope(json.dumps(payload).encode()))

    async def write(self, psid: str, text: str = "Hello!", page_id: str = PAGE_ID,
                    **message: Any) -> ConversationView:
        """The person `psid` writes to the page (a second ago: what the test sends next is
        newer, and each message so written is newer than the one before); the conversation as
        listed."""
        event = payloads.text(page_id, psid, text, at=payloads.ts() - 1000, **message)
        await self.webhook(payloads.envelope(page_id, event))
        return await self.conversation_of(psid)

    async def conversation_of(self, psid: str) -> ConversationView:
        page = await self.uc.conversations.page(page_size=100)
        return next(v for v in page.items if v.conversation.contact.id == psid)

    async def drain(self, run_pass: Callable[[], Awaitable[int]]) -> None:
        """Run a background pass as its worker would, each time after the longest backoff,
        until a pass finds nothing to try."""
        for _ in range(20):
            await asyncio.sleep(RETRY_DUE)
            if not await run_pass():
                return
        raise AssertionError("the pass still found work after 20 rounds")

    async def messages(self, conversation_id: str) -> list[Message]:
        """Every message of the conversation, newest first."""
        return (await self.uc.messages.page(conversation_id, page_size=100)).items


@pytest.fixture(params=STORES)
async def rig(request: pytest.FixtureRequest, store_url: str) -> AsyncIterator[Rig]:
    only = request.node.get_closest_marker("only_store")
    if only is not None and only.args[0] != request.param:
        pytest.skip(f"on {only.args[0]} only: {only.kwargs['reason']}")
    store: StorePort
    if request.param == "memory":
        store = MemoryStore()
    else:
        store = await Store.connect(store_url, f"unit_{uuid.uuid4().hex[:12]}", timeout_ms=5000)
    changed = request.node.get_closest_marker("settings")
    rig = Rig(store, FakeGraph(url=GRAPH_URL),
              Settings.from_env({**SETTINGS, **(changed.kwargs if changed else {})}))
    try:
        yield rig
    finally:
        await rig.graph.aclose()
        await store.close()
