"""`npc-sdk bench --model DIR`: speed of the onnxruntime runtime on the fixed benchmark prompt, as figures.

decode_tokens_per_second  60-token persona prompt, 60 new greedy tokens (EOS ignored), median of the repeats
ttft_ms_cold              that prompt from an empty cache to the first token
ttft_ms_prefix_reuse      a ~20-token player line in a running conversation (text encoder + fusion + prefill)
ttft_ms_with_screenshot   the same with a screenshot (image encoder too), a picture the encoder has not seen
ttft_ms_with_screenshot_seen_before   the same picture again (its encoder states come from the cache)
prefill_ms_256_positions  a 256-position prefill on decoder_prefill.onnx, and (..._decoder_graph) on decoder.onnx,
                          alternated in the same run, with their ratio (prefill_speedup_vs_decoder_graph)
action_decision_ms        deciding a turn's action (one text-encoder pass over the line, then the scores)
emotion_ms_per_reply      classifying a reply's emotion (one text-encoder pass over the reply and the line)
peak_rss_mb               the process's peak resident memory
peer_ENGINE               with --peer CMD (repeatable): that peer's decode tok/s and cold first token on the same
                          prompt, measured in the same run; decode_ratio_vs_ENGINE (ours, the mean of our runs just
                          before and just after the peer's, over theirs) and ttft_cold_ratio_vs_ENGINE (ours over
                          theirs)

`npc-sdk bench --cards CARD [LOREBOOK...]` prints what real cards cost instead: the lore scan per turn (every
lorebook given, joined to the card), the persona block's tokens and KV memory, and the first-turn time to first
token with that persona against the short demo persona in the same run (see bench_cards).

`npc-sdk bench --role-words` prints instead how often sampled replies name the persona's role words at each
bias weight (the whole-word bias of word_bias.py): a rate from sampled text, so a benchmark figure, not a test.
"""

from __future__ import annotations

import json
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from .demo import BENCH_NEW_TOKENS, DEMO_PERSONA, bench_prompt, scene_path
from .personas.persona import Persona
from .runtime.decode_loop import timed_greedy
from .runtime.events import Done
from .runtime.generation import GenerationConfig
from .runtime.onnx_model import OnnxNpcModel
from .runtime.slot_decode import SlotSource

PLAYER_LINE = "The old bridge north of the mine collapsed last night. Could you forge new iron braces for it?"
OPENING_LINE = "Good evening, smith. Cold night for it."


def _greedy_timing(model: OnnxNpcModel, ids: list[int], new_tokens: int) -> tuple[float, float]:
    slot = model.acquire_slot()
    try:
        return timed_greedy(SlotSource(model, slot), model.embed_ids(ids), new_tokens)
    finally:
        model.release_slot(slot)


def _turn_ttft(model: OnnxNpcModel, screenshot: bytes | None, seen: bool = False) -> tuple[float, int, int]:
    """The first token of a second turn (the first one's KV reused); with `seen` False, the picture is new to the
    encoder's cache."""
    from .runtime.conversation import Conversation

    if not seen:
        model.encoders.forget_images()
    cfg = GenerationConfig(temperature=0.0, max_tokens=24)
    with Conversation(model, DEMO_PERSONA) as conv:
        conv.reply(OPENING_LINE, config=cfg)
        done = conv.reply(PLAYER_LINE, screenshot=screenshot, config=cfg.with_(max_tokens=1))
    return done.timings.ttft_ms, done.usage.prompt_tokens - done.usage.cached_tokens, done.usage.cached_tokens


