"""The front door's side of cluster mode: turns go to Ray Serve replicas, store work stays local.

`ClusterScheduler` is the servicer's `TurnBackend` (backend.py) in cluster mode, as `Scheduler` is in a single
process. Store calls (owner checks, session CRUD, turn ids) run on a local thread against the shared PostgreSQL
store. A turn is sent, as the serialised ChatRequest, to the Ray
Serve deployment (server/cluster_replica.py) with the session id as its multiplexed model id, so Ray Serve routes
it to the replica that holds that session's KV cache. A replica that has never seen the session rebuilds it from
the store. Events stream back and are handed to the waiting RPC exactly as the local scheduler hands them.

Nothing here imports ray: the handle is passed in.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from .. import errors
from .._proto.npc.v1 import npc_pb2 as pb
from ..errors import InvalidInputError, NpcError, UnavailableError
from ..personas.persona import Persona
from ..runtime.events import Done, Emotion
from ..runtime.generation import GenerationConfig
from .backend import ChatJob

log = logging.getLogger("npc_sdk.cluster")
CANCEL_POLL_S = 0.05  # how often a streaming turn looks whether its client went away
T = TypeVar("T")


@dataclass(frozen=True)
class RemoteFailure:
    """A turn that failed on its replica, by error class name and message (exceptions do not pickle well)."""

    kind: str
    message: str

    @classmethod
    def of(cls, exc: BaseException) -> RemoteFailure:
        return cls(type(exc).__name__, str(exc))

    def error(self) -> NpcError:
        """The same npc_sdk error class again, so the front door answers with the status the replica would."""
        kind = getattr(errors, self.kind, None)
        if kind is InvalidInputError:
            field, _, rest = self.message.partition(": ")
            return InvalidInputError(field, rest) if rest else InvalidInputError("request", self.message)
        if isinstance(kind, type) and issubclass(kind, NpcError):
            return kind(self.message)
        return NpcError(f"{self.kind}: {self.message}")


class ClusterScheduler:
    def __init__(self, handle: Any, defaults: GenerationConfig) -> None:
        self.handle = handle  # ray.serve DeploymentHandle of NpcReplica
        self.defaults = defaults
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="npc-store")
        self._tasks: set[asyncio.Task] = set()

    # ---- TurnBackend ------------------------------------------------------------------------------------
    def stop(self, timeout: float = 10.0) -> None:
        for task in self._tasks:
            task.cancel()
        self._pool.shutdown(wait=True)

    def call(self, fn: Callable[[], T]) -> Future[T]:
        return self._pool.submit(fn)

    def prewarm(self, personas: Sequence[Persona]) -> Future[int]:
        done: Future[int] = Future()
        done.set_result(0)  # each replica prefills what it serves
        return done

    def prepare(self, session_id: str) -> None:
        pass  # the replica that gets the session's first turn loads it

    def forget(self, session_id: str) -> None:
        pass  # replicas compare their live copy with the store before every turn (Residency.refresh)

    async def start_turn(self, request: pb.ChatRequest, job: ChatJob) -> None:
        """Stream `request` on the replica for its session (which decodes the screenshot); events go to job.emit."""
        task = asyncio.get_running_loop().create_task(self._stream(request.SerializeToString(), job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def emotion(self, reply: str, line: str) -> Emotion:
        # awaited, not .result(): the store thread and the event loop go on while a replica classifies it
        return await self.handle.emotion.remote(reply, line)

    async def scene_vectors(self, texts: Sequence[str]) -> np.ndarray | None:
        return None  # the front door holds no model: names and talkativeness choose who speaks

    # ---- a turn streaming back from its replica ---------------------------------------------------------
    async def _stream(self, request: bytes, job: ChatJob) -> None:
        handle = self.handle.options(multiplexed_model_id=job.session_id, stream=True)
        stream = handle.chat.remote(request, self.defaults)
        watcher = asyncio.get_running_loop().create_task(self._watch(job, stream))
        try:
            async for event in stream:
                if isinstance(event, RemoteFailure):
                    job.emit(event.error())
                    return
                job.emit(event)
                if isinstance(event, Done):
                    return
            job.emit(
                UnavailableError(
                    "the replica ended the turn without a done event; retry with the same turn_id"
                )
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the replica, its node or the connection to it died mid-turn
            if job.cancelled.is_set():
                return
            log.warning("turn of session %s lost with its replica: %s", job.session_id, exc)
            job.emit(
                UnavailableError(
                    f"the replica serving session {job.session_id!r} was lost ({type(exc).__name__}); "
                    "retry with the same turn_id: nothing of this turn was stored"
                )
            )
        finally:
            watcher.cancel()

    @staticmethod
    async def _watch(job: ChatJob, stream: Any) -> None:
        """Cancel the replica's turn when the client goes away (the servicer sets job.cancelled)."""
        while not job.cancelled.is_set():
            await asyncio.sleep(CANCEL_POLL_S)
        stream.cancel()
