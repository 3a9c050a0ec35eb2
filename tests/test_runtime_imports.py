"""The runtime package must import, and work on its own, without torch or transformers."""

import subprocess
import sys

import npc_sdk

RUNTIME_MODULES = [
    "npc_sdk",
    "npc_sdk.cli",
    "npc_sdk.decode_loop",
    "npc_sdk.demo",
    "npc_sdk.images",
    "npc_sdk.prompt",
    "npc_sdk.sampling",
    "npc_sdk.text_stream",
    "npc_sdk.text_tokens",
    "npc_sdk.weights",
    "npc_sdk.runtime",
    "npc_sdk.conversation",
    "npc_sdk.batch",
    "npc_sdk.bench",
    "npc_sdk.kv_cache",
    "npc_sdk.decoder_runner",
    "npc_sdk.model_folder",
    "npc_sdk.client",
    "npc_sdk.server",
    "npc_sdk.scheduler",
    "npc_sdk.store",
    "npc_sdk.wire",
    "npc_sdk.loadtest",
]


def test_runtime_never_imports_torch_or_transformers():
    code = (
        "import importlib, sys\n"
        f"for m in {RUNTIME_MODULES!r}: importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"runtime pulled in: {out.stdout}"


def test_public_api_is_reexported():
    for name in npc_sdk.__all__:
        assert hasattr(npc_sdk, name), name
    assert npc_sdk.GenerationConfig().max_tokens > 0
