"""The WebSocket gateway (`npc-sdk serve --ws-port`): JSON frames over a real server process, and a Godot 3 client."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import ssl
import subprocess
import uuid

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from npc_sdk._proto.npc.v1 import npc_pb2 as pb
from npc_sdk.demo import scene_path
from npc_sdk.runtime.emotion import EMOTIONS
from npc_sdk.server.ws_gateway import FrameError, _to_json, dial_target, parse_frame

from ..engine_tools import require_godot4, require_tools
from ..scene_samples import check_bicker
from ..server_process import ServerProcess

SCENE = scene_path("meadow_slimes.png")
BRAKKA = {"name": "Brakka", "description": "A gruff dwarven blacksmith who runs the forge in Emberfall."}
GODOT_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "samples", "godot", "gdscript")
CAPTURE_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "samples", "godot", "capture")
WAIT_S = 120


# --- frames parsed without a server -------------------------------------------------------------------------


def test_frames_take_json_and_proto_field_names():
    camel = parse_frame(
        json.dumps({"id": "a", "method": "Chat", "request": {"sessionId": "s", "text": "hi"}})
    )
    snake = parse_frame(
        json.dumps({"id": "b", "method": "Chat", "request": {"session_id": "s", "text": "hi"}})
    )
    assert camel.request == snake.request == pb.ChatRequest(session_id="s", text="hi")
    png = SCENE.read_bytes()
    shot = parse_frame(
        json.dumps(
            {
                "id": "c",
                "method": "Chat",
                "apiKey": "k",
                "request": {"screenshot": {"data": base64.b64encode(png).decode(), "encoding": "PNG"}},
            }
        )
    )
    assert shot.request.screenshot.data == png and shot.request.screenshot.encoding == pb.Image.PNG
    assert shot.api_key == "k" and shot.method.streaming
    assert parse_frame('{"id": "c", "cancel": true}') == ("c", None)
    assert parse_frame('{"id": "d", "method": "ListPersonas"}').request == pb.ListPersonasRequest()


def test_scene_in_chat_frames_and_seen_in_done_frames_use_the_names_the_samples_send_and_read():
    # samples/godot/gdscript sends "scene" entities like these and reads done["seen"][i]["tag"/"score"/"source"]
    entities = [{"tag": "ferryman", "name": "Old Tom the ferryman", "x": 0.2, "y": 0.6, "distance": 3}]
    call = parse_frame(
        json.dumps({"id": "s", "method": "Chat", "request": {"scene": [*entities, {"tag": "slime"}]}})
    )
    ferryman, slime = call.request.scene
    assert ferryman.name == "Old Tom the ferryman" and round(ferryman.x, 3) == 0.2 and ferryman.distance == 3
    assert slime.tag == "slime" and not slime.HasField("x")  # unset stays unset: no position given
    seen = [
        pb.SeenTag(tag="slime", score=0.93, source="screenshot"),
        pb.SeenTag(tag="ferryman", score=1, source="game"),
    ]
    assert _to_json(pb.ChatEvent(done=pb.Done(text="Hm.", seen=seen)))["done"]["seen"] == [
        {"tag": "slime", "score": 0.93, "source": "screenshot"},
        {"tag": "ferryman", "score": 1.0, "source": "game"},
    ]


@pytest.mark.parametrize(
    "frame, message",
    [
        (b"binary", "frame: "),
        ("{", "frame: not JSON"),
        ("[1]", "frame: "),
        ('{"method": "Chat"}', "id: "),
        ('{"id": "x", "method": "Shout"}', "method: unknown method 'Shout'"),
        ('{"id": "x", "method": "Chat", "request": []}', "request: "),
        ('{"id": "x", "method": "Chat", "request": {"txt": "a"}}', "txt: no such field"),
        ('{"id": "x", "method": "Chat", "request": {"text": 5}}', "text: "),
        ('{"id": "x", "method": "Chat", "request": {"screenshot": {"data": "x!"}}}', "screenshot.data: "),
        (
            '{"id": "x", "method": "Chat", "request": {"screenshot": {"encoding": "GIF"}}}',
            "screenshot.encoding: ",
        ),
        (
            '{"id": "x", "method": "Chat", "request": {"generation": {"maxTokens": "many"}}}',
            "generation.maxTokens: ",
        ),
        ('{"id": "x", "method": "Chat", "apiKey": 7}', "apiKey: "),
    ],
)
def test_bad_frames_name_what_is_wrong(frame, message):
    with pytest.raises(FrameError) as err:
        parse_frame(frame)
    assert str(err.value).startswith(message), str(err.value)
    assert err.value.code == "INVALID_ARGUMENT"


def test_the_gateway_dials_loopback_when_bound_to_every_address():
    assert dial_target("0.0.0.0", 5) == "127.0.0.1:5" and dial_target("::", 5) == "[::1]:5"
    assert dial_target("10.0.0.2", 5) == "10.0.0.2:5" and dial_target("::1", 5) == "[::1]:5"


# --- a real server process ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(exported_int4, tmp_path_factory):
    with ServerProcess(exported_int4, tmp_path_factory.mktemp("data"), "--ws-port", "0") as proc:
        yield proc


class Socket:
    """A websockets connection with the gateway's framing: send a call, read frames, collect a call's answer."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.pending: list[dict] = []  # frames read while looking for another id
        self.actions: list[dict] = []  # action frames seen by chat()

    async def send(self, call_id: str, method: str, request: dict | None = None, **extra) -> None:
        await self.ws.send(json.dumps({"id": call_id, "method": method, "request": request or {}, **extra}))

    async def frame(self, call_id: str | None = None) -> dict:
        for i, f in enumerate(self.pending):
            if call_id is None or f["id"] == call_id:
                return self.pending.pop(i)
        while True:
            f = json.loads(await asyncio.wait_for(self.ws.recv(), WAIT_S))
            if call_id is None or f["id"] == call_id:
                return f
            self.pending.append(f)

    async def unary(self, call_id: str, method: str, request: dict | None = None, **extra) -> dict:
        await self.send(call_id, method, request, **extra)
        return await self.frame(call_id)

    async def chat(self, call_id: str, request: dict, **extra) -> tuple[list[str], dict]:
        """The deltas and the last frame (a done event, or an error)."""
        await self.send(call_id, "Chat", request, **extra)
        deltas = []
        while True:
            f = await self.frame(call_id)
            if "event" in f and "delta" in f["event"]:
                deltas.append(f["event"]["delta"]["text"])
            elif "event" in f and "action" in f["event"]:
                assert not deltas, "an action frame must come before the first delta"
                self.actions.append(f["event"]["action"])
            else:
                return deltas, f


