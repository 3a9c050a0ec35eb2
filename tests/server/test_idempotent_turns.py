"""Idempotent turns (ChatRequest.turn_id) and the Python client's retries, on real server processes.

A retry of a committed turn replays it; a retry of a running turn waits for it; a client whose server is killed
mid-reply retries with the same turn_id against the restarted server and the turn is stored exactly once.
"""

from __future__ import annotations

import signal
import socket
import threading

import grpc
import pytest

from npc_sdk.client import Client, RetryPolicy
from npc_sdk.demo import DEMO_PERSONA
from npc_sdk.runtime.events import Delta, Done

from ..server_process import ServerProcess

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_retried_turn_id_replays_the_stored_reply(exported_int4, tmp_path):
    with ServerProcess(exported_int4, tmp_path) as proc, Client(proc.address, timeout=120) as c:
        sid = c.create_session(DEMO_PERSONA).session_id
        first = c.say(sid, "Good evening, smith.", turn_id="t-1", max_tokens=10)
        again = c.say(sid, "Good evening, smith.", turn_id="t-1", max_tokens=10)
        assert not first.replayed and again.replayed and again.text == first.text
        assert again.usage.completion_tokens == 0 and again.emotion is not None
        assert [t.reply for t in c.get_session(sid).turns] == [first.text]  # stored once
        with pytest.raises(grpc.RpcError) as err:
            c.say(sid, "Something else.", turn_id="t-1", retry=None)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and err.value.details().startswith(
            "turn_id:"
        )
        with pytest.raises(grpc.RpcError) as bad:
            c.say(sid, "Hi", turn_id="no spaces allowed", retry=None)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_retry_while_the_turn_runs_waits_for_it(exported_int4, tmp_path):
    with ServerProcess(exported_int4, tmp_path) as proc, Client(proc.address, timeout=120) as c:
        sid = c.create_session(DEMO_PERSONA).session_id
        line = "Tell me a long story about your forge."
        with c.chat(sid, line, turn_id="long", max_tokens=60, temperature=0.0) as stream:
            events = iter(stream)
            next(e for e in events if isinstance(e, Delta))  # the first attempt is decoding
            second: list[Done] = []
            waiter = threading.Thread(
                target=lambda: second.append(c.say(sid, line, turn_id="long", retry=None))
            )
            waiter.start()
            done = next(e for e in events if isinstance(e, Done))
            list(events)
        waiter.join(120)
        assert second and second[0].replayed and second[0].text == done.text
        assert len(c.get_session(sid).turns) == 1


def test_the_client_retries_across_a_server_killed_mid_reply(exported_int4, tmp_path):
    port = _free_port()
    data = tmp_path / "data"
    first = ServerProcess(exported_int4, data, "--port", str(port)).start()
    second: list[ServerProcess] = []
    try:
        with Client(first.address, timeout=60) as c:
            sid = c.create_session(DEMO_PERSONA).session_id
            policy = RetryPolicy(attempts=40, deadline_s=180, backoff_s=0.25)
            with c.chat(sid, "What do you make of the weather?", retry=policy, max_tokens=24) as stream:
                events = iter(stream)
                before = next(e for e in events if isinstance(e, Delta)).snapshot
                first.stop(signal.SIGKILL)  # mid-reply: nothing of this turn was stored

                def restart() -> None:
                    second.append(ServerProcess(exported_int4, data, "--port", str(port)).start())

                threading.Thread(target=restart).start()
                rest = list(events)
            done = stream.done
            assert done is not None and stream.attempts >= 2
            assert done.text.startswith(before) and stream.text == done.text  # no text streamed twice
            assert any(isinstance(e, Delta) for e in rest)
            turns = c.get_session(sid).turns
            assert [t.reply for t in turns] == [done.text]  # exactly once, none lost
    finally:
        for proc in [first, *second]:
            if proc.proc and proc.proc.poll() is None:
                proc.stop(signal.SIGKILL)
