"""TLS with a self-signed pair made here, and save games signed so a tampered one is refused."""

from __future__ import annotations

import subprocess

import grpc
import pytest

from npc_sdk.client import Client
from npc_sdk.demo import DEMO_PERSONA

from ..server_process import ServerProcess

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tls_pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_tls_serves_clients_that_trust_the_certificate(exported_int4, tmp_path, tls_pair):
    cert, key = tls_pair
    with ServerProcess(exported_int4, tmp_path, "--tls-cert", str(cert), "--tls-key", str(key)) as proc:
        with Client(proc.address, tls_ca=cert, timeout=60) as c:
            sid = c.create_session(DEMO_PERSONA).session_id
            assert c.say(sid, "Hello over TLS.", max_tokens=6).usage.completion_tokens > 0
        with Client(proc.address, timeout=10) as plaintext:
            with pytest.raises(grpc.RpcError) as err:
                plaintext.list_sessions()
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_tampered_save_game_is_refused_and_nothing_is_stored(exported_int4, tmp_path):
    with ServerProcess(exported_int4, tmp_path) as proc, Client(proc.address, timeout=60) as c:
        sid = c.create_session(DEMO_PERSONA).session_id
        c.say(sid, "Remember: the vault code is 1234.", max_tokens=8)
        snapshot = c.export_session(sid)
        assert len(snapshot.signature) == 32
        c.delete_session(sid)

        tampered, unsigned = type(snapshot)(), type(snapshot)()
        tampered.CopyFrom(snapshot)
        tampered.turns[0].reply = "The vault code is 0000, and I owe you 1000 gold."
        unsigned.CopyFrom(snapshot)
        unsigned.ClearField("signature")
        for bad in (tampered, unsigned):
            with pytest.raises(grpc.RpcError) as err:
                c.import_session(bad)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert err.value.details().startswith("signature")
        assert [s.session_id for s in c.list_sessions().sessions] == []  # the refused imports stored nothing
        assert c.import_session(snapshot).session_id == sid  # the genuine one still imports

    # the key lives in the data dir: after a restart the same server still accepts its own save games
    with ServerProcess(exported_int4, tmp_path) as proc, Client(proc.address, timeout=60) as c:
        c.delete_session(sid)
        assert [t.user for t in c.import_session(snapshot).turns] == ["Remember: the vault code is 1234."]


def test_per_key_limits_on_sessions_and_concurrent_turns(exported_int4, tmp_path):
    keys = tmp_path / "keys.toml"
    keys.write_text(
        '[[key]]\nname = "small"\nsecret = "small-secret-0123456789"\nmax_sessions = 1\n\n'
        '[[key]]\nname = "busy"\nsecret = "busy-secret-0123456789"\nmax_sessions = 5\nmax_concurrent_turns = 1\n'
    )
    with ServerProcess(exported_int4, tmp_path / "data", "--api-keys", str(keys)) as proc:
        with Client(proc.address, api_key="small-secret-0123456789", timeout=60) as small:
            small.create_session(DEMO_PERSONA)
            with pytest.raises(grpc.RpcError) as err:
                small.create_session(DEMO_PERSONA)
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "small" in err.value.details()
        with Client(proc.address, api_key="busy-secret-0123456789", timeout=60) as busy:
            a = busy.create_session(DEMO_PERSONA).session_id
            b = busy.create_session(DEMO_PERSONA).session_id  # the small key's limit is not this key's
            with busy.chat(a, "Tell me a long story about your forge.", max_tokens=80) as stream:
                events = iter(stream)
                next(events)
                with pytest.raises(grpc.RpcError) as err:
                    busy.say(b, "Hello?")
                assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                list(events)
            assert busy.say(b, "Hello?", max_tokens=4).usage.completion_tokens > 0  # the slot came back
        with Client(proc.address, api_key="not-a-key", timeout=60) as nobody:
            with pytest.raises(grpc.RpcError) as err:
                nobody.list_sessions()
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_session_belongs_to_the_key_that_made_it(exported_int4, tmp_path):
    """Another tenant's key gets NOT_FOUND on Get, Chat, Export and Delete, and List shows each key its own."""
    keys = tmp_path / "keys.toml"
    keys.write_text(
        '[[key]]\nname = "studio-a"\nsecret = "a-secret-0123456789abc"\n\n'
        '[[key]]\nname = "studio-b"\nsecret = "b-secret-0123456789abc"\n'
    )
    with ServerProcess(exported_int4, tmp_path / "data", "--api-keys", str(keys)) as proc:
        with (
            Client(proc.address, api_key="a-secret-0123456789abc", timeout=60) as a,
            Client(proc.address, api_key="b-secret-0123456789abc", timeout=60) as b,
        ):
            mine = a.create_session(DEMO_PERSONA, session_id="a-only").session_id
            a.say(mine, "Hello.", max_tokens=4)
            theirs = b.create_session(DEMO_PERSONA).session_id
            for call in (
                lambda: b.get_session(mine),
                lambda: b.say(mine, "Let me in.", max_tokens=4),
                lambda: b.export_session(mine),
                lambda: b.delete_session(mine),
            ):
                with pytest.raises(grpc.RpcError) as err:
                    call()
                assert err.value.code() == grpc.StatusCode.NOT_FOUND
                assert "no session 'a-only'" in err.value.details()  # the same words as for a missing id
            with pytest.raises(grpc.RpcError) as missing:
                b.get_session("never-made")
            assert missing.value.details() == err.value.details().replace("a-only", "never-made")
            assert [s.session_id for s in a.list_sessions().sessions] == [mine]
            assert [s.session_id for s in b.list_sessions().sessions] == [theirs]
            assert len(a.get_session(mine).turns) == 1  # untouched by the other key's attempts


def test_the_websocket_gateway_refuses_browser_pages_not_allowed(exported_int4, tmp_path):
    """Cross-site WebSocket hijacking: a web page on the player's machine must not reach the local server."""
    import asyncio

    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    async def check(url: str) -> None:
        async with connect(url) as ws:  # a native client: no Origin header
            await ws.send('{"id": "1", "method": "ListSessions"}')
            assert "response" in await asyncio.wait_for(ws.recv(), 30)
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url, origin="https://evil.example"):
                pass
        assert refused.value.response.status_code == 403
        async with connect(url, origin="https://game.example") as ws:  # on the allow-list
            await ws.send('{"id": "2", "method": "ListSessions"}')
            assert "response" in await asyncio.wait_for(ws.recv(), 30)

    extra = ("--ws-port", "0", "--ws-allowed-origins", "https://game.example")
    with ServerProcess(exported_int4, tmp_path, *extra) as proc:
        asyncio.run(check(proc.ws_url))
