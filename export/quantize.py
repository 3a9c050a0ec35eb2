"""Weight-only quantisation of decoder.onnx: every MatMul, the tied LM head included, to MatMulNBits.

Block size 32, symmetric, accuracy_level 4 (int8 activations inside the kernel): the LM head alone is 28M of the
135M parameters and is read every token, so leaving it in float would keep a fifth of the traffic unquantised.
"""

from __future__ import annotations

import logging

import onnx
from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

BLOCK_SIZE = 32
ACCURACY_LEVEL = 4


def quantize_decoder(model: onnx.ModelProto, bits: int) -> onnx.ModelProto:
    if bits not in (4, 8):
        raise ValueError(f"bits must be 4 or 8, got {bits}")
    logging.getLogger("onnxruntime.quantization").setLevel(logging.WARNING)
    config = DefaultWeightOnlyQuantConfig(
        block_size=BLOCK_SIZE, is_symmetric=True, accuracy_level=ACCURACY_LEVEL, bits=bits
    )
    quantizer = MatMulNBitsQuantizer(
        model,
        bits=bits,
        block_size=BLOCK_SIZE,
        is_symmetric=True,
        accuracy_level=ACCURACY_LEVEL,
        algo_config=config,
    )
    quantizer.process()
    wrapped = quantizer.model
    return wrapped.model if hasattr(wrapped, "model") else wrapped
