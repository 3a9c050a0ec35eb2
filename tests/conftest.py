"""Shared fixtures: the real reference model, loaded once per test session from the cache folder."""

from __future__ import annotations

import os

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
