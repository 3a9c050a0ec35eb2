"""Generate the Python protobuf and gRPC code for proto/ into npc_sdk/_proto (the one place it lives).

Run:  python scripts/gen_proto.py      (needs grpcio-tools: pip install -e '.[dev]')
A test regenerates into a temporary folder and fails if the committed files differ.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTO_ROOT = ROOT / "proto"
OUT = ROOT / "npc_sdk" / "_proto"
PACKAGE = "npc_sdk._proto"


def generate(out: Path = OUT) -> list[Path]:
    from grpc_tools import protoc

    out.mkdir(parents=True, exist_ok=True)
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    written = sorted(p for p in out.rglob("*.py*") if p.suffix in (".py", ".pyi"))
    for path in written:
        text = path.read_text()
        # protoc writes absolute imports rooted at proto/ ("from npc.v1 import npc_pb2"); root them in our package
        text = re.sub(r"^from npc\.", f"from {PACKAGE}.npc.", text, flags=re.M)
        path.write_text(text)
    for folder in {p.parent for p in written} | {out}:
        while folder != out.parent:
            (folder / "__init__.py").touch()
            folder = folder.parent
    return written


if __name__ == "__main__":
    for p in generate(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT):
        print("wrote", p.relative_to(ROOT) if p.is_relative_to(ROOT) else p)
