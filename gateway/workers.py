"""Background loops: each runs one pass when its signal is set, or at least every `poll` seconds.

Work lives in the store (pending sends, due profile fetches, unapplied events), so a loop holds no
state of its own: a restarted process, or another process, picks up where this one stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from gateway import retry
from gateway.signals import Signal

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, name: str, run_once: Callable[[], Awaitable[object]], poll: float,
                 signal: Signal | None = None) -> None:
        self.name = name
        self._run_once = run_once
        self._poll = poll
        self._wake = signal or Signal()  # set by whoever queues work for this loop
        self._task: asyncio.Task | None = None
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"worker:{self.name}")

    async def stop(self, grace: float = 0.0) -> None:
        """Let a pass under way finish for up to `grace` seconds (a Send API call cut off
        half-way would be sent again by the next process), then cancel."""
        if not self._task:
            return
        self._stopping = True
        self._wake()
        with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(self._task), grace)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _loop(self) -> None:
        failures = 0
        while not self._stopping:
            self._wake.take()
            try:
                await self._run_once()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception:  # the store may be away for a while: log, wait, try again
                failures += 1
                log.exception("%s: pass failed (%d in a row)", self.name, failures)
            if self._stopping:
                return
            # After failed passes, longer and longer (the store may be away for a while).
            await self._wake.wait(retry.delay(self._poll, failures + 1, self._poll * 30))


async def cancel_all(tasks: list[asyncio.Task]) -> None:
    """Cancel background tasks and wait until each has finished unwinding."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
