"""Long-term memory through a real `npc-sdk serve` on loopback: a player's facts reach their next session with the
same NPC, seeded and group memories reach the prompt, the game's memory API, ForgetPlayer, and save games."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import grpc
import pytest

from npc_sdk.client import Client

from ..server_process import ServerProcess

pytestmark = pytest.mark.slow

MIRA = """name = "Mira"
description = "The innkeeper of the Crooked Lantern in Ravensfold."
memory_group = "ravensfold"
memories = ["I keep a spare key to every room under the counter."]
"""
ABEL = """name = "Abel"
description = "The gravedigger of Ravensfold."
memory_group = "ravensfold"
memories = [{ text = "The old mill by the river burned down last spring.", shared = true }]
"""
QUICK = {"max_tokens": 6, "temperature": 0.0}


@pytest.fixture(scope="module")
def server(exported_int4, tmp_path_factory):
    personas = tmp_path_factory.mktemp("personas")
    (personas / "mira.toml").write_text(MIRA)
    (personas / "abel.toml").write_text(ABEL)
    with ServerProcess(exported_int4, tmp_path_factory.mktemp("data"), "--personas", str(personas)) as proc:
        yield proc


@pytest.fixture()
def client(server):
    with Client(server.address, timeout=120) as c:
        yield c


def _contexts(data_dir: Path, session_id: str) -> list[str]:
    """What each stored turn of the session was told besides the line (the memory note is part of it)."""
    db = sqlite3.connect(data_dir / "sessions.sqlite3")
    try:
        rows = db.execute("SELECT context FROM turns WHERE session_id = ? ORDER BY idx", (session_id,))
        return [r[0] for r in rows]
    finally:
        db.close()


def _code(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code(), err.value.details()


def test_what_a_player_says_about_themselves_reaches_their_next_session(server, client):
    first = client.create_session_from_file("mira", player_id="ada").session_id
    client.say(first, "My name is Ada, and I'm looking for my brother Tom. Seen him?", **QUICK)
    kept = client.list_memories(player_id="ada")
    assert [(m.text, m.npc, m.source) for m in kept] == [
        ("My name is Ada, and I'm looking for my brother Tom.", "Mira", "player")
    ]
    again = client.create_session_from_file("mira", player_id="ada")
    assert again.player_id == "ada"
    client.say(again.session_id, "Have you seen my brother around?", **QUICK)
    client.say(again.session_id, "What's the weather like?", **QUICK)
    about, unrelated = _contexts(server.data_dir, again.session_id)
    assert 'The player told you before: "My name is Ada, and I\'m looking for my brother Tom."' in about
    assert "Ada" not in unrelated  # recalled only when the line is about it

    db = sqlite3.connect(server.data_dir / "sessions.sqlite3")
    try:  # every turn is stored with its sentence vector: a reloaded session recalls without re-encoding
        assert db.execute("SELECT count(*) FROM turns WHERE vector IS NULL").fetchone()[0] == 0
        assert db.execute("SELECT length(vector) FROM turns LIMIT 1").fetchone()[0] == 384 * 4
    finally:
        db.close()

    other = client.create_session_from_file("mira", player_id="bo").session_id  # another player: not theirs
    client.say(other, "Have you seen my brother around?", **QUICK)
    assert "Ada" not in _contexts(server.data_dir, other)[0]
    abel = client.create_session_from_file("abel", player_id="ada").session_id  # another NPC: not told
    client.say(abel, "Have you seen my brother around?", **QUICK)
    assert "Ada" not in _contexts(server.data_dir, abel)[0]


def test_seeded_memories_and_the_groups_shared_ones_reach_the_prompt(server, client):
    sid = client.create_session_from_file("mira").session_id
    client.say(sid, "What happened to the old mill by the river?", **QUICK)
    client.say(sid, "Do you have a spare key to my room?", **QUICK)
    mill, key = _contexts(server.data_dir, sid)
    assert "The old mill by the river burned down last spring." in mill  # Abel's, shared with the village
    assert "spare key to every room" in key and "mill" not in key


def test_the_game_adds_lists_and_deletes_memories_and_they_are_recalled(server, client):
    added = client.add_memory(
        "The player saved the miller's daughter from the river.", npc="Mira", player_id="cy"
    )
    assert added.id and added.source == "game" and added.created_unix_ms > 0
    sid = client.create_session_from_file("mira", player_id="cy").session_id
    client.say(sid, "Do you remember the miller's daughter and the river?", **QUICK)
    assert "saved the miller's daughter" in _contexts(server.data_dir, sid)[0]
    client.delete_memory(added.id)
    assert client.list_memories(player_id="cy") == []
    client.say(sid, "Do you remember the miller's daughter and the river?", **QUICK)
    assert "saved the miller's daughter" not in _contexts(server.data_dir, sid)[1]  # a deleted memory is gone


def test_bad_memory_requests_name_their_field(client):
    code, why = _code(lambda: client.create_session_from_file("mira", player_id="no spaces"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and why.startswith("player_id")
    code, why = _code(lambda: client.add_memory("  ", npc="Mira"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and why.startswith("memory.text")
    code, why = _code(lambda: client.add_memory("Orphan fact."))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and why.startswith("memory.npc")
    code, why = _code(lambda: client.forget_player(""))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and why.startswith("player_id")
    assert _code(lambda: client.delete_memory("m-nope"))[0] == grpc.StatusCode.NOT_FOUND
    assert _code(lambda: client.list_memories(limit=5000))[0] == grpc.StatusCode.INVALID_ARGUMENT


def test_forget_player_erases_them_and_a_save_game_brings_them_back(server, client):
    sid = client.create_session_from_file("mira", player_id="dee").session_id
    client.say(sid, "I'm a blacksmith from Karth.", **QUICK)
    snapshot = client.export_session(sid)
    assert snapshot.player_id == "dee"
    assert [m.text for m in snapshot.memories] == ["I'm a blacksmith from Karth."]

    gone = client.forget_player("dee")
    assert (gone.memories_deleted, gone.sessions_deleted) == (1, 1)
    assert _code(lambda: client.get_session(sid))[0] == grpc.StatusCode.NOT_FOUND
    assert client.list_memories(player_id="dee") == []

    back = client.import_session(snapshot)
    assert back.player_id == "dee" and len(back.turns) == 1
    assert [m.text for m in client.list_memories(player_id="dee")] == ["I'm a blacksmith from Karth."]
    client.say(
        sid, "Do you remember where I'm from and what I do?", **QUICK
    )  # the live copy was dropped: reloads
    assert "blacksmith from Karth" in _contexts(server.data_dir, sid)[1]

    snapshot.memories[0].text = "I'm the king of Karth."  # the memories are signed with the rest of the save
    client.forget_player("dee")
    code, why = _code(lambda: client.import_session(snapshot))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and why.startswith("signature")
