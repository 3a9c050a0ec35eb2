"""The scheduler's residency policy: more sessions than slots, parked KV under a budget, rebuilt when dropped."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from npc_sdk.demo import DEMO_PERSONA
from npc_sdk.personas.persona import Persona
from npc_sdk.personas.prompt import next_turn_opening, persona_block
from npc_sdk.runtime.events import Done
from npc_sdk.runtime.generation import GenerationConfig
from npc_sdk.runtime.onnx_model import OnnxNpcModel
from npc_sdk.server.backend import ChatJob
from npc_sdk.server.scheduler import Scheduler
from npc_sdk.server.store import SqliteSessionStore

pytestmark = pytest.mark.slow

GREEDY = GenerationConfig(temperature=0.0, max_tokens=12)


def _turn(scheduler: Scheduler, session_id: str, text: str) -> Done:
    finished = threading.Event()
    events: list = []

    def emit(event) -> None:
        events.append(event)
        if isinstance(event, (Done, BaseException)):
            finished.set()

    scheduler.submit(ChatJob(session_id, text, None, GREEDY, emit)).result(60)
    assert finished.wait(120)
    assert isinstance(events[-1], Done), events[-1]
    return events[-1]


@pytest.fixture()
def scheduler(exported_int4, tmp_path):
    model = OnnxNpcModel.load(exported_int4, slots=2)
    store = SqliteSessionStore(tmp_path / "sessions.sqlite3")
    sched = Scheduler(model, store, kv_budget_bytes=0)  # no parked KV may stay: it is dropped at once
    sched.start()
    yield sched
    sched.stop()
    store.close()


def test_more_sessions_than_slots_park_and_rebuild(scheduler):
    ids = [f"s{i}" for i in range(3)]
    for sid in ids:
        scheduler.call(lambda sid=sid: scheduler.store.create(sid, DEMO_PERSONA)).result(10)
    first = {sid: _turn(scheduler, sid, "Good evening.") for sid in ids}  # the third parks the first
    states = scheduler.call(
        lambda: {
            sid: (live.conversation.slot, live.conversation.parked) for sid, live in scheduler.live.items()
        }
    ).result(10)
    assert sum(slot is not None for slot, _ in states.values()) == 2
    assert all(parked is None for _, parked in states.values())  # budget 0: parked KV was dropped
    assert scheduler.call(lambda: scheduler.kv_parked_bytes).result(10) == 0
    again = _turn(scheduler, "s0", "Can you fix my sword?")  # s0 lost its KV: rebuilt from the stored history
    block = persona_block(scheduler.model.tokenizer, DEMO_PERSONA)
    # only the shared persona block came from a cache; the history was recomputed
    assert again.usage.cached_tokens == len(block)
    stored = scheduler.call(lambda: scheduler.store.load("s0")).result(10)
    assert [t.reply for t in stored.turns] == [first["s0"].text, again.text]


def test_after_a_reply_the_slot_holds_the_next_turns_opening(scheduler):
    """Fed once the Done is out: the next turn prefills only what its line brings."""
    model = scheduler.model
    scheduler.call(lambda: scheduler.store.create("o", DEMO_PERSONA)).result(10)
    _turn(scheduler, "o", "Good evening.")

    def held() -> tuple[int, int, int]:
        conv = scheduler.live["o"].conversation
        opening = next_turn_opening(
            model.tokenizer, DEMO_PERSONA, conv.history, model.persona_tokens, model.chat_format
        )
        return conv.cached_positions, int(model.cache.lengths[conv.slot]), opening.length

    cached, in_slot, opening = scheduler.call(held).result(10)
    assert cached == in_slot == opening
    second = _turn(scheduler, "o", "Can you fix my sword?")
    assert second.usage.cached_tokens == opening


def test_parked_kv_within_budget_is_restored(exported_int4, tmp_path):
    model = OnnxNpcModel.load(exported_int4, slots=1)
    store = SqliteSessionStore(tmp_path / "sessions.sqlite3")
    sched = Scheduler(model, store, kv_budget_bytes=256 << 20)
    sched.start()
    try:
        for sid in ("a", "b"):
            sched.call(lambda sid=sid: store.create(sid, DEMO_PERSONA)).result(10)
        _turn(sched, "a", "Good evening.")
        _turn(sched, "b", "Good evening.")  # parks a (one slot)
        assert sched.call(lambda: sched.live["a"].conversation.parked is not None).result(10)
        back = _turn(sched, "a", "Can you fix my sword?")  # restored, not recomputed
        assert back.usage.cached_tokens > back.usage.prompt_tokens // 2
    finally:
        sched.stop()
        store.close()


def test_idle_time_prefills_persona_blocks_for_first_turns(exported_int4, tmp_path):
    """The folder's personas are warmed in chunks while idle; a session's first turn starts from the block."""
    import time

    from npc_sdk.personas.files import load_persona

    model = OnnxNpcModel.load(exported_int4, slots=1)
    store = SqliteSessionStore(tmp_path / "sessions.sqlite3")
    sched = Scheduler(model, store)
    sched.start()
    try:
        samples = Path(__file__).resolve().parents[2] / "samples" / "personas"
        personas = [load_persona(samples / f"{p}.toml") for p in ("old_tom", "mirela")]
        sched.prewarm(personas).result(10)
        deadline = time.monotonic() + 300  # a bound against a hang, not a speed check
        while sched.call(lambda: sched.warming).result(10) and time.monotonic() < deadline:
            time.sleep(0.05)
        for persona in personas:
            block = persona_block(model.tokenizer, persona, model.persona_tokens)
            assert sched.call(lambda b=block: model.cached_persona_kv(b) is not None).result(10)
        sched.call(lambda: store.create("tom", personas[0])).result(10)
        done = _turn(sched, "tom", "Good evening.")
        block = persona_block(model.tokenizer, personas[0], model.persona_tokens)
        assert done.usage.cached_tokens == len(block)  # the first turn started from the warmed block
        assert sched.call(lambda: sched.warming).result(10) == 0  # nothing left to warm, no slot held for it
    finally:
        sched.stop()
        store.close()


def test_a_turn_id_sent_twice_at_once_makes_one_turn(scheduler):
    """Two front doors can each pass the same retried turn_id on (neither sees the other's claim): the scheduler
    runs the session's turns in order, and the second finds the first committed and replays it."""
    scheduler.call(lambda: scheduler.store.create("dup", DEMO_PERSONA)).result(10)
    results: list[list] = [[], []]
    finished = [threading.Event(), threading.Event()]

    def emitter(i: int):
        def emit(event) -> None:
            results[i].append(event)
            if isinstance(event, (Done, BaseException)):
                finished[i].set()

        return emit

    for i in range(2):
        job = ChatJob("dup", "Good evening.", None, GREEDY, emitter(i), turn_id="t-1")
        scheduler.submit(job).result(60)
    assert finished[0].wait(120) and finished[1].wait(120)
    first, second = results[0][-1], results[1][-1]
    assert isinstance(first, Done) and isinstance(second, Done)
    assert not first.replayed and second.replayed and second.text == first.text
    stored = scheduler.call(lambda: scheduler.store.load("dup")).result(10)
    assert [t.reply for t in stored.turns] == [first.text]
    other = ChatJob("dup", "Another line.", None, GREEDY, emitter(0), turn_id="t-1")
    finished[0].clear()
    scheduler.submit(other).result(60)
    assert finished[0].wait(60) and "used for another line" in str(results[0][-1])


def _burst(
    sched: Scheduler, ids: list[str], config: GenerationConfig, personas: dict[str, Persona] | None = None
) -> list[Done]:
    """A new session for each id (the demo persona unless `personas` says), then one "Good evening." from each, all
    submitted while the loop is held so that they wait together and start in this order; their Done events."""
    for sid in ids:
        persona = (personas or {}).get(sid, DEMO_PERSONA)
        sched.call(lambda sid=sid, persona=persona: sched.store.create(sid, persona)).result(10)
    gate = threading.Event()
    sched.call(gate.wait)
    finished = {sid: threading.Event() for sid in ids}
    dones: dict = {}

    def emit_for(sid):
        def emit(event) -> None:
            if isinstance(event, (Done, BaseException)):
                dones[sid] = event
                finished[sid].set()

        return emit

    accepted = [sched.submit(ChatJob(sid, "Good evening.", None, config, emit_for(sid))) for sid in ids]
    gate.set()
    for fut in accepted:
        fut.result(60)
    assert all(finished[sid].wait(120) for sid in ids)
    assert all(isinstance(dones[sid], Done) for sid in ids), dones
    return [dones[sid] for sid in ids]


def test_while_replies_decode_one_turn_starts_per_step(exported_int4, tmp_path):
    """A burst of turns does not stop the talking NPCs for all of its preparations: once one reply decodes, the
    rest start one per decode step."""
    model = OnnxNpcModel.load(exported_int4, slots=4)
    store = SqliteSessionStore(tmp_path / "sessions.sqlite3")
    sched = Scheduler(model, store)
    log: list = []
    step, start = sched.batch.step, sched._start

    def counted_step():
        log.append("step")
        return step()

    def counted_start(job, live):
        log.append(("start", sched.batch.active))
        start(job, live)

    sched.batch.step = counted_step
    sched._start = counted_start
    sched.start()
    try:
        _burst(sched, [f"s{i}" for i in range(4)], GREEDY)
        starts_between_steps = 0
        for entry in log:
            if entry == "step":
                starts_between_steps = 0
            elif entry[1]:  # started while others were decoding or prefilling
                starts_between_steps += 1
                assert starts_between_steps == 1, log
        assert sum(entry != "step" for entry in log) == 4
    finally:
        sched.stop()
        store.close()


def test_a_burst_of_first_turns_for_one_persona_prefills_its_block_once(exported_int4, tmp_path):
    """Three sessions of one card, never warmed, start together while another NPC talks: the first prefills the
    persona block in chunks between the talker's steps and shares its KV once its slot holds it; the other two are
    held back until then and start from it instead of prefilling the same positions beside it."""
    model = OnnxNpcModel.load(exported_int4, slots=5)  # one spare for the comparison
    store = SqliteSessionStore(tmp_path / "sessions.sqlite3")
    sched = Scheduler(model, store)
    started: list[tuple[str, bool]] = []
    start = sched._start

    def counted_start(job, live):
        started.append((job.session_id, bool(sched.batch.members)))
        start(job, live)

    sched._start = counted_start
    sched.start()
    try:
        block = persona_block(model.tokenizer, DEMO_PERSONA, model.persona_tokens)
        assert sched.call(lambda: model.cached_persona_kv(block) is None).result(10)  # never warmed
        talker = Persona(
            name="Mira", description="A ferrywoman who talks about the river.", greeting="Hop on."
        )
        config = GenerationConfig(temperature=0.0, max_tokens=24, max_clauses=0, max_sentences=0)
        dones = _burst(sched, ["talker", "g0", "g1", "g2"], config, personas={"talker": talker})
        assert [sid for sid, _ in started] == ["talker", "g0", "g1", "g2"]
        assert started[1] == ("g0", True)  # g0's prompt went in in chunks, between the talker's decode steps
        assert [d.usage.cached_tokens for d in dones] == [0, 0, len(block), len(block)]

        def block_alone():  # the block prefilled by itself in a spare slot, to compare the shared KV with
            slot = model.acquire_slot()
            try:
                model.cache.rewind(slot, 0)
                model.runner.run(slot, model.embed_ids(block)[None])
                return model.cache.snapshot(slot).data
            finally:
                model.release_slot(slot)

        shared = sched.call(lambda: model.cached_persona_kv(block)).result(10)
        alone = sched.call(block_alone).result(60)
        assert shared is not None and shared.length == len(block)
        print(
            f"\nshared block KV against the block alone: max |difference| {np.abs(shared.data - alone).max():.2e}"
        )
        assert np.allclose(shared.data, alone, atol=0.05)
    finally:
        sched.stop()
        store.close()
