"""A model folder: manifest.json plus the files it lists, each checked against its sha256 before use."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelFolderError
from ..weights import sha256_file

MANIFEST = "manifest.json"
FORMAT_VERSION = (
    2  # 2: letterboxed 448x256 encoder with v_mid, fusion with tag probabilities, tags in the manifest
)
PRECISIONS = ("fp32", "int8", "int4")


@dataclass(frozen=True)
class ModelFolder:
    path: Path
    manifest: dict[str, Any]

    @classmethod
    def open(cls, path: str | Path, *, verify: bool = True) -> ModelFolder:
        """Read the manifest; with `verify`, refuse a folder whose files are missing or differ from it."""
        folder = Path(path)
        manifest_path = folder / MANIFEST
        if not manifest_path.is_file():
            raise ModelFolderError(f"{folder}: no {MANIFEST}; is this a folder written by `npc-sdk export`?")
        try:
            manifest = json.loads(manifest_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelFolderError(f"{manifest_path}: not valid JSON ({exc})") from exc
        if manifest.get("format") != "npc-sdk-model":
            raise ModelFolderError(f"{manifest_path}: not an npc-sdk model manifest")
        version = manifest.get("format_version")
        if version != FORMAT_VERSION:
            raise ModelFolderError(
                f"{manifest_path}: format_version {version!r}; this npc-sdk reads version {FORMAT_VERSION}"
            )
        files = manifest.get("files")
        if not isinstance(files, dict) or not files:
            raise ModelFolderError(f"{manifest_path}: the manifest lists no files")
        for name, digest in files.items():
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
        name = self.manifest["model"][component]["filename"]
        if name not in self.manifest["files"]:
            raise ModelFolderError(
                f"{self.path}: the manifest's model.{component} names {name}, which its files do not list"
            )
        return self.path / name

    @property
    def precision(self) -> str:
        return str(self.manifest["precision"])
