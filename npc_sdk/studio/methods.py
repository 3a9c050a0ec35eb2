"""The studio's own methods, answered in the server's process over the page's WebSocket (beside the NpcService
calls the gateway forwards): persona files listed, read, checked as they are typed, saved, and rendered.

Each takes the request object and the caller's API key and returns the response object (JSON, camelCase as the
gateway's messages are). The same API keys as the gRPC server's are checked; a name outside the persona folder
is PERMISSION_DENIED, a missing file NOT_FOUND, bad input INVALID_ARGUMENT naming the field.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from .._proto.npc.v1 import npc_pb2 as pb
from ..errors import InvalidInputError
from ..personas.problems import Problem
from ..personas.prompt import Turn, check_text
from ..runtime.generation import GenerationConfig
from ..server.api_keys import ApiKey, match
from ..server.snapshots import read_snapshot, sign_snapshot
from ..server.ws_gateway import CallError, LocalMethod
from ..wire import persona_to_proto
from .folder import OutsideFolder, PersonaFolder
from .heatmap import TagCells
from .render import PromptRenderer

MAX_HISTORY = 32  # turns a render request may give


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.title() for w in rest)


def _problem(p: Problem) -> dict[str, Any]:
    """A problem as the editor shows it: `file:line: field: why`, the file by its name in the folder."""
    shown = Problem(Path(p.file).name, p.line, p.field, p.message)
    return {
        "file": shown.file,
        "line": p.line or 0,
        "field": p.field,
        "message": p.message,
        "text": str(shown),
    }


def _name(request: Mapping[str, Any]) -> str:
    name = request.get("name")
    if not isinstance(name, str):
        raise InvalidInputError("name", "give a persona file's name, e.g. brakka.toml")
    return name


def _text(request: Mapping[str, Any], required: bool = False) -> str | None:
    text = request.get("text")
    if text is None and not required:
        return None
    if not isinstance(text, str):
        raise InvalidInputError("text", "must be the file's text")
    return text


class StudioMethods:
    def __init__(
        self,
        folder: PersonaFolder,
        renderer: PromptRenderer,
        keys: list[ApiKey],
        scenes: list[str],
        defaults: GenerationConfig,
        model: str,
        snapshot_key: bytes,
        cells: TagCells | None = None,
    ) -> None:
        self.folder, self.renderer, self.keys = folder, renderer, keys
        self.scenes, self.defaults, self.model = scenes, defaults, model
        self.snapshot_key = snapshot_key  # the server's save-game key: a rewound snapshot is signed again
        self.cells = cells  # the grounding head's per-cell scores (heat map), or None

    def table(self) -> dict[str, LocalMethod]:
        """Method name -> handler, for the gateway."""
        handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "StudioInfo": self.info,
            "ListFiles": self.list_files,
            "ReadFile": self.read_file,
            "CheckFile": self.check_file,
            "SaveFile": self.save_file,
            "RenderPrompt": self.render_prompt,
            "PersonaJson": self.persona_json,
            "RewindSnapshot": self.rewind_snapshot,
            "TagCells": self.tag_cells,
        }
        return {name: self._guarded(fn) for name, fn in handlers.items()}

    def _guarded(self, fn: Callable[[dict[str, Any]], dict[str, Any]]) -> LocalMethod:
        async def call(request: dict[str, Any], api_key: str | None) -> dict[str, Any]:
            if self.keys and match(self.keys, f"Bearer {api_key or ''}") is None:
                raise CallError("UNAUTHENTICATED", "apiKey: missing or not one of the server's API keys")
            try:
                return await asyncio.to_thread(fn, request)  # file I/O and tokenizing: off the server's loop
            except OutsideFolder as exc:
                raise CallError("PERMISSION_DENIED", str(exc)) from exc
            except FileNotFoundError as exc:
                raise CallError("NOT_FOUND", str(exc)) from exc

        return call

    # ---- the methods -------------------------------------------------------------------------------------
    def info(self, request: dict[str, Any]) -> dict[str, Any]:
        r = self.renderer
        defaults = {_camel(f.name): getattr(self.defaults, f.name) for f in fields(GenerationConfig)}
        return {
            "personasDir": str(self.folder.root),
            "model": self.model,
            "contextLength": r.context_length,
            "personaBudget": r.persona_budget,
            "prefixVectors": r.prefix_vectors,
            "scenes": self.scenes,
            "defaults": {k: list(v) if isinstance(v, tuple) else v for k, v in defaults.items()},
        }

    def list_files(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"files": [{_camel(k): v for k, v in asdict(f).items()} for f in self.folder.files()]}

    def read_file(self, request: dict[str, Any]) -> dict[str, Any]:
        name = _name(request)
        text, editable = self.folder.read(name)
        return {"name": name, "text": text, "editable": editable}

    def check_file(self, request: dict[str, Any]) -> dict[str, Any]:
        """The validator's problems for the editor's text (or the file as saved), each at its line."""
        persona, problems = self.folder.check(_name(request), _text(request))
        return {
            "problems": [_problem(p) for p in problems],
            "persona": {"id": persona.id, "name": persona.name} if persona else None,
        }

    def save_file(self, request: dict[str, Any]) -> dict[str, Any]:
        """Write the text (problems and all: the server keeps the file's last good version until it loads); the
        server's persona library reloads it within a second. `overwrite` false refuses an existing file."""
        name, text = _name(request), _text(request, required=True)
        assert text is not None
        path = self.folder.path(name)
        if path.exists() and not request.get("overwrite", False):
            raise CallError(
                "ALREADY_EXISTS", f"name: {name!r} exists already; save with overwrite to replace it"
            )
        self.folder.write(name, text)
        persona, problems = self.folder.check(name)
        return {
            "name": name,
            "problems": [_problem(p) for p in problems],
            "persona": {"id": persona.id, "name": persona.name} if persona else None,
        }

    def render_prompt(self, request: dict[str, Any]) -> dict[str, Any]:
        """The prompt the editor's persona makes for a sample line, with its token counts and budgets."""
        persona, problems = self.folder.check(_name(request), _text(request))
        if persona is None:
            return {"problems": [_problem(p) for p in problems]}
        line = check_text(request.get("line") or "What is that over there?", "line")
        history = request.get("history") or []
        if not isinstance(history, list) or len(history) > MAX_HISTORY:
            raise InvalidInputError("history", f"a list of at most {MAX_HISTORY} {{user, reply}} turns")
        turns = [
            Turn(str(t.get("user", "")), str(t.get("reply", ""))) for t in history if isinstance(t, dict)
        ]
        state = request.get("state") or {}
        if not isinstance(state, dict):
            raise InvalidInputError("state", "must be an object of game facts")
        out = self.renderer.render(persona, line, turns, {str(k): str(v) for k, v in state.items()})
        rendered = {_camel(k): v for k, v in asdict(out).items() if k != "lore"}
        rendered["trimmed"] = list(out.trimmed)
        rendered["lore"] = [
            {"index": h.index, "name": h.name, "keys": list(h.keys), "why": h.why, "text": h.text}
            for h in out.lore
        ]
        return {"problems": [], "persona": {"id": persona.id, "name": persona.name}, "rendered": rendered}

    def persona_json(self, request: dict[str, Any]) -> dict[str, Any]:
        """The editor's persona as the Persona message (JSON): what CreateSession takes, and what GetPersona
        answers once the server has reloaded the saved file (the page compares the two)."""
        persona, problems = self.folder.check(_name(request), _text(request))
        if persona is None:
            return {"problems": [_problem(p) for p in problems]}
        return {"problems": [], "persona": json_format.MessageToDict(persona_to_proto(persona))}

    def rewind_snapshot(self, request: dict[str, Any]) -> dict[str, Any]:
        """A session the server exported, cut back to its first `keep` turns and signed again: Regenerate deletes
        the session and imports this, so the last line can be said again. Only an unaltered export is taken, and
        only a prefix of it comes back, so nothing can be signed that the server did not say."""
        keep = request.get("keep")
        if not isinstance(keep, int) or keep < 0:
            raise InvalidInputError("keep", "the number of turns to keep (>= 0)")
        try:
            snapshot = json_format.ParseDict(request.get("snapshot") or {}, pb.SessionSnapshot())
        except json_format.ParseError as exc:
            raise InvalidInputError("snapshot", str(exc)) from exc
        read_snapshot(snapshot, self.snapshot_key)  # refuses anything the server did not sign
        del snapshot.turns[keep:]
        snapshot.signature = sign_snapshot(snapshot, self.snapshot_key)
        return {"snapshot": json_format.MessageToDict(snapshot)}

    def tag_cells(self, request: dict[str, Any]) -> dict[str, Any]:
        """Where in a screenshot (base64 PNG or JPEG, as a Chat request's) the grounding head sees each tag: the
        page's heat map. Computed in the studio's own sessions; the served model is not asked."""
        if self.cells is None:
            return {"available": False, "why": "no model folder to read the grounding head from"}
        data = request.get("data")
        if not isinstance(data, str):
            raise InvalidInputError("data", "the screenshot as base64, as a Chat request's screenshot.data")
        try:
            png = base64.b64decode(data, validate=True)
        except ValueError as exc:
            raise InvalidInputError("data", f"invalid base64 ({exc})") from exc
        return self.cells.scores(png)
