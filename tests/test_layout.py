"""The package layout holds: who may import whom, no import cycles, no torch in the runtime, the public API intact.

Import rules (read from the source with `ast`, imports inside functions included):
  * `npc_sdk.runtime` imports neither `npc_sdk.server` nor the personas' file I/O (only `personas.persona` and
    `personas.prompt`), nor the CLI;
  * `npc_sdk.personas` imports neither the server nor the CLI, and of the runtime only its generation config;
  * only the CLI imports the server (besides the server itself);
  * nothing under `npc_sdk` imports `npc_export` (the CLI loads the torch side by name, on demand);
  * module-level imports form no cycle.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import npc_sdk

PACKAGE = Path(npc_sdk.__file__).parent

# What npc_sdk exported before the layout moved files around: every name must still import from npc_sdk.
PUBLIC_API = {
    "BASE_PACKAGES",
    "AsyncClient",
    "Client",
    "Conversation",
    "Delta",
    "Done",
    "Example",
    "GenerationConfig",
    "InvalidInputError",
    "LoreEntry",
    "ModelFolderError",
    "NpcError",
    "OnnxNpcModel",
    "Persona",
    "PersonaFileError",
    "ReplyEvent",
    "Timings",
    "Turn",
    "Usage",
    "WeightsError",
    "card_to_persona",
    "load_persona",
    "persona_to_card",
    "pull",
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if "_proto" in parts:
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, *, top_level_only: bool = False) -> set[str]:
    """Absolute names of the modules `name` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            # `from . import x` / `from .pkg import mod` may name submodules
            found |= {f"{target}.{alias.name}" for alias in node.names}
    modules = _modules()
    return {m for m in found if m in modules or not m.startswith("npc_sdk")}


def _violations(prefix: str, allowed, forbidden) -> list[str]:
    bad = []
    for name, path in _modules().items():
        if name != prefix and not name.startswith(prefix + "."):
            continue
        for imported in _imports(name, path):
            if forbidden(imported) and not allowed(imported):
                bad.append(f"{name} imports {imported}")
    return bad


def test_runtime_imports_neither_server_nor_persona_file_io():
    def forbidden(m: str) -> bool:
        return m.startswith(("npc_sdk.server", "npc_sdk.cli", "npc_sdk.personas"))

    def allowed(m: str) -> bool:
        return m in (
            "npc_sdk.personas",
            "npc_sdk.personas.persona",
            "npc_sdk.personas.prompt",
            "npc_sdk.personas.actions",  # the action declarations the runtime decides among (no file I/O)
            "npc_sdk.personas.lore",
            "npc_sdk.personas.macros",
            "npc_sdk.personas.chat_format",  # the decoder's message pieces the prompt is made of (no file I/O)
        )

    assert _violations("npc_sdk.runtime", allowed, forbidden) == []


def test_personas_import_neither_server_nor_the_runtime_beyond_generation_config():
    def forbidden(m: str) -> bool:
        return m.startswith(("npc_sdk.server", "npc_sdk.cli", "npc_sdk.runtime"))

    def allowed(m: str) -> bool:
        return m in ("npc_sdk.runtime", "npc_sdk.runtime.generation")

    assert _violations("npc_sdk.personas", allowed, forbidden) == []


def test_only_the_cli_imports_the_server():
    bad = []
    for name, path in _modules().items():
        if name.startswith(("npc_sdk.server", "npc_sdk.cli")):
            continue
        bad += [f"{name} imports {m}" for m in _imports(name, path) if m.startswith("npc_sdk.server")]
    assert bad == []


def test_nothing_in_npc_sdk_imports_the_torch_side():
    bad = [
        f"{name} imports {m}"
        for name, path in _modules().items()
        for m in _imports(name, path)
        if m.split(".")[0] in ("npc_export", "torch", "transformers")
    ]
    assert bad == []


def test_module_level_imports_form_no_cycle():
    modules = _modules()
    graph = {
        n: {m for m in _imports(n, p, top_level_only=True) if m in modules and m != n}
        for n, p in modules.items()
    }
    state: dict[str, int] = {}

    def visit(n: str, trail: list[str]) -> None:
        state[n] = 1
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*trail, n, m]))
            if m not in state:
                visit(m, [*trail, n])
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [])


@pytest.mark.parametrize("package", ["npc_sdk.runtime", "npc_sdk.personas", "npc_sdk.server", "npc_sdk.cli"])
def test_every_subpackage_says_what_it_owns(package):
    doc = importlib.import_module(package).__doc__ or ""
    assert len(doc) > 80, f"{package} needs a docstring saying what it owns and what it may import"


def test_runtime_never_imports_torch_or_transformers():
    names = sorted(
        m.name for m in pkgutil.walk_packages(npc_sdk.__path__, "npc_sdk.") if not m.name.endswith("__main__")
    )
    code = (
        "import importlib, sys\n"
        f"for m in {names!r}: importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'npc_export'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"the runtime pulled in: {out.stdout}"


def test_public_api_is_unchanged():
    assert PUBLIC_API <= set(npc_sdk.__all__)
    for name in npc_sdk.__all__:
        assert hasattr(npc_sdk, name), name
    assert npc_sdk.GenerationConfig().max_tokens > 0
