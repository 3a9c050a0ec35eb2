"""Scenes of several NPCs through a real `npc-sdk serve` on loopback: who answers, who hears what, NPC talk and its
interruption, and a restart in the middle of a scene."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import grpc
import pytest

from npc_sdk.client import Client

from ..server_process import ServerProcess

pytestmark = pytest.mark.slow

BRAKKA = {"name": "Brakka", "description": "The dwarf blacksmith of Emberfall.", "talkativeness": 0.9}
MIRA = {"name": "Mira", "description": "The innkeeper of the Crooked Lantern.", "talkativeness": 0.3}
ZED = {"name": "Zed", "description": "A fisherman down at the docks."}
QUICK = {"max_tokens": 8, "temperature": 0.0}


@pytest.fixture(scope="module")
def server(exported_int4, tmp_path_factory):
    with ServerProcess(exported_int4, tmp_path_factory.mktemp("data")) as proc:
        yield proc


@pytest.fixture()
def client(server):
    with Client(server.address, timeout=120) as c:
        yield c


def _turns(data_dir: Path, session_id: str) -> list[tuple[str, str]]:
    db = sqlite3.connect(data_dir / "sessions.sqlite3")
    try:
        rows = db.execute("SELECT user, reply FROM turns WHERE session_id = ? ORDER BY idx", (session_id,))
        return [(u, r) for u, r in rows]
    finally:
        db.close()


def _said(events) -> list[tuple[str, str]]:
    """(session_id, reply) of each NPC line in a scene's event stream."""
    return [(e.session_id, e.event.done.text) for e in events if e.event.HasField("done")]


