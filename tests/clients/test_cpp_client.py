"""The C++ sample client (samples/cpp): built with CMake against Debian's gRPC C++, run against a real server."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from npc_sdk.client import Client
from npc_sdk.demo import scene_path

from ..scene_samples import check_bicker
from ..server_process import ServerProcess

pytestmark = pytest.mark.slow

SCENE = scene_path("meadow_slimes.png")
KEY = "cpp-sample-test-key-0123456789"


def _run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, encoding="utf-8", timeout=timeout, check=False
    )


@pytest.fixture(scope="session")
def npc_chat(cpp_build) -> Path:
    """samples/cpp, built once per test session by tests/clients/conftest.py (with the launcher's tests)."""
    return cpp_build / "npc_chat"


@pytest.fixture(scope="module")
def server(exported_int4, tmp_path_factory):
    personas = Path(__file__).resolve().parents[2] / "samples" / "personas"
    with ServerProcess(
        exported_int4, tmp_path_factory.mktemp("data"), "--api-key", KEY, "--personas", str(personas)
    ) as proc:
        yield proc


def _chat(
    npc_chat: Path, server: ServerProcess, *args: str, key: str = KEY
) -> subprocess.CompletedProcess[str]:
    return _run(
        [npc_chat, "--address", server.address, "--api-key", key, "--timeout-ms", "120000", *args], 180
    )


def _records(stdout: str) -> list[tuple[str, object]]:
    """Every stdout line is `KEY <one JSON value>`, in pure ASCII."""
    assert stdout.isascii(), stdout
    records = []
    for line in stdout.splitlines():
        key, _, value = line.partition(" ")
        records.append((key, json.loads(value)))
    return records


def test_cpp_client_streams_a_reply_to_a_png_screenshot(npc_chat, server):
    text = "What do you see out there?"
    out = _chat(
        npc_chat, server, "--screenshot", str(SCENE), "--text", text, "--max-tokens", "24", "--seed", "1"
    )
    assert out.returncode == 0, out.stdout + out.stderr
    records = _records(out.stdout)
    keys = [k for k, _ in records]
    deltas = [v for k, v in records if k == "DELTA"]
    values = dict(records)
    assert keys[0] == "SESSION" and keys.index("DONE") == len(deltas) + 1  # every delta comes before done
    assert len(deltas) >= 2 and "".join(deltas) == values["DONE"] and values["DONE"].strip()
    assert values["FINISH"] in ("stop", "length") and values["USAGE"]["completion_tokens"] > 0
    assert 0 < values["TTFT_MS"] <= values["TOTAL_MS"]
    for seen in values["SEEN"]:  # what the image head saw: most certain first
        assert set(seen) == {"tag", "score", "source"} and seen["source"] == "screenshot", values["SEEN"]
    scores = [s["score"] for s in values["SEEN"]]
    assert scores == sorted(scores, reverse=True) and all(0 < s <= 1 for s in scores), values["SEEN"]
    print(f"C++ client: first delta {values['TTFT_MS']} ms, whole reply {values['TOTAL_MS']} ms")
    with Client(server.address, api_key=KEY, timeout=60) as py:
        turns = py.get_session(values["SESSION"]).turns
    assert [(t.user, t.reply) for t in turns] == [(text, values["DONE"])]


def test_cpp_client_sends_scene_entities_and_prints_what_the_npc_was_told(npc_chat, server):
    ferryman = "tag=ferryman;name=Old Tom the ferryman;x=0.2;y=0.6;distance=3"
    scene = ["--scene", ferryman, "--scene", "slime,slime"]
    out = _chat(npc_chat, server, *scene, "--text", "Who is there?", "--max-tokens", "8", "--seed", "1")
    assert out.returncode == 0, out.stdout + out.stderr
    values = dict(_records(out.stdout))
    # No screenshot: everything seen comes from the game (score 1); the two slimes are one entry.
    assert values["SEEN"] == [
        {"tag": "ferryman", "score": 1.0, "source": "game"},
        {"tag": "slime", "score": 1.0, "source": "game"},
    ], values["SEEN"]


def test_cpp_scene_sample_two_npcs_bicker_about_the_screenshot_and_the_player_cuts_in(cpp_build, server):
    out = _run(
        [cpp_build / "npc_scene", "--address", server.address, "--api-key", KEY, "--screenshot", SCENE], 180
    )
    # a talk that ended before the player cut in says so on stderr
    assert out.returncode == 0 and "npc_scene:" not in out.stderr, out.stdout + out.stderr
    with Client(server.address, api_key=KEY, timeout=60) as py:
        check_bicker(out.stdout, py)


def test_cpp_client_gets_the_action_first_and_the_emotion(npc_chat, server):
    args = ["--persona-id", "old_tom", "--text", "Ferry me over to Mirewood, please.", "--max-tokens", "8"]
    out = _chat(npc_chat, server, *args, "--state", "time_of_day=night")
    assert out.returncode == 0, out.stdout + out.stderr
    records = _records(out.stdout)
    assert [k for k, _ in records][:2] == ["SESSION", "ACTION"]  # the callback ran before any delta
    action = dict(records)["ACTION"]
    assert action["name"] == "ferry_across" and action["args"] == {"destination": "Mirewood"}
    emotion = dict(records)["EMOTION"]
    assert emotion["label"] in ("neutral", "joy", "anger", "sadness", "fear", "surprise", "disgust")
    bad = _chat(npc_chat, server, "--text", "Hi", "--state", "hp=")
    assert bad.returncode == 1 and "INVALID_ARGUMENT" in bad.stderr and "state['hp']" in bad.stderr


def test_cpp_client_turn_id_replays_a_committed_turn(npc_chat, server):
    first = _chat(npc_chat, server, "--text", "Good evening.", "--max-tokens", "8", "--turn-id", "cpp-1")
    assert first.returncode == 0, first.stdout + first.stderr
    values = dict(_records(first.stdout))
    again = _chat(
        npc_chat,
        server,
        "--session",
        values["SESSION"],
        "--text",
        "Good evening.",
        "--turn-id",
        "cpp-1",
        "--attempts",
        "3",
    )
    assert again.returncode == 0, again.stdout + again.stderr
    replay = dict(_records(again.stdout))
    assert values["REPLAYED"] is False and replay["REPLAYED"] is True and replay["DONE"] == values["DONE"]
    with Client(server.address, api_key=KEY, timeout=60) as py:
        assert len(py.get_session(values["SESSION"]).turns) == 1


def test_cpp_client_cancel_stores_nothing(npc_chat, server):
    story = ["--text", "Tell me a long story.", "--max-tokens", "200"]
    out = _chat(npc_chat, server, *story, "--cancel-after-deltas", "1")
    assert out.returncode == 1 and out.stderr.startswith("ERROR Chat CANCELLED "), out.stderr
    records = _records(out.stdout)
    assert [k for k, _ in records] == ["SESSION", "DELTA"]
    sid = records[0][1]
    with Client(server.address, api_key=KEY, timeout=120) as py:
        py.say(sid, "Never mind.", max_tokens=4)  # waits for the cancelled turn to be dropped
        assert [t.user for t in py.get_session(sid).turns] == ["Never mind."]


@pytest.mark.parametrize(
    "args, key, error",
    [
        (["--text", ""], KEY, 'ERROR Chat INVALID_ARGUMENT "text:'),
        (["--text", "hi", "--max-tokens", "0"], KEY, 'ERROR Chat INVALID_ARGUMENT "generation.max_tokens:'),
        (
            ["--text", "hi", "--rgba", "{raw}", "--size", "4x4", "--bottom-up"],
            KEY,
            'ERROR Chat INVALID_ARGUMENT "screenshot: data is 48 bytes but 4x4x4 needs 64"',
        ),
        (["--text", "hi", "--scene", "tag=slime;x=2"], KEY, 'ERROR Chat INVALID_ARGUMENT "scene[0].x:'),
        (["--text", "hi", "--scene", "slime,"], KEY, 'ERROR Chat INVALID_ARGUMENT "scene[1].tag:'),
        (["--text", "hi"], "wrong-key", "ERROR CreateSession UNAUTHENTICATED "),
    ],
)
def test_cpp_client_errors_exit_nonzero_with_the_status_name(npc_chat, server, tmp_path, args, key, error):
    raw = tmp_path / "frame.rgba"
    raw.write_bytes(Image.open(SCENE).convert("RGBA").resize((4, 3)).tobytes())  # 48 bytes, not 4x4x4
    args = [a.replace("{raw}", str(raw)) for a in args]
    out = _chat(npc_chat, server, *args, key=key)
    assert out.returncode == 1, out.stdout + out.stderr
    assert error in out.stderr and "DONE" not in out.stdout, out.stderr


def test_cpp_client_output_is_ascii_json_whatever_the_text(npc_chat, server):
    sid = 'no "such" séssion \U0001f409\n'
    out = _chat(npc_chat, server, "--session", sid, "--text", "hi")
    assert out.returncode == 1 and out.stderr.startswith('ERROR Chat INVALID_ARGUMENT "session_id:'), (
        out.stderr
    )
    assert _records(out.stdout) == [("SESSION", sid)]
    json.loads(out.stderr.split(" ", 3)[3])  # the message is one JSON string too
