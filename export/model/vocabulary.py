"""The tag vocabulary: what the grounding head can say a picture holds, and the words that name each tag.

Both the reference model (the fusion's tag head predicts `TAG_WORDS`; a fusion file without its own vocabulary
gets `builtin_vocabulary()`) and the data stage (the scene generator, the datasets, the corpus) read it, so it
lives on the model side. The sprites each category is drawn with, and the lexicon that finds the words in a reply,
are the data stage's (data/scene_lexicon.py). Words with an everyday second meaning that the model uses all the
time ("fly", "saw", "star") are left out of the scenes on purpose (they appear only as distractors, never
labelled), and "gate" is no word for a door (a captain of the watch guards the city gate), so they cannot blur
the metrics.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Category:
    name: str  # the label, also the tag word shown to the decoder (one SmolLM2 token)
    kind: str  # enemy | item | prop | character | terrain
    words: tuple[str, ...]  # lexicon: words that count as naming this category


@dataclass(frozen=True)
class TagInfo:
    name: str  # the label in the JSONL, and the word the decoder is told
    words: tuple[str, ...]  # words that count as naming it (lexicon), any case, singular or plural as listed
    kind: str = "thing"  # thing | terrain | time: how the scene note phrases it


CATEGORIES: tuple[Category, ...] = (
    # enemies
    Category("slime", "enemy", ("slime", "slimes", "ooze", "blob", "blobs")),
    Category("bee", "enemy", ("bee", "bees", "wasp", "wasps", "hornet", "hornets")),
    Category("frog", "enemy", ("frog", "frogs", "toad", "toads")),
    Category("worm", "enemy", ("worm", "worms")),
    Category("fish", "enemy", ("fish", "fishes")),
    Category("mouse", "enemy", ("mouse", "mice", "rat", "rats")),
    Category("beetle", "enemy", ("beetle", "beetles", "ladybug", "ladybugs", "bug", "bugs")),
    # items
    Category("coin", "item", ("coin", "coins")),
    Category(
        "gem",
        "item",
        ("gem", "gems", "jewel", "jewels", "crystal", "crystals", "ruby", "rubies", "emerald", "emeralds"),
    ),
    Category("key", "item", ("key", "keys")),
    Category("flag", "item", ("flag", "flags", "banner", "banners")),
    # props
    Category("torch", "prop", ("torch", "torches")),
    Category("box", "prop", ("box", "boxes", "crate", "crates")),
    Category("door", "prop", ("door", "doors", "doorway", "doorways")),
    Category("sign", "prop", ("sign", "signs", "signpost", "signposts")),
    Category("ladder", "prop", ("ladder", "ladders")),
    Category("spike", "prop", ("spike", "spikes")),
    Category("bush", "prop", ("bush", "bushes", "shrub", "shrubs")),
    Category("cactus", "prop", ("cactus", "cacti", "cactuses")),
    Category("mushroom", "prop", ("mushroom", "mushrooms", "toadstool", "toadstools")),
    Category("rock", "prop", ("rock", "rocks", "boulder", "boulders")),
    Category("bomb", "prop", ("bomb", "bombs")),
    Category("lever", "prop", ("lever", "levers")),
    # characters
    Category(
        "explorer",
        "character",
        ("explorer", "explorers", "adventurer", "adventurers", "traveler", "travelers", "traveller"),
    ),
    Category("robot", "character", ("robot", "robots", "automaton")),
    Category("zombie", "character", ("zombie", "zombies")),
    Category("alien", "character", ("alien", "aliens")),
    # terrain (the biome): ground tiles, or pools in the ground for lava and water
    Category("grass", "terrain", ("grass", "grassy", "meadow")),
    Category("snow", "terrain", ("snow", "snowy")),
    Category("sand", "terrain", ("sand", "sandy", "desert")),
    Category("stone", "terrain", ("stone", "stony")),
    Category("lava", "terrain", ("lava", "magma")),
    Category("water", "terrain", ("water", "lake", "pond", "pool")),
)

BY_NAME: dict[str, Category] = {c.name: c for c in CATEGORIES}
OBJECTS: tuple[Category, ...] = tuple(c for c in CATEGORIES if c.kind != "terrain")
TERRAINS: tuple[str, ...] = ("grass", "snow", "sand", "stone", "lava", "water")
TIMES: tuple[str, ...] = ("day", "dusk", "night")
TAG_WORDS: tuple[str, ...] = tuple(c.name for c in CATEGORIES) + TIMES  # what the fusion's tag head predicts

TIME_WORDS: dict[str, tuple[str, ...]] = {
    "day": ("day", "daylight", "sunny", "sunshine"),
    "dusk": ("dusk", "sunset", "evening", "twilight"),
    "night": ("night", "dark", "moonlight", "stars"),
}


def builtin_vocabulary() -> list[TagInfo]:
    """The Kenney scenes' tags: 27 object categories, 6 terrains, 3 times of day."""
    tags = [TagInfo(c.name, c.words, "terrain" if c.kind == "terrain" else "thing") for c in CATEGORIES]
    return tags + [TagInfo(t, TIME_WORDS[t], "time") for t in TIMES]
