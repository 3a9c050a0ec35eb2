"""The package layout holds: who may import whom, no import cycles, no torch in the runtime, the public API intact.

The module graph covers `npc_sdk` and the torch side `npc_export` (export/), read from the source with `ast`:
  * every import counts: at the top of a module, inside a function (lazy), and names loaded by string
    (`torch_side("npc_export...")`, `import_module(...)` of a lazy `_EXPORTS` table, and `from npc_export... import`
    inside code that a module runs in a child process);
  * imports under `if TYPE_CHECKING:` never run, so they are left out of the cycle check only; the stage rules
    below still apply to them (a type from a later stage is still an arrow pointing backwards).
Rules:
  * `npc_sdk.runtime` imports neither `npc_sdk.server` nor the personas' file I/O (only `personas.persona` and
    `personas.prompt`), nor the CLI;
  * `npc_sdk.personas` imports neither the server nor the CLI, and of the runtime only its generation config;
  * only the CLI and the studio (a page over the server, in its process) import the server (besides the server
    itself), and only the CLI imports the studio;
  * nothing under `npc_sdk` imports `npc_export`, torch or transformers; the CLI (and the benchmark's child
    process) load the torch side by name, and every such name must be a module of it;
  * the torch side's stages run model -> build -> data -> train -> eval: a stage imports only itself and the
    stages before it (model imports none of the others; data neither train nor eval; build neither train nor eval);
  * no cycles, lazy imports and loads by name included.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

import npc_sdk

PACKAGE = Path(npc_sdk.__file__).parent
ROOTS = {"npc_sdk": PACKAGE, "npc_export": PACKAGE.parent / "export"}  # package name -> its folder
STAGES = ("model", "build", "data", "train", "eval")  # npc_export's stages, in the order imports may run
LOADERS = ("torch_side", "import_module")  # calls whose string argument names a module to import
CODE_IMPORT = re.compile(r"(?:^|[;\n]\s*)(?:from|import)\s+(npc_export(?:\.\w+)*)")

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


@dataclass(frozen=True)
class Edge:
    source: str  # the importing module
    target: str  # the module imported
    kind: str  # top | lazy (inside a function) | typing (under TYPE_CHECKING) | by_name (a string)
    line: int

    def __str__(self) -> str:
        return f"{self.source}:{self.line} imports {self.target} ({self.kind})"


@cache
def _modules() -> dict[str, Path]:
    out = {}
    for package, root in ROOTS.items():
        for path in root.rglob("*.py"):
            parts = [package, *path.relative_to(root).with_suffix("").parts]
            if "_proto" in parts:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _ImportFinder(ast.NodeVisitor):
    """Every import of one module, with where it sits (top, lazy, typing) and names loaded by string."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        self.found: list[tuple[str, str, int]] = []  # (target, kind, line)
        self._depth = 0  # functions we are inside
        self._typing = 0  # TYPE_CHECKING blocks we are inside
        self._exports: dict[str, str] = {}  # a lazy `_EXPORTS = {"Name": "submodule"}` table

    def _kind(self) -> str:
        return "typing" if self._typing else "lazy" if self._depth else "top"

    def _add(self, target: str, node: ast.AST, kind: str | None = None) -> None:
        self.found.append((target, kind or self._kind(), node.lineno))

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._depth += 1
        self.generic_visit(node)
        self._depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            self._typing += 1
            for child in node.body:
                self.visit(child)
            self._typing -= 1
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            parts = self.package.split(".")
            target = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        self._add(target, node)
        for alias in node.names:  # `from . import x` / `from .pkg import mod` may name submodules
            self._add(f"{target}.{alias.name}", node)

    def visit_Assign(self, node: ast.Assign) -> None:
        names = [t.id for t in node.targets if isinstance(t, ast.Name)]
        if "_EXPORTS" in names and isinstance(node.value, ast.Dict):
            self._exports = {
                k.value: v.value
                for k, v in zip(node.value.keys, node.value.values, strict=True)
                if isinstance(k, ast.Constant) and isinstance(v, ast.Constant)
            }
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        called = (
            func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        )
        if called in LOADERS:
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                self._add(arg.value, node, "by_name")
            elif arg is None and called == "torch_side":
                self._add("npc_export", node, "by_name")  # torch_side()'s default
            else:  # an f-string over the lazy `_EXPORTS` table (npc_sdk.runtime's __getattr__)
                for sub in self._exports.values():
                    self._add(f"{self.package}.{sub}", node, "by_name")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(
            node.value, str
        ):  # code run in a child process (`python -c "from npc_export... import"`)
            for target in CODE_IMPORT.findall(node.value):
                self._add(target, node, "by_name")


@cache
def _edges() -> tuple[Edge, ...]:
    """Every import of every module in the graph: targets inside the two packages are resolved to modules
    (`from pkg.mod import name` counts as pkg.mod), third-party ones are kept by their dotted name."""
    modules = _modules()
    out = []
    for name, path in modules.items():
        finder = _ImportFinder(name, path)
        finder.visit(ast.parse(path.read_text(), str(path)))
        for target, kind, line in finder.found:
            if target.split(".")[0] in ROOTS and target not in modules and kind != "by_name":
                continue  # a name imported from a module, not a module (a name loaded by string must be one)
            if target != name:
                out.append(Edge(name, target, kind, line))
    return tuple(sorted(set(out), key=lambda e: (e.source, e.line, e.target)))


