"""npc-sdk runtime: personas, prompts, sampling and streaming; never imports torch or transformers."""

from .errors import InvalidInputError, ModelFolderError, NpcError, WeightsError
from .events import Delta, Done, ReplyEvent, Timings, Usage
from .generation import GenerationConfig
from .persona import Persona
from .prompt import Turn
from .weights import BASE_PACKAGES, pull

__all__ = [
    "BASE_PACKAGES",
    "Delta",
    "Done",
    "GenerationConfig",
    "InvalidInputError",
    "ModelFolderError",
    "NpcError",
    "Persona",
    "ReplyEvent",
    "Timings",
    "Turn",
    "Usage",
    "WeightsError",
    "pull",
]
__version__ = "0.1.0"
