"""Weight-only quantisation of decoder.onnx: every MatMul, the tied LM head included, to MatMulNBits.

Block size 32, symmetric, accuracy_level 4 (int8 activations inside the kernel): the LM head alone is 28M of the
135M parameters and is read every token, so leaving it in float would keep a fifth of the traffic unquantised.

Larger blocks (`npc-sdk export --block-size`) are for bigger decoders, where decoding reads every weight once a
token and the scales' bytes count: an fp32 scale per 32 weights makes 5 bits a weight, per 128 weights 4.25. On
a 1.5B shape that was 1.22x the decode speed of blocks of 32 (docs/models.md); the rounding is coarser, which
`--verify` measures. The default 135M stays at 32: at 64 its perplexity moved past verify's 10%.

Tried and not taken: an int4 mix, with q/k/v, the MLP's down projection and the LM head at 8 bits and the rest at
4 bits asymmetric. It brought the next-token KL to fp32 from 0.64 to 0.15 (16 held-out turns, teacher-forced on the
fp32 decoder's greedy replies) for ~14% more time a decode step of 8 rows, yet read blind it was no better: 92 of
196 differing held-out replies acceptable against 98 (docs/training.md).
"""

from __future__ import annotations

import logging

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

from npc_sdk.runtime.manifest import DECODER_BLOCK_SIZE, check_block_size

ACCURACY_LEVEL = 4


def quantize_decoder(
    model: onnx.ModelProto, bits: int, block_size: int = DECODER_BLOCK_SIZE
) -> onnx.ModelProto:
    if bits not in (4, 8):
        raise ValueError(f"bits must be 4 or 8, got {bits}")
    check_block_size(block_size, f"int{bits}")
    logging.getLogger("onnxruntime.quantization").setLevel(logging.WARNING)
    config = DefaultWeightOnlyQuantConfig(
        block_size=block_size, is_symmetric=True, accuracy_level=ACCURACY_LEVEL, bits=bits
    )
    quantizer = MatMulNBitsQuantizer(
        model,
        bits=bits,
        block_size=block_size,
        is_symmetric=True,
        accuracy_level=ACCURACY_LEVEL,
        algo_config=config,
    )
    quantizer.process()
    wrapped = quantizer.model
    return wrapped.model if hasattr(wrapped, "model") else wrapped


# ---- the prefill graph ---------------------------------------------------------------------------------------
# MatMulNBits is built for one row at a time: at 64 rows it runs at ~0.67 ms a position on two AVX-512 cores, no
# faster than float32. Prefill (a turn's 25-240 new positions) is the wide case, so decoder_prefill.onnx holds the
# same graph with integer weights (one scale per output column) and int8 activations with one scale per position
# (QuantizeLinear in blocks of a whole row), multiplied by onnxruntime's integer GEMM (MatMulIntegerToFloat, u8 x s8:
# VNNI where the CPU has it; its s8 x s8 path is ~15x slower, hence uint8 around a zero point of 128). Measured on
# the demo's 237-position first turn: 64 ms instead of 149, and closer to the fp32 reference (KL of the next-token
# distribution 0.05 against int4's 0.48). One scale per position keeps a position's result independent of the
# other positions and rows in the call, so a prefill split in chunks or batched gives what one call gives.
ACTIVATION_ZERO = 128
# Weights use 7 bits (-63..63). Without VNNI, the u8 x s8 kernel adds pairs of products in 16 bits (vpmaddubsw), and
# 2 x 255 x 127 saturates it: on an AVX2-only CPU the next-token KL to the reference was 0.28 with 8-bit weights and
# is 0.10 with 7 (2 x 255 x 63 fits). With VNNI nothing saturates and the lost weight bit costs little: decoding with
# 8-bit weights (MatMulNBits) is at a KL of 0.008 from fp32, so weight rounding is not where a prefill's error is.
WEIGHT_LEVELS = 63


def quantize_prefill(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of float `model` with every MatMul by a 2-D weight made integer (see above); `model` is unchanged and
    its float weights are never copied whole (a 1.7B decoder has ~7 GB of them)."""
    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    consts = {
        "q_axis_last": np.array([-1], np.int64),
        "q_inv127": np.array(1 / 127, np.float32),
        "q_tiny": np.array(1e-30, np.float32),  # an all-zero row gets scale 1e-30/127, not a division by zero
        "q_zero": np.array([ACTIVATION_ZERO], np.uint8),
        "q_one": np.array(1.0, np.float32),
    }
    new_weights = [numpy_helper.from_array(v, k) for k, v in consts.items()]
    nodes: list[onnx.NodeProto] = []
    replaced: set[str] = set()
    quantized: dict[str, tuple[str, str]] = {}  # activation -> (its uint8 form, its per-position scale)
    for node in graph.node:
        weight = weights.get(node.input[1]) if node.op_type == "MatMul" else None
        if weight is None or len(weight.dims) != 2:
            nodes.append(node)
            continue
        w = numpy_helper.to_array(weight).astype(np.float32, copy=False)
        column_scale = np.maximum(np.abs(w).max(axis=0), 1e-12) / WEIGHT_LEVELS
        out = node.output[0]
        new_weights += [
            numpy_helper.from_array(np.round(w / column_scale).astype(np.int8), out + "_w_int8"),
            numpy_helper.from_array(column_scale.astype(np.float32), out + "_w_scale"),
        ]
        replaced.add(weight.name)
        x = node.input[0]
        if x not in quantized:
            p = x + "_q"
            nodes += [
                helper.make_node("Abs", [x], [p + "_abs"]),
                helper.make_node("ReduceMax", [p + "_abs", "q_axis_last"], [p + "_absmax"], keepdims=1),
                helper.make_node("Max", [p + "_absmax", "q_tiny"], [p + "_absmax_pos"]),
                helper.make_node("Mul", [p + "_absmax_pos", "q_inv127"], [p + "_scale"]),
            ]
            nodes += [  # blocked QuantizeLinear wants a zero point shaped like the scale
                helper.make_node("Shape", [p + "_scale"], [p + "_scale_shape"]),
                helper.make_node("Expand", ["q_zero", p + "_scale_shape"], [p + "_zero_points"]),
            ]
            nodes.append(
                helper.make_node(
                    "QuantizeLinear",
                    [x, p + "_scale", p + "_zero_points"],
                    [p + "_u8"],
                    axis=-1,
                    block_size=w.shape[0],
                )
            )
            quantized[x] = (p + "_u8", p + "_scale")
        x_u8, x_scale = quantized[x]
        nodes += [
            helper.make_node(
                "MatMulIntegerToFloat",
                [x_u8, out + "_w_int8", "q_one", out + "_w_scale", "q_zero"],
                [out + "_per_unit"],
                domain="com.microsoft",
            ),
            helper.make_node("Mul", [out + "_per_unit", x_scale], [out]),
        ]
    kept = [t for t in graph.initializer if t.name not in replaced]
    new_graph = helper.make_graph(
        nodes, graph.name + "_prefill", list(graph.input), list(graph.output), kept + new_weights
    )
    prefill = helper.make_model(new_graph, opset_imports=list(model.opset_import))
    prefill.ir_version = model.ir_version
    return prefill