def _run(coro):
    return asyncio.run(coro)


async def _session(sock: Socket, call_id: str = "create", **extra) -> str:
    reply = await sock.unary(call_id, "CreateSession", {"persona": BRAKKA}, **extra)
    return reply["response"]["sessionId"]


@pytest.mark.slow
def test_chat_streams_deltas_that_make_the_done_text(server):
    async def play():
        async with connect(server.ws_url) as ws:
            sock = Socket(ws)
            created = await sock.unary(
                "c1", "CreateSession", {"persona": BRAKKA, "session_id": "ws-smith"}
            )  # proto names are accepted too
            assert created["response"]["sessionId"] == "ws-smith"
            assert created["response"]["persona"]["name"] == "Brakka"
            shot = {"data": base64.b64encode(SCENE.read_bytes()).decode(), "encoding": "PNG"}
            request = {"sessionId": "ws-smith", "text": "What do you see?", "screenshot": shot}
            deltas, last = await sock.chat("c2", {**request, "generation": {"maxTokens": 30}})
            done = last["event"]["done"]
            assert len(deltas) >= 3 and "".join(deltas) == done["text"]
            assert done["finishReason"] in ("stop", "length") and done["usage"]["completionTokens"] > 0
            assert done["timings"]["ttftMs"] > 0  # camelCase, as MessageToJson writes it
            stored = await sock.unary("c3", "GetSession", {"sessionId": "ws-smith"})
            turns = stored["response"]["turns"]
            assert [(t["user"], t["reply"]) for t in turns] == [("What do you see?", done["text"])]
            assert isinstance(turns[0]["createdUnixMs"], str)  # int64 is a string in the JSON mapping

    _run(play())


