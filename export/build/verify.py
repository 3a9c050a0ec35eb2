"""`npc-sdk export --verify`: the exported folder against the PyTorch reference, component by component.

Checks (figures are returned; `failures` lists what is out of bounds):
  * image encoder, text encoder (v_T and v_R), fusion (with its gate opened, so the graph is exercised): max abs diff;
  * decoder logits on fixed inputs with a non-empty past: max abs diff (fp32 bound 1e-3);
  * 64 greedy tokens (EOS ignored) on 3 prompts: identical to the reference for fp32;
  * int8 / int4: greedy agreement with the fp32 reference (teacher-forced top-1 and first divergence) and the
    perplexity of a fixed text against the reference's (bound: within 10%).
"""

from __future__ import annotations

import copy
import math
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from npc_sdk.demo import DEMO_PERSONA, scene_path
from npc_sdk.personas.persona import Persona
from npc_sdk.personas.prompt import build_prompt
from npc_sdk.runtime.images import preprocess
from npc_sdk.runtime.onnx_model import OnnxNpcModel, SlotSource

from ..model.reference import NpcModel, TorchLogitsSource

LOGITS_TOLERANCE = 1e-3
ENCODER_TOLERANCE = 1e-3
PPL_TOLERANCE = 0.10
PREFILL_KL_BOUND = (
    0.1  # the int8 prefill graph's next-token KL to the reference (0.05 on the demo's first turn)
)
GREEDY_TOKENS = 64

VERIFY_PROMPTS = (
    (DEMO_PERSONA, "Hello! Can you fix my sword? I see a dragon flying over the forge."),
    (
        Persona(name="Captain Hale", description="The stern captain of the city guard."),
        "Is the north road safe?",
    ),
    (
        Persona(name="Zib", description="A shady merchant with a cart of curiosities."),
        "What's the best thing you sell?",
    ),
)
PERPLEXITY_TEXT = (
    "The blacksmith wiped the soot from her brow and set the hammer down beside the anvil. Outside, snow had begun "
    "to fall on the mountain village, and the last traders were leading their mules down the pass before dark. "
    "She had promised the guard captain twelve spearheads by morning, and the forge would burn through the night. "
    "A traveller stood in the doorway, shaking frost from his cloak, and asked whether she could mend a broken sword."
)


def _greedy(source, embeds: np.ndarray, n: int) -> list[int]:
    tokens = [int(np.argmax(source.prefill(embeds)))]
    while len(tokens) < n:
        tokens.append(int(np.argmax(source.step(tokens[-1]))))
    return tokens


def _teacher_forced(source, embeds: np.ndarray, tokens: list[int]) -> list[np.ndarray]:
    """Logits before each of `tokens`, feeding the given tokens (not the model's choices)."""
    out = [source.prefill(embeds).copy()]
    for t in tokens[:-1]:
        out.append(source.step(t).copy())
    return out


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    m = x.max()
    return x - m - math.log(np.exp(x - m).sum())


def _perplexity(logits: list[np.ndarray], tokens: list[int]) -> float:
    nll = -np.mean([_log_softmax(lg)[t] for lg, t in zip(logits, tokens, strict=True)])
    return float(math.exp(nll))


