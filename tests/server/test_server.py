"""The gRPC server as engines use it: a real `npc-sdk serve` process on loopback with the real exported model."""

from __future__ import annotations

import io
import signal
import sqlite3
import threading

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from PIL import Image

from npc_sdk._proto.npc.v1 import npc_pb2 as pb
from npc_sdk.client import Client
from npc_sdk.demo import DEMO_PERSONA, scene_path
from npc_sdk.runtime.events import Delta, Done

from ..server_process import ServerProcess

pytestmark = pytest.mark.slow

SCENE = scene_path("meadow_slimes.png")
GUARD = {"name": "Captain Hale", "description": "The stern captain of the city guard."}


@pytest.fixture(scope="module")
def server(exported_int4, tmp_path_factory):
    with ServerProcess(exported_int4, tmp_path_factory.mktemp("data")) as proc:
        yield proc


@pytest.fixture()
def client(server):
    with Client(server.address, timeout=120) as c:
        yield c


def _code(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code()


def test_chat_with_a_png_streams_deltas_that_make_the_reply(client):
    session = client.create_session(DEMO_PERSONA)
    deltas, done = [], None
    with client.chat(
        session.session_id, "What do you see out there?", screenshot=SCENE, max_tokens=30
    ) as stream:
        for event in stream:
            if isinstance(event, Delta):
                deltas.append(event.text)
            else:
                done = event
    assert isinstance(done, Done) and len(deltas) >= 3
    assert "".join(deltas) == done.text and done.usage.completion_tokens > 0
    stored = client.get_session(session.session_id)
    assert [(t.user, t.reply) for t in stored.turns] == [("What do you see out there?", done.text)]


def test_done_says_what_the_npc_saw_and_what_the_game_said(client):
    sid = client.create_session(DEMO_PERSONA).session_id
    seen = client.say(sid, "What do you see out there?", screenshot=SCENE, max_tokens=8).seen
    assert seen and all(s.source == "screenshot" and 0 < s.score <= 1 for s in seen)
    assert [s.score for s in seen] == sorted((s.score for s in seen), reverse=True)  # most certain first
    told = client.say(
        sid,
        "Who is that?",
        scene=[{"tag": "ferryman", "name": "Old Tom the ferryman", "x": 0.1}, "lantern"],
        max_tokens=8,
    ).seen
    assert [(s.tag, s.source, s.score) for s in told] == [("ferryman", "game", 1.0), ("lantern", "game", 1.0)]
    assert client.say(sid, "Goodbye.", max_tokens=4).seen == ()
    assert len(client.get_session(sid).turns) == 3


def test_a_second_turn_reuses_the_sessions_kv_state(client):
    sid = client.create_session(DEMO_PERSONA).session_id
    client.say(sid, "Good evening.", max_tokens=12)
    second = client.say(sid, "Can you fix my sword?", max_tokens=12)
    assert second.usage.cached_tokens > second.usage.prompt_tokens // 2


def test_two_sessions_do_not_leak_history(client):
    smith = client.create_session(DEMO_PERSONA).session_id
    guard = client.create_session(GUARD).session_id
    client.say(smith, "My name is Aldric and I carry a cursed ruby.", max_tokens=12)
    guard_turn = client.say(guard, "Hello, captain.", max_tokens=12)
    fresh_turn = client.say(client.create_session(GUARD).session_id, "Hello, captain.", max_tokens=12)
    assert guard_turn.usage.prompt_tokens == fresh_turn.usage.prompt_tokens  # nothing of the smith's talk
    assert len(client.get_session(guard).turns) == 1 and len(client.get_session(smith).turns) == 1
    assert client.get_session(guard).persona.name == "Captain Hale"


def test_export_delete_import_continue(client):
    sid = client.create_session(DEMO_PERSONA).session_id
    first = client.say(sid, "Remember this: the password is juniper.", max_tokens=10)
    snapshot = client.export_session(sid)
    client.delete_session(sid)
    assert _code(lambda: client.get_session(sid)) == grpc.StatusCode.NOT_FOUND
    restored = client.import_session(snapshot)
    assert restored.session_id == sid and [t.reply for t in restored.turns] == [first.text]
    after = client.say(sid, "What was the password?", max_tokens=10)
    assert after.usage.completion_tokens > 0 and len(client.get_session(sid).turns) == 2
    assert _code(lambda: client.import_session(snapshot)) == grpc.StatusCode.ALREADY_EXISTS


def test_list_sessions_pages_through_everything(client):
    made = {client.create_session(GUARD).session_id for _ in range(5)}
    seen, token = [], ""
    while True:
        page = client.list_sessions(page_size=2, page_token=token)
        assert len(page.sessions) <= 2
        seen += [s.session_id for s in page.sessions]
        token = page.next_page_token
        if not token:
            break
    assert made <= set(seen) and len(seen) == len(set(seen))


def _raw(width: int, height: int, channels: int, **kw) -> pb.Image:
    enc = pb.Image.RGBA8 if channels == 4 else pb.Image.RGB8
    return pb.Image(
        data=b"\x80" * (width * height * channels), encoding=enc, width=width, height=height, **kw
    )


@pytest.mark.parametrize(
    "text, screenshot, generation, field",
    [
        ("", None, {}, "text"),
        ("x" * 2001, None, {}, "text"),
        ("look", pb.Image(data=b"not an image", encoding=pb.Image.PNG), {}, "screenshot"),
        ("look", pb.Image(data=b"\x00" * 47, encoding=pb.Image.RGBA8, width=4, height=3), {}, "screenshot"),
        ("look", pb.Image(data=b"\x00" * 48, encoding=9, width=4, height=3), {}, "screenshot.encoding"),
        ("look", None, {"temperature": 9.0}, "generation.temperature"),
        ("look", None, {"max_tokens": 0}, "generation.max_tokens"),
        ("look", None, {"top_p": 0.0}, "generation.top_p"),
        ("look", None, {"scene_word_weight": 11.0}, "generation.scene_word_weight"),
        ("look", None, {"max_sentences": 12}, "generation.max_sentences"),
        ("look", None, {"scene": [pb.SceneEntity(tag="slime", x=1.5)]}, "scene[0].x"),
        ("look", None, {"scene": [pb.SceneEntity(tag="gem"), pb.SceneEntity(tag="")]}, "scene[1].tag"),
        ("look", None, {"scene": [pb.SceneEntity(tag="gem")] * 33}, "scene"),
    ],
)
def test_bad_chat_requests_are_invalid_argument_naming_the_field(client, text, screenshot, generation, field):
    sid = client.create_session(DEMO_PERSONA).session_id
    scene = generation.pop("scene", [])
    request = pb.ChatRequest(
        session_id=sid,
        text=text,
        screenshot=screenshot,
        generation=pb.GenerationConfig(**generation),
        scene=scene,
    )
    with pytest.raises(grpc.RpcError) as err:
        list(client.stub.Chat(request, timeout=60))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith(field), err.value.details()
    assert len(client.get_session(sid).turns) == 0


def test_unknown_session_and_bad_persona(client):
    assert _code(lambda: client.say("no-such-session", "hi")) == grpc.StatusCode.NOT_FOUND
    nameless = pb.CreateSessionRequest(persona=pb.Persona(name="", description="who?"))
    assert _code(lambda: client.stub.CreateSession(nameless)) == grpc.StatusCode.INVALID_ARGUMENT
    assert (
        _code(lambda: client.stub.CreateSession(pb.CreateSessionRequest()))
        == grpc.StatusCode.INVALID_ARGUMENT
    )
    assert (
        _code(lambda: client.create_session(GUARD, session_id="bad id!")) == grpc.StatusCode.INVALID_ARGUMENT
    )


def test_a_4k_raw_screenshot_is_accepted_and_bottom_up_is_honoured(client):
    sid = client.create_session(DEMO_PERSONA).session_id
    big = _raw(3840, 2160, 4, bottom_up=True)
    assert len(big.data) > 33_000_000
    done = client.say(sid, "What is on my screen?", screenshot=big, max_tokens=5)
    assert done.usage.completion_tokens > 0


def test_second_chat_on_a_busy_session_waits_for_the_first(client):
    sid = client.create_session(DEMO_PERSONA).session_id
    with client.chat(sid, "Tell me a story about dragons.", max_tokens=40) as stream:
        events = iter(stream)
        next(events)
        second = client.say(sid, "And then?", max_tokens=8)  # queued behind the running turn
        rest = list(events)
    first = stream.done
    assert first is not None and isinstance(rest[-1], Done)
    assert second.usage.prompt_tokens > first.usage.prompt_tokens + first.usage.completion_tokens - 2
    assert [t.user for t in client.get_session(sid).turns] == ["Tell me a story about dragons.", "And then?"]


def test_delete_during_a_turn_is_failed_precondition(client):
    sid = client.create_session(DEMO_PERSONA).session_id
    with client.chat(sid, "Tell me a long story.", max_tokens=60) as stream:
        events = iter(stream)
        next(events)
        assert _code(lambda: client.delete_session(sid)) == grpc.StatusCode.FAILED_PRECONDITION
        list(events)
    client.delete_session(sid)


def test_cancelling_mid_stream_stores_nothing_and_the_session_goes_on(client):
    sid = client.create_session(DEMO_PERSONA).session_id
    client.say(sid, "Hello.", max_tokens=8)
    with client.chat(sid, "Tell me everything you know about swords.", max_tokens=300) as stream:
        for i, _ in enumerate(stream):
            if i == 2:
                break  # leaving the block cancels the call
    after = client.say(sid, "Never mind.", max_tokens=8)  # runs once the cancelled turn is dropped
    turns = client.get_session(sid).turns
    assert [t.user for t in turns] == ["Hello.", "Never mind."] and turns[-1].reply == after.text


def test_best_of_n_streams_the_chosen_reply_and_a_cancel_mid_stream_stores_nothing(client):
    # NPCs that talked earlier hold every decoder slot: the turn parks idle ones for its candidates
    for i in range(8):
        client.say(client.create_session(DEMO_PERSONA).session_id, f"Hello {i}.", max_tokens=2, temperature=0.0)
    sid = client.create_session(DEMO_PERSONA).session_id
    deltas, done = [], None
    with client.chat(sid, "Hello there.", candidates=2, max_tokens=30, seed=3) as stream:
        for event in stream:
            if isinstance(event, Delta):
                deltas.append(event.text)
            elif isinstance(event, Done):
                done = event
    # the chosen reply came whole from the critic, yet it streams token by token, like a reply of one
    assert isinstance(done, Done) and len(done.candidates) == 2 and done.candidates[0].text == done.text
    assert len(deltas) >= 3 and "".join(deltas) == done.text
    long = {"candidates": 2, "max_tokens": 300, "max_sentences": 0, "max_clauses": 0}
    with client.chat(sid, "Tell me everything you know about swords.", **long) as stream:
        for i, _ in enumerate(stream):
            if i == 1:
                break  # a cancel after the first delta: the turn is not stored, though the reply was whole
    after = client.say(sid, "Never mind.", max_tokens=8)
    turns = client.get_session(sid).turns
    assert [t.user for t in turns] == ["Hello there.", "Never mind."] and turns[-1].reply == after.text


def test_deadline_stops_the_turn(client):
    sid = client.create_session(DEMO_PERSONA).session_id
    slow = lambda: client.say(sid, "Sing the longest song you know.", max_tokens=1000, timeout=0.03)  # noqa: E731
    assert _code(slow) == grpc.StatusCode.DEADLINE_EXCEEDED
    client.say(sid, "Hello?", max_tokens=4)
    assert [t.user for t in client.get_session(sid).turns] == ["Hello?"]


def test_eight_concurrent_sessions_all_complete(server):
    results: list[Done] = []
    errors: list[Exception] = []

    def play(i: int) -> None:
        try:
            with Client(server.address, timeout=300) as c:
                sid = c.create_session(DEMO_PERSONA if i % 2 else GUARD).session_id
                for line in ("Hello there.", "What news?"):
                    results.append(c.say(sid, line, max_tokens=16, screenshot=SCENE if i % 3 == 0 else None))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=play, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert errors == [] and len(results) == 16
    assert all(r.usage.completion_tokens > 0 for r in results)


def test_health_and_reflection(server):
    channel = grpc.insecure_channel(server.address)
    status = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service="npc.v1.NpcService")
    )
    assert status.status == health_pb2.HealthCheckResponse.SERVING
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    reply = next(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
    assert "npc.v1.NpcService" in {s.name for s in reply.list_services_response.service}
    channel.close()


def test_sessions_survive_a_restart(exported_int4, tmp_path):
    with ServerProcess(exported_int4, tmp_path) as proc:
        with Client(proc.address, timeout=120) as c:
            sid = c.create_session(DEMO_PERSONA, session_id="save-slot-1").session_id
            first = c.say(sid, "Keep my sword safe.", max_tokens=10)
        assert proc.stop(signal.SIGTERM) == 0
        assert any("store closed" in line for line in proc.output)
    db = sqlite3.connect(tmp_path / "sessions.sqlite3")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    with ServerProcess(exported_int4, tmp_path) as proc, Client(proc.address, timeout=120) as c:
        assert [t.reply for t in c.get_session(sid).turns] == [first.text]
        again = c.say(sid, "Is it still here?", max_tokens=10)
        assert again.usage.cached_tokens == 0 and again.usage.completion_tokens > 0  # KV rebuilt on demand
        assert len(c.get_session(sid).turns) == 2


def test_api_key_and_session_limit(exported_int4, tmp_path):
    with ServerProcess(exported_int4, tmp_path, "--api-key", "s3cret", "--max-sessions", "2") as proc:
        with Client(proc.address, timeout=60) as anonymous:
            assert _code(lambda: anonymous.create_session(GUARD)) == grpc.StatusCode.UNAUTHENTICATED
            assert _code(lambda: anonymous.say("x", "hi")) == grpc.StatusCode.UNAUTHENTICATED
        with Client(proc.address, api_key="wrong", timeout=60) as wrong:
            assert _code(lambda: wrong.list_sessions()) == grpc.StatusCode.UNAUTHENTICATED
        channel = grpc.insecure_channel(proc.address)
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING  # health needs no key
        channel.close()
        with Client(proc.address, api_key="s3cret", timeout=60) as c:
            c.create_session(GUARD)
            c.create_session(GUARD)
            assert _code(lambda: c.create_session(GUARD)) == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_png_bytes_from_a_pil_image_work_like_files(client):
    buf = io.BytesIO()
    Image.fromarray(np.full((90, 160, 3), 200, dtype=np.uint8)).save(buf, "PNG")
    sid = client.create_session(DEMO_PERSONA).session_id
    assert (
        client.say(sid, "Look at this.", screenshot=buf.getvalue(), max_tokens=4).usage.completion_tokens > 0
    )
    jpeg = pb.Image(data=buf.getvalue(), encoding=pb.Image.JPEG)  # PNG bytes labelled JPEG
    assert _code(lambda: client.say(sid, "And this?", screenshot=jpeg)) == grpc.StatusCode.INVALID_ARGUMENT


def test_terminal_chat_streams_and_attaches_a_screenshot(server):
    import subprocess
    import sys

    lines = f"Hello there!\n/look {SCENE}\nWhat is this place?\n/quit\n"
    out = subprocess.run(
        [sys.executable, "-m", "npc_sdk.cli", "chat", "--address", server.address, "--name", "Brakka"],
        input=lines,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("ms to first token") == 2 and "(next line shows" in out.stdout
    session_id = out.stdout.split("session ", 1)[1].split()[0]
    with Client(server.address) as c:
        assert [t.user for t in c.get_session(session_id).turns] == ["Hello there!", "What is this place?"]


def test_loadtest_reports_turns_and_the_gaps_between_deltas(server):
    from npc_sdk.loadtest import run_loadtest

    figures = run_loadtest(server.address, sessions=2, turns=2, max_tokens=8)
    assert figures["errors"] == 0 and figures["turns_completed"] == 4
    assert 1 <= figures["tokens_per_turn"] <= 8
    assert figures["turns_per_second"] > 0
    # replies of more than one token stream in pieces, so there are gaps, and the largest is at least the p95
    assert 0 < figures["gap_between_deltas_ms_p95"] <= figures["gap_between_deltas_ms_max"]


def test_soak_loop_reports_memory_and_latency_over_time(server, tmp_path):
    import json
    import subprocess
    import sys

    out_json, out_png = tmp_path / "soak.json", tmp_path / "soak.png"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "npc_sdk.cli",
            "loadtest",
            "--address",
            server.address,
            "--soak",
            "0.25",
            "--sessions",
            "2",
            "--window",
            "3",
            "--server-pid",
            str(server.proc.pid),
            "--json",
            str(out_json),
            "--plot",
            str(out_png),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    figures = json.loads(out_json.read_text())
    assert figures["errors"] == 0 and figures["cycles"] >= 1 and len(figures["samples"]) >= 3
    assert all(s["rss_mb"] > 0 for s in figures["samples"])
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_hostile_wire_bytes_get_an_error_and_the_server_keeps_serving(client, server):
    sid = client.create_session(DEMO_PERSONA).session_id
    client.say(sid, "Hello.", max_tokens=4)
    raw_chat = client.channel.unary_stream(
        "/npc.v1.NpcService/Chat", request_serializer=lambda b: b, response_deserializer=lambda b: b
    )
    sid_field = b"\x0a" + bytes([len(sid)]) + sid.encode()
    hostile = [
        sid_field + b"\x12\x04\xff\xfe\xfd\xfc",  # text: invalid UTF-8
        sid_field + b"\x12\x7f" + b"\x00" * 10,  # text: length past the end (truncated message)
        b"\xff\xff\xff\xff",  # not a protobuf at all
    ]
    for payload in hostile:
        with pytest.raises(grpc.RpcError) as err:
            list(raw_chat(payload, timeout=30))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and err.value.details().startswith(
            "request"
        )
    for text, field in (("\x00\x07\x1b[2J" * 3, None), ("x" * (1 << 20), "text")):
        if field:
            with pytest.raises(grpc.RpcError) as err:
                client.say(sid, text)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and err.value.details().startswith(
                "text"
            )
        else:
            assert (
                client.say(sid, text, max_tokens=4).usage.completion_tokens > 0
            )  # control characters are text
    turns = client.get_session(sid).turns
    assert [t.user for t in turns] == ["Hello.", "\x00\x07\x1b[2J" * 3]  # nothing else was stored
