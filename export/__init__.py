"""npc_export: the torch side of npc-sdk (reference model on the pretrained weights, export, training)."""

from .model import FusionInfo, NpcModel

__all__ = ["FusionInfo", "NpcModel"]
