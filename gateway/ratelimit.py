"""Per-page pacing of Send API calls: Meta limits each page (300 calls/s for text, links,
reactions and stickers; 10 calls/s for audio and video) and answers error 613 above that.

Calls are spaced evenly (no bursts): at a rate r, any second holds at most r + 1 calls. A rate
error (613, or HTTP 429) halves that page's pace and pauses it briefly; after the pause the pace
doubles back every `recover_seconds` without one, up to the configured rate."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

MEDIA_TYPES = frozenset({"audio", "video"})
RATE_CODES = frozenset({613})
PAUSE_SECONDS = 1.0  # after a rate error, the page's next call waits at least this long
FLOOR = 1 / 64  # the slowest pace a page is slowed to, as a share of its configured rate


def is_media(message: dict[str, Any]) -> bool:
    """Audio and video: the Send API's slower class."""
    attachment = message.get("attachment")
    return isinstance(attachment, dict) and attachment.get("type") in MEDIA_TYPES


def is_rate_error(graph_code: int | None, http_status: int | None) -> bool:
    return graph_code in RATE_CODES or http_status == 429


@dataclass
class _Pace:
    rate: float  # calls per second when not slowed
    next_at: float = 0.0  # when the next call may start (monotonic seconds)
    share: float = 1.0  # of `rate`, set by the last slow-down
    slowed_at: float = 0.0
    slowdowns: int = 0  # how many rate errors so far: a slot taken before one is taken again

    def now_rate(self, now: float, recover_seconds: float) -> float:
        if self.share >= 1.0:
            return self.rate
        doublings = max(0.0, now - self.slowed_at) / recover_seconds
        return self.rate * min(1.0, self.share * 2 ** min(doublings, 64.0))


class PageLimiter:
    """Paces each (page, class) on its own; one instance per process, shared by its senders."""

    def __init__(self, rate: float, media_rate: float, recover_seconds: float = 2.0,
                 clock: Any = time.monotonic) -> None:
        self._rates = {False: rate, True: media_rate}
        self._recover = recover_seconds
        self._clock = clock
        self._paces: dict[tuple[str, bool], _Pace] = {}

    def _pace(self, page: str, media: bool) -> _Pace:
        key = (page, media)
        pace = self._paces.get(key)
        if pace is None:
            pace = self._paces[key] = _Pace(self._rates[media])
        return pace

    def reserve(self, page: str, media: bool) -> float:
        """Take the page's next slot; returns how many seconds to wait for it."""
        pace = self._pace(page, media)
        now = self._clock()
        start = max(now, pace.next_at)
        pace.next_at = start + 1 / pace.now_rate(start, self._recover)
        return start - now

    async def wait(self, page: str, media: bool) -> None:
        """Until the page's next slot; a rate error meanwhile sends the caller to the back."""
        pace = self._pace(page, media)
        while True:
            seen = pace.slowdowns
            delay = self.reserve(page, media)
            if delay > 0:
                await asyncio.sleep(delay)
            if pace.slowdowns == seen:
                return

    def slow_down(self, page: str, media: bool) -> None:
        """The page was answered with a rate error: halve its pace, pause it."""
        pace = self._pace(page, media)
        now = self._clock()
        pace.share = max(FLOOR, pace.now_rate(now, self._recover) / pace.rate / 2)
        pace.slowed_at = now + PAUSE_SECONDS  # it recovers from the end of the pause
        pace.slowdowns += 1
        pace.next_at = max(pace.next_at, now + PAUSE_SECONDS)

    def rate(self, page: str, media: bool) -> float:
        """The page's pace now, in calls per second."""
        return self._pace(page, media).now_rate(self._clock(), self._recover)
