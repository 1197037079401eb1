"""Metadata text and EXIF out of PNG, JPEG and WebP files: our own bounds-checked parsers. Bad
metadata becomes a warning, never an exception; only a file that is not an image raises
ValueError. Other image formats go through Pillow's info."""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from PIL import Image

PNG_PARAMETERS_KEY = "parameters"
PNG_RECIPE_KEY = "studio_recipe"

# formats Pillow may open to tell an image from garbage; never EPS & co. (they run Ghostscript)
_SAFE_PIL_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
_MAX_TEXT = 64 * 1024 * 1024  # cap on one decompressed text chunk


@dataclass
class _Found:
    texts: dict[str, str] = field(default_factory=dict)  # PNG text chunks / PIL info strings
    exif: bytes | None = None
    warnings: list[str] = field(default_factory=list)


def _inflate(data: bytes) -> bytes:
    d = zlib.decompressobj()
    out = d.decompress(data, _MAX_TEXT)
    if d.unconsumed_tail:
        raise ValueError("compressed text is larger than 64 MB")
    return out


def _png_text(ctype: bytes, body: bytes) -> tuple[str, str]:
    key, sep, rest = body.partition(b"\0")
    if not sep or not key:
        raise ValueError("no keyword")
    name = key.decode("latin-1")
    if ctype == b"tEXt":
        return name, rest.decode("latin-1")
    if ctype == b"zTXt":
        if not rest or rest[0] != 0:
            raise ValueError("unknown compression")
        return name, _inflate(rest[1:]).decode("latin-1")
    # iTXt: flag, method, language\0, translated keyword\0, UTF-8 text
    if len(rest) < 2:
        raise ValueError("truncated")
    compressed, method = rest[0], rest[1]
    _lang, _, rest = rest[2:].partition(b"\0")
    _tkey, _, text = rest.partition(b"\0")
    if compressed:
        if method != 0:
            raise ValueError("unknown compression")
        text = _inflate(text)
    return name, text.decode("utf-8", errors="replace")


def _read_png(f: IO[bytes], found: _Found) -> None:
    f.seek(8)
    while True:
        head = f.read(8)
        if len(head) < 8:
            found.warnings.append("The PNG file ends early (no IEND chunk).")
            return
        length, ctype = struct.unpack(">I4s", head)
        if ctype == b"IEND":
            return
        if ctype not in (b"tEXt", b"zTXt", b"iTXt", b"eXIf"):
            f.seek(length + 4, os.SEEK_CUR)
            continue
        body = f.read(length)
        crc = f.read(4)
        label = ctype.decode("latin-1")
        if len(body) < length or len(crc) < 4:
            found.warnings.append(f"The PNG file ends inside a {label} chunk.")
            return
        if zlib.crc32(ctype + body) != int.from_bytes(crc, "big"):
            found.warnings.append(f"A damaged {label} chunk (bad checksum) was skipped.")
            continue
        if ctype == b"eXIf":
            found.exif = found.exif or body
            continue
        try:
            key, text = _png_text(ctype, body)
        except (ValueError, zlib.error, UnicodeDecodeError) as e:
            found.warnings.append(f"An unreadable {label} chunk was skipped ({e}).")
            continue
        found.texts.setdefault(key, text)


def _read_jpeg(f: IO[bytes], found: _Found) -> None:
    f.seek(2)
    while True:
        b = f.read(1)
        while b == b"\xff":  # fill bytes before a marker
            b = f.read(1)
        if not b:
            return
        marker = b[0]
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:
            continue  # markers without a length
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no metadata after this
            return
        size = f.read(2)
        if len(size) < 2 or struct.unpack(">H", size)[0] < 2:
            found.warnings.append("The JPEG file has a damaged segment header.")
            return
        seg = f.read(struct.unpack(">H", size)[0] - 2)
        if marker == 0xE1 and seg.startswith(b"Exif\0\0") and found.exif is None:
            found.exif = seg


def _read_webp(f: IO[bytes], found: _Found) -> None:
    f.seek(12)
    while True:
        head = f.read(8)
        if len(head) < 8:
            return
        fourcc, size = struct.unpack("<4sI", head)
        if fourcc == b"EXIF":
            data = f.read(size)
            if len(data) < size:
                found.warnings.append("The WebP file ends inside its EXIF chunk.")
                return
            found.exif = found.exif or data
            f.seek(size % 2, os.SEEK_CUR)
        else:
            f.seek(size + size % 2, os.SEEK_CUR)


def _not_an_image(name: str, why: str) -> ValueError:
    return ValueError(f"{name} is not an image file that can be read ({why}).")


def _scan_file(path: Path) -> _Found:
    found = _Found()
    try:
        f = path.open("rb")
    except OSError as e:
        raise ValueError(f"Cannot open {path}: {e.strerror or e}.") from e
    with f:
        head = f.read(12)
        if head.startswith(b"\x89PNG\r\n\x1a\n"):
            _read_png(f, found)
        elif head.startswith(b"\xff\xd8\xff"):
            _read_jpeg(f, found)
        elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            _read_webp(f, found)
        else:
            if not head:
                raise _not_an_image(path.name, "the file is empty")
            try:
                with Image.open(path, formats=_SAFE_PIL_FORMATS) as im:
                    _from_pil_info(im.info, found)
            except Exception as e:  # Pillow raises many types for garbage
                raise _not_an_image(path.name, "unknown file type") from e
    return found


def _from_pil_info(info: Mapping[str, Any], found: _Found) -> None:
    for key, value in info.items():
        if isinstance(value, str):
            found.texts.setdefault(key, value)
    exif = info.get("exif")
    if isinstance(exif, (bytes, bytearray)):
        found.exif = bytes(exif)
