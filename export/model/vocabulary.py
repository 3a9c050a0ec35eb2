"""What a training scene can hold: object categories with their Kenney sprites, and the words that name them.

One table serves three jobs: the scene generator draws sprites from it, the teacher's scene descriptions use the
first word of each entry, and the evaluation's lexicon (grounding and hallucination rates) matches every word
listed, in singular or plural, as a whole word and case-insensitively. Words with an everyday second meaning that
the model uses all the time ("fly", "saw", "star") are left out of the scenes on purpose (they appear only as
distractors, never labelled), and "gate" is no word for a door (a captain of the watch guards the city gate), so
they cannot blur the metrics.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Category:
    name: str  # the label, also the tag word shown to the decoder (one SmolLM2 token)
    kind: str  # enemy | item | prop | character | terrain
    sprites: tuple[str, ...]  # paths under arcade/resources/assets/images/
    words: tuple[str, ...]  # lexicon: words that count as naming this category
    floats: bool = False  # drawn in the air (items, flyers) rather than standing on the ground


CATEGORIES: tuple[Category, ...] = (
    # enemies
    Category(
        "slime",
        "enemy",
        ("enemies/slimeGreen.png", "enemies/slimeBlue.png", "enemies/slimePurple.png"),
        ("slime", "slimes", "ooze", "blob", "blobs"),
    ),
    Category(
        "bee", "enemy", ("enemies/bee.png",), ("bee", "bees", "wasp", "wasps", "hornet", "hornets"), True
    ),
    Category("frog", "enemy", ("enemies/frog.png",), ("frog", "frogs", "toad", "toads")),
    Category("worm", "enemy", ("enemies/wormGreen.png", "enemies/wormPink.png"), ("worm", "worms")),
    Category("fish", "enemy", ("enemies/fishGreen.png", "enemies/fishPink.png"), ("fish", "fishes"), True),
    Category("mouse", "enemy", ("enemies/mouse.png",), ("mouse", "mice", "rat", "rats")),
    Category(
        "beetle",
        "enemy",
        ("enemies/ladybug.png",),
        ("beetle", "beetles", "ladybug", "ladybugs", "bug", "bugs"),
    ),
    # items
    Category(
        "coin",
        "item",
        ("items/coinGold.png", "items/coinSilver.png", "items/coinBronze.png"),
        ("coin", "coins"),
        True,
    ),
    Category(
        "gem",
        "item",
        ("items/gemBlue.png", "items/gemGreen.png", "items/gemRed.png", "items/gemYellow.png"),
        ("gem", "gems", "jewel", "jewels", "crystal", "crystals", "ruby", "rubies", "emerald", "emeralds"),
        True,
    ),
    Category(
        "key",
        "item",
        ("items/keyBlue.png", "items/keyGreen.png", "items/keyRed.png", "items/keyYellow.png"),
        ("key", "keys"),
        True,
    ),
    Category(
        "flag",
        "item",
        ("items/flagGreen1.png", "items/flagRed1.png", "items/flagYellow1.png"),
        ("flag", "flags", "banner", "banners"),
    ),
    # props
    Category("torch", "prop", ("tiles/torch1.png", "tiles/torch2.png"), ("torch", "torches")),
    Category(
        "box",
        "prop",
        ("tiles/boxCrate.png", "tiles/boxCrate_double.png", "tiles/boxCrate_single.png"),
        ("box", "boxes", "crate", "crates"),
    ),
    Category("door", "prop", ("tiles/doorClosed_mid.png",), ("door", "doors", "doorway", "doorways")),
    Category(
        "sign",
        "prop",
        ("tiles/signLeft.png", "tiles/signRight.png", "tiles/signExit.png"),
        ("sign", "signs", "signpost", "signposts"),
    ),
    Category("ladder", "prop", ("tiles/ladderMid.png",), ("ladder", "ladders")),
    Category("spike", "prop", ("tiles/spikes.png",), ("spike", "spikes")),
    Category("bush", "prop", ("tiles/bush.png",), ("bush", "bushes", "shrub", "shrubs")),
    Category("cactus", "prop", ("tiles/cactus.png",), ("cactus", "cacti", "cactuses")),
    Category(
        "mushroom", "prop", ("tiles/mushroomRed.png",), ("mushroom", "mushrooms", "toadstool", "toadstools")
    ),
    Category("rock", "prop", ("tiles/rock.png",), ("rock", "rocks", "boulder", "boulders")),
    Category("bomb", "prop", ("tiles/bomb.png",), ("bomb", "bombs")),
    Category("lever", "prop", ("tiles/leverLeft.png", "tiles/leverRight.png"), ("lever", "levers")),
    # characters
    Category(
        "explorer",
        "character",
        (
            "animated_characters/female_adventurer/femaleAdventurer_idle.png",
            "animated_characters/male_adventurer/maleAdventurer_idle.png",
        ),
        ("explorer", "explorers", "adventurer", "adventurers", "traveler", "travelers", "traveller"),
    ),
    Category(
        "robot", "character", ("animated_characters/robot/robot_idle.png",), ("robot", "robots", "automaton")
    ),
    Category("zombie", "character", ("animated_characters/zombie/zombie_idle.png",), ("zombie", "zombies")),
    Category("alien", "character", ("alien/alienBlue_front.png",), ("alien", "aliens")),
    # terrain (the biome): ground tiles, or pools in the ground for lava and water
    Category(
        "grass", "terrain", ("tiles/grassMid.png", "tiles/grassCenter.png"), ("grass", "grassy", "meadow")
    ),
    Category("snow", "terrain", ("tiles/snowMid.png", "tiles/snowCenter.png"), ("snow", "snowy")),
    Category("sand", "terrain", ("tiles/sandMid.png", "tiles/sandCenter.png"), ("sand", "sandy", "desert")),
    Category("stone", "terrain", ("tiles/stoneMid.png", "tiles/stoneCenter.png"), ("stone", "stony")),
    Category("lava", "terrain", ("tiles/lava.png",), ("lava", "magma")),
    Category("water", "terrain", ("tiles/water.png",), ("water", "lake", "pond", "pool")),
)

BY_NAME: dict[str, Category] = {c.name: c for c in CATEGORIES}
OBJECTS: tuple[Category, ...] = tuple(c for c in CATEGORIES if c.kind != "terrain")
TERRAINS: tuple[str, ...] = ("grass", "snow", "sand", "stone", "lava", "water")
TIMES: tuple[str, ...] = ("day", "dusk", "night")
TAG_WORDS: tuple[str, ...] = tuple(c.name for c in CATEGORIES) + TIMES  # what the fusion's tag head predicts

_PATTERNS: dict[str, re.Pattern[str]] = {
    c.name: re.compile(r"\b(" + "|".join(re.escape(w) for w in c.words) + r")\b", re.IGNORECASE)
    for c in CATEGORIES
}


def mentioned_categories(text: str) -> set[str]:
    """The categories a reply names, by the lexicon above (whole words, any case)."""
    return {name for name, pattern in _PATTERNS.items() if pattern.search(text)}
