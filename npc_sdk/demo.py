"""The embedded defaults: the demo persona, its scripted scene, and the benchmark prompt shared with the peers."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .personas.persona import Persona

DEMO_PERSONA = Persona(
    name="Brakka",
    description="A gruff dwarven blacksmith who runs the forge in a mountain village.",
    personality="blunt, proud of her craft, secretly kind to travellers",
    scenario="A traveller walks into the forge, showing Brakka what they saw on the road.",
    greeting="Hmph. Another traveller. Mind the anvil, it bites.",
    style="short sentences, forge and metal metaphors",
    role_words={"forge": 2.0, "anvil": 2.0, "steel": 1.5, "hammer": 1.5},
)


@dataclass(frozen=True)
class DemoLine:
    text: str  # what the player says
    screenshot: str | None  # file name under npc_sdk/assets/scenes, or None


DEMO_SCRIPT = (
    DemoLine("I just came down the meadow path. What do you make of what I saw there?", "meadow_slimes.png"),
    DemoLine("Then I found this cave. Is it safe to go in?", "lava_cave_key.png"),
    DemoLine("Can you sharpen my sword before I head back out?", None),
)

# The fixed benchmark prompt (60 tokens), word for word the one ../shared/bench/peer-ortgenai measures.
BENCH_PROMPT = (
    "<|im_start|>system\nYou are Brakka, a gruff dwarven blacksmith in a mountain village. Stay in character. "
    "Reply in one or two sentences.<|im_end|>\n<|im_start|>user\nHello! Can you fix my sword? I see a dragon flying "
    "over the forge.<|im_end|>\n<|im_start|>assistant\n"
)
BENCH_NEW_TOKENS = 60


def scene_path(name: str) -> Path:
    return Path(str(resources.files("npc_sdk") / "assets" / "scenes" / name))