def role_word_rates(
    model: OnnxNpcModel,
    persona: Persona,
    line: str,
    *,
    weights: Sequence[float] = (0.0, 1.0, 3.0, 6.0, 10.0),
    seeds: Iterable[int] = range(20),
    max_tokens: int = 40,
) -> dict[float, float]:
    """Share of sampled replies that name one of the persona's role words, with every role word at each weight."""
    seeds = list(seeds)
    pattern = re.compile(r"\b(" + "|".join(re.escape(w) for w in persona.role_words) + r")", re.IGNORECASE)
    rates = {}
    for weight in weights:
        biased = replace(persona, role_words={w: weight for w in persona.role_words})
        hits = 0
        for seed in seeds:
            config = GenerationConfig(temperature=0.8, seed=seed, max_tokens=max_tokens)
            hits += bool(
                pattern.search(model.reply(line, persona=biased, config=config, use_prefix=False).text)
            )
        rates[weight] = round(hits / len(seeds), 3)
    return rates


_PEER_LINE = re.compile(
    r"^(?P<engine>[^:\n]+?)(?: Q\w+| int4)?(?: \([^)]*\))?: .*?decode (?P<decode>[\d.]+) tok/s, "
    r"ttft cold (?P<ttft>\d+) ms",
    re.MULTILINE,
)


def run_peer(command: str) -> tuple[str, dict[str, float]]:
    """Run a peer's benchmark script (../shared/bench/peer-ortgenai, scripts/peer-llamacpp) and parse its result
    line, `ENGINE[ (notes)]: ... decode X tok/s, ttft cold Y ms`: the engine as a key (`onnxruntime_genai`,
    `llama_cpp`) and its figures."""
    out = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=3600)
    match = _PEER_LINE.search(out.stdout)
    if not match:
        raise RuntimeError(f"peer benchmark printed no figures: {out.stdout[-500:]} {out.stderr[-500:]}")
    engine = re.sub(r"[^a-z0-9]+", "_", match["engine"].strip().lower()).strip("_")
    return engine, {"decode_tokens_per_second": float(match["decode"]), "ttft_ms_cold": float(match["ttft"])}


def bench_model(
    path: Path,
    *,
    repeats: int = 3,
    threads: int | None = None,
    reference: bool = True,
    peers: Sequence[str] = (),
) -> dict:
    t0 = time.perf_counter()
    model = OnnxNpcModel.load(path, threads=threads)
    load_s = time.perf_counter() - t0
    ids = model.tokenizer.encode(bench_prompt(model.chat_format), add_special_tokens=False).ids
    _greedy_timing(model, ids, 4)  # warm-up
    ttft, tps = zip(*(_greedy_timing(model, ids, BENCH_NEW_TOKENS) for _ in range(repeats)), strict=True)
    shot = scene_path("meadow_slimes.png").read_bytes()
    _turn_ttft(model, shot)  # warm-up of the encoders
    reuse = [_turn_ttft(model, None) for _ in range(repeats)]
    with_shot = [_turn_ttft(model, shot) for _ in range(repeats)]
    shot_again = [_turn_ttft(model, shot, seen=True) for _ in range(repeats)]
    figures: dict = {
        "engine": f"npc-sdk onnxruntime {model.folder.precision}",
        "model": str(path),
        "decoder": model.decoder_name,
        "load_s": round(load_s, 2),
        "prompt_tokens": len(ids),
        "new_tokens": BENCH_NEW_TOKENS,
        "decode_tokens_per_second": round(statistics.median(tps), 1),
        "ttft_ms_cold": round(statistics.median(ttft), 1),
        "ttft_ms_prefix_reuse": round(statistics.median(r[0] for r in reuse), 1),
        "prefix_reuse_new_positions": reuse[0][1],
        "prefix_reuse_cached_positions": reuse[0][2],
        "ttft_ms_with_screenshot": round(statistics.median(r[0] for r in with_shot), 1),
        "ttft_ms_with_screenshot_seen_before": round(statistics.median(r[0] for r in shot_again), 1),
    }
    if reference:
        figures["reference"] = _reference_figures(repeats, model.decoder_given)
    if "decode_tokens_per_second" in figures.get("reference", {}):
        figures["decode_speedup_vs_reference"] = round(
            figures["decode_tokens_per_second"] / figures["reference"]["decode_tokens_per_second"], 2
        )
    before = figures["decode_tokens_per_second"]
    for command in peers:
        # Shared machines drift: measure ours again right after each peer and compare the peer with the mean
        # of ours just before and just after it, so neither side gets the quieter minute.
        engine, theirs = run_peer(command)
        figures[f"peer_{engine}"] = theirs
        # rounded as reported, so the ratio can be checked from the printed figures
        runs = [_greedy_timing(model, ids, BENCH_NEW_TOKENS)[1] for _ in range(repeats)]
        after = round(statistics.median(runs), 1)
        figures[f"decode_tokens_per_second_after_{engine}"] = after
        ours, before = (before + after) / 2, after
        figures[f"decode_ratio_vs_{engine}"] = round(ours / theirs["decode_tokens_per_second"], 2)
        figures[f"ttft_cold_ratio_vs_{engine}"] = round(figures["ttft_ms_cold"] / theirs["ttft_ms_cold"], 2)
    figures.update(prefill_costs(model, repeats))
    figures.update(behaviour_costs(model, repeats))
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return figures


