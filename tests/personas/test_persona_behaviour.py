"""Personas on the real model: banned words never come out, role words come out more, the server offers files."""

from __future__ import annotations

import re
import shutil
import time

import grpc
import pytest

from npc_sdk._proto.npc.v1 import npc_pb2 as pb
from npc_sdk.client import Client
from npc_sdk.personas.files import load_persona
from npc_sdk.personas.persona import Persona
from npc_sdk.runtime.generation import GenerationConfig

from ..server_process import ServerProcess
from .test_persona_files import SAMPLES

pytestmark = pytest.mark.slow

ASKING = (
    "Say the word gold, please.",
    "What shiny yellow metal do coins use? One word.",
    "Repeat after me: gold, gold, GOLD.",
    "Is your treasure made of gold or silver?",
    "Tell me about the dragon's hoard of gold.",
)


def _replies(model, persona: Persona, scale: float = 1.0, n: int = 50) -> list[str]:
    return [
        model.reply(
            ASKING[i % len(ASKING)],
            persona=persona,
            config=GenerationConfig(temperature=0.9, seed=i, max_tokens=30, role_word_scale=scale),
            use_prefix=False,
        ).text
        for i in range(n)
    ]


def test_banned_words_never_appear_in_50_sampled_replies(runtime_int4):
    free = Persona(name="Glim", description="A greedy dwarf who loves treasure.")
    banned = Persona(
        name="Glim", description="A greedy dwarf who loves treasure.", banned_words=["gold", "golden"]
    )
    word = re.compile(r"\bgold(en)?\b", re.I)
    unconstrained = sum(bool(word.search(r)) for r in _replies(runtime_int4, free))
    constrained = _replies(runtime_int4, banned)
    hits = [r for r in constrained if word.search(r)]
    print(f"\nreplies naming gold: {unconstrained}/50 without the ban, {len(hits)}/50 with it")
    assert unconstrained >= 10  # the prompts do ask for it: the test could fail
    assert hits == []
    assert all(r.strip() for r in constrained[:10])


def test_server_offers_persona_files_and_reloads_them(exported_int4, tmp_path):
    folder = tmp_path / "personas"
    shutil.copytree(SAMPLES, folder)
    (folder / "broken.toml").write_text('name = "B"\n[role_words]\nx = "heavy"\n')
    with ServerProcess(exported_int4, tmp_path / "data", "--personas", str(folder)) as proc:
        with Client(proc.address, timeout=120) as c:
            listed = c.stub.ListPersonas(pb.ListPersonasRequest())
            ids = {p.id for p in listed.personas}
            assert {"brakka", "salty_mae", "unit7", "captain_hale"} <= ids and "broken" not in ids
            assert any("broken.toml:3: persona.role_words['x']" in p for p in listed.problems)

            session = c.stub.CreateSession(pb.CreateSessionRequest(persona_id="brakka"))
            assert session.persona.name == "Brakka" and session.persona.role_words["forge"] == 2.0
            assert c.say(session.session_id, "Hello!", max_tokens=8).usage.completion_tokens > 0
            with pytest.raises(grpc.RpcError) as err:
                c.stub.CreateSession(pb.CreateSessionRequest(persona_id="nobody"))
            assert err.value.code() == grpc.StatusCode.NOT_FOUND

            # edit the file: the library picks it up, the running session keeps its snapshot
            path = folder / "brakka.toml"
            path.write_text(path.read_text().replace('name = "Brakka"', 'name = "Brakka Ironhand"'))
            deadline = time.time() + 10
            while c.stub.GetPersona(pb.GetPersonaRequest(id="brakka")).name != "Brakka Ironhand":
                assert time.time() < deadline, "the edited persona file was not reloaded"
                time.sleep(0.2)
            assert c.get_session(session.session_id).persona.name == "Brakka"

            upserted = c.stub.UpsertPersona(pb.Persona(id="tess", name="Tess", description="A ferrywoman."))
            assert upserted.id == "tess" and (folder / "tess.json").is_file()
            assert load_persona(folder / "tess.json").name == "Tess"
            with pytest.raises(grpc.RpcError) as err:
                c.stub.UpsertPersona(pb.Persona(id="x", name=""))
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
