"""`npc-sdk bench --sizes` refuses what it cannot measure before building anything."""

from __future__ import annotations

import pytest

from npc_sdk import bench_sizes


def test_an_unknown_shape_is_named_with_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown shape\(s\) gpt-9.*qwen2.5-1.5b"):
        bench_sizes.bench_sizes(["smollm2-135m", "gpt-9"])


def test_a_missing_peer_environment_says_how_to_make_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PEER_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="peer-ortgenai"):
        bench_sizes.peer_python()
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    (tmp_path / "venv" / "bin" / "python").write_text("")
    assert bench_sizes.peer_python() == tmp_path / "venv" / "bin" / "python"


def test_an_export_of_an_older_recipe_is_made_again(tmp_path):
    import json

    from npc_sdk.runtime.manifest import QUANTIZATION_RECIPE

    assert not bench_sizes._current(tmp_path)  # nothing exported yet
    (tmp_path / "manifest.json").write_text(json.dumps({"quantization_recipe": QUANTIZATION_RECIPE - 1}))
    assert not bench_sizes._current(tmp_path)  # timed, it would pass old graphs off as today's
    (tmp_path / "manifest.json").write_text(json.dumps({"quantization_recipe": QUANTIZATION_RECIPE}))
    assert bench_sizes._current(tmp_path)
