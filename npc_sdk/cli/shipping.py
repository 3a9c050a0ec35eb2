"""Shipping: `bundle`, the server as a folder a game ships (docs/shipping.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import ensure_model


def cmd_bundle(args: argparse.Namespace) -> int:
    from ..bundle import build_bundle
    from ..cache import cache_dir

    personas = Path(args.personas) if args.personas else Path(__file__).resolve().parents[2] / "samples" / "personas"
    build_bundle(
        Path(args.out),
        ensure_model(args.model),
        personas if personas.is_dir() else None,
        cache_dir() / "bundles",
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bundle",
        help="a folder a game ships: the frozen server (no Python needed), the int4 model, personas, notices",
    )
    p.add_argument("--out", required=True, help="the bundle folder to write (replaced)")
    p.add_argument("--model", help="model folder (default: the cached int4 export, built on first run)")
    p.add_argument("--personas", help="persona folder to ship (default: samples/personas)")
    p.set_defaults(func=cmd_bundle)
