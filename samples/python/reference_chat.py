"""One scene-aware turn with the PyTorch reference model: the smallest program that talks to an NPC.

Run:  python samples/python/reference_chat.py [SCREENSHOT.png] "what the player says"
"""

import sys

from npc_export import NpcModel

from npc_sdk import Delta, Done, GenerationConfig, Persona

persona = Persona(
    name="Mirela",
    description="The innkeeper of the Sleeping Griffin, who hears every rumour first.",
    personality="warm, nosy, quick to laugh",
    role_words={"ale": 1.5, "rumour": 1.5},
)
screenshot = sys.argv[1] if len(sys.argv) > 2 else None
text = sys.argv[-1] if len(sys.argv) > 1 else "Any news from the road?"

model = NpcModel.load()
print(model.fusion_info.describe())
print(f"{persona.name}: ", end="", flush=True)
for event in model.stream(text, persona=persona, screenshot=screenshot, config=GenerationConfig(seed=1)):
    if isinstance(event, Delta):
        print(event.text, end="", flush=True)
    elif isinstance(event, Done):
        print(f"\n({event.usage.completion_tokens} tokens, first after {event.timings.ttft_ms:.0f} ms)")
