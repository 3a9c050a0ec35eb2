"""What a player says about themselves, kept per player and NPC so the NPC knows it in their next session.

"My name is Ada." "I'm looking for my brother." "I hate spiders." A finished turn's line is split into sentences,
and those that state something lasting about the speaker are kept in the player's own words (memory.py quotes
them). Rules, not a model: they run on every turn of every NPC, and a wrong keep costs little (the memory is
recalled only when a later line is about the same thing) where a wrong drop loses the fact. Questions, commands,
passing states ("I'm fine", "I'm back") and sentences too short to mean anything are not kept.
"""

from __future__ import annotations

import re

MAX_FACT_CHARS = 240
_SENTENCES = re.compile(r"[^.!?]+[.!?]*")
# the sentence must open with the speaker talking about themselves (after an optional "Oh,", "Well,", "By the way,")
_OPENER = re.compile(r"^(?:(?:oh|well|so|and|also|anyway|by the way|actually|listen|look),?\s+)*", re.I)
# the speaker is the subject within the first words: "I left...", "My dog's name is...", "Someday I hope..."
_SELF = re.compile(r"^(?:[\w']+,?\s+){0,2}?((?:i|i'm|i've|i'd|i'll|my)\b.*|call me\b.*|they call me\b.*)", re.I)
# first-person lines that are talk, not facts: asking, thinking aloud, greeting, agreeing
_TALK = re.compile(
    r"^(?:i(?:'d| would) like|i want to (?:buy|sell|know|ask|see|hear|talk)|i need (?:a|an|some|to (?:buy|know))|"
    r"i think|i guess|i suppose|i wonder|i mean|i see|i know|i don't know|i do not know|i agree|i hope so|"
    r"i'll take|i'll have|i'll buy|i'll go|i'll be|i will|my (?:bad|pleasure|apologies|turn|lord|lady|friend))\b",
    re.I,
)
# states that pass within a scene: not worth remembering next week
_PASSING = re.compile(
    r"^i(?:'m| am) (?:fine|good|ok|okay|alright|all right|back|here|ready|done|sorry|sure|not sure|tired|lost|"
    r"going now|leaving|off|listening|kidding|joking|just looking|looking around|trying it|going to go)\b",
    re.I,
)


def player_facts(line: str) -> list[str]:
    """The sentences of a player's line that state something lasting about the player, as written."""
    kept: list[str] = []
    for raw in _SENTENCES.findall(line):
        sentence = " ".join(raw.split())
        if not sentence or sentence.endswith("?") or len(sentence.split()) < 3:
            continue
        found = _SELF.match(_OPENER.sub("", sentence))
        if found is None:
            continue
        clause = found.group(1)  # from the speaker on: "Thanks, I will." is talk, "Well, my horse is lame." a fact
        if len(clause.split()) < 3 or _PASSING.match(clause) or _TALK.match(clause):
            continue
        kept.append(sentence[:MAX_FACT_CHARS])
    return kept
