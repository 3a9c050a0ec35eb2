"""The onnxruntime runtime on a real exported model: streaming, prefix reuse, snapshots and batched decoding."""

from __future__ import annotations

import numpy as np
import pytest

from npc_sdk.demo import DEMO_PERSONA, scene_path
from npc_sdk.errors import InvalidInputError
from npc_sdk.personas.persona import Persona
from npc_sdk.personas.prompt import build_prompt, next_turn_opening
from npc_sdk.runtime.batch import BatchGenerator
from npc_sdk.runtime.conversation import Conversation
from npc_sdk.runtime.decode_loop import ReplyState
from npc_sdk.runtime.generation import GenerationConfig

from ..greedy import assert_greedy_agrees, record_samplers

pytestmark = pytest.mark.slow

GREEDY = GenerationConfig(temperature=0.0, max_tokens=24)
SCENE = scene_path("lava_cave_key.png")


def test_stream_deltas_concatenate_to_done(runtime_int4):
    events = list(
        runtime_int4.stream("Is that cave safe?", persona=DEMO_PERSONA, screenshot=SCENE, config=GREEDY)
    )
    *deltas, done = events
    assert len(deltas) >= 3 and done.type == "done"
    assert "".join(d.text for d in deltas) == done.text
    assert done.usage.completion_tokens == len(done.token_ids) <= GREEDY.max_tokens


def test_continuing_a_conversation_feeds_only_new_positions(runtime_int4, monkeypatch):
    recorded = record_samplers(monkeypatch, runtime_int4)
    runtime_int4.persona_kv.clear()  # another test's session of this persona would lend its block's KV
    # No clause cut here: cut at a clause, this reply's KV ends in ";" where its text says ".". The reused
    # positions come from int4 decode steps, while a fresh render would prefill them on the int8 graph; the two
    # graphs round differently (by up to 2.7 in the top logits on this text), which is not what this test is
    # about. Both renders therefore run on decoder.onnx, so only the reuse differs.
    greedy = GREEDY.with_(max_clauses=0)
    monkeypatch.setattr(runtime_int4.runner, "prefill_session", None)
    with Conversation(runtime_int4, DEMO_PERSONA) as conv:
        first = conv.reply("Good evening, smith.", config=greedy)
        held = conv.cached_positions
        assert first.usage.cached_tokens == 0
        second = conv.reply("Can you fix my sword?", config=greedy)
    assert second.usage.cached_tokens >= held - 2  # all but the reply's closing tokens are reused
    # new positions: the first reply's close, the line and its template, and the lore the word "sword" brings in
    lore = len(runtime_int4.tokenizer.encode(DEMO_PERSONA.lore[0].text).ids)
    assert second.usage.prompt_tokens - second.usage.cached_tokens < 45 + lore
    # the reused state gives the reply that rendering the whole dialogue from scratch gives (a long prefill and a
    # short one round differently, so: same logits within tolerance, same tokens up to a near-tie)
    fresh = runtime_int4.reply(
        "Can you fix my sword?", persona=DEMO_PERSONA, history=conv.history[:1], config=greedy
    )
    assert_greedy_agrees(fresh.token_ids, recorded[2].logits, second.token_ids, recorded[1].logits)


def test_the_next_turns_opening_is_fed_while_the_player_reads(runtime_int4, monkeypatch):
    model = runtime_int4
    recorded = record_samplers(monkeypatch, model)
    line = "What is that key for?"
    with Conversation(model, DEMO_PERSONA) as conv:
        conv.reply("Good evening, smith.", config=GREEDY)
        opening = next_turn_opening(
            model.tokenizer, DEMO_PERSONA, conv.history, model.persona_tokens, model.chat_format
        )
        # the slot already holds the close of the reply and the next message's header, in ChatML 5 positions
        assert conv.cached_positions == int(model.cache.lengths[conv.slot]) == opening.length
        closing = model.tokenizer.decode(opening.token_ids[-5:], skip_special_tokens=False)
        assert closing == model.chat_format.assistant_end + model.chat_format.user_start
        fed_early = conv.reply(line, screenshot=SCENE, config=GREEDY)
    assert fed_early.usage.cached_tokens == opening.length
    # the same dialogue with nothing fed early: the turn prefills those 5 positions itself, and says the same
    with Conversation(model, DEMO_PERSONA) as plain:
        monkeypatch.setattr(plain, "open_next_turn", lambda: 0)
        plain.reply("Good evening, smith.", config=GREEDY)
        held = plain.cached_positions
        in_turn = plain.reply(line, screenshot=SCENE, config=GREEDY)
    assert in_turn.usage.cached_tokens == held == opening.length - 5
    assert in_turn.usage.prompt_tokens == fed_early.usage.prompt_tokens
    assert_greedy_agrees(in_turn.token_ids, recorded[3].logits, fed_early.token_ids, recorded[1].logits)


