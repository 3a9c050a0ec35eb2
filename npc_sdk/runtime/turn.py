"""prepare_turn: one player line made ready to decode, the same way on every path (stateless, conversation, server).

A turn is: the line checked, the game state checked, the fusion's prefix and the scene facts, the action the line
asks for, the note the decoder is told (state, action, what is in view), the prompt rendered within the context
(oldest history turns left out when it does not fit), and one reply state per best-of-N candidate. A conversation
passes `reuse` to keep what its cache slot already holds; stateless callers prefill the whole prompt.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError
from ..personas.persona import Persona
from ..personas.prompt import Prompt, Turn, build_prompt, check_text, turn_context, turn_lore, turn_positions
from .actions import ActionState, Decision, action_note
from .best_of import Pick, candidate_configs, critic_pick
from .decode_loop import ReplyState
from .events import Action, ActionDecision, ActionOption, BiasedWord, Explanation, LoreHit
from .game_state import check_state, state_note
from .generation import GenerationConfig
from .images import ImageInput
from .memory import KnownMemories, TurnMemory, known_note, memory_note
from .scene import SceneEntity, SceneFacts, seen_tags
from .turn_model import TurnModel

Reuse = Callable[
    [Prompt], int
]  # readies the cache for the whole prompt; returns the positions it already holds


@dataclass
class PreparedTurn:
    """A turn ready to decode: the prompt, what of it must be prefilled, and its reply state."""

    text: str
    prefix: np.ndarray | None  # this turn's fusion vectors (kept with the turn for exact rebuilds)
    context: str  # lore and instructions shown with the line (kept with the turn too)
    target: Prompt  # the whole prompt
    embeds: np.ndarray  # [new positions, hidden]: the part the cache does not hold yet
    state: ReplyState
    action: Action | None = None  # the declared action the line asked for, sent before the first delta
    line_vector: np.ndarray | None = None  # the line's vector, if the action decision or recall made it
    extra_states: tuple[ReplyState, ...] = ()  # best of N: the other candidates' states (best_of.py)
    pick: Pick | None = None  # best of N: chooses among the finished candidates
    window_start: int = 0  # the first history turn the prompt shows
    explanation: Explanation | None = (
        None  # why this reply (asked for with `explain`); the emotion comes later
    )


def prepare_turn(
    model: TurnModel,
    persona: Persona,
    history: Sequence[Turn],
    text: str,
    *,
    screenshot: ImageInput | None = None,
    scene: Sequence[SceneEntity] = (),
    config: GenerationConfig | None = None,
    use_prefix: bool = True,
    prefix: np.ndarray | None = None,
    started: float | None = None,
    state: Mapping[str, str] | None = None,
    memory: ActionState | None = None,
    window_start: int = 0,
    reuse: Reuse | None = None,
    recall: TurnMemory | None = None,
    known: KnownMemories | None = None,
    explain: bool = False,
    heard: Sequence[str] = (),
) -> PreparedTurn:
    """Encode, fuse and render the turn, decide its action, and make its reply states.

    `scene` lists what the game says is in view; with a screenshot the image head's tags join it. `state` is the
    game's key/value facts (game_state.py). `prefix` given is used as it is; `use_prefix` False leaves the fusion's
    prefix vectors out (a screenshot's tags still reach the note and the bias). `memory` holds the actions'
    cooldowns. `recall` holds the history's sentence vectors: once the window has rolled past turns, the ones most
    relevant to this line are told in the turn's context (memory.py; a fresh one is made when None). `known` holds
    the long-term memories (seeded in the persona, the player's facts, the game's): the ones about this line are
    told in the turn's context too, from the first turn on. `explain` keeps what went into the prompt and the
    sampler (`PreparedTurn.explanation`); nothing generated changes. Everything that can fail on bad input happens
    before `reuse` touches the cache.
    """
    config = config or persona.generation_defaults()
    started = time.perf_counter() if started is None else started
    check_text(text)
    game_state = check_state(state)
    facts = model.scene_facts(None, scene)
    if use_prefix and prefix is None:
        prefix, tag_probs = model.see(text, persona, screenshot)
        facts = model.scene_facts(tag_probs, scene)
    elif not use_prefix:
        prefix = None
        if screenshot is not None:  # the head still says what is in view: only the vectors are left out
            facts = model.scene_facts(model.see(text, persona, screenshot)[1], scene)
    action, line_vector, decision = _decide_action(model, persona, history, text, facts, game_state, memory)
    declared = {a.name: a for a in persona.actions}
    notes = (state_note(game_state), action_note(declared[action.name]) if action else "", facts.note())
    note = "".join(notes)
    budget = model.context_length - config.max_tokens
    recall = recall if recall is not None else TurnMemory(model.sentence_vectors)
    remembered = _Remembered(model, persona, history, text, line_vector, recall, known)
    target, context, window_start = _render(
        model, persona, history, text, prefix, note, budget, window_start, remembered
    )
    cached = reuse(target) if reuse is not None else 0
    states = _reply_states(model, persona, history, config, facts, target.length, cached, started, heard)
    # the line's vector, where the action decision or recall made one: the pick and the emotion reuse it
    line_vector = remembered.line_vector
    pick = critic_pick(model.critic, text, persona, started, line_vector) if len(states) > 1 else None
    embeds = model.embed(target.tail(cached))
    explanation = None
    if explain:
        lore = turn_lore(model.tokenizer, persona, history, text)
        explanation = _explanation(
            lore, notes, context, remembered, window_start, len(history), decision, states[0]
        )
    return PreparedTurn(
        text,
        prefix,
        context,
        target,
        embeds,
        states[0],
        action,
        line_vector,
        tuple(states[1:]),
        pick,
        window_start,
        explanation,
    )


def _decide_action(
    model: TurnModel,
    persona: Persona,
    history: Sequence[Turn],
    text: str,
    facts: SceneFacts,
    game_state: Mapping[str, str],
    memory: ActionState | None,
) -> tuple[Action | None, np.ndarray | None, Decision | None]:
    """The declared action the line asks for (or None), the line's vector (the emotion reuses it) and the
    decision's numbers."""
    if not persona.actions:
        return None, None, None
    line_vector = model.sentence_vectors([text])[0]
    decision = model.action_decider.decision(
        text,
        line_vector,
        persona.actions,
        facts=facts,
        state=game_state,
        turn=len(history),
        memory=memory,
    )
    return decision.call, line_vector, decision


def _explanation(
    lore: Sequence[LoreHit],
    notes: tuple[str, str, str],
    context: str,
    remembered: _Remembered,
    window_start: int,
    turns: int,
    decision: Decision | None,
    state: ReplyState,
) -> Explanation:
    """What went into this turn's prompt and sampler, as prepare_turn made them."""
    state_text, action_text, scene_text = notes
    action = None
    if decision is not None:
        call, best = decision.call, decision.best_rejected()
        action = ActionDecision(
            call.name if call else "",
            call.confidence if call else 0.0,
            round(decision.request, 4),
            decision.threshold,
            decision.request_threshold,
            ActionOption(best[0], round(best[1], 4), best[2]) if best else None,
        )
    return Explanation(
        lore=tuple(lore),
        memory_note=remembered.notes.get(window_start, ""),
        recalled_turns=tuple(remembered.picked.get(window_start, ())),
        history_start=window_start,
        history_turns=turns - window_start,
        scene_note=scene_text,
        state_note=state_text,
        action_note=action_text,
        context=context,
        biased_words=tuple(BiasedWord(w, round(v, 4), src) for w, v, src in state.sampler.biased),
        action=action,
    )


WINDOW_SLACK = 4  # when the history window must move, it frees 1/WINDOW_SLACK of the context besides


class _Remembered:
    """The memory note for a window that starts at a given turn, made only once the window has rolled over."""

    def __init__(
        self,
        model: TurnModel,
        persona: Persona,
        history: Sequence[Turn],
        text: str,
        line_vector: np.ndarray | None,
        recall: TurnMemory,
        known: KnownMemories | None,
    ) -> None:
        self.model, self.persona, self.history, self.text = model, persona, history, text
        self.line_vector, self.recall, self.known = line_vector, recall, known
        self._known_note: str | None = None
        self.notes: dict[int, str] = {}  # window start -> the note made for it (for the explanation)
        self.picked: dict[int, list[int]] = {}  # window start -> the turns that note quotes

    def _line_vector(self) -> np.ndarray:
        if self.line_vector is None:
            self.line_vector = self.model.sentence_vectors([self.text])[0]
        return self.line_vector

    def _count(self, text: str) -> int:
        return len(self.model.tokenizer.encode(text, add_special_tokens=False).ids)

    def note(self, window_start: int) -> str:
        """What the decoder is told it remembers: long-term memories about this line first (they share the
        persona's memory budget), then the exchanges the window has rolled past."""
        budget = self.persona.memory_budget_tokens
        if budget <= 0:
            return ""
        if self._known_note is None:  # the same whatever the window: made once a turn
            self._known_note = ""
            if self.known is not None and self.known.items:
                self._known_note = known_note(self.known.recall(self._line_vector(), budget, self._count))
        if window_start <= 0:
            self.notes[window_start] = self._known_note
            return self._known_note
        self.recall.sync(self.history)
        picked = self.recall.recall(
            self._line_vector(), window_start, budget - self._count(self._known_note), self._count
        )
        self.picked[window_start] = picked
        self.notes[window_start] = self._known_note + memory_note([self.history[i] for i in picked])
        return self.notes[window_start]


def _render(
    model: TurnModel,
    persona: Persona,
    history: Sequence[Turn],
    text: str,
    prefix: np.ndarray | None,
    note: str,
    budget: int,
    window_start: int,
    remembered: _Remembered,
) -> tuple[Prompt, str, int]:
    """The prompt within `budget` positions, its context, and the first history turn it shows.

    The window only moves forward, so the prompt's prefix, and with it a conversation's KV state, stays reusable
    until the window has to move again. The context holds what the turns left out say about this line."""
    tok = model.tokenizer
    own = turn_context(tok, persona, history, text) + note
    lengths: list[int] | None = None
    while True:
        window = history[window_start:]
        context = remembered.note(window_start) + own
        target = build_prompt(
            tok, persona, window, text, prefix, context, model.persona_tokens, model.chat_format
        )
        if target.length <= budget:
            return target, context, window_start
        if not window:
            raise InvalidInputError(
                "text",
                f"the persona and this line take {target.length} positions; the context holds {budget}",
            )
        # Move on by a quarter of the context more than needed: the window then stays put for the next turns, so
        # their prompts keep the cached prefix (moving by one turn each time re-prefilled ~4,000 positions every
        # turn of a long session). Skipping at once also spares a long stored session, loaded anew, rendering its
        # history once per turn dropped; the loop checks the result with the memory note it brings.
        if lengths is None:
            lengths = [turn_positions(tok, turn, model.chat_format) for turn in history]
        over, dropped = target.length - budget + budget // WINDOW_SLACK, 0
        while over > 0 and window_start + dropped < len(history):
            over -= lengths[window_start + dropped]
            dropped += 1
        window_start += max(dropped, 1)


def _reply_states(
    model: TurnModel,
    persona: Persona,
    history: Sequence[Turn],
    config: GenerationConfig,
    facts: SceneFacts,
    prompt_tokens: int,
    cached: int,
    started: float,
    heard: Sequence[str] = (),
) -> list[ReplyState]:
    """One reply state per best-of-N candidate (one for a plain turn); each sampler blocks the n-grams of the last
    two replies and of what the other NPCs of a scene just said (`heard`)."""
    recent = [t.reply for t in history[-2:]]
    return [
        ReplyState(
            tokenizer=model.tokenizer,
            config=cfg,
            sampler=model.sampler(persona, cfg, facts, recent, heard),
            eos_id=model.eos_id,
            prompt_tokens=prompt_tokens,
            cached_tokens=cached,
            started=started,
            seen=seen_tags(facts),
        )
        for cfg in candidate_configs(config)
    ]
