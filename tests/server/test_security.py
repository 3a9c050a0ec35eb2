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