def test_a_stream_left_at_its_done_feeds_no_opening(runtime_int4):
    model = runtime_int4
    with Conversation(model, DEMO_PERSONA) as conv:
        conv.reply("Hello.", config=GREEDY)
        stream = conv.stream("Tell me about your forge.", config=GREEDY)
        next(event for event in stream if event.type == "done")
        stream.close()  # the turn is kept, but nothing says the player is still there
        opening = next_turn_opening(
            model.tokenizer, DEMO_PERSONA, conv.history, model.persona_tokens, model.chat_format
        )
        assert len(conv.history) == 2
        assert conv.cached_positions == int(model.cache.lengths[conv.slot]) < opening.length


def test_snapshot_restores_the_state_without_recomputing(runtime_int4):
    with Conversation(runtime_int4, DEMO_PERSONA) as conv:
        conv.reply("Good evening, smith.", config=GREEDY)
        snap = conv.snapshot()
        original = conv.reply("What is that key for?", screenshot=SCENE, config=GREEDY)
    assert snap.kv is not None and snap.kv.length == snap.fed.length > 0
    with Conversation.restore(runtime_int4, DEMO_PERSONA, snap) as restored:
        again = restored.reply("What is that key for?", screenshot=SCENE, config=GREEDY)
    assert again.usage.cached_tokens == original.usage.cached_tokens > 0
    assert again.token_ids == original.token_ids


def test_cancelled_turn_is_not_kept(runtime_int4):
    with Conversation(runtime_int4, DEMO_PERSONA) as conv:
        conv.reply("Hello.", config=GREEDY)
        stream = conv.stream("Tell me a long story about your forge.", config=GREEDY.with_(max_tokens=60))
        next(stream)
        stream.close()  # the player walked away
        assert len(conv.history) == 1
        after = conv.reply("Never mind. Goodbye.", config=GREEDY)
        assert after.text and len(conv.history) == 2


def test_bad_input_leaves_the_conversation_untouched(runtime_int4):
    with Conversation(runtime_int4, DEMO_PERSONA) as conv:
        conv.reply("Hello.", config=GREEDY)
        before = (list(conv.history), conv.cached_positions)
        with pytest.raises(InvalidInputError, match="screenshot"):
            conv.reply("Look!", screenshot=b"not a png", config=GREEDY)
        with pytest.raises(InvalidInputError, match="text"):
            conv.reply("", config=GREEDY)
        assert (list(conv.history), conv.cached_positions) == before


PERSONAS = [
    (DEMO_PERSONA, "Hello!"),
    (
        Persona(name="Captain Hale", description="The stern captain of the city guard."),
        "Is the north road safe?",
    ),
    (Persona(name="Zib", description="A shady merchant."), "What do you sell, and how much does it cost me?"),
]


# for the join-and-leave test: Zib talks longest (15 tokens), Hale's first line is cut at 8, and Hale's second line
# (a two-chunk prompt) joins while both decode; replies of the shipped decoder are short, so the order matters
JOINERS = [
    PERSONAS[2],
    PERSONAS[1],
    (PERSONAS[1][0], "Tell me about the north road, the bandits on it and the weather."),
]


def _state(model, persona, config):
    return ReplyState(
        tokenizer=model.tokenizer,
        config=config,
        sampler=model.sampler(persona, config),
        eos_id=model.eos_id,
        prompt_tokens=0,
    )


def test_batched_greedy_equals_one_by_one_with_join_and_leave(runtime_int4, monkeypatch):
    """Batched rows give the logits a lone sequence gets (within int4 rounding, which differs by batch size) and
    the same greedy tokens up to the first near-tie."""
    model = runtime_int4
    configs = [GREEDY.with_(max_tokens=n) for n in (20, 8, 16)]  # the second leaves early
    prompts = [build_prompt(model.tokenizer, p, [], t) for p, t in JOINERS]
    assert len({p.length for p in prompts}) == 3  # different lengths decode together
    recorded = record_samplers(monkeypatch, model)
    solo = [
        model.reply(text, persona=p, config=c, use_prefix=False).token_ids
        for (p, text), c in zip(JOINERS, configs, strict=True)
    ]
    solo_logits = [r.logits for r in recorded[:3]]

    slots = [model.acquire_slot() for _ in JOINERS]
    states = [_state(model, p, c) for (p, _), c in zip(JOINERS, configs, strict=True)]
    try:
        batch = BatchGenerator(model)
        batch.add(slots[0], model.embed(prompts[0]), states[0])
        batch.add(slots[1], model.embed(prompts[1]), states[1])
        widths = []
        for step in range(40):
            if step == 1:  # the third sequence joins a running batch
                batch.add(slots[2], model.embed(prompts[2]), states[2])
            widths.append(len(batch.members))
            batch.step()
            if not batch.members:
                break
    finally:
        for s in slots:
            model.release_slot(s)
    assert max(widths) == 3 and widths[-1] < 3
    batched_logits = [r.logits for r in recorded[3:]]
    for i, state in enumerate(states):
        same = assert_greedy_agrees(solo[i], solo_logits[i], state.generated, batched_logits[i])
        print(f"row {i}: {same}/{len(solo[i])} tokens identical")


