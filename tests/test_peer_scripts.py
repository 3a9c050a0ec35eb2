"""The peers `npc-sdk bench --peer` measures beside us: their result lines parse, and they time our prompt."""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import pytest

from npc_sdk.bench import run_peer
from npc_sdk.demo import BENCH_NEW_TOKENS, BENCH_PROMPT

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("line", "engine", "decode", "ttft"),
    [
        (
            "onnxruntime-genai int4: prompt 60 tokens, decode 104.1 tok/s, ttft cold 147 ms",
            "onnxruntime_genai",
            104.1,
            147,
        ),
        (
            "llama.cpp Q4_1 (llama-cpp-python 0.3.36, 2 threads): prompt 60 tokens, "
            "decode 88.5 tok/s, ttft cold 355 ms",
            "llama_cpp",
            88.5,
            355,
        ),
    ],
)
def test_a_peer_result_line_gives_its_engine_and_figures(line, engine, decode, ttft):
    name, figures = run_peer(f"echo building >&2; echo {shlex.quote(line)}")
    assert name == engine
    assert figures == {"decode_tokens_per_second": decode, "ttft_ms_cold": float(ttft)}


def test_a_peer_that_prints_no_figures_is_an_error_that_shows_its_output():
    with pytest.raises(RuntimeError, match="no figures: .*could not build"):
        run_peer("echo could not build")


def test_the_llamacpp_peer_times_our_benchmark_prompt_word_for_word():
    # one measurement for both callers: scripts/peer-llamacpp and `npc-sdk bench --sizes`
    measure = (ROOT / "scripts" / "llamacpp_measure.py").read_text()
    block = re.search(r"BENCH_PROMPT = \((.*?)\)\n", measure, re.DOTALL)
    assert block, "scripts/llamacpp_measure.py no longer holds the prompt as one literal"
    assert ast.literal_eval(f"({block[1]})") == BENCH_PROMPT
    peer = (ROOT / "scripts" / "peer-llamacpp").read_text()
    call = re.search(r'llamacpp_measure\.py" "\$G" (\d+) \d+ --label', peer)
    assert call and int(call[1]) == BENCH_NEW_TOKENS
    sizes = (ROOT / "npc_sdk" / "bench_sizes.py").read_text()
    assert '"llamacpp_measure.py"' in sizes and "_LLAMACPP_MEASURE" not in sizes
