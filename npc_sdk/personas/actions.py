"""Actions a designer declares for an NPC: what the NPC can do in the game, when, and with which arguments.

The runtime (runtime/actions.py) decides per turn whether the player's line asks for one of them; only
declared actions are ever sent, with arguments of their declared types.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidInputError

ACTION_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
PARAM_TYPES = ("string", "number", "entity")
MAX_ACTIONS = 32
MAX_EXAMPLES = 64


@dataclass
class ActionParam:
    type: str  # "string" (one of `choices`), "number", or "entity" (a tag or name of something in the scene)
    choices: list[str] = field(default_factory=list)  # string: the values it may take
    required: bool = True  # a required parameter the line does not fill means no action this turn
    default: str | float | None = (
        None  # used when the line does not say (then the parameter is never missing)
    )


@dataclass
class Action:
    name: str  # sent to the game: open_shop, ferry_across
    description: str  # what it does, in the NPC's terms; shown to the decoder when it fires ("open the shop")
    examples: list[str]  # player lines that ask for it: the decision compares the line with these
    params: dict[str, ActionParam] = field(default_factory=dict)
    cooldown_turns: int = 0  # turns after firing before it may fire again
    when: dict[str, list[str]] = field(
        default_factory=dict
    )  # game-state key -> values it needs (any of them)


def action_from_dict(value: Any, where: str) -> Action:
    if isinstance(value, Action):
        return value
    if not isinstance(value, Mapping):
        raise InvalidInputError(where, "must be a table with name, description and examples")
    known = {"name", "description", "examples", "params", "cooldown_turns", "when"}
    unknown = sorted(set(value) - known)
    if unknown:
        raise InvalidInputError(f"{where}.{unknown[0]}", f"unknown field (known: {', '.join(sorted(known))})")
    params: dict[str, ActionParam] = {}
    raw_params = value.get("params") or {}
    if not isinstance(raw_params, Mapping):
        raise InvalidInputError(f"{where}.params", "must be a table of name = { type = ... }")
    for pname, spec in raw_params.items():
        pwhere = f"{where}.params.{pname}"
        if isinstance(spec, str):
            spec = {"type": spec}
        if not isinstance(spec, Mapping):
            raise InvalidInputError(pwhere, "must be a type name or a table with `type`")
        bad = sorted(set(spec) - {"type", "choices", "required", "default"})
        if bad:
            raise InvalidInputError(
                f"{pwhere}.{bad[0]}", "unknown field (known: type, choices, required, default)"
            )
        params[str(pname)] = ActionParam(
            spec.get("type", ""),
            list(spec.get("choices") or []),
            spec.get("required", True),
            spec.get("default"),
        )
    when: dict[str, list[str]] = {}
    raw_when = value.get("when") or {}
    if not isinstance(raw_when, Mapping):
        raise InvalidInputError(f"{where}.when", "must be a table of state key = value or [values]")
    for key, allowed in raw_when.items():
        when[str(key)] = (
            [allowed] if isinstance(allowed, str) else list(allowed) if isinstance(allowed, list) else []
        )
        if not when[str(key)] or not all(isinstance(v, str) for v in when[str(key)]):
            raise InvalidInputError(f"{where}.when.{key}", "must be text or a list of text")
    examples = value.get("examples", [])
    return Action(
        name=value.get("name", ""),
        description=value.get("description", ""),
        examples=[examples]
        if isinstance(examples, str)
        else list(examples)
        if isinstance(examples, list)
        else [],
        params=params,
        cooldown_turns=value.get("cooldown_turns", 0),
        when=when,
    )


def check_actions(actions: list[Action]) -> None:
    if len(actions) > MAX_ACTIONS:
        raise InvalidInputError("persona.actions", f"{len(actions)} actions, over {MAX_ACTIONS}")
    names: set[str] = set()
    for i, a in enumerate(actions):
        where = f"persona.actions[{i}]"
        if not isinstance(a, Action):
            raise InvalidInputError(where, "must be an action")
        if not isinstance(a.name, str) or not ACTION_NAME.match(a.name):
            raise InvalidInputError(
                f"{where}.name", f"must be lower_snake_case, 1-64 characters; got {a.name!r}"
            )
        if a.name in names:
            raise InvalidInputError(f"{where}.name", f"{a.name!r} is declared twice")
        names.add(a.name)
        if not isinstance(a.description, str) or not a.description.strip() or len(a.description) > 300:
            raise InvalidInputError(
                f"{where}.description", "needs 1-300 characters saying what the action does"
            )
        if not a.examples or len(a.examples) > MAX_EXAMPLES:
            raise InvalidInputError(
                f"{where}.examples", f"needs 1-{MAX_EXAMPLES} player lines that ask for it"
            )
        for j, ex in enumerate(a.examples):
            if not isinstance(ex, str) or not ex.strip() or len(ex) > 300:
                raise InvalidInputError(f"{where}.examples[{j}]", "must be a player line of 1-300 characters")
        cd = a.cooldown_turns
        if isinstance(cd, bool) or not isinstance(cd, int) or not 0 <= cd <= 1000:
            raise InvalidInputError(f"{where}.cooldown_turns", f"must be an integer in [0, 1000], got {cd!r}")
        for pname, p in a.params.items():
            pwhere = f"{where}.params.{pname}"
            if not ACTION_NAME.match(pname):
                raise InvalidInputError(pwhere, "parameter names are lower_snake_case")
            if p.type not in PARAM_TYPES:
                raise InvalidInputError(
                    f"{pwhere}.type", f"must be one of {', '.join(PARAM_TYPES)}, got {p.type!r}"
                )
            if not isinstance(p.required, bool):
                raise InvalidInputError(f"{pwhere}.required", "must be true or false")
            if p.type == "string" and not p.choices and p.default is None:
                raise InvalidInputError(
                    f"{pwhere}.choices", "a string parameter needs choices (or a default)"
                )
            if any(not isinstance(c, str) or not c.strip() for c in p.choices):
                raise InvalidInputError(f"{pwhere}.choices", "must be non-empty text")
            if p.type != "string" and p.choices:
                raise InvalidInputError(f"{pwhere}.choices", "only string parameters take choices")
            if p.default is not None:
                ok = isinstance(p.default, str) if p.type != "number" else _is_number(p.default)
                if not ok or (p.choices and p.default not in p.choices):
                    raise InvalidInputError(f"{pwhere}.default", f"{p.default!r} is not a valid {p.type}")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def action_to_dict(a: Action) -> dict[str, Any]:
    out: dict[str, Any] = {"name": a.name, "description": a.description, "examples": list(a.examples)}
    if a.params:
        out["params"] = {
            k: {
                "type": p.type,
                **({"choices": list(p.choices)} if p.choices else {}),
                **({} if p.required else {"required": False}),
                **({} if p.default is None else {"default": p.default}),
            }
            for k, p in a.params.items()
        }
    if a.cooldown_turns:
        out["cooldown_turns"] = a.cooldown_turns
    if a.when:
        out["when"] = {k: list(v) for k, v in a.when.items()}
    return out