def test_batch_step_is_one_call_for_all_members(runtime_int4, monkeypatch):
    model = runtime_int4
    calls = []
    original = model.runner.run
    monkeypatch.setattr(model.runner, "run", lambda *a, **k: calls.append(a[1].shape) or original(*a, **k))
    slots = [model.acquire_slot() for _ in range(2)]
    try:
        batch = BatchGenerator(model)
        for slot, (p, t) in zip(slots, PERSONAS[:2], strict=True):
            batch.add(slot, model.embed(build_prompt(model.tokenizer, p, [], t)), _state(model, p, GREEDY))
        while batch.pending:  # the second prompt went in during a step, beside the first one's decoding
            batch.step()
        calls.clear()
        batch.step()
    finally:
        for s in slots:
            model.release_slot(s)
    assert len(calls) == 1 and calls[0][0] == 2


def test_a_long_prefill_runs_in_chunks_between_the_others_decode_steps(runtime_int4, monkeypatch):
    """A long persona's first turn does not stop a talking NPC: its prompt goes in PREFILL_CHUNK positions at a
    time, each chunk followed by a decode step of the others, and it gets the tokens it gets alone (one call)."""
    from npc_sdk.runtime.decoder_runner import PREFILL_CHUNK

    model = runtime_int4
    talker, talker_line = PERSONAS[0]
    lore = " ".join(
        f"Fact {i}: the {w} of Emberfall is old." for i, w in enumerate(["well", "mill", "gate"] * 12)
    )
    long_persona = Persona(name="Orrin", description="The keeper of the town records. " + lore)
    long_line = "Tell me about the town."
    recorded = record_samplers(monkeypatch, model)
    solo = model.reply(long_line, persona=long_persona, config=GREEDY, use_prefix=False).token_ids
    solo_logits = recorded[0].logits
    long_prompt = model.embed(build_prompt(model.tokenizer, long_persona, [], long_line))
    assert len(long_prompt) > 3 * PREFILL_CHUNK
    calls: list[tuple[int, ...]] = []
    original = model.runner.run
    monkeypatch.setattr(
        model.runner, "run", lambda *a, **k: calls.append(a[1].shape[:2]) or original(*a, **k)
    )
    slots = [model.acquire_slot() for _ in range(2)]
    states = [
        _state(model, talker, GREEDY.with_(max_tokens=60, max_sentences=0)),
        _state(model, long_persona, GREEDY),
    ]
    try:
        batch = BatchGenerator(model)
        batch.add(slots[0], model.embed(build_prompt(model.tokenizer, talker, [], talker_line)), states[0])
        calls.clear()
        assert batch.add(slots[1], long_prompt, states[1]) == []  # nothing runs yet: the talker is decoding
        talker_tokens = []
        while batch.active and len(calls) < 400:
            before, talking = len(states[0].generated), not states[0].finished
            batch.step()
            if talking:
                talker_tokens.append(len(states[0].generated) - before)
    finally:
        for s in slots:
            model.release_slot(s)
    chunks = [c[1] for c in calls if c[1] > 1]
    assert sum(chunks) == len(long_prompt)
    # while the talker talks, the prompt goes in PREFILL_CHUNK positions a call, one call between two of its steps;
    # once it has stopped, the rest goes in in one call (nobody is left to keep streaming)
    talked = len(talker_tokens)
    assert talked >= 3 and chunks[: talked - 1] == [PREFILL_CHUNK] * (talked - 1)
    assert len(chunks) <= talked + 1
    # while the long prompt went in, the talker got a token at every step it was still talking
    assert all(n == 1 for n in talker_tokens[: len(chunks)])
    assert_greedy_agrees(solo, solo_logits, states[1].generated, recorded[-1].logits)


def test_seeded_sampling_reproduces(runtime_int4):
    cfg = GenerationConfig(temperature=0.9, seed=99, max_tokens=16)
    a = runtime_int4.reply("Sing me a song.", persona=DEMO_PERSONA, config=cfg)
    b = runtime_int4.reply("Sing me a song.", persona=DEMO_PERSONA, config=cfg)
    assert a.token_ids == b.token_ids


