"""The studio's guards without a browser or a model: the persona folder's path guard, the Origin and Host checks
on every request, the studio's methods over files, and the rewound save game's signature."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from google.protobuf import json_format
from websockets.datastructures import Headers
from websockets.http11 import Request

from npc_sdk._proto.npc.v1 import npc_pb2 as pb
from npc_sdk.errors import InvalidInputError
from npc_sdk.runtime.generation import GenerationConfig
from npc_sdk.server.api_keys import ApiKey
from npc_sdk.server.snapshots import read_snapshot, sign_snapshot
from npc_sdk.server.ws_gateway import CallError, LocalCall, parse_frame
from npc_sdk.studio.app import StudioGateway
from npc_sdk.studio.folder import OutsideFolder, PersonaFolder
from npc_sdk.studio.methods import StudioMethods

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "personas"
KEY = b"k" * 32


@pytest.fixture
def folder(tmp_path) -> PersonaFolder:
    root = tmp_path / "personas"
    root.mkdir()
    for name in ("brakka.toml", "villager.toml"):
        (root / name).write_text((SAMPLES / name).read_text())
    (tmp_path / "secret.toml").write_text('name = "Secret"\n')
    return PersonaFolder(root)


# ---- the path guard ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "../secret.toml",
        "..",
        "/etc/passwd",
        "sub/brakka.toml",
        "..\\secret.toml",
        ".hidden.toml",
        "brakka.txt",
        "",
        None,
        "brakka.toml/../../secret.toml",
    ],
)
def test_names_outside_the_persona_folder_are_refused(folder, name):
    with pytest.raises(OutsideFolder) as err:
        folder.path(name)
    assert str(err.value).startswith("name: ")


def test_a_symbolic_link_out_of_the_folder_is_refused_and_not_listed(folder, tmp_path):
    os.symlink(tmp_path / "secret.toml", folder.root / "escape.toml")
    os.symlink(folder.root / "villager.toml", folder.root / "alias.toml")  # inside: allowed
    with pytest.raises(OutsideFolder, match="leads outside the persona folder"):
        folder.path("escape.toml")
    assert folder.path("alias.toml") == folder.root / "alias.toml"
    assert [f.name for f in folder.files()] == ["alias.toml", "brakka.toml", "villager.toml"]


def test_files_inside_are_read_checked_and_written_atomically(folder):
    text, editable = folder.read("brakka.toml")
    assert editable and text.startswith('extends = "villager"')
    broken = text.replace("name = ", "mood = 3\nname = ", 1)  # a top-level key on line 2
    persona, problems = folder.check("brakka.toml", broken)
    assert persona is None and [(p.line, p.field) for p in problems] == [(2, "persona.mood")]
    assert folder.check("brakka.toml")[0].name == "Brakka"  # the file itself is untouched
    folder.write("fresh.toml", 'name = "Fresh"\n')
    assert folder.check("fresh.toml")[0].id == "fresh"
    assert not [p for p in folder.root.iterdir() if "partial" in p.name]
    with pytest.raises(OutsideFolder, match="only .toml and .json"):
        folder.write("card.png", "x")


# ---- Origin and Host --------------------------------------------------------------------------------------------


def _gateway() -> StudioGateway:
    return StudioGateway(host="127.0.0.1", port=8123, scenes={})


def _request(method: str = "GET", path: str = "/", **headers: str) -> Request:
    fields = {"Host": "127.0.0.1:8123", **{k.replace("_", "-"): v for k, v in headers.items()}}
    return Request(path, Headers(list(fields.items())), method)


WS = {"Upgrade": "websocket", "Connection": "Upgrade"}


@pytest.mark.parametrize(
    "request_, refused",
    [
        (_request(), False),  # the page itself: a plain GET
        (_request(Origin="http://evil.example"), False),  # a GET of a static file harms no one
        (_request("GET", "/ws", Origin="http://127.0.0.1:8123", **WS), False),
        (_request("GET", "/ws", Origin="http://evil.example", **WS), True),
        (_request("GET", "/ws", Origin="http://127.0.0.1:9999", **WS), True),  # another port: another origin
        (_request("GET", "/ws", Origin="null", **WS), True),  # a sandboxed frame or a file:// page
        (_request("GET", "/ws", **WS), True),  # no Origin: not the page
        (_request("POST", "/", Origin="http://evil.example"), True),
        (_request("POST", "/"), True),
        (_request("GET", "/", Host="evil.example:8123"), True),  # DNS rebinding: a foreign name for loopback
        (_request("GET", "/ws", Host="localhost:8123", Origin="http://localhost:8123", **WS), False),
        (_request("GET", "/ws", Host="localhost:8123", Origin="http://127.0.0.1:8123", **WS), True),
    ],
)
def test_only_the_pages_own_origin_may_open_the_socket_or_send_anything_but_get(request_, refused):
    reason = _gateway().allowed(request_)
    assert (reason is not None) == refused, reason


def _status(request: Request) -> int:
    response = asyncio.run(_gateway().process_request(None, request))  # type: ignore[arg-type]
    return 101 if response is None else response.status_code


def test_refused_requests_get_403_and_only_get_is_served():
    assert _status(_request("GET", "/ws", Origin="http://evil.example", **WS)) == 403
    assert _status(_request("POST", "/", Origin="http://evil.example")) == 403
    assert _status(_request("POST", "/", Origin="http://127.0.0.1:8123")) == 405
    assert (
        _status(_request("GET", "/ws", Origin="http://127.0.0.1:8123", **WS)) == 101
    )  # the handshake goes on
    assert _status(_request("GET", "/other", Origin="http://127.0.0.1:8123", **WS)) == 404
    assert _status(_request("GET", "/")) == 200
    assert _status(_request("GET", "/studio.js")) == 200
    assert _status(_request("GET", "/../README.md")) == 404
    assert _status(_request("GET", "/scenes/../../cli.py")) == 404


def test_static_files_hold_no_key_and_forbid_inline_script():
    response = asyncio.run(_gateway().process_request(None, _request()))  # type: ignore[arg-type]
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe" not in csp
    static = Path(__file__).resolve().parents[2] / "npc_sdk" / "studio" / "static"
    assert not any("apiKey:" in p.read_text() and "sk-" in p.read_text() for p in static.iterdir())


# ---- the studio's methods ---------------------------------------------------------------------------------------


def _methods(folder: PersonaFolder, keys: list[ApiKey] = ()) -> StudioMethods:
    return StudioMethods(folder, None, list(keys), [], GenerationConfig(), "model", KEY)  # type: ignore[arg-type]


def _call(methods: StudioMethods, name: str, request: dict, key: str | None = None) -> dict:
    return asyncio.run(methods.table()[name](request, key))


def test_the_methods_refuse_paths_outside_the_folder_and_calls_without_the_key(folder):
    methods = _methods(folder, [ApiKey("default", "s" * 16)])
    with pytest.raises(CallError) as err:
        _call(methods, "ReadFile", {"name": "brakka.toml"})
    assert err.value.code == "UNAUTHENTICATED"
    for name in ("../secret.toml", "/etc/passwd"):
        with pytest.raises(CallError) as err:
            _call(methods, "ReadFile", {"name": name}, "s" * 16)
        assert err.value.code == "PERMISSION_DENIED" and "persona" in str(err.value)
    with pytest.raises(CallError) as err:
        _call(methods, "SaveFile", {"name": "../x.toml", "text": 'name = "X"'}, "s" * 16)
    assert err.value.code == "PERMISSION_DENIED"
    assert not (folder.root.parent / "x.toml").exists()
    with pytest.raises(CallError) as err:
        _call(methods, "ReadFile", {"name": "missing.toml"}, "s" * 16)
    assert err.value.code == "NOT_FOUND"


def test_check_and_save_report_problems_at_their_line(folder):
    methods = _methods(folder)
    text = 'name = "Tess"\n\n[generation]\ntemperature = "hot"\n'
    found = _call(methods, "CheckFile", {"name": "tess.toml", "text": text})
    assert found["persona"] is None
    [problem] = found["problems"]
    assert problem["line"] == 3 and problem["text"].startswith("tess.toml:3: persona.generation: ")
    with pytest.raises(CallError) as err:
        _call(methods, "SaveFile", {"name": "brakka.toml", "text": text})
    assert err.value.code == "ALREADY_EXISTS"
    saved = _call(methods, "SaveFile", {"name": "tess.toml", "text": text.replace('"hot"', "0.5")})
    assert saved["problems"] == [] and saved["persona"] == {"id": "tess", "name": "Tess"}
    as_json = _call(methods, "PersonaJson", {"name": "tess.toml"})["persona"]
    assert as_json["name"] == "Tess" and as_json["generation"]["temperature"] == 0.5


def _snapshot(turns: int) -> dict:
    snap = pb.SessionSnapshot(
        format_version=1,
        session_id="s1",
        persona=pb.Persona(name="Brakka"),
        turns=[pb.Turn(user=f"line {i}", reply=f"reply {i}", created_unix_ms=i) for i in range(turns)],
    )
    snap.signature = sign_snapshot(snap, KEY)
    return json_format.MessageToDict(snap)


def test_a_rewound_save_game_is_a_signed_prefix_and_a_tampered_one_is_refused(folder):
    methods = _methods(folder)
    rewound = _call(methods, "RewindSnapshot", {"snapshot": _snapshot(3), "keep": 2})["snapshot"]
    session_id, _, turns = read_snapshot(json_format.ParseDict(rewound, pb.SessionSnapshot()), KEY)
    assert session_id == "s1" and [t.user for t in turns] == ["line 0", "line 1"]
    tampered = _snapshot(3)
    tampered["turns"][0]["reply"] = "something the server never said"
    with pytest.raises(InvalidInputError, match="signature"):
        _call(methods, "RewindSnapshot", {"snapshot": tampered, "keep": 3})


def test_local_methods_are_told_apart_from_npc_service_calls():
    frame = json.dumps({"id": "1", "method": "ReadFile", "request": {"name": "a.toml"}, "apiKey": "k"})
    assert parse_frame(frame, {"ReadFile"}) == LocalCall("1", "ReadFile", {"name": "a.toml"}, "k")
    with pytest.raises(Exception, match="unknown method 'ReadFile'"):
        parse_frame(frame)
