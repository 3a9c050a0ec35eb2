"""Persona: who the NPC is, the text the role encoder reads, and the role words the decoder favours.

This is the in-memory form; persona files (TOML, Character Card V2) load into it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidInputError

MAX_FIELD_CHARS = 4000  # per text field; keeps the system prompt well inside the context window
MAX_ROLE_WORD_WEIGHT = 10.0  # logit bonus cap: past ~10 a single word drowns out everything else


@dataclass
class Persona:
    name: str  # what the NPC is called; required
    description: str = ""  # who they are, in the designer's words
    personality: str = ""  # temperament, in a few adjectives or a sentence
    scenario: str = ""  # where and when the conversation happens
    greeting: str = ""  # the NPC's first line; shown to the decoder as its first turn
    style: str = ""  # speaking-style notes ("short sentences, calls everyone 'lad'")
    role_words: dict[str, float] = field(default_factory=dict)  # word -> logit bonus (role-word constraint)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise InvalidInputError("persona.name", "a persona needs a non-empty name")
        for key in ("name", "description", "personality", "scenario", "greeting", "style"):
            value = getattr(self, key)
            if not isinstance(value, str):
                raise InvalidInputError(f"persona.{key}", f"must be text, got {type(value).__name__}")
            if len(value) > MAX_FIELD_CHARS:
                raise InvalidInputError(
                    f"persona.{key}", f"is {len(value)} characters, over {MAX_FIELD_CHARS}"
                )
        for word, weight in self.role_words.items():
            if not isinstance(word, str) or not word.strip():
                raise InvalidInputError("persona.role_words", "role words must be non-empty text")
            if (
                not isinstance(weight, (int, float))
                or not -MAX_ROLE_WORD_WEIGHT <= weight <= MAX_ROLE_WORD_WEIGHT
            ):
                raise InvalidInputError(
                    f"persona.role_words[{word!r}]",
                    f"weight must be a number in [-{MAX_ROLE_WORD_WEIGHT}, {MAX_ROLE_WORD_WEIGHT}], got {weight!r}",
                )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Persona:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInputError(
                f"persona.{unknown[0]}", f"unknown field (known: {', '.join(sorted(known))})"
            )
        if "name" not in data:
            raise InvalidInputError("persona.name", "a persona needs a non-empty name")
        values = dict(data)
        values["role_words"] = dict(values.get("role_words") or {})
        return cls(**values)

    def system_prompt(self) -> str:
        """The system message the decoder sees, built from the persona's fields."""
        parts = [f"You are {self.name}."]
        if self.description:
            parts.append(self.description.strip())
        if self.personality:
            parts.append(f"Personality: {self.personality.strip()}")
        if self.scenario:
            parts.append(f"Scenario: {self.scenario.strip()}")
        if self.style:
            parts.append(f"Speaking style: {self.style.strip()}")
        parts.append("Stay in character. Reply in one or two sentences.")
        return " ".join(parts)

    def role_text(self) -> str:
        """What the role encoder reads to make v_R."""
        return " ".join(p for p in (self.name, self.description, self.personality, self.style) if p).strip()
