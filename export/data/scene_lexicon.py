"""The scenes' side of the vocabulary: the Kenney sprites each category is drawn with, and the lexicon.

The scene generator draws sprites from `SPRITES`; the teacher's scene descriptions use the first word of each
category (model/vocabulary.py); the lexicon (`mentioned_categories`: the teacher's filter and the evaluation's
grounding and hallucination rates) matches every word listed, in singular or plural, as a whole word and
case-insensitively. `repeats_itself` is the word-trigram check that the teacher's filter and the metrics share.
"""

from __future__ import annotations

import re

from ..model.vocabulary import CATEGORIES

# paths under arcade/resources/assets/images/, per category
SPRITES: dict[str, tuple[str, ...]] = {
    "slime": ("enemies/slimeGreen.png", "enemies/slimeBlue.png", "enemies/slimePurple.png"),
    "bee": ("enemies/bee.png",),
    "frog": ("enemies/frog.png",),
    "worm": ("enemies/wormGreen.png", "enemies/wormPink.png"),
    "fish": ("enemies/fishGreen.png", "enemies/fishPink.png"),
    "mouse": ("enemies/mouse.png",),
    "beetle": ("enemies/ladybug.png",),
    "coin": ("items/coinGold.png", "items/coinSilver.png", "items/coinBronze.png"),
    "gem": ("items/gemBlue.png", "items/gemGreen.png", "items/gemRed.png", "items/gemYellow.png"),
    "key": ("items/keyBlue.png", "items/keyGreen.png", "items/keyRed.png", "items/keyYellow.png"),
    "flag": ("items/flagGreen1.png", "items/flagRed1.png", "items/flagYellow1.png"),
    "torch": ("tiles/torch1.png", "tiles/torch2.png"),
    "box": ("tiles/boxCrate.png", "tiles/boxCrate_double.png", "tiles/boxCrate_single.png"),
    "door": ("tiles/doorClosed_mid.png",),
    "sign": ("tiles/signLeft.png", "tiles/signRight.png", "tiles/signExit.png"),
    "ladder": ("tiles/ladderMid.png",),
    "spike": ("tiles/spikes.png",),
    "bush": ("tiles/bush.png",),
    "cactus": ("tiles/cactus.png",),
    "mushroom": ("tiles/mushroomRed.png",),
    "rock": ("tiles/rock.png",),
    "bomb": ("tiles/bomb.png",),
    "lever": ("tiles/leverLeft.png", "tiles/leverRight.png"),
    "explorer": (
        "animated_characters/female_adventurer/femaleAdventurer_idle.png",
        "animated_characters/male_adventurer/maleAdventurer_idle.png",
    ),
    "robot": ("animated_characters/robot/robot_idle.png",),
    "zombie": ("animated_characters/zombie/zombie_idle.png",),
    "alien": ("alien/alienBlue_front.png",),
    "grass": ("tiles/grassMid.png", "tiles/grassCenter.png"),
    "snow": ("tiles/snowMid.png", "tiles/snowCenter.png"),
    "sand": ("tiles/sandMid.png", "tiles/sandCenter.png"),
    "stone": ("tiles/stoneMid.png", "tiles/stoneCenter.png"),
    "lava": ("tiles/lava.png",),
    "water": ("tiles/water.png",),
}
FLOATING: frozenset[str] = frozenset(
    ("bee", "fish", "coin", "gem", "key")
)  # drawn in the air (items, flyers), not on the ground
WORD = re.compile(r"[a-z0-9']+")

_PATTERNS: dict[str, re.Pattern[str]] = {
    c.name: re.compile(r"\b(" + "|".join(re.escape(w) for w in c.words) + r")\b", re.IGNORECASE)
    for c in CATEGORIES
}


def mentioned_categories(text: str) -> set[str]:
    """The categories a reply names, by the vocabulary's words (whole words, any case)."""
    return {name for name, pattern in _PATTERNS.items() if pattern.search(text)}


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def repeats_itself(reply: str, n: int = 3) -> bool:
    """Some word n-gram (trigram by default) occurs twice in the reply."""
    w = words(reply)
    grams = [tuple(w[i : i + n]) for i in range(len(w) - n + 1)]
    return len(grams) != len(set(grams))