PREFILL_POSITIONS = 256  # about a long turn, or one persona warm-up chunk


def prefill_costs(model: OnnxNpcModel, repeats: int = 3) -> dict:
    """A 256-position prefill on the prefill graph and on decoder.onnx, alternated in the same minutes (the
    machine drifts), median of 3 x repeats each; {} for a folder without a prefill graph."""
    if model.prefill_session is None:
        return {}
    runners = {
        graph: model.separate_runner(prefill_graph=graph == "prefill") for graph in ("prefill", "decoder")
    }
    ids = (model.tokenizer.encode(bench_prompt(model.chat_format), add_special_tokens=False).ids * 8)[
        :PREFILL_POSITIONS
    ]
    embeds = model.embed_ids(ids)[None]
    times: dict[str, list[float]] = {graph: [] for graph in runners}
    for i in range(1 + 3 * repeats):
        for graph, runner in runners.items():
            runner.cache.lengths[0] = 0
            t0 = time.perf_counter()
            runner.run(0, embeds)
            if i:  # the first round plans and allocates
                times[graph].append((time.perf_counter() - t0) * 1000)
    prefill, plain = (statistics.median(times[g]) for g in ("prefill", "decoder"))
    return {
        "prefill_ms_256_positions": round(prefill, 1),
        "prefill_ms_256_positions_decoder_graph": round(plain, 1),
        "prefill_speedup_vs_decoder_graph": round(plain / prefill, 2),
    }


def behaviour_costs(model: OnnxNpcModel, repeats: int = 3) -> dict:
    """Per turn: the action decision (line vector + scores) and the reply's emotion, median of 20 x repeats."""
    from .personas.actions import Action

    actions = [
        Action(
            "sharpen_weapon", "sharpen the player's weapon", ["Can you sharpen my sword?", "Hone my axe."]
        ),
        Action("open_shop", "open the shop", ["What do you have for sale?", "Show me your wares."]),
    ]
    line, reply = "Could you put an edge on my blade?", "Hmph. Leave it on the anvil, lad, I'll see to it."
    decider = model.action_decider
    model.emotion(reply, line)  # builds the prototypes once
    decide, emotion = [], []
    for _ in range(20 * repeats):
        t0 = time.perf_counter()
        decider.decide(line, model.sentence_vectors([line])[0], actions)
        t1 = time.perf_counter()
        model.emotion(reply, line)
        decide.append((t1 - t0) * 1000)
        emotion.append((time.perf_counter() - t1) * 1000)
    return {
        "action_decision_ms": round(statistics.median(decide), 2),
        "emotion_ms_per_reply": round(statistics.median(emotion), 2),
    }


