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


class SessionNotFoundError(NpcError):
    """No session with that id."""


class SessionExistsError(NpcError):
    """A session with that id exists already."""


class SessionBusyError(NpcError):
    """The session already has a turn in flight."""


class LimitExceededError(NpcError):
    """A configured limit (sessions, queued turns, message size) was reached."""


class UnavailableError(NpcError):
    """The server is shutting down or cannot take work now."""


class DecoderError(NpcError):
    """A decoder checkpoint cannot be used: an unsupported architecture, a missing file or chat template."""
