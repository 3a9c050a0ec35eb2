"""The persona editor's prompt view: the exact prompt a persona makes for a sample line, with its token counts
against their budgets, rendered as `npc-sdk persona render` does (personas/prompt.py) with the served model's
tokenizer and chat format."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tokenizers import Tokenizer

from ..personas.chat_format import ChatFormat
from ..personas.lore import LoreHit
from ..personas.persona import Persona
from ..personas.prompt import MAX_PERSONA_TOKENS, Turn, build_prompt, fit_persona, turn_context, turn_lore
from ..runtime.game_state import check_state, state_note
from ..runtime.model_folder import ModelFolder
from ..runtime.onnx_model import TURN_RESERVE
from ..runtime.turn_model import DEFAULT_MAX_LEN


@dataclass(frozen=True)
class Rendered:
    prompt: str  # the decoder's text, the fusion vectors shown as a marker
    positions: int  # what the decoder reads: tokens and prefix vectors
    persona_tokens: int  # the persona block (system message and greeting), after any trimming
    persona_budget: int  # what a persona block may take before it is trimmed
    trimmed: tuple[str, ...]  # what was cut to fit, in words
    lore_tokens: int  # the lore this line fires
    lore_budget: int  # the persona's lore_budget_tokens
    context_budget: int  # positions the prompt may take: the context less the reply's max_tokens
    reply_tokens: int  # max_tokens of the persona's generation defaults
    note: str  # what is told before the player's line: lore, post-history, game state
    lore: tuple[LoreHit, ...] = field(default=())


class PromptRenderer:
    """The served model's tokenizer and chat format, read once from its folder (no graph is loaded)."""

    def __init__(self, model_dir: Path) -> None:
        folder = ModelFolder.open(
            model_dir, verify=False
        )  # the server checked every file when it loaded them
        manifest = folder.manifest
        self.tokenizer = Tokenizer.from_file(str(folder.file("tokenizer")))
        self.chat_format = ChatFormat.of_manifest({"chat_format": manifest.decoder.chat_format})
        self.context_length = min(DEFAULT_MAX_LEN, manifest.decoder.max_positions)
        self.persona_budget = max(256, min(MAX_PERSONA_TOKENS, self.context_length - TURN_RESERVE))
        fusion = manifest.fusion.config
        self.prefix_vectors = int(fusion.get("prefix_len", 8)) if manifest.fusion.trained else 0

    def count(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def render(
        self,
        persona: Persona,
        line: str,
        history: Sequence[Turn] = (),
        state: Mapping[str, str] | None = None,
    ) -> Rendered:
        tok, fmt = self.tokenizer, self.chat_format
        note = turn_context(tok, persona, history, line) + state_note(check_state(state))
        prompt = build_prompt(tok, persona, history, line, None, note, self.persona_budget, fmt)
        fitted = fit_persona(tok, persona, self.persona_budget, fmt)
        lore = tuple(turn_lore(tok, persona, history, line))
        text = tok.decode(prompt.token_ids, skip_special_tokens=False)
        if self.prefix_vectors:
            head, sep, tail = text.rpartition(fmt.user_start)
            text = f"{head}{sep}⟨{self.prefix_vectors} fusion vectors: the screenshot, the line and the persona⟩{tail}"
        max_tokens = persona.generation_defaults().max_tokens
        return Rendered(
            prompt=text,
            positions=prompt.length + self.prefix_vectors,
            persona_tokens=len(fitted.ids),
            persona_budget=self.persona_budget,
            trimmed=fitted.trimmed,
            lore_tokens=sum(self.count(h.text) for h in lore),
            lore_budget=persona.lore_budget_tokens,
            context_budget=self.context_length - max_tokens,
            reply_tokens=max_tokens,
            note=note,
            lore=lore,
        )
