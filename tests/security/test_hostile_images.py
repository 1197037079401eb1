"""Hostile and broken user images: refused with one message, never decoded past a safe point.

Through `studio.engine.images.open_image` (and `open_image_bytes`, the clipboard/drop path) and
through the CLI's `--init-image` and `--mask`: exit code 1, one line on stderr, no output folder.
tests/engine/test_opening_images.py covers the ordinary cases (a real 10000x10000 PNG, EPS named
.jpg, a truncated PNG cut in half, conversions); these are the hostile ones.
"""

from __future__ import annotations

import io
import os
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import EpsImagePlugin, Image, ImageFile

from studio.cli import main
from studio.engine.images import open_image, open_image_bytes

FORMATS = "(PNG, JPEG, WebP, BMP, TIFF or GIF)"
NOT_AN_IMAGE = f"is not an image in a format the app opens {FORMATS}."
TOO_LARGE = "is too large to open"
HANG_GUARD_S = 10  # far beyond any refusal (milliseconds); only a blocked call takes this long

EPS = (
    b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n%%EndComments\n"
    b"newpath 0 0 moveto 10 10 lineto stroke\nshowpage\n%%EOF\n"
)
PDF = (
    b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
    b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
)


# ---- crafted files -------------------------------------------------------------------------
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height 1-bit pixels and that holds no pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b""))
        + _png_chunk(b"IEND", b"")
    )


def _small(fmt: str, mode: str = "L") -> bytearray:
    buffer = io.BytesIO()
    Image.new(mode, (16, 16), 128).save(buffer, fmt)
    return bytearray(buffer.getvalue())


def jpeg_declaring(width: int, height: int) -> bytes:
    data = _small("JPEG", "RGB")
    sof = data.index(b"\xff\xc0")  # baseline frame header: length, precision, height, width
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def gif_declaring(width: int, height: int) -> bytes:
    data = _small("GIF")
    data[6:10] = struct.pack("<HH", width, height)  # the logical screen
    return bytes(data)


def bmp_declaring(width: int, height: int) -> bytes:
    data = _small("BMP")
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


# name: (file, suffix, the size the message shows; None where Pillow refuses first, over twice
# its own limit, and gives its pixel count instead)
BOMBS = {
    "png-100000x100000": (png_declaring(100_000, 100_000), "png", None),
    "png-9000x9000": (png_declaring(9000, 9000), "png", "9000x9000"),  # under Pillow's own limit
    "png-16385x1": (png_declaring(16385, 1), "png", "16385x1"),  # one side too long
    "jpeg-65000x65000": (jpeg_declaring(65000, 65000), "jpg", None),
    "gif-65535x65535": (gif_declaring(65535, 65535), "gif", None),
    "bmp-100000x100000": (bmp_declaring(100_000, 100_000), "bmp", None),
}


def noise(fmt: str) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt)
    return buffer.getvalue()


# ---- helpers ------------------------------------------------------------------------------
@pytest.fixture
def decodes(monkeypatch) -> list[str]:
    """Pixel decoders Pillow creates and ImageFile.load calls: pixel data being read."""
    calls: list[str] = []
    original_decoder = Image._getdecoder
    original_load = ImageFile.ImageFile.load

    def decoder(mode, name, *args, **kwargs):
        calls.append(name)
        return original_decoder(mode, name, *args, **kwargs)

    def load(self):
        calls.append("load")
        return original_load(self)

    monkeypatch.setattr(Image, "_getdecoder", decoder)
    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    return calls


@pytest.fixture
def postscript(monkeypatch) -> list[str]:
    """Every use of Pillow's EPS plugin and of Ghostscript."""
    calls: list[str] = []
    original_open = EpsImagePlugin.EpsImageFile._open

    def eps_open(self):
        calls.append("eps plugin")
        return original_open(self)

    def ghostscript(*args, **kwargs):
        calls.append("ghostscript")
        raise AssertionError("Ghostscript must never run")

    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", eps_open)
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", ghostscript)
    return calls


def refuse(path: Path) -> str:
    """open_image's message for `path`, which it must refuse with a ValueError."""
    with pytest.raises(ValueError) as e:
        open_image(path)
    message = str(e.value)
    assert "\n" not in message
    return message


def cli_refuses(option: str, image: Path, tmp_path: Path, capsys) -> str:
    """`studio generate` with `image` as --init-image or --mask: exit 1, one stderr line."""
    argv = ["generate", "-p", "x", "--steps", "1", "--outdir", str(tmp_path / "out"), "-q"]
    if option == "--mask":
        good = tmp_path / "good-init.png"
        Image.new("RGB", (64, 64), (200, 10, 10)).save(good)
        argv += ["--init-image", str(good), "--mask", str(image)]
    else:
        argv += [option, str(image)]
    capsys.readouterr()
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("studio: ")
    assert "Traceback" not in captured.err
    out = tmp_path / "out"  # the destination check may create it; nothing is put in it
    assert not out.exists() or list(out.rglob("*")) == []
    return captured.err.removeprefix("studio: ").rstrip("\n")


# ---- decompression bombs ----------------------------------------------------------------------
@pytest.mark.parametrize("case", list(BOMBS))
def test_a_bomb_is_refused_from_its_header_without_decoding(tmp_path, decodes, case):
    data, ext, size = BOMBS[case]
    assert len(data) < 2000  # a tiny file that claims billions of pixels
    path = tmp_path / f"bomb.{ext}"
    path.write_bytes(data)
    decodes.clear()
    message = refuse(path)
    assert message.startswith(f"bomb.{ext} {TOO_LARGE}")
    if size is not None:
        assert f"{TOO_LARGE}: {size} pixels;" in message
    assert "the limit is 67,108,864 pixels and 16,384 pixels a side." in message
    with pytest.raises(ValueError, match=f"^dropped {TOO_LARGE}"):
        open_image_bytes(data, name="dropped")
    assert decodes == []
    assert path.read_bytes() == data


