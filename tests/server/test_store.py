"""The session store contract, on both backends: SQLite (the default) and PostgreSQL (--store postgresql://...).

PostgreSQL comes from NPC_SDK_TEST_POSTGRES (a URL; `scripts/start_postgres.sh` starts this machine's server and
prints one). Without it these tests skip and say so, unless NPC_SDK_REQUIRE_POSTGRES=1 (CI sets both).
"""

from __future__ import annotations

import os
import threading
import uuid

import numpy as np
import pytest

from npc_sdk.personas.persona import LoreEntry, Persona
from npc_sdk.personas.prompt import Turn
from npc_sdk.server.store import open_store

POSTGRES = os.environ.get("NPC_SDK_TEST_POSTGRES", "")


def _postgres_url() -> str:
    if POSTGRES:
        return POSTGRES
    if os.environ.get("NPC_SDK_REQUIRE_POSTGRES") == "1":
        pytest.fail(
            "NPC_SDK_REQUIRE_POSTGRES=1 but NPC_SDK_TEST_POSTGRES is not set (scripts/start_postgres.sh)"
        )
    pytest.skip("no PostgreSQL: set NPC_SDK_TEST_POSTGRES (scripts/start_postgres.sh prints a URL)")


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = open_store(tmp_path / "sessions.sqlite3")
    else:
        import psycopg

        url = _postgres_url()
        schema = "t_" + uuid.uuid4().hex[:12]  # a schema per test: tests never see each other's rows
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        s = open_store(f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}")
    yield s
    s.close()
    if request.param == "postgresql":
        with psycopg.connect(_postgres_url(), autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


PERSONA = Persona(
    name="Brakka", description="A smith.", lore=[LoreEntry(["forge"], "Hot.", secondary_keys=["iron"])]
)


def test_sessions_turns_and_prefix_vectors_round_trip(store):
    created = store.create("s1", PERSONA, owner="studio-a")
    prefix = np.arange(8 * 4, dtype=np.float32).reshape(8, 4)
    store.append_turn("s1", 0, Turn("Hi", "Hmph.", prefix, "(lore)\n"))
    store.append_turn("s1", 1, Turn("Bye", "Go.", None, ""))
    loaded = store.load("s1")
    assert loaded is not None and loaded.created_ms == created and loaded.persona == PERSONA
    assert [(t.user, t.reply, t.context) for t in loaded.turns] == [
        ("Hi", "Hmph.", "(lore)\n"),
        ("Bye", "Go.", ""),
    ]
    assert np.array_equal(loaded.turns[0].prefix, prefix) and loaded.turns[1].prefix is None
    assert len(loaded.turn_times_ms) == 2 and store.load("nope") is None
    assert store.exists("s1") and not store.exists("nope")
    assert store.owner_of("s1") == "studio-a" and store.owner_of("nope") is None


def test_a_turn_index_is_written_once(store):
    store.create("s1", PERSONA)
    store.append_turn("s1", 0, Turn("Hi", "Hmph."))
    with pytest.raises(Exception):  # noqa: B017 - sqlite3.IntegrityError or psycopg's UniqueViolation
        store.append_turn("s1", 0, Turn("Hi again", "No."))
    assert [t.reply for t in store.load("s1").turns] == ["Hmph."]  # the first one stands


def test_paging_counting_owners_and_deleting(store):
    for i in range(5):
        store.create(f"s{i}", PERSONA, owner="a" if i % 2 == 0 else "b")
    first = store.page(0, 2)
    assert [sid for _, sid, _, _ in first] == ["s0", "s1"]
    rest = store.page(first[-1][0], 10)
    assert [sid for _, sid, _, _ in rest] == ["s2", "s3", "s4"]
    assert [sid for _, sid, _, _ in store.page(0, 10, owner="b")] == ["s1", "s3"]
    assert store.count() == 5 and store.count(owner="a") == 3
    store.append_turn("s0", 0, Turn("Hi", "Hm."))
    assert store.delete("s0") and not store.delete("s0") and store.load("s0") is None
    assert store.count() == 4 and store.integrity_check() == "ok"  # its turns went with it


def test_import_is_all_or_nothing(store):
    store.create("taken", PERSONA)
    with pytest.raises(Exception):  # noqa: B017 - the id exists
        store.import_session("taken", PERSONA, 1, [Turn("a", "b")])
    store.import_session("new", PERSONA, 5, [Turn("a", "b"), Turn("c", "d")], owner="k")
    loaded = store.load("new")
    assert (
        loaded.created_ms == 5
        and [t.reply for t in loaded.turns] == ["b", "d"]
        and store.owner_of("new") == "k"
    )


def test_concurrent_writers_lose_nothing(store):
    for i in range(4):
        store.create(f"s{i}", PERSONA)

    def write(sid: str) -> None:
        for j in range(10):
            store.append_turn(sid, j, Turn(f"line {j}", f"reply {j}"))

    threads = [threading.Thread(target=write, args=(f"s{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        assert [t.reply for t in store.load(f"s{i}").turns] == [f"reply {j}" for j in range(10)]


def test_postgres_migrations_are_versioned_and_run_once(tmp_path):
    import psycopg

    url = _postgres_url()
    schema = "m_" + uuid.uuid4().hex[:12]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        target = f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
        from npc_sdk.server.store.postgres import MIGRATIONS

        first = open_store(target)
        first.create("kept", PERSONA)
        assert first.schema_version == len(MIGRATIONS)
        first.close()
        again = open_store(target)  # a second server start: nothing re-run, nothing lost
        assert again.schema_version == len(MIGRATIONS) and again.exists("kept")
        again.close()
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.mark.slow
def test_the_server_on_postgresql_commits_turns_and_survives_a_restart(exported_int4, tmp_path):
    import psycopg

    from npc_sdk.client import Client
    from npc_sdk.demo import DEMO_PERSONA

    from ..server_process import ServerProcess

    url = _postgres_url()
    schema = "srv_" + uuid.uuid4().hex[:12]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    target = f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    try:
        with ServerProcess(exported_int4, tmp_path / "a", "--store", target) as proc:
            with Client(proc.address, timeout=120) as c:
                sid = c.create_session(DEMO_PERSONA).session_id
                done = c.say(sid, "Good evening, smith.", max_tokens=8)
        with psycopg.connect(url, autocommit=True) as conn:  # committed before the done event was sent
            rows = conn.execute(
                f'SELECT "user", reply FROM {schema}.turns WHERE session_id = %s', (sid,)
            ).fetchall()
        assert rows == [("Good evening, smith.", done.text)]
        with ServerProcess(
            exported_int4, tmp_path / "b", "--store", target
        ) as proc:  # another server, same DB
            with Client(proc.address, timeout=120) as c:
                assert [t.reply for t in c.get_session(sid).turns] == [done.text]
                assert (
                    c.say(sid, "And the mine?", max_tokens=6).usage.cached_tokens == 0
                )  # rebuilt from the store
                assert len(c.get_session(sid).turns) == 2
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


# ---- long-term memories (store/memories.py) --------------------------------------------------------------------


def _mem(text, npc="Brakka", group="", player="", source="game"):
    from npc_sdk.runtime.memory import Memory

    return Memory(text, npc, group, player, source)


def test_memories_round_trip_with_their_vectors_and_are_recalled_in_scope(store):
    vec = np.arange(4, dtype=np.float32)
    added = store.add_memories(
        [
            (_mem("My name is Ada.", player="ada", source="player"), vec),
            (_mem("My name is Bo.", player="bo", source="player"), vec),
            (_mem("The forge is mine.", source="persona"), None),
            (_mem("The mill burned.", npc="", group="village"), None),
            (_mem("Secret of another NPC.", npc="Mira"), None),
            (_mem("Another group's news.", npc="", group="city"), None),
        ]
    )
    assert len({m.id for m in added}) == 6 and all(m.created_ms > 0 for m in added)
    recalled = store.recall_memories("Brakka", "village", "ada", "")
    assert [m.text for m, _ in recalled] == ["My name is Ada.", "The forge is mine.", "The mill burned."]
    assert np.array_equal(recalled[0][1], vec) and recalled[1][1] is None
    assert [m.text for m, _ in store.recall_memories("Brakka", "", "", "")] == ["The forge is mine."]
    assert store.recall_memories("Brakka", "village", "ada", "other-key") == []  # another key's are not seen

    stamp = store.memory_stamp("Brakka", "village", "ada", "")
    assert stamp[0] == 3
    store.set_memory_vectors([(added[2].id, vec)])
    assert (
        store.memory_stamp("Brakka", "village", "ada", "") == stamp
    )  # vectors filled in: nothing new to read
    assert np.array_equal(store.recall_memories("Brakka", "", "", "")[0][1], vec)
    store.add_memories([(_mem("I fear bees.", player="ada", source="player"), None)])
    assert store.memory_stamp("Brakka", "village", "ada", "") != stamp

    assert [m.text for m in store.list_memories(player_id="ada")] == [
        "I fear bees.",
        "My name is Ada.",
    ]  # newest first
    assert [m.text for m in store.list_memories(group="village")] == ["The mill burned."]
    assert len(store.list_memories(limit=2)) == 2
    assert store.list_memories(owner="other-key") == []


def test_memories_are_deleted_only_by_their_owner(store):
    (mine,) = store.add_memories([(_mem("Key A's fact."), None)], owner="a")
    assert not store.delete_memory(mine.id, owner="b")
    assert store.delete_memory(mine.id, owner="a")
    assert not store.delete_memory(mine.id)
    assert store.list_memories() == []


def test_forget_player_deletes_their_memories_and_sessions_and_nothing_else(store):
    store.create("ada-1", PERSONA, player_id="ada")
    store.append_turn("ada-1", 0, Turn("My name is Ada.", "Hello, Ada."))
    store.create("ada-2", PERSONA, player_id="ada")
    store.create("bo-1", PERSONA, player_id="bo")
    store.add_memories([(_mem("My name is Ada.", player="ada", source="player"), None)])
    store.add_memories([(_mem("My name is Bo.", player="bo", source="player"), None)])
    store.add_memories([(_mem("Shared news."), None)])
    assert sorted(store.player_sessions("ada")) == ["ada-1", "ada-2"]
    assert store.load("ada-1").player_id == "ada"
    assert store.forget_player("ada") == (1, 2)
    assert store.load("ada-1") is None and store.load("ada-2") is None and store.load("bo-1") is not None
    assert sorted(m.text for m in store.list_memories()) == ["My name is Bo.", "Shared news."]
    assert store.integrity_check() == "ok"  # the turns went with their session
    assert store.forget_player("ada") == (0, 0)


def test_an_imported_session_brings_its_player_and_memories_once(store):
    (fact,) = store.add_memories([(_mem("My name is Ada.", player="ada", source="player"), None)])
    store.import_session(
        "save-1",
        PERSONA,
        5,
        [Turn("a", "b")],
        player_id="ada",
        memories=[(fact, None), (_mem("I like bees.", player="ada"), None)],
    )
    loaded = store.load("save-1")
    assert loaded.player_id == "ada" and [t.user for t in loaded.turns] == ["a"]
    assert sorted(m.text for m in store.list_memories(player_id="ada")) == ["I like bees.", "My name is Ada."]


def test_scenes_round_trip_and_keep_what_each_npc_heard(store):
    from npc_sdk.errors import SessionExistsError
    from npc_sdk.server.scene_rules import SceneState

    scene = SceneState("tavern", ["b", "m"], {"b": "Brakka", "m": "Mira"}, created_ms=7, owner="k")
    store.create_scene(scene)
    with pytest.raises(SessionExistsError):
        store.create_scene(scene)
    scene.hear('Player: "Hi."')
    scene.last_speaker = "m"
    store.save_scene(scene)
    back = store.load_scene("tavern")
    assert back == scene
    assert (
        store.delete_scene("tavern")
        and store.load_scene("tavern") is None
        and not store.delete_scene("tavern")
    )


def test_a_turns_sentence_vector_is_stored_with_it(store):
    store.create("v1", PERSONA)
    vec = np.linspace(-1, 1, 384, dtype=np.float32)
    store.append_turn("v1", 0, Turn("My name is Ada.", "Hello, Ada."), vector=vec)
    store.append_turn("v1", 1, Turn("Hi.", "Hm."))  # a turn stored without one (an older server's)
    loaded = store.load("v1")
    assert np.array_equal(loaded.turn_vectors[0], vec) and loaded.turn_vectors[1] is None
