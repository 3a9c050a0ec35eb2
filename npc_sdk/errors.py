"""Exceptions raised by npc_sdk; each names the input it rejects."""

from __future__ import annotations


class NpcError(Exception):
    """Base of every error npc_sdk raises on purpose."""


class InvalidInputError(NpcError, ValueError):
    """An input value is wrong; `field` names it (e.g. ``text``, ``screenshot``, ``persona.name``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class WeightsError(NpcError):
    """Base weights could not be fetched, verified or found."""


class ModelFolderError(NpcError):
    """A model folder is missing a file, or a file does not match its manifest."""
