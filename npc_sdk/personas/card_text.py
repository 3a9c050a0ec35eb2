"""Persona text as the decoder should read it: the chat-site scaffolding of imported cards taken out.

Character cards are written for large chat models: greetings of several paragraphs of second-person narration with
`*actions*`, descriptions that open with a transcript ("{{user}}: Brief introduction?\\n{{char}}: Oh hi there!"),
`<START>` markers and Windows line ends. A 135M decoder trained on short first-person lines imitates whatever its
prompt shows, so it answered in narration. Cleaning is for the decoder only: the stored persona, and a card
exported again, keep every character as written. Persona files written for npc-sdk come out unchanged.
"""

from __future__ import annotations

import re

_START = re.compile(r"<START>", re.IGNORECASE)
# "*She smiles.*" and "_waves_": what a card shows its character doing rather than saying
_ACTION = re.compile(r"\*[^*\n]{1,400}\*|(?<!\w)_[^_\n]{1,200}_(?!\w)")
_PLAYERS = r"\{\{\s*user\s*\}\}|<USER>|Player|You|User"
_SPEAKERS = _PLAYERS + r"|\{\{\s*char\s*\}\}|<BOT>"
_QUOTED = re.compile(r"[\"\u201c]([^\"\u201c\u201d]+)[\"\u201d]")
_SENTENCE_END = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)]*(?=\s|$)")
GREETING_CHARS = 200  # corpus greetings are at most ~100 characters; a longer one is cut to its first sentences


def normalise(text: str) -> str:
    """Line ends as `\\n`, no `<START>` markers, no trailing spaces."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _START.sub("", text)
    return "\n".join(line.rstrip() for line in text.split("\n")).strip()


def without_transcript(text: str, name: str) -> str:
    """The text without the chat lines a card description opens with ("{{user}}: ...", "Firefly: ...")."""
    speaker = re.compile(rf"^\s*(?:{_SPEAKERS}|{re.escape(name)})\s*:", re.IGNORECASE)
    kept = [line for line in normalise(text).split("\n") if not speaker.match(line)]
    return "\n".join(kept).strip()


def spoken(text: str) -> str:
    """What is said aloud: `*actions*` removed, whitespace collapsed; speech given only in quotes loses its marks."""
    text = _ACTION.sub(" ", normalise(text))
    text = re.sub(r"\s+", " ", text).strip()
    quoted = _QUOTED.findall(text)
    if quoted:
        outside = _QUOTED.sub(" ", text).strip(" ,.;:-")
        if len(outside) < 0.2 * len(text):  # all the words are in quotes: "Ah, you're awake." "I'm Seraphina."
            text = " ".join(q.strip() for q in quoted)
    return text


def lore_text(text: str, name: str) -> str:
    """A lore entry as a note: a card's scene ("Player: \"What is Eldoria?\" Seraphina: *smiles* \"Eldoria
    is...\"") becomes what the character says in it ("Eldoria is...")."""
    text = _ACTION.sub(" ", normalise(text))
    text = re.sub(rf"(?:{_PLAYERS})\s*:\s*(?:{_QUOTED.pattern}|[^\n\"\u201c]*)", " ", text, flags=re.IGNORECASE)
    text = re.sub(rf"(?:\{{\{{\s*char\s*\}}\}}|<BOT>|{re.escape(name)})\s*:\s*", " ", text, flags=re.IGNORECASE)
    return spoken(text)


def first_sentences(text: str, max_chars: int = GREETING_CHARS) -> str:
    """The longest run of whole sentences within `max_chars` (at least the first sentence, cut if it must be)."""
    if len(text) <= max_chars:
        return text
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    fitting = [e for e in ends if e <= max_chars]
    if fitting:
        return text[: fitting[-1]].strip()
    return text[: ends[0]].strip() if ends and ends[0] <= 2 * max_chars else ""


def decoder_greeting(greeting: str) -> str:
    """A greeting as the NPC's first turn: spoken words only, a few sentences at most ("" if nothing is said)."""
    return first_sentences(spoken(greeting)) if greeting else ""
