"""npc_export: the torch side of npc-sdk, by stage: model -> build -> data -> train -> eval (imports run one way).

model/  the reference model on the pretrained weights (encoders, fusion, decoder, LoRA, chat template, vocabulary)
build/  the model folder for the runtime (ONNX graphs, quantisation, the manifest, verification against torch)
data/   pictures and dialogue to train on (lexicon, datasets, the scene generator, the teacher, the corpus)
train/  the grounding head, fusion and LoRA training
eval/   `npc-sdk eval`: metrics, the held-out corpus, critic labels, the torch reference benchmark
"""

from .model.reference import FusionInfo, NpcModel

__all__ = ["FusionInfo", "NpcModel"]
