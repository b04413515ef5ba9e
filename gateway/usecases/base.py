"""What every use-case shares: its dependencies, handed in at construction, and a few rules."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from gateway import retry
from gateway.config import Settings
from gateway.domain import Channel, now_ms
from gateway.errors import Forbidden, InvalidInput, UpstreamError
from gateway.signals import Running, Signals
from gateway.store.ports import Job, JobsPort, StorePort

log = logging.getLogger(__name__)

MAX_PAGE_SIZE = 100
# Our message id rides in the Send API's `metadata`, so the echo Meta sends back names it.
ECHO_METADATA_PREFIX = "mg:"
INVALID_TOKEN = 190  # Graph API: the access token expired, was revoked or is malformed
# A job whose subject never got stored (its request failed in between) is dropped after this.
ORPHAN_JOB_MS = 60_000
UNCOUNTED = "uncounted"  # in a new conversation's profile job: its channel has not counted it


class GraphApi(Protocol):
    """What the use-cases need of the Graph API (`gateway.sources.facebook.graph.GraphClient`)."""

    async def get_page(self, page_id: str, token: str) -> dict[str, Any]: ...
    async def subscribe_app(self, page_id: str, token: str) -> None: ...
    async def unsubscribe_app(self, page_id: str, token: str) -> None: ...
    async def get_profile(self, psid: str, token: str) -> dict[str, Any]: ...
    async def list_pages(self, user_token: str) -> list[dict[str, Any]]: ...
    async def send_message(
        self, token: str, recipient_id: str, message: Any, *,
        messaging_type: str = "RESPONSE", tag: str | None = None,
    ) -> str: ...
    async def upload_attachment(self, token: str, type: str, filename: str, content_type: str,
                                data: bytes) -> str: ...
    async def thread_control(
        self, action: str, token: str, recipient_id: str, *,
        target_app_id: str | None = None, metadata: str | None = None,
    ) -> None: ...
    async def sender_action(self, token: str, recipient_id: str, action: str) -> None: ...


@dataclass(frozen=True)
class Deps:
    store: StorePort
    graph: GraphApi
    settings: Settings
    signals: Signals  # set when work is queued for a background loop
    running: Running  # says when the process is stopping


class UseCase:
    """Nothing here knows HTTP or JSON shapes: use-cases take plain values, return domain objects
    and raise `gateway.errors` for what a caller can act on."""

    def __init__(self, deps: Deps) -> None:
        self.store = deps.store
        self.graph = deps.graph
        self.settings = deps.settings
        self.signals = deps.signals
        self.running = deps.running


def check_page_size(page_size: int) -> None:
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidInput(f"page_size must be between 1 and {MAX_PAGE_SIZE}")


def backoff(settings: Settings, attempts: int) -> float:
    """Exponential backoff with jitter: about base·2^(n-1) seconds, capped (the settings')."""
    return retry.delay(settings.retry_base_seconds, attempts, settings.retry_max_seconds,
                       jitter=True)


def lease_ms(settings: Settings) -> int:
    """How long a taken job is left alone: longer than any Graph API call it makes."""
    return int((settings.graph_api_timeout * 2 + 5) * 1000)


def token_refused_message(channel: Channel) -> str:
    """What a send through a channel whose page token Meta refused is told: how to fix it."""
    return (f"Meta refused the page token of channel {channel.id} (page "
            f"{channel.source_channel_id}): connect the page again with a new page token "
            "(channels.facebook.connect or connectFacebookChannel)")


def check_can_send(channel: Channel | None) -> Channel:
    """A connected channel whose page token Meta still takes; else Forbidden naming the fix."""
    if channel is None or not channel.connected:
        raise Forbidden("the conversation's channel is disconnected")
    if not channel.token_valid:
        raise Forbidden(token_refused_message(channel))
    return channel


async def note_token_refusal(store: StorePort, channel: Channel, exc: UpstreamError) -> None:
    if exc.graph_code == INVALID_TOKEN and channel.token_valid:
        log.warning("channel %s: Meta refused its page token; connect the page again",
                    channel.id)
        await store.channels.token_refused(channel.id, now_ms())


async def subject_missing(queue: JobsPort, job: Job) -> None:
    """What the job is about is not stored: not yet (look again in a second), or never (its
    request failed, or it lost a race to create it): then the job is dropped. Stored but
    unreadable, it will not become readable by itself: the job is parked."""
    if await queue.subject_unreadable(job.id):
        await queue.park(job.id, "what it is about cannot be read")
    elif now_ms() - job.created_at > ORPHAN_JOB_MS:
        await queue.done(job.id)
    else:
        await queue.retry_at(job.id, now_ms() + 1000, job.attempts)
