"""The embedded defaults: the demo persona, its scripted scene, and the benchmark prompt shared with the peers."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .personas.chat_format import CHATML, ChatFormat
from .personas.persona import Example, LoreEntry, Persona
from .runtime.scene import SceneEntity

# Brakka as samples/personas/brakka.toml (with its villager base) writes her: the fusion and the decoder LoRA were
# trained on that persona's prompt, example dialogue included, so the demo shows her as she was taught.
DEMO_PERSONA = Persona(
    name="Brakka",
    id="brakka",
    description="A gruff dwarven blacksmith who runs the forge in Emberfall.",
    personality="blunt, proud of her craft, secretly kind to travellers",
    scenario="A traveller passes through Emberfall on the road to the old mine.",
    greeting="Hmph. Another traveller. Mind the anvil, it bites.",
    style="short sentences, forge and metal metaphors, calls everyone 'lad' or 'lass'",
    examples=[
        Example("Can you fix my sword?", "Let me see the edge. Hmph. Who sharpened this, a goat?"),
        Example(
            "What do you make of that?",
            "Slimes on the path, lad, and a gem in the grass. Leave the slimes be and bring me the gem.",
        ),
    ],
    role_words={"forge": 2.0, "anvil": 2.0, "steel": 1.5, "hammer": 1.5, "Emberfall": 1.5},
    lore=[
        LoreEntry(
            ["sword", "blade", "weapon"],
            "Brakka reforges blades for ten silver; star-metal blades she refuses to touch.",
            order=20,
        )
    ],
)


@dataclass(frozen=True)
class DemoLine:
    text: str  # what the player says
    screenshot: str | None  # file name under npc_sdk/assets/scenes, or None
    scene: tuple[SceneEntity, ...] = ()  # what the game says is in view


DEMO_SCRIPT = (
    DemoLine("I just came down the meadow path. What do you make of what I saw there?", "meadow_slimes.png"),
    DemoLine("Then I found this cave. Is it safe to go in?", "lava_cave_key.png"),
    DemoLine(
        "Who is that waiting by your door?",
        None,
        (SceneEntity("explorer", "Wren the explorer", x=0.2), SceneEntity("door", x=0.15)),
    ),
    DemoLine("Can you sharpen my sword before I head back out?", None),
)

# The fixed benchmark prompt (60 tokens in ChatML), word for word the one ../shared/bench/peer-ortgenai measures.
BENCH_SYSTEM = (
    "You are Brakka, a gruff dwarven blacksmith in a mountain village. Stay in character. "
    "Reply in one or two sentences."
)
BENCH_USER = "Hello! Can you fix my sword? I see a dragon flying over the forge."


def bench_prompt(fmt: ChatFormat = CHATML) -> str:
    """The benchmark prompt in a decoder's chat format (ChatML: the peer's exact text)."""
    return f"{fmt.system_start}{BENCH_SYSTEM}{fmt.system_end}{fmt.user_start}{BENCH_USER}{fmt.generation}"


BENCH_PROMPT = bench_prompt(CHATML)
BENCH_NEW_TOKENS = 60


def scene_path(name: str) -> Path:
    return Path(str(resources.files("npc_sdk") / "assets" / "scenes" / name))
