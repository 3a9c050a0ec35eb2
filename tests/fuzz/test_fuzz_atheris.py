"""The coverage-guided fuzzer runs a few thousand seeded inputs from the committed corpus and finds no crash.

The memory bound is the harness's own (fuzz/fuzz_inputs.py): libFuzzer's rss check would read the peak RSS of
this pytest process, which the harness inherits through fork and exec.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RSS_LIMIT_MB = 2048


def test_atheris_fuzzer_finds_no_crash(tmp_path):
    pytest.importorskip("atheris")
    corpus = tmp_path / "corpus"
    shutil.copytree(ROOT / "fuzz" / "corpus", corpus)
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "fuzz" / "fuzz_inputs.py"),
            "-runs=4000",
            "-seed=3",
            "-rss_limit_mb=0",  # the harness checks its own peak instead (see fuzz/fuzz_inputs.py)
            "-print_final_stats=1",
            str(corpus),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env={**os.environ, "NPC_FUZZ_RSS_LIMIT_MB": str(RSS_LIMIT_MB)},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    runs = int(re.search(r"stat::number_of_executed_units:\s*(\d+)", out.stderr)[1])
    assert runs >= 4000
    peaks = [float(m) for m in re.findall(r"npc-fuzz: own peak rss (\d+) MB", out.stderr)]
    assert peaks, "the harness never reported its memory"  # it checks every 500 inputs
    assert max(peaks) < RSS_LIMIT_MB
