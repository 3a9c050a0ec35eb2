"""The C# samples (samples/unity, samples/godot/csharp, samples/csharp_common) and scripts/gen_csharp.sh.

What this machine can check without Unity, Godot or NuGet: the generated message code; every sample compiled in full
with mono's mcs against a real Google.Protobuf (built from Debian's protobuf source: scripts/build_csharp_protobuf.sh)
and stand-ins for the gRPC, UnityEngine and Godot types it touches (samples/csharp_common/mono/, signatures copied
from the real APIs), so a misspelled member fails the build; the package files those engines would read; and that
the READMEs' set-up steps point at files and versions that exist.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.engine_tools import require_google_protobuf, require_tools

ROOT = Path(__file__).resolve().parents[2]
GEN_SCRIPT = ROOT / "scripts" / "gen_csharp.sh"
PROTO = ROOT / "proto" / "npc" / "v1" / "npc.proto"
COMMON = ROOT / "samples" / "csharp_common"
UNITY = ROOT / "samples" / "unity"
GODOT = ROOT / "samples" / "godot" / "csharp"
PROPS = GODOT / "NpcSdk.props"

# The hand-written C# of each sample; Generated/ folders are scripts/gen_csharp.sh output (git-ignored, maybe stale).
SAMPLES = {
    "unity": sorted(p for p in UNITY.rglob("*.cs") if "Generated" not in p.parts),
    "godot": sorted(p for p in GODOT.rglob("*.cs") if "Generated" not in p.parts),
}
COMMON_FILES = sorted(COMMON.glob("*.cs"))


@pytest.fixture(scope="module")
def tools() -> dict[str, str]:
    return require_tools("mcs", "protoc")


@pytest.fixture(scope="module")
def generated(tools, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("csharp")
    run = subprocess.run(["bash", str(GEN_SCRIPT), str(out)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return out


def mcs_parse(mcs: str, files: list[Path]) -> subprocess.CompletedProcess:
    return subprocess.run([mcs, "--parse", *map(str, files)], capture_output=True, text=True, timeout=120)


def test_gen_script_writes_every_message_and_the_shared_client(generated):
    assert sorted(p.name for p in generated.iterdir()) == sorted(["Npc.cs", *(p.name for p in COMMON_FILES)])
    code = (generated / "Npc.cs").read_text()
    assert "namespace Npc.V1 {" in code  # option csharp_namespace = "Npc.V1"
    messages = re.findall(r"^message (\w+)", PROTO.read_text(), re.M)
    assert len(messages) > 20
    missing = [m for m in messages if f"public sealed partial class {m} : " not in code]
    assert not missing, f"protoc output lacks {missing}"
    for source in COMMON_FILES:  # copies, so each engine compiles them from inside its own folder
        assert (generated / source.name).read_bytes() == source.read_bytes()


def test_gen_script_default_outputs_are_the_folders_the_samples_compile_and_git_ignores(tools, tmp_path):
    # Run on a copy of the tree: the default writes into samples/, which this test must not touch.
    for rel in ("scripts/gen_csharp.sh", "proto", "samples/csharp_common"):
        src, dst = ROOT / rel, tmp_path / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
    run = subprocess.run(
        ["bash", "scripts/gen_csharp.sh"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    for sample, inside in ((UNITY, "Runtime/Generated"), (GODOT, "Generated")):
        written = tmp_path / sample.relative_to(ROOT) / inside
        assert sorted(p.name for p in written.iterdir()) == sorted(
            ["Npc.cs", *(p.name for p in COMMON_FILES)]
        )
        assert f"/{inside}/" in (sample / ".gitignore").read_text().splitlines()


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_sample_parses_with_the_code_it_is_compiled_with(tools, generated, sample):
    files = SAMPLES[sample]
    assert files, f"no C# files in the {sample} sample"
    for path in [*files, *COMMON_FILES]:
        # mcs --parse skips inactive #if branches: code in one would escape this check.
        assert not re.search(r"^\s*#\s*if\b", path.read_text(), re.M), f"{path.name}: #if hides code from mcs"
    # The sample's own files plus what gen_csharp.sh puts beside them: the set the engine compiles together
    # (mcs --parse also reports a type declared twice across them).
    run = mcs_parse(tools["mcs"], [*files, *sorted(generated.glob("*.cs"))])
    assert run.returncode == 0, run.stdout + run.stderr


def test_mcs_parse_rejects_a_syntax_error(tools, tmp_path):
    # The check above is only worth something if this mcs really parses: break one statement and expect a failure.
    source = next(p for p in SAMPLES["godot"] if p.name == "NpcDialogue.cs").read_text()
    broken = tmp_path / "Broken.cs"
    broken.write_text(source.replace("StopTalking();", "StopTalking()", 1))
    assert broken.read_text() != source
    run = mcs_parse(tools["mcs"], [broken])
    assert run.returncode != 0
    assert "Broken.cs(" in run.stdout + run.stderr


def test_unity_package_files_are_what_the_package_manager_reads():
    manifest = json.loads((UNITY / "package.json").read_text())
    assert re.fullmatch(r"[a-z0-9]+(\.[a-z0-9_-]+){2,}", manifest["name"]), manifest["name"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", manifest["version"])
    assert re.fullmatch(r"\d{4}\.\d+", manifest["unity"])
    asmdefs = list((UNITY / "Runtime").rglob("*.asmdef"))
    assert len(asmdefs) == 1
    asmdef = json.loads(asmdefs[0].read_text())
    # Package samples live in Samples~ (hidden from the asset database until imported), each listed in the manifest
    assert manifest["samples"], "package.json lists no samples"
    for sample in manifest["samples"]:
        folder = UNITY / sample["path"]
        assert sample["path"].startswith("Samples~/") and folder.is_dir(), sample
        sample_asmdef = json.loads(next(folder.glob("*.asmdef")).read_text())
        assert asmdef["name"] in sample_asmdef["references"]
    assert (
        asmdef["name"] and not asmdef["overrideReferences"]
    )  # NuGetForUnity's DLLs are referenced implicitly
    # Every asset has a committed .meta with its own GUID (scene references to NpcDialogue stay valid across
    # machines); Generated/ is left to Unity, hidden files and folders ending in ~ are ignored by it.
    assets = [
        p
        for p in UNITY.rglob("*")
        if p.suffix != ".meta"
        and not any(
            part.startswith(".") or part.endswith("~") or part == "Generated"
            for part in p.relative_to(UNITY).parts
        )
    ]
    guids = []
    for asset in assets:
        meta = asset.with_name(asset.name + ".meta")
        assert meta.is_file(), f"{asset.relative_to(ROOT)} has no .meta"
        found = re.search(r"^guid: ([0-9a-f]{32})$", meta.read_text(), re.M)
        assert found, f"{meta.relative_to(ROOT)}: no guid"
        guids.append(found.group(1))
    assert len(set(guids)) == len(guids)
    orphans = [
        m for m in UNITY.rglob("*.meta") if "Generated" not in m.parts and not m.with_suffix("").exists()
    ]
    assert not orphans


def _props_versions() -> dict[str, str]:
    root = ET.parse(PROPS).getroot()
    return {ref.get("Include"): ref.get("Version") for ref in root.iter("PackageReference")}


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split("."))


def test_pinned_protobuf_runtime_can_load_what_this_protoc_generates(tools):
    versions = _props_versions()
    assert set(versions) == {"Grpc.Net.Client", "Google.Protobuf"}
    out = subprocess.run([tools["protoc"], "--version"], capture_output=True, text=True, check=True).stdout
    protoc = _version(re.search(r"libprotoc (\d+(?:\.\d+)+)", out).group(1))
    # protoc 3.x.y pairs with Google.Protobuf 3.x.y; from protoc 22 on, protoc N.y pairs with Google.Protobuf 3.N.y.
    floor = protoc[:2] if protoc[0] == 3 else (3, protoc[0])
    assert _version(versions["Google.Protobuf"])[:2] >= floor, (versions, out)


def test_readmes_name_setup_steps_files_and_versions_that_exist():
    versions = _props_versions()
    unity = (UNITY / "README.md").read_text()
    godot = (GODOT / "README.md").read_text()
    for text in (unity, godot, (COMMON / "README.md").read_text()):
        assert "scripts/gen_csharp.sh" in text
        for path in re.findall(r"`((?:samples|scripts|proto|tests|npc_sdk)/[^`\s]*)`", text):
            if "Generated" not in path:  # written by the script
                assert (ROOT / path).exists(), f"README names {path}, which does not exist"
    for text in (unity, godot):
        assert "compiles" in text and "**in full**" in text and "What was run where" in text  # says what CI does
    # The NuGet versions each README tells to install are the ones NpcSdk.props pins.
    for package, version in versions.items():
        assert f"| {package} | {version} |" in unity, package
        assert f'<PackageReference Include="{package}" Version="{version}" />' in godot, package
    assert "https://github.com/Cysharp/YetAnotherHttpHandler.git?path=src/YetAnotherHttpHandler#" in unity
    assert "NuGetForUnity" in unity


# ---- full compilation against the real Google.Protobuf ------------------------------------------------------

STAND_INS = COMMON / "mono"
MCS_FLAGS = ["-langversion:experimental", "-nowarn:1591,414,649,67", "-target:library"]


def _mcs(mcs: str, out: Path, files: list[Path], *refs: str) -> subprocess.CompletedProcess:
    cmd = [mcs, *MCS_FLAGS, f"-out:{out}", *(f"-r:{r}" for r in refs), *map(str, files)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def assemblies(tools, generated, tmp_path_factory) -> dict[str, Path]:
    """Google.Protobuf (real), the stand-ins, and the messages + shared client, built once."""
    protobuf = require_google_protobuf()
    out = tmp_path_factory.mktemp("assemblies")
    mcs = tools["mcs"]
    built = {"protobuf": Path(protobuf)}
    steps = [
        ("grpc", [STAND_INS / "GrpcStandIn.cs"], [protobuf, "System.Net.Http.dll"]),
        ("unityengine", [STAND_INS / "UnityStandIn.cs"], ["System.Net.Http.dll"]),
        ("godotsharp", [STAND_INS / "GodotStandIn.cs"], []),
    ]
    for name, files, refs in steps:
        run = _mcs(mcs, out / f"{name}.dll", files, *refs)
        assert run.returncode == 0, run.stdout + run.stderr
        built[name] = out / f"{name}.dll"
    run = _mcs(
        mcs,
        out / "common.dll",
        [generated / "Npc.cs", *COMMON_FILES],
        protobuf,
        str(built["grpc"]),
        "System.Net.Http.dll",
    )
    assert run.returncode == 0, run.stdout + run.stderr  # protoc's messages against the real runtime
    built["common"] = out / "common.dll"
    return built


def _build_unity(
    mcs: str, assemblies: dict[str, Path], files: list[Path], out: Path
) -> subprocess.CompletedProcess:
    refs = [str(assemblies[k]) for k in ("protobuf", "grpc", "common", "unityengine")]
    return _mcs(mcs, out, files, *refs, "System.Net.Http.dll")


def _build_godot(
    mcs: str, assemblies: dict[str, Path], generated: Path, files: list[Path], out: Path
) -> subprocess.CompletedProcess:
    # Godot 4 .NET runs on .NET 6+: SocketsHttpHandler's HTTP/2 settings come from NetHttpStandIn.cs instead of
    # mono's older System.Net.Http, so the gRPC stand-in and the shared client are compiled along with it.
    sources = [
        STAND_INS / "NetHttpStandIn.cs",
        STAND_INS / "GrpcStandIn.cs",
        generated / "Npc.cs",
        *COMMON_FILES,
        STAND_INS / "NpcDialogue.godot.generated.cs",
        *files,
    ]
    return _mcs(mcs, out, sources, str(assemblies["protobuf"]), str(assemblies["godotsharp"]))


def test_unity_sample_compiles_in_full(tools, assemblies, tmp_path):
    run = _build_unity(tools["mcs"], assemblies, SAMPLES["unity"], tmp_path / "unity.dll")
    assert run.returncode == 0, run.stdout + run.stderr
    assert (tmp_path / "unity.dll").stat().st_size > 0


def test_godot_sample_compiles_in_full(tools, assemblies, generated, tmp_path):
    run = _build_godot(tools["mcs"], assemblies, generated, SAMPLES["godot"], tmp_path / "godot.dll")
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_a_misspelled_member_fails_the_build(tools, assemblies, generated, tmp_path, sample):
    """What `mcs --parse` let through: a member that does not exist on a real type (Done.Text -> Done.Txt)."""
    dialogue = next(p for p in SAMPLES[sample] if p.name == "NpcDialogue.cs")
    code = dialogue.read_text()
    assert "done.Text" in code
    broken = tmp_path / "NpcDialogue.cs"
    broken.write_text(code.replace("done.Text", "done.Txt", 1))
    files = [broken if p == dialogue else p for p in SAMPLES[sample]]
    if sample == "unity":
        run = _build_unity(tools["mcs"], assemblies, files, tmp_path / "broken.dll")
    else:
        run = _build_godot(tools["mcs"], assemblies, generated, files, tmp_path / "broken.dll")
    assert run.returncode != 0 and "Txt" in run.stdout + run.stderr, run.stdout