@pytest.mark.slow
def test_bad_requests_get_invalid_argument_naming_the_field_and_the_socket_goes_on(server):
    async def play():
        async with connect(server.ws_url) as ws:
            sock = Socket(ws)
            sid = await _session(sock)
            bad = [
                ("b1", {"sessionId": sid, "text": ""}, "text"),
                (
                    "b2",
                    {"sessionId": sid, "text": "hi", "generation": {"temperature": 9}},
                    "generation.temperature",
                ),
                (
                    "b3",
                    {
                        "sessionId": sid,
                        "text": "hi",
                        "screenshot": {"data": "bm90IGEgcG5n", "encoding": "PNG"},
                    },
                    "screenshot",
                ),
                ("b4", {"sessionId": sid, "txt": "hi"}, "txt"),
                (
                    "b5",
                    {"sessionId": sid, "text": "hi", "screenshot": {"encoding": "GIF"}},
                    "screenshot.encoding",
                ),
            ]
            for call_id, request, field in bad:
                deltas, last = await sock.chat(call_id, request)
                assert deltas == [] and last["error"]["code"] == "INVALID_ARGUMENT", last
                assert last["error"]["message"].startswith(field), last
            await ws.send("{not json")
            assert (await sock.frame())["error"]["code"] == "INVALID_ARGUMENT"
            await ws.send(b"\x00\x01")
            assert (await sock.frame())["error"]["message"].startswith("frame")
            unknown = await sock.unary("b6", "Shout", {})
            assert unknown["error"]["code"] == "INVALID_ARGUMENT" and "method" in unknown["error"]["message"]
            deltas, last = await sock.chat(
                "ok", {"sessionId": sid, "text": "Hello.", "generation": {"maxTokens": 6}}
            )
            assert "done" in last["event"] and "".join(deltas) == last["event"]["done"]["text"]
            stored = await sock.unary("get", "GetSession", {"sessionId": sid})
            assert [t["user"] for t in stored["response"]["turns"]] == ["Hello."]

    _run(play())


@pytest.mark.slow
def test_unknown_session_is_not_found(server):
    async def play():
        async with connect(server.ws_url) as ws:
            sock = Socket(ws)
            _, last = await sock.chat("n1", {"sessionId": "no-such-session", "text": "hi"})
            assert last["error"]["code"] == "NOT_FOUND"
            got = await sock.unary("n2", "GetSession", {"sessionId": "no-such-session"})
            assert got["error"]["code"] == "NOT_FOUND" and got["error"]["message"].startswith("session_id")
            persona = await sock.unary("n3", "GetPersona", {"id": "nobody"})
            assert persona["error"]["code"] == "NOT_FOUND"

    _run(play())


