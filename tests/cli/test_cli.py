"""The `npc-sdk` console script as a user runs it (slow: each command loads the real model)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def _run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "npc_sdk.cli", *args], capture_output=True, text=True, timeout=timeout
    )


def test_pull_twice_says_there_is_nothing_to_do(model):  # the model fixture has pulled already
    out = _run("pull")
    assert out.returncode == 0, out.stderr
    lines = [ln for ln in out.stdout.splitlines() if ln.strip()]
    assert len(lines) == 3 and all(ln.startswith("ok") and "already" in ln for ln in lines)


def test_demo_plays_the_scripted_scene():
    out = _run("demo", "--max-tokens", "16")
    assert out.returncode == 0, out.stderr
    assert "fusion weights: trained (" in out.stdout  # the committed weights are the default
    assert out.stdout.count("Player") == 3
    assert "[showing meadow_slimes.png]" in out.stdout and "[showing lava_cave_key.png]" in out.stdout
    replies = re.findall(r"^Brakka: (.+)$", out.stdout, flags=re.M)
    assert len(replies) == 4 and all(r.strip() for r in replies)  # the greeting and three replies
    assert len(re.findall(r"tokens, first after \d+ ms", out.stdout)) == 3


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
    out = _run(
        "bench", "--model", str(exported_int4), "--no-reference", "--repeats", "1", "--json", str(target)
    )
    assert out.returncode == 0, out.stderr
    figures = json.loads(target.read_text())
    for key in (
        "decode_tokens_per_second",
        "ttft_ms_cold",
        "ttft_ms_prefix_reuse",
        "ttft_ms_with_screenshot",
        "peak_rss_mb",
    ):
        assert figures[key] > 0, key
    assert figures["prefix_reuse_cached_positions"] > figures["prefix_reuse_new_positions"]


def test_export_refuses_an_unknown_precision():
    out = _run("export", "--precision", "int3")
    assert out.returncode != 0 and "invalid choice" in out.stderr
