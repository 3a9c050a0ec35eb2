"""Kill the server with SIGKILL at random points while turns stream, 20 times: no finished turn is ever lost."""

from __future__ import annotations

import signal
import sqlite3
import threading

import grpc
import pytest

from npc_sdk.client import Client
from npc_sdk.demo import DEMO_PERSONA
from npc_sdk.runtime.events import Done

from ..server_process import ServerProcess

pytestmark = pytest.mark.slow

KILLS = 20


class RoundWatch:
    """What the players of one round have seen: a Done, and replies that began streaming and did not finish."""

    def __init__(self) -> None:
        self.done_seen = threading.Event()
        self.streaming = threading.Event()
        self._open = 0
        self._lock = threading.Lock()

    def began(self) -> None:
        with self._lock:
            self._open += 1
        self.streaming.set()

    def finished(self, had_begun: bool) -> None:
        with self._lock:
            self._open -= had_begun
        self.done_seen.set()

    def open_turns(self) -> int:
        with self._lock:
            return self._open


def test_sigkill_mid_stream_never_loses_a_finished_turn(exported_int4, tmp_path):
    """Rounds alternate between two kill points, chosen by events rather than sleeps, so a slow machine sees
    both: right after a Done reached the client (that turn must survive), and while a reply is streaming (that
    turn may be lost, but nothing before it)."""
    confirmed: dict[str, list[str]] = {}  # session -> replies whose done event reached the client
    sessions: list[str] = []
    after_done_kills = mid_stream_kills = 0
    for round_no in range(KILLS):
        kill_after_done = round_no % 2 == 0
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

            watch = RoundWatch()

            def play(sid: str, watch: RoundWatch = watch, round_no: int = round_no) -> None:
                try:
                    for i in range(3):
                        with client.chat(
                            sid, f"Tell me something, round {round_no} line {i}.", max_tokens=40
                        ) as st:
                            started = False
                            for event in st:
                                if isinstance(event, Done):
                                    confirmed[sid].append(event.text)
                                    watch.finished(started)
                                elif not started:
                                    started = True
                                    watch.began()
                except grpc.RpcError:
                    pass  # the server died under us: expected

            players = [threading.Thread(target=play, args=(sid,)) for sid in sessions[-2:]]
            for p in players:
                p.start()
            trigger = watch.done_seen if kill_after_done else watch.streaming
            assert trigger.wait(300), f"round {round_no}: no {'done' if kill_after_done else 'delta'} arrived"
            mid = watch.open_turns() > 0
            proc.stop(signal.SIGKILL)
            after_done_kills += kill_after_done
            mid_stream_kills += mid and not kill_after_done
            for p in players:
                p.join(30)

    with ServerProcess(exported_int4, tmp_path) as proc, Client(proc.address, timeout=60) as client:
        for sid in sessions:
            stored = [t.reply for t in client.get_session(sid).turns]
            assert stored[: len(confirmed[sid])] == confirmed[sid]
            assert all(reply.strip() for reply in stored)
    total = sum(len(v) for v in confirmed.values())
    print(
        f"\n{KILLS} kills ({after_done_kills} after a done, {mid_stream_kills} mid-stream), "
        f"{len(sessions)} sessions, {total} finished turns kept"
    )
    assert total >= after_done_kills  # every after-done round kept at least its confirmed turn
    assert mid_stream_kills >= 1  # and some kills did land inside a streaming reply
    db = sqlite3.connect(tmp_path / "sessions.sqlite3")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