@pytest.mark.slow
def test_cancel_mid_stream_stores_nothing_while_another_call_streams_on(server):
    async def play():
        async with connect(server.ws_url) as ws:
            sock = Socket(ws)
            sid, other = await _session(sock, "s1"), await _session(sock, "s2")
            long = {
                "sessionId": sid,
                "text": "Tell me everything about swords.",
                "generation": {"maxTokens": 300},
            }
            await sock.send("long", "Chat", long)
            await sock.send(
                "side", "Chat", {"sessionId": other, "text": "Hello.", "generation": {"maxTokens": 12}}
            )
            for _ in range(2):
                assert "delta" in (await sock.frame("long"))["event"]
            await sock.send("long", "Chat", long)  # an id in flight cannot be reused; the first call goes on
            while "event" in (dup := await sock.frame("long")):
                assert "delta" in dup["event"]
            assert dup["error"]["code"] == "INVALID_ARGUMENT" and "in flight" in dup["error"]["message"]
            await ws.send(json.dumps({"id": "long", "cancel": True}))
            while "event" in (last := await sock.frame("long")):
                assert "delta" in last["event"]  # deltas already on their way, then the end
            assert last["error"]["code"] == "CANCELLED"
            while "event" in (side := await sock.frame("side")) and "delta" in side["event"]:
                pass
            assert "done" in side["event"]  # the other call on the socket was not disturbed
            _, after = await sock.chat(
                "after", {"sessionId": sid, "text": "Never mind.", "generation": {"maxTokens": 6}}
            )
            assert "done" in after["event"]
            stored = await sock.unary("get", "GetSession", {"sessionId": sid})
            assert [t["user"] for t in stored["response"]["turns"]] == ["Never mind."]
            # a cancel for a call that has ended is ignored
            await ws.send(json.dumps({"id": "after", "cancel": True}))
            listed = await sock.unary("list", "ListSessions", {"pageSize": 1000})
            assert sid in {s["sessionId"] for s in listed["response"]["sessions"]}

    _run(play())


@pytest.mark.slow
def test_closing_the_socket_cancels_its_chat(server):
    async def play():
        async with connect(server.ws_url) as ws:
            sock = Socket(ws)
            sid = await _session(sock)
            long = {
                "sessionId": sid,
                "text": "Sing me the longest song you know.",
                "generation": {"maxTokens": 400},
            }
            await sock.send("song", "Chat", long)
            assert "delta" in (await sock.frame("song"))["event"]
        async with connect(server.ws_url) as ws:  # the first socket is closed: its turn was dropped
            sock = Socket(ws)
            _, last = await sock.chat(
                "hi", {"sessionId": sid, "text": "Hello?", "generation": {"maxTokens": 4}}
            )
            assert "done" in last["event"]
            stored = await sock.unary("get", "GetSession", {"sessionId": sid})
            assert [t["user"] for t in stored["response"]["turns"]] == ["Hello?"]

    _run(play())


@pytest.fixture(scope="module")
def tls_pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"]
        + ["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.mark.slow
def test_api_key_is_enforced_and_tls_serves_wss(exported_int4, tmp_path, tls_pair):
    cert, key = tls_pair
    extra = ("--ws-port", "0", "--api-key", "s3cret", "--tls-cert", str(cert), "--tls-key", str(key))
    extra += ("--ws-max-message-mb", "1")
    trust = ssl.create_default_context(cafile=str(cert))

    async def play(url: str):
        async with connect(url, ssl=trust) as ws:
            sock = Socket(ws)
            for call_id, api_key in (("anon", None), ("wrong", "nope")):
                key = {"apiKey": api_key} if api_key else {}
                reply = await sock.unary(call_id, "CreateSession", {"persona": BRAKKA}, **key)
                assert reply["error"]["code"] == "UNAUTHENTICATED", reply
                _, last = await sock.chat(f"{call_id}-chat", {"sessionId": "x", "text": "hi"}, **key)
                assert last["error"]["code"] == "UNAUTHENTICATED"
            sid = await _session(sock, apiKey="s3cret")
            _, last = await sock.chat(
                "c", {"sessionId": sid, "text": "Hi.", "generation": {"maxTokens": 4}}, apiKey="s3cret"
            )
            assert "done" in last["event"]
        async with connect(url, ssl=trust, max_size=None) as ws:  # over --ws-max-message-mb: closed with 1009
            await ws.send(json.dumps({"id": "big", "method": "ListSessions", "pad": "x" * (1 << 20)}))
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), WAIT_S)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009

    with ServerProcess(exported_int4, tmp_path, *extra) as proc:
        assert any("websocket gateway (wss://, JSON, frames up to 1 MiB)" in line for line in proc.output)
        _run(play(f"wss://127.0.0.1:{proc.ws_port}"))


