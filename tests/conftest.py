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
