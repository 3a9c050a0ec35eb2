"""Persona scripting: who an NPC is, the files designers write, and how a persona becomes a decoder prompt.

Owns: the persona model (`persona`), persona files in TOML/JSON with `extends` (`files`), Character Card
import/export (`cards`), the server's hot-reloading persona folder (`library`), and prompt rendering (`prompt`).

May import: `npc_sdk.errors` and `npc_sdk.runtime.generation` (a persona's generation defaults). Never
`npc_sdk.server` or the rest of the runtime (tests/test_layout.py checks).
"""
