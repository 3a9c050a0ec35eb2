"""The `npc-sdk` command line: one module per command group, each with `register(sub)` for its parsers.

  model      pull, export, bench          play      demo, chat
  server     serve, loadtest              personas  persona validate|render
  training   data, train, eval           shipping  bundle
  studio     studio

Commands import what they drive when they run, so `npc-sdk --help` loads neither onnxruntime nor torch.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import NpcError
from . import model, personas, play, server, shipping, studio, training

GROUPS = (model, play, server, personas, training, shipping, studio)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="npc-sdk", description="Role-played, scene-aware NPC dialogue.")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (
        NpcError,
        FileNotFoundError,
    ) as exc:  # a missing dataset or file says what to run, not a traceback
        print(f"npc-sdk: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nnpc-sdk: interrupted", file=sys.stderr)
        return 130