# --- Godot 3 (headless) ---------------------------------------------------------------------------------------


def _run_headless(
    godot: str, project: str, env: dict[str, str], script: str = "run_headless_godot3.gd"
) -> subprocess.CompletedProcess[str]:
    """The sample client under headless Godot 3, as a game would run it; its output as text."""
    return subprocess.run(
        [godot, "--path", project, "-s", script],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=WAIT_S,
    )


def _godot_project(tmp_path) -> tuple[str, dict[str, str]]:
    """A throwaway Godot project with the sample scripts, and an environment whose home folders are writable."""
    project = tmp_path / "godot-project"
    project.mkdir()
    for name in ("npc_client_godot3.gd", "run_headless_godot3.gd", "run_scene_godot3.gd"):
        shutil.copy(os.path.join(GODOT_DIR, name), project / name)
    (project / "project.godot").write_text(
        'config_version=4\n\n[application]\n\nconfig/name="npc-ws-check"\n'
    )
    home = tmp_path / "godot-home"
    env = {**os.environ, "HOME": str(home), "LANG": "en_US.UTF-8", "LC_ALL": "en_US.UTF-8"}
    for var, sub in (("XDG_DATA_HOME", "data"), ("XDG_CONFIG_HOME", "config"), ("XDG_CACHE_HOME", "cache")):
        (home / sub / "godot").mkdir(parents=True)
        env[var] = str(home / sub)
    return str(project), env


@pytest.mark.slow
def test_godot3_client_streams_a_reply_with_a_screenshot(server, tmp_path):
    godot = require_tools("godot3-server")["godot3-server"]
    project, env = _godot_project(tmp_path)
    shutil.copy(SCENE, os.path.join(project, "shot.png"))
    ferryman = {"tag": "ferryman", "name": "Old Tom the ferryman", "x": 0.2, "distance": 3}
    env.update(
        NPC_WS_URL=server.ws_url,
        NPC_SCREENSHOT=os.path.join(project, "shot.png"),
        NPC_MAX_TOKENS="40",
        NPC_SCENE=json.dumps([ferryman]),
    )
    run = _run_headless(godot, project, env)
    out = run.stdout  # Godot prints engine warnings (locale, folders) on stderr; the client's lines on stdout
    assert run.returncode == 0, out + run.stderr
    lines = out.splitlines()
    deltas = [json.loads(line[len("DELTA ") :]) for line in lines if line.startswith("DELTA ")]
    done = [json.loads(line[len("DONE ") :]) for line in lines if line.startswith("DONE ")]
    ttft = [float(line.split()[1]) for line in lines if line.startswith("TTFT_MS ")]
    total = [float(line.split()[1]) for line in lines if line.startswith("TOTAL_MS ")]
    assert len(deltas) >= 2 and len(done) == 1 and "".join(deltas) == done[0], out
    assert len(ttft) == 1 and len(total) == 1 and 0 < ttft[0] <= total[0], out
    seen = [json.loads(line[len("SEEN ") :]) for line in lines if line.startswith("SEEN ")]
    assert len(seen) == 1, out
    # the game's ferryman (score 1), and whatever the image head found in the meadow, each {tag, score, source}
    assert {"tag": "ferryman", "score": 1, "source": "game"} in seen[0], seen
    assert all(set(s) == {"tag", "score", "source"} and 0 < s["score"] <= 1 for s in seen[0]), seen
    emotion = [json.loads(line[len("EMOTION ") :]) for line in lines if line.startswith("EMOTION ")]
    assert len(emotion) == 1 and emotion[0]["label"] in EMOTIONS and 0 <= emotion[0]["intensity"] <= 1, out
    print(f"godot3 client: {len(deltas)} deltas, first after {ttft[0]:.0f} ms, done after {total[0]:.0f} ms")
    session_id = next(line.split()[1] for line in lines if line.startswith("SESSION "))

    async def stored():
        async with connect(server.ws_url) as ws:
            return await Socket(ws).unary("get", "GetSession", {"sessionId": session_id})

    assert _run(stored())["response"]["turns"][0]["reply"] == done[0]


