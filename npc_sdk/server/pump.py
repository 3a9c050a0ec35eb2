"""EventPump: a turn's events, emitted on the thread that makes them, streamed by one coroutine.

The servicer's Chat and a cluster replica's chat both stream a turn through one of these, so a client that goes
away stops its turn the same way in both.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from types import TracebackType

from ..runtime.events import Done
from .backend import TurnEvent


class EventPump:
    """Used as `async with EventPump() as pump:` inside the coroutine that streams the turn.

    Leaving the block before the turn ended (the client went away, its deadline passed, the coroutine was
    cancelled) sets `cancelled`, which the job shares: the scheduler then stops the turn within a step and stores
    nothing of it.
    """

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[TurnEvent] = asyncio.Queue()
        self.cancelled = threading.Event()  # give it to the ChatJob (job_from_request)
        self.ended = False  # the turn's last event (its Done, or the failure that ended it) was handed out

    def emit(self, event: TurnEvent) -> None:
        """Hand one event to the streaming coroutine; safe from any thread."""
        self._loop.call_soon_threadsafe(self._queue.put_nowait, event)

    async def events(self) -> AsyncIterator[TurnEvent]:
        """The turn's events in order; the last one is its Done or the exception that ended it."""
        while not self.ended:
            event = await self._queue.get()
            self.ended = isinstance(event, (Done, BaseException))
            yield event

    async def __aenter__(self) -> EventPump:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self.ended:
            self.cancelled.set()
