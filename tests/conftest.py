"""Shared fixtures: the real reference model, loaded once per test session from the cache folder."""

from __future__ import annotations

import os
from pathlib import Path

# Nothing may come from a model hub: every weight is pulled from PyPI wheels into the cache folder.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def model():
    from npc_export import NpcModel

    return NpcModel.load(log=lambda _msg: None)


def _export(model, precision: str):
    """Export once per test session into the cache (a fresh export: the test checks today's code)."""
    from npc_export.build.onnx_export import export_model

    from npc_sdk.cache import cache_dir

    return export_model(cache_dir() / "test-models" / precision, precision, model=model, log=lambda _m: None)


@pytest.fixture(scope="session")
def exported_fp32(model):
    return _export(model, "fp32")


@pytest.fixture(scope="session")
def exported_int4(model):
    return _export(model, "int4")


@pytest.fixture(scope="session")
def runtime_int4(exported_int4):
    from npc_sdk.runtime.onnx_model import OnnxNpcModel

    return OnnxNpcModel.load(exported_int4, slots=4)


@pytest.fixture(scope="session")
def bundle(exported_int4, tmp_path_factory) -> Path:
    """`npc-sdk bundle` of today's int4 export and samples/personas, once per test session (the frozen runtime is
    cached under the cache folder's bundles/, keyed by the npc_sdk sources)."""
    pytest.importorskip("PyInstaller", reason="npc-sdk bundle needs the bundle extra (in the test extra)")
    from npc_sdk.bundle import build_bundle
    from npc_sdk.cache import cache_dir

    out = tmp_path_factory.mktemp("bundle") / "npc"
    personas = Path(__file__).resolve().parents[1] / "samples" / "personas"
    build_bundle(out, exported_int4, personas, cache_dir() / "bundles")
    return out
