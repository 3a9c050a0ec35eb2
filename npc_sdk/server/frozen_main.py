"""Entry point of the bundled server executable (`npc-sdk bundle`): `serve`, with the bundle's own model and
personas as defaults. A game starts `npc-server --port 0 --parent-pid <pid> --data-dir <save folder>`; no Python,
no venv, no torch on the player's machine."""

from __future__ import annotations

import sys
from pathlib import Path


def bundle_home() -> Path:
    """The folder holding the executable (and model/, personas/ beside it)."""
    return Path(sys.executable).resolve().parent


def serve_argv(argv: list[str], home: Path) -> list[str]:
    """`serve` arguments: the caller's, plus the bundle's model and personas where the caller gave none."""
    given = {a.split("=", 1)[0] for a in argv if a.startswith("--")}
    defaults = []
    if "--model" not in given:
        defaults += ["--model", str(home / "model")]
    if "--personas" not in given and (home / "personas").is_dir():
        defaults += ["--personas", str(home / "personas")]
    return ["serve", *defaults, *argv]


def main() -> int:
    from npc_sdk.cli import main as cli_main

    return cli_main(serve_argv(sys.argv[1:], bundle_home()))


if __name__ == "__main__":
    sys.exit(main())
