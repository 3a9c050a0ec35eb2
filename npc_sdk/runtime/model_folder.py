"""A model folder: manifest.json plus the files it lists, each checked against its sha256 before use."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelFolderError
from ..weights import sha256_file
from .manifest import FORMAT_VERSION, PRECISIONS, Manifest

__all__ = ["FORMAT_VERSION", "MANIFEST", "PRECISIONS", "ModelFolder"]

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class ModelFolder:
    path: Path
    manifest: Manifest

    @classmethod
    def open(cls, path: str | Path, *, verify: bool = True) -> ModelFolder:
        """Read the manifest; with `verify`, refuse a folder whose files are missing or differ from it."""
        folder = Path(path)
        manifest_path = folder / MANIFEST
        if not manifest_path.is_file():
            raise ModelFolderError(f"{folder}: no {MANIFEST}; is this a folder written by `npc-sdk export`?")
        try:
            data = json.loads(manifest_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelFolderError(f"{manifest_path}: not valid JSON ({exc})") from exc
        manifest = Manifest.from_json(data, str(manifest_path))
        for name, digest in manifest.files.items():
            file = folder / name
            if not file.is_file():
                raise ModelFolderError(f"{folder}: {name} is missing (the manifest lists it)")
            if verify and sha256_file(file) != digest:
                raise ModelFolderError(
                    f"{folder}: {name} does not match its sha256 in the manifest (corrupted or replaced); "
                    "export the model again"
                )
        return cls(folder, manifest)

    def file(self, component: str) -> Path:
        """The component's file; one the manifest's `files` does not list (so never checked) is refused."""
        name = self.manifest.filename(component)
        if name not in self.manifest.files:
            raise ModelFolderError(
                f"{self.path}: the manifest's model.{component} names {name}, which its files do not list"
            )
        return self.path / name

    @property
    def precision(self) -> str:
        return self.manifest.precision