@pytest.mark.slow
def test_godot3_client_bad_scene_entity_gets_invalid_argument_naming_the_field(server, tmp_path):
    godot = require_tools("godot3-server")["godot3-server"]
    project, env = _godot_project(tmp_path)
    env.update(NPC_WS_URL=server.ws_url, NPC_SCENE=json.dumps([{"tag": "slime"}, {"tag": "gem", "x": 2}]))
    run = _run_headless(godot, project, env)
    assert run.returncode == 1 and "ERROR c2 INVALID_ARGUMENT: scene[1].x: " in run.stdout, (
        run.stdout + run.stderr
    )
    assert "DONE " not in run.stdout


@pytest.mark.slow
def test_godot3_scene_sample_two_npcs_bicker_and_the_player_cuts_in(server, tmp_path):
    from npc_sdk.client import Client

    godot = require_tools("godot3-server")["godot3-server"]
    project, env = _godot_project(tmp_path)
    shutil.copy(SCENE, os.path.join(project, "shot.png"))
    env.update(NPC_WS_URL=server.ws_url, NPC_SCREENSHOT=os.path.join(project, "shot.png"))
    run = _run_headless(godot, project, env, "run_scene_godot3.gd")
    assert run.returncode == 0, run.stdout + run.stderr
    with Client(server.address, timeout=60) as client:
        check_bicker(run.stdout, client)


@pytest.mark.slow
def test_godot3_client_exits_non_zero_when_it_cannot_connect(tmp_path):
    godot = require_tools("godot3-server")["godot3-server"]
    project, env = _godot_project(tmp_path)
    env.update(NPC_WS_URL="ws://127.0.0.1:9", NPC_TIMEOUT_S="30")  # port 9 (discard): nothing listens
    run = _run_headless(godot, project, env)
    assert run.returncode != 0 and "ERROR " in run.stdout, run.stdout + run.stderr


@pytest.mark.slow
def test_action_and_emotion_frames(server):
    """A persona with a declared action: the action frame comes first, the done frame carries the emotion."""
    smith = {
        **BRAKKA,
        "actions": [
            {
                "name": "sharpen_weapon",
                "description": "sharpen the player's weapon",
                "examples": ["Can you sharpen my sword?", "Sharpen my blade, please."],
            }
        ],
    }

    async def play():
        async with connect(server.ws_url) as ws:
            sock = Socket(ws)
            reply = await sock.unary("create", "CreateSession", {"persona": smith})
            sid = reply["response"]["sessionId"]
            deltas, last = await sock.chat(
                "c1",
                {
                    "sessionId": sid,
                    "text": "Please sharpen my sword.",
                    "generation": {"maxTokens": 8},
                    "state": {"time_of_day": "night"},
                },
            )
            assert sock.actions == [{"name": "sharpen_weapon", "confidence": sock.actions[0]["confidence"]}]
            assert last["event"]["done"]["emotion"]["label"] in EMOTIONS
            _, bad = await sock.chat("c2", {"sessionId": sid, "text": "Hi", "state": {"mood": ""}})
            assert bad["error"]["code"] == "INVALID_ARGUMENT" and "state['mood']" in bad["error"]["message"]

    _run(play())


# --- Godot 4 (headless, from a Debian sid chroot) ------------------------------------------------------------


