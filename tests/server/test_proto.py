"""Generated protobuf code is exactly what scripts/gen_proto.py makes from proto/ (never edited by hand)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_matches_the_proto(tmp_path):
    spec = importlib.util.spec_from_file_location("gen_proto", ROOT / "scripts" / "gen_proto.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    fresh = {p.relative_to(tmp_path): p.read_text() for p in gen.generate(tmp_path)}
    committed_root = ROOT / "npc_sdk" / "_proto"
    committed = {p.relative_to(committed_root): p.read_text() for p in committed_root.rglob("*_pb2*.py*")}
    assert fresh.keys() == committed.keys()
    stale = [str(k) for k in fresh if fresh[k] != committed[k]]
    assert not stale, f"regenerate with `python scripts/gen_proto.py`: {stale}"


def test_contract_keeps_the_names_engines_use():
    from npc_sdk._proto.npc.v1 import npc_pb2 as pb

    service = pb.DESCRIPTOR.services_by_name["NpcService"]
    assert {m.name for m in service.methods} >= {
        "CreateSession",
        "GetSession",
        "ListSessions",
        "DeleteSession",
        "Chat",
        "ExportSession",
        "ImportSession",
    }
    assert pb.Image.PNG == 1
    assert {f.name for f in pb.ChatEvent.DESCRIPTOR.oneofs_by_name["event"].fields} == {"delta", "done", "action"}