def verify_folder(
    folder: Path, *, reference: NpcModel | None = None, log: Callable[[str], None] = print
) -> dict:
    onnx_model = OnnxNpcModel.load(folder)
    ref = reference or NpcModel.load(decoder=onnx_model.decoder_given or None, log=log)
    fmt = ref.decoder.chat_format
    precision = onnx_model.folder.precision
    report: dict = {"precision": precision, "failures": []}

    def check(name: str, value: float, bound: float) -> None:
        report[name] = value
        if not value <= bound:
            report["failures"].append(f"{name} = {value:.3g} > {bound:g}")

    # encoders
    scene = scene_path("meadow_slimes.png")
    pixels = preprocess(scene)
    with torch.inference_mode():
        refs = [t.numpy() for t in ref.image_encoder(torch.from_numpy(pixels))]
    check(
        "image_encoder_max_abs_diff",
        max(float(np.abs(a - b).max()) for a, b in zip(onnx_model.encode_image(scene), refs, strict=True)),
        ENCODER_TOLERANCE,
    )
    text = "What is that green slime doing on the path?"
    v_T_ref, _ = ref.encode_text(text)
    v_T, _ = onnx_model.encode_text(text)
    check("text_encoder_max_abs_diff", float(np.abs(v_T - v_T_ref.numpy()).max()), ENCODER_TOLERANCE)
    check(
        "role_encoder_max_abs_diff",
        float(np.abs(onnx_model.encode_role(DEMO_PERSONA) - ref.encode_role(DEMO_PERSONA).numpy()).max()),
        ENCODER_TOLERANCE,
    )
    report["fusion_max_abs_diff_gate_open"] = _check_fusion_graph(ref, text)
    if report["fusion_max_abs_diff_gate_open"] > ENCODER_TOLERANCE:
        report["failures"].append("fusion graph differs from torch with its gate opened")
    (got_prefix, got_tags), (want_prefix, want_tags) = (
        m.see(text, DEMO_PERSONA, scene) for m in (onnx_model, ref)
    )
    if (
        got_prefix is None or want_prefix is None
    ):  # an untrained projector: neither side adds prefix positions
        report["fusion_file_max_abs_diff"] = 0.0 if got_prefix is want_prefix else float("inf")
        if got_prefix is not want_prefix:
            report["failures"].append("one side adds fusion vectors, the other none")
    else:
        check("fusion_file_max_abs_diff", float(np.abs(got_prefix - want_prefix).max()), ENCODER_TOLERANCE)
    check("tag_probs_max_abs_diff", float(np.abs(got_tags - want_tags).max()), ENCODER_TOLERANCE)
    report["tags_identical"] = [t.name for t in onnx_model.tags] == [t.name for t in ref.tags] and all(
        abs(a.threshold - b.threshold) < 1e-6 for a, b in zip(onnx_model.tags, ref.tags, strict=True)
    )
    if not report["tags_identical"]:
        report["failures"].append("the manifest's tags or thresholds differ from the reference's")

    # decoder logits with a non-empty past: prefill 2/3 of a prompt, then the rest on top of it
    persona, line = VERIFY_PROMPTS[0]
    prompt = build_prompt(ref.decoder.tokenizer, persona, [], line, fmt=fmt).token_ids
    embeds = ref.embedding_table[np.asarray(prompt)]
    cut = 2 * len(prompt) // 3
    with torch.inference_mode():
        full = ref.decoder.lm(torch.tensor([prompt])).logits[0, -1].numpy()
    slot = onnx_model.acquire_slot()
    onnx_model.runner.run(slot, embeds[None, :cut])
    got = onnx_model.runner.run(slot, embeds[None, cut:])[0]
    onnx_model.release_slot(slot)
    diff = float(np.abs(got - full).max())
    if precision == "fp32":
        check("decoder_logits_max_abs_diff", diff, LOGITS_TOLERANCE)
    else:
        report["decoder_logits_max_abs_diff"] = diff

    if onnx_model.prefill_session is not None:
        _check_prefill_graph(onnx_model, ref, report)

    # greedy tokens and perplexity
    identical, agree, first_div, total = 0, 0, [], 0
    for persona, line in VERIFY_PROMPTS:
        p = build_prompt(ref.decoder.tokenizer, persona, [], line, fmt=fmt)
        emb_ref = p.embed(ref.embedding_table)
        want = _greedy(TorchLogitsSource(ref.decoder), emb_ref, GREEDY_TOKENS)
        slot = onnx_model.acquire_slot()
        try:
            got_tokens = _greedy(SlotSource(onnx_model, slot), onnx_model.embed(p), GREEDY_TOKENS)
            onnx_model.cache.lengths[slot] = 0
            forced = _teacher_forced(SlotSource(onnx_model, slot), onnx_model.embed(p), want)
        finally:
            onnx_model.release_slot(slot)
        identical += int(got_tokens == want)
        agree += sum(int(np.argmax(lg)) == t for lg, t in zip(forced, want, strict=True))
        total += len(want)
        first_div.append(
            next((i for i, (a, b) in enumerate(zip(got_tokens, want, strict=True)) if a != b), GREEDY_TOKENS)
        )
    report["greedy_prompts_identical"] = f"{identical}/{len(VERIFY_PROMPTS)}"
    report["greedy_first_divergence"] = first_div
    report["greedy_teacher_forced_agreement"] = round(agree / total, 4)
    if precision == "fp32" and identical != len(VERIFY_PROMPTS):
        report["failures"].append(
            f"greedy tokens differ from the reference on {len(VERIFY_PROMPTS) - identical} prompts"
        )

    ids = ref.decoder.tokenizer.encode(PERPLEXITY_TEXT, add_special_tokens=False).ids
    start = ref.embedding_table[np.asarray(ids[:1])]
    ppl_ref = _perplexity(_teacher_forced(TorchLogitsSource(ref.decoder), start, ids[1:]), ids[1:])
    slot = onnx_model.acquire_slot()
    try:
        ppl = _perplexity(
            _teacher_forced(SlotSource(onnx_model, slot), onnx_model.embed_ids(ids[:1]), ids[1:]), ids[1:]
        )
    finally:
        onnx_model.release_slot(slot)
    report["perplexity_reference"] = round(ppl_ref, 3)
    report["perplexity"] = round(ppl, 3)
    check("perplexity_relative_change", round(abs(ppl / ppl_ref - 1), 4), PPL_TOLERANCE)
    report["ok"] = not report["failures"]
    return report