class Godot4Project:
    """A throwaway Godot 4 project inside the chroot, with the sample scripts, run as a game would run them."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.inside = f"/tmp/npc-godot4-{uuid.uuid4().hex[:8]}"  # path as Godot sees it
        self.path = os.path.join(root, self.inside.lstrip("/"))
        os.makedirs(os.path.join(self.path, "home"))
        for folder in (GODOT_DIR, CAPTURE_DIR):
            for name in os.listdir(folder):
                if name.endswith(".gd"):
                    shutil.copy(os.path.join(folder, name), os.path.join(self.path, name))
        with open(os.path.join(self.path, "project.godot"), "w") as fh:
            fh.write('config_version=5\n\n[application]\n\nconfig/name="npc-ws-check"\n')

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        clean = {"HOME": f"{self.inside}/home", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", **env}
        return subprocess.run(
            ["chroot", self.root, "env", "-i", *(f"{k}={v}" for k, v in clean.items()), "godot", "--headless",
             "--path", self.inside, *args],
            capture_output=True,
            text=True,
            timeout=WAIT_S,
        )  # fmt: skip

    def client(self, **env: str) -> subprocess.CompletedProcess[str]:
        return self.run("-s", "run_headless_godot4.gd", **env)

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


@pytest.fixture
def godot4():
    project = Godot4Project(require_godot4())
    yield project
    project.close()


def _lines(out: str, tag: str) -> list:
    return [json.loads(line[len(tag) + 1 :]) for line in out.splitlines() if line.startswith(tag + " ")]


@pytest.mark.slow
def test_godot4_client_streams_a_reply_with_a_screenshot(server, godot4):
    shutil.copy(SCENE, os.path.join(godot4.path, "shot.png"))
    ferryman = {"tag": "ferryman", "name": "Old Tom the ferryman", "x": 0.2, "distance": 3}
    run = godot4.client(
        NPC_WS_URL=server.ws_url,
        NPC_SCREENSHOT=f"{godot4.inside}/shot.png",
        NPC_MAX_TOKENS="40",
        NPC_SCENE=json.dumps([ferryman]),
    )
    out = run.stdout
    assert run.returncode == 0, out + run.stderr
    engine = next(line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("ENGINE "))
    assert engine.startswith("4."), engine  # really Godot 4, not the Godot 3 of the other tests
    deltas, done = _lines(out, "DELTA"), _lines(out, "DONE")
    assert len(deltas) >= 2 and len(done) == 1 and "".join(deltas) == done[0], out
    seen = _lines(out, "SEEN")
    assert len(seen) == 1 and {"tag": "ferryman", "score": 1, "source": "game"} in seen[0], out
    assert any(s["source"] in ("screenshot", "both") for s in seen[0]), seen  # the picture reached the NPC
    emotion = _lines(out, "EMOTION")
    assert len(emotion) == 1 and emotion[0]["label"] in EMOTIONS, out
    session_id = next(line.split()[1] for line in out.splitlines() if line.startswith("SESSION "))

    async def stored():
        async with connect(server.ws_url) as ws:
            return await Socket(ws).unary("get", "GetSession", {"sessionId": session_id})

    assert _run(stored())["response"]["turns"][0]["reply"] == done[0]
    ttft = float(next(line.split()[1] for line in out.splitlines() if line.startswith("TTFT_MS ")))
    print(f"godot {engine}: {len(deltas)} deltas, first after {ttft:.0f} ms")


@pytest.mark.slow
def test_godot4_client_cancels_a_reply_and_nothing_is_stored(server, godot4):
    run = godot4.client(NPC_WS_URL=server.ws_url, NPC_CANCEL="1", NPC_MAX_TOKENS="200")
    out = run.stdout
    assert run.returncode == 0 and "CANCELLED CANCELLED" in out and "DONE " not in out, out + run.stderr
    session_id = next(line.split()[1] for line in out.splitlines() if line.startswith("SESSION "))

    async def stored():
        async with connect(server.ws_url) as ws:
            return await Socket(ws).unary("get", "GetSession", {"sessionId": session_id})

    assert not _run(stored())["response"].get("turns")


@pytest.mark.slow
def test_godot4_client_gets_an_error_frame_naming_the_field(server, godot4):
    run = godot4.client(
        NPC_WS_URL=server.ws_url, NPC_SCENE=json.dumps([{"tag": "slime"}, {"tag": "gem", "x": 2}])
    )
    assert run.returncode == 1 and "ERROR c2 INVALID_ARGUMENT: scene[1].x: " in run.stdout, (
        run.stdout + run.stderr
    )


@pytest.mark.slow
def test_godot4_scene_sample_two_npcs_bicker_and_the_player_cuts_in(server, godot4):
    from npc_sdk.client import Client

    shutil.copy(SCENE, os.path.join(godot4.path, "shot.png"))
    run = godot4.run(
        "-s", "run_scene_godot4.gd", NPC_WS_URL=server.ws_url, NPC_SCREENSHOT=f"{godot4.inside}/shot.png"
    )
    assert run.returncode == 0, run.stdout + run.stderr
    with Client(server.address, timeout=60) as client:
        check_bicker(run.stdout, client)


@pytest.mark.slow
def test_every_gdscript_file_type_checks_under_its_own_engine(godot4, tmp_path):
    """`--check-only` with the engine each file is written for, and a Godot 3 leftover caught by Godot 4."""
    godot3 = require_tools("godot3-server")["godot3-server"]
    scripts = sorted(name for name in os.listdir(GODOT_DIR) if name.endswith(".gd"))
    expected = {"npc_client_godot4.gd", "run_headless_godot4.gd", "npc_client_godot3.gd"}
    expected |= {"npc_server_process.gd", "run_launcher_godot4.gd"}  # the launcher: Godot 4.3+ only
    expected |= {"run_scene_godot4.gd", "run_scene_godot3.gd"}  # the scene sample
    assert expected <= set(scripts)
    project3, env3 = _godot_project(tmp_path)
    for name in scripts:
        if "godot3" not in name:  # *_godot3.gd for Godot 3; everything else is Godot 4
            run = godot4.run("--check-only", "-s", name)
        else:
            shutil.copy(os.path.join(GODOT_DIR, name), os.path.join(project3, name))
            run = subprocess.run(
                [godot3, "--path", project3, "--check-only", "-s", name],
                env=env3, capture_output=True, text=True, timeout=WAIT_S,
            )  # fmt: skip
        assert run.returncode == 0, f"{name}: {run.stdout}{run.stderr}"
    for name in sorted(n for n in os.listdir(CAPTURE_DIR) if n.endswith(".gd")):  # the dataset capture tool
        run = godot4.run("--check-only", "-s", name)
        assert run.returncode == 0, f"{name}: {run.stdout}{run.stderr}"
    leftover = godot4.run("--check-only", "-s", "npc_client_godot3.gd")  # Godot 3 API under Godot 4
    assert leftover.returncode != 0 and "Parse error" in leftover.stdout + leftover.stderr


@pytest.mark.slow
def test_a_scene_over_the_gateway_streams_per_speaker_events_and_ends_with_an_end_frame(server):
    async def play():
        async with connect(server.ws_url) as ws:
            sock = Socket(ws)
            smith = await _session(sock, "s1")
            inn = (await sock.unary("s2", "CreateSession", {"persona": {"name": "Mira"}}))["response"][
                "sessionId"
            ]
            scene = await sock.unary("s3", "CreateScene", {"sessionIds": [smith, inn]})
            scene_id = scene["response"]["sceneId"]
            await sock.send(
                "s4",
                "SceneChat",
                {"sceneId": scene_id, "text": "Mira, a room?", "generation": {"maxTokens": 6}},
            )
            frames = []
            while "end" not in (frames[-1] if frames else {}):
                frames.append(await sock.frame("s4"))
            events = [f["event"] for f in frames[:-1]]
            assert events and all(e["sessionId"] == inn and e["speaker"] == "Mira" for e in events)
            assert "done" in events[-1]["event"]
            await sock.send(
                "s5", "SceneChat", {"sceneId": scene_id, "text": "A bell rings.", "noReply": True}
            )
            assert await sock.frame("s5") == {"id": "s5", "end": True}  # nobody answers: the end frame alone

    _run(play())
