"""Where in the picture the grounding head sees each tag: its per-cell scores, for the studio's heat map.

The fusion graph's tag head scores every tag in every stride-16 cell of the 448x256 letterbox (16x28 cells) and
pools the cells into one score per tag (export/model/fusion.py: TagHead, pool_cells); the exported graph returns
only the pooled `tag_probs`. The studio cuts the head out of fusion.onnx (the nodes from v_I and v_mid to the
cell scores, before the pooling) and runs it beside the image encoder in sessions of its own, so the served
model is untouched. Cutting the graph needs the `onnx` package (the export extra); without it there is no heat
map and the page says so.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from ..runtime.graphs import session_options
from ..runtime.images import IMAGE_HEIGHT, IMAGE_WIDTH, decode_bytes, letterbox, preprocess
from ..runtime.model_folder import ModelFolder

CELL = 16  # pixels of the letterbox per cell (the encoder's stride-16 grid)
POOL = 4.0  # the head's soft-maximum sharpness (export/model/fusion.py TAG_POOL), for the pooled check
SHOWN = 0.05  # tags whose picture score is below this are left out of the answer (the head is sure: absent)


def _cell_output(model: Any) -> str:
    """The name of the cell-score tensor: what the pooling's ReduceLogSumExp reads, scaled by the sharpness."""
    made_by = {out: node for node in model.graph.node for out in node.output}
    pool = next(n for n in model.graph.node if n.op_type == "ReduceLogSumExp")
    scaled = made_by[pool.input[0]]
    constants = {i.name for i in model.graph.initializer}
    return next(
        name
        for name in scaled.input
        if name not in constants and not (name in made_by and made_by[name].op_type == "Constant")
    )


class TagCells:
    """The image encoder and the fusion's tag head, cut out of a model folder; loaded on first use."""

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir
        self._lock = threading.Lock()
        self._sessions: tuple[ort.InferenceSession, ort.InferenceSession] | None = None
        self.why_not = ""  # why there is no heat map, once that is known

    def _load(self) -> tuple[ort.InferenceSession, ort.InferenceSession] | None:
        with self._lock:
            if self._sessions is None and not self.why_not:
                try:
                    import onnx
                    from onnx.utils import Extractor
                except ImportError:
                    self.why_not = (
                        "the heat map needs the onnx package (pip install onnx, or the export extra)"
                    )
                    return None
                folder = ModelFolder.open(self.model_dir, verify=False)
                fusion = onnx.load(str(folder.file("fusion")))
                name = _cell_output(fusion)
                if name not in {v.name for v in fusion.graph.value_info}:  # the extractor needs its type
                    fusion.graph.value_info.append(
                        onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
                    )
                head = Extractor(fusion).extract_model(["v_I", "v_mid"], [name])
                providers = ["CPUExecutionProvider"]
                image = ort.InferenceSession(
                    str(folder.file("image_encoder")),
                    session_options(1),
                    providers=providers,
                )
                cells = ort.InferenceSession(
                    head.SerializeToString(), session_options(1), providers=providers
                )
                self.tags = [t.name for t in folder.manifest.fusion.tags]
                self._sessions = image, cells
            return self._sessions

    def scores(self, png: bytes) -> dict[str, Any]:
        """Per tag the head is not sure is absent: its picture score and its score in every cell (row by row), and
        where the picture lies in the letterbox the cells cover."""
        sessions = self._load()
        if sessions is None:
            return {"available": False, "why": self.why_not}
        image, head = sessions
        picture = decode_bytes(png)
        _, box = letterbox(picture.convert("RGB"))
        v_I, v_mid = image.run(["v_I", "v_mid"], {"pixels": preprocess(picture)})
        logits = head.run(None, {"v_I": v_I, "v_mid": v_mid})[0][0]  # [cells, tags]
        pooled = (
            np.logaddexp.reduce(logits * POOL, axis=0) - np.log(len(logits))
        ) / POOL  # the graph's pooling
        picture_scores = 1 / (1 + np.exp(-pooled))
        cells = 1 / (1 + np.exp(-logits))
        tags = {
            name: {
                "score": round(float(picture_scores[i]), 4),
                "cells": [round(float(v), 3) for v in cells[:, i]],
            }
            for i, name in enumerate(self.tags)
            if picture_scores[i] >= SHOWN
        }
        return {
            "available": True,
            "rows": IMAGE_HEIGHT // CELL,
            "cols": IMAGE_WIDTH // CELL,
            "canvas": [IMAGE_WIDTH, IMAGE_HEIGHT],
            "box": list(box),  # x0, y0, x1, y1 of the picture inside the letterbox
            "tags": tags,
        }
