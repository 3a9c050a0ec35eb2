"""The persona folder the studio was given: the only files it reads or writes, each name checked before use.

A name is one file name of a persona kind (`brakka.toml`), resolved inside the folder; `..`, separators,
absolute paths and symbolic links that lead out of the folder are refused with `OutsideFolder`. The folder is
flat, as the server's persona library reads it (personas/library.py), so no subfolders either.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..personas.files import PERSONA_SUFFIXES, load_persona
from ..personas.importer import persona_toml
from ..personas.persona import Persona
from ..personas.problems import PersonaFileError, Problem

TEXT_SUFFIXES = (".toml", ".json")  # what the editor edits as text; cards in .png / .charx are read only
MAX_FILE_BYTES = 2 << 20  # a persona file the editor opens or saves (a long card is ~100 KB)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class OutsideFolder(Exception):
    """A file name that does not name a persona file inside the folder."""


@dataclass(frozen=True)
class FileInfo:
    name: str
    kind: str  # its suffix without the dot: toml | json | png | charx
    size: int
    modified_ms: int
    editable: bool  # text the editor can change (TOML, JSON)


class PersonaFolder:
    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()

    def path(self, name: object) -> Path:
        """The file `name` names inside the folder; OutsideFolder for anything else."""
        if not isinstance(name, str) or not name:
            raise OutsideFolder("name: give a persona file's name, e.g. brakka.toml")
        shown = name if len(name) <= 120 else name[:117] + "..."
        if name != os.path.basename(name) or "\\" in name or name in (".", "..") or Path(name).is_absolute():
            raise OutsideFolder(
                f"name: {shown!r} is not a file name in the persona folder {self.root}; "
                "paths, '..' and absolute paths are refused"
            )
        if not _NAME.match(name) or Path(name).suffix not in PERSONA_SUFFIXES:
            raise OutsideFolder(
                f"name: {shown!r} is not a persona file name (letters, digits, '_', '.', '-'; "
                f"ending in {', '.join(PERSONA_SUFFIXES)})"
            )
        path = self.root / name
        if path.resolve().parent != self.root:  # a symbolic link that leads out of the folder
            raise OutsideFolder(f"name: {shown!r} leads outside the persona folder {self.root}; refused")
        return path

    def files(self) -> list[FileInfo]:
        out = []
        for p in sorted(self.root.iterdir()):
            if p.suffix not in PERSONA_SUFFIXES or not p.is_file() or p.resolve().parent != self.root:
                continue
            st = p.stat()
            out.append(
                FileInfo(
                    p.name, p.suffix[1:], st.st_size, st.st_mtime_ns // 1_000_000, p.suffix in TEXT_SUFFIXES
                )
            )
        return out

    def read(self, name: str) -> tuple[str, bool]:
        """(the text the editor shows, whether it can be saved back as it is). A card picture or archive shows
        the persona it holds as TOML, to be saved under another name."""
        path = self.path(name)
        if not path.is_file():
            raise FileNotFoundError(f"name: no file {name!r} in the persona folder")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise OutsideFolder(f"name: {name!r} is over {MAX_FILE_BYTES >> 20} MiB; edit it elsewhere")
        if path.suffix in TEXT_SUFFIXES:
            return path.read_text(encoding="utf-8", errors="replace"), True
        return persona_toml(load_persona(path)), False

    def check(self, name: str, text: str | None = None) -> tuple[Persona | None, list[Problem]]:
        """The persona `text` (or the file as saved) makes, and every problem as the validator reports it."""
        path = self.path(name)
        try:
            return load_persona(path, text), []
        except PersonaFileError as exc:
            return None, exc.problems

    def write(self, name: str, text: str) -> Path:
        """Save the editor's text (atomically: the server's hot reload never reads half a file)."""
        path = self.path(name)
        if path.suffix not in TEXT_SUFFIXES:
            raise OutsideFolder(f"name: {name!r}: only .toml and .json files are saved from the editor")
        data = text.encode("utf-8")
        if len(data) > MAX_FILE_BYTES:
            raise OutsideFolder(f"name: the text is over {MAX_FILE_BYTES >> 20} MiB")
        tmp = path.with_name(f".{path.name}.studio-partial")  # not a persona suffix: the library skips it
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return path
