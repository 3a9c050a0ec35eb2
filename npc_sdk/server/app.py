"""`serve`: an engine (engine.py) and the servicer wired into one grpc.aio server, run until a signal.

Health and reflection are registered beside NpcService; SIGTERM/SIGINT, the Shutdown RPC and the end of the
`--parent-pid` process start a graceful shutdown in which running turns get `grace_s` to finish. Once it takes
calls, the server prints one JSON line on stdout for launchers (launch.py).
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from .._proto.npc.v1 import npc_pb2 as pb
from .._proto.npc.v1 import npc_pb2_grpc as pb_grpc
from ..errors import InvalidInputError
from ..personas.library import PersonaLibrary
from .api_keys import ApiKey
from .config import ServerConfig
from .engine import Engine, LocalSpec, check_cluster_store, open_cluster, open_local
from .interceptors import ApiKeyInterceptor, DecodeGuard
from .launch import lower_priority, ready_line, say, watch_parent
from .service import NpcServicer


async def open_engine(model_path: Path, config: ServerConfig) -> Engine:
    """This process's model, or (with --cluster) the Ray Serve replicas, deployed if they are not running yet."""
    if not config.cluster:
        return open_local(LocalSpec.serving(model_path, config))
    check_cluster_store(config)
    from .cluster_replica import connect  # needs the `cluster` extra (ray[serve])

    handle = await asyncio.to_thread(connect, config, model_path)
    return open_cluster(handle, model_path, config)


async def serve(model_path: Path, config: ServerConfig, *, started=None) -> None:
    """Run until SIGTERM/SIGINT, Shutdown or the parent's end; running turns get `grace_s` to finish, then are
    cancelled unstored. `started(port)`, awaited once gRPC listens and before the ready line, returns the ready
    line's extra fields (the gateway's {"ws_port": N})."""
    lower_priority(config.nice)
    engine = await open_engine(model_path, config)
    keys = list(config.api_keys)
    if config.api_key:
        keys.append(ApiKey("default", config.api_key))
    size = config.max_message_mb << 20
    server = grpc.aio.server(
        interceptors=([ApiKeyInterceptor(keys)] if keys else []) + [DecodeGuard()],
        options=[("grpc.max_receive_message_length", size), ("grpc.max_send_message_length", size)],
    )
    personas = PersonaLibrary(Path(config.personas_dir) if config.personas_dir else None)
    personas.start()
    # The folder's persona blocks are prefilled while the server is idle: a long card's first turn then starts
    # from its cached KV (~40 ms) instead of prefilling ~2,000 positions (~2 s on two cores).
    engine.backend.prewarm(personas.all())
    servicer = NpcServicer(engine.backend, engine.store, config, personas)
    pb_grpc.add_NpcServiceServicer_to_server(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    service_name = pb.DESCRIPTOR.services_by_name["NpcService"].full_name
    reflection.enable_server_reflection((service_name, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    address = f"{config.host}:{config.port}"
    if config.tls_cert or config.tls_key:
        if not (config.tls_cert and config.tls_key):
            raise InvalidInputError("tls", "give both --tls-cert and --tls-key")
        creds = grpc.ssl_server_credentials(
            [(Path(config.tls_key).read_bytes(), Path(config.tls_cert).read_bytes())]
        )
        port = server.add_secure_port(address, creds)
    else:
        port = server.add_insecure_port(address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    servicer.on_shutdown = stop.set
    watcher = asyncio.create_task(watch_parent(config.parent_pid, stop.set)) if config.parent_pid else None
    try:
        await server.start()
        await health_servicer.set(service_name, health_pb2.HealthCheckResponse.SERVING)
        await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        say(f"npc-sdk serving {engine.described} on {config.host}:{port}")
        extra = await started(port) if started else {}  # the WebSocket gateway listens before the line
        say(ready_line(port, engine.described, **extra))
        await stop.wait()
        say("npc-sdk: shutting down")
        await health_servicer.enter_graceful_shutdown()
    finally:
        if watcher:
            watcher.cancel()
        await server.stop(config.grace_s)
        personas.stop()
        engine.close()
        say("npc-sdk: stopped; store closed")
