"""What the use-cases and the background loops tell each other, made before either exists.

A use-case that queues work (a send, a profile fetch, a webhook delivery) sets the signal of the
loop that does it; the loop waits on its signal (or its poll interval). Both are handed the same
objects at construction: nothing is wired in after the fact.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field


class Signal:
    """Set by whoever has something new for a loop; the loop waits on it, or takes it."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def __call__(self) -> None:
        self._event.set()

    def take(self) -> bool:
        """Whether it was set since it was last taken (and it is clear again)."""
        was = self._event.is_set()
        self._event.clear()
        return was

    async def wait(self, timeout: float) -> None:
        """Until it is set, or `timeout` seconds have passed."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)


@dataclass(frozen=True)
class Signals:
    sends: Signal = field(default_factory=Signal)  # a message was queued to send
    profiles: Signal = field(default_factory=Signal)  # a contact's profile is due
    deliveries: Signal = field(default_factory=Signal)  # an outgoing webhook delivery was queued
    webhooks: Signal = field(default_factory=Signal)  # an outgoing webhook was changed


@dataclass
class Running:
    """Set at shutdown: background passes finish the job in hand and take no new one."""

    stopping: bool = False
