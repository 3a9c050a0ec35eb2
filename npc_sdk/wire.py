"""Conversions between the proto messages engines send and the SDK's own types, with field-naming errors."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from PIL import Image

from ._proto.npc.v1 import npc_pb2 as pb
from .errors import InvalidInputError
from .personas.actions import Action as ActionDecl
from .personas.actions import ActionParam
from .personas.persona import Example, LoreEntry, Persona, SeedMemory
from .personas.prompt import Turn
from .runtime.events import (
    Action,
    ActionDecision,
    ActionOption,
    BiasedWord,
    Candidate,
    Delta,
    Done,
    Emotion,
    Explanation,
    LoreHit,
    ReplyEvent,
    SeenTag,
    Timings,
    Usage,
)
from .runtime.generation import GenerationConfig
from .runtime.images import decode_bytes, decode_raw
from .runtime.memory import Memory
from .runtime.scene import MAX_ENTITIES, SceneEntity, check_entities

MEMORY_BUDGET_DEFAULT = Persona.__dataclass_fields__["memory_budget_tokens"].default
SESSION_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
PLAYER_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_ENCODED = {pb.Image.PNG: "PNG", pb.Image.JPEG: "JPEG"}
_RAW_CHANNELS = {pb.Image.RGBA8: 4, pb.Image.RGB8: 3}


def check_session_id(session_id: str, field: str = "session_id") -> str:
    if not SESSION_ID.match(session_id):
        raise InvalidInputError(field, "must be 1-64 characters of letters, digits, '_', '.' or '-'")
    return session_id


def check_player_id(player_id: str, field: str = "player_id", *, required: bool = False) -> str:
    """'' (no player) or a valid id; `required` refuses ''."""
    if (player_id or required) and not PLAYER_ID.match(player_id):
        raise InvalidInputError(field, "must be 1-64 characters of letters, digits, '_', '.', ':' or '-'")
    return player_id


def memory_from_proto(msg: pb.Memory, field: str = "memory", source: str | None = None) -> Memory:
    """A memory as a client sent it, checked (the id and time are the server's to set)."""
    check_player_id(msg.player_id, f"{field}.player_id")
    if msg.group and not SESSION_ID.match(msg.group):
        raise InvalidInputError(
            f"{field}.group", "must be 1-64 characters of letters, digits, '_', '.' or '-'"
        )
    return Memory(
        text=" ".join(msg.text.split()),
        npc=msg.npc.strip(),
        group=msg.group,
        player_id=msg.player_id,
        source=source or msg.source or "game",
        id=msg.id,
        created_ms=msg.created_unix_ms,
    ).check(field)


def memory_to_proto(memory: Memory) -> pb.Memory:
    return pb.Memory(
        id=memory.id,
        npc=memory.npc,
        group=memory.group,
        player_id=memory.player_id,
        text=memory.text,
        source=memory.source,
        created_unix_ms=memory.created_ms,
    )


_GEN_FIELDS = ("max_tokens", "temperature", "top_p", "top_k", "repetition_penalty")


def persona_from_proto(msg: pb.Persona, field: str = "persona") -> Persona:
    generation: dict = {k: getattr(msg.generation, k) for k in _GEN_FIELDS if msg.generation.HasField(k)}
    for k in ("temperature", "top_p", "repetition_penalty"):
        if k in generation:
            generation[k] = round(float(generation[k]), 6)
    if msg.generation.stop:
        generation["stop"] = list(msg.generation.stop)
    try:
        return Persona(
            name=msg.name,
            description=msg.description,
            personality=msg.personality,
            scenario=msg.scenario,
            greeting=msg.greeting,
            style=msg.style,
            role_words=dict(msg.role_words),
            id=msg.id,
            alternate_greetings=list(msg.alternate_greetings),
            system_prompt_override=msg.system_prompt,
            post_history=msg.post_history,
            examples=[Example(e.user, e.npc) for e in msg.examples],
            banned_words=list(msg.banned_words),
            lore=[_lore_from_proto(e) for e in msg.lore],
            lore_budget_tokens=msg.lore_budget_tokens or 200,
            lore_scan_turns=msg.lore_scan_turns if msg.HasField("lore_scan_turns") else 2,
            lore_recursion=msg.lore_recursion,
            memory_budget_tokens=(
                msg.memory_budget_tokens if msg.HasField("memory_budget_tokens") else MEMORY_BUDGET_DEFAULT
            ),
            memory_group=msg.memory_group,
            memories=[SeedMemory(m.text, m.shared) for m in msg.memories],
            talkativeness=round(float(msg.talkativeness), 6) if msg.HasField("talkativeness") else 0.5,
            actions=[_action_from_proto(a) for a in msg.actions],
            generation=generation,
        )
    except InvalidInputError as exc:
        raise InvalidInputError(exc.field.replace("persona", field, 1), exc.message) from exc


def _action_from_proto(a: pb.ActionDecl) -> ActionDecl:
    def default(p: pb.ActionParamDecl) -> str | float | None:
        if not p.default:
            return None
        if p.type == "number":
            try:
                return float(p.default)
            except ValueError:
                return p.default  # refused by validation, naming the field
        return p.default

    return ActionDecl(
        name=a.name,
        description=a.description,
        examples=list(a.examples),
        params={
            k: ActionParam(p.type, list(p.choices), not p.optional, default(p)) for k, p in a.params.items()
        },
        cooldown_turns=a.cooldown_turns,
        when={k: list(v.values) for k, v in a.when.items()},
    )


def _action_to_proto(a: ActionDecl) -> pb.ActionDecl:
    return pb.ActionDecl(
        name=a.name,
        description=a.description,
        examples=a.examples,
        params={
            k: pb.ActionParamDecl(
                type=p.type,
                choices=p.choices,
                optional=not p.required,
                default=""
                if p.default is None
                else _arg_text(p.default)
                if isinstance(p.default, float)
                else str(p.default),
            )
            for k, p in a.params.items()
        },
        cooldown_turns=a.cooldown_turns,
        when={k: pb.StateValues(values=v) for k, v in a.when.items()},
    )


def _lore_from_proto(e: pb.LoreEntry) -> LoreEntry:
    return LoreEntry(
        list(e.keys),
        e.text,
        e.enabled,
        e.order,
        secondary_keys=list(e.secondary_keys),
        selective_logic=e.selective_logic or "and_any",
        constant=e.constant,
        use_regex=e.use_regex,
        case_sensitive=e.case_sensitive,
        whole_words=e.whole_words if e.HasField("whole_words") else True,
        priority=e.priority if e.HasField("priority") else None,
        position=e.position or "before_char",
        depth=e.depth if e.HasField("depth") else 4,
        scan_depth=e.scan_depth if e.HasField("scan_depth") else None,
        name=e.name,
    )


def _lore_to_proto(e: LoreEntry) -> pb.LoreEntry:
    return pb.LoreEntry(
        keys=e.keys,
        text=e.text,
        enabled=e.enabled,
        order=e.order,
        secondary_keys=e.secondary_keys,
        selective_logic=e.selective_logic,
        constant=e.constant,
        use_regex=e.use_regex,
        case_sensitive=e.case_sensitive,
        whole_words=e.whole_words,
        priority=e.priority,
        position=e.position,
        depth=e.depth,
        scan_depth=e.scan_depth,
        name=e.name,
    )


def persona_to_proto(persona: Persona) -> pb.Persona:
    gen = {k: v for k, v in persona.generation.items() if k != "stop"}
    return pb.Persona(
        name=persona.name,
        description=persona.description,
        personality=persona.personality,
        scenario=persona.scenario,
        greeting=persona.greeting,
        style=persona.style,
        role_words=persona.role_words,
        id=persona.id,
        alternate_greetings=persona.alternate_greetings,
        system_prompt=persona.system_prompt_override,
        post_history=persona.post_history,
        examples=[pb.Example(user=e.user, npc=e.npc) for e in persona.examples],
        banned_words=persona.banned_words,
        lore=[_lore_to_proto(e) for e in persona.lore],
        lore_budget_tokens=persona.lore_budget_tokens,
        lore_scan_turns=persona.lore_scan_turns,
        lore_recursion=persona.lore_recursion,
        memory_budget_tokens=persona.memory_budget_tokens,
        memory_group=persona.memory_group,
        memories=[pb.SeedMemory(text=m.text, shared=m.shared) for m in persona.memories],
        talkativeness=persona.talkativeness,
        actions=[_action_to_proto(a) for a in persona.actions],
        generation=pb.GenerationConfig(stop=list(persona.generation.get("stop", ())), **gen),
    )


def config_from_proto(msg: pb.GenerationConfig, defaults: GenerationConfig) -> GenerationConfig:
    changes = {
        name: getattr(msg, name)
        for name in (
            "max_tokens",
            "temperature",
            "top_p",
            "top_k",
            "repetition_penalty",
            "seed",
            "scene_word_weight",
            "absent_word_weight",
            "candidates",
            "max_sentences",
            "max_clauses",
        )
        if msg.HasField(name)
    }
    if msg.stop:
        changes["stop"] = tuple(msg.stop)
    for name in ("temperature", "top_p", "repetition_penalty", "scene_word_weight", "absent_word_weight"):
        if name in changes:
            changes[name] = round(float(changes[name]), 6)  # float32 on the wire: 0.7 arrives as 0.69999998
    return defaults.with_(**changes)  # validated: out-of-range values raise naming generation.<field>


def image_from_proto(msg: pb.Image, field: str = "screenshot") -> Image.Image:
    if msg.encoding in _ENCODED:
        if msg.bottom_up:
            raise InvalidInputError(
                f"{field}.bottom_up", "applies to raw RGBA8/RGB8 pixels only, not PNG or JPEG"
            )
        image = decode_bytes(msg.data, field)
        if image.format != _ENCODED[msg.encoding]:
            raise InvalidInputError(
                f"{field}.encoding",
                f"says {_ENCODED[msg.encoding]} but the data is {image.format or 'unknown'}",
            )
        return image
    if msg.encoding in _RAW_CHANNELS:
        return decode_raw(
            msg.data, msg.width, msg.height, _RAW_CHANNELS[msg.encoding], bottom_up=msg.bottom_up, field=field
        )
    raise InvalidInputError(
        f"{field}.encoding", f"unknown encoding {msg.encoding}; use PNG, JPEG, RGBA8 or RGB8"
    )


def scene_from_proto(entities: Sequence[pb.SceneEntity]) -> list[SceneEntity]:
    """The game's scene entities, checked (each problem names scene[i].field)."""
    if len(entities) > MAX_ENTITIES:
        raise InvalidInputError("scene", f"{len(entities)} entities, over the limit of {MAX_ENTITIES}")
    out = [
        SceneEntity(
            e.tag,
            e.name,
            e.x if e.HasField("x") else None,
            e.y if e.HasField("y") else None,
            e.distance if e.HasField("distance") else None,
        )
        for e in entities
    ]
    return check_entities(out)


def scene_to_proto(entity: SceneEntity | dict[str, Any] | str) -> pb.SceneEntity:
    """A scene entity from a SceneEntity, a dict of its fields, or a bare tag."""
    if isinstance(entity, str):
        return pb.SceneEntity(tag=entity)
    fields = (
        entity
        if isinstance(entity, dict)
        else {k: getattr(entity, k) for k in ("tag", "name", "x", "y", "distance")}
    )
    return pb.SceneEntity(**{k: v for k, v in fields.items() if v is not None})


def event_to_proto(event: ReplyEvent) -> pb.ChatEvent:
    if isinstance(event, Delta):
        return pb.ChatEvent(delta=pb.Delta(text=event.text))
    if isinstance(event, Action):
        args = {k: _arg_text(v) for k, v in event.args.items()}
        return pb.ChatEvent(action=pb.ActionCall(name=event.name, args=args, confidence=event.confidence))
    u, t = event.usage, event.timings
    return pb.ChatEvent(
        done=pb.Done(
            text=event.text,
            finish_reason=event.finish_reason,
            usage=pb.Usage(
                prompt_tokens=u.prompt_tokens,
                cached_tokens=u.cached_tokens,
                completion_tokens=u.completion_tokens,
            ),
            timings=pb.Timings(
                ttft_ms=t.ttft_ms, total_ms=t.total_ms, decode_tokens_per_second=t.decode_tokens_per_second
            ),
            seen=[pb.SeenTag(tag=s.tag, score=s.score, source=s.source) for s in event.seen],
            emotion=pb.Emotion(label=event.emotion.label, intensity=event.emotion.intensity)
            if event.emotion
            else None,
            replayed=event.replayed,
            candidates=[
                pb.Candidate(text=c.text, score=c.score, failed=list(c.failed)) for c in event.candidates
            ],
            explanation=explanation_to_proto(event.explanation) if event.explanation else None,
        )
    )


def explanation_to_proto(e: Explanation) -> pb.Explanation:
    action = None
    if e.action is not None:
        a, best = e.action, e.action.best_rejected
        action = pb.ActionDecision(
            name=a.name,
            score=a.score,
            request=a.request,
            threshold=a.threshold,
            request_threshold=a.request_threshold,
            best_rejected=pb.ActionOption(name=best.name, score=best.score, reason=best.reason)
            if best
            else None,
        )
    return pb.Explanation(
        lore=[pb.LoreHit(index=h.index, name=h.name, keys=h.keys, why=h.why, text=h.text) for h in e.lore],
        memory_note=e.memory_note,
        recalled_turns=e.recalled_turns,
        history_start=e.history_start,
        history_turns=e.history_turns,
        scene_note=e.scene_note,
        state_note=e.state_note,
        action_note=e.action_note,
        context=e.context,
        biased_words=[pb.BiasedWord(word=b.word, weight=b.weight, source=b.source) for b in e.biased_words],
        action=action,
        emotion_scores=[pb.Emotion(label=m.label, intensity=m.intensity) for m in e.emotion_scores],
    )


def explanation_from_proto(e: pb.Explanation) -> Explanation:
    action = None
    if e.HasField("action"):
        a = e.action
        best = (
            ActionOption(a.best_rejected.name, round(a.best_rejected.score, 4), a.best_rejected.reason)
            if a.HasField("best_rejected")
            else None
        )
        action = ActionDecision(
            a.name,
            round(a.score, 4),
            round(a.request, 4),
            round(a.threshold, 4),
            round(a.request_threshold, 4),
            best,
        )
    return Explanation(
        lore=tuple(LoreHit(h.index, h.name, tuple(h.keys), h.why, h.text) for h in e.lore),
        memory_note=e.memory_note,
        recalled_turns=tuple(e.recalled_turns),
        history_start=e.history_start,
        history_turns=e.history_turns,
        scene_note=e.scene_note,
        state_note=e.state_note,
        action_note=e.action_note,
        context=e.context,
        biased_words=tuple(BiasedWord(b.word, round(b.weight, 4), b.source) for b in e.biased_words),
        action=action,
        emotion_scores=tuple(Emotion(m.label, round(m.intensity, 3)) for m in e.emotion_scores),
    )


def _arg_text(value: str | float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def event_from_proto(msg: pb.ChatEvent, text_so_far: str) -> ReplyEvent:
    if msg.WhichOneof("event") == "delta":
        return Delta(msg.delta.text, text_so_far + msg.delta.text)
    if msg.WhichOneof("event") == "action":
        a = msg.action
        return Action(a.name, dict(a.args), round(a.confidence, 4))
    d = msg.done
    return Done(
        text=d.text,
        finish_reason=d.finish_reason,  # type: ignore[arg-type]
        usage=Usage(d.usage.prompt_tokens, d.usage.completion_tokens, d.usage.cached_tokens),
        timings=Timings(d.timings.ttft_ms, d.timings.total_ms, d.timings.decode_tokens_per_second),
        seen=tuple(SeenTag(s.tag, round(s.score, 4), s.source) for s in d.seen),
        emotion=Emotion(d.emotion.label, round(d.emotion.intensity, 3)) if d.HasField("emotion") else None,
        replayed=d.replayed,
        candidates=tuple(Candidate(c.text, round(c.score, 4), tuple(c.failed)) for c in d.candidates),
        explanation=explanation_from_proto(d.explanation) if d.HasField("explanation") else None,
    )


def session_to_proto(
    session_id: str,
    persona: Persona,
    created_ms: int,
    turns: Sequence[Turn] = (),
    times_ms: Sequence[int] = (),
    player_id: str = "",
) -> pb.Session:
    return pb.Session(
        session_id=session_id,
        player_id=player_id,
        persona=persona_to_proto(persona),
        created_unix_ms=created_ms,
        turns=[
            pb.Turn(user=t.user, reply=t.reply, created_unix_ms=times_ms[i] if i < len(times_ms) else 0)
            for i, t in enumerate(turns)
        ],
    )
