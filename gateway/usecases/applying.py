"""Stored webhook events applied in the background: in order per conversation, each batch once.

`POST /facebook` is answered once its events are stored (Meta gives up on a call after 20 s, and
applying 1,000 events from new senders takes longer); applying them follows at once here. Two
batches that touch one conversation apply in the order they were stored; batches of different
conversations apply at the same time. What is in hand is bounded (`Room`), and what a process
does not finish (killed, or stopped before it was done) stays unprocessed in the store, where the
events worker of any process finds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable

from gateway.domain import InboundEvent
from gateway.errors import GatewayError

log = logging.getLogger(__name__)

# A webhook call that finds no room waits this long for it, then is refused unstored (503: Meta
# tries again later) rather than held until Meta's 20 s deadline.
ROOM_WAIT_SECONDS = 10.0
# A batch of this many events or more is applied as PARTS batches at once.
SPLIT_FROM = 64
PARTS = 4


class Busy(GatewayError):
    """The events in hand leave no room for more: nothing was stored, try again later."""

    status = 503
    code = "BUSY"


Lane = tuple[str, str]  # (page id, PSID): one conversation; "" for events without a person


class Room:
    """At most `size` events held at once. A batch that does not fit waits its turn (first come,
    first in); one bigger than `size` gets in alone, when nothing else is held."""

    def __init__(self, size: int, wait: float = ROOM_WAIT_SECONDS) -> None:
        self.size = size
        self.wait = wait  # how long `take` waits for room unless told
        self.held = 0
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    async def take(self, count: int, timeout: float | None = None) -> bool:
        """Hold `count` events; False if they did not fit within `timeout` seconds (default:
        the room's `wait`)."""
        if not self._waiting and self._fits(count):
            self.held += count
            return True
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (count, turn)
        self._waiting.append(entry)
        try:
            await asyncio.wait_for(turn, self.wait if timeout is None else timeout)
            return True
        except TimeoutError:
            return False
        finally:
            if entry in self._waiting:  # gave up (or cancelled) before its turn came
                self._waiting.remove(entry)
                self._admit()  # a big batch leaving the head may let smaller ones in

    def force(self, count: int) -> None:
        """Hold `count` events whatever is held (the events worker's pass, bounded by itself)."""
        self.held += count

    def give(self, count: int) -> None:
        self.held -= count
        self._admit()

    def _fits(self, count: int) -> bool:
        return self.held + count <= self.size or self.held == 0

    def _admit(self) -> None:
        while self._waiting and self._fits(self._waiting[0][0]):
            count, turn = self._waiting.popleft()
            if not turn.done():
                self.held += count
                turn.set_result(None)


def _lane(event: InboundEvent) -> Lane:
    return event.page_id, event.contact_id or ""


def _parts(events: list[InboundEvent]) -> list[list[InboundEvent]]:
    """A big batch in PARTS batches of whole conversations, applied at the same time (each
    applies its events in their order); most of the time is the store's round trips."""
    if len(events) < SPLIT_FROM:
        return [events] if events else []
    where: dict[Lane, int] = {}
    parts: list[list[InboundEvent]] = [[] for _ in range(PARTS)]
    for event in events:
        parts[where.setdefault(_lane(event), len(where) % PARTS)].append(event)
    return [part for part in parts if part]


class Applier:
    """Runs `apply` on batches of stored events in background tasks: a batch starts once every
    earlier batch sharing a conversation with it is done (applied or failed); an event already
    in hand is not taken again (Meta's retry, the events worker meeting a POST's batch)."""

    def __init__(self, apply: Callable[[list[InboundEvent]], Awaitable[None]], room: Room) -> None:
        self._apply = apply
        self.room = room
        self._last: dict[Lane, asyncio.Future[None]] = {}  # each lane's latest batch
        self._held: dict[str, asyncio.Future[None]] = {}  # event key -> the batch applying it
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, events: Iterable[InboundEvent], held: int) -> set[asyncio.Future[None]]:
        """Apply the events (of which `held` were taken from the room); the batches that apply
        them, to wait for. Call it right after the events are stored: that is their order."""
        waits: set[asyncio.Future[None]] = set()
        fresh: dict[str, InboundEvent] = {}
        for event in events:
            if event.key in self._held:
                waits.add(self._held[event.key])
            else:
                fresh.setdefault(event.key, event)
        if held > len(fresh):
            self.room.give(held - len(fresh))
        elif held < len(fresh):
            self.room.force(len(fresh) - held)
        return waits | {self._start(part) for part in _parts(list(fresh.values()))}

    def _start(self, events: list[InboundEvent]) -> asyncio.Future[None]:
        batch: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Its outcome is for whoever waits on it; nobody may, and then it is logged below.
        batch.add_done_callback(lambda done: done.cancelled() or done.exception())
        lanes = {_lane(event) for event in events}
        before = {self._last[lane] for lane in lanes if lane in self._last}
        for lane in lanes:
            self._last[lane] = batch
        for event in events:
            self._held[event.key] = batch
        task = asyncio.create_task(self._run(events, lanes, before, batch),
                                   name=f"apply:{len(events)} events")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return batch

    async def _run(self, events: list[InboundEvent], lanes: set[Lane],
                   before: set[asyncio.Future[None]], batch: asyncio.Future[None]) -> None:
        try:
            if before:
                await asyncio.wait(before)
            await self._apply(events)
            batch.set_result(None)
        except asyncio.CancelledError:
            batch.cancel()
            raise
        except Exception as exc:
            log.error("applying %d stored webhook event(s) failed; the events worker applies "
                      "them later (or Meta's retry does)", len(events), exc_info=True)
            batch.set_exception(exc)
        finally:
            for lane in lanes:
                if self._last.get(lane) is batch:
                    del self._last[lane]
            for event in events:
                if self._held.get(event.key) is batch:
                    del self._held[event.key]
            self.room.give(len(events))

    async def finish(self, grace: float) -> None:
        """Shutdown: let the batches in hand finish for up to `grace` seconds, then stop them
        (their events stay unprocessed in the store, for the events worker of any process)."""
        try:
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=grace)
        finally:
            left = set(self._tasks)
            for task in left:
                task.cancel()
            if left:
                log.warning("shutdown: %d batch(es) of webhook events not applied yet; the "
                            "events worker applies them", len(left))
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait(left, timeout=1.0)