def _code(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code(), err.value.details()


def _cast(client):
    b = client.create_session(BRAKKA).session_id
    m = client.create_session(MIRA).session_id
    z = client.create_session(ZED).session_id
    return b, m, z


def test_the_npc_named_answers_and_only_those_present_hear_it(server, client):
    b, m, z = _cast(client)
    scene = client.create_scene([b, m])
    assert [(x.session_id, x.name) for x in scene.members] == [(b, "Brakka"), (m, "Mira")]

    events = list(client.scene_chat(scene.scene_id, "Mira, do you have a room for tonight?", **QUICK))
    ((who, mira_said),) = _said(events)
    assert who == m and all(e.session_id == m and e.speaker == "Mira" for e in events)
    assert any(e.event.HasField("delta") for e in events)
    assert _turns(server.data_dir, m) == [("Mira, do you have a room for tonight?", mira_said)]
    heard = {x.session_id: x.lines_heard for x in client.get_scene(scene.scene_id).members}
    assert heard == {b: 2, m: 0}  # Brakka heard the player and Mira; Mira has heard nothing new since

    ((who, _),) = _said(client.scene_chat(scene.scene_id, "Brakka, can you fix my sword?", **QUICK))
    assert who == b
    (brakka_heard, _) = _turns(server.data_dir, b)[0]
    assert brakka_heard == (
        '(Player said: "Mira, do you have a room for tonight?") '
        f'(Mira said: "{" ".join(mira_said.split())}")\n'
        "Brakka, can you fix my sword?"
    )
    assert _turns(server.data_dir, z) == []  # Zed was not there: he heard nothing

    # the game names who answers, and the game's own lines are heard without an answer
    assert _said(client.scene_chat(scene.scene_id, "Hello, everyone!", responder=m, **QUICK))[0][0] == m
    assert list(client.scene_chat(scene.scene_id, "A bell rings.", speaker="Narrator", no_reply=True)) == []
    assert _turns(server.data_dir, b)[-1][0] != ""  # nothing new stored for a line nobody answered
    heard = {x.session_id: x.lines_heard for x in client.get_scene(scene.scene_id).members}
    assert heard[m] == 1 and heard[b] == 3  # the bell for Mira; hello, Mira's answer and the bell for Brakka


def test_npcs_talk_among_themselves_in_turn(server, client):
    b, m, _ = _cast(client)
    scene_id = client.create_scene([b, m]).scene_id
    said = _said(client.converse(scene_id, 4, topic="The price of iron went up again.", **QUICK))
    speakers = [s for s, _ in said]
    assert len(said) == 4 and all(
        x != y for x, y in zip(speakers, speakers[1:], strict=False)
    )  # nobody twice in a row
    first, second = said[0], said[1]
    second_heard = _turns(server.data_dir, second[0])[0][0]
    assert '(Narrator said: "The price of iron went up again.")' in second_heard
    assert second_heard.endswith("\n" + " ".join(first[1].split()))  # it answers what the first one said


def test_the_player_cuts_in_and_nothing_half_said_is_stored(server, client):
    b, m, _ = _cast(client)
    scene_id = client.create_scene([b, m]).scene_id
    talk = client.converse(
        scene_id, 12, topic="Tell each other about your day.", max_tokens=40, temperature=0.0
    )
    seen = []
    first_line = threading.Event()

    def read():
        for event in talk:
            seen.append(event)
            if event.event.HasField("done"):
                first_line.set()

    reader = threading.Thread(target=read)
    reader.start()
    assert first_line.wait(120)
    answer = _said(client.scene_chat(scene_id, "Sorry to interrupt: Brakka, a word?", **QUICK))
    reader.join(120)
    assert seen[-1].interrupted and not seen[-1].HasField("event")
    said = _said(seen)
    # The player spoke as the first line ended: the next line is not started (it was, when the cut-in came while
    # its speaker was being chosen), or is cut short.
    assert len(said) == 1
    stored = _turns(server.data_dir, b) + _turns(server.data_dir, m)
    assert len(stored) == len(said) + 1  # every line said, plus the answer to the player: no half line
    assert answer[0][0] == b
    replies = {r for _, r in stored}
    assert all(text in replies for _, text in said)


def test_bad_scene_requests_name_their_field(client):
    b, m, z = _cast(client)
    code, why = _code(lambda: client.create_scene([b]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and why.startswith("session_ids")
    assert _code(lambda: client.create_scene([b, "nobody"]))[0] == grpc.StatusCode.NOT_FOUND
    code, why = _code(lambda: list(client.scene_chat("no-such-scene", "Hi")))
    assert code == grpc.StatusCode.NOT_FOUND and why.startswith("scene_id")
    scene_id = client.create_scene([b, m]).scene_id
    code, why = _code(lambda: list(client.scene_chat(scene_id, "Hi", responder=z)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and why.startswith("responder_session_id")
    code, why = _code(lambda: list(client.converse(scene_id, 99)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and why.startswith("turns")
    code, why = _code(lambda: list(client.scene_chat(scene_id, "")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and why.startswith("text")
    client.delete_scene(scene_id)
    assert _code(lambda: client.get_scene(scene_id))[0] == grpc.StatusCode.NOT_FOUND
    assert client.get_session(b).session_id == b  # the sessions stay


def test_a_restarted_server_carries_on_the_scene_where_it_was(exported_int4, tmp_path):
    with ServerProcess(exported_int4, tmp_path) as proc, Client(proc.address, timeout=120) as c:
        b = c.create_session(BRAKKA).session_id
        m = c.create_session(MIRA).session_id
        scene_id = c.create_scene([b, m], scene_id="tavern").scene_id
        _said(c.scene_chat(scene_id, "Mira, a room please.", **QUICK))
        list(c.scene_chat(scene_id, "The door bursts open.", speaker="Narrator", no_reply=True))
    with ServerProcess(exported_int4, tmp_path) as proc, Client(proc.address, timeout=120) as c:
        heard = {x.name: x.lines_heard for x in c.get_scene(scene_id).members}
        assert heard == {"Brakka": 3, "Mira": 1}
        ((who, _),) = _said(c.scene_chat(scene_id, "Brakka, did you see that?", **QUICK))
        assert who == b
        heard_text = _turns(tmp_path, b)[0][0]
        assert heard_text.startswith('(Player said: "Mira, a room please.")')
        assert '(Narrator said: "The door bursts open.")' in heard_text
        assert heard_text.endswith("\nBrakka, did you see that?")
