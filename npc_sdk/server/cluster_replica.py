"""Cluster mode's replicas: a Ray Serve deployment whose replicas each own an engine (engine.open_local).

Requests carry the session id as Ray Serve's multiplexed model id, so Serve's own router sends a session's turns to
the replica that already holds it (its KV cache). `_hold` is the multiplexed loader. It does not load anything: it
tells Serve which sessions live where. The replica loads a session lazily from the shared store, and it checks
its live copy against the store before each turn (Residency.refresh). A session that comes back after a failover is
therefore rebuilt from what was committed, never served stale.

Imported only by `npc-sdk serve --cluster` (needs the `cluster` extra: ray[serve]).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import ray
from ray import serve

from .._proto.npc.v1 import npc_pb2 as pb
from ..errors import InvalidInputError, NpcError
from ..runtime.events import Emotion
from ..runtime.generation import GenerationConfig
from .backend import ServedBy, job_from_request
from .config import ServerConfig
from .engine import LocalSpec, open_local
from .pump import EventPump
from .remote import RemoteFailure

APP_NAME = "npc-sdk"
DEPLOYMENT_NAME = "NpcReplica"
NAMESPACE = "npc-sdk"
# routing entries, not loaded models: live sessions are bounded by the scheduler
MAX_SESSIONS_PER_REPLICA = 100_000


@serve.deployment(name=DEPLOYMENT_NAME)
class NpcReplica:
    def __init__(self, spec: LocalSpec) -> None:
        self.engine = open_local(spec)  # the same model, warm-up, store and scheduler as `npc-sdk serve`
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
        # leaving early (the front door cancelled: its client went away) stops the turn within a step
        async with EventPump() as pump:
            try:
                request = pb.ChatRequest.FromString(request_bytes)
                job = job_from_request(request, defaults, pump.emit, pump.cancelled)
                if job.session_id != session_id:
                    raise InvalidInputError("session_id", "does not match the routing id")
                await self.engine.backend.start_turn(request, job)
            except NpcError as exc:
                yield RemoteFailure.of(exc)
                return
            async for event in pump.events():
                yield RemoteFailure.of(event) if isinstance(event, BaseException) else event

    async def emotion(self, reply: str, line: str) -> Emotion:
        return await self.engine.backend.emotion(reply, line)

    def __del__(self) -> None:
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.close()


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
    ).bind(LocalSpec.replica(model_path, config))
    serve.start(proxy_location="Disabled")
    return serve.run(app, name=APP_NAME, route_prefix=None)
