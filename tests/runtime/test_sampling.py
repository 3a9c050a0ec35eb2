import numpy as np
import pytest

from npc_sdk.errors import InvalidInputError
from npc_sdk.runtime.generation import GenerationConfig
from npc_sdk.runtime.sampling import TokenSampler, repeat_blocked

VOCAB = 50


def _logits(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=VOCAB).astype(np.float32)


def test_greedy_is_argmax():
    logits = _logits()
    assert TokenSampler(GenerationConfig(temperature=0), VOCAB)(logits) == int(np.argmax(logits))


def test_top_k_one_equals_greedy_even_when_sampling():
    logits = _logits(3)
    sampler = TokenSampler(GenerationConfig(temperature=1.5, top_k=1, top_p=1.0, seed=1), VOCAB)
    assert {sampler(logits) for _ in range(20)} == {int(np.argmax(logits))}


def test_same_seed_same_tokens_other_seed_other_tokens():
    logits = _logits(4) * 0.1  # flat: many tokens are likely
    cfg = GenerationConfig(temperature=1.0, top_k=0, top_p=1.0, seed=42)
    a = [TokenSampler(cfg, VOCAB)(logits) for _ in range(1)]
    s1, s2, s3 = TokenSampler(cfg, VOCAB), TokenSampler(cfg, VOCAB), TokenSampler(cfg.with_(seed=43), VOCAB)
    run1 = [s1(logits) for _ in range(30)]
    run2 = [s2(logits) for _ in range(30)]
    run3 = [s3(logits) for _ in range(30)]
    assert run1 == run2 and run1[:1] == a
    assert run1 != run3


def test_top_p_keeps_only_the_nucleus():
    logits = np.full(VOCAB, -10.0, dtype=np.float32)
    logits[[3, 7]] = [5.0, 4.0]  # ~73% and ~27% of the mass
    sampler = TokenSampler(GenerationConfig(temperature=1.0, top_k=0, top_p=0.5, seed=0), VOCAB)
    assert {sampler(logits) for _ in range(50)} == {3}
    sampler = TokenSampler(GenerationConfig(temperature=1.0, top_k=0, top_p=0.99, seed=0), VOCAB)
    assert {sampler(logits) for _ in range(200)} == {3, 7}


def test_repetition_penalty_lowers_seen_tokens():
    logits = np.zeros(VOCAB, dtype=np.float32)
    logits[[1, 2]] = [2.0, -2.0]
    adjusted = TokenSampler(GenerationConfig(repetition_penalty=2.0), VOCAB).adjust(logits, [1, 2, 9])
    assert adjusted[1] == pytest.approx(1.0) and adjusted[2] == pytest.approx(-4.0)
    assert adjusted[0] == 0.0


def test_a_reply_never_doubles_a_token_or_repeats_a_trigram():
    assert repeat_blocked([]) == []
    assert repeat_blocked([4]) == [4]
    # 7 8 9 ... 7 8: a 9 would repeat the trigram "7 8 9"; an 8 would double the last token
    assert repeat_blocked([7, 8, 9, 3, 7, 8]) == [8, 9]
    logits = np.zeros(VOCAB, dtype=np.float32)
    logits[5] = 30.0  # a decoder stuck on one word ("tomorrow tomorrow ...")
    sampler = TokenSampler(GenerationConfig(temperature=0, repetition_penalty=1.0), VOCAB)
    reply: list[int] = []
    for _ in range(12):
        reply.append(sampler(logits, reply))
    assert all(a != b for a, b in zip(reply, reply[1:], strict=False))
    trigrams = [tuple(reply[i : i + 3]) for i in range(len(reply) - 2)]
    assert len(trigrams) == len(set(trigrams)) and reply.count(5) >= 4  # still its favourite, never in a run


@pytest.mark.parametrize(
    "field, value",
    [
        ("max_tokens", 0),
        ("max_tokens", 5000),
        ("temperature", -0.1),
        ("temperature", float("nan")),
        ("top_p", 0.0),
        ("top_k", -1),
        ("repetition_penalty", 0.5),
        ("seed", -3),
        ("stop", ("",)),
        ("max_sentences", 9),
        ("max_sentences", -1),
        ("max_clauses", 9),
        ("max_clauses", -1),
    ],
)
def test_out_of_range_generation_values_name_the_field(field, value):
    with pytest.raises(InvalidInputError) as err:
        GenerationConfig(**{field: value})
    assert err.value.field == f"generation.{field}"


def test_a_phrase_of_the_last_two_replies_is_not_said_again():
    from npc_sdk.personas.persona import Persona
    from npc_sdk.runtime.sampling import HistoryNgrams, make_sampler

    from ..helpers import byte_tokenizer

    history = HistoryNgrams([[1, 2, 3, 4, 5], [7, 8, 9, 10]], 4)
    assert history.blocked([9, 2, 3, 4]) == {5} and history.blocked([7, 8, 9]) == {10}
    assert history.blocked([2, 3]) == set() and history.blocked([1, 2, 9]) == set()
    tok = byte_tokenizer()  # one token per byte
    ids = tok.encode("I am the smith", add_special_tokens=False).ids
    logits = np.zeros(300, dtype=np.float32)
    on = make_sampler(tok, Persona(name="x"), GenerationConfig(), 300, 0, None, ["I am the smith."])
    off = make_sampler(
        tok, Persona(name="x"), GenerationConfig(no_repeat_history=0), 300, 0, None, ["I am the smith."]
    )
    assert on.adjust(logits, ids[:-1])[ids[-1]] == -np.inf  # "...smit" may not go on to "h" again
    assert off.adjust(logits, ids[:-1])[ids[-1]] == 0.0
    old = make_sampler(
        tok, Persona(name="x"), GenerationConfig(), 300, 0, None, ["I am the smith.", "a", "b"]
    )
    assert old.adjust(logits, ids[:-1])[ids[-1]] == 0.0  # three replies back: allowed again
    # in a scene, what the other NPCs just said is not parroted either, however many replies back
    heard = make_sampler(
        tok, Persona(name="x"), GenerationConfig(), 300, 0, None, ["a", "b", "c"], heard=["I am the smith."]
    )
    assert heard.adjust(logits, ids[:-1])[ids[-1]] == -np.inf
