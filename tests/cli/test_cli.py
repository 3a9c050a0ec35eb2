"""The `npc-sdk` console script as a user runs it (slow: each command loads the real model)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ..server_process import ServerProcess

pytestmark = pytest.mark.slow


def _run(*args: str, timeout: int = 600, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "npc_sdk.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_pull_twice_says_there_is_nothing_to_do(model):  # the model fixture has pulled already
    out = _run("pull")
    assert out.returncode == 0, out.stderr
    lines = [ln for ln in out.stdout.splitlines() if ln.strip()]
    assert len(lines) == 3 and all(ln.startswith("ok") and "already" in ln for ln in lines)


def test_demo_plays_the_scripted_scene_on_the_runtime(exported_int4):
    out = _run("demo", "--max-tokens", "16", "--model", str(exported_int4))
    assert out.returncode == 0, out.stderr
    assert "onnxruntime int4 model" in out.stdout and "fusion weights: trained" in out.stdout
    assert out.stdout.count("Player") == 4
    assert "[showing meadow_slimes.png]" in out.stdout and "[showing lava_cave_key.png]" in out.stdout
    assert "[the game: Wren the explorer, door in view]" in out.stdout
    replies = re.findall(r"^Brakka: (.+)$", out.stdout, flags=re.M)
    assert len(replies) == 5 and all(r.strip() for r in replies)  # the greeting and four replies
    figures = re.findall(
        r"tokens, first after \d+ ms, [\d.]+ tok/s, \w+; in view: (.*)\)$", out.stdout, flags=re.M
    )
    assert len(figures) == 4
    meadow, cave, told, plain = figures
    assert "grass" in meadow and "lava" in cave  # what the head saw in the two screenshots
    assert "explorer" in told and "door" in told and plain == "nothing"


def test_bench_reference_writes_its_figures(tmp_path):
    target = tmp_path / "bench.json"
    out = _run("bench", "--reference", "--repeats", "1", "--json", str(target))
    assert out.returncode == 0, out.stderr
    figures = json.loads(target.read_text())
    assert figures["prompt_tokens"] == 60 and figures["new_tokens"] == 60
    for key in ("load_s", "ttft_ms", "decode_tokens_per_second", "ttft_ms_with_screenshot"):
        assert figures[key] > 0, key
    assert "decode_tokens_per_second" in out.stdout


def test_bench_model_writes_the_runtime_figures(exported_int4, tmp_path):
    target = tmp_path / "bench.json"
    # a stand-in peer: its line is what a peer script prints; each peer is compared with ours around it
    peer = "echo 'Some Engine int4: prompt 60 tokens, decode 10.0 tok/s, ttft cold 2000 ms'"
    out = _run(
        "bench", "--model", str(exported_int4), "--no-reference", "--repeats", "1", "--json", str(target),
        "--peer", peer,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    figures = json.loads(target.read_text())
    assert figures["peer_some_engine"] == {"decode_tokens_per_second": 10.0, "ttft_ms_cold": 2000.0}
    ours = (figures["decode_tokens_per_second"] + figures["decode_tokens_per_second_after_some_engine"]) / 2
    assert figures["decode_ratio_vs_some_engine"] == round(ours / 10.0, 2)
    assert figures["ttft_cold_ratio_vs_some_engine"] == round(figures["ttft_ms_cold"] / 2000.0, 2)
    for key in (
        "decode_tokens_per_second",
        "ttft_ms_cold",
        "ttft_ms_prefix_reuse",
        "ttft_ms_with_screenshot",
        "prefill_ms_256_positions",
        "prefill_ms_256_positions_decoder_graph",
        "peak_rss_mb",
    ):
        assert figures[key] > 0, key
    assert figures["prefix_reuse_cached_positions"] > figures["prefix_reuse_new_positions"]


def test_export_refuses_an_unknown_precision():
    out = _run("export", "--precision", "int3")
    assert out.returncode != 0 and "invalid choice" in out.stderr


def test_a_cached_model_of_an_older_format_no_prefill_graph_or_other_weights_is_exported_again(tmp_path):
    from npc_sdk.cli._common import _stale_export
    from npc_sdk.runtime.manifest import QUANTIZATION_RECIPE
    from npc_sdk.runtime.model_folder import FORMAT_VERSION

    manifest = tmp_path / "manifest.json"
    assert _stale_export(manifest) == ""  # nothing cached: nothing stale (ensure_model exports it anyway)
    manifest.write_text(json.dumps({"format_version": FORMAT_VERSION - 1, "fusion": {}}))
    assert "older npc-sdk" in _stale_export(manifest)
    current = {
        "format_version": FORMAT_VERSION,
        "precision": "int4",
        "quantization_recipe": QUANTIZATION_RECIPE,
        "model": {"decoder_prefill": {}},
    }
    manifest.write_text(json.dumps({**current, "model": {}, "fusion": {}}))
    assert "no prefill graph" in _stale_export(manifest)  # exported before decoder_prefill.onnx existed
    manifest.write_text(json.dumps({**current, "fusion": {"sha256": "0" * 64}}))
    assert "was not exported with" in _stale_export(manifest)
    # quantised by the recipe before (no recipe recorded): all 4-bit, 8-bit prefill weights
    manifest.write_text(json.dumps({k: v for k, v in current.items() if k != "quantization_recipe"}))
    assert "older recipe" in _stale_export(manifest)
    manifest.write_text(json.dumps({**current, "precision": "fp32", "quantization_recipe": 1}))
    assert "older recipe" not in _stale_export(manifest)  # fp32 is not quantised


def test_chat_scene_mode_lets_the_npcs_talk_and_answers_the_player(exported_int4, tmp_path):
    from npc_sdk.client import Client
    from npc_sdk.demo import scene_path

    personas = Path(__file__).resolve().parents[2] / "samples" / "personas"
    script = (
        f"/look {scene_path('meadow_slimes.png')}\n/talk 2 What is that out on the road?\n"
        "Mirela, what do you make of it?\n/quit\n"
    )
    with ServerProcess(exported_int4, tmp_path / "data", "--personas", str(personas)) as server:
        chat = ["chat", "--address", server.address, "--scene", "brakka,mirela", "--max-tokens", "16"]
        out = _run(*chat, stdin=script, timeout=300)
        assert out.returncode == 0, out.stdout + out.stderr
        said = re.findall(r"^(?:you> )*(Brakka|Mirela): (.+)$", out.stdout, flags=re.M)
        assert len(said) == 3 and all(text.strip() for _, text in said), out.stdout
        (first, _), (second, _), (answer, _) = said
        assert first != second and answer == "Mirela", out.stdout  # they take turns; the NPC named answers
        scene_id = re.search(r"^scene (\w+) with Brakka and Mirela\.", out.stdout, flags=re.M)[1]
        with Client(server.address, timeout=60) as client:
            members = client.get_scene(scene_id).members
            replies = {m.name: [t.reply for t in client.get_session(m.session_id).turns] for m in members}
    # every line printed is stored in its speaker's session, and nothing else is
    assert sorted(said) == sorted((n, r) for n, rs in replies.items() for r in rs)


@pytest.mark.slow
def test_the_capacity_bench_times_a_batch_of_decode_steps_against_one_sequence(exported_int4):
    from npc_sdk.bench_capacity import decode_ceiling

    figures = decode_ceiling(exported_int4, batch=2, steps=2, repeats=1)
    assert figures["kv_positions_per_sequence"] >= 250
    assert figures["ceiling_tokens_per_second"] > 0 and figures["one_sequence_tokens_per_second"] > 0
