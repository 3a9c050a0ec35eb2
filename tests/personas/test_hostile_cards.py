"""Hostile card files get a clear error, within bounded memory: huge base64, zip bombs, deep JSON, bad UTF-8."""

from __future__ import annotations

import base64
import io
import struct
import tracemalloc
import zipfile
import zlib

import pytest
from PIL import Image

from npc_sdk.personas.card_files import MAX_JSON_BYTES
from npc_sdk.personas.files import load_persona
from npc_sdk.personas.problems import PersonaFileError


def _png_with_chunk(keyword: bytes, payload: bytes) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (2, 2)).save(buf, "PNG")
    png = buf.getvalue()
    body = keyword + b"\x00" + payload
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body))
    return png[:-12] + chunk + png[-12:]


def _error(path) -> str:
    tracemalloc.start()
    try:
        with pytest.raises(PersonaFileError) as exc:
            load_persona(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 128 * 2**20, f"reading {path.name} peaked at {peak / 2**20:.0f} MB"
    return str(exc.value)


def test_a_huge_base64_chunk_is_refused_before_decoding(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(_png_with_chunk(b"chara", b"A" * (MAX_JSON_BYTES * 2)))
    assert "chara" in (msg := _error(path)) and "over the" in msg


def test_a_charx_zip_bomb_is_refused(tmp_path):
    path = tmp_path / "bomb.charx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("card.json", b"{" + b" " * (200 * 2**20) + b"}")  # 200 MB of spaces: ~200 KB zipped
    assert path.stat().st_size < 2**20
    assert "card.json" in (msg := _error(path)) and "over" in msg


def test_a_charx_whose_header_lies_about_its_size_is_still_bounded(tmp_path):
    path = tmp_path / "liar.charx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("card.json", b"[" + b"0," * (20 * 2**20) + b"0]")
    raw = bytearray(path.read_bytes())
    true_size = struct.pack("<I", 40 * 2**20 + 3)
    for marker, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # local and central headers
        at = raw.find(marker)
        assert raw[at + offset : at + offset + 4] == true_size
        raw[at + offset : at + offset + 4] = struct.pack("<I", 1000)  # "1,000 bytes"
    path.write_bytes(bytes(raw))
    msg = _error(path)
    assert "card.json" in msg or "charx" in msg


def test_deeply_nested_json_is_refused(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text('{"spec": "chara_card_v2", "data": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert "nested deeper" in _error(path)
    shallow_but_deep = tmp_path / "deep2.json"
    shallow_but_deep.write_text('{"spec": "chara_card_v2", "data": ' + "[" * 80 + "]" * 80 + "}")
    assert "nested deeper" in _error(shallow_but_deep)


def test_bad_utf8_is_named_with_its_byte(tmp_path):
    path = tmp_path / "bad.json"
    path.write_bytes(b'{"spec": "chara_card_v2", "data": {"name": "\xff\xfe"}}')
    assert "not UTF-8" in (msg := _error(path)) and "byte 44" in msg
    png = tmp_path / "bad.png"
    png.write_bytes(_png_with_chunk(b"ccv3", base64.b64encode(b'{"spec": "chara_card_v3", "name": "\xc3"}')))
    assert "ccv3" in (msg := _error(png)) and "not UTF-8" in msg


def test_not_base64_and_truncated_png_are_named(tmp_path):
    path = tmp_path / "x.png"
    path.write_bytes(_png_with_chunk(b"chara", b"not base64!!"))
    assert "not base64" in _error(path)
    cut = tmp_path / "cut.png"
    cut.write_bytes(_png_with_chunk(b"chara", b"QUJD")[:-20])
    assert "truncated" in _error(cut)
