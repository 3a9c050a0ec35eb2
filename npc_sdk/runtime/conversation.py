"""Conversation: one NPC dialogue on the runtime, feeding only what the decoder has not seen yet.

The conversation remembers exactly which positions its KV state holds (`fed`). A new turn renders the full
prompt, keeps the longest common prefix with `fed`, rewinds the cache to it and prefills the rest: usually just
the closing of the last reply and the new user block. A snapshot (prompt log + KV copy) restores it anywhere.

History window: when persona + history + this turn + max_tokens would not fit in the cache slot, the oldest
turns are left out of the prompt (persona and greeting always stay). The window only moves forward, so the
prompt prefix, and with it the KV state, stays reusable until the window has to move again. Stored history is
never dropped; only what the decoder reads is.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from ..personas.persona import Persona
from ..personas.prompt import Prompt, Turn, next_turn_opening
from .actions import ActionState
from .events import Action, Done, ReplyEvent
from .generation import GenerationConfig
from .images import ImageInput
from .kv_cache import KVSnapshot
from .memory import KnownMemories, Memory, TurnMemory
from .onnx_model import OnnxNpcModel
from .scene import SceneEntity
from .slot_decode import SlotSource, decode_turn
from .turn import PreparedTurn, prepare_turn

__all__ = ["Conversation", "ConversationSnapshot", "PreparedTurn"]


@dataclass
class ConversationSnapshot:
    history: list[Turn]  # finished turns
    fed: Prompt  # what the KV state holds, position by position
    kv: KVSnapshot | None  # the decoder state itself (None: rebuilt on the next turn)
    window_start: int = 0  # first history turn the prompt shows


@dataclass
class Conversation:
    model: OnnxNpcModel
    persona: Persona
    history: list[Turn] = field(default_factory=list)
    fed: Prompt = field(default_factory=Prompt)
    slot: int | None = None
    parked: KVSnapshot | None = None  # KV state held in host memory while the slot is given back
    window_start: int = 0
    actions: ActionState = field(
        default_factory=ActionState
    )  # cooldowns (not persisted: a restart resets them)
    recall: TurnMemory | None = None  # the history's sentence vectors (memory.py), made on first need
    # long-term memories recalled by relevance from the first turn (memory.py); None: the persona's seeded ones
    known: KnownMemories | None = None

    def __post_init__(self) -> None:
        if self.recall is None:
            self.recall = TurnMemory(self.model.sentence_vectors)

    def remember(self, memories: Sequence[Memory]) -> None:
        """What this NPC knows besides the history: the persona's seeded memories and these."""
        known = KnownMemories(self.model.sentence_vectors)
        seeds = [Memory(m.text, self.persona.name, source="persona") for m in self.persona.memories]
        known.set([*seeds, *memories])
        self.known = known

    # ---- residency ---------------------------------------------------------------------------------------
    def attach(self, slot: int | None = None) -> int:
        """Give the conversation a cache slot (its parked state restored into it); return the slot."""
        if self.slot is None:
            self.slot = self.model.acquire_slot() if slot is None else slot
            if self.parked is not None:
                self.model.cache.restore(self.slot, self.parked)
                self.parked = None
            else:
                self.fed = Prompt()  # nothing held: the next turn prefills from the start
        return self.slot

    def park(self) -> None:
        """Copy the KV state out and give the slot back (for LRU eviction of idle dialogues)."""
        if self.slot is not None:
            self.parked = self.model.cache.snapshot(self.slot) if self.fed.length else None
            self.model.release_slot(self.slot)
            self.slot = None

    def drop_kv(self) -> None:
        """Forget the KV state entirely (it is rebuilt from the history on the next turn)."""
        self.close()
        self.fed = Prompt()

    def close(self) -> None:
        if self.slot is not None:
            self.model.release_slot(self.slot)
            self.slot = None
        self.parked = None

    @property
    def kv_bytes(self) -> int:
        return self.parked.nbytes if self.parked is not None else 0

    def snapshot(self) -> ConversationSnapshot:
        kv = self.model.cache.snapshot(self.slot) if self.slot is not None else self.parked
        return ConversationSnapshot(
            list(self.history), Prompt(list(self.fed.segments)), kv, self.window_start
        )

    @classmethod
    def restore(cls, model: OnnxNpcModel, persona: Persona, snap: ConversationSnapshot) -> Conversation:
        usable = snap.kv is not None and snap.kv.length == snap.fed.length > 0
        fed = snap.fed if usable else Prompt()
        return cls(
            model, persona, list(snap.history), fed, None, snap.kv if usable else None, snap.window_start
        )

    @property
    def cached_positions(self) -> int:
        return self.fed.length

    # ---- turns -------------------------------------------------------------------------------------------
    def prepare(
        self,
        text: str,
        *,
        screenshot: ImageInput | None = None,
        scene: Sequence[SceneEntity] = (),
        config: GenerationConfig | None = None,
        use_prefix: bool = True,
        prefix: np.ndarray | None = None,
        started: float | None = None,
        state: Mapping[str, str] | None = None,
        explain: bool = False,
        heard: Sequence[str] = (),
    ) -> PreparedTurn:
        """The turn prepared as every path prepares one (turn.py), on this conversation's history, action
        cooldowns and history window, with the cache rewound to what can be reused.

        `scene` lists what the game says is in view; with a screenshot the image head's tags join it. `state` is
        the game's key/value facts (game_state.py). `explain` makes the Done carry `explanation` (`annotate`).
        Everything that can fail on bad input happens before the cache is touched.
        """
        turn = prepare_turn(
            self.model,
            self.persona,
            self.history,
            text,
            screenshot=screenshot,
            scene=scene,
            config=config,
            use_prefix=use_prefix,
            prefix=prefix,
            started=started,
            state=state,
            memory=self.actions,
            window_start=self.window_start,
            reuse=self._reuse,
            recall=self.recall,
            known=self._known(),
            explain=explain,
            heard=heard,
        )
        self.window_start = turn.window_start
        return turn

    def _known(self) -> KnownMemories | None:
        if self.known is None and self.persona.memories:
            self.remember([])
        return self.known

    def _reuse(self, target: Prompt) -> int:
        """Attach a slot and keep what it holds of `target` (at least one position is left to prefill); a fresh
        slot starts from the persona's shared KV when another session computed it. Returns the positions kept."""
        slot = self.attach()
        if not self.fed.length:
            block = self.model.persona_block(self.persona)
            shared = self.model.cached_persona_kv(block)
            if shared is not None:  # another session of this persona computed it already
                self.model.cache.restore(slot, shared)
                self.fed = Prompt([list(block)])
        common = min(target.common_prefix(self.fed), target.length - 1)
        self.model.cache.rewind(slot, common)
        self.fed = _head(target, common)
        return common

    def annotate(self, turn: PreparedTurn, done: Done) -> Done:
        """`done` with the emotion its reply carries (a few milliseconds: one text-encoder pass), and, when the
        turn was asked to explain itself, its explanation with every emotion's share (one more pass)."""
        done = replace(done, emotion=self.model.emotion(done.text, turn.text, turn.line_vector))
        if turn.explanation is None:
            return done
        shares = tuple(self.model.emotion_scores(done.text, turn.text, turn.line_vector))
        return replace(done, explanation=replace(turn.explanation, emotion_scores=shares))

    def share_persona_kv(self) -> bool:
        """Offer the persona block's KV to other sessions of this persona (the model's shared cache), once the
        slot holds it: True when the cache has it now, False while the slot holds less of it."""
        assert self.slot is not None
        return self.model.remember_persona_kv(self.model.persona_block(self.persona), self.slot)

    def finish(self, turn: PreparedTurn, done: Done | None) -> None:
        """Record the end of a turn: `done` joins the history; None (cancelled, failed) leaves no trace."""
        assert self.slot is not None
        cache = self.model.cache
        held = int(cache.lengths[self.slot])
        if done is not None and held >= turn.target.length:
            self.share_persona_kv()
            self.fed = turn.target.extended(list(done.token_ids)[: held - turn.target.length])
            self.history.append(Turn(turn.text, done.text, turn.prefix, turn.context))
            if turn.action is not None:
                self.actions.last_fired[turn.action.name] = len(self.history) - 1
        elif held >= turn.target.length:
            cache.rewind(self.slot, turn.target.length)  # drop the half reply, keep the prompt's state
            self.fed = turn.target
        else:
            cache.rewind(self.slot, 0)
            self.fed = Prompt()

    def open_next_turn(self) -> int:
        """Feed the positions that every next turn starts with, whatever its line: the close of the last reply
        and the header of the player's next message. Done while the player reads the reply, it takes them off
        the next turn's first token (5 of a screenshot turn's 63 positions in ChatML). Returns how many were fed;
        0 when the slot is gone or the next prompt would not start with what the slot holds."""
        if self.slot is None or not self.history:
            return 0
        model = self.model
        window = self.history[self.window_start :]
        opening = next_turn_opening(
            model.tokenizer, self.persona, window, model.persona_tokens, model.chat_format
        )
        held = self.fed.length
        extra = opening.length - held
        if extra <= 0 or opening.common_prefix(self.fed) != held or opening.length >= model.cache.max_len:
            return 0
        SlotSource(model, self.slot).prefill(model.embed(opening.tail(held)))
        self.fed = opening
        return extra

    def stream(self, text: str, **kwargs) -> Iterator[ReplyEvent]:
        """Yield the reply's events; the turn joins `history` only when its Done has been produced. Once the
        Done is out, the next turn's opening is fed (`open_next_turn`)."""
        turn = self.prepare(text, **kwargs)
        assert self.slot is not None
        done: Done | None = None
        try:
            if turn.action is not None:
                yield turn.action
            for event in decode_turn(self.model, self.slot, turn):
                if isinstance(event, Done):
                    event = done = self.annotate(turn, event)
                yield event
        finally:
            self.finish(turn, done)
        # not when the caller stopped early: then nothing says that a next turn is coming soon
        if done is not None:
            self.open_next_turn()

    def reply(self, text: str, **kwargs) -> Done:
        *_, done = self.stream(text, **kwargs)
        assert isinstance(done, Done)
        return done

    def turn(self, text: str, **kwargs) -> tuple[Action | None, Done]:
        """The turn's action (if the line asked for one) and its Done."""
        action = None
        done = None
        for event in self.stream(text, **kwargs):
            if isinstance(event, Action):
                action = event
            elif isinstance(event, Done):
                done = event
        assert done is not None
        return action, done

    def __enter__(self) -> Conversation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _head(prompt: Prompt, length: int) -> Prompt:
    """The first `length` positions of `prompt`."""
    out = Prompt()
    for seg in prompt.segments:
        if length <= 0:
            break
        piece = seg[:length]
        length -= len(piece)
        if isinstance(piece, list):
            out.add_ids(piece)
        else:
            out.add_prefix(piece)
    return out