def _imports(name: str) -> set[str]:
    return {e.target for e in _edges() if e.source == name}


def _violations(prefix: str, allowed, forbidden) -> list[str]:
    return [
        str(e)
        for e in _edges()
        if (e.source == prefix or e.source.startswith(prefix + "."))
        and forbidden(e.target)
        and not allowed(e.target)
    ]


def _cycles(edges) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.source, set()).add(e.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def connect(n: str) -> None:
        index[n] = low[n] = len(index)
        stack.append(n)
        on_stack.add(n)
        for m in sorted(graph.get(n, ())):
            if m not in index:
                connect(m)
                low[n] = min(low[n], low[m])
            elif m in on_stack:
                low[n] = min(low[n], index[m])
        if low[n] == index[n]:
            component = []
            while True:
                m = stack.pop()
                on_stack.discard(m)
                component.append(m)
                if m == n:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for n in sorted(graph):
        if n not in index:
            connect(n)
    return found


def _stage(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "npc_export" or len(parts) < 2 or parts[1] not in STAGES:
        return None
    return STAGES.index(parts[1])


def test_the_graph_sees_lazy_imports_and_loads_by_name():
    edges = {(e.source, e.target, e.kind) for e in _edges()}
    assert ("npc_sdk.cli.model", "npc_export.build.onnx_export", "by_name") in edges
    assert ("npc_sdk.bench", "npc_export.eval.bench_reference", "by_name") in edges
    assert ("npc_sdk.runtime", "npc_sdk.runtime.onnx_model", "by_name") in edges
    assert any(e.kind == "lazy" for e in _edges())


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


def test_only_the_cli_and_the_studio_import_the_server():
    bad = [
        str(e)
        for e in _edges()
        if e.source.startswith("npc_sdk")
        and not e.source.startswith(("npc_sdk.server", "npc_sdk.cli", "npc_sdk.studio"))
        and e.target.startswith("npc_sdk.server")
    ]
    assert bad == []


def test_only_the_cli_imports_the_studio():
    bad = [
        str(e)
        for e in _edges()
        if e.source.startswith("npc_sdk")
        and not e.source.startswith(("npc_sdk.studio", "npc_sdk.cli"))
        and e.target.startswith("npc_sdk.studio")
    ]
    assert bad == []


def test_nothing_in_npc_sdk_imports_the_torch_side():
    bad = [
        str(e)
        for e in _edges()
        if e.source.startswith("npc_sdk")
        and e.target.split(".")[0] in ("npc_export", "torch", "transformers")
        and e.kind != "by_name"
    ]
    assert bad == []


def test_the_torch_side_is_loaded_by_name_only_from_the_cli_and_bench_and_every_name_exists():
    by_name = [e for e in _edges() if e.kind == "by_name" and e.target.startswith("npc_export")]
    assert by_name, "the CLI loads the torch side by name: the graph should see it"
    assert [str(e) for e in by_name if not e.source.startswith(("npc_sdk.cli", "npc_sdk.bench"))] == []
    assert [str(e) for e in by_name if e.target not in _modules()] == []


def test_the_torch_side_stages_import_one_way():
    bad = [
        str(e)
        for e in _edges()
        if _stage(e.source) is not None
        and _stage(e.target) is not None
        and _stage(e.target) > _stage(e.source)
    ]
    assert bad == [], f"a stage imports only itself and the stages before it {STAGES}"


def test_the_torch_side_has_a_module_per_stage():
    for stage in STAGES:
        assert f"npc_export.{stage}" in _modules(), stage
    assert _modules()["npc_export.model.vocabulary"]
    loose = [m for m in _modules() if m.startswith("npc_export.") and _stage(m) is None]
    assert not loose, "every module of npc_export sits in a stage"


def test_no_import_cycles_lazy_imports_and_loads_by_name_included():
    """TYPE_CHECKING-only imports are left out: they never run (the stage rules still see them). Two cycles close
    only through such an import: personas.lore -> personas.persona (lore's functions are typed by the Persona that
    imports them) and runtime.batch / runtime.slot_decode -> runtime.onnx_model (typed by the model that drives
    them); at run time each goes one way."""
    cycles = _cycles([e for e in _edges() if e.kind != "typing" and e.target in _modules()])
    assert cycles == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_a_cycle():
    edges = [
        Edge("a", "b", "top", 1),
        Edge("b", "c", "lazy", 1),
        Edge("c", "a", "by_name", 1),
        Edge("c", "d", "top", 1),
    ]
    assert _cycles(edges) == [["a", "b", "c"]]


@pytest.mark.parametrize(
    "package", ["npc_sdk.runtime", "npc_sdk.personas", "npc_sdk.server", "npc_sdk.cli", "npc_sdk.studio"]
)
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
