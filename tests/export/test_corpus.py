"""The authored corpus: it validates, it has what issue 27 asks of it, and the validator catches bad items."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from npc_export.data.corpus import CORPUS, KINDS, MAX_REPLY_WORDS, check_item, personas_of, validate

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "personas"


@pytest.fixture(scope="module")
def corpus():
    return validate(CORPUS)


def test_the_corpus_validates(corpus):
    items, problems = corpus
    assert problems == [], "\n".join(problems[:20])


def test_the_corpus_is_as_large_and_varied_as_asked(corpus):
    items, _ = corpus
    assert len(items) >= 4000
    personas = {i.persona for i in items}
    heldout = {i.persona for i in items if i.split == "heldout"}
    assert len(personas) >= 40 and len(heldout) >= 8
    samples = {p.stem for p in SAMPLES.glob("*.toml")} - {"villager"}
    assert samples <= personas - heldout, "every sample persona is trained on"
    kinds = Counter(i.kind for i in items)
    assert set(kinds) == set(KINDS) and min(kinds.values()) >= 40
    with_history = sum(bool(i.history) for i in items)
    assert with_history >= len(items) // 4
    assert sum(bool(i.entities) for i in items) >= 100
    assert all(len(i.reply.split()) <= MAX_REPLY_WORDS for i in items)


def test_held_out_personas_have_their_own_files_and_every_persona_loads(corpus):
    items, _ = corpus
    loaded = personas_of(CORPUS)
    assert {i.persona for i in items} <= set(loaded)
    train = {i.persona for i in items if i.split == "train"}
    assert not train & {i.persona for i in items if i.split == "heldout"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kind": "gossip"}, "kind"),
        ({"reply": "*nods* Ten silver."}, "reply"),
        ({"reply": " ".join(["word"] * 40)}, "reply"),
        ({"in_view": ["dragon"]}, "in_view"),
        ({"reply": "A zombie by the gem! Run."}, "reply"),  # names a thing not in view
        ({"history": [["only the player"]]}, "history"),
        ({"kind": "memory", "history": []}, "history"),
        ({"persona": "zib"}, "persona"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_the_validator_names_the_field_of_a_bad_item(change, field):
    good = {
        "id": "brakka-999",
        "persona": "brakka",
        "kind": "scene",
        "in_view": ["gem", "grass"],
        "line": "Anything worth picking up?",
        "reply": "That gem in the grass, lass, if you're quick.",
    }
    assert check_item(good, None, "brakka") == []
    found = check_item({**good, **change}, None, "brakka")
    assert field in {f for f, _ in found}, found


def test_a_broken_line_is_reported_with_its_file_and_line(tmp_path):
    (tmp_path / "personas").mkdir()
    folder = tmp_path / "dialogue" / "train"
    folder.mkdir(parents=True)
    (tmp_path / "personas" / "tess.toml").write_text('name = "Tess"\ndescription = "A ferrywoman."\n')
    good = {
        "id": "tess-1",
        "persona": "tess",
        "kind": "identity",
        "line": "Who are you?",
        "reply": "Tess. I row.",
    }
    (folder / "tess.jsonl").write_text(
        json.dumps(good) + "\n{not json\n" + json.dumps({**good, "id": "tess-2"})
    )
    items, problems = validate(tmp_path)
    assert [i.id for i in items] == ["tess-1", "tess-2"]
    assert len(problems) == 1 and problems[0].startswith(f"{folder / 'tess.jsonl'}:2: item: not JSON")
