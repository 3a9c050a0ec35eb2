"""Scenes of several NPCs: who answers a line, and what each NPC has heard since it last spoke.

A scene is 2-6 NPC sessions and the player. Every NPC in it hears every line said there, tagged with who said it;
an NPC that is not in the scene hears nothing of it. When an NPC speaks, the lines it heard since its last turn
become that turn's player line, so its session history holds exactly what it witnessed, in order:

    Player: "Which of you can fix my sword?"
    Brakka: "Not me, I only sell them."

Who answers (`choose_speaker`), in this order: the NPC the game names; else the first NPC named in the line (any
part of its name of three letters or more, as a whole word); else the most relevant, by the cosine of the line to
each persona's role vector plus the persona's `talkativeness` (0..1). The one who said the line never answers it,
and in NPC talk (Converse) the last speaker does not speak twice in a row.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import InvalidInputError
from ..personas.prompt import MAX_TEXT_CHARS

MIN_MEMBERS, MAX_MEMBERS = 2, 6
PLAYER = "Player"
NARRATOR = "Narrator"  # the game's lines in a scene, unless it names another speaker
MAX_SPEAKER_CHARS = 64


@dataclass
class SceneState:
    id: str
    members: list[str]  # session ids, in the order they were given
    names: dict[str, str]  # session id -> the NPC's name (its persona's)
    heard: dict[str, list[str]] = field(default_factory=dict)  # session id -> lines heard since it last spoke
    last_speaker: str = ""  # session id of the NPC that spoke last ("" when the player or the game did)
    created_ms: int = 0
    owner: str = ""

    def hear(self, line: str, said_by: str = "") -> None:
        """Every member but the one who said it hears the line."""
        for sid in self.members:
            if sid != said_by:
                self.heard.setdefault(sid, []).append(line)

    def take_heard(self, session_id: str) -> str:
        """What `session_id` heard since it last spoke, as its next turn's player line (the oldest lines are left
        out when it would not fit a line); the buffer is emptied."""
        lines = self.heard.pop(session_id, [])
        text = as_line(lines)
        while len(text) > MAX_TEXT_CHARS and len(lines) > 1:
            lines = lines[1:]
            text = as_line(lines)
        return text[-MAX_TEXT_CHARS:]


def as_line(lines: list[str]) -> str:
    """Heard lines as one player line for the decoder: the earlier ones told as who said what, the last one as it
    was said, as a player's line is. Read side by side, a 135M decoder fed every line as `Name: "text"` parroted
    the last one ("A landslide is sliding down the wall." four times over); fed the last line bare, it answers it.
    """
    if not lines:
        return ""
    *before, last = lines
    told = " ".join(f"({speaker_of(x)} said: {quoted(x)})" for x in before)
    now = f"({NARRATOR}: {spoken(last)})" if speaker_of(last) == NARRATOR else spoken(last)
    return f"{told}\n{now}" if told else now


def speaker_of(line: str) -> str:
    return line.partition(": ")[0]


def quoted(line: str) -> str:
    return line.partition(": ")[2]


def said(speaker: str, text: str) -> str:
    """One heard line: `Name: "text"`."""
    return f'{speaker}: "{" ".join(text.split())}"'


def spoken(line: str) -> str:
    """The words of a heard line, without who said them."""
    _, _, words = line.partition(": ")
    return words.strip('"')


def check_speaker(name: str, field_name: str = "speaker") -> str:
    name = " ".join(name.split()) or PLAYER
    if len(name) > MAX_SPEAKER_CHARS or not re.search(r"\w", name):
        raise InvalidInputError(field_name, f"must be a name of 1-{MAX_SPEAKER_CHARS} characters")
    return name


def named_in(line: str, names: dict[str, str], exclude: str = "") -> str | None:
    """The member first named in the line (by any part of its name of 3+ letters, as a whole word), if any."""
    best: tuple[int, str] | None = None
    for sid, name in names.items():
        if sid == exclude:
            continue
        for part in {name, *re.split(r"[\s-]+", name)}:
            if len(part) < 3:
                continue
            m = re.search(rf"(?<!\w){re.escape(part)}(?!\w)", line, re.I)
            if m and (best is None or m.start() < best[0]):
                best = (m.start(), sid)
    return best[1] if best else None


def choose_speaker(
    line: str,
    scene: SceneState,
    line_vector: np.ndarray,
    role_vectors: dict[str, np.ndarray],
    talkativeness: dict[str, float],
    *,
    said_by: str = "",
    game_named: str = "",
    not_again: str = "",
) -> str:
    """The session id of the NPC that answers `line` (see the module docstring)."""
    if game_named:
        if game_named not in scene.members:
            raise InvalidInputError("responder_session_id", f"{game_named!r} is not in scene {scene.id!r}")
        return game_named
    candidates = [sid for sid in scene.members if sid not in (said_by, not_again)] or [
        sid for sid in scene.members if sid != said_by
    ]
    named = named_in(line, {sid: scene.names[sid] for sid in candidates})
    if named is not None:
        return named
    query = line_vector / (np.linalg.norm(line_vector) + 1e-9)

    def score(sid: str) -> float:
        role = role_vectors[sid].reshape(-1)
        return float(role @ query / (np.linalg.norm(role) + 1e-9)) + talkativeness.get(sid, 0.5)

    return max(candidates, key=score)


def check_members(session_ids: Sequence[str]) -> list[str]:
    members = list(session_ids)
    if not MIN_MEMBERS <= len(members) <= MAX_MEMBERS:
        raise InvalidInputError(
            "session_ids", f"a scene has {MIN_MEMBERS}-{MAX_MEMBERS} NPC sessions, got {len(members)}"
        )
    if len(set(members)) != len(members):
        raise InvalidInputError("session_ids", "a session is listed twice")
    return members
