"""Whole-word bias: role words are pushed as words (a trie over their tokenizations), never as loose sub-tokens."""

from __future__ import annotations

import re

import numpy as np
import pytest

from npc_sdk.bench import role_word_rates
from npc_sdk.personas.persona import Persona
from npc_sdk.runtime.generation import GenerationConfig
from npc_sdk.runtime.sampling import make_sampler
from npc_sdk.runtime.word_bias import WordBias, merge_weights


class PieceTokenizer:
    """A tokenizer stand-in with a fixed list of pieces: all WordBias reads is each id's decoded text."""

    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces

    def get_vocab_size(self) -> int:
        return len(self.pieces)

    def decode(self, ids: list[int]) -> str:
        return "".join(self.pieces[i] for i in ids)

    def id(self, piece: str) -> int:
        return self.pieces.index(piece)


PIECES = [
    " an",
    "vil",
    "v",
    "il",
    " forge",
    " forg",
    "e",
    " For",
    "ge",
    "For",
    " sl",
    "imes",
    " hello",
    ".",
    " old",
]


def bonus(words: dict[str, float], generated_pieces: list[str]) -> dict[str, float]:
    tok = PieceTokenizer(PIECES)
    table = WordBias(tok, words).bonus([tok.id(p) for p in generated_pieces])
    return {tok.pieces[i]: w for i, w in table.items()}


def test_a_short_piece_that_is_a_word_of_its_own_gets_no_bonus():
    got = bonus({"anvil": 6.0, "slimes": 3.0}, [" hello"])
    assert " an" not in got and " sl" not in got  # "an" is an article; " sl" starts slow, sleep, ...
    assert got == {}


def test_whole_words_and_long_prefixes_start_the_word():
    got = bonus({"forge": 4.0}, [" hello"])
    assert got == {" forge": 4.0, " forg": 4.0}  # " For" (3 letters, a word of its own) is left alone


def test_a_word_once_begun_is_carried_on():
    assert bonus({"anvil": 6.0}, [" hello", " an"]) == {"vil": 6.0, "v": 6.0}
    assert bonus({"anvil": 6.0}, [" an", "v"]) == {"il": 6.0}
    assert bonus({"forge": 4.0}, [" hello", " forg"])["e"] == 4.0
    assert bonus({"slimes": 3.0}, [" sl"]) == {"imes": 3.0}
    # a finished word is over: nothing more is pushed after it
    assert "e" not in bonus({"forge": 4.0}, [" forge"])


def test_replies_share_a_word_sets_tables_but_each_keeps_its_own_state():
    tok = PieceTokenizer(PIECES)
    first, second = WordBias.shared(tok, {"forge": 4.0}), WordBias.shared(tok, {"forge": 4.0})
    assert first is not second and first.start is second.start  # built once, for both best-of-N candidates
    ids = [tok.id(p) for p in (" forge", " hello")]
    assert first.bonus(ids) == {}  # "forge" said: its bonus is spent in this reply
    assert {tok.pieces[i] for i in second.bonus([tok.id(" hello")])} == {" forge", " forg"}  # not in the other
    assert first.bonus(ids) == {} and WordBias.shared(tok, {"forge": 5.0}).start is not first.start


def test_spellings_without_a_space_start_only_at_a_boundary():
    # "For" + "ge" spells "Forge" at the start of a reply or after punctuation, never inside a word
    assert bonus({"forge": 4.0}, ["For"]).get("ge") == 4.0
    assert "ge" not in bonus({"forge": 4.0}, [" hello", "For"])
    assert bonus({"forge": 4.0}, [" hello", ".", "For"]).get("ge") == 4.0


def test_a_word_said_once_loses_its_bonus_for_the_rest_of_the_reply():
    assert bonus({"forge": 4.0}, [" forge", " hello"]) == {}
    assert bonus({"anvil": 4.0}, [" an", "vil", " hello", " an"]) == {}
    assert bonus({"anvil": -4.0}, [" an", "vil", " an"]) == {"vil": -4.0, "v": -4.0}  # a penalty stays


def test_words_of_one_group_share_their_bonus():
    tok = PieceTokenizer(PIECES + [" slime", " ooze"])
    bias = WordBias(tok, {"slime": 3.0, "ooze": 3.0}, groups={"slime": "slime", "ooze": "slime"})
    said_slime = [tok.id(" hello"), tok.id(" slime")]
    assert bias.bonus(said_slime) == {}  # "slime" was said: "ooze" is not pushed as well
    alone = WordBias(tok, {"slime": 3.0, "ooze": 3.0})
    assert tok.id(" ooze") in alone.bonus(said_slime)


def test_a_negative_weight_pushes_the_word_down_but_not_the_article():
    assert bonus({"anvil": -5.0}, [" old"]) == {}
    assert bonus({"anvil": -5.0}, [" an"]) == {"vil": -5.0, "v": -5.0}
    assert bonus({"forge": -5.0}, [" old"]) == {" forge": -5.0, " forg": -5.0}


