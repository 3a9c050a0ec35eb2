"""PersonaLibrary: the server's personas folder, reloaded when files change, with upserts written back.

A file that fails to load keeps its last good version (if any) and its problems are reported by
ListPersonas and the log; sessions keep the persona snapshot they were created with.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

from .files import PERSONA_SUFFIXES, load_persona
from .persona import Persona
from .problems import PersonaFileError, Problem

log = logging.getLogger("npc_sdk.server")


class PersonaLibrary:
    def __init__(self, folder: Path | None, poll_s: float = 1.0) -> None:
        self.folder = folder
        self.poll_s = poll_s
        self._lock = threading.Lock()
        self._personas: dict[str, Persona] = {}  # id -> persona
        self._by_file: dict[Path, str] = {}  # file -> id it defines
        self._mtimes: dict[Path, float] = {}
        self.problems: dict[Path, list[Problem]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            self.scan()

    def start(self) -> None:
        if self.folder is not None and self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="npc-personas", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.scan()
            except Exception:  # noqa: BLE001 - a bad scan must not kill the watcher
                log.exception("persona folder scan failed")

    def scan(self) -> list[str]:
        """Load new and changed files, forget removed ones; return the ids that changed."""
        assert self.folder is not None
        files = {p for p in self.folder.iterdir() if p.suffix in PERSONA_SUFFIXES and p.is_file()}
        changed = []
        for path in sorted(files):
            mtime = path.stat().st_mtime_ns
            if self._mtimes.get(path) == mtime:
                continue
            self._mtimes[path] = mtime
            try:
                persona = load_persona(path)
            except PersonaFileError as exc:
                self.problems[path] = exc.problems
                log.warning(
                    "persona file %s not loaded: %s", path.name, "; ".join(str(p) for p in exc.problems)
                )
                continue
            self.problems.pop(path, None)
            with self._lock:
                self._personas[persona.id] = persona
                self._by_file[path] = persona.id
            changed.append(persona.id)
            log.info("persona %s loaded from %s", persona.id, path.name)
        for path in set(self._by_file) - files:
            with self._lock:
                self._personas.pop(self._by_file.pop(path), None)
            self._mtimes.pop(path, None)
            self.problems.pop(path, None)
        return changed

    def get(self, persona_id: str) -> Persona | None:
        with self._lock:
            return self._personas.get(persona_id)

    def all(self) -> list[Persona]:
        with self._lock:
            return [self._personas[k] for k in sorted(self._personas)]

    def problem_lines(self) -> list[str]:
        return [str(p) for probs in self.problems.values() for p in probs]

    def upsert(self, persona: Persona) -> Persona:
        """Store `persona` under its id (written as <id>.json when the library has a folder)."""
        if self.folder is not None:
            path = self.folder / f"{persona.id}.json"
            tmp = path.with_suffix(".json.partial")
            tmp.write_text(
                json.dumps(persona.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
            )
            os.replace(tmp, path)
            with self._lock:
                self._by_file[path] = persona.id
                self._mtimes[path] = path.stat().st_mtime_ns
        with self._lock:
            self._personas[persona.id] = persona
        return persona
