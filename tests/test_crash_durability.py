"""Kill the server with SIGKILL at random points while turns stream, 20 times: no finished turn is ever lost."""

from __future__ import annotations

import random
import signal
import sqlite3
import threading
import time

import grpc
import pytest

from npc_sdk.client import Client
from npc_sdk.demo import DEMO_PERSONA
from npc_sdk.events import Done

from .server_process import ServerProcess

pytestmark = pytest.mark.slow

KILLS = 20


def test_sigkill_mid_stream_never_loses_a_finished_turn(exported_int4, tmp_path):
    rng = random.Random(1234)
    confirmed: dict[str, list[str]] = {}  # session -> replies whose done event reached the client
    sessions: list[str] = []
    for round_no in range(KILLS):
        with ServerProcess(exported_int4, tmp_path) as proc, Client(proc.address, timeout=60) as client:
            if round_no % 5 == 0:
                sid = client.create_session(DEMO_PERSONA).session_id
                sessions.append(sid)
                confirmed[sid] = []
            # every stored turn so far is intact after the previous kill
            for sid in sessions:
                stored = [t.reply for t in client.get_session(sid).turns]
                assert stored[: len(confirmed[sid])] == confirmed[sid], (round_no, sid)
                assert (
                    len(stored) <= len(confirmed[sid]) + 1
                )  # at most the one killed between commit and send
                confirmed[sid] = stored  # a stored turn counts from now on, whether its done arrived or not

            def play(sid: str, round_no: int = round_no) -> None:
                try:
                    for i in range(3):
                        with client.chat(
                            sid, f"Tell me something, round {round_no} line {i}.", max_tokens=40
                        ) as st:
                            for event in st:
                                if isinstance(event, Done):
                                    confirmed[sid].append(event.text)
                except grpc.RpcError:
                    pass  # the server died under us: expected

            players = [threading.Thread(target=play, args=(sid,)) for sid in sessions[-2:]]
            for p in players:
                p.start()
            time.sleep(rng.uniform(0.05, 1.5))
            proc.stop(signal.SIGKILL)
            for p in players:
                p.join(30)

    with ServerProcess(exported_int4, tmp_path) as proc, Client(proc.address, timeout=60) as client:
        for sid in sessions:
            stored = [t.reply for t in client.get_session(sid).turns]
            assert stored[: len(confirmed[sid])] == confirmed[sid]
            assert all(reply.strip() for reply in stored)
    total = sum(len(v) for v in confirmed.values())
    print(f"\n{KILLS} kills, {len(sessions)} sessions, {total} finished turns kept")
    assert total >= 5  # turns did finish between the kills: the test exercised both outcomes
    db = sqlite3.connect(tmp_path / "sessions.sqlite3")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
