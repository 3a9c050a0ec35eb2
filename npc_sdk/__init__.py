"""npc-sdk runtime: personas, prompts, sampling, the onnxruntime model, sessions and the gRPC client.

Never imports torch or transformers (the torch side is the separate `npc_export` package).
"""

from .client import AsyncClient, Client
from .errors import DecoderError, InvalidInputError, ModelFolderError, NpcError, WeightsError
from .personas.cards import card_to_persona, persona_to_card
from .personas.chat_format import CHATML, ChatFormat
from .personas.files import load_persona
from .personas.persona import Example, LoreEntry, Persona, SeedMemory
from .personas.problems import PersonaFileError
from .personas.prompt import Turn
from .runtime.conversation import Conversation
from .runtime.events import Delta, Done, ReplyEvent, Timings, Usage
from .runtime.generation import GenerationConfig
from .runtime.memory import Memory
from .runtime.onnx_model import OnnxNpcModel
from .runtime.player_facts import player_facts
from .weights import BASE_PACKAGES, pull

__all__ = [
    "BASE_PACKAGES",
    "CHATML",
    "AsyncClient",
    "ChatFormat",
    "Client",
    "Conversation",
    "DecoderError",
    "Delta",
    "Done",
    "Example",
    "GenerationConfig",
    "InvalidInputError",
    "LoreEntry",
    "Memory",
    "ModelFolderError",
    "NpcError",
    "OnnxNpcModel",
    "Persona",
    "PersonaFileError",
    "ReplyEvent",
    "SeedMemory",
    "Timings",
    "Turn",
    "Usage",
    "WeightsError",
    "card_to_persona",
    "load_persona",
    "persona_to_card",
    "player_facts",
    "pull",
]
__version__ = "0.1.0"