@pytest.mark.parametrize("option", ["--init-image", "--mask"])
@pytest.mark.parametrize("case", ["png-100000x100000", "jpeg-65000x65000"])
def test_the_cli_refuses_a_bomb_in_one_line(tmp_path, capsys, decodes, option, case):
    data, ext, _size = BOMBS[case]
    path = tmp_path / f"bomb.{ext}"
    path.write_bytes(data)
    decodes.clear()
    line = cli_refuses(option, path, tmp_path, capsys)
    assert line.startswith(f"bomb.{ext} {TOO_LARGE}")
    seen = list(decodes)
    decodes.clear()
    if option == "--mask":  # the good init image is decoded first, and only it
        open_image(tmp_path / "good-init.png")
    assert seen == decodes


# ---- truncated files --------------------------------------------------------------------------
TRUNCATED = {
    # name: (format, bytes kept; None = half the file)
    "png-16-bytes": ("PNG", 16),
    "png-first-idat-bytes": ("PNG", 60),
    "png-half": ("PNG", None),
    "jpeg-8-bytes": ("JPEG", 8),
    "jpeg-200-bytes": ("JPEG", 200),
    "jpeg-half": ("JPEG", None),
}


def _cut(fmt: str, keep: int | None) -> bytes:
    data = noise(fmt)
    return data[: len(data) // 2 if keep is None else keep]


@pytest.mark.parametrize("case", list(TRUNCATED))
def test_a_truncated_image_is_called_truncated_or_corrupt(tmp_path, capsys, case):
    fmt, keep = TRUNCATED[case]
    ext = "png" if fmt == "PNG" else "jpg"
    path = tmp_path / f"cut.{ext}"
    path.write_bytes(_cut(fmt, keep))
    expected = (f"cut.{ext} is truncated or corrupt: ", f"cut.{ext} is corrupt: ")
    assert refuse(path).startswith(expected)
    assert cli_refuses("--init-image", path, tmp_path, capsys).startswith(expected)


@pytest.mark.parametrize(
    ("fmt", "keep"), [("PNG", 8), ("PNG", 33), ("JPEG", 4)], ids=["png-8", "png-33", "jpeg-4"]
)
def test_an_image_cut_right_after_its_header_is_called_truncated(tmp_path, fmt, keep):
    ext = "png" if fmt == "PNG" else "jpg"
    path = tmp_path / f"cut.{ext}"
    path.write_bytes(_cut(fmt, keep))
    assert refuse(path).startswith((f"cut.{ext} is truncated or corrupt", f"cut.{ext} is corrupt"))


# ---- other formats in disguise -------------------------------------------------------------
@pytest.mark.parametrize("name", ["evil.png", "evil.PNG", "evil.eps.png", "evil"])
@pytest.mark.parametrize("data", [EPS, PDF], ids=["eps", "pdf"])
def test_postscript_or_pdf_named_png_never_reaches_ghostscript(
    tmp_path, capsys, postscript, name, data
):
    path = tmp_path / name
    path.write_bytes(data)
    assert refuse(path) == f"{name} {NOT_AN_IMAGE}"
    for option in ("--init-image", "--mask"):
        assert cli_refuses(option, path, tmp_path, capsys) == f"{name} {NOT_AN_IMAGE}"
    assert postscript == []


# ---- things that are not image files at all ----------------------------------------------------
def test_an_empty_file_is_called_empty(tmp_path, capsys):
    path = tmp_path / "x.png"
    path.write_bytes(b"")
    assert refuse(path) == "x.png is empty."
    assert cli_refuses("--init-image", path, tmp_path, capsys) == "x.png is empty."
    assert cli_refuses("--mask", path, tmp_path, capsys) == "x.png is empty."


def test_a_folder_named_like_an_image_is_called_a_folder(tmp_path, capsys):
    path = tmp_path / "x.png"
    path.mkdir()
    (path / "inside.png").write_bytes(noise("PNG"))
    assert refuse(path) == f"{path} is a folder, not an image."
    assert (
        cli_refuses("--init-image", path, tmp_path, capsys) == f"{path} is a folder, not an image."
    )
    assert [p.name for p in path.iterdir()] == ["inside.png"]


def _refuse_within_guard(path: Path) -> tuple[bool, list[str]]:
    """open_image(path) in a thread: (finished within the guard, its messages)."""
    messages: list[str] = []

    def run() -> None:
        try:
            open_image(path)
        except ValueError as e:
            messages.append(str(e))

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(HANG_GUARD_S)
    return not worker.is_alive(), messages


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_link_to_an_endless_device_named_png_is_refused(tmp_path):
    path = tmp_path / "x.png"
    path.symlink_to("/dev/zero")
    finished, messages = _refuse_within_guard(path)
    assert finished
    assert messages == ["x.png is a pipe or device, not an image file."]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are a POSIX feature")
def test_a_named_pipe_named_png_is_refused_without_blocking(tmp_path):
    path = tmp_path / "x.png"
    os.mkfifo(path)
    finished, messages = _refuse_within_guard(path)
    if not finished:
        # release the blocked open: a writer comes and goes, the reader then sees it empty
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    assert finished
    assert messages == ["x.png is a pipe or device, not an image file."]
