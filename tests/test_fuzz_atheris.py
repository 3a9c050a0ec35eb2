"""The coverage-guided fuzzer runs a few thousand inputs from the committed corpus and finds no crash."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_atheris_fuzzer_finds_no_crash(tmp_path):
    pytest.importorskip("atheris")
    corpus = tmp_path / "corpus"
    shutil.copytree(ROOT / "fuzz" / "corpus", corpus)
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "fuzz" / "fuzz_inputs.py"),
            "-runs=4000",
            "-print_final_stats=1",
            str(corpus),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    runs = int(re.search(r"stat::number_of_executed_units:\s*(\d+)", out.stderr)[1])
    assert runs >= 4000
