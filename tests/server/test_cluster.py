"""Cluster mode on one machine: a Ray cluster of a head and two worker nodes, two NpcReplica replicas (one per
worker), a front door (`npc-sdk serve --cluster`) and PostgreSQL. Sessions stay on one replica; killing a worker
node while a turn streams loses nothing: the client retries with its turn_id, the surviving replica rebuilds the
session from the store, and every turn is stored exactly once."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from npc_sdk.personas.persona import Persona

from ..server_process import ServerProcess
from .test_store import _postgres_url

pytestmark = pytest.mark.slow

SESSIONS = 20
LINES = ("Good evening. What do you sell?", "Is the mine road safe at night?", "Tell me about the old tower.")
GREEDY = {"max_tokens": 12, "temperature": 0.0}
LONG = {"max_tokens": 200, "temperature": 0.0}  # the turn that is streaming when its node dies
OBJECT_STORE = 80 * 1024 * 1024


def _persona(i: int) -> Persona:
    # a persona per session: no replica has its block cached, so a rebuilt session prefills exactly as a fresh
    # single-process run does, and their greedy replies can be compared token for token
    return Persona(name=f"Smith {i}", description=f"A gruff village blacksmith, number {i} of the guild.")


@pytest.fixture
def postgres_schema():
    import psycopg

    url = _postgres_url()
    schema = "cl_" + uuid.uuid4().hex[:12]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield url, schema, f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_sessions_stay_on_a_replica_and_survive_a_worker_node_dying(exported_int4, tmp_path, postgres_schema):
    import psycopg
    import ray
    from ray.cluster_utils import Cluster

    from npc_sdk.client import Client, RetryPolicy
    from npc_sdk.runtime.conversation import Conversation
    from npc_sdk.runtime.generation import GenerationConfig
    from npc_sdk.runtime.onnx_model import OnnxNpcModel
    from npc_sdk.server.store import open_store

    url, schema, target = postgres_schema
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 2, "object_store_memory": OBJECT_STORE, "include_dashboard": False},
    )
    workers = [
        cluster.add_node(num_cpus=1, resources={"npc_replica": 1}, object_store_memory=OBJECT_STORE)
        for _ in range(2)
    ]
    cluster.wait_for_nodes()
    front = ServerProcess(
        exported_int4,
        tmp_path / "front",
        "--store",
        target,
        "--cluster",
        cluster.address,
        "--replicas",
        "2",
        "--replica-threads",
        "1",
        "--replica-resource",
        "npc_replica",
        "--slots",
        "4",
    )
    try:
        front.start(timeout=400)
        retry = RetryPolicy(attempts=6, deadline_s=300, backoff_s=0.5)
        with Client(front.address, timeout=300) as client:
            sids = [client.create_session(_persona(i), f"s{i:02d}").session_id for i in range(SESSIONS)]
            placed: dict[str, set[str]] = {sid: set() for sid in sids}

            attempts: dict[str, int] = {}

            def turn(sid: str, k: int, on_first_delta=None, options=GREEDY) -> str:
                with client.chat(sid, LINES[k], turn_id=f"{sid}-t{k}", retry=retry, **options) as stream:
                    for event in stream:
                        if on_first_delta is not None and getattr(event, "type", "") == "delta":
                            on_first_delta()
                            on_first_delta = None
                    placed[sid].add(stream.replica)
                    attempts[sid] = stream.attempts
                    assert stream.done is not None
                    return stream.done.text

            for k in range(2):
                for sid in sids:
                    turn(sid, k)
            assert all(len(where) == 1 for where in placed.values()), placed  # every session kept its replica
            replicas = {next(iter(where)) for where in placed.values()}
            assert len(replicas) == 2, replicas  # and both replicas took sessions

            # Kill the worker node under one session while its third turn streams.
            victim = sids[0]
            doomed = next(iter(placed[victim]))
            node_id = doomed.split("@", 1)[1]
            node = next(w for w in workers if w.node_id == node_id)
            moved = [sid for sid in sids if placed[sid] == {doomed}]  # the victim among them
            streaming = threading.Event()
            result: dict[str, object] = {}

            def run_victim() -> None:
                try:
                    result["text"] = turn(victim, 2, streaming.set, LONG)
                except BaseException as exc:  # noqa: BLE001 - reported below
                    result["error"] = exc

            thread = threading.Thread(target=run_victim)
            thread.start()
            assert streaming.wait(120), "the victim's turn never started streaming"
            cluster.remove_node(node)
            thread.join(300)
            assert "error" not in result, result.get("error")
            assert attempts[victim] >= 2  # the stream was cut by the node's death and asked again
            for sid in sids[1:]:
                turn(sid, 2)
            survivor = (replicas - {doomed}).pop()
            assert all(placed[sid] == {doomed, survivor} for sid in moved)  # moved once, to the survivor
            assert all(len(placed[sid]) == 1 for sid in sids if sid not in moved)
            third = {sid: client.get_session(sid).turns[2].reply for sid in moved}

        # PostgreSQL holds every turn exactly once
        with psycopg.connect(url, autocommit=True) as conn:
            rows = conn.execute(
                f"SELECT session_id, idx, turn_id FROM {schema}.turns ORDER BY 1, 2"
            ).fetchall()
        assert len(rows) == SESSIONS * 3
        assert {(s, i) for s, i, _ in rows} == {(sid, k) for sid in sids for k in range(3)}
        assert {t for _, _, t in rows} == {f"{sid}-t{k}" for sid in sids for k in range(3)}

        # the moved sessions' third replies equal a single-process run on the same stored history
        store = open_store(target)
        model = OnnxNpcModel.load(exported_int4, slots=1)
        try:
            for sid in moved:
                stored = store.load(sid)
                conversation = Conversation(model, stored.persona, model.usable_history(stored.turns[:2]))
                done = conversation.reply(
                    LINES[2], config=GenerationConfig(**(LONG if sid == victim else GREEDY))
                )
                conversation.close()
                assert done.text == third[sid], sid
        finally:
            store.close()
    finally:
        if front.proc is not None:
            front.stop()
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
        time.sleep(0.5)