def test_prefix_vectors_and_tags_come_from_the_fusion_graph(runtime_int4):
    prefix, tag_probs = runtime_int4.see("What is that?", DEMO_PERSONA, SCENE)
    assert prefix.shape == (8, 576) and prefix.dtype == np.float32  # the K fused vectors
    assert tag_probs.shape == (len(runtime_int4.tags),) and 0 <= tag_probs.min() <= tag_probs.max() <= 1
    assert runtime_int4.fusion_trained and prefix.any()  # the committed trained fusion is the default
    blind, no_tags = runtime_int4.see("What is that?", DEMO_PERSONA, None)
    # the screenshot changes what is given; after training the prefix moves little with it (max ~0.02): what the
    # NPC saw reaches the decoder mostly as the head's tags (the note and the scene-word bias)
    assert no_tags is None and np.abs(prefix - blind).max() > 1e-3


def test_the_done_event_says_what_the_npc_saw_and_was_told(runtime_int4):
    from npc_sdk.runtime.scene import SceneEntity

    done = runtime_int4.reply("What is that?", persona=DEMO_PERSONA, screenshot=SCENE, config=GREEDY)
    seen = {s.tag: s for s in done.seen}
    assert seen and all(s.source == "screenshot" for s in seen.values())
    assert all(s.score >= t.threshold for t in runtime_int4.tags if t.name in seen for s in [seen[t.name]])
    told = runtime_int4.reply(
        "Who is that?", persona=DEMO_PERSONA, scene=[SceneEntity("ferryman", "Old Tom")], config=GREEDY
    )
    assert [(s.tag, s.source) for s in told.seen] == [("ferryman", "game")]
    plain = runtime_int4.reply("Who is that?", persona=DEMO_PERSONA, config=GREEDY)
    assert plain.seen == ()


def test_a_new_session_reuses_the_personas_kv_state(runtime_int4, monkeypatch):
    from npc_sdk.personas.prompt import persona_block

    recorded = record_samplers(monkeypatch, runtime_int4)
    persona = Persona(name="Oma Brin", description="The village herbalist, patient and sly.")
    block = persona_block(runtime_int4.tokenizer, persona)
    with Conversation(runtime_int4, persona) as first:
        cold = first.reply("Do you have anything for a cough?", config=GREEDY)
    assert cold.usage.cached_tokens == 0
    with Conversation(runtime_int4, persona) as second:
        warm = second.reply("Do you have anything for a cough?", config=GREEDY)
    assert warm.usage.cached_tokens == len(block)
    assert_greedy_agrees(cold.token_ids, recorded[0].logits, warm.token_ids, recorded[1].logits)


def test_replies_do_not_repeat_a_token_4gram_of_the_two_before(runtime_int4):
    from pathlib import Path

    from npc_sdk.personas.files import load_persona

    def grams(ids) -> set[tuple[int, ...]]:
        return {tuple(ids[i : i + 4]) for i in range(len(ids) - 3)}

    persona = load_persona(Path(__file__).resolve().parents[2] / "samples" / "personas" / "old_tom.toml")
    cfg = GenerationConfig(temperature=0.0, max_tokens=24)
    with Conversation(runtime_int4, persona) as conv:
        dones = [
            conv.reply(line, config=cfg, use_prefix=False) for line in ("Who are you?", "And you?", "Who?")
        ]
    for i in (1, 2):
        # what the sampler was told: the earlier replies' text, tokenised; what it made: this reply's own tokens
        earlier = set().union(
            *(
                grams(runtime_int4.tokenizer.encode(d.text, add_special_tokens=False).ids)
                for d in dones[max(0, i - 2) : i]
            )
        )
        assert not grams(list(dones[i].token_ids)) & earlier, [d.text for d in dones]


def test_a_turn_runs_the_text_encoder_once_on_its_line_and_shares_the_vector(runtime_int4, monkeypatch):
    """The fusion's token states and the line's sentence vector (action, recall, critic) come from one call."""
    model = runtime_int4
    line = "What is that glowing thing by the door?"
    line_ids = model.graphs.text_tokenizer.encode(line).ids
    fresh = model.sentence_vectors([line, "padding makes this a call of its own"])[0]
    session = model.graphs.text_session
    on_line = []

    class Counting:
        def run(self, outputs, feeds):
            if feeds["input_ids"][0].tolist() == line_ids:
                on_line.append(outputs)
            return session.run(outputs, feeds)

    monkeypatch.setattr(model.graphs, "text_session", Counting())
    with Conversation(model, DEMO_PERSONA) as conv:
        conv.reply(line, screenshot=SCENE.read_bytes(), config=GREEDY.with_(max_tokens=2))
    assert on_line == [["token_states", "pooled"]]
    np.testing.assert_allclose(model.sentence_vectors([line])[0], fresh, atol=1e-4)
    # another text is encoded on its own, never answered from the shared vector
    other = model.sentence_vectors(["Where is the forge?"])
    assert len(on_line) == 1 and not np.allclose(other[0], fresh, atol=1e-3)
