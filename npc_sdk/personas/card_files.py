"""Card and lorebook containers: JSON, PNG (`ccv3` and `chara` tEXt chunks), CHARX (zip), read within limits.

Cards come from strangers: every read is bounded (file size, decoded JSON size, JSON nesting, zip members and
their real decompressed size) and every failure is a PersonaFileError naming the file and what is wrong.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import struct
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .problems import PersonaFileError, Problem

MAX_FILE_BYTES = 64 * 1024 * 1024  # a card PNG with a big avatar, or a CHARX with a few assets
MAX_JSON_BYTES = 8 * 1024 * 1024  # the card or lorebook JSON itself (the largest real one here is 0.2 MB)
MAX_JSON_DEPTH = 64  # real cards nest 5 levels deep
MAX_ZIP_MEMBERS = 10_000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CARD_CHUNKS = ("ccv3", "chara")  # read in this order: a V3 card wins over its V2 backfill


def _fail(source: str, field: str, message: str) -> PersonaFileError:
    return PersonaFileError([Problem(source, None, field, message)])


def parse_json(raw: bytes, source: str, field: str = "json") -> Any:
    """Strict UTF-8 (a BOM is allowed) JSON within the size and nesting limits."""
    if len(raw) > MAX_JSON_BYTES:
        raise _fail(source, field, f"{len(raw):,} bytes of JSON, over the {MAX_JSON_BYTES:,}-byte limit")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _fail(
            source, field, f"not UTF-8 (byte {exc.start}: {raw[exc.start : exc.start + 1]!r})"
        ) from exc
    try:
        value = json.loads(text)
    except RecursionError as exc:
        raise _fail(source, field, f"nested deeper than {MAX_JSON_DEPTH} levels") from exc
    except json.JSONDecodeError as exc:
        raise PersonaFileError([Problem(source, exc.lineno, field, exc.msg)]) from exc
    _check_depth(value, source, field)
    return value


def _check_depth(value: Any, source: str, field: str) -> None:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise _fail(source, field, f"nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, dict):
            stack += [(v, depth + 1) for v in item.values()]
        elif isinstance(item, list):
            stack += [(v, depth + 1) for v in item]


def _read_bytes(path: Path) -> bytes:
    source = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise _fail(source, "file", f"{size:,} bytes, over the {MAX_FILE_BYTES:,}-byte limit")
        return path.read_bytes()
    except OSError as exc:
        raise _fail(source, "file", f"cannot be read ({exc})") from exc


# ---- PNG -----------------------------------------------------------------------------------------------------
def png_chunks(png: bytes) -> Iterator[tuple[bytes, bytes, int]]:
    """(kind, body, offset) of each chunk; raises ValueError on a file that is not a whole PNG."""
    if not png.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG file")
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(png):
        length, kind = struct.unpack(">I4s", png[pos : pos + 8])
        if pos + 12 + length > len(png):
            raise ValueError(f"truncated PNG chunk {kind!r} at byte {pos}")
        yield kind, png[pos + 8 : pos + 8 + length], pos
        pos += 12 + length
        if kind == b"IEND":
            return


def png_text_chunks(png: bytes, source: str) -> dict[str, bytes]:
    """Base64 payloads of the card chunks (`ccv3`, `chara`) a PNG holds."""
    found: dict[str, bytes] = {}
    try:
        for kind, body, _ in png_chunks(png):
            if kind != b"tEXt":
                continue
            keyword, _, payload = body.partition(b"\x00")
            name = keyword.decode("latin-1")
            if name in CARD_CHUNKS and name not in found:
                found[name] = payload
    except ValueError as exc:
        raise _fail(source, "png", str(exc)) from exc
    return found


def _decode_chunk(payload: bytes, source: str, name: str) -> dict[str, Any]:
    if len(payload) > MAX_JSON_BYTES * 4 // 3 + 4:
        raise _fail(
            source, name, f"{len(payload):,} bytes of base64, over the {MAX_JSON_BYTES:,}-byte JSON limit"
        )
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _fail(source, name, f"the chunk is not base64 ({exc})") from exc
    card = parse_json(raw, source, name)
    if not isinstance(card, dict):
        raise _fail(source, name, "the chunk does not hold a JSON object")
    return card


def read_png_card(path: str | Path) -> dict[str, Any]:
    """The card in a PNG: the `ccv3` chunk when there is one, else `chara` (which may hold V1, V2 or V3)."""
    source = str(path)
    chunks = png_text_chunks(_read_bytes(Path(path)), source)
    for name in CARD_CHUNKS:
        if name in chunks:
            return _decode_chunk(chunks[name], source, name)
    raise _fail(source, "chara", "this PNG has no 'chara' or 'ccv3' tEXt chunk (not a character card)")


def _text_chunk(keyword: str, card: Mapping[str, Any]) -> bytes:
    body = (
        keyword.encode("latin-1") + b"\x00" + base64.b64encode(json.dumps(card, ensure_ascii=False).encode())
    )
    return struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body))


def write_png_card(
    image_png: bytes, card: Mapping[str, Any], v3_card: Mapping[str, Any] | None = None
) -> bytes:
    """`image_png` with a `chara` chunk holding `card` and, when given, a `ccv3` chunk holding `v3_card`.

    Old card chunks are replaced; the new ones go before IEND, so tools that read either find theirs.
    """
    chunks = _text_chunk("chara", card) + (_text_chunk("ccv3", v3_card) if v3_card is not None else b"")
    out = bytearray(PNG_SIGNATURE)
    for kind, payload, pos in png_chunks(image_png):
        if kind == b"tEXt" and payload.partition(b"\x00")[0].decode("latin-1") in CARD_CHUNKS:
            continue
        if kind == b"IEND":
            out += chunks
        out += image_png[pos : pos + 12 + len(payload)]
    return bytes(out)


# ---- CHARX ---------------------------------------------------------------------------------------------------
def read_charx(path: str | Path) -> tuple[dict[str, Any], list[str]]:
    """card.json of a CHARX zip, and the names of its other members (assets are listed, never extracted)."""
    source = str(path)
    raw = _read_bytes(Path(path))
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            members = archive.infolist()
            if len(members) > MAX_ZIP_MEMBERS:
                raise _fail(source, "charx", f"{len(members):,} members, over {MAX_ZIP_MEMBERS:,}")
            card_info = next((m for m in members if m.filename == "card.json"), None)
            if card_info is None:
                raise _fail(source, "card.json", "this CHARX has no card.json at its root")
            if card_info.file_size > MAX_JSON_BYTES:
                raise _fail(
                    source, "card.json", f"declares {card_info.file_size:,} bytes, over {MAX_JSON_BYTES:,}"
                )
            with archive.open(card_info) as member:
                data = member.read(MAX_JSON_BYTES + 1)  # a lying header cannot make us inflate more than this
            if len(data) > MAX_JSON_BYTES:
                raise _fail(source, "card.json", f"inflates past {MAX_JSON_BYTES:,} bytes (a zip bomb?)")
            others = [m.filename for m in members if m.filename != "card.json" and not m.is_dir()]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, zlib.error) as exc:
        raise _fail(source, "charx", f"not a readable zip ({exc})") from exc
    card = parse_json(data, source, "card.json")
    if not isinstance(card, dict):
        raise _fail(source, "card.json", "must hold one JSON object")
    return card, others


def read_json_object(path: str | Path) -> dict[str, Any]:
    source = str(path)
    value = parse_json(_read_bytes(Path(path)), source)
    if not isinstance(value, dict):
        raise PersonaFileError([Problem(source, 1, "json", "the file must hold one object")])
    return value
