"""`studio`: the server and the studio page over it (docs/studio.md)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ._common import ensure_model


def default_personas() -> Path:
    """The persona folder the studio edits when none is given (a starter persona is written into it)."""
    from ..cache import cache_dir

    return cache_dir() / "studio" / "personas"


def cmd_studio(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from ..cache import cache_dir
    from ..server.config import ServerConfig
    from ..server.launch import API_KEY_ENV
    from ..server.ws_gateway import serve_with_gateway
    from ..studio import make_studio

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    config = ServerConfig(
        host=args.host,
        port=args.grpc_port,
        data_dir=Path(args.data_dir) if args.data_dir else cache_dir() / "studio" / "server",
        api_key=args.api_key or os.environ.get(API_KEY_ENV) or None,
        personas_dir=Path(args.personas) if args.personas else default_personas(),
        threads=args.threads,
    )
    model = ensure_model(args.model)
    asyncio.run(serve_with_gateway(model, config, make_studio(model, config, args.port)))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "studio",
        help="serve the studio page: edit personas, chat with screenshots, see why each reply came out (loopback)",
    )
    p.add_argument("--model", help="model folder (default: the cached int4 export, built on first run)")
    p.add_argument(
        "--personas",
        help="the persona folder to edit and serve (default: the cache's studio/personas/, with a starter persona)",
    )
    p.add_argument("--port", type=int, default=8080, help="the page's port (0 picks one)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    p.add_argument("--grpc-port", type=int, default=0, help="the gRPC server's port (default: a free one)")
    p.add_argument(
        "--data-dir", help="where the studio's sessions live (default: the cache's studio/server/)"
    )
    p.add_argument(
        "--api-key",
        help="the server's API key (or NPC_SDK_API_KEY); the page asks for it and sends it with every call",
    )
    p.add_argument("--threads", type=int, default=0, help="onnxruntime threads per graph (0: all cores)")
    p.set_defaults(func=cmd_studio)
