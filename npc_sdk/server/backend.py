"""The contract between the servicer and what runs its turns: `ChatJob`, the events it streams, `TurnBackend`.

Two backends implement it: the local `Scheduler` (scheduler.py) decodes on this process's model, and
`ClusterScheduler` (remote.py) sends each turn to the Ray Serve replica that holds its session. The servicer holds
a `TurnBackend` and never asks which one it has.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import numpy as np
from PIL import Image

from .._proto.npc.v1 import npc_pb2 as pb
from ..errors import InvalidInputError
from ..personas.persona import Persona
from ..personas.prompt import check_text
from ..runtime.events import Emotion, ReplyEvent
from ..runtime.game_state import check_state
from ..runtime.generation import GenerationConfig
from ..runtime.scene import SceneEntity
from ..wire import check_session_id, config_from_proto, scene_from_proto

T = TypeVar("T")


@dataclass(frozen=True)
class ServedBy:
    """First event of a turn from a replica: which one runs it (sent to the client as trailing metadata)."""

    replica: str


# what a turn emits: its events, or the failure that ended it
TurnEvent = ReplyEvent | ServedBy | BaseException


@dataclass
class ChatJob:
    session_id: str
    text: str
    screenshot: Image.Image | None  # decoded by the backend that runs the turn (start_turn)
    config: GenerationConfig | Callable[[Persona], GenerationConfig]  # or made from the session's persona
    emit: Callable[[TurnEvent], None]  # thread-safe hand-off to the waiting RPC (pump.EventPump.emit)
    scene: list[SceneEntity] = field(default_factory=list)  # what the game says is in view
    state: dict[str, str] = field(default_factory=dict)  # the game's key/value facts (ChatRequest.state)
    turn_id: str = ""  # ChatRequest.turn_id: stored with the turn, so a retry finds it
    heard: list[str] = field(default_factory=list)  # a scene line: what the others said, not to be parroted
    explain: bool = False  # ChatRequest.explain: the Done carries why the reply came out as it did
    cancelled: threading.Event = field(default_factory=threading.Event)
    submitted: float = field(default_factory=time.perf_counter)


TURN_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def check_turn_id(turn_id: str) -> str:
    if turn_id and not TURN_ID.match(turn_id):
        raise InvalidInputError("turn_id", "must be 1-64 characters of letters, digits, '_', '.', ':' or '-'")
    return turn_id


def job_from_request(
    request: pb.ChatRequest,
    defaults: GenerationConfig,
    emit: Callable[[TurnEvent], None],
    cancelled: threading.Event,
) -> ChatJob:
    """The turn a ChatRequest asks for, every field but the screenshot checked (InvalidInputError names the first
    bad one). The front door and a cluster replica build their jobs here, so both run the same turn."""
    session_id = check_session_id(request.session_id)
    text = check_text(request.text)
    config_from_proto(request.generation, defaults)  # out-of-range values fail here, before the turn queues

    def config(persona: Persona) -> GenerationConfig:  # request values over persona over server defaults
        return config_from_proto(request.generation, persona.generation_defaults(defaults))

    return ChatJob(
        session_id,
        text,
        None,
        config,
        emit=emit,
        scene=scene_from_proto(request.scene),
        state=check_state(dict(request.state)),
        turn_id=check_turn_id(request.turn_id),
        explain=request.explain,
        cancelled=cancelled,
    )


class TurnBackend(Protocol):
    """What the servicer asks of whatever runs turns (scheduler.Scheduler, remote.ClusterScheduler)."""

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking turns; running ones end unstored."""
        ...

    def call(self, fn: Callable[[], T]) -> Future[T]:
        """Run `fn` (store work, session bookkeeping) on the thread that owns this backend's sessions."""
        ...

    def prewarm(self, personas: Sequence[Persona]) -> Future[int]:
        """Prefill these personas' blocks while idle, so their first turns start from cached KV."""
        ...

    def prepare(self, session_id: str) -> None:
        """A session was just created (inside `call`): get ready for its first turn."""
        ...

    def forget(self, session_id: str) -> None:
        """A session is being deleted (inside `call`): drop its live state; SessionBusyError while it has a turn."""
        ...

    async def start_turn(self, request: pb.ChatRequest, job: ChatJob) -> None:
        """Queue `job` (built from `request` by job_from_request); its events then go to job.emit. Raises when
        the turn is refused at once: no such session, a full queue, an undecodable screenshot."""
        ...

    async def emotion(self, reply: str, line: str) -> Emotion:
        """The emotion a stored reply carries (a replayed turn's done event), computed where the model is."""
        ...

    async def scene_vectors(self, texts: Sequence[str]) -> np.ndarray | None:
        """Sentence vectors for choosing who speaks in a scene, or None where no model is at hand (then names and
        talkativeness alone decide)."""
        ...