def test_the_start_memo_stays_bounded_and_gives_what_a_fresh_table_gives(monkeypatch):
    from npc_sdk.runtime import word_bias

    monkeypatch.setattr(word_bias, "MAX_MEMO_SPELLINGS", 3)
    tok = PieceTokenizer(PIECES)
    first = WordBias(tok, {"forge": 4.0, "anvil": 6.0}).bonus([tok.id(" hello")])
    again = WordBias(tok, {"forge": 4.0, "anvil": 6.0}).bonus([tok.id(" hello")])  # spellings evicted, redone
    assert len(word_bias._vocab(tok)._starts) <= 3
    assert first == again and {tok.pieces[i] for i in first} == {" forge", " forg"}


def test_merge_keeps_the_strongest_weight_per_word():
    assert merge_weights({"Slime": 2.0}, [("slime", -4.0), ("gem", 1.0)]) == {"slime": -4.0, "gem": 1.0}


@pytest.mark.slow
def test_scale_multiplies_and_zero_switches_off(runtime_int4):
    persona = Persona(name="Brakka", role_words={"forge": 3.0})
    tok = runtime_int4.tokenizer
    forge = tok.encode(" forge", add_special_tokens=False).ids[0]
    logits = np.zeros(runtime_int4.vocab_size, dtype=np.float32)

    def adjusted(scale: float) -> np.ndarray:
        config = GenerationConfig(role_word_scale=scale, repetition_penalty=1.0)
        return make_sampler(tok, persona, config, runtime_int4.vocab_size, runtime_int4.eos_id).adjust(
            logits, []
        )

    assert adjusted(1.0)[forge] == 3.0 and adjusted(2.0)[forge] == 6.0
    assert not adjusted(0.0).any()


SMITH = Persona(name="Brakka", description="A dwarven blacksmith.", role_words={"forge": 1.0, "anvil": 1.0})
LINE = "What did you do today?"


def _smith(weight: float) -> Persona:
    return Persona(
        name=SMITH.name, description=SMITH.description, role_words={"forge": weight, "anvil": weight}
    )


@pytest.mark.slow
def test_on_the_real_model_biased_logits_rise_by_the_weight_and_role_word_mass_grows(runtime_int4):
    """The mechanism, where it is exact: the chosen tokens' logits rise by the weight, nothing else moves, and
    the probability of starting a role word grows with the weight."""
    from npc_sdk.personas.prompt import build_prompt
    from npc_sdk.runtime.onnx_model import SlotSource

    model = runtime_int4
    tok = model.tokenizer
    slot = model.acquire_slot()
    try:
        logits = SlotSource(model, slot).prefill(model.embed(build_prompt(tok, SMITH, [], LINE)))
    finally:
        model.release_slot(slot)
    forge = tok.encode(" forge", add_special_tokens=False).ids[0]
    article = tok.encode(" an", add_special_tokens=False).ids[0]

    def adjusted(weight: float) -> np.ndarray:
        config = GenerationConfig(repetition_penalty=1.0)
        return make_sampler(tok, _smith(weight), config, model.vocab_size, model.eos_id).adjust(logits, [])

    moved = adjusted(6.0) - logits
    assert moved[forge] == pytest.approx(6.0, abs=1e-4)
    assert moved[article] == 0.0  # "anvil" begins with " an", which is a word of its own
    assert set(np.flatnonzero(moved)) <= set(WordBias(tok, {"forge": 6, "anvil": 6}).start)

    starts = sorted(WordBias(tok, {"forge": 1, "anvil": 1}).start)

    def mass(weight: float) -> float:
        scores = adjusted(weight)
        p = np.exp(scores - scores.max())
        return float(p[starts].sum() / p.sum())

    masses = [mass(w) for w in (0.0, 2.0, 4.0, 6.0, 10.0)]
    print("\nrole-word start mass by weight 0/2/4/6/10:", [round(m, 4) for m in masses])
    assert all(b > a for a, b in zip(masses, masses[1:], strict=False))
    assert masses[-1] > 1000 * masses[0]  # e^10 times, while the words are unlikely


@pytest.mark.slow
def test_no_reply_falls_into_a_sub_token_loop_up_to_weight_10(runtime_int4):
    """The old bias put +w on " an" (the start of "anvil") and turned replies into "an an an ..."."""
    loop = re.compile(r"\b(\w+)(?:\W+\1\b){2,}", re.IGNORECASE)  # one word three times in a row
    for weight in (3.0, 6.0, 10.0):
        for seed in range(6):
            config = GenerationConfig(temperature=0.0 if seed == 0 else 0.8, seed=seed, max_tokens=40)
            done = runtime_int4.reply(LINE, persona=_smith(weight), config=config, use_prefix=False)
            ids = done.token_ids
            runs = [ids[i] for i in range(len(ids) - 2) if ids[i] == ids[i + 1] == ids[i + 2]]
            assert not runs and not loop.search(done.text), (weight, seed, done.text)


@pytest.mark.slow
def test_role_word_rate_rises_with_the_weight(runtime_int4):
    """Sampled, so the margin is wide: a rate from a few texts shifts with the CPU's rounding
    (`npc-sdk bench --role-words` prints the full curve as a benchmark figure)."""
    rates = role_word_rates(runtime_int4, SMITH, LINE, weights=(0.0, 10.0), seeds=range(12))
    print(f"\nreplies naming a role word, weight 0 vs 10: {rates}")
    assert rates[10.0] >= rates[0.0] + 0.3
