"""Hostile metadata: text and chunks built to make the reader hang or run out of memory, and our own
images that must stay readable however large their inputs were."""

from __future__ import annotations

import functools
import io
import struct
import threading
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from studio.engine import metadata as md
from studio.engine.metadata import containers

HANG_GUARD_S = 60  # only catches a hang; a linear parse of 1 MB takes well under a second
MB = 1024 * 1024


def finishes(work: Callable[[], Any]) -> Any:
    """work()'s result, failing the test if it has not returned within HANG_GUARD_S."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = work()
        except BaseException as e:  # re-raised in the test's thread
            out["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(HANG_GUARD_S)
    assert not thread.is_alive(), f"still running after {HANG_GUARD_S} s"
    if "error" in out:
        raise out["error"]
    return out["value"]


# ---- A1111 text: parsing is linear ------------------------------------------------------------
@pytest.mark.parametrize(
    "shape",
    [
        "a",  # one long key-like run without a colon: quadratic in A1111's regex
        "\t",  # whitespace the regex rescans from every position
        'k: "\\',  # quoted values that never close
        "Key: value, ",  # a million short settings
    ],
)
def test_a_megabyte_of_hostile_a1111_text_parses(shape):
    text = (shape * (MB // len(shape) + 1))[:MB]
    result = finishes(lambda: md.read_a1111_text(text))
    assert result.raw_parameters == text
    if result.request is None:
        assert result.warnings == [
            "The text has no generation settings line (Steps: ..., Sampler: ...)."
        ]


def test_a_long_controlnet_value_parses():
    unit = '"Module: canny, Model: ' + " " * MB + 'x [abc]"'
    text = f"p\nSteps: 2, Sampler: Euler, Seed: 1, ControlNet 0: {unit}"
    result = finishes(lambda: md.read_a1111_text(text))
    assert result.request.controls[0].model == "x"


# ---- PNG text chunks: bounded memory, unused keys never inflated ------------------------------
def png_with_chunks(path: Path, chunks: list[tuple[bytes, bytes]]) -> Path:
    """A small real PNG with raw chunks (type, body) inserted after IHDR."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "gray").save(buf, format="PNG")
    data = buf.getvalue()
    raw = b"".join(
        struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))
        for ctype, body in chunks
    )
    path.write_bytes(data[:33] + raw + data[33:])
    return path


A1111 = b"p\nSteps: 3, Sampler: Euler, CFG scale: 7, Seed: 7, Size: 64x64"


@functools.cache
def bomb(megabytes: int) -> bytes:
    return zlib.compress(b"a" * (megabytes * MB), 9)  # ~1000:1


def ztxt(key: str, compressed: bytes) -> tuple[bytes, bytes]:
    return b"zTXt", key.encode() + b"\0\0" + compressed


def itxt(key: str, compressed: bytes) -> tuple[bytes, bytes]:
    return b"iTXt", key.encode() + b"\0\1\0\0\0" + compressed  # compressed, no language


def peak_bytes(work: Callable[[], Any]) -> tuple[Any, int]:
    import tracemalloc

    tracemalloc.start()
    try:
        value = work()
        return value, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_zip_bomb_of_text_chunks_reads_with_a_warning_in_bounded_memory(tmp_path):
    # each key twice as zTXt and iTXt, 30 MB each: 300 MB of text from a ~0.3 MB file
    payload = bomb(30)
    keys = ["parameters", "studio_recipe", "prompt", "workflow", "invokeai_metadata"]
    chunks = [make(k, payload) for k in keys for make in (ztxt, itxt)]
    path = png_with_chunks(tmp_path / "bomb.png", chunks)
    result, peak = peak_bytes(lambda: finishes(lambda: md.read_settings(path)))
    assert result.request is None
    assert result.warnings[0] == (
        "The metadata in this file is larger than the 64 MB this reader accepts; "
        "the 'prompt' text and anything after it were skipped."
    )
    assert peak < 250 * MB  # two 30 MB texts and their copies, never 300 MB


def test_unknown_text_chunks_are_never_inflated(tmp_path, monkeypatch):
    chunks = [ztxt(f"junk{i}", bomb(8)) for i in range(20)]
    chunks += [itxt(f"comment{i}", bomb(8)) for i in range(20)]
    chunks.append((b"tEXt", b"parameters\0" + A1111))
    path = png_with_chunks(tmp_path / "junk.png", chunks)
    inflated: list[int] = []
    real = zlib.decompressobj

    def counting(*args: Any, **kwargs: Any) -> Any:
        inflated.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(containers.zlib, "decompressobj", counting)
    result = finishes(lambda: md.read_settings(path))
    assert inflated == []
    assert (result.source, result.request.steps, result.request.seed) == ("a1111", 3, 7)
    assert result.warnings == ["The text names no model; the default model is used."]


def test_duplicate_chunks_of_a_key_are_not_inflated_again(tmp_path, monkeypatch):
    first = zlib.compress(A1111)
    chunks = [ztxt("parameters", first)] + [ztxt("parameters", bomb(8)) for _ in range(20)]
    path = png_with_chunks(tmp_path / "dups.png", chunks)
    inflated: list[int] = []
    real = zlib.decompressobj

    def counting(*args: Any, **kwargs: Any) -> Any:
        inflated.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(containers.zlib, "decompressobj", counting)
    result = finishes(lambda: md.read_settings(path))
    assert len(inflated) == 1
    assert result.request.steps == 3  # the first chunk of a key wins, as before


def test_a_huge_declared_chunk_length_is_not_read(tmp_path):
    path = png_with_chunks(tmp_path / "huge.png", [])
    data = path.read_bytes()
    # a parameters tEXt chunk claiming 3 GB, in a file that is only a few hundred bytes
    head = struct.pack(">I", 3 * 1024 * MB) + b"tEXt" + b"parameters\0Steps: 1"
    path.write_bytes(data[:33] + head)
    result, peak = peak_bytes(lambda: md.read_settings(path))
    assert result.request is None
    assert "larger than the 64 MB this reader accepts" in result.warnings[0]
    assert peak < 10 * MB


# ---- our own images stay readable, whatever their inputs ---------------------------------------
def test_our_image_with_a_large_init_image_stays_readable(tmp_path):
    from studio.engine.metadata.writer import PNG_IMAGE_BUDGET
    from studio.engine.request import GenerationRequest, image_sha256

    rng = np.random.default_rng(0)
    # noise does not compress: ~17 MB as PNG, ~23 MB of base64, past the budget for embedding
    init = Image.fromarray(rng.integers(0, 256, (2400, 2400, 3), dtype=np.uint8))
    request = GenerationRequest(mode="img2img", prompt="a big start", init_image=init)
    out = Image.new("RGB", (64, 64), "gray")
    path = md.write_image(tmp_path / "big.png", out, request, model_name="m", model_hash="h")
    assert path.stat().st_size < PNG_IMAGE_BUDGET  # the init image was not embedded
    with Image.open(path) as im:  # Pillow reads it (its text limit is 64 MB)
        im.load()
        assert "studio_recipe" in im.text
    result = md.read_settings(path)
    assert result.source == "studio"
    assert result.missing_hashes == {"init image": image_sha256(init)}
    assert "The init image is not stored in this file (only its hash); supply it again." in (
        result.warnings
    )
    assert result.request.with_(init_image=init) == request
