"""Coverage-guided fuzzing (atheris / libFuzzer) of every decoder of outside input.

Each input is routed by its first byte to: screenshot bytes in each encoding, a persona TOML file, a Character
Card V2 (JSON or PNG), a session snapshot as ImportSession receives it, or generation values. The only allowed
failure is InvalidInputError (or PersonaFileError) naming a field; anything else is a crash that libFuzzer reports.

CI (seconds):     tests/test_fuzz_atheris.py runs it on a copy of fuzz/corpus (libFuzzer adds new inputs to it)
Longer run:       cp -r fuzz/corpus /tmp/corpus
                  python fuzz/fuzz_inputs.py -max_total_time=600 -rss_limit_mb=0 -print_final_stats=1 /tmp/corpus

Memory bound: libFuzzer's own `-rss_limit_mb` reads getrusage's ru_maxrss, which on Linux carries the peak RSS
of the process this one was forked from (a 3 GB pytest makes a 120 MB harness look like 3 GB). So the harness
bounds itself instead: every CHECK_EVERY inputs it reads VmHWM, the peak of its own address space (reset by
exec), prints it, and fails the run when it passes NPC_FUZZ_RSS_LIMIT_MB (default 2048). Run it with
`-rss_limit_mb=0` so only this check applies.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from google.protobuf.message import DecodeError

    from npc_sdk._proto.npc.v1 import npc_pb2 as pb
    from npc_sdk.errors import InvalidInputError
    from npc_sdk.personas.cards import card_to_persona, read_png_card
    from npc_sdk.personas.files import load_persona
    from npc_sdk.personas.problems import PersonaFileError
    from npc_sdk.runtime.generation import GenerationConfig
    from npc_sdk.server.snapshots import read_snapshot
    from npc_sdk.wire import config_from_proto, image_from_proto

KEY = b"k" * 32
WORK = Path(tempfile.mkdtemp(prefix="npc-fuzz-"))
RSS_LIMIT_MB = int(os.environ.get("NPC_FUZZ_RSS_LIMIT_MB", "2048"))
CHECK_EVERY = 500
_inputs_seen = 0


def own_peak_rss_mb() -> float:
    """The peak resident size of this process's own address space (VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def check_memory() -> None:
    peak = own_peak_rss_mb()
    print(f"npc-fuzz: own peak rss {peak:.0f} MB after {_inputs_seen} inputs", file=sys.stderr, flush=True)
    if peak > RSS_LIMIT_MB:
        raise MemoryError(f"harness peak rss {peak:.0f} MB is over the limit of {RSS_LIMIT_MB} MB")


def fuzz_image(fdp: atheris.FuzzedDataProvider) -> None:
    msg = pb.Image(
        encoding=fdp.ConsumeIntInRange(0, 5),
        width=fdp.ConsumeIntInRange(-2, 5000),
        height=fdp.ConsumeIntInRange(-2, 5000),
        bottom_up=fdp.ConsumeBool(),
        data=fdp.ConsumeBytes(fdp.remaining_bytes()),
    )
    image_from_proto(msg)


def fuzz_persona_toml(fdp: atheris.FuzzedDataProvider) -> None:
    path = WORK / "p.toml"
    path.write_bytes(fdp.ConsumeBytes(fdp.remaining_bytes()))
    load_persona(path)


def fuzz_card(fdp: atheris.FuzzedDataProvider) -> None:
    as_png = fdp.ConsumeBool()
    path = WORK / ("c.png" if as_png else "c.json")
    path.write_bytes(fdp.ConsumeBytes(fdp.remaining_bytes()))
    if as_png:
        card_to_persona(read_png_card(path))
    else:
        load_persona(path)


def fuzz_snapshot(fdp: atheris.FuzzedDataProvider) -> None:
    try:
        msg = pb.SessionSnapshot.FromString(fdp.ConsumeBytes(fdp.remaining_bytes()))
    except DecodeError:
        return  # gRPC refuses undecodable bytes before the server sees them
    read_snapshot(msg, KEY)


def fuzz_generation(fdp: atheris.FuzzedDataProvider) -> None:
    try:
        msg = pb.GenerationConfig.FromString(fdp.ConsumeBytes(fdp.remaining_bytes()))
    except DecodeError:
        return
    config_from_proto(msg, GenerationConfig())


TARGETS = (fuzz_image, fuzz_persona_toml, fuzz_card, fuzz_snapshot, fuzz_generation)


def test_one_input(data: bytes) -> None:
    global _inputs_seen
    _inputs_seen += 1
    if _inputs_seen % CHECK_EVERY == 0:
        check_memory()
    fdp = atheris.FuzzedDataProvider(data)
    target = TARGETS[fdp.ConsumeIntInRange(0, len(TARGETS) - 1)]
    try:
        target(fdp)
    except (InvalidInputError, PersonaFileError) as exc:
        assert exc.field, "an error must name its field"


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
