"""Cluster mode's replicas: a Ray Serve deployment whose replicas each own a model, a scheduler and a store pool.

Requests carry the session id as Ray Serve's multiplexed model id, so Serve's own router sends a session's turns to
the replica that already holds it (its KV cache). `_hold` is the multiplexed loader. It does not load anything: it
tells Serve which sessions live where. The replica loads a session lazily from the shared store, and it checks
its live copy against the store before each turn (Scheduler.refresh). A session that comes back after a failover is
therefore rebuilt from what was committed, never served stale.

Imported only by `npc-sdk serve --cluster` (needs the `cluster` extra: ray[serve]).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import ray
from ray import serve

from .._proto.npc.v1 import npc_pb2 as pb
from ..errors import InvalidInputError, NpcError
from ..runtime.events import Done, Emotion
from ..runtime.generation import GenerationConfig
from ..runtime.onnx_model import OnnxNpcModel
from ..wire import config_from_proto, image_from_proto, scene_from_proto
from .config import ServerConfig
from .remote import RemoteFailure, ServedBy
from .scheduler import ChatJob, Scheduler
from .store import open_store

APP_NAME = "npc-sdk"
DEPLOYMENT_NAME = "NpcReplica"
NAMESPACE = "npc-sdk"
MAX_SESSIONS_PER_REPLICA = (
    100_000  # routing entries, not loaded models: live sessions are bounded by the scheduler
)


@serve.deployment(name=DEPLOYMENT_NAME)
class NpcReplica:
    def __init__(
        self,
        model_path: str,
        store_url: str,
        slots: int,
        kv_budget_mb: int,
        max_queued: int,
        threads: int,
        prefill_graph: bool = True,
    ) -> None:
        from .app import warm_up

        self.model = OnnxNpcModel.load(
            model_path, slots=slots, threads=threads or None, prefill_graph=prefill_graph
        )
        warm_up(self.model)
        self.store = open_store(store_url)
        self.scheduler = Scheduler(
            self.model,
            self.store,
            kv_budget_bytes=kv_budget_mb << 20,
            max_queued=max_queued,
            shared_store=True,
        )
        self.scheduler.start()
        # "<replica>@<node>": which replica holds a session, and on which Ray node (trailing metadata npc-replica)
        node = ray.get_runtime_context().get_node_id()
        self.replica_id = f"{serve.get_replica_context().replica_id.unique_id}@{node}"

    @serve.multiplexed(max_num_models_per_replica=MAX_SESSIONS_PER_REPLICA)
    async def _hold(self, session_id: str) -> str:
        return session_id

    async def chat(self, request_bytes: bytes, defaults: GenerationConfig) -> AsyncIterator[Any]:
        session_id = serve.get_multiplexed_model_id()
        await self._hold(session_id)
        yield ServedBy(self.replica_id)
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        finished = False
        job: ChatJob | None = None
        try:
            job = _job_from_request(
                pb.ChatRequest.FromString(request_bytes),
                defaults,
                lambda e: loop.call_soon_threadsafe(events.put_nowait, e),
            )
            if job.session_id != session_id:
                raise InvalidInputError("session_id", "does not match the routing id")
            await asyncio.wrap_future(self.scheduler.submit(job))
            while True:
                event = await events.get()
                if isinstance(event, BaseException):
                    finished = True
                    yield RemoteFailure.of(event)
                    return
                yield event
                if isinstance(event, Done):
                    finished = True
                    return
        except NpcError as exc:
            finished = True
            yield RemoteFailure.of(exc)
        finally:
            if job is not None and not finished:
                job.cancelled.set()  # the front door cancelled (its client went away): stop within a step

    def emotion(self, reply: str, line: str) -> Emotion:
        return self.model.emotion(reply, line)

    def __del__(self) -> None:
        scheduler = getattr(self, "scheduler", None)
        if scheduler is not None:
            scheduler.stop()
            self.store.close()


def _job_from_request(request: pb.ChatRequest, defaults: GenerationConfig, emit) -> ChatJob:
    """The turn as the front door validated it (service.Chat), rebuilt on the replica from the wire bytes."""

    def config(persona) -> GenerationConfig:
        return config_from_proto(request.generation, persona.generation_defaults(defaults))

    screenshot = image_from_proto(request.screenshot) if request.HasField("screenshot") else None
    return ChatJob(
        request.session_id,
        request.text,
        screenshot,
        config,
        emit=emit,
        scene=scene_from_proto(request.scene),
        state=dict(request.state),
        turn_id=request.turn_id,
    )


def connect(config: ServerConfig, model_path: Path) -> Any:
    """Join the Ray cluster at config.cluster and return a handle to the replicas, deploying them if absent."""
    ray.init(address=config.cluster, namespace=NAMESPACE, logging_level="ERROR", log_to_driver=False)
    if APP_NAME in serve.status().applications:
        return serve.get_deployment_handle(DEPLOYMENT_NAME, app_name=APP_NAME)
    actor: dict[str, Any] = {"num_cpus": config.replica_threads or 1}
    if config.replica_resource:
        actor["resources"] = {config.replica_resource: 1}
    app = NpcReplica.options(
        num_replicas=config.replicas,
        ray_actor_options=actor,
        max_ongoing_requests=config.slots + config.max_queued,
    ).bind(
        str(Path(model_path).resolve()),
        config.store,
        config.slots,
        config.kv_budget_mb,
        config.max_queued,
        config.replica_threads,
        config.prefill_graph,
    )
    serve.start(proxy_location="Disabled")
    return serve.run(app, name=APP_NAME, route_prefix=None)
