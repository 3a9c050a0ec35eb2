"""Idempotent turns: a turn_id already committed is answered with its stored reply, never decoded a second time.

Two places ask, with the same functions: the servicer before it queues a turn (`TurnClaims`, the usual retry),
and the scheduler when the turn's session comes up (`stored_reply` + `replay_events`: a duplicate that another
front door passed on, or one that waited behind the original and now finds it committed).
"""

from __future__ import annotations

import asyncio

from ..errors import InvalidInputError
from ..runtime.events import Delta, Done, Emotion, Timings, Usage
from .backend import TurnBackend
from .store import SessionStore


def stored_reply(store: SessionStore, session_id: str, turn_id: str, text: str) -> str | None:
    """The committed reply of `turn_id`, or None; InvalidInputError when that id was used for another line."""
    stored = store.find_turn(session_id, turn_id)
    if stored is None:
        return None
    user, reply = stored
    if user != text:
        raise InvalidInputError("turn_id", f"{turn_id!r} was used for another line in this session")
    return reply


def replay_events(reply: str, emotion: Emotion) -> tuple[Delta, Done]:
    """What a replayed turn streams: the whole reply as one delta, then a done event that decoded nothing."""
    return Delta(reply, reply), Done(
        reply, "stop", Usage(0, 0), Timings(0.0, 0.0, 0.0), emotion=emotion, replayed=True
    )


class TurnClaims:
    """The servicer's side (event loop only): replay a committed turn_id, or claim it for this call.

    A retry that arrives while the first attempt still runs here waits for it to end, then looks again:
    committed, it replays; cancelled or failed, the retry runs the turn itself.
    """

    def __init__(self, backend: TurnBackend, store: SessionStore) -> None:
        self.backend = backend
        self.store = store
        self._running: dict[tuple[str, str], asyncio.Event] = {}  # (session, turn_id) -> set when it ends

    async def claim(self, session_id: str, turn_id: str, text: str) -> tuple[Delta, Done] | None:
        """The stored turn's events when `turn_id` was committed; else None, and the caller holds the claim
        until it calls `release`."""
        while True:
            reply = await asyncio.wrap_future(
                self.backend.call(lambda: stored_reply(self.store, session_id, turn_id, text))
            )
            if reply is not None:
                # asked of the backend without blocking its store thread: in cluster mode it is a Ray call
                return replay_events(reply, await self.backend.emotion(reply, text))
            running = self._running.get((session_id, turn_id))
            if running is None:
                self._running[(session_id, turn_id)] = asyncio.Event()
                return None
            await running.wait()

    def release(self, session_id: str, turn_id: str) -> None:
        """The claimed attempt ended (however): a retry waiting on it looks again."""
        self._running.pop((session_id, turn_id)).set()