def _check_prefill_graph(onnx_model: OnnxNpcModel, ref: NpcModel, report: dict) -> None:
    """decoder_prefill.onnx (integer GEMM) against the reference on each prompt's next token, next to what
    decoder.onnx gives for the same prefill: the prefill graph must be no further from the reference."""
    fmt = ref.decoder.chat_format
    decoder_only = onnx_model.separate_runner(prefill_graph=False)
    kl_prefill, kl_decoder, top1 = [], [], 0
    for persona, line in VERIFY_PROMPTS:
        p = build_prompt(ref.decoder.tokenizer, persona, [], line, fmt=fmt)
        with torch.inference_mode():
            want = ref.decoder.lm(torch.tensor([p.token_ids])).logits[0, -1].numpy()
        embeds = onnx_model.embed(p)[None]
        slot = onnx_model.acquire_slot()
        try:
            got = onnx_model.runner.run(slot, embeds)[0].copy()
        finally:
            onnx_model.release_slot(slot)
        plain = decoder_only.run(0, embeds)[0]
        decoder_only.cache.lengths[0] = 0
        kl_prefill.append(_kl(want, got))
        kl_decoder.append(_kl(want, plain))
        top1 += int(np.argmax(got) == np.argmax(want))
    report["decoder_graph_prefill_kl_to_reference"] = round(float(np.mean(kl_decoder)), 4)
    report["prefill_top1_agreement"] = round(top1 / len(VERIFY_PROMPTS), 4)
    report["prefill_kl_to_reference"] = round(float(np.mean(kl_prefill)), 4)
    if report["prefill_kl_to_reference"] > max(PREFILL_KL_BOUND, float(np.mean(kl_decoder))):
        report["failures"].append(
            f"prefill graph: KL to the reference {report['prefill_kl_to_reference']:.3g} is over "
            f"{PREFILL_KL_BOUND:g} and over decoder.onnx's {float(np.mean(kl_decoder)):.3g}"
        )


def _kl(want: np.ndarray, got: np.ndarray) -> float:
    """KL(reference || exported) of the next-token distributions."""
    p, q = _log_softmax(want.astype(np.float64)), _log_softmax(got.astype(np.float64))
    return float(np.sum(np.exp(p) * (p - q)))


def _check_fusion_graph(ref: NpcModel, text: str) -> float:
    """Export a copy of the fusion with its gate at 1 and compare it with torch: zero-gated output proves nothing."""
    from .onnx_export import export_fusion

    fusion = copy.deepcopy(ref.fusion)
    with torch.no_grad():
        fusion.gate.fill_(1.0)
    v_T, mask = ref.encode_text(text)
    v_R = ref.encode_role(DEMO_PERSONA)
    v_I, v_mid = ref.encode_image(scene_path("meadow_slimes.png"))
    has = torch.ones(1)
    with torch.inference_mode():
        want = [t.numpy() for t in fusion(v_I, v_mid, has, v_T, mask, v_R)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fusion.onnx"
        export_fusion(fusion, path)
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = sess.run(
            None,
            {
                "v_I": v_I.numpy(),
                "v_mid": v_mid.numpy(),
                "has_image": has.numpy(),
                "v_T": v_T.numpy(),
                "text_mask": mask.numpy().astype(np.float32),
                "v_R": v_R.numpy(),
            },
        )
    return max(float(np.abs(g - w).max()) for g, w in zip(got, want, strict=True))