def _reference_figures(repeats: int, decoder: str = "") -> dict:
    """The PyTorch reference's figures from a child process, so its memory does not count in ours.

    `decoder`: the GGUF or folder the model folder was exported from ("" for the embedded default)."""
    if decoder and not Path(decoder).exists():
        return {"error": f"the decoder {decoder} the model was exported from is not on this machine"}
    code = (
        "import json; from npc_export.eval.bench_reference import bench_reference; "
        f"print('JSON' + json.dumps(bench_reference(repeats={repeats}, decoder={decoder or None!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("JSON")), None)
    if out.returncode != 0 or line is None:
        return {"error": (out.stderr or out.stdout)[-300:]}
    return json.loads(line[4:])


SCAN_LINES = (
    "Tell me about the Astral Express.",
    "What do the Stellaron Hunters want?",
    "Have you been to Boulder Town or Rivet Town?",
    "Nice weather today, isn't it?",
    "Is this a magical forest?",
)


def bench_cards(
    path: Path | None, files: Sequence[Path], *, repeats: int = 3, threads: int | None = None
) -> dict:
    """Lore scan cost and long-card prompt cost. Lore figures need no model; `path` None skips the model ones."""
    from .personas.files import load_lorebook, load_persona
    from .personas.lore import lore_index
    from .personas.prompt import fit_persona
    from .runtime.conversation import Conversation

    books = [b for b in (load_lorebook(f) for f in files) if b is not None]
    cards = [load_persona(f) for f in files if load_lorebook(f) is None]
    persona = cards[0] if cards else Persona(name="Guide")
    persona.lore = persona.lore + [e for b in books for e in b.entries]
    persona.validate()
    figures: dict = {"files": [str(f) for f in files], "lore_entries": len(persona.lore)}
    history = [
        "I met March 7th on the Express.",
        "Where is the Herta Space Station?",
    ] * persona.lore_scan_turns
    count = lambda s: len(s) // 4  # noqa: E731 - the scan's own cost is what is measured, not the tokenizer's
    index = lore_index(persona)
    turns = 2000
    t0 = time.perf_counter()
    fired = 0
    for i in range(turns):
        fired += len(
            index.select([SCAN_LINES[i % len(SCAN_LINES)], *history], count, persona.lore_budget_tokens)
        )
    figures["lore_scan_ms_per_turn"] = round((time.perf_counter() - t0) / turns * 1000, 3)
    figures["lore_entries_fired_per_turn"] = round(fired / turns, 2)
    if path is None or not cards:
        return figures
    model = OnnxNpcModel.load(path, threads=threads)
    dec = model.folder.manifest.decoder
    kv_bytes = dec.layers * 2 * dec.kv_heads * dec.head_dim * 4
    fitted = fit_persona(model.tokenizer, persona, model.persona_tokens, model.chat_format)
    figures.update(
        {
            "card": persona.name,
            "context_positions": model.cache.max_len,
            "persona_budget_tokens": model.persona_tokens,
            "persona_block_tokens": len(fitted.ids),
            "persona_trimmed": list(fitted.trimmed),
            "persona_kv_mb": round(len(fitted.ids) * kv_bytes / 2**20, 1),
            "kv_mb_per_1000_positions": round(1000 * kv_bytes / 2**20, 1),
        }
    )
    cfg = GenerationConfig(temperature=0.0, max_tokens=16)

    def first_turn(p: Persona) -> tuple[float, float]:
        model.persona_kv.clear()  # a cold persona: its block is prefilled in this turn
        with Conversation(model, p) as conv:
            cold = conv.reply(OPENING_LINE, config=cfg, use_prefix=False)
        with Conversation(model, p) as conv:  # a second session of the same persona reuses the block's KV
            warm = conv.reply(OPENING_LINE, config=cfg, use_prefix=False)
        return cold.timings.ttft_ms, warm.timings.ttft_ms

    first_turn(DEMO_PERSONA)  # warm-up
    short = [first_turn(DEMO_PERSONA) for _ in range(repeats)]
    long = [first_turn(persona) for _ in range(repeats)]
    figures["demo_persona_block_tokens"] = len(
        fit_persona(model.tokenizer, DEMO_PERSONA, model.persona_tokens, model.chat_format).ids
    )
    figures["ttft_ms_first_turn_demo_persona"] = round(statistics.median(s[0] for s in short), 1)
    figures["ttft_ms_first_turn_card"] = round(statistics.median(s[0] for s in long), 1)
    figures["ttft_ms_second_session_card"] = round(statistics.median(s[1] for s in long), 1)
    figures["card_first_turn_ratio_vs_demo"] = round(
        figures["ttft_ms_first_turn_card"] / figures["ttft_ms_first_turn_demo_persona"], 1
    )
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return figures


def bench_candidates(
    folder: Path, counts: Sequence[int] = (1, 2, 4, 8), seeds: Sequence[int] = (1, 2, 3)
) -> dict:
    """Best of N on the demo's turns: time to the first streamed token, what the batch of N costs against one
    whole reply (N = 1) and the critic's acceptability per N.

    Each (N, seed) plays the demo script as one conversation (so later turns reuse the KV state, as a game's
    would); with N > 1 the first token streams once every candidate says it (batch.py), at the latest once the
    critic has chosen. The N values alternate within each seed, so a drifting machine affects them alike."""
    from .demo import DEMO_SCRIPT
    from .runtime.conversation import Conversation

    model = OnnxNpcModel.load(folder, slots=max(counts) + 1)
    ttft: dict[int, list[float]] = {n: [] for n in counts}
    whole: dict[int, list[float]] = {n: [] for n in counts}  # from the call to its Done: the chosen reply whole
    ok: dict[int, list[bool]] = {n: [] for n in counts}
    replies: dict[int, list[str]] = {n: [] for n in counts}
    base = DEMO_PERSONA.generation_defaults()
    # every graph (the image encoder's first run allocates for ~0.2 s, as a server's warm-up does before serving),
    # the critic and the persona KV warm before timing; the picture is then forgotten, so the first turn encodes it
    _warm = Conversation(model, DEMO_PERSONA)
    _warm.reply("Hello.", screenshot=scene_path(DEMO_SCRIPT[0].screenshot), config=base.with_(max_tokens=4))
    _warm.close()
    model.encoders.forget_images()
    for seed in seeds:
        for n in counts:
            with Conversation(model, DEMO_PERSONA) as conv:
                for k, line in enumerate(DEMO_SCRIPT):
                    shot = scene_path(line.screenshot) if line.screenshot else None
                    config = base.with_(candidates=n, seed=seed * 100 + k, max_tokens=60)
                    started = time.perf_counter()
                    for event in conv.stream(line.text, screenshot=shot, scene=line.scene, config=config):
                        if isinstance(event, Done):
                            whole[n].append((time.perf_counter() - started) * 1000)
                            done = event
                    verdict = model.critic.judge(
                        line.text, DEMO_PERSONA, [done.text], [done.fluency], [done.finish_reason]
                    )[0]
                    ttft[n].append(done.timings.ttft_ms)
                    ok[n].append(verdict.acceptable)
                    replies[n].append(done.text)
    return {
        "turns_per_n": len(seeds) * len(DEMO_SCRIPT),
        **{f"ttft_ms_median_n{n}": round(statistics.median(ttft[n]), 1) for n in counts},
        **{f"ttft_ms_max_n{n}": round(max(ttft[n]), 1) for n in counts},
        # what N candidates cost: the time until the chosen reply is whole, against one reply's (words every
        # candidate agrees on stream before that, so the first token no longer measures the batch)
        **{f"whole_reply_ms_median_n{n}": round(statistics.median(whole[n]), 1) for n in counts},
        **{
            f"batch_over_one_reply_n{n}": round(
                statistics.median(whole[n]) / statistics.median(whole[counts[0]]), 2
            )
            for n in counts[1:]
        },
        **{f"critic_acceptable_n{n}": round(sum(ok[n]) / len(ok[n]), 3) for n in counts},
        "replies": {f"n{n}": replies[n] for n in counts},
    }
