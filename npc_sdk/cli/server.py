"""Running the server: `serve`, and `loadtest` against a running one."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ._common import ensure_model, report


def cmd_serve(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from ..cache import cache_dir
    from ..server.api_keys import load_keys
    from ..server.app import serve
    from ..server.config import ServerConfig
    from ..server.launch import API_KEY_ENV

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    config = ServerConfig(
        host=args.host,
        port=args.port,
        data_dir=Path(args.data_dir) if args.data_dir else cache_dir() / "server",
        store=args.store or "",
        api_key=args.api_key or os.environ.get(API_KEY_ENV) or None,
        slots=args.slots,
        device=args.device,
        prefill_graph=not args.no_prefill_graph,
        cluster=args.cluster or "",
        replicas=args.replicas,
        replica_threads=args.replica_threads,
        replica_resource=args.replica_resource or "",
        max_sessions=args.max_sessions,
        max_queued=args.max_queued,
        max_message_mb=args.max_message_mb,
        kv_budget_mb=args.kv_budget_mb,
        personas_dir=Path(args.personas) if args.personas else None,
        api_keys=load_keys(Path(args.api_keys)) if args.api_keys else [],
        tls_cert=Path(args.tls_cert) if args.tls_cert else None,
        tls_key=Path(args.tls_key) if args.tls_key else None,
        threads=args.threads,
        parent_pid=args.parent_pid,
        nice=args.nice,
    )
    if args.ws_port is None and not args.studio:
        asyncio.run(serve(ensure_model(args.model), config))
        return 0
    from ..server.ws_gateway import WsGateway, serve_with_gateway

    model = ensure_model(args.model)
    gateways = []
    if args.ws_port is not None:
        gateways.append(
            WsGateway(
                host=args.host,
                port=args.ws_port,
                max_message_bytes=args.ws_max_message_mb << 20,
                grpc_max_message_bytes=args.max_message_mb << 20,
                tls_cert=config.tls_cert,
                tls_key=config.tls_key,
                allowed_origins=tuple(
                    o.strip().rstrip("/") for o in args.ws_allowed_origins.split(",") if o.strip()
                ),
            )
        )
    if args.studio:
        from ..studio import make_studio
        from .studio import default_personas

        config.personas_dir = config.personas_dir or default_personas()
        gateways.append(make_studio(model, config, args.studio_port))
    asyncio.run(serve_with_gateway(model, config, *gateways))
    return 0


def cmd_loadtest(args: argparse.Namespace) -> int:
    from ..loadtest import plot_soak, run_loadtest, run_soak

    if args.soak:
        figures = run_soak(
            args.address,
            minutes=args.soak,
            workers=args.sessions,
            api_key=args.api_key,
            server_pid=args.server_pid,
            window_s=args.window,
        )
        report(figures, args.json, hide=("samples",))
        if args.plot:
            plot_soak(figures, Path(args.plot))
            print(f"wrote {args.plot}")
        return 0 if figures["errors"] == 0 else 1

    figures = run_loadtest(
        args.address,
        sessions=args.sessions,
        turns=args.turns,
        api_key=args.api_key,
        max_tokens=args.max_tokens,
        idle_sessions=args.idle_sessions,
        server_pid=args.server_pid,
    )
    report(figures, args.json)
    return 0 if figures["errors"] == 0 else 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the gRPC server (npc.v1.NpcService) on the default or given model")
    p.add_argument("--model", help="model folder (default: the cached int4 export, built on first run)")
    p.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="cuda needs onnxruntime-gpu (pip install .[gpu])",
    )
    p.add_argument(
        "--no-prefill-graph",
        action="store_true",
        help="prefill with decoder.onnx too: ~190 MB less memory, first tokens ~2x later (docs/scaling.md)",
    )
    p.add_argument(
        "--cluster",
        metavar="RAY_ADDRESS",
        help="cluster mode: this server is a front door; turns run on Ray Serve replicas of the model, routed by "
        "session id (needs --store postgresql://...; docs/scaling.md)",
    )
    p.add_argument("--replicas", type=int, default=2, help="cluster mode: replicas to deploy if none run yet")
    p.add_argument(
        "--replica-threads",
        type=int,
        default=0,
        help="cluster mode: onnxruntime threads per replica (0: all)",
    )
    p.add_argument(
        "--replica-resource", help="cluster mode: a custom Ray resource a node must offer to host a replica"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    p.add_argument("--port", type=int, default=50051, help="0 picks a free port")
    p.add_argument("--data-dir", help="where sessions.sqlite3 lives (default: the cache's server/)")
    p.add_argument(
        "--store",
        help="session store: a postgresql://user:pass@host:port/db URL (needs the postgres extra); "
        "default: SQLite in --data-dir",
    )
    p.add_argument(
        "--api-key",
        help="require 'authorization: Bearer KEY' on every RPC but health (a launcher passes it in NPC_SDK_API_KEY "
        "instead: the command line is visible to every local process)",
    )
    p.add_argument("--threads", type=int, default=0, help="onnxruntime threads per graph (0: all cores)")
    p.add_argument(
        "--parent-pid",
        type=int,
        default=0,
        help="stop (gracefully) when this process ends: the game that launched it",
    )
    p.add_argument("--nice", type=int, default=0, help="lower OS priority, 1..19 (Windows: below normal)")
    p.add_argument("--slots", type=int, default=8, help="turns decoded at once")
    p.add_argument("--max-sessions", type=int, default=100_000)
    p.add_argument(
        "--max-queued", type=int, default=64, help="turns waiting for a slot before RESOURCE_EXHAUSTED"
    )
    p.add_argument(
        "--max-message-mb", type=int, default=64, help="largest request (a 4K RGBA8 frame is 33 MB)"
    )
    p.add_argument("--kv-budget-mb", type=int, default=512, help="host memory for idle sessions' KV state")
    p.add_argument(
        "--personas", help="folder of persona files (TOML, JSON, V2 cards), reloaded when they change"
    )
    p.add_argument("--api-keys", help="TOML file of [[key]] name/secret/max_sessions/max_concurrent_turns")
    p.add_argument("--tls-cert", help="PEM certificate chain: serve TLS")
    p.add_argument("--tls-key", help="PEM private key for --tls-cert")
    p.add_argument(
        "--ws-port",
        type=int,
        help="also serve the WebSocket JSON gateway (docs/websocket.md) on this port of --host; 0 picks one",
    )
    p.add_argument(
        "--ws-max-message-mb", type=int, default=16, help="largest WebSocket frame (a 1080p RGBA8 frame fits)"
    )
    p.add_argument(
        "--ws-allowed-origins",
        default="",
        help="comma-separated browser origins allowed on the WebSocket gateway (https://game.example); "
        "native clients send no Origin and are always allowed; default: no browser page",
    )
    p.add_argument(
        "--studio",
        action="store_true",
        help="also serve the studio page on --studio-port of --host (docs/studio.md); it edits --personas "
        "(default: the cache's studio/personas/)",
    )
    p.add_argument("--studio-port", type=int, default=8080, help="the studio page's port; 0 picks one")
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser(
        "loadtest", help="concurrent sessions against a running server: TTFT percentiles, tok/s"
    )
    p.add_argument("--address", default="127.0.0.1:50051")
    p.add_argument("--api-key")
    p.add_argument("--sessions", type=int, default=8)
    p.add_argument("--turns", type=int, default=3)
    p.add_argument("--max-tokens", type=int, default=40)
    p.add_argument("--idle-sessions", type=int, default=0, help="extra sessions created and left idle first")
    p.add_argument("--server-pid", type=int, help="read this server process's resident memory (Linux)")
    p.add_argument(
        "--soak", type=float, metavar="MINUTES", help="loop create/chat/export/import/delete this long"
    )
    p.add_argument("--window", type=float, default=10.0, help="soak: seconds per sample")
    p.add_argument("--plot", help="soak: write RSS and p95 TTFT over time to this PNG")
    p.add_argument("--json", help="also write the figures here")
    p.set_defaults(func=cmd_loadtest)
